//! The verdict for one flow, with its provenance: which policies isolate each side, which
//! rule allowed the flow, or why each rule did not match.

use palisade_model::{Cluster, Direction, Endpoint, Policy, PortMatch, Protocol};
use serde::Serialize;

use crate::flow::{Flow, FlowEnd};
use crate::matching::{PeerMiss, Remote, match_peer, ports_match};
use crate::tiers::{self, ClusterRuleRef, TierOutcome};
use palisade_model::cluster_policy::{Action, Tier};

/// A policy by name, with where it was defined.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyRef {
    pub namespace: String,
    pub name: String,
    /// `file:line:column` of the manifest.
    pub defined_at: String,
}

impl PolicyRef {
    fn of(policy: &Policy) -> Self {
        Self { namespace: policy.namespace.clone(), name: policy.name.clone(), defined_at: policy.origin.to_string() }
    }

    pub fn display_name(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// One rule of one policy: `spec.<direction>[rule]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RuleRef {
    pub policy: PolicyRef,
    pub direction: Direction,
    pub rule: usize,
    /// For a rule that allowed the flow: the first peer (`from[i]`/`to[i]`) that matched;
    /// `None` when the rule has no peers (it admits everyone).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer: Option<usize>,
}

impl RuleRef {
    /// `production/allow-web ingress[0]`, or `production/allow-web ingress[0].from[1]`.
    pub fn display_name(&self) -> String {
        match self.peer {
            Some(peer) => format!("{} {}[{}].{}[{peer}]", self.policy.display_name(), self.direction, self.rule, self.direction.peers_field()),
            None => format!("{} {}[{}]", self.policy.display_name(), self.direction, self.rule),
        }
    }
}

/// Why one peer (`from[i]`/`to[i]`) did not match the other end.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "reason", rename_all = "camelCase", rename_all_fields = "camelCase")]
pub enum PeerMismatch {
    /// A podSelector-only peer only looks in the policy's namespace.
    OtherNamespace {
        peer: usize,
        policy_namespace: String,
        remote_namespace: String,
    },
    NamespaceNotSelected {
        peer: usize,
        namespace: String,
        requirement: String,
    },
    PodNotSelected {
        peer: usize,
        requirement: String,
    },
    NotAPod {
        peer: usize,
    },
    HostNetwork {
        peer: usize,
    },
    NoAddress {
        peer: usize,
    },
    OutsideCidr {
        peer: usize,
        cidr: String,
        ip: String,
    },
    Excepted {
        peer: usize,
        except: String,
        ip: String,
    },
}

impl PeerMismatch {
    fn new(peer: usize, miss: PeerMiss<'_>, remote: &Remote<'_>) -> Self {
        let ip = remote.ip().map(|ip| ip.to_string()).unwrap_or_default();
        let remote_namespace = match remote {
            Remote::Pod { endpoint, .. } => endpoint.namespace.clone(),
            Remote::External(_) => String::new(),
        };
        match miss {
            PeerMiss::OtherNamespace { policy_namespace } => PeerMismatch::OtherNamespace { peer, policy_namespace: policy_namespace.to_string(), remote_namespace },
            PeerMiss::NamespaceNotSelected { failed } => PeerMismatch::NamespaceNotSelected { peer, namespace: remote_namespace, requirement: failed.to_string() },
            PeerMiss::PodNotSelected { failed } => PeerMismatch::PodNotSelected { peer, requirement: failed.to_string() },
            PeerMiss::NotAPod => PeerMismatch::NotAPod { peer },
            PeerMiss::HostNetwork => PeerMismatch::HostNetwork { peer },
            PeerMiss::NoAddress => PeerMismatch::NoAddress { peer },
            PeerMiss::OutsideCidr { cidr } => PeerMismatch::OutsideCidr { peer, cidr: cidr.to_string(), ip },
            PeerMiss::Excepted { except } => PeerMismatch::Excepted { peer, except: except.to_string(), ip },
        }
    }
}

/// A rule that did not allow the flow, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RuleMiss {
    pub rule: RuleRef,
    /// Why each peer failed; empty when the peers matched (then the ports did not).
    pub peers: Vec<PeerMismatch>,
    /// Set when the ports did not match: the rule's port entries.
    pub ports: Option<Vec<PortMatch>>,
}

