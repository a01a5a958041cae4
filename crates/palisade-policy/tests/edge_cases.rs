//! Every item of ../shared/notes/netpol-edge-cases.md that the engine decides, numbered as
//! there. (Items about the kernel, connection tracking and timing are dataplane tests.)

mod common;

use common::*;
use palisade_model::{LoadOptions, Protocol};
use palisade_policy::service::backends;
use palisade_policy::{Flow, FlowEnd, PeerMismatch, SideVerdict};

fn two_namespaces() -> String {
    ns("x", "") + &ns("y", "")
}

// 1. Named ports resolve per destination pod and per protocol.
#[test]
fn e01_named_ports_resolve_on_each_destination() {
    let c = cluster(
        &(two_namespaces()
            + &pod("y", "p1", "app: web", &["8080/TCP/http", "9090/TCP"], "10.0.1.1")
            + &pod("y", "p2", "app: web", &["9090/TCP/http", "8080/TCP"], "10.0.1.2")
            + &pod("y", "client", "app: client", &[], "10.0.1.3")
            + &policy("y", "allow-http", "podSelector: {matchLabels: {app: web}}\ningress:\n- ports: [{port: http}]")),
    );
    assert!(tcp(&c, "y/client", "y/p1", 8080));
    assert!(!tcp(&c, "y/client", "y/p1", 9090));
    assert!(tcp(&c, "y/client", "y/p2", 9090));
    assert!(!tcp(&c, "y/client", "y/p2", 8080), "numbers are never unioned across pods");
}

#[test]
fn e01_named_port_with_another_protocol_matches_nothing() {
    let c = cluster(
        &(two_namespaces()
            + &pod("x", "a", "pod: a", &["81/UDP/serve-81-udp", "81/TCP/serve-81-tcp"], "10.0.0.1")
            + &pod("x", "b", "pod: b", &[], "10.0.0.2")
            + &policy("x", "p", "podSelector: {}\ningress:\n- ports: [{protocol: TCP, port: serve-81-udp}]")),
    );
    assert!(!tcp(&c, "x/b", "x/a", 81), "must not degrade to all ports");
    assert!(!judge(&c, "x/b", "x/a", 81, Protocol::Udp).allowed, "protocol TCP never allows UDP");
}

#[test]
fn e01_egress_named_port_without_to_resolves_on_every_destination() {
    let c = cluster(
        &(two_namespaces()
            + &pod("x", "a", "pod: a", &[], "10.0.0.1")
            + &pod("y", "b", "pod: b", &["80/TCP/serve-80-tcp", "81/TCP"], "10.0.1.2")
            + &pod("y", "c", "pod: c", &["81/TCP/serve-80-tcp"], "10.0.1.3")
            + &policy("x", "p", "podSelector: {matchLabels: {pod: a}}\npolicyTypes: [Egress]\negress:\n- ports: [{port: serve-80-tcp}]")),
    );
    assert!(tcp(&c, "x/a", "y/b", 80));
    assert!(!tcp(&c, "x/a", "y/b", 81));
    assert!(tcp(&c, "x/a", "y/c", 81), "the same name is 81 on y/c");
    assert!(!tcp(&c, "x/a", "203.0.113.7", 80), "addresses outside the cluster have no named ports");
}

