//! A sparse bitmap over the offsets of one subnet: which addresses are taken.
//!
//! The offsets `0..=last` are split into leaves of 4096 addresses; leaves hang
//! off a tree of 64-way inner nodes. Every node is `Empty`, `Full`, or a boxed
//! partial node, and a node collapses back to `Empty` or `Full` as soon as it
//! becomes uniform. So:
//! - a fully allocated IPv4 /8 is a single `Full` root (no heap at all),
//! - an IPv6 /64 holding a few containers costs one path of nodes (about
//!   10 KiB), never anything proportional to 2^64,
//! - a dense region (most leaves under one level-1 node partial) switches that
//!   node to a flat block of all its 64 leaves' bits with two summary words, so
//!   the worst case (every other address of a /8 taken) costs the raw 2 MiB of
//!   bits plus about 2 KiB (0.1%) — no per-leaf box or pointer.
//!
//! Every operation walks one root-to-leaf path (at most 21 levels for the whole
//! IPv6 space, 3 for an IPv4 /8) and scans at most 64 entries per level, so
//! insert, remove and "first clear bit in a range" are O(1) for a given family.

use std::fmt;
use std::mem::size_of;

use crate::addr::span_last;

/// Bits of offset resolved inside a leaf.
const LEAF_BITS: u32 = 12;
/// Addresses per leaf.
const LEAF_SIZE: usize = 1 << LEAF_BITS;
/// 64-bit words per leaf.
const WORDS: usize = LEAF_SIZE / 64;
/// Bits of offset resolved by one inner node.
const FANOUT_BITS: u32 = 6;
/// Children per inner node.
const FANOUT: usize = 1 << FANOUT_BITS;
/// 64-bit words in a dense level-1 node (all 64 leaves).
const DENSE_WORDS: usize = WORDS * FANOUT;
/// A level-1 inner node with this many partial leaves turns dense: from here
/// on the flat block (32,784 bytes) is smaller than the inner node and boxed
/// leaves it replaces (1,024 + 62 × 520 = 33,264 bytes; 61 would be 40 bytes
/// short of it).
const DENSE_AT: u32 = 62;
/// A dense node with at most this many partial leaves turns sparse again. The
/// gap to [`DENSE_AT`] keeps a pool hovering at the threshold from converting
/// back and forth: a round trip needs at least 30 leaves to change state.
const SPARSE_AT: u32 = 32;

/// One subtree. Level 0 nodes cover a leaf's 4096 offsets, level `n` nodes
/// cover `2^(12 + 6n)`.
#[derive(Clone)]
enum Node {
    /// No offset in the subtree is set.
    Empty,
    /// Every offset in the subtree (that lies inside the bitmap) is set.
    Full,
    /// Some but not all offsets of a leaf are set.
    Leaf(Box<Leaf>),
    /// Some but not all offsets below an inner node are set.
    Inner(Box<Inner>),
    /// A level-1 node with most of its leaves partial, stored flat.
    Dense(Box<Dense>),
}

/// The raw bits of 4096 offsets and how many of them are set.
#[derive(Clone)]
struct Leaf {
    used: u32,
    words: [u64; WORDS],
}

/// 64 children.
#[derive(Clone)]
struct Inner {
    children: [Node; FANOUT],
}

/// The bits of all 64 leaves of a level-1 node, inline, plus which leaves are
/// full and which have anything set (so searches still skip uniform leaves).
/// Only ever holds a full-width (64-leaf) node that is neither all set nor
/// all clear.
#[derive(Clone)]
struct Dense {
    full: u64,
    nonempty: u64,
    words: [u64; DENSE_WORDS],
}

/// The set of taken offsets of one subnet (see the module docs for the shape).
#[derive(Clone)]
pub(crate) struct SparseBitmap {
    /// Largest valid offset (subnet size minus one).
    last: u128,
    /// Level of the root node.
    height: u32,
    /// Number of set offsets, modulo 2^128: only the whole IPv6 space, fully
    /// set, wraps to 0, and callers subtract reserved offsets before reporting.
    count: u128,
    root: Node,
}

impl fmt::Debug for SparseBitmap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SparseBitmap")
            .field("last", &self.last)
            .field("count", &self.count)
            .field("heap_bytes", &self.heap_bytes())
            .finish()
    }
}

/// Bits covered by each child of an inner node at `level` (>= 1).
fn child_bits(level: u32) -> u32 {
    LEAF_BITS + FANOUT_BITS * (level - 1)
}

