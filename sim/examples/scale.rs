//! Measurements that are not criterion benches: simulated time over wall
//! time for an idle-heavy and a busy world, and peak memory (VmHWM) for
//! many containers. Each measurement runs in its own process so the peak
//! RSS is its own:
//!
//! ```text
//! cargo run --release -p switchyard-sim --example scale -- idle
//! cargo run --release -p switchyard-sim --example scale -- busy
//! cargo run --release -p switchyard-sim --example scale -- containers 1000
//! cargo run --release -p switchyard-sim --example scale -- containers 10000
//! cargo run --release -p switchyard-sim --example scale -- lab labs/partition-heal.toml
//! ```

#![allow(
    clippy::disallowed_methods,
    reason = "a measurement harness reads the wall clock on purpose"
)]

use std::time::{Duration, Instant as Wall};
use switchyard_sim::{EndpointSpec, LinkConfig, NetworkSpec, Ping, Sim};

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn world(containers: usize, seed: u64) -> Sim {
    world_with(containers, Sim::builder().seed(seed).build())
}

fn world_with(containers: usize, mut sim: Sim) -> Sim {
    sim.add_host("h1").unwrap();
    // A /16 holds 65k addresses: room for every container.
    sim.create_network(
        "h1",
        NetworkSpec {
            name: "front".into(),
            subnets: vec!["10.10.0.0/16".parse().unwrap()],
            ..NetworkSpec::default()
        },
    )
    .unwrap();
    for i in 0..containers {
        sim.add_container(
            "h1",
            &format!("c{i}"),
            &[("front", EndpointSpec::default())],
        )
        .unwrap();
    }
    sim
}

fn idle() {
    // 100 containers, each pinging its neighbour every 10 s for an hour.
    let mut sim = world(100, 1);
    for i in 0..100 {
        let p = Ping::new(&format!("c{i}"), format!("c{}", (i + 1) % 100))
            .count(360)
            .interval(Duration::from_secs(10));
        sim.start(p).unwrap();
    }
    let wall = Wall::now();
    sim.run_for(Duration::from_secs(3600));
    let w = wall.elapsed();
    println!(
        "idle-heavy: 100 containers pinging every 10 s: 3600 s simulated in {:.3} s wall = {:.0}x real time ({} frames)",
        w.as_secs_f64(),
        3600.0 / w.as_secs_f64(),
        sim.digest().frames
    );
}

fn busy() {
    // Ten pairs streaming TCP through 1 Gbit/s interfaces.
    let gigabit = LinkConfig {
        rate_bps: Some(1_000_000_000),
        queue_bytes: 1 << 20,
        ..LinkConfig::default()
    };
    let mut sim = world_with(20, Sim::builder().seed(2).container_links(gigabit).build());
    let mut apps = Vec::new();
    for i in 0..10 {
        apps.push(
            sim.tcp_transfer(
                &format!("c{}", 2 * i),
                format!("c{}", 2 * i + 1),
                5001,
                50_000_000,
            )
            .unwrap(),
        );
    }
    let wall = Wall::now();
    sim.run_until(
        |s| apps.iter().all(|a| s.is_done(*a)),
        Duration::from_secs(600),
    );
    let w = wall.elapsed();
    let t = sim.now().as_nanos() as f64 / 1e9;
    let frames = sim.bridge_stats("h1").unwrap().frames;
    println!(
        "busy: 10 TCP streams of 50 MB: {t:.3} s simulated in {:.3} s wall = {:.3}x real time; {frames} frames switched = {:.0} frames/s",
        w.as_secs_f64(),
        t / w.as_secs_f64(),
        frames as f64 / w.as_secs_f64()
    );
}

fn containers(n: usize) {
    let wall = Wall::now();
    let mut sim = world(n, 3);
    let built = wall.elapsed();
    let after_build = peak_rss_kib();
    // Then some traffic, so stacks, ARP caches and the FDB hold state: a
    // hundred containers spread over the network each ping a neighbour,
    // 10 ms apart (each first ping floods an ARP request to all n ports).
    let step = (n / 100).max(1);
    for i in (0..n).step_by(step) {
        sim.start(Ping::new(&format!("c{i}"), format!("c{}", (i + 1) % n)).count(1))
            .unwrap();
        sim.run_for(Duration::from_millis(10));
    }
    sim.run_for(Duration::from_secs(5));
    let peak = peak_rss_kib();
    println!(
        "{n} containers: built in {:.2} s; peak RSS {:.1} MiB after building, {:.1} MiB after traffic; {} FDB entries",
        built.as_secs_f64(),
        after_build as f64 / 1024.0,
        peak as f64 / 1024.0,
        sim.fdb("h1").unwrap().len()
    );
}

fn lab(path: &str) {
    let lab = switchyard_sim::lab::Lab::from_file(std::path::Path::new(path))
        .unwrap_or_else(|e| panic!("{e}"));
    let wall = Wall::now();
    let (report, sim) = lab
        .run(&switchyard_sim::lab::RunOptions::default())
        .unwrap_or_else(|e| panic!("{e}"));
    let w = wall.elapsed();
    let t = report.ended_at.as_nanos() as f64 / 1e9;
    println!(
        "lab {path}: {t:.3} s simulated in {:.4} s wall = {:.0}x real time; {} events, {} deliveries, passed: {}",
        w.as_secs_f64(),
        t / w.as_secs_f64(),
        sim.events_processed(),
        report.digest.frames,
        report.passed
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("idle") => idle(),
        Some("busy") => busy(),
        Some("containers") => containers(args.get(1).and_then(|n| n.parse().ok()).unwrap_or(1000)),
        Some("lab") => lab(args.get(1).map_or("labs/one-network.toml", String::as_str)),
        _ => eprintln!("usage: scale idle | busy | containers N | lab FILE"),
    }
}
