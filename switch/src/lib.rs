//! Switchyard's switch: the CNM control plane (controller, drivers, store)
//! and the sans-I/O learning switch that forwards Ethernet frames between
//! ports.
//!
//! Nothing in this crate reads a clock or a random source; time and
//! randomness are passed in (see `DESIGN.md`). Real Linux I/O (TAP devices,
//! namespaces, netlink) lives in [`real`], behind the `real` feature.

pub mod bridge;
pub mod fdb;
pub mod mac;
pub mod port;
pub mod time;
pub mod wire;

pub use bridge::{
    Action, Bridge, BridgeConfig, BridgeStats, Decision, Egress, FloodReason, LearnOutcome,
};
pub use fdb::FdbEntry;
pub use mac::MacAddr;
pub use port::{DropReason, PortBinding, PortConfig, PortCounters, PortId, SegmentId};
pub use time::{Clock, Instant};

pub mod controller;
pub mod driver;
#[cfg(feature = "real")]
pub mod real;
pub mod store;

pub use controller::{Change, Controller, ControllerError, ControllerOptions};
pub use driver::{Driver, DriverRegistry, PortPlan};
pub use store::{FileStore, MemoryStore, Recovery, Store, StoreError};
