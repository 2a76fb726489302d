//! The daemon's real-mode runtime: turns the controller's changes into
//! namespaces (holders), TAP devices configured through netlink, and ports
//! of the data plane; restores them after a restart.
//!
//! Runtime facts live in the sandbox's labels, so they survive restarts
//! with the rest of the state:
//! - `switchyard.holder` — the holder process (`{"pid":…,"start_time":…}`)
//! - `switchyard.netns` — the adopted namespace path (`attach`)
//! - `switchyard.process` — the command the client started inside
//! - `switchyard.caps`, `switchyard.pid` — what its commands are confined to
//!
//! # Crash safety
//! A `kill -9` may come between any two steps, so whatever a step creates
//! can be found again by the next daemon without the record the crash
//! prevented:
//! - holders carry a label on their command line (state directory and
//!   sandbox id); [`Runtime::restore`] scans `/proc` for them, adopts a
//!   ready one whose sandbox has no holder recorded yet, and reports and
//!   stops every other one that state does not know;
//! - every TAP is entered in the sandbox's journal (`sandboxes/ID/taps.json`,
//!   with the adopted namespace's path and identity) *before* it is
//!   created and left there until it is deleted; restore deletes listed
//!   TAPs that no endpoint owns, in the namespaces of sandboxes still in
//!   state and in adopted namespaces of sandboxes that are gone.
//!
//! `SWITCHYARD_FAILPOINT=NAME` makes the daemon SIGKILL itself at a named
//! point (`holder-spawned`, `tap-created`, `endpoint-left`,
//! `sandbox-removed`), for the crash tests.

use super::dns::DnsServer;
use crate::api::{Attachment, ContainerCreateRequest, ContainerInfo, ProcessReport};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use switchyard_gateway::GatewayConfig;
use switchyard_linux::port::{GatewayControl, GatewayPort};
use switchyard_linux::{
    configure_interface, find_holders, open_network_namespace, remove_default_routes, spawn_holder,
    Capabilities, Dataplane, DataplaneConfig, DataplaneError, Holder, HolderLabel, HolderMode,
    HolderSpec, NetnsTarget, NsKind, NsSession, RealError, TapFraming, TapOptions, TapPort,
};
use switchyard_switch::controller::model::{NetnsMode, Network, Sandbox};
use switchyard_switch::controller::publish::{
    parse_add_host, parse_publish, ExtraHostTarget, PortMapping, Protocol,
};
use switchyard_switch::driver::BackendPlan;
use switchyard_switch::{Change, Controller, ControllerError, PortCounters, PortId};

/// Bytes of each relayed TCP connection's receive and send ring in real
/// mode: the kernel's own autotuning limit (`tcp_rmem` max 6 MiB, `tcp_wmem`
/// 4 MiB) rather than the gateway's 256 KiB default. A 256 KiB window held
/// a single stream at ~9 Gbit/s between namespaces (the round trip through
/// two stacks and the relay is long); 4 MiB let it reach 18–22 Gbit/s
/// (benches/nat_compare.sh). The pages are touched only as a window fills
/// (see `large_allocations_map_fresh_pages` in the daemon), so idle and
/// short connections stay small; the flow limits bound the worst case.
pub const RELAY_TCP_BUFFER: usize = 4 * 1024 * 1024;

const LABEL_HOLDER: &str = "switchyard.holder";
const LABEL_NETNS: &str = "switchyard.netns";
const LABEL_PROCESS: &str = "switchyard.process";
/// The capabilities its commands keep, comma-separated names.
const LABEL_CAPS: &str = "switchyard.caps";
/// `private` (its own PID namespace) or `host`.
const LABEL_PID: &str = "switchyard.pid";
/// Descriptors kept free for cleanup and for API connections: a new
/// container or port is refused with a clear error when fewer would be
/// left, so that undoing a half-made one never fails for lack of them.
const FD_RESERVE: usize = 64;
/// Identity (`dev:inode`) of an adopted namespace, checked before every use
/// so a reused `/proc/PID/ns/net` or a recreated `ip netns` name is never
/// mistaken for the namespace we were given.
const LABEL_NETNS_ID: &str = "switchyard.netns.id";
/// Published ports (JSON list of mappings with the host port bound).
const LABEL_PORTS: &str = "switchyard.ports";
/// `--add-host` entries, `NAME:IP` comma-separated, `host-gateway`
/// resolved.
const LABEL_EXTRA_HOSTS: &str = "switchyard.extra-hosts";
/// `1` when an `--add-host` entry is `host-gateway`: the container may
/// reach the host's loopback through its gateway.
const LABEL_HOST_GATEWAY: &str = "switchyard.host-gateway";

/// What the runtime is configured with.
#[derive(Debug, Clone)]
pub(crate) struct RuntimeOptions {
    /// Our own executable, re-executed for holders and namespace helpers.
    pub exe: PathBuf,
    /// The state directory (per-sandbox files live under `sandboxes/`).
    pub state_dir: PathBuf,
    /// Open TAPs with virtio-net headers and offloads.
    pub offload: bool,
    /// `--dns-upstream` values.
    pub dns_upstreams: Vec<String>,
    /// TTL of local DNS answers.
    pub dns_ttl: u32,
    /// Data-plane busy-poll window (zero: off).
    pub busy_poll: std::time::Duration,
    /// DNS thread busy-poll window (zero: off).
    pub dns_busy_poll: std::time::Duration,
    /// The API socket, hidden (with its directory) inside sandboxes.
    pub socket: PathBuf,
}

