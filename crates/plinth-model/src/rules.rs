//! The field-format rules of Backstage's catalog, one function each.
//!
//! Each rule returns `Err(reason)` with a reason that says what to change;
//! the verdict (valid or not) is exactly Backstage's (`KubernetesValidatorFunctions`,
//! `CommonValidatorFunctions`, `makeValidator` in `@backstage/catalog-model`).
//! Lengths count characters; any input where that differs from JavaScript's
//! UTF-16 length holds non-ASCII text, which every length-limited rule refuses
//! anyway, so the verdict is the same.

pub type RuleResult = Result<(), String>;

/// `metadata.name`, label values, link icons: 1 to 63 characters of
/// `[A-Za-z0-9]` separated by `[-_.]`.
pub fn object_name(value: &str) -> RuleResult {
    length(value, 63)?;
    if let Some(c) = value
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(format!(
            "contains {}; use only letters, digits and the separators - _ .",
            describe_char(c)
        ));
    }
    edge_alphanumeric(value, "a letter or digit")
}

/// `metadata.namespace`: a DNS label, 1 to 63 characters of `[a-z0-9]`
/// separated by single `-`.
pub fn dns_label(value: &str) -> RuleResult {
    separated_lowercase(
        value,
        63,
        |c| c.is_ascii_lowercase() || c.is_ascii_digit(),
        "a-z, 0-9",
    )
}

/// `metadata.tags[]`: 1 to 63 characters of `[a-z0-9:+#]` separated by single `-`.
pub fn tag(value: &str) -> RuleResult {
    separated_lowercase(
        value,
        63,
        |c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, ':' | '+' | '#'),
        "a-z, 0-9, : + #",
    )
}

/// A DNS subdomain: at most 253 characters of DNS labels joined by `.`.
pub fn dns_subdomain(value: &str) -> RuleResult {
    length(value, 253)?;
    for part in value.split('.') {
        dns_label(part).map_err(|e| {
            if part.is_empty() {
                "has an empty part between dots".to_string()
            } else {
                format!("part \"{part}\" {e}")
            }
        })?;
    }
    Ok(())
}

/// `apiVersion`: `[<dns subdomain>/]<1 to 63 of [a-zA-Z0-9]>`.
pub fn api_version(value: &str) -> RuleResult {
    prefix_and_suffix(value, |suffix| {
        length(suffix, 63)?;
        letters_and_digits(suffix)
    })
}

/// `kind`: a letter, then letters and digits, at most 63 characters.
pub fn kind(value: &str) -> RuleResult {
    length(value, 63)?;
    if !value.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return Err("must start with a letter".into());
    }
    letters_and_digits(value)
}

fn letters_and_digits(value: &str) -> RuleResult {
    match value.chars().find(|c| !c.is_ascii_alphanumeric()) {
        Some(c) => Err(format!(
            "contains {}; use only letters and digits",
            describe_char(c)
        )),
        None => Ok(()),
    }
}

/// Label and annotation keys: `[<dns subdomain>/]<object name>`.
pub fn label_key(value: &str) -> RuleResult {
    prefix_and_suffix(value, object_name)
}

/// Label values: empty, or an object name.
pub fn label_value(value: &str) -> RuleResult {
    if value.is_empty() {
        Ok(())
    } else {
        object_name(value)
    }
}

/// Link titles: a string that is not blank.
pub fn non_blank(value: &str) -> RuleResult {
    if value.trim().is_empty() {
        Err("must not be blank".into())
    } else {
        Ok(())
    }
}

