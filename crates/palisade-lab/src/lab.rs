//! The lab's state and what each request does to it. Every change ends in `settle`: the
//! controllers, the runtime and the dataplane are brought to the store's state
//! (level-triggered, as on a cluster), and the request returns once that is done.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Instant;

use serde_json::{Value, json};

use crate::agents::{NodeAgent, reconcile_all};
use crate::controllers::{self, Changes, delete_cascading};
use crate::error::LabError;
use crate::images::DNS_IMAGE;
use crate::kinds::{self, KindInfo};
use crate::paths::LabPaths;
use crate::protocol::{Request, Response, Target};
use crate::proxy::{self, DNS_V4};
use crate::runtime::{Runtime, RuntimeConfig};
use crate::store::{Applied, Key, Store};
use crate::topology::{self, Topology};
use crate::{cluster_view, dns};

pub struct Lab {
    pub paths: LabPaths,
    pub topology: Topology,
    store: Store,
    runtime: Runtime,
    agents: Vec<NodeAgent>,
    started: Instant,
    /// The last dataplane sync: per node reports and how long the whole sync took.
    last_sync: Option<(Vec<String>, f64)>,
    /// The outside host's server (TCP 80, 443 and UDP 53), for ipBlock tests.
    outside_server: Option<std::process::Child>,
}

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

fn kind_info(kind: &str) -> &'static KindInfo {
    kinds::by_kind(kind).expect("kinds in the store are known")
}

/// The system objects a cluster starts with: namespaces, nodes, cluster DNS.
fn system_objects(topology: &Topology) -> Vec<Value> {
    let mut objects = Vec::new();
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        objects.push(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}));
    }
    for node in &topology.nodes {
        objects.push(json!({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": node.name, "labels": {"kubernetes.io/hostname": node.name, "kubernetes.io/os": "linux"}},
            "spec": {"podCIDR": node.pod_cidr4.to_string(), "podCIDRs": [node.pod_cidr4.to_string(), node.pod_cidr6.to_string()]},
        }));
    }
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
    objects
}

fn node_status(node: &crate::topology::NodeInfo) -> Value {
    json!({
        "addresses": [{"type": "InternalIP", "address": node.ip4.to_string()}, {"type": "InternalIP", "address": node.ip6.to_string()}, {"type": "Hostname", "address": node.name}],
        "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}],
        "nodeInfo": {"kubeletVersion": "palisade-lab", "operatingSystem": "linux", "architecture": std::env::consts::ARCH, "containerRuntimeVersion": "palisade-lab"},
    })
}

impl Lab {
    /// Creates the lab's machines and system objects.
    pub fn up(paths: LabPaths, nodes: u8, config: RuntimeConfig) -> Result<Self, LabError> {
        let topology = topology::create(&paths, nodes)?;
        let agents = topology.nodes.iter().map(NodeAgent::start).collect();
        let outside_server = Some(start_outside_server(&paths, &topology, &config.self_exe)?);
        let mut lab = Self { store: Store::new(&paths.name), runtime: Runtime::new(config), agents, started: Instant::now(), last_sync: None, outside_server, paths, topology };
        for mut object in system_objects(&lab.topology) {
            if object["kind"] == "Namespace" {
                object["metadata"]["labels"] = json!({"kubernetes.io/metadata.name": object["metadata"]["name"]});
            }
            if object["kind"] == "Service" {
                proxy::default_service(&lab.store, &mut object, None)?;
            }
            lab.store.apply(object);
        }
        for node in lab.topology.nodes.clone() {
            lab.store.update(&Key::new("Node", "", &node.name), |n| n["status"] = node_status(&node));
        }
        lab.settle()?;
        Ok(lab)
    }

    /// Stops everything and removes the lab's namespaces and state.
    pub fn down(mut self) -> Result<Vec<String>, LabError> {
        self.runtime.stop_all();
        if let Some(mut server) = self.outside_server.take() {
            let _ = server.kill();
            let _ = server.wait();
        }
        self.agents.clear();
        let removed = topology::remove(&self.paths)?;
        Ok(removed)
    }

    fn node_names(&self) -> Vec<String> {
        self.topology.nodes.iter().map(|n| n.name.clone()).collect()
    }

