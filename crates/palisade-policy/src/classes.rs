//! Equivalence classes of endpoints. Two endpoints that no policy can tell apart (same
//! namespace, labels, container ports, hostNetwork, an address of the family or not, and the
//! same set of ipBlocks containing their address) get the same verdicts in both directions,
//! so the matrix is computed per class and never per pair of pods.

use std::collections::HashMap;

use palisade_model::{Cluster, ContainerPort, Endpoint, IpBlock, Labels, Peer};

use crate::family::Families;

#[derive(Clone, Debug)]
pub struct Class {
    /// The endpoint that stands for the class when a rule is evaluated.
    pub representative: usize,
    pub members: Vec<usize>,
}

#[derive(Clone, Debug)]
pub struct Classes {
    pub classes: Vec<Class>,
    /// Class of each endpoint.
    pub class_of: Vec<usize>,
    /// Every distinct ipBlock of every policy, and the classes whose address each contains.
    pub ip_blocks: Vec<IpBlock>,
    pub classes_in_block: Vec<Vec<usize>>,
    /// Classes per namespace.
    pub by_namespace: HashMap<String, Vec<usize>>,
}

#[derive(PartialEq, Eq, Hash)]
struct Key<'a> {
    namespace: &'a str,
    labels: &'a Labels,
    ports: Vec<&'a ContainerPort>,
    host_network: bool,
    /// Whether the endpoint has an address of the family (flows exist only in families
    /// both ends have).
    in_family: bool,
    blocks: Vec<u32>,
}

impl Classes {
    /// Groups the endpoints; `v6` picks the address family whose addresses are compared
    /// against ipBlocks.
    pub fn new(cluster: &Cluster, v6: bool) -> Self {
        let ip_blocks = distinct_ip_blocks(cluster);
        let mut index: HashMap<Key<'_>, usize> = HashMap::new();
        let mut classes: Vec<Class> = Vec::new();
        let mut class_of = Vec::with_capacity(cluster.endpoints.len());
        for (i, endpoint) in cluster.endpoints.iter().enumerate() {
            let key = key(endpoint, &ip_blocks, v6);
            let class = *index.entry(key).or_insert_with(|| {
                classes.push(Class { representative: i, members: Vec::new() });
                classes.len() - 1
            });
            classes[class].members.push(i);
            class_of.push(class);
        }
        let mut classes_in_block = vec![Vec::new(); ip_blocks.len()];
        let mut by_namespace: HashMap<String, Vec<usize>> = HashMap::new();
        for (c, class) in classes.iter().enumerate() {
            let endpoint = &cluster.endpoints[class.representative];
            by_namespace.entry(endpoint.namespace.clone()).or_default().push(c);
            if let Some(ip) = endpoint.ip_of_family(v6) {
                for (b, block) in ip_blocks.iter().enumerate() {
                    if block.contains(ip) {
                        classes_in_block[b].push(c);
                    }
                }
            }
        }
        Self { classes, class_of, ip_blocks, classes_in_block, by_namespace }
    }

    pub fn len(&self) -> usize {
        self.classes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.classes.is_empty()
    }

    pub fn block_index(&self, block: &IpBlock) -> Option<usize> {
        self.ip_blocks.binary_search(block).ok()
    }
}

fn key<'a>(endpoint: &'a Endpoint, ip_blocks: &[IpBlock], v6: bool) -> Key<'a> {
    let mut ports: Vec<&ContainerPort> = endpoint.ports.iter().collect();
    ports.sort();
    ports.dedup();
    let blocks = match endpoint.ip_of_family(v6) {
        Some(ip) => (0..ip_blocks.len() as u32).filter(|&b| ip_blocks[b as usize].contains(ip)).collect(),
        None => Vec::new(),
    };
    let in_family = Families::of_endpoint(endpoint).contains(Families::one(v6));
    Key { namespace: &endpoint.namespace, labels: &endpoint.labels, ports, host_network: endpoint.host_network, in_family, blocks }
}

fn distinct_ip_blocks(cluster: &Cluster) -> Vec<IpBlock> {
    let mut blocks: Vec<IpBlock> = cluster
        .policies
        .iter()
        .flat_map(|p| p.ingress.iter().chain(p.egress.iter()).flatten())
        .flat_map(|rule| rule.peers.iter())
        .filter_map(|peer| match peer {
            Peer::IpBlock(block) => Some(block.clone()),
            Peer::Pods { .. } => None,
        })
        .collect();
    // ClusterNetworkPolicy `networks` and node addresses (`nodes` peers) split classes too.
    for policy in &cluster.cluster_policies {
        for peer in policy.ingress.iter().chain(&policy.egress).flat_map(|r| r.peers.iter()) {
            if let palisade_model::cluster_policy::ClusterPeer::Networks(nets) = peer {
                blocks.extend(nets.iter().map(|cidr| IpBlock { cidr: *cidr, except: Vec::new() }));
            }
        }
    }
    if !cluster.cluster_policies.is_empty() {
        for address in cluster.nodes.iter().flat_map(|n| n.addresses.iter()) {
            let host = if address.is_ipv4() { 32 } else { 128 };
            blocks.push(IpBlock { cidr: ipnet::IpNet::new(*address, host).expect("host prefix"), except: Vec::new() });
        }
    }
    blocks.sort();
    blocks.dedup();
    blocks
}
