//! Client commands against a running plinth: `catalog get | list | register | refresh`.

use std::process::ExitCode;

use anyhow::{Context, bail};
use plinth_model::{EntityRef, RefDefaults};
use serde_json::{Value, json};

use crate::cli::{CatalogCommand, ClientArgs, Output};

pub fn run(command: CatalogCommand) -> anyhow::Result<ExitCode> {
    match command {
        CatalogCommand::Get { entity_ref, client } => get(&entity_ref, &client),
        CatalogCommand::List {
            filters,
            limit,
            client,
        } => list(&filters, limit, &client),
        CatalogCommand::Search {
            words,
            limit,
            client,
        } => search(&words.join(" "), limit, &client),
        CatalogCommand::Register {
            target,
            kind,
            client,
        } => register(&target, kind.as_deref(), &client),
        CatalogCommand::Refresh {
            entity_ref,
            all,
            client,
        } => refresh(entity_ref.as_deref(), all, &client),
        CatalogCommand::Validate(_) => unreachable!("validate runs locally"),
    }
}

/// What the server answered: a status and a JSON body.
struct Answer {
    status: u16,
    body: Value,
}

struct Client {
    base: String,
    agent: ureq::Agent,
    /// `Bearer <token>`, when one is given.
    authorization: Option<String>,
}

impl Client {
    fn new(args: &ClientArgs) -> Client {
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(std::time::Duration::from_secs(300)))
            .build();
        Client {
            base: args.server.server.trim_end_matches('/').to_owned(),
            agent: config.into(),
            authorization: args
                .server
                .token
                .clone()
                .or_else(|| super::login::kept_token(&args.server.server))
                .map(|t| format!("Bearer {}", t.trim())),
        }
    }

    /// The largest answer read, in bytes.
    const ANSWER_LIMIT: u64 = 4 << 30;

    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> anyhow::Result<Answer> {
        let (status, text) = self.call_text(method, path, body)?;
        Ok(Answer::parse(status, text))
    }

    /// [`Client::call`], the body as text.
    fn call_text(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<(u16, String)> {
        let url = format!("{}{path}", self.base);
        let auth = self.authorization.as_deref();
        let result = match (method, body) {
            ("GET", _) => {
                let mut request = self.agent.get(&url);
                if let Some(auth) = auth {
                    request = request.header("authorization", auth);
                }
                request.call()
            }
            ("POST", Some(b)) => {
                let mut request = self
                    .agent
                    .post(&url)
                    .header("content-type", "application/json");
                if let Some(auth) = auth {
                    request = request.header("authorization", auth);
                }
                request.send(b.to_string().as_bytes())
            }
            _ => bail!("unsupported request {method} {path}"),
        };
        let mut response = result.map_err(|e| {
            anyhow::anyhow!(
                "cannot reach plinth at {}: {e}; start it with `plinth serve`, or point --server (PLINTH_SERVER) at it",
                self.base
            )
        })?;
        let status = response.status().as_u16();
        // Registering a large location answers with all its entities
        // (Backstage's shape): 98 MB for 100,000, over ureq's default 10 MB.
        let text = response
            .body_mut()
            .with_config()
            .limit(Self::ANSWER_LIMIT)
            .read_to_string()
            .context("reading the answer")?;
        Ok((status, text))
    }
}

impl Answer {
    fn parse(status: u16, text: String) -> Answer {
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Answer { status, body }
    }
}

/// Who `server` takes the holder of `token` to be (`GET /api/identity`);
/// `None`, with the server's refusal printed, when it does not accept it.
pub(crate) fn identity(server: &str, token: &str) -> anyhow::Result<Option<Value>> {
    let client = Client::new(&ClientArgs {
        server: crate::cli::ServerArgs {
            server: server.to_owned(),
            token: Some(token.to_owned()),
        },
        output: crate::cli::Output::Table,
    });
    let answer = client.call("GET", "/api/identity", None)?;
    if answer.status == 200 {
        Ok(Some(answer.body))
    } else {
        refused(&answer)?;
        Ok(None)
    }
}

/// An API error as one line, exit status 1.
fn refused(answer: &Answer) -> anyhow::Result<ExitCode> {
    let message = answer.body["error"]["message"]
        .as_str()
        .map_or_else(|| answer.body.to_string(), str::to_owned);
    eprintln!("error: {message} (HTTP {})", answer.status);
    Ok(ExitCode::from(1))
}

/// A reference as people type it: the kind defaults to Component and the
/// namespace to default.
fn parse_ref(text: &str) -> anyhow::Result<EntityRef> {
    EntityRef::parse(
        text,
        RefDefaults {
            kind: Some("Component"),
            namespace: "default",
        },
    )
    .map_err(|e| anyhow::anyhow!("{e}"))
}

