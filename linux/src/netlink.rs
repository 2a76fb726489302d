//! A small synchronous rtnetlink client: just the link, address and route
//! operations a sandbox interface needs.
//!
//! **Why hand-built messages.** We need about ten requests, each a fixed
//! header and two or three attributes; building them takes a page of code
//! and no dependency, where `rtnetlink` brings tokio (and helpers that fork)
//! and `netlink-packet-route` a large type tree for little gain. The socket
//! is usually created by the namespace helper inside the sandbox
//! ([`super::NsSession::netlink_socket`]): a netlink socket acts on the
//! namespace it was created in, from whichever thread uses it afterwards.
//!
//! Requests ask for extended acks (`NETLINK_EXT_ACK`), so the kernel's own
//! explanation, when it has one, is appended to error messages.

use super::error::{RealError, Result};
use ipnetwork::IpNetwork;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Mutex;
use switchyard_switch::mac::MacAddr;

/// Message types, flags and attribute numbers from `linux/netlink.h`,
/// `linux/rtnetlink.h`, `linux/if_link.h` and `linux/if_addr.h`.
mod consts {
    pub const NLMSG_ERROR: u16 = 2;
    pub const NLMSG_DONE: u16 = 3;
    pub const RTM_NEWLINK: u16 = 16;
    pub const RTM_GETLINK: u16 = 18;
    pub const RTM_SETLINK: u16 = 19;
    pub const RTM_NEWADDR: u16 = 20;
    pub const RTM_DELADDR: u16 = 21;
    pub const RTM_GETADDR: u16 = 22;
    pub const RTM_NEWROUTE: u16 = 24;
    pub const RTM_DELROUTE: u16 = 25;
    pub const RTM_GETROUTE: u16 = 26;

    pub const NLM_F_REQUEST: u16 = 0x1;
    pub const NLM_F_ACK: u16 = 0x4;
    pub const NLM_F_DUMP: u16 = 0x300;
    pub const NLM_F_REPLACE: u16 = 0x100;
    pub const NLM_F_EXCL: u16 = 0x200;
    pub const NLM_F_CREATE: u16 = 0x400;
    /// In an error message: the original request was not echoed in full.
    pub const NLM_F_CAPPED: u16 = 0x100;
    /// In an error message: extended-ack attributes follow.
    pub const NLM_F_ACK_TLVS: u16 = 0x200;
    pub const NLMSGERR_ATTR_MSG: u16 = 1;

    pub const SOL_NETLINK: i32 = 270;
    pub const NETLINK_CAP_ACK: i32 = 10;
    pub const NETLINK_EXT_ACK: i32 = 11;

    pub const IFLA_ADDRESS: u16 = 1;
    pub const IFLA_IFNAME: u16 = 3;
    pub const IFLA_MTU: u16 = 4;
    pub const IFLA_TXQLEN: u16 = 13;

    pub const IFA_ADDRESS: u16 = 1;
    pub const IFA_LOCAL: u16 = 2;
    pub const IFA_BROADCAST: u16 = 4;
    pub const IFA_FLAGS: u16 = 8;
    pub const IFA_F_NODAD: u32 = 0x02;

    pub const RTA_DST: u16 = 1;
    pub const RTA_OIF: u16 = 4;
    pub const RTA_GATEWAY: u16 = 5;
    pub const RTA_TABLE: u16 = 15;
    pub const RT_TABLE_MAIN: u8 = 254;
    pub const RTPROT_BOOT: u8 = 3;
    pub const RT_SCOPE_UNIVERSE: u8 = 0;
    pub const RT_SCOPE_LINK: u8 = 253;
    pub const RT_SCOPE_HOST: u8 = 254;
    pub const RTN_UNICAST: u8 = 1;

    pub const IFF_UP: u32 = 0x1;
}
use consts::*;

const HEADER_LEN: usize = 16;

/// An IP version, for operations that act on all routes of one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IpFamily {
    /// IPv4 (`AF_INET`).
    V4,
    /// IPv6 (`AF_INET6`).
    V6,
}

impl IpFamily {
    fn af(self) -> u8 {
        match self {
            IpFamily::V4 => libc::AF_INET as u8,
            IpFamily::V6 => libc::AF_INET6 as u8,
        }
    }

