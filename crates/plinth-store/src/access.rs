//! API tokens and the audit log. What a token may do, and who may see the
//! log, is decided by `plinth-access`; this module only keeps them.

use serde::Serialize;
use serde_json::Value;
use sqlx::Row;

use crate::conn::{Conn, on_conn};
use crate::dialect::{Dialect, sql};
use crate::{Store, StoreError, now};

/// A token to create; its secret is known only to the caller.
#[derive(Debug, Clone)]
pub struct NewToken {
    pub name: String,
    /// `user:<namespace>/<name>` or `service:<name>`.
    pub subject: String,
    /// A service token's role; `None` for a person's, whose role is theirs.
    pub role: Option<String>,
    pub scope: String,
    /// The SHA-256 digest of the secret.
    pub digest: String,
    pub created_by: String,
    pub expires_at: Option<String>,
}

/// A token as listed (never its secret or digest).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenRecord {
    pub id: String,
    pub name: String,
    pub subject: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    pub scope: String,
    pub created_at: String,
    pub created_by: String,
    pub expires_at: Option<String>,
    pub revoked_at: Option<String>,
    pub last_used_at: Option<String>,
}

/// One change, to record.
#[derive(Debug, Clone, Default)]
pub struct AuditEntry {
    /// Who: a user reference, `service:<name>` or `local`.
    pub actor: String,
    /// What, as `<resource>.<verb>`: `location.create`, `entity.delete`...
    pub action: String,
    /// To what: a location id, an entity reference, a token id.
    pub target: String,
    /// From where: the client's address.
    pub source: String,
    pub before: Option<Value>,
    pub after: Option<Value>,
}

/// The audit entry of a change, made from what the change made, and
/// written in the change's own transaction: a change never commits without
/// its entry, nor an entry without its change. `None`: not audited (tests,
/// and what the server does on its own, such as scheduled refreshes).
pub type Audit<'a, T> = Option<&'a (dyn Fn(&T) -> AuditEntry + Send + Sync)>;

/// Appends `entry` to the audit log, in the transaction of `tx`.
pub(crate) async fn append(
    tx: &mut Conn<'_>,
    d: Dialect,
    entry: &AuditEntry,
) -> Result<i64, StoreError> {
    let json = |v: &Option<Value>| v.as_ref().map(Value::to_string);
    let id: i64 = on_conn!(tx, |tx| {
        sqlx::query_scalar(sql!(
            d,
            "INSERT INTO audit_log (at, actor, action, target, source, before, after)
             VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id"
        ))
        .bind(now())
        .bind(&entry.actor)
        .bind(&entry.action)
        .bind(&entry.target)
        .bind(&entry.source)
        .bind(json(&entry.before))
        .bind(json(&entry.after))
        .fetch_one(&mut **tx)
        .await?
    });
    Ok(id)
}

impl Store {
    /// Appends the entry `audit` makes of `made`, if any, and commits: the
    /// last step of every audited write.
    pub(crate) async fn commit_audited<T: ?Sized>(
        &self,
        mut tx: sqlx::Transaction<'static, sqlx::Any>,
        audit: Audit<'_, T>,
        made: &T,
    ) -> Result<(), StoreError> {
        if let Some(audit) = audit {
            append(&mut Conn::from(&mut tx), self.dialect, &audit(made)).await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

/// A recorded change.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditRecord {
    pub id: i64,
    pub at: String,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub source: String,
    pub before: Option<Value>,
    pub after: Option<Value>,
}

/// Which entries to read: all conditions must hold; newest first.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub actor: Option<String>,
    pub action: Option<String>,
    pub target: Option<String>,
    /// RFC 3339 times, inclusive.
    pub since: Option<String>,
    pub until: Option<String>,
    /// Only entries older than this id (the cursor of the previous page).
    pub before_id: Option<i64>,
    pub limit: usize,
}

/// A token's last use is written at most this often: a write per call
/// would put every API read behind the write turn.
const LAST_USED_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

const TOKEN_COLUMNS: &str =
    "id, name, subject, role, scope, created_at, created_by, expires_at, revoked_at, last_used_at";

fn token(r: &sqlx::any::AnyRow) -> TokenRecord {
    TokenRecord {
        id: r.get("id"),
        name: r.get("name"),
        subject: r.get("subject"),
        role: r.get("role"),
        scope: r.get("scope"),
        created_at: r.get("created_at"),
        created_by: r.get("created_by"),
        expires_at: r.get("expires_at"),
        revoked_at: r.get("revoked_at"),
        last_used_at: r.get("last_used_at"),
    }
}

impl Store {
    pub async fn create_token(
        &self,
        new: &NewToken,
        audit: Audit<'_, TokenRecord>,
    ) -> Result<TokenRecord, StoreError> {
        let id = uuid::Uuid::new_v4().to_string();
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(self.dialect.sql(format!(
            "INSERT INTO api_tokens (id, name, subject, role, scope, digest, created_at, created_by, expires_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING {TOKEN_COLUMNS}"
        )))
        .bind(&id)
        .bind(&new.name)
        .bind(&new.subject)
        .bind(&new.role)
        .bind(&new.scope)
        .bind(&new.digest)
        .bind(now())
        .bind(&new.created_by)
        .bind(&new.expires_at)
        .fetch_one(&mut *tx)
        .await?;
        let record = token(&row);
        self.commit_audited(tx, audit, &record).await?;
        Ok(record)
    }

