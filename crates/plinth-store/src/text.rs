//! The full-text filter (`fullTextFilterTerm`) answered in memory.
//!
//! A substring match cannot use a B-tree index, so SQL tests every value of
//! the searched keys, row by row: 200 ms for one key at a million entities.
//! Here each key asked about gets a [`Column`]: its lowercase values laid
//! end to end in one buffer, which a vectorised substring search
//! (`memchr::memmem`) crosses in a few milliseconds. The matching entity ids
//! then go into the SQL query as a list, so filters, order, pages and counts
//! stay the store's SQL, the same on every store. A term matching many
//! entities (a letter typed in a search box) is counted from the columns
//! and its page found by testing entities one by one in the page's order,
//! which stops as soon as the page is full.
//!
//! Columns are built from the search table on first use and kept while the
//! catalog version stands (like the answer cache, so replicas agree), each
//! read in one snapshot together with the version it belongs to; a change
//! of the catalog committed by this replica drops them at once. The SQL
//! scan stays for keys whose values would go over [`BUDGET`], and for
//! counting a term of more than [`MAX_IDS`] matches under other filters.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures_util::TryStreamExt;
use sqlx::Row;
use tokio::sync::OnceCell;

use crate::dialect::{Dialect, sql};
use crate::{Store, StoreError};

/// Bytes all columns may take together (text, offsets and ids; about 35
/// bytes a value for names, so some 4 million values).
const BUDGET: usize = 128 << 20;

/// More matches than this are not handed to SQL as a list (a list that
/// long costs the database more than testing every value): the page tests
/// entities one by one instead (see [`TextMatch::Dense`]).
pub(crate) const MAX_IDS: usize = 50_000;

/// Between two values: a byte that UTF-8 never contains, so no term (always
/// valid UTF-8) matches across two values.
const SEPARATOR: u8 = 0xFF;

/// One search key's lowercase values, end to end.
struct Column {
    /// Values, each followed by [`SEPARATOR`].
    text: Vec<u8>,
    /// Where each value starts in `text`, ascending.
    starts: Vec<u32>,
    /// The entity each value belongs to.
    ids: Vec<i64>,
}

impl Column {
    fn bytes(&self) -> usize {
        self.text.capacity() + self.starts.capacity() * 4 + self.ids.capacity() * 8
    }

    /// Adds the entities of values containing `term` to `out`.
    fn matches(&self, term: &memchr::memmem::Finder<'_>, out: &mut Vec<i64>) {
        let (mut at, mut i) = (0, 0);
        while let Some(found) = term.find(&self.text[at..]) {
            let hit = at + found;
            // The value holding the hit: the last one starting at or before
            // it, after the previous hit's. Near when hits are dense (a few
            // steps), found by halving when they are far apart.
            let mut steps = 0;
            while steps < 8 && self.starts.get(i + 1).is_some_and(|&s| s as usize <= hit) {
                i += 1;
                steps += 1;
            }
            if steps == 8 {
                i += self.starts[i..].partition_point(|&s| s as usize <= hit) - 1;
            }
            out.push(self.ids[i]);
            // On past this value: one match per value is enough.
            at = self
                .starts
                .get(i + 1)
                .map_or(self.text.len(), |&s| s as usize);
        }
    }
}

/// How many distinct ids `ids` holds, counted in a bitmap of the ids
/// (entity ids are row numbers, dense from 1): a term matching half a
/// million entities is counted in a millisecond where sorting takes tens.
/// `None` when the ids are too sparse for a bitmap.
fn distinct(ids: &[i64]) -> Option<usize> {
    let max = usize::try_from(*ids.iter().max()?).ok()?;
    if max / 64 > ids.len().saturating_mul(4) {
        return None;
    }
    let mut seen = vec![0u64; max / 64 + 1];
    let mut count = 0;
    for &id in ids {
        let id = usize::try_from(id).ok()?;
        let (word, bit) = (id / 64, 1u64 << (id % 64));
        if seen[word] & bit == 0 {
            seen[word] |= bit;
            count += 1;
        }
    }
    Some(count)
}

/// A column being built or built; `None` when the key is over the budget
/// or the catalog changed while reading it.
type Slot = Arc<OnceCell<Option<Arc<Column>>>>;

