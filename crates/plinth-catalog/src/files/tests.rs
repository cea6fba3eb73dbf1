use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;

/// A directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "plinth-catalog-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn write(&self, rel: &str, bytes: impl AsRef<[u8]>) -> PathBuf {
        let path = self.0.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, bytes).unwrap();
        path
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

const COMPONENT: &str = "apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: a
spec:
  type: service
  lifecycle: production
  owner: team-a
";

/// Checks `roots` and renders the report as lines: findings as users see
/// them, then the counts.
fn check(roots: &[PathBuf], options: &ReadOptions, base: &Path) -> Vec<String> {
    let report = check_paths(roots, options);
    let mut lines: Vec<String> = report
        .findings
        .iter()
        .map(|f| f.to_string().replace(&format!("{}/", base.display()), ""))
        .collect();
    lines.push(format!(
        "files={} skipped={} valid={} invalid={}",
        report.files, report.skipped_files, report.valid_entities, report.invalid_entities
    ));
    lines
}

#[test]
fn problems_are_located_at_their_field() {
    let text = "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: -bad\n  tags: [ok, Not-OK]\nspec:\n  type: service\n  owner: team-a\n";
    let contents = parse_catalog_text(text, "c.yaml", &ReadOptions::default());
    let lines: Vec<String> = contents.findings.iter().map(ToString::to_string).collect();
    assert_eq!(
        lines,
        [
            "c.yaml:4:3: component:default/-bad: metadata.name: \"-bad\" must start with a letter or digit, not \"-\"",
            "c.yaml:5:14: component:default/-bad: metadata.tags[1]: \"Not-OK\" contains \"N\"; use lowercase; use only a-z, 0-9, : + #, separated by single dashes",
            // A missing field is reported where its parent is.
            "c.yaml:6:1: component:default/-bad: spec.lifecycle: is required; add its lifecycle, for example \"experimental\", \"production\" or \"deprecated\"",
        ]
    );
    assert_eq!(contents.invalid_entities, 1);
}

#[test]
fn one_bad_document_hides_nothing() {
    let text = format!(
        "{COMPONENT}---\nkind: [unclosed\n---\n- a list\n---\n{}---\n~\n",
        COMPONENT.replace("name: a", "name: b")
    );
    let contents = parse_catalog_text(&text, "multi.yaml", &ReadOptions::default());
    let names: Vec<&str> = contents.entities.iter().map(|e| e.entity.name()).collect();
    assert_eq!(names, ["a", "b"]);
    let lines: Vec<String> = contents.findings.iter().map(ToString::to_string).collect();
    assert_eq!(
        lines,
        [
            "multi.yaml:11:1: -: YAML syntax error: while parsing a flow sequence, expected ',' or ']'",
            "multi.yaml:12:1: -: an entity must be a mapping with apiVersion, kind, metadata and spec, but this document is a list",
        ]
    );
    // Each entity knows where it starts.
    assert_eq!(
        (contents.entities[1].line, contents.entities[1].column),
        (14, 1)
    );
}

#[test]
fn unreadable_inputs_are_findings() {
    let dir = TempDir::new();
    let big = dir.write("big.yaml", format!("{COMPONENT}# {}\n", "x".repeat(2000)));
    let binary = dir.write("binary.yaml", b"a: 1\nb: \0\n");
    let latin1 = dir.write("latin1.yaml", b"a: 1\nname: caf\xe9\n");
    let missing = dir.path().join("missing.yaml");
    let dangling = dir.path().join("dangling.yaml");
    std::os::unix::fs::symlink(dir.path().join("nowhere"), &dangling).unwrap();
    let looping = dir.path().join("loop.yaml");
    std::os::unix::fs::symlink(&looping, &looping).unwrap();
    let options = ReadOptions {
        max_file_bytes: 1024,
        ..ReadOptions::default()
    };
    // /proc/self/mem opens but fails to read at offset 0: a real I/O error
    // even for root, who can read files whatever their permissions.
    let io_error = PathBuf::from("/proc/self/mem");
    let roots = [big, binary, latin1, missing, dangling, looping, io_error];
    let lines = check(&roots, &options, dir.path());
    assert_eq!(
        lines,
        [
            "/proc/self/mem:1:1: -: cannot be read: Input/output error (os error 5)",
            "big.yaml:1:1: -: is 2135 bytes, over the limit of 1024 bytes; split it into several files, or raise the limit (--max-file-size, catalog.max_file_size)",
            "binary.yaml:2:1: -: is a binary file, not YAML text (it holds a NUL byte); catalog files must be UTF-8 YAML",
            "dangling.yaml:1:1: -: cannot be read: it is a symbolic link to nothing",
            "latin1.yaml:2:1: -: is not UTF-8 text; save it as UTF-8",
            "loop.yaml:1:1: -: cannot be read: it is a symbolic link loop",
            "missing.yaml:1:1: -: cannot be read: no such file or directory",
            "files=7 skipped=0 valid=0 invalid=0",
        ]
    );
    assert!(check_paths(&roots, &options).has_unreadable_input());
}

