//! The VXLAN tunnel endpoint (VTEP): one UDP socket that serves every
//! tunnel port of a data plane.
//!
//! A tunnel port is a switch port for one (VNI, remote VTEP); all of them
//! share this endpoint, so it is not a [`PortBackend`](super::PortBackend)
//! of one port but a *shared* backend the data plane holds once:
//! - receiving, one `recvmmsg` reads up to a batch of datagrams straight
//!   into the data plane's [`RxBatch`] arena; each is checked and sorted by
//!   [`TunnelTable::decapsulate`] (which tunnel port it enters on, or a
//!   [`DecapDrop`](switchyard_switch::vxlan::DecapDrop) counted by reason)
//!   and its inner frame is pushed with that ingress port, in place;
//! - sending, [`TunnelEndpoint::send_to`] queues a datagram for the
//!   tunnel's remote: the 8-byte VXLAN header from the endpoint's own
//!   arena and, for a plain frame, the frame itself where it lies (two
//!   iovecs, no copy). A frame with a partial checksum is copied once and
//!   completed; a TCP GSO super-frame is cut once, in software
//!   ([`TcpSegments`]), to the tunnel's inner MTU, its segments written
//!   back to back behind their headers, and (with `udp_gso`) sent as one
//!   message with `UDP_SEGMENT`, so the kernel makes the datagrams.
//!   [`TunnelEndpoint::flush`] sends the queue with `sendmmsg`; the data
//!   plane calls it after each batch, before the batch's arena is reused;
//! - with `coalesce_tcp`, consecutive segments of one TCP flow in a
//!   received batch are merged in place into one GSO super-frame
//!   ([`TcpMerge`]), so the TAP behind gets one write for them.
//!
//! The socket is made and bound by the caller (inside the underlay's
//! namespace if need be) and handed over; the endpoint makes it
//! non-blocking. What the kernel refuses (a full send buffer) is dropped
//! and counted: TCP inside recovers, as from a loss on a wire.
//!
//! The outer UDP source port: a bound UDP socket cannot pick one per
//! datagram, so the caller may add send-only *source sockets* on other
//! ports ([`TunnelEndpoint::add_source_socket`]); each datagram then goes
//! out of the one the inner flow hashes to ([`FlowHash`], RFC 7348
//! section 5), so the underlay's ECMP and the receiver's RSS spread flows
//! while each flow keeps one port and its order. Without them every
//! datagram leaves from the bound port (the receiving kernel does not
//! mind; only the spread is lost).

use super::{complete_checksum, IoCounters, Offload, RxBatch, RxError, TxError};
use serde::{Deserialize, Serialize};
use std::io;
use std::mem::{size_of, zeroed};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use switchyard_switch::gso::{TcpGso, TcpMerge, TcpSegments};
use switchyard_switch::port::PortId;
use switchyard_switch::vxlan::{
    self, DecapCounters, FlowHash, PortRange, TunnelError, TunnelTable,
};
use switchyard_switch::wire::vnet_hdr::GsoType;
use switchyard_switch::wire::vxlan::HEADER_LEN as VXLAN_HDR_LEN;

/// IANA's VXLAN port (RFC 7348), the default destination port.
pub const DEFAULT_PORT: u16 = 4789;
/// Datagrams queued before the queue is sent without waiting for the
/// batch's end.
const TX_MSGS: usize = 256;
/// Bytes of the endpoint's own send arena (VXLAN headers, copied and
/// segmented frames): a batch's worth of segmented 64 KiB super-frames.
const TX_ARENA: usize = 512 * 1024;
/// Most datagrams read by one `recvmmsg`.
const RX_MSGS: usize = 64;
/// Largest UDP payload one `UDP_SEGMENT` message may carry (IPv4's 64 KiB
/// datagram less its IP and UDP headers).
const GSO_MAX_BYTES: usize = 65_507;
/// The kernel's `UDP_MAX_SEGMENTS`.
const GSO_MAX_SEGMENTS: usize = 64;
/// `UDP_SEGMENT` (linux/udp.h), not in every libc release.
const UDP_SEGMENT: libc::c_int = 103;
/// Socket buffers asked for, so a burst of a TCP window fits.
const SOCKET_BUFFER: libc::c_int = 8 << 20;

/// How the endpoint encapsulates.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TunnelEndpointConfig {
    /// The underlay's MTU: inner frames are cut to
    /// [`vxlan::overlay_mtu`] of it, and received datagrams may be that
    /// long.
    pub underlay_mtu: u32,
    /// UDP port of the remote VTEPs (4789 unless configured otherwise).
    pub remote_port: u16,
    /// Send a segmented super-frame as one `UDP_SEGMENT` message instead
    /// of one message per datagram.
    pub udp_gso: bool,
    /// Merge consecutive segments of a TCP flow received in one batch into
    /// a GSO super-frame ([`TcpMerge`]), so a TAP gets one write for many
    /// datagrams. Only for data planes whose ports all take GSO frames
    /// (TAPs with virtio-net headers, the gateway); off, every datagram is
    /// its own frame.
    pub coalesce_tcp: bool,
    /// Key of the flow hash that picks a source socket per inner flow
    /// (from the injected RNG, so remote hosts cannot aim flows at one).
    pub flow_seed: u64,
}

