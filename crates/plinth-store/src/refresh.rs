//! Applying a location's refresh: batches of files written as they are
//! read, all inside one transaction.
//!
//! The reader hands over a batch of files at a time; each batch is written
//! at once, so a refresh holds one batch in memory however large the
//! location, and the reading of the next batch overlaps the writing of this
//! one. Nothing is visible before the commit: readers see the location
//! before or after the refresh, never between.
//!
//! Whether an entity is new, updated, moved between files of the location
//! or in conflict depends on every file of the refresh; the rules below
//! give the same answers as applying all files at once:
//! - the first definition in the walk's order wins (later ones are ignored);
//! - an entity held by another location, or by an unchanged file of this
//!   one, stays there: a conflict;
//! - an entity held by a file of this location read (or gone) in this
//!   refresh moves to its new file, keeping its uid;
//! - an entity held by a file the walk has not reached yet waits until the
//!   end, when that file is known to be unchanged (a conflict) or not (a
//!   move);
//! - entities of files read whole or gone that no file defines any more
//!   are removed (or kept as orphans) at the end.

use std::collections::{HashMap, HashSet};

use serde_json::{Value, json};
use sqlx::Row;

use crate::conn::{Conn, WriteTx, on_conn};

use crate::dialect::{Dialect, sql};
use crate::write::{
    CHUNK, IndexWriter, Param, Phases, bump_version, delete_entities, insert_rows, new_etag,
    orphan_entities,
};
use crate::{
    FileUpdate, Lease, NewEntity, OrphanPolicy, RefreshOutcome, RefreshSummary, Store, StoreError,
    Unchanged, now,
};

/// Entities changed by one refresh above which PostgreSQL's statistics are
/// refreshed at once.
const ANALYZE_AFTER: usize = 5_000;

impl Store {
    /// Applies a refresh of one location at once: `files` hold what
    /// changed, `unchanged` the files that are still there as they were;
    /// every other file the location had is gone, and its entities with it.
    /// The same as one [`RefreshWriter::write`] and its
    /// [`RefreshWriter::finish`].
    pub async fn apply_refresh(
        &self,
        location_id: &str,
        files: &[FileUpdate],
        unchanged: &[Unchanged],
        outcome: &RefreshOutcome,
        orphans: OrphanPolicy,
        lease: Option<&Lease>,
    ) -> Result<RefreshSummary, StoreError> {
        let mut writer = self.refresh_writer(location_id, orphans, lease);
        if !matches!(outcome, RefreshOutcome::Failed(_)) {
            writer.write(files, unchanged).await?;
        }
        writer.finish(outcome).await
    }

    /// Starts a refresh of one location, written batch by batch (see the
    /// module's documentation). Dropping the writer before
    /// [`RefreshWriter::finish`] leaves the store as it was.
    pub fn refresh_writer(
        &self,
        location_id: &str,
        orphans: OrphanPolicy,
        lease: Option<&Lease>,
    ) -> RefreshWriter<'_> {
        RefreshWriter {
            store: self,
            location_id: location_id.to_owned(),
            orphans,
            lease: lease.cloned(),
            tx: None,
            state: State::default(),
            audit: None,
            failed: false,
        }
    }
}

/// The audit entry of a refresh, made from what it changed.
pub type RefreshAudit = Box<dyn FnOnce(&RefreshSummary) -> crate::AuditEntry + Send>;

/// A refresh in progress; see [`Store::refresh_writer`].
pub struct RefreshWriter<'s> {
    store: &'s Store,
    location_id: String,
    orphans: OrphanPolicy,
    lease: Option<Lease>,
    /// Opened by the first batch with a changed file, so that reading an
    /// unchanged location never holds the write turn.
    tx: Option<WriteTx>,
    /// Written in the refresh's own transaction, when someone asked for it.
    audit: Option<RefreshAudit>,
    state: State,
    /// A batch failed part-way: its transaction is gone, and nothing of
    /// this refresh may be committed after it.
    failed: bool,
}

