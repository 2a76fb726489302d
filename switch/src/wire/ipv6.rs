//! IPv6 fixed headers (RFC 8200), the Fragment header, the walk over the
//! extension headers that may sit between them and an upper-layer header,
//! and the link-local address a station derives from its MAC. Port
//! security needs the source address, and for ICMPv6 neighbour discovery
//! the message behind any extension headers, fragmentation included.
//!
//! ```text
//! fixed header:    version/class/flow(4) payload length(2) next(1) hops(1)
//!                  source(16) destination(16)
//! Fragment header: next(1) reserved(1) offset(13 bits)|res(2)|M(1) ident(4)
//! ```

use super::{Field, IpProtocol, Rest, Result, WireError};
use crate::mac::MacAddr;
use std::net::Ipv6Addr;

/// Byte offsets of the IPv6 fixed header fields.
pub mod field {
    use super::{Field, Rest};
    /// Version (4 bits), traffic class (8 bits), flow label (20 bits).
    pub const VER_TC_FLOW: Field = 0..4;
    /// Payload length (everything after the fixed header).
    pub const LENGTH: Field = 4..6;
    /// Next header.
    pub const NXT_HDR: usize = 6;
    /// Hop limit.
    pub const HOP_LIMIT: usize = 7;
    /// Source address.
    pub const SRC_ADDR: Field = 8..24;
    /// Destination address.
    pub const DST_ADDR: Field = 24..40;
    /// Payload.
    pub const PAYLOAD: Rest = 40..;
}

/// Length of the fixed header.
pub const HEADER_LEN: usize = field::PAYLOAD.start;

/// A read/write view of an IPv6 packet.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checking it.
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps a buffer after [`Packet::check_len`].
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Ensures version 6 and that the fixed header and announced payload
    /// fit in the buffer (trailing padding is allowed). A zero payload
    /// length (jumbogram) is accepted as an empty payload.
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        if self.version() != 6 {
            return Err(WireError::malformed("IPv6 version"));
        }
        if HEADER_LEN + usize::from(self.payload_len()) > len {
            return Err(WireError::Truncated);
        }
        Ok(())
    }

    /// Gives the buffer back.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// IP version (6 for a valid packet).
    #[inline]
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[0] >> 4
    }

    /// Traffic class.
    pub fn traffic_class(&self) -> u8 {
        let b = self.buffer.as_ref();
        (b[0] << 4) | (b[1] >> 4)
    }

    /// Flow label (20 bits).
    pub fn flow_label(&self) -> u32 {
        let b = self.buffer.as_ref();
        (u32::from(b[1] & 0x0f) << 16) | (u32::from(b[2]) << 8) | u32::from(b[3])
    }

    /// Payload length.
    #[inline]
    pub fn payload_len(&self) -> u16 {
        let b = &self.buffer.as_ref()[field::LENGTH];
        u16::from_be_bytes([b[0], b[1]])
    }

    /// Next header.
    pub fn next_header(&self) -> IpProtocol {
        IpProtocol(self.buffer.as_ref()[field::NXT_HDR])
    }

    /// Hop limit.
    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[field::HOP_LIMIT]
    }

    /// Source address.
    #[inline]
    pub fn src_addr(&self) -> Ipv6Addr {
        Ipv6Addr::from(addr16(&self.buffer.as_ref()[field::SRC_ADDR]))
    }

    /// Destination address.
    pub fn dst_addr(&self) -> Ipv6Addr {
        Ipv6Addr::from(addr16(&self.buffer.as_ref()[field::DST_ADDR]))
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Packet<&'a T> {
    /// The payload as announced by the payload length.
    pub fn payload(&self) -> &'a [u8] {
        let end = HEADER_LEN + usize::from(self.payload_len());
        &self.buffer.as_ref()[HEADER_LEN..end]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets version, traffic class and flow label.
    pub fn set_version_tc_flow(&mut self, version: u8, traffic_class: u8, flow_label: u32) {
        let v = (u32::from(version) << 28)
            | (u32::from(traffic_class) << 20)
            | (flow_label & 0x000f_ffff);
        self.buffer.as_mut()[field::VER_TC_FLOW].copy_from_slice(&v.to_be_bytes());
    }

    /// Sets the payload length.
    pub fn set_payload_len(&mut self, v: u16) {
        self.buffer.as_mut()[field::LENGTH].copy_from_slice(&v.to_be_bytes());
    }

    /// Sets the next header.
    pub fn set_next_header(&mut self, v: IpProtocol) {
        self.buffer.as_mut()[field::NXT_HDR] = v.0;
    }

    /// Sets the hop limit.
    pub fn set_hop_limit(&mut self, v: u8) {
        self.buffer.as_mut()[field::HOP_LIMIT] = v;
    }

    /// Sets the source address.
    pub fn set_src_addr(&mut self, a: Ipv6Addr) {
        self.buffer.as_mut()[field::SRC_ADDR].copy_from_slice(&a.octets());
    }

    /// Sets the destination address.
    pub fn set_dst_addr(&mut self, a: Ipv6Addr) {
        self.buffer.as_mut()[field::DST_ADDR].copy_from_slice(&a.octets());
    }
}

