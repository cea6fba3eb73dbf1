use serde_json::{Value, json};

use crate::{Kinds, validate_entity};

/// Validates an entity of `kind` in namespace `ns` with `spec`, and lists its
/// relations as `source type target`, in the order they are derived.
fn check(kind: &str, ns: &str, spec: Value, expected: &[&str]) {
    let v = json!({
        "apiVersion": "backstage.io/v1alpha1",
        "kind": kind,
        "metadata": {"name": "self", "namespace": ns},
        "spec": spec,
    });
    let entity = validate_entity(v, &Kinds::default()).expect("valid");
    let got: Vec<String> = entity.relations().iter().map(ToString::to_string).collect();
    assert_eq!(got, expected);
}

#[test]
fn component_fields() {
    check(
        "Component",
        "default",
        json!({
            "type": "service", "lifecycle": "production",
            "owner": "team-a",
            "system": "shop",
            "subcomponentOf": "platform",
            "providesApis": ["orders-api"],
            "consumesApis": ["payments/pay-api"],
            "dependsOn": ["resource:orders-db"],
            "dependencyOf": ["component:storefront"],
        }),
        &[
            "component:default/self ownedBy group:default/team-a",
            "group:default/team-a ownerOf component:default/self",
            "component:default/self partOf system:default/shop",
            "system:default/shop hasPart component:default/self",
            "component:default/self partOf component:default/platform",
            "component:default/platform hasPart component:default/self",
            "component:default/self providesApi api:default/orders-api",
            "api:default/orders-api apiProvidedBy component:default/self",
            "component:default/self consumesApi api:payments/pay-api",
            "api:payments/pay-api apiConsumedBy component:default/self",
            "component:default/self dependsOn resource:default/orders-db",
            "resource:default/orders-db dependencyOf component:default/self",
            "component:default/self dependencyOf component:default/storefront",
            "component:default/storefront dependsOn component:default/self",
        ],
    );
}

#[test]
fn api_fields() {
    check(
        "API",
        "shop",
        json!({"type": "openapi", "lifecycle": "production", "owner": "user:jdoe", "system": "checkout", "definition": "x"}),
        &[
            "api:shop/self ownedBy user:shop/jdoe",
            "user:shop/jdoe ownerOf api:shop/self",
            "api:shop/self partOf system:shop/checkout",
            "system:shop/checkout hasPart api:shop/self",
        ],
    );
}

#[test]
fn resource_fields() {
    check(
        "Resource",
        "default",
        json!({"type": "database", "owner": "team-a", "system": "shop", "dependsOn": ["resource:disk"], "dependencyOf": ["component:orders"]}),
        &[
            "resource:default/self ownedBy group:default/team-a",
            "group:default/team-a ownerOf resource:default/self",
            "resource:default/self partOf system:default/shop",
            "system:default/shop hasPart resource:default/self",
            "resource:default/self dependsOn resource:default/disk",
            "resource:default/disk dependencyOf resource:default/self",
            "resource:default/self dependencyOf component:default/orders",
            "component:default/orders dependsOn resource:default/self",
        ],
    );
}

#[test]
fn system_and_domain_fields() {
    check(
        "System",
        "default",
        json!({"owner": "team-a", "domain": "commerce"}),
        &[
            "system:default/self ownedBy group:default/team-a",
            "group:default/team-a ownerOf system:default/self",
            "system:default/self partOf domain:default/commerce",
            "domain:default/commerce hasPart system:default/self",
        ],
    );
    check(
        "Domain",
        "default",
        json!({"owner": "team-a", "subdomainOf": "business"}),
        &[
            "domain:default/self ownedBy group:default/team-a",
            "group:default/team-a ownerOf domain:default/self",
            "domain:default/self partOf domain:default/business",
            "domain:default/business hasPart domain:default/self",
        ],
    );
}

#[test]
fn group_and_user_fields() {
    check(
        "Group",
        "org",
        json!({"type": "team", "parent": "eng", "children": ["web", "default/mobile"], "members": ["jdoe"]}),
        &[
            "group:org/self childOf group:org/eng",
            "group:org/eng parentOf group:org/self",
            "group:org/self parentOf group:org/web",
            "group:org/web childOf group:org/self",
            "group:org/self parentOf group:default/mobile",
            "group:default/mobile childOf group:org/self",
            "group:org/self hasMember user:org/jdoe",
            "user:org/jdoe memberOf group:org/self",
        ],
    );
    check(
        "User",
        "org",
        json!({"memberOf": ["Team-A", "group:other/B"]}),
        &[
            "user:org/self memberOf group:org/team-a",
            "group:org/team-a hasMember user:org/self",
            "user:org/self memberOf group:other/b",
            "group:other/b hasMember user:org/self",
        ],
    );
}

#[test]
fn locations_have_no_relations() {
    check("Location", "default", json!({"targets": ["./a.yaml"]}), &[]);
}

#[test]
fn every_relation_has_its_reverse() {
    use crate::RelationType;
    for r in RelationType::ALL {
        assert_eq!(r.reverse().reverse(), r);
        assert_ne!(r.reverse(), r);
    }
}
