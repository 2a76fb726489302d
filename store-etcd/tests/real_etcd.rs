//! `EtcdStore` against a real etcd (Debian's etcd-server) started by each
//! test on free loopback ports with its own data directory, stopped by pid
//! when the test ends, pass or fail. Without an `etcd` binary the tests
//! print SKIPPED, and fail under CI.

// These tests time a real server (timeouts, TTLs, latency): the wall clock
// is what they measure.
#![allow(clippy::disallowed_methods)]

use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::json;
use std::collections::BTreeSet;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};
use switchyard_store_etcd::{EtcdOptions, EtcdStore};
use switchyard_switch::controller::model::{EndpointSpec, NetnsMode, NetworkSpec, SandboxSpec};
use switchyard_switch::store::{CommitOutcome, Compare, EventKind, Store, StoreError, Transaction};
use switchyard_switch::{Controller, ControllerOptions, DriverRegistry};

/// A running etcd, killed (by pid) and its data directory removed on drop.
struct Etcd {
    child: Option<Child>,
    data: tempfile::TempDir,
    client_port: u16,
    peer_port: u16,
    name: String,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// `None` (after a SKIPPED line) when etcd is not installed and CI is not
/// set; a panic under CI.
fn etcd(test: &str) -> Option<Etcd> {
    let found = Command::new("etcd")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        if std::env::var_os("CI").is_some() {
            panic!("{test}: the etcd binary is missing (apt-get install etcd-server); CI must run this test");
        }
        eprintln!("SKIPPED {test}: no etcd binary (apt-get install etcd-server)");
        return None;
    }
    let data = tempfile::tempdir().expect("tempdir");
    let mut etcd = Etcd {
        child: None,
        data,
        client_port: free_port(),
        peer_port: free_port(),
        name: format!("t{}", std::process::id()),
    };
    etcd.start();
    Some(etcd)
}

impl Etcd {
    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    fn endpoints(&self) -> Vec<String> {
        vec![self.endpoint()]
    }

    fn data_dir(&self) -> PathBuf {
        self.data.path().join("etcd")
    }

    /// Starts etcd on the data directory and waits until it answers.
    fn start(&mut self) {
        let client = self.endpoint();
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let log = std::fs::File::create(self.data.path().join("etcd.log")).expect("log");
        let child = Command::new("etcd")
            .arg("--name")
            .arg(&self.name)
            .arg("--data-dir")
            .arg(self.data_dir())
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &format!("{}={peer}", self.name)])
            .args(["--initial-cluster-state", "new"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start etcd");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if admin(&client, |mut c| async move { c.status().await.map(|_| ()) }).is_ok() {
                return;
            }
            if Instant::now() > deadline {
                panic!("etcd did not start; log: {}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops etcd (SIGKILL by pid) and waits for it.
    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.data.path().join("etcd.log")).unwrap_or_default()
    }

    fn admin<T, F, Fut>(&self, f: F) -> T
    where
        F: FnOnce(etcd_client::Client) -> Fut,
        Fut: std::future::Future<Output = Result<T, etcd_client::Error>>,
    {
        admin(&self.endpoint(), f).expect("etcd admin call")
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Runs one call with a client of the test's own (compaction, revocation,
/// writes outside the prefix).
fn admin<T, F, Fut>(endpoint: &str, f: F) -> Result<T, etcd_client::Error>
where
    F: FnOnce(etcd_client::Client) -> Fut,
    Fut: std::future::Future<Output = Result<T, etcd_client::Error>>,
{
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let options = etcd_client::ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(1))
            .with_timeout(Duration::from_secs(2));
        let client = etcd_client::Client::connect([endpoint], Some(options)).await?;
        f(client).await
    })
}

fn options() -> EtcdOptions {
    EtcdOptions {
        lease_ttl: Duration::from_secs(2),
        ..Default::default()
    }
}

fn open(etcd: &Etcd, prefix: &str) -> EtcdStore {
    EtcdStore::connect(&etcd.endpoints(), prefix, options()).expect("connect")
}

