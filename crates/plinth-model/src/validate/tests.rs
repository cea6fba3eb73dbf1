use serde_json::{Value, json};

use super::*;

/// A minimal valid entity of each built-in kind: only required fields.
fn minimal(kind: &str) -> Value {
    let spec = match kind {
        "Component" => json!({"type": "service", "lifecycle": "production", "owner": "team-a"}),
        "API" => {
            json!({"type": "openapi", "lifecycle": "production", "owner": "team-a", "definition": "openapi: 3.0.0"})
        }
        "Resource" => json!({"type": "database", "owner": "team-a"}),
        "System" | "Domain" => json!({"owner": "team-a"}),
        "Group" => json!({"type": "team", "children": []}),
        "User" => json!({"memberOf": []}),
        "Location" => json!({}),
        other => panic!("no minimal entity for {other}"),
    };
    json!({
        "apiVersion": "backstage.io/v1alpha1",
        "kind": kind,
        "metadata": {"name": "example"},
        "spec": spec,
    })
}

const KINDS: [&str; 8] = [
    "Component",
    "API",
    "Resource",
    "System",
    "Domain",
    "Group",
    "User",
    "Location",
];

/// Sets (or with `None` removes) the field at a dotted path.
fn with(mut v: Value, path: &str, new: Option<Value>) -> Value {
    let (parents, last) = match path.rsplit_once('.') {
        Some((p, l)) => (Some(p), l),
        None => (None, path),
    };
    let mut node = &mut v;
    for key in parents.into_iter().flat_map(|p| p.split('.')) {
        node = &mut node[key];
    }
    let map = node.as_object_mut().expect("parent is a mapping");
    match new {
        Some(n) => map.insert(last.to_owned(), n),
        None => map.remove(last),
    };
    v
}

fn problems_of(v: Value, kinds: &Kinds) -> Vec<String> {
    match validate_entity(v, kinds) {
        Ok(_) => vec![],
        Err(invalid) => invalid.problems.iter().map(ToString::to_string).collect(),
    }
}

/// Validates with the built-in kinds; `expected` lists every problem.
fn check(v: Value, expected: &[&str]) {
    let got = problems_of(v.clone(), &Kinds::default());
    assert_eq!(got, expected, "for {v:#}");
}

#[test]
fn minimal_entities_of_every_kind_are_valid() {
    for kind in KINDS {
        check(minimal(kind), &[]);
        check(
            with(
                minimal(kind),
                "apiVersion",
                Some(json!("backstage.io/v1beta1")),
            ),
            &[],
        );
    }
}

#[test]
fn namespace_is_filled_in() {
    let e = validate_entity(minimal("Component"), &Kinds::default()).unwrap();
    assert_eq!(e.value()["metadata"]["namespace"], "default");
    assert_eq!(e.entity_ref().to_string(), "component:default/example");
    let e = validate_entity(
        with(
            minimal("Component"),
            "metadata.namespace",
            Some(json!("payments")),
        ),
        &Kinds::default(),
    )
    .unwrap();
    assert_eq!(e.namespace(), "payments");
}

#[test]
fn required_spec_fields_match_backstage() {
    let required: &[(&str, &[&str])] = &[
        ("Component", &["type", "lifecycle", "owner"]),
        ("API", &["type", "lifecycle", "owner", "definition"]),
        ("Resource", &["type", "owner"]),
        ("System", &["owner"]),
        ("Domain", &["owner"]),
        ("Group", &["type", "children"]),
        ("User", &["memberOf"]),
        ("Location", &[]),
    ];
    for (kind, fields) in required {
        let spec = minimal(kind)["spec"].as_object().unwrap().clone();
        assert_eq!(
            spec.keys().collect::<Vec<_>>(),
            fields.iter().collect::<Vec<_>>()
        );
        for field in *fields {
            let got = problems_of(
                with(minimal(kind), &format!("spec.{field}"), None),
                &Kinds::default(),
            );
            assert_eq!(got.len(), 1, "{kind} without {field}: {got:?}");
            assert!(
                got[0].starts_with(&format!("spec.{field}: is required; add ")),
                "{kind} without {field}: {got:?}"
            );
        }
    }
}

