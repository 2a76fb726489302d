//! Reading the world's state: MAC tables, port counters, interfaces, ARP
//! caches, IPAM allocations. What `lab show` prints and tests assert on.

use crate::error::SimError;
use crate::link::End;
use crate::world::Sim;
use ipnetwork::{Ipv4Network, Ipv6Network};
use serde::Serialize;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;
use switchyard_dns::ResolverStats;
use switchyard_switch::{BridgeStats, Controller, MacAddr, PortCounters, PortId, SegmentId};

/// One learned station in a switch's MAC table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FdbRow {
    /// The network (segment) it was learned in.
    pub network: String,
    /// The segment id.
    pub segment: SegmentId,
    /// The station's MAC address.
    pub mac: MacAddr,
    /// The port it lives behind.
    pub port: PortId,
    /// That port's label (`a/eth0`, `cable:trunk`).
    pub port_label: String,
    /// Time since the station was last heard.
    pub age: Duration,
    /// The container owning the MAC, when one does.
    pub station: Option<String>,
}

/// One switch port and its counters.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PortRow {
    /// The port.
    pub port: PortId,
    /// Its label.
    pub label: String,
    /// Its network.
    pub network: String,
    /// Its counters.
    pub counters: PortCounters,
}

/// One interface of a container.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct InterfaceRow {
    /// The interface name (`eth0`).
    pub ifname: String,
    /// The network it is on.
    pub network: String,
    /// Its MAC address.
    pub mac: MacAddr,
    /// Its IPv4 address and prefix.
    pub ipv4: Option<Ipv4Network>,
    /// Its IPv6 address and prefix.
    pub ipv6: Option<Ipv6Network>,
    /// The network's IPv4 gateway.
    pub gateway4: Option<Ipv4Addr>,
    /// Whether the default route goes through it.
    pub default_route: bool,
    /// Its MTU.
    pub mtu: u32,
    /// Frames it received.
    pub rx_frames: u64,
    /// Frames it sent.
    pub tx_frames: u64,
}

/// One entry of a container's ARP cache.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ArpRow {
    /// The interface that learned it.
    pub ifname: String,
    /// The neighbour's address.
    pub ip: Ipv4Addr,
    /// Its MAC.
    pub mac: MacAddr,
    /// Time left before the entry expires.
    pub expires_in: Duration,
}

/// One allocated address of a host's IPAM.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct IpamRow {
    /// The network.
    pub network: String,
    /// Its subnet.
    pub subnet: String,
    /// The address.
    pub address: IpAddr,
    /// Who holds it: a container name, `(gateway)` or `(aux NAME)`.
    pub holder: String,
}

impl Sim {
    /// A host's controller (networks, sandboxes, endpoints).
    pub fn controller(&self, host: &str) -> Result<&Controller, SimError> {
        self.hosts[self.host_id(host)? as usize].controller()
    }

    /// Whether a host's daemon is running.
    pub fn host_is_up(&self, host: &str) -> Result<bool, SimError> {
        Ok(self.hosts[self.host_id(host)? as usize].up)
    }

    /// Whether a container is running.
    pub fn container_is_up(&self, container: &str) -> Result<bool, SimError> {
        Ok(self.containers[self.container_id(container)? as usize].up)
    }

    /// Host names, sorted.
    pub fn host_names(&self) -> Vec<String> {
        self.host_names.keys().cloned().collect()
    }

    /// Container names, sorted.
    pub fn container_names(&self) -> Vec<String> {
        self.container_names.keys().cloned().collect()
    }

    /// The host a container runs on.
    pub fn host_of(&self, container: &str) -> Result<String, SimError> {
        let c = self.container_id(container)?;
        Ok(self.hosts[self.containers[c as usize].host as usize]
            .name
            .clone())
    }

    fn network_of_segment(&self, h: u32, segment: SegmentId) -> String {
        self.hosts[h as usize]
            .controller
            .as_ref()
            .and_then(|c| {
                c.networks()
                    .find(|n| c.segment_of(&n.id) == Some(segment))
                    .map(|n| n.name.clone())
            })
            .unwrap_or_else(|| segment.to_string())
    }

