//! The lab file as written: TOML tables with every key known in advance
//! (`deny_unknown_fields`) and spans kept, so mistakes are reported with
//! the file's line and column.

use serde::Deserialize;
use std::collections::BTreeMap;
use toml::Spanned;

/// A whole lab file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LabFile {
    #[serde(default)]
    pub lab: Option<Spanned<LabMeta>>,
    #[serde(default)]
    pub host: Vec<Spanned<HostDef>>,
    #[serde(default)]
    pub network: Vec<Spanned<NetworkDef>>,
    #[serde(default)]
    pub container: Vec<Spanned<ContainerDef>>,
    #[serde(default)]
    pub cable: Vec<Spanned<CableDef>>,
    #[serde(default)]
    pub link: Vec<Spanned<LinkDef>>,
    #[serde(default)]
    pub upstream: Vec<Spanned<UpstreamDef>>,
    #[serde(default)]
    pub outside: Vec<Spanned<OutsideDef>>,
    #[serde(default)]
    pub publish: Vec<Spanned<PublishDef>>,
    #[serde(default)]
    pub fault: Vec<Spanned<FaultDef>>,
    #[serde(default)]
    pub step: Vec<Spanned<StepDef>>,
}

/// `[lab]`: what the lab is called and how long it runs.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LabMeta {
    pub name: Option<String>,
    pub description: Option<String>,
    pub seed: Option<u64>,
    pub duration: Option<Spanned<String>>,
}

/// `[[host]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct HostDef {
    pub name: Spanned<String>,
}

/// `[[network]]`: `network create` on one or more hosts.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NetworkDef {
    pub name: Spanned<String>,
    pub host: Option<Spanned<String>>,
    pub hosts: Option<Spanned<Vec<String>>>,
    pub driver: Option<Spanned<String>>,
    pub subnet: Option<Spanned<String>>,
    pub gateway: Option<Spanned<String>>,
    pub ip_range: Option<Spanned<String>>,
    #[serde(default)]
    pub internal: bool,
    #[serde(default)]
    pub ipv6: bool,
    pub mtu: Option<Spanned<u32>>,
}

/// `[[container]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ContainerDef {
    pub name: Spanned<String>,
    pub host: Option<Spanned<String>>,
    #[serde(default)]
    pub networks: Vec<Spanned<String>>,
    #[serde(default)]
    pub connect: Vec<Spanned<ConnectDef>>,
}

/// `[[container.connect]]`: a connection with options.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConnectDef {
    pub network: Spanned<String>,
    pub ip: Option<Spanned<String>>,
    #[serde(default)]
    pub aliases: Vec<Spanned<String>>,
}

/// `[[cable]]`: two hosts' switches joined on a network.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CableDef {
    pub name: Spanned<String>,
    pub hosts: Spanned<Vec<String>>,
    pub network: Spanned<String>,
}

/// Gilbert-Elliott parameters.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BurstLossDef {
    pub p_good_to_bad: f64,
    pub p_bad_to_good: f64,
    #[serde(default)]
    pub loss_good: f64,
    #[serde(default = "one")]
    pub loss_bad: f64,
}

fn one() -> f64 {
    1.0
}

/// `[[link]]`: impairments of a link.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LinkDef {
    pub link: Spanned<String>,
    pub direction: Option<Spanned<String>>,
    pub latency: Option<Spanned<String>>,
    pub jitter: Option<Spanned<String>>,
    pub loss: Option<Spanned<f64>>,
    pub burst_loss: Option<Spanned<BurstLossDef>>,
    pub duplicate: Option<Spanned<f64>>,
    pub reorder: Option<Spanned<f64>>,
    pub reorder_delay: Option<Spanned<String>>,
    pub corrupt: Option<Spanned<f64>>,
    pub rate: Option<Spanned<String>>,
    pub queue: Option<Spanned<toml::Value>>,
    pub mtu: Option<Spanned<u32>>,
}

/// `[[upstream]]`: a simulated upstream DNS server.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpstreamDef {
    pub address: Spanned<String>,
    pub latency: Option<Spanned<String>>,
    #[serde(default)]
    pub records: BTreeMap<String, Vec<Spanned<String>>>,
}

/// `[[outside]]`: a server or client on the simulated internet.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct OutsideDef {
    pub name: Spanned<String>,
    pub address: Spanned<String>,
    #[serde(default)]
    pub tcp: Vec<u16>,
    #[serde(default)]
    pub udp: Vec<u16>,
    pub latency: Option<Spanned<String>>,
}

/// `[[publish]]`: `-p HOST_PORT:PORT[/udp]` for a container.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PublishDef {
    pub container: Spanned<String>,
    pub network: Option<Spanned<String>>,
    pub port: Spanned<u16>,
    pub host_port: Option<Spanned<u16>>,
    pub protocol: Option<Spanned<String>>,
}

/// `[[fault]]`: a change at a time.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FaultDef {
    pub at: Spanned<String>,
    #[serde(rename = "do")]
    pub action: Spanned<String>,
    pub between: Option<Spanned<Vec<String>>>,
    pub oneway: Option<Spanned<bool>>,
    pub host: Option<Spanned<String>>,
    pub container: Option<Spanned<String>>,
    pub network: Option<Spanned<String>>,
    pub ip: Option<Spanned<String>>,
    pub aliases: Option<Spanned<Vec<String>>>,
}

/// `[[step]]`: an application run with an expected outcome.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StepDef {
    pub at: Spanned<String>,
    #[serde(rename = "do")]
    pub action: Spanned<String>,
    pub from: Option<Spanned<String>>,
    pub to: Option<Spanned<String>>,
    pub name: Option<Spanned<String>>,
    pub count: Option<Spanned<u32>>,
    pub interval: Option<Spanned<String>>,
    pub size: Option<Spanned<u32>>,
    pub port: Option<Spanned<u16>>,
    pub bytes: Option<Spanned<toml::Value>>,
    pub timeout: Option<Spanned<String>>,
    pub expect: Option<Spanned<String>>,
    pub received: Option<Spanned<u32>>,
    pub addresses: Option<Spanned<Vec<String>>>,
    pub note: Option<String>,
}
