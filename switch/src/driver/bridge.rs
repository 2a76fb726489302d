//! The `bridge` driver: every endpoint is an interface in its sandbox, one
//! port of the userspace switch, on the network's own segment. A bridge
//! network is local to a host; the one way it reaches another host's
//! switch is a direct cable (the simulator's), planned as a trunk port.

use super::{
    mtu_option, peer_trunk_port, sandbox_interface_port, BackendPlan, Driver, DriverCapabilities,
    GatewayPlan, PeerHost, PeerVia, PortOwner, PortPlan, MTU_OPTION,
};
use crate::controller::model::{Endpoint, Network, NetworkSpec, Scope};
use crate::controller::{shown, ControllerError};
use crate::mac::MacAddr;
use crate::port::{PortBinding, PortConfig, SegmentId};
use ipnetwork::{IpNetwork, Ipv4Network, Ipv6Network};
use std::net::IpAddr;

/// The default single-host driver.
#[derive(Clone, Copy, Debug, Default)]
pub struct BridgeDriver;

/// Docker bridge options that tools commonly pass. They describe kernel
/// bridge knobs with no meaning for a userspace switch; they are accepted
/// and kept (so `inspect` shows them) rather than breaking such scripts.
const ACCEPTED_DOCKER_OPTIONS: [&str; 7] = [
    "com.docker.network.bridge.name",
    "com.docker.network.bridge.enable_icc",
    "com.docker.network.bridge.enable_ip_masquerade",
    "com.docker.network.bridge.host_binding_ipv4",
    "com.docker.network.bridge.default_bridge",
    "com.docker.network.container_iface_prefix",
    "com.docker.network.enable_ipv6",
];

/// Default interface MTU.
pub const DEFAULT_MTU: u32 = 1500;

impl Driver for BridgeDriver {
    fn name(&self) -> &'static str {
        "bridge"
    }

    fn capabilities(&self) -> DriverCapabilities {
        DriverCapabilities {
            scope: Scope::Local,
            uses_ipam: true,
            uses_segment: true,
            user_creatable: true,
            exclusive: false,
            routes_out: true,
            global_segment: false,
        }
    }

    fn validate(&self, spec: &NetworkSpec) -> Result<u32, ControllerError> {
        for key in spec.options.keys() {
            if key != MTU_OPTION && key != "mtu" && !ACCEPTED_DOCKER_OPTIONS.contains(&key.as_str())
            {
                return Err(ControllerError::InvalidOption {
                    option: key.clone(),
                    value: spec.options[key].clone(),
                    hint: format!(
                        "the bridge driver knows {MTU_OPTION} (alias mtu) and accepts Docker's \
                         com.docker.network.bridge.* options; remove -o {}",
                        shown(key)
                    ),
                });
            }
        }
        mtu_option(spec, DEFAULT_MTU)
    }

    fn plan_endpoint_port(
        &self,
        network: &Network,
        segment: Option<SegmentId>,
        endpoint: &Endpoint,
    ) -> Option<PortPlan> {
        sandbox_interface_port(network, segment, endpoint, true)
    }

    /// A network that is not `--internal` has a gateway: the router its
    /// containers' default route points to, relaying to the host (NAT out,
    /// published ports in). Its MAC derives from its IPv4 address as a
    /// container's does (no container has the gateway address, so none
    /// shares it), so it stays the same across restarts.
    fn plan_network_ports(&self, network: &Network, segment: Option<SegmentId>) -> Vec<PortPlan> {
        let Some(segment) = segment else {
            return Vec::new();
        };
        if network.internal {
            return Vec::new();
        }
        let ipv4 = network
            .ipv4
            .as_ref()
            .and_then(|s| match (s.gateway, s.subnet) {
                (IpAddr::V4(g), IpNetwork::V4(n)) => Ipv4Network::new(g, n.prefix()).ok(),
                _ => None,
            });
        let ipv6 = network
            .ipv6
            .as_ref()
            .and_then(|s| match (s.gateway, s.subnet) {
                (IpAddr::V6(g), IpNetwork::V6(n)) => Ipv6Network::new(g, n.prefix()).ok(),
                _ => None,
            });
        if ipv4.is_none() && ipv6.is_none() {
            return Vec::new();
        }
        let mac = match ipv4 {
            Some(n) => MacAddr::from_ipv4(n.ip()),
            None => {
                let id = network.id.as_bytes();
                let mut b = [0u8; 6];
                for (i, byte) in id.iter().take(6).enumerate() {
                    b[i] = *byte;
                }
                MacAddr::local_from_bytes(b)
            }
        };
        vec![PortPlan {
            owner: PortOwner::Network(network.id.clone()),
            port: PortConfig {
                segment,
                binding: PortBinding::Router {
                    mac,
                    ipv4: ipv4.map(|n| n.ip()).into_iter().collect(),
                    ipv6: ipv6.map(|n| n.ip()).into_iter().collect(),
                },
                label: format!("{}/gateway", network.name),
                mtu: network.mtu,
                horizon: None,
            },
            backend: BackendPlan::Gateway(GatewayPlan {
                mac,
                ipv4,
                ipv6,
                mtu: network.mtu,
            }),
        }]
    }

    fn plan_peer_ports(
        &self,
        network: &Network,
        segment: Option<SegmentId>,
        peer: &PeerHost,
    ) -> Vec<PortPlan> {
        let (Some(segment), PeerVia::Cable) = (segment, &peer.via) else {
            return Vec::new();
        };
        vec![peer_trunk_port(
            network,
            segment,
            peer,
            format!("cable:{}", peer.link),
            None,
            BackendPlan::PeerLink {
                peer: peer.name.clone(),
            },
        )]
    }
}