    /// Brings controllers, runtime, DNS and every node's dataplane to the store's state.
    /// Returns a one-line report of the dataplane sync.
    pub fn settle(&mut self) -> Result<String, LabError> {
        let nodes = self.node_names();
        for _ in 0..8 {
            let changes: Changes = controllers::reconcile(&mut self.store, &nodes);
            let wanted: BTreeSet<String> = self.store.list("Pod", None).iter().filter_map(|p| p["metadata"]["uid"].as_str().map(str::to_string)).collect();
            let gone: Vec<String> = self.runtime.uids().into_iter().filter(|uid| !wanted.contains(uid)).collect();
            self.runtime.stop(&gone);
            let mut new_pods = Vec::new();
            for pod in self.store.list("Pod", None).into_iter().cloned().collect::<Vec<_>>() {
                let uid = pod["metadata"]["uid"].as_str().unwrap_or_default();
                if self.runtime.has(uid) {
                    continue;
                }
                let Some(node) = self.topology.nodes.iter().find(|n| pod["spec"]["nodeName"] == n.name.as_str()).cloned() else { continue };
                new_pods.push((pod, node));
            }
            let started: Vec<String> = new_pods.iter().filter_map(|(p, _)| p["metadata"]["uid"].as_str().map(str::to_string)).collect();
            self.runtime.start(&new_pods);
            self.runtime.wait_ready(&started);
            self.refresh_statuses();
            if changes.is_empty() && started.is_empty() {
                break;
            }
        }
        dns::write_records(&self.paths.dns_records(), &dns::records(&self.store))?;
        let start = Instant::now();
        let cluster = Arc::new(cluster_view::cluster(&self.store)?);
        let services = proxy::services(&self.store);
        let proxies: Vec<String> = self.topology.nodes.iter().map(|n| proxy::render(&services, n.ip4, n.ip6)).collect();
        let reports = reconcile_all(&self.agents, &cluster, &proxies)?;
        let took = start.elapsed().as_secs_f64() * 1000.0;
        let policies = cluster.policies.len();
        self.last_sync = Some((reports, took));
        Ok(format!(
            "dataplane: {} node{} enforce{} {policies} NetworkPolic{} (synced in {took:.0} ms)",
            self.agents.len(),
            if self.agents.len() == 1 { "" } else { "s" },
            if self.agents.len() == 1 { "s" } else { "" },
            if policies == 1 { "y" } else { "ies" },
        ))
    }

    /// Copies the runtime's pod statuses into the store, then the workloads' statuses.
    fn refresh_statuses(&mut self) {
        for key in self.store.keys("Pod") {
            let uid = self.store.get(&key).and_then(|p| p["metadata"]["uid"].as_str()).unwrap_or_default().to_string();
            if let Some(status) = self.runtime.status(&uid) {
                self.store.update(&key, |p| p["status"] = status);
            }
        }
        controllers::update_statuses(&mut self.store);
    }

    /// The supervisor's tick: container exits and restarts; settles if anything changed.
    pub fn tick(&mut self) {
        if self.runtime.poll()
            && let Err(error) = self.settle()
        {
            tracing::warn!(%error, "settling after a container change failed");
        }
    }

    pub fn handle(&mut self, request: Request) -> Response {
        let result = match request {
            Request::Up { nodes } => self.status_lines(Some(nodes)),
            Request::Status => self.status_lines(None),
            Request::Down => unreachable!("the daemon handles down"),
            Request::Apply { objects } => self.apply(objects),
            Request::Delete { targets, ignore_not_found } => self.delete(&targets, ignore_not_found),
            Request::Get { kind, name, namespace } => self.get(&kind, name.as_deref(), namespace.as_deref()),
            Request::Label { target, set, remove, overwrite } => self.label(&target, &set, &remove, overwrite),
            Request::Exec { namespace, target, container } => self.exec(&namespace, &target, container.as_deref()),
        };
        result.unwrap_or_else(|e| Response::error(e.to_string()))
    }

    fn namespace_exists(&self, namespace: &str) -> bool {
        self.store.contains(&Key::new("Namespace", "", namespace))
    }

