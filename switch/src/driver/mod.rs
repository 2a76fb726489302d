//! Drivers turn control-plane objects into data-plane ports.
//!
//! A driver says what a network of its kind needs (IPAM? a switch segment?
//! endpoints at all?), validates its `-o` options, and plans ports: the
//! [`PortConfig`] the switch core gets and the [`BackendPlan`] the data
//! plane realises (a TAP in a namespace in real mode, a smoltcp interface
//! in the simulator). Ports come from three places, each a method of
//! [`Driver`]: an endpoint (its interface in a sandbox), a network as a
//! whole (a gateway, an uplink to a parent link), and a peer host on the
//! network (a cable to its switch in the simulator, a VXLAN tunnel to its
//! VTEP). Drivers never do I/O themselves, so the same driver serves real
//! mode and the simulator, and both get every port through them.
//!
//! `bridge`, `host`, `null` and `overlay` (a tunnel port per remote VTEP,
//! in one horizon group) are here; `macvlan` (an uplink port per network
//! on a parent link and VLAN) plugs in as a new [`BackendPlan`] kind
//! without changing the trait.

mod bridge;
mod exclusive;
mod overlay;

pub use bridge::BridgeDriver;
pub use exclusive::ExclusiveDriver;
pub use overlay::{OverlayDriver, DEFAULT_VXLAN_PORT, FIRST_AUTO_VNI};

use crate::controller::model::{Endpoint, Network, NetworkSpec, Scope};
use crate::controller::ControllerError;
use crate::mac::MacAddr;
use crate::port::{PortConfig, SegmentId};
use ipnetwork::{Ipv4Network, Ipv6Network};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};

/// What the controller must do for networks of a driver.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DriverCapabilities {
    /// Local or global networks.
    pub scope: Scope,
    /// Networks get IPv4 (and optionally IPv6) subnets from IPAM.
    pub uses_ipam: bool,
    /// Networks get a switch segment.
    pub uses_segment: bool,
    /// Users may create networks of this driver (false for `host`/`null`:
    /// exactly one predefined instance each).
    pub user_creatable: bool,
    /// A sandbox on such a network may join no other network.
    pub exclusive: bool,
    /// Networks have a gateway on the host that routes to the outside, so
    /// an endpoint may carry its sandbox's default route (false for
    /// overlays, which reach only each other; as with Docker, a container
    /// reaches the outside through a second, bridge network).
    pub routes_out: bool,
    /// Networks carry a cluster-wide identity on the wire (a VNI), which
    /// the controller allocates uniquely across every host of the store.
    pub global_segment: bool,
}

/// How the backend should realise an endpoint's interface.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterfacePlan {
    /// Name inside the sandbox (`eth0`).
    pub ifname: String,
    /// MAC address.
    pub mac: MacAddr,
    /// IPv4 address and prefix.
    pub ipv4: Option<Ipv4Network>,
    /// IPv6 address and prefix.
    pub ipv6: Option<Ipv6Network>,
    /// IPv4 gateway (for the default route and ARP).
    pub gateway4: Option<Ipv4Addr>,
    /// IPv6 gateway.
    pub gateway6: Option<Ipv6Addr>,
    /// Install the default route(s) through this interface.
    pub default_route: bool,
    /// Interface MTU.
    pub mtu: u32,
}

/// What the data plane creates behind a planned port: where its frames
/// come from and go to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BackendPlan {
    /// An interface inside the sandbox's namespace, one station behind it.
    SandboxInterface(InterfacePlan),
    /// A link that carries the network's frames unchanged to the switch of
    /// a peer host (the simulator's cables). Many stations sit behind it.
    PeerLink {
        /// The peer host.
        peer: String,
    },
    /// The network's gateway: a router on the segment that answers for
    /// the gateway addresses and relays containers' traffic to the host's
    /// own sockets (NAT out, published ports in).
    Gateway(GatewayPlan),
    /// A VXLAN tunnel to a peer host's VTEP: the network's frames,
    /// encapsulated with its VNI, over the host's underlay socket.
    Tunnel {
        /// The network's VNI.
        vni: u32,
        /// The peer's VTEP address.
        remote: std::net::IpAddr,
    },
}

/// What a network's gateway port is: its identity on the segment and the
/// subnets it routes for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GatewayPlan {
    /// The gateway's MAC on the segment.
    pub mac: MacAddr,
    /// The IPv4 gateway address with the subnet's prefix.
    pub ipv4: Option<Ipv4Network>,
    /// The IPv6 gateway address with the subnet's prefix.
    pub ipv6: Option<Ipv6Network>,
    /// The network's MTU.
    pub mtu: u32,
}

