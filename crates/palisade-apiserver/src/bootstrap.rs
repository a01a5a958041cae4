//! What a new cluster starts with: the system namespaces and the default cluster roles
//! (`cluster-admin`, `admin`, `edit`, `view`), created when missing, so a restart on an
//! existing store changes nothing.

use serde_json::{Value, json};

use crate::api::{Api, WriteOptions};
use crate::error::ApiError;
use crate::resources;

fn ensure(api: &Api, api_version: &str, kind: &str, namespace: &str, object: Value) -> Result<(), ApiError> {
    let resource = resources::by_kind(api_version, kind).expect("served");
    let name = object["metadata"]["name"].as_str().unwrap_or_default().to_string();
    if api.store.get(&resource.key(namespace, &name)).is_some() {
        return Ok(());
    }
    match api.create(resource, namespace, object, &WriteOptions::default()) {
        Err(error) if error.code != 409 => Err(error),
        _ => Ok(()),
    }
}

fn cluster_role(name: &str, rules: Value) -> Value {
    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": name, "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"}}, "rules": rules})
}

pub fn bootstrap(api: &Api) -> Result<(), ApiError> {
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        ensure(api, "v1", "Namespace", "", json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}))?;
    }
    let read = json!(["get", "list", "watch"]);
    let write = json!(["create", "delete", "deletecollection", "patch", "update"]);
    let readable = json!([
        "pods",
        "pods/log",
        "pods/status",
        "services",
        "endpoints",
        "configmaps",
        "serviceaccounts",
        "events",
        "namespaces",
        "deployments",
        "deployments/scale",
        "replicasets",
        "replicasets/scale",
        "statefulsets",
        "statefulsets/scale",
        "daemonsets",
        "jobs",
        "networkpolicies",
        "leases"
    ]);
    let groups = json!(["", "apps", "batch", "networking.k8s.io", "events.k8s.io", "coordination.k8s.io"]);
    let roles = [
        ("cluster-admin", json!([{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}, {"nonResourceURLs": ["*"], "verbs": ["*"]}])),
        ("view", json!([{"apiGroups": groups, "resources": readable, "verbs": read}])),
        (
            "edit",
            json!([
                {"apiGroups": groups, "resources": readable, "verbs": read},
                {"apiGroups": groups, "resources": readable, "verbs": write},
                {"apiGroups": [""], "resources": ["secrets", "pods/exec"], "verbs": ["get", "list", "watch", "create", "delete", "patch", "update"]},
            ]),
        ),
        (
            "admin",
            json!([
                {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
            ]),
        ),
    ];
    for (name, rules) in roles {
        ensure(api, "rbac.authorization.k8s.io/v1", "ClusterRole", "", cluster_role(name, rules))?;
    }
    ensure(
        api,
        "rbac.authorization.k8s.io/v1",
        "ClusterRoleBinding",
        "",
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": "cluster-admin"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
               "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "system:masters"}]}),
    )?;
    Ok(())
}
