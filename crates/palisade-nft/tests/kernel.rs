//! Privileged tests: rulesets applied to a real kernel in throwaway network namespaces (a
//! node routing to pod namespaces over veth pairs), judged with real TCP and UDP packets.
//! Needs root; `PALISADE_REQUIRE_PRIVILEGED=1` turns a skip into a failure.

mod support;

use std::net::IpAddr;
use std::time::Duration;

use palisade_conformance::{Scenario, default_pod_ips, load_cases};
use palisade_model::{Cluster, Protocol};
use palisade_nft::apply::{ApplyKind, Dataplane};
use palisade_nft::json::{document, replace_commands};
use palisade_nft::{DenyAction, NodeState, RenderOptions, render, text};
use palisade_testbed::{Outcome, PodSpec, Prober, Servers, Testbed, normalize_listing, require_privileges};
use support::{NodeNft, cluster, testbed_for};

const TIMEOUT: Duration = Duration::from_millis(1500);

fn all_local(cluster: &Cluster, deny_action: DenyAction) -> palisade_nft::Ruleset {
    render(&NodeState { cluster, local: (0..cluster.endpoints.len()).collect(), options: RenderOptions { deny_action, ..Default::default() } })
}

const SCENARIO: &str = "
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: x, labels: {app: web}}
spec: {containers: [{name: c, ports: [{containerPort: 8080, name: http}, {containerPort: 53, protocol: UDP, name: dns}]}]}
status: {podIPs: [{ip: 10.244.1.10}, {ip: 'fd00:10:244:1::10'}]}
---
apiVersion: v1
kind: Pod
metadata: {name: api, namespace: x, labels: {app: api}}
spec: {containers: [{name: c, ports: [{containerPort: 9090, name: http}]}]}
status: {podIPs: [{ip: 10.244.1.11}, {ip: 'fd00:10:244:1::11'}]}
---
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: y, labels: {app: client}}
spec: {containers: [{name: c}]}
status: {podIPs: [{ip: 10.244.2.10}, {ip: 'fd00:10:244:2::10'}]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web-ingress, namespace: x}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress:
  - from: [{namespaceSelector: {}, podSelector: {matchLabels: {app: client}}}, {ipBlock: {cidr: 192.0.2.0/24, except: [192.0.2.128/25]}}]
    ports: [{port: http}, {port: 8000, endPort: 8100}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: all-udp, namespace: x}
spec:
  podSelector: {}
  ingress: [{ports: [{protocol: UDP}]}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: client-egress, namespace: y}
spec:
  podSelector: {matchLabels: {app: client}}
  policyTypes: [Egress]
  egress:
  - to: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: x}}}]
    ports: [{port: http}, {port: 8050}]
  - to: [{ipBlock: {cidr: 0.0.0.0/0, except: [10.0.0.0/8]}}, {ipBlock: {cidr: '2001:db8::/32'}}]
    ports: [{port: 443}, {protocol: SCTP, port: 9}]
";

#[test]
fn the_kernel_holds_exactly_the_rendered_table() {
    if !require_privileges() {
        return;
    }
    let c = cluster(SCENARIO);
    let bed = testbed_for(&c);
    for deny_action in [DenyAction::Reject, DenyAction::Drop] {
        let ruleset = all_local(&c, deny_action);
        bed.nft_json(&document(&replace_commands(&ruleset))).expect("nft accepts the ruleset");
        assert_eq!(normalize_listing(&bed.nft_list("palisade")), normalize_listing(&text::table(&ruleset)));
    }
}

