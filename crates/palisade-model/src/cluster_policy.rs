//! ClusterNetworkPolicy (policy.networking.k8s.io v1beta1, and v1alpha2 of the same shape):
//! the cluster administrator's tiers around NetworkPolicy. Admin-tier policies decide
//! before NetworkPolicy, Baseline-tier ones after it, each by priority (lower first) and
//! rule order; the first matching rule Accepts, Denies or Passes to the next tier.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::Serialize;

use crate::objects::{Direction, Origin, Protocol};
use crate::selector::{Labels, Selector};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Tier {
    Admin,
    Baseline,
}

impl Tier {
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Admin => "Admin",
            Tier::Baseline => "Baseline",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum Action {
    Accept,
    Deny,
    Pass,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Accept => "Accept",
            Action::Deny => "Deny",
            Action::Pass => "Pass",
        }
    }
}

/// Pods in namespaces matching `namespaces` whose labels match `pods`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct NamespacedPods {
    pub namespaces: Selector,
    pub pods: Selector,
}

/// Whom a ClusterNetworkPolicy applies to (hostNetwork pods never).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Subject {
    Namespaces(Selector),
    Pods(NamespacedPods),
}

impl Subject {
    pub fn matches(&self, namespace_labels: &Labels, pod_labels: &Labels) -> bool {
        match self {
            Subject::Namespaces(selector) => selector.matches(namespace_labels),
            Subject::Pods(pods) => pods.namespaces.matches(namespace_labels) && pods.pods.matches(pod_labels),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ClusterPeer {
    Namespaces(Selector),
    Pods(NamespacedPods),
    /// Node addresses (`status.addresses`) of the nodes whose labels match.
    Nodes(Selector),
    /// CIDRs (masked); they match pod addresses too.
    Networks(Vec<IpNet>),
    /// Domain names: not matched against addresses (see ARCHITECTURE.md).
    DomainNames(Vec<String>),
    /// No field this version knows (a newer CRD): the rule fails closed.
    Unknown,
}

/// One entry of a rule's `protocols`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClusterProtocol {
    /// A protocol and an inclusive destination port range (`number` is a range of one).
    Ports { protocol: Protocol, first: u16, last: u16 },
    /// A container port name, resolved on the destination pod.
    NamedPort(String),
    /// No field this version knows: the rule fails closed.
    Unknown,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterRule {
    pub name: Option<String>,
    pub action: Action,
    pub peers: Vec<ClusterPeer>,
    /// `None`: every protocol and port.
    pub protocols: Option<Vec<ClusterProtocol>>,
}

impl ClusterRule {
    /// Whether a peer or protocol of this rule is of a kind this version does not know:
    /// an Accept rule then matches nothing, a Deny or Pass rule everything.
    pub fn fails_closed(&self) -> bool {
        self.peers.contains(&ClusterPeer::Unknown) || self.protocols.iter().flatten().any(|p| *p == ClusterProtocol::Unknown)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterPolicy {
    pub name: String,
    pub tier: Tier,
    pub priority: u16,
    pub subject: Subject,
    pub ingress: Vec<ClusterRule>,
    pub egress: Vec<ClusterRule>,
    pub origin: Origin,
}

impl ClusterPolicy {
    pub fn rules(&self, direction: Direction) -> &[ClusterRule] {
        match direction {
            Direction::Ingress => &self.ingress,
            Direction::Egress => &self.egress,
        }
    }
}

/// A node, for `nodes` peers: its labels and addresses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    pub name: String,
    pub labels: Labels,
    pub addresses: Vec<IpAddr>,
    pub origin: Origin,
}
