//! DNS over TCP clients: their connections, output buffers and limits.
//!
//! TCP never blocks the thread: replies go into a per-connection output
//! buffer bounded at [`TCP_OUT_LIMIT`], written non-blocking and flushed on
//! EPOLLOUT. A client that pipelines queries without reading its replies is
//! throttled (no new query is answered while its backlog is over half the
//! bound), closed if a reply would not fit, and closed after
//! [`TCP_IDLE_TIMEOUT`] without a complete query or a written byte. At most
//! [`MAX_TCP_CONNS`] connections are open, and at most
//! [`MAX_TCP_CONNS_PER_SANDBOX`] from one sandbox; more are accepted and
//! closed at once (counted as `tcp_connections_refused`). Queries the
//! resolver forwards go upstream over TCP ([`Worker::forward_tcp`]).

use std::collections::BTreeSet;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::time::Duration;
use switchyard_dns::{tcp_frame, ClientToken, Outcome, TcpDeframer, Transport, LENGTH_PREFIX};
use switchyard_linux::{Event, Interest};

use super::worker::{scope_in, Client, Worker, KIND_CONN, KIND_LISTEN};

/// Most concurrent TCP client connections across all sandboxes.
const MAX_TCP_CONNS: usize = 512;

/// Most concurrent TCP client connections from one sandbox, so that one
/// container holding connections open cannot use up [`MAX_TCP_CONNS`] for
/// the others. glibc and dig use one connection at a time.
const MAX_TCP_CONNS_PER_SANDBOX: usize = 64;

/// Connections accepted from one sandbox's listener per wakeup.
pub(super) const ACCEPTS_PER_WAKEUP: usize = 32;

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

/// The TCP side of the DNS thread: its connections (by index, the index
/// in their loop token), the counters its stats report, the listeners
/// resting after running out of descriptors, and its two deadlines.
#[derive(Default)]
pub(super) struct TcpClients {
    /// Open connections by index; a closed one leaves a free index.
    pub(super) conns: Vec<Option<Conn>>,
    /// Connections closed at once: over [`MAX_TCP_CONNS`] or
    /// [`MAX_TCP_CONNS_PER_SANDBOX`].
    pub(super) refused: u64,
    /// TCP clients closed because a reply would overflow their backlog.
    pub(super) slow_closed: u64,
    /// TCP connections closed by the idle timeout.
    pub(super) idle_closed: u64,
    /// Sandbox slots whose TCP listener is out of the loop after an accept
    /// ran out of descriptors; they are put back at `listeners_resume_at`.
    pub(super) paused_listeners: BTreeSet<usize>,
    /// When the paused listeners rest enough ([`LISTENER_REST`] after the
    /// first of them paused).
    pub(super) listeners_resume_at: Option<Duration>,
    /// When to sweep for idle TCP connections: no later than the least
    /// recently active one times out (activity only moves that later), and
    /// at most [`TCP_SWEEP_EVERY`] after it. `None` while there is none.
    pub(super) idle_check_at: Option<Duration>,
}