/// The columns of one catalog version.
#[derive(Default)]
pub(crate) struct TextIndex {
    state: Mutex<State>,
    /// Tests compare the columns' answers with the SQL scan's.
    #[cfg(test)]
    pub(crate) scan_only: std::sync::atomic::AtomicBool,
    /// Tests lower [`MAX_IDS`] to reach [`TextMatch::Dense`] with a few
    /// entities.
    #[cfg(test)]
    pub(crate) max_ids: std::sync::atomic::AtomicUsize,
}

impl std::fmt::Debug for TextIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (version, keys, bytes) = match self.state.lock() {
            Ok(s) => (s.version, s.columns.len(), s.bytes),
            Err(_) => (0, 0, 0),
        };
        f.debug_struct("TextIndex")
            .field("version", &version)
            .field("keys", &keys)
            .field("bytes", &bytes)
            .finish()
    }
}

#[derive(Default)]
struct State {
    version: i64,
    columns: HashMap<String, Slot>,
    /// Bytes taken by the built columns of this version.
    bytes: usize,
}

/// How a query's full-text condition is written in SQL.
#[derive(Debug, Clone, Default)]
pub(crate) enum TextMatch {
    /// Tested row by row in SQL (or there is no full-text condition).
    #[default]
    Scan,
    /// The entities matching, found beforehand, ascending.
    Ids(Arc<Vec<i64>>),
    /// More than [`MAX_IDS`] entities match, `count` of them: the page
    /// tests each entity it walks (`INDEXED BY` `hint` on SQLite, whose
    /// planner would otherwise walk the key's values per entity), and the
    /// count needs SQL only under other conditions.
    Dense { count: u64, hint: &'static str },
}

impl TextIndex {
    /// The slot of `key` at `version`, and whether the caller is the first
    /// to ask (and so builds it); a newer version drops every column.
    fn slot(&self, version: i64, key: &str) -> Option<Slot> {
        let mut state = self.state.lock().ok()?;
        if state.version != version {
            *state = State {
                version,
                ..State::default()
            };
        }
        Some(state.columns.entry(key.to_owned()).or_default().clone())
    }

    /// Drops every column: called after this replica commits a change of
    /// the catalog, so their memory goes at once rather than at the next
    /// full-text call.
    pub(crate) fn clear(&self) {
        if let Ok(mut state) = self.state.lock() {
            *state = State::default();
        }
    }

    /// Bytes the built columns take.
    #[cfg(test)]
    pub(crate) fn bytes(&self) -> usize {
        self.state.lock().map_or(0, |s| s.bytes)
    }

    /// Counts a built column against the budget; `false` when it does not
    /// fit (or belongs to a version already gone).
    fn admit(&self, version: i64, column: &Column) -> bool {
        let Ok(mut state) = self.state.lock() else {
            return false;
        };
        if state.version != version || state.bytes + column.bytes() > BUDGET {
            return false;
        }
        state.bytes += column.bytes();
        true
    }
}

impl Store {
    /// The entities whose values of `keys` contain `term` (lowercase), when
    /// the columns answer it at `version`; otherwise [`TextMatch::Scan`].
    pub(crate) async fn text_match(
        &self,
        version: i64,
        term: &str,
        keys: &[String],
    ) -> Result<TextMatch, StoreError> {
        #[cfg(test)]
        if self
            .text
            .scan_only
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            return Ok(TextMatch::Scan);
        }
        let finder = memchr::memmem::Finder::new(term.as_bytes());
        #[cfg(test)]
        let max_ids = match self.text.max_ids.load(std::sync::atomic::Ordering::Relaxed) {
            0 => MAX_IDS,
            n => n,
        };
        #[cfg(not(test))]
        let max_ids = MAX_IDS;
        let mut ids = Vec::new();
        for key in keys {
            let Some(slot) = self.text.slot(version, key) else {
                return Ok(TextMatch::Scan);
            };
            let column = slot
                .get_or_try_init(|| self.build_column(version, key))
                .await?;
            let Some(column) = column else {
                return Ok(TextMatch::Scan);
            };
            column.matches(&finder, &mut ids);
        }
        let dense = |count: usize| TextMatch::Dense {
            count: count as u64,
            hint: match self.dialect {
                Dialect::Sqlite => "INDEXED BY search_entity",
                Dialect::Postgres => "",
            },
        };
        if ids.len() > max_ids
            && let Some(count) = distinct(&ids)
            && count > max_ids
        {
            return Ok(dense(count));
        }
        ids.sort_unstable();
        ids.dedup();
        if ids.len() > max_ids {
            return Ok(dense(ids.len()));
        }
        Ok(TextMatch::Ids(Arc::new(ids)))
    }

