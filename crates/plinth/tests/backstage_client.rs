//! Backstage's own catalog client (`@backstage/catalog-client` from npm),
//! unchanged, against the real `plinth serve --demo`.

use std::process::Command;

use serde_json::{Value, json};

mod common;
use common::{Scratch, Server, npm_package, unavailable};

#[test]
fn backstage_catalog_client_works_unchanged() {
    if Command::new("node").arg("--version").output().is_err() {
        return unavailable("node and npm (Debian: apt-get install nodejs npm)");
    }
    let Some(client_dir) = npm_package(
        "backstage_client",
        &["package.json", "calls.js"],
        "@backstage/catalog-client/package.json",
    ) else {
        return unavailable("npm install @backstage/catalog-client (no registry?)");
    };

    // Once as the local user (127.0.0.1, no token), once against a server
    // that requires tokens, with one from `plinth token create`.
    for with_token in [false, true] {
        let scratch = Scratch::new(&format!("backstage-client-run-{with_token}"));
        std::fs::create_dir_all(scratch.0.join("extra")).unwrap();
        let extra = scratch.0.join("extra/catalog-info.yaml");
        std::fs::write(
            &extra,
            "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: extra\nspec:\n  type: service\n  lifecycle: experimental\n  owner: platform-team\n",
        )
        .unwrap();
        let data = scratch.0.join("data");
        let mut args = vec!["--demo"];
        if with_token {
            args.extend(["--anonymous", "none"]);
        }
        let server = Server::start(&scratch.0, &data, &args);
        let base = server.base_url();
        // Made on the server's store, as an operator does for the first token.
        let token = with_token.then(|| {
            let made = common::plinth(
                &scratch.0,
                &[
                    "token",
                    "create",
                    "--data-dir",
                    data.to_str().unwrap(),
                    "--name",
                    "backstage",
                    "--service",
                    "backstage",
                    "--role",
                    "platform-admin",
                    "--scope",
                    "admin",
                ],
            );
            assert_eq!(made.code, 0, "{}", made.stderr);
            made.stdout.trim().to_owned()
        });

        let out = Command::new("node")
            .arg("calls.js")
            .arg(&base)
            .arg(&extra)
            .args(token.as_deref())
            .current_dir(&client_dir)
            .output()
            .unwrap();
        drop(server);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut got: Value = serde_json::from_slice(&out.stdout).unwrap();
        if with_token {
            assert_eq!(
                got["tokens"],
                json!({"perCall": "keel", "without": "ResponseError 401"})
            );
            got.as_object_mut().unwrap().remove("tokens");
        }
        check(&got);
    }
}

/// What every call of calls.js must have answered.
fn check(got: &Value) {
    assert_eq!(
        got,
        &json!({
            "getEntities": ["checkout-service", "design-system", "payments-service", "storefront-web"],
            "getEntitiesFields": ["metadata"],
            "queryEntities": {
                "totalItems": 8,
                "first": ["amara.nwosu", "ines.moreau", "jonas.berg"],
                "second": ["lee.chen", "maria.lopez", "priya.raman"],
                "hasPrev": true,
            },
            "queryEntitiesPredicate": {"items": ["payments-api", "checkout-api"], "totalItems": 2},
            "getEntitiesByRefs": ["checkout-api", null, "keel"],
            "getEntityByRef": {"name": "checkout-service", "owner": "group:default/checkout-team", "missing": true},
            "getEntityFacets": {"kind": [{"value": "API", "count": 3}, {"value": "Domain", "count": 2}]},
            "getEntityFacetsPredicate": {"spec.lifecycle": [{"value": "experimental", "count": 2}, {"value": "production", "count": 4}]},
            "getEntityAncestors": {
                "root": "component:default/checkout-service",
                "chain": [
                    ["checkout-service", ["location:default/keel-components"]],
                    ["keel-components", ["location:default/keel-example"]],
                    ["keel-example", []],
                ],
            },
            "analyzeLocation": {"existing": [["extra", false]], "generate": 0},
            "getLocations": 1,
            "addLocationDryRun": {"entities": ["extra"], "exists": false},
            "addLocation": {"type": "file", "entities": ["extra"]},
            "getLocationsAfterAdd": 2,
            "queryLocations": {"totalItems": 2, "pages": [1, 1], "streamed": 2},
            "updateLocation": {"same": true, "type": "file"},
            "refreshEntity": "ok",
            "removeEntityByUid": true,
            "validateEntity": {
                "valid": true,
                "invalid": false,
                "errors": ["spec.owner: is required; add the group or user that owns it, for example \"team-a\" or \"user:jdoe\""],
            },
            "addLocationOutsideRoots": "ResponseError",
        })
    );
}
