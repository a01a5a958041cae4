//! Services: cluster IPs, endpoints, and each node's DNAT table `inet palisade-proxy` (the
//! kube-proxy role, kept apart from `inet palisade`). DNAT happens in prerouting, before the
//! forward hook, so NetworkPolicy judges the backend pod and its target port, as on a
//! cluster. A pod reaching itself through its Service (hairpin) is SNATed to the node's
//! address on the way back in, as kube-proxy's masquerade bit does.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde_json::Value;

use palisade_apiserver::api::Api;

use crate::controllers;

pub const TABLE: &str = "palisade-proxy";
/// Service CIDRs (`--service-cidr` on a cluster).
pub const SERVICE_CIDRS: [&str; 2] = ["10.96.0.0/16", "fd00:10:96::/112"];
/// The `kubernetes` Service's address, the first of the range.
pub const KUBERNETES_V4: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 1);
/// kube-dns's address, as kubeadm picks it (the tenth of the range).
pub const DNS_V4: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 10);
pub const DNS_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x10, 0x96, 0, 0, 0, 0, 0xa);
const MASQUERADE_MARK: u32 = 0x4000;

/// One port of a Service with its backends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServicePort {
    pub protocol: u8,
    pub port: u16,
    pub backends: Vec<(IpAddr, u16)>,
}

/// A Service as the proxy sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceView {
    pub namespace: String,
    pub name: String,
    pub cluster_ips: Vec<IpAddr>,
    pub ports: Vec<ServicePort>,
}

/// A Service port's target on one pod: a number, or a container port name.
pub fn target_port(port: &Value, pod: &Value) -> Option<u16> {
    match &port["targetPort"] {
        Value::Number(n) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
        Value::String(name) => name.parse().ok().or_else(|| {
            pod["spec"]["containers"].as_array()?.iter().flat_map(|c| c["ports"].as_array().cloned().unwrap_or_default()).find(|p| p["name"] == name.as_str())?["containerPort"]
                .as_u64()
                .and_then(|n| u16::try_from(n).ok())
        }),
        _ => port["port"].as_u64().and_then(|n| u16::try_from(n).ok()),
    }
}

fn protocol_number(port: &Value) -> Option<u8> {
    Some(port["protocol"].as_str().unwrap_or("TCP").parse::<palisade_model::Protocol>().ok()?.number())
}

/// The backends of a Service without a selector: its Endpoints object's addresses and the
/// port of the same name (the `kubernetes` Service points at the API server this way).
fn endpoint_backends(endpoints: Option<&Value>, port: &Value) -> Vec<(IpAddr, u16)> {
    let name = port["name"].as_str().unwrap_or_default();
    let mut out = Vec::new();
    for subset in endpoints.and_then(|e| e["subsets"].as_array()).into_iter().flatten() {
        let Some(target) = subset["ports"].as_array().into_iter().flatten().find(|p| p["name"].as_str().unwrap_or_default() == name) else { continue };
        let Some(number) = target["port"].as_u64().and_then(|n| u16::try_from(n).ok()) else { continue };
        for address in subset["addresses"].as_array().into_iter().flatten() {
            if let Some(ip) = address["ip"].as_str().and_then(|ip| ip.parse().ok()) {
                out.push((ip, number));
            }
        }
    }
    out
}

/// Every Service with cluster IPs, with its backends: the ready pods its selector picks
/// (every address of each: both families), or its Endpoints without a selector.
pub fn services(api: &Api) -> Vec<ServiceView> {
    let pods = controllers::list(api, controllers::pods());
    let endpoints = controllers::list(api, controllers::resource("v1", "Endpoints"));
    let mut views = Vec::new();
    for service in controllers::list(api, controllers::resource("v1", "Service")) {
        let cluster_ips: Vec<IpAddr> = service["spec"]["clusterIPs"].as_array().into_iter().flatten().filter_map(|v| v.as_str()?.parse().ok()).collect();
        if cluster_ips.is_empty() {
            continue;
        }
        let namespace = service["metadata"]["namespace"].as_str().unwrap_or_default();
        let name = service["metadata"]["name"].as_str().unwrap_or_default();
        let selector = service["spec"]["selector"].as_object().filter(|s| !s.is_empty());
        let backends: Vec<&Value> = pods
            .iter()
            .filter(|p| p["metadata"]["namespace"] == namespace && controllers::ready(p))
            .filter(|p| selector.is_some_and(|s| s.iter().all(|(k, v)| p["metadata"]["labels"].get(k) == Some(v))))
            .collect();
        let own_endpoints = endpoints.iter().find(|e| e["metadata"]["namespace"] == namespace && e["metadata"]["name"] == name);
        let ports = service["spec"]["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|port| {
                let protocol = protocol_number(port)?;
                let number = u16::try_from(port["port"].as_u64()?).ok()?;
                let mut targets = Vec::new();
                if selector.is_none() {
                    targets = endpoint_backends(own_endpoints, port);
                }
                for pod in &backends {
                    let Some(target) = target_port(port, pod) else { continue };
                    for ip in pod["status"]["podIPs"].as_array().into_iter().flatten().filter_map(|v| v["ip"].as_str()?.parse::<IpAddr>().ok()) {
                        targets.push((ip, target));
                    }
                }
                targets.sort();
                Some(ServicePort { protocol, port: number, backends: targets })
            })
            .collect();
        views.push(ServiceView { namespace: namespace.to_string(), name: name.to_string(), cluster_ips, ports });
    }
    views
}

