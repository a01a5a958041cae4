//! Random clusters for property tests: a few namespaces, pods with labels and (named) ports,
//! and policies built from every kind of selector, peer and port entry. Pods are IPv4-only,
//! IPv6-only or dual-stack, with addresses spread over 10.0.0.x .. 10.0.3.x and
//! fd00:0:0:0::x .. fd00:0:0:3::x so that ipBlocks and excepts cut between them.
//!
//! Rules overlap on purpose, as people write them (and as the kernel's interval sets refuse
//! unless the dataplane makes them disjoint): a portless rule beside a rule with ports for the
//! same peers, nested and equal ipBlocks with and without excepts, namespace and pod peers
//! covering the same pods, endPort ranges holding listed ports, named ports resolving to
//! listed numbers.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use palisade_model::{
    Cluster, ContainerPort, Endpoint, IpBlock, Labels, NAMESPACE_NAME_LABEL, Namespace, NamespaceScope, Operator, Origin, Peer, Policy, PortMatch, PortSpec, Protocol, Requirement, Rule, Selector,
    WorkloadKind,
};
use proptest::prelude::*;

pub const KEYS: [&str; 3] = ["app", "role", "team"];
pub const VALUES: [&str; 3] = ["a", "b", "c"];
/// The ports probed; the named ones map to different numbers on different pods.
pub const PROBES: [(u16, Protocol); 6] = [(80, Protocol::Tcp), (81, Protocol::Tcp), (8080, Protocol::Tcp), (8500, Protocol::Tcp), (53, Protocol::Udp), (80, Protocol::Sctp)];

/// Outside addresses to probe, one per family (inside some ipBlocks, outside others).
pub const OUTSIDE: [&str; 2] = ["10.0.3.99", "fd00:0:0:3::99"];

pub fn labels() -> impl Strategy<Value = Labels> {
    proptest::collection::btree_map(proptest::sample::select(KEYS.to_vec()).prop_map(str::to_string), proptest::sample::select(VALUES.to_vec()).prop_map(str::to_string), 0..3)
}

pub fn requirement() -> impl Strategy<Value = Requirement> {
    let values = proptest::collection::btree_set(proptest::sample::select(VALUES.to_vec()).prop_map(str::to_string), 1..3);
    let operator = prop_oneof![values.clone().prop_map(Operator::In), values.prop_map(Operator::NotIn), Just(Operator::Exists), Just(Operator::DoesNotExist),];
    (proptest::sample::select(KEYS.to_vec()), operator).prop_map(|(key, operator)| Requirement { key: key.to_string(), operator })
}

pub fn selector() -> impl Strategy<Value = Selector> {
    proptest::collection::vec(requirement(), 0..3).prop_map(Selector::new)
}

fn block(cidr: &str, except: &[&str]) -> IpBlock {
    IpBlock { cidr: cidr.parse().expect("valid CIDR"), except: except.iter().map(|e| e.parse().expect("valid CIDR")).collect() }
}

/// ipBlocks of both families that nest in, equal and cut across each other.
pub fn cidr() -> impl Strategy<Value = IpBlock> {
    proptest::sample::select(vec![
        block("10.0.0.0/8", &[]),
        block("10.0.0.0/16", &[]),
        block("10.0.0.0/16", &["10.0.1.0/24"]),
        block("10.0.2.0/24", &[]),
        block("0.0.0.0/0", &["10.0.3.0/24"]),
        block("fd00::/8", &[]),
        block("fd00::/48", &[]),
        block("fd00::/48", &["fd00:0:0:1::/64"]),
        block("fd00:0:0:2::/64", &[]),
        block("::/0", &["fd00:0:0:3::/64"]),
    ])
}

pub fn peer() -> impl Strategy<Value = Peer> {
    prop_oneof![
        3 => (proptest::option::of(selector()), selector()).prop_map(|(ns, pods)| Peer::Pods {
            namespaces: ns.map_or(NamespaceScope::PolicyNamespace, NamespaceScope::Selector),
            pods,
        }),
        1 => cidr().prop_map(Peer::IpBlock),
    ]
}

pub fn port_match() -> impl Strategy<Value = PortMatch> {
    let protocol = proptest::sample::select(Protocol::ALL.to_vec());
    let spec = prop_oneof![
        Just(PortSpec::Any),
        proptest::sample::select(vec![80u16, 81, 8080, 53]).prop_map(PortSpec::Number),
        Just(PortSpec::Range(80, 81)),
        Just(PortSpec::Range(53, 80)),
        Just(PortSpec::Range(8000, 9000)),
        proptest::sample::select(vec!["http", "dns", "metrics"]).prop_map(|n| PortSpec::Named(n.to_string())),
    ];
    (protocol, spec).prop_map(|(protocol, port)| PortMatch { protocol, port })
}