#[test]
fn required_field_messages_say_what_to_write() {
    check(
        with(minimal("Component"), "spec.owner", None),
        &[
            "spec.owner: is required; add the group or user that owns it, for example \"team-a\" or \"user:jdoe\"",
        ],
    );
    check(
        with(minimal("Group"), "spec.children", None),
        &["spec.children: is required; add its child groups; write children: [] when it has none"],
    );
    check(
        with(minimal("Component"), "spec", None),
        &["spec: is required for a component; add spec with type, lifecycle and owner"],
    );
    check(
        with(minimal("Location"), "spec", None),
        &["spec: is required for a location; add spec: {} at least"],
    );
}

#[test]
fn spec_field_types_are_checked() {
    // Every typed field of every kind, given a number instead.
    let typed: &[(&str, &str, &str)] = &[
        ("Component", "type", "a string"),
        ("Component", "lifecycle", "a string"),
        ("Component", "owner", "a string"),
        ("Component", "system", "a string"),
        ("Component", "subcomponentOf", "a string"),
        ("Component", "providesApis", "a list of strings"),
        ("Component", "consumesApis", "a list of strings"),
        ("Component", "dependsOn", "a list of strings"),
        ("Component", "dependencyOf", "a list of strings"),
        ("API", "type", "a string"),
        ("API", "lifecycle", "a string"),
        ("API", "owner", "a string"),
        ("API", "system", "a string"),
        ("API", "definition", "a string"),
        ("Resource", "type", "a string"),
        ("Resource", "owner", "a string"),
        ("Resource", "system", "a string"),
        ("Resource", "dependsOn", "a list of strings"),
        ("Resource", "dependencyOf", "a list of strings"),
        ("System", "owner", "a string"),
        ("System", "domain", "a string"),
        ("System", "type", "a string"),
        ("Domain", "owner", "a string"),
        ("Domain", "subdomainOf", "a string"),
        ("Domain", "type", "a string"),
        ("Group", "type", "a string"),
        ("Group", "children", "a list of strings"),
        ("Group", "parent", "a string"),
        ("Group", "members", "a list of strings"),
        ("Group", "profile", "a mapping"),
        ("User", "memberOf", "a list of strings"),
        ("User", "profile", "a mapping"),
        ("Location", "type", "a string"),
        ("Location", "target", "a string"),
        ("Location", "targets", "a list of strings"),
    ];
    for (kind, field, expected) in typed {
        let v = with(minimal(kind), &format!("spec.{field}"), Some(json!(5)));
        let message = format!("spec.{field}: must be {expected}, not the number 5");
        check(v, &[&message]);
    }
}

#[test]
fn strings_and_list_items_must_not_be_empty() {
    check(
        with(minimal("Component"), "spec.lifecycle", Some(json!(""))),
        &[
            "spec.lifecycle: must not be empty; write its lifecycle, for example \"experimental\", \"production\" or \"deprecated\"",
        ],
    );
    check(
        with(
            minimal("Component"),
            "spec.providesApis",
            Some(json!(["a", "", 3])),
        ),
        &[
            "spec.providesApis[1]: must not be empty",
            "spec.providesApis[2]: must be a string, not the number 3",
        ],
    );
    check(
        with(
            minimal("User"),
            "spec.profile",
            Some(json!({"email": "", "displayName": true})),
        ),
        &[
            "spec.profile.displayName: must be a string, not the boolean true",
            "spec.profile.email: must not be empty; write an e-mail address",
        ],
    );
    // Fields not in the kind's schema are free.
    check(
        with(
            minimal("Component"),
            "spec.anything",
            Some(json!({"x": [1]})),
        ),
        &[],
    );
}

#[test]
fn null_values_say_to_fill_or_remove() {
    check(
        with(minimal("Component"), "spec.system", Some(Value::Null)),
        &["spec.system: has no value; write a string here, or remove the key"],
    );
    check(
        with(
            minimal("Component"),
            "metadata.namespace",
            Some(Value::Null),
        ),
        &["metadata.namespace: has no value; write a string here, or remove the key"],
    );
}

