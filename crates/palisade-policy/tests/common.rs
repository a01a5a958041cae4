//! Helpers shared by the engine's tests: clusters from YAML, flows by name.

#![allow(dead_code)]

use std::net::IpAddr;

use palisade_model::{Cluster, LoadOptions, Protocol, load_text};
use palisade_policy::{Flow, FlowEnd, Verdict, allowed, verdict};

/// A cluster from a multi-document YAML stream; panics on invalid input.
pub fn cluster(yaml: &str) -> Cluster {
    cluster_with(yaml, LoadOptions::default())
}

pub fn cluster_with(yaml: &str, options: LoadOptions) -> Cluster {
    match load_text(yaml, &options) {
        Ok(loaded) => loaded.cluster,
        Err(e) => panic!("test input is invalid: {e}"),
    }
}

/// `ns/name` of an endpoint, or an IP address (outside the cluster).
pub fn end(cluster: &Cluster, name: &str, v6: bool) -> FlowEnd {
    if let Ok(ip) = name.parse::<IpAddr>() {
        return FlowEnd::External(ip);
    }
    let (ns, pod) = name.split_once('/').expect("ns/name");
    let index = cluster.endpoint_index(ns, pod).unwrap_or_else(|| panic!("no endpoint {name}"));
    FlowEnd::endpoint(cluster, index, Some(v6))
}

pub fn flow(cluster: &Cluster, from: &str, to: &str, port: u16, protocol: Protocol) -> Flow {
    Flow { src: end(cluster, from, false), dst: end(cluster, to, false), port, protocol }
}

/// The explained verdict; also checks that the fast path agrees.
pub fn judge(cluster: &Cluster, from: &str, to: &str, port: u16, protocol: Protocol) -> Verdict {
    judge_flow(cluster, &flow(cluster, from, to, port, protocol))
}

pub fn judge_flow(cluster: &Cluster, flow: &Flow) -> Verdict {
    let explained = verdict(cluster, flow);
    assert_eq!(explained.allowed, allowed(cluster, flow), "explained and fast verdicts disagree on {flow:?}");
    explained
}

pub fn tcp(cluster: &Cluster, from: &str, to: &str, port: u16) -> bool {
    judge(cluster, from, to, port, Protocol::Tcp).allowed
}

/// A namespace manifest.
pub fn ns(name: &str, labels: &str) -> String {
    format!("apiVersion: v1\nkind: Namespace\nmetadata: {{name: {name}, labels: {{{labels}}}}}\n---\n")
}

/// A pod manifest with labels, container ports (`80/TCP/http`, `53/UDP`) and an IP.
pub fn pod(ns: &str, name: &str, labels: &str, ports: &[&str], ip: &str) -> String {
    let ports: Vec<String> = ports
        .iter()
        .map(|p| {
            let parts: Vec<&str> = p.split('/').collect();
            let name = parts.get(2).map(|n| format!(", name: {n}")).unwrap_or_default();
            format!("{{containerPort: {}, protocol: {}{name}}}", parts[0], parts.get(1).unwrap_or(&"TCP"))
        })
        .collect();
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: {ns}, labels: {{{labels}}}}}\nspec:\n  containers:\n  - name: c\n    ports: [{}]\nstatus: {{podIP: {ip}}}\n---\n",
        ports.join(", ")
    )
}

/// A NetworkPolicy manifest with the given spec (YAML, indented by the caller as a block).
pub fn policy(ns: &str, name: &str, spec: &str) -> String {
    let spec: String = spec.lines().map(|l| format!("  {l}\n")).collect();
    format!("apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n{spec}---\n")
}
