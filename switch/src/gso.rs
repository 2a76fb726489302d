//! Software TCP segmentation (what a NIC's TSO does), sans I/O: a TCP
//! sender's GSO super-frame — one Ethernet frame of up to 64 KiB with one
//! set of headers — cut into frames of at most `mss` payload bytes each.
//!
//! A TAP with virtio-net headers hands the switch such frames; a port that
//! cannot pass them on whole (a VXLAN tunnel: the underlay carries
//! datagrams of its MTU) cuts them here, once, as the kernel's
//! `tcp_gso_segment` would:
//! - every segment carries a copy of the Ethernet, IP and TCP headers
//!   (options included), with the IP length fixed (IPv4 total length and a
//!   fresh header checksum, IPv6 payload length), the IPv4 identification
//!   counted up by one per segment, and the TCP sequence number advanced by
//!   the payload before it;
//! - FIN and PSH only on the last segment, CWR only on the first (the
//!   rest of the flags, the window and the urgent pointer on every one);
//! - a full TCP checksum over each segment (the super-frame's checksum
//!   field holds only the pseudo-header sum of a partial checksum and is
//!   ignored).
//!
//! [`TcpSegments::plan`] checks the frame once (never panics on any input:
//! what it cannot cut is a [`GsoError`], for the caller to count) and
//! [`TcpSegments::write`] writes segment `i` into a buffer the caller owns,
//! so a backend segments straight into its send queue without allocating.

use crate::wire::checksum;
use crate::wire::vnet_hdr::{self, GsoType};
use std::net::{Ipv4Addr, Ipv6Addr};

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const ETHERTYPE_VLAN: u16 = 0x8100;
const PROTO_TCP: u8 = 6;
const TCP_FIN: u8 = 0x01;
const TCP_PSH: u8 = 0x08;
const TCP_CWR: u8 = 0x80;

/// Why a super-frame cannot be segmented. Each is a dropped frame to count,
/// never a panic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum GsoError {
    /// The frame ends before a header (or the length it announces) does.
    #[error("truncated super-frame")]
    Truncated,
    /// A header contradicts itself or the GSO type.
    #[error("malformed super-frame: {0}")]
    Malformed(&'static str),
    /// Valid, but not something we cut (IPv6 extension headers, IPv4
    /// fragments).
    #[error("unsupported super-frame: {0}")]
    Unsupported(&'static str),
}

/// Which IP version the super-frame's GSO type says it carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TcpGso {
    /// TCP over IPv4 (`VIRTIO_NET_HDR_GSO_TCPV4`).
    V4,
    /// TCP over IPv6 (`VIRTIO_NET_HDR_GSO_TCPV6`).
    V6,
}

/// How one super-frame is cut: where its headers lie and how many segments
/// it makes. Plain offsets into the frame, so it can be kept while the
/// segments are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpSegments {
    kind: TcpGso,
    /// Offset of the IP header.
    l3: usize,
    /// Offset of the TCP header.
    l4: usize,
    /// Bytes of Ethernet, IP and TCP headers (the payload starts here).
    headers: usize,
    /// TCP payload bytes of the whole super-frame.
    payload: usize,
    mss: usize,
    count: usize,
}

impl TcpSegments {
    /// Checks `frame` (an Ethernet frame, one 802.1Q tag allowed) as a TCP
    /// super-frame of `kind` and plans segments of at most `mss` payload
    /// bytes. A frame whose payload fits one segment makes one segment.
    pub fn plan(frame: &[u8], kind: TcpGso, mss: usize) -> Result<TcpSegments, GsoError> {
        if mss == 0 {
            return Err(GsoError::Malformed("segment size zero"));
        }
        let (l3, ethertype) = match be16(frame, 12)? {
            ETHERTYPE_VLAN => (18, be16(frame, 16)?),
            t => (14, t),
        };
        let (l4, end) = match (kind, ethertype) {
            (TcpGso::V4, ETHERTYPE_IPV4) => {
                let vihl = byte(frame, l3)?;
                if vihl >> 4 != 4 {
                    return Err(GsoError::Malformed("IPv4 version"));
                }
                let ihl = usize::from(vihl & 0xf) * 4;
                if ihl < 20 {
                    return Err(GsoError::Malformed("IPv4 header length"));
                }
                if frame.len() < l3 + ihl {
                    return Err(GsoError::Truncated);
                }
                if frame[l3 + 9] != PROTO_TCP {
                    return Err(GsoError::Malformed("IPv4 protocol is not TCP"));
                }
                if be16(frame, l3 + 6)? & 0x3fff != 0 {
                    return Err(GsoError::Unsupported("IPv4 fragment"));
                }
                let total = usize::from(be16(frame, l3 + 2)?);
                // Zero: a sender that leaves the length to the segmenter.
                let end = if total == 0 { frame.len() } else { l3 + total };
                (l3 + ihl, end)
            }
            (TcpGso::V6, ETHERTYPE_IPV6) => {
                if frame.len() < l3 + 40 {
                    return Err(GsoError::Truncated);
                }
                if frame[l3] >> 4 != 6 {
                    return Err(GsoError::Malformed("IPv6 version"));
                }
                if frame[l3 + 6] != PROTO_TCP {
                    return Err(GsoError::Unsupported("IPv6 extension headers"));
                }
                let payload = usize::from(be16(frame, l3 + 4)?);
                let end = if payload == 0 {
                    frame.len()
                } else {
                    l3 + 40 + payload
                };
                (l3 + 40, end)
            }
            _ => return Err(GsoError::Malformed("EtherType does not match the GSO type")),
        };
        if end > frame.len() {
            return Err(GsoError::Truncated);
        }
        let doff = usize::from(byte(frame, l4 + 12)? >> 4) * 4;
        if doff < 20 {
            return Err(GsoError::Malformed("TCP data offset"));
        }
        let headers = l4 + doff;
        if headers > end {
            return Err(GsoError::Truncated);
        }
        let payload = end - headers;
        Ok(TcpSegments {
            kind,
            l3,
            l4,
            headers,
            payload,
            mss,
            count: payload.div_ceil(mss).max(1),
        })
    }

