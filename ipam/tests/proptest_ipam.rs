//! Random sequences of pool and address operations on small subnets, checked
//! against a plain model (sets and a cursor) after every step: no address is
//! handed out twice, none outside its pool or (dynamically) outside its ip
//! range, none reserved; released addresses come back; allocation follows
//! next-after-last; and a serde round trip at the end changes nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use proptest::prelude::*;
use switchyard_ipam::{
    DefaultPool, Family, IpNetwork, Ipam, IpamConfig, IpamError, PoolId, PoolRequest, GLOBAL, LOCAL,
};

/// Named subnets a request may ask for; small and overlapping on purpose,
/// with two that must be refused (host bits, too small).
const SUBNETS: &[&str] = &[
    "10.0.0.0/29",
    "10.0.0.8/29",
    "10.0.0.0/28",
    "10.0.0.16/30",
    "10.0.0.0/27",
    "10.0.0.3/29",
    "10.0.0.0/31",
    "fd00::/125",
    "fd00::8/126",
    "fd00::/124",
    "fd00::/127",
];

/// Small pools that exhaust quickly; the global space is given the same
/// ones, so the model's one list of defaults serves both spaces.
fn config() -> IpamConfig {
    let v4: Vec<DefaultPool> = vec![
        "base=10.0.0.0/27,size=29".parse().unwrap(),
        "base=10.0.0.32/28,size=30".parse().unwrap(),
    ];
    let v6: Vec<DefaultPool> = vec!["base=fd00::/124,size=126".parse().unwrap()];
    IpamConfig {
        v4_pools: v4.clone(),
        v6_pools: v6.clone(),
        global_v4_pools: v4,
        global_v6_pools: v6,
    }
}

fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u32::from(a).into(),
        IpAddr::V6(a) => a.into(),
    }
}

fn from_u128(family: Family, v: u128) -> IpAddr {
    match family {
        Family::V4 => IpAddr::V4(Ipv4Addr::from(v as u32)),
        Family::V6 => IpAddr::V6(Ipv6Addr::from(v)),
    }
}

fn family(net: IpNetwork) -> Family {
    if net.is_ipv4() {
        Family::V4
    } else {
        Family::V6
    }
}

fn bounds(net: IpNetwork) -> (u128, u128) {
    let host = u32::from(family(net).bits() - net.prefix());
    let mask = (1u128 << host) - 1;
    let first = to_u128(net.ip()) & !mask;
    (first, first | mask)
}

#[derive(Clone, Debug)]
enum Op {
    NamedPool {
        global: bool,
        subnet: usize,
        range: Option<(u8, u8)>,
        gateway: Option<u8>,
        aux: Vec<u8>,
    },
    DefaultPool {
        global: bool,
        v6: bool,
    },
    ReleasePool {
        pick: usize,
    },
    Dynamic {
        pick: usize,
    },
    Static {
        pick: usize,
        off: u8,
    },
    Release {
        pick: usize,
        off: u8,
    },
    ReleaseHeld {
        pick: usize,
        nth: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => (any::<bool>(), 0..SUBNETS.len(), proptest::option::of((0u8..3, any::<u8>())),
              proptest::option::weighted(0.3, any::<u8>()), proptest::collection::vec(any::<u8>(), 0..3))
            .prop_map(|(global, subnet, range, gateway, aux)| Op::NamedPool { global, subnet, range, gateway, aux }),
        2 => (any::<bool>(), any::<bool>()).prop_map(|(global, v6)| Op::DefaultPool { global, v6 }),
        1 => any::<usize>().prop_map(|pick| Op::ReleasePool { pick }),
        8 => any::<usize>().prop_map(|pick| Op::Dynamic { pick }),
        4 => (any::<usize>(), any::<u8>()).prop_map(|(pick, off)| Op::Static { pick, off }),
        2 => (any::<usize>(), any::<u8>()).prop_map(|(pick, off)| Op::Release { pick, off }),
        4 => (any::<usize>(), any::<usize>()).prop_map(|(pick, nth)| Op::ReleaseHeld { pick, nth }),
    ]
}

