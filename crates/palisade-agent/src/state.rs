//! The cluster as the agent knows it, kept up to date one watch event at a time: each
//! object is converted (and validated) by `palisade-model` when it arrives and only its
//! converted form is kept, so an event costs the conversion of one object and the agent
//! holds what the engine needs, not the API's objects.

use std::collections::{BTreeMap, HashSet};

use k8s_openapi::api::core::v1::{Namespace as K8sNamespace, Node, Pod};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use palisade_model::{Cluster, Endpoint, Origin, convert};

use crate::slots::Slots;

/// `namespace/name`.
type Key = (String, String);

fn key_of(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> Key {
    (meta.namespace.clone().unwrap_or_default(), meta.name.clone().unwrap_or_default())
}

/// What an object's conversion refused, in one sentence per field ("spec.ingress[0]...:
/// ..."), for the log line and the Event on the object.
fn describe(errors: &[palisade_model::field_path::FieldError]) -> String {
    errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
}

/// Objects by kind, converted. `version` moves on every change that can change a ruleset.
#[derive(Default)]
pub struct ClusterState {
    /// The cluster the engine judges: every namespace, addressed pod and policy, kept in
    /// place (no copy per sync). No address is invented (unlike manifests, an API's pod
    /// without one is not an endpoint yet).
    cluster: Cluster,
    /// Pods with addresses: the endpoints, by key.
    pods: Slots<Key>,
    /// Pods without an address yet (scheduled, sandbox not made): kept so that the CNI's
    /// announcement of their addresses can make them endpoints at once.
    unaddressed: BTreeMap<Key, Endpoint>,
    /// Addresses the CNI plugin announced for pods whose status may not show them yet.
    announced: BTreeMap<Key, Vec<std::net::IpAddr>>,
    policies: Slots<Key>,
    /// Each node's pod CIDRs and internal addresses (routes between nodes).
    nodes: BTreeMap<String, NodeInfo>,
    version: u64,
}

/// What the agent keeps of a Node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeInfo {
    pub pod_cidrs: Vec<ipnet::IpNet>,
    pub internal_ips: Vec<std::net::IpAddr>,
}

/// A policy the agent could not take, to be reported where users look.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refused {
    /// `NetworkPolicy` or `ClusterNetworkPolicy`.
    pub kind: &'static str,
    /// Empty for a ClusterNetworkPolicy (cluster-scoped).
    pub namespace: String,
    pub name: String,
    pub reason: String,
}

