//! Remote-address classes: the addresses no peer of the node's policies tells apart.
//!
//! A node's rules ask one question of the other end of a connection many times: does this
//! peer (a selector, an ipBlock, a ClusterNetworkPolicy peer) match it, and what number
//! does its named port `http` have. Two addresses every such *atom* answers alike are one
//! class. The table maps each address to its class once (`classify` chains, a hash map for
//! pod and node addresses and an interval map for the regions between ipBlock and network
//! boundaries), keeps the class in reserved packet-mark bits, and every rule looks up the
//! class, never the address: an atom's set holds the classes it matches, shared by every
//! rule of every policy that uses it. What a set holds is then bounded by the number of
//! classes, not of pods (Cilium's identities and ipcache, Calico's IP set per selector).
//!
//! Ids are stable: a render given the last one's [`ClassIds`] keeps each id for the class
//! holding most of its old addresses, and an id freed by an update is not given to another
//! class before the next one. A packet judged while a transaction commits may classify its
//! address in one generation and look up sets in the other; an id whose meaning never
//! changes in place keeps that mix to "old or new" (see ARCHITECTURE.md, "Atomicity").

use std::collections::BTreeSet;
use std::net::IpAddr;

// foldhash: std's SipHash was a tenth of an event's render (addresses, recipes and
// signatures are hashed on every render).
use foldhash::{HashMap, HashMapExt};
use palisade_model::cluster_policy::ClusterPeer;
use palisade_model::{Cluster, NamespaceScope, Peer, Protocol};
use serde::{Deserialize, Serialize};

use crate::intervals::{Range, everything, from_int, to_int};
use crate::matches::{RenderCache, asks_pods};

/// One question the node's rules ask of a remote address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Atom<'c> {
    /// A NetworkPolicy pod peer, with its policy's namespace when a lone `podSelector` makes
    /// it matter (empty otherwise, so equal peers of different namespaces are one atom).
    /// ipBlocks are no atoms: rules look them up by address.
    Peer(&'c str, &'c Peer),
    /// A ClusterNetworkPolicy peer (not `domainNames` or unknown ones: they match nothing).
    Cluster(&'c ClusterPeer),
    /// The number a remote pod gives a named port (egress rules resolve it there).
    NamedPort(&'c str, Protocol),
}

impl<'c> Atom<'c> {
    pub fn peer(policy_namespace: &'c str, peer: &'c Peer) -> Self {
        let scoped = matches!(peer, Peer::Pods { namespaces: NamespaceScope::PolicyNamespace, .. });
        Atom::Peer(if scoped { policy_namespace } else { "" }, peer)
    }

    /// A name for the atom's set that depends only on what it is.
    pub fn key(&self) -> String {
        format!("{self:?}")
    }
}

/// The atoms of one node's rules, numbered in the order they were first asked for.
#[derive(Default)]
pub(crate) struct Atoms<'c> {
    list: Vec<Atom<'c>>,
    index: HashMap<Atom<'c>, u32>,
}

impl<'c> Atoms<'c> {
    pub fn intern(&mut self, atom: Atom<'c>) -> u32 {
        if let Some(&i) = self.index.get(&atom) {
            return i;
        }
        let i = self.list.len() as u32;
        self.list.push(atom);
        self.index.insert(atom, i);
        i
    }

    pub fn get(&self, atom: &Atom<'c>) -> Option<u32> {
        self.index.get(atom).copied()
    }

    pub fn len(&self) -> usize {
        self.list.len()
    }
}

/// What the atoms say of one address: the atoms that match it (port 0) and the numbers of
/// named ports (the atom, and one entry per number the address's pods give the name).
type Signature = Vec<(u32, u16)>;

/// Class ids as one render assigned them, for the next render to keep.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClassIds {
    /// Exact (pod and node) addresses and the start of each region, with their class.
    addresses: HashMap<IpAddr, u32>,
    /// Ids given up by the last render: not given to another class before the next one.
    freed: BTreeSet<u32>,
    in_use: BTreeSet<u32>,
}

impl ClassIds {
    pub fn count(&self) -> usize {
        self.in_use.len()
    }
}

/// Too many classes for the reserved mark bits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the node's policies tell {classes} classes of remote addresses apart, more than the {capacity} ids the mark mask 0x{mask:08x} holds; widen the mask (--mark-mask)")]
pub struct TooManyClasses {
    pub classes: usize,
    pub capacity: u32,
    pub mask: u32,
}