fn bracket(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    }
}

/// The node's proxy table in nft syntax: one file that replaces the table in one
/// transaction. Pure: tested without root.
pub fn render(services: &[ServiceView], node_v4: Ipv4Addr, node_v6: Ipv6Addr) -> String {
    let (mut map4, mut map6, mut none4, mut none6, mut chains) = (Vec::new(), Vec::new(), Vec::new(), Vec::new(), String::new());
    for (s, service) in services.iter().enumerate() {
        for (p, port) in service.ports.iter().enumerate() {
            for &ip in &service.cluster_ips {
                let backends: Vec<&(IpAddr, u16)> = port.backends.iter().filter(|(b, _)| b.is_ipv6() == ip.is_ipv6()).collect();
                let key = format!("{ip} . {} . {}", port.protocol, port.port);
                let family = if ip.is_ipv6() { "6" } else { "4" };
                if backends.is_empty() {
                    if ip.is_ipv6() {
                        none6.push(key)
                    } else {
                        none4.push(key)
                    }
                    continue;
                }
                let chain = format!("svc_{s}_{p}_{family}");
                let entry = format!("{key} : goto {chain}");
                if ip.is_ipv6() {
                    map6.push(entry)
                } else {
                    map4.push(entry)
                }
                let _ = writeln!(chains, "\tchain {chain} {{\n\t\tcomment \"{}/{} port {}\"", service.namespace, service.name, port.port);
                if backends.len() == 1 {
                    let _ = writeln!(chains, "\t\tgoto {chain}_0");
                } else {
                    let arms: Vec<String> = (0..backends.len()).map(|i| format!("{i} : goto {chain}_{i}")).collect();
                    let _ = writeln!(chains, "\t\tnumgen random mod {} vmap {{ {} }}", backends.len(), arms.join(", "));
                }
                chains.push_str("\t}\n");
                let nfamily = if ip.is_ipv6() { "ip6" } else { "ip" };
                for (i, (backend, target)) in backends.iter().enumerate() {
                    let _ = writeln!(
                        chains,
                        "\tchain {chain}_{i} {{\n\t\t{nfamily} saddr {backend} meta mark set meta mark | {MASQUERADE_MARK:#x}\n\t\tmeta l4proto {} dnat {nfamily} to {}:{target}\n\t}}",
                        port.protocol,
                        bracket(*backend)
                    );
                }
            }
        }
    }
    let set = |name: &str, kind: &str, data: Option<&str>, elements: &[String]| {
        let head = match data {
            Some(d) => format!("\tmap {name} {{\n\t\ttype {kind} . inet_proto . inet_service : {d}\n"),
            None => format!("\tset {name} {{\n\t\ttype {kind} . inet_proto . inet_service\n"),
        };
        let body = if elements.is_empty() { String::new() } else { format!("\t\telements = {{ {} }}\n", elements.join(",\n\t\t\t     ")) };
        format!("{head}{body}\t}}\n")
    };
    let mut out = format!("table inet {TABLE} {{}}\ndelete table inet {TABLE}\ntable inet {TABLE} {{\n");
    out += &set("services_v4", "ipv4_addr", Some("verdict"), &map4);
    out += &set("services_v6", "ipv6_addr", Some("verdict"), &map6);
    out += &set("no_endpoints_v4", "ipv4_addr", None, &none4);
    out += &set("no_endpoints_v6", "ipv6_addr", None, &none6);
    let dispatch = "\t\tip daddr . meta l4proto . th dport vmap @services_v4\n\t\tip6 daddr . meta l4proto . th dport vmap @services_v6\n";
    let _ = write!(
        out,
        "\tchain prerouting {{\n\t\ttype nat hook prerouting priority dstnat; policy accept;\n{dispatch}\t}}\n\
         \tchain output {{\n\t\ttype nat hook output priority -100; policy accept;\n{dispatch}\t}}\n\
         \tchain postrouting {{\n\t\ttype nat hook postrouting priority srcnat; policy accept;\n\
         \t\tmeta mark & {MASQUERADE_MARK:#x} == {MASQUERADE_MARK:#x} meta nfproto ipv4 snat ip to {node_v4}\n\
         \t\tmeta mark & {MASQUERADE_MARK:#x} == {MASQUERADE_MARK:#x} meta nfproto ipv6 snat ip6 to {node_v6}\n\t}}\n"
    );
    let reject = "\t\tip daddr . meta l4proto . th dport @no_endpoints_v4 reject\n\t\tip6 daddr . meta l4proto . th dport @no_endpoints_v6 reject\n";
    let _ = write!(
        out,
        "\tchain forward_no_endpoints {{\n\t\ttype filter hook forward priority filter - 10; policy accept;\n{reject}\t}}\n\
         \tchain output_no_endpoints {{\n\t\ttype filter hook output priority filter - 10; policy accept;\n{reject}\t}}\n"
    );
    out += &chains;
    out += "}\n";
    out
}

