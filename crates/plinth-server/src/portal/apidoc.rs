//! API definitions (`spec.definition` of API entities) made readable:
//! OpenAPI operations with their parameters, AsyncAPI channels with their
//! operations and messages, anything else as its text. A definition that
//! does not parse is shown as text with the reason, never hidden.

use plinth_yaml::{Limits, parse_documents};
use serde_json::{Map, Value, json};

use super::text as text_of;

/// The view of a definition, for the entity page's template: `format` is
/// `openapi`, `asyncapi` or `text`.
pub fn view(api_type: &str, definition: &str) -> Value {
    let parsed = || -> Result<Value, String> {
        let docs = parse_documents(definition, &Limits::default());
        match docs.into_iter().next() {
            Some(Ok(doc)) if doc.value.is_object() => Ok(doc.value),
            Some(Ok(_)) | None => Err("the definition is not a YAML or JSON mapping".into()),
            Some(Err(e)) => Err(format!("line {}: {}", e.pos, e.message)),
        }
    };
    let text =
        |problem: Option<String>| json!({"format": "text", "text": definition, "problem": problem});
    match api_type.to_ascii_lowercase().as_str() {
        "openapi" => match parsed() {
            Ok(doc) => openapi(&doc),
            Err(p) => text(Some(format!("Could not read this OpenAPI definition: {p}"))),
        },
        "asyncapi" => match parsed() {
            Ok(doc) => asyncapi(&doc),
            Err(p) => text(Some(format!(
                "Could not read this AsyncAPI definition: {p}"
            ))),
        },
        _ => text(None),
    }
}

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

fn openapi(doc: &Value) -> Value {
    let mut operations = Vec::new();
    for (path, item) in doc["paths"].as_object().into_iter().flatten() {
        let item = resolve(doc, item);
        let shared: Vec<Value> = params(doc, &item["parameters"]);
        for method in METHODS {
            let Some(op) = item.get(method) else { continue };
            let op = resolve(doc, op);
            // Operation parameters override path-level ones of the same name and place.
            let own = params(doc, &op["parameters"]);
            let mut all: Vec<Value> = shared
                .iter()
                .filter(|p| {
                    !own.iter()
                        .any(|o| o["name"] == p["name"] && o["in"] == p["in"])
                })
                .cloned()
                .collect();
            all.extend(own);
            let responses: Vec<Value> = op["responses"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(code, r)| {
                    let r = resolve(doc, r);
                    json!({"code": code, "description": text_of(&r["description"])})
                })
                .collect();
            let body = resolve(doc, &op["requestBody"]);
            let body_types: Vec<&str> = body["content"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(t, _)| t.as_str())
                .collect();
            operations.push(json!({
                "method": method.to_uppercase(),
                "path": path,
                "id": text_of(&op["operationId"]),
                "summary": text_of(&op["summary"]),
                "description": text_of(&op["description"]),
                "deprecated": op["deprecated"] == true,
                "parameters": all,
                "body": if body.is_null() { Value::Null } else {
                    json!({"required": body["required"] == true, "types": body_types})
                },
                "responses": responses,
            }));
        }
    }
    let servers: Vec<String> = doc["servers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["url"].as_str().map(str::to_owned))
        .collect();
    json!({
        "format": "openapi",
        "title": text_of(&doc["info"]["title"]),
        "version": text_of(&doc["info"]["version"]),
        "description": text_of(&doc["info"]["description"]),
        "spec_version": text_of(doc.get("openapi").or(doc.get("swagger")).unwrap_or(&Value::Null)),
        "servers": servers,
        "operations": operations,
    })
}

fn params(doc: &Value, list: &Value) -> Vec<Value> {
    list.as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            let p = resolve(doc, p);
            let schema = resolve(doc, &p["schema"]);
            let ty = match (schema["type"].as_str(), schema["format"].as_str()) {
                (Some(t), Some(f)) => format!("{t} ({f})"),
                (Some(t), None) => t.to_owned(),
                (None, _) => text_of(&p["type"]),
            };
            json!({
                "name": text_of(&p["name"]),
                "in": text_of(&p["in"]),
                "required": p["required"] == true,
                "type": ty,
                "description": text_of(&p["description"]),
            })
        })
        .collect()
}

