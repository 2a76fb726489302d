//! The DNS thread: one [`EventLoop`] over the sandboxes' sockets, their TCP
//! connections, the upstream ports and the command channel's [`Waker`];
//! what it reports goes to the [`udp`](super::udp), [`tcp`](super::tcp)
//! and [`forward`](super::forward) handlers, and commands from the
//! [`DnsServer`](super::DnsServer) are carried out between them.
//!
//! - Deadlines, not a tick: the thread sleeps until a descriptor is ready or
//!   the earliest thing it must do on time ([`Worker::next_deadline`]): a
//!   forwarded query's timeout, the idle-TCP sweep, resting listeners'
//!   return, a replaced upstream port's closing, the next look at
//!   resolv.conf. With none pending it sleeps until something wakes it.
//! - Busy polling, opt-in: the daemon's `--dns-busy-poll-us N` keeps the
//!   thread polling for N µs after the last event
//!   before it sleeps. With N = 100 a sequential client's latency drops
//!   (median 25 → 18 µs, p99 45 → 32 µs here), but the thread then burns a
//!   core whenever queries come more often than every N µs (10 000 qps:
//!   98% of a core instead of 15%), so it is off by default
//!   (`benches/README.md` has the measurements).
//! - Fairness: one thread serves every sandbox, so no socket may keep it.
//!   Each wakeup takes at most [`UDP_BATCHES_PER_WAKEUP`] batches from a
//!   UDP socket, one read from a TCP connection and [`ACCEPTS_PER_WAKEUP`]
//!   connections from a listener, then moves on; epoll is
//!   level-triggered, so a socket with more waiting comes back in the next
//!   round, after every other ready socket and the command channel.
//!
//! [`UDP_BATCHES_PER_WAKEUP`]: super::udp::UDP_BATCHES_PER_WAKEUP
//! [`ACCEPTS_PER_WAKEUP`]: super::tcp::ACCEPTS_PER_WAKEUP

use crossbeam_channel::{Receiver, Sender};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::Ordering;
use std::time::Duration;
use switchyard_dns::{Outcome, Resolver, ResolverConfig, Scope, Transport};
use switchyard_linux::{Event, EventLoop, Interest, Waker};

use super::forward::{Forwarder, HostResolvConf};
use super::records::Records;
use super::tcp::TcpClients;
use super::udp::{Batch, MAX_QUERY};
use super::upstream::UpstreamPorts;
use super::Command;

/// Ready descriptors taken from one wait of the loop.
const EVENTS_PER_WAIT: usize = 64;

// Loop tokens: the kind of descriptor in the high 32 bits, its sandbox
// slot, connection or upstream-port index in the low ones.
const WAKE: u64 = 0;
const KIND_UDP: u64 = 1 << 32;
pub(super) const KIND_LISTEN: u64 = 2 << 32;
pub(super) const KIND_CONN: u64 = 3 << 32;
const KIND_UPSTREAM: u64 = 4 << 32;
const KIND_MASK: u64 = 0xffff_ffff << 32;

/// A served sandbox: its id (the key of its scope) and its 127.0.0.11:53
/// sockets.
pub(super) struct SandboxSockets {
    pub(super) id: String,
    pub(super) udp: UdpSocket,
    pub(super) tcp: TcpListener,
}

/// Who waits for a forwarded query's answer.
#[derive(Clone, Copy)]
pub(super) enum Client {
    Udp { slot: usize, peer: SocketAddr },
    Tcp { conn: usize },
}

