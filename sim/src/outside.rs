//! A host's outside: the sockets a simulated host opens on the simulated
//! internet for its gateways, as the real daemon opens non-blocking
//! sockets in its own namespace. Each host has one smoltcp interface on
//! the internet (its "uplink", with the host's outside address); every
//! gateway flow that needs a socket gets one there, keyed by (gateway,
//! flow) since each gateway numbers its flows from 1.
//!
//! Readiness is level-triggered: after each poll of the uplink the host
//! tells every gateway what each of its flows' sockets can do now
//! ([`HostOutside::readiness`]), and the gateway reads or writes until
//! the socket says it would block.

use crate::container::Stack;
use smoltcp::iface::SocketHandle;
use smoltcp::phy::ChecksumCapabilities;
use smoltcp::socket::{icmp, tcp, udp};
use smoltcp::wire::{Icmpv4Packet, Icmpv4Repr, IpAddress, IpEndpoint};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use switchyard_gateway::{FlowId, Outside, OutsideError, ReadOutcome, Readiness, WriteOutcome};

/// A gateway's index on its host and one of its flows.
pub(crate) type FlowKey = (u32, FlowId);

/// Bytes of each direction of an outside TCP socket.
const TCP_BUFFER: usize = 64 * 1024;
/// The ephemeral range the host's sockets use, as Linux's default.
const EPHEMERAL: std::ops::RangeInclusive<u16> = 32_768..=60_999;

/// The socket behind one flow.
#[derive(Debug)]
pub(crate) enum FlowSocket {
    /// A TCP connection (outbound, or accepted on a published port).
    Tcp {
        handle: SocketHandle,
        /// It was seen past the handshake once.
        established: bool,
        /// The gateway shut its sending side.
        shut: bool,
    },
    /// A UDP socket (a mapping, or a published UDP port).
    Udp(SocketHandle),
    /// An ICMP echo socket with the identifier the host picked.
    Ping { handle: SocketHandle, ident: u16 },
}

/// A published port as realised on the host: a listening (TCP) socket on
/// the uplink, or a bound UDP socket registered as a gateway flow.
#[derive(Debug)]
pub(crate) struct Listener {
    pub gateway: u32,
    pub host_port: u16,
    pub target: SocketAddr,
    pub udp: bool,
    /// The TCP socket in `Listen` (re-armed after every accept); for UDP
    /// the socket is the flow's.
    pub handle: Option<SocketHandle>,
    /// The published UDP port's flow.
    pub flow: Option<FlowId>,
}

/// The host's sockets on the internet, by gateway flow.
#[derive(Debug)]
pub(crate) struct HostOutside {
    /// The host's node on the internet.
    pub node: u32,
    pub flows: BTreeMap<FlowKey, FlowSocket>,
    /// Closed by the gateway but still finishing their handshake (a FIN
    /// to acknowledge, a RST to send); removed once they are done.
    pub lingering: Vec<SocketHandle>,
    pub listeners: Vec<Listener>,
    next_port: u16,
    next_ident: u16,
}

impl HostOutside {
    /// The outside of a host whose uplink is internet node `node`.
    pub(crate) fn new(node: u32) -> HostOutside {
        HostOutside {
            node,
            flows: BTreeMap::new(),
            lingering: Vec::new(),
            listeners: Vec::new(),
            next_port: *EPHEMERAL.start(),
            next_ident: 1,
        }
    }

    /// A fresh local port (ports in use by published listeners skipped).
    pub(crate) fn ephemeral(&mut self) -> u16 {
        loop {
            let p = self.next_port;
            self.next_port = if p >= *EPHEMERAL.end() {
                *EPHEMERAL.start()
            } else {
                p + 1
            };
            if !self.listeners.iter().any(|l| l.host_port == p) {
                return p;
            }
        }
    }

