//! ClusterNetworkPolicy tiers in the engine: the upstream conformance cases' logic (the
//! Harry Potter topology of kubernetes-sigs/network-policy-api) and each evaluation step:
//! tier order, priority, rule order, Pass, fail-closed peers, egress Accept against the
//! destination's ingress, hostNetwork pods, networks covering pod addresses, named ports,
//! node peers. Every verdict is also checked against the fast path (`judge`) and the class
//! matrix.

mod common;

use common::{cluster, judge, ns, pod};
use palisade_model::{Cluster, Protocol};
use palisade_policy::analysis::Analysis;
use palisade_policy::{SideVerdict, allowed};

const HOUSES: [(&str, &str, &str); 4] = [("gryffindor", "harry", "10.0.1"), ("slytherin", "draco", "10.0.2"), ("hufflepuff", "cedric", "10.0.3"), ("ravenclaw", "luna", "10.0.4")];

/// Four houses, two pods each (`<name>-0`, `<name>-1`), each serving TCP 80 (`web`), TCP
/// 8080, UDP 5353 and UDP 53 (`dns`); a hostNetwork pod on node-1's address.
fn topology() -> String {
    let mut yaml = String::new();
    for (house, name, net) in HOUSES {
        yaml += &ns(house, &format!("conformance-house: {house}"));
        for i in 0..2 {
            yaml += &pod(house, &format!("{name}-{i}"), &format!("conformance-house: {house}"), &["80/TCP/web", "8080/TCP", "5353/UDP", "53/UDP/dns"], &format!("{net}.{}", i + 10));
        }
    }
    yaml += "apiVersion: v1\nkind: Node\nmetadata: {name: node-1, labels: {kubernetes.io/os: linux}}\nstatus: {addresses: [{type: InternalIP, address: 192.168.0.1}]}\n---\n";
    yaml += &ns("forest", "conformance-house: forest");
    yaml += "apiVersion: v1\nkind: Pod\nmetadata: {name: centaur, namespace: forest, labels: {conformance-house: forest}}\nspec: {hostNetwork: true, containers: [{name: c, ports: [{containerPort: 30000}]}]}\nstatus: {podIP: 192.168.0.1}\n---\n";
    yaml
}

fn cnp(name: &str, tier: &str, priority: u32, body: &str) -> String {
    let body: String = body.lines().map(|l| format!("  {l}\n")).collect();
    format!("apiVersion: policy.networking.k8s.io/v1beta1\nkind: ClusterNetworkPolicy\nmetadata: {{name: {name}}}\nspec:\n  tier: {tier}\n  priority: {priority}\n{body}---\n")
}

fn house(name: &str) -> String {
    format!("{{namespaces: {{matchLabels: {{kubernetes.io/metadata.name: {name}}}}}}}")
}

fn pods(house: &str) -> String {
    format!("{{pods: {{namespaceSelector: {{matchLabels: {{conformance-house: {house}}}}}, podSelector: {{matchLabels: {{conformance-house: {house}}}}}}}}}")
}

/// Allowed or not, checked three ways: explained, fast path, class matrix.
fn reaches(cluster: &Cluster, from: &str, to: &str, port: u16, protocol: Protocol) -> bool {
    let verdict = judge(cluster, from, to, port, protocol);
    if !from.contains('/') || !to.contains('/') {
        return verdict.allowed; // The matrix is between pods.
    }
    let analysis = Analysis::new(cluster, false);
    let index = |name: &str| {
        let (ns, pod) = name.split_once('/').unwrap();
        cluster.endpoint_index(ns, pod).unwrap()
    };
    let classes = &analysis.classes;
    let by_matrix = analysis.port_sets(port, protocol).allowed(classes.class_of[index(from)], classes.class_of[index(to)]);
    assert_eq!(by_matrix, verdict.allowed, "the class matrix disagrees on {from} -> {to} {port}/{protocol:?}");
    verdict.allowed
}

fn tcp(cluster: &Cluster, from: &str, to: &str, port: u16) -> bool {
    reaches(cluster, from, to, port, Protocol::Tcp)
}

