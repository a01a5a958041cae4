//! ClusterNetworkPolicy tiers in the node table.
//!
//! Per local pod and direction, the tiers run in the pod's chain (the one `forward`'s
//! dispatch map jumps to): the Admin tier, NetworkPolicy, and, when no NetworkPolicy
//! isolates the pod, the Baseline tier; falling off the chain's end allows the direction.
//! A tier is TWO lookups per family in interval verdict maps, `peer . protocol . port` then
//! the peer alone: the tier's rules, in evaluation order (policies by priority then name,
//! rules in order), are decomposed into disjoint elements each labelled with the first rule
//! covering it, and split between the two ([`crate::first_match::two_stage`]), so the
//! packet's cost does not grow with the number of rules.
//! Each element jumps or goes to its rule's chain, whose counter and comment name the policy
//! and rule:
//! - Accept: `goto` a chain `counter return`: the direction is allowed (for egress, the
//!   destination's ingress still decides, later in `forward`);
//! - Deny: `goto` a chain `counter goto deny`;
//! - Pass: `jump` to a chain holding only a counter: the pod's chain goes on with
//!   NetworkPolicy (after the Admin tier) or its end (after the Baseline tier). The second
//!   lookup's rule first checks that the first map has no element for the packet
//!   (`!= @map`), so a Pass there is not followed by the second lookup.
//!
//! A rule naming a peer or protocol this version does not know fails closed as in the
//! engine: an Accept rule matches nothing, a Deny or Pass rule denies everything.
//! `destinationNamedPort` resolves on the destination: for ingress, the local pod (pods
//! that resolve a tier's names differently get chains of their own); for egress, every
//! pod the rule's peers hold.

use std::collections::BTreeMap;
use std::rc::Rc;

use foldhash::{HashMap, HashMapExt};
use palisade_model::cluster_policy::{Action, ClusterPeer, ClusterPolicy, ClusterProtocol, Tier};
use palisade_model::{Cluster, Direction, Endpoint, Protocol};
use palisade_policy::tiers::selection;

use crate::classes::{Atom, Atoms, Classes};
use crate::disjoint::{Box3, EVERY_SERVICE, PortRange, ProtoRange};
use crate::first_match::two_stage;
use crate::intervals::{Range, RangeSet, merge};
use crate::render::mark_value;
use crate::ruleset::{Chain, KeyType, Rule, Statement, Value, Verdict, VerdictMap};

const PROTOCOLS: [Protocol; 3] = [Protocol::Tcp, Protocol::Udp, Protocol::Sctp];

/// The protocol and port ranges of a rule (with the names of its named ports apart).
type PortBoxes<'r> = (Vec<(ProtoRange, PortRange)>, Vec<&'r str>);

/// The protocols and ports a rule names, besides named ports.
fn port_boxes(protocols: Option<&[ClusterProtocol]>) -> PortBoxes<'_> {
    let Some(list) = protocols else { return (vec![EVERY_SERVICE], Vec::new()) };
    let mut ports = Vec::new();
    let mut named = Vec::new();
    for entry in list {
        match entry {
            ClusterProtocol::Ports { protocol, first, last } => {
                let p = protocol.number();
                ports.push(((p, p), (*first, *last)));
            }
            ClusterProtocol::NamedPort(name) => named.push(name.as_str()),
            // The rule fails closed; callers never get here with one.
            ClusterProtocol::Unknown => {}
        }
    }
    (ports, named)
}

pub(crate) fn tier_tag(tier: Tier) -> &'static str {
    match tier {
        Tier::Admin => "admin",
        Tier::Baseline => "baseline",
    }
}

/// Which ClusterNetworkPolicies decide for a local pod (before any class exists).
pub(crate) struct Selection<'c> {
    cluster: &'c Cluster,
}

impl<'c> Selection<'c> {
    pub fn new(cluster: &'c Cluster) -> Self {
        Self { cluster }
    }

    /// The policies that select `subject`, in evaluation order (`Cluster::cluster_policies`
    /// is kept in it): what [`Self::of`] picks a tier and direction from.
    pub fn selecting(&self, subject: &Endpoint) -> Vec<usize> {
        selection(self.cluster, subject).into_iter().enumerate().filter_map(|(p, selected)| selected.then_some(p)).collect()
    }

