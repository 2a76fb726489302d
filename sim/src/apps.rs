//! Built-in applications: ping, UDP echo, TCP transfers and DNS lookups.
//! Each is a small state machine over smoltcp sockets that the world polls
//! whenever its container's stack runs, with results a test can assert on.
//!
//! Sockets are created when an application first runs and removed when it
//! ends, so idle containers hold no socket buffers.

use crate::container::{Container, Role, Stack};
use crate::link::LinkId;
use serde::Serialize;
use smoltcp::iface::{SocketHandle, SocketSet};
use smoltcp::phy::ChecksumCapabilities;
use smoltcp::socket::{icmp, tcp, udp};
use smoltcp::wire::{Icmpv4Packet, Icmpv4Repr, IpAddress, IpEndpoint};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;
use switchyard_switch::Instant;

use crate::error::SimError;

/// Most echo requests one ping may send: ICMP echo sequence numbers are 16
/// bits and each request needs its own, so replies can be matched to the
/// request they answer. Past this a sequence number would repeat and the
/// replies of two requests could no longer be told apart (a 70 000-echo
/// ping used to report 65 536/70 000).
pub(crate) const MAX_PING_COUNT: u32 = 1 << 16;

/// Refuses a ping count whose sequence numbers would wrap (see
/// [`MAX_PING_COUNT`]), with a message that says what to do instead.
pub(crate) fn check_ping_count(count: u32) -> Result<(), SimError> {
    if count > MAX_PING_COUNT {
        return Err(SimError::Invalid {
            what: "ping count",
            detail: ping_count_problem(count),
        });
    }
    Ok(())
}

/// Why `count` is too many echoes for one ping; shared by the Rust API and
/// the lab validator so both say the same thing.
pub(crate) fn ping_count_problem(count: u32) -> String {
    format!(
        "count = {count} is more than one ping can send: ICMP echo sequence numbers are 16 bits, \
         so the limit is {MAX_PING_COUNT} echoes; split it into several pings or use a UDP echo"
    )
}

/// Index of an application in the world.
pub(crate) type AppId = u32;

/// A handle on a started application, to read its result.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct AppHandle(pub(crate) u32);

/// What a ping run observed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PingResult {
    /// The address pinged.
    pub target: Option<Ipv4Addr>,
    /// Echo requests sent.
    pub sent: u32,
    /// Echo replies received (each request counted once).
    pub received: u32,
    /// Round-trip times of the replies, in arrival order.
    pub rtts: Vec<Duration>,
    /// True once every request was answered or the last one timed out.
    pub done: bool,
    /// Why the run stopped early (interface removed, container crashed).
    pub error: Option<String>,
}

/// What a UDP echo run observed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct UdpResult {
    /// The server's address.
    pub target: Option<Ipv4Addr>,
    /// The server's port.
    pub port: u16,
    /// Datagrams sent by the client.
    pub sent: u32,
    /// Datagrams echoed back intact.
    pub echoed: u32,
    /// True once every datagram came back or the last one timed out.
    pub done: bool,
    /// Why the run stopped early.
    pub error: Option<String>,
}

/// Which way a TCP transfer's bytes flow.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub enum TcpDirection {
    /// The client sends, the server receives.
    #[default]
    Send,
    /// The server sends, the client receives ("c fetches from a").
    Fetch,
}

/// What a TCP transfer observed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct TcpResult {
    /// The server's address.
    pub target: Option<Ipv4Addr>,
    /// The server's port.
    pub port: u16,
    /// Which way the bytes flow.
    pub direction: TcpDirection,
    /// Bytes to transfer.
    pub bytes: u64,
    /// Bytes the receiver got, in order and intact.
    pub received: u64,
    /// When the client's connection was established.
    pub connected_at: Option<Instant>,
    /// When the receiver had every byte and the sender's FIN.
    pub completed_at: Option<Instant>,
    /// True once completed or failed.
    pub done: bool,
    /// Why it failed (refused, reset, timed out, data corrupted).
    pub error: Option<String>,
    /// The client's address and port as the server container saw them:
    /// through a published port, the external client's own address.
    pub peer_seen: Option<SocketAddr>,
}

