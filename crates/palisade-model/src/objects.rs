//! The validated, typed view of a cluster that the policy engine and the dataplane work on.
//!
//! Every value here has passed validation: selectors are well formed, CIDRs are masked
//! networks, ports are in range. Converting from Kubernetes objects is in [`crate::convert`].

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;

use ipnet::IpNet;
use serde::Serialize;

use crate::selector::{Labels, Selector};

/// The label every namespace carries, set by the API server and immutable.
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// L4 protocols NetworkPolicy can name. Spelled upper-case, as the API requires.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum Protocol {
    #[serde(rename = "TCP")]
    Tcp,
    #[serde(rename = "UDP")]
    Udp,
    #[serde(rename = "SCTP")]
    Sctp,
}

impl Protocol {
    pub const ALL: [Protocol; 3] = [Protocol::Tcp, Protocol::Udp, Protocol::Sctp];

    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Sctp => "SCTP",
        }
    }

    /// The IP protocol number (what nft's `meta l4proto` matches).
    pub fn number(self) -> u8 {
        match self {
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
            Protocol::Sctp => 132,
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Protocol {
    type Err = String;

    /// Case-sensitive, like the API: `tcp` is not a protocol.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "TCP" => Ok(Protocol::Tcp),
            "UDP" => Ok(Protocol::Udp),
            "SCTP" => Ok(Protocol::Sctp),
            _ => Err(format!("unsupported protocol {s:?}: supported values: \"TCP\", \"UDP\", \"SCTP\"")),
        }
    }
}

/// Where an object was defined, for messages that point the user back to their files.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Origin {
    pub file: Option<Arc<Path>>,
    pub line: usize,
    pub column: usize,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.file {
            Some(file) => write!(f, "{}:{}:{}", file.display(), self.line, self.column),
            None => f.write_str("<generated>"),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Namespace {
    pub name: String,
    /// Always includes [`NAMESPACE_NAME_LABEL`].
    pub labels: Labels,
    /// False when the namespace was only referenced, never declared.
    pub declared: bool,
    pub origin: Origin,
}

/// What an endpoint was declared as. A workload's pod template is one endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum WorkloadKind {
    Pod,
    Deployment,
    ReplicaSet,
    StatefulSet,
    DaemonSet,
    Job,
    CronJob,
    ReplicationController,
}

impl WorkloadKind {
    pub const ALL: [WorkloadKind; 8] = [
        WorkloadKind::Pod,
        WorkloadKind::Deployment,
        WorkloadKind::ReplicaSet,
        WorkloadKind::StatefulSet,
        WorkloadKind::DaemonSet,
        WorkloadKind::Job,
        WorkloadKind::CronJob,
        WorkloadKind::ReplicationController,
    ];

    pub fn kind(self) -> &'static str {
        match self {
            WorkloadKind::Pod => "Pod",
            WorkloadKind::Deployment => "Deployment",
            WorkloadKind::ReplicaSet => "ReplicaSet",
            WorkloadKind::StatefulSet => "StatefulSet",
            WorkloadKind::DaemonSet => "DaemonSet",
            WorkloadKind::Job => "Job",
            WorkloadKind::CronJob => "CronJob",
            WorkloadKind::ReplicationController => "ReplicationController",
        }
    }

    /// The short name kubectl accepts (`deploy`, `sts`, ...).
    pub fn short_name(self) -> &'static str {
        match self {
            WorkloadKind::Pod => "pod",
            WorkloadKind::Deployment => "deploy",
            WorkloadKind::ReplicaSet => "rs",
            WorkloadKind::StatefulSet => "sts",
            WorkloadKind::DaemonSet => "ds",
            WorkloadKind::Job => "job",
            WorkloadKind::CronJob => "cronjob",
            WorkloadKind::ReplicationController => "rc",
        }
    }

    /// Accepts the short name, the lower-case kind and its plural, as kubectl does.
    pub fn parse(word: &str) -> Option<Self> {
        let word = word.to_ascii_lowercase();
        Self::ALL.into_iter().find(|k| {
            let kind = k.kind().to_ascii_lowercase();
            word == k.short_name() || word == kind || word == format!("{kind}s") || word == format!("{}s", k.short_name())
        })
    }
}

impl fmt::Display for WorkloadKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kind())
    }
}

/// A container port, as named ports resolve against them.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct ContainerPort {
    pub name: Option<String>,
    pub number: u16,
    pub protocol: Protocol,
}

