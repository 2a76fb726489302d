//! Overlay networks in the controller: VNIs and global subnets allocated
//! once across every host of a store, no default route through an
//! overlay, and the tunnels a host plans to the others.

use super::model::*;
use super::shared_tests::Interleaved;
use super::*;
use crate::driver::{BackendPlan, PeerVia, FIRST_AUTO_VNI};
use crate::port::{HorizonGroup, PortBinding};
use crate::store::MemoryStore;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn vtep(last: u8) -> IpAddr {
    IpAddr::from([192, 0, 2, last])
}

/// A host with the overlay driver (underlay MTU 1500) and VTEP
/// 192.0.2.`last` on `store`.
fn host(store: &MemoryStore, name: &str, last: u8) -> Controller {
    Controller::open(
        Box::new(store.clone()),
        DriverRegistry::with_overlay(1500, false),
        Box::new(ChaCha8Rng::seed_from_u64(u64::from(last))),
        ControllerOptions {
            host: name.into(),
            vtep: Some(vtep(last)),
            ..Default::default()
        },
    )
    .expect("open")
}

fn overlay(name: &str, options: &[(&str, &str)]) -> NetworkSpec {
    NetworkSpec {
        name: name.into(),
        driver: "overlay".into(),
        options: options
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Default::default()
    }
}

fn container(c: &mut Controller, name: &str) {
    c.create_sandbox(SandboxSpec {
        name: name.into(),
        hostname: String::new(),
        mode: NetnsMode::Private,
        labels: Default::default(),
    })
    .unwrap();
}

#[test]
fn overlays_get_vnis_from_4096_global_subnets_and_the_underlay_mtu_minus_50() {
    let store = MemoryStore::new();
    let mut a = host(&store, "a", 1);
    let one = a.create_network(overlay("one", &[])).unwrap();
    let two = a.create_network(overlay("two", &[])).unwrap();
    assert_eq!(one.scope, Scope::Global);
    assert_eq!(
        (one.global_segment, two.global_segment),
        (Some(FIRST_AUTO_VNI), Some(FIRST_AUTO_VNI + 1))
    );
    assert_eq!(one.ipv4.as_ref().unwrap().subnet.to_string(), "10.0.0.0/24");
    assert_eq!(two.ipv4.as_ref().unwrap().subnet.to_string(), "10.0.1.0/24");
    assert_eq!(one.mtu, 1450);
    let keys = store.contents().entries;
    assert_eq!(
        keys.get("vnis/4096").map(|e| e.value.clone()),
        Some(serde_json::json!(one.id))
    );
    assert!(keys.contains_key("ipam/global/10.0.0.0/24"));
    // A bridge network still draws from the local defaults.
    let local = a
        .create_network(NetworkSpec {
            name: "br".into(),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(local.scope, Scope::Local);
    assert_eq!(local.global_segment, None);
    assert_eq!(
        local.ipv4.as_ref().unwrap().subnet.to_string(),
        "172.18.0.0/16"
    );
}

#[test]
fn a_vni_asked_for_is_used_once_and_bad_options_say_what_to_write() {
    let store = MemoryStore::new();
    let mut a = host(&store, "a", 1);
    let n = a
        .create_network(overlay("blue", &[("vni", "5000"), ("mtu", "1400")]))
        .unwrap();
    assert_eq!((n.global_segment, n.mtu), (Some(5000), 1400));
    let docker_spelling = a
        .create_network(overlay(
            "green",
            &[("com.docker.network.driver.overlay.vxlanid_list", "5001")],
        ))
        .unwrap();
    assert_eq!(docker_spelling.global_segment, Some(5001));
    let err = a
        .create_network(overlay("red", &[("vni", "5000")]))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "VNI 5000 is already used by network blue; choose another with -o vni=N, or leave it \
         out to get a free one"
    );
    let err = a
        .create_network(overlay("red", &[("vni", "16777216")]))
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("give one VNI between 1 and 16777215"),
        "{err}"
    );
    let err = a
        .create_network(overlay("red", &[("encrypted", "")]))
        .unwrap_err();
    assert!(err.to_string().contains("does not encrypt"), "{err}");
    let err = a
        .create_network(overlay("red", &[("parent", "eth0")]))
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("the overlay driver knows -o vni=N"),
        "{err}"
    );
    assert!(a.network("red").is_err(), "nothing was made");
}

