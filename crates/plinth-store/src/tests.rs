//! Store-level tests of what callers cannot see through the API: the shape
//! of the schema after the bulk path rebuilt its indexes.

use serde_json::json;

use super::*;

struct Scratch(std::path::PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("plinth-store-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn indexes(store: &Store) -> Vec<(String, String)> {
    sqlx::query_as(
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name IN ('search', 'relations', 'search_tokens') AND sql IS NOT NULL ORDER BY name",
    )
    .fetch_all(&store.pool)
    .await
    .unwrap()
}

fn file(path: &str, names: std::ops::Range<usize>) -> FileUpdate {
    let entities = names
        .map(|i| {
            let r = EntityRef::new("component", "default", &format!("svc-{i}"));
            let owner = EntityRef::new("group", "default", &format!("team-{}", i % 7));
            let body = json!({
                "apiVersion": "backstage.io/v1alpha1",
                "kind": "Component",
                "metadata": {"name": format!("svc-{i}"), "namespace": "default", "tags": ["java", "grpc"]},
                "spec": {"type": "service", "lifecycle": "production", "owner": owner.to_string()},
            });
            let relations = vec![
                Relation {
                    source: r.clone(),
                    relation: plinth_model::RelationType::OwnedBy,
                    target: owner.clone(),
                },
                Relation {
                    source: owner,
                    relation: plinth_model::RelationType::OwnerOf,
                    target: r.clone(),
                },
            ];
            NewEntity::new(r, &body, relations)
        })
        .collect();
    FileUpdate {
        path: path.into(),
        hash: "h".into(),
        entities,
        ..FileUpdate::default()
    }
}

#[tokio::test]
async fn the_bulk_path_leaves_the_indexes_the_migrations_made() {
    let scratch = Scratch::new("bulk");
    let store = Store::open_sqlite(&scratch.0.join("plinth.db"))
        .await
        .unwrap();
    let migrated = indexes(&store).await;
    for (name, sql) in write::BULK_INDEXES {
        assert!(
            migrated.contains(&(name.to_string(), sql.to_string())),
            "BULK_INDEXES must copy the migrations: {name}"
        );
    }

    let location = store.add_location("file", "/big.yaml", None).await.unwrap();
    // About 15 rows per entity: well over the bulk threshold.
    let big = [file("/big.yaml", 0..5_000)];
    let summary = store
        .apply_refresh(
            &location.id,
            &big,
            &[],
            &RefreshOutcome::Ok,
            OrphanPolicy::Delete,
            None,
        )
        .await
        .unwrap();
    assert_eq!(summary.added, 5_000);
    assert_eq!(indexes(&store).await, migrated);
    let check: String = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_one(&store.pool)
        .await
        .unwrap();
    assert_eq!(check, "ok");

    // A small refresh afterwards takes the row-by-row path; both answer.
    let small = [file("/big.yaml", 0..10)];
    let summary = store
        .apply_refresh(
            &location.id,
            &small,
            &[],
            &RefreshOutcome::Ok,
            OrphanPolicy::Delete,
            None,
        )
        .await
        .unwrap();
    assert_eq!((summary.unchanged, summary.removed), (10, 4_990));
    let owned = store
        .entity_by_ref(&"group:default/team-3".parse().unwrap())
        .await
        .unwrap();
    assert!(owned.is_none(), "groups are only relation targets here");
    let svc = store
        .entity_by_ref(&"component:default/svc-3".parse().unwrap())
        .await
        .unwrap()
        .expect("svc-3 stays");
    assert!(
        svc.relations
            .contains(&("ownedBy".into(), "group:default/team-3".into()))
    );
    assert_eq!(tagged_grpc(&store).await, 10);
}

/// How many entities the filter `metadata.tags=grpc` finds.
async fn tagged_grpc(store: &Store) -> u64 {
    store
        .query_entities(&EntityQuery {
            filter: vec![vec![Filter {
                key: "metadata.tags".into(),
                values: vec!["grpc".into()],
            }]],
            ..EntityQuery::default()
        })
        .await
        .unwrap()
        .total
}

/// Registers a file location at `path` holding components `svc-<names>`.
async fn refresh_one_file(store: &Store, path: &str, names: std::ops::Range<usize>) {
    let location = store.add_location("file", path, None).await.unwrap();
    let files = [file(path, names)];
    store
        .apply_refresh(
            &location.id,
            &files,
            &[],
            &RefreshOutcome::Ok,
            OrphanPolicy::Delete,
            None,
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn the_token_migration_backfills_entities_stored_before_it() {
    let scratch = Scratch::new("backfill");
    let path = scratch.0.join("plinth.db");
    {
        let store = Store::open_sqlite(&path).await.unwrap();
        refresh_one_file(&store, "/x.yaml", 10..20).await;
        // Back to schema 2, as a store written before the token index.
        sqlx::raw_sql("DROP TABLE search_tokens; DELETE FROM plinth_migrations WHERE version = 3")
            .execute(&store.pool)
            .await
            .unwrap();
    }
    let store = Store::open_sqlite(&path).await.unwrap();
    // "17" is only inside the name svc-17: found through the token index.
    let hits = store.search("17", 10).await.unwrap();
    let refs: Vec<&str> = hits.iter().map(|h| h.entity.entity_ref.as_str()).collect();
    assert_eq!(refs, ["component:default/svc-17"]);
    assert_eq!(hits[0].score, search::NAME_PART);
}

async fn foreign_keys(store: &Store, table: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM pragma_foreign_key_list('{table}')"
    )))
    .fetch_one(&store.pool)
    .await
    .unwrap()
}