/// One client connection.
pub(super) struct Conn {
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

impl Worker {
    pub(super) fn accept(&mut self, slot: usize) {
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
                    self.tcp.paused_listeners.insert(slot);
                    let now = self.now();
                    self.tcp
                        .listeners_resume_at
                        .get_or_insert(now + LISTENER_REST);
                    return;
                }
                Err(_) => return,
            };
            let (all, mine) = self
                .tcp
                .conns
                .iter()
                .flatten()
                .fold((0, 0), |(all, mine), c| {
                    (all + 1, mine + usize::from(c.slot == slot))
                });
            if all >= MAX_TCP_CONNS || mine >= MAX_TCP_CONNS_PER_SANDBOX {
                self.tcp.refused += 1;
                continue;
            }
            // Reads and writes are driven by epoll: nothing may block.
            if stream.set_nonblocking(true).is_err() {
                continue;
            }
            let idx = match self.tcp.conns.iter().position(Option::is_none) {
                Some(i) => i,
                None => {
                    self.tcp.conns.push(None);
                    self.tcp.conns.len() - 1
                }
            };
            if self
                .watch(stream.as_raw_fd(), KIND_CONN | idx as u64)
                .is_err()
            {
                continue;
            }
            let now = self.now();
            self.tcp.conns[idx] = Some(Conn::new(stream, slot, now));
            // Any other connection times out no later than this one.
            self.tcp.idle_check_at.get_or_insert(now + TCP_IDLE_TIMEOUT);
        }
    }

    /// Watches the listeners paused by [`Worker::accept`] again.
    pub(super) fn resume_listeners(&mut self) {
        self.tcp.listeners_resume_at = None;
        for slot in std::mem::take(&mut self.tcp.paused_listeners) {
            if let Some(s) = self.sandboxes.get(slot).and_then(Option::as_ref) {
                if let Err(e) = self.watch(s.tcp.as_raw_fd(), KIND_LISTEN | slot as u64) {
                    tracing::warn!(error = %e, "DNS over TCP: cannot watch the listener again");
                }
            }
        }
    }

    fn close_conn(&mut self, idx: usize) {
        if let Some(c) = self.tcp.conns.get_mut(idx).and_then(Option::take) {
            self.unwatch(c.stream.as_raw_fd());
        }
        self.pending
            .retain(|_, c| !matches!(c, Client::Tcp { conn } if *conn == idx));
    }

    /// Answers a query of connection `conn` the resolver forwarded (or
    /// gave up on) with `bytes`.
    pub(super) fn forwarded_reply(&mut self, conn: usize, bytes: &[u8]) {
        let Some(c) = self.tcp.conns.get_mut(conn).and_then(Option::as_mut) else {
            return;
        };
        c.forwarding = c.forwarding.saturating_sub(1);
        let now = self.now();
        if self.queue_reply(conn, bytes, now) {
            self.serve(conn, now);
        }
    }

    /// Forgets a removed sandbox's TCP side: its resting listener and its
    /// connections.
    pub(super) fn close_sandbox_conns(&mut self, slot: usize) {
        self.tcp.paused_listeners.remove(&slot);
        for c in 0..self.tcp.conns.len() {
            if self.tcp.conns[c].as_ref().is_some_and(|c| c.slot == slot) {
                self.close_conn(c);
            }
        }
    }

    /// Closes connections idle for [`TCP_IDLE_TIMEOUT`]: no complete query
    /// and no byte written (a client that never reads stops both). Then
    /// sets when to sweep next (see `idle_check_at`).
    pub(super) fn sweep_idle(&mut self, now: Duration) {
        let mut least_recent: Option<Duration> = None;
        for idx in 0..self.tcp.conns.len() {
            let Some(last_active) = self.tcp.conns[idx].as_ref().map(|c| c.last_active) else {
                continue;
            };
            if now.saturating_sub(last_active) >= TCP_IDLE_TIMEOUT {
                self.tcp.idle_closed += 1;
                self.close_conn(idx);
            } else {
                least_recent = Some(least_recent.map_or(last_active, |l| l.min(last_active)));
            }
        }
        self.tcp.idle_check_at =
            least_recent.map(|l| (l + TCP_IDLE_TIMEOUT).max(now + TCP_SWEEP_EVERY));
    }

    pub(super) fn conn_event(&mut self, idx: usize, ev: Event) {
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

    /// One read per wakeup (see the worker's docs); then answers what it
    /// completed and writes what it can.
    fn conn_readable(&mut self, idx: usize) {
        let mut buf = [0u8; TCP_READ_CHUNK];
        let Some(c) = self.tcp.conns.get_mut(idx).and_then(Option::as_mut) else {
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
            let Some(c) = self.tcp.conns.get_mut(idx).and_then(Option::as_mut) else {
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
        let Some(c) = self.tcp.conns.get_mut(idx).and_then(Option::as_mut) else {
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
                let Some(c) = self.tcp.conns.get_mut(idx).and_then(Option::as_mut) else {
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
                    if let Some(c) = self.tcp.conns.get_mut(idx).and_then(Option::as_mut) {
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
        let Some(c) = self.tcp.conns.get_mut(idx).and_then(Option::as_mut) else {
            return false;
        };
        let framed = LENGTH_PREFIX + message.len();
        if c.backlog() + framed > TCP_OUT_LIMIT {
            if c.flush(now).is_err() {
                self.close_conn(idx);
                return false;
            }
            if c.backlog() + framed > TCP_OUT_LIMIT {
                self.tcp.slow_closed += 1;
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
