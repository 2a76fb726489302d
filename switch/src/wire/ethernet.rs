//! Ethernet II frames, untagged or with one IEEE 802.1Q tag.
//!
//! ```text
//! untagged:  dst(6) src(6) ethertype(2) payload
//! tagged:    dst(6) src(6) 0x8100(2) TCI(2) ethertype(2) payload
//! ```
//! The frame check sequence is not part of the buffer: TAP devices and the
//! simulator hand frames over without it.

use super::{Field, Rest, Result, WireError};
use crate::mac::MacAddr;
use core::fmt;

/// Byte offsets of the Ethernet header fields.
pub mod field {
    use super::{Field, Rest};
    /// Destination MAC address.
    pub const DESTINATION: Field = 0..6;
    /// Source MAC address.
    pub const SOURCE: Field = 6..12;
    /// EtherType, or the 802.1Q TPID when the frame is tagged.
    pub const ETHERTYPE: Field = 12..14;
    /// Payload of an untagged frame.
    pub const PAYLOAD: Rest = 14..;
    /// Tag control information (PCP, DEI, VID) of a tagged frame.
    pub const TCI: Field = 14..16;
    /// EtherType of the payload of a tagged frame.
    pub const INNER_ETHERTYPE: Field = 16..18;
    /// Payload of a tagged frame.
    pub const TAGGED_PAYLOAD: Rest = 18..;
}

/// Length of an untagged Ethernet header.
pub const HEADER_LEN: usize = field::PAYLOAD.start;
/// Length of an Ethernet header with one 802.1Q tag.
pub const TAGGED_HEADER_LEN: usize = field::TAGGED_PAYLOAD.start;

/// An EtherType (or TPID) value, kept open so unknown protocols still pass
/// through the switch untouched.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EtherType(pub u16);

impl EtherType {
    /// IPv4.
    pub const IPV4: EtherType = EtherType(0x0800);
    /// ARP.
    pub const ARP: EtherType = EtherType(0x0806);
    /// IPv6.
    pub const IPV6: EtherType = EtherType(0x86dd);
    /// IEEE 802.1Q customer VLAN tag: the one tag this module parses.
    pub const VLAN: EtherType = EtherType(0x8100);
    /// IEEE 802.1ad service tag (QinQ outer tag).
    pub const QINQ: EtherType = EtherType(0x88a8);
    /// Pre-standard QinQ tag still seen in the wild.
    pub const QINQ_LEGACY: EtherType = EtherType(0x9100);

    /// True for any VLAN tag protocol identifier. The bridge uses it to
    /// refuse stacked tags from endpoint ports, which would otherwise hide
    /// the inner header from port security.
    pub const fn is_vlan_tpid(self) -> bool {
        matches!(self.0, 0x8100 | 0x88a8 | 0x9100)
    }
}

impl fmt::Display for EtherType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            EtherType::IPV4 => f.write_str("IPv4"),
            EtherType::ARP => f.write_str("ARP"),
            EtherType::IPV6 => f.write_str("IPv6"),
            EtherType::VLAN => f.write_str("802.1Q"),
            EtherType::QINQ => f.write_str("802.1ad"),
            EtherType::QINQ_LEGACY => f.write_str("QinQ(0x9100)"),
            EtherType(other) => write!(f, "0x{other:04x}"),
        }
    }
}

/// The decoded 802.1Q tag control information.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct VlanTag {
    /// Priority code point (3 bits).
    pub pcp: u8,
    /// Drop eligible indicator.
    pub dei: bool,
    /// VLAN identifier (12 bits; 0 means priority-tagged only).
    pub vid: u16,
}

impl VlanTag {
    /// Decodes a raw TCI.
    pub const fn from_tci(tci: u16) -> VlanTag {
        VlanTag {
            pcp: (tci >> 13) as u8,
            dei: tci & 0x1000 != 0,
            vid: tci & 0x0fff,
        }
    }

    /// Encodes the tag as a raw TCI; out-of-range `pcp`/`vid` bits are
    /// masked off.
    pub const fn to_tci(self) -> u16 {
        (((self.pcp & 0x7) as u16) << 13) | ((self.dei as u16) << 12) | (self.vid & 0x0fff)
    }
}

/// A read/write view of an Ethernet frame in a buffer.
#[derive(Debug, Clone)]
pub struct Frame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Frame<T> {
    /// Wraps a buffer without checking it; getters may panic on a short
    /// buffer. Use for buffers this code sized itself.
    pub const fn new_unchecked(buffer: T) -> Frame<T> {
        Frame { buffer }
    }

    /// Wraps a buffer after [`Frame::check_len`].
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Frame<T>> {
        let frame = Self::new_unchecked(buffer);
        frame.check_len()?;
        Ok(frame)
    }