/// Where the class sits in the packet mark.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MarkBits {
    pub mask: u32,
}

impl MarkBits {
    /// Palisade's bits by default: the upper half, as Calico reserves (kube-proxy uses
    /// 0x4000 and 0x8000).
    pub const DEFAULT_MASK: u32 = 0xffff_0000;

    pub fn new(mask: u32) -> Result<Self, String> {
        if mask == 0 {
            return Err("the mark mask must have at least one bit set".to_string());
        }
        let shifted = mask >> mask.trailing_zeros();
        if shifted & (shifted + 1) != 0 {
            return Err(format!("the mark mask 0x{mask:08x} must be one run of contiguous bits"));
        }
        Ok(Self { mask })
    }

    fn shift(self) -> u32 {
        self.mask.trailing_zeros()
    }

    /// The largest class id the bits hold.
    pub fn capacity(self) -> u32 {
        self.mask >> self.shift()
    }

    /// A class id as the mark value the rules compare.
    pub fn value(self, id: u32) -> u32 {
        id << self.shift()
    }
}

/// The classes of one render: which class each address is in, and which classes each atom
/// matches.
pub(crate) struct Classes {
    pub bits: MarkBits,
    /// Per boolean atom, the ids of the classes it matches (sorted).
    pub members: Vec<Vec<u32>>,
    /// Per named-port atom, `(class, number)` pairs (sorted).
    pub ports: Vec<Vec<(u32, u16)>>,
    /// Per family (v4, v6): exact addresses whose class differs from their region's.
    pub exact: [Vec<(IpAddr, u32)>; 2],
    /// Per family: the address space cut where any atom's ranges start or end, adjacent
    /// regions of one class merged.
    pub regions: [Vec<(Range, u32)>; 2],
    /// Every class id in use (sorted).
    pub ids: Vec<u32>,
    /// What the next render keeps.
    pub assignment: ClassIds,
}

impl Classes {
    /// The ids of the classes a boolean atom matches (none for an atom no rule asked).
    pub fn matching(&self, atoms: &Atoms<'_>, atom: &Atom<'_>) -> &[u32] {
        atoms.get(atom).map_or(&[], |i| &self.members[i as usize])
    }

    /// `(class, number)` for every class giving the named port a number.
    pub fn numbered(&self, atoms: &Atoms<'_>, name: &str, protocol: Protocol) -> &[(u32, u16)] {
        atoms.get(&Atom::NamedPort(name, protocol)).map_or(&[], |i| &self.ports[i as usize])
    }

    /// Every class id the mark can hold, as one range: "any remote address".
    pub fn everything(&self) -> Range {
        (0, u128::from(self.bits.capacity()))
    }
}

/// Distinct signatures, each with the addresses that vote for its id.
#[derive(Default)]
struct Partition<'s> {
    class_of: HashMap<&'s Signature, usize>,
    signatures: Vec<&'s Signature>,
    voters: Vec<Vec<IpAddr>>,
}

impl<'s> Partition<'s> {
    fn add(&mut self, signature: &'s Signature, ip: IpAddr) -> usize {
        self.add_all(signature, &[ip])
    }

    fn add_all(&mut self, signature: &'s Signature, ips: &[IpAddr]) -> usize {
        let next = self.signatures.len();
        let c = *self.class_of.entry(signature).or_insert(next);
        if c == next {
            self.signatures.push(signature);
            self.voters.push(Vec::new());
        }
        self.voters[c].extend_from_slice(ips);
        c
    }
}

/// What an exact address's signature is made of: its match rows, its node atoms, its
/// region (family, index).
type Recipe<'x> = (&'x [usize], &'x Signature, (usize, usize));

/// A remote address the rules may see exactly: a pod's or a node's, and what makes its
/// signature: the match rows of the pods having it (see `matches.rs`) and the node atoms
/// matching it (its region's atoms are added last). Addresses of one recipe (the replicas
/// of a workload, the pods of one profile) share one signature, computed once.
struct Exact {
    ip: IpAddr,
    rows: Vec<usize>,
    nodes: Signature,
}

