//! The real-mode data plane: one thread owns the [`Bridge`] and every
//! port's file descriptor, and moves frames between them.
//!
//! - No lock and no allocation per frame: the frame buffer, the egress list
//!   and the port table belong to the thread. The control plane talks to it
//!   through a channel and an eventfd, handled between batches, so it never
//!   stalls forwarding and forwarding never waits for it.
//! - Batches: epoll reports ready ports; each is read until it has no more
//!   frames or a batch of [`BATCH`] has been moved (then the next port gets
//!   its turn; level-triggered epoll brings us back).
//! - Offloads: with virtio-net headers (`IFF_VNET_HDR` + `TUNSETOFFLOAD`),
//!   a TCP sender's 64 KiB GSO frames and partial checksums cross the
//!   switch untouched: the header is forwarded with the frame, and the
//!   receiving kernel segments or checksums only if it must. Every port the
//!   daemon makes today takes such frames, so nothing is segmented in
//!   software; ports that cannot (VXLAN tunnels, the gateway) will set
//!   `vnet_hdr = false` and get software segmentation when they land.
//! - Where the time goes: on the benchmark machine 97% of this thread's
//!   time is the kernel's TAP read and write (the write also runs the
//!   receiving container's network stack), so per-frame work here is kept
//!   to one `read`, the core's decision and one `write` per destination.
//! - Busy polling, opt-in: with `busy_poll` set (the daemon's
//!   `--busy-poll-us N`) the thread keeps polling (epoll with a zero
//!   timeout) for N µs after the last event before it sleeps, which saves
//!   its wake-up when the next frame comes sooner: request/response traffic
//!   between containers gets faster (a UDP query and its answer through the
//!   switch: median 40 → 31 µs, p99 66 → 48 µs with N = 50), for CPU (the
//!   switch thread went from 25% to 39% of a core in that test). It does
//!   nothing for frames further apart (ping every 10 ms) and, under bulk
//!   load on a small machine, takes CPU the endpoints need (TCP: 68% → 75%
//!   of a core, 19 → 18 Gbit/s), hence off by default (`benches/README.md`
//!   has the measurements).

use crate::bridge::{Bridge, BridgeConfig, BridgeStats, Egress};
use crate::fdb::FdbEntry;
use crate::port::{PortConfig, PortCounters, PortId};
use crate::time::Instant;
use crate::wire::vnet_hdr::HEADER_LEN as VNET_HDR_LEN;
use crossbeam_channel::{Receiver, Sender};
use serde::{Deserialize, Serialize};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::thread::JoinHandle;
use std::time::Duration;

/// Frames moved from one port before the next ready port gets a turn.
pub const BATCH: usize = 64;
/// Room for the largest frame: a 64 KiB GSO frame, Ethernet and VLAN
/// headers, and the virtio-net header.
const BUF_LEN: usize = 65_550 + VNET_HDR_LEN + 64;
/// How often aged FDB entries are swept.
const EXPIRE_EVERY: Duration = Duration::from_secs(5);
/// epoll token of the command eventfd.
const WAKE_TOKEN: u64 = u64::MAX;

/// How the data plane is set up.
#[derive(Clone, Debug, Default)]
pub struct DataplaneConfig {
    /// The bridge's tunables.
    pub bridge: BridgeConfig,
    /// Keep polling this long after the last event before sleeping (zero:
    /// off, the default; capped at [`MAX_BUSY_POLL`]). Trades CPU for the
    /// wake-up latency of request/response traffic.
    pub busy_poll: Duration,
}

/// How a port's frames are framed on its descriptor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortIo {
    /// Each read and write carries a virtio-net header before the frame.
    pub vnet_hdr: bool,
}

/// I/O failures per port (the core's counters say what it decided; these
/// say what the kernel refused).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IoCounters {
    /// Writes the kernel refused (queue full, device gone).
    pub tx_errors: u64,
    /// Reads that failed with something other than "no more frames".
    pub rx_errors: u64,
    /// Frames forwarded between ports whose framing differs, which needs
    /// a header conversion (or software segmentation).
    pub converted: u64,
}

/// One port as seen in a [`Snapshot`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PortSnapshot {
    /// The port's id.
    pub id: PortId,
    /// Its configuration.
    pub config: PortConfig,
    /// What the switch core counted.
    pub counters: PortCounters,
    /// What the kernel refused.
    pub io: IoCounters,
}

