//! The ClusterNetworkPolicy CRD (policy.networking.k8s.io/v1beta1) as the agent reads it:
//! metadata for the watch, and the rest kept as JSON for `palisade-model`'s conversion,
//! which validates it with the CRD's rules (the same code `palisade check` uses). No typed
//! Rust struct of the CRD is needed, and a newer CRD's fields reach the conversion, which
//! makes rules naming unknown peers or protocols fail closed.

use std::borrow::Cow;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::core::ClusterResourceScope;
use serde::{Deserialize, Serialize};

pub const GROUP: &str = "policy.networking.k8s.io";
pub const VERSION: &str = "v1beta1";
pub const PLURAL: &str = "clusternetworkpolicies";

#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct ClusterNetworkPolicyObject {
    #[serde(rename = "apiVersion", default)]
    pub api_version: String,
    #[serde(default)]
    pub kind: String,
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: serde_json::Value,
}

impl ClusterNetworkPolicyObject {
    /// The object as the model's conversion reads it (as a manifest would be).
    pub fn to_value(&self) -> serde_json::Value {
        serde_json::json!({
            "apiVersion": format!("{GROUP}/{VERSION}"),
            "kind": "ClusterNetworkPolicy",
            "metadata": {"name": self.metadata.name},
            "spec": self.spec,
        })
    }
}

impl kube::Resource for ClusterNetworkPolicyObject {
    type DynamicType = ();
    type Scope = ClusterResourceScope;

    fn kind(_: &()) -> Cow<'_, str> {
        "ClusterNetworkPolicy".into()
    }
    fn group(_: &()) -> Cow<'_, str> {
        GROUP.into()
    }
    fn version(_: &()) -> Cow<'_, str> {
        VERSION.into()
    }
    fn plural(_: &()) -> Cow<'_, str> {
        PLURAL.into()
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

/// Whether the API serves the CRD (a cluster without it installed has nothing to enforce;
/// the agent then does not watch the kind, and needs a restart once it is installed).
pub async fn served(client: &kube::Client) -> bool {
    match client.list_api_group_resources(&format!("{GROUP}/{VERSION}")).await {
        Ok(list) => list.resources.iter().any(|r| r.name == PLURAL),
        Err(error) => {
            tracing::info!(%error, "ClusterNetworkPolicy ({GROUP}/{VERSION}) not served: not watching it");
            false
        }
    }
}
