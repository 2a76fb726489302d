//! The forwarding database: which port each station (segment, MAC) was last
//! seen on, and when.
//!
//! Learned entries age: one not refreshed for the ageing time is treated as
//! unknown by lookups straight away and removed by the next sweep
//! ([`crate::Bridge::expire`]). Each segment learns at most a fixed number
//! of entries, so a station flooding random source MACs can fill its own
//! segment's table but never grow memory without bound or evict the
//! stations of other segments.
//!
//! Static entries are programmed by a controller
//! ([`crate::Bridge::add_static_entry`]), e.g. the remote stations of an
//! overlay network, known from its peer database rather than by flooding
//! across the underlay. They never age, learning never moves them, they do
//! not count against the learning capacity (so a MAC-flooding station can
//! neither evict them nor be helped by them to fill the table), and they go
//! when their port goes.
//!
//! The table is open addressing with linear probing over 32-byte rows,
//! hashed by a fixed, seeded folded multiply of the (segment, MAC) key:
//! deterministic for a given seed, one multiply per lookup, and one cache
//! line per lookup in the common case. It is never iterated to make a
//! forwarding decision; listings are sorted by the caller.

use crate::mac::MacAddr;
use crate::port::{PortId, SegmentId};
use crate::time::Instant;
use core::fmt;
use hashbrown::HashTable;

/// One known station, as shown to people (`fdb` tables, `--explain`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FdbEntry {
    /// The segment the station lives in.
    pub segment: SegmentId,
    /// The station's MAC address.
    pub mac: MacAddr,
    /// The port it was last seen on, or is programmed on.
    pub port: PortId,
    /// When it last sent a frame from that port (for a static entry: or
    /// when it was programmed, if later).
    pub last_seen: Instant,
    /// Programmed by the controller rather than learned: never ages, never
    /// moves.
    pub is_static: bool,
}

impl fmt::Display for FdbEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} on {} ({}last seen {})",
            self.segment,
            self.mac,
            self.port,
            if self.is_static { "static, " } else { "" },
            self.last_seen
        )
    }
}

/// What learning a source address did, in terms of the bridge's dense port
/// slots (the bridge turns slots back into [`PortId`]s).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Learned {
    /// A new entry (or one that had aged out and is known again).
    New,
    /// Same port as before; only the timestamp moved.
    Refreshed,
    /// The station was known on another port of the segment.
    Moved { from: u32 },
    /// The segment's table is full; nothing was recorded.
    RefusedFull,
    /// A static entry on this port; only the timestamp moved.
    Static,
    /// A static entry on another port, which stays where it is.
    StaticConflict { owner: u32 },
}

/// One table row. 25 bytes of data aligned to 32, so a row never straddles
/// two cache lines and a lookup that hits its home row costs one memory
/// access: with a million stations that is the difference between one and
/// two DRAM round trips per lookup. (The static flag lives in what was
/// padding.)
#[derive(Clone, Copy, Debug)]
#[repr(C, align(32))]
struct Row {
    /// The MAC as a 48-bit integer, or [`EMPTY`].
    mac: u64,
    segment: u32,
    slot: u32,
    last_seen: u64,
    /// Programmed, not learned: no ageing, no moving, not counted.
    is_static: bool,
}

const _: () = assert!(core::mem::size_of::<Row>() == 32);

/// Marks a free row. No MAC fits 64 bits, so no station collides with it.
const EMPTY: u64 = u64::MAX;
const EMPTY_ROW: Row = Row {
    mac: EMPTY,
    segment: 0,
    slot: 0,
    last_seen: 0,
    is_static: false,
};
/// Smallest table allocated.
const MIN_ROWS: usize = 16;