/// Rows of the three index tables.
async fn row_counts(store: &Store) -> [i64; 3] {
    let mut counts = [0; 3];
    for (n, table) in counts
        .iter_mut()
        .zip(["search", "relations", "search_tokens"])
    {
        *n = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
            .fetch_one(&store.pool)
            .await
            .unwrap();
    }
    counts
}

#[tokio::test]
async fn the_index_tables_lose_their_foreign_keys_and_keep_their_rows() {
    let scratch = Scratch::new("no-fk");
    let path = scratch.0.join("plinth.db");
    let facets = |store: Store| async move {
        store
            .facets(
                &["kind".into(), "spec.owner".into()],
                &EntityQuery::default(),
            )
            .await
            .unwrap()
    };
    let (before, facets_before) = {
        let store = Store::open_sqlite(&path).await.unwrap();
        refresh_one_file(&store, "/x.yaml", 0..20).await;
        // Back to schema 6: the tables with their foreign keys, and the
        // value as written on every row.
        sqlx::raw_sql(
            "CREATE TABLE s6 (entity_id INTEGER NOT NULL REFERENCES entities (id) ON DELETE CASCADE, key TEXT NOT NULL, value TEXT, original_value TEXT);
             INSERT INTO s6 SELECT entity_id, key, value, coalesce(original_value, value) FROM search;
             DROP TABLE search; ALTER TABLE s6 RENAME TO search;
             CREATE INDEX search_key_value ON search (key, value, entity_id);
             CREATE INDEX search_entity ON search (entity_id);
             CREATE TABLE r6 (origin_id INTEGER NOT NULL REFERENCES entities (id) ON DELETE CASCADE, source_ref TEXT NOT NULL, type TEXT NOT NULL, type_key TEXT NOT NULL, target_ref TEXT NOT NULL);
             INSERT INTO r6 SELECT * FROM relations; DROP TABLE relations; ALTER TABLE r6 RENAME TO relations;
             CREATE INDEX relations_origin ON relations (origin_id);
             CREATE INDEX relations_source ON relations (source_ref);
             CREATE INDEX relations_target ON relations (type_key, target_ref);
             CREATE TABLE t6 (token TEXT NOT NULL, entity_id INTEGER NOT NULL REFERENCES entities (id) ON DELETE CASCADE, weight INTEGER NOT NULL, PRIMARY KEY (token, entity_id)) WITHOUT ROWID;
             INSERT INTO t6 SELECT * FROM search_tokens; DROP TABLE search_tokens; ALTER TABLE t6 RENAME TO search_tokens;
             CREATE INDEX search_tokens_entity ON search_tokens (entity_id);
             DELETE FROM plinth_migrations WHERE version = 7",
        )
        .execute(&store.pool)
        .await
        .unwrap();
        assert_eq!(
            foreign_keys(&store, "search").await,
            1,
            "schema 6 as it was"
        );
        (row_counts(&store).await, facets(store.clone()).await)
    };
    let store = Store::open_sqlite(&path).await.unwrap();
    for table in ["search", "relations", "search_tokens"] {
        assert_eq!(foreign_keys(&store, table).await, 0, "{table}");
    }
    assert_eq!(row_counts(&store).await, before);
    assert_eq!(indexes(&store).await.len(), 6);
    assert_eq!(facets(store.clone()).await, facets_before);
    // Rows written from now on keep the value as written only where it differs.
    refresh_one_file(&store, "/y.yaml", 100..101).await;
    let kinds: Vec<(String, Option<String>)> = sqlx::query_as(
        "SELECT value, original_value FROM search WHERE key = 'kind' AND entity_id = (SELECT max(id) FROM entities)",
    )
    .fetch_all(&store.pool)
    .await
    .unwrap();
    assert_eq!(
        kinds,
        [("component".to_owned(), Some("Component".to_owned()))]
    );
    let names: Vec<(String, Option<String>)> = sqlx::query_as(
        "SELECT value, original_value FROM search WHERE key = 'metadata.name' AND entity_id = (SELECT max(id) FROM entities)",
    )
    .fetch_all(&store.pool)
    .await
    .unwrap();
    assert_eq!(names, [("svc-100".to_owned(), None)]);
    let facets_now = facets(store.clone()).await;
    assert_eq!(*facets_now[0].1, [("Component".to_owned(), 21)]);
}

