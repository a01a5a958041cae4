//! Privileged: policies written the way people write them, whose rules admit overlapping
//! (peer x port) rectangles, load into the kernel as a whole table and as incremental
//! updates, and real packets (IPv4-only, IPv6-only and dual-stack pods) follow the engine.
//! Before sets were made disjoint, nft refused every one of these tables ("File exists").

mod support;

use std::time::Duration;

use palisade_model::Cluster;
use palisade_nft::apply::{ApplyKind, Dataplane};
use palisade_nft::{NodeState, RenderOptions, Ruleset, render, text};
use palisade_policy::{Families, Flow, FlowEnd, verdict};
use palisade_testbed::{PodSpec, Prober, Servers, Testbed, normalize_listing, require_privileges};
use support::{NodeNft, cluster};

const PODS: &str = "
apiVersion: v1
kind: Namespace
metadata: {name: x}
---
apiVersion: v1
kind: Namespace
metadata: {name: y, labels: {team: y}}
---
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: x, labels: {app: web}}
spec: {containers: [{name: c, ports: [{containerPort: 8080, name: http}, {containerPort: 80}]}]}
status: {podIPs: [{ip: 10.244.1.3}, {ip: 'fd00:10:244:1::3'}]}
---
apiVersion: v1
kind: Pod
metadata: {name: a, namespace: x, labels: {app: a}}
spec: {containers: [{name: c}]}
status: {podIPs: [{ip: 10.244.1.2}, {ip: 'fd00:10:244:1::2'}]}
---
apiVersion: v1
kind: Pod
metadata: {name: v4only, namespace: y, labels: {app: c}}
spec: {containers: [{name: c}]}
status: {podIPs: [{ip: 10.244.2.20}]}
---
apiVersion: v1
kind: Pod
metadata: {name: v6only, namespace: y, labels: {app: c}}
spec: {containers: [{name: c}]}
status: {podIPs: [{ip: 'fd00:10:244:2::20'}]}
---
apiVersion: v1
kind: Pod
metadata: {name: other, namespace: y, labels: {app: d}}
spec: {containers: [{name: c}]}
status: {podIPs: [{ip: 10.244.3.30}, {ip: 'fd00:10:244:3::30'}]}
";

/// Each policy overlaps with itself; together they isolate web (ingress) and a (egress).
const POLICIES: [(&str, &str); 5] = [
    // The example: every port from a, and 8080 from a again.
    (
        "same-peer",
        "podSelector: {matchLabels: {app: web}}
ingress:
- from: [{podSelector: {matchLabels: {app: a}}}]
- from: [{podSelector: {matchLabels: {app: a}}}]
  ports: [{port: 8080}]",
    ),
    // Nested and equal ipBlocks, with and without excepts, in both families.
    (
        "cidrs",
        "podSelector: {matchLabels: {app: web}}
ingress:
- from: [{ipBlock: {cidr: 10.0.0.0/8}}, {ipBlock: {cidr: 'fd00::/8'}}]
  ports: [{port: 80}]
- from: [{ipBlock: {cidr: 10.244.0.0/16, except: [10.244.3.0/24]}}, {ipBlock: {cidr: 'fd00:10:244::/48', except: ['fd00:10:244:3::/64']}}]
  ports: [{port: 8080}, {port: 80}]
- from: [{ipBlock: {cidr: 10.244.0.0/16}}, {ipBlock: {cidr: 10.244.2.0/24}}]
  ports: [{port: 8080}]",
    ),
    // An endPort range holding a listed port and a named port resolving to it.
    (
        "ranges",
        "podSelector: {matchLabels: {app: web}}
ingress:
- from: [{namespaceSelector: {matchLabels: {team: y}}}]
  ports: [{port: 8000, endPort: 9000}, {port: 8080}, {port: http}]",
    ),
    // Namespace and pod peers covering the same pods, with overlapping ports.
    (
        "peers",
        "podSelector: {matchLabels: {app: web}}
ingress:
- from: [{namespaceSelector: {}, podSelector: {matchLabels: {app: c}}}, {namespaceSelector: {matchLabels: {team: y}}}]
  ports: [{port: 80}, {port: 8000, endPort: 8100}]
- from: [{namespaceSelector: {matchLabels: {team: y}}, podSelector: {}}]
  ports: [{port: 8080}]",
    ),
    // Egress: a named port resolving to a listed number, beside a portless rule.
    (
        "egress",
        "podSelector: {matchLabels: {app: a}}
policyTypes: [Egress]
egress:
- to: [{namespaceSelector: {}}]
  ports: [{port: http}, {port: 8080}]
- to: [{podSelector: {matchLabels: {app: web}}}]
- to: [{ipBlock: {cidr: 10.244.0.0/16}}, {ipBlock: {cidr: 'fd00:10:244::/48'}}]
  ports: [{port: 8000, endPort: 8100}]",
    ),
];