/// Why the runtime could not realise a change.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RuntimeError {
    /// Namespaces, TAPs or netlink failed.
    #[error(transparent)]
    Real(#[from] RealError),
    /// The data plane failed.
    #[error(transparent)]
    Dataplane(#[from] DataplaneError),
    /// The controller refused.
    #[error(transparent)]
    Controller(#[from] ControllerError),
    /// A mistake in the request.
    #[error("{0}")]
    User(String),
    /// Too few descriptors left to make another container or port.
    #[error("{0}")]
    Limit(String),
    /// Anything else.
    #[error("{0}")]
    Other(String),
}

impl RuntimeError {
    /// True for mistakes the user can fix in the request.
    pub(crate) fn is_user_error(&self) -> bool {
        match self {
            RuntimeError::User(_) | RuntimeError::Limit(_) => true,
            RuntimeError::Real(RealError::NotANamespace { .. }) => true,
            RuntimeError::Controller(e) => e.is_user_error(),
            _ => false,
        }
    }
}

/// A live data-plane port and the interface behind it.
#[derive(Debug, Clone)]
struct LivePort {
    port: PortId,
    ifname: String,
    network_id: String,
    /// Where the TAP lives, kept here because the sandbox record may be
    /// gone by the time the port is removed.
    target: NetnsTarget,
}

/// The real-mode runtime.
pub(crate) struct Runtime {
    opts: RuntimeOptions,
    dataplane: Option<Dataplane>,
    dns: DnsServer,
    /// Endpoint id → its port.
    ports: BTreeMap<String, LivePort>,
    /// Sandbox id → an open descriptor of its holder's mount namespace,
    /// taken while the holder was known alive, for `--pid host` sandboxes
    /// only. Holding it keeps the namespace (and so its identity) from
    /// being freed and reused, so "every process in this namespace" can
    /// never mean someone else's. A sandbox with its own PID namespace
    /// needs none: its processes die with its holder, their init.
    mount_pins: BTreeMap<String, std::fs::File>,
    /// Sandbox id → an open descriptor of an adopted network namespace,
    /// taken after checking its identity against the one recorded at
    /// `attach`. Every later operation goes through it
    /// (`/proc/<daemon>/fd/<n>`), never through the path again.
    netns_pins: BTreeMap<String, std::fs::File>,
    /// Network id → its gateway port.
    gateways: BTreeMap<String, LiveGateway>,
    /// Sandbox id → its published ports' gateway keys, by network id.
    published: BTreeMap<String, Vec<(String, String)>>,
    /// The state directory, absolute: what holders' labels name.
    state_dir: PathBuf,
    /// `SWITCHYARD_FAILPOINT`, read at start.
    failpoint: Option<String>,
}

/// A new container's `--add-host` entries as (name, address), and whether
/// one is `host-gateway` (its network's gateway address).
fn extra_hosts(
    controller: &Controller,
    req: &ContainerCreateRequest,
) -> Result<(Vec<(String, std::net::IpAddr)>, bool), RuntimeError> {
    let mut entries = Vec::new();
    let mut host_gateway = false;
    for spec in &req.add_host {
        let host = parse_add_host(spec).map_err(|e| RuntimeError::User(e.to_string()))?;
        let ip = match host.target {
            ExtraHostTarget::Ip(ip) => ip,
            ExtraHostTarget::HostGateway => {
                let gateway = controller
                    .network(&req.network)
                    .ok()
                    .filter(|n| !n.internal)
                    .and_then(|n| n.ipv4.as_ref().or(n.ipv6.as_ref()))
                    .map(|s| s.gateway);
                host_gateway = true;
                gateway.ok_or_else(|| {
                    RuntimeError::User(format!(
                        "--add-host {spec}: host-gateway needs the container on a network with a \
                         gateway; --network {} has none (it is host, none, --internal or another \
                         container's)",
                        req.network
                    ))
                })?
            }
        };
        entries.push((host.name, ip));
    }
    Ok((entries, host_gateway))
}

/// Every container subnet of this host but `network_id`'s own.
fn isolated_subnets(controller: &Controller, network_id: &str) -> Vec<ipnetwork::IpNetwork> {
    controller
        .networks()
        .filter(|n| n.id != network_id)
        .flat_map(|n| n.ipv4.iter().chain(n.ipv6.iter()).map(|s| s.subnet))
        .collect()
}

/// An endpoint's addresses.
fn endpoint_addresses(
    endpoint: &switchyard_switch::controller::model::Endpoint,
) -> Vec<std::net::IpAddr> {
    endpoint
        .ipv4
        .map(|n| std::net::IpAddr::V4(n.ip()))
        .into_iter()
        .chain(endpoint.ipv6.map(|n| std::net::IpAddr::V6(n.ip())))
        .collect()
}

/// A network's gateway on the data plane.
struct LiveGateway {
    port: PortId,
    control: GatewayControl,
}

/// What the runtime made in a sandbox's network namespace, written before
/// each TAP is created and updated after each is deleted, so a restart can
/// remove what a crash left without a record in the controller's state.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Journal {
    /// TAPs that may exist in the namespace.
    taps: BTreeSet<String>,
    /// For an adopted namespace: its path and identity (`dev:inode`), to
    /// find it again once the sandbox record is gone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    netns: Option<(String, String)>,
}

impl Runtime {
    /// Starts the data plane and the DNS server.
    pub(crate) fn start(opts: RuntimeOptions) -> Result<Runtime, RuntimeError> {
        // A secret FDB hash seed, so remote stations cannot pick MACs that
        // collide in the table.
        let hash_seed = {
            use rand_chacha::rand_core::{RngCore, SeedableRng};
            rand_chacha::ChaCha20Rng::from_os_rng().next_u64()
        };
        let bridge = switchyard_switch::bridge::BridgeConfig {
            hash_seed,
            ..Default::default()
        };
        let dataplane = Dataplane::start(DataplaneConfig {
            bridge,
            busy_poll: opts.busy_poll,
        })?;
        let dns = DnsServer::start(&opts.dns_upstreams, opts.dns_ttl, opts.dns_busy_poll)
            .map_err(RuntimeError::User)?;
        let state_dir = std::fs::canonicalize(&opts.state_dir).unwrap_or_else(|_| {
            std::path::absolute(&opts.state_dir).unwrap_or_else(|_| opts.state_dir.clone())
        });
        Ok(Runtime {
            opts,
            dataplane: Some(dataplane),
            dns,
            ports: BTreeMap::new(),
            mount_pins: BTreeMap::new(),
            netns_pins: BTreeMap::new(),
            gateways: BTreeMap::new(),
            published: BTreeMap::new(),
            state_dir,
            failpoint: std::env::var("SWITCHYARD_FAILPOINT")
                .ok()
                .filter(|v| !v.is_empty()),
        })
    }

    /// Dies like a `kill -9` at the named point when `SWITCHYARD_FAILPOINT`
    /// names it (crash tests).
    fn failpoint(&self, name: &str) {
        if self.failpoint.as_deref() == Some(name) {
            tracing::warn!(failpoint = name, "SWITCHYARD_FAILPOINT: killing the daemon");
            // SAFETY: kill on our own pid.
            unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
        }
    }

    /// Refuses to start something that needs descriptors when fewer than
    /// [`FD_RESERVE`] would be left (see its doc).
    fn check_descriptors(&self, what: &str) -> Result<(), RuntimeError> {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: limit is a valid rlimit to fill.
        if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0
            || limit.rlim_cur == libc::RLIM_INFINITY
        {
            return Ok(());
        }
        let open = match std::fs::read_dir("/proc/self/fd") {
            Ok(d) => d.count(),
            Err(_) => return Ok(()),
        };
        let limit = limit.rlim_cur as usize;
        if open + FD_RESERVE <= limit {
            return Ok(());
        }
        tracing::warn!(open, limit, "refusing {what}: at the descriptor limit");
        Err(RuntimeError::Limit(format!(
            "cannot {what}: the daemon has {open} of its {limit} descriptors open and keeps {FD_RESERVE} \
             spare for cleanup (each container holds about 3: a TAP per network and two DNS sockets); \
             remove containers, or raise the daemon's limit (LimitNOFILE= in its systemd unit, or \
             prlimit --nofile / ulimit -Hn before starting it) and restart it"
        )))
    }

    /// What sandboxes must not see: the API socket's directory (the socket
    /// itself when that is `/`) and the state directory, parents first.
    fn hidden_paths(&self) -> Vec<PathBuf> {
        let socket =
            std::path::absolute(&self.opts.socket).unwrap_or_else(|_| self.opts.socket.clone());
        let socket_side = match socket.parent() {
            Some(dir) if dir != Path::new("/") => dir.to_path_buf(),
            _ => socket,
        };
        let mut paths = vec![socket_side, self.state_dir.clone()];
        paths.sort_by_key(|p| p.components().count());
        paths.dedup();
        paths
    }

    fn journal_path(&self, sandbox_id: &str) -> PathBuf {
        self.sandbox_dir(sandbox_id).join("taps.json")
    }

    fn read_journal(&self, sandbox_id: &str) -> Journal {
        std::fs::read(self.journal_path(sandbox_id))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    /// Replaces the journal (write and rename: a crash leaves the old one
    /// or the new one, never half of either).
    fn write_journal(&self, sandbox_id: &str, journal: &Journal) -> Result<(), RuntimeError> {
        let dir = self.sandbox_dir(sandbox_id);
        std::fs::create_dir_all(&dir)
            .map_err(|e| RuntimeError::Other(format!("creating {}: {e}", dir.display())))?;
        let path = self.journal_path(sandbox_id);
        let tmp = dir.join("taps.json.tmp");
        write_file(&tmp, &serde_json::to_vec(journal).expect("serialises"))?;
        std::fs::rename(&tmp, &path)
            .map_err(|e| RuntimeError::Other(format!("writing {}: {e}", path.display())))
    }

    /// Enters a TAP in the journal before it is created.
    fn journal_add(&self, sandbox: &Sandbox, ifname: &str) -> Result<(), RuntimeError> {
        let mut j = self.read_journal(&sandbox.id);
        let mut changed = j.taps.insert(ifname.to_string());
        if j.netns.is_none() {
            if let (Some(p), Some(id)) = (
                sandbox.labels.get(LABEL_NETNS),
                sandbox.labels.get(LABEL_NETNS_ID),
            ) {
                j.netns = Some((p.clone(), id.clone()));
                changed = true;
            }
        }
        if changed {
            self.write_journal(&sandbox.id, &j)?;
        }
        Ok(())
    }

    /// Takes a deleted TAP out of the journal.
    fn journal_remove(&self, sandbox_id: &str, ifname: &str) {
        let mut j = self.read_journal(sandbox_id);
        if j.taps.remove(ifname) {
            if let Err(e) = self.write_journal(sandbox_id, &j) {
                tracing::warn!(error = %e, "could not update a TAP journal");
            }
        }
    }

    fn dataplane(&self) -> Result<&Dataplane, RuntimeError> {
        self.dataplane
            .as_ref()
            .ok_or(RuntimeError::Dataplane(DataplaneError::Stopped))
    }

    fn sandbox_dir(&self, id: &str) -> PathBuf {
        self.opts.state_dir.join("sandboxes").join(id)
    }

    /// Brings a new sandbox's namespaces into being: a holder for private,
    /// `none`, `host` and `container:` sandboxes (`host` shares the host's
    /// network but not its mounts or processes), the given path for
    /// `attach`. Records what it made in the sandbox's labels — what its
    /// commands are confined to before the holder exists, the holder once
    /// it does (a crash between the two is covered by the holder's label).
    pub(crate) fn prepare_sandbox(
        &mut self,
        controller: &mut Controller,
        sandbox_id: &str,
        req: &ContainerCreateRequest,
    ) -> Result<(), RuntimeError> {
        self.check_descriptors("create another container")?;
        let sandbox = controller
            .sandbox_by_id(sandbox_id)
            .cloned()
            .ok_or_else(|| RuntimeError::Other(format!("sandbox {sandbox_id} vanished")))?;
        let mut labels = BTreeMap::new();
        if let Some(path) = req.netns.as_deref() {
            if !path.exists() {
                return Err(RuntimeError::User(format!(
                    "--netns {}: no such file; give a namespace path such as /run/netns/NAME (ip netns add NAME) or /proc/PID/ns/net",
                    path.display()
                )));
            }
            // A file that is not a network namespace is the user's mistake.
            drop(open_network_namespace(path)?);
            let id = ns_identity(path).ok_or_else(|| {
                RuntimeError::User(format!(
                    "--netns {}: not a namespace we can read",
                    path.display()
                ))
            })?;
            if Some(id) == ns_identity(Path::new("/proc/self/ns/net")) {
                return Err(RuntimeError::User(format!(
                    "--netns {} is the daemon's own network namespace; give a container's namespace",
                    path.display()
                )));
            }
            // Prove we can enter it before recording anything; a refusal
            // (another user's namespace) is for the user to fix.
            NsSession::open(&self.opts.exe, &NetnsTarget::Path(path.to_path_buf())).map_err(
                |e| match e {
                    RealError::InNamespace { message } => {
                        RuntimeError::User(format!("--netns {}: {message}", path.display()))
                    }
                    other => other.into(),
                },
            )?;
            labels.insert(LABEL_NETNS.to_string(), path.display().to_string());
            labels.insert(LABEL_NETNS_ID.to_string(), format!("{}:{}", id.0, id.1));
            controller.set_sandbox_labels(sandbox_id, labels)?;
            let sandbox = controller
                .sandbox_by_id(sandbox_id)
                .cloned()
                .expect("labelled just now");
            if !self.pin_netns(&sandbox) {
                return Err(RuntimeError::User(format!(
                    "--netns {} changed while it was being adopted; try again",
                    path.display()
                )));
            }
            return Ok(());
        }
        let caps = Capabilities::from_flags(req.privileged, &req.cap_add, &req.cap_drop)
            .map_err(RuntimeError::User)?;
        let pid_namespace = match req.pid.as_deref() {
            None | Some("") | Some("private") => true,
            Some("host") => false,
            Some(other) => {
                return Err(RuntimeError::User(format!(
                    "--pid {other}: only --pid host is supported (leave it out for a PID namespace of the container's own)"
                )))
            }
        };
        let mode = match &sandbox.mode {
            NetnsMode::Host => HolderMode::Host,
            NetnsMode::Private => HolderMode::Private,
            NetnsMode::None => HolderMode::None,
            NetnsMode::Container(owner_id) => {
                let owner = controller
                    .sandbox_by_id(owner_id)
                    .ok_or_else(|| RuntimeError::Other(format!("owner {owner_id} vanished")))?;
                match holder_of(owner) {
                    Some(h) => HolderMode::ShareNetns(h),
                    None => {
                        return Err(RuntimeError::User(format!(
                        "--network container:{}: that container has no namespace of ours to share \
                             (it was attached from a path)",
                        owner.name
                    )))
                    }
                }
            }
        };
        labels.insert(LABEL_CAPS.to_string(), caps.names().join(","));
        labels.insert(
            LABEL_PID.to_string(),
            if pid_namespace { "private" } else { "host" }.to_string(),
        );
        controller.set_sandbox_labels(sandbox_id, std::mem::take(&mut labels))?;
        let dir = self.sandbox_dir(sandbox_id);
        std::fs::create_dir_all(&dir)
            .map_err(|e| RuntimeError::Other(format!("creating {}: {e}", dir.display())))?;
        let host = mode == HolderMode::Host;
        let resolv = if host {
            // The host network's resolvers, as with Docker's --network host.
            None
        } else {
            let resolv = dir.join("resolv.conf");
            write_file(&resolv, b"nameserver 127.0.0.11\noptions ndots:0\n")?;
            Some(resolv)
        };
        let hosts = if req.add_host.is_empty() {
            None
        } else {
            let (entries, host_gateway) = extra_hosts(controller, req)?;
            let mut text =
                String::from("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
            for (name, ip) in &entries {
                text.push_str(&format!("{ip}\t{name}\n"));
            }
            let path = dir.join("hosts");
            write_file(&path, text.as_bytes())?;
            let listed: Vec<String> = entries.iter().map(|(n, ip)| format!("{n}:{ip}")).collect();
            labels.insert(LABEL_EXTRA_HOSTS.to_string(), listed.join(","));
            if host_gateway {
                labels.insert(LABEL_HOST_GATEWAY.to_string(), "1".to_string());
            }
            Some(path)
        };
        let holder = spawn_holder(
            &self.opts.exe,
            &HolderSpec {
                mode,
                hostname: (!host).then(|| sandbox.hostname.clone()),
                resolv_conf: resolv,
                hosts,
                log_path: dir.join("holder.log"),
                pid_namespace,
                hide: self.hidden_paths(),
                label: Some(HolderLabel {
                    state_dir: self.state_dir.clone(),
                    sandbox: sandbox_id.to_string(),
                }),
            },
        )?;
        self.failpoint("holder-spawned");
        labels.insert(
            LABEL_HOLDER.to_string(),
            serde_json::to_string(&holder).expect("serialises"),
        );
        if let Err(e) = controller.set_sandbox_labels(sandbox_id, labels) {
            let _ = holder.terminate();
            return Err(e.into());
        }
        self.pin_mount_namespace(sandbox_id, &holder);
        tracing::info!(sandbox = %sandbox.name, pid = holder.pid, "sandbox namespaces ready");
        Ok(())
    }

    /// Realises every change the controller queued. Goes on after a
    /// failure (the controller has already committed) and reports the
    /// first error.
    pub(crate) fn apply(&mut self, controller: &mut Controller) -> Result<(), RuntimeError> {
        let mut first_err = None;
        for change in controller.take_changes() {
            if let Err(e) = self.apply_one(controller, &change) {
                tracing::warn!(?change, error = %e, "could not realise a change");
                first_err.get_or_insert(e);
            }
        }
        self.dns.sync(controller);
        first_err.map_or(Ok(()), Err)
    }

    fn apply_one(&mut self, controller: &Controller, change: &Change) -> Result<(), RuntimeError> {
        match change {
            Change::EndpointJoined { endpoint_id } => {
                self.attach_endpoint(controller, endpoint_id, false)
            }
            Change::EndpointLeft { endpoint } => {
                self.unpublish(&endpoint.sandbox_id, Some(&endpoint.network_id));
                if let Some(gw) = self.gateways.get(&endpoint.network_id) {
                    for ip in endpoint_addresses(endpoint) {
                        let _ = gw.control.forget(ip);
                    }
                }
                let target = match self.ports.remove(&endpoint.id) {
                    Some(live) => {
                        self.dataplane()?.remove_port(live.port)?;
                        Some(live.target)
                    }
                    // No port (its restore failed): the TAP may still be
                    // there if the journal says so.
                    None if self
                        .read_journal(&endpoint.sandbox_id)
                        .taps
                        .contains(&endpoint.ifname) =>
                    {
                        controller
                            .sandbox_by_id(&endpoint.sandbox_id)
                            .and_then(|s| self.target_of(controller, s))
                    }
                    None => return Ok(()),
                };
                self.failpoint("endpoint-left");
                // The TAP is persistent: delete it, or it would outlive us in
                // a namespace we do not own (attach) until that one goes.
                if let Some(target) = target.filter(target_alive) {
                    NsSession::open(&self.opts.exe, &target)?.delete_tap(&endpoint.ifname)?;
                }
                self.journal_remove(&endpoint.sandbox_id, &endpoint.ifname);
                Ok(())
            }
            Change::EndpointUpdated { endpoint_id } => {
                // The default route may have moved to this endpoint.
                let Some(iface) = controller
                    .plan_endpoint_port(endpoint_id)
                    .and_then(|p| p.interface().cloned())
                else {
                    return Ok(());
                };
                let iface = &iface;
                let Some(endpoint) = controller.endpoint(endpoint_id) else {
                    return Ok(());
                };
                let Some(sandbox) = controller.sandbox_by_id(&endpoint.sandbox_id) else {
                    return Ok(());
                };
                let Some(target) = self.target_of(controller, sandbox) else {
                    return Ok(());
                };
                let netlink = NsSession::open(&self.opts.exe, &target)?.netlink()?;
                if iface.default_route {
                    configure_interface(&netlink, iface)?;
                } else {
                    remove_default_routes(&netlink, iface)?;
                }
                Ok(())
            }
            Change::SandboxRemoved { sandbox } => {
                self.failpoint("sandbox-removed");
                // Everything started inside (run, exec, their children) is
                // in the holder's PID namespace and dies with the holder,
                // its init. With --pid host they share its mount namespace
                // instead; stop them all, or a stray process would keep the
                // network namespace alive.
                if let Some(pin) = self.mount_pins.remove(&sandbox.id) {
                    kill_processes_in(&pin);
                } else if holder_of(sandbox).is_some_and(|h| !h.is_alive())
                    && sandbox.labels.get(LABEL_PID).map(String::as_str) != Some("private")
                {
                    tracing::warn!(
                        container = %sandbox.name,
                        "its holder died while the daemon was down: processes still inside (if any) cannot be identified safely and are left running"
                    );
                }
                self.netns_pins.remove(&sandbox.id);
                self.unpublish(&sandbox.id, None);
                if let Some(holder) = holder_of(sandbox) {
                    holder.terminate()?;
                }
                let _ = std::fs::remove_dir_all(self.sandbox_dir(&sandbox.id));
                self.dns.remove_sandbox(&sandbox.id);
                Ok(())
            }
            Change::NetworkCreated { network_id } => {
                self.attach_network_ports(controller, network_id)
            }
            Change::NetworkRemoved { network } => {
                if let Some(gw) = self.gateways.remove(&network.id) {
                    self.dataplane()?.remove_port(gw.port)?;
                }
                self.update_isolation(controller);
                Ok(())
            }
            Change::SandboxCreated { .. } => Ok(()),
        }
    }

    /// Creates (or, when `restoring` after a restart, re-opens) an
    /// endpoint's TAP inside its sandbox, configures it, and plugs it into
    /// the switch. In an adopted namespace a new TAP is created
    /// exclusively (someone else's interface is never taken over) and an
    /// existing default route is left alone.
    fn attach_endpoint(
        &mut self,
        controller: &Controller,
        endpoint_id: &str,
        restoring: bool,
    ) -> Result<(), RuntimeError> {
        let Some(plan) = controller.plan_endpoint_port(endpoint_id) else {
            return Ok(());
        };
        let endpoint = controller
            .endpoint(endpoint_id)
            .cloned()
            .expect("planned endpoints exist");
        let sandbox = controller
            .sandbox_by_id(&endpoint.sandbox_id)
            .ok_or_else(|| {
                RuntimeError::Other(format!("sandbox of endpoint {endpoint_id} vanished"))
            })?;
        let target = self.target_of(controller, sandbox).ok_or_else(|| {
            RuntimeError::Other(format!(
                "container {} has no namespace to put {} in",
                sandbox.name, endpoint.ifname
            ))
        })?;
        let BackendPlan::SandboxInterface(iface) = &plan.backend else {
            return Err(RuntimeError::Other(format!(
                "the driver planned no sandbox interface for endpoint {endpoint_id}"
            )));
        };
        let adopted = matches!(target, NetnsTarget::Path(_));
        if !restoring {
            self.check_descriptors(&format!("connect {}", sandbox.name))?;
        }
        let session = NsSession::open(&self.opts.exe, &target)?;
        // Recorded before it exists, so that a crash from here on leaves a
        // TAP the next daemon knows to remove.
        let owner = sandbox.clone();
        self.journal_add(&owner, &iface.ifname)?;
        let tap = match session.create_tap(
            &iface.ifname,
            TapOptions {
                vnet_hdr: self.opts.offload,
                persist: true,
                exclusive: adopted && !restoring,
            },
        ) {
            Ok(tap) => tap,
            Err(e) => {
                if !restoring {
                    // Exclusive creation failed: someone else's interface.
                    self.journal_remove(&owner.id, &iface.ifname);
                }
                return Err(e.into());
            }
        };
        if !restoring {
            self.failpoint("tap-created");
        }
        // From here a failure must not leave the persistent TAP behind.
        let undo = |this: &Self, session: &NsSession, tap: Option<std::os::fd::OwnedFd>| {
            drop(tap);
            match session.delete_tap(&iface.ifname) {
                Ok(()) => this.journal_remove(&owner.id, &iface.ifname),
                Err(e) => {
                    tracing::warn!(error = %e, ifname = %iface.ifname, "could not delete a TAP after a failure; the next restart removes it")
                }
            }
        };
        let port = self.plug_in(&session, tap, iface, &plan, adopted);
        let (port, ifname) = match port {
            Ok(p) => p,
            Err((e, tap)) => {
                undo(self, &session, tap);
                return Err(e);
            }
        };
        self.dns.ensure_sandbox(&session, &sandbox.id);
        if sandbox.labels.get(LABEL_HOST_GATEWAY).map(String::as_str) == Some("1") {
            if let Some(gw) = self.gateways.get(&endpoint.network_id) {
                for ip in endpoint_addresses(&endpoint) {
                    let _ = gw.control.set_host_gateway(ip, true);
                }
            }
        }
        self.ports.insert(
            endpoint.id.clone(),
            LivePort {
                port,
                ifname: ifname.clone(),
                network_id: endpoint.network_id,
                target,
            },
        );
        tracing::info!(container = %sandbox.name, %ifname, %port, "port attached");
        Ok(())
    }

    /// Configures a new TAP and adds it to the data plane. On failure the
    /// TAP's descriptor comes back (if the data plane did not take it) so
    /// the caller can close it and delete the TAP.
    #[allow(clippy::type_complexity)]
    fn plug_in(
        &self,
        session: &NsSession,
        tap: std::os::fd::OwnedFd,
        iface: &switchyard_switch::driver::InterfacePlan,
        plan: &switchyard_switch::driver::PortPlan,
        adopted: bool,
    ) -> Result<(PortId, String), (RuntimeError, Option<std::os::fd::OwnedFd>)> {
        let netlink = match session.netlink() {
            Ok(n) => n,
            Err(e) => return Err((e.into(), Some(tap))),
        };
        let mut iface = iface.clone();
        if adopted && iface.default_route {
            // The namespace's owner may route it already: keep theirs.
            let routed = netlink.link_index(&iface.ifname).and_then(|ours| {
                Ok(netlink
                    .list_default_routes()?
                    .iter()
                    .any(|r| r.index != ours))
            });
            match routed {
                Ok(true) => iface.default_route = false,
                Ok(false) => {}
                Err(e) => return Err((e.into(), Some(tap))),
            }
        }
        if let Err(e) = configure_interface(&netlink, &iface) {
            return Err((e.into(), Some(tap)));
        }
        let dataplane = match self.dataplane() {
            Ok(d) => d,
            Err(e) => return Err((e, Some(tap))),
        };
        let backend = TapPort::new(
            tap,
            TapFraming {
                vnet_hdr: self.opts.offload,
            },
        );
        // The data plane owns (and on failure has closed) the descriptor.
        match dataplane.add_port(plan.port.clone(), Box::new(backend)) {
            Ok(port) => Ok((port, iface.ifname)),
            Err(e) => Err((e.into(), None)),
        }
    }

    /// Realises the ports a network has as a whole, as its driver plans
    /// them: today the gateway of a bridge network that is not
    /// `--internal` (`BackendPlan::Gateway`); a plan of a kind real mode
    /// cannot make is refused clearly, never half made.
    fn attach_network_ports(
        &mut self,
        controller: &Controller,
        network_id: &str,
    ) -> Result<(), RuntimeError> {
        for plan in controller.plan_network_ports(network_id) {
            match &plan.backend {
                BackendPlan::Gateway(g) => {
                    if self.gateways.contains_key(network_id) {
                        continue;
                    }
                    let name = controller
                        .network(network_id)
                        .map_or(network_id.to_string(), |n| n.name.clone());
                    let mut config = GatewayConfig::new(&name, g.mac, g.ipv4, g.ipv6, g.mtu);
                    config.offload = self.opts.offload;
                    config.tcp_buffer = RELAY_TCP_BUFFER;
                    config.tcp_timestamp_base_ms = switchyard_linux::clock::boot_millis_at_start();
                    config.isolated = isolated_subnets(controller, network_id);
                    let seed = {
                        use rand_chacha::rand_core::{RngCore, SeedableRng};
                        rand_chacha::ChaCha20Rng::from_os_rng().next_u64()
                    };
                    let (backend, control) = GatewayPort::new(config, seed)
                        .map_err(|e| RuntimeError::Other(format!("cannot start the gateway of {name}: {e}")))?;
                    let port = self.dataplane()?.add_port(plan.port.clone(), Box::new(backend))?;
                    tracing::info!(network = %name, %port, "gateway attached");
                    self.gateways
                        .insert(network_id.to_string(), LiveGateway { port, control });
                }
                other => {
                    return Err(RuntimeError::Other(format!(
                        "the driver of network {network_id} planned a network port ({other:?}) of a kind \
                         real mode cannot make"
                    )))
                }
            }
        }
        self.update_isolation(controller);
        Ok(())
    }

    /// Tells every gateway the subnets of the other networks, which it
    /// must never relay to (network A cannot reach network B through it).
    fn update_isolation(&self, controller: &Controller) {
        for (id, gw) in &self.gateways {
            let _ = gw.control.set_isolated(isolated_subnets(controller, id));
        }
    }

    /// The gateway of a network, for `network inspect`.
    pub(crate) fn gateway(&self, network_id: &str) -> Option<&GatewayControl> {
        self.gateways.get(network_id).map(|g| &g.control)
    }

    /// Publishes a new container's `-p` ports: binds the host sockets
    /// (picking ports where asked), hands them to its network's gateway,
    /// and records the mappings with their host ports. All or nothing.
    pub(crate) fn publish_ports(
        &mut self,
        controller: &mut Controller,
        sandbox_id: &str,
        specs: &[String],
    ) -> Result<(), RuntimeError> {
        if specs.is_empty() {
            return Ok(());
        }
        let mut mappings = Vec::new();
        for spec in specs {
            mappings.extend(parse_publish(spec).map_err(|e| RuntimeError::User(e.to_string()))?);
        }
        let resolved = self.publish_mappings(controller, sandbox_id, &mappings)?;
        let json = serde_json::to_string(&resolved).expect("serialises");
        if let Err(e) = controller.set_sandbox_labels(
            sandbox_id,
            BTreeMap::from([(LABEL_PORTS.to_string(), json)]),
        ) {
            self.unpublish(sandbox_id, None);
            return Err(e.into());
        }
        Ok(())
    }

    /// Binds and publishes `mappings` for a sandbox; returns them with the
    /// host ports bound. On failure nothing stays published.
    fn publish_mappings(
        &mut self,
        controller: &Controller,
        sandbox_id: &str,
        mappings: &[PortMapping],
    ) -> Result<Vec<PortMapping>, RuntimeError> {
        let owner = controller
            .sandbox_by_id(sandbox_id)
            .map(|s| controller.namespace_owner(s).id.clone())
            .unwrap_or_else(|| sandbox_id.to_string());
        let endpoint = controller
            .endpoints_of_sandbox(&owner)
            .into_iter()
            .find(|e| self.gateways.contains_key(&e.network_id))
            .cloned();
        let Some(endpoint) = endpoint else {
            return Err(RuntimeError::User(
                "-p needs the container on a network with a gateway: --network none, host and \
                 --internal networks have no way in (leave out -p, or run it on a bridge network)"
                    .into(),
            ));
        };
        let target_ip = endpoint_addresses(&endpoint)
            .into_iter()
            .next()
            .ok_or_else(|| {
                RuntimeError::Other("the container has no address to publish to".into())
            })?;
        let published_by = |proto: Protocol, port: u16| -> Option<String> {
            controller.sandboxes().find_map(|s| {
                let json = s.labels.get(LABEL_PORTS)?;
                let ms: Vec<PortMapping> = serde_json::from_str(json).ok()?;
                ms.iter()
                    .any(|m| m.protocol == proto && m.host_port == port)
                    .then(|| s.name.clone())
            })
        };
        let mut resolved = Vec::new();
        let mut result = Ok(());
        for m in mappings {
            let (bound_mapping, sockets) = match super::publish::bind_mapping(m, &published_by) {
                Ok(b) => b,
                Err(message) => {
                    result = Err(RuntimeError::User(message));
                    break;
                }
            };
            let control = &self.gateways[&endpoint.network_id].control;
            for bound in sockets {
                let key = format!("{sandbox_id}/{}/{}", m.protocol, bound.addr);
                let target = std::net::SocketAddr::new(target_ip, m.container_port);
                if let Err(e) = control.publish(&key, bound.socket, target) {
                    result = Err(RuntimeError::Other(format!("-p {}: {e}", m.publish_spec())));
                    break;
                }
                self.published
                    .entry(sandbox_id.to_string())
                    .or_default()
                    .push((endpoint.network_id.clone(), key));
            }
            if result.is_err() {
                break;
            }
            tracing::info!(sandbox = %sandbox_id, mapping = %bound_mapping.publish_spec(), "port published");
            resolved.push(bound_mapping);
        }
        match result {
            Ok(()) => Ok(resolved),
            Err(e) => {
                self.unpublish(sandbox_id, None);
                Err(e)
            }
        }
    }

    /// Closes a sandbox's published ports (on one network, or all).
    fn unpublish(&mut self, sandbox_id: &str, network_id: Option<&str>) {
        let Some(keys) = self.published.get_mut(sandbox_id) else {
            return;
        };
        keys.retain(|(net, key)| {
            if network_id.is_some_and(|n| n != net) {
                return true;
            }
            if let Some(gw) = self.gateways.get(net) {
                let _ = gw.control.unpublish(key);
            }
            false
        });
        if keys.is_empty() {
            self.published.remove(sandbox_id);
        }
    }

    /// After a restart: adopts or stops the holders found by their labels,
    /// removes sandboxes whose namespace vanished while we were down,
    /// deletes TAPs that a crash left without an endpoint, and re-opens
    /// every endpoint's TAP and plugs it back in.
    pub(crate) fn restore(&mut self, controller: &mut Controller) -> Result<(), RuntimeError> {
        controller.take_changes();
        let mut found: BTreeMap<String, Vec<Holder>> = BTreeMap::new();
        let mut strays: Vec<(Holder, String, &'static str)> = Vec::new();
        for l in find_holders(&self.state_dir) {
            let recorded = controller.sandbox_by_id(&l.sandbox).map(holder_of);
            match recorded {
                Some(Some(h)) if h == l.holder => {}
                Some(Some(_)) => {
                    strays.push((l.holder, l.sandbox, "its container records another holder"))
                }
                Some(None) if l.ready => found.entry(l.sandbox).or_default().push(l.holder),
                Some(None) => strays.push((
                    l.holder,
                    l.sandbox,
                    "it was still setting up when the daemon died",
                )),
                None => strays.push((l.holder, l.sandbox, "no container in state")),
            }
        }
        let sandboxes: Vec<Sandbox> = controller.sandboxes().cloned().collect();
        for sandbox in &sandboxes {
            // A holder started just before the crash that recorded it.
            if let Some(mut candidates) = found.remove(&sandbox.id) {
                let holder = candidates.remove(0);
                strays.extend(
                    candidates
                        .into_iter()
                        .map(|h| (h, sandbox.id.clone(), "a second holder for one container")),
                );
                let label = serde_json::to_string(&holder).expect("serialises");
                controller.set_sandbox_labels(
                    &sandbox.id,
                    BTreeMap::from([(LABEL_HOLDER.to_string(), label)]),
                )?;
                tracing::warn!(container = %sandbox.name, pid = holder.pid, "adopted a holder the previous daemon started but did not record");
            }
        }
        self.stop_strays(strays);
        let sandboxes: Vec<Sandbox> = controller.sandboxes().cloned().collect();
        for sandbox in &sandboxes {
            if sandbox.labels.contains_key(LABEL_NETNS) {
                self.pin_netns(sandbox);
            }
            if let Some(holder) = holder_of(sandbox) {
                self.pin_mount_namespace(&sandbox.id, &holder);
            }
            let alive = match self.target_of(controller, sandbox) {
                Some(t) => target_alive(&t),
                None => legacy_host(sandbox),
            };
            if !alive {
                tracing::warn!(container = %sandbox.name, "its namespace vanished while the daemon was down; removing it");
                eprintln!("switchyard: container {} lost its namespace while the daemon was down; removed", sandbox.name);
                self.mount_pins.remove(&sandbox.id);
                controller.remove_sandbox(&sandbox.id, true)?;
                // Its TAPs went with the namespace; only files remain.
                for change in controller.take_changes() {
                    if let Change::SandboxRemoved { sandbox } = change {
                        let _ = std::fs::remove_dir_all(self.sandbox_dir(&sandbox.id));
                    }
                }
            }
        }
        self.remove_unowned_taps(controller);
        let networks: Vec<String> = controller.networks().map(|n| n.id.clone()).collect();
        for id in networks {
            if let Err(e) = self.attach_network_ports(controller, &id) {
                tracing::error!(network = %id, error = %e, "could not restore a network's ports");
                eprintln!("switchyard: could not restore a network's ports: {e}");
            }
        }
        let endpoints: Vec<String> = controller.endpoints().map(|e| e.id.clone()).collect();
        for id in endpoints {
            if let Err(e) = self.attach_endpoint(controller, &id, true) {
                tracing::error!(endpoint = %id, error = %e, "could not restore a port");
                eprintln!("switchyard: could not restore a port: {e}");
            }
        }
        let sandboxes: Vec<Sandbox> = controller.sandboxes().cloned().collect();
        for sandbox in &sandboxes {
            let Some(json) = sandbox.labels.get(LABEL_PORTS) else {
                continue;
            };
            let mappings: Vec<PortMapping> = serde_json::from_str(json).unwrap_or_default();
            if let Err(e) = self.publish_mappings(controller, &sandbox.id, &mappings) {
                tracing::error!(container = %sandbox.name, error = %e, "could not re-open published ports");
                eprintln!(
                    "switchyard: container {}: could not re-open its published ports: {e}",
                    sandbox.name
                );
            }
        }
        self.dns.sync(controller);
        Ok(())
    }

    /// Reports and stops holders that state does not account for: live
    /// namespaces without state are never silently ignored. Processes in
    /// a `--pid host` holder's mount namespace are killed first.
    fn stop_strays(&self, strays: Vec<(Holder, String, &'static str)>) {
        if strays.is_empty() {
            return;
        }
        let list: Vec<String> = strays
            .iter()
            .map(|(h, id, _)| format!("{} (container {})", h.pid, short_id(id)))
            .collect();
        eprintln!(
            "switchyard: found {} live sandbox holder(s) without state: {}; stopping them",
            strays.len(),
            list.join(", ")
        );
        for (holder, sandbox, why) in strays {
            tracing::warn!(pid = holder.pid, sandbox = %sandbox, reason = why, "a live sandbox holder that state does not account for: stopping it");
            if ns_identity(&holder.ns_path(NsKind::Pid))
                == ns_identity(Path::new("/proc/self/ns/pid"))
            {
                if let Ok(pin) = std::fs::File::open(holder.ns_path(NsKind::Mount)) {
                    if holder.is_alive() {
                        kill_processes_in(&pin);
                    }
                }
            }
            if let Err(e) = holder.terminate() {
                tracing::error!(pid = holder.pid, error = %e, "could not stop a stray holder");
                eprintln!(
                    "switchyard: could not stop sandbox holder {}: {e}",
                    holder.pid
                );
            }
        }
    }

    /// Deletes TAPs the journals list but no endpoint owns (a crash
    /// between an endpoint's removal from state and its TAP's deletion),
    /// and forgets the journals of sandboxes that are gone — after deleting
    /// their TAPs from adopted namespaces, which outlive them.
    fn remove_unowned_taps(&mut self, controller: &Controller) {
        let Ok(entries) = std::fs::read_dir(self.opts.state_dir.join("sandboxes")) else {
            return;
        };
        for entry in entries.flatten() {
            let Some(id) = entry.file_name().to_str().map(str::to_string) else {
                continue;
            };
            let journal = self.read_journal(&id);
            let (target, owned): (Option<NetnsTarget>, BTreeSet<String>) = match controller
                .sandbox_by_id(&id)
            {
                Some(sandbox) => (
                    self.target_of(controller, sandbox),
                    controller
                        .endpoints_of_sandbox(&id)
                        .iter()
                        .map(|e| e.ifname.clone())
                        .collect(),
                ),
                None => {
                    let target = journal.netns.as_ref().and_then(|(path, expected)| {
                        let file = std::fs::File::open(path).ok()?;
                        use std::os::unix::fs::MetadataExt;
                        let meta = file.metadata().ok()?;
                        (&format!("{}:{}", meta.dev(), meta.ino()) == expected)
                            .then(|| (file, path.clone()))
                    });
                    if let Some((file, path)) = target {
                        let target = fd_target(&file);
                        for ifname in &journal.taps {
                            tracing::warn!(%path, %ifname, "deleting a TAP left in an adopted namespace by a container that is gone");
                            if let Err(e) = NsSession::open(&self.opts.exe, &target)
                                .and_then(|s| s.delete_tap(ifname))
                            {
                                tracing::error!(%path, %ifname, error = %e, "could not delete a leftover TAP");
                            }
                        }
                    }
                    let _ = std::fs::remove_dir_all(entry.path());
                    continue;
                }
            };
            let unowned: Vec<&String> = journal.taps.difference(&owned).collect();
            let Some(target) = target.filter(target_alive) else {
                continue;
            };
            if unowned.is_empty() {
                continue;
            }
            let session = match NsSession::open(&self.opts.exe, &target) {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(sandbox = %id, error = %e, "cannot enter a namespace to delete leftover TAPs");
                    continue;
                }
            };
            for ifname in unowned {
                tracing::warn!(sandbox = %id, %ifname, "deleting a TAP that no endpoint owns (left by a crash)");
                match session.delete_tap(ifname) {
                    Ok(()) => self.journal_remove(&id, ifname),
                    Err(e) => {
                        tracing::error!(sandbox = %id, %ifname, error = %e, "could not delete a leftover TAP")
                    }
                }
            }
        }
    }

    /// Where a sandbox's network namespace is: its (owner's) holder, or the
    /// pinned adopted namespace. `None` for host sandboxes, and for adopted
    /// ones whose namespace could not be verified (gone, or replaced).
    pub(crate) fn target_of(
        &self,
        controller: &Controller,
        sandbox: &Sandbox,
    ) -> Option<NetnsTarget> {
        let owner = controller.namespace_owner(sandbox);
        if owner.labels.contains_key(LABEL_NETNS) {
            return self.netns_pins.get(&owner.id).map(fd_target);
        }
        holder_of(owner).map(NetnsTarget::Holder)
    }

    /// Opens an adopted namespace and keeps it if it is still the one
    /// recorded at `attach`. False (and nothing kept) otherwise.
    fn pin_netns(&mut self, sandbox: &Sandbox) -> bool {
        use std::os::unix::fs::MetadataExt;
        let (Some(path), Some(expected)) = (
            sandbox.labels.get(LABEL_NETNS),
            sandbox.labels.get(LABEL_NETNS_ID),
        ) else {
            return false;
        };
        let Ok(file) = std::fs::File::open(path) else {
            return false;
        };
        let Ok(meta) = file.metadata() else {
            return false;
        };
        if &format!("{}:{}", meta.dev(), meta.ino()) != expected {
            tracing::warn!(container = %sandbox.name, %path, "the namespace at this path is not the one adopted; not touching it");
            return false;
        }
        self.netns_pins.insert(sandbox.id.clone(), file);
        true
    }

    /// Keeps a descriptor of a live holder's mount namespace when the
    /// holder shares our PID namespace (see `mount_pins`). The holder is
    /// checked alive (pid and start time) after opening, so the descriptor
    /// cannot belong to a reused pid.
    fn pin_mount_namespace(&mut self, sandbox_id: &str, holder: &Holder) {
        if !holder.is_alive() {
            return;
        }
        if ns_identity(&holder.ns_path(NsKind::Pid)) != ns_identity(Path::new("/proc/self/ns/pid"))
        {
            // Its own PID namespace: everything inside dies with it.
            return;
        }
        let Ok(file) = std::fs::File::open(holder.ns_path(NsKind::Mount)) else {
            return;
        };
        if holder.is_alive() {
            self.mount_pins.insert(sandbox_id.to_string(), file);
        }
    }

    /// The interface name a new endpoint of `sandbox_key` must use: `None`
    /// (the controller's lowest free `ethN`) for our own namespaces; for an
    /// adopted one, the lowest `ethN` that neither our endpoints nor the
    /// namespace's own interfaces use.
    pub(crate) fn interface_name_for(
        &self,
        controller: &Controller,
        sandbox_key: &str,
    ) -> Result<Option<String>, RuntimeError> {
        let Ok(sandbox) = controller.sandbox(sandbox_key) else {
            return Ok(None);
        };
        let owner = controller.namespace_owner(sandbox);
        if !owner.labels.contains_key(LABEL_NETNS) {
            return Ok(None);
        }
        let Some(target) = self.target_of(controller, sandbox) else {
            return Ok(None);
        };
        let session = NsSession::open(&self.opts.exe, &target)?;
        let ours: Vec<String> = controller
            .endpoints_of_sandbox(&owner.id)
            .iter()
            .map(|e| e.ifname.clone())
            .collect();
        for i in 0..256 {
            let name = format!("eth{i}");
            if !ours.contains(&name) && !session.link_exists(&name)? {
                return Ok(Some(name));
            }
        }
        Err(RuntimeError::User(format!(
            "container {}: no free ethN interface name in its namespace",
            sandbox.name
        )))
    }

    /// Refuses to remove a container whose command still runs, unless
    /// forced (then the command is killed with it).
    pub(crate) fn check_removable(
        &self,
        _controller: &Controller,
        sandbox: &Sandbox,
        force: bool,
    ) -> Result<(), RuntimeError> {
        if let Some(p) = process_of(sandbox) {
            if !force && p.exit_code.is_none() && command_alive(&p) {
                return Err(RuntimeError::User(format!(
                    "container {} is running `{}` (pid {}); stop it first or use rm -f",
                    sandbox.name,
                    p.command.join(" "),
                    p.pid
                )));
            }
        }
        Ok(())
    }

    /// Records the command a client started in a sandbox.
    pub(crate) fn record_process(
        &mut self,
        controller: &mut Controller,
        key: &str,
        report: ProcessReport,
    ) -> Result<(), RuntimeError> {
        let labels = BTreeMap::from([(
            LABEL_PROCESS.to_string(),
            serde_json::to_string(&report).expect("serialises"),
        )]);
        controller.set_sandbox_labels(key, labels)?;
        Ok(())
    }

    /// The API's view of a container.
    pub(crate) fn container_info(
        &self,
        controller: &Controller,
        sandbox: &Sandbox,
    ) -> ContainerInfo {
        let target = self.target_of(controller, sandbox);
        let alive = match &target {
            Some(t) => target_alive(t),
            None => legacy_host(sandbox),
        };
        let holder = holder_of(sandbox);
        let mode = match &sandbox.mode {
            NetnsMode::Private if sandbox.labels.contains_key(LABEL_NETNS) => {
                "attached".to_string()
            }
            NetnsMode::Private => "private".to_string(),
            NetnsMode::Host => "host".to_string(),
            NetnsMode::None => "none".to_string(),
            NetnsMode::Container(id) => {
                format!(
                    "container:{}",
                    controller
                        .sandbox_by_id(id)
                        .map(|s| s.name.as_str())
                        .unwrap_or(id)
                )
            }
        };
        let networks = controller
            .endpoints_of_sandbox(&controller.namespace_owner(sandbox).id)
            .into_iter()
            .map(|e| Attachment {
                network: controller
                    .network_by_id(&e.network_id)
                    .map(|n| n.name.clone())
                    .unwrap_or_default(),
                ifname: e.ifname.clone(),
                ipv4: e.ipv4.map(|n| n.to_string()),
                ipv6: e.ipv6.map(|n| n.to_string()),
                mac: e.mac.map(|m| m.to_string()),
                aliases: e.aliases.clone(),
            })
            .collect();
        let mut process = process_of(sandbox);
        if let Some(p) = &mut process {
            if p.exit_code.is_none() && !command_alive(p) {
                p.exit_code = Some(-1);
            }
        }
        let ports = sandbox
            .labels
            .get(LABEL_PORTS)
            .and_then(|j| serde_json::from_str(j).ok())
            .unwrap_or_default();
        let extra_hosts = sandbox
            .labels
            .get(LABEL_EXTRA_HOSTS)
            .map(|l| {
                l.split(',')
                    .filter(|e| !e.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        ContainerInfo {
            ports,
            extra_hosts,
            id: sandbox.id.clone(),
            name: sandbox.name.clone(),
            hostname: sandbox.hostname.clone(),
            mode,
            status: if alive {
                "running".into()
            } else {
                "gone".into()
            },
            holder_pid: holder.as_ref().map(|h| h.pid),
            holder_start_time: holder.as_ref().map(|h| h.start_time),
            netns: match &target {
                Some(NetnsTarget::Holder(h)) => Some(format!("/proc/{}/ns/net", h.pid)),
                Some(NetnsTarget::Path(_)) => controller
                    .namespace_owner(sandbox)
                    .labels
                    .get(LABEL_NETNS)
                    .cloned(),
                None => None,
            },
            user_namespace: !crate::paths::is_root() && holder.is_some(),
            capabilities: holder
                .as_ref()
                .map(|_| match sandbox.labels.get(LABEL_CAPS) {
                    Some(names) => names
                        .split(',')
                        .filter(|n| !n.is_empty())
                        .map(str::to_string)
                        .collect(),
                    None => Capabilities::docker_default().names(),
                }),
            pid: holder.as_ref().map(|_| {
                sandbox
                    .labels
                    .get(LABEL_PID)
                    .cloned()
                    .unwrap_or_else(|| "host".to_string())
            }),
            log: holder.as_ref().map(|_| {
                self.sandbox_dir(&sandbox.id)
                    .join("cmd.log")
                    .display()
                    .to_string()
            }),
            command: process,
            networks,
        }
    }

    fn report(&self) -> Option<switchyard_linux::DataplaneReport> {
        self.dataplane.as_ref().and_then(|d| d.report().ok())
    }

    /// Totals over a network's ports.
    pub(crate) fn network_counters(&self, controller: &Controller, network: &Network) -> Value {
        let Some(snap) = self.report() else {
            return Value::Null;
        };
        let segment = controller.segment_of(&network.id);
        let mut total = PortCounters::default();
        let mut ports = 0;
        for p in snap
            .ports
            .iter()
            .filter(|p| Some(p.config.segment) == segment)
        {
            total.accumulate(&p.counters);
            ports += 1;
        }
        let mut v = counters_json(&total);
        v["ports"] = json!(ports);
        v
    }

    /// Per-container counters of a network's ports, keyed by container.
    pub(crate) fn port_counters(&self, controller: &Controller, network: &Network) -> Value {
        let Some(snap) = self.report() else {
            return Value::Null;
        };
        let mut out = serde_json::Map::new();
        for (endpoint_id, live) in self
            .ports
            .iter()
            .filter(|(_, l)| l.network_id == network.id)
        {
            let Some(p) = snap.ports.iter().find(|p| p.id == live.port) else {
                continue;
            };
            let name = controller
                .endpoint(endpoint_id)
                .map(|e| e.name.clone())
                .unwrap_or_default();
            let mut v = counters_json(&p.counters);
            v["port"] = json!(p.id.to_string());
            v["ifname"] = json!(live.ifname);
            v["tx_errors"] = json!(p.io.tx_errors);
            out.insert(name, v);
        }
        Value::Object(out)
    }

    /// Ports, FDB and bridge counters, for `GET /v1/switch`.
    pub(crate) fn switch_view(&self, controller: &Controller) -> Value {
        let Some(snap) = self.report() else {
            return Value::Null;
        };
        let label = |id: PortId| {
            snap.ports
                .iter()
                .find(|p| p.id == id)
                .map(|p| p.config.label.clone())
        };
        let now = snap.now_nanos;
        let net_of = |seg: u32| {
            controller
                .networks()
                .find(|n| controller.segment_of(&n.id).map(|s| s.0) == Some(seg))
                .map(|n| n.name.clone())
                .unwrap_or_default()
        };
        json!({
            "Ports": snap.ports.iter().map(|p| {
                let mut v = counters_json(&p.counters);
                v["port"] = json!(p.id.to_string());
                v["label"] = json!(p.config.label);
                v["network"] = json!(net_of(p.config.segment.0));
                v["tx_errors"] = json!(p.io.tx_errors);
                v
            }).collect::<Vec<_>>(),
            "Fdb": snap.fdb.iter().map(|e| json!({
                "network": net_of(e.segment.0),
                "mac": e.mac.to_string(),
                "port": e.port.to_string(),
                "label": label(e.port),
                "age_seconds": now.saturating_sub(e.last_seen.as_nanos()) as f64 / 1e9,
            })).collect::<Vec<_>>(),
            "Stats": serde_json::to_value(&snap.stats).expect("serialises"),
            "Dns": self.dns.stats(),
        })
    }

    /// Stops the data plane (TAPs persist for the next start) and DNS.
    pub(crate) fn shutdown(&mut self) {
        self.dns.stop();
        if let Some(d) = self.dataplane.take() {
            d.stop();
        }
    }
}

fn counters_json(c: &PortCounters) -> Value {
    let drops: serde_json::Map<String, Value> = switchyard_switch::DropReason::ALL
        .iter()
        .filter(|r| c.drops_for(**r) > 0)
        .map(|r| (r.name().to_string(), json!(c.drops_for(*r))))
        .collect();
    json!({
        "rx_frames": c.rx_frames, "rx_bytes": c.rx_bytes,
        "tx_frames": c.tx_frames, "tx_bytes": c.tx_bytes,
        "tx_mtu_exceeded": c.tx_mtu_exceeded,
        "dropped": c.dropped(), "drops": drops,
    })
}

/// The holder recorded on a sandbox, if any.
pub(crate) fn holder_of(sandbox: &Sandbox) -> Option<Holder> {
    sandbox
        .labels
        .get(LABEL_HOLDER)
        .and_then(|v| serde_json::from_str(v).ok())
}

fn process_of(sandbox: &Sandbox) -> Option<ProcessReport> {
    sandbox
        .labels
        .get(LABEL_PROCESS)
        .and_then(|v| serde_json::from_str(v).ok())
}

/// A `--network host` container made before host containers had a holder
/// (and so before confinement was recorded): alive without one.
fn legacy_host(sandbox: &Sandbox) -> bool {
    sandbox.mode == NetnsMode::Host
        && holder_of(sandbox).is_none()
        && !sandbox.labels.contains_key(LABEL_CAPS)
}

/// A namespace we hold open, as a path any process can open:
/// `/proc/<daemon>/fd/<n>`.
fn fd_target(file: &std::fs::File) -> NetnsTarget {
    use std::os::fd::AsRawFd;
    NetnsTarget::Path(PathBuf::from(format!(
        "/proc/{}/fd/{}",
        std::process::id(),
        file.as_raw_fd()
    )))
}

/// The first 12 hex digits of an id, as `ps` shows it.
fn short_id(id: &str) -> &str {
    &id[..id.len().min(12)]
}

/// `(device, inode)` of a namespace file: what tells two namespaces apart.
fn ns_identity(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

fn target_alive(target: &NetnsTarget) -> bool {
    match target {
        NetnsTarget::Holder(h) => h.is_alive(),
        NetnsTarget::Path(p) => p.exists(),
    }
}

/// Whether a reported command still runs: the same pid *and* start time
/// (reports without a start time fall back to the pid alone).
fn command_alive(p: &ProcessReport) -> bool {
    match p.start_time {
        Some(start_time) => Holder {
            pid: p.pid,
            start_time,
        }
        .is_alive(),
        None => process_alive(p.pid),
    }
}

fn process_alive(pid: u32) -> bool {
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    // Signal 0 only checks existence; a zombie counts as gone.
    // SAFETY: kill with signal 0 has no effect beyond the check.
    let exists = unsafe { libc::kill(pid, 0) } == 0;
    exists
        && std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| {
                !s.rsplit(')')
                    .next()
                    .unwrap_or("")
                    .trim_start()
                    .starts_with('Z')
            })
            .unwrap_or(false)
}

/// SIGKILLs every process in the mount namespace `pin` refers to. The pin
/// keeps that namespace alive, so its identity cannot have been reused by
/// another namespace. Only processes of our own user are visible to a
/// rootless daemon, which are exactly those it may have started there.
fn kill_processes_in(pin: &std::fs::File) {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = pin.metadata() else { return };
    let target = (meta.dev(), meta.ino());
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.parse::<i32>().ok()) else {
            continue;
        };
        if pid as u32 == std::process::id() {
            continue;
        }
        if ns_identity(Path::new(&format!("/proc/{pid}/ns/mnt"))) == Some(target) {
            // SAFETY: sending SIGKILL to a process inside the pinned namespace.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

/// Writes a small file durably enough for our purposes (it is rewritten
/// in place, never renamed: a bind mount pins the inode).
fn write_file(path: &Path, bytes: &[u8]) -> Result<(), RuntimeError> {
    let mut f = std::fs::File::create(path)
        .map_err(|e| RuntimeError::Other(format!("creating {}: {e}", path.display())))?;
    f.write_all(bytes)
        .map_err(|e| RuntimeError::Other(format!("writing {}: {e}", path.display())))
}
