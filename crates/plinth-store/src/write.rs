//! Writes: locations, and applying a location's refresh in one transaction.

use std::collections::{HashMap, HashSet};

use serde::Serialize;
use serde_json::{Value, json};
use sqlx::{Any, Row, Transaction};

use crate::search::{SearchRow, search_rows, search_tokens};

use crate::dialect::{Dialect, sql};
use crate::{EntityRef, Lease, Location, Relation, Store, StoreError, now};

/// A valid entity read from a file, ready to store. Its stored text and
/// search rows are made by [`NewEntity::new`], on the reading thread, so that
/// a refresh prepares them on every core and the writer only writes.
#[derive(Debug, Clone)]
pub struct NewEntity {
    pub entity_ref: EntityRef,
    pub relations: Vec<Relation>,
    /// The document as stored: JSON text, with the annotations the catalog adds.
    body: String,
    /// Unique `(key, value)` rows, so that facets can count rows.
    search: Vec<SearchRow>,
    /// Words for the ranked search, with their weights.
    tokens: Vec<(String, i64)>,
}

impl NewEntity {
    pub fn new(entity_ref: EntityRef, body: &Value, relations: Vec<Relation>) -> NewEntity {
        let mut seen = HashSet::new();
        let search = search_rows(body)
            .into_iter()
            .filter(|(k, v, _)| seen.insert((k.clone(), v.clone())))
            .collect();
        NewEntity {
            entity_ref,
            relations,
            body: body.to_string(),
            search,
            tokens: search_tokens(body),
        }
    }

    /// The document as stored, JSON text.
    pub fn body(&self) -> &str {
        &self.body
    }
}

/// What one file of a location holds now.
#[derive(Debug, Clone, Default)]
pub struct FileUpdate {
    pub path: String,
    /// Content hash, compared on the next refresh to skip unchanged files.
    pub hash: String,
    /// The file system's description of the file when read (see
    /// [`KnownFile::stat`]); empty when it must be read next time.
    pub stat: String,
    pub entities: Vec<NewEntity>,
    /// Entities whose new version is invalid: the stored version stays, with
    /// these status items.
    pub invalid: Vec<(EntityRef, Vec<Value>)>,
    /// Some document could not be read at all: no entity of the file is
    /// removed, because it may be in that document.
    pub incomplete: bool,
    /// What was wrong in the file (JSON findings), shown on the location.
    pub findings: Vec<Value>,
    /// Files this file's Location entities point to.
    pub targets: Vec<String>,
}

/// A file of a location as last read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KnownFile {
    pub hash: String,
    /// Files its Location entities point to.
    pub targets: Vec<String>,
    /// Size, modification time and inode (with the reading configuration)
    /// when it was read: equal now means unchanged without reading it.
    pub stat: String,
}

/// A file still there as it was; `stat` is a newer description to keep
/// (its content was read and found the same).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unchanged {
    pub path: String,
    pub stat: Option<String>,
}

/// How a refresh ended, for the location's record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshOutcome {
    Ok,
    /// Read, with findings in some files.
    Problems(String),
    /// The location could not be read at all; nothing was changed.
    Failed(String),
}

/// What happens to entities their location no longer defines.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OrphanPolicy {
    /// Removed (Backstage's default since catalog-backend 3.0).
    #[default]
    Delete,
    /// Kept, marked with the annotation `backstage.io/orphan: "true"`, until
    /// deleted by uid or defined again.
    Keep,
}

/// What a refresh changed, in entities.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RefreshSummary {
    pub added: usize,
    pub updated: usize,
    pub unchanged: usize,
    pub removed: usize,
    /// Kept as orphans instead of removed.
    pub orphaned: usize,
    pub conflicts: usize,
}

