use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use plinth_store::testing::TestDb;
use plinth_store::{EntityQuery, Location, Store, StoredEntity};

use super::*;

/// A scratch directory with a store in it; removed on drop.
struct Fixture {
    dir: PathBuf,
    store: Store,
    options: IngestOptions,
    _db: TestDb,
}

impl Fixture {
    /// `None` when the store's database is not there (the test skips).
    async fn new(dialect: plinth_store::Dialect) -> Option<Fixture> {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "plinth-ingest-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(dir.join("repo")).unwrap();
        let db = TestDb::create(dialect, &dir).await?;
        let store = db.open().await;
        let options = IngestOptions {
            allowed_roots: vec![dir.join("repo")],
            // One file per batch: every rule that spans files spans batches.
            batch_files: 1,
            ..IngestOptions::default()
        };
        Some(Fixture {
            dir,
            store,
            options,
            _db: db,
        })
    }

    fn write(&self, rel: &str, text: &str) -> String {
        let path = self.dir.join("repo").join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    }

    async fn register(&self, kind: &str, rel: &str) -> Location {
        let target = check_location(
            kind,
            &self.dir.join("repo").join(rel).display().to_string(),
            &self.options,
        )
        .unwrap();
        self.store.add_location(kind, &target, None).await.unwrap()
    }

    async fn refresh(&self, location: &Location) -> RefreshReport {
        refresh_location(&self.store, location, &self.options)
            .await
            .unwrap()
    }

    async fn entity(&self, r: &str) -> Option<StoredEntity> {
        self.store.entity_by_ref(&r.parse().unwrap()).await.unwrap()
    }