/// What a DNS lookup observed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct DnsResult {
    /// The name asked for.
    pub name: String,
    /// The response code (`NOERROR`, `NXDOMAIN`, `SERVFAIL`, ...), once
    /// answered.
    pub rcode: Option<String>,
    /// Addresses in the answer, in answer order.
    pub addresses: Vec<IpAddr>,
    /// Time from query to answer.
    pub rtt: Option<Duration>,
    /// True once answered or timed out.
    pub done: bool,
    /// Why there is no answer (timed out, unreadable reply).
    pub error: Option<String>,
}

/// The result of any application.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum AppResult {
    /// A ping run.
    Ping(PingResult),
    /// A UDP echo run.
    Udp(UdpResult),
    /// A TCP transfer.
    Tcp(TcpResult),
    /// A DNS lookup.
    Dns(DnsResult),
}

impl AppResult {
    /// True when the application has finished (successfully or not).
    pub fn is_done(&self) -> bool {
        match self {
            AppResult::Ping(r) => r.done,
            AppResult::Udp(r) => r.done,
            AppResult::Tcp(r) => r.done,
            AppResult::Dns(r) => r.done,
        }
    }
}

/// Something an application asks the world to do.
pub(crate) enum Effect {
    /// Send a DNS query to the host's embedded resolver over loopback.
    DnsQuery {
        app: AppId,
        container: u32,
        src_port: u16,
        bytes: Vec<u8>,
    },
}

/// What the world gives an application when it runs.
pub(crate) struct AppCtx<'a> {
    pub now: Instant,
    pub id: AppId,
    pub container: u32,
    pub effects: &'a mut Vec<Effect>,
}

/// What a poll decided for one role of an application.
pub(crate) struct PartPoll {
    /// Run again at this time even without traffic.
    pub wake: Option<Instant>,
    /// This role is over: forget it in its container.
    pub detach: bool,
}

impl PartPoll {
    fn detach() -> PartPoll {
        PartPoll {
            wake: None,
            detach: true,
        }
    }
}

/// A running or finished application.
pub(crate) struct App {
    pub label: String,
    pub client: u32,
    pub server: Option<u32>,
    pub kind: AppKind,
}

pub(crate) enum AppKind {
    Ping(PingApp),
    Udp(UdpApp),
    Tcp(TcpApp),
    Dns(DnsApp),
}

impl App {
    pub(crate) fn result(&self) -> AppResult {
        match &self.kind {
            AppKind::Ping(a) => AppResult::Ping(a.result.clone()),
            AppKind::Udp(a) => AppResult::Udp(a.result.clone()),
            AppKind::Tcp(a) => AppResult::Tcp(a.result.clone()),
            AppKind::Dns(a) => AppResult::Dns(a.result.clone()),
        }
    }

    pub(crate) fn is_done(&self) -> bool {
        match &self.kind {
            AppKind::Ping(a) => a.result.done,
            AppKind::Udp(a) => a.result.done,
            AppKind::Tcp(a) => a.result.done,
            AppKind::Dns(a) => a.result.done,
        }
    }

    /// Ends the application with an error (its container crashed, its
    /// interface went away), unless it already ended.
    pub(crate) fn fail(&mut self, why: &str) {
        let err = Some(why.to_string());
        match &mut self.kind {
            AppKind::Ping(a) if !a.result.done => {
                a.result.error = err;
                a.result.done = true;
            }
            AppKind::Udp(a) if !a.result.done => {
                a.result.error = err;
                a.result.done = true;
            }
            AppKind::Tcp(a) if !a.result.done => {
                a.result.error = err;
                a.result.done = true;
            }
            AppKind::Dns(a) if !a.result.done => {
                a.result.error = err;
                a.result.done = true;
            }
            _ => {}
        }
    }

    /// Runs one role of the application against its container's stacks.
    pub(crate) fn poll(
        &mut self,
        role: Role,
        cont: &mut Container,
        ctx: &mut AppCtx<'_>,
    ) -> PartPoll {
        match (&mut self.kind, role) {
            (AppKind::Ping(a), _) => a.poll(cont, ctx),
            (AppKind::Udp(a), Role::Client) => a.poll_client(cont, ctx),
            (AppKind::Udp(a), Role::Server) => a.poll_server(cont, ctx),
            (AppKind::Tcp(a), Role::Client) => a.poll_client(cont, ctx),
            (AppKind::Tcp(a), Role::Server) => a.poll_server(cont, ctx),
            (AppKind::Dns(a), _) => a.poll(ctx),
        }
    }

