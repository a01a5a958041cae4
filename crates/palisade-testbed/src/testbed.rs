//! A node namespace routing to pod namespaces over veth pairs, as the CNI plugin wires pods:
//! the pod's `eth0` has its /32 (and /128) and a default route via a link-local gateway
//! (169.254.1.1 answered by proxy ARP, fe80::1 on the host end); the node has a host route
//! per pod address and forwards.

use std::net::IpAddr;

use crate::netns::NetNs;

/// A pod to create: its name (`ns/name`) and addresses.
#[derive(Clone, Debug)]
pub struct PodSpec {
    pub name: String,
    pub ips: Vec<IpAddr>,
}

pub struct Testbed {
    /// Pods, in the order given; dropped before the node.
    pub pods: Vec<(PodSpec, NetNs)>,
    pub node: NetNs,
}

impl Testbed {
    pub fn new(pods: &[PodSpec]) -> Self {
        let node = NetNs::new("node");
        node.sysctl("net.ipv4.ip_forward", "1");
        node.sysctl("net.ipv6.conf.all.forwarding", "1");
        // Proxy ARP answers only for addresses the node routes through another interface; a
        // real node reaches 169.254.1.1 through its default route, this isolated one via lo.
        let mut node_lines = vec!["route add 169.254.1.1/32 dev lo".to_string()];
        let mut created = Vec::new();
        for (i, spec) in pods.iter().enumerate() {
            let pod = NetNs::new("pod");
            let host_if = format!("vh{i}");
            // Both ends are created directly in their namespaces; the root namespace never
            // sees the link.
            crate::netns::run_checked(std::process::Command::new("ip").args(["link", "add", &host_if, "netns", &node.name, "type", "veth", "peer", "name", "eth0", "netns", &pod.name]));
            let mut pod_lines = vec!["link set eth0 up".to_string()];
            node_lines.push(format!("link set {host_if} up"));
            node_lines.push(format!("addr add fe80::1/64 dev {host_if} nodad"));
            for ip in &spec.ips {
                if ip.is_ipv4() {
                    pod_lines.push(format!("addr add {ip}/32 dev eth0"));
                    node_lines.push(format!("route add {ip}/32 dev {host_if}"));
                } else {
                    pod_lines.push(format!("addr add {ip}/128 dev eth0 nodad"));
                    node_lines.push(format!("route add {ip}/128 dev {host_if}"));
                }
            }
            if spec.ips.iter().any(IpAddr::is_ipv4) {
                pod_lines.push("route add 169.254.1.1 dev eth0 scope link".to_string());
                pod_lines.push("route add default via 169.254.1.1 dev eth0".to_string());
            }
            if spec.ips.iter().any(IpAddr::is_ipv6) {
                pod_lines.push("route add ::/0 via fe80::1 dev eth0".to_string());
            }
            pod.ip_batch(&pod_lines);
            created.push((spec.clone(), pod, host_if));
        }
        node.ip_batch(&node_lines);
        for (_, _, host_if) in &created {
            node.sysctl(&format!("net.ipv4.conf.{host_if}.proxy_arp"), "1");
            node.sysctl(&format!("net.ipv4.neigh.{host_if}.proxy_delay"), "0");
        }
        Self { pods: created.into_iter().map(|(spec, pod, _)| (spec, pod)).collect(), node }
    }

    pub fn pod(&self, name: &str) -> &NetNs {
        &self.pods.iter().find(|(spec, _)| spec.name == name).unwrap_or_else(|| panic!("no pod {name}")).1
    }

    /// Applies an nft JSON document in the node namespace.
    pub fn nft_json(&self, document: &str) -> Result<(), String> {
        let output = self.node.exec_with_input("nft", &["-j", "-f", "-"], document);
        if output.status.success() { Ok(()) } else { Err(String::from_utf8_lossy(&output.stderr).into_owned()) }
    }

    /// `nft list table inet <table>` in the node namespace.
    pub fn nft_list(&self, table: &str) -> String {
        let output = self.node.exec("nft", &["list", "table", "inet", table]);
        assert!(output.status.success(), "nft list: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8_lossy(&output.stdout).into_owned()
    }
}
