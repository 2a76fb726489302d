//! The real-mode data plane: one thread owns the [`Bridge`] and every
//! port's file descriptor, and moves frames between them.
//!
//! - No lock and no allocation per frame: the frame buffer, the egress list
//!   and the port table belong to the thread. The control plane talks to it
//!   through a channel and an eventfd, handled between batches, so it never
//!   stalls forwarding and forwarding never waits for it.
//! - Ports are [`PortBackend`]s (a TAP, the gateway): the loop reads a
//!   batch from a ready port, lets the core decide each frame, and hands it
//!   to each egress backend with its [`Offload`](crate::port::Offload) state. Framing (the
//!   virtio-net header) and any conversion belong to the backends, not to
//!   this loop.
//! - Tunnel ports share one backend, the data plane's [`TunnelEndpoint`]
//!   (one UDP socket for every (VNI, remote VTEP)): a tunnel port's entry
//!   has no backend of its own. A batch read from the endpoint carries each
//!   frame's ingress port (decided by the tunnel table), and a frame to a
//!   tunnel port is `send_to(port, ..)` on the endpoint, which is flushed
//!   once per batch like any batching backend. No lock, no allocation, no
//!   dynamic dispatch per frame beyond what ports already had.
//! - Batches: the [`EventLoop`] reports ready ports; each is read until it
//!   has no more frames or a batch is full ([`BATCH`] frames, or the batch
//!   arena's bytes: one 64 KiB GSO frame), then the next port gets its
//!   turn (level-triggered epoll brings us back). After a batch, every
//!   port that was sent to is flushed (for backends that batch writes).
//! - Deadlines: the loop sleeps until the earliest thing due — the FDB
//!   ageing sweep, a backend's deadline, the end of a busy-poll window —
//!   never on a fixed tick; and never while a backend says frames wait
//!   that no descriptor will announce ([`PortBackend::rx_pending`]: the
//!   gateway's stack answering what the switch just sent it), which is
//!   read again first.
//! - Offloads: with virtio-net headers (`IFF_VNET_HDR` + `TUNSETOFFLOAD`),
//!   a TCP sender's 64 KiB GSO frames and partial checksums cross the
//!   switch untouched: the receiving kernel segments or checksums only if
//!   it must. TAPs and the gateway take such frames whole; a tunnel port
//!   cuts them in software, once, to its inner MTU (the endpoint's
//!   business, `switchyard_switch::gso`).
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

use crate::event_loop::{EventLoop, Interest, Waker};
use crate::port::{
    IoCounters, Offload, PortBackend, RxBatch, TunnelEndpoint, TunnelPortError, TunnelReport,
    MAX_FRAME,
};
use crossbeam_channel::{Receiver, Sender};
use serde::{Deserialize, Serialize};
use std::io;
use std::net::IpAddr;
use std::os::fd::AsRawFd;
use std::thread::JoinHandle;
use std::time::Duration;
use switchyard_switch::bridge::{
    Bridge, BridgeConfig, BridgeStats, Egress, FrameMeta, StaticEntryError,
};
use switchyard_switch::fdb::FdbEntry;
use switchyard_switch::mac::MacAddr;
use switchyard_switch::neighbor::{
    Answer, NeighborCounters, NeighborError, NeighborTable, MAX_REPLY_LEN,
};
use switchyard_switch::port::{PortBinding, PortConfig, PortCounters, PortId, SegmentId};
use switchyard_switch::time::Instant;
use switchyard_switch::wire::vnet_hdr::GsoType;

/// Frames moved from one port before the next ready port gets a turn.
pub const BATCH: usize = 64;
/// Bytes of one batch's arena: about 40 MTU-sized frames, but one 64 KiB
/// GSO frame, which is then written out at once, as a forwarder that reads
/// and writes frame by frame would (batching big frames cost 12–16% of TCP
/// throughput at MTU 65520 in A/B runs; small frames gain from batches).
const BATCH_BYTES: usize = 2 * MAX_FRAME;
/// How often aged FDB entries are swept.
const EXPIRE_EVERY: Duration = Duration::from_secs(5);
/// Rounds of reading backends with frames waiting (`rx_pending`) before
/// the loop looks at its other events again.
const PENDING_ROUNDS: usize = 4;
/// Event-loop token of the command waker.
const WAKE_TOKEN: u64 = u64::MAX;
/// Event-loop token of the tunnel endpoint's socket.
const TUNNEL_TOKEN: u64 = u64::MAX - 1;

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

/// One port as seen in a [`DataplaneReport`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PortReport {
    /// The port's id.
    pub id: PortId,
    /// Its configuration.
    pub config: PortConfig,
    /// The kind of backend (`tap`).
    pub kind: String,
    /// What the switch core counted.
    pub counters: PortCounters,
    /// What the backend or the kernel refused.
    pub io: IoCounters,
}

/// A consistent copy of the data plane's state, for `inspect` and tables.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DataplaneReport {
    /// Every port, by id.
    pub ports: Vec<PortReport>,
    /// The forwarding database, sorted by (segment, MAC).
    pub fdb: Vec<FdbEntry>,
    /// Bridge-wide counters.
    pub stats: BridgeStats,
    /// The data plane's clock ([`crate::clock::now`], the FDB's time base)
    /// in nanoseconds.
    pub now_nanos: u64,
    /// The tunnel endpoint, if one is set: its tunnels, decapsulation
    /// drops by reason and send counters.
    pub tunnel: Option<TunnelReport>,
    /// ARP requests and neighbour solicitations answered for remote
    /// stations (and what was passed on).
    pub neighbors: NeighborCounters,
}

enum Command {
    AddPort {
        config: PortConfig,
        backend: Box<dyn PortBackend>,
        reply: Sender<Result<PortId, io::Error>>,
    },
    RemovePort {
        port: PortId,
        reply: Sender<bool>,
    },
    SetTunnelEndpoint {
        endpoint: Box<TunnelEndpoint>,
        reply: Sender<Result<(), DataplaneError>>,
    },
    RemoveTunnelEndpoint {
        reply: Sender<bool>,
    },
    AddTunnelPort {
        config: PortConfig,
        vni: u32,
        remote: IpAddr,
        reply: Sender<Result<PortId, DataplaneError>>,
    },
    /// Programs (`Some`) or removes (`None`) the MAC answered for `ip` on
    /// `segment`.
    Neighbor {
        segment: SegmentId,
        ip: IpAddr,
        mac: Option<MacAddr>,
        reply: Sender<Result<(), DataplaneError>>,
    },
    /// Programs (`Some(port)`) or removes (`None`) a static FDB entry.
    StaticEntry {
        segment: SegmentId,
        mac: MacAddr,
        port: Option<PortId>,
        reply: Sender<Result<bool, DataplaneError>>,
    },
    Report {
        reply: Sender<DataplaneReport>,
    },
    Stop,
}

