//! The embedded default store: one JSON document in the state directory,
//! replaced atomically on every commit.
//!
//! Crash safety: each commit writes `state.json.tmp`, fsyncs it, keeps the
//! previous good file as `state.json.prev` (a hard link, so no copy), renames
//! the new file over `state.json` and fsyncs the directory. A crash at any
//! point leaves a complete old or new `state.json`. The document carries a
//! checksum of its contents, so a torn or edited file is reported on load,
//! never silently reset.
//!
//! Recovery is never silent either: when `state.json` is missing or
//! unreadable but `state.json.prev` exists, [`FileStore::open`] refuses and
//! says what it found; [`Recovery::FromPrev`] (the daemon's
//! `--recover-from-prev`) loads the previous copy, logs a warning and keeps a
//! damaged `state.json` as `state.json.damaged`. `state.json.prev` is only
//! ever replaced by a `state.json` that was loaded or written successfully.
//!
//! Format version 2 stores the store revision and each key's create and mod
//! revisions; version 1 files (no revisions) still load, every key at
//! revision 1, and are rewritten as version 2 by the next commit.
//!
//! Only one daemon may use a state directory: `lock` is held with an
//! exclusive advisory lock (`flock`) for the store's lifetime and records
//! the holder's pid so the refusal can say who holds it.

use super::keyspace::Keyspace;
use super::{
    CommitOutcome, Entries, Entry, Revision, Store, StoreChanges, StoreContents, StoreError,
    Transaction, DEFAULT_HISTORY,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

const STATE_FILE: &str = "state.json";
const FORMAT: &str = "switchyard-state";
/// The format this build writes.
const VERSION: u64 = 2;

/// What [`FileStore::open_with`] does when `state.json` is missing,
/// unreadable or damaged.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Recovery {
    /// Refuse to open, with an error that says what was found and what to do.
    #[default]
    Refuse,
    /// Load `state.json.prev` instead (logging a warning), keep a damaged
    /// `state.json` as `state.json.damaged`, and make the recovered state
    /// the current one. Ignored, with a warning, when `state.json` is fine.
    FromPrev,
}

/// A crash-safe store in a directory on local disk.
#[derive(Debug)]
pub struct FileStore {
    dir: PathBuf,
    keyspace: Keyspace,
    /// `state.json` holds a state this store loaded or wrote: only then may
    /// a commit move it to `state.json.prev`.
    current_good: bool,
    _lock: File,
}

impl FileStore {
    /// Opens (creating if needed) the state directory and takes its lock.
    /// Fails with [`StoreError::Locked`] if another process holds it, and
    /// with [`StoreError::StateMissing`] or [`StoreError::Corrupt`] when the
    /// state file is missing, unreadable or damaged (see [`Recovery`]).
    pub fn open(dir: impl AsRef<Path>) -> Result<FileStore, StoreError> {
        Self::open_with(dir, Recovery::Refuse)
    }

    /// [`FileStore::open`], choosing what to do about a bad state file.
    pub fn open_with(dir: impl AsRef<Path>, recovery: Recovery) -> Result<FileStore, StoreError> {
        let dir = dir.as_ref().to_path_buf();
        create_private_dir(&dir)?;
        let lock = take_lock(&dir)?;
        let mut store = FileStore {
            dir,
            keyspace: Keyspace::new(StoreContents::default(), DEFAULT_HISTORY),
            current_good: false,
            _lock: lock,
        };
        let contents = store.read_state(recovery)?;
        store.keyspace = Keyspace::new(contents, DEFAULT_HISTORY);
        Ok(store)
    }

    /// The directory this store lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Path of the state document.
    pub fn state_path(&self) -> PathBuf {
        self.dir.join(STATE_FILE)
    }

    fn prev_path(&self) -> PathBuf {
        self.state_path().with_extension("json.prev")
    }

