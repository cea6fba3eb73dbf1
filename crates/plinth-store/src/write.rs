//! Writes: locations, and applying a location's refresh in one transaction.

use std::collections::{HashMap, HashSet};

use serde::Serialize;
use serde_json::{Value, json};
use sqlx::{Row, Sqlite, Transaction};

use crate::search::search_rows;
use crate::{EntityRef, Location, Relation, Store, StoreError, now};

/// A valid entity read from a file, ready to store.
#[derive(Debug, Clone)]
pub struct NewEntity {
    pub entity_ref: EntityRef,
    /// The document, with the annotations the catalog adds.
    pub body: Value,
    pub relations: Vec<Relation>,
}

/// What one file of a location holds now.
#[derive(Debug, Clone, Default)]
pub struct FileUpdate {
    pub path: String,
    /// Content hash, compared on the next refresh to skip unchanged files.
    pub hash: String,
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

/// How a refresh ended, for the location's record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshOutcome {
    Ok,
    /// Read, with findings in some files.
    Problems(String),
    /// The location could not be read at all; nothing was changed.
    Failed(String),
}

/// What a refresh changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RefreshSummary {
    pub added: usize,
    pub updated: usize,
    pub unchanged: usize,
    pub removed: usize,
    pub conflicts: usize,
}

impl Store {
    /// Registers a location. Fails when the same type and target exist.
    pub async fn add_location(&self, kind: &str, target: &str) -> Result<Location, StoreError> {
        let id = uuid::Uuid::new_v4().to_string();
        let created_at = now();
        let result = sqlx::query("INSERT INTO locations (id, type, target, created_at) VALUES (?, ?, ?, ?)")
            .bind(&id)
            .bind(kind)
            .bind(target)
            .bind(&created_at)
            .execute(&self.pool)
            .await;
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

    /// Removes a location and every entity it gave. Returns whether it existed.
    pub async fn delete_location(&self, id: &str) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        // Deleted explicitly rather than by cascade, so the large tables are
        // cleared through their indexes in a few statements.
        for sql in [
            "DELETE FROM relations WHERE origin_id IN (SELECT id FROM entities WHERE location_id = ?)",
            "DELETE FROM search WHERE entity_id IN (SELECT id FROM entities WHERE location_id = ?)",
            "DELETE FROM entities WHERE location_id = ?",
        ] {
            sqlx::query(sql).bind(id).execute(&mut *tx).await?;
        }
        let gone = sqlx::query("DELETE FROM locations WHERE id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            > 0;
        tx.commit().await?;
        Ok(gone)
    }

    /// The files last read for a location: path to content hash and targets.
    pub async fn location_files(&self, location_id: &str) -> Result<HashMap<String, (String, Vec<String>)>, StoreError> {
        let rows = sqlx::query("SELECT path, hash, targets FROM location_files WHERE location_id = ?")
            .bind(location_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                let targets: String = r.get("targets");
                let targets = serde_json::from_str(&targets).map_err(|e| StoreError::Corrupt(e.to_string()))?;
                Ok((r.get("path"), (r.get("hash"), targets)))
            })
            .collect()
    }

    /// Applies a refresh of one location: `files` hold what changed,
    /// `unchanged` the files that are still there as they were; every other
    /// file the location had is gone, and its entities with it. All in one
    /// transaction: readers see the location before or after, never between.
    pub async fn apply_refresh(
        &self,
        location_id: &str,
        files: &[FileUpdate],
        unchanged: &[String],
        outcome: &RefreshOutcome,
    ) -> Result<RefreshSummary, StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let mut summary = RefreshSummary::default();
        if !matches!(outcome, RefreshOutcome::Failed(_)) {
            let known: Vec<String> = sqlx::query_scalar("SELECT path FROM location_files WHERE location_id = ?")
                .bind(location_id)
                .fetch_all(&mut *tx)
                .await?;
            let present: HashSet<&str> = files
                .iter()
                .map(|f| f.path.as_str())
                .chain(unchanged.iter().map(String::as_str))
                .collect();
            for gone in known.iter().filter(|p| !present.contains(p.as_str())) {
                summary.removed += remove_file(&mut tx, location_id, gone, &HashSet::new()).await?;
                sqlx::query("DELETE FROM location_files WHERE location_id = ? AND path = ?")
                    .bind(location_id)
                    .bind(gone)
                    .execute(&mut *tx)
                    .await?;
            }
            for file in files {
                apply_file(&mut tx, location_id, file, &mut summary).await?;
            }
            summary.unchanged += unchanged.len();
        }
        let (status, message) = match outcome {
            RefreshOutcome::Ok => ("ok", None),
            RefreshOutcome::Problems(m) => ("problems", Some(m.as_str())),
            RefreshOutcome::Failed(m) => ("failed", Some(m.as_str())),
        };
        sqlx::query("UPDATE locations SET refreshed_at = ?, refresh_status = ?, refresh_message = ? WHERE id = ?")
            .bind(now())
            .bind(status)
            .bind(message)
            .bind(location_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(summary)
    }
}