impl ClusterState {
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Objects held, by kind (the agent's metrics).
    pub fn counts(&self) -> [(&'static str, usize); 5] {
        [
            ("namespaces", self.cluster.namespaces.len()),
            ("pods", self.pods.len()),
            ("networkpolicies", self.policies.len()),
            ("nodes", self.nodes.len()),
            ("clusternetworkpolicies", self.cluster.cluster_policies.len()),
        ]
    }

    /// Takes a ClusterNetworkPolicy (kept in evaluation order), or says why not (it is
    /// then left out, as one not yet created).
    pub fn apply_cluster_policy(&mut self, object: &crate::cluster_policy_object::ClusterNetworkPolicyObject) -> Result<(), Refused> {
        let name = object.metadata.name.clone().unwrap_or_default();
        match convert::cluster_policy(&object.to_value(), Origin::default()) {
            Ok(policy) => {
                if self.cluster.cluster_policies.iter().find(|p| p.name == name) != Some(&policy) {
                    self.cluster.cluster_policies.retain(|p| p.name != name);
                    self.cluster.upsert_cluster_policy(policy);
                    self.changed();
                }
                Ok(())
            }
            Err(errors) => {
                self.delete_cluster_policy(&name);
                Err(Refused { kind: "ClusterNetworkPolicy", namespace: String::new(), name, reason: describe(&errors) })
            }
        }
    }

    pub fn delete_cluster_policy(&mut self, name: &str) {
        let before = self.cluster.cluster_policies.len();
        self.cluster.cluster_policies.retain(|p| p.name != name);
        if self.cluster.cluster_policies.len() != before {
            self.changed();
        }
    }

    pub fn retain_cluster_policies(&mut self, keep: &HashSet<String>) {
        let before = self.cluster.cluster_policies.len();
        self.cluster.cluster_policies.retain(|p| keep.contains(&p.name));
        if self.cluster.cluster_policies.len() != before {
            self.changed();
        }
    }

    pub fn nodes(&self) -> &BTreeMap<String, NodeInfo> {
        &self.nodes
    }

    /// The routes this node needs to the other nodes' pods (host-gw): each other node's pod
    /// CIDRs via its InternalIP of the same family. A CIDR whose node has no address of its
    /// family gets no route.
    pub fn node_routes(&self, this_node: &str) -> Vec<palisade_net::NodeRoute> {
        let mut routes = Vec::new();
        for (name, node) in self.nodes.iter().filter(|(name, _)| name.as_str() != this_node) {
            for cidr in &node.pod_cidrs {
                match node.internal_ips.iter().find(|ip| ip.is_ipv4() == cidr.addr().is_ipv4()) {
                    Some(gateway) => routes.push(palisade_net::NodeRoute { destination: cidr.trunc(), gateway: *gateway }),
                    None => tracing::debug!(node = %name, %cidr, "no InternalIP of the pod CIDR's family: no route"),
                }
            }
        }
        routes.sort();
        routes
    }

    fn changed(&mut self) {
        self.version += 1;
    }

    pub fn apply_namespace(&mut self, object: &K8sNamespace) {
        let name = object.metadata.name.clone().unwrap_or_default();
        match convert::namespace(object, Origin::default()) {
            Ok(namespace) => {
                if self.cluster.namespaces.get(&name) != Some(&namespace) {
                    self.cluster.namespaces.insert(name, namespace);
                    self.changed();
                }
            }
            // The API server validated it; a namespace it took that the model refuses is
            // logged and left out (its pods then match no namespaceSelector).
            Err(errors) => {
                tracing::warn!(namespace = %name, errors = %describe(&errors), "namespace not understood; left out");
                self.delete_namespace(&name);
            }
        }
    }

    pub fn delete_namespace(&mut self, name: &str) {
        if self.cluster.namespaces.remove(name).is_some() {
            self.changed();
        }
    }

    /// A pod is an endpoint once it has an address (from its status, or announced by the
    /// CNI plugin) and until it finishes (finished pods give their addresses back, which
    /// another pod may already hold).
    pub fn apply_pod(&mut self, object: &Pod) {
        let key = key_of(&object.metadata);
        let endpoint = match convert::pod(object, &key.0, Origin::default()) {
            Ok(endpoint) => endpoint,
            Err(errors) => {
                tracing::warn!(pod = %format!("{}/{}", key.0, key.1), errors = %describe(&errors), "pod not understood; left out");
                None
            }
        };
        let Some(mut endpoint) = endpoint else {
            self.announced.remove(&key);
            self.unaddressed.remove(&key);
            self.delete_pod(&key.0, &key.1);
            return;
        };
        if endpoint.ips.is_empty()
            && let Some(ips) = self.announced.get(&key)
        {
            endpoint.ips = ips.clone();
        }
        if endpoint.ips.is_empty() {
            self.unaddressed.insert(key.clone(), endpoint);
            self.delete_pod(&key.0, &key.1);
        } else {
            self.unaddressed.remove(&key);
            self.set_endpoint(key, endpoint);
        }
    }

    fn set_endpoint(&mut self, key: Key, endpoint: Endpoint) {
        if self.pods.put(&mut self.cluster.endpoints, key, endpoint) {
            self.changed();
        }
    }

    pub fn delete_pod(&mut self, namespace: &str, name: &str) {
        if self.pods.remove(&mut self.cluster.endpoints, &(namespace.to_string(), name.to_string())) {
            self.changed();
        }
    }

    /// Forgets a deleted pod entirely (its announcement too).
    pub fn forget_pod(&mut self, namespace: &str, name: &str) {
        let key = (namespace.to_string(), name.to_string());
        self.announced.remove(&key);
        self.unaddressed.remove(&key);
        self.delete_pod(namespace, name);
    }

    /// The CNI plugin gave the pod these addresses: the pod is an endpoint with them now,
    /// before its status says so.
    pub fn announce(&mut self, namespace: &str, name: &str, ips: Vec<std::net::IpAddr>) {
        let key = (namespace.to_string(), name.to_string());
        self.announced.insert(key.clone(), ips.clone());
        let known = self.pods.get(&self.cluster.endpoints, &key).or_else(|| self.unaddressed.get(&key)).cloned();
        if let Some(mut endpoint) = known {
            endpoint.ips = ips;
            self.unaddressed.remove(&key);
            self.set_endpoint(key, endpoint);
        }
    }

    /// The state version from which the pod is an endpoint with exactly `ips`; `None` while
    /// the agent does not know the pod (its watch has not delivered it yet).
    pub fn enforced_from(&self, namespace: &str, name: &str, ips: &[std::net::IpAddr]) -> Option<u64> {
        let endpoint = self.pods.get(&self.cluster.endpoints, &(namespace.to_string(), name.to_string()))?;
        let mut have = endpoint.ips.clone();
        let mut want = ips.to_vec();
        have.sort();
        want.sort();
        (have == want).then_some(self.version)
    }

    /// Takes a policy, or says why not (the policy is then left out: the pods it selects
    /// keep whatever the other policies give them, as with a policy not yet created).
    pub fn apply_policy(&mut self, object: &NetworkPolicy) -> Result<(), Refused> {
        let key = key_of(&object.metadata);
        match convert::network_policy(object, &key.0, Origin::default()) {
            Ok(policy) => {
                if self.policies.put(&mut self.cluster.policies, key, policy) {
                    self.changed();
                }
                Ok(())
            }
            Err(errors) => {
                self.delete_policy(&key.0, &key.1);
                Err(Refused { kind: "NetworkPolicy", namespace: key.0, name: key.1, reason: describe(&errors) })
            }
        }
    }

    pub fn delete_policy(&mut self, namespace: &str, name: &str) {
        if self.policies.remove(&mut self.cluster.policies, &(namespace.to_string(), name.to_string())) {
            self.changed();
        }
    }

    pub fn apply_node(&mut self, object: &Node) {
        let name = object.metadata.name.clone().unwrap_or_default();
        let pod_cidrs = crate::install::pod_cidrs(object);
        let addresses = object.status.as_ref().and_then(|s| s.addresses.clone()).unwrap_or_default();
        let internal_ips = addresses.iter().filter(|a| a.type_ == "InternalIP").filter_map(|a| a.address.parse().ok()).collect();
        let info = NodeInfo { pod_cidrs, internal_ips };
        if self.nodes.get(&name) != Some(&info) {
            self.nodes.insert(name.clone(), info);
            self.changed();
        }
        // Labels and addresses, for ClusterNetworkPolicy `nodes` peers.
        let node = convert::node(object, Origin::default());
        match self.cluster.nodes.iter_mut().find(|n| n.name == name) {
            Some(known) if *known == node => {}
            Some(known) => {
                *known = node;
                self.changed();
            }
            None => {
                self.cluster.nodes.push(node);
                self.changed();
            }
        }
    }

    pub fn delete_node(&mut self, name: &str) {
        let before = self.cluster.nodes.len();
        self.cluster.nodes.retain(|n| n.name != name);
        if self.nodes.remove(name).is_some() || self.cluster.nodes.len() != before {
            self.changed();
        }
    }

    /// Replaces every object of one kind (a watch's initial list or re-list): objects the
    /// new list lacks were deleted while the agent was not watching.
    pub fn retain_pods(&mut self, keep: &HashSet<Key>) {
        self.unaddressed.retain(|k, _| keep.contains(k));
        if self.pods.retain(&mut self.cluster.endpoints, keep) {
            self.changed();
        }
    }

    pub fn retain_policies(&mut self, keep: &HashSet<Key>) {
        if self.policies.retain(&mut self.cluster.policies, keep) {
            self.changed();
        }
    }

    pub fn retain_namespaces(&mut self, keep: &HashSet<String>) {
        if retain(&mut self.cluster.namespaces, keep) {
            self.changed();
        }
    }

    pub fn retain_nodes(&mut self, keep: &HashSet<String>) {
        self.cluster.nodes.retain(|n| keep.contains(&n.name));
        if retain(&mut self.nodes, keep) {
            self.changed();
        }
    }

    /// The cluster the engine judges (see the field).
    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }
}

/// Keeps the entries whose keys are in `keep`; whether any went.
fn retain<K: Ord + std::hash::Hash, V>(map: &mut BTreeMap<K, V>, keep: &HashSet<K>) -> bool {
    let before = map.len();
    map.retain(|k, _| keep.contains(k));
    map.len() != before
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(name: &str, labels: serde_json::Value, ip: Option<&str>, phase: &str) -> Pod {
        let mut status = json!({"phase": phase});
        if let Some(ip) = ip {
            status["podIP"] = json!(ip);
            status["podIPs"] = json!([{"ip": ip}]);
        }
        serde_json::from_value(json!({"metadata": {"name": name, "namespace": "prod", "labels": labels}, "spec": {"nodeName": "node-1", "containers": [{"name": "c"}]}, "status": status})).unwrap()
    }

    #[test]
    fn pods_are_endpoints_only_with_an_address_and_until_they_finish() {
        let mut state = ClusterState::default();
        state.apply_pod(&pod("a", json!({"app": "a"}), None, "Pending"));
        assert!(state.cluster().endpoints.is_empty());
        state.apply_pod(&pod("a", json!({"app": "a"}), Some("10.244.0.5"), "Running"));
        assert_eq!(state.cluster().endpoints.len(), 1);
        state.apply_pod(&pod("a", json!({"app": "a"}), Some("10.244.0.5"), "Succeeded"));
        assert!(state.cluster().endpoints.is_empty());
    }

    #[test]
    fn version_moves_only_on_changes_that_matter() {
        let mut state = ClusterState::default();
        state.apply_pod(&pod("a", json!({"app": "a"}), Some("10.244.0.5"), "Running"));
        let v = state.version();
        // The same pod again (a status update the engine does not see): no change.
        state.apply_pod(&pod("a", json!({"app": "a"}), Some("10.244.0.5"), "Running"));
        assert_eq!(state.version(), v);
        state.apply_pod(&pod("a", json!({"app": "b"}), Some("10.244.0.5"), "Running"));
        assert!(state.version() > v);
        let v = state.version();
        state.delete_pod("prod", "missing");
        assert_eq!(state.version(), v);
    }

    #[test]
    fn an_invalid_policy_is_refused_with_its_field_and_left_out() {
        let mut state = ClusterState::default();
        let good: NetworkPolicy = serde_json::from_value(json!({"metadata": {"name": "p", "namespace": "prod"}, "spec": {"podSelector": {}}})).unwrap();
        state.apply_policy(&good).unwrap();
        assert_eq!(state.cluster().policies.len(), 1);
        let bad: NetworkPolicy =
            serde_json::from_value(json!({"metadata": {"name": "p", "namespace": "prod"}, "spec": {"podSelector": {}, "ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0/8"}}]}]}})).unwrap();
        let refused = state.apply_policy(&bad).unwrap_err();
        assert!(refused.reason.contains("spec.ingress[0].from[0].ipBlock.cidr"), "{refused:?}");
        assert!(state.cluster().policies.is_empty());
    }

    #[test]
    fn an_announced_address_makes_a_pending_pod_an_endpoint_at_once() {
        let mut state = ClusterState::default();
        let ip: std::net::IpAddr = "10.244.0.9".parse().unwrap();
        state.apply_pod(&pod("new", json!({"app": "x"}), None, "Pending"));
        assert_eq!(state.enforced_from("prod", "new", &[ip]), None);
        state.announce("prod", "new", vec![ip]);
        let from = state.enforced_from("prod", "new", &[ip]).expect("an endpoint now");
        assert_eq!(state.cluster().endpoints[0].labels.get("app").map(String::as_str), Some("x"));
        // A status update still without addresses keeps the announced ones.
        state.apply_pod(&pod("new", json!({"app": "x"}), None, "Pending"));
        assert_eq!(state.enforced_from("prod", "new", &[ip]), Some(from));
        // Announced before the watch delivers the pod: it becomes an endpoint on arrival.
        state.announce("prod", "later", vec!["10.244.0.10".parse().unwrap()]);
        assert!(state.enforced_from("prod", "later", &["10.244.0.10".parse().unwrap()]).is_none());
        state.apply_pod(&pod("later", json!({}), None, "Pending"));
        assert!(state.enforced_from("prod", "later", &["10.244.0.10".parse().unwrap()]).is_some());
        state.forget_pod("prod", "later");
        assert_eq!(state.cluster().endpoints.len(), 1);
    }

    #[test]
    fn a_relist_drops_what_was_deleted_meanwhile() {
        let mut state = ClusterState::default();
        state.apply_pod(&pod("a", json!({}), Some("10.244.0.5"), "Running"));
        state.apply_pod(&pod("b", json!({}), Some("10.244.0.6"), "Running"));
        state.retain_pods(&[("prod".to_string(), "b".to_string())].into());
        let names: Vec<String> = state.cluster().endpoints.iter().map(|e| e.name.clone()).collect();
        assert_eq!(names, ["b"]);
    }

    #[test]
    fn nodes_keep_pod_cidrs_and_internal_addresses() {
        let mut state = ClusterState::default();
        let node: Node = serde_json::from_value(json!({"metadata": {"name": "n2"}, "spec": {"podCIDR": "10.244.4.0/22", "podCIDRs": ["10.244.4.0/22", "fd00:10:244:4::/64"]},
            "status": {"addresses": [{"type": "InternalIP", "address": "172.30.0.3"}, {"type": "Hostname", "address": "n2"}]}}))
        .unwrap();
        state.apply_node(&node);
        let info = &state.nodes()["n2"];
        assert_eq!(info.pod_cidrs.len(), 2);
        assert_eq!(info.internal_ips, ["172.30.0.3".parse::<std::net::IpAddr>().unwrap()]);
        // Routes: to n2's IPv4 CIDR only (it has no IPv6 address); none to this node itself.
        let routes: Vec<String> = state.node_routes("n1").iter().map(ToString::to_string).collect();
        assert_eq!(routes, ["10.244.4.0/22 via 172.30.0.3"]);
        assert!(state.node_routes("n2").is_empty());
    }
}