/// A host that shares a network with this one, as the drivers see it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerHost {
    /// Its name (a host id).
    pub name: String,
    /// The name of what reaches it (a cable's name, a VTEP address), for
    /// port labels: two cables to one peer are two ports.
    pub link: String,
    /// How it is reached.
    pub via: PeerVia,
}

/// How a peer host's switch is reached.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PeerVia {
    /// A direct L2 link between the two switches (a simulated cable): the
    /// frames travel as they are.
    Cable,
    /// An IP underlay: frames must be encapsulated (VXLAN) to its VTEP.
    Underlay(std::net::IpAddr),
}

/// Who a planned port serves, so the data plane can find it again when
/// that owner goes.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum PortOwner {
    /// One endpoint, by id.
    Endpoint(String),
    /// A network as a whole (a gateway, an uplink), by id.
    Network(String),
    /// A peer host on a network, through one link.
    Peer {
        /// The network's id.
        network_id: String,
        /// The peer host's name.
        peer: String,
        /// The link's name ([`PeerHost::link`]).
        link: String,
    },
}

/// The data-plane side of one port: who it serves, the switch port and
/// what backs it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortPlan {
    /// Who this port serves.
    pub owner: PortOwner,
    /// Segment and port security for the switch core.
    pub port: PortConfig,
    /// What the backend creates.
    pub backend: BackendPlan,
}

impl PortPlan {
    /// The interface plan of an endpoint's port (`None` for network and
    /// peer ports).
    pub fn interface(&self) -> Option<&InterfacePlan> {
        match &self.backend {
            BackendPlan::SandboxInterface(iface) => Some(iface),
            BackendPlan::PeerLink { .. } | BackendPlan::Gateway(_) | BackendPlan::Tunnel { .. } => {
                None
            }
        }
    }
}

/// A network driver.
pub trait Driver: Send + Sync {
    /// The name users pass to `-d` and `network ls` shows.
    fn name(&self) -> &'static str;

    /// What networks of this driver need.
    fn capabilities(&self) -> DriverCapabilities;

    /// Checks `-o` options and anything else driver-specific; returns the
    /// interface MTU the network's endpoints get.
    fn validate(&self, spec: &NetworkSpec) -> Result<u32, ControllerError>;

    /// The cluster-wide segment (VNI) the user asked for with `-o`, for
    /// drivers with [`DriverCapabilities::global_segment`]; `None` lets
    /// the controller pick one.
    fn requested_global_segment(
        &self,
        _spec: &NetworkSpec,
    ) -> Result<Option<u32>, ControllerError> {
        Ok(None)
    }

    /// Plans the port for an endpoint of this host, or `None` when
    /// endpoints of this driver have no data-plane port (host, null).
    /// `segment` is this host's switch segment for the network (host-local,
    /// so not part of the shared [`Network`]).
    fn plan_endpoint_port(
        &self,
        network: &Network,
        segment: Option<SegmentId>,
        endpoint: &Endpoint,
    ) -> Option<PortPlan>;

    /// Plans the ports a network has as a whole on this host, whatever its
    /// endpoints: a gateway, an uplink to a parent link. None by default.
    fn plan_network_ports(&self, _network: &Network, _segment: Option<SegmentId>) -> Vec<PortPlan> {
        Vec::new()
    }

    /// Plans the ports that join this host's part of `network` to a peer
    /// host's: a cable's trunk port, a tunnel to its VTEP. None by default
    /// (a local network reaches no other host).
    fn plan_peer_ports(
        &self,
        _network: &Network,
        _segment: Option<SegmentId>,
        _peer: &PeerHost,
    ) -> Vec<PortPlan> {
        Vec::new()
    }
}

/// The drivers known to a controller, by name.
pub struct DriverRegistry {
    drivers: BTreeMap<&'static str, Box<dyn Driver>>,
}

/// Drivers that are part of the design but not available to users yet
/// (the daemon does not register `overlay` until it runs with a shared
/// store and a VTEP), so users get "not available yet" rather than
/// "unknown".
pub const PLANNED_DRIVERS: [&str; 2] = ["overlay", "macvlan"];

impl DriverRegistry {
    /// An empty registry.
    pub fn empty() -> Self {
        DriverRegistry {
            drivers: BTreeMap::new(),
        }
    }

    /// `bridge`, `host` and `null`.
    pub fn builtin() -> Self {
        let mut r = Self::empty();
        r.register(Box::new(BridgeDriver));
        r.register(Box::new(ExclusiveDriver::HOST));
        r.register(Box::new(ExclusiveDriver::NULL));
        r
    }

