//! The UDP ports forwarded DNS queries leave from.
//!
//! One fixed source port for every forwarded query would leave an off-path
//! attacker only the 16-bit query id to guess before a forged answer reaches
//! a container. Instead each address family has [`POOL_SIZE`] *positions*,
//! each served by a socket on a port the kernel picks at random. A query
//! leaves from the position a keyed hash of its id selects (the key is
//! secret and random per daemon), and a reply is only accepted on a socket
//! of that same position: a forged answer must hit the one right port of
//! the pool as well as the id. All attempts of a query keep its id, so they
//! use the same position and a late answer still arrives where it is
//! expected.
//!
//! Ports change over time: after every [`ROTATE_EVERY`] queries, but at most
//! once per [`ROTATE_MIN_INTERVAL`], one position of the family gets a fresh
//! socket; the replaced one keeps receiving for [`RETIRE_AFTER`] (answers
//! still on their way) and is then closed. So a family holds at most
//! `POOL_SIZE + RETIRE_AFTER / ROTATE_MIN_INTERVAL + 1` sockets whatever the
//! query rate. dnsmasq and Docker go further (a port per query) at the price
//! of a socket per query.

use std::io;
use std::mem::size_of;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd};
use std::time::Duration;

use rand_chacha::rand_core::RngCore;
use switchyard_linux::{EventLoop, Interest};

/// Positions (sockets in service) per address family.
pub(super) const POOL_SIZE: usize = 8;
/// Queries between two replacements of a position's socket...
pub(super) const ROTATE_EVERY: u32 = 64;
/// ...but never more often than this, so the number of sockets draining
/// stays bounded however fast queries come.
pub(super) const ROTATE_MIN_INTERVAL: Duration = Duration::from_secs(1);
/// How long a replaced socket still receives: longer than a query can wait
/// for all its upstreams (3 × the 2 s timeout) plus slack.
pub(super) const RETIRE_AFTER: Duration = Duration::from_secs(10);

/// One registered socket.
struct PortSocket {
    socket: UdpSocket,
    /// The position it serves (or served, while retiring).
    position: usize,
    /// Set once replaced: closed at this time.
    retire_at: Option<Duration>,
}

/// Per address family: which slot serves each position, and the rotation
/// bookkeeping.
struct Family {
    positions: [usize; POOL_SIZE],
    sends_since_rotation: u32,
    last_rotation: Duration,
}

/// The pool (see the module docs). Registers its sockets with the DNS
/// thread's [`EventLoop`] under `token_base | slot`; closing a socket takes
/// it out of the loop, so dropping the pool needs no call to it.
pub(super) struct UpstreamPorts {
    token_base: u64,
    slots: Vec<Option<PortSocket>>,
    v4: Family,
    /// `None` when the host has no IPv6 (IPv6 upstreams then fail to send
    /// and the resolver moves on).
    v6: Option<Family>,
    /// Secret key of the id → position hash.
    key: u64,
    /// Sockets opened over the pool's life.
    opened: u64,
    /// The earliest `retire_at` of any socket, if one is draining: when the
    /// DNS thread must wake to close it.
    next_retirement: Option<Duration>,
}