    pub async fn token(&self, id: &str) -> Result<Option<TokenRecord>, StoreError> {
        let row = sqlx::query(self.dialect.sql(format!(
            "SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE id = ?"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(token))
    }

    /// The token with this digest, if it is neither revoked nor expired;
    /// notes its use.
    pub async fn token_by_digest(&self, digest: &str) -> Result<Option<TokenRecord>, StoreError> {
        let at = now();
        let row = sqlx::query(self.dialect.sql(format!(
            "SELECT {TOKEN_COLUMNS} FROM api_tokens
             WHERE digest = ? AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?)"
        )))
        .bind(digest)
        .bind(&at)
        .fetch_optional(&self.pool)
        .await?;
        let Some(found) = row.as_ref().map(token) else {
            return Ok(None);
        };
        let cutoff = crate::timestamp(std::time::SystemTime::now() - LAST_USED_EVERY);
        let stale = found
            .last_used_at
            .as_deref()
            .is_none_or(|last| last < cutoff.as_str());
        if stale {
            // In the background: on SQLite a write waits for a refresh in
            // progress, and the call that uses the token must not.
            let (pool, dialect, id) = (self.pool.clone(), self.dialect, found.id.clone());
            tokio::spawn(async move {
                let noted = sqlx::query(sql!(
                    dialect,
                    "UPDATE api_tokens SET last_used_at = ? WHERE id = ?"
                ))
                .bind(&at)
                .bind(&id)
                .execute(&pool)
                .await;
                if let Err(e) = noted {
                    tracing::warn!(error = %e, token.id = %id, "the token's last use was not noted");
                }
            });
        }
        Ok(Some(found))
    }

    /// Tokens, newest first: all, or one subject's.
    pub async fn tokens(&self, subject: Option<&str>) -> Result<Vec<TokenRecord>, StoreError> {
        let rows = sqlx::query(self.dialect.sql(format!(
            "SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE (CAST(? AS TEXT) IS NULL OR subject = ?)
             ORDER BY created_at DESC, id"
        )))
        .bind(subject)
        .bind(subject)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(token).collect())
    }

    /// Revokes a token (once: revoking again keeps the first time).
    /// `None` when there is no such token.
    pub async fn revoke_token(
        &self,
        id: &str,
        audit: Audit<'_, TokenRecord>,
    ) -> Result<Option<TokenRecord>, StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(sql!(
            self.dialect,
            "UPDATE api_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL"
        ))
        .bind(now())
        .bind(id)
        .execute(&mut *tx)
        .await?;
        let row = sqlx::query(self.dialect.sql(format!(
            "SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE id = ?"
        )))
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let record = row.as_ref().map(token);
        match &record {
            Some(revoked) => self.commit_audited(tx, audit, revoked).await?,
            None => tx.commit().await?,
        }
        Ok(record)
    }

    /// The owners of a location's entities, and whether some entity has
    /// none (users, groups, anything without `spec.owner`).
    pub async fn location_owners(
        &self,
        location_id: &str,
    ) -> Result<(Vec<String>, bool), StoreError> {
        let owners: Vec<String> = sqlx::query_scalar(sql!(
            self.dialect,
            "SELECT DISTINCT r.target_ref FROM entities e JOIN relations r ON r.origin_id = e.id
             WHERE e.location_id = ? AND r.type_key = 'ownedby' AND r.source_ref = e.ref
             ORDER BY r.target_ref"
        ))
        .bind(location_id)
        .fetch_all(&self.pool)
        .await?;
        let unowned: i64 = sqlx::query_scalar(sql!(
            self.dialect,
            "SELECT count(*) FROM (SELECT 1 FROM entities e WHERE e.location_id = ? AND NOT EXISTS
               (SELECT 1 FROM relations r WHERE r.origin_id = e.id AND r.type_key = 'ownedby' AND r.source_ref = e.ref)
             LIMIT 1) AS t"
        ))
        .bind(location_id)
        .fetch_one(&self.pool)
        .await?;
        Ok((owners, unowned > 0))
    }

    /// Entries of the audit log, newest first.
    pub async fn audit(&self, q: &AuditQuery) -> Result<Vec<AuditRecord>, StoreError> {
        let rows = sqlx::query(sql!(
            self.dialect,
            "SELECT id, at, actor, action, target, source, before, after FROM audit_log
             WHERE (CAST(? AS TEXT) IS NULL OR actor = ?) AND (CAST(? AS TEXT) IS NULL OR action = ?)
               AND (CAST(? AS TEXT) IS NULL OR target = ?) AND (CAST(? AS TEXT) IS NULL OR at >= ?)
               AND (CAST(? AS TEXT) IS NULL OR at <= ?) AND (CAST(? AS BIGINT) IS NULL OR id < ?)
             ORDER BY id DESC LIMIT ?"
        ))
        .bind(&q.actor)
        .bind(&q.actor)
        .bind(&q.action)
        .bind(&q.action)
        .bind(&q.target)
        .bind(&q.target)
        .bind(&q.since)
        .bind(&q.since)
        .bind(&q.until)
        .bind(&q.until)
        .bind(q.before_id)
        .bind(q.before_id)
        .bind(q.limit as i64)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let json = |column: &str| -> Result<Option<Value>, StoreError> {
                    r.get::<Option<String>, _>(column)
                        .map(|text| serde_json::from_str(&text))
                        .transpose()
                        .map_err(|e| StoreError::Corrupt(format!("audit_log.{column}: {e}")))
                };
                Ok(AuditRecord {
                    id: r.get("id"),
                    at: r.get("at"),
                    actor: r.get("actor"),
                    action: r.get("action"),
                    target: r.get("target"),
                    source: r.get("source"),
                    before: json("before")?,
                    after: json("after")?,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests;
