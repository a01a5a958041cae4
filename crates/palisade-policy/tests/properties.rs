//! Properties of the semantics over random clusters:
//! - verdicts do not depend on the order of policies, rules or peers;
//! - adding an allow rule to a direction a policy already isolates never removes a flow;
//! - the class-based matrix equals the single-flow verdict for every pair and port;
//! - the explained and the fast verdicts agree, and a pod always reaches itself.

use std::collections::BTreeSet;

use palisade_conformance::strategies::{OUTSIDE, PROBES, cluster, rule};
use palisade_model::{Cluster, Protocol};
use palisade_policy::matrix::{PortSelection, matrix};
use palisade_policy::{Families, Flow, FlowEnd, allowed, verdict};
use proptest::prelude::*;

/// Every flow between the cluster's endpoints and an outside address, on every probe port,
/// in each family: only between ends that have an address of it.
fn all_flows(cluster: &Cluster) -> Vec<Flow> {
    let mut flows = Vec::new();
    for v6 in [false, true] {
        let mut ends: Vec<FlowEnd> =
            (0..cluster.endpoints.len()).filter(|&i| Families::of_endpoint(&cluster.endpoints[i]).contains(Families::one(v6))).map(|i| FlowEnd::endpoint(cluster, i, Some(v6))).collect();
        ends.push(FlowEnd::External(OUTSIDE[usize::from(v6)].parse().unwrap()));
        for src in &ends {
            for dst in &ends {
                for &(port, protocol) in &PROBES {
                    flows.push(Flow { src: *src, dst: *dst, port, protocol });
                }
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

    /// In every family a pair has in common, on every port: the matrix says what the
    /// single-flow verdict says; pairs with no family in common are left out and counted.
    #[test]
    fn the_class_matrix_equals_single_flow_verdicts(cluster in cluster()) {
        let queries = PROBES.iter().map(|&(port, protocol)| palisade_policy::PortQuery { port: palisade_policy::PortRef::Number(port), protocol }).collect();
        let m = matrix(&cluster, &PortSelection::Explicit(queries), Families::BOTH);
        let n = cluster.endpoints.len();
        let mut judged = 0;
        let mut without = 0;
        for from in 0..n {
            for to in (0..n).filter(|&to| to != from) {
                let common = Families::of_endpoint(&cluster.endpoints[from]).intersection(Families::of_endpoint(&cluster.endpoints[to]));
                without += u64::from(common.is_empty());
                for &(port, protocol) in &PROBES {
                    let entries: Vec<_> = m.entries.iter().filter(|e| (e.from, e.to, e.port, e.protocol) == (from, to, port, protocol)).collect();
                    let covered = entries.iter().fold(Families::NONE, |all, e| all.union(e.families));
                    prop_assert_eq!(covered, common, "{} -> {} {}", from, to, port);
                    for v6 in common.iter() {
                        let flow = Flow { src: FlowEnd::endpoint(&cluster, from, Some(v6)), dst: FlowEnd::endpoint(&cluster, to, Some(v6)), port, protocol };
                        let entry = entries.iter().find(|e| e.families.contains(Families::one(v6))).expect("covered");
                        prop_assert_eq!(entry.allowed, verdict(&cluster, &flow).allowed, "{:?} v6={}", entry, v6);
                        judged += 1;
                    }
                }
            }
        }
        prop_assert_eq!(m.without_common_family, without);
        prop_assert_eq!(palisade_policy::pairs_without_common_family(&cluster, Families::BOTH), without);
        prop_assert!(m.entries.len() <= judged);
    }

    #[test]
    fn declared_ports_matrix_probes_exactly_the_declared_ports(cluster in cluster()) {
        let m = matrix(&cluster, &PortSelection::Declared { protocols: vec![] }, Families::BOTH);
        for entry in &m.entries {
            let declared: BTreeSet<(u16, Protocol)> = cluster.endpoints[entry.to].ports.iter().map(|p| (p.number, p.protocol)).collect();
            prop_assert!(declared.contains(&(entry.port, entry.protocol)));
        }
    }

    #[test]
    fn a_pod_always_reaches_itself(cluster in cluster()) {
        for i in 0..cluster.endpoints.len() {
            let v6 = Families::of_endpoint(&cluster.endpoints[i]) == Families::V6;
            let me = FlowEnd::endpoint(&cluster, i, Some(v6));
            for &(port, protocol) in &PROBES {
                let flow = Flow { src: me, dst: me, port, protocol };
                prop_assert!(verdict(&cluster, &flow).allowed);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, .. ProptestConfig::default() })]

    /// With ClusterNetworkPolicies of both tiers mixed with NetworkPolicies: the explained
    /// and fast verdicts agree on every flow, and the class matrix on every pair and port.
    #[test]
    fn tiers_agree_in_verdict_fast_path_and_matrix(cluster in palisade_conformance::strategies::cluster_with_tiers()) {
        for flow in all_flows(&cluster) {
            prop_assert_eq!(verdict(&cluster, &flow).allowed, allowed(&cluster, &flow), "{:?}", flow);
        }
        for v6 in [false, true] {
            let analysis = palisade_policy::analysis::Analysis::new(&cluster, v6);
            let classes = &analysis.classes;
            for &(port, protocol) in &PROBES {
                let sets = analysis.port_sets(port, protocol);
                for a in 0..cluster.endpoints.len() {
                    for b in (0..cluster.endpoints.len()).filter(|&b| b != a) {
                        let (Some(_), Some(_)) = (cluster.endpoints[a].ip_of_family(v6), cluster.endpoints[b].ip_of_family(v6)) else { continue };
                        let flow = Flow { src: FlowEnd::endpoint(&cluster, a, Some(v6)), dst: FlowEnd::endpoint(&cluster, b, Some(v6)), port, protocol };
                        prop_assert_eq!(sets.allowed(classes.class_of[a], classes.class_of[b]), allowed(&cluster, &flow), "{:?}", flow);
                    }
                }
            }
        }
    }
}
