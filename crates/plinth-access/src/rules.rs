//! The rules. Roles (viewer, developer, platform-admin) plus ownership:
//! every signed-in caller may read; a developer may change what one of
//! their groups (or they themselves) own; a platform admin may change
//! anything. A token never does more than its scope: `read` reads, `write`
//! also changes what its owner may change, `admin` may do all its owner may.

use std::collections::BTreeSet;
use std::fmt;

use plinth_model::EntityRef;
use serde::{Deserialize, Serialize};

/// What a person or service may do in general; ownership narrows changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    Viewer,
    Developer,
    PlatformAdmin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Developer => "developer",
            Role::PlatformAdmin => "platform-admin",
        }
    }

    pub fn parse(text: &str) -> Option<Role> {
        [Role::Viewer, Role::Developer, Role::PlatformAdmin]
            .into_iter()
            .find(|r| r.as_str() == text)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a token may be used for; each includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    Read,
    Write,
    Admin,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Write => "write",
            Scope::Admin => "admin",
        }
    }

    pub fn parse(text: &str) -> Option<Scope> {
        [Scope::Read, Scope::Write, Scope::Admin]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Subject {
    /// A person, as their catalog User entity.
    User(EntityRef),
    /// A service (CI, a bot), named by whoever created its token.
    Service(String),
    /// The one person on their own machine: `plinth serve` bound to
    /// 127.0.0.1 with no sign-in configured.
    Local,
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Subject::User(r) => write!(f, "{r}"),
            Subject::Service(name) => write!(f, "service:{name}"),
            Subject::Local => f.write_str("local"),
        }
    }
}

/// A caller, with what the rules need to know about them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub subject: Subject,
    pub role: Role,
    /// The groups they belong to, directly or through parent groups.
    pub groups: BTreeSet<EntityRef>,
    /// The scope of the token the call came with; `None` for a signed-in
    /// session or the local user, which have no cap beyond their role.
    pub scope: Option<Scope>,
}

impl Principal {
    /// The local user: everything, as on one's own machine.
    pub fn local() -> Principal {
        Principal {
            subject: Subject::Local,
            role: Role::PlatformAdmin,
            groups: BTreeSet::new(),
            scope: None,
        }
    }

    /// Whether one of `owners` is this caller or one of their groups.
    fn owns_any(&self, owners: &[EntityRef]) -> bool {
        owners.iter().any(|o| {
            self.groups.contains(o) || matches!(&self.subject, Subject::User(me) if me == o)
        })
    }
}

/// What a caller asks to do, with what the rules need of its resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action<'a> {
    /// Read the catalog, search, list locations.
    Read,
    /// Register a new location (it owns nothing until it is read).
    RegisterLocation,
    /// Read a location or entity again from its source: changes only what
    /// the source says, so anyone who may write may ask for it.
    Refresh,
    /// Change or remove an entity owned by `owners`.
    ChangeEntity { owners: &'a [EntityRef] },
    /// Change or remove a location whose entities are owned by `owners`;
    /// `unowned` when some of its entities have no owner.
    ChangeLocation {
        owners: &'a [EntityRef],
        unowned: bool,
    },
    /// Read the audit log.
    ReadAudit,
    /// Create, list or revoke the API tokens of `subject`.
    ManageTokens { subject: &'a Subject },
    /// List everyone's tokens at once.
    ManageEveryonesTokens,
}

impl Action<'_> {
    /// The scope a token needs for this action.
    fn scope(&self) -> Scope {
        match self {
            Action::Read => Scope::Read,
            Action::RegisterLocation
            | Action::Refresh
            | Action::ChangeEntity { .. }
            | Action::ChangeLocation { .. } => Scope::Write,
            Action::ReadAudit | Action::ManageTokens { .. } | Action::ManageEveryonesTokens => {
                Scope::Admin
            }
        }
    }
}

/// Why a call is refused, said so that the caller knows what would allow it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Denied(pub String);

/// The decision: allowed, or refused with the reason.
pub fn authorize(who: &Principal, action: &Action<'_>) -> Result<(), Denied> {
    if let Some(scope) = who.scope
        && scope < action.scope()
    {
        return Err(Denied(format!(
            "this token has the {scope} scope; {} needs a token with the {} scope",
            describe(action),
            action.scope()
        )));
    }
    let admin = who.role == Role::PlatformAdmin;
    match action {
        Action::Read => Ok(()),
        Action::RegisterLocation
        | Action::Refresh
        | Action::ChangeEntity { .. }
        | Action::ChangeLocation { .. } => {
            if admin {
                return Ok(());
            }
            if who.role == Role::Viewer {
                return Err(Denied(format!(
                    "{} has the viewer role, which may only read; ask a platform admin for the developer role",
                    who.subject
                )));
            }
            match action {
                // An entity is theirs when its owner is.
                Action::ChangeEntity { owners } if !who.owns_any(owners) => Err(Denied(format!(
                    "{} may change only what they or their groups own; this is owned by {}",
                    who.subject,
                    list(owners)
                ))),
                // An empty location is no team's: a platform admin's.
                Action::ChangeLocation {
                    owners: [],
                    unowned: false,
                } => Err(Denied(format!(
                    "{} may change a location only when they or their groups own every entity in it; this one holds no entities, so ask a platform admin",
                    who.subject
                ))),
                // A location is theirs when everything in it is: removing
                // it removes every entity it gave.
                Action::ChangeLocation { owners, unowned }
                    if *unowned
                        || !owners.iter().all(|o| who.owns_any(std::slice::from_ref(o))) =>
                {
                    Err(Denied(format!(
                        "{} may change a location only when they or their groups own every entity in it; its entities are owned by {}{}",
                        who.subject,
                        list(owners),
                        if *unowned { ", and some by no one" } else { "" }
                    )))
                }
                _ => Ok(()),
            }
        }
        Action::ManageEveryonesTokens => {
            if admin {
                Ok(())
            } else {
                Err(Denied(format!(
                    "everyone's tokens are for the platform-admin role; {} is a {}",
                    who.subject, who.role
                )))
            }
        }
        Action::ReadAudit => {
            if admin {
                Ok(())
            } else {
                Err(Denied(format!(
                    "reading the audit log needs the platform-admin role; {} is a {}",
                    who.subject, who.role
                )))
            }
        }
        Action::ManageTokens { subject } => {
            let own = *subject == &who.subject && matches!(subject, Subject::User(_));
            if admin || own {
                Ok(())
            } else {
                Err(Denied(format!(
                    "{} may manage only their own personal tokens; the tokens of {subject} need the platform-admin role",
                    who.subject
                )))
            }
        }
    }
}

fn describe(action: &Action<'_>) -> &'static str {
    match action {
        Action::Read => "reading",
        Action::RegisterLocation => "registering a location",
        Action::Refresh => "refreshing",
        Action::ChangeEntity { .. } => "changing an entity",
        Action::ChangeLocation { .. } => "changing a location",
        Action::ReadAudit => "reading the audit log",
        Action::ManageTokens { .. } | Action::ManageEveryonesTokens => "managing tokens",
    }
}

fn list(owners: &[EntityRef]) -> String {
    if owners.is_empty() {
        return "no one".into();
    }
    owners
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests;
