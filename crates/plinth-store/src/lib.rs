//! The catalog store: locations, the files read from them, entities with
//! their relations, and the index behind filters.
//!
//! One seam, [`Store`], over the backends; SQLite is the embedded default
//! (PostgreSQL comes with its own module and the same tests). Every write is
//! one transaction: a crash leaves the last committed state, and a location
//! is never visible half-ingested.
//!
//! Architecture invariant: the store knows entities as parsed model types
//! and JSON; it never reads files or speaks HTTP.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;
use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

mod migrations;
mod query;
mod read;
pub mod search;
pub mod transfer;
mod write;

pub use plinth_model::{EntityRef, Relation, RelationType};
pub use query::{
    EntityQuery, Filter, FilterSet, OrderField, Predicate, QueryPage, SearchHit, SortDirection,
};
pub use write::{
    FileUpdate, KnownFile, NewEntity, OrphanPolicy, RefreshOutcome, RefreshSummary, Unchanged,
};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("{0}")]
    Schema(String),
    #[error("location {0} is already registered")]
    LocationExists(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

/// The catalog store.
#[derive(Debug, Clone)]
pub struct Store {
    pool: SqlitePool,
    /// Counts and facets by query, valid for one catalog version.
    cache: std::sync::Arc<query::AnswerCache>,
    /// Asks the background task to checkpoint the WAL after a write.
    checkpoints: tokio::sync::mpsc::Sender<()>,
}

impl Store {
    /// Opens (creating if needed) the SQLite database at `path` and applies
    /// migrations.
    pub async fn open_sqlite(path: &Path) -> Result<Store, StoreError> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(30))
            .pragma("cache_size", "-65536")
            // Checkpoints run after commits in a background task (see
            // `Store::written`), not inside the commit that fills the WAL,
            // so a large refresh is visible as soon as it commits.
            .pragma("wal_autocheckpoint", "0");
        Store::connect(options, 8).await
    }

    /// A private in-memory database, for tests and dry runs.
    pub async fn open_in_memory() -> Result<Store, StoreError> {
        let options = SqliteConnectOptions::from_str("sqlite::memory:")?.foreign_keys(true);
        // One connection: each in-memory connection is its own database.
        Store::connect(options, 1).await
    }

    async fn connect(options: SqliteConnectOptions, max: u32) -> Result<Store, StoreError> {
        let pool = SqlitePoolOptions::new()
            .max_connections(max)
            .min_connections(1)
            .connect_with(options)
            .await?;
        migrations::migrate_sqlite(&pool).await?;
        // One pending request is enough: a checkpoint covers every commit
        // before it. The task ends when the last clone of the store is gone.
        let (checkpoints, mut pending) = tokio::sync::mpsc::channel::<()>(1);
        let background = pool.clone();
        tokio::spawn(async move {
            while pending.recv().await.is_some() {
                if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                    .execute(&background)
                    .await
                {
                    tracing::warn!(error = %e, "WAL checkpoint failed; it is retried after the next write");
                }
            }
        });
        Ok(Store {
            pool,
            cache: Default::default(),
            checkpoints,
        })
    }

    /// Called after every committed write: schedules a WAL checkpoint.
    pub(crate) fn written(&self) {
        // Full means one is already pending, which covers this write.
        let _ = self.checkpoints.try_send(());
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }
}

/// Where entities come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Location {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub target: String,
    #[serde(skip)]
    pub created_at: String,
    #[serde(skip)]
    pub refresh: Option<LocationRefresh>,
}

/// The result of the newest refresh of a location.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LocationRefresh {
    pub at: String,
    pub status: String,
    pub message: Option<String>,
}

/// An entity as stored, with what the catalog knows about it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEntity {
    pub uid: String,
    pub entity_ref: String,
    pub etag: String,
    pub generation: i64,
    pub location_id: String,
    pub file: String,
    pub body: Value,
    /// `(type, targetRef)`, both directions, sorted.
    pub relations: Vec<(String, String)>,
    /// Status items: problems with the newest version, conflicts, dangling
    /// references.
    pub status: Vec<Value>,
}

impl StoredEntity {
    /// The entity in Backstage's API shape: the body with `metadata.uid`,
    /// `metadata.etag`, `relations` and (when there is any) `status.items`.
    pub fn to_api_json(&self) -> Value {
        let mut v = self.body.clone();
        if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
            m.insert("uid".into(), self.uid.clone().into());
            m.insert("etag".into(), self.etag.clone().into());
        }
        if let Some(root) = v.as_object_mut() {
            root.insert(
                "relations".into(),
                Value::Array(
                    self.relations
                        .iter()
                        .map(|(t, target)| serde_json::json!({"type": t, "targetRef": target}))
                        .collect(),
                ),
            );
            if !self.status.is_empty() {
                root.insert("status".into(), serde_json::json!({ "items": self.status }));
            }
        }
        v
    }
}

/// Current time as RFC 3339 UTC text, for timestamps stored as text.
pub(crate) fn now() -> String {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    rfc3339(d.as_secs() as i64, d.subsec_millis())
}

/// Civil date from days since the epoch (Howard Hinnant's algorithm).
fn rfc3339(secs: i64, millis: u32) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests;