/// The ingress rules of upstream's `ingress-tcp` case, in a given order.
fn ingress_tcp(order: &[usize]) -> String {
    let rules = [
        format!("- {{name: accept-from-ravenclaw-everything, action: Accept, from: [{}]}}", house("ravenclaw")),
        format!("- {{name: deny-from-ravenclaw-everything, action: Deny, from: [{}]}}", house("ravenclaw")),
        format!("- {{name: pass-from-ravenclaw-everything, action: Pass, from: [{}]}}", house("ravenclaw")),
        format!("- {{name: deny-from-slytherin-at-port-80, action: Deny, from: [{}], protocols: [{{tcp: {{destinationPort: {{number: 80}}}}}}]}}", house("slytherin")),
        format!("- {{name: pass-from-slytherin-at-port-80, action: Pass, from: [{}], protocols: [{{tcp: {{destinationPort: {{number: 80}}}}}}]}}", house("slytherin")),
        format!("- {{name: accept-from-hufflepuff-at-port-80, action: Accept, from: [{}], protocols: [{{tcp: {{destinationPort: {{number: 80}}}}}}]}}", house("hufflepuff")),
        format!("- {{name: deny-from-hufflepuff-everything-else, action: Deny, from: [{}]}}", house("hufflepuff")),
    ];
    let body: Vec<String> = order.iter().map(|&i| rules[i].clone()).collect();
    cnp("ingress-tcp", "Admin", 3, &format!("subject: {}\ningress:\n{}", house("gryffindor"), body.join("\n")))
}

#[test]
fn admin_tier_rule_order_and_pass() {
    let c = cluster(&(topology() + &ingress_tcp(&[0, 1, 2, 3, 4, 5, 6])));
    assert!(tcp(&c, "ravenclaw/luna-0", "gryffindor/harry-0", 80), "rule 0 Accept comes before rule 1 Deny");
    assert!(tcp(&c, "ravenclaw/luna-1", "gryffindor/harry-0", 8080));
    assert!(tcp(&c, "hufflepuff/cedric-0", "gryffindor/harry-1", 80));
    assert!(!tcp(&c, "hufflepuff/cedric-1", "gryffindor/harry-1", 8080), "rule 6 denies the rest");
    assert!(!tcp(&c, "slytherin/draco-0", "gryffindor/harry-0", 80));
    assert!(tcp(&c, "slytherin/draco-1", "gryffindor/harry-0", 8080), "no rule matches: the default allows");
    // Deny first.
    let c = cluster(&(topology() + &ingress_tcp(&[1, 0, 2, 3, 4, 5, 6])));
    assert!(!tcp(&c, "ravenclaw/luna-0", "gryffindor/harry-1", 80));
    // Pass first: no NetworkPolicy, no Baseline: allowed; and the explanation says so.
    let c = cluster(&(topology() + &ingress_tcp(&[2, 1, 0, 3, 4, 5, 6])));
    assert!(tcp(&c, "ravenclaw/luna-0", "gryffindor/harry-0", 80));
    let verdict = judge(&c, "ravenclaw/luna-0", "gryffindor/harry-0", 80, Protocol::Tcp);
    match &verdict.ingress {
        SideVerdict::Passed { by, then } => {
            assert_eq!((by.policy.as_str(), by.rule, by.name.as_deref()), ("ingress-tcp", 0, Some("pass-from-ravenclaw-everything")));
            assert_eq!(**then, SideVerdict::NotIsolated);
        }
        other => panic!("{other:?}"),
    }
    let c = cluster(&(topology() + &ingress_tcp(&[2, 1, 0, 4, 3, 5, 6])));
    assert!(tcp(&c, "slytherin/draco-0", "gryffindor/harry-0", 80), "Pass before Deny");
}

fn integration(ingress_action: &str, egress_action: &str, with_network_policy: bool) -> Cluster {
    let mut yaml = topology();
    yaml += &cnp(
        "pass-example",
        "Admin",
        10,
        &format!(
            "subject: {{namespaces: {{matchLabels: {{conformance-house: gryffindor}}}}}}\ningress: [{{name: from-slytherin, action: {ingress_action}, from: [{{namespaces: {{matchLabels: {{conformance-house: slytherin}}}}}}]}}]\negress: [{{name: to-slytherin, action: {egress_action}, to: [{{namespaces: {{matchLabels: {{conformance-house: slytherin}}}}}}]}}]"
        ),
    );
    if with_network_policy {
        yaml += &common::policy(
            "gryffindor",
            "allow-slytherin",
            "podSelector: {}\npolicyTypes: [Ingress, Egress]\ningress: [{from: [{namespaceSelector: {matchLabels: {conformance-house: slytherin}}}]}]\negress: [{to: [{namespaceSelector: {matchLabels: {conformance-house: slytherin}}}]}]",
        );
    }
    yaml += &cnp(
        "default",
        "Baseline",
        0,
        "subject: {namespaces: {matchLabels: {conformance-house: gryffindor}}}\ningress: [{name: deny-slytherin, action: Deny, from: [{namespaces: {matchLabels: {conformance-house: slytherin}}}]}]\negress: [{name: deny-slytherin, action: Deny, to: [{namespaces: {matchLabels: {conformance-house: slytherin}}}]}]",
    );
    cluster(&yaml)
}

