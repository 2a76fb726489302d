//! Real mode end to end: a daemon per test, containers in real namespaces
//! on TAP ports of the userspace switch, real `ping`, `iperf3`, `ip`.
//! Needs root (CI runs as root); without it each test prints SKIPPED.

// Real processes are waited for with wall-clock timeouts.
#![allow(clippy::disallowed_methods)]

mod common;

use common::{
    as_test_user, copy_executable, ensure_test_user, process_alive, require_root, run_ok, unique,
    wait_until, TestDaemon, EXE,
};
use serde_json::Value;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// Waits until something inside `container` listens on TCP `port`.
fn wait_for_listener(d: &TestDaemon, container: &str, port: u16) {
    let filter = format!("sport = :{port}");
    wait_until(
        &format!("a TCP listener on port {port} in {container}"),
        Duration::from_secs(10),
        || {
            let out = d.cli(&["exec", container, "--", "ss", "-Hltn", &filter]);
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            if out.status.success() && !text.trim().is_empty() {
                Ok(())
            } else {
                Err(format!("ss: {text:?}"))
            }
        },
    );
}

/// Waits until `pid` has exited.
fn wait_for_exit_of(pid: &str) {
    wait_until(
        &format!("process {pid} to exit"),
        Duration::from_secs(10),
        || {
            let alive = pid.parse().is_ok_and(process_alive);
            (!alive).then_some(()).ok_or("still running".into())
        },
    );
}

/// Waits until no process runs exactly `args`.
fn wait_until_not_running(args: &str) {
    wait_until(
        &format!("`{args}` to be gone"),
        Duration::from_secs(10),
        || {
            let ps = run_ok(Command::new("ps").args(["-eo", "args"]));
            (!ps.lines().any(|l| l.trim() == args))
                .then_some(())
                .ok_or("still running".into())
        },
    );
}

/// ICMP echo requests a container's own IPv4 stack has received
/// (`Icmp: InEchos` of its `/proc/net/snmp`).
fn echo_requests_received(d: &TestDaemon, container: &str) -> u64 {
    let snmp = d.ok(&["exec", container, "--", "cat", "/proc/net/snmp"]);
    let mut icmp = snmp.lines().filter(|l| l.starts_with("Icmp:"));
    let (names, values) = (icmp.next().unwrap(), icmp.next().unwrap());
    let at = names
        .split_whitespace()
        .position(|n| n == "InEchos")
        .expect("InEchos in /proc/net/snmp");
    values.split_whitespace().nth(at).unwrap().parse().unwrap()
}

fn port_counters(d: &TestDaemon, network: &str, container: &str) -> Value {
    let v: Value = serde_json::from_str(&d.ok(&["network", "inspect", network])).unwrap();
    v[0]["Switchyard"]["Ports"][container].clone()
}

#[test]
fn two_containers_on_a_network_ping_each_other_and_another_network_is_isolated() {
    if !require_root("two_containers_ping") {
        return;
    }
    let d = TestDaemon::start();
    d.ok(&["network", "create", "front", "--subnet", "10.31.0.0/24"]);
    d.ok(&["network", "create", "back", "--subnet", "10.32.0.0/24"]);
    d.container("a", &["--network", "front"]);
    d.container("b", &["--network", "front"]);
    d.container("c", &["--network", "back"]);
    let (ib, ic) = (d.ip_of("b"), d.ip_of("c"));
    let b_echoes = echo_requests_received(&d, "b");
    assert!(d.ping("a", &ib, 2), "a reaches b on the same network");
    assert!(
        echo_requests_received(&d, "b") >= b_echoes + 2,
        "b's stack counts the echo requests it gets"
    );
    assert!(d.ping("b", &d.ip_of("a"), 1), "and back");
    let before = port_counters(&d, "back", "c");
    assert!(
        !d.ping("a", &ic, 2),
        "a must not reach c on another network"
    );
    let after = port_counters(&d, "back", "c");
    assert_eq!(
        before["tx_frames"], after["tx_frames"],
        "nothing from a's network reached c's port: {after}"
    );
    // c's own attempt goes to its gateway, which answers c's ARP (one
    // frame of 42 bytes) but must not route the echo to the other network.
    // Counted by b's own stack, not by frames to b's port: a and b's
    // IPv6 start-up multicast (DAD, MLD reports, router solicitations,
    // seconds after the interfaces come up) reaches b's port too.
    let echoes_before = echo_requests_received(&d, "b");
    assert!(!d.ping("c", &ib, 1), "c must not reach b");
    assert!(!d.ping("c", &ib, 1), "c must not reach b, twice");
    assert_eq!(
        echo_requests_received(&d, "b"),
        echoes_before,
        "no echo request from c reached b"
    );
    let front_ports = port_counters(&d, "front", "a");
    assert!(front_ports["rx_frames"].as_u64().unwrap() > 0);
}