/// Computes the classes `atoms` tell apart in `families` (false: IPv4, true: IPv6).
pub(crate) fn compute(cluster: &Cluster, atoms: &Atoms<'_>, families: &[bool], bits: MarkBits, previous: Option<&ClassIds>, cache: &mut RenderCache) -> Result<Classes, TooManyClasses> {
    // Exact addresses: every pod's and node's, in the families the node filters.
    let mut exact: Vec<Exact> = Vec::new();
    let mut at: HashMap<IpAddr, usize> = HashMap::new();
    let mut of_endpoint: Vec<Vec<usize>> = vec![Vec::new(); cluster.endpoints.len()];
    let mut add = |ip: IpAddr, exact: &mut Vec<Exact>| -> usize {
        *at.entry(ip).or_insert_with(|| {
            exact.push(Exact { ip, rows: Vec::new(), nodes: Vec::new() });
            exact.len() - 1
        })
    };
    for (e, endpoint) in cluster.endpoints.iter().enumerate() {
        for &ip in &endpoint.ips {
            if families.contains(&ip.is_ipv6()) {
                of_endpoint[e].push(add(ip, &mut exact));
            }
        }
    }
    for node in &cluster.nodes {
        for &ip in &node.addresses {
            if families.contains(&ip.is_ipv6()) {
                add(ip, &mut exact);
            }
        }
    }

    // What pod atoms answer, per pod: remembered between renders (see `matches.rs`).
    let pod_atoms: Vec<u32> = (0..atoms.list.len() as u32).filter(|&i| asks_pods(&atoms.list[i as usize])).collect();
    let (rows, row_of) = cache.matches(cluster, &atoms.list, &pod_atoms);
    for (e, &row) in row_of.iter().enumerate() {
        for &x in &of_endpoint[e] {
            exact[x].rows.push(row);
        }
    }
    // Atoms that match by address: node addresses, and ranges that cut the address space
    // (per family).
    let mut ranged: [Vec<(Range, u32)>; 2] = [Vec::new(), Vec::new()];
    for (i, atom) in atoms.list.iter().enumerate() {
        let i = i as u32;
        match *atom {
            Atom::Cluster(ClusterPeer::Nodes(selector)) => {
                for node in cluster.nodes.iter().filter(|n| selector.matches(&n.labels)) {
                    for ip in &node.addresses {
                        if let Some(&x) = at.get(ip) {
                            exact[x].nodes.push((i, 0));
                        }
                    }
                }
            }
            Atom::Cluster(ClusterPeer::Networks(networks)) => {
                for net in networks.iter().filter(|n| families.contains(&n.addr().is_ipv6())) {
                    ranged[usize::from(net.addr().is_ipv6())].push(((to_int(net.network()), to_int(net.broadcast())), i));
                }
            }
            // ipBlocks are looked up by address (their ranges are their sets): classes are
            // only what needs them, or every pod range a block cuts would split them.
            Atom::Peer(_, Peer::IpBlock(_)) => unreachable!("ipBlocks are matched by address, not by class"),
            _ => {}
        }
    }

    // Regions: the address space cut at every range's ends; each region's signature is the
    // ranged atoms covering it.
    let mut regions: [Vec<(Range, Signature)>; 2] = [Vec::new(), Vec::new()];
    for &v6 in families {
        let f = usize::from(v6);
        let (_, top) = everything(v6);
        let mut cuts: Vec<u128> = vec![0];
        for &((lo, hi), _) in &ranged[f] {
            cuts.push(lo);
            if hi < top {
                cuts.push(hi + 1);
            }
        }
        cuts.sort_unstable();
        cuts.dedup();
        let mut list: Vec<(Range, Signature)> = cuts.iter().enumerate().map(|(k, &lo)| ((lo, cuts.get(k + 1).map_or(top, |next| next - 1)), Vec::new())).collect();
        for &((lo, hi), atom) in &ranged[f] {
            let first = list.partition_point(|((start, _), _)| *start < lo);
            for region in list[first..].iter_mut().take_while(|((start, _), _)| *start <= hi) {
                region.1.push((atom, 0));
            }
        }
        for (_, signature) in &mut list {
            signature.sort_unstable();
            signature.dedup();
        }
        regions[f] = list;
    }
    // Each distinct recipe's signature (an exact address is also in its region's ranges).
    let mut recipe_of: HashMap<Recipe<'_>, usize> = HashMap::new();
    let mut recipes: Vec<(Signature, (usize, usize), Vec<IpAddr>)> = Vec::new();
    for x in &mut exact {
        x.rows.sort_unstable();
        x.rows.dedup();
    }
    for x in &exact {
        let f = usize::from(x.ip.is_ipv6());
        let addr = to_int(x.ip);
        let k = regions[f].partition_point(|((start, _), _)| *start <= addr) - 1;
        let r = *recipe_of.entry((&x.rows, &x.nodes, (f, k))).or_insert_with(|| {
            let mut signature: Signature = x.rows.iter().flat_map(|&row| rows[row].iter().copied()).collect();
            signature.extend_from_slice(&x.nodes);
            signature.extend_from_slice(&regions[f][k].1);
            signature.sort_unstable();
            signature.dedup();
            recipes.push((signature, (f, k), Vec::new()));
            recipes.len() - 1
        });
        recipes[r].2.push(x.ip);
    }

    // Classes: distinct signatures. Members, for keeping ids: exact addresses and region
    // starts.
    let mut partition = Partition::default();
    let mut region_class: [Vec<usize>; 2] = [Vec::new(), Vec::new()];
    for &v6 in families {
        let f = usize::from(v6);
        for ((lo, _), signature) in &regions[f] {
            region_class[f].push(partition.add(signature, from_int(*lo, v6)));
        }
    }
    // Per recipe, its class when it differs from its region's (the address then needs an
    // element of its own).
    let mut recipe_class: Vec<Option<usize>> = Vec::with_capacity(recipes.len());
    for (signature, (f, k), addresses) in &recipes {
        recipe_class.push((regions[*f][*k].1 != *signature).then(|| partition.add_all(signature, addresses)));
    }
    let Partition { signatures, voters, .. } = partition;

    let capacity = bits.capacity();
    if signatures.len() > capacity as usize {
        return Err(TooManyClasses { classes: signatures.len(), capacity, mask: bits.mask });
    }
    let ids = assign_ids(&signatures, &voters, previous);
    if let Some(&highest) = ids.iter().max()
        && highest > capacity
    {
        // Ids freed by the last render wait one render before another class takes them.
        return Err(TooManyClasses { classes: signatures.len(), capacity, mask: bits.mask });
    }

    let mut members: Vec<Vec<u32>> = vec![Vec::new(); atoms.len()];
    let mut ports: Vec<Vec<(u32, u16)>> = vec![Vec::new(); atoms.len()];
    for (c, signature) in signatures.iter().enumerate() {
        for &(atom, port) in signature.iter() {
            match atoms.list[atom as usize] {
                Atom::NamedPort(..) => ports[atom as usize].push((ids[c], port)),
                _ => members[atom as usize].push(ids[c]),
            }
        }
    }
    members.iter_mut().for_each(|m| m.sort_unstable());
    ports.iter_mut().for_each(|p| p.sort_unstable());

    let mut exact_out: [Vec<(IpAddr, u32)>; 2] = [Vec::new(), Vec::new()];
    for ((_, _, addresses), class) in recipes.iter().zip(&recipe_class) {
        if let Some(c) = class {
            for &ip in addresses {
                exact_out[usize::from(ip.is_ipv6())].push((ip, ids[*c]));
            }
        }
    }
    exact_out.iter_mut().for_each(|list| list.sort_unstable());
    let mut regions_out: [Vec<(Range, u32)>; 2] = [Vec::new(), Vec::new()];
    for f in 0..2 {
        for (((lo, hi), _), &c) in regions[f].iter().zip(&region_class[f]) {
            match regions_out[f].last_mut() {
                Some(((_, end), id)) if *id == ids[c] => *end = *hi,
                _ => regions_out[f].push(((*lo, *hi), ids[c])),
            }
        }
    }

    let in_use: BTreeSet<u32> = ids.iter().copied().collect();
    let mut addresses = HashMap::with_capacity(voters.iter().map(Vec::len).sum());
    for (c, list) in voters.iter().enumerate() {
        addresses.extend(list.iter().map(|&ip| (ip, ids[c])));
    }
    let freed = previous.map(|p| p.in_use.difference(&in_use).copied().collect()).unwrap_or_default();
    let sorted: Vec<u32> = in_use.iter().copied().collect();
    Ok(Classes { bits, members, ports, exact: exact_out, regions: regions_out, ids: sorted, assignment: ClassIds { addresses, freed, in_use } })
}

