//! Address spaces and the pools in them: the IPAM the controller talks to.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::ops::Bound;

use ipnetwork::IpNetwork;
use serde::{Deserialize, Serialize};

use crate::addr::{self, Family};
use crate::config::IpamConfig;
use crate::error::IpamError;
use crate::pool::{check_subnet, Pool};
use crate::state::IpamState;
use crate::{GLOBAL, LOCAL};

/// Names one pool: its address space and its subnet. Subnets are unique
/// within a space, so this is all a network needs to keep.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PoolId {
    /// "local" or "global".
    pub space: String,
    /// The pool's subnet (host bits clear).
    pub subnet: IpNetwork,
}

impl PoolId {
    /// An id from its parts (no check; a wrong id just finds no pool).
    pub fn new(space: impl Into<String>, subnet: IpNetwork) -> PoolId {
        PoolId {
            space: space.into(),
            subnet,
        }
    }
}

impl fmt::Display for PoolId {
    /// `local/172.18.0.0/16`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.space, self.subnet)
    }
}

/// What a network asks of IPAM when it is created (`network create` flags).
#[derive(Clone, Debug, Default)]
pub struct PoolRequest {
    /// Address space; "" means [`LOCAL`].
    pub space: String,
    /// Name of the network the pool is for (shown in error messages).
    pub owner: String,
    /// Family of the default pool to draw from; ignored if `subnet` is given.
    pub family: Family,
    /// `--subnet`: the exact subnet, else the next free default one.
    pub subnet: Option<IpNetwork>,
    /// `--ip-range`: restricts dynamic allocation (needs `subnet`).
    pub ip_range: Option<IpNetwork>,
    /// `--gateway`: else the first usable address (needs `subnet`).
    pub gateway: Option<IpAddr>,
    /// `--aux-address NAME=IP`: addresses never handed out (needs `subnet`).
    pub aux_addresses: BTreeMap<String, IpAddr>,
}

/// IP address management for every network: address spaces, their pools,
/// and the default pools new subnets come from. Deterministic, and
/// serialisable so the controller can persist it.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(try_from = "IpamState", into = "IpamState")]
pub struct Ipam {
    config: IpamConfig,
    pools: BTreeMap<PoolId, Pool>,
}

/// The canonical name of a requested space, or why it is not one.
fn canonical_space(space: &str) -> Result<String, IpamError> {
    match space {
        "" | LOCAL => Ok(LOCAL.to_string()),
        GLOBAL => Ok(GLOBAL.to_string()),
        other => Err(IpamError::UnknownSpace {
            space: other.to_string(),
        }),
    }
}

impl Ipam {
    /// An IPAM with no pools. The configuration is checked lazily, when a
    /// default pool is first needed; call [`IpamConfig::validate`] to check it
    /// up front.
    pub fn new(config: IpamConfig) -> Ipam {
        Ipam {
            config,
            pools: BTreeMap::new(),
        }
    }

    /// The default pools in use.
    pub fn config(&self) -> &IpamConfig {
        &self.config
    }

    /// Creates a pool for a network: the named subnet if it overlaps no other
    /// pool in the space, else the first free subnet of the default pools.
    pub fn request_pool(&mut self, req: PoolRequest) -> Result<PoolId, IpamError> {
        let space = canonical_space(&req.space)?;
        let pool = match req.subnet {
            Some(subnet) => {
                check_subnet(subnet)?;
                if let Some((id, other)) = self.overlapping(&space, subnet) {
                    return Err(IpamError::SubnetOverlaps {
                        subnet,
                        owner: other.owner().to_string(),
                        existing: id.subnet,
                    });
                }
                Pool::new(
                    space.clone(),
                    req.owner,
                    subnet,
                    req.ip_range,
                    req.gateway,
                    req.aux_addresses,
                )?
            }
            None => {
                let option = if req.gateway.is_some() {
                    Some("--gateway")
                } else if req.ip_range.is_some() {
                    Some("--ip-range")
                } else if !req.aux_addresses.is_empty() {
                    Some("--aux-address")
                } else {
                    None
                };
                if let Some(option) = option {
                    return Err(IpamError::NeedsSubnet { option });
                }
                let subnet = self.next_default_subnet(&space, req.family)?;
                Pool::new(
                    space.clone(),
                    req.owner,
                    subnet,
                    None,
                    None,
                    BTreeMap::new(),
                )?
            }
        };
        let id = PoolId::new(space, pool.subnet());
        self.pools.insert(id.clone(), pool);
        Ok(id)
    }

    /// Drops a pool and every address in it; the subnet becomes free again.
    /// The controller checks for endpoints first, so this does not.
    pub fn release_pool(&mut self, id: &PoolId) -> Result<(), IpamError> {
        self.pools
            .remove(id)
            .map(|_| ())
            .ok_or_else(|| IpamError::NoSuchPool { id: id.clone() })
    }

