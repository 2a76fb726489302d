//! Switchyard's deterministic simulator: the real switch core, controller
//! and resolver, run inside a simulated world of hosts, containers and
//! links, so a test or a student can build a topology, break it, and get
//! the same bytes on every run — no root, no namespaces, as fast as the CPU
//! allows.
//!
//! * **Time** is virtual (nanoseconds) and jumps straight to the next event;
//!   events are ordered by (time, sequence number).
//! * **Randomness** comes from one ChaCha generator seeded by the builder;
//!   controllers, smoltcp stacks, the FDB hash and link impairments get
//!   sub-seeds from it. No wall clock, OS entropy or hash-map order can
//!   change a run.
//! * **Hosts** each run a [`Controller`](switchyard_switch::Controller) over
//!   a memory store (so a crash and restart is a daemon restart), a
//!   [`Bridge`](switchyard_switch::Bridge) and a
//!   [`Resolver`](switchyard_dns::Resolver), applying the controller's
//!   changes like the real daemon.
//! * **Containers** have one smoltcp interface per network, configured from
//!   the controller's interface plan, and run ping, UDP echo, TCP transfers
//!   and DNS lookups.
//! * **Links** have latency, jitter, loss (independent or bursty),
//!   duplication, reordering, corruption, a rate limit with a queue and an
//!   MTU; **faults** (partitions, heals, crashes, restarts, connects) apply
//!   now or at a time.
//! * **Gateways**: every bridge network that is not `--internal` gets the
//!   real `switchyard-gateway` on its host's switch, relaying containers'
//!   TCP, UDP and ping to the host's **outside**: an uplink on a simulated
//!   **internet** (hosts at 198.51.100.N) where [`OutsideSpec`] servers
//!   answer `GET /N`, UDP echo and ping, and outside clients reach ports
//!   the containers [publish](Sim::publish), seen with their own address.
//! * Every delivered frame feeds a [`Digest`]; any port or link can be
//!   captured to pcap with virtual timestamps; [`check_determinism`] runs a
//!   scenario twice and names the first differing frame.
//!
//! # A scenario in ten lines
//!
//! ```
//! use std::time::Duration;
//! use switchyard_sim::{EndpointSpec, NetworkSpec, Sim};
//!
//! let mut sim = Sim::builder().seed(7).build();
//! sim.add_host("h1").unwrap();
//! sim.create_network("h1", NetworkSpec { name: "front".into(), ..Default::default() }).unwrap();
//! sim.add_container("h1", "a", &[("front", EndpointSpec::default())]).unwrap();
//! sim.add_container("h1", "b", &[("front", EndpointSpec::default())]).unwrap();
//! let ping = sim.ping("a", "b", 3).unwrap();
//! sim.run_until(|s| s.is_done(ping), Duration::from_secs(10));
//! assert_eq!(sim.ping_result(ping).unwrap().received, 3);
//! // The switch learned both stations, each on its own port.
//! let fdb = sim.fdb("h1").unwrap();
//! assert_eq!(fdb.len(), 2);
//! for entry in &fdb {
//!     let station = entry.station.as_deref().unwrap();
//!     assert!(entry.port_label.starts_with(station), "{station} on {}", entry.port_label);
//! }
//! ```
//!
//! Faults are one call, now or later:
//!
//! ```
//! # use std::time::Duration;
//! # use switchyard_sim::{EndpointSpec, NetworkSpec, Sim, Fault, Instant};
//! # let mut sim = Sim::builder().seed(7).build();
//! # sim.add_host("h1").unwrap();
//! # sim.create_network("h1", NetworkSpec { name: "front".into(), ..Default::default() }).unwrap();
//! # sim.add_container("h1", "a", &[("front", EndpointSpec::default())]).unwrap();
//! # sim.add_container("h1", "b", &[("front", EndpointSpec::default())]).unwrap();
//! sim.at(Instant::from_secs(2), Fault::Partition { a: "a".into(), b: "b".into(), oneway: false });
//! let ping = sim.ping("a", "b", 5).unwrap();
//! sim.run_until(|s| s.is_done(ping), Duration::from_secs(20));
//! assert_eq!(sim.ping_result(ping).unwrap().received, 2, "replies stop at the partition");
//! ```

#![warn(missing_docs)]

mod api;
mod apps;
mod builder;
mod container;
mod determinism;
mod digest;
mod dns;
mod error;
mod fault;
mod frame;
mod gateways;
mod host;
mod inspect;
mod internet;
pub mod lab;
mod launch;
mod link;
mod outside;
pub mod pcap;
mod queue;
mod world;

pub use apps::{AppHandle, AppResult, DnsResult, PingResult, TcpDirection, TcpResult, UdpResult};
pub use builder::SimBuilder;
pub use determinism::{check_determinism, check_determinism_with, compare_runs, digests_twice};
pub use digest::{hash_bytes, Delivery, Digest, Divergence};
pub use dns::{UpstreamZone, RESOLVER_ADDR};
pub use error::SimError;
pub use fault::{Fault, LinkDirection};
pub use frame::describe as describe_frame;
pub use gateways::{GatewayRow, Publish};
pub use inspect::{ArpRow, FdbRow, InterfaceRow, IpamRow, PortRow};
pub use internet::{OutsideSpec, ServedRequest, HOST_OUTSIDE_NET};
pub use launch::{AppSpec, DnsLookup, Ping, Target, TcpTransfer, UdpEcho};
pub use link::{LinkConfig, LinkStats, Loss};
pub use switchyard_gateway::GatewayCounters;
pub use world::{AppliedFault, Explained, Sim};

pub use switchyard_switch::controller::model::{EndpointSpec, NetworkSpec};
pub use switchyard_switch::{
    BridgeConfig, BridgeStats, DropReason, Instant, MacAddr, PortCounters, PortId,
};
