//! Port backends: what is behind a switch port in real mode.
//!
//! The switch core only knows a port's id, segment and binding; the data
//! plane only knows a [`PortBackend`]: something it can read a batch of
//! frames from, send a frame to (with the frame's offload state, so a GSO
//! super-frame or a partial checksum survives, is converted, or is refused
//! as the backend can), and ask for the next deadline it needs. A TAP
//! ([`TapPort`]) is the first backend; a VXLAN tunnel (a UDP socket with
//! `recvmmsg`/`sendmmsg`), an internal in-process port (the gateway's
//! stack) and a raw uplink (`AF_PACKET`) implement the same trait. Framing
//! (the virtio-net header) is the backend's business, not the forwarding
//! loop's: every frame crosses the data plane as bytes that start with the
//! Ethernet header plus an [`Offload`] value.

mod gateway;
mod host_sockets;
mod tap;
mod vxlan;

pub use gateway::{
    GatewayControl, GatewayControlError, GatewayPort, GatewayReport, PublishedSocket,
};
pub use tap::{TapFraming, TapPort};
pub use vxlan::{TunnelEndpoint, TunnelEndpointConfig, TunnelPortError, TunnelReport, TunnelStats};

use serde::{Deserialize, Serialize};
use std::io;
use std::os::fd::RawFd;
use switchyard_switch::gso::GsoError;
use switchyard_switch::port::PortId;
use switchyard_switch::time::Instant;
use switchyard_switch::wire::vnet_hdr;

/// A frame's offload state as it travels from its ingress backend to each
/// egress backend: whether it is a GSO super-frame to be segmented, and
/// whether its transport checksum is still partial. This is the value of
/// the virtio-net header; [`vnet_hdr::Repr::NONE`] is a plain frame.
pub type Offload = vnet_hdr::Repr;

/// Largest frame a backend may hand over: a 64 KiB GSO frame plus Ethernet
/// and 802.1Q headers.
pub const MAX_FRAME: usize = 65_550;

/// Where one received frame lies in an [`RxBatch`].
#[derive(Clone, Copy, Debug)]
struct RxSlot {
    start: usize,
    len: usize,
    offload: Offload,
    /// The port the frame entered on, when the backend serves many ports
    /// (a tunnel endpoint); `None`: the port that was read.
    ingress: Option<PortId>,
}

/// Frames read from one port in one turn: a byte arena they are read into
/// back to back, and where each lies. Allocated once by the data plane and
/// reused for every batch, so reading allocates nothing.
///
/// The arena bounds the batch in bytes as well as in frames: a batch of
/// small frames holds up to the frame limit, a batch of 64 KiB GSO frames a
/// few, so the bytes read are still in cache when they are written out.
#[derive(Debug)]
pub struct RxBatch {
    arena: Box<[u8]>,
    used: usize,
    slots: Vec<RxSlot>,
    max_frames: usize,
}

impl RxBatch {
    /// A batch of at most `max_frames` frames in an arena of `arena_bytes`
    /// (at least one maximal frame plus `headroom`).
    pub fn new(max_frames: usize, arena_bytes: usize) -> RxBatch {
        RxBatch {
            arena: vec![0u8; arena_bytes.max(MAX_FRAME + 64)].into_boxed_slice(),
            used: 0,
            slots: Vec::with_capacity(max_frames.max(1)),
            max_frames: max_frames.max(1),
        }
    }

    /// Empties the batch for the next port.
    pub fn clear(&mut self) {
        self.used = 0;
        self.slots.clear();
    }

    /// Room to read the next frame into, `headroom` bytes of framing (a
    /// virtio-net header, a VXLAN header) included: `None` when the batch
    /// is full (by count, or the arena has no room for a maximal frame).
    pub fn space(&mut self, headroom: usize) -> Option<&mut [u8]> {
        let want = MAX_FRAME + headroom;
        if self.slots.len() >= self.max_frames || self.arena.len() - self.used < want {
            return None;
        }
        Some(&mut self.arena[self.used..self.used + want])
    }

    /// Keeps the frame just read into [`RxBatch::space`]: it lies at
    /// `offset..offset + len` of that space (the framing before it is
    /// dropped). The arena advances past all of `offset + len`.
    pub fn push(&mut self, offset: usize, len: usize, offload: Offload) {
        self.push_from(None, offset, len, offload);
    }

