//! ICMPv6 (RFC 4443) headers and the Neighbor Discovery messages and
//! options (RFC 4861) that port security inspects: a station that can
//! advertise any address, or any link-layer address for its own, can take
//! over its neighbours' traffic the way ARP spoofing does on IPv4.
//!
//! ```text
//! every message:  type(1) code(1) checksum(2) body...
//! RS  (133):      reserved(4)                              options...
//! RA  (134):      hop limit(1) flags(1) lifetime(2)
//!                 reachable(4) retrans(4)                  options...
//! NS  (135):      reserved(4) target(16)                   options...
//! NA  (136):      R|S|O flags(1) reserved(3) target(16)    options...
//! Redirect (137): reserved(4) target(16) destination(16)   options...
//! option:         type(1) length(1, in 8-octet units, never 0) data...
//! ```
//!
//! The view covers the message as given: over IPv6 that is the rest of the
//! payload after any extension headers (see [`super::ipv6::upper_layer`]).

use super::{checksum, Field, Result, WireError};
use crate::mac::MacAddr;
use core::fmt;
use core::ops::BitOr;
use std::net::Ipv6Addr;

/// Byte offsets of the ICMPv6 fields the Neighbor Discovery messages share.
pub mod field {
    use super::Field;
    /// Message type.
    pub const TYPE: usize = 0;
    /// Message code (0 for every Neighbor Discovery message).
    pub const CODE: usize = 1;
    /// Checksum over the IPv6 pseudo-header and the message.
    pub const CHECKSUM: Field = 2..4;
    /// Neighbor Advertisement flags (R, S, O in the top bits); reserved in
    /// the other messages that have a target.
    pub const FLAGS: usize = 4;
    /// The first body word after the flags byte (reserved).
    pub const RESERVED: Field = 5..8;
    /// Target address of a Neighbor Solicitation, Advertisement or
    /// Redirect.
    pub const TARGET: Field = 8..24;
    /// Destination address of a Redirect.
    pub const REDIRECT_DST: Field = 24..40;
}

/// Length of the header every ICMPv6 message has.
pub const HEADER_LEN: usize = field::CHECKSUM.end;

/// Byte offsets inside one Neighbor Discovery option.
pub mod option_field {
    /// Option type.
    pub const TYPE: usize = 0;
    /// Length of the whole option in 8-octet units (0 is invalid).
    pub const LENGTH: usize = 1;
    /// Where the option's data starts.
    pub const DATA: usize = 2;
}

/// Length of a link-layer address option for a 6-byte Ethernet address
/// (RFC 2464 section 6): type, length 1, the address.
pub const LINK_LAYER_OPTION_LEN: usize = 8;

/// An ICMPv6 message type, kept open.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Message(pub u8);

impl Message {
    /// Packet Too Big: lowers the receiver's path MTU towards the packet's
    /// source, so it matters who may send it.
    pub const PACKET_TOO_BIG: Message = Message(2);
    /// Echo request (`ping`).
    pub const ECHO_REQUEST: Message = Message(128);
    /// Echo reply.
    pub const ECHO_REPLY: Message = Message(129);
    /// Multicast Listener Query (MLDv1 and v2, RFC 2710 / RFC 3810).
    pub const MLD_QUERY: Message = Message(130);
    /// MLDv1 Multicast Listener Report (RFC 2710).
    pub const MLD_REPORT: Message = Message(131);
    /// MLDv1 Multicast Listener Done (RFC 2710).
    pub const MLD_DONE: Message = Message(132);
    /// MLDv2 Multicast Listener Report (RFC 3810).
    pub const MLDV2_REPORT: Message = Message(143);
    /// Router Solicitation: a host asks routers to advertise.
    pub const ROUTER_SOLICIT: Message = Message(133);
    /// Router Advertisement: a router announces itself, prefixes and
    /// parameters. Only routers may send it.
    pub const ROUTER_ADVERT: Message = Message(134);
    /// Neighbor Solicitation: "who has the target?", or a duplicate address
    /// probe when sent from `::`.
    pub const NEIGHBOR_SOLICIT: Message = Message(135);
    /// Neighbor Advertisement: "the target is at this link-layer address".
    pub const NEIGHBOR_ADVERT: Message = Message(136);
    /// Redirect: a router points a host at a better first hop. Only routers
    /// may send it.
    pub const REDIRECT: Message = Message(137);

