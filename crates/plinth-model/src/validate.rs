//! Entity validation with Backstage's verdict.
//!
//! Backstage checks an entity in stages (the envelope schema, the
//! `FieldFormatEntityPolicy`, `NoForeignRootFieldsEntityPolicy`, the kind
//! schemas, then relation emission) and stops at the first error. Here every
//! stage runs and every problem is collected, so a file is fixed in one pass;
//! an entity is valid exactly when Backstage would accept it.

use serde_json::{Map, Value};

use crate::entity::Entity;
use crate::entity_ref::{DEFAULT_NAMESPACE, EntityRef};
use crate::kinds::{BUILTIN_KINDS, Field, FieldType, KindMatch, Kinds};
use crate::problem::{FieldPath, Problem};
use crate::relations;
use crate::rules::{self, RuleResult};

const ROOT_FIELDS: [&str; 6] = [
    "apiVersion",
    "kind",
    "metadata",
    "spec",
    "relations",
    "status",
];

/// An entity that failed validation: everything wrong with it, and the best
/// name we can give it in messages.
#[derive(Debug, Clone, PartialEq)]
pub struct Invalid {
    /// `kind:namespace/name`, lowercase, with `?` for parts that are missing
    /// or not strings.
    pub label: String,
    pub problems: Vec<Problem>,
}

/// Validates one document. On success the entity's `metadata.namespace` is
/// filled in (`default`), as Backstage's `DefaultNamespaceEntityPolicy` does.
pub fn validate_entity(value: Value, kinds: &Kinds) -> Result<Entity, Invalid> {
    let Value::Object(root) = &value else {
        return Err(Invalid {
            label: "?".into(),
            problems: vec![Problem::new(
                FieldPath::root(),
                format!(
                    "an entity must be a mapping with apiVersion, kind, metadata and spec, but this document is {}",
                    type_name(&value)
                ),
            )],
        });
    };
    let mut problems = Vec::new();
    let root_path = FieldPath::root();

    for key in root.keys().filter(|k| !ROOT_FIELDS.contains(&k.as_str())) {
        problems.push(Problem::new(
            root_path.key(key),
            "is not an entity field; an entity has only apiVersion, kind, metadata, spec, relations and status at its root, so move it under metadata or spec",
        ));
    }

    let api_version = required_str(
        root,
        &root_path,
        "apiVersion",
        "write the apiVersion, for example backstage.io/v1alpha1",
        rules::api_version,
        &mut problems,
    );
    let kind = required_str(
        root,
        &root_path,
        "kind",
        "write the kind, for example Component",
        rules::kind,
        &mut problems,
    );

    let metadata_path = root_path.key("metadata");
    match root.get("metadata") {
        Some(Value::Object(m)) => check_metadata(m, &metadata_path, &mut problems),
        Some(other) => problems.push(wrong_type(
            metadata_path,
            "a mapping with at least a name",
            other,
        )),
        None => problems.push(Problem::new(
            metadata_path,
            "is required; add metadata with at least a name",
        )),
    }

    let spec = match root.get("spec") {
        Some(Value::Object(s)) => Some(s),
        Some(other) => {
            problems.push(wrong_type(root_path.key("spec"), "a mapping", other));
            None
        }
        None => None,
    };
    check_authored_relations(
        root.get("relations"),
        &root_path.key("relations"),
        &mut problems,
    );
    if let Some(status) = root.get("status")
        && !status.is_object()
    {
        problems.push(wrong_type(root_path.key("status"), "a mapping", status));
    }

    let metadata = root.get("metadata").and_then(Value::as_object);
    let name = metadata.and_then(|m| m.get("name")).and_then(Value::as_str);
    let namespace = metadata
        .and_then(|m| m.get("namespace"))
        .map_or(Some(DEFAULT_NAMESPACE), Value::as_str);
    let label = format!(
        "{}:{}/{}",
        kind.map_or("?".into(), str::to_lowercase),
        namespace.map_or("?".into(), str::to_lowercase),
        name.map_or("?".into(), str::to_lowercase),
    );

    let mut kind_def = None;
    if let (Some(kind), Some(api_version)) = (kind, api_version) {
        match kinds.find(kind, api_version) {
            KindMatch::Builtin(def) => {
                kind_def = Some(def);
                check_spec(def.noun, def.fields, spec, &mut problems);
                if let (Some(spec), Some(extra)) = (spec, def.extra) {
                    extra(spec, &root_path.key("spec"), &mut problems);
                }
                // Stand-ins for a broken name or namespace, so that
                // reference problems are still reported.
                let self_ref = EntityRef::new(
                    kind,
                    namespace.unwrap_or(DEFAULT_NAMESPACE),
                    name.unwrap_or("?"),
                );
                problems.extend(relations::derive(&self_ref, spec, def).1);
            }
            KindMatch::WrongApiVersion(versions) => problems.push(Problem::new(
                root_path.key("apiVersion"),
                format!(
                    "\"{api_version}\" is not an apiVersion of kind {kind}; use {}",
                    or_list(&versions)
                ),
            )),
            KindMatch::Declared => {}
            KindMatch::Unknown => problems.push(unknown_kind(kind, kinds, &root_path)),
        }
    }

    if !problems.is_empty() {
        return Err(Invalid { label, problems });
    }
    let (Some(kind), Some(name), Some(namespace)) = (kind, name, namespace) else {
        unreachable!("a valid entity has a kind, name and namespace");
    };
    let entity_ref = EntityRef::new(kind, namespace, name);
    let mut value = value;
    if let Some(m) = value.get_mut("metadata").and_then(Value::as_object_mut)
        && !m.contains_key("namespace")
    {
        m.insert("namespace".into(), Value::from(DEFAULT_NAMESPACE));
    }
    Ok(Entity::new(entity_ref, kind_def, value))
}

