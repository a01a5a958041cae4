//! The store as the policy engine sees it: Namespaces, the Pods that own addresses,
//! Services and NetworkPolicies, converted by `palisade-model` exactly as manifests and API
//! objects are.

use palisade_model::{Cluster, LoadOptions, load_text};
use serde_json::{Value, json};

use crate::error::LabError;
use crate::store::Store;

/// Pods that hold an address: running (or starting) with `status.podIPs`. Pending pods
/// without an address and finished pods are not endpoints (edge case: finished pods give
/// their address back).
fn owns_address(pod: &Value) -> bool {
    let phase = pod["status"]["phase"].as_str().unwrap_or("Pending");
    matches!(phase, "Pending" | "Running") && pod["status"]["podIPs"].as_array().is_some_and(|ips| !ips.is_empty())
}

pub fn cluster(store: &Store) -> Result<Cluster, LabError> {
    let mut items: Vec<Value> = Vec::new();
    items.extend(store.list("Namespace", None).into_iter().cloned());
    items.extend(store.list("Pod", None).into_iter().filter(|p| owns_address(p)).cloned());
    items.extend(store.list("Service", None).into_iter().cloned());
    items.extend(store.list("NetworkPolicy", None).into_iter().cloned());
    let list = json!({"apiVersion": "v1", "kind": "List", "items": items});
    let loaded = load_text(&list.to_string(), &LoadOptions::default()).map_err(|e| LabError::failed(format!("the lab's objects do not convert (a bug): {e}")))?;
    Ok(loaded.cluster)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Key;

    #[test]
    fn only_pods_with_addresses_are_endpoints() {
        let mut store = Store::new("t");
        store.apply(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "prod"}}));
        for name in ["running", "pending", "done"] {
            store.apply(json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "prod", "labels": {"app": "x"}},
                               "spec": {"nodeName": "node-1", "containers": [{"name": "c", "image": "nginx"}]}}));
        }
        store.update(&Key::new("Pod", "prod", "running"), |p| p["status"] = json!({"phase": "Running", "podIP": "10.244.1.2", "podIPs": [{"ip": "10.244.1.2"}, {"ip": "fd00:10:244:1::2"}]}));
        store.update(&Key::new("Pod", "prod", "pending"), |p| p["status"] = json!({"phase": "Pending"}));
        store.update(&Key::new("Pod", "prod", "done"), |p| p["status"] = json!({"phase": "Succeeded", "podIPs": [{"ip": "10.244.1.3"}]}));
        store.apply(json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "deny", "namespace": "prod"}, "spec": {"podSelector": {}}}));
        let cluster = cluster(&store).unwrap();
        assert_eq!(cluster.endpoints.len(), 1);
        assert_eq!(cluster.endpoints[0].name, "running");
        assert_eq!(cluster.endpoints[0].ips.len(), 2);
        assert_eq!(cluster.endpoints[0].node.as_deref(), Some("node-1"));
        assert_eq!(cluster.policies.len(), 1);
    }
}
