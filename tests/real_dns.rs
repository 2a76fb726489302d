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
