//! `deploy/palisade.yaml` and the `Containerfile`, checked as far as this machine allows (no
//! container engine runs here; the API server's validation of the manifest and the agent
//! running under its RBAC are in `tests/agent.rs`): every command, flag and environment
//! variable the DaemonSet gives exists in the binary, every ConfigMap key it reads exists,
//! and the image holds what those commands need.

mod support;

use std::process::Command;

use serde_json::Value;
use support::{PALISADE, workspace};

fn manifest() -> Vec<Value> {
    let text = std::fs::read_to_string(workspace().join("deploy/palisade.yaml")).unwrap();
    palisade_model::parse_yaml(&text).expect("the manifest is YAML")
}

fn object<'a>(objects: &'a [Value], kind: &str) -> &'a Value {
    objects.iter().find(|o| o["kind"] == kind).unwrap_or_else(|| panic!("no {kind} in the manifest"))
}

fn help(subcommand: &str) -> String {
    let output = Command::new(PALISADE).args([subcommand, "--help"]).output().unwrap();
    assert!(output.status.success(), "palisade {subcommand} --help failed");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn the_daemonsets_commands_flags_and_settings_exist() {
    let objects = manifest();
    let daemonset = object(&objects, "DaemonSet");
    let config = &object(&objects, "ConfigMap")["data"];
    let spec = &daemonset["spec"]["template"]["spec"];
    assert_eq!(spec["hostNetwork"], true);
    assert_eq!(spec["serviceAccountName"], "palisade-agent");
    let containers: Vec<&Value> = spec["initContainers"].as_array().unwrap().iter().chain(spec["containers"].as_array().unwrap()).collect();
    assert_eq!(containers.len(), 2);
    for container in containers {
        let command: Vec<&str> = container["command"].as_array().unwrap().iter().map(|c| c.as_str().unwrap()).collect();
        assert_eq!(command[0], "palisade", "{command:?}");
        let help = help(command[1]);
        for flag in &command[2..] {
            let name = flag.split('=').next().unwrap();
            assert!(help.contains(name), "palisade {} has no {name}:\n{help}", command[1]);
        }
        for env in container["env"].as_array().unwrap() {
            let name = env["name"].as_str().unwrap();
            // RUST_LOG is read by the log filter, MIMALLOC_* by the allocator.
            if name != "RUST_LOG" && !name.starts_with("MIMALLOC_") {
                assert!(help.contains(&format!("env: {name}")), "palisade {} reads no {name}:\n{help}", command[1]);
            }
            if let Some(key) = env["valueFrom"]["configMapKeyRef"]["key"].as_str() {
                assert!(config[key].is_string(), "the ConfigMap has no {key}");
            }
        }
        // Requests and limits on every container.
        assert!(container["resources"]["requests"]["memory"].is_string() && container["resources"]["limits"]["memory"].is_string(), "{container}");
    }
    let agent = &spec["containers"][0];
    assert_eq!(agent["securityContext"]["capabilities"]["add"], serde_json::json!(["NET_ADMIN", "NET_RAW"]));
    assert!(agent["securityContext"]["privileged"].is_null());
    // The probes and the metrics port are the agent's listener.
    assert_eq!(agent["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(agent["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert!(help("agent").contains("0.0.0.0:9099"));
    assert_eq!(agent["ports"][0]["containerPort"], 9099);
}

#[test]
fn the_role_grants_exactly_what_the_agent_uses() {
    let objects = manifest();
    let rules = object(&objects, "ClusterRole")["rules"].as_array().unwrap().clone();
    let mut grants: Vec<String> = Vec::new();
    for rule in &rules {
        for group in rule["apiGroups"].as_array().unwrap() {
            for resource in rule["resources"].as_array().unwrap() {
                let verbs: Vec<&str> = rule["verbs"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
                grants.push(format!("{}/{}: {}", group.as_str().unwrap(), resource.as_str().unwrap(), verbs.join(",")));
            }
        }
    }
    grants.sort();
    assert_eq!(
        grants,
        [
            "/namespaces: get,list,watch",
            "/nodes: get,list,watch",
            "/pods: get,list,watch",
            "events.k8s.io/events: create,patch",
            "networking.k8s.io/networkpolicies: get,list,watch",
            "policy.networking.k8s.io/clusternetworkpolicies: get,list,watch"
        ]
    );
}

#[test]
fn the_image_holds_what_the_manifest_runs() {
    let containerfile = std::fs::read_to_string(workspace().join("Containerfile")).unwrap();
    let objects = manifest();
    let image = object(&objects, "DaemonSet")["spec"]["template"]["spec"]["containers"][0]["image"].as_str().unwrap().to_string();
    assert!(containerfile.contains(&format!("-t {image} ")), "the Containerfile's build command names another image than {image}");
    // Both binaries are built from the committed lock file and land on the PATH; install-cni
    // finds palisade-cni beside palisade.
    assert!(containerfile.contains("cargo build --release --locked -p palisade -p palisade-cni"));
    assert!(containerfile.contains("/src/target/release/palisade /src/target/release/palisade-cni /usr/local/bin/"));
    // The agent applies rulesets with nft.
    assert!(containerfile.contains("nftables"));
    // The build stage's toolchain is the workspace's.
    let cargo = std::fs::read_to_string(workspace().join("Cargo.toml")).unwrap();
    let rust_version = cargo.lines().find_map(|l| l.strip_prefix("rust-version = \"")).unwrap().trim_end_matches('"');
    assert!(containerfile.contains(&format!("rust:{rust_version}-")), "the build image is not Rust {rust_version}");
    // What the build stage builds exists for this checkout (cargo test built it).
    for binary in ["palisade", "palisade-cni"] {
        assert!(std::path::Path::new(PALISADE).with_file_name(binary).is_file(), "{binary} was not built");
    }
}