#[test]
fn disconnect_cuts_at_once_and_connect_restores() {
    if !require_root("disconnect_cuts") {
        return;
    }
    let d = TestDaemon::start();
    d.ok(&["network", "create", "n1", "--subnet", "10.33.0.0/24"]);
    d.container("a", &["--network", "n1"]);
    d.container("b", &["--network", "n1", "--ip", "10.33.0.50"]);
    assert!(d.ping("a", "10.33.0.50", 1));
    d.ok(&["network", "disconnect", "n1", "b"]);
    assert!(
        !d.ping("a", "10.33.0.50", 1),
        "unreachable right after disconnect"
    );
    let links = run_ok(
        Command::new(EXE)
            .env("SWITCHYARD_SOCKET", &d.socket)
            .args(["exec", "b", "--", "ip", "-o", "link"]),
    );
    assert!(!links.contains("eth0"), "b's interface is gone: {links}");
    d.ok(&["network", "connect", "n1", "b", "--ip", "10.33.0.50"]);
    assert!(
        d.ping("a", "10.33.0.50", 2),
        "reachable again after connect"
    );
}

#[test]
fn static_ip_is_honoured_and_mac_follows_dockers_convention() {
    if !require_root("static_ip") {
        return;
    }
    let d = TestDaemon::start();
    d.ok(&["network", "create", "n1", "--subnet", "10.34.0.0/24"]);
    d.container("a", &["--network", "n1", "--ip", "10.34.0.77"]);
    let addr = d.ok(&["exec", "a", "--", "ip", "-o", "addr", "show", "eth0"]);
    assert!(addr.contains("inet 10.34.0.77/24"), "{addr}");
    let link = d.ok(&["exec", "a", "--", "ip", "-o", "link", "show", "eth0"]);
    assert!(
        link.contains("02:42:0a:22:00:4d"),
        "MAC derived from the IP: {link}"
    );
    let route = d.ok(&["exec", "a", "--", "ip", "route"]);
    assert!(route.contains("default via 10.34.0.1 dev eth0"), "{route}");
    let resolv = d.ok(&["exec", "a", "--", "cat", "/etc/resolv.conf"]);
    assert!(resolv.contains("nameserver 127.0.0.11"), "{resolv}");
    assert_eq!(d.ok(&["exec", "a", "--", "hostname"]).trim(), "a");
}

