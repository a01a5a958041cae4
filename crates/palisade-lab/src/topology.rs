//! The lab's machines, all network namespaces: nodes routed to each other through an
//! underlay router, and one "outside" host with a TEST-NET address. Nothing is created in,
//! or changed about, the host's own namespace, and no route leads out of the lab.
//!
//! ```text
//!   node-1 eth0 172.30.1.2 ─┐                 ┌─ outside eth0 203.0.113.10
//!   node-2 eth0 172.30.2.2 ─┼─ underlay (router: n1, n2, ..., ext)
//!   ...                     ┘   routes 10.244.<4i>.0/22 via 172.30.<i>.2
//! ```

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use ipnet::{Ipv4Net, Ipv6Net};
use palisade_net::{add_address, add_route_via, create_named, create_veth, delete_named, link_up, list_named, netns_path, run_in, write_sysctl};
use serde::{Deserialize, Serialize};

use crate::error::LabError;
use crate::paths::LabPaths;

/// At most 50 nodes: node i's pod range is 10.244.<4i>.0/22.
pub const MAX_NODES: u8 = 50;
/// The API server's address inside the lab (on the underlay's loopback; every node routes
/// to it through its default route), and its port there.
pub const API_V4: Ipv4Addr = Ipv4Addr::new(172, 30, 0, 1);
pub const API_PORT: u16 = 6443;
pub const OUTSIDE_V4: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);
pub const OUTSIDE_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x203, 0, 0, 0, 0, 0x10);
const MTU: u32 = 1500;

/// One node: its namespace, its address on the underlay and its pod CIDRs.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct NodeInfo {
    pub name: String,
    pub index: u8,
    pub netns: PathBuf,
    pub ip4: Ipv4Addr,
    pub ip6: Ipv6Addr,
    pub pod_cidr4: Ipv4Net,
    pub pod_cidr6: Ipv6Net,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Topology {
    pub nodes: Vec<NodeInfo>,
    pub underlay: PathBuf,
    pub outside: PathBuf,
}

/// The addressing plan of node `i` (1-based); pure, so it is tested without root.
pub fn node_plan(paths: &LabPaths, i: u8) -> NodeInfo {
    let name = format!("node-{i}");
    NodeInfo {
        netns: netns_path(&paths.node_netns(&name)),
        name,
        index: i,
        ip4: Ipv4Addr::new(172, 30, i, 2),
        ip6: Ipv6Addr::new(0xfd00, 0x172, 0x30, u16::from(i), 0, 0, 0, 2),
        // A /22 per node (1022 pods): room for a thousand pods on a node, where a /24
        // (kubeadm's and kind's default) would stop at 254.
        pod_cidr4: Ipv4Net::new(Ipv4Addr::new(10, 244, i * 4, 0), 22).expect("valid prefix"),
        pod_cidr6: Ipv6Net::new(Ipv6Addr::new(0xfd00, 0x10, 0x244, u16::from(i), 0, 0, 0, 0), 64).expect("valid prefix"),
    }
}

fn underlay_side(node: &NodeInfo) -> (Ipv4Addr, Ipv6Addr) {
    (Ipv4Addr::new(172, 30, node.index, 1), Ipv6Addr::new(0xfd00, 0x172, 0x30, u16::from(node.index), 0, 0, 0, 1))
}

/// How many pods a node can hold: the addresses of its IPv4 range the CNI plugin hands out
/// (all but the network and broadcast addresses).
pub fn pod_capacity(node: &NodeInfo) -> usize {
    (1usize << (32 - node.pod_cidr4.prefix_len())) - 2
}

fn forwarding_on() -> Result<(), LabError> {
    write_sysctl("net.ipv4.ip_forward", "1")?;
    write_sysctl("net.ipv6.conf.all.forwarding", "1")?;
    Ok(())
}

/// Wires `host` (a namespace) to the underlay: `underlay_link` there, `eth0` in `host`,
/// with the given addresses on both ends and a default route from `host` to the underlay.
fn wire(underlay: &Path, host: &Path, underlay_link: &str, ends: [(IpAddr, IpAddr, u8); 2]) -> Result<(), LabError> {
    run_in(underlay, || -> Result<(), LabError> {
        create_veth(host, underlay_link, "eth0", MTU)?;
        link_up(underlay_link)?;
        for (underlay_ip, _, prefix) in ends {
            add_address(underlay_link, underlay_ip, prefix)?;
        }
        Ok(())
    })??;
    run_in(host, || -> Result<(), LabError> {
        link_up("eth0")?;
        for (underlay_ip, host_ip, prefix) in ends {
            add_address("eth0", host_ip, prefix)?;
            let any = if host_ip.is_ipv4() { IpAddr::V4(Ipv4Addr::UNSPECIFIED) } else { IpAddr::V6(Ipv6Addr::UNSPECIFIED) };
            add_route_via(any, 0, underlay_ip)?;
        }
        Ok(())
    })??;
    Ok(())
}

