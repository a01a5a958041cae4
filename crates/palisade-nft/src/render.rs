//! Desired node state -> the whole `inet palisade` table. Pure: the same state always gives
//! the same ruleset, and nothing here reads the kernel.
//!
//! Layout (see ARCHITECTURE.md, "Packet flow"):
//! - `forward` (base chain): established and related connections pass, invalid ones drop;
//!   new ones are dispatched through verdict maps keyed by local pod address: the source's
//!   egress chain, then the destination's ingress chain. Pods no policy isolates in a
//!   direction are not in that direction's map.
//! - Peers are decided by the engine's `match_peer`, so the rules and the analysis CLI can
//!   never disagree on who a selector means.
//! - One chain per distinct combination of isolating policies, and one interval set per
//!   combination and family keyed `peer . protocol . port`, holding the union of every (peer
//!   range, port range) the combination's policies admit, as disjoint elements: one lookup
//!   per packet however many policies select the pod. Egress named ports resolve on each
//!   destination pod into that set; ingress named ports resolve on the local pods into a
//!   `destination . protocol . port` set next to the rule's peer set (a rule of its own in the
//!   chain). The chain ends in the deny verdict. nft cannot report a match through two levels
//!   of `jump` without packet marks, so there are no per-policy chains.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use palisade_model::cluster_policy::Tier;
use palisade_model::{Cluster, Direction, NamespaceScope, Peer, Policy, PortSpec, Protocol};
use palisade_policy::flow::namespace_labels;
use palisade_policy::matching::{Remote, match_peer};

use crate::cluster_tiers::Tiers;
use crate::disjoint::{Box3, PortRange, ProtoRange, disjoint};
use crate::intervals::{Range, block_ranges, everything, from_int, merge, to_int};
use crate::ruleset::{BaseChain, Chain, Element, Field, Hook, KeyType, Rule, Ruleset, Set, Statement, Value, VerdictMap};

/// What to do with a new connection no rule allows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DenyAction {
    /// TCP reset, or ICMP administratively prohibited: clients fail at once.
    #[default]
    Reject,
    Drop,
}

#[derive(Clone, Debug)]
pub struct RenderOptions {
    pub table: String,
    pub deny_action: DenyAction,
}

impl Default for RenderOptions {
    fn default() -> Self {
        Self { table: "palisade".to_string(), deny_action: DenyAction::Reject }
    }
}

/// Everything one node enforces: the cluster as the engine sees it, and which endpoints
/// run on this node (indices into `Cluster::endpoints`).
pub struct NodeState<'c> {
    pub cluster: &'c Cluster,
    pub local: Vec<usize>,
    pub options: RenderOptions,
}

fn family_suffix(v6: bool) -> &'static str {
    if v6 { "6" } else { "4" }
}

pub(crate) fn dir_tag(direction: Direction) -> &'static str {
    match direction {
        Direction::Ingress => "in",
        Direction::Egress => "eg",
    }
}

/// The packet field holding the peer (the other end) for a direction.
fn peer_field(direction: Direction, v6: bool) -> Field {
    match (direction, v6) {
        (Direction::Ingress, false) => Field::Saddr4,
        (Direction::Ingress, true) => Field::Saddr6,
        (Direction::Egress, false) => Field::Daddr4,
        (Direction::Egress, true) => Field::Daddr6,
    }
}

/// The packet field holding the local pod for a direction.
fn local_field(direction: Direction, v6: bool) -> Field {
    peer_field(if direction == Direction::Ingress { Direction::Egress } else { Direction::Ingress }, v6)
}

