//! Several controllers (hosts) on one store: what they share, what stays
//! each host's own, and how concurrent changes are detected and retried.

use super::model::*;
use super::*;
use crate::store::{MemoryStore, StoreChanges, StoreContents};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};

type Hook = Box<dyn FnOnce() + Send>;

/// A memory store that runs a queued hook (another host's operation) just
/// before a commit: the other host's write lands between this controller's
/// reads and its commit, as it would on a shared etcd.
#[derive(Clone)]
pub(super) struct Interleaved {
    inner: MemoryStore,
    hooks: Arc<Mutex<VecDeque<Hook>>>,
}

impl Interleaved {
    pub(super) fn new(inner: &MemoryStore) -> Interleaved {
        Interleaved {
            inner: inner.clone(),
            hooks: Arc::new(Mutex::new(VecDeque::new())),
        }
    }

    pub(super) fn before_next_commit(&self, hook: impl FnOnce() + Send + 'static) {
        self.hooks.lock().unwrap().push_back(Box::new(hook));
    }
}

impl Store for Interleaved {
    fn load(&mut self) -> Result<StoreContents, StoreError> {
        self.inner.load()
    }

    fn commit(&mut self, txn: &Transaction) -> Result<CommitOutcome, StoreError> {
        let hook = self.hooks.lock().unwrap().pop_front();
        if let Some(hook) = hook {
            hook();
        }
        self.inner.commit(txn)
    }

    fn changes_since(&mut self, revision: Revision) -> Result<StoreChanges, StoreError> {
        self.inner.changes_since(revision)
    }

    fn describe(&self) -> String {
        "interleaved memory".into()
    }
}

fn host_on(store: impl Store + 'static, host: &str, seed: u64) -> Controller {
    Controller::open(
        Box::new(store),
        DriverRegistry::builtin(),
        Box::new(ChaCha8Rng::seed_from_u64(seed)),
        ControllerOptions {
            host: host.into(),
            ..Default::default()
        },
    )
    .expect("open")
}

fn shared(c: Controller) -> Arc<Mutex<Controller>> {
    Arc::new(Mutex::new(c))
}

fn private(name: &str) -> SandboxSpec {
    SandboxSpec {
        name: name.into(),
        hostname: String::new(),
        mode: NetnsMode::Private,
        labels: Default::default(),
    }
}

fn subnet_net(name: &str, subnet: &str) -> NetworkSpec {
    NetworkSpec {
        name: name.into(),
        subnets: vec![subnet.parse().unwrap()],
        ..Default::default()
    }
}

/// Hosts a (with networks front 10.1.0.0/24 and back 10.2.0.0/24) and b on
/// one store; a commits through an [`Interleaved`] store.
fn two_hosts() -> (Controller, Interleaved, Arc<Mutex<Controller>>) {
    let store = MemoryStore::new();
    let interleaved = Interleaved::new(&store);
    let mut a = host_on(interleaved.clone(), "a", 1);
    a.create_network(subnet_net("front", "10.1.0.0/24"))
        .unwrap();
    a.create_network(subnet_net("back", "10.2.0.0/24")).unwrap();
    let b = shared(host_on(store, "b", 2));
    (a, interleaved, b)
}

fn ipv4_of(e: &Endpoint) -> String {
    e.ipv4.unwrap().ip().to_string()
}

#[test]
fn hosts_share_networks_and_number_their_own_segments() {
    let store = MemoryStore::new();
    let mut a = host_on(store.clone(), "a", 1);
    let front = a
        .create_network(subnet_net("front", "10.1.0.0/24"))
        .unwrap();
    let mut b = host_on(store.clone(), "b", 2);
    assert_eq!(b.network("front").unwrap(), &front, "the network is shared");
    let b_segments: BTreeSet<_> = b.networks().filter_map(|n| b.segment_of(&n.id)).collect();
    assert_eq!(b_segments.len(), 2, "bridge and front, each its own");
    assert!(store
        .contents()
        .entries
        .contains_key(&format!("local/b/segments/{}", front.id)));
    // Container names are per host, as in Docker.
    a.create_sandbox(private("web")).unwrap();
    b.create_sandbox(private("web")).unwrap();
    let ea = a.connect("front", "web", EndpointSpec::default()).unwrap();
    let eb = b.connect("front", "web", EndpointSpec::default()).unwrap();
    assert_ne!(ea.ipv4, eb.ipv4);
    assert_eq!((ea.host.as_str(), eb.host.as_str()), ("a", "b"));
    a.refresh().unwrap();
    assert_eq!(a.endpoints_of_network(&front.id).len(), 2);
    assert!(a.plan_endpoint_port(&ea.id).is_some());
    assert!(
        a.plan_endpoint_port(&eb.id).is_none(),
        "another host's endpoint has no port on this host's switch"
    );
    assert_eq!(a.sandboxes().count(), 1, "sandboxes stay on their host");
}