fn print_json(v: &Value) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

fn get(text: &str, args: &ClientArgs) -> anyhow::Result<ExitCode> {
    let r = parse_ref(text)?;
    let client = Client::new(args);
    let path = format!(
        "/api/catalog/entities/by-name/{}/{}/{}",
        urlencode(r.kind()),
        urlencode(r.namespace()),
        urlencode(r.name())
    );
    let answer = client.call("GET", &path, None)?;
    if answer.status != 200 {
        return refused(&answer);
    }
    let e = &answer.body;
    if args.output == Output::Json {
        print_json(e);
        return Ok(ExitCode::SUCCESS);
    }
    let s = |v: &Value| v.as_str().unwrap_or("").to_owned();
    let mut rows = vec![
        ("Entity", r.to_string()),
        ("Title", s(&e["metadata"]["title"])),
        ("Description", s(&e["metadata"]["description"])),
        ("Type", s(&e["spec"]["type"])),
        ("Lifecycle", s(&e["spec"]["lifecycle"])),
        ("Owner", s(&e["spec"]["owner"])),
        ("System", s(&e["spec"]["system"])),
        (
            "Tags",
            e["metadata"]["tags"]
                .as_array()
                .map(|t| {
                    t.iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_default(),
        ),
    ];
    rows.retain(|(_, v)| !v.is_empty());
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    for (k, v) in &rows {
        println!("{k:width$}  {v}");
    }
    if let Some(relations) = e["relations"].as_array().filter(|r| !r.is_empty()) {
        println!("Relations");
        for rel in relations {
            println!("  {} {}", s(&rel["type"]), s(&rel["targetRef"]));
        }
    }
    if let Some(items) = e["status"]["items"].as_array() {
        println!("Problems");
        for item in items {
            println!("  {}: {}", s(&item["level"]), s(&item["message"]));
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn list(filters: &[String], limit: u64, args: &ClientArgs) -> anyhow::Result<ExitCode> {
    let client = Client::new(args);
    let mut query = format!(
        "/api/catalog/entities/by-query?limit={}&fields=kind,metadata.namespace,metadata.name,metadata.title,spec.type,spec.owner,spec.lifecycle",
        limit.min(500)
    );
    for f in filters {
        query.push_str(&format!("&filter={}", urlencode(f)));
    }
    let mut items: Vec<Value> = Vec::new();
    let mut path = query;
    let total = loop {
        let answer = client.call("GET", &path, None)?;
        if answer.status != 200 {
            return refused(&answer);
        }
        let total = answer.body["totalItems"].as_u64().unwrap_or(0);
        items.extend(answer.body["items"].as_array().cloned().unwrap_or_default());
        match answer.body["pageInfo"]["nextCursor"].as_str() {
            Some(cursor) if (items.len() as u64) < limit => {
                path = format!(
                    "/api/catalog/entities/by-query?cursor={}&limit={}&fields=kind,metadata.namespace,metadata.name,metadata.title,spec.type,spec.owner,spec.lifecycle",
                    urlencode(cursor),
                    (limit - items.len() as u64).min(500)
                );
            }
            _ => break total,
        }
    };
    items.truncate(limit as usize);
    if args.output == Output::Json {
        print_json(&json!({"items": items, "totalItems": total}));
        return Ok(ExitCode::SUCCESS);
    }
    let s = |v: &Value| v.as_str().unwrap_or("-").to_owned();
    let rows: Vec<[String; 4]> = items
        .iter()
        .map(|e| {
            [
                format!(
                    "{}:{}/{}",
                    s(&e["kind"]).to_lowercase(),
                    s(&e["metadata"]["namespace"]),
                    s(&e["metadata"]["name"])
                ),
                s(&e["spec"]["type"]),
                s(&e["spec"]["owner"]),
                s(&e["spec"]["lifecycle"]),
            ]
        })
        .collect();
    print_table(&["ENTITY", "TYPE", "OWNER", "LIFECYCLE"], &rows);
    if total > items.len() as u64 {
        eprintln!(
            "{} of {total} entities; raise --limit to see more",
            items.len()
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn search(term: &str, limit: u64, args: &ClientArgs) -> anyhow::Result<ExitCode> {
    let client = Client::new(args);
    let answer = client.call(
        "GET",
        &format!(
            "/api/search?term={}&limit={}",
            urlencode(term),
            limit.min(100)
        ),
        None,
    )?;
    if answer.status != 200 {
        return refused(&answer);
    }
    if args.output == Output::Json {
        print_json(&answer.body);
        return Ok(ExitCode::SUCCESS);
    }
    let s = |v: &Value| v.as_str().unwrap_or("-").to_owned();
    let rows: Vec<[String; 3]> = answer.body["results"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|h| {
            let e = &h["entity"];
            let title = e["metadata"]["title"]
                .as_str()
                .or(e["metadata"]["description"].as_str())
                .unwrap_or("-");
            [
                s(&h["entityRef"]),
                s(&e["spec"]["owner"]),
                title.chars().take(60).collect(),
            ]
        })
        .collect();
    if rows.is_empty() {
        eprintln!("nothing matches \"{term}\"");
        return Ok(ExitCode::SUCCESS);
    }
    print_table(&["ENTITY", "OWNER", "TITLE"], &rows);
    Ok(ExitCode::SUCCESS)
}

fn register(target: &str, kind: Option<&str>, args: &ClientArgs) -> anyhow::Result<ExitCode> {
    let is_url = target.contains("://");
    let (kind, target) = if is_url {
        (kind.unwrap_or("url").to_owned(), target.to_owned())
    } else {
        let path =
            std::path::absolute(target).with_context(|| format!("cannot resolve {target}"))?;
        let kind = kind.map(str::to_owned).unwrap_or_else(|| {
            if path.is_dir() {
                "dir".into()
            } else {
                "file".into()
            }
        });
        (kind, path.display().to_string())
    };
    let client = Client::new(args);
    let (status, text) = client.call_text(
        "POST",
        "/api/catalog/locations",
        Some(&json!({"type": kind, "target": target})),
    )?;
    if status != 201 || args.output == Output::Json {
        let answer = Answer::parse(status, text);
        if status != 201 {
            return refused(&answer);
        }
        print_json(&answer.body);
        return Ok(ExitCode::SUCCESS);
    }
    let registered: Registered =
        serde_json::from_str(&text).context("reading the registration's answer")?;
    drop(text);
    println!(
        "registered {}:{} as location {} with {} entities",
        kind,
        target,
        registered.location.id,
        registered.entities.len()
    );
    for e in &registered.entities {
        println!(
            "  {}:{}/{}",
            e.kind.to_lowercase(),
            e.metadata.namespace.as_deref().unwrap_or("default"),
            e.metadata.name
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// What the table of a registration shows of its answer: read into these
/// alone, not into a JSON tree of every entity (816 MB for 100,000).
#[derive(serde::Deserialize)]
struct Registered {
    location: RegisteredLocation,
    entities: Vec<Brief>,
}

#[derive(serde::Deserialize)]
struct RegisteredLocation {
    id: String,
}

#[derive(serde::Deserialize)]
struct Brief {
    kind: String,
    metadata: BriefMetadata,
}

#[derive(serde::Deserialize)]
struct BriefMetadata {
    name: String,
    namespace: Option<String>,
}

fn refresh(entity_ref: Option<&str>, all: bool, args: &ClientArgs) -> anyhow::Result<ExitCode> {
    let client = Client::new(args);
    if !all {
        let text = entity_ref.unwrap_or_default();
        let r = parse_ref(text)?;
        let answer = client.call(
            "POST",
            "/api/catalog/refresh",
            Some(&json!({"entityRef": r.to_string()})),
        )?;
        if answer.status != 200 {
            return refused(&answer);
        }
        if args.output == Output::Json {
            print_json(&json!({"refreshed": r.to_string()}));
        } else {
            println!("refreshed {r}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    let locations = client.call("GET", "/api/catalog/locations", None)?;
    if locations.status != 200 {
        return refused(&locations);
    }
    let mut results = Vec::new();
    for l in locations.body.as_array().cloned().unwrap_or_default() {
        let id = l["data"]["id"].as_str().unwrap_or_default();
        let answer = client.call(
            "POST",
            &format!("/api/catalog/locations/{id}/refresh"),
            Some(&json!({})),
        )?;
        if answer.status != 200 {
            return refused(&answer);
        }
        if args.output == Output::Table {
            let s = &answer.body["summary"];
            println!(
                "{}:{}: {} ({} added, {} updated, {} removed, {} unchanged)",
                l["data"]["type"].as_str().unwrap_or("?"),
                l["data"]["target"].as_str().unwrap_or("?"),
                answer.body["status"].as_str().unwrap_or("?"),
                s["added"],
                s["updated"],
                s["removed"],
                s["unchanged"],
            );
        }
        results.push(answer.body);
    }
    if args.output == Output::Json {
        print_json(&Value::Array(results));
    }
    Ok(ExitCode::SUCCESS)
}

fn print_table<const N: usize>(headers: &[&str; N], rows: &[[String; N]]) {
    let mut widths = headers.map(str::len);
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let parts: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:w$}"))
            .collect();
        println!("{}", parts.join("  ").trim_end());
    };
    line(headers.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

/// Percent-encodes everything but unreserved characters, for path segments
/// and query values alike.
fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