    fn read_state(&mut self, recovery: Recovery) -> Result<StoreContents, StoreError> {
        let path = self.state_path();
        let prev = self.prev_path();
        let tmp = path.with_extension("json.tmp");
        if tmp.exists() {
            // A commit died before its rename, so the file never became the
            // state: whatever state.json (or, failing that, .prev) holds is
            // what was last committed.
            tracing::warn!(path = %tmp.display(), "removing a half-written state file left by a crash");
            let _ = fs::remove_file(&tmp);
        }
        let problem = match fs::read(&path) {
            Ok(bytes) => match decode(&bytes) {
                Ok(contents) => {
                    if recovery == Recovery::FromPrev {
                        tracing::warn!(path = %path.display(), "the state file is intact; ignoring --recover-from-prev");
                    }
                    self.current_good = true;
                    return Ok(contents);
                }
                Err(Damage::Newer(found)) => {
                    return Err(StoreError::UnsupportedVersion {
                        path,
                        found,
                        supported: VERSION,
                    })
                }
                Err(Damage::Corrupt(detail)) => Problem::Damaged(detail),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if !prev.exists() {
                    return Ok(StoreContents::default());
                }
                Problem::Missing
            }
            Err(e) => {
                if !prev.exists() {
                    return Err(io("read", &path, e));
                }
                Problem::Unreadable(e)
            }
        };
        if recovery == Recovery::FromPrev {
            return self.recover_from_prev(&problem);
        }
        Err(match problem {
            Problem::Damaged(detail) => StoreError::Corrupt {
                hint: if prev.exists() {
                    format!(
                        "The previous good state is kept in {prev}: to go back to it, start \
                         with --recover-from-prev (the damaged file is kept as {cur}.damaged); \
                         to start empty, move {cur} and {prev} aside.",
                        prev = prev.display(),
                        cur = path.display()
                    )
                } else {
                    format!(
                        "There is no previous copy ({prev} does not exist); to start empty, \
                         move {cur} aside.",
                        prev = prev.display(),
                        cur = path.display()
                    )
                },
                path,
                detail,
            },
            Problem::Missing | Problem::Unreadable(_) => {
                let (found, advice) = match describe_file(&prev) {
                    Ok(summary) => (
                        format!("{} exists ({summary})", prev.display()),
                        "start with --recover-from-prev to use it, or move it away to start empty"
                            .to_string(),
                    ),
                    Err(detail) => (
                        format!("{} exists and is damaged too ({detail})", prev.display()),
                        "nothing can be recovered automatically; move it away to start empty"
                            .to_string(),
                    ),
                };
                StoreError::StateMissing {
                    path,
                    problem: problem.describe(),
                    found: format!("{found}; {advice}"),
                }
            }
        })
    }

    /// Loads `state.json.prev` because `state.json` has `problem`, keeps a
    /// damaged `state.json` aside, and writes the recovered state as the
    /// current one (leaving `.prev` as it is).
    fn recover_from_prev(&mut self, problem: &Problem) -> Result<StoreContents, StoreError> {
        let path = self.state_path();
        let prev = self.prev_path();
        let failed = |reason: String| StoreError::RecoveryFailed {
            path: prev.clone(),
            reason,
        };
        let bytes = match fs::read(&prev) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(failed(format!(
                    "it does not exist, so there is nothing to recover ({} is {}); \
                     move {} aside to start empty",
                    path.display(),
                    problem.describe(),
                    path.display()
                )))
            }
            Err(e) => return Err(failed(format!("it cannot be read: {e}"))),
        };
        let contents = match decode(&bytes) {
            Ok(c) => c,
            Err(Damage::Corrupt(detail)) => {
                return Err(failed(format!("it is damaged too ({detail})")))
            }
            Err(Damage::Newer(found)) => {
                return Err(failed(format!(
                    "it has format version {found}, this build reads up to {VERSION}; upgrade switchyard"
                )))
            }
        };
        let mut kept = None;
        if !matches!(problem, Problem::Missing) {
            let aside = free_name(&path.with_extension("json.damaged"));
            fs::rename(&path, &aside).map_err(|source| io("rename", &path, source))?;
            kept = Some(aside);
        }
        tracing::warn!(
            state = %path.display(),
            problem = %problem.describe(),
            from = %prev.display(),
            damaged_copy = %kept.as_ref().map(|p| p.display().to_string()).unwrap_or_default(),
            revision = contents.revision,
            keys = contents.entries.len(),
            "recovering the state from the previous copy; changes made after it are lost"
        );
        // state.json is absent now, so this leaves .prev untouched.
        self.write_state(contents.revision, &contents.entries)?;
        Ok(contents)
    }

    fn write_state(&mut self, revision: Revision, entries: &Entries) -> Result<(), StoreError> {
        let path = self.state_path();
        let tmp = path.with_extension("json.tmp");
        let prev = self.prev_path();
        let bytes = encode(revision, entries);
        {
            let mut f = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(&tmp)
                .map_err(|source| io("create", &tmp, source))?;
            f.write_all(&bytes)
                .map_err(|source| io("write", &tmp, source))?;
            f.sync_all().map_err(|source| io("fsync", &tmp, source))?;
        }
        // Only a state.json this store loaded or wrote becomes the previous
        // good copy; anything else would overwrite a good .prev.
        if self.current_good && path.exists() {
            let _ = fs::remove_file(&prev);
            fs::hard_link(&path, &prev).map_err(|source| io("link", &prev, source))?;
        }
        fs::rename(&tmp, &path).map_err(|source| io("rename", &path, source))?;
        self.current_good = true;
        // The new state is in place from here on: reporting a failure now
        // would make the caller roll back what a restart would bring back.
        // A failed directory fsync only weakens durability across a power
        // cut, so it is logged, not returned.
        if let Err(e) = File::open(&self.dir).and_then(|d| d.sync_all()) {
            tracing::warn!(dir = %self.dir.display(), error = %e, "fsync of the state directory failed; the rename may not survive a power cut");
        }
        Ok(())
    }
}

