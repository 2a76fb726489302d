//! Starting applications in containers and reading their results.

use crate::apps::{
    App, AppHandle, AppKind, AppResult, DnsApp, DnsResult, PingApp, PingResult, TcpApp,
    TcpDirection, TcpResult, UdpApp, UdpResult,
};
use crate::container::Role;
use crate::error::SimError;
use crate::world::Sim;
use rand_chacha::rand_core::RngCore;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

/// Where an application sends: a container (its address on a network the
/// sender shares, else its first address) or an IPv4 address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// A container by name.
    Container(String),
    /// An address.
    Ip(Ipv4Addr),
}

impl From<&str> for Target {
    fn from(s: &str) -> Target {
        match s.parse() {
            Ok(ip) => Target::Ip(ip),
            Err(_) => Target::Container(s.to_string()),
        }
    }
}

impl From<String> for Target {
    fn from(s: String) -> Target {
        Target::from(s.as_str())
    }
}

impl From<Ipv4Addr> for Target {
    fn from(ip: Ipv4Addr) -> Target {
        Target::Ip(ip)
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Container(c) => f.write_str(c),
            Target::Ip(ip) => write!(f, "{ip}"),
        }
    }
}

/// `ping`: ICMP echo requests at an interval, counting replies.
#[derive(Clone, Debug)]
pub struct Ping {
    /// The container that pings.
    pub from: String,
    /// What it pings.
    pub to: Target,
    /// Echo requests to send (default 3).
    pub count: u32,
    /// Time between requests (default 1 s).
    pub interval: Duration,
    /// How long to wait for the last reply (default 2 s).
    pub timeout: Duration,
}

impl Ping {
    /// Three pings, one a second, from `from` to `to`.
    pub fn new(from: &str, to: impl Into<Target>) -> Ping {
        Ping {
            from: from.to_string(),
            to: to.into(),
            count: 3,
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(2),
        }
    }

    /// Sets the number of requests: at most 65 536, since each needs its
    /// own 16-bit ICMP sequence number ([`Sim::start`] refuses more).
    pub fn count(mut self, n: u32) -> Ping {
        self.count = n;
        self
    }

    /// Sets the interval.
    pub fn interval(mut self, d: Duration) -> Ping {
        self.interval = d;
        self
    }

    /// Sets the wait for the last reply.
    pub fn timeout(mut self, d: Duration) -> Ping {
        self.timeout = d;
        self
    }
}

/// UDP echo: the target container echoes datagrams back on `port`.
#[derive(Clone, Debug)]
pub struct UdpEcho {
    /// The sending container.
    pub from: String,
    /// The echoing container (or its address).
    pub to: Target,
    /// The echo server's port.
    pub port: u16,
    /// Datagrams to send (default 3).
    pub count: u32,
    /// Payload size in bytes (default 64, at least 4).
    pub size: usize,
    /// Time between datagrams (default 100 ms).
    pub interval: Duration,
    /// How long to wait for the last echo (default 2 s).
    pub timeout: Duration,
}

impl UdpEcho {
    /// Three 64-byte datagrams to `to:port`.
    pub fn new(from: &str, to: impl Into<Target>, port: u16) -> UdpEcho {
        UdpEcho {
            from: from.to_string(),
            to: to.into(),
            port,
            count: 3,
            size: 64,
            interval: Duration::from_millis(100),
            timeout: Duration::from_secs(2),
        }
    }

    /// Sets the number of datagrams.
    pub fn count(mut self, n: u32) -> UdpEcho {
        self.count = n;
        self
    }

    /// Sets the payload size.
    pub fn size(mut self, n: usize) -> UdpEcho {
        self.size = n.max(4);
        self
    }
}

/// A TCP transfer between a client and a listening server.
#[derive(Clone, Debug)]
pub struct TcpTransfer {
    /// The connecting container.
    pub from: String,
    /// The listening container (or its address).
    pub to: Target,
    /// The server's port.
    pub port: u16,
    /// Bytes to transfer.
    pub bytes: u64,
    /// Client sends (`Send`) or server sends (`Fetch`).
    pub direction: TcpDirection,
    /// Give up after this long (default 60 s).
    pub timeout: Duration,
}

