//! `lab show`: the state of a world as readable tables — a switch's MAC
//! table or port counters, a container's addresses or ARP cache, a host's
//! IPAM allocations.

use crate::error::SimError;
use crate::world::Sim;
use serde::Serialize;

/// A titled table, printed by the CLI as text or JSON.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Table {
    /// What the table shows and when.
    pub title: String,
    /// Column names.
    pub headers: Vec<String>,
    /// Cells, one row per entry.
    pub rows: Vec<Vec<String>>,
}

fn table(title: String, headers: &[&str], rows: Vec<Vec<String>>) -> Table {
    Table {
        title,
        headers: headers.iter().map(|h| h.to_string()).collect(),
        rows,
    }
}

/// What `lab show` knows how to show.
pub const SHOW_WHAT: &str =
    "mac HOST, counters HOST, ipam HOST, gateway HOST, outside, links, addr CONTAINER, arp CONTAINER";

/// Builds the table `what` asks for (`["mac", "h1"]`, `["arp", "a"]`, ...).
pub fn show(sim: &Sim, what: &[String]) -> Result<Table, SimError> {
    let kind = what.first().map(String::as_str).unwrap_or("");
    let arg = what.get(1).map(String::as_str);
    let need = |noun: &str| {
        arg.ok_or_else(|| SimError::Invalid {
            what: "show",
            detail: format!(
                "`show {kind}` needs a {noun}: e.g. `{kind} {}`",
                if noun == "host" { "h1" } else { "a" }
            ),
        })
    };
    let now = sim.now();
    match kind {
        "mac" | "fdb" => {
            let host = need("host")?;
            let rows = sim
                .fdb(host)?
                .into_iter()
                .map(|r| {
                    vec![
                        r.network,
                        r.mac.to_string(),
                        format!("{} ({})", r.port, r.port_label),
                        r.station.unwrap_or_else(|| "-".into()),
                        format!("{:.3}s", r.age.as_secs_f64()),
                    ]
                })
                .collect();
            Ok(table(
                format!("MAC table of host {host}'s switch at {now}"),
                &["NETWORK", "MAC", "PORT", "STATION", "AGE"],
                rows,
            ))
        }
        "counters" | "ports" => {
            let host = need("host")?;
            let rows = sim
                .ports(host)?
                .into_iter()
                .map(|r| {
                    let drops: Vec<String> = switchyard_switch::DropReason::ALL
                        .iter()
                        .filter(|d| r.counters.drops_for(**d) > 0)
                        .map(|d| format!("{}={}", d.name(), r.counters.drops_for(*d)))
                        .collect();
                    vec![
                        r.port.to_string(),
                        r.label,
                        r.network,
                        r.counters.rx_frames.to_string(),
                        r.counters.tx_frames.to_string(),
                        if drops.is_empty() {
                            "-".into()
                        } else {
                            drops.join(" ")
                        },
                    ]
                })
                .collect();
            Ok(table(
                format!("ports of host {host}'s switch at {now}"),
                &["PORT", "LABEL", "NETWORK", "RX", "TX", "DROPS"],
                rows,
            ))
        }
        "ipam" => {
            let host = need("host")?;
            let rows = sim
                .ipam(host)?
                .into_iter()
                .map(|r| vec![r.network, r.subnet, r.address.to_string(), r.holder])
                .collect();
            Ok(table(
                format!("IPAM allocations of host {host} at {now}"),
                &["NETWORK", "SUBNET", "ADDRESS", "HOLDER"],
                rows,
            ))
        }
        "addr" | "interfaces" => {
            let c = need("container")?;
            let rows = sim
                .interfaces(c)?
                .into_iter()
                .map(|r| {
                    vec![
                        r.ifname,
                        r.network,
                        r.mac.to_string(),
                        r.ipv4.map_or("-".into(), |n| n.to_string()),
                        r.gateway4.map_or("-".into(), |g| {
                            if r.default_route {
                                format!("{g} (default route)")
                            } else {
                                g.to_string()
                            }
                        }),
                        r.mtu.to_string(),
                    ]
                })
                .collect();
            Ok(table(
                format!("interfaces of container {c} at {now}"),
                &["IFACE", "NETWORK", "MAC", "IPV4", "GATEWAY", "MTU"],
                rows,
            ))
        }
        "arp" => {
            let c = need("container")?;
            let rows = sim
                .arp_cache(c)?
                .into_iter()
                .map(|r| {
                    vec![
                        r.ifname,
                        r.ip.to_string(),
                        r.mac.to_string(),
                        format!("{:.3}s", r.expires_in.as_secs_f64()),
                    ]
                })
                .collect();
            Ok(table(
                format!("ARP cache of container {c} at {now}"),
                &["IFACE", "ADDRESS", "MAC", "EXPIRES IN"],
                rows,
            ))
        }
        "gateway" | "nat" => {
            let host = need("host")?;
            let outside = sim.outside_address(host)?;
            let rows = sim
                .gateways(host)?
                .into_iter()
                .map(|g| {
                    let c = g.counters;
                    vec![
                        g.network,
                        g.address.map_or("-".into(), |a| a.to_string()),
                        g.flows.to_string(),
                        format!("{} out, {} in", c.tcp_outbound, c.tcp_inbound),
                        format!("{} out, {} in", c.udp_out, c.udp_in),
                        format!("{} out, {} in", c.ping_out, c.ping_in),
                        format!("{} out, {} in", c.bytes_out, c.bytes_in),
                        format!(
                            "{} isolation, {} limit, {} connect",
                            c.refused_isolation, c.refused_limit, c.tcp_connect_failed
                        ),
                    ]
                })
                .collect();
            Ok(table(
                format!("gateways of host {host} (outside address {outside}) at {now}"),
                &[
                    "NETWORK", "GATEWAY", "FLOWS", "TCP", "UDP", "PING", "BYTES", "REFUSED",
                ],
                rows,
            ))
        }
        "outside" | "served" => {
            let rows = sim
                .served_requests()
                .iter()
                .map(|r| {
                    vec![
                        r.time.to_string(),
                        format!("{}:{}", r.server, r.port),
                        r.client.to_string(),
                        r.bytes.to_string(),
                    ]
                })
                .collect();
            Ok(table(
                format!("requests the outside servers answered, up to {now}"),
                &["TIME", "SERVER", "CLIENT AS SEEN", "BYTES"],
                rows,
            ))
        }
        "links" => {
            let mut rows = Vec::new();
            for name in sim.link_names() {
                let stats = sim.link_stats(&name)?;
                for (dir, s) in ["forward", "backward"].iter().zip(stats) {
                    rows.push(vec![
                        name.clone(),
                        dir.to_string(),
                        s.offered.to_string(),
                        s.delivered.to_string(),
                        s.lost.to_string(),
                        (s.queue_dropped + s.mtu_dropped).to_string(),
                        s.partitioned.to_string(),
                        s.corrupted.to_string(),
                    ]);
                }
            }
            Ok(table(
                format!("links at {now}"),
                &[
                    "LINK",
                    "WAY",
                    "OFFERED",
                    "DELIVERED",
                    "LOST",
                    "DROPPED",
                    "PARTITIONED",
                    "CORRUPTED",
                ],
                rows,
            ))
        }
        other => Err(SimError::Invalid {
            what: "show",
            detail: format!("cannot show {other:?}; choose one of: {SHOW_WHAT}"),
        }),
    }
}
