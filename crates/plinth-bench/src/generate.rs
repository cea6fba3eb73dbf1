//! A synthetic organisation with the proportions of a real one: a group
//! hierarchy with users, a few domains, systems, and per repository a
//! component with its APIs and resources, all referring to each other.

use std::fmt::{self, Write as _};
use std::fs;
use std::path::Path;

use anyhow::{Context, bail};

/// splitmix64: tiny, deterministic, good enough to pick names and links.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

const WORDS: &[&str] = &[
    "orders",
    "billing",
    "search",
    "catalog",
    "inventory",
    "shipping",
    "accounts",
    "ledger",
    "pricing",
    "reviews",
    "media",
    "identity",
    "alerts",
    "reports",
    "gateway",
    "loyalty",
    "returns",
    "tax",
    "fraud",
    "payouts",
    "content",
    "feeds",
    "sessions",
    "routing",
];
const LIFECYCLES: &[&str] = &[
    "production",
    "production",
    "production",
    "experimental",
    "deprecated",
];
const COMPONENT_TYPES: &[&str] = &["service", "service", "service", "website", "library"];
const RESOURCE_TYPES: &[&str] = &["database", "s3-bucket", "queue", "cache", "stream"];
const TAGS: &[&str] = &[
    "java",
    "go",
    "rust",
    "python",
    "typescript",
    "kotlin",
    "grpc",
    "rest",
    "pci",
    "critical",
];

pub struct Summary {
    pub files: usize,
    pub entities: usize,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "wrote {} entities in {} files",
            self.entities, self.files
        )
    }
}