#[test]
fn connects_on_the_same_pool_at_once_conflict_and_the_loser_retries() {
    let (mut a, interleaved, b) = two_hosts();
    b.lock().unwrap().create_sandbox(private("bw")).unwrap();
    a.create_sandbox(private("aw")).unwrap();
    let b_ip = Arc::new(Mutex::new(String::new()));
    let (b2, b_ip2) = (b.clone(), b_ip.clone());
    interleaved.before_next_commit(move || {
        let e = b2
            .lock()
            .unwrap()
            .connect("front", "bw", EndpointSpec::default())
            .unwrap();
        *b_ip2.lock().unwrap() = ipv4_of(&e);
    });
    let e = a.connect("front", "aw", EndpointSpec::default()).unwrap();
    assert_eq!(a.conflicts(), 1, "a's first commit lost to b's");
    assert_eq!(*b_ip.lock().unwrap(), "10.1.0.2");
    assert_eq!(ipv4_of(&e), "10.1.0.3", "a retried on b's allocation");
}

#[test]
fn connects_on_different_pools_at_once_do_not_conflict() {
    let (mut a, interleaved, b) = two_hosts();
    b.lock().unwrap().create_sandbox(private("bw")).unwrap();
    a.create_sandbox(private("aw")).unwrap();
    let b2 = b.clone();
    interleaved.before_next_commit(move || {
        b2.lock()
            .unwrap()
            .connect("back", "bw", EndpointSpec::default())
            .unwrap();
    });
    let e = a.connect("front", "aw", EndpointSpec::default()).unwrap();
    assert_eq!(a.conflicts(), 0);
    assert_eq!(ipv4_of(&e), "10.1.0.2");
    // a's view caught up with b's write on the way.
    assert_eq!(a.endpoints().count(), 2);
}

#[test]
fn the_same_network_name_created_on_two_hosts_at_once_exists_once() {
    let (mut a, interleaved, b) = two_hosts();
    let b2 = b.clone();
    interleaved.before_next_commit(move || {
        b2.lock()
            .unwrap()
            .create_network(subnet_net("db", "10.3.0.0/24"))
            .unwrap();
    });
    let err = a
        .create_network(subnet_net("db", "10.4.0.0/24"))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "network with name db already exists; choose another name or remove it first \
         (switchyard network rm db)"
    );
    let dbs = a.networks().filter(|n| n.name == "db").count();
    assert_eq!(dbs, 1);
    assert_eq!(
        a.network("db")
            .unwrap()
            .ipv4
            .as_ref()
            .unwrap()
            .subnet
            .to_string(),
        "10.3.0.0/24"
    );
}

#[test]
fn overlapping_subnets_picked_on_two_hosts_at_once_are_caught() {
    let (mut a, interleaved, b) = two_hosts();
    let b2 = b.clone();
    interleaved.before_next_commit(move || {
        b2.lock()
            .unwrap()
            .create_network(subnet_net("small", "10.9.2.0/24"))
            .unwrap();
    });
    let err = a
        .create_network(subnet_net("big", "10.9.0.0/16"))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "subnet 10.9.0.0/16 overlaps network 'small' (10.9.2.0/24); choose another --subnet"
    );
}

#[test]
fn removing_a_network_while_another_host_connects_to_it_is_refused() {
    let (mut a, interleaved, b) = two_hosts();
    b.lock().unwrap().create_sandbox(private("bw")).unwrap();
    let b2 = b.clone();
    interleaved.before_next_commit(move || {
        b2.lock()
            .unwrap()
            .connect("back", "bw", EndpointSpec::default())
            .unwrap();
    });
    let err = a.remove_network("back").unwrap_err();
    assert_eq!(
        err.to_string(),
        "network back has active endpoints (bw); disconnect them first (switchyard network \
         disconnect back CONTAINER)"
    );
    assert!(b.lock().unwrap().refresh().is_ok());
    assert!(b.lock().unwrap().network("back").is_ok());
}

