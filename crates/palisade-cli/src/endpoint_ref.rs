//! `--from` / `--to` arguments: `NS/NAME`, `NS/KIND/NAME` or an IP address.

use std::net::IpAddr;

use anyhow::{Result, anyhow, bail};
use palisade_model::{Cluster, WorkloadKind};

/// What an argument named.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    Endpoint(usize),
    Service(usize),
    External(IpAddr),
}

fn is_service_word(word: &str) -> bool {
    matches!(word.to_ascii_lowercase().as_str(), "svc" | "service" | "services")
}

/// Resolves an argument against the cluster.
pub fn resolve(cluster: &Cluster, text: &str) -> Result<Target> {
    if let Ok(ip) = text.parse::<IpAddr>() {
        // An address that belongs to a pod is that pod: policy judges it as one.
        if let Some(index) = cluster.endpoints.iter().position(|e| e.ips.contains(&ip) && !e.host_network) {
            return Ok(Target::Endpoint(index));
        }
        return Ok(Target::External(ip));
    }
    let parts: Vec<&str> = text.split('/').collect();
    match parts.as_slice() {
        [ns, name] => by_name(cluster, ns, name),
        [ns, kind, name] if is_service_word(kind) => cluster
            .services
            .iter()
            .position(|s| s.namespace == *ns && s.name == *name)
            .map(Target::Service)
            .ok_or_else(|| anyhow!("no Service {name:?} in namespace {ns:?}{}", known_names(cluster, ns))),
        [ns, kind, name] => {
            let kind = WorkloadKind::parse(kind).ok_or_else(|| anyhow!("{text:?}: unknown kind {kind:?}: use pod, deploy, sts, ds, rs, job, cronjob, rc or svc"))?;
            cluster
                .endpoints
                .iter()
                .position(|e| e.namespace == *ns && e.name == *name && e.kind == kind)
                .map(Target::Endpoint)
                .ok_or_else(|| anyhow!("no {kind} {name:?} in namespace {ns:?}{}", known_names(cluster, ns)))
        }
        _ => bail!("{text:?}: expected NAMESPACE/NAME, NAMESPACE/KIND/NAME or an IP address"),
    }
}

fn by_name(cluster: &Cluster, ns: &str, name: &str) -> Result<Target> {
    let matches: Vec<usize> = cluster.endpoints.iter().enumerate().filter(|(_, e)| e.namespace == ns && e.name == name).map(|(i, _)| i).collect();
    match matches.as_slice() {
        [one] => Ok(Target::Endpoint(*one)),
        [] => {
            if cluster.services.iter().any(|s| s.namespace == ns && s.name == name) {
                bail!("{ns}/{name} is a Service; name it {ns}/svc/{name}");
            }
            bail!("no pod or workload {name:?} in namespace {ns:?}{}", known_names(cluster, ns))
        }
        many => {
            let options: Vec<String> = many.iter().map(|&i| format!("{ns}/{}/{name}", cluster.endpoints[i].kind.short_name())).collect();
            bail!("{ns}/{name} is ambiguous: it names {}; use one of: {}", many.len(), options.join(", "))
        }
    }
}

/// A hint listing what the namespace does contain.
fn known_names(cluster: &Cluster, ns: &str) -> String {
    if !cluster.namespaces.contains_key(ns) {
        let known: Vec<&str> = cluster.namespaces.keys().map(String::as_str).collect();
        return format!(" (there is no namespace {ns:?}; namespaces: {})", known.join(", "));
    }
    let mut names: Vec<String> = cluster
        .endpoints
        .iter()
        .filter(|e| e.namespace == ns)
        .map(|e| format!("{}/{}", e.kind.short_name(), e.name))
        .chain(cluster.services.iter().filter(|s| s.namespace == ns).map(|s| format!("svc/{}", s.name)))
        .collect();
    names.sort();
    if names.is_empty() { format!(" (namespace {ns:?} is empty)") } else { format!(" (it has: {})", names.join(", ")) }
}
