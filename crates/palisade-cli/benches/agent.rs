//! The node agent at scale, as root: palisade's API server with 10,000 pods (1,000 on this
//! node, over 10 nodes), 200 namespaces and 1,000 NetworkPolicies, all inside a throwaway
//! network namespace; the `palisade agent` binary there programs that namespace's kernel.
//! Measures the first full sync (start to ready), the agent's resident memory, and for pod
//! adds, label changes and policy edits: event-to-kernel latency (the agent's own per-sync
//! figure: from the event's arrival to the kernel accepting the sync) and CPU per event.
//!
//! `cargo bench -p palisade --bench agent` (`-- PODS POLICIES EVENTS [CLUSTER_POLICIES]` for
//! other sizes; with ClusterNetworkPolicies, a fourth kind of event edits one of them).
//! `-- --from DIR EVENTS` takes the cluster `bench/gen_workloads.py --format json` wrote
//! instead; its events add a pod elsewhere (a replica of a pod on node-2), relabel a pod
//! elsewhere, and edit a policy's port.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use palisade_apiserver::api::{Api, WriteOptions};
use palisade_apiserver::{Options, resources};
use palisade_testbed::NetNs;
use serde_json::{Value, json};

const TIERS: [&str; 5] = ["web", "api", "db", "cache", "batch"];

fn pod_ip(i: usize) -> String {
    format!("10.244.{}.{}", i / 250, i % 250 + 1)
}

fn namespaces(count: usize) -> Vec<Value> {
    (0..count).map(|n| json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": format!("ns-{n}"), "labels": {"team": format!("team-{}", n % 20), "env": if n.is_multiple_of(2) { "prod" } else { "dev" }}}})).collect()
}

fn pod(i: usize, namespaces: usize, node: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": format!("pod-{i}"), "namespace": format!("ns-{}", i % namespaces), "labels": {"app": format!("app-{}", i % 10), "tier": TIERS[i % 5], "version": if i.is_multiple_of(2) { "v1" } else { "v2" }}},
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "x", "ports": [{"name": "http", "containerPort": 80}, {"name": "metrics", "containerPort": 9090}]}]}})
}

/// Five policies per namespace: default deny, same-namespace app to web, team to api over
/// a port range, egress to an ipBlock with an except, and an AND peer to db.
fn policies(namespace: usize, port: u16) -> Vec<Value> {
    let ns = format!("ns-{namespace}");
    let meta = |name: &str| json!({"name": name, "namespace": ns});
    vec![
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": meta("deny"), "spec": {"podSelector": {}}}),
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": meta("web"), "spec": {"podSelector": {"matchLabels": {"tier": "web"}}, "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": format!("app-{}", namespace % 10)}}}], "ports": [{"port": port}]}]}}),
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": meta("api"), "spec": {"podSelector": {"matchLabels": {"tier": "api"}}, "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"team": format!("team-{}", namespace % 20)}}}], "ports": [{"port": 8080, "endPort": 8090}, {"port": "metrics"}]}]}}),
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": meta("egress"), "spec": {"podSelector": {"matchLabels": {"tier": "batch"}}, "policyTypes": ["Egress"], "egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.244.0.0/16"]}}], "ports": [{"port": 443}]}]}}),
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": meta("db"), "spec": {"podSelector": {"matchLabels": {"tier": "db"}}, "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"env": "prod"}}, "podSelector": {"matchLabels": {"tier": "api"}}}], "ports": [{"port": 5432}]}]}}),
    ]
}

