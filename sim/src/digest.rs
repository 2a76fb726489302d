//! The fingerprint of a run: a stable hash over every delivered frame (when,
//! where, which bytes), so two runs can be compared with one number, and an
//! optional log of the same deliveries so a difference can be located.
//!
//! The hash is our own fixed-key multiply-fold (no per-process keys, no
//! platform-dependent reads): the same run gives the same digest on every
//! machine and every build.

use crate::frame::describe;
use serde::Serialize;
use std::fmt;
use switchyard_switch::Instant;

const K1: u64 = 0x9e37_79b9_7f4a_7c15;
const K2: u64 = 0xbf58_476d_1ce4_e5b9;
const K3: u64 = 0x94d0_49bb_1331_11eb;

#[inline(always)]
fn mix(a: u64, b: u64) -> u64 {
    let p = u128::from(a).wrapping_mul(u128::from(b));
    (p as u64) ^ ((p >> 64) as u64)
}

/// A stable 64-bit hash of a byte string. Four independent lanes of eight
/// bytes each keep the multiplier busy, so hashing a full-size frame costs
/// tens of nanoseconds. Not meant to resist adversaries: it fingerprints
/// runs.
pub fn hash_bytes(bytes: &[u8]) -> u64 {
    #[inline(always)]
    fn word(b: &[u8]) -> u64 {
        let mut w = [0u8; 8];
        w.copy_from_slice(&b[..8]);
        u64::from_le_bytes(w)
    }
    let len = bytes.len() as u64;
    let mut lanes = [
        K1 ^ len,
        K2 ^ len.rotate_left(17),
        K3 ^ len.rotate_left(31),
        K1 ^ K2,
    ];
    let mut blocks = bytes.chunks_exact(32);
    // Plain 64-bit multiply-rotate per lane (cheap, pipelined); the
    // folded 128-bit multiply only where lanes are combined.
    for b in &mut blocks {
        lanes[0] = (lanes[0] ^ word(&b[0..])).wrapping_mul(K2).rotate_left(29);
        lanes[1] = (lanes[1] ^ word(&b[8..])).wrapping_mul(K3).rotate_left(31);
        lanes[2] = (lanes[2] ^ word(&b[16..])).wrapping_mul(K1).rotate_left(27);
        lanes[3] = (lanes[3] ^ word(&b[24..]))
            .wrapping_mul(K2 ^ K3)
            .rotate_left(33);
    }
    let mut h =
        mix(lanes[0] ^ lanes[1].rotate_left(23), K1) ^ mix(lanes[2] ^ lanes[3].rotate_left(41), K3);
    let mut words = blocks.remainder().chunks_exact(8);
    for w in &mut words {
        h = mix(h ^ word(w), K2);
    }
    let rest = words.remainder();
    if !rest.is_empty() {
        let mut w = [0u8; 8];
        w[..rest.len()].copy_from_slice(rest);
        h = mix(h ^ u64::from_le_bytes(w) ^ K3, K2);
    }
    mix(h, K3)
}

/// The digest of a run so far: how many frames were delivered and a hash
/// over (time, place, bytes) of each, in delivery order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Digest {
    /// The running hash.
    pub hash: u64,
    /// Frames delivered (to switch ports, container interfaces and loopbacks).
    pub frames: u64,
    /// Bytes in those frames.
    pub bytes: u64,
}

impl Digest {
    /// Folds one delivery in.
    #[inline]
    pub(crate) fn record(&mut self, time: Instant, place: u64, len: usize, frame_hash: u64) {
        let mut h = mix(self.hash ^ time.as_nanos() ^ K1, K2);
        h = mix(h ^ place, K3);
        h = mix(h ^ frame_hash ^ (len as u64), K1);
        self.hash = h;
        self.frames += 1;
        self.bytes += len as u64;
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:016x} ({} frames, {} bytes)",
            self.hash, self.frames, self.bytes
        )
    }
}

