//! Running a lab: build its world, schedule its faults, start each step at
//! its time, run, and judge every step against its expectation.

use super::{Expect, Lab, LabError, Problem, StepDecl, StepKind};
use crate::apps::{AppHandle, AppResult};
use crate::digest::Digest;
use crate::error::SimError;
use crate::launch::{AppSpec, DnsLookup, Ping, TcpTransfer, UdpEcho};
use crate::world::{AppliedFault, Explained, Sim};
use crate::TcpDirection;
use serde::Serialize;
use std::net::IpAddr;
use std::time::Duration;
use switchyard_switch::Instant;

/// How to run a lab.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Overrides the file's seed.
    pub seed: Option<u64>,
    /// Stop at this virtual time at the latest.
    pub until: Option<Duration>,
    /// Keep the switch's explanation of every frame.
    pub explain: bool,
    /// Capture every host, link and loopback to pcap.
    pub capture: bool,
    /// Keep every delivered frame, so two runs can be compared frame by
    /// frame ([`crate::compare_runs`]).
    pub record: bool,
}

/// How one step went.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StepOutcome {
    /// The step's line in the lab file.
    pub line: usize,
    /// When it started.
    pub at: Instant,
    /// What it does (`a pings b (3x)`).
    pub step: String,
    /// What it should observe.
    pub expected: String,
    /// What it observed.
    pub observed: String,
    /// Whether the expectation held.
    pub passed: bool,
    /// The lab's note for the step.
    pub note: Option<String>,
    /// The application's full result.
    pub result: Option<AppResult>,
}

/// The outcome of a lab run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LabReport {
    /// The lab's name.
    pub lab: String,
    /// The file.
    pub file: String,
    /// The lab's description.
    pub description: String,
    /// The seed used.
    pub seed: u64,
    /// When the run stopped.
    pub ended_at: Instant,
    /// Every step, in start order.
    pub steps: Vec<StepOutcome>,
    /// Every fault applied.
    pub faults: Vec<AppliedFault>,
    /// Per-frame switch decisions, with `explain`.
    pub explanations: Vec<Explained>,
    /// The digest of every delivered frame.
    pub digest: Digest,
    /// True when every expectation held.
    pub passed: bool,
}

fn build_problem(lab: &Lab, line: usize, e: SimError) -> LabError {
    LabError {
        problems: vec![Problem {
            file: lab.file.clone(),
            line,
            column: 1,
            message: e.to_string(),
        }],
    }
}

fn human_bytes(n: u64) -> String {
    if n >= 1_000_000 {
        format!("{:.1} MB", n as f64 / 1e6)
    } else if n >= 1_000 {
        format!("{:.1} kB", n as f64 / 1e3)
    } else {
        format!("{n} bytes")
    }
}

impl StepDecl {
    fn describe(&self) -> String {
        match &self.kind {
            StepKind::Ping {
                from, to, count, ..
            } => format!("{from} pings {to} ({count}x)"),
            StepKind::Udp {
                from,
                to,
                port,
                count,
                ..
            } => {
                format!("{from} sends {count} UDP datagrams to {to}:{port}")
            }
            StepKind::Tcp {
                from,
                to,
                port,
                bytes,
                direction,
                ..
            } => match direction {
                TcpDirection::Send => format!(
                    "{from} sends {} to {to}:{port} over TCP",
                    human_bytes(*bytes)
                ),
                TcpDirection::Fetch => format!(
                    "{from} fetches {} from {to}:{port} over TCP",
                    human_bytes(*bytes)
                ),
            },
            StepKind::Lookup { from, name, .. } => format!("{from} looks up {name}"),
        }
    }