impl Store {
    /// Registers a location. Fails when the same type and target exist.
    pub async fn add_location(&self, kind: &str, target: &str) -> Result<Location, StoreError> {
        let id = uuid::Uuid::new_v4().to_string();
        let created_at = now();
        let result = sqlx::query(sql!(
            self.dialect,
            "INSERT INTO locations (id, type, target, created_at) VALUES (?, ?, ?, ?)"
        ))
        .bind(&id)
        .bind(kind)
        .bind(target)
        .bind(&created_at)
        .execute(&self.pool)
        .await;
        self.written();
        match result {
            Ok(_) => Ok(Location {
                id,
                kind: kind.to_owned(),
                target: target.to_owned(),
                created_at,
                refresh: None,
            }),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                Err(StoreError::LocationExists(format!("{kind}:{target}")))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Changes a location's type and target. `None` when there is no such
    /// location; fails when another location has that type and target.
    /// Its entities stay until the next refresh reads the new target.
    pub async fn update_location(
        &self,
        id: &str,
        kind: &str,
        target: &str,
    ) -> Result<Option<Location>, StoreError> {
        let result = sqlx::query(sql!(
            self.dialect,
            "UPDATE locations SET type = ?, target = ? WHERE id = ?"
        ))
        .bind(kind)
        .bind(target)
        .bind(id)
        .execute(&self.pool)
        .await;
        self.written();
        match result {
            Ok(done) if done.rows_affected() == 0 => Ok(None),
            Ok(_) => self.location(id).await,
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                Err(StoreError::LocationExists(format!("{kind}:{target}")))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Removes a location and every entity it gave. Returns whether it existed.
    pub async fn delete_location(&self, id: &str) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        // Deleted explicitly rather than by cascade, so the large tables are
        // cleared through their indexes in a few statements.
        for sql in [
            "DELETE FROM relations WHERE origin_id IN (SELECT id FROM entities WHERE location_id = ?)",
            "DELETE FROM search WHERE entity_id IN (SELECT id FROM entities WHERE location_id = ?)",
            "DELETE FROM search_tokens WHERE entity_id IN (SELECT id FROM entities WHERE location_id = ?)",
            "DELETE FROM entities WHERE location_id = ?",
        ] {
            sqlx::query(self.dialect.sql(sql.to_owned()))
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        bump_version(&mut tx).await?;
        let gone = sqlx::query(sql!(self.dialect, "DELETE FROM locations WHERE id = ?"))
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            > 0;
        tx.commit().await?;
        self.written();
        Ok(gone)
    }

    /// The files last read for a location: path to content hash and targets.
    pub async fn location_files(
        &self,
        location_id: &str,
    ) -> Result<HashMap<String, KnownFile>, StoreError> {
        let rows = sqlx::query(sql!(
            self.dialect,
            "SELECT path, hash, targets, stat FROM location_files WHERE location_id = ?"
        ))
        .bind(location_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let targets: String = r.get("targets");
                let targets = serde_json::from_str(&targets)
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?;
                let file = KnownFile {
                    hash: r.get("hash"),
                    targets,
                    stat: r.get("stat"),
                };
                Ok((r.get("path"), file))
            })
            .collect()
    }

    /// Applies a refresh of one location: `files` hold what changed,
    /// `unchanged` the files that are still there as they were; every other
    /// file the location had is gone, and its entities with it. All in one
    /// transaction: readers see the location before or after, never between.
    /// The work is set-based (a fixed number of statements whatever the
    /// number of entities), which is what makes large refreshes fast. With
    /// a `lease`, it fails with [`StoreError::LeaseLost`] unless the lease
    /// is still held, and ends the job (see `jobs`).
    pub async fn apply_refresh(
        &self,
        location_id: &str,
        files: &[FileUpdate],
        unchanged: &[Unchanged],
        outcome: &RefreshOutcome,
        orphans: OrphanPolicy,
        lease: Option<&Lease>,
    ) -> Result<RefreshSummary, StoreError> {
        let mut tx = self.begin_write().await?;
        // A scheduled refresh writes only while its replica holds the job;
        // its commit ends the job.
        if let Some(lease) = lease {
            crate::jobs::check_lease(&mut tx, self.dialect, location_id, lease).await?;
        }
        let mut summary = RefreshSummary::default();
        if !matches!(outcome, RefreshOutcome::Failed(_)) {
            summary = apply_files(
                &mut tx,
                self.dialect,
                location_id,
                files,
                unchanged,
                orphans,
            )
            .await?;
        }
        // Status and findings change answers too, so any file read counts.
        if !files.is_empty() || summary.removed + summary.orphaned > 0 {
            bump_version(&mut tx).await?;
        }
        let (status, message) = match outcome {
            RefreshOutcome::Ok => ("ok", None),
            RefreshOutcome::Problems(m) => ("problems", Some(m.as_str())),
            RefreshOutcome::Failed(m) => ("failed", Some(m.as_str())),
        };
        sqlx::query(sql!(self.dialect, "UPDATE locations SET refreshed_at = ?, refresh_status = ?, refresh_message = ? WHERE id = ?"))
            .bind(now())
            .bind(status)
            .bind(message)
            .bind(location_id)
            .execute(&mut *tx)
            .await?;
        if let Some(lease) = lease {
            crate::jobs::finish_job(&mut tx, self.dialect, location_id, lease).await?;
        }
        tx.commit().await?;
        self.written();
        let changed = summary.added + summary.updated + summary.removed + summary.orphaned;
        if self.dialect == Dialect::Postgres && changed >= ANALYZE_AFTER {
            // Fresh statistics and visibility map before the first reads:
            // without them the planner guesses (a first ingest's lookups
            // scanned tables) and index-only scans visit the heap.
            // Autovacuum keeps both fresh after smaller writes.
            sqlx::query(
                "VACUUM (ANALYZE) location_files, entities, relations, search, search_tokens",
            )
            .execute(&self.pool)
            .await?;
        }
        Ok(summary)
    }
}

/// Entities changed by one refresh above which PostgreSQL's statistics are
/// refreshed at once.
const ANALYZE_AFTER: usize = 5_000;

pub(crate) async fn bump_version(tx: &mut Transaction<'static, Any>) -> Result<(), StoreError> {
    sqlx::query("UPDATE catalog_version SET version = version + 1 WHERE id = 1")
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Rows per statement when inserting through `json_each`: large enough to
/// amortise each round trip, small enough to keep each JSON text modest.
const CHUNK: usize = 5_000;

struct Existing {
    id: i64,
    file: String,
    body: String,
    generation: i64,
    orphan: bool,
}

async fn apply_files(
    tx: &mut Transaction<'static, Any>,
    d: Dialect,
    location_id: &str,
    files: &[FileUpdate],
    unchanged: &[Unchanged],
    orphans: OrphanPolicy,
) -> Result<RefreshSummary, StoreError> {
    let mut summary = RefreshSummary::default();
    let mut phases = Phases::default();
    // Entities of files that did not change are unchanged too.
    for chunk in unchanged.chunks(CHUNK) {
        let paths: Vec<&str> = chunk.iter().map(|u| u.path.as_str()).collect();
        let n: i64 = sqlx::query_scalar(
            sql!(d, "SELECT COUNT(*) FROM entities WHERE location_id = ? AND file IN (SELECT value FROM json_each(?))"),
        )
        .bind(location_id)
        .bind(Value::from(paths).to_string())
        .fetch_one(&mut **tx)
        .await?;
        summary.unchanged += n as usize;
    }
    let known: Vec<String> = sqlx::query_scalar(sql!(
        d,
        "SELECT path FROM location_files WHERE location_id = ?"
    ))
    .bind(location_id)
    .fetch_all(&mut **tx)
    .await?;
    let present: HashSet<&str> = files
        .iter()
        .map(|f| f.path.as_str())
        .chain(unchanged.iter().map(|u| u.path.as_str()))
        .collect();
    let gone: Vec<&String> = known
        .iter()
        .filter(|p| !present.contains(p.as_str()))
        .collect();
    // Files whose entities may be removed: gone ones, and changed ones that
    // were read whole.
    let replaced: HashSet<&str> = gone
        .iter()
        .map(|p| p.as_str())
        .chain(
            files
                .iter()
                .filter(|f| !f.incomplete)
                .map(|f| f.path.as_str()),
        )
        .collect();

    // What this location holds in the files read now or gone: only those
    // can change, so unchanged files cost nothing here.
    let touched: Vec<&str> = files
        .iter()
        .map(|f| f.path.as_str())
        .chain(gone.iter().map(|p| p.as_str()))
        .collect();
    let mut mine: HashMap<String, Existing> = HashMap::new();
    for chunk in touched.chunks(CHUNK) {
        let rows = sqlx::query(sql!(
            d,
            "SELECT id, ref, file, body, generation, orphan FROM entities
             WHERE location_id = ? AND (file IN (SELECT value FROM json_each(?)) OR orphan = 1)"
        ))
        .bind(location_id)
        .bind(Value::from(chunk.to_vec()).to_string())
        .fetch_all(&mut **tx)
        .await?;
        mine.extend(rows.iter().map(|r| {
            (
                r.get::<String, _>("ref"),
                Existing {
                    id: r.get("id"),
                    file: r.get("file"),
                    body: r.get("body"),
                    generation: r.get("generation"),
                    orphan: r.get::<i64, _>("orphan") == 1,
                },
            )
        }));
    }

    // Entities already held elsewhere stay there: by another location, or
    // by an unchanged file of this one. Either way it is a conflict.
    let new_refs: Vec<String> = files
        .iter()
        .flat_map(|f| f.entities.iter())
        .map(|e| e.entity_ref.to_string())
        .filter(|r| !mine.contains_key(r))
        .collect();
    let mut held_elsewhere = HashSet::new();
    for chunk in new_refs.chunks(CHUNK) {
        let held: Vec<String> = sqlx::query_scalar(sql!(
            d,
            "SELECT ref FROM entities WHERE ref IN (SELECT value FROM json_each(?))"
        ))
        .bind(Value::from(chunk.to_vec()).to_string())
        .fetch_all(&mut **tx)
        .await?;
        held_elsewhere.extend(held);
    }

    phases.lap("read_existing");
    let now = now();
    let mut keep: HashSet<String> = HashSet::new();
    let mut conflicts: Vec<Value> = Vec::new();
    let mut updates: Vec<Value> = Vec::new();
    let mut inserts: Vec<(&NewEntity, &str)> = Vec::new();
    let mut rewritten: Vec<(i64, &NewEntity)> = Vec::new();
    let mut cleared: Vec<i64> = Vec::new();
    for file in files {
        for e in &file.entities {
            let r = e.entity_ref.to_string();
            if !keep.insert(r.clone()) {
                continue; // defined twice in this location: the first wins
            }
            if held_elsewhere.contains(&r) {
                conflicts.push(json!([r, file.path]));
                summary.conflicts += 1;
                continue;
            }
            match mine.get(&r) {
                Some(old) if old.body == e.body && old.file == file.path => {
                    cleared.push(old.id);
                    summary.unchanged += 1;
                }
                Some(old) => {
                    updates.push(json!([
                        old.id,
                        file.path,
                        new_etag(),
                        old.generation + 1,
                        e.body
                    ]));
                    rewritten.push((old.id, e));
                    summary.updated += 1;
                }
                None => inserts.push((e, &file.path)),
            }
        }
        for (r, _) in &file.invalid {
            keep.insert(r.to_string());
        }
    }
    // Entities of incomplete or unchanged files stay whatever they hold.
    mine.retain(|r, e| !e.orphan && !keep.contains(r) && replaced.contains(e.file.as_str()));
    match orphans {
        OrphanPolicy::Delete => {
            let removed: Vec<i64> = mine.values().map(|e| e.id).collect();
            summary.removed = removed.len();
            delete_entities(tx, d, &removed).await?;
        }
        OrphanPolicy::Keep => {
            let removed: Vec<(i64, &str)> =
                mine.values().map(|e| (e.id, e.body.as_str())).collect();
            summary.orphaned = removed.len();
            orphan_entities(tx, d, &removed, &now).await?;
        }
    }

    phases.lap("remove");
    for chunk in updates.chunks(CHUNK) {
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
    }
    for chunk in cleared.chunks(CHUNK) {
        sqlx::query(sql!(d, "UPDATE entities SET status = '[]' WHERE status <> '[]' AND id IN (SELECT CAST(value AS BIGINT) FROM json_each(?))"))
            .bind(Value::from(chunk.to_vec()).to_string())
            .execute(&mut **tx)
            .await?;
    }
    // Ids are given here rather than returned by the insert: the write
    // transaction is the only writer, and the rows go in without a lookup.
    let first_id: i64 =
        sqlx::query_scalar(sql!(d, "SELECT coalesce(max(id), 0) + 1 FROM entities"))
            .fetch_one(&mut **tx)
            .await?;
    let texts: Vec<[String; 6]> = inserts
        .iter()
        .map(|(e, _)| {
            let r = &e.entity_ref;
            [
                uuid::Uuid::new_v4().to_string(),
                r.to_string(),
                r.kind().to_owned(),
                r.namespace().to_owned(),
                r.name().to_owned(),
                new_etag(),
            ]
        })
        .collect();
    let rows: Vec<[Param; 13]> = inserts
        .iter()
        .zip(&texts)
        .zip(first_id..)
        .map(|(((e, file), [uid, r, kind, namespace, name, etag]), id)| {
            [
                Param::Int(id),
                Param::Text(Some(uid)),
                Param::Text(Some(r)),
                Param::Text(Some(kind)),
                Param::Text(Some(namespace)),
                Param::Text(Some(name)),
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
    rewritten.extend((first_id..).zip(inserts.iter().map(|(e, _)| *e)));
    summary.added += inserts.len();
    phases.lap("write_entities");
    write_index(tx, d, &rewritten, &mut phases).await?;

    for file in files {
        for (r, items) in &file.invalid {
            sqlx::query(sql!(
                d,
                "UPDATE entities SET status = ? WHERE ref = ? AND location_id = ?"
            ))
            .bind(Value::from(items.clone()).to_string())
            .bind(r.to_string())
            .bind(location_id)
            .execute(&mut **tx)
            .await?;
        }
    }

    phases.lap("build_indexes");
    // Conflicts are recomputed for every file read now.
    let reread: Vec<&str> = files
        .iter()
        .map(|f| f.path.as_str())
        .chain(gone.iter().map(|p| p.as_str()))
        .collect();
    for chunk in reread.chunks(CHUNK) {
        sqlx::query(sql!(d, "DELETE FROM conflicts WHERE location_id = ? AND file IN (SELECT value FROM json_each(?))"))
            .bind(location_id)
            .bind(Value::from(chunk.to_vec()).to_string())
            .execute(&mut **tx)
            .await?;
    }
    for chunk in conflicts.chunks(CHUNK) {
        sqlx::query(
            sql!(d, "INSERT INTO conflicts (ref, location_id, file) SELECT u.value ->> 0, ?, u.value ->> 1 FROM json_each(?) AS u
             WHERE true ON CONFLICT (ref, location_id) DO UPDATE SET file = excluded.file"),
        )
        .bind(location_id)
        .bind(Value::from(chunk.to_vec()).to_string())
        .execute(&mut **tx)
        .await?;
    }

    for chunk in gone.chunks(CHUNK) {
        sqlx::query(sql!(d, "DELETE FROM location_files WHERE location_id = ? AND path IN (SELECT value FROM json_each(?))"))
            .bind(location_id)
            .bind(Value::from(chunk.iter().map(|p| p.as_str()).collect::<Vec<_>>()).to_string())
            .execute(&mut **tx)
            .await?;
    }
    // A file that lost a conflict is read again next time, whatever its
    // content: the other definition may be gone by then.
    let conflicted: HashSet<&str> = conflicts.iter().filter_map(|c| c[1].as_str()).collect();
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
    }
    // Files read again and found the same keep their newer description.
    let restat: Vec<Value> = unchanged
        .iter()
        .filter_map(|u| u.stat.as_ref().map(|s| json!([u.path, s])))
        .collect();
    for chunk in restat.chunks(CHUNK) {
        sqlx::query(sql!(
            d,
            "UPDATE location_files SET stat = u.value ->> 1 FROM json_each(?) AS u
             WHERE location_files.location_id = ? AND location_files.path = u.value ->> 0"
        ))
        .bind(Value::from(chunk.to_vec()).to_string())
        .bind(location_id)
        .execute(&mut **tx)
        .await?;
    }
    phases.lap("write_files");
    tracing::debug!(location_id, phases = %phases, "refresh written");
    Ok(summary)
}

/// Wall time of a refresh's steps, logged at debug level: where a slow
/// refresh spends its time, without a profiler.
pub(crate) struct Phases {
    last: std::time::Instant,
    laps: Vec<(&'static str, std::time::Duration)>,
}

impl Default for Phases {
    fn default() -> Phases {
        Phases {
            last: std::time::Instant::now(),
            laps: Vec::new(),
        }
    }
}

impl Phases {
    fn lap(&mut self, name: &'static str) {
        let now = std::time::Instant::now();
        self.laps.push((name, now - self.last));
        self.last = now;
    }
}

impl std::fmt::Display for Phases {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, (name, d)) in self.laps.iter().enumerate() {
            let sep = if i == 0 { "" } else { " " };
            write!(f, "{sep}{name}={}ms", d.as_millis())?;
        }
        Ok(())
    }
}

/// The indexes of the two large tables, as the migrations create them. A
/// refresh that writes more rows than the tables hold drops them and builds
/// them again after its inserts, inside its transaction: sorting once is
/// several times faster than keeping B-trees in order row by row, and
/// readers never see the difference (they read the last commit).
pub(crate) const BULK_INDEXES: [(&str, &str); 6] = [
    (
        "search_key_value",
        "CREATE INDEX search_key_value ON search (key, value, entity_id)",
    ),
    (
        "search_entity",
        "CREATE INDEX search_entity ON search (entity_id)",
    ),
    (
        "search_tokens_entity",
        "CREATE INDEX search_tokens_entity ON search_tokens (entity_id)",
    ),
    (
        "relations_origin",
        "CREATE INDEX relations_origin ON relations (origin_id)",
    ),
    (
        "relations_source",
        "CREATE INDEX relations_source ON relations (source_ref)",
    ),
    (
        "relations_target",
        "CREATE INDEX relations_target ON relations (type_key, target_ref)",
    ),
];

/// About how many rows the indexed tables hold (rowids only grow).
const HELD_ROWS: &str = "SELECT coalesce((SELECT max(rowid) FROM search), 0)
    + coalesce((SELECT max(rowid) FROM relations), 0)
    + (SELECT count(*) FROM search_tokens)";

/// Below this many new rows, index maintenance row by row is cheap enough.
const BULK_MIN_ROWS: usize = 50_000;

/// Replaces the relations and search rows of rewritten entities.
pub(crate) async fn write_index(
    tx: &mut Transaction<'static, Any>,
    d: Dialect,
    rewritten: &[(i64, &NewEntity)],
    phases: &mut Phases,
) -> Result<(), StoreError> {
    for chunk in rewritten.chunks(CHUNK) {
        let ids = Value::from(chunk.iter().map(|(id, _)| *id).collect::<Vec<_>>()).to_string();
        sqlx::query(sql!(d, "DELETE FROM relations WHERE origin_id IN (SELECT CAST(value AS BIGINT) FROM json_each(?))"))
            .bind(&ids)
            .execute(&mut **tx)
            .await?;
        sqlx::query(sql!(
            d,
            "DELETE FROM search WHERE entity_id IN (SELECT CAST(value AS BIGINT) FROM json_each(?))"
        ))
        .bind(&ids)
        .execute(&mut **tx)
        .await?;
        sqlx::query(
            sql!(d, "DELETE FROM search_tokens WHERE entity_id IN (SELECT CAST(value AS BIGINT) FROM json_each(?))"),
        )
        .bind(&ids)
        .execute(&mut **tx)
        .await?;
    }
    phases.lap("clear_index");
    let relation_rows: Vec<(i64, String, &str, String, String)> = rewritten
        .iter()
        .flat_map(|(id, e)| {
            e.relations.iter().map(move |r| {
                let t = r.relation.as_str();
                (
                    *id,
                    r.source.to_string(),
                    t,
                    t.to_lowercase(),
                    r.target.to_string(),
                )
            })
        })
        .collect();
    let relations: Vec<[Param; 5]> = relation_rows
        .iter()
        .map(|(id, source, t, key, target)| {
            [
                Param::Int(*id),
                Param::Text(Some(source)),
                Param::Text(Some(t)),
                Param::Text(Some(key)),
                Param::Text(Some(target)),
            ]
        })
        .collect();
    let mut search: Vec<[Param; 4]> = Vec::new();
    let mut words: Vec<(&str, i64, i64)> = Vec::new();
    for (id, e) in rewritten {
        for (k, v, original) in &e.search {
            search.push([
                Param::Int(*id),
                Param::Text(Some(k)),
                Param::Text(v.as_deref()),
                Param::Text(original.as_deref()),
            ]);
        }
        words.extend(e.tokens.iter().map(|(t, w)| (t.as_str(), *id, *w)));
    }
    // In key order, so that a first ingest appends to the clustered table.
    words.sort_unstable();
    let tokens: Vec<[Param; 3]> = words
        .iter()
        .map(|(t, id, w)| [Param::Text(Some(t)), Param::Int(*id), Param::Int(*w)])
        .collect();
    phases.lap("index_rows");
    let rows = relations.len() + search.len() + tokens.len();
    // SQLite only: on PostgreSQL, dropping an index locks the table
    // against every reader on every replica until the commit.
    let bulk = d == Dialect::Sqlite && rows >= BULK_MIN_ROWS && {
        let held: i64 = sqlx::query_scalar(HELD_ROWS).fetch_one(&mut **tx).await?;
        rows > held as usize
    };
    if bulk {
        for (name, _) in BULK_INDEXES {
            sqlx::query(sqlx::AssertSqlSafe(format!("DROP INDEX {name}")))
                .execute(&mut **tx)
                .await?;
        }
    }
    insert_rows(
        tx,
        d,
        "relations (origin_id, source_ref, type, type_key, target_ref)",
        &relations,
    )
    .await?;
    phases.lap("insert_relations");
    insert_rows(
        tx,
        d,
        "search (entity_id, key, value, original_value)",
        &search,
    )
    .await?;
    phases.lap("insert_search");
    insert_rows(tx, d, "search_tokens (token, entity_id, weight)", &tokens).await?;
    phases.lap("insert_tokens");
    if bulk {
        for (_, create) in BULK_INDEXES {
            sqlx::query(create).execute(&mut **tx).await?;
        }
    }
    Ok(())
}

enum Param<'a> {
    Int(i64),
    Text(Option<&'a str>),
}

/// Inserts rows with multi-row `VALUES` statements, as many rows per
/// statement as SQLite's limit of bound parameters allows.
async fn insert_rows<const N: usize>(
    tx: &mut Transaction<'static, Any>,
    d: Dialect,
    table: &str,
    rows: &[[Param<'_>; N]],
) -> Result<(), StoreError> {
    const MAX_PARAMS: usize = 32_000;
    let row_sql = format!("({})", vec!["?"; N].join(", "));
    for chunk in rows.chunks(MAX_PARAMS / N) {
        let sql = format!(
            "INSERT INTO {table} VALUES {}",
            vec![row_sql.as_str(); chunk.len()].join(", ")
        );
        let mut q = sqlx::query(d.sql(sql));
        for row in chunk {
            for p in row {
                q = match p {
                    Param::Int(i) => q.bind(*i),
                    Param::Text(t) => q.bind(*t),
                };
            }
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}

/// Marks entities as orphans: the annotation in their body and in the
/// search index, a new etag and generation. Their relations stay.
async fn orphan_entities(
    tx: &mut Transaction<'static, Any>,
    d: Dialect,
    entities: &[(i64, &str)],
    now: &str,
) -> Result<(), StoreError> {
    let mut rows = Vec::with_capacity(entities.len());
    for (id, body) in entities {
        let mut body: Value =
            serde_json::from_str(body).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        if let Some(metadata) = body.get_mut("metadata").and_then(Value::as_object_mut) {
            let annotations = metadata.entry("annotations").or_insert_with(|| json!({}));
            if let Some(annotations) = annotations.as_object_mut() {
                annotations.insert("backstage.io/orphan".into(), "true".into());
            }
        }
        rows.push(json!([id, new_etag(), body.to_string()]));
    }
    for chunk in rows.chunks(CHUNK) {
        sqlx::query(sql!(
            d,
            "UPDATE entities SET orphan = 1, generation = generation + 1, updated_at = ?,
                    etag = u.value ->> 1, body = u.value ->> 2
             FROM json_each(?) AS u WHERE entities.id = CAST(u.value ->> 0 AS BIGINT)"
        ))
        .bind(now)
        .bind(Value::from(chunk.to_vec()).to_string())
        .execute(&mut **tx)
        .await?;
        let ids: Vec<Value> = chunk.iter().map(|r| r[0].clone()).collect();
        sqlx::query(sql!(
            d,
            "INSERT INTO search (entity_id, key, value, original_value)
             SELECT CAST(value AS BIGINT), 'metadata.annotations.backstage.io/orphan', 'true', 'true' FROM json_each(?)"
        ))
        .bind(Value::from(ids).to_string())
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

async fn delete_entities(
    tx: &mut Transaction<'static, Any>,
    d: Dialect,
    ids: &[i64],
) -> Result<(), StoreError> {
    for chunk in ids.chunks(CHUNK) {
        let ids = Value::from(chunk.to_vec()).to_string();
        for sql in [
            "DELETE FROM relations WHERE origin_id IN (SELECT CAST(value AS BIGINT) FROM json_each(?))",
            "DELETE FROM search WHERE entity_id IN (SELECT CAST(value AS BIGINT) FROM json_each(?))",
            "DELETE FROM search_tokens WHERE entity_id IN (SELECT CAST(value AS BIGINT) FROM json_each(?))",
            "DELETE FROM entities WHERE id IN (SELECT CAST(value AS BIGINT) FROM json_each(?))",
        ] {
            sqlx::query(d.sql(sql.to_owned()))
                .bind(&ids)
                .execute(&mut **tx)
                .await?;
        }
    }
    Ok(())
}

fn new_etag() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}
