//! Table tests: each row is an input and the expected verdict, with the
//! expected reason where the input is refused. The valid/invalid rows follow
//! Backstage's own `KubernetesValidatorFunctions.test.ts` and
//! `CommonValidatorFunctions.test.ts` tables.

use super::*;

/// `expected` is `"ok"` or the reason the rule must give.
fn check(rule: fn(&str) -> RuleResult, rows: &[(&str, &str)]) {
    for (input, expected) in rows {
        let got = match rule(input) {
            Ok(()) => "ok".to_string(),
            Err(reason) => reason,
        };
        assert_eq!(&got, expected, "input {input:?}");
    }
}

fn n(c: char, count: usize) -> String {
    std::iter::repeat_n(c, count).collect()
}

#[test]
fn object_names() {
    let a63 = n('a', 63);
    let a64 = n('a', 64);
    check(
        object_name,
        &[
            ("a", "ok"),
            ("A", "ok"),
            ("1", "ok"),
            ("a-b", "ok"),
            ("a_b", "ok"),
            ("a.b", "ok"),
            ("a--__..b", "ok"),
            ("CamelCase", "ok"),
            (&a63, "ok"),
            (&a64, "is 64 characters long; at most 63 are allowed"),
            ("", "must not be empty"),
            ("-a", "must start with a letter or digit, not \"-\""),
            ("_a", "must start with a letter or digit, not \"_\""),
            (".a", "must start with a letter or digit, not \".\""),
            ("a-", "must end with a letter or digit, not \"-\""),
            ("a_", "must end with a letter or digit, not \"_\""),
            ("a.", "must end with a letter or digit, not \".\""),
            (
                "a b",
                "contains a space; use only letters, digits and the separators - _ .",
            ),
            (
                "a/b",
                "contains \"/\"; use only letters, digits and the separators - _ .",
            ),
            (
                "a:b",
                "contains \":\"; use only letters, digits and the separators - _ .",
            ),
            (
                "ä",
                "contains \"ä\"; use only letters, digits and the separators - _ .",
            ),
            (
                "日本",
                "contains \"日\"; use only letters, digits and the separators - _ .",
            ),
            (
                "a\u{1}",
                "contains the control character U+0001; use only letters, digits and the separators - _ .",
            ),
        ],
    );
}

#[test]
fn namespaces_are_dns_labels() {
    let a63 = n('a', 63);
    let a64 = n('a', 64);
    check(
        dns_label,
        &[
            ("a", "ok"),
            ("default", "ok"),
            ("a-b", "ok"),
            ("a1-2b", "ok"),
            ("0", "ok"),
            (&a63, "ok"),
            (&a64, "is 64 characters long; at most 63 are allowed"),
            ("", "must not be empty"),
            (
                "A",
                "contains \"A\"; use lowercase; use only a-z, 0-9, separated by single dashes",
            ),
            ("a--b", "contains \"--\"; separate parts with a single dash"),
            (
                "-a",
                "must start with a character other than a dash, not \"-\"",
            ),
            (
                "a-",
                "must end with a character other than a dash, not \"-\"",
            ),
            (
                "a_b",
                "contains \"_\"; use only a-z, 0-9, separated by single dashes",
            ),
            (
                "a.b",
                "contains \".\"; use only a-z, 0-9, separated by single dashes",
            ),
            (
                "é",
                "contains \"é\"; use only a-z, 0-9, separated by single dashes",
            ),
        ],
    );
}