/// An IPv6 fixed header as a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Repr {
    /// Source address.
    pub src_addr: Ipv6Addr,
    /// Destination address.
    pub dst_addr: Ipv6Addr,
    /// Next header.
    pub next_header: IpProtocol,
    /// Payload length in bytes.
    pub payload_len: usize,
    /// Hop limit.
    pub hop_limit: u8,
}

impl Repr {
    /// Reads a packet.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Packet<&T>) -> Result<Repr> {
        packet.check_len()?;
        Ok(Repr {
            src_addr: packet.src_addr(),
            dst_addr: packet.dst_addr(),
            next_header: packet.next_header(),
            payload_len: usize::from(packet.payload_len()),
            hop_limit: packet.hop_limit(),
        })
    }

    /// Header bytes [`Repr::emit`] writes.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the fixed header (traffic class and flow label zero). The
    /// buffer must hold [`HEADER_LEN`] bytes; `payload_len` above 65535 is
    /// clamped.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) {
        packet.set_version_tc_flow(6, 0, 0);
        packet.set_payload_len(u16::try_from(self.payload_len).unwrap_or(u16::MAX));
        packet.set_next_header(self.next_header);
        packet.set_hop_limit(self.hop_limit);
        packet.set_src_addr(self.src_addr);
        packet.set_dst_addr(self.dst_addr);
    }
}

/// Byte offsets of the Fragment header (RFC 8200 section 4.5).
pub mod frag_field {
    use super::Field;
    /// Next header (of the fragmentable part).
    pub const NXT_HDR: usize = 0;
    /// Reserved, zero.
    pub const RESERVED: usize = 1;
    /// Fragment offset in 8-octet units (13 bits), two reserved bits, and
    /// the M ("more fragments") flag in the lowest bit.
    pub const OFFSET_FLAGS: Field = 2..4;
    /// Identification, shared by the fragments of one packet.
    pub const IDENT: Field = 4..8;
}

/// Length of the Fragment header.
pub const FRAGMENT_HEADER_LEN: usize = frag_field::IDENT.end;

/// A read/write view of an IPv6 Fragment header and the fragment data
/// after it.
#[derive(Debug, Clone)]
pub struct FragmentHeader<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> FragmentHeader<T> {
    /// Wraps a buffer without checking it.
    pub const fn new_unchecked(buffer: T) -> FragmentHeader<T> {
        FragmentHeader { buffer }
    }

    /// Wraps a buffer that holds at least the 8-byte header.
    pub fn new_checked(buffer: T) -> Result<FragmentHeader<T>> {
        let h = Self::new_unchecked(buffer);
        h.check_len()?;
        Ok(h)
    }

