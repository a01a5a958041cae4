//! The lab: its machines, its API server's registry, and the node-side work a cluster does
//! (controllers, the runtime, DNS, Services), brought to the API's state by `settle`
//! whenever it changes (level-triggered, as on a cluster). NetworkPolicy is enforced by
//! Palisade's own DaemonSet, which `start` applies to the API (`node_agents`).

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use palisade_apiserver::api::{Api, WriteOptions};
use palisade_apiserver::selectors::{FieldSelector, LabelSelector};
use serde_json::{Value, json};

use crate::controllers::{self, pods, resource};
use crate::error::LabError;
use crate::images::DNS_IMAGE;
use crate::paths::LabPaths;
use crate::proxy::{self, DNS_V4, KUBERNETES_V4};
use crate::runtime::{Runtime, RuntimeConfig};
use crate::topology::{self, API_PORT, API_V4, NodeInfo, Topology};
use crate::{dns, node_agents};

pub struct Lab {
    pub paths: LabPaths,
    pub topology: Topology,
    pub api: Arc<Api>,
    runtime: Runtime,
    started: Instant,
    /// The outside host's server (TCP 80, 443 and UDP 53), for ipBlock tests.
    outside_server: Option<std::process::Child>,
    /// The pod status last written, per pod uid (written again only when it changes).
    written: HashMap<String, Value>,
    /// Whether pods wait for a node's network plugin (no CNI config there yet).
    waiting_for_network: bool,
}

/// How long `start` waits for Palisade's agents to enforce the lab's first state (a fresh
/// lab: the DaemonSet's pods start, install the CNI plugin, list the API and sync).
const AGENTS_TIMEOUT: Duration = Duration::from_secs(60);

/// Starts `palisade serve` on the outside host, answering with "outside".
fn start_outside_server(paths: &LabPaths, topology: &Topology, self_exe: &std::path::Path) -> Result<std::process::Child, LabError> {
    use std::os::unix::process::CommandExt;
    let (marker, value) = paths.process_marker();
    let log = std::fs::File::create(paths.state_dir.join("outside.log")).map_err(LabError::io("creating the outside host's log"))?;
    palisade_net::run_in(&topology.outside, || {
        std::process::Command::new(self_exe)
            .args(["serve", "--hostname", "outside", "--tcp", "80", "--tcp", "443", "--udp", "53"])
            .env(marker, value)
            .process_group(0)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
    })?
    .map_err(LabError::io("starting the outside host's server"))
}

fn node_object(node: &NodeInfo) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": node.name, "labels": {"kubernetes.io/hostname": node.name, "kubernetes.io/os": "linux", "kubernetes.io/arch": std::env::consts::ARCH}},
        "spec": {"podCIDR": node.pod_cidr4.to_string(), "podCIDRs": [node.pod_cidr4.to_string(), node.pod_cidr6.to_string()]},
        "status": {
            "capacity": {"pods": topology::pod_capacity(node).to_string()},
            "allocatable": {"pods": topology::pod_capacity(node).to_string()},
            "addresses": [{"type": "InternalIP", "address": node.ip4.to_string()}, {"type": "InternalIP", "address": node.ip6.to_string()}, {"type": "Hostname", "address": node.name}],
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "the lab's runtime is running"}],
            "nodeInfo": {"kubeletVersion": "v1.33.0-palisade-lab", "operatingSystem": "linux", "architecture": std::env::consts::ARCH, "containerRuntimeVersion": "palisade-lab://1", "osImage": "palisade lab", "kernelVersion": kernel_version()},
        },
    })
}

fn kernel_version() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease").map(|s| s.trim().to_string()).unwrap_or_default()
}