    /// Number of segments.
    pub fn count(&self) -> usize {
        self.count
    }

    /// Offset of the IP header (after the Ethernet header and any VLAN
    /// tag): a segment's length past it is what an MTU limits.
    pub fn network_offset(&self) -> usize {
        self.l3
    }

    /// Bytes of headers copied into each segment.
    pub fn header_len(&self) -> usize {
        self.headers
    }

    /// TCP payload bytes of the whole super-frame.
    pub fn payload_len(&self) -> usize {
        self.payload
    }

    /// Length of segment `i` (every one but the last is the longest).
    pub fn segment_len(&self, i: usize) -> usize {
        self.headers + self.payload_range(i).len()
    }

    /// Length of the longest segment, headers included: the room
    /// [`TcpSegments::write`] needs.
    pub fn max_segment_len(&self) -> usize {
        self.headers + self.mss.min(self.payload)
    }

    fn payload_range(&self, i: usize) -> core::ops::Range<usize> {
        let start = (i * self.mss).min(self.payload);
        start..(start + self.mss).min(self.payload)
    }

    /// Writes segment `i` (< [`TcpSegments::count`]) of `frame` — the
    /// frame this plan was made from — into `out`, which must hold
    /// [`TcpSegments::segment_len`] bytes; returns that length.
    pub fn write(&self, frame: &[u8], i: usize, out: &mut [u8]) -> usize {
        let range = self.payload_range(i);
        let plen = range.len();
        let len = self.headers + plen;
        let out = &mut out[..len];
        out[..self.headers].copy_from_slice(&frame[..self.headers]);
        out[self.headers..].copy_from_slice(&frame[self.headers + range.start..][..plen]);
        let (l3, l4) = (self.l3, self.l4);
        let tcp_len = len - l4;
        let pseudo = match self.kind {
            TcpGso::V4 => {
                let ip_len = (len - l3) as u16;
                out[l3 + 2..l3 + 4].copy_from_slice(&ip_len.to_be_bytes());
                let id = u16::from_be_bytes([out[l3 + 4], out[l3 + 5]]).wrapping_add(i as u16);
                out[l3 + 4..l3 + 6].copy_from_slice(&id.to_be_bytes());
                out[l3 + 10..l3 + 12].fill(0);
                let ip_sum = checksum::finish(checksum::sum(&out[l3..l4]));
                out[l3 + 10..l3 + 12].copy_from_slice(&ip_sum.to_be_bytes());
                let src = Ipv4Addr::from(<[u8; 4]>::try_from(&out[l3 + 12..l3 + 16]).unwrap());
                let dst = Ipv4Addr::from(<[u8; 4]>::try_from(&out[l3 + 16..l3 + 20]).unwrap());
                checksum::pseudo_header_v4(src, dst, PROTO_TCP, tcp_len as u16)
            }
            TcpGso::V6 => {
                let payload_len = (len - l4) as u16;
                out[l3 + 4..l3 + 6].copy_from_slice(&payload_len.to_be_bytes());
                let src = Ipv6Addr::from(<[u8; 16]>::try_from(&out[l3 + 8..l3 + 24]).unwrap());
                let dst = Ipv6Addr::from(<[u8; 16]>::try_from(&out[l3 + 24..l3 + 40]).unwrap());
                checksum::pseudo_header_v6(src, dst, PROTO_TCP, tcp_len as u32)
            }
        };
        let seq = u32::from_be_bytes([out[l4 + 4], out[l4 + 5], out[l4 + 6], out[l4 + 7]])
            .wrapping_add(range.start as u32);
        out[l4 + 4..l4 + 8].copy_from_slice(&seq.to_be_bytes());
        let mut flags = out[l4 + 13];
        if i + 1 != self.count {
            flags &= !(TCP_FIN | TCP_PSH);
        }
        if i != 0 {
            flags &= !TCP_CWR;
        }
        out[l4 + 13] = flags;
        out[l4 + 16..l4 + 18].fill(0);
        let sum = checksum::finish(checksum::combine(&[pseudo, checksum::sum(&out[l4..])]));
        out[l4 + 16..l4 + 18].copy_from_slice(&sum.to_be_bytes());
        len
    }
}