    /// Those of `selecting` in `tier` with rules in `direction`.
    pub fn of(&self, tier: Tier, direction: Direction, selecting: &[usize]) -> Vec<usize> {
        let policies = &self.cluster.cluster_policies;
        selecting.iter().copied().filter(|&p| policies[p].tier == tier && !policies[p].rules(direction).is_empty()).collect()
    }

    /// How `subject` resolves the ingress named ports of `policies` (pods resolving them
    /// alike can share maps).
    pub fn signature(&self, policies: &[usize], direction: Direction, subject: &Endpoint) -> Vec<Option<u16>> {
        if direction != Direction::Ingress {
            return Vec::new();
        }
        let mut signature = Vec::new();
        for &p in policies {
            for rule in self.cluster.cluster_policies[p].rules(direction) {
                for name in port_boxes(rule.protocols.as_deref()).1 {
                    signature.extend(PROTOCOLS.iter().map(|&protocol| subject.named_port(name, protocol)));
                }
            }
        }
        signature
    }
}

/// The tiers' maps and rule chains for one node's table.
pub(crate) struct Tiers<'c, 'a> {
    cluster: &'c Cluster,
    atoms: &'a Atoms<'c>,
    classes: &'a Classes,
    deny_chain: &'static str,
    /// Class id ranges of a peer (equal peers of different rules share them).
    peers: HashMap<&'c ClusterPeer, Rc<Vec<Range>>>,
    pub maps: BTreeMap<String, VerdictMap>,
    pub chains: BTreeMap<String, Chain>,
    /// Elements in `maps` (the render checks its budget as they are built).
    pub elements: usize,
}

impl<'c, 'a> Tiers<'c, 'a> {
    pub fn new(cluster: &'c Cluster, atoms: &'a Atoms<'c>, classes: &'a Classes, deny_chain: &'static str) -> Self {
        Self { cluster, atoms, classes, deny_chain, peers: HashMap::new(), maps: BTreeMap::new(), chains: BTreeMap::new(), elements: 0 }
    }

    /// The classes a peer matches, as ranges of ids.
    fn peer_ranges(&mut self, peer: &'c ClusterPeer) -> Rc<Vec<Range>> {
        if let Some(ranges) = self.peers.get(peer) {
            return ranges.clone();
        }
        // Names are not addresses (refused before rendering; the engine matches none);
        // unknown peers make the rule fail closed: neither has an atom.
        let ranges = Rc::new(merge(self.classes.matching(self.atoms, &Atom::Cluster(peer)).iter().map(|&id| (u128::from(id), u128::from(id))).collect()));
        self.peers.insert(peer, ranges.clone());
        ranges
    }

    /// A rule's boxes (on the class axis) for `subject`'s map, with the classes it matches
    /// on every protocol and port (merged); `None` when `decided` (what earlier rules decide
    /// on every service) already holds every class it could match: the rule never matches
    /// first. The test runs on the peers' shared class lists, before any box is built.
    fn rule_boxes(&mut self, p: usize, direction: Direction, k: usize, subject: &Endpoint, decided: &RangeSet) -> Option<(Vec<Box3>, Vec<Range>)> {
        let cluster = self.cluster;
        let rule = &cluster.cluster_policies[p].rules(direction)[k];
        if rule.fails_closed() {
            // Accept: nothing; Deny or Pass: deny everything.
            let all = self.classes.everything();
            if rule.action == Action::Accept || decided.covers(std::iter::once(all)) {
                return None;
            }
            let (proto, port) = EVERY_SERVICE;
            return Some((vec![Box3 { addr: all, proto, port }], vec![all]));
        }
        let lists: Vec<Rc<Vec<Range>>> = rule.peers.iter().map(|peer| self.peer_ranges(peer)).collect();
        if lists.iter().all(|list| decided.covers(list.iter().copied())) {
            return None;
        }
        let peers: Vec<Range> = match &lists[..] {
            [one] => one.to_vec(),
            _ => merge(lists.iter().flat_map(|list| list.iter().copied()).collect()),
        };
        let (ports, named) = port_boxes(rule.protocols.as_deref());
        let mut boxes: Vec<Box3> = peers.iter().flat_map(|&addr| ports.iter().map(move |&(proto, port)| Box3 { addr, proto, port })).collect();
        if !named.is_empty() {
            if direction == Direction::Egress {
                // Egress named ports resolve on the destination: the number is part of the
                // class.
                for name in &named {
                    for protocol in PROTOCOLS {
                        let p = protocol.number();
                        for &(id, n) in self.classes.numbered(self.atoms, name, protocol) {
                            let id = u128::from(id);
                            if peers.iter().any(|&(lo, hi)| lo <= id && id <= hi) {
                                boxes.push(Box3 { addr: (id, id), proto: (p, p), port: (n, n) });
                            }
                        }
                    }
                }
            } else {
                // Ingress named ports resolve on the subject (the destination).
                for name in named {
                    for protocol in PROTOCOLS {
                        if let Some(n) = subject.named_port(name, protocol) {
                            let p = protocol.number();
                            boxes.extend(peers.iter().map(|&addr| Box3 { addr, proto: (p, p), port: (n, n) }));
                        }
                    }
                }
            }
        }
        let everywhere = if ports.contains(&EVERY_SERVICE) { peers } else { Vec::new() };
        Some((boxes, everywhere))
    }