/// What the model knows about one pool.
#[derive(Clone, Debug)]
struct Model {
    family: Family,
    first: u128,
    last: u128,
    lo: u128,
    hi: u128,
    reserved: BTreeSet<u128>,
    allocated: BTreeSet<u128>,
    cursor: u128,
}

impl Model {
    fn free(&self, x: u128) -> bool {
        !self.reserved.contains(&x) && !self.allocated.contains(&x)
    }

    /// Next-after-last, wrapping inside the dynamic range.
    fn next_dynamic(&self) -> Option<u128> {
        (self.cursor..=self.hi)
            .chain(self.lo..self.cursor)
            .find(|&x| self.free(x))
    }
}

/// The name of an error's variant, to compare with what the model expects.
fn kind(e: &IpamError) -> &'static str {
    match e {
        IpamError::HostBitsSet { .. } => "host-bits",
        IpamError::SubnetTooSmall { .. } => "too-small",
        IpamError::SubnetOverlaps { .. } => "overlap",
        IpamError::GatewayOutsideSubnet { .. } => "gateway-outside",
        IpamError::GatewayReserved { .. } => "gateway-reserved",
        IpamError::AuxOutsideSubnet { .. } => "aux-outside",
        IpamError::AuxReserved { .. } => "aux-reserved",
        IpamError::DefaultPoolsExhausted { .. } => "exhausted",
        IpamError::AddressOutsideSubnet { .. } => "outside",
        IpamError::AddressIsGateway { .. }
        | IpamError::AddressIsAux { .. }
        | IpamError::AddressReserved { .. } => "reserved",
        IpamError::AddressInUse { .. } => "in-use",
        IpamError::NoFreeAddress { .. } => "no-free",
        IpamError::NotAllocated { .. } => "not-allocated",
        other => panic!("unexpected error {other}"),
    }
}

struct World {
    ipam: Ipam,
    models: BTreeMap<PoolId, Model>,
}

impl World {
    fn pick(&self, pick: usize) -> Option<PoolId> {
        (!self.models.is_empty()).then(|| {
            self.models
                .keys()
                .nth(pick % self.models.len())
                .unwrap()
                .clone()
        })
    }

    fn overlaps(&self, space: &str, net: IpNetwork) -> bool {
        let (a, b) = bounds(net);
        self.models.iter().any(|(id, m)| {
            id.space == space && m.family == family(net) && m.first <= b && a <= m.last
        })
    }