    /// Bytes before the options of a Neighbor Discovery message, which
    /// receivers require (RFC 4861 sections 6.1.1, 6.1.2, 7.1.1, 7.1.2,
    /// 8.1); `None` for every other type.
    pub const fn ndisc_fixed_len(self) -> Option<usize> {
        match self.0 {
            133 => Some(8),
            134 => Some(16),
            135 | 136 => Some(field::TARGET.end),
            137 => Some(field::REDIRECT_DST.end),
            _ => None,
        }
    }

    /// True for the five Neighbor Discovery messages (133 to 137).
    pub const fn is_ndisc(self) -> bool {
        self.ndisc_fixed_len().is_some()
    }

    /// True for the messages with a target address (NS, NA, Redirect).
    pub const fn has_target(self) -> bool {
        matches!(self.0, 135..=137)
    }

    /// True for the messages a host may send from the unspecified address
    /// `::` because it has no usable address yet: a duplicate address
    /// detection probe (Neighbor Solicitation, RFC 4862 section 5.4.2), a
    /// Router Solicitation (RFC 4861 section 6.3.7), and MLD reports and
    /// dones (RFC 3590 section 4, RFC 3810 section 5.2.13; Linux sends
    /// them from `::` while its link-local address is tentative).
    pub const fn may_come_from_unspecified(self) -> bool {
        matches!(self.0, 131 | 132 | 133 | 135 | 143)
    }
}

impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Message::ECHO_REQUEST => f.write_str("echo request"),
            Message::ECHO_REPLY => f.write_str("echo reply"),
            Message::PACKET_TOO_BIG => f.write_str("packet too big"),
            Message::MLD_QUERY => f.write_str("multicast listener query"),
            Message::MLD_REPORT | Message::MLDV2_REPORT => f.write_str("multicast listener report"),
            Message::MLD_DONE => f.write_str("multicast listener done"),
            Message::ROUTER_SOLICIT => f.write_str("router solicitation"),
            Message::ROUTER_ADVERT => f.write_str("router advertisement"),
            Message::NEIGHBOR_SOLICIT => f.write_str("neighbour solicitation"),
            Message::NEIGHBOR_ADVERT => f.write_str("neighbour advertisement"),
            Message::REDIRECT => f.write_str("redirect"),
            Message(other) => write!(f, "ICMPv6 type {other}"),
        }
    }
}

/// The flags of a Neighbor Advertisement.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct NeighborFlags(pub u8);

impl NeighborFlags {
    /// No flag.
    pub const NONE: NeighborFlags = NeighborFlags(0);
    /// R: the sender is a router.
    pub const ROUTER: NeighborFlags = NeighborFlags(0x80);
    /// S: the advertisement answers a solicitation.
    pub const SOLICITED: NeighborFlags = NeighborFlags(0x40);
    /// O: the advertisement should override an existing cache entry (the
    /// flag cache poisoning relies on).
    pub const OVERRIDE: NeighborFlags = NeighborFlags(0x20);

    /// True when every flag of `other` is set.
    pub const fn contains(self, other: NeighborFlags) -> bool {
        self.0 & other.0 == other.0
    }
}

impl BitOr for NeighborFlags {
    type Output = NeighborFlags;
    fn bitor(self, rhs: NeighborFlags) -> NeighborFlags {
        NeighborFlags(self.0 | rhs.0)
    }
}

/// A Neighbor Discovery option type, kept open.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NdiscOptionType(pub u8);

impl NdiscOptionType {
    /// Source Link-Layer Address: the sender's MAC (RS, RA, NS, Redirect).
    pub const SOURCE_LINK_LAYER_ADDR: NdiscOptionType = NdiscOptionType(1);
    /// Target Link-Layer Address: the target's MAC (NA, Redirect).
    pub const TARGET_LINK_LAYER_ADDR: NdiscOptionType = NdiscOptionType(2);
    /// Prefix Information (RA).
    pub const PREFIX_INFO: NdiscOptionType = NdiscOptionType(3);
    /// Redirected Header (Redirect).
    pub const REDIRECTED_HEADER: NdiscOptionType = NdiscOptionType(4);
    /// MTU (RA).
    pub const MTU: NdiscOptionType = NdiscOptionType(5);

    /// True for the two options that carry a link-layer address.
    pub const fn is_link_layer_addr(self) -> bool {
        matches!(self.0, 1 | 2)
    }
}

