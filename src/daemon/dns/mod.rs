//! The embedded DNS server of real mode: answers 127.0.0.11:53 inside every
//! sandbox from the controller's records, through the same sans-I/O
//! [`Resolver`] the simulator uses.
//!
//! - Sockets: a UDP socket and a TCP listener bound to 127.0.0.11:53 *inside*
//!   each sandbox's namespace, made there by the namespace helper (so it
//!   works rootless) and handed to this thread. Which socket a query came in
//!   on says which sandbox asked, hence its scope — no NAT, no iptables.
//! - One thread owns the resolver, every socket and the upstream sockets;
//!   record updates arrive over a channel and are applied between batches,
//!   so the next query sees them and no query is ever dropped for an update.
//! - UDP is batched: `recvmmsg` up to [`BATCH`] queries, answer each into a
//!   reused buffer, one `sendmmsg` for the replies. Measured with dnsperf,
//!   the thread spends ~94% of its time in the kernel (the `sendmmsg` also
//!   runs the client's receive path over loopback) and reaches 0.94–1.01×
//!   an ideal C responder with the same batching (`benches/limit_dns.c`).
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
//! - TCP never blocks the thread: replies go into a per-connection output
//!   buffer bounded at [`TCP_OUT_LIMIT`], written non-blocking and flushed
//!   on EPOLLOUT. A client that pipelines queries without reading its
//!   replies is throttled (no new query is answered while its backlog is
//!   over half the bound), closed if a reply would not fit, and closed
//!   after [`TCP_IDLE_TIMEOUT`] without a complete query or a written byte.
//!   At most [`MAX_TCP_CONNS`] connections are open, and at most
//!   [`MAX_TCP_CONNS_PER_SANDBOX`] from one sandbox; more are accepted and
//!   closed at once (counted as `tcp_connections_refused`).
//! - Forwarding leaves from the daemon's own namespace, so an upstream on
//!   the host's loopback (127.0.0.53, a test's dnsmasq) works. TCP queries
//!   are forwarded over TCP on a short-lived helper thread each, at most
//!   [`MAX_TCP_FORWARDS`] at once.

use crossbeam_channel::{Receiver, Sender};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Read, Write};
use std::mem::MaybeUninit;
use std::net::{
    Ipv4Addr, SocketAddr, SocketAddrV4, SocketAddrV6, TcpListener, TcpStream, UdpSocket,
};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use switchyard_dns::{
    parse_resolv_conf, parse_upstream, tcp_frame, ClientToken, EndpointRecord, NetworkPolicy,
    Outcome, Resolver, ResolverConfig, Scope, TcpDeframer, Transport, LENGTH_PREFIX,
};
use switchyard_linux::{Event, EventLoop, Interest, NsSession, Waker};
use switchyard_switch::Controller;

mod upstream;

use upstream::UpstreamPorts;

/// Queries read (and replies written) per system call.
pub const BATCH: usize = 32;
/// Largest UDP query accepted (EDNS clients may send up to this).
const MAX_QUERY: usize = 4096;
/// Most concurrent TCP client connections across all sandboxes.
const MAX_TCP_CONNS: usize = 512;
/// Most concurrent TCP client connections from one sandbox, so that one
/// container holding connections open cannot use up [`MAX_TCP_CONNS`] for
/// the others. glibc and dig use one connection at a time.
const MAX_TCP_CONNS_PER_SANDBOX: usize = 64;
/// Batches taken from one sandbox's UDP socket per wakeup. Bounds how long
/// one flooding sandbox holds the thread (4 × 32 queries) before the other
/// ready sockets and the command channel get their turn.
const UDP_BATCHES_PER_WAKEUP: usize = 4;
/// Datagrams read from an upstream socket per wakeup, for the same reason.
const UPSTREAM_READS_PER_WAKEUP: usize = UDP_BATCHES_PER_WAKEUP * BATCH;
/// Connections accepted from one sandbox's listener per wakeup.
const ACCEPTS_PER_WAKEUP: usize = 32;
/// Bytes read from one TCP connection per wakeup (one read): at most about
/// a hundred minimal queries, like a UDP socket's share.
const TCP_READ_CHUNK: usize = 2048;
/// Bound on a TCP connection's unsent replies: 64 KiB and the 2-byte length
/// prefix, room for one largest framed DNS message. Above half of it no new query is answered; a reply
/// that would not fit closes the connection (its client is not reading).
const TCP_OUT_LIMIT: usize = LENGTH_PREFIX + u16::MAX as usize;
/// A TCP connection with no complete query and no byte written for this
/// long is closed (RFC 7766 §6.2.3 suggests timeouts of seconds), so idle
/// or stuck clients cannot hold connection slots.
const TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// The idle sweep runs at most this often: it walks every connection, and
/// a connection is closed at most this long after its timeout.
const TCP_SWEEP_EVERY: Duration = Duration::from_secs(1);
/// How long a listener rests, out of the loop, after an accept ran out of
/// descriptors.
const LISTENER_REST: Duration = Duration::from_secs(1);
/// Most forwarding threads for DNS-over-TCP queries at once. Above it a
/// query is not sent: the resolver's timeout moves it to the next upstream
/// or answers SERVFAIL, and a container cannot make thousands of threads.
const MAX_TCP_FORWARDS: usize = 64;
const RESOLV_CONF: &str = "/etc/resolv.conf";
/// How often [`RESOLV_CONF`] is checked for changes (when no
/// `--dns-upstream` is given).
const RESOLV_CONF_EVERY: Duration = Duration::from_secs(2);
/// Ready descriptors taken from one wait of the loop.
const EVENTS_PER_WAIT: usize = 64;