/// An entity row as the refresh needs it.
struct Existing {
    id: i64,
    file: String,
    body: String,
    generation: i64,
    orphan: bool,
}

/// A definition whose entity is held by a file of this location the walk
/// has not reached yet.
struct Pending {
    entity: NewEntity,
    file: String,
    held: Existing,
}

#[derive(Default)]
struct State {
    summary: RefreshSummary,
    phases: Phases,
    /// Whether the location held any entity when the refresh began; if
    /// not, nothing can be removed.
    held_any: bool,
    /// Whether the store held no entity when the refresh began. Writers
    /// take turns, so until the commit every entity is this refresh's
    /// (and in `keep`).
    store_was_empty: bool,
    /// Orphans of the location: a definition brings one back.
    orphans: HashMap<String, Existing>,
    /// Every entity defined so far (the first definition wins).
    keep: HashSet<String>,
    /// Files read in this refresh.
    read: HashSet<String>,
    /// Files read whole: entities they no longer define are removed.
    replaced: Vec<String>,
    /// Files unchanged, with a newer description to store.
    unchanged: HashMap<String, Option<String>>,
    pending: Vec<Pending>,
    /// Whether anything was written (answers changed).
    wrote: bool,
    index: IndexWriter,
    /// Only the files written are read; every other file of the location
    /// stays as it is (see [`RefreshWriter::files_only`]).
    files_only: bool,
}

impl State {
    /// Whether `file` of the location is known to hold what it held.
    fn unchanged(&self, file: &str) -> bool {
        self.unchanged.contains_key(file) || (self.files_only && !self.read.contains(file))
    }
}

/// What one batch changes, worked out before anything is written.
#[derive(Default)]
struct Changes<'a> {
    /// `[id, file, etag, generation, body]`.
    updates: Vec<Value>,
    rewritten: Vec<(i64, &'a NewEntity)>,
    inserts: Vec<(&'a NewEntity, &'a str)>,
    /// Entities defined again as they were: their problems are cleared.
    cleared: Vec<i64>,
    /// `[ref, file]` of definitions that lost to another holder.
    conflicts: Vec<Value>,
}