// 2. endPort ranges are inclusive, per protocol, both directions.
#[test]
fn e02_end_port_ranges() {
    for protocol in [Protocol::Tcp, Protocol::Udp, Protocol::Sctp] {
        let spec = format!("podSelector: {{matchLabels: {{pod: a}}}}\ningress:\n- ports: [{{port: 80, endPort: 84, protocol: {protocol}}}]");
        let c = cluster(&(two_namespaces() + &pod("x", "a", "pod: a", &[], "10.0.0.1") + &pod("x", "b", "pod: b", &[], "10.0.0.2") + &policy("x", "range", &spec)));
        let results: Vec<bool> = [79, 80, 84, 85].iter().map(|&p| judge(&c, "x/b", "x/a", p, protocol).allowed).collect();
        assert_eq!(results, vec![false, true, true, false], "{protocol}");
    }
    let c = cluster(
        &(two_namespaces()
            + &pod("x", "a", "pod: a", &[], "10.0.0.1")
            + &pod("x", "b", "pod: b", &[], "10.0.0.2")
            + &policy("x", "range", "podSelector: {matchLabels: {pod: a}}\npolicyTypes: [Egress]\negress:\n- ports: [{port: 53, endPort: 80}]")),
    );
    let results: Vec<bool> = [52, 53, 80, 81].iter().map(|&p| tcp(&c, "x/a", "x/b", p)).collect();
    assert_eq!(results, vec![false, true, true, false]);
}

// 3. ipBlock also matches pod IPs (ingress and egress).
#[test]
fn e03_ip_block_matches_pod_addresses() {
    let c = cluster(
        &(two_namespaces()
            + &pod("x", "a", "pod: a", &[], "10.0.0.1")
            + &pod("x", "b", "pod: b", &[], "10.0.0.2")
            + &pod("x", "c", "pod: c", &[], "10.0.0.3")
            + &policy("x", "only-b", "podSelector: {matchLabels: {pod: a}}\ningress:\n- from: [{ipBlock: {cidr: 10.0.0.2/32}}]")),
    );
    assert!(tcp(&c, "x/b", "x/a", 80));
    assert!(!tcp(&c, "x/c", "x/a", 80));
}

// 4. except, unmasked CIDRs, union across peers and policies.
#[test]
fn e04_except_and_union() {
    let base = two_namespaces() + &pod("x", "a", "pod: a", &[], "10.244.1.5") + &pod("x", "b", "pod: b", &[], "10.244.2.7") + &pod("x", "c", "pod: c", &[], "10.244.3.9");
    let except = policy("x", "except-b", "podSelector: {matchLabels: {pod: a}}\npolicyTypes: [Egress]\negress:\n- to: [{ipBlock: {cidr: 10.244.1.5/4, except: [10.244.2.7/32]}}]");
    let c = cluster(&(base.clone() + &except));
    assert!(!tcp(&c, "x/a", "x/b", 80), "excepted");
    assert!(tcp(&c, "x/a", "x/c", 80), "10.244.1.5/4 means 0.0.0.0/4");
    assert!(!tcp(&c, "x/a", "192.0.2.1", 80), "outside 0.0.0.0/4");
    // Another peer of the same rule, or another policy, still allows the excepted address.
    let other_peer = policy(
        "x",
        "except-b",
        "podSelector: {matchLabels: {pod: a}}\npolicyTypes: [Egress]\negress:\n- to: [{ipBlock: {cidr: 10.0.0.0/8, except: [10.244.2.7/32]}}, {podSelector: {matchLabels: {pod: b}}}]",
    );
    assert!(tcp(&cluster(&(base.clone() + &other_peer)), "x/a", "x/b", 80));
    let other_policy = policy("x", "allow-b", "podSelector: {matchLabels: {pod: a}}\npolicyTypes: [Egress]\negress:\n- to: [{ipBlock: {cidr: 10.244.2.7/32}}]");
    assert!(tcp(&cluster(&(base + &except + &other_policy)), "x/a", "x/b", 80));
}

