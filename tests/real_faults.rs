//! Crashes and limits (issue 10, findings 4 and 7): a `kill -9` of the
//! daemon at any moment of `run`, `connect`, `disconnect` or `rm` leaves
//! nothing that no command can remove, and a daemon at its descriptor
//! limit refuses new containers with a clear error instead of half-making
//! them. The named crash points come from `SWITCHYARD_FAILPOINT`; the
//! seeded test kills the daemon at random moments.
//!
//! Replay or lengthen the random test with
//! `SWITCHYARD_FAULT_SEED=N SWITCHYARD_FAULT_ROUNDS=500 cargo test --test real_faults random`.
//! Needs root (CI runs as root); without it each test prints SKIPPED.

// Real processes are waited for with wall-clock timeouts.
#![allow(clippy::disallowed_methods)]

mod common;

use common::{holders_mentioning, require_root, run_ok, unique, wait_until, TestDaemon, EXE};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Restarts `d` with `SWITCHYARD_FAILPOINT=point`, runs `args` (which the
/// crash makes fail), waits for the daemon to die there and starts it
/// again without the failpoint.
fn crash_at(d: &mut TestDaemon, point: &str, args: &[&str]) {
    d.env = vec![("SWITCHYARD_FAILPOINT".into(), point.into())];
    d.restart();
    let out = d.cli(args);
    assert!(
        !out.status.success(),
        "{args:?} should have been cut short by the failpoint {point}:\n{}",
        d.log()
    );
    d.wait_for_exit(Duration::from_secs(10));
    d.env.clear();
    d.restart();
}

/// Interface names inside a container, `lo` included.
fn links_inside(d: &TestDaemon, name: &str) -> BTreeSet<String> {
    d.ok(&["exec", name, "--", "ip", "-o", "link"])
        .lines()
        .filter_map(|l| l.split(':').nth(1))
        .map(|n| n.trim().split('@').next().unwrap_or("").to_string())
        .collect()
}

/// The holders still running for this daemon are exactly those it reports.
fn assert_holders_accounted_for(d: &TestDaemon, context: &str) {
    let live = holders_mentioning(d.dir.path());
    let reported = d.reported_holders();
    assert_eq!(
        live,
        reported,
        "{context}: live holders vs holders in state\ndaemon log:\n{}",
        d.log()
    );
}

#[test]
fn a_crash_right_after_a_holder_starts_leaves_nothing_that_rm_cannot_remove() {
    if !require_root("crash_after_holder") {
        return;
    }
    let mut d = TestDaemon::start();
    d.ok(&["network", "create", "n1", "--subnet", "10.81.0.0/24"]);
    crash_at(
        &mut d,
        "holder-spawned",
        &[
            "run",
            "--name",
            "a",
            "--network",
            "n1",
            "-d",
            "--",
            "sleep",
            "100000",
        ],
    );
    assert_holders_accounted_for(&d, "after the restart");
    for id in d.ok(&["ps", "-q"]).split_whitespace() {
        d.ok(&["rm", "-f", id]);
    }
    wait_until("every holder to be gone", Duration::from_secs(5), || {
        let left = holders_mentioning(d.dir.path());
        left.is_empty()
            .then_some(())
            .ok_or(format!("holders {left:?}"))
    });
    d.ok(&[
        "run",
        "--name",
        "a",
        "--network",
        "n1",
        "-d",
        "--",
        "sleep",
        "100000",
    ]);
}

#[test]
fn a_crash_during_rm_leaves_no_holder_and_no_process_running() {
    if !require_root("crash_during_rm") {
        return;
    }
    let mut d = TestDaemon::start();
    d.container("a", &[]);
    d.container("h", &["--pid", "host"]);
    d.ok(&[
        "exec",
        "h",
        "--",
        "sh",
        "-c",
        "setsid sleep 4747 >/dev/null 2>&1 &",
    ]);
    let sleeping = || {
        run_ok(Command::new("ps").args(["-eo", "args"]))
            .lines()
            .any(|l| l.trim() == "sleep 4747")
    };
    assert!(sleeping());
    for name in ["a", "h"] {
        crash_at(&mut d, "sandbox-removed", &["rm", "-f", name]);
        assert_holders_accounted_for(&d, &format!("after a crash in rm {name}"));
        assert!(
            !d.containers().iter().any(|c| c["name"] == name),
            "{name} is gone from state"
        );
        assert!(
            d.log().contains("without state"),
            "the stray holder was reported:\n{}",
            d.log()
        );
    }
    assert!(d.containers().is_empty());
    wait_until("sleep 4747 to be gone", Duration::from_secs(5), || {
        (!sleeping()).then_some(()).ok_or("still running".into())
    });
}

#[test]
fn a_crash_during_disconnect_leaves_no_interface_behind() {
    if !require_root("crash_during_disconnect") {
        return;
    }
    let mut d = TestDaemon::start();
    d.ok(&["network", "create", "n1", "--subnet", "10.82.0.0/24"]);
    d.ok(&["network", "create", "n2", "--subnet", "10.83.0.0/24"]);
    d.container("a", &["--network", "n1"]);
    d.container("b", &["--network", "n2", "--ip", "10.83.0.20"]);
    d.ok(&["network", "connect", "n2", "a"]);
    assert_eq!(links_inside(&d, "a"), set(&["lo", "eth0", "eth1"]));
    crash_at(
        &mut d,
        "endpoint-left",
        &["network", "disconnect", "n2", "a"],
    );
    assert_eq!(
        links_inside(&d, "a"),
        set(&["lo", "eth0"]),
        "the TAP of the endpoint that left is gone:\n{}",
        d.log()
    );
    d.ok(&["network", "connect", "n2", "a"]);
    assert!(d.ping("a", "10.83.0.20", 2), "connect works again");
}

#[test]
fn a_crash_while_removing_an_attached_container_leaves_no_tap_in_its_namespace() {
    if !require_root("crash_rm_attached") {
        return;
    }
    let ns = Netns::add();
    let mut d = TestDaemon::start();
    d.ok(&["network", "create", "n1", "--subnet", "10.84.0.0/24"]);
    d.ok(&[
        "attach",
        "adopted",
        "--netns",
        &ns.path(),
        "--network",
        "n1",
    ]);
    assert!(ns.links().contains("eth0"));
    crash_at(&mut d, "endpoint-left", &["rm", "adopted"]);
    assert!(
        !ns.links().contains("eth0"),
        "our TAP left the adopted namespace: {}\n{}",
        ns.links(),
        d.log()
    );
    assert!(d.containers().is_empty());
}

#[test]
fn a_crash_right_after_a_tap_is_created_keeps_the_connection_after_restart() {
    if !require_root("crash_after_tap") {
        return;
    }
    let mut d = TestDaemon::start();
    d.ok(&["network", "create", "n1", "--subnet", "10.85.0.0/24"]);
    d.ok(&["network", "create", "n2", "--subnet", "10.86.0.0/24"]);
    d.container("a", &["--network", "n1"]);
    d.container("b", &["--network", "n2", "--ip", "10.86.0.20"]);
    crash_at(&mut d, "tap-created", &["network", "connect", "n2", "a"]);
    let a = d
        .containers()
        .into_iter()
        .find(|c| c["name"] == "a")
        .unwrap();
    let names: BTreeSet<String> = a["networks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["ifname"].as_str().unwrap().to_string())
        .chain(["lo".to_string()])
        .collect();
    assert_eq!(links_inside(&d, "a"), names, "interfaces match state");
    if names.contains("eth1") {
        assert!(d.ping("a", "10.86.0.20", 2), "the committed connect works");
    }
    assert_holders_accounted_for(&d, "after the restart");
}

/// Runs the daemon over `d`'s state directory until it exits on its own
/// and returns (exit code, stderr); fails the test if it keeps running.
fn daemon_start_that_must_fail(d: &TestDaemon, extra: &[&str]) -> (Option<i32>, String) {
    let mut child = Command::new(EXE)
        .arg("daemon")
        .arg("--state-dir")
        .arg(d.state_dir())
        .arg("--socket")
        .arg(&d.socket)
        .args(["--dns-upstream", "127.0.0.1:9"])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start daemon");
    let deadline = Instant::now() + Duration::from_secs(15);
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the daemon started although its state file is missing");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("collect");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Finding 3: with `state.json` gone and `state.json.prev` present, the
/// daemon refuses to start empty (exit 1, advice naming the flag), leaves
/// the copy untouched, and `--recover-from-prev` brings back the networks
/// and the live container, which still works.
#[test]
fn a_missing_state_file_with_a_previous_copy_is_refused_with_advice_and_recovered_on_request() {
    if !require_root("a_missing_state_file_with_a_previous_copy") {
        return;
    }
    let mut d = TestDaemon::start();
    let net = unique("keep");
    d.ok(&["network", "create", &net]);
    d.container("c", &["--network", &net]);
    // One more commit, so the previous copy holds the container.
    d.ok(&["network", "create", &unique("later")]);
    d.kill9();
    let state = d.state_dir().join("state.json");
    let prev = d.state_dir().join("state.json.prev");
    std::fs::remove_file(&state).expect("remove state.json");
    let prev_bytes = std::fs::read(&prev).expect("state.json.prev exists");

    let (code, stderr) = daemon_start_that_must_fail(&d, &[]);
    assert_eq!(
        code,
        Some(1),
        "exit 1 for a state problem; stderr: {stderr}"
    );
    assert!(
        stderr.contains("state.json is missing")
            && stderr.contains("state.json.prev exists")
            && stderr.contains("--recover-from-prev"),
        "the refusal names the problem, the copy and the way out: {stderr}"
    );
    assert!(!state.exists(), "no empty state was written");
    assert_eq!(
        std::fs::read(&prev).expect("copy kept"),
        prev_bytes,
        "the last good copy is untouched"
    );

    d.restart_with(&["--recover-from-prev"]);
    assert!(state.exists(), "the recovered state is the current one");
    let networks = d.ok(&["network", "ls", "--format", "json"]);
    assert!(networks.contains(&net), "{networks}");
    let names: Vec<String> = d
        .containers()
        .iter()
        .filter_map(|c| c["name"].as_str().map(str::to_string))
        .collect();
    assert!(
        names.iter().any(|n| n == "c"),
        "container c recovered: {names:?}\n{}",
        d.log()
    );
    assert!(
        d.exec_ok("c", &["true"]),
        "the recovered container still runs commands"
    );
}

#[test]
fn the_daemon_holds_at_most_three_descriptors_per_container() {
    if !require_root("descriptors_per_container") {
        return;
    }
    let d = TestDaemon::start();
    d.ok(&["network", "create", "n1", "--subnet", "10.87.0.0/24"]);
    // What each descriptor points at, so a failure names the extra ones.
    let fds = || -> Vec<String> {
        let mut targets: Vec<String> = std::fs::read_dir(format!("/proc/{}/fd", d.pid()))
            .unwrap()
            .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
            .map(|t| {
                let t = t.to_string_lossy().into_owned();
                // socket:[12345] -> socket: the inode differs per container.
                t.split('[').next().unwrap_or(&t).to_string()
            })
            .collect();
        targets.sort();
        targets
    };
    // The first container starts what every later one shares (the DNS
    // worker's sockets, for one); the limit is about what each one adds.
    d.container("c0", &["--network", "n1"]);
    let before = fds();
    for i in 1..11 {
        d.container(&format!("c{i}"), &["--network", "n1"]);
    }
    let after = fds();
    let added = after.len() as i64 - before.len() as i64;
    let mut kinds = std::collections::BTreeMap::<String, i64>::new();
    for t in &after {
        *kinds.entry(t.clone()).or_default() += 1;
    }
    for t in &before {
        *kinds.entry(t.clone()).or_default() -= 1;
    }
    kinds.retain(|_, n| *n != 0);
    eprintln!(
        "descriptors: {} with one container, {} with 11; added by kind: {kinds:?}",
        before.len(),
        after.len()
    );
    assert!(
        added <= 30,
        "{added} descriptors for 10 containers: {kinds:?}"
    );
}

#[test]
fn at_its_descriptor_limit_the_daemon_refuses_run_clearly_and_keeps_working() {
    if !require_root("descriptor_limit") {
        return;
    }
    let d = TestDaemon::start_wrapped(&["prlimit", "--nofile=160:160"], &[]);
    d.ok(&["network", "create", "n1", "--subnet", "10.88.0.0/24"]);
    let mut made = 0;
    let failure = loop {
        assert!(made < 80, "the limit was never reached");
        let name = format!("c{made}");
        let out = d.cli(&[
            "run",
            "--name",
            &name,
            "--network",
            "n1",
            "-d",
            "--",
            "sleep",
            "100000",
        ]);
        if !out.status.success() {
            break (
                out.status.code(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
                name,
            );
        }
        made += 1;
    };
    let (code, err, refused) = failure;
    eprintln!("{made} containers under a limit of 160; then: {err}");
    assert!(made >= 10, "only {made} containers fit:\n{}", d.log());
    assert_eq!(code, Some(1), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(
        err.contains("descriptors open") && err.contains("LimitNOFILE"),
        "says why and what to do: {err}"
    );
    let cs = d.containers();
    assert_eq!(cs.len(), made, "nothing half-made");
    assert!(!cs.iter().any(|c| c["name"] == refused.as_str()));
    for c in &cs {
        assert_eq!(c["status"], "running", "{c}");
        assert_eq!(c["networks"].as_array().unwrap().len(), 1, "{c}");
    }
    assert_holders_accounted_for(&d, "at the limit");
    d.ok(&["rm", "-f", "c0"]);
    d.ok(&[
        "run",
        "--name",
        &refused,
        "--network",
        "n1",
        "-d",
        "--",
        "sleep",
        "100000",
    ]);
}

// ------------------------------------------------- random fault injection

/// SplitMix64: a tiny seeded generator, so a failing run can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        (!items.is_empty()).then(|| &items[self.below(items.len())])
    }
}

fn env_number(var: &str, default: u64) -> u64 {
    match std::env::var(var) {
        Ok(v) => {
            let v = v.trim();
            let parsed = match v.strip_prefix("0x") {
                Some(hex) => u64::from_str_radix(hex, 16),
                None => v.parse(),
            };
            parsed.unwrap_or_else(|_| panic!("{var}={v} is not a number"))
        }
        Err(_) => default,
    }
}

/// A container's networks: name → (ifname, IPv4 without prefix).
fn attachments(c: &Value) -> BTreeMap<String, (String, String)> {
    c["networks"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|n| {
                    (
                        n["network"].as_str().unwrap_or("").to_string(),
                        (
                            n["ifname"].as_str().unwrap_or("").to_string(),
                            n["ipv4"]
                                .as_str()
                                .unwrap_or("")
                                .split('/')
                                .next()
                                .unwrap_or("")
                                .to_string(),
                        ),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The invariants after every round: unique addresses and MACs; every
/// container alive, and every live holder one that state knows; each
/// container's interfaces exactly its endpoints; and each container pings
/// another on each of its networks.
fn check_invariants(d: &TestDaemon, context: &str) {
    let cs = d.containers();
    let mut ips = BTreeSet::new();
    let mut macs = BTreeSet::new();
    for c in &cs {
        assert_eq!(c["status"], "running", "{context}: {c}\n{}", d.log());
        for n in c["networks"].as_array().unwrap() {
            let ip = n["ipv4"].as_str().unwrap_or("").to_string();
            let mac = n["mac"].as_str().unwrap_or("").to_string();
            assert!(ips.insert(ip.clone()), "{context}: duplicate address {ip}");
            assert!(macs.insert(mac.clone()), "{context}: duplicate MAC {mac}");
        }
    }
    assert_holders_accounted_for(d, context);
    let mut on: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for c in &cs {
        let name = c["name"].as_str().unwrap().to_string();
        let nets = attachments(c);
        let expected: BTreeSet<String> = nets
            .values()
            .map(|(ifname, _)| ifname.clone())
            .chain(["lo".to_string()])
            .collect();
        assert_eq!(
            links_inside(d, &name),
            expected,
            "{context}: {name}'s interfaces vs its endpoints\n{}",
            d.log()
        );
        for (net, (_, ip)) in nets {
            on.entry(net).or_default().push((name.clone(), ip));
        }
    }
    for (net, members) in &on {
        for (i, (from, _)) in members.iter().enumerate() {
            let Some((to, ip)) = members
                .get((i + 1) % members.len())
                .filter(|_| members.len() > 1)
            else {
                continue;
            };
            let reached = d.ping(from, ip, 1) || d.ping(from, ip, 1);
            assert!(
                reached,
                "{context}: {from} cannot ping {to} ({ip}) on {net}\n{}",
                d.log()
            );
        }
    }
}

#[test]
fn random_kill_9_during_run_connect_disconnect_and_rm_keeps_everything_consistent() {
    if !require_root("random_faults") {
        return;
    }
    let seed = env_number("SWITCHYARD_FAULT_SEED", 3);
    let rounds = env_number("SWITCHYARD_FAULT_ROUNDS", 15);
    eprintln!(
        "fault injection: seed {seed}, {rounds} rounds (replay: SWITCHYARD_FAULT_SEED={seed} SWITCHYARD_FAULT_ROUNDS={rounds})"
    );
    let mut rng = Rng(seed);
    let mut d = TestDaemon::start();
    d.ok(&["network", "create", "f0", "--subnet", "10.90.0.0/24"]);
    d.ok(&["network", "create", "f1", "--subnet", "10.91.0.0/24"]);
    let mut kills = 0;
    for round in 0..rounds {
        let networks: Vec<String> = d
            .ok(&["network", "ls", "--format", "json"])
            .parse::<Value>()
            .ok()
            .and_then(|v| v.as_array().cloned())
            .unwrap_or_default()
            .iter()
            .filter_map(|n| n["Name"].as_str().map(str::to_string))
            .filter(|n| n.starts_with('f'))
            .collect();
        let cs = d.containers();
        let names: Vec<String> = cs
            .iter()
            .filter_map(|c| c["name"].as_str().map(str::to_string))
            .collect();
        // run 5/12, connect 2/12, disconnect 2/12, rm 2/12, network create 1/12.
        let mut op = rng.below(12);
        if names.is_empty() && (5..11).contains(&op) {
            op = 0;
        }
        if names.len() >= 8 && op < 5 {
            op = 9;
        }
        let args: Vec<String> = match op {
            0..=4 => {
                let net = rng.pick(&networks).cloned().unwrap_or("f0".into());
                let name = unique("r");
                vec![
                    "run",
                    "--name",
                    &name,
                    "--network",
                    &net,
                    "-d",
                    "--",
                    "sleep",
                    "100000",
                ]
                .into_iter()
                .map(String::from)
                .collect()
            }
            5..=8 => {
                let c = &cs[rng.below(cs.len())];
                let name = c["name"].as_str().unwrap().to_string();
                let joined: Vec<String> = attachments(c).into_keys().collect();
                let (verb, net) = if op <= 6 {
                    let free: Vec<String> = networks
                        .iter()
                        .filter(|n| !joined.contains(n))
                        .cloned()
                        .collect();
                    ("connect", rng.pick(&free).cloned())
                } else {
                    ("disconnect", rng.pick(&joined).cloned())
                };
                match net {
                    Some(net) => vec!["network".into(), verb.into(), net, name],
                    None => vec!["rm".into(), "-f".into(), name],
                }
            }
            9..=10 => vec!["rm".into(), "-f".into(), rng.pick(&names).unwrap().clone()],
            _ => {
                let k = 2 + rng.below(3);
                vec![
                    "network".into(),
                    "create".into(),
                    format!("f{k}"),
                    "--subnet".into(),
                    format!("10.9{k}.0.0/24"),
                ]
            }
        };
        let kill_after = (rng.below(10) < 7).then(|| Duration::from_millis(rng.below(150) as u64));
        let context = format!(
            "seed {seed} round {round}: `switchyard {}`{}",
            args.join(" "),
            match kill_after {
                Some(t) => format!(", daemon killed after {} ms", t.as_millis()),
                None => String::new(),
            }
        );
        eprintln!("{context}");
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut child = d.cli_spawn(&argv);
        if let Some(delay) = kill_after {
            // The random moment of the crash (not a wait for a condition).
            std::thread::sleep(delay);
            d.kill9();
            kills += 1;
        }
        wait_until(
            &format!("{context}: the CLI to exit"),
            Duration::from_secs(30),
            || match child.try_wait() {
                Ok(Some(_)) => Ok(()),
                Ok(None) => Err("still running".into()),
                Err(e) => Err(e.to_string()),
            },
        );
        if kill_after.is_some() {
            d.restart();
        }
        check_invariants(&d, &context);
    }
    eprintln!("fault injection: {rounds} rounds, {kills} kills, seed {seed}: consistent");
}

fn set(v: &[&str]) -> BTreeSet<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// `ip netns` namespace removed on drop.
struct Netns(String);

impl Netns {
    fn add() -> Netns {
        let ns = Netns(unique("swyf"));
        run_ok(Command::new("ip").args(["netns", "add", &ns.0]));
        run_ok(Command::new("ip").args(["-n", &ns.0, "link", "set", "lo", "up"]));
        ns
    }
    fn path(&self) -> String {
        format!("/run/netns/{}", self.0)
    }
    fn links(&self) -> String {
        run_ok(Command::new("ip").args(["-n", &self.0, "-o", "link"]))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}
