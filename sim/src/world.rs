//! The world: one event queue ordered by (virtual time, sequence number),
//! one clock that jumps straight to the next event, one seeded generator,
//! and the frame path through links, switches and container stacks.

use crate::apps::{earliest, App, AppCtx, AppKind, Effect};
use crate::builder::SimConfig;
use crate::container::{from_smol, smol_now, Container};
use crate::digest::{Delivery, Digest};
use crate::dns::{loopback_frame, UpstreamZone, LOOPBACK_DELAY};
use crate::fault::{Fault, Located, Node, Partitions};
use crate::frame::Frame;
use crate::gateways::GATEWAY_DELAY;
use crate::host::{Host, PortUse};
use crate::internet::{InternetNode, OutsideSpec, ServedRequest};
use crate::link::{corrupt, End, Link, LinkId, LinkKind};
use crate::pcap::PcapWriter;
use crate::queue::EventQueue;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;
use switchyard_dns::{ClientToken, Outcome, Transport};
use switchyard_switch::{Egress, Instant, PortId};

/// Something that happens at a virtual time.
pub(crate) enum Event {
    /// A frame reaches the far end of one direction of a link.
    Arrive {
        link: LinkId,
        dir: u8,
        frame: Frame,
        origin: Located,
    },
    /// A container's stacks and applications run (if still due).
    Step { container: u32 },
    /// A DNS query reaches the host's resolver over loopback.
    DnsQuery {
        app: u32,
        container: u32,
        life: u32,
        bytes: Vec<u8>,
    },
    /// A DNS answer reaches the asking application over loopback.
    DnsReply {
        app: u32,
        container: u32,
        life: u32,
        bytes: Vec<u8>,
    },
    /// A simulated upstream answers a forwarded query.
    UpstreamReply {
        host: u32,
        life: u32,
        from: SocketAddr,
        bytes: Vec<u8>,
    },
    /// The resolver's upstream deadline (if still due).
    DnsTimeouts { host: u32 },
    /// A scheduled fault.
    Fault(u32),
    /// A frame reaches a node of the internet.
    NodeArrive { node: u32, frame: Frame },
    /// An internet node (or a host's outside) runs (if still due).
    NodeStep { node: u32 },
    /// A frame from the switch reaches one of the host's gateways.
    GatewayIn {
        host: u32,
        life: u32,
        gateway: u32,
        frame: Frame,
    },
    /// A gateway's frame reaches its switch port.
    GatewayOut {
        host: u32,
        life: u32,
        port: PortId,
        frame: Frame,
    },
}

/// One line of `--explain`: why the switch sent a frame where it went.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Explained {
    /// When the switch decided.
    pub time: Instant,
    /// Whose switch.
    pub host: String,
    /// The decision, in words (the bridge's own explanation).
    pub text: String,
}

/// A fault that was applied, and whether it worked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AppliedFault {
    /// When.
    pub time: Instant,
    /// What.
    pub fault: String,
    /// Why it could not be applied, if it could not.
    pub error: Option<String>,
}

/// A pcap capture point's file.
pub(crate) struct Capture {
    pub pcap: PcapWriter,
}

/// The simulated world. Build one with [`Sim::builder`](crate::Sim::builder).
pub struct Sim {
    pub(crate) now: Instant,
    pub(crate) seed: u64,
    pub(crate) rng: ChaCha8Rng,
    /// Seeds of the gateways and the internet's stacks: a generator of
    /// their own (derived from the seed), so adding them does not shift
    /// the draws everything else makes.
    pub(crate) nat_rng: ChaCha8Rng,
    queue: EventQueue<Event>,
    pub(crate) config: SimConfig,
    pub(crate) hosts: Vec<Host>,
    pub(crate) host_names: BTreeMap<String, u32>,
    pub(crate) containers: Vec<Container>,
    pub(crate) container_names: BTreeMap<String, u32>,
    pub(crate) links: Vec<Link>,
    pub(crate) link_names: BTreeMap<String, LinkId>,
    pub(crate) apps: Vec<App>,
    pub(crate) partitions: Partitions,
    pub(crate) digest: Digest,
    pub(crate) log: Option<Vec<Delivery>>,
    pub(crate) captures: Vec<Capture>,
    pub(crate) capture_names: BTreeMap<String, u32>,
    pub(crate) explain: Option<Vec<Explained>>,
    pub(crate) zones: Vec<UpstreamZone>,
    pub(crate) scheduled_faults: Vec<Option<Fault>>,
    pub(crate) fault_log: Vec<AppliedFault>,
    pub(crate) events: u64,
    /// The simulated internet's nodes: hosts' uplinks, servers, clients.
    pub(crate) internet: Vec<InternetNode>,
    pub(crate) internet_names: BTreeMap<String, u32>,
    pub(crate) outside_specs: Vec<OutsideSpec>,
    pub(crate) served: Vec<ServedRequest>,
    /// Reused by every run of a host's outside, so it allocates no lists.
    pub(crate) gw_ready: Vec<(crate::outside::FlowKey, switchyard_gateway::Readiness)>,
    pub(crate) gw_frames: Vec<(PortId, Vec<u8>)>,
    egress: Egress,
    scratch: Vec<PortUse>,
    pub(crate) effects: Vec<Effect>,
}