    /// Like [`RxBatch::push`], for a backend that serves many switch ports
    /// and decides per frame which one it entered on (a tunnel endpoint:
    /// the (VNI, VTEP) of the datagram). `offset` counts from the start of
    /// [`RxBatch::free_space`].
    pub fn push_from(
        &mut self,
        ingress: Option<PortId>,
        offset: usize,
        len: usize,
        offload: Offload,
    ) {
        debug_assert!(self.used + offset + len <= self.arena.len());
        self.slots.push(RxSlot {
            start: self.used + offset,
            len,
            offload,
            ingress,
        });
        self.used += offset + len;
    }

    /// All of the arena not used yet, and how many more frames the batch
    /// takes, for a backend that reads many frames with one call
    /// (`recvmmsg`) and then [`RxBatch::push_from`]es them in order.
    pub fn free_space(&mut self) -> (&mut [u8], usize) {
        let frames = self.max_frames - self.slots.len();
        (&mut self.arena[self.used..], frames)
    }

    /// How many more maximal frames the batch can take (by count and by
    /// arena bytes), for backends that produce frames rather than read
    /// them.
    pub fn room(&self) -> usize {
        let by_count = self.max_frames - self.slots.len();
        let by_bytes = (self.arena.len() - self.used) / MAX_FRAME;
        by_count.min(by_bytes)
    }

    /// Number of frames held.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// True when no frame is held.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The `i`-th frame and its offload state.
    pub fn frame(&self, i: usize) -> (&[u8], &Offload) {
        let s = &self.slots[i];
        (&self.arena[s.start..s.start + s.len], &s.offload)
    }

    /// The port the `i`-th frame entered on, if its backend said
    /// ([`RxBatch::push_from`]).
    pub fn ingress(&self, i: usize) -> Option<PortId> {
        self.slots[i].ingress
    }
}

