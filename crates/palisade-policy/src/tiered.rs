//! The class matrix through ClusterNetworkPolicy's tiers, with bitsets: per subject class,
//! the remote classes still undecided shrink rule by rule (in tier, priority, name and rule
//! order), each rule taking the undecided classes its peers and ports admit; what an Admin
//! Pass hands on and what the Admin tier leaves goes to NetworkPolicy (the sets computed
//! for it alone) or, for classes it does not isolate, to the Baseline tier, then the
//! default. The same decisions as `tiers::evaluate`, for all remote classes at once.

use std::collections::HashMap;

use palisade_model::cluster_policy::{Action, ClusterPeer, ClusterProtocol, ClusterRule, Tier};
use palisade_model::{Direction, Protocol};

use crate::analysis::Analysis;
use crate::bitset::BitSet;
use crate::tiers::{peer_matches, protocol_matches, selection};

/// Per ClusterNetworkPolicy, per direction (0 ingress, 1 egress), per rule: the classes its
/// peers admit.
pub struct RulePeers(Vec<[Vec<BitSet>; 2]>);

impl RulePeers {
    pub fn new(analysis: &Analysis<'_>) -> Self {
        let n = analysis.classes.len();
        let mut cache: HashMap<&ClusterPeer, BitSet> = HashMap::new();
        let mut peer_set = |peer| -> BitSet {
            cache
                .entry(peer)
                .or_insert_with(|| {
                    let mut set = BitSet::empty(n);
                    for c in 0..n {
                        if peer_matches(analysis.cluster, peer, &analysis.remote(c)) {
                            set.insert(c);
                        }
                    }
                    set
                })
                .clone()
        };
        let sets = analysis
            .cluster
            .cluster_policies
            .iter()
            .map(|policy| {
                [&policy.ingress, &policy.egress].map(|rules| {
                    rules
                        .iter()
                        .map(|rule| {
                            let mut set = BitSet::empty(n);
                            for peer in &rule.peers {
                                set.union_with(&peer_set(peer));
                            }
                            set
                        })
                        .collect()
                })
            })
            .collect();
        Self(sets)
    }
}

/// One side's question: the subject class's direction, on one destination port.
#[derive(Clone, Copy)]
struct Query {
    direction: Direction,
    subject: usize,
    port: u16,
    protocol: Protocol,
}

/// The sets `tier_parts` gives, shared by classes selected alike.
type TierParts = (BitSet, BitSet, BitSet);
type SharedParts<'a> = HashMap<(Vec<bool>, Vec<&'a palisade_model::ContainerPort>), TierParts>;

fn slot(direction: Direction) -> usize {
    match direction {
        Direction::Ingress => 0,
        Direction::Egress => 1,
    }
}

