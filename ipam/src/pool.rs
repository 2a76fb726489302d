//! One network's subnet: its gateway, range, reserved addresses, and which
//! addresses are handed out.

use std::collections::BTreeMap;
use std::mem::size_of;
use std::net::IpAddr;

use ipnetwork::IpNetwork;
use serde::{Deserialize, Serialize};

use crate::addr::{self, Family};
use crate::bitmap::SparseBitmap;
use crate::error::IpamError;
use crate::state::{AddrRange, PoolState};

/// Why an address of a pool can never be handed out.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Reserved {
    /// IPv4 network address.
    Network,
    /// IPv4 broadcast address.
    Broadcast,
    /// IPv6 subnet-router anycast address (all-zero host part).
    Anycast,
    /// The network's gateway.
    Gateway,
    /// A named auxiliary address (`--aux-address NAME=IP`).
    Aux(String),
}

impl Reserved {
    /// How the address is described in an error message.
    fn describe(&self) -> String {
        match self {
            Reserved::Network => "the network address".to_string(),
            Reserved::Broadcast => "the broadcast address".to_string(),
            Reserved::Anycast => "the subnet-router anycast address".to_string(),
            Reserved::Gateway => "the gateway".to_string(),
            Reserved::Aux(name) => format!("already reserved as auxiliary address '{name}'"),
        }
    }
}

/// A subnet owned by one network, with everything needed to hand out its
/// addresses: the gateway, an optional `ip_range` for dynamic allocation,
/// named auxiliary addresses, and the set of addresses in use.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(try_from = "PoolState", into = "PoolState")]
pub struct Pool {
    space: String,
    owner: String,
    subnet: IpNetwork,
    gateway: IpAddr,
    ip_range: Option<IpNetwork>,
    aux_addresses: BTreeMap<String, IpAddr>,
    /// Offsets that are never handed out, and why.
    reserved: BTreeMap<u128, Reserved>,
    /// Offsets in use: handed out, or reserved (so searches skip both).
    used: SparseBitmap,
    /// Offsets bounding dynamic allocation (the ip range, else the subnet).
    lo: u128,
    hi: u128,
    /// Offset where the next dynamic search starts (next-after-last).
    cursor: u128,
}

/// Checks what makes a CIDR usable as a pool at all: no host bits, and room
/// for a gateway and one container.
pub(crate) fn check_subnet(subnet: IpNetwork) -> Result<(), IpamError> {
    if addr::has_host_bits(subnet) {
        return Err(IpamError::HostBitsSet {
            what: "subnet",
            given: subnet,
            network: addr::normalized(subnet),
        });
    }
    let max_prefix = Family::of_net(subnet).max_pool_prefix();
    if subnet.prefix() > max_prefix {
        return Err(IpamError::SubnetTooSmall { subnet, max_prefix });
    }
    Ok(())
}

impl Pool {
    /// A pool with nothing allocated; checks the subnet, range, gateway and
    /// aux addresses against each other.
    pub(crate) fn new(
        space: String,
        owner: String,
        subnet: IpNetwork,
        ip_range: Option<IpNetwork>,
        gateway: Option<IpAddr>,
        aux_addresses: BTreeMap<String, IpAddr>,
    ) -> Result<Pool, IpamError> {
        check_subnet(subnet)?;
        let family = Family::of_net(subnet);
        let base = addr::first(subnet);
        let last = addr::span_last(addr::host_bits(subnet));

        if let Some(range) = ip_range {
            if addr::has_host_bits(range) {
                return Err(IpamError::HostBitsSet {
                    what: "ip range",
                    given: range,
                    network: addr::normalized(range),
                });
            }
            if !addr::covers(subnet, range) {
                return Err(IpamError::RangeOutsideSubnet {
                    range,
                    subnet,
                    owner,
                });
            }
        }

        let mut reserved = BTreeMap::new();
        match family {
            Family::V4 => {
                reserved.insert(0, Reserved::Network);
                reserved.insert(last, Reserved::Broadcast);
            }
            Family::V6 => {
                reserved.insert(0, Reserved::Anycast);
            }
        }

        let gateway = match gateway {
            None => addr::from_u128(family, base + 1),
            Some(gw) => {
                if !addr::net_contains(subnet, gw) {
                    return Err(IpamError::GatewayOutsideSubnet {
                        gateway: gw,
                        subnet,
                        owner,
                    });
                }
                if let Some(r) = reserved.get(&(addr::to_u128(gw) - base)) {
                    let what = match r {
                        Reserved::Broadcast => "broadcast address",
                        Reserved::Anycast => "subnet-router anycast address",
                        _ => "network address",
                    };
                    return Err(IpamError::GatewayReserved {
                        gateway: gw,
                        what,
                        subnet,
                    });
                }
                gw
            }
        };
        reserved.insert(addr::to_u128(gateway) - base, Reserved::Gateway);

        for (name, &ip) in &aux_addresses {
            if !addr::net_contains(subnet, ip) {
                return Err(IpamError::AuxOutsideSubnet {
                    name: name.clone(),
                    ip,
                    subnet,
                    owner,
                });
            }
            let off = addr::to_u128(ip) - base;
            if let Some(r) = reserved.get(&off) {
                return Err(IpamError::AuxReserved {
                    name: name.clone(),
                    ip,
                    taken_by: r.describe(),
                    owner,
                });
            }
            reserved.insert(off, Reserved::Aux(name.clone()));
        }

        let mut used = SparseBitmap::new(last);
        for &off in reserved.keys() {
            used.insert(off);
        }
        let (lo, hi) = match ip_range {
            Some(range) => (addr::first(range) - base, addr::last(range) - base),
            None => (0, last),
        };
        Ok(Pool {
            space,
            owner,
            subnet,
            gateway,
            ip_range,
            aux_addresses,
            reserved,
            used,
            lo,
            hi,
            cursor: lo,
        })
    }

