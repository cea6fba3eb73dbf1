//! Writes: locations, and applying a location's refresh in one transaction.

use std::collections::{HashMap, HashSet};

use serde::Serialize;
use serde_json::{Value, json};
use sqlx::query::Query;
use sqlx::{AnyConnection, Encode, Row, Type};

use crate::conn::{Conn, on_conn};

use crate::search::{SearchRow, search_rows, search_tokens};

use crate::access::Audit;
use crate::dialect::{Dialect, sql};
use crate::{EntityRef, Location, Relation, Store, StoreError, now};

/// A valid entity read from a file, ready to store. Its stored text and
/// search rows are made by [`NewEntity::new`], on the reading thread, so that
/// a refresh prepares them on every core and the writer only writes.
#[derive(Debug, Clone)]
pub struct NewEntity {
    pub entity_ref: EntityRef,
    pub relations: Vec<Relation>,
    /// `entity_ref` as text.
    ref_text: String,
    /// The document as stored: JSON text, with the annotations the catalog adds.
    body: String,
    /// Unique `(key, value)` rows, so that facets can count rows.
    search: Vec<SearchRow>,
    /// Words for the ranked search, with their weights.
    tokens: Vec<(String, i64)>,
    /// `relations` as stored: source, type, type in lowercase, target.
    relation_rows: Vec<[String; 4]>,
}

impl NewEntity {
    pub fn new(entity_ref: EntityRef, body: &Value, relations: Vec<Relation>) -> NewEntity {
        let rows = search_rows(body);
        let mut seen = HashSet::with_capacity(rows.len());
        let first: Vec<bool> = rows
            .iter()
            .map(|(k, v, _)| seen.insert((k.as_str(), v.as_deref())))
            .collect();
        drop(seen);
        // The value as written is stored only where it differs from the
        // lowercase value (15% of rows), which keeps the table narrow.
        let search = rows
            .into_iter()
            .zip(first)
            .filter_map(|(row, first)| first.then_some(row))
            .map(|(k, v, original)| {
                let original = original.filter(|o| Some(o) != v.as_ref());
                (k, v, original)
            })
            .collect();
        let relation_rows = relations
            .iter()
            .map(|r| {
                let t = r.relation.as_str();
                [
                    r.source.to_string(),
                    t.to_owned(),
                    t.to_lowercase(),
                    r.target.to_string(),
                ]
            })
            .collect();
        NewEntity {
            ref_text: entity_ref.to_string(),
            entity_ref,
            relations,
            body: body.to_string(),
            search,
            tokens: search_tokens(body),
            relation_rows,
        }
    }

    /// The document as stored, JSON text.
    pub fn body(&self) -> &str {
        &self.body
    }

    /// The entity's reference as text, `kind:namespace/name`.
    pub fn ref_text(&self) -> &str {
        &self.ref_text
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
    pub async fn add_location(
        &self,
        kind: &str,
        target: &str,
        audit: Audit<'_, Location>,
    ) -> Result<Location, StoreError> {
        let location = Location {
            id: uuid::Uuid::new_v4().to_string(),
            kind: kind.to_owned(),
            target: target.to_owned(),
            created_at: now(),
            refresh: None,
        };
        let mut tx = self.begin_write().await?;
        let result = sqlx::query(sql!(
            self.dialect,
            "INSERT INTO locations (id, type, target, created_at) VALUES (?, ?, ?, ?)"
        ))
        .bind(&location.id)
        .bind(kind)
        .bind(target)
        .bind(&location.created_at)
        .execute(&mut *tx)
        .await;
        match result {
            Ok(_) => {}
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                return Err(StoreError::LocationExists(format!("{kind}:{target}")));
            }
            Err(e) => return Err(e.into()),
        }
        self.commit_audited(tx, audit, &location).await?;
        self.written();
        Ok(location)
    }

