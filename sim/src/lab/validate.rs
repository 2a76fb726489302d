//! From a lab file as written to a lab that can run: every name resolved,
//! every value parsed, every rule checked, and every mistake reported with
//! the file, line and column of the offending entry and what to write
//! instead.

use super::model::{ContainerDef, FaultDef, LabFile, LinkDef, NetworkDef, StepDef};
use super::units::{parse_duration, parse_rate, parse_size, suggest};
use super::{
    CableDecl, ContainerDecl, Expect, FaultDecl, Lab, LabError, LinkDecl, NetworkDecl, Problem,
    StepDecl, StepKind,
};
use crate::apps::{ping_count_problem, MAX_PING_COUNT};
use crate::dns::UpstreamZone;
use crate::fault::{Fault, LinkDirection};
use crate::gateways::Publish;
use crate::internet::OutsideSpec;
use crate::link::{LinkConfig, Loss};
use crate::TcpDirection;
use ipnetwork::IpNetwork;
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::ops::Range;
use std::time::Duration;
use switchyard_switch::controller::model::{EndpointSpec, NetworkSpec};
use switchyard_switch::Instant;
use toml::Spanned;

/// Collects problems with their positions.
pub(crate) struct Problems<'a> {
    file: &'a str,
    text: &'a str,
    pub list: Vec<Problem>,
}

impl<'a> Problems<'a> {
    pub(crate) fn new(file: &'a str, text: &'a str) -> Self {
        Problems {
            file,
            text,
            list: Vec::new(),
        }
    }

    /// Line and column (1-based) of a byte offset.
    pub(crate) fn position(text: &str, offset: usize) -> (usize, usize) {
        let offset = offset.min(text.len());
        let before = &text[..offset];
        let line = before.matches('\n').count() + 1;
        let column = offset - before.rfind('\n').map_or(0, |i| i + 1) + 1;
        (line, column)
    }

    pub(crate) fn at(&mut self, span: Range<usize>, message: impl Into<String>) {
        let (line, column) = Self::position(self.text, span.start);
        self.list.push(Problem {
            file: self.file.to_string(),
            line,
            column,
            message: message.into(),
        });
    }

    pub(crate) fn line_of(&self, span: &Range<usize>) -> usize {
        Self::position(self.text, span.start).0
    }

    fn into_result<T>(self, value: T) -> Result<T, LabError> {
        if self.list.is_empty() {
            Ok(value)
        } else {
            Err(LabError {
                problems: self.list,
            })
        }
    }
}