#[test]
fn admin_then_network_policy_then_baseline() {
    let c = integration("Deny", "Deny", true);
    assert!(!tcp(&c, "slytherin/draco-0", "gryffindor/harry-0", 80), "Admin Deny beats the NetworkPolicy's allow");
    assert!(!tcp(&c, "gryffindor/harry-0", "slytherin/draco-0", 80));
    let c = integration("Pass", "Pass", true);
    assert!(tcp(&c, "slytherin/draco-0", "gryffindor/harry-0", 80), "Pass: the NetworkPolicy decides");
    assert!(tcp(&c, "gryffindor/harry-1", "slytherin/draco-0", 8080));
    let c = integration("Pass", "Pass", false);
    assert!(!tcp(&c, "slytherin/draco-1", "gryffindor/harry-0", 8080), "Pass, no NetworkPolicy: the Baseline denies");
    assert!(!tcp(&c, "gryffindor/harry-0", "slytherin/draco-0", 80));
    assert!(tcp(&c, "hufflepuff/cedric-0", "gryffindor/harry-0", 80), "nothing matches: the default allows");
    let verdict = judge(&c, "slytherin/draco-1", "gryffindor/harry-0", 8080, Protocol::Tcp);
    match &verdict.ingress {
        SideVerdict::Passed { then, .. } => assert!(matches!(&**then, SideVerdict::ClusterPolicy { accepted: false, rule } if rule.policy == "default")),
        other => panic!("{other:?}"),
    }
}

#[test]
fn priority_orders_policies_of_a_tier() {
    let rules = |action: &str| format!("subject: {}\ningress: [{{action: {action}, from: [{}]}}]\negress: [{{action: {action}, to: [{}]}}]", pods("gryffindor"), pods("slytherin"), pods("slytherin"));
    let build = |pass_priority: u32| {
        cluster(&(topology() + &cnp("priority-50", "Admin", 50, &rules("Deny")) + &cnp("pass", "Admin", pass_priority, &rules("Pass")) + &cnp("default", "Baseline", 0, &rules("Accept"))))
    };
    let c = build(60);
    assert!(!tcp(&c, "slytherin/draco-0", "gryffindor/harry-0", 80));
    assert!(!tcp(&c, "gryffindor/harry-1", "slytherin/draco-0", 8080));
    let c = build(40);
    assert!(tcp(&c, "slytherin/draco-0", "gryffindor/harry-0", 80), "Pass at 40 comes first; the Baseline accepts");
    assert!(tcp(&c, "gryffindor/harry-1", "slytherin/draco-0", 8080));
}

#[test]
fn networks_match_pod_addresses_and_an_egress_accept_leaves_ingress_to_the_destination() {
    let egress = |extra: &str| {
        format!(
            "subject: {}\negress:\n{extra}- {{name: to-slytherin, action: Accept, to: [{}]}}\n- {{name: deny-all, action: Deny, to: [{{networks: [0.0.0.0/0, '::/0']}}]}}",
            pods("gryffindor"),
            pods("slytherin")
        )
    };
    let c = cluster(&(topology() + &cnp("inline-cidr", "Admin", 85, &egress(""))));
    for (to, port, protocol) in [("ravenclaw/luna-0", 80, Protocol::Tcp), ("hufflepuff/cedric-0", 53, Protocol::Udp)] {
        assert!(!reaches(&c, "gryffindor/harry-1", to, port, protocol), "0.0.0.0/0 covers pod addresses: {to}");
    }
    assert!(tcp(&c, "gryffindor/harry-1", "slytherin/draco-0", 80));
    assert!(!reaches(&c, "gryffindor/harry-1", "203.0.113.9", 443, Protocol::Tcp), "outside the cluster too");
    let c = cluster(&(topology() + &cnp("inline-cidr", "Admin", 85, &egress("- {name: to-two, action: Accept, to: [{networks: [10.0.4.10/32, 10.0.3.10/32]}]}\n"))));
    assert!(tcp(&c, "gryffindor/harry-1", "ravenclaw/luna-0", 80));
    assert!(!tcp(&c, "gryffindor/harry-1", "ravenclaw/luna-1", 80));
    // An egress Accept does not decide the destination's ingress: its NetworkPolicy does.
    let isolated = cluster(&(topology() + &cnp("inline-cidr", "Admin", 85, &egress("")) + &common::policy("slytherin", "deny-all", "podSelector: {}\npolicyTypes: [Ingress]")));
    let verdict = judge(&isolated, "gryffindor/harry-1", "slytherin/draco-0", 80, Protocol::Tcp);
    assert!(matches!(verdict.egress, SideVerdict::ClusterPolicy { accepted: true, .. }), "{verdict:?}");
    assert!(matches!(verdict.ingress, SideVerdict::Denied { .. }), "{verdict:?}");
    assert!(!verdict.allowed);
}

