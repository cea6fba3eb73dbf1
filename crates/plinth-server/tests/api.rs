//! The catalog API over a real TCP socket, against a real store holding
//! the example organisation: every test runs on SQLite and on PostgreSQL.

mod common;

use common::{Reply, TestApp};
use plinth_catalog::ingest::{IngestOptions, refresh_location};
use serde_json::{Value, json};

fn names(items: &Value) -> Vec<String> {
    items
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["metadata"]["name"].as_str().unwrap_or("?").to_owned())
        .collect()
}

/// Names in alphabetical order, for tests about which entities match.
fn sorted_names(items: &Value) -> Vec<String> {
    let mut n = names(items);
    n.sort();
    n
}

plinth_store::on_both_stores!(dialect => {
    async fn entity_by_name_is_case_insensitive_and_carries_uid_etag_relations() {
        let Some(app) = TestApp::spawn(dialect).await else {
            return;
        };
        let r = app
            .get("/api/catalog/entities/by-name/Component/Default/Checkout-Service")
            .await;
        assert_eq!(r.status, 200);
        let e = &r.body;
        assert_eq!(e["metadata"]["name"], "checkout-service");
        assert!(e["metadata"]["uid"].is_string() && e["metadata"]["etag"].is_string());
        assert!(
            e["relations"]
                .as_array()
                .unwrap()
                .contains(&json!({"type": "ownedBy", "targetRef": "group:default/checkout-team"}))
        );
        // Reverse relations are there at once.
        let team = app
            .get("/api/catalog/entities/by-name/group/default/checkout-team")
            .await
            .body;
        assert!(
            team["relations"].as_array().unwrap().contains(
                &json!({"type": "ownerOf", "targetRef": "component:default/checkout-service"})
            )
        );
        // By uid, the same entity.
        let uid = e["metadata"]["uid"].as_str().unwrap();
        let same = app
            .get(&format!("/api/catalog/entities/by-uid/{uid}"))
            .await;
        assert_eq!(same.body, r.body);
    }

    async fn errors_have_backstages_shape() {
        let Some(app) = TestApp::spawn(dialect).await else {
            return;
        };
        let r = app
            .get("/api/catalog/entities/by-name/component/default/nope")
            .await;
        assert_eq!(r.status, 404);
        assert_eq!(
            r.body,
            json!({
                "error": {"name": "NotFoundError", "message": "No entity named 'nope' found, with kind 'component' in namespace 'default'"},
                "request": {"method": "GET", "url": "/entities/by-name/component/default/nope"},
                "response": {"statusCode": 404},
            })
        );
        let r = app.get("/api/catalog/entities?filter=%3Dx").await;
        assert_eq!(r.status, 400);
        assert_eq!(r.body["error"]["name"], "InputError");
        let r = app
            .get("/api/catalog/entities/by-query?cursor=nonsense!")
            .await;
        assert_eq!(r.status, 400);
        assert_eq!(
            r.body["error"]["message"],
            "cursor is not valid; use a cursor from a previous answer"
        );
        let r = app
            .post("/api/catalog/entities/by-refs", json!({"wrong": 1}))
            .await;
        assert_eq!(r.status, 400);
    }

    async fn filters_are_case_insensitive_and_combine_like_backstage() {
        let Some(app) = TestApp::spawn(dialect).await else {
            return;
        };
        // Conditions in one filter are ANDed; filters are ORed.
        let r = app.get("/api/catalog/entities?filter=KIND=component,spec.lifecycle=Experimental&fields=metadata.name").await;
        assert_eq!(
            sorted_names(&r.body),
            ["fulfilment-service", "label-printer"]
        );
        let r = app.get("/api/catalog/entities?filter=kind=domain&filter=kind=system,spec.domain=commerce&fields=metadata.name").await;
        assert_eq!(
            sorted_names(&r.body),
            ["checkout", "commerce", "operations", "storefront"]
        );
        // The same key twice in one filter matches either value.
        let r = app
            .get("/api/catalog/entities?filter=kind=domain,kind=resource&fields=kind")
            .await;
        assert_eq!(r.body.as_array().unwrap().len(), 6);
        // Beside another condition: the union of each value's matches (the
        // page is walked from the one-valued condition).
        let either = app.get("/api/catalog/entities?filter=kind=component,kind=api,spec.lifecycle=production&fields=metadata.name").await;
        let mut union = Vec::new();
        for kind in ["component", "api"] {
            let r = app.get(&format!("/api/catalog/entities?filter=kind={kind},spec.lifecycle=production&fields=metadata.name")).await;
            assert!(!names(&r.body).is_empty(), "no {kind} in production");
            union.extend(names(&r.body));
        }
        union.sort();
        assert_eq!(sorted_names(&either.body), union);
        // Exists, tags, annotations with dots and slashes, relations.
        let r = app
            .get("/api/catalog/entities?filter=metadata.labels.tier&fields=metadata.name")
            .await;
        assert_eq!(sorted_names(&r.body), ["checkout-service"]);
        let r = app
            .get("/api/catalog/entities?filter=metadata.tags=RUST&fields=metadata.name")
            .await;
        assert_eq!(sorted_names(&r.body), ["checkout-service"]);
        let r = app.get("/api/catalog/entities?filter=metadata.annotations.github.com/project-slug=keel/payments-service&fields=metadata.name").await;
        assert_eq!(sorted_names(&r.body), ["payments-service"]);
        let r = app.get("/api/catalog/entities?filter=relations.ownedby=group:default/payments-team&fields=metadata.name").await;
        assert_eq!(
            sorted_names(&r.body),
            ["payments-api", "payments-db", "payments-service"]
        );
        let r = app.get("/api/catalog/entities?filter=relations.hasmember=user:default/lee.chen&fields=metadata.name").await;
        assert_eq!(sorted_names(&r.body), ["checkout-team"]);
    }

    async fn fields_order_and_offset_pagination() {
        let Some(app) = TestApp::spawn(dialect).await else {
            return;
        };
        let r = app.get("/api/catalog/entities?filter=kind=user&fields=metadata.name,spec.profile.displayName&order=desc:metadata.name&limit=3").await;
        assert_eq!(
            r.body,
            json!([
                {"metadata": {"name": "tomas.havel"}, "spec": {"profile": {"displayName": "Tomáš Havel"}}},
                {"metadata": {"name": "sam.okafor"}, "spec": {"profile": {"displayName": "Sam Okafor"}}},
                {"metadata": {"name": "priya.raman"}, "spec": {"profile": {"displayName": "Priya Raman"}}},
            ])
        );
        let link = r.header("link").expect("a Link header to the next page");
        assert!(link.ends_with("; rel=\"next\""), "{link}");
        let next = link.trim_start_matches('<').split('>').next().unwrap();
        let r2 = app
            .get(&format!("/api/catalog/entities{next}&fields=metadata.name"))
            .await;
        assert_eq!(names(&r2.body), ["maria.lopez", "lee.chen", "jonas.berg"]);
        let r = app.get("/api/catalog/entities?filter=kind=user&fields=metadata.name&order=asc:metadata.name&offset=6").await;
        assert_eq!(names(&r.body), ["sam.okafor", "tomas.havel"]);
    }

    async fn by_query_pages_with_cursors_and_total() {
        let Some(app) = TestApp::spawn(dialect).await else {
            return;
        };
        let first = app.get("/api/catalog/entities/by-query?filter=kind=user&orderField=metadata.name,asc&limit=3&fields=metadata.name").await;
        assert_eq!(first.body["totalItems"], 8);
        assert_eq!(
            names(&first.body["items"]),
            ["amara.nwosu", "ines.moreau", "jonas.berg"]
        );
        assert!(first.body["pageInfo"].get("prevCursor").is_none());
        let cursor = first.body["pageInfo"]["nextCursor"].as_str().unwrap();
        let second = app
            .get(&format!(
                "/api/catalog/entities/by-query?cursor={cursor}&fields=metadata.name"
            ))
            .await;
        assert_eq!(
            names(&second.body["items"]),
            ["lee.chen", "maria.lopez", "priya.raman"]
        );
        assert_eq!(second.body["totalItems"], 8);
        let prev = second.body["pageInfo"]["prevCursor"].as_str().unwrap();
        let back = app
            .get(&format!(
                "/api/catalog/entities/by-query?cursor={prev}&fields=metadata.name"
            ))
            .await;
        assert_eq!(back.body["items"], first.body["items"]);
        let last = app
            .get(&format!(
                "/api/catalog/entities/by-query?cursor={}&fields=metadata.name",
                second.body["pageInfo"]["nextCursor"].as_str().unwrap()
            ))
            .await;
        assert_eq!(names(&last.body["items"]), ["sam.okafor", "tomas.havel"]);
        assert!(last.body["pageInfo"].get("nextCursor").is_none());
        // Full text over named fields, case-insensitive substring.
        let r = app
            .get("/api/catalog/entities/by-query?fullTextFilterTerm=PAY&fullTextFilterFields=metadata.name&fields=metadata.name")
            .await;
        assert_eq!(
            sorted_names(&r.body["items"]),
            [
                "payments-api",
                "payments-db",
                "payments-service",
                "payments-team"
            ]
        );
    }

    async fn by_refs_keeps_order_and_nulls() {
        let Some(app) = TestApp::spawn(dialect).await else {
            return;
        };
        let r = app
            .post(
                "/api/catalog/entities/by-refs",
                json!({"entityRefs": ["api:default/payments-api", "component:default/missing", "Group:Default/Keel"], "fields": ["kind", "metadata.name"]}),
            )
            .await;
        assert_eq!(
            r.body,
            json!({"items": [
                {"kind": "API", "metadata": {"name": "payments-api"}},
                null,
                {"kind": "Group", "metadata": {"name": "keel"}},
            ]})
        );
        let r = app
            .post(
                "/api/catalog/entities/by-refs?filter=kind=group",
                json!({"entityRefs": ["api:default/payments-api", "group:default/keel"]}),
            )
            .await;
        assert!(r.body["items"][0].is_null());
        assert_eq!(r.body["items"][1]["metadata"]["name"], "keel");
    }

    async fn facets_count_values_as_written() {
        let Some(app) = TestApp::spawn(dialect).await else {
            return;
        };
        let r = app
            .get("/api/catalog/entity-facets?facet=kind&facet=spec.lifecycle&filter=kind=component")
            .await;
        assert_eq!(
            r.body,
            json!({"facets": {
                "kind": [{"value": "Component", "count": 6}],
                "spec.lifecycle": [{"value": "experimental", "count": 2}, {"value": "production", "count": 4}],
            }})
        );
        assert_eq!(app.get("/api/catalog/entity-facets").await.status, 400);
        // A facet named twice is one key of the answer.
        let twice = app.get("/api/catalog/entity-facets?facet=kind&facet=kind").await;
        assert_eq!(twice.text.matches("\"kind\"").count(), 1, "{}", twice.text);
    }

    async fn locations_register_refresh_and_delete() {
        let Some(app) = TestApp::spawn(dialect).await else {
            return;
        };
        let list = app.get("/api/catalog/locations").await;
        assert_eq!(list.body.as_array().unwrap().len(), 1);
        app.write("extra/catalog-info.yaml", "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: extra\nspec:\n  type: service\n  lifecycle: experimental\n  owner: platform-team\n");
        let target = app
            .dir
            .join("catalog/extra/catalog-info.yaml")
            .display()
            .to_string();
        // A dry run shows what would come, and changes nothing.
        let dry = app
            .post(
                "/api/catalog/locations?dryRun=true",
                json!({"type": "file", "target": target}),
            )
            .await;
        assert_eq!(dry.status, 201);
        assert_eq!(names(&dry.body["entities"]), ["extra"]);
        assert_eq!(
            app.get("/api/catalog/entities/by-name/component/default/extra")
                .await
                .status,
            404
        );
        // Registering makes its entities visible when the call returns.
        let added = app
            .post(
                "/api/catalog/locations",
                json!({"type": "file", "target": target}),
            )
            .await;
        assert_eq!(added.status, 201);
        assert_eq!(names(&added.body["entities"]), ["extra"]);
        assert_eq!(
            app.get("/api/catalog/entities/by-name/component/default/extra")
                .await
                .status,
            200
        );
        let id = added.body["location"]["id"].as_str().unwrap().to_owned();
        assert_eq!(
            app.get(&format!("/api/catalog/locations/{id}")).await.body["target"],
            target.as_str()
        );
        let by_entity = app
            .get("/api/catalog/locations/by-entity/component/default/extra")
            .await;
        assert_eq!(by_entity.body["id"], id.as_str());
        // Registering again is a conflict.
        let again = app
            .post(
                "/api/catalog/locations",
                json!({"type": "file", "target": target}),
            )
            .await;
        assert_eq!(again.status, 409);
        assert_eq!(again.body["error"]["name"], "ConflictError");
        // A change is visible as soon as refresh returns.
        app.write("extra/catalog-info.yaml", "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: extra\nspec:\n  type: service\n  lifecycle: production\n  owner: platform-team\n");
        let r = app
            .post(
                "/api/catalog/refresh",
                json!({"entityRef": "component:default/extra"}),
            )
            .await;
        assert_eq!(r.status, 200);
        let e = app
            .get("/api/catalog/entities/by-name/component/default/extra")
            .await;
        assert_eq!(e.body["spec"]["lifecycle"], "production");
        // Deleting the location removes its entities.
        assert_eq!(
            app.delete(&format!("/api/catalog/locations/{id}"))
                .await
                .status,
            204
        );
        assert_eq!(
            app.get("/api/catalog/entities/by-name/component/default/extra")
                .await
                .status,
            404
        );
        assert_eq!(
            app.delete(&format!("/api/catalog/locations/{id}"))
                .await
                .status,
            404
        );
    }

    async fn bad_locations_are_refused_with_reasons() {
        let Some(app) = TestApp::spawn(dialect).await else {
            return;
        };
        let r = app
            .post(
                "/api/catalog/locations",
                json!({"type": "file", "target": "/etc/passwd"}),
            )
            .await;
        assert_eq!(r.status, 400);
        assert!(
            r.body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("outside the allowed roots"),
            "{}",
            r.body
        );
        let r = app
            .post(
                "/api/catalog/locations",
                json!({"type": "url", "target": "https://example.com/catalog-info.yaml"}),
            )
            .await;
        assert_eq!(r.status, 400);
        assert!(
            r.body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("not supported")
        );
        let r = app
            .post("/api/catalog/locations", json!({"target": "x"}))
            .await;
        assert_eq!(r.status, 400);
    }

    async fn delete_by_uid_answers_204_always() {
        let Some(app) = TestApp::spawn(dialect).await else {
            return;
        };
        let e = app
            .get("/api/catalog/entities/by-name/user/default/lee.chen")
            .await
            .body;
        let uid = e["metadata"]["uid"].as_str().unwrap();
        assert_eq!(
            app.delete(&format!("/api/catalog/entities/by-uid/{uid}"))
                .await
                .status,
            204
        );
        assert_eq!(
            app.get(&format!("/api/catalog/entities/by-uid/{uid}"))
                .await
                .status,
            404
        );
        assert_eq!(
            app.delete(&format!("/api/catalog/entities/by-uid/{uid}"))
                .await
                .status,
            204
        );
        // Its file still defines it, so the next refresh brings it back (as in Backstage).
        let loc = app.store.locations().await.unwrap().remove(0);
        refresh_location(
            &app.store,
            &loc,
            &IngestOptions {
                allowed_roots: vec![app.dir.join("catalog")],
                ..IngestOptions::default()
            },
        )
        .await
        .unwrap();
        assert_eq!(
            app.get("/api/catalog/entities/by-name/user/default/lee.chen")
                .await
                .status,
            200
        );
    }

    async fn validate_entity_answers_every_problem() {
        let Some(app) = TestApp::spawn(dialect).await else {
            return;
        };
        let ok = app
            .post(
                "/api/catalog/validate-entity",
                json!({"location": "url:x", "entity": {"apiVersion": "backstage.io/v1alpha1", "kind": "Group", "metadata": {"name": "g"}, "spec": {"type": "team", "children": []}}}),
            )
            .await;
        assert_eq!(ok.status, 200);
        let bad = app
            .post(
                "/api/catalog/validate-entity",
                json!({"location": "url:x", "entity": {"apiVersion": "backstage.io/v1alpha1", "kind": "Component", "metadata": {"name": "-x"}, "spec": {"type": "service"}}}),
            )
            .await;
        assert_eq!(bad.status, 400);
        assert_eq!(
            bad.body["errors"],
            json!([
                {"name": "InputError", "message": "metadata.name: \"-x\" must start with a letter or digit, not \"-\"", "path": "/metadata/name"},
                {"name": "InputError", "message": "spec.lifecycle: is required; add its lifecycle, for example \"experimental\", \"production\" or \"deprecated\"", "path": "/spec/lifecycle"},
                {"name": "InputError", "message": "spec.owner: is required; add the group or user that owns it, for example \"team-a\" or \"user:jdoe\"", "path": "/spec/owner"},
            ])
        );
    }

    async fn health_and_readiness() {
        let Some(app) = TestApp::spawn(dialect).await else {
            return;
        };
        assert_eq!(app.get("/healthz").await.status, 200);
        assert_eq!(app.get("/readyz").await.status, 200);
    }

    /// The OpenAPI document and the router agree: every route is documented
    /// with its method, every documented operation is routed, and each answers.
    async fn routes_and_openapi_document_agree() {
        let Some(app) = TestApp::spawn(dialect).await else {
            return;
        };
        let doc = app.get("/api/openapi.json").await.body;
        assert_eq!(doc["openapi"], "3.1.0");
        let mut documented: Vec<(String, String)> = Vec::new();
        for (path, ops) in doc["paths"].as_object().unwrap() {
            for method in ops.as_object().unwrap().keys() {
                documented.push((method.to_uppercase(), path.clone()));
            }
        }
        documented.sort();
        let mut routed: Vec<(String, String)> = plinth_server::routes()
            .into_iter()
            .map(|(m, p, _)| (m.to_owned(), p.to_owned()))
            .collect();
        routed.sort();
        assert_eq!(routed, documented);
        // Each route is really served: no routing 404 or 405, whatever the handler answers.
        for (method, path) in &routed {
            let concrete = path
                .replace("{kind}", "component")
                .replace("{namespace}", "default")
                .replace("{name}", "nope")
                .replace("{uid}", "nope")
                .replace("{id}", "nope");
            let r = app
                .request(method, &concrete, (method == "POST").then(|| json!({})))
                .await;
            assert_ne!(r.status, 405, "{method} {path}");
            if r.status == 404 {
                assert_eq!(
                    r.body["error"]["name"], "NotFoundError",
                    "{method} {path} is not routed"
                );
            }
        }
    }

    async fn metrics_count_requests_by_route_and_refreshes() {
        let Some(app) = TestApp::spawn(dialect).await else {
            return;
        };
        app.get("/api/catalog/entities/by-name/component/default/checkout-service")
            .await;
        app.get("/api/catalog/entities/by-name/component/default/nope")
            .await;
        assert_eq!(
            app.post(
                "/api/catalog/refresh",
                json!({"entityRef": "component:default/checkout-service"})
            )
            .await
            .status,
            200
        );
        let r = app.get("/metrics").await;
        assert_eq!(r.status, 200);
        let text = r.body.as_str().unwrap();
        let route = "/api/catalog/entities/by-name/{kind}/{namespace}/{name}";
        for line in [
            format!("plinth_http_requests_total{{method=\"GET\",route=\"{route}\",status=\"200\"}} 1"),
            format!("plinth_http_requests_total{{method=\"GET\",route=\"{route}\",status=\"404\"}} 1"),
            format!("plinth_http_request_duration_seconds_count{{method=\"GET\",route=\"{route}\"}} 2"),
            "plinth_catalog_refreshes_total{outcome=\"ok\"} 1".to_string(),
            "plinth_catalog_refresh_duration_seconds_count 1".to_string(),
            // Refreshing one entity reads the one file it came from.
            "plinth_catalog_refresh_entities_total{change=\"unchanged\"} 1".to_string(),
            "plinth_catalog_entities 37".to_string(),
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line} in\n{text}");
        }
    }

    async fn post_by_query_speaks_the_predicate_language() {
        let Some(app) = TestApp::spawn(dialect).await else {
            return;
        };
        let q = |query: Value| json!({"query": query, "fields": ["metadata.name"], "orderBy": [{"field": "metadata.name", "order": "asc"}], "limit": 50});
        let r = app
            .post(
                "/api/catalog/entities/by-query",
                q(json!({"$all": [{"kind": "Component"}, {"spec.lifecycle": {"$in": ["experimental"]}}]})),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(
            names(&r.body["items"]),
            ["fulfilment-service", "label-printer"]
        );
        assert_eq!(r.body["totalItems"], 2);
        let r = app
            .post(
                "/api/catalog/entities/by-query",
                q(json!({"kind": "component", "$not": {"spec.type": "service"}})),
            )
            .await;
        assert_eq!(names(&r.body["items"]), ["design-system", "storefront-web"]);
        let r = app
            .post(
                "/api/catalog/entities/by-query",
                q(json!({"$any": [{"metadata.name": {"$hasPrefix": "PAY"}}, {"metadata.tags": {"$contains": "rust"}}], "kind": {"$exists": true}})),
            )
            .await;
        assert_eq!(
            names(&r.body["items"]),
            [
                "checkout-service",
                "payments-api",
                "payments-db",
                "payments-service",
                "payments-team"
            ]
        );
        let r = app
            .post(
                "/api/catalog/entities/by-query",
                q(json!({"relations": {"$contains": {"type": "memberOf", "targetRef": "group:default/storefront-team"}}})),
            )
            .await;
        assert_eq!(names(&r.body["items"]), ["maria.lopez", "sam.okafor"]);
        // Cursors continue a predicate query.
        let first = app
            .post(
                "/api/catalog/entities/by-query",
                json!({"query": {"kind": "user"}, "limit": 5}),
            )
            .await;
        let cursor = first.body["pageInfo"]["nextCursor"].as_str().unwrap();
        let second = app
            .post("/api/catalog/entities/by-query", json!({"cursor": cursor}))
            .await;
        assert_eq!(second.body["items"].as_array().unwrap().len(), 3);
        // Mistakes name where they are.
        let bad = app
            .post(
                "/api/catalog/entities/by-query",
                json!({"query": {"$all": [{"kind": {"$near": 1}}]}}),
            )
            .await;
        assert_eq!(bad.status, 400);
        assert_eq!(
            bad.body["error"]["message"],
            "query.$all[0].kind: unknown matcher $near; use $exists, $in, $hasPrefix or $contains"
        );
        let bad = app
            .post("/api/catalog/entities/by-query", json!({"query": [1]}))
            .await;
        assert_eq!(bad.status, 400);
    }

    async fn ranked_search_puts_names_first() {
        let Some(app) = TestApp::spawn(dialect).await else {
            return;
        };
        let refs = |r: &Reply| -> Vec<String> {
            r.body["results"]
                .as_array()
                .unwrap()
                .iter()
                .map(|h| h["entityRef"].as_str().unwrap().to_owned())
                .collect()
        };
        let r = app.get("/api/search?term=Payments").await;
        let found = refs(&r);
        // Names that start with the word rank above entities that only mention it.
        let mut top: Vec<String> = found[..4].to_vec();
        top.sort();
        assert_eq!(
            top,
            [
                "api:default/payments-api",
                "component:default/payments-service",
                "group:default/payments-team",
                "resource:default/payments-db"
            ],
            "{found:?}"
        );
        // The checkout system's description mentions payments: found, ranked after.
        assert_eq!(found[4], "system:default/checkout", "{found:?}");
        assert!(
            r.body["results"][3]["score"].as_i64().unwrap()
                > r.body["results"][4]["score"].as_i64().unwrap()
        );
        // Every word must match.
        assert_eq!(
            refs(&app.get("/api/search?term=checkout%20rust").await),
            ["component:default/checkout-service"]
        );
        // Tags, owners and kinds match exactly.
        let mut pci = refs(&app.get("/api/search?term=pci").await);
        pci.sort();
        // Two by tag, one by its description ("PCI scope").
        assert_eq!(
            pci,
            [
                "api:default/payments-api",
                "component:default/payments-service",
                "resource:default/payments-db"
            ]
        );
        assert!(refs(&app.get("/api/search?term=zzz-nothing").await).is_empty());
        assert_eq!(app.get("/api/search?term=").await.status, 400);
    }

    async fn ancestry_follows_location_entities_to_the_root() {
        let Some(app) = TestApp::spawn(dialect).await else {
            return;
        };
        let r = app
            .get("/api/catalog/entities/by-name/Component/default/checkout-service/ancestry")
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(
            r.body["rootEntityRef"],
            "component:default/checkout-service"
        );
        let chain: Vec<(String, Value)> = r.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| {
                (
                    format!(
                        "{}:{}",
                        i["entity"]["kind"].as_str().unwrap(),
                        i["entity"]["metadata"]["name"].as_str().unwrap()
                    ),
                    i["parentEntityRefs"].clone(),
                )
            })
            .collect();
        assert_eq!(
            chain,
            vec![
                (
                    "Component:checkout-service".into(),
                    json!(["location:default/keel-components"])
                ),
                (
                    "Location:keel-components".into(),
                    json!(["location:default/keel-example"])
                ),
                ("Location:keel-example".into(), json!([])),
            ]
        );
        let missing = app
            .get("/api/catalog/entities/by-name/component/default/nope/ancestry")
            .await;
        assert_eq!(missing.status, 404);
        assert_eq!(missing.body["error"]["name"], "NotFoundError");
    }

    async fn post_facets_take_a_predicate() {
        let Some(app) = TestApp::spawn(dialect).await else {
            return;
        };
        let r = app
            .post(
                "/api/catalog/entity-facets",
                json!({"facets": ["kind", "spec.lifecycle"], "query": {"$all": [
                    {"kind": "component"},
                    {"$not": {"spec.lifecycle": "experimental"}},
                ]}}),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(
            r.body,
            json!({"facets": {
                "kind": [{"value": "Component", "count": 4}],
                "spec.lifecycle": [{"value": "production", "count": 4}],
            }})
        );
        // Without a query: the whole catalog, as GET without filters.
        let all = app
            .post("/api/catalog/entity-facets", json!({"facets": ["kind"]}))
            .await;
        let get = app.get("/api/catalog/entity-facets?facet=kind").await;
        assert_eq!(all.body, get.body);
        for (body, says) in [
            (json!({"facets": []}), "at least one facet"),
            (json!({"query": {"kind": "component"}}), "facets"),
            (
                json!({"facets": ["kind"], "query": {"$bogus": 1}}),
                "$bogus",
            ),
        ] {
            let r = app.post("/api/catalog/entity-facets", body.clone()).await;
            assert_eq!(r.status, 400, "{body}");
            let message = r.body["error"]["message"].as_str().unwrap();
            assert!(message.contains(says), "{body}: {message}");
        }
    }

    async fn analyze_location_lists_existing_files_or_suggests_a_component() {
        let Some(app) = TestApp::spawn(dialect).await else {
            return;
        };
        let root = app.dir.join("catalog");
        // Registered already (through the root Location): isRegistered.
        let r = app
            .post(
                "/api/catalog/analyze-location",
                json!({"location": {"type": "dir", "target": root.join("components/checkout-service").display().to_string()}}),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        let files = r.body["existingEntityFiles"].as_array().unwrap();
        assert_eq!(files.len(), 1);
        assert_eq!(files[0]["isRegistered"], true);
        assert_eq!(files[0]["entity"]["metadata"]["name"], "checkout-service");
        assert_eq!(files[0]["location"]["type"], "file");
        assert!(
            files[0]["location"]["target"]
                .as_str()
                .unwrap()
                .ends_with("components/checkout-service/catalog-info.yaml")
        );
        assert_eq!(r.body["generateEntities"], json!([]));

        // A new file: listed, not registered; analysing registers nothing.
        app.write(
            "new-thing/catalog-info.yaml",
            "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: new-thing\nspec:\n  type: service\n  lifecycle: experimental\n  owner: platform-team\n",
        );
        let r = app
            .post(
                "/api/catalog/analyze-location",
                json!({"location": {"type": "file", "target": root.join("new-thing/catalog-info.yaml").display().to_string()}}),
            )
            .await;
        assert_eq!(r.body["existingEntityFiles"][0]["isRegistered"], false);
        let after = app
            .get("/api/catalog/entities/by-name/component/default/new-thing")
            .await;
        assert_eq!(after.status, 404);
        assert_eq!(
            app.get("/api/catalog/locations")
                .await
                .body
                .as_array()
                .unwrap()
                .len(),
            1
        );

        // No catalog file: a Component to start from, named after the directory.
        std::fs::create_dir_all(root.join("empty-service/src")).unwrap();
        let r = app
            .post(
                "/api/catalog/analyze-location",
                json!({"location": {"type": "dir", "target": root.join("empty-service").display().to_string()}}),
            )
            .await;
        assert_eq!(r.body["existingEntityFiles"], json!([]));
        assert_eq!(
            r.body["generateEntities"],
            json!([{"entity": {
                "apiVersion": "backstage.io/v1alpha1",
                "kind": "Component",
                "metadata": {"name": "empty-service"},
                "spec": {"type": "other", "lifecycle": "unknown"},
            }, "fields": []}])
        );

        // catalogFilename narrows which files count.
        let r = app
            .post(
                "/api/catalog/analyze-location",
                json!({"location": {"type": "dir", "target": root.join("components").display().to_string()}, "catalogFilename": "all.yaml"}),
            )
            .await;
        let names: Vec<&str> = r.body["existingEntityFiles"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["entity"]["metadata"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["keel-components"]);

        // Bad input says what to change, and where.
        let outside = app
            .post(
                "/api/catalog/analyze-location",
                json!({"location": {"type": "dir", "target": "/etc"}}),
            )
            .await;
        assert_eq!(outside.status, 400);
        assert!(
            outside.body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("allowed"),
            "{}",
            outside.body
        );
        let shape = app
            .post("/api/catalog/analyze-location", json!({"type": "dir"}))
            .await;
        assert_eq!(shape.status, 400);
        assert!(
            shape.body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("location")
        );
    }

    async fn locations_by_query_filter_and_page() {
        let Some(app) = TestApp::spawn(dialect).await else {
            return;
        };
        for name in ["a", "b", "c"] {
            app.write(
                &format!("more/{name}/catalog-info.yaml"),
                &format!("apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: more-{name}\nspec:\n  type: service\n  lifecycle: experimental\n  owner: platform-team\n"),
            );
            let target = app
                .dir
                .join(format!("catalog/more/{name}"))
                .display()
                .to_string();
            let r = app
                .post(
                    "/api/catalog/locations",
                    json!({"type": "dir", "target": target}),
                )
                .await;
            assert_eq!(r.status, 201, "{}", r.body);
        }
        let first = app
            .post(
                "/api/catalog/locations/by-query",
                json!({"query": {"type": "DIR"}, "limit": 2}),
            )
            .await;
        assert_eq!(first.status, 200, "{}", first.body);
        assert_eq!(first.body["totalItems"], 3);
        let targets = |r: &Reply| -> Vec<String> {
            r.body["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| {
                    l["target"]
                        .as_str()
                        .unwrap()
                        .rsplit('/')
                        .next()
                        .unwrap()
                        .to_owned()
                })
                .collect()
        };
        assert_eq!(targets(&first), ["a", "b"]);
        let cursor = first.body["pageInfo"]["nextCursor"].as_str().unwrap();
        let second = app
            .post("/api/catalog/locations/by-query", json!({"cursor": cursor}))
            .await;
        assert_eq!(targets(&second), ["c"]);
        assert_eq!(second.body["pageInfo"], json!({}));

        let prefix = app.dir.join("catalog/more/b").display().to_string();
        let r = app
            .post(
                "/api/catalog/locations/by-query",
                json!({"query": {"$any": [{"target": {"$hasPrefix": prefix}}, {"type": "file"}]}}),
            )
            .await;
        assert_eq!(r.body["totalItems"], 2, "{}", r.body);
        let all = app.post("/api/catalog/locations/by-query", json!({})).await;
        assert_eq!(all.body["totalItems"], 4);
        let bad = app
            .post(
                "/api/catalog/locations/by-query",
                json!({"query": {"type": {"$near": 1}}}),
            )
            .await;
        assert_eq!(bad.status, 400);
        assert!(
            bad.body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("query.type")
        );
    }

    async fn updating_a_location_reads_its_new_target_at_once() {
        let Some(app) = TestApp::spawn(dialect).await else {
            return;
        };
        let component = |name: &str| {
            format!(
                "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: {name}\nspec:\n  type: service\n  lifecycle: experimental\n  owner: platform-team\n"
            )
        };
        app.write("old/catalog-info.yaml", &component("old-one"));
        app.write("new/catalog-info.yaml", &component("new-one"));
        let target = |rel: &str| app.dir.join("catalog").join(rel).display().to_string();
        let added = app
            .post(
                "/api/catalog/locations",
                json!({"type": "dir", "target": target("old")}),
            )
            .await;
        let id = added.body["location"]["id"].as_str().unwrap().to_owned();

        let r = app
            .request(
                "PUT",
                &format!("/api/catalog/locations/{id}"),
                Some(json!({"type": "file", "target": target("new/catalog-info.yaml")})),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body["type"], "file");
        assert_eq!(r.body["id"], id.as_str());
        let old = app
            .get("/api/catalog/entities/by-name/component/default/old-one")
            .await;
        assert_eq!(old.status, 404, "entities of the old target are gone");
        let new = app
            .get("/api/catalog/entities/by-name/component/default/new-one")
            .await;
        assert_eq!(new.status, 200);

        // Unknown id, a taken target, a target outside the roots, a bad body.
        let unknown = app
            .request(
                "PUT",
                "/api/catalog/locations/no-such-id",
                Some(json!({"type": "dir", "target": target("old")})),
            )
            .await;
        assert_eq!(unknown.status, 404);
        let root = app.get("/api/catalog/locations").await.body[0]["data"].clone();
        let taken = app
            .request(
                "PUT",
                &format!("/api/catalog/locations/{id}"),
                Some(json!({"type": root["type"], "target": root["target"]})),
            )
            .await;
        assert_eq!(taken.status, 409, "{}", taken.body);
        let outside = app
            .request(
                "PUT",
                &format!("/api/catalog/locations/{id}"),
                Some(json!({"type": "dir", "target": "/etc"})),
            )
            .await;
        assert_eq!(outside.status, 400);
        let shape = app
            .request(
                "PUT",
                &format!("/api/catalog/locations/{id}"),
                Some(json!({"type": "dir"})),
            )
            .await;
        assert_eq!(shape.status, 400);
        // Nothing refused changed the location.
        let still = app.get(&format!("/api/catalog/locations/{id}")).await;
        assert_eq!(still.body["type"], "file");
    }
    async fn a_body_over_the_limit_is_refused_before_it_is_read() {
        let Some(app) = TestApp::spawn(dialect).await else {
            return;
        };
        let big = "x".repeat(plinth_server::BODY_LIMIT + 1);
        let r = app
            .post("/api/catalog/validate-entity", json!({"location": "url:x", "entity": {"kind": big}}))
            .await;
        assert_eq!(r.status, 413, "{}", r.body);
        assert_eq!(r.body["error"]["name"], "PayloadTooLargeError");
        assert_eq!(r.body["error"]["message"], "the request body is over the limit of 16 MiB");
    }
});
