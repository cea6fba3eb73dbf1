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
}
