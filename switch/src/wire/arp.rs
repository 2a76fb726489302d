//! ARP (RFC 826) for Ethernet hardware and IPv4 protocol addresses, the only
//! combination a container network carries.
//!
//! ```text
//! htype(2)=1 ptype(2)=0x0800 hlen(1)=6 plen(1)=4 oper(2)
//! sha(6) spa(4) tha(6) tpa(4)
//! ```

use super::{Field, Result, WireError};
use crate::mac::MacAddr;
use core::fmt;
use std::net::Ipv4Addr;

/// Byte offsets of the ARP fields (Ethernet/IPv4 layout).
pub mod field {
    use super::Field;
    /// Hardware type (1 = Ethernet).
    pub const HTYPE: Field = 0..2;
    /// Protocol type (0x0800 = IPv4).
    pub const PTYPE: Field = 2..4;
    /// Hardware address length.
    pub const HLEN: usize = 4;
    /// Protocol address length.
    pub const PLEN: usize = 5;
    /// Operation.
    pub const OPER: Field = 6..8;
    /// Sender hardware address.
    pub const SHA: Field = 8..14;
    /// Sender protocol address.
    pub const SPA: Field = 14..18;
    /// Target hardware address.
    pub const THA: Field = 18..24;
    /// Target protocol address.
    pub const TPA: Field = 24..28;
}

/// Length of an Ethernet/IPv4 ARP packet.
pub const PACKET_LEN: usize = field::TPA.end;
/// Hardware type for Ethernet.
pub const HTYPE_ETHERNET: u16 = 1;
/// Protocol type for IPv4.
pub const PTYPE_IPV4: u16 = 0x0800;

/// What an ARP packet asks or tells.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Operation {
    /// "Who has TPA? Tell SPA."
    Request,
    /// "SPA is at SHA."
    Reply,
    /// Any other code (RARP, InARP, ...), passed through untouched.
    Unknown(u16),
}

impl From<u16> for Operation {
    fn from(v: u16) -> Operation {
        match v {
            1 => Operation::Request,
            2 => Operation::Reply,
            other => Operation::Unknown(other),
        }
    }
}

impl From<Operation> for u16 {
    fn from(op: Operation) -> u16 {
        match op {
            Operation::Request => 1,
            Operation::Reply => 2,
            Operation::Unknown(other) => other,
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Operation::Request => f.write_str("request"),
            Operation::Reply => f.write_str("reply"),
            Operation::Unknown(v) => write!(f, "operation {v}"),
        }
    }
}

/// A read/write view of an ARP packet.
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

    /// Ensures this is a complete Ethernet/IPv4 ARP packet: other hardware
    /// or protocol types (or address lengths) are malformed here, since
    /// nothing on a container network sends them.
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        let data = self.buffer.as_ref();
        if data.len() < field::OPER.start {
            return Err(WireError::Truncated);
        }
        if self.hardware_type() != HTYPE_ETHERNET || data[field::HLEN] != 6 {
            return Err(WireError::malformed(
                "ARP hardware type (want Ethernet, 6-byte addresses)",
            ));
        }
        if self.protocol_type() != PTYPE_IPV4 || data[field::PLEN] != 4 {
            return Err(WireError::malformed(
                "ARP protocol type (want IPv4, 4-byte addresses)",
            ));
        }
        if data.len() < PACKET_LEN {
            return Err(WireError::Truncated);
        }
        Ok(())
    }

    /// Gives the buffer back.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Hardware type.
    pub fn hardware_type(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::HTYPE])
    }

    /// Protocol type.
    pub fn protocol_type(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::PTYPE])
    }

    /// Hardware address length.
    pub fn hardware_len(&self) -> u8 {
        self.buffer.as_ref()[field::HLEN]
    }

    /// Protocol address length.
    pub fn protocol_len(&self) -> u8 {
        self.buffer.as_ref()[field::PLEN]
    }

    /// Operation.
    pub fn operation(&self) -> Operation {
        be16(&self.buffer.as_ref()[field::OPER]).into()
    }

    /// Sender hardware address.
    #[inline]
    pub fn sender_hardware_addr(&self) -> MacAddr {
        mac(&self.buffer.as_ref()[field::SHA])
    }

    /// Sender protocol address.
    #[inline]
    pub fn sender_protocol_addr(&self) -> Ipv4Addr {
        ipv4(&self.buffer.as_ref()[field::SPA])
    }

    /// Target hardware address.
    pub fn target_hardware_addr(&self) -> MacAddr {
        mac(&self.buffer.as_ref()[field::THA])
    }

    /// Target protocol address.
    pub fn target_protocol_addr(&self) -> Ipv4Addr {
        ipv4(&self.buffer.as_ref()[field::TPA])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets hardware type.
    pub fn set_hardware_type(&mut self, v: u16) {
        self.buffer.as_mut()[field::HTYPE].copy_from_slice(&v.to_be_bytes());
    }

    /// Sets protocol type.
    pub fn set_protocol_type(&mut self, v: u16) {
        self.buffer.as_mut()[field::PTYPE].copy_from_slice(&v.to_be_bytes());
    }

    /// Sets hardware address length.
    pub fn set_hardware_len(&mut self, v: u8) {
        self.buffer.as_mut()[field::HLEN] = v;
    }

    /// Sets protocol address length.
    pub fn set_protocol_len(&mut self, v: u8) {
        self.buffer.as_mut()[field::PLEN] = v;
    }

    /// Sets the operation.
    pub fn set_operation(&mut self, op: Operation) {
        self.buffer.as_mut()[field::OPER].copy_from_slice(&u16::from(op).to_be_bytes());
    }

    /// Sets the sender hardware address.
    pub fn set_sender_hardware_addr(&mut self, addr: MacAddr) {
        self.buffer.as_mut()[field::SHA].copy_from_slice(&addr.0);
    }

    /// Sets the sender protocol address.
    pub fn set_sender_protocol_addr(&mut self, addr: Ipv4Addr) {
        self.buffer.as_mut()[field::SPA].copy_from_slice(&addr.octets());
    }

    /// Sets the target hardware address.
    pub fn set_target_hardware_addr(&mut self, addr: MacAddr) {
        self.buffer.as_mut()[field::THA].copy_from_slice(&addr.0);
    }

    /// Sets the target protocol address.
    pub fn set_target_protocol_addr(&mut self, addr: Ipv4Addr) {
        self.buffer.as_mut()[field::TPA].copy_from_slice(&addr.octets());
    }
}

