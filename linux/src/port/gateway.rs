//! The gateway port: a network's [`Gateway`] on the data plane's thread,
//! with its host sockets.
//!
//! The data plane sees one descriptor: a nested epoll ([`HostSockets`]'s
//! loop) that watches every host socket (edge-triggered, token = flow id),
//! each published port's listener and the eventfd of the control channel.
//! When it is readable the data plane calls [`PortBackend::recv_batch`],
//! which takes the events, lets the gateway move bytes, and hands over the
//! frames the stack produced, as many as the batch holds. Frames that wait
//! without an event (made while the switch sent to the gateway, or more
//! than a batch) are announced by [`PortBackend::rx_pending`], which the
//! data plane asks after each round: no eventfd round trip per cycle.
//! Frames from the switch go in through [`PortBackend::send`] and are
//! acted on once per ingress batch, in [`PortBackend::flush`]. The
//! gateway's timers (retransmissions, idle timeouts) are the port's
//! deadlines.
//!
//! The control plane holds a [`GatewayControl`]: it binds published
//! ports' sockets itself (so a taken port is an error at once, in the
//! caller's thread) and hands them over, updates isolation and
//! `host-gateway`, and asks for a [`GatewayReport`].

use super::host_sockets::{HostSockets, FLOW_TOKENS};
use super::{IoCounters, Offload, PortBackend, RxBatch, RxError, TxError};
use crate::clock;
use crate::event_loop::{Event, Waker};
use crossbeam_channel::{Receiver, Sender};
use hashbrown::HashMap;
use serde::{Deserialize, Serialize};
use std::io;
use std::net::{IpAddr, SocketAddr, TcpListener, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;
use switchyard_gateway::{
    ContainerFlows, FlowId, Gateway, GatewayConfig, GatewayCounters, Readiness,
};
use switchyard_switch::time::Instant;

const COMMAND_TOKEN: u64 = u64::MAX;
/// Listener tokens: this bit plus the listener's number.
const LISTENER_TOKEN: u64 = FLOW_TOKENS;
/// How long a reply from the data plane may take before the control
/// plane gives up (the thread is stuck or gone).
const REPLY_TIMEOUT: Duration = Duration::from_secs(5);

/// A published port's host socket, bound by the control plane.
#[derive(Debug)]
pub enum PublishedSocket {
    /// A listening TCP socket: each accepted connection is carried to the
    /// container.
    Tcp(TcpListener),
    /// A bound UDP socket: each datagram is carried to the container, its
    /// replies come back from this socket.
    Udp(UdpSocket),
}

/// What one gateway port did and holds, for `inspect`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GatewayReport {
    /// The gateway's counters.
    pub counters: GatewayCounters,
    /// Flows per container address that has any.
    pub containers: Vec<ContainerFlows>,
    /// Flows open now.
    pub flows: usize,
    /// Host sockets open now (flows with a socket, listeners apart).
    pub host_sockets: usize,
    /// Published ports, by key.
    pub published: Vec<String>,
}

enum Command {
    Publish {
        key: String,
        socket: PublishedSocket,
        target: SocketAddr,
        reply: Sender<io::Result<()>>,
    },
    Unpublish {
        key: String,
    },
    HostGateway {
        container: IpAddr,
        allowed: bool,
    },
    Isolated(Vec<ipnetwork::IpNetwork>),
    Forget(IpAddr),
    Report(Sender<GatewayReport>),
}

/// The control plane's handle on a gateway port. Commands are applied by
/// the data plane's thread between batches.
#[derive(Debug, Clone)]
pub struct GatewayControl {
    commands: Sender<Command>,
    wake: std::sync::Arc<Waker>,
}