#[test]
fn an_operation_that_keeps_conflicting_gives_up_and_changes_nothing() {
    let (mut a, interleaved, b) = two_hosts();
    a.create_sandbox(private("aw")).unwrap();
    for i in 0..MAX_ATTEMPTS {
        let name = format!("b{i}");
        b.lock().unwrap().create_sandbox(private(&name)).unwrap();
        let b2 = b.clone();
        interleaved.before_next_commit(move || {
            b2.lock()
                .unwrap()
                .connect("front", &name, EndpointSpec::default())
                .unwrap();
        });
    }
    let err = a
        .connect("front", "aw", EndpointSpec::default())
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "the state changed concurrently (ipam/local/10.1.0.0/24 was changed by another host or \
         process in each of 16 attempts); nothing was changed, try again"
    );
    assert!(!err.is_user_error());
    assert_eq!(a.conflicts(), u64::from(MAX_ATTEMPTS));
    let aw = a.sandbox("aw").unwrap().id.clone();
    assert!(a.endpoints_of_sandbox(&aw).is_empty());
    assert_eq!(a.endpoints().count(), MAX_ATTEMPTS as usize, "only b's");
}

#[test]
fn two_hosts_opening_a_fresh_store_at_once_create_the_predefined_networks_once() {
    let store = MemoryStore::new();
    let interleaved = Interleaved::new(&store);
    let b_slot: Arc<Mutex<Option<Controller>>> = Arc::default();
    let (b_store, slot) = (store.clone(), b_slot.clone());
    interleaved.before_next_commit(move || {
        *slot.lock().unwrap() = Some(host_on(b_store, "b", 2));
    });
    let a = host_on(interleaved, "a", 1);
    let b = b_slot.lock().unwrap().take().unwrap();
    let ids = |c: &Controller| c.networks().map(|n| n.id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(&a), ids(&b), "a uses the networks b created");
    assert_eq!(
        a.networks().map(|n| n.name.as_str()).collect::<Vec<_>>(),
        ["bridge", "host", "none"]
    );
    let bridge = a.network("bridge").unwrap().id.clone();
    assert!(a.segment_of(&bridge).is_some() && b.segment_of(&bridge).is_some());
}

#[test]
fn a_controller_that_fell_behind_the_change_history_reloads() {
    let store = MemoryStore::with_history(2);
    let mut a = host_on(store.clone(), "a", 1);
    let mut b = host_on(store.clone(), "b", 2);
    for i in 0..4 {
        b.create_network(subnet_net(&format!("n{i}"), &format!("10.{i}.0.0/24")))
            .unwrap();
    }
    assert!(a.network("n3").is_err(), "not seen yet");
    assert!(matches!(
        store.clone().changes_since(a.revision()),
        Err(StoreError::Compacted { .. })
    ));
    a.refresh().unwrap();
    assert_eq!(a.network("n3").unwrap().name, "n3");
    assert!(a.segment_of(&a.network("n3").unwrap().id).is_some());
    assert_eq!(a.revision(), store.contents().revision);
}