    fn expected(&self) -> String {
        let counted = matches!(self.kind, StepKind::Ping { .. } | StepKind::Udp { .. });
        let lookup = matches!(self.kind, StepKind::Lookup { .. });
        match (&self.expect, counted, lookup) {
            (Expect::Ok, true, _) => "every reply".into(),
            (Expect::Ok, _, true) => "an address".into(),
            (Expect::Ok, _, _) => "completes".into(),
            (Expect::Fail, true, _) => "no reply".into(),
            (Expect::Fail, _, true) => "no address".into(),
            (Expect::Fail, _, _) => "does not complete".into(),
            (Expect::Some, _, _) => "at least one reply".into(),
            (Expect::Received(n), _, _) => format!("exactly {n} replies"),
            (Expect::Rcode(r), _, _) => r.clone(),
            (Expect::NoData, _, _) => "NOERROR, no address".into(),
            (Expect::Addresses(a), _, _) => a
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
        }
    }

    fn spec(&self) -> AppSpec {
        match &self.kind {
            StepKind::Ping {
                from,
                to,
                count,
                interval,
                timeout,
            } => Ping::new(from, to.as_str())
                .count(*count)
                .interval(*interval)
                .timeout(*timeout)
                .into(),
            StepKind::Udp {
                from,
                to,
                port,
                count,
                size,
                interval,
                timeout,
            } => {
                let mut u = UdpEcho::new(from, to.as_str(), *port)
                    .count(*count)
                    .size(*size);
                u.interval = *interval;
                u.timeout = *timeout;
                u.into()
            }
            StepKind::Tcp {
                from,
                to,
                port,
                bytes,
                direction,
                timeout,
            } => {
                let t = match direction {
                    TcpDirection::Send => TcpTransfer::send(from, to.as_str(), *port, *bytes),
                    TcpDirection::Fetch => TcpTransfer::fetch(from, to.as_str(), *port, *bytes),
                };
                t.timeout(*timeout).into()
            }
            StepKind::Lookup {
                from,
                name,
                timeout,
            } => {
                let mut d = DnsLookup::new(from, name);
                d.timeout = *timeout;
                d.into()
            }
        }
    }

    /// How long after its start the step can last.
    fn budget(&self) -> Duration {
        match &self.kind {
            StepKind::Ping {
                count,
                interval,
                timeout,
                ..
            }
            | StepKind::Udp {
                count,
                interval,
                timeout,
                ..
            } => *interval * count.saturating_sub(1) + *timeout + Duration::from_millis(100),
            StepKind::Tcp { timeout, .. } => *timeout + Duration::from_secs(6),
            StepKind::Lookup { timeout, .. } => *timeout + Duration::from_millis(100),
        }
    }

