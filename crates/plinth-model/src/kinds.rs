//! The built-in kinds, as data: accepted apiVersions, spec fields with their
//! types, and the spec fields that become relations.
//!
//! The tables follow Backstage's kind schemas
//! (`packages/catalog-model/src/schema/kinds/*.schema.json`) and the relation
//! fields of its `BuiltinKindsEntityProcessor`. Spec fields not listed here
//! are allowed and unchecked, as in Backstage (the schemas leave `spec` open).

use serde_json::{Map, Value};

use crate::problem::{FieldPath, Problem};
use crate::relations::RelationType;

/// A check on a spec beyond what the field table says: the spec, its path,
/// and where to put problems.
pub type SpecCheck = fn(&Map<String, Value>, &FieldPath, &mut Vec<Problem>);

/// A kind's definition for one set of apiVersions.
#[derive(Debug)]
pub struct KindDef {
    pub kind: &'static str,
    pub api_versions: &'static [&'static str],
    /// What the kind is for, shown in messages about missing fields.
    pub noun: &'static str,
    pub fields: &'static [Field],
    pub relations: &'static [RelationField],
    /// Rules that a field table cannot say (API v1alpha2's `mcp-server` case).
    pub extra: Option<SpecCheck>,
}

#[derive(Debug)]
pub struct Field {
    pub name: &'static str,
    pub ty: FieldType,
    pub required: bool,
    /// What to write there, for messages: "the group or user that owns it".
    pub about: &'static str,
}