#[test]
fn tags() {
    let a63 = n('a', 63);
    let a64 = n('a', 64);
    check(
        tag,
        &[
            ("java", "ok"),
            ("c++", "ok"),
            ("c#", "ok"),
            ("kubernetes:v1", "ok"),
            ("data-pipeline", "ok"),
            ("+", "ok"),
            ("#", "ok"),
            (&a63, "ok"),
            (&a64, "is 64 characters long; at most 63 are allowed"),
            ("", "must not be empty"),
            (
                "Java",
                "contains \"J\"; use lowercase; use only a-z, 0-9, : + #, separated by single dashes",
            ),
            (
                "a b",
                "contains a space; use only a-z, 0-9, : + #, separated by single dashes",
            ),
            (
                "a_b",
                "contains \"_\"; use only a-z, 0-9, : + #, separated by single dashes",
            ),
            (
                "a.b",
                "contains \".\"; use only a-z, 0-9, : + #, separated by single dashes",
            ),
            ("a--b", "contains \"--\"; separate parts with a single dash"),
            (
                "-a",
                "must start with a character other than a dash, not \"-\"",
            ),
            (
                "a-",
                "must end with a character other than a dash, not \"-\"",
            ),
            (
                "ü",
                "contains \"ü\"; use only a-z, 0-9, : + #, separated by single dashes",
            ),
        ],
    );
}

#[test]
fn dns_subdomains() {
    let label63 = n('a', 63);
    // 4 labels of 63 plus 3 dots is 255; trim to 253 and 254.
    let long = format!("{label63}.{label63}.{label63}.{}", n('a', 61));
    let too_long = format!("{label63}.{label63}.{label63}.{}", n('a', 62));
    check(
        dns_subdomain,
        &[
            ("a", "ok"),
            ("a.b", "ok"),
            ("example.com", "ok"),
            ("a-b.c-d", "ok"),
            (&long, "ok"),
            (&too_long, "is 254 characters long; at most 253 are allowed"),
            ("", "must not be empty"),
            ("a..b", "has an empty part between dots"),
            (".a", "has an empty part between dots"),
            ("a.", "has an empty part between dots"),
            (
                "A.b",
                "part \"A\" contains \"A\"; use lowercase; use only a-z, 0-9, separated by single dashes",
            ),
            (
                "a_b.c",
                "part \"a_b\" contains \"_\"; use only a-z, 0-9, separated by single dashes",
            ),
        ],
    );
}

#[test]
fn api_versions() {
    let a63 = n('a', 63);
    let a64 = n('a', 64);
    let with_long_suffix = format!("a/{a64}");
    check(
        api_version,
        &[
            ("backstage.io/v1alpha1", "ok"),
            ("v1", "ok"),
            ("1", "ok"),
            ("my-company.net/v1", "ok"),
            ("a/B1", "ok"),
            (&a63, "ok"),
            (&a64, "is 64 characters long; at most 63 are allowed"),
            (
                &with_long_suffix,
                "name part \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\" is 64 characters long; at most 63 are allowed",
            ),
            ("", "must not be empty"),
            ("a/", "name part \"\" must not be empty"),
            ("/a", "prefix \"\" must not be empty"),
            (
                "a/b/c",
                "has more than one \"/\"; use the form [<prefix>/]<name>",
            ),
            (
                "Backstage.io/v1",
                "prefix \"Backstage.io\" part \"Backstage\" contains \"B\"; use lowercase; use only a-z, 0-9, separated by single dashes",
            ),
            (
                "backstage.io/v1-alpha",
                "name part \"v1-alpha\" contains \"-\"; use only letters and digits",
            ),
            ("a_b", "contains \"_\"; use only letters and digits"),
        ],
    );
}

#[test]
fn kinds() {
    let a63 = n('a', 63);
    let a64 = n('a', 64);
    check(
        kind,
        &[
            ("Component", "ok"),
            ("a", "ok"),
            ("API", "ok"),
            ("A1b2", "ok"),
            (&a63, "ok"),
            (&a64, "is 64 characters long; at most 63 are allowed"),
            ("", "must not be empty"),
            ("1a", "must start with a letter"),
            ("-a", "must start with a letter"),
            ("a-b", "contains \"-\"; use only letters and digits"),
            ("a.b", "contains \".\"; use only letters and digits"),
            ("Kömponent", "contains \"ö\"; use only letters and digits"),
        ],
    );
}

