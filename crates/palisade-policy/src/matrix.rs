//! Reachability matrices: every ordered pair of distinct endpoints on each port, and the
//! compact summary over equivalence classes that keeps a large cluster readable.

use std::collections::{BTreeMap, HashMap};

use palisade_model::{Cluster, ContainerPort, Endpoint, Labels, Protocol};
use serde::Serialize;

use crate::analysis::{Analysis, PortSets};
use crate::family::Families;

/// A port given by number or by name (a name resolves on each destination).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PortRef {
    Number(u16),
    Name(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortQuery {
    pub port: PortRef,
    pub protocol: Protocol,
}

/// Which ports each destination is probed on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PortSelection {
    /// The container ports the destination declares (only these protocols, if any given).
    Declared { protocols: Vec<Protocol> },
    /// The same ports for every destination; names resolve per destination and
    /// destinations without the name are left out.
    Explicit(Vec<PortQuery>),
}

impl PortSelection {
    /// The concrete ports a destination is probed on, sorted and distinct.
    pub fn ports_for(&self, destination: &Endpoint) -> Vec<(u16, Protocol)> {
        let mut ports: Vec<(u16, Protocol)> = match self {
            PortSelection::Declared { protocols } => destination.ports.iter().filter(|p| protocols.is_empty() || protocols.contains(&p.protocol)).map(|p| (p.number, p.protocol)).collect(),
            PortSelection::Explicit(queries) => queries
                .iter()
                .filter_map(|q| match &q.port {
                    PortRef::Number(n) => Some((*n, q.protocol)),
                    PortRef::Name(name) => destination.named_port(name, q.protocol).map(|n| (n, q.protocol)),
                })
                .collect(),
        };
        ports.sort();
        ports.dedup();
        ports
    }
}

/// One probe of the matrix.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Entry {
    /// Indices into `Cluster::endpoints`.
    pub from: usize,
    pub to: usize,
    pub port: u16,
    pub protocol: Protocol,
    pub allowed: bool,
    /// The families this answer holds in: every family the pair has in common when they all
    /// agree, else one entry per family.
    pub families: Families,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Matrix {
    /// Endpoint indices in display order (namespace, name).
    pub endpoints: Vec<usize>,
    /// Ordered by source, destination (in display order), port, protocol, family.
    pub entries: Vec<Entry>,
    /// The families judged.
    pub families: Families,
    /// Ordered pairs of distinct endpoints left out: they have no judged family in common,
    /// so no packet can go between them.
    pub without_common_family: u64,
}

/// Endpoint indices sorted by namespace and name.
pub fn display_order(cluster: &Cluster) -> Vec<usize> {
    let mut order: Vec<usize> = (0..cluster.endpoints.len()).collect();
    order.sort_by(|&a, &b| {
        let (x, y) = (&cluster.endpoints[a], &cluster.endpoints[b]);
        (&x.namespace, &x.name, x.kind).cmp(&(&y.namespace, &y.name, y.kind))
    });
    order
}

/// A matrix ready to be enumerated: the allowed sets of every probed port are computed
/// once, and each destination class knows its probes. Enumerating costs one bit test per
/// entry, and sources can be enumerated in parallel.
pub struct MatrixPlan<'c> {
    analysis: Analysis<'c>,
    /// Per endpoint: whether it has an address of the plan's family.
    in_family: Vec<bool>,
    /// Endpoint indices in display order (namespace, name).
    pub endpoints: Vec<usize>,
    /// Per destination class: indices into `ports`/`sets`.
    probes: Vec<Vec<usize>>,
    /// Every probed port, and its allowed sets.
    pub ports: Vec<(u16, Protocol)>,
    sets: Vec<PortSets>,
}

impl<'c> MatrixPlan<'c> {
    pub fn new(cluster: &'c Cluster, selection: &PortSelection, v6: bool) -> Self {
        let analysis = Analysis::new(cluster, v6);
        let mut index: HashMap<(u16, Protocol), usize> = HashMap::new();
        let (mut ports, mut sets) = (Vec::new(), Vec::new());
        let probes = analysis
            .classes
            .classes
            .iter()
            .map(|class| {
                selection
                    .ports_for(&cluster.endpoints[class.representative])
                    .into_iter()
                    .map(|(port, protocol)| {
                        *index.entry((port, protocol)).or_insert_with(|| {
                            ports.push((port, protocol));
                            sets.push(analysis.port_sets(port, protocol));
                            sets.len() - 1
                        })
                    })
                    .collect()
            })
            .collect();
        let family = Families::one(v6);
        let in_family = cluster.endpoints.iter().map(|e| Families::of_endpoint(e).contains(family)).collect();
        Self { endpoints: display_order(cluster), analysis, in_family, probes, ports, sets }
    }

