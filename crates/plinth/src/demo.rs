//! The example organisation, embedded so that `plinth serve --demo` works
//! from any directory.

use std::path::Path;

/// Every file of `examples/`, by relative path. A test checks the list is
/// complete.
pub const FILES: &[(&str, &str)] = &[
    (
        "apis/checkout-api.yaml",
        include_str!("../../../examples/apis/checkout-api.yaml"),
    ),
    (
        "apis/order-events.yaml",
        include_str!("../../../examples/apis/order-events.yaml"),
    ),
    (
        "apis/payments-api.yaml",
        include_str!("../../../examples/apis/payments-api.yaml"),
    ),
    (
        "catalog-info.yaml",
        include_str!("../../../examples/catalog-info.yaml"),
    ),
    (
        "components/all.yaml",
        include_str!("../../../examples/components/all.yaml"),
    ),
    (
        "components/checkout-service/catalog-info.yaml",
        include_str!("../../../examples/components/checkout-service/catalog-info.yaml"),
    ),
    (
        "components/design-system/catalog-info.yaml",
        include_str!("../../../examples/components/design-system/catalog-info.yaml"),
    ),
    (
        "components/fulfilment-service/catalog-info.yaml",
        include_str!("../../../examples/components/fulfilment-service/catalog-info.yaml"),
    ),
    (
        "components/payments-service/catalog-info.yaml",
        include_str!("../../../examples/components/payments-service/catalog-info.yaml"),
    ),
    (
        "components/storefront-web/catalog-info.yaml",
        include_str!("../../../examples/components/storefront-web/catalog-info.yaml"),
    ),
    (
        "domains.yaml",
        include_str!("../../../examples/domains.yaml"),
    ),
    (
        "org/groups.yaml",
        include_str!("../../../examples/org/groups.yaml"),
    ),
    (
        "org/users.yaml",
        include_str!("../../../examples/org/users.yaml"),
    ),
    (
        "resources/resources.yaml",
        include_str!("../../../examples/resources/resources.yaml"),
    ),
    (
        "systems/systems.yaml",
        include_str!("../../../examples/systems/systems.yaml"),
    ),
];

/// Writes the example organisation under `dir`; returns its root catalog file.
pub fn write(dir: &Path) -> std::io::Result<std::path::PathBuf> {
    for (rel, text) in FILES {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        // Rewritten only when different, so unchanged files stay unchanged.
        if std::fs::read_to_string(&path).ok().as_deref() != Some(*text) {
            std::fs::write(&path, text)?;
        }
    }
    Ok(dir.join("catalog-info.yaml"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_example_file_is_embedded() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
        let mut on_disk = Vec::new();
        let mut stack = vec![root.clone()];
        while let Some(dir) = stack.pop() {
            for e in std::fs::read_dir(dir).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    on_disk.push(p.strip_prefix(&root).unwrap().display().to_string());
                }
            }
        }
        on_disk.sort();
        let embedded: Vec<String> = super::FILES.iter().map(|(p, _)| p.to_string()).collect();
        assert_eq!(embedded, on_disk, "update crates/plinth/src/demo.rs");
    }
}