/// Bits covered by a node at `level`.
fn node_bits(level: u32) -> u32 {
    LEAF_BITS + FANOUT_BITS * level
}

/// Which child of an inner node at `level` holds `off`.
fn child_index(off: u128, level: u32) -> usize {
    ((off >> child_bits(level)) as usize) & (FANOUT - 1)
}

/// How many offsets (for a leaf) or children (for an inner node) a node really
/// has. Only the root can be cut short, when the subnet is smaller than the
/// span of its level; children past the end stay `Empty` forever.
fn width(last: u128, level: u32, root: bool) -> usize {
    match (root, level) {
        (false, 0) => LEAF_SIZE,
        (false, _) => FANOUT,
        (true, 0) => (last + 1) as usize,
        (true, _) => ((last >> child_bits(level)) + 1) as usize,
    }
}

/// Number of offsets a `Full` node stands for, modulo 2^128.
fn full_count(last: u128, level: u32, root: bool) -> u128 {
    if root {
        last.wrapping_add(1)
    } else {
        1u128 << node_bits(level)
    }
}

/// Mask of the bits `lo..=hi` (word-relative, `lo <= hi < 64`).
fn word_mask(lo: usize, hi: usize) -> u64 {
    let upper = if hi == 63 {
        u64::MAX
    } else {
        (1u64 << (hi + 1)) - 1
    };
    upper & (u64::MAX << lo)
}

/// Sets bit `i` of `words`; returns whether it was clear.
fn set_bit(words: &mut [u64], i: usize) -> bool {
    let bit = 1u64 << (i % 64);
    let was_clear = words[i / 64] & bit == 0;
    words[i / 64] |= bit;
    was_clear
}

/// Clears bit `i` of `words`; returns whether it was set.
fn clear_bit(words: &mut [u64], i: usize) -> bool {
    let bit = 1u64 << (i % 64);
    let was_set = words[i / 64] & bit != 0;
    words[i / 64] &= !bit;
    was_set
}

/// Sets bits `lo..=hi` of `words`; returns how many were clear.
fn set_bits(words: &mut [u64], lo: usize, hi: usize) -> u32 {
    let (first, last) = (lo / 64, hi / 64);
    let mut added = 0;
    for (w, word) in words[first..=last].iter_mut().enumerate() {
        let w = first + w;
        let mask = word_mask(
            if w == first { lo % 64 } else { 0 },
            if w == last { hi % 64 } else { 63 },
        );
        added += (mask & !*word).count_ones();
        *word |= mask;
    }
    added
}

/// The first bit in `lo..=hi` of `words` that equals `want`.
fn find_bit(words: &[u64], lo: usize, hi: usize, want: bool) -> Option<usize> {
    (lo / 64..=hi / 64).find_map(|w| {
        let bits = if want { words[w] } else { !words[w] };
        let mask = word_mask(
            if w == lo / 64 { lo % 64 } else { 0 },
            if w == hi / 64 { hi % 64 } else { 63 },
        );
        let hits = bits & mask;
        (hits != 0).then(|| w * 64 + hits.trailing_zeros() as usize)
    })
}

impl Dense {
    /// The words of leaf `leaf`.
    fn leaf(&self, leaf: usize) -> &[u64] {
        &self.words[leaf * WORDS..(leaf + 1) * WORDS]
    }

    /// Brings the summary bits of `leaf` up to date with its words.
    fn resummarise(&mut self, leaf: usize) {
        let words = self.leaf(leaf);
        let (full, nonempty) = (
            words.iter().all(|&w| w == u64::MAX),
            words.iter().any(|&w| w != 0),
        );
        let bit = 1u64 << leaf;
        if full {
            self.full |= bit;
        } else {
            self.full &= !bit;
        }
        if nonempty {
            self.nonempty |= bit;
        } else {
            self.nonempty &= !bit;
        }
    }

    /// Leaves with some but not all offsets set.
    fn partial_leaves(&self) -> u32 {
        (self.nonempty & !self.full).count_ones()
    }

    /// Set offsets in the node.
    fn count(&self) -> u128 {
        self.words.iter().map(|w| u128::from(w.count_ones())).sum()
    }

