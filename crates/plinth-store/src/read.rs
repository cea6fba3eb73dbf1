//! Reads: locations, entities with their relations and status.

use std::collections::HashMap;

use serde_json::{Value, json};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::access::Audit;
use crate::dialect::sql;
use crate::{EntityRef, Location, LocationRefresh, Store, StoreError, StoredEntity};

/// An entity's columns with its relations and conflicts, each gathered into
/// one JSON text: a page of entities is one statement and one row per
/// entity (rows, not statements, are what costs through sqlx: a page of 50
/// components carries about 190 relations). The flag is 1 for a relation
/// this entity states to a target that is not in the catalog.
macro_rules! entity_columns_sql {
    () => {
        "SELECT e.id, e.uid, e.ref, e.etag, e.generation, e.location_id, e.file, e.body, e.status,
            (SELECT CAST(json_group_array(json_array(r.type, r.target_ref,
                    CASE WHEN r.origin_id = e.id
                          AND NOT EXISTS (SELECT 1 FROM entities t WHERE t.ref = r.target_ref)
                         THEN 1 ELSE 0 END)) AS TEXT)
             FROM relations r WHERE r.source_ref = e.ref) AS relations,
            (SELECT CAST(json_group_array(json_array(l.type, l.target, c.file)) AS TEXT)
             FROM conflicts c JOIN locations l ON l.id = c.location_id WHERE c.ref = e.ref) AS conflicts
         FROM entities e"
    };
}
pub(crate) use entity_columns_sql as entity_columns;

pub(crate) const LOCATION_COLUMNS: &str =
    "id, type, target, created_at, refreshed_at, refresh_status, refresh_message";

pub(crate) fn location_from_row(r: &AnyRow) -> Location {
    let at: Option<String> = r.get("refreshed_at");
    Location {
        id: r.get("id"),
        kind: r.get("type"),
        target: r.get("target"),
        created_at: r.get("created_at"),
        refresh: at.map(|at| LocationRefresh {
            at,
            status: r
                .get::<Option<String>, _>("refresh_status")
                .unwrap_or_default(),
            message: r.get("refresh_message"),
        }),
    }
}

/// What is wrong in a location: findings in its files and conflicts.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LocationProblems {
    /// Findings of each file, as stored at refresh.
    pub findings: Vec<Value>,
    /// `(entity ref, file)` this location defines but another location holds.
    pub lost_conflicts: Vec<(String, String)>,
    /// `(entity ref, other location id, file)` this location holds and another also defines.
    pub won_conflicts: Vec<(String, String, String)>,
}

