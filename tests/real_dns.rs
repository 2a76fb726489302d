//! The embedded resolver at 127.0.0.11 in real namespaces, asked by real
//! clients (`dig`, glibc's `getent`), forwarding to a `dnsmasq` the test
//! starts on loopback. Needs root (CI runs as root).

// Real processes are waited for with wall-clock timeouts.
#![allow(clippy::disallowed_methods)]

mod common;

use common::{require_root, TestDaemon};
use std::net::UdpSocket;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// `dig +short` from inside a container.
fn dig(d: &TestDaemon, from: &str, args: &[&str]) -> String {
    let mut argv = vec![
        "exec",
        from,
        "--",
        "dig",
        "+short",
        "+time=3",
        "+tries=1",
        "@127.0.0.11",
    ];
    argv.extend_from_slice(args);
    d.ok(&argv)
}

/// The status (NOERROR, NXDOMAIN, SERVFAIL, ...) of a query.
fn status(d: &TestDaemon, from: &str, args: &[&str]) -> String {
    let mut argv = vec![
        "exec",
        from,
        "--",
        "dig",
        "+time=5",
        "+tries=1",
        "@127.0.0.11",
    ];
    argv.extend_from_slice(args);
    let out = d.ok(&argv);
    out.lines()
        .find_map(|l| l.split("status: ").nth(1))
        .map(|s| s.split(',').next().unwrap_or("").to_string())
        .unwrap_or_else(|| panic!("no status in dig output:\n{out}"))
}

/// A dnsmasq on 127.0.0.1:PORT answering `*.upstream.test`, killed on drop.
struct Upstream {
    child: Child,
    port: u16,
}