    /// A dense node from a full-width level-1 inner node.
    fn from_inner(inner: &Inner) -> Box<Dense> {
        let mut dense = Box::new(Dense {
            full: 0,
            nonempty: 0,
            words: [0; DENSE_WORDS],
        });
        for (i, child) in inner.children.iter().enumerate() {
            let words = &mut dense.words[i * WORDS..(i + 1) * WORDS];
            match child {
                Node::Empty => {}
                Node::Full => words.fill(u64::MAX),
                Node::Leaf(leaf) => words.copy_from_slice(&leaf.words),
                Node::Inner(_) | Node::Dense(_) => unreachable!("a level-1 node has leaves"),
            }
            dense.resummarise(i);
        }
        dense
    }

    /// The sparse form of this node: uniform leaves unboxed, partial ones
    /// boxed.
    fn to_inner(&self) -> Box<Inner> {
        Box::new(Inner {
            children: std::array::from_fn(|i| {
                let bit = 1u64 << i;
                if self.full & bit != 0 {
                    Node::Full
                } else if self.nonempty & bit == 0 {
                    Node::Empty
                } else {
                    let words: [u64; WORDS] =
                        self.leaf(i).try_into().expect("a leaf is WORDS words");
                    let used = words.iter().map(|w| w.count_ones()).sum();
                    Node::Leaf(Box::new(Leaf { used, words }))
                }
            }),
        })
    }

    /// What this node should be now: uniform nodes collapse, and a node with
    /// few partial leaves goes back to the sparse form.
    fn settle(node: &mut Node) {
        let Node::Dense(dense) = node else { return };
        if dense.full == u64::MAX {
            *node = Node::Full;
        } else if dense.nonempty == 0 {
            *node = Node::Empty;
        } else if dense.partial_leaves() <= SPARSE_AT {
            *node = Node::Inner(dense.to_inner());
        }
    }
}

/// Turns a level-1 inner node dense once enough of its leaves are partial.
/// Called only when a child has just become a partial leaf, so the count is
/// paid once per leaf state change, not per operation. A root cut short by
/// a subnet narrower than its level (never the case for real subnets, whose
/// sizes are powers of two) stays sparse.
fn densify_if_crowded(node: &mut Node, level: u32, width: usize) {
    let Node::Inner(inner) = node else { return };
    if level != 1 || width != FANOUT {
        return;
    }
    let partial = inner
        .children
        .iter()
        .filter(|c| matches!(c, Node::Leaf(_)))
        .count() as u32;
    if partial >= DENSE_AT {
        *node = Node::Dense(Dense::from_inner(inner));
    }
}

impl Node {
    /// A partial node with nothing set yet, ready to be written into.
    fn fresh(level: u32) -> Node {
        if level == 0 {
            Node::Leaf(Box::new(Leaf {
                used: 0,
                words: [0; WORDS],
            }))
        } else {
            Node::Inner(Box::new(Inner {
                children: std::array::from_fn(|_| Node::Empty),
            }))
        }
    }

    /// A partial node with its first `width` offsets or children set: a `Full`
    /// node about to lose one.
    fn expanded_full(level: u32, width: usize) -> Node {
        if level == 0 {
            let mut words = [0; WORDS];
            for (i, w) in words.iter_mut().enumerate() {
                let lo = i * 64;
                if lo < width {
                    *w = word_mask(0, (width - lo).min(64) - 1);
                }
            }
            Node::Leaf(Box::new(Leaf {
                used: width as u32,
                words,
            }))
        } else {
            Node::Inner(Box::new(Inner {
                children: std::array::from_fn(|i| if i < width { Node::Full } else { Node::Empty }),
            }))
        }
    }

    fn is_full(&self) -> bool {
        matches!(self, Node::Full)
    }

    fn is_empty(&self) -> bool {
        matches!(self, Node::Empty)
    }

    fn heap_bytes(&self) -> usize {
        match self {
            Node::Empty | Node::Full => 0,
            Node::Leaf(_) => size_of::<Leaf>(),
            Node::Inner(inner) => {
                size_of::<Inner>() + inner.children.iter().map(Node::heap_bytes).sum::<usize>()
            }
            Node::Dense(_) => size_of::<Dense>(),
        }
    }

    fn count(&self, last: u128, level: u32, root: bool) -> u128 {
        match self {
            Node::Empty => 0,
            Node::Full => full_count(last, level, root),
            Node::Leaf(leaf) => u128::from(leaf.used),
            Node::Inner(inner) => inner.children.iter().fold(0u128, |n, c| {
                n.wrapping_add(c.count(last, level - 1, false))
            }),
            Node::Dense(dense) => dense.count(),
        }
    }
}