fn put(key: &str, value: serde_json::Value) -> Transaction {
    let mut t = Transaction::new();
    t.put(key, value);
    t
}

fn applied(o: CommitOutcome) -> u64 {
    match o {
        CommitOutcome::Applied { revision } => revision,
        CommitOutcome::Conflict(c) => panic!("unexpected conflict: {c}"),
    }
}

fn wait_until<T>(what: &str, timeout: Duration, mut probe: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        let last = match probe() {
            Ok(v) => return v,
            Err(seen) => seen,
        };
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}; last seen: {last}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn load_commit_and_compares_name_the_key_that_conflicted() {
    let Some(etcd) = etcd("load_commit_and_compares_name_the_key_that_conflicted") else {
        return;
    };
    let mut s = open(&etcd, "/sy-a/");
    let empty = s.load().unwrap();
    assert!(empty.entries.is_empty());
    let r1 = applied(s.commit(&put("a", json!({"b": 1, "a": [1, 2]}))).unwrap());
    assert!(r1 > empty.revision);
    let mut t = put("b", json!("x"));
    t.require(Compare::Missing { key: "b".into() });
    t.require(Compare::Exists { key: "a".into() });
    t.require(Compare::ModRevision {
        key: "a".into(),
        revision: r1,
    });
    t.require(Compare::ValueEquals {
        key: "a".into(),
        value: json!({"a": [1, 2], "b": 1}),
    });
    let r2 = applied(s.commit(&t).unwrap());
    assert_eq!(r2, r1 + 1, "one writer: one revision per transaction");
    let c = s.load().unwrap();
    assert_eq!(c.revision, r2);
    assert_eq!(c.entries["a"].create_revision, r1);
    assert_eq!(c.entries["b"].mod_revision, r2);
    assert_eq!(c.value("b"), Some(&json!("x")));

    // Each compare kind fails on its own, naming its key and what was found.
    let cases = [
        (Compare::Missing { key: "b".into() }, "b", Some(r2)),
        (Compare::Exists { key: "zz".into() }, "zz", None),
        (
            Compare::ModRevision {
                key: "a".into(),
                revision: r2,
            },
            "a",
            Some(r1),
        ),
        (
            Compare::ValueEquals {
                key: "a".into(),
                value: json!({"b": 2}),
            },
            "a",
            Some(r1),
        ),
    ];
    for (compare, key, found) in cases {
        let mut t = put("c", json!(1));
        t.require(Compare::Exists { key: "a".into() });
        t.require(compare.clone());
        let CommitOutcome::Conflict(conflict) = s.commit(&t).unwrap() else {
            panic!("{compare:?} must conflict");
        };
        assert_eq!(conflict.key(), key);
        assert_eq!(conflict.compare, compare);
        assert_eq!(conflict.found, found);
    }
    assert!(
        !s.load().unwrap().entries.contains_key("c"),
        "nothing written"
    );

    // Deletes, and a store under another prefix sees none of it.
    let mut t = Transaction::new();
    t.delete("a");
    t.delete("never-was");
    applied(s.commit(&t).unwrap());
    assert_eq!(s.load().unwrap().entries.keys().collect::<Vec<_>>(), ["b"]);
    let mut other = open(&etcd, "/sy-b");
    assert!(other.load().unwrap().entries.is_empty());
    assert_eq!(other.describe(), format!("etcd:{}/sy-b/", etcd.endpoint()));
}

#[test]
fn load_pages_through_many_keys_at_one_revision() {
    let Some(etcd) = etcd("load_pages_through_many_keys_at_one_revision") else {
        return;
    };
    let mut s = EtcdStore::connect(
        &etcd.endpoints(),
        "/sy/",
        EtcdOptions {
            page_size: 7,
            ..options()
        },
    )
    .unwrap();
    for chunk in 0..5 {
        let mut t = Transaction::new();
        for i in 0..20 {
            t.put(format!("k/{:03}", chunk * 20 + i), json!(i));
        }
        applied(s.commit(&t).unwrap());
    }
    // A malformed value under the prefix (written by something else) is
    // skipped and counted.
    let endpoint = etcd.endpoint();
    admin(&endpoint, |mut c| async move {
        c.put("/sy/zz-not-json", "{oops", None).await.map(|_| ())
    })
    .unwrap();
    let c = s.load().unwrap();
    assert_eq!(c.entries.len(), 100);
    // Counted by the load, and once more when the watch delivers it.
    assert!((1..=2).contains(&s.stats().malformed), "{:?}", s.stats());
}

