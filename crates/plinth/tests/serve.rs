//! `plinth serve` start-up: logs and mistakes in its arguments.

use std::process::Command;
use std::time::Duration;

mod common;
use common::{Scratch, Server};

#[test]
fn json_logs_carry_refresh_fields() {
    let scratch = Scratch::new("serve-json-logs");
    let server = Server::start(
        &scratch.0,
        &scratch.0.join("data"),
        &["--demo", "--log-format", "json"],
    );
    let line = server
        .wait_for("{", Duration::from_secs(60))
        .expect("a JSON log line");
    let event: serde_json::Value = serde_json::from_str(&format!("{{{line}")).expect("valid JSON");
    assert_eq!(event["level"], "INFO");
    assert_eq!(event["fields"]["added"], 37);
    assert_eq!(event["fields"]["outcome"], "ok");
    assert!(
        event["fields"]["location.target"]
            .as_str()
            .unwrap()
            .ends_with("/demo/catalog-info.yaml")
    );
}

#[test]
fn bad_arguments_say_what_to_change() {
    let scratch = Scratch::new("serve-bad-args");
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_plinth"))
            .arg("serve")
            .args(args)
            .arg("--data-dir")
            .arg(scratch.0.join("data"))
            .current_dir(&scratch.0)
            .output()
            .unwrap();
        (
            out.status.code().unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    };
    let (code, err) = run(&["--log", "plinth=loud"]);
    assert_eq!(code, 2);
    assert!(err.contains("write a level such as info"), "{err}");
    let (code, err) = run(&["--catalog", "missing.yaml"]);
    assert_eq!(code, 2);
    assert!(
        err.starts_with("error: --catalog missing.yaml: No such file or directory"),
        "{err}"
    );
    let (code, err) = run(&["--listen", "not-an-address"]);
    assert_eq!(code, 2);
    assert!(err.contains("cannot listen on not-an-address"), "{err}");
}

/// Stderr lines until one starts with `prefix` (that one excluded).
fn lines_until(server: &Server, prefix: &str) -> Vec<String> {
    let mut seen = Vec::new();
    loop {
        let line = server
            .lines
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("no line starting {prefix:?} after {seen:#?}"));
        if line.starts_with(prefix) {
            return seen;
        }
        seen.push(line);
    }
}

#[test]
fn a_new_location_is_read_before_serving_a_known_one_after() {
    let scratch = Scratch::new("serve-start-order");
    let catalog = scratch.0.join("catalog");
    common::write_components(&catalog, 3);
    std::fs::write(
        scratch.0.join("plinth.toml"),
        "[catalog]\nrefresh_interval_seconds = 1\n",
    )
    .unwrap();
    let data = scratch.0.join("data");
    let refreshed = |lines: &[String]| lines.iter().any(|l| l.contains("refreshed dir:"));

    // First start: the location is new, and read before the server answers.
    let mut first = Server::start(&scratch.0, &data, &["--catalog", "catalog"]);
    let before = lines_until(&first, "plinth: serving");
    assert!(refreshed(&before), "{before:#?}");
    first.kill();

    // Restart once it is due again: the server answers first, from what the
    // store holds, and the refresh follows.
    std::thread::sleep(Duration::from_millis(1_500));
    let second = Server::start(&scratch.0, &data, &["--catalog", "catalog"]);
    let before = lines_until(&second, "plinth: serving");
    assert!(!refreshed(&before), "{before:#?}");
    let followed = std::iter::from_fn(|| second.lines.recv_timeout(Duration::from_secs(30)).ok())
        .any(|l| l.contains("refreshed dir:") && l.contains("unchanged=3"));
    assert!(followed, "the due refresh runs after the server answers");
}

/// SIGTERM (how Kubernetes stops a pod) stops the server cleanly: it
/// exits with success and closes its store, so SQLite's WAL is folded into
/// the database and removed instead of read again at the next start.
#[test]
fn sigterm_stops_the_server_and_closes_its_store() {
    let scratch = Scratch::new("serve-sigterm");
    let catalog = scratch.0.join("catalog");
    common::write_components(&catalog, 20);
    let data = scratch.0.join("data");
    let mut server = Server::start(&scratch.0, &data, &["--catalog", "catalog"]);
    server.base_url();
    let wal = data.join("plinth.db-wal");
    assert!(wal.exists(), "a running server writes through the WAL");
    let status = std::process::Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let exit = loop {
        if let Some(exit) = server.child.try_wait().unwrap() {
            break exit;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still running 30 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exit.success(), "{exit:?}");
    assert!(
        server
            .wait_for("plinth: stopped", Duration::from_secs(5))
            .is_some()
    );
    assert!(
        !wal.exists(),
        "the WAL is checkpointed and removed on close"
    );
}

/// A new store's first load (written beside the store, then put in place)
/// counts in the server's metrics like any refresh.
#[test]
fn a_first_load_counts_in_the_metrics() {
    let scratch = Scratch::new("serve-first-load-metrics");
    let catalog = scratch.0.join("catalog");
    common::write_components(&catalog, 3);
    let server = Server::start(
        &scratch.0,
        &scratch.0.join("data"),
        &["--catalog", "catalog"],
    );
    let base = server.base_url();
    let metrics = base.replace("/api/catalog", "/metrics");
    let (status, text) = common::http(&metrics, None);
    assert_eq!(status, 200);
    let text = text.as_str().unwrap_or_default().to_owned();
    assert!(
        text.contains("plinth_catalog_refreshes_total{outcome=\"ok\"} 1\n"),
        "{text}"
    );
}
