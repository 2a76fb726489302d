//! Pools: spaces, default pools, named subnets, gateways, ranges and aux
//! addresses.

mod common;

use std::collections::BTreeMap;

use common::*;
use switchyard_ipam::{
    DefaultPool, Family, Ipam, IpamConfig, IpamError, PoolId, PoolRequest, GLOBAL, LOCAL,
};

fn subnets_of_defaults(ipam: &mut Ipam, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            ipam.request_pool(default_req(&format!("n{i}")))
                .unwrap()
                .subnet
                .to_string()
        })
        .collect()
}

// ---- default pools -------------------------------------------------------

#[test]
fn default_pools_start_at_172_17_and_count_up_by_slash16() {
    let mut ipam = ipam();
    let want: Vec<String> = (17..=31).map(|b| format!("172.{b}.0.0/16")).collect();
    assert_eq!(subnets_of_defaults(&mut ipam, 15), want);
}

#[test]
fn after_172_31_default_pools_continue_with_192_168_slash20s() {
    let mut ipam = ipam();
    let got = subnets_of_defaults(&mut ipam, 18);
    assert_eq!(got[15], "192.168.0.0/20");
    assert_eq!(got[16], "192.168.16.0/20");
    assert_eq!(got[17], "192.168.32.0/20");
}

#[test]
fn thirty_one_default_pools_then_exhaustion_tells_user_what_to_do() {
    let mut ipam = ipam();
    let got = subnets_of_defaults(&mut ipam, 31);
    assert_eq!(got[30], "192.168.240.0/20");
    let err = ipam.request_pool(default_req("one-too-many")).unwrap_err();
    assert_eq!(err, IpamError::DefaultPoolsExhausted { family: Family::V4 });
    assert_eq!(
        err.to_string(),
        "all default address pools are in use; pass --subnet or add a default address pool"
    );
}

#[test]
fn the_global_space_cuts_10_slash_8_into_slash_24s_apart_from_the_local_defaults() {
    let mut ipam = ipam();
    let global = |owner: &str, family| PoolRequest {
        space: GLOBAL.to_string(),
        owner: owner.to_string(),
        family,
        ..PoolRequest::default()
    };
    let a = ipam.request_pool(global("o1", Family::V4)).unwrap();
    let b = ipam.request_pool(global("o2", Family::V4)).unwrap();
    assert_eq!(a.subnet.to_string(), "10.0.0.0/24");
    assert_eq!(b.subnet.to_string(), "10.0.1.0/24");
    assert_eq!(subnets_of_defaults(&mut ipam, 1), ["172.17.0.0/16"]);
    // IPv6: the upper half of the local ULA /48, in /64s; local networks
    // are cut from its bottom.
    let g6 = ipam.request_pool(global("o3", Family::V6)).unwrap();
    let l6 = ipam
        .request_pool(PoolRequest {
            owner: "l6".into(),
            family: Family::V6,
            ..PoolRequest::default()
        })
        .unwrap();
    let ula: ipnetwork::Ipv6Network = ULA.parse().unwrap();
    let upper = u128::from(ula.network()) | (1u128 << 79);
    assert_eq!(
        g6.subnet.to_string(),
        format!("{}/64", std::net::Ipv6Addr::from(upper))
    );
    assert_eq!(l6.subnet.to_string(), format!("{}/64", ula.network()));
}

#[test]
fn a_stored_configuration_without_global_pools_gets_the_defaults() {
    let mut stored =
        serde_json::to_value(IpamConfig::docker_defaults(ULA.parse().unwrap())).unwrap();
    let obj = stored.as_object_mut().unwrap();
    obj.remove("global_v4_pools");
    obj.remove("global_v6_pools");
    let config: IpamConfig = serde_json::from_value(stored).unwrap();
    assert_eq!(
        config.pools_in(GLOBAL, Family::V4),
        vec![DefaultPool {
            base: net("10.0.0.0/8"),
            size: 24
        }]
    );
    assert_eq!(config.pools_in(GLOBAL, Family::V6).len(), 1);
}

