//! The operations a test (or a lab) performs on the world: networks,
//! containers, connects, cables, link settings, faults and captures.

use crate::container::{Container, Wanted};
use crate::dns::UpstreamZone;
use crate::error::SimError;
use crate::fault::{Fault, LinkDirection};
use crate::link::{Direction, End, LinkConfig, LinkKind, LinkStats};
use crate::pcap::PcapWriter;
use crate::world::{AppliedFault, Capture, Sim};
use rand_chacha::rand_core::RngCore;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use switchyard_switch::controller::model::{
    EndpointSpec, NetnsMode, Network, NetworkSpec, SandboxSpec,
};

impl Sim {
    pub(crate) fn container_id(&self, name: &str) -> Result<u32, SimError> {
        self.container_names
            .get(name)
            .copied()
            .ok_or_else(|| SimError::NoSuchContainer {
                name: name.to_string(),
                known: self
                    .container_names
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    fn controller_err(
        &self,
        h: u32,
    ) -> impl Fn(switchyard_switch::ControllerError) -> SimError + '_ {
        move |source| SimError::Controller {
            host: self.hosts[h as usize].name.clone(),
            source,
        }
    }

    /// `network create` on a host.
    pub fn create_network(&mut self, host: &str, spec: NetworkSpec) -> Result<Network, SimError> {
        let h = self.host_id(host)?;
        let result = self.hosts[h as usize]
            .controller_mut()?
            .create_network(spec);
        let net = result.map_err(self.controller_err(h))?;
        self.apply_changes(h);
        Ok(net)
    }

    /// `network rm` on a host.
    pub fn remove_network(&mut self, host: &str, network: &str) -> Result<(), SimError> {
        let h = self.host_id(host)?;
        let result = self.hosts[h as usize]
            .controller_mut()?
            .remove_network(network);
        result.map_err(self.controller_err(h))?;
        self.apply_changes(h);
        Ok(())
    }

    /// Adds a container with a smoltcp stack on each of its interfaces, and
    /// connects it to `networks` in order (the first gets `eth0` and the
    /// default route, as `docker run --network` then `network connect`).
    pub fn add_container(
        &mut self,
        host: &str,
        name: &str,
        networks: &[(&str, EndpointSpec)],
    ) -> Result<(), SimError> {
        self.add_container_inner(host, name, networks, false)
    }

    /// Adds a container without a TCP/IP stack: frames delivered to it are
    /// only counted, and it sends what [`Sim::send_raw`] gives it. For
    /// benchmarks of the switch alone and for forged frames (spoofing).
    pub fn add_raw_container(
        &mut self,
        host: &str,
        name: &str,
        networks: &[(&str, EndpointSpec)],
    ) -> Result<(), SimError> {
        self.add_container_inner(host, name, networks, true)
    }

    fn add_container_inner(
        &mut self,
        host: &str,
        name: &str,
        networks: &[(&str, EndpointSpec)],
        raw: bool,
    ) -> Result<(), SimError> {
        let h = self.host_id(host)?;
        if self.container_names.contains_key(name) || self.internet_names.contains_key(name) {
            return Err(SimError::DuplicateName {
                what: "container",
                name: name.to_string(),
            });
        }
        let spec = SandboxSpec {
            name: name.to_string(),
            hostname: String::new(),
            mode: NetnsMode::Private,
            labels: BTreeMap::from([("sim.host".to_string(), host.to_string())]),
        };
        let result = self.hosts[h as usize]
            .controller_mut()?
            .create_sandbox(spec);
        let sandbox = result.map_err(self.controller_err(h))?;
        let c = self.containers.len() as u32;
        let next_ephemeral = 49_152 + (self.rng.next_u32() % 8_192) as u16;
        self.containers.push(Container {
            name: name.to_string(),
            host: h,
            sandbox_id: Some(sandbox.id),
            up: true,
            raw,
            wanted: Vec::new(),
            nics: Vec::new(),
            apps: Vec::new(),
            next_step: None,
            next_ephemeral,
            lo_capture: self.capture_names.get(&format!("{name}/lo")).copied(),
            life: 0,
        });
        self.container_names.insert(name.to_string(), c);
        self.apply_changes(h);
        for (net, spec) in networks {
            self.connect(name, net, spec.clone())?;
        }
        Ok(())
    }

    /// `network connect NETWORK CONTAINER`: a new interface appears in the
    /// container, plugged into a new port of the network's segment.
    pub fn connect(
        &mut self,
        container: &str,
        network: &str,
        spec: EndpointSpec,
    ) -> Result<(), SimError> {
        let c = self.container_id(container)?;
        if !self.containers[c as usize].up {
            return Err(SimError::ContainerDown {
                container: container.to_string(),
            });
        }
        let h = self.containers[c as usize].host;
        let result =
            self.hosts[h as usize]
                .controller_mut()?
                .connect(network, container, spec.clone());
        result.map_err(self.controller_err(h))?;
        self.apply_changes(h);
        let cont = &mut self.containers[c as usize];
        cont.wanted.retain(|w| w.network != network);
        cont.wanted.push(Wanted {
            network: network.to_string(),
            spec,
        });
        Ok(())
    }

    /// `network disconnect NETWORK CONTAINER`: the interface and its port
    /// go away at once.
    pub fn disconnect(&mut self, container: &str, network: &str) -> Result<(), SimError> {
        let c = self.container_id(container)?;
        let h = self.containers[c as usize].host;
        let result = self.hosts[h as usize]
            .controller_mut()?
            .disconnect(network, container, false);
        result.map_err(self.controller_err(h))?;
        self.apply_changes(h);
        self.containers[c as usize]
            .wanted
            .retain(|w| w.network != network);
        Ok(())
    }

    /// The container dies (`docker kill`): its stacks and the applications
    /// it runs are gone, and the controller removes its endpoints.
    pub fn crash_container(&mut self, name: &str) -> Result<(), SimError> {
        let c = self.container_id(name)?;
        let h = self.containers[c as usize].host;
        if !self.containers[c as usize].up {
            return Err(SimError::ContainerDown {
                container: name.to_string(),
            });
        }
        if !self.hosts[h as usize].up {
            return Err(SimError::HostDown {
                host: self.hosts[h as usize].name.clone(),
            });
        }
        for app in self.apps.iter_mut().filter(|a| a.client == c) {
            app.fail(&format!("container {name} crashed"));
        }
        let sandbox = self.containers[c as usize].sandbox_id.clone();
        if let Some(sid) = sandbox {
            let result = self.hosts[h as usize]
                .controller_mut()?
                .remove_sandbox(&sid, true);
            result.map_err(self.controller_err(h))?;
            self.apply_changes(h);
        }
        let cont = &mut self.containers[c as usize];
        cont.up = false;
        cont.life += 1;
        cont.sandbox_id = None;
        cont.apps.clear();
        cont.nics.clear();
        cont.next_step = None;
        Ok(())
    }

    /// The container starts again with a fresh stack, reconnected to the
    /// networks it was on (static addresses and aliases kept; a dynamic
    /// address is allocated anew, as Docker does).
    pub fn restart_container(&mut self, name: &str) -> Result<(), SimError> {
        let c = self.container_id(name)?;
        if self.containers[c as usize].up {
            return Err(SimError::Invalid {
                what: "restart",
                detail: format!("container {name} is running; crash it first"),
            });
        }
        let h = self.containers[c as usize].host;
        let spec = SandboxSpec {
            name: name.to_string(),
            hostname: String::new(),
            mode: NetnsMode::Private,
            labels: BTreeMap::from([("sim.host".to_string(), self.hosts[h as usize].name.clone())]),
        };
        let result = self.hosts[h as usize]
            .controller_mut()?
            .create_sandbox(spec);
        let sandbox = result.map_err(self.controller_err(h))?;
        let wanted = std::mem::take(&mut self.containers[c as usize].wanted);
        let cont = &mut self.containers[c as usize];
        cont.sandbox_id = Some(sandbox.id);
        cont.up = true;
        self.apply_changes(h);
        let mut first_error = None;
        for w in wanted {
            if let Err(e) = self.connect(name, &w.network, w.spec.clone()) {
                first_error.get_or_insert(e);
                self.containers[c as usize].wanted.push(w);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Joins the same-named network on two hosts with a cable: a trunk port
    /// on each host's switch, in that network's segment, so stations are
    /// learned across both switches. The networks should share a subnet
    /// with disjoint `ip_range`s (or static addresses), so addresses do not
    /// collide.
    pub fn add_cable(
        &mut self,
        name: &str,
        host_a: &str,
        host_b: &str,
        network: &str,
    ) -> Result<(), SimError> {
        let a = self.host_id(host_a)?;
        let b = self.host_id(host_b)?;
        if self.link_names.contains_key(name) {
            return Err(SimError::DuplicateName {
                what: "cable",
                name: name.to_string(),
            });
        }
        if a == b {
            return Err(SimError::Invalid {
                what: "cable",
                detail: format!(
                    "cable {name} joins host {host_a} to itself; name two different hosts"
                ),
            });
        }
        for h in [a, b] {
            let host = &self.hosts[h as usize];
            let net =
                host.controller()?
                    .network(network)
                    .map_err(|_| SimError::CableNetworkMissing {
                        cable: name.to_string(),
                        network: network.to_string(),
                        host: host.name.clone(),
                    })?;
            if host.controller()?.segment_of(&net.id).is_none() {
                return Err(SimError::NotSwitched {
                    network: network.to_string(),
                    driver: net.driver.clone(),
                });
            }
        }
        self.link_named(
            name,
            LinkKind::Cable {
                network: network.to_string(),
            },
            [
                End::Port {
                    host: a,
                    port: None,
                },
                End::Port {
                    host: b,
                    port: None,
                },
            ],
        );
        self.plug_cables(a);
        self.plug_cables(b);
        Ok(())
    }

    /// The links a selector names: an exact link name (`a/eth0`, a cable),
    /// or a container name for all its interfaces' links.
    fn select_links(&self, selector: &str) -> Result<Vec<u32>, SimError> {
        if let Some(&id) = self.link_names.get(selector) {
            return Ok(vec![id]);
        }
        let prefix = format!("{selector}/");
        let ids: Vec<u32> = self
            .link_names
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .map(|(_, &v)| v)
            .collect();
        if ids.is_empty() {
            return Err(SimError::NoSuchLink {
                name: selector.to_string(),
                known: self
                    .link_names
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        Ok(ids)
    }

    /// Replaces the settings of a link (or of every link of a container),
    /// one way or both. Frames already in flight keep their fate.
    pub fn set_link(
        &mut self,
        selector: &str,
        direction: LinkDirection,
        config: LinkConfig,
    ) -> Result<(), SimError> {
        config.validate().map_err(|detail| SimError::Invalid {
            what: "link settings",
            detail,
        })?;
        for id in self.select_links(selector)? {
            let l = &mut self.links[id as usize];
            let dirs: &[usize] = match direction {
                LinkDirection::Both => &[0, 1],
                LinkDirection::Forward => &[0],
                LinkDirection::Backward => &[1],
            };
            for &d in dirs {
                let stats = std::mem::take(&mut l.dirs[d].stats);
                l.dirs[d] = Direction::new(config.clone());
                l.dirs[d].stats = stats;
            }
        }
        Ok(())
    }

    /// A link's counters: `[forward, backward]` (for a container's link,
    /// forward is container → switch).
    pub fn link_stats(&self, name: &str) -> Result<[LinkStats; 2], SimError> {
        let id = *self
            .link_names
            .get(name)
            .ok_or_else(|| SimError::NoSuchLink {
                name: name.to_string(),
                known: self
                    .link_names
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", "),
            })?;
        let l = &self.links[id as usize];
        Ok([l.dirs[0].stats.clone(), l.dirs[1].stats.clone()])
    }

    /// Names of every link.
    pub fn link_names(&self) -> Vec<String> {
        self.link_names.keys().cloned().collect()
    }

    /// Adds a simulated upstream DNS server that every host's resolver
    /// forwards to (in the order added).
    pub fn add_upstream_zone(&mut self, zone: UpstreamZone) {
        self.zones.push(zone);
        let upstreams: Vec<_> = self.zones.iter().map(|z| z.address).collect();
        for h in &mut self.hosts {
            h.resolver.set_upstreams(&upstreams);
        }
    }

    /// Sends a frame out of a container's interface exactly as given
    /// (forged sources included), as if the container wrote it to its
    /// device.
    pub fn send_raw(
        &mut self,
        container: &str,
        ifname: &str,
        frame: Vec<u8>,
    ) -> Result<(), SimError> {
        let c = self.container_id(container)?;
        let cont = &mut self.containers[c as usize];
        if !cont.up {
            return Err(SimError::ContainerDown {
                container: container.to_string(),
            });
        }
        let Some(nic) = cont.nics.iter_mut().find(|n| n.plan.ifname == ifname) else {
            return Err(SimError::NoSuchLink {
                name: format!("{container}/{ifname}"),
                known: cont
                    .nics
                    .iter()
                    .map(|n| format!("{container}/{}", n.plan.ifname))
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        };
        nic.tx_frames += 1;
        let link = nic.link;
        let origin = self.locate(c);
        self.send_on_link(link, 0, crate::frame::Frame::new(frame), origin);
        Ok(())
    }

    /// Applies a fault now and records it in the fault log.
    pub fn apply(&mut self, fault: Fault) -> Result<(), SimError> {
        let text = fault.to_string();
        let result = match fault {
            Fault::Partition { a, b, oneway } => self.partition_inner(&a, &b, oneway),
            Fault::Heal { a, b } => self.heal(&a, &b),
            Fault::HealAll => {
                self.heal_all();
                Ok(())
            }
            Fault::CrashHost(h) => self.crash_host(&h),
            Fault::RestartHost(h) => self.restart_host(&h),
            Fault::CrashContainer(c) => self.crash_container(&c),
            Fault::RestartContainer(c) => self.restart_container(&c),
            Fault::Connect {
                container,
                network,
                spec,
            } => self.connect(&container, &network, spec),
            Fault::Disconnect { container, network } => self.disconnect(&container, &network),
            Fault::SetLink {
                link,
                direction,
                config,
            } => self.set_link(&link, direction, config),
        };
        if let Err(e) = &result {
            tracing::warn!(time = %self.now, fault = %text, error = %e, "fault could not be applied");
        }
        self.fault_log.push(AppliedFault {
            time: self.now,
            fault: text,
            error: result.as_ref().err().map(ToString::to_string),
        });
        result
    }

    fn partition_inner(&mut self, a: &str, b: &str, oneway: bool) -> Result<(), SimError> {
        let na = self.node_named(a)?;
        let nb = self.node_named(b)?;
        if na == nb {
            return Err(SimError::Invalid {
                what: "partition",
                detail: format!("{a} cannot be partitioned from itself"),
            });
        }
        self.partitions.add(na, nb);
        if !oneway {
            self.partitions.add(nb, na);
        }
        Ok(())
    }

    /// No frame from `a` reaches `b` and none from `b` reaches `a` (hosts
    /// or containers; a host stands for everything on it).
    pub fn partition(&mut self, a: &str, b: &str) -> Result<(), SimError> {
        self.partition_inner(a, b, false)
    }

    /// No frame from `from` reaches `to`; the other way still works.
    pub fn partition_oneway(&mut self, from: &str, to: &str) -> Result<(), SimError> {
        self.partition_inner(from, to, true)
    }

    /// Lifts the partitions between `a` and `b`, both ways.
    pub fn heal(&mut self, a: &str, b: &str) -> Result<(), SimError> {
        let na = self.node_named(a)?;
        let nb = self.node_named(b)?;
        self.partitions.heal(na, nb);
        Ok(())
    }

    /// Lifts every partition.
    pub fn heal_all(&mut self) {
        self.partitions.heal_all();
    }

    /// Starts a pcap capture (from now on) at a capture point: a host name
    /// (every frame its switch receives), a link (`a/eth0`: what the
    /// container's interface sends and receives; a cable: what arrives at
    /// either end), `a/lo` (the container's DNS exchanges), `h1/outside`
    /// (what host `h1` sends and receives on the internet, as its
    /// gateways' flows look after NAT) or an outside node's name. Interfaces
    /// that do not exist yet are captured once they appear.
    pub fn capture(&mut self, point: &str) -> Result<(), SimError> {
        if self.capture_names.contains_key(point) {
            return Ok(());
        }
        let is_host = self.host_names.contains_key(point);
        let is_link = self.link_names.contains_key(point);
        let (owner, rest) = point.split_once('/').unwrap_or((point, ""));
        let is_container_point = !rest.is_empty() && self.container_names.contains_key(owner);
        let node = self.internet_names.get(point).copied();
        if !(is_host || is_link || is_container_point || node.is_some()) {
            return Err(SimError::NoSuchCapturePoint {
                name: point.to_string(),
            });
        }
        let id = self.captures.len() as u32;
        self.captures.push(Capture {
            pcap: PcapWriter::new(),
        });
        self.capture_names.insert(point.to_string(), id);
        if let Some(&h) = self.host_names.get(point) {
            self.hosts[h as usize].capture = Some(id);
        }
        if let Some(n) = node {
            self.internet[n as usize].capture = Some(id);
        }
        if let Some(&l) = self.link_names.get(point) {
            self.links[l as usize].capture = Some(id);
        }
        if rest == "lo" {
            if let Some(&c) = self.container_names.get(owner) {
                self.containers[c as usize].lo_capture = Some(id);
            }
        }
        Ok(())
    }

    /// Captures everything: every host, link and container loopback.
    pub fn capture_all(&mut self) {
        let mut points: Vec<String> = self.host_names.keys().cloned().collect();
        points.extend(self.link_names.keys().cloned());
        points.extend(self.container_names.keys().map(|c| format!("{c}/lo")));
        points.extend(self.internet_names.keys().cloned());
        for p in points {
            let _ = self.capture(&p);
        }
    }

    /// The pcap file of a capture point so far.
    pub fn pcap(&self, point: &str) -> Option<&[u8]> {
        let id = *self.capture_names.get(point)?;
        Some(self.captures[id as usize].pcap.bytes())
    }

    /// Capture point names, sorted.
    pub fn capture_points(&self) -> Vec<String> {
        self.capture_names.keys().cloned().collect()
    }

    /// Writes every capture into `dir` as `NAME.pcap` (`/` becomes `-`),
    /// returning the paths written.
    pub fn write_pcaps(&self, dir: &Path) -> Result<Vec<PathBuf>, SimError> {
        std::fs::create_dir_all(dir).map_err(|source| SimError::Io {
            path: dir.display().to_string(),
            source,
        })?;
        let mut written = Vec::new();
        for (name, &id) in &self.capture_names {
            let path = dir.join(format!("{}.pcap", name.replace('/', "-")));
            std::fs::write(&path, self.captures[id as usize].pcap.bytes()).map_err(|source| {
                SimError::Io {
                    path: path.display().to_string(),
                    source,
                }
            })?;
            written.push(path);
        }
        Ok(written)
    }
}