    /// Ensures the header fits in the buffer.
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < FRAGMENT_HEADER_LEN {
            return Err(WireError::Truncated);
        }
        Ok(())
    }

    /// Next header of the fragmentable part (in the first fragment, the
    /// header that follows; in later ones, what the first one holds).
    pub fn next_header(&self) -> IpProtocol {
        IpProtocol(self.buffer.as_ref()[frag_field::NXT_HDR])
    }

    fn offset_flags(&self) -> u16 {
        let b = &self.buffer.as_ref()[frag_field::OFFSET_FLAGS];
        u16::from_be_bytes([b[0], b[1]])
    }

    /// Where this fragment's data sits in the original packet's
    /// fragmentable part, in bytes (a multiple of 8). Zero for the first
    /// fragment.
    pub fn offset(&self) -> u16 {
        self.offset_flags() & 0xfff8
    }

    /// The M flag: more fragments follow.
    pub fn more_fragments(&self) -> bool {
        self.offset_flags() & 1 != 0
    }

    /// Identification.
    pub fn ident(&self) -> u32 {
        let b = &self.buffer.as_ref()[frag_field::IDENT];
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> FragmentHeader<&'a T> {
    /// The fragment data after the header.
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer.as_ref()[FRAGMENT_HEADER_LEN..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> FragmentHeader<T> {
    /// Sets the next header.
    pub fn set_next_header(&mut self, v: IpProtocol) {
        self.buffer.as_mut()[frag_field::NXT_HDR] = v.0;
    }

    /// Sets the offset (in bytes; the low three bits are dropped) and the
    /// M flag, and clears the reserved bits.
    pub fn set_offset_and_more(&mut self, offset: u16, more: bool) {
        let v = (offset & 0xfff8) | u16::from(more);
        self.buffer.as_mut()[frag_field::OFFSET_FLAGS].copy_from_slice(&v.to_be_bytes());
        self.buffer.as_mut()[frag_field::RESERVED] = 0;
    }

    /// Sets the identification.
    pub fn set_ident(&mut self, v: u32) {
        self.buffer.as_mut()[frag_field::IDENT].copy_from_slice(&v.to_be_bytes());
    }
}

/// A Fragment header as a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FragmentRepr {
    /// Next header of the fragmentable part.
    pub next_header: IpProtocol,
    /// Offset of the fragment's data, in bytes (a multiple of 8).
    pub offset: u16,
    /// More fragments follow.
    pub more_fragments: bool,
    /// Identification.
    pub ident: u32,
}

impl FragmentRepr {
    /// Reads a header.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(header: &FragmentHeader<&T>) -> Result<FragmentRepr> {
        header.check_len()?;
        Ok(FragmentRepr {
            next_header: header.next_header(),
            offset: header.offset(),
            more_fragments: header.more_fragments(),
            ident: header.ident(),
        })
    }

    /// Bytes [`FragmentRepr::emit`] writes.
    pub const fn buffer_len(&self) -> usize {
        FRAGMENT_HEADER_LEN
    }

    /// True for the first fragment (offset zero), the only one that holds
    /// headers. With `more_fragments` false too it is an "atomic fragment"
    /// (RFC 6946): the whole packet.
    pub const fn is_first(&self) -> bool {
        self.offset == 0
    }

    /// Writes the header. The buffer must hold [`FRAGMENT_HEADER_LEN`]
    /// bytes.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, header: &mut FragmentHeader<T>) {
        header.set_next_header(self.next_header);
        header.set_offset_and_more(self.offset, self.more_fragments);
        header.set_ident(self.ident);
    }
}

/// Where an IPv6 packet's header chain leads, as [`header_chain`] found it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Chain<'a> {
    /// The header after the last extension header walked: an upper-layer
    /// protocol, ESP or "no next header". In a later fragment (see
    /// [`Chain::is_later_fragment`]), the Fragment header's next header.
    pub protocol: IpProtocol,
    /// The bytes from that header on. In a later fragment they are a piece
    /// from the middle of the packet, not a header.
    pub payload: &'a [u8],
    /// The Fragment header on the way, if the packet is a fragment.
    pub fragment: Option<FragmentRepr>,
}

impl Chain<'_> {
    /// True for a fragment other than the first: its headers are in
    /// another packet, so nothing about it can be read here.
    pub const fn is_later_fragment(&self) -> bool {
        matches!(self.fragment, Some(f) if !f.is_first())
    }
}

/// The smallest upper-layer header a first fragment must hold (RFC 7112
/// section 5 counts the upper-layer header as part of the chain); 0 for
/// protocols the walk does not know.
const fn min_upper_layer_len(protocol: IpProtocol) -> usize {
    match protocol {
        IpProtocol::TCP => 20,
        IpProtocol::UDP => 8,
        IpProtocol::ICMPV6 => super::icmpv6::HEADER_LEN,
        _ => 0,
    }
}