crate::on_both_stores!(dialect => {
    /// A user's groups: the groups they are in and every parent above, one
    /// query however deep (a cycle in the tree ends it), fresh after each
    /// change of the catalog.
    async fn a_users_groups_include_their_parents() {
        let scratch = Scratch::new(&format!("groups-{dialect:?}"));
        let Some(db) = testing::TestDb::create(dialect, &scratch.0).await else {
            return;
        };
        let store = db.open().await;
        let location = store.add_location("file", "/org.yaml", None).await.unwrap();
        let r = |kind: &str, name: &str| EntityRef::new(kind, "default", name);
        let rel = |source: &EntityRef, relation, target: &EntityRef| Relation {
            source: source.clone(),
            relation,
            target: target.clone(),
        };
        use plinth_model::RelationType::{ChildOf, MemberOf};
        // Relations come from the body: it names their targets.
        let entity = |e: &EntityRef, relations: Vec<Relation>| {
            let targets: Vec<String> = relations.iter().map(|r| r.target.to_string()).collect();
            let body = json!({"apiVersion": "backstage.io/v1alpha1", "kind": e.kind(),
                              "metadata": {"name": e.name(), "namespace": "default"}, "spec": {"related": targets}});
            NewEntity::new(e.clone(), &body, relations)
        };
        let (ada, team, dept, org, guild) =
            (r("user", "ada"), r("group", "team"), r("group", "dept"), r("group", "org"), r("group", "guild"));
        let write = |entities: Vec<NewEntity>| {
            let store = store.clone();
            let id = location.id.clone();
            async move {
                let files = [FileUpdate { path: "/org.yaml".into(), hash: format!("{}", entities.len()), entities, ..FileUpdate::default() }];
                store.apply_refresh(&id, &files, &[], &RefreshOutcome::Ok, OrphanPolicy::Delete, None).await.unwrap();
            }
        };
        write(vec![
            entity(&ada, vec![rel(&ada, MemberOf, &team), rel(&ada, MemberOf, &guild)]),
            entity(&team, vec![rel(&team, ChildOf, &dept)]),
            entity(&dept, vec![rel(&dept, ChildOf, &org)]),
            // A cycle: the walk still ends.
            entity(&org, vec![rel(&org, ChildOf, &team)]),
        ])
        .await;
        let all = ["group:default/dept", "group:default/guild", "group:default/org", "group:default/team"];
        assert_eq!(store.groups_of(&ada).await.unwrap(), all);
        assert_eq!(store.groups_of(&r("user", "nobody")).await.unwrap(), Vec::<String>::new());
        // The tree changes: the answer follows at once.
        write(vec![
            entity(&ada, vec![rel(&ada, MemberOf, &team)]),
            entity(&team, vec![]),
        ])
        .await;
        assert_eq!(store.groups_of(&ada).await.unwrap(), ["group:default/team"]);
    }

    /// A refresh large enough to refresh PostgreSQL's statistics (outside
    /// its transaction) and SQLite's bulk path; both answer the same.
    async fn a_large_refresh_is_queryable_at_once() {
        let scratch = Scratch::new(&format!("large-{dialect:?}"));
        let Some(db) = testing::TestDb::create(dialect, &scratch.0).await else {
            return;
        };
        let store = db.open().await;
        let location = store.add_location("file", "/big.yaml", None).await.unwrap();
        let big = [file("/big.yaml", 0..6_000)];
        let summary = store
            .apply_refresh(&location.id, &big, &[], &RefreshOutcome::Ok, OrphanPolicy::Delete, None)
            .await
            .unwrap();
        assert_eq!(summary.added, 6_000);
        let page = store
            .query_entities(&EntityQuery {
                filter: vec![vec![
                    Filter {
                        key: "kind".into(),
                        values: vec!["component".into()],
                    },
                    Filter {
                        key: "relations.ownedby".into(),
                        values: vec!["group:default/team-3".into()],
                    },
                ]],
                limit: Some(5),
                ..EntityQuery::default()
            })
            .await
            .unwrap();
        assert_eq!(page.total, 857, "svc-i with i % 7 == 3 below 6,000");
        let names: Vec<&str> = page.entities.iter().map(|e| e.entity_ref.as_str()).collect();
        assert_eq!(
            names,
            [
                "component:default/svc-3",
                "component:default/svc-10",
                "component:default/svc-17",
                "component:default/svc-24",
                "component:default/svc-31"
            ]
        );
        store.close().await;
    }

    /// Text comes back as written whatever it holds: quotes, backslashes,
    /// escapes that are only text, control characters, any script. (On
    /// PostgreSQL the rows travel to the server as JSON.)
    async fn text_comes_back_as_written() {
        let scratch = Scratch::new(&format!("text-{dialect:?}"));
        let Some(db) = testing::TestDb::create(dialect, &scratch.0).await else {
            return;
        };
        let store = db.open().await;
        let location = store.add_location("file", "/odd.yaml", None).await.unwrap();
        let odd = "Quotes \" ' `, back\\slash, \\u0041 \\n, tab\t, line\nbreak, bell\u{7}, é 日本 🚀";
        let r = EntityRef::new("component", "default", "odd");
        let body = json!({
            "apiVersion": "backstage.io/v1alpha1",
            "kind": "Component",
            "metadata": {"name": "odd", "namespace": "default", "title": odd, "annotations": {"x.io/odd": odd}},
            "spec": {"type": "Service \"X\"", "owner": "group:default/team"},
        });
        let files = [FileUpdate {
            path: "/odd.yaml".into(),
            hash: "h".into(),
            entities: vec![NewEntity::new(r.clone(), &body, Vec::new())],
            ..FileUpdate::default()
        }];
        store
            .apply_refresh(&location.id, &files, &[], &RefreshOutcome::Ok, OrphanPolicy::Delete, None)
            .await
            .unwrap();
        let stored = store.entity_by_ref(&r).await.unwrap().unwrap();
        assert_eq!(stored.body, body);
        let facets = store
            .facets(&["spec.type".into(), "metadata.title".into()], &EntityQuery::default())
            .await
            .unwrap();
        assert_eq!(*facets[0].1, [("Service \"X\"".to_owned(), 1)]);
        assert_eq!(*facets[1].1, [(odd.to_owned(), 1)]);
        let found = store
            .query_entities(&EntityQuery {
                full_text: Some(("日本 🚀".into(), vec!["metadata.annotations.x.io/odd".into()])),
                ..EntityQuery::default()
            })
            .await
            .unwrap();
        assert_eq!(found.total, 1);
        store.close().await;
    }

    /// The full-text filter answered from the in-memory columns gives what
    /// the SQL scan gives (pages, totals, with filters and an order), and
    /// follows every change of the catalog.
    async fn full_text_follows_every_change_and_agrees_with_the_scan() {
        let scratch = Scratch::new(&format!("full-text-{dialect:?}"));
        let Some(db) = testing::TestDb::create(dialect, &scratch.0).await else {
            return;
        };
        let store = db.open().await;
        let location = store.add_location("file", "/a.yaml", None).await.unwrap();
        let refresh = |names: std::ops::Range<usize>| {
            let (store, id) = (store.clone(), location.id.clone());
            async move {
                store
                    .apply_refresh(&id, &[file("/a.yaml", names)], &[], &RefreshOutcome::Ok, OrphanPolicy::Delete, None)
                    .await
                    .unwrap();
            }
        };
        let names = |page: &QueryPage| -> Vec<String> {
            page.entities.iter().map(|e| e.body["metadata"]["name"].as_str().unwrap().to_owned()).collect()
        };
        let fields = vec!["metadata.name".to_owned(), "metadata.title".to_owned()];
        let queries = |term: &str| {
            let full_text = Some((term.to_owned(), fields.clone()));
            let kind = vec![vec![Filter { key: "kind".into(), values: vec!["component".into()] }]];
            let team = vec![vec![Filter { key: "spec.owner".into(), values: vec!["group:default/team-3".into()] }]];
            [
                EntityQuery { full_text: full_text.clone(), ..EntityQuery::default() },
                EntityQuery { full_text: full_text.clone(), filter: kind, limit: Some(5), offset: 2, ..EntityQuery::default() },
                EntityQuery { full_text: full_text.clone(), filter: team, ..EntityQuery::default() },
                EntityQuery {
                    full_text,
                    order: vec![OrderField { field: "metadata.name".into(), direction: SortDirection::Desc }],
                    limit: Some(4),
                    ..EntityQuery::default()
                },
            ]
        };
        let answers = |terms: &'static [&'static str]| {
            let store = store.clone();
            let queries = &queries;
            async move {
                // Counts are cached per catalog version: each run computes its own.
                store.cache.clear();
                let mut out = Vec::new();
                for term in terms {
                    for q in queries(term) {
                        let page = store.query_entities(&q).await.unwrap();
                        out.push((term.to_string(), names(&page), page.total));
                    }
                }
                out
            }
        };
        const TERMS: &[&str] = &["svc-1", "SVC-7", "vc-2", "-", "zzz", "c-59"];
        refresh(0..60).await;
        let columns = answers(TERMS).await;
        // Terms matching more than 5 entities tested entity by entity, as
        // terms of more than 50,000 matches are.
        store.text.max_ids.store(5, std::sync::atomic::Ordering::Relaxed);
        let version = store.version().await.unwrap();
        assert!(matches!(
            store.text_match(version, "svc-1", &fields).await.unwrap(),
            crate::text::TextMatch::Dense { count: 11, .. }
        ));
        assert_eq!(columns, answers(TERMS).await);
        store.text.max_ids.store(0, std::sync::atomic::Ordering::Relaxed);
        store.text.scan_only.store(true, std::sync::atomic::Ordering::Relaxed);
        assert_eq!(columns, answers(TERMS).await);
        store.text.scan_only.store(false, std::sync::atomic::Ordering::Relaxed);
        let version = store.version().await.unwrap();
        let crate::text::TextMatch::Ids(ids) = store.text_match(version, "svc-1", &fields).await.unwrap() else {
            panic!("the columns answer a term with few matches");
        };
        assert_eq!(ids.len(), 11);
        let first = &columns[0];
        assert_eq!(first.2, 11);
        assert_eq!(first.1[..3], ["svc-1", "svc-10", "svc-11"]);

        // svc-0 to svc-19 go, svc-60 to svc-79 come: the next answers are
        // the new catalog's.
        assert!(store.text.bytes() > 0);
        // Writes that leave the entities as they were keep the columns.
        let unchanged = [Unchanged { path: "/a.yaml".into(), stat: None }];
        store
            .apply_refresh(&location.id, &[], &unchanged, &RefreshOutcome::Ok, OrphanPolicy::Delete, None)
            .await
            .unwrap();
        store.add_location("file", "/b.yaml", None).await.unwrap();
        assert!(store.text.bytes() > 0, "nothing changed: the columns stay");
        refresh(20..80).await;
        assert_eq!(store.text.bytes(), 0, "a commit drops the columns");
        let columns = answers(TERMS).await;
        store.text.scan_only.store(true, std::sync::atomic::Ordering::Relaxed);
        assert_eq!(columns, answers(TERMS).await);
        let seven = &columns[4];
        assert_eq!(seven.2, 10);
        assert_eq!(seven.1, (70..80).map(|i| format!("svc-{i}")).collect::<Vec<_>>());
        assert_eq!(columns[0].2, 0, "svc-1 and svc-1x are gone");
        store.close().await;
    }

    /// Large entities are stored whole: three bodies of 7 MB in one refresh
    /// (on PostgreSQL more than one statement's worth of JSON).
    async fn large_bodies_are_stored_whole() {
        let scratch = Scratch::new(&format!("large-bodies-{dialect:?}"));
        let Some(db) = testing::TestDb::create(dialect, &scratch.0).await else {
            return;
        };
        let store = db.open().await;
        let location = store.add_location("file", "/big.yaml", None).await.unwrap();
        let bodies: Vec<(EntityRef, serde_json::Value)> = (0..3)
            .map(|i| {
                let r = EntityRef::new("api", "default", &format!("big-{i}"));
                let definition = format!("{i}\"\\").repeat(7 << 20 >> 2);
                let body = json!({
                    "apiVersion": "backstage.io/v1alpha1",
                    "kind": "API",
                    "metadata": {"name": r.name(), "namespace": "default"},
                    "spec": {"type": "openapi", "definition": definition},
                });
                (r, body)
            })
            .collect();
        let files = [FileUpdate {
            path: "/big.yaml".into(),
            hash: "h".into(),
            entities: bodies.iter().map(|(r, b)| NewEntity::new(r.clone(), b, Vec::new())).collect(),
            ..FileUpdate::default()
        }];
        store
            .apply_refresh(&location.id, &files, &[], &RefreshOutcome::Ok, OrphanPolicy::Delete, None)
            .await
            .unwrap();
        for (r, body) in &bodies {
            let stored = store.entity_by_ref(r).await.unwrap().unwrap();
            assert!(stored.body == *body, "{r} came back different");
        }
        store.close().await;
    }

    /// A job is held by one holder at a time; a lease that ran out goes to
    /// another, and the old holder's refresh is refused, writing nothing.
    async fn a_lost_lease_writes_nothing_and_the_new_holder_finishes() {
        let scratch = Scratch::new(&format!("leases-{dialect:?}"));
        let Some(db) = testing::TestDb::create(dialect, &scratch.0).await else {
            return;
        };
        let store = db.open().await;
        let location = store.add_location("file", "/x.yaml", None).await.unwrap();
        let now = now_ms();
        let claimed = store.claim_due_location("a", now, now + 1_000).await.unwrap();
        assert_eq!(claimed.map(|l| l.id), Some(location.id.clone()), "new locations are due");
        assert!(store.claim_due_location("b", now + 500, now + 1_500).await.unwrap().is_none());
        assert!(store.renew_lease(&location.id, "a", now + 2_000).await.unwrap());

        // a stops renewing; after its lease, b takes the job.
        let later = now + 2_001;
        let taken = store.claim_due_location("b", later, later + 1_000).await.unwrap();
        assert_eq!(taken.map(|l| l.id), Some(location.id.clone()));
        assert!(!store.renew_lease(&location.id, "a", later + 5_000).await.unwrap());
        let files = [file("/x.yaml", 0..3)];
        let refresh = |holder: &str| {
            let lease = Lease {
                holder: holder.into(),
                interval_ms: 60_000,
                ..Lease::default()
            };
            let (store, id, files) = (store.clone(), location.id.clone(), files.clone());
            async move {
                let result = store
                    .apply_refresh(&id, &files, &[], &RefreshOutcome::Ok, OrphanPolicy::Delete, Some(&lease))
                    .await;
                (result, lease.writing.load(std::sync::atomic::Ordering::Relaxed))
            }
        };
        let (lost, writing) = refresh("a").await;
        assert!(matches!(lost, Err(StoreError::LeaseLost(_))));
        assert!(!writing, "a lost lease never reaches writing");
        assert_eq!(store.entity_count().await.unwrap(), 0, "a wrote nothing");
        let (done, writing) = refresh("b").await;
        assert_eq!(done.unwrap().added, 3);
        assert!(writing, "the holder is told its job is its own: renewals stop");
        assert!(store.leases().await.unwrap().is_empty(), "the job ended");
        assert!(
            store.claim_due_location("c", later, later + 1_000).await.unwrap().is_none(),
            "due again only an interval later"
        );
        store.close().await;
    }

    /// The home page's figures: problems, owners not in the catalog and the
    /// newest changes, each up to date after every refresh.
    async fn the_overview_follows_every_refresh() {
        let scratch = Scratch::new(&format!("overview-{dialect:?}"));
        let Some(db) = testing::TestDb::create(dialect, &scratch.0).await else {
            return;
        };
        let store = db.open().await;
        let location = store.add_location("file", "/a.yaml", None).await.unwrap();
        let refresh = |files: Vec<FileUpdate>| {
            let (store, id) = (store.clone(), location.id.clone());
            async move {
                store
                    .apply_refresh(&id, &files, &[], &RefreshOutcome::Ok, OrphanPolicy::Delete, None)
                    .await
                    .unwrap()
            }
        };
        refresh(vec![file("/a.yaml", 0..20)]).await;
        let health = store.health().await.unwrap();
        assert_eq!(health.with_problems, 0);
        assert_eq!(health.without_owner(), 20);
        assert_eq!(health.missing_owners.len(), 7);

        // Three of the seven owners appear; one entity's new version is invalid.
        let groups: Vec<NewEntity> = (0..3)
            .map(|i| {
                let name = format!("team-{i}");
                NewEntity::new(
                    EntityRef::new("group", "default", &name),
                    &json!({"apiVersion": "backstage.io/v1alpha1", "kind": "Group",
                            "metadata": {"name": name, "namespace": "default"}, "spec": {"type": "team"}}),
                    Vec::new(),
                )
            })
            .collect();
        let mut a = file("/a.yaml", 0..20);
        a.entities.retain(|e| e.entity_ref.name() != "svc-1");
        a.invalid = vec![(
            EntityRef::new("component", "default", "svc-1"),
            vec![json!({"type": "plinth.io/invalid", "level": "error", "message": "spec.owner: missing"})],
        )];
        let g = FileUpdate {
            path: "/groups.yaml".into(),
            hash: "g".into(),
            entities: groups,
            ..FileUpdate::default()
        };
        refresh(vec![a, g]).await;
        let health = store.health().await.unwrap();
        assert_eq!(health.with_problems, 1);
        assert_eq!(
            health.missing_owners,
            vec![
                ("group:default/team-3".to_owned(), 3),
                ("group:default/team-4".to_owned(), 3),
                ("group:default/team-5".to_owned(), 3),
                ("group:default/team-6".to_owned(), 2),
            ]
        );
        let problems = store.entities_with_problems(10).await.unwrap();
        let refs: Vec<&str> = problems.iter().map(|e| e.entity_ref.as_str()).collect();
        assert_eq!(refs, ["component:default/svc-1"]);
        let recent = store.recently_changed(3).await.unwrap();
        let refs: Vec<&str> = recent.iter().map(|e| e.entity_ref.as_str()).collect();
        assert_eq!(refs, ["group:default/team-2", "group:default/team-1", "group:default/team-0"]);
        assert_eq!(store.location_entity_count(&location.id).await.unwrap(), 23);
        // Pickers' values: over the catalog, or among entities of some kinds.
        let values = |key: &'static str, kinds: &'static [&'static str]| {
            let store = store.clone();
            async move {
                let kinds: Vec<String> = kinds.iter().map(|k| k.to_string()).collect();
                store.facet_values(key, &kinds).await.unwrap()
            }
        };
        let counted = |pairs: &[(&str, u64)]| -> Vec<(String, u64)> {
            pairs.iter().map(|(v, n)| (v.to_string(), *n)).collect()
        };
        assert_eq!(values("kind", &[]).await, counted(&[("component", 20), ("group", 3)]));
        assert_eq!(values("spec.type", &["group"]).await, counted(&[("team", 3)]));
        assert_eq!(values("spec.type", &["component"]).await, counted(&[("service", 20)]));
        assert_eq!(values("relations.ownedby", &["group"]).await, counted(&[]));
        let owners = values("relations.ownedby", &["component"]).await;
        assert_eq!(owners.len(), 7);
        assert_eq!(owners[6], ("group:default/team-6".to_owned(), 2));
        assert_eq!(values("relations.ownedby", &[]).await, owners);
        store.close().await;
    }

    /// Ordering by a key walks its index: an entity sorts by its smallest
    /// value, those without the key come last, ties and the rest in stored
    /// order; pages join up across that boundary, both ways.
    async fn ordered_pages_join_up_across_missing_and_several_values() {
        let scratch = Scratch::new(&format!("order-{dialect:?}"));
        let Some(db) = testing::TestDb::create(dialect, &scratch.0).await else {
            return;
        };
        let store = db.open().await;
        let location = store.add_location("file", "/o.yaml", None).await.unwrap();
        let tags: [&[&str]; 8] = [&["m"], &[], &["z", "b"], &["b"], &[], &["a", "y"], &["m"], &["c"]];
        let entities: Vec<NewEntity> = tags
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let name = format!("e{i}");
                let mut metadata = json!({"name": name, "namespace": "default"});
                if !t.is_empty() {
                    metadata["tags"] = json!(t);
                }
                NewEntity::new(
                    EntityRef::new("component", "default", &name),
                    &json!({"apiVersion": "backstage.io/v1alpha1", "kind": "Component", "metadata": metadata,
                            "spec": {"type": "service", "lifecycle": "production", "owner": "group:default/t"}}),
                    Vec::new(),
                )
            })
            .collect();
        let update = FileUpdate {
            path: "/o.yaml".into(),
            hash: "o".into(),
            entities,
            ..FileUpdate::default()
        };
        store
            .apply_refresh(&location.id, &[update], &[], &RefreshOutcome::Ok, OrphanPolicy::Delete, None)
            .await
            .unwrap();
        let pages = |direction: SortDirection| {
            let store = store.clone();
            async move {
                let mut names = Vec::new();
                for page in 0..4 {
                    let q = EntityQuery {
                        order: vec![OrderField { field: "metadata.tags".into(), direction }],
                        offset: page * 3,
                        limit: Some(3),
                        ..EntityQuery::default()
                    };
                    let found = store.query_entities(&q).await.unwrap();
                    assert_eq!(found.total, 8);
                    names.extend(found.entities.iter().map(|e| e.body["metadata"]["name"].as_str().unwrap().to_owned()));
                }
                names
            }
        };
        // Smallest values: e0 m, e2 b, e3 b, e5 a, e6 m, e7 c; e1 and e4 have none.
        assert_eq!(pages(SortDirection::Asc).await, ["e5", "e2", "e3", "e7", "e0", "e6", "e1", "e4"]);
        assert_eq!(pages(SortDirection::Desc).await, ["e0", "e6", "e7", "e2", "e3", "e5", "e1", "e4"]);
        // With a filter, and a page that starts among those without the key.
        let q = EntityQuery {
            filter: vec![vec![Filter { key: "spec.type".into(), values: vec!["service".into()] }]],
            order: vec![OrderField { field: "metadata.tags".into(), direction: SortDirection::Asc }],
            offset: 7,
            limit: Some(5),
            ..EntityQuery::default()
        };
        let found = store.query_entities(&q).await.unwrap();
        let names: Vec<&str> = found.entities.iter().map(|e| e.body["metadata"]["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["e4"]);
        // An entity with two of the values asked for comes once.
        let q = EntityQuery {
            filter: vec![vec![Filter { key: "metadata.tags".into(), values: vec!["z".into(), "b".into()] }]],
            ..EntityQuery::default()
        };
        let found = store.query_entities(&q).await.unwrap();
        let names: Vec<&str> = found.entities.iter().map(|e| e.body["metadata"]["name"].as_str().unwrap()).collect();
        assert_eq!((found.total, names), (2, vec!["e2", "e3"]));
        store.close().await;
    }

    /// A batch that fails after some of its rows went in (here: the words'
    /// table is gone, after the entity, relation and search rows) leaves
    /// nothing that a later `finish` could commit.
    async fn a_refresh_commits_nothing_after_a_failed_write() {
        let scratch = Scratch::new(&format!("failed-write-{dialect:?}"));
        let Some(db) = testing::TestDb::create(dialect, &scratch.0).await else {
            return;
        };
        let store = db.open().await;
        let location = store.add_location("file", "/a.yaml", None).await.unwrap();
        sqlx::query("DROP TABLE search_tokens").execute(&store.pool).await.unwrap();
        let mut writer = store.refresh_writer(&location.id, OrphanPolicy::Delete, None);
        let files = [file("/a.yaml", 0..3)];
        assert!(writer.write(&files, &[]).await.is_err());
        let again = writer.write(&files, &[]).await;
        assert!(matches!(again, Err(StoreError::RefreshFailed(_))), "{again:?}");
        let finished = writer.finish(&RefreshOutcome::Ok).await;
        assert!(matches!(finished, Err(StoreError::RefreshFailed(_))), "{finished:?}");
        let entities: i64 = sqlx::query_scalar("SELECT count(*) FROM entities")
            .fetch_one(&store.pool)
            .await
            .unwrap();
        let refreshed: Option<String> = sqlx::query_scalar("SELECT refreshed_at FROM locations")
            .fetch_one(&store.pool)
            .await
            .unwrap();
        assert_eq!((entities, refreshed), (0, None));
        store.close().await;
    }

    /// Multi-row inserts on SQLite are `INSERT OR FAIL` (no statement
    /// journal): a row that breaks a constraint must still fail the
    /// statement, and the transaction it was in then leaves nothing.
    async fn a_row_breaking_a_constraint_fails_its_insert() {
        let scratch = Scratch::new(&format!("or-fail-{dialect:?}"));
        let Some(db) = testing::TestDb::create(dialect, &scratch.0).await else {
            return;
        };
        let store = db.open().await;
        a_duplicate_row_fails(&store).await;
        store.close().await;
    }
});

