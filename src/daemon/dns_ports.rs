//! The UDP ports forwarded DNS queries leave from.
//!
//! One fixed source port for every forwarded query would leave an off-path
//! attacker only the 16-bit query id to guess before a forged answer reaches
//! a container. Instead queries leave from a pool of [`POOL_SIZE`] sockets
//! per address family, each bound to a port the kernel picks at random, one
//! chosen at random per query; every [`ROTATE_EVERY`] queries one pool
//! member is replaced by a fresh port. A replaced socket stays open for
//! [`RETIRE_AFTER`] so that answers still on their way (including late ones,
//! which the resolver accepts) arrive. dnsmasq and Docker go further (a port
//! per query) at the price of a socket per query; a pool keeps forwarding
//! free of per-query system calls beyond the send.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

use rand_chacha::rand_core::RngCore;

/// Sockets in use per address family.
pub(super) const POOL_SIZE: usize = 8;
/// Forwarded queries between two replacements of a pool member.
pub(super) const ROTATE_EVERY: u32 = 64;
/// How long a replaced socket still receives: longer than a query can wait
/// for all its upstreams (3 × the 2 s default timeout) plus slack.
pub(super) const RETIRE_AFTER: Duration = Duration::from_secs(10);

/// One source socket.
struct PortSocket {
    socket: UdpSocket,
    v6: bool,
    /// Set once replaced: closed at this time.
    retire_at: Option<Duration>,
}

/// The pool (see the module docs). Registers its sockets with the DNS
/// thread's epoll under `token_base | slot`; closing a socket takes it out
/// of the epoll set, so dropping the pool needs no epoll call.
pub(super) struct UpstreamPorts {
    epoll: RawFd,
    token_base: u64,
    slots: Vec<Option<PortSocket>>,
    since_rotation: u32,
    has_v6: bool,
    /// Sockets opened over the pool's life (for the counters).
    opened: u64,
}

impl UpstreamPorts {
    /// Opens the first [`POOL_SIZE`] IPv4 sockets, and IPv6 ones when the
    /// host has IPv6. `epoll` must outlive the pool.
    pub(super) fn open(epoll: RawFd, token_base: u64) -> io::Result<UpstreamPorts> {
        let mut pool = UpstreamPorts {
            epoll,
            token_base,
            slots: Vec::new(),
            since_rotation: 0,
            has_v6: true,
            opened: 0,
        };
        for _ in 0..POOL_SIZE {
            pool.add(false)?;
        }
        for _ in 0..POOL_SIZE {
            if pool.add(true).is_err() {
                pool.has_v6 = false;
                break;
            }
        }
        Ok(pool)
    }

    /// Binds a fresh socket on a random port and registers it.
    fn add(&mut self, v6: bool) -> io::Result<()> {
        let socket = UdpSocket::bind(if v6 { "[::]:0" } else { "0.0.0.0:0" })?;
        socket.set_nonblocking(true)?;
        let slot = match self.slots.iter().position(Option::is_none) {
            Some(i) => i,
            None => {
                self.slots.push(None);
                self.slots.len() - 1
            }
        };
        epoll_add(
            self.epoll,
            socket.as_raw_fd(),
            self.token_base | slot as u64,
        )?;
        self.slots[slot] = Some(PortSocket {
            socket,
            v6,
            retire_at: None,
        });
        self.opened += 1;
        Ok(())
    }

    /// Sends a query to `upstream` from a randomly chosen pool socket of its
    /// family, and replaces a pool member every [`ROTATE_EVERY`] sends.
    pub(super) fn send(
        &mut self,
        upstream: SocketAddr,
        bytes: &[u8],
        now: Duration,
        rng: &mut dyn RngCore,
    ) -> io::Result<usize> {
        let v6 = upstream.is_ipv6() && self.has_v6;
        let chosen = self.pick(v6, rng);
        let sent = match chosen.and_then(|slot| self.slots[slot].as_ref()) {
            Some(s) => s.socket.send_to(bytes, upstream),
            None => Err(io::Error::other("no socket for the upstream's family")),
        };
        self.since_rotation += 1;
        if self.since_rotation >= ROTATE_EVERY {
            self.since_rotation = 0;
            self.rotate(v6, now, rng);
        }
        sent
    }

    /// A random active (not retiring) socket of the family.
    fn pick(&self, v6: bool, rng: &mut dyn RngCore) -> Option<usize> {
        let active = || {
            self.slots
                .iter()
                .enumerate()
                .filter(move |(_, s)| {
                    s.as_ref()
                        .is_some_and(|s| s.v6 == v6 && s.retire_at.is_none())
                })
                .map(|(i, _)| i)
        };
        let n = active().count();
        if n == 0 {
            return None;
        }
        active().nth(rng.next_u32() as usize % n)
    }

    /// Replaces one active socket of the family with a fresh port; the old
    /// one keeps receiving until [`RETIRE_AFTER`]. If no new socket can be
    /// opened, the old one stays in service.
    fn rotate(&mut self, v6: bool, now: Duration, rng: &mut dyn RngCore) {
        let Some(old) = self.pick(v6, rng) else {
            return;
        };
        match self.add(v6) {
            Ok(()) => {
                if let Some(s) = self.slots[old].as_mut() {
                    s.retire_at = Some(now + RETIRE_AFTER);
                }
            }
            Err(e) => tracing::debug!(error = %e, "could not open a new DNS source port"),
        }
    }

