//! Who holds a host port: when `run -p 8080:80` cannot bind 8080, the
//! error can say `port 8080 is held by pid 1234 (python3)` instead of only
//! "address in use".
//!
//! The kernel's socket tables of the caller's network namespace
//! (`/proc/thread-self/net/{tcp,tcp6,udp,udp6}`) give the socket's inode;
//! the process comes from the `/proc/PID/fd/*` link that reads
//! `socket:[INODE]`. Processes whose descriptors this user cannot read are
//! skipped, so the pid may be unknown while the socket is still reported.
//! All of it is for an error path: it reads files and never runs per frame.

use std::fmt;
use std::fs;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use switchyard_switch::controller::publish::Protocol;

/// The `st` column of a listening TCP socket (`TCP_LISTEN`).
pub const TCP_LISTEN: u8 = 0x0A;

/// Linux's default first unprivileged port, used when the sysctl cannot
/// be read.
pub const DEFAULT_UNPRIVILEGED_PORT_START: u16 = 1024;

/// The socket that holds a port, and the process holding it when one
/// could be seen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortHolder {
    /// A process with the socket open, if this user may read its
    /// descriptors (and it is in this PID namespace).
    pub pid: Option<u32>,
    /// Its `comm` (at most 15 characters, as the kernel keeps it).
    pub command: Option<String>,
    /// The socket's inode, which `ss -lpe` and `lsof` show too.
    pub inode: u64,
}

/// `pid 1234 (python3)`, or, for a process this user cannot see,
/// `a process this user cannot see (socket inode 5678)`.
impl fmt::Display for PortHolder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.pid, &self.command) {
            (Some(pid), Some(command)) => write!(f, "pid {pid} ({command})"),
            (Some(pid), None) => write!(f, "pid {pid}"),
            (None, _) => write!(
                f,
                "a process this user cannot see (socket inode {})",
                self.inode
            ),
        }
    }
}

/// One socket line of `/proc/net/{tcp,tcp6,udp,udp6}`: the columns this
/// module needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProcNetSocket {
    /// `local_address`.
    pub local: SocketAddr,
    /// `st`, the kernel's TCP state number ([`TCP_LISTEN`]; 07 for an
    /// unconnected UDP socket).
    pub state: u8,
    /// `inode`; 0 for sockets without one (TIME_WAIT).
    pub inode: u64,
}

/// Parses one line of `/proc/net/{tcp,tcp6,udp,udp6}`; `None` for the
/// header and for anything malformed (never panics).
///
/// Addresses are hex: IPv4 as one 32-bit word, IPv6 as four, each word
/// printed in the host's byte order (little-endian on x86 and arm64), the
/// port as a plain hex number.
pub fn parse_proc_net_line(line: &str) -> Option<ProcNetSocket> {
    let mut fields = line.split_whitespace();
    let slot = fields.next()?;
    let slot = slot.strip_suffix(':')?;
    if slot.is_empty() || !slot.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let local = parse_hex_socket_addr(fields.next()?)?;
    let _remote = fields.next()?;
    let state = fields.next()?;
    if state.len() != 2 {
        return None;
    }
    let state = u8::from_str_radix(state, 16).ok()?;
    // tx_queue:rx_queue, tr:tm->when, retrnsmt, uid, timeout, then inode.
    let inode = fields.nth(5)?;
    if inode.is_empty() || !inode.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let inode = inode.parse().ok()?;
    Some(ProcNetSocket {
        local,
        state,
        inode,
    })
}