    fn apply(&mut self, objects: Vec<(Value, String)>) -> Result<Response, LabError> {
        // Everything is checked on a copy first: an error changes nothing.
        let mut trial = self.store.clone();
        let mut prepared = Vec::new();
        for (mut object, source) in objects {
            let key = Key::of(&object);
            let info = kinds::by_kind(&key.kind).filter(|_| kinds::creatable(&key.kind)).ok_or_else(|| {
                LabError::invalid(format!(
                    "resource mapping not found for name: {:?} namespace: {:?} from {source:?}: no matches for kind {:?} in version {:?} (the lab serves: {})",
                    key.name,
                    key.namespace,
                    key.kind,
                    object["apiVersion"].as_str().unwrap_or_default(),
                    kinds::KINDS.iter().filter(|k| k.kind != "Node").map(|k| k.kind).collect::<Vec<_>>().join(", ")
                ))
            })?;
            if info.namespaced && !trial.contains(&Key::new("Namespace", "", &key.namespace)) {
                return Err(LabError::not_found(format!("Error from server (NotFound): error when creating {source:?}: namespaces {:?} not found", key.namespace)));
            }
            if key.kind == "Pod"
                && let Some(node) = object["spec"]["nodeName"].as_str()
                && !self.topology.nodes.iter().any(|n| n.name == node)
            {
                return Err(LabError::invalid(format!("{source}: Pod {}/{}: spec.nodeName: node {node:?} does not exist (nodes: {})", key.namespace, key.name, self.node_names().join(", "))));
            }
            if key.kind == "Namespace" {
                // The API server sets this immutable label on every namespace.
                object["metadata"]["labels"]["kubernetes.io/metadata.name"] = Value::String(key.name.clone());
            }
            if key.kind == "Service" {
                let previous = trial.get(&key).cloned();
                proxy::default_service(&trial, &mut object, previous.as_ref()).map_err(|e| LabError::invalid(format!("{source}: Service {}/{}: {e}", key.namespace, key.name)))?;
            }
            let outcome = trial.apply(object);
            prepared.push((info, key, outcome));
        }
        cluster_view::cluster(&trial)?;
        self.store = trial;
        let mut lines: Vec<String> = prepared.iter().map(|(info, key, outcome)| format!("{} {}", info.display(&key.name), outcome.word())).collect();
        if prepared.iter().any(|(_, _, o)| *o != Applied::Unchanged) {
            lines.push(self.settle()?);
        }
        Ok(Response { lines, ..Default::default() })
    }

    fn delete(&mut self, targets: &[Target], ignore_not_found: bool) -> Result<Response, LabError> {
        let mut response = Response::default();
        let mut changes = Changes::default();
        // Objects that existed when the request came: one deleted earlier in the same request
        // (with its namespace, say) counts as deleted, not as missing.
        let existed: Vec<bool> = targets
            .iter()
            .map(|t| kinds::by_kind(&t.kind).is_some_and(|info| self.store.contains(&Key::new(&t.kind, if info.namespaced { &t.namespace } else { "" }, &t.name))))
            .collect();
        for (target, existed) in targets.iter().zip(existed) {
            let info = kinds::by_kind(&target.kind).ok_or_else(|| LabError::invalid(format!("unknown kind {}", target.kind)))?;
            let key = Key::new(&target.kind, if info.namespaced { &target.namespace } else { "" }, &target.name);
            if !kinds::creatable(&target.kind) {
                return Err(LabError::invalid(format!("{} belong to the lab: they go with `palisade lab down`", info.plural)));
            }
            if !self.store.contains(&key) {
                if existed {
                    response.lines.push(format!("{} {:?} deleted", info.resource(), target.name));
                    continue;
                }
                if !ignore_not_found {
                    response.warnings.push(format!("Error from server (NotFound): {} not found", info.quoted(&target.name)));
                    response.error = Some("some objects were not found".into());
                }
                continue;
            }
            if key.kind == "Namespace" {
                for kind in kinds::KINDS.iter().filter(|k| k.namespaced) {
                    for inner in self.store.keys(kind.kind).into_iter().filter(|k| k.namespace == key.name) {
                        delete_cascading(&mut self.store, &inner, &mut changes);
                    }
                }
            }
            delete_cascading(&mut self.store, &key, &mut changes);
            response.lines.push(format!("{} {:?} deleted", info.resource(), target.name));
        }
        if !response.lines.is_empty() {
            response.lines.push(self.settle()?);
        }
        Ok(response)
    }