#[test]
fn default_pool_skips_a_subnet_taken_by_a_named_network() {
    let mut ipam = ipam();
    create(&mut ipam, "pinned", "172.18.0.0/16");
    assert_eq!(
        subnets_of_defaults(&mut ipam, 2),
        ["172.17.0.0/16", "172.19.0.0/16"]
    );
}

#[test]
fn default_pool_skips_every_candidate_a_bigger_named_subnet_covers() {
    let mut ipam = ipam();
    create(&mut ipam, "wide", "172.16.0.0/12");
    assert_eq!(subnets_of_defaults(&mut ipam, 1), ["192.168.0.0/20"]);
}

#[test]
fn default_pool_skips_a_candidate_partly_covered_by_a_smaller_named_subnet() {
    let mut ipam = ipam();
    create(&mut ipam, "small", "172.17.5.0/24");
    assert_eq!(subnets_of_defaults(&mut ipam, 1), ["172.18.0.0/16"]);
}

#[test]
fn configured_default_pools_in_docker_syntax_are_cut_in_order() {
    let config = IpamConfig {
        v4_pools: vec!["base=10.10.0.0/16,size=24".parse().unwrap()],
        v6_pools: vec![],
        global_v4_pools: Vec::new(),
        global_v6_pools: Vec::new(),
    };
    let mut ipam = Ipam::new(config);
    assert_eq!(
        subnets_of_defaults(&mut ipam, 2),
        ["10.10.0.0/24", "10.10.1.0/24"]
    );
}

#[test]
fn an_invalid_configured_pool_is_reported_when_reached() {
    let config = IpamConfig {
        v4_pools: vec![DefaultPool {
            base: net("10.10.0.0/16"),
            size: 8,
        }],
        v6_pools: vec![],
        global_v4_pools: Vec::new(),
        global_v6_pools: Vec::new(),
    };
    let mut ipam = Ipam::new(config);
    let err = ipam.request_pool(default_req("x")).unwrap_err();
    assert!(matches!(err, IpamError::InvalidDefaultPool { .. }), "{err}");
}

#[test]
fn v6_default_pools_are_slash64s_from_the_ula_slash48() {
    let mut ipam = ipam();
    let req = |o: &str| PoolRequest {
        family: Family::V6,
        ..default_req(o)
    };
    assert_eq!(
        ipam.request_pool(req("a")).unwrap().subnet,
        net("fd00:1:2::/64")
    );
    assert_eq!(
        ipam.request_pool(req("b")).unwrap().subnet,
        net("fd00:1:2:1::/64")
    );
}

#[test]
fn v6_default_pool_skips_a_named_v6_subnet() {
    let mut ipam = ipam();
    create(&mut ipam, "pinned", "fd00:1:2::/63");
    let id = ipam
        .request_pool(PoolRequest {
            family: Family::V6,
            ..default_req("a")
        })
        .unwrap();
    assert_eq!(id.subnet, net("fd00:1:2:2::/64"));
}

#[test]
fn v6_without_a_configured_pool_asks_for_a_subnet() {
    let mut ipam = Ipam::new(IpamConfig {
        v4_pools: vec![],
        v6_pools: vec![],
        global_v4_pools: Vec::new(),
        global_v6_pools: Vec::new(),
    });
    let err = ipam
        .request_pool(PoolRequest {
            family: Family::V6,
            ..default_req("a")
        })
        .unwrap_err();
    assert_eq!(err, IpamError::NoDefaultPool { family: Family::V6 });
    assert!(err.to_string().contains("pass --subnet"), "{err}");
}

#[test]
fn family_is_ignored_when_a_subnet_is_named() {
    let mut ipam = ipam();
    let id = ipam
        .request_pool(PoolRequest {
            family: Family::V6,
            ..subnet_req("a", "10.1.0.0/16")
        })
        .unwrap();
    assert_eq!(id.subnet, net("10.1.0.0/16"));
}

// ---- named subnets and spaces -------------------------------------------

#[test]
fn named_subnet_inside_an_existing_pool_is_rejected() {
    let mut ipam = ipam();
    create(&mut ipam, "front", "10.1.0.0/16");
    let err = ipam
        .request_pool(subnet_req("back", "10.1.0.0/24"))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "subnet 10.1.0.0/24 overlaps network 'front' (10.1.0.0/16); choose another --subnet"
    );
}

