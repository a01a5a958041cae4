//! `palisade lab` end to end, as root: each test runs its own lab (its own namespaces,
//! daemon, API server and state) and takes it down, even when it fails. The lab is driven
//! by the real kubectl; real processes, real packets.

mod support;

use std::net::{IpAddr, SocketAddr, TcpStream};
use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use palisade_testbed::require_privileges;
use serde_json::Value;
use support::{PALISADE, TestLab, connects, ip_of, root_namespace_state, root_tables, workspace};

#[test]
fn seed_walkthrough_with_real_packets_then_down_leaves_nothing() {
    if !require_privileges() {
        return;
    }
    let tables_before = root_tables();
    let root_before = root_namespace_state();
    let lab = TestLab::new();
    let output = Command::new(workspace().join("examples/seed-demo/run.sh")).env("PALISADE", PALISADE).env("PALISADE_LAB", &lab.name).output().unwrap();
    let transcript = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "run.sh failed:\n{transcript}\n{}", String::from_utf8_lossy(&output.stderr));
    // Before the policy: both namespaces get nginx; after it: production does, develop is refused.
    let (before, after) = transcript.split_once("== default-deny-ingress in production ==").unwrap();
    assert_eq!(before.matches("HTTP/1.1 200 OK").count(), 2, "{transcript}");
    assert!(before.contains("Server: nginx/"), "{transcript}");
    assert_eq!(before.matches("80 port [tcp/http] succeeded!").count(), 2, "{transcript}");
    assert!(after.contains("networkpolicy.networking.k8s.io/default-deny-ingress created"), "{transcript}");
    assert_eq!(after.matches("HTTP/1.1 200 OK").count(), 1, "{transcript}");
    let refused = after.lines().find(|l| l.starts_with("curl: (7) Failed to connect to nginx.production port 80 after")).unwrap_or_else(|| panic!("{transcript}"));
    assert!(refused.ends_with("Couldn't connect to server"), "{refused}");
    let ms: u64 = refused.split(" after ").nth(1).unwrap().split(" ms").next().unwrap().parse().unwrap();
    assert!(ms < 100, "refused after {ms} ms: a reset, not a timeout");
    assert!(after.contains("failed: Connection refused"), "{transcript}");

    let down = lab.ok(&["down"]);
    assert!(down.contains("is down"), "{down}");
    assert_eq!(lab.leftovers(), Vec::<String>::new(), "down left things behind");
    assert_eq!(root_tables(), tables_before, "the host's own nft tables are untouched");
    assert_eq!(root_namespace_state(), root_before, "the host's links, routes and forwarding are untouched");
    let again = lab.cli(&["down"]);
    assert!(again.status.success(), "a second down succeeds");
}

const MULTI: &str = "
apiVersion: v1
kind: Namespace
metadata: {name: multi}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: multi}
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
        ports: [{containerPort: 8080}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: client, namespace: multi}
spec:
  replicas: 2
  selector: {matchLabels: {app: client}}
  template:
    metadata: {labels: {app: client}}
    spec:
      containers: [{name: c, image: busybox, command: [sleep, infinity]}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: other, namespace: multi}
spec:
  replicas: 2
  selector: {matchLabels: {app: other}}
  template:
    metadata: {labels: {app: other}}
    spec:
      containers: [{name: c, image: busybox, command: [sleep, infinity]}]
";

const MULTI_POLICIES: &str = "
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web-from-clients, namespace: multi}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress:
  - from: [{podSelector: {matchLabels: {app: client}}}]
    ports: [{port: 8080}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: other-only-outside, namespace: multi}
spec:
  podSelector: {matchLabels: {app: other}}
  policyTypes: [Egress]
  egress:
  - to: [{ipBlock: {cidr: 203.0.113.0/24}}]
";