impl Upstream {
    fn start() -> Upstream {
        // Find a free port, then let dnsmasq take it.
        let port = UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("dnsmasq")
            .args([
                "--no-daemon",
                "--no-resolv",
                "--no-hosts",
                "--bind-interfaces",
                "--listen-address=127.0.0.1",
                "--user=root",
                "--pid-file=",
                "--address=/upstream.test/192.0.2.7",
                // Everything else: answered locally with NXDOMAIN.
                "--address=/#/",
            ])
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start dnsmasq (Debian package dnsmasq-base)");
        let up = Upstream { child, port };
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            let out = Command::new("dig")
                .args([
                    "+short",
                    "+time=1",
                    "+tries=1",
                    "-p",
                    &port.to_string(),
                    "@127.0.0.1",
                    "x.upstream.test",
                ])
                .output()
                .unwrap();
            if String::from_utf8_lossy(&out.stdout).contains("192.0.2.7") {
                return up;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("dnsmasq did not come up on port {port}");
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn container_names_and_name_dot_network_resolve_with_dig_and_glibc() {
    if !require_root("dns_names") {
        return;
    }
    let d = TestDaemon::start();
    d.ok(&["network", "create", "front", "--subnet", "10.50.0.0/24"]);
    d.container("a", &["--network", "front"]);
    d.container("b", &["--network", "front", "--ip", "10.50.0.20"]);
    assert_eq!(dig(&d, "a", &["b"]).trim(), "10.50.0.20");
    assert_eq!(
        dig(&d, "a", &["B.front"]).trim(),
        "10.50.0.20",
        "case-insensitive NAME.NETWORK"
    );
    assert_eq!(
        dig(&d, "a", &["+tcp", "b"]).trim(),
        "10.50.0.20",
        "over TCP too"
    );
    assert_eq!(
        dig(&d, "a", &["-x", "10.50.0.20"])
            .lines()
            .next()
            .unwrap_or(""),
        "b."
    );
    let getent = d.ok(&["exec", "a", "--", "getent", "hosts", "b"]);
    assert!(getent.starts_with("10.50.0.20"), "{getent}");
    assert_eq!(
        status(&d, "a", &["b", "AAAA"]),
        "NOERROR",
        "a known name without IPv6 is NODATA"
    );
}

#[test]
fn a_shared_alias_returns_every_address_in_rotating_order() {
    if !require_root("dns_alias") {
        return;
    }
    let d = TestDaemon::start();
    d.ok(&["network", "create", "front", "--subnet", "10.51.0.0/24"]);
    d.container("client", &["--network", "front"]);
    d.container(
        "w1",
        &["--network", "front", "--ip", "10.51.0.11", "--alias", "web"],
    );
    d.container(
        "w2",
        &["--network", "front", "--ip", "10.51.0.12", "--alias", "web"],
    );
    let mut firsts = std::collections::BTreeSet::new();
    for _ in 0..12 {
        let out = dig(&d, "client", &["web"]);
        let mut got: Vec<&str> = out.lines().collect();
        firsts.insert(got[0].to_string());
        got.sort();
        assert_eq!(got, ["10.51.0.11", "10.51.0.12"]);
    }
    assert_eq!(
        firsts.len(),
        2,
        "the order rotates between queries: {firsts:?}"
    );
}

#[test]
fn names_are_scoped_to_the_networks_a_container_is_on() {
    if !require_root("dns_scope") {
        return;
    }
    let up = Upstream::start();
    let d = TestDaemon::start_with(&["--dns-upstream", &format!("127.0.0.1:{}", up.port)]);
    d.ok(&["network", "create", "front", "--subnet", "10.52.0.0/24"]);
    d.ok(&["network", "create", "back", "--subnet", "10.53.0.0/24"]);
    d.container("a", &["--network", "front"]);
    d.container("secret", &["--network", "back"]);
    assert_eq!(
        dig(&d, "a", &["secret"]).trim(),
        "",
        "a name on another network is not answered"
    );
    assert_eq!(
        status(&d, "a", &["secret"]),
        "NXDOMAIN",
        "the upstream does not know it either"
    );
    assert!(
        dig(&d, "secret", &["secret"]).contains("10.53.0."),
        "but its own network does"
    );
}

#[test]
fn the_default_bridge_has_no_names() {
    if !require_root("dns_default_bridge") {
        return;
    }
    let d = TestDaemon::start();
    d.container("a", &[]);
    d.container("b", &[]);
    assert_eq!(
        dig(&d, "a", &["b"]).trim(),
        "",
        "no names on the default bridge (Docker's rule)"
    );
    // Empty output is also what a dead resolver gives. SERVFAIL proves the
    // resolver answered: it had no local record, so it forwarded to the
    // test daemon's dead upstream (127.0.0.1:9).
    assert_eq!(status(&d, "a", &["b"]), "SERVFAIL");
}

#[test]
fn disconnect_removes_the_record_at_once_and_connect_adds_it() {
    if !require_root("dns_updates") {
        return;
    }
    let d = TestDaemon::start();
    d.ok(&["network", "create", "front", "--subnet", "10.54.0.0/24"]);
    d.container("a", &["--network", "front"]);
    d.container("b", &["--network", "front", "--ip", "10.54.0.30"]);
    assert_eq!(dig(&d, "a", &["b"]).trim(), "10.54.0.30");
    d.ok(&["network", "disconnect", "front", "b"]);
    assert_eq!(
        dig(&d, "a", &["b"]).trim(),
        "",
        "gone with the very next query"
    );
    d.ok(&[
        "network",
        "connect",
        "front",
        "b",
        "--ip",
        "10.54.0.31",
        "--alias",
        "bee",
    ]);
    assert_eq!(dig(&d, "a", &["bee"]).trim(), "10.54.0.31");
}

#[test]
fn unknown_names_are_forwarded_to_the_upstream_on_loopback() {
    if !require_root("dns_forward") {
        return;
    }
    let up = Upstream::start();
    let d = TestDaemon::start_with(&["--dns-upstream", &format!("127.0.0.1:{}", up.port)]);
    d.ok(&["network", "create", "front"]);
    d.container("a", &["--network", "front"]);
    assert_eq!(dig(&d, "a", &["www.upstream.test"]).trim(), "192.0.2.7");
    assert_eq!(
        dig(&d, "a", &["+tcp", "tcp.upstream.test"]).trim(),
        "192.0.2.7",
        "TCP forwarding"
    );
    let getent = d.ok(&["exec", "a", "--", "getent", "hosts", "glibc.upstream.test"]);
    assert!(getent.starts_with("192.0.2.7"), "{getent}");
}

#[test]
fn internal_networks_never_forward() {
    if !require_root("dns_internal") {
        return;
    }
    let up = Upstream::start();
    let d = TestDaemon::start_with(&["--dns-upstream", &format!("127.0.0.1:{}", up.port)]);
    d.ok(&["network", "create", "inner", "--internal"]);
    d.container("a", &["--network", "inner"]);
    assert_eq!(dig(&d, "a", &["www.upstream.test"]).trim(), "");
    assert_eq!(status(&d, "a", &["www.upstream.test"]), "NXDOMAIN");
}

#[test]
fn upstream_down_gives_servfail_within_the_timeout() {
    if !require_root("dns_servfail") {
        return;
    }
    // Nothing listens on port 9 of loopback.
    let d = TestDaemon::start();
    d.ok(&["network", "create", "front"]);
    d.container("a", &["--network", "front"]);
    let started = Instant::now();
    assert_eq!(status(&d, "a", &["nowhere.example"]), "SERVFAIL");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "answered in {:?}",
        started.elapsed()
    );
}

#[test]
fn a_dead_first_upstream_costs_its_timeout_once_not_every_query() {
    if !require_root("dns_dead_first_upstream") {
        return;
    }
    let up = Upstream::start();
    // Nothing listens on port 9 of loopback: every query sent there times
    // out (2 s).
    let d = TestDaemon::start_with(&[
        "--dns-upstream",
        "127.0.0.1:9",
        "--dns-upstream",
        &format!("127.0.0.1:{}", up.port),
    ]);
    d.ok(&["network", "create", "front"]);
    d.container("a", &["--network", "front"]);
    assert_eq!(
        dig(&d, "a", &["+time=5", "first.upstream.test"]).trim(),
        "192.0.2.7",
        "answered by the second upstream after the first timed out"
    );
    // dig gives up after 1 s, before the 2 s upstream timeout: only a
    // resolver that now asks the live upstream first can answer in time.
    for name in ["second.upstream.test", "third.upstream.test"] {
        assert_eq!(
            dig(&d, "a", &["+time=1", name]).trim(),
            "192.0.2.7",
            "{name} goes straight to the live upstream"
        );
    }
}

/// An upstream on loopback that answers every A query with 192.0.2.8
/// after `delay`, and records the source port of each query.
struct SlowUpstream {
    port: u16,
    sources: std::sync::Arc<std::sync::Mutex<Vec<u16>>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl SlowUpstream {
    fn start(delay: Duration) -> SlowUpstream {
        use std::sync::atomic::{AtomicBool, Ordering};
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let port = socket.local_addr().unwrap().port();
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let sources = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let record = sources.clone();
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            while !stopped.load(Ordering::Relaxed) {
                let Ok((n, from)) = socket.recv_from(&mut buf) else {
                    continue;
                };
                record.lock().unwrap().push(from.port());
                if n < 12 {
                    continue;
                }
                // The header and question only (the query's EDNS record is
                // dropped), then one answer.
                let mut end = 12;
                while end < n && buf[end] != 0 {
                    end += 1 + buf[end] as usize;
                }
                let question_end = end + 5;
                if question_end > n {
                    continue;
                }
                std::thread::sleep(delay);
                let mut reply = buf[..question_end].to_vec();
                reply[2] |= 0x80; // QR
                reply[6..12].copy_from_slice(&[0, 1, 0, 0, 0, 0]); // AN 1, NS 0, AR 0
                                                                   // NAME (pointer to the question), A, IN, TTL 60, 192.0.2.8.
                reply.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 8]);
                let _ = socket.send_to(&reply, from);
            }
        });
        SlowUpstream {
            port,
            sources,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for SlowUpstream {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[test]
fn a_slow_upstreams_late_answer_is_relayed_while_the_next_is_tried() {
    if !require_root("dns_slow_upstream") {
        return;
    }
    let slow = SlowUpstream::start(Duration::from_millis(2500));
    // The first upstream answers after 2.5 s, past the 2 s timeout; the
    // second (port 9) never answers.
    let d = TestDaemon::start_with(&[
        "--dns-upstream",
        &format!("127.0.0.1:{}", slow.port),
        "--dns-upstream",
        "127.0.0.1:9",
    ]);
    d.ok(&["network", "create", "front"]);
    d.container("a", &["--network", "front"]);
    assert_eq!(
        dig(&d, "a", &["+time=6", "slow.example"]).trim(),
        "192.0.2.8",
        "the first upstream's late answer, not SERVFAIL after the second timed out"
    );
}

#[test]
fn forwarded_queries_leave_from_random_ports() {
    if !require_root("dns_source_ports") {
        return;
    }
    let up = SlowUpstream::start(Duration::ZERO);
    let d = TestDaemon::start_with(&["--dns-upstream", &format!("127.0.0.1:{}", up.port)]);
    d.ok(&["network", "create", "front"]);
    d.container("a", &["--network", "front"]);
    for i in 0..20 {
        assert_eq!(
            dig(&d, "a", &[&format!("q{i}.example")]).trim(),
            "192.0.2.8"
        );
    }
    let ports: std::collections::BTreeSet<u16> =
        up.sources.lock().unwrap().iter().copied().collect();
    // Eight pool ports, one picked per query by a secret hash of its random
    // id: twenty queries from fewer than three ports would be a fixed port,
    // not bad luck.
    assert!(
        ports.len() >= 3,
        "20 forwarded queries came from only {ports:?}"
    );
}

#[test]
fn rename_moves_the_name_at_once() {
    if !require_root("dns_rename") {
        return;
    }
    let d = TestDaemon::start();
    d.ok(&["network", "create", "front", "--subnet", "10.55.0.0/24"]);
    d.container("a", &["--network", "front"]);
    d.container("old", &["--network", "front", "--ip", "10.55.0.40"]);
    assert_eq!(dig(&d, "a", &["old"]).trim(), "10.55.0.40");
    d.ok(&["rename", "old", "new"]);
    assert_eq!(
        dig(&d, "a", &["new"]).trim(),
        "10.55.0.40",
        "the new name answers at once"
    );
    assert_eq!(dig(&d, "a", &["old"]).trim(), "", "the old one is gone");
}

/// Processes started in a container for the length of a test, killed and
/// reaped on drop so a failing assertion leaves nothing behind (each also
/// ends on its own: the scripts below stop after their duration and run
/// under `timeout`; the daemon's drop then removes the containers).
struct Background(Vec<Child>);

impl Background {
    /// Starts `switchyard exec CONTAINER -- timeout LIMIT ARGV...` with
    /// stdout captured.
    fn spawn(&mut self, d: &TestDaemon, container: &str, limit_secs: u32, argv: &[&str]) {
        let child = Command::new(common::EXE)
            .args(["exec", container, "--", "timeout", &limit_secs.to_string()])
            .args(argv)
            .env("SWITCHYARD_SOCKET", &d.socket)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start a process in the container");
        self.0.push(child);
    }

    /// True while every process still runs.
    fn all_running(&mut self) -> bool {
        self.0.iter_mut().all(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Waits for every process; returns each one's stdout, failing the test
    /// if one did not exit 0.
    fn finish(&mut self) -> Vec<String> {
        self.0
            .drain(..)
            .map(|c| {
                let out = c.wait_with_output().expect("wait");
                assert!(
                    out.status.success(),
                    "background process failed ({}): {}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr)
                );
                String::from_utf8_lossy(&out.stdout).trim().to_string()
            })
            .collect()
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Sends queries to 127.0.0.11 over UDP as fast as it can for argv[1]
/// seconds, never reading the replies; prints how many it sent. The name
/// has 120 labels, the costliest kind of query to answer (the resolver
/// tries every split as NAME.NETWORK before its NXDOMAIN), so that even on
/// two cores the flood outruns the DNS thread and keeps its socket full.
const UDP_FLOOD: &str = r#"
import socket, sys, time
query = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00" + b"\x01a" * 120 + b"\x00\x00\x01\x00\x01"
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.connect(("127.0.0.11", 53))
send = s.send
sent = 0
end = time.monotonic() + float(sys.argv[1])
while time.monotonic() < end:
    for _ in range(1000):
        send(query)
    sent += 1000
print(sent)
"#;

/// Asks 127.0.0.11 for `A argv[1]` (one label) up to argv[2] times, 0.1 s
/// apart, stopping at the first not answered within 1 s; prints how many
/// were answered and the median and slowest answer in milliseconds.
const UDP_PROBE: &str = r#"
import socket, sys, time
name = sys.argv[1].encode()
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.connect(("127.0.0.11", 53))
s.settimeout(1)
took = []
for i in range(int(sys.argv[2])):
    qid = (i + 1).to_bytes(2, "big")
    q = qid + b"\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00" + bytes([len(name)]) + name + b"\x00\x00\x01\x00\x01"
    start = time.monotonic()
    s.send(q)
    try:
        while s.recv(4096)[:2] != qid:
            pass
    except socket.timeout:
        break
    took.append(time.monotonic() - start)
    time.sleep(0.1)
took.sort()
ms = lambda t: round(t * 1000)
print(len(took), ms(took[len(took) // 2]) if took else -1, ms(took[-1]) if took else -1)
"#;

/// Opens argv[1] TCP connections to 127.0.0.11:53 and, for argv[2]
/// seconds, pipelines `A noisy` queries on all of them as fast as they are
/// taken, never reading a reply; prints how many bytes it sent.
const TCP_NEVER_READS: &str = r#"
import socket, sys, time
query = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x05noisy\x00\x00\x01\x00\x01"
block = (len(query).to_bytes(2, "big") + query) * 1000
conns = []
for _ in range(int(sys.argv[1])):
    c = socket.create_connection(("127.0.0.11", 53), timeout=5)
    c.setblocking(False)
    conns.append([c, 0])
sent = 0
end = time.monotonic() + float(sys.argv[2])
while time.monotonic() < end:
    progress = False
    for conn in conns:
        try:
            n = conn[0].send(block[conn[1]:])
        except OSError:
            continue
        conn[1] = (conn[1] + n) % len(block)
        sent += n
        progress = True
    if not progress:
        time.sleep(0.01)
print(sent)
"#;

#[test]
fn a_udp_flood_from_one_container_does_not_starve_another() {
    if !require_root("dns_udp_flood") {
        return;
    }
    let d = TestDaemon::start();
    // Internal: the flood's unknown names are answered NXDOMAIN at once,
    // nothing is forwarded.
    d.ok(&[
        "network",
        "create",
        "front",
        "--internal",
        "--subnet",
        "10.56.0.0/24",
    ]);
    d.container("noisy", &["--network", "front", "--ip", "10.56.0.10"]);
    d.container("quiet", &["--network", "front", "--ip", "10.56.0.20"]);
    assert_eq!(dig(&d, "quiet", &["noisy"]).trim(), "10.56.0.10");
    let mut flood = Background(Vec::new());
    for _ in 0..3 {
        flood.spawn(&d, "noisy", 20, &["python3", "-c", UDP_FLOOD, "8"]);
    }
    std::thread::sleep(Duration::from_secs(2));
    // Served in turn, the quiet container waits at most one round: a
    // bounded share of the flood (tens of ms in a debug build). Starved, it
    // waits until the flood happens to leave the socket nearly empty, which
    // takes hundreds of ms to seconds.
    let mut probe = Background(Vec::new());
    probe.spawn(
        &d,
        "quiet",
        30,
        &["python3", "-c", UDP_PROBE, "noisy", "20"],
    );
    let out = probe.finish().remove(0);
    let nums: Vec<i64> = out
        .split_whitespace()
        .map(|n| n.parse().expect("the probe prints numbers"))
        .collect();
    let [answered, median_ms, worst_ms] = nums[..] else {
        panic!("probe output: {out}");
    };
    // A functional bound only (each query's own 1 s timeout), not a latency
    // assertion: the starved server answered none of them.
    assert_eq!(
        answered, 20,
        "queries from the quiet container each answered within 1 s during the flood \
         (median {median_ms} ms, slowest {worst_ms} ms)"
    );
    assert_eq!(
        dig(&d, "quiet", &["quiet"]).trim(),
        "10.56.0.20",
        "dig during the flood"
    );
    assert!(
        flood.all_running(),
        "the flood must outlast the queries, or they prove nothing"
    );
    for sent in flood.finish() {
        let sent: u64 = sent.parse().expect("the flooder prints a count");
        assert!(sent > 10_000, "a flood sends many queries, not {sent}");
    }
}

#[test]
fn tcp_clients_that_never_read_do_not_stall_dns() {
    if !require_root("dns_tcp_never_read") {
        return;
    }
    let d = TestDaemon::start();
    d.ok(&["network", "create", "front", "--subnet", "10.57.0.0/24"]);
    d.container("noisy", &["--network", "front", "--ip", "10.57.0.10"]);
    d.container("quiet", &["--network", "front", "--ip", "10.57.0.20"]);
    assert_eq!(dig(&d, "quiet", &["+tcp", "noisy"]).trim(), "10.57.0.10");
    let mut stuck = Background(Vec::new());
    stuck.spawn(
        &d,
        "noisy",
        20,
        &["python3", "-c", TCP_NEVER_READS, "30", "8"],
    );
    // By then the replies fill the first connections' socket buffers while
    // the others still pipeline queries as fast as they are taken. Before,
    // one blocking write of 1 s per stuck connection stalled every sandbox.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        dig(&d, "quiet", &["+tcp", "noisy"]).trim(),
        "10.57.0.10",
        "TCP during the stall"
    );
    assert_eq!(
        dig(&d, "quiet", &["noisy"]).trim(),
        "10.57.0.10",
        "UDP during the stall"
    );
    assert_eq!(
        dig(&d, "quiet", &["+tcp", "quiet"]).trim(),
        "10.57.0.20",
        "TCP again"
    );
    assert!(
        stuck.all_running(),
        "the stuck clients must outlast the queries, or they prove nothing"
    );
    let sent: u64 = stuck.finish()[0]
        .parse()
        .expect("the client prints a count");
    assert!(
        sent > 100_000,
        "the clients pipelined queries ({sent} bytes)"
    );
}

/// Pipelines up to argv[1] `A noisy` queries on one TCP connection without
/// reading until the server stops taking them for 5 s, then reads every
/// reply; prints whether sending stalled, how many queries went out and
/// how many replies came back.
const TCP_READS_LATE: &str = r#"
import select, socket, sys, time
query = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x05noisy\x00\x00\x01\x00\x01"
frame = len(query).to_bytes(2, "big") + query
data = memoryview(frame * int(sys.argv[1]))
c = socket.create_connection(("127.0.0.11", 53), timeout=5)
c.setblocking(False)
at = 0
last = time.monotonic()
while at < len(data) and time.monotonic() - last < 5:
    try:
        at += c.send(data[at:at + 65536])
        last = time.monotonic()
    except BlockingIOError:
        time.sleep(0.005)
stalled = at < len(data)
end = at + (-at) % len(frame)
expected = end // len(frame)
got = 0
buf = bytearray()
deadline = time.monotonic() + 30
while got < expected and time.monotonic() < deadline:
    if at < end:
        try:
            at += c.send(data[at:end])
        except BlockingIOError:
            pass
    if not select.select([c], [], [], 0.1)[0]:
        continue
    try:
        chunk = c.recv(1 << 20)
    except OSError:
        break
    if not chunk:
        break
    buf += chunk
    pos = 0
    while len(buf) - pos >= 2:
        n = int.from_bytes(buf[pos:pos + 2], "big")
        if len(buf) - pos - 2 < n:
            break
        pos += 2 + n
        got += 1
    del buf[:pos]
print(stalled, expected, got)
"#;

#[test]
fn a_tcp_client_that_reads_late_is_throttled_and_gets_every_reply() {
    if !require_root("dns_tcp_reads_late") {
        return;
    }
    let d = TestDaemon::start();
    d.ok(&["network", "create", "front", "--subnet", "10.58.0.0/24"]);
    d.container("noisy", &["--network", "front", "--ip", "10.58.0.10"]);
    let mut client = Background(Vec::new());
    client.spawn(
        &d,
        "noisy",
        60,
        &["python3", "-c", TCP_READS_LATE, "500000"],
    );
    let out = client.finish().remove(0);
    let fields: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(fields.len(), 3, "client output: {out}");
    assert_eq!(
        fields[0], "True",
        "the server stops taking queries while their replies are not read"
    );
    let expected: u64 = fields[1].parse().unwrap();
    assert!(expected > 1000, "only {expected} queries went out");
    assert_eq!(
        fields[2], fields[1],
        "every query is answered once the client reads (none lost, the connection kept)"
    );
}

/// Opens a TCP connection to 127.0.0.11:53, sends nothing and prints how
/// many seconds pass until the server closes it (or "open" after 20 s).
const TCP_IDLE: &str = r#"
import socket, time
c = socket.create_connection(("127.0.0.11", 53), timeout=5)
c.settimeout(20)
start = time.monotonic()
try:
    data = c.recv(1)
    print(round(time.monotonic() - start, 1) if data == b"" else "data")
except socket.timeout:
    print("open")
except OSError:
    print(round(time.monotonic() - start, 1))
"#;

#[test]
fn idle_tcp_connections_are_closed() {
    if !require_root("dns_tcp_idle") {
        return;
    }
    let d = TestDaemon::start();
    d.ok(&["network", "create", "front"]);
    d.container("a", &["--network", "front"]);
    let mut idle = Background(Vec::new());
    idle.spawn(&d, "a", 30, &["python3", "-c", TCP_IDLE]);
    let out = idle.finish().remove(0);
    let secs: f64 = out
        .parse()
        .unwrap_or_else(|_| panic!("the idle connection was not closed: {out}"));
    assert!(
        (5.0..16.0).contains(&secs),
        "closed after {secs} s (idle timeout 10 s)"
    );
}

/// Opens argv[1] TCP connections to 127.0.0.11:53 and sends nothing; after
/// a second, counts how many the server has closed, writes "OPEN CLOSED" to
/// the file argv[3] and keeps the open ones for argv[2] more seconds.
const TCP_HOARD: &str = r#"
import os, socket, sys, time
conns = [socket.create_connection(("127.0.0.11", 53), timeout=5) for _ in range(int(sys.argv[1]))]
time.sleep(1)
closed = 0
for c in conns:
    c.setblocking(False)
    try:
        if c.recv(1) == b"":
            closed += 1
    except BlockingIOError:
        pass
    except OSError:
        closed += 1
with open(sys.argv[3] + ".tmp", "w") as f:
    f.write(f"{len(conns) - closed} {closed}")
os.rename(sys.argv[3] + ".tmp", sys.argv[3])
time.sleep(float(sys.argv[2]))
"#;

/// Runs [`TCP_HOARD`] in `container` with `conns` connections held for
/// `hold_secs`, and waits until they are open. Returns the running process,
/// the guard of its ready file and its report ("OPEN CLOSED").
fn hoard_tcp(
    d: &TestDaemon,
    container: &str,
    conns: u32,
    hold_secs: u32,
) -> (Background, RemoveOnDrop, String) {
    // The container shares the host's /tmp (only resolv.conf is mounted
    // over), so the hoarder can say when it is ready through a file.
    let ready = std::env::temp_dir().join(common::unique("sy-hoard"));
    let guard = RemoveOnDrop(ready.clone());
    let mut hoard = Background(Vec::new());
    hoard.spawn(
        d,
        container,
        40,
        &[
            "python3",
            "-c",
            TCP_HOARD,
            &conns.to_string(),
            &hold_secs.to_string(),
            ready.to_str().unwrap(),
        ],
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(report) = std::fs::read_to_string(&ready) {
            return (hoard, guard, report);
        }
        assert!(Instant::now() < deadline, "the hoarder never got ready");
        assert!(
            hoard.all_running(),
            "the hoarder failed: {:?}",
            hoard.finish()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn one_container_cannot_hoard_every_tcp_connection() {
    if !require_root("dns_tcp_hoard") {
        return;
    }
    let d = TestDaemon::start();
    d.ok(&["network", "create", "front", "--subnet", "10.59.0.0/24"]);
    d.container("noisy", &["--network", "front", "--ip", "10.59.0.10"]);
    d.container("quiet", &["--network", "front", "--ip", "10.59.0.20"]);
    let (mut hoard, _ready, counts) = hoard_tcp(&d, "noisy", 600, 6);
    // 600 connections are more than the daemon's global limit of 512: before
    // the per-container limit, the quiet container's TCP query was refused.
    assert_eq!(
        dig(&d, "quiet", &["+tcp", "noisy"]).trim(),
        "10.59.0.10",
        "TCP from another container while one holds {counts} (open closed) connections"
    );
    assert!(
        hoard.all_running(),
        "the hoarder must still hold its connections"
    );
    assert_eq!(
        counts, "64 536",
        "one container keeps at most 64 connections (open, closed by the server)"
    );
    hoard.finish();
}

/// CPU time (user + system, in clock ticks) a process has used.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which may contain spaces): state is
    // field 3, utime 14 and stime 15.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

#[test]
fn running_out_of_descriptors_pauses_the_dns_listener_instead_of_spinning() {
    if !require_root("dns_emfile") {
        return;
    }
    let d = TestDaemon::start();
    d.ok(&["network", "create", "front", "--subnet", "10.60.0.0/24"]);
    d.container("noisy", &["--network", "front", "--ip", "10.60.0.10"]);
    d.container("quiet", &["--network", "front", "--ip", "10.60.0.20"]);
    let pid = d.pid();
    let open = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count();
    // Leave the daemon room for 16 more descriptors, then hoard 60 TCP
    // connections: accepting runs out of descriptors.
    let limit = format!("--nofile={}:", open + 16);
    common::run_ok(Command::new("prlimit").args(["--pid", &pid.to_string(), &limit]));
    let (mut hoard, _ready, _) = hoard_tcp(&d, "noisy", 60, 4);
    // Connections are still waiting in the listener's backlog. Spinning on
    // it would take a whole core; paused, the daemon idles.
    let before = cpu_ticks(pid);
    std::thread::sleep(Duration::from_secs(2));
    let used = cpu_ticks(pid) - before;
    eprintln!("daemon CPU while out of descriptors: {used} ticks in 2 s");
    assert!(
        used < 50,
        "the daemon used {used} ticks of CPU in 2 s while out of descriptors"
    );
    hoard.finish();
    common::run_ok(Command::new("prlimit").args(["--pid", &pid.to_string(), "--nofile=4096:"]));
    // Descriptors free again: the listener is back within a sweep.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        dig(&d, "quiet", &["+tcp", "noisy"]).trim(),
        "10.60.0.10",
        "TCP after the shortage"
    );
}

/// Removes a file when the test ends, however it ends.
struct RemoveOnDrop(std::path::PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// From 127.0.0.1:40000, sends one query for a name the (dead) upstreams
/// will never answer, and exits without waiting for the reply.
const UDP_ASK_AND_LEAVE: &str = r#"
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 40000))
q = b"\x43\x21\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x07nowhere\x07example\x00\x00\x01\x00\x01"
s.sendto(q, ("127.0.0.11", 53))
"#;

/// Listens on 127.0.0.1:40000 for argv[1] seconds; prints what arrived.
const UDP_LISTEN: &str = r#"
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 40000))
s.settimeout(float(sys.argv[1]))
try:
    data, peer = s.recvfrom(4096)
    print("got", len(data), "bytes from", peer)
except socket.timeout:
    print("nothing")
"#;

#[test]
fn a_late_answer_for_a_removed_container_does_not_reach_the_next_one() {
    if !require_root("dns_stale_pending") {
        return;
    }
    // Three dead upstreams, 2 s each: the SERVFAIL for the query comes 6 s
    // after it, long after its container is gone and another has taken its
    // sockets' place.
    let d = TestDaemon::start_with(&[
        "--dns-upstream",
        "127.0.0.1:9",
        "--dns-upstream",
        "127.0.0.2:9",
        "--dns-upstream",
        "127.0.0.3:9",
    ]);
    d.ok(&["network", "create", "front"]);
    d.container("gone", &["--network", "front"]);
    let asked = Instant::now();
    d.ok(&["exec", "gone", "--", "python3", "-c", UDP_ASK_AND_LEAVE]);
    d.ok(&["rm", "-f", "gone"]);
    d.container("next", &["--network", "front"]);
    let wait = Duration::from_secs(8).saturating_sub(asked.elapsed());
    assert!(
        wait >= Duration::from_secs(3),
        "the new container must be listening before the answer is due ({:?} left)",
        wait
    );
    let heard = d.ok(&[
        "exec",
        "next",
        "--",
        "python3",
        "-c",
        UDP_LISTEN,
        &format!("{:.1}", wait.as_secs_f64()),
    ]);
    assert_eq!(
        heard.trim(),
        "nothing",
        "the answer meant for the removed container went out of the new one's socket"
    );
}

/// Pipelines argv[1] queries for distinct unknown names on one TCP
/// connection, then reads the replies for up to 15 s; prints how many came
/// back and how many of those were SERVFAIL.
const TCP_MANY_FORWARDS: &str = r#"
import socket, sys, time
n = int(sys.argv[1])
c = socket.create_connection(("127.0.0.11", 53), timeout=5)
for i in range(n):
    label = b"q%d" % i
    q = i.to_bytes(2, "big") + b"\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00" + bytes([len(label)]) + label + b"\x07example\x00\x00\x01\x00\x01"
    c.sendall(len(q).to_bytes(2, "big") + q)
c.settimeout(1)
buf = b""
got = servfail = 0
deadline = time.monotonic() + 15
while got < n and time.monotonic() < deadline:
    try:
        chunk = c.recv(65536)
    except socket.timeout:
        continue
    if not chunk:
        break
    buf += chunk
    while len(buf) >= 2 and len(buf) >= 2 + int.from_bytes(buf[:2], "big"):
        m = buf[2:2 + int.from_bytes(buf[:2], "big")]
        buf = buf[2 + len(m):]
        got += 1
        servfail += (m[3] & 0x0f) == 2
print(got, servfail)
"#;

/// Threads of a process with this name.
fn threads_named(pid: u32, name: &str) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|tasks| {
            tasks
                .flatten()
                .filter(|t| {
                    std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.trim() == name)
                })
                .count()
        })
        .unwrap_or(0)
}

#[test]
fn tcp_forwarding_threads_are_bounded() {
    if !require_root("dns_tcp_forward_threads") {
        return;
    }
    // An upstream that takes connections (the kernel completes them into
    // the backlog) but never answers: each forwarding thread waits for its
    // 2 s timeout.
    let black_hole = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = black_hole.local_addr().unwrap().port();
    let d = TestDaemon::start_with(&["--dns-upstream", &format!("127.0.0.1:{port}")]);
    d.ok(&["network", "create", "front"]);
    d.container("a", &["--network", "front"]);
    let mut client = Background(Vec::new());
    client.spawn(&d, "a", 40, &["python3", "-c", TCP_MANY_FORWARDS, "100"]);
    // Every query is forwarded within moments; the threads live ~2 s.
    let mut most = 0;
    let deadline = Instant::now() + Duration::from_millis(1500);
    while Instant::now() < deadline {
        most = most.max(threads_named(d.pid(), "dns-tcp-fwd"));
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(most > 0, "the queries were forwarded over TCP");
    assert!(
        most <= 64,
        "{most} forwarding threads at once for 100 queries"
    );
    // The ones not sent are answered all the same, by the timeout.
    let out = client.finish().remove(0);
    assert_eq!(out, "100 100", "replies and SERVFAILs out of 100");
}

/// How often the thread named `name` of process `pid` went to sleep
/// (`voluntary_ctxt_switches`): each is a wait that ended in a wakeup.
fn sleeps_of_thread(pid: u32, name: &str) -> u64 {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).unwrap();
    let task = tasks
        .flatten()
        .find(|t| std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.trim() == name))
        .unwrap_or_else(|| panic!("no thread named {name}"));
    let status = std::fs::read_to_string(task.path().join("status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("voluntary_ctxt_switches in the thread's status")
}

#[test]
fn an_idle_dns_server_sleeps_until_woken_instead_of_ticking() {
    if !require_root("dns_idle_sleep") {
        return;
    }
    // Fixed upstreams (the test daemon's default): no resolv.conf to watch.
    let d = TestDaemon::start();
    d.ok(&["network", "create", "front", "--subnet", "10.61.0.0/24"]);
    d.container("a", &["--network", "front"]);
    d.container("b", &["--network", "front", "--ip", "10.61.0.20"]);
    assert_eq!(
        dig(&d, "a", &["b"]).trim(),
        "10.61.0.20",
        "the server answers"
    );
    // Answered from the records: no query pending, no TCP connection, no
    // upstream port draining. Nothing is due, so nothing should wake it
    // (a fixed one-second tick would, three times).
    std::thread::sleep(Duration::from_millis(300));
    let before = sleeps_of_thread(d.pid(), "dns");
    std::thread::sleep(Duration::from_secs(3));
    let woke = sleeps_of_thread(d.pid(), "dns") - before;
    assert!(woke <= 1, "the idle DNS thread woke {woke} times in 3 s");
}