pub(crate) fn fnv(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// A readable, unique, nft-safe name for a policy's objects.
fn policy_base(policy: &Policy) -> String {
    let hash = fnv(&policy.display_name()) & 0xffffff;
    format!("p_{}_{}_{hash:06x}", nft_safe(&policy.namespace, 20), nft_safe(&policy.name, 30))
}

/// The first `max` characters of a name, those nft does not take in object names as `_`.
pub(crate) fn nft_safe(name: &str, max: usize) -> String {
    name.chars().take(max).map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect()
}

/// Named ports resolved on every destination pod in `peers`: `(pod address, protocol,
/// the number the pod gives the name)` for each `(name, protocol)` the pod has.
pub(crate) fn destination_named_ports(cluster: &Cluster, peers: &[Range], named: &[(&str, Protocol)], v6: bool) -> Vec<Box3> {
    let mut boxes = Vec::new();
    for endpoint in &cluster.endpoints {
        let Some(ip) = endpoint.ip_of_family(v6) else { continue };
        let at = to_int(ip);
        if !peers.iter().any(|&(lo, hi)| lo <= at && at <= hi) {
            continue;
        }
        for &(name, protocol) in named {
            if let Some(n) = endpoint.named_port(name, protocol) {
                let p = protocol.number();
                boxes.push(Box3 { addr: (at, at), proto: (p, p), port: (n, n) });
            }
        }
    }
    boxes
}

/// nft's text parser accepts comments of at most 128 characters ("comment too long"); the
/// kernel keeps them in the rule's user data (256 bytes). A longer one fails the transaction.
const COMMENT_MAX: usize = 128;

/// `<prefix><name>, <name>, ...`, naming as many as fit and counting the rest.
fn comment_listing(prefix: &str, names: &[String]) -> String {
    let mut out = prefix.to_string();
    for (i, name) in names.iter().enumerate() {
        let rest = names.len() - i - 1;
        let tail = if rest > 0 { format!(" and {rest} more") } else { String::new() };
        let piece = if i == 0 { name.clone() } else { format!(", {name}") };
        if out.len() + piece.len() + tail.len() > COMMENT_MAX {
            out.push_str(&format!(" and {} more", names.len() - i));
            return out;
        }
        out.push_str(&piece);
    }
    out
}

/// A comment cut to the length nft accepts (on a character boundary).
pub(crate) fn bounded(text: String) -> String {
    if text.len() <= COMMENT_MAX {
        return text;
    }
    let mut end = COMMENT_MAX - 3;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &text[..end])
}

const ANY_PROTOCOL: ProtoRange = (0, 255);
const ANY_PORT: PortRange = (0, 65535);

pub(crate) fn addr_value(range: Range, v6: bool) -> Value {
    Value::Addr(from_int(range.0, v6), from_int(range.1, v6))
}

/// What one policy admits in one direction and family.
struct PolicyObjects {
    /// Every (peer range x protocol x port range) its rules admit (overlapping freely), and
    /// the indices of the rules they come from. Combinations merge these into one set.
    boxes: Vec<Box3>,
    contributing: Vec<usize>,
    /// Per rule with ingress named ports: (rule index, peer set, named set).
    named: Vec<(usize, String, String)>,
}

struct Renderer<'c> {
    cluster: &'c Cluster,
    /// Endpoints per namespace: the only candidates a pod peer can match.
    endpoints_by_namespace: BTreeMap<&'c str, Vec<usize>>,
    sets: Vec<Set>,
}

