//! A fixed (unseeded) hasher for the record indexes.
//!
//! The indexes are only ever looked up, never iterated to make a decision, so
//! a per-process random seed would buy nothing but non-reproducible memory
//! layouts. Keys come from the controller, not from clients, so flooding the
//! table with colliding keys is not an attack a container can mount: queries
//! only read.

use core::hash::{BuildHasher, Hasher};

/// Builds [`FixedHasher`]s; the same for every process and every run.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct FixedState;

impl BuildHasher for FixedState {
    type Hasher = FixedHasher;

    #[inline]
    fn build_hasher(&self) -> FixedHasher {
        FixedHasher { hash: 0 }
    }
}

/// A word-at-a-time multiply-rotate hash (the FxHash family) with a final
/// avalanche, so hashbrown's use of the top bits sees well-mixed values.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FixedHasher {
    hash: u64,
}

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FixedHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for FixedHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            // Mix the length in so "a" and "a\0" differ.
            self.add(u64::from_le_bytes(word) ^ ((rest.len() as u64) << 59));
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(i as u64);
    }

    #[inline]
    fn write_u16(&mut self, i: u16) {
        self.add(i as u64);
    }

    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.add(i as u64);
    }

    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        // murmur3's fmix64: spreads low-bit differences into the top bits.
        let mut h = self.hash;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }
}

/// A hashbrown map with the fixed hasher.
pub(crate) type FixedMap<K, V> = hashbrown::HashMap<K, V, FixedState>;

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(bytes: &[u8]) -> u64 {
        let mut h = FixedState.build_hasher();
        h.write(bytes);
        h.finish()
    }

    #[test]
    fn equal_input_hashes_equal_across_hashers() {
        assert_eq!(hash(b"web"), hash(b"web"));
    }

    #[test]
    fn trailing_zero_changes_the_hash() {
        assert_ne!(hash(b"a"), hash(b"a\0"));
    }
}
