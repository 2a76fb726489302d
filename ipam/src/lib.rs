//! Switchyard's IP address management: address spaces, pools, subnets and
//! addresses, following Docker's default IPAM driver.
//!
//! ```
//! use switchyard_ipam::{Ipam, IpamConfig, PoolRequest};
//!
//! let mut ipam = Ipam::new(IpamConfig::docker_defaults("fd00:1:2::/48".parse().unwrap()));
//! let bridge = ipam.request_pool(PoolRequest { owner: "bridge".into(), ..Default::default() })?;
//! assert_eq!(bridge.to_string(), "local/172.17.0.0/16");
//! assert_eq!(ipam.pool(&bridge).unwrap().gateway().to_string(), "172.17.0.1");
//! assert_eq!(ipam.request_address(&bridge, None)?.to_string(), "172.17.0.2");
//! # Ok::<(), switchyard_ipam::IpamError>(())
//! ```
//!
//! # Model
//! - Two address spaces, [`LOCAL`] (the default) and [`GLOBAL`] (for
//!   multi-host networks). Pools in different spaces never conflict; within a
//!   space no two pools overlap. Both spaces draw from the same default pools.
//! - A pool is a subnet owned by one network. A request names the subnet or
//!   takes the next free one from the default pools ([`IpamConfig`], Docker's
//!   `default-address-pools`).
//! - A pool's gateway, its network and (IPv4) broadcast address, its IPv6
//!   subnet-router anycast address and its aux addresses are never handed
//!   out. Pools must be /30 or larger for IPv4 and /126 or larger for IPv6:
//!   the smallest that hold a gateway and one container.
//!
//! # Allocation order: next after last
//! Dynamic allocation starts at a per-pool cursor just past the address it
//! handed out last, and wraps to the start of the range when it reaches the
//! end, like Podman/CNI `host-local` and Docker's serial allocation. Handing
//! out the lowest free address instead would give a just-released address to
//! the very next container while peers may still hold ARP entries and DNS
//! answers for the old one, and traffic for the old container would reach
//! the new one. Cycling through the range lets those caches expire first.
//! Static requests (`--ip`) do not move the cursor.
//!
//! # Memory and speed
//! Each pool tracks its addresses in a sparse two-level-and-up bitmap
//! (`bitmap.rs`): leaves of 4096 addresses, 64-way inner nodes, and every
//! node either `Empty`, `Full` or partial. A fully allocated IPv4 /8 is a
//! single `Full` node; an IPv6 /64 costs one path of nodes per region in
//! use; a level-1 node whose leaves are mostly partial turns into one flat
//! block, so the worst case (a checkerboard /8) costs the raw 2 MiB of bits
//! plus 2 KiB.
//! Request and release walk one path of at most 3 levels for IPv4 (21 for
//! the whole IPv6 space), so they are O(1) for a family.
//!
//! # Determinism and persistence
//! No clocks, no randomness, no hash maps: the same requests give the same
//! answers on every run. [`Ipam`] and [`Pool`] serialise with serde, storing
//! allocations as sorted address ranges and the cursor as `next_address`;
//! loading checks every rule again.

#![warn(missing_docs)]

mod addr;
mod bitmap;
mod config;
mod error;
mod pool;
mod space;
mod state;

pub use addr::Family;
pub use config::{DefaultPool, IpamConfig};
pub use error::IpamError;
pub use ipnetwork::{IpNetwork, Ipv4Network, Ipv6Network};
pub use pool::Pool;
pub use space::{Ipam, PoolId, PoolRequest};

/// The address space of single-host networks, and the default.
pub const LOCAL: &str = "local";
/// The address space of multi-host networks (shared through the store).
pub const GLOBAL: &str = "global";
