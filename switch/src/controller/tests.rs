//! The controller's rules, one behaviour per test.

use super::model::*;
use super::*;
use crate::driver::BackendPlan;
use crate::mac::MacAddr;
use crate::port::PortBinding;
use crate::store::{FileStore, MemoryStore};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeSet;
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

/// Asserts that an operation failed with exactly the message the user reads.
#[track_caller]
fn says<T: std::fmt::Debug>(result: Result<T, ControllerError>, message: &str) {
    assert_eq!(result.unwrap_err().to_string(), message);
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
    says(
        c.create_network(net("front")),
        "network with name front already exists; choose another name or remove it first \
         (switchyard network rm front)",
    );
    says(
        c.create_network(net("bridge")),
        "network with name bridge already exists; choose another name or remove it first \
         (switchyard network rm bridge)",
    );
}

#[test]
fn invalid_network_names_are_refused() {
    let mut c = fresh();
    says(
        c.create_network(net("")),
        "invalid network name \"\": it is empty; give a name",
    );
    says(
        c.create_network(net("a b")),
        "invalid network name \"a b\": only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed",
    );
}

#[test]
fn unknown_and_planned_drivers_are_refused_with_the_choices() {
    let mut c = fresh();
    says(
        c.create_network(NetworkSpec {
            driver: "bogus".into(),
            ..net("x")
        }),
        "unknown driver \"bogus\"; choose one of: bridge, host, null",
    );
    says(
        c.create_network(NetworkSpec {
            driver: "overlay".into(),
            ..net("x")
        }),
        "driver \"overlay\" is not available yet in this version of switchyard; use -d bridge",
    );
}

#[test]
fn host_and_null_networks_cannot_be_created_again() {
    let mut c = fresh();
    for d in ["host", "null"] {
        says(
            c.create_network(NetworkSpec {
                driver: d.into(),
                ..net("x")
            }),
            &format!(
                "only one instance of the \"{d}\" network is allowed; it already exists as a \
                 predefined network"
            ),
        );
    }
}

#[test]
fn overlapping_subnet_is_refused_naming_the_other_network() {
    let mut c = fresh();
    c.create_network(net_with_subnet("front", "10.1.0.0/16"))
        .unwrap();
    says(
        c.create_network(net_with_subnet("back", "10.1.0.0/24")),
        "subnet 10.1.0.0/24 overlaps network 'front' (10.1.0.0/16); choose another --subnet",
    );
    assert!(c.network("back").is_err(), "nothing was created");
}