pub fn write_organisation(out: &Path, target: usize, seed: u64) -> anyhow::Result<Summary> {
    if out.exists() && fs::read_dir(out)?.next().is_some() {
        bail!("{} is not empty; choose a new directory", out.display());
    }
    let mut rng = Rng(seed);
    // Proportions: 2% groups, 10% users, 1% systems, a few domains; the
    // rest in repositories of one component, ~0.4 APIs and ~0.35 resources.
    let groups = (target / 50).max(3);
    let users = (target / 10).max(2);
    let domains = (target / 1000).max(2);
    let systems = (target / 100).max(2);
    let per_repo = 1.75;
    let repos = (((target - groups - users - domains - systems.min(target)) as f64 / per_repo)
        as usize)
        .max(1);

    let mut w = Writer {
        out,
        files: 0,
        entities: 0,
    };
    let departments = (groups / 20).clamp(1, 30);
    let group_name = |i: usize| format!("team-{i:05}");

    // Groups: one root, departments under it, teams under departments.
    let mut doc = String::new();
    entity(&mut doc, "Group", "org", "Organisation", |s| {
        let _ = write!(s, "  type: organization\n  children: [");
        for d in 0..departments {
            let _ = write!(s, "{}{}", if d > 0 { ", " } else { "" }, group_name(d));
        }
        s.push_str("]\n");
    });
    w.count(1);
    for g in 0..groups.saturating_sub(1) {
        let parent = if g < departments {
            "org".to_string()
        } else {
            group_name(g % departments)
        };
        let children: Vec<String> = if g < departments {
            (departments..groups - 1)
                .filter(|c| c % departments == g)
                .map(group_name)
                .collect()
        } else {
            Vec::new()
        };
        entity(&mut doc, "Group", &group_name(g), "", |s| {
            let kind = if g < departments {
                "department"
            } else {
                "team"
            };
            let _ = writeln!(
                s,
                "  type: {kind}\n  parent: {parent}\n  children: [{}]",
                children.join(", ")
            );
        });
        w.count(1);
    }
    w.file("org/groups.yaml", &doc)?;

    // Users, in files of 500 as an HR export would write them.
    for chunk in 0..users.div_ceil(500) {
        let mut doc = String::new();
        for u in chunk * 500..((chunk + 1) * 500).min(users) {
            let team =
                group_name(departments + rng.below(groups.saturating_sub(1 + departments).max(1)));
            entity(&mut doc, "User", &format!("user-{u:06}"), "", |s| {
                let _ = writeln!(
                    s,
                    "  profile:\n    displayName: User {u}\n    email: user-{u:06}@example.com\n  memberOf: [{team}]"
                );
            });
            w.count(1);
        }
        w.file(&format!("org/users-{chunk:03}.yaml"), &doc)?;
    }

    let team = |rng: &mut Rng| {
        group_name(departments + rng.below(groups.saturating_sub(1 + departments).max(1)))
    };
    let mut doc = String::new();
    for d in 0..domains {
        let owner = team(&mut rng);
        entity(
            &mut doc,
            "Domain",
            &format!("domain-{d:04}"),
            "A business domain.",
            |s| {
                let _ = writeln!(s, "  owner: {owner}");
            },
        );
        w.count(1);
    }
    for sys in 0..systems {
        let owner = team(&mut rng);
        let domain = rng.below(domains);
        entity(
            &mut doc,
            "System",
            &format!("system-{sys:05}"),
            "A system of components.",
            |s| {
                let _ = writeln!(s, "  owner: {owner}\n  domain: domain-{domain:04}");
            },
        );
        w.count(1);
    }
    w.file("systems/catalog-info.yaml", &doc)?;

    // Repositories: a component, maybe an API it provides, maybe a resource
    // it depends on; components consume earlier APIs.
    let mut apis: Vec<String> = Vec::new();
    for r in 0..repos {
        let word = WORDS[r % WORDS.len()];
        let name = format!("{word}-{r:06}");
        let owner = team(&mut rng);
        let system = format!("system-{:05}", rng.below(systems));
        let mut doc = String::new();
        let provides = rng.chance(40).then(|| format!("{name}-api"));
        let resource = rng.chance(35).then(|| format!("{name}-db"));
        let consumes: Vec<String> = (0..rng.below(3))
            .filter(|_| !apis.is_empty())
            .map(|_| apis[rng.below(apis.len())].clone())
            .collect();
        let tag_a = TAGS[rng.below(TAGS.len())];
        let tag_b = TAGS[rng.below(TAGS.len())];
        let ctype = COMPONENT_TYPES[rng.below(COMPONENT_TYPES.len())];
        let lifecycle = LIFECYCLES[rng.below(LIFECYCLES.len())];
        entity_with_meta(
            &mut doc,
            "Component",
            &name,
            &format!("The {word} component number {r}."),
            &format!(
                "  tags: [{tag_a}{}]\n  annotations:\n    github.com/project-slug: example/{name}\n",
                if tag_a == tag_b {
                    String::new()
                } else {
                    format!(", {tag_b}")
                }
            ),
            |s| {
                let _ = writeln!(
                    s,
                    "  type: {ctype}\n  lifecycle: {lifecycle}\n  owner: {owner}\n  system: {system}"
                );
                if let Some(api) = &provides {
                    let _ = writeln!(s, "  providesApis: [{api}]");
                }
                if !consumes.is_empty() {
                    let _ = writeln!(s, "  consumesApis: [{}]", consumes.join(", "));
                }
                if let Some(db) = &resource {
                    let _ = writeln!(s, "  dependsOn: [resource:{db}]");
                }
            },
        );
        w.count(1);
        if let Some(api) = provides {
            entity(&mut doc, "API", &api, "The HTTP API.", |s| {
                let _ = write!(
                    s,
                    "  type: openapi\n  lifecycle: {lifecycle}\n  owner: {owner}\n  system: {system}\n  definition: |\n    openapi: 3.0.3\n    info:\n      title: {api}\n      version: 1.0.0\n    paths:\n      /{word}:\n        get:\n          operationId: list{r}\n          responses:\n            \"200\":\n              description: OK\n"
                );
            });
            w.count(1);
            apis.push(api);
        }
        if let Some(db) = resource {
            let rtype = RESOURCE_TYPES[rng.below(RESOURCE_TYPES.len())];
            entity(&mut doc, "Resource", &db, "Storage.", |s| {
                let _ = writeln!(s, "  type: {rtype}\n  owner: {owner}\n  system: {system}");
            });
            w.count(1);
        }
        w.file(
            &format!("repos/{:03}/{name}/catalog-info.yaml", r / 1000),
            &doc,
        )?;
    }
    Ok(Summary {
        files: w.files,
        entities: w.entities,
    })
}