/// Sets `off`; returns whether it was clear.
fn insert_at(node: &mut Node, level: u32, root: bool, off: u128, last: u128) -> bool {
    match node {
        Node::Full => false,
        Node::Empty => {
            *node = Node::fresh(level);
            insert_at(node, level, root, off, last)
        }
        Node::Leaf(leaf) => {
            if !set_bit(&mut leaf.words, (off as usize) & (LEAF_SIZE - 1)) {
                return false;
            }
            leaf.used += 1;
            if leaf.used as usize == width(last, level, root) {
                *node = Node::Full;
            }
            true
        }
        Node::Inner(inner) => {
            let i = child_index(off, level);
            let was_leaf = matches!(inner.children[i], Node::Leaf(_));
            let added = insert_at(&mut inner.children[i], level - 1, false, off, last);
            let new_leaf = !was_leaf && matches!(inner.children[i], Node::Leaf(_));
            if added
                && inner.children[i].is_full()
                && inner.children[..width(last, level, root)]
                    .iter()
                    .all(Node::is_full)
            {
                *node = Node::Full;
            } else if new_leaf {
                densify_if_crowded(node, level, width(last, level, root));
            }
            added
        }
        Node::Dense(dense) => {
            let i = (off as usize) & (DENSE_WORDS * 64 - 1);
            if !set_bit(&mut dense.words, i) {
                return false;
            }
            let leaf = i / LEAF_SIZE;
            dense.nonempty |= 1 << leaf;
            if dense.words[i / 64] == u64::MAX {
                dense.resummarise(leaf);
            }
            Dense::settle(node);
            true
        }
    }
}

/// Clears `off`; returns whether it was set.
fn remove_at(node: &mut Node, level: u32, root: bool, off: u128, last: u128) -> bool {
    match node {
        Node::Empty => false,
        Node::Full => {
            *node = Node::expanded_full(level, width(last, level, root));
            remove_at(node, level, root, off, last)
        }
        Node::Leaf(leaf) => {
            if !clear_bit(&mut leaf.words, (off as usize) & (LEAF_SIZE - 1)) {
                return false;
            }
            leaf.used -= 1;
            if leaf.used == 0 {
                *node = Node::Empty;
            }
            true
        }
        Node::Inner(inner) => {
            let i = child_index(off, level);
            let was_leaf = matches!(inner.children[i], Node::Leaf(_));
            let removed = remove_at(&mut inner.children[i], level - 1, false, off, last);
            let new_leaf = !was_leaf && matches!(inner.children[i], Node::Leaf(_));
            if removed && inner.children[i].is_empty() && inner.children.iter().all(Node::is_empty)
            {
                *node = Node::Empty;
            } else if new_leaf {
                densify_if_crowded(node, level, width(last, level, root));
            }
            removed
        }
        Node::Dense(dense) => {
            let i = (off as usize) & (DENSE_WORDS * 64 - 1);
            if !clear_bit(&mut dense.words, i) {
                return false;
            }
            let leaf = i / LEAF_SIZE;
            dense.full &= !(1 << leaf);
            if dense.words[i / 64] == 0 {
                dense.resummarise(leaf);
            }
            Dense::settle(node);
            true
        }
    }
}

/// Sets every offset in `a..=b` (inside the node at `base`); returns how many
/// were clear, modulo 2^128.
fn fill_at(
    node: &mut Node,
    level: u32,
    root: bool,
    base: u128,
    a: u128,
    b: u128,
    last: u128,
) -> u128 {
    let node_last = base.wrapping_add(span_last(node_bits(level)));
    if a == base && b == node_last {
        let before = node.count(last, level, root);
        *node = Node::Full;
        return full_count(last, level, root).wrapping_sub(before);
    }
    match node {
        Node::Full => 0,
        Node::Empty => {
            *node = Node::fresh(level);
            fill_at(node, level, root, base, a, b, last)
        }
        Node::Leaf(leaf) => {
            let added = set_bits(&mut leaf.words, (a - base) as usize, (b - base) as usize);
            leaf.used += added;
            if leaf.used as usize == width(last, level, root) {
                *node = Node::Full;
            }
            u128::from(added)
        }
        Node::Inner(inner) => {
            let cb = child_bits(level);
            let mut added = 0u128;
            for i in child_index(a, level)..=child_index(b, level) {
                let cbase = base + ((i as u128) << cb);
                let clast = cbase + span_last(cb);
                added = added.wrapping_add(fill_at(
                    &mut inner.children[i],
                    level - 1,
                    false,
                    cbase,
                    a.max(cbase),
                    b.min(clast),
                    last,
                ));
            }
            if inner.children[..width(last, level, root)]
                .iter()
                .all(Node::is_full)
            {
                *node = Node::Full;
            }
            densify_if_crowded(node, level, width(last, level, root));
            added
        }
        Node::Dense(dense) => {
            let (lo, hi) = ((a - base) as usize, (b - base) as usize);
            let added = set_bits(&mut dense.words, lo, hi);
            for leaf in lo / LEAF_SIZE..=hi / LEAF_SIZE {
                dense.resummarise(leaf);
            }
            Dense::settle(node);
            u128::from(added)
        }
    }
}

