//! Replays a case variant: builds upstream's pods and Services, applies each step to a
//! [`Cluster`], and compares every probe with a judge supplied by the caller.

use std::net::{IpAddr, Ipv4Addr};

use ipnet::IpNet;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use palisade_model::{Cluster, ContainerPort, Endpoint, Labels, NAMESPACE_NAME_LABEL, Namespace, Origin, Protocol, Service, ServicePort, TargetPort, WorkloadKind};
use serde_json::Value;

use crate::case::{Case, Step, Variant};
use crate::topology::{PodDef, Topology};

/// A probe whose observed result differs from the expectation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mismatch {
    pub step: usize,
    pub from: String,
    pub to: String,
    pub port: u16,
    pub protocol: Protocol,
    pub expected: bool,
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "step {}: {} -> {} {}/{}: expected {}, got {}",
            self.step,
            self.from,
            self.to,
            self.port,
            self.protocol,
            if self.expected { "allow" } else { "deny" },
            if self.expected { "deny" } else { "allow" }
        )
    }
}

/// Pod addresses used when the caller has no real ones: `10.244.<ns>.<pod>`.
pub fn default_pod_ips(pod: &str) -> Vec<IpAddr> {
    let (ns, name) = pod.split_once('/').expect("pods are named ns/name");
    let ns = ns.bytes().next().unwrap_or(b'x') - b'x' + 1;
    let name = name.bytes().next().unwrap_or(b'a') - b'a' + 10;
    vec![IpAddr::V4(Ipv4Addr::new(10, 244, ns, name))]
}

pub struct Scenario {
    pub cluster: Cluster,
}

impl Scenario {
    /// The upstream topology of a variant: namespaces x, y, z and the variant's pods.
    pub fn new(case: &Case, variant: &Variant, pod_ips: impl Fn(&str) -> Vec<IpAddr>) -> Self {
        Self::from_topology(&Topology::upstream(case, variant), pod_ips)
    }

    /// Any topology: its namespaces, its pods (at their fixed address, or `pod_ips`), and a
    /// Service `s-<ns>-<pod>` per pod with one port per container port, as upstream's.
    pub fn from_topology(topology: &Topology, pod_ips: impl Fn(&str) -> Vec<IpAddr>) -> Self {
        let mut cluster = Cluster::default();
        for (ns, labels) in &topology.namespaces {
            let mut labels: Labels = labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            labels.insert(NAMESPACE_NAME_LABEL.to_string(), ns.to_string());
            cluster.namespaces.insert(ns.to_string(), Namespace { name: ns.to_string(), labels, declared: true, origin: Origin::default() });
        }
        let mut scenario = Self { cluster };
        for pod in &topology.pods {
            scenario.add_pod(pod, pod.ip.map_or_else(|| pod_ips(&pod.key()), |ip| vec![ip]));
        }
        scenario
    }

    /// A pod (with its addresses) and its Service `s-<ns>-<pod>`, one port per container port.
    pub fn add_pod(&mut self, pod: &PodDef, ips: Vec<IpAddr>) {
        let ports: Vec<ContainerPort> = pod.ports.iter().map(|p| ContainerPort { name: p.name.clone(), number: p.port, protocol: p.protocol }).collect();
        self.cluster.endpoints.push(Endpoint {
            kind: WorkloadKind::Pod,
            namespace: pod.namespace.clone(),
            name: pod.name.clone(),
            labels: pod.labels.clone(),
            ips,
            ports: ports.clone(),
            host_network: false,
            node: None,
            origin: Origin::default(),
        });
        self.cluster.services.push(Service {
            namespace: pod.namespace.clone(),
            name: format!("s-{}-{}", pod.namespace, pod.name),
            selector: Some(pod.labels.clone()),
            cluster_ips: Vec::new(),
            ports: ports.iter().map(|p| ServicePort { name: p.name.clone(), port: p.number, protocol: p.protocol, target: TargetPort::Number(p.number) }).collect(),
            origin: Origin::default(),
        });
    }

    pub fn pod_index(&self, pod: &str) -> usize {
        let (ns, name) = pod.split_once('/').expect("pods are named ns/name");
        self.cluster.endpoint_index(ns, name).unwrap_or_else(|| panic!("no pod {pod}"))
    }

