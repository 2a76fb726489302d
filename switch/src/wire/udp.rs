//! UDP headers (RFC 768): the carrier of VXLAN.

use super::{checksum, Field, Rest, Result, WireError};
use std::net::Ipv4Addr;

/// Byte offsets of the UDP header fields.
pub mod field {
    use super::{Field, Rest};
    /// Source port.
    pub const SRC_PORT: Field = 0..2;
    /// Destination port.
    pub const DST_PORT: Field = 2..4;
    /// Length of header and payload.
    pub const LENGTH: Field = 4..6;
    /// Checksum (0 = none, allowed over IPv4 and for VXLAN).
    pub const CHECKSUM: Field = 6..8;
    /// Payload.
    pub const PAYLOAD: Rest = 8..;
}

/// Length of the UDP header.
pub const HEADER_LEN: usize = field::PAYLOAD.start;

/// A read/write view of a UDP datagram.
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
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Ensures the header fits and the length field covers the header and
    /// lies within the buffer.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        let announced = usize::from(self.len());
        if announced < HEADER_LEN {
            return Err(WireError::malformed("UDP length shorter than its header"));
        }
        if announced > len {
            return Err(WireError::Truncated);
        }
        Ok(())
    }

    /// Gives the buffer back.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Source port.
    pub fn src_port(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::SRC_PORT])
    }

    /// Destination port.
    pub fn dst_port(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::DST_PORT])
    }

    /// Length of header and payload.
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::LENGTH])
    }

    /// Checksum field.
    pub fn checksum(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::CHECKSUM])
    }

    /// True when the checksum is absent (zero) or correct for an IPv4
    /// pseudo-header with these addresses.
    pub fn verify_checksum_v4(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        if self.checksum() == 0 {
            return true;
        }
        let datagram = &self.buffer.as_ref()[..usize::from(self.len())];
        let pseudo = checksum::pseudo_header_v4(src, dst, 17, self.len());
        checksum::combine(&[pseudo, checksum::sum(datagram)]) == 0xffff
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Packet<&'a T> {
    /// The payload, up to the length field.
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer.as_ref()[HEADER_LEN..usize::from(self.len())]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the source port.
    pub fn set_src_port(&mut self, v: u16) {
        self.buffer.as_mut()[field::SRC_PORT].copy_from_slice(&v.to_be_bytes());
    }

    /// Sets the destination port.
    pub fn set_dst_port(&mut self, v: u16) {
        self.buffer.as_mut()[field::DST_PORT].copy_from_slice(&v.to_be_bytes());
    }

    /// Sets the length field.
    pub fn set_len(&mut self, v: u16) {
        self.buffer.as_mut()[field::LENGTH].copy_from_slice(&v.to_be_bytes());
    }

    /// Sets the checksum field.
    pub fn set_checksum(&mut self, v: u16) {
        self.buffer.as_mut()[field::CHECKSUM].copy_from_slice(&v.to_be_bytes());
    }

    /// Computes the checksum over an IPv4 pseudo-header, header and payload
    /// (a computed zero is sent as 0xffff, per RFC 768).
    pub fn fill_checksum_v4(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        self.set_checksum(0);
        let len = self.len();
        let datagram = &self.buffer.as_ref()[..usize::from(len)];
        let pseudo = checksum::pseudo_header_v4(src, dst, 17, len);
        let sum = checksum::finish(checksum::combine(&[pseudo, checksum::sum(datagram)]));
        self.set_checksum(if sum == 0 { 0xffff } else { sum });
    }

    /// The payload, writable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = usize::from(self.len());
        &mut self.buffer.as_mut()[HEADER_LEN..end]
    }
}

/// A UDP header as a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Repr {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Payload length in bytes.
    pub payload_len: usize,
}

impl Repr {
    /// Reads a datagram header (the checksum is the caller's business, as
    /// only the caller knows the IP addresses).
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Packet<&T>) -> Result<Repr> {
        packet.check_len()?;
        Ok(Repr {
            src_port: packet.src_port(),
            dst_port: packet.dst_port(),
            payload_len: usize::from(packet.len()) - HEADER_LEN,
        })
    }

    /// Header bytes [`Repr::emit`] writes.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the header with a zero checksum (call
    /// [`Packet::fill_checksum_v4`] afterwards to add one). A length that
    /// does not fit 16 bits is clamped.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) {
        packet.set_src_port(self.src_port);
        packet.set_dst_port(self.dst_port);
        packet.set_len(u16::try_from(HEADER_LEN + self.payload_len).unwrap_or(u16::MAX));
        packet.set_checksum(0);
    }
}

fn be16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    const DST: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

    fn datagram() -> Vec<u8> {
        let mut buf = vec![0u8; 13];
        let repr = Repr {
            src_port: 49152,
            dst_port: 4789,
            payload_len: 5,
        };
        let mut p = Packet::new_unchecked(&mut buf[..]);
        repr.emit(&mut p);
        p.payload_mut().copy_from_slice(b"hello");
        p.fill_checksum_v4(SRC, DST);
        buf
    }

    #[test]
    fn round_trip_and_checksum() {
        let buf = datagram();
        let p = Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(
            Repr::parse(&p).unwrap(),
            Repr {
                src_port: 49152,
                dst_port: 4789,
                payload_len: 5
            }
        );
        assert!(p.verify_checksum_v4(SRC, DST));
        assert!(!p.verify_checksum_v4(SRC, Ipv4Addr::new(10, 0, 0, 3)));
        assert_eq!(p.payload(), b"hello");
    }

    #[test]
    fn etherparse_computes_the_same_checksum() {
        let buf = datagram();
        let h = etherparse::UdpHeader {
            source_port: 49152,
            destination_port: 4789,
            length: 13,
            checksum: 0,
        };
        let expected = h
            .calc_checksum_ipv4_raw(SRC.octets(), DST.octets(), b"hello")
            .unwrap();
        assert_eq!(Packet::new_checked(&buf[..]).unwrap().checksum(), expected);
    }

    #[test]
    fn truncated_and_malformed() {
        let buf = datagram();
        assert_eq!(
            Packet::new_checked(&buf[..7]).unwrap_err(),
            WireError::Truncated
        );
        assert_eq!(
            Packet::new_checked(&buf[..12]).unwrap_err(),
            WireError::Truncated
        );
        let mut b = datagram();
        b[4..6].copy_from_slice(&7u16.to_be_bytes());
        assert!(matches!(
            Packet::new_checked(&b[..]),
            Err(WireError::Malformed { .. })
        ));
    }
}