/// The DNS thread's state (see the module docs); the handlers in the
/// sibling modules are `impl Worker` blocks of their own.
pub(super) struct Worker {
    pub(super) resolver: Resolver,
    pub(super) rng: ChaCha20Rng,
    pub(super) poller: EventLoop,
    pub(super) wake: Waker,
    commands: Receiver<Command>,
    /// A sender on the thread's own command channel, for the TCP
    /// forwarding threads' replies.
    pub(super) self_tx: Sender<Command>,
    pub(super) forwarder: Forwarder,
    /// The upstreams' source when no `--dns-upstream` is given.
    resolv_conf: Option<HostResolvConf>,
    pub(super) sandboxes: Vec<Option<SandboxSockets>>,
    pub(super) scopes: BTreeMap<String, Scope>,
    pub(super) empty_scope: Scope,
    pub(super) tcp: TcpClients,
    /// Forwarded queries by client token: where their answers go.
    pub(super) pending: BTreeMap<u64, Client>,
    pub(super) next_token: u64,
    pub(super) batch: Batch,
    /// The reply buffer outside the UDP batch.
    pub(super) out: Vec<u8>,
    started: std::time::Instant,
    records: Records,
    /// Poll this long after the last event before sleeping (zero: off).
    busy_poll: Duration,
}

impl Worker {
    #[allow(clippy::disallowed_methods)] // real mode: the resolver's clock is the system's monotonic one
    pub(super) fn new(
        fixed: Vec<SocketAddr>,
        ttl: u32,
        busy_poll: Duration,
        wake: Waker,
        commands: Receiver<Command>,
        self_tx: Sender<Command>,
    ) -> io::Result<Worker> {
        let poller = EventLoop::new(EVENTS_PER_WAIT)?;
        let mut rng = ChaCha20Rng::from_os_rng();
        let ports = UpstreamPorts::open(&poller, KIND_UPSTREAM, &mut rng)?;
        let fixed_upstreams = !fixed.is_empty();
        let mut resolver = Resolver::new(ResolverConfig {
            ttl,
            upstreams: fixed,
            ..ResolverConfig::default()
        });
        let resolv_conf = (!fixed_upstreams).then(|| HostResolvConf::load(&mut resolver));
        let w = Worker {
            resolver,
            rng,
            poller,
            wake,
            commands,
            self_tx,
            forwarder: Forwarder::new(ports),
            resolv_conf,
            sandboxes: Vec::new(),
            scopes: BTreeMap::new(),
            empty_scope: Scope::default(),
            tcp: TcpClients::default(),
            pending: BTreeMap::new(),
            next_token: 1,
            batch: Batch::new(),
            out: Vec::with_capacity(MAX_QUERY),
            started: std::time::Instant::now(),
            records: Records::default(),
            busy_poll: busy_poll.min(Duration::from_secs(1)),
        };
        w.watch(w.wake.as_raw_fd(), WAKE)?;
        Ok(w)
    }

    /// Watches `fd` for reading under `token`.
    pub(super) fn watch(&self, fd: RawFd, token: u64) -> io::Result<()> {
        self.poller.add(fd, token, Interest::Readable)
    }

    pub(super) fn unwatch(&self, fd: RawFd) {
        self.poller.remove(fd);
    }

    /// The resolver's clock: time since the thread was made.
    pub(super) fn now(&self) -> Duration {
        self.started.elapsed()
    }

    /// Serves until [`Command::Stop`] (or a failed wait, logged).
    pub(super) fn run(mut self) {
        // Reused by every wait: the events are copied out of the loop's
        // buffer (no allocation: it never holds more than its capacity)
        // because handling them needs the whole worker.
        let mut ready: Vec<Event> = Vec::with_capacity(EVENTS_PER_WAIT);
        // Until when to poll without sleeping (see the module docs).
        let busy_poll = self.busy_poll;
        let mut spin_until = Duration::ZERO;
        loop {
            let now = self.now();
            let timeout = if now < spin_until {
                Some(Duration::ZERO)
            } else {
                self.next_deadline().map(|d| d.saturating_sub(now))
            };
            ready.clear();
            match self.poller.wait(timeout) {
                Ok(events) => ready.extend(events),
                Err(e) => {
                    tracing::error!(error = %e, "DNS epoll failed; DNS stops");
                    return;
                }
            }
            if !ready.is_empty() && !busy_poll.is_zero() {
                spin_until = self.now() + busy_poll;
            }
            for ev in &ready {
                let token = ev.token;
                match token & KIND_MASK {
                    0 if token == WAKE => {
                        self.wake.drain();
                        if !self.handle_commands() {
                            return;
                        }
                    }
                    KIND_UPSTREAM => self.upstream_readable((token & !KIND_MASK) as usize),
                    KIND_UDP => self.udp_readable((token & !KIND_MASK) as usize),
                    KIND_LISTEN => self.accept((token & !KIND_MASK) as usize),
                    KIND_CONN => self.conn_event((token & !KIND_MASK) as usize, *ev),
                    _ => {}
                }
            }
            let now = self.now();
            self.run_timers(now);
        }
    }