/// The API shape is written straight from the stored parts: the body's
/// keys keep their order, what the store owns (`uid`, `etag`, `relations`,
/// `status` when it has items) replaces the body's own in place or follows.
#[test]
fn the_api_shape_keeps_the_body_order_and_replaces_what_the_store_owns() {
    let mut e = StoredEntity {
        uid: "u-1".into(),
        entity_ref: "component:default/a".into(),
        etag: "e-1".into(),
        generation: 1,
        location_id: "l".into(),
        file: "f".into(),
        body: json!({
            "kind": "Component",
            "metadata": {"name": "a", "uid": "stale", "namespace": "default"},
            "relations": [{"type": "stale", "targetRef": "x"}],
            "status": {"kept": true},
            "spec": {"owner": "t"},
        }),
        relations: vec![("ownedBy".into(), "group:default/t".into())],
        status: Vec::new(),
    };
    assert_eq!(
        serde_json::to_string(&e.api()).unwrap(),
        r#"{"kind":"Component","metadata":{"name":"a","uid":"u-1","namespace":"default","etag":"e-1"},"relations":[{"type":"ownedBy","targetRef":"group:default/t"}],"status":{"kept":true},"spec":{"owner":"t"}}"#
    );
    e.status.push(json!({"type": "t", "level": "warning"}));
    assert_eq!(
        serde_json::to_string(&e.api()).unwrap(),
        r#"{"kind":"Component","metadata":{"name":"a","uid":"u-1","namespace":"default","etag":"e-1"},"relations":[{"type":"ownedBy","targetRef":"group:default/t"}],"status":{"items":[{"type":"t","level":"warning"}]},"spec":{"owner":"t"}}"#
    );
    e.body = json!({"kind": "Component", "metadata": {"name": "a"}});
    assert_eq!(
        serde_json::to_string(&e.api()).unwrap(),
        r#"{"kind":"Component","metadata":{"name":"a","uid":"u-1","etag":"e-1"},"relations":[{"type":"ownedBy","targetRef":"group:default/t"}],"status":{"items":[{"type":"t","level":"warning"}]}}"#
    );
    assert_eq!(
        e.to_api_json(),
        serde_json::from_str::<Value>(&serde_json::to_string(&e.api()).unwrap()).unwrap()
    );
}

