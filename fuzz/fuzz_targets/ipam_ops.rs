//! Drives IPAM with op sequences decoded from the fuzzer's bytes and checks,
//! after every op, against a plain model: no address handed out twice, none
//! outside its subnet, dynamic ones inside the ip range, none reserved,
//! release succeeds exactly for handed-out addresses, exhaustion only when
//! the range is really full, and serde round trips change nothing.

#![no_main]

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use libfuzzer_sys::fuzz_target;
use switchyard_ipam::{
    Family, IpNetwork, Ipam, IpamConfig, IpamError, PoolId, PoolRequest, GLOBAL, LOCAL,
};

/// Subnets the fuzzer may name: small and overlapping, plus invalid ones.
const SUBNETS: &[&str] = &[
    "10.0.0.0/29",
    "10.0.0.8/29",
    "10.0.0.0/28",
    "10.0.0.16/30",
    "10.0.0.0/24",
    "10.0.0.5/29",
    "10.0.0.0/31",
    "fd00::/125",
    "fd00::8/126",
    "fd00::/120",
    "fd00::/127",
    "fd00::/64",
];

/// Reads bytes as small numbers; zeros once the input runs out.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }

    fn done(&self) -> bool {
        self.0.is_empty()
    }
}

fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u32::from(a).into(),
        IpAddr::V6(a) => a.into(),
    }
}

fn from_u128(v4: bool, v: u128) -> IpAddr {
    if v4 {
        IpAddr::V4(Ipv4Addr::from(v as u32))
    } else {
        IpAddr::V6(Ipv6Addr::from(v))
    }
}

/// First and last address of a subnet, as numbers.
fn bounds(net: IpNetwork) -> (u128, u128) {
    let bits = if net.is_ipv4() { 32 } else { 128 };
    let host = bits - u32::from(net.prefix());
    let mask = if host == 128 {
        u128::MAX
    } else {
        (1u128 << host) - 1
    };
    let first = to_u128(net.ip()) & !mask;
    (first, first | mask)
}

/// What the model tracks for a pool; reserved addresses are derived from
/// the pool's public accessors, independently of its own bookkeeping.
struct Model {
    v4: bool,
    first: u128,
    last: u128,
    lo: u128,
    hi: u128,
    reserved: BTreeSet<u128>,
    allocated: BTreeSet<u128>,
}

impl Model {
    fn of(ipam: &Ipam, id: &PoolId) -> Model {
        let pool = ipam.pool(id).expect("pool just created");
        let (first, last) = bounds(pool.subnet());
        let v4 = pool.subnet().is_ipv4();
        let (lo, hi) = bounds(pool.ip_range().unwrap_or(pool.subnet()));
        let mut reserved: BTreeSet<u128> = [first, to_u128(pool.gateway())].into();
        if v4 {
            reserved.insert(last);
        }
        reserved.extend(pool.aux_addresses().values().map(|&a| to_u128(a)));
        assert!(first <= lo && hi <= last, "ip range inside subnet");
        for &r in &reserved {
            assert!(
                (first..=last).contains(&r),
                "reserved address inside subnet"
            );
        }
        Model {
            v4,
            first,
            last,
            lo,
            hi,
            reserved,
            allocated: BTreeSet::new(),
        }
    }

    fn free_in_range(&self) -> bool {
        (self.lo..=self.hi)
            .take(4096)
            .any(|x| !self.reserved.contains(&x) && !self.allocated.contains(&x))
            || self.hi - self.lo >= 4096
    }
}

fn pick(models: &BTreeMap<PoolId, Model>, b: u8) -> Option<PoolId> {
    (!models.is_empty()).then(|| {
        models
            .keys()
            .nth(usize::from(b) % models.len())
            .unwrap()
            .clone()
    })
}

fn check(ipam: &Ipam, models: &BTreeMap<PoolId, Model>) {
    assert!(ipam.pools().map(|(id, _)| id).eq(models.keys()), "pool ids");
    for (id, m) in models {
        let pool = ipam.pool(id).unwrap();
        assert!(
            pool.allocated()
                .map(to_u128)
                .eq(m.allocated.iter().copied()),
            "allocated set of {id}"
        );
        assert_eq!(pool.allocated_count(), m.allocated.len() as u128);
    }
}

fn round_trip(ipam: &Ipam) -> Ipam {
    let json = serde_json::to_string(ipam).unwrap();
    let back: Ipam = serde_json::from_str(&json).unwrap();
    assert_eq!(serde_json::to_string(&back).unwrap(), json, "round trip");
    back
}

