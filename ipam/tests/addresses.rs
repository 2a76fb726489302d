//! Addresses: dynamic and static requests, release, the cursor, exhaustion,
//! IPv6, and the memory promises.

mod common;

use common::*;
use switchyard_ipam::{IpamError, PoolId, PoolRequest};

fn take(ipam: &mut switchyard_ipam::Ipam, id: &PoolId, n: usize) -> Vec<String> {
    (0..n)
        .map(|_| ipam.request_address(id, None).unwrap().to_string())
        .collect()
}

// ---- dynamic -----------------------------------------------------------------

#[test]
fn first_dynamic_address_follows_the_gateway() {
    let mut ipam = ipam();
    let id = create(&mut ipam, "front", "10.1.0.0/16");
    assert_eq!(take(&mut ipam, &id, 2), ["10.1.0.2", "10.1.0.3"]);
}

#[test]
fn dynamic_allocation_never_hands_out_network_gateway_or_broadcast() {
    let mut ipam = ipam();
    let id = create(&mut ipam, "front", "10.1.0.0/29");
    assert_eq!(
        take(&mut ipam, &id, 5),
        ["10.1.0.2", "10.1.0.3", "10.1.0.4", "10.1.0.5", "10.1.0.6"]
    );
    assert!(ipam.request_address(&id, None).is_err());
}

#[test]
fn exhaustion_error_names_the_network_subnet_and_range() {
    let mut ipam = ipam();
    let id = create(&mut ipam, "front", "10.1.0.0/29");
    take(&mut ipam, &id, 5);
    let err = ipam.request_address(&id, None).unwrap_err();
    assert_eq!(
        err,
        IpamError::NoFreeAddress {
            owner: "front".into(),
            subnet: net("10.1.0.0/29"),
            range: net("10.1.0.0/29"),
        }
    );
    assert!(
        err.to_string().starts_with(
            "no free address left in network 'front' (10.1.0.0/29, range 10.1.0.0/29)"
        ),
        "{err}"
    );
}

#[test]
fn dynamic_allocation_skips_aux_addresses() {
    let mut ipam = ipam();
    let mut req = subnet_req("front", "10.1.0.0/24");
    req.aux_addresses.insert("router".into(), ip("10.1.0.3"));
    let id = ipam.request_pool(req).unwrap();
    assert_eq!(take(&mut ipam, &id, 2), ["10.1.0.2", "10.1.0.4"]);
}

#[test]
fn dynamic_allocation_stays_inside_the_ip_range() {
    let mut ipam = ipam();
    let id = ipam
        .request_pool(PoolRequest {
            ip_range: Some(net("10.1.0.8/30")),
            ..subnet_req("front", "10.1.0.0/24")
        })
        .unwrap();
    assert_eq!(
        take(&mut ipam, &id, 4),
        ["10.1.0.8", "10.1.0.9", "10.1.0.10", "10.1.0.11"]
    );
    let err = ipam.request_address(&id, None).unwrap_err();
    assert!(err.to_string().contains("range 10.1.0.8/30"), "{err}");
}

#[test]
fn ip_range_at_the_start_of_the_subnet_still_skips_network_and_gateway() {
    let mut ipam = ipam();
    let id = ipam
        .request_pool(PoolRequest {
            ip_range: Some(net("10.1.0.0/30")),
            ..subnet_req("front", "10.1.0.0/24")
        })
        .unwrap();
    assert_eq!(take(&mut ipam, &id, 2), ["10.1.0.2", "10.1.0.3"]);
    assert!(matches!(
        ipam.request_address(&id, None),
        Err(IpamError::NoFreeAddress { .. })
    ));
}

#[test]
fn dynamic_allocation_skips_a_statically_taken_address() {
    let mut ipam = ipam();
    let id = create(&mut ipam, "front", "10.1.0.0/24");
    ipam.request_address(&id, Some(ip("10.1.0.3"))).unwrap();
    assert_eq!(take(&mut ipam, &id, 2), ["10.1.0.2", "10.1.0.4"]);
}

// ---- static -----------------------------------------------------------------