fn policy(name: &str, spec: &str) -> String {
    let spec: String = spec.lines().map(|l| format!("  {l}\n")).collect();
    format!("---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: {name}, namespace: x}}\nspec:\n{spec}")
}

fn rendered(c: &Cluster) -> Ruleset {
    render(&NodeState { cluster: c, local: (0..c.endpoints.len()).collect(), options: RenderOptions::default() })
}

const PORTS: [u16; 4] = [80, 8080, 8050, 8500];

/// Every pair, every port, in every family both ends have: real packets against the engine.
fn probe_all(c: &Cluster, bed: &Testbed, probers: &[Prober], step: &str) -> usize {
    let mut probes = 0;
    for from in 0..c.endpoints.len() {
        for to in (0..c.endpoints.len()).filter(|&to| to != from) {
            let common = Families::of_endpoint(&c.endpoints[from]).intersection(Families::of_endpoint(&c.endpoints[to]));
            for v6 in common.iter() {
                for port in PORTS {
                    let flow = Flow { src: FlowEnd::endpoint(c, from, Some(v6)), dst: FlowEnd::endpoint(c, to, Some(v6)), port, protocol: palisade_model::Protocol::Tcp };
                    let expected = verdict(c, &flow).allowed;
                    let ip = c.endpoints[to].ip_of_family(v6).expect("in the family");
                    let from_index = bed.pods.iter().position(|(spec, _)| spec.name == c.endpoints[from].display_name()).expect("pod");
                    let outcome = probers[from_index].probe(ip, port, false, Duration::from_millis(1500));
                    assert_eq!(outcome.allowed(), expected, "{step}: {} -> {} {ip}:{port}: {outcome:?}", c.endpoints[from].display_name(), c.endpoints[to].display_name());
                    probes += 1;
                }
            }
        }
    }
    probes
}

#[test]
fn overlapping_rules_load_and_real_packets_follow_the_engine() {
    if !require_privileges() {
        return;
    }
    let base = cluster(PODS);
    let specs: Vec<PodSpec> = base.endpoints.iter().map(|e| PodSpec { name: e.display_name(), ips: e.ips.clone() }).collect();
    let bed = Testbed::new(&specs);
    let _servers: Vec<Servers> = bed.pods.iter().map(|(_, ns)| Servers::start(ns, &PORTS, &[])).collect();
    let probers: Vec<Prober> = bed.pods.iter().map(|(_, ns)| Prober::new(ns)).collect();
    let mut dataplane = Dataplane::new(NodeNft(&bed)).stream_elements_above(0);

    // All at once (a full replace), then one at a time, then removed one at a time: every
    // step after the first an incremental update the kernel must accept as it is.
    let all: String = POLICIES.iter().map(|(n, s)| policy(n, s)).collect();
    let mut steps: Vec<(String, String)> = vec![("all policies".into(), all)];
    for k in 1..=POLICIES.len() {
        steps.push((format!("first {k}"), POLICIES[..k].iter().map(|(n, s)| policy(n, s)).collect()));
    }
    for k in 1..POLICIES.len() {
        steps.push((format!("last {}", POLICIES.len() - k), POLICIES[k..].iter().map(|(n, s)| policy(n, s)).collect()));
    }
    let mut probes = 0;
    for (i, (step, policies)) in steps.iter().enumerate() {
        let c = cluster(&format!("{PODS}{policies}"));
        let report = dataplane.update(&rendered(&c)).unwrap_or_else(|e| panic!("{step}: {e}"));
        assert_eq!(report.kind, if i == 0 { ApplyKind::Full } else { ApplyKind::Incremental }, "{step}: {report}");
        assert_eq!(normalize_listing(&bed.nft_list("palisade")), normalize_listing(&text::table(&dataplane.live().expect("applied"))), "{step}");
        probes += probe_all(&c, &bed, &probers, step);
    }
    assert!(probes > 500, "{probes} probes");
}