#[test]
fn container_mode_sees_the_owners_interfaces() {
    if !require_root("container_mode") {
        return;
    }
    let d = TestDaemon::start();
    d.ok(&["network", "create", "n1", "--subnet", "10.35.0.0/24"]);
    d.container("owner", &["--network", "n1", "--ip", "10.35.0.9"]);
    let out = d.ok(&[
        "run",
        "--name",
        "side",
        "--network",
        "container:owner",
        "--",
        "ip",
        "-o",
        "addr",
    ]);
    assert!(
        out.contains("10.35.0.9/24"),
        "sidecar sees owner's eth0: {out}"
    );
    let (code, err) = d.fails(&["network", "connect", "n1", "side"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("shares the network namespace of owner"),
        "{err}"
    );
}

#[test]
fn none_network_has_only_loopback_and_refuses_connect() {
    if !require_root("none_network") {
        return;
    }
    let d = TestDaemon::start();
    d.ok(&["network", "create", "n1"]);
    let out = d.ok(&[
        "run",
        "--name",
        "lonely",
        "--network",
        "none",
        "--",
        "ip",
        "-o",
        "link",
    ]);
    let names: Vec<&str> = out
        .lines()
        .filter_map(|l| l.split(':').nth(1))
        .map(str::trim)
        .collect();
    assert_eq!(names, ["lo"], "{out}");
    let (code, err) = d.fails(&["network", "connect", "n1", "lonely"]);
    assert_eq!(code, 1);
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(err.contains("--network none"), "{err}");
}

#[test]
fn host_network_runs_in_the_host_namespace() {
    if !require_root("host_network") {
        return;
    }
    let d = TestDaemon::start();
    let ours = std::fs::read_link("/proc/self/ns/net").unwrap();
    let out = d.ok(&[
        "run",
        "--name",
        "h",
        "--network",
        "host",
        "--",
        "readlink",
        "/proc/self/ns/net",
    ]);
    assert_eq!(out.trim(), ours.display().to_string());
}

#[test]
fn foreground_run_returns_the_commands_exit_status() {
    if !require_root("foreground_run") {
        return;
    }
    let d = TestDaemon::start();
    let out = d.cli(&["run", "--name", "x", "--rm", "--", "sh", "-c", "exit 7"]);
    assert_eq!(out.status.code(), Some(7));
    assert!(d.ok(&["ps", "-q"]).trim().is_empty(), "--rm removed it");
    let out = d.cli(&["run", "--name", "y", "--", "true"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        d.ok(&["ps"]).contains("exited 0"),
        "ps shows the exit status"
    );
}

#[test]
fn iperf3_tcp_moves_data_both_ways() {
    if !require_root("iperf3_tcp") {
        return;
    }
    let d = TestDaemon::start();
    d.ok(&["network", "create", "n1", "--subnet", "10.36.0.0/24"]);
    d.container("srv", &["--network", "n1", "--ip", "10.36.0.2"]);
    d.container("cli", &["--network", "n1"]);
    d.ok(&["exec", "srv", "--", "iperf3", "-s", "-D", "-p", "5201"]);
    wait_for_listener(&d, "srv", 5201);
    for reverse in [false, true] {
        let mut args = vec![
            "exec",
            "cli",
            "--",
            "iperf3",
            "-c",
            "10.36.0.2",
            "-t",
            "2",
            "-J",
        ];
        if reverse {
            args.push("-R");
        }
        let v: Value = serde_json::from_str(&d.ok(&args)).unwrap();
        let bytes = v["end"]["sum_received"]["bytes"].as_u64().unwrap();
        assert!(
            bytes > 10_000_000,
            "reverse={reverse}: only {bytes} bytes moved"
        );
    }
}

#[test]
fn daemon_restart_after_sigkill_keeps_containers_connected() {
    if !require_root("daemon_restart") {
        return;
    }
    let mut d = TestDaemon::start();
    d.ok(&["network", "create", "n1", "--subnet", "10.37.0.0/24"]);
    d.container("a", &["--network", "n1"]);
    d.container("b", &["--network", "n1", "--ip", "10.37.0.20"]);
    assert!(d.ping("a", "10.37.0.20", 1));
    d.kill9();
    d.restart();
    assert!(
        d.ping("a", "10.37.0.20", 2),
        "ping resumes after the restart:\n{}",
        d.log()
    );
    let ps = d.ok(&["ps"]);
    assert!(ps.contains("running") && ps.contains("10.37.0.20"), "{ps}");
    // New allocations do not collide with restored ones.
    d.container("c", &["--network", "n1"]);
    let ic = d.ip_of("c");
    assert_ne!(ic, "10.37.0.20");
    assert_ne!(ic, d.ip_of("a"));
}

#[test]
fn container_whose_namespace_vanished_is_cleaned_up_on_restart() {
    if !require_root("vanished_namespace") {
        return;
    }
    let mut d = TestDaemon::start();
    d.ok(&["network", "create", "n1"]);
    d.container("doomed", &["--network", "n1"]);
    let v: Value = serde_json::from_str(&d.ok(&["ps", "--format", "json"])).unwrap();
    let holder = v[0]["holder_pid"].as_u64().unwrap().to_string();
    d.kill9();
    // Everything in the sandbox dies while the daemon is down.
    common::kill_processes_mentioning(&d.state_dir());
    let _ = Command::new("kill").args(["-KILL", &holder]).status();
    wait_for_exit_of(&holder);
    d.restart();
    assert!(
        d.ok(&["ps", "-q"]).trim().is_empty(),
        "the lost container was removed"
    );
    assert!(
        d.log().contains("lost its namespace"),
        "and it was logged:\n{}",
        d.log()
    );
    d.ok(&["network", "rm", "n1"]);
}

#[test]
fn bad_input_exits_1_with_one_clear_line() {
    if !require_root("bad_input") {
        return;
    }
    let d = TestDaemon::start();
    d.ok(&["network", "create", "n1", "--subnet", "10.38.0.0/24"]);
    d.container("a", &["--network", "n1", "--ip", "10.38.0.5"]);
    d.container("off", &["--network", "none"]);
    let cases: [(&[&str], &str); 7] = [
        (
            &["run", "--name", "x", "--network", "nope", "--", "true"],
            "network nope not found",
        ),
        (&["network", "create", "n1"], "already exists"),
        (
            &["run", "--name", "a", "--network", "n1", "--", "true"],
            "already in use",
        ),
        (
            &[
                "run",
                "--name",
                "y",
                "--network",
                "n1",
                "--ip",
                "10.99.0.5",
                "--",
                "true",
            ],
            "outside subnet",
        ),
        (
            &[
                "run",
                "--name",
                "z",
                "--network",
                "n1",
                "--ip",
                "10.38.0.5",
                "--",
                "true",
            ],
            "already in use",
        ),
        (&["network", "connect", "n1", "off"], "cannot be connected"),
        (
            &["run", "--name", "p", "-p", "8080:80/sctp", "--", "true"],
            "protocol sctp is not supported",
        ),
    ];
    for (args, needle) in cases {
        let (code, err) = d.fails(args);
        assert_eq!(code, 1, "{args:?}: exit status");
        assert_eq!(
            err.trim_end().lines().count(),
            1,
            "{args:?}: one line, got:\n{err}"
        );
        assert!(err.contains(needle), "{args:?}: {err}");
    }
    // Nothing half-made was left behind by the failed runs.
    let names: Vec<String> = d
        .ok(&["ps"])
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().nth(1).unwrap().to_string())
        .collect();
    assert_eq!(names, ["a", "off"]);
}

#[test]
fn attach_adopts_a_namespace_made_by_ip_netns() {
    if !require_root("attach") {
        return;
    }
    let ns = Netns::add();
    let d = TestDaemon::start();
    d.ok(&["network", "create", "n1", "--subnet", "10.39.0.0/24"]);
    d.container("a", &["--network", "n1"]);
    let path = ns.path();
    d.ok(&[
        "attach",
        "adopted",
        "--netns",
        &path,
        "--network",
        "n1",
        "--ip",
        "10.39.0.99",
    ]);
    let addr = run_ok(Command::new("ip").args(["-n", &ns.0, "-o", "addr", "show", "eth0"]));
    assert!(addr.contains("10.39.0.99/24"), "{addr}");
    assert!(d.ping("a", "10.39.0.99", 2));
    d.ok(&["rm", "adopted"]);
    let links = run_ok(Command::new("ip").args(["-n", &ns.0, "-o", "link"]));
    assert!(
        !links.contains("eth0"),
        "our TAP left the adopted namespace: {links}"
    );
}

#[test]
fn attach_of_something_that_is_not_a_network_namespace_is_a_user_mistake() {
    if !require_root("attach_not_a_namespace") {
        return;
    }
    let d = TestDaemon::start();
    for path in ["/etc/passwd", "/proc/self/ns/uts", "/tmp"] {
        let (code, err) = d.fails(&["attach", "x", "--netns", path]);
        assert_eq!(code, 1, "{path}: exit status, got: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{path}: one line: {err}");
        assert!(
            err.contains("not a network namespace")
                && err.contains("/run/netns/NAME")
                && err.contains("/proc/PID/ns/net"),
            "{path}: says what to give: {err}"
        );
    }
    assert!(d.ok(&["ps", "-q"]).trim().is_empty(), "nothing was adopted");
}

#[test]
fn a_second_daemon_on_the_same_state_dir_is_refused() {
    if !require_root("second_daemon") {
        return;
    }
    let d = TestDaemon::start();
    let out = Command::new(EXE)
        .args(["daemon", "--state-dir"])
        .arg(d.state_dir())
        .arg("--socket")
        .arg(d.dir.path().join("other.sock"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("pid {}", d.pid())),
        "names the holder: {err}"
    );
}

#[test]
fn the_daemon_raises_its_descriptor_limit_to_the_hard_limit() {
    if !require_root("fd_limit") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("api.sock");
    // prlimit (util-linux) starts it with a soft limit of 256 under a hard
    // limit of 4096; a daemon holding descriptors per container needs more.
    let mut child = Command::new("prlimit")
        .arg("--nofile=256:4096")
        .arg(EXE)
        .args(["daemon", "--dns-upstream", "127.0.0.1:9", "--state-dir"])
        .arg(dir.path().join("state"))
        .arg("--socket")
        .arg(&socket)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start prlimit (util-linux)");
    struct Kill<'a>(&'a mut std::process::Child);
    impl Drop for Kill<'_> {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let pid = child.id();
    let _guard = Kill(&mut child);
    wait_until("the daemon's socket", Duration::from_secs(20), || {
        socket.exists().then_some(()).ok_or("no socket yet".into())
    });
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let numbers: Vec<&str> = line.split_whitespace().skip(3).take(2).collect();
    assert_eq!(numbers, ["4096", "4096"], "{line}");
}

