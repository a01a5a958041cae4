//! Properties of the semantics over random clusters:
//! - verdicts do not depend on the order of policies, rules or peers;
//! - adding an allow rule to a direction a policy already isolates never removes a flow;
//! - the class-based matrix equals the single-flow verdict for every pair and port;
//! - the explained and the fast verdicts agree, and a pod always reaches itself.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};

use palisade_model::{
    Cluster, ContainerPort, Endpoint, IpBlock, Labels, NAMESPACE_NAME_LABEL, Namespace, NamespaceScope, Operator, Origin,
    Peer, Policy, PortMatch, PortSpec, Protocol, Requirement, Rule, Selector, WorkloadKind,
};
use palisade_policy::matrix::{PortSelection, matrix};
use palisade_policy::{Flow, FlowEnd, allowed, verdict};
use proptest::prelude::*;

const KEYS: [&str; 3] = ["app", "role", "team"];
const VALUES: [&str; 3] = ["a", "b", "c"];
/// The ports probed; the named ones map to different numbers on different pods.
const PROBES: [(u16, Protocol); 5] = [(80, Protocol::Tcp), (81, Protocol::Tcp), (8080, Protocol::Tcp), (53, Protocol::Udp), (80, Protocol::Sctp)];

fn labels() -> impl Strategy<Value = Labels> {
    proptest::collection::btree_map(
        proptest::sample::select(KEYS.to_vec()).prop_map(str::to_string),
        proptest::sample::select(VALUES.to_vec()).prop_map(str::to_string),
        0..3,
    )
}

fn requirement() -> impl Strategy<Value = Requirement> {
    let values = proptest::collection::btree_set(proptest::sample::select(VALUES.to_vec()).prop_map(str::to_string), 1..3);
    let operator = prop_oneof![
        values.clone().prop_map(Operator::In),
        values.prop_map(Operator::NotIn),
        Just(Operator::Exists),
        Just(Operator::DoesNotExist),
    ];
    (proptest::sample::select(KEYS.to_vec()), operator).prop_map(|(key, operator)| Requirement { key: key.to_string(), operator })
}

fn selector() -> impl Strategy<Value = Selector> {
    proptest::collection::vec(requirement(), 0..3).prop_map(Selector::new)
}

fn cidr() -> impl Strategy<Value = IpBlock> {
    prop_oneof![
        Just(IpBlock { cidr: "10.0.0.0/16".parse().unwrap(), except: vec![] }),
        Just(IpBlock { cidr: "10.0.0.0/16".parse().unwrap(), except: vec!["10.0.1.0/24".parse().unwrap()] }),
        Just(IpBlock { cidr: "10.0.2.0/24".parse().unwrap(), except: vec![] }),
        Just(IpBlock { cidr: "0.0.0.0/0".parse().unwrap(), except: vec!["10.0.3.0/24".parse().unwrap()] }),
        Just(IpBlock { cidr: "fd00::/8".parse().unwrap(), except: vec![] }),
    ]
}

fn peer() -> impl Strategy<Value = Peer> {
    prop_oneof![
        3 => (proptest::option::of(selector()), selector()).prop_map(|(ns, pods)| Peer::Pods {
            namespaces: ns.map_or(NamespaceScope::PolicyNamespace, NamespaceScope::Selector),
            pods,
        }),
        1 => cidr().prop_map(Peer::IpBlock),
    ]
}