    /// What each flow's socket can do now, for [`switchyard_gateway::Gateway::ready`].
    pub(crate) fn readiness(&mut self, stack: &mut Stack, out: &mut Vec<(FlowKey, Readiness)>) {
        out.clear();
        for (key, s) in self.flows.iter_mut() {
            let r = match s {
                FlowSocket::Tcp {
                    handle,
                    established,
                    shut,
                } => {
                    let sock = stack.sockets.get::<tcp::Socket>(*handle);
                    let state = sock.state();
                    let connecting = matches!(
                        state,
                        tcp::State::SynSent | tcp::State::SynReceived | tcp::State::Listen
                    );
                    if !connecting && state != tcp::State::Closed {
                        *established = true;
                    }
                    // Closed without our FIN: refused, reset or timed out.
                    let error = state == tcp::State::Closed && (!*established || !*shut);
                    Readiness {
                        readable: sock.can_recv() || (*established && !sock.may_recv()),
                        writable: *established && (sock.can_send() || !sock.may_send()),
                        error,
                    }
                }
                FlowSocket::Udp(h) => Readiness {
                    readable: stack.sockets.get::<udp::Socket>(*h).can_recv(),
                    ..Readiness::default()
                },
                FlowSocket::Ping { handle, .. } => Readiness {
                    readable: stack.sockets.get::<icmp::Socket>(*handle).can_recv(),
                    ..Readiness::default()
                },
            };
            if r != Readiness::default() {
                out.push((*key, r));
            }
        }
    }

    /// Removes lingering sockets whose closing handshake is over.
    pub(crate) fn reap(&mut self, stack: &mut Stack) {
        self.lingering.retain(|&h| {
            let state = stack.sockets.get::<tcp::Socket>(h).state();
            let done = matches!(state, tcp::State::Closed | tcp::State::TimeWait);
            if done {
                stack.sockets.remove(h);
            }
            !done
        });
    }

    /// Drops every socket of gateway `gw` (its network went away).
    pub(crate) fn drop_gateway(&mut self, stack: &mut Stack, gw: u32) {
        let keys: Vec<FlowKey> = self.flows.keys().filter(|k| k.0 == gw).copied().collect();
        for k in keys {
            OutsideView {
                stack: &mut *stack,
                table: &mut *self,
                gateway: gw,
            }
            .close(k.1);
        }
        let mut kept = Vec::new();
        for l in std::mem::take(&mut self.listeners) {
            if l.gateway == gw {
                if let Some(h) = l.handle {
                    stack.sockets.remove(h);
                }
            } else {
                kept.push(l);
            }
        }
        self.listeners = kept;
    }
}

/// A new TCP socket for the outside, without Nagle (the gateway relays
/// what the container wrote as it comes).
pub(crate) fn tcp_socket() -> tcp::Socket<'static> {
    let mut s = tcp::Socket::new(
        tcp::SocketBuffer::new(vec![0u8; TCP_BUFFER]),
        tcp::SocketBuffer::new(vec![0u8; TCP_BUFFER]),
    );
    s.set_nagle_enabled(false);
    // A peer that vanished mid-close does not keep the socket forever.
    s.set_timeout(Some(smoltcp::time::Duration::from_secs(60)));
    s
}

/// A UDP socket with room for a burst of datagrams.
pub(crate) fn udp_socket() -> udp::Socket<'static> {
    let buf = || udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; 32], vec![0u8; 64 * 1024]);
    udp::Socket::new(buf(), buf())
}

fn v4(to: SocketAddr) -> Result<(Ipv4Addr, u16), OutsideError> {
    match to {
        SocketAddr::V4(a) if a.ip().is_loopback() => Err(OutsideError::Refused(format!(
            "nothing listens on the simulated host's loopback ({a})"
        ))),
        SocketAddr::V4(a) => Ok((*a.ip(), a.port())),
        SocketAddr::V6(a) => Err(OutsideError::Refused(format!(
            "the simulated internet is IPv4 only; {a} cannot be reached"
        ))),
    }
}

/// One gateway's view of its host's outside.
pub(crate) struct OutsideView<'a> {
    pub stack: &'a mut Stack,
    pub table: &'a mut HostOutside,
    pub gateway: u32,
}

impl OutsideView<'_> {
    fn socket(&self, flow: FlowId) -> Option<&FlowSocket> {
        self.table.flows.get(&(self.gateway, flow))
    }
}