impl RefreshWriter<'_> {
    /// Writes one batch: `files` read with changes, `unchanged` still
    /// there as they were. Batches come in the order of the walk.
    pub async fn write(
        &mut self,
        files: &[FileUpdate],
        unchanged: &[Unchanged],
    ) -> Result<(), StoreError> {
        self.check_not_failed()?;
        for u in unchanged {
            self.state.unchanged.insert(u.path.clone(), u.stat.clone());
        }
        if files.is_empty() {
            return Ok(());
        }
        // The time since the last batch was spent waiting for this one.
        self.state.phases.lap("waiting");
        self.open().await?;
        let d = self.store.dialect;
        let (Some(tx), st) = (self.tx.as_mut(), &mut self.state) else {
            unreachable!("opened above")
        };
        let written = write_batch(&mut tx.conn(), d, &self.location_id, files, st).await;
        if written.is_err() {
            // Rolled back now: what the batch wrote before its error (rows
            // of earlier statements, and the earlier rows of a failed
            // `INSERT OR FAIL`) must not reach a commit.
            self.tx = None;
            self.failed = true;
        }
        written
    }

    fn check_not_failed(&self) -> Result<(), StoreError> {
        if self.failed {
            return Err(StoreError::RefreshFailed(self.location_id.clone()));
        }
        Ok(())
    }

    /// Records the refresh in the audit log, in its own transaction.
    pub fn audited(mut self, audit: RefreshAudit) -> Self {
        self.audit = Some(audit);
        self
    }

    /// A refresh of some files of the location only, as Backstage refreshes
    /// one entity: the files written are read, every other file is taken
    /// as unchanged (an entity one of them holds stays there), nothing is
    /// gone, and the location's own refresh record is left as it was. A
    /// caller must not use it for a file whose Location targets changed.
    /// An entity such a file gives up while an unread file of the location
    /// also defines it comes back from that file at the location's next
    /// whole refresh (that file lost a conflict, so it is read again then).
    pub fn files_only(mut self) -> Self {
        self.state.files_only = true;
        self
    }

    /// Ends the refresh: files the location had that no batch named are
    /// gone, entities no file defines any more are removed, the location's
    /// status is recorded and everything is committed. With a lease, it
    /// fails with [`StoreError::LeaseLost`] unless the lease is still held,
    /// and the commit ends the job.
    /// After a failed [`RefreshWriter::write`] it fails with
    /// [`StoreError::RefreshFailed`] and commits nothing.
    pub async fn finish(mut self, outcome: &RefreshOutcome) -> Result<RefreshSummary, StoreError> {
        self.check_not_failed()?;
        self.open().await?;
        let d = self.store.dialect;
        let location_id = self.location_id.as_str();
        let (Some(tx), st) = (self.tx.as_mut(), &mut self.state) else {
            unreachable!("opened above")
        };
        let tx = &mut tx.conn();
        if !matches!(outcome, RefreshOutcome::Failed(_)) {
            finish_files(tx, d, location_id, self.orphans, st).await?;
        }
        // Status and findings change answers too, so any file read counts.
        let changed = st.wrote || st.summary.removed + st.summary.orphaned > 0;
        if changed {
            bump_version(tx).await?;
        }
        let (status, message) = match outcome {
            RefreshOutcome::Ok => ("ok", None),
            RefreshOutcome::Problems(m) => ("problems", Some(m.as_str())),
            RefreshOutcome::Failed(m) => ("failed", Some(m.as_str())),
        };
        if !st.files_only {
            on_conn!(tx, |tx| {
                sqlx::query(sql!(d, "UPDATE locations SET refreshed_at = ?, refresh_status = ?, refresh_message = ? WHERE id = ?"))
                .bind(now())
                .bind(status)
                .bind(message)
                .bind(location_id)
                .execute(&mut **tx)
                .await?;
            });
        }
        if let Some(lease) = &self.lease {
            crate::jobs::finish_job(tx, d, location_id, lease).await?;
        }
        if let Some(audit) = self.audit.take() {
            crate::access::append(tx, d, &audit(&st.summary)).await?;
        }
        if d == Dialect::Sqlite {
            // The connection waits for the next write with a reader's
            // cache, not the writer's 64 MB.
            on_conn!(tx, |tx| {
                sqlx::query(crate::READER_CACHE).execute(&mut **tx).await?;
            });
        }
        self.tx.take().expect("opened above").commit().await?;
        self.store.written();
        if changed {
            self.store.entities_changed();
        }
        st.phases.lap("commit");
        tracing::debug!(location_id, phases = %st.phases, "refresh written");
        let summary = std::mem::take(&mut st.summary);
        let changed = summary.added + summary.updated + summary.removed + summary.orphaned;
        if d == Dialect::Postgres && changed >= ANALYZE_AFTER {
            // Fresh statistics and visibility map before the first reads:
            // without them the planner guesses (a first ingest's lookups
            // scanned tables) and index-only scans visit the heap.
            // Autovacuum keeps both fresh after smaller writes.
            sqlx::query(
                "VACUUM (ANALYZE) location_files, entities, relations, search, search_tokens",
            )
            .execute(&self.store.pool)
            .await?;
        }
        Ok(summary)
    }

    /// Takes the write turn, checks the lease, and reads what the location
    /// holds that any batch may need.
    async fn open(&mut self) -> Result<(), StoreError> {
        if self.tx.is_some() {
            return Ok(());
        }
        let d = self.store.dialect;
        let mut tx = self.store.begin_refresh_write().await?;
        let conn = &mut tx.conn();
        if d == Dialect::Sqlite {
            on_conn!(conn, |c| {
                sqlx::query(crate::WRITER_CACHE).execute(&mut **c).await?;
            });
        }
        // A scheduled refresh writes only while its replica holds the job.
        if let Some(lease) = &self.lease {
            crate::jobs::check_lease(conn, d, &self.location_id, lease).await?;
        }
        let held: i64 = on_conn!(conn, |c| {
            sqlx::query_scalar(sql!(
                d,
                "SELECT count(*) FROM (SELECT 1 FROM entities WHERE location_id = ? LIMIT 1) AS t"
            ))
            .bind(&self.location_id)
            .fetch_one(&mut **c)
            .await?
        });
        self.state.held_any = held > 0;
        // Into an empty store (a first ingest), no other location can hold
        // an entity this refresh defines: each batch skips asking.
        self.state.store_was_empty = !self.state.held_any
            && on_conn!(conn, |c| {
                sqlx::query_scalar::<_, i64>(
                    "SELECT count(*) FROM (SELECT 1 FROM entities LIMIT 1) AS t",
                )
                .fetch_one(&mut **c)
                .await?
            }) == 0;
        self.state.orphans = on_conn!(conn, |c| {
            sqlx::query(sql!(
                d,
                "SELECT id, ref, file, body, generation, orphan FROM entities WHERE location_id = ? AND orphan = 1"
            ))
            .bind(&self.location_id)
            .fetch_all(&mut **c)
            .await?
            .iter()
            .map(existing)
            .collect()
        });
        self.tx = Some(tx);
        self.state.phases.lap("open");
        Ok(())
    }
}

