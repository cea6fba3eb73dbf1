//! Schema migrations, embedded in the binary and applied at start.
//!
//! Each migration runs once, in its own transaction, in order; applied ones
//! are recorded in `plinth_migrations`. Never edit an applied migration: add
//! a new one.

use sqlx::{AssertSqlSafe, SqlitePool};

use crate::StoreError;

/// `(version, name, sql)`, in order.
const SQLITE: &[(i64, &str, &str)] = &[
    (
        1,
        "catalog",
        include_str!("../migrations/sqlite/0001_catalog.sql"),
    ),
    (
        2,
        "search_entity_narrow",
        include_str!("../migrations/sqlite/0002_search_entity_narrow.sql"),
    ),
];

pub(crate) async fn migrate_sqlite(pool: &SqlitePool) -> Result<(), StoreError> {
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS plinth_migrations (
            version INTEGER PRIMARY KEY,
            name TEXT NOT NULL,
            applied_at TEXT NOT NULL
        )",
    )
    .execute(pool)
    .await?;
    let applied: Vec<(i64,)> = sqlx::query_as("SELECT version FROM plinth_migrations")
        .fetch_all(pool)
        .await?;
    let newest_known = SQLITE.last().map_or(0, |m| m.0);
    if let Some((v,)) = applied.iter().find(|(v,)| *v > newest_known) {
        return Err(StoreError::Schema(format!(
            "the database has schema version {v}, newer than this plinth knows ({newest_known}); upgrade plinth"
        )));
    }
    for (version, name, sql) in SQLITE {
        if applied.iter().any(|(v,)| v == version) {
            continue;
        }
        let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
        sqlx::raw_sql(AssertSqlSafe(*sql)).execute(&mut *tx).await?;
        sqlx::query("INSERT INTO plinth_migrations (version, name, applied_at) VALUES (?, ?, datetime('now'))")
            .bind(version)
            .bind(name)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
    }
    Ok(())
}
