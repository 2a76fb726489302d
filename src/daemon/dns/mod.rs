//! The embedded DNS server of real mode: answers 127.0.0.11:53 inside every
//! sandbox from the controller's records, through the same sans-I/O
//! [`Resolver`](switchyard_dns::Resolver) the simulator uses.
//!
//! - Sockets: a UDP socket and a TCP listener bound to 127.0.0.11:53 *inside*
//!   each sandbox's namespace, made there by the namespace helper (so it
//!   works rootless) and handed to this thread. Which socket a query came in
//!   on says which sandbox asked, hence its scope — no NAT, no iptables.
//! - One thread owns the resolver, every socket and the upstream sockets;
//!   record updates arrive over a channel and are applied between batches,
//!   so the next query sees them and no query is ever dropped for an update.
//!
//! One concern a file:
//! - this one: [`DnsServer`], the handle the daemon holds, and the
//!   [`Command`]s it sends the thread;
//! - [`worker`]: the thread — its readiness loop and the deadlines it
//!   sleeps until, fairness, busy polling, the commands carried out;
//! - [`udp`]: queries over UDP, batched with `recvmmsg`/`sendmmsg`;
//! - [`tcp`]: DNS over TCP clients — connections, output buffers, limits,
//!   idle timeout;
//! - [`forward`]: queries sent upstream (UDP from the port pool, TCP on
//!   helper threads), their replies, and the host's resolv.conf;
//! - [`upstream`]: the random, rotating UDP ports forwarded queries leave
//!   from;
//! - [`records`]: the controller's names, policies and scopes as the
//!   resolver takes them.

mod forward;
mod records;
mod tcp;
mod udp;
mod upstream;
mod worker;

use crossbeam_channel::Sender;
use serde_json::Value;
use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::OwnedFd;
use std::time::Duration;
use switchyard_dns::parse_upstream;
use switchyard_linux::{NsSession, Waker};
use switchyard_switch::Controller;

use records::Records;
use worker::Worker;

/// What the [`DnsServer`] (and the TCP forwarding threads) ask of the DNS
/// thread, each followed by a wake-up.
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
        let records = Records::from_controller(controller);
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
