//! The flattened `key = value` rows of an entity, as Backstage's search table
//! has them: keys are lowercase dot paths, values lowercase text.
//!
//! - `metadata.name = orders`; nested objects join their keys with dots;
//! - arrays of primitives give one row per item (`metadata.tags = java`) and
//!   the older form `metadata.tags.java = true`;
//! - arrays of objects are traversed with the array's path (`metadata.links.url`);
//! - booleans and numbers are written as text; null is a row without value;
//! - values longer than [`MAX_VALUE_LENGTH`] are kept as a row without value,
//!   so that `key` (exists) filters still work;
//! - `relations` and `status` are not indexed here (relations are filtered
//!   from their own table).

use serde_json::Value;

pub const MAX_VALUE_LENGTH: usize = 200;

/// One row: the lowercase key, the lowercase value and the value as written.
pub type SearchRow = (String, Option<String>, Option<String>);

/// The search rows of an entity body.
pub fn search_rows(body: &Value) -> Vec<SearchRow> {
    let mut rows = Vec::new();
    if let Value::Object(map) = body {
        for (k, v) in map {
            if k == "relations" || k == "status" {
                continue;
            }
            walk(&k.to_lowercase(), v, &mut rows);
        }
    }
    rows
}

fn walk(path: &str, value: &Value, rows: &mut Vec<SearchRow>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                walk(&format!("{path}.{}", k.to_lowercase()), v, rows);
            }
        }
        Value::Array(items) => {
            for item in items {
                match item {
                    Value::Object(_) | Value::Array(_) => walk(path, item, rows),
                    primitive => {
                        let text = scalar_text(primitive);
                        if let Some(t) = &text {
                            rows.push((
                                format!("{path}.{}", t.to_lowercase()),
                                Some("true".into()),
                                Some("true".into()),
                            ));
                        }
                        rows.push(row(path, text));
                    }
                }
            }
        }
        primitive => rows.push(row(path, scalar_text(primitive))),
    }
}

fn row(path: &str, original: Option<String>) -> SearchRow {
    (
        path.to_owned(),
        original.as_ref().map(|o| o.to_lowercase()),
        original,
    )
}

/// A primitive as written, when short enough to index.
fn scalar_text(value: &Value) -> Option<String> {
    let text = match value {
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    (text.chars().count() <= MAX_VALUE_LENGTH).then_some(text)
}

/// Weights of words in the ranked search, by where the word is. Whole
/// names, tags and exact values (kind, type, owner, lifecycle, system) are
/// found through the search rows; these are the words inside free text.
pub const NAME_PART: i64 = 40;
pub const TITLE_WORD: i64 = 30;
pub const DESCRIPTION_WORD: i64 = 8;
pub const ANNOTATION_WORD: i64 = 4;

/// Words of a field that are indexed; a longer description is still found
/// by its first words.
const MAX_WORDS_PER_FIELD: usize = 64;

/// The words of an entity for the ranked search, each once with the best
/// weight it has: parts of a name with separators, words of the title,
/// display name and description, and of annotation values (not the
/// `managed-by-*` locations, which every entity has).
pub fn search_tokens(body: &Value) -> Vec<(String, i64)> {
    let mut best: std::collections::BTreeMap<String, i64> = Default::default();
    let mut add = |text: &str, weight: i64| {
        for word in words(text).take(MAX_WORDS_PER_FIELD) {
            let w = best.entry(word).or_insert(weight);
            *w = (*w).max(weight);
        }
    };
    let metadata = &body["metadata"];
    if let Some(name) = metadata["name"].as_str()
        && name.contains(['-', '_', '.'])
    {
        add(name, NAME_PART);
    }
    for (text, weight) in [
        (&metadata["title"], TITLE_WORD),
        (&body["spec"]["profile"]["displayName"], TITLE_WORD),
        (&metadata["description"], DESCRIPTION_WORD),
    ] {
        if let Some(t) = text.as_str() {
            add(t, weight);
        }
    }
    if let Some(annotations) = metadata["annotations"].as_object() {
        for (key, value) in annotations {
            if let Some(v) = value.as_str()
                && !key.starts_with("backstage.io/managed-by-")
                && v.len() <= MAX_VALUE_LENGTH
            {
                add(v, ANNOTATION_WORD);
            }
        }
    }
    best.into_iter().collect()
}

/// Lowercase words of two characters or more.
pub fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.chars().nth(1).is_some())
        .map(str::to_lowercase)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn rows_follow_backstage() {
        let rows = search_rows(&json!({
            "apiVersion": "backstage.io/v1alpha1",
            "kind": "Component",
            "metadata": {"name": "Orders", "tags": ["Java"], "links": [{"url": "https://x"}], "annotations": {"a.io/b": "C"}},
            "spec": {"type": "service", "replicas": 3, "public": true, "nothing": null, "definition": "x".repeat(201)},
            "relations": [{"type": "ownedBy", "targetRef": "group:default/a"}],
        }));
        let rows: Vec<String> = rows
            .iter()
            .map(|(k, v, o)| {
                format!(
                    "{k}={} ({})",
                    v.as_deref().unwrap_or("<none>"),
                    o.as_deref().unwrap_or("-")
                )
            })
            .collect();
        assert_eq!(
            rows,
            [
                "apiversion=backstage.io/v1alpha1 (backstage.io/v1alpha1)",
                "kind=component (Component)",
                "metadata.name=orders (Orders)",
                "metadata.tags.java=true (true)",
                "metadata.tags=java (Java)",
                "metadata.links.url=https://x (https://x)",
                "metadata.annotations.a.io/b=c (C)",
                "spec.type=service (service)",
                "spec.replicas=3 (3)",
                "spec.public=true (true)",
                "spec.nothing=<none> (-)",
                "spec.definition=<none> (-)",
            ]
        );
    }

    #[test]
    fn tokens_are_words_of_free_text_with_their_best_weight() {
        let tokens = search_tokens(&json!({
            "metadata": {
                "name": "payments-api",
                "title": "Payments API",
                "description": "Takes payments, refunds. A PSP-neutral API; ünïcode too.",
                "annotations": {
                    "github.com/project-slug": "keel/payments",
                    "backstage.io/managed-by-location": "file:/srv/catalog/payments.yaml",
                },
            },
            "spec": {"profile": {"displayName": "Pay Ments"}},
        }));
        assert_eq!(
            tokens,
            [
                ("api".into(), NAME_PART),
                ("keel".into(), ANNOTATION_WORD),
                ("ments".into(), TITLE_WORD),
                ("neutral".into(), DESCRIPTION_WORD),
                ("pay".into(), TITLE_WORD),
                ("payments".into(), NAME_PART),
                ("psp".into(), DESCRIPTION_WORD),
                ("refunds".into(), DESCRIPTION_WORD),
                ("takes".into(), DESCRIPTION_WORD),
                ("too".into(), DESCRIPTION_WORD),
                ("ünïcode".into(), DESCRIPTION_WORD),
            ]
        );
        // A name without separators is found whole, through the search rows.
        assert!(search_tokens(&json!({"metadata": {"name": "orders"}})).is_empty());
    }
}