// 5. policyTypes inference; directions are independent.
#[test]
fn e05_policy_types_inference() {
    let base = two_namespaces() + &pod("x", "a", "pod: a", &[], "10.0.0.1") + &pod("x", "b", "pod: b", &[], "10.0.0.2");
    let egress_rules_only = policy("x", "p", "podSelector: {matchLabels: {pod: a}}\negress:\n- {}");
    let c = cluster(&(base.clone() + &egress_rules_only));
    assert!(tcp(&c, "x/a", "x/b", 80), "egress: [{{}}] allows all egress");
    assert!(!tcp(&c, "x/b", "x/a", 80), "without policyTypes, egress rules also isolate ingress");
    let explicit = policy("x", "p", "podSelector: {matchLabels: {pod: a}}\npolicyTypes: [Egress]\negress:\n- to: [{podSelector: {matchLabels: {pod: zzz}}}]");
    let c = cluster(&(base.clone() + &explicit));
    assert!(tcp(&c, "x/b", "x/a", 80), "an Egress-only policy never affects ingress");
    assert!(!tcp(&c, "x/a", "x/b", 80));
    let ingress_only = policy("x", "p", "podSelector: {matchLabels: {pod: a}}\npolicyTypes: [Ingress]\negress:\n- to: [{podSelector: {matchLabels: {pod: zzz}}}]");
    let c = cluster(&(base + &ingress_only));
    assert!(tcp(&c, "x/a", "x/b", 80), "an Ingress-only policy never affects egress, even with egress rules");
    assert!(!tcp(&c, "x/b", "x/a", 80));
}

// 6. Empty versus absent.
#[test]
fn e06_empty_lists_and_selectors() {
    let base = ns("x", "") + &ns("y", "") + &pod("x", "a", "pod: a", &[], "10.0.0.1") + &pod("x", "b", "pod: b", &[], "10.0.0.2") + &pod("y", "c", "pod: c", &[], "10.0.1.3");
    let with = |spec: &str| cluster(&(base.clone() + &policy("x", "p", spec)));

    let deny = with("podSelector: {matchLabels: {pod: a}}\ningress: []");
    assert!(!tcp(&deny, "x/b", "x/a", 80), "ingress: [] denies");
    let allow_all = with("podSelector: {matchLabels: {pod: a}}\ningress: [{}]");
    assert!(tcp(&allow_all, "y/c", "x/a", 80));
    assert!(judge(&allow_all, "y/c", "x/a", 9, Protocol::Sctp).allowed, "any port, any protocol");
    assert!(tcp(&allow_all, "198.51.100.4", "x/a", 80), "empty from includes outside addresses");

    let udp_only = with("podSelector: {matchLabels: {pod: a}}\ningress: [{ports: [{protocol: UDP}]}]");
    assert!(judge(&udp_only, "x/b", "x/a", 5353, Protocol::Udp).allowed);
    assert!(!tcp(&udp_only, "x/b", "x/a", 5353));
    let default_tcp = with("podSelector: {matchLabels: {pod: a}}\ningress: [{ports: [{port: 80}]}]");
    assert!(tcp(&default_tcp, "x/b", "x/a", 80));
    assert!(!judge(&default_tcp, "x/b", "x/a", 80, Protocol::Udp).allowed, "port without protocol means TCP");

    let same_ns = with("podSelector: {matchLabels: {pod: a}}\ningress: [{from: [{podSelector: {}}]}]");
    assert!(tcp(&same_ns, "x/b", "x/a", 80));
    assert!(!tcp(&same_ns, "y/c", "x/a", 80), "podSelector {{}} alone: the policy's namespace only");
    let all_ns = with("podSelector: {matchLabels: {pod: a}}\ningress: [{from: [{namespaceSelector: {}}]}]");
    assert!(tcp(&all_ns, "y/c", "x/a", 80));
    assert!(!tcp(&all_ns, "198.51.100.4", "x/a", 80), "namespaceSelector {{}} is pods only");
    let both = with("podSelector: {matchLabels: {pod: a}}\ningress: [{from: [{namespaceSelector: {}, podSelector: {}}]}]");
    assert!(tcp(&both, "y/c", "x/a", 80));
    assert!(!tcp(&both, "198.51.100.4", "x/a", 80));

    let null_subject = with("podSelector: null\ningress: []");
    assert!(!tcp(&null_subject, "x/a", "x/b", 80), "a null podSelector selects every pod");
    let no_spec = cluster(&(base.clone() + "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: bare, namespace: x}\n"));
    assert!(!tcp(&no_spec, "y/c", "x/a", 80), "no spec: every pod, ingress isolated");
    assert!(tcp(&no_spec, "x/a", "y/c", 80));
}