#[test]
fn the_change_feed_lists_every_write_in_order_and_says_when_to_reload() {
    let Some(etcd) = etcd("the_change_feed_lists_every_write_in_order_and_says_when_to_reload")
    else {
        return;
    };
    let mut s = open(&etcd, "/sy/");
    let start = s.load().unwrap().revision;
    let r1 = applied(s.commit(&put("a", json!(1))).unwrap());
    // Writes outside the prefix move the revision but are not ours.
    let endpoint = etcd.endpoint();
    admin(&endpoint, |mut c| async move {
        c.put("/elsewhere/x", "1", None).await.map(|_| ())
    })
    .unwrap();
    let r2 = applied(s.commit(&put("b", json!(2))).unwrap());
    assert!(r2 >= r1 + 2, "the foreign write took a revision");
    let mut t = Transaction::new();
    t.delete("a");
    let r3 = applied(s.commit(&t).unwrap());
    let ch = s.changes_since(start).unwrap();
    assert_eq!(ch.revision, r3);
    let got: Vec<(&str, u64, bool)> = ch
        .events
        .iter()
        .map(|e| (e.key.as_str(), e.revision, e.kind == EventKind::Delete))
        .collect();
    assert_eq!(got, [("a", r1, false), ("b", r2, false), ("a", r3, true)]);
    assert!(s.changes_since(r3).unwrap().events.is_empty());
    assert_eq!(s.changes_since(r1).unwrap().events.len(), 2);

    // A deletion that is the newest revision is found too (the case the
    // buffered watch cannot prove complete on its own).
    let mut other = open(&etcd, "/sy/");
    let r4 = applied(other.commit(&put("c", json!(3))).unwrap());
    let mut t = Transaction::new();
    t.delete("c");
    let r5 = applied(other.commit(&t).unwrap());
    let ch = s.changes_since(r3).unwrap();
    assert_eq!(ch.revision, r5);
    assert_eq!(
        ch.events.iter().map(|e| e.revision).collect::<Vec<_>>(),
        [r4, r5]
    );

    // A revision the cluster never reached.
    let err = s.changes_since(r5 + 100).unwrap_err();
    assert!(
        matches!(err, StoreError::RevisionAhead { requested, current } if requested == r5 + 100 && current == r5),
        "{err}"
    );

    // History etcd compacted away; a store opened after the compaction
    // has no buffer to answer from.
    let compact_at = i64::try_from(r4).unwrap();
    admin(&endpoint, |mut c| async move {
        c.compact(compact_at, None).await.map(|_| ())
    })
    .unwrap();
    let mut late = open(&etcd, "/sy/");
    let err = late.changes_since(start).unwrap_err();
    assert!(
        matches!(err, StoreError::Compacted { requested, oldest } if requested == start && oldest == r4 - 1),
        "{err}"
    );
    assert_eq!(late.changes_since(r4).unwrap().events.len(), 1);
}

#[test]
fn the_notifier_wakes_a_host_when_another_commits() {
    let Some(etcd) = etcd("the_notifier_wakes_a_host_when_another_commits") else {
        return;
    };
    let a = open(&etcd, "/sy/");
    let mut b = open(&etcd, "/sy/");
    let wake = a.notifier();
    while wake.try_recv().is_ok() {}
    let t0 = Instant::now();
    let r = applied(b.commit(&put("x", json!(1))).unwrap());
    let seen = wake
        .recv_timeout(Duration::from_secs(2))
        .expect("a is woken");
    assert_eq!(seen, r);
    eprintln!(
        "notifier: woken {:?} after the commit started",
        t0.elapsed()
    );
}