    fn owner_of_mac(&self, mac: MacAddr) -> Option<String> {
        self.containers
            .iter()
            .find(|c| c.nics.iter().any(|n| n.plan.mac == mac))
            .map(|c| c.name.clone())
    }

    /// A switch's MAC table at the current time (entries that have aged out
    /// are not shown), by network then MAC.
    pub fn fdb(&self, host: &str) -> Result<Vec<FdbRow>, SimError> {
        let h = self.host_id(host)?;
        let hst = &self.hosts[h as usize];
        let ageing = hst.bridge.config().ageing;
        let mut rows: Vec<FdbRow> = hst
            .bridge
            .fdb_entries()
            .into_iter()
            .filter_map(|e| {
                let age = self.now.saturating_duration_since(e.last_seen);
                (age < ageing).then(|| FdbRow {
                    network: self.network_of_segment(h, e.segment),
                    segment: e.segment,
                    mac: e.mac,
                    port: e.port,
                    port_label: hst
                        .bridge
                        .port(e.port)
                        .map_or(String::new(), |p| p.label.clone()),
                    age,
                    station: self.owner_of_mac(e.mac),
                })
            })
            .collect();
        rows.sort_by(|a, b| (&a.network, a.mac).cmp(&(&b.network, b.mac)));
        Ok(rows)
    }

    /// Where a switch would send a frame to `mac` on `network` now.
    pub fn fdb_lookup(
        &self,
        host: &str,
        network: &str,
        mac: MacAddr,
    ) -> Result<Option<String>, SimError> {
        let h = self.host_id(host)?;
        let hst = &self.hosts[h as usize];
        let ctrl = hst.controller()?;
        let net = ctrl
            .network(network)
            .map_err(|source| SimError::Controller {
                host: host.to_string(),
                source,
            })?;
        let Some(segment) = ctrl.segment_of(&net.id) else {
            return Ok(None);
        };
        Ok(hst
            .bridge
            .lookup(self.now, segment, mac)
            .and_then(|p| hst.bridge.port(p).map(|c| c.label.clone())))
    }

    /// A switch's ports with their counters.
    pub fn ports(&self, host: &str) -> Result<Vec<PortRow>, SimError> {
        let h = self.host_id(host)?;
        let hst = &self.hosts[h as usize];
        Ok(hst
            .bridge
            .ports()
            .map(|(id, cfg)| PortRow {
                port: id,
                label: cfg.label.clone(),
                network: self.network_of_segment(h, cfg.segment),
                counters: hst.bridge.counters(id).cloned().unwrap_or_default(),
            })
            .collect())
    }

    /// The counters of the port labelled `label` (`a/eth0`, `cable:NAME`).
    pub fn port_counters(&self, host: &str, label: &str) -> Result<PortCounters, SimError> {
        let rows = self.ports(host)?;
        let known = rows
            .iter()
            .map(|r| r.label.clone())
            .collect::<Vec<_>>()
            .join(", ");
        rows.into_iter()
            .find(|r| r.label == label)
            .map(|r| r.counters)
            .ok_or_else(|| SimError::Invalid {
                what: "port",
                detail: format!("host {host} has no port labelled {label:?} (ports: {known})"),
            })
    }

    /// A switch's bridge-wide counters.
    pub fn bridge_stats(&self, host: &str) -> Result<BridgeStats, SimError> {
        Ok(self.hosts[self.host_id(host)? as usize]
            .bridge
            .stats()
            .clone())
    }

    /// A host's resolver counters.
    pub fn resolver_stats(&self, host: &str) -> Result<ResolverStats, SimError> {
        Ok(self.hosts[self.host_id(host)? as usize]
            .resolver
            .stats()
            .clone())
    }

