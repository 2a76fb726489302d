//! Real Linux primitives, end to end: sandbox holders, namespace sessions,
//! TAP devices, netlink configuration and commands run inside — as root,
//! and as an ordinary user (rootless).
//!
//! These tests need root (they create namespaces, a system user and change
//! /dev/net/tun's mode). Without root they print a loud SKIPPED line and
//! pass, except under CI, where they fail: CI runs as root.

mod common;

use common::{copy_executable, ensure_test_user, euid, require_root, run_ok as run, unique};
use serde_json::json;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;
use switchyard_linux::{
    command_in, configure_interface, spawn_holder, Holder, HolderMode, HolderSpec, Join,
    NetnsTarget, NsSession, RealError, TapOptions, SANDBOX_TXQUEUELEN, VNET_HDR_LEN,
};
use switchyard_switch::driver::InterfacePlan;

const EXE: &str = env!("CARGO_BIN_EXE_switchyard");
const ROOTLESS_ENV: &str = "SWITCHYARD_ROOTLESS_SCENARIO";

// ---------------------------------------------------------------- helpers

/// `nsenter -t PID <flags> <argv...>`: verification from outside, with the
/// standard tools rather than our own code.
fn nsenter(pid: u32, flags: &[&str], argv: &[&str]) -> String {
    run(Command::new("nsenter")
        .arg("-t")
        .arg(pid.to_string())
        .args(flags)
        .args(argv))
}

/// A running sandbox; its holder is stopped and its files removed on drop,
/// even when the test fails.
struct Sandbox {
    holder: Holder,
    hostname: String,
    resolv: String,
    _dir: tempfile::TempDir,
}

impl Sandbox {
    fn start(mode: HolderMode) -> Sandbox {
        let dir = tempfile::tempdir().expect("tempdir");
        let hostname = unique("sbx");
        let resolv = format!("nameserver 127.0.0.11\noptions ndots:0\n# {hostname}\n");
        let resolv_path = dir.path().join("resolv.conf");
        std::fs::write(&resolv_path, &resolv).expect("write resolv.conf");
        let spec = HolderSpec {
            mode,
            hostname: Some(hostname.clone()),
            resolv_conf: Some(resolv_path),
            hosts: None,
            log_path: dir.path().join("holder.log"),
            ..Default::default()
        };
        let holder =
            spawn_holder(Path::new(&exe()), &spec).unwrap_or_else(|e| panic!("spawn holder: {e}"));
        Sandbox {
            holder,
            hostname,
            resolv,
            _dir: dir,
        }
    }

    fn target(&self) -> NetnsTarget {
        NetnsTarget::Holder(self.holder)
    }

    fn session(&self) -> NsSession {
        NsSession::open(Path::new(&exe()), &self.target())
            .unwrap_or_else(|e| panic!("open session: {e}"))
    }

    /// Runs a command inside all of the sandbox's namespaces.
    fn output(&self, program: &str, args: &[&str]) -> std::process::Output {
        command_in(&self.target(), Join::ALL, program)
            .unwrap_or_else(|e| panic!("command_in: {e}"))
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("run {program} inside: {e}"))
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if let Err(e) = self.holder.terminate() {
            eprintln!("warning: cannot stop holder {}: {e}", self.holder.pid);
        }
    }
}

/// The switchyard binary: the one cargo built, or (rootless scenario) the
/// copy the root side made readable for the test user.
fn exe() -> String {
    std::env::var("SWITCHYARD_EXE").unwrap_or_else(|_| EXE.to_string())
}

/// An interface plan as the bridge driver would make it (built from JSON:
/// the test crate does not depend on ipnetwork).
fn plan(
    ifname: &str,
    mac: &str,
    v4: &str,
    gw4: &str,
    v6: Option<(&str, &str)>,
    mtu: u32,
) -> InterfacePlan {
    serde_json::from_value(json!({
        "ifname": ifname,
        "mac": mac,
        "ipv4": v4,
        "ipv6": v6.map(|(a, _)| a),
        "gateway4": gw4,
        "gateway6": v6.map(|(_, g)| g),
        "default_route": true,
        "mtu": mtu,
    }))
    .expect("valid plan")
}

