//! Desired node state -> the whole `inet palisade` table. Pure: the same state (and the
//! same class ids from the last render) always gives the same ruleset, and nothing here
//! reads the kernel.
//!
//! Layout (see ARCHITECTURE.md, "Packet flow"):
//! - `forward` (base chain): established and related connections pass, invalid ones drop;
//!   new ones are dispatched through verdict maps keyed by local pod address: the source's
//!   egress chain, then the destination's ingress chain. Pods no policy isolates in a
//!   direction are not in that direction's map. The mark bits Palisade used are cleared
//!   before the packet leaves `forward`.
//! - One chain per distinct combination of what decides a local pod's direction (its
//!   isolating NetworkPolicies, the ClusterNetworkPolicies of each tier selecting it, the
//!   numbers it gives their ingress named ports). It first classifies the remote address
//!   (`jump classify_src|dst`: the class goes into the reserved mark bits, see
//!   `classes.rs`), then asks, per rule and peer, whether the class is in the peer's set
//!   and the protocol and port in the rule's: `meta mark & M == @peer_x meta l4proto . th
//!   dport @svc_y return`. A peer's set is shared by every rule that names it, in every
//!   chain; it holds classes, not addresses, so its size does not grow with the pods a
//!   selector matches but with the classes they fall in. The chain ends in the deny verdict.
//! - Peers are decided by the engine's `match_peer`, so the rules and the analysis CLI can
//!   never disagree on who a selector means.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use foldhash::HashMap;
use palisade_model::cluster_policy::{ClusterPeer, ClusterProtocol, Tier};
use palisade_model::{Cluster, Direction, Peer, PortSpec, Protocol};

use crate::classes::{self, Atom, Atoms, ClassIds, Classes, MarkBits, TooManyClasses};
use crate::cluster_tiers::Tiers;
use crate::disjoint::{Box3, EVERY_SERVICE, disjoint};
use crate::intervals::{Range, block_ranges, from_int};
use crate::matches::RenderCache;
use crate::ruleset::{BaseChain, Chain, Element, Elements, Field, Hook, KeyType, Rule, Ruleset, Set, Statement, Value, Verdict, VerdictMap};

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
    /// The packet-mark bits Palisade owns (one run of contiguous bits): a remote address's
    /// class lives there between the lookups of one chain. Others' bits are never changed.
    pub mark_mask: u32,
    /// The most set and map elements the table may hold (`None`: no limit). A table that
    /// would hold more is not built to the end: the render stops as soon as it knows, with
    /// [`RenderError::OverBudget`], and the node keeps its last table (an agent must not
    /// grow past its memory limit and be killed, which would fail pods' CNI ADD).
    pub max_elements: Option<usize>,
}

impl Default for RenderOptions {
    fn default() -> Self {
        Self { table: "palisade".to_string(), deny_action: DenyAction::Reject, mark_mask: MarkBits::DEFAULT_MASK, max_elements: None }
    }
}

/// Everything one node enforces: the cluster as the engine sees it, and which endpoints
/// run on this node (indices into `Cluster::endpoints`).
pub struct NodeState<'c> {
    pub cluster: &'c Cluster,
    pub local: Vec<usize>,
    pub options: RenderOptions,
}

/// Why a node's table cannot be rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    #[error(transparent)]
    TooManyClasses(#[from] TooManyClasses),
    #[error("invalid mark mask: {0}")]
    MarkMask(String),
    #[error("this node's table would hold more than {budget} set and map elements (at least {elements}; raise --max-table-elements, and the agent's memory limit with it)")]
    OverBudget { elements: usize, budget: usize },
}

impl RenderError {
    /// A short label for metrics and Events.
    pub fn reason(&self) -> &'static str {
        match self {
            RenderError::TooManyClasses(_) => "too_many_classes",
            RenderError::MarkMask(_) => "mark_mask",
            RenderError::OverBudget { .. } => "over_budget",
        }
    }
}

/// Fails as soon as `elements` passes the budget.
fn within_budget(options: &RenderOptions, elements: usize) -> Result<(), RenderError> {
    match options.max_elements {
        Some(budget) if elements > budget => Err(RenderError::OverBudget { elements, budget }),
        _ => Ok(()),
    }
}