/// An Ethernet/IPv4 ARP packet as a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Repr {
    /// Operation.
    pub operation: Operation,
    /// Sender hardware address.
    pub source_hardware_addr: MacAddr,
    /// Sender protocol address (0.0.0.0 in an RFC 5227 probe).
    pub source_protocol_addr: Ipv4Addr,
    /// Target hardware address (zero in a request).
    pub target_hardware_addr: MacAddr,
    /// Target protocol address.
    pub target_protocol_addr: Ipv4Addr,
}

impl Repr {
    /// Reads a packet.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Packet<&T>) -> Result<Repr> {
        packet.check_len()?;
        Ok(Repr {
            operation: packet.operation(),
            source_hardware_addr: packet.sender_hardware_addr(),
            source_protocol_addr: packet.sender_protocol_addr(),
            target_hardware_addr: packet.target_hardware_addr(),
            target_protocol_addr: packet.target_protocol_addr(),
        })
    }

    /// Bytes [`Repr::emit`] writes.
    pub const fn buffer_len(&self) -> usize {
        PACKET_LEN
    }

    /// Writes the packet; the buffer must hold [`PACKET_LEN`] bytes.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) {
        packet.set_hardware_type(HTYPE_ETHERNET);
        packet.set_protocol_type(PTYPE_IPV4);
        packet.set_hardware_len(6);
        packet.set_protocol_len(4);
        packet.set_operation(self.operation);
        packet.set_sender_hardware_addr(self.source_hardware_addr);
        packet.set_sender_protocol_addr(self.source_protocol_addr);
        packet.set_target_hardware_addr(self.target_hardware_addr);
        packet.set_target_protocol_addr(self.target_protocol_addr);
    }
}

fn be16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}

fn mac(b: &[u8]) -> MacAddr {
    MacAddr([b[0], b[1], b[2], b[3], b[4], b[5]])
}

fn ipv4(b: &[u8]) -> Ipv4Addr {
    Ipv4Addr::new(b[0], b[1], b[2], b[3])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> Repr {
        Repr {
            operation: Operation::Request,
            source_hardware_addr: MacAddr([0x02, 0x42, 0xac, 0x12, 0, 2]),
            source_protocol_addr: Ipv4Addr::new(172, 18, 0, 2),
            target_hardware_addr: MacAddr::ZERO,
            target_protocol_addr: Ipv4Addr::new(172, 18, 0, 3),
        }
    }

    #[test]
    fn round_trip() {
        let mut buf = [0u8; PACKET_LEN];
        request().emit(&mut Packet::new_unchecked(&mut buf[..]));
        let p = Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(Repr::parse(&p).unwrap(), request());
        assert_eq!(p.hardware_len(), 6);
        assert_eq!(p.protocol_len(), 4);
    }

    #[test]
    fn etherparse_reads_what_we_emit() {
        let mut buf = [0u8; PACKET_LEN];
        request().emit(&mut Packet::new_unchecked(&mut buf[..]));
        let arp = etherparse::ArpPacketSlice::from_slice(&buf).unwrap();
        assert_eq!(arp.sender_hw_addr(), &request().source_hardware_addr.0);
        assert_eq!(arp.sender_protocol_addr(), &[172, 18, 0, 2]);
        assert_eq!(arp.target_protocol_addr(), &[172, 18, 0, 3]);
        assert_eq!(arp.operation().0, 1);
    }

    #[test]
    fn short_packets_are_truncated() {
        let mut buf = [0u8; PACKET_LEN];
        request().emit(&mut Packet::new_unchecked(&mut buf[..]));
        assert_eq!(
            Packet::new_checked(&buf[..27]).unwrap_err(),
            WireError::Truncated
        );
        assert_eq!(
            Packet::new_checked(&buf[..5]).unwrap_err(),
            WireError::Truncated
        );
    }

    #[test]
    fn non_ethernet_or_non_ipv4_is_malformed() {
        let mut buf = [0u8; PACKET_LEN];
        request().emit(&mut Packet::new_unchecked(&mut buf[..]));
        let mut bad = buf;
        bad[1] = 6; // IEEE 802 hardware
        assert!(matches!(
            Packet::new_checked(&bad[..]),
            Err(WireError::Malformed { .. })
        ));
        let mut bad = buf;
        bad[field::PLEN] = 16;
        assert!(matches!(
            Packet::new_checked(&bad[..]),
            Err(WireError::Malformed { .. })
        ));
    }

    #[test]
    fn unknown_operations_survive() {
        assert_eq!(Operation::from(9), Operation::Unknown(9));
        assert_eq!(u16::from(Operation::Unknown(9)), 9);
    }
}