/// A ClusterNetworkPolicy of 25 rules per direction in the shape of `bench/gen_cluster.py`'s:
/// alternately Admin and Baseline, subjects by team or by env and tier, Accept/Deny/Pass in
/// turn, peers of every kind (a namespace by name, pods by team and app, `networks`, namespaces
/// by env), every other rule on a TCP port and a UDP range. Pseudo-random but repeatable.
fn cluster_policy(i: usize, namespaces: usize, rule_port: u16) -> Value {
    let mut seed = (i as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let mut random = move |below: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % below as u64) as usize
    };
    let envs = ["prod", "dev"];
    let subject = if i % 3 != 0 {
        json!({"namespaces": {"matchLabels": {"team": format!("team-{}", i % 20)}}})
    } else {
        json!({"pods": {"namespaceSelector": {"matchLabels": {"env": envs[i % 2]}}, "podSelector": {"matchLabels": {"tier": TIERS[i % 5]}}}})
    };
    let mut peer = |j: usize| match j % 4 {
        0 => json!({"namespaces": {"matchLabels": {"kubernetes.io/metadata.name": format!("ns-{}", random(namespaces))}}}),
        1 => json!({"pods": {"namespaceSelector": {"matchLabels": {"team": format!("team-{}", j % 20)}}, "podSelector": {"matchLabels": {"app": format!("app-{}", j % 10)}}}}),
        2 => json!({"networks": [format!("10.{}.0.0/16", random(256)), format!("192.0.2.{}/30", 4 * random(64))]}),
        _ => json!({"namespaces": {"matchLabels": {"env": envs[j % 2]}}}),
    };
    let mut rules = |ingress: bool| -> Vec<Value> {
        (0..25)
            .map(|j| {
                let mut peers: Vec<Value> = vec![peer(j), peer(j + 1)];
                if ingress {
                    peers.retain(|p| p.get("networks").is_none());
                    if peers.is_empty() {
                        peers.push(json!({"namespaces": {}}));
                    }
                }
                let (action, field) = (["Accept", "Deny", "Pass"][(i + j) % 3], if ingress { "from" } else { "to" });
                let mut rule = json!({"name": format!("r{j}"), "action": action, field: peers});
                if j % 2 == 1 {
                    let port = if j == 1 { rule_port } else { 8000 + j as u16 };
                    rule["protocols"] = json!([{"tcp": {"destinationPort": {"number": port}}}, {"udp": {"destinationPort": {"range": {"start": 5000, "end": 5000 + j}}}}]);
                }
                rule
            })
            .collect()
    };
    let (ingress, egress) = (rules(true), rules(false));
    json!({"apiVersion": "policy.networking.k8s.io/v1beta1", "kind": "ClusterNetworkPolicy", "metadata": {"name": format!("cnp-{i}")},
        "spec": {"tier": if i % 2 == 0 { "Admin" } else { "Baseline" }, "priority": random(1001), "subject": subject, "ingress": ingress, "egress": egress}})
}

fn create(api: &Api, object: Value) {
    let r = resources::by_kind(object["apiVersion"].as_str().unwrap(), object["kind"].as_str().unwrap()).unwrap();
    let namespace = object["metadata"]["namespace"].as_str().unwrap_or_default().to_string();
    api.create(r, &namespace, object, &WriteOptions::default()).expect("created");
}

fn set_running(api: &Api, namespace: &str, name: &str, ip: &str) {
    api.modify(resources::by_kind("v1", "Pod").unwrap(), namespace, name, |pod| {
        pod["status"] = json!({"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]});
        true
    })
    .expect("status written");
}

fn ready(node: &NetNs) -> bool {
    node.enter(|| {
        let Ok(mut stream) = TcpStream::connect("127.0.0.1:9099") else { return false };
        let _ = write!(stream, "GET /readyz HTTP/1.0\r\nHost: agent\r\n\r\n");
        let mut response = String::new();
        let _ = stream.read_to_string(&mut response);
        response.split(' ').nth(1) == Some("200")
    })
    .join()
    .unwrap()
}

fn proc_field(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status.lines().find_map(|l| l.strip_prefix(field)).and_then(|v| v.split_whitespace().next()?.parse().ok()).unwrap_or(0)
}

/// utime + stime in clock ticks (100 per second).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(") ").map(|(_, rest)| rest).unwrap_or_default();
    let fields: Vec<&str> = after.split_whitespace().collect();
    fields.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0) + fields.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
}

/// The agent's per-sync latencies logged after `from` bytes of its log.
fn synced_latencies(log: &std::path::Path, from: usize) -> (Vec<f64>, usize) {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let fresh = &text[from.min(text.len())..];
    let values = fresh.lines().filter(|l| l.contains("synced")).filter_map(|l| l.split("event_to_kernel_ms=Some(").nth(1)?.split(')').next()?.parse().ok()).collect();
    (values, text.len())
}

struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// A cluster written by `bench/gen_workloads.py --format json --out DIR`: its namespaces,
/// pods (status apart: the API takes it as the kubelet would write it), NetworkPolicies and
/// ClusterNetworkPolicies.
struct Generated {
    namespaces: Vec<Value>,
    pods: Vec<Value>,
    policies: Vec<Value>,
    cluster_policies: Vec<Value>,
}

fn read_list(dir: &std::path::Path, name: &str) -> Vec<Value> {
    let Ok(text) = std::fs::read_to_string(dir.join(name)) else { return Vec::new() };
    let list: Value = serde_json::from_str(&text).expect("a JSON List");
    list["items"].as_array().cloned().unwrap_or_default()
}

impl Generated {
    fn read(dir: &std::path::Path) -> Self {
        Self { namespaces: read_list(dir, "namespaces.json"), pods: read_list(dir, "pods.json"), policies: read_list(dir, "policies.json"), cluster_policies: read_list(dir, "cluster-policies.json") }
    }

    fn store(&self, api: &Api) {
        // The API server makes kube-system (and default) itself.
        for object in self.namespaces.iter().filter(|ns| ns["metadata"]["name"] != "kube-system").chain(&self.policies).chain(&self.cluster_policies) {
            create(api, object.clone());
        }
        for pod in &self.pods {
            let mut object = pod.clone();
            let status = object.as_object_mut().unwrap().remove("status").unwrap_or_default();
            create(api, object);
            api.modify(resources::by_kind("v1", "Pod").unwrap(), pod["metadata"]["namespace"].as_str().unwrap(), pod["metadata"]["name"].as_str().unwrap(), |p| {
                p["status"] = status.clone();
                true
            })
            .expect("status written");
        }
    }

    /// A pod on another node than node-1 (the events of the issue: a pod elsewhere).
    fn elsewhere(&self) -> &Value {
        self.pods.iter().find(|p| p["spec"]["nodeName"] == "node-2" && p["metadata"]["labels"]["app"].is_string()).expect("a pod on node-2")
    }

    /// A policy whose first ingress rule's first port is a number: the one a policy edit
    /// changes.
    fn editable(&self) -> &Value {
        self.policies.iter().find(|p| p["spec"]["ingress"][0]["ports"][0]["port"].is_u64()).expect("a policy with a numeric ingress port")
    }
}

