//! Checks on the repository itself, run with every other test.

use std::path::{Path, PathBuf};
use std::process::Command;

use plinth_store::testing::unavailable;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn code_is_formatted() {
    let cargo = env!("CARGO");
    if !Command::new(cargo)
        .args(["fmt", "--version"])
        .output()
        .is_ok_and(|o| o.status.success())
    {
        return unavailable("rustfmt (rustup component add rustfmt)");
    }
    let out = Command::new(cargo)
        .args(["fmt", "--all", "--", "--check"])
        .current_dir(repo_root())
        .output()
        .expect("cargo fmt runs");
    assert!(
        out.status.success(),
        "run `cargo fmt --all`:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// docs/ARCHITECTURE.md is the map: every crate has its paragraph.
#[test]
fn every_crate_is_on_the_map() {
    let map = std::fs::read_to_string(repo_root().join("docs/ARCHITECTURE.md"))
        .expect("docs/ARCHITECTURE.md");
    for entry in std::fs::read_dir(repo_root().join("crates")).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        assert!(
            map.contains(&format!("### `{name}`")),
            "docs/ARCHITECTURE.md has no section for {name}"
        );
    }
}