#[test]
fn named_subnet_containing_an_existing_pool_is_rejected() {
    let mut ipam = ipam();
    create(&mut ipam, "front", "10.1.2.0/24");
    let err = ipam
        .request_pool(subnet_req("back", "10.0.0.0/8"))
        .unwrap_err();
    assert_eq!(
        err,
        IpamError::SubnetOverlaps {
            subnet: net("10.0.0.0/8"),
            owner: "front".into(),
            existing: net("10.1.2.0/24"),
        }
    );
}

#[test]
fn named_subnet_equal_to_an_existing_pool_is_rejected() {
    let mut ipam = ipam();
    create(&mut ipam, "front", "10.1.0.0/16");
    assert!(matches!(
        ipam.request_pool(subnet_req("back", "10.1.0.0/16")),
        Err(IpamError::SubnetOverlaps { .. })
    ));
}

#[test]
fn adjacent_subnets_do_not_conflict() {
    let mut ipam = ipam();
    create(&mut ipam, "a", "10.1.0.0/24");
    create(&mut ipam, "b", "10.1.1.0/24");
    create(&mut ipam, "c", "10.0.255.0/24");
    assert_eq!(ipam.pools().count(), 3);
}

#[test]
fn v4_and_v6_subnets_never_conflict() {
    let mut ipam = ipam();
    create(&mut ipam, "a", "0.0.0.0/1");
    create(&mut ipam, "b", "::/1");
    assert_eq!(ipam.pools().count(), 2);
}

#[test]
fn same_subnet_is_allowed_in_local_and_global_spaces() {
    let mut ipam = ipam();
    let a = create(&mut ipam, "front", "10.1.0.0/16");
    let b = ipam
        .request_pool(PoolRequest {
            space: GLOBAL.into(),
            ..subnet_req("overlay", "10.1.0.0/16")
        })
        .unwrap();
    assert_eq!(a, PoolId::new(LOCAL, net("10.1.0.0/16")));
    assert_eq!(b, PoolId::new(GLOBAL, net("10.1.0.0/16")));
    assert_eq!(b.to_string(), "global/10.1.0.0/16");
}

#[test]
fn empty_space_means_local() {
    let mut ipam = ipam();
    let id = create(&mut ipam, "front", "10.1.0.0/16");
    assert_eq!(id.space, LOCAL);
    assert_eq!(id.to_string(), "local/10.1.0.0/16");
}

#[test]
fn unknown_space_is_rejected() {
    let mut ipam = ipam();
    let err = ipam
        .request_pool(PoolRequest {
            space: "galaxy".into(),
            ..subnet_req("a", "10.1.0.0/16")
        })
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "unknown address space 'galaxy'; use 'local' or 'global'"
    );
}

#[test]
fn subnet_with_host_bits_is_rejected_with_the_cidr_to_write() {
    let mut ipam = ipam();
    let err = ipam
        .request_pool(subnet_req("a", "10.1.2.3/16"))
        .unwrap_err();
    assert!(
        err.to_string()
            .ends_with("10.1.2.3/16 has host bits set; write 10.1.0.0/16"),
        "{err}"
    );
}

#[test]
fn v4_subnet_smaller_than_slash30_is_rejected() {
    let mut ipam = ipam();
    let err = ipam
        .request_pool(subnet_req("a", "10.1.0.0/31"))
        .unwrap_err();
    assert_eq!(
        err,
        IpamError::SubnetTooSmall {
            subnet: net("10.1.0.0/31"),
            max_prefix: 30
        }
    );
    assert!(err.to_string().contains("use a /30 or larger"), "{err}");
    assert!(ipam.request_pool(subnet_req("b", "10.1.0.0/32")).is_err());
}

#[test]
fn v4_slash30_holds_a_gateway_and_one_container() {
    let mut ipam = ipam();
    let id = create(&mut ipam, "a", "10.1.0.0/30");
    assert_eq!(ipam.request_address(&id, None).unwrap(), ip("10.1.0.2"));
    assert!(matches!(
        ipam.request_address(&id, None),
        Err(IpamError::NoFreeAddress { .. })
    ));
}

