//! Discovery: `/version`, `/api`, `/apis` (aggregated `apidiscovery.k8s.io/v2` when the
//! client asks for it, the legacy lists otherwise) and each group-version's resource list.

use serde_json::{Value, json};

use crate::resources::{RESOURCES, Resource, Subresource, group_versions};

/// The Content-Type of an aggregated discovery document: clients decide by it alone.
pub const AGGREGATED: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

/// Whether an Accept header asks for aggregated discovery.
pub fn wants_aggregated(accept: &str) -> bool {
    accept.split(',').any(|choice| {
        let parts: Vec<&str> = choice.split(';').map(str::trim).collect();
        parts.contains(&"g=apidiscovery.k8s.io") && parts.contains(&"v=v2") && parts.contains(&"as=APIGroupDiscoveryList")
    })
}

pub fn version() -> Value {
    json!({
        "major": "1",
        "minor": "33",
        "gitVersion": "v1.33.0+palisade",
        "gitCommit": env!("CARGO_PKG_VERSION"),
        "gitTreeState": "clean",
        "buildDate": "2026-12-01T00:00:00Z",
        "goVersion": "n/a (palisade-apiserver, Rust)",
        "compiler": "rustc",
        "platform": format!("linux/{}", if cfg!(target_arch = "x86_64") { "amd64" } else { std::env::consts::ARCH }),
    })
}

fn subresource_entry(sub: &Subresource, resource: &Resource) -> Value {
    let (group, version) = sub.group_version.unwrap_or((resource.group, resource.version));
    let kind = if sub.kind.is_empty() { resource.kind } else { sub.kind };
    json!({"subresource": sub.name, "responseKind": {"group": group, "version": version, "kind": kind}, "verbs": sub.verbs})
}

fn aggregated_resource(r: &Resource) -> Value {
    let mut entry = json!({
        "resource": r.plural,
        "singularResource": r.singular,
        "scope": if r.namespaced { "Namespaced" } else { "Cluster" },
        "responseKind": {"group": r.group, "version": r.version, "kind": r.kind},
        "verbs": r.verbs,
        "subresources": r.subresources.iter().map(|s| subresource_entry(s, r)).collect::<Vec<_>>(),
    });
    if !r.short_names.is_empty() {
        entry["shortNames"] = json!(r.short_names);
    }
    if !r.categories.is_empty() {
        entry["categories"] = json!(r.categories);
    }
    entry
}

/// The aggregated document of the core group (`/api`) or of the named groups (`/apis`).
pub fn aggregated(core: bool) -> Value {
    let mut groups: Vec<Value> = Vec::new();
    let mut names: Vec<&str> = Vec::new();
    for (group, _) in group_versions() {
        if (group.is_empty()) != core || names.contains(&group) {
            continue;
        }
        names.push(group);
        let versions: Vec<Value> = group_versions()
            .into_iter()
            .filter(|(g, _)| *g == group)
            .map(|(_, version)| {
                let resources: Vec<Value> = RESOURCES.iter().filter(|r| r.group == group && r.version == version).map(aggregated_resource).collect();
                json!({"version": version, "resources": resources, "freshness": "Current"})
            })
            .collect();
        groups.push(json!({"metadata": {"name": group}, "versions": versions}));
    }
    json!({"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2", "metadata": {}, "items": groups})
}

/// `/api` in the legacy form.
pub fn api_versions(server_address: &str) -> Value {
    json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}]})
}

/// `/apis` in the legacy form.
pub fn api_group_list() -> Value {
    let mut groups: Vec<Value> = Vec::new();
    let mut seen: Vec<&str> = Vec::new();
    for (group, _) in group_versions() {
        if group.is_empty() || seen.contains(&group) {
            continue;
        }
        seen.push(group);
        let versions: Vec<Value> = group_versions().into_iter().filter(|(g, _)| *g == group).map(|(g, v)| json!({"groupVersion": format!("{g}/{v}"), "version": v})).collect();
        groups.push(json!({"name": group, "versions": versions, "preferredVersion": versions[0]}));
    }
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `/api/v1` or `/apis/<group>/<version>`, if served.
pub fn resource_list(group: &str, version: &str) -> Option<Value> {
    let served: Vec<&Resource> = RESOURCES.iter().filter(|r| r.group == group && r.version == version).collect();
    if served.is_empty() {
        return None;
    }
    let mut entries = Vec::new();
    for r in served {
        let mut entry = json!({"name": r.plural, "singularName": r.singular, "namespaced": r.namespaced, "kind": r.kind, "verbs": r.verbs});
        if !r.short_names.is_empty() {
            entry["shortNames"] = json!(r.short_names);
        }
        if !r.categories.is_empty() {
            entry["categories"] = json!(r.categories);
        }
        entries.push(entry);
        for sub in r.subresources {
            let mut e =
                json!({"name": format!("{}/{}", r.plural, sub.name), "singularName": "", "namespaced": r.namespaced, "kind": if sub.kind.is_empty() { r.kind } else { sub.kind }, "verbs": sub.verbs});
            if let Some((g, v)) = sub.group_version {
                e["group"] = json!(g);
                e["version"] = json!(v);
            }
            entries.push(e);
        }
    }
    let group_version = if group.is_empty() { version.to_string() } else { format!("{group}/{version}") };
    Some(json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": entries}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aggregated_documents_list_every_resource_with_its_response_kind() {
        assert!(wants_aggregated("application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json"));
        assert!(!wants_aggregated("application/json"));
        let core = aggregated(true);
        assert_eq!(core["items"][0]["metadata"]["name"], "");
        let pods = core["items"][0]["versions"][0]["resources"].as_array().unwrap().iter().find(|r| r["resource"] == "pods").unwrap().clone();
        assert_eq!(pods["shortNames"], json!(["po"]));
        assert_eq!(pods["categories"], json!(["all"]));
        assert!(pods["subresources"].as_array().unwrap().iter().any(|s| s["subresource"] == "exec"));
        let apis = aggregated(false);
        assert!(apis["items"].as_array().unwrap().iter().any(|g| g["metadata"]["name"] == "networking.k8s.io"));
        assert!(resource_list("apps", "v1").unwrap()["resources"].as_array().unwrap().iter().any(|r| r["name"] == "deployments/scale"));
        assert!(resource_list("widgets.io", "v1").is_none());
    }
}