/// Ids for the classes: each keeps the id most of its addresses had (the largest classes
/// choose first), the rest get the smallest ids neither in use nor freed by the last render.
fn assign_ids(signatures: &[&Signature], voters: &[Vec<IpAddr>], previous: Option<&ClassIds>) -> Vec<u32> {
    let mut order: Vec<usize> = (0..signatures.len()).collect();
    order.sort_by(|&a, &b| voters[b].len().cmp(&voters[a].len()).then_with(|| signatures[a].cmp(signatures[b])));
    let mut ids = vec![0u32; signatures.len()];
    // Ids are small (under the mark's capacity): a flag per id, not a search tree.
    let mut taken: Vec<bool> = Vec::new();
    let is_taken = |taken: &[bool], id: u32| taken.get(id as usize).copied().unwrap_or(false);
    let take = |taken: &mut Vec<bool>, id: u32| {
        if taken.len() <= id as usize {
            taken.resize(id as usize + 1, false);
        }
        taken[id as usize] = true;
    };
    let mut unassigned = Vec::new();
    // One list reused for every class's votes (most classes have a voter or two; a hash
    // map per class was 10,000 allocations per render on the per-pod cluster).
    let mut votes: Vec<u32> = Vec::new();
    for &c in &order {
        let kept = previous.and_then(|p| {
            votes.clear();
            votes.extend(voters[c].iter().filter_map(|ip| p.addresses.get(ip).copied()));
            votes.sort_unstable();
            // (id, count), most votes first, then the smallest id.
            let mut ranked: Vec<(u32, usize)> = votes.chunk_by(|a, b| a == b).map(|run| (run[0], run.len())).collect();
            ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            ranked.into_iter().map(|(id, _)| id).find(|&id| !is_taken(&taken, id))
        });
        match kept {
            Some(id) => {
                ids[c] = id;
                take(&mut taken, id);
            }
            None => unassigned.push(c),
        }
    }
    // Fresh ids in signature order: deterministic whatever the input order, and classes
    // matched by the same first atoms (often one namespace's) get neighbouring ids, which
    // tier maps keep as ranges. (Address order was tried: more elements on both CNP
    // generators, 27k -> 48k and 6.5M -> 11.5M on node-1.)
    unassigned.sort_by(|&a, &b| signatures[a].cmp(signatures[b]));
    let quarantined = |id: &u32| previous.is_some_and(|p| p.freed.contains(id) || p.in_use.contains(id));
    let mut next = 1u32;
    for c in unassigned {
        while is_taken(&taken, next) || quarantined(&next) {
            next += 1;
        }
        ids[c] = next;
        take(&mut taken, next);
    }
    ids
}