    fn name(self) -> &'static str {
        match self {
            IpFamily::V4 => "IPv4",
            IpFamily::V6 => "IPv6",
        }
    }

    fn of(ip: IpAddr) -> IpFamily {
        if ip.is_ipv4() {
            IpFamily::V4
        } else {
            IpFamily::V6
        }
    }
}

/// One network interface as `list_links` reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkInfo {
    /// Interface index.
    pub index: u32,
    /// Interface name.
    pub name: String,
    /// Hardware address, for links that have a 6-byte one.
    pub mac: Option<MacAddr>,
    /// MTU.
    pub mtu: u32,
    /// Transmit queue length.
    pub txqlen: u32,
    /// Administratively up (`IFF_UP`).
    pub up: bool,
}

/// A default route in the main table, as `list_default_routes` reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DefaultRoute {
    /// Next hop, if the route has one.
    pub gateway: Option<IpAddr>,
    /// Outgoing interface index.
    pub index: u32,
}

/// The kernel's refusal of a request.
struct KernelError {
    errno: i32,
    ext: Option<String>,
}

impl KernelError {
    fn detail(&self) -> String {
        self.ext
            .as_ref()
            .map(|m| format!(" (kernel says: {m})"))
            .unwrap_or_default()
    }
}

/// A request under construction: header, fixed part, attributes.
struct Message {
    buf: Vec<u8>,
}

impl Message {
    fn new(ty: u16, flags: u16) -> Message {
        let mut buf = vec![0u8; HEADER_LEN];
        buf[4..6].copy_from_slice(&ty.to_ne_bytes());
        buf[6..8].copy_from_slice(&(flags | NLM_F_REQUEST).to_ne_bytes());
        Message { buf }
    }

    fn pad(&mut self) {
        while !self.buf.len().is_multiple_of(4) {
            self.buf.push(0);
        }
    }

    fn fixed(mut self, bytes: &[u8]) -> Message {
        self.buf.extend_from_slice(bytes);
        self.pad();
        self
    }

    fn attr(mut self, ty: u16, data: &[u8]) -> Message {
        self.buf
            .extend_from_slice(&((4 + data.len()) as u16).to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(data);
        self.pad();
        self
    }

    fn attr_u32(self, ty: u16, v: u32) -> Message {
        self.attr(ty, &v.to_ne_bytes())
    }

    fn finish(mut self, seq: u32) -> Vec<u8> {
        let len = self.buf.len() as u32;
        self.buf[0..4].copy_from_slice(&len.to_ne_bytes());
        self.buf[8..12].copy_from_slice(&seq.to_ne_bytes());
        self.buf
    }
}

fn ifinfomsg(index: u32, flags: u32, change: u32) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[0] = libc::AF_UNSPEC as u8;
    b[4..8].copy_from_slice(&(index as i32).to_ne_bytes());
    b[8..12].copy_from_slice(&flags.to_ne_bytes());
    b[12..16].copy_from_slice(&change.to_ne_bytes());
    b
}

fn ip_bytes(ip: IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

fn ip_from(family: u8, data: &[u8]) -> Option<IpAddr> {
    if family == libc::AF_INET as u8 && data.len() == 4 {
        Some(IpAddr::V4(Ipv4Addr::new(
            data[0], data[1], data[2], data[3],
        )))
    } else if family == libc::AF_INET6 as u8 && data.len() == 16 {
        let mut o = [0u8; 16];
        o.copy_from_slice(data);
        Some(IpAddr::V6(Ipv6Addr::from(o)))
    } else {
        None
    }
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 4)
        .map(|s| u32::from_ne_bytes([s[0], s[1], s[2], s[3]]))
        .unwrap_or(0)
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    b.get(at..at + 2)
        .map(|s| u16::from_ne_bytes([s[0], s[1]]))
        .unwrap_or(0)
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// Iterates `(type, payload)` over a run of route attributes.
fn attrs(mut b: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        if b.len() < 4 {
            return None;
        }
        let len = u16_at(b, 0) as usize;
        let ty = u16_at(b, 2) & 0x3fff;
        if len < 4 || len > b.len() {
            return None;
        }
        let data = &b[4..len];
        b = &b[align4(len).min(b.len())..];
        Some((ty, data))
    })
}

