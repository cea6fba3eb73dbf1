//! A new SQLite store's first load, written outside the WAL.
//!
//! In WAL mode every page of a large first ingest goes to the WAL, pages
//! the writer's cache spills are read back from it, and a checkpoint then
//! copies it all into the database file. A store that nobody reads yet
//! needs none of that: the first load writes a side file beside the store
//! with a rollback journal and no syncs, and [`FirstLoad::install`] puts
//! it in place whole, after which the store opens in WAL mode as always.
//! A crash before that leaves no store (the next start loads again), never
//! a half-written one.

use std::fs::File;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use crate::{Store, StoreError};

/// Pragmas of the side file's connections: a rollback journal (on an empty
/// database it holds almost nothing) and no syncs, since a side file that
/// was not installed is thrown away; otherwise as every SQLite connection.
const SIDE_PRAGMAS: &str = concat!(
    "PRAGMA journal_mode = DELETE; PRAGMA synchronous = OFF;",
    crate::sqlite_session!()
);

/// A store being loaded in a side file; see the module documentation.
#[derive(Debug)]
pub struct FirstLoad {
    store: Store,
    /// Where the store goes.
    path: PathBuf,
    /// Where it is written until then.
    side: PathBuf,
    /// Held until the side file is installed or dropped: one first load at
    /// a time per store.
    _lock: File,
}

impl FirstLoad {
    /// A first load for the SQLite store at `path`, when there is no store
    /// there yet and no other process is loading one; else `None`, and the
    /// caller opens the store as usual.
    pub async fn begin(path: &Path) -> Result<Option<FirstLoad>, StoreError> {
        let side = suffixed(path, ".loading");
        let lock_path = suffixed(path, ".loading.lock");
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| file_error(&lock_path, e))?;
        if lock.try_lock().is_err() || path.exists() {
            return Ok(None);
        }
        // What a load that did not finish left: a new side file must not
        // meet an old journal.
        remove_side_files(&side)?;
        let mut store = Store::open_sqlite_with(&side, SIDE_PRAGMAS).await?;
        store.checkpoints = None;
        Ok(Some(FirstLoad {
            store,
            path: path.to_owned(),
            side,
            _lock: lock,
        }))
    }

    /// The store in the side file, to write the first load through.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Closes the side store and puts it in place. `false` when a store
    /// appeared at the path meanwhile (another process made one): that one
    /// is kept and the load is dropped.
    pub async fn install(self) -> Result<bool, StoreError> {
        self.store.close().await;
        // Written without syncs: made durable once, whole, before it is
        // the store.
        File::open(&self.side)
            .and_then(|f| f.sync_all())
            .map_err(|e| file_error(&self.side, e))?;
        // A hard link never replaces a store made meanwhile; a rename would.
        let installed = match std::fs::hard_link(&self.side, &self.path) {
            Ok(()) => true,
            Err(e) if e.kind() == ErrorKind::AlreadyExists => false,
            // A file system without hard links: the rename can only race
            // with a store made in the instant since this check.
            Err(_) if !self.path.exists() => {
                std::fs::rename(&self.side, &self.path).map_err(|e| file_error(&self.path, e))?;
                true
            }
            Err(e) => return Err(file_error(&self.path, e)),
        };
        match std::fs::remove_file(&self.side) {
            Err(e) if e.kind() != ErrorKind::NotFound => return Err(file_error(&self.side, e)),
            _ => {}
        }
        if let Some(dir) = self.path.parent() {
            // The new name survives a crash of the machine.
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| file_error(dir, e))?;
        }
        Ok(installed)
    }

    /// Closes the side store and removes it: nothing of the load stays.
    pub async fn discard(self) {
        self.store.close().await;
        let _ = remove_side_files(&self.side);
    }
}

/// Removes the side file and its journal, journal first (a side file left
/// without it is only a database; a journal left alone would be rolled
/// into the next side file).
fn remove_side_files(side: &Path) -> Result<(), StoreError> {
    for file in [suffixed(side, "-journal"), side.to_owned()] {
        match std::fs::remove_file(&file) {
            Err(e) if e.kind() != ErrorKind::NotFound => return Err(file_error(&file, e)),
            _ => {}
        }
    }
    Ok(())
}

fn suffixed(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

fn file_error(path: &Path, e: std::io::Error) -> StoreError {
    StoreError::File {
        path: path.display().to_string(),
        source: e,
    }
}