/// A pod, or the pod template of a workload: something traffic flows from and to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    pub kind: WorkloadKind,
    pub namespace: String,
    pub name: String,
    pub labels: Labels,
    /// One address per family at most (`status.podIPs`), or assigned from the pod CIDRs.
    pub ips: Vec<IpAddr>,
    pub ports: Vec<ContainerPort>,
    /// hostNetwork pods share the node's address: selectors never select them (edge case 8).
    pub host_network: bool,
    /// `spec.nodeName` of a Pod: where it runs. Workload templates run nowhere in particular.
    pub node: Option<String>,
    pub origin: Origin,
}

impl Endpoint {
    /// `namespace/name`, how users refer to endpoints.
    pub fn display_name(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// The address of the endpoint in one family, if it has one.
    pub fn ip_of_family(&self, v6: bool) -> Option<IpAddr> {
        self.ips.iter().copied().find(|ip| ip.is_ipv6() == v6)
    }

    /// Resolves a named port on this endpoint for one protocol (edge case 1).
    pub fn named_port(&self, name: &str, protocol: Protocol) -> Option<u16> {
        self.ports.iter().find(|p| p.protocol == protocol && p.name.as_deref() == Some(name)).map(|p| p.number)
    }

    /// Whether policy selectors can select this endpoint at all.
    pub fn selectable(&self) -> bool {
        !self.host_network
    }
}

/// `targetPort` of a Service port.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum TargetPort {
    Number(u16),
    Name(String),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ServicePort {
    pub name: Option<String>,
    pub port: u16,
    pub protocol: Protocol,
    pub target: TargetPort,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Service {
    pub namespace: String,
    pub name: String,
    /// None for a Service without selector (its endpoints are managed by hand).
    pub selector: Option<Labels>,
    pub cluster_ips: Vec<IpAddr>,
    pub ports: Vec<ServicePort>,
    pub origin: Origin,
}

impl Service {
    pub fn display_name(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// Whether this Service sends traffic to the endpoint (same namespace, selector matches).
    pub fn selects(&self, endpoint: &Endpoint) -> bool {
        match &self.selector {
            Some(selector) if !selector.is_empty() => endpoint.namespace == self.namespace && selector.iter().all(|(k, v)| endpoint.labels.get(k) == Some(v)),
            _ => false,
        }
    }
}

/// The ports part of a NetworkPolicy port entry.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum PortSpec {
    /// No `port`: every port of the protocol.
    Any,
    Number(u16),
    /// `port` .. `endPort`, inclusive.
    Range(u16, u16),
    /// A named port, resolved on the destination pod.
    Named(String),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct PortMatch {
    pub protocol: Protocol,
    pub port: PortSpec,
}

impl fmt::Display for PortMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.port {
            PortSpec::Any => write!(f, "any {} port", self.protocol),
            PortSpec::Number(n) => write!(f, "{n}/{}", self.protocol),
            PortSpec::Range(a, b) => write!(f, "{a}-{b}/{}", self.protocol),
            PortSpec::Named(name) => write!(f, "{name:?}/{}", self.protocol),
        }
    }
}

/// An `ipBlock`: `cidr` minus each `except`. Both are masked networks.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct IpBlock {
    pub cidr: IpNet,
    pub except: Vec<IpNet>,
}

impl IpBlock {
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.cidr.contains(&ip) && !self.except.iter().any(|e| e.contains(&ip))
    }
}

impl fmt::Display for IpBlock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ipBlock {}", self.cidr)?;
        if !self.except.is_empty() {
            let except: Vec<String> = self.except.iter().map(|e| e.to_string()).collect();
            write!(f, " except {}", except.join(", "))?;
        }
        Ok(())
    }
}

/// Which namespaces a pod peer looks in.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum NamespaceScope {
    /// No `namespaceSelector`: the policy's own namespace only.
    PolicyNamespace,
    /// `namespaceSelector` given (`{}` selects every namespace).
    Selector(Selector),
}

/// One entry of `from` / `to`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Peer {
    /// `podSelector` and/or `namespaceSelector` in one entry: both must match (AND).
    Pods {
        namespaces: NamespaceScope,
        pods: Selector,
    },
    IpBlock(IpBlock),
}

/// One ingress or egress rule.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize)]
pub struct Rule {
    /// Empty: every source/destination, including outside the cluster.
    pub peers: Vec<Peer>,
    /// Empty: every port of every protocol.
    pub ports: Vec<PortMatch>,
}

