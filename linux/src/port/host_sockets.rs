//! The gateway's outside in real mode: non-blocking sockets in the daemon's
//! own network namespace, one per flow, all watched edge-triggered by one
//! nested [`EventLoop`] whose token is the flow's id.
//!
//! No privilege is needed for TCP and UDP. Ping uses the kernel's
//! unprivileged ICMP sockets (`SOCK_DGRAM`, `IPPROTO_ICMP`) where
//! `net.ipv4.ping_group_range` includes the daemon's group, raw sockets
//! where the daemon may open them (root, `CAP_NET_RAW`), and is reported
//! unavailable otherwise (the container's ping then times out, and the
//! gateway counts the refusal).

use crate::event_loop::EventLoop;
use hashbrown::HashMap;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::io::{self, Read, Write};
use std::mem::MaybeUninit;
use std::net::{IpAddr, Shutdown, SocketAddr, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use switchyard_gateway::{FlowId, Outside, OutsideError, ReadOutcome, WriteOutcome};
use switchyard_switch::wire::checksum;

/// Largest datagram read from a host socket (a 64 KiB UDP payload).
const MAX_DATAGRAM: usize = 65_536;

/// How this host lets the daemon send echo requests.
#[derive(Clone, Debug, PartialEq, Eq)]
enum PingSupport {
    /// Not tried yet.
    Unknown,
    /// Unprivileged ICMP datagram sockets: the kernel picks the
    /// identifier and hands back only this socket's replies.
    Datagram,
    /// Raw ICMP sockets: every reply reaches every socket; ours are told
    /// apart by the identifier we chose.
    Raw,
    /// Neither (why, for the refusal).
    Unavailable(String),
}

enum HostSocket {
    Tcp(TcpStream),
    Udp(UdpSocket),
    Ping {
        socket: Socket,
        raw: bool,
        ipv6: bool,
        ident: u16,
    },
}

/// The host sockets of one gateway and the loop that watches them.
pub(crate) struct HostSockets {
    /// Watches every socket (token: the flow id) and the port's own
    /// descriptors (tokens the port reserves above [`FLOW_TOKENS`]).
    pub(crate) events: EventLoop,
    sockets: HashMap<FlowId, HostSocket>,
    ping: [PingSupport; 2],
    scratch: Box<[u8]>,
    next_ident: u16,
}

/// Events taken from the nested loop per wait.
pub(crate) const EVENT_BATCH: usize = 256;

/// Flow ids are below this; the port's own tokens are above.
pub(crate) const FLOW_TOKENS: u64 = 1 << 62;

fn open_error(e: io::Error) -> OutsideError {
    match e.raw_os_error() {
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM) => {
            OutsideError::Exhausted(e.to_string())
        }
        _ => OutsideError::Refused(e.to_string()),
    }
}

fn domain(ipv6: bool) -> Domain {
    if ipv6 {
        Domain::IPV6
    } else {
        Domain::IPV4
    }
}

impl HostSockets {
    /// An empty set watched by a fresh loop.
    pub(crate) fn new() -> io::Result<HostSockets> {
        Ok(HostSockets {
            events: EventLoop::new(EVENT_BATCH)?,
            sockets: HashMap::new(),
            ping: [PingSupport::Unknown, PingSupport::Unknown],
            scratch: vec![0u8; MAX_DATAGRAM + 128].into_boxed_slice(),
            next_ident: 1,
        })
    }

    /// Sockets open now.
    pub(crate) fn len(&self) -> usize {
        self.sockets.len()
    }

    fn watch(&self, flow: FlowId, fd: std::os::fd::RawFd) -> Result<(), OutsideError> {
        self.events.add_edge(fd, flow.0).map_err(open_error)
    }

    /// Takes an accepted connection of a published port as `flow`'s.
    pub(crate) fn adopt_tcp(
        &mut self,
        flow: FlowId,
        stream: TcpStream,
    ) -> Result<(), OutsideError> {
        stream.set_nonblocking(true).map_err(open_error)?;
        let _ = stream.set_nodelay(true);
        self.watch(flow, stream.as_raw_fd())?;
        self.sockets.insert(flow, HostSocket::Tcp(stream));
        Ok(())
    }

    /// Takes a published port's bound UDP socket as `flow`'s.
    pub(crate) fn adopt_udp(
        &mut self,
        flow: FlowId,
        socket: UdpSocket,
    ) -> Result<(), OutsideError> {
        socket.set_nonblocking(true).map_err(open_error)?;
        self.watch(flow, socket.as_raw_fd())?;
        self.sockets.insert(flow, HostSocket::Udp(socket));
        Ok(())
    }