#[test]
fn v6_subnet_smaller_than_slash126_is_rejected() {
    let mut ipam = ipam();
    let err = ipam
        .request_pool(subnet_req("a", "fd00::/127"))
        .unwrap_err();
    assert!(err.to_string().contains("use a /126 or larger"), "{err}");
    assert!(ipam.request_pool(subnet_req("b", "fd00::/126")).is_ok());
}

#[test]
fn release_pool_frees_the_subnet_for_a_named_request() {
    let mut ipam = ipam();
    let id = create(&mut ipam, "front", "10.1.0.0/16");
    ipam.release_pool(&id).unwrap();
    assert!(ipam.pool(&id).is_none());
    create(&mut ipam, "again", "10.1.0.0/24");
}

#[test]
fn release_pool_frees_the_subnet_for_the_default_pools() {
    let mut ipam = ipam();
    let _bridge = ipam.request_pool(default_req("bridge")).unwrap();
    let second = ipam.request_pool(default_req("second")).unwrap();
    let _third = ipam.request_pool(default_req("third")).unwrap();
    ipam.release_pool(&second).unwrap();
    assert_eq!(
        ipam.request_pool(default_req("fourth")).unwrap(),
        local("172.18.0.0/16")
    );
}

#[test]
fn release_pool_is_allowed_with_addresses_allocated() {
    let mut ipam = ipam();
    let id = create(&mut ipam, "front", "10.1.0.0/16");
    ipam.request_address(&id, None).unwrap();
    ipam.release_pool(&id).unwrap();
}

#[test]
fn releasing_an_unknown_pool_is_an_error() {
    let mut ipam = ipam();
    let id = create(&mut ipam, "front", "10.1.0.0/16");
    ipam.release_pool(&id).unwrap();
    let err = ipam.release_pool(&id).unwrap_err();
    assert_eq!(err, IpamError::NoSuchPool { id });
}

#[test]
fn pools_iterate_in_space_then_address_order() {
    let mut ipam = ipam();
    create(&mut ipam, "b", "10.2.0.0/16");
    create(&mut ipam, "a", "10.1.0.0/16");
    ipam.request_pool(PoolRequest {
        space: GLOBAL.into(),
        ..subnet_req("g", "10.0.0.0/16")
    })
    .unwrap();
    let order: Vec<String> = ipam.pools().map(|(id, _)| id.to_string()).collect();
    assert_eq!(
        order,
        [
            "global/10.0.0.0/16",
            "local/10.1.0.0/16",
            "local/10.2.0.0/16"
        ]
    );
    let owners: Vec<&str> = ipam.pools().map(|(_, p)| p.owner()).collect();
    assert_eq!(owners, ["g", "a", "b"]);
}

#[test]
fn a_refused_request_leaves_no_pool_behind() {
    let mut ipam = ipam();
    let bad = PoolRequest {
        gateway: Some(ip("10.9.0.1")),
        ..subnet_req("front", "10.1.0.0/16")
    };
    assert!(ipam.request_pool(bad).is_err());
    assert_eq!(ipam.pools().count(), 0);
    create(&mut ipam, "front", "10.1.0.0/16");
}

// ---- gateway ---------------------------------------------------------------

#[test]
fn gateway_defaults_to_the_first_usable_address() {
    let mut ipam = ipam();
    let v4 = create(&mut ipam, "a", "10.1.0.0/16");
    let v6 = create(&mut ipam, "b", "fd00:9::/64");
    assert_eq!(ipam.pool(&v4).unwrap().gateway(), ip("10.1.0.1"));
    assert_eq!(ipam.pool(&v6).unwrap().gateway(), ip("fd00:9::1"));
}

#[test]
fn default_pool_gets_the_first_usable_address_as_gateway() {
    let mut ipam = ipam();
    let id = ipam.request_pool(default_req("bridge")).unwrap();
    assert_eq!(ipam.pool(&id).unwrap().gateway(), ip("172.17.0.1"));
}

