//! Shared by the CLI's tests: the seed walkthrough's files, and for the lab's end-to-end
//! tests a lab of one's own per test, taken down on drop.
#![allow(dead_code)]

use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use palisade_lab::LabPaths;
use serde_json::Value;

pub const PALISADE: &str = env!("CARGO_BIN_EXE_palisade");
static COUNTER: AtomicUsize = AtomicUsize::new(0);

pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The palisade-cni binary next to palisade (cargo builds every workspace binary for
/// `cargo test --workspace`).
pub fn cni_binary() -> PathBuf {
    let path = Path::new(PALISADE).with_file_name("palisade-cni");
    assert!(path.is_file(), "{} is missing: build it (cargo build -p palisade-cni) or run cargo test --workspace", path.display());
    path
}

pub struct TestLab {
    pub name: String,
    pub paths: LabPaths,
    pub files: tempfile::TempDir,
}

/// kubectl as `scripts/setup` installs it (or `$PALISADE_KUBECTL`): the lab is driven by
/// the real client, as a user drives it.
pub fn kubectl_binary() -> PathBuf {
    let path = std::env::var_os("PALISADE_KUBECTL").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/opt/palisade-tools/bin/kubectl"));
    assert!(path.is_file(), "{} is missing: run scripts/setup (it installs kubectl) or set PALISADE_KUBECTL", path.display());
    path
}

impl TestLab {
    pub fn new() -> Self {
        let name = format!("t{}-{}", std::process::id() % 100_000, COUNTER.fetch_add(1, Ordering::Relaxed));
        Self { paths: LabPaths::new(&name).unwrap(), name, files: tempfile::tempdir().unwrap() }
    }

    pub fn up(nodes: u8) -> Self {
        let lab = Self::new();
        lab.ok(&["up", "--nodes", &nodes.to_string()]);
        lab
    }

    /// `palisade lab ARGS` (the lab's own verbs: up, down, status...).
    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(PALISADE).arg("lab").args(args).env("PALISADE_LAB", &self.name).output().expect("run palisade")
    }

    /// Runs a lab verb that must succeed; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        succeeded(&format!("palisade lab {args:?}"), self.cli(args))
    }

    /// kubectl against this lab's API.
    pub fn kubectl(&self, args: &[&str]) -> Output {
        self.kubectl_command(args).output().expect("run kubectl")
    }

    pub fn kubectl_command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(kubectl_binary());
        command.args(args).env("KUBECONFIG", self.paths.kubeconfig());
        command
    }

    /// A kubectl command that must succeed; returns stdout.
    pub fn k(&self, args: &[&str]) -> String {
        succeeded(&format!("kubectl {args:?}"), self.kubectl(args))
    }

    pub fn file(&self, name: &str, yaml: &str) -> String {
        let path = self.files.path().join(name);
        std::fs::write(&path, yaml).unwrap();
        path.display().to_string()
    }

    /// `kubectl apply -f` of the YAML, then waits until its pods run and every node
    /// enforces what the API holds (see `settle`). Returns kubectl's output.
    pub fn apply(&self, name: &str, yaml: &str) -> String {
        let file = self.file(name, yaml);
        let out = self.k(&["apply", "-f", &file]);
        self.settle();
        out
    }

    /// Waits until every workload has its pods, every pod is ready or finished (or failed
    /// to start), then until every node enforces the API's current state.
    pub fn settle(&self) {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let all = self.json(&["get", "deployments,statefulsets,daemonsets,pods", "-A"]);
            let unsettled: Vec<String> =
                all["items"].as_array().unwrap().iter().filter(|o| !settled(o)).map(|o| format!("{} {}/{}", o["kind"], o["metadata"]["namespace"], o["metadata"]["name"])).collect();
            if unsettled.is_empty() {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "not settled after 60 s: {unsettled:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
        self.synced();
    }

    /// Waits until every node enforces what the API holds now (`palisade lab status --wait-synced`).
    pub fn synced(&self) -> String {
        self.ok(&["status", "--wait-synced", "20"])
    }

    pub fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.extend(["-o", "json"]);
        serde_json::from_str(&self.k(&all)).unwrap()
    }

    /// Pods of a namespace whose name starts with `prefix`.
    pub fn pods(&self, namespace: &str, prefix: &str) -> Vec<Value> {
        self.json(&["get", "pods", "-n", namespace])["items"].as_array().unwrap().iter().filter(|p| p["metadata"]["name"].as_str().unwrap().starts_with(prefix)).cloned().collect()
    }

    pub fn pod_netns(&self, pod: &Value) -> PathBuf {
        palisade_net::netns_path(&self.paths.pod_netns(pod["metadata"]["uid"].as_str().unwrap()))
    }

    pub fn node_table(&self, node: &str) -> String {
        let output = Command::new("ip").args(["netns", "exec", &self.paths.node_netns(node), "nft", "list", "table", "inet", "palisade"]).output().unwrap();
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Packets the node's deny rules counted.
    pub fn denied_on(&self, node: &str) -> u64 {
        self.counted_on(node, "goto deny")
    }

    /// Packets counted by the node's rules whose line holds `text`.
    pub fn counted_on(&self, node: &str, text: &str) -> u64 {
        self.node_table(node).lines().filter(|l| l.contains(text)).filter_map(|l| l.split("counter packets ").nth(1)?.split_whitespace().next()?.parse::<u64>().ok()).sum()
    }

    pub fn leftovers(&self) -> Vec<String> {
        let mut left: Vec<String> = palisade_net::list_named(&self.paths.netns_prefix()).into_iter().map(|n| format!("netns {n}")).collect();
        left.extend(palisade_lab::client::marked_processes(&self.paths).into_iter().map(|p| format!("process {p}")));
        if self.paths.state_dir.exists() {
            left.push(format!("state {}", self.paths.state_dir.display()));
        }
        left
    }
}

