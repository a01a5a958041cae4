//! API server benchmark, in one process on 127.0.0.1 over TLS (no root):
//! - the server's resident memory with N pods stored (default 10,000; pods as the lab's
//!   controllers write them: labels, owner, node, a status with addresses and conditions);
//! - a full list of those pods as JSON (what kubectl and a reflector's first list do), and
//!   as a kubectl table, through kube-rs's raw requests (the client's read of the body
//!   included, its parsing not);
//! - write-to-watcher latency: 1,000 merge patches of a pod label, each timed from sending
//!   the PATCH to the watch event's arrival at a kube-rs watch stream.
//!
//! `cargo bench -p palisade-apiserver --bench api` (`-- <pods>` for another count).
//! The allocator is mimalloc, as in the `palisade` binary that runs the lab's server; the
//! resident memory is the whole process's (server and client).

use std::net::TcpListener;
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use kube::api::{Api, Patch, PatchParams, WatchEvent, WatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use palisade_apiserver::api::WriteOptions;
use palisade_apiserver::{Options, resources, start};
use serde_json::json;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kib: f64 = status.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok()).unwrap();
    kib / 1024.0
}

fn pod(i: usize, owner_uid: &str) -> serde_json::Value {
    let node = format!("node-{}", i % 10 + 1);
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": format!("app-7d9f8c6b5d-{i:05}"), "labels": {"app": "app", "pod-template-hash": "7d9f8c6b5d", "shard": (i % 16).to_string()},
                     "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "app-7d9f8c6b5d", "uid": owner_uid, "controller": true, "blockOwnerDeletion": true}]},
        "spec": {"nodeName": node, "containers": [{"name": "app", "image": "registry.k8s.io/e2e-test-images/agnhost:2.47", "args": ["serve-hostname"], "ports": [{"containerPort": 8080, "name": "http"}]}]},
        "status": {"phase": "Running", "hostIP": "172.30.1.2", "podIP": format!("10.244.{}.{}", i / 250, i % 250 + 2), "podIPs": [{"ip": format!("10.244.{}.{}", i / 250, i % 250 + 2)}],
                   "conditions": [{"type": "Ready", "status": "True"}, {"type": "ContainersReady", "status": "True"}, {"type": "PodScheduled", "status": "True"}],
                   "containerStatuses": [{"name": "app", "ready": true, "restartCount": 0, "image": "agnhost", "imageID": "", "state": {"running": {"startedAt": "2026-12-02T00:00:00Z"}}}]}
    })
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let pods: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(10_000);
    let dir = tempfile::tempdir_in("/dev/shm").or_else(|_| tempfile::tempdir()).unwrap();
    let rss_empty = rss_mib();
    let running = start(Options {
        state_dir: dir.path().to_path_buf(),
        service_cidrs: vec!["10.96.0.0/16".parse().unwrap()],
        listeners: vec![TcpListener::bind("127.0.0.1:0").unwrap()],
        addresses: vec!["127.0.0.1".parse().unwrap()],
        kubelet: None,
        watch_history_bytes: None,
    })
    .unwrap();
    let pod_resource = resources::by_kind("v1", "Pod").unwrap();
    // The pods' owner (without it, garbage collection would remove them).
    let template = json!({"metadata": {"labels": {"app": "app"}}, "spec": {"containers": [{"name": "app", "image": "agnhost"}]}});
    let owner =
        json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "app-7d9f8c6b5d"}, "spec": {"replicas": pods, "selector": {"matchLabels": {"app": "app"}}, "template": template}});
    let owner = running.api.create(resources::by_kind("apps/v1", "ReplicaSet").unwrap(), "default", owner, &WriteOptions::default()).unwrap();
    let started = Instant::now();
    for i in 0..pods {
        running.api.create(pod_resource, "default", pod(i, &owner.index.uid), &WriteOptions::default()).unwrap();
    }
    let created = started.elapsed();
    let rss_loaded = rss_mib();
    let path = dir.path().join("kubeconfig");
    std::fs::write(&path, running.kubeconfig("bench")).unwrap();
    let kubeconfig = Kubeconfig::read_from(&path).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await.unwrap();
    let client = kube::Client::try_from(config).unwrap();

    let list = |accept: &'static str| {
        let client = client.clone();
        async move {
            let request = http::Request::get("/api/v1/pods").header("Accept", accept).body(Vec::new()).unwrap();
            let start = Instant::now();
            let body = client.request_text(request).await.unwrap();
            (start.elapsed().as_secs_f64() * 1000.0, body.len())
        }
    };
    let mut times = Vec::new();
    let mut bytes = 0;
    for _ in 0..21 {
        let (ms, len) = list("application/json").await;
        times.push(ms);
        bytes = len;
    }
    times.sort_by(f64::total_cmp);
    let mut table_times = Vec::new();
    for _ in 0..11 {
        table_times.push(list("application/json;as=Table;v=v1;g=meta.k8s.io,application/json").await.0);
    }
    table_times.sort_by(f64::total_cmp);
    let rss_after_lists = rss_mib();

    // Write-to-watcher latency.
    let api: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(client.clone(), "default");
    let version = running.api.store.current_rv().to_string();
    let mut events = api.watch(&WatchParams::default().timeout(290), &version).await.unwrap().boxed();
    let mut latencies = Vec::new();
    for i in 0..1000 {
        let name = format!("app-7d9f8c6b5d-{:05}", i % pods);
        let patch = json!({"metadata": {"labels": {"round": i.to_string()}}});
        let start = Instant::now();
        api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
        loop {
            match tokio::time::timeout(Duration::from_secs(5), events.try_next()).await.expect("an event within 5 s").unwrap() {
                Some(WatchEvent::Modified(p)) if p.metadata.labels.as_ref().and_then(|l| l.get("round")).map(String::as_str) == Some(&i.to_string()) => break,
                Some(_) => continue,
                None => panic!("the watch ended"),
            }
        }
        latencies.push(start.elapsed().as_secs_f64() * 1000.0);
    }
    latencies.sort_by(f64::total_cmp);

    println!("{pods} pods stored in {:.2} s ({:.0} creates/s, in process)", created.as_secs_f64(), pods as f64 / created.as_secs_f64());
    println!("resident memory: {rss_empty:.1} MiB before the server, {rss_loaded:.1} MiB with {pods} pods, {rss_after_lists:.1} MiB after the lists");
    println!("list {pods} pods as JSON ({:.1} MB): median {:.1} ms, p95 {:.1} ms, min {:.1} ms (21 lists)", bytes as f64 / 1e6, percentile(&times, 50.0), percentile(&times, 95.0), times[0]);
    println!("list {pods} pods as a kubectl Table: median {:.1} ms (11 lists)", percentile(&table_times, 50.0));
    println!(
        "write to watcher (PATCH sent -> event received), 1000 writes: median {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        percentile(&latencies, 50.0),
        percentile(&latencies, 99.0),
        latencies[latencies.len() - 1]
    );
    running.stop();
}