/// Two hosts allocate numbers concurrently, each number under a key of its
/// own, through a shared counter guarded by its mod revision.
#[test]
fn two_hosts_allocating_concurrently_never_take_the_same_number() {
    let Some(etcd) = etcd("two_hosts_allocating_concurrently_never_take_the_same_number") else {
        return;
    };
    const PER_HOST: usize = 200;
    let barrier = Arc::new(Barrier::new(2));
    let threads: Vec<_> = ["a", "b"]
        .into_iter()
        .map(|host| {
            let mut s = open(&etcd, "/sy/");
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                let (mut mine, mut conflicts) = (Vec::new(), 0u64);
                while mine.len() < PER_HOST {
                    let c = s.load().unwrap();
                    let (next, compare) = match c.entries.get("next") {
                        Some(e) => (
                            e.value.as_u64().unwrap(),
                            Compare::ModRevision {
                                key: "next".into(),
                                revision: e.mod_revision,
                            },
                        ),
                        None => (0, Compare::Missing { key: "next".into() }),
                    };
                    let mut t = Transaction::new();
                    t.require(compare);
                    t.require(Compare::Missing {
                        key: format!("alloc/{next:06}"),
                    });
                    t.put("next", json!(next + 1));
                    t.put(format!("alloc/{next:06}"), json!(host));
                    match s.commit(&t).unwrap() {
                        CommitOutcome::Applied { .. } => mine.push(next),
                        CommitOutcome::Conflict(c) => {
                            assert!(c.key() == "next" || c.key().starts_with("alloc/"));
                            conflicts += 1;
                        }
                    }
                }
                (host, mine, conflicts)
            })
        })
        .collect();
    let results: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let mut all = BTreeSet::new();
    for (host, mine, conflicts) in &results {
        eprintln!(
            "host {host}: {} allocations, {conflicts} conflicts",
            mine.len()
        );
        for n in mine {
            assert!(all.insert(*n), "number {n} allocated twice");
        }
    }
    assert_eq!(all.len(), 2 * PER_HOST);
    let mut s = open(&etcd, "/sy/");
    let c = s.load().unwrap();
    let owners: Vec<(u64, String)> = c
        .entries
        .iter()
        .filter_map(|(k, e)| {
            let n = k.strip_prefix("alloc/")?.parse().ok()?;
            Some((n, e.value.as_str()?.to_string()))
        })
        .collect();
    assert_eq!(
        owners.len(),
        2 * PER_HOST,
        "every applied allocation is stored"
    );
    for (host, mine, _) in &results {
        for n in mine {
            assert!(owners.contains(&(*n, host.to_string())), "{n} is {host}'s");
        }
    }
    assert_eq!(c.value("next"), Some(&json!(2 * PER_HOST)));
}

fn host_on(store: EtcdStore, host: &str, seed: u64) -> Controller {
    Controller::open(
        Box::new(store),
        DriverRegistry::builtin(),
        Box::new(ChaCha8Rng::seed_from_u64(seed)),
        ControllerOptions {
            host: host.into(),
            ..Default::default()
        },
    )
    .expect("open the controller")
}