#[test]
fn yaml_bombs_and_duplicates_are_findings() {
    let dir = TempDir::new();
    let mut bomb = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..9 {
        let p = i - 1;
        bomb.push_str(&format!(
            "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
        ));
    }
    let bomb = dir.write("bomb.yaml", bomb);
    let dup = dir.write(
        "dup.yaml",
        COMPONENT.replace("  owner: team-a\n", "  owner: team-a\n  owner: team-b\n"),
    );
    let lines = check(&[bomb, dup], &ReadOptions::default(), dir.path());
    assert_eq!(
        lines,
        [
            "bomb.yaml:6:15: -: document is too large: more than 250000 values (counting what aliases expand to); split it or remove alias chains",
            "dup.yaml:9:3: -: duplicate key \"owner\" (first at line 8); remove one of them",
            "files=2 skipped=0 valid=0 invalid=0",
        ]
    );
}

#[test]
fn directories_hold_catalog_files_and_other_yaml() {
    let dir = TempDir::new();
    dir.write("catalog-info.yaml", COMPONENT);
    dir.write(
        "nested/deeper/service.yml",
        COMPONENT.replace("name: a", "name: b"),
    );
    // YAML that holds no entities is left alone when found in a directory.
    dir.write(".github/workflows/ci.yaml", "on: push\njobs: {}\n");
    dir.write(
        "deploy/deployment.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: x\n",
    );
    dir.write(
        "openapi.yaml",
        "openapi: 3.0.0\ninfo: {title: x, version: '1'}\n",
    );
    dir.write(
        "chart/templates/svc.yaml",
        "{{- if .Values.x }}\nkind: Service\n{{- end }}\n",
    );
    dir.write("node_modules/pkg/catalog-info.yaml", "broken: [");
    dir.write("notes.txt", "not yaml");
    // A broken file that is meant to be a catalog file is still reported.
    dir.write(
        "broken/entity.yaml",
        "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata: [\n",
    );
    // An empty catalog-info.yaml is a catalog file with nothing in it.
    dir.write("empty/catalog-info.yaml", "# nothing yet\n");
    let lines = check(
        &[dir.path().to_path_buf()],
        &ReadOptions::default(),
        dir.path(),
    );
    assert_eq!(
        lines,
        [
            "broken/entity.yaml:4:1: -: YAML syntax error: while parsing a node, did not find expected node content",
            "files=4 skipped=3 valid=2 invalid=0",
        ]
    );
}

#[test]
fn explicit_files_are_always_read() {
    let dir = TempDir::new();
    let deployment = dir.write(
        "deployment.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: x\n",
    );
    let lines = check(&[deployment], &ReadOptions::default(), dir.path());
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        lines[0].starts_with(
            "deployment.yaml:2:1: deployment:default/x: kind: \"Deployment\" is not a known kind"
        ),
        "{lines:?}"
    );
    assert_eq!(lines[1], "files=1 skipped=0 valid=0 invalid=1");
}

#[test]
fn symlink_loops_in_directories_are_reported_once() {
    let dir = TempDir::new();
    dir.write("a/catalog-info.yaml", COMPONENT);
    std::os::unix::fs::symlink(dir.path(), dir.path().join("a/back-to-root")).unwrap();
    // A second link to the same file is read once.
    std::os::unix::fs::symlink(
        dir.path().join("a/catalog-info.yaml"),
        dir.path().join("same.yaml"),
    )
    .unwrap();
    let lines = check(
        &[dir.path().to_path_buf()],
        &ReadOptions::default(),
        dir.path(),
    );
    let root = fs::canonicalize(dir.path()).unwrap();
    assert_eq!(
        lines,
        [
            format!(
                "a/back-to-root:1:1: -: is a symbolic link loop back to {}; skipped",
                root.display()
            ),
            "files=1 skipped=0 valid=1 invalid=0".to_string(),
        ]
    );
}

#[test]
fn declared_kinds_and_limits_come_from_options() {
    let dir = TempDir::new();
    let template = dir.write(
        "template.yaml",
        "apiVersion: scaffolder.backstage.io/v1beta3\nkind: Template\nmetadata:\n  name: new-service\nspec:\n  steps: []\n",
    );
    let refused = check(
        std::slice::from_ref(&template),
        &ReadOptions::default(),
        dir.path(),
    );
    assert_eq!(
        refused.last().unwrap(),
        "files=1 skipped=0 valid=0 invalid=1"
    );
    let options = ReadOptions {
        kinds: Kinds::with_declared(["Template".to_owned()]),
        ..ReadOptions::default()
    };
    assert_eq!(
        check(&[template], &options, dir.path()),
        ["files=1 skipped=0 valid=1 invalid=0"]
    );
}