#[test]
fn envelope() {
    check(
        json!(["not", "a", "mapping"]),
        &[
            "an entity must be a mapping with apiVersion, kind, metadata and spec, but this document is a list",
        ],
    );
    check(
        json!("text"),
        &[
            "an entity must be a mapping with apiVersion, kind, metadata and spec, but this document is a string",
        ],
    );
    check(
        with(minimal("Component"), "owner", Some(json!("team-a"))),
        &[
            "owner: is not an entity field; an entity has only apiVersion, kind, metadata, spec, relations and status at its root, so move it under metadata or spec",
        ],
    );
    check(
        json!({}),
        &[
            "apiVersion: is required; write the apiVersion, for example backstage.io/v1alpha1",
            "kind: is required; write the kind, for example Component",
            "metadata: is required; add metadata with at least a name",
        ],
    );
    check(
        with(minimal("Component"), "metadata", Some(json!("x"))),
        &["metadata: must be a mapping with at least a name, not a string"],
    );
    check(
        with(minimal("Component"), "spec", Some(json!([]))),
        &["spec: must be a mapping, not a list"],
    );
    check(
        with(minimal("Component"), "status", Some(json!([]))),
        &["status: must be a mapping, not a list"],
    );
    check(
        with(minimal("Component"), "status", Some(json!({"items": []}))),
        &[],
    );
    check(
        with(
            minimal("Component"),
            "relations",
            Some(json!([{"type": "ownedBy", "targetRef": "group:default/a"}, {"type": "a-b"}])),
        ),
        &[
            "relations[1].type: \"a-b\" must be a word of letters, digits and _",
            "relations[1]: needs a targetRef string; relations are computed by the catalog, so you can remove them",
        ],
    );
}

#[test]
fn api_version_and_kind() {
    check(
        with(
            minimal("Component"),
            "apiVersion",
            Some(json!("backstage.io/v2")),
        ),
        &[
            "apiVersion: \"backstage.io/v2\" is not an apiVersion of kind Component; use backstage.io/v1alpha1 or backstage.io/v1beta1",
        ],
    );
    check(
        with(minimal("Component"), "apiVersion", Some(json!("a/b/c"))),
        &[
            "apiVersion: \"a/b/c\" has more than one \"/\"; use the form [<prefix>/]<name>",
            "apiVersion: \"a/b/c\" is not an apiVersion of kind Component; use backstage.io/v1alpha1 or backstage.io/v1beta1",
        ],
    );
    check(
        with(minimal("Component"), "apiVersion", Some(json!(1))),
        &["apiVersion: must be a string, not the number 1"],
    );
    check(
        with(minimal("Component"), "kind", Some(json!("component"))),
        &["kind: \"component\" is not a known kind; kinds are case-sensitive, write Component"],
    );
    check(
        with(minimal("Component"), "kind", Some(json!("Template"))),
        &[
            "kind: \"Template\" is not a known kind (known: Component, API, Resource, System, Domain, Group, User, Location); to accept it, declare it as a custom kind (catalog.kinds in plinth.toml, or --kind Template), and only its envelope will be checked",
        ],
    );
    check(
        with(minimal("Component"), "kind", Some(json!("1x"))),
        &[
            "kind: \"1x\" must start with a letter",
            "kind: \"1x\" is not a known kind (known: Component, API, Resource, System, Domain, Group, User, Location); to accept it, declare it as a custom kind (catalog.kinds in plinth.toml, or --kind 1x), and only its envelope will be checked",
        ],
    );
}

#[test]
fn declared_kinds_check_only_the_envelope() {
    let kinds = Kinds::with_declared(["Template".to_owned()]);
    let template = json!({
        "apiVersion": "scaffolder.backstage.io/v1beta3",
        "kind": "Template",
        "metadata": {"name": "new-service"},
        "spec": {"steps": "anything goes here"},
    });
    assert_eq!(problems_of(template.clone(), &kinds), Vec::<String>::new());
    // Without spec too, and with any apiVersion.
    assert_eq!(
        problems_of(with(template.clone(), "spec", None), &kinds),
        Vec::<String>::new()
    );
    // The envelope still counts.
    assert_eq!(
        problems_of(
            with(template.clone(), "metadata.name", Some(json!("-x"))),
            &kinds
        ),
        ["metadata.name: \"-x\" must start with a letter or digit, not \"-\""]
    );
    assert_eq!(
        problems_of(with(template, "spec", Some(json!(1))), &kinds),
        ["spec: must be a mapping, not the number 1"]
    );
    // Declared kinds are case-sensitive too.
    let lower = json!({"apiVersion": "x/v1", "kind": "template", "metadata": {"name": "a"}});
    assert_eq!(
        problems_of(lower, &kinds),
        ["kind: \"template\" is not a known kind; kinds are case-sensitive, write Template"]
    );
}