/// The table itself: open addressing with linear probing, at most half
/// full, with backward-shift deletion (no tombstones, so lookups never slow
/// down as stations come and go).
///
/// Ports are the bridge's dense slot numbers; the bridge purges a port's
/// rows before the slot can be reused, so a slot in a row always names the
/// port that was learned.
#[derive(Debug)]
pub(crate) struct Fdb {
    /// Power-of-two length (or empty before the first station).
    rows: Vec<Row>,
    len: usize,
    /// Learned (non-static) rows per segment, for the capacity rule
    /// (segments with none are absent).
    counts: HashTable<(u32, usize)>,
    ageing_nanos: u64,
    capacity: usize,
    seed: [u64; 2],
}

/// Constants from the fractional digits of pi, so the mixing is nothing up
/// anyone's sleeve.
const PI: [u64; 4] = [
    0x243f_6a88_85a3_08d3,
    0x1319_8a2e_0370_7344,
    0xa409_3822_299f_31d0,
    0x082e_fa98_ec4e_6c89,
];

/// Multiplies two words into 128 bits and folds the halves together: a
/// strong, single-instruction mixer (the core of foldhash and wyhash).
#[inline(always)]
pub(crate) const fn folded_multiply(a: u64, b: u64) -> u64 {
    let full = (a as u128).wrapping_mul(b as u128);
    (full as u64) ^ ((full >> 64) as u64)
}

impl Fdb {
    /// An empty table.
    pub(crate) fn new(ageing_nanos: u64, capacity: usize, hash_seed: u64) -> Fdb {
        Fdb {
            rows: Vec::new(),
            len: 0,
            counts: HashTable::new(),
            ageing_nanos,
            capacity,
            seed: [hash_seed ^ PI[0], hash_seed.rotate_left(32) ^ PI[1]],
        }
    }

    #[inline(always)]
    fn hash(&self, segment: u32, mac: u64) -> u64 {
        folded_multiply(mac ^ self.seed[0], u64::from(segment) ^ self.seed[1])
    }

    #[inline(always)]
    fn count_hash(&self, segment: u32) -> u64 {
        folded_multiply(u64::from(segment) ^ self.seed[1], PI[2] ^ self.seed[0])
    }

    #[inline(always)]
    fn mask(&self) -> usize {
        self.rows.len().wrapping_sub(1)
    }

    /// The index of the row for (segment, mac), if stored.
    #[inline(always)]
    fn find(&self, segment: u32, mac: u64) -> Option<usize> {
        if self.rows.is_empty() {
            return None;
        }
        let mask = self.mask();
        let mut i = self.hash(segment, mac) as usize & mask;
        // At most half the rows are used, so an empty row ends every probe.
        loop {
            let row = self.rows.get(i)?;
            if row.mac == mac && row.segment == segment {
                return Some(i);
            }
            if row.mac == EMPTY {
                return None;
            }
            i = (i + 1) & mask;
        }
    }

    /// Makes room for `additional` more rows, so learning them later does
    /// not allocate on the forwarding path.
    pub(crate) fn reserve(&mut self, additional: usize) {
        let needed = self.len.saturating_add(additional).saturating_mul(2);
        if needed > self.rows.len() {
            self.resize(needed.max(MIN_ROWS).next_power_of_two());
        }
    }

    /// Moves every row into a table of `new_len` rows (a power of two).
    #[cold]
    fn resize(&mut self, new_len: usize) {
        let old = core::mem::replace(&mut self.rows, vec![EMPTY_ROW; new_len]);
        for row in old.into_iter().filter(|r| r.mac != EMPTY) {
            self.place(row);
        }
    }

    /// Puts a row known to be absent in the first free place of its probe.
    fn place(&mut self, row: Row) {
        let mask = self.mask();
        let mut i = self.hash(row.segment, row.mac) as usize & mask;
        while self.rows[i].mac != EMPTY {
            i = (i + 1) & mask;
        }
        self.rows[i] = row;
    }