/// Most segments merged into one super-frame (what the kernel's GRO
/// allows per flow).
pub const MAX_MERGED_SEGMENTS: u16 = 64;

/// Receive-side coalescing (what the kernel's GRO does for TCP), in place:
/// consecutive full-sized segments of one TCP flow, lying in one buffer in
/// increasing order, are merged into one super-frame at the first one's
/// place, so a TAP gets one write (with a virtio-net GSO header) instead of
/// one per segment.
///
/// A segment is merged only if every header field but the lengths, the
/// IPv4 identification and checksums and the PSH flag equals the first
/// segment's (options included), its sequence number continues the flow,
/// every segment before it was full (the first's payload size), no earlier
/// one had PSH, the flags are ACK (and PSH), and its own IP and TCP
/// checksums verify, so a corrupted segment is never hidden inside a merged
/// frame with a fresh checksum: it is left as it is, for the receiver to
/// drop. IPv4 without options, IPv6 without extension headers, no VLAN tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpMerge {
    start: usize,
    len: usize,
    l4: usize,
    headers: usize,
    mss: usize,
    segments: u16,
    kind: TcpGso,
    next_seq: u32,
    psh: bool,
    last_full: bool,
}

/// Where the IP header of an untagged Ethernet frame starts.
const L3: usize = 14;
const TCP_ACK: u8 = 0x10;

impl TcpMerge {
    /// Starts a merge with the frame at `buf[start..start + len]` if it is
    /// a TCP segment with payload that may be merged (its checksums
    /// verified).
    pub fn start(buf: &[u8], start: usize, len: usize) -> Option<TcpMerge> {
        let frame = buf.get(start..start + len)?;
        let (kind, l4, headers) = segment_layout(frame)?;
        let payload = len - headers;
        let flags = frame[l4 + 13];
        if payload == 0 || flags & !(TCP_ACK | TCP_PSH) != 0 || flags & TCP_ACK == 0 {
            return None;
        }
        if !checksums_verify(frame, kind, l4) {
            return None;
        }
        let seq = u32::from_be_bytes([frame[l4 + 4], frame[l4 + 5], frame[l4 + 6], frame[l4 + 7]]);
        Some(TcpMerge {
            start,
            len,
            l4,
            headers,
            mss: payload,
            segments: 1,
            kind,
            next_seq: seq.wrapping_add(payload as u32),
            psh: flags & TCP_PSH != 0,
            last_full: true,
        })
    }

    /// Segments merged so far.
    pub fn segments(&self) -> u16 {
        self.segments
    }

    /// Appends the frame at `buf[at..at + len]` (past the merged frame) if
    /// it continues the flow: its payload is moved right behind the merged
    /// frame's. False (and nothing changed) if it does not.
    pub fn append(&mut self, buf: &mut [u8], at: usize, len: usize) -> bool {
        if self.psh || !self.last_full || self.segments >= MAX_MERGED_SEGMENTS {
            return false;
        }
        if at < self.start + self.len || at + len > buf.len() || len <= self.headers {
            return false;
        }
        let payload = len - self.headers;
        let ip_len = self.len + payload - L3;
        if payload > self.mss || ip_len > usize::from(u16::MAX) {
            return false;
        }
        let (first, rest) = buf.split_at(at);
        let head = &first[self.start..self.start + self.headers];
        let next = &rest[..len];
        if segment_layout(next) != Some((self.kind, self.l4, self.headers)) {
            return false;
        }
        let l4 = self.l4;
        let same = |r: core::ops::Range<usize>| head[r.clone()] == next[r];
        let ip_same = match self.kind {
            TcpGso::V4 => same(0..L3 + 2) && same(L3 + 6..L3 + 10) && same(L3 + 12..L3 + 20),
            TcpGso::V6 => same(0..L3 + 4) && same(L3 + 6..L3 + 40),
        };
        let tcp_same = same(l4..l4 + 4)
            && same(l4 + 8..l4 + 13)
            && same(l4 + 14..l4 + 16)
            && same(l4 + 18..self.headers)
            && (head[l4 + 13] | TCP_PSH) == (next[l4 + 13] | TCP_PSH);
        let seq = u32::from_be_bytes([next[l4 + 4], next[l4 + 5], next[l4 + 6], next[l4 + 7]]);
        if !ip_same || !tcp_same || seq != self.next_seq || !checksums_verify(next, self.kind, l4) {
            return false;
        }
        self.psh = next[l4 + 13] & TCP_PSH != 0;
        let end = self.start + self.len;
        buf.copy_within(at + self.headers..at + len, end);
        self.len += payload;
        self.segments += 1;
        self.next_seq = seq.wrapping_add(payload as u32);
        self.last_full = payload == self.mss;
        true
    }