    /// Address space the pool lives in ("local" or "global").
    pub fn space(&self) -> &str {
        &self.space
    }

    /// Name of the network that owns the pool (used in error messages).
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// The pool's subnet.
    pub fn subnet(&self) -> IpNetwork {
        self.subnet
    }

    /// The pool's family.
    pub fn family(&self) -> Family {
        Family::of_net(self.subnet)
    }

    /// The gateway address (never handed out to a container).
    pub fn gateway(&self) -> IpAddr {
        self.gateway
    }

    /// The sub-range dynamic allocation is restricted to, if any.
    pub fn ip_range(&self) -> Option<IpNetwork> {
        self.ip_range
    }

    /// Named reserved addresses (`--aux-address NAME=IP`).
    pub fn aux_addresses(&self) -> &BTreeMap<String, IpAddr> {
        &self.aux_addresses
    }

    /// Where dynamic allocation draws from: the ip range, else the subnet.
    pub fn dynamic_range(&self) -> IpNetwork {
        self.ip_range.unwrap_or(self.subnet)
    }

    /// Where the next dynamic allocation starts looking (the address after
    /// the last one handed out dynamically, wrapping to the range start).
    pub fn next_address(&self) -> IpAddr {
        self.addr(self.cursor)
    }

    /// Whether `ip` is handed out by a request (reserved addresses are not).
    pub fn is_allocated(&self, ip: IpAddr) -> bool {
        self.offset(ip)
            .is_some_and(|off| !self.reserved.contains_key(&off) && self.used.contains(off))
    }

    /// Whether `ip` can never be handed out: network, broadcast or anycast
    /// address, the gateway, or an aux address.
    pub fn is_reserved(&self, ip: IpAddr) -> bool {
        self.offset(ip)
            .is_some_and(|off| self.reserved.contains_key(&off))
    }

    /// How many addresses are handed out.
    pub fn allocated_count(&self) -> u128 {
        // The bitmap's count is modulo 2^128 (see SparseBitmap); the true
        // number handed out is below 2^128, so the wrapping difference is exact.
        self.used.count().wrapping_sub(self.reserved.len() as u128)
    }