/// A rendered table and the class ids it used (give them to the next render).
pub struct NodeTable {
    pub ruleset: Ruleset,
    pub classes: ClassIds,
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

/// The packet field holding the local pod for a direction.
fn local_field(direction: Direction, v6: bool) -> Field {
    match (direction, v6) {
        (Direction::Egress, false) => Field::Saddr4,
        (Direction::Egress, true) => Field::Saddr6,
        (Direction::Ingress, false) => Field::Daddr4,
        (Direction::Ingress, true) => Field::Daddr6,
    }
}

pub(crate) fn fnv(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// The first `max` characters of a name, those nft does not take in object names as `_`.
pub(crate) fn nft_safe(name: &str, max: usize) -> String {
    name.chars().take(max).map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect()
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

/// What decides one direction of a local pod: the NetworkPolicies isolating it, the
/// ClusterNetworkPolicies of each tier selecting it, and the numbers it gives the ingress
/// named ports of both (pods that resolve them alike share a chain).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Group {
    isolating: Vec<usize>,
    admin: Vec<usize>,
    baseline: Vec<usize>,
    signature: Vec<Option<u16>>,
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

/// The chain that puts the class of the remote end (the source for ingress, the
/// destination for egress) into the mark.
fn classify_chain(direction: Direction) -> &'static str {
    match direction {
        Direction::Ingress => "classify_src",
        Direction::Egress => "classify_dst",
    }
}

fn class_chain(id: u32) -> String {
    format!("cls_{id}")
}

/// Ingress named ports resolved on the local pod: `(name, protocol)` of every ingress rule
/// of the isolating policies, in order.
fn ingress_named(cluster: &Cluster, isolating: &[usize]) -> Vec<(String, Protocol)> {
    let mut out = Vec::new();
    for &p in isolating {
        for rule in cluster.policies[p].rules(Direction::Ingress).unwrap_or_default() {
            for entry in &rule.ports {
                if let PortSpec::Named(name) = &entry.port {
                    out.push((name.clone(), entry.protocol));
                }
            }
        }
    }
    out
}

/// Renders the table for one node, numbering classes afresh (see [`try_render`]).
///
/// # Panics
/// If the node's policies tell more classes apart than the mark mask holds; callers with
/// untrusted input use [`try_render`].
pub fn render(state: &NodeState<'_>) -> Ruleset {
    try_render(state, None).expect("a table whose classes fit the mark mask").ruleset
}

/// Renders the table for one node. `previous` (the ids the last render returned) keeps
/// each class's id where its addresses stay, so an update changes only what moved.
pub fn try_render(state: &NodeState<'_>, previous: Option<&ClassIds>) -> Result<NodeTable, RenderError> {
    try_render_cached(state, previous, &mut RenderCache::default())
}

/// [`try_render`], asking only what `cache` (kept from the last renders of this node)
/// does not know yet: the same table, at the cost of what changed.
pub fn try_render_cached(state: &NodeState<'_>, previous: Option<&ClassIds>, cache: &mut RenderCache) -> Result<NodeTable, RenderError> {
    let cluster = state.cluster;
    let bits = MarkBits::new(state.options.mark_mask).map_err(RenderError::MarkMask)?;
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

    // What decides each local pod's traffic, per direction: the pods deciding alike share
    // a chain.
    let mut combos: BTreeMap<(Direction, Group), Vec<usize>> = BTreeMap::new();
    {
        let tiers = crate::cluster_tiers::Selection::new(cluster);
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
                let mut signature = tiers.signature(&named, direction, endpoint);
                if direction == Direction::Ingress {
                    signature.extend(ingress_named(cluster, &isolating).iter().map(|(name, protocol)| endpoint.named_port(name, *protocol)));
                }
                combos.entry((direction, Group { isolating, admin, baseline, signature })).or_default().push(i);
            }
        }
    }