pub fn rule() -> impl Strategy<Value = Rule> {
    (proptest::collection::vec(peer(), 0..3), proptest::collection::vec(port_match(), 0..3)).prop_map(|(peers, ports)| Rule { peers, ports })
}

/// A rule admitting some of what `rule` admits again, the way people repeat themselves.
fn overlapping(rule: &Rule, how: u8) -> Rule {
    let any_pod = Peer::Pods { namespaces: NamespaceScope::Selector(Selector::new(vec![])), pods: Selector::new(vec![]) };
    let ports = |ports: &[(Protocol, PortSpec)]| ports.iter().map(|(protocol, port)| PortMatch { protocol: *protocol, port: port.clone() }).collect();
    match how % 5 {
        // The same peers on every port.
        0 => Rule { peers: rule.peers.clone(), ports: vec![] },
        // The same peers on a listed port, an endPort range holding it, and a named port
        // resolving to it.
        1 => {
            Rule { peers: rule.peers.clone(), ports: ports(&[(Protocol::Tcp, PortSpec::Number(8080)), (Protocol::Tcp, PortSpec::Range(8000, 9000)), (Protocol::Tcp, PortSpec::Named("http".into()))]) }
        }
        // Every pod of every namespace (covering the rule's pod peers) on the same ports.
        2 => Rule { peers: vec![any_pod], ports: rule.ports.clone() },
        // Nested and equal ipBlocks of both families on the same ports.
        3 => Rule { peers: vec![Peer::IpBlock(block("10.0.0.0/8", &[])), Peer::IpBlock(block("10.0.0.0/16", &["10.0.1.0/24"])), Peer::IpBlock(block("fd00::/48", &[]))], ports: rule.ports.clone() },
        // The rule itself again.
        _ => rule.clone(),
    }
}

pub fn rules() -> impl Strategy<Value = Option<Vec<Rule>>> {
    let with_overlaps = (proptest::collection::vec(rule(), 0..3), proptest::collection::vec(any::<u8>(), 0..2)).prop_map(|(mut rules, overlaps)| {
        for how in overlaps {
            if let Some(first) = rules.first().cloned() {
                rules.push(overlapping(&first, how));
            }
        }
        rules
    });
    proptest::option::of(with_overlaps)
}

/// A pod's addresses: IPv4 only, IPv6 only or dual-stack.
fn addresses(i: usize, family: u8) -> Vec<IpAddr> {
    let v4 = IpAddr::V4(Ipv4Addr::new(10, 0, (i % 4) as u8, 10 + i as u8));
    let v6 = IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, (i % 4) as u16, 0, 0, 0, 10 + i as u16));
    match family % 3 {
        0 => vec![v4],
        1 => vec![v6],
        _ => vec![v4, v6],
    }
}

pub fn container_ports() -> impl Strategy<Value = Vec<ContainerPort>> {
    let choices = vec![
        ContainerPort { name: Some("http".into()), number: 80, protocol: Protocol::Tcp },
        ContainerPort { name: Some("http".into()), number: 8080, protocol: Protocol::Tcp },
        ContainerPort { name: Some("dns".into()), number: 53, protocol: Protocol::Udp },
        ContainerPort { name: Some("metrics".into()), number: 81, protocol: Protocol::Tcp },
        ContainerPort { name: None, number: 80, protocol: Protocol::Sctp },
    ];
    proptest::sample::subsequence(choices, 0..3)
}

pub fn cluster() -> impl Strategy<Value = Cluster> {
    let namespaces = proptest::collection::vec(labels(), 1..4);
    let pods = proptest::collection::vec((0usize..3, labels(), container_ports(), proptest::bool::weighted(0.1), any::<u8>()), 1..7);
    let policies = proptest::collection::vec((0usize..3, selector(), rules(), rules()), 0..5);
    (namespaces, pods, policies).prop_map(|(namespaces, pods, policies)| {
        let mut cluster = Cluster::default();
        for (i, mut labels) in namespaces.into_iter().enumerate() {
            let name = format!("n{i}");
            labels.insert(NAMESPACE_NAME_LABEL.into(), name.clone());
            cluster.namespaces.insert(name.clone(), Namespace { name, labels, declared: true, origin: Origin::default() });
        }
        let count = cluster.namespaces.len();
        for (i, (ns, labels, ports, host_network, family)) in pods.into_iter().enumerate() {
            cluster.endpoints.push(Endpoint {
                kind: WorkloadKind::Pod,
                namespace: format!("n{}", ns % count),
                name: format!("p{i}"),
                labels,
                ips: addresses(i, family),
                ports,
                host_network,
                node: None,
                origin: Origin::default(),
            });
        }
        for (i, (ns, subject, ingress, egress)) in policies.into_iter().enumerate() {
            cluster.policies.push(Policy { namespace: format!("n{}", ns % count), name: format!("np{i}"), subject, ingress, egress, origin: Origin::default() });
        }
        cluster
    })
}