// 7. One peer with both selectors (AND) versus two peers (OR).
#[test]
fn e07_and_versus_or() {
    let base = ns("x", "")
        + &ns("y", "team: blue")
        + &ns("z", "")
        + &pod("x", "a", "pod: a", &[], "10.0.0.1")
        + &pod("x", "b", "pod: b", &[], "10.0.0.2")
        + &pod("y", "b", "pod: b", &[], "10.0.1.2")
        + &pod("y", "c", "pod: c", &[], "10.0.1.3")
        + &pod("z", "b", "pod: b", &[], "10.0.2.2");
    let and = cluster(
        &(base.clone() + &policy("x", "p", "podSelector: {matchLabels: {pod: a}}\ningress:\n- from:\n  - namespaceSelector: {matchLabels: {team: blue}}\n    podSelector: {matchLabels: {pod: b}}")),
    );
    assert!(tcp(&and, "y/b", "x/a", 80));
    assert!(!tcp(&and, "y/c", "x/a", 80));
    assert!(!tcp(&and, "z/b", "x/a", 80));
    assert!(!tcp(&and, "x/b", "x/a", 80));
    let or =
        cluster(&(base + &policy("x", "p", "podSelector: {matchLabels: {pod: a}}\ningress:\n- from:\n  - namespaceSelector: {matchLabels: {team: blue}}\n  - podSelector: {matchLabels: {pod: b}}")));
    assert!(tcp(&or, "y/b", "x/a", 80));
    assert!(tcp(&or, "y/c", "x/a", 80), "any pod of a blue namespace");
    assert!(tcp(&or, "x/b", "x/a", 80), "pod b of the policy's own namespace");
    assert!(!tcp(&or, "z/b", "x/a", 80), "the podSelector-only peer does not reach into z");
}

// 8. hostNetwork pods are never selected, as subject or peer; only ipBlock matches them.
#[test]
fn e08_host_network_pods() {
    let host_pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: node-agent, namespace: x, labels: {pod: a}}\nspec: {hostNetwork: true, containers: []}\nstatus: {podIP: 192.168.0.10}\n---\n";
    let base = two_namespaces() + host_pod + &pod("x", "b", "pod: b", &[], "10.0.0.2");
    let deny_all = cluster(&(base.clone() + &policy("x", "deny", "podSelector: {}\npolicyTypes: [Ingress, Egress]")));
    assert!(!tcp(&deny_all, "x/node-agent", "x/b", 80), "x/b is isolated; a hostNetwork client is not a pod peer");
    let v = judge(&deny_all, "x/b", "x/node-agent", 80, Protocol::Tcp);
    assert_eq!(v.ingress, SideVerdict::HostNetwork, "hostNetwork pods are not isolated by podSelector {{}}");
    let by_selector = cluster(&(base.clone() + &policy("x", "p", "podSelector: {matchLabels: {pod: b}}\ningress: [{from: [{namespaceSelector: {}}]}]")));
    assert!(!tcp(&by_selector, "x/node-agent", "x/b", 80), "selectors never match hostNetwork pods");
    let by_ip = cluster(&(base + &policy("x", "p", "podSelector: {matchLabels: {pod: b}}\ningress: [{from: [{ipBlock: {cidr: 192.168.0.0/24}}]}]")));
    assert!(tcp(&by_ip, "x/node-agent", "x/b", 80), "an ipBlock with the node address matches");
}

