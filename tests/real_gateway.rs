//! The way out and the way in (issue 11), with real namespaces and real
//! clients: a daemon in a network namespace of its own, joined by a veth to
//! an "outside" namespace the test makes (the only place traffic goes).
//! Containers reach servers there through the network's gateway (TCP with
//! curl, UDP echo, ping); `--internal` networks, other networks and the
//! daemon's loopback are unreachable unless `--add-host …:host-gateway`;
//! published ports carry clients from the outside and from loopback with
//! their addresses; a container that opens connections in a loop is capped.
//! Needs root (CI runs as root); without it each test prints SKIPPED.

// Real processes are waited for with wall-clock timeouts.
#![allow(clippy::disallowed_methods)]

mod common;

use common::{ensure_test_user, require_root, run_ok, unique, wait_until, TestDaemon};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

/// A UDP echo server: `udp_echo.py ADDR PORT`.
const UDP_ECHO: &str = r#"
import socket, sys
fam = socket.AF_INET6 if ':' in sys.argv[1] else socket.AF_INET
s = socket.socket(fam, socket.SOCK_DGRAM)
s.bind((sys.argv[1], int(sys.argv[2])))
while True:
    d, a = s.recvfrom(4096)
    s.sendto(b'echo:' + d + b' from ' + a[0].encode(), a)
"#;

/// A UDP client: `udp_ask.py ADDR PORT TEXT` prints the answer.
const UDP_ASK: &str = r#"
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(2)
for _ in range(3):
    s.sendto(sys.argv[3].encode(), (sys.argv[1], int(sys.argv[2])))
    try:
        print(s.recvfrom(4096)[0].decode())
        break
    except socket.timeout:
        pass
"#;

/// Opens N connections and keeps them: `hog.py ADDR PORT N` prints
/// `ok FAILED`.
const HOG: &str = r#"
import socket, sys
held, failed = [], 0
for _ in range(int(sys.argv[3])):
    try:
        held.append(socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3))
    except OSError:
        failed += 1
print(len(held), failed)
"#;

/// A listener that never accepts (its backlog completes the handshakes):
/// `backlog.py ADDR PORT`.
const BACKLOG: &str = r#"
import socket, sys, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(4096)
time.sleep(600)
"#;

/// The daemon's namespace and the outside, joined by a veth, with the
/// processes the test started in them; all removed on drop.
struct Topology {
    daemon_ns: String,
    outside_ns: String,
    /// The daemon's address on the veth.
    daemon_addr: String,
    /// The outside's address.
    outside_addr: String,
    dir: tempfile::TempDir,
    servers: Vec<Child>,
}

static NEXT_SUBNET: AtomicU8 = AtomicU8::new(0);