/// Separates the gateways' and internet's generator from the world's.
const NAT_SEED_SALT: u64 = 0x6e61_745f_6761_7465;

/// Digest place codes: a switch port, a container interface, a loopback.
fn place_port(host: u32, port: PortId) -> u64 {
    (u64::from(host) << 32) | u64::from(port.0)
}
fn place_nic(link: LinkId) -> u64 {
    (1 << 62) | u64::from(link)
}
fn place_lo(container: u32) -> u64 {
    (2 << 62) | u64::from(container)
}

impl Sim {
    pub(crate) fn from_parts(seed: u64, rng: ChaCha8Rng, config: SimConfig) -> Sim {
        Sim {
            now: Instant::ZERO,
            seed,
            rng,
            nat_rng: ChaCha8Rng::seed_from_u64(seed ^ NAT_SEED_SALT),
            queue: EventQueue::default(),
            log: config.record_deliveries.then(Vec::new),
            explain: config.explain.then(Vec::new),
            config,
            hosts: Vec::new(),
            host_names: BTreeMap::new(),
            containers: Vec::new(),
            container_names: BTreeMap::new(),
            links: Vec::new(),
            link_names: BTreeMap::new(),
            apps: Vec::new(),
            partitions: Partitions::default(),
            digest: Digest::default(),
            captures: Vec::new(),
            capture_names: BTreeMap::new(),
            zones: Vec::new(),
            scheduled_faults: Vec::new(),
            fault_log: Vec::new(),
            events: 0,
            internet: Vec::new(),
            internet_names: BTreeMap::new(),
            outside_specs: Vec::new(),
            served: Vec::new(),
            gw_ready: Vec::new(),
            gw_frames: Vec::new(),
            egress: Egress::with_capacity(64),
            scratch: Vec::new(),
            effects: Vec::new(),
        }
    }

    /// The current virtual time.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// The seed the world was built with.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The digest of every frame delivered so far.
    pub fn digest(&self) -> Digest {
        self.digest
    }

    /// Every delivery so far, when the world records them
    /// ([`SimBuilder::record_deliveries`](crate::SimBuilder::record_deliveries)).
    pub fn deliveries(&self) -> Option<&[Delivery]> {
        self.log.as_deref()
    }

    /// Events processed so far (a measure of work, for benchmarks).
    pub fn events_processed(&self) -> u64 {
        self.events
    }

    /// `--explain` lines so far, when enabled
    /// ([`SimBuilder::explain`](crate::SimBuilder::explain)).
    pub fn explanations(&self) -> &[Explained] {
        self.explain.as_deref().unwrap_or(&[])
    }

