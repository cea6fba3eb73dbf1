//! `plinth export` and `plinth import`: a catalog moves between stores with
//! nothing lost, and a bad export changes nothing.

use std::path::Path;

use plinth_store::Dialect;
use plinth_store::testing::TestDb;

mod common;
use common::{Scratch, Server, plinth};

fn entity_json(cwd: &Path, server: &Server, entity: &str) -> serde_json::Value {
    let base = server.base_url();
    let url = base.trim_end_matches("/api/catalog");
    let run = plinth(
        cwd,
        &[
            "catalog", "get", entity, "--output", "json", "--server", url,
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    serde_json::from_str(&run.stdout).unwrap()
}

#[test]
fn a_catalog_moves_between_stores_whole() {
    let scratch = Scratch::new("transfer");
    let dir = &scratch.0;
    let (a, b) = (dir.join("a"), dir.join("b"));
    let server = Server::start(dir, &a, &["--demo"]);
    let before = entity_json(dir, &server, "component:checkout-service");

    // Exported while the server keeps running: a consistent snapshot.
    let export = plinth(
        dir,
        &[
            "export",
            "--data-dir",
            a.to_str().unwrap(),
            "-o",
            "one.jsonl",
        ],
    );
    assert_eq!(export.code, 0, "{}", export.stderr);
    drop(server);
    let text = std::fs::read_to_string(dir.join("one.jsonl")).unwrap();
    let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(first, serde_json::json!({"header": {"plinth_export": 1}}));
    let entities = text
        .lines()
        .filter(|l| l.starts_with("{\"entity\""))
        .count();
    assert_eq!(entities, 37, "the example organisation");

    let import = plinth(
        dir,
        &["import", "one.jsonl", "--data-dir", b.to_str().unwrap()],
    );
    assert_eq!(import.code, 0, "{}", import.stderr);
    assert!(
        import
            .stderr
            .contains("imported 1 locations, 15 files, 37 entities, 0 conflicts"),
        "{}",
        import.stderr
    );

    // Exported again from the new store: the same, line for line.
    let again = plinth(dir, &["export", "--data-dir", b.to_str().unwrap()]);
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(again.stdout, text);

    // Served from the new store: the same entity, uid, etag and relations.
    let server = Server::start(dir, &b, &[]);
    let after = entity_json(dir, &server, "component:checkout-service");
    assert_eq!(after, before);
    drop(server);

    // Into a store that holds a catalog: refused, nothing changed.
    let twice = plinth(
        dir,
        &["import", "one.jsonl", "--data-dir", b.to_str().unwrap()],
    );
    assert_eq!(twice.code, 1);
    assert!(
        twice.stderr.contains("already holds a catalog"),
        "{}",
        twice.stderr
    );
    assert!(twice.stderr.contains("nothing was imported"));
}

/// From SQLite to PostgreSQL (`--database`) and back: the same lines, and
/// the server on PostgreSQL serves the same entities with the same uids.
#[test]
fn a_catalog_moves_from_sqlite_to_postgres_and_back() {
    let scratch = Scratch::new("transfer-postgres");
    let dir = &scratch.0;
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let Some(db) = runtime.block_on(TestDb::create(Dialect::Postgres, dir)) else {
        return;
    };
    let (a, b, c) = (dir.join("a"), dir.join("b"), dir.join("c"));
    let server = Server::start(dir, &a, &["--demo"]);
    let before = entity_json(dir, &server, "component:checkout-service");
    drop(server);
    let export = plinth(dir, &["export", "--data-dir", a.to_str().unwrap()]);
    assert_eq!(export.code, 0, "{}", export.stderr);
    std::fs::write(dir.join("one.jsonl"), &export.stdout).unwrap();

    let import = plinth(dir, &["import", "one.jsonl", "--database", &db.url]);
    assert_eq!(import.code, 0, "{}", import.stderr);
    assert!(
        import.stderr.contains("37 entities") && import.stderr.contains(&db.url),
        "{}",
        import.stderr
    );
    let from_postgres = plinth(dir, &["export", "--database", &db.url]);
    assert_eq!(from_postgres.code, 0, "{}", from_postgres.stderr);
    assert_eq!(from_postgres.stdout, export.stdout);

    // The data directory keeps only git checkouts; the catalog is in PostgreSQL.
    let server = Server::start(dir, &b, &["--database", &db.url]);
    let after = entity_json(dir, &server, "component:checkout-service");
    assert_eq!(after, before);
    assert!(!b.join("plinth.db").exists());
    drop(server);

    // And back into SQLite.
    std::fs::write(dir.join("two.jsonl"), &from_postgres.stdout).unwrap();
    let back = plinth(
        dir,
        &["import", "two.jsonl", "--data-dir", c.to_str().unwrap()],
    );
    assert_eq!(back.code, 0, "{}", back.stderr);
    let again = plinth(dir, &["export", "--data-dir", c.to_str().unwrap()]);
    assert_eq!(again.stdout, export.stdout);
}

#[test]
fn a_bad_export_is_refused_at_its_line_and_nothing_is_written() {
    let scratch = Scratch::new("transfer-bad");
    let dir = &scratch.0;
    let target = dir.join("c");
    let header = r#"{"header":{"plinth_export":1}}"#;
    let location = r#"{"location":{"id":"l1","type":"file","target":"/x.yaml","created_at":"2026-01-01T00:00:00.000Z","refreshed_at":null,"refresh_status":null,"refresh_message":null}}"#;
    let entity = |name: &str, location: &str| {
        format!(
            r#"{{"entity":{{"uid":"u-{name}","ref":"component:default/{name}","location_id":"{location}","file":"/x.yaml","etag":"e","generation":1,"body":{{"apiVersion":"backstage.io/v1alpha1","kind":"Component","metadata":{{"name":"{name}","namespace":"default"}},"spec":{{"type":"service","lifecycle":"production","owner":"team"}}}},"status":[],"orphan":false,"updated_at":"2026-01-01T00:00:00.000Z","relations":[["component:default/{name}","ownedBy","group:default/team"]]}}}}"#
        )
    };
    let cases: Vec<(String, &str)> = vec![
        (
            format!("{header}\n{location}\n{}\nnot json\n", entity("a", "l1")),
            "bad.jsonl:4: column 1: expected value;",
        ),
        (
            format!("{location}\n"),
            "bad.jsonl:1: the first line must be the header",
        ),
        (
            r#"{"header":{"plinth_export":7}}"#.to_owned(),
            "bad.jsonl:1: export format 7 is not known",
        ),
        (
            format!("{header}\n{}\n", entity("a", "nowhere")),
            "bad.jsonl:2: entity.location_id: no location nowhere",
        ),
        (
            format!(
                "{header}\n{location}\n{}\n",
                entity("a", "l1").replace("\"ownedBy\"", "\"ownedby\"")
            ),
            "bad.jsonl:3: entity.relations[0]: type: unknown relation type \"ownedby\"",
        ),
        (
            format!(
                "{header}\n{location}\n{}\n{}\n",
                entity("a", "l1"),
                entity("a", "l1")
            ),
            "bad.jsonl:4: entity component:default/a appears twice",
        ),
        (String::new(), "bad.jsonl:1: empty"),
    ];
    let import = |file: &str| {
        plinth(
            dir,
            &["import", file, "--data-dir", target.to_str().unwrap()],
        )
    };
    for (text, says) in cases {
        std::fs::write(dir.join("bad.jsonl"), &text).unwrap();
        let run = import("bad.jsonl");
        assert_eq!(run.code, 1, "{text}\n{}", run.stderr);
        assert!(run.stderr.starts_with(says), "{says}\ngot: {}", run.stderr);
        assert!(run.stderr.contains("nothing was imported"));
    }
    // Every refusal left the store empty: a good export still goes in.
    let good = format!("{header}\n{location}\n{}\n", entity("a", "l1"));
    std::fs::write(dir.join("good.jsonl"), good).unwrap();
    let run = import("good.jsonl");
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stderr.contains("1 entities"), "{}", run.stderr);
}