    fn get(&self, kind: &str, name: Option<&str>, namespace: Option<&str>) -> Result<Response, LabError> {
        let info = kinds::by_kind(kind).ok_or_else(|| LabError::invalid(format!("unknown kind {kind}")))?;
        let namespace = if info.namespaced { namespace } else { None };
        if let Some(ns) = namespace
            && !self.namespace_exists(ns)
            && name.is_some()
        {
            return Err(LabError::not_found(format!("Error from server (NotFound): namespaces {ns:?} not found")));
        }
        let objects: Vec<Value> = match name {
            Some(name) => {
                let key = Key::new(kind, namespace.unwrap_or(""), name);
                vec![self.store.get(&key).cloned().ok_or_else(|| LabError::not_found(format!("Error from server (NotFound): {} not found", info.quoted(name))))?]
            }
            None => self.store.list(kind, namespace).into_iter().cloned().collect(),
        };
        Ok(Response { objects, ..Default::default() })
    }

    fn label(&mut self, target: &Target, set: &[(String, String)], remove: &[String], overwrite: bool) -> Result<Response, LabError> {
        let info = kind_info(&target.kind);
        let key = Key::new(&target.kind, if info.namespaced { &target.namespace } else { "" }, &target.name);
        let object = self.store.get(&key).ok_or_else(|| LabError::not_found(format!("Error from server (NotFound): {} not found", info.quoted(&target.name))))?;
        let labels = object["metadata"]["labels"].as_object().cloned().unwrap_or_default();
        for (k, v) in set {
            if let Some(existing) = labels.get(k).and_then(Value::as_str)
                && existing != v
                && !overwrite
            {
                return Err(LabError::invalid(format!("'{k}' already has a value ({existing}), and --overwrite is false")));
            }
        }
        if key.kind == "Namespace" && (set.iter().any(|(k, _)| k == "kubernetes.io/metadata.name") || remove.iter().any(|k| k == "kubernetes.io/metadata.name")) {
            return Err(LabError::invalid("the label kubernetes.io/metadata.name is immutable"));
        }
        for (k, v) in set {
            let mut problems = palisade_model::convert::names::qualified_name(k);
            problems.extend(palisade_model::convert::names::label_value(v));
            if !problems.is_empty() {
                return Err(LabError::invalid(format!("{} {:?} is invalid: metadata.labels: Invalid value: \"{k}={v}\": {}", info.resource(), target.name, problems.join("; "))));
            }
        }
        let mut updated = labels.clone();
        for (k, v) in set {
            updated.insert(k.clone(), json!(v));
        }
        for k in remove {
            updated.remove(k);
        }
        if updated == labels {
            return Ok(Response { lines: vec![format!("{} not labeled", info.display(&target.name))], ..Default::default() });
        }
        self.store.update(&key, |o| o["metadata"]["labels"] = Value::Object(updated));
        let report = self.settle()?;
        Ok(Response { lines: vec![format!("{} labeled", info.display(&target.name)), report], ..Default::default() })
    }

    /// The pod a `lab exec` target names: a pod, or the first running pod of a workload.
    fn exec(&self, namespace: &str, target: &str, container: Option<&str>) -> Result<Response, LabError> {
        if !self.namespace_exists(namespace) {
            return Err(LabError::not_found(format!("Error from server (NotFound): namespaces {namespace:?} not found")));
        }
        let (kind, name) = match target.split_once('/') {
            Some((resource, name)) => {
                let info = kinds::resolve(resource).ok_or_else(|| LabError::invalid(format!("the server doesn't have a resource type {resource:?}")))?;
                (info.kind, name)
            }
            None => ("Pod", target),
        };
        let info = kind_info(kind);
        let object = self.store.get(&Key::new(kind, namespace, name)).ok_or_else(|| LabError::not_found(format!("Error from server (NotFound): {} not found", info.quoted(name))))?;
        let pod = if kind == "Pod" {
            object.clone()
        } else {
            let mut owners = vec![object.clone()];
            let mut pods = Vec::new();
            while let Some(owner) = owners.pop() {
                for key in self.store.owned_by(owner["metadata"]["uid"].as_str().unwrap_or_default()) {
                    let owned = self.store.get(&key).cloned().expect("listed");
                    if key.kind == "Pod" { pods.push(owned) } else { owners.push(owned) }
                }
            }
            pods.sort_by_key(|p| (p["status"]["phase"] != "Running", p["metadata"]["name"].as_str().map(str::to_string)));
            pods.into_iter().next().ok_or_else(|| LabError::invalid(format!("{} has no pods", info.display(name))))?
        };
        let uid = pod["metadata"]["uid"].as_str().unwrap_or_default();
        let sandbox = self.runtime.sandbox(uid, container)?;
        Ok(Response { sandbox: Some(sandbox), ..Default::default() })
    }

