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
//! Only one daemon may use a state directory: `lock` is held with an
//! exclusive advisory lock (`flock`) for the store's lifetime and records
//! the holder's pid so the refusal can say who holds it.

use super::{Snapshot, Store, StoreError, Transaction};
use serde_json::{json, Value};
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

const STATE_FILE: &str = "state.json";
const FORMAT: &str = "switchyard-state";
const VERSION: u64 = 1;

/// A crash-safe store in a directory on local disk.
#[derive(Debug)]
pub struct FileStore {
    dir: PathBuf,
    cache: Snapshot,
    _lock: File,
}

impl FileStore {
    /// Opens (creating if needed) the state directory and takes its lock.
    /// Fails with [`StoreError::Locked`] if another process holds it.
    pub fn open(dir: impl AsRef<Path>) -> Result<FileStore, StoreError> {
        let dir = dir.as_ref().to_path_buf();
        create_private_dir(&dir)?;
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
                    dir,
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
        let mut store = FileStore {
            dir,
            cache: Snapshot::new(),
            _lock: lock,
        };
        store.cache = store.read_state()?;
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

    fn read_state(&self) -> Result<Snapshot, StoreError> {
        let path = self.state_path();
        let tmp = path.with_extension("json.tmp");
        if tmp.exists() {
            // A commit died before its rename: the old state.json is intact.
            tracing::warn!(path = %tmp.display(), "removing a half-written state file left by a crash");
            let _ = fs::remove_file(&tmp);
        }
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Snapshot::new()),
            Err(source) => return Err(io("read", &path, source)),
        };
        decode(&path, &bytes)
    }

    fn write_state(&self, snapshot: &Snapshot) -> Result<(), StoreError> {
        let path = self.state_path();
        let tmp = path.with_extension("json.tmp");
        let prev = path.with_extension("json.prev");
        let bytes = encode(snapshot);
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
        if path.exists() {
            let _ = fs::remove_file(&prev);
            fs::hard_link(&path, &prev).map_err(|source| io("link", &prev, source))?;
        }
        fs::rename(&tmp, &path).map_err(|source| io("rename", &path, source))?;
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
    fn load(&mut self) -> Result<Snapshot, StoreError> {
        Ok(self.cache.clone())
    }

    fn commit(&mut self, txn: &Transaction) -> Result<(), StoreError> {
        if txn.is_empty() {
            return Ok(());
        }
        let mut next = self.cache.clone();
        txn.apply_to(&mut next);
        self.write_state(&next)?;
        self.cache = next;
        Ok(())
    }

    fn describe(&self) -> String {
        format!("file:{}", self.state_path().display())
    }
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

/// FNV-1a, 64 bit: detects torn and edited files (not an integrity MAC).
fn checksum(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

fn encode(snapshot: &Snapshot) -> Vec<u8> {
    let objects = serde_json::to_string(snapshot).expect("JSON values always serialise");
    let doc = json!({
        "format": FORMAT,
        "version": VERSION,
        "checksum": format!("{:016x}", checksum(objects.as_bytes())),
        "objects": snapshot,
    });
    let mut out = serde_json::to_vec_pretty(&doc).expect("JSON values always serialise");
    out.push(b'\n');
    out
}

fn decode(path: &Path, bytes: &[u8]) -> Result<Snapshot, StoreError> {
    let corrupt = |detail: String| StoreError::Corrupt {
        path: path.to_path_buf(),
        detail,
        hint: format!(
            "The previous good state is kept in {prev}: to go back to it, \
             `mv {cur} {cur}.damaged && cp {prev} {cur}`; to start empty, move {cur} aside.",
            prev = path.with_extension("json.prev").display(),
            cur = path.display()
        ),
    };
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
        return Err(StoreError::UnsupportedVersion {
            path: path.to_path_buf(),
            found: version,
            supported: VERSION,
        });
    }
    let objects = doc
        .get("objects")
        .cloned()
        .ok_or_else(|| corrupt("missing objects".into()))?;
    let snapshot: Snapshot = serde_json::from_value(objects)
        .map_err(|e| corrupt(format!("objects is not a map: {e}")))?;
    let expected = doc
        .get("checksum")
        .and_then(Value::as_str)
        .ok_or_else(|| corrupt("missing checksum".into()))?;
    let actual = format!(
        "{:016x}",
        checksum(
            serde_json::to_string(&snapshot)
                .expect("JSON values always serialise")
                .as_bytes()
        )
    );
    if expected != actual {
        return Err(corrupt(format!(
            "checksum mismatch: file says {expected}, contents give {actual}"
        )));
    }
    Ok(snapshot)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn txn_put(key: &str, v: Value) -> Transaction {
        let mut t = Transaction::new();
        t.put(key, v);
        t
    }

    #[test]
    fn commit_then_reopen_restores_every_key() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut s = FileStore::open(dir.path()).unwrap();
            s.commit(&txn_put("networks/a", json!({"name": "a"})))
                .unwrap();
            s.commit(&txn_put("networks/b", json!({"name": "b"})))
                .unwrap();
            let mut t = Transaction::new();
            t.delete("networks/a");
            s.commit(&t).unwrap();
        }
        let mut s = FileStore::open(dir.path()).unwrap();
        let snap = s.load().unwrap();
        assert_eq!(snap.len(), 1);
        assert_eq!(snap["networks/b"], json!({"name": "b"}));
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
            s.commit(&txn_put("k", json!(1))).unwrap();
            s.commit(&txn_put("k2", json!(2))).unwrap();
        }
        let path = dir.path().join(STATE_FILE);
        let bytes = fs::read(&path).unwrap();
        fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
        let err = FileStore::open(dir.path()).unwrap_err();
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
        assert!(err.to_string().contains("state.json.prev"), "{err}");
        // The torn file is left for the user; nothing was overwritten.
        assert_eq!(fs::read(&path).unwrap().len(), bytes.len() / 2);
    }

    #[test]
    fn edited_state_file_fails_the_checksum() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut s = FileStore::open(dir.path()).unwrap();
            s.commit(&txn_put("k", json!("value"))).unwrap();
        }
        let path = dir.path().join(STATE_FILE);
        let text = fs::read_to_string(&path).unwrap().replace("value", "other");
        fs::write(&path, text).unwrap();
        let err = FileStore::open(dir.path()).unwrap_err();
        assert!(err.to_string().contains("checksum mismatch"), "{err}");
    }

    #[test]
    fn previous_good_state_is_kept_beside_the_current_one() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = FileStore::open(dir.path()).unwrap();
        s.commit(&txn_put("k", json!(1))).unwrap();
        s.commit(&txn_put("k", json!(2))).unwrap();
        let prev = fs::read(dir.path().join("state.json.prev")).unwrap();
        assert_eq!(decode(Path::new("p"), &prev).unwrap()["k"], json!(1));
    }

    #[test]
    fn leftover_temp_file_from_a_crash_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut s = FileStore::open(dir.path()).unwrap();
            s.commit(&txn_put("k", json!(1))).unwrap();
        }
        fs::write(dir.path().join("state.json.tmp"), b"{ half a docu").unwrap();
        let mut s = FileStore::open(dir.path()).unwrap();
        assert_eq!(s.load().unwrap()["k"], json!(1));
        assert!(!dir.path().join("state.json.tmp").exists());
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
}
