//! Compatibility measured, not assumed: Backstage's own catalog backend
//! (from npm, on PostgreSQL) and `plinth serve` read the same catalog files
//! and answer the same calls; every answer must be equal, except the
//! differences docs/COMPATIBILITY.md lists, each checked here for exactly
//! the difference it claims.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::{Value, json};

mod common;
use common::{Scratch, Server, copy_dir, free_port, npm_package, unavailable};

const FILES: [&str; 5] = [
    "package.json",
    "package-lock.json",
    "backend.js",
    "compare.js",
    "dropdb.js",
];

/// Backstage's backend; killed and its database dropped on drop.
struct Backstage {
    child: Child,
    dir: PathBuf,
    database: String,
}

impl Drop for Backstage {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = Command::new("node")
            .args(["dropdb.js", &self.database])
            .current_dir(&self.dir)
            .status();
    }
}

#[test]
fn backstage_and_plinth_answer_alike() {
    if Command::new("node").arg("--version").output().is_err() {
        return unavailable("node and npm (Debian: apt-get install nodejs npm)");
    }
    if std::net::TcpStream::connect("127.0.0.1:5432").is_err() {
        return unavailable("PostgreSQL on 127.0.0.1:5432 (Backstage's catalog database)");
    }
    let Some(dir) = npm_package(
        "backstage_compat",
        &FILES,
        "@backstage/plugin-catalog-backend/package.json",
    ) else {
        return unavailable("npm ci of @backstage/plugin-catalog-backend (no registry?)");
    };

    // Both read the same copy of the examples, so paths in annotations agree.
    let scratch = Scratch::new("backstage-compat-run");
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples"),
        &scratch.0.join("catalog"),
    );
    let root = scratch.0.join("catalog/catalog-info.yaml");
    let prefix = format!("plinth_compat_{}_", std::process::id());
    let port = free_port();
    let config = scratch.0.join("app-config.yaml");
    std::fs::write(
        &config,
        format!(
            "backend:
  baseUrl: http://127.0.0.1:{port}
  listen: {{host: 127.0.0.1, port: {port}}}
  database:
    client: pg
    prefix: {prefix}
    connection: {{host: 127.0.0.1, port: 5432, user: postgres}}
  auth:
    dangerouslyDisableDefaultAuthPolicy: true
catalog:
  rules:
    - allow: [Component, API, Resource, System, Domain, Group, User, Location]
  locations:
    - type: file
      target: {}
",
            root.display()
        ),
    )
    .unwrap();
    let log = std::fs::File::create(scratch.0.join("backstage.log")).unwrap();
    let backstage = Backstage {
        child: Command::new("node")
            .arg("backend.js")
            .arg("--config")
            .arg(&config)
            .current_dir(&dir)
            .stdout(log.try_clone().unwrap())
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap(),
        dir: dir.clone(),
        database: format!("{prefix}catalog"),
    };
    let plinth = Server::start(
        &scratch.0,
        &scratch.0.join("data"),
        &["--catalog", &root.display().to_string()],
    );
    let plinth_base = plinth.base_url();

    let out = Command::new("node")
        .arg("compare.js")
        .arg(format!("http://127.0.0.1:{port}/api/catalog"))
        .arg(&plinth_base)
        .current_dir(&dir)
        .output()
        .unwrap();
    drop(plinth);
    drop(backstage);
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(scratch.0.join("backstage.log")).unwrap_or_default()
    );
    let calls: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let mut checked = Vec::new();
    for call in &calls {
        let name = call["name"].as_str().unwrap();
        let (mut b, mut p) = (call["backstage"].clone(), call["plinth"].clone());
        match name {
            // Observed: Backstage answers checkout-service's spec.dependsOn
            // in another order than the file's; plinth keeps the file's.
            "by-name" | "by-name, any case" => {
                assert_eq!(
                    p["body"]["spec"]["dependsOn"],
                    json!(["resource:orders-db", "resource:order-events-stream"]),
                    "plinth keeps the order written"
                );
                sort_depends_on(&mut b);
                sort_depends_on(&mut p);
                assert_eq!(b, p, "{name}");
            }
            // Cursors are opaque to clients; the pages must agree.
            "by-query, first page" => {
                for side in [&mut b, &mut p] {
                    assert!(side["body"]["pageInfo"]["nextCursor"].is_string());
                    side["body"]["pageInfo"] = Value::Null;
                }
                assert_eq!(b, p, "{name}");
            }
            // Backstage searches metadata.uid when neither fields nor an
            // order are given, which finds nothing; plinth searches names,
            // titles and display names.
            "by-query, full text without fields or order" => {
                assert_eq!(b["body"]["totalItems"], 0, "{b}");
                assert_eq!(p["body"]["totalItems"], 4, "{p}");
            }
            // Same status and error name; plinth's message says what to do.
            "by-query, bad cursor" | "validate, invalid" => {
                assert_eq!(b["status"], 400);
                assert_eq!(p["status"], 400);
                let name_of = |v: &Value| {
                    v["body"]["error"]["name"]
                        .as_str()
                        .or(v["body"]["errors"][0]["name"].as_str())
                        .map(str::to_owned)
                };
                assert_eq!(name_of(&b), Some("InputError".into()), "{b}");
                assert_eq!(name_of(&p), Some("InputError".into()), "{p}");
            }
            // Backstage matches references in by-refs as written (a mixed
            // case reference finds nothing); plinth is case-insensitive, as
            // everywhere else.
            "by-refs" => {
                assert_eq!(b["body"]["items"][2], Value::Null);
                assert_eq!(p["body"]["items"][2]["metadata"]["name"], "keel");
                b["body"]["items"][2] = Value::Null;
                p["body"]["items"][2] = Value::Null;
                assert_eq!(b, p, "{name}");
            }
            // Backstage generates a Location entity for each registration.
            "facets, kind" => {
                let location = |v: &Value| {
                    v["body"]["facets"]["kind"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .find(|f| f["value"] == "Location")
                        .map(|f| f["count"].as_u64().unwrap())
                };
                assert_eq!(location(&b), location(&p).map(|n| n + 1));
                for side in [&mut b, &mut p] {
                    let facets = side["body"]["facets"]["kind"].as_array_mut().unwrap();
                    facets.retain(|f| f["value"] != "Location");
                }
                assert_eq!(b, p, "{name}");
            }
            // The same chain, which in Backstage ends at the generated
            // Location entity of the registration.
            "ancestry" => {
                let items = b["body"]["items"].as_array_mut().unwrap();
                let generated = items.pop().unwrap();
                assert!(
                    generated["entity"]["metadata"]["name"]
                        .as_str()
                        .unwrap()
                        .starts_with("generated-")
                );
                items.last_mut().unwrap()["parentEntityRefs"] = json!([]);
                sort_depends_on(&mut b);
                sort_depends_on(&mut p);
                assert_eq!(b, p, "{name}");
            }
            _ => assert_eq!(b, p, "{name}"),
        }
        checked.push(name.to_owned());
    }
    assert_eq!(checked.len(), 25, "every call was compared: {checked:?}");
}

/// Every `spec.dependsOn` in an answer, sorted (see the by-name case).
fn sort_depends_on(v: &mut Value) {
    match v {
        Value::Object(map) => {
            if let Some(Value::Array(list)) = map.get_mut("dependsOn") {
                list.sort_by_key(|x| x.as_str().unwrap_or_default().to_owned());
            }
            map.values_mut().for_each(sort_depends_on);
        }
        Value::Array(items) => items.iter_mut().for_each(sort_depends_on),
        _ => {}
    }
}