/// Turns a TOML syntax or shape error into a positioned problem with a
/// suggestion for unknown keys.
pub(crate) fn toml_problem(file: &str, text: &str, e: &toml::de::Error) -> Problem {
    let (line, column) = e
        .span()
        .map_or((1, 1), |s| Problems::position(text, s.start));
    let msg = e.message().trim().to_string();
    let message = if let Some(rest) = msg.strip_prefix("unknown field `") {
        let (word, tail) = rest.split_once('`').unwrap_or((rest, ""));
        let choices: Vec<&str> = tail.split('`').skip(1).step_by(2).collect();
        match suggest(word, choices.iter().copied()) {
            Some(s) => format!(
                "unknown key `{word}`: did you mean `{s}`? (keys allowed here: {})",
                choices.join(", ")
            ),
            None if choices.is_empty() => format!("unknown key `{word}`: remove it"),
            None => format!(
                "unknown key `{word}`: remove it or use one of: {}",
                choices.join(", ")
            ),
        }
    } else if let Some(rest) = msg.strip_prefix("missing field `") {
        let word = rest.split('`').next().unwrap_or(rest);
        format!("this entry needs `{word} = ...`; add it")
    } else {
        msg
    };
    Problem {
        file: file.to_string(),
        line,
        column,
        message,
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
}

fn name_list(names: &BTreeSet<String>) -> String {
    if names.is_empty() {
        "none defined".to_string()
    } else {
        names.iter().cloned().collect::<Vec<_>>().join(", ")
    }
}

/// A duration field, or a problem.
fn duration(p: &mut Problems<'_>, v: &Spanned<String>) -> Option<Duration> {
    match parse_duration(v.get_ref()) {
        Ok(d) => Some(d),
        Err(e) => {
            p.at(v.span(), e);
            None
        }
    }
}

fn probability(p: &mut Problems<'_>, key: &str, v: &Spanned<f64>) -> f64 {
    let x = *v.get_ref();
    if !(0.0..=1.0).contains(&x) {
        p.at(
            v.span(),
            format!("{key} = {x} is not a probability; write a number between 0 and 1, e.g. 0.05 for 5%"),
        );
    }
    x
}

/// Everything the file defines, by kind, for resolving references.
struct Names {
    hosts: BTreeSet<String>,
    /// (host, network) → the network's declaration index.
    networks: BTreeMap<(String, String), usize>,
    containers: BTreeMap<String, (String, usize)>,
    cables: BTreeSet<String>,
    /// Outside nodes: name → whether it has ports (a server).
    outside: BTreeMap<String, bool>,
}

impl Lab {
    /// Checks a parsed file and resolves it into a runnable lab.
    pub(crate) fn validate(file: &str, text: &str, parsed: LabFile) -> Result<Lab, LabError> {
        let mut p = Problems::new(file, text);
        let stem = std::path::Path::new(file)
            .file_stem()
            .map_or("lab".to_string(), |s| s.to_string_lossy().into_owned());
        let (name, description, seed, duration_) = match &parsed.lab {
            Some(meta) => {
                let m = meta.get_ref();
                let d = m.duration.as_ref().and_then(|d| duration(&mut p, d));
                (
                    m.name.clone().unwrap_or(stem),
                    m.description.clone().unwrap_or_default(),
                    m.seed.unwrap_or(1),
                    d,
                )
            }
            None => (stem, String::new(), 1, None),
        };

        // Hosts.
        let mut names = Names {
            hosts: BTreeSet::new(),
            networks: BTreeMap::new(),
            containers: BTreeMap::new(),
            cables: BTreeSet::new(),
            outside: BTreeMap::new(),
        };
        let mut hosts = Vec::new();
        for h in &parsed.host {
            let n = &h.get_ref().name;
            if !valid_name(n.get_ref()) {
                p.at(n.span(), format!("host name {:?} is not valid: use letters, digits, '-', '_' or '.', starting with a letter or digit", n.get_ref()));
            } else if !names.hosts.insert(n.get_ref().clone()) {
                p.at(
                    n.span(),
                    format!(
                        "host {:?} is defined twice; give each [[host]] its own name",
                        n.get_ref()
                    ),
                );
            } else {
                hosts.push(n.get_ref().clone());
            }
        }
        if parsed.host.is_empty() {
            p.at(
                0..0,
                "a lab needs at least one host: add\n[[host]]\nname = \"h1\"",
            );
        }
        let only_host = (hosts.len() == 1).then(|| hosts[0].clone());

        // Networks.
        let mut networks = Vec::new();
        for (i, n) in parsed.network.iter().enumerate() {
            let line = p.line_of(&n.span());
            if let Some(decls) =
                validate_network(&mut p, &names, only_host.as_deref(), n.get_ref(), line)
            {
                for d in decls {
                    let key = (d.host.clone(), d.spec.name.clone());
                    if names.networks.insert(key, i).is_some() {
                        p.at(n.get_ref().name.span(), format!("network {:?} is defined twice on host {}; each host has one network of a name", d.spec.name, d.host));
                    }
                    networks.push(d);
                }
            }
        }

        // Containers.
        let mut containers = Vec::new();
        for c in &parsed.container {
            let line = p.line_of(&c.span());
            if let Some(d) = validate_container(
                &mut p,
                &names,
                only_host.as_deref(),
                &networks,
                c.get_ref(),
                line,
            ) {
                if names.containers.contains_key(&d.name) {
                    p.at(c.get_ref().name.span(), format!("container {:?} is defined twice; container names are unique across hosts", d.name));
                } else if names.hosts.contains(&d.name) {
                    p.at(
                        c.get_ref().name.span(),
                        format!(
                            "{:?} is already a host name; give the container another name",
                            d.name
                        ),
                    );
                } else {
                    names
                        .containers
                        .insert(d.name.clone(), (d.host.clone(), d.connects.len()));
                    containers.push(d);
                }
            }
        }

        // Cables.
        let mut cables = Vec::new();
        for c in &parsed.cable {
            let def = c.get_ref();
            let line = p.line_of(&c.span());
            let name = def.name.get_ref().clone();
            if !valid_name(&name) {
                p.at(
                    def.name.span(),
                    format!(
                        "cable name {name:?} is not valid: use letters, digits, '-', '_' or '.'"
                    ),
                );
                continue;
            }
            if !names.cables.insert(name.clone()) || names.containers.contains_key(&name) {
                p.at(
                    def.name.span(),
                    format!("the name {name:?} is already used; give the cable its own name"),
                );
                continue;
            }
            let hs = def.hosts.get_ref();
            if hs.len() != 2 || hs[0] == hs[1] {
                p.at(
                    def.hosts.span(),
                    "a cable joins two different hosts: write hosts = [\"h1\", \"h2\"]",
                );
                continue;
            }
            let mut ok = true;
            for h in hs {
                if !names.hosts.contains(h) {
                    p.at(
                        def.hosts.span(),
                        format!("no host {h:?} (hosts: {})", name_list(&names.hosts)),
                    );
                    ok = false;
                }
            }
            let net = def.network.get_ref();
            if ok {
                for h in hs {
                    if !names.networks.contains_key(&(h.clone(), net.clone())) {
                        p.at(def.network.span(), format!("network {net:?} is not defined on host {h}; add a [[network]] with name = {net:?} and host = {h:?} (same subnet on both hosts)"));
                        ok = false;
                    }
                }
            }
            if ok {
                check_cable_addresses(&mut p, def.network.span(), net, hs, &networks, &containers);
            }
            cables.push(CableDecl {
                line,
                name,
                hosts: [hs[0].clone(), hs[1].clone()],
                network: net.clone(),
            });
        }

        // Links.
        let mut links = Vec::new();
        for l in &parsed.link {
            let line = p.line_of(&l.span());
            if let Some(d) = validate_link(&mut p, &names, l.get_ref(), line) {
                links.push(d);
            }
        }

        // Upstream zones.
        let mut upstreams = Vec::new();
        for u in &parsed.upstream {
            let def = u.get_ref();
            let addr_text = def.address.get_ref();
            let address = addr_text.parse::<SocketAddr>().or_else(|_| {
                addr_text
                    .parse::<IpAddr>()
                    .map(|ip| SocketAddr::new(ip, 53))
            });
            let Ok(address) = address else {
                p.at(def.address.span(), format!("{addr_text:?} is not an address; write an IP, optionally with a port: \"192.0.2.53\" or \"192.0.2.53:53\""));
                continue;
            };
            let mut zone = UpstreamZone::new(address);
            if let Some(l) = &def.latency {
                if let Some(d) = duration(&mut p, l) {
                    zone.latency = d;
                }
            }
            for (name, addrs) in &def.records {
                for a in addrs {
                    match a.get_ref().parse::<IpAddr>() {
                        Ok(ip) => zone = zone.record(name, ip),
                        Err(_) => p.at(a.span(), format!("{:?} is not an IP address", a.get_ref())),
                    }
                }
            }
            upstreams.push(zone);
        }

        // The internet: outside nodes, published ports.
        let mut outside = Vec::new();
        for o in &parsed.outside {
            if let Some(spec) = validate_outside(&mut p, &names, o.get_ref()) {
                names.outside.insert(
                    spec.name.clone(),
                    !spec.tcp.is_empty() || !spec.udp.is_empty(),
                );
                outside.push(spec);
            }
        }
        let mut publish = Vec::new();
        let mut host_ports = BTreeSet::new();
        for pb in &parsed.publish {
            let line = p.line_of(&pb.span());
            let def = pb.get_ref();
            if !check_container(&mut p, &names, &def.container) {
                continue;
            }
            let udp = match def
                .protocol
                .as_ref()
                .map(|s| (s.get_ref().as_str(), s.span()))
            {
                None | Some(("tcp", _)) => false,
                Some(("udp", _)) => true,
                Some((other, span)) => {
                    p.at(
                        span,
                        format!("protocol = {other:?}: write \"tcp\" or \"udp\""),
                    );
                    continue;
                }
            };
            let (host, _) = names.containers[def.container.get_ref()].clone();
            let network = match &def.network {
                Some(n)
                    if !names
                        .networks
                        .contains_key(&(host.clone(), n.get_ref().clone())) =>
                {
                    p.at(
                        n.span(),
                        format!("host {host} has no network {:?}", n.get_ref()),
                    );
                    continue;
                }
                Some(n) => n.get_ref().clone(),
                None => String::new(),
            };
            let port = *def.port.get_ref();
            let host_port = def.host_port.as_ref().map_or(port, |h| *h.get_ref());
            if !host_ports.insert((host.clone(), host_port, udp)) {
                p.at(
                    def.host_port.as_ref().map_or(def.port.span(), |h| h.span()),
                    format!(
                        "host {host} already publishes port {host_port}; choose another host_port"
                    ),
                );
                continue;
            }
            publish.push((
                line,
                Publish {
                    container: def.container.get_ref().clone(),
                    network,
                    port,
                    host_port,
                    udp,
                },
            ));
        }

        // Faults.
        let mut faults = Vec::new();
        for f in &parsed.fault {
            let line = p.line_of(&f.span());
            if let Some(d) = validate_fault(&mut p, &names, f.get_ref(), line) {
                faults.push(d);
            }
        }

        // Steps.
        let mut steps = Vec::new();
        for s in &parsed.step {
            let line = p.line_of(&s.span());
            if let Some(d) = validate_step(&mut p, &names, s.get_ref(), line) {
                steps.push(d);
            }
        }
        steps.sort_by_key(|s| s.at);

        p.into_result(Lab {
            file: file.to_string(),
            name,
            description,
            seed,
            duration: duration_,
            hosts,
            networks,
            containers,
            cables,
            links,
            upstreams,
            outside,
            publish,
            faults,
            steps,
        })
    }
}

fn parse_net(p: &mut Problems<'_>, v: &Spanned<String>, what: &str) -> Option<IpNetwork> {
    match v.get_ref().parse::<IpNetwork>() {
        Ok(n) if n.ip() == n.network() => Some(n),
        Ok(n) => {
            p.at(
                v.span(),
                format!(
                    "{what} {:?} has host bits set; write the network address: {}/{}",
                    v.get_ref(),
                    n.network(),
                    n.prefix()
                ),
            );
            None
        }
        Err(_) => {
            p.at(v.span(), format!("{what} {:?} is not a CIDR; write an address and a prefix length, e.g. \"10.0.1.0/24\"", v.get_ref()));
            None
        }
    }
}

fn validate_network(
    p: &mut Problems<'_>,
    names: &Names,
    only_host: Option<&str>,
    def: &NetworkDef,
    line: usize,
) -> Option<Vec<NetworkDecl>> {
    let name = def.name.get_ref();
    if !valid_name(name) {
        p.at(def.name.span(), format!("network name {name:?} is not valid: use letters, digits, '-', '_' or '.', starting with a letter or digit"));
        return None;
    }
    if matches!(name.as_str(), "bridge" | "host" | "none") {
        p.at(def.name.span(), format!("{name:?} is a predefined network that every host already has; choose another name, or just connect containers to it"));
        return None;
    }
    let hosts: Vec<String> = match (&def.host, &def.hosts, only_host) {
        (Some(h), None, _) => vec![h.get_ref().clone()],
        (None, Some(hs), _) => hs.get_ref().clone(),
        (None, None, Some(h)) => vec![h.to_string()],
        (None, None, None) => {
            p.at(def.name.span(), format!("network {name:?}: say on which host it is created: host = \"h1\" (or hosts = [\"h1\", \"h2\"])"));
            return None;
        }
        (Some(h), Some(_), _) => {
            p.at(
                h.span(),
                "write either host = \"...\" or hosts = [...], not both",
            );
            return None;
        }
    };
    let mut ok = true;
    for h in &hosts {
        if !names.hosts.contains(h) {
            let span = def
                .host
                .as_ref()
                .map(|s| s.span())
                .or_else(|| def.hosts.as_ref().map(|s| s.span()))
                .unwrap_or(def.name.span());
            let hint = suggest(h, names.hosts.iter().map(String::as_str))
                .map_or(String::new(), |s| format!(" (did you mean {s:?}?)"));
            p.at(
                span,
                format!("no host {h:?}{hint}; hosts: {}", name_list(&names.hosts)),
            );
            ok = false;
        }
    }
    if let Some(d) = &def.driver {
        if d.get_ref() != "bridge" {
            p.at(
                d.span(),
                format!(
                    "driver {:?} is not simulated; write driver = \"bridge\" (the default)",
                    d.get_ref()
                ),
            );
            ok = false;
        }
    }
    let subnet = def.subnet.as_ref().and_then(|s| parse_net(p, s, "subnet"));
    let mut spec = NetworkSpec {
        name: name.clone(),
        driver: "bridge".into(),
        internal: def.internal,
        ipv6: def.ipv6,
        ..NetworkSpec::default()
    };
    if def.subnet.is_some() && subnet.is_none() {
        ok = false;
    }
    if let Some(s) = subnet {
        spec.subnets.push(s);
    }
    if let Some(g) = &def.gateway {
        match g.get_ref().parse::<IpAddr>() {
            Ok(ip) if subnet.is_none_or(|s| s.contains(ip)) => spec.gateways.push(ip),
            Ok(ip) => {
                p.at(
                    g.span(),
                    format!(
                        "gateway {ip} is outside the subnet {}; pick an address inside it",
                        subnet.map_or(String::new(), |s| s.to_string())
                    ),
                );
                ok = false;
            }
            Err(_) => {
                p.at(
                    g.span(),
                    format!("gateway {:?} is not an IP address", g.get_ref()),
                );
                ok = false;
            }
        }
        if subnet.is_none() {
            p.at(
                g.span(),
                "a gateway needs a subnet: add subnet = \"10.0.1.0/24\"",
            );
            ok = false;
        }
    }
    if let Some(r) = &def.ip_range {
        match parse_net(p, r, "ip_range") {
            Some(range) => match subnet {
                Some(s) if s.contains(range.ip()) && range.prefix() >= s.prefix() => {
                    spec.ip_ranges.push(range)
                }
                Some(s) => {
                    p.at(
                        r.span(),
                        format!("ip_range {range} is not inside the subnet {s}"),
                    );
                    ok = false;
                }
                None => {
                    p.at(
                        r.span(),
                        "an ip_range needs a subnet: add subnet = \"10.0.1.0/24\"",
                    );
                    ok = false;
                }
            },
            None => ok = false,
        }
    }
    if let Some(m) = &def.mtu {
        if !(68..=65_521).contains(m.get_ref()) {
            p.at(
                m.span(),
                format!(
                    "mtu = {} is out of range; write a value between 68 and 65521, e.g. 1500",
                    m.get_ref()
                ),
            );
            ok = false;
        } else {
            spec.options.insert(
                "com.docker.network.driver.mtu".into(),
                m.get_ref().to_string(),
            );
        }
    }
    ok.then(|| {
        hosts
            .into_iter()
            .map(|host| NetworkDecl {
                line,
                host,
                spec: spec.clone(),
            })
            .collect()
    })
}

fn validate_container(
    p: &mut Problems<'_>,
    names: &Names,
    only_host: Option<&str>,
    networks: &[NetworkDecl],
    def: &ContainerDef,
    line: usize,
) -> Option<ContainerDecl> {
    let name = def.name.get_ref().clone();
    if !valid_name(&name) {
        p.at(def.name.span(), format!("container name {name:?} is not valid: use letters, digits, '-', '_' or '.', starting with a letter or digit"));
        return None;
    }
    let host = match (&def.host, only_host) {
        (Some(h), _) => {
            if !names.hosts.contains(h.get_ref()) {
                let hint = suggest(h.get_ref(), names.hosts.iter().map(String::as_str))
                    .map_or(String::new(), |s| format!(" (did you mean {s:?}?)"));
                p.at(
                    h.span(),
                    format!(
                        "no host {:?}{hint}; hosts: {}",
                        h.get_ref(),
                        name_list(&names.hosts)
                    ),
                );
                return None;
            }
            h.get_ref().clone()
        }
        (None, Some(h)) => h.to_string(),
        (None, None) => {
            p.at(
                def.name.span(),
                format!("container {name:?}: say which host runs it: host = \"h1\""),
            );
            return None;
        }
    };
    let mut connects: Vec<(String, EndpointSpec)> = Vec::new();
    let mut ok = true;
    let on_host: BTreeSet<String> = names
        .networks
        .keys()
        .filter(|(h, _)| *h == host)
        .map(|(_, n)| n.clone())
        .chain(["bridge".to_string()])
        .collect();
    let check_net = |p: &mut Problems<'_>, net: &Spanned<String>| -> bool {
        if on_host.contains(net.get_ref()) {
            return true;
        }
        let hint = suggest(net.get_ref(), on_host.iter().map(String::as_str))
            .map_or(String::new(), |s| format!(" (did you mean {s:?}?)"));
        p.at(net.span(), format!("container {name:?} is on host {host}, which has no network {:?}{hint}; define it with [[network]] name = {:?} host = {host:?}, or use one of: {}", net.get_ref(), net.get_ref(), name_list(&on_host)));
        false
    };
    for n in &def.networks {
        if check_net(p, n) {
            connects.push((n.get_ref().clone(), EndpointSpec::default()));
        } else {
            ok = false;
        }
    }
    for c in &def.connect {
        let cd = c.get_ref();
        if !check_net(p, &cd.network) {
            ok = false;
            continue;
        }
        let net = cd.network.get_ref().clone();
        let mut spec = EndpointSpec::default();
        if let Some(ip) = &cd.ip {
            match ip.get_ref().parse::<Ipv4Addr>() {
                Ok(addr) => {
                    let subnet = networks
                        .iter()
                        .find(|d| d.host == host && d.spec.name == net)
                        .and_then(|d| d.spec.subnets.first().copied());
                    if net == "bridge" {
                        p.at(ip.span(), "the default bridge network does not take static IPs (as in Docker); create a network with a subnet");
                        ok = false;
                    } else if let Some(s) = subnet {
                        if !s.contains(IpAddr::V4(addr)) {
                            p.at(ip.span(), format!("{addr} is outside network {net}'s subnet {s}; pick an address inside it"));
                            ok = false;
                        }
                    } else {
                        p.at(ip.span(), format!("a static IP needs the network's subnet to be known: add subnet = \"...\" to network {net}"));
                        ok = false;
                    }
                    spec.ipv4 = Some(addr);
                }
                Err(_) => {
                    p.at(
                        ip.span(),
                        format!(
                            "{:?} is not an IPv4 address; write e.g. ip = \"10.0.1.10\"",
                            ip.get_ref()
                        ),
                    );
                    ok = false;
                }
            }
        }
        for a in &cd.aliases {
            if net == "bridge" {
                p.at(a.span(), "the default bridge network has no DNS names, so no aliases (as in Docker); use a network you define");
                ok = false;
            }
            spec.aliases.push(a.get_ref().clone());
        }
        connects.push((net, spec));
    }
    let mut seen = BTreeSet::new();
    for (n, _) in &connects {
        if !seen.insert(n.clone()) {
            p.at(
                def.name.span(),
                format!("container {name:?} is connected to {n:?} twice; connect it once"),
            );
            ok = false;
        }
    }
    ok.then_some(ContainerDecl {
        line,
        name,
        host,
        connects,
    })
}

