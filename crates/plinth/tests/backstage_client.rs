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

    let scratch = Scratch::new("backstage-client-run");
    std::fs::create_dir_all(scratch.0.join("extra")).unwrap();
    let extra = scratch.0.join("extra/catalog-info.yaml");
    std::fs::write(
        &extra,
        "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: extra\nspec:\n  type: service\n  lifecycle: experimental\n  owner: platform-team\n",
    )
    .unwrap();
    let server = Server::start(&scratch.0, &scratch.0.join("data"), &["--demo"]);
    let base = server.base_url();

    let out = Command::new("node")
        .arg("calls.js")
        .arg(&base)
        .arg(&extra)
        .current_dir(&client_dir)
        .output()
        .unwrap();
    drop(server);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        got,
        json!({
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
