//! The API's objects as the policy engine sees them: Namespaces, the Pods that own
//! addresses, Services and NetworkPolicies, converted by `palisade-model` exactly as
//! manifests and API objects are.

use palisade_apiserver::api::Api;
use palisade_apiserver::selectors::{FieldSelector, LabelSelector};
use palisade_model::{Cluster, LoadOptions, load_text};
use serde_json::Value;

use crate::controllers::resource;
use crate::error::LabError;

/// Pods that hold an address: running (or starting) with `status.podIPs`. Pending pods
/// without an address and finished pods are not endpoints (edge case: finished pods give
/// their address back).
pub fn owns_address(pod: &Value) -> bool {
    let phase = pod["status"]["phase"].as_str().unwrap_or("Pending");
    matches!(phase, "Pending" | "Running") && pod["status"]["podIPs"].as_array().is_some_and(|ips| !ips.is_empty())
}

/// The cluster from the API's objects, as one `List` document of their JSON.
pub fn cluster(api: &Api) -> Result<Cluster, LabError> {
    let (all, none) = (LabelSelector::default(), FieldSelector::default());
    let mut items: Vec<String> = Vec::new();
    for (api_version, kind) in [("v1", "Namespace"), ("v1", "Pod"), ("v1", "Service"), ("networking.k8s.io/v1", "NetworkPolicy")] {
        for object in api.list(resource(api_version, kind), None, &all, &none).0 {
            if kind == "Pod" && !owns_address(&object.value()) {
                continue;
            }
            items.push(object.json.clone());
        }
    }
    let list = format!("{{\"apiVersion\":\"v1\",\"kind\":\"List\",\"items\":[{}]}}", items.join(","));
    let loaded = load_text(&list, &LoadOptions::default()).map_err(|e| LabError::failed(format!("the lab's objects do not convert (a bug): {e}")))?;
    Ok(loaded.cluster)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_pods_with_addresses_are_endpoints() {
        assert!(owns_address(&json!({"status": {"phase": "Running", "podIPs": [{"ip": "10.244.1.2"}]}})));
        assert!(!owns_address(&json!({"status": {"phase": "Pending"}})));
        assert!(!owns_address(&json!({"status": {"phase": "Succeeded", "podIPs": [{"ip": "10.244.1.3"}]}})));
    }
}