#[test]
fn gateway_range_and_aux_must_lie_in_a_subnet() {
    let mut c = fresh();
    says(
        c.create_network(NetworkSpec {
            gateways: vec!["10.9.0.1".parse().unwrap()],
            ..net("x")
        }),
        "--gateway 10.9.0.1 needs a matching --subnet; every --gateway, --ip-range and \
         --aux-address must lie in one",
    );
    says(
        c.create_network(NetworkSpec {
            gateways: vec!["10.9.0.1".parse().unwrap()],
            ..net_with_subnet("x", "10.1.0.0/16")
        }),
        "--gateway 10.9.0.1 is not inside --subnet 10.1.0.0/16; give one inside it",
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
    says(
        c.create_network(net_with_subnet("v6", "fd00:1::/64")),
        "an IPv6 --subnet needs --ipv6; add --ipv6 or drop the IPv6 subnet",
    );
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
    says(
        c.create_network(NetworkSpec {
            options: [("colour".to_string(), "blue".to_string())].into(),
            ..net("x")
        }),
        "invalid option colour=blue: the bridge driver knows com.docker.network.driver.mtu \
         (alias mtu) and accepts Docker's com.docker.network.bridge.* options; remove -o colour",
    );
    says(
        c.create_network(NetworkSpec {
            options: [("mtu".to_string(), "9".to_string())].into(),
            ..net("x")
        }),
        "invalid option com.docker.network.driver.mtu=9: give an MTU between 68 and 65521, \
         e.g. -o com.docker.network.driver.mtu=1500",
    );
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
    says(
        c.network("nope"),
        "network nope not found; `switchyard network ls` lists the networks",
    );
}

#[test]
fn predefined_networks_cannot_be_removed() {
    let mut c = fresh();
    for name in ["bridge", "host", "none"] {
        says(
            c.remove_network(name),
            &format!("{name} is a pre-defined network and cannot be removed"),
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
    says(
        c.remove_network("front"),
        "network front has active endpoints (api, web); disconnect them first \
         (switchyard network disconnect front CONTAINER)",
    );
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
    says(
        taken,
        "address 10.1.0.50 is already in use in network 'front'",
    );
    let gw = c.connect(
        "front",
        "g",
        EndpointSpec {
            ipv4: Some(ip("10.1.0.1")),
            ..Default::default()
        },
    );
    says(
        gw,
        "address 10.1.0.1 is the gateway of network 'front'; choose another --ip",
    );
    let outside = c.connect(
        "front",
        "o",
        EndpointSpec {
            ipv4: Some(ip("10.2.0.5")),
            ..Default::default()
        },
    );
    says(
        outside,
        "address 10.2.0.5 is outside subnet 10.1.0.0/24 of network 'front'; choose an --ip \
         inside it",
    );
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
    says(
        c.connect("front", "web", EndpointSpec::default()),
        "container web is already connected to network front",
    );
}

#[test]
fn default_bridge_refuses_static_ip_and_aliases() {
    let mut c = fresh();
    c.create_sandbox(private("web")).unwrap();
    says(
        c.connect(
            "bridge",
            "web",
            EndpointSpec {
                ipv4: Some(ip("172.17.0.9")),
                ..Default::default()
            },
        ),
        "user specified IP address is supported on user defined networks only; bridge is not \
         one (create one with switchyard network create --subnet ...)",
    );
    says(
        c.connect(
            "bridge",
            "web",
            EndpointSpec {
                aliases: vec!["x".into()],
                ..Default::default()
            },
        ),
        "network-scoped aliases are supported on user defined networks only; bridge is not one",
    );
    let e = c.connect("bridge", "web", EndpointSpec::default()).unwrap();
    assert_eq!(e.ipv4.unwrap().to_string(), "172.17.0.2/16");
}

#[test]
fn aliases_are_validated_and_kept() {
    let mut c = fresh();
    c.create_network(net("front")).unwrap();
    c.create_sandbox(private("web")).unwrap();
    says(
        c.connect(
            "front",
            "web",
            EndpointSpec {
                aliases: vec!["bad alias".into()],
                ..Default::default()
            },
        ),
        "invalid alias name \"bad alias\": use letters, digits, '-' and '_' only",
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
    for other in ["front", "bridge"] {
        says(
            c.connect(other, "lonely", EndpointSpec::default()),
            &format!(
                "container lonely cannot be connected to network {other}: it runs with \
                 --network none, which cannot be combined with any other network"
            ),
        );
    }
    says(
        c.disconnect("none", "lonely", false),
        "container lonely cannot be disconnected from the none network; remove the container \
         instead",
    );
}

#[test]
fn private_sandbox_cannot_join_host_or_none() {
    let mut c = fresh();
    c.create_sandbox(private("web")).unwrap();
    for n in ["host", "none"] {
        says(
            c.connect(n, "web", EndpointSpec::default()),
            &format!(
                "container web cannot be connected to network {n}: the {n} network is only for \
                 containers started with --network {n}"
            ),
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
        c.plan_endpoint_port(&eps[0].id).is_none(),
        "no data-plane port for host"
    );
    says(
        c.connect("bridge", "h", EndpointSpec::default()),
        "container h cannot be connected to network bridge: it runs with --network host, which \
         cannot be combined with any other network",
    );
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
    says(
        c.connect("front", "sidecar", EndpointSpec::default()),
        "container sidecar shares the network namespace of app; connect app instead",
    );
    says(
        c.remove_sandbox("app", false),
        "container app is in use: sidecar, sidecar2 share its network namespace; remove them \
         first or use -f",
    );
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
    says(
        c.disconnect("front", "web", false),
        "container web is not connected to network front",
    );
}

#[test]
fn forced_disconnect_cleans_up_an_endpoint_by_name() {
    let mut c = fresh();
    c.create_network(net("front")).unwrap();
    c.create_sandbox(private("web")).unwrap();
    c.connect("front", "web", EndpointSpec::default()).unwrap();
    c.rename_sandbox("web", "web2").unwrap();
    // "web" no longer exists as a container; without force that is an error.
    says(
        c.disconnect("front", "web", false),
        "container web not found; `switchyard ps` lists the containers",
    );
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
    says(
        c.sandbox("web"),
        "container web not found; `switchyard ps` lists the containers",
    );
}

#[test]
fn sandbox_names_are_unique_and_rename_follows_endpoints() {
    let mut c = fresh();
    c.create_network(net("front")).unwrap();
    c.create_sandbox(private("web")).unwrap();
    says(
        c.create_sandbox(private("web")),
        "container name web is already in use; choose another --name or remove it first \
         (switchyard rm -f web)",
    );
    let e = c.connect("front", "web", EndpointSpec::default()).unwrap();
    c.create_sandbox(private("db")).unwrap();
    says(
        c.rename_sandbox("web", "db"),
        "container name db is already in use; choose another --name or remove it first \
         (switchyard rm -f db)",
    );
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
    let plan = c.plan_endpoint_port(&e.id).unwrap();
    assert_eq!(plan.port.segment, c.segment_of(&n.id).unwrap());
    assert_eq!(
        plan.port.binding,
        PortBinding::Endpoint {
            mac: e.mac.unwrap(),
            ipv4: Some(e.ipv4.unwrap().ip()),
            ipv6: None
        }
    );
    let BackendPlan::SandboxInterface(iface) = plan.backend else {
        panic!("an endpoint port is an interface in its sandbox");
    };
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
    let err = c.create_network(net("front")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "state store: cannot write memory: injected failure"
    );
    assert!(
        !err.is_user_error(),
        "a store failure is not the user's mistake"
    );
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
    assert_eq!(
        err.to_string(),
        "subnet fd00:1::1/64 has host bits set; write fd00:1::/64"
    );
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

#[test]
fn a_bridge_network_plans_a_trunk_port_for_a_peer_reached_by_cable_only() {
    let mut c = fresh();
    let n = c.create_network(net("front")).unwrap();
    let cable = crate::driver::PeerHost {
        name: "h2".into(),
        link: "c1".into(),
        via: crate::driver::PeerVia::Cable,
    };
    let plans = c.plan_peer_ports(&n.id, &cable);
    assert_eq!(plans.len(), 1);
    assert_eq!(plans[0].port.segment, c.segment_of(&n.id).unwrap());
    assert_eq!(plans[0].port.binding, PortBinding::Trunk);
    assert_eq!(plans[0].port.label, "cable:c1");
    assert_eq!(
        plans[0].owner,
        crate::driver::PortOwner::Peer {
            network_id: n.id.clone(),
            peer: "h2".into(),
            link: "c1".into()
        }
    );
    let underlay = crate::driver::PeerHost {
        via: crate::driver::PeerVia::Underlay(IpAddr::V4(ip("192.0.2.2"))),
        ..cable.clone()
    };
    assert!(
        c.plan_peer_ports(&n.id, &underlay).is_empty(),
        "a bridge network is local: no tunnel to another host"
    );
    let host = c.network("host").unwrap().id.clone();
    assert!(
        c.plan_peer_ports(&host, &cable).is_empty(),
        "host has no segment"
    );
    assert!(
        c.plan_network_ports(&host).is_empty(),
        "host has no gateway"
    );
    assert!(c.plan_peer_ports("no-such-id", &cable).is_empty());
}

#[test]
fn a_bridge_network_has_a_gateway_port_unless_it_is_internal() {
    let mut c = fresh();
    let n = c.create_network(net("front")).unwrap();
    let plans = c.plan_network_ports(&n.id);
    assert_eq!(plans.len(), 1);
    let plan = &plans[0];
    assert_eq!(plan.owner, crate::driver::PortOwner::Network(n.id.clone()));
    assert_eq!(plan.port.label, "front/gateway");
    let sub = n.ipv4.as_ref().unwrap();
    let IpAddr::V4(gw) = sub.gateway else {
        panic!("IPv4 gateway")
    };
    let mac = MacAddr::from_ipv4(gw);
    assert_eq!(
        plan.port.binding,
        PortBinding::Router {
            mac,
            ipv4: vec![gw],
            ipv6: vec![]
        }
    );
    let BackendPlan::Gateway(g) = &plan.backend else {
        panic!("a gateway plan, got {:?}", plan.backend)
    };
    assert_eq!(g.mac, mac);
    assert_eq!(g.ipv4.unwrap().ip(), gw);
    assert_eq!(g.ipv4.unwrap().prefix(), sub.subnet.prefix());
    assert!(plan.interface().is_none());
    let mut spec = net("back");
    spec.internal = true;
    let internal = c.create_network(spec).unwrap();
    assert!(
        c.plan_network_ports(&internal.id).is_empty(),
        "--internal has no way out"
    );
}

/// A state directory's `state.json` as switchyard wrote it before the
/// shared-store layout (file format 1, schema 1): networks front
/// (10.1.0.0/24 with aux router 10.1.0.2, fd00:1::/64), back (172.18.0.0/16,
/// internal); containers web (front with alias www, bridge), api (front at
/// 10.1.0.50, back), off (none), h (host), side (container:api).
const V1_STATE: &str = include_str!("../store/testdata/state-v1.json");

fn open_dir(dir: &std::path::Path) -> Controller {
    Controller::open(
        Box::new(FileStore::open(dir).unwrap()),
        DriverRegistry::builtin(),
        Box::new(ChaCha8Rng::seed_from_u64(1)),
        ControllerOptions::default(),
    )
    .unwrap()
}

#[test]
fn state_written_by_the_previous_version_is_restored_exactly() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("state.json"), V1_STATE).unwrap();
    let c = open_dir(dir.path());
    let names: Vec<&str> = c.networks().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["back", "bridge", "front", "host", "none"]);
    let seg = |name: &str| c.segment_of(&c.network(name).unwrap().id).map(|s| s.0);
    assert_eq!(
        [seg("bridge"), seg("front"), seg("back"), seg("host")],
        [Some(1), Some(2), Some(3), None],
        "segments keep their numbers"
    );
    let front = c.network("front").unwrap();
    let v4 = front.ipv4.as_ref().unwrap();
    assert_eq!(v4.subnet.to_string(), "10.1.0.0/24");
    assert_eq!(v4.aux_addresses["router"].to_string(), "10.1.0.2");
    assert_eq!(
        front.ipv6.as_ref().unwrap().subnet.to_string(),
        "fd00:1::/64"
    );
    assert!(c.network("back").unwrap().internal);
    let sandboxes: Vec<&str> = c.sandboxes().map(|s| s.name.as_str()).collect();
    assert_eq!(sandboxes, ["api", "h", "off", "side", "web"]);
    let web = c.sandbox("web").unwrap();
    let eps: Vec<String> = c
        .endpoints_of_sandbox(&web.id)
        .iter()
        .map(|e| {
            format!(
                "{} {} {:?} {:?} {}",
                e.ifname,
                e.ipv4.unwrap(),
                e.ipv6.map(|a| a.to_string()),
                e.aliases,
                e.default_route
            )
        })
        .collect();
    assert_eq!(
        eps,
        [
            "eth0 10.1.0.3/24 Some(\"fd00:1::2/64\") [\"www\"] true",
            "eth1 172.17.0.2/16 None [] false"
        ]
    );
    let api = c.sandbox("api").unwrap().id.clone();
    assert_eq!(
        c.sandbox("side").unwrap().mode,
        NetnsMode::Container(api.clone())
    );
    let api_front = c
        .endpoints_of_sandbox(&api)
        .into_iter()
        .find(|e| e.network_id == front.id)
        .unwrap();
    assert!(api_front.static_ip);
    assert_eq!(api_front.ipv4.unwrap().to_string(), "10.1.0.50/24");
    assert!(c.endpoints().all(|e| e.host == "local" && e.vtep.is_none()));
    assert_eq!(c.network_view(front).switchyard["Segment"], 2);
}

#[test]
fn state_written_by_the_previous_version_is_migrated_once_and_keeps_allocating() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("state.json"), V1_STATE).unwrap();
    {
        let mut c = open_dir(dir.path());
        c.create_sandbox(private("new")).unwrap();
        let e = c.connect("front", "new", EndpointSpec::default()).unwrap();
        assert_eq!(
            e.ipv4.unwrap().to_string(),
            "10.1.0.4/24",
            "after the cursor, past the aux, taken and static addresses"
        );
        let n = c.create_network(net("more")).unwrap();
        assert_eq!(n.ipv4.unwrap().subnet.to_string(), "172.19.0.0/16");
        assert_eq!(c.segment_of(&n.id), Some(crate::port::SegmentId(4)));
    }
    let mut store = FileStore::open(dir.path()).unwrap();
    let contents = store.load().unwrap();
    let keys: Vec<&str> = contents.entries.keys().map(String::as_str).collect();
    assert!(!keys.contains(&"ipam"), "the single IPAM key is gone");
    assert!(keys.contains(&"ipam/local/10.1.0.0/24"), "{keys:?}");
    assert!(keys.contains(&"ipam/local/fd00:1::/64"), "{keys:?}");
    assert!(
        !keys.iter().any(|k| k.starts_with("sandboxes/")),
        "{keys:?}"
    );
    assert_eq!(
        contents.value("meta"),
        Some(&serde_json::json!({"schema": 2}))
    );
    drop(store);
    // Reopening finds schema 2: the same state, no second migration.
    let c = open_dir(dir.path());
    assert_eq!(c.sandboxes().count(), 6);
    assert_eq!(c.endpoints().count(), 7);
}

#[test]
fn stored_keys_follow_the_documented_layout() {
    let store = MemoryStore::new();
    let mut c = open(store.clone());
    let front = c
        .create_network(net_with_subnet("front", "10.1.0.0/24"))
        .unwrap();
    let web = c.create_sandbox(private("web")).unwrap();
    let e = c.connect("front", "web", EndpointSpec::default()).unwrap();
    let id = |name: &str| c.network(name).unwrap().id.clone();
    let mut expected: BTreeSet<String> = [
        "meta",
        "ipam/config",
        "ipam/local",
        "ipam/local/172.17.0.0/16",
        "ipam/local/10.1.0.0/24",
        "local/local/meta",
        "local/local/names/sandboxes/web",
    ]
    .iter()
    .map(|k| k.to_string())
    .collect();
    for n in ["bridge", "host", "none", "front"] {
        expected.insert(format!("networks/{}", id(n)));
        expected.insert(format!("names/networks/{n}"));
    }
    for n in ["bridge", "front"] {
        expected.insert(format!("local/local/segments/{}", id(n)));
    }
    expected.insert(format!("endpoints/{}", e.id));
    expected.insert(format!("local/local/sandboxes/{}", web.id));
    let contents = store.contents();
    let keys: BTreeSet<String> = contents.entries.keys().cloned().collect();
    assert_eq!(keys, expected);
    // The shared network object has no host-local data; the segment is the
    // host's own.
    let stored = contents.value(&format!("networks/{}", front.id)).unwrap();
    assert!(stored.get("segment").is_none(), "{stored}");
    assert_eq!(stored["global_segment"], serde_json::Value::Null);
    assert_eq!(
        contents.value(&format!("local/local/segments/{}", front.id)),
        Some(&serde_json::json!(2))
    );
    assert_eq!(
        contents.value("ipam/local"),
        Some(&serde_json::json!({"pools": ["10.1.0.0/24", "172.17.0.0/16"]}))
    );
}

#[test]
fn inspect_shows_the_hosts_segment_as_before() {
    let mut c = fresh();
    let n = c.create_network(net("front")).unwrap();
    assert_eq!(c.network_view(&n).switchyard["Segment"], 2);
    let host = c.network("host").unwrap();
    assert_eq!(
        c.network_view(host).switchyard["Segment"],
        serde_json::Value::Null
    );
}

#[test]
fn endpoints_name_the_host_that_holds_them_and_its_vtep() {
    let mut c = Controller::open(
        Box::new(MemoryStore::new()),
        DriverRegistry::builtin(),
        Box::new(ChaCha8Rng::seed_from_u64(7)),
        ControllerOptions {
            host: "h1".into(),
            vtep: Some("192.0.2.1".parse().unwrap()),
            ..Default::default()
        },
    )
    .unwrap();
    c.create_sandbox(private("web")).unwrap();
    let e = c.connect("bridge", "web", EndpointSpec::default()).unwrap();
    assert_eq!(e.host, "h1");
    assert_eq!(e.vtep, Some("192.0.2.1".parse().unwrap()));
    let e = fresh_with_web_on_bridge();
    assert_eq!((e.host.as_str(), e.vtep), ("local", None));
}

fn fresh_with_web_on_bridge() -> Endpoint {
    let mut c = fresh();
    c.create_sandbox(private("web")).unwrap();
    c.connect("bridge", "web", EndpointSpec::default()).unwrap()
}

#[test]
fn an_invalid_host_id_is_refused() {
    let err = Controller::open(
        Box::new(MemoryStore::new()),
        DriverRegistry::builtin(),
        Box::new(ChaCha8Rng::seed_from_u64(7)),
        ControllerOptions {
            host: "a/b".into(),
            ..Default::default()
        },
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid host name \"a/b\": only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
    );
}

/// `network create --subnet S` (with `--ipv6` for IPv6 subnets).
fn create_with_subnet(c: &mut Controller, subnet: &str) -> Result<Network, ControllerError> {
    let subnet: ipnetwork::IpNetwork = subnet.parse().unwrap();
    c.create_network(NetworkSpec {
        ipv6: subnet.is_ipv6(),
        subnets: vec![subnet],
        ..net("x")
    })
}

const V4_FIX: &str = "choose a private range instead, e.g. --subnet 10.1.0.0/24 (from \
                      10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16)";
const V6_FIX: &str = "choose a unique local /64 instead, e.g. --subnet fd00:1:2:3::/64, or a /64 \
                      of your global prefix";

#[test]
fn multicast_subnets_are_refused() {
    let mut c = fresh();
    says(
        create_with_subnet(&mut c, "224.1.0.0/16"),
        &format!(
            "subnet 224.1.0.0/16 cannot be used: it is IPv4 multicast (224.0.0.0/4): multicast \
             addresses cannot be assigned to interfaces; {V4_FIX}"
        ),
    );
    says(
        create_with_subnet(&mut c, "ff02::/64"),
        &format!(
            "subnet ff02::/64 cannot be used: it is IPv6 multicast (ff00::/8): multicast \
             addresses cannot be assigned to interfaces; {V6_FIX}"
        ),
    );
}

#[test]
fn loopback_unspecified_and_mapped_subnets_are_refused() {
    let mut c = fresh();
    for (subnet, what) in [
        ("127.0.0.0/24", "it is loopback (127.0.0.0/8): "),
        (
            "0.0.0.0/16",
            "it is \"this network\" (0.0.0.0/8, RFC 1122): ",
        ),
        ("::1/128", "it is IPv6 loopback (::1/128): "),
        ("::/128", "it is the unspecified address (::/128): "),
        (
            "::ffff:10.0.0.0/120",
            "it is IPv4-mapped addresses (::ffff:0:0/96, RFC 4291): ",
        ),
        ("::/64", "it includes the unspecified address (::/128): "),
    ] {
        let msg = create_with_subnet(&mut c, subnet).unwrap_err().to_string();
        assert!(
            msg.starts_with(&format!("subnet {subnet} cannot be used: {what}")),
            "{msg}"
        );
    }
}

#[test]
fn link_local_subnets_are_refused() {
    let mut c = fresh();
    for (subnet, what) in [
        (
            "169.254.1.0/24",
            "it is IPv4 link-local (169.254.0.0/16, RFC 3927)",
        ),
        (
            "169.0.0.0/8",
            "it includes IPv4 link-local (169.254.0.0/16, RFC 3927)",
        ),
        ("fe80::/64", "it is IPv6 link-local (fe80::/10)"),
    ] {
        let msg = create_with_subnet(&mut c, subnet).unwrap_err().to_string();
        assert!(
            msg.starts_with(&format!("subnet {subnet} cannot be used: {what}: ")),
            "{msg}"
        );
    }
}

#[test]
fn absurdly_wide_subnets_are_refused() {
    let mut c = fresh();
    says(
        create_with_subnet(&mut c, "::/0"),
        "subnet ::/0 cannot be used: it is wider than /32 (the size of a whole ISP \
         allocation); a network's subnet is on-link for every container on it, so the \
         containers would send their traffic for all of it to the bridge instead of through \
         the gateway; use a /64, the standard size of one link, e.g. --subnet fd00:1:2:3::/64",
    );
    says(
        create_with_subnet(&mut c, "2000::/3"),
        "subnet 2000::/3 cannot be used: it is wider than /32 (the size of a whole ISP \
         allocation); a network's subnet is on-link for every container on it, so the \
         containers would send their traffic for all of it to the bridge instead of through \
         the gateway; use a /64, the standard size of one link, e.g. --subnet fd00:1:2:3::/64",
    );
    says(
        create_with_subnet(&mut c, "0.0.0.0/0"),
        &format!(
            "subnet 0.0.0.0/0 cannot be used: it is wider than /8 (the largest private range, \
             10.0.0.0/8); a network's subnet is on-link for every container on it, so the \
             containers would send their traffic for all of it to the bridge instead of \
             through the gateway; {V4_FIX}"
        ),
    );
    // The widest accepted.
    assert!(create_with_subnet(&mut c, "fd00::/32").is_ok());
    c.remove_network("x").unwrap();
    assert!(create_with_subnet(&mut c, "10.0.0.0/8").is_ok());
}

#[test]
fn subnets_without_room_for_a_gateway_and_a_container_are_refused() {
    let mut c = fresh();
    says(
        create_with_subnet(&mut c, "10.0.0.0/31"),
        "subnet 10.0.0.0/31 is too small to hold a gateway and a container; use a /30 or larger",
    );
    says(
        create_with_subnet(&mut c, "fd00::/127"),
        "subnet fd00::/127 is too small to hold a gateway and a container; use a /126 or larger",
    );
    assert!(create_with_subnet(&mut c, "10.0.0.0/30").is_ok());
}

#[test]
fn a_huge_name_is_refused_without_echoing_it_in_full() {
    let mut c = fresh();
    let huge = "x".repeat(100_000);
    let x64 = "x".repeat(64);
    says(
        c.create_network(net(&huge)),
        &format!(
            "invalid network name \"{x64}\"… (99936 more characters): it is 100000 characters \
             long; at most 64 are allowed"
        ),
    );
    says(
        c.create_sandbox(private(&huge)),
        &format!(
            "invalid container name \"{x64}\"… (99936 more characters): it is 100000 characters \
             long; at most 63 are allowed"
        ),
    );
    says(
        c.network(&huge),
        &format!(
            "network {x64}… (99936 more characters) not found; `switchyard network ls` lists \
             the networks"
        ),
    );
    c.create_sandbox(private("web")).unwrap();
    let msg = c
        .connect(
            "bridge",
            "web",
            EndpointSpec {
                aliases: vec![huge.clone()],
                ..Default::default()
            },
        )
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("… (99936 more characters)") && msg.len() < 200,
        "{msg}"
    );
    let msg = c
        .create_network(NetworkSpec {
            options: [(huge.clone(), huge.clone())].into(),
            ..net("x")
        })
        .unwrap_err()
        .to_string();
    assert!(
        msg.starts_with(&format!(
            "invalid option {x64}… (99936 more characters)={x64}…"
        )),
        "{msg}"
    );
    assert!(msg.len() < 500, "{}", msg.len());
}

#[test]
fn aux_address_names_are_checked() {
    let mut c = fresh();
    let huge = "r".repeat(1000);
    let msg = c
        .create_network(NetworkSpec {
            aux_addresses: [(huge, "10.1.0.2".parse().unwrap())].into(),
            ..net_with_subnet("x", "10.1.0.0/24")
        })
        .unwrap_err()
        .to_string();
    assert_eq!(
        msg,
        format!(
            "invalid aux address name \"{}\"… (936 more characters): it is 1000 characters \
             long; at most 64 are allowed",
            "r".repeat(64)
        )
    );
}