const WAKE: u64 = 0;
const KIND_UDP: u64 = 1 << 32;
const KIND_LISTEN: u64 = 2 << 32;
const KIND_CONN: u64 = 3 << 32;
const KIND_UPSTREAM: u64 = 4 << 32;
const KIND_MASK: u64 = 0xffff_ffff << 32;

/// Everything the resolver must know, recomputed from the controller.
#[derive(Debug, Default, Clone)]
struct Records {
    networks: Vec<(String, NetworkPolicy)>,
    endpoints: Vec<EndpointRecord>,
    scopes: BTreeMap<String, Scope>,
}

enum Command {
    AddSandbox {
        id: String,
        udp: OwnedFd,
        tcp: OwnedFd,
    },
    RemoveSandbox {
        id: String,
    },
    Sync(Box<Records>),
    TcpUpstreamReply {
        from: SocketAddr,
        reply: Vec<u8>,
    },
    Stats {
        reply: Sender<Value>,
    },
    Stop,
}

/// Handle to the DNS thread.
pub(crate) struct DnsServer {
    commands: Sender<Command>,
    wake: Waker,
    thread: Option<std::thread::JoinHandle<()>>,
    served: BTreeSet<String>,
}

impl DnsServer {
    /// Starts the DNS thread. Upstreams: `--dns-upstream` values, or the
    /// host's /etc/resolv.conf (re-read when it changes).
    pub(crate) fn start(
        upstream_args: &[String],
        ttl: u32,
        busy_poll: Duration,
    ) -> Result<DnsServer, String> {
        let fixed: Vec<SocketAddr> = upstream_args
            .iter()
            .map(|a| parse_upstream(a).map_err(|e| format!("--dns-upstream {a}: {e}")))
            .collect::<Result<_, _>>()?;
        if fixed.len() > switchyard_dns::MAX_UPSTREAMS {
            return Err(format!(
                "at most {} --dns-upstream servers are used; give fewer",
                switchyard_dns::MAX_UPSTREAMS
            ));
        }
        let (tx, rx) = crossbeam_channel::unbounded();
        let wake = Waker::new().map_err(|e| format!("cannot create an eventfd: {e}"))?;
        let thread_wake = wake.try_clone().map_err(|e| e.to_string())?;
        let worker_tx = tx.clone();
        let worker = Worker::new(fixed, ttl, busy_poll, thread_wake, rx, worker_tx)
            .map_err(|e| format!("DNS server: {e}"))?;
        let thread = std::thread::Builder::new()
            .name("dns".into())
            .spawn(move || worker.run())
            .map_err(|e| format!("cannot start the DNS thread: {e}"))?;
        Ok(DnsServer {
            commands: tx,
            wake,
            thread: Some(thread),
            served: BTreeSet::new(),
        })
    }

    fn send(&self, cmd: Command) {
        if self.commands.send(cmd).is_ok() {
            self.wake.wake();
        }
    }

    /// Makes sure a sandbox's namespace has our 127.0.0.11:53 sockets. A
    /// failure is logged, not fatal: the container still has its network.
    pub(crate) fn ensure_sandbox(&mut self, session: &NsSession, sandbox_id: &str) {
        if self.served.contains(sandbox_id) {
            return;
        }
        let addr = SocketAddr::from((Ipv4Addr::new(127, 0, 0, 11), 53));
        match (session.udp_socket(addr), session.tcp_listener(addr)) {
            (Ok(udp), Ok(tcp)) => {
                self.served.insert(sandbox_id.to_string());
                self.send(Command::AddSandbox {
                    id: sandbox_id.to_string(),
                    udp,
                    tcp,
                });
            }
            (Err(e), _) | (_, Err(e)) => {
                tracing::warn!(sandbox = sandbox_id, error = %e, "no embedded DNS in this sandbox");
            }
        }
    }

    /// Closes a sandbox's DNS sockets.
    pub(crate) fn remove_sandbox(&mut self, sandbox_id: &str) {
        if self.served.remove(sandbox_id) {
            self.send(Command::RemoveSandbox {
                id: sandbox_id.to_string(),
            });
        }
    }

    /// Hands the resolver the controller's current names, policies and
    /// scopes; the next query sees them.
    pub(crate) fn sync(&mut self, controller: &Controller) {
        let mut records = Records::default();
        for n in controller.networks() {
            records.networks.push((
                n.id.clone(),
                NetworkPolicy {
                    name: n.name.clone(),
                    names: n.dns_names,
                    forward: !n.internal,
                },
            ));
        }
        for e in controller.endpoints() {
            if e.ipv4.is_none() && e.ipv6.is_none() {
                continue;
            }
            records.endpoints.push(EndpointRecord {
                endpoint_id: e.id.clone(),
                network_id: e.network_id.clone(),
                name: e.name.clone(),
                aliases: e.aliases.clone(),
                ipv4: e.ipv4.map(|n| n.ip()),
                ipv6: e.ipv6.map(|n| n.ip()),
            });
        }
        for s in controller.sandboxes() {
            let owner = controller.namespace_owner(s);
            let nets = controller
                .endpoints_of_sandbox(&owner.id)
                .into_iter()
                .map(|e| e.network_id.clone());
            records.scopes.insert(owner.id.clone(), Scope::new(nets));
        }
        self.send(Command::Sync(Box::new(records)));
    }