fn c_string(data: &[u8]) -> String {
    let end = data.iter().position(|&c| c == 0).unwrap_or(data.len());
    String::from_utf8_lossy(&data[..end]).into_owned()
}

/// A route-netlink socket and the requests we make on it. Safe to share
/// between threads: each exchange holds a lock, so replies never interleave.
pub struct Netlink {
    fd: OwnedFd,
    seq: Mutex<u32>,
}

impl std::fmt::Debug for Netlink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Netlink")
            .field("fd", &self.fd.as_raw_fd())
            .finish()
    }
}

const PERM_HINT: &str = "; changing a namespace's network settings needs CAP_NET_ADMIN over it: run as root, or as the user that owns the sandbox's user namespace";

impl Netlink {
    /// Wraps a `NETLINK_ROUTE` socket (from [`super::NsSession::netlink_socket`],
    /// or [`Netlink::open_here`]). Operations act on the namespace the
    /// socket was created in.
    pub fn new(fd: OwnedFd) -> Result<Netlink> {
        let one: libc::c_int = 1;
        for opt in [NETLINK_EXT_ACK, NETLINK_CAP_ACK] {
            // Best effort: older kernels simply give terser errors.
            // SAFETY: setsockopt with a pointer to an int of the right size.
            unsafe {
                libc::setsockopt(
                    fd.as_raw_fd(),
                    SOL_NETLINK,
                    opt,
                    &one as *const libc::c_int as *const libc::c_void,
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                )
            };
        }
        // The kernel answers at once; a bound keeps a surprise from hanging
        // the control plane.
        super::nsenter::set_receive_timeout(fd.as_raw_fd(), super::nsenter::REPLY_TIMEOUT_SECS);
        Ok(Netlink {
            fd,
            seq: Mutex::new(0),
        })
    }

