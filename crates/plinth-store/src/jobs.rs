//! Scheduled refreshes as jobs shared by every replica on one database.
//!
//! Each location is a job: due at `next_refresh_at`, taken by one replica
//! at a time through a lease (`lease_holder` until `lease_until`). A
//! replica claims a due, unleased location inside a write transaction
//! (writers take turns, see `Store::begin_write`), so two replicas never
//! hold the same lease; it renews the lease while it works, and the
//! refresh's own commit checks the lease and ends the job (next due time,
//! lease cleared) in the same transaction. A replica that dies leaves its
//! lease to run out; another then takes the job, and the dead replica's
//! uncommitted work is gone with its transaction: nothing is done twice,
//! nothing is lost.
//!
//! Times are milliseconds since the epoch by each replica's clock; leases
//! are long next to the clock skew of machines kept by NTP.

use crate::conn::{Conn, on_conn};
use crate::dialect::sql;
use crate::{Location, Store, StoreError};

/// A replica's hold on one location's refresh.
#[derive(Debug, Clone, Default)]
pub struct Lease {
    /// Who holds it: unique per replica process.
    pub holder: String,
    /// Milliseconds from this refresh's commit until the location is due
    /// again.
    pub interval_ms: i64,
    /// Set (shared by clones) once the refresh's transaction holds the
    /// write turn and found the lease still held: from then until its
    /// commit no one can take the job (claims take the write turn too), so
    /// the holder stops renewing. On SQLite a renewal would only wait for
    /// that very transaction, up to the busy timeout, again and again.
    pub writing: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

/// Milliseconds since the epoch, now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl Store {
    /// Takes the lease of the location due longest ago that no live lease
    /// holds, until `lease_until`; `None` when nothing is due.
    pub async fn claim_due_location(
        &self,
        holder: &str,
        now: i64,
        lease_until: i64,
    ) -> Result<Option<Location>, StoreError> {
        self.claim_due(holder, now, lease_until, false).await
    }

    /// [`Store::claim_due_location`] among locations never refreshed yet
    /// (registered at start), the ones a server reads before it listens.
    pub async fn claim_due_new_location(
        &self,
        holder: &str,
        now: i64,
        lease_until: i64,
    ) -> Result<Option<Location>, StoreError> {
        self.claim_due(holder, now, lease_until, true).await
    }

    async fn claim_due(
        &self,
        holder: &str,
        now: i64,
        lease_until: i64,
        only_new: bool,
    ) -> Result<Option<Location>, StoreError> {
        const DUE: &str = "SELECT id FROM locations
             WHERE next_refresh_at <= ? AND (lease_until IS NULL OR lease_until < ?)
             ORDER BY next_refresh_at, id LIMIT 1";
        const DUE_NEW: &str = "SELECT id FROM locations
             WHERE next_refresh_at <= ? AND (lease_until IS NULL OR lease_until < ?) AND refreshed_at IS NULL
             ORDER BY next_refresh_at, id LIMIT 1";
        let due_sql = if only_new {
            sql!(self.dialect, DUE_NEW)
        } else {
            sql!(self.dialect, DUE)
        };
        // Most polls find nothing due: a read, without the write turn.
        let due: Option<String> = sqlx::query_scalar(due_sql)
            .bind(now)
            .bind(now)
            .fetch_optional(&self.pool)
            .await?;
        if due.is_none() {
            return Ok(None);
        }
        let mut tx = self.begin_write().await?;
        // Again under the write turn: another replica may have taken it.
        let due: Option<String> = sqlx::query_scalar(due_sql)
            .bind(now)
            .bind(now)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(id) = due else { return Ok(None) };
        sqlx::query(sql!(
            self.dialect,
            "UPDATE locations SET lease_holder = ?, lease_until = ? WHERE id = ?"
        ))
        .bind(holder)
        .bind(lease_until)
        .bind(&id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.location(&id).await
    }

    /// Extends a lease this holder still has; `false` when it was lost.
    pub async fn renew_lease(
        &self,
        location_id: &str,
        holder: &str,
        lease_until: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(sql!(
            self.dialect,
            "UPDATE locations SET lease_until = ? WHERE id = ? AND lease_holder = ?"
        ))
        .bind(lease_until)
        .bind(location_id)
        .bind(holder)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Gives a lease up without finishing the job (the refresh failed
    /// before it could commit): the location stays due.
    pub async fn release_lease(&self, location_id: &str, holder: &str) -> Result<(), StoreError> {
        sqlx::query(sql!(
            self.dialect,
            "UPDATE locations SET lease_holder = NULL, lease_until = NULL WHERE id = ? AND lease_holder = ?"
        ))
        .bind(location_id)
        .bind(holder)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Who holds each location's lease, and until when: `(location id,
    /// holder, lease_until)`, for operators and tests.
    pub async fn leases(&self) -> Result<Vec<(String, String, i64)>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT id, lease_holder, lease_until FROM locations
             WHERE lease_holder IS NOT NULL ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?)
    }
}

/// At the start of a refresh's transaction: fails unless `lease` is still
/// held. Under the write turn no one can take it until the commit.
pub(crate) async fn check_lease(
    tx: &mut Conn<'_>,
    d: crate::Dialect,
    location_id: &str,
    lease: &Lease,
) -> Result<(), StoreError> {
    let holder: Option<Option<String>> = on_conn!(tx, |tx| {
        sqlx::query_scalar(sql!(d, "SELECT lease_holder FROM locations WHERE id = ?"))
            .bind(location_id)
            .fetch_optional(&mut **tx)
            .await?
    });
    if holder.flatten().as_deref() == Some(lease.holder.as_str()) {
        lease
            .writing
            .store(true, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    } else {
        Err(StoreError::LeaseLost(location_id.to_owned()))
    }
}

/// Last in a refresh's transaction: ends the job, due again an interval
/// after now (not after the refresh began), the lease cleared. Last, so
/// the row is not locked against the holder's renewals while it works.
pub(crate) async fn finish_job(
    tx: &mut Conn<'_>,
    d: crate::Dialect,
    location_id: &str,
    lease: &Lease,
) -> Result<(), StoreError> {
    let done = on_conn!(tx, |tx| {
        sqlx::query(sql!(
            d,
            "UPDATE locations SET lease_holder = NULL, lease_until = NULL, next_refresh_at = ?
             WHERE id = ? AND lease_holder = ?"
        ))
        .bind(now_ms() + lease.interval_ms)
        .bind(location_id)
        .bind(&lease.holder)
        .execute(&mut **tx)
        .await?
        .rows_affected()
    });
    if done == 1 {
        Ok(())
    } else {
        Err(StoreError::LeaseLost(location_id.to_owned()))
    }
}