    /// Runs the client role on a node of the internet (an external client
    /// of a published port): TCP transfers and UDP echoes.
    pub(crate) fn poll_on_node(
        &mut self,
        stack: &mut Stack,
        ephemeral: impl FnOnce() -> u16,
        ctx: &mut AppCtx<'_>,
    ) -> PartPoll {
        match &mut self.kind {
            AppKind::Tcp(a) => {
                let local = if a.client_socket.is_none() && !a.result.done {
                    ephemeral()
                } else {
                    0
                };
                a.client_on(Some(stack), local, ctx.now)
            }
            AppKind::Udp(a) => {
                let local = if a.client_socket.is_none() && !a.result.done {
                    ephemeral()
                } else {
                    0
                };
                a.client_on(Some(stack), local, ctx.now)
            }
            _ => {
                self.fail("only TCP transfers and UDP echoes run on outside nodes");
                PartPoll::detach()
            }
        }
    }
}

/// Removes a socket if the interface still exists.
fn drop_socket(cont: &mut Container, nic: LinkId, handle: &mut Option<SocketHandle>) {
    if let Some(h) = handle.take() {
        if let Some(stack) = cont.nic_by_link(nic).and_then(|n| n.stack.as_mut()) {
            stack.sockets.remove(h);
        }
    }
}

pub(crate) fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

/// Bytes of the echo payload ping sends, as iputils' default 56.
const PING_PAYLOAD: [u8; 56] = {
    let mut p = [0u8; 56];
    let mut i = 0;
    while i < 56 {
        p[i] = 0x10 + i as u8;
        i += 1;
    }
    p
};

pub(crate) struct PingApp {
    pub dst: Ipv4Addr,
    pub count: u32,
    pub interval: Duration,
    pub timeout: Duration,
    pub ident: u16,
    pub nic: LinkId,
    pub socket: Option<SocketHandle>,
    pub next_send: Instant,
    pub sent_at: Vec<Instant>,
    pub answered: Vec<bool>,
    pub result: PingResult,
}

impl PingApp {
    fn poll(&mut self, cont: &mut Container, ctx: &mut AppCtx<'_>) -> PartPoll {
        let now = ctx.now;
        if self.result.done {
            drop_socket(cont, self.nic, &mut self.socket);
            return PartPoll::detach();
        }
        let Some(stack) = cont.nic_by_link(self.nic).and_then(|n| n.stack.as_mut()) else {
            self.result.error = Some("the interface was removed".into());
            self.result.done = true;
            return PartPoll::detach();
        };
        let handle = *self.socket.get_or_insert_with(|| {
            let buf = || {
                icmp::PacketBuffer::new(vec![icmp::PacketMetadata::EMPTY; 8], vec![0u8; 8 * 128])
            };
            let mut s = icmp::Socket::new(buf(), buf());
            let _ = s.bind(icmp::Endpoint::Ident(self.ident));
            stack.sockets.add(s)
        });
        let sock = stack.sockets.get_mut::<icmp::Socket>(handle);
        let caps = ChecksumCapabilities::default();
        while let Ok((data, _from)) = sock.recv() {
            let Ok(pkt) = Icmpv4Packet::new_checked(data) else {
                continue;
            };
            if let Ok(Icmpv4Repr::EchoReply { ident, seq_no, .. }) = Icmpv4Repr::parse(&pkt, &caps)
            {
                let seq = usize::from(seq_no);
                if ident == self.ident && seq < self.sent_at.len() && !self.answered[seq] {
                    self.answered[seq] = true;
                    self.result.received += 1;
                    self.result
                        .rtts
                        .push(now.saturating_duration_since(self.sent_at[seq]));
                }
            }
        }
        if self.result.sent < self.count && now >= self.next_send {
            // `sent < count <= MAX_PING_COUNT` (checked at start), so the
            // sequence number never wraps and each request has its own.
            let repr = Icmpv4Repr::EchoRequest {
                ident: self.ident,
                seq_no: self.result.sent as u16,
                data: &PING_PAYLOAD,
            };
            match sock.send(repr.buffer_len(), IpAddress::Ipv4(self.dst)) {
                Ok(buf) => {
                    repr.emit(&mut Icmpv4Packet::new_unchecked(buf), &caps);
                    self.sent_at.push(now);
                    self.answered.push(false);
                    self.result.sent += 1;
                    self.next_send = now + self.interval;
                }
                // The send buffer is full (the stack is still resolving the
                // neighbour): try again shortly.
                Err(_) => self.next_send = now + Duration::from_millis(10),
            }
        }
        let last = self.sent_at.last().copied();
        if self.result.received == self.count
            || (self.result.sent == self.count && last.is_some_and(|t| now >= t + self.timeout))
        {
            self.result.done = true;
            drop_socket(cont, self.nic, &mut self.socket);
            return PartPoll::detach();
        }
        let wake = if self.result.sent < self.count {
            Some(self.next_send)
        } else {
            last.map(|t| t + self.timeout)
        };
        PartPoll {
            wake,
            detach: false,
        }
    }
}