    // The atoms every rule of those combinations asks of a remote address.
    let mut atoms = Atoms::default();
    let mut used: BTreeSet<(usize, Direction)> = BTreeSet::new();
    let mut used_cluster: BTreeSet<(usize, Direction)> = BTreeSet::new();
    for (direction, group) in combos.keys() {
        used.extend(group.isolating.iter().map(|&p| (p, *direction)));
        used_cluster.extend(group.admin.iter().chain(&group.baseline).map(|&p| (p, *direction)));
    }
    for &(p, direction) in &used {
        let policy = &cluster.policies[p];
        for rule in policy.rules(direction).unwrap_or_default() {
            for peer in rule.peers.iter().filter(|peer| matches!(peer, Peer::Pods { .. })) {
                atoms.intern(Atom::peer(&policy.namespace, peer));
            }
            if direction == Direction::Egress {
                for entry in &rule.ports {
                    if let PortSpec::Named(name) = &entry.port {
                        atoms.intern(Atom::NamedPort(name, entry.protocol));
                    }
                }
            }
        }
    }
    for &(p, direction) in &used_cluster {
        for rule in cluster.cluster_policies[p].rules(direction) {
            for peer in rule.peers.iter().filter(|peer| !matches!(peer, ClusterPeer::DomainNames(_) | ClusterPeer::Unknown)) {
                atoms.intern(Atom::Cluster(peer));
            }
            if direction == Direction::Egress {
                for entry in rule.protocols.iter().flatten() {
                    if let ClusterProtocol::NamedPort(name) = entry {
                        for protocol in [Protocol::Tcp, Protocol::Udp, Protocol::Sctp] {
                            atoms.intern(Atom::NamedPort(name, protocol));
                        }
                    }
                }
            }
        }
    }
    let classes = if combos.is_empty() { None } else { Some(classes::compute(cluster, &atoms, &families, bits, previous, cache)?) };
    // Elements so far: the address -> class maps, then each combination's sets and maps.
    let classified = classes.as_ref().map_or(0, |c| c.exact.iter().map(Vec::len).sum::<usize>() + c.regions.iter().map(Vec::len).sum::<usize>());
    within_budget(&state.options, classified)?;

    let mut out = Objects { last_sets: std::mem::take(&mut cache.last_sets), ..Objects::default() };
    let mut chains: Vec<Chain> = Vec::new();
    let mut dispatch: BTreeMap<(Direction, bool), Vec<(IpAddr, String)>> = BTreeMap::new();
    let mut dispatched = 0;
    let mut tiers = classes.as_ref().map(|classes| Tiers::new(cluster, &atoms, classes, DENY_CHAIN));
    for ((direction, group), pods) in &combos {
        let classes = classes.as_ref().expect("classes exist when a combination does");
        let tiers = tiers.as_mut().expect("tiers exist when a combination does");
        let policies = &group.isolating;
        let names: Vec<String> = policies.iter().map(|&p| cluster.policies[p].display_name()).collect();
        let cnp = |list: &[usize]| list.iter().map(|&p| cluster.cluster_policies[p].name.as_str()).collect::<Vec<_>>().join(",");
        let key = format!("{}|{}|{}|{:?}", names.join(","), cnp(&group.admin), cnp(&group.baseline), group.signature);
        let chain_name = format!("{}_{:012x}", dir_tag(*direction), fnv(&key) & 0xffff_ffff_ffff);
        let mut rules = vec![Rule { statements: vec![Statement::Jump(classify_chain(*direction).to_string())], comment: None }];
        // Pods in a group resolve named ports alike: any of them stands for all.
        let subject = &cluster.endpoints[pods[0]];
        let tier_rules = |tiers: &mut Tiers<'_, '_>, tier: Tier, members: &[usize], rules: &mut Vec<Rule>| {
            let maps = tiers.map(tier, members, *direction, subject, &group.signature);
            let listed: Vec<String> = members.iter().map(|&p| cluster.cluster_policies[p].name.clone()).collect();
            let comment = Some(comment_listing(&format!("{} tier: ", tier.as_str()), &listed));
            let key = vec![Field::Mark(classes.bits.mask), Field::L4Proto, Field::Dport];
            if let Some(map) = maps.by_port.clone() {
                rules.push(Rule { statements: vec![Statement::Vmap { fields: key.clone(), map }], comment: comment.clone() });
            }
            if let Some(map) = maps.by_address {
                let mut statements = Vec::new();
                if let (Some(first), true) = (&maps.by_port, maps.passes_on) {
                    statements.push(Statement::Absent { fields: key, map: first.clone() });
                }
                statements.push(Statement::Vmap { fields: vec![Field::Mark(classes.bits.mask)], map });
                rules.push(Rule { statements, comment });
            }
        };
        tier_rules(tiers, Tier::Admin, &group.admin, &mut rules);
        let mut seen: BTreeSet<Vec<Statement>> = BTreeSet::new();
        for &p in policies {
            for rule in out.policy_rules(cluster, &atoms, classes, &families, p, *direction, subject) {
                if seen.insert(rule.statements.clone()) {
                    rules.push(rule);
                }
            }
        }
        if policies.is_empty() {
            // No NetworkPolicy decides: the Baseline tier, then the chain's end allows.
            tier_rules(tiers, Tier::Baseline, &group.baseline, &mut rules);
        } else {
            // One rule per combination: its counter and comment say which policies denied.
            let denied = Some(comment_listing(&format!("{direction} denied: isolated by "), &names));
            rules.push(Rule { statements: vec![Statement::Counter, Statement::Goto(DENY_CHAIN.to_string())], comment: denied });
        }
        chains.push(Chain { name: chain_name.clone(), base: None, rules });
        within_budget(&state.options, classified + out.elements + tiers.elements + dispatched)?;
        for &i in pods {
            for &v6 in &families {
                if let Some(ip) = cluster.endpoints[i].ip_of_family(v6) {
                    dispatch.entry((*direction, v6)).or_default().push((ip, chain_name.clone()));
                    dispatched += 1;
                }
            }
        }
    }

