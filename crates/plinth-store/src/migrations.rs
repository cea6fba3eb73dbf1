//! Schema migrations, embedded in the binary and applied at start.
//!
//! Each migration runs once, in its own transaction, in order; applied ones
//! are recorded in `plinth_migrations`. Never edit an applied migration: add
//! a new one.

use sqlx::{Any, AnyPool, AssertSqlSafe, Row, Transaction};

use crate::dialect::{Dialect, sql};
use crate::{StoreError, now};

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
    (
        3,
        "search_tokens",
        include_str!("../migrations/sqlite/0003_search_tokens.sql"),
    ),
    (
        4,
        "location_file_stat",
        include_str!("../migrations/sqlite/0004_location_file_stat.sql"),
    ),
    (
        5,
        "location_schedule",
        include_str!("../migrations/sqlite/0005_location_schedule.sql"),
    ),
    (
        6,
        "overview",
        include_str!("../migrations/sqlite/0006_overview.sql"),
    ),
    (
        7,
        "index_tables_without_foreign_keys",
        include_str!("../migrations/sqlite/0007_index_tables_without_foreign_keys.sql"),
    ),
    (
        8,
        "access",
        include_str!("../migrations/sqlite/0008_access.sql"),
    ),
    (
        9,
        "sign_in",
        include_str!("../migrations/sqlite/0009_sign_in.sql"),
    ),
    (
        10,
        "orphan_index",
        include_str!("../migrations/sqlite/0010_orphan_index.sql"),
    ),
    (
        11,
        "covering_search_index",
        include_str!("../migrations/sqlite/0011_covering_search_index.sql"),
    ),
];

/// The PostgreSQL schema started where SQLite's fourth migration left it.
const POSTGRES: &[(i64, &str, &str)] = &[
    (
        1,
        "catalog",
        include_str!("../migrations/postgres/0001_catalog.sql"),
    ),
    (
        2,
        "location_schedule",
        include_str!("../migrations/postgres/0002_location_schedule.sql"),
    ),
    (
        3,
        "search_statistics",
        include_str!("../migrations/postgres/0003_search_statistics.sql"),
    ),
    (
        4,
        "index_tables_without_foreign_keys",
        include_str!("../migrations/postgres/0004_index_tables_without_foreign_keys.sql"),
    ),
    (
        5,
        "overview",
        include_str!("../migrations/postgres/0005_overview.sql"),
    ),
    (
        6,
        "reference_lists",
        include_str!("../migrations/postgres/0006_reference_lists.sql"),
    ),
    (
        7,
        "access",
        include_str!("../migrations/postgres/0007_access.sql"),
    ),
    (
        8,
        "sign_in",
        include_str!("../migrations/postgres/0008_sign_in.sql"),
    ),
    (
        9,
        "orphan_index",
        include_str!("../migrations/postgres/0009_orphan_index.sql"),
    ),
    (
        10,
        "covering_search_index",
        include_str!("../migrations/postgres/0010_covering_search_index.sql"),
    ),
];

pub(crate) async fn migrate(pool: &AnyPool, dialect: Dialect) -> Result<(), StoreError> {
    let migrations = match dialect {
        Dialect::Sqlite => SQLITE,
        Dialect::Postgres => POSTGRES,
    };
    // Under the lock on PostgreSQL: replicas starting together would race
    // to create the table.
    let mut tx = pool.begin().await?;
    if dialect == Dialect::Postgres {
        sqlx::query(sql!(dialect, "SELECT 1 FROM pg_advisory_xact_lock($1)"))
            .bind(MIGRATION_LOCK)
            .execute(&mut *tx)
            .await?;
    }
    sqlx::query(sql!(
        dialect,
        "CREATE TABLE IF NOT EXISTS plinth_migrations (
            version INTEGER PRIMARY KEY,
            name TEXT NOT NULL,
            applied_at TEXT NOT NULL
        )"
    ))
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    let applied: Vec<(i64,)> =
        sqlx::query_as(sql!(dialect, "SELECT version FROM plinth_migrations"))
            .fetch_all(pool)
            .await?;
    let newest_known = migrations.last().map_or(0, |m| m.0);
    if let Some((v,)) = applied.iter().find(|(v,)| *v > newest_known) {
        return Err(StoreError::Schema(format!(
            "the database has schema version {v}, newer than this plinth knows ({newest_known}); upgrade plinth"
        )));
    }
    for (version, name, script) in migrations {
        if applied.iter().any(|(v,)| v == version) {
            continue;
        }
        let mut tx = match dialect {
            Dialect::Sqlite => pool.begin_with("BEGIN IMMEDIATE").await?,
            Dialect::Postgres => pool.begin().await?,
        };
        if dialect == Dialect::Postgres {
            // Replicas starting together migrate one at a time; the one
            // that waited finds the work done.
            sqlx::query(sql!(dialect, "SELECT 1 FROM pg_advisory_xact_lock($1)"))
                .bind(MIGRATION_LOCK)
                .execute(&mut *tx)
                .await?;
            let done: Option<i64> = sqlx::query_scalar(sql!(
                dialect,
                "SELECT version FROM plinth_migrations WHERE version = $1"
            ))
            .bind(version)
            .fetch_optional(&mut *tx)
            .await?;
            if done.is_some() {
                continue;
            }
        }
        sqlx::raw_sql(AssertSqlSafe(*script))
            .execute(&mut *tx)
            .await?;
        if dialect == Dialect::Sqlite && *version == 3 {
            backfill_search_tokens(&mut tx).await?;
        }
        sqlx::query(sql!(
            dialect,
            "INSERT INTO plinth_migrations (version, name, applied_at) VALUES (?, ?, ?)"
        ))
        .bind(version)
        .bind(*name)
        .bind(now())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
    }
    Ok(())
}

/// The advisory lock key migrations hold on PostgreSQL.
const MIGRATION_LOCK: i64 = 0x706c_696e_746d;

/// Words for the ranked search of entities stored before the token table
/// existed; tokenising is Rust code, so it cannot be plain SQL.
async fn backfill_search_tokens(tx: &mut Transaction<'static, Any>) -> Result<(), StoreError> {
    let mut after = 0_i64;
    loop {
        let rows = sqlx::query(sql!(
            Dialect::Sqlite,
            "SELECT id, body FROM entities WHERE id > ? ORDER BY id LIMIT 2000"
        ))
        .bind(after)
        .fetch_all(&mut **tx)
        .await?;
        let Some(last) = rows.last() else {
            return Ok(());
        };
        after = last.get("id");
        let mut tokens = Vec::new();
        for row in &rows {
            let body: serde_json::Value = serde_json::from_str(row.get("body"))
                .map_err(|e| StoreError::Corrupt(e.to_string()))?;
            let id: i64 = row.get("id");
            tokens.extend(
                crate::search::search_tokens(&body)
                    .into_iter()
                    .map(|(t, w)| serde_json::json!([id, t, w])),
            );
        }
        sqlx::query(
            sql!(Dialect::Sqlite, "INSERT INTO search_tokens (entity_id, token, weight)
             SELECT CAST(u.value ->> 0 AS BIGINT), u.value ->> 1, CAST(u.value ->> 2 AS BIGINT) FROM json_each(?) AS u"),
        )
        .bind(serde_json::Value::from(tokens).to_string())
        .execute(&mut **tx)
        .await?;
    }
}
