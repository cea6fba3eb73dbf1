//! `plinth catalog get | list | register | refresh` against a running plinth.

use std::path::Path;

mod common;
use common::{Run, Scratch, Server, plinth_env};

fn plinth(cwd: &Path, server: &str, args: &[&str]) -> Run {
    plinth_env(cwd, args, &[("PLINTH_SERVER", server)])
}

#[test]
fn client_commands_against_a_running_server() {
    let scratch = Scratch::new("catalog-client-cli");
    let server = Server::start(&scratch.0, &scratch.0.join("data"), &["--demo"]);
    let base = server.base_url();
    let url = base.trim_end_matches("/api/catalog");
    let dir = &scratch.0;

    let get = plinth(dir, url, &["catalog", "get", "payments-service"]);
    assert_eq!(get.code, 0, "{}", get.stderr);
    assert!(
        get.stdout.starts_with(
            "Entity       component:default/payments-service\nTitle        Payments service\n"
        ),
        "{}",
        get.stdout
    );
    assert!(
        get.stdout
            .contains("\nRelations\n  dependsOn resource:default/payments-db\n"),
        "{}",
        get.stdout
    );

    let json = plinth(
        dir,
        url,
        &["catalog", "get", "group:keel", "--output", "json"],
    );
    let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(v["spec"]["type"], "organization");

    let list = plinth(
        dir,
        url,
        &[
            "catalog",
            "list",
            "--filter",
            "kind=api",
            "--filter",
            "kind=domain",
        ],
    );
    assert_eq!(
        list.stdout,
        "ENTITY                     TYPE      OWNER          LIFECYCLE\n\
         domain:default/commerce    -         product        -\n\
         domain:default/operations  -         engineering    -\n\
         api:default/checkout-api   openapi   checkout-team  production\n\
         api:default/payments-api   openapi   payments-team  production\n\
         api:default/order-events   asyncapi  checkout-team  production\n"
    );
    // Paging through the API with cursors, and saying what was left out.
    let users = plinth(
        dir,
        url,
        &[
            "catalog",
            "list",
            "--filter",
            "kind=user",
            "--limit",
            "3",
            "--output",
            "json",
        ],
    );
    let v: serde_json::Value = serde_json::from_str(&users.stdout).unwrap();
    assert_eq!(
        (
            v["items"].as_array().unwrap().len(),
            v["totalItems"].as_u64()
        ),
        (3, Some(8))
    );
    let some = plinth(
        dir,
        url,
        &["catalog", "list", "--filter", "kind=user", "--limit", "3"],
    );
    assert_eq!(some.stderr, "3 of 8 entities; raise --limit to see more\n");

    std::fs::create_dir_all(dir.join("new")).unwrap();
    std::fs::write(
        dir.join("new/catalog-info.yaml"),
        "apiVersion: backstage.io/v1alpha1\nkind: System\nmetadata:\n  name: new-system\nspec:\n  owner: keel\n",
    )
    .unwrap();
    let reg = plinth(dir, url, &["catalog", "register", "new"]);
    assert_eq!(reg.code, 0, "{}", reg.stderr);
    assert!(
        reg.stdout
            .contains("with 1 entities\n  system:default/new-system\n"),
        "{}",
        reg.stdout
    );
    let again = plinth(dir, url, &["catalog", "register", "new"]);
    assert_eq!(again.code, 1);
    assert!(
        again.stderr.contains("already exists (HTTP 409)"),
        "{}",
        again.stderr
    );

    std::fs::write(
        dir.join("new/catalog-info.yaml"),
        "apiVersion: backstage.io/v1alpha1\nkind: System\nmetadata:\n  name: new-system\n  title: Renamed\nspec:\n  owner: keel\n",
    )
    .unwrap();
    let refresh = plinth(dir, url, &["catalog", "refresh", "system:new-system"]);
    assert_eq!(refresh.stdout, "refreshed system:default/new-system\n");
    let renamed = plinth(dir, url, &["catalog", "get", "system:new-system"]).stdout;
    assert!(
        renamed
            .lines()
            .any(|l| l.starts_with("Title") && l.ends_with(" Renamed")),
        "{renamed}"
    );
    let all = plinth(dir, url, &["catalog", "refresh", "--all"]);
    assert_eq!(all.code, 0, "{}", all.stderr);
    assert_eq!(all.stdout.lines().count(), 2, "{}", all.stdout);

    let found = plinth(dir, url, &["catalog", "search", "checkout", "rust"]);
    assert_eq!(
        found.stdout,
        "ENTITY                              OWNER          TITLE\ncomponent:default/checkout-service  checkout-team  Checkout service\n"
    );
    let none = plinth(dir, url, &["catalog", "search", "zzz-nothing"]);
    assert_eq!(
        (none.code, none.stderr.as_str()),
        (0, "nothing matches \"zzz-nothing\"\n")
    );

    let missing = plinth(dir, url, &["catalog", "get", "nope"]);
    assert_eq!(missing.code, 1);
    assert_eq!(
        missing.stderr,
        "error: No entity named 'nope' found, with kind 'component' in namespace 'default' (HTTP 404)\n"
    );
    let bad_ref = plinth(dir, url, &["catalog", "get", "group:"]);
    assert_eq!(bad_ref.code, 2);
    assert!(
        bad_ref.stderr.contains("has an empty name"),
        "{}",
        bad_ref.stderr
    );
    let down = plinth(dir, "http://127.0.0.1:1", &["catalog", "list"]);
    assert_eq!(down.code, 2);
    assert!(
        down.stderr
            .contains("cannot reach plinth at http://127.0.0.1:1"),
        "{}",
        down.stderr
    );
}

/// Registering a location answers with all its entities (Backstage's
/// shape), streamed by the server 500 at a time; the client reads an
/// answer over ureq's default limit of 10 MB.
#[test]
fn a_registration_answer_over_ten_megabytes_is_read() {
    let scratch = Scratch::new("catalog-client-large");
    let dir = &scratch.0;
    let catalog = dir.join("large");
    std::fs::create_dir_all(&catalog).unwrap();
    let description = "x".repeat(10_000);
    for i in 0..1_100 {
        std::fs::write(
            catalog.join(format!("c{i}.yaml")),
            format!(
                "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: c{i}\n  description: {description}\nspec:\n  type: service\n  lifecycle: production\n  owner: team-a\n"
            ),
        )
        .unwrap();
    }
    let server = Server::start(dir, &dir.join("data"), &[]);
    let base = server.base_url();
    let url = base.trim_end_matches("/api/catalog");
    let reg = plinth(dir, url, &["catalog", "register", "large"]);
    assert_eq!(reg.code, 0, "{}", reg.stderr);
    assert!(
        reg.stdout.contains(" with 1100 entities\n"),
        "{}",
        reg.stdout
    );
    assert_eq!(reg.stdout.lines().count(), 1 + 1_100);
}
