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