#[test]
fn two_hosts_creating_overlays_at_once_never_share_a_vni_or_a_subnet() {
    let store = MemoryStore::new();
    let interleaved = Interleaved::new(&store);
    let mut a = Controller::open(
        Box::new(interleaved.clone()),
        DriverRegistry::with_overlay(1500, false),
        Box::new(ChaCha8Rng::seed_from_u64(1)),
        ControllerOptions {
            host: "a".into(),
            vtep: Some(vtep(1)),
            ..Default::default()
        },
    )
    .unwrap();
    let b = std::sync::Arc::new(std::sync::Mutex::new(host(&store, "b", 2)));
    let b2 = b.clone();
    // b's create lands between a's reads and a's commit, as on a shared
    // etcd: both picked VNI 4096 and 10.0.0.0/24.
    interleaved.before_next_commit(move || {
        b2.lock()
            .unwrap()
            .create_network(overlay("from-b", &[]))
            .unwrap();
    });
    let from_a = a.create_network(overlay("from-a", &[])).unwrap();
    assert_eq!(a.conflicts(), 1, "a's first commit lost to b's");
    let b = b.lock().unwrap();
    let from_b = b.network("from-b").unwrap();
    assert_eq!(from_b.global_segment, Some(FIRST_AUTO_VNI));
    assert_eq!(from_a.global_segment, Some(FIRST_AUTO_VNI + 1), "a retried");
    assert_ne!(from_a.ipv4, from_b.ipv4);
    assert_eq!(a.network("from-b").unwrap(), from_b, "shared");
}

#[test]
fn removing_an_overlay_frees_its_vni() {
    let store = MemoryStore::new();
    let mut a = host(&store, "a", 1);
    a.create_network(overlay("one", &[])).unwrap();
    a.remove_network("one").unwrap();
    assert!(!store.contents().entries.contains_key("vnis/4096"));
    let again = a.create_network(overlay("again", &[])).unwrap();
    assert_eq!(again.global_segment, Some(FIRST_AUTO_VNI));
}

#[test]
fn an_overlay_never_carries_the_default_route_a_bridge_joined_later_does() {
    let store = MemoryStore::new();
    let mut a = host(&store, "a", 1);
    a.create_network(overlay("ov", &[])).unwrap();
    container(&mut a, "web");
    let on_overlay = a.connect("ov", "web", EndpointSpec::default()).unwrap();
    assert!(!on_overlay.default_route);
    let plan = a.plan_endpoint_port(&on_overlay.id).unwrap();
    let iface = plan.interface().unwrap();
    assert_eq!((iface.gateway4, iface.default_route), (None, false));
    assert_eq!(iface.mtu, 1450);
    let on_bridge = a.connect("bridge", "web", EndpointSpec::default()).unwrap();
    assert!(on_bridge.default_route, "the way out is the bridge's");
}

#[test]
fn each_host_plans_one_tunnel_per_other_vtep_with_endpoints_on_the_network() {
    let store = MemoryStore::new();
    let mut a = host(&store, "a", 1);
    let mut b = host(&store, "b", 2);
    let mut c = host(&store, "c", 3);
    let net = a.create_network(overlay("ov", &[])).unwrap();
    for (ctl, names) in [
        (&mut a, ["wa"].as_slice()),
        (&mut b, &["wb"]),
        (&mut c, &["wc1", "wc2"]),
    ] {
        ctl.refresh().unwrap();
        for name in names {
            container(ctl, name);
            ctl.connect("ov", name, EndpointSpec::default()).unwrap();
        }
    }
    a.refresh().unwrap();
    let peers = a.tunnel_peers(&net.id);
    let vteps: Vec<_> = peers.iter().map(|p| p.via.clone()).collect();
    assert_eq!(
        vteps,
        [PeerVia::Underlay(vtep(2)), PeerVia::Underlay(vtep(3))],
        "b and c once each (c has two endpoints), never a itself"
    );
    let plans = a.plan_peer_ports(&net.id, &peers[0]);
    assert_eq!(plans.len(), 1);
    let plan = &plans[0];
    assert_eq!(
        plan.backend,
        BackendPlan::Tunnel {
            vni: FIRST_AUTO_VNI,
            remote: vtep(2)
        }
    );
    assert_eq!(plan.port.binding, PortBinding::Trunk);
    let segment = a.segment_of(&net.id).unwrap();
    assert_eq!(plan.port.segment, segment);
    assert_eq!(plan.port.horizon, Some(HorizonGroup(segment.0)));
    let remote = a.remote_stations(&net.id);
    assert_eq!(remote.len(), 3, "wb, wc1, wc2, not a's own: {remote:?}");
    assert!(remote.iter().all(|s| s.addresses.len() == 1));
    assert_eq!(remote[0].vtep, vtep(2));
    assert_eq!(remote[1].vtep, vtep(3));
    // A bridge network has no tunnels, whoever is on it.
    let bridge = a.network("bridge").unwrap().id.clone();
    assert!(a.plan_peer_ports(&bridge, &peers[0]).is_empty());
}