    /// Judges a result: (observed, passed).
    fn judge(&self, result: &AppResult) -> (String, bool) {
        match result {
            AppResult::Ping(r) => {
                let mut obs = format!("{}/{} replies", r.received, r.sent);
                if !r.rtts.is_empty() {
                    let avg = r.rtts.iter().sum::<Duration>() / r.rtts.len() as u32;
                    obs.push_str(&format!(", avg rtt {avg:?}"));
                }
                if let Some(e) = &r.error {
                    obs.push_str(&format!(" ({e})"));
                }
                if !r.done {
                    obs.push_str(" (still running)");
                }
                (obs, self.judge_count(r.received, r.sent, r.done))
            }
            AppResult::Udp(r) => {
                let mut obs = format!("{}/{} echoed", r.echoed, r.sent);
                if let Some(e) = &r.error {
                    obs.push_str(&format!(" ({e})"));
                }
                (obs, self.judge_count(r.echoed, r.sent, r.done))
            }
            AppResult::Tcp(r) => {
                let ok = r.completed_at.is_some() && r.error.is_none();
                let obs = match (&r.completed_at, &r.error, r.connected_at) {
                    (Some(t), None, Some(c)) => format!(
                        "completed: {} in {:?}",
                        human_bytes(r.received),
                        t.saturating_duration_since(c)
                    ),
                    (_, Some(e), _) => format!("failed: {e}"),
                    _ => format!(
                        "not finished: {} of {} received",
                        human_bytes(r.received),
                        human_bytes(r.bytes)
                    ),
                };
                let passed = match self.expect {
                    Expect::Ok => ok,
                    Expect::Fail => !ok,
                    _ => false,
                };
                (obs, passed)
            }
            AppResult::Dns(r) => {
                let mut addrs: Vec<IpAddr> = r.addresses.clone();
                let obs = match (&r.rcode, &r.error) {
                    (Some(code), _) if addrs.is_empty() => code.clone(),
                    (Some(code), _) => format!(
                        "{code} {}",
                        addrs
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    (None, Some(e)) => format!("no answer: {e}"),
                    (None, None) => "no answer yet".into(),
                };
                addrs.sort();
                let noerror = r.rcode.as_deref() == Some("NOERROR");
                let passed = match &self.expect {
                    Expect::Ok => noerror && !addrs.is_empty(),
                    Expect::Fail => r.done && addrs.is_empty(),
                    Expect::Rcode(code) => r.rcode.as_deref() == Some(code.as_str()),
                    Expect::NoData => noerror && addrs.is_empty(),
                    Expect::Addresses(want) => noerror && &addrs == want,
                    _ => false,
                };
                (obs, passed)
            }
        }
    }

    fn judge_count(&self, got: u32, sent: u32, done: bool) -> bool {
        match self.expect {
            Expect::Ok => done && sent > 0 && got == sent,
            Expect::Fail => got == 0,
            Expect::Some => got > 0,
            Expect::Received(n) => done && got == n,
            _ => false,
        }
    }
}

impl Lab {
    /// Builds the lab's world at time zero: hosts, upstreams, networks,
    /// containers, cables, link settings, captures, scheduled faults.
    pub fn build(&self, seed: u64, options: &RunOptions) -> Result<Sim, LabError> {
        let mut sim = Sim::builder()
            .seed(seed)
            .explain(options.explain)
            .record_deliveries(options.record)
            .build();
        for h in &self.hosts {
            sim.add_host(h).map_err(|e| build_problem(self, 1, e))?;
        }
        for z in &self.upstreams {
            sim.add_upstream_zone(z.clone());
        }
        for o in &self.outside {
            sim.add_outside(o.clone())
                .map_err(|e| build_problem(self, 1, e))?;
        }
        if options.capture {
            // Interfaces that appear later (connect faults) are captured too.
            for h in &self.hosts {
                sim.capture(h).map_err(|e| build_problem(self, 1, e))?;
                sim.capture(&format!("{h}/outside"))
                    .map_err(|e| build_problem(self, 1, e))?;
            }
            for o in &self.outside {
                sim.capture(&o.name)
                    .map_err(|e| build_problem(self, 1, e))?;
            }
        }
        for n in &self.networks {
            sim.create_network(&n.host, n.spec.clone())
                .map_err(|e| build_problem(self, n.line, e))?;
        }
        for c in &self.containers {
            sim.add_container(&c.host, &c.name, &[])
                .map_err(|e| build_problem(self, c.line, e))?;
            if options.capture {
                let extra = self
                    .faults
                    .iter()
                    .filter(|f| matches!(&f.fault, crate::Fault::Connect { container, .. } if *container == c.name))
                    .count();
                for k in 0..c.connects.len() + extra {
                    let _ = sim.capture(&format!("{}/eth{k}", c.name));
                }
                let _ = sim.capture(&format!("{}/lo", c.name));
            }
            for (net, spec) in &c.connects {
                sim.connect(&c.name, net, spec.clone())
                    .map_err(|e| build_problem(self, c.line, e))?;
            }
        }
        for c in &self.cables {
            sim.add_cable(&c.name, &c.hosts[0], &c.hosts[1], &c.network)
                .map_err(|e| build_problem(self, c.line, e))?;
            if options.capture {
                let _ = sim.capture(&c.name);
            }
        }
        for (line, pb) in &self.publish {
            sim.publish(pb.clone())
                .map_err(|e| build_problem(self, *line, e))?;
        }
        for l in &self.links {
            sim.set_link(&l.selector, l.direction, l.config.clone())
                .map_err(|e| build_problem(self, l.line, e))?;
        }
        for f in &self.faults {
            sim.at(f.at, f.fault.clone());
        }
        Ok(sim)
    }