    /// The resolver's counters.
    pub(crate) fn stats(&self) -> Value {
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.send(Command::Stats { reply: tx });
        rx.recv_timeout(Duration::from_secs(2))
            .unwrap_or(Value::Null)
    }

    /// Stops the thread and closes every socket.
    pub(crate) fn stop(&mut self) {
        if let Some(t) = self.thread.take() {
            self.send(Command::Stop);
            let _ = t.join();
        }
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.stop();
    }
}

struct SandboxSockets {
    id: String,
    udp: UdpSocket,
    tcp: TcpListener,
}

struct Conn {
    stream: TcpStream,
    slot: usize,
    deframer: TcpDeframer,
    /// Framed replies not yet written: `out[out_at..]`, at most
    /// [`TCP_OUT_LIMIT`] bytes.
    out: Vec<u8>,
    out_at: usize,
    /// The backlog went over half the bound: complete queries wait in the
    /// deframer and nothing more is read until the client takes replies.
    paused: bool,
    /// The client shut its side: no more queries; the connection closes
    /// once every reply due is written.
    eof: bool,
    /// Forwarded queries whose replies are still due.
    forwarding: usize,
    /// What the loop watches it for; `None`: neither reading nor writing,
    /// only a hang-up or an error.
    interest: Option<Interest>,
    /// Accept, last complete query or last byte written (the idle clock).
    last_active: Duration,
}

impl Conn {
    fn new(stream: TcpStream, slot: usize, now: Duration) -> Conn {
        Conn {
            stream,
            slot,
            deframer: TcpDeframer::new(),
            out: Vec::new(),
            out_at: 0,
            paused: false,
            eof: false,
            forwarding: 0,
            interest: Some(Interest::Readable),
            last_active: now,
        }
    }

    /// Bytes of replies not yet written.
    fn backlog(&self) -> usize {
        self.out.len() - self.out_at
    }

    /// Frames a reply behind the backlog (compacting it first, so the buffer
    /// never holds more than the backlog and this reply).
    fn push_reply(&mut self, message: &[u8]) {
        if self.out_at > 0 {
            self.out.drain(..self.out_at);
            self.out_at = 0;
        }
        // The caller checked the length fits a frame.
        let _ = tcp_frame(message, &mut self.out);
    }