/// Copies frames between two TAPs in both directions, adapting the virtio
/// header when only one side has it (ping frames never need offload work,
/// so stripping or prepending a zero header is all it takes). Stops and
/// joins on drop.
struct Copier {
    stop: Arc<AtomicBool>,
    frames: Arc<AtomicU64>,
    threads: Vec<JoinHandle<()>>,
}

impl Copier {
    fn start(a: OwnedFd, a_vnet: bool, b: OwnedFd, b_vnet: bool) -> Copier {
        let stop = Arc::new(AtomicBool::new(false));
        let frames = Arc::new(AtomicU64::new(0));
        let a = Arc::new(File::from(a));
        let b = Arc::new(File::from(b));
        let mut threads = Vec::new();
        for (from, fv, to, tv) in [
            (a.clone(), a_vnet, b.clone(), b_vnet),
            (b, b_vnet, a, a_vnet),
        ] {
            let (stop, frames) = (stop.clone(), frames.clone());
            threads.push(std::thread::spawn(move || {
                pump(&from, fv, &to, tv, &stop, &frames)
            }));
        }
        Copier {
            stop,
            frames,
            threads,
        }
    }
}

impl Drop for Copier {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn pump(
    from: &File,
    from_vnet: bool,
    to: &File,
    to_vnet: bool,
    stop: &AtomicBool,
    frames: &AtomicU64,
) {
    let mut buf = vec![0u8; VNET_HDR_LEN + 65_536 + 64];
    let mut out = Vec::with_capacity(buf.len());
    while !stop.load(Ordering::Relaxed) {
        let n = match (&*from).read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(1));
                continue;
            }
            Err(_) => return,
        };
        let frame = if from_vnet {
            &buf[VNET_HDR_LEN.min(n)..n]
        } else {
            &buf[..n]
        };
        if frame.len() < 14 {
            continue; // not even an Ethernet header
        }
        out.clear();
        if from_vnet && to_vnet {
            out.extend_from_slice(&buf[..n]); // same header on both: verbatim
        } else {
            if to_vnet {
                out.extend_from_slice(&[0u8; VNET_HDR_LEN]); // "no offload"
            }
            out.extend_from_slice(frame);
        }
        if (&*to).write(&out).is_ok() {
            frames.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Gives two sandboxes a TAP each on 10.N.0.0/24 and copies frames
/// between them; returns the copier (keep it alive while pinging).
fn wire_pair(a: &Sandbox, b: &Sandbox, net: u8, a_vnet: bool, b_vnet: bool) -> Copier {
    let (sa, sb) = (a.session(), b.session());
    let ta = sa
        .create_tap(
            "eth0",
            TapOptions {
                vnet_hdr: a_vnet,
                persist: false,
                exclusive: false,
            },
        )
        .expect("tap a");
    let tb = sb
        .create_tap(
            "eth0",
            TapOptions {
                vnet_hdr: b_vnet,
                persist: false,
                exclusive: false,
            },
        )
        .expect("tap b");
    let gw = format!("10.{net}.0.1");
    let pa = plan(
        "eth0",
        &format!("02:42:0a:{net:02x}:00:02"),
        &format!("10.{net}.0.2/24"),
        &gw,
        None,
        1500,
    );
    let pb = plan(
        "eth0",
        &format!("02:42:0a:{net:02x}:00:03"),
        &format!("10.{net}.0.3/24"),
        &gw,
        None,
        1500,
    );
    configure_interface(&sa.netlink().expect("netlink a"), &pa).expect("configure a");
    configure_interface(&sb.netlink().expect("netlink b"), &pb).expect("configure b");
    Copier::start(ta, a_vnet, tb, b_vnet)
}

// ------------------------------------------------------------------ tests

#[test]
fn holder_creates_a_private_netns_with_only_lo_up_its_hostname_and_resolv_conf() {
    if !require_root("holder_creates_a_private_netns") {
        return;
    }
    let host_resolv_before = std::fs::read("/etc/resolv.conf").ok();
    let host_name = run(&mut Command::new("hostname"));
    let sbx = Sandbox::start(HolderMode::Private);
    let pid = sbx.holder.pid;
    assert!(sbx.holder.is_alive());

    let links = nsenter(pid, &["-n"], &["ip", "-o", "link"]);
    let lines: Vec<&str> = links.lines().collect();
    assert_eq!(lines.len(), 1, "only loopback expected, got:\n{links}");
    assert!(
        lines[0].contains(": lo:") && lines[0].contains("UP"),
        "lo must be up: {links}"
    );

    assert_eq!(nsenter(pid, &["-u"], &["hostname"]).trim(), sbx.hostname);
    assert_eq!(
        run(&mut Command::new("hostname")),
        host_name,
        "host hostname unchanged"
    );
    assert_eq!(
        nsenter(pid, &["-m"], &["cat", "/etc/resolv.conf"]),
        sbx.resolv
    );
    assert_eq!(
        std::fs::read("/etc/resolv.conf").ok(),
        host_resolv_before,
        "host resolv.conf unchanged"
    );

    // Its own session: killing the test's process group would spare it.
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    assert_eq!(fields[3], pid.to_string(), "holder leads its own session");

    sbx.holder.terminate().expect("terminate");
    assert!(!sbx.holder.is_alive());
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "holder reaped"
    );
}