    /// Records that `mac` was seen on port `slot` of `segment` at `now`.
    #[inline]
    pub(crate) fn learn(&mut self, segment: u32, mac: u64, slot: u32, now: u64) -> Learned {
        if let Some(i) = self.find(segment, mac) {
            let ageing = self.ageing_nanos;
            if let Some(row) = self.rows.get_mut(i) {
                if row.is_static {
                    if row.slot != slot {
                        return Learned::StaticConflict { owner: row.slot };
                    }
                    row.last_seen = row.last_seen.max(now);
                    return Learned::Static;
                }
                let fresh = now.saturating_sub(row.last_seen) < ageing;
                let from = row.slot;
                row.last_seen = now;
                row.slot = slot;
                return match (fresh, from == slot) {
                    (true, true) => Learned::Refreshed,
                    (true, false) => Learned::Moved { from },
                    (false, _) => Learned::New,
                };
            }
        }
        self.insert_new(segment, mac, slot, now)
    }

    #[inline(never)]
    fn insert_new(&mut self, segment: u32, mac: u64, slot: u32, now: u64) -> Learned {
        let count_hash = self.count_hash(segment);
        let seed = self.seed;
        match self.counts.find_mut(count_hash, |c| c.0 == segment) {
            Some(c) if c.1 >= self.capacity => return Learned::RefusedFull,
            Some(c) => c.1 += 1,
            None if self.capacity == 0 => return Learned::RefusedFull,
            None => {
                self.counts.insert_unique(count_hash, (segment, 1), |c| {
                    folded_multiply(u64::from(c.0) ^ seed[1], PI[2] ^ seed[0])
                });
            }
        }
        self.reserve(1);
        self.place(Row {
            mac,
            segment,
            slot,
            last_seen: now,
            is_static: false,
        });
        self.len += 1;
        Learned::New
    }

    /// Makes (segment, mac) a static entry on port `slot`, replacing a
    /// learned entry (which then stops counting against the capacity) or
    /// another static one. Returns the slot of the static entry it
    /// replaced, if any. May allocate: it is the control path.
    pub(crate) fn insert_static(
        &mut self,
        segment: u32,
        mac: u64,
        slot: u32,
        now: u64,
    ) -> Option<u32> {
        if let Some(i) = self.find(segment, mac) {
            let row = self.rows[i];
            self.rows[i] = Row {
                slot,
                last_seen: now,
                is_static: true,
                ..row
            };
            if row.is_static {
                return Some(row.slot);
            }
            self.uncount(segment);
            return None;
        }
        self.reserve(1);
        self.place(Row {
            mac,
            segment,
            slot,
            last_seen: now,
            is_static: true,
        });
        self.len += 1;
        None
    }

    /// Removes the static entry for (segment, mac) and returns its slot;
    /// `None` (and nothing removed) when there is none or the entry was
    /// learned.
    pub(crate) fn remove_static(&mut self, segment: u32, mac: u64) -> Option<u32> {
        let i = self.find(segment, mac)?;
        let row = self.rows[i];
        if !row.is_static {
            return None;
        }
        self.remove_at(i);
        self.len -= 1;
        Some(row.slot)
    }

    /// The port slot `mac` lives on in `segment`: a static entry, or a
    /// learned one that has not aged out.
    #[inline]
    pub(crate) fn lookup(&self, segment: u32, mac: u64, now: u64) -> Option<u32> {
        let row = self.rows.get(self.find(segment, mac)?)?;
        (row.is_static || now.saturating_sub(row.last_seen) < self.ageing_nanos).then_some(row.slot)
    }

    /// The row for (segment, mac) even if aged: (slot, last_seen, static).
    pub(crate) fn peek(&self, segment: u32, mac: u64) -> Option<(u32, u64, bool)> {
        let row = self.rows.get(self.find(segment, mac)?)?;
        Some((row.slot, row.last_seen, row.is_static))
    }