    /// Writes as much of the backlog as the socket takes now, never
    /// blocking. An error means the connection is broken.
    fn flush(&mut self, now: Duration) -> io::Result<()> {
        while self.out_at < self.out.len() {
            match self.stream.write(&self.out[self.out_at..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.out_at += n;
                    self.last_active = now;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if self.out_at == self.out.len() {
            self.out.clear();
            self.out_at = 0;
        }
        Ok(())
    }

    /// What it needs watching for now: readable while it takes queries,
    /// writable while replies wait.
    fn wanted_interest(&self) -> Option<Interest> {
        Interest::from_flags(!self.paused && !self.eof, self.backlog() > 0)
    }
}

/// One running TCP forwarding thread; frees its place in the count when
/// dropped (the thread ends, panics, or could not be started).
struct ForwardSlot(Arc<AtomicUsize>);

impl Drop for ForwardSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

#[derive(Clone, Copy)]
enum Client {
    Udp { slot: usize, peer: SocketAddr },
    Tcp { conn: usize },
}

/// Preallocated `recvmmsg`/`sendmmsg` state.
struct Batch {
    bufs: Vec<Vec<u8>>,
    addrs: Vec<libc::sockaddr_storage>,
    iovs: Vec<libc::iovec>,
    msgs: Vec<libc::mmsghdr>,
    outs: Vec<Vec<u8>>,
    out_addrs: Vec<libc::sockaddr_storage>,
    out_lens: Vec<libc::socklen_t>,
}

// SAFETY: the raw pointers inside `iovs` and `msgs` only ever point into
// buffers owned by the same `Batch`, and are rewritten before every use;
// moving the whole `Batch` to another thread moves those buffers with it.
unsafe impl Send for Batch {}

impl Batch {
    fn new() -> Batch {
        // SAFETY: sockaddr_storage and mmsghdr are plain C structs for which
        // all-zero is a valid value.
        let zero_addr: libc::sockaddr_storage = unsafe { MaybeUninit::zeroed().assume_init() };
        Batch {
            bufs: (0..BATCH).map(|_| vec![0u8; MAX_QUERY]).collect(),
            addrs: vec![zero_addr; BATCH],
            iovs: (0..BATCH)
                .map(|_| libc::iovec {
                    iov_base: std::ptr::null_mut(),
                    iov_len: 0,
                })
                .collect(),
            // SAFETY: as above.
            msgs: (0..BATCH)
                .map(|_| unsafe { MaybeUninit::zeroed().assume_init() })
                .collect(),
            outs: (0..BATCH).map(|_| Vec::with_capacity(MAX_QUERY)).collect(),
            out_addrs: vec![zero_addr; BATCH],
            out_lens: vec![0; BATCH],
        }
    }

    /// Receives up to BATCH datagrams; returns how many.
    fn recv(&mut self, fd: RawFd) -> usize {
        for i in 0..BATCH {
            self.iovs[i] = libc::iovec {
                iov_base: self.bufs[i].as_mut_ptr().cast(),
                iov_len: MAX_QUERY,
            };
            let m = &mut self.msgs[i].msg_hdr;
            m.msg_name = (&mut self.addrs[i] as *mut libc::sockaddr_storage).cast();
            m.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            m.msg_iov = &mut self.iovs[i];
            m.msg_iovlen = 1;
            m.msg_control = std::ptr::null_mut();
            m.msg_controllen = 0;
            m.msg_flags = 0;
            self.msgs[i].msg_len = 0;
        }
        // SAFETY: every mmsghdr points at live buffers owned by self.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                self.msgs.as_mut_ptr(),
                BATCH as u32,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            0
        } else {
            n as usize
        }
    }

    /// Sends `outs[..count]` to `out_addrs[..count]` in one call.
    fn send(&mut self, fd: RawFd, count: usize) {
        if count == 0 {
            return;
        }
        for i in 0..count {
            self.iovs[i] = libc::iovec {
                iov_base: self.outs[i].as_mut_ptr().cast(),
                iov_len: self.outs[i].len(),
            };
            let m = &mut self.msgs[i].msg_hdr;
            m.msg_name = (&mut self.out_addrs[i] as *mut libc::sockaddr_storage).cast();
            m.msg_namelen = self.out_lens[i];
            m.msg_iov = &mut self.iovs[i];
            m.msg_iovlen = 1;
            m.msg_control = std::ptr::null_mut();
            m.msg_controllen = 0;
            m.msg_flags = 0;
        }
        let mut sent = 0;
        while sent < count {
            // SAFETY: the headers point at live buffers owned by self.
            let n = unsafe {
                libc::sendmmsg(
                    fd,
                    self.msgs[sent..].as_mut_ptr(),
                    (count - sent) as u32,
                    libc::MSG_DONTWAIT,
                )
            };
            if n <= 0 {
                break;
            }
            sent += n as usize;
        }
    }
}

fn sockaddr_to_std(addr: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match i32::from(addr.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says this storage holds a sockaddr_in.
            let a: &libc::sockaddr_in = unsafe { &*(addr as *const libc::sockaddr_storage).cast() };
            Some(SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr)),
                u16::from_be(a.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says this storage holds a sockaddr_in6.
            let a: &libc::sockaddr_in6 =
                unsafe { &*(addr as *const libc::sockaddr_storage).cast() };
            Some(SocketAddr::V6(SocketAddrV6::new(
                a.sin6_addr.s6_addr.into(),
                u16::from_be(a.sin6_port),
                a.sin6_flowinfo,
                a.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

/// Whether a deadline has come.
fn is_due(deadline: Option<Duration>, now: Duration) -> bool {
    deadline.is_some_and(|d| d <= now)
}

/// The scope of the sandbox behind socket slot `slot` (a free function so
/// the caller can borrow it beside the resolver, without a clone per query).
fn scope_in<'a>(
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

struct Worker {
    resolver: Resolver,
    rng: ChaCha20Rng,
    poller: EventLoop,
    wake: Waker,
    commands: Receiver<Command>,
    self_tx: Sender<Command>,
    /// Where forwarded queries leave from (random ports, rotated).
    ports: UpstreamPorts,
    resolv_mtime: Option<SystemTime>,
    /// When to look at [`RESOLV_CONF`] again (`None` with fixed upstreams).
    next_reload: Option<Duration>,
    sandboxes: Vec<Option<SandboxSockets>>,
    scopes: BTreeMap<String, Scope>,
    empty_scope: Scope,
    conns: Vec<Option<Conn>>,
    pending: BTreeMap<u64, Client>,
    next_token: u64,
    batch: Batch,
    out: Vec<u8>,
    started: std::time::Instant,
    records: Records,
    tcp_dropped: u64,
    /// TCP clients closed because a reply would overflow their backlog.
    tcp_slow_closed: u64,
    /// TCP connections closed by the idle timeout.
    tcp_idle_closed: u64,
    /// TCP forwarding threads running now (shared with them).
    tcp_forwards: Arc<AtomicUsize>,
    /// TCP queries not forwarded because [`MAX_TCP_FORWARDS`] were running.
    tcp_forwards_refused: u64,
    /// Upstream datagrams dropped because their id does not belong to the
    /// port they arrived on.
    upstream_wrong_port: u64,
    /// Sandbox slots whose TCP listener is out of the loop after an accept
    /// ran out of descriptors; they are put back at `listeners_resume_at`.
    paused_listeners: BTreeSet<usize>,
    /// When the paused listeners rest enough ([`LISTENER_REST`] after the
    /// first of them paused).
    listeners_resume_at: Option<Duration>,
    /// When to sweep for idle TCP connections: no later than the least
    /// recently active one times out (activity only moves that later), and
    /// at most [`TCP_SWEEP_EVERY`] after it. `None` while there is none.
    idle_check_at: Option<Duration>,
    /// Poll this long after the last event before sleeping (zero: off).
    busy_poll: Duration,
}

impl Worker {
    #[allow(clippy::disallowed_methods)] // real mode: the resolver's clock is the system's monotonic one
    fn new(
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
        let mut resolv_mtime = None;
        if !fixed_upstreams {
            resolv_mtime = std::fs::metadata(RESOLV_CONF)
                .and_then(|m| m.modified())
                .ok();
            let text = std::fs::read_to_string(RESOLV_CONF).unwrap_or_default();
            resolver.set_upstreams(&parse_resolv_conf(&text));
        }
        let w = Worker {
            resolver,
            rng,
            poller,
            wake,
            commands,
            self_tx,
            ports,
            resolv_mtime,
            next_reload: (!fixed_upstreams).then_some(RESOLV_CONF_EVERY),
            sandboxes: Vec::new(),
            scopes: BTreeMap::new(),
            empty_scope: Scope::default(),
            conns: Vec::new(),
            pending: BTreeMap::new(),
            next_token: 1,
            batch: Batch::new(),
            out: Vec::with_capacity(MAX_QUERY),
            started: std::time::Instant::now(),
            records: Records::default(),
            tcp_dropped: 0,
            tcp_slow_closed: 0,
            tcp_idle_closed: 0,
            tcp_forwards: Arc::new(AtomicUsize::new(0)),
            tcp_forwards_refused: 0,
            upstream_wrong_port: 0,
            paused_listeners: BTreeSet::new(),
            listeners_resume_at: None,
            idle_check_at: None,
            busy_poll: busy_poll.min(Duration::from_secs(1)),
        };
        w.watch(w.wake.as_raw_fd(), WAKE)?;
        Ok(w)
    }

    fn watch(&self, fd: RawFd, token: u64) -> io::Result<()> {
        self.poller.add(fd, token, Interest::Readable)
    }

    fn unwatch(&self, fd: RawFd) {
        self.poller.remove(fd);
    }

    fn now(&self) -> Duration {
        self.started.elapsed()
    }

    fn run(mut self) {
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
            self.idle_check_at,
            self.listeners_resume_at,
            self.ports.next_retirement(),
            self.next_reload,
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
        if is_due(self.idle_check_at, now) {
            self.sweep_idle(now);
        }
        if is_due(self.listeners_resume_at, now) {
            self.resume_listeners();
        }
        if is_due(self.ports.next_retirement(), now) {
            self.ports.close_retired(now, &self.poller);
        }
        if is_due(self.next_reload, now) {
            self.next_reload = Some(now + RESOLV_CONF_EVERY);
            self.reload_resolv_conf();
        }
    }

    fn reload_resolv_conf(&mut self) {
        let mtime = std::fs::metadata(RESOLV_CONF)
            .and_then(|m| m.modified())
            .ok();
        if mtime != self.resolv_mtime {
            self.resolv_mtime = mtime;
            let text = std::fs::read_to_string(RESOLV_CONF).unwrap_or_default();
            let ups = parse_resolv_conf(&text);
            tracing::info!(upstreams = ?ups, "host resolv.conf changed; new upstream servers");
            self.resolver.set_upstreams(&ups);
        }
    }

    fn handle_commands(&mut self) -> bool {
        while let Ok(cmd) = self.commands.try_recv() {
            match cmd {
                Command::AddSandbox { id, udp, tcp } => self.add_sandbox(id, udp, tcp),
                Command::RemoveSandbox { id } => {
                    if let Some(slot) = self
                        .sandboxes
                        .iter()
                        .position(|s| s.as_ref().is_some_and(|s| s.id == id))
                    {
                        let s = self.sandboxes[slot].take().expect("just found");
                        self.unwatch(s.udp.as_raw_fd());
                        self.unwatch(s.tcp.as_raw_fd());
                        self.paused_listeners.remove(&slot);
                        for c in 0..self.conns.len() {
                            if self.conns[c].as_ref().is_some_and(|c| c.slot == slot) {
                                self.close_conn(c);
                            }
                        }
                        // A late upstream answer must not go out of the
                        // socket of whichever sandbox takes this slot next.
                        self.pending
                            .retain(|_, c| !matches!(c, Client::Udp { slot: s, .. } if *s == slot));
                    }
                }
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
                    v["tcp_connections_refused"] = json!(self.tcp_dropped);
                    v["tcp_connections"] = json!(self.conns.iter().flatten().count());
                    v["tcp_slow_clients_closed"] = json!(self.tcp_slow_closed);
                    v["tcp_idle_closed"] = json!(self.tcp_idle_closed);
                    v["tcp_forwards_running"] = json!(self.tcp_forwards.load(Ordering::Acquire));
                    v["tcp_forwards_refused"] = json!(self.tcp_forwards_refused);
                    let (open, opened) = self.ports.counts();
                    v["upstream_ports_open"] = json!(open);
                    v["upstream_ports_opened"] = json!(opened);
                    v["upstream_ports_v4"] = json!(self.ports.active_ports(false));
                    v["upstream_wrong_port"] = json!(self.upstream_wrong_port);
                    let _ = reply.send(v);
                }
                Command::Stop => return false,
            }
        }
        true
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
        let new_nets: BTreeSet<&str> = records.networks.iter().map(|(id, _)| id.as_str()).collect();
        for (id, _) in &self.records.networks {
            if !new_nets.contains(id.as_str()) {
                self.resolver.remove_network(id);
            }
        }
        for (id, policy) in &records.networks {
            if self.resolver.network(id) != Some(policy) {
                self.resolver.set_network(id, policy.clone());
            }
        }
        let new_eps: BTreeSet<&str> = records
            .endpoints
            .iter()
            .map(|e| e.endpoint_id.as_str())
            .collect();
        for e in &self.records.endpoints {
            if !new_eps.contains(e.endpoint_id.as_str()) {
                self.resolver.remove_endpoint(&e.endpoint_id);
            }
        }
        for e in &records.endpoints {
            if self.resolver.endpoint(&e.endpoint_id) != Some(e) {
                self.resolver.upsert_endpoint(e.clone());
            }
        }
        self.scopes = records.scopes.clone();
        self.records = records;
    }

    fn udp_readable(&mut self, slot: usize) {
        let Some(fd) = self
            .sandboxes
            .get(slot)
            .and_then(Option::as_ref)
            .map(|s| s.udp.as_raw_fd())
        else {
            return;
        };
        // One socket, one sandbox: its scope holds for the whole batch (and
        // nothing below changes records or sandboxes).
        let scope = scope_in(&self.sandboxes, &self.scopes, &self.empty_scope, slot);
        // A bounded share per wakeup (see the module docs): what is left is
        // still readable, so the level-triggered epoll reports it again.
        for _ in 0..UDP_BATCHES_PER_WAKEUP {
            let n = self.batch.recv(fd);
            if n == 0 {
                return;
            }
            let now = self.now();
            let mut replies = 0;
            for i in 0..n {
                let len = self.batch.msgs[i].msg_len as usize;
                if self.batch.msgs[i].msg_hdr.msg_flags & libc::MSG_TRUNC != 0 {
                    continue;
                }
                let token = self.next_token;
                self.next_token += 1;
                let mut out = std::mem::take(&mut self.batch.outs[replies]);
                let outcome = self.resolver.handle_query(
                    now,
                    scope,
                    ClientToken(token),
                    Transport::Udp,
                    &self.batch.bufs[i][..len],
                    &mut self.rng,
                    &mut out,
                );
                match outcome {
                    Outcome::Reply { .. } => {
                        self.batch.out_addrs[replies] = self.batch.addrs[i];
                        self.batch.out_lens[replies] = self.batch.msgs[i].msg_hdr.msg_namelen;
                        self.batch.outs[replies] = out;
                        replies += 1;
                    }
                    Outcome::Forward { upstream, .. } => {
                        if let Some(peer) = sockaddr_to_std(&self.batch.addrs[i]) {
                            self.pending.insert(token, Client::Udp { slot, peer });
                            // The fields, not `send_upstream_udp`: `scope`
                            // still borrows `self.scopes`.
                            if let Err(e) =
                                self.ports
                                    .send(upstream, &out, now, &mut self.rng, &self.poller)
                            {
                                tracing::debug!(%upstream, error = %e, "send to upstream failed");
                            }
                        }
                        self.batch.outs[replies] = out;
                    }
                    Outcome::Drop(_) => self.batch.outs[replies] = out,
                }
            }
            self.batch.send(fd, replies);
            if n < BATCH {
                return;
            }
        }
    }

    fn send_upstream_udp(&mut self, upstream: SocketAddr, bytes: &[u8]) {
        let now = self.now();
        if let Err(e) = self
            .ports
            .send(upstream, bytes, now, &mut self.rng, &self.poller)
        {
            // The resolver's timeout moves on to the next upstream.
            tracing::debug!(%upstream, error = %e, "send to upstream failed");
        }
    }

    fn upstream_readable(&mut self, slot: usize) {
        let mut buf = [0u8; 65_535];
        for _ in 0..UPSTREAM_READS_PER_WAKEUP {
            let Some(sock) = self.ports.socket(slot) else {
                return;
            };
            let (n, from) = match sock.recv_from(&mut buf) {
                Ok(r) => r,
                Err(_) => return,
            };
            if !self.ports.accepts(slot, &buf[..n]) {
                // Not an answer to a query sent from this port: forged or
                // stray.
                self.upstream_wrong_port += 1;
                continue;
            }
            let now = self.now();
            let mut out = std::mem::take(&mut self.out);
            let outcome = self.resolver.handle_upstream_reply(
                now,
                from,
                Transport::Udp,
                &buf[..n],
                &mut self.rng,
                &mut out,
            );
            self.dispatch(outcome, &out);
            self.out = out;
        }
    }

    /// Carries out an outcome produced outside the UDP batch path (upstream
    /// replies, timeouts, TCP).
    fn dispatch(&mut self, outcome: Outcome, bytes: &[u8]) {
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
            Client::Tcp { conn } => {
                let Some(c) = self.conns.get_mut(conn).and_then(Option::as_mut) else {
                    return;
                };
                c.forwarding = c.forwarding.saturating_sub(1);
                let now = self.now();
                if self.queue_reply(conn, bytes, now) {
                    self.serve(conn, now);
                }
            }
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

    /// Forwards one TCP query on a helper thread; the reply comes back
    /// through the command channel. A failure, or no thread because
    /// [`MAX_TCP_FORWARDS`] are running, is left to the resolver's timeout,
    /// which moves on to the next upstream or answers SERVFAIL.
    fn forward_tcp(&mut self, upstream: SocketAddr, query: &[u8]) {
        if self.tcp_forwards.fetch_add(1, Ordering::AcqRel) >= MAX_TCP_FORWARDS {
            self.tcp_forwards.fetch_sub(1, Ordering::AcqRel);
            self.tcp_forwards_refused += 1;
            return;
        }
        // Frees the place when the thread ends, or at once if the spawn
        // fails (the closure holding it is dropped).
        let place = ForwardSlot(Arc::clone(&self.tcp_forwards));
        let tx = self.self_tx.clone();
        let wake = self.wake.try_clone();
        let timeout = self.resolver.config().upstream_timeout;
        let query = query.to_vec();
        let _ = std::thread::Builder::new()
            .name("dns-tcp-fwd".into())
            .spawn(move || {
                let _place = place;
                let result = (|| -> io::Result<Vec<u8>> {
                    let mut s = TcpStream::connect_timeout(&upstream, timeout)?;
                    s.set_read_timeout(Some(timeout))?;
                    s.set_write_timeout(Some(timeout))?;
                    let mut framed = Vec::with_capacity(query.len() + 2);
                    tcp_frame(&query, &mut framed).map_err(|e| io::Error::other(e.to_string()))?;
                    s.write_all(&framed)?;
                    let mut len = [0u8; 2];
                    s.read_exact(&mut len)?;
                    let mut reply = vec![0u8; usize::from(u16::from_be_bytes(len))];
                    s.read_exact(&mut reply)?;
                    Ok(reply)
                })();
                if let (Ok(reply), Ok(wake)) = (result, wake) {
                    if tx
                        .send(Command::TcpUpstreamReply {
                            from: upstream,
                            reply,
                        })
                        .is_ok()
                    {
                        wake.wake();
                    }
                }
            });
    }

    fn accept(&mut self, slot: usize) {
        for _ in 0..ACCEPTS_PER_WAKEUP {
            let Some(s) = self.sandboxes.get(slot).and_then(Option::as_ref) else {
                return;
            };
            let (stream, _) = match s.tcp.accept() {
                Ok(c) => c,
                Err(e) if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) => {
                    // Out of descriptors: the listener stays readable, and
                    // level-triggered epoll would spin on it. Rest it for
                    // LISTENER_REST.
                    tracing::warn!(error = %e, "DNS over TCP: cannot accept; pausing the listener for a second");
                    self.unwatch(s.tcp.as_raw_fd());
                    self.paused_listeners.insert(slot);
                    let now = self.now();
                    self.listeners_resume_at.get_or_insert(now + LISTENER_REST);
                    return;
                }
                Err(_) => return,
            };
            let (all, mine) = self.conns.iter().flatten().fold((0, 0), |(all, mine), c| {
                (all + 1, mine + usize::from(c.slot == slot))
            });
            if all >= MAX_TCP_CONNS || mine >= MAX_TCP_CONNS_PER_SANDBOX {
                self.tcp_dropped += 1;
                continue;
            }
            // Reads and writes are driven by epoll: nothing may block.
            if stream.set_nonblocking(true).is_err() {
                continue;
            }
            let idx = match self.conns.iter().position(Option::is_none) {
                Some(i) => i,
                None => {
                    self.conns.push(None);
                    self.conns.len() - 1
                }
            };
            if self
                .watch(stream.as_raw_fd(), KIND_CONN | idx as u64)
                .is_err()
            {
                continue;
            }
            let now = self.now();
            self.conns[idx] = Some(Conn::new(stream, slot, now));
            // Any other connection times out no later than this one.
            self.idle_check_at.get_or_insert(now + TCP_IDLE_TIMEOUT);
        }
    }

    /// Watches the listeners paused by [`Worker::accept`] again.
    fn resume_listeners(&mut self) {
        self.listeners_resume_at = None;
        for slot in std::mem::take(&mut self.paused_listeners) {
            if let Some(s) = self.sandboxes.get(slot).and_then(Option::as_ref) {
                if let Err(e) = self.watch(s.tcp.as_raw_fd(), KIND_LISTEN | slot as u64) {
                    tracing::warn!(error = %e, "DNS over TCP: cannot watch the listener again");
                }
            }
        }
    }

    fn close_conn(&mut self, idx: usize) {
        if let Some(c) = self.conns.get_mut(idx).and_then(Option::take) {
            self.unwatch(c.stream.as_raw_fd());
        }
        self.pending
            .retain(|_, c| !matches!(c, Client::Tcp { conn } if *conn == idx));
    }

    /// Closes connections idle for [`TCP_IDLE_TIMEOUT`]: no complete query
    /// and no byte written (a client that never reads stops both). Then
    /// sets when to sweep next (see `idle_check_at`).
    fn sweep_idle(&mut self, now: Duration) {
        let mut least_recent: Option<Duration> = None;
        for idx in 0..self.conns.len() {
            let Some(last_active) = self.conns[idx].as_ref().map(|c| c.last_active) else {
                continue;
            };
            if now.saturating_sub(last_active) >= TCP_IDLE_TIMEOUT {
                self.tcp_idle_closed += 1;
                self.close_conn(idx);
            } else {
                least_recent = Some(least_recent.map_or(last_active, |l| l.min(last_active)));
            }
        }
        self.idle_check_at =
            least_recent.map(|l| (l + TCP_IDLE_TIMEOUT).max(now + TCP_SWEEP_EVERY));
    }

    fn conn_event(&mut self, idx: usize, ev: Event) {
        if ev.is_error_or_hangup() {
            // Reset or closed both ways: nothing more can be written (and
            // these are reported whatever the interest, so waiting on them
            // would spin).
            self.close_conn(idx);
        } else if ev.is_readable() {
            self.conn_readable(idx);
        } else if ev.is_writable() {
            let now = self.now();
            self.serve(idx, now);
        }
    }

    /// One read per wakeup (see the module docs); then answers what it
    /// completed and writes what it can.
    fn conn_readable(&mut self, idx: usize) {
        let mut buf = [0u8; TCP_READ_CHUNK];
        let Some(c) = self.conns.get_mut(idx).and_then(Option::as_mut) else {
            return;
        };
        if !c.paused && !c.eof {
            match c.stream.read(&mut buf) {
                Ok(0) => c.eof = true,
                Ok(n) => {
                    if c.deframer.push(&buf[..n]).is_err() {
                        self.close_conn(idx);
                        return;
                    }
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                    ) => {}
                Err(_) => {
                    self.close_conn(idx);
                    return;
                }
            }
        }
        let now = self.now();
        self.serve(idx, now);
    }

    /// Answers the connection's complete queries while its backlog allows,
    /// writes what the socket takes, and repeats while writing made room;
    /// then closes it if it is finished or re-arms epoll for what it waits on.
    fn serve(&mut self, idx: usize, now: Duration) {
        loop {
            if !self.answer_queued(idx, now) {
                return;
            }
            let Some(c) = self.conns.get_mut(idx).and_then(Option::as_mut) else {
                return;
            };
            if c.flush(now).is_err() {
                self.close_conn(idx);
                return;
            }
            if !(c.paused && c.backlog() <= TCP_OUT_LIMIT / 2) {
                break;
            }
        }
        let Some(c) = self.conns.get_mut(idx).and_then(Option::as_mut) else {
            return;
        };
        if c.eof && !c.paused && c.backlog() == 0 && c.forwarding == 0 {
            self.close_conn(idx);
            return;
        }
        let wanted = c.wanted_interest();
        if wanted != c.interest {
            let fd = c.stream.as_raw_fd();
            let token = KIND_CONN | idx as u64;
            let changed = match wanted {
                Some(interest) => self.poller.modify(fd, token, interest),
                None => self.poller.modify_hangup_only(fd, token),
            };
            if changed.is_err() {
                self.close_conn(idx);
                return;
            }
            c.interest = wanted;
        }
    }

    /// Answers complete queries waiting in the connection's deframer until
    /// none is left or the backlog is over half the bound (then it pauses).
    /// False when the connection was closed.
    fn answer_queued(&mut self, idx: usize, now: Duration) -> bool {
        loop {
            let token = self.next_token;
            // Field by field, so the query can be read in place from the
            // deframer while the resolver writes the answer.
            let outcome = {
                let Some(c) = self.conns.get_mut(idx).and_then(Option::as_mut) else {
                    return false;
                };
                if c.backlog() > TCP_OUT_LIMIT / 2 {
                    c.paused = true;
                    return true;
                }
                let Some(query) = c.deframer.next_message() else {
                    c.paused = false;
                    return true;
                };
                c.last_active = now;
                let scope = scope_in(&self.sandboxes, &self.scopes, &self.empty_scope, c.slot);
                self.resolver.handle_query(
                    now,
                    scope,
                    ClientToken(token),
                    Transport::Tcp,
                    query,
                    &mut self.rng,
                    &mut self.out,
                )
            };
            self.next_token += 1;
            let out = std::mem::take(&mut self.out);
            match outcome {
                Outcome::Reply { .. } => {
                    if !self.queue_reply(idx, &out, now) {
                        self.out = out;
                        return false;
                    }
                }
                Outcome::Forward { upstream, .. } => {
                    // Pending even when no thread is free: the resolver's
                    // timeout then answers through it.
                    self.pending.insert(token, Client::Tcp { conn: idx });
                    if let Some(c) = self.conns.get_mut(idx).and_then(Option::as_mut) {
                        c.forwarding += 1;
                    }
                    self.forward_tcp(upstream, &out);
                }
                Outcome::Drop(_) => {}
            }
            self.out = out;
        }
    }

    /// Adds a reply to the connection's backlog. If it would not fit in
    /// [`TCP_OUT_LIMIT`] even after writing what the socket takes now, the
    /// client is not reading its replies: the connection is closed (false).
    fn queue_reply(&mut self, idx: usize, message: &[u8], now: Duration) -> bool {
        if message.len() > usize::from(u16::MAX) {
            // Cannot be framed (the resolver never makes one): nothing sent.
            return true;
        }
        let Some(c) = self.conns.get_mut(idx).and_then(Option::as_mut) else {
            return false;
        };
        let framed = LENGTH_PREFIX + message.len();
        if c.backlog() + framed > TCP_OUT_LIMIT {
            if c.flush(now).is_err() {
                self.close_conn(idx);
                return false;
            }
            if c.backlog() + framed > TCP_OUT_LIMIT {
                self.tcp_slow_closed += 1;
                tracing::debug!(
                    conn = idx,
                    "DNS TCP client does not read its replies; closed"
                );
                self.close_conn(idx);
                return false;
            }
        }
        c.push_reply(message);
        true
    }
}
