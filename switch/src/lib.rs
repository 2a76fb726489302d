//! Switchyard's switch: the CNM control plane (controller, drivers, store)
//! and the sans-I/O learning switch that forwards Ethernet frames between
//! ports.
//!
//! Nothing in this crate reads a clock, a socket or a random source; time
//! and randomness are passed in, and nothing here depends on Linux. Real
//! I/O (TAP devices, namespaces, netlink, the data-plane thread) lives in
//! the `switchyard-linux` crate; `docs/ARCHITECTURE.md` maps the crates.

pub mod bridge;
pub mod fdb;
pub mod gso;
pub mod mac;
pub mod neighbor;
pub mod port;
pub mod time;
pub mod vxlan;
pub mod wire;

pub use bridge::{
    Action, Bridge, BridgeConfig, BridgeStats, Decision, Egress, FloodReason, FrameMeta,
    LearnOutcome, StaticEntryError,
};
pub use fdb::FdbEntry;
pub use mac::MacAddr;
pub use neighbor::{Answer, NeighborCounters, NeighborError, NeighborTable};
pub use port::{
    DropReason, HorizonGroup, PortBinding, PortConfig, PortCounters, PortId, SegmentId,
};
pub use time::{Clock, Instant};

pub mod controller;
pub mod driver;
pub mod store;

pub use controller::{Change, Controller, ControllerError, ControllerOptions};
pub use driver::{
    BackendPlan, Driver, DriverRegistry, GatewayPlan, PeerHost, PeerVia, PortOwner, PortPlan,
};
pub use store::{FileStore, MemoryStore, Recovery, Store, StoreError};