    /// Applies a non-probe step. Panics on a policy the model rejects: the cases are valid.
    pub fn apply(&mut self, step: &Step) {
        match step {
            Step::ApplyPolicy { namespace, policy } => {
                let mut policy = policy.clone();
                self.expand_templates(&mut policy);
                let np: NetworkPolicy = serde_json::from_value(policy).expect("case policy deserializes");
                let policy = palisade_model::convert::network_policy(&np, namespace, Origin::default()).unwrap_or_else(|e| panic!("case policy is invalid: {e:?}"));
                self.cluster.upsert_policy(policy);
            }
            Step::ApplyClusterPolicy { policy } => {
                let mut policy = policy.clone();
                self.expand_templates(&mut policy);
                complete_cluster_policy(&mut policy);
                let policy = palisade_model::convert::cluster_policy(&policy, Origin::default()).unwrap_or_else(|e| panic!("case cluster policy is invalid: {e:?}"));
                self.cluster.cluster_policies.retain(|p| p.name != policy.name);
                self.cluster.upsert_cluster_policy(policy);
            }
            Step::DeleteClusterPolicy { name } => self.cluster.cluster_policies.retain(|p| &p.name != name),
            Step::DeletePolicy { namespace, name } => self.cluster.policies.retain(|p| !(&p.namespace == namespace && &p.name == name)),
            Step::DeleteAllPolicies { namespaces } => self.cluster.policies.retain(|p| !namespaces.contains(&p.namespace)),
            Step::AddPodLabels { pod, labels } => {
                let index = self.pod_index(pod);
                self.cluster.endpoints[index].labels.extend(labels.clone());
            }
            Step::ReplacePodLabels { pod, labels } => {
                let index = self.pod_index(pod);
                self.cluster.endpoints[index].labels = labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            }
            Step::AddNamespaceLabels { namespace, labels } => {
                let ns = self.cluster.namespaces.get_mut(namespace).expect("case namespaces exist");
                ns.labels.extend(labels.clone());
            }
            Step::SetNamespaceLabels { namespace, labels } => {
                let ns = self.cluster.namespaces.get_mut(namespace).expect("case namespaces exist");
                ns.labels = labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
                ns.labels.insert(NAMESPACE_NAME_LABEL.to_string(), namespace.clone());
            }
            // The caller adds the pod with its real addresses (`add_pod`).
            Step::Probe { .. } | Step::CreatePod { .. } => {}
        }
    }

    /// Replays every step, asking `judge(cluster, from, to, port, protocol)` for each probe.
    /// Returns the probes whose answer differs from upstream's expectation.
    pub fn run(case: &Case, variant: &Variant, pod_ips: impl Fn(&str) -> Vec<IpAddr>, mut judge: impl FnMut(&Cluster, usize, usize, u16, Protocol) -> bool) -> Vec<Mismatch> {
        let mut scenario = Scenario::new(case, variant, pod_ips);
        let mut mismatches = Vec::new();
        for (i, step) in variant.steps.iter().enumerate() {
            scenario.apply(step);
            if let Step::Probe { port, protocol, expect, .. } = step {
                for e in expect {
                    let (from, to) = (scenario.pod_index(&e.from), scenario.pod_index(&e.to));
                    if judge(&scenario.cluster, from, to, *port, *protocol) != e.allowed {
                        mismatches.push(Mismatch { step: i, from: e.from.clone(), to: e.to.clone(), port: *port, protocol: *protocol, expected: e.allowed });
                    }
                }
            }
        }
        mismatches
    }

    /// Replaces `{{hostCIDR ns/pod}}`, `{{largeCIDR ns/pod}}`, `{{podIP ns/pod}}` and
    /// `{{subnetCIDR ns/pod 24 64}}` in string values with the pods' (first) addresses, and
    /// their `...v6` forms with the pods' IPv6 addresses.
    /// Also for judges that apply policies themselves (the lab): call after `new` with the
    /// pods' real addresses.
    pub fn expand_templates(&self, value: &mut Value) {
        match value {
            Value::String(text) => *text = self.expand(text),
            Value::Array(items) => items.iter_mut().for_each(|v| self.expand_templates(v)),
            Value::Object(map) => map.values_mut().for_each(|v| self.expand_templates(v)),
            _ => {}
        }
    }

    fn expand(&self, text: &str) -> String {
        let mut out = String::new();
        let mut rest = text;
        while let Some(start) = rest.find("{{") {
            let end = rest[start..].find("}}").map(|e| start + e).expect("template is closed");
            out.push_str(&rest[..start]);
            let words: Vec<&str> = rest[start + 2..end].split_whitespace().collect();
            // `...v6` names the pod's IPv6 address; the others its first.
            let (name, v6) = match words[0].strip_suffix("v6") {
                Some(name) => (name, true),
                None => (words[0], false),
            };
            let endpoint = &self.cluster.endpoints[self.pod_index(words[1])];
            let ip = if v6 { endpoint.ip_of_family(true).expect("the pod has an IPv6 address") } else { endpoint.ips[0] };
            let host = if ip.is_ipv4() { 32 } else { 128 };
            let masked = |v4: u8, v6: u8| IpNet::new(ip, if ip.is_ipv4() { v4 } else { v6 }).expect("prefix fits").trunc();
            out.push_str(&match name {
                "hostCIDR" => format!("{ip}/{host}"),
                "largeCIDR" => masked(4, 64).to_string(),
                "podIP" => ip.to_string(),
                "subnetCIDR" => masked(words[2].parse().expect("v4 prefix"), words[3].parse().expect("v6 prefix")).to_string(),
                other => panic!("unknown template {other}"),
            });
            rest = &rest[end + 2..];
        }
        out.push_str(rest);
        out
    }
}

/// A case's ClusterNetworkPolicy as the API takes it: `apiVersion` (v1beta1) and `kind`
/// filled in when the case leaves them out.
pub fn complete_cluster_policy(policy: &mut Value) {
    if policy["apiVersion"].is_null() {
        policy["apiVersion"] = Value::from("policy.networking.k8s.io/v1beta1");
    }
    if policy["kind"].is_null() {
        policy["kind"] = Value::from("ClusterNetworkPolicy");
    }
}
