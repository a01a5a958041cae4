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

    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(PALISADE).arg("lab").args(args).env("PALISADE_LAB", &self.name).env("PALISADE_CNI", cni_binary()).output().expect("run palisade")
    }

    /// Runs a verb that must succeed; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let output = self.cli(args);
        assert!(output.status.success(), "palisade lab {args:?} failed:\n{}\n{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    pub fn file(&self, name: &str, yaml: &str) -> String {
        let path = self.files.path().join(name);
        std::fs::write(&path, yaml).unwrap();
        path.display().to_string()
    }

    pub fn apply(&self, name: &str, yaml: &str) -> String {
        let file = self.file(name, yaml);
        self.ok(&["apply", "-f", &file])
    }

    pub fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.extend(["-o", "json"]);
        serde_json::from_str(&self.ok(&all)).unwrap()
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
        self.node_table(node)
            .lines()
            .filter(|l| l.contains("goto deny"))
            .filter_map(|l| l.split("counter packets ").nth(1)?.split_whitespace().next()?.parse::<u64>().ok())
            .sum()
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
    format!(
        "links {links:?}\nroutes {}{}\nforwarding {} {}",
        run(&["route", "show"]),
        run(&["-6", "route", "show"]),
        sysctl("net.ipv4.ip_forward"),
        sysctl("net.ipv6.conf.all.forwarding")
    )
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