    fn open_ping(&mut self, ipv6: bool) -> Result<(Socket, bool), OutsideError> {
        let family = usize::from(ipv6);
        let protocol = if ipv6 {
            Protocol::ICMPV6
        } else {
            Protocol::ICMPV4
        };
        loop {
            match self.ping[family].clone() {
                PingSupport::Unavailable(why) => return Err(OutsideError::Unavailable(why)),
                PingSupport::Datagram => {
                    return Socket::new(domain(ipv6), Type::DGRAM, Some(protocol))
                        .map(|s| (s, false))
                        .map_err(open_error)
                }
                PingSupport::Raw => {
                    return Socket::new(domain(ipv6), Type::RAW, Some(protocol))
                        .map(|s| (s, true))
                        .map_err(open_error)
                }
                PingSupport::Unknown => {
                    let denied = |e: &io::Error| {
                        matches!(e.raw_os_error(), Some(libc::EACCES | libc::EPERM))
                    };
                    let dgram = Socket::new(domain(ipv6), Type::DGRAM, Some(protocol));
                    match dgram {
                        Ok(s) => {
                            self.ping[family] = PingSupport::Datagram;
                            return Ok((s, false));
                        }
                        Err(e) if !denied(&e) => return Err(open_error(e)),
                        Err(_) => {}
                    }
                    match Socket::new(domain(ipv6), Type::RAW, Some(protocol)) {
                        Ok(s) => {
                            self.ping[family] = PingSupport::Raw;
                            return Ok((s, true));
                        }
                        Err(e) if denied(&e) => {
                            let why = "ping needs net.ipv4.ping_group_range to include the \
                                       daemon's group, or a daemon with CAP_NET_RAW"
                                .to_string();
                            tracing::warn!("containers cannot ping out: {why}");
                            self.ping[family] = PingSupport::Unavailable(why);
                        }
                        Err(e) => return Err(open_error(e)),
                    }
                }
            }
        }
    }

    fn recv_raw(socket: &Socket, buf: &mut [u8]) -> io::Result<(usize, SockAddr)> {
        // SAFETY: `recv_from` only writes initialised bytes into the
        // buffer and reports how many; a `[u8]` is valid for any bytes.
        let uninit = unsafe { &mut *(buf as *mut [u8] as *mut [MaybeUninit<u8>]) };
        socket.recv_from(uninit)
    }
}