    /// Calls `f(to, k, allowed)` for every probe from `from` (destinations in display
    /// order); the probe is `probes_of(to)[k]`. Only ends with an address of the plan's
    /// family take part.
    pub fn for_each_from(&self, from: usize, mut f: impl FnMut(usize, usize, bool)) {
        if !self.in_family[from] {
            return;
        }
        let class_of = &self.analysis.classes.class_of;
        let a = class_of[from];
        for &to in &self.endpoints {
            if to == from || !self.in_family[to] {
                continue;
            }
            let b = class_of[to];
            for (k, &probe) in self.probes[b].iter().enumerate() {
                f(to, k, self.sets[probe].allowed(a, b));
            }
        }
    }

    /// The probes of a destination endpoint: indices into [`MatrixPlan::ports`].
    pub fn probes_of(&self, endpoint: usize) -> &[usize] {
        &self.probes[self.analysis.classes.class_of[endpoint]]
    }

    /// Whether `from` may reach `to` on its probe `probes_of(to)[k]`.
    pub fn allowed(&self, from: usize, to: usize, k: usize) -> bool {
        let class_of = &self.analysis.classes.class_of;
        self.sets[self.probes_of(to)[k]].allowed(class_of[from], class_of[to])
    }
}

/// Every ordered pair of distinct endpoints, on the ports `selection` gives each destination,
/// in each of the `judged` families the pair has in common. A dual-stack pair whose families
/// agree is one entry; where they differ, one per family.
pub fn matrix(cluster: &Cluster, selection: &PortSelection, judged: Families) -> Matrix {
    let plans: Vec<(Families, MatrixPlan<'_>)> = judged.iter().map(|v6| (Families::one(v6), MatrixPlan::new(cluster, selection, v6))).collect();
    let families: Vec<Families> = cluster.endpoints.iter().map(|e| Families::of_endpoint(e).intersection(judged)).collect();
    let order = display_order(cluster);
    let mut entries = Vec::new();
    let mut without_common_family = 0;
    for &from in &order {
        for &to in &order {
            if to == from {
                continue;
            }
            let common = families[from].intersection(families[to]);
            if common.is_empty() {
                without_common_family += 1;
                continue;
            }
            let in_common: Vec<&(Families, MatrixPlan<'_>)> = plans.iter().filter(|(f, _)| common.contains(*f)).collect();
            let (_, first) = in_common[0];
            for k in 0..first.probes_of(to).len() {
                let (port, protocol) = first.ports[first.probes_of(to)[k]];
                let answers: Vec<(Families, bool)> = in_common.iter().map(|(f, plan)| (*f, plan.allowed(from, to, k))).collect();
                if answers.iter().all(|(_, allowed)| *allowed == answers[0].1) {
                    entries.push(Entry { from, to, port, protocol, allowed: answers[0].1, families: common });
                } else {
                    entries.extend(answers.into_iter().map(|(families, allowed)| Entry { from, to, port, protocol, allowed, families }));
                }
            }
        }
    }
    Matrix { endpoints: order, entries, families: judged, without_common_family }
}

/// Ordered pairs of distinct endpoints with no family of `judged` in common.
pub fn pairs_without_common_family(cluster: &Cluster, judged: Families) -> u64 {
    // Endpoints counted by their family set (four possible sets).
    let mut count = [0u64; 4];
    for endpoint in &cluster.endpoints {
        let families = Families::of_endpoint(endpoint).intersection(judged);
        count[[Families::NONE, Families::V4, Families::V6, Families::BOTH].iter().position(|f| *f == families).expect("a set")] += 1;
    }
    let sets = [Families::NONE, Families::V4, Families::V6, Families::BOTH];
    let mut pairs = 0;
    for (i, a) in sets.iter().enumerate() {
        for (j, b) in sets.iter().enumerate() {
            if a.intersection(*b).is_empty() {
                pairs += if i == j { count[i] * count[i].saturating_sub(1) } else { count[i] * count[j] };
            }
        }
    }
    pairs
}

/// A class in the summary.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ClassSummary {
    pub id: usize,
    pub namespace: String,
    pub labels: Labels,
    pub ports: Vec<ContainerPort>,
    #[serde(rename = "hostNetwork")]
    pub host_network: bool,
    /// `ns/name` of every member.
    pub members: Vec<String>,
}

/// Allowed class pairs on one port.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PortSummary {
    pub port: u16,
    pub protocol: Protocol,
    /// Source class -> destination classes allowed (a class appears as its own destination
    /// when it has two or more members that may talk to each other).
    pub allowed: Vec<ClassEdges>,
    /// Distinct-endpoint pairs probed on this port, and how many are allowed.
    pub pairs: u64,
    pub allowed_pairs: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ClassEdges {
    pub from: usize,
    pub to: Vec<usize>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// The family judged (omitted for IPv4, as before families were reported).
    #[serde(skip_serializing_if = "is_v4")]
    pub family: Families,
    /// Endpoints with an address of the family.
    pub endpoints: usize,
    pub classes: Vec<ClassSummary>,
    pub ports: Vec<PortSummary>,
}

fn is_v4(families: &Families) -> bool {
    *families == Families::V4
}

/// The matrix over equivalence classes, in one family: endpoints without an address of the
/// family take no part.
pub fn summary(cluster: &Cluster, selection: &PortSelection, v6: bool) -> Summary {
    let analysis = Analysis::new(cluster, v6);
    let family = Families::one(v6);
    let in_family = |c: &crate::classes::Class| Families::of_endpoint(&cluster.endpoints[c.representative]).contains(family);
    let classes: Vec<crate::classes::Class> = analysis.classes.classes.iter().map(|c| if in_family(c) { c.clone() } else { crate::classes::Class { members: Vec::new(), ..c.clone() } }).collect();
    let classes = &classes;
    // Destinations per port: classes whose ports (per the selection) include it.
    let mut destinations: BTreeMap<(u16, Protocol), Vec<usize>> = BTreeMap::new();
    for (c, class) in classes.iter().enumerate() {
        for key in selection.ports_for(&cluster.endpoints[class.representative]) {
            destinations.entry(key).or_default().push(c);
        }
    }
    let sizes: Vec<u64> = classes.iter().map(|c| c.members.len() as u64).collect();
    let total_endpoints: u64 = sizes.iter().sum();
    let ports = destinations
        .into_iter()
        .map(|((port, protocol), targets)| {
            let sets = analysis.port_sets(port, protocol);
            let mut allowed = Vec::new();
            let (mut pairs, mut allowed_pairs) = (0u64, 0u64);
            for a in 0..classes.len() {
                let mut to = Vec::new();
                for &b in &targets {
                    let pair_count = if a == b { sizes[a] * sizes[a].saturating_sub(1) } else { sizes[a] * sizes[b] };
                    if pair_count == 0 {
                        continue;
                    }
                    if sets.allowed(a, b) {
                        to.push(b);
                        allowed_pairs += pair_count;
                    }
                }
                if !to.is_empty() {
                    allowed.push(ClassEdges { from: a, to });
                }
            }
            for &b in &targets {
                pairs += sizes[b] * total_endpoints.saturating_sub(1);
            }
            PortSummary { port, protocol, allowed, pairs, allowed_pairs }
        })
        .collect();
    let classes = classes
        .iter()
        .enumerate()
        .filter(|(_, class)| !class.members.is_empty())
        .map(|(id, class)| {
            let e = &cluster.endpoints[class.representative];
            let mut ports = e.ports.clone();
            ports.sort();
            ports.dedup();
            ClassSummary {
                id,
                namespace: e.namespace.clone(),
                labels: e.labels.clone(),
                ports,
                host_network: e.host_network,
                members: class.members.iter().map(|&m| cluster.endpoints[m].display_name()).collect(),
            }
        })
        .collect();
    Summary { family, endpoints: total_endpoints as usize, classes, ports }
}