impl Renderer<'_> {
    /// Peer address ranges of a rule (no peers: every address). Pod peers are decided by the
    /// engine's `match_peer`, on the endpoints of the namespaces they can reach.
    fn peer_ranges(&self, policy: &Policy, peers: &[Peer], v6: bool) -> Vec<Range> {
        if peers.is_empty() {
            return vec![everything(v6)];
        }
        let mut ranges = Vec::new();
        for peer in peers {
            match peer {
                Peer::IpBlock(block) => ranges.extend(block_ranges(block, v6)),
                Peer::Pods { namespaces, .. } => {
                    let namespaces: Vec<&str> = match namespaces {
                        NamespaceScope::PolicyNamespace => vec![policy.namespace.as_str()],
                        NamespaceScope::Selector(selector) => self.cluster.namespaces.values().filter(|ns| selector.matches(&ns.labels)).map(|ns| ns.name.as_str()).collect(),
                    };
                    for ns in namespaces {
                        let labels = namespace_labels(self.cluster, ns);
                        for &i in self.endpoints_by_namespace.get(ns).into_iter().flatten() {
                            let endpoint = &self.cluster.endpoints[i];
                            let Some(ip) = endpoint.ip_of_family(v6) else { continue };
                            let remote = Remote::Pod { endpoint, namespace_labels: labels, ip: Some(ip) };
                            if match_peer(peer, &policy.namespace, &remote).is_ok() {
                                ranges.push((to_int(ip), to_int(ip)));
                            }
                        }
                    }
                }
            }
        }
        merge(ranges)
    }

    fn policy_objects(&mut self, policy: &Policy, direction: Direction, v6: bool, local: &[usize]) -> PolicyObjects {
        let rules = policy.rules(direction).unwrap_or_default();
        let mut objects = PolicyObjects { boxes: Vec::new(), contributing: Vec::new(), named: Vec::new() };
        if rules.is_empty() {
            return objects;
        }
        let base = policy_base(policy);
        let f = family_suffix(v6);
        let addr_key = if v6 { KeyType::Ipv6 } else { KeyType::Ipv4 };
        let mut boxes: Vec<Box3> = Vec::new();
        let mut contributing = Vec::new();
        for (k, rule) in rules.iter().enumerate() {
            let peers = self.peer_ranges(policy, &rule.peers, v6);
            if peers.is_empty() {
                continue;
            }
            let before = boxes.len();
            let mut ports: Vec<(ProtoRange, PortRange)> = Vec::new();
            if rule.ports.is_empty() {
                ports.push((ANY_PROTOCOL, ANY_PORT));
            }
            let mut named: Vec<(&str, Protocol)> = Vec::new();
            for entry in &rule.ports {
                let p = entry.protocol.number();
                match &entry.port {
                    PortSpec::Any => ports.push(((p, p), ANY_PORT)),
                    PortSpec::Number(n) => ports.push(((p, p), (*n, *n))),
                    PortSpec::Range(lo, hi) => ports.push(((p, p), (*lo, *hi))),
                    PortSpec::Named(name) => named.push((name, entry.protocol)),
                }
            }
            for &addr in &peers {
                boxes.extend(ports.iter().map(|&(proto, port)| Box3 { addr, proto, port }));
            }
            match direction {
                // Egress: the destination is the peer; resolve the name on every pod in range.
                Direction::Egress if !named.is_empty() => boxes.extend(destination_named_ports(self.cluster, &peers, &named, v6)),
                // Ingress: the destination is the local pod the policy selects.
                Direction::Ingress if !named.is_empty() => {
                    let mut destinations: BTreeSet<Element> = BTreeSet::new();
                    for &i in local {
                        let endpoint = &self.cluster.endpoints[i];
                        let Some(ip) = endpoint.ip_of_family(v6) else { continue };
                        if !policy.selects(endpoint) {
                            continue;
                        }
                        for &(name, protocol) in &named {
                            if let Some(n) = endpoint.named_port(name, protocol) {
                                let (p, at) = (protocol.number(), to_int(ip));
                                destinations.insert(vec![addr_value((at, at), v6), Value::Proto(p, p), Value::Port(n, n)]);
                            }
                        }
                    }
                    let peers_name = format!("{base}_in{f}_r{k}_peers");
                    let named_name = format!("{base}_in{f}_r{k}_named");
                    self.sets.push(Set { name: peers_name.clone(), key: vec![addr_key], interval: true, elements: peers.iter().map(|&r| vec![addr_value(r, v6)]).collect() });
                    // Exact elements (no intervals): duplicates are merged by the BTreeSet.
                    self.sets.push(Set { name: named_name.clone(), key: vec![addr_key, KeyType::Proto, KeyType::Service], interval: false, elements: destinations.into_iter().collect() });
                    objects.named.push((k, peers_name, named_name));
                }
                _ => {}
            }
            if boxes.len() > before {
                contributing.push(k);
            }
        }
        objects.boxes = boxes;
        objects.contributing = contributing;
        objects
    }
}