/// What one side of the flow decided.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "decision", rename_all = "camelCase", rename_all_fields = "camelCase")]
pub enum SideVerdict {
    /// This end is outside the cluster: no NetworkPolicy applies to it.
    NotAPod,
    /// A pod may always talk to itself.
    SelfTraffic,
    /// hostNetwork pods are never selected by policies.
    HostNetwork,
    /// No policy selects the pod for this direction: everything is allowed.
    NotIsolated,
    Allowed {
        isolated_by: Vec<PolicyRef>,
        allowed_by: Vec<RuleRef>,
    },
    Denied {
        isolated_by: Vec<PolicyRef>,
        misses: Vec<RuleMiss>,
    },
    /// A ClusterNetworkPolicy rule (Admin tier before NetworkPolicy, Baseline after it)
    /// accepted or denied.
    ClusterPolicy {
        accepted: bool,
        rule: ClusterRuleRef,
    },
    /// An Admin-tier Pass rule handed the decision on; `then` is what decided it
    /// (NetworkPolicy, the Baseline tier, or the default).
    Passed {
        by: ClusterRuleRef,
        then: Box<SideVerdict>,
    },
}

impl SideVerdict {
    pub fn allows(&self) -> bool {
        match self {
            SideVerdict::Denied { .. } | SideVerdict::ClusterPolicy { accepted: false, .. } => false,
            SideVerdict::Passed { then, .. } => then.allows(),
            _ => true,
        }
    }
}

/// The verdict for a flow: allowed only if the source's egress and the destination's
/// ingress both allow it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Verdict {
    pub allowed: bool,
    pub egress: SideVerdict,
    pub ingress: SideVerdict,
}

/// Judges one flow.
pub fn verdict(cluster: &Cluster, flow: &Flow) -> Verdict {
    if let (Some(src), Some(dst)) = (flow.src.index(), flow.dst.index())
        && src == dst
    {
        return Verdict { allowed: true, egress: SideVerdict::SelfTraffic, ingress: SideVerdict::SelfTraffic };
    }
    let destination = flow.dst.index().map(|i| &cluster.endpoints[i]);
    let egress = side(cluster, Direction::Egress, &flow.src, &flow.dst, flow, destination);
    let ingress = side(cluster, Direction::Ingress, &flow.dst, &flow.src, flow, destination);
    Verdict { allowed: egress.allows() && ingress.allows(), egress, ingress }
}

/// The decision of `subject` (the source for egress, the destination for ingress).
fn side(cluster: &Cluster, direction: Direction, subject: &FlowEnd, remote: &FlowEnd, flow: &Flow, destination: Option<&Endpoint>) -> SideVerdict {
    let Some(index) = subject.index() else { return SideVerdict::NotAPod };
    let endpoint = &cluster.endpoints[index];
    if !endpoint.selectable() {
        return SideVerdict::HostNetwork;
    }
    let remote = remote.as_remote(cluster);
    let traffic = tiers::Side { direction, subject: endpoint, remote, port: flow.port, protocol: flow.protocol, destination };
    let tier = |tier| tiers::evaluate(cluster, tier, &traffic);
    let decided = |rule: ClusterRuleRef| SideVerdict::ClusterPolicy { accepted: rule.action == Action::Accept, rule };
    let passed = match tier(Tier::Admin) {
        TierOutcome::Decided(rule) => return decided(rule),
        TierOutcome::Passed(rule) => Some(rule),
        TierOutcome::NoMatch => None,
    };
    let then = match network_policy_side(cluster, direction, endpoint, &remote, flow, destination) {
        Some(verdict) => verdict,
        None => match tier(Tier::Baseline) {
            TierOutcome::Decided(rule) => decided(rule),
            // A Baseline Pass goes to the default, as no match does.
            TierOutcome::Passed(_) | TierOutcome::NoMatch => SideVerdict::NotIsolated,
        },
    };
    match passed {
        Some(by) => SideVerdict::Passed { by, then: Box::new(then) },
        None => then,
    }
}