    /// What the model expects of a named pool request: its reserved offsets
    /// and dynamic bounds, or the kind of error.
    fn expect_named(
        &self,
        space: &str,
        net: IpNetwork,
        range: Option<IpNetwork>,
        gateway: Option<IpAddr>,
        aux: &BTreeMap<String, IpAddr>,
    ) -> Result<Model, &'static str> {
        let (first, last) = bounds(net);
        let fam = family(net);
        if to_u128(net.ip()) != first {
            return Err("host-bits");
        }
        if net.prefix() > if fam == Family::V4 { 30 } else { 126 } {
            return Err("too-small");
        }
        if self.overlaps(space, net) {
            return Err("overlap");
        }
        let mut reserved = BTreeSet::from([first]);
        if fam == Family::V4 {
            reserved.insert(last);
        }
        let inside = |ip: IpAddr| {
            (first..=last).contains(&to_u128(ip)) && family(net) == Family::of_addr(ip)
        };
        let gw = match gateway {
            None => first + 1,
            Some(g) if !inside(g) => return Err("gateway-outside"),
            Some(g) if reserved.contains(&to_u128(g)) => return Err("gateway-reserved"),
            Some(g) => to_u128(g),
        };
        reserved.insert(gw);
        for ip in aux.values() {
            if !inside(*ip) {
                return Err("aux-outside");
            }
            if !reserved.insert(to_u128(*ip)) {
                return Err("aux-reserved");
            }
        }
        let (lo, hi) = range.map(bounds).unwrap_or((first, last));
        Ok(Model {
            family: fam,
            first,
            last,
            lo,
            hi,
            reserved,
            allocated: BTreeSet::new(),
            cursor: lo,
        })
    }

    /// The subnet the default pools should give next, if any.
    fn expect_default(&self, space: &str, fam: Family) -> Option<IpNetwork> {
        config().pools(fam).iter().find_map(|dp| {
            let (first, last) = bounds(dp.base);
            let step = 1u128 << (fam.bits() - dp.size);
            (0..=(last - first) / step)
                .map(|i| IpNetwork::new(from_u128(fam, first + i * step), dp.size).unwrap())
                .find(|&cand| !self.overlaps(space, cand))
        })
    }

    fn apply(&mut self, op: &Op) {
        match op {
            Op::NamedPool {
                global,
                subnet,
                range,
                gateway,
                aux,
            } => {
                let space = if *global { GLOBAL } else { LOCAL };
                let net: IpNetwork = SUBNETS[*subnet].parse().unwrap();
                let (first, last) = bounds(net);
                let fam = family(net);
                let size = last - first + 1;
                let at = |off: u8| from_u128(fam, first + u128::from(off) % (size + 2));
                let range = range.and_then(|(delta, idx)| {
                    let prefix = net.prefix() + delta;
                    (prefix <= fam.bits()).then(|| {
                        let span = size >> delta;
                        IpNetwork::new(
                            from_u128(fam, first + u128::from(idx) % (1 << delta) * span),
                            prefix,
                        )
                        .unwrap()
                    })
                });
                let gateway = gateway.map(at);
                let aux: BTreeMap<String, IpAddr> = aux
                    .iter()
                    .enumerate()
                    .map(|(i, off)| (format!("aux{i}"), at(*off)))
                    .collect();
                let want = self.expect_named(space, net, range, gateway, &aux);
                let got = self.ipam.request_pool(PoolRequest {
                    space: if *global {
                        GLOBAL.into()
                    } else {
                        String::new()
                    },
                    owner: format!("net{}", self.models.len()),
                    family: Family::V4,
                    subnet: Some(net),
                    ip_range: range,
                    gateway,
                    aux_addresses: aux,
                });
                match (want, got) {
                    (Ok(model), Ok(id)) => {
                        assert_eq!(id, PoolId::new(space, net));
                        self.models.insert(id, model);
                    }
                    (Err(k), Err(e)) => assert_eq!(kind(&e), k, "{e}"),
                    (want, got) => panic!("named pool {net}: model {want:?}, ipam {got:?}"),
                }
            }
            Op::DefaultPool { global, v6 } => {
                let space = if *global { GLOBAL } else { LOCAL };
                let fam = if *v6 { Family::V6 } else { Family::V4 };
                let want = self.expect_default(space, fam);
                let got = self.ipam.request_pool(PoolRequest {
                    space: space.into(),
                    owner: format!("net{}", self.models.len()),
                    family: fam,
                    ..PoolRequest::default()
                });
                match (want, got) {
                    (Some(net), Ok(id)) => {
                        assert_eq!(id, PoolId::new(space, net));
                        let model = self
                            .expect_named(space, net, None, None, &BTreeMap::new())
                            .unwrap();
                        self.models.insert(id, model);
                    }
                    (None, Err(e)) => assert_eq!(kind(&e), "exhausted", "{e}"),
                    (want, got) => panic!("default pool: model {want:?}, ipam {got:?}"),
                }
            }
            Op::ReleasePool { pick } => {
                if let Some(id) = self.pick(*pick) {
                    self.ipam.release_pool(&id).unwrap();
                    self.models.remove(&id);
                    assert!(self.ipam.pool(&id).is_none());
                }
            }
            Op::Dynamic { pick } => {
                let Some(id) = self.pick(*pick) else { return };
                let model = self.models.get_mut(&id).unwrap();
                let got = self.ipam.request_address(&id, None);
                match (model.next_dynamic(), got) {
                    (Some(x), Ok(ip)) => {
                        assert_eq!(ip, from_u128(model.family, x), "next-after-last");
                        assert!(
                            (model.lo..=model.hi).contains(&x),
                            "dynamic address inside ip range"
                        );
                        assert!(!model.reserved.contains(&x), "never a reserved address");
                        assert!(model.allocated.insert(x), "never handed out twice");
                        model.cursor = if x == model.hi { model.lo } else { x + 1 };
                    }
                    (None, Err(e)) => assert_eq!(kind(&e), "no-free", "{e}"),
                    (want, got) => panic!("dynamic in {id}: model {want:?}, ipam {got:?}"),
                }
            }
            Op::Static { pick, off } => {
                let Some(id) = self.pick(*pick) else { return };
                let model = self.models.get_mut(&id).unwrap();
                let x = model.first + u128::from(*off) % (model.last - model.first + 3);
                let ip = from_u128(model.family, x);
                let want = if x > model.last {
                    Err("outside")
                } else if model.reserved.contains(&x) {
                    Err("reserved")
                } else if model.allocated.contains(&x) {
                    Err("in-use")
                } else {
                    Ok(ip)
                };
                match (want, self.ipam.request_address(&id, Some(ip))) {
                    (Ok(w), Ok(got)) => {
                        assert_eq!(w, got);
                        model.allocated.insert(x);
                    }
                    (Err(k), Err(e)) => assert_eq!(kind(&e), k, "{e}"),
                    (want, got) => panic!("static {ip} in {id}: model {want:?}, ipam {got:?}"),
                }
            }
            Op::Release { pick, off } => {
                let Some(id) = self.pick(*pick) else { return };
                let model = self.models.get_mut(&id).unwrap();
                let x = model.first + u128::from(*off) % (model.last - model.first + 3);
                let ip = from_u128(model.family, x);
                match (
                    model.allocated.remove(&x),
                    self.ipam.release_address(&id, ip),
                ) {
                    (true, Ok(())) => {}
                    (false, Err(e)) => assert_eq!(kind(&e), "not-allocated", "{e}"),
                    (want, got) => panic!("release {ip} in {id}: model {want}, ipam {got:?}"),
                }
            }
            Op::ReleaseHeld { pick, nth } => {
                let Some(id) = self.pick(*pick) else { return };
                let model = self.models.get_mut(&id).unwrap();
                if model.allocated.is_empty() {
                    return;
                }
                let x = *model
                    .allocated
                    .iter()
                    .nth(nth % model.allocated.len())
                    .unwrap();
                model.allocated.remove(&x);
                let ip = from_u128(model.family, x);
                self.ipam.release_address(&id, ip).unwrap();
                let pool = self.ipam.pool(&id).unwrap();
                assert!(!pool.is_allocated(ip), "released address is free again");
            }
        }
    }

    /// Every pool of the IPAM matches its model exactly.
    fn check(&self) {
        let ids: Vec<&PoolId> = self.ipam.pools().map(|(id, _)| id).collect();
        let model_ids: Vec<&PoolId> = self.models.keys().collect();
        assert_eq!(ids, model_ids);
        for (id, model) in &self.models {
            let pool = self.ipam.pool(id).unwrap();
            let got: Vec<u128> = pool.allocated().map(to_u128).collect();
            let want: Vec<u128> = model.allocated.iter().copied().collect();
            assert_eq!(got, want, "allocated set of {id}");
            assert_eq!(pool.allocated_count(), want.len() as u128);
            assert_eq!(pool.next_address(), from_u128(model.family, model.cursor));
            for &r in &model.reserved {
                assert!(pool.is_reserved(from_u128(model.family, r)));
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn random_operations_keep_every_invariant_and_survive_a_round_trip(ops in proptest::collection::vec(op(), 1..120)) {
        let mut world = World { ipam: Ipam::new(config()), models: BTreeMap::new() };
        for op in &ops {
            world.apply(op);
            world.check();
        }
        let json = serde_json::to_string(&world.ipam).unwrap();
        let back: Ipam = serde_json::from_str(&json).unwrap();
        prop_assert_eq!(serde_json::to_string(&back).unwrap(), json);
        world.ipam = back;
        world.check();
        // The restored IPAM keeps allocating exactly where the original would.
        for op in &ops {
            world.apply(op);
            world.check();
        }
    }
}