    let mut forward = vec![Rule { statements: vec![Statement::AcceptEstablished], comment: None }, Rule { statements: vec![Statement::DropInvalid], comment: None }];
    let mut maps = Vec::new();
    for direction in [Direction::Egress, Direction::Ingress] {
        for &v6 in &families {
            let name = format!("{}_pods_v{}", direction.as_str(), family_suffix(v6));
            forward.push(Rule { statements: vec![Statement::Vmap { fields: vec![local_field(direction, v6)], map: name.clone() }], comment: None });
            let mut elements = dispatch.remove(&(direction, v6)).unwrap_or_default();
            elements.sort();
            maps.push(VerdictMap::by_address(name, v6, elements));
        }
    }
    if let Some(tiers) = tiers.as_mut() {
        chains.extend(std::mem::take(&mut tiers.chains).into_values());
        maps.extend(std::mem::take(&mut tiers.maps).into_values());
    }
    let mut sets = std::mem::take(&mut out.sets).into_values().collect::<Vec<_>>();
    let assignment = match &classes {
        Some(classes) => {
            let directions: BTreeSet<Direction> = combos.keys().map(|(direction, _)| *direction).collect();
            classify_objects(classes, &families, &directions, &mut chains, &mut maps);
            // The class bits mean nothing past this table: leave the mark as it came.
            forward.push(Rule { statements: vec![Statement::SetMark { mask: classes.bits.mask, value: 0 }], comment: None });
            classes.assignment.clone()
        }
        None => previous.cloned().unwrap_or_default(),
    };
    chains.push(deny_chain(state.options.deny_action));
    chains.sort_by(|a, b| a.name.cmp(&b.name));
    chains.insert(0, Chain { name: "forward".to_string(), base: Some(BaseChain { hook: Hook::Forward, priority: 0 }), rules: forward });
    sets.sort_by(|a, b| a.name.cmp(&b.name));
    maps.sort_by(|a, b| a.name.cmp(&b.name));
    for map in &mut maps {
        cache.share_map(&map.name, &mut map.elements);
    }
    let ruleset = Ruleset { table: state.options.table.clone(), sets, maps, chains };
    within_budget(&state.options, ruleset.element_count())?;
    cache.keep_lists(&ruleset);
    Ok(NodeTable { ruleset, classes: assignment })
}

