//! Local sign-in: accounts, sessions and failed attempts. Passwords are
//! hashed, and attempts judged, by `plinth-access` and the server; this
//! module only keeps them.

use serde::Serialize;
use sqlx::Row;

use crate::access::Audit;
use crate::dialect::sql;
use crate::{Store, StoreError, now, timestamp};

/// A local account: who signs in, and which catalog User they are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Account {
    pub name: String,
    pub user_ref: String,
    /// A role of its own (the first admin's); `None`: from the
    /// configuration and the user's groups.
    pub role: Option<String>,
    pub password_hash: String,
}

/// A signed-in session, found by the digest of its cookie.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub account: Account,
    /// The token the portal's forms carry.
    pub csrf: String,
    pub expires_at: String,
}

fn account(r: &sqlx::any::AnyRow) -> Account {
    Account {
        name: r.get("name"),
        user_ref: r.get("user_ref"),
        role: r.get("role"),
        password_hash: r.get("password_hash"),
    }
}

impl Store {
    pub async fn account_count(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar("SELECT count(*) FROM accounts")
            .fetch_one(&self.pool)
            .await?)
    }

    /// Adds an account; fails with [`StoreError::AccountExists`] when the
    /// name is taken.
    pub async fn create_account(&self, account: &Account) -> Result<(), StoreError> {
        let done = sqlx::query(sql!(
            self.dialect,
            "INSERT INTO accounts (name, user_ref, role, password_hash, created_at) VALUES (?, ?, ?, ?, ?)"
        ))
        .bind(&account.name)
        .bind(&account.user_ref)
        .bind(&account.role)
        .bind(&account.password_hash)
        .bind(now())
        .execute(&self.pool)
        .await;
        match done {
            Ok(_) => Ok(()),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                Err(StoreError::AccountExists(account.name.clone()))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Keeps the account of a person signed in by an identity provider
    /// (`name` such as `oidc:SUBJECT`), pointing at the User they matched
    /// this time. Such an account has no password: local sign-in never
    /// accepts it.
    pub async fn provider_account(&self, name: &str, user_ref: &str) -> Result<(), StoreError> {
        sqlx::query(sql!(
            self.dialect,
            "INSERT INTO accounts (name, user_ref, role, password_hash, created_at) VALUES (?, ?, NULL, '', ?)
             ON CONFLICT (name) DO UPDATE SET user_ref = excluded.user_ref"
        ))
        .bind(name)
        .bind(user_ref)
        .bind(now())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn account(&self, name: &str) -> Result<Option<Account>, StoreError> {
        let row = sqlx::query(sql!(
            self.dialect,
            "SELECT name, user_ref, role, password_hash FROM accounts WHERE name = ?"
        ))
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(account))
    }

    /// Starts a session for `account`, lasting `lifetime` (and forgets
    /// sessions that have ended).
    pub async fn create_session(
        &self,
        digest: &str,
        account: &str,
        csrf: &str,
        lifetime: std::time::Duration,
        audit: Audit<'_, ()>,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(sql!(
            self.dialect,
            "DELETE FROM sessions WHERE expires_at <= ?"
        ))
        .bind(now())
        .execute(&mut *tx)
        .await?;
        sqlx::query(sql!(
            self.dialect,
            "INSERT INTO sessions (digest, account, csrf, created_at, expires_at) VALUES (?, ?, ?, ?, ?)"
        ))
        .bind(digest)
        .bind(account)
        .bind(csrf)
        .bind(now())
        .bind(timestamp(std::time::SystemTime::now() + lifetime))
        .execute(&mut *tx)
        .await?;
        self.commit_audited(tx, audit, &()).await?;
        Ok(())
    }

    /// The live session with this digest, with its account.
    pub async fn session(&self, digest: &str) -> Result<Option<Session>, StoreError> {
        let row = sqlx::query(sql!(
            self.dialect,
            "SELECT a.name, a.user_ref, a.role, a.password_hash, s.csrf, s.expires_at
             FROM sessions s JOIN accounts a ON a.name = s.account
             WHERE s.digest = ? AND s.expires_at > ?"
        ))
        .bind(digest)
        .bind(now())
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| Session {
            account: account(&r),
            csrf: r.get("csrf"),
            expires_at: r.get("expires_at"),
        }))
    }

    /// Ends a session (signing out).
    pub async fn delete_session(&self, digest: &str) -> Result<(), StoreError> {
        sqlx::query(sql!(self.dialect, "DELETE FROM sessions WHERE digest = ?"))
            .bind(digest)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Notes a failed sign-in for `name` from `source`, and forgets
    /// failures from before `forget_before`.
    pub async fn record_sign_in_failure(
        &self,
        name: &str,
        source: &str,
        forget_before: std::time::SystemTime,
    ) -> Result<(), StoreError> {
        sqlx::query(sql!(
            self.dialect,
            "DELETE FROM sign_in_failures WHERE at < ?"
        ))
        .bind(timestamp(forget_before))
        .execute(&self.pool)
        .await?;
        sqlx::query(sql!(
            self.dialect,
            "INSERT INTO sign_in_failures (name, source, at) VALUES (?, ?, ?)"
        ))
        .bind(name)
        .bind(source)
        .bind(now())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Failed sign-ins for `name` since `since`, and the oldest of them.
    pub async fn sign_in_failures(
        &self,
        name: &str,
        since: std::time::SystemTime,
    ) -> Result<(i64, Option<String>), StoreError> {
        let row = sqlx::query(sql!(
            self.dialect,
            "SELECT count(*) AS n, min(at) AS first FROM sign_in_failures WHERE name = ? AND at > ?"
        ))
        .bind(name)
        .bind(timestamp(since))
        .fetch_one(&self.pool)
        .await?;
        Ok((row.get("n"), row.get("first")))
    }
}