#[test]
fn given_gateway_is_kept_and_reserved() {
    let mut ipam = ipam();
    let id = ipam
        .request_pool(PoolRequest {
            gateway: Some(ip("10.1.0.254")),
            ..subnet_req("front", "10.1.0.0/24")
        })
        .unwrap();
    let pool = ipam.pool(&id).unwrap();
    assert_eq!(pool.gateway(), ip("10.1.0.254"));
    assert!(pool.is_reserved(ip("10.1.0.254")));
    assert!(!pool.is_reserved(ip("10.1.0.1")));
    assert_eq!(ipam.request_address(&id, None).unwrap(), ip("10.1.0.1"));
}

#[test]
fn gateway_outside_the_subnet_is_rejected() {
    let mut ipam = ipam();
    let err = ipam
        .request_pool(PoolRequest {
            gateway: Some(ip("10.2.0.1")),
            ..subnet_req("front", "10.1.0.0/16")
        })
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "gateway 10.2.0.1 is outside subnet 10.1.0.0/16 of network 'front'; choose a --gateway inside it"
    );
}

#[test]
fn gateway_of_the_other_family_is_rejected() {
    let mut ipam = ipam();
    let err = ipam
        .request_pool(PoolRequest {
            gateway: Some(ip("fd00::1")),
            ..subnet_req("front", "10.1.0.0/16")
        })
        .unwrap_err();
    assert!(
        matches!(err, IpamError::GatewayOutsideSubnet { .. }),
        "{err}"
    );
}

#[test]
fn gateway_equal_to_the_network_address_is_rejected() {
    let mut ipam = ipam();
    let err = ipam
        .request_pool(PoolRequest {
            gateway: Some(ip("10.1.0.0")),
            ..subnet_req("front", "10.1.0.0/16")
        })
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "gateway 10.1.0.0 is the network address of subnet 10.1.0.0/16; choose another --gateway"
    );
}

