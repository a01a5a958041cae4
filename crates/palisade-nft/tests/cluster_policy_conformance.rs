//! Upstream's ClusterNetworkPolicy conformance tests (the built-in `cnp-*` cases, Harry
//! Potter topology) against the engine and the rendered rules: every probe's expectation,
//! the engine's verdict and the first packet traced through the node table (all pods
//! local, and split over two nodes) must agree, SCTP included. As root, every ruleset a
//! case renders is also loaded into a real kernel as an update of the one before.
//! (`palisade conformance` runs the same cases with real packets in the lab.)

mod support;

use std::net::{IpAddr, Ipv4Addr};

use palisade_conformance::file::builtin;
use palisade_conformance::{Scenario, Step};
use palisade_model::Cluster;
use palisade_nft::trace::{Fate, Packet, trace};
use palisade_nft::{NodeState, RenderOptions, render};
use palisade_testbed::require_privileges;
use support::Kernel;

fn passes(cluster: &Cluster, nodes: &[Vec<usize>], from: usize, to: usize, packet: &Packet) -> bool {
    let node_of = |e: usize| nodes.iter().position(|n| n.contains(&e)).expect("every pod is on a node");
    let mut crossed = vec![node_of(from)];
    if node_of(to) != node_of(from) {
        crossed.push(node_of(to));
    }
    crossed.into_iter().all(|n| trace(&render(&NodeState { cluster, local: nodes[n].clone(), options: RenderOptions::default() }), packet) == Fate::Accept)
}

#[test]
fn cluster_policy_cases_agree_in_engine_and_rules() {
    let kernel = require_privileges().then(|| Kernel::new(1));
    let cases: Vec<_> = builtin().into_iter().filter(|c| c.id.starts_with("cnp-")).collect();
    assert_eq!(cases.len(), 8);
    let mut probes = 0;
    for case in &cases {
        // Pods get 10.244.<pod index>.10 as their address.
        let index: Vec<String> = case.topology.pods.iter().map(|p| p.key()).collect();
        let mut scenario = Scenario::from_topology(&case.topology, |pod| {
            let i = index.iter().position(|p| p == pod).expect("in the topology") as u8;
            vec![IpAddr::V4(Ipv4Addr::new(10, 244, i + 1, 10))]
        });
        for (s, step) in case.steps.iter().enumerate() {
            scenario.apply(step);
            let cluster = &scenario.cluster;
            let n = cluster.endpoints.len();
            if let Some(kernel) = &kernel {
                let all = render(&NodeState { cluster, local: (0..n).collect(), options: RenderOptions::default() });
                kernel.load(0, &all).unwrap_or_else(|e| panic!("{} step {s}: {e}", case.id));
            }
            let Step::Probe { port, protocol, expect, .. } = step else { continue };
            let single = vec![(0..n).collect::<Vec<_>>()];
            let split = vec![(0..n).filter(|i| i % 2 == 0).collect(), (0..n).filter(|i| i % 2 == 1).collect()];
            for e in expect {
                let (from, to) = (scenario.pod_index(&e.from), scenario.pod_index(&e.to));
                let flow = palisade_policy::Flow {
                    src: palisade_policy::FlowEnd::endpoint(cluster, from, None),
                    dst: palisade_policy::FlowEnd::endpoint(cluster, to, None),
                    port: *port,
                    protocol: *protocol,
                };
                let engine = palisade_policy::verdict(cluster, &flow).allowed;
                assert_eq!(engine, e.allowed, "{} step {s}: engine {} -> {} {port}/{protocol}", case.id, e.from, e.to);
                let packet = Packet { src: cluster.endpoints[from].ips[0], dst: cluster.endpoints[to].ips[0], protocol: protocol.number(), dport: *port };
                assert_eq!(passes(cluster, &single, from, to, &packet), e.allowed, "{} step {s}: rules on one node {} -> {} {port}/{protocol}", case.id, e.from, e.to);
                assert_eq!(passes(cluster, &split, from, to, &packet), e.allowed, "{} step {s}: rules on two nodes {} -> {} {port}/{protocol}", case.id, e.from, e.to);
                probes += 1;
            }
        }
    }
    assert!(probes > 80, "{probes} probes");
}