fn unknown_kind(kind: &str, kinds: &Kinds, root: &FieldPath) -> Problem {
    let message = match kinds.case_insensitive_match(kind) {
        Some(known) => {
            format!("\"{kind}\" is not a known kind; kinds are case-sensitive, write {known}")
        }
        None => {
            let mut builtin: Vec<&str> = BUILTIN_KINDS.iter().map(|d| d.kind).collect();
            builtin.dedup();
            format!(
                "\"{kind}\" is not a known kind (known: {}); to accept it, declare it as a custom kind (catalog.kinds in plinth.toml, or --kind {kind}), and only its envelope will be checked",
                builtin.join(", ")
            )
        }
    };
    Problem::new(root.key("kind"), message)
}

/// A required string at `key`, checked by `rule`. Returns it when it is a
/// string, valid or not, so later stages can still name the entity.
fn required_str<'a>(
    map: &'a Map<String, Value>,
    at: &FieldPath,
    key: &str,
    hint: &str,
    rule: fn(&str) -> RuleResult,
    problems: &mut Vec<Problem>,
) -> Option<&'a str> {
    let path = at.key(key);
    match map.get(key) {
        Some(Value::String(s)) => {
            if let Err(reason) = rule(s) {
                problems.push(Problem::new(path, format!("\"{s}\" {reason}")));
            }
            Some(s)
        }
        Some(other) => {
            problems.push(wrong_type(path, "a string", other));
            None
        }
        None => {
            problems.push(Problem::new(path, format!("is required; {hint}")));
            None
        }
    }
}

/// An optional string at `key`, checked by `rule`.
fn optional_str(
    map: &Map<String, Value>,
    at: &FieldPath,
    key: &str,
    rule: fn(&str) -> RuleResult,
    problems: &mut Vec<Problem>,
) {
    match map.get(key) {
        None => {}
        Some(Value::String(s)) => {
            if let Err(reason) = rule(s) {
                problems.push(Problem::new(at.key(key), format!("\"{s}\" {reason}")));
            }
        }
        Some(other) => problems.push(wrong_type(at.key(key), "a string", other)),
    }
}

fn non_empty(s: &str) -> RuleResult {
    if s.is_empty() {
        Err("must not be empty".into())
    } else {
        Ok(())
    }
}

fn any_string(_: &str) -> RuleResult {
    Ok(())
}

