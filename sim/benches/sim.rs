//! Simulated frames per second: through the switch core alone (raw
//! containers, no TCP/IP stack), and end to end with smoltcp containers
//! doing TCP. Run with
//! `cargo bench -p switchyard-sim --bench sim -- --warm-up-time 1 --measurement-time 3`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;
use std::time::Duration;
use switchyard_sim::{EndpointSpec, NetworkSpec, Sim};

fn ethernet(dst: [u8; 6], src: [u8; 6], len: usize) -> Vec<u8> {
    let mut f = Vec::with_capacity(len);
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&[0x88, 0xb5]); // local experimental ethertype
    f.resize(len, 0xab);
    f
}

/// One host, `front`, two raw containers that already know each other.
fn raw_pair() -> (Sim, [u8; 6], [u8; 6]) {
    let mut sim = Sim::builder().seed(1).build();
    sim.add_host("h1").unwrap();
    sim.create_network(
        "h1",
        NetworkSpec {
            name: "front".into(),
            ..NetworkSpec::default()
        },
    )
    .unwrap();
    sim.add_raw_container("h1", "a", &[("front", EndpointSpec::default())])
        .unwrap();
    sim.add_raw_container("h1", "b", &[("front", EndpointSpec::default())])
        .unwrap();
    let a = sim.mac_of("a", "front").unwrap().0;
    let b = sim.mac_of("b", "front").unwrap().0;
    sim.send_raw("a", "eth0", ethernet(b, a, 64)).unwrap();
    sim.send_raw("b", "eth0", ethernet(a, b, 64)).unwrap();
    sim.run_until_idle(Duration::from_secs(1));
    (sim, a, b)
}

fn switched(c: &mut Criterion) {
    const BATCH: u64 = 10_000;
    let mut g = c.benchmark_group("switched_frames");
    g.throughput(Throughput::Elements(BATCH));
    g.bench_function("raw_64_byte_unicast", |bencher| {
        let (mut sim, a, b) = raw_pair();
        let frame = ethernet(b, a, 64);
        bencher.iter(|| {
            for _ in 0..BATCH {
                sim.send_raw("a", "eth0", frame.clone()).unwrap();
            }
            sim.run_until_idle(Duration::from_secs(1));
            black_box(sim.digest());
        });
    });
    g.finish();
}

/// Two smoltcp containers and one TCP transfer of `bytes`.
fn tcp_world(bytes: u64) -> (Sim, switchyard_sim::AppHandle) {
    let mut sim = Sim::builder().seed(2).build();
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
    let t = sim.tcp_transfer("a", "b", 5001, bytes).unwrap();
    (sim, t)
}

fn end_to_end(c: &mut Criterion) {
    const BYTES: u64 = 20_000_000;
    // Frames one transfer switches, measured once.
    let frames = {
        let (mut sim, t) = tcp_world(BYTES);
        sim.run_until(|s| s.is_done(t), Duration::from_secs(600));
        assert!(sim.tcp_result(t).unwrap().completed_at.is_some());
        sim.bridge_stats("h1").unwrap().frames
    };
    let mut g = c.benchmark_group("end_to_end_frames");
    g.throughput(Throughput::Elements(frames));
    g.sample_size(10);
    g.bench_function("tcp_20MB_smoltcp", |bencher| {
        bencher.iter(|| {
            let (mut sim, t) = tcp_world(BYTES);
            sim.run_until(|s| s.is_done(t), Duration::from_secs(600));
            black_box(sim.digest());
        });
    });
    g.finish();
}

criterion_group!(benches, switched, end_to_end);
criterion_main!(benches);