impl Analysis<'_> {
    /// The remote classes a rule's protocols admit for `subject`'s side (`None`: all).
    /// Numbered entries do not depend on the destination; named ports resolve on it: the
    /// subject for ingress, each remote class for egress.
    fn rule_ports(&self, rule: &ClusterRule, direction: Direction, subject: usize, port: u16, protocol: Protocol) -> Option<BitSet> {
        let entries = rule.protocols.as_ref()?;
        let endpoint = |c: usize| &self.cluster.endpoints[self.classes.classes[c].representative];
        if entries.iter().any(|e| !matches!(e, ClusterProtocol::NamedPort(_)) && protocol_matches(e, port, protocol, None)) {
            return None;
        }
        let n = self.classes.len();
        let mut mask = BitSet::empty(n);
        match direction {
            Direction::Ingress => {
                if entries.iter().any(|e| protocol_matches(e, port, protocol, Some(endpoint(subject)))) {
                    return None;
                }
            }
            Direction::Egress => {
                for c in 0..n {
                    if entries.iter().any(|e| protocol_matches(e, port, protocol, Some(endpoint(c)))) {
                        mask.insert(c);
                    }
                }
            }
        }
        Some(mask)
    }

    /// Runs one tier's policies (those selecting the subject, in order) for `subject`:
    /// takes the classes their rules decide out of `open`, adding Accepted ones to
    /// `allowed` and Passed ones to `passed`.
    fn run_tier(&self, peers: &RulePeers, policies: &[usize], query: Query, sets: (&mut BitSet, &mut BitSet, &mut BitSet)) {
        let Query { direction, subject, port, protocol } = query;
        let (open, allowed, passed) = sets;
        let n = self.classes.len();
        for &p in policies {
            let policy = &self.cluster.cluster_policies[p];
            for (r, rule) in policy.rules(direction).iter().enumerate() {
                if open.is_empty() {
                    return;
                }
                // Failing closed: an Accept rule matches nothing, Deny and Pass deny all.
                let (mut matched, action) = if rule.fails_closed() {
                    if rule.action == Action::Accept {
                        continue;
                    }
                    (BitSet::full(n), Action::Deny)
                } else {
                    let mut set = peers.0[p][slot(direction)][r].clone();
                    if let Some(mask) = self.rule_ports(rule, direction, subject, port, protocol) {
                        set.intersect_with(&mask);
                    }
                    (set, rule.action)
                };
                matched.intersect_with(open);
                match action {
                    Action::Accept => allowed.union_with(&matched),
                    Action::Pass => passed.union_with(&matched),
                    Action::Deny => {}
                }
                open.subtract(&matched);
            }
        }
    }

    /// What the tiers decide for `subject` without NetworkPolicy: (Admin's accepted, what
    /// Admin leaves or passes on, what the Baseline tier and the default then allow of
    /// it). It depends on the subject only through the policies selecting it (and, for
    /// ingress named ports, its container ports), so classes share it. `selected`: per
    /// policy, whether it selects the subject.
    fn tier_parts(&self, peers: &RulePeers, query: Query, selected: &[bool]) -> TierParts {
        let n = self.classes.len();
        let selecting = |tier: Tier| -> Vec<usize> { self.cluster.cluster_policies.iter().enumerate().filter(|(i, p)| p.tier == tier && selected[*i]).map(|(i, _)| i).collect() };
        let (mut open, mut admin, mut passed) = (BitSet::full(n), BitSet::empty(n), BitSet::empty(n));
        self.run_tier(peers, &selecting(Tier::Admin), query, (&mut open, &mut admin, &mut passed));
        open.union_with(&passed);
        let (mut rest, mut baseline, mut baseline_passed) = (open.clone(), BitSet::empty(n), BitSet::empty(n));
        self.run_tier(peers, &selecting(Tier::Baseline), query, (&mut rest, &mut baseline, &mut baseline_passed));
        // What the Baseline tier left or passed on: the default, allowed.
        baseline.union_with(&rest);
        baseline.union_with(&baseline_passed);
        (admin, open, baseline)
    }

    /// The remote classes each subject class's side allows, given NetworkPolicy's own sets
    /// (`None` where NetworkPolicy does not isolate the class in this direction).
    pub(crate) fn tiered_sides(&self, peers: &RulePeers, direction: Direction, port: u16, protocol: Protocol, network_policy: &[Option<BitSet>]) -> Vec<Option<BitSet>> {
        let n = self.classes.len();
        let mut shared: SharedParts<'_> = HashMap::new();
        (0..n)
            .map(|subject| {
                let endpoint = &self.cluster.endpoints[self.classes.classes[subject].representative];
                if !endpoint.selectable() {
                    return Some(network_policy[subject].clone().unwrap_or_else(|| BitSet::full(n)));
                }
                let selected = selection(self.cluster, endpoint);
                let ports = if direction == Direction::Ingress { endpoint.ports.iter().collect() } else { Vec::new() };
                let (admin, open, baseline) = match shared.entry((selected, ports)) {
                    std::collections::hash_map::Entry::Occupied(entry) => entry.into_mut(),
                    std::collections::hash_map::Entry::Vacant(entry) => {
                        let parts = self.tier_parts(peers, Query { direction, subject, port, protocol }, &entry.key().0);
                        entry.insert(parts)
                    }
                };
                let mut allowed = admin.clone();
                match &network_policy[subject] {
                    Some(set) => allowed.union_with_intersection(set, open),
                    None => allowed.union_with(baseline),
                }
                Some(allowed)
            })
            .collect()
    }
}
