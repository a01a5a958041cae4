//! Palisade installed in the lab as on a cluster: `deploy/palisade.yaml` applied to the
//! lab's API, its DaemonSet run by the lab's controllers and runtime on every node (a
//! hostNetwork pod whose init container installs the CNI plugin into the node's CNI
//! directories), each agent watching the lab's API with its ServiceAccount token under the
//! manifest's RBAC. The lab itself enforces nothing; it only asks each node's agent, on the
//! node's own loopback, which object versions its kernel enforces (`/synced`), and compares
//! them with what the API holds.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::time::{Duration, Instant};

use palisade_agent::observed::{Digest, digest_of};
use palisade_agent::shared::SyncedStatus;
use palisade_apiserver::api::Api;
use palisade_apiserver::selectors::{FieldSelector, LabelSelector};
use serde_json::Value;

use crate::controllers::resource;
use crate::error::LabError;
use crate::topology::NodeInfo;

/// The manifest a cluster operator applies, applied by `lab up` the same way.
pub const MANIFEST: &str = include_str!("../../../deploy/palisade.yaml");
/// The agent's health, metrics and `/synced` port (the manifest's `metrics` port).
pub const AGENT_PORT: u16 = 9099;
/// The DaemonSet's namespace and name in the manifest.
pub const AGENT_NAMESPACE: &str = "palisade-system";
pub const AGENT_DAEMONSET: &str = "palisade-agent";

/// The manifest's objects, in order.
pub fn manifest_objects() -> Result<Vec<Value>, LabError> {
    palisade_model::parse_yaml(MANIFEST).map_err(|e| LabError::failed(format!("deploy/palisade.yaml: {e}")))
}

/// The kinds an agent watches, with the names `/synced` uses.
const WATCHED: [(&str, &str, &str); 5] = [
    ("v1", "Namespace", "namespaces"),
    ("v1", "Pod", "pods"),
    ("networking.k8s.io/v1", "NetworkPolicy", "networkpolicies"),
    ("v1", "Node", "nodes"),
    ("policy.networking.k8s.io/v1beta1", "ClusterNetworkPolicy", "clusternetworkpolicies"),
];

/// The digest of the object versions the API holds now, of the kinds an agent watches.
pub fn api_digest(api: &Api) -> Digest {
    let (all, none) = (LabelSelector::default(), FieldSelector::default());
    let mut entries = Vec::new();
    for (api_version, kind, name) in WATCHED {
        for object in api.list(resource(api_version, kind), None, &all, &none).0 {
            entries.push((name, object.key.namespace.clone(), object.key.name.clone(), object.rv.to_string()));
        }
    }
    digest_of(entries.iter().map(|(kind, namespace, name, rv)| (*kind, namespace.as_str(), name.as_str(), rv.as_str())))
}

/// One HTTP GET on the node's loopback (the agent is a hostNetwork pod there).
fn get(node: &NodeInfo, path: &str) -> Result<(u16, String), String> {
    let path = path.to_string();
    palisade_net::run_in(&node.netns, move || -> Result<(u16, String), String> {
        let mut stream = TcpStream::connect_timeout(&(Ipv4Addr::LOCALHOST, AGENT_PORT).into(), Duration::from_millis(500)).map_err(|e| format!("no agent answers on port {AGENT_PORT}: {e}"))?;
        stream.set_read_timeout(Some(Duration::from_secs(2))).map_err(|e| e.to_string())?;
        write!(stream, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").map_err(|e| e.to_string())?;
        let mut response = String::new();
        stream.read_to_string(&mut response).map_err(|e| format!("reading the agent's answer: {e}"))?;
        let code = response.split(' ').nth(1).and_then(|c| c.parse().ok()).ok_or("the agent's answer is not HTTP")?;
        Ok((code, response.split_once("\r\n\r\n").map(|(_, body)| body.to_string()).unwrap_or_default()))
    })
    .map_err(|e| e.to_string())?
}

/// What the node's agent enforces.
pub fn synced(node: &NodeInfo) -> Result<SyncedStatus, String> {
    let (_, body) = get(node, "/synced")?;
    serde_json::from_str(&body).map_err(|e| format!("the agent's /synced answer: {e}"))
}

/// The node's agent readiness: `None` if ready, or why not.
pub fn not_ready(node: &NodeInfo) -> Option<String> {
    match get(node, "/readyz") {
        Ok((200, _)) => None,
        Ok((_, body)) => Some(body.trim().to_string()),
        Err(e) => Some(e),
    }
}

/// A gauge without labels from an OpenMetrics text.
fn metric(metrics: &str, name: &str) -> Option<f64> {
    metrics.lines().find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// Why the node does not yet enforce `want` (`None` once it does).
fn behind(node: &NodeInfo, want: Digest) -> Option<String> {
    match synced(node) {
        Err(e) => Some(e),
        Ok(status) if status.enforced == Some(want) && !status.pending => None,
        Ok(SyncedStatus { last_error: Some(error), .. }) => Some(format!("the kernel refused its ruleset: {error}")),
        Ok(SyncedStatus { enforced: None, .. }) => Some(not_ready(node).unwrap_or_else(|| "no sync yet".into())),
        Ok(status) => Some(format!("enforces {} objects of the API's {} (sync pending: {})", status.enforced.map_or(0, |d| d.objects), want.objects, status.pending)),
    }
}

/// `Ok` if every node's agent enforces what the API holds now; otherwise why each late
/// node is late.
pub fn check_synced(api: &Api, nodes: &[NodeInfo]) -> Result<(), String> {
    let want = api_digest(api);
    let late: Vec<String> = nodes.iter().filter_map(|node| behind(node, want).map(|why| format!("{}: {why}", node.name))).collect();
    if late.is_empty() { Ok(()) } else { Err(late.join("; ")) }
}

/// Waits until every node's agent enforces what the API holds (read again on each try, so
/// that changes made meanwhile count too).
pub fn wait_synced(api: &Api, nodes: &[NodeInfo], timeout: Duration) -> Result<(), LabError> {
    let deadline = Instant::now() + timeout;
    loop {
        match check_synced(api, nodes) {
            Ok(()) => return Ok(()),
            Err(late) if Instant::now() >= deadline => return Err(timed_out(timeout, &late)),
            Err(_) => std::thread::sleep(Duration::from_millis(5)),
        }
    }
}

pub fn timed_out(timeout: Duration, late: &str) -> LabError {
    LabError::failed(format!("the nodes' agents did not catch up with the API within {:.1} s: {late}", timeout.as_secs_f64()))
}

/// One line per node for `lab status`.
pub fn status_lines(api: &Api, nodes: &[NodeInfo]) -> Vec<String> {
    let want = api_digest(api);
    nodes
        .iter()
        .map(|node| {
            let state = match behind(node, want) {
                None => "enforces the API's current state".to_string(),
                Some(why) => why,
            };
            let metrics = get(node, "/metrics").map(|(_, body)| body).unwrap_or_default();
            let rules = metric(&metrics, "palisade_ruleset_rules").map(|r| format!(", {r} rules")).unwrap_or_default();
            let elements = metric(&metrics, "palisade_ruleset_set_elements").map(|e| format!(", {e} set elements")).unwrap_or_default();
            format!("{:<10}{state}{rules}{elements}", node.name)
        })
        .collect()
}