#[test]
fn two_nodes_ingress_on_the_destination_node_egress_on_the_source_node() {
    if !require_privileges() {
        return;
    }
    let lab = TestLab::up(2);
    lab.apply("multi.yaml", MULTI);
    let (web, client, other) = (lab.pods("multi", "web-"), lab.pods("multi", "client-"), lab.pods("multi", "other-"));
    let nodes = |pods: &[Value]| {
        let mut n: Vec<String> = pods.iter().map(|p| p["spec"]["nodeName"].as_str().unwrap().to_string()).collect();
        n.sort();
        n
    };
    assert_eq!(nodes(&web), ["node-1", "node-2"], "one web pod per node");
    assert_eq!(nodes(&client), ["node-1", "node-2"]);
    assert_eq!(nodes(&other), ["node-1", "node-2"]);
    let outside: IpAddr = "203.0.113.10".parse().unwrap();
    // No policy: everything connects, across nodes too, and the outside host answers.
    for from in client.iter().chain(&other) {
        for to in &web {
            assert!(connects(&lab.pod_netns(from), ip_of(to), 8080));
        }
        assert!(connects(&lab.pod_netns(from), outside, 80));
    }

    let applied = lab.apply("policies.yaml", MULTI_POLICIES);
    assert_eq!(applied, "networkpolicy.networking.k8s.io/web-from-clients created\nnetworkpolicy.networking.k8s.io/other-only-outside created\n");
    for from in &client {
        for to in &web {
            assert!(connects(&lab.pod_netns(from), ip_of(to), 8080), "client {} -> web {}", from["spec"]["nodeName"], to["spec"]["nodeName"]);
        }
    }
    // Other -> web: denied by web's ingress policy, on web's node; other -> outside allowed by
    // its egress ipBlock, other -> web also denied by its own egress, on its own node.
    let on = |p: &Value| p["spec"]["nodeName"].as_str().unwrap().to_string();
    let web_on_2 = web.iter().find(|p| on(p) == "node-2").unwrap();
    let other_on_1 = other.iter().find(|p| on(p) == "node-1").unwrap();
    let (before_1, before_2) = (lab.denied_on("node-1"), lab.denied_on("node-2"));
    assert!(!connects(&lab.pod_netns(other_on_1), ip_of(web_on_2), 8080));
    assert!(lab.denied_on("node-1") > before_1, "egress is judged on the source node");
    assert_eq!(lab.denied_on("node-2"), before_2, "denied at the source, the packet never reached node-2");
    assert!(connects(&lab.pod_netns(other_on_1), outside, 80), "ipBlock 203.0.113.0/24 allows the outside host");

    // Ingress only: relabel an `other` pod so its egress policy no longer applies; web's
    // ingress policy now denies it on web's node.
    let name = other_on_1["metadata"]["name"].as_str().unwrap();
    lab.k(&["label", "pod", name, "-n", "multi", "app=stray", "--overwrite"]);
    lab.synced();
    let (before_1, before_2) = (lab.denied_on("node-1"), lab.denied_on("node-2"));
    assert!(!connects(&lab.pod_netns(other_on_1), ip_of(web_on_2), 8080));
    assert_eq!(lab.denied_on("node-1"), before_1, "the source node lets it out");
    assert!(lab.denied_on("node-2") > before_2, "ingress is judged on the destination node");
    let client_on_1 = client.iter().find(|p| on(p) == "node-1").unwrap();
    assert!(connects(&lab.pod_netns(client_on_1), ip_of(web_on_2), 8080), "clients still reach web across nodes");
}

