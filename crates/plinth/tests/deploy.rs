//! The Kubernetes manifests in deploy/ agree with plinth: the probes point
//! at its health routes, the ports and paths match its flags, the
//! configuration file is one plinth accepts, the database URL comes from a
//! secret, and the disruption budget covers the Deployment's pods.

use std::path::{Path, PathBuf};

use serde_json::Value;

mod common;
use common::{Scratch, plinth};

fn manifests() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/kubernetes")
}

/// The one document of a manifest file, as JSON.
fn manifest(name: &str) -> Value {
    let path = manifests().join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
    let mut docs = plinth_yaml::parse_documents(&text, &plinth_yaml::Limits::default());
    assert_eq!(docs.len(), 1, "{name}: one document");
    docs.remove(0)
        .unwrap_or_else(|e| panic!("{name}: {e}"))
        .value
}

/// The value after `flag` in the container's arguments.
fn arg<'a>(args: &'a [Value], flag: &str) -> &'a str {
    let i = args
        .iter()
        .position(|a| a == flag)
        .unwrap_or_else(|| panic!("{flag} is given"));
    args[i + 1].as_str().unwrap()
}

#[test]
fn the_manifests_agree_with_plinth() {
    let kustomization = manifest("kustomization.yaml");
    let listed: Vec<&str> = kustomization["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    let mut files: Vec<String> = std::fs::read_dir(manifests())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|f| f != "kustomization.yaml")
        .collect();
    files.sort();
    let mut sorted = listed.clone();
    sorted.sort();
    assert_eq!(sorted, files, "every manifest is in the kustomization");

    let deployment = manifest("deployment.yaml");
    assert_eq!(deployment["kind"], "Deployment");
    assert_eq!(deployment["spec"]["replicas"], 3);
    let labels = &deployment["spec"]["template"]["metadata"]["labels"];
    assert_eq!(&deployment["spec"]["selector"]["matchLabels"], labels);
    let pod = &deployment["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    let args = container["args"].as_array().unwrap();
    assert_eq!(args[0], "serve");

    // Probes on plinth's routes, on the port it listens on.
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    let port = &container["ports"][0];
    assert_eq!(container["readinessProbe"]["httpGet"]["port"], port["name"]);
    assert_eq!(
        arg(args, "--listen"),
        format!("0.0.0.0:{}", port["containerPort"])
    );

    // The database URL from a secret; never in the configuration.
    let env = container["env"].as_array().unwrap();
    let database = env
        .iter()
        .find(|e| e["name"] == "PLINTH_DATABASE_URL")
        .expect("PLINTH_DATABASE_URL is set");
    assert!(database["valueFrom"]["secretKeyRef"]["name"].is_string());
    for limit in ["requests", "limits"] {
        assert!(
            container["resources"][limit]["memory"].is_string(),
            "{limit}"
        );
    }

    // The configuration file is mounted where --config points, and plinth
    // accepts it (unknown keys are errors).
    let config = manifest("configmap.yaml");
    let mount = container["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| {
            let volume = pod["volumes"]
                .as_array()
                .unwrap()
                .iter()
                .find(|v| v["name"] == m["name"])
                .unwrap();
            volume["configMap"]["name"] == config["metadata"]["name"]
        })
        .expect("the ConfigMap is mounted");
    let toml_name = Path::new(arg(args, "--config"));
    assert_eq!(
        toml_name.parent().unwrap(),
        Path::new(mount["mountPath"].as_str().unwrap())
    );
    let toml_name = toml_name.file_name().unwrap().to_str().unwrap();
    let toml = config["data"][toml_name]
        .as_str()
        .expect("the file is there");
    assert!(
        !toml.contains("postgres://"),
        "no database URL in the ConfigMap"
    );
    // Reachable from other machines: plinth would refuse to start with
    // anonymous callers.
    assert!(
        toml.contains("anonymous = \"none\""),
        "the ConfigMap requires API tokens"
    );
    let scratch = Scratch::new("deploy");
    std::fs::write(scratch.0.join("plinth.toml"), toml).unwrap();
    std::fs::write(
        scratch.0.join("catalog-info.yaml"),
        "apiVersion: backstage.io/v1alpha1\nkind: Group\nmetadata:\n  name: team-a\nspec:\n  type: team\n  children: []\n",
    )
    .unwrap();
    let run = plinth(
        &scratch.0,
        &[
            "--config",
            "plinth.toml",
            "catalog",
            "validate",
            "catalog-info.yaml",
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);

    // The Service reaches the container's port; the budget covers the pods
    // and leaves room for a drain.
    let service = manifest("service.yaml");
    assert_eq!(&service["spec"]["selector"], labels);
    assert_eq!(service["spec"]["ports"][0]["targetPort"], port["name"]);
    let budget = manifest("poddisruptionbudget.yaml");
    assert_eq!(&budget["spec"]["selector"]["matchLabels"], labels);
    let min = budget["spec"]["minAvailable"].as_i64().unwrap();
    assert!((1..3).contains(&min), "minAvailable {min} of 3 replicas");
}