/// Why a backend could not send a frame. Each is counted on the port; a
/// frame is never retried (the sender's transport recovers, as it would
/// from a full queue on a wire).
#[derive(Debug, thiserror::Error)]
pub enum TxError {
    /// The frame is a GSO super-frame and this port takes only frames of
    /// its MTU; it would need software segmentation.
    #[error("GSO frame for a port without segmentation offload")]
    NeedsSegmentation,
    /// The frame's offload header is inconsistent with the frame (a
    /// checksum offset past its end).
    #[error("offload header does not fit the frame")]
    BadOffload,
    /// A GSO super-frame that software segmentation could not cut (its
    /// headers contradict its GSO type, or it is not TCP).
    #[error("cannot segment the GSO frame: {0}")]
    Segmentation(#[source] GsoError),
    /// The frame was for a port this backend does not serve (any more).
    #[error("no such tunnel port")]
    NoSuchPort,
    /// The kernel refused the write (queue full, device gone).
    #[error("write failed: {0}")]
    Io(#[source] io::Error),
}

/// What kind of I/O failed, for [`IoCounters`].
#[derive(Debug, thiserror::Error)]
pub enum RxError {
    /// A frame arrived whose framing is broken (a bad virtio-net header, a
    /// read shorter than the header): dropped and counted.
    #[error("malformed framing")]
    Malformed,
    /// The read itself failed.
    #[error("read failed: {0}")]
    Io(#[source] io::Error),
}

/// I/O failures per port (the core's counters say what it decided; these
/// say what the backend or the kernel refused).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IoCounters {
    /// Writes the kernel refused (queue full, device gone), or frames that
    /// could not be sent as they were (a GSO frame to a port without
    /// offload, an offload header that does not fit its frame).
    pub tx_errors: u64,
    /// Reads that failed, or frames with broken framing.
    pub rx_errors: u64,
    /// Frames sent with a framing different from their ingress port's (a
    /// virtio-net header added, dropped, or a checksum completed in
    /// software).
    pub converted: u64,
}

/// One kind of thing behind a switch port. The data plane owns each
/// backend on its one thread: no locks, and nothing here may block.
pub trait PortBackend: Send {
    /// A short name of the kind (`tap`), for tables and logs.
    fn kind(&self) -> &'static str;

    /// The descriptor the data plane watches for readability, or `None`
    /// for a backend that is only driven by its deadlines.
    fn readiness_fd(&self) -> Option<RawFd>;

    /// Reads frames into `batch` until it is full or the backend has no
    /// more waiting. Broken frames are skipped and counted in `counters`;
    /// an `Err` ends the turn (the port stays, and is counted).
    fn recv_batch(&mut self, batch: &mut RxBatch, counters: &mut IoCounters)
        -> Result<(), RxError>;

    /// Sends one frame. `offload` is the ingress backend's view of it: the
    /// backend keeps it (its own offloads), converts it (completes a
    /// partial checksum), or refuses it. `converted` is counted by the
    /// backend in `counters`.
    fn send(
        &mut self,
        frame: &[u8],
        offload: &Offload,
        counters: &mut IoCounters,
    ) -> Result<(), TxError>;

    /// Sends what [`PortBackend::send`] queued, for backends that batch
    /// their writes (`sendmmsg`). Called after each ingress batch.
    fn flush(&mut self, _counters: &mut IoCounters) {}

    /// True when this backend has deadlines ([`PortBackend::next_deadline`]
    /// may return `Some`); the data plane only asks those.
    fn has_deadlines(&self) -> bool {
        false
    }

    /// The earliest time the backend needs [`PortBackend::on_deadline`]
    /// (a retransmission, an idle timeout, a batch to flush).
    fn next_deadline(&self) -> Option<Instant> {
        None
    }

    /// Called once `now` has reached the backend's deadline.
    fn on_deadline(&mut self, _now: Instant, _counters: &mut IoCounters) {}

    /// True when frames wait that no readiness event will announce (an
    /// in-process stack made them while it was sent to, or a batch had no
    /// room for all of them): the data plane reads this backend again
    /// before it sleeps. Asked only of backends with deadlines, after each
    /// round; the default never asks for a read.
    fn rx_pending(&self) -> bool {
        false
    }
}

/// Completes a partial transport checksum in place, as a NIC with
/// checksum offload would: the one's-complement sum from `csum_start` to
/// the end of the frame, folded and stored at `csum_start + csum_offset`
/// (the field holds the pseudo-header sum the sender put there). The
/// offsets must have been checked against the frame
/// ([`vnet_hdr::Repr::check_frame_len`]).
pub fn complete_checksum(frame: &mut [u8], csum_start: usize, csum_offset: usize) {
    let field = csum_start + csum_offset;
    let mut sum: u64 = 0;
    let data = &frame[csum_start..];
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        sum += u64::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        sum += u64::from(u16::from_be_bytes([*last, 0]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    let folded = !(sum as u16);
    frame[field..field + 2].copy_from_slice(&folded.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_is_bounded_by_frames_and_by_arena_bytes() {
        let mut b = RxBatch::new(3, 4 * (MAX_FRAME + 10));
        for _ in 0..3 {
            let space = b.space(10).expect("room");
            space[10] = 0xab;
            b.push(10, 60, Offload::NONE);
        }
        assert!(b.space(10).is_none(), "frame limit reached");
        b.clear();
        let mut big = RxBatch::new(64, 2 * (MAX_FRAME + 10));
        let mut n = 0;
        while big.space(10).is_some() {
            big.push(10, MAX_FRAME, Offload::NONE);
            n += 1;
        }
        assert_eq!(n, 2, "arena limits a batch of big frames");
        assert_eq!(big.frame(1).0.len(), MAX_FRAME);
    }

    #[test]
    fn frames_keep_their_bytes_after_the_framing_is_dropped() {
        let mut b = RxBatch::new(4, MAX_FRAME * 4);
        let s = b.space(2).unwrap();
        s[..5].copy_from_slice(&[9, 9, 1, 2, 3]);
        b.push(2, 3, Offload::NONE);
        let s = b.space(0).unwrap();
        s[..2].copy_from_slice(&[4, 5]);
        b.push(0, 2, Offload::NONE);
        assert_eq!(b.frame(0).0, &[1, 2, 3]);
        assert_eq!(b.frame(1).0, &[4, 5]);
    }

    #[test]
    fn a_completed_checksum_verifies_to_zero() {
        // A UDP-like payload: the checksum field at offset 6 starts at 0
        // (a pseudo-header sum of zero), odd length to cover the padding.
        let mut frame = vec![0x12u8, 0x34, 0x56, 0x78, 0x00, 0x0b, 0, 0, 0xde, 0xad, 0xbe];
        complete_checksum(&mut frame, 0, 6);
        let mut sum: u32 = 0;
        for c in frame.chunks(2) {
            let w = if c.len() == 2 {
                [c[0], c[1]]
            } else {
                [c[0], 0]
            };
            sum += u32::from(u16::from_be_bytes(w));
        }
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        assert_eq!(
            sum, 0xffff,
            "one's-complement sum including the checksum is all ones"
        );
    }
}