/// Walks `payload`'s extension headers as [`upper_layer`] does, and through
/// a Fragment header too, to say what a packet carries even when it is
/// fragmented:
///
/// - in a first fragment (offset 0), the walk goes on after the Fragment
///   header: RFC 8200 section 4.5 and RFC 7112 require the first fragment
///   to hold the whole header chain, up to and including the upper-layer
///   header, so a chain that runs out (or an ICMPv6, TCP or UDP header cut
///   short) there is [`WireError::Malformed`] rather than `Truncated`: no
///   reassembly would make it readable to a firewall, and RFC 7112
///   section 5 lets an intermediate system drop it;
/// - in a later fragment the walk stops at the Fragment header
///   ([`Chain::is_later_fragment`]);
/// - a second Fragment header is `Malformed`: no sender fragments a
///   fragment, and a reader that walked past it would be reading the
///   middle of a packet.
///
/// At most `max_headers` headers (the Fragment header included) are
/// walked, as in [`upper_layer`].
pub fn header_chain(
    mut next: IpProtocol,
    mut payload: &[u8],
    max_headers: usize,
) -> Result<Chain<'_>> {
    const INCOMPLETE: WireError =
        WireError::malformed("IPv6 first fragment without the whole header chain (RFC 7112)");
    let mut fragment: Option<FragmentRepr> = None;
    let mut walked = 0;
    loop {
        let len = match next {
            IpProtocol::HOP_BY_HOP | IpProtocol::IPV6_ROUTE | IpProtocol::IPV6_OPTS => {
                payload.get(1).map(|&n| (usize::from(n) + 1) * 8)
            }
            IpProtocol::AH => payload.get(1).map(|&n| (usize::from(n) + 2) * 4),
            IpProtocol::IPV6_FRAG => Some(FRAGMENT_HEADER_LEN),
            _ => {
                if fragment.is_some() && payload.len() < min_upper_layer_len(next) {
                    return Err(INCOMPLETE);
                }
                return Ok(Chain {
                    protocol: next,
                    payload,
                    fragment,
                });
            }
        };
        if walked == max_headers {
            return Err(WireError::malformed("IPv6 extension header chain too long"));
        }
        walked += 1;
        let cut = if fragment.is_some() {
            INCOMPLETE
        } else {
            WireError::Truncated
        };
        let len = len.ok_or(cut)?;
        let (Some(&following), Some(rest)) = (payload.first(), payload.get(len..)) else {
            return Err(cut);
        };
        if next == IpProtocol::IPV6_FRAG {
            if fragment.is_some() {
                return Err(WireError::malformed(
                    "IPv6 Fragment header inside a fragment",
                ));
            }
            let repr = FragmentRepr::parse(&FragmentHeader::new_unchecked(payload))?;
            fragment = Some(repr);
            if !repr.is_first() {
                return Ok(Chain {
                    protocol: repr.next_header,
                    payload: rest,
                    fragment,
                });
            }
        }
        next = IpProtocol(following);
        payload = rest;
    }
}

/// The first header after `payload`'s extension headers, and the bytes from
/// it on: walks Hop-by-Hop Options, Routing, Destination Options and
/// Authentication headers, starting from `next` (the fixed header's next
/// header), and stops at anything else, so a Fragment header, ESP, "no next
/// header" or an upper-layer protocol is returned as it is.
///
/// At most `max_headers` are walked, so a packet cannot make its reader
/// loop long: a longer chain is [`WireError::Malformed`] (a reader that
/// gave up and passed it could be fooled by whatever the chain hides). A
/// header that does not fit `payload` is [`WireError::Truncated`].
///
/// Fragment headers are not walked: what follows one is a piece of a
/// packet, whole only after reassembly at the receiver. [`header_chain`]
/// walks into first fragments.
pub fn upper_layer(
    mut next: IpProtocol,
    mut payload: &[u8],
    max_headers: usize,
) -> Result<(IpProtocol, &[u8])> {
    let mut walked = 0;
    loop {
        let len = match next {
            // RFC 8200 section 4.3-4.6: length in 8-octet units, not
            // counting the first 8.
            IpProtocol::HOP_BY_HOP | IpProtocol::IPV6_ROUTE | IpProtocol::IPV6_OPTS => {
                payload.get(1).map(|&n| (usize::from(n) + 1) * 8)
            }
            // RFC 4302 section 2.2: length in 4-octet units, minus 2.
            IpProtocol::AH => payload.get(1).map(|&n| (usize::from(n) + 2) * 4),
            _ => return Ok((next, payload)),
        };
        if walked == max_headers {
            return Err(WireError::malformed("IPv6 extension header chain too long"));
        }
        walked += 1;
        let len = len.ok_or(WireError::Truncated)?;
        let (Some(&following), Some(rest)) = (payload.first(), payload.get(len..)) else {
            return Err(WireError::Truncated);
        };
        next = IpProtocol(following);
        payload = rest;
    }
}

