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
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor};

mod access;
mod conn;
mod dialect;
mod first_load;
mod jobs;
mod migrations;
mod overview;
mod query;
mod read;
mod refresh;
pub mod search;
mod sign_in;
pub mod testing;
mod text;
pub mod transfer;
mod write;

pub use access::{Audit, AuditEntry, AuditQuery, AuditRecord, NewToken, TokenRecord};
pub use dialect::Dialect;
pub use first_load::FirstLoad;
pub use jobs::{Lease, now_ms};
pub use overview::CatalogHealth;
pub use plinth_model::{EntityRef, Relation, RelationType};
pub use query::{
    EntityQuery, FacetValues, Filter, FilterSet, OrderField, Predicate, QueryPage, SearchHit,
    SortDirection,
};
pub use read::LocationEntities;
pub use refresh::{RefreshAudit, RefreshWriter};
pub use sign_in::{Account, Session};
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
    #[error("an account named {0} already exists")]
    AccountExists(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("{0}")]
    Config(String),
    #[error("{path}: {source}")]
    File {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "the lease on location {0} was lost to another replica; its refresh is left to that one"
    )]
    LeaseLost(String),
    #[error("a write of the refresh of location {0} failed; nothing of that refresh was committed")]
    RefreshFailed(String),
}

/// The catalog store.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    dialect: Dialect,
    /// On an SQLite file, the connection a refresh writes through (see
    /// `conn`): sqlx's own SQLite driver, without `Any`'s copies.
    writer: Option<sqlx::SqlitePool>,
    /// Counts and facets by query, valid for one catalog version.
    cache: std::sync::Arc<query::AnswerCache>,
    /// Search keys' values in memory for the full-text filter, valid for
    /// one catalog version.
    text: std::sync::Arc<text::TextIndex>,
    /// Asks the background task to checkpoint SQLite's WAL after a write.
    checkpoints: Option<tokio::sync::mpsc::Sender<()>>,
}

/// Both drivers behind `sqlx::Any`, installed once per process.
fn install_drivers() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(sqlx::any::install_default_drivers);
}

/// What every SQLite connection sets, in WAL mode or with the rollback
/// journal of a first load's side file (see `first_load`).
macro_rules! sqlite_session {
    () => {
        "PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 30000; PRAGMA cache_size = -16384;
    PRAGMA threads = 2;"
    };
}
pub(crate) use sqlite_session;

/// Pragmas of every SQLite connection: WAL so readers never wait for the
/// writer, foreign keys on, a page cache of 16 MiB (each of the pool's
/// connections keeps its own; a refresh's writer takes [`WRITER_CACHE`]),
/// and a WAL cut back to 64 MiB by the first write after a complete
/// checkpoint (SQLite otherwise keeps it at its largest: 4.5 GB after a
/// million entities were written).
const SQLITE_PRAGMAS: &str = concat!(
    "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA wal_autocheckpoint = 0;
    PRAGMA journal_size_limit = 67108864;",
    sqlite_session!()
);

/// A refresh's writer's page cache, while it writes its rows.
pub(crate) const WRITER_CACHE: &str = "PRAGMA cache_size = -65536";
/// The writer's page cache while it builds the bulk indexes (see
/// `write::BULK_INDEXES`): SQLite's sorter writes out a sorted run whenever
/// it fills the cache, and with `PRAGMA threads` it sorts each run on
/// another thread while it reads on, so a smaller cache sorts on both
/// cores (1.5-1.9 s instead of 2.1-2.4 s for the search index of 100,000
/// entities in isolation; 1.9-2.9 s instead of 3.3-4.3 s for all three in
/// a first ingest).
pub(crate) const SORTER_CACHE: &str = "PRAGMA cache_size = -8192";
/// What the writer's connection goes back to before its commit.
pub(crate) const READER_CACHE: &str = "PRAGMA cache_size = -16384";

/// Settings of every PostgreSQL session: no JIT compilation, which costs
/// hundreds of milliseconds and pays off only for long analytic queries;
/// and a plan for each execution's values, since how many rows a search
/// key and value match decides the plan (a generic plan took 146 ms for a
/// two-filter page that the custom plan finds in 2 ms; planning is ~1 ms).
const POSTGRES_SESSION: &str = "SET jit = off; SET plan_cache_mode = force_custom_plan";

impl Store {
    /// Opens (creating if needed) the SQLite database at `path` and applies
    /// migrations.
    pub async fn open_sqlite(path: &Path) -> Result<Store, StoreError> {
        Store::open_sqlite_with(path, SQLITE_PRAGMAS).await
    }

