//! Docker-shaped views for `network inspect --format json`, so scripts
//! written against `docker network inspect` read ours unchanged.

use super::model::Network;
use super::Controller;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One `IPAM.Config[]` entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct IpamConfigView {
    /// Subnet CIDR.
    pub subnet: String,
    /// Gateway address.
    pub gateway: String,
    /// `--ip-range`, omitted when unset.
    #[serde(rename = "IPRange", skip_serializing_if = "Option::is_none")]
    pub ip_range: Option<String>,
    /// `--aux-address` entries, omitted when empty.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub auxiliary_addresses: BTreeMap<String, String>,
}

/// The `IPAM` object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct IpamView {
    /// Always `default`.
    pub driver: String,
    /// IPAM driver options (none).
    pub options: BTreeMap<String, String>,
    /// One entry per subnet.
    pub config: Vec<IpamConfigView>,
}

/// One `Containers.{id}` entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerView {
    /// Container name.
    pub name: String,
    /// Endpoint id.
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    /// MAC address, empty when none.
    pub mac_address: String,
    /// `a.b.c.d/len`, empty when none.
    #[serde(rename = "IPv4Address")]
    pub ipv4_address: String,
    /// `x::y/len`, empty when none.
    #[serde(rename = "IPv6Address")]
    pub ipv6_address: String,
}

/// `docker network inspect`'s object, plus a `Switchyard` section for what
/// Docker does not have (segment, interface names; the daemon adds
/// counters).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkView {
    /// Name.
    pub name: String,
    /// Id.
    pub id: String,
    /// `local` or `global`.
    pub scope: String,
    /// Driver name.
    pub driver: String,
    /// `--ipv6`.
    #[serde(rename = "EnableIPv6")]
    pub enable_ipv6: bool,
    /// Subnets.
    #[serde(rename = "IPAM")]
    pub ipam: IpamView,
    /// `--internal`.
    pub internal: bool,
    /// Always false (no swarm).
    pub attachable: bool,
    /// Always false (no swarm).
    pub ingress: bool,
    /// Attached containers, keyed by container id.
    pub containers: BTreeMap<String, ContainerView>,
    /// `-o` options.
    pub options: BTreeMap<String, String>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Switchyard's additions.
    pub switchyard: serde_json::Value,
}

impl Controller {
    /// The Docker-shaped view of a network.
    pub fn network_view(&self, network: &Network) -> NetworkView {
        let config = network
            .ipv4
            .iter()
            .chain(network.ipv6.iter())
            .map(|s| IpamConfigView {
                subnet: s.subnet.to_string(),
                gateway: s.gateway.to_string(),
                ip_range: s.ip_range.map(|r| r.to_string()),
                auxiliary_addresses: s
                    .aux_addresses
                    .iter()
                    .map(|(k, v)| (k.clone(), v.to_string()))
                    .collect(),
            })
            .collect();
        let endpoints = self.endpoints_of_network(&network.id);
        let containers = endpoints
            .iter()
            .map(|e| {
                (
                    e.sandbox_id.clone(),
                    ContainerView {
                        name: e.name.clone(),
                        endpoint_id: e.id.clone(),
                        mac_address: e.mac.map(|m| m.to_string()).unwrap_or_default(),
                        ipv4_address: e.ipv4.map(|n| n.to_string()).unwrap_or_default(),
                        ipv6_address: e.ipv6.map(|n| n.to_string()).unwrap_or_default(),
                    },
                )
            })
            .collect();
        let interfaces: BTreeMap<&str, &str> = endpoints
            .iter()
            .filter(|e| !e.ifname.is_empty())
            .map(|e| (e.name.as_str(), e.ifname.as_str()))
            .collect();
        NetworkView {
            name: network.name.clone(),
            id: network.id.clone(),
            scope: network.scope.as_str().to_string(),
            driver: network.driver.clone(),
            enable_ipv6: network.ipv6.is_some(),
            ipam: IpamView {
                driver: "default".into(),
                options: BTreeMap::new(),
                config,
            },
            internal: network.internal,
            attachable: false,
            ingress: false,
            containers,
            options: network.options.clone(),
            labels: network.labels.clone(),
            switchyard: serde_json::json!({
                "Segment": self.segment_of(&network.id).map(|s| s.0),
                "MTU": network.mtu,
                "DnsNames": network.dns_names,
                "Predefined": network.predefined,
                "Interfaces": interfaces,
            }),
        }
    }
}