impl fmt::Display for NdiscOptionType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            NdiscOptionType::SOURCE_LINK_LAYER_ADDR => f.write_str("source link-layer address"),
            NdiscOptionType::TARGET_LINK_LAYER_ADDR => f.write_str("target link-layer address"),
            NdiscOptionType::PREFIX_INFO => f.write_str("prefix information"),
            NdiscOptionType::REDIRECTED_HEADER => f.write_str("redirected header"),
            NdiscOptionType::MTU => f.write_str("MTU"),
            NdiscOptionType(other) => write!(f, "option {other}"),
        }
    }
}

/// One Neighbor Discovery option, as [`NdiscOptions`] yields it: at least
/// 8 bytes, the length its header announces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NdiscOption<'a> {
    bytes: &'a [u8],
}

impl<'a> NdiscOption<'a> {
    /// The option type.
    pub fn kind(&self) -> NdiscOptionType {
        NdiscOptionType(self.bytes[option_field::TYPE])
    }

    /// The whole option, header included.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// The option's data after its type and length bytes.
    pub fn data(&self) -> &'a [u8] {
        &self.bytes[option_field::DATA..]
    }

    /// The MAC of a source or target link-layer address option of the
    /// Ethernet size; `None` for other options or sizes (RFC 2464 allows
    /// only 8-byte ones on Ethernet, and Linux ignores the message
    /// otherwise).
    pub fn link_layer_addr(&self) -> Option<MacAddr> {
        if !self.kind().is_link_layer_addr() || self.bytes.len() != LINK_LAYER_OPTION_LEN {
            return None;
        }
        let mut mac = [0u8; 6];
        mac.copy_from_slice(&self.bytes[option_field::DATA..LINK_LAYER_OPTION_LEN]);
        Some(MacAddr(mac))
    }
}

/// The options of a Neighbor Discovery message, in order. Yields an error
/// once and then stops when an option has length 0 (RFC 4861 section 4.6
/// makes receivers discard the message: [`WireError::Malformed`]) or runs
/// past the message ([`WireError::Truncated`]), so a reader never loops on
/// or reads past hostile bytes.
#[derive(Clone, Debug)]
pub struct NdiscOptions<'a> {
    rest: &'a [u8],
}

impl<'a> NdiscOptions<'a> {
    /// Options read from `bytes` (the part of a message after its fixed
    /// fields).
    pub const fn new(bytes: &'a [u8]) -> NdiscOptions<'a> {
        NdiscOptions { rest: bytes }
    }
}

impl<'a> Iterator for NdiscOptions<'a> {
    type Item = Result<NdiscOption<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let rest = core::mem::take(&mut self.rest);
        let Some(&units) = rest.get(option_field::LENGTH) else {
            return Some(Err(WireError::Truncated));
        };
        if units == 0 {
            return Some(Err(WireError::malformed("NDP option of length zero")));
        }
        let len = usize::from(units) * 8;
        if len > rest.len() {
            return Some(Err(WireError::Truncated));
        }
        let (bytes, after) = rest.split_at(len);
        self.rest = after;
        Some(Ok(NdiscOption { bytes }))
    }
}