fn asyncapi(doc: &Value) -> Value {
    let v3 = doc["asyncapi"].as_str().is_some_and(|v| v.starts_with('3'));
    let mut channels: Vec<Value> = Vec::new();
    let empty = Map::new();
    let declared = doc["channels"].as_object().unwrap_or(&empty);
    for (name, ch) in declared {
        let ch = resolve(doc, ch);
        let mut ops = Vec::new();
        if !v3 {
            for action in ["publish", "subscribe"] {
                if let Some(op) = ch.get(action) {
                    ops.push(json!({
                        "action": action,
                        "id": text_of(&op["operationId"]),
                        "summary": text_of(&op["summary"]),
                        "messages": messages(doc, &op["message"]),
                    }));
                }
            }
        }
        channels.push(json!({
            "name": name,
            "address": text_of(ch.get("address").unwrap_or(&Value::Null)),
            "description": text_of(&ch["description"]),
            "operations": ops,
            "messages": if v3 { messages(doc, &ch["messages"]) } else { Vec::new() },
        }));
    }
    if v3 {
        // Operations point at their channel with a `$ref`.
        for (id, op) in doc["operations"].as_object().into_iter().flatten() {
            let channel = op["channel"]["$ref"]
                .as_str()
                .and_then(|r| r.strip_prefix("#/channels/"))
                .map(unescape_pointer);
            let Some(c) = channels
                .iter_mut()
                .find(|c| Some(c["name"].as_str().unwrap_or_default()) == channel.as_deref())
            else {
                continue;
            };
            if let Some(ops) = c["operations"].as_array_mut() {
                ops.push(json!({
                    "action": text_of(&op["action"]),
                    "id": id,
                    "summary": text_of(&op["summary"]),
                    "messages": Vec::<Value>::new(),
                }));
            }
        }
    }
    json!({
        "format": "asyncapi",
        "title": text_of(&doc["info"]["title"]),
        "version": text_of(&doc["info"]["version"]),
        "description": text_of(&doc["info"]["description"]),
        "spec_version": text_of(&doc["asyncapi"]),
        "channels": channels,
    })
}

/// Message names: one message, `oneOf` a list, or (v3) a map of them.
fn messages(doc: &Value, m: &Value) -> Vec<Value> {
    let one = |m: &Value| -> Value {
        let name = m["$ref"]
            .as_str()
            .and_then(|r| r.rsplit('/').next())
            .map(unescape_pointer);
        let m = resolve(doc, m);
        let name = name
            .or_else(|| m["name"].as_str().map(str::to_owned))
            .unwrap_or_else(|| "message".into());
        json!({"name": name, "summary": text_of(m.get("summary").or(m.get("title")).unwrap_or(&Value::Null))})
    };
    match m {
        Value::Null => Vec::new(),
        Value::Object(o) if o.contains_key("oneOf") => o["oneOf"]
            .as_array()
            .into_iter()
            .flatten()
            .map(one)
            .collect(),
        Value::Object(o)
            if !o.contains_key("$ref")
                && !o.contains_key("payload")
                && o.values().all(Value::is_object) =>
        {
            // Named messages (v3): the names are the keys.
            o.iter()
                .map(|(name, m)| {
                    let mut v = one(m);
                    if m.get("$ref").is_none() {
                        v["name"] = name.as_str().into();
                    }
                    v
                })
                .collect()
        }
        other => vec![one(other)],
    }
}

/// Follows local `$ref`s (`#/components/...`), a few steps at most (cycles).
fn resolve(doc: &Value, v: &Value) -> Value {
    let mut v = v.clone();
    for _ in 0..8 {
        let Some(pointer) = v
            .get("$ref")
            .and_then(Value::as_str)
            .and_then(|r| r.strip_prefix('#'))
        else {
            break;
        };
        match doc.pointer(pointer) {
            Some(target) => v = target.clone(),
            None => break,
        }
    }
    v
}