#[test]
fn holder_reports_its_own_error_when_setup_fails() {
    if !require_root("holder_reports_its_own_error") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let spec = HolderSpec {
        mode: HolderMode::Private,
        hostname: Some("x".into()),
        resolv_conf: Some(dir.path().join("missing-resolv.conf")),
        hosts: None,
        log_path: dir.path().join("holder.log"),
        ..Default::default()
    };
    let err = spawn_holder(Path::new(&exe()), &spec).expect_err("must fail");
    assert!(matches!(err, RealError::HolderFailed { .. }), "{err:?}");
    assert!(err.to_string().contains("missing-resolv.conf"), "{err}");
}

#[test]
fn a_reused_pid_is_never_mistaken_for_the_holder() {
    if !require_root("a_reused_pid_is_never_mistaken") {
        return;
    }
    let sbx = Sandbox::start(HolderMode::None);
    let impostor = Holder {
        pid: sbx.holder.pid,
        start_time: sbx.holder.start_time + 1,
    };
    assert!(!impostor.is_alive());
    impostor
        .terminate()
        .expect("terminating a stale record is a no-op");
    assert!(
        sbx.holder.is_alive(),
        "the real holder must not have been signalled"
    );
    assert!(matches!(
        NsSession::open(Path::new(&exe()), &NetnsTarget::Holder(impostor)),
        Err(RealError::InNamespace { .. })
    ));
}