/// Link URLs: what a WHATWG URL parser (JavaScript's `new URL`) accepts
/// without a base: a scheme, and for the special schemes (http, https, ws,
/// wss, ftp) a non-empty host with a valid port.
pub fn url(value: &str) -> RuleResult {
    const HINT: &str = "write an absolute URL such as https://example.com/docs";
    // WHATWG strips leading and trailing C0 controls and spaces, and every
    // tab and newline anywhere.
    let value: String = value
        .trim_matches(|c: char| c <= ' ')
        .chars()
        .filter(|c| !matches!(c, '\t' | '\n' | '\r'))
        .collect();
    let value = value.as_str();
    let Some(colon) = value.find(':') else {
        return Err(format!("has no scheme; {HINT}"));
    };
    let scheme = &value[..colon];
    let scheme_ok = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    if !scheme_ok {
        return Err(format!("has no valid scheme; {HINT}"));
    }
    let scheme = scheme.to_ascii_lowercase();
    let rest = &value[colon + 1..];
    if scheme == "file" || !matches!(scheme.as_str(), "http" | "https" | "ws" | "wss" | "ftp") {
        return Ok(());
    }
    let rest = rest.trim_start_matches(['/', '\\']);
    let authority = rest.split(['/', '\\', '?', '#']).next().unwrap_or("");
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let (host, port, bracketed) = match host_port.strip_prefix('[') {
        Some(v6) => match v6.split_once(']') {
            Some((addr, after)) => {
                if addr.is_empty()
                    || !addr
                        .chars()
                        .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.')
                {
                    return Err(format!("has an invalid IPv6 host; {HINT}"));
                }
                (addr, after.strip_prefix(':'), true)
            }
            None => return Err(format!("has an unclosed IPv6 host; {HINT}")),
        },
        None => match host_port.rsplit_once(':') {
            Some((h, p)) => (h, Some(p), false),
            None => (host_port, None, false),
        },
    };
    if host.is_empty() {
        return Err(format!("has no host; {HINT}"));
    }
    if let Some(c) = host.chars().filter(|_| !bracketed).find(|c| {
        *c <= ' '
            || matches!(
                c,
                '#' | '%'
                    | '/'
                    | ':'
                    | '<'
                    | '>'
                    | '?'
                    | '@'
                    | '['
                    | '\\'
                    | ']'
                    | '^'
                    | '|'
                    | '\u{7f}'
            )
    }) {
        return Err(format!("has {} in its host; {HINT}", describe_char(c)));
    }
    if let Some(port) = port
        && !port.is_empty()
        && !(port.chars().all(|c| c.is_ascii_digit())
            && port.parse::<u32>().is_ok_and(|p| p <= 65535))
    {
        return Err(format!(
            "has an invalid port \"{port}\"; a port is a number up to 65535"
        ));
    }
    Ok(())
}

/// 1 to `max` characters.
fn length(value: &str, max: usize) -> RuleResult {
    let len = value.chars().count();
    if len == 0 {
        return Err("must not be empty".into());
    }
    if len > max {
        return Err(format!(
            "is {len} characters long; at most {max} are allowed"
        ));
    }
    Ok(())
}

/// Checks `[<prefix>/]<suffix>`: at most one `/`, the prefix a DNS subdomain.
fn prefix_and_suffix(value: &str, suffix_rule: impl Fn(&str) -> RuleResult) -> RuleResult {
    let mut parts = value.split('/');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(suffix), None, _) => suffix_rule(suffix),
        (Some(prefix), Some(suffix), None) => {
            dns_subdomain(prefix).map_err(|e| format!("prefix \"{prefix}\" {e}"))?;
            suffix_rule(suffix).map_err(|e| format!("name part \"{suffix}\" {e}"))
        }
        _ => Err("has more than one \"/\"; use the form [<prefix>/]<name>".into()),
    }
}

fn separated_lowercase(
    value: &str,
    max: usize,
    allowed: impl Fn(char) -> bool,
    set: &str,
) -> RuleResult {
    length(value, max)?;
    if let Some(c) = value.chars().find(|&c| !allowed(c) && c != '-') {
        let hint = if c.is_ascii_uppercase() {
            "; use lowercase"
        } else {
            ""
        };
        return Err(format!(
            "contains {}{hint}; use only {set}, separated by single dashes",
            describe_char(c)
        ));
    }
    if value.contains("--") {
        return Err("contains \"--\"; separate parts with a single dash".into());
    }
    edge_alphanumeric(value, "a character other than a dash")
}

fn edge_alphanumeric(value: &str, what: &str) -> RuleResult {
    let bad_edge = |c: char| matches!(c, '-' | '_' | '.');
    if value.starts_with(bad_edge) {
        return Err(format!("must start with {what}, not \"{}\"", &value[..1]));
    }
    if value.ends_with(bad_edge) {
        return Err(format!(
            "must end with {what}, not \"{}\"",
            &value[value.len() - 1..]
        ));
    }
    Ok(())
}

fn describe_char(c: char) -> String {
    match c {
        ' ' => "a space".into(),
        '\t' => "a tab".into(),
        c if c.is_control() => format!("the control character U+{:04X}", c as u32),
        c => format!("\"{c}\""),
    }
}

#[cfg(test)]
mod tests;