/// A read/write view of an ICMPv6 message.
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

    /// Ensures the 4-byte header is there and, for a Neighbor Discovery
    /// message, its fixed fields too (receivers discard shorter ones). The
    /// options are checked as they are read ([`Packet::options`]).
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        match self.msg_type().ndisc_fixed_len() {
            Some(fixed) if len < fixed => Err(WireError::Truncated),
            _ => Ok(()),
        }
    }

    /// Gives the buffer back.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Message type.
    #[inline]
    pub fn msg_type(&self) -> Message {
        Message(self.buffer.as_ref()[field::TYPE])
    }

    /// Message code.
    pub fn msg_code(&self) -> u8 {
        self.buffer.as_ref()[field::CODE]
    }

    /// Checksum field.
    pub fn checksum(&self) -> u16 {
        let b = &self.buffer.as_ref()[field::CHECKSUM];
        u16::from_be_bytes([b[0], b[1]])
    }

    /// The target address of a Neighbor Solicitation, Advertisement or
    /// Redirect; `None` for other messages.
    #[inline]
    pub fn target_addr(&self) -> Option<Ipv6Addr> {
        if !self.msg_type().has_target() {
            return None;
        }
        let b = self.buffer.as_ref().get(field::TARGET)?;
        let mut a = [0u8; 16];
        a.copy_from_slice(b);
        Some(Ipv6Addr::from(a))
    }

    /// The flags of a Neighbor Advertisement; `None` for other messages.
    pub fn neighbor_flags(&self) -> Option<NeighborFlags> {
        if self.msg_type() != Message::NEIGHBOR_ADVERT {
            return None;
        }
        let b = self.buffer.as_ref().get(field::FLAGS)?;
        Some(NeighborFlags(b & 0xe0))
    }

    /// True when the checksum is right for a message sent from `src` to
    /// `dst` (ICMPv6 checksums are mandatory, RFC 4443 section 2.3).
    pub fn verify_checksum(&self, src: Ipv6Addr, dst: Ipv6Addr) -> bool {
        let data = self.buffer.as_ref();
        let Ok(len) = u32::try_from(data.len()) else {
            return false;
        };
        let pseudo = checksum::pseudo_header_v6(src, dst, 58, len);
        checksum::combine(&[pseudo, checksum::sum(data)]) == 0xffff
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Packet<&'a T> {
    /// The options of a Neighbor Discovery message (nothing for other
    /// messages).
    #[inline]
    pub fn options(&self) -> NdiscOptions<'a> {
        let data = self.buffer.as_ref();
        let bytes = self
            .msg_type()
            .ndisc_fixed_len()
            .and_then(|fixed| data.get(fixed..))
            .unwrap_or(&[]);
        NdiscOptions::new(bytes)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the message type.
    pub fn set_msg_type(&mut self, v: Message) {
        self.buffer.as_mut()[field::TYPE] = v.0;
    }

    /// Sets the message code.
    pub fn set_msg_code(&mut self, v: u8) {
        self.buffer.as_mut()[field::CODE] = v;
    }

    /// Sets the checksum field.
    pub fn set_checksum(&mut self, v: u16) {
        self.buffer.as_mut()[field::CHECKSUM].copy_from_slice(&v.to_be_bytes());
    }

    /// Sets the flags byte and clears the reserved bytes after it (the
    /// first body word of NS, NA and Redirect).
    pub fn set_neighbor_flags(&mut self, v: NeighborFlags) {
        let b = self.buffer.as_mut();
        b[field::FLAGS] = v.0;
        b[field::RESERVED].fill(0);
    }

    /// Sets the target address (NS, NA, Redirect).
    pub fn set_target_addr(&mut self, a: Ipv6Addr) {
        self.buffer.as_mut()[field::TARGET].copy_from_slice(&a.octets());
    }

    /// Computes the checksum for a message sent from `src` to `dst`.
    pub fn fill_checksum(&mut self, src: Ipv6Addr, dst: Ipv6Addr) {
        self.set_checksum(0);
        let data = self.buffer.as_ref();
        let len = u32::try_from(data.len()).unwrap_or(u32::MAX);
        let pseudo = checksum::pseudo_header_v6(src, dst, 58, len);
        let sum = checksum::finish(checksum::combine(&[pseudo, checksum::sum(data)]));
        self.set_checksum(sum);
    }
}

/// An ICMPv6 message as a value: the Neighbor Discovery messages a host
/// sends in full, anything else as its type and code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Repr {
    /// Router Solicitation, with the sender's MAC unless sent from `::`.
    RouterSolicit {
        /// Source link-layer address option.
        lladdr: Option<MacAddr>,
    },
    /// Neighbor Solicitation.
    NeighborSolicit {
        /// The address asked about.
        target: Ipv6Addr,
        /// Source link-layer address option (absent when sent from `::`).
        lladdr: Option<MacAddr>,
    },
    /// Neighbor Advertisement.
    NeighborAdvert {
        /// R, S and O.
        flags: NeighborFlags,
        /// The address advertised.
        target: Ipv6Addr,
        /// Target link-layer address option.
        lladdr: Option<MacAddr>,
    },
    /// Any other message: [`Repr::emit`] writes its 4-byte header only, the
    /// caller the body.
    Other {
        /// Message type.
        msg_type: Message,
        /// Message code.
        code: u8,
    },
}

