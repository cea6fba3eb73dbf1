//! Query parameters as Backstage's catalog API takes them.

use plinth_store::{EntityQuery, Filter, FilterSet, OrderField, Predicate, SortDirection};
use serde_json::{Map, Value};

use crate::error::ApiError;

/// `application/x-www-form-urlencoded` pairs, in order, repeated keys kept.
pub fn pairs(raw: Option<&str>) -> Vec<(String, String)> {
    raw.unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (decode(k), decode(v)),
            None => (decode(p), String::new()),
        })
        .collect()
}

pub(crate) fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match u8::from_str_radix(
                    std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz"),
                    16,
                ) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub fn all<'a>(pairs: &'a [(String, String)], key: &str) -> impl Iterator<Item = &'a str> {
    pairs
        .iter()
        .filter(move |(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

pub fn one<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    all(pairs, key).next()
}

/// `filter` parameters: each is a set of comma-separated conditions that
/// must all hold (`key=value`, or `key` for "exists"); sets are alternatives.
/// A key given twice in one set matches either value. Case-insensitive.
pub fn filter_sets<'a>(values: impl Iterator<Item = &'a str>) -> Result<Vec<FilterSet>, ApiError> {
    let mut sets = Vec::new();
    for value in values {
        let mut set: FilterSet = Vec::new();
        for condition in value.split(',') {
            let (key, val) = match condition.split_once('=') {
                Some((k, v)) => (k.trim(), Some(v.trim())),
                None => (condition.trim(), None),
            };
            if key.is_empty() {
                return Err(ApiError::input(format!(
                    "filter \"{value}\" has a condition without a key; write key=value or key, separated by commas"
                )));
            }
            let key = key.to_lowercase();
            match set.iter_mut().find(|f| f.key == key) {
                Some(f) => f.values.extend(val.map(str::to_lowercase)),
                None => set.push(Filter {
                    key,
                    values: val.map(str::to_lowercase).into_iter().collect(),
                }),
            }
        }
        sets.push(set);
    }
    Ok(sets)
}

/// Parses Backstage's predicate language: an object whose keys are `$all`,
/// `$any`, `$not`, or field paths; a field's value is a value to equal, or an
/// object with one of `$exists`, `$in`, `$hasPrefix`, `$contains`. Several
/// keys in one object must all hold. `at` names where, for messages.
/// The `query` of a request body, when there is one.
pub fn body_predicate(query: Option<&Value>) -> Result<Option<Predicate>, ApiError> {
    query.map(|q| predicate(q, "query")).transpose()
}

pub fn predicate(value: &Value, at: &str) -> Result<Predicate, ApiError> {
    let Value::Object(map) = value else {
        return Err(ApiError::input(format!(
            "{at} must be an object such as {{\"kind\": \"component\"}}"
        )));
    };
    let mut parts = Vec::new();
    for (key, v) in map {
        let here = format!("{at}.{key}");
        parts.push(match key.as_str() {
            "$all" | "$any" => {
                let Value::Array(items) = v else {
                    return Err(ApiError::input(format!(
                        "{here} must be a list of predicates"
                    )));
                };
                let items = items
                    .iter()
                    .enumerate()
                    .map(|(i, p)| predicate(p, &format!("{here}[{i}]")))
                    .collect::<Result<Vec<_>, _>>()?;
                if key == "$all" {
                    Predicate::All(items)
                } else {
                    Predicate::Any(items)
                }
            }
            "$not" => Predicate::Not(Box::new(predicate(v, &here)?)),
            k if k.starts_with('$') => {
                return Err(ApiError::input(format!(
                    "{here}: unknown operator {k}; use $all, $any, $not, or a field name"
                )));
            }
            field => field_predicate(&field.to_lowercase(), v, &here)?,
        });
    }
    Ok(if parts.len() == 1 {
        parts.remove(0)
    } else {
        Predicate::All(parts)
    })
}