impl Default for TunnelEndpointConfig {
    fn default() -> Self {
        TunnelEndpointConfig {
            underlay_mtu: 1500,
            remote_port: DEFAULT_PORT,
            udp_gso: true,
            coalesce_tcp: true,
            flow_seed: 0,
        }
    }
}

/// Why a tunnel port could not be added.
#[derive(Debug, thiserror::Error)]
pub enum TunnelPortError {
    /// The table refused it (a duplicate, a VNI over 24 bits).
    #[error(transparent)]
    Table(#[from] TunnelError),
    /// An IPv6 remote for an endpoint bound to IPv4.
    #[error("remote VTEP {0} is IPv6 but the tunnel socket is IPv4; bind an IPv6 socket")]
    Family(IpAddr),
}

/// What the endpoint did, beyond the decapsulation counters.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TunnelStats {
    /// Datagrams handed to the kernel (a `UDP_SEGMENT` message counts its
    /// datagrams).
    pub tx_datagrams: u64,
    /// Messages `sendmmsg` took.
    pub tx_messages: u64,
    /// GSO super-frames cut in software.
    pub segmented: u64,
    /// Datagrams the kernel refused (full buffer): dropped.
    pub tx_dropped: u64,
    /// Datagrams longer than the receive buffer (cut short by the kernel):
    /// dropped, and counted as truncated too.
    pub rx_oversized: u64,
    /// Received TCP segments merged into super-frames.
    pub rx_coalesced: u64,
    /// Super-frames made of them.
    pub rx_superframes: u64,
}

/// A copy of the endpoint's state for the data plane's report.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TunnelReport {
    /// The bound underlay address.
    pub local: Option<SocketAddr>,
    /// Every tunnel: (VNI, remote VTEP, port).
    pub tunnels: Vec<(u32, IpAddr, PortId)>,
    /// Received datagrams delivered and dropped by reason.
    pub decap: DecapCounters,
    /// Send-side counts.
    pub stats: TunnelStats,
    /// Socket errors.
    pub io: IoCounters,
}

struct Tunnel {
    header: [u8; VXLAN_HDR_LEN],
    dst: libc::sockaddr_storage,
    dst_len: libc::socklen_t,
}

/// One queued message: bytes of the endpoint's arena, then optionally a
/// frame lying elsewhere (in the data plane's batch), and the segment size
/// of a `UDP_SEGMENT` message.
struct TxEntry {
    tunnel: u32,
    /// 0: the bound socket; n: source socket n - 1.
    socket: u8,
    own: core::ops::Range<usize>,
    external: Option<(*const u8, usize)>,
    gso_size: u16,
    datagrams: u16,
}

/// The shared VXLAN backend of a data plane (see the module doc).
pub struct TunnelEndpoint {
    socket: OwnedFd,
    local: SocketAddr,
    config: TunnelEndpointConfig,
    inner_mtu: usize,
    rx_slot: usize,
    table: TunnelTable,
    tunnels: hashbrown::HashMap<u32, Tunnel>,
    decap: DecapCounters,
    stats: TunnelStats,
    io: IoCounters,
    rx_addrs: Vec<libc::sockaddr_storage>,
    rx_iovs: Vec<libc::iovec>,
    rx_msgs: Vec<libc::mmsghdr>,
    tx_arena: Box<[u8]>,
    tx_used: usize,
    tx: Vec<TxEntry>,
    tx_iovs: Vec<[libc::iovec; 2]>,
    tx_cmsgs: Vec<[u64; 4]>,
    tx_msgs: Vec<libc::mmsghdr>,
    /// Which queue entry each message of the group being sent is.
    tx_order: Vec<usize>,
    /// Send-only sockets on other source ports ([`TunnelEndpoint::add_source_socket`]).
    sources: Vec<OwnedFd>,
    flow: FlowHash,
}

// SAFETY: the raw pointers in the scratch vectors (iovecs, message headers,
// queued external frames) are only written and read by whoever owns the
// endpoint, inside `recv_batch`, `send_to` and `flush`; between calls the
// queue points only at frames `send_to`'s caller keeps alive until the
// next flush (its safety contract). Moving the endpoint to another thread
// moves none of that memory.
unsafe impl Send for TunnelEndpoint {}

impl std::fmt::Debug for TunnelEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TunnelEndpoint")
            .field("local", &self.local)
            .field("tunnels", &self.table.len())
            .finish()
    }
}