impl TcpTransfer {
    /// `from` connects to `to:port` and sends `bytes`.
    pub fn send(from: &str, to: impl Into<Target>, port: u16, bytes: u64) -> TcpTransfer {
        TcpTransfer {
            from: from.to_string(),
            to: to.into(),
            port,
            bytes,
            direction: TcpDirection::Send,
            timeout: Duration::from_secs(60),
        }
    }

    /// `from` connects to `to:port` and receives `bytes` from it.
    pub fn fetch(from: &str, to: impl Into<Target>, port: u16, bytes: u64) -> TcpTransfer {
        TcpTransfer {
            direction: TcpDirection::Fetch,
            ..TcpTransfer::send(from, to, port, bytes)
        }
    }

    /// Sets the deadline.
    pub fn timeout(mut self, d: Duration) -> TcpTransfer {
        self.timeout = d;
        self
    }
}

/// A lookup through the container's embedded resolver (127.0.0.11).
#[derive(Clone, Debug)]
pub struct DnsLookup {
    /// The asking container.
    pub from: String,
    /// The name.
    pub name: String,
    /// Ask for AAAA instead of A.
    pub ipv6: bool,
    /// How long to wait (default 5 s, glibc's).
    pub timeout: Duration,
}

impl DnsLookup {
    /// An A lookup of `name` from `from`.
    pub fn new(from: &str, name: &str) -> DnsLookup {
        DnsLookup {
            from: from.to_string(),
            name: name.to_string(),
            ipv6: false,
            timeout: Duration::from_secs(5),
        }
    }
}

/// Any application, for [`Sim::start`].
#[derive(Clone, Debug)]
pub enum AppSpec {
    /// `ping`.
    Ping(Ping),
    /// UDP echo.
    Udp(UdpEcho),
    /// TCP transfer.
    Tcp(TcpTransfer),
    /// DNS lookup.
    Dns(DnsLookup),
}

impl From<Ping> for AppSpec {
    fn from(p: Ping) -> AppSpec {
        AppSpec::Ping(p)
    }
}
impl From<UdpEcho> for AppSpec {
    fn from(p: UdpEcho) -> AppSpec {
        AppSpec::Udp(p)
    }
}
impl From<TcpTransfer> for AppSpec {
    fn from(p: TcpTransfer) -> AppSpec {
        AppSpec::Tcp(p)
    }
}
impl From<DnsLookup> for AppSpec {
    fn from(p: DnsLookup) -> AppSpec {
        AppSpec::Dns(p)
    }
}

impl Sim {
    /// A running container with a stack, or why not.
    fn runnable(&self, name: &str) -> Result<u32, SimError> {
        let c = self.container_id(name)?;
        let cont = &self.containers[c as usize];
        if !cont.up {
            return Err(SimError::ContainerDown {
                container: name.to_string(),
            });
        }
        if cont.raw {
            return Err(SimError::NoStack {
                container: name.to_string(),
            });
        }
        Ok(c)
    }