fn unescape_pointer(s: &str) -> String {
    s.replace("~1", "/").replace("~0", "~")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openapi_operations_with_shared_and_referenced_parameters() {
        let def = r##"
openapi: 3.1.0
info: {title: Pets, version: "2"}
paths:
  /pets/{id}:
    parameters:
      - {name: id, in: path, required: true, schema: {type: string}}
      - {name: trace, in: header, schema: {type: string}}
    get:
      operationId: getPet
      summary: One pet
      parameters:
        - $ref: "#/components/parameters/Trace"
      responses:
        "200": {description: The pet}
        "404": {$ref: "#/components/responses/NotFound"}
    delete:
      deprecated: true
      requestBody: {required: true, content: {application/json: {}}}
      responses: {"204": {description: Gone}}
components:
  parameters:
    Trace: {name: trace, in: header, description: Trace id, schema: {type: string, format: uuid}}
  responses:
    NotFound: {description: No such pet}
"##;
        let v = view("openapi", def);
        assert_eq!(v["format"], "openapi");
        assert_eq!(v["title"], "Pets");
        let ops = v["operations"].as_array().unwrap();
        assert_eq!(ops.len(), 2);
        assert_eq!(
            (ops[0]["method"].as_str(), ops[0]["path"].as_str()),
            (Some("GET"), Some("/pets/{id}"))
        );
        let params: Vec<(&str, &str)> = ops[0]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (p["name"].as_str().unwrap(), p["type"].as_str().unwrap()))
            .collect();
        // The operation's own trace parameter replaces the path's.
        assert_eq!(params, [("id", "string"), ("trace", "string (uuid)")]);
        assert_eq!(ops[0]["responses"][1]["description"], "No such pet");
        assert_eq!(ops[1]["deprecated"], true);
        assert_eq!(
            ops[1]["body"]["types"],
            serde_json::json!(["application/json"])
        );
    }

    #[test]
    fn asyncapi_channels_in_both_versions() {
        let v2 = view(
            "asyncapi",
            "asyncapi: 2.6.0\ninfo: {title: E, version: '1'}\nchannels:\n  orders.placed:\n    subscribe:\n      operationId: onPlaced\n      message: {$ref: '#/components/messages/Placed'}\ncomponents:\n  messages:\n    Placed: {summary: An order was placed}\n",
        );
        let ch = &v2["channels"][0];
        assert_eq!(ch["name"], "orders.placed");
        assert_eq!(ch["operations"][0]["action"], "subscribe");
        assert_eq!(ch["operations"][0]["messages"][0]["name"], "Placed");
        assert_eq!(
            ch["operations"][0]["messages"][0]["summary"],
            "An order was placed"
        );

        let v3 = view(
            "AsyncAPI",
            "asyncapi: 3.0.0\ninfo: {title: E, version: '1'}\nchannels:\n  placed:\n    address: orders/placed\n    messages:\n      Placed: {summary: Placed}\noperations:\n  sendPlaced:\n    action: send\n    channel: {$ref: '#/channels/placed'}\n",
        );
        let ch = &v3["channels"][0];
        assert_eq!(ch["address"], "orders/placed");
        assert_eq!(ch["messages"][0]["name"], "Placed");
        assert_eq!(ch["operations"][0]["action"], "send");
        assert_eq!(ch["operations"][0]["id"], "sendPlaced");
    }

    #[test]
    fn other_types_and_broken_definitions_are_shown_as_text() {
        let g = view("graphql", "type Query { a: Int }");
        assert_eq!(
            (g["format"].as_str(), g["problem"].is_null()),
            (Some("text"), true)
        );
        let broken = view("openapi", "openapi: [unclosed");
        assert_eq!(broken["format"], "text");
        assert_eq!(broken["text"], "openapi: [unclosed");
        let problem = broken["problem"].as_str().unwrap();
        assert!(
            problem
                .starts_with("Could not read this OpenAPI definition: line 2:1: YAML syntax error"),
            "{problem}"
        );
    }
}
