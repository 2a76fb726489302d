//! The smoltcp device of a gateway: two frame queues and their buffer
//! pools, no I/O. Frames the gateway accepts wait in `rx` for the stack;
//! frames the stack (or the gateway itself) makes wait in `tx` for the
//! switch. Buffers cycle through pools, so the steady state allocates
//! nothing per frame.

use crate::packet;
use smoltcp::phy::{self, Checksum, DeviceCapabilities, Medium, PacketMeta};
use std::collections::VecDeque;
use switchyard_switch::wire::vnet_hdr::{GsoType, Repr as Offload};

/// Largest frame the gateway makes: a 64 KiB TCP segment for the kernel to
/// split, with its Ethernet header.
pub const MAX_SEGMENT_FRAME: usize = 65_535;

/// Buffers kept for reuse per queue; more are freed.
const POOL_KEEP: usize = 256;

/// Frames waiting for the stack.
#[derive(Debug, Default)]
pub struct RxSide {
    queue: VecDeque<Vec<u8>>,
    pool: Vec<Vec<u8>>,
}

impl RxSide {
    /// Queues a copy of `frame` for the stack.
    pub fn push(&mut self, frame: &[u8]) {
        let mut buf = self.pool.pop().unwrap_or_default();
        buf.clear();
        buf.extend_from_slice(frame);
        self.queue.push_back(buf);
    }
}

/// Frames waiting for the switch, each with its offload state.
#[derive(Debug)]
pub struct TxSide {
    queue: VecDeque<(Vec<u8>, Offload)>,
    pool: Vec<Vec<u8>>,
    /// Mark TCP segments with a partial checksum (and GSO when longer than
    /// the segment size the stack asked for).
    offload: bool,
}

impl TxSide {
    /// A buffer from the pool, empty.
    pub fn buffer(&mut self) -> Vec<u8> {
        let mut buf = self.pool.pop().unwrap_or_default();
        buf.clear();
        buf
    }

    /// Queues a finished frame.
    pub fn push(&mut self, frame: Vec<u8>, offload: Offload) {
        self.queue.push_back((frame, offload));
    }

    /// Hands up to `max` queued frames to `out`, oldest first, and keeps
    /// the buffers.
    pub fn drain(&mut self, max: usize, mut out: impl FnMut(&[u8], &Offload)) -> usize {
        let mut n = 0;
        while n < max {
            let Some((buf, offload)) = self.queue.pop_front() else {
                break;
            };
            out(&buf, &offload);
            n += 1;
            if self.pool.len() < POOL_KEEP {
                self.pool.push(buf);
            }
        }
        n
    }

    /// Frames waiting.
    pub fn len(&self) -> usize {
        self.queue.len()
    }
}

/// The device smoltcp polls.
#[derive(Debug)]
pub struct GatewayDevice {
    /// Frames for the stack.
    pub rx: RxSide,
    /// Frames for the switch.
    pub tx: TxSide,
    caps: DeviceCapabilities,
}

impl GatewayDevice {
    /// A device for a network of this MTU; with `offload`, it takes and
    /// makes 64 KiB TCP segments with partial checksums (see
    /// [`crate::GatewayConfig::offload`]).
    pub fn new(mtu: u32, offload: bool) -> Self {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = mtu as usize + 14;
        if offload {
            // The kernel behind the TAP completes TCP checksums and splits
            // long segments; the gateway checks received checksums itself
            // where the kernel did not vouch for them.
            caps.checksum.tcp = Checksum::None;
            caps.segmentation.tcpv4 = std::num::NonZeroUsize::new(MAX_SEGMENT_FRAME);
            caps.segmentation.tcpv6 = std::num::NonZeroUsize::new(MAX_SEGMENT_FRAME);
        }
        GatewayDevice {
            rx: RxSide::default(),
            tx: TxSide {
                queue: VecDeque::new(),
                pool: Vec::new(),
                offload,
            },
            caps,
        }
    }
}

impl phy::Device for GatewayDevice {
    type RxToken<'a> = RxToken<'a>;
    type TxToken<'a> = TxToken<'a>;

    fn receive(
        &mut self,
        _timestamp: smoltcp::time::Instant,
    ) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        if self.rx.queue.is_empty() {
            return None;
        }
        Some((
            RxToken { side: &mut self.rx },
            TxToken {
                side: &mut self.tx,
                meta: PacketMeta::default(),
            },
        ))
    }

    fn transmit(&mut self, _timestamp: smoltcp::time::Instant) -> Option<Self::TxToken<'_>> {
        Some(TxToken {
            side: &mut self.tx,
            meta: PacketMeta::default(),
        })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        self.caps.clone()
    }
}

/// The stack's view of the next waiting frame.
pub struct RxToken<'a> {
    side: &'a mut RxSide,
}

impl phy::RxToken for RxToken<'_> {
    fn consume<R, F>(self, f: F) -> R
    where
        F: FnOnce(&[u8]) -> R,
    {
        let buf = self
            .side
            .queue
            .pop_front()
            .expect("receive() only hands out a token for a waiting frame");
        let r = f(&buf);
        if self.side.pool.len() < POOL_KEEP {
            self.side.pool.push(buf);
        }
        r
    }
}

/// Room for one frame the stack makes.
pub struct TxToken<'a> {
    side: &'a mut TxSide,
    meta: PacketMeta,
}

impl phy::TxToken for TxToken<'_> {
    fn consume<R, F>(self, len: usize, f: F) -> R
    where
        F: FnOnce(&mut [u8]) -> R,
    {
        let mut buf = self.side.buffer();
        buf.resize(len, 0);
        let r = f(&mut buf);
        let offload = if self.side.offload {
            let gso_size = self.meta.segmentation_offload_size.map(|s| s.get());
            packet::offload_tcp(&mut buf, gso_size)
        } else {
            Offload::NONE
        };
        self.side.push(buf, offload);
        r
    }

    fn set_meta(&mut self, meta: PacketMeta) {
        self.meta = meta;
    }
}

/// The GSO type for a TCP segment of this IP version.
pub(crate) fn tcp_gso(ipv6: bool) -> GsoType {
    if ipv6 {
        GsoType::TcpV6
    } else {
        GsoType::TcpV4
    }
}
