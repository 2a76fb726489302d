//! The controller's rules, one behaviour per test.

use super::model::*;
use super::*;
use crate::driver::Attachment;
use crate::port::PortBinding;
use crate::store::{FileStore, MemoryStore};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::net::{IpAddr, Ipv4Addr};

fn open(store: MemoryStore) -> Controller {
    Controller::open(
        Box::new(store),
        DriverRegistry::builtin(),
        Box::new(ChaCha8Rng::seed_from_u64(7)),
        ControllerOptions::default(),
    )
    .expect("open")
}

fn fresh() -> Controller {
    open(MemoryStore::new())
}

fn net(name: &str) -> NetworkSpec {
    NetworkSpec {
        name: name.into(),
        ..Default::default()
    }
}

fn net_with_subnet(name: &str, subnet: &str) -> NetworkSpec {
    NetworkSpec {
        name: name.into(),
        subnets: vec![subnet.parse().unwrap()],
        ..Default::default()
    }
}

fn private(name: &str) -> SandboxSpec {
    SandboxSpec {
        name: name.into(),
        hostname: String::new(),
        mode: NetnsMode::Private,
        labels: Default::default(),
    }
}

fn with_mode(name: &str, mode: NetnsMode) -> SandboxSpec {
    SandboxSpec {
        mode,
        ..private(name)
    }
}

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

#[test]
fn first_start_creates_docker_predefined_networks() {
    let c = fresh();
    let names: Vec<&str> = c.networks().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["bridge", "host", "none"]);
    let bridge = c.network("bridge").unwrap();
    assert_eq!(bridge.driver, "bridge");
    let v4 = bridge.ipv4.as_ref().unwrap();
    assert_eq!(v4.subnet.to_string(), "172.17.0.0/16");
    assert_eq!(v4.gateway.to_string(), "172.17.0.1");
    assert!(!bridge.dns_names, "the default bridge has no DNS names");
    assert!(bridge.predefined);
    assert_eq!(c.network("host").unwrap().driver, "host");
    assert_eq!(c.network("none").unwrap().driver, "null");
    assert!(c.network("host").unwrap().ipv4.is_none());
}

#[test]
fn user_networks_take_the_next_default_pool() {
    let mut c = fresh();
    let a = c.create_network(net("a")).unwrap();
    let b = c.create_network(net("b")).unwrap();
    assert_eq!(a.ipv4.unwrap().subnet.to_string(), "172.18.0.0/16");
    assert_eq!(b.ipv4.unwrap().subnet.to_string(), "172.19.0.0/16");
    assert!(a.dns_names);
    assert_ne!(
        c.segment_of(&a.id),
        c.segment_of(&b.id),
        "every network is its own segment"
    );
}

#[test]
fn network_names_are_unique() {
    let mut c = fresh();
    c.create_network(net("front")).unwrap();
    let err = c.create_network(net("front")).unwrap_err();
    assert!(
        matches!(err, ControllerError::NetworkExists { .. }),
        "{err}"
    );
    assert!(err
        .to_string()
        .contains("network with name front already exists"));
    assert!(matches!(
        c.create_network(net("bridge")).unwrap_err(),
        ControllerError::NetworkExists { .. }
    ));
}

#[test]
fn invalid_network_names_are_refused() {
    let mut c = fresh();
    assert!(matches!(
        c.create_network(net("")).unwrap_err(),
        ControllerError::InvalidName { .. }
    ));
    assert!(matches!(
        c.create_network(net("a b")).unwrap_err(),
        ControllerError::InvalidName { .. }
    ));
}

#[test]
fn unknown_and_planned_drivers_are_refused_with_the_choices() {
    let mut c = fresh();
    let err = c
        .create_network(NetworkSpec {
            driver: "bogus".into(),
            ..net("x")
        })
        .unwrap_err();
    assert!(err.to_string().contains("bridge"), "{err}");
    let err = c
        .create_network(NetworkSpec {
            driver: "overlay".into(),
            ..net("x")
        })
        .unwrap_err();
    assert!(
        matches!(err, ControllerError::DriverNotYetAvailable { .. }),
        "{err}"
    );
}

