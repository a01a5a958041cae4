//! `palisade agent`, the real binary, on a node: it watches a Kubernetes API (palisade's API
//! server on the node's loopback, HTTPS) with a ServiceAccount token under the ClusterRole
//! of `deploy/palisade.yaml` (applied with the real kubectl), and programs the node
//! namespace's kernel; pods in namespaces of their own connect for real. Root; everything
//! lives in throwaway network namespaces.

mod support;

use std::io::{Read, Write};
use std::net::{IpAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use palisade_apiserver::{Options, Running, resources};
use palisade_testbed::{NetNs, Outcome, PodSpec, Prober, Servers, Testbed, normalize_listing, require_privileges};
use serde_json::json;
use support::{PALISADE, cni_binary, kubectl_binary, workspace};

/// A node (the testbed's node namespace with three pods), an API server on its loopback,
/// and the agent.
struct Node {
    bed: Testbed,
    dir: tempfile::TempDir,
    api_port: u16,
    server: Option<Running>,
    agent: Option<Child>,
    agent_port: u16,
    agent_flags: Vec<String>,
    /// `PATH` for the agent (a directory with a stand-in `nft` first), if not inherited.
    agent_path: Option<String>,
}

const PODS: [(&str, &str, &str); 3] =
    [("production/nginx", "10.244.1.10", "fd00:10:244:1::10"), ("production/curl", "10.244.1.11", "fd00:10:244:1::11"), ("develop/curl", "10.244.1.12", "fd00:10:244:1::12")];

impl Node {
    fn new() -> Self {
        let specs: Vec<PodSpec> = PODS.iter().map(|(name, v4, v6)| PodSpec { name: name.to_string(), ips: vec![v4.parse().unwrap(), v6.parse().unwrap()] }).collect();
        let bed = Testbed::new(&specs);
        let dir = tempfile::tempdir().unwrap();
        let mut node = Self { bed, dir, api_port: 0, server: None, agent: None, agent_port: 9099, agent_flags: vec!["--min-sync-interval-ms".into(), "5".into()], agent_path: None };
        node.start_server();
        node
    }

    /// Starts (or restarts, on the same port and store) the API server inside the node.
    fn start_server(&mut self) {
        let (state_dir, port) = (self.dir.path().join("api"), self.api_port);
        let running = self
            .bed
            .node
            .enter(move || {
                let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind the API port");
                palisade_apiserver::start(Options {
                    state_dir,
                    service_cidrs: vec!["10.96.0.0/16".parse().unwrap()],
                    listeners: vec![listener],
                    addresses: vec!["127.0.0.1".parse().unwrap()],
                    kubelet: None,
                    watch_history_bytes: None,
                })
                .expect("the API server starts")
            })
            .join()
            .unwrap();
        self.api_port = running.address.port();
        std::fs::write(self.dir.path().join("admin.kubeconfig"), running.kubeconfig("node")).unwrap();
        self.server = Some(running);
    }

    fn stop_server(&mut self) {
        self.server.take().expect("running").stop();
    }

    fn api(&self) -> &palisade_apiserver::api::Api {
        &self.server.as_ref().expect("running").api
    }

    /// The real kubectl inside the node, as the admin.
    fn kubectl(&self, args: &[&str]) -> String {
        let kubeconfig = self.dir.path().join("admin.kubeconfig");
        let output = Command::new("ip").args(["netns", "exec", &self.bed.node.name]).arg(kubectl_binary()).arg(format!("--kubeconfig={}", kubeconfig.display())).args(args).output().unwrap();
        let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
        assert!(output.status.success(), "kubectl {args:?}: {text}");
        text
    }

    fn apply(&self, name: &str, yaml: &str) {
        let file = self.dir.path().join(name);
        std::fs::write(&file, yaml).unwrap();
        self.kubectl(&["apply", "-f", &file.display().to_string()]);
    }

    /// `deploy/palisade.yaml`, with the real kubectl (validated by the API server): its
    /// ServiceAccount and ClusterRole are what the agent runs with.
    fn apply_manifest(&self) {
        self.kubectl(&["apply", "-f", &workspace().join("deploy/palisade.yaml").display().to_string()]);
    }

    /// A kubeconfig with the agent's ServiceAccount token (what the DaemonSet's pod gets).
    fn agent_kubeconfig(&self) -> PathBuf {
        let server = self.server.as_ref().unwrap();
        let token = palisade_apiserver::auth::issue_for_account(&server.api, "palisade-system", "palisade-agent", 3600).expect("the manifest's ServiceAccount exists");
        let text = palisade_apiserver::server::kubeconfig("node", &format!("https://127.0.0.1:{}", self.api_port), &server.ca_pem, &token);
        let path = self.dir.path().join("agent.kubeconfig");
        std::fs::write(&path, text).unwrap();
        path
    }

    fn start_agent(&mut self) {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.dir.path().join("agent.log")).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", &self.bed.node.name, PALISADE, "agent", "--node-name", "node-1", "--api-grace-seconds", "1"])
            .arg("--kubeconfig")
            .arg(self.agent_kubeconfig())
            .arg("--listen")
            .arg(format!("127.0.0.1:{}", self.agent_port))
            .arg("--cni-socket")
            .arg(self.socket())
            .arg("--state-file")
            .arg(self.dir.path().join("agent-state.json"))
            .args(&self.agent_flags)
            .envs(self.agent_path.iter().map(|path| ("PATH", path)))
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.agent = Some(child);
    }

    /// The agent's CNI socket (one per test: the filesystem is shared).
    fn socket(&self) -> PathBuf {
        self.dir.path().join("agent.sock")
    }

    /// `kill -9`, as a crash or an OOM kill does.
    fn kill_agent(&mut self) {
        if let Some(mut child) = self.agent.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn agent_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("agent.log")).unwrap_or_default()
    }

    /// GET on the agent's listener: (status code, body).
    fn get(&self, path: &str) -> Option<(u16, String)> {
        let (port, path) = (self.agent_port, path.to_string());
        self.bed
            .node
            .enter(move || {
                let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
                stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
                write!(stream, "GET {path} HTTP/1.0\r\nHost: agent\r\n\r\n").ok()?;
                let mut response = String::new();
                stream.read_to_string(&mut response).ok()?;
                let code = response.split(' ').nth(1)?.parse().ok()?;
                Some((code, response.split_once("\r\n\r\n").map(|(_, body)| body.to_string()).unwrap_or_default()))
            })
            .join()
            .unwrap()
    }

    fn wait_for(&self, what: &str, mut done: impl FnMut(&Self) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if done(self) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("{what} did not happen within 15 s; agent log:\n{}", self.agent_log());
    }

    /// What the agent says its kernel enforces, and whether that is what the API holds.
    fn enforces_the_apis_objects(&self) -> bool {
        let Some((200, body)) = self.get("/synced") else { return false };
        let status: palisade_agent::shared::SyncedStatus = serde_json::from_str(&body).expect("/synced answers JSON");
        !status.pending && status.enforced == Some(palisade_lab::node_agents::api_digest(self.api()))
    }

    fn ready(&self) -> Option<String> {
        match self.get("/readyz") {
            Some((200, _)) => None,
            Some((_, body)) => Some(body),
            None => Some("no answer".into()),
        }
    }

    /// The table once the agent is done with it (a sync's preparing transaction adds
    /// versioned sets before the main one switches to them and a last one removes the old).
    /// Counters (which traffic moves) do not count as changes.
    fn settled_table(&self) -> String {
        let mut last = self.table().expect("the table");
        loop {
            std::thread::sleep(Duration::from_millis(150));
            let now = self.table().expect("the table");
            if normalize_listing(&now) == normalize_listing(&last) {
                return now;
            }
            last = now;
        }
    }

    fn table(&self) -> Option<String> {
        let output = self.bed.node.exec("nft", &["list", "table", "inet", "palisade"]);
        output.status.success().then(|| String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// Writes the pods' statuses (the kubelet's part): running, with the testbed's addresses.
    fn pods_running(&self) {
        let pods = resources::by_kind("v1", "Pod").unwrap();
        for (name, v4, v6) in PODS {
            let (namespace, name) = name.split_once('/').unwrap();
            self.api()
                .modify(pods, namespace, name, |pod| {
                    pod["status"] = json!({"phase": "Running", "podIP": v4, "podIPs": [{"ip": v4}, {"ip": v6}], "hostIP": "192.0.2.1"});
                    true
                })
                .unwrap();
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill_agent();
        if let Some(server) = self.server.take() {
            server.stop();
        }
    }
}

fn ip(pod: &str, v6: bool) -> IpAddr {
    let (_, v4, v6_ip) = PODS.iter().find(|(name, ..)| *name == pod).unwrap();
    if v6 { v6_ip.parse().unwrap() } else { v4.parse().unwrap() }
}

const WORKLOADS: &str = "
apiVersion: v1
kind: Namespace
metadata: {name: production, labels: {env: production}}
---
apiVersion: v1
kind: Namespace
metadata: {name: develop, labels: {env: develop}}
---
apiVersion: v1
kind: Pod
metadata: {name: nginx, namespace: production, labels: {app: nginx}}
spec: {nodeName: node-1, containers: [{name: nginx, image: nginx, ports: [{containerPort: 80}]}]}
---
apiVersion: v1
kind: Pod
metadata: {name: curl, namespace: production, labels: {app: curl}}
spec: {nodeName: node-1, containers: [{name: curl, image: curl}]}
---
apiVersion: v1
kind: Pod
metadata: {name: curl, namespace: develop, labels: {app: curl}}
spec: {nodeName: node-1, containers: [{name: curl, image: curl}]}
";

/// Ingress to production only from namespaces labelled env=production.
const POLICY: &str = "
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: default-deny-ingress, namespace: production}
spec:
  podSelector: {}
  policyTypes: [Ingress]
  ingress:
  - from:
    - namespaceSelector: {matchLabels: {env: production}}
";

/// A listing compared by content: the generation (`_a` or `_b`, which a blue/green replace
/// flips) and set versions (`_v3`, which incremental updates add) are left out of names.
fn same_ruleset(listing: &str) -> Vec<String> {
    let mut text = String::with_capacity(listing.len());
    let mut rest = listing;
    while let Some(at) = rest.find('_') {
        text.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let ends_word = |s: &str| s.chars().next().is_none_or(|c| !c.is_ascii_alphanumeric() && c != '_');
        let generation = (after.starts_with('a') || after.starts_with('b')) && (ends_word(&after[1..]) || after[1..].starts_with("_v"));
        if generation {
            text.push_str("_G");
            rest = &after[1..];
            // A version after the generation.
            if let Some(version) = rest.strip_prefix("_v") {
                let digits = version.chars().take_while(char::is_ascii_digit).count();
                if digits > 0 && ends_word(&version[digits..]) {
                    rest = &version[digits..];
                }
            }
        } else {
            text.push('_');
            rest = after;
        }
    }
    text.push_str(rest);
    normalize_listing(&text)
}

fn probe(prober: &Prober, to: &str, v6: bool) -> Outcome {
    prober.probe(ip(to, v6), 80, false, Duration::from_millis(500))
}

#[test]
fn the_agent_enforces_the_apis_policies_on_its_node_and_never_opens() {
    if !require_privileges() {
        return;
    }
    let mut node = Node::new();
    node.apply_manifest();
    node.apply("workloads.yaml", WORKLOADS);
    node.pods_running();
    let _servers = Servers::start(node.bed.pod("production/nginx"), &[80], &[]);
    let from_production = Prober::new(node.bed.pod("production/curl"));
    let from_develop = Prober::new(node.bed.pod("develop/curl"));

    node.start_agent();
    node.wait_for("readiness after the first full sync", |n| n.ready().is_none());
    for v6 in [false, true] {
        assert_eq!(probe(&from_develop, "production/nginx", v6), Outcome::Connected);
    }

    // The seed's step: after the policy, production connects and develop is refused.
    node.apply("policy.yaml", POLICY);
    node.wait_for("develop refused", |_| probe(&from_develop, "production/nginx", false) == Outcome::Refused);
    for v6 in [false, true] {
        assert_eq!(probe(&from_production, "production/nginx", v6), Outcome::Connected);
        assert_eq!(probe(&from_develop, "production/nginx", v6), Outcome::Refused);
    }
    // A namespace label change reaches the kernel.
    node.kubectl(&["label", "namespace", "develop", "env=production", "--overwrite"]);
    node.wait_for("develop allowed after its label change", |_| probe(&from_develop, "production/nginx", true) == Outcome::Connected);
    node.kubectl(&["label", "namespace", "develop", "env=develop", "--overwrite"]);
    node.wait_for("develop refused again", |_| probe(&from_develop, "production/nginx", true) == Outcome::Refused);
    // `/synced`: the object versions the kernel enforces are the API's (what the lab waits on).
    node.wait_for("/synced to name the API's objects", Node::enforces_the_apis_objects);
    node.kubectl(&["label", "pod", "-n", "develop", "curl", "probe=1"]);
    node.wait_for("/synced to follow a label change", Node::enforces_the_apis_objects);

    // Metrics: syncs, event-to-kernel latency, what is programmed, what is watched.
    let (code, metrics) = node.get("/metrics").unwrap();
    assert_eq!(code, 200);
    for line in ["palisade_event_to_kernel_seconds_count", "palisade_ruleset_rules ", "palisade_objects_watched{kind=\"pods\"} 3", "palisade_objects_watched{kind=\"networkpolicies\"} 1"] {
        assert!(metrics.contains(line), "{line} missing from:\n{metrics}");
    }
    assert_eq!(node.get("/healthz").map(|(code, _)| code), Some(200));

    // kill -9: the ruleset stays; a new agent adopts the table with the same ruleset.
    let before = same_ruleset(&node.settled_table());
    node.kill_agent();
    assert_eq!(same_ruleset(&node.table().expect("the table outlives the agent")), before);
    assert_eq!(probe(&from_develop, "production/nginx", false), Outcome::Refused);
    node.start_agent();
    node.wait_for("readiness of the restarted agent", |n| n.ready().is_none());
    assert_eq!(same_ruleset(&node.table().unwrap()), before, "a restarted agent programs the same ruleset");
    assert!(node.agent_log().contains("first full sync"), "{}", node.agent_log());

    // The API goes away for 30 s: enforcement unchanged, readiness false with the reason;
    // back again, and changes are followed within seconds (the watch's retries are capped).
    node.stop_server();
    node.wait_for("readiness false during the API outage", |n| n.ready().is_some_and(|why| why.contains("watch has failed")));
    let outage = Instant::now();
    while outage.elapsed() < Duration::from_secs(30) {
        assert_eq!(probe(&from_develop, "production/nginx", false), Outcome::Refused);
        assert_eq!(probe(&from_production, "production/nginx", false), Outcome::Connected);
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(same_ruleset(&node.table().unwrap()), before);
    assert!(node.ready().is_some(), "ready without an API");
    node.start_server();
    node.wait_for("readiness after the API came back", |n| n.ready().is_none());
    // Changes made after the outage are followed.
    node.kubectl(&["delete", "networkpolicy", "default-deny-ingress", "-n", "production"]);
    node.wait_for("develop allowed once the policy is gone", |_| probe(&from_develop, "production/nginx", false) == Outcome::Connected);
}

/// A policy whose pod sets the agent must create.
const TAMPER: &str = "
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: tamper, namespace: production}
spec:
  podSelector: {matchLabels: {app: nginx}}
  ingress:
  - from:
    - podSelector: {matchLabels: {app: curl}}
";

/// An `nft` standing in for a kernel that refuses whatever mentions policy
/// production/tamper (its rules carry the policy's name in their comments), as a kernel
/// without a feature the rules need would; everything else goes to the real nft.
const REFUSING_NFT: &str = r#"#!/bin/sh
case " $* " in
*" -f "*)
  input=$(cat)
  case "$input" in
  *production/tamper*) echo "internal:0:0-0: Error: Could not process rule: Operation not supported" >&2; exit 1 ;;
  esac
  printf '%s' "$input" | exec /usr/sbin/nft "$@" ;;