    /// Changes a location's type and target. `None` when there is no such
    /// location; fails when another location has that type and target.
    /// Its entities stay until the next refresh reads the new target.
    pub async fn update_location(
        &self,
        id: &str,
        kind: &str,
        target: &str,
        audit: Audit<'_, Location>,
    ) -> Result<Option<Location>, StoreError> {
        let mut tx = self.begin_write().await?;
        let result = sqlx::query(self.dialect.sql(format!(
            "UPDATE locations SET type = ?, target = ? WHERE id = ? RETURNING {}",
            crate::read::LOCATION_COLUMNS
        )))
        .bind(kind)
        .bind(target)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await;
        let location = match result {
            Ok(None) => return Ok(None),
            Ok(Some(row)) => crate::read::location_from_row(&row),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                return Err(StoreError::LocationExists(format!("{kind}:{target}")));
            }
            Err(e) => return Err(e.into()),
        };
        self.commit_audited(tx, audit, &location).await?;
        self.written();
        Ok(Some(location))
    }

    /// Removes a location and every entity it gave. Returns whether it existed.
    pub async fn delete_location(
        &self,
        id: &str,
        audit: Audit<'_, ()>,
    ) -> Result<bool, StoreError> {
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
        bump_version(&mut Conn::from(&mut tx)).await?;
        let gone = sqlx::query(sql!(self.dialect, "DELETE FROM locations WHERE id = ?"))
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            > 0;
        if !gone {
            return Ok(false);
        }
        self.commit_audited(tx, audit, &()).await?;
        self.written();
        self.entities_changed();
        Ok(true)
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
            .map(|r| Ok((r.get("path"), known_file(r)?)))
            .collect()
    }

    /// One file of a location as last read; `None` when the location has
    /// no such file.
    pub async fn location_file(
        &self,
        location_id: &str,
        path: &str,
    ) -> Result<Option<KnownFile>, StoreError> {
        let row = sqlx::query(sql!(
            self.dialect,
            "SELECT hash, targets, stat FROM location_files WHERE location_id = ? AND path = ?"
        ))
        .bind(location_id)
        .bind(path)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(known_file).transpose()
    }
}

/// A `location_files` row's hash, targets and description.
fn known_file(r: &sqlx::any::AnyRow) -> Result<KnownFile, StoreError> {
    let targets: String = r.get("targets");
    Ok(KnownFile {
        hash: r.get("hash"),
        targets: serde_json::from_str(&targets).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        stat: r.get("stat"),
    })
}

pub(crate) async fn bump_version(tx: &mut Conn<'_>) -> Result<(), StoreError> {
    on_conn!(tx, |tx| {
        sqlx::query("UPDATE catalog_version SET version = version + 1 WHERE id = 1")
            .execute(&mut **tx)
            .await?;
    });
    Ok(())
}