    /// Resolves a target from `from`'s point of view: its address and the
    /// container behind it, if any.
    pub(crate) fn resolve_target(
        &self,
        from: u32,
        to: &Target,
    ) -> Result<(Ipv4Addr, Option<u32>), SimError> {
        let shared: Vec<&str> = self.containers[from as usize]
            .nics
            .iter()
            .map(|n| n.network_name.as_str())
            .collect();
        match to {
            Target::Container(name) if !self.container_names.contains_key(name) => {
                // An outside node by name, or a host's outside address.
                if let Some(n) = self.node_id(name) {
                    return Ok((self.internet[n as usize].ip, None));
                }
                if self.host_names.contains_key(name) {
                    return Ok((self.outside_address(name)?, None));
                }
                Err(self
                    .container_id(name)
                    .err()
                    .unwrap_or(SimError::BadTarget {
                        target: name.clone(),
                    }))
            }
            Target::Container(name) => {
                let c = self.container_id(name)?;
                let cont = &self.containers[c as usize];
                let on_shared = cont
                    .nics
                    .iter()
                    .find(|n| n.plan.ipv4.is_some() && shared.contains(&n.network_name.as_str()));
                let nic = on_shared.or_else(|| cont.nics.iter().find(|n| n.plan.ipv4.is_some()));
                let ip = nic
                    .and_then(|n| n.plan.ipv4)
                    .ok_or_else(|| SimError::NoAddress {
                        container: name.clone(),
                        detail: String::new(),
                    })?;
                Ok((ip.ip(), Some(c)))
            }
            Target::Ip(ip) => {
                let mut owner = None;
                for (i, cont) in self.containers.iter().enumerate() {
                    if !cont.up {
                        continue;
                    }
                    for n in &cont.nics {
                        if n.plan.ipv4.is_some_and(|v| v.ip() == *ip) {
                            let shares = shared.contains(&n.network_name.as_str());
                            if owner.is_none() || shares {
                                owner = Some(i as u32);
                            }
                        }
                    }
                }
                Ok((*ip, owner))
            }
        }
    }

    /// Both ends of a client/server application: the client, the target's
    /// address, the client's link towards it, and the server container (if
    /// it is one of ours, up and running a stack) with its link.
    fn peers(&self, from: &str, to: &Target) -> Result<Peers, SimError> {
        let client = self.runnable(from)?;
        let (dst, server) = self.resolve_target(client, to)?;
        let nic = self.route_link(client, dst, from)?;
        let server = server.filter(|&s| {
            let sc = &self.containers[s as usize];
            sc.up && !sc.raw
        });
        let server_nic = server
            .and_then(|s| self.nic_with_ip(s, dst))
            .unwrap_or(u32::MAX);
        Ok(Peers {
            client,
            dst,
            nic,
            server,
            server_nic,
        })
    }

    /// The link of `c`'s interface that holds `ip`.
    fn nic_with_ip(&self, c: u32, ip: Ipv4Addr) -> Option<u32> {
        self.containers[c as usize]
            .nics
            .iter()
            .find(|n| n.plan.ipv4.is_some_and(|v| v.ip() == ip))
            .map(|n| n.link)
    }

    /// The link `c` sends to `dst` through.
    fn route_link(&self, c: u32, dst: Ipv4Addr, from: &str) -> Result<u32, SimError> {
        let cont = &self.containers[c as usize];
        cont.route(dst)
            .map(|i| cont.nics[i].link)
            .ok_or_else(|| SimError::NoAddress {
                container: from.to_string(),
                detail: String::new(),
            })
    }

    fn push_app(&mut self, app: App) -> AppHandle {
        let id = self.apps.len() as u32;
        let client = app.client;
        let server = app.server;
        self.apps.push(app);
        if let Some(s) = server {
            self.containers[s as usize].apps.push((id, Role::Server));
            self.schedule_step(s, self.now);
        }
        self.containers[client as usize]
            .apps
            .push((id, Role::Client));
        self.schedule_step(client, self.now);
        AppHandle(id)
    }

