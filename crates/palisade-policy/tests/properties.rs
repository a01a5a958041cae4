//! Properties of the semantics over random clusters:
//! - verdicts do not depend on the order of policies, rules or peers;
//! - adding an allow rule to a direction a policy already isolates never removes a flow;
//! - the class-based matrix equals the single-flow verdict for every pair and port;
//! - the explained and the fast verdicts agree, and a pod always reaches itself.

use std::collections::BTreeSet;

use palisade_conformance::strategies::{PROBES, cluster, rule};
use palisade_model::{Cluster, Protocol};
use palisade_policy::matrix::{PortSelection, matrix};
use palisade_policy::{Flow, FlowEnd, allowed, verdict};
use proptest::prelude::*;

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