/// NetworkPolicy's decision for one side, `None` when no policy isolates the pod in that
/// direction (the next tier decides).
fn network_policy_side(cluster: &Cluster, direction: Direction, endpoint: &Endpoint, remote: &Remote<'_>, flow: &Flow, destination: Option<&Endpoint>) -> Option<SideVerdict> {
    let isolating: Vec<&Policy> = cluster.policies.iter().filter(|p| p.rules(direction).is_some() && p.selects(endpoint)).collect();
    if isolating.is_empty() {
        return None;
    }
    let remote = *remote;
    let mut allowed_by = Vec::new();
    let mut misses = Vec::new();
    for policy in &isolating {
        for (i, rule) in policy.rules(direction).unwrap_or_default().iter().enumerate() {
            let rule_ref = |peer| RuleRef { policy: PolicyRef::of(policy), direction, rule: i, peer };
            // The first matching peer, or why each peer failed.
            let mut matched = None;
            let mut peer_misses = Vec::new();
            for (p, peer) in rule.peers.iter().enumerate() {
                match match_peer(peer, &policy.namespace, &remote) {
                    Ok(()) => {
                        matched = Some(p);
                        peer_misses.clear();
                        break;
                    }
                    Err(miss) => peer_misses.push(PeerMismatch::new(p, miss, &remote)),
                }
            }
            let ports_ok = ports_match(rule, flow.port, flow.protocol, destination);
            if peer_misses.is_empty() && ports_ok {
                allowed_by.push(rule_ref(matched));
            } else {
                misses.push(RuleMiss { rule: rule_ref(None), peers: peer_misses, ports: (!ports_ok).then(|| rule.ports.clone()) });
            }
        }
    }
    let isolated_by = isolating.iter().map(|p| PolicyRef::of(p)).collect();
    Some(if allowed_by.is_empty() { SideVerdict::Denied { isolated_by, misses } } else { SideVerdict::Allowed { isolated_by, allowed_by } })
}

/// Only the boolean, for callers that judge many flows (no explanation is built).
pub fn allowed(cluster: &Cluster, flow: &Flow) -> bool {
    if flow.src.index().is_some() && flow.src.index() == flow.dst.index() {
        return true;
    }
    let destination = flow.dst.index().map(|i| &cluster.endpoints[i]);
    side_allows(cluster, Direction::Egress, &flow.src, &flow.dst, flow.port, flow.protocol, destination)
        && side_allows(cluster, Direction::Ingress, &flow.dst, &flow.src, flow.port, flow.protocol, destination)
}

fn side_allows(cluster: &Cluster, direction: Direction, subject: &FlowEnd, remote: &FlowEnd, port: u16, protocol: Protocol, destination: Option<&Endpoint>) -> bool {
    let Some(index) = subject.index() else { return true };
    let endpoint = &cluster.endpoints[index];
    let remote = remote.as_remote(cluster);
    if !cluster.cluster_policies.is_empty() && endpoint.selectable() {
        let traffic = tiers::Side { direction, subject: endpoint, remote, port, protocol, destination };
        let tier = |tier| tiers::evaluate(cluster, tier, &traffic);
        if let TierOutcome::Decided(rule) = tier(Tier::Admin) {
            return rule.action == Action::Accept;
        }
        if !cluster.policies.iter().any(|p| p.rules(direction).is_some() && p.selects(endpoint)) {
            return match tier(Tier::Baseline) {
                TierOutcome::Decided(rule) => rule.action == Action::Accept,
                TierOutcome::Passed(_) | TierOutcome::NoMatch => true,
            };
        }
    }
    let mut isolated = false;
    for policy in cluster.policies.iter().filter(|p| p.selects(endpoint)) {
        let Some(rules) = policy.rules(direction) else { continue };
        isolated = true;
        if rules.iter().any(|rule| crate::matching::peers_match(rule, &policy.namespace, &remote) && ports_match(rule, port, protocol, destination)) {
            return true;
        }
    }
    !isolated
}
