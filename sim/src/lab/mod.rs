//! Teaching labs: a TOML topology (hosts, networks, containers, cables,
//! link impairments, DNS upstreams), scheduled faults and a list of steps
//! with expected outcomes, run in the simulator. What `switchyard lab`
//! runs, and what `tests/labs.rs` checks.
//!
//! ```toml
//! [lab]
//! name = "two containers"
//! duration = "10s"          # optional: stop here at the latest
//!
//! [[host]]
//! name = "h1"
//!
//! [[network]]
//! name = "front"
//! subnet = "10.0.1.0/24"    # host = "h1" is implied with one host
//!
//! [[container]]
//! name = "a"
//! networks = ["front"]
//!
//! [[container]]
//! name = "b"
//! [[container.connect]]
//! network = "front"
//! ip = "10.0.1.10"
//! aliases = ["db"]
//!
//! [[outside]]               # a server on the simulated internet
//! name = "web"
//! address = "203.0.113.10"
//! tcp = [80]                # GET /N answers N bytes
//! udp = [7]                 # echo
//! latency = "10ms"          # its access link, one way
//!
//! [[outside]]               # a client (no ports) for published ports
//! name = "visitor"
//! address = "203.0.113.50"
//!
//! [[publish]]               # -p 80:8080 on b's host
//! container = "b"
//! port = 8080
//! host_port = 80
//!
//! [[link]]                  # impairments: a container, CONTAINER/ethN or a cable
//! link = "a"
//! latency = "2ms"
//! loss = 0.05
//!
//! [[fault]]
//! at = "5s"
//! do = "partition"          # partition heal heal-all crash restart connect disconnect
//! between = ["a", "b"]
//!
//! [[step]]
//! at = "1s"
//! do = "ping"               # ping udp send fetch lookup (from may be an
//!                           # outside node for send/fetch, to = a host)
//! from = "a"
//! to = "b"
//! expect = "ok"             # ok fail some | nxdomain servfail nodata (lookup)
//! ```
//!
//! Mistakes are reported with the file, line and column, and what to write
//! instead: unknown keys (with a suggestion), a container on a missing
//! network, a bad CIDR, a name that matches nothing.

mod model;
mod runner;
mod show;
pub mod units;
mod validate;

pub use runner::{LabReport, RunOptions, StepOutcome};
pub use show::{show, Table, SHOW_WHAT};

use crate::dns::UpstreamZone;
use crate::fault::{Fault, LinkDirection};
use crate::gateways::Publish;
use crate::internet::OutsideSpec;
use crate::link::LinkConfig;
use crate::TcpDirection;
use serde::Serialize;
use std::fmt;
use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;
use switchyard_switch::controller::model::{EndpointSpec, NetworkSpec};
use switchyard_switch::Instant;

/// One mistake in a lab file, with where it is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// The file.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// What is wrong and what to write instead.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.column, self.message
        )
    }
}

/// Why a lab cannot run: every problem found in the file, or a failure
/// while building its world.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LabError {
    /// The problems, in file order.
    pub problems: Vec<Problem>,
}

impl fmt::Display for LabError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for LabError {}

/// A network to create on a host.
#[derive(Clone, Debug)]
pub(crate) struct NetworkDecl {
    pub line: usize,
    pub host: String,
    pub spec: NetworkSpec,
}

/// A container, its host and its connections in order.
#[derive(Clone, Debug)]
pub(crate) struct ContainerDecl {
    pub line: usize,
    pub name: String,
    pub host: String,
    pub connects: Vec<(String, EndpointSpec)>,
}

/// A cable between two hosts.
#[derive(Clone, Debug)]
pub(crate) struct CableDecl {
    pub line: usize,
    pub name: String,
    pub hosts: [String; 2],
    pub network: String,
}

/// Settings for one or more links.
#[derive(Clone, Debug)]
pub(crate) struct LinkDecl {
    pub line: usize,
    pub selector: String,
    pub direction: LinkDirection,
    pub config: LinkConfig,
}

/// A fault at a time.
#[derive(Clone, Debug)]
pub(crate) struct FaultDecl {
    #[allow(dead_code, reason = "kept for reports that point at the fault's line")]
    pub line: usize,
    pub at: Instant,
    pub fault: Fault,
}

/// What a step runs.
#[derive(Clone, Debug)]
pub(crate) enum StepKind {
    Ping {
        from: String,
        to: String,
        count: u32,
        interval: Duration,
        timeout: Duration,
    },
    Udp {
        from: String,
        to: String,
        port: u16,
        count: u32,
        size: usize,
        interval: Duration,
        timeout: Duration,
    },
    Tcp {
        from: String,
        to: String,
        port: u16,
        bytes: u64,
        direction: TcpDirection,
        timeout: Duration,
    },
    Lookup {
        from: String,
        name: String,
        timeout: Duration,
    },
}

/// What a step should observe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Expect {
    /// Everything works.
    Ok,
    /// Nothing gets through (no reply, no completion, no address).
    Fail,
    /// At least one reply.
    Some,
    /// Exactly this many replies.
    Received(u32),
    /// A lookup answered with this response code.
    Rcode(String),
    /// A lookup answered NOERROR without addresses.
    NoData,
    /// A lookup answered exactly these addresses (sorted).
    Addresses(Vec<IpAddr>),
}

/// A step at a time.
#[derive(Clone, Debug)]
pub(crate) struct StepDecl {
    pub line: usize,
    pub at: Instant,
    pub kind: StepKind,
    pub expect: Expect,
    pub note: Option<String>,
}

/// A checked lab, ready to run any number of times.
#[derive(Clone, Debug)]
pub struct Lab {
    pub(crate) file: String,
    pub(crate) name: String,
    pub(crate) description: String,
    pub(crate) seed: u64,
    pub(crate) duration: Option<Duration>,
    pub(crate) hosts: Vec<String>,
    pub(crate) networks: Vec<NetworkDecl>,
    pub(crate) containers: Vec<ContainerDecl>,
    pub(crate) cables: Vec<CableDecl>,
    pub(crate) links: Vec<LinkDecl>,
    pub(crate) upstreams: Vec<UpstreamZone>,
    pub(crate) outside: Vec<OutsideSpec>,
    pub(crate) publish: Vec<(usize, Publish)>,
    pub(crate) faults: Vec<FaultDecl>,
    pub(crate) steps: Vec<StepDecl>,
}

impl Lab {
    /// Reads and checks a lab file.
    pub fn from_file(path: &Path) -> Result<Lab, LabError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| LabError {
            problems: vec![Problem {
                file: file.clone(),
                line: 0,
                column: 0,
                message: format!("cannot read the lab file: {e}; check the path"),
            }],
        })?;
        Lab::parse(&file, &text)
    }

    /// Checks lab text; `file` names it in messages.
    pub fn parse(file: &str, text: &str) -> Result<Lab, LabError> {
        let parsed: model::LabFile = toml::from_str(text).map_err(|e| LabError {
            problems: vec![validate::toml_problem(file, text, &e)],
        })?;
        Lab::validate(file, text, parsed)
    }

    /// The lab's name (its `[lab] name`, else the file's stem).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The lab's description.
    pub fn description(&self) -> &str {
        &self.description
    }

    /// The seed the file asks for (1 if none).
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The file it came from.
    pub fn file(&self) -> &str {
        &self.file
    }
}