/// Why the control plane could not reach a gateway port.
#[derive(Debug, thiserror::Error)]
pub enum GatewayControlError {
    /// The port was removed, or the data plane stopped.
    #[error("the network's gateway is gone (the data plane stopped or the network was removed)")]
    Gone,
    /// The gateway could not watch a published port's socket.
    #[error("the gateway cannot watch the published port's socket: {0}")]
    Watch(#[source] io::Error),
}

impl GatewayControl {
    fn send(&self, cmd: Command) -> Result<(), GatewayControlError> {
        self.commands
            .send(cmd)
            .map_err(|_| GatewayControlError::Gone)?;
        self.wake.wake();
        Ok(())
    }

    /// Starts carrying a published port's connections or datagrams to
    /// `target` (a container's address and port). `key` names the mapping
    /// for [`GatewayControl::unpublish`]. Returns once the port listens.
    pub fn publish(
        &self,
        key: &str,
        socket: PublishedSocket,
        target: SocketAddr,
    ) -> Result<(), GatewayControlError> {
        let (reply, rx) = crossbeam_channel::bounded(1);
        self.send(Command::Publish {
            key: key.to_string(),
            socket,
            target,
            reply,
        })?;
        rx.recv_timeout(REPLY_TIMEOUT)
            .map_err(|_| GatewayControlError::Gone)?
            .map_err(GatewayControlError::Watch)
    }

    /// Stops a published port: its socket is closed (new clients are
    /// refused by the host), its connections reset.
    pub fn unpublish(&self, key: &str) -> Result<(), GatewayControlError> {
        self.send(Command::Unpublish {
            key: key.to_string(),
        })
    }

    /// Lets the container at `container` reach the host's loopback
    /// through the gateway address (`--add-host NAME:host-gateway`), or
    /// stops it.
    pub fn set_host_gateway(
        &self,
        container: IpAddr,
        allowed: bool,
    ) -> Result<(), GatewayControlError> {
        self.send(Command::HostGateway { container, allowed })
    }

    /// The subnets of every other network on this host: never relayed to.
    pub fn set_isolated(
        &self,
        subnets: Vec<ipnetwork::IpNetwork>,
    ) -> Result<(), GatewayControlError> {
        self.send(Command::Isolated(subnets))
    }

    /// Ends every flow of a container that left the network.
    pub fn forget(&self, container: IpAddr) -> Result<(), GatewayControlError> {
        self.send(Command::Forget(container))
    }

    /// What the gateway did and holds.
    pub fn report(&self) -> Result<GatewayReport, GatewayControlError> {
        let (reply, rx) = crossbeam_channel::bounded(1);
        self.send(Command::Report(reply))?;
        rx.recv_timeout(REPLY_TIMEOUT)
            .map_err(|_| GatewayControlError::Gone)
    }
}

struct Listener {
    socket: TcpListener,
    target: SocketAddr,
    key: String,
}

enum Published {
    Tcp { token: u64 },
    Udp { flow: FlowId },
}

/// The gateway as a port backend (see the module documentation).
pub struct GatewayPort {
    gateway: Gateway,
    sockets: HostSockets,
    commands: Receiver<Command>,
    command_wake: std::sync::Arc<Waker>,
    listeners: HashMap<u64, Listener>,
    published: HashMap<String, Published>,
    next_listener: u64,
    /// Frames came in since the last poll.
    dirty: bool,
    /// An accept failed for want of descriptors: retry at the deadline.
    accept_retry: bool,
    deadline: Option<Instant>,
    events: Vec<Event>,
}

impl std::fmt::Debug for GatewayPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayPort")
            .field("network", &self.gateway.config().network)
            .field("flows", &self.gateway.flow_count())
            .finish_non_exhaustive()
    }
}