impl UpstreamPorts {
    /// Opens [`POOL_SIZE`] IPv4 sockets, and as many IPv6-only ones when
    /// the host has IPv6, and watches them on `poller` for reading.
    pub(super) fn open(
        poller: &EventLoop,
        token_base: u64,
        rng: &mut dyn RngCore,
    ) -> io::Result<UpstreamPorts> {
        let mut pool = UpstreamPorts {
            token_base,
            slots: Vec::new(),
            v4: Family {
                positions: [0; POOL_SIZE],
                sends_since_rotation: 0,
                last_rotation: Duration::ZERO,
            },
            v6: None,
            key: rng.next_u64() | 1,
            opened: 0,
            next_retirement: None,
        };
        let v4 = (0..POOL_SIZE)
            .map(|_| bind(false))
            .collect::<io::Result<Vec<_>>>()?;
        for (position, socket) in v4.into_iter().enumerate() {
            pool.v4.positions[position] = pool.register(poller, socket, position)?;
        }
        // IPv6 all or nothing: a host without it (or out of descriptors)
        // serves IPv4 upstreams only.
        if let Ok(v6) = (0..POOL_SIZE)
            .map(|_| bind(true))
            .collect::<io::Result<Vec<_>>>()
        {
            let mut family = Family {
                positions: [0; POOL_SIZE],
                sends_since_rotation: 0,
                last_rotation: Duration::ZERO,
            };
            for (position, socket) in v6.into_iter().enumerate() {
                family.positions[position] = pool.register(poller, socket, position)?;
            }
            pool.v6 = Some(family);
        }
        Ok(pool)
    }

    /// Registers a bound socket in a free slot.
    fn register(
        &mut self,
        poller: &EventLoop,
        socket: UdpSocket,
        position: usize,
    ) -> io::Result<usize> {
        let slot = match self.slots.iter().position(Option::is_none) {
            Some(i) => i,
            None => {
                self.slots.push(None);
                self.slots.len() - 1
            }
        };
        poller.add(
            socket.as_raw_fd(),
            self.token_base | slot as u64,
            Interest::Readable,
        )?;
        self.slots[slot] = Some(PortSocket {
            socket,
            position,
            retire_at: None,
        });
        self.opened += 1;
        Ok(slot)
    }

    /// The position a query id leaves from and its answer must arrive at.
    fn position_of(&self, id: u16) -> usize {
        let x = (u64::from(id) ^ self.key).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        ((x ^ (x >> 29)).wrapping_mul(self.key) >> 32) as usize % POOL_SIZE
    }

    fn family_mut(&mut self, v6: bool) -> Option<&mut Family> {
        if v6 {
            self.v6.as_mut()
        } else {
            Some(&mut self.v4)
        }
    }

    /// Sends a query (its id is in its first two bytes) to `upstream` from
    /// the socket of the id's position, then rotates one position of the
    /// family when due (the fresh socket is watched on `poller`).
    pub(super) fn send(
        &mut self,
        upstream: SocketAddr,
        query: &[u8],
        now: Duration,
        rng: &mut dyn RngCore,
        poller: &EventLoop,
    ) -> io::Result<usize> {
        let Some(id) = query.get(..2).map(|b| u16::from_be_bytes([b[0], b[1]])) else {
            return Err(io::Error::other("a query shorter than its id"));
        };
        let position = self.position_of(id);
        let v6 = upstream.is_ipv6();
        let Some(family) = self.family_mut(v6) else {
            return Err(io::Error::other("no IPv6 on this host"));
        };
        let slot = family.positions[position];
        family.sends_since_rotation += 1;
        let due = family.sends_since_rotation >= ROTATE_EVERY
            && now.saturating_sub(family.last_rotation) >= ROTATE_MIN_INTERVAL;
        let sent = match self.slots.get(slot).and_then(Option::as_ref) {
            Some(s) => s.socket.send_to(query, upstream),
            None => Err(io::Error::other("pool socket missing")),
        };
        if due {
            self.rotate(v6, rng.next_u32() as usize % POOL_SIZE, now, poller);
        }
        sent
    }

    /// Whether a datagram that arrived on `slot` may be an answer: its id
    /// must belong to that socket's position. Anything else is forged or
    /// stray.
    pub(super) fn accepts(&self, slot: usize, reply: &[u8]) -> bool {
        let Some(s) = self.slots.get(slot).and_then(Option::as_ref) else {
            return false;
        };
        reply.len() >= 2 && self.position_of(u16::from_be_bytes([reply[0], reply[1]])) == s.position
    }