fn existing<R: Row>(r: &R) -> (String, Existing)
where
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'a> &'a str: sqlx::ColumnIndex<R>,
{
    (
        r.get::<String, _>("ref"),
        Existing {
            id: r.get("id"),
            file: r.get("file"),
            body: r.try_get("body").unwrap_or_default(),
            generation: r.get("generation"),
            orphan: r.get::<i64, _>("orphan") == 1,
        },
    )
}

async fn write_batch(
    tx: &mut Conn<'_>,
    d: Dialect,
    location_id: &str,
    files: &[FileUpdate],
    st: &mut State,
) -> Result<(), StoreError> {
    st.wrote = true;
    for f in files {
        st.read.insert(f.path.clone());
        if !f.incomplete {
            st.replaced.push(f.path.clone());
        }
    }
    // What these files held: only those entities can change here.
    let paths: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
    let mut mine: HashMap<String, Existing> = HashMap::new();
    // A location that held nothing (a first read) holds nothing in them.
    for chunk in paths.chunks(CHUNK).filter(|_| st.held_any) {
        on_conn!(tx, |tx| {
            let rows = sqlx::query(sql!(
                d,
                "SELECT id, ref, file, body, generation, orphan FROM entities
                 WHERE location_id = ? AND file IN (SELECT value FROM json_each(?))"
            ))
            .bind(location_id)
            .bind(Value::from(chunk.to_vec()).to_string())
            .fetch_all(&mut **tx)
            .await?;
            mine.extend(rows.iter().map(existing));
        });
    }
    // Where the other entities defined here are held now, if anywhere.
    let unknown: Vec<&str> = files
        .iter()
        .flat_map(|f| f.entities.iter())
        .map(NewEntity::ref_text)
        .filter(|r| !mine.contains_key(*r) && !st.orphans.contains_key(*r) && !st.keep.contains(*r))
        .collect();
    let mut held: HashMap<String, (String, Existing)> = HashMap::new();
    for chunk in unknown.chunks(CHUNK).filter(|_| !st.store_was_empty) {
        on_conn!(tx, |tx| {
            let rows = sqlx::query(sql!(
                d,
                "SELECT id, ref, file, generation, orphan, location_id FROM entities
                 WHERE ref IN (SELECT value FROM json_each(?))"
            ))
            .bind(Value::from(chunk.to_vec()).to_string())
            .fetch_all(&mut **tx)
            .await?;
            held.extend(rows.iter().map(|r| {
                let (key, e) = existing(r);
                (key, (r.get::<String, _>("location_id"), e))
            }));
        });
    }
    st.phases.lap("read_existing");

    let mut changes = Changes::default();
    for file in files {
        for e in &file.entities {
            let r = e.ref_text();
            if !st.keep.insert(r.to_owned()) {
                continue; // defined twice in this location: the first wins
            }
            let moved;
            let old = match (mine.get(r), st.orphans.get(r), held.remove(r)) {
                (Some(old), ..) | (None, Some(old), _) => Some(old),
                (None, None, Some((location, _))) if location != location_id => {
                    changes.conflicts.push(json!([r, file.path]));
                    continue;
                }
                // Its file was read in an earlier batch: a move.
                (None, None, Some((_, old))) if st.read.contains(&old.file) => {
                    moved = old;
                    Some(&moved)
                }
                (None, None, Some((_, old))) if st.unchanged(&old.file) => {
                    changes.conflicts.push(json!([r, file.path]));
                    continue;
                }
                // Its file is not reached yet: decided at the end.
                (None, None, Some((_, old))) => {
                    st.pending.push(Pending {
                        entity: e.clone(),
                        file: file.path.clone(),
                        held: old,
                    });
                    continue;
                }
                (None, None, None) => None,
            };
            changes.classify(e, &file.path, old, &mut st.summary);
        }
        for (r, _) in &file.invalid {
            st.keep.insert(r.to_string());
        }
    }
    st.summary.conflicts += changes.conflicts.len();
    apply_changes(tx, d, location_id, &changes, st).await?;

    // The last valid version of an invalid entity stays, with its problems.
    for file in files {
        for (r, items) in &file.invalid {
            on_conn!(tx, |tx| {
                sqlx::query(sql!(
                    d,
                    "UPDATE entities SET status = ? WHERE ref = ? AND location_id = ?"
                ))
                .bind(Value::from(items.clone()).to_string())
                .bind(r.to_string())
                .bind(location_id)
                .execute(&mut **tx)
                .await?;
            });
        }
    }
    // Conflicts are recomputed for every file read now.
    for chunk in paths.chunks(CHUNK) {
        on_conn!(tx, |tx| {
            sqlx::query(sql!(d, "DELETE FROM conflicts WHERE location_id = ? AND file IN (SELECT value FROM json_each(?))"))
            .bind(location_id)
            .bind(Value::from(chunk.to_vec()).to_string())
            .execute(&mut **tx)
            .await?;
        });
    }
    insert_conflicts(tx, d, location_id, &changes.conflicts).await?;
    // A file that lost a conflict is read again next time, whatever its
    // content: the other definition may be gone by then.
    let conflicted: HashSet<&str> = changes
        .conflicts
        .iter()
        .filter_map(|c| c[1].as_str())
        .collect();
    let file_rows: Vec<Value> = files
        .iter()
        .map(|f| {
            let conflicted = conflicted.contains(f.path.as_str());
            json!([
                f.path,
                if conflicted { "" } else { f.hash.as_str() },
                Value::from(f.findings.clone()).to_string(),
                Value::from(f.targets.clone()).to_string(),
                if conflicted { "" } else { f.stat.as_str() },
            ])
        })
        .collect();
    for chunk in file_rows.chunks(CHUNK) {
        on_conn!(tx, |tx| {
            sqlx::query(
            sql!(d, "INSERT INTO location_files (location_id, path, hash, findings, targets, stat)
             SELECT ?, u.value ->> 0, u.value ->> 1, u.value ->> 2, u.value ->> 3, u.value ->> 4 FROM json_each(?) AS u WHERE true
             ON CONFLICT (location_id, path) DO UPDATE SET hash = excluded.hash, findings = excluded.findings,
                 targets = excluded.targets, stat = excluded.stat"),
        )
        .bind(location_id)
        .bind(Value::from(chunk.to_vec()).to_string())
        .execute(&mut **tx)
        .await?;
        });
    }
    st.phases.lap("write_files");
    Ok(())
}

impl<'a> Changes<'a> {
    /// A definition that wins: inserted, updated, or the same as stored.
    fn classify(
        &mut self,
        e: &'a NewEntity,
        file: &'a str,
        old: Option<&Existing>,
        summary: &mut RefreshSummary,
    ) {
        match old {
            Some(old) if !old.orphan && old.body == e.body() && old.file == file => {
                self.cleared.push(old.id);
                summary.unchanged += 1;
            }
            Some(old) => {
                self.updates.push(json!([
                    old.id,
                    file,
                    new_etag(),
                    old.generation + 1,
                    e.body()
                ]));
                self.rewritten.push((old.id, e));
                summary.updated += 1;
            }
            None => {
                self.inserts.push((e, file));
                summary.added += 1;
            }
        }
    }
}

/// Writes a batch's entity rows and their index rows.
async fn apply_changes(
    tx: &mut Conn<'_>,
    d: Dialect,
    location_id: &str,
    changes: &Changes<'_>,
    st: &mut State,
) -> Result<(), StoreError> {
    let now = now();
    for chunk in changes.updates.chunks(CHUNK) {
        on_conn!(tx, |tx| {
            sqlx::query(sql!(
                d,
                "UPDATE entities SET file = u.value ->> 1, etag = u.value ->> 2,
                    generation = CAST(u.value ->> 3 AS BIGINT), body = u.value ->> 4, status = '[]',
                    orphan = 0, updated_at = ?
             FROM json_each(?) AS u WHERE entities.id = CAST(u.value ->> 0 AS BIGINT)"
            ))
            .bind(&now)
            .bind(Value::from(chunk.to_vec()).to_string())
            .execute(&mut **tx)
            .await?;
        });
    }
    for chunk in changes.cleared.chunks(CHUNK) {
        on_conn!(tx, |tx| {
            sqlx::query(sql!(d, "UPDATE entities SET status = '[]' WHERE status <> '[]' AND id IN (SELECT CAST(value AS BIGINT) FROM json_each(?))"))
            .bind(Value::from(chunk.to_vec()).to_string())
            .execute(&mut **tx)
            .await?;
        });
    }
    // Ids are given here rather than returned by the insert: the write
    // transaction is the only writer, and the rows go in without a lookup.
    let first_id: i64 = on_conn!(tx, |tx| {
        sqlx::query_scalar(sql!(d, "SELECT coalesce(max(id), 0) + 1 FROM entities"))
            .fetch_one(&mut **tx)
            .await?
    });
    let texts: Vec<[String; 2]> = changes
        .inserts
        .iter()
        // Time-ordered uids (UUID version 7) go in at the end of the uid
        // index instead of anywhere in it: a quarter less time for the rows.
        .map(|_| [uuid::Uuid::now_v7().to_string(), new_etag()])
        .collect();
    let rows: Vec<[Param; 13]> = changes
        .inserts
        .iter()
        .zip(&texts)
        .zip(first_id..)
        .map(|(((e, file), [uid, etag]), id)| {
            let r = &e.entity_ref;
            [
                Param::Int(id),
                Param::Text(Some(uid)),
                Param::Text(Some(e.ref_text())),
                Param::Text(Some(r.kind())),
                Param::Text(Some(r.namespace())),
                Param::Text(Some(r.name())),
                Param::Text(Some(location_id)),
                Param::Text(Some(file)),
                Param::Text(Some(etag)),
                Param::Int(1),
                Param::Text(Some(e.body())),
                Param::Text(Some("[]")),
                Param::Text(Some(&now)),
            ]
        })
        .collect();
    insert_rows(
        tx,
        d,
        "entities (id, uid, ref, kind, namespace, name, location_id, file, etag, generation, body, status, updated_at)",
        &rows,
    )
    .await?;
    st.phases.lap("write_entities");
    let mut rewritten = changes.rewritten.clone();
    rewritten.extend((first_id..).zip(changes.inserts.iter().map(|(e, _)| *e)));
    // Rows from `first_id` on are new: they have no index rows to clear.
    st.index
        .write(tx, d, &rewritten, first_id, &mut st.phases)
        .await
}

async fn insert_conflicts(
    tx: &mut Conn<'_>,
    d: Dialect,
    location_id: &str,
    conflicts: &[Value],
) -> Result<(), StoreError> {
    for chunk in conflicts.chunks(CHUNK) {
        on_conn!(tx, |tx| {
            sqlx::query(
            sql!(d, "INSERT INTO conflicts (ref, location_id, file) SELECT u.value ->> 0, ?, u.value ->> 1 FROM json_each(?) AS u
             WHERE true ON CONFLICT (ref, location_id) DO UPDATE SET file = excluded.file"),
        )
        .bind(location_id)
        .bind(Value::from(chunk.to_vec()).to_string())
        .execute(&mut **tx)
        .await?;
        });
    }
    Ok(())
}

/// The end of a refresh that read its location: unchanged files, gone
/// files, definitions that waited for their holder's file, removals.
async fn finish_files(
    tx: &mut Conn<'_>,
    d: Dialect,
    location_id: &str,
    orphans: OrphanPolicy,
    st: &mut State,
) -> Result<(), StoreError> {
    // Files the location had that no batch named are gone. Every file read
    // has its row by now, and every unchanged file had one: when the rows
    // number as many as the files named, none is gone (and the paths of a
    // large location need not be read back).
    // A refresh of some files only has none gone (and a count of a large
    // location's files costs more than the rest of it).
    let rows: i64 = if st.files_only {
        0
    } else {
        on_conn!(tx, |tx| sqlx::query_scalar(sql!(
            d,
            "SELECT count(*) FROM location_files WHERE location_id = ?"
        ))
        .bind(location_id)
        .fetch_one(&mut **tx)
        .await?)
    };
    let gone: Vec<String> = if st.files_only || rows as usize == st.read.len() + st.unchanged.len()
    {
        Vec::new()
    } else {
        let known: Vec<String> = on_conn!(tx, |tx| {
            sqlx::query_scalar(sql!(
                d,
                "SELECT path FROM location_files WHERE location_id = ?"
            ))
            .bind(location_id)
            .fetch_all(&mut **tx)
            .await?
        });
        known
            .into_iter()
            .filter(|p| !st.read.contains(p) && !st.unchanged.contains_key(p))
            .collect()
    };
    // Entities of files that did not change are unchanged too: counted
    // file by file, or, when most files are unchanged, as all the
    // location's entities but those of the files read or gone (orphans,
    // which may name files the location no longer has, apart).
    if !st.unchanged.is_empty() {
        let by_file = st.files_only || st.unchanged.len() <= st.read.len() + gone.len();
        let (files, sign, orphan): (Vec<&str>, i64, &str) = if by_file {
            let files = st.unchanged.keys().map(String::as_str).collect();
            (files, 1, "")
        } else {
            let all: i64 = on_conn!(tx, |tx| {
                sqlx::query_scalar(sql!(
                    d,
                    "SELECT count(*) FROM entities WHERE location_id = ? AND orphan = 0"
                ))
                .bind(location_id)
                .fetch_one(&mut **tx)
                .await?
            });
            let orphans = st
                .orphans
                .iter()
                .filter(|(r, o)| st.unchanged.contains_key(&o.file) && !st.keep.contains(*r))
                .count();
            st.summary.unchanged += all as usize + orphans;
            let files = st.read.iter().chain(&gone).map(String::as_str).collect();
            (files, -1, " AND orphan = 0")
        };
        for chunk in files.chunks(CHUNK) {
            let n: i64 = on_conn!(tx, |tx| {
                sqlx::query_scalar(d.sql(format!(
                "SELECT COUNT(*) FROM entities WHERE location_id = ? AND file IN (SELECT value FROM json_each(?)){orphan}"
            )))
            .bind(location_id)
            .bind(Value::from(chunk.to_vec()).to_string())
            .fetch_one(&mut **tx)
            .await?
            });
            st.summary.unchanged = (st.summary.unchanged as i64 + sign * n) as usize;
        }
    }

    // Definitions whose entity a file of this location held: a move when
    // that file was read or is gone, a conflict when it is unchanged.
    let pending = std::mem::take(&mut st.pending);
    let mut changes = Changes::default();
    for p in &pending {
        if st.unchanged(&p.held.file) {
            changes.conflicts.push(json!([p.entity.ref_text(), p.file]));
        } else {
            changes.classify(&p.entity, &p.file, Some(&p.held), &mut st.summary);
        }
    }
    if !pending.is_empty() {
        apply_changes(tx, d, location_id, &changes, st).await?;
        insert_conflicts(tx, d, location_id, &changes.conflicts).await?;
        let files: Vec<&str> = changes
            .conflicts
            .iter()
            .filter_map(|c| c[1].as_str())
            .collect();
        for chunk in files.chunks(CHUNK) {
            on_conn!(tx, |tx| {
                sqlx::query(sql!(d, "UPDATE location_files SET hash = '', stat = '' WHERE location_id = ? AND path IN (SELECT value FROM json_each(?))"))
                .bind(location_id)
                .bind(Value::from(chunk.to_vec()).to_string())
                .execute(&mut **tx)
                .await?;
            });
        }
    }
    st.summary.conflicts += changes.conflicts.len();

    // Entities of files read whole or gone that no file defines any more.
    if st.held_any {
        let replaced: Vec<&str> = st
            .replaced
            .iter()
            .chain(&gone)
            .map(String::as_str)
            .collect();
        let body = match orphans {
            OrphanPolicy::Delete => "'' AS body",
            OrphanPolicy::Keep => "body",
        };
        let mut removed: Vec<(i64, String)> = Vec::new();
        for chunk in replaced.chunks(CHUNK) {
            on_conn!(tx, |tx| {
                let rows = sqlx::query(d.sql(format!(
                    "SELECT id, ref, {body} FROM entities
                     WHERE location_id = ? AND orphan = 0 AND file IN (SELECT value FROM json_each(?))"
                )))
                .bind(location_id)
                .bind(Value::from(chunk.to_vec()).to_string())
                .fetch_all(&mut **tx)
                .await?;
                removed.extend(
                    rows.iter()
                        .filter(|r| !st.keep.contains(r.get::<&str, _>("ref")))
                        .map(|r| (r.get("id"), r.get("body"))),
                );
            });
        }
        match orphans {
            OrphanPolicy::Delete => {
                st.summary.removed = removed.len();
                let ids: Vec<i64> = removed.iter().map(|(id, _)| *id).collect();
                delete_entities(tx, d, &ids).await?;
            }
            OrphanPolicy::Keep => {
                st.summary.orphaned = removed.len();
                let rows: Vec<(i64, &str)> =
                    removed.iter().map(|(id, b)| (*id, b.as_str())).collect();
                orphan_entities(tx, d, &rows, &now()).await?;
            }
        }
        st.wrote |= !removed.is_empty();
    }
    st.phases.lap("remove");

    for chunk in gone.chunks(CHUNK) {
        let chunk = Value::from(chunk.to_vec()).to_string();
        for statement in [
            "DELETE FROM conflicts WHERE location_id = ? AND file IN (SELECT value FROM json_each(?))",
            "DELETE FROM location_files WHERE location_id = ? AND path IN (SELECT value FROM json_each(?))",
        ] {
            on_conn!(tx, |tx| {
                sqlx::query(d.sql(statement.to_owned()))
                    .bind(location_id)
                    .bind(&chunk)
                    .execute(&mut **tx)
                    .await?;
            });
        }
    }
    st.wrote |= !gone.is_empty();
    // Files read again and found the same keep their newer description.
    let restat: Vec<Value> = st
        .unchanged
        .iter()
        .filter_map(|(path, stat)| stat.as_ref().map(|s| json!([path, s])))
        .collect();
    for chunk in restat.chunks(CHUNK) {
        on_conn!(tx, |tx| {
            sqlx::query(sql!(
                d,
                "UPDATE location_files SET stat = u.value ->> 1 FROM json_each(?) AS u
             WHERE location_files.location_id = ? AND location_files.path = u.value ->> 0"
            ))
            .bind(Value::from(chunk.to_vec()).to_string())
            .bind(location_id)
            .execute(&mut **tx)
            .await?;
        });
    }
    st.index.finish(tx).await?;
    st.phases.lap("build_indexes");
    Ok(())
}