/// The payload of the `seq`-th echo datagram: its sequence number then a
/// pattern, so a corrupted echo is not counted.
fn udp_payload(seq: u32, size: usize) -> Vec<u8> {
    let mut p = Vec::with_capacity(size.max(4));
    p.extend_from_slice(&seq.to_be_bytes());
    while p.len() < size {
        p.push((p.len() as u8).wrapping_mul(13) ^ seq as u8);
    }
    p
}

pub(crate) struct UdpApp {
    pub dst: Ipv4Addr,
    pub port: u16,
    /// The port the echoing container binds: `port`, except behind a
    /// published port.
    pub server_port: u16,
    pub count: u32,
    pub size: usize,
    pub interval: Duration,
    pub timeout: Duration,
    pub client_nic: LinkId,
    pub server_nic: LinkId,
    pub client_socket: Option<SocketHandle>,
    pub server_socket: Option<SocketHandle>,
    pub server_failed: bool,
    pub next_send: Instant,
    pub last_sent: Option<Instant>,
    pub seen: Vec<bool>,
    pub result: UdpResult,
}

fn udp_socket(packets: usize, bytes: usize) -> udp::Socket<'static> {
    let buf =
        || udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; packets], vec![0u8; bytes]);
    udp::Socket::new(buf(), buf())
}

impl UdpApp {
    /// A UDP echo exchange as `u` asks for, to `dst`, with the server's
    /// bound port and the links each side uses (`LinkId::MAX` for a side
    /// that is not a container's NIC).
    pub(crate) fn new(
        u: &crate::UdpEcho,
        dst: Ipv4Addr,
        server_port: u16,
        client_nic: LinkId,
        server_nic: LinkId,
        now: Instant,
    ) -> UdpApp {
        UdpApp {
            dst,
            port: u.port,
            server_port,
            count: u.count,
            size: u.size.max(4),
            interval: u.interval,
            timeout: u.timeout,
            client_nic,
            server_nic,
            client_socket: None,
            server_socket: None,
            server_failed: false,
            next_send: now,
            last_sent: None,
            seen: Vec::new(),
            result: UdpResult {
                target: Some(dst),
                port: u.port,
                done: u.count == 0,
                ..UdpResult::default()
            },
        }
    }

    fn poll_server(&mut self, cont: &mut Container, _ctx: &mut AppCtx<'_>) -> PartPoll {
        if self.result.done {
            drop_socket(cont, self.server_nic, &mut self.server_socket);
            return PartPoll::detach();
        }
        let Some(stack) = cont
            .nic_by_link(self.server_nic)
            .and_then(|n| n.stack.as_mut())
        else {
            self.server_failed = true;
            return PartPoll::detach();
        };
        if self.server_socket.is_none() {
            let mut s = udp_socket(16, 16 * (self.size + 64));
            if s.bind(self.server_port).is_err() {
                self.server_failed = true;
                return PartPoll::detach();
            }
            self.server_socket = Some(stack.sockets.add(s));
        }
        let Some(handle) = self.server_socket else {
            return PartPoll::detach();
        };
        let sock = stack.sockets.get_mut::<udp::Socket>(handle);
        let mut buf = vec![0u8; self.size.max(4) + 64];
        while let Ok((n, meta)) = sock.recv_slice(&mut buf) {
            let _ = sock.send_slice(&buf[..n], meta.endpoint);
        }
        PartPoll {
            wake: None,
            detach: false,
        }
    }

    fn poll_client(&mut self, cont: &mut Container, ctx: &mut AppCtx<'_>) -> PartPoll {
        let local = if self.client_socket.is_none() && !self.result.done {
            cont.ephemeral_port()
        } else {
            0
        };
        let stack = cont
            .nic_by_link(self.client_nic)
            .and_then(|n| n.stack.as_deref_mut());
        self.client_on(stack, local, ctx.now)
    }