#[test]
fn enforcement_follows_policies_pod_and_namespace_labels_while_a_client_loops() {
    if !require_privileges() {
        return;
    }
    let lab = TestLab::up(1);
    lab.apply("multi.yaml", MULTI);
    let client = lab.pods("multi", "client-").remove(0);
    let web = lab.pods("multi", "web-").remove(0);
    let (netns, target) = (lab.pod_netns(&client), ip_of(&web));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stopper = stop.clone();
    // The client loops: (when the attempt started, whether it connected).
    let prober = std::thread::spawn(move || {
        let mut attempts = Vec::new();
        palisade_net::run_in(&netns, || {
            while !stopper.load(Ordering::Relaxed) {
                let at = Instant::now();
                let ok = TcpStream::connect_timeout(&SocketAddr::new(target, 8080), Duration::from_secs(1)).is_ok();
                attempts.push((at, ok));
                std::thread::sleep(Duration::from_millis(2));
            }
        })
        .unwrap();
        attempts
    });
    let deny = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: gate, namespace: multi}\nspec:\n  podSelector: {matchLabels: {app: web}}\n  ingress: [{from: [{podSelector: {matchLabels: {app: nobody}}}]}]\n";
    let allow = deny.replace("app: nobody", "app: client");
    let by_namespace = deny.replace("{podSelector: {matchLabels: {app: nobody}}}", "{namespaceSelector: {matchLabels: {team: blue}}}");
    let client_name = client["metadata"]["name"].as_str().unwrap().to_string();
    // Each step: what changes, and whether the client may connect once every node's agent
    // enforces it (`lab status --wait-synced`): policies, the client pod's labels and its
    // namespace's labels.
    let steps: Vec<(&str, Box<dyn Fn()>, bool)> = vec![
        ("deny", Box::new(|| drop(lab.apply("gate.yaml", deny))), false),
        ("allow", Box::new(|| drop(lab.apply("gate.yaml", &allow))), true),
        ("client pod relabeled", Box::new(|| drop(lab.k(&["label", "pod", "-n", "multi", &client_name, "app=other", "--overwrite"]))), false),
        ("client pod label back", Box::new(|| drop(lab.k(&["label", "pod", "-n", "multi", &client_name, "app=client", "--overwrite"]))), true),
        ("by namespace label", Box::new(|| drop(lab.apply("gate.yaml", &by_namespace))), false),
        ("namespace labeled team=blue", Box::new(|| drop(lab.k(&["label", "namespace", "multi", "team=blue"]))), true),
        ("namespace labeled team=red", Box::new(|| drop(lab.k(&["label", "namespace", "multi", "team=red", "--overwrite"]))), false),
        ("deleted", Box::new(|| drop(lab.k(&["delete", "networkpolicy", "gate", "-n", "multi"]))), true),
    ];
    let mut phases = Vec::new();
    std::thread::sleep(Duration::from_millis(200));
    for (label, change, _) in &steps {
        let start = Instant::now();
        change();
        lab.synced();
        phases.push((*label, start, Instant::now()));
        std::thread::sleep(Duration::from_millis(300));
    }
    stop.store(true, Ordering::Relaxed);
    let attempts = prober.join().unwrap();
    for (i, ((label, started, returned), (_, _, expected))) in phases.iter().zip(&steps).enumerate() {
        let until = phases.get(i + 1).map(|p| p.1);
        let window: Vec<bool> = attempts.iter().filter(|(at, _)| at >= returned && until.is_none_or(|u| *at < u)).map(|(_, ok)| *ok).collect();
        assert!(window.len() > 20, "{label}: only {} attempts", window.len());
        assert!(window.iter().all(|ok| ok == expected), "{label}: once every node reported the change, {} of {} attempts disagreed", window.iter().filter(|ok| *ok != expected).count(), window.len());
        let took = returned.duration_since(*started);
        assert!(took < Duration::from_secs(5), "{label}: kubectl and the sync took {took:?}");
    }
    let before: Vec<bool> = attempts.iter().filter(|(at, _)| *at < phases[0].1).map(|(_, ok)| *ok).collect();
    assert!(!before.is_empty() && before.iter().all(|ok| *ok), "before any policy every attempt connects");

    // `--wait-synced` waits for the agents themselves: with the node's agent stopped, a
    // change is not reported as enforced; once it runs again, it is.
    let agent = lab.pods("palisade-system", "palisade-agent-").remove(0);
    let pid: i32 = agent["status"]["containerStatuses"][0]["containerID"].as_str().unwrap().trim_start_matches("palisade://").parse().unwrap();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGSTOP).unwrap();
    lab.k(&["apply", "-f", &lab.file("gate.yaml", deny)]);
    let waited = lab.cli(&["status", "--wait-synced", "1"]);
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGCONT).unwrap();
    let error = String::from_utf8_lossy(&waited.stderr);
    assert!(!waited.status.success() && error.contains("node-1"), "wait-synced returned with the agent stopped: {error}");
    lab.synced();
    assert!(!connects(&lab.pod_netns(&client), target, 8080), "the change made while the agent was stopped is enforced");
}