/// Removes the entities of a file, except those in `keep`; returns how many.
async fn remove_file(
    tx: &mut Transaction<'static, Sqlite>,
    location_id: &str,
    path: &str,
    keep: &HashSet<String>,
) -> Result<usize, StoreError> {
    let rows = sqlx::query("SELECT id, ref FROM entities WHERE location_id = ? AND file = ?")
        .bind(location_id)
        .bind(path)
        .fetch_all(&mut **tx)
        .await?;
    let ids: Vec<i64> = rows
        .iter()
        .filter(|r| !keep.contains(r.get::<&str, _>("ref")))
        .map(|r| r.get("id"))
        .collect();
    delete_entities(tx, &ids).await?;
    sqlx::query("DELETE FROM conflicts WHERE location_id = ? AND file = ?")
        .bind(location_id)
        .bind(path)
        .execute(&mut **tx)
        .await?;
    Ok(ids.len())
}

async fn delete_entities(tx: &mut Transaction<'static, Sqlite>, ids: &[i64]) -> Result<(), StoreError> {
    if ids.is_empty() {
        return Ok(());
    }
    let ids = Value::from(ids.to_vec()).to_string();
    for sql in [
        "DELETE FROM relations WHERE origin_id IN (SELECT value FROM json_each(?))",
        "DELETE FROM search WHERE entity_id IN (SELECT value FROM json_each(?))",
        "DELETE FROM entities WHERE id IN (SELECT value FROM json_each(?))",
    ] {
        sqlx::query(sql).bind(&ids).execute(&mut **tx).await?;
    }
    Ok(())
}

struct Existing {
    id: i64,
    location_id: String,
    file: String,
    body: String,
    generation: i64,
}

