//! On random clusters, the rendered rules decide every new connection exactly as the engine
//! does, with every pod local, and with only some pods local (each side judged on its node).

use palisade_conformance::strategies::{PROBES, cluster};
use palisade_model::Cluster;
use palisade_nft::trace::{Fate, Packet, trace};
use palisade_nft::{NodeState, RenderOptions, render};
use palisade_policy::{Flow, FlowEnd, verdict};
use proptest::prelude::*;


/// Whether the packet passes the node it leaves and the node it reaches.
fn passes(cluster: &Cluster, nodes: &[Vec<usize>], packet: &Packet, from: usize, to: usize) -> bool {
    let node_of = |e: usize| nodes.iter().position(|n| n.contains(&e)).expect("every pod is on a node");
    let mut crossed = vec![node_of(from)];
    if node_of(to) != node_of(from) {
        crossed.push(node_of(to));
    }
    crossed.into_iter().all(|n| {
        let state = NodeState { cluster, local: nodes[n].clone(), options: RenderOptions::default() };
        trace(&render(&state), packet) == Fate::Accept
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, .. ProptestConfig::default() })]

    #[test]
    fn rules_decide_like_the_engine(cluster in cluster(), split in any::<u64>()) {
        let n = cluster.endpoints.len();
        // Two nodes; the bits of `split` place the pods.
        let nodes: Vec<Vec<usize>> = vec![
            (0..n).filter(|i| split >> i & 1 == 0).collect(),
            (0..n).filter(|i| split >> i & 1 == 1).collect(),
        ];
        let single = vec![(0..n).collect::<Vec<_>>()];
        for from in 0..n {
            for to in 0..n {
                if from == to {
                    continue;
                }
                for &(port, protocol) in &PROBES {
                    let flow = Flow { src: FlowEnd::endpoint(&cluster, from, Some(false)), dst: FlowEnd::endpoint(&cluster, to, Some(false)), port, protocol };
                    let expected = verdict(&cluster, &flow).allowed;
                    let packet = Packet {
                        src: cluster.endpoints[from].ips[0],
                        dst: cluster.endpoints[to].ips[0],
                        protocol: protocol.number(),
                        dport: port,
                    };
                    // hostNetwork pods are node traffic: their packets never cross a pod veth of their own.
                    if cluster.endpoints[from].host_network || cluster.endpoints[to].host_network {
                        continue;
                    }
                    prop_assert_eq!(passes(&cluster, &single, &packet, from, to), expected, "one node: {:?}", flow);
                    prop_assert_eq!(passes(&cluster, &nodes, &packet, from, to), expected, "two nodes: {:?}", flow);
                }
            }
        }
    }
}