/// The yardstick for any table that lists members: over the distinct pod peers of
/// every NetworkPolicy in the cluster, the classes each matches, summed (a table sharing one
/// set per peer over classes holds that many elements for them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClassBound {
    /// Distinct pod peers (selector pairs with their namespace scope).
    pub selectors: usize,
    /// Pod addresses the peers match, summed over peers (what sets of addresses would hold).
    pub addresses: usize,
    /// Classes of pod addresses those peers tell apart.
    pub classes: usize,
    /// Classes each peer matches, summed over peers.
    pub bound: usize,
}

/// [`ClassBound`] for a cluster, in every address family.
pub fn class_bound(cluster: &Cluster) -> ClassBound {
    let mut atoms = Atoms::default();
    for policy in &cluster.policies {
        for rules in [policy.ingress.as_deref(), policy.egress.as_deref()].into_iter().flatten() {
            for peer in rules.iter().flat_map(|r| &r.peers).filter(|p| matches!(p, Peer::Pods { .. })) {
                atoms.intern(Atom::peer(&policy.namespace, peer));
            }
        }
    }
    // Every pod its own class can be more than a mark holds; this is arithmetic only.
    let classes = compute(cluster, &atoms, &[false, true], MarkBits { mask: u32::MAX }, None, &mut RenderCache::default()).expect("a full mask holds every class");
    let mut per_class: HashMap<u32, usize> = HashMap::new();
    for list in &classes.exact {
        for (_, id) in list {
            *per_class.entry(*id).or_default() += 1;
        }
    }
    let addresses = classes.members.iter().map(|m| m.iter().map(|id| per_class.get(id).copied().unwrap_or_default()).sum::<usize>()).sum();
    ClassBound { selectors: atoms.len(), addresses, classes: per_class.len(), bound: classes.members.iter().map(Vec::len).sum() }
}

#[cfg(test)]
mod tests;