/// The first offset in `a..=b` (inside the node at `base`) whose bit equals
/// `want`.
fn find_at(node: &Node, level: u32, base: u128, a: u128, b: u128, want: bool) -> Option<u128> {
    match node {
        Node::Empty => (!want).then_some(a),
        Node::Full => want.then_some(a),
        Node::Leaf(leaf) => find_bit(&leaf.words, (a - base) as usize, (b - base) as usize, want)
            .map(|i| base + i as u128),
        Node::Dense(dense) => {
            let (lo, hi) = ((a - base) as usize, (b - base) as usize);
            (lo / LEAF_SIZE..=hi / LEAF_SIZE).find_map(|leaf| {
                let bit = 1u64 << leaf;
                // A uniform leaf of the wrong kind cannot hold a hit.
                if (want && dense.nonempty & bit == 0) || (!want && dense.full & bit != 0) {
                    return None;
                }
                let start = leaf * LEAF_SIZE;
                let from = lo.max(start) - start;
                let to = hi.min(start + LEAF_SIZE - 1) - start;
                find_bit(dense.leaf(leaf), from, to, want).map(|i| base + (start + i) as u128)
            })
        }
        Node::Inner(inner) => {
            let cb = child_bits(level);
            (child_index(a, level)..=child_index(b, level)).find_map(|i| {
                let child = &inner.children[i];
                // A uniform child of the wrong kind cannot hold a hit.
                if (want && child.is_empty()) || (!want && child.is_full()) {
                    return None;
                }
                let cbase = base + ((i as u128) << cb);
                let clast = cbase + span_last(cb);
                find_at(child, level - 1, cbase, a.max(cbase), b.min(clast), want)
            })
        }
    }
}

impl SparseBitmap {
    /// An empty bitmap over offsets `0..=last`.
    pub(crate) fn new(last: u128) -> SparseBitmap {
        let bits = 128 - last.leading_zeros();
        let height = if bits <= LEAF_BITS {
            0
        } else {
            (bits - LEAF_BITS).div_ceil(FANOUT_BITS)
        };
        SparseBitmap {
            last,
            height,
            count: 0,
            root: Node::Empty,
        }
    }

    /// Number of set offsets, modulo 2^128 (see the field).
    pub(crate) fn count(&self) -> u128 {
        self.count
    }

    /// Whether `off` is set.
    pub(crate) fn contains(&self, off: u128) -> bool {
        debug_assert!(off <= self.last);
        let mut node = &self.root;
        let mut level = self.height;
        loop {
            match node {
                Node::Empty => return false,
                Node::Full => return true,
                Node::Leaf(leaf) => {
                    let i = (off as usize) & (LEAF_SIZE - 1);
                    return leaf.words[i / 64] & (1u64 << (i % 64)) != 0;
                }
                Node::Inner(inner) => {
                    node = &inner.children[child_index(off, level)];
                    level -= 1;
                }
                Node::Dense(dense) => {
                    let i = (off as usize) & (DENSE_WORDS * 64 - 1);
                    return dense.words[i / 64] & (1u64 << (i % 64)) != 0;
                }
            }
        }
    }

    /// Sets `off`; returns whether it was clear.
    pub(crate) fn insert(&mut self, off: u128) -> bool {
        debug_assert!(off <= self.last);
        let added = insert_at(&mut self.root, self.height, true, off, self.last);
        if added {
            self.count = self.count.wrapping_add(1);
        }
        added
    }

    /// Clears `off`; returns whether it was set.
    pub(crate) fn remove(&mut self, off: u128) -> bool {
        debug_assert!(off <= self.last);
        let removed = remove_at(&mut self.root, self.height, true, off, self.last);
        if removed {
            self.count = self.count.wrapping_sub(1);
        }
        removed
    }