/// The objects a lab cluster starts with besides the API server's own: its nodes, cluster
/// DNS (a Deployment and the kube-dns Service), and the `kubernetes` Service pointing at the
/// API server's address inside the lab.
fn lab_objects(topology: &Topology) -> Vec<Value> {
    let mut objects: Vec<Value> = topology.nodes.iter().map(node_object).collect();
    let labels = json!({"k8s-app": "kube-dns"});
    objects.push(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "coredns", "namespace": "kube-system", "labels": labels},
        "spec": {"replicas": 1, "selector": {"matchLabels": labels}, "template": {"metadata": {"labels": labels}, "spec": {"containers": [{
            "name": "coredns", "image": DNS_IMAGE,
            "ports": [{"name": "dns", "containerPort": 53, "protocol": "UDP"}, {"name": "dns-tcp", "containerPort": 53, "protocol": "TCP"}],
        }]}}},
    }));
    objects.push(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "kube-dns", "namespace": "kube-system", "labels": labels},
        "spec": {"clusterIP": DNS_V4.to_string(), "selector": labels, "ports": [
            {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
            {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53},
        ]},
    }));
    objects.push(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "kubernetes", "namespace": "default", "labels": {"component": "apiserver", "provider": "kubernetes"}},
        "spec": {"clusterIP": KUBERNETES_V4.to_string(), "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": API_PORT}]},
    }));
    objects.push(json!({
        "apiVersion": "v1", "kind": "Endpoints",
        "metadata": {"name": "kubernetes", "namespace": "default", "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
        "subsets": [{"addresses": [{"ip": API_V4.to_string()}], "ports": [{"name": "https", "port": API_PORT, "protocol": "TCP"}]}],
    }));
    objects
}

/// Creates what is missing (a restarted lab keeps what its API already holds).
fn ensure(api: &Api, object: Value) -> Result<(), LabError> {
    let r = resource(object["apiVersion"].as_str().unwrap_or_default(), object["kind"].as_str().unwrap_or_default());
    let (namespace, name) = (object["metadata"]["namespace"].as_str().unwrap_or_default().to_string(), object["metadata"]["name"].as_str().unwrap_or_default().to_string());
    if api.get(r, &namespace, &name).is_ok() {
        return Ok(());
    }
    let status = object.get("status").cloned();
    api.create(r, &namespace, object, &WriteOptions::default()).map_err(|e| LabError::failed(format!("creating the lab's {} {name}: {e}", r.kind)))?;
    if let Some(status) = status {
        api.modify(r, &namespace, &name, |o| {
            o["status"] = status.clone();
            true
        })
        .map_err(|e| LabError::failed(format!("writing the status of {name}: {e}")))?;
    }
    Ok(())
}

impl Lab {
    /// Brings the lab up on its machines and API: the outside host, the lab's own objects,
    /// Palisade's manifest (as `kubectl apply -f deploy/palisade.yaml` on a cluster), then a
    /// first settle (which adopts surviving pod sandboxes) and the agents' first syncs.
    pub fn start(paths: LabPaths, topology: Topology, api: Arc<Api>, runtime: Runtime, self_exe: &std::path::Path) -> Result<Self, LabError> {
        let outside_server = Some(start_outside_server(&paths, &topology, self_exe)?);
        for object in lab_objects(&topology).into_iter().chain(node_agents::manifest_objects()?) {
            ensure(&api, object)?;
        }
        let mut lab = Self { paths, topology, api, runtime, started: Instant::now(), outside_server, written: HashMap::new(), waiting_for_network: false };
        // The API's Service first: the agents reach the API through it.
        lab.sync_services()?;
        lab.settle()?;
        // The supervisor's loop until the agents run and enforce what the API holds.
        let started = Instant::now();
        loop {
            let synced = if lab.waiting_for_network { Err("pods wait for the network plugin".to_string()) } else { node_agents::check_synced(&lab.api, &lab.topology.nodes) };
            match synced {
                Ok(()) => return Ok(lab),
                Err(late) if started.elapsed() >= AGENTS_TIMEOUT => return Err(lab.explain_agents(node_agents::timed_out(AGENTS_TIMEOUT, &late))),
                Err(_) => {
                    std::thread::sleep(Duration::from_millis(10));
                    lab.tick();
                }
            }
        }
    }

    /// An agent failure with what its pods say (status and the last lines of their logs).
    fn explain_agents(&self, error: LabError) -> LabError {
        let mut lines = vec![error.to_string()];
        let agent_pods = controllers::list(&self.api, pods()).into_iter().filter(|p| p["metadata"]["namespace"] == node_agents::AGENT_NAMESPACE);
        for pod in agent_pods {
            let uid = pod["metadata"]["uid"].as_str().unwrap_or_default();
            let name = pod["metadata"]["name"].as_str().unwrap_or_default();
            lines.push(format!("pod {}/{name}: phase {}, {}", node_agents::AGENT_NAMESPACE, pod["status"]["phase"].as_str().unwrap_or("unknown"), pod["status"]["message"].as_str().unwrap_or("")));
            for container in ["install-cni", "agent"] {
                let log = std::fs::read_to_string(self.paths.pod_dir(uid).join(format!("{container}.log"))).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(5).collect();
                lines.extend(tail.into_iter().rev().map(|l| format!("  {container}: {l}")));
            }
        }
        LabError::failed(lines.join("\n"))
    }