/// The classify chains, the maps from addresses to classes, and a chain per class setting
/// its bits.
fn classify_objects(classes: &Classes, families: &[bool], directions: &BTreeSet<Direction>, chains: &mut Vec<Chain>, maps: &mut Vec<VerdictMap>) {
    for &direction in directions {
        let chain = classify_chain(direction);
        let (v4, v6) = (remote_field(direction, false), remote_field(direction, true));
        let mut rules = Vec::new();
        for &v6_family in families {
            let f = usize::from(v6_family);
            let field = if v6_family { v6 } else { v4 };
            // Exact addresses first (a hash lookup); a hit `goto`s its class chain, whose end
            // returns past this chain, so the region lookup runs only for the others.
            if !classes.exact[f].is_empty() {
                rules.push(Rule { statements: vec![Statement::Vmap { fields: vec![field], map: format!("class_addr_v{}", family_suffix(v6_family)) }], comment: None });
            }
            rules.push(Rule { statements: vec![Statement::Vmap { fields: vec![field], map: format!("class_net_v{}", family_suffix(v6_family)) }], comment: None });
        }
        chains.push(Chain { name: chain.to_string(), base: None, rules });
    }
    for &v6 in families {
        let f = usize::from(v6);
        let key = vec![if v6 { KeyType::Ipv6 } else { KeyType::Ipv4 }];
        if !classes.exact[f].is_empty() {
            let elements = classes.exact[f].iter().map(|&(ip, id)| (smallvec::smallvec![Value::Addr(ip, ip)], Verdict::Goto(class_chain(id)))).collect();
            maps.push(VerdictMap { name: format!("class_addr_v{}", family_suffix(v6)), key: key.clone(), interval: false, elements });
        }
        let elements = classes.regions[f].iter().map(|&((lo, hi), id)| (smallvec::smallvec![Value::Addr(from_int(lo, v6), from_int(hi, v6))], Verdict::Goto(class_chain(id)))).collect();
        maps.push(VerdictMap { name: format!("class_net_v{}", family_suffix(v6)), key, interval: true, elements });
    }
    for &id in &classes.ids {
        chains.push(Chain { name: class_chain(id), base: None, rules: vec![Rule { statements: vec![Statement::SetMark { mask: classes.bits.mask, value: classes.bits.value(id) }], comment: None }] });
    }
}

/// A policy, a direction, and the numbers a chain's pods give the policy's ingress named
/// ports, in order.
type PolicyRulesKey = (usize, Direction, Vec<Option<u16>>);

/// The shared sets rules look up, by name.
#[derive(Default)]
struct Objects<'c> {
    sets: BTreeMap<String, Set>,
    /// The last render's set lists: an unchanged one is shared as it is made.
    last_sets: HashMap<String, Elements<Element>>,
    /// Each atom's set name once decided (`None`: it matches no class): every chain of a
    /// policy asks again, and naming an atom formats it.
    peer_names: HashMap<Atom<'c>, Option<String>>,
    /// Named-port sets by their sorted names (`None`: no class gives them a number).
    named_names: HashMap<Vec<(&'c str, Protocol)>, Option<String>>,
    /// Service sets by their cells.
    service_names: HashMap<Vec<(u8, u8, u16, u16)>, String>,
    /// A policy's rules in one direction, by what the chain's pods give its ingress named
    /// ports (the only thing they depend on): a policy isolating pods of many
    /// combinations is rendered once per distinct answer, not once per chain.
    policy_rules: HashMap<PolicyRulesKey, Vec<Rule>>,
    /// Elements in `sets`.
    elements: usize,
}

impl<'c> Objects<'c> {
    /// Adds the set `make` builds unless one of that name exists.
    /// A list that comes out as the last render's is that one, shared (see `RenderCache`).
    fn insert_set(&mut self, name: &str, make: impl FnOnce() -> Set) {
        if !self.sets.contains_key(name) {
            let mut set = make();
            if let Some(last) = self.last_sets.get(name).filter(|last| **last == set.elements) {
                set.elements = last.clone();
            }
            self.elements += set.elements.len();
            self.sets.insert(name.to_string(), set);
        }
    }

    /// The set of classes an atom matches (`None`: it matches none).
    fn peer_set(&mut self, classes: &Classes, atoms: &Atoms<'_>, atom: Atom<'c>) -> Option<String> {
        if let Some(known) = self.peer_names.get(&atom) {
            return known.clone();
        }
        let members = classes.matching(atoms, &atom);
        let name = (!members.is_empty()).then(|| format!("peer_{:012x}", fnv(&atom.key()) & 0xffff_ffff_ffff));
        if let Some(name) = &name {
            self.insert_set(name, || Set {
                name: name.clone(),
                key: vec![KeyType::Mark],
                interval: false,
                elements: members.iter().map(|&id| smallvec::smallvec![Value::Mark(classes.bits.value(id), classes.bits.value(id))]).collect(),
            });
        }
        self.peer_names.insert(atom, name.clone());
        name
    }