    /// A socket for the calling thread's own network namespace (the
    /// holder uses it for `lo`; host-mode code may too).
    pub fn open_here() -> Result<Netlink> {
        // SAFETY: plain socket(2).
        let raw = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_ROUTE,
            )
        };
        if raw < 0 {
            return Err(RealError::os(
                "cannot open a netlink socket",
                io::Error::last_os_error(),
                "",
            ));
        }
        // SAFETY: fresh descriptor.
        Netlink::new(unsafe { OwnedFd::from_raw_fd(raw) })
    }

    /// Sends `msg` and feeds every reply message (other than acks, errors
    /// and the end of a dump) to `each`. The outer error is I/O or a
    /// malformed reply; the inner one is the kernel saying no.
    fn exchange(
        &self,
        op: &str,
        msg: Message,
        mut each: impl FnMut(u16, &[u8]),
    ) -> Result<std::result::Result<(), KernelError>> {
        let mut seq_guard = self.seq.lock().unwrap_or_else(|p| p.into_inner());
        *seq_guard = seq_guard.wrapping_add(1);
        let seq = *seq_guard;
        let bytes = msg.finish(seq);
        // SAFETY: an all-zero sockaddr_nl is the kernel's address (pid 0).
        let mut kernel: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        kernel.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        loop {
            // SAFETY: buffer and address are valid for the given lengths.
            let r = unsafe {
                libc::sendto(
                    self.fd.as_raw_fd(),
                    bytes.as_ptr() as *const libc::c_void,
                    bytes.len(),
                    0,
                    &kernel as *const libc::sockaddr_nl as *const libc::sockaddr,
                    std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
                )
            };
            if r >= 0 {
                break;
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(RealError::os(
                    format!("netlink {op}: cannot send the request"),
                    e,
                    "",
                ));
            }
        }
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            // SAFETY: buffer valid for its length.
            let n = unsafe {
                libc::recv(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr() as *mut libc::c_void,
                    buf.len(),
                    0,
                )
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(RealError::os(
                    format!("netlink {op}: cannot read the reply"),
                    e,
                    "",
                ));
            }
            let mut rest = &buf[..n as usize];
            while rest.len() >= HEADER_LEN {
                let len = u32_at(rest, 0) as usize;
                if len < HEADER_LEN || len > rest.len() {
                    return Err(RealError::NetlinkProtocol {
                        op: op.to_string(),
                        problem: format!("bad message length {len}"),
                    });
                }
                let ty = u16_at(rest, 4);
                let flags = u16_at(rest, 6);
                let mseq = u32_at(rest, 8);
                let payload = &rest[HEADER_LEN..len];
                rest = &rest[align4(len).min(rest.len())..];
                if mseq != seq {
                    continue; // a late reply to an earlier, abandoned request
                }
                match ty {
                    NLMSG_ERROR => {
                        let errno = -(u32_at(payload, 0) as i32);
                        if errno == 0 {
                            return Ok(Ok(()));
                        }
                        return Ok(Err(KernelError {
                            errno,
                            ext: ext_ack_message(payload, flags),
                        }));
                    }
                    NLMSG_DONE => {
                        let code = u32_at(payload, 0) as i32;
                        if code < 0 {
                            return Ok(Err(KernelError {
                                errno: -code,
                                ext: None,
                            }));
                        }
                        return Ok(Ok(()));
                    }
                    _ => {
                        each(ty, payload);
                    }
                }
            }
        }
    }

    fn fail(&self, op: String, e: KernelError, hint: &'static str) -> RealError {
        let hint = if e.errno == libc::EPERM {
            PERM_HINT
        } else {
            hint
        };
        RealError::Netlink {
            op,
            source: io::Error::from_raw_os_error(e.errno),
            detail: e.detail(),
            hint,
        }
    }

    /// A name for messages: the interface's name, or `#index`.
    fn name_of(&self, index: u32) -> String {
        self.link(index)
            .map(|l| l.name)
            .unwrap_or_else(|_| format!("#{index}"))
    }

    fn get_link(&self, msg: Message, what: &str) -> Result<LinkInfo> {
        let mut found = None;
        let r = self.exchange(what, msg, |ty, p| {
            if ty == RTM_NEWLINK && found.is_none() {
                found = parse_link(p);
            }
        })?;
        match r {
            Ok(()) => found.ok_or_else(|| RealError::NetlinkProtocol {
                op: what.to_string(),
                problem: "no link in the reply".into(),
            }),
            Err(e) if e.errno == libc::ENODEV => Err(RealError::NoSuchLink {
                name: what.to_string(),
            }),
            Err(e) => Err(self.fail(format!("get link {what}"), e, "")),
        }
    }

    /// The index of the interface `name`.
    pub fn link_index(&self, name: &str) -> Result<u32> {
        super::tap::validate_ifname(name)?;
        let mut n = name.as_bytes().to_vec();
        n.push(0);
        let msg = Message::new(RTM_GETLINK, NLM_F_ACK)
            .fixed(&ifinfomsg(0, 0, 0))
            .attr(IFLA_IFNAME, &n);
        self.get_link(msg, name).map(|l| l.index)
    }

    /// Everything `list_links` knows about one interface.
    pub fn link(&self, index: u32) -> Result<LinkInfo> {
        let msg = Message::new(RTM_GETLINK, NLM_F_ACK).fixed(&ifinfomsg(index, 0, 0));
        self.get_link(msg, &format!("#{index}"))
    }

    fn set_link(&self, index: u32, what: &str, msg: Message) -> Result<()> {
        match self.exchange(what, msg, |_, _| {})? {
            Ok(()) => Ok(()),
            Err(e) if e.errno == libc::ENODEV => Err(RealError::NoSuchLink {
                name: format!("#{index}"),
            }),
            Err(e) => Err(self.fail(format!("{what} of {}", self.name_of(index)), e, "")),
        }
    }

    /// Sets the hardware address (Docker derives it from the IPv4 address).
    pub fn set_link_mac(&self, index: u32, mac: MacAddr) -> Result<()> {
        let msg = Message::new(RTM_SETLINK, NLM_F_ACK)
            .fixed(&ifinfomsg(index, 0, 0))
            .attr(IFLA_ADDRESS, &mac.0);
        self.set_link(index, &format!("set MAC address {mac}"), msg)
    }

    /// Sets the MTU.
    pub fn set_link_mtu(&self, index: u32, mtu: u32) -> Result<()> {
        let msg = Message::new(RTM_SETLINK, NLM_F_ACK)
            .fixed(&ifinfomsg(index, 0, 0))
            .attr_u32(IFLA_MTU, mtu);
        self.set_link(index, &format!("set MTU {mtu}"), msg)
    }

    /// Sets the transmit queue length (packets the kernel queues for us).
    pub fn set_link_txqlen(&self, index: u32, txqlen: u32) -> Result<()> {
        let msg = Message::new(RTM_SETLINK, NLM_F_ACK)
            .fixed(&ifinfomsg(index, 0, 0))
            .attr_u32(IFLA_TXQLEN, txqlen);
        self.set_link(index, &format!("set txqueuelen {txqlen}"), msg)
    }

    /// Brings the interface up.
    pub fn set_link_up(&self, index: u32) -> Result<()> {
        let msg = Message::new(RTM_SETLINK, NLM_F_ACK).fixed(&ifinfomsg(index, IFF_UP, IFF_UP));
        self.set_link(index, "set up", msg)
    }

    /// Takes the interface down.
    pub fn set_link_down(&self, index: u32) -> Result<()> {
        let msg = Message::new(RTM_SETLINK, NLM_F_ACK).fixed(&ifinfomsg(index, 0, IFF_UP));
        self.set_link(index, "set down", msg)
    }

    /// Adds an address. IPv4 gets the subnet's broadcast address (as
    /// `ip addr add ... brd +`); IPv6 skips duplicate address detection
    /// (`IFA_F_NODAD`), so it is usable at once rather than after ~1 s of
    /// "tentative" state, and we own the subnet's addresses anyway.
    pub fn add_address(&self, index: u32, addr: IpNetwork) -> Result<()> {
        let ip = addr.ip();
        let scope = match ip {
            IpAddr::V4(a) if a.is_loopback() => RT_SCOPE_HOST,
            IpAddr::V6(a) if a.is_loopback() => RT_SCOPE_HOST,
            IpAddr::V6(a) if a.segments()[0] & 0xffc0 == 0xfe80 => RT_SCOPE_LINK,
            _ => RT_SCOPE_UNIVERSE,
        };
        let family = IpFamily::of(ip).af();
        let flags_byte = if ip.is_ipv6() { IFA_F_NODAD as u8 } else { 0 };
        let mut fixed = [0u8; 8];
        fixed[0] = family;
        fixed[1] = addr.prefix();
        fixed[2] = flags_byte;
        fixed[3] = scope;
        fixed[4..8].copy_from_slice(&index.to_ne_bytes());
        let mut msg = Message::new(RTM_NEWADDR, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL)
            .fixed(&fixed)
            .attr(IFA_LOCAL, &ip_bytes(ip))
            .attr(IFA_ADDRESS, &ip_bytes(ip));
        match addr {
            IpNetwork::V4(v4) if v4.prefix() < 31 => {
                msg = msg.attr(IFA_BROADCAST, &v4.broadcast().octets());
            }
            IpNetwork::V6(_) => {
                msg = msg.attr_u32(IFA_FLAGS, IFA_F_NODAD);
            }
            _ => {}
        }
        match self.exchange("add address", msg, |_, _| {})? {
            Ok(()) => Ok(()),
            Err(e) if e.errno == libc::EEXIST => Err(RealError::AddressExists {
                addr: addr.to_string(),
                ifname: self.name_of(index),
            }),
            Err(e) if e.errno == libc::ENODEV => Err(RealError::NoSuchLink {
                name: format!("#{index}"),
            }),
            Err(e) => Err(self.fail(
                format!("add address {addr} to {}", self.name_of(index)),
                e,
                "",
            )),
        }
    }

    /// Removes address `addr` from interface `index`; absent is fine.
    pub fn del_address(&self, index: u32, addr: IpNetwork) -> Result<()> {
        let ip = addr.ip();
        let mut fixed = [0u8; 8];
        fixed[0] = IpFamily::of(ip).af();
        fixed[1] = addr.prefix();
        fixed[4..8].copy_from_slice(&index.to_ne_bytes());
        let msg = Message::new(RTM_DELADDR, NLM_F_ACK)
            .fixed(&fixed)
            .attr(IFA_LOCAL, &ip_bytes(ip));
        match self.exchange("delete address", msg, |_, _| {})? {
            Ok(()) => Ok(()),
            Err(e) if e.errno == libc::EADDRNOTAVAIL || e.errno == libc::ENODEV => Ok(()),
            Err(e) => Err(self.fail(
                format!("delete address {addr} from {}", self.name_of(index)),
                e,
                "",
            )),
        }
    }

    fn default_route_msg(&self, ty: u16, flags: u16, family: IpFamily) -> Message {
        let mut rt = [0u8; 12];
        rt[0] = family.af();
        rt[4] = RT_TABLE_MAIN;
        if ty == RTM_NEWROUTE {
            rt[5] = RTPROT_BOOT;
            rt[6] = RT_SCOPE_UNIVERSE;
            rt[7] = RTN_UNICAST;
        }
        Message::new(ty, flags).fixed(&rt)
    }

    fn set_default_route(&self, gateway: IpAddr, index: u32, flags: u16) -> Result<()> {
        let family = IpFamily::of(gateway);
        let msg = self
            .default_route_msg(RTM_NEWROUTE, NLM_F_ACK | NLM_F_CREATE | flags, family)
            .attr(RTA_GATEWAY, &ip_bytes(gateway))
            .attr_u32(RTA_OIF, index);
        match self.exchange("add default route", msg, |_, _| {})? {
            Ok(()) => Ok(()),
            Err(e) if e.errno == libc::EEXIST => Err(RealError::RouteExists {
                family: family.name(),
            }),
            Err(e) if e.errno == libc::ENETUNREACH || e.errno == libc::EHOSTUNREACH => {
                Err(RealError::GatewayUnreachable {
                    gateway: gateway.to_string(),
                    ifname: self.name_of(index),
                })
            }
            Err(e) => Err(self.fail(
                format!(
                    "add default route via {gateway} dev {}",
                    self.name_of(index)
                ),
                e,
                "; is the interface up and does it have an address in the gateway's subnet?",
            )),
        }
    }

    /// Adds the default route of the gateway's family via `gateway` on
    /// interface `index`; fails if one exists already.
    pub fn add_default_route(&self, gateway: IpAddr, index: u32) -> Result<()> {
        self.set_default_route(gateway, index, NLM_F_EXCL)
    }

    /// Adds or replaces the default route of the gateway's family (what a
    /// restarted daemon re-applying a sandbox's plan wants).
    pub fn replace_default_route(&self, gateway: IpAddr, index: u32) -> Result<()> {
        self.set_default_route(gateway, index, NLM_F_REPLACE)
    }

    /// Deletes the default route of a family from the main table; absent is
    /// fine.
    pub fn del_default_route(&self, family: IpFamily) -> Result<()> {
        let msg = self.default_route_msg(RTM_DELROUTE, NLM_F_ACK, family);
        match self.exchange("delete default route", msg, |_, _| {})? {
            Ok(()) => Ok(()),
            Err(e) if e.errno == libc::ESRCH => Ok(()),
            Err(e) => Err(self.fail(format!("delete the default {} route", family.name()), e, "")),
        }
    }

    /// All interfaces of the namespace.
    pub fn list_links(&self) -> Result<Vec<LinkInfo>> {
        let msg = Message::new(RTM_GETLINK, NLM_F_DUMP).fixed(&ifinfomsg(0, 0, 0));
        let mut out = Vec::new();
        let r = self.exchange("list links", msg, |ty, p| {
            if ty == RTM_NEWLINK {
                if let Some(l) = parse_link(p) {
                    out.push(l);
                }
            }
        })?;
        r.map_err(|e| self.fail("list links".into(), e, ""))?;
        Ok(out)
    }

    /// The addresses on interface `index`, with their prefixes.
    pub fn list_addresses(&self, index: u32) -> Result<Vec<IpNetwork>> {
        let msg = Message::new(RTM_GETADDR, NLM_F_DUMP).fixed(&[
            libc::AF_UNSPEC as u8,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
        ]);
        let mut out = Vec::new();
        let r = self.exchange("list addresses", msg, |ty, p| {
            if ty != RTM_NEWADDR || p.len() < 8 || u32_at(p, 4) != index {
                return;
            }
            let (family, prefix) = (p[0], p[1]);
            let mut local = None;
            let mut address = None;
            for (t, d) in attrs(&p[8..]) {
                match t {
                    IFA_LOCAL => local = ip_from(family, d),
                    IFA_ADDRESS => address = ip_from(family, d),
                    _ => {}
                }
            }
            if let Some(ip) = local.or(address) {
                if let Ok(n) = IpNetwork::new(ip, prefix) {
                    out.push(n);
                }
            }
        })?;
        r.map_err(|e| self.fail("list addresses".into(), e, ""))?;
        Ok(out)
    }

    /// Default routes of the main table, both families.
    pub fn list_default_routes(&self) -> Result<Vec<DefaultRoute>> {
        let mut out = Vec::new();
        for family in [IpFamily::V4, IpFamily::V6] {
            let msg = self.default_route_msg(RTM_GETROUTE, NLM_F_DUMP, family);
            let r = self.exchange("list routes", msg, |ty, p| {
                if ty != RTM_NEWROUTE || p.len() < 12 || p[1] != 0 || p[7] != RTN_UNICAST {
                    return;
                }
                let mut table = p[4] as u32;
                let mut gateway = None;
                let mut oif = 0;
                let mut has_dst = false;
                for (t, d) in attrs(&p[12..]) {
                    match t {
                        RTA_TABLE => table = u32_at(d, 0),
                        RTA_GATEWAY => gateway = ip_from(p[0], d),
                        RTA_OIF => oif = u32_at(d, 0),
                        RTA_DST => has_dst = d.iter().any(|&b| b != 0),
                        _ => {}
                    }
                }
                if table == RT_TABLE_MAIN as u32 && !has_dst {
                    out.push(DefaultRoute {
                        gateway,
                        index: oif,
                    });
                }
            })?;
            r.map_err(|e| self.fail("list routes".into(), e, ""))?;
        }
        Ok(out)
    }
}