// 9. Traffic through a Service is judged after DNAT: backend address and targetPort.
#[test]
fn e09_services_are_judged_after_dnat() {
    let svc =
        "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: x}\nspec:\n  selector: {pod: a}\n  ports: [{port: 8080, targetPort: 80, name: http}, {port: 9000, targetPort: serve}]\n---\n";
    let base = two_namespaces() + svc + &pod("x", "a", "pod: a", &["80/TCP", "9999/TCP/serve"], "10.0.0.1") + &pod("y", "c", "pod: c", &[], "10.0.1.3");
    let on_target = cluster(&(base.clone() + &policy("x", "p", "podSelector: {matchLabels: {pod: a}}\ningress: [{ports: [{port: 80}, {port: 9999}]}]")));
    let on_service_port = cluster(&(base + &policy("x", "p", "podSelector: {matchLabels: {pod: a}}\ningress: [{ports: [{port: 8080}]}]")));
    for (c, expected) in [(&on_target, true), (&on_service_port, false)] {
        let service = &c.services[0];
        let b = backends(c, service, "8080", None).unwrap();
        assert_eq!((b.len(), b[0].port), (1, 80));
        let flow = Flow { src: end(c, "y/c", false), dst: FlowEnd::endpoint(c, b[0].endpoint, None), port: b[0].port, protocol: b[0].protocol };
        assert_eq!(judge_flow(c, &flow).allowed, expected);
    }
    let named = backends(&on_target, &on_target.services[0], "9000", None).unwrap();
    assert_eq!(named[0].port, 9999, "a named targetPort resolves on the backend");
    assert_eq!(backends(&on_target, &on_target.services[0], "http", None).unwrap()[0].port, 80, "service ports by name");
}

// 11. SCTP and UDP rules never allow TCP, and still isolate.
#[test]
fn e11_other_protocols_isolate_but_never_allow_tcp() {
    let base = two_namespaces() + &pod("x", "a", "pod: a", &[], "10.0.0.1") + &pod("x", "b", "pod: b", &[], "10.0.0.2");
    for protocol in ["SCTP", "UDP"] {
        let c = cluster(&(base.clone() + &policy("x", "p", &format!("podSelector: {{matchLabels: {{pod: a}}}}\ningress: [{{ports: [{{protocol: {protocol}, port: 81}}]}}]"))));
        assert!(!tcp(&c, "x/b", "x/a", 81), "{protocol}");
        let proto: Protocol = protocol.parse().unwrap();
        assert!(judge(&c, "x/b", "x/a", 81, proto).allowed);
    }
}

// 12. Dual stack: ipBlocks of one family never match the other.
#[test]
fn e12_dual_stack() {
    let options = LoadOptions { pod_cidrs: vec!["10.244.0.0/16".parse().unwrap(), "fd00:10:244::/64".parse().unwrap()], ..Default::default() };
    let c = cluster_with(
        &(two_namespaces()
            + "apiVersion: v1\nkind: Pod\nmetadata: {name: a, namespace: x, labels: {pod: a}}\nspec: {containers: []}\n---\n"
            + "apiVersion: v1\nkind: Pod\nmetadata: {name: b, namespace: x, labels: {pod: b}}\nspec: {containers: []}\n---\n"
            + &policy("x", "v4-only", "podSelector: {matchLabels: {pod: a}}\npolicyTypes: [Egress]\negress: [{to: [{ipBlock: {cidr: 0.0.0.0/0}}]}]")),
        options,
    );
    assert_eq!(c.endpoints[0].ips.len(), 2);
    let v4 = Flow { src: end(&c, "x/a", false), dst: end(&c, "x/b", false), port: 80, protocol: Protocol::Tcp };
    let v6 = Flow { src: end(&c, "x/a", true), dst: end(&c, "x/b", true), port: 80, protocol: Protocol::Tcp };
    assert!(judge_flow(&c, &v4).allowed);
    assert!(!judge_flow(&c, &v6).allowed);
    let external_v6 = Flow { src: end(&c, "x/a", true), dst: FlowEnd::External("2001:db8::1".parse().unwrap()), port: 443, protocol: Protocol::Tcp };
    assert!(!judge_flow(&c, &external_v6).allowed);
}