impl TunnelEndpoint {
    /// Takes over a bound UDP socket (IPv4 or IPv6): makes it non-blocking
    /// and asks for large buffers.
    pub fn new(socket: OwnedFd, config: TunnelEndpointConfig) -> io::Result<TunnelEndpoint> {
        let fd = socket.as_raw_fd();
        let local = local_addr(fd)?;
        set_nonblocking(fd)?;
        for (force, plain) in [
            (libc::SO_SNDBUFFORCE, libc::SO_SNDBUF),
            (libc::SO_RCVBUFFORCE, libc::SO_RCVBUF),
        ] {
            // Best effort: FORCE needs CAP_NET_ADMIN, the plain one is
            // capped by net.core.[rw]mem_max.
            if setsockopt_int(fd, libc::SOL_SOCKET, force, SOCKET_BUFFER).is_err() {
                let _ = setsockopt_int(fd, libc::SOL_SOCKET, plain, SOCKET_BUFFER);
            }
        }
        let ipv6 = local.is_ipv6();
        let inner_mtu = vxlan::overlay_mtu(config.underlay_mtu, ipv6) as usize;
        let outer = if ipv6 { 48 } else { 28 };
        let max_payload = (config.underlay_mtu as usize)
            .saturating_sub(outer)
            .clamp(VXLAN_HDR_LEN + 14, 65_536);
        Ok(TunnelEndpoint {
            socket,
            local,
            inner_mtu,
            rx_slot: max_payload.next_multiple_of(64),
            config: config.clone(),
            table: TunnelTable::new(),
            tunnels: hashbrown::HashMap::new(),
            decap: DecapCounters::default(),
            stats: TunnelStats::default(),
            io: IoCounters::default(),
            // SAFETY (all three): plain C structs for which zero is valid.
            rx_addrs: vec![unsafe { zeroed() }; RX_MSGS],
            rx_iovs: Vec::with_capacity(RX_MSGS),
            rx_msgs: Vec::with_capacity(RX_MSGS),
            tx_arena: vec![0u8; TX_ARENA].into_boxed_slice(),
            tx_used: 0,
            tx: Vec::with_capacity(TX_MSGS),
            tx_iovs: Vec::with_capacity(TX_MSGS),
            tx_cmsgs: vec![[0u64; 4]; TX_MSGS],
            tx_msgs: Vec::with_capacity(TX_MSGS),
            tx_order: Vec::with_capacity(TX_MSGS),
            sources: Vec::new(),
            flow: FlowHash::new(config.flow_seed, PortRange::default()),
        })
    }

    /// The bound underlay address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The descriptor the data plane watches.
    pub fn readiness_fd(&self) -> RawFd {
        self.socket.as_raw_fd()
    }

    /// The inner MTU a tunnel port of this endpoint should have.
    pub fn inner_mtu(&self) -> u32 {
        self.inner_mtu as u32
    }

    /// Makes `port` the tunnel of (`vni`, `remote`). Control path.
    pub fn add_tunnel(
        &mut self,
        port: PortId,
        vni: u32,
        remote: IpAddr,
    ) -> Result<(), TunnelPortError> {
        let target = match (remote, self.local.is_ipv6()) {
            (IpAddr::V6(v6), false) => match v6.to_ipv4_mapped() {
                Some(v4) => SocketAddr::new(IpAddr::V4(v4), self.config.remote_port),
                None => return Err(TunnelPortError::Family(remote)),
            },
            (IpAddr::V4(v4), true) => {
                SocketAddr::new(IpAddr::V6(v4.to_ipv6_mapped()), self.config.remote_port)
            }
            (ip, _) => SocketAddr::new(ip, self.config.remote_port),
        };
        self.table.insert(vni, remote, port)?;
        let (dst, dst_len) = sockaddr(target);
        self.tunnels.insert(
            port.0,
            Tunnel {
                header: vxlan::header(vni),
                dst,
                dst_len,
            },
        );
        Ok(())
    }

    /// Forgets the tunnel of `port`; false if it had none.
    pub fn remove_tunnel(&mut self, port: PortId) -> bool {
        self.table.remove_port(port);
        self.tunnels.remove(&port.0).is_some()
    }