/// The link-local address a station derives from its MAC with the modified
/// EUI-64 interface identifier (RFC 4291 appendix A, RFC 4862, RFC 2464
/// section 5): `fe80::` then the MAC with ff:fe in the middle and the
/// universal/local bit (0x02 of the first byte) flipped. Linux does this
/// unless `addr_gen_mode` asks for a stable-privacy or random identifier.
pub const fn eui64_link_local(mac: MacAddr) -> Ipv6Addr {
    let m = mac.0;
    Ipv6Addr::new(
        0xfe80,
        0,
        0,
        0,
        u16::from_be_bytes([m[0] ^ 0x02, m[1]]),
        u16::from_be_bytes([m[2], 0xff]),
        u16::from_be_bytes([0xfe, m[3]]),
        u16::from_be_bytes([m[4], m[5]]),
    )
}

/// True for fe80::/10, the link-local unicast prefix.
pub const fn is_link_local(addr: &Ipv6Addr) -> bool {
    addr.segments()[0] & 0xffc0 == 0xfe80
}

/// The solicited-node multicast group of `addr` (RFC 4291 section
/// 2.7.1): `ff02::1:ff` followed by the address's low 24 bits. A Neighbor
/// Solicitation that resolves `addr` is sent there, and only the stations
/// whose addresses end in those bits listen.
pub const fn solicited_node(addr: Ipv6Addr) -> Ipv6Addr {
    let o = addr.octets();
    Ipv6Addr::new(
        0xff02,
        0,
        0,
        0,
        0,
        1,
        u16::from_be_bytes([0xff, o[13]]),
        u16::from_be_bytes([o[14], o[15]]),
    )
}

