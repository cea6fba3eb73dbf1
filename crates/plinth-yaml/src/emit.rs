//! JSON values back to YAML text, as people write catalog files: block
//! style, two-space indent, plain scalars where they read back the same,
//! literal blocks for multi-line text (API definitions stay readable).

use serde_json::Value;

/// The value as a YAML document (without `---`), ending in a newline.
/// Reading it back with [`crate::parse_documents`] gives the same value.
pub fn to_yaml(value: &Value) -> String {
    let mut out = String::new();
    match value {
        Value::Object(m) if !m.is_empty() => mapping(&mut out, m, 0),
        Value::Array(a) if !a.is_empty() => sequence(&mut out, a, 0),
        other => {
            out.push_str(&scalar(other, 0));
            out.push('\n');
        }
    }
    out
}

fn mapping(out: &mut String, m: &serde_json::Map<String, Value>, indent: usize) {
    for (i, (k, v)) in m.iter().enumerate() {
        if i > 0 {
            push_indent(out, indent);
        }
        out.push_str(&string(k, indent, true));
        out.push(':');
        value_after_key(out, v, indent);
    }
}

fn sequence(out: &mut String, a: &[Value], indent: usize) {
    for (i, v) in a.iter().enumerate() {
        if i > 0 {
            push_indent(out, indent);
        }
        out.push('-');
        match v {
            // `- key: value` with the rest of the mapping under the key.
            Value::Object(m) if !m.is_empty() => {
                out.push(' ');
                mapping(out, m, indent + 2);
            }
            Value::Array(inner) if !inner.is_empty() => {
                out.push(' ');
                sequence(out, inner, indent + 2);
            }
            other => {
                out.push(' ');
                out.push_str(&scalar(other, indent + 2));
                out.push('\n');
            }
        }
    }
}

fn value_after_key(out: &mut String, v: &Value, indent: usize) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            out.push('\n');
            push_indent(out, indent + 2);
            mapping(out, m, indent + 2);
        }
        // Sequences under a key sit at the key's indent, as most people
        // and Backstage's examples write them.
        Value::Array(a) if !a.is_empty() => {
            out.push('\n');
            push_indent(out, indent);
            sequence(out, a, indent);
        }
        other => {
            out.push(' ');
            out.push_str(&scalar(other, indent + 2));
            out.push('\n');
        }
    }
}

fn push_indent(out: &mut String, indent: usize) {
    out.extend(std::iter::repeat_n(' ', indent));
}

fn scalar(v: &Value, indent: usize) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => string(s, indent, false),
        Value::Array(_) => "[]".into(),
        Value::Object(_) => "{}".into(),
    }
}

/// A string as a plain scalar when it reads back as the same string, as a
/// literal block when it is multi-line text, else double-quoted (JSON's
/// escapes are YAML's).
fn string(s: &str, indent: usize, key: bool) -> String {
    if is_plain_safe(s) {
        return s.to_owned();
    }
    if !key && let Some(block) = literal_block(s, indent) {
        return block;
    }
    Value::String(s.to_owned()).to_string()
}

fn is_plain_safe(s: &str) -> bool {
    let Some(first) = s.chars().next() else {
        return false;
    };
    if s.starts_with(' ') || s.ends_with(' ') || "-?:,[]{}#&*!|>'\"%@`".contains(first) {
        return false;
    }
    if s.contains(": ") || s.contains(" #") || s.ends_with(':') {
        return false;
    }
    if s.chars().any(|c| {
        c.is_control()
            || matches!(
                c,
                '\u{feff}' | '\u{2028}' | '\u{2029}' | '\u{85}' | '\u{a0}'
            )
    }) {
        return false;
    }
    if s.contains(['{', '}', '[', ']', ',']) {
        // Safe in block context, but quoted they read as what they are.
        return false;
    }
    // Anything the core schema would read as null, a boolean or a number.
    matches!(
        crate::resolve_plain(s),
        Value::String(ref back) if back == s
    )
}

/// `|` blocks for text with line breaks, when every line survives: no
/// carriage returns or other controls, no trailing spaces that a reader
/// might trim, first line not indented (no indentation indicator needed).
fn literal_block(s: &str, indent: usize) -> Option<String> {
    if !s.contains('\n') || s.starts_with([' ', '\n']) {
        return None;
    }
    if s.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return None;
    }
    if s.chars()
        .any(|c| matches!(c, '\u{feff}' | '\u{2028}' | '\u{2029}' | '\u{85}'))
    {
        return None;
    }
    let body = s.trim_end_matches('\n');
    let trailing = s.len() - body.len();
    let chomp = match trailing {
        0 => "-",
        1 => "",
        _ => "+",
    };
    if body
        .lines()
        .any(|l| l.ends_with([' ', '\t']) || l.starts_with('\t'))
    {
        return None;
    }
    let pad: String = " ".repeat(indent.max(1));
    let mut out = format!("|{chomp}");
    for line in body.split('\n') {
        out.push('\n');
        if !line.is_empty() {
            out.push_str(&pad);
            out.push_str(line);
        }
    }
    for _ in 1..trailing {
        out.push('\n');
    }
    Some(out)
}