    /// [`Store::open_sqlite`] with `pragmas` for every connection.
    async fn open_sqlite_with(path: &Path, pragmas: &'static str) -> Result<Store, StoreError> {
        let path = path.to_str().ok_or_else(|| {
            StoreError::Config(format!(
                "{}: the data directory's path must be UTF-8",
                path.display()
            ))
        })?;
        // The path is percent-encoded: `?` and `#` are legal in file names.
        let encoded: String = path
            .chars()
            .map(|c| match c {
                '%' | '?' | '#' => format!("%{:02X}", c as u32),
                c => c.to_string(),
            })
            .collect();
        // Checkpoints run after commits in a background task (see
        // `Store::written`), not inside the commit that fills the WAL, so a
        // large refresh is visible as soon as it commits.
        let url = format!("sqlite://{encoded}?mode=rwc");
        let mut store = Store::connect(&url, Dialect::Sqlite, 8, pragmas).await?;
        let options: sqlx::sqlite::SqliteConnectOptions = url
            .parse()
            .map_err(|e| StoreError::Config(format!("database URL {url:?}: {e}")))?;
        // One connection: writers take turns anyway. Opened on first use
        // and kept, so a refresh does not pay for opening it.
        store.writer = Some(
            sqlx::sqlite::SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(0)
                .idle_timeout(None)
                .max_lifetime(None)
                .acquire_timeout(Duration::from_secs(5))
                .after_connect(move |conn, _| {
                    Box::pin(async move {
                        conn.execute(pragmas).await?;
                        Ok(())
                    })
                })
                .connect_lazy_with(options),
        );
        Ok(store)
    }

    /// A private in-memory database, for tests and dry runs.
    pub async fn open_in_memory() -> Result<Store, StoreError> {
        // One connection: each in-memory connection is its own database.
        Store::connect("sqlite::memory:", Dialect::Sqlite, 1, SQLITE_PRAGMAS).await
    }

    /// Connects to PostgreSQL at `url` (`postgres://user@host:port/db`) and
    /// applies migrations.
    pub async fn open_postgres(url: &str) -> Result<Store, StoreError> {
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(StoreError::Config(format!(
                "database URL {url:?} is not PostgreSQL's: write postgres://USER@HOST:PORT/DATABASE"
            )));
        }
        Store::connect(url, Dialect::Postgres, 10, POSTGRES_SESSION).await
    }

    /// Opens the store a URL names: `postgres://…`, or `sqlite://PATH`.
    pub async fn open_url(url: &str) -> Result<Store, StoreError> {
        match url.strip_prefix("sqlite://") {
            Some(path) => Store::open_sqlite(Path::new(path)).await,
            None => Store::open_postgres(url).await,
        }
    }

    /// A pool of up to `max` connections to `url`, each set up by
    /// `session`, with migrations applied.
    async fn connect(
        url: &str,
        dialect: Dialect,
        max: u32,
        session: &'static str,
    ) -> Result<Store, StoreError> {
        install_drivers();
        let options: AnyConnectOptions = url
            .parse()
            .map_err(|e| StoreError::Config(format!("database URL {url:?}: {e}")))?;
        let mut pool = AnyPoolOptions::new()
            .max_connections(max)
            .min_connections(1)
            // Fail fast when the database is gone: requests answer 503.
            .acquire_timeout(Duration::from_secs(5));
        pool = pool.after_connect(move |conn, _| {
            Box::pin(async move {
                conn.execute(session).await?;
                Ok(())
            })
        });
        let pool = pool.connect_with(options).await?;
        migrations::migrate(&pool, dialect).await?;
        let checkpoints = (dialect == Dialect::Sqlite).then(|| {
            // One pending request is enough: a checkpoint covers every
            // commit before it. The task ends when the last clone of the
            // store is gone.
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
            checkpoints
        });
        Ok(Store {
            pool,
            dialect,
            writer: None,
            cache: Default::default(),
            text: Default::default(),
            checkpoints,
        })
    }

    /// Which database this store talks to.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// Called after every committed write: schedules a WAL checkpoint.
    pub(crate) fn written(&self) {
        // Full means one is already pending, which covers this write.
        if let Some(checkpoints) = &self.checkpoints {
            let _ = checkpoints.try_send(());
        }
    }

    /// Called after a committed write that bumped the catalog version: the
    /// full-text columns of the old version go at once (their memory
    /// rather than at the next full-text call). Writes that leave the
    /// entities as they were (tokens, sessions, unchanged refreshes) keep
    /// them.
    pub(crate) fn entities_changed(&self) {
        self.text.clear();
    }

    /// Starts a write transaction. Writers take turns, on either database:
    /// SQLite's `BEGIN IMMEDIATE`, PostgreSQL's transaction-scoped advisory
    /// lock. One writer at a time keeps refreshes from different replicas
    /// from interleaving (entity ids are given by the writer).
    pub(crate) async fn begin_write(
        &self,
    ) -> Result<sqlx::Transaction<'static, sqlx::Any>, StoreError> {
        match self.dialect {
            Dialect::Sqlite => Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?),
            Dialect::Postgres => {
                let mut tx = self.pool.begin().await?;
                sqlx::query("SELECT 1 FROM pg_advisory_xact_lock($1)")
                    .bind(WRITE_LOCK)
                    .execute(&mut *tx)
                    .await?;
                Ok(tx)
            }
        }
    }

    /// Starts a refresh's write transaction (see [`Store::begin_write`]),
    /// on the typed writer connection where there is one.
    pub(crate) async fn begin_refresh_write(&self) -> Result<conn::WriteTx, StoreError> {
        match &self.writer {
            Some(writer) => Ok(conn::WriteTx::Sqlite(
                writer.begin_with("BEGIN IMMEDIATE").await?,
            )),
            None => Ok(conn::WriteTx::Any(self.begin_write().await?)),
        }
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }

    /// Closes the connections (tests drop their database after this).
    pub async fn close(&self) {
        if let Some(writer) = &self.writer {
            writer.close().await;
        }
        self.pool.close().await;
    }
}

