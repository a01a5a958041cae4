//! ClusterNetworkPolicy tiers. Per direction, the Admin tier decides first (policies by
//! priority, then name; rules in order; the first matching rule Accepts, Denies, or Passes
//! to NetworkPolicy), NetworkPolicy next (if any selects the pod in that direction, it
//! decides), the Baseline tier after it, then the default: allowed.

use palisade_model::cluster_policy::{Action, ClusterPeer, ClusterPolicy, ClusterProtocol, ClusterRule, Tier};
use palisade_model::{Cluster, Direction, Endpoint, Protocol};
use serde::Serialize;

use crate::matching::Remote;

/// A ClusterNetworkPolicy rule, as explanations name it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ClusterRuleRef {
    pub policy: String,
    pub tier: Tier,
    pub priority: u16,
    pub direction: Direction,
    pub rule: usize,
    pub name: Option<String>,
    pub action: Action,
    /// The rule names a peer or protocol of a kind this version does not know, and was
    /// judged failing closed.
    pub fail_closed: bool,
}

impl std::fmt::Display for ClusterRuleRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let direction = match self.direction {
            Direction::Ingress => "ingress",
            Direction::Egress => "egress",
        };
        write!(f, "ClusterNetworkPolicy {} ({} tier, priority {}) {direction}[{}]", self.policy, self.tier.as_str(), self.priority, self.rule)?;
        if let Some(name) = &self.name {
            write!(f, " {name:?}")?;
        }
        Ok(())
    }
}

/// What one tier did for one side of a flow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TierOutcome {
    /// An Accept or Deny rule decided.
    Decided(ClusterRuleRef),
    /// A Pass rule handed the decision to the next tier.
    Passed(ClusterRuleRef),
    /// No rule of the tier matched.
    NoMatch,
}

/// Whether the policy applies to `subject` (hostNetwork pods never).
pub fn selects(cluster: &Cluster, policy: &ClusterPolicy, subject: &Endpoint) -> bool {
    subject.selectable() && policy.subject.matches(crate::flow::namespace_labels(cluster, &subject.namespace), &subject.labels)
}

/// For each ClusterNetworkPolicy of the cluster, in order, whether it applies to `subject`
/// (as [`selects`], with the namespace's labels looked up once for all of them).
pub fn selection(cluster: &Cluster, subject: &Endpoint) -> Vec<bool> {
    if !subject.selectable() {
        return vec![false; cluster.cluster_policies.len()];
    }
    let labels = crate::flow::namespace_labels(cluster, &subject.namespace);
    cluster.cluster_policies.iter().map(|p| p.subject.matches(labels, &subject.labels)).collect()
}

pub fn peer_matches(cluster: &Cluster, peer: &ClusterPeer, remote: &Remote<'_>) -> bool {
    match peer {
        ClusterPeer::Namespaces(selector) => matches!(remote, Remote::Pod { endpoint, namespace_labels, .. } if endpoint.selectable() && selector.matches(namespace_labels)),
        ClusterPeer::Pods(pods) => {
            matches!(remote, Remote::Pod { endpoint, namespace_labels, .. } if endpoint.selectable() && pods.namespaces.matches(namespace_labels) && pods.pods.matches(&endpoint.labels))
        }
        ClusterPeer::Nodes(selector) => remote.ip().is_some_and(|ip| cluster.nodes.iter().any(|n| selector.matches(&n.labels) && n.addresses.contains(&ip))),
        ClusterPeer::Networks(nets) => remote.ip().is_some_and(|ip| nets.iter().any(|n| n.contains(&ip))),
        // Names are not addresses: no IP flow is known to go to a domain name.
        ClusterPeer::DomainNames(_) => false,
        ClusterPeer::Unknown => false,
    }
}

pub fn protocol_matches(entry: &ClusterProtocol, port: u16, protocol: Protocol, destination: Option<&Endpoint>) -> bool {
    match entry {
        ClusterProtocol::Ports { protocol: p, first, last } => *p == protocol && (*first..=*last).contains(&port),
        ClusterProtocol::NamedPort(name) => destination.and_then(|d| d.named_port(name, protocol)) == Some(port),
        ClusterProtocol::Unknown => false,
    }
}

/// Whether a rule matches. A rule naming an unknown peer or protocol fails closed: an
/// Accept rule matches nothing, a Deny or Pass rule everything.
fn rule_matches(cluster: &Cluster, rule: &ClusterRule, remote: &Remote<'_>, port: u16, protocol: Protocol, destination: Option<&Endpoint>) -> bool {
    if rule.fails_closed() {
        return rule.action != Action::Accept;
    }
    rule.peers.iter().any(|p| peer_matches(cluster, p, remote)) && rule.protocols.as_ref().is_none_or(|list| list.iter().any(|e| protocol_matches(e, port, protocol, destination)))
}

/// One side of a flow: the subject pod (the source for egress, the destination for
/// ingress), the other end, and the destination port (named ports resolve on
/// `destination`).
pub struct Side<'a> {
    pub direction: Direction,
    pub subject: &'a Endpoint,
    pub remote: Remote<'a>,
    pub port: u16,
    pub protocol: Protocol,
    pub destination: Option<&'a Endpoint>,
}

/// Runs one tier for one side of a flow.
pub fn evaluate(cluster: &Cluster, tier: Tier, side: &Side<'_>) -> TierOutcome {
    let Side { direction, subject, remote, port, protocol, destination } = *side;
    let remote = &remote;
    // `Cluster::cluster_policies` is kept in evaluation order (tier, priority, name).
    for policy in cluster.cluster_policies.iter().filter(|p| p.tier == tier && selects(cluster, p, subject)) {
        for (i, rule) in policy.rules(direction).iter().enumerate() {
            if !rule_matches(cluster, rule, remote, port, protocol, destination) {
                continue;
            }
            // Failing closed, a Deny or Pass rule is a "Deny all" rule (the CRD's words).
            let action = if rule.fails_closed() { Action::Deny } else { rule.action };
            let reference = ClusterRuleRef { policy: policy.name.clone(), tier, priority: policy.priority, direction, rule: i, name: rule.name.clone(), action, fail_closed: rule.fails_closed() };
            return match action {
                Action::Pass => TierOutcome::Passed(reference),
                Action::Accept | Action::Deny => TierOutcome::Decided(reference),
            };
        }
    }
    TierOutcome::NoMatch
}