async fn apply_file(
    tx: &mut Transaction<'static, Sqlite>,
    location_id: &str,
    file: &FileUpdate,
    summary: &mut RefreshSummary,
) -> Result<(), StoreError> {
    let keep: HashSet<String> = file
        .entities
        .iter()
        .map(|e| e.entity_ref.to_string())
        .chain(file.invalid.iter().map(|(r, _)| r.to_string()))
        .collect();
    if !file.incomplete {
        summary.removed += remove_file(tx, location_id, &file.path, &keep).await?;
    } else {
        sqlx::query("DELETE FROM conflicts WHERE location_id = ? AND file = ?")
            .bind(location_id)
            .bind(&file.path)
            .execute(&mut **tx)
            .await?;
    }

    // Who holds each of this file's entities now.
    let refs = Value::from(file.entities.iter().map(|e| e.entity_ref.to_string()).collect::<Vec<_>>()).to_string();
    let rows = sqlx::query(
        "SELECT id, ref, location_id, file, body, generation FROM entities WHERE ref IN (SELECT value FROM json_each(?))",
    )
    .bind(&refs)
    .fetch_all(&mut **tx)
    .await?;
    let existing: HashMap<String, Existing> = rows
        .iter()
        .map(|r| {
            (
                r.get::<String, _>("ref"),
                Existing {
                    id: r.get("id"),
                    location_id: r.get("location_id"),
                    file: r.get("file"),
                    body: r.get("body"),
                    generation: r.get("generation"),
                },
            )
        })
        .collect();

    let now = now();
    let mut rewritten: Vec<(i64, &NewEntity)> = Vec::new();
    let mut to_insert: Vec<&NewEntity> = Vec::new();
    for entity in &file.entities {
        let r = entity.entity_ref.to_string();
        let body = entity.body.to_string();
        match existing.get(&r) {
            Some(e) if e.location_id != location_id => {
                // The first location keeps it; the conflict shows on both.
                sqlx::query("INSERT OR REPLACE INTO conflicts (ref, location_id, file) VALUES (?, ?, ?)")
                    .bind(&r)
                    .bind(location_id)
                    .bind(&file.path)
                    .execute(&mut **tx)
                    .await?;
                summary.conflicts += 1;
            }
            Some(e) if e.body == body && e.file == file.path => {
                sqlx::query("UPDATE entities SET status = '[]' WHERE id = ? AND status <> '[]'")
                    .bind(e.id)
                    .execute(&mut **tx)
                    .await?;
                summary.unchanged += 1;
            }
            Some(e) => {
                sqlx::query(
                    "UPDATE entities SET file = ?, etag = ?, generation = ?, body = ?, status = '[]', updated_at = ? WHERE id = ?",
                )
                .bind(&file.path)
                .bind(new_etag())
                .bind(e.generation + 1)
                .bind(&body)
                .bind(&now)
                .bind(e.id)
                .execute(&mut **tx)
                .await?;
                rewritten.push((e.id, entity));
                summary.updated += 1;
            }
            None => to_insert.push(entity),
        }
    }

    if !to_insert.is_empty() {
        let rows: Vec<Value> = to_insert
            .iter()
            .map(|e| {
                json!([
                    uuid::Uuid::new_v4().to_string(),
                    e.entity_ref.to_string(),
                    e.entity_ref.kind(),
                    e.entity_ref.namespace(),
                    e.entity_ref.name(),
                    new_etag(),
                    e.body.to_string(),
                ])
            })
            .collect();
        let inserted = sqlx::query(
            "INSERT INTO entities (uid, ref, kind, namespace, name, location_id, file, etag, generation, body, status, updated_at)
             SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4, ?, ?, value ->> 5, 1, value ->> 6, '[]', ?
             FROM json_each(?)
             RETURNING id, ref",
        )
        .bind(location_id)
        .bind(&file.path)
        .bind(&now)
        .bind(Value::from(rows).to_string())
        .fetch_all(&mut **tx)
        .await?;
        let ids: HashMap<String, i64> = inserted.iter().map(|r| (r.get("ref"), r.get("id"))).collect();
        for e in to_insert {
            let id = *ids
                .get(&e.entity_ref.to_string())
                .ok_or_else(|| StoreError::Corrupt(format!("insert of {} returned no id", e.entity_ref)))?;
            rewritten.push((id, e));
            summary.added += 1;
        }
    }

    if !rewritten.is_empty() {
        let ids = Value::from(rewritten.iter().map(|(id, _)| *id).collect::<Vec<_>>()).to_string();
        sqlx::query("DELETE FROM relations WHERE origin_id IN (SELECT value FROM json_each(?))")
            .bind(&ids)
            .execute(&mut **tx)
            .await?;
        sqlx::query("DELETE FROM search WHERE entity_id IN (SELECT value FROM json_each(?))")
            .bind(&ids)
            .execute(&mut **tx)
            .await?;
        let mut relation_rows = Vec::new();
        let mut search = Vec::new();
        for (id, e) in &rewritten {
            for r in &e.relations {
                relation_rows.push(json!([
                    id,
                    r.source.to_string(),
                    r.relation.as_str(),
                    r.relation.as_str().to_lowercase(),
                    r.target.to_string()
                ]));
            }
            for (k, v, original) in search_rows(&e.body) {
                search.push(json!([id, k, v, original]));
            }
        }
        sqlx::query(
            "INSERT INTO relations (origin_id, source_ref, type, type_key, target_ref)
             SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4 FROM json_each(?)",
        )
        .bind(Value::from(relation_rows).to_string())
        .execute(&mut **tx)
        .await?;
        sqlx::query("INSERT INTO search (entity_id, key, value, original_value)
             SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3 FROM json_each(?)")
            .bind(Value::from(search).to_string())
            .execute(&mut **tx)
            .await?;
    }

    for (r, items) in &file.invalid {
        sqlx::query("UPDATE entities SET status = ? WHERE ref = ? AND location_id = ?")
            .bind(Value::from(items.clone()).to_string())
            .bind(r.to_string())
            .bind(location_id)
            .execute(&mut **tx)
            .await?;
    }

    sqlx::query(
        "INSERT INTO location_files (location_id, path, hash, findings, targets) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (location_id, path) DO UPDATE SET hash = excluded.hash, findings = excluded.findings, targets = excluded.targets",
    )
    .bind(location_id)
    .bind(&file.path)
    .bind(&file.hash)
    .bind(Value::from(file.findings.clone()).to_string())
    .bind(Value::from(file.targets.clone()).to_string())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

fn new_etag() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}
