//! A render that reuses what the last renders asked ([`RenderCache`]) gives exactly the table
//! a fresh render gives (and an update diffing only what differs sends the same commands), after any sequence of changes: pods relabelled, added, deleted or
//! moved, namespaces relabelled or deleted, policies edited, added or deleted, on random
//! clusters with ClusterNetworkPolicies, IPv4-only, IPv6-only and dual-stack pods, named
//! ports, host-network pods and overlapping rules.

use palisade_conformance::strategies::{cluster_with_tiers, labels, rules, selector};
use palisade_model::{Cluster, Labels, Policy, Rule, Selector};
use palisade_nft::diff::{differing, incremental};
use palisade_nft::generation::{Generation, Naming, named};
use palisade_nft::{ClassIds, NodeState, RenderCache, RenderOptions, Ruleset, try_render, try_render_cached};
use proptest::prelude::*;

/// One change, applied to whatever the cluster holds at that index (modulo its size).
#[derive(Clone, Debug)]
enum Change {
    Relabel(usize, Labels),
    DeletePod(usize),
    /// A replica of a pod: same labels and ports, next address.
    Replicate(usize),
    MovePod(usize, usize),
    RelabelNamespace(usize, Labels),
    DeleteNamespace(usize),
    EditPolicy(usize, Selector, Option<Vec<Rule>>, Option<Vec<Rule>>),
    AddPolicy(usize, Selector, Option<Vec<Rule>>, Option<Vec<Rule>>),
    DeletePolicy(usize),
    DropClusterPolicy(usize),
}

fn change() -> impl Strategy<Value = Change> {
    prop_oneof![
        (any::<usize>(), labels()).prop_map(|(i, l)| Change::Relabel(i, l)),
        any::<usize>().prop_map(Change::DeletePod),
        any::<usize>().prop_map(Change::Replicate),
        (any::<usize>(), any::<usize>()).prop_map(|(i, n)| Change::MovePod(i, n)),
        (any::<usize>(), labels()).prop_map(|(i, l)| Change::RelabelNamespace(i, l)),
        any::<usize>().prop_map(Change::DeleteNamespace),
        (any::<usize>(), selector(), rules(), rules()).prop_map(|(i, s, a, b)| Change::EditPolicy(i, s, a, b)),
        (any::<usize>(), selector(), rules(), rules()).prop_map(|(i, s, a, b)| Change::AddPolicy(i, s, a, b)),
        any::<usize>().prop_map(Change::DeletePolicy),
        any::<usize>().prop_map(Change::DropClusterPolicy),
    ]
}

fn namespace_names(cluster: &Cluster) -> Vec<String> {
    cluster.namespaces.keys().cloned().collect()
}

fn apply(cluster: &mut Cluster, change: &Change, step: usize) {
    let pods = cluster.endpoints.len();
    let names = namespace_names(cluster);
    match change.clone() {
        Change::Relabel(i, labels) if pods > 0 => cluster.endpoints[i % pods].labels = labels,
        Change::DeletePod(i) if pods > 1 => {
            cluster.endpoints.remove(i % pods);
        }
        Change::Replicate(i) if pods > 0 => {
            let mut copy = cluster.endpoints[i % pods].clone();
            copy.name = format!("r{step}");
            for ip in &mut copy.ips {
                *ip = if ip.is_ipv6() { format!("fd00:9::{step:x}").parse().unwrap() } else { format!("10.9.0.{step}").parse().unwrap() };
            }
            cluster.endpoints.push(copy);
        }
        Change::MovePod(i, n) if pods > 0 && !names.is_empty() => cluster.endpoints[i % pods].namespace = names[n % names.len()].clone(),
        Change::RelabelNamespace(n, mut labels) if !names.is_empty() => {
            let namespace = cluster.namespaces.get_mut(&names[n % names.len()]).unwrap();
            labels.insert("kubernetes.io/metadata.name".into(), namespace.name.clone());
            namespace.labels = labels;
        }
        // Its pods stay (as an agent sees them before their deletion arrives).
        Change::DeleteNamespace(n) if !names.is_empty() => {
            cluster.namespaces.remove(&names[n % names.len()]);
        }
        Change::EditPolicy(i, subject, ingress, egress) if !cluster.policies.is_empty() => {
            let count = cluster.policies.len();
            let policy = &mut cluster.policies[i % count];
            (policy.subject, policy.ingress, policy.egress) = (subject, ingress, egress);
        }
        Change::AddPolicy(n, subject, ingress, egress) if !names.is_empty() => {
            cluster.policies.push(Policy { namespace: names[n % names.len()].clone(), name: format!("added{step}"), subject, ingress, egress, origin: Default::default() });
        }
        Change::DeletePolicy(i) if !cluster.policies.is_empty() => {
            let count = cluster.policies.len();
            cluster.policies.remove(i % count);
        }
        Change::DropClusterPolicy(i) if !cluster.cluster_policies.is_empty() => {
            let count = cluster.cluster_policies.len();
            cluster.cluster_policies.remove(i % count);
        }
        _ => {}
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn a_cached_render_is_a_fresh_render(mut cluster in cluster_with_tiers(), changes in proptest::collection::vec(change(), 1..12)) {
        let mut cache = RenderCache::default();
        let mut classes: Option<ClassIds> = None;
        let mut last: Option<Ruleset> = None;
        for (step, change) in std::iter::once(None).chain(changes.iter().map(Some)).enumerate() {
            if let Some(change) = change {
                apply(&mut cluster, change, step);
            }
            let state = NodeState { cluster: &cluster, local: (0..cluster.endpoints.len()).collect(), options: RenderOptions::default() };
            let fresh = try_render(&state, classes.as_ref());
            let cached = try_render_cached(&state, classes.as_ref(), &mut cache);
            match (fresh, cached) {
                (Ok(fresh), Ok(cached)) => {
                    prop_assert_eq!(&fresh.ruleset, &cached.ruleset, "after {:?}", change);
                    prop_assert_eq!(&fresh.classes, &cached.classes);
                    // An update diffs only what differs, and sends the same commands.
                    if let Some(old) = &last {
                        let naming = Naming::new(Generation::A);
                        let whole = incremental(&named(old, &naming), &named(&fresh.ruleset, &naming));
                        let (before, after) = differing(old, &fresh.ruleset, &naming, &naming);
                        let part = incremental(&named(&before, &naming), &named(&after, &naming));
                        prop_assert_eq!((&whole.prepare, &whole.switch, &whole.cleanup, &whole.changes), (&part.prepare, &part.switch, &part.cleanup, &part.changes));
                    }
                    last = Some(fresh.ruleset);
                    classes = Some(fresh.classes);
                }
                (fresh, cached) => prop_assert_eq!(fresh.err(), cached.err()),
            }
        }
    }
}
