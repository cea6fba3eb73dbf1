//! The SQL dialects the store speaks.
//!
//! Queries are written once, in SQLite's SQL, in a portable subset: `CAST`
//! for integers taken out of JSON, `ON CONFLICT` upserts, aliases on every
//! subquery in `FROM`. For PostgreSQL a few mechanical rewrites make the
//! same text mean the same thing (see [`to_postgres`]); the store tests run
//! every query on both, which is what keeps the rewrites honest.

/// Which database a store talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// `sql` (SQLite's text, built at run time) as this dialect needs it.
    pub(crate) fn sql(self, sql: String) -> sqlx::AssertSqlSafe<String> {
        sqlx::AssertSqlSafe(match self {
            Dialect::Sqlite => sql,
            Dialect::Postgres => to_postgres(&sql),
        })
    }
}

/// A static query in the store's dialect; the PostgreSQL text is rewritten
/// once per call site.
macro_rules! sql {
    ($dialect:expr, $text:expr) => {{
        static POSTGRES: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        let text: &'static str = match $dialect {
            $crate::dialect::Dialect::Sqlite => $text,
            $crate::dialect::Dialect::Postgres => POSTGRES
                .get_or_init(|| $crate::dialect::to_postgres($text))
                .as_str(),
        };
        text
    }};
}
pub(crate) use sql;

/// Rewrites the store's SQLite SQL for PostgreSQL:
/// - placeholders: `?` becomes `$1`, `$2`, … in order; `?N` becomes `$N`;
/// - `json_each(X) AS a` (rows of a JSON array of arrays or objects, used
///   as `a.value ->> i`) becomes `jsonb_array_elements(CAST(X AS jsonb)) AS
///   a(value)`;
/// - `json_each(X)` without an alias (a JSON array of scalars, used as
///   `value`) becomes `plinth_texts(X) AS j(value)`, so the values are text
///   as in SQLite (cast them where integers are needed); the function (a
///   migration) is `jsonb_array_elements_text` with a small row estimate,
///   so the planner probes indexes for such lists;
/// - `instr(` becomes `strpos(` (same argument order);
/// - `json_array(` becomes `json_build_array(` and `json_group_array(`
///   becomes `json_agg(` (of no rows: SQLite's `[]`, PostgreSQL's NULL).
///
/// Text inside single quotes is left alone.
pub(crate) fn to_postgres(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 32);
    let mut next = 1;
    rewrite(sql, &mut out, &mut next);
    out
}

fn rewrite(sql: &str, out: &mut String, next: &mut usize) {
    let mut in_literal = false;
    let mut rest = sql;
    while let Some(c) = rest.chars().next() {
        // `''` inside a literal toggles twice: still inside.
        if c == '\'' {
            in_literal = !in_literal;
        } else if !in_literal && let Some(after) = rewrite_one(rest, out, next) {
            rest = after;
            continue;
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
}

/// Rewrites the placeholder or construct `rest` starts with into `out`;
/// the text after it, or `None` when there is nothing to rewrite there.
fn rewrite_one<'a>(rest: &'a str, out: &mut String, next: &mut usize) -> Option<&'a str> {
    if let Some(after) = rest.strip_prefix('?') {
        let digits = after
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(after.len());
        if digits == 0 {
            out.push_str(&format!("${next}"));
            *next += 1;
        } else {
            out.push('$');
            out.push_str(&after[..digits]);
        }
        return Some(&after[digits..]);
    }
    // Function names only at the start of a word.
    if out.ends_with(|p: char| p.is_alphanumeric() || p == '_') {
        return None;
    }
    if let Some(after) = rest.strip_prefix("json_each(") {
        let close = matching_paren(after);
        let (arg, tail) = (&after[..close], &after[(close + 1).min(after.len())..]);
        let alias = tail.trim_start().strip_prefix("AS ").map(|t| {
            let t = t.trim_start();
            t.split_at(
                t.find(|c: char| !(c.is_alphanumeric() || c == '_'))
                    .unwrap_or(t.len()),
            )
        });
        return Some(match alias {
            Some((alias, after_alias)) => {
                out.push_str("jsonb_array_elements(CAST(");
                rewrite(arg, out, next);
                out.push_str(&format!(" AS jsonb)) AS {alias}(value)"));
                after_alias
            }
            None => {
                out.push_str("plinth_texts(");
                rewrite(arg, out, next);
                out.push_str(") AS j(value)");
                tail
            }
        });
    }
    for (sqlite, postgres) in [
        ("instr(", "strpos("),
        ("json_array(", "json_build_array("),
        ("json_group_array(", "json_agg("),
    ] {
        if let Some(after) = rest.strip_prefix(sqlite) {
            out.push_str(postgres);
            return Some(after);
        }
    }
    None
}

/// Index of the `)` closing a parenthesis opened just before `text`.
fn matching_paren(text: &str) -> usize {
    let mut depth = 0;
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' if depth == 0 => return i,
            ')' => depth -= 1,
            _ => {}
        }
    }
    text.len()
}

#[cfg(test)]
mod tests {
    use super::to_postgres;

    #[test]
    fn placeholders_are_numbered_outside_literals() {
        assert_eq!(
            to_postgres("SELECT '?' FROM t WHERE a = ? AND b = ? AND c = 'it''s ?'"),
            "SELECT '?' FROM t WHERE a = $1 AND b = $2 AND c = 'it''s ?'"
        );
        assert_eq!(
            to_postgres("a >= ?1 AND a < ?2 LIMIT ?3"),
            "a >= $1 AND a < $2 LIMIT $3"
        );
    }

    #[test]
    fn json_arrays_become_set_returning_functions() {
        assert_eq!(
            to_postgres(
                "DELETE FROM x WHERE id IN (SELECT CAST(value AS BIGINT) FROM json_each(?)) AND y = ?"
            ),
            "DELETE FROM x WHERE id IN (SELECT CAST(value AS BIGINT) FROM plinth_texts($1) AS j(value)) AND y = $2"
        );
        assert_eq!(
            to_postgres("INSERT INTO t SELECT ?, u.value ->> 0 FROM json_each(?) AS u WHERE true"),
            "INSERT INTO t SELECT $1, u.value ->> 0 FROM jsonb_array_elements(CAST($2 AS jsonb)) AS u(value) WHERE true"
        );
        assert_eq!(
            to_postgres("EXISTS (SELECT 1 FROM json_each(f.targets) WHERE value = ?)"),
            "EXISTS (SELECT 1 FROM plinth_texts(f.targets) AS j(value) WHERE value = $1)"
        );
    }

    #[test]
    fn functions_are_renamed() {
        assert_eq!(to_postgres("instr(value, ?) > 0"), "strpos(value, $1) > 0");
        assert_eq!(to_postgres("x_instr(value)"), "x_instr(value)");
        assert_eq!(
            to_postgres("json_group_array(json_array(a, ?))"),
            "json_agg(json_build_array(a, $1))"
        );
    }
}
