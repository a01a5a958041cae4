//! The kinds the lab serves, with the names kubectl uses for them.

/// One kind: API version, the resource names kubectl accepts, how it prints.
#[derive(Debug, PartialEq, Eq)]
pub struct KindInfo {
    pub kind: &'static str,
    pub api_version: &'static str,
    pub plural: &'static str,
    pub singular: &'static str,
    /// The API group as kubectl prints it after the resource: `deployment.apps/x`.
    pub group: &'static str,
    pub namespaced: bool,
    pub short: &'static [&'static str],
}

pub const KINDS: &[KindInfo] = &[
    KindInfo { kind: "Namespace", api_version: "v1", plural: "namespaces", singular: "namespace", group: "", namespaced: false, short: &["ns"] },
    KindInfo { kind: "Node", api_version: "v1", plural: "nodes", singular: "node", group: "", namespaced: false, short: &["no"] },
    KindInfo { kind: "Pod", api_version: "v1", plural: "pods", singular: "pod", group: "", namespaced: true, short: &["po"] },
    KindInfo { kind: "Service", api_version: "v1", plural: "services", singular: "service", group: "", namespaced: true, short: &["svc"] },
    KindInfo { kind: "Deployment", api_version: "apps/v1", plural: "deployments", singular: "deployment", group: "apps", namespaced: true, short: &["deploy"] },
    KindInfo { kind: "ReplicaSet", api_version: "apps/v1", plural: "replicasets", singular: "replicaset", group: "apps", namespaced: true, short: &["rs"] },
    KindInfo { kind: "StatefulSet", api_version: "apps/v1", plural: "statefulsets", singular: "statefulset", group: "apps", namespaced: true, short: &["sts"] },
    KindInfo { kind: "DaemonSet", api_version: "apps/v1", plural: "daemonsets", singular: "daemonset", group: "apps", namespaced: true, short: &["ds"] },
    KindInfo { kind: "Job", api_version: "batch/v1", plural: "jobs", singular: "job", group: "batch", namespaced: true, short: &[] },
    KindInfo {
        kind: "NetworkPolicy",
        api_version: "networking.k8s.io/v1",
        plural: "networkpolicies",
        singular: "networkpolicy",
        group: "networking.k8s.io",
        namespaced: true,
        short: &["netpol"],
    },
];

/// Kinds users may create (nodes belong to the lab).
pub fn creatable(kind: &str) -> bool {
    kind != "Node" && by_kind(kind).is_some()
}

pub fn by_kind(kind: &str) -> Option<&'static KindInfo> {
    KINDS.iter().find(|k| k.kind == kind)
}

/// The kind a kubectl resource argument names: `pods`, `pod`, `po`, `deploy`,
/// `deployments.apps`, `Deployment`...
pub fn resolve(resource: &str) -> Option<&'static KindInfo> {
    let lower = resource.to_ascii_lowercase();
    let (name, group) = match lower.split_once('.') {
        Some((name, group)) => (name.to_string(), Some(group.to_string())),
        None => (lower, None),
    };
    KINDS.iter().find(|k| {
        let named = k.plural == name || k.singular == name || k.short.contains(&name.as_str()) || k.kind.eq_ignore_ascii_case(&name);
        named && group.as_deref().is_none_or(|g| g == k.group)
    })
}

impl KindInfo {
    /// `deployment.apps` / `service`: how kubectl names the resource in messages.
    pub fn resource(&self) -> String {
        if self.group.is_empty() { self.singular.to_string() } else { format!("{}.{}", self.singular, self.group) }
    }

    /// `deployment.apps/nginx`.
    pub fn display(&self, name: &str) -> String {
        format!("{}/{name}", self.resource())
    }

    /// `deployments.apps "nginx"`, as in kubectl's NotFound and deleted messages.
    pub fn quoted(&self, name: &str) -> String {
        let plural = if self.group.is_empty() { self.plural.to_string() } else { format!("{}.{}", self.plural, self.group) };
        format!("{plural} \"{name}\"")
    }
}

/// Every resource name `resolve` accepts, for error messages.
pub fn known_resources() -> String {
    KINDS.iter().map(|k| k.plural).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubectl_names_resolve() {
        for (arg, kind) in [("po", "Pod"), ("pods", "Pod"), ("deploy", "Deployment"), ("deployments.apps", "Deployment"), ("netpol", "NetworkPolicy"), ("svc", "Service"), ("ns", "Namespace"), ("Job", "Job")] {
            assert_eq!(resolve(arg).map(|k| k.kind), Some(kind), "{arg}");
        }
        assert_eq!(resolve("deployments.batch"), None);
        assert_eq!(resolve("widgets"), None);
        assert_eq!(by_kind("Deployment").unwrap().display("nginx"), "deployment.apps/nginx");
        assert_eq!(by_kind("NetworkPolicy").unwrap().display("x"), "networkpolicy.networking.k8s.io/x");
        assert_eq!(by_kind("Pod").unwrap().quoted("x"), "pods \"x\"");
    }
}
