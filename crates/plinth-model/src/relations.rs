//! Relations derived from spec fields, always in pairs.
//!
//! Relations are never authored: each reference in a relation field (see
//! [`crate::kinds`]) gives the relation from the entity to its target and the
//! reverse relation from the target back, as Backstage's
//! `BuiltinKindsEntityProcessor` does. Targets need not exist (dangling
//! references are reported by the catalog, not refused here).

use std::fmt;

use serde::Serialize;
use serde_json::Value;

use crate::entity::Entity;
use crate::entity_ref::{EntityRef, RefDefaults};
use crate::kinds::KindDef;
use crate::problem::{FieldPath, Problem};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RelationType {
    OwnedBy,
    OwnerOf,
    PartOf,
    HasPart,
    ProvidesApi,
    ApiProvidedBy,
    ConsumesApi,
    ApiConsumedBy,
    DependsOn,
    DependencyOf,
    MemberOf,
    HasMember,
    ChildOf,
    ParentOf,
}

impl RelationType {
    pub const ALL: [RelationType; 14] = [
        RelationType::OwnedBy,
        RelationType::OwnerOf,
        RelationType::PartOf,
        RelationType::HasPart,
        RelationType::ProvidesApi,
        RelationType::ApiProvidedBy,
        RelationType::ConsumesApi,
        RelationType::ApiConsumedBy,
        RelationType::DependsOn,
        RelationType::DependencyOf,
        RelationType::MemberOf,
        RelationType::HasMember,
        RelationType::ChildOf,
        RelationType::ParentOf,
    ];

    /// The type with this Backstage name (`ownedBy`), case-sensitively.
    pub fn from_name(name: &str) -> Option<RelationType> {
        RelationType::ALL.into_iter().find(|t| t.as_str() == name)
    }

    /// The name Backstage uses in `relations[].type`.
    pub fn as_str(self) -> &'static str {
        use RelationType::*;
        match self {
            OwnedBy => "ownedBy",
            OwnerOf => "ownerOf",
            PartOf => "partOf",
            HasPart => "hasPart",
            ProvidesApi => "providesApi",
            ApiProvidedBy => "apiProvidedBy",
            ConsumesApi => "consumesApi",
            ApiConsumedBy => "apiConsumedBy",
            DependsOn => "dependsOn",
            DependencyOf => "dependencyOf",
            MemberOf => "memberOf",
            HasMember => "hasMember",
            ChildOf => "childOf",
            ParentOf => "parentOf",
        }
    }

    /// The relation seen from the other end.
    pub fn reverse(self) -> RelationType {
        use RelationType::*;
        match self {
            OwnedBy => OwnerOf,
            OwnerOf => OwnedBy,
            PartOf => HasPart,
            HasPart => PartOf,
            ProvidesApi => ApiProvidedBy,
            ApiProvidedBy => ProvidesApi,
            ConsumesApi => ApiConsumedBy,
            ApiConsumedBy => ConsumesApi,
            DependsOn => DependencyOf,
            DependencyOf => DependsOn,
            MemberOf => HasMember,
            HasMember => MemberOf,
            ChildOf => ParentOf,
            ParentOf => ChildOf,
        }
    }
}

impl fmt::Display for RelationType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for RelationType {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// A directed relation between two entities.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Relation {
    pub source: EntityRef,
    #[serde(rename = "type")]
    pub relation: RelationType,
    pub target: EntityRef,
}

impl fmt::Display for Relation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.source, self.relation, self.target)
    }
}

/// All relations an entity's spec gives, both directions of each, in field
/// order. References that cannot be parsed are problems at their field.
pub(crate) fn derive(
    source: &EntityRef,
    spec: Option<&serde_json::Map<String, Value>>,
    def: &KindDef,
) -> (Vec<Relation>, Vec<Problem>) {
    let mut relations = Vec::new();
    let mut problems = Vec::new();
    let Some(spec) = spec else {
        return (relations, problems);
    };
    let defaults_ns = source.namespace();
    for field in def.relations {
        let path = FieldPath::keys("spec").key(field.field);
        let targets: Vec<(FieldPath, &str)> = match spec.get(field.field) {
            // Empty strings are refused by the field's type check already.
            Some(Value::String(s)) if s.is_empty() => continue,
            Some(Value::String(s)) => vec![(path, s.as_str())],
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .filter_map(|(i, v)| {
                    v.as_str()
                        .filter(|s| !s.is_empty())
                        .map(|s| (path.index(i), s))
                })
                .collect(),
            _ => continue,
        };
        for (at, text) in targets {
            let defaults = RefDefaults {
                kind: field.default_kind,
                namespace: defaults_ns,
            };
            match EntityRef::parse(text, defaults) {
                Ok(target) => {
                    relations.push(Relation {
                        source: source.clone(),
                        relation: field.relation,
                        target: target.clone(),
                    });
                    relations.push(Relation {
                        source: target,
                        relation: field.relation.reverse(),
                        target: source.clone(),
                    });
                }
                Err(e) => problems.push(Problem::new(at, e.to_string())),
            }
        }
    }
    (relations, problems)
}

impl Entity {
    /// The relations this entity's spec gives, both directions of each.
    pub fn relations(&self) -> Vec<Relation> {
        match self.kind_def() {
            Some(def) => derive(self.entity_ref(), self.spec(), def).0,
            None => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests;
