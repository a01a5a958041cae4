//! Synthetic clusters of any size for benchmarks: namespaces of 50 pods (10 apps of 5
//! replicas, two versions, a named port whose number varies by app), and policies mixing
//! same-namespace, cross-namespace (AND) and named-port rules.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};

use palisade_model::{
    Cluster, ContainerPort, Endpoint, Labels, NAMESPACE_NAME_LABEL, Namespace, NamespaceScope, Operator, Origin, Peer, Policy, PortMatch, PortSpec, Protocol, Requirement, Rule, Selector, WorkloadKind,
};

pub const PODS_PER_NAMESPACE: usize = 50;

fn labels(pairs: &[(&str, String)]) -> Labels {
    pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
}

/// `pods` pods (addresses from 10.244.0.10 up, on nodes of 100 pods named `node-<n>`) in namespaces of 50 (10 apps x 5 replicas, two versions) and `policies`
/// policies mixing same-namespace, cross-namespace (AND) and named-port rules.
pub fn cluster(pods: usize, policies: usize) -> Cluster {
    let namespaces = pods.div_ceil(PODS_PER_NAMESPACE);
    let mut cluster = Cluster::default();
    for n in 0..namespaces {
        let name = format!("ns-{n}");
        let labels = labels(&[(NAMESPACE_NAME_LABEL, name.clone()), ("team", format!("t{}", n % 5))]);
        cluster.namespaces.insert(name.clone(), Namespace { name, labels, declared: true, origin: Origin::default() });
    }
    for i in 0..pods {
        let (n, local) = (i / PODS_PER_NAMESPACE, i % PODS_PER_NAMESPACE);
        let app = local / 5;
        cluster.endpoints.push(Endpoint {
            kind: WorkloadKind::Pod,
            namespace: format!("ns-{n}"),
            name: format!("app-{app}-{local}"),
            labels: labels(&[("app", format!("app-{app}")), ("version", format!("v{}", local % 2))]),
            ips: vec![IpAddr::V4(Ipv4Addr::from(0x0af4_0000 + i as u32 + 10))],
            ports: vec![ContainerPort { name: Some("http".into()), number: 8000 + (app % 3) as u16, protocol: Protocol::Tcp }],
            host_network: false,
            node: Some(format!("node-{}", i / 100)),
            origin: Origin::default(),
        });
    }
    let app = |a: usize| Selector::from_match_labels([("app", format!("app-{a}").as_str())]);
    for p in 0..policies {
        let namespace = format!("ns-{}", p % namespaces);
        let rule = match p % 3 {
            0 => Rule {
                peers: vec![Peer::Pods { namespaces: NamespaceScope::PolicyNamespace, pods: app((p + 1) % 10) }],
                ports: vec![PortMatch { protocol: Protocol::Tcp, port: PortSpec::Number(8000) }],
            },
            1 => Rule {
                peers: vec![Peer::Pods {
                    namespaces: NamespaceScope::Selector(Selector::new(vec![Requirement { key: "team".into(), operator: Operator::In(BTreeSet::from([format!("t{}", p % 5)])) }])),
                    pods: app((p + 3) % 10),
                }],
                ports: vec![PortMatch { protocol: Protocol::Tcp, port: PortSpec::Named("http".into()) }],
            },
            _ => Rule { peers: vec![], ports: vec![PortMatch { protocol: Protocol::Udp, port: PortSpec::Any }] },
        };
        cluster.policies.push(Policy { namespace, name: format!("np-{p}"), subject: app(p % 10), ingress: Some(vec![rule]), egress: None, origin: Origin::default() });
    }
    cluster
}