*) exec /usr/sbin/nft "$@" ;;
esac
"#;

#[test]
fn a_ruleset_the_kernel_refuses_is_reported_on_its_policy() {
    use std::os::unix::fs::PermissionsExt;
    if !require_privileges() {
        return;
    }
    let mut node = Node::new();
    let bin = node.dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::write(bin.join("nft"), REFUSING_NFT).unwrap();
    std::fs::set_permissions(bin.join("nft"), std::fs::Permissions::from_mode(0o755)).unwrap();
    node.agent_path = Some(format!("{}:/usr/sbin:/usr/bin:/sbin:/bin", bin.display()));
    // The binary found on PATH, not libnftables in process.
    node.agent_flags.push("--nft=nft".into());
    node.apply_manifest();
    node.apply("workloads.yaml", WORKLOADS);
    node.pods_running();
    let _servers = Servers::start(node.bed.pod("production/nginx"), &[80], &[]);
    let from_develop = Prober::new(node.bed.pod("develop/curl"));
    node.start_agent();
    node.wait_for("readiness", |n| n.ready().is_none());
    let before = same_ruleset(&node.settled_table());
    node.apply("tamper.yaml", TAMPER);

    // Where users look: an Event on the policy, readiness, a metric, the log.
    let events = |n: &Node| n.kubectl(&["get", "events.events.k8s.io", "-n", "production", "-o", "json"]);
    node.wait_for("a RulesetRejected Event on production/tamper", |n| events(n).contains("RulesetRejected"));
    let listed: serde_json::Value = serde_json::from_str(&events(&node)).unwrap();
    let event = listed["items"].as_array().unwrap().iter().find(|e| e["reason"] == "RulesetRejected").unwrap().clone();
    assert_eq!((event["regarding"]["kind"].as_str(), event["regarding"]["name"].as_str()), (Some("NetworkPolicy"), Some("tamper")), "{event}");
    assert_eq!(event["type"], "Warning", "{event}");
    assert_eq!(event["reportingInstance"], "node-1", "{event}");
    let note = event["note"].as_str().unwrap();
    assert!(note.contains("of policy production/tamper") && note.contains("Operation not supported") && note.contains("keeps enforcing its previous ruleset"), "{note}");
    let why = node.ready().expect("unready while the kernel refuses");
    assert!(why.contains("the last ruleset was not applied"), "{why}");
    let (_, metrics) = node.get("/metrics").unwrap();
    assert!(metrics.contains("palisade_apply_errors_total{reason=\"rejected\"}"), "{metrics}");
    // The previous ruleset stays in the kernel: develop still reaches nginx.
    assert_eq!(same_ruleset(&node.table().unwrap()), before);
    assert_eq!(probe(&from_develop, "production/nginx", false), Outcome::Connected);

    // The policy gone, the next ruleset is taken and the agent is ready again.
    node.kubectl(&["delete", "networkpolicy", "tamper", "-n", "production"]);
    node.wait_for("readiness once the kernel takes the ruleset", |n| n.ready().is_none());
}