#[tokio::test]
async fn a_row_breaking_a_constraint_fails_its_insert_in_memory() {
    a_duplicate_row_fails(&Store::open_in_memory().await.unwrap()).await;
}

/// The third row repeats the first's key in the same statement.
async fn a_duplicate_row_fails(store: &Store) {
    let rows = [("a", 1), ("b", 1), ("a", 1)].map(|(t, id)| {
        [
            write::Param::Text(Some(t)),
            write::Param::Int(id),
            write::Param::Int(4),
        ]
    });
    let mut tx = store.begin_refresh_write().await.unwrap();
    let result = write::insert_rows(
        &mut tx.conn(),
        store.dialect,
        "search_tokens (token, entity_id, weight)",
        &rows,
    )
    .await;
    let error = result
        .expect_err("a duplicate key must fail the insert")
        .to_string();
    assert!(
        error.contains("UNIQUE constraint failed") || error.contains("duplicate key"),
        "{error}"
    );
    drop(tx);
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM search_tokens")
        .fetch_one(&store.pool)
        .await
        .unwrap();
    assert_eq!(count, 0);
}

async fn journal_mode(store: &Store) -> String {
    sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&store.pool)
        .await
        .unwrap()
}

async fn entity_refs(store: &Store) -> Vec<String> {
    sqlx::query_scalar("SELECT ref FROM entities ORDER BY ref")
        .fetch_all(&store.pool)
        .await
        .unwrap()
}