impl Repr {
    /// Reads a message (the checksum is the caller's business, as only the
    /// caller knows the IP addresses). The link-layer address is the first
    /// option of the kind the message carries; a malformed option fails the
    /// whole message, as it does at a receiver.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Packet<&T>) -> Result<Repr> {
        packet.check_len()?;
        let ty = packet.msg_type();
        let wanted = match ty {
            Message::NEIGHBOR_ADVERT => NdiscOptionType::TARGET_LINK_LAYER_ADDR,
            _ => NdiscOptionType::SOURCE_LINK_LAYER_ADDR,
        };
        let mut lladdr = None;
        for option in packet.options() {
            let option = option?;
            if option.kind() == wanted && lladdr.is_none() {
                lladdr = Some(option.link_layer_addr().ok_or(WireError::malformed(
                    "NDP link-layer address option (want 8 bytes on Ethernet)",
                ))?);
            }
        }
        let target = packet.target_addr().unwrap_or(Ipv6Addr::UNSPECIFIED);
        Ok(match ty {
            Message::ROUTER_SOLICIT => Repr::RouterSolicit { lladdr },
            Message::NEIGHBOR_SOLICIT => Repr::NeighborSolicit { target, lladdr },
            Message::NEIGHBOR_ADVERT => Repr::NeighborAdvert {
                flags: packet.neighbor_flags().unwrap_or_default(),
                target,
                lladdr,
            },
            msg_type => Repr::Other {
                msg_type,
                code: packet.msg_code(),
            },
        })
    }

    /// Bytes [`Repr::emit`] writes.
    pub const fn buffer_len(&self) -> usize {
        let (fixed, lladdr) = match self {
            Repr::RouterSolicit { lladdr } => (8, lladdr.is_some()),
            Repr::NeighborSolicit { lladdr, .. } | Repr::NeighborAdvert { lladdr, .. } => {
                (field::TARGET.end, lladdr.is_some())
            }
            Repr::Other { .. } => (HEADER_LEN, false),
        };
        if lladdr {
            fixed + LINK_LAYER_OPTION_LEN
        } else {
            fixed
        }
    }

    /// Writes the message with a zero checksum (call
    /// [`Packet::fill_checksum`] afterwards). The buffer must hold
    /// [`Repr::buffer_len`] bytes.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) {
        let (ty, option) = match *self {
            Repr::RouterSolicit { lladdr } => {
                packet.buffer.as_mut()[HEADER_LEN..8].fill(0);
                (
                    Message::ROUTER_SOLICIT,
                    lladdr.map(|m| (NdiscOptionType::SOURCE_LINK_LAYER_ADDR, m)),
                )
            }
            Repr::NeighborSolicit { target, lladdr } => {
                packet.set_neighbor_flags(NeighborFlags::NONE);
                packet.set_target_addr(target);
                (
                    Message::NEIGHBOR_SOLICIT,
                    lladdr.map(|m| (NdiscOptionType::SOURCE_LINK_LAYER_ADDR, m)),
                )
            }
            Repr::NeighborAdvert {
                flags,
                target,
                lladdr,
            } => {
                packet.set_neighbor_flags(NeighborFlags(flags.0 & 0xe0));
                packet.set_target_addr(target);
                (
                    Message::NEIGHBOR_ADVERT,
                    lladdr.map(|m| (NdiscOptionType::TARGET_LINK_LAYER_ADDR, m)),
                )
            }
            Repr::Other { msg_type, code } => {
                packet.set_msg_type(msg_type);
                packet.set_msg_code(code);
                packet.set_checksum(0);
                return;
            }
        };
        packet.set_msg_type(ty);
        packet.set_msg_code(0);
        packet.set_checksum(0);
        if let (Some((kind, mac)), Some(fixed)) = (option, ty.ndisc_fixed_len()) {
            let o = &mut packet.buffer.as_mut()[fixed..fixed + LINK_LAYER_OPTION_LEN];
            o[option_field::TYPE] = kind.0;
            o[option_field::LENGTH] = 1;
            o[option_field::DATA..].copy_from_slice(&mac.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0x42, 0xaff, 0xfe00, 0x101);
    const DST: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 1, 0xff00, 0x102);
    const MAC: MacAddr = MacAddr([0x02, 0x42, 0x0a, 0x00, 0x01, 0x01]);

    fn emit(repr: &Repr) -> Vec<u8> {
        let mut buf = vec![0xaa; repr.buffer_len()];
        let mut p = Packet::new_unchecked(&mut buf[..]);
        repr.emit(&mut p);
        p.fill_checksum(SRC, DST);
        buf
    }

    #[test]
    fn neighbour_messages_round_trip() {
        for repr in [
            Repr::NeighborSolicit {
                target: "fd00::1:2".parse().unwrap(),
                lladdr: Some(MAC),
            },
            Repr::NeighborSolicit {
                target: "fd00::1:2".parse().unwrap(),
                lladdr: None,
            },
            Repr::NeighborAdvert {
                flags: NeighborFlags::SOLICITED | NeighborFlags::OVERRIDE,
                target: "fd00::1:1".parse().unwrap(),
                lladdr: Some(MAC),
            },
            Repr::RouterSolicit { lladdr: Some(MAC) },
            Repr::RouterSolicit { lladdr: None },
        ] {
            let buf = emit(&repr);
            let p = Packet::new_checked(&buf[..]).unwrap();
            assert_eq!(Repr::parse(&p).unwrap(), repr);
            assert!(p.verify_checksum(SRC, DST));
            assert!(!p.verify_checksum(SRC, Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1)));
        }
    }

    #[test]
    fn the_layout_matches_etherparse() {
        let repr = Repr::NeighborAdvert {
            flags: NeighborFlags::ROUTER | NeighborFlags::OVERRIDE,
            target: "fd00::1:1".parse().unwrap(),
            lladdr: Some(MAC),
        };
        let buf = emit(&repr);
        let h = etherparse::Icmpv6Slice::from_slice(&buf).unwrap();
        match h.icmp_type() {
            etherparse::Icmpv6Type::NeighborAdvertisement(na) => {
                assert!(na.router && na.r#override && !na.solicited);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            h.checksum(),
            Packet::new_checked(&buf[..]).unwrap().checksum()
        );
        assert!(h
            .icmp_type()
            .calc_checksum(SRC.octets(), DST.octets(), h.payload())
            .is_ok_and(|c| c == h.checksum()));
        assert_eq!(
            &buf[8..24],
            &"fd00::1:1".parse::<Ipv6Addr>().unwrap().octets()
        );
        assert_eq!(&buf[24..32], &[2, 1, 0x02, 0x42, 0x0a, 0x00, 0x01, 0x01]);
    }

    #[test]
    fn short_neighbour_messages_are_truncated() {
        let buf = emit(&Repr::NeighborAdvert {
            flags: NeighborFlags::NONE,
            target: SRC,
            lladdr: None,
        });
        for cut in [0, 3, 4, 23] {
            assert_eq!(
                Packet::new_checked(&buf[..cut]).unwrap_err(),
                WireError::Truncated,
                "{cut}"
            );
        }
        let mut ra = [0u8; 15];
        ra[0] = Message::ROUTER_ADVERT.0;
        assert_eq!(
            Packet::new_checked(&ra[..]).unwrap_err(),
            WireError::Truncated
        );
        // Other messages need only their header.
        let echo = [Message::ECHO_REQUEST.0, 0, 0, 0];
        let p = Packet::new_checked(&echo[..]).unwrap();
        assert_eq!(p.target_addr(), None);
        assert_eq!(p.neighbor_flags(), None);
        assert_eq!(p.options().count(), 0);
    }

    #[test]
    fn options_stop_at_a_zero_length_or_an_overrun() {
        let mut buf = emit(&Repr::NeighborSolicit {
            target: SRC,
            lladdr: Some(MAC),
        });
        buf.extend_from_slice(&[3, 0, 0, 0, 0, 0, 0, 0]);
        let p = Packet::new_checked(&buf[..]).unwrap();
        let got: Vec<_> = p.options().collect();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].unwrap().link_layer_addr(), Some(MAC));
        assert!(matches!(got[1], Err(WireError::Malformed { .. })));
        assert!(Repr::parse(&p).is_err());

        let mut long = buf[..32].to_vec();
        long.extend_from_slice(&[5, 2, 0, 0]);
        let p = Packet::new_checked(&long[..]).unwrap();
        let got: Vec<_> = p.options().collect();
        assert_eq!(got[1], Err(WireError::Truncated));
        assert_eq!(got.len(), 2);
        let odd = [5u8];
        assert_eq!(
            NdiscOptions::new(&odd).collect::<Vec<_>>(),
            vec![Err(WireError::Truncated)]
        );
    }

    #[test]
    fn a_link_layer_option_of_another_size_has_no_mac() {
        let mut buf = emit(&Repr::NeighborSolicit {
            target: SRC,
            lladdr: None,
        });
        buf.extend_from_slice(&[1, 2, 0x02, 0x42, 0x0a, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0]);
        let p = Packet::new_checked(&buf[..]).unwrap();
        let opt = p.options().next().unwrap().unwrap();
        assert_eq!(opt.kind(), NdiscOptionType::SOURCE_LINK_LAYER_ADDR);
        assert_eq!(opt.data().len(), 14);
        assert_eq!(opt.link_layer_addr(), None);
        assert!(matches!(Repr::parse(&p), Err(WireError::Malformed { .. })));
    }
}