/// `0100007F:1F90` or `00000000000000000000000001000000:1F90`.
fn parse_hex_socket_addr(text: &str) -> Option<SocketAddr> {
    let (addr, port) = text.split_once(':')?;
    if port.len() != 4 {
        return None;
    }
    let port = hex_u32(port)?;
    let port = u16::try_from(port).ok()?;
    let ip = match addr.len() {
        8 => IpAddr::V4(Ipv4Addr::from(hex_u32(addr)?.to_ne_bytes())),
        32 => {
            let mut bytes = [0u8; 16];
            for (i, chunk) in bytes.chunks_exact_mut(4).enumerate() {
                let word = addr.get(i * 8..i * 8 + 8)?;
                chunk.copy_from_slice(&hex_u32(word)?.to_ne_bytes());
            }
            IpAddr::V6(Ipv6Addr::from(bytes))
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// Up to 8 hex digits, nothing else (`from_str_radix` alone takes a `+`).
fn hex_u32(text: &str) -> Option<u32> {
    if text.is_empty() || text.len() > 8 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(text, 16).ok()
}

/// An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`, an IPv6 socket's view
/// of an IPv4 bind) as the IPv4 address it stands for.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// How surely a socket bound at `bound` keeps a bind of `wanted` (on the
/// same port) from succeeding: `Some(0)` when they overlap within one
/// family (the same address, or either is the unspecified address of that
/// family), `Some(1)` across families (`::` without `IPV6_V6ONLY` holds
/// every IPv4 address too, and a dual-stack bind of `::` meets every IPv4
/// holder; `/proc` does not show the flag, so this may name a socket that
/// did not conflict), `None` when they cannot conflict.
pub fn conflict_rank(bound: IpAddr, wanted: IpAddr) -> Option<u8> {
    let (bound, wanted) = (canonical(bound), canonical(wanted));
    match (bound, wanted) {
        (IpAddr::V4(_), IpAddr::V4(_)) | (IpAddr::V6(_), IpAddr::V6(_))
            if bound == wanted || bound.is_unspecified() || wanted.is_unspecified() =>
        {
            Some(0)
        }
        (IpAddr::V6(b), IpAddr::V4(_)) if b.is_unspecified() => Some(1),
        (IpAddr::V4(_), IpAddr::V6(w)) if w.is_unspecified() => Some(1),
        _ => None,
    }
}

/// Whether a socket line holds `addr:port` for `protocol`: a listening TCP
/// socket, or any bound UDP socket, on that port and a conflicting address.
/// Returns its [`conflict_rank`].
fn holds(socket: &ProcNetSocket, protocol: Protocol, addr: IpAddr, port: u16) -> Option<u8> {
    if socket.local.port() != port || socket.inode == 0 {
        return None;
    }
    if protocol == Protocol::Tcp && socket.state != TCP_LISTEN {
        return None;
    }
    conflict_rank(socket.local.ip(), addr)
}

/// Picks the best holder of `addr:port` among the lines of the socket
/// tables given (pure, for tests): the first of rank 0, else the first of
/// rank 1. Returns its inode.
pub fn holding_inode<'a>(
    tables: impl IntoIterator<Item = &'a str>,
    protocol: Protocol,
    addr: IpAddr,
    port: u16,
) -> Option<u64> {
    if port == 0 {
        return None;
    }
    let mut fallback = None;
    for table in tables {
        for socket in table.lines().filter_map(parse_proc_net_line) {
            match holds(&socket, protocol, addr, port) {
                Some(0) => return Some(socket.inode),
                Some(_) if fallback.is_none() => fallback = Some(socket.inode),
                _ => {}
            }
        }
    }
    fallback
}

/// The directory of the calling thread's network namespace's tables:
/// `/proc/thread-self/net` (Linux 3.17+), since `/proc/self/net` shows the
/// main thread's namespace.
fn net_dir() -> PathBuf {
    let thread = Path::new("/proc/thread-self/net");
    if thread.exists() {
        thread.to_path_buf()
    } else {
        PathBuf::from("/proc/self/net")
    }
}

/// Who holds `addr:port` for `protocol` in the caller's network namespace:
/// a listening TCP socket or a bound UDP socket that keeps a bind there
/// from succeeding ([`conflict_rank`]), with its process when one can be
/// seen. `None` when no socket holds it (or the tables cannot be read).
/// Meant for after a bind failed with `EADDRINUSE`: it scans every
/// process's descriptors.
pub fn holder_of(protocol: Protocol, addr: IpAddr, port: u16) -> Option<PortHolder> {
    let dir = net_dir();
    let names: [&str; 2] = match protocol {
        Protocol::Tcp => ["tcp", "tcp6"],
        Protocol::Udp => ["udp", "udp6"],
    };
    // A missing table (IPv6 disabled) is an empty one.
    let tables: Vec<String> = names
        .iter()
        .filter_map(|n| fs::read_to_string(dir.join(n)).ok())
        .collect();
    let inode = holding_inode(tables.iter().map(String::as_str), protocol, addr, port)?;
    let pid = pid_of_socket(Path::new("/proc"), inode);
    let command = pid.and_then(|pid| {
        let comm = fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
        let comm = comm.trim_end_matches('\n');
        (!comm.is_empty()).then(|| comm.to_string())
    });
    Some(PortHolder {
        pid,
        command,
        inode,
    })
}

/// The lowest pid under `proc` with a descriptor on socket `inode`;
/// processes that vanish or whose descriptors cannot be read are skipped.
fn pid_of_socket(proc: &Path, inode: u64) -> Option<u32> {
    let wanted = format!("socket:[{inode}]");
    let mut pids: Vec<u32> = fs::read_dir(proc)
        .ok()?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    pids.sort_unstable();
    pids.into_iter().find(|pid| {
        let Ok(fds) = fs::read_dir(proc.join(pid.to_string()).join("fd")) else {
            return false;
        };
        fds.filter_map(Result::ok).any(|fd| {
            fs::read_link(fd.path()).is_ok_and(|target| target.as_os_str() == wanted.as_str())
        })
    })
}

/// The first port an unprivileged process may bind in the caller's network
/// namespace (`net.ipv4.ip_unprivileged_port_start`, which covers IPv6
/// too), so a rootless `-p 80:80` can be refused with the reason;
/// [`DEFAULT_UNPRIVILEGED_PORT_START`] when it cannot be read.
pub fn unprivileged_port_start() -> u16 {
    fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
        .ok()
        .and_then(|text| parse_unprivileged_port_start(&text))
        .unwrap_or(DEFAULT_UNPRIVILEGED_PORT_START)
}

/// The sysctl's text (`1024\n`) as a port; values over 65535 mean no port
/// is unprivileged.
fn parse_unprivileged_port_start(text: &str) -> Option<u16> {
    let value: u32 = text.trim().parse().ok()?;
    Some(u16::try_from(value).unwrap_or(u16::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::net::{TcpListener, UdpSocket};

    // Real lines, taken from a Linux 6 x86-64 host.
    const TCP4_LINES: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:07E8 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1064 1 00000000de39398c 100 0 0 10 0
   1: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1033628 1 00000000b71ff1da 100 0 0 10 0
   2: 0100007F:1F90 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 1033700 1 00000000b71ff1db 20 4 30 10 -1
";
    const TCP6_LINES: &str = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000001000000:1F91 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1033629 1 000000002c33b050 100 0 0 10 0
   1: 00000000000000000000000000000000:1F92 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1033630 1 000000008a393ab5 100 0 0 10 0
";
    const UDP4_LINE: &str = " 5889: 00000000:14EA 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 1033632 2 00000000c85e6eb4 0       ";
    const UDP6_MAPPED_LINE: &str = " 5888: 0000000000000000FFFF00000100007F:14E9 00000000000000000000000000000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 1033631 2 000000008871dd78 0";

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn sock(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn header_lines_are_not_sockets() {
        for header in [TCP4_LINES, TCP6_LINES] {
            assert_eq!(parse_proc_net_line(header.lines().next().unwrap()), None);
        }
    }

    #[cfg(target_endian = "little")]
    #[test]
    fn ipv4_lines_parse_with_the_address_in_host_byte_order() {
        let lines: Vec<_> = TCP4_LINES.lines().filter_map(parse_proc_net_line).collect();
        assert_eq!(
            lines,
            vec![
                ProcNetSocket {
                    local: sock("0.0.0.0:2024"),
                    state: TCP_LISTEN,
                    inode: 1064
                },
                ProcNetSocket {
                    local: sock("127.0.0.1:8080"),
                    state: TCP_LISTEN,
                    inode: 1033628
                },
                ProcNetSocket {
                    local: sock("127.0.0.1:8080"),
                    state: 0x01,
                    inode: 1033700
                },
            ]
        );
        assert_eq!(
            parse_proc_net_line(UDP4_LINE),
            Some(ProcNetSocket {
                local: sock("0.0.0.0:5354"),
                state: 0x07,
                inode: 1033632
            })
        );
    }

    #[cfg(target_endian = "little")]
    #[test]
    fn ipv6_lines_parse_word_by_word_in_host_byte_order() {
        let lines: Vec<_> = TCP6_LINES.lines().filter_map(parse_proc_net_line).collect();
        assert_eq!(lines[0].local, sock("[::1]:8081"));
        assert_eq!(lines[0].inode, 1033629);
        assert_eq!(lines[1].local, sock("[::]:8082"));
        assert_eq!(
            parse_proc_net_line(UDP6_MAPPED_LINE).unwrap().local,
            sock("[::ffff:127.0.0.1]:5353")
        );
        let line = "   0: 000000FD000000000000000005000000:0050 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 77 1 0 100 0 0 10 0";
        assert_eq!(
            parse_proc_net_line(line).unwrap().local,
            sock("[fd00::5]:80")
        );
    }

    #[test]
    fn malformed_lines_are_skipped() {
        for line in [
            "",
            "garbage",
            "   0: 0100007F:1F90",
            "   0: 0100007F:1F90 00000000:0000 0A 0 0 0 0 0",
            "   0: 0100007F:1F9 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 1 1",
            "   0: 0100007G:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 1 1",
            "   0: +100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 1 1",
            "   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 -1 1",
            "   0: 0100007F0:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 1 1",
            "   x: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 1 1",
            "   0: 0100007F:1F90 00000000:0000 A 00000000:00000000 00:00000000 00000000 0 0 1 1",
        ] {
            assert_eq!(parse_proc_net_line(line), None, "{line:?}");
        }
    }

    #[test]
    fn the_same_address_or_a_wildcard_of_the_same_family_conflicts() {
        assert_eq!(conflict_rank(ip("127.0.0.1"), ip("127.0.0.1")), Some(0));
        assert_eq!(conflict_rank(ip("0.0.0.0"), ip("127.0.0.1")), Some(0));
        assert_eq!(conflict_rank(ip("127.0.0.1"), ip("0.0.0.0")), Some(0));
        assert_eq!(conflict_rank(ip("::"), ip("::1")), Some(0));
        assert_eq!(conflict_rank(ip("::1"), ip("::")), Some(0));
        assert_eq!(conflict_rank(ip("127.0.0.1"), ip("127.0.0.2")), None);
        assert_eq!(conflict_rank(ip("::1"), ip("fd00::1")), None);
    }

    #[test]
    fn an_ipv6_wildcard_holds_ipv4_ports_too_but_ranks_below_its_own_family() {
        assert_eq!(conflict_rank(ip("::"), ip("127.0.0.1")), Some(1));
        assert_eq!(conflict_rank(ip("127.0.0.1"), ip("::")), Some(1));
        assert_eq!(conflict_rank(ip("::1"), ip("127.0.0.1")), None);
        assert_eq!(conflict_rank(ip("0.0.0.0"), ip("::1")), None);
    }

    #[test]
    fn an_ipv4_mapped_bind_is_an_ipv4_bind() {
        assert_eq!(
            conflict_rank(ip("::ffff:127.0.0.1"), ip("127.0.0.1")),
            Some(0)
        );
        assert_eq!(
            conflict_rank(ip("::ffff:127.0.0.1"), ip("0.0.0.0")),
            Some(0)
        );
        assert_eq!(conflict_rank(ip("::ffff:127.0.0.1"), ip("10.0.0.1")), None);
    }

    #[cfg(target_endian = "little")]
    #[test]
    fn only_listening_tcp_sockets_hold_a_tcp_port() {
        let tables = [TCP4_LINES, TCP6_LINES];
        assert_eq!(
            holding_inode(tables, Protocol::Tcp, ip("127.0.0.1"), 8080),
            Some(1033628)
        );
        assert_eq!(
            holding_inode(tables, Protocol::Tcp, ip("127.0.0.1"), 50000),
            None,
            "the established connection's remote port is not held"
        );
        assert_eq!(
            holding_inode(tables, Protocol::Tcp, ip("127.0.0.1"), 2024),
            Some(1064)
        );
    }

    #[cfg(target_endian = "little")]
    #[test]
    fn a_same_family_holder_is_preferred_to_a_dual_stack_one() {
        let line4 =
            "   0: 00000000:1F92 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 555 1";
        let tables = [TCP6_LINES, line4];
        assert_eq!(
            holding_inode(tables, Protocol::Tcp, ip("127.0.0.1"), 8082),
            Some(555)
        );
        assert_eq!(
            holding_inode([TCP6_LINES], Protocol::Tcp, ip("127.0.0.1"), 8082),
            Some(1033630)
        );
    }

    #[cfg(target_endian = "little")]
    #[test]
    fn any_bound_udp_socket_holds_a_udp_port() {
        let tables = [UDP4_LINE, UDP6_MAPPED_LINE];
        assert_eq!(
            holding_inode(tables, Protocol::Udp, ip("10.1.2.3"), 5354),
            Some(1033632)
        );
        assert_eq!(
            holding_inode(tables, Protocol::Udp, ip("127.0.0.1"), 5353),
            Some(1033631)
        );
        assert_eq!(
            holding_inode(tables, Protocol::Tcp, ip("0.0.0.0"), 5354),
            None,
            "a UDP socket in state 07 is no TCP listener"
        );
    }

    #[test]
    fn port_0_is_held_by_nobody() {
        assert_eq!(
            holding_inode([TCP4_LINES], Protocol::Tcp, ip("0.0.0.0"), 0),
            None
        );
        assert_eq!(holder_of(Protocol::Tcp, ip("0.0.0.0"), 0), None);
    }

    fn own_comm() -> String {
        fs::read_to_string("/proc/self/comm")
            .unwrap()
            .trim_end()
            .to_string()
    }

    #[test]
    fn a_tcp_listener_of_this_process_is_found_with_its_pid_and_command() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let holder = holder_of(Protocol::Tcp, ip("127.0.0.1"), port).expect("held");
        assert_eq!(holder.pid, Some(std::process::id()));
        assert_eq!(holder.command, Some(own_comm()));
        assert_eq!(
            holder.to_string(),
            format!("pid {} ({})", std::process::id(), own_comm())
        );
        let wildcard = holder_of(Protocol::Tcp, ip("0.0.0.0"), port).expect("held");
        assert_eq!(wildcard.inode, holder.inode);
        let udp = holder_of(Protocol::Udp, ip("127.0.0.1"), port);
        assert!(
            udp.is_none_or(|u| u.inode != holder.inode),
            "a TCP listener never answers for UDP"
        );
    }

    #[test]
    fn a_udp_socket_of_this_process_is_found() {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = socket.local_addr().unwrap().port();
        let holder = holder_of(Protocol::Udp, ip("127.0.0.1"), port).expect("held");
        assert_eq!(holder.pid, Some(std::process::id()));
        assert_eq!(holder.command, Some(own_comm()));
    }

    #[test]
    fn an_ipv6_wildcard_listener_is_found_for_an_ipv4_address() {
        let listener = TcpListener::bind("[::]:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let holder = holder_of(Protocol::Tcp, ip("127.0.0.1"), port).expect("held");
        assert_eq!(holder.pid, Some(std::process::id()));
        let v6 = holder_of(Protocol::Tcp, ip("::1"), port).expect("held");
        assert_eq!(v6.inode, holder.inode);
    }

    #[test]
    fn a_port_nobody_holds_gives_none() {
        let (port, other) = {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let port = listener.local_addr().unwrap().port();
            let other = holder_of(Protocol::Tcp, ip("127.0.0.2"), port);
            (port, other)
        };
        assert_eq!(other, None, "127.0.0.1 does not hold 127.0.0.2");
        assert_eq!(holder_of(Protocol::Tcp, ip("127.0.0.1"), port), None);
    }

    #[test]
    fn a_holder_without_a_visible_process_says_so() {
        let h = PortHolder {
            pid: None,
            command: None,
            inode: 42,
        };
        assert_eq!(
            h.to_string(),
            "a process this user cannot see (socket inode 42)"
        );
    }

    #[test]
    fn the_unprivileged_port_start_is_read_from_the_sysctl() {
        assert_eq!(parse_unprivileged_port_start("1024\n"), Some(1024));
        assert_eq!(parse_unprivileged_port_start("0"), Some(0));
        assert_eq!(parse_unprivileged_port_start("70000"), Some(u16::MAX));
        assert_eq!(parse_unprivileged_port_start("x"), None);
        let want = fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
            .ok()
            .and_then(|t| parse_unprivileged_port_start(&t))
            .unwrap_or(DEFAULT_UNPRIVILEGED_PORT_START);
        assert_eq!(unprivileged_port_start(), want);
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        #[test]
        fn parsing_never_panics_on_arbitrary_text(line in "\\PC{0,200}") {
            let _ = parse_proc_net_line(&line);
        }

        #[test]
        fn parsing_never_panics_on_lines_shaped_like_the_tables(
            fields in proptest::collection::vec("[0-9A-Fa-f:x+-]{0,40}", 0..14),
        ) {
            let line = format!("   0: {}", fields.join(" "));
            let _ = parse_proc_net_line(&line);
            let _ = holding_inode([line.as_str()], Protocol::Tcp, IpAddr::V4(Ipv4Addr::LOCALHOST), 80);
        }

        #[test]
        fn every_printed_address_parses_back(
            v6 in any::<bool>(), a in any::<Ipv4Addr>(), b in any::<Ipv6Addr>(),
            port in any::<u16>(), state in any::<u8>(), inode in any::<u64>(),
        ) {
            let (hex, ip) = if v6 {
                let hex: String = b
                    .octets()
                    .chunks_exact(4)
                    .map(|w| format!("{:08X}", u32::from_ne_bytes([w[0], w[1], w[2], w[3]])))
                    .collect();
                (hex, IpAddr::V6(b))
            } else {
                (format!("{:08X}", u32::from_ne_bytes(a.octets())), IpAddr::V4(a))
            };
            let line = format!(
                "  12: {hex}:{port:04X} {hex}:0000 {state:02X} 00000000:00000000 00:00000000 00000000  1000        0 {inode} 1 0000000000000000 100 0 0 10 0"
            );
            prop_assert_eq!(
                parse_proc_net_line(&line),
                Some(ProcNetSocket { local: SocketAddr::new(ip, port), state, inode })
            );
        }
    }
}
