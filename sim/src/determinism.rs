//! `check_determinism`: run a scenario twice with the same seed and, if the
//! runs differ, say where: the first delivery (time, host, port, frame)
//! that is not the same in both. madsim's best idea, with frame-level
//! detail.

use crate::builder::SimBuilder;
use crate::digest::{first_difference, Digest, Divergence};
use crate::world::Sim;

/// Runs `scenario` on two worlds built with `seed` (recording every
/// delivery) and compares them. `Ok` carries the common digest.
///
/// The scenario gets a fresh, empty world each time and does everything:
/// hosts, networks, containers, traffic, faults, running.
pub fn check_determinism(seed: u64, scenario: impl FnMut(&mut Sim)) -> Result<Digest, Divergence> {
    check_determinism_with(Sim::builder().seed(seed), scenario)
}

/// [`check_determinism`] with a builder of your own (link defaults, bridge
/// settings); recording is switched on.
pub fn check_determinism_with(
    builder: SimBuilder,
    mut scenario: impl FnMut(&mut Sim),
) -> Result<Digest, Divergence> {
    let mut run = || {
        let mut sim = builder.clone().record_deliveries(true).build();
        scenario(&mut sim);
        sim
    };
    let a = run();
    let b = run();
    compare_runs(&a, &b)
}

/// Compares two finished runs of the same scenario: `Ok` with the digest
/// when they agree, else the first delivery where they differ (found when
/// both recorded their deliveries).
pub fn compare_runs(a: &Sim, b: &Sim) -> Result<Digest, Divergence> {
    let seed = a.seed();
    let (la, lb) = (a.deliveries().unwrap_or(&[]), b.deliveries().unwrap_or(&[]));
    match first_difference(la, lb) {
        None if a.digest() == b.digest() => Ok(a.digest()),
        found => {
            let index = found.unwrap_or(la.len().min(lb.len()));
            Err(Divergence {
                seed,
                index: index as u64,
                first: la.get(index).cloned().map(Box::new),
                second: lb.get(index).cloned().map(Box::new),
                digests: [a.digest(), b.digest()],
            })
        }
    }
}

/// Runs `scenario` twice with `seed` without recording deliveries and
/// returns both digests: the cheap check for many seeds.
pub fn digests_twice(seed: u64, mut scenario: impl FnMut(&mut Sim)) -> [Digest; 2] {
    let mut run = || {
        let mut sim = Sim::builder().seed(seed).build();
        scenario(&mut sim);
        sim.digest()
    };
    [run(), run()]
}