    /// The chain a rule's elements lead to, and how they lead there.
    fn rule_target(&mut self, p: usize, direction: Direction, k: usize) -> Verdict {
        let policy = &self.cluster.cluster_policies[p];
        let rule = &policy.rules(direction)[k];
        let action = if rule.fails_closed() && rule.action != Action::Accept { Action::Deny } else { rule.action };
        let name = format!("{}_{}{k}", policy_base(policy), crate::render::dir_tag(direction));
        let (statements, verdict) = match action {
            Action::Accept => (vec![Statement::Counter, Statement::Return], Verdict::Goto(name.clone())),
            Action::Deny => (vec![Statement::Counter, Statement::Goto(self.deny_chain.to_string())], Verdict::Goto(name.clone())),
            Action::Pass => (vec![Statement::Counter], Verdict::Jump(name.clone())),
        };
        let rule_name = rule.name.as_deref().map(|n| format!(" '{n}'")).unwrap_or_default();
        let closed = if rule.fails_closed() { " (fails closed)" } else { "" };
        let comment = format!("{} ({} tier, priority {}) {direction}[{k}]{rule_name}: {}{closed}", policy.name, policy.tier.as_str(), policy.priority, action.as_str());
        self.chains.entry(name.clone()).or_insert_with(|| Chain { name, base: None, rules: vec![Rule { statements, comment: Some(crate::render::bounded(comment)) }] });
        verdict
    }

    /// The verdict maps deciding the rules of `policies` (one tier's, in evaluation order)
    /// for `subject` in `direction`, keyed on the remote address's class; none when they
    /// match nothing.
    pub fn map(&mut self, tier: Tier, policies: &[usize], direction: Direction, subject: &Endpoint, signature: &[Option<u16>]) -> TierMaps {
        if policies.is_empty() {
            return TierMaps::default();
        }
        let names: Vec<&str> = policies.iter().map(|&p| self.cluster.cluster_policies[p].name.as_str()).collect();
        let hash = crate::render::fnv(&format!("{}|{signature:?}", names.join(","))) & 0xffff_ffff_ffff;
        let name = format!("{}_{}_{hash:012x}", tier_tag(tier), crate::render::dir_tag(direction));
        let address_name = address_map_name(&name);
        if self.maps.contains_key(&name) || self.maps.contains_key(&address_name) {
            return self.built(name, address_name);
        }
        let cluster = self.cluster;
        let mut labelled: Vec<(Box3, usize)> = Vec::new();
        let mut targets: Vec<(usize, usize)> = Vec::new();
        // Classes earlier rules decide on every protocol and port: a rule inside them never
        // matches first, and most of a broad tier's rules are (first_match would drop their
        // boxes too, after building them).
        let mut decided = RangeSet::default();
        for &p in policies {
            for k in 0..cluster.cluster_policies[p].rules(direction).len() {
                let Some((boxes, everywhere)) = self.rule_boxes(p, direction, k, subject, &decided) else { continue };
                let rank = targets.len();
                targets.push((p, k));
                labelled.extend(boxes.into_iter().map(|b| (b, rank)));
                for range in everywhere {
                    decided.insert(range);
                }
            }
        }
        if labelled.is_empty() {
            return TierMaps::default();
        }
        let (by_port, by_address) = two_stage(&labelled);
        let mut verdicts: BTreeMap<usize, Verdict> = BTreeMap::new();
        let mut verdict = |tiers: &mut Self, rank: usize| verdicts.entry(rank).or_insert_with(|| tiers.rule_target(targets[rank].0, direction, targets[rank].1)).clone();
        let bits = self.classes.bits;
        if !by_port.is_empty() {
            let elements = by_port
                .into_iter()
                .map(|(b, rank)| (smallvec::smallvec![mark_value(bits, b.addr), Value::Proto(b.proto.0, b.proto.1), Value::Port(b.port.0, b.port.1)], verdict(self, rank)))
                .collect();
            let map = VerdictMap { name: name.clone(), key: vec![KeyType::Mark, KeyType::Proto, KeyType::Service], interval: true, elements };
            self.elements += map.elements.len();
            self.maps.insert(name.clone(), map);
        }
        if !by_address.is_empty() {
            let elements = by_address.into_iter().map(|(b, rank)| (smallvec::smallvec![mark_value(bits, b.addr)], verdict(self, rank))).collect();
            let map = VerdictMap { name: address_name.clone(), key: vec![KeyType::Mark], interval: true, elements };
            self.elements += map.elements.len();
            self.maps.insert(address_name.clone(), map);
        }
        self.built(name, address_name)
    }