fn check_metadata(m: &Map<String, Value>, at: &FieldPath, problems: &mut Vec<Problem>) {
    required_str(
        m,
        at,
        "name",
        "add a name: 1 to 63 letters, digits and - _ . separators",
        rules::object_name,
        problems,
    );
    optional_str(m, at, "namespace", rules::dns_label, problems);
    optional_str(m, at, "title", any_string, problems);
    optional_str(m, at, "description", any_string, problems);
    optional_str(m, at, "uid", non_empty, problems);
    optional_str(m, at, "etag", non_empty, problems);
    if let Some(g) = m.get("generation")
        && g.as_u64().is_none_or(|g| g < 1)
    {
        problems.push(wrong_type(
            at.key("generation"),
            "a whole number of at least 1",
            g,
        ));
    }

    for (field, value_rule) in [
        ("labels", rules::label_value as fn(&str) -> RuleResult),
        ("annotations", any_string),
    ] {
        let path = at.key(field);
        match m.get(field) {
            None => {}
            Some(Value::Object(entries)) => {
                for (k, v) in entries {
                    let entry = path.key(k);
                    if let Err(reason) = rules::label_key(k) {
                        problems.push(Problem::new(
                            entry.clone(),
                            format!("the key \"{k}\" {reason}"),
                        ));
                    }
                    match v {
                        Value::String(s) => {
                            if let Err(reason) = value_rule(s) {
                                problems.push(Problem::new(
                                    entry,
                                    format!("the value \"{s}\" {reason}"),
                                ));
                            }
                        }
                        other => problems.push(wrong_type(entry, "a string (quote it)", other)),
                    }
                }
            }
            Some(other) => problems.push(wrong_type(path, "a mapping of strings", other)),
        }
    }

    let tags_path = at.key("tags");
    match m.get("tags") {
        None => {}
        Some(Value::Array(tags)) => {
            for (i, t) in tags.iter().enumerate() {
                match t {
                    Value::String(s) => {
                        if let Err(reason) = rules::tag(s) {
                            problems.push(Problem::new(
                                tags_path.index(i),
                                format!("\"{s}\" {reason}"),
                            ));
                        }
                    }
                    other => problems.push(wrong_type(tags_path.index(i), "a string", other)),
                }
            }
        }
        Some(other) => problems.push(wrong_type(tags_path, "a list of tags", other)),
    }

    let links_path = at.key("links");
    match m.get("links") {
        None => {}
        Some(Value::Array(links)) => {
            for (i, link) in links.iter().enumerate() {
                let lp = links_path.index(i);
                match link {
                    Value::Object(l) => {
                        required_str(l, &lp, "url", "add the link's url", rules::url, problems);
                        optional_str(l, &lp, "title", rules::non_blank, problems);
                        optional_str(l, &lp, "icon", rules::object_name, problems);
                        optional_str(l, &lp, "type", non_empty, problems);
                    }
                    other => problems.push(wrong_type(
                        lp,
                        "a mapping with url and optional title, icon and type",
                        other,
                    )),
                }
            }
        }
        Some(other) => problems.push(wrong_type(links_path, "a list of links", other)),
    }
}

/// `relations` is written by the catalog, but Backstage's schema accepts it
/// in files when it has the right shape.
fn check_authored_relations(value: Option<&Value>, at: &FieldPath, problems: &mut Vec<Problem>) {
    let Some(value) = value else { return };
    let Value::Array(items) = value else {
        problems.push(wrong_type(
            at.clone(),
            "a list (it is computed by the catalog; remove it)",
            value,
        ));
        return;
    };
    for (i, item) in items.iter().enumerate() {
        let p = at.index(i);
        let Value::Object(r) = item else {
            problems.push(wrong_type(p, "a mapping with type and targetRef", item));
            continue;
        };
        match r.get("type") {
            Some(Value::String(t))
                if !t.is_empty() && t.chars().all(|c| c.is_alphanumeric() || c == '_') => {}
            Some(Value::String(t)) => problems.push(Problem::new(
                p.key("type"),
                format!("\"{t}\" must be a word of letters, digits and _"),
            )),
            Some(other) => problems.push(wrong_type(p.key("type"), "a string", other)),
            None => problems.push(Problem::new(p.key("type"), "is required")),
        }
        if !r.get("targetRef").is_some_and(Value::is_string)
            && !r.get("target").is_some_and(Value::is_object)
        {
            problems.push(Problem::new(p, "needs a targetRef string; relations are computed by the catalog, so you can remove them"));
        }
    }
}