fn parse_link(p: &[u8]) -> Option<LinkInfo> {
    if p.len() < 16 {
        return None;
    }
    let index = u32_at(p, 4);
    let flags = u32_at(p, 8);
    let mut info = LinkInfo {
        index,
        name: String::new(),
        mac: None,
        mtu: 0,
        txqlen: 0,
        up: flags & IFF_UP != 0,
    };
    for (t, d) in attrs(&p[16..]) {
        match t {
            IFLA_IFNAME => info.name = c_string(d),
            IFLA_ADDRESS if d.len() == 6 => {
                let mut m = [0u8; 6];
                m.copy_from_slice(d);
                info.mac = Some(MacAddr(m));
            }
            IFLA_MTU => info.mtu = u32_at(d, 0),
            IFLA_TXQLEN => info.txqlen = u32_at(d, 0),
            _ => {}
        }
    }
    Some(info)
}

/// The kernel's explanation in an extended ack, if any.
fn ext_ack_message(payload: &[u8], flags: u16) -> Option<String> {
    if flags & NLM_F_ACK_TLVS == 0 || payload.len() < 4 + HEADER_LEN {
        return None;
    }
    let orig_len = if flags & NLM_F_CAPPED != 0 {
        HEADER_LEN
    } else {
        align4(u32_at(payload, 4) as usize)
    };
    let tlvs = payload.get(4 + orig_len..)?;
    attrs(tlvs)
        .find(|(t, _)| *t == NLMSGERR_ATTR_MSG)
        .map(|(_, d)| c_string(d))
        .filter(|m| !m.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_are_padded_to_four_bytes() {
        let bytes = Message::new(RTM_GETLINK, 0)
            .fixed(&ifinfomsg(0, 0, 0))
            .attr(IFLA_IFNAME, b"eth0\0")
            .finish(7);
        assert_eq!(bytes.len(), 16 + 16 + 12);
        assert_eq!(u32_at(&bytes, 0) as usize, bytes.len());
        assert_eq!(u32_at(&bytes, 8), 7);
        let parsed: Vec<_> = attrs(&bytes[32..]).collect();
        assert_eq!(parsed, vec![(IFLA_IFNAME, &b"eth0\0"[..])]);
    }

    #[test]
    fn extended_ack_text_is_found_after_a_capped_request() {
        let mut p = Vec::new();
        p.extend_from_slice(&(-(libc::EEXIST)).to_ne_bytes());
        p.extend_from_slice(&[0u8; HEADER_LEN]);
        let tlv = Message { buf: Vec::new() }
            .attr(NLMSGERR_ATTR_MSG, b"File exists\0")
            .buf;
        p.extend_from_slice(&tlv);
        assert_eq!(
            ext_ack_message(&p, NLM_F_CAPPED | NLM_F_ACK_TLVS).as_deref(),
            Some("File exists")
        );
        assert_eq!(ext_ack_message(&p, NLM_F_CAPPED), None);
    }
}
