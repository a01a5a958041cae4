//! Which pod atoms match which pods, remembered between renders.
//!
//! Deciding the classes asks every atom of every pod (1,339 peers over 10,000 pods took
//! 0.27-0.33 s of a 0.3-0.6 s render), and an event changes one pod or one policy. What an
//! atom asked of a pod (a selector, a ClusterNetworkPolicy peer, a named port) answers
//! depends only on the pod's *profile*: its namespace (whether the Namespace object is
//! known, and its labels), its labels, its ports and whether it is on the host network.
//! The cache keeps, per profile, the atoms that matched (by a key that outlives the
//! render's borrowed atoms), so a render evaluates only the profiles it has not seen (a pod
//! added or relabelled) and the atoms it has not asked before (a policy added or edited).
//! Replicas of a workload share a profile and are evaluated once.
//!
//! A profile is known by a 128-bit hash of what it is made of; a cached render is the same
//! as a fresh one (the property test in `tests/incremental.rs` checks it).

use std::collections::BTreeMap;
use std::hash::{BuildHasher, Hash, Hasher};

use foldhash::{HashMap, HashMapExt};
use palisade_model::cluster_policy::ClusterPeer;
use palisade_model::{Cluster, Endpoint, NamespaceScope, Peer};
use palisade_policy::flow::namespace_labels;
use palisade_policy::matching::{Remote, match_peer};
use palisade_policy::tiers::peer_matches;

use crate::classes::Atom;
use crate::ruleset::{Element, Elements, Ruleset, Verdict};

/// The atoms whose answer depends on the pod's profile only (nodes and networks match by
/// address and are not kept).
pub(crate) fn asks_pods(atom: &Atom<'_>) -> bool {
    matches!(atom, Atom::Peer(_, Peer::Pods { .. }) | Atom::Cluster(ClusterPeer::Namespaces(_) | ClusterPeer::Pods(_)) | Atom::NamedPort(..))
}

/// What a pod atom can see of a pod, hashed.
type Profile = u128;

/// Two independent 64-bit hashes (foldhash with two seeds: a tenth of SipHash's cost,
/// which at 10,000 pods per event mattered).
const SEEDS: [foldhash::quality::FixedState; 2] = [foldhash::quality::FixedState::with_seed(0x5a1f_0001), foldhash::quality::FixedState::with_seed(0x5a1f_0002)];

/// What a namespace contributes to its pods' profiles: its name, whether its Namespace
/// object is known, and its labels (hashed once per render, not once per pod).
fn namespace_part(cluster: &Cluster, namespace: &str) -> [u64; 2] {
    SEEDS.each_ref().map(|seed| seed.hash_one((namespace, cluster.namespaces.get(namespace).map(|n| &n.labels))))
}

fn profile(namespace: [u64; 2], endpoint: &Endpoint) -> Profile {
    let [a, b] = SEEDS.each_ref().map(|seed| {
        let mut h = seed.build_hasher();
        namespace.hash(&mut h);
        endpoint.labels.hash(&mut h);
        endpoint.host_network.hash(&mut h);
        for port in &endpoint.ports {
            (&port.name, port.number, port.protocol.number()).hash(&mut h);
        }
        h.finish()
    });
    (u128::from(a) << 64) | u128::from(b)
}

/// What a node's renders keep for the next: the atoms each pod profile matched, and the
/// element lists of the last table (a list that comes out the same is that one, shared,
/// not a second copy: an update holds one table plus what changed, and comparing the two
/// is instant).
#[derive(Default)]
pub struct RenderCache {
    /// The last table's sets' and maps' elements, by name.
    pub(crate) last_sets: HashMap<String, Elements<Element>>,
    pub(crate) last_maps: HashMap<String, Elements<(Element, Verdict)>>,
    /// Atoms by [`Atom::key`], numbered for as long as the cache lives.
    keys: HashMap<String, u32>,
    /// The atoms every row has been asked (those of the last render).
    asked: Vec<u32>,
    /// Per profile, `(atom number, port)` for each atom that matches it (port: the number
    /// a named port resolves to, 0 for the others).
    rows: HashMap<Profile, Vec<(u32, u16)>>,
}