/// kube-proxy's part on every node: each node's Service table replaced (in parallel, each
/// in its node's namespace).
pub fn apply_all(nodes: &[crate::topology::NodeInfo], tables: &[String]) -> Result<(), crate::error::LabError> {
    let results: Vec<Result<(), String>> = std::thread::scope(|scope| {
        let handles: Vec<_> = nodes
            .iter()
            .zip(tables)
            .map(|(node, table)| {
                scope.spawn(move || {
                    palisade_net::run_in(&node.netns, || palisade_nft::NftBinary::default().apply_text(table).map_err(|e| e.to_string()))
                        .map_err(|e| e.to_string())
                        .and_then(|r| r)
                        .map_err(|e| format!("{}: the Service table was rejected: {e}", node.name))
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|_| Err("the proxy thread panicked".into()))).collect()
    });
    results.into_iter().collect::<Result<(), String>>().map_err(crate::error::LabError::failed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn render_dispatches_services_to_backends() {
        let views = vec![ServiceView {
            namespace: "x".into(),
            name: "web".into(),
            cluster_ips: vec!["10.96.0.11".parse().unwrap()],
            ports: vec![ServicePort { protocol: 6, port: 80, backends: vec![("10.244.1.2".parse().unwrap(), 8080), ("10.244.2.2".parse().unwrap(), 8080)] }],
        }];
        let text = render(&views, Ipv4Addr::new(172, 30, 1, 2), "fd00:172:30:1::2".parse().unwrap());
        assert!(text.contains("10.96.0.11 . 6 . 80 : goto svc_0_0_4"), "{text}");
        assert!(text.contains("numgen random mod 2 vmap { 0 : goto svc_0_0_4_0, 1 : goto svc_0_0_4_1 }"), "{text}");
        assert!(text.contains("meta l4proto 6 dnat ip to 10.244.2.2:8080"), "{text}");
        assert!(text.contains("snat ip to 172.30.1.2"), "{text}");
        assert!(text.starts_with("table inet palisade-proxy {}\ndelete table inet palisade-proxy\n"), "one transaction replaces the table");
    }

    #[test]
    fn target_ports_resolve_names_per_pod() {
        let pod = json!({"spec": {"containers": [{"name": "c", "ports": [{"name": "http", "containerPort": 8080}]}]}});
        assert_eq!(target_port(&json!({"port": 80, "targetPort": "http"}), &pod), Some(8080));
        assert_eq!(target_port(&json!({"port": 80, "targetPort": 9090}), &pod), Some(9090));
        assert_eq!(target_port(&json!({"port": 80, "targetPort": "nope"}), &pod), None);
        let endpoints = json!({"subsets": [{"addresses": [{"ip": "172.30.0.1"}], "ports": [{"name": "https", "port": 6443}]}]});
        assert_eq!(endpoint_backends(Some(&endpoints), &json!({"name": "https", "port": 443})), vec![("172.30.0.1".parse().unwrap(), 6443)]);
    }
}
