//! Access over HTTP: every route with one allowed and one refused call, a
//! token never doing more than its scope, and the audit log recording
//! every mutating route. The server requires tokens (no anonymous
//! callers); roles come from the example organisation's groups.

mod common;

use common::{Reply, TestApp};
use plinth_access::token::Secret;
use plinth_server::access::AccessConfig;
use plinth_store::{Dialect, NewToken};
use serde_json::{Value, json};

/// The callers of these tests, each with a token.
struct Callers {
    /// ines.moreau, platform-team: a platform admin.
    admin: String,
    admin_read: String,
    admin_write: String,
    /// amara.nwosu, checkout-team: a developer.
    amara: String,
    amara_read: String,
    amara_admin: String,
    /// priya.raman, payments-team: a developer.
    priya: String,
    /// maria.lopez: a viewer.
    maria: String,
}

async fn token(app: &TestApp, subject: &str, scope: &str) -> String {
    let secret = Secret::generate().unwrap();
    app.store
        .create_token(
            &NewToken {
                name: format!("{subject} {scope}"),
                subject: subject.into(),
                role: None,
                scope: scope.into(),
                digest: secret.digest(),
                created_by: "local".into(),
                expires_at: None,
            },
            None,
        )
        .await
        .unwrap();
    secret.expose().to_owned()
}

async fn spawn(dialect: Dialect) -> Option<(TestApp, Callers)> {
    let access = AccessConfig {
        anonymous: false,
        platform_admins: vec!["group:default/platform-team".parse().unwrap()],
        viewers: vec!["user:default/maria.lopez".parse().unwrap()],
        sign_in: plinth_server::access::SignIn::Off,
    };
    let app = TestApp::spawn_with(dialect, access).await?;
    let callers = Callers {
        admin: token(&app, "user:default/ines.moreau", "admin").await,
        admin_read: token(&app, "user:default/ines.moreau", "read").await,
        admin_write: token(&app, "user:default/ines.moreau", "write").await,
        amara: token(&app, "user:default/amara.nwosu", "write").await,
        amara_read: token(&app, "user:default/amara.nwosu", "read").await,
        amara_admin: token(&app, "user:default/amara.nwosu", "admin").await,
        priya: token(&app, "user:default/priya.raman", "write").await,
        maria: token(&app, "user:default/maria.lopez", "write").await,
    };
    // A location of checkout-team's alone, for the ownership rules.
    app.write(
        "checkout-extra.yaml",
        "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: checkout-extra\nspec:\n  type: service\n  lifecycle: experimental\n  owner: checkout-team\n",
    );
    Some((app, callers))
}

fn extra(app: &TestApp) -> Value {
    json!({"type": "file", "target": app.dir.join("catalog/checkout-extra.yaml").display().to_string()})
}

