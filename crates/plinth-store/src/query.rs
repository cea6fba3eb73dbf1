//! Entity queries: Backstage's filter sets, ordering, paging and facets,
//! answered from the search and relations tables.

use serde::{Deserialize, Serialize};
use sqlx::Row;

use crate::dialect::{Dialect, sql};
use crate::text::TextMatch;
use crate::{EntityRef, Store, StoreError, StoredEntity};

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

/// Backstage's predicate query language (`POST /entities/by-query`):
/// `$all`, `$any`, `$not`, and per-field matchers. Keys are search keys
/// (lowercase dot paths) or `relations.<type>`; values are lowercase.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Predicate {
    All(Vec<Predicate>),
    Any(Vec<Predicate>),
    Not(Box<Predicate>),
    /// The field has one of the values (`{"kind": "component"}`, `$in`, or
    /// `$contains` on an array or on relations).
    In(String, Vec<String>),
    /// The field exists (`{"$exists": true}`).
    Exists(String),
    /// The field has a value starting with this (`$hasPrefix`).
    HasPrefix(String, String),
}

impl Predicate {
    /// Evaluates the predicate in memory, over an object whose fields give
    /// their lowercase values (`values("type")`); for small sets such as
    /// locations, where SQL would buy nothing.
    pub fn matches(&self, values: &dyn Fn(&str) -> Vec<String>) -> bool {
        match self {
            Predicate::All(ps) => ps.iter().all(|p| p.matches(values)),
            Predicate::Any(ps) => ps.iter().any(|p| p.matches(values)),
            Predicate::Not(p) => !p.matches(values),
            Predicate::In(key, wanted) => values(key).iter().any(|v| wanted.contains(v)),
            Predicate::Exists(key) => !values(key).is_empty(),
            Predicate::HasPrefix(key, prefix) => {
                values(key).iter().any(|v| v.starts_with(prefix.as_str()))
            }
        }
    }
}

/// A query: entities matching any of the filter sets (all when none) and
/// the predicate, ordered, one page.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntityQuery {
    pub filter: Vec<FilterSet>,
    #[serde(default)]
    pub predicate: Option<Predicate>,
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
    /// A condition on entity `e`, written as an indexed probe per entity
    /// (`EXISTS` on `(key, value, entity_id)`), so that a page scan stops as
    /// soon as it has enough rows.
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
            sql.text.push_str(
                "EXISTS (SELECT 1 FROM relations r WHERE r.source_ref = e.ref AND r.type_key = ?",
            );
            sql.binds.push(kind.to_owned());
            if !self.values.is_empty() {
                sql.text
                    .push_str(&format!(" AND r.target_ref IN ({placeholders})"));
            }
        } else {
            sql.text
                .push_str("EXISTS (SELECT 1 FROM search s WHERE s.entity_id = e.id AND s.key = ?");
            sql.binds.push(self.key.clone());
            if !self.values.is_empty() {
                sql.text
                    .push_str(&format!(" AND s.value IN ({placeholders})"));
            }
        }
        sql.binds.extend(self.values.iter().cloned());
        sql.text.push(')');
    }

    fn exists(key: &str) -> Filter {
        Filter {
            key: key.to_owned(),
            values: Vec::new(),
        }
    }

    fn is_search_key(&self) -> bool {
        !self.key.starts_with("relations.")
            && self.key != "metadata.uid"
            && self.key != "metadata.etag"
    }
}

impl Predicate {
    fn condition(&self, sql: &mut Sql) {
        let join = |items: &[Predicate], op: &str, empty: &str, sql: &mut Sql| {
            if items.is_empty() {
                sql.text.push_str(empty);
                return;
            }
            sql.text.push('(');
            for (i, p) in items.iter().enumerate() {
                if i > 0 {
                    sql.text.push_str(op);
                }
                p.condition(sql);
            }
            sql.text.push(')');
        };
        match self {
            Predicate::All(items) => join(items, " AND ", "1 = 1", sql),
            Predicate::Any(items) => join(items, " OR ", "1 = 0", sql),
            Predicate::Not(p) => {
                sql.text.push_str("NOT (");
                p.condition(sql);
                sql.text.push(')');
            }
            Predicate::In(key, values) => Filter {
                key: key.clone(),
                values: values.clone(),
            }
            .condition(sql),
            Predicate::Exists(key) => Filter::exists(key).condition(sql),
            Predicate::HasPrefix(key, prefix) => {
                if let Some(kind) = key.strip_prefix("relations.") {
                    sql.text.push_str(
                        "EXISTS (SELECT 1 FROM relations r WHERE r.source_ref = e.ref AND r.type_key = ? AND substr(r.target_ref, 1, length(?)) = ?)",
                    );
                    sql.binds
                        .extend([kind.to_owned(), prefix.clone(), prefix.clone()]);
                } else {
                    sql.text.push_str(
                        "EXISTS (SELECT 1 FROM search s WHERE s.entity_id = e.id AND s.key = ? AND substr(s.value, 1, length(?)) = ?)",
                    );
                    sql.binds
                        .extend([key.clone(), prefix.clone(), prefix.clone()]);
                }
            }
        }
    }
}