    /// Sets every offset in `a..=b`, whole subtrees at a time.
    pub(crate) fn fill(&mut self, a: u128, b: u128) {
        debug_assert!(a <= b && b <= self.last);
        let added = fill_at(&mut self.root, self.height, true, 0, a, b, self.last);
        self.count = self.count.wrapping_add(added);
    }

    /// The first clear offset in `a..=b`.
    pub(crate) fn first_clear(&self, a: u128, b: u128) -> Option<u128> {
        debug_assert!(a <= b && b <= self.last);
        find_at(&self.root, self.height, 0, a, b, false)
    }

    /// The first set offset in `a..=b`.
    pub(crate) fn first_set(&self, a: u128, b: u128) -> Option<u128> {
        debug_assert!(a <= b && b <= self.last);
        find_at(&self.root, self.height, 0, a, b, true)
    }

    /// Maximal runs of set offsets, ascending, as inclusive `(start, end)`.
    /// Lazy: each step is two tree walks, so even a checkerboard /8 can be
    /// walked without building a list.
    pub(crate) fn runs(&self) -> Runs<'_> {
        Runs {
            bitmap: self,
            next: Some(0),
        }
    }

    /// Bytes this bitmap holds on the heap (the tree nodes; exact).
    pub(crate) fn heap_bytes(&self) -> usize {
        self.root.heap_bytes()
    }
}

/// Iterator over the runs of set offsets of a [`SparseBitmap`].
pub(crate) struct Runs<'a> {
    bitmap: &'a SparseBitmap,
    next: Option<u128>,
}

