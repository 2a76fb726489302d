//! The CNM objects the controller owns: networks, endpoints and sandboxes,
//! and the requests that create them. Plain serde data: this is exactly
//! what the store persists (networks and endpoints are shared by every host
//! of a store, sandboxes are host-local; see `controller/keys.rs`).

use crate::mac::MacAddr;
use ipnetwork::{IpNetwork, Ipv4Network, Ipv6Network};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use switchyard_ipam::PoolId;

/// Docker's scope of a network: visible on this host only, or shared by
/// every host of a cluster (overlay, through etcd).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// This host only.
    Local,
    /// All hosts sharing a store.
    Global,
}

impl Scope {
    /// `local` or `global`, as Docker prints it.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Local => "local",
            Scope::Global => "global",
        }
    }
}

/// One subnet of a network, as IPAM gave it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubnetConfig {
    /// The IPAM pool backing this subnet.
    pub pool: PoolId,
    /// The subnet.
    pub subnet: IpNetwork,
    /// The gateway address (reserved in IPAM, the sandboxes' default route).
    pub gateway: IpAddr,
    /// Dynamic allocation is limited to this range, when set.
    pub ip_range: Option<IpNetwork>,
    /// Named reserved addresses.
    pub aux_addresses: BTreeMap<String, IpAddr>,
}

/// A network: a broadcast domain whose endpoints reach each other.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Network {
    /// 64 hex digits, like Docker's.
    pub id: String,
    /// Unique name.
    pub name: String,
    /// Driver name (`bridge`, `host`, `null`, ...).
    pub driver: String,
    /// Local or global.
    pub scope: Scope,
    /// The network's identity on the wire shared by every host, for drivers
    /// that carry it between hosts (the VXLAN VNI of an overlay network);
    /// `None` for single-host drivers. Not the switch segment: that is
    /// host-local (`Controller::segment_of`), because each host numbers the
    /// segments of its own switch, and this object is shared by every host.
    pub global_segment: Option<u32>,
    /// IPv4 subnet, for drivers that use IPAM.
    pub ipv4: Option<SubnetConfig>,
    /// IPv6 subnet, when `--ipv6` was given.
    pub ipv6: Option<SubnetConfig>,
    /// No route out: no default route in sandboxes, no DNS forwarding.
    pub internal: bool,
    /// Container names and aliases resolve on this network (false only for
    /// the default `bridge`, as in Docker).
    pub dns_names: bool,
    /// One of the networks created at first start (`bridge`, `host`,
    /// `none`); they cannot be removed.
    pub predefined: bool,
    /// Driver options (`-o K=V`).
    pub options: BTreeMap<String, String>,
    /// User labels.
    pub labels: BTreeMap<String, String>,
    /// Interface MTU for endpoints on this network.
    pub mtu: u32,
}

/// An interface joining a sandbox to a network.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    /// 64 hex digits.
    pub id: String,
    /// The container's name, as Docker names endpoints.
    pub name: String,
    /// The network joined.
    pub network_id: String,
    /// The sandbox joined.
    pub sandbox_id: String,
    /// Interface name inside the sandbox (`eth0`, `eth1`, ... in connect
    /// order); empty for drivers without an interface (host, null).
    pub ifname: String,
    /// MAC address (Docker style, derived from the IPv4 address).
    pub mac: Option<MacAddr>,
    /// IPv4 address with the subnet's prefix length.
    pub ipv4: Option<Ipv4Network>,
    /// IPv6 address with the subnet's prefix length.
    pub ipv6: Option<Ipv6Network>,
    /// True when the address was asked for with `--ip`/`--ip6`.
    pub static_ip: bool,
    /// Network-scoped DNS aliases.
    pub aliases: Vec<String>,
    /// This endpoint carries the sandbox's default route.
    pub default_route: bool,
    /// The host whose switch holds the endpoint's port (the controller's
    /// host id): endpoints are shared, so other hosts know where it is.
    pub host: String,
    /// Where other hosts reach this endpoint's host for tunnelled traffic
    /// (its VTEP), when the host has one.
    pub vtep: Option<IpAddr>,
}

/// How a sandbox gets its network namespace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "sandbox", rename_all = "lowercase")]
pub enum NetnsMode {
    /// Its own namespace with one interface per network joined.
    Private,
    /// The host's own namespace: no endpoint interfaces, no IPAM.
    Host,
    /// Its own namespace with loopback only, forever.
    None,
    /// Another sandbox's namespace (`--network container:OTHER`); the id.
    Container(String),
}