/// A LIMIT no query reaches, as an optimisation fence.
const FENCE: i64 = i64::MAX;

impl EntityQuery {
    /// The WHERE clause selecting matching entities (aliased `e`); `text`
    /// is how the full-text condition is written.
    fn where_clause(&self, text: &TextMatch) -> Sql {
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
        if let Some(p) = &self.predicate {
            sql.text.push_str(" AND ");
            p.condition(&mut sql);
        }
        let Some((term, fields)) = self.full_text_term() else {
            return sql;
        };
        let placeholders = vec!["?"; fields.len()].join(", ");
        match text {
            TextMatch::Ids(ids) => {
                sql.text
                    .push_str(" AND e.id IN (SELECT CAST(value AS BIGINT) FROM json_each(?))");
                sql.binds
                    .push(serde_json::Value::from(ids.as_slice()).to_string());
            }
            // Most entities match: each one walked is tested, and a page
            // stops when it is full.
            TextMatch::Dense { hint, .. } => {
                sql.text.push_str(&format!(
                    " AND EXISTS (SELECT 1 FROM search t {hint} WHERE t.entity_id = e.id AND t.key IN ({placeholders}) AND instr(t.value, ?) > 0)"
                ));
                sql.binds.extend(fields.iter().cloned());
                sql.binds.push(term);
            }
            TextMatch::Scan => {
                // The LIMIT keeps PostgreSQL from merging the subquery into
                // the page query: it guesses a third of the rows match a
                // substring, and walked every search row in entity order
                // (237 ms) where finding the few matches first takes 25 ms.
                sql.text.push_str(&format!(
                    " AND e.id IN (SELECT entity_id FROM search WHERE key IN ({placeholders}) AND instr(value, ?) > 0 LIMIT {FENCE})"
                ));
                sql.binds.extend(fields.iter().cloned());
                sql.binds.push(term);
            }
        }
        sql
    }

    pub(crate) fn full_text_term(&self) -> Option<(String, &Vec<String>)> {
        let (term, fields) = self.full_text.as_ref()?;
        let term = term.trim().to_lowercase();
        (!term.is_empty() && !fields.is_empty()).then_some((term, fields))
    }

    /// For one filter set led by a search key with values: that condition,
    /// and the query without it. Such a query is answered from the leading
    /// key's index entries, probing the rest per entity.
    fn lead_filter(&self) -> Option<(&Filter, EntityQuery)> {
        if self.predicate.is_some() {
            return None;
        }
        let sets: Vec<&FilterSet> = self.filter.iter().filter(|s| !s.is_empty()).collect();
        let [set] = sets.as_slice() else { return None };
        // A search key first (its rows are one per entity and value), one
        // value before several (its entries are in entity order already, so
        // the walk stops after a page; several values' entries must be
        // merged, which sorts every match), else a relation type (a team's
        // entities, found from the team).
        let lead = set
            .iter()
            .find(|f| f.is_search_key() && f.values.len() == 1)
            .or_else(|| {
                set.iter()
                    .find(|f| f.is_search_key() && !f.values.is_empty())
            })
            .or_else(|| {
                set.iter()
                    .find(|f| f.key.starts_with("relations.") && !f.values.is_empty())
            })?;
        let rest = EntityQuery {
            filter: vec![set.iter().filter(|f| *f != lead).cloned().collect()],
            full_text: self.full_text.clone(),
            ..EntityQuery::default()
        };
        Some((lead, rest))
    }

