use serde_json::json;

use super::*;
use crate::testing::TestDb;

/// A store in a scratch directory, removed on drop.
struct Fixture {
    store: Store,
    _db: TestDb,
    dir: std::path::PathBuf,
}

impl Fixture {
    async fn new(dialect: crate::Dialect, name: &str) -> Option<Fixture> {
        let dir = std::env::temp_dir().join(format!(
            "plinth-access-{name}-{dialect:?}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let db = TestDb::create(dialect, &dir).await?;
        Some(Fixture {
            store: db.open().await,
            _db: db,
            dir,
        })
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn new_token(name: &str, subject: &str, digest: &str, expires_at: Option<String>) -> NewToken {
    NewToken {
        name: name.into(),
        subject: subject.into(),
        role: None,
        scope: "read".into(),
        digest: digest.into(),
        created_by: subject.into(),
        expires_at,
    }
}

fn entry(actor: &str, action: &str, target: &str) -> AuditEntry {
    AuditEntry {
        actor: actor.into(),
        action: action.into(),
        target: target.into(),
        source: "127.0.0.1".into(),
        before: None,
        after: Some(json!({"target": target})),
    }
}

crate::on_both_stores!(dialect => {
    async fn tokens_are_found_by_digest_until_revoked_or_expired() {
        let Some(f) = Fixture::new(dialect, "tokens").await else {
            return;
        };
        let s = &f.store;
        let ada = s.create_token(&new_token("laptop", "user:default/ada", "d1", None), None).await.unwrap();
        assert_eq!((ada.scope.as_str(), ada.revoked_at.as_deref()), ("read", None));
        let later = crate::timestamp(std::time::SystemTime::now() + std::time::Duration::from_secs(3600));
        let ci = s
            .create_token(&NewToken {
                role: Some("developer".into()),
                ..new_token("ci", "service:ci", "d2", Some(later))
            }, None)
            .await
            .unwrap();
        let past = crate::timestamp(std::time::SystemTime::now() - std::time::Duration::from_secs(1));
        s.create_token(&new_token("old", "user:default/ada", "d3", Some(past)), None).await.unwrap();

        let found = s.token_by_digest("d1").await.unwrap().unwrap();
        assert_eq!(found.id, ada.id);
        // Its use is noted (once a minute at most, in the background).
        let mut noted = None;
        for _ in 0..100 {
            noted = s.token(&ada.id).await.unwrap().unwrap().last_used_at;
            if noted.is_some() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert!(noted.is_some(), "the use is noted");
        assert_eq!(s.token_by_digest("d2").await.unwrap().unwrap().role.as_deref(), Some("developer"));
        assert_eq!(s.token_by_digest("d3").await.unwrap(), None, "expired");
        assert_eq!(s.token_by_digest("nope").await.unwrap(), None);

        let mine: Vec<String> = s.tokens(Some("user:default/ada")).await.unwrap().into_iter().map(|t| t.name).collect();
        assert_eq!(mine.len(), 2);
        assert!(mine.contains(&"laptop".to_owned()) && mine.contains(&"old".to_owned()));
        assert_eq!(s.tokens(None).await.unwrap().len(), 3);

        let revoked = s.revoke_token(&ci.id, None).await.unwrap().unwrap();
        let when = revoked.revoked_at.clone().unwrap();
        assert_eq!(s.token_by_digest("d2").await.unwrap(), None, "revoked");
        let again = s.revoke_token(&ci.id, None).await.unwrap().unwrap();
        assert_eq!(again.revoked_at.as_deref(), Some(when.as_str()), "the first revocation stands");
        assert_eq!(s.revoke_token("no-such-token", None).await.unwrap(), None);
    }

    async fn the_audit_log_is_filtered_paged_and_append_only() {
        let Some(f) = Fixture::new(dialect, "audit").await else {
            return;
        };
        let s = &f.store;
        let mut c = s.pool.acquire().await.unwrap();
        let conn = &mut Conn::Any(&mut c);
        let first = append(conn, s.dialect, &entry("user:default/ada", "location.create", "loc-1")).await.unwrap();
        append(conn, s.dialect, &AuditEntry {
            before: Some(json!({"kind": "Component", "metadata": {"name": "svc"}})),
            after: None,
            ..entry("local", "entity.delete", "component:default/svc")
        })
        .await
        .unwrap();
        let third = append(conn, s.dialect, &entry("user:default/ada", "location.delete", "loc-1")).await.unwrap();
        assert!(first < third);
        drop(c);

        let all = s.audit(&AuditQuery { limit: 10, ..AuditQuery::default() }).await.unwrap();
        let actions: Vec<&str> = all.iter().map(|e| e.action.as_str()).collect();
        assert_eq!(actions, ["location.delete", "entity.delete", "location.create"], "newest first");
        assert_eq!(all[1].before.as_ref().unwrap()["metadata"]["name"], "svc");
        assert_eq!(all[1].after, None);
        assert_eq!(all[0].source, "127.0.0.1");

        let ada = s
            .audit(&AuditQuery { actor: Some("user:default/ada".into()), limit: 10, ..AuditQuery::default() })
            .await
            .unwrap();
        assert_eq!(ada.len(), 2);
        let deletes = s
            .audit(&AuditQuery { action: Some("entity.delete".into()), limit: 10, ..AuditQuery::default() })
            .await
            .unwrap();
        assert_eq!(deletes[0].target, "component:default/svc");
        let on_loc = s
            .audit(&AuditQuery { target: Some("loc-1".into()), limit: 10, ..AuditQuery::default() })
            .await
            .unwrap();
        assert_eq!(on_loc.len(), 2);
        // Pages: a cursor is the last id seen.
        let page = s.audit(&AuditQuery { limit: 2, ..AuditQuery::default() }).await.unwrap();
        let next = s
            .audit(&AuditQuery { before_id: Some(page[1].id), limit: 2, ..AuditQuery::default() })
            .await
            .unwrap();
        assert_eq!(next.iter().map(|e| e.id).collect::<Vec<_>>(), [first]);
        let future = crate::timestamp(std::time::SystemTime::now() + std::time::Duration::from_secs(60));
        let none = s
            .audit(&AuditQuery { since: Some(future), limit: 10, ..AuditQuery::default() })
            .await
            .unwrap();
        assert!(none.is_empty());

        // Nothing changes or removes an entry, not even SQL of the store's own.
        for statement in ["UPDATE audit_log SET actor = 'someone else'", "DELETE FROM audit_log"] {
            let refused = sqlx::query(statement).execute(&s.pool).await.unwrap_err();
            assert!(refused.to_string().contains("append-only"), "{refused}");
        }
        assert_eq!(s.audit(&AuditQuery { limit: 10, ..AuditQuery::default() }).await.unwrap(), all);
    }
    async fn accounts_sessions_and_failures_are_kept_and_forgotten() {
        let Some(f) = Fixture::new(dialect, "sign-in").await else {
            return;
        };
        let s = &f.store;
        assert_eq!(s.account_count().await.unwrap(), 0);
        let ada = crate::Account {
            name: "ada".into(),
            user_ref: "user:default/ada".into(),
            role: None,
            password_hash: "$argon2id$...".into(),
        };
        s.create_account(&ada).await.unwrap();
        let taken = s.create_account(&ada).await.unwrap_err();
        assert!(matches!(taken, StoreError::AccountExists(ref n) if n == "ada"), "{taken}");
        assert_eq!(s.account("ada").await.unwrap(), Some(ada.clone()));
        assert_eq!(s.account("bob").await.unwrap(), None);

        s.create_session("ended", "ada", "c0", std::time::Duration::ZERO, None).await.unwrap();
        assert_eq!(s.session("ended").await.unwrap(), None, "an ended session is no session");
        s.create_session("live", "ada", "c1", std::time::Duration::from_secs(60), None).await.unwrap();
        let live = s.session("live").await.unwrap().unwrap();
        assert_eq!((live.account, live.csrf.as_str()), (ada, "c1"));
        let kept: i64 = sqlx::query_scalar("SELECT count(*) FROM sessions").fetch_one(&s.pool).await.unwrap();
        assert_eq!(kept, 1, "starting a session forgets ended ones");
        s.delete_session("live").await.unwrap();
        assert_eq!(s.session("live").await.unwrap(), None);

        // A provider's account follows the User it matched last, and has no password.
        s.provider_account("oidc:248289", "user:default/ada").await.unwrap();
        s.provider_account("oidc:248289", "user:default/ada.lovelace").await.unwrap();
        let account = s.account("oidc:248289").await.unwrap().unwrap();
        assert_eq!((account.user_ref.as_str(), account.password_hash.as_str(), account.role), ("user:default/ada.lovelace", "", None));

        let now = std::time::SystemTime::now();
        let hour = std::time::Duration::from_secs(3600);
        for _ in 0..3 {
            s.record_sign_in_failure("ada", "127.0.0.1", now - hour).await.unwrap();
        }
        let (n, first) = s.sign_in_failures("ada", now - hour).await.unwrap();
        assert_eq!(n, 3);
        assert!(first.is_some());
        assert_eq!(s.sign_in_failures("bob", now - hour).await.unwrap().0, 0);
        // Forgetting everything before a moment from now leaves only the newest.
        s.record_sign_in_failure("ada", "127.0.0.1", now + std::time::Duration::from_secs(1)).await.unwrap();
        let left: i64 = sqlx::query_scalar("SELECT count(*) FROM sign_in_failures").fetch_one(&s.pool).await.unwrap();
        assert_eq!(left, 1);
    }
    async fn a_change_commits_only_with_its_audit_entry() {
        let Some(f) = Fixture::new(dialect, "audited").await else {
            return;
        };
        let s = &f.store;
        let entry = |action: &str, target: &str| AuditEntry {
            actor: "user:default/ada".into(),
            action: action.into(),
            target: target.into(),
            source: "127.0.0.1".into(),
            before: None,
            after: None,
        };
        let actions = || async {
            let all = s.audit(&AuditQuery { limit: 100, ..AuditQuery::default() }).await.unwrap();
            all.iter().map(|e| (e.action.clone(), e.target.clone())).collect::<Vec<_>>()
        };
        // The entry is made from what the change made, and kept with it.
        let made = |l: &crate::Location| entry("location.create", &l.id);
        let location = s.add_location("file", "/catalog/a.yaml", Some(&made)).await.unwrap();
        assert_eq!(actions().await, [("location.create".to_owned(), location.id.clone())]);
        let moved = |l: &crate::Location| AuditEntry { after: Some(json!({"target": l.target})), ..entry("location.update", &l.id) };
        s.update_location(&location.id, "file", "/catalog/b.yaml", Some(&moved)).await.unwrap();
        let log = s.audit(&AuditQuery { limit: 1, ..AuditQuery::default() }).await.unwrap();
        assert_eq!(log[0].after, Some(json!({"target": "/catalog/b.yaml"})));
        // An entry that cannot be made (here: a panic while making it)
        // leaves no change behind: the change and its entry are one
        // transaction.
        for attempt in 0..4 {
            let store = s.clone();
            let id = location.id.clone();
            let failed = tokio::spawn(async move {
                let fails = |_: &()| -> AuditEntry { panic!("no entry") };
                let fails_for = |_: &crate::Location| -> AuditEntry { panic!("no entry") };
                let fails_token = |_: &TokenRecord| -> AuditEntry { panic!("no entry") };
                match attempt {
                    0 => drop(store.add_location("file", "/catalog/c.yaml", Some(&fails_for)).await),
                    1 => drop(store.delete_location(&id, Some(&fails)).await),
                    2 => drop(store.update_location(&id, "file", "/catalog/d.yaml", Some(&fails_for)).await),
                    _ => drop(store.create_token(&NewToken {
                        name: "ci".into(), subject: "service:ci".into(), role: None, scope: "read".into(),
                        digest: "d".repeat(64), created_by: "local".into(), expires_at: None,
                    }, Some(&fails_token)).await),
                }
            })
            .await;
            assert!(failed.is_err(), "attempt {attempt} panicked");
        }
        let locations: Vec<String> = s.locations().await.unwrap().into_iter().map(|l| l.target).collect();
        assert_eq!(locations, ["/catalog/b.yaml"], "no change without its entry");
        assert!(s.tokens(None).await.unwrap().is_empty());
        assert_eq!(actions().await.len(), 2, "no entry without its change");
        let gone = |_: &()| entry("location.delete", &location.id);
        assert!(s.delete_location(&location.id, Some(&gone)).await.unwrap());
        assert_eq!(actions().await[0], ("location.delete".to_owned(), location.id.clone()));
    }
});
