//! Privileged: ClusterNetworkPolicy tiers in a real kernel, judged with real TCP and UDP
//! packets over both families against the engine. Each evaluation step has a flow that
//! only it decides: an Admin Deny over a NetworkPolicy allow, an Admin Pass handed to
//! NetworkPolicy (on every port, and on one port ahead of a Deny on every port), rule order within a policy, priority between policies, the Baseline tier
//! where no NetworkPolicy isolates (and not where one does), an egress Accept that the
//! destination's ingress still denies, `networks` covering pod addresses, a named port
//! resolved on the destination, and a rule failing closed.

mod support;

use std::time::Duration;

use palisade_model::Protocol;
use palisade_nft::apply::Dataplane;
use palisade_nft::{DenyAction, NodeState, RenderOptions, render};
use palisade_testbed::{Outcome, Prober, Servers, require_privileges};
use support::{NodeNft, cluster, testbed_for};

const TIMEOUT: Duration = Duration::from_millis(1500);

const SCENARIO: &str = "
apiVersion: v1
kind: Namespace
metadata: {name: prod, labels: {team: prod}}
---
apiVersion: v1
kind: Namespace
metadata: {name: monitoring, labels: {team: monitoring}}
---
apiVersion: v1
kind: Namespace
metadata: {name: other, labels: {team: other}}
---
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: prod, labels: {app: web}}
spec: {containers: [{name: c, ports: [{containerPort: 8080, name: http}]}]}
status: {podIPs: [{ip: 10.244.1.10}, {ip: 'fd00:10:244:1::10'}]}
---
apiVersion: v1
kind: Pod
metadata: {name: db, namespace: prod, labels: {app: db}}
spec: {containers: [{name: c, ports: [{containerPort: 9090, name: http}]}]}
status: {podIPs: [{ip: 10.244.1.11}, {ip: 'fd00:10:244:1::11'}]}
---
apiVersion: v1
kind: Pod
metadata: {name: prometheus, namespace: monitoring, labels: {app: prometheus}}
spec: {containers: [{name: c}]}
status: {podIPs: [{ip: 10.244.2.10}, {ip: 'fd00:10:244:2::10'}]}
---
apiVersion: v1
kind: Pod
metadata: {name: grafana, namespace: monitoring, labels: {app: grafana}}
spec: {containers: [{name: c}]}
status: {podIPs: [{ip: 10.244.2.11}, {ip: 'fd00:10:244:2::11'}]}
---
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: other, labels: {app: client}}
spec: {containers: [{name: c}]}
status: {podIPs: [{ip: 10.244.3.10}, {ip: 'fd00:10:244:3::10'}]}
---
# Admin: prometheus passed on to NetworkPolicy, the rest of monitoring denied (rule
# order); the client passed on TCP port 80 only (a Pass in the tier's port lookup, ahead of
# a Deny of the same address on every port in its address lookup), the other namespace
# reaches prod's named port http (resolved per pod: 8080 on web, 9090 on db) and nothing else.
apiVersion: policy.networking.k8s.io/v1beta1
kind: ClusterNetworkPolicy
metadata: {name: protect-prod}
spec:
  tier: Admin
  priority: 10
  subject: {namespaces: {matchLabels: {team: prod}}}
  ingress:
  - {name: prometheus-passes, action: Pass, from: [{pods: {namespaceSelector: {matchLabels: {team: monitoring}}, podSelector: {matchLabels: {app: prometheus}}}}]}
  - {name: monitoring-denied, action: Deny, from: [{namespaces: {matchLabels: {team: monitoring}}}]}
  - {name: client-80-passes, action: Pass, from: [{pods: {namespaceSelector: {matchLabels: {team: other}}, podSelector: {matchLabels: {app: client}}}}], protocols: [{tcp: {destinationPort: {number: 80}}}]}
  - {name: other-to-http, action: Accept, from: [{namespaces: {matchLabels: {team: other}}}], protocols: [{destinationNamedPort: http}]}
  - {name: other-denied, action: Deny, from: [{namespaces: {matchLabels: {team: other}}}]}
---
# Priority: this one (5) runs before protect-prod (10): UDP from anywhere to prod is denied.
apiVersion: policy.networking.k8s.io/v1beta1
kind: ClusterNetworkPolicy
metadata: {name: no-udp-into-prod}
spec:
  tier: Admin
  priority: 5
  subject: {namespaces: {matchLabels: {team: prod}}}
  ingress:
  - {action: Deny, from: [{namespaces: {}}], protocols: [{udp: {destinationPort: {range: {start: 1, end: 65535}}}}]}
---
# Egress Accept from the client to every pod network (IPv4 and IPv6): the destination's
# ingress still decides.
apiVersion: policy.networking.k8s.io/v1beta1
kind: ClusterNetworkPolicy
metadata: {name: client-out}
spec:
  tier: Admin
  priority: 20
  subject: {pods: {namespaceSelector: {matchLabels: {team: other}}, podSelector: {}}}
  egress:
  - {action: Accept, to: [{networks: [10.244.0.0/16, 'fd00:10:244::/48']}]}
---
# Baseline: everything into monitoring is denied, and grafana may not talk at all (egress).
apiVersion: policy.networking.k8s.io/v1beta1
kind: ClusterNetworkPolicy
metadata: {name: baseline}
spec:
  tier: Baseline
  priority: 10
  subject: {namespaces: {matchLabels: {team: monitoring}}}
  ingress:
  - {action: Deny, from: [{namespaces: {}}]}
  egress:
  - {action: Deny, to: [{pods: {namespaceSelector: {}, podSelector: {}}}]}