/// What decides one direction of a local pod: the NetworkPolicies isolating it, the
/// ClusterNetworkPolicies of each tier selecting it, and how it resolves their named ports.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Group {
    isolating: Vec<usize>,
    admin: Vec<usize>,
    baseline: Vec<usize>,
    signature: Vec<Option<u16>>,
}

impl Group {
    /// What the chain's name is hashed from: the NetworkPolicies' names alone when no
    /// ClusterNetworkPolicy applies (names stay as they were before tiers existed).
    fn chain_key(&self, cluster: &Cluster, names: &[String]) -> String {
        let mut key = names.join(",");
        if !self.admin.is_empty() || !self.baseline.is_empty() {
            let tier = |list: &[usize]| list.iter().map(|&p| cluster.cluster_policies[p].name.as_str()).collect::<Vec<_>>().join(",");
            key.push_str(&format!("|{}|{}|{:?}", tier(&self.admin), tier(&self.baseline), self.signature));
        }
        key
    }
}

/// The chain every combination chain ends in when no rule allowed the connection.
const DENY_CHAIN: &str = "deny";

fn deny_chain(action: DenyAction) -> Chain {
    let rules = match action {
        // TCP gets a reset, everything else ICMP administratively prohibited: clients fail at
        // once instead of waiting for a timeout.
        DenyAction::Reject => vec![Rule { statements: vec![Statement::IsTcp, Statement::RejectTcpReset], comment: None }, Rule { statements: vec![Statement::RejectAdminProhibited], comment: None }],
        DenyAction::Drop => vec![Rule { statements: vec![Statement::Drop], comment: None }],
    };
    Chain { name: DENY_CHAIN.to_string(), base: None, rules }
}