/// Rows per statement when inserting through `json_each`: large enough to
/// amortise each round trip, small enough to keep each JSON text modest.
pub(crate) const CHUNK: usize = 5_000;

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
    /// Adds the time since the last lap to `name` (summed over batches).
    pub(crate) fn lap(&mut self, name: &'static str) {
        let now = std::time::Instant::now();
        let took = now - self.last;
        self.last = now;
        match self.laps.iter_mut().find(|(n, _)| *n == name) {
            Some((_, sum)) => *sum += took,
            None => self.laps.push((name, took)),
        }
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

/// The indexes of the index tables that a large first write builds once
/// after its inserts instead of keeping in order row by row: sorting once
/// is several times faster, and readers never see the difference (they
/// read the last commit). Only those whose rows arrive in random order:
/// the indexes by entity id grow at their end as new ids are given.
pub(crate) const BULK_INDEXES: [(&str, &str); 3] = [
    (
        "search_key_value",
        "CREATE INDEX search_key_value ON search (key, value, entity_id, original_value)",
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
    + coalesce((SELECT max(rowid) FROM relations), 0)";

/// Below this many new rows, index maintenance row by row is cheap enough.
const BULK_MIN_ROWS: usize = 50_000;

/// Writes the relations, search rows and words of rewritten entities, over
/// one transaction's batches. On SQLite, once the rows written outnumber
/// the rows the tables held, [`BULK_INDEXES`] are dropped and built again
/// by [`IndexWriter::finish`] (on PostgreSQL dropping an index would lock
/// the table against every reader on every replica until the commit).
#[derive(Default)]
pub(crate) struct IndexWriter {
    /// Rows the tables held before this transaction wrote any.
    held: Option<usize>,
    written: usize,
    dropped: bool,
}

impl IndexWriter {
    /// Replaces the index rows of `rewritten`; ids from `fresh_from` on
    /// are new entities, which have none to clear.
    pub(crate) async fn write(
        &mut self,
        tx: &mut Conn<'_>,
        d: Dialect,
        rewritten: &[(i64, &NewEntity)],
        fresh_from: i64,
        phases: &mut Phases,
    ) -> Result<(), StoreError> {
        let old: Vec<i64> = rewritten
            .iter()
            .map(|(id, _)| *id)
            .filter(|id| *id < fresh_from)
            .collect();
        for chunk in old.chunks(CHUNK) {
            let ids = Value::from(chunk.to_vec()).to_string();
            for statement in [
                "DELETE FROM relations WHERE origin_id IN (SELECT CAST(value AS BIGINT) FROM json_each(?))",
                "DELETE FROM search WHERE entity_id IN (SELECT CAST(value AS BIGINT) FROM json_each(?))",
                "DELETE FROM search_tokens WHERE entity_id IN (SELECT CAST(value AS BIGINT) FROM json_each(?))",
            ] {
                on_conn!(tx, |tx| {
                    sqlx::query(d.sql(statement.to_owned()))
                        .bind(&ids)
                        .execute(&mut **tx)
                        .await?;
                });
            }
        }
        phases.lap("clear_index");
        let count = |rows: fn(&NewEntity) -> usize| rewritten.iter().map(|(_, e)| rows(e)).sum();
        let mut relations: Vec<[Param; 5]> = Vec::with_capacity(count(|e| e.relation_rows.len()));
        let mut search: Vec<[Param; 4]> = Vec::with_capacity(count(|e| e.search.len()));
        let mut words: Vec<(&str, i64, i64)> = Vec::with_capacity(count(|e| e.tokens.len()));
        for (id, e) in rewritten {
            for [source, t, key, target] in &e.relation_rows {
                relations.push([
                    Param::Int(*id),
                    Param::Text(Some(source)),
                    Param::Text(Some(t)),
                    Param::Text(Some(key)),
                    Param::Text(Some(target)),
                ]);
            }
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
        // In key order: fewer pages touched in the table clustered by word.
        words.sort_unstable();
        let tokens: Vec<[Param; 3]> = words
            .iter()
            .map(|(t, id, w)| [Param::Text(Some(t)), Param::Int(*id), Param::Int(*w)])
            .collect();
        phases.lap("index_rows");
        let rows = relations.len() + search.len();
        if d == Dialect::Sqlite && !self.dropped {
            let held = match self.held {
                Some(held) => held,
                None => {
                    let held: i64 = on_conn!(tx, |tx| {
                        sqlx::query_scalar(HELD_ROWS).fetch_one(&mut **tx).await?
                    });
                    *self.held.insert(held as usize)
                }
            };
            let total = self.written + rows;
            if total >= BULK_MIN_ROWS && total > held {
                for (name, _) in BULK_INDEXES {
                    on_conn!(tx, |tx| {
                        sqlx::query(sqlx::AssertSqlSafe(format!("DROP INDEX {name}")))
                            .execute(&mut **tx)
                            .await?;
                    });
                }
                self.dropped = true;
            }
        }
        self.written += rows;
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
        Ok(())
    }

    /// Builds the indexes dropped on the way, if any.
    pub(crate) async fn finish(&mut self, tx: &mut Conn<'_>) -> Result<(), StoreError> {
        if std::mem::take(&mut self.dropped) {
            on_conn!(tx, |tx| {
                sqlx::query(crate::SORTER_CACHE).execute(&mut **tx).await?;
                for (_, create) in BULK_INDEXES {
                    sqlx::query(create).execute(&mut **tx).await?;
                }
            });
        }
        Ok(())
    }
}

pub(crate) enum Param<'a> {
    Int(i64),
    Text(Option<&'a str>),
}

/// Inserts rows with multi-row `VALUES` statements on SQLite (see
/// [`values_statements`]), through one JSON parameter per statement on
/// PostgreSQL (see [`insert_rows_as_json`]).
pub(crate) async fn insert_rows<const N: usize>(
    tx: &mut Conn<'_>,
    d: Dialect,
    table: &str,
    rows: &[[Param<'_>; N]],
) -> Result<(), StoreError> {
    match tx {
        Conn::Any(tx) if d == Dialect::Postgres => insert_rows_as_json(tx, table, rows).await,
        Conn::Any(tx) => {
            execute_overlapped::<sqlx::Any>(&mut **tx, values_statements(table, rows)).await
        }
        Conn::Sqlite(tx) => {
            execute_overlapped::<sqlx::Sqlite>(&mut **tx, values_statements(table, rows)).await
        }
    }
}

/// SQLite's statements for `rows`: as many rows per statement as SQLite's
/// limit of bound parameters allows. What is left after the full
/// statements goes in statements of a few fixed sizes, so the connection's
/// cache of prepared statements holds them all: preparing a statement of
/// thousands of rows costs more than running it.
///
/// `OR FAIL`: a row that breaks a constraint still fails the statement,
/// but the rows before it are not undone, so SQLite keeps no statement
/// journal (a temporary file with a copy of each page the statement
/// touches: 260 MB of writes in a first ingest of 100,000 entities).
/// Every caller then gives up its transaction, which undoes them.
fn values_statements<'a, DB, const N: usize>(
    table: &'a str,
    rows: &'a [[Param<'a>; N]],
) -> impl Iterator<Item = Result<Query<'static, DB, DB::Arguments>, StoreError>> + 'a
where
    DB: sqlx::Database,
    i64: for<'t> Encode<'t, DB> + Type<DB>,
    for<'t> Option<&'t str>: Encode<'t, DB> + Type<DB>,
{
    const MAX_PARAMS: usize = 32_000;
    let row_sql = format!("({})", vec!["?"; N].join(", "));
    let full = MAX_PARAMS / N;
    let mut rest = rows;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let size = [full, 1024, 128, 16, 1]
            .into_iter()
            .find(|&size| size <= full && size <= rest.len())
            .unwrap_or(1);
        let (chunk, after) = rest.split_at(size);
        rest = after;
        let sql = format!(
            "INSERT OR FAIL INTO {table} VALUES {}",
            vec![row_sql.as_str(); chunk.len()].join(", ")
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for row in chunk {
            for p in row {
                q = match p {
                    Param::Int(i) => q.bind(*i),
                    Param::Text(t) => q.bind(*t),
                };
            }
        }
        Some(Ok(q))
    })
}

/// Runs each statement while the next one is made: binding thousands of
/// parameters is work for this thread, running the statement is the
/// database's, and the two overlap on two cores instead of taking turns.
async fn execute_overlapped<'q, DB>(
    conn: &mut DB::Connection,
    mut statements: impl Iterator<Item = Result<Query<'q, DB, DB::Arguments>, StoreError>>,
) -> Result<(), StoreError>
where
    DB: sqlx::Database,
    DB::Arguments: sqlx::IntoArguments<DB>,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
{
    let mut next = statements.next().transpose()?;
    while let Some(statement) = next.take() {
        // Biased: the statement is sent to the database before the next
        // one is made.
        let (done, made) = tokio::join!(biased; statement.execute(&mut *conn), async {
            statements.next()
        });
        done?;
        next = made.transpose()?;
    }
    Ok(())
}

/// PostgreSQL: a statement's rows go as one JSON parameter that the server
/// unpacks, instead of thousands of bound parameters, which PostgreSQL
/// takes longer to receive and bind than it takes to write the rows.
async fn insert_rows_as_json<const N: usize>(
    tx: &mut AnyConnection,
    table: &str,
    rows: &[[Param<'_>; N]],
) -> Result<(), StoreError> {
    const ROWS: usize = 4096;
    // A `jsonb` value holds at most 255 MB, and entity bodies may be up to
    // the 16 MiB file limit each: a statement also ends at this size.
    const BYTES: usize = 16 << 20;
    let Some(first) = rows.first() else {
        return Ok(());
    };
    // Every call site keeps a column's variant the same on every row.
    let columns: Vec<String> = first
        .iter()
        .enumerate()
        .map(|(i, p)| match p {
            Param::Int(_) => format!("(r->>{i})::bigint"),
            Param::Text(_) => format!("r->>{i}"),
        })
        .collect();
    let sql = format!(
        "INSERT INTO {table} SELECT {} FROM jsonb_array_elements($1::jsonb) r",
        columns.join(", ")
    );
    let mut rest = rows.iter().peekable();
    let statements = std::iter::from_fn(|| {
        rest.peek()?;
        let mut json = vec![b'['];
        for (n, row) in rest.by_ref().enumerate() {
            if n > 0 {
                json.push(b',');
            }
            json.push(b'[');
            for (j, p) in row.iter().enumerate() {
                if j > 0 {
                    json.push(b',');
                }
                match p {
                    Param::Int(v) => json.extend_from_slice(v.to_string().as_bytes()),
                    Param::Text(Some(t)) => {
                        if let Err(e) = serde_json::to_writer(&mut json, t) {
                            return Some(Err(StoreError::Corrupt(e.to_string())));
                        }
                    }
                    Param::Text(None) => json.extend_from_slice(b"null"),
                }
            }
            json.push(b']');
            if n + 1 == ROWS || json.len() >= BYTES {
                break;
            }
        }
        json.push(b']');
        // Valid UTF-8: built from `str`s, digits and JSON punctuation.
        Some(
            String::from_utf8(json)
                .map_err(|e| StoreError::Corrupt(e.to_string()))
                .map(|text| sqlx::query(sqlx::AssertSqlSafe(sql.clone())).bind(text)),
        )
    });
    execute_overlapped::<sqlx::Any>(tx, statements).await
}

/// Marks entities as orphans: the annotation in their body and in the
/// search index, a new etag and generation. Their relations stay.
pub(crate) async fn orphan_entities(
    tx: &mut Conn<'_>,
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
        let ids: Vec<Value> = chunk.iter().map(|r| r[0].clone()).collect();
        on_conn!(tx, |tx| {
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
            sqlx::query(sql!(
                d,
                "INSERT INTO search (entity_id, key, value, original_value)
                 SELECT CAST(value AS BIGINT), 'metadata.annotations.backstage.io/orphan', 'true', 'true' FROM json_each(?)"
            ))
            .bind(Value::from(ids).to_string())
            .execute(&mut **tx)
            .await?;
        });
    }
    Ok(())
}

pub(crate) async fn delete_entities(
    tx: &mut Conn<'_>,
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
            on_conn!(tx, |tx| {
                sqlx::query(d.sql(sql.to_owned()))
                    .bind(&ids)
                    .execute(&mut **tx)
                    .await?;
            });
        }
    }
    Ok(())
}

pub(crate) fn new_etag() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Facets count rows, so an entity has each `(key, value)` row once,
    /// with the first written form; that form is kept only where it
    /// differs from the lowercase value.
    #[test]
    fn an_entity_has_each_search_row_once() {
        let body = json!({
            "apiVersion": "backstage.io/v1alpha1",
            "kind": "Component",
            "metadata": {"name": "svc", "tags": ["Java", "java", "go", "go"]},
            "spec": {"owner": "team-a"},
        });
        let e = NewEntity::new(EntityRef::new("component", "default", "svc"), &body, vec![]);
        let rows = |key: &str| -> Vec<(Option<&str>, Option<&str>)> {
            e.search
                .iter()
                .filter(|(k, _, _)| k == key)
                .map(|(_, v, o)| (v.as_deref(), o.as_deref()))
                .collect()
        };
        assert_eq!(
            rows("metadata.tags"),
            [(Some("java"), Some("Java")), (Some("go"), None)]
        );
        assert_eq!(rows("metadata.tags.java"), [(Some("true"), None)]);
        assert_eq!(rows("metadata.tags.go"), [(Some("true"), None)]);
        assert_eq!(rows("spec.owner"), [(Some("team-a"), None)]);
    }
}
