//! What to suggest for a location that holds no catalog file yet
//! (`POST /analyze-location`): a Component named after the repository,
//! directory or file, as Backstage's analyzer suggests for a repository.

use std::path::Path;

use serde_json::{Value, json};

use crate::ingest::GitTarget;

/// The entity to suggest for a location of type `kind` at `target`.
pub fn suggested_component(kind: &str, target: &str) -> Value {
    let (name, slug) = match kind {
        "git" => {
            let repository = GitTarget::parse(target)
                .map(|g| g.repository)
                .unwrap_or_else(|_| target.to_owned());
            repository_name(&repository)
        }
        _ => {
            let path = Path::new(target);
            let stem = if kind == "dir" {
                path.file_name()
            } else {
                // The file's directory names the project better than
                // `catalog-info`.
                path.parent().and_then(Path::file_name)
            };
            (stem.map(|s| s.to_string_lossy().into_owned()), None)
        }
    };
    let mut entity = json!({
        "apiVersion": "backstage.io/v1alpha1",
        "kind": "Component",
        "metadata": {"name": object_name(name.as_deref().unwrap_or(""))},
        "spec": {"type": "other", "lifecycle": "unknown"},
    });
    if let Some((annotation, slug)) = slug {
        entity["metadata"]["annotations"] = json!({ annotation: slug });
    }
    entity
}

/// The repository's name, and the project-slug annotation when the host is
/// one Backstage has an annotation for.
fn repository_name(repository: &str) -> (Option<String>, Option<(String, String)>) {
    // `https://host/owner/name(.git)`, `git@host:owner/name(.git)` or a path.
    let trimmed = repository.trim_end_matches('/');
    let trimmed = trimmed.strip_suffix(".git").unwrap_or(trimmed);
    let (host, path) = match trimmed.split_once("://") {
        Some((_, rest)) => match rest.split_once('/') {
            Some((host, path)) => (Some(host.rsplit('@').next().unwrap_or(host)), path),
            None => (None, rest),
        },
        None => match trimmed.split_once('@').and_then(|(_, r)| r.split_once(':')) {
            Some((host, path)) => (Some(host), path),
            None => (None, trimmed),
        },
    };
    let name = path.rsplit('/').next().filter(|n| !n.is_empty());
    let owner = path.rsplit('/').nth(1).filter(|o| !o.is_empty());
    let prefix = match host {
        Some(h) if h.ends_with("github.com") => Some("github.com"),
        Some(h) if h.ends_with("gitlab.com") => Some("gitlab.com"),
        Some(h) if h.ends_with("bitbucket.org") => Some("bitbucket.org"),
        Some(h) if h.ends_with("dev.azure.com") => Some("dev.azure.com"),
        _ => None,
    };
    let slug = match (prefix, owner, name) {
        (Some(p), Some(o), Some(n)) => Some((format!("{p}/project-slug"), format!("{o}/{n}"))),
        _ => None,
    };
    (name.map(str::to_owned), slug)
}

/// `text` made into a valid `metadata.name`: letters, digits and `-_.`,
/// starting and ending with a letter or digit, at most 63 characters.
fn object_name(text: &str) -> String {
    let mapped: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .collect();
    let trimmed: String = mapped
        .trim_matches(|c: char| !c.is_ascii_alphanumeric())
        .chars()
        .take(63)
        .collect();
    let trimmed = trimmed.trim_end_matches(|c: char| !c.is_ascii_alphanumeric());
    if trimmed.is_empty() {
        "new-component".to_owned()
    } else {
        trimmed.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_from_the_repository_directory_or_file() {
        let cases = [
            (
                "git",
                "https://github.com/keel/orders-api.git",
                "orders-api",
                Some(("github.com/project-slug", "keel/orders-api")),
            ),
            (
                "git",
                "git@gitlab.com:keel/billing.git#main:catalog-info.yaml",
                "billing",
                Some(("gitlab.com/project-slug", "keel/billing")),
            ),
            ("git", "/srv/git/payments#main", "payments", None),
            ("git", "https://git.example.com/keel/ledger", "ledger", None),
            ("dir", "/home/me/src/My Service!", "My-Service", None),
            (
                "file",
                "/home/me/src/web-app/catalog-info.yaml",
                "web-app",
                None,
            ),
            ("dir", "/", "new-component", None),
        ];
        for (kind, target, name, slug) in cases {
            let e = suggested_component(kind, target);
            assert_eq!(e["metadata"]["name"], name, "{kind} {target}");
            let annotations = &e["metadata"]["annotations"];
            match slug {
                Some((k, v)) => assert_eq!(annotations[k], v, "{kind} {target}"),
                None => assert!(annotations.is_null(), "{kind} {target}: {annotations}"),
            }
            let kinds = plinth_model::Kinds::default();
            let mut valid = e.clone();
            valid["spec"]["owner"] = "group:default/team".into();
            assert!(
                plinth_model::validate_entity(valid, &kinds).is_ok(),
                "{kind} {target}"
            );
        }
    }
}