    /// kube-proxy's part: every node's Service table from the API's Services.
    fn sync_services(&self) -> Result<(), LabError> {
        let services = proxy::services(&self.api);
        let tables: Vec<String> = self.topology.nodes.iter().map(|n| proxy::render(&services, n.ip4, n.ip6)).collect();
        proxy::apply_all(&self.topology.nodes, &tables)
    }

    /// Stops everything the lab runs (the machines are removed by the caller).
    pub fn stop(mut self) {
        self.runtime.stop_all();
        if let Some(mut server) = self.outside_server.take() {
            let _ = server.kill();
            let _ = server.wait();
        }
    }

    fn node_names(&self) -> Vec<String> {
        self.topology.nodes.iter().map(|n| n.name.clone()).collect()
    }

    /// Brings controllers, runtime, DNS and every node's Service table to the API's state
    /// (NetworkPolicy is the agents' business).
    pub fn settle(&mut self) -> Result<(), LabError> {
        let nodes = self.node_names();
        for _ in 0..8 {
            let round = Instant::now();
            let changes = controllers::reconcile(&self.api, &nodes);
            let controllers_took = round.elapsed();
            let wanted: Vec<Value> = controllers::list(&self.api, pods());
            let wanted_uids: BTreeSet<String> = wanted.iter().filter_map(|p| p["metadata"]["uid"].as_str().map(str::to_string)).collect();
            let gone: Vec<String> = self.runtime.uids().into_iter().filter(|uid| !wanted_uids.contains(uid)).collect();
            self.runtime.stop(&gone);
            for uid in &gone {
                self.written.remove(uid);
            }
            let mut new_pods = Vec::new();
            self.waiting_for_network = false;
            for pod in wanted {
                let uid = pod["metadata"]["uid"].as_str().unwrap_or_default();
                if self.runtime.has(uid) || !pod["metadata"]["deletionTimestamp"].is_null() {
                    continue;
                }
                let Some(node) = self.topology.nodes.iter().find(|n| pod["spec"]["nodeName"] == n.name.as_str()).cloned() else { continue };
                // As a kubelet whose network plugin is not ready: only hostNetwork pods start.
                if pod["spec"]["hostNetwork"] != true && crate::runtime::node_network(&self.paths, &node.name).is_none() {
                    self.waiting_for_network = true;
                    continue;
                }
                new_pods.push((pod, node));
            }
            let started: Vec<String> = new_pods.iter().filter_map(|(p, _)| p["metadata"]["uid"].as_str().map(str::to_string)).collect();
            let starting = Instant::now();
            // hostNetwork pods first: the network plugin's agent must run before the CNI ADD
            // of other pods can return (a kubelet runs them concurrently; the lab in order).
            let (host, others): (Vec<_>, Vec<_>) = new_pods.into_iter().partition(|(p, _)| p["spec"]["hostNetwork"] == true);
            self.runtime.start(&host);
            self.runtime.start(&others);
            let start_took = starting.elapsed();
            self.runtime.wait_ready(&started);
            let ready_took = starting.elapsed() - start_took;
            let writing = Instant::now();
            let statuses = self.write_statuses();
            tracing::debug!(
                writes = changes.writes,
                started = started.len(),
                statuses,
                controllers_ms = controllers_took.as_millis() as u64,
                start_ms = start_took.as_millis() as u64,
                ready_ms = ready_took.as_millis() as u64,
                statuses_ms = writing.elapsed().as_millis() as u64,
                "settle round"
            );
            if changes.is_empty() && started.is_empty() && statuses == 0 {
                break;
            }
        }
        let all_pods = controllers::list(&self.api, pods());
        let services = controllers::list(&self.api, resource("v1", "Service"));
        dns::write_records(&self.paths.dns_records(), &dns::records(&services, &all_pods))?;
        self.sync_services()
    }