/// Renders the table for one node.
pub fn render(state: &NodeState<'_>) -> Ruleset {
    let cluster = state.cluster;
    let local: Vec<usize> = state.local.iter().copied().filter(|&i| cluster.endpoints[i].selectable()).collect();
    let families: Vec<bool> = [false, true].into_iter().filter(|&v6| local.iter().any(|&i| cluster.endpoints[i].ip_of_family(v6).is_some())).collect();

    // Policies in name order, so names and order never depend on input order.
    let mut order: Vec<usize> = (0..cluster.policies.len()).collect();
    order.sort_by(|&a, &b| (&cluster.policies[a].namespace, &cluster.policies[a].name).cmp(&(&cluster.policies[b].namespace, &cluster.policies[b].name)));

    // Policies by namespace (in name order): a pod can only be selected by its own.
    let mut by_namespace: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for &p in &order {
        by_namespace.entry(cluster.policies[p].namespace.as_str()).or_default().push(p);
    }

    let mut endpoints_by_namespace: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, endpoint) in cluster.endpoints.iter().enumerate() {
        endpoints_by_namespace.entry(endpoint.namespace.as_str()).or_default().push(i);
    }
    let mut tiers = Tiers::new(cluster, &endpoints_by_namespace, DENY_CHAIN);

    // What decides each local pod's traffic, per direction: the pods deciding alike share
    // a chain.
    let mut combos: BTreeMap<(Direction, Group), Vec<usize>> = BTreeMap::new();
    let mut used: BTreeSet<(usize, Direction)> = BTreeSet::new();
    for &i in &local {
        let endpoint = &cluster.endpoints[i];
        let candidates = by_namespace.get(endpoint.namespace.as_str()).map(Vec::as_slice).unwrap_or_default();
        let selecting = tiers.selecting(endpoint);
        for direction in [Direction::Egress, Direction::Ingress] {
            let isolating: Vec<usize> = candidates.iter().copied().filter(|&p| cluster.policies[p].rules(direction).is_some() && cluster.policies[p].selects(endpoint)).collect();
            let admin = tiers.of(Tier::Admin, direction, &selecting);
            // The Baseline tier decides only where no NetworkPolicy does.
            let baseline = if isolating.is_empty() { tiers.of(Tier::Baseline, direction, &selecting) } else { Vec::new() };
            if isolating.is_empty() && admin.is_empty() && baseline.is_empty() {
                continue;
            }
            let named: Vec<usize> = admin.iter().chain(&baseline).copied().collect();
            let signature = tiers.signature(&named, direction, endpoint);
            used.extend(isolating.iter().map(|&p| (p, direction)));
            combos.entry((direction, Group { isolating, admin, baseline, signature })).or_default().push(i);
        }
    }

    let mut renderer = Renderer { cluster, endpoints_by_namespace: endpoints_by_namespace.clone(), sets: Vec::new() };
    // (policy, direction, family) -> its objects; only for policies that isolate a local pod.
    let mut objects: BTreeMap<(usize, Direction, bool), PolicyObjects> = BTreeMap::new();
    for &v6 in &families {
        for &(p, direction) in &used {
            let rendered = renderer.policy_objects(&cluster.policies[p], direction, v6, &local);
            objects.insert((p, direction, v6), rendered);
        }
    }

    let mut chains: Vec<Chain> = Vec::new();
    let mut maps: BTreeMap<(Direction, bool), Vec<(IpAddr, String)>> = BTreeMap::new();
    for ((direction, group), pods) in &combos {
        let policies = &group.isolating;
        let names: Vec<String> = policies.iter().map(|&p| cluster.policies[p].display_name()).collect();
        let chain_name = format!("{}_{:012x}", dir_tag(*direction), fnv(&group.chain_key(cluster, &names)) & 0xffff_ffff_ffff);
        let mut rules = Vec::new();
        // Pods in a group resolve the tiers' named ports alike: any of them stands for all.
        let subject = &cluster.endpoints[pods[0]];
        let tier_rules = |tiers: &mut Tiers<'_>, tier: Tier, members: &[usize], rules: &mut Vec<Rule>| {
            for &v6 in &families {
                let maps = tiers.map(tier, members, *direction, v6, subject, &group.signature);
                let listed: Vec<String> = members.iter().map(|&p| cluster.cluster_policies[p].name.clone()).collect();
                let comment = Some(comment_listing(&format!("{} tier: ", tier.as_str()), &listed));
                if let Some(map) = maps.by_port.clone() {
                    rules.push(Rule { statements: vec![Statement::Vmap { fields: vec![peer_field(*direction, v6), Field::L4Proto, Field::Dport], map }], comment: comment.clone() });
                }
                if let Some(map) = maps.by_address {
                    let mut statements = Vec::new();
                    if let (Some(first), true) = (&maps.by_port, maps.passes_on) {
                        statements.push(Statement::Absent { fields: vec![peer_field(*direction, v6), Field::L4Proto, Field::Dport], map: first.clone() });
                    }
                    statements.push(Statement::Vmap { fields: vec![peer_field(*direction, v6)], map });
                    rules.push(Rule { statements, comment });
                }
            }
        };
        tier_rules(&mut tiers, Tier::Admin, &group.admin, &mut rules);
        // One lookup per family in the union of what every isolating policy admits: the
        // packet's cost does not grow with the number of policies selecting the pod.
        for &v6 in &families {
            let mut boxes = Vec::new();
            let mut sources = Vec::new();
            for &p in policies {
                let Some(o) = objects.get(&(p, *direction, v6)) else { continue };
                boxes.extend_from_slice(&o.boxes);
                if !o.contributing.is_empty() {
                    let indices: Vec<String> = o.contributing.iter().map(|k| k.to_string()).collect();
                    sources.push(format!("{} {direction}[{}]", cluster.policies[p].display_name(), indices.join(",")));
                }
            }
            if boxes.is_empty() {
                continue;
            }
            let set = format!("{chain_name}_{}", family_suffix(v6));
            let elements = disjoint(boxes).into_iter().map(|b| vec![addr_value(b.addr, v6), Value::Proto(b.proto.0, b.proto.1), Value::Port(b.port.0, b.port.1)]).collect();
            let addr_key = if v6 { KeyType::Ipv6 } else { KeyType::Ipv4 };
            renderer.sets.push(Set { name: set.clone(), key: vec![addr_key, KeyType::Proto, KeyType::Service], interval: true, elements });
            rules.push(Rule {
                statements: vec![Statement::Lookup { fields: vec![peer_field(*direction, v6), Field::L4Proto, Field::Dport], set }, Statement::Return],
                comment: Some(comment_listing("", &sources)),
            });
        }
        for &p in policies {
            for &v6 in &families {
                let Some(o) = objects.get(&(p, *direction, v6)) else { continue };
                for (k, peers, named) in &o.named {
                    rules.push(Rule {
                        statements: vec![
                            Statement::Lookup { fields: vec![peer_field(*direction, v6)], set: peers.clone() },
                            Statement::Lookup { fields: vec![local_field(*direction, v6), Field::L4Proto, Field::Dport], set: named.clone() },
                            Statement::Return,
                        ],
                        comment: Some(bounded(format!("{} {direction}[{k}] named ports", cluster.policies[p].display_name()))),
                    });
                }
            }
        }
        if policies.is_empty() {
            // No NetworkPolicy decides: the Baseline tier, then the chain's end allows.
            tier_rules(&mut tiers, Tier::Baseline, &group.baseline, &mut rules);
        } else {
            // One rule per combination: its counter and comment say which policies denied.
            let denied = Some(comment_listing(&format!("{direction} denied: isolated by "), &names));
            rules.push(Rule { statements: vec![Statement::Counter, Statement::Goto(DENY_CHAIN.to_string())], comment: denied });
        }
        chains.push(Chain { name: chain_name.clone(), base: None, rules });
        for &i in pods {
            for &v6 in &families {
                if let Some(ip) = cluster.endpoints[i].ip_of_family(v6) {
                    maps.entry((*direction, v6)).or_default().push((ip, chain_name.clone()));
                }
            }
        }
    }

    let mut forward = vec![Rule { statements: vec![Statement::AcceptEstablished], comment: None }, Rule { statements: vec![Statement::DropInvalid], comment: None }];
    let mut vmaps = Vec::new();
    for direction in [Direction::Egress, Direction::Ingress] {
        for &v6 in &families {
            let name = format!("{}_pods_v{}", direction.as_str(), family_suffix(v6));
            let field = local_field(direction, v6);
            forward.push(Rule { statements: vec![Statement::Vmap { fields: vec![field], map: name.clone() }], comment: None });
            let mut elements = maps.remove(&(direction, v6)).unwrap_or_default();
            elements.sort();
            vmaps.push(VerdictMap::by_address(name, v6, elements));
        }
    }
    chains.extend(std::mem::take(&mut tiers.chains).into_values());
    vmaps.extend(std::mem::take(&mut tiers.maps).into_values());
    chains.push(deny_chain(state.options.deny_action));
    chains.sort_by(|a, b| a.name.cmp(&b.name));
    chains.insert(0, Chain { name: "forward".to_string(), base: Some(BaseChain { hook: Hook::Forward, priority: 0 }), rules: forward });
    let mut sets = std::mem::take(&mut renderer.sets);
    sets.sort_by(|a, b| a.name.cmp(&b.name));
    Ruleset { table: state.options.table.clone(), sets, maps: vmaps, chains }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_fit_in_nft_user_data() {
        let names: Vec<String> = (0..100).map(|i| format!("namespace-{i}/policy-{i}")).collect();
        let listing = comment_listing("ingress denied: isolated by ", &names);
        assert!(listing.len() <= COMMENT_MAX, "{}", listing.len());
        assert!(listing.starts_with("ingress denied: isolated by namespace-0/policy-0, namespace-1/policy-1"));
        assert!(listing.ends_with(" more"), "{listing}");
        assert_eq!(comment_listing("x: ", &["a/b".to_string()]), "x: a/b");
        let long = bounded("é".repeat(100));
        assert!(long.len() <= COMMENT_MAX && long.ends_with("..."));
    }
}