/// The addresses on a cabled network must not collide between hosts.
fn check_cable_addresses(
    p: &mut Problems<'_>,
    span: Range<usize>,
    net: &str,
    hosts: &[String],
    networks: &[NetworkDecl],
    containers: &[ContainerDecl],
) {
    let decl = |h: &String| networks.iter().find(|d| &d.host == h && d.spec.name == net);
    let (Some(a), Some(b)) = (decl(&hosts[0]), decl(&hosts[1])) else {
        return;
    };
    let (sa, sb) = (a.spec.subnets.first(), b.spec.subnets.first());
    if sa.is_none() || sa != sb {
        p.at(span, format!("network {net:?} must have the same subnet on {} and {} for the cable to join one LAN; write the same subnet = \"...\" in both [[network]] entries", hosts[0], hosts[1]));
        return;
    }
    let on_net: Vec<&EndpointSpec> = containers
        .iter()
        .filter(|c| hosts.contains(&c.host))
        .flat_map(|c| c.connects.iter())
        .filter(|(n, _)| n == net)
        .map(|(_, s)| s)
        .collect();
    let all_static = !on_net.is_empty() && on_net.iter().all(|s| s.ipv4.is_some());
    let (ra, rb) = (a.spec.ip_ranges.first(), b.spec.ip_ranges.first());
    let disjoint = match (ra, rb) {
        (Some(x), Some(y)) => !x.contains(y.ip()) && !y.contains(x.ip()),
        _ => false,
    };
    if !(disjoint || all_static) {
        p.at(span, format!("addresses on network {net:?} would collide: each host allocates from the same subnet; give the two [[network]] entries disjoint ip_range values (e.g. 10.0.0.0/25 on {} and 10.0.0.128/25 on {}), or give every container on it a static ip", hosts[0], hosts[1]));
    }
}