    /// Ensures the buffer holds the whole header: 14 bytes, or 18 when the
    /// frame carries an 802.1Q tag.
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        let data = self.buffer.as_ref();
        if data.len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        if self.ethertype() == EtherType::VLAN && data.len() < TAGGED_HEADER_LEN {
            return Err(WireError::Truncated);
        }
        Ok(())
    }

    /// Gives the buffer back.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The destination MAC address.
    #[inline]
    pub fn dst_addr(&self) -> MacAddr {
        mac_at(self.buffer.as_ref(), field::DESTINATION.start)
    }

    /// The source MAC address.
    #[inline]
    pub fn src_addr(&self) -> MacAddr {
        mac_at(self.buffer.as_ref(), field::SOURCE.start)
    }

    /// The outer EtherType: the payload's protocol, or 0x8100 when tagged.
    #[inline]
    pub fn ethertype(&self) -> EtherType {
        EtherType(be16(self.buffer.as_ref(), field::ETHERTYPE.start))
    }

    /// True when the frame carries an 802.1Q tag.
    #[inline]
    pub fn is_tagged(&self) -> bool {
        self.ethertype() == EtherType::VLAN
    }

    /// The raw tag control information, if tagged.
    #[inline]
    pub fn tci(&self) -> Option<u16> {
        self.is_tagged()
            .then(|| be16(self.buffer.as_ref(), field::TCI.start))
    }

    /// The decoded 802.1Q tag, if tagged.
    pub fn vlan_tag(&self) -> Option<VlanTag> {
        self.tci().map(VlanTag::from_tci)
    }

    /// The payload's EtherType, looking past the tag when there is one.
    #[inline]
    pub fn inner_ethertype(&self) -> EtherType {
        if self.is_tagged() {
            EtherType(be16(self.buffer.as_ref(), field::INNER_ETHERTYPE.start))
        } else {
            self.ethertype()
        }
    }

    /// Where the payload starts: 14, or 18 when tagged.
    #[inline]
    pub fn header_len(&self) -> usize {
        if self.is_tagged() {
            TAGGED_HEADER_LEN
        } else {
            HEADER_LEN
        }
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Frame<&'a T> {
    /// The payload, after the tag when there is one.
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        let start = self.header_len();
        &self.buffer.as_ref()[start..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Frame<T> {
    /// Sets the destination MAC address.
    pub fn set_dst_addr(&mut self, addr: MacAddr) {
        self.buffer.as_mut()[field::DESTINATION].copy_from_slice(&addr.0);
    }

    /// Sets the source MAC address.
    pub fn set_src_addr(&mut self, addr: MacAddr) {
        self.buffer.as_mut()[field::SOURCE].copy_from_slice(&addr.0);
    }

    /// Sets the outer EtherType (0x8100 makes the frame tagged).
    pub fn set_ethertype(&mut self, ethertype: EtherType) {
        self.buffer.as_mut()[field::ETHERTYPE].copy_from_slice(&ethertype.0.to_be_bytes());
    }

    /// Sets the tag control information; the frame must already be tagged.
    pub fn set_tci(&mut self, tci: u16) {
        self.buffer.as_mut()[field::TCI].copy_from_slice(&tci.to_be_bytes());
    }

    /// Sets the payload's EtherType, after the tag when there is one.
    pub fn set_inner_ethertype(&mut self, ethertype: EtherType) {
        if self.is_tagged() {
            self.buffer.as_mut()[field::INNER_ETHERTYPE]
                .copy_from_slice(&ethertype.0.to_be_bytes());
        } else {
            self.set_ethertype(ethertype);
        }
    }

    /// The payload, writable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let start = self.header_len();
        &mut self.buffer.as_mut()[start..]
    }
}

/// The Ethernet header as a value, for building frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Repr {
    /// Source MAC address.
    pub src_addr: MacAddr,
    /// Destination MAC address.
    pub dst_addr: MacAddr,
    /// The 802.1Q tag, if the frame carries one.
    pub vlan: Option<VlanTag>,
    /// The payload's EtherType.
    pub ethertype: EtherType,
}

impl Repr {
    /// Reads the header of a checked frame.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(frame: &Frame<&T>) -> Result<Repr> {
        frame.check_len()?;
        Ok(Repr {
            src_addr: frame.src_addr(),
            dst_addr: frame.dst_addr(),
            vlan: frame.vlan_tag(),
            ethertype: frame.inner_ethertype(),
        })
    }

    /// The header length this value emits.
    pub const fn header_len(&self) -> usize {
        if self.vlan.is_some() {
            TAGGED_HEADER_LEN
        } else {
            HEADER_LEN
        }
    }

    /// Writes the header. The buffer must hold at least
    /// [`Repr::header_len`] bytes.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, frame: &mut Frame<T>) {
        frame.set_dst_addr(self.dst_addr);
        frame.set_src_addr(self.src_addr);
        match self.vlan {
            Some(tag) => {
                frame.set_ethertype(EtherType::VLAN);
                frame.set_tci(tag.to_tci());
                frame.set_inner_ethertype(self.ethertype);
            }
            None => frame.set_ethertype(self.ethertype),
        }
    }
}

#[inline]
fn mac_at(data: &[u8], at: usize) -> MacAddr {
    let mut b = [0u8; 6];
    b.copy_from_slice(&data[at..at + 6]);
    MacAddr(b)
}