impl Store for FileStore {
    fn load(&mut self) -> Result<StoreContents, StoreError> {
        Ok(self.keyspace.contents())
    }

    fn commit(&mut self, txn: &Transaction) -> Result<CommitOutcome, StoreError> {
        if let Some(conflict) = self.keyspace.check(txn) {
            return Ok(CommitOutcome::Conflict(conflict));
        }
        if txn.is_empty() {
            return Ok(CommitOutcome::Applied {
                revision: self.keyspace.revision(),
            });
        }
        let (entries, events) = self.keyspace.prepare(txn);
        self.write_state(self.keyspace.revision() + 1, &entries)?;
        let revision = self.keyspace.install(entries, events);
        Ok(CommitOutcome::Applied { revision })
    }

    fn changes_since(&mut self, revision: Revision) -> Result<StoreChanges, StoreError> {
        self.keyspace.changes_since(revision)
    }

    fn describe(&self) -> String {
        format!("file:{}", self.state_path().display())
    }
}

/// What is wrong with `state.json`.
enum Problem {
    Missing,
    Unreadable(std::io::Error),
    Damaged(String),
}

impl Problem {
    fn describe(&self) -> String {
        match self {
            Problem::Missing => "missing".to_string(),
            Problem::Unreadable(e) => format!("unreadable ({e})"),
            Problem::Damaged(detail) => format!("damaged ({detail})"),
        }
    }
}

/// Why a state document could not be decoded.
enum Damage {
    /// Torn, edited or not ours.
    Corrupt(String),
    /// A format version newer than this build.
    Newer(u64),
}

fn take_lock(dir: &Path) -> Result<File, StoreError> {
    let lock_path = dir.join("lock");
    let mut lock = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&lock_path)
        .map_err(|source| io("open", &lock_path, source))?;
    match lock.try_lock() {
        Ok(()) => {}
        Err(fs::TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = lock.read_to_string(&mut holder);
            let holder = holder.trim();
            return Err(StoreError::Locked {
                dir: dir.to_path_buf(),
                holder: if holder.is_empty() {
                    String::new()
                } else {
                    format!(" (pid {holder})")
                },
            });
        }
        Err(fs::TryLockError::Error(source)) => return Err(io("lock", &lock_path, source)),
    }
    lock.set_len(0)
        .map_err(|source| io("truncate", &lock_path, source))?;
    write!(lock, "{}", std::process::id()).map_err(|source| io("write", &lock_path, source))?;
    Ok(lock)
}

fn io(action: &'static str, path: &Path, source: std::io::Error) -> StoreError {
    StoreError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

fn create_private_dir(dir: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| io("create directory", dir, source))
}