/// A consistent copy of the data plane's state, for `inspect` and tables.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Snapshot {
    /// Every port, by id.
    pub ports: Vec<PortSnapshot>,
    /// The forwarding database, sorted by (segment, MAC).
    pub fdb: Vec<FdbEntry>,
    /// Bridge-wide counters.
    pub stats: BridgeStats,
    /// Nanoseconds since the data plane started (the FDB's time base).
    pub now_nanos: u64,
}

enum Command {
    AddPort {
        config: PortConfig,
        fd: OwnedFd,
        io: PortIo,
        reply: Sender<PortId>,
    },
    RemovePort {
        port: PortId,
        reply: Sender<bool>,
    },
    Snapshot {
        reply: Sender<Snapshot>,
    },
    Stop,
}

/// Handle to the data-plane thread.
#[derive(Debug)]
pub struct Dataplane {
    commands: Sender<Command>,
    wake: OwnedFd,
    thread: Option<JoinHandle<()>>,
}

/// Why the data plane could not do something.
#[derive(Debug, thiserror::Error)]
pub enum DataplaneError {
    /// A system call failed while starting it.
    #[error("cannot start the data plane: {0}")]
    Start(#[source] io::Error),
    /// The thread is gone (it panicked or was stopped).
    #[error("the data plane thread has stopped; restart the daemon")]
    Stopped,
    /// epoll refused the descriptor.
    #[error("cannot watch the port's descriptor: {0}")]
    Register(#[source] io::Error),
}

impl Dataplane {
    /// Starts the data-plane thread.
    pub fn start(config: DataplaneConfig) -> Result<Dataplane, DataplaneError> {
        let busy_poll = config.busy_poll.min(MAX_BUSY_POLL);
        // SAFETY: plain syscalls; results checked.
        let epoll = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if epoll < 0 {
            return Err(DataplaneError::Start(io::Error::last_os_error()));
        }
        // SAFETY: epoll is a fresh descriptor we own.
        let epoll = unsafe { OwnedFd::from_raw_fd(epoll) };
        // SAFETY: as above.
        let wake = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if wake < 0 {
            return Err(DataplaneError::Start(io::Error::last_os_error()));
        }
        // SAFETY: wake is a fresh descriptor we own.
        let wake = unsafe { OwnedFd::from_raw_fd(wake) };
        epoll_add(epoll.as_raw_fd(), wake.as_raw_fd(), WAKE_TOKEN)
            .map_err(DataplaneError::Start)?;
        let thread_wake = wake.try_clone().map_err(DataplaneError::Start)?;
        let (tx, rx) = crossbeam_channel::unbounded();
        let thread = std::thread::Builder::new()
            .name("dataplane".into())
            .spawn(move || Worker::new(config, epoll, thread_wake, rx, busy_poll).run())
            .map_err(DataplaneError::Start)?;
        Ok(Dataplane {
            commands: tx,
            wake,
            thread: Some(thread),
        })
    }

    fn send(&self, cmd: Command) -> Result<(), DataplaneError> {
        self.commands
            .send(cmd)
            .map_err(|_| DataplaneError::Stopped)?;
        let one: u64 = 1;
        // SAFETY: writing 8 bytes from a live u64 to our eventfd.
        unsafe { libc::write(self.wake.as_raw_fd(), (&one as *const u64).cast(), 8) };
        Ok(())
    }

    /// Adds a port whose frames are read from and written to `fd`. When
    /// this returns, frames flow.
    pub fn add_port(
        &self,
        config: PortConfig,
        fd: OwnedFd,
        io: PortIo,
    ) -> Result<PortId, DataplaneError> {
        let (reply, rx) = crossbeam_channel::bounded(1);
        self.send(Command::AddPort {
            config,
            fd,
            io,
            reply,
        })?;
        rx.recv().map_err(|_| DataplaneError::Stopped)
    }

    /// Removes a port and closes its descriptor. When this returns, no frame
    /// reaches it or comes from it any more. False if it did not exist.
    pub fn remove_port(&self, port: PortId) -> Result<bool, DataplaneError> {
        let (reply, rx) = crossbeam_channel::bounded(1);
        self.send(Command::RemovePort { port, reply })?;
        rx.recv().map_err(|_| DataplaneError::Stopped)
    }

    /// A copy of ports, counters and the FDB.
    pub fn snapshot(&self) -> Result<Snapshot, DataplaneError> {
        let (reply, rx) = crossbeam_channel::bounded(1);
        self.send(Command::Snapshot { reply })?;
        rx.recv().map_err(|_| DataplaneError::Stopped)
    }

    /// Stops the thread and closes every port descriptor (persistent TAPs
    /// stay, with their configuration, for the next start).
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(t) = self.thread.take() {
            let _ = self.send(Command::Stop);
            let _ = t.join();
        }
    }
}

impl Drop for Dataplane {
    fn drop(&mut self) {
        self.shutdown();
    }
}

struct PortSlot {
    fd: OwnedFd,
    io: PortIo,
    counters: IoCounters,
}

struct Worker {
    bridge: Bridge,
    epoll: OwnedFd,
    wake: OwnedFd,
    commands: Receiver<Command>,
    /// By port id. A map, not a vector indexed by id: ids are never
    /// reused, so a vector would grow with every connect ever made.
    ports: hashbrown::HashMap<u32, PortSlot>,
    egress: Egress,
    buf: Box<[u8]>,
    out: Box<[u8]>,
    started: std::time::Instant,
    last_expire: Instant,
    /// Keep polling (without sleeping) this long after the last event;
    /// zero (the default) never spins.
    busy_poll: Duration,
}

impl Worker {
    #[allow(clippy::disallowed_methods)] // real mode: the data plane's clock is the system's monotonic one
    fn new(
        config: DataplaneConfig,
        epoll: OwnedFd,
        wake: OwnedFd,
        commands: Receiver<Command>,
        busy_poll: Duration,
    ) -> Worker {
        Worker {
            bridge: Bridge::new(config.bridge),
            epoll,
            wake,
            commands,
            ports: hashbrown::HashMap::new(),
            egress: Egress::with_capacity(64),
            buf: vec![0u8; BUF_LEN].into_boxed_slice(),
            out: vec![0u8; BUF_LEN].into_boxed_slice(),
            started: std::time::Instant::now(),
            last_expire: Instant::ZERO,
            busy_poll,
        }
    }

