//! Wire formats, as zero-copy views over byte buffers (smoltcp style).
//!
//! Each protocol has its own file with a `mod field` of byte offsets, a view
//! type (`Frame`, `Packet`, `Header`) that wraps any `T: AsRef<[u8]>` and
//! reads fields in place, setters when `T: AsMut<[u8]>` too, and a `Repr`
//! value type with `parse`/`emit` for code that builds frames.
//!
//! `new_checked` validates everything the getters rely on, so once a view
//! exists its getters never panic. Parsing never panics on any input: a
//! frame that is too short is [`WireError::Truncated`], one whose header
//! contradicts itself is [`WireError::Malformed`]. The bridge maps both onto
//! a [`DropReason`] and counts the drop.

pub mod arp;
pub mod ethernet;
pub mod icmpv6;
pub mod ipv4;
pub mod ipv6;
pub mod udp;
pub mod vnet_hdr;
pub mod vxlan;

pub use arp::{Operation as ArpOperation, Packet as ArpPacket, Repr as ArpRepr};
pub use ethernet::{EtherType, Frame as EthernetFrame, Repr as EthernetRepr, VlanTag};
pub use icmpv6::{
    Message as Icmpv6Message, NdiscOption, NdiscOptionType, NdiscOptions, NeighborFlags,
    Packet as Icmpv6Packet, Repr as Icmpv6Repr,
};
pub use ipv4::{IpProtocol, Packet as Ipv4Packet, Repr as Ipv4Repr};
pub use ipv6::{
    eui64_link_local, FragmentHeader as Ipv6FragmentHeader, FragmentRepr as Ipv6FragmentRepr,
    Packet as Ipv6Packet, Repr as Ipv6Repr,
};
pub use udp::{Packet as UdpPacket, Repr as UdpRepr};
pub use vnet_hdr::{GsoType, Header as VnetHeader, Repr as VnetHdrRepr};
pub use vxlan::{Header as VxlanHeader, Repr as VxlanRepr};

use crate::port::DropReason;

/// A byte range of a fixed-size header field.
pub(crate) type Field = core::ops::Range<usize>;
/// The rest of a buffer from some offset: a payload.
pub(crate) type Rest = core::ops::RangeFrom<usize>;

/// Why bytes could not be read as a protocol header. Parsing reports this
/// instead of panicking, so hostile input can only ever cause a counted drop.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The buffer ends before the header (or the length it announces) does.
    #[error("truncated: the buffer is shorter than the header or the length it announces")]
    Truncated,
    /// A header field holds a value the protocol does not allow.
    #[error("malformed {what}")]
    Malformed {
        /// Which field or rule was violated, e.g. `"IPv4 version"`.
        what: &'static str,
    },
}

impl WireError {
    /// Shorthand for [`WireError::Malformed`].
    pub(crate) const fn malformed(what: &'static str) -> WireError {
        WireError::Malformed { what }
    }
}

impl From<WireError> for DropReason {
    fn from(e: WireError) -> DropReason {
        match e {
            WireError::Truncated => DropReason::Truncated,
            WireError::Malformed { .. } => DropReason::Malformed,
        }
    }
}

/// Result of parsing a wire format.
pub type Result<T> = core::result::Result<T, WireError>;

/// The Internet checksum (RFC 1071), shared by IPv4, UDP and ICMPv6.
pub mod checksum {
    use std::net::{Ipv4Addr, Ipv6Addr};

    /// One's-complement sum of `data` as big-endian 16-bit words (an odd
    /// trailing byte is padded with zero), not yet folded or inverted.
    ///
    /// Eight bytes at a time with an end-around carry (RFC 1071 section 2:
    /// the sum is independent of the word size), since software
    /// segmentation and coalescing sum every byte of a TCP flow.
    pub fn sum(data: &[u8]) -> u32 {
        let mut acc: u64 = 0;
        let mut words = data.chunks_exact(8);
        for w in &mut words {
            let v = u64::from_be_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]);
            let (s, carry) = acc.overflowing_add(v);
            acc = s + u64::from(carry);
        }
        // Fold to 32 bits so the tail's 16-bit words cannot overflow.
        let mut acc = (acc >> 32) + (acc & 0xffff_ffff);
        let mut chunks = words.remainder().chunks_exact(2);
        for c in &mut chunks {
            acc += u64::from(u16::from_be_bytes([c[0], c[1]]));
        }
        if let [last] = chunks.remainder() {
            acc += u64::from(*last) << 8;
        }
        fold(acc)
    }

    /// Folds carries until the sum fits in 16 bits.
    fn fold(mut acc: u64) -> u32 {
        while acc > 0xffff {
            acc = (acc & 0xffff) + (acc >> 16);
        }
        acc as u32
    }

    /// Adds partial sums, keeping the one's-complement carry.
    pub fn combine(sums: &[u32]) -> u32 {
        fold(sums.iter().map(|&s| u64::from(s)).sum())
    }

    /// The final checksum field value of a partial sum.
    pub fn finish(sum: u32) -> u16 {
        !(fold(u64::from(sum)) as u16)
    }

    /// The IPv4 pseudo-header sum that UDP and TCP checksums start from.
    pub fn pseudo_header_v4(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, length: u16) -> u32 {
        let mut buf = [0u8; 12];
        buf[0..4].copy_from_slice(&src.octets());
        buf[4..8].copy_from_slice(&dst.octets());
        buf[9] = protocol;
        buf[10..12].copy_from_slice(&length.to_be_bytes());
        sum(&buf)
    }

    /// The IPv6 pseudo-header sum (RFC 8200 section 8.1) that ICMPv6, UDP
    /// and TCP checksums over IPv6 start from.
    pub fn pseudo_header_v6(src: Ipv6Addr, dst: Ipv6Addr, next_header: u8, length: u32) -> u32 {
        let mut buf = [0u8; 40];
        buf[0..16].copy_from_slice(&src.octets());
        buf[16..32].copy_from_slice(&dst.octets());
        buf[32..36].copy_from_slice(&length.to_be_bytes());
        buf[39] = next_header;
        sum(&buf)
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn rfc1071_example_sums_to_the_published_value() {
            // RFC 1071 section 3: 0001 f203 f4f5 f6f7 sums to ddf2.
            let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
            assert_eq!(sum(&data), 0xddf2);
            assert_eq!(finish(sum(&data)), !0xddf2);
        }

        #[test]
        fn odd_length_pads_with_zero() {
            assert_eq!(sum(&[0x12]), 0x1200);
        }

        /// The sum 16 bits at a time, as RFC 1071 writes it.
        fn sum16(data: &[u8]) -> u32 {
            let mut acc: u64 = 0;
            for c in data.chunks(2) {
                acc += u64::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
            }
            fold(acc)
        }

        proptest::proptest! {
            #[test]
            fn the_wide_sum_equals_the_16_bit_sum(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..3000)) {
                proptest::prop_assert_eq!(sum(&data), sum16(&data));
            }
        }

        #[test]
        fn carries_out_of_64_bits_come_back_in() {
            let ones = [0xffu8; 64];
            assert_eq!(sum(&ones), sum16(&ones));
            let mut mixed = [0xffu8; 67];
            mixed[5] = 0;
            assert_eq!(sum(&mixed), sum16(&mixed));
        }
    }
}