    /// The sending side on whatever stack runs it (a container's
    /// interface, or a node of the internet).
    pub(crate) fn client_on(
        &mut self,
        stack: Option<&mut Stack>,
        local: u16,
        now: Instant,
    ) -> PartPoll {
        if self.result.done {
            if let (Some(stack), Some(h)) = (stack, self.client_socket.take()) {
                stack.sockets.remove(h);
            }
            return PartPoll::detach();
        }
        let Some(stack) = stack else {
            self.result.error = Some("the interface was removed".into());
            self.result.done = true;
            return PartPoll::detach();
        };
        if self.client_socket.is_none() {
            let mut s = udp_socket(16, 16 * (self.size + 64));
            let _ = s.bind(local);
            self.client_socket = Some(stack.sockets.add(s));
        }
        let Some(handle) = self.client_socket else {
            return PartPoll::detach();
        };
        let sock = stack.sockets.get_mut::<udp::Socket>(handle);
        let mut buf = vec![0u8; self.size.max(4) + 64];
        while let Ok((n, _meta)) = sock.recv_slice(&mut buf) {
            if n < 4 {
                continue;
            }
            let seq = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
            let i = seq as usize;
            if i < self.seen.len() && !self.seen[i] && buf[..n] == udp_payload(seq, self.size)[..] {
                self.seen[i] = true;
                self.result.echoed += 1;
            }
        }
        if self.result.sent < self.count && now >= self.next_send {
            let payload = udp_payload(self.result.sent, self.size);
            let to = IpEndpoint::new(IpAddress::Ipv4(self.dst), self.port);
            match sock.send_slice(&payload, to) {
                Ok(()) => {
                    self.seen.push(false);
                    self.result.sent += 1;
                    self.last_sent = Some(now);
                    self.next_send = now + self.interval;
                }
                Err(_) => self.next_send = now + Duration::from_millis(10),
            }
        }
        if self.result.echoed == self.count
            || (self.result.sent == self.count
                && self.last_sent.is_some_and(|t| now >= t + self.timeout))
        {
            self.result.done = true;
            if self.server_failed && self.result.echoed == 0 {
                self.result.error = Some("the server could not listen".into());
            }
            if let Some(h) = self.client_socket.take() {
                stack.sockets.remove(h);
            }
            return PartPoll::detach();
        }
        let wake = if self.result.sent < self.count {
            Some(self.next_send)
        } else {
            self.last_sent.map(|t| t + self.timeout)
        };
        PartPoll {
            wake,
            detach: false,
        }
    }
}

/// The period of the TCP transfer pattern (a prime, so it does not line
/// up with segment sizes).
const PATTERN_PERIOD: usize = 4093;
/// Bytes a transfer copies per call, at most.
const CHUNK: usize = 4096;

/// The pattern every TCP transfer sends, laid out so that the bytes at
/// stream offset `i`, up to `CHUNK` of them, are one slice (see
/// [`pattern_at`]): the receiver checks each byte with a memcmp.
static PATTERN: std::sync::LazyLock<Vec<u8>> = std::sync::LazyLock::new(|| {
    (0..PATTERN_PERIOD + CHUNK)
        .map(|i| {
            let i = (i % PATTERN_PERIOD) as u64;
            (i.wrapping_mul(31) ^ (i >> 7)) as u8
        })
        .collect()
});

/// The `n` (≤ `CHUNK`) pattern bytes at stream offset `offset`.
#[inline]
pub(crate) fn pattern_at(offset: u64, n: usize) -> &'static [u8] {
    let start = (offset % PATTERN_PERIOD as u64) as usize;
    &PATTERN[start..start + n.min(CHUNK)]
}

const TCP_BUFFER: usize = 64 * 1024;

pub(crate) struct TcpApp {
    pub dst: Ipv4Addr,
    pub port: u16,
    /// The port the server container listens on: `port`, except behind a
    /// published port, where the client connects to the host's port.
    pub server_port: u16,
    pub deadline: Instant,
    pub client_nic: LinkId,
    pub server_nic: LinkId,
    pub client_socket: Option<SocketHandle>,
    pub server_socket: Option<SocketHandle>,
    /// Bytes the sending side has queued.
    pub queued: u64,
    /// The sending side has closed its half.
    pub sender_closed: bool,
    /// When the receiver finished, for lingering until the FIN exchange ends.
    pub finished_at: Option<Instant>,
    /// What the client sends before it reads (a fetch from an outside
    /// server asks `GET /N`); empty for a container server.
    pub request: Vec<u8>,
    pub request_sent: usize,
    pub result: TcpResult,
}