    /// Takes the `--explain` lines gathered so far.
    pub fn take_explanations(&mut self) -> Vec<Explained> {
        self.explain
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// Faults applied so far (scheduled or immediate), with errors.
    pub fn fault_log(&self) -> &[AppliedFault] {
        &self.fault_log
    }

    pub(crate) fn schedule(&mut self, at: Instant, event: Event) {
        self.queue.push(at.max(self.now), event);
    }

    /// When the next event is due, if any.
    pub fn next_event_at(&self) -> Option<Instant> {
        self.queue.peek_time()
    }

    /// Processes the next event, if any; false when the queue is empty.
    pub fn step(&mut self) -> bool {
        let Some((at, event)) = self.queue.pop() else {
            return false;
        };
        self.now = at;
        self.events += 1;
        self.dispatch(event);
        true
    }

    /// Runs every event due up to and including `t`, then sets the clock to
    /// `t`.
    pub fn run_until_time(&mut self, t: Instant) {
        while self.queue.peek_time().is_some_and(|at| at <= t) {
            self.step();
        }
        if t > self.now {
            self.now = t;
        }
    }

    /// Runs for `d` of virtual time.
    pub fn run_for(&mut self, d: Duration) {
        self.run_until_time(self.now + d);
    }

    /// Runs until `cond` holds (checked before each event) or `limit` of
    /// virtual time has passed; returns whether `cond` held.
    pub fn run_until(&mut self, mut cond: impl FnMut(&Sim) -> bool, limit: Duration) -> bool {
        let end = self.now + limit;
        loop {
            if cond(self) {
                return true;
            }
            match self.queue.peek_time() {
                Some(at) if at <= end => {
                    self.step();
                }
                _ => {
                    if end > self.now {
                        self.now = end;
                    }
                    return cond(self);
                }
            }
        }
    }

    /// Runs until no event is left or `limit` has passed; returns whether
    /// the world went idle.
    pub fn run_until_idle(&mut self, limit: Duration) -> bool {
        self.run_until(|s| s.queue.is_empty(), limit)
    }

    fn dispatch(&mut self, event: Event) {
        match event {
            Event::Arrive {
                link,
                dir,
                frame,
                origin,
            } => self.on_arrive(link, usize::from(dir), frame, origin),
            Event::Step { container } => {
                if self.containers[container as usize].next_step == Some(self.now) {
                    self.step_container(container);
                }
            }
            Event::DnsQuery {
                app,
                container,
                life,
                bytes,
            } => self.dns_at_resolver(app, container, life, &bytes),
            Event::DnsReply {
                app,
                container,
                life,
                bytes,
            } => {
                let c = &self.containers[container as usize];
                if c.up && c.life == life {
                    if let AppKind::Dns(a) = &mut self.apps[app as usize].kind {
                        a.answer(&bytes, self.now);
                    }
                }
            }
            Event::UpstreamReply {
                host,
                life,
                from,
                bytes,
            } => {
                let now = self.dns_now();
                let h = &mut self.hosts[host as usize];
                if h.up && h.life == life {
                    let mut out = Vec::new();
                    let outcome = h.resolver.handle_upstream_reply(
                        now,
                        from,
                        Transport::Udp,
                        &bytes,
                        &mut self.rng,
                        &mut out,
                    );
                    self.dns_outcome(host, outcome, out);
                }
            }
            Event::DnsTimeouts { host } => {
                if self.hosts[host as usize].dns_timer == Some(self.now) {
                    self.hosts[host as usize].dns_timer = None;
                    let now = self.dns_now();
                    let mut emitted = Vec::new();
                    let h = &mut self.hosts[host as usize];
                    h.resolver.poll_timeouts(now, &mut self.rng, |o, b| {
                        emitted.push((o, b.to_vec()));
                    });
                    for (o, b) in emitted {
                        self.dns_outcome(host, o, b);
                    }
                    self.arm_dns_timer(host);
                }
            }
            Event::NodeArrive { node, frame } => self.node_arrive(node, frame),
            Event::NodeStep { node } => {
                if self.internet[node as usize].next_step == Some(self.now) {
                    self.step_node(node);
                }
            }
            Event::GatewayIn {
                host,
                life,
                gateway,
                frame,
            } => {
                let h = &self.hosts[host as usize];
                if h.up && h.life == life {
                    self.gateway_in(host, gateway, frame);
                }
            }
            Event::GatewayOut {
                host,
                life,
                port,
                frame,
            } => self.gateway_out(host, life, port, frame),
            Event::Fault(i) => {
                if let Some(fault) = self
                    .scheduled_faults
                    .get_mut(i as usize)
                    .and_then(Option::take)
                {
                    let _ = self.apply(fault);
                }
            }
        }
    }

    /// Schedules a container's step at `at` unless one is due earlier.
    pub(crate) fn schedule_step(&mut self, c: u32, at: Instant) {
        let at = at.max(self.now);
        let cont = &mut self.containers[c as usize];
        if cont.next_step.is_none_or(|t| at < t) {
            cont.next_step = Some(at);
            self.schedule(at, Event::Step { container: c });
        }
    }

    /// Where a container is, for partition rules.
    pub(crate) fn locate(&self, c: u32) -> Located {
        Located {
            node: Node::Container(c),
            host: self.containers[c as usize].host,
        }
    }

    /// Hands a frame to one direction of a link.
    pub(crate) fn send_on_link(&mut self, link: LinkId, dir: usize, frame: Frame, origin: Located) {
        let now = self.now;
        let l = &mut self.links[link as usize];
        if dir == 0 && l.kind == LinkKind::Nic {
            if let Some(cap) = l.capture {
                self.captures[cap as usize].pcap.record(now, &frame);
            }
        }
        let Ok(copies) = l.dirs[dir].offer(now, frame.len(), &mut self.rng) else {
            return;
        };
        for t in copies.into_iter().flatten() {
            let f = match t.corrupt_bit {
                Some(bit) => Frame::new(corrupt(&frame, bit)),
                None => frame.clone(),
            };
            self.schedule(
                now + t.delay,
                Event::Arrive {
                    link,
                    dir: dir as u8,
                    frame: f,
                    origin,
                },
            );
        }
    }

    fn on_arrive(&mut self, link: LinkId, dir: usize, frame: Frame, origin: Located) {
        let now = self.now;
        let to = self.links[link as usize].ends[1 - dir];
        match to {
            End::Port {
                host,
                port: Some(port),
            } => {
                let dest = Located {
                    node: Node::Host(host),
                    host,
                };
                let blocked = !self.partitions.is_empty() && self.partitions.blocks(origin, dest);
                let l = &mut self.links[link as usize];
                if blocked {
                    l.dirs[dir].stats.partitioned += 1;
                    return;
                }
                if !self.hosts[host as usize].up {
                    l.dirs[dir].stats.no_carrier += 1;
                    return;
                }
                l.dirs[dir].stats.delivered += 1;
                if let (LinkKind::Cable { .. }, Some(cap)) = (&l.kind, l.capture) {
                    self.captures[cap as usize].pcap.record(now, &frame);
                }
                self.switch_ingress(host, port, frame, origin);
            }
            End::Port { port: None, .. } => {
                self.links[link as usize].dirs[dir].stats.no_carrier += 1;
            }
            End::Nic { container } => {
                let dest = self.locate(container);
                let blocked = !self.partitions.is_empty() && self.partitions.blocks(origin, dest);
                let l = &mut self.links[link as usize];
                if blocked {
                    l.dirs[dir].stats.partitioned += 1;
                    return;
                }
                if !self.containers[container as usize].up {
                    l.dirs[dir].stats.no_carrier += 1;
                    return;
                }
                l.dirs[dir].stats.delivered += 1;
                if let Some(cap) = l.capture {
                    self.captures[cap as usize].pcap.record(now, &frame);
                }
                self.deliver_to_nic(container, link, frame);
            }
        }
    }

    pub(crate) fn switch_ingress(&mut self, h: u32, port: PortId, frame: Frame, origin: Located) {
        let now = self.now;
        let host = &mut self.hosts[h as usize];
        self.digest
            .record(now, place_port(h, port), frame.len(), frame.hash());
        if let Some(log) = &mut self.log {
            let label = host
                .bridge
                .port(port)
                .map_or(String::new(), |c| c.label.clone());
            log.push(Delivery {
                time: now,
                host: host.name.clone(),
                port: format!("{port} ({label})"),
                frame: frame.to_vec(),
            });
        }
        if let Some(cap) = host.capture {
            self.captures[cap as usize].pcap.record(now, &frame);
        }
        if now >= host.next_expire {
            host.bridge.expire(now);
            host.next_expire = now + Duration::from_secs(10);
        }
        let decision = host.bridge.process(now, port, &frame, &mut self.egress);
        if let Some(ex) = &mut self.explain {
            ex.push(Explained {
                time: now,
                host: host.name.clone(),
                text: host
                    .bridge
                    .explain(port, &frame, decision, &self.egress)
                    .to_string(),
            });
        }
        let mut out = std::mem::take(&mut self.scratch);
        out.clear();
        for p in self.egress.ports() {
            if let Some(Some(u)) = host.ports.get(p.0 as usize) {
                out.push(*u);
            }
        }
        let life = host.life;
        for &u in &out {
            match u {
                PortUse::Link { link, dir } => self.send_on_link(link, dir, frame.clone(), origin),
                PortUse::Gateway(gateway) => self.schedule(
                    now + GATEWAY_DELAY,
                    Event::GatewayIn {
                        host: h,
                        life,
                        gateway,
                        frame: frame.clone(),
                    },
                ),
            }
        }
        self.scratch = out;
    }

    fn deliver_to_nic(&mut self, c: u32, link: LinkId, frame: Frame) {
        let now = self.now;
        let cont = &mut self.containers[c as usize];
        let Some(nic) = cont.nics.iter_mut().find(|n| n.link == link) else {
            return;
        };
        nic.rx_frames += 1;
        self.digest
            .record(now, place_nic(link), frame.len(), frame.hash());
        if let Some(log) = &mut self.log {
            log.push(Delivery {
                time: now,
                host: self.hosts[cont.host as usize].name.clone(),
                port: format!("{}/{}", cont.name, nic.plan.ifname),
                frame: frame.to_vec(),
            });
        }
        if nic.stack.is_some() {
            nic.snoop_arp(&frame, now);
            if let Some(stack) = nic.stack.as_mut() {
                stack.device.rx.push_back(frame);
            }
            self.schedule_step(c, now);
        }
    }

    /// Runs a container: its stacks take in what arrived, its applications
    /// read and write their sockets, its stacks send what is due.
    pub(crate) fn step_container(&mut self, c: u32) {
        let now = self.now;
        let snow = smol_now(now);
        let Sim {
            containers,
            apps,
            effects,
            ..
        } = self;
        let cont = &mut containers[c as usize];
        cont.next_step = None;
        if !cont.up {
            return;
        }
        for nic in &mut cont.nics {
            if let Some(st) = nic.stack.as_deref_mut() {
                st.iface.poll(snow, &mut st.device, &mut st.sockets);
            }
        }
        let mut wake = None;
        if !cont.apps.is_empty() {
            let parts = std::mem::take(&mut cont.apps);
            let mut keep = Vec::with_capacity(parts.len());
            for (id, role) in parts {
                let mut ctx = AppCtx {
                    now,
                    id,
                    container: c,
                    effects,
                };
                let r = apps[id as usize].poll(role, cont, &mut ctx);
                if !r.detach {
                    keep.push((id, role));
                    wake = earliest(wake, r.wake);
                }
            }
            keep.append(&mut cont.apps);
            cont.apps = keep;
            for nic in &mut cont.nics {
                if let Some(st) = nic.stack.as_deref_mut() {
                    st.iface.poll(snow, &mut st.device, &mut st.sockets);
                }
            }
        }
        let mut out: Vec<(LinkId, Vec<u8>)> = Vec::new();
        for nic in &mut cont.nics {
            if let Some(st) = nic.stack.as_deref_mut() {
                for bytes in st.device.tx.drain(..) {
                    nic.tx_frames += 1;
                    out.push((nic.link, bytes));
                }
                if let Some(t) = st.iface.poll_at(snow, &st.sockets) {
                    let t = from_smol(t).max(now + Duration::from_micros(1));
                    wake = earliest(wake, Some(t));
                }
            }
        }
        if let Some(t) = wake {
            self.schedule_step(c, t);
        }
        let origin = self.locate(c);
        for (link, bytes) in out {
            self.send_on_link(link, 0, Frame::new(bytes), origin);
        }
        let effects = std::mem::take(&mut self.effects);
        for e in effects {
            match e {
                Effect::DnsQuery {
                    app,
                    container,
                    src_port,
                    bytes,
                } => self.send_dns_query(app, container, src_port, bytes),
            }
        }
    }

    /// Virtual time as the resolver counts it.
    fn dns_now(&self) -> Duration {
        Duration::from_nanos(self.now.as_nanos())
    }

    /// Records a loopback frame of a container (digest, log, capture).
    fn record_loopback(&mut self, c: u32, frame: &[u8]) {
        let now = self.now;
        let cont = &self.containers[c as usize];
        let hash = crate::digest::hash_bytes(frame);
        self.digest.record(now, place_lo(c), frame.len(), hash);
        if let Some(log) = &mut self.log {
            log.push(Delivery {
                time: now,
                host: self.hosts[cont.host as usize].name.clone(),
                port: format!("{}/lo", cont.name),
                frame: frame.to_vec(),
            });
        }
        if let Some(cap) = cont.lo_capture {
            self.captures[cap as usize].pcap.record(now, frame);
        }
    }

    fn send_dns_query(&mut self, app: u32, c: u32, src_port: u16, bytes: Vec<u8>) {
        let frame = loopback_frame(src_port, true, &bytes);
        self.record_loopback(c, &frame);
        let life = self.containers[c as usize].life;
        self.schedule(
            self.now + LOOPBACK_DELAY,
            Event::DnsQuery {
                app,
                container: c,
                life,
                bytes,
            },
        );
    }

    fn dns_at_resolver(&mut self, app: u32, c: u32, life: u32, bytes: &[u8]) {
        let now = self.dns_now();
        let cont = &self.containers[c as usize];
        if !cont.up || cont.life != life {
            return;
        }
        let h = cont.host;
        let host = &mut self.hosts[h as usize];
        if !host.up {
            return;
        }
        let scope = cont
            .sandbox_id
            .as_ref()
            .and_then(|sid| host.scopes.get(sid))
            .cloned()
            .unwrap_or_default();
        let mut out = Vec::new();
        let outcome = host.resolver.handle_query(
            now,
            &scope,
            ClientToken(u64::from(app)),
            Transport::Udp,
            bytes,
            &mut self.rng,
            &mut out,
        );
        self.dns_outcome(h, outcome, out);
    }

    fn dns_outcome(&mut self, h: u32, outcome: Outcome, bytes: Vec<u8>) {
        match outcome {
            Outcome::Reply { client, .. } => {
                let Ok(app) = u32::try_from(client.0) else {
                    return;
                };
                let Some(a) = self.apps.get(app as usize) else {
                    return;
                };
                let c = a.client;
                let AppKind::Dns(d) = &a.kind else { return };
                let frame = loopback_frame(d.src_port, false, &bytes);
                self.record_loopback(c, &frame);
                let life = self.containers[c as usize].life;
                self.schedule(
                    self.now + LOOPBACK_DELAY,
                    Event::DnsReply {
                        app,
                        container: c,
                        life,
                        bytes,
                    },
                );
            }
            Outcome::Forward { upstream, .. } => {
                let answer = self
                    .zones
                    .iter()
                    .find(|z| z.address == upstream && z.responds)
                    .and_then(|z| z.answer(&bytes).map(|a| (a, z.latency)));
                if let Some((reply, latency)) = answer {
                    let life = self.hosts[h as usize].life;
                    self.schedule(
                        self.now + latency,
                        Event::UpstreamReply {
                            host: h,
                            life,
                            from: upstream,
                            bytes: reply,
                        },
                    );
                }
            }
            Outcome::Drop(_) => {}
        }
        self.arm_dns_timer(h);
    }

    /// Makes sure the resolver's next upstream deadline has an event.
    fn arm_dns_timer(&mut self, h: u32) {
        let host = &mut self.hosts[h as usize];
        let Some(d) = host.resolver.next_deadline() else {
            return;
        };
        let at = Instant::ZERO + d;
        if host.dns_timer.is_none_or(|t| at < t) {
            host.dns_timer = Some(at);
            self.schedule(at, Event::DnsTimeouts { host: h });
        }
    }

    /// Schedules `fault` at virtual time `at` (now if `at` has passed).
    pub fn at(&mut self, at: Instant, fault: Fault) {
        let i = self.scheduled_faults.len() as u32;
        self.scheduled_faults.push(Some(fault));
        self.schedule(at, Event::Fault(i));
    }

    /// Schedules `fault` after `d` of virtual time.
    pub fn after(&mut self, d: Duration, fault: Fault) {
        self.at(self.now + d, fault);
    }
}