/// The advisory lock key writers hold on PostgreSQL ("plinth" in ASCII).
const WRITE_LOCK: i64 = 0x706c_696e_7468;

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
        serde_json::to_value(self.api()).unwrap_or(Value::Null)
    }

    /// The same shape, serialized straight from the stored parts: a page of
    /// entities is written without copying each body into a new tree.
    pub fn api(&self) -> ApiEntity<'_> {
        ApiEntity(self)
    }
}

/// [`StoredEntity::api`]: keys keep the body's order; `uid` and `etag`
/// replace the body's own or follow its metadata, `relations` and `status`
/// likewise at the root.
pub struct ApiEntity<'a>(&'a StoredEntity);

impl Serialize for ApiEntity<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let e = self.0;
        let Value::Object(root) = &e.body else {
            return e.body.serialize(s);
        };
        let mut map = s.serialize_map(None)?;
        for (k, v) in root {
            match (k.as_str(), v) {
                ("metadata", Value::Object(m)) => map.serialize_entry(k, &Metadata(m, e))?,
                ("relations", _) => map.serialize_entry(k, &Relations(&e.relations))?,
                ("status", _) if !e.status.is_empty() => {
                    map.serialize_entry(k, &StatusItems(&e.status))?;
                }
                _ => map.serialize_entry(k, v)?,
            }
        }
        if !root.contains_key("relations") {
            map.serialize_entry("relations", &Relations(&e.relations))?;
        }
        if !root.contains_key("status") && !e.status.is_empty() {
            map.serialize_entry("status", &StatusItems(&e.status))?;
        }
        map.end()
    }
}

struct Metadata<'a>(&'a serde_json::Map<String, Value>, &'a StoredEntity);

impl Serialize for Metadata<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let Metadata(m, e) = self;
        let mut map = s.serialize_map(None)?;
        for (k, v) in m.iter() {
            match k.as_str() {
                "uid" => map.serialize_entry(k, &e.uid)?,
                "etag" => map.serialize_entry(k, &e.etag)?,
                _ => map.serialize_entry(k, v)?,
            }
        }
        if !m.contains_key("uid") {
            map.serialize_entry("uid", &e.uid)?;
        }
        if !m.contains_key("etag") {
            map.serialize_entry("etag", &e.etag)?;
        }
        map.end()
    }
}

struct Relations<'a>(&'a [(String, String)]);

impl Serialize for Relations<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        #[derive(Serialize)]
        struct Relation<'a> {
            r#type: &'a str,
            #[serde(rename = "targetRef")]
            target_ref: &'a str,
        }
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for (t, target) in self.0 {
            seq.serialize_element(&Relation {
                r#type: t,
                target_ref: target,
            })?;
        }
        seq.end()
    }
}

struct StatusItems<'a>(&'a [Value]);

impl Serialize for StatusItems<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(1))?;
        map.serialize_entry("items", self.0)?;
        map.end()
    }
}

/// Current time as RFC 3339 UTC text, for timestamps stored as text.
pub(crate) fn now() -> String {
    timestamp(std::time::SystemTime::now())
}

/// A time as the store writes it: RFC 3339 UTC with milliseconds, so that
/// text order is time order.
pub fn timestamp(at: std::time::SystemTime) -> String {
    let d = at.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
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