fn scalar(v: &Value, at: &str) -> Result<String, ApiError> {
    match v {
        Value::String(s) => Ok(s.to_lowercase()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        _ => Err(ApiError::input(format!(
            "{at} must be a string, number or boolean"
        ))),
    }
}

fn field_predicate(field: &str, v: &Value, at: &str) -> Result<Predicate, ApiError> {
    let Value::Object(m) = v else {
        return Ok(Predicate::In(field.to_owned(), vec![scalar(v, at)?]));
    };
    let (op, arg) = match m.iter().next() {
        Some(pair) if m.len() == 1 => pair,
        _ => {
            return Err(ApiError::input(format!(
                "{at} must hold exactly one of $exists, $in, $hasPrefix, $contains"
            )));
        }
    };
    let here = format!("{at}.{op}");
    Ok(match op.as_str() {
        "$exists" => match arg {
            Value::Bool(true) => Predicate::Exists(field.to_owned()),
            Value::Bool(false) => Predicate::Not(Box::new(Predicate::Exists(field.to_owned()))),
            _ => return Err(ApiError::input(format!("{here} must be true or false"))),
        },
        "$in" => {
            let Value::Array(items) = arg else {
                return Err(ApiError::input(format!("{here} must be a list of values")));
            };
            let values = items
                .iter()
                .enumerate()
                .map(|(i, x)| scalar(x, &format!("{here}[{i}]")))
                .collect::<Result<Vec<_>, _>>()?;
            Predicate::In(field.to_owned(), values)
        }
        "$hasPrefix" => Predicate::HasPrefix(field.to_owned(), scalar(arg, &here)?),
        "$contains" => match arg {
            // On relations: {type, targetRef}.
            Value::Object(rel) if field == "relations" => {
                let kind = rel.get("type").and_then(Value::as_str).ok_or_else(|| {
                    ApiError::input(format!(
                        "{here} on relations needs {{\"type\": ..., \"targetRef\": ...}}"
                    ))
                })?;
                let key = format!("relations.{}", kind.to_lowercase());
                match rel.get("targetRef") {
                    Some(t) => Predicate::In(key, vec![scalar(t, &format!("{here}.targetRef"))?]),
                    None => Predicate::Exists(key),
                }
            }
            // On an array of values: one of them equals.
            other => Predicate::In(field.to_owned(), vec![scalar(other, &here)?]),
        },
        other => {
            return Err(ApiError::input(format!(
                "{at}: unknown matcher {other}; use $exists, $in, $hasPrefix or $contains"
            )));
        }
    })
}

/// `fields=kind,metadata.name`: comma-separated, repeatable.
pub fn fields<'a>(values: impl Iterator<Item = &'a str>) -> Vec<String> {
    values
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|f| !f.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Keeps only the given dot paths of an entity (all of it when none).
pub fn project(entity: Value, fields: &[String]) -> Value {
    if fields.is_empty() {
        return entity;
    }
    let mut out = Value::Object(Map::new());
    for f in fields {
        let parts: Vec<&str> = f.split('.').collect();
        if let Some(v) = get_path(&entity, &parts) {
            set_path(&mut out, &parts, v.clone());
        }
    }
    out
}

fn get_path<'a>(v: &'a Value, parts: &[&str]) -> Option<&'a Value> {
    parts.iter().try_fold(v, |node, p| node.get(*p))
}