    /// A container's interfaces, in connect order.
    pub fn interfaces(&self, container: &str) -> Result<Vec<InterfaceRow>, SimError> {
        let c = self.container_id(container)?;
        Ok(self.containers[c as usize]
            .nics
            .iter()
            .map(|n| InterfaceRow {
                ifname: n.plan.ifname.clone(),
                network: n.network_name.clone(),
                mac: n.plan.mac,
                ipv4: n.plan.ipv4,
                ipv6: n.plan.ipv6,
                gateway4: n.plan.gateway4,
                default_route: n.plan.default_route,
                mtu: n.plan.mtu,
                rx_frames: n.rx_frames,
                tx_frames: n.tx_frames,
            })
            .collect())
    }

    /// A container's IPv4 address on a network.
    pub fn ip_of(&self, container: &str, network: &str) -> Option<Ipv4Addr> {
        let c = self.container_id(container).ok()?;
        self.containers[c as usize]
            .nics
            .iter()
            .find(|n| n.network_name == network)
            .and_then(|n| n.plan.ipv4.map(|v| v.ip()))
    }

    /// A container's MAC address on a network.
    pub fn mac_of(&self, container: &str, network: &str) -> Option<MacAddr> {
        let c = self.container_id(container).ok()?;
        self.containers[c as usize]
            .nics
            .iter()
            .find(|n| n.network_name == network)
            .map(|n| n.plan.mac)
    }

    /// A container's ARP cache now (what its smoltcp stacks know).
    pub fn arp_cache(&self, container: &str) -> Result<Vec<ArpRow>, SimError> {
        let c = self.container_id(container)?;
        let mut rows = Vec::new();
        for n in &self.containers[c as usize].nics {
            for (ip, e) in &n.arp {
                if e.expires > self.now {
                    rows.push(ArpRow {
                        ifname: n.plan.ifname.clone(),
                        ip: *ip,
                        mac: e.mac,
                        expires_in: e.expires.saturating_duration_since(self.now),
                    });
                }
            }
        }
        Ok(rows)
    }

    /// Whether a container's interface is plugged into a switch port.
    pub fn is_plugged(&self, link: &str) -> bool {
        self.link_names.get(link).is_some_and(|&l| {
            matches!(
                self.links[l as usize].ends[1],
                End::Port { port: Some(_), .. }
            )
        })
    }

    /// A host's IPAM allocations: every allocated address of every network,
    /// with who holds it.
    pub fn ipam(&self, host: &str) -> Result<Vec<IpamRow>, SimError> {
        let ctrl = self.controller(host)?;
        let mut rows = Vec::new();
        for net in ctrl.networks() {
            for subnet in [&net.ipv4, &net.ipv6].into_iter().flatten() {
                let Some(pool) = ctrl.ipam().pool(&subnet.pool) else {
                    continue;
                };
                let endpoints = ctrl.endpoints_of_network(&net.id);
                let mut addrs: Vec<IpAddr> = pool.allocated().collect();
                if !addrs.contains(&subnet.gateway) {
                    addrs.push(subnet.gateway);
                }
                addrs.extend(
                    subnet
                        .aux_addresses
                        .values()
                        .filter(|a| !addrs.contains(a))
                        .copied()
                        .collect::<Vec<_>>(),
                );
                addrs.sort();
                for addr in addrs {
                    let holder = if addr == subnet.gateway {
                        "(gateway)".to_string()
                    } else if let Some((name, _)) =
                        subnet.aux_addresses.iter().find(|(_, a)| **a == addr)
                    {
                        format!("(aux {name})")
                    } else if let Some(e) = endpoints.iter().find(|e| {
                        e.ipv4.map(|v| IpAddr::V4(v.ip())) == Some(addr)
                            || e.ipv6.map(|v| IpAddr::V6(v.ip())) == Some(addr)
                    }) {
                        e.name.clone()
                    } else {
                        "(reserved)".to_string()
                    };
                    rows.push(IpamRow {
                        network: net.name.clone(),
                        subnet: subnet.subnet.to_string(),
                        address: addr,
                        holder,
                    });
                }
            }
        }
        Ok(rows)
    }
}