    async fn refs(&self) -> Vec<String> {
        let page = self
            .store
            .query_entities(&EntityQuery::default())
            .await
            .unwrap();
        let mut refs: Vec<String> = page.entities.into_iter().map(|e| e.entity_ref).collect();
        refs.sort();
        refs
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn component(name: &str, owner: &str) -> String {
    format!(
        "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: {name}\nspec:\n  type: service\n  lifecycle: production\n  owner: {owner}\n"
    )
}

/// A YAML stream of these documents.
fn documents(docs: &[String]) -> String {
    docs.join("---\n")
}

fn group(name: &str) -> String {
    format!(
        "apiVersion: backstage.io/v1alpha1\nkind: Group\nmetadata:\n  name: {name}\nspec:\n  type: team\n  children: []\n"
    )
}

/// Runs git in `dir`, failing the test on error.
fn git(dir: &std::path::Path, args: &[&str]) {
    let out = std::process::Command::new("git")
        .args([
            "-c",
            "user.name=plinth-test",
            "-c",
            "user.email=test@example.com",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Fixture {
    /// A repository with `files` committed on `main`, inside the allowed root.
    fn repo(&self, name: &str, files: &[(&str, &str)]) -> PathBuf {
        let repo = self.dir.join("repo").join(name);
        std::fs::create_dir_all(&repo).unwrap();
        git(&repo, &["init", "--quiet"]);
        self.commit(&repo, files);
        repo
    }

    fn commit(&self, repo: &std::path::Path, files: &[(&str, &str)]) {
        for (path, text) in files {
            let p = repo.join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        git(repo, &["add", "-A"]);
        git(repo, &["commit", "--quiet", "-m", "change"]);
    }

    fn with_git(mut self) -> Fixture {
        self.options.git_dir = Some(self.dir.join("git"));
        self
    }

    async fn register_git(&self, target: &str) -> Result<Location, String> {
        let target = check_location("git", target, &self.options)?;
        Ok(self.store.add_location("git", &target, None).await.unwrap())
    }
}

plinth_store::on_both_stores!(dialect => {
    async fn a_location_and_its_targets_are_ingested_with_relations() {
        let Some(f) = Fixture::new(dialect).await else {
            return;
        };
        f.write(
            "catalog-info.yaml",
            "apiVersion: backstage.io/v1alpha1\nkind: Location\nmetadata:\n  name: root\nspec:\n  targets: [./a/catalog-info.yaml, ./teams.yaml]\n",
        );
        f.write("a/catalog-info.yaml", &component("a", "team-a"));
        f.write("teams.yaml", &group("team-a"));
        let loc = f.register("file", "catalog-info.yaml").await;
        let report = f.refresh(&loc).await;
        assert_eq!(report.outcome, RefreshOutcome::Ok);
        assert_eq!(report.summary.added, 3);
        assert_eq!(
            f.refs().await,
            [
                "component:default/a",
                "group:default/team-a",
                "location:default/root"
            ]
        );

        // Relations are visible from both ends as soon as the refresh returns.
        let a = f.entity("component:default/a").await.unwrap();
        assert_eq!(
            a.relations,
            [("ownedBy".to_string(), "group:default/team-a".to_string())]
        );
        let team = f.entity("group:default/team-a").await.unwrap();
        assert_eq!(
            team.relations,
            [("ownerOf".to_string(), "component:default/a".to_string())]
        );
        let json = a.to_api_json();
        assert_eq!(json["metadata"]["namespace"], "default");
        assert!(
            json["metadata"]["annotations"]["backstage.io/managed-by-location"]
                .as_str()
                .unwrap()
                .ends_with("/repo/a/catalog-info.yaml")
        );
        assert_eq!(json["metadata"]["uid"], a.uid.as_str());
    }

    async fn an_unchanged_refresh_changes_nothing() {
        let Some(f) = Fixture::new(dialect).await else {
            return;
        };
        f.write("catalog-info.yaml", &component("a", "team-a"));
        let loc = f.register("file", "catalog-info.yaml").await;
        f.refresh(&loc).await;
        let before = f.entity("component:default/a").await.unwrap();
        let report = f.refresh(&loc).await;
        assert_eq!(
            report.summary.added + report.summary.updated + report.summary.removed,
            0
        );
        assert_eq!(report.summary.unchanged, 1);
        assert_eq!(
            f.entity("component:default/a").await.unwrap().etag,
            before.etag
        );
        // A change gives a new etag and generation, same uid.
        f.write("catalog-info.yaml", &component("a", "team-b"));
        let report = f.refresh(&loc).await;
        assert_eq!(report.summary.updated, 1);
        let after = f.entity("component:default/a").await.unwrap();
        assert_eq!(after.uid, before.uid);
        assert_ne!(after.etag, before.etag);
        assert_eq!(after.generation, 2);
        assert_eq!(
            after.relations,
            [("ownedBy".to_string(), "group:default/team-b".to_string())]
        );
    }

    async fn an_invalid_update_keeps_the_last_valid_version() {
        let Some(f) = Fixture::new(dialect).await else {
            return;
        };
        f.write(
            "catalog-info.yaml",
            &documents(&[component("a", "team-a"), component("b", "team-a")]),
        );
        let loc = f.register("file", "catalog-info.yaml").await;
        f.refresh(&loc).await;
        // `a` loses its owner; `b` is fine and changes.
        f.write(
            "catalog-info.yaml",
            &documents(&[
                component("a", "team-a").replace("  owner: team-a\n", ""),
                component("b", "team-b"),
            ]),
        );
        let report = f.refresh(&loc).await;
        assert!(matches!(report.outcome, RefreshOutcome::Problems(_)));
        let a = f.entity("component:default/a").await.unwrap();
        assert_eq!(
            a.body["spec"]["owner"], "team-a",
            "the last valid version stays"
        );
        let errors: Vec<_> = a.status.iter().filter(|s| s["level"] == "error").collect();
        assert_eq!(errors.len(), 1, "{:?}", a.status);
        assert_eq!(errors[0]["type"], "backstage.io/catalog-processing");
        assert!(
            errors[0]["message"]
                .as_str()
                .unwrap()
                .contains("spec.owner: is required"),
            "{errors:?}"
        );
        assert_eq!(
            f.entity("component:default/b").await.unwrap().body["spec"]["owner"],
            "team-b"
        );
        // The problem shows on the location too.
        let problems = f.store.location_problems(&loc.id).await.unwrap();
        assert_eq!(problems.findings.len(), 1);
        assert_eq!(problems.findings[0]["field"], "spec.owner");
        // Fixing it clears the status.
        f.write(
            "catalog-info.yaml",
            &documents(&[component("a", "team-c"), component("b", "team-b")]),
        );
        f.refresh(&loc).await;
        let a = f.entity("component:default/a").await.unwrap();
        assert!(
            a.status.iter().all(|s| s["level"] != "error"),
            "{:?}",
            a.status
        );
        assert_eq!(a.body["spec"]["owner"], "team-c");
    }

    async fn a_broken_document_removes_nothing() {
        let Some(f) = Fixture::new(dialect).await else {
            return;
        };
        f.write(
            "catalog-info.yaml",
            &documents(&[component("a", "team-a"), component("b", "team-a")]),
        );
        let loc = f.register("file", "catalog-info.yaml").await;
        f.refresh(&loc).await;
        f.write(
            "catalog-info.yaml",
            &format!("{}---\nmetadata: [unclosed\n", component("a", "team-a")),
        );
        f.refresh(&loc).await;
        assert_eq!(
            f.refs().await,
            ["component:default/a", "component:default/b"]
        );
    }

    async fn vanished_entities_and_files_are_removed() {
        let Some(f) = Fixture::new(dialect).await else {
            return;
        };
        f.write(
            "a.yaml",
            &documents(&[component("a", "team-a"), component("b", "team-a")]),
        );
        f.write("c.yaml", &component("c", "team-a"));
        let loc = f.register("dir", ".").await;
        f.refresh(&loc).await;
        assert_eq!(
            f.refs().await,
            [
                "component:default/a",
                "component:default/b",
                "component:default/c"
            ]
        );
        f.write("a.yaml", &component("a", "team-a"));
        std::fs::remove_file(f.dir.join("repo/c.yaml")).unwrap();
        let report = f.refresh(&loc).await;
        assert_eq!(report.summary.removed, 2);
        assert_eq!(f.refs().await, ["component:default/a"]);
        // The reverse relations they gave are gone too.
        assert!(
            f.entity("component:default/a")
                .await
                .unwrap()
                .relations
                .len()
                == 1
        );
    }

    async fn the_first_location_keeps_a_conflicting_entity() {
        let Some(f) = Fixture::new(dialect).await else {
            return;
        };
        f.write("one.yaml", &component("shared", "team-one"));
        f.write("two.yaml", &component("shared", "team-two"));
        let one = f.register("file", "one.yaml").await;
        let two = f.register("file", "two.yaml").await;
        f.refresh(&one).await;
        let report = f.refresh(&two).await;
        assert_eq!(report.summary.conflicts, 1);
        let shared = f.entity("component:default/shared").await.unwrap();
        assert_eq!(shared.body["spec"]["owner"], "team-one");
        assert_eq!(shared.location_id, one.id);
        // The conflict shows on the entity, and on both locations.
        assert!(
            shared
                .status
                .iter()
                .any(|s| s["type"] == "plinth.io/conflict"),
            "{:?}",
            shared.status
        );
        let lost = f.store.location_problems(&two.id).await.unwrap();
        assert_eq!(lost.lost_conflicts.len(), 1);
        let won = f.store.location_problems(&one.id).await.unwrap();
        assert_eq!(won.won_conflicts.len(), 1);
        assert_eq!(won.won_conflicts[0].1, two.id);
        // When the first location drops it, the second takes it on its next
        // refresh, though its file did not change.
        f.write("one.yaml", &group("team-one"));
        f.refresh(&one).await;
        assert!(f.entity("component:default/shared").await.is_none());
        f.refresh(&two).await;
        let shared = f.entity("component:default/shared").await.unwrap();
        assert_eq!(shared.body["spec"]["owner"], "team-two");
        assert!(
            shared
                .status
                .iter()
                .all(|s| s["type"] != "plinth.io/conflict")
        );
    }

    async fn targets_outside_the_allowed_roots_are_refused() {
        let Some(f) = Fixture::new(dialect).await else {
            return;
        };
        std::fs::write(f.dir.join("secret.yaml"), component("secret", "team-a")).unwrap();
        f.write(
            "catalog-info.yaml",
            "apiVersion: backstage.io/v1alpha1\nkind: Location\nmetadata:\n  name: escape\nspec:\n  targets: [../secret.yaml, /etc/hostname]\n",
        );
        let loc = f.register("file", "catalog-info.yaml").await;
        let report = f.refresh(&loc).await;
        let messages: Vec<&str> = report.findings.iter().map(|f| f.message.as_str()).collect();
        assert_eq!(messages.len(), 2, "{messages:?}");
        assert!(
            messages
                .iter()
                .all(|m| m.contains("is outside the allowed roots")),
            "{messages:?}"
        );
        assert_eq!(f.refs().await, ["location:default/escape"]);
        // Registering outside the roots is refused up front.
        let err = check_location(
            "file",
            &f.dir.join("secret.yaml").display().to_string(),
            &f.options,
        )
        .unwrap_err();
        assert!(err.contains("is outside the allowed roots"), "{err}");
        assert!(
            check_location("url", "https://example.com/x.yaml", &f.options)
                .unwrap_err()
                .contains("not supported")
        );
    }

    async fn missing_and_dangling_references_are_reported_not_dropped() {
        let Some(f) = Fixture::new(dialect).await else {
            return;
        };
        f.write("catalog-info.yaml", &component("a", "nobody"));
        let loc = f.register("file", "catalog-info.yaml").await;
        f.refresh(&loc).await;
        let a = f.entity("component:default/a").await.unwrap();
        assert_eq!(
            a.relations,
            [("ownedBy".to_string(), "group:default/nobody".to_string())]
        );
        assert_eq!(a.status.len(), 1);
        assert_eq!(a.status[0]["type"], "plinth.io/dangling-reference");
        // A missing root file fails the refresh and keeps the entities.
        std::fs::remove_file(f.dir.join("repo/catalog-info.yaml")).unwrap();
        let report = f.refresh(&loc).await;
        assert!(matches!(report.outcome, RefreshOutcome::Failed(_)));
        assert_eq!(f.refs().await, ["component:default/a"]);
    }

    async fn globs_match_files() {
        let Some(f) = Fixture::new(dialect).await else {
            return;
        };
        f.write("services/a/catalog-info.yaml", &component("a", "t"));
        f.write("services/b/deep/catalog-info.yaml", &component("b", "t"));
        f.write("services/c/other.yaml", &component("c", "t"));
        let loc = f.register("file", "services/**/catalog-info.yaml").await;
        f.refresh(&loc).await;
        assert_eq!(
            f.refs().await,
            ["component:default/a", "component:default/b"]
        );
    }

    async fn deleting_a_location_removes_its_entities() {
        let Some(f) = Fixture::new(dialect).await else {
            return;
        };
        f.write("catalog-info.yaml", &component("a", "team-a"));
        let loc = f.register("file", "catalog-info.yaml").await;
        f.refresh(&loc).await;
        assert!(f.store.delete_location(&loc.id, None).await.unwrap());
        assert!(f.refs().await.is_empty());
        assert!(!f.store.delete_location(&loc.id, None).await.unwrap());
    }

    async fn git_locations_are_cloned_then_fetched() {
        let Some(f) = Fixture::new(dialect).await else {
            return;
        };
        let f = f.with_git();
        let repo = f.repo(
            "service",
            &[
                (
                    "catalog-info.yaml",
                    "apiVersion: backstage.io/v1alpha1\nkind: Location\nmetadata:\n  name: service\nspec:\n  targets: [./docs/api.yaml]\n",
                ),
                ("docs/api.yaml", &component("from-git", "team-a")),
            ],
        );
        let loc = f.register_git(&repo.display().to_string()).await.unwrap();
        assert_eq!(loc.target, format!("{}#:catalog-info.yaml", repo.display()));
        let report = f.refresh(&loc).await;
        assert_eq!(report.outcome, RefreshOutcome::Ok, "{:?}", report.findings);
        assert_eq!(
            f.refs().await,
            ["component:default/from-git", "location:default/service"]
        );

        // A new commit is fetched on the next refresh.
        f.commit(&repo, &[("docs/api.yaml", &component("renamed", "team-a"))]);
        f.refresh(&loc).await;
        assert_eq!(
            f.refs().await,
            ["component:default/renamed", "location:default/service"]
        );

        // A branch and a path inside the repository.
        git(&repo, &["checkout", "--quiet", "-b", "next"]);
        f.commit(&repo, &[("teams/catalog-info.yaml", &group("on-next"))]);
        let next = f
            .register_git(&format!("{}#next:teams", repo.display()))
            .await
            .unwrap();
        f.refresh(&next).await;
        assert!(
            f.refs()
                .await
                .contains(&"group:default/on-next".to_string())
        );
    }

    async fn broken_git_locations_fail_and_keep_what_they_had() {
        let Some(f) = Fixture::new(dialect).await else {
            return;
        };
        let f = f.with_git();
        let repo = f.repo(
            "svc",
            &[("catalog-info.yaml", &component("kept", "team-a"))],
        );
        let loc = f.register_git(&repo.display().to_string()).await.unwrap();
        f.refresh(&loc).await;
        // The repository disappears: the refresh fails, the entities stay.
        std::fs::rename(&repo, f.dir.join("repo/moved")).unwrap();
        std::fs::remove_dir_all(f.dir.join("git")).unwrap();
        let report = f.refresh(&loc).await;
        match &report.outcome {
            RefreshOutcome::Failed(m) => assert!(
                m.starts_with("git clone of ") && m.contains("check the repository"),
                "{m}"
            ),
            other => panic!("expected a failure, got {other:?}"),
        }
        assert_eq!(f.refs().await, ["component:default/kept"]);

        // A URL that cannot be reached, and a branch that does not exist.
        let unreachable = f
            .register_git("https://127.0.0.1:1/nothing.git")
            .await
            .unwrap();
        assert!(matches!(
            f.refresh(&unreachable).await.outcome,
            RefreshOutcome::Failed(_)
        ));
        let moved = f.dir.join("repo/moved");
        let no_branch = f
            .register_git(&format!("{}#no-such-branch", moved.display()))
            .await
            .unwrap();
        match f.refresh(&no_branch).await.outcome {
            RefreshOutcome::Failed(m) => assert!(m.contains("no-such-branch"), "{m}"),
            other => panic!("expected a failure, got {other:?}"),
        }

        // Refused before registering: outside the roots, and malformed targets.
        assert!(
            f.register_git("/etc")
                .await
                .unwrap_err()
                .contains("outside the allowed roots")
        );
        assert!(
            f.register_git("#main:x")
                .await
                .unwrap_err()
                .contains("has no repository")
        );
        assert!(
            f.register_git("repo#main:../../etc/passwd")
                .await
                .unwrap_err()
                .contains("may not leave the repository")
        );
        assert!(
            f.register_git("--upload-pack=evil")
                .await
                .unwrap_err()
                .contains("may not start a part")
        );
        let Some(no_dir) = Fixture::new(dialect).await else {
            return;
        };
        assert!(
            check_location("git", "https://example.com/x.git", &no_dir.options)
                .unwrap_err()
                .contains("data directory")
        );
    }

    async fn an_entity_defined_twice_in_one_location_keeps_the_first() {
        let Some(f) = Fixture::new(dialect).await else {
            return;
        };
        f.write("a.yaml", &component("twice", "team-a"));
        let loc = f.register("dir", ".").await;
        f.refresh(&loc).await;
        // A second file defines it again; the first file is unchanged.
        f.write("b.yaml", &component("twice", "team-b"));
        let report = f.refresh(&loc).await;
        assert_eq!(report.summary.conflicts, 1);
        let twice = f.entity("component:default/twice").await.unwrap();
        assert_eq!(twice.body["spec"]["owner"], "team-a");
        assert!(
            twice
                .status
                .iter()
                .any(|s| s["type"] == "plinth.io/conflict"),
            "{:?}",
            twice.status
        );
        // Moving it between two changed files moves it.
        f.write("a.yaml", &group("team-a"));
        f.write("b.yaml", &component("twice", "team-b"));
        f.refresh(&loc).await;
        let twice = f.entity("component:default/twice").await.unwrap();
        assert_eq!(twice.body["spec"]["owner"], "team-b");
        assert!(twice.file.ends_with("/b.yaml"));
    }

    async fn vanished_entities_are_kept_as_orphans_when_configured() {
        let Some(mut f) = Fixture::new(dialect).await else {
            return;
        };
        f.options.orphans = plinth_store::OrphanPolicy::Keep;
        f.write(
            "a.yaml",
            &documents(&[component("a", "team-a"), component("b", "team-a")]),
        );
        let loc = f.register("dir", ".").await;
        f.refresh(&loc).await;
        let before = f.entity("component:default/b").await.unwrap();
        f.write("a.yaml", &component("a", "team-a"));
        let report = f.refresh(&loc).await;
        assert_eq!((report.summary.removed, report.summary.orphaned), (0, 1));
        let b = f.entity("component:default/b").await.unwrap();
        assert_eq!(
            b.body["metadata"]["annotations"]["backstage.io/orphan"],
            "true"
        );
        assert_eq!(b.generation, before.generation + 1);
        assert_ne!(b.etag, before.etag);
        // Its relations stay, and the usual filter finds orphans.
        assert_eq!(b.relations, before.relations);
        let orphans = f
            .store
            .query_entities(&EntityQuery {
                filter: vec![vec![plinth_store::Filter {
                    key: "metadata.annotations.backstage.io/orphan".into(),
                    values: vec!["true".into()],
                }]],
                ..EntityQuery::default()
            })
            .await
            .unwrap();
        assert_eq!(orphans.total, 1);
        // An unchanged refresh leaves it as it is.
        f.refresh(&loc).await;
        assert_eq!(
            f.entity("component:default/b").await.unwrap().generation,
            b.generation
        );
        // Defined again, in another file: adopted, no longer an orphan.
        f.write("b.yaml", &component("b", "team-b"));
        f.refresh(&loc).await;
        let b = f.entity("component:default/b").await.unwrap();
        assert!(
            b.body["metadata"]["annotations"]
                .get("backstage.io/orphan")
                .is_none(),
            "{}",
            b.body
        );
        assert_eq!(b.body["spec"]["owner"], "team-b");
        // Deleting an orphan by uid removes it for good.
        f.write("b.yaml", &group("team-b"));
        f.refresh(&loc).await;
        let b = f.entity("component:default/b").await.unwrap();
        assert!(f.store.delete_entity_by_uid(&b.uid, None).await.unwrap());
        f.refresh(&loc).await;
        assert!(f.entity("component:default/b").await.is_none());
    }

    async fn an_entity_moved_between_files_keeps_its_uid_either_way() {
        let Some(f) = Fixture::new(dialect).await else {
            return;
        };
        // Read in this order, one file per batch.
        f.write("a.yaml", &group("team-a"));
        f.write("b.yaml", &component("moving", "team-a"));
        f.write("c.yaml", &group("team-c"));
        let loc = f.register("dir", ".").await;
        f.refresh(&loc).await;
        let uid = f.entity("component:default/moving").await.unwrap().uid;

        // To a file read later: its old file was read in an earlier batch.
        f.write("b.yaml", &group("team-b"));
        f.write(
            "c.yaml",
            &documents(&[group("team-c"), component("moving", "team-c")]),
        );
        let report = f.refresh(&loc).await;
        assert_eq!(
            (report.summary.added, report.summary.updated, report.summary.removed),
            (1, 1, 0),
            "{:?}",
            report.summary
        );
        let moved = f.entity("component:default/moving").await.unwrap();
        assert_eq!((moved.uid.as_str(), moved.body["spec"]["owner"].as_str()), (uid.as_str(), Some("team-c")));
        assert!(moved.file.ends_with("c.yaml"), "{}", moved.file);

        // To a file read earlier: decided when its old file is reached.
        f.write(
            "a.yaml",
            &documents(&[group("team-a"), component("moving", "team-a")]),
        );
        f.write("c.yaml", &group("team-c"));
        let report = f.refresh(&loc).await;
        assert_eq!(
            (report.summary.updated, report.summary.removed, report.summary.conflicts),
            (1, 0, 0),
            "{:?}",
            report.summary
        );
        let moved = f.entity("component:default/moving").await.unwrap();
        assert_eq!((moved.uid.as_str(), moved.body["spec"]["owner"].as_str()), (uid.as_str(), Some("team-a")));
        assert!(moved.file.ends_with("a.yaml"), "{}", moved.file);
        assert_eq!(
            f.refs().await,
            ["component:default/moving", "group:default/team-a", "group:default/team-b", "group:default/team-c"]
        );
    }

    async fn an_entity_held_by_an_unchanged_later_file_stays_there() {
        let Some(f) = Fixture::new(dialect).await else {
            return;
        };
        f.write("a.yaml", &group("team-a"));
        f.write("c.yaml", &component("held", "team-c"));
        let loc = f.register("dir", ".").await;
        f.refresh(&loc).await;
        // a.yaml (read first) claims what the unchanged c.yaml holds.
        f.write(
            "a.yaml",
            &documents(&[group("team-a"), component("held", "team-a")]),
        );
        let report = f.refresh(&loc).await;
        assert_eq!(report.summary.conflicts, 1, "{:?}", report.summary);
        let held = f.entity("component:default/held").await.unwrap();
        assert_eq!(held.body["spec"]["owner"], "team-c");
        assert!(held.file.ends_with("c.yaml"), "{}", held.file);
        let problems = f.store.location_problems(&loc.id).await.unwrap();
        assert_eq!(problems.lost_conflicts.len(), 1, "{problems:?}");

        // Once c.yaml lets it go, a.yaml takes it (read again though unchanged).
        f.write("c.yaml", &group("team-c"));
        let report = f.refresh(&loc).await;
        assert_eq!(report.summary.conflicts, 0, "{:?}", report.summary);
        let held = f.entity("component:default/held").await.unwrap();
        assert_eq!(held.body["spec"]["owner"], "team-a");
        assert!(held.file.ends_with("a.yaml"), "{}", held.file);
        let problems = f.store.location_problems(&loc.id).await.unwrap();
        assert!(problems.lost_conflicts.is_empty(), "{problems:?}");
    }

    async fn files_unchanged_by_their_stat_are_not_read_again() {
        let Some(f) = Fixture::new(dialect).await else {
            return;
        };
        let path = f.write("svc/catalog-info.yaml", &component("svc", "team-a"));
        let location = f.register("dir", "svc").await;
        // Just written: too fresh to trust its description, so read every time.
        assert_eq!(f.refresh(&location).await.files_read, 1);
        assert_eq!(f.refresh(&location).await.files_read, 1);
        std::thread::sleep(SETTLED + std::time::Duration::from_millis(200));
        // Settled: read once more to record its description, then only stat'ed.
        assert_eq!(f.refresh(&location).await.files_read, 1);
        let report = f.refresh(&location).await;
        assert_eq!((report.files_read, report.summary.unchanged), (0, 1));

        // Rewritten with the same size: its change time moved, so it is read.
        std::fs::write(&path, component("svc", "team-b")).unwrap();
        let report = f.refresh(&location).await;
        assert_eq!((report.files_read, report.summary.updated), (1, 1));
        let svc = f.entity("component:default/svc").await.unwrap();
        assert_eq!(svc.body["spec"]["owner"], "team-b");

        // Touched without a change: read until settled, then only stat'ed again.
        std::thread::sleep(SETTLED + std::time::Duration::from_millis(200));
        assert_eq!(f.refresh(&location).await.files_read, 1);
        assert_eq!(f.refresh(&location).await.files_read, 0);

        // Declaring a kind changes how files are read: everything is read again.
        let declared = IngestOptions {
            read: crate::ReadOptions {
                kinds: plinth_model::Kinds::with_declared(["Template".to_owned()]),
                ..crate::ReadOptions::default()
            },
            ..f.options.clone()
        };
        let report = refresh_location(&f.store, &location, &declared)
            .await
            .unwrap();
        assert_eq!(report.files_read, 1);
    }

    /// Refreshing one entity reads only its file (as Backstage refreshes
    /// one entity): its changes, removals and additions show at once, with
    /// relations; the location's other files are not looked at, and a
    /// whole refresh afterwards finds that file unchanged. What one file
    /// cannot answer for goes back to the caller.
    async fn one_entitys_file_is_refreshed_alone() {
        let Some(f) = Fixture::new(dialect).await else {
            return;
        };
        let a = f.write(
            "a.yaml",
            &documents(&[component("a1", "team-a"), component("a2", "team-a")]),
        );
        let b = f.write("b.yaml", &component("b1", "team-a"));
        let loc = f.register("dir", ".").await;
        f.refresh(&loc).await;
        let uid = f.entity("component:default/a1").await.unwrap().uid;
        let audit = || -> plinth_store::RefreshAudit {
            Box::new(|summary| plinth_store::AuditEntry {
                actor: "local".into(),
                action: "entity.refresh".into(),
                target: "component:default/a1".into(),
                source: "test".into(),
                before: None,
                after: Some(serde_json::json!({ "summary": summary })),
            })
        };
        let refresh_file = |path: String| {
            let (store, loc, options) = (f.store.clone(), loc.clone(), f.options.clone());
            async move {
                refresh_file(&store, &loc, &path, &options, audit())
                    .await
                    .unwrap()
            }
        };

        f.write(
            "a.yaml",
            &documents(&[component("a1", "team-b"), component("a3", "team-a")]),
        );
        f.write("b.yaml", &component("b1", "team-b"));
        let Ok(report) = refresh_file(a.clone()).await else {
            panic!("a file of components answers for itself");
        };
        assert_eq!(
            (report.summary.added, report.summary.updated, report.summary.removed),
            (1, 1, 1)
        );
        assert_eq!(
            f.refs().await,
            ["component:default/a1", "component:default/a3", "component:default/b1"]
        );
        let a1 = f.entity("component:default/a1").await.unwrap();
        assert_eq!((a1.uid, &a1.body["spec"]["owner"]), (uid, &serde_json::json!("team-b")));
        assert!(a1.relations.contains(&("ownedBy".into(), "group:default/team-b".into())));
        let b1 = f.entity("component:default/b1").await.unwrap();
        assert_eq!(b1.body["spec"]["owner"], "team-a", "b.yaml was not read");
        assert!(f.store.location(&loc.id).await.unwrap().unwrap().refresh.is_some());

        // The whole location now finds a.yaml as the file refresh left it.
        let report = f.refresh(&loc).await;
        assert_eq!(
            (report.summary.added, report.summary.updated, report.summary.removed, report.summary.unchanged),
            (0, 1, 0, 2)
        );
        // A file as it was: its entities are counted unchanged, nothing else.
        let Ok(report) = refresh_file(b.clone()).await else {
            panic!("an unchanged file answers for itself");
        };
        assert_eq!(
            (report.summary.unchanged, report.summary.added + report.summary.updated + report.summary.removed),
            (1, 0)
        );

        // a.yaml now also defines b1, which b.yaml holds: b.yaml keeps it.
        f.write(
            "a.yaml",
            &documents(&[component("a1", "team-b"), component("b1", "team-c")]),
        );
        let Ok(report) = refresh_file(a.clone()).await else {
            panic!("a conflict is answered by the file alone");
        };
        assert_eq!((report.summary.conflicts, report.summary.removed), (1, 1));
        let b1 = f.entity("component:default/b1").await.unwrap();
        assert_eq!((b1.file.as_str(), &b1.body["spec"]["owner"]), (b.as_str(), &serde_json::json!("team-b")));
        assert_eq!(f.store.location_problems(&loc.id).await.unwrap().lost_conflicts.len(), 1);

        // A Location entity's file leads to other files: the whole
        // location must be read. So must a file the location does not hold.
        f.write(
            "a.yaml",
            "apiVersion: backstage.io/v1alpha1\nkind: Location\nmetadata:\n  name: more\nspec:\n  targets: [./b.yaml]\n",
        );
        assert!(refresh_file(a.clone()).await.is_err());
        assert!(refresh_file(f.dir.join("repo/none.yaml").display().to_string()).await.is_err());
    }
});
