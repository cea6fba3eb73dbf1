//! The catalog at a glance, for the portal's home page: what changed last,
//! and what needs attention. Each answer is one short index walk, and the
//! costly ones are cached while the catalog version stands.

use sqlx::Row;

use crate::dialect::sql;
use crate::query::CachedAnswer;
use crate::{Store, StoreError, StoredEntity};

/// What needs attention in the catalog.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CatalogHealth {
    /// Entities whose newest version has problems (kept in their status).
    pub with_problems: u64,
    /// Entities defined by two locations (the second one is ignored).
    pub conflicts: u64,
    /// Owners named by entities but not in the catalog, with how many
    /// entities name each, most first.
    pub missing_owners: Vec<(String, u64)>,
}

impl CatalogHealth {
    /// Entities whose owner is not in the catalog.
    pub fn without_owner(&self) -> u64 {
        self.missing_owners.iter().map(|(_, n)| n).sum()
    }
}

impl Store {
    /// The most recently changed entities, newest first.
    pub async fn recently_changed(&self, limit: u64) -> Result<Vec<StoredEntity>, StoreError> {
        let ids: Vec<i64> = sqlx::query_scalar(sql!(
            self.dialect,
            "SELECT id FROM entities ORDER BY updated_at DESC, id DESC LIMIT ?"
        ))
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await?;
        self.load_entities(&ids).await
    }

    /// Entities with problems in their newest version, first stored first.
    pub async fn entities_with_problems(
        &self,
        limit: u64,
    ) -> Result<Vec<StoredEntity>, StoreError> {
        let ids: Vec<i64> = sqlx::query_scalar(sql!(
            self.dialect,
            "SELECT id FROM entities WHERE status <> '[]' ORDER BY id LIMIT ?"
        ))
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await?;
        self.load_entities(&ids).await
    }

    pub async fn health(&self) -> Result<CatalogHealth, StoreError> {
        let version = self.version().await?;
        let with_problems = self
            .cached_count(
                version,
                "health problems",
                sql!(
                    self.dialect,
                    "SELECT COUNT(*) FROM entities WHERE status <> '[]'"
                ),
            )
            .await?;
        let conflicts = self
            .cached_count(
                version,
                "health conflicts",
                sql!(self.dialect, "SELECT COUNT(DISTINCT ref) FROM conflicts"),
            )
            .await?;
        let missing_owners = match self.cache.get(version, "health owners") {
            Some(CachedAnswer::Facet(owners)) => owners.as_ref().clone(),
            _ => {
                // Owners first, then one probe per owner: an index-only walk
                // of the ownedBy relations, not a probe per entity.
                let rows = sqlx::query(sql!(
                    self.dialect,
                    "SELECT g.target_ref, g.n FROM (
                         SELECT target_ref, COUNT(*) AS n FROM relations
                         WHERE type_key = 'ownedby' GROUP BY target_ref
                     ) g
                     WHERE NOT EXISTS (SELECT 1 FROM entities t WHERE t.ref = g.target_ref)
                     ORDER BY g.n DESC, g.target_ref"
                ))
                .fetch_all(&self.pool)
                .await?;
                let owners: Vec<(String, u64)> = rows
                    .iter()
                    .map(|r| (r.get::<String, _>(0), r.get::<i64, _>(1) as u64))
                    .collect();
                self.cache.put(
                    version,
                    "health owners".into(),
                    CachedAnswer::Facet(owners.clone().into()),
                );
                owners
            }
        };
        Ok(CatalogHealth {
            with_problems,
            conflicts,
            missing_owners,
        })
    }
}

impl Store {
    /// A count that changes only with the catalog, cached under `key`.
    async fn cached_count(
        &self,
        version: i64,
        key: &str,
        sql: &'static str,
    ) -> Result<u64, StoreError> {
        if let Some(CachedAnswer::Count(n)) = self.cache.get(version, key) {
            return Ok(n);
        }
        let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .fetch_one(&self.pool)
            .await?;
        self.cache
            .put(version, key.to_owned(), CachedAnswer::Count(n as u64));
        Ok(n as u64)
    }

    /// The values of `key` (a search key, or `relations.<type>` for relation
    /// targets) with how many entities have each (for relations, how many
    /// rows: entities for relations one side gives, such as `ownedBy`), lowercase, by value; among
    /// entities of `kinds` when any are given. Read from the index alone,
    /// for pickers that must answer at once on a large catalog; cached while
    /// the catalog version stands.
    pub async fn facet_values(
        &self,
        key: &str,
        kinds: &[String],
    ) -> Result<Vec<(String, u64)>, StoreError> {
        let version = self.version().await?;
        let cache_key = format!("values {key} {kinds:?}");
        if let Some(CachedAnswer::Facet(values)) = self.cache.get(version, &cache_key) {
            return Ok(values.as_ref().clone());
        }
        // Among entities of the given kinds: a probe of the entity's kind row.
        let of_kinds = |entity_id: &str| {
            if kinds.is_empty() {
                return String::new();
            }
            let placeholders = vec!["?"; kinds.len()].join(", ");
            format!(
                " AND EXISTS (SELECT 1 FROM search k WHERE k.entity_id = {entity_id} AND k.key = 'kind' AND k.value IN ({placeholders}))"
            )
        };
        let (sql, first) = match key.strip_prefix("relations.") {
            Some(kind) => (
                format!(
                    "SELECT r.target_ref, COUNT(*) FROM relations r WHERE r.type_key = ?{} GROUP BY r.target_ref ORDER BY r.target_ref",
                    of_kinds("r.origin_id")
                ),
                kind.to_lowercase(),
            ),
            None => (
                format!(
                    "SELECT s.value, COUNT(*) FROM search s WHERE s.key = ? AND s.value IS NOT NULL{} GROUP BY s.value ORDER BY s.value",
                    of_kinds("s.entity_id")
                ),
                key.to_lowercase(),
            ),
        };
        let mut q = sqlx::query(self.dialect.sql(sql)).bind(first);
        for k in kinds {
            q = q.bind(k.to_lowercase());
        }
        let rows = q.fetch_all(&self.pool).await?;
        let values: Vec<(String, u64)> = rows
            .iter()
            .map(|r| (r.get::<String, _>(0), r.get::<i64, _>(1) as u64))
            .collect();
        self.cache.put(
            version,
            cache_key,
            CachedAnswer::Facet(values.clone().into()),
        );
        Ok(values)
    }
}