impl GatewayPort {
    /// A gateway port for one network and the control plane's handle on
    /// it. `seed` seeds its TCP initial sequence numbers.
    pub fn new(config: GatewayConfig, seed: u64) -> io::Result<(GatewayPort, GatewayControl)> {
        let sockets = HostSockets::new()?;
        let command_wake = std::sync::Arc::new(Waker::new()?);
        sockets.events.add(
            command_wake.as_raw_fd(),
            COMMAND_TOKEN,
            crate::event_loop::Interest::Readable,
        )?;
        let (tx, rx) = crossbeam_channel::unbounded();
        let port = GatewayPort {
            gateway: Gateway::new(config, seed, clock::now()),
            sockets,
            commands: rx,
            command_wake: command_wake.clone(),
            listeners: HashMap::new(),
            published: HashMap::new(),
            next_listener: 0,
            dirty: false,
            accept_retry: false,
            deadline: None,
            events: Vec::with_capacity(256),
        };
        let control = GatewayControl {
            commands: tx,
            wake: command_wake,
        };
        Ok((port, control))
    }

    fn handle_commands(&mut self) {
        self.command_wake.drain();
        while let Ok(cmd) = self.commands.try_recv() {
            match cmd {
                Command::Publish {
                    key,
                    socket,
                    target,
                    reply,
                } => {
                    let _ = reply.send(self.publish(key, socket, target));
                }
                Command::Unpublish { key } => self.unpublish(&key),
                Command::HostGateway { container, allowed } => {
                    self.gateway.set_host_gateway(container, allowed)
                }
                Command::Isolated(subnets) => self.gateway.set_isolated(subnets),
                Command::Forget(ip) => self.gateway.forget_container(ip, &mut self.sockets),
                Command::Report(reply) => {
                    let _ = reply.send(self.report());
                }
            }
        }
        self.dirty = true;
    }

    fn publish(
        &mut self,
        key: String,
        socket: PublishedSocket,
        target: SocketAddr,
    ) -> io::Result<()> {
        self.unpublish(&key);
        match socket {
            PublishedSocket::Tcp(listener) => {
                listener.set_nonblocking(true)?;
                let token = LISTENER_TOKEN | self.next_listener;
                self.next_listener += 1;
                self.sockets.events.add_edge(listener.as_raw_fd(), token)?;
                self.listeners.insert(
                    token,
                    Listener {
                        socket: listener,
                        target,
                        key: key.clone(),
                    },
                );
                self.published.insert(key, Published::Tcp { token });
                // Clients may already wait in the backlog.
                self.accept(token);
            }
            PublishedSocket::Udp(socket) => {
                let flow = self.gateway.publish_udp(target);
                if let Err(e) = self.sockets.adopt_udp(flow, socket) {
                    self.gateway.unpublish(flow, &mut self.sockets);
                    return Err(io::Error::other(e.to_string()));
                }
                self.published.insert(key, Published::Udp { flow });
            }
        }
        Ok(())
    }

    fn unpublish(&mut self, key: &str) {
        match self.published.remove(key) {
            Some(Published::Tcp { token }) => {
                self.listeners.remove(&token);
            }
            Some(Published::Udp { flow }) => self.gateway.unpublish(flow, &mut self.sockets),
            None => {}
        }
    }