#[test]
fn host_and_null_networks_cannot_be_created_again() {
    let mut c = fresh();
    for d in ["host", "null"] {
        let err = c
            .create_network(NetworkSpec {
                driver: d.into(),
                ..net("x")
            })
            .unwrap_err();
        assert!(
            matches!(err, ControllerError::DriverNotCreatable { .. }),
            "{err}"
        );
    }
}

#[test]
fn overlapping_subnet_is_refused_naming_the_other_network() {
    let mut c = fresh();
    c.create_network(net_with_subnet("front", "10.1.0.0/16"))
        .unwrap();
    let err = c
        .create_network(net_with_subnet("back", "10.1.0.0/24"))
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("front") && msg.contains("10.1.0.0/16"),
        "{msg}"
    );
    assert!(c.network("back").is_err(), "nothing was created");
}

#[test]
fn gateway_range_and_aux_must_lie_in_a_subnet() {
    let mut c = fresh();
    let err = c
        .create_network(NetworkSpec {
            gateways: vec!["10.9.0.1".parse().unwrap()],
            ..net("x")
        })
        .unwrap_err();
    assert!(err.to_string().contains("matching --subnet"), "{err}");
    let err = c
        .create_network(NetworkSpec {
            gateways: vec!["10.9.0.1".parse().unwrap()],
            ..net_with_subnet("x", "10.1.0.0/16")
        })
        .unwrap_err();
    assert!(
        err.to_string().contains("not inside --subnet 10.1.0.0/16"),
        "{err}"
    );
    let n = c
        .create_network(NetworkSpec {
            gateways: vec!["10.1.0.254".parse().unwrap()],
            ip_ranges: vec!["10.1.1.0/24".parse().unwrap()],
            aux_addresses: [("router".to_string(), "10.1.0.2".parse().unwrap())].into(),
            ..net_with_subnet("x", "10.1.0.0/16")
        })
        .unwrap();
    let v4 = n.ipv4.unwrap();
    assert_eq!(v4.gateway.to_string(), "10.1.0.254");
    assert_eq!(v4.ip_range.unwrap().to_string(), "10.1.1.0/24");
    assert_eq!(v4.aux_addresses["router"].to_string(), "10.1.0.2");
}

#[test]
fn ipv6_subnet_needs_the_ipv6_flag() {
    let mut c = fresh();
    let err = c
        .create_network(net_with_subnet("v6", "fd00:1::/64"))
        .unwrap_err();
    assert!(err.to_string().contains("--ipv6"), "{err}");
    let n = c
        .create_network(NetworkSpec {
            ipv6: true,
            ..net("v6")
        })
        .unwrap();
    let v6 = n.ipv6.unwrap();
    assert_eq!(v6.subnet.prefix(), 64);
    assert!(
        v6.subnet.to_string().starts_with("fd"),
        "a ULA subnet: {}",
        v6.subnet
    );
}

#[test]
fn unknown_driver_options_are_refused_and_mtu_is_parsed() {
    let mut c = fresh();
    let err = c
        .create_network(NetworkSpec {
            options: [("colour".to_string(), "blue".to_string())].into(),
            ..net("x")
        })
        .unwrap_err();
    assert!(
        matches!(err, ControllerError::InvalidOption { .. }),
        "{err}"
    );
    let err = c
        .create_network(NetworkSpec {
            options: [("mtu".to_string(), "9".to_string())].into(),
            ..net("x")
        })
        .unwrap_err();
    assert!(err.to_string().contains("between 68 and 65521"), "{err}");
    let n = c
        .create_network(NetworkSpec {
            options: [(
                "com.docker.network.driver.mtu".to_string(),
                "9000".to_string(),
            )]
            .into(),
            ..net("x")
        })
        .unwrap();
    assert_eq!(n.mtu, 9000);
}

#[test]
fn list_filters_by_driver_name_and_type() {
    let mut c = fresh();
    c.create_network(net("front")).unwrap();
    c.create_network(net("backend")).unwrap();
    let mut f = NetworkFilter::default();
    f.add("driver=bridge").unwrap();
    let names: Vec<_> = c.list_networks(&f).iter().map(|n| n.name.clone()).collect();
    assert_eq!(names, ["backend", "bridge", "front"]);
    let mut f = NetworkFilter::default();
    f.add("name=back").unwrap();
    assert_eq!(c.list_networks(&f).len(), 1);
    let mut f = NetworkFilter::default();
    f.add("type=custom").unwrap();
    assert_eq!(c.list_networks(&f).len(), 2);
    assert!(NetworkFilter::default().add("colour=red").is_err());
}