    /// Fixes the merged frame's headers: IP length (and IPv4 header
    /// checksum), PSH if any segment had it, and the TCP checksum field
    /// holding the pseudo-header sum of a partial checksum. Returns the
    /// frame's length and its virtio-net header value (a GSO frame of the
    /// first segment's size); a single segment is left untouched, as a
    /// plain frame.
    pub fn finish(self, buf: &mut [u8]) -> (usize, vnet_hdr::Repr) {
        if self.segments == 1 {
            return (self.len, vnet_hdr::Repr::NONE);
        }
        let f = &mut buf[self.start..self.start + self.len];
        let (l4, tcp_len) = (self.l4, self.len - self.l4);
        let pseudo = match self.kind {
            TcpGso::V4 => {
                f[L3 + 2..L3 + 4].copy_from_slice(&((self.len - L3) as u16).to_be_bytes());
                f[L3 + 10..L3 + 12].fill(0);
                let sum = checksum::finish(checksum::sum(&f[L3..l4]));
                f[L3 + 10..L3 + 12].copy_from_slice(&sum.to_be_bytes());
                let src = Ipv4Addr::from(<[u8; 4]>::try_from(&f[L3 + 12..L3 + 16]).unwrap());
                let dst = Ipv4Addr::from(<[u8; 4]>::try_from(&f[L3 + 16..L3 + 20]).unwrap());
                checksum::pseudo_header_v4(src, dst, PROTO_TCP, tcp_len as u16)
            }
            TcpGso::V6 => {
                f[L3 + 4..L3 + 6].copy_from_slice(&(tcp_len as u16).to_be_bytes());
                let src = Ipv6Addr::from(<[u8; 16]>::try_from(&f[L3 + 8..L3 + 24]).unwrap());
                let dst = Ipv6Addr::from(<[u8; 16]>::try_from(&f[L3 + 24..L3 + 40]).unwrap());
                checksum::pseudo_header_v6(src, dst, PROTO_TCP, tcp_len as u32)
            }
        };
        if self.psh {
            f[l4 + 13] |= TCP_PSH;
        }
        // A partial checksum: the folded pseudo-header sum, not inverted.
        let partial = !checksum::finish(pseudo);
        f[l4 + 16..l4 + 18].copy_from_slice(&partial.to_be_bytes());
        let repr = vnet_hdr::Repr {
            needs_csum: true,
            gso: match self.kind {
                TcpGso::V4 => GsoType::TcpV4,
                TcpGso::V6 => GsoType::TcpV6,
            },
            hdr_len: self.headers as u16,
            gso_size: self.mss as u16,
            csum_start: l4 as u16,
            csum_offset: 16,
            ..vnet_hdr::Repr::NONE
        };
        (self.len, repr)
    }
}

/// (kind, TCP offset, headers length) of an untagged TCP segment that
/// coalescing handles, with its IP length matching the frame.
fn segment_layout(frame: &[u8]) -> Option<(TcpGso, usize, usize)> {
    let (kind, l4) = match be16(frame, 12).ok()? {
        ETHERTYPE_IPV4 => {
            let ok = byte(frame, L3).ok()? == 0x45
                && byte(frame, L3 + 9).ok()? == PROTO_TCP
                && be16(frame, L3 + 6).ok()? & 0x3fff == 0
                && usize::from(be16(frame, L3 + 2).ok()?) == frame.len() - L3;
            ok.then_some((TcpGso::V4, L3 + 20))?
        }
        ETHERTYPE_IPV6 => {
            let ok = byte(frame, L3).ok()? >> 4 == 6
                && byte(frame, L3 + 6).ok()? == PROTO_TCP
                && frame.len() >= L3 + 40
                && usize::from(be16(frame, L3 + 4).ok()?) == frame.len() - L3 - 40;
            ok.then_some((TcpGso::V6, L3 + 40))?
        }
        _ => return None,
    };
    let doff = usize::from(byte(frame, l4 + 12).ok()? >> 4) * 4;
    (doff >= 20 && l4 + doff <= frame.len()).then_some((kind, l4, l4 + doff))
}

/// True when the IPv4 header checksum (if any) and the TCP checksum verify.
fn checksums_verify(frame: &[u8], kind: TcpGso, l4: usize) -> bool {
    let tcp_len = frame.len() - l4;
    let pseudo = match kind {
        TcpGso::V4 => {
            if checksum::sum(&frame[L3..l4]) != 0xffff {
                return false;
            }
            let src = Ipv4Addr::from(<[u8; 4]>::try_from(&frame[L3 + 12..L3 + 16]).unwrap());
            let dst = Ipv4Addr::from(<[u8; 4]>::try_from(&frame[L3 + 16..L3 + 20]).unwrap());
            checksum::pseudo_header_v4(src, dst, PROTO_TCP, tcp_len as u16)
        }
        TcpGso::V6 => {
            let src = Ipv6Addr::from(<[u8; 16]>::try_from(&frame[L3 + 8..L3 + 24]).unwrap());
            let dst = Ipv6Addr::from(<[u8; 16]>::try_from(&frame[L3 + 24..L3 + 40]).unwrap());
            checksum::pseudo_header_v6(src, dst, PROTO_TCP, tcp_len as u32)
        }
    };
    checksum::combine(&[pseudo, checksum::sum(&frame[l4..])]) == 0xffff
}