#[test]
fn metadata_name_and_namespace() {
    let n63 = "a".repeat(63);
    let n64 = "a".repeat(64);
    check(
        with(minimal("Component"), "metadata.name", Some(json!(n63))),
        &[],
    );
    check(
        with(minimal("Component"), "metadata.name", Some(json!(n64))),
        &[
            "metadata.name: \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\" is 64 characters long; at most 63 are allowed",
        ],
    );
    check(
        with(minimal("Component"), "metadata.name", Some(json!("naïve"))),
        &[
            "metadata.name: \"naïve\" contains \"ï\"; use only letters, digits and the separators - _ .",
        ],
    );
    check(
        with(minimal("Component"), "metadata.name", None),
        &["metadata.name: is required; add a name: 1 to 63 letters, digits and - _ . separators"],
    );
    check(
        with(minimal("Component"), "metadata.name", Some(json!(12))),
        &["metadata.name: must be a string, not the number 12"],
    );
    check(
        with(
            minimal("Component"),
            "metadata.namespace",
            Some(json!("Team_A")),
        ),
        &[
            "metadata.namespace: \"Team_A\" contains \"T\"; use lowercase; use only a-z, 0-9, separated by single dashes",
        ],
    );
}

#[test]
fn metadata_optional_fields() {
    let m =
        |field: &str, v: Value| with(minimal("Component"), &format!("metadata.{field}"), Some(v));
    check(m("title", json!("Nice")), &[]);
    check(
        m("title", json!(1)),
        &["metadata.title: must be a string, not the number 1"],
    );
    check(
        m("description", json!(["x"])),
        &["metadata.description: must be a string, not a list"],
    );
    check(m("description", json!("")), &[]);
    check(
        m("uid", json!("")),
        &["metadata.uid: \"\" must not be empty"],
    );
    check(
        m("etag", json!(3)),
        &["metadata.etag: must be a string, not the number 3"],
    );
    check(m("generation", json!(1)), &[]);
    check(
        m("generation", json!(0)),
        &["metadata.generation: must be a whole number of at least 1, not the number 0"],
    );
    check(m("extra", json!({"any": "thing"})), &[]);
}

#[test]
fn labels_and_annotations() {
    let long_prefix = format!("{0}.{0}.{0}.{1}/x", "a".repeat(63), "a".repeat(62));
    let labels = json!({
        "ok": "value",
        "empty-value": "",
        "example.com/team": "a_b.c",
        "bad key": "x",
        "k": "bad value",
        "n": 5,
        long_prefix.clone(): "x",
    });
    let expected_long = format!(
        "metadata.labels[\"{long_prefix}\"]: the key \"{long_prefix}\" prefix \"{}\" is 254 characters long; at most 253 are allowed",
        long_prefix.trim_end_matches("/x")
    );
    check(
        with(minimal("Component"), "metadata.labels", Some(labels)),
        &[
            "metadata.labels[\"bad key\"]: the key \"bad key\" contains a space; use only letters, digits and the separators - _ .",
            "metadata.labels.k: the value \"bad value\" contains a space; use only letters, digits and the separators - _ .",
            "metadata.labels.n: must be a string (quote it), not the number 5",
            &expected_long,
        ],
    );
    let annotations = json!({
        "backstage.io/techdocs-ref": "dir:.",
        "free": "any text at all: spaces, ünïcode, /slashes/",
        "a/b/c": "x",
        "flag": true,
    });
    check(
        with(
            minimal("Component"),
            "metadata.annotations",
            Some(annotations),
        ),
        &[
            "metadata.annotations[\"a/b/c\"]: the key \"a/b/c\" has more than one \"/\"; use the form [<prefix>/]<name>",
            "metadata.annotations.flag: must be a string (quote it), not the boolean true",
        ],
    );
    check(
        with(minimal("Component"), "metadata.labels", Some(json!(["a"]))),
        &["metadata.labels: must be a mapping of strings, not a list"],
    );
}