    /// The built-in drivers and `overlay`, for a controller whose store is
    /// shared by several hosts and whose host has a VTEP; `underlay_mtu`
    /// is the MTU of the link the VXLAN packets leave by.
    pub fn with_overlay(underlay_mtu: u32, ipv6_underlay: bool) -> Self {
        let mut r = Self::builtin();
        r.register(Box::new(OverlayDriver::new(underlay_mtu, ipv6_underlay)));
        r
    }

    /// Adds (or replaces) a driver.
    pub fn register(&mut self, driver: Box<dyn Driver>) {
        self.drivers.insert(driver.name(), driver);
    }

    /// Finds a driver, with an error that lists the choices.
    pub fn get(&self, name: &str) -> Result<&dyn Driver, ControllerError> {
        if let Some(d) = self.drivers.get(name) {
            return Ok(d.as_ref());
        }
        if PLANNED_DRIVERS.contains(&name) {
            return Err(ControllerError::DriverNotYetAvailable {
                driver: name.to_string(),
            });
        }
        Err(ControllerError::UnknownDriver {
            driver: name.to_string(),
            known: self.names().join(", "),
        })
    }

    /// Names of the registered drivers, sorted.
    pub fn names(&self) -> Vec<&'static str> {
        self.drivers.keys().copied().collect()
    }
}

impl Default for DriverRegistry {
    fn default() -> Self {
        Self::builtin()
    }
}

/// The port of an endpoint that is an interface in its sandbox, one
/// station on the network's segment: what `bridge` and `overlay` plan
/// alike. `routes` says whether the interface gets the network's gateways
/// (and so may carry the default route).
pub(crate) fn sandbox_interface_port(
    network: &Network,
    segment: Option<SegmentId>,
    endpoint: &Endpoint,
    routes: bool,
) -> Option<PortPlan> {
    let segment = segment?;
    let mac = endpoint.mac?;
    let binding = crate::port::PortBinding::Endpoint {
        mac,
        ipv4: endpoint.ipv4.map(|n| n.ip()),
        ipv6: endpoint.ipv6.map(|n| n.ip()),
    };
    let (mut gateway4, mut gateway6) = (None, None);
    if routes {
        for subnet in network.ipv4.iter().chain(network.ipv6.iter()) {
            match subnet.gateway {
                std::net::IpAddr::V4(g) => gateway4 = Some(g),
                std::net::IpAddr::V6(g) => gateway6 = Some(g),
            }
        }
    }
    Some(PortPlan {
        owner: PortOwner::Endpoint(endpoint.id.clone()),
        port: PortConfig {
            segment,
            binding,
            label: format!("{}/{}", endpoint.name, endpoint.ifname),
            mtu: network.mtu,
            horizon: None,
        },
        backend: BackendPlan::SandboxInterface(InterfacePlan {
            ifname: endpoint.ifname.clone(),
            mac,
            ipv4: endpoint.ipv4,
            ipv6: endpoint.ipv6,
            gateway4,
            gateway6,
            default_route: endpoint.default_route && routes,
            mtu: network.mtu,
        }),
    })
}

/// The trunk port that joins a network's segment to a peer host, many
/// stations behind it: a cable for `bridge`, a tunnel for `overlay`.
pub(crate) fn peer_trunk_port(
    network: &Network,
    segment: SegmentId,
    peer: &PeerHost,
    label: String,
    horizon: Option<crate::port::HorizonGroup>,
    backend: BackendPlan,
) -> PortPlan {
    PortPlan {
        owner: PortOwner::Peer {
            network_id: network.id.clone(),
            peer: peer.name.clone(),
            link: peer.link.clone(),
        },
        port: PortConfig {
            segment,
            binding: crate::port::PortBinding::Trunk,
            label,
            mtu: network.mtu,
            horizon,
        },
        backend,
    }
}

/// Options every driver accepts (labels of intent Docker tools pass).
pub(crate) const MTU_OPTION: &str = "com.docker.network.driver.mtu";

/// Parses the MTU option, if present.
pub(crate) fn mtu_option(spec: &NetworkSpec, default: u32) -> Result<u32, ControllerError> {
    match spec
        .options
        .get(MTU_OPTION)
        .or_else(|| spec.options.get("mtu"))
    {
        None => Ok(default),
        Some(v) => match v.parse::<u32>() {
            Ok(m) if (68..=65_521).contains(&m) => Ok(m),
            _ => Err(ControllerError::InvalidOption {
                option: MTU_OPTION.to_string(),
                value: v.clone(),
                hint:
                    "give an MTU between 68 and 65521, e.g. -o com.docker.network.driver.mtu=1500"
                        .to_string(),
            }),
        },
    }
}
