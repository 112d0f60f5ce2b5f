//! The subject directory: subject id → home region and jurisdiction, in an embedded, crash-safe
//! store (redb: a single file, ACID transactions with copy-on-write B-trees, no server, pure
//! Rust). One process opens a file once; a reload that names the same file shares the open
//! store.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};

use domicile_policy::Country;
use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

const SUBJECTS: TableDefinition<&str, &[u8]> = TableDefinition::new("subjects");

/// The longest subject id accepted.
pub const MAX_SUBJECT_ID: usize = 256;

/// How an entry came to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntrySource {
    /// Set through the admin API.
    Admin,
    /// Stored when the subject's first write was forwarded: where that data went.
    FirstWrite,
}

/// One subject's home.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectoryEntry {
    pub home_region: String,
    pub jurisdiction: Country,
    pub source: EntrySource,
    /// When the entry was written, seconds since the epoch.
    pub updated: u64,
    /// For first writes: the decision that stored the data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision_id: Option<String>,
}

/// A directory operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    #[error("subject directory {path}: {message}")]
    Store { path: String, message: String },
    #[error("a subject id must be 1 to {MAX_SUBJECT_ID} bytes")]
    BadId,
}

/// An open directory store.
pub struct Directory {
    db: redb::Database,
    path: PathBuf,
}

impl std::fmt::Debug for Directory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Directory")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

fn open_stores() -> &'static Mutex<HashMap<PathBuf, Weak<Directory>>> {
    static OPEN: std::sync::OnceLock<Mutex<HashMap<PathBuf, Weak<Directory>>>> =
        std::sync::OnceLock::new();
    OPEN.get_or_init(|| Mutex::new(HashMap::new()))
}

fn check_id(id: &str) -> Result<(), DirectoryError> {
    if id.is_empty() || id.len() > MAX_SUBJECT_ID {
        Err(DirectoryError::BadId)
    } else {
        Ok(())
    }
}

impl Directory {
    /// Opens (creating if needed) the store at `path`, or shares the one this process has open.
    pub fn open(path: &Path) -> Result<Arc<Directory>, DirectoryError> {
        let key = path.to_path_buf();
        let mut open = open_stores().lock().map_err(|_| DirectoryError::Store {
            path: path.display().to_string(),
            message: "the store registry is poisoned".into(),
        })?;
        if let Some(d) = open.get(&key).and_then(Weak::upgrade) {
            return Ok(d);
        }
        let err = |e: &dyn std::fmt::Display| DirectoryError::Store {
            path: path.display().to_string(),
            message: e.to_string(),
        };
        if let Some(parent) = path.parent()
            && !parent.as_os_str().is_empty()
        {
            std::fs::create_dir_all(parent).map_err(|e| err(&e))?;
        }
        let db = redb::Database::create(path).map_err(|e| err(&e))?;
        // The table exists from the start, so reads never meet a missing table.
        let txn = db.begin_write().map_err(|e| err(&e))?;
        txn.open_table(SUBJECTS).map_err(|e| err(&e))?;
        txn.commit().map_err(|e| err(&e))?;
        let d = Arc::new(Directory {
            db,
            path: key.clone(),
        });
        open.retain(|_, w| w.strong_count() > 0);
        open.insert(key, Arc::downgrade(&d));
        Ok(d)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, e: impl std::fmt::Display) -> DirectoryError {
        DirectoryError::Store {
            path: self.path.display().to_string(),
            message: e.to_string(),
        }
    }

    /// The subject's entry.
    pub fn get(&self, id: &str) -> Result<Option<DirectoryEntry>, DirectoryError> {
        check_id(id)?;
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let table = txn.open_table(SUBJECTS).map_err(|e| self.err(e))?;
        let Some(v) = table.get(id).map_err(|e| self.err(e))? else {
            return Ok(None);
        };
        serde_json::from_slice(v.value())
            .map(Some)
            .map_err(|e| self.err(format!("an unreadable entry: {e}")))
    }

    /// Sets the subject's entry; returns the previous one.
    pub fn set(
        &self,
        id: &str,
        entry: &DirectoryEntry,
    ) -> Result<Option<DirectoryEntry>, DirectoryError> {
        self.write(id, entry, true).map(|(prev, _)| prev)
    }

    /// Stores the entry only if the subject has none; true when it was stored.
    pub fn insert_new(&self, id: &str, entry: &DirectoryEntry) -> Result<bool, DirectoryError> {
        self.write(id, entry, false).map(|(_, stored)| stored)
    }

    fn write(
        &self,
        id: &str,
        entry: &DirectoryEntry,
        replace: bool,
    ) -> Result<(Option<DirectoryEntry>, bool), DirectoryError> {
        check_id(id)?;
        let bytes = serde_json::to_vec(entry).map_err(|e| self.err(e))?;
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        let (prev, stored) = {
            let mut table = txn.open_table(SUBJECTS).map_err(|e| self.err(e))?;
            let prev: Option<DirectoryEntry> = match table.get(id).map_err(|e| self.err(e))? {
                Some(v) => serde_json::from_slice(v.value()).ok(),
                None => None,
            };
            if prev.is_some() && !replace {
                (prev, false)
            } else {
                table
                    .insert(id, bytes.as_slice())
                    .map_err(|e| self.err(e))?;
                (prev, true)
            }
        };
        if stored {
            txn.commit().map_err(|e| self.err(e))?;
        } else {
            txn.abort().map_err(|e| self.err(e))?;
        }
        Ok((prev, stored))
    }

    /// Deletes the subject's entry; true when there was one.
    pub fn delete(&self, id: &str) -> Result<bool, DirectoryError> {
        check_id(id)?;
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        let existed = {
            let mut table = txn.open_table(SUBJECTS).map_err(|e| self.err(e))?;
            table.remove(id).map_err(|e| self.err(e))?.is_some()
        };
        txn.commit().map_err(|e| self.err(e))?;
        Ok(existed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_survive_reopening_and_first_writes_do_not_overwrite() {
        let dir = std::env::temp_dir().join(format!("domicile-dir-{}", std::process::id()));
        let path = dir.join("subjects.redb");
        let _ = std::fs::remove_file(&path);
        let e = |region: &str, c: &str, source| DirectoryEntry {
            home_region: region.into(),
            jurisdiction: Country::parse(c).unwrap(),
            source,
            updated: 1,
            decision_id: None,
        };
        {
            let d = Directory::open(&path).unwrap();
            assert!(d.get("u-1").unwrap().is_none());
            assert!(
                d.insert_new("u-1", &e("eu-central", "DE", EntrySource::FirstWrite))
                    .unwrap()
            );
            assert!(
                !d.insert_new("u-1", &e("us-east", "US", EntrySource::FirstWrite))
                    .unwrap()
            );
            let prev = d
                .set("u-2", &e("us-east", "US", EntrySource::Admin))
                .unwrap();
            assert!(prev.is_none());
            assert!(Arc::ptr_eq(&d, &Directory::open(&path).unwrap()));
        }
        let d = Directory::open(&path).unwrap();
        assert_eq!(d.get("u-1").unwrap().unwrap().home_region, "eu-central");
        assert_eq!(d.get("u-2").unwrap().unwrap().source, EntrySource::Admin);
        assert!(d.delete("u-2").unwrap());
        assert!(!d.delete("u-2").unwrap());
        assert!(matches!(d.get(""), Err(DirectoryError::BadId)));
        drop(d);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