#[test]
fn tags_and_links() {
    check(
        with(
            minimal("Component"),
            "metadata.tags",
            Some(json!(["java", "c++", "c#", "k8s:v1", "Java", "a b", 3])),
        ),
        &[
            "metadata.tags[4]: \"Java\" contains \"J\"; use lowercase; use only a-z, 0-9, : + #, separated by single dashes",
            "metadata.tags[5]: \"a b\" contains a space; use only a-z, 0-9, : + #, separated by single dashes",
            "metadata.tags[6]: must be a string, not the number 3",
        ],
    );
    check(
        with(minimal("Component"), "metadata.tags", Some(json!("java"))),
        &["metadata.tags: must be a list of tags, not a string"],
    );
    check(
        with(
            minimal("Component"),
            "metadata.links",
            Some(json!([
                {"url": "https://example.com", "title": "Docs", "icon": "docs", "type": "doc"},
                {"url": "example.com", "title": " ", "icon": "bad icon"},
                {"title": "x"},
                "https://example.com",
            ])),
        ),
        &[
            "metadata.links[1].url: \"example.com\" has no scheme; write an absolute URL such as https://example.com/docs",
            "metadata.links[1].title: \" \" must not be blank",
            "metadata.links[1].icon: \"bad icon\" contains a space; use only letters, digits and the separators - _ .",
            "metadata.links[2].url: is required; add the link's url",
            "metadata.links[3]: must be a mapping with url and optional title, icon and type, not a string",
        ],
    );
}

#[test]
fn api_v1alpha2() {
    let api = |spec: Value| json!({"apiVersion": "backstage.io/v1alpha2", "kind": "API", "metadata": {"name": "a"}, "spec": spec});
    check(
        api(json!({"type": "openapi", "lifecycle": "production", "owner": "t", "definition": "x"})),
        &[],
    );
    check(
        api(json!({"type": "openapi", "lifecycle": "production", "owner": "t"})),
        &[
            "spec.definition: is required; add the API definition as text, for example an OpenAPI document in a block scalar (definition: |)",
        ],
    );
    check(
        api(
            json!({"type": "mcp-server", "lifecycle": "production", "owner": "t", "remotes": [{"type": "sse", "url": "http://x"}]}),
        ),
        &[],
    );
    check(
        api(json!({"type": "mcp-server", "lifecycle": "production", "owner": "t"})),
        &[
            "spec.remotes: is required when type is \"mcp-server\"; list the server's endpoints, each with type and url",
        ],
    );
    check(
        api(
            json!({"type": "mcp-server", "lifecycle": "production", "owner": "t", "remotes": [{"type": "sse"}]}),
        ),
        &["spec.remotes[0].url: is required; add the URL of the endpoint"],
    );
    check(
        api(json!({"type": "mcp-server", "lifecycle": "production", "owner": "t", "remotes": []})),
        &["spec.remotes: must list at least 1 item(s)"],
    );
}

#[test]
fn references_that_cannot_be_parsed_are_problems() {
    check(
        with(
            minimal("Component"),
            "spec.dependsOn",
            Some(json!(["resource:db", "db"])),
        ),
        &[
            "spec.dependsOn[1]: \"db\" has no kind; write it with one, for example \"component:db\" or \"resource:db\"",
        ],
    );
    check(
        with(
            minimal("Resource"),
            "spec.dependencyOf",
            Some(json!(["component:/x"])),
        ),
        &[
            "spec.dependencyOf[0]: \"component:/x\" has an empty namespace; write it as [<kind>:][<namespace>/]<name>",
        ],
    );
    check(
        with(minimal("Component"), "spec.owner", Some(json!("group:"))),
        &["spec.owner: \"group:\" has an empty name; write it as [<kind>:][<namespace>/]<name>"],
    );
}

#[test]
fn all_problems_are_reported_at_once() {
    let v = json!({
        "apiVersion": "backstage.io/v1alpha1",
        "kind": "Component",
        "metadata": {"name": "-bad-", "tags": ["UPPER"]},
        "spec": {"type": "service", "owner": 7},
        "extra": 1,
    });
    let invalid = validate_entity(v, &Kinds::default()).unwrap_err();
    assert_eq!(invalid.label, "component:default/-bad-");
    let got: Vec<String> = invalid.problems.iter().map(ToString::to_string).collect();
    assert_eq!(
        got,
        [
            "extra: is not an entity field; an entity has only apiVersion, kind, metadata, spec, relations and status at its root, so move it under metadata or spec",
            "metadata.name: \"-bad-\" must start with a letter or digit, not \"-\"",
            "metadata.tags[0]: \"UPPER\" contains \"U\"; use lowercase; use only a-z, 0-9, : + #, separated by single dashes",
            "spec.lifecycle: is required; add its lifecycle, for example \"experimental\", \"production\" or \"deprecated\"",
            "spec.owner: must be a string, not the number 7",
        ]
    );
}