impl Outside for OutsideView<'_> {
    fn tcp_connect(&mut self, flow: FlowId, to: SocketAddr) -> Result<(), OutsideError> {
        let (ip, port) = v4(to)?;
        let local = self.table.ephemeral();
        let mut s = tcp_socket();
        s.connect(
            self.stack.iface.context(),
            (IpAddress::Ipv4(ip), port),
            local,
        )
        .map_err(|e| OutsideError::Refused(format!("cannot connect to {to}: {e}")))?;
        let handle = self.stack.sockets.add(s);
        self.table.flows.insert(
            (self.gateway, flow),
            FlowSocket::Tcp {
                handle,
                established: false,
                shut: false,
            },
        );
        Ok(())
    }

    fn tcp_read(&mut self, flow: FlowId, buf: &mut [u8]) -> ReadOutcome {
        let Some(FlowSocket::Tcp { handle, .. }) = self.socket(flow) else {
            return ReadOutcome::Failed;
        };
        let sock = self.stack.sockets.get_mut::<tcp::Socket>(*handle);
        if sock.can_recv() {
            return match sock.recv_slice(buf) {
                Ok(0) => ReadOutcome::WouldBlock,
                Ok(n) => ReadOutcome::Data(n),
                Err(_) => ReadOutcome::Failed,
            };
        }
        match sock.state() {
            tcp::State::SynSent | tcp::State::SynReceived | tcp::State::Listen => {
                ReadOutcome::WouldBlock
            }
            _ if !sock.may_recv() => ReadOutcome::Eof,
            _ => ReadOutcome::WouldBlock,
        }
    }

    fn tcp_write(&mut self, flow: FlowId, data: &[u8]) -> WriteOutcome {
        let Some(FlowSocket::Tcp { handle, .. }) = self.socket(flow) else {
            return WriteOutcome::Failed;
        };
        let sock = self.stack.sockets.get_mut::<tcp::Socket>(*handle);
        if matches!(sock.state(), tcp::State::SynSent | tcp::State::SynReceived) {
            // An accepted connection whose handshake is not over yet.
            return WriteOutcome::WouldBlock;
        }
        if !sock.may_send() {
            return WriteOutcome::Failed;
        }
        match sock.send_slice(data) {
            Ok(0) => WriteOutcome::WouldBlock,
            Ok(n) => WriteOutcome::Wrote(n),
            Err(_) => WriteOutcome::Failed,
        }
    }

    fn tcp_shutdown(&mut self, flow: FlowId) {
        if let Some(FlowSocket::Tcp { handle, shut, .. }) =
            self.table.flows.get_mut(&(self.gateway, flow))
        {
            *shut = true;
            self.stack.sockets.get_mut::<tcp::Socket>(*handle).close();
        }
    }

    fn udp_open(&mut self, flow: FlowId, ipv6: bool) -> Result<(), OutsideError> {
        if ipv6 {
            return Err(OutsideError::Unavailable(
                "the simulated internet is IPv4 only".into(),
            ));
        }
        let local = self.table.ephemeral();
        let mut s = udp_socket();
        s.bind(local)
            .map_err(|e| OutsideError::Exhausted(format!("cannot bind UDP port {local}: {e}")))?;
        let handle = self.stack.sockets.add(s);
        self.table
            .flows
            .insert((self.gateway, flow), FlowSocket::Udp(handle));
        Ok(())
    }

    fn udp_send(&mut self, flow: FlowId, to: SocketAddr, data: &[u8]) -> Result<(), OutsideError> {
        let (ip, port) = v4(to)?;
        let Some(FlowSocket::Udp(h)) = self.socket(flow) else {
            return Err(OutsideError::Refused(format!("{flow} has no UDP socket")));
        };
        self.stack
            .sockets
            .get_mut::<udp::Socket>(*h)
            .send_slice(data, IpEndpoint::new(IpAddress::Ipv4(ip), port))
            .map_err(|e| OutsideError::Exhausted(format!("UDP send to {to}: {e}")))
    }

    fn udp_recv(&mut self, flow: FlowId, buf: &mut [u8]) -> Option<(usize, SocketAddr)> {
        let Some(FlowSocket::Udp(h)) = self.socket(flow) else {
            return None;
        };
        let (n, meta) = self
            .stack
            .sockets
            .get_mut::<udp::Socket>(*h)
            .recv_slice(buf)
            .ok()?;
        let ip = match meta.endpoint.addr {
            IpAddress::Ipv4(a) => IpAddr::V4(a),
            IpAddress::Ipv6(a) => IpAddr::V6(a),
        };
        Some((n, SocketAddr::new(ip, meta.endpoint.port)))
    }

    fn ping_open(&mut self, flow: FlowId, ipv6: bool) -> Result<(), OutsideError> {
        if ipv6 {
            return Err(OutsideError::Unavailable(
                "the simulated internet is IPv4 only".into(),
            ));
        }
        let ident = self.table.next_ident;
        self.table.next_ident = self.table.next_ident.wrapping_add(1).max(1);
        let buf =
            || icmp::PacketBuffer::new(vec![icmp::PacketMetadata::EMPTY; 16], vec![0u8; 16 * 1100]);
        let mut s = icmp::Socket::new(buf(), buf());
        s.bind(icmp::Endpoint::Ident(ident))
            .map_err(|e| OutsideError::Exhausted(format!("cannot bind an echo socket: {e}")))?;
        let handle = self.stack.sockets.add(s);
        self.table
            .flows
            .insert((self.gateway, flow), FlowSocket::Ping { handle, ident });
        Ok(())
    }

    fn ping_send(
        &mut self,
        flow: FlowId,
        to: IpAddr,
        seq: u16,
        data: &[u8],
    ) -> Result<(), OutsideError> {
        let (ip, _) = v4(SocketAddr::new(to, 0))?;
        let Some(&FlowSocket::Ping { handle, ident }) = self.socket(flow) else {
            return Err(OutsideError::Refused(format!("{flow} has no echo socket")));
        };
        let repr = Icmpv4Repr::EchoRequest {
            ident,
            seq_no: seq,
            data,
        };
        let sock = self.stack.sockets.get_mut::<icmp::Socket>(handle);
        let buf = sock
            .send(repr.buffer_len(), IpAddress::Ipv4(ip))
            .map_err(|e| OutsideError::Exhausted(format!("echo request to {ip}: {e}")))?;
        repr.emit(
            &mut Icmpv4Packet::new_unchecked(buf),
            &ChecksumCapabilities::default(),
        );
        Ok(())
    }

    fn ping_recv(&mut self, flow: FlowId, buf: &mut [u8]) -> Option<(usize, IpAddr, u16)> {
        let &FlowSocket::Ping { handle, ident } = self.socket(flow)? else {
            return None;
        };
        let sock = self.stack.sockets.get_mut::<icmp::Socket>(handle);
        let caps = ChecksumCapabilities::default();
        while let Ok((bytes, from)) = sock.recv() {
            let Ok(pkt) = Icmpv4Packet::new_checked(bytes) else {
                continue;
            };
            if let Ok(Icmpv4Repr::EchoReply {
                ident: id,
                seq_no,
                data,
            }) = Icmpv4Repr::parse(&pkt, &caps)
            {
                if id != ident {
                    continue;
                }
                let n = data.len().min(buf.len());
                buf[..n].copy_from_slice(&data[..n]);
                let from = match from {
                    IpAddress::Ipv4(a) => IpAddr::V4(a),
                    IpAddress::Ipv6(a) => IpAddr::V6(a),
                };
                return Some((n, from, seq_no));
            }
        }
        None
    }

    fn close(&mut self, flow: FlowId) {
        let Some(s) = self.table.flows.remove(&(self.gateway, flow)) else {
            return;
        };
        match s {
            FlowSocket::Tcp { handle, .. } => {
                let sock = self.stack.sockets.get_mut::<tcp::Socket>(handle);
                match sock.state() {
                    tcp::State::Closed | tcp::State::TimeWait => {
                        self.stack.sockets.remove(handle);
                    }
                    tcp::State::Listen | tcp::State::SynSent | tcp::State::SynReceived => {
                        sock.abort();
                        self.table.lingering.push(handle);
                    }
                    _ => {
                        sock.close();
                        self.table.lingering.push(handle);
                    }
                }
            }
            FlowSocket::Udp(h) | FlowSocket::Ping { handle: h, .. } => {
                self.stack.sockets.remove(h);
            }
        }
        // A published UDP port's flow ended: its listener goes with it.
        self.table
            .listeners
            .retain(|l| !(l.gateway == self.gateway && l.flow == Some(flow)));
    }
}
