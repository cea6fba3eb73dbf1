//! `plinth catalog validate`, driven through the real binary.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

mod common;
use common::{plinth, plinth_env};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A scratch directory, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Scratch {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "plinth-cli-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn write(&self, name: &str, text: &str) {
        std::fs::write(self.0.join(name), text).unwrap();
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn the_examples_are_valid() {
    let run = plinth(&repo_root(), &["catalog", "validate", "examples/"]);
    assert_eq!(run.stdout, "");
    assert_eq!(
        run.stderr,
        "checked 15 catalog files: 37 entities valid, 0 invalid\n"
    );
    assert_eq!(run.code, 0);
}

#[test]
fn broken_files_give_exact_messages() {
    let run = plinth(&fixtures(), &["catalog", "validate", "broken"]);
    insta::assert_snapshot!(run.stdout);
    assert_eq!(
        run.stderr,
        "checked 6 catalog files: 2 entities valid, 14 invalid, 3 problems reading or parsing; skipped 1 YAML file without entities\n"
    );
    // Some input could not be parsed: that outranks invalid entities.
    assert_eq!(run.code, 2);
}

#[test]
fn broken_files_as_json() {
    let run = plinth(
        &fixtures(),
        &["catalog", "validate", "--format", "json", "broken"],
    );
    let report: serde_json::Value = serde_json::from_str(&run.stdout).expect("one JSON document");
    insta::assert_json_snapshot!(report);
    assert_eq!(run.stderr, "");
    assert_eq!(run.code, 2);
}

#[test]
fn invalid_entities_alone_exit_1() {
    let run = plinth(
        &fixtures(),
        &[
            "catalog",
            "validate",
            "broken/names.yaml",
            "broken/kinds.yaml",
        ],
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stdout.lines().all(|l| l.starts_with("broken/")),
        "{}",
        run.stdout
    );
}

#[test]
fn unreadable_input_exits_2() {
    let run = plinth(&fixtures(), &["catalog", "validate", "broken/missing.yaml"]);
    assert_eq!(
        run.stdout,
        "broken/missing.yaml:1:1: -: cannot be read: no such file or directory\n"
    );
    assert_eq!(run.code, 2);
    let run = plinth(
        &fixtures(),
        &[
            "catalog",
            "validate",
            "--max-file-size",
            "100",
            "broken/names.yaml",
        ],
    );
    assert_eq!(
        run.stdout,
        "broken/names.yaml:1:1: -: is 996 bytes, over the limit of 100 bytes; split it into several files, or raise the limit (--max-file-size, catalog.max_file_size)\n"
    );
    assert_eq!(run.code, 2);
}

#[test]
fn custom_kinds_from_flags_environment_and_configuration() {
    let scratch = Scratch::new();
    scratch.write(
        "template.yaml",
        "apiVersion: scaffolder.backstage.io/v1beta3\nkind: Template\nmetadata:\n  name: t\nspec: {}\n",
    );
    assert_eq!(
        plinth(&scratch.0, &["catalog", "validate", "template.yaml"]).code,
        1
    );
    assert_eq!(
        plinth(
            &scratch.0,
            &["catalog", "validate", "--kind", "Template", "template.yaml"]
        )
        .code,
        0
    );

    let with_env = plinth_env(
        &scratch.0,
        &["catalog", "validate", "template.yaml"],
        &[("PLINTH_CATALOG_KINDS", "Capability,Template")],
    );
    assert_eq!(with_env.code, 0, "{}", with_env.stderr);

    // ./plinth.toml is read when present.
    scratch.write(
        "plinth.toml",
        "[catalog]\nkinds = [\"Template\"]\nmax_file_size = \"1MiB\"\n",
    );
    assert_eq!(
        plinth(&scratch.0, &["catalog", "validate", "template.yaml"]).code,
        0
    );
}

#[test]
fn bad_configuration_and_arguments_say_where() {
    let scratch = Scratch::new();
    scratch.write("catalog-info.yaml", "");
    scratch.write(
        "plinth.toml",
        "[catalog]\nkinds = [\"Template\"]\nmax_file_sise = 10\n",
    );
    let run = plinth(&scratch.0, &["catalog", "validate", "."]);
    assert_eq!(
        run.stderr,
        "error: plinth.toml:3:1: unknown field `max_file_sise`, expected one of `kinds`, `max_file_size`, `allowed_roots`, `refresh_interval_seconds`, `lease_seconds`, `orphans`\n"
    );
    assert_eq!(run.code, 2);

    scratch.write("plinth.toml", "[catalog]\nkinds = [\"my-kind\"]\n");
    let run = plinth(&scratch.0, &["catalog", "validate", "."]);
    assert_eq!(
        run.stderr,
        "error: catalog.kinds: \"my-kind\" is not a valid kind: it contains \"-\"; use only letters and digits\n"
    );
    assert_eq!(run.code, 2);

    let run = plinth(
        &scratch.0,
        &["--config", "missing.toml", "catalog", "validate", "."],
    );
    assert_eq!(
        run.stderr,
        "error: cannot read configuration file missing.toml: No such file or directory (os error 2)\n"
    );
    assert_eq!(run.code, 2);

    std::fs::remove_file(scratch.0.join("plinth.toml")).unwrap();
    let run = plinth(
        &scratch.0,
        &["catalog", "validate", "--max-file-size", "lots", "."],
    );
    assert_eq!(
        run.stderr,
        "error: --max-file-size: \"lots\" is not a size; write a number of bytes, optionally followed by KiB, MiB or GiB, for example 16MiB\n"
    );
    assert_eq!(run.code, 2);

    let run = plinth(&scratch.0, &["catalog", "validate"]);
    assert!(
        run.stderr
            .contains("the following required arguments were not provided"),
        "{}",
        run.stderr
    );
    assert_eq!(run.code, 2);
}

#[test]
fn an_empty_directory_is_not_an_error() {
    let scratch = Scratch::new();
    let run = plinth(&scratch.0, &["catalog", "validate", "."]);
    assert_eq!(
        run.stderr,
        "checked 0 catalog files: 0 entities valid, 0 invalid; no catalog files found\n"
    );
    assert_eq!(run.code, 0);
}