// 13. A finished pod no longer owns its address: a new pod reusing it gets nothing of it.
#[test]
fn e13_finished_pods_do_not_lend_their_labels_to_a_reused_ip() {
    let done = "apiVersion: v1\nkind: Pod\nmetadata: {name: job-1, namespace: x, labels: {role: allowed}}\nspec: {containers: []}\nstatus: {phase: Succeeded, podIP: 10.0.0.9}\n---\n";
    let c = cluster(
        &(two_namespaces()
            + done
            + &pod("x", "newcomer", "role: other", &[], "10.0.0.9")
            + &pod("x", "server", "pod: server", &[], "10.0.0.1")
            + &policy("x", "p", "podSelector: {matchLabels: {pod: server}}\ningress: [{from: [{podSelector: {matchLabels: {role: allowed}}}]}]")),
    );
    assert!(c.endpoints.iter().all(|e| e.name != "job-1"), "finished pods are not endpoints");
    assert!(!tcp(&c, "x/newcomer", "x/server", 80));
}

// 15. Ingress-only and egress-only policies on one pod decide their own direction.
#[test]
fn e15_ingress_only_and_egress_only_on_one_pod() {
    let c = cluster(
        &(two_namespaces()
            + &pod("x", "a", "pod: a", &[], "10.0.0.1")
            + &pod("x", "b", "pod: b", &[], "10.0.0.2")
            + &pod("x", "c", "pod: c", &[], "10.0.0.3")
            + &policy("x", "in", "podSelector: {matchLabels: {pod: a}}\npolicyTypes: [Ingress]\ningress: [{from: [{podSelector: {matchLabels: {pod: b}}}]}]")
            + &policy("x", "out", "podSelector: {matchLabels: {pod: a}}\npolicyTypes: [Egress]\negress: [{to: [{podSelector: {matchLabels: {pod: c}}}]}]")),
    );
    assert!(tcp(&c, "x/a", "x/c", 80));
    assert!(!tcp(&c, "x/a", "x/b", 80));
    assert!(tcp(&c, "x/b", "x/a", 80));
    assert!(!tcp(&c, "x/c", "x/a", 80));
}

// 16. A pod can always reach itself.
#[test]
fn e16_self_traffic_is_always_allowed() {
    let c = cluster(&(two_namespaces() + &pod("x", "a", "pod: a", &[], "10.0.0.1") + &policy("x", "deny", "podSelector: {}\npolicyTypes: [Ingress, Egress]")));
    let v = judge(&c, "x/a", "x/a", 80, Protocol::Tcp);
    assert!(v.allowed);
    assert_eq!(v.ingress, SideVerdict::SelfTraffic);
}

// 17. NotIn / DoesNotExist match objects without the key; namespaces by name label.
#[test]
fn e17_selector_operators_and_the_name_label() {
    let base = ns("x", "")
        + &ns("y", "ns-name: b")
        + &ns("z", "ns-name: c")
        + &pod("x", "a", "pod: a", &[], "10.0.0.1")
        + &pod("y", "a", "pod: a", &[], "10.0.1.1")
        + &pod("z", "a", "pod: a", &[], "10.0.2.1");
    let not_in = cluster(
        &(base.clone() + &policy("x", "p", "podSelector: {matchLabels: {pod: a}}\ningress: [{from: [{namespaceSelector: {matchExpressions: [{key: ns-name, operator: NotIn, values: [c]}]}}]}]")),
    );
    assert!(tcp(&not_in, "y/a", "x/a", 80));
    assert!(!tcp(&not_in, "z/a", "x/a", 80));
    let absent =
        cluster(&(base.clone() + &policy("y", "p", "podSelector: {matchLabels: {pod: a}}\ningress: [{from: [{namespaceSelector: {matchExpressions: [{key: ns-name, operator: DoesNotExist}]}}]}]")));
    assert!(tcp(&absent, "x/a", "y/a", 80), "x has no ns-name label");
    assert!(!tcp(&absent, "z/a", "y/a", 80));
    let by_name = cluster(&(base + &policy("x", "p", "podSelector: {}\ningress: [{from: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: z}}}]}]")));
    assert!(tcp(&by_name, "z/a", "x/a", 80));
    assert!(!tcp(&by_name, "y/a", "x/a", 80));
}