fn build(paths: &LabPaths, nodes: u8) -> Result<Topology, LabError> {
    let underlay = create_named(&paths.underlay_netns())?;
    run_in(&underlay, forwarding_on)??;
    run_in(&underlay, || add_address("lo", IpAddr::V4(API_V4), 32))??;
    let mut infos = Vec::new();
    for i in 1..=nodes {
        let node = node_plan(paths, i);
        create_named(&paths.node_netns(&node.name))?;
        let (u4, u6) = underlay_side(&node);
        wire(&underlay, &node.netns, &format!("n{i}"), [(IpAddr::V4(u4), IpAddr::V4(node.ip4), 24), (IpAddr::V6(u6), IpAddr::V6(node.ip6), 64)])?;
        run_in(&node.netns, forwarding_on)??;
        run_in(&underlay, || -> Result<(), LabError> {
            add_route_via(IpAddr::V4(node.pod_cidr4.network()), node.pod_cidr4.prefix_len(), IpAddr::V4(node.ip4))?;
            add_route_via(IpAddr::V6(node.pod_cidr6.network()), node.pod_cidr6.prefix_len(), IpAddr::V6(node.ip6))?;
            Ok(())
        })??;
        infos.push(node);
    }
    let outside = create_named(&paths.outside_netns())?;
    let gateway6 = Ipv6Addr::new(0x2001, 0xdb8, 0x203, 0, 0, 0, 0, 1);
    wire(&underlay, &outside, "ext", [(IpAddr::V4(Ipv4Addr::new(203, 0, 113, 1)), IpAddr::V4(OUTSIDE_V4), 24), (IpAddr::V6(gateway6), IpAddr::V6(OUTSIDE_V6), 64)])?;
    Ok(Topology { nodes: infos, underlay, outside })
}

fn saved(paths: &LabPaths) -> PathBuf {
    paths.state_dir.join("topology.json")
}

/// The machines of a lab whose daemon died, if they all still exist.
pub fn reuse(paths: &LabPaths) -> Option<Topology> {
    let topology: Topology = serde_json::from_slice(&std::fs::read(saved(paths)).ok()?).ok()?;
    let all = topology.nodes.iter().map(|n| &n.netns).chain([&topology.underlay, &topology.outside]).all(|p| p.exists());
    all.then_some(topology)
}

/// Creates the lab's machines and records them for a restarted daemon. On failure,
/// removes whatever it created.
pub fn create(paths: &LabPaths, nodes: u8) -> Result<Topology, LabError> {
    let topology = create_fresh(paths, nodes)?;
    std::fs::write(saved(paths), serde_json::to_vec(&topology).expect("topologies serialize")).map_err(LabError::io("recording the lab's topology"))?;
    Ok(topology)
}

fn create_fresh(paths: &LabPaths, nodes: u8) -> Result<Topology, LabError> {
    if nodes == 0 || nodes > MAX_NODES {
        return Err(LabError::invalid(format!("--nodes {nodes}: a lab has 1 to {MAX_NODES} nodes")));
    }
    if !list_named(&paths.netns_prefix()).is_empty() {
        return Err(LabError::invalid(format!("namespaces of lab {:?} already exist ({}...): run `palisade lab down` first", paths.name, paths.netns_prefix())));
    }
    build(paths, nodes).inspect_err(|_| {
        let _ = remove(paths);
    })
}

/// Deletes every namespace of the lab (nodes, pods, underlay, outside); their links, routes
/// and nft tables go with them. Returns the names deleted.
pub fn remove(paths: &LabPaths) -> Result<Vec<String>, LabError> {
    let names = list_named(&paths.netns_prefix());
    for name in &names {
        delete_named(name)?;
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addressing_plan() {
        let paths = LabPaths::new("t").unwrap();
        let node = node_plan(&paths, 2);
        assert_eq!(node.name, "node-2");
        assert_eq!(node.netns, PathBuf::from("/run/netns/pal-t-node-2"));
        assert_eq!(node.ip4, Ipv4Addr::new(172, 30, 2, 2));
        assert_eq!(node.pod_cidr4.to_string(), "10.244.8.0/22");
        assert_eq!(node.pod_cidr6.to_string(), "fd00:10:244:2::/64");
        assert_eq!(node.ip6.to_string(), "fd00:172:30:2::2");
        assert_eq!(OUTSIDE_V6.to_string(), "2001:db8:203::10");
    }
}
