//! Engine internals on a synthetic cluster, without loading: one verdict, the class
//! analysis, and one port's allowed sets. `cargo bench -p palisade-policy`.

use std::collections::BTreeSet;
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};

use criterion::{Criterion, criterion_group, criterion_main};
use palisade_model::{
    Cluster, ContainerPort, Endpoint, Labels, NAMESPACE_NAME_LABEL, Namespace, NamespaceScope, Operator, Origin, Peer, Policy,
    PortMatch, PortSpec, Protocol, Requirement, Rule, Selector, WorkloadKind,
};
use palisade_policy::analysis::Analysis;
use palisade_policy::{Flow, FlowEnd, verdict};

const PODS_PER_NAMESPACE: usize = 50;

fn labels(pairs: &[(&str, String)]) -> Labels {
    pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
}

/// `pods` pods in namespaces of 50 (10 apps x 5 replicas, two versions) and `policies`
/// policies mixing same-namespace, cross-namespace (AND) and named-port rules.
fn cluster(pods: usize, policies: usize) -> Cluster {
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
            node: None,
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
                    namespaces: NamespaceScope::Selector(Selector::new(vec![Requirement {
                        key: "team".into(),
                        operator: Operator::In(BTreeSet::from([format!("t{}", p % 5)])),
                    }])),
                    pods: app((p + 3) % 10),
                }],
                ports: vec![PortMatch { protocol: Protocol::Tcp, port: PortSpec::Named("http".into()) }],
            },
            _ => Rule { peers: vec![], ports: vec![PortMatch { protocol: Protocol::Udp, port: PortSpec::Any }] },
        };
        cluster.policies.push(Policy {
            namespace,
            name: format!("np-{p}"),
            subject: app(p % 10),
            ingress: Some(vec![rule]),
            egress: None,
            origin: Origin::default(),
        });
    }
    cluster
}

fn engine(c: &mut Criterion) {
    let big = cluster(10_000, 1_000);
    let flow = Flow {
        src: FlowEnd::endpoint(&big, 1, None),
        dst: FlowEnd::endpoint(&big, 5_007, None),
        port: 8000,
        protocol: Protocol::Tcp,
    };
    c.bench_function("verdict: one flow, 10k pods x 1k policies", |b| b.iter(|| verdict(black_box(&big), black_box(&flow))));
    c.bench_function("analysis: classes and peer sets, 10k pods x 1k policies", |b| {
        b.iter(|| Analysis::new(black_box(&big), false))
    });
    let analysis = Analysis::new(&big, false);
    c.bench_function("analysis: allowed sets of one port, 10k pods x 1k policies", |b| {
        b.iter(|| analysis.port_sets(black_box(8000), Protocol::Tcp))
    });
    let small = cluster(500, 200);
    c.bench_function("analysis: classes and peer sets, 500 pods x 200 policies", |b| {
        b.iter(|| Analysis::new(black_box(&small), false))
    });
}

criterion_group!(benches, engine);
criterion_main!(benches);