    /// Starts an application now.
    pub fn start(&mut self, spec: impl Into<AppSpec>) -> Result<AppHandle, SimError> {
        let now = self.now;
        match spec.into() {
            AppSpec::Ping(p) => {
                crate::apps::check_ping_count(p.count)?;
                let c = self.runnable(&p.from)?;
                let (dst, _) = self.resolve_target(c, &p.to)?;
                let nic = self.route_link(c, dst, &p.from)?;
                let ident = self.rng.next_u32() as u16;
                Ok(self.push_app(App {
                    label: format!("{} pings {}", p.from, p.to),
                    client: c,
                    server: None,
                    kind: AppKind::Ping(PingApp {
                        dst,
                        count: p.count,
                        interval: p.interval,
                        timeout: p.timeout,
                        ident,
                        nic,
                        socket: None,
                        next_send: now,
                        sent_at: Vec::new(),
                        answered: Vec::new(),
                        result: PingResult {
                            target: Some(dst),
                            done: p.count == 0,
                            ..PingResult::default()
                        },
                    }),
                }))
            }
            AppSpec::Udp(u) if self.node_id(&u.from).is_some() => self.start_external_udp(u),
            AppSpec::Udp(u) => {
                let Peers {
                    client: c,
                    dst,
                    nic,
                    server,
                    server_nic,
                } = self.peers(&u.from, &u.to)?;
                Ok(self.push_app(App {
                    label: format!("{} sends UDP to {}:{}", u.from, u.to, u.port),
                    client: c,
                    server,
                    kind: AppKind::Udp(UdpApp::new(&u, dst, u.port, nic, server_nic, now)),
                }))
            }
            AppSpec::Tcp(t) if self.node_id(&t.from).is_some() => self.start_external_tcp(t),
            AppSpec::Tcp(t) => {
                let Peers {
                    client: c,
                    dst,
                    nic,
                    server,
                    server_nic,
                } = self.peers(&t.from, &t.to)?;
                let verb = match t.direction {
                    TcpDirection::Send => "sends",
                    TcpDirection::Fetch => "fetches",
                };
                Ok(self.push_app(App {
                    label: format!(
                        "{} {verb} {} bytes over TCP with {}:{}",
                        t.from, t.bytes, t.to, t.port
                    ),
                    client: c,
                    server,
                    kind: AppKind::Tcp(TcpApp {
                        dst,
                        port: t.port,
                        server_port: t.port,
                        request: match (t.direction, self.outside_server_at(dst)) {
                            (TcpDirection::Fetch, true) => crate::internet::request_for(t.bytes),
                            _ => Vec::new(),
                        },
                        request_sent: 0,
                        deadline: now + t.timeout,
                        client_nic: nic,
                        server_nic,
                        client_socket: None,
                        server_socket: None,
                        queued: 0,
                        sender_closed: false,
                        finished_at: None,
                        result: TcpResult {
                            target: Some(dst),
                            port: t.port,
                            direction: t.direction,
                            bytes: t.bytes,
                            ..TcpResult::default()
                        },
                    }),
                }))
            }
            AppSpec::Dns(d) => {
                let c = self.runnable(&d.from)?;
                let id = self.rng.next_u32() as u16;
                let query = crate::dns::build_query(&d.name, d.ipv6, id).map_err(|detail| {
                    SimError::Invalid {
                        what: "DNS name",
                        detail,
                    }
                })?;
                let src_port = self.containers[c as usize].ephemeral_port();
                Ok(self.push_app(App {
                    label: format!("{} looks up {}", d.from, d.name),
                    client: c,
                    server: None,
                    kind: AppKind::Dns(DnsApp {
                        query,
                        id,
                        src_port,
                        timeout: d.timeout,
                        sent_at: None,
                        result: DnsResult {
                            name: d.name.clone(),
                            ..DnsResult::default()
                        },
                    }),
                }))
            }
        }
    }

    /// `ping -c count` from one container to another (or an address).
    pub fn ping(
        &mut self,
        from: &str,
        to: impl Into<Target>,
        count: u32,
    ) -> Result<AppHandle, SimError> {
        self.start(Ping::new(from, to).count(count))
    }

    /// UDP echo: `count` datagrams from `from` to `to:port`, echoed back.
    pub fn udp_echo(
        &mut self,
        from: &str,
        to: impl Into<Target>,
        port: u16,
        count: u32,
    ) -> Result<AppHandle, SimError> {
        self.start(UdpEcho::new(from, to, port).count(count))
    }

    /// `from` connects to `to:port` and sends `bytes`, then closes.
    pub fn tcp_transfer(
        &mut self,
        from: &str,
        to: impl Into<Target>,
        port: u16,
        bytes: u64,
    ) -> Result<AppHandle, SimError> {
        self.start(TcpTransfer::send(from, to, port, bytes))
    }