    /// `FROM ... e ... WHERE` the lead condition and the rest hold, whether
    /// an entity can come twice (several lead values, or a relation stored
    /// from both sides), and what orders the walk by entity; see
    /// [`EntityQuery::lead_filter`].
    fn lead_sql(lead: &Filter, rest: &EntityQuery, text: &TextMatch) -> (Sql, bool, &'static str) {
        let placeholders = vec!["?"; lead.values.len()].join(", ");
        let wh = rest.where_clause(text);
        let (from, key, twice, order) = match lead.key.strip_prefix("relations.") {
            Some(kind) => (
                format!(
                    "FROM relations d JOIN entities e ON e.ref = d.source_ref WHERE d.type_key = ? AND d.target_ref IN ({placeholders})"
                ),
                kind.to_owned(),
                true,
                "e.id",
            ),
            // The search rows alone name the entity (`e.id`) unless a
            // condition reads the entity's row: joined to every entity,
            // PostgreSQL merged the walk with one of all entity ids (27 ms a
            // page at 1,000,000 entities; 0.3 ms without).
            None if ["e.uid", "e.etag", "e.ref"]
                .iter()
                .any(|column| wh.text.contains(column)) =>
            {
                (
                    format!(
                        "FROM search d JOIN entities e ON e.id = d.entity_id WHERE d.key = ? AND d.value IN ({placeholders})"
                    ),
                    lead.key.clone(),
                    lead.values.len() > 1,
                    "d.entity_id",
                )
            }
            None => (
                format!(
                    "FROM (SELECT entity_id AS id, key, value FROM search) e WHERE e.key = ? AND e.value IN ({placeholders})"
                ),
                lead.key.clone(),
                lead.values.len() > 1,
                "e.id",
            ),
        };
        let sql = Sql {
            text: format!("{from} AND {}", wh.text),
            binds: std::iter::once(key)
                .chain(lead.values.iter().cloned())
                .chain(wh.binds)
                .collect(),
        };
        (sql, twice, order)
    }

    /// How many entities match.
    fn count_sql(&self, text: &TextMatch) -> Sql {
        if let Some((lead, rest)) = self.lead_filter() {
            let (from, twice, _) = EntityQuery::lead_sql(lead, &rest, text);
            let count = if twice {
                "COUNT(DISTINCT e.id)"
            } else {
                "COUNT(*)"
            };
            return Sql {
                text: format!("SELECT {count} {}", from.text),
                binds: from.binds,
            };
        }
        let wh = self.where_clause(text);
        Sql {
            text: format!("SELECT COUNT(*) FROM entities e WHERE {}", wh.text),
            binds: wh.binds,
        }
    }

    /// What identifies the matching set, for caching its count.
    fn matching_key(&self) -> String {
        serde_json::to_string(&(&self.filter, &self.predicate, &self.full_text)).unwrap_or_default()
    }
}

/// A facet's values as written, with how many entities have each.
pub type FacetValues = Vec<(String, u64)>;

/// Answers that are expensive to compute and change only when the catalog
/// does: valid while `catalog_version` stands, so correct across replicas.
#[derive(Debug, Default)]
pub(crate) struct AnswerCache {
    entries: std::sync::Mutex<(i64, std::collections::HashMap<String, CachedAnswer>)>,
}

#[derive(Debug, Clone)]
pub(crate) enum CachedAnswer {
    Count(u64),
    /// Shared: a facet of 20,000 owners is handed out without a copy.
    Facet(std::sync::Arc<FacetValues>),
    Refs(Vec<String>),
}

/// Entries kept per version, so a stream of distinct queries cannot grow it without bound.
const CACHE_ENTRIES: usize = 10_000;

impl AnswerCache {
    /// Forgets every answer: tests compare two ways of computing one.
    #[cfg(test)]
    pub(crate) fn clear(&self) {
        if let Ok(mut entries) = self.entries.lock() {
            *entries = Default::default();
        }
    }

    pub(crate) fn get(&self, version: i64, key: &str) -> Option<CachedAnswer> {
        let entries = self.entries.lock().ok()?;
        (entries.0 == version)
            .then(|| entries.1.get(key).cloned())
            .flatten()
    }

    pub(crate) fn put(&self, version: i64, key: String, answer: CachedAnswer) {
        if let Ok(mut entries) = self.entries.lock() {
            if entries.0 != version || entries.1.len() >= CACHE_ENTRIES {
                *entries = (version, Default::default());
            }
            entries.1.insert(key, answer);
        }
    }
}