#[test]
fn static_address_inside_the_subnet_is_handed_out() {
    let mut ipam = ipam();
    let id = create(&mut ipam, "front", "10.1.0.0/16");
    assert_eq!(
        ipam.request_address(&id, Some(ip("10.1.7.7"))).unwrap(),
        ip("10.1.7.7")
    );
    assert!(ipam.pool(&id).unwrap().is_allocated(ip("10.1.7.7")));
}

#[test]
fn static_address_outside_the_ip_range_but_inside_the_subnet_is_allowed() {
    let mut ipam = ipam();
    let id = ipam
        .request_pool(PoolRequest {
            ip_range: Some(net("10.1.2.0/24")),
            ..subnet_req("front", "10.1.0.0/16")
        })
        .unwrap();
    assert_eq!(
        ipam.request_address(&id, Some(ip("10.1.9.9"))).unwrap(),
        ip("10.1.9.9")
    );
}

#[test]
fn static_address_outside_the_subnet_is_rejected() {
    let mut ipam = ipam();
    let id = create(&mut ipam, "front", "10.1.0.0/16");
    let err = ipam.request_address(&id, Some(ip("10.2.0.5"))).unwrap_err();
    assert_eq!(
        err.to_string(),
        "address 10.2.0.5 is outside subnet 10.1.0.0/16 of network 'front'; choose an --ip inside it"
    );
}

#[test]
fn static_address_of_the_other_family_is_rejected() {
    let mut ipam = ipam();
    let id = create(&mut ipam, "front", "10.1.0.0/16");
    let err = ipam.request_address(&id, Some(ip("fd00::5"))).unwrap_err();
    assert!(
        matches!(err, IpamError::AddressOutsideSubnet { .. }),
        "{err}"
    );
}

#[test]
fn static_address_equal_to_the_gateway_is_rejected() {
    let mut ipam = ipam();
    let id = create(&mut ipam, "front", "10.1.0.0/16");
    let err = ipam.request_address(&id, Some(ip("10.1.0.1"))).unwrap_err();
    assert_eq!(
        err.to_string(),
        "address 10.1.0.1 is the gateway of network 'front'; choose another --ip"
    );
}

#[test]
fn static_address_equal_to_an_aux_address_is_rejected() {
    let mut ipam = ipam();
    let mut req = subnet_req("front", "10.1.0.0/24");
    req.aux_addresses.insert("router".into(), ip("10.1.0.3"));
    let id = ipam.request_pool(req).unwrap();
    let err = ipam.request_address(&id, Some(ip("10.1.0.3"))).unwrap_err();
    assert_eq!(
        err.to_string(),
        "address 10.1.0.3 is reserved as auxiliary address 'router' of network 'front'; choose another --ip"
    );
}

#[test]
fn static_network_address_is_rejected() {
    let mut ipam = ipam();
    let id = create(&mut ipam, "front", "10.1.0.0/16");
    let err = ipam.request_address(&id, Some(ip("10.1.0.0"))).unwrap_err();
    assert_eq!(
        err.to_string(),
        "address 10.1.0.0 is the network address of network 'front' (10.1.0.0/16); choose another --ip"
    );
}