#[test]
fn api_socket_is_owner_only_and_sigterm_stops_cleanly() {
    if !require_root("socket_mode") {
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let mut d = TestDaemon::start();
    let mode = std::fs::metadata(&d.socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let status = d.terminate();
    assert!(status.success(), "{status}");
    assert!(!d.socket.exists(), "socket removed on a clean stop");
    let out = Command::new(EXE)
        .env("SWITCHYARD_SOCKET", &d.socket)
        .args(["network", "ls"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot reach the switchyard daemon"));
}

#[test]
fn inspect_prints_docker_shaped_json_with_counters() {
    if !require_root("inspect_json") {
        return;
    }
    let d = TestDaemon::start();
    d.ok(&[
        "network",
        "create",
        "n1",
        "--subnet",
        "10.40.0.0/24",
        "--ip-range",
        "10.40.0.128/25",
    ]);
    d.container("a", &["--network", "n1"]);
    let v: Value = serde_json::from_str(&d.ok(&["network", "inspect", "n1"])).unwrap();
    let n = &v[0];
    assert_eq!(n["Name"], "n1");
    assert_eq!(n["Driver"], "bridge");
    assert_eq!(n["IPAM"]["Config"][0]["Subnet"], "10.40.0.0/24");
    assert_eq!(n["IPAM"]["Config"][0]["Gateway"], "10.40.0.1");
    assert_eq!(n["IPAM"]["Config"][0]["IPRange"], "10.40.0.128/25");
    let c = n["Containers"]
        .as_object()
        .unwrap()
        .values()
        .next()
        .unwrap();
    assert_eq!(c["Name"], "a");
    assert!(
        c["IPv4Address"].as_str().unwrap().starts_with("10.40.0.1"),
        "from the range: {c}"
    );
    assert!(n["Switchyard"]["Counters"]["rx_frames"].is_u64());
    let subnet = d.ok(&[
        "network",
        "inspect",
        "n1",
        "--format",
        "{{.IPAM.Config[0].Subnet}}",
    ]);
    assert_eq!(subnet.trim(), "10.40.0.0/24");
    let ls: Value =
        serde_json::from_str(&d.ok(&["network", "ls", "--format", "json", "-f", "driver=bridge"]))
            .unwrap();
    assert_eq!(ls.as_array().unwrap().len(), 2, "bridge and n1");
}

#[test]
fn rm_stops_every_process_inside_the_container() {
    if !require_root("rm_kills") {
        return;
    }
    let d = TestDaemon::start();
    d.container("a", &[]);
    // A process started with exec, detached from the exec itself.
    d.ok(&[
        "exec",
        "a",
        "--",
        "sh",
        "-c",
        "setsid sleep 4242 >/dev/null 2>&1 &",
    ]);
    let running = || {
        run_ok(Command::new("ps").args(["-eo", "args"]))
            .lines()
            .any(|l| l.trim() == "sleep 4242")
    };
    assert!(running());
    let (code, err) = d.fails(&["rm", "a"]);
    assert_eq!(code, 1, "a running container needs -f: {err}");
    d.ok(&["rm", "-f", "a"]);
    wait_until_not_running("sleep 4242");
}

#[test]
fn rootless_daemon_runs_containers_that_ping_and_resolve_each_other() {
    if !require_root("rootless_daemon (root sets up the unprivileged user)") {
        return;
    }
    let (uid, gid) = ensure_test_user();
    let dir = tempfile::Builder::new()
        .prefix("swy-rootless-")
        .tempdir()
        .unwrap();
    run_ok(
        Command::new("chown")
            .arg(format!("{uid}:{gid}"))
            .arg(dir.path()),
    );
    run_ok(Command::new("chmod").arg("0755").arg(dir.path()));
    let bin = dir.path().join("switchyard");
    copy_executable(Path::new(EXE), &bin);
    let script = format!(
        r#"set -eu
D={dir}
B={bin}
export XDG_RUNTIME_DIR=$D/run XDG_DATA_HOME=$D/data
mkdir -p $XDG_RUNTIME_DIR
$B daemon > $D/daemon.log 2>&1 &
DPID=$!
trap 'kill $DPID 2>/dev/null; wait $DPID 2>/dev/null' EXIT
for i in $(seq 150); do $B network ls -q >/dev/null 2>&1 && break; sleep 0.1; done
test -S $XDG_RUNTIME_DIR/switchyard/switchyard.sock
test -f $XDG_DATA_HOME/switchyard/state.json
$B network create rl --subnet 10.77.0.0/24 >/dev/null
$B run --name a --network rl -d -- sleep 1000 >/dev/null
$B run --name b --network rl -d -- sleep 1000 >/dev/null
$B exec a -- id -u
$B exec a -- ping -c 2 -i 0.2 -W 1 10.77.0.3 >/dev/null && echo PING-OK
$B exec a -- getent hosts b
$B ps --format json | grep -q '"user_namespace": true' && echo USERNS-OK
$B exec a -- grep CapEff /proc/self/status
$B exec a -- $B network ls >/dev/null 2>&1 && echo API-REACHABLE
$B exec a -- test -e $XDG_DATA_HOME/switchyard/state.json && echo STATE-VISIBLE
$B exec a -- sh -c 'echo inner-pid $$'
$B rm -f a b >/dev/null
echo ROOTLESS DAEMON PASSED
"#,
        dir = dir.path().display(),
        bin = bin.display()
    );
    let out = as_test_user(&uid, &gid, "bash")
        .args(["-c", &script])
        .current_dir("/")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let log = std::fs::read_to_string(dir.path().join("daemon.log")).unwrap_or_default();
    common::kill_processes_mentioning(dir.path());
    assert!(
        out.status.success() && stdout.contains("ROOTLESS DAEMON PASSED"),
        "rootless run failed ({}):\nstdout: {stdout}\nstderr: {}\ndaemon log:\n{log}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.lines().next() == Some("0"),
        "uid 0 inside the user namespace: {stdout}"
    );
    assert!(
        stdout.contains("PING-OK") && stdout.contains("USERNS-OK"),
        "{stdout}"
    );
    assert!(
        stdout.contains("10.77.0.3") && stdout.contains(" b"),
        "b resolves: {stdout}"
    );
    assert!(
        stdout.contains("CapEff:\t00000000a80425fb"),
        "Docker's default capabilities inside the user namespace: {stdout}"
    );
    assert!(
        !stdout.contains("API-REACHABLE") && !stdout.contains("STATE-VISIBLE"),
        "the daemon's socket and state are hidden: {stdout}"
    );
    let inner: u32 = stdout
        .lines()
        .find_map(|l| l.strip_prefix("inner-pid "))
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or(u32::MAX);
    assert!(inner < 100, "its own PID namespace: {stdout}");
}

#[test]
fn a_busy_polling_daemon_forwards_and_resolves_as_usual() {
    if !require_root("busy_poll") {
        return;
    }
    let d = TestDaemon::start_with(&["--busy-poll-us", "50", "--dns-busy-poll-us", "50"]);
    d.ok(&["network", "create", "n1", "--subnet", "10.41.0.0/24"]);
    d.container("a", &["--network", "n1"]);
    d.container("b", &["--network", "n1", "--ip", "10.41.0.9"]);
    assert!(d.ping("a", "10.41.0.9", 2));
    let out = d.ok(&["exec", "a", "--", "getent", "hosts", "b"]);
    assert!(out.starts_with("10.41.0.9"), "{out}");
}

/// `ip netns` namespace removed on drop.
struct Netns(String);

impl Netns {
    fn add() -> Netns {
        let ns = Netns(unique("swyn"));
        run_ok(Command::new("ip").args(["netns", "add", &ns.0]));
        run_ok(Command::new("ip").args(["-n", &ns.0, "link", "set", "lo", "up"]));
        ns
    }
    fn path(&self) -> String {
        format!("/run/netns/{}", self.0)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

#[test]
fn rm_stops_processes_inside_even_after_the_holder_died() {
    if !require_root("rm_after_holder_died") {
        return;
    }
    let d = TestDaemon::start();
    d.container("a", &[]);
    d.ok(&[
        "exec",
        "a",
        "--",
        "sh",
        "-c",
        "setsid sleep 4343 >/dev/null 2>&1 &",
    ]);
    let v: Value = serde_json::from_str(&d.ok(&["ps", "--format", "json"])).unwrap();
    let holder = v[0]["holder_pid"].as_u64().unwrap().to_string();
    run_ok(Command::new("kill").args(["-KILL", &holder]));
    wait_for_exit_of(&holder);
    d.ok(&["rm", "-f", "a"]);
    wait_until_not_running("sleep 4343");
}

#[test]
fn a_recreated_namespace_at_the_same_path_is_not_taken_for_the_adopted_one() {
    if !require_root("recreated_netns") {
        return;
    }
    let ns = Netns::add();
    let mut d = TestDaemon::start();
    d.ok(&["network", "create", "n1", "--subnet", "10.42.0.0/24"]);
    d.ok(&[
        "attach",
        "adopted",
        "--netns",
        &ns.path(),
        "--network",
        "n1",
    ]);
    d.kill9();
    // Same path, different namespace.
    run_ok(Command::new("ip").args(["netns", "del", &ns.0]));
    run_ok(Command::new("ip").args(["netns", "add", &ns.0]));
    d.restart();
    let links = run_ok(Command::new("ip").args(["-n", &ns.0, "-o", "link"]));
    assert!(
        !links.contains("eth0"),
        "nothing was put into the new namespace: {links}"
    );
    assert!(
        d.ok(&["ps", "-q"]).trim().is_empty(),
        "the adopted container was removed as lost"
    );
}

#[test]
fn attach_leaves_the_namespaces_own_interfaces_and_route_alone() {
    if !require_root("attach_existing_eth0") {
        return;
    }
    let ns = Netns::add();
    let peer = unique("swyp");
    run_ok(Command::new("ip").args([
        "-n", &ns.0, "link", "add", "eth0", "type", "veth", "peer", "name", &peer,
    ]));
    run_ok(Command::new("ip").args(["-n", &ns.0, "addr", "add", "192.0.2.5/24", "dev", "eth0"]));
    run_ok(Command::new("ip").args(["-n", &ns.0, "link", "set", "eth0", "up"]));
    run_ok(Command::new("ip").args(["-n", &ns.0, "route", "add", "default", "via", "192.0.2.1"]));
    let d = TestDaemon::start();
    d.ok(&["network", "create", "n1", "--subnet", "10.43.0.0/24"]);
    d.container("a", &["--network", "n1"]);
    d.ok(&[
        "attach",
        "adopted",
        "--netns",
        &ns.path(),
        "--network",
        "n1",
        "--ip",
        "10.43.0.99",
    ]);
    let addrs = run_ok(Command::new("ip").args(["-n", &ns.0, "-o", "addr"]));
    assert!(
        addrs
            .lines()
            .any(|l| l.contains("eth0") && l.contains("192.0.2.5/24")),
        "theirs stays: {addrs}"
    );
    assert!(
        !addrs
            .lines()
            .any(|l| l.contains("eth0") && l.contains("10.43.")),
        "ours is not on their eth0: {addrs}"
    );
    assert!(
        addrs.contains("eth1") && addrs.contains("10.43.0.99/24"),
        "ours is eth1: {addrs}"
    );
    let route = run_ok(Command::new("ip").args(["-n", &ns.0, "route", "show", "default"]));
    assert!(
        route.contains("via 192.0.2.1 dev eth0"),
        "their default route stays: {route}"
    );
    assert!(d.ping("a", "10.43.0.99", 2));
    d.ok(&["rm", "adopted"]);
    let links = run_ok(Command::new("ip").args(["-n", &ns.0, "-o", "link"]));
    assert!(
        links.contains("eth0") && !links.contains("eth1"),
        "only ours went: {links}"
    );
}

#[test]
fn restarting_without_offloads_keeps_tcp_working() {
    if !require_root("restart_no_offload") {
        return;
    }
    let mut d = TestDaemon::start();
    d.ok(&["network", "create", "n1", "--subnet", "10.44.0.0/24"]);
    d.container("srv", &["--network", "n1", "--ip", "10.44.0.2"]);
    d.container("cli", &["--network", "n1"]);
    // Same state, restarted without offloads: the persistent TAPs must
    // lose theirs too.
    d.restart_with(&["--no-offload"]);
    d.ok(&[
        "exec", "srv", "--", "iperf3", "-s", "-D", "-1", "-p", "5202",
    ]);
    wait_for_listener(&d, "srv", 5202);
    let v: Value = serde_json::from_str(&d.ok(&[
        "exec",
        "cli",
        "--",
        "iperf3",
        "-c",
        "10.44.0.2",
        "-p",
        "5202",
        "-t",
        "1",
        "-J",
    ]))
    .unwrap();
    assert!(
        v["end"]["sum_received"]["bytes"].as_u64().unwrap() > 1_000_000,
        "TCP flows after the restart"
    );
}

#[test]
fn ipv6_networks_ping_and_resolve_through_port_security() {
    if !require_root("ipv6") {
        return;
    }
    let d = TestDaemon::start();
    d.ok(&[
        "network",
        "create",
        "v6",
        "--ipv6",
        "--subnet",
        "10.45.0.0/24",
        "--subnet",
        "fd45::/64",
    ]);
    d.container("a", &["--network", "v6"]);
    d.container("b", &["--network", "v6", "--ip6", "fd45::b"]);
    assert!(
        d.exec_ok(
            "a",
            &["ping", "-6", "-c", "2", "-i", "0.2", "-W", "1", "fd45::b"]
        ),
        "IPv6 with NDP passes"
    );
    let out = d.ok(&["exec", "a", "--", "getent", "ahostsv6", "b"]);
    assert!(out.starts_with("fd45::b"), "AAAA: {out}");
    let ports: Value = port_counters(&d, "v6", "a");
    assert!(
        ports["drops"].get("spoofed_ip").is_none() && ports["drops"].get("spoofed_mac").is_none(),
        "{ports}"
    );
}