    fn now(&self) -> Instant {
        Instant::from_nanos(u64::try_from(self.started.elapsed().as_nanos()).unwrap_or(u64::MAX))
    }

    fn run(mut self) {
        let mut events = [libc::epoll_event { events: 0, u64: 0 }; 64];
        // Until when to poll without sleeping (see `busy_poll`).
        let mut spin_until = Instant::ZERO;
        let mut now = self.now();
        loop {
            let timeout = if now < spin_until { 0 } else { 1000 };
            // SAFETY: events is a valid array of the given length.
            let n = unsafe {
                libc::epoll_wait(
                    self.epoll.as_raw_fd(),
                    events.as_mut_ptr(),
                    events.len() as i32,
                    timeout,
                )
            };
            if n < 0 {
                let err = io::Error::last_os_error();
                if err.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                tracing::error!(error = %err, "epoll_wait failed; data plane stops");
                return;
            }
            now = self.now();
            if n > 0 && !self.busy_poll.is_zero() {
                spin_until = now + self.busy_poll;
            }
            for ev in &events[..n as usize] {
                let token = ev.u64;
                if token == WAKE_TOKEN {
                    let mut v: u64 = 0;
                    // SAFETY: reading 8 bytes into a live u64 from our eventfd.
                    unsafe { libc::read(self.wake.as_raw_fd(), (&mut v as *mut u64).cast(), 8) };
                    if !self.handle_commands() {
                        return;
                    }
                } else {
                    self.drain_port(now, token as u32);
                }
            }
            if now.saturating_duration_since(self.last_expire) >= EXPIRE_EVERY {
                self.bridge.expire(now);
                self.last_expire = now;
            }
        }
    }

    /// Applies queued commands; false when asked to stop.
    fn handle_commands(&mut self) -> bool {
        while let Ok(cmd) = self.commands.try_recv() {
            match cmd {
                Command::AddPort {
                    config,
                    fd,
                    io,
                    reply,
                } => {
                    let id = self.bridge.add_port(config);
                    if let Err(e) =
                        epoll_add(self.epoll.as_raw_fd(), fd.as_raw_fd(), u64::from(id.0))
                    {
                        tracing::error!(port = %id, error = %e, "cannot watch port; it will not receive frames");
                    }
                    self.ports.insert(
                        id.0,
                        PortSlot {
                            fd,
                            io,
                            counters: IoCounters::default(),
                        },
                    );
                    self.egress = self.bridge.egress();
                    let _ = reply.send(id);
                }
                Command::RemovePort { port, reply } => {
                    let existed = self.bridge.remove_port(port).is_some();
                    if let Some(slot) = self.ports.remove(&port.0) {
                        epoll_del(self.epoll.as_raw_fd(), slot.fd.as_raw_fd());
                        // Dropping the slot closes the descriptor.
                    }
                    let _ = reply.send(existed);
                }
                Command::Snapshot { reply } => {
                    let ports = self
                        .bridge
                        .ports()
                        .map(|(id, config)| PortSnapshot {
                            id,
                            config: config.clone(),
                            counters: self.bridge.counters(id).cloned().unwrap_or_default(),
                            io: self
                                .ports
                                .get(&id.0)
                                .map(|s| s.counters.clone())
                                .unwrap_or_default(),
                        })
                        .collect();
                    let _ = reply.send(Snapshot {
                        ports,
                        fdb: self.bridge.fdb_entries(),
                        stats: self.bridge.stats().clone(),
                        now_nanos: self.now().as_nanos(),
                    });
                }
                Command::Stop => return false,
            }
        }
        true
    }