impl Iterator for Runs<'_> {
    type Item = (u128, u128);

    fn next(&mut self) -> Option<(u128, u128)> {
        let last = self.bitmap.last;
        let from = self.next?;
        let Some(start) = self.bitmap.first_set(from, last) else {
            self.next = None;
            return None;
        };
        let end = match self.bitmap.first_clear(start, last) {
            Some(clear) => clear - 1,
            None => last,
        };
        self.next = (end < last).then(|| end + 1);
        Some((start, end))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn collect(b: &SparseBitmap) -> Vec<(u128, u128)> {
        b.runs().collect()
    }

    #[test]
    fn tiny_bitmap_fills_to_a_full_root() {
        let mut b = SparseBitmap::new(7);
        for i in 0..8 {
            assert!(b.insert(i));
        }
        assert!(matches!(b.root, Node::Full));
        assert_eq!(b.heap_bytes(), 0);
        assert_eq!(b.first_clear(0, 7), None);
        assert!(b.remove(3));
        assert_eq!(b.first_clear(0, 7), Some(3));
        assert_eq!(collect(&b), vec![(0, 2), (4, 7)]);
    }

    #[test]
    fn insert_twice_reports_already_set() {
        let mut b = SparseBitmap::new(255);
        assert!(b.insert(9));
        assert!(!b.insert(9));
        assert_eq!(b.count(), 1);
        assert!(b.remove(9));
        assert!(!b.remove(9));
        assert_eq!(b.count(), 0);
    }

    #[test]
    fn full_v4_slash8_collapses_to_nothing_on_the_heap() {
        let last = (1u128 << 24) - 1;
        let mut b = SparseBitmap::new(last);
        b.fill(0, last);
        assert_eq!(b.count(), 1 << 24);
        assert_eq!(b.heap_bytes(), 0);
        assert!(b.remove(12_345_678));
        assert_eq!(b.first_clear(0, last), Some(12_345_678));
        assert!(b.insert(12_345_678));
        assert_eq!(b.heap_bytes(), 0);
    }

    #[test]
    fn slash16_root_collapses_although_it_is_narrower_than_its_level() {
        let last = (1u128 << 16) - 1;
        let mut b = SparseBitmap::new(last);
        for i in 0..=last {
            b.insert(i);
        }
        assert!(matches!(b.root, Node::Full));
        assert_eq!(b.count(), 1 << 16);
    }

    #[test]
    fn v6_slash64_stays_sparse() {
        let last = u128::from(u64::MAX);
        let mut b = SparseBitmap::new(last);
        b.insert(1);
        b.insert(last);
        assert!(b.heap_bytes() < 32 * 1024, "{}", b.heap_bytes());
        assert_eq!(collect(&b), vec![(1, 1), (last, last)]);
        assert_eq!(b.first_clear(1, last), Some(2));
        assert_eq!(b.first_set(2, last), Some(last));
    }

    #[test]
    fn whole_v6_space_wraps_count_but_still_works() {
        let mut b = SparseBitmap::new(u128::MAX);
        b.fill(0, u128::MAX);
        assert_eq!(b.count(), 0, "2^128 wraps to 0 by design");
        assert!(b.remove(5));
        assert_eq!(b.count(), u128::MAX);
        assert_eq!(b.first_clear(0, u128::MAX), Some(5));
    }

    #[test]
    fn fill_counts_only_newly_set_offsets() {
        let mut b = SparseBitmap::new(99_999);
        b.insert(10);
        b.insert(5000);
        b.fill(0, 8191);
        assert_eq!(b.count(), 8192);
        assert_eq!(collect(&b), vec![(0, 8191)]);
    }

    /// The shape of the level-1 nodes under the root: how many are dense.
    fn dense_nodes(b: &SparseBitmap) -> usize {
        match &b.root {
            Node::Dense(_) => 1,
            Node::Inner(inner) => inner
                .children
                .iter()
                .filter(|c| matches!(c, Node::Dense(_)))
                .count(),
            _ => 0,
        }
    }

    #[test]
    fn checkerboard_slash8_costs_the_raw_bits_plus_a_tenth_of_a_percent() {
        let last = (1u128 << 24) - 1;
        let mut b = SparseBitmap::new(last);
        for off in (0..=last).step_by(2) {
            b.insert(off);
        }
        assert_eq!(dense_nodes(&b), 64);
        let raw = 2 * 1024 * 1024;
        assert!(b.heap_bytes() <= raw + raw / 1000, "{}", b.heap_bytes());
        assert_eq!(b.count(), 1 << 23);
        assert_eq!(b.first_clear(0, last), Some(1));
        assert_eq!(b.first_clear(1 << 20, last), Some((1 << 20) + 1));
        assert_eq!(b.first_set(1, last), Some(2));
        assert!(b.contains(4_000_000) && !b.contains(4_000_001));
        // Filling the gaps collapses every dense node to `Full`.
        for off in (1..=last).step_by(2) {
            assert!(b.insert(off));
        }
        assert!(matches!(b.root, Node::Full));
        assert_eq!(b.heap_bytes(), 0);
    }

    #[test]
    fn a_dense_node_thins_back_to_sparse_and_then_to_nothing() {
        let last = (1u128 << 18) - 1;
        let mut b = SparseBitmap::new(last);
        // One offset in each of the 64 leaves: every leaf partial, so dense.
        for leaf in 0..64u128 {
            b.insert(leaf * 4096 + 7);
        }
        assert_eq!(dense_nodes(&b), 1);
        assert_eq!(b.heap_bytes(), size_of::<Dense>());
        // Emptying leaves one by one goes sparse at SPARSE_AT partial leaves.
        for leaf in 0..64u128 {
            assert!(b.remove(leaf * 4096 + 7));
            let partial = 63 - leaf as u32;
            let dense = dense_nodes(&b) == 1;
            assert_eq!(dense, partial > SPARSE_AT, "after {partial} partial leaves");
        }
        assert!(matches!(b.root, Node::Empty));
        assert_eq!(b.count(), 0);
    }

    #[test]
    fn fill_and_full_leaves_inside_a_dense_node() {
        let last = (1u128 << 18) - 1;
        let mut b = SparseBitmap::new(last);
        for leaf in 0..64u128 {
            b.insert(leaf * 4096);
        }
        assert_eq!(dense_nodes(&b), 1);
        // Fill leaves 1..=3 completely and half of leaf 4.
        b.fill(4096, 4 * 4096 + 2047);
        assert_eq!(b.count(), 64 + 3 * 4095 + 2047);
        assert_eq!(b.first_clear(4096, last), Some(4 * 4096 + 2048));
        assert_eq!(b.first_set(1, last), Some(4096));
        let Node::Dense(dense) = &b.root else {
            panic!("still dense with 61 partial leaves")
        };
        assert_eq!(dense.full, 0b1110);
        assert_eq!(dense.partial_leaves(), 61);
        // Filling the rest makes it `Full`.
        b.fill(0, last);
        assert!(matches!(b.root, Node::Full));
        assert_eq!(b.count(), 1 << 18);
    }

    #[test]
    fn matches_a_btreeset_on_a_pseudo_random_walk() {
        let last = 70_000u128;
        let mut b = SparseBitmap::new(last);
        let mut model = BTreeSet::new();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let off = u128::from(x) % (last + 1);
            if x & (1 << 40) == 0 {
                assert_eq!(b.insert(off), model.insert(off));
            } else {
                assert_eq!(b.remove(off), model.remove(&off));
            }
            let lo = off / 2;
            let want_clear = (lo..=last).find(|o| !model.contains(o));
            assert_eq!(b.first_clear(lo, last), want_clear);
            let want_set = model.range(lo..).next().copied();
            assert_eq!(b.first_set(lo, last), want_set);
        }
        assert_eq!(b.count(), model.len() as u128);
        let flat: Vec<u128> = b.runs().flat_map(|(s, e)| s..=e).collect();
        assert_eq!(flat, model.into_iter().collect::<Vec<_>>());
    }

    /// One step of the model test: insert, remove or fill.
    #[derive(Debug, Clone)]
    enum Op {
        Insert(u128),
        Remove(u128),
        Fill(u128, u128),
    }

    const LAST: u128 = (1 << 19) - 1;

    /// Offsets crowd into a few spots of the 128 leaves of two level-1 nodes,
    /// so walks go sparse → dense and leaves go partial → full → partial.
    fn offset() -> impl proptest::strategy::Strategy<Value = u128> {
        use proptest::prelude::*;
        (
            0u128..128,
            prop_oneof![0u128..64, 4032u128..4096, 0u128..4096],
        )
            .prop_map(|(leaf, at)| leaf * 4096 + at)
    }

    fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        prop_oneof![
            40 => offset().prop_map(Op::Insert),
            30 => offset().prop_map(Op::Remove),
            8 => (offset(), 0u128..5000).prop_map(|(a, len)| Op::Fill(a, (a + len).min(LAST))),
            1 => (offset(), 0u128..300_000).prop_map(|(a, len)| Op::Fill(a, (a + len).min(LAST))),
        ]
    }

    /// Checks `b` against the model at a handful of probes.
    fn agrees(
        b: &SparseBitmap,
        model: &[bool],
    ) -> Result<(), proptest::test_runner::TestCaseError> {
        let count = model.iter().filter(|&&m| m).count();
        proptest::prop_assert_eq!(b.count(), count as u128);
        for probe in [0usize, 4095, 4096, 70_000, 262_143, 262_144, LAST as usize] {
            let want_set = (probe..model.len()).find(|&o| model[o]).map(|o| o as u128);
            proptest::prop_assert_eq!(b.first_set(probe as u128, LAST), want_set);
            let want_clear = (probe..model.len()).find(|&o| !model[o]).map(|o| o as u128);
            proptest::prop_assert_eq!(b.first_clear(probe as u128, LAST), want_clear);
            proptest::prop_assert_eq!(b.contains(probe as u128), model[probe]);
        }
        Ok(())
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 64, ..Default::default() })]

        /// Random operations, then a drain in a random order: the walk passes
        /// through sparse, dense, full and empty nodes and back, and the
        /// bitmap agrees with a flat model all the way.
        #[test]
        fn dense_and_sparse_forms_agree_with_a_model(
            ops in proptest::collection::vec(op(), 1..1500),
            seed in 1u64..,
        ) {
            let mut b = SparseBitmap::new(LAST);
            let mut model = vec![false; LAST as usize + 1];
            for op in &ops {
                match *op {
                    Op::Insert(off) => {
                        let was_clear = !std::mem::replace(&mut model[off as usize], true);
                        proptest::prop_assert_eq!(b.insert(off), was_clear);
                    }
                    Op::Remove(off) => {
                        let was_set = std::mem::replace(&mut model[off as usize], false);
                        proptest::prop_assert_eq!(b.remove(off), was_set);
                    }
                    Op::Fill(a, z) => {
                        b.fill(a, z);
                        model[a as usize..=z as usize].fill(true);
                    }
                }
            }
            agrees(&b, &model)?;
            let flat: Vec<u128> = b.runs().flat_map(|(s, e)| s..=e).collect();
            let want: Vec<u128> = (0..=LAST).filter(|&o| model[o as usize]).collect();
            proptest::prop_assert_eq!(flat, want.clone());

            // Drain: a random permutation of what is set (Fisher–Yates).
            let mut order = want;
            let mut x = seed;
            for i in (1..order.len()).rev() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                order.swap(i, (x % (i as u64 + 1)) as usize);
            }
            for (n, off) in order.into_iter().enumerate() {
                proptest::prop_assert!(b.remove(off));
                model[off as usize] = false;
                if n % 50_000 == 0 {
                    agrees(&b, &model)?;
                }
            }
            proptest::prop_assert_eq!(b.count(), 0);
            proptest::prop_assert!(matches!(b.root, Node::Empty));
        }
    }
}