    /// `from` connects to `to:port` and receives `bytes`, then the server
    /// closes.
    pub fn tcp_fetch(
        &mut self,
        from: &str,
        to: impl Into<Target>,
        port: u16,
        bytes: u64,
    ) -> Result<AppHandle, SimError> {
        self.start(TcpTransfer::fetch(from, to, port, bytes))
    }

    /// Looks `name` up (A) through `from`'s embedded resolver.
    pub fn dns_lookup(&mut self, from: &str, name: &str) -> Result<AppHandle, SimError> {
        self.start(DnsLookup::new(from, name))
    }

    /// An application's result so far.
    pub fn result(&self, app: AppHandle) -> AppResult {
        self.apps[app.0 as usize].result()
    }

    /// A short description of an application (`a pings b`).
    pub fn app_label(&self, app: AppHandle) -> &str {
        &self.apps[app.0 as usize].label
    }

    /// True when the application has finished.
    pub fn is_done(&self, app: AppHandle) -> bool {
        self.apps[app.0 as usize].is_done()
    }

    /// True when every application started so far has finished.
    pub fn all_done(&self) -> bool {
        self.apps.iter().all(App::is_done)
    }

    /// A ping's result (`None` if `app` is not a ping).
    pub fn ping_result(&self, app: AppHandle) -> Option<PingResult> {
        match self.result(app) {
            AppResult::Ping(r) => Some(r),
            _ => None,
        }
    }

    /// A UDP echo's result.
    pub fn udp_result(&self, app: AppHandle) -> Option<UdpResult> {
        match self.result(app) {
            AppResult::Udp(r) => Some(r),
            _ => None,
        }
    }

    /// A TCP transfer's result.
    pub fn tcp_result(&self, app: AppHandle) -> Option<TcpResult> {
        match self.result(app) {
            AppResult::Tcp(r) => Some(r),
            _ => None,
        }
    }

    /// A DNS lookup's result.
    pub fn dns_result(&self, app: AppHandle) -> Option<DnsResult> {
        match self.result(app) {
            AppResult::Dns(r) => Some(r),
            _ => None,
        }
    }

    /// Runs until `app` finishes or `limit` passes; returns its result.
    pub fn run_app(&mut self, app: AppHandle, limit: Duration) -> AppResult {
        self.run_until(|s| s.is_done(app), limit);
        self.result(app)
    }
}

impl Sim {
    /// True when `ip` is an outside server's address (a fetch from it
    /// sends `GET /N` first).
    fn outside_server_at(&self, ip: Ipv4Addr) -> bool {
        self.node_at(ip).is_some_and(|n| {
            matches!(
                self.internet[n as usize].role,
                crate::internet::NodeRole::Outside
            )
        })
    }

    /// The internet node an external application runs on.
    fn external_node(&self, name: &str) -> Result<u32, SimError> {
        self.node_id(name).ok_or_else(|| SimError::NoSuchContainer {
            name: name.to_string(),
            known: String::new(),
        })
    }

    /// Where an external client sends: a host by name (its outside
    /// address), an outside node, or an address.
    fn external_dst(&self, to: &Target) -> Result<Ipv4Addr, SimError> {
        match to {
            Target::Ip(ip) => Ok(*ip),
            Target::Container(name) if self.host_names.contains_key(name) => {
                self.outside_address(name)
            }
            Target::Container(name) => match self.node_id(name) {
                Some(n) => Ok(self.internet[n as usize].ip),
                None => Err(SimError::BadTarget {
                    target: format!(
                        "{name} (an outside client reaches hosts by name, outside nodes or addresses)"
                    ),
                }),
            },
        }
    }