#[test]
fn gateway_equal_to_the_broadcast_address_is_rejected() {
    let mut ipam = ipam();
    let err = ipam
        .request_pool(PoolRequest {
            gateway: Some(ip("10.1.255.255")),
            ..subnet_req("front", "10.1.0.0/16")
        })
        .unwrap_err();
    assert!(
        matches!(
            err,
            IpamError::GatewayReserved {
                what: "broadcast address",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn v6_gateway_equal_to_the_anycast_address_is_rejected() {
    let mut ipam = ipam();
    let err = ipam
        .request_pool(PoolRequest {
            gateway: Some(ip("fd00:9::")),
            ..subnet_req("front", "fd00:9::/64")
        })
        .unwrap_err();
    assert!(matches!(err, IpamError::GatewayReserved { .. }), "{err}");
}

#[test]
fn v6_gateway_may_be_the_last_address() {
    let mut ipam = ipam();
    let id = ipam
        .request_pool(PoolRequest {
            gateway: Some(ip("fd00:9::ffff:ffff:ffff:ffff")),
            ..subnet_req("front", "fd00:9::/64")
        })
        .unwrap();
    assert_eq!(ipam.request_address(&id, None).unwrap(), ip("fd00:9::1"));
}

#[test]
fn gateway_without_a_subnet_is_rejected() {
    let mut ipam = ipam();
    let err = ipam
        .request_pool(PoolRequest {
            gateway: Some(ip("172.17.0.1")),
            ..default_req("front")
        })
        .unwrap_err();
    assert_eq!(
        err,
        IpamError::NeedsSubnet {
            option: "--gateway"
        }
    );
}

// ---- ip range and aux addresses ----------------------------------------------

#[test]
fn ip_range_is_kept_on_the_pool() {
    let mut ipam = ipam();
    let id = ipam
        .request_pool(PoolRequest {
            ip_range: Some(net("10.1.2.0/24")),
            ..subnet_req("front", "10.1.0.0/16")
        })
        .unwrap();
    assert_eq!(ipam.pool(&id).unwrap().ip_range(), Some(net("10.1.2.0/24")));
    assert_eq!(ipam.pool(&id).unwrap().dynamic_range(), net("10.1.2.0/24"));
}

#[test]
fn ip_range_outside_the_subnet_is_rejected() {
    let mut ipam = ipam();
    let err = ipam
        .request_pool(PoolRequest {
            ip_range: Some(net("10.2.0.0/24")),
            ..subnet_req("front", "10.1.0.0/16")
        })
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "ip range 10.2.0.0/24 is outside subnet 10.1.0.0/16 of network 'front'; choose an --ip-range inside it"
    );
}

#[test]
fn ip_range_larger_than_the_subnet_is_rejected() {
    let mut ipam = ipam();
    let err = ipam
        .request_pool(PoolRequest {
            ip_range: Some(net("10.0.0.0/8")),
            ..subnet_req("front", "10.1.0.0/16")
        })
        .unwrap_err();
    assert!(matches!(err, IpamError::RangeOutsideSubnet { .. }), "{err}");
}

#[test]
fn ip_range_with_host_bits_is_rejected() {
    let mut ipam = ipam();
    let err = ipam
        .request_pool(PoolRequest {
            ip_range: Some(net("10.1.2.7/24")),
            ..subnet_req("front", "10.1.0.0/16")
        })
        .unwrap_err();
    assert!(err.to_string().ends_with("write 10.1.2.0/24"), "{err}");
}

#[test]
fn ip_range_without_a_subnet_is_rejected() {
    let mut ipam = ipam();
    let err = ipam
        .request_pool(PoolRequest {
            ip_range: Some(net("172.17.1.0/24")),
            ..default_req("front")
        })
        .unwrap_err();
    assert_eq!(
        err,
        IpamError::NeedsSubnet {
            option: "--ip-range"
        }
    );
}

fn with_aux(subnet: &str, aux: &[(&str, &str)]) -> PoolRequest {
    PoolRequest {
        aux_addresses: aux
            .iter()
            .map(|(n, a)| (n.to_string(), ip(a)))
            .collect::<BTreeMap<_, _>>(),
        ..subnet_req("front", subnet)
    }
}

#[test]
fn aux_addresses_are_kept_and_reserved() {
    let mut ipam = ipam();
    let id = ipam
        .request_pool(with_aux(
            "10.1.0.0/24",
            &[("router", "10.1.0.2"), ("nas", "10.1.0.3")],
        ))
        .unwrap();
    let pool = ipam.pool(&id).unwrap();
    assert_eq!(pool.aux_addresses().get("router"), Some(&ip("10.1.0.2")));
    assert!(pool.is_reserved(ip("10.1.0.3")));
    assert!(!pool.is_allocated(ip("10.1.0.3")));
    assert_eq!(pool.allocated_count(), 0);
}

#[test]
fn aux_address_outside_the_subnet_is_rejected() {
    let mut ipam = ipam();
    let err = ipam
        .request_pool(with_aux("10.1.0.0/24", &[("router", "10.1.1.2")]))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "auxiliary address 'router' (10.1.1.2) is outside subnet 10.1.0.0/24 of network 'front'; choose an --aux-address inside it"
    );
}

#[test]
fn aux_address_equal_to_the_gateway_is_rejected() {
    let mut ipam = ipam();
    let err = ipam
        .request_pool(with_aux("10.1.0.0/24", &[("router", "10.1.0.1")]))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "auxiliary address 'router' (10.1.0.1) is the gateway of network 'front'; choose another --aux-address"
    );
}

#[test]
fn aux_address_equal_to_the_network_or_broadcast_address_is_rejected() {
    let mut ipam = ipam();
    for addr in ["10.1.0.0", "10.1.0.255"] {
        let err = ipam
            .request_pool(with_aux("10.1.0.0/24", &[("x", addr)]))
            .unwrap_err();
        assert!(matches!(err, IpamError::AuxReserved { .. }), "{err}");
    }
}

#[test]
fn two_aux_names_for_one_address_are_rejected() {
    let mut ipam = ipam();
    let err = ipam
        .request_pool(with_aux(
            "10.1.0.0/24",
            &[("a", "10.1.0.9"), ("b", "10.1.0.9")],
        ))
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("'b' (10.1.0.9) is already reserved as auxiliary address 'a'"),
        "{err}"
    );
}

#[test]
fn aux_address_without_a_subnet_is_rejected() {
    let mut ipam = ipam();
    let mut req = default_req("front");
    req.aux_addresses.insert("router".into(), ip("172.17.0.5"));
    assert_eq!(
        ipam.request_pool(req).unwrap_err(),
        IpamError::NeedsSubnet {
            option: "--aux-address"
        }
    );
}