fn port_match() -> impl Strategy<Value = PortMatch> {
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

fn rule() -> impl Strategy<Value = Rule> {
    (proptest::collection::vec(peer(), 0..3), proptest::collection::vec(port_match(), 0..3)).prop_map(|(peers, ports)| Rule { peers, ports })
}

fn rules() -> impl Strategy<Value = Option<Vec<Rule>>> {
    proptest::option::of(proptest::collection::vec(rule(), 0..3))
}

fn container_ports() -> impl Strategy<Value = Vec<ContainerPort>> {
    let choices = vec![
        ContainerPort { name: Some("http".into()), number: 80, protocol: Protocol::Tcp },
        ContainerPort { name: Some("http".into()), number: 8080, protocol: Protocol::Tcp },
        ContainerPort { name: Some("dns".into()), number: 53, protocol: Protocol::Udp },
        ContainerPort { name: Some("metrics".into()), number: 81, protocol: Protocol::Tcp },
        ContainerPort { name: None, number: 80, protocol: Protocol::Sctp },
    ];
    proptest::sample::subsequence(choices, 0..3)
}

fn cluster() -> impl Strategy<Value = Cluster> {
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

/// Every flow between the cluster's endpoints and one outside address, on every probe port.
fn all_flows(cluster: &Cluster) -> Vec<Flow> {
    let mut ends: Vec<FlowEnd> = (0..cluster.endpoints.len()).map(|i| FlowEnd::endpoint(cluster, i, Some(false))).collect();
    ends.push(FlowEnd::External("10.0.3.99".parse().unwrap()));
    let mut flows = Vec::new();
    for src in &ends {
        for dst in &ends {
            for &(port, protocol) in &PROBES {
                flows.push(Flow { src: *src, dst: *dst, port, protocol });
            }
        }
    }
    flows
}

fn verdicts(cluster: &Cluster) -> Vec<bool> {
    all_flows(cluster).iter().map(|f| verdict(cluster, f).allowed).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, .. ProptestConfig::default() })]

    #[test]
    fn explained_and_fast_verdicts_agree(cluster in cluster()) {
        for flow in all_flows(&cluster) {
            prop_assert_eq!(verdict(&cluster, &flow).allowed, allowed(&cluster, &flow), "{:?}", flow);
        }
    }

    #[test]
    fn order_of_policies_rules_and_peers_does_not_matter(cluster in cluster(), seed in any::<u64>()) {
        let before = verdicts(&cluster);
        let mut shuffled = cluster.clone();
        // A deterministic permutation from the seed: rotate and reverse.
        let k = (seed as usize) % (shuffled.policies.len().max(1));
        shuffled.policies.rotate_left(k);
        shuffled.policies.reverse();
        for policy in &mut shuffled.policies {
            for rules in [&mut policy.ingress, &mut policy.egress].into_iter().flatten() {
                rules.reverse();
                for rule in rules.iter_mut() {
                    rule.peers.reverse();
                    rule.ports.reverse();
                }
            }
        }
        prop_assert_eq!(before, verdicts(&shuffled));
    }

    #[test]
    fn adding_an_allow_rule_never_removes_an_allowed_flow(cluster in cluster(), extra in rule(), which in any::<usize>(), egress in any::<bool>()) {
        let before = verdicts(&cluster);
        let mut more = cluster.clone();
        let isolating: Vec<usize> = (0..more.policies.len())
            .filter(|&i| if egress { more.policies[i].egress.is_some() } else { more.policies[i].ingress.is_some() })
            .collect();
        prop_assume!(!isolating.is_empty());
        let policy = &mut more.policies[isolating[which % isolating.len()]];
        let rules = if egress { policy.egress.as_mut() } else { policy.ingress.as_mut() };
        rules.expect("isolating").push(extra);
        let after = verdicts(&more);
        for (i, (b, a)) in before.iter().zip(&after).enumerate() {
            prop_assert!(!b || *a, "flow {} was allowed and no longer is", i);
        }
    }

    #[test]
    fn the_class_matrix_equals_single_flow_verdicts(cluster in cluster()) {
        let queries = PROBES.iter().map(|&(port, protocol)| palisade_policy::PortQuery { port: palisade_policy::PortRef::Number(port), protocol }).collect();
        let m = matrix(&cluster, &PortSelection::Explicit(queries), false);
        let expected = cluster.endpoints.len() * (cluster.endpoints.len() - 1) * PROBES.len();
        prop_assert_eq!(m.entries.len(), expected);
        for entry in &m.entries {
            let flow = Flow {
                src: FlowEnd::endpoint(&cluster, entry.from, Some(false)),
                dst: FlowEnd::endpoint(&cluster, entry.to, Some(false)),
                port: entry.port,
                protocol: entry.protocol,
            };
            prop_assert_eq!(entry.allowed, verdict(&cluster, &flow).allowed, "{:?}", entry);
        }
    }

    #[test]
    fn declared_ports_matrix_probes_exactly_the_declared_ports(cluster in cluster()) {
        let m = matrix(&cluster, &PortSelection::Declared { protocols: vec![] }, false);
        for entry in &m.entries {
            let declared: BTreeSet<(u16, Protocol)> = cluster.endpoints[entry.to].ports.iter().map(|p| (p.number, p.protocol)).collect();
            prop_assert!(declared.contains(&(entry.port, entry.protocol)));
        }
    }

    #[test]
    fn a_pod_always_reaches_itself(cluster in cluster()) {
        for i in 0..cluster.endpoints.len() {
            let me = FlowEnd::endpoint(&cluster, i, Some(false));
            for &(port, protocol) in &PROBES {
                let flow = Flow { src: me, dst: me, port, protocol };
                prop_assert!(verdict(&cluster, &flow).allowed);
            }
        }
    }
}
