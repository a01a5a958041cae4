//! ClusterNetworkPolicy through the lab's Kubernetes API, as root: kubectl applies the CRD's
//! objects, the API validates them with the CRD's rules, the agents of both nodes watch
//! them with their ServiceAccount under the manifest's ClusterRole and enforce the tiers;
//! real packets across nodes.

mod support;

use palisade_testbed::require_privileges;
use serde_json::Value;
use support::{TestLab, connects, ip_of};

const WORKLOADS: &str = "
apiVersion: v1
kind: Namespace
metadata: {name: prod, labels: {team: prod}}
---
apiVersion: v1
kind: Namespace
metadata: {name: monitoring, labels: {team: monitoring}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: prod}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: registry.k8s.io/e2e-test-images/agnhost:2.47
        args: [serve-hostname]
        ports: [{containerPort: 8080, name: http}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: prometheus, namespace: monitoring}
spec:
  replicas: 2
  selector: {matchLabels: {app: prometheus}}
  template:
    metadata: {labels: {app: prometheus}}
    spec:
      containers: [{name: c, image: busybox, command: [sleep, infinity]}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: grafana, namespace: monitoring}
spec:
  replicas: 2
  selector: {matchLabels: {app: grafana}}
  template:
    metadata: {labels: {app: grafana}}
    spec:
      containers: [{name: c, image: busybox, command: [sleep, infinity]}]
";

/// Admin: prometheus is passed on to NetworkPolicy (none isolates web: allowed), the rest
/// of monitoring denied. Baseline: nothing reaches monitoring.
const TIERS: &str = "
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
---
apiVersion: policy.networking.k8s.io/v1beta1
kind: ClusterNetworkPolicy
metadata: {name: quiet-monitoring}
spec:
  tier: Baseline
  priority: 10
  subject: {namespaces: {matchLabels: {team: monitoring}}}
  ingress:
  - {action: Deny, from: [{namespaces: {}}]}
";

#[test]
fn tiers_through_the_api_are_enforced_on_both_nodes() {
    if !require_privileges() {
        return;
    }
    let lab = TestLab::up(2);
    lab.apply("workloads.yaml", WORKLOADS);
    let (web, prometheus, grafana) = (lab.pods("prod", "web-"), lab.pods("monitoring", "prometheus-"), lab.pods("monitoring", "grafana-"));
    let reaches = |from: &Value, to: &Value| connects(&lab.pod_netns(from), ip_of(to), 8080);
    for to in &web {
        assert!(reaches(&grafana[0], to) && reaches(&prometheus[0], to), "no policy: everything connects");
    }

    let applied = lab.apply("tiers.yaml", TIERS);
    assert_eq!(applied, "clusternetworkpolicy.policy.networking.k8s.io/protect-prod created\nclusternetworkpolicy.policy.networking.k8s.io/quiet-monitoring created\n");
    let listed = lab.k(&["get", "cnp"]);
    assert!(listed.contains("protect-prod       Admin    10") || listed.lines().any(|l| l.starts_with("protect-prod") && l.contains("Admin") && l.contains("10")), "{listed}");
    for to in &web {
        for from in &grafana {
            assert!(!reaches(from, to), "Admin Deny: grafana {} -> web {}", from["spec"]["nodeName"], to["spec"]["nodeName"]);
        }
        for from in &prometheus {
            assert!(reaches(from, to), "Pass, and no NetworkPolicy isolates web: prometheus {} -> web {}", from["spec"]["nodeName"], to["spec"]["nodeName"]);
        }
    }
    // Baseline: web -> monitoring is denied by the Baseline rule (grafana listens on nothing,
    // so the rule's counter tells the rule's refusal from the pod's own).
    let counted = |rule: &str| lab.counted_on("node-1", rule) + lab.counted_on("node-2", rule);
    let before = counted("quiet-monitoring (Baseline tier, priority 10) ingress[0]");
    for to in &grafana {
        assert!(!reaches(&web[0], to));
    }
    assert!(counted("quiet-monitoring (Baseline tier, priority 10) ingress[0]") >= before + 2, "the Baseline rule denied both");
    // A NetworkPolicy now isolates web for ingress from everything but itself: the Pass hands
    // prometheus to it, and it denies.
    lab.apply("np.yaml", "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: only-web, namespace: prod}\nspec:\n  podSelector: {}\n  ingress: [{from: [{podSelector: {}}]}]\n");
    for to in &web {
        assert!(!reaches(&prometheus[0], to), "passed to NetworkPolicy, which denies");
    }
    // The counters of the rule chains count per rule.
    let table = lab.node_table("node-1") + &lab.node_table("node-2");
    assert!(table.contains("protect-prod (Admin tier, priority 10) ingress[1] 'monitoring-denied': Deny"), "{table}");

    // The API validates with the CRD's rules: a priority out of range is refused, nothing stored.
    let bad = lab.file(
        "bad.yaml",
        &TIERS
            .replace("priority: 10\n  subject: {namespaces: {matchLabels: {team: prod}}}", "priority: 5000\n  subject: {namespaces: {matchLabels: {team: prod}}}")
            .replace("protect-prod", "too-high"),
    );
    let refused = lab.kubectl(&["apply", "-f", &bad]);
    assert!(!refused.status.success());
    let why = String::from_utf8_lossy(&refused.stderr);
    assert!(why.contains("too-high") && why.contains("spec.priority"), "{why}");
    assert!(!lab.k(&["get", "cnp"]).contains("too-high"));

    // domainNames are not enforced: an Event on the policy says so.
    lab.apply(
        "names.yaml",
        "apiVersion: policy.networking.k8s.io/v1beta1\nkind: ClusterNetworkPolicy\nmetadata: {name: registry}\nspec:\n  tier: Admin\n  priority: 30\n  subject: {namespaces: {}}\n  egress:\n  - {action: Accept, to: [{domainNames: [registry.example.com]}]}\n",
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let events = lab.k(&["get", "events.events.k8s.io", "-A", "-o", "json"]);
        if events.contains("DomainNamesNotEnforced") {
            assert!(events.contains("spec.egress[0].to[0].domainNames") && events.contains("\"kind\": \"ClusterNetworkPolicy\""), "{events}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no DomainNamesNotEnforced Event: {events}");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }

    // Deleting the tiers restores the default.
    lab.k(&["delete", "cnp", "protect-prod", "quiet-monitoring", "registry"]);
    lab.k(&["delete", "networkpolicy", "only-web", "-n", "prod"]);
    lab.synced();
    for to in &web {
        assert!(reaches(&grafana[0], to));
    }
}
