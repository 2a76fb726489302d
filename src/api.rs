//! The daemon's API: request and response bodies shared by the daemon and
//! the client. Every route is documented in `docs/api.md`.

use serde::{Deserialize, Serialize};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

/// Version prefix of every route.
pub const PREFIX: &str = "/v1";

/// Body of every non-2xx response.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorBody {
    /// One line saying what was wrong and how to fix it.
    pub message: String,
    /// `user` for mistakes in the request (client exits 1), `internal` for
    /// faults of the daemon or the system (client exits 3).
    pub kind: String,
}

/// `POST /v1/networks/{name}/connect`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ConnectRequest {
    /// Container name or id.
    pub container: String,
    /// Static IPv4 address.
    pub ip: Option<Ipv4Addr>,
    /// Static IPv6 address.
    pub ip6: Option<Ipv6Addr>,
    /// DNS aliases on this network.
    pub aliases: Vec<String>,
}

/// `POST /v1/networks/{name}/disconnect`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct DisconnectRequest {
    /// Container name or id.
    pub container: String,
    /// Docker's `-f`.
    pub force: bool,
}

/// `POST /v1/containers`: create a sandbox (for `run`) or adopt a namespace
/// (for `attach`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ContainerCreateRequest {
    /// Container name.
    pub name: String,
    /// A network name, `host`, `none` or `container:OTHER`.
    pub network: String,
    /// Static IPv4 address on that network.
    pub ip: Option<Ipv4Addr>,
    /// Static IPv6 address on that network.
    pub ip6: Option<Ipv6Addr>,
    /// DNS aliases on that network.
    pub aliases: Vec<String>,
    /// Adopt this existing network namespace instead of making one.
    pub netns: Option<PathBuf>,
    /// Capabilities to add to Docker's default set (`--cap-add`; `ALL`).
    pub cap_add: Vec<String>,
    /// Capabilities to remove from it (`--cap-drop`; `ALL`).
    pub cap_drop: Vec<String>,
    /// Keep every capability (`--privileged`).
    pub privileged: bool,
    /// `host` to share the host's PID namespace; otherwise the container
    /// gets its own.
    pub pid: Option<String>,
    /// `-p` values as typed (the daemon parses them again and binds them).
    pub publish: Vec<String>,
    /// `--add-host NAME:IP` / `NAME:host-gateway` values as typed.
    pub add_host: Vec<String>,
}

/// `POST /v1/containers/{name}/process`: the client reports the command it
/// started inside a sandbox, so `ps` can show it and `rm -f` can stop it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ProcessReport {
    /// Host pid of the command.
    pub pid: u32,
    /// Its start time (field 22 of `/proc/PID/stat`), so a later process
    /// that reuses the pid is never taken for it.
    pub start_time: Option<u64>,
    /// The command line.
    pub command: Vec<String>,
    /// Exit status, once it has exited.
    pub exit_code: Option<i32>,
}

/// One network membership of a container, for `ps` and `run`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Attachment {
    /// Network name.
    pub network: String,
    /// Interface inside the sandbox.
    pub ifname: String,
    /// `a.b.c.d/len`.
    pub ipv4: Option<String>,
    /// `x::y/len`.
    pub ipv6: Option<String>,
    /// MAC address.
    pub mac: Option<String>,
    /// DNS aliases.
    pub aliases: Vec<String>,
}

/// A container as the API reports it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContainerInfo {
    /// 64 hex digits.
    pub id: String,
    /// Name.
    pub name: String,
    /// Hostname inside.
    pub hostname: String,
    /// `private`, `host`, `none`, `container:NAME` or `attached`.
    pub mode: String,
    /// `running` while its namespace exists, else `gone`.
    pub status: String,
    /// Pid of the process holding the namespaces (none for host/attached).
    pub holder_pid: Option<u32>,
    /// Start time of the holder (clock ticks since boot), which tells it
    /// apart from a later process that reuses its pid.
    pub holder_start_time: Option<u64>,
    /// Path of the network namespace.
    pub netns: Option<String>,
    /// The namespaces are owned by a user namespace (rootless).
    pub user_namespace: bool,
    /// Where a detached command's output goes.
    pub log: Option<String>,
    /// The capabilities its commands keep (`run` and `exec` narrow them to
    /// this); none for adopted namespaces, whose commands are not confined.
    #[serde(default)]
    pub capabilities: Option<Vec<String>>,
    /// `private` (its own PID namespace) or `host`.
    #[serde(default)]
    pub pid: Option<String>,
    /// The command started in it, if reported.
    pub command: Option<ProcessReport>,
    /// Networks joined, in connect order.
    pub networks: Vec<Attachment>,
    /// Published ports, with the host port the daemon bound.
    #[serde(default)]
    pub ports: Vec<switchyard_switch::controller::publish::PortMapping>,
    /// `--add-host` entries, `NAME:IP` with `host-gateway` resolved.
    #[serde(default)]
    pub extra_hosts: Vec<String>,
}