    /// Gives `position` of a family a fresh port; the old socket drains
    /// until [`RETIRE_AFTER`]. If no socket can be opened, the old one
    /// stays in service (and the next try waits for the next rotation).
    fn rotate(&mut self, v6: bool, position: usize, now: Duration, poller: &EventLoop) {
        if let Some(family) = self.family_mut(v6) {
            family.sends_since_rotation = 0;
            family.last_rotation = now;
        }
        let fresh = match bind(v6) {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(error = %e, "could not open a new DNS source port");
                return;
            }
        };
        let Ok(slot) = self.register(poller, fresh, position) else {
            return;
        };
        let Some(family) = self.family_mut(v6) else {
            return;
        };
        let old = std::mem::replace(&mut family.positions[position], slot);
        if let Some(s) = self.slots[old].as_mut() {
            let at = now + RETIRE_AFTER;
            s.retire_at = Some(at);
            // Time only moves forward: an earlier retirement stays first.
            self.next_retirement = Some(self.next_retirement.map_or(at, |t| t.min(at)));
        }
    }

    /// When the next replaced socket is due to close ([`close_retired`]
    /// then has work), or `None` while none is draining.
    ///
    /// [`close_retired`]: UpstreamPorts::close_retired
    pub(super) fn next_retirement(&self) -> Option<Duration> {
        self.next_retirement
    }

    /// Closes replaced sockets whose time is up (taking them off `poller`).
    pub(super) fn close_retired(&mut self, now: Duration, poller: &EventLoop) {
        let mut next = None::<Duration>;
        for slot in &mut self.slots {
            let Some(at) = slot.as_ref().and_then(|s| s.retire_at) else {
                continue;
            };
            if at <= now {
                if let Some(s) = slot.take() {
                    poller.remove(s.socket.as_raw_fd());
                }
            } else {
                next = Some(next.map_or(at, |t| t.min(at)));
            }
        }
        self.next_retirement = next;
    }

    /// The socket registered under `slot`, if it is still open.
    pub(super) fn socket(&self, slot: usize) -> Option<&UdpSocket> {
        self.slots.get(slot)?.as_ref().map(|s| &s.socket)
    }

    /// Sockets open now (in service and draining), and opened in all.
    pub(super) fn counts(&self) -> (usize, u64) {
        (self.slots.iter().flatten().count(), self.opened)
    }

    /// The local ports in service for a family, by position.
    pub(super) fn active_ports(&self, v6: bool) -> Vec<u16> {
        let family = if v6 { self.v6.as_ref() } else { Some(&self.v4) };
        family
            .map(|f| {
                f.positions
                    .iter()
                    .filter_map(|&slot| self.socket(slot)?.local_addr().ok())
                    .map(|a| a.port())
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// A non-blocking UDP socket on a random port: IPv4 on 0.0.0.0, or IPv6 on
/// `[::]` with `IPV6_V6ONLY`, so it never receives IPv4 datagrams (which
/// would be IPv4-mapped, and count as coming from an IPv4 upstream).
fn bind(v6: bool) -> io::Result<UdpSocket> {
    if !v6 {
        let socket = UdpSocket::bind("0.0.0.0:0")?;
        socket.set_nonblocking(true)?;
        return Ok(socket);
    }
    // SAFETY: plain syscall; result checked.
    let fd = unsafe {
        libc::socket(
            libc::AF_INET6,
            libc::SOCK_DGRAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor we own from here on (closed on error).
    let socket = unsafe { UdpSocket::from_raw_fd(fd) };
    let one: libc::c_int = 1;
    // SAFETY: a valid option pointer and length.
    let set = unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_IPV6,
            libc::IPV6_V6ONLY,
            (&one as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if set < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: an all-zero sockaddr_in6 is [::]:0.
    let mut addr: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
    addr.sin6_family = libc::AF_INET6 as libc::sa_family_t;
    // SAFETY: addr is a valid sockaddr_in6 of the given length.
    let bound = unsafe {
        libc::bind(
            fd,
            (&addr as *const libc::sockaddr_in6).cast(),
            size_of::<libc::sockaddr_in6>() as libc::socklen_t,
        )
    };
    if bound < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(socket)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::rand_core::SeedableRng;
    use rand_chacha::ChaCha8Rng;
    use std::collections::BTreeSet;

    fn epoll() -> EventLoop {
        EventLoop::new(8).unwrap()
    }

    fn pool(ep: &EventLoop, seed: u64) -> (UpstreamPorts, ChaCha8Rng) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let pool = UpstreamPorts::open(ep, 7 << 32, &mut rng).unwrap();
        (pool, rng)
    }

    /// Receives everything waiting on `sink`: (source port, id) pairs.
    fn received(sink: &UdpSocket) -> Vec<(u16, u16)> {
        let mut buf = [0u8; 64];
        let mut got = Vec::new();
        while let Ok((n, from)) = sink.recv_from(&mut buf) {
            assert!(n >= 2);
            got.push((from.port(), u16::from_be_bytes([buf[0], buf[1]])));
        }
        got
    }

    fn sink() -> UdpSocket {
        let sink = UdpSocket::bind("127.0.0.1:0").unwrap();
        sink.set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        sink
    }

    #[test]
    fn an_id_always_leaves_from_its_positions_port_and_ids_spread_over_all() {
        let ep = epoll();
        let (mut pool, mut rng) = pool(&ep, 3);
        let sink = sink();
        let to = sink.local_addr().unwrap();
        let ports = pool.active_ports(false);
        assert_eq!(ports.iter().collect::<BTreeSet<_>>().len(), POOL_SIZE);
        for id in 0..40u16 {
            for _ in 0..2 {
                pool.send(to, &id.to_be_bytes(), Duration::ZERO, &mut rng, &ep)
                    .unwrap();
            }
        }
        let got = received(&sink);
        assert_eq!(got.len(), 80);
        let mut used = BTreeSet::new();
        for (port, id) in got {
            assert_eq!(port, ports[pool.position_of(id)], "id {id}");
            used.insert(port);
        }
        assert!(used.len() >= POOL_SIZE - 2, "40 ids used only {used:?}");
    }

    #[test]
    fn replies_are_accepted_only_at_their_ids_position() {
        let ep = epoll();
        let (pool, _) = pool(&ep, 4);
        let id = 0x1234u16;
        let right = pool.v4.positions[pool.position_of(id)];
        let wrong = pool.v4.positions[(pool.position_of(id) + 1) % POOL_SIZE];
        assert!(pool.accepts(right, &id.to_be_bytes()));
        assert!(!pool.accepts(wrong, &id.to_be_bytes()));
        assert!(!pool.accepts(right, &[0x12]), "shorter than an id");
        assert!(!pool.accepts(9999, &id.to_be_bytes()), "no such slot");
    }

    #[test]
    fn ports_rotate_at_most_once_per_interval_and_drain_then_close() {
        let ep = epoll();
        let (mut pool, mut rng) = pool(&ep, 5);
        let sink = sink();
        let to = sink.local_addr().unwrap();
        let first: BTreeSet<u16> = pool.active_ports(false).into_iter().collect();
        let v6 = if pool.v6.is_some() { POOL_SIZE } else { 0 };
        // A burst at one instant: at most one rotation, however many sends.
        for i in 0..10_000u32 {
            pool.send(
                to,
                &(i as u16).to_be_bytes(),
                Duration::from_secs(5),
                &mut rng,
                &ep,
            )
            .unwrap();
        }
        received(&sink);
        assert_eq!(pool.counts().0, POOL_SIZE + v6 + 1);
        // One rotation per second of steady traffic: the draining sockets
        // stay bounded by RETIRE_AFTER / ROTATE_MIN_INTERVAL.
        for second in 6..60u64 {
            for i in 0..ROTATE_EVERY {
                pool.send(
                    to,
                    &(i as u16).to_be_bytes(),
                    Duration::from_secs(second),
                    &mut rng,
                    &ep,
                )
                .unwrap();
            }
            pool.close_retired(Duration::from_secs(second), &ep);
            received(&sink);
            let bound = POOL_SIZE
                + v6
                + (RETIRE_AFTER.as_secs() / ROTATE_MIN_INTERVAL.as_secs()) as usize
                + 1;
            assert!(pool.counts().0 <= bound, "{} open", pool.counts().0);
        }
        let now: BTreeSet<u16> = pool.active_ports(false).into_iter().collect();
        assert_eq!(now.len(), POOL_SIZE);
        assert!(
            now.difference(&first).count() >= POOL_SIZE / 2,
            "ports were renewed"
        );
        pool.close_retired(Duration::from_secs(10_000), &ep);
        assert_eq!(pool.counts().0, POOL_SIZE + v6);
    }

    #[test]
    fn a_draining_socket_still_takes_answers_for_its_position() {
        let ep = epoll();
        let (mut pool, _) = pool(&ep, 9);
        let old = pool.v4.positions[2];
        pool.rotate(false, 2, Duration::ZERO, &ep);
        assert_ne!(pool.v4.positions[2], old);
        let id = (0..=u16::MAX)
            .find(|&id| pool.position_of(id) == 2)
            .unwrap();
        assert!(pool.accepts(old, &id.to_be_bytes()));
        let port = pool.socket(old).unwrap().local_addr().unwrap().port();
        let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
        peer.send_to(b"late answer", ("127.0.0.1", port)).unwrap();
        let sock = pool.socket(old).unwrap();
        sock.set_nonblocking(false).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
        let mut buf = [0u8; 32];
        let (n, _) = sock.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"late answer");
        pool.close_retired(RETIRE_AFTER - Duration::from_millis(1), &ep);
        assert!(pool.socket(old).is_some(), "not yet");
        pool.close_retired(RETIRE_AFTER, &ep);
        assert!(pool.socket(old).is_none());
    }

    #[test]
    fn the_next_retirement_is_the_earliest_draining_sockets_close_time() {
        let ep = epoll();
        let (mut pool, _) = pool(&ep, 13);
        assert_eq!(pool.next_retirement(), None, "nothing drains yet");
        pool.rotate(false, 1, Duration::from_secs(2), &ep);
        pool.rotate(false, 5, Duration::from_secs(3), &ep);
        let first = Duration::from_secs(2) + RETIRE_AFTER;
        let second = Duration::from_secs(3) + RETIRE_AFTER;
        assert_eq!(pool.next_retirement(), Some(first));
        pool.close_retired(first - Duration::from_millis(1), &ep);
        assert_eq!(pool.next_retirement(), Some(first), "nothing closed early");
        pool.close_retired(first, &ep);
        assert_eq!(pool.next_retirement(), Some(second));
        pool.close_retired(second, &ep);
        assert_eq!(pool.next_retirement(), None);
        assert_eq!(
            pool.counts().0,
            POOL_SIZE + pool.v6.as_ref().map_or(0, |_| POOL_SIZE)
        );
    }

    #[test]
    fn ipv6_sockets_do_not_receive_ipv4() {
        let ep = epoll();
        let (pool, _) = pool(&ep, 11);
        let Some(v6) = &pool.v6 else {
            eprintln!("no IPv6 on this host: nothing to check");
            return;
        };
        let sock = pool.socket(v6.positions[0]).unwrap();
        let port = sock.local_addr().unwrap().port();
        let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
        // Either refused at once (nothing listens on IPv4 there) or sent
        // and never delivered to the IPv6-only socket.
        let _ = peer.send_to(b"v4", ("127.0.0.1", port));
        std::thread::sleep(Duration::from_millis(50));
        let mut buf = [0u8; 8];
        assert!(
            sock.recv_from(&mut buf).is_err(),
            "an IPv4 datagram reached an IPv6 pool socket"
        );
    }
}