    /// The set of (protocol, port range) cells a rule's numeric ports admit.
    fn service_set(&mut self, cells: &[(u8, u8, u16, u16)]) -> String {
        if let Some(known) = self.service_names.get(cells) {
            return known.clone();
        }
        let boxes: Vec<Box3> = cells.iter().map(|&(p0, p1, lo, hi)| Box3 { addr: (0, 0), proto: (p0, p1), port: (lo, hi) }).collect();
        let elements: Vec<_> = disjoint(boxes).into_iter().map(|b| smallvec::smallvec![Value::Proto(b.proto.0, b.proto.1), Value::Port(b.port.0, b.port.1)]).collect();
        let name = format!("svc_{:012x}", fnv(&format!("{elements:?}")) & 0xffff_ffff_ffff);
        self.insert_set(&name, || Set { name: name.clone(), key: vec![KeyType::Proto, KeyType::Service], interval: true, elements: elements.into() });
        self.service_names.insert(cells.to_vec(), name.clone());
        name
    }

    /// `(class, protocol, number)` for every class that gives one of `named` a number:
    /// egress named ports, resolved on the destination. Shared by every rule naming the
    /// same ports, whatever its peers (their own lookup comes first in the rule).
    fn named_set(&mut self, classes: &Classes, atoms: &Atoms<'_>, named: &[(&'c str, Protocol)]) -> Option<String> {
        let mut key: Vec<(&'c str, Protocol)> = named.to_vec();
        key.sort();
        key.dedup();
        if let Some(known) = self.named_names.get(&key) {
            return known.clone();
        }
        let mut elements: BTreeSet<(u32, u8, u16)> = BTreeSet::new();
        for &(name, protocol) in &key {
            elements.extend(classes.numbered(atoms, name, protocol).iter().map(|&(id, port)| (id, protocol.number(), port)));
        }
        let name = (!elements.is_empty()).then(|| format!("named_{:012x}", fnv(&format!("{key:?}")) & 0xffff_ffff_ffff));
        if let Some(name) = &name {
            self.insert_set(name, || Set {
                name: name.clone(),
                key: vec![KeyType::Mark, KeyType::Proto, KeyType::Service],
                interval: false,
                elements: elements.into_iter().map(|(id, p, n)| smallvec::smallvec![Value::Mark(classes.bits.value(id), classes.bits.value(id)), Value::Proto(p, p), Value::Port(n, n)]).collect(),
            });
        }
        self.named_names.insert(key, name.clone());
        name
    }

    /// An ipBlock's addresses in one family, as an interval set looked up by address
    /// (`None`: none in that family).
    fn block_set(&mut self, block: &palisade_model::IpBlock, v6: bool) -> Option<String> {
        let ranges = block_ranges(block, v6);
        if ranges.is_empty() {
            return None;
        }
        let name = format!("block_{:012x}_{}", fnv(&format!("{block:?}")) & 0xffff_ffff_ffff, family_suffix(v6));
        self.insert_set(&name, || Set {
            name: name.clone(),
            key: vec![if v6 { KeyType::Ipv6 } else { KeyType::Ipv4 }],
            interval: true,
            elements: ranges.into_iter().map(|(lo, hi)| smallvec::smallvec![Value::Addr(from_int(lo, v6), from_int(hi, v6))]).collect(),
        });
        Some(name)
    }

    /// The rules of one policy in one direction for a chain whose pods resolve ingress named
    /// ports like `subject`: per rule and peer, the peer's lookup (its class set, or its
    /// addresses for an ipBlock) and the service lookup.
    #[allow(clippy::too_many_arguments)]
    fn policy_rules(&mut self, cluster: &'c Cluster, atoms: &Atoms<'_>, classes: &Classes, families: &[bool], p: usize, direction: Direction, subject: &palisade_model::Endpoint) -> Vec<Rule> {
        let policy = &cluster.policies[p];
        let rules = policy.rules(direction).unwrap_or_default();
        let named_ingress = rules.iter().flat_map(|r| &r.ports).filter_map(|entry| match &entry.port {
            PortSpec::Named(name) if direction == Direction::Ingress => Some(subject.named_port(name, entry.protocol)),
            _ => None,
        });
        let key = (p, direction, named_ingress.collect());
        if let Some(known) = self.policy_rules.get(&key) {
            return known.clone();
        }
        let out = self.render_policy_rules(cluster, atoms, classes, families, p, direction, subject);
        self.policy_rules.insert(key, out.clone());
        out
    }

    #[allow(clippy::too_many_arguments)]
    fn render_policy_rules(&mut self, cluster: &'c Cluster, atoms: &Atoms<'_>, classes: &Classes, families: &[bool], p: usize, direction: Direction, subject: &palisade_model::Endpoint) -> Vec<Rule> {
        let policy = &cluster.policies[p];
        let mark = Field::Mark(classes.bits.mask);
        let mut out = Vec::new();
        for (k, rule) in policy.rules(direction).unwrap_or_default().iter().enumerate() {
            let comment = Some(bounded(format!("{} {direction}[{k}]", policy.display_name())));
            let named_comment = Some(bounded(format!("{} {direction}[{k}] named ports", policy.display_name())));
            let mut cells: Vec<(u8, u8, u16, u16)> = Vec::new();
            let mut named: Vec<(&'c str, Protocol)> = Vec::new();
            for entry in &rule.ports {
                let p = entry.protocol.number();
                match &entry.port {
                    PortSpec::Any => cells.push((p, p, 0, 65535)),
                    PortSpec::Number(n) => cells.push((p, p, *n, *n)),
                    PortSpec::Range(lo, hi) => cells.push((p, p, *lo, *hi)),
                    // Ingress: the destination is the local pod; the chain's pods agree on it.
                    PortSpec::Named(name) if direction == Direction::Ingress => {
                        if let Some(n) = subject.named_port(name, entry.protocol) {
                            cells.push((p, p, n, n));
                        }
                    }
                    PortSpec::Named(name) => named.push((name, entry.protocol)),
                }
            }
            if rule.ports.is_empty() {
                let ((p0, p1), (lo, hi)) = EVERY_SERVICE;
                cells.push((p0, p1, lo, hi));
            }
            let service = (!cells.is_empty() && !rule.ports.is_empty()).then(|| self.service_set(&cells));
            // What each peer asks first: its class set, or its addresses in one family.
            let mut lookups: Vec<Option<Statement>> = Vec::new();
            if rule.peers.is_empty() {
                lookups.push(None);
            }
            for peer in &rule.peers {
                match peer {
                    Peer::Pods { .. } => {
                        if let Some(set) = self.peer_set(classes, atoms, Atom::peer(&policy.namespace, peer)) {
                            lookups.push(Some(Statement::Lookup { fields: vec![mark], set }));
                        }
                    }
                    Peer::IpBlock(block) => {
                        for &v6 in families {
                            if let Some(set) = self.block_set(block, v6) {
                                lookups.push(Some(Statement::Lookup { fields: vec![remote_field(direction, v6)], set }));
                            }
                        }
                    }
                }
            }
            let named_set = if named.is_empty() { None } else { self.named_set(classes, atoms, &named) };
            for first in lookups {
                if !cells.is_empty() {
                    let mut statements: Vec<Statement> = first.iter().cloned().collect();
                    if let Some(set) = &service {
                        statements.push(Statement::Lookup { fields: vec![Field::L4Proto, Field::Dport], set: set.clone() });
                    }
                    statements.push(Statement::Return);
                    out.push(Rule { statements, comment: comment.clone() });
                }
                // The peer decides who, the named set which number that class gives the name.
                if let Some(set) = &named_set {
                    let mut statements: Vec<Statement> = first.into_iter().collect();
                    statements.push(Statement::Lookup { fields: vec![mark, Field::L4Proto, Field::Dport], set: set.clone() });
                    statements.push(Statement::Return);
                    out.push(Rule { statements, comment: named_comment.clone() });
                }
            }
        }
        out
    }
}

/// The packet field holding the remote end for a direction.
fn remote_field(direction: Direction, v6: bool) -> Field {
    local_field(if direction == Direction::Ingress { Direction::Egress } else { Direction::Ingress }, v6)
}

/// Class id ranges as mark values.
pub(crate) fn mark_value(bits: MarkBits, (lo, hi): Range) -> Value {
    Value::Mark(bits.value(lo as u32), bits.value(hi as u32))
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
