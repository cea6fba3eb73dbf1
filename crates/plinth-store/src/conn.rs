//! The connection a refresh writes through.
//!
//! Everything goes through `sqlx::Any`, one code path for both databases,
//! except a refresh's transaction on an SQLite file: there the writer holds
//! a connection of sqlx's own SQLite driver. Through `Any`, every text
//! parameter is copied twice into new allocations before SQLite copies it
//! again, and freed twice after; a first ingest binds millions of them,
//! and that work sat on the writer's path, which is the ingest's longest
//! (a fifth of the writer's thread and most of the writer's task in
//! `perf`). The statements are the same text on both: [`on_conn!`] writes
//! each once and compiles it for either driver.

use sqlx::{Any, AnyConnection, Sqlite, SqliteConnection, Transaction};

use crate::StoreError;

/// A write transaction's connection, on either driver.
pub(crate) enum Conn<'c> {
    Any(&'c mut AnyConnection),
    Sqlite(&'c mut SqliteConnection),
}

impl<'c> From<&'c mut Transaction<'static, Any>> for Conn<'c> {
    fn from(tx: &'c mut Transaction<'static, Any>) -> Conn<'c> {
        Conn::Any(tx)
    }
}

/// Runs `$body` with `$c` bound to the connection of `$conn` (a `&mut
/// Conn`), once compiled for each driver; `$body` gives the same type on
/// both (query results are turned into plain values inside it).
macro_rules! on_conn {
    ($conn:expr, |$c:ident| $body:expr) => {
        match $conn {
            $crate::conn::Conn::Any($c) => $body,
            $crate::conn::Conn::Sqlite($c) => $body,
        }
    };
}
pub(crate) use on_conn;

/// A refresh's transaction: `Sqlite` on an SQLite file, `Any` otherwise.
pub(crate) enum WriteTx {
    Any(Transaction<'static, Any>),
    Sqlite(Transaction<'static, Sqlite>),
}

impl WriteTx {
    pub(crate) fn conn(&mut self) -> Conn<'_> {
        match self {
            WriteTx::Any(tx) => Conn::Any(tx),
            WriteTx::Sqlite(tx) => Conn::Sqlite(tx),
        }
    }

    pub(crate) async fn commit(self) -> Result<(), StoreError> {
        match self {
            WriteTx::Any(tx) => tx.commit().await?,
            WriteTx::Sqlite(tx) => tx.commit().await?,
        }
        Ok(())
    }
}