fn set_path(out: &mut Value, parts: &[&str], v: Value) {
    let mut node = out;
    for (i, p) in parts.iter().enumerate() {
        let Value::Object(map) = node else { return };
        if i + 1 == parts.len() {
            map.insert((*p).to_owned(), v);
            return;
        }
        node = map
            .entry((*p).to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
    }
}

/// `offset` and `limit` as non-negative integers.
pub fn number(pairs: &[(String, String)], key: &str) -> Result<Option<u64>, ApiError> {
    one(pairs, key)
        .map(|v| {
            v.parse::<u64>().map_err(|_| {
                ApiError::input(format!(
                    "{key} must be a non-negative whole number, not \"{v}\""
                ))
            })
        })
        .transpose()
}

/// `order=asc:metadata.name` (GET /entities).
pub fn order_param<'a>(values: impl Iterator<Item = &'a str>) -> Result<Vec<OrderField>, ApiError> {
    values
        .map(|v| {
            let (dir, field) = v.split_once(':').ok_or_else(|| {
                ApiError::input(format!("order \"{v}\" must be asc:<field> or desc:<field>"))
            })?;
            Ok(OrderField {
                field: field.to_owned(),
                direction: direction(dir)?,
            })
        })
        .collect()
}

/// `orderField=metadata.name,asc` (by-query).
pub fn order_field<'a>(values: impl Iterator<Item = &'a str>) -> Result<Vec<OrderField>, ApiError> {
    values
        .map(|v| {
            let (field, dir) = v.split_once(',').unwrap_or((v, "asc"));
            Ok(OrderField {
                field: field.trim().to_owned(),
                direction: direction(dir.trim())?,
            })
        })
        .collect()
}

pub fn direction(d: &str) -> Result<SortDirection, ApiError> {
    match d.to_lowercase().as_str() {
        "asc" => Ok(SortDirection::Asc),
        "desc" => Ok(SortDirection::Desc),
        other => Err(ApiError::input(format!(
            "sort order must be asc or desc, not \"{other}\""
        ))),
    }
}

/// A cursor: the query it continues, opaque to clients (base64url of JSON).
pub fn encode_cursor(query: &EntityQuery) -> String {
    base64url_encode(serde_json::to_string(query).unwrap_or_default().as_bytes())
}

pub fn decode_cursor(cursor: &str) -> Result<EntityQuery, ApiError> {
    let bad = || ApiError::input("cursor is not valid; use a cursor from a previous answer");
    let bytes = base64url_decode(cursor).ok_or_else(bad)?;
    serde_json::from_slice(&bytes).map_err(|_| bad())
}

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

fn base64url_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

fn base64url_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for c in text.bytes() {
        let v = ALPHABET.iter().position(|&a| a == c)? as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_strings_decode() {
        assert_eq!(
            pairs(Some(
                "filter=kind%3Dcomponent,metadata.name=a+b&fields=kind&x"
            )),
            [
                (
                    "filter".to_string(),
                    "kind=component,metadata.name=a b".to_string()
                ),
                ("fields".to_string(), "kind".to_string()),
                ("x".to_string(), String::new())
            ]
        );
        assert_eq!(
            pairs(Some("a=%zz%")),
            [("a".to_string(), "%zz%".to_string())]
        );
    }

    #[test]
    fn filters_group_repeated_keys() {
        let sets =
            filter_sets(["Kind=Component,kind=API,spec.type", "metadata.name=x"].into_iter())
                .unwrap();
        assert_eq!(sets.len(), 2);
        assert_eq!(sets[0][0].values, ["component", "api"]);
        assert_eq!(sets[0][1].key, "spec.type");
        assert!(sets[0][1].values.is_empty());
        assert!(filter_sets(["=x"].into_iter()).is_err());
    }

    #[test]
    fn cursors_round_trip() {
        let q = EntityQuery {
            offset: 40,
            limit: Some(20),
            ..EntityQuery::default()
        };
        let c = encode_cursor(&q);
        assert_eq!(decode_cursor(&c).unwrap(), q);
        assert!(decode_cursor("!!").is_err());
    }

    #[test]
    fn projection_keeps_named_paths() {
        let e = serde_json::json!({"kind": "Component", "metadata": {"name": "a", "tags": ["x"]}, "spec": {}});
        assert_eq!(
            project(
                e,
                &["kind".into(), "metadata.name".into(), "spec.missing".into()]
            ),
            serde_json::json!({"kind": "Component", "metadata": {"name": "a"}})
        );
    }
}
