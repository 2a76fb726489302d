//! Our VTEP against the Linux kernel's: a data plane run by the test, with
//! a container's TAP and one VXLAN tunnel port, exchanges traffic with a
//! kernel `vxlan` device (same VNI, static remote) across a veth underlay.
//!
//! ```text
//!  container ns         underlay ns "ours"           kernel ns
//!  eth0 (TAP) ── data plane ── UDP 10.204.0.1:4789 ═veth═ 10.204.0.2 vx0 (VNI 4242)
//!  10.42.0.2/24, fd42::2                                   10.42.0.1/24, fd42::1
//! ```
//!
//! Needs root (namespaces, TAPs, veth, vxlan); without it the tests print a
//! loud SKIPPED line, and under CI they fail. Every namespace is deleted by
//! a guard, even when a test fails.

mod common;

use common::{require_root, run_ok, unique, wait_until};
use serde_json::json;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use switchyard_linux::{
    configure_interface, Dataplane, DataplaneConfig, DataplaneReport, NetnsTarget, NsSession,
    TapFraming, TapOptions, TapPort, TunnelEndpoint, TunnelEndpointConfig,
};
use switchyard_switch::driver::InterfacePlan;
use switchyard_switch::port::{HorizonGroup, PortBinding, PortConfig, PortId, SegmentId};
use switchyard_switch::vxlan::{self, DecapDrop};

const EXE: &str = env!("CARGO_BIN_EXE_switchyard");
const VNI: u32 = 4242;
const OURS: &str = "10.204.0.1";
const KERNEL: &str = "10.204.0.2";
const C4: &str = "10.42.0.2";
const K4: &str = "10.42.0.1";
const C6: &str = "fd42::2";
const K6: &str = "fd42::1";

/// An `ip netns add` namespace, deleted on drop (with its veth end and
/// vxlan device).
struct Netns(String);