    /// Closes replaced sockets whose time is up.
    pub(super) fn close_retired(&mut self, now: Duration) {
        for slot in &mut self.slots {
            if slot
                .as_ref()
                .is_some_and(|s| s.retire_at.is_some_and(|t| t <= now))
            {
                if let Some(s) = slot.take() {
                    epoll_del(self.epoll, s.socket.as_raw_fd());
                }
            }
        }
    }

    /// The socket registered under `slot`, if it is still open.
    pub(super) fn socket(&self, slot: usize) -> Option<&UdpSocket> {
        self.slots.get(slot)?.as_ref().map(|s| &s.socket)
    }

    /// Sockets open now (active and retiring) and opened in all.
    pub(super) fn counts(&self) -> (usize, u64) {
        (self.slots.iter().flatten().count(), self.opened)
    }

    /// The local ports in service for a family (for the counters).
    pub(super) fn active_ports(&self, v6: bool) -> Vec<u16> {
        self.slots
            .iter()
            .flatten()
            .filter(|s| s.v6 == v6 && s.retire_at.is_none())
            .filter_map(|s| s.socket.local_addr().ok().map(|a| a.port()))
            .collect()
    }
}

/// Registers `fd` for input under `token`.
pub(super) fn epoll_add(epoll: RawFd, fd: RawFd, token: u64) -> io::Result<()> {
    let mut ev = libc::epoll_event {
        events: libc::EPOLLIN as u32,
        u64: token,
    };
    // SAFETY: ev is a valid epoll_event; the descriptors are the caller's.
    if unsafe { libc::epoll_ctl(epoll, libc::EPOLL_CTL_ADD, fd, &mut ev) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Unregisters `fd`.
pub(super) fn epoll_del(epoll: RawFd, fd: RawFd) {
    // SAFETY: removing a registered descriptor; a null event is allowed.
    unsafe { libc::epoll_ctl(epoll, libc::EPOLL_CTL_DEL, fd, std::ptr::null_mut()) };
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::rand_core::SeedableRng;
    use rand_chacha::ChaCha8Rng;
    use std::collections::BTreeSet;
    use std::os::fd::{FromRawFd, OwnedFd};

    fn epoll() -> OwnedFd {
        // SAFETY: plain syscall; result checked.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        assert!(fd >= 0);
        // SAFETY: a fresh descriptor we own.
        unsafe { OwnedFd::from_raw_fd(fd) }
    }

    /// Receives everything waiting on `sink`; returns the source ports.
    fn sources(sink: &UdpSocket) -> Vec<u16> {
        let mut buf = [0u8; 64];
        let mut ports = Vec::new();
        while let Ok((_, from)) = sink.recv_from(&mut buf) {
            ports.push(from.port());
        }
        ports
    }

    #[test]
    fn queries_leave_from_several_ports_and_the_ports_change() {
        let ep = epoll();
        let mut pool = UpstreamPorts::open(ep.as_raw_fd(), 7 << 32).unwrap();
        let sink = UdpSocket::bind("127.0.0.1:0").unwrap();
        sink.set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        let to = sink.local_addr().unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let first_ports: BTreeSet<u16> = pool.active_ports(false).into_iter().collect();
        assert_eq!(first_ports.len(), POOL_SIZE);
        let mut seen = BTreeSet::new();
        for i in 0..ROTATE_EVERY * 4 {
            pool.send(to, b"q", Duration::from_secs(u64::from(i)), &mut rng)
                .unwrap();
            if i % 16 == 15 {
                seen.extend(sources(&sink));
            }
        }
        seen.extend(sources(&sink));
        // All sends came from pool ports, more than one, and after four
        // rotations from ports that were not in the first pool.
        assert!(seen.len() > POOL_SIZE, "{} distinct ports", seen.len());
        let now_ports: BTreeSet<u16> = pool.active_ports(false).into_iter().collect();
        assert_eq!(now_ports.len(), POOL_SIZE);
        assert!(now_ports.difference(&first_ports).count() >= 1);
        // Retired sockets stay open until their time, then close.
        let (open, opened) = pool.counts();
        let v6 = if pool.has_v6 { POOL_SIZE } else { 0 };
        assert_eq!(opened as usize, POOL_SIZE + v6 + 4);
        assert_eq!(open, POOL_SIZE + v6 + 4);
        pool.close_retired(Duration::from_secs(10_000));
        assert_eq!(pool.counts().0, POOL_SIZE + v6);
    }

    #[test]
    fn a_retiring_socket_still_receives() {
        let ep = epoll();
        let mut pool = UpstreamPorts::open(ep.as_raw_fd(), 7 << 32).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        pool.rotate(false, Duration::ZERO, &mut rng);
        let retiring = pool
            .slots
            .iter()
            .position(|s| s.as_ref().is_some_and(|s| s.retire_at.is_some()))
            .unwrap();
        let port = pool.socket(retiring).unwrap().local_addr().unwrap().port();
        let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
        peer.send_to(b"late answer", ("127.0.0.1", port)).unwrap();
        let sock = pool.socket(retiring).unwrap();
        sock.set_nonblocking(false).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
        let mut buf = [0u8; 32];
        let (n, _) = sock.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"late answer");
        pool.close_retired(RETIRE_AFTER - Duration::from_millis(1));
        assert!(pool.socket(retiring).is_some(), "not yet");
        pool.close_retired(RETIRE_AFTER);
        assert!(pool.socket(retiring).is_none());
    }
}
