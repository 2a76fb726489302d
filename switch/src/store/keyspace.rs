//! The revisioned key space both stores keep in memory: entries with their
//! revisions, the compare-then-write rule, and the bounded change history.
//! The file store persists it; the memory store shares it between clones.

use super::{
    CommitOutcome, Compare, Conflict, Entries, Entry, Event, EventKind, Revision, StoreChanges,
    StoreContents, StoreError, Transaction,
};
use std::collections::VecDeque;

/// Entries, the store revision, and the recent writes.
#[derive(Clone, Debug)]
pub(crate) struct Keyspace {
    revision: Revision,
    entries: Entries,
    /// Writes after revision `compacted`, oldest first.
    history: VecDeque<Event>,
    /// Changes can be asked for from this revision on.
    compacted: Revision,
    /// How many revisions of history to keep.
    history_limit: u64,
}

impl Keyspace {
    /// A key space holding `contents`, with history starting there.
    pub(crate) fn new(contents: StoreContents, history_limit: u64) -> Keyspace {
        Keyspace {
            revision: contents.revision,
            entries: contents.entries,
            history: VecDeque::new(),
            compacted: contents.revision,
            history_limit,
        }
    }

    /// Every entry and the revision they were read at.
    pub(crate) fn contents(&self) -> StoreContents {
        StoreContents {
            revision: self.revision,
            entries: self.entries.clone(),
        }
    }

    /// The current store revision.
    pub(crate) fn revision(&self) -> Revision {
        self.revision
    }

    /// The first compare of `txn` that does not hold, if any.
    pub(crate) fn check(&self, txn: &Transaction) -> Option<Conflict> {
        txn.compares
            .iter()
            .find(|c| !c.holds(&self.entries))
            .map(|c: &Compare| Conflict {
                compare: c.clone(),
                found: self.entries.get(c.key()).map(|e| e.mod_revision),
            })
    }

    /// What the entries become if `txn` (already checked, with writes)
    /// commits, and the events it produces.
    pub(crate) fn prepare(&self, txn: &Transaction) -> (Entries, Vec<Event>) {
        let revision = self.revision + 1;
        let mut next = self.entries.clone();
        let mut events = Vec::with_capacity(txn.puts.len() + txn.deletes.len());
        for key in &txn.deletes {
            if next.remove(key).is_some() {
                events.push(Event {
                    key: key.clone(),
                    kind: EventKind::Delete,
                    revision,
                });
            }
        }
        for (key, value) in &txn.puts {
            let create_revision = next.get(key).map_or(revision, |e| e.create_revision);
            next.insert(
                key.clone(),
                Entry {
                    value: value.clone(),
                    create_revision,
                    mod_revision: revision,
                },
            );
            events.push(Event {
                key: key.clone(),
                kind: EventKind::Put {
                    value: value.clone(),
                    create_revision,
                },
                revision,
            });
        }
        (next, events)
    }

    /// Makes a prepared commit current and returns its revision.
    pub(crate) fn install(&mut self, entries: Entries, events: Vec<Event>) -> Revision {
        self.revision += 1;
        self.entries = entries;
        self.history.extend(events);
        let floor = self.revision.saturating_sub(self.history_limit);
        if floor > self.compacted {
            self.compacted = floor;
            while self.history.front().is_some_and(|e| e.revision <= floor) {
                self.history.pop_front();
            }
        }
        self.revision
    }

    /// Checks and applies `txn` in memory (the memory store's commit).
    pub(crate) fn commit(&mut self, txn: &Transaction) -> CommitOutcome {
        if let Some(conflict) = self.check(txn) {
            return CommitOutcome::Conflict(conflict);
        }
        if txn.is_empty() {
            return CommitOutcome::Applied {
                revision: self.revision,
            };
        }
        let (entries, events) = self.prepare(txn);
        CommitOutcome::Applied {
            revision: self.install(entries, events),
        }
    }