/// The role with `verbs` on networkpolicies instead of the manifest's.
fn restrict_policies(node: &Node, verbs: &str) {
    node.kubectl(&["patch", "clusterrole", "palisade-agent", "--type=json", "-p", &format!(r#"[{{"op": "replace", "path": "/rules/1/verbs", "value": {verbs}}}]"#)]);
}

#[test]
fn an_agent_without_a_verb_of_its_role_fails_loudly() {
    if !require_privileges() {
        return;
    }
    let mut node = Node::new();
    node.apply_manifest();
    node.apply("workloads.yaml", WORKLOADS);
    node.apply("policy.yaml", POLICY);
    node.pods_running();

    // Without `list` nothing complete can be known: no table is programmed at all (one
    // from pods without their policies would open what the policies close).
    restrict_policies(&node, r#"["get"]"#);
    node.start_agent();
    node.wait_for("readiness false, naming the failing watch", |n| n.ready().is_some_and(|why| why.contains("networkpolicies watch has failed") && why.contains("403")));
    assert!(node.table().is_none(), "the agent programmed a table without the policies");
    assert!(node.agent_log().contains("watch failed"), "{}", node.agent_log());

    // The verb restored, the agent recovers on its own and enforces.
    node.apply_manifest();
    node.wait_for("readiness after the role is fixed", |n| n.ready().is_none());
    assert!(node.table().expect("programmed").contains("production/default-deny-ingress"));

    // Without `watch` (one verb): the listed state is enforced, but readiness says that
    // changes are no longer followed.
    node.kill_agent();
    restrict_policies(&node, r#"["get", "list"]"#);
    node.start_agent();
    node.wait_for("readiness false without watch", |n| n.ready().is_some_and(|why| why.contains("networkpolicies watch has failed")));
    assert!(node.table().expect("kept").contains("production/default-deny-ingress"));
}

impl Node {
    /// The CNI plugin's ADD for a pod namespace, as the runtime runs it on this node, with
    /// the handshake: (exit status success, stdout).
    fn cni_add(&self, pod: &NetNs, namespace: &str, name: &str) -> (bool, serde_json::Value) {
        let config = json!({
            "cniVersion": "1.1.0", "name": "palisade", "type": "palisade-cni",
            "ipam": {"ranges": ["10.244.1.128/25", "fd00:10:244:1::100/120"], "dataDir": self.dir.path().join("ipam")},
            "agentSocket": self.socket(), "agentTimeoutSeconds": 2,
        });
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.bed.node.name])
            .arg(cni_binary())
            .env("CNI_COMMAND", "ADD")
            .env("CNI_CONTAINERID", format!("c-{name}"))
            .env("CNI_NETNS", format!("/run/netns/{}", pod.name))
            .env("CNI_IFNAME", "eth0")
            .env("CNI_PATH", cni_binary().parent().unwrap())
            .env("CNI_ARGS", format!("IgnoreUnknown=1;K8S_POD_NAMESPACE={namespace};K8S_POD_NAME={name}"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(config.to_string().as_bytes()).unwrap();
        let output = child.wait_with_output().unwrap();
        (output.status.success(), serde_json::from_slice(&output.stdout).unwrap_or(json!(null)))
    }

    fn links(&self) -> usize {
        String::from_utf8_lossy(&self.bed.node.exec("ip", &["-o", "link"]).stdout).lines().count()
    }
}

const FRESH_POD: &str = "
apiVersion: v1
kind: Pod
metadata: {name: fresh, namespace: develop, labels: {app: fresh}}
spec: {nodeName: node-1, containers: [{name: c, image: curl}]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: fresh-no-egress, namespace: develop}
spec: {podSelector: {matchLabels: {app: fresh}}, policyTypes: [Egress]}
";

const FRESH_ALLOWED: &str = "
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: fresh-to-production, namespace: develop}
spec:
  podSelector: {matchLabels: {app: fresh}}
  policyTypes: [Egress]
  egress: [{to: [{namespaceSelector: {matchLabels: {env: production}}}]}]
";

#[test]
fn a_new_pod_is_isolated_before_its_first_packet() {
    if !require_privileges() {
        return;
    }
    let mut node = Node::new();
    // At most one sync per 400 ms: a pod whose ADD returned before its rules were in the
    // kernel would get its first packets through in that window.
    node.agent_flags = vec!["--min-sync-interval-ms".into(), "400".into()];
    node.apply_manifest();
    node.apply("workloads.yaml", WORKLOADS);
    node.pods_running();
    let _servers = Servers::start(node.bed.pod("production/nginx"), &[80], &[]);
    node.start_agent();
    node.wait_for("readiness", |n| n.ready().is_none());

    // The pod is created under a policy denying its egress; its status never shows an
    // address (no kubelet here): the agent learns it from the CNI plugin alone.
    node.apply("fresh.yaml", FRESH_POD);
    let fresh = NetNs::new("fresh");
    let (ok, result) = node.cni_add(&fresh, "develop", "fresh");
    assert!(ok, "ADD failed: {result}\n{}", node.agent_log());
    // The pod's first packets, at once after ADD: refused, over both families.
    let prober = Prober::new(&fresh);
    for v6 in [false, true] {
        assert_eq!(probe(&prober, "production/nginx", v6), Outcome::Refused, "IPv6: {v6}; result {result}");
    }
    // Allowed later, it gets through.
    node.apply("allowed.yaml", FRESH_ALLOWED);
    node.wait_for("the fresh pod allowed", |_| probe(&prober, "production/nginx", false) == Outcome::Connected);
    assert_eq!(probe(&prober, "production/nginx", true), Outcome::Connected);

    // No agent: ADD fails with "try again later" and leaves nothing behind (fail closed).
    node.kill_agent();
    node.apply("late.yaml", &FRESH_POD.replace("name: fresh,", "name: late,"));
    let late = NetNs::new("late");
    let links = node.links();
    let (ok, error) = node.cni_add(&late, "develop", "late");
    assert!(!ok, "ADD succeeded without an agent: {error}");
    assert_eq!(error["code"], 11, "{error}");
    assert!(error["details"].as_str().unwrap_or_default().contains("agent.sock"), "{error}");
    assert_eq!(node.links(), links, "a failed ADD left a link");
}

impl Node {
    /// A Node object as the kubelet and the controller manager leave it.
    fn node_object(&self, name: &str, v4: &str, v6: &str, cidrs: [&str; 2]) {
        let nodes = resources::by_kind("v1", "Node").unwrap();
        let object = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}, "spec": {"podCIDR": cidrs[0], "podCIDRs": cidrs}});
        if self.api().get(nodes, "", name).is_err() {
            self.api().create(nodes, "", object, &palisade_apiserver::api::WriteOptions::default()).unwrap();
        }
        self.api()
            .modify(nodes, "", name, |node| {
                node["status"] = json!({"addresses": [{"type": "InternalIP", "address": v4}, {"type": "InternalIP", "address": v6}, {"type": "Hostname", "address": name}]});
                true
            })
            .unwrap();
    }

    fn routes(&self, family: &str) -> String {
        String::from_utf8_lossy(&self.bed.node.exec("ip", &[family, "route", "show", "proto", "77"]).stdout).into_owned()
    }
}

#[test]
fn routes_to_other_nodes_pods_follow_the_node_objects() {
    if !require_privileges() {
        return;
    }
    let mut node = Node::new();
    // The node's link to the others (TEST-NET addresses, nothing outside the namespace), and
    // a route someone else installed, which the agent must leave alone.
    node.bed.node.ip_batch(&[
        // A veth pair inside the namespace (this kernel has no dummy links).
        "link add underlay type veth peer name underlay-peer".into(),
        "link set underlay-peer up".into(),
        "link set underlay up".into(),
        "addr add 192.0.2.1/24 dev underlay".into(),
        "addr add 2001:db8::1/64 dev underlay nodad".into(),
        "route add 10.244.9.0/24 via 192.0.2.9".into(),
    ]);
    node.apply_manifest();
    node.node_object("node-1", "192.0.2.1", "2001:db8::1", ["10.244.1.0/24", "fd00:10:244:1::/64"]);
    node.node_object("node-2", "192.0.2.2", "2001:db8::2", ["10.244.2.0/24", "fd00:10:244:2::/64"]);
    node.start_agent();
    node.wait_for("readiness", |n| n.ready().is_none());
    node.wait_for("routes to node-2's pods", |n| n.routes("-4").contains("10.244.2.0/24 via 192.0.2.2") && n.routes("-6").contains("fd00:10:244:2::/64 via 2001:db8::2"));
    assert!(!node.routes("-4").contains("10.244.1.0/24"), "a route to this node's own pods: {}", node.routes("-4"));

    // node-2 moves to another address; a third node joins, and a fourth on no subnet of this
    // node (the kernel refuses a route to it): the others are routed all the same.
    node.node_object("node-2", "192.0.2.22", "2001:db8::22", ["10.244.2.0/24", "fd00:10:244:2::/64"]);
    node.node_object("node-3", "192.0.2.3", "2001:db8::3", ["10.244.3.0/24", "fd00:10:244:3::/64"]);
    node.node_object("node-far", "198.51.100.7", "2001:db8:100::7", ["10.244.7.0/24", "fd00:10:244:7::/64"]);
    node.wait_for("routes updated", |n| {
        let v4 = n.routes("-4");
        v4.contains("10.244.2.0/24 via 192.0.2.22") && v4.contains("10.244.3.0/24 via 192.0.2.3") && !v4.contains("192.0.2.2 ")
    });
    assert!(!node.routes("-4").contains("10.244.7.0/24") && !node.routes("-6").contains("fd00:10:244:7::"), "a route via an off-link gateway");
    assert_eq!(node.ready(), None, "an off-link node made the agent unready");

    // Nodes leave: their routes go, the foreign route stays.
    node.kubectl(&["delete", "node", "node-2", "node-3", "node-far"]);
    node.wait_for("routes removed", |n| n.routes("-4").trim().is_empty() && n.routes("-6").trim().is_empty());
    let all = String::from_utf8_lossy(&node.bed.node.exec("ip", &["route"]).stdout).into_owned();
    assert!(all.contains("10.244.9.0/24 via 192.0.2.9"), "the agent removed a route it does not own:\n{all}");
}

/// The seed's policy in two forms that differ in their rules (and so in the table) but agree
/// on the two pairs the test probes: production reaches nginx on 80, develop does not.
fn policy_form(round: usize) -> String {
    let ports = if round.is_multiple_of(2) { "[{port: 80}]" } else { "[{port: 80}, {port: 8080}, {port: 9000, endPort: 9100}]" };
    format!("{POLICY}    ports: {ports}\n")
}

#[test]
fn kill_9_during_syncs_under_load_never_opens_or_closes_the_node() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    if !require_privileges() {
        return;
    }
    let mut node = Node::new();
    node.apply_manifest();
    node.apply("workloads.yaml", WORKLOADS);
    node.apply("policy.yaml", &policy_form(0));
    node.pods_running();
    let _servers = Servers::start(node.bed.pod("production/nginx"), &[80], &[]);
    node.start_agent();
    node.wait_for("readiness", |n| n.ready().is_none());

    // Load: both pairs probed without pause for the whole test.
    let (from_production, from_develop) = (Prober::new(node.bed.pod("production/curl")), Prober::new(node.bed.pod("develop/curl")));
    let stop = Arc::new(AtomicBool::new(false));
    let (probes, wrong) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let load = {
        let (stop, probes, wrong) = (stop.clone(), probes.clone(), wrong.clone());
        std::thread::spawn(move || {
            let mut seen = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                for (prober, expected) in [(&from_production, Outcome::Connected), (&from_develop, Outcome::Refused)] {
                    let outcome = probe(prober, "production/nginx", false);
                    probes.fetch_add(1, Ordering::Relaxed);
                    if outcome != expected {
                        wrong.fetch_add(1, Ordering::Relaxed);
                        seen.push(format!("{expected:?} expected, {outcome:?} seen"));
                    }
                }
            }
            seen
        })
    };
    let mut missing_table = 0;
    for round in 1..=50 {
        node.apply("policy.yaml", &policy_form(round));
        if round.is_multiple_of(5) {
            // kill -9 while that change is being synced, and start a new agent at once.
            node.kill_agent();
            node.start_agent();
        } else {
            std::thread::sleep(Duration::from_millis(20));
        }
        if node.table().is_none() {
            missing_table += 1;
        }
    }
    node.wait_for("readiness at the end", |n| n.ready().is_none());
    let end = node.settled_table();
    stop.store(true, Ordering::Relaxed);
    let seen = load.join().unwrap();
    assert_eq!(missing_table, 0, "the table was missing in {missing_table} of 50 checks");
    assert!(seen.is_empty(), "{} of {} probes saw a state that was neither the old nor the new one: {seen:?}", wrong.load(Ordering::Relaxed), probes.load(Ordering::Relaxed));
    assert!(probes.load(Ordering::Relaxed) > 100, "too little load: {} probes", probes.load(Ordering::Relaxed));
    // The last form is enforced, and a fresh agent programs the same ruleset.
    // Round 50's form is the even one, without the port range.
    assert!(!end.contains("9000-9100"), "{end}");
    node.kill_agent();
    node.start_agent();
    node.wait_for("readiness of a fresh agent", |n| n.ready().is_none());
    assert_eq!(same_ruleset(&node.settled_table()), same_ruleset(&end));
}