/// The example organisation is valid, and consistent: every relation points
/// at an entity it defines, and every Location target exists.
#[test]
fn the_example_organisation_is_whole() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let (files, findings) = find_catalog_files(std::slice::from_ref(&examples));
    assert!(findings.is_empty(), "{findings:?}");
    let mut entities = Vec::new();
    for f in &files {
        let contents = read_catalog_file(
            &f.path,
            &f.path.display().to_string(),
            &ReadOptions::default(),
        );
        assert!(contents.findings.is_empty(), "{:?}", contents.findings);
        for e in &contents.entities {
            if let Some(spec) = e.entity.spec() {
                for target in spec
                    .get("targets")
                    .and_then(|t| t.as_array())
                    .into_iter()
                    .flatten()
                {
                    let target = f.path.parent().unwrap().join(target.as_str().unwrap());
                    assert!(
                        target.is_file(),
                        "{} targets missing {}",
                        f.path.display(),
                        target.display()
                    );
                }
            }
        }
        entities.extend(contents.entities.into_iter().map(|e| e.entity));
    }
    let refs: BTreeSet<String> = entities
        .iter()
        .map(|e| e.entity_ref().to_string())
        .collect();
    assert_eq!(refs.len(), entities.len(), "entity defined twice");
    let kinds: BTreeSet<&str> = entities.iter().map(|e| e.kind()).collect();
    assert_eq!(
        kinds,
        BTreeSet::from([
            "API",
            "Component",
            "Domain",
            "Group",
            "Location",
            "Resource",
            "System",
            "User"
        ])
    );
    for e in &entities {
        for r in e.relations() {
            assert!(
                refs.contains(&r.target.to_string()),
                "{} has a dangling relation {r}",
                e.entity_ref()
            );
        }
    }
}

proptest::proptest! {
    /// Whatever the text, reading it gives entities or findings, never a panic.
    #[test]
    fn catalog_text_never_panics(text in "(apiVersion: backstage.io/v1alpha1\n|kind: (Component|Group|API)\n|metadata:\n|spec:\n|  name: [a-z-]{0,5}\n|  owner: [a-z:/]{0,6}\n|  dependsOn: \\[[a-z:]{0,4}\\]\n|---\n|[-:&*!|>\\[\\]{}'\" #a-z\n]){0,40}") {
        let contents = parse_catalog_text(&text, "p.yaml", &ReadOptions::default());
        for f in &contents.findings {
            proptest::prop_assert!(f.line >= 1 && f.column >= 1);
        }
    }
}

#[test]
fn the_walk_goes_in_path_order_through_linked_directories() {
    let dir = TempDir::new();
    let outside = TempDir::new();
    dir.write("b/x.yaml", COMPONENT);
    dir.write("a-b/z.yml", COMPONENT);
    dir.write("a/y.yaml", COMPONENT);
    dir.write("a/deeper/v.yaml", COMPONENT);
    dir.write("a/.hidden/h.yaml", COMPONENT);
    dir.write("a/readme.md", "not yaml");
    outside.write("w.yaml", COMPONENT);
    outside.write("inner/u.yaml", COMPONENT);
    std::os::unix::fs::symlink(outside.path(), dir.path().join("c-link")).unwrap();
    // A hard link is the same file: found once, at its first place.
    fs::hard_link(
        dir.path().join("b/x.yaml"),
        dir.path().join("a/x-again.yaml"),
    )
    .unwrap();
    std::os::unix::fs::symlink(dir.path().join("nowhere"), dir.path().join("d-broken.yaml"))
        .unwrap();

    let (files, findings) = find_catalog_files(&[dir.path().to_path_buf()]);
    assert!(findings.is_empty(), "{findings:?}");
    let found: Vec<(String, bool)> = files
        .iter()
        .map(|f| {
            let rel = f.path.strip_prefix(dir.path()).unwrap();
            (rel.display().to_string(), f.explicit)
        })
        .collect();
    let expected = [
        ("a/deeper/v.yaml", false),
        ("a/x-again.yaml", false),
        ("a/y.yaml", false),
        ("a-b/z.yml", false),
        ("c-link/inner/u.yaml", false),
        ("c-link/w.yaml", false),
        // Broken links named like catalog files are handed on, to be reported.
        ("d-broken.yaml", true),
    ];
    assert_eq!(
        found,
        expected.map(|(p, e)| (p.to_string(), e)),
        "b/x.yaml is the hard link's second place"
    );
}
