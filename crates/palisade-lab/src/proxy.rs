//! Services: cluster IPs, endpoints, and each node's DNAT table `inet palisade-proxy` (the
//! kube-proxy role, kept apart from `inet palisade`). DNAT happens in prerouting, before the
//! forward hook, so NetworkPolicy judges the backend pod and its target port, as on a
//! cluster. A pod reaching itself through its Service (hairpin) is SNATed to the node's
//! address on the way back in, as kube-proxy's masquerade bit does.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde_json::{Value, json};

use crate::error::LabError;
use crate::store::Store;

pub const TABLE: &str = "palisade-proxy";
/// Service CIDRs (`--service-cidr` on a cluster).
pub const SERVICE_V4: (Ipv4Addr, u8) = (Ipv4Addr::new(10, 96, 0, 0), 16);
pub const SERVICE_V6: (Ipv6Addr, u8) = (Ipv6Addr::new(0xfd00, 0x10, 0x96, 0, 0, 0, 0, 0), 112);
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

fn in_range(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => u32::from(v4) >> (32 - SERVICE_V4.1) == u32::from(SERVICE_V4.0) >> (32 - SERVICE_V4.1),
        IpAddr::V6(v6) => u128::from(v6) >> (128 - SERVICE_V6.1) == u128::from(SERVICE_V6.0) >> (128 - SERVICE_V6.1),
    }
}

fn used_ips(store: &Store) -> BTreeSet<IpAddr> {
    store
        .list("Service", None)
        .iter()
        .flat_map(|s| s["spec"]["clusterIPs"].as_array().cloned().unwrap_or_default())
        .filter_map(|ip| ip.as_str()?.parse().ok())
        .collect()
}

/// The first free address of a family after the reserved ones (.1 for `kubernetes`, .10
/// for DNS).
fn next_free(used: &BTreeSet<IpAddr>, v6: bool) -> Option<IpAddr> {
    (11u32..65_000).map(|i| if v6 { IpAddr::V6(Ipv6Addr::from(u128::from(SERVICE_V6.0) + u128::from(i))) } else { IpAddr::V4(Ipv4Addr::from(u32::from(SERVICE_V4.0) + i)) }).find(|ip| !used.contains(ip))
}

/// Fills in what the API server defaults and allocates for a Service: type, port protocols
/// and target ports, ipFamilies, clusterIP(s). Keeps what is already set (re-applies keep
/// their addresses); rejects a requested address outside the range or taken.
pub fn default_service(store: &Store, service: &mut Value, previous: Option<&Value>) -> Result<(), LabError> {
    let spec = &mut service["spec"];
    if !spec.is_object() {
        *spec = json!({});
    }
    if spec.get("type").is_none() {
        spec["type"] = json!("ClusterIP");
    }
    if spec.get("sessionAffinity").is_none() {
        spec["sessionAffinity"] = json!("None");
    }
    if let Some(ports) = spec["ports"].as_array_mut() {
        for port in ports {
            if port.get("protocol").is_none() {
                port["protocol"] = json!("TCP");
            }
            if port.get("targetPort").is_none() {
                port["targetPort"] = port["port"].clone();
            }
        }
    }
    if spec["clusterIP"] == "None" {
        spec["clusterIPs"] = json!(["None"]);
        return Ok(());
    }
    let policy = spec["ipFamilyPolicy"].as_str().unwrap_or("SingleStack").to_string();
    spec["ipFamilyPolicy"] = json!(policy);
    if spec.get("ipFamilies").is_none() {
        spec["ipFamilies"] = if policy == "SingleStack" { json!(["IPv4"]) } else { json!(["IPv4", "IPv6"]) };
    }
    let kept = previous.and_then(|p| p["spec"]["clusterIPs"].as_array().cloned());
    let requested: Option<IpAddr> = spec["clusterIP"].as_str().filter(|s| !s.is_empty()).map(|s| s.parse()).transpose().map_err(|_| {
        LabError::invalid(format!("Service {:?}: spec.clusterIP: {} is not an IP address", service["metadata"]["name"], service["spec"]["clusterIP"]))
    })?;
    let spec = &mut service["spec"];
    if let Some(kept) = kept {
        spec["clusterIP"] = kept[0].clone();
        spec["clusterIPs"] = Value::Array(kept);
        return Ok(());
    }
    let mut used = used_ips(store);
    let mut ips = Vec::new();
    for family in spec["ipFamilies"].as_array().cloned().unwrap_or_default() {
        let v6 = family == "IPv6";
        let ip = match requested.filter(|ip| ip.is_ipv6() == v6) {
            Some(ip) if !in_range(ip) => {
                return Err(LabError::invalid(format!("spec.clusterIP: Invalid value: \"{ip}\": provided IP is not in the valid range (10.96.0.0/16)")));
            }
            Some(ip) if used.contains(&ip) => return Err(LabError::invalid(format!("spec.clusterIP: Invalid value: \"{ip}\": provided IP is already allocated"))),
            Some(ip) => ip,
            None => next_free(&used, v6).ok_or_else(|| LabError::failed("the service range is exhausted"))?,
        };
        used.insert(ip);
        ips.push(json!(ip.to_string()));
    }
    spec["clusterIP"] = ips.first().cloned().unwrap_or(Value::Null);
    spec["clusterIPs"] = Value::Array(ips);
    Ok(())
}