fn files_in(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// A first load is written beside the store with a rollback journal and put
/// in place whole; the store then opens in WAL mode holding it. What a
/// killed load left beside the store does not reach the new one.
#[tokio::test]
async fn a_first_load_is_put_in_place_whole() {
    let scratch = Scratch::new("first-load");
    let path = scratch.0.join("plinth.db");
    std::fs::write(
        scratch.0.join("plinth.db.loading"),
        b"left by a killed load",
    )
    .unwrap();
    std::fs::write(
        scratch.0.join("plinth.db.loading-journal"),
        b"and its journal",
    )
    .unwrap();

    let load = FirstLoad::begin(&path)
        .await
        .unwrap()
        .expect("no store yet");
    assert!(
        FirstLoad::begin(&path).await.unwrap().is_none(),
        "one first load at a time"
    );
    assert_eq!(journal_mode(load.store()).await, "delete");
    refresh_one_file(load.store(), "/a.yaml", 0..50).await;
    assert!(!path.exists(), "the store appears only when put in place");
    assert!(load.install().await.unwrap());
    assert_eq!(
        files_in(&scratch.0),
        ["plinth.db", "plinth.db.loading.lock"]
    );

    let store = Store::open_sqlite(&path).await.unwrap();
    assert_eq!(journal_mode(&store).await, "wal");
    assert_eq!(entity_refs(&store).await.len(), 50);
    assert_eq!(tagged_grpc(&store).await, 50, "the loaded index answers");
    store.close().await;
    assert!(
        FirstLoad::begin(&path).await.unwrap().is_none(),
        "a store exists"
    );
}

/// A store another process made while a first load ran is kept and the
/// load dropped; a load given up leaves nothing.
#[tokio::test]
async fn a_first_load_never_replaces_a_store() {
    let scratch = Scratch::new("first-load-race");
    let path = scratch.0.join("plinth.db");
    let load = FirstLoad::begin(&path)
        .await
        .unwrap()
        .expect("no store yet");
    refresh_one_file(load.store(), "/a.yaml", 0..5).await;
    let other = Store::open_sqlite(&path).await.unwrap();
    refresh_one_file(&other, "/b.yaml", 10..12).await;
    other.close().await;
    assert!(!load.install().await.unwrap(), "the other store stays");
    let store = Store::open_sqlite(&path).await.unwrap();
    assert_eq!(
        entity_refs(&store).await,
        ["component:default/svc-10", "component:default/svc-11"]
    );
    store.close().await;
    assert!(!scratch.0.join("plinth.db.loading").exists());

    let elsewhere = scratch.0.join("other.db");
    let load = FirstLoad::begin(&elsewhere)
        .await
        .unwrap()
        .expect("no store yet");
    refresh_one_file(load.store(), "/a.yaml", 0..5).await;
    load.discard().await;
    assert!(!elsewhere.exists() && !scratch.0.join("other.db.loading").exists());
}

/// After a write that grew the WAL past 64 MiB, the first write after a
/// complete checkpoint cuts it back (SQLite otherwise keeps it at its
/// largest for as long as the store is open).
#[tokio::test]
async fn the_wal_shrinks_after_a_checkpoint() {
    let scratch = Scratch::new("wal-limit");
    let path = scratch.0.join("plinth.db");
    let store = Store::open_sqlite(&path).await.unwrap();
    let wal = || {
        std::fs::metadata(scratch.0.join("plinth.db-wal"))
            .unwrap()
            .len()
    };
    for statement in [
        "CREATE TABLE ballast (b BLOB)",
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 70)
         INSERT INTO ballast SELECT randomblob(1048576) FROM n",
    ] {
        sqlx::query(statement).execute(&store.pool).await.unwrap();
    }
    assert!(wal() > 64 << 20, "the WAL grew: {} bytes", wal());
    sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
        .execute(&store.pool)
        .await
        .unwrap();
    sqlx::query("DELETE FROM ballast")
        .execute(&store.pool)
        .await
        .unwrap();
    assert!(wal() <= 64 << 20, "the WAL kept {} bytes", wal());
    store.close().await;
}
