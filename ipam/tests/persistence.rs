//! Persistence: the controller saves IPAM as JSON and must get back exactly
//! what it saved, and nothing that breaks the rules.

mod common;

use common::*;
use switchyard_ipam::{Ipam, IpamError, Pool, PoolRequest, GLOBAL};

/// An IPAM with a bit of everything in it.
fn busy() -> (Ipam, switchyard_ipam::PoolId) {
    let mut ipam = ipam();
    let bridge = ipam.request_pool(default_req("bridge")).unwrap();
    for _ in 0..5 {
        ipam.request_address(&bridge, None).unwrap();
    }
    let mut req = PoolRequest {
        ip_range: Some(net("10.1.0.0/28")),
        gateway: Some(ip("10.1.0.254")),
        ..subnet_req("front", "10.1.0.0/24")
    };
    req.aux_addresses.insert("router".into(), ip("10.1.0.4"));
    let front = ipam.request_pool(req).unwrap();
    for _ in 0..8 {
        ipam.request_address(&front, None).unwrap();
    }
    ipam.release_address(&front, ip("10.1.0.6")).unwrap();
    ipam.request_address(&front, Some(ip("10.1.0.100")))
        .unwrap();
    let v6 = create(&mut ipam, "six", "fd00:9::/64");
    ipam.request_address(&v6, None).unwrap();
    ipam.request_pool(PoolRequest {
        space: GLOBAL.into(),
        ..subnet_req("overlay", "10.1.0.0/24")
    })
    .unwrap();
    (ipam, front)
}

fn round_trip(ipam: &Ipam) -> Ipam {
    serde_json::from_str(&serde_json::to_string(ipam).unwrap()).unwrap()
}

fn summary(
    pool: &Pool,
) -> (
    String,
    String,
    std::net::IpAddr,
    Vec<std::net::IpAddr>,
    std::net::IpAddr,
) {
    (
        pool.owner().to_string(),
        format!("{:?} {:?}", pool.ip_range(), pool.aux_addresses()),
        pool.gateway(),
        pool.allocated().collect(),
        pool.next_address(),
    )
}

#[test]
fn round_trip_preserves_every_pool_allocation_reservation_and_cursor() {
    let (ipam, _) = busy();
    let back = round_trip(&ipam);
    assert_eq!(back.config(), ipam.config());
    let before: Vec<_> = ipam
        .pools()
        .map(|(id, p)| (id.clone(), summary(p)))
        .collect();
    let after: Vec<_> = back
        .pools()
        .map(|(id, p)| (id.clone(), summary(p)))
        .collect();
    assert_eq!(before, after);
    for (id, pool) in back.pools() {
        assert_eq!(
            pool.allocated_count(),
            ipam.pool(id).unwrap().allocated_count()
        );
    }
}

#[test]
fn round_trip_continues_allocating_where_it_left_off() {
    let (mut ipam, front) = busy();
    let mut back = round_trip(&ipam);
    for _ in 0..6 {
        assert_eq!(
            back.request_address(&front, None),
            ipam.request_address(&front, None)
        );
    }
}

#[test]
fn round_trip_keeps_reserved_addresses_reserved() {
    let (ipam, front) = busy();
    let mut back = round_trip(&ipam);
    assert!(matches!(
        back.request_address(&front, Some(ip("10.1.0.4"))),
        Err(IpamError::AddressIsAux { .. })
    ));
    assert!(matches!(
        back.request_address(&front, Some(ip("10.1.0.254"))),
        Err(IpamError::AddressIsGateway { .. })
    ));
}

#[test]
fn allocations_are_saved_as_sorted_ranges() {
    let mut ipam = ipam();
    let id = create(&mut ipam, "front", "10.1.0.0/24");
    for _ in 0..10 {
        ipam.request_address(&id, None).unwrap();
    }
    ipam.release_address(&id, ip("10.1.0.5")).unwrap();
    let json = serde_json::to_value(&ipam).unwrap();
    assert_eq!(
        json["pools"][0]["allocated"],
        serde_json::json!(["10.1.0.2-10.1.0.4", "10.1.0.6-10.1.0.11"])
    );
    assert_eq!(json["pools"][0]["next_address"], "10.1.0.12");
}

#[test]
fn a_full_slash8_saves_as_one_range_and_loads_into_little_memory() {
    let json = r#"{"config":{"v4_pools":[],"v6_pools":[]},"pools":[{"space":"local","owner":"big",
        "subnet":"10.0.0.0/8","gateway":"10.0.0.1","allocated":["10.0.0.2-10.255.255.254"],
        "next_address":"10.0.0.2"}]}"#;
    let ipam: Ipam = serde_json::from_str(json).unwrap();
    let pool = ipam.pool(&local("10.0.0.0/8")).unwrap();
    assert_eq!(pool.allocated_count(), (1 << 24) - 3);
    assert!(
        pool.heap_bytes() <= 2 * 1024 * 1024,
        "{}",
        pool.heap_bytes()
    );
    assert!(pool.heap_bytes() < 4 * 1024, "{}", pool.heap_bytes());
    let again = serde_json::to_value(&ipam).unwrap();
    assert_eq!(
        again["pools"][0]["allocated"],
        serde_json::json!(["10.0.0.2-10.255.255.254"])
    );
}