    /// One learned row fewer in `segment`'s count.
    fn uncount(&mut self, segment: u32) {
        let h = self.count_hash(segment);
        if let Ok(entry) = self.counts.find_entry(h, |c| c.0 == segment) {
            if entry.get().1 <= 1 {
                entry.remove();
            } else {
                let mut entry = entry;
                entry.get_mut().1 -= 1;
            }
        }
    }

    /// Empties row `hole` and shifts later rows of its probe run back, so
    /// no probe ever has to step over a gap.
    fn remove_at(&mut self, mut hole: usize) {
        let mask = self.mask();
        self.rows[hole] = EMPTY_ROW;
        let mut j = (hole + 1) & mask;
        loop {
            let row = self.rows[j];
            if row.mac == EMPTY {
                return;
            }
            let home = self.hash(row.segment, row.mac) as usize & mask;
            // The row may fill the hole if the hole lies on its probe path,
            // i.e. between its home and where it sits now (cyclically).
            if (j.wrapping_sub(home) & mask) >= (j.wrapping_sub(hole) & mask) {
                self.rows[hole] = row;
                self.rows[j] = EMPTY_ROW;
                hole = j;
            }
            j = (j + 1) & mask;
        }
    }

    /// Removes the rows `remove` selects, keeping the per-segment counts
    /// of learned rows right. Returns how many went.
    fn remove_where(&mut self, mut remove: impl FnMut(&Row) -> bool) -> usize {
        let mut removed = 0;
        let mut i = 0;
        while i < self.rows.len() {
            let row = self.rows[i];
            if row.mac == EMPTY || !remove(&row) {
                i += 1;
                continue;
            }
            // A shifted row may land on `i`, so look at `i` again. Rows
            // from the wrapped start of a run may be seen twice; `remove`
            // is a pure test, so a kept row stays kept.
            self.remove_at(i);
            self.len -= 1;
            removed += 1;
            if !row.is_static {
                self.uncount(row.segment);
            }
        }
        removed
    }

    /// Removes every learned row whose age is at least the ageing time.
    pub(crate) fn expire(&mut self, now: u64) -> usize {
        let ageing = self.ageing_nanos;
        self.remove_where(|r| !r.is_static && now.saturating_sub(r.last_seen) >= ageing)
    }

    /// Removes every row, static or learned, pointing at port `slot`.
    pub(crate) fn purge_slot(&mut self, slot: u32) -> usize {
        self.remove_where(|r| r.slot == slot)
    }