    /// The handed-out addresses, ascending; lazy, so a huge pool can be walked.
    pub fn allocated(&self) -> impl Iterator<Item = IpAddr> + '_ {
        self.allocated_runs()
            .flat_map(|(start, end)| start..=end)
            .map(|off| self.addr(off))
    }

    /// Heap bytes this pool holds: exact for the address bitmap, estimated
    /// (entries times entry size) for the small maps of names.
    pub fn heap_bytes(&self) -> usize {
        let aux: usize = self
            .aux_addresses
            .keys()
            .map(|name| name.capacity() + size_of::<(String, IpAddr)>())
            .sum();
        let reserved: usize = self
            .reserved
            .values()
            .map(|r| {
                size_of::<(u128, Reserved)>()
                    + match r {
                        Reserved::Aux(name) => name.capacity(),
                        _ => 0,
                    }
            })
            .sum();
        self.used.heap_bytes() + self.space.capacity() + self.owner.capacity() + aux + reserved
    }

    /// Hands out the next free address (`None`) or exactly `want`.
    pub(crate) fn request(&mut self, want: Option<IpAddr>) -> Result<IpAddr, IpamError> {
        match want {
            None => {
                let found = self
                    .used
                    .first_clear(self.cursor, self.hi)
                    .or_else(|| {
                        (self.cursor > self.lo)
                            .then(|| self.used.first_clear(self.lo, self.cursor - 1))
                            .flatten()
                    })
                    .ok_or_else(|| IpamError::NoFreeAddress {
                        owner: self.owner.clone(),
                        subnet: self.subnet,
                        range: self.dynamic_range(),
                    })?;
                self.used.insert(found);
                self.cursor = if found == self.hi { self.lo } else { found + 1 };
                Ok(self.addr(found))
            }
            Some(ip) => {
                let off = self
                    .offset(ip)
                    .ok_or_else(|| IpamError::AddressOutsideSubnet {
                        ip,
                        subnet: self.subnet,
                        owner: self.owner.clone(),
                    })?;
                if let Some(r) = self.reserved.get(&off) {
                    return Err(self.reserved_error(ip, r));
                }
                if !self.used.insert(off) {
                    return Err(IpamError::AddressInUse {
                        ip,
                        owner: self.owner.clone(),
                    });
                }
                Ok(ip)
            }
        }
    }

    /// Returns a handed-out address; anything else is an error.
    pub(crate) fn release(&mut self, ip: IpAddr) -> Result<(), IpamError> {
        let released = self
            .offset(ip)
            .filter(|off| !self.reserved.contains_key(off))
            .is_some_and(|off| self.used.remove(off));
        if released {
            Ok(())
        } else {
            Err(IpamError::NotAllocated {
                ip,
                owner: self.owner.clone(),
            })
        }
    }

    /// The error for a static request of a reserved address.
    fn reserved_error(&self, ip: IpAddr, r: &Reserved) -> IpamError {
        let owner = self.owner.clone();
        let what = match r {
            Reserved::Gateway => return IpamError::AddressIsGateway { ip, owner },
            Reserved::Aux(name) => {
                return IpamError::AddressIsAux {
                    ip,
                    name: name.clone(),
                    owner,
                }
            }
            Reserved::Network => "network address",
            Reserved::Broadcast => "broadcast address",
            Reserved::Anycast => "subnet-router anycast address",
        };
        IpamError::AddressReserved {
            ip,
            what,
            owner,
            subnet: self.subnet,
        }
    }

    /// The offset of `ip` in the subnet, if it lies inside.
    fn offset(&self, ip: IpAddr) -> Option<u128> {
        addr::net_contains(self.subnet, ip).then(|| addr::to_u128(ip) - addr::first(self.subnet))
    }

    /// The address at `off`.
    fn addr(&self, off: u128) -> IpAddr {
        addr::from_u128(self.family(), addr::first(self.subnet) + off)
    }

    /// Runs of handed-out offsets, ascending: the bitmap's runs with the
    /// reserved offsets cut out.
    fn allocated_runs(&self) -> impl Iterator<Item = (u128, u128)> + '_ {
        self.used.runs().flat_map(move |(start, end)| {
            let mut pieces = Vec::new();
            // `None` once a reserved offset sat at u128::MAX: nothing follows.
            let mut from = Some(start);
            for &r in self.reserved.range(start..=end).map(|(off, _)| off) {
                if let Some(f) = from.filter(|&f| r > f) {
                    pieces.push((f, r - 1));
                }
                from = r.checked_add(1);
            }
            if let Some(f) = from.filter(|&f| f <= end) {
                pieces.push((f, end));
            }
            pieces
        })
    }

    /// The persisted shape: allocations as sorted ranges.
    pub(crate) fn to_state(&self) -> PoolState {
        PoolState {
            space: self.space.clone(),
            owner: self.owner.clone(),
            subnet: self.subnet,
            gateway: self.gateway,
            ip_range: self.ip_range,
            aux_addresses: self.aux_addresses.clone(),
            allocated: self
                .allocated_runs()
                .map(|(s, e)| AddrRange {
                    first: self.addr(s),
                    last: self.addr(e),
                })
                .collect(),
            next_address: self.next_address(),
        }
    }

    /// Rebuilds a pool from its persisted shape, checking every rule again.
    pub(crate) fn from_state(state: PoolState) -> Result<Pool, IpamError> {
        let label = format!("pool {}/{}", state.space, state.subnet);
        let invalid = |reason: String| IpamError::InvalidState {
            reason: format!("{label}: {reason}"),
        };
        let mut pool = Pool::new(
            state.space,
            state.owner,
            state.subnet,
            state.ip_range,
            Some(state.gateway),
            state.aux_addresses,
        )
        .map_err(|e| invalid(e.to_string()))?;
        // Lowest offset the next range may start at; `None` once a range
        // ended at the very last offset of the whole IPv6 space.
        let mut floor = Some(0u128);
        for range in &state.allocated {
            let (Some(s), Some(e)) = (pool.offset(range.first), pool.offset(range.last)) else {
                return Err(invalid(format!(
                    "allocated range {range} is outside the subnet"
                )));
            };
            if s > e || floor.is_none_or(|f| s < f) {
                return Err(invalid(format!(
                    "allocated range {range} is out of order or overlaps the one before"
                )));
            }
            if let Some((&r, why)) = pool.reserved.range(s..=e).next() {
                return Err(invalid(format!(
                    "allocated address {} is {}",
                    pool.addr(r),
                    why.describe()
                )));
            }
            pool.used.fill(s, e);
            floor = e.checked_add(1);
        }
        let cursor = pool
            .offset(state.next_address)
            .filter(|off| (pool.lo..=pool.hi).contains(off))
            .ok_or_else(|| {
                invalid(format!(
                    "next address {} is outside the dynamic range {}",
                    state.next_address,
                    pool.dynamic_range()
                ))
            })?;
        pool.cursor = cursor;
        Ok(pool)
    }
}

impl From<Pool> for PoolState {
    fn from(pool: Pool) -> PoolState {
        pool.to_state()
    }
}

impl TryFrom<PoolState> for Pool {
    type Error = IpamError;

    fn try_from(state: PoolState) -> Result<Pool, IpamError> {
        Pool::from_state(state)
    }
}
