//! IPv6 fixed headers (RFC 8200), the walk over the extension headers that
//! may sit between them and an upper-layer header, and the link-local
//! address a station derives from its MAC. Port security needs the source
//! address, and for ICMPv6 neighbour discovery the message behind any
//! extension headers.

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
/// Fragment headers are not walked on purpose: what follows the first one
/// is a piece of a packet, whole only after reassembly at the receiver.
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