    /// The container behind a host's published port at `dst:port`: its
    /// index, address and own port.
    fn published_behind(
        &self,
        dst: Ipv4Addr,
        port: u16,
        udp: bool,
    ) -> Option<(u32, Ipv4Addr, u16)> {
        let target = self
            .hosts
            .iter()
            .find(|h| self.internet[h.outside.node as usize].ip == dst)
            .and_then(|h| {
                h.outside
                    .listeners
                    .iter()
                    .find(|l| l.udp == udp && l.host_port == port)
                    .map(|l| l.target)
            })?;
        let IpAddr::V4(ip) = target.ip() else {
            return None;
        };
        self.containers
            .iter()
            .position(|c| {
                c.up && !c.raw
                    && c.nics
                        .iter()
                        .any(|n| n.plan.ipv4.is_some_and(|v| v.ip() == ip))
            })
            .map(|c| (c as u32, ip, target.port()))
    }

    /// An external client sends UDP datagrams to a host's published UDP
    /// port; the container behind it echoes them on its own port.
    fn start_external_udp(&mut self, u: UdpEcho) -> Result<AppHandle, SimError> {
        let now = self.now;
        let node = self.external_node(&u.from)?;
        let dst = self.external_dst(&u.to)?;
        let server = self.published_behind(dst, u.port, true);
        let server_nic = server
            .and_then(|(c, ip, _)| self.nic_with_ip(c, ip))
            .unwrap_or(u32::MAX);
        let id = self.apps.len() as u32;
        self.apps.push(App {
            label: format!("{} (outside) sends UDP to {}:{}", u.from, u.to, u.port),
            client: server.map_or(u32::MAX, |s| s.0),
            server: server.map(|s| s.0),
            kind: AppKind::Udp(UdpApp::new(
                &u,
                dst,
                server.map_or(u.port, |s| s.2),
                u32::MAX,
                server_nic,
                now,
            )),
        });
        if let Some((s, _, _)) = server {
            self.containers[s as usize].apps.push((id, Role::Server));
            self.schedule_step(s, now);
        }
        self.internet[node as usize].apps.push(id);
        self.schedule_node(node, now);
        Ok(AppHandle(id))
    }

    /// An external client (a node of the internet) connects to a host's
    /// outside address and port: the container that port is published to
    /// (if any) runs the server side, listening on its own port.
    fn start_external_tcp(&mut self, t: TcpTransfer) -> Result<AppHandle, SimError> {
        let now = self.now;
        let node = self.external_node(&t.from)?;
        let dst = self.external_dst(&t.to)?;
        let server = self.published_behind(dst, t.port, false);
        let server_nic = server
            .and_then(|(c, ip, _)| self.nic_with_ip(c, ip))
            .unwrap_or(u32::MAX);
        let verb = match t.direction {
            TcpDirection::Send => "sends",
            TcpDirection::Fetch => "fetches",
        };
        let id = self.apps.len() as u32;
        self.apps.push(App {
            label: format!(
                "{} (outside) {verb} {} bytes over TCP with {}:{}",
                t.from, t.bytes, t.to, t.port
            ),
            client: server.map_or(u32::MAX, |s| s.0),
            server: server.map(|s| s.0),
            kind: AppKind::Tcp(TcpApp {
                dst,
                port: t.port,
                server_port: server.map_or(t.port, |s| s.2),
                deadline: now + t.timeout,
                client_nic: u32::MAX,
                server_nic,
                client_socket: None,
                server_socket: None,
                queued: 0,
                sender_closed: false,
                finished_at: None,
                request: Vec::new(),
                request_sent: 0,
                result: TcpResult {
                    target: Some(dst),
                    port: t.port,
                    direction: t.direction,
                    bytes: t.bytes,
                    ..TcpResult::default()
                },
            }),
        });
        if let Some((s, _, _)) = server {
            self.containers[s as usize].apps.push((id, Role::Server));
            self.schedule_step(s, now);
        }
        self.internet[node as usize].apps.push(id);
        self.schedule_node(node, now);
        Ok(AppHandle(id))
    }
}

/// What [`Sim::peers`] finds for a client/server application.
struct Peers {
    client: u32,
    dst: Ipv4Addr,
    nic: u32,
    server: Option<u32>,
    server_nic: u32,
}
