//! Snapshot tests of `render`: the whole table for representative scenarios, as nft text.

mod support;

use palisade_nft::{DenyAction, NodeState, RenderOptions, render, text};
use support::cluster;

/// Renders with every endpoint local (as `palisade dataplane render` without `--node`).
fn rendered(yaml: &str, deny_action: DenyAction) -> String {
    let cluster = cluster(yaml);
    let state = NodeState { cluster: &cluster, local: (0..cluster.endpoints.len()).collect(), options: RenderOptions { deny_action, ..Default::default() } };
    text::table(&render(&state))
}

const SEED: &str = "
apiVersion: v1
kind: Namespace
metadata: {name: production}
---
apiVersion: v1
kind: Namespace
metadata: {name: develop}
---
apiVersion: v1
kind: Pod
metadata: {name: nginx, namespace: production, labels: {app: nginx}}
spec: {containers: [{name: nginx, ports: [{containerPort: 80}]}]}
status: {podIP: 10.244.1.10}
---
apiVersion: v1
kind: Pod
metadata: {name: curl, namespace: production, labels: {app: curl}}
spec: {containers: [{name: curl}]}
status: {podIP: 10.244.1.11}
---
apiVersion: v1
kind: Pod
metadata: {name: curl, namespace: develop, labels: {app: curl}}
spec: {containers: [{name: curl}]}
status: {podIP: 10.244.2.20}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: default-deny-ingress, namespace: production}
spec:
  podSelector: {}
  policyTypes: [Ingress]
  ingress: [{from: [{podSelector: {}}]}]
";

#[test]
fn seed_walkthrough() {
    insta::assert_snapshot!(rendered(SEED, DenyAction::Reject));
}

#[test]
fn no_policies_leaves_every_pod_untouched() {
    let yaml = SEED.split("---\napiVersion: networking.k8s.io/v1").next().unwrap();
    insta::assert_snapshot!(rendered(yaml, DenyAction::Reject));
}

#[test]
fn drop_instead_of_reject() {
    insta::assert_snapshot!(rendered(SEED, DenyAction::Drop));
}

#[test]
fn named_ports_end_ports_ip_blocks_and_stacked_policies() {
    let yaml = "
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: x, labels: {app: web}}
spec: {containers: [{name: c, ports: [{containerPort: 8080, name: http}, {containerPort: 53, protocol: UDP, name: dns}]}]}
status: {podIP: 10.0.0.1}
---
apiVersion: v1
kind: Pod
metadata: {name: api, namespace: x, labels: {app: api}}
spec: {containers: [{name: c, ports: [{containerPort: 9090, name: http}]}]}
status: {podIP: 10.0.0.2}
---
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: y, labels: {app: client}}
spec: {containers: [{name: c}]}
status: {podIP: 10.0.1.5}
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
    ports: [{port: http}]
  - to: [{ipBlock: {cidr: 0.0.0.0/0, except: [10.0.0.0/8]}}]
    ports: [{port: 443}, {protocol: SCTP, port: 9}]
";
    insta::assert_snapshot!(rendered(yaml, DenyAction::Reject));
}

#[test]
fn dual_stack_pods_get_both_families() {
    let yaml = "
apiVersion: v1
kind: Pod
metadata: {name: a, namespace: x, labels: {app: a}}
spec: {containers: []}
status: {podIPs: [{ip: 10.0.0.1}, {ip: 'fd00::1'}]}
---
apiVersion: v1
kind: Pod
metadata: {name: b, namespace: x, labels: {app: b}}
spec: {containers: []}
status: {podIPs: [{ip: 10.0.0.2}, {ip: 'fd00::2'}]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: from-b, namespace: x}
spec:
  podSelector: {matchLabels: {app: a}}
  ingress: [{from: [{podSelector: {matchLabels: {app: b}}}]}]
  egress: [{to: [{ipBlock: {cidr: '2001:db8::/32'}}]}]
";
    insta::assert_snapshot!(rendered(yaml, DenyAction::Reject));
}