impl RenderCache {
    /// How many pod profiles are remembered.
    pub fn profiles(&self) -> usize {
        self.rows.len()
    }

    /// The pod atoms (indices into `list`) that match each endpoint, with their port
    /// numbers: one list per distinct profile, and each endpoint's index into them.
    /// `pod_atoms` lists, in order, the indices of `list` that [`asks_pods`].
    pub(crate) fn matches(&mut self, cluster: &Cluster, list: &[Atom<'_>], pod_atoms: &[u32]) -> (Vec<Vec<(u32, u16)>>, Vec<usize>) {
        // Numbers that kept growing as policies come and go are reset with the rows.
        if self.keys.len() > 2 * pod_atoms.len() + 1024 {
            (self.keys, self.asked, self.rows) = Default::default();
        }
        let number: Vec<u32> = pod_atoms
            .iter()
            .map(|&i| {
                let next = self.keys.len() as u32;
                *self.keys.entry(list[i as usize].key()).or_insert(next)
            })
            .collect();
        let mut index_of: Vec<u32> = vec![u32::MAX; self.keys.len()];
        for (&i, &n) in pod_atoms.iter().zip(&number) {
            index_of[n as usize] = i;
        }
        let was_asked: Vec<bool> = {
            let mut asked = vec![false; self.keys.len()];
            self.asked.iter().for_each(|&n| asked[n as usize] = true);
            asked
        };
        let fresh: Vec<u32> = pod_atoms.iter().zip(&number).filter(|(_, n)| !was_asked[**n as usize]).map(|(&i, _)| i).collect();
        let dropped = self.asked.iter().any(|&n| index_of[n as usize] == u32::MAX);

        // Each endpoint's profile, numbered in order of first appearance; the first
        // endpoint of each stands for it.
        let mut namespaces: HashMap<&str, [u64; 2]> = HashMap::new();
        let mut number_of: HashMap<Profile, usize> = HashMap::new();
        let (mut distinct, mut first): (Vec<Profile>, Vec<usize>) = (Vec::new(), Vec::new());
        let of_endpoint: Vec<usize> = cluster
            .endpoints
            .iter()
            .enumerate()
            .map(|(e, endpoint)| {
                let p = profile(*namespaces.entry(endpoint.namespace.as_str()).or_insert_with(|| namespace_part(cluster, &endpoint.namespace)), endpoint);
                *number_of.entry(p).or_insert_with(|| {
                    distinct.push(p);
                    first.push(e);
                    distinct.len() - 1
                })
            })
            .collect();
        let (seen, unseen): (Vec<usize>, Vec<usize>) = (0..distinct.len()).partition(|&d| self.rows.contains_key(&distinct[d]));
        self.rows.retain(|p, _| number_of.contains_key(p));
        // Rows keep only the atoms still asked.
        if dropped {
            for row in self.rows.values_mut() {
                row.retain(|(n, _)| index_of[*n as usize] != u32::MAX);
            }
        }
        let renumber = |hits: Vec<(u32, u16)>| -> Vec<(u32, u16)> { hits.into_iter().map(|(i, port)| (number[pod_atoms.binary_search(&i).expect("a pod atom")], port)).collect() };
        let standing_for = |profiles: &[usize]| -> Vec<usize> { profiles.iter().map(|&d| first[d]).collect() };
        for (k, hits) in evaluate(cluster, list, pod_atoms, &standing_for(&unseen)).into_iter().enumerate() {
            self.rows.insert(distinct[unseen[k]], renumber(hits));
        }
        if !fresh.is_empty() {
            for (k, hits) in evaluate(cluster, list, &fresh, &standing_for(&seen)).into_iter().enumerate() {
                let row = self.rows.get_mut(&distinct[seen[k]]).expect("a seen profile has a row");
                row.extend(renumber(hits));
            }
        }
        self.asked = number;
        let rows = distinct.iter().map(|p| self.rows[p].iter().map(|&(n, port)| (index_of[n as usize], port)).collect()).collect();
        (rows, of_endpoint)
    }
}

/// Which of `atoms` (indices into `list`, sorted) match each of `endpoints`: one list per
/// endpoint of `(atom index, port)`. Endpoints are grouped by namespace first, so that a
/// namespace an atom's scope leaves out costs one check, not one per pod.
pub(crate) fn evaluate(cluster: &Cluster, list: &[Atom<'_>], atoms: &[u32], endpoints: &[usize]) -> Vec<Vec<(u32, u16)>> {
    let mut hits: Vec<Vec<(u32, u16)>> = vec![Vec::new(); endpoints.len()];
    let mut by_namespace: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (k, &e) in endpoints.iter().enumerate() {
        by_namespace.entry(cluster.endpoints[e].namespace.as_str()).or_default().push(k);
    }
    for &i in atoms {
        match list[i as usize] {
            Atom::Peer(namespace, peer @ Peer::Pods { namespaces, .. }) => {
                // A namespace selector scopes to the Namespace objects it selects (a pod
                // whose Namespace is unknown is in none of them).
                let in_scope = |ns: &str| match namespaces {
                    NamespaceScope::PolicyNamespace => ns == namespace,
                    NamespaceScope::Selector(selector) => cluster.namespaces.get(ns).is_some_and(|n| selector.matches(&n.labels)),
                };
                for (ns, members) in by_namespace.iter().filter(|(ns, _)| in_scope(ns)) {
                    let labels = namespace_labels(cluster, ns);
                    for &k in members {
                        let endpoint = &cluster.endpoints[endpoints[k]];
                        // The engine decides, so rules and analysis agree on who a peer is.
                        if match_peer(peer, namespace, &Remote::Pod { endpoint, namespace_labels: labels, ip: endpoint.ips.first().copied() }).is_ok() {
                            hits[k].push((i, 0));
                        }
                    }
                }
            }
            Atom::Cluster(peer @ (ClusterPeer::Namespaces(_) | ClusterPeer::Pods(_))) => {
                let namespaces = match peer {
                    ClusterPeer::Namespaces(selector) => selector,
                    ClusterPeer::Pods(pods) => &pods.namespaces,
                    _ => unreachable!(),
                };
                for (ns, members) in &by_namespace {
                    let labels = namespace_labels(cluster, ns);
                    // Most namespaces fail the namespace part: skip their pods at once.
                    if !namespaces.matches(labels) {
                        continue;
                    }
                    for &k in members {
                        let endpoint = &cluster.endpoints[endpoints[k]];
                        if peer_matches(cluster, peer, &Remote::Pod { endpoint, namespace_labels: labels, ip: endpoint.ips.first().copied() }) {
                            hits[k].push((i, 0));
                        }
                    }
                }
            }
            Atom::NamedPort(name, protocol) => {
                for (k, &e) in endpoints.iter().enumerate() {
                    if let Some(n) = cluster.endpoints[e].named_port(name, protocol) {
                        hits[k].push((i, n));
                    }
                }
            }
            _ => unreachable!("only pod atoms are evaluated per pod"),
        }
    }
    hits
}

impl RenderCache {
    /// A map's `fresh` list becomes the last table's of that name if it is the same (sets
    /// are shared as the render makes them).
    pub(crate) fn share_map(&self, name: &str, fresh: &mut Elements<(Element, Verdict)>) {
        if let Some(last) = self.last_maps.get(name).filter(|last| **last == *fresh) {
            *fresh = last.clone();
        }
    }

    /// Remembers a rendered table's lists for the next render.
    pub(crate) fn keep_lists(&mut self, ruleset: &Ruleset) {
        self.last_sets = ruleset.sets.iter().map(|s| (s.name.clone(), s.elements.clone())).collect();
        self.last_maps = ruleset.maps.iter().map(|m| (m.name.clone(), m.elements.clone())).collect();
    }
}