#[test]
fn cluster_dns_answers_and_default_deny_egress_breaks_it() {
    if !require_privileges() {
        return;
    }
    let lab = TestLab::up(1);
    lab.apply("multi.yaml", MULTI);
    lab.apply(
        "svc.yaml",
        "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: multi}\nspec:\n  selector: {app: web}\n  ipFamilyPolicy: PreferDualStack\n  ports: [{port: 80, targetPort: 8080}]\n",
    );
    let service = lab.json(&["get", "svc", "web", "-n", "multi"]);
    let ips: Vec<&str> = service["spec"]["clusterIPs"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert_eq!(ips.len(), 2, "dual-stack service: {service}");
    let hosts = lab.k(&["exec", "-n", "multi", "deploy/client", "--", "getent", "ahosts", "web"]);
    assert!(hosts.contains(ips[0]) && hosts.contains(ips[1]), "A and AAAA through the search path: {hosts}");
    let fqdn = lab.k(&["exec", "-n", "multi", "deploy/client", "--", "getent", "hosts", "web.multi.svc.cluster.local"]);
    assert!(fqdn.contains(ips[0]) || fqdn.contains(ips[1]), "{fqdn}");
    // Through the Service to the built-in server (HTTP answered with the pod's hostname).
    let reply = lab.k(&["exec", "-n", "multi", "deploy/client", "--", "curl", "-s", "http://web"]);
    assert!(reply.starts_with("web-"), "{reply}");
    // Hairpin: a web pod through its own Service lands on itself about half the time (24 tries: all elsewhere has odds 6e-8); the
    // node SNATs those so the replies come back.
    let web_pod = lab.pods("multi", "web-")[0]["metadata"]["name"].as_str().unwrap().to_string();
    let replies = lab.k(&["exec", "-n", "multi", &web_pod, "--", "sh", "-c", "for i in $(seq 24); do curl -s --max-time 2 http://web; done"]);
    assert_eq!(replies.lines().count(), 24, "{replies}");
    assert!(replies.lines().any(|l| l == web_pod), "some replies come from the pod itself: {replies}");

    lab.apply("deny.yaml", "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: default-deny-egress, namespace: multi}\nspec:\n  podSelector: {}\n  policyTypes: [Egress]\n");
    let failed = lab.kubectl(&["exec", "-n", "multi", "deploy/client", "--", "getent", "hosts", "web"]);
    assert!(!failed.status.success(), "DNS is egress too: {}", String::from_utf8_lossy(&failed.stdout));
}

#[test]
fn bad_input_gets_the_api_servers_error_and_is_not_stored() {
    if !require_privileges() {
        return;
    }
    let lab = TestLab::up(1);
    lab.k(&["create", "ns", "prod"]);
    let stderr = |out: &std::process::Output| String::from_utf8_lossy(&out.stderr).into_owned();
    // An invalid policy is refused with the engine's field path and reason; kubectl applies
    // a file object by object (as against any API server), so the valid Deployment next to
    // it is created and the policy is not.
    let file = lab.file(
        "bad.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: ok, namespace: prod}\nspec:\n  selector: {matchLabels: {app: ok}}\n  template:\n    metadata: {labels: {app: ok}}\n    spec: {containers: [{name: c, image: busybox, command: [sleep, infinity]}]}\n---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: bad, namespace: prod}\nspec:\n  podSelector: {}\n  ingress:\n  - from:\n    - ipBlock: {cidr: 10.0.0/8}\n",
    );
    let out = lab.kubectl(&["apply", "-f", &file]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("The NetworkPolicy \"bad\" is invalid: spec.ingress[0].from[0].ipBlock.cidr") && stderr(&out).contains("10.0.0/8"), "{}", stderr(&out));
    assert!(lab.json(&["get", "networkpolicies", "-A"])["items"].as_array().unwrap().is_empty());
    // An unknown field is refused (kubectl's default, --validate=strict), naming it.
    let file = lab.file("typo.yaml", "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: typo, namespace: prod}\nspec:\n  podSelector: {}\n  ingres: []\n");
    let out = lab.kubectl(&["apply", "-f", &file]);
    assert!(!out.status.success() && stderr(&out).contains("unknown field \"spec.ingres\""), "{}", stderr(&out));
    // A namespace that does not exist, a kind the lab does not serve.
    let file = lab.file("nons.yaml", "apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: nope}\nspec: {containers: [{name: c, image: busybox, command: [sleep, infinity]}]}\n");
    let out = lab.kubectl(&["apply", "-f", &file]);
    assert!(!out.status.success() && stderr(&out).contains("namespaces \"nope\" not found"), "{}", stderr(&out));
    let file = lab.file("crd.yaml", "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w, namespace: prod}\n");
    let out = lab.kubectl(&["apply", "-f", &file]);
    assert!(!out.status.success() && stderr(&out).contains("no matches for kind \"Widget\" in version \"example.com/v1\""), "{}", stderr(&out));
    for (args, message) in [
        (vec!["exec", "-n", "nope", "x", "--", "true"], "namespaces \"nope\" not found"),
        (vec!["exec", "-n", "prod", "missing", "--", "true"], "pods \"missing\" not found"),
        (vec!["exec", "-n", "prod", "deploy/missing", "--", "true"], "deployments.apps \"missing\" not found"),
        (vec!["get", "widgets"], "the server doesn't have a resource type \"widgets\""),
        (vec!["get", "pods", "missing", "-n", "prod"], "pods \"missing\" not found"),
        (vec!["create", "ns", "prod"], "namespaces \"prod\" already exists"),
        (vec!["label", "ns", "prod", "bad!key=x"], "metadata.labels: Invalid value: \"bad!key=x\""),
        (vec!["delete", "ns", "kube-system"], "this namespace may not be deleted"),
    ] {
        let out = lab.kubectl(&args);
        assert!(!out.status.success(), "{args:?}");
        assert!(stderr(&out).contains(message), "{args:?}: {}", stderr(&out));
    }
    // The namespace's name label follows its name whatever a client writes, as upstream.
    lab.k(&["label", "ns", "prod", "kubernetes.io/metadata.name=other", "--overwrite"]);
    assert_eq!(lab.k(&["get", "ns", "prod", "-o", "jsonpath={.metadata.labels.kubernetes\\.io/metadata\\.name}"]), "prod");
    // An unknown program makes the pod fail to start with the runtime's message.
    lab.apply("start.yaml", "apiVersion: v1\nkind: Pod\nmetadata: {name: typo, namespace: prod}\nspec: {restartPolicy: Never, containers: [{name: c, image: busybox, command: [no-such-program]}]}\n");
    let pod = lab.json(&["get", "pod", "typo", "-n", "prod"]);
    assert_eq!(pod["status"]["phase"], "Failed", "{pod}");
    let terminated = &pod["status"]["containerStatuses"][0]["state"]["terminated"];
    assert_eq!(terminated["reason"], "StartError");
    assert!(terminated["message"].as_str().unwrap().contains("exec: \"no-such-program\": executable file not found in $PATH"), "{terminated}");
    assert!(lab.k(&["get", "pods", "-n", "prod"]).contains("StartError"));
}

#[test]
fn kubectl_verbs_against_the_labs_api() {
    if !require_privileges() {
        return;
    }
    let lab = TestLab::up(2);
    let app = "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n---\napiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: db, namespace: shop}\nspec:\n  serviceName: db\n  replicas: 2\n  selector: {matchLabels: {app: db}}\n  template:\n    metadata: {labels: {app: db}}\n    spec:\n      containers:\n      - {name: main, image: busybox, command: [sh, -c, 'echo $(hostname) started; exec sleep infinity']}\n      - {name: side, image: agnhost, ports: [{containerPort: 9000}, {containerPort: 9001, protocol: UDP}]}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: db, namespace: shop}\nspec: {clusterIP: None, selector: {app: db}}\n---\napiVersion: apps/v1\nkind: DaemonSet\nmetadata: {name: agent, namespace: shop}\nspec:\n  selector: {matchLabels: {app: agent}}\n  template:\n    metadata: {labels: {app: agent}}\n    spec: {containers: [{name: a, image: busybox, command: [sleep, infinity]}]}\n";
    let out = lab.apply("app.yaml", app);
    assert_eq!(out, "namespace/shop created\nstatefulset.apps/db created\nservice/db created\ndaemonset.apps/agent created\n");
    let file = lab.file("app.yaml", app);
    assert_eq!(lab.k(&["apply", "-f", &file]), "namespace/shop unchanged\nstatefulset.apps/db unchanged\nservice/db unchanged\ndaemonset.apps/agent unchanged\n");
    // Tables, YAML, jsonpath, -A, rollout status.
    let pods = lab.k(&["get", "pods", "-n", "shop"]);
    assert!(pods.starts_with("NAME") && pods.contains("db-0 ") && pods.contains("db-1 ") && pods.contains("2/2"), "{pods}");
    let yaml = lab.k(&["get", "sts", "db", "-n", "shop", "-o", "yaml"]);
    assert!(yaml.contains("kind: StatefulSet") && yaml.contains("readyReplicas: 2"), "{yaml}");
    assert_eq!(lab.k(&["get", "ds", "agent", "-n", "shop", "-o", "jsonpath={.status.numberReady}"]), "2", "one per node");
    let nodes = lab.k(&["get", "pods", "-n", "shop", "-o", "jsonpath={range .items[*]}{.metadata.name} {.spec.nodeName}{\"\\n\"}{end}"]);
    assert_eq!(nodes.lines().count(), 4, "{nodes}");
    assert!(lab.k(&["get", "pods", "-A"]).starts_with("NAMESPACE"));
    assert!(lab.k(&["rollout", "status", "ds/agent", "-n", "shop", "--timeout=30s"]).contains("successfully rolled out"));
    // A changed file is patched (client-side apply's strategic merge patch): a third replica.
    lab.file("app.yaml", &app.replace("replicas: 2", "replicas: 3"));
    assert!(lab.k(&["apply", "-f", &file]).contains("statefulset.apps/db configured"));
    lab.settle();
    assert!(lab.k(&["get", "pods", "-n", "shop"]).contains("db-2 "));
    // exec: a chosen container, stdin passed through, the exit status propagated.
    let mut child = lab
        .kubectl_command(&["exec", "-i", "-n", "shop", "db-0", "-c", "side", "--", "sh", "-c", "cat; hostname; exit 3"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"from stdin\n").unwrap();
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(3), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(String::from_utf8_lossy(&output.stdout), "from stdin\ndb-0\n");
    // The built-in server answers TCP and UDP with the hostname, also through the pod's FQDN.
    let tcp = lab.k(&["exec", "-n", "shop", "db-1", "--", "sh", "-c", "nc -w 2 db-0.db.shop.svc.cluster.local 9000 </dev/null"]);
    assert_eq!(tcp, "db-0\n");
    let udp = lab.k(&["exec", "-n", "shop", "db-1", "--", "sh", "-c", "echo hi | nc -u -w 1 db-0.db.shop.svc.cluster.local 9001"]);
    assert_eq!(udp, "db-0\n");
    // A container's log.
    assert_eq!(lab.k(&["logs", "db-0", "-c", "main", "-n", "shop"]), "db-0 started\n");
    // Labels: add, refuse to overwrite, overwrite, remove.
    assert_eq!(lab.k(&["label", "pod", "db-0", "-n", "shop", "tier=data"]).lines().next(), Some("pod/db-0 labeled"));
    let refused = lab.kubectl(&["label", "pod", "db-0", "-n", "shop", "tier=cache"]);
    assert!(!refused.status.success() && String::from_utf8_lossy(&refused.stderr).contains("'tier' already has a value (data), and --overwrite is false"));
    lab.k(&["label", "pod", "db-0", "-n", "shop", "tier=cache", "--overwrite"]);
    lab.k(&["label", "pod", "db-0", "-n", "shop", "tier-"]);
    assert_eq!(lab.k(&["get", "pod", "db-0", "-n", "shop", "-o", "jsonpath={.metadata.labels.tier}"]), "");
    // delete -f removes what a file made (kubectl waits until it is gone); the pods go with
    // their owners, their sandboxes with the pods. (Deleting the namespace in the same
    // command races its own emptying, here as on any cluster.)
    let workloads = lab.file("workloads.yaml", app.split_once("---\n").unwrap().1);
    let out = lab.k(&["delete", "-f", &workloads]);
    assert_eq!(out, "statefulset.apps \"db\" deleted from shop namespace\nservice \"db\" deleted from shop namespace\ndaemonset.apps \"agent\" deleted from shop namespace\n");
    lab.k(&["wait", "--for=delete", "pod", "--all", "-n", "shop", "--timeout=30s"]);
    let none = lab.kubectl(&["get", "pods", "-n", "shop"]);
    assert!(String::from_utf8_lossy(&none.stderr).contains("No resources found in shop namespace."));
    lab.synced();
    let pod_namespaces = palisade_net::list_named(&lab.paths.netns_prefix()).into_iter().filter(|n| n.contains("-pod-")).count();
    assert_eq!(pod_namespaces, 1, "only the cluster DNS pod's sandbox is left");
    assert_eq!(lab.k(&["delete", "ns", "shop"]), "namespace \"shop\" deleted\n");
    let missing = lab.kubectl(&["delete", "pod", "ghost", "-n", "default"]);
    assert!(!missing.status.success() && String::from_utf8_lossy(&missing.stderr).contains("pods \"ghost\" not found"));
    assert!(lab.kubectl(&["delete", "pod", "ghost", "-n", "default", "--ignore-not-found"]).status.success());
}