#[test]
fn the_text_form_loads_into_the_same_table() {
    if !require_privileges() {
        return;
    }
    let c = cluster(SCENARIO);
    let bed = testbed_for(&c);
    let ruleset = all_local(&c, DenyAction::Reject);
    let output = bed.node.exec_with_input("nft", &["-f", "-"], &text::replace_script(&ruleset));
    assert!(output.status.success(), "nft -f: {}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(normalize_listing(&bed.nft_list("palisade")), normalize_listing(&text::table(&ruleset)));
}

/// Every flow of the scenario, real packets against the engine, both families.
#[test]
fn real_packets_follow_the_engine() {
    if !require_privileges() {
        return;
    }
    let c = cluster(SCENARIO);
    let bed = testbed_for(&c);
    let _servers: Vec<Servers> = bed.pods.iter().map(|(_, ns)| Servers::start(ns, &[8080, 9090, 8050, 8000, 80], &[53, 8080])).collect();
    let probers: Vec<Prober> = bed.pods.iter().map(|(_, ns)| Prober::new(ns)).collect();
    let mut dataplane = Dataplane::new(NodeNft(&bed)).stream_elements_above(0);
    dataplane.replace(&all_local(&c, DenyAction::Reject)).expect("apply");
    let mut checked = 0;
    for (from, _) in c.endpoints.iter().enumerate() {
        for (to, dst) in c.endpoints.iter().enumerate() {
            if from == to {
                continue;
            }
            for (port, protocol) in [(8080, Protocol::Tcp), (9090, Protocol::Tcp), (8050, Protocol::Tcp), (8000, Protocol::Tcp), (80, Protocol::Tcp), (53, Protocol::Udp), (8080, Protocol::Udp)] {
                for &ip in &dst.ips {
                    let v6 = ip.is_ipv6();
                    let flow = palisade_policy::Flow { src: palisade_policy::FlowEnd::endpoint(&c, from, Some(v6)), dst: palisade_policy::FlowEnd::endpoint(&c, to, Some(v6)), port, protocol };
                    let expected = palisade_policy::verdict(&c, &flow).allowed;
                    let outcome = probers[from].probe(ip, port, protocol == Protocol::Udp, TIMEOUT);
                    assert_eq!(outcome.allowed(), expected, "{} -> {} {ip} {port}/{protocol}: {outcome:?}", c.endpoints[from].display_name(), dst.display_name());
                    if !expected {
                        assert_eq!(outcome, Outcome::Refused, "denials are rejected at once");
                    }
                    checked += 1;
                }
            }
        }
    }
    assert_eq!(checked, 6 * 7 * 2);
}

#[test]
fn drop_mode_times_out_instead_of_refusing() {
    if !require_privileges() {
        return;
    }
    let c = cluster(SCENARIO);
    let bed = testbed_for(&c);
    let _servers = Servers::start(bed.pod("x/web"), &[80], &[]);
    let prober = Prober::new(bed.pod("x/api"));
    let web: IpAddr = "10.244.1.10".parse().unwrap();
    Dataplane::new(NodeNft(&bed)).replace(&all_local(&c, DenyAction::Drop)).expect("apply");
    assert_eq!(prober.probe(web, 80, false, Duration::from_millis(300)), Outcome::Timeout);
    Dataplane::new(NodeNft(&bed)).replace(&all_local(&c, DenyAction::Reject)).expect("apply");
    assert_eq!(prober.probe(web, 80, false, Duration::from_millis(300)), Outcome::Refused);
}

#[test]
fn policy_judges_service_traffic_after_dnat() {
    if !require_privileges() {
        return;
    }
    let c = cluster(SCENARIO);
    let bed = testbed_for(&c);
    let _servers = Servers::start(bed.pod("x/web"), &[8080, 80], &[]);
    let prober = Prober::new(bed.pod("y/client"));
    // A kube-proxy stand-in in its own table: ClusterIP 10.96.0.10:80 -> web:8080, and
    // 10.96.0.10:81 -> web:80 (a port no rule allows).
    let nat = "table ip svc {\n chain pre {\n  type nat hook prerouting priority dstnat; policy accept;\n  ip daddr 10.96.0.10 tcp dport 80 dnat to 10.244.1.10:8080\n  ip daddr 10.96.0.10 tcp dport 81 dnat to 10.244.1.10:80\n }\n}\n";
    let output = bed.node.exec_with_input("nft", &["-f", "-"], nat);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    bed.pod("y/client").ip(&["route", "add", "10.96.0.0/16", "via", "169.254.1.1", "dev", "eth0"]);
    Dataplane::new(NodeNft(&bed)).replace(&all_local(&c, DenyAction::Reject)).expect("apply");
    let vip: IpAddr = "10.96.0.10".parse().unwrap();
    assert_eq!(prober.probe(vip, 80, false, TIMEOUT), Outcome::Connected, "allowed on the target port (named port http = 8080)");
    assert_eq!(prober.probe(vip, 81, false, TIMEOUT), Outcome::Refused, "the service port does not matter; target port 80 is not allowed");
}

/// The upstream e2e cases with real TCP and UDP packets on a 9-pod node, every step
/// applied as an incremental update. (SCTP cases are traced through the rules in
/// `tests/conformance.rs`; this kernel has no SCTP sockets.)
#[test]
fn upstream_cases_with_real_packets() {
    if !require_privileges() {
        return;
    }
    upstream_cases_on(default_pod_ips);
}

/// The same on an IPv6-only node: every pod has only an IPv6 address (ipBlocks of the
/// cases are written from the pods' addresses, so they are IPv6 too).
#[test]
fn upstream_cases_with_real_packets_on_ipv6() {
    if !require_privileges() {
        return;
    }
    upstream_cases_on(v6_pod_ips);
}

fn v6_pod_ips(pod: &str) -> Vec<IpAddr> {
    let v4 = default_pod_ips(pod)[0].to_string();
    let octets: Vec<&str> = v4.split('.').collect();
    vec![format!("fd00:10:244:{}::{}", octets[2], octets[3]).parse().expect("address")]
}

fn upstream_cases_on(addresses: fn(&str) -> Vec<IpAddr>) {
    let names: Vec<String> = ["x", "y", "z"].iter().flat_map(|ns| ["a", "b", "c"].iter().map(move |p| format!("{ns}/{p}"))).collect();
    let pods: Vec<PodSpec> = names.iter().map(|n| PodSpec { name: n.clone(), ips: addresses(n) }).collect();
    let bed = Testbed::new(&pods);
    let _servers: Vec<Servers> = bed.pods.iter().map(|(_, ns)| Servers::start(ns, &[80, 81], &[80, 81])).collect();
    let probers: Vec<Prober> = bed.pods.iter().map(|(_, ns)| Prober::new(ns)).collect();
    let mut failures = Vec::new();
    let mut probes = 0;
    let mut incremental = 0;
    for case in load_cases() {
        if case.servers.iter().any(|(_, p)| *p == Protocol::Sctp) {
            continue;
        }
        for variant in &case.variants {
            if variant.name == "full-3x3" && matches!(case.id.as_str(), "e2e-35" | "e2e-36") && addresses("x/a")[0].is_ipv6() {
                continue; // The older model's unmasked '<podIP>/4' has no IPv6 form upstream.
            }
            let mut dataplane = Dataplane::new(NodeNft(&bed)).stream_elements_above(0);
            let mismatches = Scenario::run(&case, variant, addresses, |cluster, from, to, port, protocol| {
                let ruleset = all_local(cluster, DenyAction::Reject);
                let report = dataplane.update(&ruleset).expect("apply");
                incremental += usize::from(report.kind == ApplyKind::Incremental && report.commands > 0);
                let from_name = cluster.endpoints[from].display_name();
                let prober = &probers[names.iter().position(|n| *n == from_name).expect("known pod")];
                probes += 1;
                prober.probe(cluster.endpoints[to].ips[0], port, protocol == Protocol::Udp, TIMEOUT).allowed()
            });
            failures.extend(mismatches.iter().map(|m| format!("{} [{}] {m}", case.id, variant.name)));
        }
    }
    assert!(failures.is_empty(), "{} of {probes} real probes differ from upstream:\n{}", failures.len(), failures.join("\n"));
    assert!(probes > 4000, "only {probes} probes");
    assert!(incremental > 10, "policy updates within a case are incremental ({incremental})");
}
