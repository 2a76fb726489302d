//! Determinism: the same seed gives the same digest, different seeds give
//! different digests on a lossy lab, and `check_determinism` names the
//! first differing frame when something outside the seed changes a run.

use std::cell::Cell;
use std::path::Path;
use std::time::Duration;
use switchyard_sim::lab::{Lab, RunOptions};
use switchyard_sim::{check_determinism, EndpointSpec, NetworkSpec, Sim, UdpEcho};

fn lossy_lab() -> Lab {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("labs/lossy-tcp.toml");
    Lab::from_file(&path).unwrap()
}

fn run(lab: &Lab, seed: u64) -> switchyard_sim::Digest {
    let opts = RunOptions {
        seed: Some(seed),
        // The first seconds hold the handshake, losses and retransmissions.
        until: Some(Duration::from_secs(3)),
        ..RunOptions::default()
    };
    lab.run(&opts).unwrap().0.digest
}

#[test]
fn fifty_seeds_of_a_lossy_lab_replay_exactly() {
    let lab = lossy_lab();
    for seed in 1..=50 {
        let (a, b) = (run(&lab, seed), run(&lab, seed));
        assert_eq!(a, b, "seed {seed} did not replay");
        assert!(a.frames > 100, "seed {seed}: the lab carried traffic");
    }
}

#[test]
fn different_seeds_give_different_digests_on_a_lossy_lab() {
    let lab = lossy_lab();
    let digests: Vec<_> = (1..=5).map(|s| run(&lab, s).hash).collect();
    let mut unique = digests.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), digests.len(), "{digests:x?}");
}

fn scenario(sim: &mut Sim, payload: usize) {
    sim.add_host("h1").unwrap();
    sim.create_network(
        "h1",
        NetworkSpec {
            name: "n".into(),
            ..NetworkSpec::default()
        },
    )
    .unwrap();
    sim.add_container("h1", "a", &[("n", EndpointSpec::default())])
        .unwrap();
    sim.add_container("h1", "b", &[("n", EndpointSpec::default())])
        .unwrap();
    let app = sim
        .start(UdpEcho::new("a", "b", 7).count(3).size(payload))
        .unwrap();
    sim.run_until(|s| s.is_done(app), Duration::from_secs(5));
}

#[test]
fn check_determinism_accepts_a_deterministic_scenario() {
    let digest = check_determinism(9, |sim| scenario(sim, 100)).unwrap();
    assert!(digest.frames > 0);
}

#[test]
fn check_determinism_reports_the_first_differing_frame() {
    // A knob outside the seed: the second run sends bigger datagrams.
    let runs = Cell::new(0);
    let divergence = check_determinism(9, |sim| {
        runs.set(runs.get() + 1);
        scenario(sim, if runs.get() == 1 { 100 } else { 101 });
    })
    .unwrap_err();
    let first = divergence.first.as_ref().unwrap();
    let second = divergence.second.as_ref().unwrap();
    assert_eq!(first.time, second.time, "the same moment in both runs");
    assert_eq!(first.port, second.port);
    assert_ne!(first.frame, second.frame);
    assert!(
        first.frame.len() + 1 == second.frame.len(),
        "the datagram grew by one byte"
    );
    let text = divergence.to_string();
    assert!(text.contains("UDP") && text.contains("host h1"), "{text}");
}