    /// The lookups of a tier whose maps (those with elements) are built.
    fn built(&self, name: String, address_name: String) -> TierMaps {
        let first = self.maps.get(&name);
        TierMaps { passes_on: first.is_some_and(VerdictMap::has_jump), by_port: first.is_some().then_some(name), by_address: self.maps.contains_key(&address_name).then_some(address_name) }
    }
}

/// A tier's two lookups in one family (see [`two_stage`]): `peer . protocol . port`, then
/// the peer alone.
#[derive(Debug, Default)]
pub(crate) struct TierMaps {
    pub by_port: Option<String>,
    pub by_address: Option<String>,
    /// Some `by_port` element is a Pass (a `jump`, which comes back): the `by_address`
    /// lookup must then first check that `by_port` has no element for the packet.
    pub passes_on: bool,
}

/// The name of a tier's second (address-only) map, after its first map's name.
pub(crate) fn address_map_name(port_map: &str) -> String {
    format!("{port_map}a")
}

/// A readable, unique, nft-safe name for a ClusterNetworkPolicy's rule chains.
fn policy_base(policy: &ClusterPolicy) -> String {
    format!("cnp_{}_{}_{:06x}", tier_tag(policy.tier), crate::render::nft_safe(&policy.name, 30), crate::render::fnv(&policy.name) & 0xffffff)
}

/// A rule part the dataplane cannot enforce as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unenforceable {
    pub policy: String,
    pub origin: String,
    /// Field path of the peer, as in the manifest (`spec.egress[1].to[0].domainNames`).
    pub field: String,
}

impl std::fmt::Display for Unenforceable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: ClusterNetworkPolicy {}: {}: Palisade's dataplane does not enforce domainNames peers yet (a name is not an address until a DNS answer says so); the rule accepts no traffic to them, as `palisade check` reports. Use `networks` with the addresses, or leave the names to a DNS-aware egress proxy",
            self.origin, self.policy, self.field
        )
    }
}

/// The `domainNames` peers of every ClusterNetworkPolicy: not enforced by the dataplane
/// (their rules match no traffic to those names, failing closed, as the engine judges).
/// Callers refuse them (`palisade dataplane`) or report them where users look (the agent).
pub fn unenforceable(cluster: &Cluster) -> Vec<Unenforceable> {
    cluster.cluster_policies.iter().flat_map(unenforceable_in).collect()
}

/// The `domainNames` peers of one ClusterNetworkPolicy (see [`unenforceable`]).
pub fn unenforceable_in(policy: &ClusterPolicy) -> Vec<Unenforceable> {
    let mut found = Vec::new();
    for direction in [Direction::Ingress, Direction::Egress] {
        let (rules, peers) = match direction {
            Direction::Ingress => ("ingress", "from"),
            Direction::Egress => ("egress", "to"),
        };
        for (k, rule) in policy.rules(direction).iter().enumerate() {
            for (j, peer) in rule.peers.iter().enumerate() {
                if matches!(peer, ClusterPeer::DomainNames(_)) {
                    found.push(Unenforceable { policy: policy.name.clone(), origin: policy.origin.to_string(), field: format!("spec.{rules}[{k}].{peers}[{j}].domainNames") });
                }
            }
        }
    }
    found
}