async fn uid_of(app: &TestApp, token: &str, name: &str) -> String {
    let r = app
        .request_as(
            Some(token),
            "GET",
            &format!("/api/catalog/entities/by-name/component/default/{name}"),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["metadata"]["uid"].as_str().unwrap().to_owned()
}

async fn location_of(app: &TestApp, token: &str, name: &str) -> String {
    let r = app
        .request_as(
            Some(token),
            "GET",
            &format!("/api/catalog/locations/by-entity/component/default/{name}"),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["id"].as_str().unwrap().to_owned()
}

#[track_caller]
fn expect(reply: &Reply, status: u16, what: &str) {
    assert_eq!(reply.status, status, "{what}: {}", reply.body);
    if status == 401 || status == 403 {
        let name = if status == 401 {
            "AuthenticationError"
        } else {
            "NotAllowedError"
        };
        assert_eq!(reply.body["error"]["name"], name, "{what}: {}", reply.body);
    }
}

/// POST routes that only read.
const READING_POSTS: [&str; 6] = [
    "/api/catalog/entities/by-query",
    "/api/catalog/entities/by-refs",
    "/api/catalog/entity-facets",
    "/api/catalog/locations/by-query",
    "/api/catalog/analyze-location",
    "/api/catalog/validate-entity",
];

/// Routes any client may call: probes and metrics. Nothing is refused there.
const PUBLIC: [&str; 3] = ["/healthz", "/readyz", "/metrics"];

plinth_store::on_both_stores!(dialect => {
    async fn every_route_allows_one_call_and_refuses_another() {
        let Some((app, c)) = spawn(dialect).await else {
            return;
        };
        let mut covered: Vec<(&str, &str)> = Vec::new();
        let call = |token: Option<&str>, method: &str, path: String, body: Option<Value>| {
            let app = &app;
            let token = token.map(str::to_owned);
            let method = method.to_owned();
            async move { app.request_as(token.as_deref(), &method, &path, body).await }
        };

        // Reads: any caller with a token, of any scope; none without one.
        let reads: Vec<(&str, &str, String, Option<Value>)> = vec![
            ("GET", "/api/catalog/entities", "/api/catalog/entities?filter=kind=group".into(), None),
            ("GET", "/api/catalog/entities/by-query", "/api/catalog/entities/by-query?limit=2".into(), None),
            ("POST", "/api/catalog/entities/by-query", "/api/catalog/entities/by-query".into(), Some(json!({"query": {"kind": "group"}}))),
            ("POST", "/api/catalog/entities/by-refs", "/api/catalog/entities/by-refs".into(), Some(json!({"entityRefs": ["group:default/keel"]}))),
            ("GET", "/api/catalog/entities/by-name/{kind}/{namespace}/{name}", "/api/catalog/entities/by-name/group/default/keel".into(), None),
            ("GET", "/api/catalog/entities/by-name/{kind}/{namespace}/{name}/ancestry", "/api/catalog/entities/by-name/group/default/keel/ancestry".into(), None),
            ("GET", "/api/catalog/entity-facets", "/api/catalog/entity-facets?facet=kind".into(), None),
            ("POST", "/api/catalog/entity-facets", "/api/catalog/entity-facets".into(), Some(json!({"facets": ["kind"]}))),
            ("GET", "/api/catalog/locations", "/api/catalog/locations".into(), None),
            ("POST", "/api/catalog/locations/by-query", "/api/catalog/locations/by-query".into(), Some(json!({}))),
            ("GET", "/api/catalog/locations/by-entity/{kind}/{namespace}/{name}", "/api/catalog/locations/by-entity/group/default/keel".into(), None),
            ("POST", "/api/catalog/analyze-location", "/api/catalog/analyze-location".into(), Some(json!({"location": {"type": "dir", "target": app.dir.join("catalog/components/checkout-service").display().to_string()}}))),
            ("POST", "/api/catalog/validate-entity", "/api/catalog/validate-entity".into(), Some(json!({"location": "url:x", "entity": {"apiVersion": "backstage.io/v1alpha1", "kind": "Group", "metadata": {"name": "g"}, "spec": {"type": "team", "children": []}}}))),
            ("GET", "/api/search", "/api/search?term=checkout".into(), None),
            ("GET", "/api/openapi.json", "/api/openapi.json".into(), None),
            ("GET", "/api/identity", "/api/identity".into(), None),
        ];
        for (method, route, path, body) in reads {
            expect(&call(Some(&c.amara_read), method, path.clone(), body.clone()).await, 200, route);
            expect(&call(None, method, path, body).await, 401, route);
            covered.push((method, route));
        }
        let me = call(Some(&c.amara_read), "GET", "/api/identity".into(), None).await;
        assert_eq!(
            me.body,
            json!({"subject": "user:default/amara.nwosu", "role": "developer", "scope": "read",
                   "groups": ["group:default/checkout-team", "group:default/engineering", "group:default/keel"]})
        );
        let uid = uid_of(&app, &c.amara_read, "checkout-service").await;
        let examples = location_of(&app, &c.amara_read, "checkout-service").await;
        for (route, path) in [
            ("/api/catalog/entities/by-uid/{uid}", format!("/api/catalog/entities/by-uid/{uid}")),
            ("/api/catalog/locations/{id}", format!("/api/catalog/locations/{examples}")),
            ("/api/catalog/locations/{id}/status", format!("/api/catalog/locations/{examples}/status")),
        ] {
            expect(&call(Some(&c.maria), "GET", path.clone(), None).await, 200, route);
            expect(&call(Some("plinth_not-a-token"), "GET", path, None).await, 401, route);
            covered.push(("GET", route));
        }
        for route in PUBLIC {
            expect(&call(None, "GET", route.into(), None).await, 200, route);
            covered.push(("GET", route));
        }

        // Registering: a developer may; a viewer may not.
        let refused = call(Some(&c.maria), "POST", "/api/catalog/locations".into(), Some(extra(&app))).await;
        expect(&refused, 403, "POST /locations by a viewer");
        assert!(refused.body["error"]["message"].as_str().unwrap().contains("viewer role"));
        let added = call(Some(&c.amara), "POST", "/api/catalog/locations".into(), Some(extra(&app))).await;
        expect(&added, 201, "POST /locations");
        let mine = added.body["location"]["id"].as_str().unwrap().to_owned();
        covered.push(("POST", "/api/catalog/locations"));

        // Refreshing: anyone who may write; not a read token.
        expect(&call(Some(&c.amara_read), "POST", format!("/api/catalog/locations/{mine}/refresh"), None).await, 403, "refresh by id, read token");
        expect(&call(Some(&c.priya), "POST", format!("/api/catalog/locations/{mine}/refresh"), None).await, 200, "refresh by id");
        covered.push(("POST", "/api/catalog/locations/{id}/refresh"));
        let refresh = json!({"entityRef": "component:default/checkout-extra"});
        expect(&call(Some(&c.maria), "POST", "/api/catalog/refresh".into(), Some(refresh.clone())).await, 403, "refresh by a viewer");
        expect(&call(Some(&c.amara), "POST", "/api/catalog/refresh".into(), Some(refresh)).await, 200, "refresh");
        covered.push(("POST", "/api/catalog/refresh"));

        // A location: its owners' (every entity in it), or a platform admin's.
        let moved = extra(&app);
        expect(&call(Some(&c.priya), "PUT", format!("/api/catalog/locations/{mine}"), Some(moved.clone())).await, 403, "PUT another team's location");
        expect(&call(Some(&c.amara), "PUT", format!("/api/catalog/locations/{examples}"), Some(json!({"type": "file", "target": "x"}))).await, 403, "PUT a location with unowned entities");
        expect(&call(Some(&c.amara), "PUT", format!("/api/catalog/locations/{mine}"), Some(moved)).await, 200, "PUT own location");
        covered.push(("PUT", "/api/catalog/locations/{id}"));

        expect(&call(Some(&c.priya), "DELETE", format!("/api/catalog/locations/{mine}"), None).await, 403, "DELETE another team's location");
        expect(&call(Some(&c.amara), "DELETE", format!("/api/catalog/locations/{mine}"), None).await, 204, "DELETE own location");
        covered.push(("DELETE", "/api/catalog/locations/{id}"));

        // An entity: its owner's, or a platform admin's.
        expect(&call(Some(&c.priya), "DELETE", format!("/api/catalog/entities/by-uid/{uid}"), None).await, 403, "DELETE another team's entity");
        expect(&call(Some(&c.amara), "DELETE", format!("/api/catalog/entities/by-uid/{uid}"), None).await, 204, "DELETE own entity");
        expect(&call(Some(&c.amara_read), "GET", format!("/api/catalog/entities/by-uid/{uid}"), None).await, 404, "deleted");
        covered.push(("DELETE", "/api/catalog/entities/by-uid/{uid}"));

        // Tokens: one's own with an admin-scoped token; others' as an admin.
        let own = call(Some(&c.amara_admin), "POST", "/api/tokens".into(), Some(json!({"name": "laptop", "scope": "read"}))).await;
        expect(&own, 201, "POST /api/tokens");
        assert!(own.body["token"].as_str().unwrap().starts_with("plinth_"));
        expect(&call(Some(&c.amara_admin), "POST", "/api/tokens".into(), Some(json!({"name": "ci", "scope": "write", "service": "ci", "role": "developer"}))).await, 403, "a developer minting a service token");
        covered.push(("POST", "/api/tokens"));
        expect(&call(Some(&c.amara), "GET", "/api/tokens".into(), None).await, 403, "GET /api/tokens with a write token");
        let listed = call(Some(&c.amara_admin), "GET", "/api/tokens".into(), None).await;
        expect(&listed, 200, "GET /api/tokens");
        let subjects: Vec<&str> = listed.body["items"].as_array().unwrap().iter().map(|t| t["subject"].as_str().unwrap()).collect();
        assert!(subjects.iter().all(|s| *s == "user:default/amara.nwosu"), "{subjects:?}");
        assert!(listed.body.to_string().find("plinth_").is_none(), "no secret is listed");
        expect(&call(Some(&c.amara_admin), "GET", "/api/tokens?subject=user:default/ines.moreau".into(), None).await, 403, "another person's tokens");
        let everyone = call(Some(&c.admin), "GET", "/api/tokens".into(), None).await;
        expect(&everyone, 200, "everyone's tokens");
        let everyone: Vec<&str> = everyone.body["items"].as_array().unwrap().iter().map(|t| t["subject"].as_str().unwrap()).collect();
        assert!(everyone.contains(&"user:default/amara.nwosu") && everyone.contains(&"user:default/priya.raman"), "{everyone:?}");
        covered.push(("GET", "/api/tokens"));
        let id = own.body["id"].as_str().unwrap();
        let ines_tokens = app.store.tokens(Some("user:default/ines.moreau")).await.unwrap();
        expect(&call(Some(&c.amara_admin), "DELETE", format!("/api/tokens/{}", ines_tokens[0].id), None).await, 403, "revoking another person's token");
        expect(&call(Some(&c.amara_admin), "DELETE", format!("/api/tokens/{id}"), None).await, 204, "revoking one's own token");
        let revoked = own.body["token"].as_str().unwrap();
        expect(&call(Some(revoked), "GET", "/api/catalog/locations".into(), None).await, 401, "a revoked token");
        covered.push(("DELETE", "/api/tokens/{id}"));

        // The audit log: platform admins.
        expect(&call(Some(&c.amara_admin), "GET", "/api/audit".into(), None).await, 403, "GET /api/audit by a developer");
        expect(&call(Some(&c.admin), "GET", "/api/audit".into(), None).await, 200, "GET /api/audit");
        covered.push(("GET", "/api/audit"));

        // Every route of the server was called above.
        let mut routes: Vec<(&str, &str)> = plinth_server::routes().into_iter().map(|(m, p, _)| (m, p)).collect();
        routes.sort();
        covered.sort();
        covered.dedup();
        assert_eq!(covered, routes, "a route without an access test");
    }

    async fn the_portal_needs_a_caller_and_its_form_a_writer() {
        let Some((app, c)) = spawn(dialect).await else {
            return;
        };
        for page in ["/", "/search?q=checkout", "/catalog", "/catalog/default/group/keel", "/locations"] {
            expect(&app.request_as(Some(&c.amara_read), "GET", page, None).await, 200, page);
            let page_refused = app.request_as(None, "GET", page, None).await;
            assert_eq!(page_refused.status, 401, "{page}");
            assert!(page_refused.header("content-type").unwrap().starts_with("text/html"), "{page}");
            assert!(page_refused.body.as_str().unwrap().contains("requires an API token"), "{page}");
        }
        // Static files are public (a sign-in page will need them).
        expect(&app.request_as(None, "GET", "/assets/portal.css", None).await, 200, "/assets/portal.css");
    }

    async fn a_token_never_does_more_than_its_scope() {
        let Some((app, c)) = spawn(dialect).await else {
            return;
        };
        // The same platform admin with three tokens.
        let refresh = Some(json!({"entityRef": "group:default/keel"}));
        let r = app.request_as(Some(&c.admin_read), "POST", "/api/catalog/refresh", refresh.clone()).await;
        expect(&r, 403, "refresh with a read token");
        assert_eq!(
            r.body["error"]["message"],
            "this token has the read scope; refreshing needs a token with the write scope"
        );
        expect(&app.request_as(Some(&c.admin_write), "POST", "/api/catalog/refresh", refresh).await, 200, "refresh with a write token");
        expect(&app.request_as(Some(&c.admin_write), "GET", "/api/audit", None).await, 403, "audit with a write token");
        expect(&app.request_as(Some(&c.admin), "GET", "/api/audit", None).await, 200, "audit with an admin token");
        // Nor more than its owner may: an admin-scoped token of a developer.
        let keel = app.request_as(Some(&c.amara_admin), "GET", "/api/catalog/entities/by-name/group/default/keel", None).await;
        let uid = keel.body["metadata"]["uid"].as_str().unwrap();
        expect(&app.request_as(Some(&c.amara_admin), "DELETE", &format!("/api/catalog/entities/by-uid/{uid}"), None).await, 403, "a developer deleting an unowned group");
        // A malformed header says what to send.
        let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        stream
            .write_all(b"GET /api/catalog/locations HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Basic abc\r\n\r\n")
            .await
            .unwrap();
        let mut raw = String::new();
        stream.read_to_string(&mut raw).await.unwrap();
        assert!(raw.starts_with("HTTP/1.1 401"), "{raw}");
        assert!(raw.contains("Bearer <token>"), "{raw}");
    }

    async fn the_audit_log_records_every_mutating_route() {
        let Some((app, c)) = spawn(dialect).await else {
            return;
        };
        let as_admin = |method: &'static str, path: String, body: Option<Value>| {
            let app = &app;
            let token = c.admin.clone();
            async move { app.request_as(Some(&token), method, &path, body).await }
        };
        let added = as_admin("POST", "/api/catalog/locations".into(), Some(extra(&app))).await;
        expect(&added, 201, "register");
        let id = added.body["location"]["id"].as_str().unwrap().to_owned();
        expect(&as_admin("POST", format!("/api/catalog/locations/{id}/refresh"), None).await, 200, "refresh by id");
        expect(&as_admin("POST", "/api/catalog/refresh".into(), Some(json!({"entityRef": "component:default/checkout-extra"}))).await, 200, "refresh");
        expect(&as_admin("PUT", format!("/api/catalog/locations/{id}"), Some(extra(&app))).await, 200, "update");
        let uid = uid_of(&app, &c.admin, "checkout-extra").await;
        expect(&as_admin("DELETE", format!("/api/catalog/entities/by-uid/{uid}"), None).await, 204, "delete entity");
        expect(&as_admin("DELETE", format!("/api/catalog/locations/{id}"), None).await, 204, "delete location");
        let made = as_admin("POST", "/api/tokens".into(), Some(json!({"name": "ci", "scope": "read", "service": "ci", "role": "viewer"}))).await;
        expect(&made, 201, "token");
        let token_id = made.body["id"].as_str().unwrap().to_owned();
        expect(&as_admin("DELETE", format!("/api/tokens/{token_id}"), None).await, 204, "revoke");

        // Which route records which action; every mutating route is here.
        let expected = [
            ("POST", "/api/catalog/locations", "location.create", id.clone()),
            ("POST", "/api/catalog/locations/{id}/refresh", "location.refresh", id.clone()),
            ("POST", "/api/catalog/refresh", "entity.refresh", "component:default/checkout-extra".into()),
            ("PUT", "/api/catalog/locations/{id}", "location.update", id.clone()),
            ("DELETE", "/api/catalog/entities/by-uid/{uid}", "entity.delete", "component:default/checkout-extra".into()),
            ("DELETE", "/api/catalog/locations/{id}", "location.delete", id.clone()),
            ("POST", "/api/tokens", "token.create", token_id.clone()),
            ("DELETE", "/api/tokens/{id}", "token.revoke", token_id.clone()),
        ];
        let mut mutating: Vec<(&str, &str)> = plinth_server::routes()
            .into_iter()
            .map(|(m, p, _)| (m, p))
            .filter(|(m, p)| *m != "GET" && !READING_POSTS.contains(p))
            .collect();
        mutating.sort();
        let mut tested: Vec<(&str, &str)> = expected.iter().map(|(m, p, _, _)| (*m, *p)).collect();
        tested.sort();
        assert_eq!(tested, mutating, "a mutating route the audit test does not walk");

        let log = as_admin("GET", "/api/audit?actor=user:default/ines.moreau".into(), None).await;
        expect(&log, 200, "audit");
        let items = log.body["items"].as_array().unwrap();
        let mut seen: Vec<(String, String)> = items
            .iter()
            .map(|e| (e["action"].as_str().unwrap().to_owned(), e["target"].as_str().unwrap().to_owned()))
            .collect();
        seen.reverse(); // oldest first, as they were made
        let wanted: Vec<(String, String)> = expected.iter().map(|(_, _, a, t)| (a.to_string(), t.clone())).collect();
        assert_eq!(seen, wanted);
        for e in items {
            assert_eq!(e["source"], "127.0.0.1", "{e}");
            assert!(e["at"].as_str().unwrap().ends_with('Z'), "{e}");
        }
        let deleted = items.iter().find(|e| e["action"] == "entity.delete").unwrap();
        assert_eq!(deleted["before"]["spec"]["owner"], "checkout-team");
        assert_eq!(deleted["after"], Value::Null);
        let updated = items.iter().find(|e| e["action"] == "location.update").unwrap();
        assert_eq!(updated["before"]["id"], id.as_str());
        assert_eq!(updated["after"]["id"], id.as_str());
        let token = items.iter().find(|e| e["action"] == "token.create").unwrap();
        assert!(token["after"].get("token").is_none(), "the secret is never recorded: {token}");

        // Filters, pages and the JSON lines export.
        let deletes = as_admin("GET", "/api/audit?action=location.delete".into(), None).await;
        assert_eq!(deletes.body["items"].as_array().unwrap().len(), 1);
        let page = as_admin("GET", "/api/audit?limit=3".into(), None).await;
        assert_eq!(page.body["items"].as_array().unwrap().len(), 3);
        let cursor = page.body["nextCursor"].as_str().unwrap();
        let next = as_admin("GET", format!("/api/audit?limit=100&cursor={cursor}"), None).await;
        assert_eq!(next.body["items"].as_array().unwrap().len(), 5);
        assert_eq!(next.body["nextCursor"], Value::Null);
        let lines = as_admin("GET", "/api/audit?format=jsonl".into(), None).await;
        assert_eq!(lines.header("content-type"), Some("application/x-ndjson"));
        let text = lines.body.as_str().unwrap();
        assert_eq!(text.lines().count(), 8);
        for line in text.lines() {
            let _: Value = serde_json::from_str(line).unwrap();
        }
        expect(&as_admin("GET", "/api/audit?limit=0".into(), None).await, 400, "limit 0");
        expect(&as_admin("GET", "/api/audit?format=xml".into(), None).await, 400, "format xml");

        // The same log in the portal: filtered, paged, exported; for platform admins only.
        let html = |r: &Reply| r.body.as_str().unwrap_or_default().to_owned();
        let all = as_admin("GET", "/audit".into(), None).await;
        expect(&all, 200, "the portal's audit log");
        let page = html(&all);
        for (action, target) in &wanted {
            assert!(page.contains(&format!("<code>{action}</code>")), "{action} missing from the page");
            assert!(page.contains(target.as_str()), "{target} missing from the page");
        }
        assert!(page.contains("href=\"/api/audit?format=jsonl\""), "no export link");
        let deletes = html(&as_admin("GET", "/audit?action=location.delete".into(), None).await);
        assert!(deletes.contains("<code>location.delete</code>") && !deletes.contains("<code>location.create</code>"));
        assert!(deletes.contains("href=\"/api/audit?action=location.delete&amp;format=jsonl\""), "the export keeps the filter");
        let none = html(&as_admin("GET", "/audit?actor=user:default/nobody".into(), None).await);
        assert!(none.contains("No entries match."));
        let bad = as_admin("GET", "/audit?cursor=yesterday".into(), None).await;
        assert_eq!(bad.status, 400, "a cursor that is not a number");
        assert!(html(&bad).contains("cursor: &quot;yesterday&quot; is not a whole number"), "{}", html(&bad));
        let refused = app.request_as(Some(&c.amara_admin), "GET", "/audit", None).await;
        assert_eq!(refused.status, 403, "a developer reading the audit log");
        assert!(html(&refused).contains("needs the platform-admin role"), "{}", html(&refused));
    }
    async fn people_sign_in_with_local_accounts() {
        let access = AccessConfig {
            anonymous: false,
            sign_in: plinth_server::access::SignIn::Local,
            platform_admins: vec!["group:default/platform-team".parse().unwrap()],
            viewers: Vec::new(),
        };
        let Some(app) = TestApp::spawn_with(dialect, access).await else {
            return;
        };
        for (name, user) in [("priya", "user:default/priya.raman"), ("amara", "user:default/amara.nwosu")] {
            app.store
                .create_account(&plinth_store::Account {
                    name: name.into(),
                    user_ref: user.into(),
                    role: None,
                    password_hash: plinth_access::password::hash(&format!("{name}-pass")).unwrap(),
                })
                .await
                .unwrap();
        }
        let form = [("Content-Type", "application/x-www-form-urlencoded")];
        let sign_in = |body: String, extra: Vec<(&'static str, &'static str)>| {
            let app = &app;
            async move {
                let mut headers = form.to_vec();
                headers.extend(extra);
                app.request_raw("POST", "/sign-in", &headers, &body).await
            }
        };

        // A browser without a session is sent to sign in, and back after.
        let away = app.request_raw("GET", "/catalog?kind=group", &[], "").await;
        assert_eq!(away.status, 303);
        assert_eq!(away.header("location"), Some("/sign-in?next=%2Fcatalog%3Fkind%3Dgroup"));
        let page = app.request_raw("GET", "/sign-in?next=/catalog", &[], "").await;
        assert_eq!(page.status, 200);
        assert!(page.body.as_str().unwrap().contains("name=\"password\" type=\"password\""));

        // Wrong passwords are refused, and five of them stop a sixth try.
        for _ in 0..5 {
            let wrong = sign_in("name=amara&password=guess&next=/".into(), vec![]).await;
            assert_eq!(wrong.status, 401);
            assert!(wrong.body.as_str().unwrap().contains("The name or the password is wrong."));
        }
        let throttled = sign_in("name=amara&password=amara-pass&next=/".into(), vec![]).await;
        assert_eq!(throttled.status, 429);
        assert!(throttled.body.as_str().unwrap().contains("Too many failed attempts"));
        let unknown = sign_in("name=nobody&password=x&next=/".into(), vec![]).await;
        assert_eq!(unknown.status, 401, "an unknown name looks like a wrong password");

        // Signed in: a session cookie, and back where they were going
        // (only ever a path on this server).
        let ok = sign_in("name=priya&password=priya-pass&next=//evil.example/".into(), vec![]).await;
        assert_eq!(ok.status, 303, "{}", ok.body);
        assert_eq!(ok.header("location"), Some("/"));
        let cookie = ok.header("set-cookie").unwrap().to_owned();
        assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax") && !cookie.contains("Secure"), "{cookie}");
        let behind_tls = sign_in("name=priya&password=priya-pass&next=/locations".into(), vec![("X-Forwarded-Proto", "https")]).await;
        assert_eq!(behind_tls.header("location"), Some("/locations"));
        assert!(behind_tls.header("set-cookie").unwrap().contains("; Secure"));
        let session = cookie.split(';').next().unwrap().to_owned();
        let with = [("Cookie", session.as_str())];
        let me = app.request_raw("GET", "/api/identity", &with, "").await;
        assert_eq!(me.body["subject"], "user:default/priya.raman");
        assert_eq!(me.body["role"], "developer");
        assert_eq!(me.body["scope"], Value::Null);

        // Forms carry the session's token; without it they are refused.
        let locations = app.request_raw("GET", "/locations", &with, "").await;
        let html = locations.body.as_str().unwrap();
        let csrf = html.split("name=\"csrf\" value=\"").nth(1).unwrap().split('"').next().unwrap();
        let target = app.dir.join("catalog/checkout-extra.yaml");
        app.write("checkout-extra.yaml", "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: extra\nspec:\n  type: service\n  lifecycle: experimental\n  owner: payments-team\n");
        let body = |csrf: &str| format!("type=file&target={}&csrf={csrf}", target.display());
        let headers = [("Cookie", session.as_str()), ("Content-Type", "application/x-www-form-urlencoded")];
        let forged = app.request_raw("POST", "/locations", &headers, &body("forged")).await;
        assert_eq!(forged.status, 403);
        assert!(forged.body.as_str().unwrap().contains("reload the page"));
        let sent = app.request_raw("POST", "/locations", &headers, &body(csrf)).await;
        assert_eq!(sent.status, 303, "{}", sent.body);

        // Signing out ends the session: the same cookie no longer works.
        let out_page = app.request_raw("GET", "/sign-out", &with, "").await;
        assert!(out_page.body.as_str().unwrap().contains("Signed in as user:default/priya.raman"));
        let out = app.request_raw("POST", "/sign-out", &headers, &format!("csrf={csrf}")).await;
        assert_eq!(out.status, 303);
        assert!(out.header("set-cookie").unwrap().contains("Max-Age=0"));
        let after = app.request_raw("GET", "/catalog", &with, "").await;
        assert_eq!(after.status, 303, "the session is gone");

        // Both sign-ins and the registration are in the audit log.
        let log = app.store.audit(&plinth_store::AuditQuery { actor: Some("user:default/priya.raman".into()), limit: 10, ..Default::default() }).await.unwrap();
        let actions: Vec<&str> = log.iter().map(|e| e.action.as_str()).collect();
        assert_eq!(actions, ["location.create", "session.create", "session.create"]);
        assert!(log.iter().all(|e| e.source == "127.0.0.1"), "{log:?}");
    }
});