/// A ClusterNetworkPolicy peer of any kind (node addresses are the first pods' addresses,
/// so that hostNetwork pods and outside addresses can be nodes).
pub fn cluster_peer() -> impl Strategy<Value = palisade_model::cluster_policy::ClusterPeer> {
    use palisade_model::cluster_policy::{ClusterPeer, NamespacedPods};
    prop_oneof![
        2 => selector().prop_map(ClusterPeer::Namespaces),
        3 => (selector(), selector()).prop_map(|(namespaces, pods)| ClusterPeer::Pods(NamespacedPods { namespaces, pods })),
        1 => selector().prop_map(ClusterPeer::Nodes),
        2 => proptest::collection::vec(cidr().prop_map(|b| b.cidr), 1..3).prop_map(ClusterPeer::Networks),
        1 => Just(ClusterPeer::Unknown),
    ]
}

pub fn cluster_protocol() -> impl Strategy<Value = palisade_model::cluster_policy::ClusterProtocol> {
    use palisade_model::cluster_policy::ClusterProtocol;
    prop_oneof![
        4 => (proptest::sample::select(Protocol::ALL.to_vec()), proptest::sample::select(vec![(80u16, 80u16), (81, 81), (53, 80), (8000, 9000)]))
            .prop_map(|(protocol, (first, last))| ClusterProtocol::Ports { protocol, first, last }),
        2 => proptest::sample::select(vec!["http", "dns", "metrics"]).prop_map(|n| ClusterProtocol::NamedPort(n.to_string())),
        1 => Just(ClusterProtocol::Unknown),
    ]
}

pub fn cluster_rule() -> impl Strategy<Value = palisade_model::cluster_policy::ClusterRule> {
    use palisade_model::cluster_policy::{Action, ClusterRule};
    let action = proptest::sample::select(vec![Action::Accept, Action::Deny, Action::Pass]);
    (action, proptest::collection::vec(cluster_peer(), 1..3), proptest::option::of(proptest::collection::vec(cluster_protocol(), 1..3))).prop_map(|(action, peers, protocols)| ClusterRule {
        name: None,
        action,
        peers,
        protocols,
    })
}

/// A random cluster with ClusterNetworkPolicies of both tiers (priorities that tie and
/// not) and nodes whose addresses are some pods' and the outside address.
pub fn cluster_with_tiers() -> impl Strategy<Value = Cluster> {
    use palisade_model::cluster_policy::{ClusterPolicy, NamespacedPods, Node, Subject, Tier};
    let subject = prop_oneof![selector().prop_map(Subject::Namespaces), (selector(), selector()).prop_map(|(namespaces, pods)| Subject::Pods(NamespacedPods { namespaces, pods })),];
    let policy = (proptest::bool::ANY, 0u16..3, subject, proptest::collection::vec(cluster_rule(), 0..3), proptest::collection::vec(cluster_rule(), 0..3));
    (cluster(), proptest::collection::vec(policy, 1..4), labels()).prop_map(|(mut cluster, policies, node_labels)| {
        for (i, (admin, priority, subject, ingress, egress)) in policies.into_iter().enumerate() {
            let tier = if admin { Tier::Admin } else { Tier::Baseline };
            cluster.upsert_cluster_policy(ClusterPolicy { name: format!("cnp{i}"), tier, priority, subject, ingress, egress, origin: Origin::default() });
        }
        let mut addresses: Vec<IpAddr> = cluster.endpoints.iter().take(2).flat_map(|e| e.ips.clone()).collect();
        addresses.extend(OUTSIDE.iter().map(|a| a.parse::<IpAddr>().expect("valid")));
        cluster.nodes.push(Node { name: "node-1".into(), labels: node_labels, addresses, origin: Origin::default() });
        cluster
    })
}
