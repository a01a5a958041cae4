//! Random clusters for property tests: a few namespaces, pods with labels and (named) ports,
//! and policies built from every kind of selector, peer and port entry. Pod addresses are
//! spread over 10.0.0.x .. 10.0.3.x so that ipBlocks and excepts cut between them.

use std::net::{IpAddr, Ipv4Addr};

use palisade_model::{
    Cluster, ContainerPort, Endpoint, IpBlock, Labels, NAMESPACE_NAME_LABEL, Namespace, NamespaceScope, Operator, Origin,
    Peer, Policy, PortMatch, PortSpec, Protocol, Requirement, Rule, Selector, WorkloadKind,
};
use proptest::prelude::*;

pub const KEYS: [&str; 3] = ["app", "role", "team"];
pub const VALUES: [&str; 3] = ["a", "b", "c"];
/// The ports probed; the named ones map to different numbers on different pods.
pub const PROBES: [(u16, Protocol); 5] = [(80, Protocol::Tcp), (81, Protocol::Tcp), (8080, Protocol::Tcp), (53, Protocol::Udp), (80, Protocol::Sctp)];

pub fn labels() -> impl Strategy<Value = Labels> {
    proptest::collection::btree_map(
        proptest::sample::select(KEYS.to_vec()).prop_map(str::to_string),
        proptest::sample::select(VALUES.to_vec()).prop_map(str::to_string),
        0..3,
    )
}

pub fn requirement() -> impl Strategy<Value = Requirement> {
    let values = proptest::collection::btree_set(proptest::sample::select(VALUES.to_vec()).prop_map(str::to_string), 1..3);
    let operator = prop_oneof![
        values.clone().prop_map(Operator::In),
        values.prop_map(Operator::NotIn),
        Just(Operator::Exists),
        Just(Operator::DoesNotExist),
    ];
    (proptest::sample::select(KEYS.to_vec()), operator).prop_map(|(key, operator)| Requirement { key: key.to_string(), operator })
}

pub fn selector() -> impl Strategy<Value = Selector> {
    proptest::collection::vec(requirement(), 0..3).prop_map(Selector::new)
}

pub fn cidr() -> impl Strategy<Value = IpBlock> {
    prop_oneof![
        Just(IpBlock { cidr: "10.0.0.0/16".parse().unwrap(), except: vec![] }),
        Just(IpBlock { cidr: "10.0.0.0/16".parse().unwrap(), except: vec!["10.0.1.0/24".parse().unwrap()] }),
        Just(IpBlock { cidr: "10.0.2.0/24".parse().unwrap(), except: vec![] }),
        Just(IpBlock { cidr: "0.0.0.0/0".parse().unwrap(), except: vec!["10.0.3.0/24".parse().unwrap()] }),
        Just(IpBlock { cidr: "fd00::/8".parse().unwrap(), except: vec![] }),
    ]
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
        proptest::sample::select(vec!["http", "dns", "metrics"]).prop_map(|n| PortSpec::Named(n.to_string())),
    ];
    (protocol, spec).prop_map(|(protocol, port)| PortMatch { protocol, port })
}

pub fn rule() -> impl Strategy<Value = Rule> {
    (proptest::collection::vec(peer(), 0..3), proptest::collection::vec(port_match(), 0..3)).prop_map(|(peers, ports)| Rule { peers, ports })
}

pub fn rules() -> impl Strategy<Value = Option<Vec<Rule>>> {
    proptest::option::of(proptest::collection::vec(rule(), 0..3))
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
    let pods = proptest::collection::vec((0usize..3, labels(), container_ports(), proptest::bool::weighted(0.1)), 1..7);
    let policies = proptest::collection::vec((0usize..3, selector(), rules(), rules()), 0..5);
    (namespaces, pods, policies).prop_map(|(namespaces, pods, policies)| {
        let mut cluster = Cluster::default();
        for (i, mut labels) in namespaces.into_iter().enumerate() {
            let name = format!("n{i}");
            labels.insert(NAMESPACE_NAME_LABEL.into(), name.clone());
            cluster.namespaces.insert(name.clone(), Namespace { name, labels, declared: true, origin: Origin::default() });
        }
        let count = cluster.namespaces.len();
        for (i, (ns, labels, ports, host_network)) in pods.into_iter().enumerate() {
            cluster.endpoints.push(Endpoint {
                kind: WorkloadKind::Pod,
                namespace: format!("n{}", ns % count),
                name: format!("p{i}"),
                labels,
                // Pods spread over 10.0.0.x .. 10.0.3.x so that ipBlocks and excepts cut between them.
                ips: vec![IpAddr::V4(Ipv4Addr::new(10, 0, (i % 4) as u8, 10 + i as u8))],
                ports,
                host_network,
                node: None,
                origin: Origin::default(),
            });
        }
        for (i, (ns, subject, ingress, egress)) in policies.into_iter().enumerate() {
            cluster.policies.push(Policy {
                namespace: format!("n{}", ns % count),
                name: format!("np{i}"),
                subject,
                ingress,
                egress,
                origin: Origin::default(),
            });
        }
        cluster
    })
}