fn check_spec(
    noun: &str,
    fields: &[Field],
    spec: Option<&Map<String, Value>>,
    problems: &mut Vec<Problem>,
) {
    let at = FieldPath::root().key("spec");
    let Some(spec) = spec else {
        let required: Vec<&str> = fields
            .iter()
            .filter(|f| f.required)
            .map(|f| f.name)
            .collect();
        let message = if required.is_empty() {
            format!("is required for a {noun}; add spec: {{}} at least")
        } else {
            format!(
                "is required for a {noun}; add spec with {}",
                and_list(&required)
            )
        };
        // An existing non-mapping spec was reported already.
        if !problems.iter().any(|p| p.path == at) {
            problems.push(Problem::new(at, message));
        }
        return;
    };
    check_fields(fields, spec, &at, problems);
}

fn check_fields(
    fields: &[Field],
    map: &Map<String, Value>,
    at: &FieldPath,
    problems: &mut Vec<Problem>,
) {
    for field in fields {
        let path = at.key(field.name);
        match map.get(field.name) {
            Some(v) => check_field_type(v, field, &path, problems),
            None if field.required => {
                problems.push(Problem::new(
                    path,
                    format!("is required; add {}", field.about),
                ));
            }
            None => {}
        }
    }
}

pub(crate) fn check_field_type(
    value: &Value,
    field: &Field,
    at: &FieldPath,
    problems: &mut Vec<Problem>,
) {
    let string_item = |v: &Value, p: FieldPath, problems: &mut Vec<Problem>| match v {
        Value::String(s) if s.is_empty() => problems.push(Problem::new(p, "must not be empty")),
        Value::String(_) => {}
        other => problems.push(wrong_type(p, "a string", other)),
    };
    match (&field.ty, value) {
        (FieldType::Str, Value::String(s)) if s.is_empty() => {
            problems.push(Problem::new(
                at.clone(),
                format!("must not be empty; write {}", field.about),
            ));
        }
        (FieldType::Str, Value::String(_)) => {}
        (FieldType::Str, other) => problems.push(wrong_type(at.clone(), "a string", other)),
        (FieldType::StrList, Value::Array(items)) => {
            for (i, v) in items.iter().enumerate() {
                string_item(v, at.index(i), problems);
            }
        }
        (FieldType::StrList, other) => {
            problems.push(wrong_type(at.clone(), "a list of strings", other))
        }
        (FieldType::Object(fields), Value::Object(m)) => check_fields(fields, m, at, problems),
        (FieldType::Object(_), other) => problems.push(wrong_type(at.clone(), "a mapping", other)),
        (FieldType::ObjectList(fields, min), Value::Array(items)) => {
            if items.len() < *min {
                problems.push(Problem::new(
                    at.clone(),
                    format!("must list at least {min} item(s)"),
                ));
            }
            for (i, v) in items.iter().enumerate() {
                match v {
                    Value::Object(m) => check_fields(fields, m, &at.index(i), problems),
                    other => problems.push(wrong_type(at.index(i), "a mapping", other)),
                }
            }
        }
        (FieldType::ObjectList(..), other) => {
            problems.push(wrong_type(at.clone(), "a list of mappings", other))
        }
    }
}

fn wrong_type(path: FieldPath, expected: &str, found: &Value) -> Problem {
    let message = match found {
        Value::Null => format!("has no value; write {expected} here, or remove the key"),
        other => format!("must be {expected}, not {}", type_name(other)),
    };
    Problem::new(path, message)
}

/// How a JSON value's type reads in a message.
pub fn type_name(value: &Value) -> String {
    match value {
        Value::Null => "empty (null)".into(),
        Value::Bool(b) => format!("the boolean {b}"),
        Value::Number(n) => format!("the number {n}"),
        Value::String(_) => "a string".into(),
        Value::Array(_) => "a list".into(),
        Value::Object(_) => "a mapping".into(),
    }
}

fn and_list(items: &[&str]) -> String {
    join_with(items, "and")
}

fn or_list(items: &[&str]) -> String {
    join_with(items, "or")
}

fn join_with(items: &[&str], word: &str) -> String {
    match items {
        [] => String::new(),
        [one] => (*one).to_owned(),
        [rest @ .., last] => format!("{} {word} {last}", rest.join(", ")),
    }
}

#[cfg(test)]
mod tests;