impl Store {
    pub(crate) async fn version(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar(sql!(
            self.dialect,
            "SELECT version FROM catalog_version WHERE id = 1"
        ))
        .fetch_one(&self.pool)
        .await?)
    }

    /// How `query`'s full-text condition is answered at `version`: from
    /// the in-memory columns where they can (see [`crate::text`]).
    async fn resolve_text(
        &self,
        query: &EntityQuery,
        version: i64,
    ) -> Result<TextMatch, StoreError> {
        match query.full_text_term() {
            Some((term, fields)) => self.text_match(version, &term, fields).await,
            None => Ok(TextMatch::Scan),
        }
    }

    /// The groups `user` belongs to: those it is a member of (`memberOf`),
    /// and their parents up the tree (`childOf`), as entity references,
    /// sorted; one query, cached while the catalog version stands (every
    /// call of a signed-in person or a person's token asks).
    pub async fn groups_of(&self, user: &EntityRef) -> Result<Vec<String>, StoreError> {
        let version = self.version().await?;
        let key = format!("groups {user}");
        if let Some(CachedAnswer::Refs(groups)) = self.cache.get(version, &key) {
            return Ok(groups);
        }
        let mut groups: Vec<String> = sqlx::query_scalar(sql!(
            self.dialect,
            "WITH RECURSIVE g (ref) AS (
                 SELECT target_ref FROM relations WHERE source_ref = ? AND type_key = 'memberof'
                 UNION
                 SELECT r.target_ref FROM relations r JOIN g ON r.source_ref = g.ref
                 WHERE r.type_key = 'childof'
             )
             SELECT ref FROM g"
        ))
        .bind(user.to_string())
        .fetch_all(&self.pool)
        .await?;
        groups.sort();
        self.cache
            .put(version, key, CachedAnswer::Refs(groups.clone()));
        Ok(groups)
    }

    /// How many entities match `query`; cached while the catalog version
    /// stands.
    async fn query_entities_count(
        &self,
        query: &EntityQuery,
        version: i64,
        text: &TextMatch,
    ) -> Result<u64, StoreError> {
        let key = format!("count {}", query.matching_key());
        if let Some(CachedAnswer::Count(n)) = self.cache.get(version, &key) {
            return Ok(n);
        }
        let text = match text {
            // The columns counted the term's entities: with no other
            // condition, that is the answer.
            TextMatch::Dense { count, .. }
                if query.filter.iter().all(|s| s.is_empty()) && query.predicate.is_none() =>
            {
                return Ok(*count);
            }
            // Under other conditions, finding the term's entities once and
            // probing them beats testing each entity's values.
            TextMatch::Dense { .. } => &TextMatch::Scan,
            text => text,
        };
        let count = query.count_sql(text);
        let mut q = sqlx::query_scalar::<_, i64>(self.dialect.sql(count.text));
        for b in &count.binds {
            q = q.bind(b);
        }
        let n = q.fetch_one(&self.pool).await? as u64;
        self.cache.put(version, key, CachedAnswer::Count(n));
        Ok(n)
    }

    /// One page of the entities matching `query`, and how many match in all.
    /// Without an order, entities come in the order they were first stored.
    pub async fn query_entities(&self, query: &EntityQuery) -> Result<QueryPage, StoreError> {
        let version = self.version().await?;
        let text = self.resolve_text(query, version).await?;
        let total = self.query_entities_count(query, version, &text).await?;
        if query.limit == Some(0) {
            return Ok(QueryPage {
                entities: Vec::new(),
                total,
            });
        }
        // No limit is the largest one: both databases take it.
        let limit = query
            .limit
            .map_or(i64::MAX, |l| l.min(i64::MAX as u64) as i64);
        if let [order] = query.order.as_slice()
            && Filter::exists(&order.field.to_lowercase()).is_search_key()
        {
            let ids = self
                .ordered_page(query, order, limit, version, &text)
                .await?;
            return Ok(QueryPage {
                entities: self.load_entities(&ids).await?,
                total,
            });
        }
        let by_entity = self.by_entity();
        // Whether the statement reads the entities too, or only their ids.
        let (page, whole) = match query.lead_filter().filter(|_| query.order.is_empty()) {
            // Walk the lead condition's index entries in entity order and
            // check the rest per entity: a page stops after `limit` matches.
            Some((lead, rest)) => {
                let (from, twice, order) = EntityQuery::lead_sql(lead, &rest, &text);
                // One value of a search key: its index entries are in entity
                // order already, and the walk stops after a page.
                let (select, order) = if twice {
                    ("SELECT DISTINCT e.id", "e.id")
                } else {
                    ("SELECT e.id", order)
                };
                // The page is in entity order, so the entities can be read
                // in the same statement and put in order after.
                let text = format!(
                    "{} WHERE e.id IN (SELECT id FROM ({select} {} ORDER BY {order} LIMIT ? OFFSET ?) AS p)",
                    crate::read::entity_columns!(),
                    from.text
                );
                let page = Sql {
                    text,
                    binds: from.binds,
                };
                (page, true)
            }
            None => {
                let wh = query.where_clause(&text);
                let mut order_sql = String::new();
                let mut binds = wh.binds;
                for o in &query.order {
                    let dir = match o.direction {
                        SortDirection::Asc => "ASC",
                        SortDirection::Desc => "DESC",
                    };
                    // Entities without the field sort last, in either direction.
                    order_sql.push_str(&format!(
                        "(SELECT MIN(value) FROM search s {by_entity} WHERE s.entity_id = e.id AND s.key = ?) IS NULL, \
                         (SELECT MIN(value) FROM search s {by_entity} WHERE s.entity_id = e.id AND s.key = ?) {dir}, "
                    ));
                    binds.push(o.field.to_lowercase());
                    binds.push(o.field.to_lowercase());
                }
                order_sql.push_str("e.id ASC");
                let page = Sql {
                    text: format!(
                        "SELECT e.id FROM entities e WHERE {} ORDER BY {order_sql} LIMIT ? OFFSET ?",
                        wh.text
                    ),
                    binds,
                };
                (page, false)
            }
        };
        let mut q = sqlx::query(self.dialect.sql(page.text));
        for b in &page.binds {
            q = q.bind(b);
        }
        let rows = q
            .bind(limit)
            .bind(query.offset as i64)
            .fetch_all(&self.pool)
            .await?;
        let mut ids: Vec<i64> = rows.iter().map(|r| r.get("id")).collect();
        let entities = if whole {
            ids.sort_unstable();
            crate::read::entities_from_rows(&ids, &rows)?
        } else {
            self.load_entities(&ids).await?
        };
        Ok(QueryPage { entities, total })
    }

    /// SQLite's planner, without statistics, probes one entity's search
    /// rows through the (key, value) index, walking every value of the key
    /// per entity (minutes at 100,000 entities); the entity index is the
    /// right one. PostgreSQL has statistics and needs no hint.
    fn by_entity(&self) -> &'static str {
        match self.dialect {
            Dialect::Sqlite => "INDEXED BY search_entity",
            Dialect::Postgres => "",
        }
    }

    /// One page ordered by one search key: a walk of that key's index
    /// entries in value order, checking the filters per entity, so a page
    /// costs what it shows (plus what it skips), not a sort of every match.
    /// An entity sorts by its smallest value of the key; entities without
    /// the key come last, in the order they were stored; ties go by that
    /// order too.
    async fn ordered_page(
        &self,
        query: &EntityQuery,
        order: &OrderField,
        limit: i64,
        version: i64,
        matched: &TextMatch,
    ) -> Result<Vec<i64>, StoreError> {
        let key = order.field.to_lowercase();
        let dir = match order.direction {
            SortDirection::Asc => "ASC",
            SortDirection::Desc => "DESC",
        };
        let wh = query.where_clause(matched);
        let by_entity = self.by_entity();
        // Only where an entity may have several values of the key must a
        // row prove it holds the entity's smallest.
        let smallest = if self.several_values(&key, version).await? {
            format!(
                " AND NOT EXISTS (SELECT 1 FROM search m {by_entity} WHERE m.entity_id = o.entity_id AND m.key = o.key AND m.value < o.value)"
            )
        } else {
            String::new()
        };
        let text = format!(
            "SELECT o.entity_id FROM search o JOIN entities e ON e.id = o.entity_id
             WHERE o.key = ? AND o.value IS NOT NULL{smallest} AND {}
             ORDER BY o.value {dir}, o.entity_id ASC LIMIT ? OFFSET ?",
            wh.text
        );
        let offset = query.offset.min(i64::MAX as u64) as i64;
        let mut q = sqlx::query_scalar::<_, i64>(self.dialect.sql(text)).bind(key.clone());
        for b in &wh.binds {
            q = q.bind(b);
        }
        let mut ids = q.bind(limit).bind(offset).fetch_all(&self.pool).await?;
        if (ids.len() as i64) < limit {
            // The page runs past the entities with the key: the rest come
            // from those without it.
            let mut with_key = query.clone();
            with_key.order.clear();
            with_key.offset = 0;
            with_key.limit = Some(0);
            let sets = if with_key.filter.is_empty() {
                vec![Vec::new()]
            } else {
                std::mem::take(&mut with_key.filter)
            };
            with_key.filter = sets
                .into_iter()
                .map(|mut set| {
                    set.push(Filter::exists(&key));
                    set
                })
                .collect();
            let having = self
                .query_entities_count(&with_key, version, matched)
                .await? as i64;
            let text = format!(
                "SELECT e.id FROM entities e WHERE {} AND NOT EXISTS (SELECT 1 FROM search x {by_entity} WHERE x.entity_id = e.id AND x.key = ? AND x.value IS NOT NULL)
                 ORDER BY e.id LIMIT ? OFFSET ?",
                wh.text
            );
            let mut q = sqlx::query_scalar::<_, i64>(self.dialect.sql(text));
            for b in &wh.binds {
                q = q.bind(b);
            }
            let rest = q
                .bind(key)
                .bind(limit - ids.len() as i64)
                .bind((offset - having).max(0))
                .fetch_all(&self.pool)
                .await?;
            ids.extend(rest);
        }
        Ok(ids)
    }

    /// Whether some entity has more than one value of `key`; cached while
    /// the catalog version stands.
    async fn several_values(&self, key: &str, version: i64) -> Result<bool, StoreError> {
        let cache_key = format!("several {key}");
        if let Some(CachedAnswer::Count(n)) = self.cache.get(version, &cache_key) {
            return Ok(n > 0);
        }
        let n: i64 = sqlx::query_scalar(sql!(
            self.dialect,
            "SELECT COUNT(*) - COUNT(DISTINCT entity_id) FROM search WHERE key = ?"
        ))
        .bind(key)
        .fetch_one(&self.pool)
        .await?;
        self.cache
            .put(version, cache_key, CachedAnswer::Count(n as u64));
        Ok(n > 0)
    }

    /// For each facet (a search key, or `relations.<type>`), the values among
    /// matching entities with how many entities have each, by value, shown
    /// as written.
    pub async fn facets(
        &self,
        facets: &[String],
        query: &EntityQuery,
    ) -> Result<Vec<(String, std::sync::Arc<FacetValues>)>, StoreError> {
        let unfiltered = query.filter.iter().all(|s| s.is_empty())
            && query.predicate.is_none()
            && query.full_text_term().is_none();
        let version = self.version().await?;
        let text = match self.resolve_text(query, version).await? {
            // Facets count every match: find them once, not entity by entity.
            TextMatch::Dense { .. } => TextMatch::Scan,
            text => text,
        };
        let wh = query.where_clause(&text);
        let mut out = Vec::new();
        for facet in facets {
            let key = facet.to_lowercase();
            let cache_key = format!("facet {key} {}", query.matching_key());
            if let Some(CachedAnswer::Facet(values)) = self.cache.get(version, &cache_key) {
                out.push((facet.clone(), values));
                continue;
            }
            let (sql, first_bind, with_filter) = if let Some(kind) = key.strip_prefix("relations.")
            {
                (
                    format!(
                        "SELECT r.target_ref AS value, COUNT(DISTINCT e.id) AS n FROM entities e JOIN relations r ON r.source_ref = e.ref
                         WHERE r.type_key = ? AND {} GROUP BY r.target_ref ORDER BY r.target_ref",
                        wh.text
                    ),
                    kind.to_owned(),
                    true,
                )
            } else if unfiltered {
                // Rows are unique per entity, key and value: count the index,
                // which holds the written form too (migration 11/10).
                (
                    "SELECT MIN(coalesce(s.original_value, s.value)) AS value, COUNT(*) AS n FROM search s
                     WHERE s.key = ? AND s.value IS NOT NULL GROUP BY s.value ORDER BY s.value"
                        .to_owned(),
                    key.clone(),
                    false,
                )
            } else {
                (
                    format!(
                        "SELECT MIN(coalesce(s.original_value, s.value)) AS value, COUNT(*) AS n FROM search s JOIN entities e ON e.id = s.entity_id
                         WHERE s.key = ? AND s.value IS NOT NULL AND {} GROUP BY s.value ORDER BY s.value",
                        wh.text
                    ),
                    key.clone(),
                    true,
                )
            };
            let mut q = sqlx::query(self.dialect.sql(sql)).bind(first_bind);
            if with_filter {
                for b in &wh.binds {
                    q = q.bind(b);
                }
            }
            let rows = q.fetch_all(&self.pool).await?;
            let values: std::sync::Arc<FacetValues> = std::sync::Arc::new(
                rows.iter()
                    .map(|r| (r.get::<String, _>("value"), r.get::<i64, _>("n") as u64))
                    .collect(),
            );
            self.cache
                .put(version, cache_key, CachedAnswer::Facet(values.clone()));
            out.push((facet.clone(), values));
        }
        Ok(out)
    }
}