fn validate_link(
    p: &mut Problems<'_>,
    names: &Names,
    def: &LinkDef,
    line: usize,
) -> Option<LinkDecl> {
    let sel = def.link.get_ref().clone();
    let (owner, ifname) = sel.split_once('/').unwrap_or((&sel, ""));
    let is_cable = names.cables.contains(&sel);
    let container = names.containers.get(owner);
    let ok_target = is_cable
        || match (container, ifname) {
            (Some(_), "") => true,
            (Some((_, n)), i) => i
                .strip_prefix("eth")
                .and_then(|k| k.parse::<usize>().ok())
                .is_some_and(|k| k < *n),
            (None, _) => false,
        };
    if !ok_target {
        let mut choices: Vec<String> = names.cables.iter().cloned().collect();
        for (c, (_, n)) in &names.containers {
            choices.push(c.clone());
            choices.extend((0..*n).map(|k| format!("{c}/eth{k}")));
        }
        p.at(def.link.span(), format!("no link {sel:?}; name a container (all its interfaces), CONTAINER/ethN, or a cable: {}", choices.join(", ")));
        return None;
    }
    let direction = match def.direction.as_ref().map(|d| d.get_ref().as_str()) {
        None | Some("both") => LinkDirection::Both,
        Some("forward") | Some("up") => LinkDirection::Forward,
        Some("backward") | Some("down") => LinkDirection::Backward,
        Some(other) => {
            let span = def.direction.as_ref().map_or(0..0, |d| d.span());
            p.at(span, format!("direction {other:?} is not known; write \"both\", \"forward\" (container → switch, or the cable's first host → second) or \"backward\""));
            return None;
        }
    };
    let mut c = if is_cable {
        LinkConfig::with_latency(Duration::from_micros(200))
    } else {
        LinkConfig::with_latency(Duration::from_micros(10))
    };
    if let Some(v) = &def.latency {
        c.latency = duration(p, v)?;
    }
    if let Some(v) = &def.jitter {
        c.jitter = duration(p, v)?;
    }
    if let Some(v) = &def.reorder_delay {
        c.reorder_delay = duration(p, v)?;
    }
    match (&def.loss, &def.burst_loss) {
        (Some(l), Some(b)) => {
            p.at(b.span(), "write either loss = P (independent) or burst_loss = {...} (Gilbert-Elliott), not both");
            let _ = l;
            return None;
        }
        (Some(l), None) => c.loss = Loss::Random(probability(p, "loss", l)),
        (None, Some(b)) => {
            let g = b.get_ref();
            for (k, v) in [
                ("p_good_to_bad", g.p_good_to_bad),
                ("p_bad_to_good", g.p_bad_to_good),
                ("loss_good", g.loss_good),
                ("loss_bad", g.loss_bad),
            ] {
                if !(0.0..=1.0).contains(&v) {
                    p.at(b.span(), format!("burst_loss.{k} = {v} is not a probability; write a number between 0 and 1"));
                }
            }
            c.loss = Loss::GilbertElliott {
                p_good_to_bad: g.p_good_to_bad,
                p_bad_to_good: g.p_bad_to_good,
                loss_good: g.loss_good,
                loss_bad: g.loss_bad,
            };
        }
        (None, None) => {}
    }
    if let Some(v) = &def.duplicate {
        c.duplicate = probability(p, "duplicate", v);
    }
    if let Some(v) = &def.reorder {
        c.reorder = probability(p, "reorder", v);
    }
    if let Some(v) = &def.corrupt {
        c.corrupt = probability(p, "corrupt", v);
    }
    if let Some(v) = &def.rate {
        match parse_rate(v.get_ref()) {
            Ok(r) => c.rate_bps = Some(r),
            Err(e) => p.at(v.span(), e),
        }
    }
    if let Some(v) = &def.queue {
        match parse_size(v.get_ref()) {
            Ok(q) => c.queue_bytes = q as usize,
            Err(e) => p.at(v.span(), e),
        }
        if def.rate.is_none() {
            p.at(
                v.span(),
                "a queue only matters with a rate limit: add rate = \"10Mbit\" or remove queue",
            );
        }
    }
    if let Some(v) = &def.mtu {
        if *v.get_ref() < 68 {
            p.at(v.span(), "mtu must be at least 68 bytes");
        }
        c.mtu = Some(*v.get_ref() as usize);
    }
    Some(LinkDecl {
        line,
        selector: sel,
        direction,
        config: c,
    })
}