impl Netns {
    fn new(prefix: &str) -> Netns {
        let ns = Netns(unique(prefix));
        run_ok(Command::new("ip").args(["netns", "add", &ns.0]));
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    fn path(&self) -> PathBuf {
        PathBuf::from(format!("/run/netns/{}", self.0))
    }

    fn session(&self) -> NsSession {
        NsSession::open(Path::new(EXE), &NetnsTarget::Path(self.path()))
            .unwrap_or_else(|e| panic!("session in {}: {e}", self.0))
    }

    fn ip(&self, args: &[&str]) -> String {
        run_ok(Command::new("ip").args(["-n", &self.0]).args(args))
    }

    fn exec(&self, argv: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.0]).args(argv);
        c
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// Turns off transmit checksum offload of `ifname` in the namespace of
/// `sock` (the legacy `ETHTOOL_STXCSUM` ioctl; no ethtool binary needed).
///
/// Why: over a veth, a kernel VTEP's datagrams keep the inner TCP/UDP
/// checksum *partial* (`CHECKSUM_PARTIAL` survives the virtual wire, and
/// the kernel's own decapsulation trusts it), so a userspace VTEP reading
/// them from a UDP socket gets inner frames whose checksum field holds
/// only the pseudo-header sum. A physical NIC would have filled them in;
/// without transmit checksum offload on the veth the kernel does it in
/// software, as for a NIC that cannot, before the frame leaves.
fn disable_tx_checksum(sock: &UdpSocket, ifname: &str) {
    #[repr(C)]
    struct EthtoolValue {
        cmd: u32,
        data: u32,
    }
    #[repr(C)]
    struct IfReq {
        name: [u8; 16],
        data: *mut libc::c_void,
        _pad: [u8; 16],
    }
    const ETHTOOL_STXCSUM: u32 = 0x17;
    const SIOCETHTOOL: libc::c_ulong = 0x8946;
    let mut value = EthtoolValue {
        cmd: ETHTOOL_STXCSUM,
        data: 0,
    };
    let mut req = IfReq {
        name: [0; 16],
        data: (&mut value as *mut EthtoolValue).cast(),
        _pad: [0; 16],
    };
    req.name[..ifname.len()].copy_from_slice(ifname.as_bytes());
    // SAFETY: SIOCETHTOOL reads the ifreq and the ethtool_value it points
    // at, both live for the call.
    let r = unsafe {
        libc::ioctl(
            std::os::fd::AsRawFd::as_raw_fd(sock),
            SIOCETHTOOL as _,
            &mut req as *mut IfReq,
        )
    };
    assert_eq!(
        r,
        0,
        "ETHTOOL_STXCSUM off on {ifname}: {}",
        std::io::Error::last_os_error()
    );
}

/// A child process killed on drop (an iperf3 server).
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The three namespaces, the data plane and its two ports. Fields drop in
/// order: the data plane stops before its namespaces go.
struct Overlay {
    dp: Dataplane,
    tunnel: PortId,
    _sessions: Vec<NsSession>,
    /// The kernel's end of the underlay veth.
    kernel_if: String,
    container: Netns,
    kernel: Netns,
    _ours: Netns,
}

impl Overlay {
    /// `offloads`: `UDP_SEGMENT` on send and TCP coalescing on receive.
    fn new(offloads: bool) -> Overlay {
        let ours = Netns::new("swyvx-u");
        let kernel = Netns::new("swyvx-k");
        let container = Netns::new("swyvx-c");
        let tag = unique("");
        let (vu, vk) = (format!("vu{tag}"), format!("vk{tag}"));
        run_ok(Command::new("ip").args([
            "link", "add", &vu, "netns", &ours.0, "type", "veth", "peer", "name", &vk, "netns",
            &kernel.0,
        ]));
        ours.ip(&["addr", "add", &format!("{OURS}/24"), "dev", &vu]);
        ours.ip(&["link", "set", &vu, "up"]);
        kernel.ip(&["addr", "add", &format!("{KERNEL}/24"), "dev", &vk]);
        kernel.ip(&["link", "set", &vk, "up"]);
        let ks = kernel.session();
        let probe = UdpSocket::from(
            ks.udp_socket(SocketAddr::new(KERNEL.parse().unwrap(), 0))
                .expect("a socket in the kernel's namespace"),
        );
        disable_tx_checksum(&probe, &vk);
        kernel.ip(&[
            "link",
            "add",
            "vx0",
            "type",
            "vxlan",
            "id",
            &VNI.to_string(),
            "dstport",
            "4789",
            "remote",
            OURS,
            "local",
            KERNEL,
            "dev",
            &vk,
        ]);
        kernel.ip(&["addr", "add", &format!("{K4}/24"), "dev", "vx0"]);
        kernel.ip(&[
            "-6",
            "addr",
            "add",
            &format!("{K6}/64"),
            "dev",
            "vx0",
            "nodad",
        ]);

        let cs = container.session();
        let tap = cs
            .create_tap(
                "eth0",
                TapOptions {
                    vnet_hdr: true,
                    persist: false,
                    exclusive: true,
                },
            )
            .expect("TAP in the container");
        let plan: InterfacePlan = serde_json::from_value(json!({
            "ifname": "eth0",
            "mac": "02:42:0a:2a:00:02",
            "ipv4": format!("{C4}/24"),
            "ipv6": format!("{C6}/64"),
            "gateway4": null,
            "gateway6": null,
            "default_route": false,
            "mtu": 1450,
        }))
        .expect("plan");
        configure_interface(&cs.netlink().expect("netlink"), &plan).expect("configure eth0");

        let us = ours.session();
        let sock = us
            .udp_socket(SocketAddr::new(OURS.parse().unwrap(), 4789))
            .expect("VXLAN socket in the underlay namespace");
        let mut endpoint = TunnelEndpoint::new(
            sock,
            TunnelEndpointConfig {
                underlay_mtu: 1500,
                remote_port: 4789,
                udp_gso: offloads,
                coalesce_tcp: offloads,
                flow_seed: 7,
            },
        )
        .expect("endpoint");
        // Flows leave from four source ports (the kernel takes any).
        for _ in 0..4 {
            let source = us
                .udp_socket(SocketAddr::new(OURS.parse().unwrap(), 0))
                .expect("source socket");
            endpoint
                .add_source_socket(source)
                .expect("add source socket");
        }
        let dp = Dataplane::start(DataplaneConfig::default()).expect("data plane");
        let port = |label: &str, horizon| PortConfig {
            segment: SegmentId(1),
            binding: PortBinding::Trunk,
            label: label.into(),
            mtu: 1450,
            horizon,
        };
        dp.add_port(
            port("c/eth0", None),
            Box::new(TapPort::new(tap, TapFraming { vnet_hdr: true })),
        )
        .expect("TAP port");
        dp.set_tunnel_endpoint(endpoint).expect("set endpoint");
        let tunnel = dp
            .add_tunnel_port(
                port("vxlan", Some(HorizonGroup(1))),
                VNI,
                KERNEL.parse().unwrap(),
            )
            .expect("tunnel port");
        // Only now: what vx0 sends as it comes up (IPv6 MLD and neighbour
        // solicitations) would otherwise reach an endpoint without its
        // tunnel yet, as a foreign VNI.
        kernel.ip(&["link", "set", "vx0", "up"]);
        Overlay {
            dp,
            tunnel,
            _sessions: vec![cs, us, ks],
            kernel_if: vk,
            container,
            kernel,
            _ours: ours,
        }
    }

