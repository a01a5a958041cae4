//! Node -> what ClusterNetworkPolicy `nodes` peers match: its labels and every address in
//! `status.addresses` that parses as an IP (InternalIP, ExternalIP; host names are not).

use k8s_openapi::api::core::v1::Node as K8sNode;

use crate::cluster_policy::Node;
use crate::objects::Origin;

pub fn node(node: &K8sNode, origin: Origin) -> Node {
    let addresses = node.status.iter().flat_map(|s| s.addresses.iter().flatten()).filter_map(|a| a.address.parse().ok()).collect();
    Node { name: node.metadata.name.clone().unwrap_or_default(), labels: node.metadata.labels.clone().unwrap_or_default(), addresses, origin }
}
