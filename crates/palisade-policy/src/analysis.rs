//! Reachability between equivalence classes, computed with bitsets: for every class, the
//! set of classes it may send to (egress) and receive from (ingress) on one port.
//!
//! Cost: building peer sets is linear in (peers x classes of the namespaces they can
//! match); one port costs (classes x rules selecting them x classes/64). Nothing is
//! proportional to pods² x policies.

use std::collections::HashMap;

use palisade_model::{Cluster, Direction, NamespaceScope, Peer, PortSpec, Protocol, Rule};

use crate::bitset::BitSet;
use crate::classes::Classes;
use crate::flow::namespace_labels;
use crate::matching::{Remote, match_peer, match_port, ports_match};

/// Rules that apply to one class in one direction: (policy index, rule index).
type RuleList = Vec<(u32, u32)>;

pub struct Analysis<'c> {
    pub cluster: &'c Cluster,
    pub classes: Classes,
    v6: bool,
    /// Per direction (0 ingress, 1 egress), per class: `None` when no policy isolates it,
    /// else the rules that may allow traffic.
    rules_of: [Vec<Option<RuleList>>; 2],
    /// Per policy, per direction, per rule: the classes its peers admit (`None`: any peer).
    rule_peers: Vec<[Vec<Option<BitSet>>; 2]>,
    /// The same for ClusterNetworkPolicy rules, when there are any.
    cluster_rule_peers: Option<crate::tiered::RulePeers>,
}

/// Allowed sets for one port and protocol.
pub struct PortSets {
    /// Per source class: the destination classes its egress admits (`None`: not isolated).
    egress: Vec<Option<BitSet>>,
    /// Per destination class: the source classes its ingress admits (`None`: not isolated).
    ingress: Vec<Option<BitSet>>,
}

impl PortSets {
    /// Whether traffic from class `a` to class `b` is allowed (for two distinct endpoints).
    pub fn allowed(&self, a: usize, b: usize) -> bool {
        self.egress[a].as_ref().is_none_or(|set| set.contains(b)) && self.ingress[b].as_ref().is_none_or(|set| set.contains(a))
    }
}

fn slot(direction: Direction) -> usize {
    match direction {
        Direction::Ingress => 0,
        Direction::Egress => 1,
    }
}

impl<'c> Analysis<'c> {
    /// Only the equivalence classes, for callers that ask `peer_set` for the few peers they
    /// need (the dataplane) rather than `port_sets` for every rule.
    pub fn classes_only(cluster: &'c Cluster, v6: bool) -> Self {
        let classes = Classes::new(cluster, v6);
        Self { cluster, classes, v6, rules_of: [Vec::new(), Vec::new()], rule_peers: Vec::new(), cluster_rule_peers: None }
    }

    /// Prepares the analysis of `cluster` for addresses of one family.
    pub fn new(cluster: &'c Cluster, v6: bool) -> Self {
        let classes = Classes::new(cluster, v6);
        let mut analysis = Self { cluster, classes, v6, rules_of: [Vec::new(), Vec::new()], rule_peers: Vec::new(), cluster_rule_peers: None };
        analysis.rules_of = [analysis.isolating_rules(Direction::Ingress), analysis.isolating_rules(Direction::Egress)];
        let mut cache: HashMap<(&str, &Peer), BitSet> = HashMap::new();
        analysis.rule_peers = cluster
            .policies
            .iter()
            .map(|policy| {
                [Direction::Ingress, Direction::Egress]
                    .map(|direction| policy.rules(direction).unwrap_or_default().iter().map(|rule| analysis.rule_peer_set(&policy.namespace, rule, &mut cache)).collect())
            })
            .collect();
        if !cluster.cluster_policies.is_empty() {
            analysis.cluster_rule_peers = Some(crate::tiered::RulePeers::new(&analysis));
        }
        analysis
    }

    fn isolating_rules(&self, direction: Direction) -> Vec<Option<RuleList>> {
        let mut out: Vec<Option<RuleList>> = vec![None; self.classes.len()];
        let mut by_namespace: HashMap<&str, Vec<usize>> = HashMap::new();
        for (p, policy) in self.cluster.policies.iter().enumerate() {
            if policy.rules(direction).is_some() {
                by_namespace.entry(policy.namespace.as_str()).or_default().push(p);
            }
        }
        for (c, class) in self.classes.classes.iter().enumerate() {
            let endpoint = &self.cluster.endpoints[class.representative];
            for &p in by_namespace.get(endpoint.namespace.as_str()).into_iter().flatten() {
                let policy = &self.cluster.policies[p];
                if policy.selects(endpoint) {
                    let rules = out[c].get_or_insert_with(Vec::new);
                    let count = policy.rules(direction).unwrap_or_default().len();
                    rules.extend((0..count).map(|r| (p as u32, r as u32)));
                }
            }
        }
        out
    }