    /// Accepts every waiting client of a listener (edge-triggered: until
    /// the backlog is empty).
    fn accept(&mut self, token: u64) {
        let now = clock::now();
        let Some(listener) = self.listeners.get(&token) else {
            return;
        };
        loop {
            let (stream, client) = match listener.socket.accept() {
                Ok(got) => got,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    // Out of descriptors: the client waits in the backlog
                    // and is taken at the next deadline.
                    tracing::warn!(port = %listener.key, error = %e, "cannot accept a client of a published port");
                    self.deadline = Some(now + Duration::from_millis(100));
                    self.accept_retry = true;
                    return;
                }
            };
            match self.gateway.accept_tcp(client, listener.target, now) {
                Ok(flow) => {
                    if let Err(e) = self.sockets.adopt_tcp(flow, stream) {
                        tracing::warn!(error = %e, "cannot watch a published port's connection");
                        self.gateway.close_flow(flow, &mut self.sockets);
                    }
                }
                Err(refusal) => {
                    tracing::debug!(%client, %refusal, "published port refused a client");
                    let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
                }
            }
            self.dirty = true;
        }
    }

    fn report(&self) -> GatewayReport {
        GatewayReport {
            counters: self.gateway.counters().clone(),
            containers: self.gateway.containers(),
            flows: self.gateway.flow_count(),
            host_sockets: self.sockets.len(),
            published: self.published.keys().cloned().collect(),
        }
    }

    /// Takes every event of the nested loop.
    fn take_events(&mut self) {
        loop {
            self.events.clear();
            match self.sockets.events.wait(Some(Duration::ZERO)) {
                Ok(ev) => self.events.extend(ev),
                Err(e) => {
                    tracing::warn!(error = %e, "gateway epoll_wait failed");
                    return;
                }
            }
            if self.events.is_empty() {
                return;
            }
            let full = self.events.len() == super::host_sockets::EVENT_BATCH;
            for i in 0..self.events.len() {
                let ev = self.events[i];
                match ev.token {
                    COMMAND_TOKEN => self.handle_commands(),
                    t if t >= LISTENER_TOKEN => self.accept(t),
                    t => {
                        self.gateway.ready(
                            FlowId(t),
                            Readiness {
                                readable: ev.is_readable() || ev.is_peer_closed() || ev.is_error(),
                                writable: ev.is_writable() || ev.is_error(),
                                error: ev.is_error(),
                            },
                        );
                        self.dirty = true;
                    }
                }
            }
            if !full {
                return;
            }
        }
    }

    /// Runs the gateway if anything changed, and keeps the deadline in
    /// step with it. Frames it made wait for the data plane, which asks
    /// [`PortBackend::rx_pending`] after each round (no eventfd round trip).
    fn run(&mut self, now: Instant, force: bool) {
        if self.dirty || force {
            self.dirty = false;
            self.gateway.poll(now, &mut self.sockets);
        }
        self.deadline = self.gateway.poll_at(now).map(|d| match self.deadline {
            Some(retry) => d.min(retry),
            None => d,
        });
    }
}

impl PortBackend for GatewayPort {
    fn kind(&self) -> &'static str {
        "gateway"
    }

    fn readiness_fd(&self) -> Option<RawFd> {
        Some(self.sockets.events.as_raw_fd())
    }

    fn recv_batch(
        &mut self,
        batch: &mut RxBatch,
        _counters: &mut IoCounters,
    ) -> Result<(), RxError> {
        self.take_events();
        let now = clock::now();
        self.run(now, false);
        let room = batch.room();
        self.gateway.drain(room, |frame, offload| {
            if let Some(space) = batch.space(0) {
                space[..frame.len()].copy_from_slice(frame);
                batch.push(0, frame.len(), *offload);
            }
        });
        // What the batch could not take waits, signalled.
        self.run(now, false);
        Ok(())
    }

    fn send(
        &mut self,
        frame: &[u8],
        offload: &Offload,
        _counters: &mut IoCounters,
    ) -> Result<(), TxError> {
        self.gateway
            .receive(frame, offload, clock::now(), &mut self.sockets);
        self.dirty = true;
        Ok(())
    }

    fn flush(&mut self, _counters: &mut IoCounters) {
        if self.dirty {
            self.run(clock::now(), false);
        }
    }

    fn has_deadlines(&self) -> bool {
        true
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.deadline
    }

    fn rx_pending(&self) -> bool {
        self.gateway.pending_frames() > 0
    }

    fn on_deadline(&mut self, now: Instant, _counters: &mut IoCounters) {
        self.deadline = None;
        if std::mem::take(&mut self.accept_retry) {
            let retry: Vec<u64> = self.listeners.keys().copied().collect();
            for token in retry {
                self.accept(token);
            }
        }
        self.run(now, true);
    }
}
