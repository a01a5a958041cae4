//! The resources the server serves: group, version, kind, names kubectl resolves, scope,
//! verbs and subresources. Discovery, RBAC, routing and printing all read this one table.

/// The verbs of a resource that supports everything.
pub const ALL_VERBS: &[&str] = &["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"];

/// A subresource (`pods/exec`, `deployments/scale`, ...).
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Subresource {
    pub name: &'static str,
    /// The kind the subresource returns (`Scale`, `PodExecOptions`, ...).
    pub kind: &'static str,
    /// Its group and version, when not the resource's (`autoscaling/v1` for Scale).
    pub group_version: Option<(&'static str, &'static str)>,
    pub verbs: &'static [&'static str],
}

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Resource {
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    pub plural: &'static str,
    pub singular: &'static str,
    pub namespaced: bool,
    pub short_names: &'static [&'static str],
    /// `all` makes `kubectl get all` include it.
    pub categories: &'static [&'static str],
    pub verbs: &'static [&'static str],
    pub subresources: &'static [Subresource],
}

impl Resource {
    /// `apps/v1`, or `v1` for the core group.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() { self.version.to_string() } else { format!("{}/{}", self.group, self.version) }
    }

    /// `deployments.apps`, or `pods` for the core group: how errors name the resource.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() { self.plural.to_string() } else { format!("{}.{}", self.plural, self.group) }
    }

    /// The kind as error messages name it: `Deployment.apps`, `Pod`.
    pub fn qualified_kind(&self) -> String {
        if self.group.is_empty() { self.kind.to_string() } else { format!("{}.{}", self.kind, self.group) }
    }

    pub fn subresource(&self, name: &str) -> Option<&'static Subresource> {
        self.subresources.iter().find(|s| s.name == name)
    }

    /// The storage key of an object of this resource.
    pub fn key(&'static self, namespace: &str, name: &str) -> crate::store::Key {
        crate::store::Key { resource: self, namespace: if self.namespaced { namespace.to_string() } else { String::new() }, name: name.to_string() }
    }
}

const STATUS: Subresource = Subresource { name: "status", kind: "", group_version: None, verbs: &["get", "patch", "update"] };
const SCALE: Subresource = Subresource { name: "scale", kind: "Scale", group_version: Some(("autoscaling", "v1")), verbs: &["get", "patch", "update"] };

macro_rules! resource {
    ($group:expr, $version:expr, $kind:expr, $plural:expr, $singular:expr, $namespaced:expr, $short:expr, $categories:expr, $subresources:expr) => {
        Resource {
            group: $group,
            version: $version,
            kind: $kind,
            plural: $plural,
            singular: $singular,
            namespaced: $namespaced,
            short_names: $short,
            categories: $categories,
            verbs: ALL_VERBS,
            subresources: $subresources,
        }
    };
}

pub static RESOURCES: &[Resource] = &[
    resource!("", "v1", "Namespace", "namespaces", "namespace", false, &["ns"], &[], &[STATUS, Subresource { name: "finalize", kind: "Namespace", group_version: None, verbs: &["update"] },]),
    resource!("", "v1", "Node", "nodes", "node", false, &["no"], &[], &[STATUS]),
    resource!(
        "",
        "v1",
        "Pod",
        "pods",
        "pod",
        true,
        &["po"],
        &["all"],
        &[STATUS, Subresource { name: "exec", kind: "PodExecOptions", group_version: None, verbs: &["create", "get"] }, Subresource { name: "log", kind: "Pod", group_version: None, verbs: &["get"] },]
    ),
    resource!("", "v1", "Service", "services", "service", true, &["svc"], &["all"], &[STATUS]),
    resource!("", "v1", "Endpoints", "endpoints", "endpoints", true, &["ep"], &[], &[]),
    resource!("", "v1", "Event", "events", "event", true, &["ev"], &[], &[]),
    resource!(
        "",
        "v1",
        "ServiceAccount",
        "serviceaccounts",
        "serviceaccount",
        true,
        &["sa"],
        &[],
        &[Subresource { name: "token", kind: "TokenRequest", group_version: Some(("authentication.k8s.io", "v1")), verbs: &["create"] },]
    ),
    resource!("", "v1", "Secret", "secrets", "secret", true, &[], &[], &[]),
    resource!("", "v1", "ConfigMap", "configmaps", "configmap", true, &["cm"], &[], &[]),
    resource!("apps", "v1", "Deployment", "deployments", "deployment", true, &["deploy"], &["all"], &[STATUS, SCALE]),
    resource!("apps", "v1", "ReplicaSet", "replicasets", "replicaset", true, &["rs"], &["all"], &[STATUS, SCALE]),
    resource!("apps", "v1", "StatefulSet", "statefulsets", "statefulset", true, &["sts"], &["all"], &[STATUS, SCALE]),
    resource!("apps", "v1", "DaemonSet", "daemonsets", "daemonset", true, &["ds"], &["all"], &[STATUS]),
    resource!("batch", "v1", "Job", "jobs", "job", true, &[], &["all"], &[STATUS]),
    resource!("networking.k8s.io", "v1", "NetworkPolicy", "networkpolicies", "networkpolicy", true, &["netpol"], &[], &[]),
    resource!("events.k8s.io", "v1", "Event", "events", "event", true, &["ev"], &[], &[]),
    // SIG Network's CRD (kubernetes-sigs/network-policy-api), served as if installed.
    resource!("policy.networking.k8s.io", "v1beta1", "ClusterNetworkPolicy", "clusternetworkpolicies", "clusternetworkpolicy", false, &["cnp"], &[], &[STATUS]),
    resource!("coordination.k8s.io", "v1", "Lease", "leases", "lease", true, &[], &[], &[]),
    resource!("rbac.authorization.k8s.io", "v1", "Role", "roles", "role", true, &[], &[], &[]),
    resource!("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings", "rolebinding", true, &[], &[], &[]),
    resource!("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", "clusterrole", false, &[], &[], &[]),
    resource!("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding", "clusterrolebindings", "clusterrolebinding", false, &[], &[], &[]),
];

/// The resource served at `group`/`version` under `plural`.
pub fn by_plural(group: &str, version: &str, plural: &str) -> Option<&'static Resource> {
    RESOURCES.iter().find(|r| r.group == group && r.version == version && r.plural == plural)
}

/// The resource of an object's `apiVersion` and `kind`.
pub fn by_kind(api_version: &str, kind: &str) -> Option<&'static Resource> {
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    RESOURCES.iter().find(|r| r.group == group && r.version == version && r.kind == kind)
}

/// The group-versions served, in discovery order (the core group first).
pub fn group_versions() -> Vec<(&'static str, &'static str)> {
    let mut out: Vec<(&str, &str)> = Vec::new();
    for r in RESOURCES {
        if !out.contains(&(r.group, r.version)) {
            out.push((r.group, r.version));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups() {
        assert_eq!(by_plural("apps", "v1", "deployments").unwrap().kind, "Deployment");
        assert_eq!(by_kind("networking.k8s.io/v1", "NetworkPolicy").unwrap().plural, "networkpolicies");
        assert_eq!(by_kind("v1", "Pod").unwrap().qualified(), "pods");
        assert_eq!(by_kind("apps/v1", "Deployment").unwrap().qualified(), "deployments.apps");
        assert!(by_kind("v1", "Widget").is_none());
        assert_eq!(group_versions()[0], ("", "v1"));
        assert!(by_plural("", "v1", "pods").unwrap().subresource("exec").is_some());
    }
}