#[inline]
fn be16(data: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([data[at], data[at + 1]])
}

#[cfg(test)]
mod tests {
    use super::*;

    const DST: MacAddr = MacAddr([0x02, 0x42, 0xac, 0x12, 0x00, 0x03]);
    const SRC: MacAddr = MacAddr([0x02, 0x42, 0xac, 0x12, 0x00, 0x02]);

    fn untagged() -> Vec<u8> {
        let mut b = vec![0u8; 20];
        b[0..6].copy_from_slice(&DST.0);
        b[6..12].copy_from_slice(&SRC.0);
        b[12..14].copy_from_slice(&[0x08, 0x00]);
        b[14..].copy_from_slice(&[1, 2, 3, 4, 5, 6]);
        b
    }

    #[test]
    fn untagged_frame_reads_addresses_and_ethertype() {
        let b = untagged();
        let f = Frame::new_checked(&b[..]).unwrap();
        assert_eq!(f.dst_addr(), DST);
        assert_eq!(f.src_addr(), SRC);
        assert_eq!(f.ethertype(), EtherType::IPV4);
        assert!(!f.is_tagged());
        assert_eq!(f.vlan_tag(), None);
        assert_eq!(f.inner_ethertype(), EtherType::IPV4);
        assert_eq!(f.header_len(), 14);
        assert_eq!(f.payload(), &[1, 2, 3, 4, 5, 6]);
    }

    #[test]
    fn tagged_frame_exposes_tag_and_inner_ethertype() {
        let mut b = [0u8; 22];
        b[0..6].copy_from_slice(&DST.0);
        b[6..12].copy_from_slice(&SRC.0);
        b[12..14].copy_from_slice(&[0x81, 0x00]);
        b[14..16].copy_from_slice(&[0xa0, 0x64]); // pcp 5, dei 0, vid 100
        b[16..18].copy_from_slice(&[0x86, 0xdd]);
        let f = Frame::new_checked(&b[..]).unwrap();
        assert!(f.is_tagged());
        assert_eq!(f.tci(), Some(0xa064));
        assert_eq!(
            f.vlan_tag(),
            Some(VlanTag {
                pcp: 5,
                dei: false,
                vid: 100
            })
        );
        assert_eq!(f.inner_ethertype(), EtherType::IPV6);
        assert_eq!(f.header_len(), 18);
        assert_eq!(f.payload().len(), 4);
    }

    #[test]
    fn short_frames_are_truncated() {
        assert_eq!(
            Frame::new_checked(&[0u8; 13][..]).unwrap_err(),
            WireError::Truncated
        );
        let mut b = untagged();
        b[12..14].copy_from_slice(&[0x81, 0x00]);
        assert_eq!(
            Frame::new_checked(&b[..17]).unwrap_err(),
            WireError::Truncated
        );
        assert!(Frame::new_checked(&b[..18]).is_ok());
        // An untagged header with nothing after it is fine.
        assert!(Frame::new_checked(&untagged()[..14]).is_ok());
    }

    #[test]
    fn repr_round_trips_with_and_without_tag() {
        for vlan in [
            None,
            Some(VlanTag {
                pcp: 3,
                dei: true,
                vid: 4094,
            }),
        ] {
            let repr = Repr {
                src_addr: SRC,
                dst_addr: DST,
                vlan,
                ethertype: EtherType::ARP,
            };
            let mut buf = vec![0u8; repr.header_len() + 2];
            let mut f = Frame::new_unchecked(&mut buf[..]);
            repr.emit(&mut f);
            let parsed = Repr::parse(&Frame::new_checked(&buf[..]).unwrap()).unwrap();
            assert_eq!(parsed, repr);
        }
    }

    #[test]
    fn etherparse_agrees_on_a_tagged_frame() {
        let repr = Repr {
            src_addr: SRC,
            dst_addr: DST,
            vlan: Some(VlanTag {
                pcp: 1,
                dei: false,
                vid: 42,
            }),
            ethertype: EtherType::IPV4,
        };
        let mut buf = vec![0u8; 18];
        repr.emit(&mut Frame::new_unchecked(&mut buf[..]));
        let (eth, rest) = etherparse::Ethernet2Header::from_slice(&buf).unwrap();
        assert_eq!(eth.source, SRC.0);
        assert_eq!(eth.destination, DST.0);
        assert_eq!(eth.ether_type.0, 0x8100);
        let (vlan, _) = etherparse::SingleVlanHeader::from_slice(rest).unwrap();
        assert_eq!(vlan.vlan_id.value(), 42);
        assert_eq!(vlan.pcp.value(), 1);
        assert_eq!(vlan.ether_type.0, 0x0800);
    }

    #[test]
    fn tci_round_trip_masks_out_of_range_bits() {
        let tag = VlanTag {
            pcp: 7,
            dei: true,
            vid: 0x0fff,
        };
        assert_eq!(VlanTag::from_tci(tag.to_tci()), tag);
        assert_eq!(
            VlanTag {
                pcp: 0xff,
                dei: false,
                vid: 0xffff
            }
            .to_tci(),
            0xefff
        );
    }
}