/// Reports keys given that an action does not use.
fn unused_keys(
    p: &mut Problems<'_>,
    action: &str,
    given: &[(&str, Option<Range<usize>>)],
    allowed: &[&str],
) {
    for (key, span) in given {
        if let Some(span) = span {
            if !allowed.contains(key) {
                p.at(
                    span.clone(),
                    format!(
                        "`{key}` does not apply to do = {action:?}; remove it (keys used here: {})",
                        allowed.join(", ")
                    ),
                );
            }
        }
    }
}

fn need<'b>(
    p: &mut Problems<'_>,
    v: &'b Option<Spanned<String>>,
    key: &str,
    action: &str,
    at: Range<usize>,
) -> Option<&'b Spanned<String>> {
    if v.is_none() {
        p.at(
            at,
            format!("do = {action:?} needs `{key} = \"...\"`; add it"),
        );
    }
    v.as_ref()
}

/// An outside node's declaration, checked.
fn validate_outside(
    p: &mut Problems<'_>,
    names: &Names,
    def: &super::model::OutsideDef,
) -> Option<OutsideSpec> {
    let name = def.name.get_ref();
    if !valid_name(name) {
        p.at(
            def.name.span(),
            format!(
                "outside node name {name:?} is not valid: use letters, digits, '-', '_' or '.'"
            ),
        );
        return None;
    }
    if names.outside.contains_key(name)
        || names.hosts.contains(name)
        || names.containers.contains_key(name)
    {
        p.at(
            def.name.span(),
            format!("the name {name:?} is already used; give the outside node its own name"),
        );
        return None;
    }
    let Ok(address) = def.address.get_ref().parse::<Ipv4Addr>() else {
        p.at(
            def.address.span(),
            format!(
                "{:?} is not an IPv4 address; write e.g. \"203.0.113.10\"",
                def.address.get_ref()
            ),
        );
        return None;
    };
    if address.octets()[..3] == [198, 51, 100] {
        p.at(def.address.span(), format!("{address} is in 198.51.100.0/24, where the hosts' outside addresses live; use e.g. 203.0.113.10"));
        return None;
    }
    let mut spec = OutsideSpec::new(name, address);
    spec.tcp = def.tcp.clone();
    spec.udp = def.udp.clone();
    if let Some(l) = &def.latency {
        spec.latency = duration(p, l)?;
    }
    Some(spec)
}