#[test]
fn networks_are_found_by_id_prefix() {
    let mut c = fresh();
    let n = c.create_network(net("front")).unwrap();
    assert_eq!(c.network(&n.id[..12]).unwrap().name, "front");
    assert!(matches!(
        c.network("nope").unwrap_err(),
        ControllerError::NoSuchNetwork { .. }
    ));
}

#[test]
fn predefined_networks_cannot_be_removed() {
    let mut c = fresh();
    for name in ["bridge", "host", "none"] {
        let err = c.remove_network(name).unwrap_err();
        assert!(
            matches!(err, ControllerError::PredefinedNetwork { .. }),
            "{err}"
        );
    }
}

#[test]
fn removing_a_network_with_endpoints_is_refused_naming_them() {
    let mut c = fresh();
    c.create_network(net("front")).unwrap();
    c.create_sandbox(private("web")).unwrap();
    c.create_sandbox(private("api")).unwrap();
    c.connect("front", "web", EndpointSpec::default()).unwrap();
    c.connect("front", "api", EndpointSpec::default()).unwrap();
    let err = c.remove_network("front").unwrap_err();
    assert!(err.to_string().contains("api, web"), "{err}");
    c.disconnect("front", "web", false).unwrap();
    c.disconnect("front", "api", false).unwrap();
    c.remove_network("front").unwrap();
    // Its subnet is free again.
    let again = c.create_network(net("again")).unwrap();
    assert_eq!(again.ipv4.unwrap().subnet.to_string(), "172.18.0.0/16");
}

#[test]
fn connect_allocates_address_mac_and_interface() {
    let mut c = fresh();
    c.create_network(net("front")).unwrap();
    c.create_network(net("back")).unwrap();
    c.create_sandbox(private("web")).unwrap();
    let e0 = c.connect("front", "web", EndpointSpec::default()).unwrap();
    assert_eq!(e0.ipv4.unwrap().to_string(), "172.18.0.2/16");
    assert_eq!(e0.mac.unwrap().to_string(), "02:42:ac:12:00:02");
    assert_eq!(e0.ifname, "eth0");
    assert!(e0.default_route);
    let e1 = c.connect("back", "web", EndpointSpec::default()).unwrap();
    assert_eq!(e1.ifname, "eth1");
    assert!(!e1.default_route, "only one default route per sandbox");
    assert_eq!(c.endpoints_of_sandbox(&e0.sandbox_id).len(), 2);
}