/// A container's network namespace and its endpoints.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sandbox {
    /// 64 hex digits.
    pub id: String,
    /// Unique container name.
    pub name: String,
    /// Hostname inside the sandbox.
    pub hostname: String,
    /// How the namespace is obtained.
    pub mode: NetnsMode,
    /// Endpoint ids in connect order.
    pub endpoints: Vec<String>,
    /// Runtime facts recorded by whoever runs the sandbox (real mode: the
    /// namespace path and holder pid; simulator: the host). Opaque to the
    /// controller.
    pub labels: BTreeMap<String, String>,
}

/// A request to create a network (`network create`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct NetworkSpec {
    /// Name (required).
    pub name: String,
    /// Driver; empty means `bridge`.
    pub driver: String,
    /// `--subnet`, at most one IPv4 and one IPv6.
    pub subnets: Vec<IpNetwork>,
    /// `--gateway`, each inside one of the subnets.
    pub gateways: Vec<IpAddr>,
    /// `--ip-range`, each inside one of the subnets.
    pub ip_ranges: Vec<IpNetwork>,
    /// `--aux-address NAME=IP`.
    pub aux_addresses: BTreeMap<String, IpAddr>,
    /// `--ipv6`.
    pub ipv6: bool,
    /// `--internal`.
    pub internal: bool,
    /// `-o K=V`.
    pub options: BTreeMap<String, String>,
    /// `--label K=V`.
    pub labels: BTreeMap<String, String>,
}

/// A request to join a sandbox to a network (`network connect`, `run`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct EndpointSpec {
    /// `--ip`.
    pub ipv4: Option<Ipv4Addr>,
    /// `--ip6`.
    pub ipv6: Option<Ipv6Addr>,
    /// `--alias`, repeatable.
    pub aliases: Vec<String>,
    /// `--mac-address`; otherwise derived from the IPv4 address.
    pub mac: Option<MacAddr>,
    /// Interface name inside the sandbox; otherwise the lowest free `ethN`.
    /// The runtime sets it for adopted namespaces, whose own interfaces the
    /// controller cannot see.
    pub ifname: Option<String>,
}

/// A request to create a sandbox.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxSpec {
    /// Unique container name.
    pub name: String,
    /// Hostname; empty means the name.
    #[serde(default)]
    pub hostname: String,
    /// Private, host, none, or another sandbox's (by name or id).
    pub mode: NetnsMode,
    /// Runtime facts (see [`Sandbox::labels`]).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// A filter for `network ls -f`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NetworkFilter {
    /// `-f driver=D` (exact; repeatable, any matches).
    pub drivers: Vec<String>,
    /// `-f name=N` (substring, as Docker; repeatable, any matches).
    pub names: Vec<String>,
    /// `-f id=I` (prefix).
    pub ids: Vec<String>,
    /// `-f scope=S`.
    pub scopes: Vec<String>,
    /// `-f type=custom|builtin`.
    pub types: Vec<String>,
}

impl NetworkFilter {
    /// Parses one `-f key=value` argument into the filter.
    pub fn add(&mut self, arg: &str) -> Result<(), String> {
        let (key, value) = arg
            .split_once('=')
            .ok_or_else(|| format!("bad filter {arg:?}: write KEY=VALUE, e.g. driver=bridge"))?;
        let value = value.to_string();
        match key {
            "driver" => self.drivers.push(value),
            "name" => self.names.push(value),
            "id" => self.ids.push(value),
            "scope" => self.scopes.push(value),
            "type" => match value.as_str() {
                "custom" | "builtin" => self.types.push(value),
                _ => {
                    return Err(format!(
                        "bad filter type={value:?}: use type=custom or type=builtin"
                    ))
                }
            },
            _ => {
                return Err(format!(
                    "unknown filter {key:?}: use driver=, name=, id=, scope= or type="
                ))
            }
        }
        Ok(())
    }

    /// True when `net` passes every given criterion.
    pub fn matches(&self, net: &Network) -> bool {
        fn any(list: &[String], f: impl Fn(&str) -> bool) -> bool {
            list.is_empty() || list.iter().any(|v| f(v))
        }
        any(&self.drivers, |d| net.driver == d)
            && any(&self.names, |n| net.name.contains(n))
            && any(&self.ids, |i| net.id.starts_with(i))
            && any(&self.scopes, |s| net.scope.as_str() == s)
            && any(&self.types, |t| (t == "builtin") == net.predefined)
    }
}