    fn report(&self) -> DataplaneReport {
        self.dp.report().expect("report")
    }

    fn decap_drops(&self, reason: DecapDrop) -> u64 {
        self.report()
            .tunnel
            .expect("endpoint")
            .decap
            .drops_for(reason)
    }

    fn ping(&self, from: &Netns, to: &str) -> Result<(), String> {
        let out = from
            .exec(&["ping", "-c", "2", "-i", "0.2", "-W", "1", to])
            .output()
            .expect("ping");
        if out.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&out.stdout).into_owned())
        }
    }

    /// Runs iperf3 from the kernel's side to the container for `secs`
    /// (reverse: the container sends); returns Gbit/s received.
    fn iperf(&self, server: &str, reverse: bool, secs: u32) -> f64 {
        let port = 5201;
        let _server = Killed(
            self.container
                .exec(&["iperf3", "-s", "-1", "-B", server, "-p", &port.to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("iperf3 server"),
        );
        let mut args = vec!["iperf3", "-c", server, "-p", "5201", "-J"];
        let t = secs.to_string();
        args.extend(["-t", &t]);
        if reverse {
            args.push("-R");
        }
        // Retried until the server listens (iperf3 -J may exit 0 with an
        // "error" member, so the result decides).
        let bps = wait_until("an iperf3 result", Duration::from_secs(10), || {
            let out = self.kernel.exec(&args).output().expect("iperf3 client");
            let v: serde_json::Value = serde_json::from_slice(&out.stdout)
                .map_err(|e| format!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stderr)))?;
            v["end"]["sum_received"]["bits_per_second"]
                .as_f64()
                .ok_or_else(|| format!("no result: {}", v["error"]))
        });
        bps / 1e9
    }
}

#[test]
fn ping_crosses_to_the_kernels_vxlan_and_back_both_ways() {
    if !require_root("ping_crosses_to_the_kernels_vxlan") {
        return;
    }
    let o = Overlay::new(true);
    wait_until("container -> kernel ping", Duration::from_secs(10), || {
        o.ping(&o.container, K4)
    });
    o.ping(&o.kernel, C4).expect("kernel -> container ping");
    wait_until("IPv6 ping", Duration::from_secs(10), || {
        o.ping(&o.container, K6)
    });
    let r = o.report();
    let t = r.tunnel.as_ref().expect("endpoint");
    assert!(t.decap.delivered >= 4, "{t:?}");
    assert_eq!(t.decap.dropped(), 0, "{t:?}");
    let tp = r.ports.iter().find(|p| p.id == o.tunnel).unwrap();
    assert_eq!(tp.kind, "vxlan");
    assert!(
        tp.counters.rx_frames >= 4 && tp.counters.tx_frames >= 4,
        "{tp:?}"
    );
}

fn iperf_both_ways(offloads: bool) {
    let o = Overlay::new(offloads);
    wait_until("connectivity", Duration::from_secs(10), || {
        o.ping(&o.container, K4)
    });
    let into = o.iperf(C4, false, 3);
    let out = o.iperf(C4, true, 3);
    wait_until("IPv6 connectivity", Duration::from_secs(10), || {
        o.ping(&o.container, K6)
    });
    let out6 = o.iperf(C6, true, 2);
    let t = o.report().tunnel.expect("endpoint");
    println!(
        "real_vxlan iperf3 (UDP_SEGMENT and TCP coalescing: {offloads}): \
         kernel->container {into:.2} Gbit/s, container->kernel {out:.2} Gbit/s, \
         container->kernel IPv6 {out6:.2} Gbit/s; segmented {} super-frames into {} \
         datagrams in {} messages, {} dropped; received {} segments coalesced into {} \
         super-frames",
        t.stats.segmented,
        t.stats.tx_datagrams,
        t.stats.tx_messages,
        t.stats.tx_dropped,
        t.stats.rx_coalesced,
        t.stats.rx_superframes
    );
    assert!(
        into > 0.05 && out > 0.05 && out6 > 0.05,
        "TCP flows both ways"
    );
    assert!(t.stats.segmented > 0, "the container's GSO frames were cut");
    if offloads {
        assert!(
            t.stats.tx_messages < t.stats.tx_datagrams,
            "UDP_SEGMENT batched"
        );
        assert!(t.stats.rx_superframes > 0, "received segments coalesced");
    } else {
        assert_eq!(t.stats.tx_messages, t.stats.tx_datagrams);
        assert_eq!(t.stats.rx_superframes, 0);
    }
    assert_eq!(t.decap.dropped(), 0, "{t:?}");
}

