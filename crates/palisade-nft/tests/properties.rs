//! On random clusters (rules that overlap, IPv4-only, IPv6-only and dual-stack pods), the
//! rendered rules decide every new connection exactly as the engine does, in every family a
//! pair has in common, with every pod local and with only some pods local (each side judged
//! on its node). As root, every ruleset rendered here is also loaded into a real kernel, as
//! an incremental update from the one before: the kernel must accept each one, and hold
//! exactly what was rendered. (Trace-based checks alone accepted rulesets the kernel
//! refuses: interval sets with overlapping elements.)

mod support;

use palisade_conformance::strategies::{PROBES, cluster, cluster_with_tiers};
use palisade_model::Cluster;
use palisade_nft::trace::{Fate, Packet, trace};
use palisade_nft::{NodeState, RenderOptions, Ruleset, render};
use palisade_policy::{Families, Flow, FlowEnd, verdict};
use palisade_testbed::require_privileges;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use support::Kernel;

/// Whether the packet passes the node it leaves and the node it reaches.
fn passes(rulesets: &[Ruleset], nodes: &[Vec<usize>], packet: &Packet, from: usize, to: usize) -> bool {
    let node_of = |e: usize| nodes.iter().position(|n| n.contains(&e)).expect("every pod is on a node");
    let mut crossed = vec![node_of(from)];
    if node_of(to) != node_of(from) {
        crossed.push(node_of(to));
    }
    crossed.into_iter().all(|n| trace(&rulesets[n], packet) == Fate::Accept)
}

fn render_nodes(cluster: &Cluster, nodes: &[Vec<usize>]) -> Vec<Ruleset> {
    nodes.iter().map(|local| render(&NodeState { cluster, local: local.clone(), options: RenderOptions::default() })).collect()
}

/// Every pair of pods, in every family they share and on every probe port: the rules of
/// the nodes the packet crosses decide as the engine does, with the pods on one node and
/// split over two by the bits of `split`.
fn rules_agree(cluster: &Cluster, split: u64, kernel: Option<&Kernel>) -> Result<(), TestCaseError> {
    let n = cluster.endpoints.len();
    // Nodes 0 and 1 hold the two-node split, node 2 the single node with every pod.
    let nodes: Vec<Vec<usize>> = vec![(0..n).filter(|i| split >> i & 1 == 0).collect(), (0..n).filter(|i| split >> i & 1 == 1).collect()];
    let single = vec![(0..n).collect::<Vec<_>>()];
    let (split_rules, single_rules) = (render_nodes(cluster, &nodes), render_nodes(cluster, &single));
    if let Some(kernel) = kernel {
        for (k, ruleset) in split_rules.iter().chain(&single_rules).enumerate() {
            kernel.load(k, ruleset).map_err(|e| TestCaseError::fail(format!("node {k}: {e}")))?;
        }
    }
    for from in 0..n {
        for to in 0..n {
            // hostNetwork pods are node traffic: their packets never cross a pod veth of their own.
            if from == to || cluster.endpoints[from].host_network || cluster.endpoints[to].host_network {
                continue;
            }
            let common = Families::of_endpoint(&cluster.endpoints[from]).intersection(Families::of_endpoint(&cluster.endpoints[to]));
            for v6 in common.iter() {
                for &(port, protocol) in &PROBES {
                    let flow = Flow { src: FlowEnd::endpoint(cluster, from, Some(v6)), dst: FlowEnd::endpoint(cluster, to, Some(v6)), port, protocol };
                    let expected = verdict(cluster, &flow).allowed;
                    let ip = |i: usize| cluster.endpoints[i].ip_of_family(v6).expect("in the family");
                    let packet = Packet { src: ip(from), dst: ip(to), protocol: protocol.number(), dport: port };
                    prop_assert_eq!(passes(&single_rules, &single, &packet, from, to), expected, "one node: {:?}", flow);
                    prop_assert_eq!(passes(&split_rules, &nodes, &packet, from, to), expected, "two nodes: {:?}", flow);
                }
            }
        }
    }
    Ok(())
}

#[test]
fn rules_decide_like_the_engine() {
    let kernel = require_privileges().then(|| Kernel::new(3));
    let mut runner = TestRunner::new(Config { cases: 200, ..Config::default() });
    if let Err(error) = runner.run(&(cluster(), any::<u64>()), |(cluster, split)| rules_agree(&cluster, split, kernel.as_ref())) {
        panic!("{error}");
    }
}

/// The same with ClusterNetworkPolicies of both tiers mixed in (tied priorities, every
/// action, every peer kind including ones failing closed, named ports): the tiers' verdict
/// maps, rule chains and NetworkPolicy chains decide as the engine does, and the kernel
/// takes every ruleset as an update of the one before.
#[test]
fn tiers_decide_like_the_engine() {
    let kernel = require_privileges().then(|| Kernel::new(3));
    let mut runner = TestRunner::new(Config { cases: 200, ..Config::default() });
    if let Err(error) = runner.run(&(cluster_with_tiers(), any::<u64>()), |(cluster, split)| rules_agree(&cluster, split, kernel.as_ref())) {
        panic!("{error}");
    }
}
