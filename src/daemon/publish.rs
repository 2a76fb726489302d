//! Published ports on the host side: binding the host sockets a `-p`
//! mapping asks for, picking a free port when asked, and saying clearly
//! who holds a port that is taken.
//!
//! Sockets are bound here, in the control plane's thread, so a refusal is
//! an error of the `run` that asked, before anything is handed to the
//! gateway. A mapping on every address binds `0.0.0.0` and `::` (the
//! latter IPv6-only) on the same port, as Docker does.

use socket2::{Domain, Protocol as SockProtocol, SockAddr, Socket, Type};
use std::io;
use std::net::{IpAddr, SocketAddr};
use switchyard_linux::port::PublishedSocket;
use switchyard_linux::portowner::{holder_of, unprivileged_port_start};
use switchyard_switch::controller::publish::{PortMapping, Protocol};

/// One host address of a mapping, bound.
pub(crate) struct BoundSocket {
    /// The address and port bound.
    pub addr: SocketAddr,
    /// The socket, for the gateway.
    pub socket: PublishedSocket,
}

/// Tries to pick a free port for `-p CONTAINERPORT` this many times when
/// the kernel's pick for IPv4 is taken on IPv6.
const PICK_ATTEMPTS: usize = 16;

fn bind_one(protocol: Protocol, addr: SocketAddr) -> io::Result<PublishedSocket> {
    let domain = if addr.is_ipv6() {
        Domain::IPV6
    } else {
        Domain::IPV4
    };
    let (ty, proto) = match protocol {
        Protocol::Tcp => (Type::STREAM, SockProtocol::TCP),
        Protocol::Udp => (Type::DGRAM, SockProtocol::UDP),
    };
    let socket = Socket::new(domain, ty, Some(proto))?;
    if addr.is_ipv6() {
        // `::` beside `0.0.0.0`: each family its own socket.
        socket.set_only_v6(true)?;
    }
    if protocol == Protocol::Tcp {
        // A restarted daemon re-binds at once despite old connections in
        // TIME_WAIT (it never lets two listeners share a port).
        socket.set_reuse_address(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&SockAddr::from(addr))?;
    Ok(match protocol {
        Protocol::Tcp => {
            socket.listen(1024)?;
            PublishedSocket::Tcp(socket.into())
        }
        Protocol::Udp => PublishedSocket::Udp(socket.into()),
    })
}

fn local_port(s: &PublishedSocket) -> u16 {
    match s {
        PublishedSocket::Tcp(l) => l.local_addr().map_or(0, |a| a.port()),
        PublishedSocket::Udp(u) => u.local_addr().map_or(0, |a| a.port()),
    }
}

/// Binds every host address of `m` on one port: `m.host_port`, or a free
/// one (the kernel's pick for 0, the first free one of a range). Returns
/// the mapping with its port and the sockets, or what was wrong and how
/// to fix it. `published_by` names the container that already publishes
/// a port of ours, for the message.
pub(crate) fn bind_mapping(
    m: &PortMapping,
    published_by: &dyn Fn(Protocol, u16) -> Option<String>,
) -> Result<(PortMapping, Vec<BoundSocket>), String> {
    let addrs: Vec<IpAddr> = m.host_addrs().collect();
    let candidates: Vec<u16> = match m.host_port_end {
        Some(end) => (m.host_port..=end).collect(),
        None if m.host_port == 0 => vec![0; PICK_ATTEMPTS],
        None => vec![m.host_port],
    };
    let mut last_err = None;
    for port in candidates {
        let mut bound: Vec<BoundSocket> = Vec::new();
        let mut port = port;
        let mut failed = None;
        for &ip in &addrs {
            match bind_one(m.protocol, SocketAddr::new(ip, port)) {
                Ok(socket) => {
                    if port == 0 {
                        port = local_port(&socket);
                    }
                    bound.push(BoundSocket {
                        addr: SocketAddr::new(ip, port),
                        socket,
                    });
                }
                Err(e) => {
                    failed = Some((SocketAddr::new(ip, port), e));
                    break;
                }
            }
        }
        match failed {
            None => {
                let resolved = PortMapping {
                    host_port: port,
                    host_port_end: None,
                    ..*m
                };
                return Ok((resolved, bound));
            }
            Some(err) => last_err = Some(err),
        }
    }
    let (addr, e) = last_err.expect("at least one candidate port");
    Err(explain(m, addr, &e, published_by))
}

fn explain(
    m: &PortMapping,
    addr: SocketAddr,
    e: &io::Error,
    published_by: &dyn Fn(Protocol, u16) -> Option<String>,
) -> String {
    let spec = m.publish_spec();
    let proto = m.protocol;
    match e.raw_os_error() {
        Some(libc::EADDRINUSE) if m.host_port_end.is_some() => format!(
            "-p {spec}: every host port of {}-{} is taken; choose another range",
            m.host_port,
            m.host_port_end.unwrap_or(m.host_port)
        ),
        Some(libc::EADDRINUSE) => {
            let who = match published_by(proto, addr.port()) {
                Some(container) => format!("container {container} (published by this daemon)"),
                None => match holder_of(proto, addr.ip(), addr.port()) {
                    Some(h) => h.to_string(),
                    None => "another socket".to_string(),
                },
            };
            format!(
                "-p {spec}: host port {addr}/{proto} is already taken by {who}; publish on \
                 another host port (-p OTHER:{}), or stop what holds it",
                m.container_port
            )
        }
        Some(libc::EACCES | libc::EPERM) if addr.port() < unprivileged_port_start() => format!(
            "-p {spec}: host port {} is below {}, the first port an unprivileged daemon may \
             bind (net.ipv4.ip_unprivileged_port_start); publish on a port of at least {} \
             (-p 8080:{}), or run the daemon as root",
            addr.port(),
            unprivileged_port_start(),
            unprivileged_port_start(),
            m.container_port
        ),
        Some(libc::EADDRNOTAVAIL) => format!(
            "-p {spec}: {} is not an address of this host; give one of its addresses, or \
             leave HOSTIP out to publish on every address",
            addr.ip()
        ),
        _ => format!("-p {spec}: cannot bind host {addr}/{proto}: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_switch::controller::publish::parse_publish;

    fn none(_: Protocol, _: u16) -> Option<String> {
        None
    }

    #[test]
    fn a_picked_port_is_the_same_on_both_families_and_a_taken_one_is_named() {
        let m = parse_publish("127.0.0.1::80").unwrap()[0];
        let (resolved, bound) = bind_mapping(&m, &none).unwrap();
        assert_ne!(resolved.host_port, 0);
        assert_eq!(bound.len(), 1);
        let again = PortMapping {
            host_port: resolved.host_port,
            ..m
        };
        let err = bind_mapping(&again, &|_, p| {
            (p == resolved.host_port).then(|| "web".to_string())
        })
        .err()
        .expect("taken");
        assert!(err.contains("already taken by container web"), "{err}");
        let err = bind_mapping(&again, &none).err().expect("taken");
        assert!(
            err.contains(&format!("pid {}", std::process::id())),
            "{err}"
        );
    }

    #[test]
    fn a_range_takes_its_first_free_port() {
        let first = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let p = first.local_addr().unwrap().port();
        if p == u16::MAX {
            return;
        }
        let m = parse_publish(&format!("127.0.0.1:{p}-{}:80", p + 1)).unwrap()[0];
        match bind_mapping(&m, &none) {
            Ok((resolved, _)) => assert_eq!(resolved.host_port, p + 1),
            // The next port may be someone else's: then the range is full.
            Err(e) => assert!(e.contains("every host port"), "{e}"),
        }
    }
}