impl Store {
    pub async fn locations(&self) -> Result<Vec<Location>, StoreError> {
        let rows = sqlx::query(self.dialect.sql(format!(
            "SELECT {LOCATION_COLUMNS} FROM locations ORDER BY created_at, id"
        )))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(location_from_row).collect())
    }

    pub async fn location(&self, id: &str) -> Result<Option<Location>, StoreError> {
        let row = sqlx::query(self.dialect.sql(format!(
            "SELECT {LOCATION_COLUMNS} FROM locations WHERE id = ?"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(location_from_row))
    }

    pub async fn location_by_target(
        &self,
        kind: &str,
        target: &str,
    ) -> Result<Option<Location>, StoreError> {
        let row = sqlx::query(self.dialect.sql(format!(
            "SELECT {LOCATION_COLUMNS} FROM locations WHERE type = ? AND target = ?"
        )))
        .bind(kind)
        .bind(target)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(location_from_row))
    }

    /// The location an entity came from, and the file of it that defines
    /// the entity.
    pub async fn location_of(
        &self,
        entity: &EntityRef,
    ) -> Result<Option<(Location, String)>, StoreError> {
        let row = sqlx::query(self.dialect.sql(format!(
            "SELECT {}, e.file FROM locations l JOIN entities e ON e.location_id = l.id WHERE e.ref = ?",
            LOCATION_COLUMNS
                .split(", ")
                .map(|c| format!("l.{c}"))
                .collect::<Vec<_>>()
                .join(", ")
        )))
        .bind(entity.to_string())
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| (location_from_row(&r), r.get("file"))))
    }

    pub async fn location_problems(&self, id: &str) -> Result<LocationProblems, StoreError> {
        let files: Vec<String> = sqlx::query_scalar(sql!(
            self.dialect,
            "SELECT findings FROM location_files WHERE location_id = ? AND findings <> '[]' ORDER BY path"
        ))
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        let mut findings = Vec::new();
        for f in files {
            if let Ok(Value::Array(items)) = serde_json::from_str(&f) {
                findings.extend(items);
            }
        }
        let lost = sqlx::query(sql!(
            self.dialect,
            "SELECT ref, file FROM conflicts WHERE location_id = ? ORDER BY ref"
        ))
        .bind(id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| (r.get("ref"), r.get("file")))
        .collect();
        let won = sqlx::query(sql!(
            self.dialect,
            "SELECT c.ref, c.location_id, c.file FROM conflicts c JOIN entities e ON e.ref = c.ref
             WHERE e.location_id = ? ORDER BY c.ref"
        ))
        .bind(id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| (r.get("ref"), r.get("location_id"), r.get("file")))
        .collect();
        Ok(LocationProblems {
            findings,
            lost_conflicts: lost,
            won_conflicts: won,
        })
    }

    pub async fn entity_count(&self) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar(sql!(self.dialect, "SELECT COUNT(*) FROM entities"))
            .fetch_one(&self.pool)
            .await?;
        Ok(n as u64)
    }

    /// How many entities a location gave.
    pub async fn location_entity_count(&self, location_id: &str) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar(sql!(
            self.dialect,
            "SELECT COUNT(*) FROM entities WHERE location_id = ?"
        ))
        .bind(location_id)
        .fetch_one(&self.pool)
        .await?;
        Ok(n as u64)
    }

    /// Every entity a location gave, by reference.
    pub async fn entities_of_location(
        &self,
        location_id: &str,
    ) -> Result<Vec<StoredEntity>, StoreError> {
        let ids = self.location_entity_ids(location_id).await?;
        self.load_entities(&ids).await
    }

    /// [`Store::entities_of_location`] a chunk at a time.
    pub async fn location_entities(
        &self,
        location_id: &str,
    ) -> Result<LocationEntities, StoreError> {
        Ok(LocationEntities {
            store: self.clone(),
            ids: self.location_entity_ids(location_id).await?,
            next: 0,
        })
    }

    async fn location_entity_ids(&self, location_id: &str) -> Result<Vec<i64>, StoreError> {
        Ok(sqlx::query_scalar(sql!(
            self.dialect,
            "SELECT id FROM entities WHERE location_id = ? ORDER BY ref"
        ))
        .bind(location_id)
        .fetch_all(&self.pool)
        .await?)
    }

    /// The Location entities that led the catalog to `entity`'s file: those
    /// in files of the same location whose targets include it. Empty for an
    /// entity read straight from its registered location.
    pub async fn parents_of(&self, entity: &StoredEntity) -> Result<Vec<StoredEntity>, StoreError> {
        let ids: Vec<i64> = sqlx::query_scalar(
            sql!(self.dialect, "SELECT e.id FROM location_files f JOIN entities e ON e.location_id = f.location_id AND e.file = f.path
             WHERE f.location_id = ? AND e.kind = 'location' AND e.ref <> ?
               AND EXISTS (SELECT 1 FROM json_each(f.targets) WHERE value = ?)
             ORDER BY e.ref"),
        )
        .bind(&entity.location_id)
        .bind(&entity.entity_ref)
        .bind(&entity.file)
        .fetch_all(&self.pool)
        .await?;
        self.load_entities(&ids).await
    }

    pub async fn entity_by_ref(
        &self,
        entity: &EntityRef,
    ) -> Result<Option<StoredEntity>, StoreError> {
        // The row itself, not its id first: one round trip fewer on the
        // most frequent call.
        let rows = sqlx::query(sql!(
            self.dialect,
            concat!(entity_columns!(), " WHERE e.ref = ?")
        ))
        .bind(entity.to_string())
        .fetch_all(&self.pool)
        .await?;
        let ids: Vec<i64> = rows.iter().map(|r| r.get("id")).collect();
        Ok(entities_from_rows(&ids, &rows)?.pop())
    }

    pub async fn entity_by_uid(&self, uid: &str) -> Result<Option<StoredEntity>, StoreError> {
        let id: Option<i64> =
            sqlx::query_scalar(sql!(self.dialect, "SELECT id FROM entities WHERE uid = ?"))
                .bind(uid)
                .fetch_optional(&self.pool)
                .await?;
        Ok(match id {
            Some(id) => self.load_entities(&[id]).await?.pop(),
            None => None,
        })
    }

    /// Which of these references name entities in the catalog.
    pub async fn existing_refs(&self, refs: &[String]) -> Result<Vec<String>, StoreError> {
        if refs.is_empty() {
            return Ok(Vec::new());
        }
        Ok(sqlx::query_scalar(sql!(
            self.dialect,
            "SELECT ref FROM entities WHERE ref IN (SELECT value FROM json_each(?))"
        ))
        .bind(Value::from(refs.to_vec()).to_string())
        .fetch_all(&self.pool)
        .await?)
    }

    /// Entities for each reference, in the same order, `None` where absent.
    pub async fn entities_by_refs(
        &self,
        refs: &[String],
    ) -> Result<Vec<Option<StoredEntity>>, StoreError> {
        let rows = sqlx::query(sql!(
            self.dialect,
            "SELECT id, ref FROM entities WHERE ref IN (SELECT value FROM json_each(?))"
        ))
        .bind(Value::from(refs.to_vec()).to_string())
        .fetch_all(&self.pool)
        .await?;
        let ids: Vec<i64> = rows.iter().map(|r| r.get("id")).collect();
        let by_ref: HashMap<String, StoredEntity> = self
            .load_entities(&ids)
            .await?
            .into_iter()
            .map(|e| (e.entity_ref.clone(), e))
            .collect();
        Ok(refs.iter().map(|r| by_ref.get(r).cloned()).collect())
    }

    /// Deletes an entity by uid. It comes back on the next refresh of its
    /// location if its file still defines it (as in Backstage).
    pub async fn delete_entity_by_uid(
        &self,
        uid: &str,
        audit: Audit<'_, ()>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let id: Option<i64> =
            sqlx::query_scalar(sql!(self.dialect, "SELECT id FROM entities WHERE uid = ?"))
                .bind(uid)
                .fetch_optional(&mut *tx)
                .await?;
        let Some(id) = id else { return Ok(false) };
        // Its file must be read again for the entity to come back.
        sqlx::query(
            sql!(self.dialect, "UPDATE location_files SET hash = '' WHERE (location_id, path) IN (SELECT location_id, file FROM entities WHERE id = ?)"),
        )
        .bind(id)
        .execute(&mut *tx)
        .await?;
        for sql in [
            "DELETE FROM relations WHERE origin_id = ?",
            "DELETE FROM search WHERE entity_id = ?",
            "DELETE FROM search_tokens WHERE entity_id = ?",
            "DELETE FROM entities WHERE id = ?",
        ] {
            sqlx::query(self.dialect.sql(sql.to_owned()))
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        crate::write::bump_version(&mut (&mut tx).into()).await?;
        self.commit_audited(tx, audit, &()).await?;
        self.written();
        self.entities_changed();
        Ok(true)
    }

    /// Loads entities by row id, in the given order, with relations and status.
    pub(crate) async fn load_entities(&self, ids: &[i64]) -> Result<Vec<StoredEntity>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let ids_json = Value::from(ids.to_vec()).to_string();
        let rows = sqlx::query(sql!(
            self.dialect,
            concat!(
                entity_columns!(),
                " WHERE e.id IN (SELECT CAST(value AS BIGINT) FROM json_each(?))"
            )
        ))
        .bind(&ids_json)
        .fetch_all(&self.pool)
        .await?;
        entities_from_rows(ids, &rows)
    }
}

