//! Queries the resolver sends upstream, and their replies.
//!
//! Forwarding leaves from the daemon's own namespace, so an upstream on the
//! host's loopback (127.0.0.53, a test's dnsmasq) works. UDP queries leave
//! from the random, rotating ports of [`UpstreamPorts`]. TCP queries are
//! forwarded over TCP on a short-lived helper thread each, at most
//! [`MAX_TCP_FORWARDS`] at once. Without `--dns-upstream` the servers are
//! the host's /etc/resolv.conf's ([`HostResolvConf`]).

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use switchyard_dns::{parse_resolv_conf, tcp_frame, Resolver, Transport};

use super::udp::{BATCH, UDP_BATCHES_PER_WAKEUP};
use super::upstream::UpstreamPorts;
use super::worker::Worker;
use super::Command;

/// Datagrams read from an upstream socket per wakeup: as many as a
/// sandbox's UDP socket gives, for the same reason (fairness, see
/// [`UDP_BATCHES_PER_WAKEUP`]).
const UPSTREAM_READS_PER_WAKEUP: usize = UDP_BATCHES_PER_WAKEUP * BATCH;

/// Most forwarding threads for DNS-over-TCP queries at once. Above it a
/// query is not sent: the resolver's timeout moves it to the next upstream
/// or answers SERVFAIL, and a container cannot make thousands of threads.
const MAX_TCP_FORWARDS: usize = 64;

/// Where the host lists its name servers.
const RESOLV_CONF: &str = "/etc/resolv.conf";

/// How often [`RESOLV_CONF`] is checked for changes (when no
/// `--dns-upstream` is given).
const RESOLV_CONF_EVERY: Duration = Duration::from_secs(2);

/// What the DNS thread forwards with: the upstream port pool and the TCP
/// forwarding threads, and the counters its stats report.
pub(super) struct Forwarder {
    /// Where forwarded queries leave from (random ports, rotated).
    pub(super) ports: UpstreamPorts,
    /// TCP forwarding threads running now (shared with them).
    pub(super) tcp_forwards: Arc<AtomicUsize>,
    /// TCP queries not forwarded because [`MAX_TCP_FORWARDS`] were running.
    pub(super) tcp_forwards_refused: u64,
    /// Upstream datagrams dropped because their id does not belong to the
    /// port they arrived on.
    pub(super) upstream_wrong_port: u64,
}

impl Forwarder {
    /// Forwarding from `ports`, nothing running yet.
    pub(super) fn new(ports: UpstreamPorts) -> Forwarder {
        Forwarder {
            ports,
            tcp_forwards: Arc::new(AtomicUsize::new(0)),
            tcp_forwards_refused: 0,
            upstream_wrong_port: 0,
        }
    }
}

/// The host's /etc/resolv.conf as the source of the upstream servers (when
/// no `--dns-upstream` is given): read at start, then looked at every
/// [`RESOLV_CONF_EVERY`] and read again when its modification time changed.
pub(super) struct HostResolvConf {
    mtime: Option<SystemTime>,
    /// When to look at the file again.
    pub(super) next_check: Duration,
}

impl HostResolvConf {
    /// Reads the file and gives `resolver` its servers.
    pub(super) fn load(resolver: &mut Resolver) -> HostResolvConf {
        let mtime = std::fs::metadata(RESOLV_CONF)
            .and_then(|m| m.modified())
            .ok();
        let text = std::fs::read_to_string(RESOLV_CONF).unwrap_or_default();
        resolver.set_upstreams(&parse_resolv_conf(&text));
        HostResolvConf {
            mtime,
            next_check: RESOLV_CONF_EVERY,
        }
    }

    /// Gives `resolver` the file's servers again if it changed since it was
    /// last read.
    pub(super) fn reload_if_changed(&mut self, now: Duration, resolver: &mut Resolver) {
        self.next_check = now + RESOLV_CONF_EVERY;
        let mtime = std::fs::metadata(RESOLV_CONF)
            .and_then(|m| m.modified())
            .ok();
        if mtime != self.mtime {
            self.mtime = mtime;
            let text = std::fs::read_to_string(RESOLV_CONF).unwrap_or_default();
            let ups = parse_resolv_conf(&text);
            tracing::info!(upstreams = ?ups, "host resolv.conf changed; new upstream servers");
            resolver.set_upstreams(&ups);
        }
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

impl Worker {
    /// Sends a query the resolver forwards over UDP, from the pool.
    pub(super) fn send_upstream_udp(&mut self, upstream: SocketAddr, bytes: &[u8]) {
        let now = self.now();
        if let Err(e) = self
            .forwarder
            .ports
            .send(upstream, bytes, now, &mut self.rng, &self.poller)
        {
            // The resolver's timeout moves on to the next upstream.
            tracing::debug!(%upstream, error = %e, "send to upstream failed");
        }
    }

    /// Hands the resolver the answers waiting on upstream port `slot`
    /// (those whose id belongs to that port), a bounded share per wakeup.
    pub(super) fn upstream_readable(&mut self, slot: usize) {
        let mut buf = [0u8; 65_535];
        for _ in 0..UPSTREAM_READS_PER_WAKEUP {
            let Some(sock) = self.forwarder.ports.socket(slot) else {
                return;
            };
            let (n, from) = match sock.recv_from(&mut buf) {
                Ok(r) => r,
                Err(_) => return,
            };
            if !self.forwarder.ports.accepts(slot, &buf[..n]) {
                // Not an answer to a query sent from this port: forged or
                // stray.
                self.forwarder.upstream_wrong_port += 1;
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

    /// Forwards one TCP query on a helper thread; the reply comes back
    /// through the command channel. A failure, or no thread because
    /// [`MAX_TCP_FORWARDS`] are running, is left to the resolver's timeout,
    /// which moves on to the next upstream or answers SERVFAIL.
    pub(super) fn forward_tcp(&mut self, upstream: SocketAddr, query: &[u8]) {
        if self.forwarder.tcp_forwards.fetch_add(1, Ordering::AcqRel) >= MAX_TCP_FORWARDS {
            self.forwarder.tcp_forwards.fetch_sub(1, Ordering::AcqRel);
            self.forwarder.tcp_forwards_refused += 1;
            return;
        }
        // Frees the place when the thread ends, or at once if the spawn
        // fails (the closure holding it is dropped).
        let place = ForwardSlot(Arc::clone(&self.forwarder.tcp_forwards));
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
}
