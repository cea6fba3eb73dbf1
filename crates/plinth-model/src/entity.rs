//! A valid entity: the document as written (namespace filled in), its
//! canonical reference, and the kind definition it was checked against.

use serde_json::{Map, Value};

use crate::entity_ref::{DEFAULT_NAMESPACE, EntityRef};
use crate::kinds::KindDef;

/// An entity that passed validation. Only [`crate::validate_entity`] makes
/// one, so every accessor can rely on the envelope being well formed.
#[derive(Debug, Clone)]
pub struct Entity {
    entity_ref: EntityRef,
    kind_def: Option<&'static KindDef>,
    value: Value,
}

/// Two entities are equal when their documents are; the rest follows.
impl PartialEq for Entity {
    fn eq(&self, other: &Self) -> bool {
        self.value == other.value
    }
}

impl Entity {
    pub(crate) fn new(
        entity_ref: EntityRef,
        kind_def: Option<&'static KindDef>,
        value: Value,
    ) -> Entity {
        debug_assert!(value.is_object());
        Entity {
            entity_ref,
            kind_def,
            value,
        }
    }

    /// The canonical `kind:namespace/name`.
    pub fn entity_ref(&self) -> &EntityRef {
        &self.entity_ref
    }

    pub fn api_version(&self) -> &str {
        self.str_at("apiVersion")
    }

    /// The kind as written (`Component`), not lowercased.
    pub fn kind(&self) -> &str {
        self.str_at("kind")
    }

    /// `metadata.name` as written.
    pub fn name(&self) -> &str {
        self.metadata()
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    /// `metadata.namespace` as written, `default` when absent.
    pub fn namespace(&self) -> &str {
        self.metadata()
            .get("namespace")
            .and_then(Value::as_str)
            .unwrap_or(DEFAULT_NAMESPACE)
    }

    pub fn metadata(&self) -> &Map<String, Value> {
        static EMPTY: std::sync::OnceLock<Map<String, Value>> = std::sync::OnceLock::new();
        self.value
            .get("metadata")
            .and_then(Value::as_object)
            .unwrap_or_else(|| EMPTY.get_or_init(Map::new))
    }

    pub fn spec(&self) -> Option<&Map<String, Value>> {
        self.value.get("spec").and_then(Value::as_object)
    }

    /// A string field of the spec, when it is one.
    pub fn spec_str(&self, field: &str) -> Option<&str> {
        self.spec()?.get(field)?.as_str()
    }

    /// The whole document as JSON.
    pub fn value(&self) -> &Value {
        &self.value
    }

    pub fn into_value(self) -> Value {
        self.value
    }

    /// The built-in kind definition, or `None` for a declared custom kind.
    pub fn kind_def(&self) -> Option<&'static KindDef> {
        self.kind_def
    }

    fn str_at(&self, key: &str) -> &str {
        self.value
            .get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
    }
}