fn tcp_socket() -> tcp::Socket<'static> {
    let mut s = tcp::Socket::new(
        tcp::SocketBuffer::new(vec![0u8; TCP_BUFFER]),
        tcp::SocketBuffer::new(vec![0u8; TCP_BUFFER]),
    );
    s.set_nagle_enabled(false);
    s
}

/// How long a finished transfer's sockets linger for the closing handshake.
const TCP_LINGER: Duration = Duration::from_secs(5);

impl TcpApp {
    /// Sends as much of the pattern as the socket takes; closes at the end.
    fn pump_send(&mut self, sock: &mut tcp::Socket<'_>) {
        while self.queued < self.result.bytes && sock.can_send() {
            let n = ((self.result.bytes - self.queued) as usize).min(CHUNK);
            match sock.send_slice(pattern_at(self.queued, n)) {
                Ok(0) | Err(_) => break,
                Ok(sent) => self.queued += sent as u64,
            }
        }
        if self.queued == self.result.bytes && !self.sender_closed {
            sock.close();
            self.sender_closed = true;
        }
    }

    /// Reads what arrived, checking every byte; notes completion.
    fn pump_recv(&mut self, sock: &mut tcp::Socket<'_>, now: Instant) {
        let mut chunk = [0u8; CHUNK];
        while sock.can_recv() {
            match sock.recv_slice(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let start = self.result.received;
                    if chunk[..n] != *pattern_at(start, n) {
                        self.result.error = Some(format!(
                            "data corrupted: the bytes after offset {start} differ from what was sent"
                        ));
                        self.result.done = true;
                        sock.abort();
                        return;
                    }
                    self.result.received += n as u64;
                }
            }
        }
        // The sender's FIN has arrived once receiving is over.
        if !sock.may_recv()
            && self.result.received == self.result.bytes
            && matches!(
                sock.state(),
                tcp::State::CloseWait
                    | tcp::State::LastAck
                    | tcp::State::Closing
                    | tcp::State::TimeWait
                    | tcp::State::Closed
            )
            && self.result.completed_at.is_none()
        {
            self.result.completed_at = Some(now);
            self.result.done = true;
            self.finished_at = Some(now);
            sock.close();
        }
    }

    /// One side's socket once the transfer is over: stamps the finish,
    /// aborts on an error, and removes the socket once it has lingered
    /// (the caller then forgets its handle: the poll says detach).
    fn wind_down(
        &mut self,
        sockets: &mut SocketSet<'static>,
        handle: SocketHandle,
        now: Instant,
    ) -> PartPoll {
        if self.finished_at.is_none() {
            self.finished_at = Some(now);
        }
        let sock = sockets.get_mut::<tcp::Socket>(handle);
        if self.result.error.is_some() {
            sock.abort();
        }
        if self.linger(sock.state(), now) {
            sockets.remove(handle);
            return PartPoll::detach();
        }
        PartPoll {
            wake: self.finished_at.map(|t| t + TCP_LINGER),
            detach: false,
        }
    }

    fn linger(&mut self, sock_state: tcp::State, now: Instant) -> bool {
        matches!(sock_state, tcp::State::Closed | tcp::State::TimeWait)
            || self.finished_at.is_some_and(|t| now >= t + TCP_LINGER)
    }

    fn check_deadline(&mut self, now: Instant, state: tcp::State) {
        if !self.result.done && now >= self.deadline {
            self.result.error = Some(format!(
                "timed out with {} of {} bytes received (client connection {state})",
                self.result.received, self.result.bytes
            ));
            self.result.done = true;
            self.finished_at = Some(now);
        }
    }

    fn poll_client(&mut self, cont: &mut Container, ctx: &mut AppCtx<'_>) -> PartPoll {
        let local = if self.client_socket.is_none() && !self.result.done {
            cont.ephemeral_port()
        } else {
            0
        };
        let stack = cont
            .nic_by_link(self.client_nic)
            .and_then(|n| n.stack.as_deref_mut());
        self.client_on(stack, local, ctx.now)
    }

    /// The client's side on whatever stack runs it (a container's
    /// interface, or a node of the internet).
    pub(crate) fn client_on(
        &mut self,
        stack: Option<&mut Stack>,
        local: u16,
        now: Instant,
    ) -> PartPoll {
        let Some(stack) = stack else {
            if !self.result.done {
                self.result.error = Some("the interface was removed".into());
                self.result.done = true;
            }
            return PartPoll::detach();
        };
        if self.client_socket.is_none() {
            if self.result.done {
                return PartPoll::detach();
            }
            let mut s = tcp_socket();
            let cx = stack.iface.context();
            if let Err(e) = s.connect(cx, (IpAddress::Ipv4(self.dst), self.port), local) {
                self.result.error = Some(format!("cannot connect: {e}"));
                self.result.done = true;
                return PartPoll::detach();
            }
            self.client_socket = Some(stack.sockets.add(s));
        }
        let Some(handle) = self.client_socket else {
            return PartPoll::detach();
        };
        let sock = stack.sockets.get_mut::<tcp::Socket>(handle);
        if !self.result.done {
            if self.result.connected_at.is_none() && sock.may_send() {
                self.result.connected_at = Some(now);
            }
            match self.result.direction {
                TcpDirection::Send => self.pump_send(sock),
                TcpDirection::Fetch => {
                    if self.request_sent < self.request.len() && sock.may_send() {
                        if let Ok(n) = sock.send_slice(&self.request[self.request_sent..]) {
                            self.request_sent += n;
                        }
                    }
                    self.pump_recv(sock, now)
                }
            }
            if !self.result.done && sock.state() == tcp::State::Closed {
                self.result.error = Some(if self.result.connected_at.is_none() {
                    "connection refused (reset by the peer before it was established)".into()
                } else {
                    format!(
                        "connection reset after {} of {} bytes",
                        self.result.received, self.result.bytes
                    )
                });
                self.result.done = true;
                self.finished_at = Some(now);
            }
            self.check_deadline(now, sock.state());
        }
        if self.result.done {
            let poll = self.wind_down(&mut stack.sockets, handle, now);
            if poll.detach {
                self.client_socket = None;
            }
            return poll;
        }
        PartPoll {
            wake: Some(self.deadline),
            detach: false,
        }
    }

    fn poll_server(&mut self, cont: &mut Container, ctx: &mut AppCtx<'_>) -> PartPoll {
        let now = ctx.now;
        let Some(stack) = cont
            .nic_by_link(self.server_nic)
            .and_then(|n| n.stack.as_mut())
        else {
            return PartPoll::detach();
        };
        if self.server_socket.is_none() {
            if self.result.done {
                return PartPoll::detach();
            }
            let mut s = tcp_socket();
            if let Err(e) = s.listen(self.server_port) {
                self.result.error = Some(format!(
                    "the server cannot listen on port {}: {e}",
                    self.server_port
                ));
                self.result.done = true;
                return PartPoll::detach();
            }
            self.server_socket = Some(stack.sockets.add(s));
        }
        let Some(handle) = self.server_socket else {
            return PartPoll::detach();
        };
        let sock = stack.sockets.get_mut::<tcp::Socket>(handle);
        if self.result.peer_seen.is_none() {
            if let Some(ep) = sock.remote_endpoint() {
                let ip = match ep.addr {
                    IpAddress::Ipv4(a) => IpAddr::V4(a),
                    IpAddress::Ipv6(a) => IpAddr::V6(a),
                };
                self.result.peer_seen = Some(SocketAddr::new(ip, ep.port));
            }
        }
        if !self.result.done {
            match self.result.direction {
                TcpDirection::Send => self.pump_recv(sock, now),
                TcpDirection::Fetch => {
                    if sock.may_send() {
                        self.pump_send(sock);
                    }
                }
            }
        }
        if self.result.done {
            let poll = self.wind_down(&mut stack.sockets, handle, now);
            if poll.detach {
                self.server_socket = None;
            }
            return poll;
        }
        PartPoll {
            wake: Some(self.deadline),
            detach: false,
        }
    }
}