#[test]
fn tap_is_created_in_the_sandbox_and_configured_by_netlink() {
    if !require_root("tap_is_created_in_the_sandbox") {
        return;
    }
    let sbx = Sandbox::start(HolderMode::Private);
    let session = sbx.session();
    let _tap = session
        .create_tap(
            "eth0",
            TapOptions {
                vnet_hdr: true,
                persist: false,
                exclusive: false,
            },
        )
        .expect("create tap");
    assert!(session.link_exists("eth0").unwrap());
    let p = plan(
        "eth0",
        "02:42:0a:01:00:02",
        "10.1.0.2/24",
        "10.1.0.1",
        Some(("fd00:1::2/64", "fd00:1::1")),
        1400,
    );
    let nl = session.netlink().unwrap();
    configure_interface(&nl, &p).expect("configure");
    configure_interface(&nl, &p).expect("configuring twice is harmless");

    let pid = sbx.holder.pid;
    let link = nsenter(pid, &["-n"], &["ip", "-o", "link", "show", "eth0"]);
    assert!(link.contains("mtu 1400"), "{link}");
    assert!(
        link.contains(&format!("qlen {SANDBOX_TXQUEUELEN}")),
        "{link}"
    );
    assert!(link.contains("link/ether 02:42:0a:01:00:02"), "{link}");
    assert!(link.contains(",UP"), "{link}");
    let addrs = nsenter(pid, &["-n"], &["ip", "-o", "addr", "show", "eth0"]);
    assert!(addrs.contains("inet 10.1.0.2/24 brd 10.1.0.255"), "{addrs}");
    let v6 = addrs
        .lines()
        .find(|l| l.contains("inet6 fd00:1::2/64"))
        .unwrap_or_else(|| panic!("{addrs}"));
    assert!(
        v6.contains("nodad") && !v6.contains("tentative"),
        "IPv6 address must skip DAD: {v6}"
    );
    let routes = nsenter(pid, &["-n"], &["ip", "route"]);
    assert!(routes.contains("default via 10.1.0.1 dev eth0"), "{routes}");
    let routes6 = nsenter(pid, &["-n"], &["ip", "-6", "route"]);
    assert!(
        routes6.contains("default via fd00:1::1 dev eth0"),
        "{routes6}"
    );

    // Our own view agrees.
    let index = nl.link_index("eth0").unwrap();
    let eth0 = nl
        .list_links()
        .unwrap()
        .into_iter()
        .find(|l| l.name == "eth0")
        .unwrap();
    assert_eq!((eth0.index, eth0.mtu, eth0.up), (index, 1400, true));
    assert_eq!(eth0.mac.unwrap().to_string(), "02:42:0a:01:00:02");
    let addrs: Vec<String> = nl
        .list_addresses(index)
        .unwrap()
        .iter()
        .map(|a| a.to_string())
        .collect();
    assert!(addrs.contains(&"10.1.0.2/24".to_string()), "{addrs:?}");
    let defaults = nl.list_default_routes().unwrap();
    assert_eq!(defaults.len(), 2, "{defaults:?}");

    // Errors say what is wrong, naming the interface.
    let again = nl
        .add_address(index, serde_json::from_value(json!("10.1.0.2/24")).unwrap())
        .unwrap_err();
    assert_eq!(
        again.to_string().split(';').next().unwrap(),
        "address 10.1.0.2/24 already exists on eth0"
    );
    let exists = nl
        .add_default_route("10.1.0.1".parse().unwrap(), index)
        .unwrap_err();
    assert!(matches!(exists, RealError::RouteExists { .. }), "{exists}");
    assert!(matches!(
        nl.link_index("nope0"),
        Err(RealError::NoSuchLink { .. })
    ));
}

#[test]
fn two_sandboxes_ping_each_other_through_a_userspace_frame_copier() {
    if !require_root("two_sandboxes_ping_each_other") {
        return;
    }
    let (a, b) = (
        Sandbox::start(HolderMode::Private),
        Sandbox::start(HolderMode::Private),
    );
    // One side with the virtio header, one without: the copier adapts.
    let copier = wire_pair(&a, &b, 2, true, false);
    let out = a.output("ping", &["-c", "2", "-W", "2", "10.2.0.3"]);
    assert!(
        out.status.success(),
        "ping failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        copier.frames.load(Ordering::Relaxed) >= 4,
        "frames went through the copier"
    );
}

#[test]
fn a_persistent_tap_survives_its_descriptors_and_is_reattached_by_name() {
    if !require_root("a_persistent_tap_survives") {
        return;
    }
    let sbx = Sandbox::start(HolderMode::Private);
    {
        let session = sbx.session();
        let fd = session
            .create_tap(
                "keep0",
                TapOptions {
                    vnet_hdr: true,
                    persist: true,
                    exclusive: false,
                },
            )
            .unwrap();
        let scratch = session.create_tap("gone0", TapOptions::default()).unwrap();
        drop((fd, scratch));
    } // session and every descriptor closed: a daemon restart
    let session = sbx.session();
    assert!(
        session.link_exists("keep0").unwrap(),
        "persistent TAP survives"
    );
    assert!(
        !session.link_exists("gone0").unwrap(),
        "non-persistent TAP goes with its last descriptor"
    );
    let fd = session
        .create_tap(
            "keep0",
            TapOptions {
                vnet_hdr: true,
                persist: true,
                exclusive: false,
            },
        )
        .expect("re-attach by name");
    // While we hold it, nobody else can attach, and the error says why.
    let busy = session
        .create_tap(
            "keep0",
            TapOptions {
                vnet_hdr: true,
                persist: true,
                exclusive: false,
            },
        )
        .unwrap_err();
    assert!(busy.to_string().contains("already open"), "{busy}");
    drop(fd);
    session.delete_tap("keep0").expect("delete");
    assert!(
        !session.link_exists("keep0").unwrap(),
        "delete_tap removes it"
    );
    session
        .delete_tap("keep0")
        .expect("deleting an absent TAP is fine");
    let not_tap = session.create_tap("lo", TapOptions::default()).unwrap_err();
    assert!(not_tap.to_string().contains("not a TAP"), "{not_tap}");
}