#[test]
fn concurrent_allocations_by_two_hosts_never_hand_out_an_address_twice() {
    const PER_HOST: usize = 30;
    let store = MemoryStore::new();
    let mut setup = host_on(store.clone(), "a", 1);
    let front = setup
        .create_network(subnet_net("front", "10.1.0.0/24"))
        .unwrap();
    drop(setup);
    let run = |host: &'static str, seed: u64| {
        let store = store.clone();
        std::thread::spawn(move || {
            let mut c = host_on(store, host, seed);
            let mut ips = Vec::new();
            let mut gave_up = 0;
            for i in 0..PER_HOST {
                let name = format!("{host}{i}");
                c.create_sandbox(private(&name)).unwrap();
                loop {
                    match c.connect("front", &name, EndpointSpec::default()) {
                        Ok(e) => break ips.push(IpAddr::V4(e.ipv4.unwrap().ip())),
                        Err(ControllerError::ConcurrentChange { .. }) => gave_up += 1,
                        Err(e) => panic!("{e}"),
                    }
                }
            }
            (ips, c.conflicts(), gave_up)
        })
    };
    let ta = run("a", 11);
    let tb = run("b", 12);
    let (ips_a, _, _) = ta.join().unwrap();
    let (ips_b, _, _) = tb.join().unwrap();
    let all: Vec<_> = ips_a.iter().chain(ips_b.iter()).copied().collect();
    let unique: BTreeSet<_> = all.iter().copied().collect();
    assert_eq!(all.len(), 2 * PER_HOST);
    assert_eq!(unique.len(), all.len(), "an address was handed out twice");
    // The stored state agrees: every address allocated in the pool, once.
    let c = host_on(store, "c", 13);
    let pool = c.network("front").unwrap().ipv4.clone().unwrap().pool;
    let allocated: BTreeSet<_> = c.ipam().pool(&pool).unwrap().allocated().collect();
    assert_eq!(allocated, unique);
    assert_eq!(c.endpoints_of_network(&front.id).len(), 2 * PER_HOST);
}

/// A driver whose networks have no IPAM pool, so nothing but the network
/// object itself ties an endpoint to its network.
struct NoIpamDriver;

impl crate::driver::Driver for NoIpamDriver {
    fn name(&self) -> &'static str {
        "noipam"
    }

    fn capabilities(&self) -> crate::driver::DriverCapabilities {
        crate::driver::DriverCapabilities {
            scope: Scope::Local,
            uses_ipam: false,
            uses_segment: true,
            user_creatable: true,
            exclusive: false,
            routes_out: true,
            global_segment: false,
        }
    }

    fn validate(&self, _spec: &NetworkSpec) -> Result<u32, ControllerError> {
        Ok(1500)
    }

    fn plan_endpoint_port(
        &self,
        _network: &Network,
        _segment: Option<SegmentId>,
        _endpoint: &Endpoint,
    ) -> Option<crate::driver::PortPlan> {
        None
    }
}

#[test]
fn a_connect_rewrites_its_network_so_a_concurrent_remove_conflicts_even_without_a_pool() {
    let with_noipam = || {
        let mut r = DriverRegistry::builtin();
        r.register(Box::new(NoIpamDriver));
        r
    };
    let open = |store: Box<dyn Store>, host: &str, seed: u64| {
        Controller::open(
            store,
            with_noipam(),
            Box::new(ChaCha8Rng::seed_from_u64(seed)),
            ControllerOptions {
                host: host.into(),
                ..Default::default()
            },
        )
        .unwrap()
    };
    let store = MemoryStore::new();
    let interleaved = Interleaved::new(&store);
    let mut a = open(Box::new(interleaved.clone()), "a", 1);
    a.create_network(NetworkSpec {
        name: "raw".into(),
        driver: "noipam".into(),
        ..Default::default()
    })
    .unwrap();
    let b = shared(open(Box::new(store), "b", 2));
    b.lock().unwrap().create_sandbox(private("bw")).unwrap();
    let b2 = b.clone();
    interleaved.before_next_commit(move || {
        b2.lock()
            .unwrap()
            .connect("raw", "bw", EndpointSpec::default())
            .unwrap();
    });
    let err = a.remove_network("raw").unwrap_err();
    assert_eq!(
        err.to_string(),
        "network raw has active endpoints (bw); disconnect them first (switchyard network \
         disconnect raw CONTAINER)"
    );
}

#[test]
fn a_container_mode_sandbox_rewrites_its_owner_so_a_concurrent_remove_conflicts() {
    // Two controllers with the same host id (a daemon and a tool, say).
    let store = MemoryStore::new();
    let interleaved = Interleaved::new(&store);
    let mut a = host_on(interleaved.clone(), "a", 1);
    a.create_sandbox(private("app")).unwrap();
    let other = shared(host_on(store, "a", 2));
    let o2 = other.clone();
    interleaved.before_next_commit(move || {
        o2.lock()
            .unwrap()
            .create_sandbox(SandboxSpec {
                mode: NetnsMode::Container("app".into()),
                ..private("sidecar")
            })
            .unwrap();
    });
    let err = a.remove_sandbox("app", false).unwrap_err();
    assert_eq!(
        err.to_string(),
        "container app is in use: sidecar share its network namespace; remove them first or \
         use -f"
    );
}