    /// Rows currently stored (aged ones included until swept).
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Learned rows currently stored for one segment (what the capacity
    /// rule counts; static rows are not).
    pub(crate) fn segment_len(&self, segment: u32) -> usize {
        self.counts
            .find(self.count_hash(segment), |c| c.0 == segment)
            .map_or(0, |c| c.1)
    }

    /// Every row as (segment, mac, slot, last_seen, static), in table
    /// order: the caller sorts.
    pub(crate) fn rows(&self) -> impl Iterator<Item = (u32, u64, u32, u64, bool)> + '_ {
        self.rows
            .iter()
            .filter(|r| r.mac != EMPTY)
            .map(|r| (r.segment, r.mac, r.slot, r.last_seen, r.is_static))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: u64 = 1_000_000_000;

    #[test]
    fn learn_refresh_move_and_age() {
        let mut fdb = Fdb::new(300 * SEC, 10, 0);
        assert_eq!(fdb.learn(1, 0xaa, 0, 0), Learned::New);
        assert_eq!(fdb.learn(1, 0xaa, 0, SEC), Learned::Refreshed);
        assert_eq!(fdb.learn(1, 0xaa, 2, 2 * SEC), Learned::Moved { from: 0 });
        assert_eq!(fdb.lookup(1, 0xaa, 3 * SEC), Some(2));
        assert_eq!(
            fdb.lookup(2, 0xaa, 3 * SEC),
            None,
            "segments are separate tables"
        );
        assert_eq!(
            fdb.lookup(1, 0xaa, 302 * SEC),
            None,
            "aged out at exactly the ageing time"
        );
        assert_eq!(fdb.peek(1, 0xaa), Some((2, 2 * SEC, false)));
        assert_eq!(
            fdb.learn(1, 0xaa, 2, 400 * SEC),
            Learned::New,
            "aged entries are learned anew"
        );
        assert_eq!(fdb.len(), 1);
    }

    #[test]
    fn capacity_is_per_segment_and_counts_follow_removals() {
        let mut fdb = Fdb::new(10 * SEC, 2, 7);
        assert_eq!(fdb.learn(1, 1, 0, 0), Learned::New);
        assert_eq!(fdb.learn(1, 2, 0, 0), Learned::New);
        assert_eq!(fdb.learn(1, 3, 0, 0), Learned::RefusedFull);
        assert_eq!(
            fdb.learn(1, 1, 0, 1),
            Learned::Refreshed,
            "known entries still refresh"
        );
        assert_eq!(
            fdb.learn(2, 3, 1, 0),
            Learned::New,
            "other segments still learn"
        );
        assert_eq!(fdb.segment_len(1), 2);
        assert_eq!(
            fdb.expire(10 * SEC),
            2,
            "rows last seen at 0 are gone, the refreshed one stays"
        );
        assert_eq!(fdb.segment_len(1), 1);
        assert_eq!(fdb.learn(1, 3, 0, 10 * SEC), Learned::New);
        assert_eq!(fdb.purge_slot(0), 2);
        assert_eq!(fdb.segment_len(1), 0);
        assert_eq!(fdb.len(), 0);
    }

    #[test]
    fn random_churn_agrees_with_a_plain_map() {
        use rand_chacha::rand_core::{RngCore, SeedableRng};
        use std::collections::BTreeMap;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let ageing = 50;
        let capacity = 150;
        let mut fdb = Fdb::new(ageing, capacity, rng.next_u64());
        // (segment, mac) -> (slot, last_seen, static)
        let mut model: BTreeMap<(u32, u64), (u32, u64, bool)> = BTreeMap::new();
        let learned = |model: &BTreeMap<(u32, u64), (u32, u64, bool)>, seg: u32| {
            model.iter().filter(|(k, v)| k.0 == seg && !v.2).count()
        };
        let mut now = 0;
        for step in 0..20_000u32 {
            let seg = rng.next_u32() % 3;
            let mac = u64::from(rng.next_u32() % 400);
            let slot = rng.next_u32() % 5;
            match rng.next_u32() % 100 {
                0 => {
                    let n = fdb.purge_slot(slot);
                    let before = model.len();
                    model.retain(|_, v| v.0 != slot);
                    assert_eq!(n, before - model.len(), "purge at step {step}");
                }
                1..=3 => {
                    let n = fdb.expire(now);
                    let before = model.len();
                    model.retain(|_, v| v.2 || now.saturating_sub(v.1) < ageing);
                    assert_eq!(n, before - model.len(), "expire at step {step}");
                }
                4..=9 => now += u64::from(rng.next_u32() % 20),
                10..=12 => {
                    let got = fdb.insert_static(seg, mac, slot, now);
                    let want = model.get(&(seg, mac)).filter(|v| v.2).map(|v| v.0);
                    assert_eq!(got, want, "static insert at step {step}");
                    model.insert((seg, mac), (slot, now, true));
                }
                13 => {
                    let got = fdb.remove_static(seg, mac);
                    let want = model.get(&(seg, mac)).filter(|v| v.2).map(|v| v.0);
                    assert_eq!(got, want, "static removal at step {step}");
                    if want.is_some() {
                        model.remove(&(seg, mac));
                    }
                }
                _ => {
                    let got = fdb.learn(seg, mac, slot, now);
                    let fresh = |seen: u64| now.saturating_sub(seen) < ageing;
                    let want = match model.get(&(seg, mac)).copied() {
                        Some((s, _, true)) if s == slot => Learned::Static,
                        Some((s, _, true)) => Learned::StaticConflict { owner: s },
                        Some((s, seen, false)) if fresh(seen) && s == slot => Learned::Refreshed,
                        Some((s, seen, false)) if fresh(seen) => Learned::Moved { from: s },
                        Some(_) => Learned::New,
                        None if learned(&model, seg) >= capacity => Learned::RefusedFull,
                        None => Learned::New,
                    };
                    assert_eq!(got, want, "learn at step {step}");
                    match want {
                        Learned::StaticConflict { .. } | Learned::RefusedFull => {}
                        _ => {
                            let is_static = want == Learned::Static;
                            model.insert((seg, mac), (slot, now, is_static));
                        }
                    }
                }
            }
            let found = fdb.lookup(seg, mac, now);
            let want = model
                .get(&(seg, mac))
                .filter(|v| v.2 || now.saturating_sub(v.1) < ageing)
                .map(|v| v.0);
            assert_eq!(found, want, "lookup at step {step}");
            assert_eq!(fdb.len(), model.len());
            if step % 500 == 0 {
                for (&(seg, mac), &(slot, seen, is_static)) in &model {
                    assert_eq!(fdb.peek(seg, mac), Some((slot, seen, is_static)));
                }
                for seg in 0..3 {
                    assert_eq!(fdb.segment_len(seg), learned(&model, seg));
                }
                assert_eq!(fdb.rows().count(), model.len());
            }
        }
    }

    #[test]
    fn static_rows_never_age_move_or_count_against_the_capacity() {
        let mut fdb = Fdb::new(10 * SEC, 1, 0);
        assert_eq!(fdb.insert_static(1, 0xaa, 3, 0), None);
        assert_eq!(fdb.insert_static(1, 0xbb, 3, 0), None);
        assert_eq!(fdb.segment_len(1), 0, "static rows are not counted");
        assert_eq!(fdb.learn(1, 0xcc, 0, 0), Learned::New, "room to learn");
        assert_eq!(
            fdb.learn(1, 0xaa, 0, SEC),
            Learned::StaticConflict { owner: 3 }
        );
        assert_eq!(fdb.learn(1, 0xaa, 3, 2 * SEC), Learned::Static);
        assert_eq!(fdb.expire(1000 * SEC), 1, "only the learned row ages");
        assert_eq!(fdb.lookup(1, 0xaa, 1000 * SEC), Some(3));
        assert_eq!(fdb.peek(1, 0xaa), Some((3, 2 * SEC, true)));
        assert_eq!(fdb.remove_static(1, 0xaa), Some(3));
        assert_eq!(fdb.lookup(1, 0xaa, 1000 * SEC), None);
        assert_eq!(fdb.purge_slot(3), 1, "purging takes static rows too");
        assert_eq!(fdb.len(), 0);
    }

    #[test]
    fn a_learned_row_made_static_stops_counting() {
        let mut fdb = Fdb::new(10 * SEC, 1, 0);
        assert_eq!(fdb.learn(1, 0xaa, 0, 0), Learned::New);
        assert_eq!(fdb.learn(1, 0xbb, 0, 0), Learned::RefusedFull);
        assert_eq!(fdb.insert_static(1, 0xaa, 2, SEC), None);
        assert_eq!(fdb.segment_len(1), 0);
        assert_eq!(fdb.len(), 1);
        assert_eq!(fdb.learn(1, 0xbb, 0, SEC), Learned::New);
        assert_eq!(
            fdb.remove_static(1, 0xbb),
            None,
            "a learned row is not removed as static"
        );
        assert_eq!(fdb.insert_static(1, 0xaa, 4, SEC), Some(2));
    }

    #[test]
    fn zero_capacity_never_learns() {
        let mut fdb = Fdb::new(SEC, 0, 0);
        assert_eq!(fdb.learn(1, 1, 0, 0), Learned::RefusedFull);
        assert_eq!(fdb.len(), 0);
    }
}