/// `base`, or `base.2`, `base.3`, ... : the first that does not exist.
fn free_name(base: &Path) -> PathBuf {
    let mut candidate = base.to_path_buf();
    let mut n = 2u32;
    while candidate.exists() {
        candidate = PathBuf::from(format!("{}.{n}", base.display()));
        n += 1;
    }
    candidate
}

/// `written at 2025-01-02 03:04:05 UTC, 3 networks, 2 containers`, or why
/// the file cannot be decoded.
fn describe_file(path: &Path) -> Result<String, String> {
    let bytes = fs::read(path).map_err(|e| format!("cannot read it: {e}"))?;
    let contents = decode(&bytes).map_err(|d| match d {
        Damage::Corrupt(detail) => detail,
        Damage::Newer(v) => format!("format version {v} is newer than this build's {VERSION}"),
    })?;
    // The controller's layout (networks/<id>, and sandboxes/<id> in schema
    // 1 or local/<host>/sandboxes/<id> since): only counted for the user.
    let networks = contents
        .entries
        .keys()
        .filter(|k| k.starts_with("networks/"))
        .count();
    let containers = contents
        .entries
        .keys()
        .filter(|k| {
            k.starts_with("sandboxes/")
                || (k.starts_with("local/") && k.split('/').nth(2) == Some("sandboxes"))
        })
        .count();
    let written = fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| format!("written at {}, ", utc_timestamp(d.as_secs())))
        .unwrap_or_default();
    Ok(format!(
        "{written}{networks} network{}, {containers} container{}",
        if networks == 1 { "" } else { "s" },
        if containers == 1 { "" } else { "s" }
    ))
}