fn byte(frame: &[u8], at: usize) -> Result<u8, GsoError> {
    frame.get(at).copied().ok_or(GsoError::Truncated)
}

fn be16(frame: &[u8], at: usize) -> Result<u16, GsoError> {
    match frame.get(at..at + 2) {
        Some(b) => Ok(u16::from_be_bytes([b[0], b[1]])),
        None => Err(GsoError::Truncated),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MACS: [u8; 12] = [2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1];

    /// A TCP super-frame as a TAP hands it over: one header set, the
    /// whole payload, lengths of the whole frame.
    fn superframe(
        kind: TcpGso,
        options: usize,
        flags: u8,
        seq: u32,
        id: u16,
        payload: &[u8],
    ) -> Vec<u8> {
        let mut f = MACS.to_vec();
        let tcp_len = 20 + options + payload.len();
        match kind {
            TcpGso::V4 => {
                f.extend_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
                let mut ip = [0u8; 20];
                ip[0] = 0x45;
                ip[2..4].copy_from_slice(&((20 + tcp_len) as u16).to_be_bytes());
                ip[4..6].copy_from_slice(&id.to_be_bytes());
                ip[6] = 0x40; // DF
                ip[8] = 64;
                ip[9] = PROTO_TCP;
                ip[12..16].copy_from_slice(&[10, 0, 0, 1]);
                ip[16..20].copy_from_slice(&[10, 0, 0, 2]);
                f.extend_from_slice(&ip);
            }
            TcpGso::V6 => {
                f.extend_from_slice(&ETHERTYPE_IPV6.to_be_bytes());
                let mut ip = [0u8; 40];
                ip[0] = 0x60;
                ip[4..6].copy_from_slice(&(tcp_len as u16).to_be_bytes());
                ip[6] = PROTO_TCP;
                ip[7] = 64;
                ip[8] = 0xfd;
                ip[23] = 1;
                ip[24] = 0xfd;
                ip[39] = 2;
                f.extend_from_slice(&ip);
            }
        }
        let mut tcp = vec![0u8; 20 + options];
        tcp[0..2].copy_from_slice(&40000u16.to_be_bytes());
        tcp[2..4].copy_from_slice(&5201u16.to_be_bytes());
        tcp[4..8].copy_from_slice(&seq.to_be_bytes());
        tcp[8..12].copy_from_slice(&7u32.to_be_bytes());
        tcp[12] = (((20 + options) / 4) as u8) << 4;
        tcp[13] = flags;
        tcp[14..16].copy_from_slice(&512u16.to_be_bytes());
        // Options: NOPs then a timestamp-like filler, copied as they are.
        for (k, b) in tcp[20..].iter_mut().enumerate() {
            *b = if k < 2 { 1 } else { 0xa0 + k as u8 };
        }
        f.extend_from_slice(&tcp);
        f.extend_from_slice(payload);
        f
    }

    fn cut(frame: &[u8], kind: TcpGso, mss: usize) -> Vec<Vec<u8>> {
        let plan = TcpSegments::plan(frame, kind, mss).unwrap();
        (0..plan.count())
            .map(|i| {
                let mut out = vec![0u8; plan.max_segment_len()];
                let n = plan.write(frame, i, &mut out);
                assert_eq!(n, plan.segment_len(i));
                out.truncate(n);
                out
            })
            .collect()
    }

    /// The segment's fields, checked independently of the segmenter:
    /// etherparse parses it and both checksums verify to all ones.
    struct Seen {
        seq: u32,
        flags: u8,
        id: Option<u16>,
        payload: Vec<u8>,
    }

    fn verify(seg: &[u8]) -> Seen {
        let parsed = etherparse::SlicedPacket::from_ethernet(seg).expect("segment parses");
        let payload = match &parsed.transport {
            Some(etherparse::TransportSlice::Tcp(t)) => t.payload().to_vec(),
            other => panic!("not TCP: {other:?}"),
        };
        let (l3, l4, pseudo, id) = match &parsed.net {
            Some(etherparse::NetSlice::Ipv4(ip)) => {
                let h = ip.header();
                assert_eq!(usize::from(h.total_len()), seg.len() - 14, "IPv4 length");
                let ihl = usize::from(h.ihl()) * 4;
                let pseudo = checksum::pseudo_header_v4(
                    h.source_addr(),
                    h.destination_addr(),
                    PROTO_TCP,
                    (seg.len() - 14 - ihl) as u16,
                );
                (14, 14 + ihl, pseudo, Some(h.identification()))
            }
            Some(etherparse::NetSlice::Ipv6(ip)) => {
                let h = ip.header();
                assert_eq!(
                    usize::from(h.payload_length()),
                    seg.len() - 54,
                    "IPv6 length"
                );
                let pseudo = checksum::pseudo_header_v6(
                    h.source_addr(),
                    h.destination_addr(),
                    PROTO_TCP,
                    (seg.len() - 54) as u32,
                );
                (14, 54, pseudo, None)
            }
            other => panic!("not IP: {other:?}"),
        };
        if id.is_some() {
            assert_eq!(checksum::sum(&seg[l3..l4]), 0xffff, "IPv4 header checksum");
        }
        assert_eq!(
            checksum::combine(&[pseudo, checksum::sum(&seg[l4..])]),
            0xffff,
            "TCP checksum"
        );
        Seen {
            seq: u32::from_be_bytes(seg[l4 + 4..l4 + 8].try_into().unwrap()),
            flags: seg[l4 + 13],
            id,
            payload,
        }
    }

    #[test]
    fn segments_carry_advancing_sequence_numbers_and_ids_and_flags_where_they_belong() {
        let payload: Vec<u8> = (0..3000u32).map(|i| i as u8).collect();
        let flags = TCP_FIN | TCP_PSH | TCP_CWR | 0x10; // + ACK
        let f = superframe(TcpGso::V4, 12, flags, 0xffff_fc00, 0xfffe, &payload);
        let segs = cut(&f, TcpGso::V4, 1400);
        assert_eq!(segs.len(), 3);
        let seen: Vec<Seen> = segs.iter().map(|s| verify(s)).collect();
        assert_eq!(
            seen.iter().map(|s| s.seq).collect::<Vec<_>>(),
            [
                0xffff_fc00,
                0xffff_fc00u32.wrapping_add(1400),
                0xffff_fc00u32.wrapping_add(2800)
            ],
            "sequence numbers wrap like TCP's"
        );
        assert_eq!(
            seen.iter().map(|s| s.id.unwrap()).collect::<Vec<_>>(),
            [0xfffe, 0xffff, 0]
        );
        assert_eq!(seen[0].flags, TCP_CWR | 0x10, "CWR on the first only");
        assert_eq!(seen[1].flags, 0x10);
        assert_eq!(
            seen[2].flags,
            TCP_FIN | TCP_PSH | 0x10,
            "FIN and PSH on the last"
        );
        assert_eq!(seen[2].payload.len(), 200);
        assert_eq!(
            &segs[1][14 + 20 + 20..14 + 20 + 32],
            &f[54..66],
            "options copied"
        );
    }

    #[test]
    fn a_small_frame_is_one_segment_and_a_bare_header_too() {
        let f = superframe(TcpGso::V6, 0, 0x18, 1, 0, &[1, 2, 3]);
        let segs = cut(&f, TcpGso::V6, 1400);
        assert_eq!(segs.len(), 1);
        assert_eq!(verify(&segs[0]).payload, [1, 2, 3]);
        let bare = superframe(TcpGso::V4, 0, 0x10, 1, 0, &[]);
        assert_eq!(cut(&bare, TcpGso::V4, 1400).len(), 1);
    }

    #[test]
    fn frames_that_cannot_be_cut_are_refused_with_a_reason() {
        let good = superframe(TcpGso::V4, 0, 0x10, 1, 0, &[0u8; 100]);
        let plan = |f: &[u8], k| TcpSegments::plan(f, k, 1400);
        assert!(matches!(
            plan(&good, TcpGso::V6),
            Err(GsoError::Malformed(_))
        ));
        assert_eq!(plan(&good[..60], TcpGso::V4), Err(GsoError::Truncated));
        assert_eq!(plan(&good[..10], TcpGso::V4), Err(GsoError::Truncated));
        let mut frag = good.clone();
        frag[14 + 6] = 0x20; // MF
        assert!(matches!(
            plan(&frag, TcpGso::V4),
            Err(GsoError::Unsupported(_))
        ));
        let mut udp = good.clone();
        udp[14 + 9] = 17;
        assert!(matches!(
            plan(&udp, TcpGso::V4),
            Err(GsoError::Malformed(_))
        ));
        let mut doff = good.clone();
        doff[14 + 20 + 12] = 0x40;
        assert!(matches!(
            plan(&doff, TcpGso::V4),
            Err(GsoError::Malformed(_))
        ));
        let mut ext = superframe(TcpGso::V6, 0, 0x10, 1, 0, &[0u8; 100]);
        ext[14 + 6] = 0; // hop-by-hop options first
        assert!(matches!(
            plan(&ext, TcpGso::V6),
            Err(GsoError::Unsupported(_))
        ));
        assert!(matches!(
            TcpSegments::plan(&good, TcpGso::V4, 0),
            Err(GsoError::Malformed(_))
        ));
    }

    #[test]
    fn a_vlan_tagged_frame_keeps_its_tag_in_every_segment() {
        let mut f = superframe(TcpGso::V4, 0, 0x10, 9, 3, &[7u8; 2500]);
        f.splice(12..12, [0x81, 0x00, 0x00, 0x05]);
        let segs = cut(&f, TcpGso::V4, 1000);
        assert_eq!(segs.len(), 3);
        for s in &segs {
            assert_eq!(&s[12..16], &[0x81, 0x00, 0x00, 0x05]);
            let ip_len = u16::from_be_bytes([s[18 + 2], s[18 + 3]]) as usize;
            assert_eq!(ip_len, s.len() - 18);
            assert_eq!(checksum::sum(&s[18..38]), 0xffff);
        }
    }

    /// Lays `segs` out one per `slot` bytes (as `recvmmsg` leaves them)
    /// and merges what it can from the first; returns the merged frame,
    /// its offload and how many segments went in.
    fn merge_all(segs: &[Vec<u8>], slot: usize) -> (Vec<u8>, vnet_hdr::Repr, u16) {
        let mut buf = vec![0u8; slot * segs.len()];
        for (i, s) in segs.iter().enumerate() {
            buf[i * slot..i * slot + s.len()].copy_from_slice(s);
        }
        let mut m = TcpMerge::start(&buf, 0, segs[0].len()).expect("first segment mergeable");
        for (i, s) in segs.iter().enumerate().skip(1) {
            if !m.append(&mut buf, i * slot, s.len()) {
                break;
            }
        }
        let n = m.segments();
        let (len, repr) = m.finish(&mut buf);
        buf.truncate(len);
        (buf, repr, n)
    }

    /// The partial checksum field as `finish` leaves it, for comparing a
    /// merged frame with the super-frame it came from.
    fn zero_tcp_checksum(f: &mut [u8], l4: usize) {
        f[l4 + 16..l4 + 18].fill(0);
    }

    #[test]
    fn merged_segments_are_the_super_frame_they_were_cut_from() {
        for kind in [TcpGso::V4, TcpGso::V6] {
            let payload: Vec<u8> = (0..5000u32).map(|i| (i * 7) as u8).collect();
            let original = superframe(kind, 12, TCP_ACK | TCP_PSH, 77, 5, &payload);
            let segs = cut(&original, kind, 1200);
            let (mut merged, repr, n) = merge_all(&segs, 2048);
            assert_eq!(n as usize, segs.len());
            let l4 = if kind == TcpGso::V4 { 34 } else { 54 };
            assert_eq!(repr.gso_size, 1200);
            assert!(repr.needs_csum);
            assert_eq!(usize::from(repr.csum_start), l4);
            assert_eq!(repr.csum_offset, 16);
            // Completing the partial checksum makes a valid frame.
            let mut complete = merged.clone();
            let field = l4 + 16;
            let partial = u16::from_be_bytes([complete[field], complete[field + 1]]);
            let sum = checksum::combine(&[
                u32::from(partial),
                checksum::sum(&complete[l4..field]),
                checksum::sum(&complete[field + 2..]),
            ]);
            complete[field..field + 2].copy_from_slice(&checksum::finish(sum).to_be_bytes());
            assert_eq!(verify(&complete).payload, payload);
            zero_tcp_checksum(&mut merged, l4);
            let mut want = original.clone();
            if kind == TcpGso::V4 {
                // The IPv4 header checksum is filled in; the original's is 0.
                want[14 + 10..14 + 12].copy_from_slice(&merged[14 + 10..14 + 12]);
            }
            assert_eq!(merged, want, "{kind:?}");
        }
    }

    #[test]
    fn merging_stops_at_a_gap_another_flow_a_corrupted_or_short_segment_and_after_psh() {
        let payload = vec![3u8; 4000];
        let f = superframe(TcpGso::V4, 0, TCP_ACK, 1, 1, &payload);
        let segs = cut(&f, TcpGso::V4, 1000);
        // A gap in sequence numbers.
        let gap = [segs[0].clone(), segs[2].clone()];
        assert_eq!(merge_all(&gap, 2048).2, 1);
        // Another flow (a different source port).
        let mut other = segs[1].clone();
        other[34] ^= 1;
        assert_eq!(merge_all(&[segs[0].clone(), other], 2048).2, 1);
        // A corrupted payload byte.
        let mut bad = segs[1].clone();
        bad[60] ^= 0xff;
        assert_eq!(merge_all(&[segs[0].clone(), bad], 2048).2, 1);
        // After a short segment nothing more joins.
        let short = superframe(TcpGso::V4, 0, TCP_ACK, 1, 1, &payload[..1500]);
        let s = cut(&short, TcpGso::V4, 1000);
        let next = cut(
            &superframe(TcpGso::V4, 0, TCP_ACK, 1501, 3, &payload[..1000]),
            TcpGso::V4,
            1000,
        );
        assert_eq!(
            merge_all(&[s[0].clone(), s[1].clone(), next[0].clone()], 2048).2,
            2
        );
        // PSH ends a merge; SYN, FIN and bare ACKs never start one.
        let psh = cut(
            &superframe(TcpGso::V4, 0, TCP_ACK | TCP_PSH, 1, 1, &payload[..1000]),
            TcpGso::V4,
            1000,
        );
        let after = cut(
            &superframe(TcpGso::V4, 0, TCP_ACK, 1001, 2, &payload[..1000]),
            TcpGso::V4,
            1000,
        );
        assert_eq!(merge_all(&[psh[0].clone(), after[0].clone()], 2048).2, 1);
        let fin = superframe(TcpGso::V4, 0, TCP_ACK | TCP_FIN, 1, 1, &payload[..100]);
        assert!(TcpMerge::start(&fin, 0, fin.len()).is_none());
        let bare = superframe(TcpGso::V4, 0, TCP_ACK, 1, 1, &[]);
        assert!(TcpMerge::start(&bare, 0, bare.len()).is_none());
        // A single segment is left a plain frame.
        let (_, repr, n) = merge_all(&segs[..1], 2048);
        assert_eq!((n, repr), (1, vnet_hdr::Repr::NONE));
    }

    proptest! {
        #[test]
        fn concatenated_segments_are_the_original_and_each_verifies(
            v6 in any::<bool>(),
            options in 0usize..=10,
            flags in any::<u8>(),
            seq in any::<u32>(),
            id in any::<u16>(),
            mss in 1usize..2000,
            payload in proptest::collection::vec(any::<u8>(), 0..9000),
        ) {
            let kind = if v6 { TcpGso::V6 } else { TcpGso::V4 };
            let f = superframe(kind, options * 4, flags, seq, id, &payload);
            let segs = cut(&f, kind, mss);
            prop_assert_eq!(segs.len(), payload.len().div_ceil(mss).max(1));
            let mut joined = Vec::new();
            let mut expect_seq = seq;
            for (i, s) in segs.iter().enumerate() {
                let seen = verify(s);
                prop_assert!(seen.payload.len() <= mss);
                prop_assert_eq!(seen.seq, expect_seq);
                expect_seq = expect_seq.wrapping_add(seen.payload.len() as u32);
                if let Some(got) = seen.id {
                    prop_assert_eq!(got, id.wrapping_add(i as u16));
                }
                let last = i + 1 == segs.len();
                prop_assert_eq!(seen.flags & (TCP_FIN | TCP_PSH), if last { flags & (TCP_FIN | TCP_PSH) } else { 0 });
                prop_assert_eq!(seen.flags & TCP_CWR, if i == 0 { flags & TCP_CWR } else { 0 });
                prop_assert_eq!(seen.flags & !(TCP_FIN | TCP_PSH | TCP_CWR), flags & !(TCP_FIN | TCP_PSH | TCP_CWR));
                joined.extend_from_slice(&seen.payload);
            }
            prop_assert_eq!(joined, payload);
        }

        #[test]
        fn cutting_a_merge_gives_the_segments_back(
            v6 in any::<bool>(),
            options in 0usize..=10,
            seq in any::<u32>(),
            mss in 1usize..1500,
            payload in proptest::collection::vec(any::<u8>(), 1..20000),
        ) {
            let kind = if v6 { TcpGso::V6 } else { TcpGso::V4 };
            let f = superframe(kind, options * 4, TCP_ACK | TCP_PSH, seq, 9, &payload);
            let segs = cut(&f, kind, mss);
            let slot = segs[0].len() + 64;
            let (merged, repr, n) = merge_all(&segs, slot);
            let n = usize::from(n);
            prop_assert_eq!(n, segs.len().min(usize::from(MAX_MERGED_SEGMENTS)));
            if n > 1 {
                prop_assert_eq!(usize::from(repr.gso_size), mss);
                let again = cut(&merged, kind, mss);
                prop_assert_eq!(again.len(), n);
                // IPv4 IDs count up from the first's either way.
                for (a, b) in again.iter().zip(&segs) {
                    prop_assert_eq!(a, b);
                }
            }
        }

        #[test]
        fn merging_garbage_never_panics(
            data in proptest::collection::vec(any::<u8>(), 0..400),
            split in 0usize..400,
        ) {
            let mut buf = data.clone();
            let split = split.min(buf.len());
            if let Some(mut m) = TcpMerge::start(&buf, 0, split) {
                let rest = buf.len() - split;
                m.append(&mut buf, split, rest);
                let (len, _) = m.finish(&mut buf);
                prop_assert!(len <= buf.len());
            }
        }

        #[test]
        fn planning_never_panics_and_planned_writes_stay_in_bounds(
            data in proptest::collection::vec(any::<u8>(), 0..300),
            v6 in any::<bool>(),
            mss in 0usize..400,
        ) {
            let kind = if v6 { TcpGso::V6 } else { TcpGso::V4 };
            if let Ok(plan) = TcpSegments::plan(&data, kind, mss) {
                let mut out = vec![0u8; plan.max_segment_len()];
                for i in 0..plan.count() {
                    prop_assert!(plan.write(&data, i, &mut out) <= out.len());
                }
            }
        }
    }
}