fuzz_target!(|data: &[u8]| {
    let config = IpamConfig {
        v4_pools: vec!["base=10.0.0.0/27,size=29".parse().unwrap()],
        v6_pools: vec!["base=fd00::/124,size=126".parse().unwrap()],
        global_v4_pools: vec!["base=10.1.0.0/27,size=29".parse().unwrap()],
        global_v6_pools: Vec::new(),
    };
    let mut ipam = Ipam::new(config);
    let mut models: BTreeMap<PoolId, Model> = BTreeMap::new();
    let mut input = Bytes(data);
    while !input.done() {
        match input.byte() % 8 {
            0 => {
                let flags = input.byte();
                let net: IpNetwork = SUBNETS[usize::from(input.byte()) % SUBNETS.len()]
                    .parse()
                    .unwrap();
                let (first, last) = bounds(net);
                let v4 = net.is_ipv4();
                let span = (last - first).saturating_add(1);
                let at = |input: &mut Bytes| {
                    from_u128(
                        v4,
                        first + u128::from(input.byte()) % span.saturating_add(2).max(1),
                    )
                };
                let ip_range = (flags & 2 != 0).then(|| {
                    let prefix = (net.prefix() + input.byte() % 3).min(if v4 { 32 } else { 128 });
                    IpNetwork::new(at(&mut input), prefix).unwrap()
                });
                let gateway = (flags & 4 != 0).then(|| at(&mut input));
                let mut aux_addresses = BTreeMap::new();
                for i in 0..(flags >> 3) % 3 {
                    aux_addresses.insert(format!("aux{i}"), at(&mut input));
                }
                let space = if flags & 1 != 0 { GLOBAL } else { LOCAL };
                let overlaps = models.iter().any(|(id, m)| {
                    id.space == space && m.v4 == v4 && m.first <= last && first <= m.last
                });
                let valid_cidr =
                    to_u128(net.ip()) == first && net.prefix() <= if v4 { 30 } else { 126 };
                let req = PoolRequest {
                    space: space.into(),
                    owner: "fuzz".into(),
                    family: Family::V4,
                    subnet: Some(net),
                    ip_range,
                    gateway,
                    aux_addresses,
                };
                match ipam.request_pool(req) {
                    Ok(id) => {
                        assert!(
                            valid_cidr && !overlaps,
                            "accepted {net} (valid {valid_cidr}, overlaps {overlaps})"
                        );
                        assert_eq!(id.subnet, net);
                        let m = Model::of(&ipam, &id);
                        models.insert(id, m);
                    }
                    Err(IpamError::SubnetOverlaps { .. }) => assert!(overlaps && valid_cidr),
                    Err(_) => {}
                }
            }
            1 => {
                let flags = input.byte();
                let space = if flags & 1 != 0 { GLOBAL } else { LOCAL };
                let family = if flags & 2 != 0 {
                    Family::V6
                } else {
                    Family::V4
                };
                let req = PoolRequest {
                    space: space.into(),
                    owner: "fuzz".into(),
                    family,
                    ..PoolRequest::default()
                };
                match ipam.request_pool(req) {
                    Ok(id) => {
                        let (first, last) = bounds(id.subnet);
                        assert!(!models.iter().any(|(o, m)| o.space == space
                            && m.v4 == id.subnet.is_ipv4()
                            && m.first <= last
                            && first <= m.last));
                        let m = Model::of(&ipam, &id);
                        models.insert(id, m);
                    }
                    Err(e) => assert!(matches!(e, IpamError::DefaultPoolsExhausted { .. }), "{e}"),
                }
            }
            2 => {
                if let Some(id) = pick(&models, input.byte()) {
                    ipam.release_pool(&id).unwrap();
                    models.remove(&id);
                }
            }
            3 => {
                let Some(id) = pick(&models, input.byte()) else {
                    continue;
                };
                let m = models.get_mut(&id).unwrap();
                match ipam.request_address(&id, None) {
                    Ok(ip) => {
                        let x = to_u128(ip);
                        assert!(
                            (m.lo..=m.hi).contains(&x),
                            "dynamic {ip} outside range of {id}"
                        );
                        assert!(!m.reserved.contains(&x), "dynamic {ip} is reserved in {id}");
                        assert!(m.allocated.insert(x), "{ip} handed out twice in {id}");
                    }
                    Err(e) => {
                        assert!(matches!(e, IpamError::NoFreeAddress { .. }), "{e}");
                        assert!(
                            !m.free_in_range(),
                            "{id} claims exhaustion with free addresses"
                        );
                    }
                }
            }
            4 | 5 => {
                let release = input.byte() % 2 == 1;
                let Some(id) = pick(&models, input.byte()) else {
                    continue;
                };
                let m = models.get_mut(&id).unwrap();
                let span = (m.last - m.first).saturating_add(1);
                let x = m
                    .first
                    .saturating_add(u128::from(input.byte()) % span.saturating_add(2).max(1));
                let ip = from_u128(m.v4, x);
                if release {
                    let ok = ipam.release_address(&id, ip).is_ok();
                    assert_eq!(ok, m.allocated.remove(&x), "release {ip} in {id}");
                } else {
                    let ok = ipam.request_address(&id, Some(ip)).is_ok();
                    let free = x <= m.last && !m.reserved.contains(&x) && !m.allocated.contains(&x);
                    assert_eq!(ok, free, "static {ip} in {id}");
                    if ok {
                        m.allocated.insert(x);
                    }
                }
            }
            6 => {
                let Some(id) = pick(&models, input.byte()) else {
                    continue;
                };
                let nth = usize::from(input.byte());
                let m = models.get_mut(&id).unwrap();
                if let Some(&x) = m.allocated.iter().nth(nth % m.allocated.len().max(1)) {
                    m.allocated.remove(&x);
                    ipam.release_address(&id, from_u128(m.v4, x)).unwrap();
                    assert!(
                        ipam.request_address(&id, Some(from_u128(m.v4, x))).is_ok(),
                        "released address is free again"
                    );
                    m.allocated.insert(x);
                }
            }
            _ => ipam = round_trip(&ipam),
        }
        check(&ipam, &models);
    }
    round_trip(&ipam);
});