/// `YYYY-MM-DD HH:MM:SS UTC` for seconds since the Unix epoch (proleptic
/// Gregorian calendar; H. Hinnant's `civil_from_days`).
fn utc_timestamp(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// FNV-1a, 64 bit: detects torn and edited files (not an integrity MAC).
fn checksum(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// One key as a version 2 document stores it.
#[derive(Serialize)]
struct EntryRef<'a> {
    value: &'a Value,
    create_revision: Revision,
    mod_revision: Revision,
}

#[derive(Deserialize)]
struct EntryDoc {
    value: Value,
    create_revision: Revision,
    mod_revision: Revision,
}

/// What the checksum of a version 2 document covers: the revision and the
/// compact JSON of the objects.
fn v2_checksum(revision: Revision, objects: &BTreeMap<&str, EntryRef<'_>>) -> String {
    let body = serde_json::to_string(objects).expect("JSON values always serialise");
    format!(
        "{:016x}",
        checksum(format!("{revision}\n{body}").as_bytes())
    )
}

fn encode(revision: Revision, entries: &Entries) -> Vec<u8> {
    let objects: BTreeMap<&str, EntryRef<'_>> = entries
        .iter()
        .map(|(k, e)| {
            (
                k.as_str(),
                EntryRef {
                    value: &e.value,
                    create_revision: e.create_revision,
                    mod_revision: e.mod_revision,
                },
            )
        })
        .collect();
    let doc = json!({
        "format": FORMAT,
        "version": VERSION,
        "revision": revision,
        "checksum": v2_checksum(revision, &objects),
        "objects": objects,
    });
    let mut out = serde_json::to_vec_pretty(&doc).expect("JSON values always serialise");
    out.push(b'\n');
    out
}

fn decode(bytes: &[u8]) -> Result<StoreContents, Damage> {
    let corrupt = |detail: String| Damage::Corrupt(detail);
    let doc: Value =
        serde_json::from_slice(bytes).map_err(|e| corrupt(format!("not valid JSON: {e}")))?;
    if doc.get("format").and_then(Value::as_str) != Some(FORMAT) {
        return Err(corrupt("missing \"format\": \"switchyard-state\"".into()));
    }
    let version = doc
        .get("version")
        .and_then(Value::as_u64)
        .ok_or_else(|| corrupt("missing version".into()))?;
    if version > VERSION {
        return Err(Damage::Newer(version));
    }
    let objects = doc
        .get("objects")
        .cloned()
        .ok_or_else(|| corrupt("missing objects".into()))?;
    let expected = doc
        .get("checksum")
        .and_then(Value::as_str)
        .ok_or_else(|| corrupt("missing checksum".into()))?;
    let mismatch = |actual: String| {
        corrupt(format!(
            "checksum mismatch: file says {expected}, contents give {actual}"
        ))
    };
    if version == 1 {
        // Version 1: plain values, no revisions. Every key becomes revision 1.
        let values: BTreeMap<String, Value> = serde_json::from_value(objects)
            .map_err(|e| corrupt(format!("objects is not a map: {e}")))?;
        let actual = format!(
            "{:016x}",
            checksum(
                serde_json::to_string(&values)
                    .expect("JSON values always serialise")
                    .as_bytes()
            )
        );
        if expected != actual {
            return Err(mismatch(actual));
        }
        let revision = u64::from(!values.is_empty());
        let entries = values
            .into_iter()
            .map(|(k, value)| {
                (
                    k,
                    Entry {
                        value,
                        create_revision: 1,
                        mod_revision: 1,
                    },
                )
            })
            .collect();
        return Ok(StoreContents { revision, entries });
    }
    let revision = doc
        .get("revision")
        .and_then(Value::as_u64)
        .ok_or_else(|| corrupt("missing revision".into()))?;
    let docs: BTreeMap<String, EntryDoc> = serde_json::from_value(objects).map_err(|e| {
        corrupt(format!(
            "objects is not a map of {{value, create_revision, mod_revision}}: {e}"
        ))
    })?;
    let refs: BTreeMap<&str, EntryRef<'_>> = docs
        .iter()
        .map(|(k, d)| {
            (
                k.as_str(),
                EntryRef {
                    value: &d.value,
                    create_revision: d.create_revision,
                    mod_revision: d.mod_revision,
                },
            )
        })
        .collect();
    let actual = v2_checksum(revision, &refs);
    if expected != actual {
        return Err(mismatch(actual));
    }
    if let Some((k, d)) = docs
        .iter()
        .find(|(_, d)| d.mod_revision > revision || d.create_revision > d.mod_revision)
    {
        return Err(corrupt(format!(
            "key {k} has create_revision {} and mod_revision {}, inconsistent with the store \
             revision {revision}",
            d.create_revision, d.mod_revision
        )));
    }
    let entries = docs
        .into_iter()
        .map(|(k, d)| {
            (
                k,
                Entry {
                    value: d.value,
                    create_revision: d.create_revision,
                    mod_revision: d.mod_revision,
                },
            )
        })
        .collect();
    Ok(StoreContents { revision, entries })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Compare;

    /// A state file written by format version 1 (switchyard before the
    /// revisioned store): networks front (10.1.0.0/24 + fd00:1::/64) and
    /// back, containers web, api, off, h and side.
    const V1_STATE: &str = include_str!("testdata/state-v1.json");

    fn txn_put(key: &str, v: Value) -> Transaction {
        let mut t = Transaction::new();
        t.put(key, v);
        t
    }

    fn commit(s: &mut FileStore, t: &Transaction) -> Revision {
        match s.commit(t).unwrap() {
            CommitOutcome::Applied { revision } => revision,
            CommitOutcome::Conflict(c) => panic!("unexpected conflict: {c}"),
        }
    }

    /// A directory whose state.json is gone but whose state.json.prev holds
    /// one container and `networks` networks, each its own commit (so
    /// .prev is at revision `networks + 1`).
    fn dir_with_only_prev(networks: usize) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut s = FileStore::open(dir.path()).unwrap();
            commit(&mut s, &txn_put("local/h/sandboxes/c1", json!("web")));
            for i in 0..networks {
                commit(&mut s, &txn_put(&format!("networks/n{i}"), json!(i)));
            }
            // The last commit moves all of the above to .prev.
            commit(&mut s, &txn_put("last", json!(true)));
        }
        fs::remove_file(dir.path().join(STATE_FILE)).unwrap();
        dir
    }

    #[test]
    fn commit_then_reopen_restores_every_key() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut s = FileStore::open(dir.path()).unwrap();
            commit(&mut s, &txn_put("networks/a", json!({"name": "a"})));
            commit(&mut s, &txn_put("networks/b", json!({"name": "b"})));
            let mut t = Transaction::new();
            t.delete("networks/a");
            commit(&mut s, &t);
        }
        let mut s = FileStore::open(dir.path()).unwrap();
        let snap = s.load().unwrap();
        assert_eq!(snap.entries.len(), 1);
        assert_eq!(snap.value("networks/b"), Some(&json!({"name": "b"})));
    }

    #[test]
    fn revisions_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut s = FileStore::open(dir.path()).unwrap();
            commit(&mut s, &txn_put("a", json!(1)));
            commit(&mut s, &txn_put("b", json!(1)));
            commit(&mut s, &txn_put("a", json!(2)));
        }
        let mut s = FileStore::open(dir.path()).unwrap();
        let c = s.load().unwrap();
        assert_eq!(c.revision, 3);
        assert_eq!(
            c.entries["a"],
            Entry {
                value: json!(2),
                create_revision: 1,
                mod_revision: 3
            }
        );
        assert_eq!(c.entries["b"].mod_revision, 2);
        assert_eq!(commit(&mut s, &txn_put("c", json!(1))), 4);
    }

    #[test]
    fn a_failed_compare_leaves_the_file_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = FileStore::open(dir.path()).unwrap();
        commit(&mut s, &txn_put("a", json!(1)));
        let before = fs::read(dir.path().join(STATE_FILE)).unwrap();
        let mut t = txn_put("b", json!(1));
        t.require(Compare::Missing { key: "a".into() });
        let CommitOutcome::Conflict(conflict) = s.commit(&t).unwrap() else {
            panic!("a exists, so the compare must fail");
        };
        assert_eq!(
            conflict.to_string(),
            "key a was expected not to exist, but it was last written at revision 1"
        );
        assert_eq!(fs::read(dir.path().join(STATE_FILE)).unwrap(), before);
        assert!(!dir.path().join("state.json.prev").exists());
    }

    #[test]
    fn the_change_feed_starts_at_the_revision_loaded() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut s = FileStore::open(dir.path()).unwrap();
            commit(&mut s, &txn_put("a", json!(1)));
            commit(&mut s, &txn_put("a", json!(2)));
        }
        let mut s = FileStore::open(dir.path()).unwrap();
        assert!(s.changes_since(2).unwrap().events.is_empty());
        commit(&mut s, &txn_put("b", json!(1)));
        let ch = s.changes_since(2).unwrap();
        assert_eq!((ch.revision, ch.events.len()), (3, 1));
        let err = s.changes_since(1).unwrap_err();
        assert!(err.to_string().contains("reload the whole state"), "{err}");
    }

    #[test]
    fn second_open_of_the_same_dir_is_refused_and_names_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let _first = FileStore::open(dir.path()).unwrap();
        let err = FileStore::open(dir.path()).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, StoreError::Locked { .. }), "{msg}");
        assert!(
            msg.contains(&format!("pid {}", std::process::id())),
            "{msg}"
        );
    }

    #[test]
    fn torn_state_file_is_reported_not_reset() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut s = FileStore::open(dir.path()).unwrap();
            commit(&mut s, &txn_put("k", json!(1)));
            commit(&mut s, &txn_put("k2", json!(2)));
        }
        let path = dir.path().join(STATE_FILE);
        let bytes = fs::read(&path).unwrap();
        fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
        let err = FileStore::open(dir.path()).unwrap_err();
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
        assert!(err.to_string().contains("state.json.prev"), "{err}");
        assert!(err.to_string().contains("--recover-from-prev"), "{err}");
        // The torn file is left for the user; nothing was overwritten.
        assert_eq!(fs::read(&path).unwrap().len(), bytes.len() / 2);
    }

    #[test]
    fn edited_state_file_fails_the_checksum() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut s = FileStore::open(dir.path()).unwrap();
            commit(&mut s, &txn_put("k", json!("hello")));
        }
        let path = dir.path().join(STATE_FILE);
        let text = fs::read_to_string(&path).unwrap().replace("hello", "other");
        fs::write(&path, text).unwrap();
        let err = FileStore::open(dir.path()).unwrap_err();
        assert!(err.to_string().contains("checksum mismatch"), "{err}");
    }

    #[test]
    fn previous_good_state_is_kept_beside_the_current_one() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = FileStore::open(dir.path()).unwrap();
        commit(&mut s, &txn_put("k", json!(1)));
        commit(&mut s, &txn_put("k", json!(2)));
        let Ok(prev) = decode(&fs::read(dir.path().join("state.json.prev")).unwrap()) else {
            panic!("state.json.prev must decode");
        };
        assert_eq!(prev.value("k"), Some(&json!(1)));
    }

    #[test]
    fn leftover_temp_file_from_a_crash_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut s = FileStore::open(dir.path()).unwrap();
            commit(&mut s, &txn_put("k", json!(1)));
        }
        fs::write(dir.path().join("state.json.tmp"), b"{ half a docu").unwrap();
        let mut s = FileStore::open(dir.path()).unwrap();
        assert_eq!(s.load().unwrap().value("k"), Some(&json!(1)));
        assert!(!dir.path().join("state.json.tmp").exists());
    }

    #[test]
    fn a_first_commit_that_died_before_its_rename_starts_empty() {
        // No state.json and no .prev: nothing was ever committed.
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("state.json.tmp"), b"{ half a docu").unwrap();
        let mut s = FileStore::open(dir.path()).unwrap();
        assert_eq!(s.load().unwrap(), StoreContents::default());
    }

    #[test]
    fn newer_format_version_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join(STATE_FILE),
            r#"{"format":"switchyard-state","version":99,"checksum":"0","objects":{}}"#,
        )
        .unwrap();
        let err = FileStore::open(dir.path()).unwrap_err();
        assert!(
            matches!(err, StoreError::UnsupportedVersion { found: 99, .. }),
            "{err}"
        );
    }

    #[test]
    fn version_1_state_file_loads_with_every_key_at_revision_1() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(STATE_FILE), V1_STATE).unwrap();
        let mut s = FileStore::open(dir.path()).unwrap();
        let c = s.load().unwrap();
        let v1: Value = serde_json::from_str(V1_STATE).unwrap();
        let v1_objects = v1["objects"].as_object().unwrap();
        assert_eq!(c.revision, 1);
        assert_eq!(c.entries.len(), v1_objects.len());
        for (k, v) in v1_objects {
            assert_eq!(
                c.entries[k],
                Entry {
                    value: v.clone(),
                    create_revision: 1,
                    mod_revision: 1
                },
                "{k}"
            );
        }
    }

    #[test]
    fn version_1_state_is_rewritten_as_version_2_and_kept_as_prev() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(STATE_FILE), V1_STATE).unwrap();
        {
            let mut s = FileStore::open(dir.path()).unwrap();
            assert_eq!(commit(&mut s, &txn_put("meta", json!({"schema": 2}))), 2);
        }
        let doc: Value =
            serde_json::from_slice(&fs::read(dir.path().join(STATE_FILE)).unwrap()).unwrap();
        assert_eq!(doc["version"], json!(2));
        assert_eq!(doc["revision"], json!(2));
        assert_eq!(
            fs::read_to_string(dir.path().join("state.json.prev")).unwrap(),
            V1_STATE
        );
        let mut s = FileStore::open(dir.path()).unwrap();
        assert_eq!(s.load().unwrap().entries["meta"].mod_revision, 2);
    }

    #[test]
    fn missing_state_file_with_a_prev_is_refused_with_recovery_advice() {
        let dir = dir_with_only_prev(3);
        let prev = dir.path().join("state.json.prev");
        let prev_bytes = fs::read(&prev).unwrap();
        let err = FileStore::open(dir.path()).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, StoreError::StateMissing { .. }), "{msg}");
        assert!(
            msg.contains("state.json is missing but ")
                && msg.contains("state.json.prev exists (written at ")
                && msg.contains(
                    " UTC, 3 networks, 1 container); start with --recover-from-prev \
                     to use it, or move it away to start empty"
                ),
            "{msg}"
        );
        // Nothing was written: the previous state is still there.
        assert!(!dir.path().join(STATE_FILE).exists());
        assert_eq!(fs::read(&prev).unwrap(), prev_bytes);
    }

    #[test]
    fn unreadable_state_file_with_a_prev_is_refused_with_recovery_advice() {
        let dir = dir_with_only_prev(1);
        fs::create_dir(dir.path().join(STATE_FILE)).unwrap();
        let msg = FileStore::open(dir.path()).unwrap_err().to_string();
        assert!(msg.contains("state.json is unreadable ("), "{msg}");
        assert!(msg.contains("--recover-from-prev"), "{msg}");
    }

    #[test]
    fn missing_state_file_with_a_damaged_prev_says_nothing_can_be_recovered() {
        let dir = dir_with_only_prev(1);
        fs::write(dir.path().join("state.json.prev"), b"{ torn").unwrap();
        let msg = FileStore::open(dir.path()).unwrap_err().to_string();
        assert!(
            msg.contains("state.json.prev exists and is damaged too (not valid JSON")
                && msg.contains(
                    "nothing can be recovered automatically; move it away to start empty"
                ),
            "{msg}"
        );
    }

    #[test]
    fn recover_from_prev_loads_the_previous_state_and_makes_it_current() {
        let dir = dir_with_only_prev(2);
        let mut s = FileStore::open_with(dir.path(), Recovery::FromPrev).unwrap();
        let c = s.load().unwrap();
        assert_eq!(c.value("networks/n1"), Some(&json!(1)));
        assert_eq!(c.revision, 3, "the state of .prev: before the last commit");
        assert_eq!(c.value("last"), None);
        drop(s);
        // Recovered for good: a plain open works from now on.
        let mut s = FileStore::open(dir.path()).unwrap();
        assert_eq!(s.load().unwrap(), c);
    }

    #[test]
    fn recover_from_prev_keeps_a_damaged_state_file_aside() {
        let dir = dir_with_only_prev(2);
        fs::write(dir.path().join(STATE_FILE), b"{ torn").unwrap();
        fs::write(dir.path().join("state.json.damaged"), b"older evidence").unwrap();
        let mut s = FileStore::open_with(dir.path(), Recovery::FromPrev).unwrap();
        assert_eq!(s.load().unwrap().value("networks/n1"), Some(&json!(1)));
        assert_eq!(
            fs::read(dir.path().join("state.json.damaged.2")).unwrap(),
            b"{ torn"
        );
        assert_eq!(
            fs::read(dir.path().join("state.json.damaged")).unwrap(),
            b"older evidence"
        );
    }

    #[test]
    fn prev_is_never_replaced_by_a_state_that_was_not_good() {
        let dir = dir_with_only_prev(2);
        let prev = dir.path().join("state.json.prev");
        let recovered = decode(&fs::read(&prev).unwrap()).ok().unwrap();
        fs::write(dir.path().join(STATE_FILE), b"{ torn").unwrap();
        let prev_state = || match decode(&fs::read(&prev).unwrap()) {
            Ok(c) => c,
            Err(_) => panic!("state.json.prev must stay a good state"),
        };
        let mut s = FileStore::open_with(dir.path(), Recovery::FromPrev).unwrap();
        assert_eq!(prev_state(), recovered, "recovery leaves .prev as it was");
        commit(&mut s, &txn_put("networks/new", json!(1)));
        // .prev now holds the good current state before this commit (the
        // recovered one), never the torn file.
        assert_eq!(prev_state(), recovered);
    }

    #[test]
    fn recover_from_prev_without_a_prev_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(STATE_FILE), b"{ torn").unwrap();
        let err = FileStore::open_with(dir.path(), Recovery::FromPrev).unwrap_err();
        assert!(matches!(err, StoreError::RecoveryFailed { .. }), "{err}");
        assert!(err.to_string().contains("does not exist"), "{err}");
        assert_eq!(fs::read(dir.path().join(STATE_FILE)).unwrap(), b"{ torn");
    }

    #[test]
    fn recover_from_prev_with_an_intact_state_file_uses_the_state_file() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut s = FileStore::open(dir.path()).unwrap();
            commit(&mut s, &txn_put("k", json!(1)));
            commit(&mut s, &txn_put("k", json!(2)));
        }
        let mut s = FileStore::open_with(dir.path(), Recovery::FromPrev).unwrap();
        assert_eq!(s.load().unwrap().value("k"), Some(&json!(2)));
    }

    #[test]
    fn utc_timestamps_follow_the_gregorian_calendar() {
        assert_eq!(utc_timestamp(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc_timestamp(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc_timestamp(1_735_787_045), "2025-01-02 03:04:05 UTC");
    }
}
