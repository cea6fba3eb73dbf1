//! Entity references: `[<kind>:][<namespace>/]<name>`.
//!
//! An [`EntityRef`] always holds all three parts in their canonical lowercase
//! form, so comparing, hashing and printing are case-insensitive by
//! construction, as in Backstage (`stringifyEntityRef`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The namespace an entity is in when it names none.
pub const DEFAULT_NAMESPACE: &str = "default";

/// A fully qualified, canonical (lowercase) reference to an entity.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EntityRef {
    kind: String,
    namespace: String,
    name: String,
}

/// What a reference defaults to when it leaves parts out: Backstage fills a
/// missing namespace with the referring entity's namespace, and a missing kind
/// with the default kind of the field it is written in.
#[derive(Debug, Clone, Copy)]
pub struct RefDefaults<'a> {
    pub kind: Option<&'a str>,
    pub namespace: &'a str,
}

impl Default for RefDefaults<'_> {
    fn default() -> Self {
        RefDefaults {
            kind: None,
            namespace: DEFAULT_NAMESPACE,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RefError {
    #[error("an entity reference must not be empty")]
    Empty,
    #[error("\"{0}\" has an empty {1}; write it as [<kind>:][<namespace>/]<name>")]
    EmptyPart(String, &'static str),
    #[error(
        "\"{0}\" has no kind; write it with one, for example \"component:{0}\" or \"resource:{0}\""
    )]
    MissingKind(String),
}

impl EntityRef {
    /// A reference from its parts, lowercased.
    pub fn new(kind: &str, namespace: &str, name: &str) -> EntityRef {
        EntityRef {
            kind: lowercase(kind),
            namespace: lowercase(namespace),
            name: lowercase(name),
        }
    }

    /// Parses `[<kind>:][<namespace>/]<name>` as Backstage's current
    /// `parseEntityRef` does: the kind ends at the first `:` and the namespace
    /// at the first `/`, unless the `/` comes before the `:`, in which case the
    /// colon belongs to the name. Parts that are present must not be empty.
    pub fn parse(text: &str, defaults: RefDefaults<'_>) -> Result<EntityRef, RefError> {
        if text.is_empty() {
            return Err(RefError::Empty);
        }
        let slash = text.find('/');
        let colon = text.find(':').filter(|&c| slash.is_none_or(|s| c < s));
        let kind = colon.map(|c| &text[..c]);
        let after_kind = colon.map_or(0, |c| c + 1);
        let namespace = slash.map(|s| &text[after_kind..s]);
        let name = &text[slash.map_or(after_kind, |s| s + 1)..];
        for (part, label) in [
            (kind, "kind"),
            (namespace, "namespace"),
            (Some(name), "name"),
        ] {
            if part == Some("") {
                return Err(RefError::EmptyPart(text.to_owned(), label));
            }
        }
        let kind = kind
            .or(defaults.kind)
            .ok_or_else(|| RefError::MissingKind(text.to_owned()))?;
        let namespace = namespace.unwrap_or(defaults.namespace);
        Ok(EntityRef::new(kind, namespace, name))
    }

    pub fn kind(&self) -> &str {
        &self.kind
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

/// Lowercases like JavaScript's `toLocaleLowerCase('en-US')` for every
/// character a valid name can hold; ASCII takes the fast path.
fn lowercase(s: &str) -> String {
    if s.is_ascii() {
        s.to_ascii_lowercase()
    } else {
        s.to_lowercase()
    }
}

impl fmt::Display for EntityRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}/{}", self.kind, self.namespace, self.name)
    }
}

/// Parses a reference that must name its kind; the namespace defaults to
/// `default`.
impl FromStr for EntityRef {
    type Err = RefError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EntityRef::parse(s, RefDefaults::default())
    }
}

impl Serialize for EntityRef {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for EntityRef {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests;
