//! VXLAN headers (RFC 7348): how a segment's frames travel between hosts.
//!
//! ```text
//! flags(1) reserved(3) VNI(3) reserved(1) | inner Ethernet frame
//! ```
//! Only the I flag (0x08) is defined; a header without it carries no valid
//! VNI, so it is malformed. This view ignores the reserved bits, as the RFC
//! asks of receivers, and writes them as zero; the tunnel's receive policy
//! (`crate::vxlan`) is stricter, as the Linux kernel is, and says why.

use super::{Field, Rest, Result, WireError};

/// Byte offsets of the VXLAN header fields.
pub mod field {
    use super::{Field, Rest};
    /// Flags; bit 0x08 (I) says the VNI is valid.
    pub const FLAGS: usize = 0;
    /// Reserved.
    pub const RESERVED0: Field = 1..4;
    /// VXLAN network identifier (24 bits).
    pub const VNI: Field = 4..7;
    /// Reserved.
    pub const RESERVED1: usize = 7;
    /// The inner Ethernet frame.
    pub const PAYLOAD: Rest = 8..;
}

/// Length of the VXLAN header.
pub const HEADER_LEN: usize = field::PAYLOAD.start;
/// The I flag: the VNI field is valid.
pub const FLAG_I: u8 = 0x08;
/// The IANA-assigned UDP destination port.
pub const UDP_PORT: u16 = 4789;
/// The largest VNI (24 bits).
pub const MAX_VNI: u32 = 0x00ff_ffff;

/// A read/write view of a VXLAN header and its inner frame.
#[derive(Debug, Clone)]
pub struct Header<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Header<T> {
    /// Wraps a buffer without checking it.
    pub const fn new_unchecked(buffer: T) -> Header<T> {
        Header { buffer }
    }

    /// Wraps a buffer after [`Header::check_len`].
    pub fn new_checked(buffer: T) -> Result<Header<T>> {
        let h = Self::new_unchecked(buffer);
        h.check_len()?;
        Ok(h)
    }

    /// Ensures the 8-byte header is present and has the I flag.
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        if self.flags() & FLAG_I == 0 {
            return Err(WireError::malformed("VXLAN flags (I flag clear)"));
        }
        Ok(())
    }

    /// Gives the buffer back.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The flags byte.
    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[field::FLAGS]
    }

    /// True when both reserved fields are zero, as senders must write
    /// them (the receive policy in `crate::vxlan` refuses anything else).
    pub fn reserved_clear(&self) -> bool {
        let data = self.buffer.as_ref();
        data[field::RESERVED0].iter().all(|&b| b == 0) && data[field::RESERVED1] == 0
    }

    /// The VXLAN network identifier.
    pub fn vni(&self) -> u32 {
        let b = &self.buffer.as_ref()[field::VNI];
        (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2])
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Header<&'a T> {
    /// The inner Ethernet frame.
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer.as_ref()[field::PAYLOAD]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Header<T> {
    /// Sets the flags byte.
    pub fn set_flags(&mut self, flags: u8) {
        self.buffer.as_mut()[field::FLAGS] = flags;
    }

    /// Sets the VNI (bits above 24 are dropped).
    pub fn set_vni(&mut self, vni: u32) {
        let b = vni.to_be_bytes();
        self.buffer.as_mut()[field::VNI].copy_from_slice(&b[1..4]);
    }

    /// Zeroes the reserved fields.
    pub fn clear_reserved(&mut self) {
        let data = self.buffer.as_mut();
        data[field::RESERVED0].fill(0);
        data[field::RESERVED1] = 0;
    }

    /// The inner frame, writable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::PAYLOAD]
    }
}

/// A VXLAN header as a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Repr {
    /// The VXLAN network identifier (24 bits; higher bits are not sent).
    pub vni: u32,
}

impl Repr {
    /// Reads a header.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(header: &Header<&T>) -> Result<Repr> {
        header.check_len()?;
        Ok(Repr { vni: header.vni() })
    }

    /// Bytes [`Repr::emit`] writes.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the header: I flag set, reserved fields zero. The buffer must
    /// hold [`HEADER_LEN`] bytes.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, header: &mut Header<T>) {
        header.set_flags(FLAG_I);
        header.clear_reserved();
        header.set_vni(self.vni & MAX_VNI);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let mut buf = [0xffu8; 10];
        Repr { vni: 0x12_3456 }.emit(&mut Header::new_unchecked(&mut buf[..]));
        assert_eq!(&buf[..8], &[0x08, 0, 0, 0, 0x12, 0x34, 0x56, 0]);
        let h = Header::new_checked(&buf[..]).unwrap();
        assert_eq!(Repr::parse(&h).unwrap(), Repr { vni: 0x12_3456 });
        assert_eq!(h.payload(), &[0xff, 0xff]);
    }

    #[test]
    fn reserved_bits_are_ignored_on_receipt() {
        let buf = [0xff, 0xff, 0xff, 0xff, 0, 0, 7, 0xff];
        assert_eq!(
            Repr::parse(&Header::new_checked(&buf[..]).unwrap())
                .unwrap()
                .vni,
            7
        );
    }

    #[test]
    fn missing_i_flag_is_malformed() {
        let buf = [0x00, 0, 0, 0, 0, 0, 7, 0];
        assert!(matches!(
            Header::new_checked(&buf[..]),
            Err(WireError::Malformed { .. })
        ));
    }

    #[test]
    fn short_header_is_truncated() {
        assert_eq!(
            Header::new_checked(&[0x08u8; 7][..]).unwrap_err(),
            WireError::Truncated
        );
    }

    #[test]
    fn vni_is_masked_to_24_bits() {
        let mut buf = [0u8; 8];
        Repr { vni: 0x0100_0001 }.emit(&mut Header::new_unchecked(&mut buf[..]));
        assert_eq!(Header::new_checked(&buf[..]).unwrap().vni(), 1);
    }
}