    /// Reads `key`'s values in the snapshot of `version`; `None` when the
    /// catalog has moved on or the column does not fit the budget.
    async fn build_column(
        &self,
        version: i64,
        key: &str,
    ) -> Result<Option<Arc<Column>>, StoreError> {
        // One snapshot for the version and the values (SQLite's read
        // transactions are snapshots from their first read).
        let begin = match self.dialect {
            Dialect::Sqlite => "BEGIN",
            Dialect::Postgres => "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
        };
        let mut tx = self.pool.begin_with(begin).await?;
        let now: i64 = sqlx::query_scalar("SELECT version FROM catalog_version WHERE id = 1")
            .fetch_one(&mut *tx)
            .await?;
        if now != version {
            return Ok(None);
        }
        let mut column = Column {
            text: Vec::new(),
            starts: Vec::new(),
            ids: Vec::new(),
        };
        {
            let mut rows = sqlx::query(sql!(
                self.dialect,
                "SELECT entity_id, value FROM search WHERE key = ? AND value IS NOT NULL"
            ))
            .bind(key)
            .fetch(&mut *tx);
            while let Some(row) = rows.try_next().await? {
                let value: &str = row.try_get(1)?;
                let Ok(start) = u32::try_from(column.text.len()) else {
                    // Offsets are 32 bits: a key of more than 4 GB of values
                    // is far over the budget anyway.
                    return Ok(None);
                };
                column.starts.push(start);
                column.ids.push(row.try_get(0)?);
                column.text.extend_from_slice(value.as_bytes());
                column.text.push(SEPARATOR);
                if column.bytes() > BUDGET {
                    return Ok(None);
                }
            }
        }
        tx.rollback().await?;
        column.text.shrink_to_fit();
        column.starts.shrink_to_fit();
        column.ids.shrink_to_fit();
        Ok(self.text.admit(version, &column).then(|| Arc::new(column)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn column(values: &[(&str, i64)]) -> Column {
        let mut c = Column {
            text: Vec::new(),
            starts: Vec::new(),
            ids: Vec::new(),
        };
        for (v, id) in values {
            c.starts.push(c.text.len() as u32);
            c.ids.push(*id);
            c.text.extend_from_slice(v.as_bytes());
            c.text.push(SEPARATOR);
        }
        c
    }

    fn find(c: &Column, term: &str) -> Vec<i64> {
        let mut out = Vec::new();
        c.matches(&memchr::memmem::Finder::new(term), &mut out);
        out
    }

    #[test]
    fn hits_near_and_far_apart_find_their_values() {
        let values: Vec<(String, i64)> = (0..100)
            .map(|n| {
                let v = if [3, 4, 50, 99].contains(&n) {
                    format!("v{n}-needle")
                } else {
                    format!("v{n}")
                };
                (v, 1000 + n)
            })
            .collect();
        let refs: Vec<(&str, i64)> = values.iter().map(|(v, id)| (v.as_str(), *id)).collect();
        let c = column(&refs);
        assert_eq!(find(&c, "needle"), [1003, 1004, 1050, 1099]);
        assert_eq!(find(&c, "v"), (1000..1100).collect::<Vec<_>>());
        assert_eq!(
            find(&c, "v9"),
            [
                1009, 1090, 1091, 1092, 1093, 1094, 1095, 1096, 1097, 1098, 1099
            ]
        );
    }

    #[test]
    fn distinct_ids_are_counted_once() {
        assert_eq!(distinct(&[3, 1, 3, 64, 1, 128]), Some(4));
        assert_eq!(distinct(&[]), None);
        assert_eq!(distinct(&[1, i64::MAX]), None, "too sparse for a bitmap");
        assert_eq!(distinct(&[-1]), None);
    }

    #[test]
    fn a_value_matches_once_and_terms_never_span_two_values() {
        let c = column(&[("abab", 1), ("ba", 2), ("x", 3), ("日本語", 4)]);
        assert_eq!(find(&c, "ab"), [1]);
        assert_eq!(find(&c, "b"), [1, 2]);
        // "ab" + "ba" run together would hold "bba"; the separator stops it.
        assert!(find(&c, "bba").is_empty());
        assert_eq!(find(&c, "本"), [4]);
    }
}
