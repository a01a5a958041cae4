//! The upstream NetworkPolicy e2e cases (newest topology) on a two-node lab, through the
//! whole product path: kubectl -> the lab's API server -> engine -> each node's agent -> nft,
//! with real TCP and UDP between pod namespaces spread over both nodes. Needs root. SCTP
//! cases are left out (this kernel has no SCTP sockets; the rules are traced in palisade-nft).

mod support;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr, TcpStream, UdpSocket};
use std::path::Path;
use std::time::Duration;

use palisade_conformance::{Scenario, load_cases};
use palisade_conformance::Step;
use palisade_model::Protocol;
use palisade_testbed::require_privileges;
use serde_json::{Value, json};
use support::{TestLab, ip_of};

fn udp_answers(netns: &Path, ip: IpAddr, port: u16) -> bool {
    palisade_net::run_in(netns, || {
        let socket = UdpSocket::bind(SocketAddr::new(if ip.is_ipv4() { [0, 0, 0, 0].into() } else { std::net::Ipv6Addr::UNSPECIFIED.into() }, 0)).unwrap();
        socket.set_read_timeout(Some(Duration::from_millis(700))).unwrap();
        socket.connect(SocketAddr::new(ip, port)).unwrap();
        let mut buffer = [0u8; 64];
        (0..2).any(|_| socket.send(b"probe").is_ok() && socket.recv(&mut buffer).is_ok())
    })
    .unwrap()
}

fn tcp_connects(netns: &Path, ip: IpAddr, port: u16) -> bool {
    palisade_net::run_in(netns, || TcpStream::connect_timeout(&SocketAddr::new(ip, port), Duration::from_secs(2)).is_ok()).unwrap()
}

/// Runs one case's newest variant on the lab; returns mismatches as text.
fn run_case(lab: &TestLab, case: &palisade_conformance::Case, probes: &mut usize) -> Vec<String> {
    let variant = case.variants.iter().find(|v| v.name == "newest").unwrap_or(&case.variants[0]);
    let ports: Vec<Value> = case.servers.iter().map(|(port, protocol)| json!({"containerPort": port, "protocol": protocol.as_str(), "name": format!("serve-{port}-{}", protocol.as_str().to_ascii_lowercase())})).collect();
    let mut objects = Vec::new();
    for ns in ["x", "y", "z"] {
        objects.push(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}));
    }
    for pod in &variant.pods {
        let (ns, name) = pod.split_once('/').unwrap();
        objects.push(json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns, "labels": {"pod": name}},
                            "spec": {"containers": [{"name": "c", "image": "registry.k8s.io/e2e-test-images/agnhost:2.47", "args": ["serve-hostname"], "ports": ports}]}}));
    }
    let list = json!({"apiVersion": "v1", "kind": "List", "items": objects});
    let file = lab.file("topology.json", &list.to_string());
    lab.k(&["apply", "-f", &file]);
    lab.settle();
    let pods: BTreeMap<String, Value> = ["x", "y", "z"]
        .iter()
        .flat_map(|ns| lab.json(&["get", "pods", "-n", ns])["items"].as_array().unwrap().clone())
        .map(|p| (format!("{}/{}", p["metadata"]["namespace"].as_str().unwrap(), p["metadata"]["name"].as_str().unwrap()), p))
        .collect();
    let nodes: std::collections::BTreeSet<&str> = pods.values().map(|p| p["spec"]["nodeName"].as_str().unwrap()).collect();
    assert_eq!(nodes.len(), 2, "{}: pods on both nodes", case.id);
    let scenario = Scenario::new(case, variant, |pod| vec![ip_of(&pods[pod])]);
    let mut mismatches = Vec::new();
    let mut applied: Vec<(String, String)> = Vec::new();
    for (i, step) in variant.steps.iter().enumerate() {
        match step {
            Step::ApplyPolicy { namespace, policy } => {
                let mut policy = policy.clone();
                scenario.expand_templates(&mut policy);
                let name = policy["metadata"]["name"].as_str().unwrap().to_string();
                let file = lab.file("policy.json", &policy.to_string());
                lab.k(&["apply", "-f", &file, "-n", namespace]);
                applied.push((namespace.clone(), name));
            }
            Step::DeleteAllPolicies { namespaces } => {
                for (ns, name) in applied.iter().filter(|(ns, _)| namespaces.contains(ns)) {
                    lab.k(&["delete", "networkpolicy", name, "-n", ns, "--ignore-not-found"]);
                }
                applied.retain(|(ns, _)| !namespaces.contains(ns));
            }
            Step::AddPodLabels { pod, labels } => {
                let (ns, name) = pod.split_once('/').unwrap();
                let mut args = vec!["label".to_string(), "pod".into(), name.into(), "-n".into(), ns.into(), "--overwrite".into()];
                args.extend(labels.iter().map(|(k, v)| format!("{k}={v}")));
                lab.k(&args.iter().map(String::as_str).collect::<Vec<_>>());
            }
            Step::AddNamespaceLabels { namespace, labels } => {
                let mut args = vec!["label".to_string(), "ns".into(), namespace.clone(), "--overwrite".into()];
                args.extend(labels.iter().map(|(k, v)| format!("{k}={v}")));
                lab.k(&args.iter().map(String::as_str).collect::<Vec<_>>());
            }
            Step::Probe { port, protocol, expect } => {
                lab.synced();
                for e in expect {
                    let netns = lab.pod_netns(&pods[&e.from]);
                    let target = ip_of(&pods[&e.to]);
                    let got = match protocol {
                        Protocol::Tcp => tcp_connects(&netns, target, *port),
                        Protocol::Udp => udp_answers(&netns, target, *port),
                        Protocol::Sctp => continue,
                    };
                    *probes += 1;
                    if got != e.allowed {
                        mismatches.push(format!("{} step {i}: {} -> {} {port}/{protocol}: expected {}, got {}", case.id, e.from, e.to, e.allowed, got));
                    }
                }
            }
        }
    }
    lab.k(&["delete", "ns", "x", "y", "z"]);
    mismatches
}

#[test]
fn upstream_cases_on_a_two_node_lab() {
    if !require_privileges() {
        return;
    }
    let lab = TestLab::up(2);
    let mut mismatches = Vec::new();
    let (mut ran, mut probes) = (0, 0);
    for case in load_cases() {
        if case.servers.iter().any(|(_, p)| *p == Protocol::Sctp) {
            continue;
        }
        mismatches.extend(run_case(&lab, &case, &mut probes));
        ran += 1;
    }
    assert!(ran >= 40, "only {ran} cases ran");
    eprintln!("{ran} cases, {probes} probes over real packets");
    assert!(probes > 400, "only {probes} probes");
    assert!(mismatches.is_empty(), "{} mismatches:\n{}", mismatches.len(), mismatches.join("\n"));
}