struct Writer<'a> {
    out: &'a Path,
    files: usize,
    entities: usize,
}

impl Writer<'_> {
    fn count(&mut self, n: usize) {
        self.entities += n;
    }

    fn file(&mut self, rel: &str, text: &str) -> anyhow::Result<()> {
        let path = self.out.join(rel);
        fs::create_dir_all(path.parent().expect("has a parent"))?;
        fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        self.files += 1;
        Ok(())
    }
}

fn entity(
    doc: &mut String,
    kind: &str,
    name: &str,
    description: &str,
    spec: impl FnOnce(&mut String),
) {
    entity_with_meta(doc, kind, name, description, "", spec);
}

fn entity_with_meta(
    doc: &mut String,
    kind: &str,
    name: &str,
    description: &str,
    meta: &str,
    spec: impl FnOnce(&mut String),
) {
    if !doc.is_empty() {
        doc.push_str("---\n");
    }
    let _ = writeln!(
        doc,
        "apiVersion: backstage.io/v1alpha1\nkind: {kind}\nmetadata:\n  name: {name}"
    );
    if !description.is_empty() {
        let _ = writeln!(doc, "  description: {description}");
    }
    doc.push_str(meta);
    doc.push_str("spec:\n");
    spec(doc);
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::path::PathBuf;

    use plinth_catalog::files::{ReadOptions, find_catalog_files, read_catalog_file};

    use super::*;

    struct Scratch(PathBuf);

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn generate(n: usize, seed: u64, tag: &str) -> (Scratch, Summary) {
        let dir = std::env::temp_dir().join(format!("plinth-bench-{}-{tag}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let summary = write_organisation(&dir, n, seed).unwrap();
        (Scratch(dir), summary)
    }

    fn contents(dir: &Path) -> Vec<(PathBuf, String)> {
        let (files, _) = find_catalog_files(&[dir.to_path_buf()]);
        files
            .into_iter()
            .map(|f| {
                let text = fs::read_to_string(&f.path).unwrap();
                (f.path.strip_prefix(dir).unwrap().to_path_buf(), text)
            })
            .collect()
    }

    #[test]
    fn same_seed_same_organisation() {
        let (a, sa) = generate(3000, 7, "a");
        let (b, sb) = generate(3000, 7, "b");
        assert_eq!((sa.files, sa.entities), (sb.files, sb.entities));
        assert_eq!(contents(&a.0), contents(&b.0));
        let (c, _) = generate(3000, 8, "c");
        assert_ne!(contents(&a.0), contents(&c.0));
    }

    #[test]
    fn the_organisation_is_valid_and_linked() {
        let (dir, summary) = generate(5000, 1, "valid");
        assert!(
            (4900..=5100).contains(&summary.entities),
            "{}",
            summary.entities
        );
        let (files, findings) = find_catalog_files(std::slice::from_ref(&dir.0));
        assert!(findings.is_empty());
        assert_eq!(files.len(), summary.files);
        let mut entities = Vec::new();
        for f in &files {
            let c = read_catalog_file(&f.path, "x", &ReadOptions::default());
            assert!(c.findings.is_empty(), "{:?}", c.findings);
            entities.extend(c.entities.into_iter().map(|e| e.entity));
        }
        assert_eq!(entities.len(), summary.entities);
        let refs: BTreeSet<String> = entities
            .iter()
            .map(|e| e.entity_ref().to_string())
            .collect();
        assert_eq!(refs.len(), entities.len(), "names are unique");
        let mut relations = 0;
        for e in &entities {
            for r in e.relations() {
                assert!(refs.contains(&r.target.to_string()), "dangling {r}");
                relations += 1;
            }
        }
        // A realistic density: several relations per entity.
        assert!(relations > 3 * entities.len(), "{relations}");
    }
}
