//! What a container made by `switchyard run` as root can and cannot do
//! (issue 10, finding 2): it keeps Docker's default capabilities, has a PID
//! namespace of its own (unless `--pid host`), and sees neither the
//! daemon's API socket and state nor other containers' namespaces.
//! Needs root (CI runs as root); without it each test prints SKIPPED.

// Real processes are waited for with wall-clock timeouts.
#![allow(clippy::disallowed_methods)]

mod common;

use common::{process_alive, require_root, run_ok, wait_until, TestDaemon, EXE};
use std::process::Command;
use std::time::Duration;

/// CAP_NET_ADMIN and CAP_SYS_ADMIN.
const NET_ADMIN: u64 = 1 << 12;
const SYS_ADMIN: u64 = 1 << 21;
/// Docker's default set.
const DOCKER_DEFAULT: u64 = 0xa804_25fb;

/// A capability line (`CapEff`, `CapBnd`, ...) of a `/proc/PID/status`.
fn cap_field(status: &str, field: &str) -> u64 {
    let line = status
        .lines()
        .find(|l| l.starts_with(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in:\n{status}"));
    u64::from_str_radix(line.split_whitespace().nth(1).unwrap(), 16).unwrap()
}

/// `/proc/self/status` of a command run in container `name`.
fn status_inside(d: &TestDaemon, name: &str) -> String {
    d.ok(&["exec", name, "--", "cat", "/proc/self/status"])
}

/// The holder pid `ps` reports for a container.
fn holder_of(d: &TestDaemon, name: &str) -> u32 {
    d.containers()
        .iter()
        .find(|c| c["name"] == name)
        .and_then(|c| c["holder_pid"].as_u64())
        .unwrap_or_else(|| panic!("{name} has a holder")) as u32
}

fn running(needle: &str) -> bool {
    run_ok(Command::new("ps").args(["-eo", "args"]))
        .lines()
        .any(|l| l.trim() == needle)
}

#[test]
fn a_root_container_keeps_only_dockers_default_capabilities() {
    if !require_root("default_capabilities") {
        return;
    }
    let d = TestDaemon::start();
    d.container("a", &[]);
    let status = status_inside(&d, "a");
    for field in ["CapEff", "CapPrm", "CapBnd"] {
        assert_eq!(
            cap_field(&status, field),
            DOCKER_DEFAULT,
            "{field} is Docker's default set"
        );
    }
    assert_eq!(cap_field(&status, "CapInh"), 0);
    assert_eq!(cap_field(&status, "CapAmb"), 0);
    let eff = cap_field(&status, "CapEff");
    assert_eq!(
        eff & (NET_ADMIN | SYS_ADMIN),
        0,
        "no NET_ADMIN, no SYS_ADMIN"
    );
    assert!(
        !d.exec_ok("a", &["ip", "link", "set", "lo", "mtu", "1400"]),
        "cannot reconfigure its network without NET_ADMIN"
    );
}

#[test]
fn cap_add_net_admin_grants_it_to_run_and_exec() {
    if !require_root("cap_add") {
        return;
    }
    let d = TestDaemon::start();
    let out = d.ok(&[
        "run",
        "--name",
        "na",
        "--cap-add",
        "net_admin",
        "--",
        "cat",
        "/proc/self/status",
    ]);
    let eff = cap_field(&out, "CapEff");
    assert_eq!(eff, DOCKER_DEFAULT | NET_ADMIN, "run: {eff:x}");
    let status = status_inside(&d, "na");
    assert_eq!(cap_field(&status, "CapEff"), DOCKER_DEFAULT | NET_ADMIN);
    assert!(
        d.exec_ok("na", &["ip", "link", "set", "lo", "mtu", "1400"]),
        "NET_ADMIN lets it configure its own network"
    );
}

#[test]
fn cap_drop_all_keeps_only_what_cap_add_names() {
    if !require_root("cap_drop_all") {
        return;
    }
    let d = TestDaemon::start();
    let out = d.ok(&[
        "run",
        "--name",
        "bare",
        "--cap-drop",
        "ALL",
        "--cap-add",
        "CAP_NET_RAW",
        "--",
        "cat",
        "/proc/self/status",
    ]);
    assert_eq!(cap_field(&out, "CapEff"), 1 << 13);
    assert_eq!(cap_field(&out, "CapBnd"), 1 << 13);
}

#[test]
fn privileged_keeps_every_capability() {
    if !require_root("privileged") {
        return;
    }
    let ours = cap_field(
        &std::fs::read_to_string("/proc/self/status").unwrap(),
        "CapBnd",
    );
    let d = TestDaemon::start();
    let out = d.ok(&[
        "run",
        "--name",
        "p",
        "--privileged",
        "--",
        "cat",
        "/proc/self/status",
    ]);
    assert_eq!(cap_field(&out, "CapEff"), ours, "everything we have");
}

#[test]
fn an_unknown_capability_is_refused_in_one_line_and_leaves_nothing() {
    if !require_root("unknown_capability") {
        return;
    }
    let d = TestDaemon::start();
    let (code, err) = d.fails(&["run", "--name", "x", "--cap-add", "NET_ADMN", "--", "true"]);
    assert_eq!(code, 1, "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(
        err.contains("--cap-add NET_ADMN: unknown capability"),
        "{err}"
    );
    let (code, err) = d.fails(&["run", "--name", "y", "--pid", "container:x", "--", "true"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("only --pid host"), "{err}");
    assert!(d.ok(&["ps", "-q"]).trim().is_empty(), "nothing half-made");
    assert!(common::holders_mentioning(d.dir.path()).is_empty());
}

#[test]
fn the_api_socket_and_state_directory_cannot_be_reached_from_inside() {
    if !require_root("socket_hidden") {
        return;
    }
    let d = TestDaemon::start();
    d.container("a", &[]);
    let socket = d.socket.display().to_string();
    let out = d.cli(&["exec", "a", "--", EXE, "network", "ls", "--socket", &socket]);
    assert!(!out.status.success(), "the API answered from inside");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot reach the switchyard daemon"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!d.exec_ok("a", &["test", "-e", &socket]));
    let state = d.state_dir().join("state.json").display().to_string();
    assert!(
        !d.exec_ok("a", &["test", "-e", &state]),
        "the state directory is covered inside"
    );
    let listing = d.ok(&[
        "exec",
        "a",
        "--",
        "ls",
        "-A",
        &d.dir.path().display().to_string(),
    ]);
    assert_eq!(
        listing.trim(),
        "",
        "the socket's directory looks empty inside"
    );
    // The host still sees both.
    assert!(d.socket.exists() && d.state_dir().join("state.json").exists());
}

#[test]
fn proc_inside_shows_only_the_containers_own_processes() {
    if !require_root("own_proc") {
        return;
    }
    let d = TestDaemon::start();
    let a = d.container("a", &[]);
    d.container("b", &[]);
    let other = holder_of(&d, "b");
    let pids: Vec<u32> = d
        .ok(&["exec", "a", "--", "ls", "/proc"])
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect();
    assert!(pids.contains(&1), "{pids:?}");
    assert!(
        !pids.contains(&other),
        "b's holder is not visible: {pids:?}"
    );
    assert!(
        pids.len() <= 4,
        "only its holder, its command and the ls: {pids:?}"
    );
    let init = d.ok(&["exec", "a", "--", "cat", "/proc/1/cmdline"]);
    assert!(
        init.contains("holder") && init.contains(&a),
        "pid 1 is its own holder: {init:?}"
    );
    let me = d.ok(&["exec", "a", "--", "sh", "-c", "echo $$"]);
    assert!(
        me.trim().parse::<u32>().unwrap() < 100,
        "exec runs in its PID namespace: {me}"
    );
}

#[test]
fn entering_another_containers_network_namespace_fails() {
    if !require_root("nsenter_other") {
        return;
    }
    let d = TestDaemon::start();
    d.ok(&["network", "create", "n1", "--subnet", "10.51.0.0/24"]);
    d.ok(&["network", "create", "n2", "--subnet", "10.52.0.0/24"]);
    d.container("a", &["--network", "n1"]);
    d.container("h", &["--network", "n1", "--pid", "host"]);
    d.container("b", &["--network", "n2"]);
    let path = format!("/proc/{}/ns/net", holder_of(&d, "b"));
    for from in ["a", "h"] {
        let out = d.cli(&[
            "exec",
            from,
            "--",
            "nsenter",
            &format!("--net={path}"),
            "true",
        ]);
        assert!(
            !out.status.success(),
            "{from} entered b's network namespace"
        );
    }
}

#[test]
fn pid_host_sees_the_hosts_processes() {
    if !require_root("pid_host") {
        return;
    }
    let d = TestDaemon::start();
    d.container("h", &["--pid", "host"]);
    let me = std::process::id().to_string();
    assert!(
        d.exec_ok("h", &["test", "-d", &format!("/proc/{me}")]),
        "the test process is visible"
    );
    let init = std::fs::read("/proc/1/cmdline").unwrap();
    let inside = d.cli(&["exec", "h", "--", "cat", "/proc/1/cmdline"]).stdout;
    assert_eq!(inside, init, "pid 1 is the host's");
    let eff = cap_field(&status_inside(&d, "h"), "CapEff");
    assert_eq!(eff, DOCKER_DEFAULT, "still confined");
}

#[test]
fn rm_stops_every_process_inside_a_pid_host_container() {
    if !require_root("rm_pid_host") {
        return;
    }
    let d = TestDaemon::start();
    d.container("h", &["--pid", "host"]);
    d.ok(&[
        "exec",
        "h",
        "--",
        "sh",
        "-c",
        "setsid sleep 4545 >/dev/null 2>&1 &",
    ]);
    wait_until("sleep 4545 to start", Duration::from_secs(5), || {
        running("sleep 4545").then_some(()).ok_or("not yet".into())
    });
    d.ok(&["rm", "-f", "h"]);
    wait_until("sleep 4545 to be gone", Duration::from_secs(5), || {
        (!running("sleep 4545"))
            .then_some(())
            .ok_or("still running".into())
    });
}

#[test]
fn a_host_network_container_is_confined_too() {
    if !require_root("host_confined") {
        return;
    }
    let d = TestDaemon::start();
    d.container("h", &["--network", "host"]);
    let ours = std::fs::read_link("/proc/self/ns/net").unwrap();
    let net = d.ok(&["exec", "h", "--", "readlink", "/proc/self/ns/net"]);
    assert_eq!(net.trim(), ours.display().to_string(), "the host network");
    assert_eq!(cap_field(&status_inside(&d, "h"), "CapEff"), DOCKER_DEFAULT);
    let socket = d.socket.display().to_string();
    assert!(!d.exec_ok("h", &["test", "-e", &socket]), "socket hidden");
    let me = std::process::id().to_string();
    assert!(
        !d.exec_ok("h", &["test", "-d", &format!("/proc/{me}")]),
        "its own PID namespace"
    );
}

#[test]
fn a_container_cannot_stop_its_own_holder_from_inside() {
    if !require_root("kill_init") {
        return;
    }
    let d = TestDaemon::start();
    d.container("a", &[]);
    let holder = holder_of(&d, "a");
    d.ok(&["exec", "a", "--", "kill", "-TERM", "1"]);
    d.ok(&["exec", "a", "--", "kill", "-INT", "1"]);
    assert!(
        process_alive(holder),
        "the holder ignores signals from inside"
    );
    assert!(d.exec_ok("a", &["true"]), "the container still runs");
}

#[test]
fn a_signal_sent_to_the_reported_pid_reaches_the_command() {
    if !require_root("signal_forwarding") {
        return;
    }
    let d = TestDaemon::start();
    d.ok(&["run", "--name", "a", "-d", "--", "sleep", "4646"]);
    let pid = d.containers()[0]["command"]["pid"]
        .as_u64()
        .unwrap()
        .to_string();
    assert!(running("sleep 4646"));
    run_ok(Command::new("kill").args(["-TERM", &pid]));
    wait_until("sleep 4646 to die", Duration::from_secs(5), || {
        (!running("sleep 4646"))
            .then_some(())
            .ok_or("still running".into())
    });
}

#[test]
fn run_exits_like_its_command_through_the_pid_namespace() {
    if !require_root("exit_through_pidns") {
        return;
    }
    let d = TestDaemon::start();
    let out = d.cli(&["run", "--name", "x", "--rm", "--", "sh", "-c", "exit 9"]);
    assert_eq!(out.status.code(), Some(9));
    let out = d.cli(&[
        "run",
        "--name",
        "y",
        "--rm",
        "--",
        "sh",
        "-c",
        "kill -TERM $$",
    ]);
    assert_eq!(out.status.code(), Some(128 + 15), "killed by SIGTERM");
    let (code, err) = d.fails(&["run", "--name", "z", "--rm", "--", "no-such-program-x"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("command not found"), "{err}");
}