/// Handle to the data-plane thread.
#[derive(Debug)]
pub struct Dataplane {
    commands: Sender<Command>,
    wake: Waker,
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
    /// The event loop refused the port's descriptor.
    #[error("cannot watch the port's descriptor: {0}")]
    Register(#[source] io::Error),
    /// The controller's neighbour entry was refused.
    #[error(transparent)]
    Neighbor(#[from] NeighborError),
    /// The controller's static FDB entry was refused.
    #[error(transparent)]
    StaticEntry(#[from] StaticEntryError),
    /// A tunnel port needs the tunnel endpoint to be set first.
    #[error("no tunnel endpoint: set the data plane's VXLAN socket before adding tunnel ports")]
    NoTunnelEndpoint,
    /// The data plane has a tunnel endpoint already (one per data plane).
    #[error("the data plane has a tunnel endpoint already; remove it first")]
    TunnelEndpointExists,
    /// The tunnel was refused (a duplicate (VNI, VTEP), a wide VNI, a
    /// remote of the other address family).
    #[error(transparent)]
    Tunnel(#[from] TunnelPortError),
}

impl Dataplane {
    /// Starts the data-plane thread.
    pub fn start(config: DataplaneConfig) -> Result<Dataplane, DataplaneError> {
        let busy_poll = config.busy_poll.min(MAX_BUSY_POLL);
        let events = EventLoop::new(64).map_err(DataplaneError::Start)?;
        let wake = Waker::new().map_err(DataplaneError::Start)?;
        events
            .add(wake.as_raw_fd(), WAKE_TOKEN, Interest::Readable)
            .map_err(DataplaneError::Start)?;
        let thread_wake = wake.try_clone().map_err(DataplaneError::Start)?;
        let (tx, rx) = crossbeam_channel::unbounded();
        let thread = std::thread::Builder::new()
            .name("dataplane".into())
            .spawn(move || Worker::new(config, events, thread_wake, rx, busy_poll).run())
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
        self.wake.wake();
        Ok(())
    }

    /// Sends the command `make` builds around a reply channel and waits for
    /// the thread's answer.
    fn request<T>(&self, make: impl FnOnce(Sender<T>) -> Command) -> Result<T, DataplaneError> {
        let (reply, rx) = crossbeam_channel::bounded(1);
        self.send(make(reply))?;
        rx.recv().map_err(|_| DataplaneError::Stopped)
    }

    /// Adds a port backed by `backend`. When this returns, frames flow; if
    /// its descriptor cannot be watched, the port is not added.
    pub fn add_port(
        &self,
        config: PortConfig,
        backend: Box<dyn PortBackend>,
    ) -> Result<PortId, DataplaneError> {
        self.request(|reply| Command::AddPort {
            config,
            backend,
            reply,
        })?
        .map_err(DataplaneError::Register)
    }

    /// Removes a port and drops its backend (closing its descriptor). When
    /// this returns, no frame reaches it or comes from it any more. False
    /// if it did not exist.
    pub fn remove_port(&self, port: PortId) -> Result<bool, DataplaneError> {
        self.request(|reply| Command::RemovePort { port, reply })
    }

    /// Answers ARP requests and neighbour solicitations for `ip` on
    /// `segment` with `mac`, from the switch itself, for frames of
    /// endpoint ports: what an overlay programs for stations on other
    /// hosts, so nobody floods to find them.
    pub fn set_neighbor(
        &self,
        segment: SegmentId,
        ip: IpAddr,
        mac: MacAddr,
    ) -> Result<(), DataplaneError> {
        self.neighbor_command(segment, ip, Some(mac))
    }

    /// Stops answering for `ip` on `segment` (absent is fine).
    pub fn remove_neighbor(&self, segment: SegmentId, ip: IpAddr) -> Result<(), DataplaneError> {
        self.neighbor_command(segment, ip, None)
    }

    fn neighbor_command(
        &self,
        segment: SegmentId,
        ip: IpAddr,
        mac: Option<MacAddr>,
    ) -> Result<(), DataplaneError> {
        self.request(|reply| Command::Neighbor {
            segment,
            ip,
            mac,
            reply,
        })?
    }

    /// Puts `mac` on `port` for good (`Bridge::add_static_entry`): a
    /// station the controller knows, such as one behind a tunnel.
    pub fn add_static_entry(
        &self,
        segment: SegmentId,
        mac: MacAddr,
        port: PortId,
    ) -> Result<(), DataplaneError> {
        self.static_entry_command(segment, mac, Some(port))
            .map(|_| ())
    }

    /// Removes a static entry; false if there was none.
    pub fn remove_static_entry(
        &self,
        segment: SegmentId,
        mac: MacAddr,
    ) -> Result<bool, DataplaneError> {
        self.static_entry_command(segment, mac, None)
    }

    fn static_entry_command(
        &self,
        segment: SegmentId,
        mac: MacAddr,
        port: Option<PortId>,
    ) -> Result<bool, DataplaneError> {
        self.request(|reply| Command::StaticEntry {
            segment,
            mac,
            port,
            reply,
        })?
    }

    /// Hands the data plane its VXLAN socket: one endpoint serves every
    /// tunnel port. Refused if it has one.
    pub fn set_tunnel_endpoint(&self, endpoint: TunnelEndpoint) -> Result<(), DataplaneError> {
        self.request(|reply| Command::SetTunnelEndpoint {
            endpoint: Box::new(endpoint),
            reply,
        })?
    }

    /// Removes the tunnel endpoint and every tunnel port with it (closing
    /// the socket). False if there was none.
    pub fn remove_tunnel_endpoint(&self) -> Result<bool, DataplaneError> {
        self.request(|reply| Command::RemoveTunnelEndpoint { reply })
    }

    /// Adds a tunnel port: frames of `vni` from `remote` enter the switch
    /// on it, frames forwarded to it go to `remote` in `vni`. Removed with
    /// [`Dataplane::remove_port`] like any port.
    pub fn add_tunnel_port(
        &self,
        config: PortConfig,
        vni: u32,
        remote: IpAddr,
    ) -> Result<PortId, DataplaneError> {
        self.request(|reply| Command::AddTunnelPort {
            config,
            vni,
            remote,
            reply,
        })?
    }

    /// A copy of ports, counters and the FDB.
    pub fn report(&self) -> Result<DataplaneReport, DataplaneError> {
        self.request(|reply| Command::Report { reply })
    }

    /// Stops the thread and drops every backend (persistent TAPs stay, with
    /// their configuration, for the next start).
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

/// What is behind a port: its own backend, or a tunnel of the shared
/// endpoint.
enum PortKind {
    Own(Box<dyn PortBackend>),
    Tunnel,
}

/// The data plane's tunnel endpoint and what the loop keeps for it.
struct TunnelSlot {
    endpoint: Box<TunnelEndpoint>,
}

/// A port's backend and what the loop counts for it.
struct PortEntry {
    backend: PortKind,
    counters: IoCounters,
    /// The batch in which this port was last sent to, so it is flushed
    /// once per batch.
    sent_in: u64,
}

struct Worker {
    bridge: Bridge,
    events: EventLoop,
    wake: Waker,
    commands: Receiver<Command>,
    /// By port id. A map, not a vector indexed by id: ids are never
    /// reused, so a vector would grow with every connect ever made.
    ports: hashbrown::HashMap<u32, PortEntry>,
    /// Ports whose backends have deadlines (the only ones asked).
    timed: Vec<u32>,
    /// Of those, the ones with frames waiting this round (reused).
    pending: Vec<u32>,
    /// Ports sent to in the current batch, to flush after it.
    to_flush: Vec<u32>,
    batch_no: u64,
    egress: Egress,
    batch: RxBatch,
    tunnel: Option<TunnelSlot>,
    /// Stations of other hosts whose ARP and neighbour solicitations the
    /// switch answers itself (empty unless an overlay programs it, and then
    /// only frames of endpoint ports are offered).
    neighbors: NeighborTable,
    /// Where an answer is written before it goes back out of its port.
    reply: [u8; MAX_REPLY_LEN],
    next_expire: Instant,
    /// Keep polling (without sleeping) this long after the last event;
    /// zero (the default) never spins.
    busy_poll: Duration,
}

impl Worker {
    fn new(
        config: DataplaneConfig,
        events: EventLoop,
        wake: Waker,
        commands: Receiver<Command>,
        busy_poll: Duration,
    ) -> Worker {
        // The FDB's seed, turned, so the two tables' hashes differ.
        let neighbor_seed = config.bridge.hash_seed.rotate_left(17) ^ 0x6e65_6967_6862_6f72;
        Worker {
            bridge: Bridge::new(config.bridge),
            events,
            wake,
            commands,
            ports: hashbrown::HashMap::new(),
            timed: Vec::new(),
            pending: Vec::new(),
            to_flush: Vec::with_capacity(64),
            batch_no: 0,
            egress: Egress::with_capacity(64),
            batch: RxBatch::new(BATCH, BATCH_BYTES),
            tunnel: None,
            neighbors: NeighborTable::new(neighbor_seed),
            reply: [0; MAX_REPLY_LEN],
            next_expire: crate::clock::now() + EXPIRE_EVERY,
            busy_poll,
        }
    }

    fn now(&self) -> Instant {
        crate::clock::now()
    }

    /// The earliest thing due: the FDB sweep or a backend's deadline.
    fn next_deadline(&self) -> Instant {
        let mut due = self.next_expire;
        for id in &self.timed {
            if let Some(d) = self.ports.get(id).and_then(|p| match &p.backend {
                PortKind::Own(b) => b.next_deadline(),
                PortKind::Tunnel => None,
            }) {
                due = due.min(d);
            }
        }
        due
    }

    fn run(mut self) {
        // Until when to poll without sleeping (see `busy_poll`).
        let mut spin_until = Instant::ZERO;
        let mut now = self.now();
        let mut ready: Vec<u64> = Vec::with_capacity(64);
        let mut waiting = false;
        loop {
            let timeout = if waiting || now < spin_until {
                Duration::ZERO
            } else {
                self.next_deadline().saturating_duration_since(now)
            };
            ready.clear();
            match self.events.wait(Some(timeout)) {
                Ok(events) => ready.extend(events.map(|e| e.token)),
                Err(err) => {
                    tracing::error!(error = %err, "epoll_wait failed; data plane stops");
                    return;
                }
            }
            now = self.now();
            if !ready.is_empty() && !self.busy_poll.is_zero() {
                spin_until = now + self.busy_poll;
            }
            for &token in &ready {
                if token == WAKE_TOKEN {
                    self.wake.drain();
                    if !self.handle_commands() {
                        return;
                    }
                } else if token == TUNNEL_TOKEN {
                    self.drain_tunnel(now);
                } else {
                    self.drain_port(now, token as u32);
                }
            }
            self.run_deadlines(now);
            // Still more waiting after a few rounds: look at the other
            // events without sleeping, then read again.
            waiting = self.drain_pending(now);
        }
    }

    /// Reads the backends that say frames wait without a readiness event
    /// (the gateway, after it was sent to or hit a deadline), a few rounds
    /// at most so one busy backend cannot starve the others' events; true
    /// when some are still waiting.
    fn drain_pending(&mut self, now: Instant) -> bool {
        for _ in 0..PENDING_ROUNDS {
            self.pending.clear();
            for id in &self.timed {
                if let Some(PortEntry {
                    backend: PortKind::Own(b),
                    ..
                }) = self.ports.get(id)
                {
                    if b.rx_pending() {
                        self.pending.push(*id);
                    }
                }
            }
            if self.pending.is_empty() {
                return false;
            }
            for i in 0..self.pending.len() {
                let id = self.pending[i];
                self.drain_port(now, id);
            }
        }
        true
    }

    fn run_deadlines(&mut self, now: Instant) {
        if now >= self.next_expire {
            self.bridge.expire(now);
            self.next_expire = now + EXPIRE_EVERY;
        }
        for id in &self.timed {
            if let Some(PortEntry {
                backend: PortKind::Own(b),
                counters,
                ..
            }) = self.ports.get_mut(id)
            {
                if b.next_deadline().is_some_and(|d| d <= now) {
                    b.on_deadline(now, counters);
                }
            }
        }
    }

    /// Applies queued commands; false when asked to stop.
    fn handle_commands(&mut self) -> bool {
        while let Ok(cmd) = self.commands.try_recv() {
            match cmd {
                Command::AddPort {
                    config,
                    backend,
                    reply,
                } => {
                    let _ = reply.send(self.add_port(config, backend));
                }
                Command::RemovePort { port, reply } => {
                    let _ = reply.send(self.remove_port(port));
                }
                Command::SetTunnelEndpoint { endpoint, reply } => {
                    let _ = reply.send(self.set_tunnel_endpoint(endpoint));
                }
                Command::RemoveTunnelEndpoint { reply } => {
                    let existed = match self.tunnel.take() {
                        Some(slot) => {
                            self.events.remove(slot.endpoint.readiness_fd());
                            for port in slot.endpoint.ports().collect::<Vec<_>>() {
                                self.remove_port(port);
                            }
                            true
                        }
                        None => false,
                    };
                    let _ = reply.send(existed);
                }
                Command::AddTunnelPort {
                    config,
                    vni,
                    remote,
                    reply,
                } => {
                    let _ = reply.send(self.add_tunnel_port(config, vni, remote));
                }
                Command::Neighbor {
                    segment,
                    ip,
                    mac,
                    reply,
                } => {
                    let done = match mac {
                        Some(mac) => self.neighbors.add(segment, ip, mac).map(|_| ()),
                        None => {
                            self.neighbors.remove(segment, ip);
                            Ok(())
                        }
                    };
                    let _ = reply.send(done.map_err(DataplaneError::from));
                }
                Command::StaticEntry {
                    segment,
                    mac,
                    port,
                    reply,
                } => {
                    let done = match port {
                        Some(port) => self
                            .bridge
                            .add_static_entry(self.now(), segment, mac, port)
                            .map(|()| true)
                            .map_err(DataplaneError::from),
                        None => Ok(self.bridge.remove_static_entry(segment, mac).is_some()),
                    };
                    let _ = reply.send(done);
                }
                Command::Report { reply } => {
                    let _ = reply.send(self.report());
                }
                Command::Stop => return false,
            }
        }
        true
    }

    fn remove_port(&mut self, port: PortId) -> bool {
        let existed = self.bridge.remove_port(port).is_some();
        if let Some(entry) = self.ports.remove(&port.0) {
            match entry.backend {
                PortKind::Own(backend) => {
                    if let Some(fd) = backend.readiness_fd() {
                        self.events.remove(fd);
                    }
                    // Dropping the backend closes it.
                }
                PortKind::Tunnel => {
                    if let Some(t) = self.tunnel.as_mut() {
                        t.endpoint.remove_tunnel(port);
                    }
                }
            }
            self.timed.retain(|&id| id != port.0);
        }
        self.egress = self.bridge.egress();
        existed
    }

    fn set_tunnel_endpoint(&mut self, endpoint: Box<TunnelEndpoint>) -> Result<(), DataplaneError> {
        if self.tunnel.is_some() {
            return Err(DataplaneError::TunnelEndpointExists);
        }
        self.events
            .add(endpoint.readiness_fd(), TUNNEL_TOKEN, Interest::Readable)
            .map_err(DataplaneError::Register)?;
        self.tunnel = Some(TunnelSlot { endpoint });
        Ok(())
    }

    fn add_tunnel_port(
        &mut self,
        config: PortConfig,
        vni: u32,
        remote: IpAddr,
    ) -> Result<PortId, DataplaneError> {
        let Some(slot) = self.tunnel.as_mut() else {
            return Err(DataplaneError::NoTunnelEndpoint);
        };
        let id = self.bridge.add_port(config);
        if let Err(e) = slot.endpoint.add_tunnel(id, vni, remote) {
            self.bridge.remove_port(id);
            return Err(e.into());
        }
        self.ports.insert(
            id.0,
            PortEntry {
                backend: PortKind::Tunnel,
                counters: IoCounters::default(),
                sent_in: 0,
            },
        );
        self.egress = self.bridge.egress();
        Ok(id)
    }

    fn add_port(
        &mut self,
        config: PortConfig,
        backend: Box<dyn PortBackend>,
    ) -> Result<PortId, io::Error> {
        let id = self.bridge.add_port(config);
        if let Some(fd) = backend.readiness_fd() {
            if let Err(e) = self.events.add(fd, u64::from(id.0), Interest::Readable) {
                self.bridge.remove_port(id);
                return Err(e);
            }
        }
        if backend.has_deadlines() {
            self.timed.push(id.0);
        }
        self.ports.insert(
            id.0,
            PortEntry {
                backend: PortKind::Own(backend),
                counters: IoCounters::default(),
                sent_in: 0,
            },
        );
        self.egress = self.bridge.egress();
        Ok(id)
    }

    fn report(&self) -> DataplaneReport {
        let ports = self
            .bridge
            .ports()
            .map(|(id, config)| {
                let entry = self.ports.get(&id.0);
                PortReport {
                    id,
                    config: config.clone(),
                    kind: entry
                        .map_or("", |e| match &e.backend {
                            PortKind::Own(b) => b.kind(),
                            PortKind::Tunnel => "vxlan",
                        })
                        .to_string(),
                    counters: self.bridge.counters(id).cloned().unwrap_or_default(),
                    io: entry.map(|e| e.counters.clone()).unwrap_or_default(),
                }
            })
            .collect();
        DataplaneReport {
            ports,
            fdb: self.bridge.fdb_entries(),
            stats: self.bridge.stats().clone(),
            now_nanos: self.now().as_nanos(),
            tunnel: self.tunnel.as_ref().map(|t| t.endpoint.report()),
            neighbors: self.neighbors.counters(),
        }
    }

    /// Reads one batch from a ready port and forwards every frame of it.
    fn drain_port(&mut self, now: Instant, port: u32) {
        let ingress = PortId(port);
        let Some(entry) = self.ports.get_mut(&port) else {
            return;
        };
        let PortKind::Own(backend) = &mut entry.backend else {
            return;
        };
        self.batch.clear();
        if let Err(e) = backend.recv_batch(&mut self.batch, &mut entry.counters) {
            entry.counters.rx_errors += 1;
            tracing::debug!(port = %ingress, error = %e, "read failed");
        }
        self.forward_batch(now, ingress);
    }

    /// Reads one batch from the tunnel endpoint (frames of many tunnel
    /// ports) and forwards every frame of it.
    fn drain_tunnel(&mut self, now: Instant) {
        let Some(slot) = self.tunnel.as_mut() else {
            return;
        };
        self.batch.clear();
        if let Err(e) = slot.endpoint.recv_batch(&mut self.batch) {
            tracing::debug!(error = %e, "tunnel read failed");
        }
        // Every frame carries its own ingress port; the default is unused.
        self.forward_batch(now, PortId(u32::MAX));
    }

    /// Lets the core decide every frame of the batch and sends each to its
    /// egress ports, then flushes the ports that batch their writes.
    fn forward_batch(&mut self, now: Instant, default_ingress: PortId) {
        self.batch_no += 1;
        let mut tunnel_sent = false;
        for i in 0..self.batch.len() {
            let ingress = self.batch.ingress(i).unwrap_or(default_ingress);
            let (frame, offload) = self.batch.frame(i);
            // A GSO super-frame is segmented by whoever receives it, so it
            // skips the per-port MTU check (the core's `FrameMeta`).
            let meta = FrameMeta {
                gso: offload.gso != GsoType::None,
            };
            let decision = self
                .bridge
                .process_with(now, ingress, frame, meta, &mut self.egress);
            if !decision.is_forwarded() {
                continue;
            }
            // A request for a station the controller placed on another host
            // is answered here, back out of its port, instead of flooded
            // over every tunnel (only once port security let it through).
            if !self.neighbors.is_empty() {
                if let Some(segment) = self.bridge.port(ingress).and_then(|p| match p.binding {
                    PortBinding::Endpoint { .. } => Some(p.segment),
                    _ => None,
                }) {
                    if let Answer::Reply(len) =
                        self.neighbors.answer(segment, frame, &mut self.reply)
                    {
                        if let Some(PortEntry {
                            backend: PortKind::Own(b),
                            counters,
                            sent_in,
                        }) = self.ports.get_mut(&ingress.0)
                        {
                            if *sent_in != self.batch_no {
                                *sent_in = self.batch_no;
                                self.to_flush.push(ingress.0);
                            }
                            if b.send(&self.reply[..len], &Offload::NONE, counters)
                                .is_err()
                            {
                                counters.tx_errors += 1;
                            }
                        }
                        continue;
                    }
                }
            }
            for &dst in self.egress.ports() {
                let Some(out) = self.ports.get_mut(&dst.0) else {
                    continue;
                };
                let result = match &mut out.backend {
                    PortKind::Own(backend) => {
                        if out.sent_in != self.batch_no {
                            out.sent_in = self.batch_no;
                            self.to_flush.push(dst.0);
                        }
                        backend.send(frame, offload, &mut out.counters)
                    }
                    PortKind::Tunnel => match self.tunnel.as_mut() {
                        Some(t) => {
                            tunnel_sent = true;
                            // SAFETY: `frame` lies in `self.batch`, which
                            // is neither changed nor cleared before the
                            // flush at the end of this function.
                            unsafe { t.endpoint.send_to(dst, frame, offload, &mut out.counters) }
                        }
                        None => continue,
                    },
                };
                if let Err(e) = result {
                    out.counters.tx_errors += 1;
                    tracing::trace!(port = %dst, error = %e, "send failed");
                }
            }
        }
        for id in self.to_flush.drain(..) {
            if let Some(PortEntry {
                backend: PortKind::Own(b),
                counters,
                ..
            }) = self.ports.get_mut(&id)
            {
                b.flush(counters);
            }
        }
        // Queued tunnel datagrams point into the batch: send them before
        // the batch is reused.
        if tunnel_sent {
            if let Some(t) = self.tunnel.as_mut() {
                t.endpoint.flush();
            }
        }
    }
}

/// Longest busy-poll window honoured (a larger one would only burn CPU).
pub const MAX_BUSY_POLL: Duration = Duration::from_secs(1);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::port::{Offload, TapFraming, TapPort};
    use std::os::fd::OwnedFd;
    use std::os::unix::net::UnixDatagram;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    use switchyard_switch::mac::MacAddr;
    use switchyard_switch::port::PortBinding;
    use switchyard_switch::wire::vnet_hdr::HEADER_LEN as VNET_HDR_LEN;

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

    fn tap(fd: OwnedFd, vnet_hdr: bool) -> Box<dyn PortBackend> {
        Box::new(TapPort::new(fd, TapFraming { vnet_hdr }))
    }

    /// A data plane with two TAP-like ports on one segment, with or without
    /// virtio-net headers, and the test's ends of them.
    fn two_taps(vnet_a: bool, vnet_b: bool) -> (Dataplane, UnixDatagram, UnixDatagram) {
        let dp = Dataplane::start(DataplaneConfig::default()).unwrap();
        let (fa, a) = port_pair();
        let (fb, b) = port_pair();
        dp.add_port(trunk(1), tap(fa, vnet_a)).unwrap();
        dp.add_port(trunk(1), tap(fb, vnet_b)).unwrap();
        (dp, a, b)
    }

    /// "Who has `target`? Tell `ip` (at `mac`)": an ARP request.
    fn arp_request(mac: MacAddr, ip: [u8; 4], target: [u8; 4]) -> Vec<u8> {
        let mut f = Vec::with_capacity(42);
        f.extend_from_slice(&MacAddr::BROADCAST.0);
        f.extend_from_slice(&mac.0);
        f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0x00, 6, 4, 0, 1]);
        f.extend_from_slice(&mac.0);
        f.extend_from_slice(&ip);
        f.extend_from_slice(&[0; 6]);
        f.extend_from_slice(&target);
        f
    }

    #[test]
    fn requests_for_programmed_neighbours_are_answered_back_out_of_their_port() {
        let dp = Dataplane::start(DataplaneConfig::default()).unwrap();
        let (fa, a) = port_pair();
        let (fb, b) = port_pair();
        let ma = MacAddr([2, 0, 0, 0, 0, 0xa]);
        let remote = MacAddr([2, 0, 0, 0, 0, 0x99]);
        let endpoint = PortConfig {
            binding: PortBinding::Endpoint {
                mac: ma,
                ipv4: Some([10, 9, 0, 1].into()),
                ipv6: None,
            },
            ..trunk(1)
        };
        dp.add_port(endpoint, tap(fa, false)).unwrap();
        let tunnel_like = dp.add_port(trunk(1), tap(fb, false)).unwrap();
        let ask = arp_request(ma, [10, 9, 0, 1], [10, 9, 0, 9]);
        // Nothing programmed: the request floods as usual.
        a.send(&ask).unwrap();
        assert_eq!(recv_timeout(&b).unwrap(), ask);

        dp.set_neighbor(SegmentId(1), [10, 9, 0, 9].into(), remote)
            .unwrap();
        a.send(&ask).unwrap();
        let answer = recv_timeout(&a).expect("an answer on the asking port");
        assert_eq!(&answer[0..6], &ma.0, "to the asker");
        assert_eq!(&answer[6..12], &remote.0, "from the remote station");
        assert_eq!(&answer[20..22], &[0, 2], "an ARP reply");
        assert_eq!(&answer[22..28], &remote.0);
        assert_eq!(&answer[28..32], &[10, 9, 0, 9]);
        assert!(recv_timeout(&b).is_none(), "nothing flooded");
        // The same request from a port that is not an endpoint's is
        // switched as usual: only local stations are answered for.
        b.send(&arp_request(
            MacAddr([2, 0, 0, 0, 0, 0xb]),
            [10, 9, 0, 2],
            [10, 9, 0, 9],
        ))
        .unwrap();
        assert!(recv_timeout(&a).is_some(), "flooded from the trunk");
        let report = dp.report().unwrap();
        assert_eq!(report.neighbors.arp_answered, 1);

        dp.remove_neighbor(SegmentId(1), [10, 9, 0, 9].into())
            .unwrap();
        a.send(&ask).unwrap();
        assert_eq!(recv_timeout(&b).unwrap(), ask, "flooded again");

        // A static entry sends unicast for the remote station to its port
        // before anything was learned from it.
        dp.add_static_entry(SegmentId(1), remote, tunnel_like)
            .unwrap();
        a.send(&frame(remote, ma)).unwrap();
        assert_eq!(recv_timeout(&b).unwrap(), frame(remote, ma));
        assert!(dp.remove_static_entry(SegmentId(1), remote).unwrap());
        assert!(!dp.remove_static_entry(SegmentId(1), remote).unwrap());
        let err = dp
            .set_neighbor(SegmentId(1), [10, 9, 0, 9].into(), MacAddr::BROADCAST)
            .unwrap_err();
        assert!(err.to_string().contains("not a unicast MAC"), "{err}");
        dp.stop();
    }

    #[test]
    fn frames_flow_between_ports_and_stop_after_removal() {
        let dp = Dataplane::start(DataplaneConfig::default()).unwrap();
        let plain = false;
        let (fa, a) = port_pair();
        let (fb, b) = port_pair();
        let (fc, c) = port_pair();
        let pa = dp.add_port(trunk(1), tap(fa, plain)).unwrap();
        let pb = dp.add_port(trunk(1), tap(fb, plain)).unwrap();
        let _pc = dp.add_port(trunk(2), tap(fc, plain)).unwrap();
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
        let snap = dp.report().unwrap();
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
        let plain = false;
        let (fa, a) = port_pair();
        let (fb, b) = port_pair();
        dp.add_port(trunk(1), tap(fa, plain)).unwrap();
        dp.add_port(trunk(1), tap(fb, plain)).unwrap();
        let ma = MacAddr([2, 0, 0, 0, 0, 0xa]);
        for _ in 0..3 {
            a.send(&frame(MacAddr::BROADCAST, ma)).unwrap();
            assert_eq!(recv_timeout(&b).unwrap(), frame(MacAddr::BROADCAST, ma));
        }
        assert_eq!(dp.report().unwrap().ports.len(), 2);
        dp.stop();
    }

    #[test]
    fn vnet_header_is_added_or_dropped_between_mixed_ports() {
        let (dp, a, b) = two_taps(true, false);
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
        gso[4..6].copy_from_slice(&1448u16.to_le_bytes());
        a.send(&gso).unwrap();
        assert!(recv_timeout(&b).is_none());
        let snap = dp.report().unwrap();
        assert_eq!(snap.ports[1].io.tx_errors, 1);
        assert_eq!(snap.ports[1].kind, "tap");
    }

    #[test]
    fn a_broken_virtio_header_is_dropped_and_counted_on_its_port() {
        let (dp, a, b) = two_taps(true, true);
        let f = frame(MacAddr::BROADCAST, MacAddr([2, 0, 0, 0, 0, 1]));
        let mut bad = vec![0u8; VNET_HDR_LEN];
        bad[1] = 1; // GSO without a segment size
        bad.extend_from_slice(&f);
        a.send(&bad).unwrap();
        a.send(&[0u8; 4]).unwrap(); // shorter than the header
        assert!(recv_timeout(&b).is_none());
        assert_eq!(dp.report().unwrap().ports[0].io.rx_errors, 2);
    }

    #[test]
    fn a_partial_checksum_is_completed_for_a_port_without_offload() {
        let (dp, a, b) = two_taps(true, false);
        let f = frame(MacAddr::BROADCAST, MacAddr([2, 0, 0, 0, 0, 1]));
        let mut hdr = vec![0u8; VNET_HDR_LEN];
        hdr[0] = 1; // NEEDS_CSUM
        hdr[6..8].copy_from_slice(&14u16.to_le_bytes()); // csum_start
        hdr[8..10].copy_from_slice(&6u16.to_le_bytes()); // csum_offset
        hdr.extend_from_slice(&f);
        a.send(&hdr).unwrap();
        let got = recv_timeout(&b).unwrap();
        let mut want = f.clone();
        crate::port::complete_checksum(&mut want, 14, 6);
        assert_ne!(want, f, "the checksum field changed");
        assert_eq!(got, want);
        assert_eq!(dp.report().unwrap().ports[1].io.converted, 1);
    }

    /// A backend with no descriptor that only asks for a deadline every
    /// 20 ms and counts how often it got one.
    struct Ticker {
        next: Instant,
        fired: Arc<AtomicU64>,
    }

    impl PortBackend for Ticker {
        fn kind(&self) -> &'static str {
            "ticker"
        }
        fn readiness_fd(&self) -> Option<std::os::fd::RawFd> {
            None
        }
        fn recv_batch(
            &mut self,
            _: &mut RxBatch,
            _: &mut IoCounters,
        ) -> Result<(), crate::port::RxError> {
            Ok(())
        }
        fn send(
            &mut self,
            _: &[u8],
            _: &Offload,
            _: &mut IoCounters,
        ) -> Result<(), crate::port::TxError> {
            Ok(())
        }
        fn has_deadlines(&self) -> bool {
            true
        }
        fn next_deadline(&self) -> Option<Instant> {
            Some(self.next)
        }
        fn on_deadline(&mut self, now: Instant, _: &mut IoCounters) {
            self.fired.fetch_add(1, Ordering::Relaxed);
            self.next = now + Duration::from_millis(20);
        }
    }

    #[test]
    fn a_backend_deadline_wakes_the_loop_without_any_traffic() {
        let dp = Dataplane::start(DataplaneConfig::default()).unwrap();
        let fired = Arc::new(AtomicU64::new(0));
        let ticker = Ticker {
            next: Instant::ZERO,
            fired: Arc::clone(&fired),
        };
        dp.add_port(trunk(1), Box::new(ticker)).unwrap();
        std::thread::sleep(Duration::from_millis(300));
        let n = fired.load(Ordering::Relaxed);
        // With a fixed one-second tick it would have fired at most once.
        assert!((5..=20).contains(&n), "fired {n} times in 300 ms at 20 ms");
        dp.stop();
    }

    #[test]
    fn only_gso_frames_may_exceed_the_egress_ports_mtu() {
        let (dp, a, b) = two_taps(true, true);
        let mut big = frame(MacAddr::BROADCAST, MacAddr([2, 0, 0, 0, 0, 1]));
        big.resize(14 + 1501, 0);
        let mut plain = vec![0u8; VNET_HDR_LEN];
        plain.extend_from_slice(&big);
        a.send(&plain).unwrap();
        assert!(
            recv_timeout(&b).is_none(),
            "a plain frame over the MTU is withheld"
        );
        let mut gso = plain.clone();
        gso[1] = 1; // TCPv4
        gso[4..6].copy_from_slice(&1448u16.to_le_bytes());
        a.send(&gso).unwrap();
        assert_eq!(
            recv_timeout(&b).unwrap(),
            gso,
            "a GSO frame is segmented by its receiver"
        );
        let report = dp.report().unwrap();
        assert_eq!(report.ports[1].counters.tx_mtu_exceeded, 1);
    }

    // ------------------------------------------------------------ tunnels

    use crate::port::{TunnelEndpointConfig, TunnelPortError};
    use std::net::{Ipv4Addr, UdpSocket};
    use switchyard_switch::vxlan::{DecapDrop, TunnelError};

    const VNI: u32 = 4242;

    /// A data plane with a TAP-like port (with virtio-net headers) and a
    /// tunnel port of VNI 4242 to a "remote VTEP" that is a plain UDP
    /// socket on loopback; returns the test's ends.
    fn tap_and_tunnel(udp_gso: bool) -> (Dataplane, UnixDatagram, UdpSocket, PortId) {
        let dp = Dataplane::start(DataplaneConfig::default()).unwrap();
        let (fa, a) = port_pair();
        dp.add_port(trunk(1), tap(fa, true)).unwrap();
        let remote = UdpSocket::bind("127.0.0.1:0").unwrap();
        remote
            .set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let ours = UdpSocket::bind("127.0.0.1:0").unwrap();
        let endpoint = TunnelEndpoint::new(
            OwnedFd::from(ours),
            TunnelEndpointConfig {
                underlay_mtu: 1500,
                remote_port: remote.local_addr().unwrap().port(),
                udp_gso,
                coalesce_tcp: true,
                flow_seed: 1,
            },
        )
        .unwrap();
        dp.set_tunnel_endpoint(endpoint).unwrap();
        let mut config = trunk(1);
        config.mtu = 1450;
        let t = dp
            .add_tunnel_port(config, VNI, IpAddr::V4(Ipv4Addr::LOCALHOST))
            .unwrap();
        (dp, a, remote, t)
    }

    fn with_vnet(hdr: [u8; VNET_HDR_LEN], f: &[u8]) -> Vec<u8> {
        let mut v = hdr.to_vec();
        v.extend_from_slice(f);
        v
    }

    fn our_endpoint(dp: &Dataplane) -> std::net::SocketAddr {
        dp.report().unwrap().tunnel.unwrap().local.unwrap()
    }

    #[test]
    fn frames_cross_a_tunnel_port_both_ways_with_the_vni_header() {
        let (dp, a, remote, t) = tap_and_tunnel(true);
        let ma = MacAddr([2, 0, 0, 0, 0, 0xa]);
        let mr = MacAddr([2, 0, 0, 0, 0, 0xe]);
        a.send(&with_vnet(
            [0; VNET_HDR_LEN],
            &frame(MacAddr::BROADCAST, ma),
        ))
        .unwrap();
        let mut buf = [0u8; 2048];
        let (n, from) = remote.recv_from(&mut buf).expect("flooded into the tunnel");
        assert_eq!(from, our_endpoint(&dp));
        assert_eq!(&buf[..8], &switchyard_switch::vxlan::header(VNI));
        assert_eq!(&buf[8..n], &frame(MacAddr::BROADCAST, ma)[..]);
        // And back: the remote's reply reaches the TAP on the learned MAC.
        let mut reply = switchyard_switch::vxlan::header(VNI).to_vec();
        reply.extend_from_slice(&frame(ma, mr));
        remote.send_to(&reply, our_endpoint(&dp)).unwrap();
        assert_eq!(
            recv_timeout(&a).unwrap(),
            with_vnet([0; VNET_HDR_LEN], &frame(ma, mr))
        );
        let report = dp.report().unwrap();
        let tunnel = report.tunnel.unwrap();
        assert_eq!(tunnel.decap.delivered, 1);
        assert_eq!(tunnel.stats.tx_datagrams, 1);
        let port = report.ports.iter().find(|p| p.id == t).unwrap();
        assert_eq!(port.kind, "vxlan");
        assert_eq!(port.counters.rx_frames, 1);
        assert!(report.fdb.iter().any(|e| e.mac == mr && e.port == t));
    }

    #[test]
    fn foreign_vnis_strangers_and_garbage_are_dropped_and_counted_by_reason() {
        let (dp, a, remote, _t) = tap_and_tunnel(true);
        let to = our_endpoint(&dp);
        let f = frame(MacAddr::BROADCAST, MacAddr([2, 0, 0, 0, 0, 0xe]));
        let mut foreign = switchyard_switch::vxlan::header(VNI + 1).to_vec();
        foreign.extend_from_slice(&f);
        remote.send_to(&foreign, to).unwrap();
        let stranger = UdpSocket::bind("127.0.0.2:0").unwrap();
        let mut ours = switchyard_switch::vxlan::header(VNI).to_vec();
        ours.extend_from_slice(&f);
        stranger.send_to(&ours, to).unwrap();
        remote.send_to(&[0x08, 0, 0], to).unwrap();
        let mut flags = ours.clone();
        flags[0] = 0x0c;
        remote.send_to(&flags, to).unwrap();
        let mut reserved = ours.clone();
        reserved[7] = 1;
        remote.send_to(&reserved, to).unwrap();
        remote.send_to(&[], to).unwrap();
        assert!(recv_timeout(&a).is_none(), "nothing reaches the TAP");
        let decap = dp.report().unwrap().tunnel.unwrap().decap;
        assert_eq!(decap.delivered, 0);
        assert_eq!(decap.drops_for(DecapDrop::ForeignVni), 1);
        assert_eq!(decap.drops_for(DecapDrop::UnknownVtep), 1);
        assert_eq!(decap.drops_for(DecapDrop::Truncated), 2);
        assert_eq!(decap.drops_for(DecapDrop::BadFlags), 1);
        assert_eq!(decap.drops_for(DecapDrop::ReservedBits), 1);
        // The tunnel still works afterwards.
        remote.send_to(&ours, to).unwrap();
        assert!(recv_timeout(&a).is_some());
    }

    /// A TCP/IPv4 GSO super-frame of `payload` bytes as a TAP with TSO
    /// hands it over: virtio-net header, one header set, partial checksum.
    fn tso_frame(payload: usize, mss: u16) -> Vec<u8> {
        let f = crate::test_frames::tcp4_superframe(
            [2, 0, 0, 0, 0, 0xe],
            [2, 0, 0, 0, 0, 0xa],
            payload,
            |i| i as u8,
        );
        let mut hdr = [0u8; VNET_HDR_LEN];
        hdr[0] = 1; // NEEDS_CSUM
        hdr[1] = 1; // TCPv4
        hdr[4..6].copy_from_slice(&mss.to_le_bytes());
        hdr[6..8].copy_from_slice(&34u16.to_le_bytes());
        hdr[8..10].copy_from_slice(&16u16.to_le_bytes());
        with_vnet(hdr, &f)
    }

    fn gso_frames_are_cut_to_the_inner_mtu(udp_gso: bool) {
        let (dp, a, remote, t) = tap_and_tunnel(udp_gso);
        // Teach the switch where the destination MAC is: behind the tunnel.
        let mut learn = switchyard_switch::vxlan::header(VNI).to_vec();
        learn.extend_from_slice(&frame(MacAddr::BROADCAST, MacAddr([2, 0, 0, 0, 0, 0xe])));
        remote.send_to(&learn, our_endpoint(&dp)).unwrap();
        recv_timeout(&a).expect("learning frame flooded to the TAP");
        // MSS 8000 from the sender: the tunnel's 1450 inner MTU wins.
        let payload = 30_000;
        a.send(&tso_frame(payload, 8000)).unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 70_000];
        while let Ok((n, _)) = remote.recv_from(&mut buf) {
            assert!(
                n - 8 - 14 <= 1450,
                "datagram of {n} bytes exceeds the inner MTU"
            );
            assert_eq!(&buf[..8], &switchyard_switch::vxlan::header(VNI));
            got.extend_from_slice(&buf[8 + 54..n]);
        }
        let want: Vec<u8> = (0..payload).map(|i| i as u8).collect();
        assert_eq!(got.len(), want.len(), "all of the payload arrived");
        assert_eq!(got, want, "in order");
        let report = dp.report().unwrap();
        let tunnel = report.tunnel.unwrap();
        assert_eq!(tunnel.stats.segmented, 1);
        assert_eq!(tunnel.stats.tx_datagrams, 30_000u64.div_ceil(1450 - 40));
        if udp_gso {
            assert_eq!(tunnel.stats.tx_messages, 1, "one UDP_SEGMENT message");
        } else {
            assert_eq!(tunnel.stats.tx_messages, tunnel.stats.tx_datagrams);
        }
        let port = report.ports.iter().find(|p| p.id == t).unwrap();
        assert_eq!(port.io.converted, 1);
    }