    /// The ports of every tunnel.
    pub fn ports(&self) -> impl Iterator<Item = PortId> + '_ {
        self.tunnels.keys().map(|&k| PortId(k))
    }

    /// A copy of the counters and the table.
    pub fn report(&self) -> TunnelReport {
        TunnelReport {
            local: Some(self.local),
            tunnels: self.table.tunnels().collect(),
            decap: self.decap.clone(),
            stats: self.stats.clone(),
            io: self.io.clone(),
        }
    }

    /// Reads what is waiting (one `recvmmsg`, up to what `batch` takes)
    /// and pushes each delivered inner frame with its tunnel port as the
    /// ingress. Dropped datagrams are counted by reason.
    pub fn recv_batch(&mut self, batch: &mut RxBatch) -> Result<(), RxError> {
        let slot = self.rx_slot;
        let (space, frames) = batch.free_space();
        let n = frames.min(space.len() / slot).min(RX_MSGS);
        if n == 0 {
            return Ok(());
        }
        self.rx_iovs.clear();
        self.rx_msgs.clear();
        let base = space.as_mut_ptr();
        for i in 0..n {
            self.rx_iovs.push(libc::iovec {
                // SAFETY: i * slot + slot <= space.len(), checked above.
                iov_base: unsafe { base.add(i * slot) }.cast(),
                iov_len: slot,
            });
        }
        for i in 0..n {
            // SAFETY: a zeroed msghdr is valid; the pointers set below
            // stay live for the call (vectors are not resized meanwhile).
            let mut m: libc::mmsghdr = unsafe { zeroed() };
            m.msg_hdr.msg_name = (&mut self.rx_addrs[i] as *mut libc::sockaddr_storage).cast();
            m.msg_hdr.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            m.msg_hdr.msg_iov = &mut self.rx_iovs[i];
            m.msg_hdr.msg_iovlen = 1;
            self.rx_msgs.push(m);
        }
        // SAFETY: n message headers, each naming a live buffer and address.
        let got = unsafe {
            libc::recvmmsg(
                self.socket.as_raw_fd(),
                self.rx_msgs.as_mut_ptr(),
                n as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if got < 0 {
            let err = io::Error::last_os_error();
            return match err.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(()),
                _ => {
                    self.io.rx_errors += 1;
                    Err(RxError::Io(err))
                }
            };
        }
        // Decide every datagram first (the arena is borrowed), then push
        // the delivered frames in arena order.
        let mut delivered = [(PortId(0), 0usize, 0usize); RX_MSGS];
        let mut count = 0;
        for i in 0..got as usize {
            let m = &self.rx_msgs[i];
            let len = m.msg_len as usize;
            let at = i * slot;
            let outcome = if m.msg_hdr.msg_flags & libc::MSG_TRUNC != 0 {
                self.stats.rx_oversized += 1;
                Err(vxlan::DecapDrop::Truncated)
            } else {
                match peer_ip(&self.rx_addrs[i]) {
                    Some(src) => self
                        .table
                        .decapsulate(src, &space[at..at + len])
                        .map(|d| (d.port, d.frame.len())),
                    // Not an IP peer: nothing a VTEP sends.
                    None => Err(vxlan::DecapDrop::UnknownVtep),
                }
            };
            self.decap.count(&outcome);
            if let Ok((port, frame_len)) = outcome {
                delivered[count] = (port, at + VXLAN_HDR_LEN, frame_len);
                count += 1;
            }
        }
        // Merge runs of one TCP flow's segments (in place, each at its
        // run's first datagram), then push every frame in arena order.
        let mut frames = [(PortId(0), 0usize, 0usize, Offload::NONE); RX_MSGS];
        let mut nframes = 0;
        let mut i = 0;
        while i < count {
            let (port, start, len) = delivered[i];
            i += 1;
            let mut frame = (port, start, len, Offload::NONE);
            if self.config.coalesce_tcp {
                if let Some(mut merge) = TcpMerge::start(space, start, len) {
                    while i < count
                        && delivered[i].0 == port
                        && merge.append(space, delivered[i].1, delivered[i].2)
                    {
                        i += 1;
                    }
                    let segments = u64::from(merge.segments());
                    let (merged_len, offload) = merge.finish(space);
                    if segments > 1 {
                        self.stats.rx_coalesced += segments;
                        self.stats.rx_superframes += 1;
                    }
                    frame = (port, start, merged_len, offload);
                }
            }
            frames[nframes] = frame;
            nframes += 1;
        }
        // `consumed`: how far into the free space the batch has advanced.
        let mut consumed = 0;
        for &(port, start, len, offload) in &frames[..nframes] {
            batch.push_from(Some(port), start - consumed, len, offload);
            consumed = start + len;
        }
        Ok(())
    }

    /// Queues `frame` for the tunnel of `port` (see the module doc for how
    /// each offload state is sent). The queue is sent by
    /// [`TunnelEndpoint::flush`]; a plain frame is not copied but sent
    /// from where it lies.
    ///
    /// # Safety
    ///
    /// `frame` must stay allocated and unchanged until the next
    /// [`TunnelEndpoint::flush`] returns (the data plane flushes after
    /// every batch, before the batch's arena is reused).
    pub unsafe fn send_to(
        &mut self,
        port: PortId,
        frame: &[u8],
        offload: &Offload,
        counters: &mut IoCounters,
    ) -> Result<(), TxError> {
        if !self.tunnels.contains_key(&port.0) {
            return Err(TxError::NoSuchPort);
        }
        let socket = self.socket_for(frame);
        match offload.gso {
            GsoType::None if !offload.needs_csum => {
                self.reserve(VXLAN_HDR_LEN, 1);
                let at = self.put_header(port.0);
                self.tx.push(TxEntry {
                    tunnel: port.0,
                    socket,
                    own: at..at + VXLAN_HDR_LEN,
                    external: Some((frame.as_ptr(), frame.len())),
                    gso_size: 0,
                    datagrams: 1,
                });
                Ok(())
            }
            GsoType::None => {
                offload
                    .check_frame_len(frame.len())
                    .map_err(|_| TxError::BadOffload)?;
                self.reserve(VXLAN_HDR_LEN + frame.len(), 1);
                let at = self.put_header(port.0);
                let body = &mut self.tx_arena[at + VXLAN_HDR_LEN..][..frame.len()];
                body.copy_from_slice(frame);
                complete_checksum(
                    body,
                    usize::from(offload.csum_start),
                    usize::from(offload.csum_offset),
                );
                self.tx_used = at + VXLAN_HDR_LEN + frame.len();
                self.tx.push(TxEntry {
                    tunnel: port.0,
                    socket,
                    own: at..self.tx_used,
                    external: None,
                    gso_size: 0,
                    datagrams: 1,
                });
                counters.converted += 1;
                Ok(())
            }
            GsoType::TcpV4 | GsoType::TcpV6 => {
                let kind = if offload.gso == GsoType::TcpV4 {
                    TcpGso::V4
                } else {
                    TcpGso::V6
                };
                self.segment(port.0, socket, frame, kind, usize::from(offload.gso_size))?;
                counters.converted += 1;
                Ok(())
            }
            GsoType::Udp | GsoType::UdpL4 => Err(TxError::NeedsSegmentation),
        }
    }

    /// Cuts a TCP super-frame into datagrams of the inner MTU, written back
    /// to back (header, segment, header, segment...) and queued as
    /// `UDP_SEGMENT` messages (or one message each).
    fn segment(
        &mut self,
        tunnel: u32,
        socket: u8,
        frame: &[u8],
        kind: TcpGso,
        gso_size: usize,
    ) -> Result<(), TxError> {
        let mut plan = TcpSegments::plan(frame, kind, gso_size).map_err(TxError::Segmentation)?;
        let ip_and_tcp = plan.header_len() - plan.network_offset();
        let cap = self.inner_mtu.saturating_sub(ip_and_tcp).max(1);
        if cap < gso_size {
            plan = TcpSegments::plan(frame, kind, cap).map_err(TxError::Segmentation)?;
        }
        self.stats.segmented += 1;
        let datagram = VXLAN_HDR_LEN + plan.max_segment_len();
        let per_message = if self.config.udp_gso {
            (GSO_MAX_BYTES / datagram).clamp(1, GSO_MAX_SEGMENTS)
        } else {
            1
        };
        let mut i = 0;
        while i < plan.count() {
            let n = per_message.min(plan.count() - i);
            self.reserve(n * datagram, 1);
            let start = self.tx_used;
            for k in i..i + n {
                let at = self.put_header(tunnel);
                let len = plan.write(frame, k, &mut self.tx_arena[at + VXLAN_HDR_LEN..]);
                self.tx_used = at + VXLAN_HDR_LEN + len;
            }
            self.tx.push(TxEntry {
                tunnel,
                socket,
                own: start..self.tx_used,
                external: None,
                gso_size: if n > 1 { datagram as u16 } else { 0 },
                datagrams: n as u16,
            });
            i += n;
        }
        Ok(())
    }

    /// Makes room for `bytes` more in the arena and `msgs` more entries,
    /// sending the queue first if need be.
    fn reserve(&mut self, bytes: usize, msgs: usize) {
        if self.tx_used + bytes > self.tx_arena.len() || self.tx.len() + msgs > TX_MSGS {
            self.flush();
        }
    }

    /// Writes the tunnel's VXLAN header at the arena's end; returns where.
    fn put_header(&mut self, tunnel: u32) -> usize {
        let at = self.tx_used;
        let header = self.tunnels[&tunnel].header;
        self.tx_arena[at..at + VXLAN_HDR_LEN].copy_from_slice(&header);
        self.tx_used = at + VXLAN_HDR_LEN;
        at
    }

    /// Sends the queue with `sendmmsg`. What the kernel refuses is dropped
    /// and counted.
    pub fn flush(&mut self) {
        if self.tx.is_empty() {
            return;
        }
        self.tx_iovs.clear();
        self.tx_msgs.clear();
        let arena = self.tx_arena.as_ptr();
        for e in &self.tx {
            let own = libc::iovec {
                // SAFETY: the range lies inside the arena.
                iov_base: unsafe { arena.add(e.own.start) } as *mut libc::c_void,
                iov_len: e.own.len(),
            };
            let ext = match e.external {
                Some((p, len)) => libc::iovec {
                    iov_base: p as *mut libc::c_void,
                    iov_len: len,
                },
                None => libc::iovec {
                    iov_base: std::ptr::null_mut(),
                    iov_len: 0,
                },
            };
            self.tx_iovs.push([own, ext]);
        }
        for socket in 0..=self.sources.len() {
            self.send_group(socket);
        }
        self.tx.clear();
        self.tx_iovs.clear();
        self.tx_msgs.clear();
        self.tx_used = 0;
    }

    /// Sends the queued messages of one socket (0: the bound socket, then
    /// the source sockets) with `sendmmsg`, in queue order.
    fn send_group(&mut self, socket: usize) {
        self.tx_msgs.clear();
        self.tx_order.clear();
        // SAFETY: CMSG_SPACE is a pure computation.
        let cmsg_space = unsafe { libc::CMSG_SPACE(size_of::<u16>() as u32) } as usize;
        for (i, e) in self.tx.iter().enumerate() {
            if usize::from(e.socket) != socket {
                continue;
            }
            let t = &self.tunnels[&e.tunnel];
            // SAFETY: zeroed msghdr is valid; every pointer set below is
            // into a vector not resized until the send is done.
            let mut m: libc::mmsghdr = unsafe { zeroed() };
            m.msg_hdr.msg_name = &t.dst as *const libc::sockaddr_storage as *mut libc::c_void;
            m.msg_hdr.msg_namelen = t.dst_len;
            m.msg_hdr.msg_iov = self.tx_iovs[i].as_mut_ptr();
            m.msg_hdr.msg_iovlen = if e.external.is_some() { 2 } else { 1 };
            if e.gso_size > 0 {
                let buf = &mut self.tx_cmsgs[i];
                m.msg_hdr.msg_control = buf.as_mut_ptr().cast();
                m.msg_hdr.msg_controllen = cmsg_space as _;
                // SAFETY: the control buffer holds CMSG_SPACE(2) bytes,
                // aligned for cmsghdr; CMSG_FIRSTHDR/CMSG_DATA stay in it.
                unsafe {
                    let c = libc::CMSG_FIRSTHDR(&m.msg_hdr);
                    (*c).cmsg_level = libc::SOL_UDP;
                    (*c).cmsg_type = UDP_SEGMENT;
                    (*c).cmsg_len = libc::CMSG_LEN(size_of::<u16>() as u32) as _;
                    std::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<u16>(), e.gso_size);
                }
            }
            self.tx_msgs.push(m);
            self.tx_order.push(i);
        }
        let fd = match socket {
            0 => self.socket.as_raw_fd(),
            n => self.sources[n - 1].as_raw_fd(),
        };
        let total = self.tx_msgs.len();
        let mut sent = 0;
        while sent < total {
            // SAFETY: the message headers from `sent` on are valid and
            // point at live buffers (the arena, the batch being flushed).
            let r = unsafe {
                libc::sendmmsg(
                    fd,
                    self.tx_msgs[sent..].as_mut_ptr(),
                    (total - sent) as libc::c_uint,
                    libc::MSG_DONTWAIT,
                )
            };
            if r < 0 {
                let err = io::Error::last_os_error();
                if err.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                self.io.tx_errors += 1;
                tracing::trace!(error = %err, "sendmmsg failed");
                if err.kind() == io::ErrorKind::WouldBlock {
                    // The buffer is full: the rest is dropped.
                    for &i in &self.tx_order[sent..] {
                        self.stats.tx_dropped += u64::from(self.tx[i].datagrams);
                    }
                    break;
                }
                let e = &self.tx[self.tx_order[sent]];
                if err.raw_os_error() == Some(libc::EIO) && e.gso_size > 0 && self.config.udp_gso {
                    // The kernel refuses UDP GSO where the route's device
                    // has no checksum offload: send datagrams one by one
                    // from now on.
                    tracing::warn!("UDP_SEGMENT refused (EIO): sending one datagram per message");
                    self.config.udp_gso = false;
                }
                // This message is refused (a route, an MTU): skip it.
                self.stats.tx_dropped += u64::from(e.datagrams);
                sent += 1;
                continue;
            }
            for &i in &self.tx_order[sent..sent + r as usize] {
                self.stats.tx_datagrams += u64::from(self.tx[i].datagrams);
            }
            self.stats.tx_messages += r as u64;
            sent += r as usize;
        }
    }

    /// Adds a socket to send from, bound by the caller to the underlay
    /// address and a port of its own (0: any), and returns that port.
    /// With source sockets, each datagram goes out of the one
    /// [`FlowHash`] picks for its inner flow, so the outer UDP source port
    /// follows the flow (RFC 7348 section 5) and the underlay's ECMP and
    /// the receiver's RSS spread flows while each keeps its order. They
    /// never receive: a filter drops whatever is sent to them.
    pub fn add_source_socket(&mut self, socket: OwnedFd) -> io::Result<u16> {
        if self.sources.len() >= MAX_SOURCE_SOCKETS {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "at most 255 source sockets per tunnel endpoint",
            ));
        }
        let fd = socket.as_raw_fd();
        let addr = local_addr(fd)?;
        if addr.ip() != self.local.ip() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "source socket bound to {addr}, not to the endpoint's address {}",
                    self.local.ip()
                ),
            ));
        }
        set_nonblocking(fd)?;
        if setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_SNDBUFFORCE, SOCKET_BUFFER).is_err() {
            let _ = setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_SNDBUF, SOCKET_BUFFER);
        }
        drop_everything_received(fd)?;
        self.sources.push(socket);
        Ok(addr.port())
    }

    /// Which socket sends the datagrams of `frame`: 0 (the bound one)
    /// without source sockets, else the one its flow hashes to.
    fn socket_for(&self, frame: &[u8]) -> u8 {
        match self.sources.len() {
            0 => 0,
            n => 1 + ((self.flow.hash(frame) >> 32) % n as u64) as u8,
        }
    }
}