// 18. Policies add up: an allow-all policy opens what a narrower one left closed.
#[test]
fn e18_policies_are_additive() {
    let base = two_namespaces() + &pod("x", "a", "pod: a", &[], "10.0.0.1") + &pod("y", "b", "pod: b", &[], "10.0.1.2");
    let narrow = policy("x", "narrow", "podSelector: {}\ningress: [{from: [{podSelector: {matchLabels: {pod: nobody}}}]}]");
    assert!(!tcp(&cluster(&(base.clone() + &narrow)), "y/b", "x/a", 80));
    let wide = policy("x", "wide", "podSelector: {}\ningress: [{}]");
    assert!(tcp(&cluster(&(base + &narrow + &wide)), "y/b", "x/a", 80));
}

// 19. Default-deny egress blocks DNS like any other traffic.
#[test]
fn e19_default_deny_egress_blocks_dns() {
    let c = cluster(
        &(ns("kube-system", "")
            + &ns("x", "")
            + &pod("kube-system", "coredns", "k8s-app: kube-dns", &["53/UDP/dns", "53/TCP/dns-tcp"], "10.0.9.2")
            + &pod("x", "a", "pod: a", &[], "10.0.0.1")
            + &policy("x", "deny-egress", "podSelector: {}\npolicyTypes: [Egress]")),
    );
    assert!(!judge(&c, "x/a", "kube-system/coredns", 53, Protocol::Udp).allowed);
}

// Provenance: the verdict names the isolating policies, the allowing rule, and the misses.
#[test]
fn verdicts_carry_provenance() {
    let c = cluster(
        &(ns("production", "")
            + &ns("develop", "")
            + &pod("production", "nginx", "app: nginx", &["80/TCP"], "10.0.0.1")
            + &pod("production", "curl", "app: curl", &[], "10.0.0.2")
            + &pod("develop", "curl", "app: curl", &[], "10.0.1.2")
            + &policy("production", "default-deny-ingress", "podSelector: {}\npolicyTypes: [Ingress]\ningress: [{from: [{podSelector: {}}]}]")),
    );
    let allowed = judge(&c, "production/curl", "production/nginx", 80, Protocol::Tcp);
    let SideVerdict::Allowed { isolated_by, allowed_by } = &allowed.ingress else { panic!("{allowed:?}") };
    assert_eq!(isolated_by[0].name, "default-deny-ingress");
    assert_eq!(allowed_by[0].display_name(), "production/default-deny-ingress ingress[0].from[0]");
    assert_eq!(allowed_by[0].peer, Some(0), "the peer that matched");
    assert_eq!(allowed.egress, SideVerdict::NotIsolated);

    let denied = judge(&c, "develop/curl", "production/nginx", 80, Protocol::Tcp);
    assert!(!denied.allowed);
    let SideVerdict::Denied { misses, .. } = &denied.ingress else { panic!("{denied:?}") };
    assert_eq!(misses.len(), 1);
    assert_eq!(misses[0].peers, vec![PeerMismatch::OtherNamespace { peer: 0, policy_namespace: "production".into(), remote_namespace: "develop".into() }]);
    assert_eq!(misses[0].ports, None, "the ports matched; only the peer did not");
}

#[test]
fn port_misses_list_the_rule_ports() {
    let c = cluster(
        &(two_namespaces()
            + &pod("x", "a", "pod: a", &[], "10.0.0.1")
            + &pod("x", "b", "pod: b", &[], "10.0.0.2")
            + &policy("x", "p", "podSelector: {matchLabels: {pod: a}}\ningress: [{ports: [{port: 443}]}]")),
    );
    let v = judge(&c, "x/b", "x/a", 80, Protocol::Tcp);
    let SideVerdict::Denied { misses, .. } = &v.ingress else { panic!() };
    assert!(misses[0].peers.is_empty());
    assert_eq!(misses[0].ports.as_ref().unwrap()[0].to_string(), "443/TCP");
}