impl Topology {
    fn new(tag: &str) -> Topology {
        let daemon_ns = unique(&format!("gwd{tag}"));
        let outside_ns = unique(&format!("gwo{tag}"));
        // 198.18.0.0/15 is for benchmarks: never a container pool. One /30
        // per topology of this process, and the pid spreads processes.
        let n = NEXT_SUBNET.fetch_add(1, Ordering::Relaxed);
        let third = (std::process::id() % 200) as u8;
        let base = u32::from(n) * 4;
        let (daemon_addr, outside_addr) = (
            format!("198.18.{third}.{}", base + 1),
            format!("198.18.{third}.{}", base + 2),
        );
        let t = Topology {
            daemon_ns,
            outside_ns,
            daemon_addr,
            outside_addr,
            dir: tempfile::Builder::new()
                .prefix("swy-gw-")
                .tempdir()
                .expect("tempdir"),
            servers: Vec::new(),
        };
        for ns in [&t.daemon_ns, &t.outside_ns] {
            run_ok(Command::new("ip").args(["netns", "add", ns]));
            run_ok(Command::new("ip").args(["-n", ns, "link", "set", "lo", "up"]));
        }
        let (vd, vo) = (format!("vd{n}"), format!("vo{n}"));
        run_ok(Command::new("ip").args([
            "link",
            "add",
            &vd,
            "netns",
            &t.daemon_ns,
            "type",
            "veth",
            "peer",
            "name",
            &vo,
            "netns",
            &t.outside_ns,
        ]));
        for (ns, dev, addr) in [
            (&t.daemon_ns, &vd, &t.daemon_addr),
            (&t.outside_ns, &vo, &t.outside_addr),
        ] {
            run_ok(Command::new("ip").args([
                "-n",
                ns,
                "addr",
                "add",
                &format!("{addr}/30"),
                "dev",
                dev,
            ]));
            run_ok(Command::new("ip").args(["-n", ns, "link", "set", dev, "up"]));
        }
        let v6 = |host: u8| format!("fd00:198:{third:x}:{n:x}::{host}");
        for (ns, dev, host) in [(&t.daemon_ns, &vd, 1), (&t.outside_ns, &vo, 2)] {
            run_ok(Command::new("ip").args([
                "-n",
                ns,
                "addr",
                "add",
                &format!("{}/64", v6(host)),
                "dev",
                dev,
                "nodad",
            ]));
        }
        for (name, text) in [
            ("udp_echo.py", UDP_ECHO),
            ("udp_ask.py", UDP_ASK),
            ("hog.py", HOG),
            ("backlog.py", BACKLOG),
        ] {
            std::fs::write(t.dir.path().join(name), text).unwrap();
        }
        // The scripts must be readable by a rootless daemon's containers.
        run_ok(Command::new("chmod").args(["-R", "a+rX"]).arg(t.dir.path()));
        t
    }

    /// The outside's IPv6 address (on the same veth).
    fn outside_addr6(&self) -> String {
        let mut parts = self.outside_addr.split('.').skip(2);
        let third: u8 = parts.next().unwrap().parse().unwrap();
        let last: u8 = parts.next().unwrap().parse().unwrap();
        format!("fd00:198:{third:x}:{:x}::2", (last - 2) / 4)
    }

