//! The entity model of plinth's catalog, compatible with Backstage's
//! `catalog-info.yaml` format: entity references, the field rules, the
//! built-in kinds, validation and relations.
//!
//! Architecture invariant: this crate is pure. It does no I/O, knows nothing
//! of files, YAML, databases or HTTP, and depends on no other plinth crate.
//! Everything above it parses input into these types at its boundary.

mod entity;
mod entity_ref;
pub mod kinds;
mod problem;
mod relations;
pub mod rules;
mod validate;

pub use entity::Entity;
pub use entity_ref::{DEFAULT_NAMESPACE, EntityRef, RefDefaults, RefError};
pub use kinds::Kinds;
pub use problem::{FieldPath, Problem, Segment};
pub use relations::{Relation, RelationType};
pub use validate::{Invalid, type_name, validate_entity};
