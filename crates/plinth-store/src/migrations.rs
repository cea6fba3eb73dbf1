//! Schema migrations, embedded in the binary and applied at start.
//!
//! Each migration runs once, in its own transaction, in order; applied ones
//! are recorded in `plinth_migrations`. Never edit an applied migration: add
//! a new one.

use sqlx::{AssertSqlSafe, Row, Sqlite, SqlitePool, Transaction};

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
        if *version == 3 {
            backfill_search_tokens(&mut tx).await?;
        }
        sqlx::query("INSERT INTO plinth_migrations (version, name, applied_at) VALUES (?, ?, datetime('now'))")
            .bind(version)
            .bind(name)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
    }
    Ok(())
}

/// Words for the ranked search of entities stored before the token table
/// existed; tokenising is Rust code, so it cannot be plain SQL.
async fn backfill_search_tokens(tx: &mut Transaction<'static, Sqlite>) -> Result<(), StoreError> {
    let mut after = 0_i64;
    loop {
        let rows = sqlx::query("SELECT id, body FROM entities WHERE id > ? ORDER BY id LIMIT 2000")
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
            "INSERT INTO search_tokens (entity_id, token, weight)
             SELECT value ->> 0, value ->> 1, value ->> 2 FROM json_each(?)",
        )
        .bind(serde_json::Value::from(tokens).to_string())
        .execute(&mut **tx)
        .await?;
    }
}