    /// The pool with this id, if it exists.
    pub fn pool(&self, id: &PoolId) -> Option<&Pool> {
        self.pools.get(id)
    }

    /// Every pool, ordered by space, then family, then address.
    pub fn pools(&self) -> impl Iterator<Item = (&PoolId, &Pool)> {
        self.pools.iter()
    }

    /// Hands out the next free address of a pool (`want == None`), or
    /// exactly `want`, which must be inside the subnet (it may lie outside the
    /// ip range, as in Docker), not reserved and not in use.
    pub fn request_address(
        &mut self,
        id: &PoolId,
        want: Option<IpAddr>,
    ) -> Result<IpAddr, IpamError> {
        self.pool_mut(id)?.request(want)
    }

    /// Returns an address to its pool; releasing one that is not handed out
    /// is an error, so double releases are caught.
    pub fn release_address(&mut self, id: &PoolId, ip: IpAddr) -> Result<(), IpamError> {
        self.pool_mut(id)?.release(ip)
    }

    fn pool_mut(&mut self, id: &PoolId) -> Result<&mut Pool, IpamError> {
        self.pools
            .get_mut(id)
            .ok_or_else(|| IpamError::NoSuchPool { id: id.clone() })
    }

    /// A pool of `space` that shares an address with `net`, if any.
    ///
    /// Pools of one space never overlap, so ordered by first address they
    /// are disjoint intervals: only the last pool starting at or before
    /// `net` and the first one starting after it can overlap it.
    fn overlapping(&self, space: &str, net: IpNetwork) -> Option<(&PoolId, &Pool)> {
        let family = Family::of_net(net);
        let probe = PoolId::new(
            space,
            addr::make_net(family, addr::first(net), family.bits()),
        );
        let before = self.pools.range(..=&probe).next_back();
        let after = self
            .pools
            .range((Bound::Excluded(&probe), Bound::Unbounded))
            .next();
        [before, after]
            .into_iter()
            .flatten()
            .find(|(id, _)| id.space == space && addr::overlaps(id.subnet, net))
    }

    /// The first subnet of the default pools, in order, that overlaps no pool
    /// of `space`.
    fn next_default_subnet(&self, space: &str, family: Family) -> Result<IpNetwork, IpamError> {
        let defaults = self.config.pools_in(space, family);
        if defaults.is_empty() {
            return Err(IpamError::NoDefaultPool { family });
        }
        // A broken configuration fails loudly at first use, not silently.
        self.config.validate()?;
        for dp in &defaults {
            let step = addr::span_last(u32::from(family.bits() - dp.size));
            let end = addr::last(dp.base);
            let mut start = addr::first(dp.base);
            loop {
                let candidate = addr::make_net(family, start, dp.size);
                let Some((taken, _)) = self.overlapping(space, candidate) else {
                    return Ok(candidate);
                };
                // Skip every candidate the overlapping pool touches.
                match (addr::last(taken.subnet) | step).checked_add(1) {
                    Some(next) if next <= end => start = next,
                    _ => break,
                }
            }
        }
        Err(IpamError::DefaultPoolsExhausted { family })
    }
}

impl From<Ipam> for IpamState {
    fn from(ipam: Ipam) -> IpamState {
        IpamState {
            config: ipam.config,
            pools: ipam.pools.into_values().collect(),
        }
    }
}

impl TryFrom<IpamState> for Ipam {
    type Error = IpamError;

    /// Rebuilds the IPAM, refusing unknown spaces and overlapping pools.
    fn try_from(state: IpamState) -> Result<Ipam, IpamError> {
        Ipam::from_parts(state.config, state.pools)
    }
}

impl Ipam {
    /// Rebuilds an IPAM from its configuration and its pools, each stored
    /// on its own (the controller keeps one store key per pool, so writers
    /// allocating on different pools never conflict). Refuses unknown
    /// spaces and overlapping pools, as loading the whole IPAM does.
    pub fn from_parts(
        config: IpamConfig,
        pools: impl IntoIterator<Item = Pool>,
    ) -> Result<Ipam, IpamError> {
        let mut ipam = Ipam::new(config);
        for pool in pools {
            let space = canonical_space(pool.space()).map_err(|e| IpamError::InvalidState {
                reason: e.to_string(),
            })?;
            if space != pool.space() {
                return Err(IpamError::InvalidState {
                    reason: format!("pool {} has an empty address space", pool.subnet()),
                });
            }
            if let Some((id, other)) = ipam.overlapping(&space, pool.subnet()) {
                return Err(IpamError::InvalidState {
                    reason: format!(
                        "pool {space}/{} of network '{}' overlaps pool {id} of network '{}'",
                        pool.subnet(),
                        pool.owner(),
                        other.owner()
                    ),
                });
            }
            ipam.pools.insert(PoolId::new(space, pool.subnet()), pool);
        }
        Ok(ipam)
    }
}