fn succeeded(what: &str, output: Output) -> String {
    assert!(output.status.success(), "{what} failed:\n{}\n{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A workload with all its replicas ready, or a pod that is ready, finished, or failed to
/// start (what a test waits for after an apply).
fn settled(object: &Value) -> bool {
    let status = &object["status"];
    let generation_seen = object["metadata"]["generation"].is_null() || status["observedGeneration"] == object["metadata"]["generation"];
    match object["kind"].as_str().unwrap_or_default() {
        "Deployment" | "StatefulSet" => {
            let want = object["spec"]["replicas"].as_u64().unwrap_or(1);
            generation_seen && status["readyReplicas"].as_u64().unwrap_or(0) == want && status["replicas"].as_u64().unwrap_or(0) == want
        }
        "DaemonSet" => generation_seen && status["desiredNumberScheduled"].as_u64().is_some_and(|want| status["numberReady"].as_u64() == Some(want)),
        "Pod" => {
            let ready = status["conditions"].as_array().is_some_and(|c| c.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"));
            let done = matches!(status["phase"].as_str(), Some("Succeeded" | "Failed"));
            let stuck = status["containerStatuses"]
                .as_array()
                .is_some_and(|c| c.iter().any(|c| matches!(c["state"]["waiting"]["reason"].as_str(), Some("CrashLoopBackOff" | "StartError" | "CreateContainerError"))));
            object["metadata"]["deletionTimestamp"].is_string() || ready || done || stuck
        }
        _ => true,
    }
}

impl Drop for TestLab {
    fn drop(&mut self) {
        let _ = self.cli(&["down"]);
    }
}

pub fn ip_of(pod: &Value) -> IpAddr {
    pod["status"]["podIP"].as_str().unwrap().parse().unwrap()
}

/// A TCP connection from inside a pod: `true` if it was accepted.
pub fn connects(netns: &Path, ip: IpAddr, port: u16) -> bool {
    palisade_net::run_in(netns, || TcpStream::connect_timeout(&SocketAddr::new(ip, port), Duration::from_secs(2)).is_ok()).unwrap()
}

/// What the lab must never change in the host's own namespace: links, routes, forwarding.
pub fn root_namespace_state() -> String {
    let run = |args: &[&str]| String::from_utf8_lossy(&Command::new("ip").args(args).output().unwrap().stdout).into_owned();
    let links: Vec<String> = run(&["-o", "link", "show"]).lines().filter_map(|l| l.split(": ").nth(1).map(str::to_string)).collect();
    let sysctl = |key: &str| std::fs::read_to_string(format!("/proc/sys/{}", key.replace('.', "/"))).unwrap_or_default();
    format!("links {links:?}\nroutes {}{}\nforwarding {} {}", run(&["route", "show"]), run(&["-6", "route", "show"]), sysctl("net.ipv4.ip_forward"), sysctl("net.ipv6.conf.all.forwarding"))
}

pub fn root_tables() -> String {
    String::from_utf8_lossy(&Command::new("nft").args(["list", "tables"]).output().unwrap().stdout).into_owned()
}

pub fn seed_demo() -> PathBuf {
    workspace().join("examples/seed-demo")
}

/// The seed walkthrough's objects, namespaced as `kubectl apply -n` put them.
pub fn seed_files() -> Vec<String> {
    let d = seed_demo();
    let f = |name: &str, ns: &str| {
        let path = d.join(name).display().to_string();
        if ns.is_empty() { path } else { format!("{path}@{ns}") }
    };
    vec![
        f("namespaces.yaml", ""),
        f("nginx-deployment.yaml", "production"),
        f("nginx-service.yaml", "production"),
        f("curl-deployment.yaml", "production"),
        f("curl-deployment.yaml", "develop"),
        f("production-networkpolicy.yaml", ""),
    ]
}