/// True when `addr` is a solicited-node multicast group (ff02::1:ff00:0/104).
pub const fn is_solicited_node(addr: &Ipv6Addr) -> bool {
    let o = addr.octets();
    let mut i = 0;
    while i < 13 {
        if o[i] != SOLICITED_NODE_PREFIX[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// The first 13 bytes of every solicited-node group.
const SOLICITED_NODE_PREFIX: [u8; 13] = [0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff];

/// The Ethernet group address an IPv6 multicast packet to `group` is sent
/// to (RFC 2464 section 7): `33:33` followed by the group's low 32 bits.
pub const fn multicast_mac(group: Ipv6Addr) -> MacAddr {
    let o = group.octets();
    MacAddr([0x33, 0x33, o[12], o[13], o[14], o[15]])
}

fn addr16(b: &[u8]) -> [u8; 16] {
    let mut a = [0u8; 16];
    a.copy_from_slice(&b[..16]);
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repr() -> Repr {
        Repr {
            src_addr: "fe80::42:acff:fe12:2".parse().unwrap(),
            dst_addr: "ff02::1".parse().unwrap(),
            next_header: IpProtocol::ICMPV6,
            payload_len: 4,
            hop_limit: 255,
        }
    }

    fn packet() -> Vec<u8> {
        let mut buf = vec![0u8; 44];
        repr().emit(&mut Packet::new_unchecked(&mut buf[..]));
        buf
    }

    #[test]
    fn solicited_node_groups_keep_the_low_24_bits() {
        let target: Ipv6Addr = "fd00::42:ac12:3".parse().unwrap();
        let group = solicited_node(target);
        assert_eq!(group, "ff02::1:ff12:3".parse::<Ipv6Addr>().unwrap());
        assert!(is_solicited_node(&group));
        assert!(!is_solicited_node(&"ff02::1".parse().unwrap()));
        assert!(!is_solicited_node(&"ff02::2:ff12:3".parse().unwrap()));
        assert!(!is_solicited_node(&target));
        assert_eq!(
            multicast_mac(group),
            MacAddr([0x33, 0x33, 0xff, 0x12, 0x00, 0x03])
        );
        assert_eq!(
            multicast_mac("ff02::1".parse().unwrap()),
            MacAddr([0x33, 0x33, 0, 0, 0, 1])
        );
    }

    #[test]
    fn round_trip() {
        let buf = packet();
        let p = Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(Repr::parse(&p).unwrap(), repr());
        assert_eq!(p.payload().len(), 4);
        assert_eq!(p.traffic_class(), 0);
        assert_eq!(p.flow_label(), 0);
    }

    #[test]
    fn traffic_class_and_flow_label_are_split_correctly() {
        let mut buf = packet();
        Packet::new_unchecked(&mut buf[..]).set_version_tc_flow(6, 0xab, 0xcdef1);
        let p = Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(p.traffic_class(), 0xab);
        assert_eq!(p.flow_label(), 0xcdef1);
        let h = etherparse::Ipv6HeaderSlice::from_slice(&buf).unwrap();
        assert_eq!(h.traffic_class(), 0xab);
        assert_eq!(h.flow_label().value(), 0xcdef1);
        assert_eq!(h.source_addr(), repr().src_addr);
        assert_eq!(h.payload_length(), 4);
    }

    #[test]
    fn eui64_link_local_flips_the_universal_local_bit_and_inserts_ff_fe() {
        let mac = MacAddr([0x02, 0x42, 0xac, 0x12, 0x00, 0x02]);
        assert_eq!(
            eui64_link_local(mac),
            "fe80::42:acff:fe12:2".parse::<Ipv6Addr>().unwrap()
        );
        let universal = MacAddr([0x00, 0x1b, 0x21, 0x3c, 0x4d, 0x5e]);
        assert_eq!(
            eui64_link_local(universal),
            "fe80::21b:21ff:fe3c:4d5e".parse::<Ipv6Addr>().unwrap()
        );
        assert!(is_link_local(&eui64_link_local(universal)));
        assert!(is_link_local(&"febf::1".parse().unwrap()));
        assert!(!is_link_local(&"fec0::1".parse().unwrap()));
    }

    #[test]
    fn upper_layer_walks_options_routing_and_ah_and_stops_at_a_fragment() {
        // Hop-by-Hop (8 bytes) -> Destination Options (16) -> AH (12) ->
        // Routing (8) -> Fragment.
        let mut p = vec![0u8; 8 + 16 + 12 + 8 + 8 + 4];
        p[0] = IpProtocol::IPV6_OPTS.0;
        p[8] = IpProtocol::AH.0;
        p[9] = 1;
        p[24] = IpProtocol::IPV6_ROUTE.0;
        p[25] = 1;
        p[36] = IpProtocol::IPV6_FRAG.0;
        p[44] = IpProtocol::ICMPV6.0;
        let (next, rest) = upper_layer(IpProtocol::HOP_BY_HOP, &p, 8).unwrap();
        assert_eq!(next, IpProtocol::IPV6_FRAG);
        assert_eq!(rest.len(), 12);
        assert_eq!(
            upper_layer(IpProtocol::HOP_BY_HOP, &p, 3).unwrap_err(),
            WireError::malformed("IPv6 extension header chain too long")
        );
        assert_eq!(
            upper_layer(IpProtocol::TCP, &p, 0).unwrap().0,
            IpProtocol::TCP
        );
        for cut in [0, 1, 7, 8, 9, 23, 35] {
            assert_eq!(
                upper_layer(IpProtocol::HOP_BY_HOP, &p[..cut], 8).unwrap_err(),
                WireError::Truncated,
                "cut at {cut}"
            );
        }
    }

    /// A Fragment header with `next`, `offset` (bytes) and the M flag.
    fn fragment(next: IpProtocol, offset: u16, more: bool) -> Vec<u8> {
        let mut h = vec![0u8; FRAGMENT_HEADER_LEN];
        FragmentRepr {
            next_header: next,
            offset,
            more_fragments: more,
            ident: 0xdead_beef,
        }
        .emit(&mut FragmentHeader::new_unchecked(&mut h[..]));
        h
    }

    #[test]
    fn fragment_header_round_trips_and_matches_etherparse() {
        let h = fragment(IpProtocol::UDP, 1448, true);
        let view = FragmentHeader::new_checked(&h[..]).unwrap();
        assert_eq!(view.offset(), 1448);
        assert!(view.more_fragments());
        assert_eq!(view.ident(), 0xdead_beef);
        let e = etherparse::Ipv6FragmentHeaderSlice::from_slice(&h).unwrap();
        assert_eq!(e.fragment_offset().value() * 8, 1448);
        assert!(e.more_fragments());
        assert_eq!(e.identification(), 0xdead_beef);
        assert_eq!(
            FragmentHeader::new_checked(&h[..7]).unwrap_err(),
            WireError::Truncated
        );
    }

    #[test]
    fn header_chain_walks_into_a_first_fragment_and_stops_at_a_later_one() {
        // Hop-by-Hop -> Fragment (first) -> Destination Options -> ICMPv6.
        let mut p = vec![0u8; 8];
        p[0] = IpProtocol::IPV6_FRAG.0;
        p.extend(fragment(IpProtocol::IPV6_OPTS, 0, true));
        p.extend([IpProtocol::ICMPV6.0, 0, 1, 4, 0, 0, 0, 0]);
        p.extend([135, 0, 0, 0]);
        let c = header_chain(IpProtocol::HOP_BY_HOP, &p, 8).unwrap();
        assert_eq!(c.protocol, IpProtocol::ICMPV6);
        assert_eq!(c.payload, &[135, 0, 0, 0]);
        assert!(c.fragment.is_some_and(|f| f.is_first()));
        assert!(!c.is_later_fragment());

        let later = fragment(IpProtocol::ICMPV6, 8, false);
        let mut q = later.clone();
        q.extend([1, 2, 3]);
        let c = header_chain(IpProtocol::IPV6_FRAG, &q, 8).unwrap();
        assert!(c.is_later_fragment());
        assert_eq!(c.protocol, IpProtocol::ICMPV6);
        assert_eq!(c.payload, &[1, 2, 3]);

        let plain = header_chain(IpProtocol::UDP, &[0; 3], 8).unwrap();
        assert_eq!(plain.fragment, None, "no fragment, no length rule");
    }

    #[test]
    fn a_first_fragment_must_hold_the_whole_chain() {
        let incomplete =
            WireError::malformed("IPv6 first fragment without the whole header chain (RFC 7112)");
        // The Destination Options header announced after the Fragment
        // header is not all there.
        let mut p = fragment(IpProtocol::IPV6_OPTS, 0, true);
        p.extend([IpProtocol::ICMPV6.0, 1, 0, 0]);
        assert_eq!(
            header_chain(IpProtocol::IPV6_FRAG, &p, 8).unwrap_err(),
            incomplete
        );
        // The upper-layer header itself is cut short.
        for (proto, len) in [
            (IpProtocol::ICMPV6, 3),
            (IpProtocol::UDP, 7),
            (IpProtocol::TCP, 19),
        ] {
            let mut p = fragment(proto, 0, true);
            p.extend(vec![0; len]);
            assert_eq!(
                header_chain(IpProtocol::IPV6_FRAG, &p, 8).unwrap_err(),
                incomplete,
                "{proto:?}"
            );
            p.push(0);
            assert!(header_chain(IpProtocol::IPV6_FRAG, &p, 8).is_ok());
        }
        // Without a fragment, a short chain is only truncated.
        assert_eq!(
            header_chain(IpProtocol::IPV6_OPTS, &[IpProtocol::ICMPV6.0, 1, 0, 0], 8).unwrap_err(),
            WireError::Truncated
        );
        // A Fragment header cut short is truncated too.
        assert_eq!(
            header_chain(IpProtocol::IPV6_FRAG, &[0; 7], 8).unwrap_err(),
            WireError::Truncated
        );
    }

    #[test]
    fn a_fragment_inside_a_fragment_is_malformed_and_the_chain_is_bounded() {
        let mut p = fragment(IpProtocol::IPV6_FRAG, 0, true);
        p.extend(fragment(IpProtocol::ICMPV6, 0, true));
        p.extend([128, 0, 0, 0]);
        assert_eq!(
            header_chain(IpProtocol::IPV6_FRAG, &p, 8).unwrap_err(),
            WireError::malformed("IPv6 Fragment header inside a fragment")
        );
        let mut q = fragment(IpProtocol::ICMPV6, 0, false);
        q.extend([128, 0, 0, 0]);
        assert_eq!(
            header_chain(IpProtocol::IPV6_FRAG, &q, 0).unwrap_err(),
            WireError::malformed("IPv6 extension header chain too long")
        );
        assert!(header_chain(IpProtocol::IPV6_FRAG, &q, 1).is_ok());
    }

    #[test]
    fn truncated_and_malformed() {
        let buf = packet();
        assert_eq!(
            Packet::new_checked(&buf[..39]).unwrap_err(),
            WireError::Truncated
        );
        assert_eq!(
            Packet::new_checked(&buf[..43]).unwrap_err(),
            WireError::Truncated
        );
        let mut b = packet();
        b[0] = 0x40;
        assert!(matches!(
            Packet::new_checked(&b[..]),
            Err(WireError::Malformed { .. })
        ));
    }
}