/// How much a match in each place counts in [`Store::search`]: a name beats
/// a title beats a tag beats a description.
/// How one word of a ranked search matches, with its score: a whole name
/// (exactly 100, as its start 60), a tag (20) or an exact value (10) through
/// the search rows' index; words inside names, titles, descriptions and
/// annotation values through the token index, by prefix, with the weight
/// the token was written with. `?A` is the word, `?B` the end of its range.
const WORD_MATCHES: &str = "
    SELECT entity_id, CASE WHEN value = ?A THEN 100 ELSE 60 END AS score FROM search
        WHERE key = 'metadata.name' AND value >= ?A AND value < ?B
    UNION ALL SELECT entity_id, 20 FROM search WHERE key = 'metadata.tags' AND value = ?A
    UNION ALL SELECT entity_id, 10 FROM search
        WHERE key IN ('kind', 'spec.type', 'spec.owner', 'spec.lifecycle', 'spec.system') AND value = ?A
    UNION ALL SELECT entity_id, weight FROM search_tokens WHERE token >= ?A AND token < ?B";

/// One search hit: the entity and its score.
pub struct SearchHit {
    pub entity: StoredEntity,
    pub score: i64,
}

impl Store {
    /// Ranked search for people: every word of `term` must match somewhere
    /// in an entity's name, title, tags, kind, type, owner, lifecycle,
    /// system, description or annotation values (case-insensitive); entities
    /// score by where their words matched, best first.
    pub async fn search(&self, term: &str, limit: u64) -> Result<Vec<SearchHit>, StoreError> {
        let mut words: Vec<String> = crate::search::words(term).take(8).collect();
        words.sort();
        words.dedup();
        if words.is_empty() {
            return Ok(Vec::new());
        }
        // Per word, its best match in each entity; an entity must match
        // every word, and scores the sum.
        let per_word: Vec<String> = (0..words.len())
            .map(|i| {
                let matches = WORD_MATCHES
                    .replace("?A", &format!("?{}", 2 * i + 1))
                    .replace("?B", &format!("?{}", 2 * i + 2));
                format!("SELECT entity_id, {i} AS word, MAX(score) AS score FROM ({matches}) m GROUP BY entity_id")
            })
            .collect();
        let sql = format!(
            "SELECT t.entity_id, t.score, e.ref FROM (
                SELECT entity_id, CAST(SUM(score) AS BIGINT) AS score FROM ({}) w GROUP BY entity_id
                HAVING COUNT(*) = {} ORDER BY score DESC, entity_id LIMIT ?{}
            ) t JOIN entities e ON e.id = t.entity_id ORDER BY t.score DESC, t.entity_id",
            per_word.join(" UNION ALL "),
            words.len(),
            2 * words.len() + 1,
        );
        let mut query = sqlx::query(self.dialect.sql(sql));
        for w in &words {
            // Every string starting with `w` sorts before `w` + U+10FFFF.
            query = query.bind(w.clone()).bind(format!("{w}\u{10FFFF}"));
        }
        let rows = query.bind(limit as i64).fetch_all(&self.pool).await?;
        let ids: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
        let scores: std::collections::HashMap<String, i64> =
            rows.iter().map(|r| (r.get(2), r.get(1))).collect();
        // An entity deleted meanwhile is simply left out.
        let entities = self.load_entities(&ids).await?;
        Ok(entities
            .into_iter()
            .map(|entity| SearchHit {
                score: scores.get(&entity.entity_ref).copied().unwrap_or(0),
                entity,
            })
            .collect())
    }
}