    fn script(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    /// Starts `argv` in namespace `ns` in the background, output to a log
    /// file; returns the log's path.
    fn serve(&mut self, ns: &str, log: &str, argv: &[&str]) -> PathBuf {
        let path = self.dir.path().join(log);
        let out = std::fs::File::create(&path).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", ns])
            .args(argv)
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .stdin(Stdio::null())
            .spawn()
            .expect("start a server");
        self.servers.push(child);
        path
    }

    /// An HTTP server in the outside namespace on `port`, logging clients.
    fn outside_http(&mut self, port: u16) -> PathBuf {
        let ns = self.outside_ns.clone();
        let dir = self.dir.path().display().to_string();
        let log = self.serve(
            &ns,
            &format!("http-{port}.log"),
            &[
                "python3",
                "-u",
                "-m",
                "http.server",
                &port.to_string(),
                "--bind",
                "::",
                "--directory",
                &dir,
            ],
        );
        wait_listening(&ns, port);
        log
    }

    /// Runs a command in a namespace and returns (success, stdout).
    fn in_ns(&self, ns: &str, argv: &[&str]) -> (bool, String) {
        let out = Command::new("ip")
            .args(["netns", "exec", ns])
            .args(argv)
            .stdin(Stdio::null())
            .output()
            .expect("ip netns exec");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }

    /// The daemon, started inside the daemon namespace (as the test user
    /// for a rootless one).
    fn daemon(&self, rootless: Option<(&str, &str)>) -> TestDaemon {
        let mut wrapper: Vec<String> = vec![
            "ip".into(),
            "netns".into(),
            "exec".into(),
            self.daemon_ns.clone(),
        ];
        if let Some((uid, gid)) = rootless {
            wrapper.extend([
                "setpriv".to_string(),
                format!("--reuid={uid}"),
                format!("--regid={gid}"),
                "--clear-groups".to_string(),
                "env".to_string(),
                "HOME=/tmp".to_string(),
            ]);
        }
        let wrapper: Vec<&str> = wrapper.iter().map(String::as_str).collect();
        if rootless.is_some() {
            TestDaemon::start_wrapped_unprivileged(&wrapper, &[])
        } else {
            TestDaemon::start_wrapped(&wrapper, &[])
        }
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        for c in &mut self.servers {
            let _ = c.kill();
            let _ = c.wait();
        }
        for ns in [&self.daemon_ns, &self.outside_ns] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

fn wait_listening(ns: &str, port: u16) {
    let pattern = format!(":{port} ");
    wait_until(
        &format!("a listener on port {port} in {ns}"),
        Duration::from_secs(10),
        || {
            let out = Command::new("ip")
                .args(["netns", "exec", ns, "ss", "-Hltun"])
                .output()
                .map_err(|e| e.to_string())?;
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            if text.contains(&pattern) {
                Ok(())
            } else {
                Err(text)
            }
        },
    );
}

/// `curl` arguments that print only the HTTP status (`000` on failure).
fn curl_status(url: &str) -> [&str; 9] {
    [
        "curl",
        "-s",
        "-m",
        "5",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        url,
    ]
}

/// `curl` from a container: the HTTP status, or `000` when it failed.
fn curl(d: &TestDaemon, container: &str, url: &str) -> String {
    let mut args = vec!["exec", container, "--"];
    args.extend(curl_status(url));
    let out = d.cli(&args);
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn udp_ask(d: &TestDaemon, t: &Topology, container: &str, addr: &str, port: u16) -> String {
    let out = d.cli(&[
        "exec",
        container,
        "--",
        "python3",
        &t.script("udp_ask.py"),
        addr,
        &port.to_string(),
        "hi",
    ]);
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Outbound TCP, UDP and ping from a container through the gateway, and
/// everything a container must not reach.
fn outbound_checks(t: &mut Topology, d: &TestDaemon) {
    let outside = t.outside_addr.clone();
    t.outside_http(8000);
    let ns = t.outside_ns.clone();
    let echo = t.script("udp_echo.py");
    t.serve(&ns, "udp.log", &["python3", "-u", &echo, &outside, "7007"]);
    wait_listening(&t.outside_ns, 7007);

    d.container("out1", &[]);
    assert_eq!(
        curl(d, "out1", &format!("http://{outside}:8000/")),
        "200",
        "TCP out:\n{}",
        d.log()
    );
    let answer = udp_ask(d, t, "out1", &outside, 7007);
    assert_eq!(
        answer,
        format!("echo:hi from {}", t.daemon_addr),
        "UDP out, answered to the daemon's address (NAT)"
    );
    assert!(d.ping("out1", &outside, 2), "ping out:\n{}", d.log());

    // IPv6 on an --ipv6 network: TCP and ping.
    let outside6 = t.outside_addr6();
    d.ok(&["network", "create", "--ipv6", "six"]);
    d.container("out6", &["--network", "six"]);
    assert_eq!(
        curl(d, "out6", &format!("http://[{outside6}]:8000/")),
        "200",
        "TCP over IPv6"
    );
    assert!(
        d.exec_ok("out6", &["ping", "-6", "-c", "1", "-W", "2", &outside6]),
        "ping over IPv6"
    );

    // --internal: no way out at all.
    d.ok(&["network", "create", "--internal", "sealed"]);
    d.container("in1", &["--network", "sealed"]);
    assert_eq!(curl(d, "in1", &format!("http://{outside}:8000/")), "000");
    assert_eq!(udp_ask(d, t, "in1", &outside, 7007), "");
    assert!(!d.ping("in1", &outside, 1));

    // Network A cannot reach network B's containers through the gateway.
    d.ok(&["network", "create", "netb"]);
    d.ok(&[
        "run",
        "--name",
        "b1",
        "--network",
        "netb",
        "-d",
        "--",
        "python3",
        "-m",
        "http.server",
        "80",
    ]);
    let b1 = d.ip_of("b1");
    d.container("a2", &[]);
    wait_until(
        "b1 serving inside its namespace",
        Duration::from_secs(10),
        || match curl(d, "b1", "http://127.0.0.1:80/").as_str() {
            "200" => Ok(()),
            other => Err(other.to_string()),
        },
    );
    assert_eq!(
        curl(d, "a2", &format!("http://{b1}:80/")),
        "000",
        "A↛B through the gateway"
    );
    assert!(!d.ping("a2", &b1, 1), "no ping A→B either");

    // The daemon's loopback: only with --add-host NAME:host-gateway.
    let dns = t.daemon_ns.clone();
    t.serve(
        &dns,
        "lo.log",
        &[
            "python3",
            "-m",
            "http.server",
            "8001",
            "--bind",
            "127.0.0.1",
        ],
    );
    wait_listening(&t.daemon_ns, 8001);
    let gw = d
        .ip_of("out1")
        .rsplit_once('.')
        .map(|(net, _)| format!("{net}.1"))
        .unwrap();
    assert_eq!(
        curl(d, "out1", &format!("http://{gw}:8001/")),
        "000",
        "loopback is closed"
    );
    d.container("hg", &["--add-host", "host.docker.internal:host-gateway"]);
    assert_eq!(
        curl(d, "hg", "http://host.docker.internal:8001/"),
        "200",
        "host-gateway opens the host's loopback:\n{}",
        d.log()
    );
}

#[test]
fn containers_reach_the_outside_through_the_gateway_and_nothing_they_must_not() {
    if !require_root("containers_reach_the_outside_through_the_gateway_and_nothing_they_must_not") {
        return;
    }
    let mut t = Topology::new("o");
    let d = t.daemon(None);
    outbound_checks(&mut t, &d);
}

#[test]
fn a_rootless_daemon_relays_tcp_udp_and_ping_too() {
    if !require_root("a_rootless_daemon_relays_tcp_udp_and_ping_too") {
        return;
    }
    let (uid, gid) = ensure_test_user();
    let mut t = Topology::new("r");
    // Unprivileged ping sockets, as distributions enable them (systemd's
    // default); the namespace starts with the kernel's "1 0" (none).
    t.in_ns(
        &t.daemon_ns.clone(),
        &["sysctl", "-qw", "net.ipv4.ping_group_range=0 2147483647"],
    );
    let mut d = t.daemon(Some((&uid, &gid)));
    d.cli_user = Some((uid, gid));
    outbound_checks(&mut t, &d);
}

#[test]
fn published_ports_carry_clients_with_their_addresses_and_go_with_the_container() {
    if !require_root("published_ports_carry_clients_with_their_addresses_and_go_with_the_container")
    {
        return;
    }
    let t = Topology::new("p");
    let mut d = t.daemon(None);
    let daemon_addr = t.daemon_addr.clone();
    let outside_addr = t.outside_addr.clone();
    d.ok(&[
        "run",
        "--name",
        "web",
        "-d",
        "-p",
        "8080:80",
        "-p",
        "5353:5300/udp",
        "-p",
        "9000",
        "--",
        "sh",
        "-c",
        &format!(
            "python3 -u -m http.server 80 > /tmp/web-{}.log 2>&1 & exec python3 -u {} 0.0.0.0 5300",
            std::process::id(),
            t.script("udp_echo.py")
        ),
    ]);
    let web_log = format!("/tmp/web-{}.log", std::process::id());
    wait_until("web's servers", Duration::from_secs(10), || {
        let out = d.cli(&["exec", "web", "--", "ss", "-Hltun"]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if text.contains(":80 ") && text.contains(":5300 ") {
            Ok(())
        } else {
            Err(text)
        }
    });

    let lines = d.ok(&["port", "web"]);
    assert!(lines.contains("80/tcp -> 0.0.0.0:8080"), "{lines}");
    assert!(lines.contains("80/tcp -> [::]:8080"), "{lines}");
    assert!(lines.contains("5300/udp -> 0.0.0.0:5353"), "{lines}");
    let picked = lines
        .lines()
        .find_map(|l| l.strip_prefix("9000/tcp -> 0.0.0.0:"))
        .expect("a picked port for -p 9000");
    assert!(picked.parse::<u16>().is_ok_and(|p| p > 0), "{lines}");
    assert_eq!(
        d.ok(&["port", "web", "80"]).trim(),
        "0.0.0.0:8080\n[::]:8080"
    );
    let (code, err) = d.fails(&["port", "web", "81"]);
    assert_ne!(code, 0);
    assert!(err.contains("No public port '81'"), "{err}");

    // From the outside namespace: the server sees the outside's address.
    let (ok, status) = t.in_ns(
        &t.outside_ns,
        &curl_status(&format!("http://{daemon_addr}:8080/")),
    );
    assert!(
        ok && status == "200",
        "outside → -p 8080: {status}\n{}",
        d.log()
    );
    // A client reusing its port: the container sees the client's own
    // 4-tuple, and its server closed first, so each new connection meets
    // the container's TIME_WAIT of the last one. Linux lets it in only for
    // a SYN with a newer TCP timestamp (or, half the time, a higher
    // sequence number); without timestamps the gateway's SYN got a
    // challenge ACK and waited for its 1 s retransmission.
    // (A client that reads to the end and closes after the server, as
    // connrate does: curl closes first and keeps the port in TIME_WAIT.)
    let local_port = (41_000 + std::process::id() % 1000).to_string();
    let client = format!(
        "import socket,sys,time\n\
         s=socket.socket()\n\
         s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n\
         s.bind(('0.0.0.0',{local_port}))\n\
         t=time.monotonic()\n\
         s.connect(('{daemon_addr}',8080))\n\
         s.sendall(b'GET / HTTP/1.0\\r\\n\\r\\n')\n\
         got=b''\n\
         while True:\n\
         \x20   b=s.recv(65536)\n\
         \x20   if not b: break\n\
         \x20   got+=b\n\
         s.close()\n\
         print(got.split(b' ')[1].decode(), round(time.monotonic()-t,3))\n"
    );
    for round in 0..6 {
        let (ok, out) = t.in_ns(&t.outside_ns, &["python3", "-c", &client]);
        let (status, took) = out.trim().split_once(' ').unwrap_or((&out, "nan"));
        let took: f64 = took.parse().unwrap_or(f64::NAN);
        assert!(
            ok && status == "200" && took < 0.5,
            "round {round} from outside port {local_port}: {out:?} (a reused client port \
             must not wait for a SYN retransmission)"
        );
    }
    // From the daemon's loopback: seen as the gateway address.
    let (ok, status) = t.in_ns(&t.daemon_ns, &curl_status("http://127.0.0.1:8080/"));
    assert!(ok && status == "200", "loopback → -p 8080: {status}");
    let log = String::from_utf8_lossy(&d.cli(&["exec", "web", "--", "cat", &web_log]).stdout)
        .into_owned();
    let gateway = d
        .ip_of("web")
        .rsplit_once('.')
        .map(|(n, _)| format!("{n}.1"))
        .unwrap();
    assert!(
        log.contains(&format!("{outside_addr} - - ")),
        "the outside client's own address:\n{log}"
    );
    assert!(
        log.contains(&format!("{gateway} - - ")),
        "a loopback client appears as the gateway:\n{log}"
    );

    // /udp: the container answers, and sees the outside client.
    let (_, answer) = t.in_ns(
        &t.outside_ns,
        &[
            "python3",
            &t.script("udp_ask.py"),
            &daemon_addr,
            "5353",
            "q",
        ],
    );
    assert_eq!(answer.trim(), format!("echo:q from {outside_addr}"));

    // A taken port: by our own container, then by another process.
    let (code, err) = d.fails(&[
        "run", "--name", "web2", "-d", "-p", "8080:80", "--", "sleep", "100",
    ]);
    assert_ne!(code, 0);
    assert!(err.contains("already taken by container web"), "{err}");
    let names = d.ok(&["ps", "--format", "json"]);
    assert!(
        !names.contains("\"web2\""),
        "nothing half-made stays: {names}"
    );
    let ns = t.daemon_ns.clone();
    let mut holder = Command::new("ip")
        .args([
            "netns",
            "exec",
            &ns,
            "python3",
            &t.script("backlog.py"),
            "0.0.0.0",
            "7777",
        ])
        .spawn()
        .unwrap();
    wait_listening(&t.daemon_ns, 7777);
    let (code, err) = d.fails(&[
        "run", "--name", "web3", "-d", "-p", "7777:80", "--", "sleep", "100",
    ]);
    let _ = holder.kill();
    let _ = holder.wait();
    assert_ne!(code, 0);
    assert!(err.contains("python3"), "names who holds it: {err}");

    // A restart re-opens the listeners.
    d.restart();
    wait_until("-p 8080 after a restart", Duration::from_secs(10), || {
        let (ok, status) = t.in_ns(
            &t.outside_ns,
            &curl_status(&format!("http://{daemon_addr}:8080/")),
        );
        if ok && status == "200" {
            Ok(())
        } else {
            Err(status)
        }
    });

    // Removal closes the listener.
    d.ok(&["rm", "-f", "web"]);
    let (_, listening) = t.in_ns(&t.daemon_ns, &["ss", "-Hltun"]);
    assert!(!listening.contains(":8080 "), "{listening}");
    let (ok, _) = t.in_ns(
        &t.outside_ns,
        &[
            "curl",
            "-s",
            "-m",
            "3",
            &format!("http://{daemon_addr}:8080/"),
        ],
    );
    assert!(!ok, "nothing answers on 8080 once web is gone");
}

#[test]
fn a_container_opening_connections_in_a_loop_is_capped_while_another_keeps_transferring() {
    if !require_root(
        "a_container_opening_connections_in_a_loop_is_capped_while_another_keeps_transferring",
    ) {
        return;
    }
    let mut t = Topology::new("c");
    let d = t.daemon(None);
    let outside = t.outside_addr.clone();
    let ns = t.outside_ns.clone();
    t.serve(
        &ns,
        "backlog.log",
        &["python3", &t.script("backlog.py"), &outside, "7100"],
    );
    wait_listening(&t.outside_ns, 7100);
    // A 32 MiB file for the other container's transfer.
    let big = t.dir.path().join("big.bin");
    let f = std::fs::File::create(&big).unwrap();
    f.set_len(32 << 20).unwrap();
    run_ok(Command::new("chmod").args(["a+r"]).arg(&big));
    t.outside_http(8000);

    d.container("hog", &[]);
    d.container("busy", &[]);
    let hog = d.cli_spawn(&[
        "exec",
        "hog",
        "--",
        "python3",
        &t.script("hog.py"),
        &outside,
        "7100",
        "700",
    ]);
    let transfer = d.cli(&[
        "exec",
        "busy",
        "--",
        "curl",
        "-s",
        "-m",
        "60",
        "-o",
        "/dev/null",
        "-w",
        "%{size_download}",
        &format!("http://{outside}:8000/big.bin"),
    ]);
    assert_eq!(
        String::from_utf8_lossy(&transfer.stdout).trim(),
        (32u64 << 20).to_string(),
        "the other container's transfer completes"
    );
    let out = hog.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut it = text
        .split_whitespace()
        .filter_map(|n| n.parse::<u32>().ok());
    let (Some(held), Some(failed)) = (it.next(), it.next()) else {
        panic!(
            "hog.py printed {text:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    assert!(held <= 512, "at most the per-container limit: {held}");
    assert!(held >= 400, "the first ones work: {held}");
    assert!(failed >= 188, "the rest are refused: {failed}");
    let inspect = d.ok(&["network", "inspect", "bridge"]);
    let v: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    let v = if v.is_array() { v[0].clone() } else { v };
    let gw = &v["Switchyard"]["Gateway"];
    assert!(
        gw["counters"]["refused_limit"]
            .as_u64()
            .is_some_and(|n| n >= 188),
        "{gw}"
    );
}
