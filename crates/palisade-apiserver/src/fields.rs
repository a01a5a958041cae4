//! What the store indexes of an object besides its JSON: labels, the fields a
//! `fieldSelector` may name (per resource, as the apiserver supports them), its owners, and
//! its lifecycle markers.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::resources::Resource;

/// The field selectors a resource supports (apiserver: `GetAttrs` of each registry).
pub fn selectable(resource: &Resource) -> &'static [&'static str] {
    match (resource.group, resource.plural) {
        ("", "pods") => &["metadata.name", "metadata.namespace", "spec.nodeName", "spec.serviceAccountName", "spec.hostNetwork", "status.phase", "status.podIP", "status.nominatedNodeName"],
        ("", "events") | ("events.k8s.io", "events") => &[
            "metadata.name",
            "metadata.namespace",
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
            "regarding.kind",
            "regarding.namespace",
            "regarding.name",
            "regarding.uid",
        ],
        ("", "nodes") => &["metadata.name", "spec.unschedulable"],
        ("", "secrets") => &["metadata.name", "metadata.namespace", "type"],
        ("", "namespaces") => &["metadata.name", "status.phase"],
        ("apps", "replicasets") => &["metadata.name", "metadata.namespace", "status.replicas"],
        ("batch", "jobs") => &["metadata.name", "metadata.namespace", "status.successful"],
        _ => &["metadata.name", "metadata.namespace"],
    }
}

/// The value of a selectable field: a string, as the apiserver compares them.
pub fn value(object: &Value, field: &str) -> Option<String> {
    let at = match field {
        "source" => object.pointer("/source/component"),
        "status.successful" => object.pointer("/status/succeeded"),
        other => object.pointer(&format!("/{}", other.replace('.', "/"))),
    };
    match at? {
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        other => Some(other.to_string()),
    }
}

/// What the store keeps of an object besides its JSON.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Index {
    pub uid: String,
    pub labels: BTreeMap<String, String>,
    /// Values of the resource's selectable fields (besides name and namespace).
    pub fields: Vec<(&'static str, String)>,
    /// `metadata.ownerReferences[].uid`.
    pub owners: Vec<String>,
    pub finalizers: Vec<String>,
    pub deleting: bool,
}

impl Index {
    pub fn of(resource: &Resource, object: &Value) -> Self {
        let meta = &object["metadata"];
        let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
        let strings = |v: &Value| -> Vec<String> { v.as_array().into_iter().flatten().filter_map(|x| x.as_str().map(str::to_string)).collect() };
        Self {
            uid: text(&meta["uid"]),
            labels: meta["labels"].as_object().into_iter().flatten().map(|(k, v)| (k.clone(), text(v))).collect(),
            fields: selectable(resource).iter().filter(|f| !f.starts_with("metadata.")).filter_map(|&f| value(object, f).map(|v| (f, v))).collect(),
            owners: meta["ownerReferences"].as_array().into_iter().flatten().map(|o| text(&o["uid"])).collect(),
            finalizers: strings(&meta["finalizers"]),
            deleting: !meta["deletionTimestamp"].is_null(),
        }
    }

    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields.iter().find(|(f, _)| *f == name).map(|(_, v)| v.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::by_kind;
    use serde_json::json;

    #[test]
    fn pods_index_their_node_and_phase() {
        let pod = json!({"metadata": {"name": "a", "uid": "u1", "labels": {"app": "web"}, "ownerReferences": [{"uid": "rs1"}]},
                         "spec": {"nodeName": "node-1", "hostNetwork": true}, "status": {"phase": "Running"}});
        let index = Index::of(by_kind("v1", "Pod").unwrap(), &pod);
        assert_eq!(index.field("spec.nodeName"), Some("node-1"));
        assert_eq!(index.field("status.phase"), Some("Running"));
        assert_eq!(index.field("spec.hostNetwork"), Some("true"));
        assert_eq!(index.owners, vec!["rs1".to_string()]);
        assert_eq!(index.labels["app"], "web");
    }
}