fn ready(pod: &Value) -> bool {
    pod["status"]["conditions"].as_array().is_some_and(|c| c.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
}

/// A Service port's target on one pod: a number, or a container port name.
fn target_port(port: &Value, pod: &Value) -> Option<u16> {
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

/// Every Service with cluster IPs, with the ready pods its selector picks as backends.
pub fn services(store: &Store) -> Vec<ServiceView> {
    let pods = store.list("Pod", None);
    let mut views = Vec::new();
    for service in store.list("Service", None) {
        let cluster_ips: Vec<IpAddr> = service["spec"]["clusterIPs"].as_array().into_iter().flatten().filter_map(|v| v.as_str()?.parse().ok()).collect();
        if cluster_ips.is_empty() {
            continue;
        }
        let namespace = service["metadata"]["namespace"].as_str().unwrap_or_default();
        let selector = service["spec"]["selector"].as_object();
        let backends: Vec<&Value> = pods
            .iter()
            .filter(|p| p["metadata"]["namespace"] == namespace && ready(p))
            .filter(|p| selector.is_some_and(|s| !s.is_empty() && s.iter().all(|(k, v)| p["metadata"]["labels"].get(k) == Some(v))))
            .copied()
            .collect();
        let ports = service["spec"]["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|port| {
                let protocol = port["protocol"].as_str().unwrap_or("TCP").parse::<palisade_model::Protocol>().ok()?.number();
                let number = u16::try_from(port["port"].as_u64()?).ok()?;
                let mut targets = Vec::new();
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
        views.push(ServiceView {
            namespace: namespace.to_string(),
            name: service["metadata"]["name"].as_str().unwrap_or_default().to_string(),
            cluster_ips,
            ports,
        });
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
                    if ip.is_ipv6() { none6.push(key) } else { none4.push(key) }
                    continue;
                }
                let chain = format!("svc_{s}_{p}_{family}");
                let entry = format!("{key} : goto {chain}");
                if ip.is_ipv6() { map6.push(entry) } else { map4.push(entry) }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn service(store: &Store, yaml: Value) -> Value {
        let mut s = yaml;
        default_service(store, &mut s, None).unwrap();
        s
    }

    #[test]
    fn defaults_and_allocation() {
        let mut store = Store::new("t");
        let a = service(&store, json!({"kind": "Service", "metadata": {"name": "a", "namespace": "x"}, "spec": {"ports": [{"port": 80}]}}));
        assert_eq!(a["spec"]["clusterIP"], "10.96.0.11");
        assert_eq!(a["spec"]["ports"][0], json!({"port": 80, "protocol": "TCP", "targetPort": 80}));
        assert_eq!(a["spec"]["ipFamilies"], json!(["IPv4"]));
        store.apply(a.clone());
        let b = service(&store, json!({"kind": "Service", "metadata": {"name": "b", "namespace": "x"}, "spec": {"ipFamilyPolicy": "PreferDualStack", "ports": [{"port": 53, "protocol": "UDP"}]}}));
        assert_eq!(b["spec"]["clusterIPs"], json!(["10.96.0.12", "fd00:10:96::b"]));
        let mut taken = json!({"kind": "Service", "metadata": {"name": "c", "namespace": "x"}, "spec": {"clusterIP": "10.96.0.11"}});
        assert!(default_service(&store, &mut taken, None).unwrap_err().to_string().contains("already allocated"));
        let mut outside = json!({"kind": "Service", "metadata": {"name": "c", "namespace": "x"}, "spec": {"clusterIP": "192.0.2.1"}});
        assert!(default_service(&store, &mut outside, None).unwrap_err().to_string().contains("not in the valid range"));
        let headless = service(&store, json!({"kind": "Service", "metadata": {"name": "h", "namespace": "x"}, "spec": {"clusterIP": "None"}}));
        assert_eq!(headless["spec"]["clusterIPs"], json!(["None"]));
    }

    #[test]
    fn endpoints_are_ready_pods_with_resolved_target_ports() {
        let mut store = Store::new("t");
        let svc = service(&store, json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "x"}, "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": "http"}]}}));
        store.apply(svc);
        for (name, ip, is_ready) in [("a", "10.244.1.2", true), ("b", "10.244.2.2", true), ("c", "10.244.1.3", false)] {
            store.apply(json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "x", "labels": {"app": "web"}},
                               "spec": {"containers": [{"name": "c", "ports": [{"name": "http", "containerPort": 8080}]}]}}));
            store.update(&crate::store::Key::new("Pod", "x", name), |p| {
                p["status"] = json!({"podIPs": [{"ip": ip}], "conditions": [{"type": "Ready", "status": if is_ready { "True" } else { "False" }}]});
            });
        }
        let views = services(&store);
        assert_eq!(views[0].ports[0].backends, vec![("10.244.1.2".parse().unwrap(), 8080), ("10.244.2.2".parse().unwrap(), 8080)]);
        let text = render(&views, Ipv4Addr::new(172, 30, 1, 2), "fd00:172:30:1::2".parse().unwrap());
        assert!(text.contains("10.96.0.11 . 6 . 80 : goto svc_0_0_4"), "{text}");
        assert!(text.contains("numgen random mod 2 vmap { 0 : goto svc_0_0_4_0, 1 : goto svc_0_0_4_1 }"), "{text}");
        assert!(text.contains("meta l4proto 6 dnat ip to 10.244.2.2:8080"), "{text}");
        assert!(text.contains("snat ip to 172.30.1.2"), "{text}");
        assert!(text.starts_with("table inet palisade-proxy {}\ndelete table inet palisade-proxy\n"), "one transaction replaces the table");
    }
}