pub(crate) struct DnsApp {
    pub query: Vec<u8>,
    pub id: u16,
    pub src_port: u16,
    pub timeout: Duration,
    pub sent_at: Option<Instant>,
    pub result: DnsResult,
}

impl DnsApp {
    fn poll(&mut self, ctx: &mut AppCtx<'_>) -> PartPoll {
        if self.result.done {
            return PartPoll::detach();
        }
        let now = ctx.now;
        match self.sent_at {
            None => {
                self.sent_at = Some(now);
                ctx.effects.push(Effect::DnsQuery {
                    app: ctx.id,
                    container: ctx.container,
                    src_port: self.src_port,
                    bytes: self.query.clone(),
                });
                PartPoll {
                    wake: Some(now + self.timeout),
                    detach: false,
                }
            }
            Some(t) if now >= t + self.timeout => {
                self.result.error = Some(format!(
                    "no answer from 127.0.0.11 within {:?}",
                    self.timeout
                ));
                self.result.done = true;
                PartPoll::detach()
            }
            Some(t) => PartPoll {
                wake: Some(t + self.timeout),
                detach: false,
            },
        }
    }

    /// Takes the resolver's answer.
    pub(crate) fn answer(&mut self, reply: &[u8], now: Instant) {
        if self.result.done {
            return;
        }
        self.result.done = true;
        self.result.rtt = self.sent_at.map(|t| now.saturating_duration_since(t));
        match crate::dns::parse_answer(reply, self.id) {
            Ok((rcode, addresses)) => {
                self.result.rcode = Some(rcode);
                self.result.addresses = addresses;
            }
            Err(e) => self.result.error = Some(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::MAX_PING_COUNT;
    use crate::lab::Lab;
    use crate::{EndpointSpec, NetworkSpec, Ping, Sim, SimError};
    use std::time::Duration;

    fn sim() -> Sim {
        let mut sim = Sim::builder().seed(7).build();
        sim.add_host("h1").unwrap();
        sim.create_network(
            "h1",
            NetworkSpec {
                name: "front".into(),
                subnets: vec!["10.0.1.0/24".parse().unwrap()],
                ..NetworkSpec::default()
            },
        )
        .unwrap();
        for c in ["a", "b"] {
            sim.add_container("h1", c, &[("front", EndpointSpec::default())])
                .unwrap();
        }
        sim
    }

    #[test]
    fn a_ping_of_more_echoes_than_sequence_numbers_is_refused() {
        let mut sim = sim();
        for err in [
            sim.ping("a", "b", 70_000).unwrap_err(),
            sim.start(Ping::new("a", "b").count(MAX_PING_COUNT + 1))
                .unwrap_err(),
        ] {
            assert!(
                matches!(
                    err,
                    SimError::Invalid {
                        what: "ping count",
                        ..
                    }
                ),
                "{err:?}"
            );
            let text = err.to_string();
            assert!(text.contains("65536"), "{text}");
            assert!(text.contains("16 bits"), "{text}");
        }
        // The limit itself is fine: every request still has its own number.
        assert!(sim.ping("a", "b", MAX_PING_COUNT).is_ok());
        let ping = sim.ping("a", "b", 2).unwrap();
        sim.run_until(|s| s.is_done(ping), Duration::from_secs(10));
        let r = sim.ping_result(ping).unwrap();
        assert_eq!((r.sent, r.received), (2, 2), "{r:?}");
    }

    fn lab(count: u32) -> String {
        format!(
            "[[host]]\nname = \"h1\"\n\n[[network]]\nname = \"front\"\nsubnet = \"10.0.1.0/24\"\n\n\
             [[container]]\nname = \"a\"\nnetworks = [\"front\"]\n\n\
             [[container]]\nname = \"b\"\nnetworks = [\"front\"]\n\n\
             [[step]]\nat = \"1s\"\ndo = \"ping\"\nfrom = \"a\"\nto = \"b\"\ncount = {count}\n"
        )
    }

    #[test]
    fn the_lab_validator_points_at_a_ping_count_above_the_limit() {
        let err = Lab::parse("big.toml", &lab(70_000))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("big.toml:21:9:"), "{err}");
        assert!(err.contains("count = 70000"), "{err}");
        assert!(err.contains("65536"), "{err}");
        assert!(Lab::parse("max.toml", &lab(MAX_PING_COUNT)).is_ok());
        // UDP echoes number their datagrams with 32 bits: no such limit.
        let udp = lab(70_000).replace("do = \"ping\"", "do = \"udp\"\nport = 7");
        assert!(Lab::parse("udp.toml", &udp).is_ok());
    }
}