impl Outside for HostSockets {
    fn tcp_connect(&mut self, flow: FlowId, to: SocketAddr) -> Result<(), OutsideError> {
        // Non-blocking from socket(2) on (SOCK_NONBLOCK): one connect costs
        // no fcntl round trip.
        let socket = Socket::new(
            Domain::for_address(to),
            Type::STREAM.nonblocking(),
            Some(Protocol::TCP),
        )
        .map_err(open_error)?;
        let _ = socket.set_tcp_nodelay(true);
        match socket.connect(&to.into()) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
            Err(e) => return Err(open_error(e)),
        }
        self.watch(flow, socket.as_raw_fd())?;
        self.sockets.insert(flow, HostSocket::Tcp(socket.into()));
        Ok(())
    }

    fn tcp_read(&mut self, flow: FlowId, buf: &mut [u8]) -> ReadOutcome {
        let Some(HostSocket::Tcp(s)) = self.sockets.get_mut(&flow) else {
            return ReadOutcome::Failed;
        };
        loop {
            return match s.read(buf) {
                Ok(0) => ReadOutcome::Eof,
                Ok(n) => ReadOutcome::Data(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => ReadOutcome::WouldBlock,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => ReadOutcome::Failed,
            };
        }
    }

    fn tcp_write(&mut self, flow: FlowId, data: &[u8]) -> WriteOutcome {
        let Some(HostSocket::Tcp(s)) = self.sockets.get_mut(&flow) else {
            return WriteOutcome::Failed;
        };
        loop {
            return match s.write(data) {
                Ok(0) => WriteOutcome::WouldBlock,
                Ok(n) => WriteOutcome::Wrote(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => WriteOutcome::WouldBlock,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => WriteOutcome::Failed,
            };
        }
    }

    fn tcp_shutdown(&mut self, flow: FlowId) {
        if let Some(HostSocket::Tcp(s)) = self.sockets.get(&flow) {
            let _ = s.shutdown(Shutdown::Write);
        }
    }

    fn udp_open(&mut self, flow: FlowId, ipv6: bool) -> Result<(), OutsideError> {
        let any: SocketAddr = if ipv6 {
            "[::]:0".parse().expect("literal")
        } else {
            "0.0.0.0:0".parse().expect("literal")
        };
        let socket = UdpSocket::bind(any).map_err(open_error)?;
        socket.set_nonblocking(true).map_err(open_error)?;
        self.watch(flow, socket.as_raw_fd())?;
        self.sockets.insert(flow, HostSocket::Udp(socket));
        Ok(())
    }

    fn udp_send(&mut self, flow: FlowId, to: SocketAddr, data: &[u8]) -> Result<(), OutsideError> {
        let Some(HostSocket::Udp(s)) = self.sockets.get(&flow) else {
            return Err(OutsideError::Refused(format!("{flow} has no UDP socket")));
        };
        match s.send_to(data, to) {
            Ok(_) => Ok(()),
            // A full send queue drops the datagram, as a wire would.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
            Err(e) => Err(open_error(e)),
        }
    }

    fn udp_recv(&mut self, flow: FlowId, buf: &mut [u8]) -> Option<(usize, SocketAddr)> {
        let Some(HostSocket::Udp(s)) = self.sockets.get(&flow) else {
            return None;
        };
        loop {
            match s.recv_from(buf) {
                Ok(got) => return Some(got),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // An ICMP error queued on the socket (a port unreachable
                // for an earlier datagram) is not a datagram: skip it.
                Err(e) if e.kind() != io::ErrorKind::WouldBlock => continue,
                Err(_) => return None,
            }
        }
    }

    fn ping_open(&mut self, flow: FlowId, ipv6: bool) -> Result<(), OutsideError> {
        let (socket, raw) = self.open_ping(ipv6)?;
        socket.set_nonblocking(true).map_err(open_error)?;
        self.watch(flow, socket.as_raw_fd())?;
        let ident = self.next_ident;
        self.next_ident = self.next_ident.wrapping_add(1).max(1);
        self.sockets.insert(
            flow,
            HostSocket::Ping {
                socket,
                raw,
                ipv6,
                ident,
            },
        );
        Ok(())
    }

    fn ping_send(
        &mut self,
        flow: FlowId,
        to: IpAddr,
        seq: u16,
        data: &[u8],
    ) -> Result<(), OutsideError> {
        let Some(HostSocket::Ping {
            socket,
            ipv6,
            ident,
            ..
        }) = self.sockets.get(&flow)
        else {
            return Err(OutsideError::Refused(format!("{flow} has no ping socket")));
        };
        let len = 8 + data.len();
        if len > self.scratch.len() {
            return Err(OutsideError::Refused("echo request too large".into()));
        }
        let msg = &mut self.scratch[..len];
        msg[0] = if *ipv6 { 128 } else { 8 };
        msg[1] = 0;
        msg[2..4].copy_from_slice(&[0, 0]);
        msg[4..6].copy_from_slice(&ident.to_be_bytes());
        msg[6..8].copy_from_slice(&seq.to_be_bytes());
        msg[8..].copy_from_slice(data);
        if !*ipv6 {
            // ICMPv6's checksum covers a pseudo-header: the kernel fills
            // it in; ICMPv4's is ours (a datagram socket recomputes it).
            let sum = checksum::finish(checksum::sum(msg));
            msg[2..4].copy_from_slice(&sum.to_be_bytes());
        }
        match socket.send_to(msg, &SocketAddr::new(to, 0).into()) {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
            Err(e) => Err(open_error(e)),
        }
    }

    fn ping_recv(&mut self, flow: FlowId, buf: &mut [u8]) -> Option<(usize, IpAddr, u16)> {
        let Some(HostSocket::Ping {
            socket,
            raw,
            ipv6,
            ident,
        }) = self.sockets.get(&flow)
        else {
            return None;
        };
        loop {
            let (n, from) = match Self::recv_raw(socket, &mut self.scratch) {
                Ok(got) => got,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() != io::ErrorKind::WouldBlock => continue,
                Err(_) => return None,
            };
            let from = from.as_socket()?.ip();
            let mut msg = &self.scratch[..n];
            if *raw && !*ipv6 {
                // A raw IPv4 socket hands over the IP header too.
                let ihl = usize::from(msg.first()? & 0x0f) * 4;
                msg = msg.get(ihl..)?;
            }
            if msg.len() < 8 {
                continue;
            }
            let reply = if *ipv6 { 129 } else { 0 };
            if msg[0] != reply {
                continue;
            }
            // A raw socket sees every echo reply to the host; a datagram
            // socket's identifier is the kernel's, and only ours arrive.
            if *raw && u16::from_be_bytes([msg[4], msg[5]]) != *ident {
                continue;
            }
            let seq = u16::from_be_bytes([msg[6], msg[7]]);
            let payload = &msg[8..];
            let len = payload.len().min(buf.len());
            buf[..len].copy_from_slice(&payload[..len]);
            return Some((len, from, seq));
        }
    }

    fn close(&mut self, flow: FlowId) {
        // Dropping the socket closes it, which also takes it out of the
        // loop (no duplicate of it is open).
        self.sockets.remove(&flow);
    }
}
