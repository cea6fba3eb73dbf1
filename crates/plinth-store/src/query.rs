//! Entity queries: Backstage's filter sets, ordering, paging and facets,
//! answered from the search and relations tables.

use serde::{Deserialize, Serialize};
use sqlx::{AssertSqlSafe, Row};

use crate::{Store, StoreError, StoredEntity};

/// One condition: `key` exists, or `key` equals one of `values`. Keys and
/// values are compared case-insensitively (stored and given lowercase).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Filter {
    pub key: String,
    pub values: Vec<String>,
}

/// Conditions that must all hold.
pub type FilterSet = Vec<Filter>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SortDirection {
    Asc,
    Desc,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderField {
    pub field: String,
    pub direction: SortDirection,
}

/// A query: entities matching any of the filter sets (all when none),
/// ordered, one page.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntityQuery {
    pub filter: Vec<FilterSet>,
    pub order: Vec<OrderField>,
    /// Case-insensitive substring match over `full_text_fields` (lowercase
    /// search keys).
    pub full_text: Option<(String, Vec<String>)>,
    pub offset: u64,
    pub limit: Option<u64>,
}

pub struct QueryPage {
    pub entities: Vec<StoredEntity>,
    pub total: u64,
}

/// A SQL condition with its bound values.
struct Sql {
    text: String,
    binds: Vec<String>,
}

impl Filter {
    fn condition(&self, sql: &mut Sql) {
        let placeholders = vec!["?"; self.values.len()].join(", ");
        if self.key == "metadata.uid" || self.key == "metadata.etag" {
            // Kept on the entity row, not in the body.
            let column = if self.key == "metadata.uid" {
                "e.uid"
            } else {
                "e.etag"
            };
            if self.values.is_empty() {
                sql.text.push_str("1 = 1");
            } else {
                sql.text.push_str(&format!("{column} IN ({placeholders})"));
                sql.binds.extend(self.values.iter().cloned());
            }
            return;
        }
        if let Some(kind) = self.key.strip_prefix("relations.") {
            sql.text
                .push_str("e.ref IN (SELECT source_ref FROM relations WHERE type_key = ?");
            sql.binds.push(kind.to_owned());
            if !self.values.is_empty() {
                sql.text
                    .push_str(&format!(" AND target_ref IN ({placeholders})"));
            }
        } else {
            sql.text
                .push_str("e.id IN (SELECT entity_id FROM search WHERE key = ?");
            sql.binds.push(self.key.clone());
            if !self.values.is_empty() {
                sql.text
                    .push_str(&format!(" AND value IN ({placeholders})"));
            }
        }
        sql.binds.extend(self.values.iter().cloned());
        sql.text.push(')');
    }
}

impl EntityQuery {
    /// The WHERE clause selecting matching entities (aliased `e`).
    fn where_clause(&self) -> Sql {
        let mut sql = Sql {
            text: String::from("1 = 1"),
            binds: Vec::new(),
        };
        let sets: Vec<&FilterSet> = self.filter.iter().filter(|s| !s.is_empty()).collect();
        if !sets.is_empty() {
            sql.text.push_str(" AND (");
            for (i, set) in sets.iter().enumerate() {
                if i > 0 {
                    sql.text.push_str(" OR ");
                }
                sql.text.push('(');
                for (j, f) in set.iter().enumerate() {
                    if j > 0 {
                        sql.text.push_str(" AND ");
                    }
                    f.condition(&mut sql);
                }
                sql.text.push(')');
            }
            sql.text.push(')');
        }
        if let Some((term, fields)) = &self.full_text {
            let term = term.trim().to_lowercase();
            if !term.is_empty() {
                let placeholders = vec!["?"; fields.len()].join(", ");
                sql.text.push_str(&format!(
                    " AND e.id IN (SELECT entity_id FROM search WHERE key IN ({placeholders}) AND instr(value, ?) > 0)"
                ));
                sql.binds.extend(fields.iter().cloned());
                sql.binds.push(term);
            }
        }
        sql
    }
}

impl Store {
    /// One page of the entities matching `query`, and how many match in all.
    pub async fn query_entities(&self, query: &EntityQuery) -> Result<QueryPage, StoreError> {
        let wh = query.where_clause();
        let count_sql = format!("SELECT COUNT(*) FROM entities e WHERE {}", wh.text);
        let mut count = sqlx::query_scalar::<_, i64>(AssertSqlSafe(count_sql));
        for b in &wh.binds {
            count = count.bind(b);
        }
        let total = count.fetch_one(&self.pool).await? as u64;

        let mut order_sql = String::new();
        let mut order_binds = Vec::new();
        for o in &query.order {
            let dir = match o.direction {
                SortDirection::Asc => "ASC",
                SortDirection::Desc => "DESC",
            };
            // Entities without the field sort last, in either direction.
            order_sql.push_str(&format!(
                "(SELECT MIN(value) FROM search s WHERE s.entity_id = e.id AND s.key = ?) IS NULL, \
                 (SELECT MIN(value) FROM search s WHERE s.entity_id = e.id AND s.key = ?) {dir}, "
            ));
            order_binds.push(o.field.to_lowercase());
            order_binds.push(o.field.to_lowercase());
        }
        order_sql.push_str("e.ref ASC");
        let page_sql = format!(
            "SELECT e.id FROM entities e WHERE {} ORDER BY {order_sql} LIMIT ? OFFSET ?",
            wh.text
        );
        let mut page = sqlx::query(AssertSqlSafe(page_sql));
        for b in wh.binds.iter().chain(order_binds.iter()) {
            page = page.bind(b);
        }
        let limit = query.limit.map_or(-1, |l| l as i64);
        let rows = page
            .bind(limit)
            .bind(query.offset as i64)
            .fetch_all(&self.pool)
            .await?;
        let ids: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
        Ok(QueryPage {
            entities: self.load_entities(&ids).await?,
            total,
        })
    }

    /// For each facet (a search key, or `relations.<type>`), the values among
    /// matching entities with how many entities have each, by value.
    pub async fn facets(
        &self,
        facets: &[String],
        filter: &[FilterSet],
    ) -> Result<Vec<(String, Vec<(String, u64)>)>, StoreError> {
        let query = EntityQuery {
            filter: filter.to_vec(),
            ..EntityQuery::default()
        };
        let wh = query.where_clause();
        let mut out = Vec::new();
        for facet in facets {
            let key = facet.to_lowercase();
            let sql = if let Some(kind) = key.strip_prefix("relations.") {
                let s = format!(
                    "SELECT r.target_ref AS value, COUNT(DISTINCT e.id) AS n FROM entities e JOIN relations r ON r.source_ref = e.ref
                     WHERE r.type_key = ? AND {} GROUP BY r.target_ref ORDER BY r.target_ref",
                    wh.text
                );
                (s, kind.to_owned())
            } else {
                let s = format!(
                    "SELECT MIN(s.original_value) AS value, COUNT(DISTINCT e.id) AS n FROM entities e JOIN search s ON s.entity_id = e.id
                     WHERE s.key = ? AND s.value IS NOT NULL AND {} GROUP BY s.value ORDER BY s.value",
                    wh.text
                );
                (s, key.clone())
            };
            let mut q = sqlx::query(AssertSqlSafe(sql.0)).bind(sql.1);
            for b in &wh.binds {
                q = q.bind(b);
            }
            let rows = q.fetch_all(&self.pool).await?;
            let values = rows
                .iter()
                .map(|r| (r.get::<String, _>("value"), r.get::<i64, _>("n") as u64))
                .collect();
            out.push((facet.clone(), values));
        }
        Ok(out)
    }
}