/// One delivered frame, as the determinism check reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Delivery {
    /// Virtual time of the delivery.
    pub time: Instant,
    /// The host involved (the switch's, or the container's).
    pub host: String,
    /// Where: `p3 (a/eth0)` for a switch port, `a/eth0` for a container
    /// interface, `a/lo` for a DNS exchange on a loopback.
    pub port: String,
    /// The frame's bytes.
    pub frame: Vec<u8>,
}

impl fmt::Display for Delivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "at {} on host {} port {}: {} ({} bytes)",
            self.time,
            self.host,
            self.port,
            describe(&self.frame),
            self.frame.len()
        )
    }
}

/// Where two runs of the same scenario first parted ways.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Divergence {
    /// The seed both runs used.
    pub seed: u64,
    /// Index of the first differing delivery (0-based).
    pub index: u64,
    /// That delivery in the first run (`None`: the first run had ended).
    pub first: Option<Box<Delivery>>,
    /// That delivery in the second run (`None`: the second run had ended).
    pub second: Option<Box<Delivery>>,
    /// Digests of both runs.
    pub digests: [Digest; 2],
}

impl fmt::Display for Divergence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "nondeterminism with seed {}: runs differ at delivery #{}",
            self.seed, self.index
        )?;
        match &self.first {
            Some(d) => writeln!(f, "  first run:  {d}")?,
            None => writeln!(f, "  first run:  (no more deliveries)")?,
        }
        match &self.second {
            Some(d) => writeln!(f, "  second run: {d}")?,
            None => writeln!(f, "  second run: (no more deliveries)")?,
        }
        write!(
            f,
            "  digests: {} vs {}; something outside the seed (wall clock, OS randomness, HashMap order, state kept between runs) changed the run",
            self.digests[0], self.digests[1]
        )
    }
}

impl std::error::Error for Divergence {}

/// Finds the first index where two delivery logs differ.
pub(crate) fn first_difference(a: &[Delivery], b: &[Delivery]) -> Option<usize> {
    let n = a.len().max(b.len());
    (0..n).find(|&i| a.get(i) != b.get(i))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_depends_on_every_byte_and_the_length() {
        let a = hash_bytes(b"hello, world");
        assert_ne!(a, hash_bytes(b"hello, worle"));
        assert_ne!(a, hash_bytes(b"hello, world\0"));
        assert_eq!(a, hash_bytes(b"hello, world"));
        assert_ne!(hash_bytes(b""), hash_bytes(b"\0"));
        let long: Vec<u8> = (0..1500u32).map(|i| i as u8).collect();
        for i in [0, 7, 31, 32, 700, 1499] {
            let mut other = long.clone();
            other[i] ^= 0x10;
            assert_ne!(hash_bytes(&long), hash_bytes(&other), "byte {i}");
        }
    }

    #[test]
    fn digest_depends_on_time_place_and_order() {
        let mut a = Digest::default();
        a.record(Instant::from_nanos(1), 1, 3, 10);
        a.record(Instant::from_nanos(2), 1, 3, 11);
        let mut b = Digest::default();
        b.record(Instant::from_nanos(2), 1, 3, 11);
        b.record(Instant::from_nanos(1), 1, 3, 10);
        assert_ne!(a, b);
        let mut c = Digest::default();
        c.record(Instant::from_nanos(1), 2, 3, 10);
        c.record(Instant::from_nanos(2), 1, 3, 11);
        assert_ne!(a, c);
        assert_eq!(a.frames, 2);
    }

    #[test]
    fn first_difference_finds_changes_and_length_mismatch() {
        let d = |t| Delivery {
            time: Instant::from_nanos(t),
            host: "h".into(),
            port: "p".into(),
            frame: vec![1],
        };
        assert_eq!(first_difference(&[d(1), d(2)], &[d(1), d(2)]), None);
        assert_eq!(first_difference(&[d(1), d(2)], &[d(1), d(3)]), Some(1));
        assert_eq!(first_difference(&[d(1)], &[d(1), d(3)]), Some(1));
    }
}