fn check_container(p: &mut Problems<'_>, names: &Names, v: &Spanned<String>) -> bool {
    if names.containers.contains_key(v.get_ref()) {
        return true;
    }
    let hint = suggest(v.get_ref(), names.containers.keys().map(String::as_str))
        .map_or(String::new(), |s| format!(" (did you mean {s:?}?)"));
    let all: BTreeSet<String> = names.containers.keys().cloned().collect();
    p.at(
        v.span(),
        format!(
            "no container {:?}{hint}; containers: {}",
            v.get_ref(),
            name_list(&all)
        ),
    );
    false
}

fn check_node(p: &mut Problems<'_>, names: &Names, v: &str, span: Range<usize>) -> bool {
    if names.containers.contains_key(v) || names.hosts.contains(v) {
        return true;
    }
    p.at(span, format!("{v:?} is neither a host nor a container"));
    false
}

fn validate_fault(
    p: &mut Problems<'_>,
    names: &Names,
    def: &FaultDef,
    line: usize,
) -> Option<FaultDecl> {
    let at = Instant::ZERO + duration(p, &def.at)?;
    let action = def.action.get_ref().as_str();
    let sp = |v: &Option<Spanned<String>>| v.as_ref().map(|s| s.span());
    let given = [
        ("between", def.between.as_ref().map(|s| s.span())),
        ("oneway", def.oneway.as_ref().map(|s| s.span())),
        ("host", sp(&def.host)),
        ("container", sp(&def.container)),
        ("network", sp(&def.network)),
        ("ip", sp(&def.ip)),
        ("aliases", def.aliases.as_ref().map(|s| s.span())),
    ];
    let here = def.action.span();
    let fault = match action {
        "partition" | "heal" => {
            unused_keys(p, action, &given, &["between", "oneway"]);
            let Some(b) = &def.between else {
                p.at(
                    here,
                    format!("do = {action:?} needs between = [\"a\", \"b\"] (hosts or containers)"),
                );
                return None;
            };
            let pair = b.get_ref();
            if pair.len() != 2 {
                p.at(b.span(), "between takes exactly two names: [\"a\", \"b\"]");
                return None;
            }
            let ok =
                check_node(p, names, &pair[0], b.span()) & check_node(p, names, &pair[1], b.span());
            if !ok {
                return None;
            }
            if action == "partition" {
                Fault::Partition {
                    a: pair[0].clone(),
                    b: pair[1].clone(),
                    oneway: def.oneway.as_ref().is_some_and(|o| *o.get_ref()),
                }
            } else {
                if def.oneway.is_some() {
                    p.at(
                        def.oneway.as_ref().map_or(here.clone(), |o| o.span()),
                        "heal lifts both directions; remove oneway",
                    );
                }
                Fault::Heal {
                    a: pair[0].clone(),
                    b: pair[1].clone(),
                }
            }
        }
        "heal-all" => {
            unused_keys(p, action, &given, &[]);
            Fault::HealAll
        }
        "crash" | "restart" => {
            unused_keys(p, action, &given, &["host", "container"]);
            match (&def.host, &def.container) {
                (Some(h), None) => {
                    if !names.hosts.contains(h.get_ref()) {
                        p.at(
                            h.span(),
                            format!(
                                "no host {:?}; hosts: {}",
                                h.get_ref(),
                                name_list(&names.hosts)
                            ),
                        );
                        return None;
                    }
                    if action == "crash" {
                        Fault::CrashHost(h.get_ref().clone())
                    } else {
                        Fault::RestartHost(h.get_ref().clone())
                    }
                }
                (None, Some(c)) => {
                    if !check_container(p, names, c) {
                        return None;
                    }
                    if action == "crash" {
                        Fault::CrashContainer(c.get_ref().clone())
                    } else {
                        Fault::RestartContainer(c.get_ref().clone())
                    }
                }
                _ => {
                    p.at(here, format!("do = {action:?} needs exactly one of host = \"...\" or container = \"...\""));
                    return None;
                }
            }
        }
        "connect" | "disconnect" => {
            let allowed: &[&str] = if action == "connect" {
                &["container", "network", "ip", "aliases"]
            } else {
                &["container", "network"]
            };
            unused_keys(p, action, &given, allowed);
            let c = need(p, &def.container, "container", action, here.clone())?;
            let n = need(p, &def.network, "network", action, here.clone())?;
            if !check_container(p, names, c) {
                return None;
            }
            let host = &names.containers[c.get_ref()].0;
            if n.get_ref() != "bridge"
                && !names
                    .networks
                    .contains_key(&(host.clone(), n.get_ref().clone()))
            {
                p.at(
                    n.span(),
                    format!(
                        "container {} runs on host {host}, which has no network {:?}",
                        c.get_ref(),
                        n.get_ref()
                    ),
                );
                return None;
            }
            if action == "connect" {
                let mut spec = EndpointSpec::default();
                if let Some(ip) = &def.ip {
                    match ip.get_ref().parse::<Ipv4Addr>() {
                        Ok(a) => spec.ipv4 = Some(a),
                        Err(_) => {
                            p.at(
                                ip.span(),
                                format!("{:?} is not an IPv4 address", ip.get_ref()),
                            );
                            return None;
                        }
                    }
                }
                if let Some(a) = &def.aliases {
                    spec.aliases = a.get_ref().clone();
                }
                Fault::Connect {
                    container: c.get_ref().clone(),
                    network: n.get_ref().clone(),
                    spec,
                }
            } else {
                Fault::Disconnect {
                    container: c.get_ref().clone(),
                    network: n.get_ref().clone(),
                }
            }
        }
        other => {
            let choices = [
                "partition",
                "heal",
                "heal-all",
                "crash",
                "restart",
                "connect",
                "disconnect",
            ];
            let hint = suggest(other, choices)
                .map_or(String::new(), |s| format!(" (did you mean {s:?}?)"));
            p.at(
                here,
                format!(
                    "unknown fault do = {other:?}{hint}; write one of: {}",
                    choices.join(", ")
                ),
            );
            return None;
        }
    };
    Some(FaultDecl { line, at, fault })
}