/// Traffic direction, from the selected pod's point of view.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum Direction {
    Ingress,
    Egress,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Ingress => "ingress",
            Direction::Egress => "egress",
        }
    }

    /// The field holding the peers of a rule in this direction.
    pub fn peers_field(self) -> &'static str {
        match self {
            Direction::Ingress => "from",
            Direction::Egress => "to",
        }
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A NetworkPolicy in its validated form.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    pub namespace: String,
    pub name: String,
    pub subject: Selector,
    /// `Some` when the policy isolates its pods for ingress (after `policyTypes` inference);
    /// the rules are what it allows. `Some(vec![])` denies all ingress.
    pub ingress: Option<Vec<Rule>>,
    pub egress: Option<Vec<Rule>>,
    pub origin: Origin,
}

impl Policy {
    pub fn display_name(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    pub fn rules(&self, direction: Direction) -> Option<&[Rule]> {
        match direction {
            Direction::Ingress => self.ingress.as_deref(),
            Direction::Egress => self.egress.as_deref(),
        }
    }

    /// Whether this policy selects the endpoint (same namespace, selectable, labels match).
    pub fn selects(&self, endpoint: &Endpoint) -> bool {
        endpoint.selectable() && endpoint.namespace == self.namespace && self.subject.matches(&endpoint.labels)
    }
}

/// Everything the engine needs to judge traffic.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Cluster {
    pub namespaces: BTreeMap<String, Namespace>,
    pub endpoints: Vec<Endpoint>,
    pub services: Vec<Service>,
    pub policies: Vec<Policy>,
    /// ClusterNetworkPolicies, in evaluation order: tier, priority, then name (same-priority
    /// order is the implementation's choice; by name it is deterministic).
    pub cluster_policies: Vec<crate::cluster_policy::ClusterPolicy>,
    /// Nodes, for ClusterNetworkPolicy `nodes` peers.
    pub nodes: Vec<crate::cluster_policy::Node>,
}

impl Cluster {
    pub fn namespace_labels(&self, namespace: &str) -> Option<&Labels> {
        self.namespaces.get(namespace).map(|n| &n.labels)
    }

    /// Inserts or replaces (same namespace and name) a policy, as `kubectl apply` does.
    pub fn upsert_policy(&mut self, policy: Policy) {
        match self.policies.iter_mut().find(|p| p.namespace == policy.namespace && p.name == policy.name) {
            Some(existing) => *existing = policy,
            None => self.policies.push(policy),
        }
    }

    /// Inserts or replaces (same name) a ClusterNetworkPolicy, keeping evaluation order.
    pub fn upsert_cluster_policy(&mut self, policy: crate::cluster_policy::ClusterPolicy) {
        self.cluster_policies.retain(|p| p.name != policy.name);
        self.cluster_policies.push(policy);
        self.cluster_policies.sort_by(|a, b| (a.tier, a.priority, &a.name).cmp(&(b.tier, b.priority, &b.name)));
    }

    pub fn endpoint_index(&self, namespace: &str, name: &str) -> Option<usize> {
        self.endpoints.iter().position(|e| e.namespace == namespace && e.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocols_are_case_sensitive() {
        assert_eq!("SCTP".parse::<Protocol>(), Ok(Protocol::Sctp));
        assert!("tcp".parse::<Protocol>().unwrap_err().contains("supported values"));
    }

    #[test]
    fn workload_kinds_parse_like_kubectl() {
        assert_eq!(WorkloadKind::parse("deploy"), Some(WorkloadKind::Deployment));
        assert_eq!(WorkloadKind::parse("deployments"), Some(WorkloadKind::Deployment));
        assert_eq!(WorkloadKind::parse("sts"), Some(WorkloadKind::StatefulSet));
        assert_eq!(WorkloadKind::parse("CronJob"), Some(WorkloadKind::CronJob));
        assert_eq!(WorkloadKind::parse("svc"), None);
    }

    #[test]
    fn ip_block_excludes_except() {
        let block = IpBlock { cidr: "10.0.0.0/8".parse().unwrap(), except: vec!["10.1.0.0/16".parse().unwrap()] };
        assert!(block.contains("10.2.0.1".parse().unwrap()));
        assert!(!block.contains("10.1.2.3".parse().unwrap()));
        assert!(!block.contains("11.0.0.1".parse().unwrap()));
        assert!(!block.contains("::ffff:10.2.0.1".parse().unwrap()), "families never mix");
    }
}