#[test]
fn named_ports_resolve_on_the_destination_and_node_peers_on_node_addresses() {
    let c = cluster(
        &(topology()
            + &cnp(
                "egress-named",
                "Admin",
                6,
                &format!(
                    "subject: {}\negress:\n- {{action: Accept, to: [{}], protocols: [{{destinationNamedPort: web}}]}}\n- {{action: Accept, to: [{{nodes: {{matchLabels: {{kubernetes.io/os: linux}}}}}}], protocols: [{{tcp: {{destinationPort: {{range: {{start: 30000, end: 30001}}}}}}}}]}}\n- {{action: Deny, to: [{}, {{nodes: {{}}}}]}}",
                    house("gryffindor"),
                    house("hufflepuff"),
                    house("hufflepuff")
                ),
            )),
    );
    assert!(tcp(&c, "gryffindor/harry-0", "hufflepuff/cedric-1", 80), "web is 80 on the destination");
    assert!(!tcp(&c, "gryffindor/harry-1", "hufflepuff/cedric-1", 8080));
    assert!(tcp(&c, "gryffindor/harry-1", "forest/centaur", 30000), "the node peer matches the hostNetwork pod's node address");
    assert!(tcp(&c, "gryffindor/harry-1", "forest/centaur", 30001), "ranges include their end");
    assert!(!tcp(&c, "gryffindor/harry-1", "forest/centaur", 30002));
    assert!(!allowed(&c, &common::flow(&c, "gryffindor/harry-1", "192.168.0.1", 30002, Protocol::Tcp)));
    // hostNetwork pods are never a subject: the centaur's egress is not restricted.
    let all = cluster(&(topology() + &cnp("deny-everyone", "Admin", 1, "subject: {namespaces: {}}\negress: [{action: Deny, to: [{networks: [0.0.0.0/0]}]}]")));
    assert!(tcp(&all, "forest/centaur", "gryffindor/harry-0", 80));
    assert!(!tcp(&all, "gryffindor/harry-0", "forest/centaur", 30000));
}

#[test]
fn unknown_peers_and_protocols_fail_closed() {
    let with = |action: &str, peer: &str| cluster(&(topology() + &cnp("future", "Admin", 1, &format!("subject: {}\ningress: [{{action: {action}, from: [{peer}]}}]", house("gryffindor")))));
    // An Accept rule with a peer this version does not know matches nothing (then: default).
    let c = with("Accept", "{futurePeer: {x: 1}}");
    assert!(tcp(&c, "slytherin/draco-0", "gryffindor/harry-0", 80));
    let c = cluster(
        &(topology()
            + &cnp("future", "Admin", 1, &format!("subject: {}\ningress: [{{action: Accept, from: [{{futurePeer: {{}}}}]}}]\n", house("gryffindor")))
            + &common::policy("gryffindor", "deny", "podSelector: {}\npolicyTypes: [Ingress]")),
    );
    assert!(!tcp(&c, "slytherin/draco-0", "gryffindor/harry-0", 80), "the Accept matched nothing: the NetworkPolicy denies");
    // A Deny or Pass rule with one is a "Deny all" rule.
    for action in ["Deny", "Pass"] {
        let c = with(action, "{futurePeer: {x: 1}}");
        assert!(!tcp(&c, "hufflepuff/cedric-0", "gryffindor/harry-0", 80), "{action}");
        let verdict = judge(&c, "hufflepuff/cedric-0", "gryffindor/harry-0", 80, Protocol::Tcp);
        assert!(matches!(&verdict.ingress, SideVerdict::ClusterPolicy { accepted: false, rule } if rule.fail_closed), "{verdict:?}");
    }
    let c = cluster(
        &(topology() + &cnp("future", "Admin", 1, &format!("subject: {}\ningress: [{{action: Deny, from: [{}], protocols: [{{icmp: {{type: 8}}}}]}}]", house("gryffindor"), house("ravenclaw")))),
    );
    assert!(!tcp(&c, "hufflepuff/cedric-0", "gryffindor/harry-0", 80), "an unknown protocol fails closed too");
}

#[test]
fn the_matrix_agrees_with_verdicts_on_every_pair() {
    let c = integration("Pass", "Deny", false);
    let names: Vec<String> = c.endpoints.iter().filter(|e| !e.host_network).map(|e| format!("{}/{}", e.namespace, e.name)).collect();
    for from in &names {
        for to in names.iter().filter(|t| *t != from) {
            reaches(&c, from, to, 80, Protocol::Tcp);
            reaches(&c, from, to, 53, Protocol::Udp);
        }
    }
}