fn load(pool_json: &str) -> Result<Ipam, String> {
    let json = format!(r#"{{"config":{{"v4_pools":[],"v6_pools":[]}},"pools":[{pool_json}]}}"#);
    serde_json::from_str::<Ipam>(&json).map_err(|e| e.to_string())
}

#[test]
fn loading_rejects_an_allocated_reserved_address() {
    let err = load(
        r#"{"space":"local","owner":"a","subnet":"10.1.0.0/24","gateway":"10.1.0.1",
            "allocated":["10.1.0.1-10.1.0.3"],"next_address":"10.1.0.4"}"#,
    )
    .unwrap_err();
    assert!(err.contains("10.1.0.1 is the gateway"), "{err}");
}

#[test]
fn loading_rejects_overlapping_or_unsorted_ranges() {
    for ranges in [
        r#"["10.1.0.5-10.1.0.9","10.1.0.9"]"#,
        r#"["10.1.0.9","10.1.0.5"]"#,
        r#"["10.1.0.9-10.1.0.5"]"#,
    ] {
        let err = load(&format!(
            r#"{{"space":"local","owner":"a","subnet":"10.1.0.0/24","gateway":"10.1.0.1",
                "allocated":{ranges},"next_address":"10.1.0.4"}}"#
        ))
        .unwrap_err();
        assert!(err.contains("out of order or overlaps"), "{ranges}: {err}");
    }
}

#[test]
fn loading_rejects_addresses_outside_the_subnet() {
    let err = load(
        r#"{"space":"local","owner":"a","subnet":"10.1.0.0/24","gateway":"10.1.0.1",
            "allocated":["10.1.1.5"],"next_address":"10.1.0.4"}"#,
    )
    .unwrap_err();
    assert!(err.contains("outside the subnet"), "{err}");
}

#[test]
fn loading_rejects_a_cursor_outside_the_dynamic_range() {
    let err = load(
        r#"{"space":"local","owner":"a","subnet":"10.1.0.0/24","gateway":"10.1.0.1",
            "ip_range":"10.1.0.128/25","allocated":[],"next_address":"10.1.0.4"}"#,
    )
    .unwrap_err();
    assert!(err.contains("next address 10.1.0.4"), "{err}");
}

#[test]
fn loading_rejects_a_pool_that_breaks_pool_rules() {
    let err = load(
        r#"{"space":"local","owner":"a","subnet":"10.1.0.0/24","gateway":"10.2.0.1",
            "allocated":[],"next_address":"10.1.0.4"}"#,
    )
    .unwrap_err();
    assert!(err.contains("gateway 10.2.0.1 is outside subnet"), "{err}");
}

#[test]
fn loading_rejects_overlapping_pools_in_one_space() {
    let pool = |subnet: &str, gw: &str| {
        format!(
            r#"{{"space":"local","owner":"{subnet}","subnet":"{subnet}","gateway":"{gw}","allocated":[],"next_address":"{gw}"}}"#
        )
    };
    let err = load(&format!(
        "{},{}",
        pool("10.1.0.0/16", "10.1.0.1"),
        pool("10.1.2.0/24", "10.1.2.1")
    ))
    .unwrap_err();
    assert!(err.contains("overlaps"), "{err}");
}

#[test]
fn loading_rejects_an_unknown_space() {
    let err = load(
        r#"{"space":"galaxy","owner":"a","subnet":"10.1.0.0/24","gateway":"10.1.0.1",
            "allocated":[],"next_address":"10.1.0.2"}"#,
    )
    .unwrap_err();
    assert!(err.contains("unknown address space 'galaxy'"), "{err}");
}

#[test]
fn a_pool_round_trips_on_its_own() {
    let (ipam, front) = busy();
    let pool = ipam.pool(&front).unwrap();
    let back: Pool = serde_json::from_str(&serde_json::to_string(pool).unwrap()).unwrap();
    assert_eq!(summary(&back), summary(pool));
    assert_eq!(back.space(), "local");
}

#[test]
fn rebuilding_from_pools_stored_one_by_one_gives_the_same_ipam() {
    let (ipam, _) = busy();
    // The controller stores the configuration and each pool under its own key.
    let pools: Vec<Pool> = ipam
        .pools()
        .map(|(_, p)| serde_json::from_str(&serde_json::to_string(p).unwrap()).unwrap())
        .collect();
    let rebuilt = Ipam::from_parts(ipam.config().clone(), pools).unwrap();
    assert_eq!(rebuilt.config(), ipam.config());
    let ids = |i: &Ipam| {
        i.pools()
            .map(|(id, p)| (id.clone(), summary(p)))
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(&rebuilt), ids(&ipam));
}

#[test]
fn rebuilding_from_pools_refuses_two_pools_that_overlap() {
    let (ipam, front) = busy();
    let mut pools: Vec<Pool> = ipam.pools().map(|(_, p)| p.clone()).collect();
    pools.push(ipam.pool(&front).unwrap().clone());
    let err = Ipam::from_parts(ipam.config().clone(), pools).unwrap_err();
    assert!(
        matches!(err, IpamError::InvalidState { .. }) && err.to_string().contains("overlaps"),
        "{err}"
    );
}
