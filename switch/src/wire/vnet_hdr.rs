//! The virtio-net header (`struct virtio_net_hdr`) that a TAP device opened
//! with `IFF_VNET_HDR` puts in front of every frame, carrying checksum and
//! segmentation offload state (GSO) between the kernel and us.
//!
//! ```text
//! flags(1) gso_type(1) hdr_len(2) gso_size(2) csum_start(2) csum_offset(2)
//! ```
//!
//! **Endianness.** The 16-bit fields are read and written little-endian.
//! A legacy TAP device uses the host's native byte order unless
//! `TUNSETVNETLE`/`TUNSETVNETBE` says otherwise; we leave those unset and
//! run on little-endian hosts (x86-64, aarch64), where native order and the
//! virtio 1.0 order coincide. A big-endian host would have to set
//! `TUNSETVNETLE` for this module to stay correct.
//!
//! **Size.** This is the 10-byte header (the TAP default,
//! `TUNSETVNETHDRSZ` unset); the 12-byte `virtio_net_hdr_mrg_rxbuf` adds a
//! `num_buffers` field that TAP leaves zero, and is not used here.

use super::{Field, Rest, Result, WireError};

/// Byte offsets of the virtio-net header fields.
pub mod field {
    use super::{Field, Rest};
    /// Flags (`VIRTIO_NET_HDR_F_*`).
    pub const FLAGS: usize = 0;
    /// GSO type (`VIRTIO_NET_HDR_GSO_*`).
    pub const GSO_TYPE: usize = 1;
    /// Length of the headers to replicate per segment.
    pub const HDR_LEN: Field = 2..4;
    /// Payload bytes per segment.
    pub const GSO_SIZE: Field = 4..6;
    /// Where checksumming starts.
    pub const CSUM_START: Field = 6..8;
    /// Where, after `csum_start`, the checksum is stored.
    pub const CSUM_OFFSET: Field = 8..10;
    /// The Ethernet frame.
    pub const PAYLOAD: Rest = 10..;
}

/// Length of the header.
pub const HEADER_LEN: usize = field::PAYLOAD.start;
/// Flag: the checksum at `csum_start + csum_offset` must be completed.
pub const FLAG_NEEDS_CSUM: u8 = 1;
/// Flag: the checksum has been validated (receive side).
pub const FLAG_DATA_VALID: u8 = 2;
/// Flag: `csum_start`/`csum_offset` carry coalescing info (RSC).
pub const FLAG_RSC_INFO: u8 = 4;
const KNOWN_FLAGS: u8 = FLAG_NEEDS_CSUM | FLAG_DATA_VALID | FLAG_RSC_INFO;
/// GSO type bit: the segments carry ECN (TCP's CWR).
pub const GSO_ECN: u8 = 0x80;

/// Which kind of segmentation offload a frame asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GsoType {
    /// A single frame: no segmentation.
    None,
    /// TCP over IPv4 (TSO).
    TcpV4,
    /// UDP fragmentation offload (UFO, deprecated but still defined).
    Udp,
    /// TCP over IPv6 (TSO6).
    TcpV6,
    /// UDP segmentation offload (USO).
    UdpL4,
}

impl GsoType {
    /// The kernel's numeric code.
    pub const fn code(self) -> u8 {
        match self {
            GsoType::None => 0,
            GsoType::TcpV4 => 1,
            GsoType::Udp => 3,
            GsoType::TcpV6 => 4,
            GsoType::UdpL4 => 5,
        }
    }

    /// Decodes a code without the ECN bit.
    pub const fn from_code(code: u8) -> Option<GsoType> {
        match code {
            0 => Some(GsoType::None),
            1 => Some(GsoType::TcpV4),
            3 => Some(GsoType::Udp),
            4 => Some(GsoType::TcpV6),
            5 => Some(GsoType::UdpL4),
            _ => None,
        }
    }
}

