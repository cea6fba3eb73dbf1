//! Databases for tests, so that one suite runs on both stores: SQLite in a
//! scratch directory, or a PostgreSQL database of the test's own, created
//! with a unique name and dropped afterwards.
//!
//! The PostgreSQL server is `PLINTH_TEST_POSTGRES` (a URL to any database
//! on it) or `postgres://postgres@127.0.0.1:5432/test`. When it cannot be
//! reached a test skips with a printed reason, and fails under `CI=true`.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use sqlx::AnyConnection;
use sqlx::Connection;

use crate::{Dialect, Store};

/// The server PostgreSQL tests create their databases on.
pub fn postgres_server() -> String {
    std::env::var("PLINTH_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// A database for one test. Dropping it drops a PostgreSQL database (a
/// SQLite file goes with the test's scratch directory).
pub struct TestDb {
    /// What `Store::open_url` and `plinth --database` take.
    pub url: String,
    pub dialect: Dialect,
    /// `(server URL, database)` to drop afterwards.
    postgres: Option<(String, String)>,
}

impl TestDb {
    /// A fresh database of `dialect`; SQLite's file goes in `dir`. `None`
    /// (after printing why) when PostgreSQL is not there and `CI` is not
    /// `true`; under CI that is a failure.
    pub async fn create(dialect: Dialect, dir: &Path) -> Option<TestDb> {
        let created = TestDb::create_on(&postgres_server(), dialect, dir).await;
        match created {
            Ok(db) => Some(db),
            Err(e) => {
                unavailable(&e);
                None
            }
        }
    }

    /// As [`TestDb::create`], on the PostgreSQL server at `server` (a URL
    /// of any database on it); the error says what could not be reached.
    pub async fn create_on(server: &str, dialect: Dialect, dir: &Path) -> Result<TestDb, String> {
        match dialect {
            Dialect::Sqlite => Ok(TestDb {
                url: format!("sqlite://{}", dir.join("plinth.db").display()),
                dialect,
                postgres: None,
            }),
            Dialect::Postgres => {
                static N: AtomicUsize = AtomicUsize::new(0);
                let server = server.to_owned();
                let name = format!(
                    "plinth_test_{}_{}",
                    std::process::id(),
                    N.fetch_add(1, Ordering::Relaxed)
                );
                crate::install_drivers();
                let created = async {
                    let mut admin = AnyConnection::connect(&server).await?;
                    sqlx::query(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {name}"
                    )))
                    .execute(&mut admin)
                    .await?;
                    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                        .execute(&mut admin)
                        .await?;
                    admin.close().await
                }
                .await;
                if let Err(e) = created {
                    return Err(format!("PostgreSQL at {server} ({e})"));
                }
                let url = match server.rsplit_once('/') {
                    Some((base, _)) => format!("{base}/{name}"),
                    None => format!("{server}/{name}"),
                };
                Ok(TestDb {
                    url,
                    dialect,
                    postgres: Some((server, name)),
                })
            }
        }
    }

    /// Opens a store on this database (migrating it on first use).
    pub async fn open(&self) -> Store {
        Store::open_url(&self.url)
            .await
            .unwrap_or_else(|e| panic!("cannot open the test store {}: {e}", self.url))
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some((server, name)) = self.postgres.take() else {
            return;
        };
        // Drop cannot await, and may run inside a runtime: a thread of its own.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            runtime.block_on(async {
                let mut admin = AnyConnection::connect(&server)
                    .await
                    .map_err(|e| e.to_string())?;
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                )))
                .execute(&mut admin)
                .await
                .map_err(|e| e.to_string())?;
                admin.close().await.map_err(|e| e.to_string())
            })
        })
        .join();
        if let Ok(Err(e)) = dropped {
            eprintln!("could not drop a test database: {e}");
        }
    }
}

/// Skips with a printed reason on a developer's machine; fails under CI.
pub fn unavailable(what: &str) {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{what} is needed under CI=true");
    }
    eprintln!("SKIPPED: {what} is not available");
}

/// Runs a store test body on SQLite and on PostgreSQL, as two tests in
/// modules `sqlite` and `postgres`. Each body gets the dialect in the
/// variable named first.
///
/// ```text
/// on_both_stores!(dialect => {
///     async fn a_test() { let store = Fixture::new(dialect).await; … }
/// });
/// ```
#[macro_export]
macro_rules! on_both_stores {
    ($dialect:ident => { $($tests:tt)* }) => {
        $crate::on_both_stores!(@module sqlite, Sqlite, $dialect, $($tests)*);
        $crate::on_both_stores!(@module postgres, Postgres, $dialect, $($tests)*);
    };
    (@module $module:ident, $variant:ident, $dialect:ident,
        $( $(#[$meta:meta])* async fn $name:ident() $body:block )*) => {
        mod $module {
            #[allow(unused_imports)]
            use super::*;
            $(
                $(#[$meta])*
                #[tokio::test]
                async fn $name() {
                    let $dialect = $crate::Dialect::$variant;
                    $body
                }
            )*
        }
    };
}