    /// Moves up to a batch of frames from one port.
    fn drain_port(&mut self, now: Instant, port: u32) {
        let ingress = PortId(port);
        for _ in 0..BATCH {
            let Some(slot) = self.ports.get_mut(&port) else {
                return;
            };
            let fd = slot.fd.as_raw_fd();
            let in_vnet = slot.io.vnet_hdr;
            // SAFETY: buf is a live buffer of BUF_LEN bytes.
            let n = unsafe { libc::read(fd, self.buf.as_mut_ptr().cast(), self.buf.len()) };
            if n < 0 {
                let err = io::Error::last_os_error();
                if err.kind() != io::ErrorKind::WouldBlock
                    && err.kind() != io::ErrorKind::Interrupted
                {
                    slot.counters.rx_errors += 1;
                    tracing::debug!(port = %ingress, error = %err, "read failed");
                }
                return;
            }
            let n = n as usize;
            let hdr = if in_vnet { VNET_HDR_LEN } else { 0 };
            if n < hdr {
                slot.counters.rx_errors += 1;
                continue;
            }
            let decision = self
                .bridge
                .process(now, ingress, &self.buf[hdr..n], &mut self.egress);
            if !decision.is_forwarded() {
                continue;
            }
            for &dst in self.egress.ports() {
                let Some(out) = self.ports.get_mut(&dst.0) else {
                    continue;
                };
                let written = if out.io.vnet_hdr == in_vnet {
                    write_frame(out.fd.as_raw_fd(), &self.buf[..n])
                } else if in_vnet {
                    // Header to drop: only valid for frames that need no
                    // offload work (not GSO, checksum complete).
                    out.counters.converted += 1;
                    if self.buf[0] != 0 || self.buf[1] != 0 {
                        out.counters.tx_errors += 1;
                        continue;
                    }
                    write_frame(out.fd.as_raw_fd(), &self.buf[hdr..n])
                } else {
                    // Header to add: an all-zero one says "nothing to do".
                    out.counters.converted += 1;
                    self.out[..VNET_HDR_LEN].fill(0);
                    self.out[VNET_HDR_LEN..VNET_HDR_LEN + n].copy_from_slice(&self.buf[..n]);
                    write_frame(out.fd.as_raw_fd(), &self.out[..VNET_HDR_LEN + n])
                };
                if !written {
                    out.counters.tx_errors += 1;
                }
            }
        }
    }
}

/// Longest busy-poll window honoured (a larger one would only burn CPU).
pub const MAX_BUSY_POLL: Duration = Duration::from_secs(1);

fn write_frame(fd: RawFd, bytes: &[u8]) -> bool {
    // SAFETY: bytes is a live slice.
    let n = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
    n == bytes.len() as isize
}

fn epoll_add(epoll: RawFd, fd: RawFd, token: u64) -> io::Result<()> {
    let mut ev = libc::epoll_event {
        events: libc::EPOLLIN as u32,
        u64: token,
    };
    // SAFETY: ev is a valid epoll_event.
    if unsafe { libc::epoll_ctl(epoll, libc::EPOLL_CTL_ADD, fd, &mut ev) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn epoll_del(epoll: RawFd, fd: RawFd) {
    // SAFETY: removing a descriptor we registered; a null event is allowed.
    unsafe { libc::epoll_ctl(epoll, libc::EPOLL_CTL_DEL, fd, std::ptr::null_mut()) };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mac::MacAddr;
    use crate::port::{PortBinding, SegmentId};
    use std::os::unix::net::UnixDatagram;

    fn frame(dst: MacAddr, src: MacAddr) -> Vec<u8> {
        let mut f = Vec::new();
        f.extend_from_slice(&dst.0);
        f.extend_from_slice(&src.0);
        f.extend_from_slice(&[0x88, 0xb5]); // local experimental ethertype
        f.extend_from_slice(&[0u8; 46]);
        f
    }

    fn trunk(seg: u32) -> PortConfig {
        PortConfig {
            segment: SegmentId(seg),
            binding: PortBinding::Trunk,
            label: "t".into(),
            mtu: PortConfig::DEFAULT_MTU,
            horizon: None,
        }
    }

    fn recv_timeout(s: &UnixDatagram) -> Option<Vec<u8>> {
        s.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let mut buf = [0u8; 2048];
        s.recv(&mut buf).ok().map(|n| buf[..n].to_vec())
    }

    // Datagram socket pairs stand in for TAP descriptors: one frame per
    // read and write, non-blocking, pollable.
    fn port_pair() -> (OwnedFd, UnixDatagram) {
        let (a, b) = UnixDatagram::pair().unwrap();
        a.set_nonblocking(true).unwrap();
        (OwnedFd::from(a), b)
    }

    #[test]
    fn frames_flow_between_ports_and_stop_after_removal() {
        let dp = Dataplane::start(DataplaneConfig::default()).unwrap();
        let plain = PortIo { vnet_hdr: false };
        let (fa, a) = port_pair();
        let (fb, b) = port_pair();
        let (fc, c) = port_pair();
        let pa = dp.add_port(trunk(1), fa, plain).unwrap();
        let pb = dp.add_port(trunk(1), fb, plain).unwrap();
        let _pc = dp.add_port(trunk(2), fc, plain).unwrap();
        let ma = MacAddr([2, 0, 0, 0, 0, 0xa]);
        let mb = MacAddr([2, 0, 0, 0, 0, 0xb]);
        a.send(&frame(MacAddr::BROADCAST, ma)).unwrap();
        assert_eq!(
            recv_timeout(&b).unwrap(),
            frame(MacAddr::BROADCAST, ma),
            "flooded within the segment"
        );
        assert!(recv_timeout(&c).is_none(), "never across segments");
        b.send(&frame(ma, mb)).unwrap();
        assert_eq!(recv_timeout(&a).unwrap(), frame(ma, mb), "learned unicast");
        let snap = dp.snapshot().unwrap();
        assert_eq!(snap.fdb.len(), 2);
        assert_eq!(
            snap.ports
                .iter()
                .find(|p| p.id == pa)
                .unwrap()
                .counters
                .rx_frames,
            1
        );
        assert!(dp.remove_port(pb).unwrap());
        a.send(&frame(mb, ma)).unwrap();
        assert!(recv_timeout(&b).is_none(), "a removed port gets nothing");
        dp.stop();
    }

    #[test]
    fn frames_commands_and_stop_work_while_busy_polling() {
        let config = DataplaneConfig {
            busy_poll: Duration::from_millis(50),
            ..Default::default()
        };
        let dp = Dataplane::start(config).unwrap();
        let plain = PortIo { vnet_hdr: false };
        let (fa, a) = port_pair();
        let (fb, b) = port_pair();
        dp.add_port(trunk(1), fa, plain).unwrap();
        dp.add_port(trunk(1), fb, plain).unwrap();
        let ma = MacAddr([2, 0, 0, 0, 0, 0xa]);
        for _ in 0..3 {
            a.send(&frame(MacAddr::BROADCAST, ma)).unwrap();
            assert_eq!(recv_timeout(&b).unwrap(), frame(MacAddr::BROADCAST, ma));
        }
        assert_eq!(dp.snapshot().unwrap().ports.len(), 2);
        dp.stop();
    }

    #[test]
    fn vnet_header_is_added_or_dropped_between_mixed_ports() {
        let dp = Dataplane::start(DataplaneConfig::default()).unwrap();
        let (fa, a) = port_pair();
        let (fb, b) = port_pair();
        dp.add_port(trunk(1), fa, PortIo { vnet_hdr: true })
            .unwrap();
        dp.add_port(trunk(1), fb, PortIo { vnet_hdr: false })
            .unwrap();
        let f = frame(MacAddr::BROADCAST, MacAddr([2, 0, 0, 0, 0, 1]));
        let mut with_hdr = vec![0u8; VNET_HDR_LEN];
        with_hdr.extend_from_slice(&f);
        a.send(&with_hdr).unwrap();
        assert_eq!(recv_timeout(&b).unwrap(), f);
        b.send(&f).unwrap();
        assert_eq!(recv_timeout(&a).unwrap(), with_hdr);
        // A GSO frame cannot be handed to a port without offloads.
        let mut gso = with_hdr.clone();
        gso[1] = 1; // GSO TCPv4
        a.send(&gso).unwrap();
        assert!(recv_timeout(&b).is_none());
        let snap = dp.snapshot().unwrap();
        assert_eq!(snap.ports[1].io.tx_errors, 1);
    }
}