/// A read/write view of a virtio-net header and the frame after it.
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

    /// Ensures the 10-byte header is present (field values are checked by
    /// [`Repr::parse`]).
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        Ok(())
    }

    /// Gives the buffer back.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Flags byte.
    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[field::FLAGS]
    }

    /// GSO type byte, ECN bit included.
    pub fn gso_type(&self) -> u8 {
        self.buffer.as_ref()[field::GSO_TYPE]
    }

    /// Header length hint.
    pub fn hdr_len(&self) -> u16 {
        le16(&self.buffer.as_ref()[field::HDR_LEN])
    }

    /// Segment size.
    pub fn gso_size(&self) -> u16 {
        le16(&self.buffer.as_ref()[field::GSO_SIZE])
    }

    /// Checksum start offset (from the start of the Ethernet frame).
    pub fn csum_start(&self) -> u16 {
        le16(&self.buffer.as_ref()[field::CSUM_START])
    }

    /// Checksum field offset after `csum_start`.
    pub fn csum_offset(&self) -> u16 {
        le16(&self.buffer.as_ref()[field::CSUM_OFFSET])
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Header<&'a T> {
    /// The Ethernet frame after the header.
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer.as_ref()[field::PAYLOAD]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Header<T> {
    /// Sets the flags byte.
    pub fn set_flags(&mut self, v: u8) {
        self.buffer.as_mut()[field::FLAGS] = v;
    }

    /// Sets the GSO type byte.
    pub fn set_gso_type(&mut self, v: u8) {
        self.buffer.as_mut()[field::GSO_TYPE] = v;
    }

    /// Sets the header length hint.
    pub fn set_hdr_len(&mut self, v: u16) {
        self.buffer.as_mut()[field::HDR_LEN].copy_from_slice(&v.to_le_bytes());
    }

    /// Sets the segment size.
    pub fn set_gso_size(&mut self, v: u16) {
        self.buffer.as_mut()[field::GSO_SIZE].copy_from_slice(&v.to_le_bytes());
    }

    /// Sets the checksum start.
    pub fn set_csum_start(&mut self, v: u16) {
        self.buffer.as_mut()[field::CSUM_START].copy_from_slice(&v.to_le_bytes());
    }

    /// Sets the checksum offset.
    pub fn set_csum_offset(&mut self, v: u16) {
        self.buffer.as_mut()[field::CSUM_OFFSET].copy_from_slice(&v.to_le_bytes());
    }

    /// The frame after the header, writable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::PAYLOAD]
    }
}

/// A virtio-net header as a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Repr {
    /// The checksum at `csum_start + csum_offset` is partial and must be
    /// completed before the frame leaves on a device without offload.
    pub needs_csum: bool,
    /// The kernel already validated the checksum.
    pub data_valid: bool,
    /// `csum_start`/`csum_offset` carry receive-coalescing info.
    pub rsc_info: bool,
    /// Segmentation requested.
    pub gso: GsoType,
    /// The ECN bit of the GSO type.
    pub ecn: bool,
    /// Length of the headers copied into each segment (a hint).
    pub hdr_len: u16,
    /// Payload bytes per segment (0 when `gso` is `None`).
    pub gso_size: u16,
    /// Checksum start, from the start of the Ethernet frame.
    pub csum_start: u16,
    /// Checksum field offset after `csum_start`.
    pub csum_offset: u16,
}

impl Repr {
    /// A header for a plain frame: no offloads.
    pub const NONE: Repr = Repr {
        needs_csum: false,
        data_valid: false,
        rsc_info: false,
        gso: GsoType::None,
        ecn: false,
        hdr_len: 0,
        gso_size: 0,
        csum_start: 0,
        csum_offset: 0,
    };

