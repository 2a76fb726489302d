//! pcap captures open in tshark without warnings, with ARP, ICMP and TCP
//! decoded, and timestamps in virtual time.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;
use switchyard_sim::{EndpointSpec, NetworkSpec, Sim};

fn tshark_available() -> bool {
    let found = Command::new("tshark").arg("--version").output().is_ok();
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "tshark is required in CI (install the tshark package)"
        );
        eprintln!("\n!!! tshark is not installed: SKIPPING the pcap check (install tshark to run it) !!!\n");
    }
    found
}

fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("switchyard-sim-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn tshark_reads_the_captures_without_warnings_and_decodes_arp_icmp_and_tcp() {
    let mut sim = Sim::builder().seed(31).build();
    sim.add_host("h1").unwrap();
    sim.create_network(
        "h1",
        NetworkSpec {
            name: "front".into(),
            ..NetworkSpec::default()
        },
    )
    .unwrap();
    sim.add_container("h1", "a", &[("front", EndpointSpec::default())])
        .unwrap();
    sim.add_container("h1", "b", &[("front", EndpointSpec::default())])
        .unwrap();
    sim.capture_all();
    let ping = sim.ping("a", "b", 2).unwrap();
    sim.run_until(|s| s.is_done(ping), Duration::from_secs(10));
    let tcp = sim.tcp_transfer("a", "b", 5001, 20_000).unwrap();
    sim.run_until(|s| s.is_done(tcp), Duration::from_secs(10));
    assert!(sim.tcp_result(tcp).unwrap().completed_at.is_some());

    let dir = scratch_dir("pcap");
    let files = sim.write_pcaps(&dir).unwrap();
    assert!(files.iter().any(|f| f.ends_with("a-eth0.pcap")));
    assert!(files.iter().any(|f| f.ends_with("h1.pcap")));
    if !tshark_available() {
        return;
    }
    for file in &files {
        let out = Command::new("tshark").arg("-r").arg(file).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let complaints: Vec<&str> = stderr
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.contains("Running as user"))
            .collect();
        assert!(out.status.success(), "{}: {stderr}", file.display());
        assert!(complaints.is_empty(), "{}: {complaints:?}", file.display());
    }
    let a = dir.join("a-eth0.pcap");
    let text = String::from_utf8(
        Command::new("tshark")
            .args(["-r"])
            .arg(&a)
            .args([
                "-T",
                "fields",
                "-e",
                "frame.time_epoch",
                "-e",
                "_ws.col.Protocol",
            ])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    for proto in ["ARP", "ICMP", "TCP"] {
        assert!(
            text.lines().any(|l| l.ends_with(proto)),
            "{proto} missing in:\n{text}"
        );
    }
    // Virtual time: the first frame is at the epoch, the last within seconds.
    let first: f64 = text
        .lines()
        .next()
        .unwrap()
        .split('\t')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(first < 1.0, "timestamps are virtual: {first}");
    let _ = std::fs::remove_dir_all(&dir);
}