/// Entities from rows of [`entity_columns`], in the order of `ids`.
pub(crate) fn entities_from_rows(
    ids: &[i64],
    rows: &[AnyRow],
) -> Result<Vec<StoredEntity>, StoreError> {
    fn parse<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, StoreError> {
        serde_json::from_str(text).map_err(|e| StoreError::Corrupt(e.to_string()))
    }
    // PostgreSQL's json_agg of no rows is NULL, SQLite's is `[]`.
    fn list<T: serde::de::DeserializeOwned>(
        r: &AnyRow,
        column: &str,
    ) -> Result<Vec<T>, StoreError> {
        match r.get::<Option<String>, _>(column) {
            Some(text) => parse(&text),
            None => Ok(Vec::new()),
        }
    }
    let mut entities: HashMap<i64, StoredEntity> = HashMap::with_capacity(rows.len());
    for r in rows {
        let mut e = StoredEntity {
            uid: r.get("uid"),
            entity_ref: r.get("ref"),
            etag: r.get("etag"),
            generation: r.get("generation"),
            location_id: r.get("location_id"),
            file: r.get("file"),
            body: parse(&r.get::<String, _>("body"))?,
            relations: Vec::new(),
            status: parse(&r.get::<String, _>("status"))?,
        };
        let mut relations: Vec<(String, String, i64)> = list(r, "relations")?;
        relations.sort_unstable();
        for (kind, target, dangling) in relations {
            // A target that is not in the catalog is kept and reported.
            if dangling == 1 {
                e.status.push(json!({
                    "type": "plinth.io/dangling-reference",
                    "level": "warning",
                    "message": format!("{kind} {target}: no such entity in the catalog"),
                }));
            }
            // The same relation stated from both ends is listed once.
            if e.relations
                .last()
                .is_none_or(|(k, t)| (k, t) != (&kind, &target))
            {
                e.relations.push((kind, target));
            }
        }
        let mut conflicts: Vec<(String, String, String)> = list(r, "conflicts")?;
        conflicts.sort_unstable_by(|a, b| (&a.1, &a.0, &a.2).cmp(&(&b.1, &b.0, &b.2)));
        for (kind, target, file) in conflicts {
            e.status.push(json!({
                "type": "plinth.io/conflict",
                "level": "warning",
                "message": format!(
                    "also defined in {file} (location {kind}:{target}); that definition is ignored while this one exists",
                ),
            }));
        }
        entities.insert(r.get("id"), e);
    }
    Ok(ids.iter().filter_map(|id| entities.remove(id)).collect())
}

/// A location's entities read a chunk at a time, so that answering with
/// all of them holds one chunk in memory (answering with 100,000 at once
/// took 1.2 GB). Which entities and in what order is fixed when it is
/// made; one removed since is left out, one changed since comes as it is
/// when its chunk is read.
pub struct LocationEntities {
    store: Store,
    ids: Vec<i64>,
    next: usize,
}

impl LocationEntities {
    /// The next `size` entities; `None` after the last.
    pub async fn next_chunk(
        &mut self,
        size: usize,
    ) -> Result<Option<Vec<StoredEntity>>, StoreError> {
        if self.next >= self.ids.len() {
            return Ok(None);
        }
        let end = self.ids.len().min(self.next + size.max(1));
        let chunk = self.store.load_entities(&self.ids[self.next..end]).await?;
        self.next = end;
        Ok(Some(chunk))
    }
}