fn validate_step(
    p: &mut Problems<'_>,
    names: &Names,
    def: &StepDef,
    line: usize,
) -> Option<StepDecl> {
    let at = Instant::ZERO + duration(p, &def.at)?;
    let action = def.action.get_ref().as_str();
    let here = def.action.span();
    let sp = |v: &Option<Spanned<String>>| v.as_ref().map(|s| s.span());
    let given = [
        ("from", sp(&def.from)),
        ("to", sp(&def.to)),
        ("name", sp(&def.name)),
        ("count", def.count.as_ref().map(|s| s.span())),
        ("interval", sp(&def.interval)),
        ("size", def.size.as_ref().map(|s| s.span())),
        ("port", def.port.as_ref().map(|s| s.span())),
        ("bytes", def.bytes.as_ref().map(|s| s.span())),
        ("timeout", sp(&def.timeout)),
        ("received", def.received.as_ref().map(|s| s.span())),
        ("addresses", def.addresses.as_ref().map(|s| s.span())),
    ];
    let choices = ["ping", "udp", "send", "fetch", "lookup"];
    if !choices.contains(&action) {
        let hint =
            suggest(action, choices).map_or(String::new(), |s| format!(" (did you mean {s:?}?)"));
        p.at(here, format!("unknown step do = {action:?}{hint}; write one of: ping, udp, send (TCP upload), fetch (TCP download), lookup (DNS)"));
        return None;
    }
    let from = need(p, &def.from, "from", action, here.clone())?;
    let external = names.outside.contains_key(from.get_ref());
    if external && !matches!(action, "send" | "fetch" | "udp") {
        p.at(
            from.span(),
            format!("{:?} is an outside node: it can only send, fetch (TCP) or udp, to a host's published port", from.get_ref()),
        );
        return None;
    }
    if !external && !check_container(p, names, from) {
        return None;
    }
    let from = from.get_ref().clone();
    let timeout = match &def.timeout {
        Some(t) => Some(duration(p, t)?),
        None => None,
    };
    let target = |p: &mut Problems<'_>| -> Option<String> {
        let to = need(p, &def.to, "to", action, here.clone())?;
        let named = names.outside.contains_key(to.get_ref())
            || (external && names.hosts.contains(to.get_ref()));
        if to.get_ref().parse::<Ipv4Addr>().is_err() && !named && !check_container(p, names, to) {
            return None;
        }
        Some(to.get_ref().clone())
    };
    let expect_text = def
        .expect
        .as_ref()
        .map(|e| (e.get_ref().as_str(), e.span()));
    let kind = match action {
        "ping" | "udp" => {
            let allowed: &[&str] = if action == "ping" {
                &["from", "to", "count", "interval", "timeout", "received"]
            } else {
                &[
                    "from", "to", "port", "count", "size", "interval", "timeout", "received",
                ]
            };
            unused_keys(p, action, &given, allowed);
            let to = target(p)?;
            let count = def.count.as_ref().map_or(3, |c| *c.get_ref());
            if let Some(c) = def.count.as_ref().filter(|_| action == "ping") {
                // Caught here, with the line, rather than when the step
                // starts mid-run.
                if *c.get_ref() > MAX_PING_COUNT {
                    p.at(c.span(), ping_count_problem(*c.get_ref()));
                    return None;
                }
            }
            let interval = match &def.interval {
                Some(i) => duration(p, i)?,
                None if action == "ping" => Duration::from_secs(1),
                None => Duration::from_millis(100),
            };
            if action == "ping" {
                StepKind::Ping {
                    from,
                    to,
                    count,
                    interval,
                    timeout: timeout.unwrap_or(Duration::from_secs(2)),
                }
            } else {
                let Some(port) = def.port.as_ref().map(|p| *p.get_ref()) else {
                    p.at(here, "do = \"udp\" needs port = N (the echo server's port)");
                    return None;
                };
                StepKind::Udp {
                    from,
                    to,
                    port,
                    count,
                    size: def.size.as_ref().map_or(64, |s| *s.get_ref() as usize),
                    interval,
                    timeout: timeout.unwrap_or(Duration::from_secs(2)),
                }
            }
        }
        "send" | "fetch" => {
            unused_keys(
                p,
                action,
                &given,
                &["from", "to", "port", "bytes", "timeout"],
            );
            let to = target(p)?;
            let Some(port) = def.port.as_ref().map(|p| *p.get_ref()) else {
                p.at(
                    here,
                    format!("do = {action:?} needs port = N (the server's port)"),
                );
                return None;
            };
            let bytes = match &def.bytes {
                Some(b) => match parse_size(b.get_ref()) {
                    Ok(n) => n,
                    Err(e) => {
                        p.at(b.span(), e);
                        return None;
                    }
                },
                None => 100_000,
            };
            StepKind::Tcp {
                from,
                to,
                port,
                bytes,
                direction: if action == "send" {
                    TcpDirection::Send
                } else {
                    TcpDirection::Fetch
                },
                timeout: timeout.unwrap_or(Duration::from_secs(60)),
            }
        }
        _ => {
            unused_keys(p, action, &given, &["from", "name", "timeout", "addresses"]);
            let name = need(p, &def.name, "name", action, here.clone())?;
            StepKind::Lookup {
                from,
                name: name.get_ref().clone(),
                timeout: timeout.unwrap_or(Duration::from_secs(5)),
            }
        }
    };
    let lookup = matches!(kind, StepKind::Lookup { .. });
    let counted = matches!(kind, StepKind::Ping { .. } | StepKind::Udp { .. });
    let allowed_expect: &[&str] = if lookup {
        &["ok", "fail", "nxdomain", "servfail", "nodata"]
    } else if counted {
        &["ok", "fail", "some"]
    } else {
        &["ok", "fail"]
    };
    let mut expect = match expect_text {
        None => Expect::Ok,
        Some((e, span)) if allowed_expect.contains(&e) => match e {
            "ok" => Expect::Ok,
            "fail" => Expect::Fail,
            "some" => Expect::Some,
            "nxdomain" => Expect::Rcode("NXDOMAIN".into()),
            "servfail" => Expect::Rcode("SERVFAIL".into()),
            "nodata" => Expect::NoData,
            _ => {
                p.at(span, "unreachable expectation");
                return None;
            }
        },
        Some((e, span)) => {
            let hint = suggest(e, allowed_expect.iter().copied())
                .map_or(String::new(), |s| format!(" (did you mean {s:?}?)"));
            p.at(
                span,
                format!(
                    "expect = {e:?} does not apply to do = {action:?}{hint}; write one of: {}",
                    allowed_expect.join(", ")
                ),
            );
            return None;
        }
    };
    if let Some(r) = &def.received {
        if def.expect.is_some() {
            p.at(
                r.span(),
                "write either expect = \"...\" or received = N, not both",
            );
            return None;
        }
        expect = Expect::Received(*r.get_ref());
    }
    if let Some(a) = &def.addresses {
        if def.expect.as_ref().is_some_and(|e| e.get_ref() != "ok") {
            p.at(
                a.span(),
                "addresses = [...] goes with expect = \"ok\" (or no expect)",
            );
            return None;
        }
        let mut addrs = Vec::new();
        for s in a.get_ref() {
            match s.parse::<IpAddr>() {
                Ok(ip) => addrs.push(ip),
                Err(_) => {
                    p.at(a.span(), format!("{s:?} is not an IP address"));
                    return None;
                }
            }
        }
        addrs.sort();
        expect = Expect::Addresses(addrs);
    }
    Some(StepDecl {
        line,
        at,
        kind,
        expect,
        note: def.note.clone(),
    })
}