    /// Every write after `revision`.
    pub(crate) fn changes_since(&self, revision: Revision) -> Result<StoreChanges, StoreError> {
        if revision > self.revision {
            return Err(StoreError::RevisionAhead {
                requested: revision,
                current: self.revision,
            });
        }
        if revision < self.compacted {
            return Err(StoreError::Compacted {
                requested: revision,
                oldest: self.compacted,
            });
        }
        // The history is in revision order: skip to the first newer event.
        let first = self.history.partition_point(|e| e.revision <= revision);
        Ok(StoreChanges {
            revision: self.revision,
            events: self.history.range(first..).cloned().collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn put(key: &str, v: serde_json::Value) -> Transaction {
        let mut t = Transaction::new();
        t.put(key, v);
        t
    }

    fn applied(o: CommitOutcome) -> Revision {
        match o {
            CommitOutcome::Applied { revision } => revision,
            CommitOutcome::Conflict(c) => panic!("unexpected conflict: {c}"),
        }
    }

    #[test]
    fn every_write_transaction_advances_the_revision_and_stamps_its_keys() {
        let mut ks = Keyspace::new(StoreContents::default(), 10);
        assert_eq!(applied(ks.commit(&put("a", json!(1)))), 1);
        assert_eq!(applied(ks.commit(&put("b", json!(2)))), 2);
        assert_eq!(applied(ks.commit(&put("a", json!(3)))), 3);
        let c = ks.contents();
        assert_eq!(c.revision, 3);
        assert_eq!(
            c.entries["a"],
            Entry {
                value: json!(3),
                create_revision: 1,
                mod_revision: 3
            }
        );
        assert_eq!(c.entries["b"].mod_revision, 2);
    }

    #[test]
    fn a_transaction_without_writes_does_not_advance_the_revision() {
        let mut ks = Keyspace::new(StoreContents::default(), 10);
        applied(ks.commit(&put("a", json!(1))));
        let mut t = Transaction::new();
        t.require(Compare::Exists { key: "a".into() });
        assert_eq!(applied(ks.commit(&t)), 1);
    }

    #[test]
    fn a_failed_compare_writes_nothing_and_names_the_key() {
        let mut ks = Keyspace::new(StoreContents::default(), 10);
        applied(ks.commit(&put("a", json!(1))));
        applied(ks.commit(&put("a", json!(2))));
        let mut t = put("b", json!("x"));
        t.require(Compare::ModRevision {
            key: "a".into(),
            revision: 1,
        });
        let CommitOutcome::Conflict(conflict) = ks.commit(&t) else {
            panic!("stale revision must conflict");
        };
        assert_eq!(conflict.key(), "a");
        assert_eq!(conflict.found, Some(2));
        assert_eq!(
            conflict.to_string(),
            "key a was expected last written at revision 1, but it was last written at revision 2"
        );
        assert!(!ks.contents().entries.contains_key("b"));
        assert_eq!(ks.revision(), 2);
    }

    #[test]
    fn missing_exists_and_value_compares() {
        let mut ks = Keyspace::new(StoreContents::default(), 10);
        let mut t = put("a", json!(1));
        t.require(Compare::Missing { key: "a".into() });
        applied(ks.commit(&t));
        // The same create again: "a" now exists.
        assert!(matches!(ks.commit(&t), CommitOutcome::Conflict(_)));
        let mut t = put("b", json!(1));
        t.require(Compare::Exists { key: "zz".into() });
        assert!(matches!(ks.commit(&t), CommitOutcome::Conflict(_)));
        let mut t = put("b", json!(1));
        t.require(Compare::ValueEquals {
            key: "a".into(),
            value: json!(2),
        });
        assert!(matches!(ks.commit(&t), CommitOutcome::Conflict(_)));
        let mut t = put("b", json!(1));
        t.require(Compare::ValueEquals {
            key: "a".into(),
            value: json!(1),
        });
        assert_eq!(applied(ks.commit(&t)), 2);
    }

    #[test]
    fn recreating_a_deleted_key_gives_it_a_new_create_revision() {
        let mut ks = Keyspace::new(StoreContents::default(), 10);
        applied(ks.commit(&put("a", json!(1))));
        let mut t = Transaction::new();
        t.delete("a");
        applied(ks.commit(&t));
        applied(ks.commit(&put("a", json!(1))));
        assert_eq!(ks.contents().entries["a"].create_revision, 3);
    }

    #[test]
    fn changes_since_lists_the_writes_after_a_revision_in_order() {
        let mut ks = Keyspace::new(StoreContents::default(), 10);
        applied(ks.commit(&put("a", json!(1))));
        applied(ks.commit(&put("b", json!(2))));
        let mut t = Transaction::new();
        t.delete("a");
        applied(ks.commit(&t));
        let ch = ks.changes_since(1).unwrap();
        assert_eq!(ch.revision, 3);
        let got: Vec<(&str, Revision, bool)> = ch
            .events
            .iter()
            .map(|e| (e.key.as_str(), e.revision, e.kind == EventKind::Delete))
            .collect();
        assert_eq!(got, [("b", 2, false), ("a", 3, true)]);
        assert!(ks.changes_since(3).unwrap().events.is_empty());
    }

    #[test]
    fn changes_older_than_the_history_ask_the_caller_to_reload() {
        let mut ks = Keyspace::new(StoreContents::default(), 2);
        for i in 0..5 {
            applied(ks.commit(&put("a", json!(i))));
        }
        let err = ks.changes_since(1).unwrap_err();
        assert_eq!(
            err.to_string(),
            "changes since revision 1 are no longer kept (the history starts after revision 3); \
             reload the whole state"
        );
        assert_eq!(ks.changes_since(3).unwrap().events.len(), 2);
        let err = ks.changes_since(9).unwrap_err();
        assert!(matches!(err, StoreError::RevisionAhead { .. }), "{err}");
    }
}