#[test]
fn static_broadcast_address_is_rejected() {
    let mut ipam = ipam();
    let id = create(&mut ipam, "front", "10.1.0.0/16");
    let err = ipam
        .request_address(&id, Some(ip("10.1.255.255")))
        .unwrap_err();
    assert!(
        matches!(
            err,
            IpamError::AddressReserved {
                what: "broadcast address",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn static_address_already_in_use_is_rejected() {
    let mut ipam = ipam();
    let id = create(&mut ipam, "front", "10.1.0.0/16");
    ipam.request_address(&id, Some(ip("10.1.0.7"))).unwrap();
    let err = ipam.request_address(&id, Some(ip("10.1.0.7"))).unwrap_err();
    assert_eq!(
        err.to_string(),
        "address 10.1.0.7 is already in use in network 'front'"
    );
}

#[test]
fn static_request_does_not_move_the_cursor() {
    let mut ipam = ipam();
    let id = create(&mut ipam, "front", "10.1.0.0/24");
    ipam.request_address(&id, Some(ip("10.1.0.200"))).unwrap();
    assert_eq!(take(&mut ipam, &id, 1), ["10.1.0.2"]);
}

#[test]
fn requests_to_an_unknown_pool_are_errors() {
    let mut ipam = ipam();
    let id = local("10.1.0.0/16");
    assert_eq!(
        ipam.request_address(&id, None).unwrap_err(),
        IpamError::NoSuchPool { id: id.clone() }
    );
    assert!(matches!(
        ipam.release_address(&id, ip("10.1.0.2")),
        Err(IpamError::NoSuchPool { .. })
    ));
}

// ---- release and the cursor --------------------------------------------------

#[test]
fn released_address_can_be_requested_again() {
    let mut ipam = ipam();
    let id = create(&mut ipam, "front", "10.1.0.0/16");
    let a = ipam.request_address(&id, None).unwrap();
    ipam.release_address(&id, a).unwrap();
    assert!(!ipam.pool(&id).unwrap().is_allocated(a));
    assert_eq!(ipam.request_address(&id, Some(a)).unwrap(), a);
}

#[test]
fn releasing_an_address_not_handed_out_is_an_error() {
    let mut ipam = ipam();
    let id = create(&mut ipam, "front", "10.1.0.0/16");
    let err = ipam.release_address(&id, ip("10.1.0.9")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "address 10.1.0.9 is not allocated in network 'front'; nothing to release"
    );
}

#[test]
fn releasing_twice_is_an_error() {
    let mut ipam = ipam();
    let id = create(&mut ipam, "front", "10.1.0.0/16");
    let a = ipam.request_address(&id, None).unwrap();
    ipam.release_address(&id, a).unwrap();
    assert!(matches!(
        ipam.release_address(&id, a),
        Err(IpamError::NotAllocated { .. })
    ));
}

#[test]
fn releasing_the_gateway_or_an_outside_address_is_an_error() {
    let mut ipam = ipam();
    let id = create(&mut ipam, "front", "10.1.0.0/16");
    for bad in ["10.1.0.1", "10.1.0.0", "10.9.0.2", "fd00::2"] {
        assert!(
            matches!(
                ipam.release_address(&id, ip(bad)),
                Err(IpamError::NotAllocated { .. })
            ),
            "{bad}"
        );
    }
    assert!(ipam.pool(&id).unwrap().is_reserved(ip("10.1.0.1")));
}

#[test]
fn release_does_not_rewind_the_cursor() {
    let mut ipam = ipam();
    let id = create(&mut ipam, "front", "10.1.0.0/24");
    take(&mut ipam, &id, 3);
    ipam.release_address(&id, ip("10.1.0.2")).unwrap();
    assert_eq!(take(&mut ipam, &id, 1), ["10.1.0.5"]);
}

#[test]
fn cursor_wraps_around_to_reuse_released_addresses() {
    let mut ipam = ipam();
    let id = create(&mut ipam, "front", "10.1.0.0/29");
    take(&mut ipam, &id, 5);
    ipam.release_address(&id, ip("10.1.0.4")).unwrap();
    ipam.release_address(&id, ip("10.1.0.3")).unwrap();
    assert_eq!(take(&mut ipam, &id, 2), ["10.1.0.3", "10.1.0.4"]);
}

#[test]
fn cursor_wraps_inside_the_ip_range() {
    let mut ipam = ipam();
    let id = ipam
        .request_pool(PoolRequest {
            ip_range: Some(net("10.1.0.16/30")),
            ..subnet_req("front", "10.1.0.0/24")
        })
        .unwrap();
    take(&mut ipam, &id, 4);
    ipam.release_address(&id, ip("10.1.0.17")).unwrap();
    assert_eq!(take(&mut ipam, &id, 1), ["10.1.0.17"]);
    assert_eq!(ipam.pool(&id).unwrap().next_address(), ip("10.1.0.18"));
}

#[test]
fn cursor_moves_to_the_range_start_after_the_last_address() {
    let mut ipam = ipam();
    let id = create(&mut ipam, "front", "10.1.0.0/30");
    take(&mut ipam, &id, 1);
    assert_eq!(ipam.pool(&id).unwrap().next_address(), ip("10.1.0.3"));
    ipam.release_address(&id, ip("10.1.0.2")).unwrap();
    assert_eq!(take(&mut ipam, &id, 1), ["10.1.0.2"]);
}

#[test]
fn allocated_lists_handed_out_addresses_ascending_without_reserved_ones() {
    let mut ipam = ipam();
    let id = create(&mut ipam, "front", "10.1.0.0/24");
    ipam.request_address(&id, Some(ip("10.1.0.200"))).unwrap();
    take(&mut ipam, &id, 2);
    let pool = ipam.pool(&id).unwrap();
    let all: Vec<String> = pool.allocated().map(|a| a.to_string()).collect();
    assert_eq!(all, ["10.1.0.2", "10.1.0.3", "10.1.0.200"]);
    assert_eq!(pool.allocated_count(), 3);
}

// ---- IPv6 ---------------------------------------------------------------------

#[test]
fn v6_dynamic_allocation_skips_the_anycast_address_and_gateway() {
    let mut ipam = ipam();
    let id = create(&mut ipam, "front", "fd00:9::/64");
    assert_eq!(take(&mut ipam, &id, 2), ["fd00:9::2", "fd00:9::3"]);
}

#[test]
fn v6_static_anycast_address_is_rejected() {
    let mut ipam = ipam();
    let id = create(&mut ipam, "front", "fd00:9::/64");
    let err = ipam.request_address(&id, Some(ip("fd00:9::"))).unwrap_err();
    assert!(
        matches!(
            err,
            IpamError::AddressReserved {
                what: "subnet-router anycast address",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn v6_last_address_can_be_handed_out() {
    let mut ipam = ipam();
    let id = create(&mut ipam, "front", "fd00:9::/126");
    assert_eq!(take(&mut ipam, &id, 2), ["fd00:9::2", "fd00:9::3"]);
}

#[test]
fn v6_slash64_with_ten_thousand_addresses_stays_small() {
    let mut ipam = ipam();
    let id = create(&mut ipam, "front", "fd00:9::/64");
    take(&mut ipam, &id, 10_000);
    let pool = ipam.pool(&id).unwrap();
    assert_eq!(pool.allocated_count(), 10_000);
    assert!(pool.heap_bytes() < 16 * 1024, "{} bytes", pool.heap_bytes());
}

#[test]
fn v6_slash64_takes_addresses_far_apart_sparsely() {
    let mut ipam = ipam();
    let id = create(&mut ipam, "front", "fd00:9::/64");
    for a in [
        "fd00:9::5",
        "fd00:9::8000:0:0:1",
        "fd00:9::ffff:ffff:ffff:fff0",
    ] {
        ipam.request_address(&id, Some(ip(a))).unwrap();
    }
    let pool = ipam.pool(&id).unwrap();
    assert!(pool.heap_bytes() < 64 * 1024, "{} bytes", pool.heap_bytes());
    let all: Vec<String> = pool.allocated().map(|a| a.to_string()).collect();
    assert_eq!(
        all,
        [
            "fd00:9::5",
            "fd00:9::8000:0:0:1",
            "fd00:9::ffff:ffff:ffff:fff0"
        ]
    );
}

// ---- memory --------------------------------------------------------------------

#[test]
fn sequentially_filled_slash16_collapses_to_almost_nothing() {
    let mut ipam = ipam();
    let id = create(&mut ipam, "front", "10.1.0.0/16");
    take(&mut ipam, &id, 65_533);
    let pool = ipam.pool(&id).unwrap();
    assert_eq!(pool.allocated_count(), 65_533);
    assert!(pool.heap_bytes() < 2 * 1024, "{} bytes", pool.heap_bytes());
    assert!(matches!(
        ipam.request_address(&id, None),
        Err(IpamError::NoFreeAddress { .. })
    ));
}

#[test]
fn checkerboard_slash16_costs_one_bit_per_address_plus_a_little() {
    let mut ipam = ipam();
    let id = create(&mut ipam, "front", "10.1.0.0/16");
    for i in (2..65_534u32).step_by(2) {
        let a = std::net::Ipv4Addr::from(u32::from(std::net::Ipv4Addr::new(10, 1, 0, 0)) + i);
        ipam.request_address(&id, Some(a.into())).unwrap();
    }
    let bytes = ipam.pool(&id).unwrap().heap_bytes();
    // 65536 bits = 8 KiB of raw bits; allow the inner node and leaf headers.
    assert!(bytes <= 8 * 1024 + 1024 + 16 * 16 + 512, "{bytes} bytes");
}