#[test]
fn label_and_annotation_keys() {
    let prefix_253 = format!("{0}.{0}.{0}.{1}", n('a', 63), n('a', 61));
    let prefix_254 = format!("{0}.{0}.{0}.{1}", n('a', 63), n('a', 62));
    let ok_key = format!("{prefix_253}/name");
    let long_prefix = format!("{prefix_254}/name");
    let name63 = format!("example.com/{}", n('a', 63));
    let name64 = format!("example.com/{}", n('a', 64));
    check(
        label_key,
        &[
            ("a", "ok"),
            ("backstage.io/managed-by-location", "ok"),
            ("example.com/a_b.c-d", "ok"),
            ("product_name", "ok"),
            (&ok_key, "ok"),
            (&name63, "ok"),
            (
                &long_prefix,
                "prefix \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\" is 254 characters long; at most 253 are allowed",
            ),
            (
                &name64,
                "name part \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\" is 64 characters long; at most 63 are allowed",
            ),
            ("", "must not be empty"),
            ("/a", "prefix \"\" must not be empty"),
            ("a/", "name part \"\" must not be empty"),
            (
                "a/b/c",
                "has more than one \"/\"; use the form [<prefix>/]<name>",
            ),
            (
                "Example.com/a",
                "prefix \"Example.com\" part \"Example\" contains \"E\"; use lowercase; use only a-z, 0-9, separated by single dashes",
            ),
            (
                "example.com/-a",
                "name part \"-a\" must start with a letter or digit, not \"-\"",
            ),
            (
                "a b",
                "contains a space; use only letters, digits and the separators - _ .",
            ),
        ],
    );
}

#[test]
fn label_values() {
    check(
        label_value,
        &[
            ("", "ok"),
            ("a", "ok"),
            ("Random-value_1.0", "ok"),
            (
                "a b",
                "contains a space; use only letters, digits and the separators - _ .",
            ),
            ("-a", "must start with a letter or digit, not \"-\""),
            (
                "a/b",
                "contains \"/\"; use only letters, digits and the separators - _ .",
            ),
        ],
    );
}

#[test]
fn link_titles() {
    check(
        non_blank,
        &[
            ("Docs", "ok"),
            (" x ", "ok"),
            ("", "must not be blank"),
            ("   ", "must not be blank"),
        ],
    );
}

#[test]
fn urls() {
    const HINT: &str = "write an absolute URL such as https://example.com/docs";
    let no_scheme = format!("has no scheme; {HINT}");
    let no_host = format!("has no host; {HINT}");
    check(
        url,
        &[
            ("https://example.com", "ok"),
            ("http://example.com:8080/path?q=1#frag", "ok"),
            ("https://user:pw@example.com", "ok"),
            ("https://[::1]:7007/", "ok"),
            ("http:example.com", "ok"),
            ("HTTPS://EXAMPLE.COM", "ok"),
            ("https://bücher.de", "ok"),
            ("https://example.com/a path", "ok"),
            ("https://exa\tmple.com", "ok"),
            ("  https://example.com  ", "ok"),
            ("mailto:team@example.com", "ok"),
            ("slack:channel", "ok"),
            ("file:///etc/hosts", "ok"),
            ("file:relative", "ok"),
            ("a:", "ok"),
            ("", &no_scheme),
            ("example.com", &no_scheme),
            ("/docs", &no_scheme),
            ("//example.com", &no_scheme),
            ("http://", &no_host),
            // WHATWG skips any number of slashes after a special scheme.
            ("https:///path", "ok"),
            ("https://?q", &no_host),
            (
                "1http://example.com",
                &format!("has no valid scheme; {HINT}"),
            ),
            (
                "https://exa mple.com",
                &format!("has a space in its host; {HINT}"),
            ),
            (
                "https://example.com:99999",
                "has an invalid port \"99999\"; a port is a number up to 65535",
            ),
            (
                "https://example.com:80a",
                "has an invalid port \"80a\"; a port is a number up to 65535",
            ),
            (
                "https://[::1",
                &format!("has an unclosed IPv6 host; {HINT}"),
            ),
            (
                "https://exa|mple.com",
                &format!("has \"|\" in its host; {HINT}"),
            ),
        ],
    );
}