---
# A NetworkPolicy isolates prometheus for egress: the Baseline tier does not apply to it.
# In prod, web admits prometheus on 8080 (reached after the Pass).
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: prometheus-egress, namespace: monitoring}
spec:
  podSelector: {matchLabels: {app: prometheus}}
  policyTypes: [Egress]
  egress: [{}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web, namespace: prod}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress: [{from: [{namespaceSelector: {matchLabels: {team: monitoring}}}], ports: [{port: 8080}]}]
";

#[test]
fn real_packets_follow_the_tiers() {
    if !require_privileges() {
        return;
    }
    let c = cluster(SCENARIO);
    assert_eq!(c.cluster_policies.len(), 4);
    let bed = testbed_for(&c);
    let _servers: Vec<Servers> = bed.pods.iter().map(|(_, ns)| Servers::start(ns, &[8080, 9090, 80], &[8080])).collect();
    let probers: Vec<Prober> = bed.pods.iter().map(|(_, ns)| Prober::new(ns)).collect();
    let ruleset = render(&NodeState { cluster: &c, local: (0..c.endpoints.len()).collect(), options: RenderOptions { deny_action: DenyAction::Reject, ..Default::default() } });
    Dataplane::new(NodeNft(&bed)).stream_elements_above(0).replace(&ruleset).expect("the kernel takes the tiers");
    let (mut allowed, mut denied) = (0, 0);
    for (from, _) in c.endpoints.iter().enumerate() {
        for (to, dst) in c.endpoints.iter().enumerate() {
            if from == to {
                continue;
            }
            for (port, protocol) in [(8080, Protocol::Tcp), (9090, Protocol::Tcp), (80, Protocol::Tcp), (8080, Protocol::Udp)] {
                for &ip in &dst.ips {
                    let v6 = ip.is_ipv6();
                    let flow = palisade_policy::Flow { src: palisade_policy::FlowEnd::endpoint(&c, from, Some(v6)), dst: palisade_policy::FlowEnd::endpoint(&c, to, Some(v6)), port, protocol };
                    let verdict = palisade_policy::verdict(&c, &flow);
                    let outcome = probers[from].probe(ip, port, protocol == Protocol::Udp, TIMEOUT);
                    assert_eq!(outcome.allowed(), verdict.allowed, "{} -> {} {ip} {port}/{protocol}: {outcome:?}; engine: {verdict:?}", c.endpoints[from].display_name(), dst.display_name());
                    if verdict.allowed {
                        allowed += 1;
                    } else {
                        assert_eq!(outcome, Outcome::Refused, "denials are rejected at once");
                        denied += 1;
                    }
                }
            }
        }
    }
    assert!(allowed > 10 && denied > 10, "{allowed} allowed, {denied} denied");
}

/// The flows each step alone decides, as the engine sees them (so the packet test above
/// covers every step, not only whatever the scenario happens to hold).
#[test]
fn each_step_decides_a_flow_of_the_scenario() {
    let c = cluster(SCENARIO);
    let index = |name: &str| c.endpoints.iter().position(|e| e.display_name() == name).unwrap();
    let allowed = |from: &str, to: &str, port: u16, protocol: Protocol| {
        let flow = palisade_policy::Flow { src: palisade_policy::FlowEnd::endpoint(&c, index(from), Some(false)), dst: palisade_policy::FlowEnd::endpoint(&c, index(to), Some(false)), port, protocol };
        palisade_policy::verdict(&c, &flow).allowed
    };
    // Pass to NetworkPolicy, which admits prometheus on 8080 only.
    assert!(allowed("monitoring/prometheus", "prod/web", 8080, Protocol::Tcp));
    assert!(!allowed("monitoring/prometheus", "prod/web", 80, Protocol::Tcp));
    // A Pass on one port before a Deny on every port: the client reaches db (no
    // NetworkPolicy isolates it) on 80, and the address-wide Deny does not run after the
    // Pass; db's 8080 is not its http port and the Deny decides.
    assert!(allowed("other/client", "prod/db", 80, Protocol::Tcp) && !allowed("other/client", "prod/db", 8080, Protocol::Tcp));
    // Rule order: grafana is denied although web's NetworkPolicy admits monitoring.
    assert!(!allowed("monitoring/grafana", "prod/web", 8080, Protocol::Tcp));
    // Named port on the destination: web's http (8080) is accepted over web's NetworkPolicy,
    // which admits only monitoring; web's 9090 is not http and that policy denies it.
    assert!(allowed("other/client", "prod/web", 8080, Protocol::Tcp) && !allowed("other/client", "prod/web", 9090, Protocol::Tcp));
    // Priority: UDP denied before the named-port Accept.
    assert!(!allowed("other/client", "prod/web", 8080, Protocol::Udp));
    // Egress Accept, ingress Baseline Deny at the destination.
    assert!(!allowed("other/client", "monitoring/grafana", 80, Protocol::Tcp));
    // Baseline egress: grafana cannot reach other; prometheus (isolated by NetworkPolicy) can.
    assert!(!allowed("monitoring/grafana", "other/client", 80, Protocol::Tcp));
    assert!(allowed("monitoring/prometheus", "other/client", 80, Protocol::Tcp));
}