fn main() {
    let raw: Vec<String> = std::env::args().skip(1).collect();
    let generated = raw.iter().position(|a| a == "--from").map(|i| Generated::read(std::path::Path::new(&raw[i + 1])));
    let args: Vec<usize> = raw.iter().filter_map(|a| a.parse().ok()).collect();
    let (pods, policy_count, events) = match &generated {
        // `--from DIR EVENTS`: the generator decided the cluster.
        Some(_) => (0, 0, args.first().copied().unwrap_or(50)),
        None => (args.first().copied().unwrap_or(10_000), args.get(1).copied().unwrap_or(1_000), args.get(2).copied().unwrap_or(50)),
    };
    let cluster_policies = args.get(3).copied().unwrap_or(0);
    let namespace_count = (policy_count / 5).max(1);
    assert!(nix::unistd::geteuid().is_root(), "the agent benchmark needs root (network namespaces, nftables)");
    let node = NetNs::new("bench-node");
    let dir = tempfile::tempdir().unwrap();
    let state_dir = dir.path().join("api");
    let running = node
        .enter(move || {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            palisade_apiserver::start(Options {
                state_dir,
                service_cidrs: vec!["10.96.0.0/16".parse().unwrap()],
                listeners: vec![listener],
                addresses: vec!["127.0.0.1".parse().unwrap()],
                kubelet: None,
                watch_history_bytes: None,
            })
            .unwrap()
        })
        .join()
        .unwrap();
    let api = running.api.clone();
    let started = Instant::now();
    if let Some(generated) = &generated {
        generated.store(&api);
        eprintln!(
            "stored {} pods, {} namespaces, {} policies, {} cluster policies from the generator in {:.1} s",
            generated.pods.len(),
            generated.namespaces.len(),
            generated.policies.len(),
            generated.cluster_policies.len(),
            started.elapsed().as_secs_f64()
        );
    }
    for object in namespaces(if generated.is_some() { 0 } else { namespace_count }) {
        create(&api, object);
    }
    let (pods, cluster_policies) = if generated.is_some() { (0, 0) } else { (pods, cluster_policies) };
    let namespace_count = if generated.is_some() { 0 } else { namespace_count };
    for i in 0..pods {
        let node_name = format!("node-{}", i % 10 + 1);
        create(&api, pod(i, namespace_count, &node_name));
        set_running(&api, &format!("ns-{}", i % namespace_count), &format!("pod-{i}"), &pod_ip(i));
    }
    for n in 0..namespace_count {
        for policy in policies(n, 80) {
            create(&api, policy);
        }
    }
    for i in 0..cluster_policies {
        create(&api, cluster_policy(i, namespace_count, 8001));
    }
    eprintln!("stored {pods} pods, {namespace_count} namespaces, {} policies, {cluster_policies} cluster policies in {:.1} s", namespace_count * 5, started.elapsed().as_secs_f64());

    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, running.kubeconfig("bench")).unwrap();
    let log = dir.path().join("agent.log");
    let palisade = std::path::Path::new(env!("CARGO_BIN_EXE_palisade"));
    let start = Instant::now();
    // `AGENT_WRAPPER="heaptrack -o /tmp/agent"` runs the agent under a profiler (the memory
    // and CPU figures are then the wrapper's).
    let wrapper = std::env::var("AGENT_WRAPPER").unwrap_or_default();
    let agent = Command::new("ip")
        .args(["netns", "exec", &node.name])
        .args(wrapper.split_whitespace())
        .arg(palisade)
        .args(["agent", "--node-name", "node-1", "--listen", "127.0.0.1:9099"])
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .arg("--cni-socket")
        .arg(dir.path().join("agent.sock"))
        .arg("--state-file")
        .arg(dir.path().join("agent-state.json"))
        .env("RUST_LOG", "palisade_agent=debug,palisade_nft=debug")
        .env("NO_COLOR", "1")
        // As deploy/palisade.yaml runs it: freed memory goes back to the kernel at once.
        .env("MIMALLOC_PURGE_DELAY", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    // Killed however the benchmark ends (a panic included): its namespace goes with `node`.
    let agent = KillOnDrop(agent);
    while !ready(&node) {
        assert!(start.elapsed() < Duration::from_secs(120), "the agent did not get ready:\n{}", std::fs::read_to_string(&log).unwrap_or_default());
        std::thread::sleep(Duration::from_millis(5));
    }
    let first_sync = start.elapsed();
    let pid = agent.0.id();
    let first = std::fs::read_to_string(&log).unwrap_or_default();
    let report = first.lines().find(|l| l.contains("first full sync")).unwrap_or("").split("report=").nth(1).unwrap_or("").to_string();
    println!("first full sync (start to ready: list of every kind over HTTPS, conversion, render, apply): {:.0} ms", first_sync.as_secs_f64() * 1000.0);
    println!("  {}", report.trim());
    println!("agent resident memory after the first sync: {} MiB (peak {} MiB)", proc_field(pid, "VmRSS:") / 1024, proc_field(pid, "VmHWM:") / 1024);

    let mut offset = first.len();
    let pods_api = resources::by_kind("v1", "Pod").unwrap();
    let policies_api = resources::by_kind("networking.k8s.io/v1", "NetworkPolicy").unwrap();
    let cluster_policies_api = resources::by_kind("policy.networking.k8s.io/v1beta1", "ClusterNetworkPolicy").unwrap();
    let every_kind = ["pod add", "label change", "policy edit", "cluster policy edit"];
    let with_cluster_policies = cluster_policies > 0 || generated.as_ref().is_some_and(|g| !g.cluster_policies.is_empty());
    let kinds = &every_kind[..if with_cluster_policies { 4 } else { 3 }];
    // Pods of node-1 in ns-0: pod-0 is on node-1 (i % 10 == 0).
    for &kind in kinds {
        let ticks = cpu_ticks(pid);
        let mut latencies = Vec::new();
        for e in 0..events {
            match (kind, &generated) {
                ("pod add", Some(generated)) => {
                    // A replica of a pod elsewhere: its address joins that pod's class.
                    let mut object = generated.elsewhere().clone();
                    let name = format!("added-{e}");
                    object["metadata"]["name"] = json!(name);
                    object.as_object_mut().unwrap().remove("status");
                    let namespace = object["metadata"]["namespace"].as_str().unwrap().to_string();
                    create(&api, object);
                    set_running(&api, &namespace, &name, &format!("10.250.{}.{}", e / 250, e % 250 + 1));
                }
                ("label change", Some(generated)) => {
                    let pod = generated.elsewhere();
                    let original = pod["metadata"]["labels"]["app"].as_str().unwrap().to_string();
                    let app = if e % 2 == 0 { "relabelled".to_string() } else { original };
                    api.modify(pods_api, pod["metadata"]["namespace"].as_str().unwrap(), pod["metadata"]["name"].as_str().unwrap(), |p| {
                        p["metadata"]["labels"]["app"] = json!(app);
                        true
                    })
                    .unwrap();
                }
                ("cluster policy edit", Some(generated)) => {
                    let port = 8001 + (e % 2) as u16 + 1;
                    api.modify(cluster_policies_api, "", generated.cluster_policies[0]["metadata"]["name"].as_str().unwrap(), |p| {
                        p["spec"]["egress"][1]["protocols"][0]["tcp"]["destinationPort"]["number"] = json!(port);
                        true
                    })
                    .unwrap();
                }
                (_, Some(generated)) => {
                    let policy = generated.editable();
                    let original = policy["spec"]["ingress"][0]["ports"][0]["port"].as_u64().unwrap();
                    let port = original + (e % 2) as u64 + 1;
                    api.modify(policies_api, policy["metadata"]["namespace"].as_str().unwrap(), policy["metadata"]["name"].as_str().unwrap(), |p| {
                        p["spec"]["ingress"][0]["ports"][0]["port"] = json!(port);
                        true
                    })
                    .unwrap();
                }
                ("pod add", None) => {
                    let name = format!("added-{e}");
                    let mut object = pod(0, namespace_count, "node-1");
                    object["metadata"]["name"] = json!(name);
                    create(&api, object);
                    set_running(&api, "ns-0", &name, &format!("10.250.{}.{}", e / 250, e % 250 + 1));
                }
                ("label change", None) => {
                    let tier = TIERS[(e + 1) % 5];
                    api.modify(pods_api, "ns-0", "pod-0", |p| {
                        p["metadata"]["labels"]["tier"] = json!(tier);
                        true
                    })
                    .unwrap();
                }
                ("cluster policy edit", None) => {
                    // Rule r1's TCP port of a policy selecting pods of node-1 (team-0's namespaces).
                    let port = 8001 + (e % 2) as u16 + 1;
                    api.modify(cluster_policies_api, "", "cnp-20", |p| {
                        p["spec"]["egress"][1]["protocols"][0]["tcp"]["destinationPort"]["number"] = json!(port);
                        true
                    })
                    .unwrap();
                }
                (_, None) => {
                    let port = 80 + (e % 2) as u16 + 1;
                    api.modify(policies_api, "ns-0", "web", |p| {
                        p["spec"]["ingress"][0]["ports"][0]["port"] = json!(port);
                        true
                    })
                    .unwrap();
                }
            }
            let waited = Instant::now();
            loop {
                let (values, end) = synced_latencies(&log, offset);
                if let Some(&value) = values.last() {
                    latencies.push(value);
                    offset = end;
                    break;
                }
                assert!(waited.elapsed() < Duration::from_secs(30), "no sync after a {kind}");
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        let cpu_ms = (cpu_ticks(pid) - ticks) as f64 * 10.0 / events as f64;
        latencies.sort_by(f64::total_cmp);
        println!(
            "{kind} ({events} events, one at a time): event-to-kernel median {:.1} ms, p99 {:.1} ms, max {:.1} ms; agent CPU {cpu_ms:.1} ms per event",
            percentile(&latencies, 50.0),
            percentile(&latencies, 99.0),
            latencies.last().unwrap()
        );
    }
    println!("agent resident memory after the events: {} MiB (peak {} MiB)", proc_field(pid, "VmRSS:") / 1024, proc_field(pid, "VmHWM:") / 1024);
    drop(agent);
    // `AGENT_LOG=path` keeps the agent's log (its debug lines time every sync).
    if let Ok(keep) = std::env::var("AGENT_LOG") {
        let _ = std::fs::copy(&log, keep);
    }
    running.stop();
}