    /// When a run ends unless `--until` says otherwise: the file's
    /// duration, else one second after the last step could end or the last
    /// fault happens.
    fn natural_end(&self) -> Instant {
        if let Some(d) = self.duration {
            return Instant::ZERO + d;
        }
        let steps = self.steps.iter().map(|s| s.at + s.budget());
        let faults = self.faults.iter().map(|f| f.at);
        steps.chain(faults).max().unwrap_or(Instant::ZERO) + Duration::from_secs(1)
    }

    /// Runs the lab and judges every step; gives the world back too (for
    /// pcaps and inspection).
    pub fn run(&self, options: &RunOptions) -> Result<(LabReport, Sim), LabError> {
        let seed = options.seed.unwrap_or(self.seed);
        let mut sim = self.build(seed, options)?;
        let natural = self.natural_end();
        let end = options
            .until
            .map_or(natural, |u| (Instant::ZERO + u).min(natural));
        let last_fault = self
            .faults
            .iter()
            .map(|f| f.at)
            .max()
            .unwrap_or(Instant::ZERO);
        let mut started: Vec<(usize, Result<AppHandle, SimError>)> = Vec::new();
        for (i, step) in self.steps.iter().enumerate() {
            if step.at > end {
                continue;
            }
            sim.run_until_time(step.at);
            started.push((i, sim.start(step.spec())));
        }
        let handles: Vec<AppHandle> = started
            .iter()
            .filter_map(|(_, h)| h.as_ref().ok().copied())
            .collect();
        let limit = end.saturating_duration_since(sim.now());
        sim.run_until(
            |s| s.now() >= last_fault && handles.iter().all(|h| s.is_done(*h)),
            limit,
        );
        let mut outcomes = Vec::new();
        for (i, step) in self.steps.iter().enumerate() {
            let base = StepOutcome {
                line: step.line,
                at: step.at,
                step: step.describe(),
                expected: step.expected(),
                observed: String::new(),
                passed: false,
                note: step.note.clone(),
                result: None,
            };
            let outcome = match started.iter().find(|(j, _)| *j == i) {
                None => StepOutcome {
                    observed: format!("not reached: the run stopped at {}", sim.now()),
                    ..base
                },
                Some((_, Err(e))) => StepOutcome {
                    observed: format!("could not start: {e}"),
                    ..base
                },
                Some((_, Ok(h))) => {
                    let result = sim.result(*h);
                    let (observed, passed) = step.judge(&result);
                    StepOutcome {
                        observed,
                        passed,
                        result: Some(result),
                        ..base
                    }
                }
            };
            outcomes.push(outcome);
        }
        let passed = outcomes.iter().all(|o| o.passed);
        let report = LabReport {
            lab: self.name.clone(),
            file: self.file.clone(),
            description: self.description.clone(),
            seed,
            ended_at: sim.now(),
            steps: outcomes,
            faults: sim.fault_log().to_vec(),
            explanations: sim.take_explanations(),
            digest: sim.digest(),
            passed,
        };
        Ok((report, sim))
    }

    /// Runs the lab (faults and steps alike) up to virtual time `at` and
    /// returns the world as it is then, for `lab show`.
    pub fn run_to(&self, seed: u64, at: Duration) -> Result<Sim, LabError> {
        let options = RunOptions::default();
        let mut sim = self.build(seed, &options)?;
        let end = Instant::ZERO + at;
        for step in &self.steps {
            if step.at > end {
                break;
            }
            sim.run_until_time(step.at);
            let _ = sim.start(step.spec());
        }
        sim.run_until_time(end);
        Ok(sim)
    }
}