#[test]
fn iperf3_tcp_crosses_both_ways_with_udp_gso_and_coalescing() {
    if !require_root("iperf3_tcp_crosses_both_ways") {
        return;
    }
    iperf_both_ways(true);
}

#[test]
fn iperf3_tcp_crosses_both_ways_without_udp_gso_or_coalescing() {
    if !require_root("iperf3_tcp_without_offloads") {
        return;
    }
    iperf_both_ways(false);
}

#[test]
fn foreign_vnis_stranger_vteps_and_garbage_are_dropped_and_counted() {
    if !require_root("foreign_vnis_stranger_vteps_and_garbage") {
        return;
    }
    let o = Overlay::new(true);
    // A second kernel device, VNI 4243, to us: every frame a foreign VNI.
    let vk = o.kernel_if.clone();
    o.kernel.ip(&[
        "link", "add", "vx1", "type", "vxlan", "id", "4243", "dstport", "4789", "remote", OURS,
        "local", KERNEL, "dev", &vk,
    ]);
    o.kernel.ip(&["addr", "add", "10.43.0.1/24", "dev", "vx1"]);
    o.kernel.ip(&["link", "set", "vx1", "up"]);
    assert!(o.ping(&o.kernel, "10.43.0.2").is_err());
    wait_until("foreign VNI counted", Duration::from_secs(5), || {
        match o.decap_drops(DecapDrop::ForeignVni) {
            0 => Err("none yet".into()),
            n => Ok(n),
        }
    });

    // Datagrams the test writes from the kernel's namespace: a stranger
    // address with a valid header, and garbage from the real VTEP.
    o.kernel.ip(&["addr", "add", "10.204.0.3/24", "dev", &vk]);
    let ks = o.kernel.session();
    let stranger = UdpSocket::from(
        ks.udp_socket(SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 204, 0, 3)), 0))
            .expect("stranger socket"),
    );
    let vtep = UdpSocket::from(
        ks.udp_socket(SocketAddr::new(KERNEL.parse().unwrap(), 0))
            .expect("socket on the VTEP's address"),
    );
    let to = SocketAddr::new(OURS.parse().unwrap(), 4789);
    let mut valid = vxlan::header(VNI).to_vec();
    valid.extend_from_slice(&[0xff; 6]);
    valid.extend_from_slice(&[2, 0, 0, 0, 0, 0x99, 0x88, 0xb5]);
    valid.extend_from_slice(&[0u8; 46]);
    stranger.send_to(&valid, to).unwrap();
    vtep.send_to(&valid[..12], to).unwrap(); // truncated
    vtep.send_to(&[], to).unwrap(); // empty
    let mut flags = valid.clone();
    flags[0] = 0xff;
    vtep.send_to(&flags, to).unwrap();
    let mut reserved = valid.clone();
    reserved[3] = 0x80;
    vtep.send_to(&reserved, to).unwrap();
    wait_until("every bad datagram counted", Duration::from_secs(5), || {
        let d = o.report().tunnel.expect("endpoint").decap;
        let got = (
            d.drops_for(DecapDrop::UnknownVtep),
            d.drops_for(DecapDrop::Truncated),
            d.drops_for(DecapDrop::BadFlags),
            d.drops_for(DecapDrop::ReservedBits),
        );
        if got == (1, 2, 1, 1) {
            Ok(())
        } else {
            Err(format!("{got:?}"))
        }
    });
    // Nothing of it reached the container's segment, and the tunnel
    // still carries traffic.
    let r = o.report();
    assert!(
        !r.fdb.iter().any(|e| e.mac.0 == [2, 0, 0, 0, 0, 0x99]),
        "the stranger's MAC was never learned"
    );
    wait_until("ping after the garbage", Duration::from_secs(10), || {
        o.ping(&o.container, K4)
    });
}