/// Most source sockets (their index is a byte).
const MAX_SOURCE_SOCKETS: usize = 255;

fn set_nonblocking(fd: RawFd) -> io::Result<()> {
    // SAFETY: fcntl on a descriptor the caller owns.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 || unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Attaches a classic BPF filter that keeps nothing (`ret #0`), so a
/// send-only socket never queues what strangers send to its port.
fn drop_everything_received(fd: RawFd) -> io::Result<()> {
    let mut program = [libc::sock_filter {
        code: 0x06, // BPF_RET | BPF_K
        jt: 0,
        jf: 0,
        k: 0,
    }];
    let fprog = libc::sock_fprog {
        len: 1,
        filter: program.as_mut_ptr(),
    };
    // SAFETY: setsockopt copies the program it points at.
    let r = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ATTACH_FILTER,
            (&fprog as *const libc::sock_fprog).cast(),
            size_of::<libc::sock_fprog>() as libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn setsockopt_int(
    fd: RawFd,
    level: libc::c_int,
    name: libc::c_int,
    v: libc::c_int,
) -> io::Result<()> {
    // SAFETY: setsockopt reads an int of the given size.
    let r = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&v as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn local_addr(fd: RawFd) -> io::Result<SocketAddr> {
    // SAFETY: getsockname writes at most `len` bytes into the storage.
    let mut ss: libc::sockaddr_storage = unsafe { zeroed() };
    let mut len = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    let r = unsafe {
        libc::getsockname(
            fd,
            (&mut ss as *mut libc::sockaddr_storage).cast(),
            &mut len,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    let port = match i32::from(ss.ss_family) {
        // SAFETY: the family says which struct the storage holds.
        libc::AF_INET => {
            u16::from_be(unsafe { *(&ss as *const _ as *const libc::sockaddr_in) }.sin_port)
        }
        libc::AF_INET6 => {
            u16::from_be(unsafe { *(&ss as *const _ as *const libc::sockaddr_in6) }.sin6_port)
        }
        _ => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the tunnel socket is not an IPv4 or IPv6 UDP socket",
            ))
        }
    };
    let ip = peer_ip(&ss).expect("family checked");
    Ok(SocketAddr::new(ip, port))
}

/// The IP address in a socket address the kernel filled in.
fn peer_ip(ss: &libc::sockaddr_storage) -> Option<IpAddr> {
    match i32::from(ss.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in.
            let sin =
                unsafe { &*(ss as *const libc::sockaddr_storage as *const libc::sockaddr_in) };
            Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(
                sin.sin_addr.s_addr,
            ))))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says the storage holds a sockaddr_in6.
            let sin6 =
                unsafe { &*(ss as *const libc::sockaddr_storage as *const libc::sockaddr_in6) };
            Some(IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr)))
        }
        _ => None,
    }
}