#[test]
fn two_controllers_on_etcd_allocating_concurrently_never_share_an_address() {
    let Some(etcd) = etcd("two_controllers_on_etcd_allocating_concurrently_never_share_an_address")
    else {
        return;
    };
    const PER_HOST: usize = 30;
    let mut a = host_on(open(&etcd, "/sy/"), "a", 1);
    a.create_network(NetworkSpec {
        name: "front".into(),
        subnets: vec!["10.9.0.0/24".parse().unwrap()],
        ..Default::default()
    })
    .unwrap();
    let b = host_on(open(&etcd, "/sy/"), "b", 2);
    assert!(b.network("front").is_ok(), "b sees a's network");
    let barrier = Arc::new(Barrier::new(2));
    let threads: Vec<_> = [a, b]
        .into_iter()
        .map(|mut c| {
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                let mut addresses = Vec::new();
                // Under this contention commits conflict often; the
                // controller's own retries (MAX_ATTEMPTS, each after
                // catching up) must carry every operation through.
                for i in 0..PER_HOST {
                    let name = format!("c{i}");
                    let spec = SandboxSpec {
                        name: name.clone(),
                        hostname: String::new(),
                        mode: NetnsMode::Private,
                        labels: Default::default(),
                    };
                    c.create_sandbox(spec)
                        .unwrap_or_else(|e| panic!("create {name}: {e}"));
                    let e = c
                        .connect("front", &name, EndpointSpec::default())
                        .unwrap_or_else(|e| panic!("connect {name}: {e}"));
                    addresses.push(e.ipv4.unwrap().ip());
                }
                (c.host().to_string(), addresses, c.conflicts())
            })
        })
        .collect();
    let mut all = BTreeSet::new();
    let mut conflicts = 0;
    for t in threads {
        let (host, addresses, c) = t.join().unwrap();
        eprintln!(
            "controller {host}: {} addresses, {c} conflicts retried",
            addresses.len()
        );
        conflicts += c;
        for ip in addresses {
            assert!(all.insert(ip), "{ip} given twice");
        }
    }
    assert_eq!(all.len(), 2 * PER_HOST);
    // A third host sees every endpoint.
    let mut c = host_on(open(&etcd, "/sy/"), "c", 3);
    c.refresh().unwrap();
    let front = c.network("front").unwrap().id.clone();
    assert_eq!(c.endpoints_of_network(&front).len(), 2 * PER_HOST);
    eprintln!("total conflicts retried: {conflicts}");
}

#[test]
fn a_leased_key_vanishes_when_its_session_dies_and_the_feed_shows_it() {
    let Some(etcd) = etcd("a_leased_key_vanishes_when_its_session_dies_and_the_feed_shows_it")
    else {
        return;
    };
    let mut observer = open(&etcd, "/sy/");
    let mut host = open(&etcd, "/sy/");
    let mut t = Transaction::new();
    t.put_leased("hosts/h1", json!({"vtep": "192.0.2.1"}));
    t.put("networks/n", json!({}));
    let r = applied(host.commit(&t).unwrap());
    // Kept alive past its TTL while the session lives.
    std::thread::sleep(Duration::from_secs(3));
    assert!(observer.load().unwrap().entries.contains_key("hosts/h1"));
    let t0 = Instant::now();
    drop(host); // a crash: nothing is revoked
    let gone = wait_until("the leased key to expire", Duration::from_secs(10), || {
        let c = observer.load().map_err(|e| e.to_string())?;
        if c.entries.contains_key("hosts/h1") {
            return Err("still there".into());
        }
        Ok(c)
    });
    eprintln!(
        "leased key gone {:?} after the session died (TTL 2 s)",
        t0.elapsed()
    );
    assert!(gone.entries.contains_key("networks/n"), "plain keys stay");
    let ch = observer.changes_since(r).unwrap();
    assert!(
        ch.events
            .iter()
            .any(|e| e.key == "hosts/h1" && e.kind == EventKind::Delete),
        "{:?}",
        ch.events
    );

    // A closed session revokes at once.
    let mut host = open(&etcd, "/sy/");
    let mut t = Transaction::new();
    t.put_leased("hosts/h2", json!(1));
    applied(host.commit(&t).unwrap());
    host.close().unwrap();
    assert!(!observer.load().unwrap().entries.contains_key("hosts/h2"));
}