    /// The earliest time something is due that no descriptor announces: a
    /// forwarded query's timeout, the idle sweep, the resting listeners'
    /// return, a replaced upstream port's closing, the next look at
    /// resolv.conf. The loop sleeps until then (`None`: until a socket or
    /// the command channel wakes it), never on a fixed tick.
    fn next_deadline(&self) -> Option<Duration> {
        [
            self.resolver.next_deadline(),
            self.tcp.idle_check_at,
            self.tcp.listeners_resume_at,
            self.forwarder.ports.next_retirement(),
            self.resolv_conf.as_ref().map(|r| r.next_check),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Does what [`Worker::next_deadline`] said is due by `now`.
    fn run_timers(&mut self, now: Duration) {
        if is_due(self.resolver.next_deadline(), now) {
            self.poll_timeouts(now);
        }
        if is_due(self.tcp.idle_check_at, now) {
            self.sweep_idle(now);
        }
        if is_due(self.tcp.listeners_resume_at, now) {
            self.resume_listeners();
        }
        if is_due(self.forwarder.ports.next_retirement(), now) {
            self.forwarder.ports.close_retired(now, &self.poller);
        }
        if let Some(r) = self.resolv_conf.as_mut() {
            if r.next_check <= now {
                r.reload_if_changed(now, &mut self.resolver);
            }
        }
    }

    /// Carries out every queued command; false on [`Command::Stop`].
    fn handle_commands(&mut self) -> bool {
        while let Ok(cmd) = self.commands.try_recv() {
            match cmd {
                Command::AddSandbox { id, udp, tcp } => self.add_sandbox(id, udp, tcp),
                Command::RemoveSandbox { id } => self.remove_sandbox(&id),
                Command::Sync(records) => self.sync(*records),
                Command::TcpUpstreamReply { from, reply } => {
                    let now = self.now();
                    let mut out = std::mem::take(&mut self.out);
                    let outcome = self.resolver.handle_upstream_reply(
                        now,
                        from,
                        Transport::Tcp,
                        &reply,
                        &mut self.rng,
                        &mut out,
                    );
                    self.dispatch(outcome, &out);
                    self.out = out;
                }
                Command::Stats { reply } => {
                    let _ = reply.send(self.stats());
                }
                Command::Stop => return false,
            }
        }
        true
    }

    /// Closes a sandbox's sockets and forgets what it was waiting for.
    fn remove_sandbox(&mut self, id: &str) {
        if let Some(slot) = self
            .sandboxes
            .iter()
            .position(|s| s.as_ref().is_some_and(|s| s.id == id))
        {
            let s = self.sandboxes[slot].take().expect("just found");
            self.unwatch(s.udp.as_raw_fd());
            self.unwatch(s.tcp.as_raw_fd());
            self.close_sandbox_conns(slot);
            // A late upstream answer must not go out of the
            // socket of whichever sandbox takes this slot next.
            self.pending
                .retain(|_, c| !matches!(c, Client::Udp { slot: s, .. } if *s == slot));
        }
    }

    /// The resolver's counters and the thread's own.
    fn stats(&self) -> Value {
        let mut v = serde_json::to_value(self.resolver.stats()).unwrap_or(Value::Null);
        v["sandboxes"] = json!(self.sandboxes.iter().flatten().count());
        v["upstreams"] = json!(self
            .resolver
            .config()
            .upstreams
            .iter()
            .map(|u| u.to_string())
            .collect::<Vec<_>>());
        v["in_flight"] = json!(self.resolver.in_flight());
        v["tcp_connections_refused"] = json!(self.tcp.refused);
        v["tcp_connections"] = json!(self.tcp.conns.iter().flatten().count());
        v["tcp_slow_clients_closed"] = json!(self.tcp.slow_closed);
        v["tcp_idle_closed"] = json!(self.tcp.idle_closed);
        v["tcp_forwards_running"] = json!(self.forwarder.tcp_forwards.load(Ordering::Acquire));
        v["tcp_forwards_refused"] = json!(self.forwarder.tcp_forwards_refused);
        let (open, opened) = self.forwarder.ports.counts();
        v["upstream_ports_open"] = json!(open);
        v["upstream_ports_opened"] = json!(opened);
        v["upstream_ports_v4"] = json!(self.forwarder.ports.active_ports(false));
        v["upstream_wrong_port"] = json!(self.forwarder.upstream_wrong_port);
        v
    }

    fn add_sandbox(&mut self, id: String, udp: OwnedFd, tcp: OwnedFd) {
        let udp = UdpSocket::from(udp);
        let tcp = TcpListener::from(tcp);
        if udp.set_nonblocking(true).is_err() || tcp.set_nonblocking(true).is_err() {
            tracing::warn!(sandbox = %id, "cannot make DNS sockets non-blocking");
            return;
        }
        let slot = match self.sandboxes.iter().position(Option::is_none) {
            Some(s) => s,
            None => {
                self.sandboxes.push(None);
                self.sandboxes.len() - 1
            }
        };
        let ok = self.watch(udp.as_raw_fd(), KIND_UDP | slot as u64).is_ok()
            && self
                .watch(tcp.as_raw_fd(), KIND_LISTEN | slot as u64)
                .is_ok();
        if !ok {
            tracing::warn!(sandbox = %id, "cannot watch DNS sockets");
            return;
        }
        self.sandboxes[slot] = Some(SandboxSockets { id, udp, tcp });
    }

    /// Applies the controller's current records: removes what is gone,
    /// upserts the rest (cheap when unchanged).
    fn sync(&mut self, records: Records) {
        records.apply_over(&self.records, &mut self.resolver);
        self.scopes = records.scopes().clone();
        self.records = records;
    }

    /// Carries out an outcome produced outside the UDP batch path (upstream
    /// replies, timeouts, TCP).
    pub(super) fn dispatch(&mut self, outcome: Outcome, bytes: &[u8]) {
        match outcome {
            Outcome::Reply { client, .. } => {
                let Some(c) = self.pending.remove(&client.0) else {
                    return;
                };
                self.reply_to(c, bytes);
            }
            Outcome::Forward {
                upstream,
                transport: Transport::Udp,
            } => self.send_upstream_udp(upstream, bytes),
            Outcome::Forward {
                upstream,
                transport: Transport::Tcp,
            } => self.forward_tcp(upstream, bytes),
            Outcome::Drop(_) => {}
        }
    }

    fn reply_to(&mut self, client: Client, bytes: &[u8]) {
        match client {
            Client::Udp { slot, peer } => {
                if let Some(s) = self.sandboxes.get(slot).and_then(Option::as_ref) {
                    let _ = s.udp.send_to(bytes, peer);
                }
            }
            Client::Tcp { conn } => self.forwarded_reply(conn, bytes),
        }
    }

    fn poll_timeouts(&mut self, now: Duration) {
        let mut actions: Vec<(Outcome, Vec<u8>)> = Vec::new();
        self.resolver
            .poll_timeouts(now, &mut self.rng, |o, b| actions.push((o, b.to_vec())));
        for (o, b) in actions {
            self.dispatch(o, &b);
        }
    }
}

/// Whether a deadline has come.
fn is_due(deadline: Option<Duration>, now: Duration) -> bool {
    deadline.is_some_and(|d| d <= now)
}

/// The scope of the sandbox behind socket slot `slot` (a free function so
/// the caller can borrow it beside the resolver, without a clone per query).
pub(super) fn scope_in<'a>(
    sandboxes: &[Option<SandboxSockets>],
    scopes: &'a BTreeMap<String, Scope>,
    empty: &'a Scope,
    slot: usize,
) -> &'a Scope {
    sandboxes
        .get(slot)
        .and_then(Option::as_ref)
        .and_then(|s| scopes.get(&s.id))
        .unwrap_or(empty)
}