fn sockaddr(addr: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: zero is a valid sockaddr_storage; we write the struct the
    // family names, which fits in the storage.
    let mut ss: libc::sockaddr_storage = unsafe { zeroed() };
    let len = match addr {
        SocketAddr::V4(a) => {
            let sin =
                unsafe { &mut *(&mut ss as *mut libc::sockaddr_storage as *mut libc::sockaddr_in) };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_port = a.port().to_be();
            sin.sin_addr.s_addr = u32::from(*a.ip()).to_be();
            size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            let sin6 = unsafe {
                &mut *(&mut ss as *mut libc::sockaddr_storage as *mut libc::sockaddr_in6)
            };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_port = a.port().to_be();
            sin6.sin6_addr.s6_addr = a.ip().octets();
            sin6.sin6_scope_id = a.scope_id();
            size_of::<libc::sockaddr_in6>()
        }
    };
    (ss, len as libc::socklen_t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;

    /// A TCP/IPv4 super-frame of `payload` bytes (ACK, PSH), headers only
    /// once, checksum field zero.
    fn superframe(payload: usize) -> Vec<u8> {
        crate::test_frames::tcp4_superframe([2, 0, 0, 0, 0, 2], [2, 0, 0, 0, 0, 1], payload, |i| {
            (i * 3) as u8
        })
    }

    fn endpoint(coalesce_tcp: bool) -> (TunnelEndpoint, UdpSocket) {
        let remote = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut ep = TunnelEndpoint::new(
            OwnedFd::from(UdpSocket::bind("127.0.0.1:0").unwrap()),
            TunnelEndpointConfig {
                remote_port: remote.local_addr().unwrap().port(),
                coalesce_tcp,
                ..Default::default()
            },
        )
        .unwrap();
        ep.add_tunnel(PortId(7), 9, IpAddr::V4(Ipv4Addr::LOCALHOST))
            .unwrap();
        (ep, remote)
    }

    /// Sends the segments of a 4000-byte super-frame (MSS 1000) to the
    /// endpoint as VXLAN datagrams and reads them in one batch.
    fn receive_segments(ep: &mut TunnelEndpoint, remote: &UdpSocket) -> RxBatch {
        let f = superframe(4000);
        let plan = TcpSegments::plan(&f, TcpGso::V4, 1000).unwrap();
        for i in 0..plan.count() {
            let mut d = vxlan::header(9).to_vec();
            d.resize(8 + plan.segment_len(i), 0);
            plan.write(&f, i, &mut d[8..]);
            remote.send_to(&d, ep.local_addr()).unwrap();
        }
        let mut batch = RxBatch::new(64, 2 * super::super::MAX_FRAME);
        // Loopback delivers synchronously: all four are queued already.
        ep.recv_batch(&mut batch).unwrap();
        batch
    }

    #[test]
    fn a_flows_segments_in_one_batch_become_one_gso_frame() {
        let (mut ep, remote) = endpoint(true);
        let batch = receive_segments(&mut ep, &remote);
        assert_eq!(batch.len(), 1);
        assert_eq!(batch.ingress(0), Some(PortId(7)));
        let (frame, offload) = batch.frame(0);
        assert_eq!(offload.gso, GsoType::TcpV4);
        assert_eq!(offload.gso_size, 1000);
        assert!(offload.needs_csum);
        assert_eq!(
            &frame[54..],
            &superframe(4000)[54..],
            "the whole payload, in order"
        );
        let report = ep.report();
        assert_eq!(report.decap.delivered, 4);
        assert_eq!(
            (report.stats.rx_coalesced, report.stats.rx_superframes),
            (4, 1)
        );
    }

    #[test]
    fn without_coalescing_each_datagram_is_its_own_frame() {
        let (mut ep, remote) = endpoint(false);
        let batch = receive_segments(&mut ep, &remote);
        assert_eq!(batch.len(), 4);
        for i in 0..4 {
            assert_eq!(batch.frame(i).1, &Offload::NONE);
            assert_eq!(batch.frame(i).0.len(), 54 + 1000);
        }
        assert_eq!(ep.report().stats.rx_superframes, 0);
    }

    #[test]
    fn with_source_sockets_each_flow_keeps_one_source_port_and_flows_spread() {
        let (mut ep, remote) = endpoint(false);
        remote
            .set_read_timeout(Some(std::time::Duration::from_millis(300)))
            .unwrap();
        let mut ports = std::collections::BTreeSet::new();
        for _ in 0..8 {
            let s = UdpSocket::bind("127.0.0.1:0").unwrap();
            ports.insert(ep.add_source_socket(OwnedFd::from(s)).unwrap());
        }
        let elsewhere = UdpSocket::bind("127.0.0.2:0").unwrap();
        assert!(ep.add_source_socket(OwnedFd::from(elsewhere)).is_err());
        let flow = |sport: u16| {
            let mut f = superframe(10);
            f[34..36].copy_from_slice(&sport.to_be_bytes());
            f
        };
        let mut counters = IoCounters::default();
        let mut first: Option<Vec<u16>> = None;
        let frames: Vec<Vec<u8>> = (0..32u16).map(|p| flow(40000 + p)).collect();
        for _round in 0..2 {
            for f in &frames {
                // SAFETY: `frames` outlives the flush below.
                unsafe { ep.send_to(PortId(7), f, &Offload::NONE, &mut counters) }.unwrap();
            }
            ep.flush();
            let mut seen = std::collections::BTreeMap::new();
            let mut buf = [0u8; 2048];
            for _ in 0..32 {
                let (n, from) = remote.recv_from(&mut buf).expect("datagram");
                assert!(ports.contains(&from.port()), "{from} is a source socket");
                let sport = u16::from_be_bytes([buf[8 + 34], buf[8 + 35]]);
                assert_eq!(&buf[8..n], &flow(sport)[..]);
                seen.insert(sport, from.port());
            }
            let used: std::collections::BTreeSet<u16> = seen.values().copied().collect();
            assert!(
                used.len() >= 4,
                "32 flows over 8 sockets used only {used:?}"
            );
            let by_flow: Vec<u16> = (0..32).map(|p| seen[&(40000 + p)]).collect();
            match &first {
                None => first = Some(by_flow),
                Some(before) => assert_eq!(&by_flow, before, "a flow keeps its port"),
            }
        }
        assert_eq!(ep.report().stats.tx_datagrams, 64);
    }
}
