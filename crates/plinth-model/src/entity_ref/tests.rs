use super::*;
use proptest::prelude::*;

/// `expected` is the canonical reference or `error: <message>`.
fn check(text: &str, default_kind: Option<&str>, default_namespace: &str, expected: &str) {
    let defaults = RefDefaults {
        kind: default_kind,
        namespace: default_namespace,
    };
    let got = match EntityRef::parse(text, defaults) {
        Ok(r) => r.to_string(),
        Err(e) => format!("error: {e}"),
    };
    assert_eq!(got, expected, "parsing {text:?} with {defaults:?}");
}

#[test]
fn full_references() {
    check(
        "component:default/foo",
        None,
        "default",
        "component:default/foo",
    );
    check(
        "Component:Default/Foo",
        None,
        "default",
        "component:default/foo",
    );
    check(
        "group:team-ns/Team-A",
        Some("User"),
        "other",
        "group:team-ns/team-a",
    );
}

#[test]
fn defaulting() {
    // Missing kind takes the field's default kind.
    check("foo", Some("Group"), "default", "group:default/foo");
    // Missing namespace takes the referring entity's namespace, not "default".
    check("foo", Some("Group"), "payments", "group:payments/foo");
    check("user:foo", Some("Group"), "payments", "user:payments/foo");
    check("ns/foo", Some("API"), "payments", "api:ns/foo");
    // An explicit namespace wins over the context.
    check(
        "group:default/foo",
        Some("Group"),
        "payments",
        "group:default/foo",
    );
    // No kind and no default kind (dependsOn) is an error.
    check(
        "foo",
        None,
        "default",
        "error: \"foo\" has no kind; write it with one, for example \"component:foo\" or \"resource:foo\"",
    );
    check(
        "ns/foo",
        None,
        "default",
        "error: \"ns/foo\" has no kind; write it with one, for example \"component:ns/foo\" or \"resource:ns/foo\"",
    );
}

#[test]
fn empty_parts() {
    check(
        "",
        Some("Group"),
        "default",
        "error: an entity reference must not be empty",
    );
    check(
        ":foo",
        Some("Group"),
        "default",
        "error: \":foo\" has an empty kind; write it as [<kind>:][<namespace>/]<name>",
    );
    check(
        "group:/foo",
        None,
        "default",
        "error: \"group:/foo\" has an empty namespace; write it as [<kind>:][<namespace>/]<name>",
    );
    check(
        "/foo",
        Some("Group"),
        "default",
        "error: \"/foo\" has an empty namespace; write it as [<kind>:][<namespace>/]<name>",
    );
    check(
        "group:",
        None,
        "default",
        "error: \"group:\" has an empty name; write it as [<kind>:][<namespace>/]<name>",
    );
    check(
        "group:ns/",
        None,
        "default",
        "error: \"group:ns/\" has an empty name; write it as [<kind>:][<namespace>/]<name>",
    );
}

#[test]
fn extra_separators_follow_current_backstage() {
    // A slash before the first colon makes the colon part of the name.
    check("ns/a:b", Some("Group"), "default", "group:ns/a:b");
    // Further colons and slashes stay in the name or namespace.
    check("a:b:c", None, "default", "a:default/b:c");
    check("a:b/c/d", None, "default", "a:b/c/d");
    check("a/b/c", Some("Group"), "default", "group:a/b/c");
}

#[test]
fn comparison_is_case_insensitive() {
    let a: EntityRef = "Component:Default/Foo".parse().unwrap();
    let b: EntityRef = "component:default/foo".parse().unwrap();
    assert_eq!(a, b);
    assert_eq!(
        EntityRef::new("API", "NS", "Petstore"),
        "api:ns/petstore".parse().unwrap()
    );
}

#[test]
fn serde_uses_the_string_form() {
    let r: EntityRef = "group:default/a".parse().unwrap();
    assert_eq!(serde_json::to_string(&r).unwrap(), "\"group:default/a\"");
    let back: EntityRef = serde_json::from_str("\"Group:Default/A\"").unwrap();
    assert_eq!(back, r);
    assert!(serde_json::from_str::<EntityRef>("\"a\"").is_err());
}

fn kind() -> impl Strategy<Value = String> {
    "[a-zA-Z][a-zA-Z0-9]{0,20}"
}

fn namespace() -> impl Strategy<Value = String> {
    "[a-z0-9]{1,10}(-[a-z0-9]{1,10}){0,2}"
}

/// Names may hold anything but nothing empty; colons and slashes included.
fn name() -> impl Strategy<Value = String> {
    "[^\\s]{1,30}"
}

proptest! {
    #[test]
    fn printing_then_parsing_round_trips(k in kind(), ns in namespace(), n in name()) {
        let r = EntityRef::new(&k, &ns, &n);
        let printed = r.to_string();
        prop_assert_eq!(EntityRef::parse(&printed, RefDefaults::default()), Ok(r.clone()));
        // Canonical form is a fixed point.
        prop_assert_eq!(EntityRef::parse(&printed, RefDefaults::default()).unwrap().to_string(), printed);
    }

    #[test]
    fn parsing_ignores_case(k in kind(), ns in namespace(), n in "[a-zA-Z0-9._-]{1,30}") {
        let text = format!("{k}:{ns}/{n}");
        let lower = EntityRef::parse(&text.to_lowercase(), RefDefaults::default()).unwrap();
        let upper = EntityRef::parse(&text.to_uppercase(), RefDefaults::default()).unwrap();
        prop_assert_eq!(lower, upper);
    }

    #[test]
    fn parsing_never_panics(text in "\\PC{0,40}") {
        let _ = EntityRef::parse(&text, RefDefaults { kind: Some("Group"), namespace: "default" });
    }
}