    /// Reads a header, refusing unknown flag bits, unknown GSO types, GSO
    /// without a segment size and ECN on anything but TCP.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(header: &Header<&T>) -> Result<Repr> {
        header.check_len()?;
        let flags = header.flags();
        if flags & !KNOWN_FLAGS != 0 {
            return Err(WireError::malformed("virtio-net header flags"));
        }
        let raw = header.gso_type();
        let gso = GsoType::from_code(raw & !GSO_ECN)
            .ok_or(WireError::malformed("virtio-net GSO type"))?;
        let ecn = raw & GSO_ECN != 0;
        if ecn && !matches!(gso, GsoType::TcpV4 | GsoType::TcpV6) {
            return Err(WireError::malformed("virtio-net ECN bit without TCP GSO"));
        }
        let gso_size = header.gso_size();
        if gso != GsoType::None && gso_size == 0 {
            return Err(WireError::malformed("virtio-net GSO size zero"));
        }
        Ok(Repr {
            needs_csum: flags & FLAG_NEEDS_CSUM != 0,
            data_valid: flags & FLAG_DATA_VALID != 0,
            rsc_info: flags & FLAG_RSC_INFO != 0,
            gso,
            ecn,
            hdr_len: header.hdr_len(),
            gso_size,
            csum_start: header.csum_start(),
            csum_offset: header.csum_offset(),
        })
    }

    /// Checks the offsets against the frame that follows the header: a
    /// partial checksum must lie inside it. Call before acting on
    /// `needs_csum`, since the kernel trusts this value and so must we not.
    pub fn check_frame_len(&self, frame_len: usize) -> Result<()> {
        if self.needs_csum {
            let end = usize::from(self.csum_start) + usize::from(self.csum_offset) + 2;
            if end > frame_len {
                return Err(WireError::malformed(
                    "virtio-net checksum offset past the frame",
                ));
            }
        }
        Ok(())
    }

    /// Bytes [`Repr::emit`] writes.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the header; the buffer must hold [`HEADER_LEN`] bytes.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, header: &mut Header<T>) {
        let flags = (u8::from(self.needs_csum) * FLAG_NEEDS_CSUM)
            | (u8::from(self.data_valid) * FLAG_DATA_VALID)
            | (u8::from(self.rsc_info) * FLAG_RSC_INFO);
        header.set_flags(flags);
        header.set_gso_type(self.gso.code() | (u8::from(self.ecn) * GSO_ECN));
        header.set_hdr_len(self.hdr_len);
        header.set_gso_size(self.gso_size);
        header.set_csum_start(self.csum_start);
        header.set_csum_offset(self.csum_offset);
    }
}

fn le16(b: &[u8]) -> u16 {
    u16::from_le_bytes([b[0], b[1]])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tso() -> Repr {
        Repr {
            needs_csum: true,
            data_valid: false,
            rsc_info: false,
            gso: GsoType::TcpV4,
            ecn: true,
            hdr_len: 66,
            gso_size: 1448,
            csum_start: 34,
            csum_offset: 16,
        }
    }

    #[test]
    fn round_trip_little_endian() {
        let mut buf = [0u8; 12];
        tso().emit(&mut Header::new_unchecked(&mut buf[..]));
        // flags, gso_type|ECN, hdr_len=66 LE, gso_size=1448 LE, 34, 16
        assert_eq!(&buf[..10], &[1, 0x81, 66, 0, 0xa8, 0x05, 34, 0, 16, 0]);
        let h = Header::new_checked(&buf[..]).unwrap();
        assert_eq!(Repr::parse(&h).unwrap(), tso());
        assert_eq!(h.payload().len(), 2);
    }

    #[test]
    fn plain_header_is_all_zero() {
        let mut buf = [0xffu8; 10];
        Repr::NONE.emit(&mut Header::new_unchecked(&mut buf[..]));
        assert_eq!(buf, [0; 10]);
        assert_eq!(
            Repr::parse(&Header::new_checked(&buf[..]).unwrap()).unwrap(),
            Repr::NONE
        );
    }

    #[test]
    fn short_header_is_truncated() {
        assert_eq!(
            Header::new_checked(&[0u8; 9][..]).unwrap_err(),
            WireError::Truncated
        );
    }

    #[test]
    fn unknown_values_are_malformed() {
        let parse = |b: [u8; 10]| Repr::parse(&Header::new_checked(&b[..]).unwrap());
        assert!(parse([8, 0, 0, 0, 0, 0, 0, 0, 0, 0]).is_err()); // unknown flag
        assert!(parse([0, 2, 0, 0, 0, 0, 0, 0, 0, 0]).is_err()); // unknown gso type
        assert!(parse([0, 1, 0, 0, 0, 0, 0, 0, 0, 0]).is_err()); // TSO with size 0
        assert!(parse([0, 0x83, 0, 0, 1, 0, 0, 0, 0, 0]).is_err()); // ECN on UFO
        assert!(parse([2, 0, 0, 0, 0, 0, 0, 0, 0, 0]).is_ok()); // data valid
    }

    #[test]
    fn checksum_offsets_must_lie_inside_the_frame() {
        let r = tso();
        assert!(r.check_frame_len(52).is_ok());
        assert!(r.check_frame_len(51).is_err());
        assert!(Repr::NONE.check_frame_len(0).is_ok());
    }
}