/// `ip netns add` namespace, deleted on drop.
struct IpNetns(String);

impl Drop for IpNetns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

#[test]
fn a_namespace_given_by_path_can_be_attached() {
    if !require_root("a_namespace_given_by_path") {
        return;
    }
    let ns = IpNetns(unique("swy-test-"));
    run(Command::new("ip").args(["netns", "add", &ns.0]));
    let target = NetnsTarget::Path(PathBuf::from(format!("/run/netns/{}", ns.0)));
    let session = NsSession::open(Path::new(&exe()), &target).expect("open by path");
    let _tap = session.create_tap("eth0", TapOptions::default()).unwrap();
    let nl = session.netlink().unwrap();
    let lo = nl.link_index("lo").unwrap();
    nl.set_link_up(lo).unwrap();
    configure_interface(
        &nl,
        &plan(
            "eth0",
            "02:42:0a:04:00:02",
            "10.4.0.2/24",
            "10.4.0.1",
            None,
            1500,
        ),
    )
    .unwrap();
    let addrs = run(Command::new("ip").args(["-n", &ns.0, "-o", "addr", "show", "eth0"]));
    assert!(addrs.contains("inet 10.4.0.2/24"), "{addrs}");
    let inside = command_in(&target, Join::NET, "ip")
        .unwrap()
        .args(["-o", "route"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&inside.stdout).contains("default via 10.4.0.1 dev eth0"));
    assert!(
        command_in(&target, Join::ALL, "true").is_err(),
        "a path has no mount/UTS namespace"
    );

    let missing = NetnsTarget::Path(PathBuf::from("/run/netns/does-not-exist-switchyard"));
    let err = NsSession::open(Path::new(&exe()), &missing).unwrap_err();
    assert!(err.to_string().contains("ip netns add"), "{err}");
}

#[test]
fn share_netns_mode_sees_the_targets_interfaces_with_its_own_hostname() {
    if !require_root("share_netns_mode") {
        return;
    }
    let a = Sandbox::start(HolderMode::Private);
    let session = a.session();
    let _tap = session.create_tap("eth0", TapOptions::default()).unwrap();
    configure_interface(
        &session.netlink().unwrap(),
        &plan(
            "eth0",
            "02:42:0a:05:00:02",
            "10.5.0.2/24",
            "10.5.0.1",
            None,
            1500,
        ),
    )
    .unwrap();
    let b = Sandbox::start(HolderMode::ShareNetns(a.holder));
    let addrs = nsenter(b.holder.pid, &["-n"], &["ip", "-o", "addr", "show", "eth0"]);
    assert!(addrs.contains("inet 10.5.0.2/24"), "{addrs}");
    let out = b.output("hostname", &[]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), b.hostname);
    assert_ne!(a.hostname, b.hostname);
    drop(b);
    assert!(
        a.holder.is_alive(),
        "stopping the sharer leaves the owner running"
    );
}

#[test]
fn command_in_runs_inside_with_the_sandbox_hostname_and_resolv_conf() {
    if !require_root("command_in_runs_inside") {
        return;
    }
    let sbx = Sandbox::start(HolderMode::None);
    let out = sbx.output("hostname", &[]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), sbx.hostname);
    let out = sbx.output("cat", &["/etc/resolv.conf"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), sbx.resolv);
    let out = sbx.output("ip", &["-o", "link"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).lines().count(),
        1,
        "none mode: loopback only"
    );
}

#[test]
fn sockets_bound_inside_at_127_0_0_11_receive_from_inside() {
    if !require_root("sockets_bound_inside") {
        return;
    }
    let sbx = Sandbox::start(HolderMode::Private);
    udp_and_tcp_on_127_0_0_11(&sbx);
}