    fn rule_peer_set<'p>(&self, namespace: &'p str, rule: &'p Rule, cache: &mut HashMap<(&'p str, &'p Peer), BitSet>) -> Option<BitSet> {
        if rule.peers.is_empty() {
            return None;
        }
        let mut set = BitSet::empty(self.classes.len());
        for peer in &rule.peers {
            // Only a podSelector-only peer depends on the policy's namespace.
            let scope = match peer {
                Peer::Pods { namespaces: NamespaceScope::PolicyNamespace, .. } => namespace,
                _ => "",
            };
            let peer_set = cache.entry((scope, peer)).or_insert_with(|| self.peer_set(namespace, peer));
            set.union_with(peer_set);
        }
        Some(set)
    }

    /// The classes one peer admits. Candidates are narrowed by namespace or ipBlock index;
    /// the decision itself is always `match_peer`.
    pub fn peer_set(&self, policy_namespace: &str, peer: &Peer) -> BitSet {
        let mut set = BitSet::empty(self.classes.len());
        let candidates: Vec<usize> = match peer {
            Peer::IpBlock(block) => self.classes.block_index(block).map(|b| self.classes.classes_in_block[b].clone()).unwrap_or_default(),
            Peer::Pods { namespaces: NamespaceScope::PolicyNamespace, .. } => self.classes.by_namespace.get(policy_namespace).cloned().unwrap_or_default(),
            Peer::Pods { namespaces: NamespaceScope::Selector(selector), .. } => {
                self.cluster.namespaces.values().filter(|ns| selector.matches(&ns.labels)).flat_map(|ns| self.classes.by_namespace.get(&ns.name).into_iter().flatten().copied()).collect()
            }
        };
        for c in candidates {
            if match_peer(peer, policy_namespace, &self.remote(c)).is_ok() {
                set.insert(c);
            }
        }
        set
    }

    pub(crate) fn remote(&self, class: usize) -> Remote<'c> {
        let endpoint = &self.cluster.endpoints[self.classes.classes[class].representative];
        Remote::Pod { endpoint, namespace_labels: namespace_labels(self.cluster, &endpoint.namespace), ip: endpoint.ip_of_family(self.v6) }
    }

    /// The allowed sets for one destination port and protocol.
    pub fn port_sets(&self, port: u16, protocol: Protocol) -> PortSets {
        let network_policy = self.network_policy_port_sets(port, protocol);
        let Some(peers) = &self.cluster_rule_peers else { return network_policy };
        PortSets {
            egress: self.tiered_sides(peers, Direction::Egress, port, protocol, &network_policy.egress),
            ingress: self.tiered_sides(peers, Direction::Ingress, port, protocol, &network_policy.ingress),
        }
    }

    /// NetworkPolicy's allowed sets alone.
    fn network_policy_port_sets(&self, port: u16, protocol: Protocol) -> PortSets {
        let n = self.classes.len();
        let all = BitSet::full(n);
        let representative = |c: usize| &self.cluster.endpoints[self.classes.classes[c].representative];
        let peers = |p: u32, direction: Direction, r: u32| -> &BitSet { self.rule_peers[p as usize][slot(direction)][r as usize].as_ref().unwrap_or(&all) };
        let rule = |p: u32, direction: Direction, r: u32| -> &Rule { &self.cluster.policies[p as usize].rules(direction).unwrap_or_default()[r as usize] };

        // Ingress: the destination is the selected class itself.
        let ingress = (0..n)
            .map(|b| {
                let rules = self.rules_of[slot(Direction::Ingress)][b].as_ref()?;
                let mut set = BitSet::empty(n);
                for &(p, r) in rules {
                    if ports_match(rule(p, Direction::Ingress, r), port, protocol, Some(representative(b))) {
                        set.union_with(peers(p, Direction::Ingress, r));
                    }
                }
                Some(set)
            })
            .collect();

        // Egress: named ports resolve on each destination class.
        let mut destination_masks: HashMap<(u32, u32), Option<BitSet>> = HashMap::new();
        let egress = (0..n)
            .map(|a| {
                let rules = self.rules_of[slot(Direction::Egress)][a].as_ref()?;
                let mut set = BitSet::empty(n);
                for &(p, r) in rules {
                    let mask = destination_masks.entry((p, r)).or_insert_with(|| self.destination_mask(rule(p, Direction::Egress, r), port, protocol));
                    match mask {
                        None => set.union_with(peers(p, Direction::Egress, r)),
                        Some(mask) => set.union_with_intersection(peers(p, Direction::Egress, r), mask),
                    }
                }
                Some(set)
            })
            .collect();
        PortSets { egress, ingress }
    }

    /// Destination classes an egress rule's ports admit: `None` for all of them.
    fn destination_mask(&self, rule: &Rule, port: u16, protocol: Protocol) -> Option<BitSet> {
        let independent = rule.ports.is_empty() || rule.ports.iter().any(|entry| !matches!(entry.port, PortSpec::Named(_)) && match_port(entry, port, protocol, None));
        if independent {
            return None;
        }
        let mut mask = BitSet::empty(self.classes.len());
        if rule.ports.iter().any(|entry| matches!(entry.port, PortSpec::Named(_)) && entry.protocol == protocol) {
            for c in 0..self.classes.len() {
                let destination = &self.cluster.endpoints[self.classes.classes[c].representative];
                if ports_match(rule, port, protocol, Some(destination)) {
                    mask.insert(c);
                }
            }
        }
        Some(mask)
    }
}