    /// Writes the runtime's pod statuses that changed into the API (the kubelet's status
    /// updates). Returns how many were written.
    fn write_statuses(&mut self) -> usize {
        let mut written = 0;
        let (all, none) = (LabelSelector::default(), FieldSelector::default());
        let (stored, _) = self.api.list(pods(), None, &all, &none);
        for object in stored {
            let uid = object.index.uid.clone();
            let Some(status) = self.runtime.status(&uid) else { continue };
            if self.written.get(&uid) == Some(&status) {
                continue;
            }
            let (namespace, name) = (object.key.namespace.clone(), object.key.name.clone());
            match self.api.modify(pods(), &namespace, &name, |pod| {
                let changed = pod["status"] != status;
                pod["status"] = status.clone();
                changed
            }) {
                Ok(_) => {
                    self.written.insert(uid, status);
                    written += 1;
                }
                Err(error) if error.code == 404 => {}
                Err(error) => tracing::warn!(pod = %name, %error, "writing a pod's status"),
            }
        }
        written
    }

    /// The supervisor's tick: container exits and restarts, a node's network plugin
    /// becoming ready; settles if anything changed.
    pub fn tick(&mut self) -> bool {
        let retried = self.runtime.retry_failed_sandboxes();
        let network_ready = self.waiting_for_network && self.topology.nodes.iter().any(|n| crate::runtime::node_network(&self.paths, &n.name).is_some());
        if !self.runtime.poll() && !retried && !network_ready {
            return false;
        }
        if let Err(error) = self.settle() {
            tracing::warn!(%error, "settling after a container change failed");
        }
        true
    }

    /// What `palisade lab status` prints.
    pub fn status_lines(&self) -> Vec<String> {
        let mut lines = Vec::new();
        lines.push(format!("lab {:?}: {} node(s), up {}", self.paths.name, self.topology.nodes.len(), crate::time::human_age(self.started.elapsed())));
        lines.push(format!("kubeconfig: {}", self.paths.kubeconfig().display()));
        lines.push(String::new());
        lines.push(format!("{:<10}{:<16}{:<22}{:<38}{}", "NODE", "ADDRESS", "", "POD CIDRS", "PODS"));
        let pods = controllers::list(&self.api, pods());
        for node in &self.topology.nodes {
            let count = pods.iter().filter(|p| p["spec"]["nodeName"] == node.name.as_str()).count();
            lines.push(format!("{:<10}{:<16}{:<22}{:<38}{count}", node.name, node.ip4, node.ip6, format!("{},{}", node.pod_cidr4, node.pod_cidr6)));
        }
        lines.push(format!("{:<10}{:<16}{}", "outside", topology::OUTSIDE_V4, topology::OUTSIDE_V6));
        lines.push(format!("{:<10}{:<16}(the API server inside the lab, port {API_PORT})", "api", API_V4));
        lines.push(String::new());
        lines.push(format!("dataplane: Palisade's DaemonSet {}/{} on every node", node_agents::AGENT_NAMESPACE, node_agents::AGENT_DAEMONSET));
        lines.extend(node_agents::status_lines(&self.api, &self.topology.nodes).into_iter().map(|l| format!("  {l}")));
        lines
    }
}

/// The configuration of the lab's runtime, with ServiceAccount tokens issued by the API.
pub fn runtime_config(paths: &LabPaths, self_exe: std::path::PathBuf, api: Arc<Api>, ca_pem: String) -> RuntimeConfig {
    let maps = api.clone();
    let config_value = Arc::new(move |namespace: &str, name: &str, key: &str| {
        let object = maps.get(resource("v1", "ConfigMap"), namespace, name).ok()?.value();
        object["data"][key].as_str().map(str::to_string)
    });
    // One token per ServiceAccount (by uid: a recreated account gets a new one), shared by
    // its pods, as the legacy token Secrets were: a token per pod would add a stored
    // record per pod start and never expire them.
    let issued: std::sync::Mutex<HashMap<String, String>> = std::sync::Mutex::default();
    let account_files = Arc::new(move |namespace: &str, account: &str| {
        let accounts = resource("v1", "ServiceAccount");
        let uid = api.get(accounts, namespace, account).ok()?.index.uid.clone();
        let mut issued = issued.lock().unwrap_or_else(|e| e.into_inner());
        let token = match issued.get(&uid) {
            Some(token) => token.clone(),
            None => {
                // A year: the lab's kubelet does not rotate tokens.
                let token = palisade_apiserver::auth::issue_for_account(&api, namespace, account, 365 * 24 * 3600).ok()?;
                issued.insert(uid, token.clone());
                token
            }
        };
        Some(crate::runtime::AccountFiles { token, ca_pem: ca_pem.clone() })
    });
    RuntimeConfig { paths: paths.clone(), account_files, config_value, self_exe }
}
