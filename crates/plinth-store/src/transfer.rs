//! Moving a catalog between stores: `export` writes everything the store
//! holds as JSON lines (locations, the files read for them, entities with
//! their identity, state and relations, conflicts); `import` writes such
//! lines into an empty store in one transaction. Derived rows (search rows,
//! words) are made again from each body on import, so an export carries only
//! what cannot be recomputed, and uids, etags and generations survive.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::Row;

use crate::conn::Conn;
use crate::dialect::{Dialect, sql};
use crate::write::{IndexWriter, NewEntity, Phases, bump_version};
use crate::{EntityRef, Store, StoreError};

/// The format's version, in the first line.
pub const FORMAT: u32 = 1;

/// One line of an export.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Line {
    /// Always first.
    Header {
        plinth_export: u32,
    },
    Location(LocationRow),
    LocationFile(LocationFileRow),
    Entity(EntityRow),
    Conflict(ConflictRow),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocationRow {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub target: String,
    pub created_at: String,
    pub refreshed_at: Option<String>,
    pub refresh_status: Option<String>,
    pub refresh_message: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocationFileRow {
    pub location_id: String,
    pub path: String,
    pub hash: String,
    pub findings: Value,
    pub targets: Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntityRow {
    pub uid: String,
    #[serde(rename = "ref")]
    pub entity_ref: String,
    pub location_id: String,
    pub file: String,
    pub etag: String,
    pub generation: i64,
    pub body: Value,
    pub status: Value,
    pub orphan: bool,
    pub updated_at: String,
    /// The relations this entity's spec gave, both directions:
    /// `[source, type, target]`.
    pub relations: Vec<(String, String, String)>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConflictRow {
    #[serde(rename = "ref")]
    pub entity_ref: String,
    pub location_id: String,
    pub file: String,
}

/// What an import wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ImportSummary {
    pub locations: usize,
    pub files: usize,
    pub entities: usize,
    pub conflicts: usize,
}

/// An import that could not be applied; nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("line {line}: {message}")]
    Line { line: usize, message: String },
    #[error("the target store already holds a catalog ({0}); import into an empty store")]
    NotEmpty(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

fn json(text: &str) -> Result<Value, StoreError> {
    serde_json::from_str(text).map_err(corrupt)
}

impl Store {
    /// Every line of the catalog, read in one transaction (a consistent
    /// snapshot while the catalog keeps changing), handed to `out` in order:
    /// header, locations, files, entities, conflicts.
    pub async fn export(
        &self,
        out: &mut dyn FnMut(Line) -> std::io::Result<()>,
    ) -> Result<usize, StoreError> {
        // One snapshot for every statement: PostgreSQL's default isolation
        // would show each statement the latest commit.
        let mut tx = match self.dialect {
            Dialect::Sqlite => self.pool.begin().await?,
            Dialect::Postgres => {
                self.pool
                    .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                    .await?
            }
        };
        let io = |e: std::io::Error| StoreError::Corrupt(format!("cannot write the export: {e}"));
        out(Line::Header {
            plinth_export: FORMAT,
        })
        .map_err(io)?;
        let mut lines = 1;
        let rows = sqlx::query(sql!(
            self.dialect,
            "SELECT id, type, target, created_at, refreshed_at, refresh_status, refresh_message
             FROM locations ORDER BY created_at, id"
        ))
        .fetch_all(&mut *tx)
        .await?;
        for r in rows {
            out(Line::Location(LocationRow {
                id: r.get("id"),
                kind: r.get("type"),
                target: r.get("target"),
                created_at: r.get("created_at"),
                refreshed_at: r.get("refreshed_at"),
                refresh_status: r.get("refresh_status"),
                refresh_message: r.get("refresh_message"),
            }))
            .map_err(io)?;
            lines += 1;
        }
        let rows = sqlx::query(
            sql!(self.dialect, "SELECT location_id, path, hash, findings, targets FROM location_files ORDER BY location_id, path"),
        )
        .fetch_all(&mut *tx)
        .await?;
        for r in rows {
            out(Line::LocationFile(LocationFileRow {
                location_id: r.get("location_id"),
                path: r.get("path"),
                hash: r.get("hash"),
                findings: json(r.get("findings"))?,
                targets: json(r.get("targets"))?,
            }))
            .map_err(io)?;
            lines += 1;
        }
        // Entities in pages by id, each with the relations it gave.
        let mut after = 0_i64;
        loop {
            let rows = sqlx::query(
                sql!(self.dialect, "SELECT id, uid, ref, location_id, file, etag, generation, body, status, orphan, updated_at
                 FROM entities WHERE id > ? ORDER BY id LIMIT 1000"),
            )
            .bind(after)
            .fetch_all(&mut *tx)
            .await?;
            let Some(last) = rows.last() else { break };
            after = last.get("id");
            let first: i64 = rows[0].get("id");
            let relations = sqlx::query(sql!(
                self.dialect,
                "SELECT origin_id, source_ref, type, target_ref FROM relations
                 WHERE origin_id BETWEEN ? AND ? ORDER BY origin_id, source_ref, type, target_ref"
            ))
            .bind(first)
            .bind(after)
            .fetch_all(&mut *tx)
            .await?;
            let mut relations = relations.iter().peekable();
            for r in &rows {
                let id: i64 = r.get("id");
                let mut mine = Vec::new();
                while let Some(rel) = relations.next_if(|rel| rel.get::<i64, _>("origin_id") <= id)
                {
                    if rel.get::<i64, _>("origin_id") == id {
                        mine.push((
                            rel.get("source_ref"),
                            rel.get("type"),
                            rel.get("target_ref"),
                        ));
                    }
                }
                out(Line::Entity(EntityRow {
                    uid: r.get("uid"),
                    entity_ref: r.get("ref"),
                    location_id: r.get("location_id"),
                    file: r.get("file"),
                    etag: r.get("etag"),
                    generation: r.get("generation"),
                    body: json(r.get("body"))?,
                    status: json(r.get("status"))?,
                    orphan: r.get::<i64, _>("orphan") == 1,
                    updated_at: r.get("updated_at"),
                    relations: mine,
                }))
                .map_err(io)?;
                lines += 1;
            }
        }
        let rows = sqlx::query(sql!(
            self.dialect,
            "SELECT ref, location_id, file FROM conflicts ORDER BY ref, location_id"
        ))
        .fetch_all(&mut *tx)
        .await?;
        for r in rows {
            out(Line::Conflict(ConflictRow {
                entity_ref: r.get("ref"),
                location_id: r.get("location_id"),
                file: r.get("file"),
            }))
            .map_err(io)?;
            lines += 1;
        }
        tx.commit().await?;
        Ok(lines)
    }

    /// Writes an export into this store, which must be empty, in one
    /// transaction: on any bad line nothing is written. `lines` yields each
    /// line's text with its line number.
    pub async fn import(
        &self,
        lines: &mut dyn Iterator<Item = (usize, std::io::Result<String>)>,
    ) -> Result<ImportSummary, ImportError> {
        let mut tx = self.begin_write().await?;
        let held: i64 = sqlx::query_scalar(sql!(
            self.dialect,
            "SELECT (SELECT COUNT(*) FROM locations) + (SELECT COUNT(*) FROM entities)"
        ))
        .fetch_one(&mut *tx)
        .await
        .map_err(StoreError::from)?;
        if held > 0 {
            return Err(ImportError::NotEmpty(format!(
                "{held} locations and entities"
            )));
        }
        let mut summary = ImportSummary::default();
        let mut locations = HashSet::new();
        let mut refs = HashSet::new();
        let mut next_id = 1_i64;
        // Index rows are written once at the end, set-based, as a refresh does.
        let mut prepared_all: Vec<(i64, NewEntity)> = Vec::new();
        let mut header = false;
        for (n, text) in lines {
            let bad = |message: String| ImportError::Line { line: n, message };
            let text = text.map_err(|e| bad(format!("cannot be read: {e}")))?;
            if text.trim().is_empty() {
                continue;
            }
            let line: Line = serde_json::from_str(&text).map_err(|e| {
                // serde counts lines inside this one line; the column is what helps.
                let message = e.to_string();
                let message = message
                    .rsplit_once(" at line ")
                    .map_or(message.as_str(), |(m, _)| m);
                bad(format!(
                    "column {}: {message}; each line is one JSON object, as `plinth export` writes them",
                    e.column()
                ))
            })?;
            if !header {
                match line {
                    Line::Header { plinth_export } if plinth_export == FORMAT => {
                        header = true;
                        continue;
                    }
                    Line::Header { plinth_export } => {
                        return Err(bad(format!(
                            "export format {plinth_export} is not known to this plinth (it reads {FORMAT})"
                        )));
                    }
                    _ => return Err(bad(
                        "the first line must be the header, {\"header\": {\"plinth_export\": 1}}"
                            .into(),
                    )),
                }
            }
            match line {
                Line::Header { .. } => {
                    return Err(bad("a second header; join exports by importing one".into()));
                }
                Line::Location(l) => {
                    if !locations.insert(l.id.clone()) {
                        return Err(bad(format!("location {} appears twice", l.id)));
                    }
                    sqlx::query(
                        sql!(self.dialect, "INSERT INTO locations (id, type, target, created_at, refreshed_at, refresh_status, refresh_message)
                         VALUES (?, ?, ?, ?, ?, ?, ?)"),
                    )
                    .bind(&l.id)
                    .bind(&l.kind)
                    .bind(&l.target)
                    .bind(&l.created_at)
                    .bind(&l.refreshed_at)
                    .bind(&l.refresh_status)
                    .bind(&l.refresh_message)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| bad(format!("location {}:{}: {e}", l.kind, l.target)))?;
                    summary.locations += 1;
                }
                Line::LocationFile(f) => {
                    if !locations.contains(&f.location_id) {
                        return Err(bad(format!(
                            "location_file.location_id: no location {} before this line",
                            f.location_id
                        )));
                    }
                    sqlx::query(sql!(self.dialect, "INSERT INTO location_files (location_id, path, hash, findings, targets) VALUES (?, ?, ?, ?, ?)"))
                        .bind(&f.location_id)
                        .bind(&f.path)
                        .bind(&f.hash)
                        .bind(f.findings.to_string())
                        .bind(f.targets.to_string())
                        .execute(&mut *tx)
                        .await
                        .map_err(|e| bad(format!("location_file {}: {e}", f.path)))?;
                    summary.files += 1;
                }
                Line::Entity(e) => {
                    if !locations.contains(&e.location_id) {
                        return Err(bad(format!(
                            "entity.location_id: no location {} before this line",
                            e.location_id
                        )));
                    }
                    let entity_ref: EntityRef = e
                        .entity_ref
                        .parse()
                        .map_err(|err| bad(format!("entity.ref: {err}")))?;
                    if !refs.insert(entity_ref.to_string()) {
                        return Err(bad(format!("entity {entity_ref} appears twice")));
                    }
                    let mut relations = Vec::new();
                    for (i, (source, kind, target)) in e.relations.iter().enumerate() {
                        let at = |what: &str| bad(format!("entity.relations[{i}]: {what}"));
                        relations.push(crate::Relation {
                            source: source
                                .parse()
                                .map_err(|err| at(&format!("source: {err}")))?,
                            relation: crate::RelationType::from_name(kind).ok_or_else(|| {
                                at(&format!("type: unknown relation type \"{kind}\""))
                            })?,
                            target: target
                                .parse()
                                .map_err(|err| at(&format!("target: {err}")))?,
                        });
                    }
                    let prepared = NewEntity::new(entity_ref.clone(), &e.body, relations);
                    let id = next_id;
                    next_id += 1;
                    sqlx::query(
                        sql!(self.dialect, "INSERT INTO entities (id, uid, ref, kind, namespace, name, location_id, file, etag, generation, body, status, orphan, updated_at)
                         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"),
                    )
                    .bind(id)
                    .bind(&e.uid)
                    .bind(entity_ref.to_string())
                    .bind(entity_ref.kind())
                    .bind(entity_ref.namespace())
                    .bind(entity_ref.name())
                    .bind(&e.location_id)
                    .bind(&e.file)
                    .bind(&e.etag)
                    .bind(e.generation)
                    .bind(prepared.body())
                    .bind(e.status.to_string())
                    .bind(i64::from(e.orphan))
                    .bind(&e.updated_at)
                    .execute(&mut *tx)
                    .await
                    .map_err(|err| bad(format!("entity {entity_ref}: {err}")))?;
                    prepared_all.push((id, prepared));
                    summary.entities += 1;
                }
                Line::Conflict(c) => {
                    if !locations.contains(&c.location_id) {
                        return Err(bad(format!(
                            "conflict.location_id: no location {} before this line",
                            c.location_id
                        )));
                    }
                    sqlx::query(sql!(
                        self.dialect,
                        "INSERT INTO conflicts (ref, location_id, file) VALUES (?, ?, ?)"
                    ))
                    .bind(&c.entity_ref)
                    .bind(&c.location_id)
                    .bind(&c.file)
                    .execute(&mut *tx)
                    .await
                    .map_err(|err| bad(format!("conflict {}: {err}", c.entity_ref)))?;
                    summary.conflicts += 1;
                }
            }
        }
        if !header {
            return Err(ImportError::Line {
                line: 1,
                message: "empty: an export starts with its header line".into(),
            });
        }
        let rewritten: Vec<(i64, &NewEntity)> =
            prepared_all.iter().map(|(id, e)| (*id, e)).collect();
        // Every entity is new to the index tables (ids above any held).
        let mut index = IndexWriter::default();
        let fresh_from = rewritten.iter().map(|(id, _)| *id).min().unwrap_or(0);
        let mut conn = Conn::from(&mut tx);
        index
            .write(
                &mut conn,
                self.dialect,
                &rewritten,
                fresh_from,
                &mut Phases::default(),
            )
            .await?;
        index.finish(&mut conn).await?;
        bump_version(&mut conn).await?;
        tx.commit().await.map_err(StoreError::from)?;
        self.written();
        self.entities_changed();
        Ok(summary)
    }
}
