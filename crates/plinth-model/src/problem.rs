//! Problems found in an entity, each at a field path.
//!
//! Problems are data, not errors: validation collects all of them so that a
//! user fixes a file in one pass, and callers map each path to a place in
//! the source (`file:line:column`) or to a JSON pointer in an API answer.

use std::fmt;

use serde::Serialize;

/// A path to a field inside an entity: `spec.providesApis[0]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FieldPath(Vec<Segment>);

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Segment {
    Key(String),
    Index(usize),
}

impl FieldPath {
    pub fn root() -> FieldPath {
        FieldPath::default()
    }

    /// A path of plain keys, written `a.b.c`.
    pub fn keys(dotted: &str) -> FieldPath {
        FieldPath(
            dotted
                .split('.')
                .map(|k| Segment::Key(k.to_owned()))
                .collect(),
        )
    }

    pub fn key(&self, key: &str) -> FieldPath {
        let mut p = self.clone();
        p.0.push(Segment::Key(key.to_owned()));
        p
    }

    pub fn index(&self, i: usize) -> FieldPath {
        let mut p = self.clone();
        p.0.push(Segment::Index(i));
        p
    }

    pub fn segments(&self) -> &[Segment] {
        &self.0
    }

    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    /// RFC 6901 JSON pointer, for API answers.
    pub fn json_pointer(&self) -> String {
        let mut out = String::new();
        for s in &self.0 {
            out.push('/');
            match s {
                Segment::Key(k) => out.push_str(&k.replace('~', "~0").replace('/', "~1")),
                Segment::Index(i) => out.push_str(&i.to_string()),
            }
        }
        out
    }
}

/// `metadata.name`, `spec.providesApis[0]`,
/// `metadata.annotations["backstage.io/techdocs-ref"]`.
impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, s) in self.0.iter().enumerate() {
            match s {
                Segment::Key(k) if is_plain_key(k) => {
                    if i > 0 {
                        f.write_str(".")?;
                    }
                    f.write_str(k)?;
                }
                Segment::Key(k) => write!(f, "[{}]", serde_json::Value::from(k.as_str()))?,
                Segment::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

fn is_plain_key(k: &str) -> bool {
    !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

impl Serialize for FieldPath {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// One thing wrong with an entity, and what to change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub path: FieldPath,
    pub message: String,
}

impl Problem {
    pub fn new(path: FieldPath, message: impl Into<String>) -> Problem {
        Problem {
            path,
            message: message.into(),
        }
    }
}

/// `<path>: <message>`, or the message alone for the whole entity.
impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_root() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_print_for_people_and_pointers() {
        let p = FieldPath::keys("metadata.annotations").key("backstage.io/x~y");
        assert_eq!(p.to_string(), "metadata.annotations[\"backstage.io/x~y\"]");
        assert_eq!(p.json_pointer(), "/metadata/annotations/backstage.io~1x~0y");
        let p = FieldPath::keys("spec.providesApis").index(2);
        assert_eq!(p.to_string(), "spec.providesApis[2]");
        assert_eq!(p.json_pointer(), "/spec/providesApis/2");
        assert_eq!(FieldPath::root().key("").to_string(), "[\"\"]");
    }
}
