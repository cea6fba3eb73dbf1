use super::*;
use serde_json::json;

/// Parses `text` and renders each document as its JSON or its error, one
/// line each, so that tests read like the output users see.
fn check(text: &str, expected: &[&str]) {
    let got: Vec<String> = parse_documents(text, &Limits::default())
        .into_iter()
        .map(|d| match d {
            Ok(doc) => doc.value.to_string(),
            Err(e) => format!("error {e}"),
        })
        .collect();
    assert_eq!(got, expected, "for input:\n{text}");
}

#[test]
fn core_schema_scalars() {
    check(
        "a: yes\nb: on\nc: true\nd: FALSE\ne: ~\nf:\ng: 012\nh: 0x1F\ni: 0o17\nj: -1.5e3\nk: .inf\nl: '1'\nm: !!str 2\nn: 1.0.0\no: 99999999999999999999\n",
        &[
            r#"{"a":"yes","b":"on","c":true,"d":false,"e":null,"f":null,"g":12,"h":31,"i":15,"j":-1500.0,"k":".inf","l":"1","m":"2","n":"1.0.0","o":1e+20}"#,
        ],
    );
}

#[test]
fn merge_key_is_an_ordinary_key() {
    check(
        "base: &b {x: 1}\nother:\n  <<: *b\n",
        &[r#"{"base":{"x":1},"other":{"<<":{"x":1}}}"#],
    );
}

#[test]
fn documents_are_isolated() {
    check(
        "a: 1\n---\nb: [1, 2\n---\nc: 3\n",
        &[
            r#"{"a":1}"#,
            "error 4:1: YAML syntax error: while parsing a flow sequence, expected ',' or ']'",
            r#"{"c":3}"#,
        ],
    );
}

#[test]
fn empty_documents_yield_nothing() {
    check("# only a comment\n", &[]);
    // A bare marker is an empty (null) document, as in every YAML reader.
    check("---\n---\na: 1\n---\n", &["null", r#"{"a":1}"#, "null"]);
    check("a: 1\n...\n# trailing\n", &[r#"{"a":1}"#]);
    check("%YAML 1.2\n---\na: 1\n", &[r#"{"a":1}"#]);
}

#[test]
fn explicit_null_document_is_kept() {
    // Callers decide what a null document means (Backstage skips it).
    check("--- null\n", &["null"]);
    check("- 1\n- 2\n", &["[1,2]"]);
}

#[test]
fn duplicate_keys_are_errors() {
    check(
        "a: 1\nb:\n  c: 1\n  c: 2\n",
        &["error 4:3: duplicate key \"c\" (first at line 3); remove one of them"],
    );
}

#[test]
fn complex_keys_are_errors() {
    check(
        "? [a, b]\n: 1\n",
        &["error 1:3: a mapping key must be a plain value, not a list or mapping"],
    );
}

#[test]
fn alias_bomb_is_bounded() {
    let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..10 {
        let p = i - 1;
        text.push_str(&format!(
            "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
        ));
    }
    let docs = parse_documents(&text, &Limits::default());
    assert_eq!(docs.len(), 1);
    let err = docs[0].as_ref().unwrap_err();
    assert!(err.message.starts_with("document is too large"), "{err}");
}

#[test]
fn deep_nesting_is_bounded() {
    let text = format!("{}{}", "[".repeat(150), "]".repeat(150));
    let docs = parse_documents(&text, &Limits::default());
    let err = docs[0].as_ref().unwrap_err();
    assert_eq!(err.message, "document is nested more than 100 levels deep");
    // Far deeper input stops in the parser itself, still as an error.
    let text = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let docs = parse_documents(&text, &Limits::default());
    assert!(docs[0].is_err());
}

#[test]
fn positions_follow_paths() {
    let text = "---\napiVersion: v1\nmetadata:\n  name: x\n  tags:\n    - a\n    - b\n";
    let doc = parse_documents(text, &Limits::default()).remove(0).unwrap();
    assert_eq!(doc.value["metadata"]["tags"], json!(["a", "b"]));
    let at = |path: &[Step]| doc.positions.locate(path.iter().copied()).to_string();
    assert_eq!(at(&[]), "2:1");
    assert_eq!(at(&[Step::Key("metadata"), Step::Key("name")]), "4:3");
    assert_eq!(
        at(&[Step::Key("metadata"), Step::Key("tags"), Step::Index(1)]),
        "7:7"
    );
    // A path that leaves the document stops at the deepest place it reached.
    assert_eq!(at(&[Step::Key("metadata"), Step::Key("owner")]), "3:1");
    assert_eq!(at(&[Step::Key("spec"), Step::Key("owner")]), "2:1");
}

#[test]
fn positions_in_later_documents_count_from_the_file_start() {
    let text = "a: 1\n---\n# c\nb:\n  c: 2\n";
    let docs = parse_documents(text, &Limits::default());
    let doc = docs[1].as_ref().unwrap();
    assert_eq!(
        doc.positions.locate([Step::Key("b"), Step::Key("c")]),
        Pos { line: 5, column: 3 }
    );
}

#[test]
fn marker_lines_need_a_separator() {
    // `---x` is content, not a marker.
    check("a: |\n  ---x\n", &[r#"{"a":"---x\n"}"#]);
}

proptest::proptest! {
    #[test]
    fn never_panics(text in "\\PC{0,200}") {
        let _ = parse_documents(&text, &Limits::default());
    }

    #[test]
    fn never_panics_on_yaml_like_text(text in "([-:?|>&*!#\\[\\]{},'\" \\n]|[a-c]|---\\n){0,120}") {
        let _ = parse_documents(&text, &Limits::default());
    }
}

mod emit {
    use super::*;
    use proptest::prelude::*;

    fn round_trip(v: &Value) {
        let text = to_yaml(v);
        let docs = parse_documents(&text, &Limits::default());
        assert_eq!(docs.len(), 1, "one document for {v}:\n{text}");
        match &docs[0] {
            Ok(doc) => assert_eq!(&doc.value, v, "read back from:\n{text}"),
            Err(e) => panic!("{e} in:\n{text}"),
        }
    }

    #[test]
    fn entities_read_as_people_write_them() {
        let entity = json!({
            "apiVersion": "backstage.io/v1alpha1",
            "kind": "API",
            "metadata": {"name": "checkout-api", "tags": ["rest", "openapi"], "annotations": {"a/b": "yes", "n": "1"}, "links": []},
            "spec": {"type": "openapi", "definition": "openapi: 3.0.3\ninfo:\n  title: x\n", "empty": "", "colon": "a: b", "none": null}
        });
        assert_eq!(
            to_yaml(&entity),
            "apiVersion: backstage.io/v1alpha1\nkind: API\nmetadata:\n  name: checkout-api\n  tags:\n  - rest\n  - openapi\n  annotations:\n    a/b: yes\n    n: \"1\"\n  links: []\nspec:\n  type: openapi\n  definition: |\n    openapi: 3.0.3\n    info:\n      title: x\n  empty: \"\"\n  colon: \"a: b\"\n  none: null\n"
        );
        round_trip(&entity);
    }

    #[test]
    fn awkward_strings_and_shapes_read_back() {
        for v in [
            json!("true"),
            json!("- x"),
            json!("#x"),
            json!("x #y"),
            json!(" lead"),
            json!("two\nlines"),
            json!("ends\n\n"),
            json!("tab\tinside\nx"),
            json!("cr\r\nlf"),
            json!("0x1F"),
            json!("1e3"),
            json!(".inf"),
            json!([[1, [2]], {"a": [{"b": {}}]}, []]),
            json!({"multi\nline key": "v", "": 1}),
        ] {
            round_trip(&v);
        }
    }

    fn values() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            "\\PC{0,12}".prop_map(Value::String),
            "[ a-z:#\\-\n\t'\"{}]{0,12}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 32, 5, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
                prop::collection::btree_map("[a-z: \\-]{0,6}", inner, 0..5)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn any_value_reads_back(v in values()) {
            round_trip(&v);
        }
    }
}