    fn status_lines(&self, wanted_nodes: Option<u8>) -> Result<Response, LabError> {
        let mut response = Response::default();
        if let Some(wanted) = wanted_nodes
            && usize::from(wanted) != self.topology.nodes.len()
        {
            response.warnings.push(format!(
                "lab {:?} is already up with {} node(s); --nodes {wanted} takes effect after `palisade lab down`",
                self.paths.name,
                self.topology.nodes.len()
            ));
        }
        let lines = &mut response.lines;
        lines.push(format!("lab {:?}: {} node(s), up {}", self.paths.name, self.topology.nodes.len(), crate::time::human_age(self.started.elapsed())));
        lines.push(String::new());
        lines.push(format!("{:<10}{:<16}{:<22}{:<38}{}", "NODE", "ADDRESS", "", "POD CIDRS", "PODS"));
        let pods = self.store.list("Pod", None);
        for node in &self.topology.nodes {
            let count = pods.iter().filter(|p| p["spec"]["nodeName"] == node.name.as_str()).count();
            lines.push(format!("{:<10}{:<16}{:<22}{:<38}{count}", node.name, node.ip4, node.ip6, format!("{},{}", node.pod_cidr4, node.pod_cidr6)));
        }
        lines.push(format!("{:<10}{:<16}{}", "outside", topology::OUTSIDE_V4, topology::OUTSIDE_V6));
        lines.push(String::new());
        lines.push(format!("{:<16}{:<34}{:<10}{:<10}{}", "NAMESPACE", "POD", "STATUS", "NODE", "IPS"));
        for pod in &pods {
            let ips: Vec<&str> = pod["status"]["podIPs"].as_array().into_iter().flatten().filter_map(|i| i["ip"].as_str()).collect();
            lines.push(format!(
                "{:<16}{:<34}{:<10}{:<10}{}",
                pod["metadata"]["namespace"].as_str().unwrap_or_default(),
                pod["metadata"]["name"].as_str().unwrap_or_default(),
                pod["status"]["phase"].as_str().unwrap_or("Pending"),
                pod["spec"]["nodeName"].as_str().unwrap_or_default(),
                ips.join(",")
            ));
        }
        lines.push(String::new());
        lines.push(format!("{:<16}{:<34}{}", "NAMESPACE", "SERVICE", "CLUSTER-IPS"));
        for service in self.store.list("Service", None) {
            let ips: Vec<&str> = service["spec"]["clusterIPs"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
            lines.push(format!("{:<16}{:<34}{}", service["metadata"]["namespace"].as_str().unwrap_or_default(), service["metadata"]["name"].as_str().unwrap_or_default(), ips.join(",")));
        }
        lines.push(String::new());
        let policies = self.store.list("NetworkPolicy", None);
        lines.push(format!("{:<16}{}", "NAMESPACE", "NETWORKPOLICY"));
        for policy in &policies {
            lines.push(format!("{:<16}{}", policy["metadata"]["namespace"].as_str().unwrap_or_default(), policy["metadata"]["name"].as_str().unwrap_or_default()));
        }
        if let Some((reports, took)) = &self.last_sync {
            lines.push(String::new());
            lines.push(format!("last dataplane sync: {took:.0} ms"));
            lines.extend(reports.iter().map(|r| format!("  {r}")));
        }
        Ok(response)
    }
}
