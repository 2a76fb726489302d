//! The event queue: events in (virtual time, insertion order). Events that
//! share a time wait in one FIFO bucket, so ordering them by sequence
//! number costs nothing, and a burst of frames due at the same instant is
//! a push and a pop each. Buckets are recycled, so a steady run does not
//! allocate for the queue.

use std::collections::{BTreeMap, VecDeque};
use switchyard_switch::Instant;

/// Events ordered by time, then by the order they were scheduled.
pub(crate) struct EventQueue<E> {
    /// Time → index of its bucket.
    times: BTreeMap<u64, u32>,
    buckets: Vec<VecDeque<E>>,
    free: Vec<u32>,
    len: usize,
}

impl<E> Default for EventQueue<E> {
    fn default() -> Self {
        EventQueue {
            times: BTreeMap::new(),
            buckets: Vec::new(),
            free: Vec::new(),
            len: 0,
        }
    }
}

impl<E> EventQueue<E> {
    /// Schedules `event` at `at`, after everything already due then.
    pub(crate) fn push(&mut self, at: Instant, event: E) {
        self.len += 1;
        let key = at.as_nanos();
        if let Some(&b) = self.times.get(&key) {
            self.buckets[b as usize].push_back(event);
            return;
        }
        let b = match self.free.pop() {
            Some(b) => b,
            None => {
                self.buckets.push(VecDeque::new());
                (self.buckets.len() - 1) as u32
            }
        };
        self.buckets[b as usize].push_back(event);
        self.times.insert(key, b);
    }

    /// When the next event is due.
    pub(crate) fn peek_time(&self) -> Option<Instant> {
        self.times
            .first_key_value()
            .map(|(&t, _)| Instant::from_nanos(t))
    }

    /// Takes the next event.
    pub(crate) fn pop(&mut self) -> Option<(Instant, E)> {
        let mut entry = self.times.first_entry()?;
        let t = *entry.key();
        let b = *entry.get_mut();
        let bucket = &mut self.buckets[b as usize];
        let event = bucket.pop_front()?;
        if bucket.is_empty() {
            entry.remove();
            self.free.push(b);
        }
        self.len -= 1;
        Some((Instant::from_nanos(t), event))
    }

    /// True when nothing is scheduled.
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_by_time_then_insertion() {
        let mut q = EventQueue::default();
        q.push(Instant::from_nanos(5), "b1");
        q.push(Instant::from_nanos(3), "a1");
        q.push(Instant::from_nanos(5), "b2");
        q.push(Instant::from_nanos(3), "a2");
        q.push(Instant::from_nanos(9), "c");
        assert_eq!(q.peek_time(), Some(Instant::from_nanos(3)));
        let order: Vec<&str> = std::iter::from_fn(|| q.pop().map(|(_, e)| e)).collect();
        assert_eq!(order, ["a1", "a2", "b1", "b2", "c"]);
        assert!(q.is_empty());
    }

    #[test]
    fn buckets_are_recycled() {
        let mut q = EventQueue::default();
        for round in 0..100u64 {
            q.push(Instant::from_nanos(round), round);
            assert_eq!(q.pop(), Some((Instant::from_nanos(round), round)));
        }
        assert_eq!(q.buckets.len(), 1);
    }
}