/// The embedded DNS server's sockets: UDP and TCP on 127.0.0.11:53, made by
/// the session, reached by a process inside.
fn udp_and_tcp_on_127_0_0_11(sbx: &Sandbox) {
    let session = sbx.session();
    let addr = "127.0.0.11:53".parse().unwrap();
    let udp = std::net::UdpSocket::from(session.udp_socket(addr).expect("bind udp"));
    udp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let tcp = std::net::TcpListener::from(session.tcp_listener(addr).expect("listen tcp"));
    let out = sbx.output(
        "bash",
        &[
            "-c",
            "echo ping-udp > /dev/udp/127.0.0.11/53 && echo ping-tcp > /dev/tcp/127.0.0.11/53",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut buf = [0u8; 64];
    let (n, from) = udp.recv_from(&mut buf).expect("datagram from inside");
    assert_eq!(&buf[..n], b"ping-udp\n");
    assert!(from.ip().is_loopback());
    let (mut conn, _) = tcp.accept().expect("connection from inside");
    let mut got = String::new();
    conn.read_to_string(&mut got).unwrap();
    assert_eq!(got, "ping-tcp\n");
}

// --------------------------------------------------------------- rootless

/// Runs [`rootless_scenario`] as an unprivileged user and checks it passed.
#[test]
fn rootless_sandboxes_get_taps_netlink_config_dns_sockets_and_ping_each_other() {
    if !require_root("rootless_sandboxes (root sets up the unprivileged user)") {
        return;
    }
    // The unprivileged user the scenario runs as, allowed to use
    // /dev/net/tun.
    let (uid, gid) = ensure_test_user();

    // Copies of the binaries where the test user can surely execute them
    // (the build directory may sit under a private home).
    let dir = tempfile::Builder::new()
        .prefix("swy-rootless-")
        .tempdir()
        .unwrap();
    run(Command::new("chmod").arg("0755").arg(dir.path()));
    let bin = dir.path().join("switchyard");
    let test_bin = dir.path().join("real_primitives");
    copy_executable(Path::new(EXE), &bin);
    copy_executable(&std::env::current_exe().unwrap(), &test_bin);

    // A namespace root made, which the rootless user must be refused.
    let root_ns = IpNetns(unique("swy-root-"));
    run(Command::new("ip").args(["netns", "add", &root_ns.0]));

    let out = Command::new("setpriv")
        .args([
            &format!("--reuid={uid}"),
            &format!("--regid={gid}"),
            "--clear-groups",
            "env",
            "HOME=/tmp",
            "TMPDIR=/tmp",
        ])
        .arg(format!("{ROOTLESS_ENV}=1"))
        .arg(format!("SWITCHYARD_EXE={}", bin.display()))
        .arg(format!("SWITCHYARD_ROOT_NETNS=/run/netns/{}", root_ns.0))
        .arg(&test_bin)
        .args([
            "rootless_scenario",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .current_dir("/")
        .output()
        .expect("run the scenario as the test user");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("--- rootless scenario stdout ---\n{stdout}\n--- stderr ---\n{stderr}");
    assert!(
        out.status.success(),
        "rootless scenario failed ({})",
        out.status
    );
    assert!(
        stdout.contains("ROOTLESS SCENARIO PASSED"),
        "the scenario did not run to the end"
    );
}

/// The rootless story, run by the test above as `switchyard-test` through
/// `setpriv`. This process is an ordinary multi-threaded one without any
/// capability — exactly a rootless daemon.
#[test]
#[ignore = "run as an unprivileged user by rootless_sandboxes_get_taps_..."]
fn rootless_scenario() {
    assert!(
        std::env::var_os(ROOTLESS_ENV).is_some(),
        "started only by the rootless test"
    );
    assert_ne!(euid(), 0, "must run as an ordinary user");

    let a = Sandbox::start(HolderMode::Private);
    let b = Sandbox::start(HolderMode::Private);
    let own_userns = std::fs::read_link("/proc/self/ns/user").unwrap();
    assert_ne!(
        std::fs::read_link(a.holder.ns_path(switchyard_linux::NsKind::User)).unwrap(),
        own_userns
    );
    println!(
        "holders {} and {} have their own user namespaces",
        a.holder.pid, b.holder.pid
    );

    let out = a.output("id", &["-u"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "0",
        "the user is root inside"
    );
    let out = a.output("hostname", &[]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), a.hostname);
    let out = a.output("cat", &["/etc/resolv.conf"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), a.resolv);

    // TAPs with the virtio header on both sides, configured by netlink from
    // this (unprivileged, multi-threaded) process.
    let copier = wire_pair(&a, &b, 3, true, true);
    let nl = a.session().netlink().unwrap();
    let eth0 = nl
        .list_links()
        .unwrap()
        .into_iter()
        .find(|l| l.name == "eth0")
        .expect("eth0 in a");
    assert_eq!(eth0.mac.unwrap().to_string(), "02:42:0a:03:00:02");
    assert!(eth0.up && eth0.txqlen == SANDBOX_TXQUEUELEN);
    let addrs: Vec<String> = nl
        .list_addresses(eth0.index)
        .unwrap()
        .iter()
        .map(|a| a.to_string())
        .collect();
    assert!(addrs.contains(&"10.3.0.2/24".to_string()), "{addrs:?}");
    assert_eq!(nl.list_default_routes().unwrap().len(), 1);
    println!("TAP eth0 created and configured in both sandboxes");

    udp_and_tcp_on_127_0_0_11(&a);
    println!("UDP and TCP sockets bound at 127.0.0.11:53 inside");

    let out = a.output("ping", &["-c", "2", "-W", "2", "10.3.0.3"]);
    assert!(
        out.status.success(),
        "ping failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(copier.frames.load(Ordering::Relaxed) >= 4);
    println!("ping between the two rootless sandboxes succeeded");

    // `--network container:A`, rootless: joins A's user and network
    // namespaces, with its own hostname.
    let c = Sandbox::start(HolderMode::ShareNetns(a.holder));
    let out = c.output("ip", &["-o", "addr", "show", "eth0"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("inet 10.3.0.2/24"));
    let out = c.output("hostname", &[]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), c.hostname);
    drop(c);
    println!("a sandbox sharing A's network sees eth0");

    // Attach by path: the owning user namespace is found with NS_GET_USERNS.
    let by_path = NetnsTarget::Path(a.holder.ns_path(switchyard_linux::NsKind::Net));
    let s = NsSession::open(Path::new(&exe()), &by_path).expect("open by path, rootless");
    assert!(s.link_exists("eth0").unwrap());
    drop(s);
    println!("attach by /proc/PID/ns/net path works");

    // ... but not a namespace that belongs to root.
    let root_ns = std::env::var("SWITCHYARD_ROOT_NETNS").expect("root netns path");
    let err = NsSession::open(Path::new(&exe()), &NetnsTarget::Path(root_ns.into())).unwrap_err();
    assert!(err.to_string().contains("belongs to another user"), "{err}");
    println!("attaching root's namespace is refused: {err}");

    // A persistent TAP survives a session, rootless too.
    {
        let s = b.session();
        drop(
            s.create_tap(
                "keep0",
                TapOptions {
                    vnet_hdr: false,
                    persist: true,
                    exclusive: false,
                },
            )
            .unwrap(),
        );
    }
    let s = b.session();
    assert!(s.link_exists("keep0").unwrap());
    s.delete_tap("keep0").unwrap();
    assert!(!s.link_exists("keep0").unwrap());
    drop(copier);
    println!("ROOTLESS SCENARIO PASSED");
}

#[test]
fn exclusive_creation_never_takes_over_an_existing_interface() {
    if !require_root("exclusive_tap") {
        return;
    }
    let sbx = Sandbox::start(HolderMode::Private);
    let session = sbx.session();
    let exclusive = TapOptions {
        vnet_hdr: true,
        persist: true,
        exclusive: true,
    };
    let fd = session
        .create_tap("excl0", exclusive)
        .expect("first creation");
    drop(fd);
    // Persistent and closed: a plain re-attach works, an exclusive one not.
    let err = session.create_tap("excl0", exclusive).unwrap_err();
    assert!(err.to_string().contains("already exists"), "{err}");
    let err = session.create_tap("lo", exclusive).unwrap_err();
    assert!(err.to_string().contains("already exists"), "{err}");
    let again = session.create_tap(
        "excl0",
        TapOptions {
            exclusive: false,
            ..exclusive
        },
    );
    assert!(again.is_ok(), "a restart re-attaches: {:?}", again.err());
    drop(again);
    session.delete_tap("excl0").unwrap();
}