    #[test]
    fn a_gso_frame_is_segmented_to_the_inner_mtu_and_sent_with_udp_gso() {
        gso_frames_are_cut_to_the_inner_mtu(true);
    }

    #[test]
    fn a_gso_frame_is_segmented_to_the_inner_mtu_without_udp_gso() {
        gso_frames_are_cut_to_the_inner_mtu(false);
    }

    #[test]
    fn tunnel_ports_need_the_endpoint_and_are_unique_per_vni_and_vtep() {
        let dp = Dataplane::start(DataplaneConfig::default()).unwrap();
        let local = IpAddr::V4(Ipv4Addr::LOCALHOST);
        assert!(matches!(
            dp.add_tunnel_port(trunk(1), VNI, local),
            Err(DataplaneError::NoTunnelEndpoint)
        ));
        let sock = || {
            TunnelEndpoint::new(
                OwnedFd::from(UdpSocket::bind("127.0.0.1:0").unwrap()),
                TunnelEndpointConfig::default(),
            )
            .unwrap()
        };
        dp.set_tunnel_endpoint(sock()).unwrap();
        assert!(matches!(
            dp.set_tunnel_endpoint(sock()),
            Err(DataplaneError::TunnelEndpointExists)
        ));
        let t = dp.add_tunnel_port(trunk(1), VNI, local).unwrap();
        assert!(matches!(
            dp.add_tunnel_port(trunk(1), VNI, local),
            Err(DataplaneError::Tunnel(TunnelPortError::Table(
                TunnelError::Duplicate { .. }
            )))
        ));
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        assert!(matches!(
            dp.add_tunnel_port(trunk(1), VNI, v6),
            Err(DataplaneError::Tunnel(TunnelPortError::Family(_)))
        ));
        assert_eq!(
            dp.report().unwrap().ports.len(),
            1,
            "refused ports are not kept"
        );
        assert!(dp.remove_port(t).unwrap());
        assert!(dp.report().unwrap().tunnel.unwrap().tunnels.is_empty());
        let again = dp.add_tunnel_port(trunk(1), VNI, local).unwrap();
        assert!(dp.remove_tunnel_endpoint().unwrap());
        let report = dp.report().unwrap();
        assert!(report.tunnel.is_none());
        assert!(
            report.ports.iter().all(|p| p.id != again),
            "its ports went with it"
        );
        dp.stop();
    }
}