#[derive(Debug)]
pub enum FieldType {
    /// A non-empty string.
    Str,
    /// A list of non-empty strings.
    StrList,
    /// An object with these fields (others allowed).
    Object(&'static [Field]),
    /// A list of objects with these fields, with at least `min_items`.
    ObjectList(&'static [Field], usize),
}

/// A spec field whose entity references become relations.
#[derive(Debug)]
pub struct RelationField {
    pub field: &'static str,
    /// The kind a reference without one gets; `None` means it must name one.
    pub default_kind: Option<&'static str>,
    /// The relation from this entity to the target; the target gets the reverse.
    pub relation: RelationType,
}

const V1: &[&str] = &["backstage.io/v1alpha1", "backstage.io/v1beta1"];

const fn req(name: &'static str, ty: FieldType, about: &'static str) -> Field {
    Field {
        name,
        ty,
        required: true,
        about,
    }
}

const fn opt(name: &'static str, ty: FieldType, about: &'static str) -> Field {
    Field {
        name,
        ty,
        required: false,
        about,
    }
}

const fn rel(
    field: &'static str,
    default_kind: Option<&'static str>,
    relation: RelationType,
) -> RelationField {
    RelationField {
        field,
        default_kind,
        relation,
    }
}

use FieldType::{Object, ObjectList, Str, StrList};
use RelationType::*;

const OWNER: Field = req(
    "owner",
    Str,
    "the group or user that owns it, for example \"team-a\" or \"user:jdoe\"",
);
const LIFECYCLE: Field = req(
    "lifecycle",
    Str,
    "its lifecycle, for example \"experimental\", \"production\" or \"deprecated\"",
);
const SYSTEM: Field = opt("system", Str, "the system it is part of");
const OWNED_BY: RelationField = rel("owner", Some("Group"), OwnedBy);
const PART_OF_SYSTEM: RelationField = rel("system", Some("System"), PartOf);

const PROFILE: &[Field] = &[
    opt("displayName", Str, "a name to show"),
    opt("email", Str, "an e-mail address"),
    opt("picture", Str, "the URL of a picture"),
];

const API_FIELDS_V1: &[Field] = &[
    req(
        "type",
        Str,
        "the type of definition, for example \"openapi\", \"asyncapi\", \"graphql\" or \"grpc\"",
    ),
    LIFECYCLE,
    OWNER,
    SYSTEM,
    req(
        "definition",
        Str,
        "the API definition as text, for example an OpenAPI document in a block scalar (definition: |)",
    ),
];

const API_FIELDS_V1ALPHA2: &[Field] = &[
    req(
        "type",
        Str,
        "the type of definition, for example \"openapi\", \"asyncapi\", \"graphql\", \"grpc\" or \"mcp-server\"",
    ),
    LIFECYCLE,
    OWNER,
    SYSTEM,
];

const MCP_REMOTE: &[Field] = &[
    req(
        "type",
        Str,
        "the transport, for example \"streamable-http\" or \"sse\"",
    ),
    req("url", Str, "the URL of the endpoint"),
];

/// API v1alpha2: an `mcp-server` lists `remotes`; every other type has a
/// `definition`.
fn api_v1alpha2_extra(spec: &Map<String, Value>, at: &FieldPath, problems: &mut Vec<Problem>) {
    let field = if spec.get("type").and_then(Value::as_str) == Some("mcp-server") {
        opt("remotes", ObjectList(MCP_REMOTE, 1), "")
    } else {
        opt("definition", Str, "")
    };
    match spec.get(field.name) {
        Some(v) => crate::validate::check_field_type(v, &field, &at.key(field.name), problems),
        None if field.name == "remotes" => problems.push(Problem::new(
            at.key("remotes"),
            "is required when type is \"mcp-server\"; list the server's endpoints, each with type and url",
        )),
        None => problems.push(Problem::new(
            at.key("definition"),
            "is required; add the API definition as text, for example an OpenAPI document in a block scalar (definition: |)",
        )),
    }
}

/// Every built-in kind. A kind may appear more than once, with different
/// apiVersions.
pub const BUILTIN_KINDS: &[KindDef] = &[
    KindDef {
        kind: "Component",
        api_versions: V1,
        noun: "component",
        fields: &[
            req(
                "type",
                Str,
                "its type, for example \"service\", \"website\" or \"library\"",
            ),
            LIFECYCLE,
            OWNER,
            SYSTEM,
            opt("subcomponentOf", Str, "the component it is part of"),
            opt("providesApis", StrList, "the APIs it provides"),
            opt("consumesApis", StrList, "the APIs it consumes"),
            opt("dependsOn", StrList, "the entities it depends on"),
            opt("dependencyOf", StrList, "the entities that depend on it"),
        ],
        relations: &[
            OWNED_BY,
            PART_OF_SYSTEM,
            rel("subcomponentOf", Some("Component"), PartOf),
            rel("providesApis", Some("API"), ProvidesApi),
            rel("consumesApis", Some("API"), ConsumesApi),
            rel("dependsOn", None, DependsOn),
            rel("dependencyOf", None, DependencyOf),
        ],
        extra: None,
    },
    KindDef {
        kind: "API",
        api_versions: V1,
        noun: "API",
        fields: API_FIELDS_V1,
        relations: &[OWNED_BY, PART_OF_SYSTEM],
        extra: None,
    },
    KindDef {
        kind: "API",
        api_versions: &["backstage.io/v1alpha2"],
        noun: "API",
        fields: API_FIELDS_V1ALPHA2,
        relations: &[OWNED_BY, PART_OF_SYSTEM],
        extra: Some(api_v1alpha2_extra),
    },
    KindDef {
        kind: "Resource",
        api_versions: V1,
        noun: "resource",
        fields: &[
            req(
                "type",
                Str,
                "its type, for example \"database\", \"s3-bucket\" or \"cluster\"",
            ),
            OWNER,
            SYSTEM,
            opt("dependsOn", StrList, "the entities it depends on"),
            opt("dependencyOf", StrList, "the entities that depend on it"),
        ],
        relations: &[
            OWNED_BY,
            PART_OF_SYSTEM,
            rel("dependsOn", None, DependsOn),
            rel("dependencyOf", None, DependencyOf),
        ],
        extra: None,
    },
    KindDef {
        kind: "System",
        api_versions: V1,
        noun: "system",
        fields: &[
            OWNER,
            opt("domain", Str, "the domain it belongs to"),
            opt("type", Str, "its type"),
        ],
        relations: &[OWNED_BY, rel("domain", Some("Domain"), PartOf)],
        extra: None,
    },
    KindDef {
        kind: "Domain",
        api_versions: V1,
        noun: "domain",
        fields: &[
            OWNER,
            opt("subdomainOf", Str, "the domain it is part of"),
            opt("type", Str, "its type"),
        ],
        relations: &[OWNED_BY, rel("subdomainOf", Some("Domain"), PartOf)],
        extra: None,
    },
    KindDef {
        kind: "Group",
        api_versions: V1,
        noun: "group",
        fields: &[
            req(
                "type",
                Str,
                "its type, for example \"team\", \"business-unit\" or \"product-area\"",
            ),
            req(
                "children",
                StrList,
                "its child groups; write children: [] when it has none",
            ),
            opt("profile", Object(PROFILE), "display information"),
            opt("parent", Str, "its parent group"),
            opt("members", StrList, "its member users"),
        ],
        relations: &[
            rel("parent", Some("Group"), ChildOf),
            rel("children", Some("Group"), ParentOf),
            rel("members", Some("User"), HasMember),
        ],
        extra: None,
    },
    KindDef {
        kind: "User",
        api_versions: V1,
        noun: "user",
        fields: &[
            req(
                "memberOf",
                StrList,
                "the groups the user is a direct member of; write memberOf: [] when there are none",
            ),
            opt("profile", Object(PROFILE), "display information"),
        ],
        relations: &[rel("memberOf", Some("Group"), MemberOf)],
        extra: None,
    },
    KindDef {
        kind: "Location",
        api_versions: V1,
        noun: "location",
        fields: &[
            opt(
                "type",
                Str,
                "the location type, for example \"file\" or \"url\"",
            ),
            opt("target", Str, "a path or URL to read entities from"),
            opt("targets", StrList, "paths or URLs to read entities from"),
            opt("presence", Str, "\"required\" or \"optional\""),
        ],
        relations: &[],
        extra: None,
    },
];

/// The kinds a catalog accepts: the built-in ones, and any declared in
/// configuration, of which only the envelope is checked.
#[derive(Debug, Clone, Default)]
pub struct Kinds {
    declared: Vec<String>,
}

/// How an entity's kind is known.
pub enum KindMatch<'a> {
    Builtin(&'a KindDef),
    /// A built-in kind, but not with this apiVersion.
    WrongApiVersion(Vec<&'static str>),
    /// Declared in configuration: only the envelope is checked.
    Declared,
    Unknown,
}

impl Kinds {
    /// Built-in kinds plus `declared`, matched exactly (kinds are
    /// case-sensitive, as in Backstage).
    pub fn with_declared(declared: impl IntoIterator<Item = String>) -> Kinds {
        Kinds {
            declared: declared.into_iter().collect(),
        }
    }

    pub fn declared(&self) -> &[String] {
        &self.declared
    }

    pub fn find(&self, kind: &str, api_version: &str) -> KindMatch<'static> {
        let mut versions = Vec::new();
        for def in BUILTIN_KINDS.iter().filter(|d| d.kind == kind) {
            if def.api_versions.contains(&api_version) {
                return KindMatch::Builtin(def);
            }
            versions.extend_from_slice(def.api_versions);
        }
        if !versions.is_empty() {
            return KindMatch::WrongApiVersion(versions);
        }
        if self.declared.iter().any(|d| d == kind) {
            return KindMatch::Declared;
        }
        KindMatch::Unknown
    }

    /// A built-in or declared kind spelled like `kind` but in other case.
    pub fn case_insensitive_match(&self, kind: &str) -> Option<&str> {
        BUILTIN_KINDS
            .iter()
            .map(|d| d.kind)
            .chain(self.declared.iter().map(String::as_str))
            .find(|k| k.eq_ignore_ascii_case(kind))
    }
}