#[test]
fn a_lost_session_is_reported_once_and_the_store_goes_on_with_a_new_one() {
    let Some(etcd) = etcd("a_lost_session_is_reported_once_and_the_store_goes_on_with_a_new_one")
    else {
        return;
    };
    let mut s = open(&etcd, "/sy/");
    let mut t = Transaction::new();
    t.put_leased("hosts/h1", json!(1));
    applied(s.commit(&t).unwrap());
    let old = s.lease_id();
    etcd.admin(|mut c| async move { c.lease_revoke(old).await.map(|_| ()) });
    let err = wait_until(
        "the loss to be reported",
        Duration::from_secs(10),
        || match s.commit(&t) {
            Err(e @ StoreError::LeaseLost { .. }) => Ok(e),
            other => Err(format!("{other:?}")),
        },
    );
    assert!(
        matches!(err, StoreError::LeaseLost { lease, .. } if lease == old),
        "{err}"
    );
    // Re-registering works under the new session.
    applied(s.commit(&t).unwrap());
    assert_ne!(s.lease_id(), old);
    assert_ne!(s.lease_id(), 0);
    assert!(s.load().unwrap().entries.contains_key("hosts/h1"));
    assert_eq!(s.stats().leases_lost, 1);
}

#[test]
fn etcd_down_fails_within_the_timeout_and_the_same_store_works_after_a_restart() {
    let Some(mut etcd) =
        etcd("etcd_down_fails_within_the_timeout_and_the_same_store_works_after_a_restart")
    else {
        return;
    };
    let mut s = open(&etcd, "/sy/");
    applied(s.commit(&put("a", json!(1))).unwrap());
    etcd.stop();
    for what in ["commit", "load", "changes"] {
        let t0 = Instant::now();
        let err = match what {
            "commit" => s.commit(&put("b", json!(2))).unwrap_err(),
            "load" => s.load().unwrap_err(),
            _ => s.changes_since(0).unwrap_err(),
        };
        let took = t0.elapsed();
        assert!(
            matches!(err, StoreError::Unreachable { .. }),
            "{what}: {err}"
        );
        assert!(took < Duration::from_millis(2600), "{what} took {took:?}");
        assert!(err.to_string().contains(&etcd.endpoint()), "{err}");
        eprintln!("{what} with etcd down: {took:?}: {err}");
    }
    let t0 = Instant::now();
    let err = EtcdStore::connect(&etcd.endpoints(), "/sy/", options()).unwrap_err();
    assert!(matches!(err, StoreError::Unreachable { .. }), "{err}");
    assert!(t0.elapsed() < Duration::from_millis(2600));
    etcd.start();
    let r = wait_until("the store to reconnect", Duration::from_secs(10), || {
        s.commit(&put("b", json!(2))).map_err(|e| e.to_string())
    });
    applied(r);
    let c = s.load().unwrap();
    assert_eq!(c.value("a"), Some(&json!(1)));
    assert_eq!(c.value("b"), Some(&json!(2)));
    // The watch came back too.
    let before = c.revision;
    let r = applied(s.commit(&put("c", json!(3))).unwrap());
    let ch = s.changes_since(before).unwrap();
    assert_eq!(
        ch.events.iter().map(|e| e.revision).collect::<Vec<_>>(),
        [r]
    );
}

#[test]
fn commit_latency_against_a_local_etcd() {
    let Some(etcd) = etcd("commit_latency_against_a_local_etcd") else {
        return;
    };
    let mut s = open(&etcd, "/sy/");
    let mut samples = Vec::with_capacity(1000);
    let mut revision = s.load().unwrap().revision;
    for i in 0..1000u64 {
        let mut t = put("counter", json!(i));
        t.put(format!("items/{}", i % 50), json!({"i": i}));
        if i > 0 {
            t.require(Compare::ModRevision {
                key: "counter".into(),
                revision,
            });
        }
        let t0 = Instant::now();
        revision = applied(s.commit(&t).unwrap());
        samples.push(t0.elapsed());
    }
    samples.sort();
    let p = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    eprintln!(
        "commit latency over 1000 commits: p50 {:?}, p99 {:?}, max {:?}",
        p(0.5),
        p(0.99),
        samples[samples.len() - 1]
    );
    let mut changes = Vec::with_capacity(200);
    for _ in 0..200 {
        let t0 = Instant::now();
        s.changes_since(revision).unwrap();
        changes.push(t0.elapsed());
    }
    changes.sort();
    eprintln!(
        "changes_since with nothing new: p50 {:?}, p99 {:?}",
        changes[100], changes[198]
    );
    assert!(p(0.5) < Duration::from_secs(1));
}