#[test]
fn static_ip_is_honoured_and_checked() {
    let mut c = fresh();
    c.create_network(net_with_subnet("front", "10.1.0.0/24"))
        .unwrap();
    for n in ["a", "b", "g", "o", "t"] {
        c.create_sandbox(private(n)).unwrap();
    }
    let e = c
        .connect(
            "front",
            "a",
            EndpointSpec {
                ipv4: Some(ip("10.1.0.50")),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(e.ipv4.unwrap().ip(), ip("10.1.0.50"));
    assert!(e.static_ip);
    let taken = c.connect(
        "front",
        "b",
        EndpointSpec {
            ipv4: Some(ip("10.1.0.50")),
            ..Default::default()
        },
    );
    assert!(taken.unwrap_err().to_string().contains("in use"));
    let gw = c.connect(
        "front",
        "g",
        EndpointSpec {
            ipv4: Some(ip("10.1.0.1")),
            ..Default::default()
        },
    );
    assert!(gw.unwrap_err().to_string().contains("gateway"));
    let outside = c.connect(
        "front",
        "o",
        EndpointSpec {
            ipv4: Some(ip("10.2.0.5")),
            ..Default::default()
        },
    );
    assert!(outside.unwrap_err().to_string().contains("outside"));
    // Failed connects left nothing behind.
    assert!(c
        .endpoints_of_sandbox(&c.sandbox("b").unwrap().id.clone())
        .is_empty());
    let e = c.connect("front", "t", EndpointSpec::default()).unwrap();
    assert_ne!(e.ipv4.unwrap().ip(), ip("10.1.0.50"));
}

#[test]
fn connecting_twice_to_the_same_network_is_refused() {
    let mut c = fresh();
    c.create_network(net("front")).unwrap();
    c.create_sandbox(private("web")).unwrap();
    c.connect("front", "web", EndpointSpec::default()).unwrap();
    let err = c
        .connect("front", "web", EndpointSpec::default())
        .unwrap_err();
    assert!(
        matches!(err, ControllerError::AlreadyConnected { .. }),
        "{err}"
    );
}

#[test]
fn default_bridge_refuses_static_ip_and_aliases() {
    let mut c = fresh();
    c.create_sandbox(private("web")).unwrap();
    let err = c
        .connect(
            "bridge",
            "web",
            EndpointSpec {
                ipv4: Some(ip("172.17.0.9")),
                ..Default::default()
            },
        )
        .unwrap_err();
    assert!(
        matches!(err, ControllerError::StaticIpNotAllowed { .. }),
        "{err}"
    );
    let err = c
        .connect(
            "bridge",
            "web",
            EndpointSpec {
                aliases: vec!["x".into()],
                ..Default::default()
            },
        )
        .unwrap_err();
    assert!(
        matches!(err, ControllerError::AliasNotAllowed { .. }),
        "{err}"
    );
    let e = c.connect("bridge", "web", EndpointSpec::default()).unwrap();
    assert_eq!(e.ipv4.unwrap().to_string(), "172.17.0.2/16");
}

#[test]
fn aliases_are_validated_and_kept() {
    let mut c = fresh();
    c.create_network(net("front")).unwrap();
    c.create_sandbox(private("web")).unwrap();
    let err = c
        .connect(
            "front",
            "web",
            EndpointSpec {
                aliases: vec!["bad alias".into()],
                ..Default::default()
            },
        )
        .unwrap_err();
    assert!(
        matches!(err, ControllerError::InvalidName { what: "alias", .. }),
        "{err}"
    );
    let e = c
        .connect(
            "front",
            "web",
            EndpointSpec {
                aliases: vec!["www".into()],
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(e.aliases, ["www"]);
}

#[test]
fn none_sandbox_can_never_join_another_network() {
    let mut c = fresh();
    c.create_network(net("front")).unwrap();
    let s = c
        .create_sandbox(with_mode("lonely", NetnsMode::None))
        .unwrap();
    let eps = c.endpoints_of_sandbox(&s.id);
    assert_eq!(eps.len(), 1);
    assert_eq!(c.network_by_id(&eps[0].network_id).unwrap().name, "none");
    assert!(
        eps[0].ifname.is_empty() && eps[0].ipv4.is_none(),
        "loopback only"
    );
    let err = c
        .connect("front", "lonely", EndpointSpec::default())
        .unwrap_err();
    assert!(
        matches!(err, ControllerError::ExclusiveNetwork { .. }),
        "{err}"
    );
    let err = c
        .connect("bridge", "lonely", EndpointSpec::default())
        .unwrap_err();
    assert!(
        matches!(err, ControllerError::ExclusiveNetwork { .. }),
        "{err}"
    );
    let err = c.disconnect("none", "lonely", false).unwrap_err();
    assert!(
        matches!(err, ControllerError::CannotLeaveExclusive { .. }),
        "{err}"
    );
}

#[test]
fn private_sandbox_cannot_join_host_or_none() {
    let mut c = fresh();
    c.create_sandbox(private("web")).unwrap();
    for n in ["host", "none"] {
        let err = c.connect(n, "web", EndpointSpec::default()).unwrap_err();
        assert!(
            matches!(err, ControllerError::ExclusiveNetwork { .. }),
            "{err}"
        );
    }
}

#[test]
fn host_sandbox_has_no_interface_and_no_address() {
    let mut c = fresh();
    let s = c.create_sandbox(with_mode("h", NetnsMode::Host)).unwrap();
    let eps = c.endpoints_of_sandbox(&s.id);
    assert_eq!(eps.len(), 1);
    assert!(eps[0].ipv4.is_none() && eps[0].mac.is_none());
    assert!(
        c.plan_port(&eps[0].id).is_none(),
        "no data-plane port for host"
    );
    assert!(c.connect("bridge", "h", EndpointSpec::default()).is_err());
}

#[test]
fn container_mode_shares_the_owner_and_cannot_connect() {
    let mut c = fresh();
    c.create_network(net("front")).unwrap();
    let owner = c.create_sandbox(private("app")).unwrap();
    c.connect("front", "app", EndpointSpec::default()).unwrap();
    let side = c
        .create_sandbox(with_mode("sidecar", NetnsMode::Container("app".into())))
        .unwrap();
    assert_eq!(side.mode, NetnsMode::Container(owner.id.clone()));
    // A chain resolves to the real owner.
    let side2 = c
        .create_sandbox(with_mode(
            "sidecar2",
            NetnsMode::Container("sidecar".into()),
        ))
        .unwrap();
    assert_eq!(side2.mode, NetnsMode::Container(owner.id.clone()));
    let err = c
        .connect("front", "sidecar", EndpointSpec::default())
        .unwrap_err();
    assert!(
        matches!(err, ControllerError::SharedNamespace { .. }),
        "{err}"
    );
    let err = c.remove_sandbox("app", false).unwrap_err();
    assert!(err.to_string().contains("sidecar"), "{err}");
}

#[test]
fn disconnect_releases_the_address() {
    let mut c = fresh();
    c.create_network(net_with_subnet("front", "10.1.0.0/24"))
        .unwrap();
    c.create_sandbox(private("web")).unwrap();
    let e = c.connect("front", "web", EndpointSpec::default()).unwrap();
    let pool = c.network("front").unwrap().ipv4.clone().unwrap().pool;
    assert!(c
        .ipam()
        .pool(&pool)
        .unwrap()
        .is_allocated(IpAddr::V4(e.ipv4.unwrap().ip())));
    c.disconnect("front", "web", false).unwrap();
    assert!(!c
        .ipam()
        .pool(&pool)
        .unwrap()
        .is_allocated(IpAddr::V4(e.ipv4.unwrap().ip())));
    let err = c.disconnect("front", "web", false).unwrap_err();
    assert!(matches!(err, ControllerError::NotConnected { .. }), "{err}");
}

#[test]
fn forced_disconnect_cleans_up_an_endpoint_by_name() {
    let mut c = fresh();
    c.create_network(net("front")).unwrap();
    c.create_sandbox(private("web")).unwrap();
    c.connect("front", "web", EndpointSpec::default()).unwrap();
    c.rename_sandbox("web", "web2").unwrap();
    // "web" no longer exists as a container; without force that is an error.
    assert!(matches!(
        c.disconnect("front", "web", false).unwrap_err(),
        ControllerError::NoSuchSandbox { .. }
    ));
    c.disconnect("front", "web2", true).unwrap();
    assert!(c
        .endpoints_of_network(&c.network("front").unwrap().id.clone())
        .is_empty());
}

#[test]
fn default_route_moves_to_the_next_endpoint_and_skips_internal_networks() {
    let mut c = fresh();
    c.create_network(net("a")).unwrap();
    c.create_network(NetworkSpec {
        internal: true,
        ..net("inner")
    })
    .unwrap();
    c.create_network(net("b")).unwrap();
    c.create_sandbox(private("web")).unwrap();
    let ea = c.connect("a", "web", EndpointSpec::default()).unwrap();
    let ei = c.connect("inner", "web", EndpointSpec::default()).unwrap();
    let eb = c.connect("b", "web", EndpointSpec::default()).unwrap();
    assert!(ea.default_route && !ei.default_route && !eb.default_route);
    c.take_changes();
    c.disconnect("a", "web", false).unwrap();
    assert!(c.endpoint(&eb.id).unwrap().default_route);
    assert!(!c.endpoint(&ei.id).unwrap().default_route);
    let changes = c.take_changes();
    assert!(
        changes.contains(&Change::EndpointUpdated {
            endpoint_id: eb.id.clone()
        }),
        "{changes:?}"
    );
}

#[test]
fn interface_names_reuse_the_lowest_free_index() {
    let mut c = fresh();
    for n in ["a", "b", "d"] {
        c.create_network(net(n)).unwrap();
    }
    c.create_sandbox(private("web")).unwrap();
    c.connect("a", "web", EndpointSpec::default()).unwrap();
    c.connect("b", "web", EndpointSpec::default()).unwrap();
    c.disconnect("a", "web", false).unwrap();
    assert_eq!(
        c.connect("d", "web", EndpointSpec::default())
            .unwrap()
            .ifname,
        "eth0"
    );
}

#[test]
fn removing_a_sandbox_releases_all_its_endpoints() {
    let mut c = fresh();
    c.create_network(net("a")).unwrap();
    c.create_network(net("b")).unwrap();
    c.create_sandbox(private("web")).unwrap();
    c.connect("a", "web", EndpointSpec::default()).unwrap();
    c.connect("b", "web", EndpointSpec::default()).unwrap();
    c.remove_sandbox("web", false).unwrap();
    assert_eq!(c.endpoints().count(), 0);
    c.remove_network("a").unwrap();
    assert!(matches!(
        c.sandbox("web").unwrap_err(),
        ControllerError::NoSuchSandbox { .. }
    ));
}

#[test]
fn sandbox_names_are_unique_and_rename_follows_endpoints() {
    let mut c = fresh();
    c.create_network(net("front")).unwrap();
    c.create_sandbox(private("web")).unwrap();
    let err = c.create_sandbox(private("web")).unwrap_err();
    assert!(
        matches!(err, ControllerError::SandboxExists { .. }),
        "{err}"
    );
    let e = c.connect("front", "web", EndpointSpec::default()).unwrap();
    c.create_sandbox(private("db")).unwrap();
    assert!(matches!(
        c.rename_sandbox("web", "db").unwrap_err(),
        ControllerError::SandboxExists { .. }
    ));
    let s = c.rename_sandbox("web", "www").unwrap();
    assert_eq!(
        s.hostname, "web",
        "the hostname inside does not change, as with docker rename"
    );
    assert_eq!(c.endpoint(&e.id).unwrap().name, "www");
}

#[test]
fn port_plan_binds_the_endpoint_to_its_network_segment() {
    let mut c = fresh();
    let n = c.create_network(net("front")).unwrap();
    c.create_sandbox(private("web")).unwrap();
    c.take_changes();
    let e = c.connect("front", "web", EndpointSpec::default()).unwrap();
    assert_eq!(
        c.take_changes(),
        vec![Change::EndpointJoined {
            endpoint_id: e.id.clone()
        }]
    );
    let plan = c.plan_port(&e.id).unwrap();
    assert_eq!(plan.port.segment, c.segment_of(&n.id).unwrap());
    assert_eq!(
        plan.port.binding,
        PortBinding::Endpoint {
            mac: e.mac.unwrap(),
            ipv4: Some(e.ipv4.unwrap().ip()),
            ipv6: None
        }
    );
    let Attachment::SandboxInterface(iface) = plan.attachment;
    assert_eq!(iface.gateway4, Some(ip("172.18.0.1")));
    assert!(iface.default_route);
    assert_eq!(iface.mtu, 1500);
}

#[test]
fn reopening_the_store_restores_everything() {
    let store = MemoryStore::new();
    let (nets, eps, sbs, pool_ips) = {
        let mut c = open(store.clone());
        c.create_network(NetworkSpec {
            ipv6: true,
            ..net_with_subnet("front", "10.1.0.0/24")
        })
        .unwrap();
        c.create_sandbox(private("web")).unwrap();
        c.create_sandbox(private("api")).unwrap();
        c.create_sandbox(with_mode("off", NetnsMode::None)).unwrap();
        c.connect(
            "front",
            "web",
            EndpointSpec {
                aliases: vec!["www".into()],
                ..Default::default()
            },
        )
        .unwrap();
        c.connect("front", "api", EndpointSpec::default()).unwrap();
        c.connect("bridge", "api", EndpointSpec::default()).unwrap();
        let pools: Vec<Vec<IpAddr>> = c
            .ipam()
            .pools()
            .map(|(_, p)| p.allocated().collect())
            .collect();
        (
            c.networks().cloned().collect::<Vec<_>>(),
            c.endpoints().cloned().collect::<Vec<_>>(),
            c.sandboxes().cloned().collect::<Vec<_>>(),
            pools,
        )
    };
    let mut c = open(store);
    assert_eq!(c.networks().cloned().collect::<Vec<_>>(), nets);
    assert_eq!(c.endpoints().cloned().collect::<Vec<_>>(), eps);
    assert_eq!(c.sandboxes().cloned().collect::<Vec<_>>(), sbs);
    let pools: Vec<Vec<IpAddr>> = c
        .ipam()
        .pools()
        .map(|(_, p)| p.allocated().collect())
        .collect();
    assert_eq!(pools, pool_ips);
    // New allocations never collide with restored ones.
    c.create_sandbox(private("new")).unwrap();
    let e = c.connect("front", "new", EndpointSpec::default()).unwrap();
    assert!(eps.iter().all(|old| old.ipv4 != e.ipv4));
}

#[test]
fn reopening_a_file_store_after_a_crash_restores_everything() {
    let dir = tempfile::tempdir().unwrap();
    let open_file = |dir: &std::path::Path| {
        Controller::open(
            Box::new(FileStore::open(dir).unwrap()),
            DriverRegistry::builtin(),
            Box::new(ChaCha8Rng::seed_from_u64(1)),
            ControllerOptions::default(),
        )
        .unwrap()
    };
    let before = {
        let mut c = open_file(dir.path());
        c.create_network(net("front")).unwrap();
        c.create_sandbox(private("web")).unwrap();
        c.connect("front", "web", EndpointSpec::default()).unwrap();
        let eps: Vec<_> = c.endpoints().cloned().collect();
        // Simulate a crash: no orderly shutdown, the process just vanishes.
        std::mem::forget(c);
        eps
    };
    // The "dead" process still holds the lock in this test process, so read
    // its files from a copy, as a restarted machine would find them.
    let dir2 = tempfile::tempdir().unwrap();
    std::fs::copy(
        dir.path().join("state.json"),
        dir2.path().join("state.json"),
    )
    .unwrap();
    let c = open_file(dir2.path());
    assert_eq!(c.endpoints().cloned().collect::<Vec<_>>(), before);
    assert_eq!(
        c.network("front")
            .unwrap()
            .ipv4
            .as_ref()
            .unwrap()
            .subnet
            .to_string(),
        "172.18.0.0/16"
    );
}

#[test]
fn failed_commit_leaves_no_trace() {
    let store = MemoryStore::new();
    let mut c = open(store.clone());
    c.take_changes();
    store.fail_next_commit();
    assert!(matches!(
        c.create_network(net("front")).unwrap_err(),
        ControllerError::Store(_)
    ));
    assert!(c.network("front").is_err());
    assert!(
        c.take_changes().is_empty(),
        "no change is reported for a failed operation"
    );
    let n = c.create_network(net("front")).unwrap();
    assert_eq!(
        n.ipv4.unwrap().subnet.to_string(),
        "172.18.0.0/16",
        "the pool was not leaked"
    );
}

#[test]
fn failed_validation_midway_rolls_back_earlier_steps() {
    let mut c = fresh();
    // IPv4 succeeds from the default pool, then the IPv6 subnet is refused
    // (host bits set): the IPv4 pool must not stay allocated.
    let err = c
        .create_network(NetworkSpec {
            ipv6: true,
            subnets: vec!["fd00:1::1/64".parse().unwrap()],
            ..net("x")
        })
        .unwrap_err();
    assert!(matches!(err, ControllerError::Ipam(_)), "{err}");
    assert_eq!(
        c.create_network(net("y"))
            .unwrap()
            .ipv4
            .unwrap()
            .subnet
            .to_string(),
        "172.18.0.0/16"
    );
}

#[test]
fn default_pools_replace_only_the_families_given() {
    let v6_only = ControllerOptions {
        v6_pools: Some(vec!["base=fd42:1::/48,size=64".parse().unwrap()]),
        ..Default::default()
    };
    let mut c = Controller::open(
        Box::new(MemoryStore::new()),
        DriverRegistry::builtin(),
        Box::new(ChaCha8Rng::seed_from_u64(3)),
        v6_only,
    )
    .unwrap();
    let n = c
        .create_network(NetworkSpec {
            ipv6: true,
            ..net("x")
        })
        .unwrap();
    assert_eq!(
        n.ipv4.unwrap().subnet.to_string(),
        "172.18.0.0/16",
        "IPv4 keeps Docker's defaults"
    );
    assert!(
        n.ipv6.unwrap().subnet.to_string().starts_with("fd42:1:"),
        "IPv6 from the given pool"
    );
    let bad = ControllerOptions {
        v4_pools: Some(vec![]),
        ..Default::default()
    };
    let err = Controller::open(
        Box::new(MemoryStore::new()),
        DriverRegistry::builtin(),
        Box::new(ChaCha8Rng::seed_from_u64(3)),
        bad,
    );
    assert!(err.is_err() || err.unwrap().create_network(net("y")).is_err());
}
