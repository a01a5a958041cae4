//! The controllers: what kube-controller-manager and the scheduler do, for the lab's
//! workloads. Level-triggered like them: from the store's workloads, the Pods that should
//! exist (named as Kubernetes names them, placed on the least busy node) and the workloads'
//! status from their pods. The runtime then makes the stored Pods real.

use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{Map, Value, json};

use crate::store::{Key, Store};

/// Kubernetes' alphabet for generated name suffixes (no vowels, no confusable digits).
const SAFE_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

static SEED: AtomicU64 = AtomicU64::new(0);

fn random_u64() -> u64 {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos() as u64;
    let mut x = nanos ^ SEED.fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed);
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x
}

/// A 5-character suffix such as `x7k2p`, as generateName produces.
pub fn random_suffix() -> String {
    let mut x = random_u64();
    (0..5)
        .map(|_| {
            let c = SAFE_ALPHABET[(x % SAFE_ALPHABET.len() as u64) as usize] as char;
            x /= SAFE_ALPHABET.len() as u64;
            c
        })
        .collect()
}

/// The pod-template-hash of a template: stable for equal templates.
pub fn template_hash(template: &Value) -> String {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in template.to_string().bytes() {
        hash = (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193);
    }
    let mut out = String::new();
    let mut x = u64::from(hash);
    while out.len() < 10 {
        out.push(SAFE_ALPHABET[(x % SAFE_ALPHABET.len() as u64) as usize] as char);
        x = x / SAFE_ALPHABET.len() as u64 + u64::from(hash.rotate_left(out.len() as u32 * 3));
    }
    out
}

fn owner_ref(owner: &Value) -> Value {
    json!({
        "apiVersion": owner["apiVersion"], "kind": owner["kind"], "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"], "controller": true, "blockOwnerDeletion": true,
    })
}

fn ready(pod: &Value) -> bool {
    pod["status"]["conditions"].as_array().is_some_and(|c| c.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
}

fn phase(pod: &Value) -> &str {
    pod["status"]["phase"].as_str().unwrap_or("Pending")
}

/// The node with the fewest pods (first by name among equals).
fn least_busy(store: &Store, nodes: &[String]) -> Option<String> {
    let pods = store.list("Pod", None);
    nodes.iter().min_by_key(|n| pods.iter().filter(|p| p["spec"]["nodeName"] == n.as_str()).count()).cloned()
}

/// A Pod from a pod template.
fn pod_from_template(owner: &Value, template: &Value, name: &str, extra_labels: &[(&str, String)], node: &str) -> Value {
    let namespace = owner["metadata"]["namespace"].clone();
    let mut labels = template["metadata"]["labels"].as_object().cloned().unwrap_or_default();
    for (k, v) in extra_labels {
        labels.insert((*k).to_string(), json!(v));
    }
    let mut spec = template["spec"].clone();
    if !spec.is_object() {
        spec = json!({});
    }
    spec["nodeName"] = json!(node);
    let mut metadata = json!({"name": name, "namespace": namespace, "labels": labels, "ownerReferences": [owner_ref(owner)]});
    if let Some(annotations) = template["metadata"].get("annotations") {
        metadata["annotations"] = annotations.clone();
    }
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec, "status": {"phase": "Pending"}})
}

fn owned_pods(store: &Store, owner: &Value) -> Vec<Value> {
    let uid = owner["metadata"]["uid"].as_str().unwrap_or_default();
    store.owned_by(uid).into_iter().filter(|k| k.kind == "Pod").filter_map(|k| store.get(&k).cloned()).collect()
}

fn replicas(object: &Value) -> usize {
    object["spec"]["replicas"].as_u64().unwrap_or(1) as usize
}

/// What one controller pass changed: pods created and deleted (keys).
#[derive(Debug, Default)]
pub struct Changes {
    pub created: Vec<Key>,
    pub deleted: Vec<Key>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.created.is_empty() && self.deleted.is_empty()
    }
}

/// Deletes an object and, recursively, everything it owns.
pub fn delete_cascading(store: &mut Store, key: &Key, changes: &mut Changes) {
    let Some(object) = store.remove(key) else { return };
    if key.kind == "Pod" {
        changes.deleted.push(key.clone());
    }
    if let Some(uid) = object["metadata"]["uid"].as_str() {
        for owned in store.owned_by(uid) {
            delete_cascading(store, &owned, changes);
        }
    }
}

fn create_pod(store: &mut Store, pod: Value, changes: &mut Changes) {
    changes.created.push(Key::of(&pod));
    store.create_owned(pod);
}

/// Scales a ReplicaSet-like owner (ReplicaSet, or a Deployment's) to `want` pods.
fn scale_replicaset(store: &mut Store, rs: &Value, nodes: &[String], changes: &mut Changes) {
    let want = replicas(rs);
    let mut pods = owned_pods(store, rs);
    pods.sort_by(|a, b| a["metadata"]["name"].as_str().cmp(&b["metadata"]["name"].as_str()));
    let hash = rs["metadata"]["labels"]["pod-template-hash"].as_str().map(str::to_string);
    let base = rs["metadata"]["name"].as_str().unwrap_or_default().to_string();
    for _ in pods.len()..want {
        let Some(node) = least_busy(store, nodes) else { return };
        let name = format!("{base}-{}", random_suffix());
        let extra: Vec<(&str, String)> = hash.iter().map(|h| ("pod-template-hash", h.clone())).collect();
        create_pod(store, pod_from_template(rs, &rs["spec"]["template"], &name, &extra, &node), changes);
    }
    for pod in pods.iter().skip(want) {
        delete_cascading(store, &Key::of(pod), changes);
    }
}

fn deployment(store: &mut Store, deploy: &Value, nodes: &[String], changes: &mut Changes) {
    let template = &deploy["spec"]["template"];
    let hash = template_hash(template);
    let name = format!("{}-{hash}", deploy["metadata"]["name"].as_str().unwrap_or_default());
    let namespace = deploy["metadata"]["namespace"].as_str().unwrap_or_default().to_string();
    let uid = deploy["metadata"]["uid"].as_str().unwrap_or_default().to_string();
    // Older ReplicaSets (another template) go with their pods: a Recreate rollout.
    for old in store.owned_by(&uid).into_iter().filter(|k| k.kind == "ReplicaSet" && k.name != name) {
        delete_cascading(store, &old, changes);
    }
    let key = Key::new("ReplicaSet", &namespace, &name);
    let mut labels = template["metadata"]["labels"].as_object().cloned().unwrap_or_default();
    labels.insert("pod-template-hash".into(), json!(hash));
    let mut selector = deploy["spec"]["selector"].clone();
    if let Some(match_labels) = selector.get_mut("matchLabels").and_then(Value::as_object_mut) {
        match_labels.insert("pod-template-hash".into(), json!(hash));
    }
    let mut rs_template = template.clone();
    rs_template["metadata"]["labels"] = Value::Object(labels.clone());
    let spec = json!({"replicas": replicas(deploy), "selector": selector, "template": rs_template});
    if let Some(existing) = store.get(&key).cloned() {
        if existing["spec"]["replicas"] != spec["replicas"] {
            store.update(&key, |rs| rs["spec"]["replicas"] = spec["replicas"].clone());
        }
    } else {
        store.create_owned(json!({
            "apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": name, "namespace": namespace, "labels": labels, "ownerReferences": [owner_ref(deploy)]},
            "spec": spec,
        }));
    }
    if let Some(rs) = store.get(&key).cloned() {
        scale_replicaset(store, &rs, nodes, changes);
    }
}

fn statefulset(store: &mut Store, sts: &Value, nodes: &[String], changes: &mut Changes) {
    let want = replicas(sts);
    let base = sts["metadata"]["name"].as_str().unwrap_or_default().to_string();
    let namespace = sts["metadata"]["namespace"].as_str().unwrap_or_default().to_string();
    let service = sts["spec"]["serviceName"].as_str().map(str::to_string);
    for ordinal in 0..want {
        let name = format!("{base}-{ordinal}");
        if store.contains(&Key::new("Pod", &namespace, &name)) {
            continue;
        }
        let Some(node) = least_busy(store, nodes) else { return };
        let mut pod = pod_from_template(sts, &sts["spec"]["template"], &name, &[("statefulset.kubernetes.io/pod-name", name.clone())], &node);
        pod["spec"]["hostname"] = json!(name);
        if let Some(service) = &service {
            pod["spec"]["subdomain"] = json!(service);
        }
        create_pod(store, pod, changes);
    }
    for pod in owned_pods(store, sts) {
        let ordinal = pod["metadata"]["name"].as_str().and_then(|n| n.strip_prefix(&format!("{base}-"))).and_then(|o| o.parse::<usize>().ok());
        if ordinal.is_none_or(|o| o >= want) {
            delete_cascading(store, &Key::of(&pod), changes);
        }
    }
}

fn daemonset(store: &mut Store, ds: &Value, nodes: &[String], changes: &mut Changes) {
    let pods = owned_pods(store, ds);
    let base = ds["metadata"]["name"].as_str().unwrap_or_default().to_string();
    for node in nodes {
        if !pods.iter().any(|p| p["spec"]["nodeName"] == node.as_str()) {
            let name = format!("{base}-{}", random_suffix());
            create_pod(store, pod_from_template(ds, &ds["spec"]["template"], &name, &[], node), changes);
        }
    }
}

fn job(store: &mut Store, job: &Value, nodes: &[String], changes: &mut Changes) {
    let pods = owned_pods(store, job);
    let completions = job["spec"]["completions"].as_u64().unwrap_or(1) as usize;
    let parallelism = job["spec"]["parallelism"].as_u64().unwrap_or(1) as usize;
    let backoff_limit = job["spec"]["backoffLimit"].as_u64().unwrap_or(6) as usize;
    let succeeded = pods.iter().filter(|p| phase(p) == "Succeeded").count();
    let failed = pods.iter().filter(|p| phase(p) == "Failed").count();
    let active = pods.len() - succeeded - failed;
    if succeeded >= completions || failed > backoff_limit {
        return;
    }
    let base = job["metadata"]["name"].as_str().unwrap_or_default().to_string();
    let uid = job["metadata"]["uid"].as_str().unwrap_or_default().to_string();
    let want = parallelism.min(completions - succeeded);
    for _ in active..want {
        let Some(node) = least_busy(store, nodes) else { return };
        let name = format!("{base}-{}", random_suffix());
        let labels = [("job-name", base.clone()), ("batch.kubernetes.io/job-name", base.clone()), ("controller-uid", uid.clone())];
        create_pod(store, pod_from_template(job, &job["spec"]["template"], &name, &labels, &node), changes);
    }
}

/// Pods a user created directly get a node if they have none.
fn bare_pods(store: &mut Store, nodes: &[String]) {
    for key in store.keys("Pod") {
        let unscheduled = store.get(&key).is_some_and(|p| p["spec"]["nodeName"].as_str().is_none_or(str::is_empty));
        if unscheduled && let Some(node) = least_busy(store, nodes) {
            store.update(&key, |p| p["spec"]["nodeName"] = json!(node));
        }
    }
}

/// One pass of every controller.
pub fn reconcile(store: &mut Store, nodes: &[String]) -> Changes {
    let mut changes = Changes::default();
    bare_pods(store, nodes);
    for kind in ["Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "Job"] {
        for key in store.keys(kind) {
            let Some(object) = store.get(&key).cloned() else { continue };
            let owned_by_deployment = kind == "ReplicaSet" && object["metadata"]["ownerReferences"].as_array().is_some_and(|r| !r.is_empty());
            match kind {
                "Deployment" => deployment(store, &object, nodes, &mut changes),
                "ReplicaSet" if !owned_by_deployment => scale_replicaset(store, &object, nodes, &mut changes),
                "StatefulSet" => statefulset(store, &object, nodes, &mut changes),
                "DaemonSet" => daemonset(store, &object, nodes, &mut changes),
                "Job" => job(store, &object, nodes, &mut changes),
                _ => {}
            }
        }
    }
    update_statuses(store);
    changes
}

/// Workload status from their pods, as the controllers report it.
pub fn update_statuses(store: &mut Store) {
    for kind in ["ReplicaSet", "Deployment", "StatefulSet", "DaemonSet", "Job"] {
        for key in store.keys(kind) {
            let Some(object) = store.get(&key).cloned() else { continue };
            let pods: Vec<Value> = if kind == "Deployment" {
                let uid = object["metadata"]["uid"].as_str().unwrap_or_default();
                store.owned_by(uid).iter().filter(|k| k.kind == "ReplicaSet").filter_map(|k| store.get(k)).flat_map(|rs| owned_pods(store, rs)).collect()
            } else {
                owned_pods(store, &object)
            };
            let total = pods.len();
            let ready_count = pods.iter().filter(|p| ready(p)).count();
            let mut status = Map::new();
            match kind {
                "DaemonSet" => {
                    status.insert("desiredNumberScheduled".into(), json!(total));
                    status.insert("currentNumberScheduled".into(), json!(total));
                    status.insert("numberReady".into(), json!(ready_count));
                    status.insert("numberAvailable".into(), json!(ready_count));
                    status.insert("updatedNumberScheduled".into(), json!(total));
                }
                "Job" => {
                    let count = |p: &str| pods.iter().filter(|pod| phase(pod) == p).count();
                    let (succeeded, failed) = (count("Succeeded"), count("Failed"));
                    status.insert("active".into(), json!(total - succeeded - failed));
                    status.insert("succeeded".into(), json!(succeeded));
                    status.insert("failed".into(), json!(failed));
                    if succeeded >= object["spec"]["completions"].as_u64().unwrap_or(1) as usize {
                        status.insert("conditions".into(), json!([{"type": "Complete", "status": "True"}]));
                    }
                }
                _ => {
                    status.insert("replicas".into(), json!(total));
                    status.insert("readyReplicas".into(), json!(ready_count));
                    status.insert("availableReplicas".into(), json!(ready_count));
                    status.insert(if kind == "StatefulSet" { "currentReplicas" } else { "updatedReplicas" }.into(), json!(total));
                    status.insert("observedGeneration".into(), object["metadata"]["generation"].clone());
                }
            }
            let status = Value::Object(status);
            if object.get("status") != Some(&status) {
                store.update(&key, |o| o["status"] = status);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes() -> Vec<String> {
        vec!["node-1".into(), "node-2".into()]
    }

    fn deploy(replicas: u64, image: &str) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "prod", "labels": {"app": "web"}},
               "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                        "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": image}]}}}})
    }

    fn pods(store: &Store) -> Vec<Value> {
        store.list("Pod", None).into_iter().cloned().collect()
    }

    #[test]
    fn a_deployment_gets_a_replicaset_and_pods_spread_over_nodes() {
        let mut store = Store::new("t");
        store.apply(deploy(2, "nginx"));
        let changes = reconcile(&mut store, &nodes());
        assert_eq!(changes.created.len(), 2);
        let pods = pods(&store);
        let names: Vec<&str> = pods.iter().map(|p| p["metadata"]["name"].as_str().unwrap()).collect();
        let rs = store.list("ReplicaSet", Some("prod"));
        let rs_name = rs[0]["metadata"]["name"].as_str().unwrap();
        assert!(rs_name.starts_with("web-") && rs_name.len() == "web-".len() + 10, "{rs_name}");
        for (pod, name) in pods.iter().zip(&names) {
            assert!(name.starts_with(&format!("{rs_name}-")) && name.len() == rs_name.len() + 6, "{name}");
            assert_eq!(pod["metadata"]["labels"]["app"], "web");
            assert_eq!(pod["metadata"]["labels"]["pod-template-hash"], rs[0]["metadata"]["labels"]["pod-template-hash"]);
        }
        let mut placed: Vec<&str> = pods.iter().map(|p| p["spec"]["nodeName"].as_str().unwrap()).collect();
        placed.sort();
        assert_eq!(placed, ["node-1", "node-2"]);
        assert!(reconcile(&mut store, &nodes()).is_empty(), "a second pass changes nothing");
    }

    #[test]
    fn scaling_and_template_changes() {
        let mut store = Store::new("t");
        store.apply(deploy(3, "nginx"));
        reconcile(&mut store, &nodes());
        store.apply(deploy(1, "nginx"));
        let changes = reconcile(&mut store, &nodes());
        assert_eq!((changes.created.len(), changes.deleted.len()), (0, 2));
        store.apply(deploy(1, "nginx:2"));
        let changes = reconcile(&mut store, &nodes());
        assert_eq!((changes.created.len(), changes.deleted.len()), (1, 1));
        assert_eq!(store.list("ReplicaSet", None).len(), 1, "the old ReplicaSet is gone");
    }

    #[test]
    fn deleting_a_deployment_deletes_its_pods() {
        let mut store = Store::new("t");
        store.apply(deploy(2, "nginx"));
        reconcile(&mut store, &nodes());
        let mut changes = Changes::default();
        delete_cascading(&mut store, &Key::new("Deployment", "prod", "web"), &mut changes);
        assert_eq!(changes.deleted.len(), 2);
        assert!(store.list("Pod", None).is_empty() && store.list("ReplicaSet", None).is_empty());
    }

    #[test]
    fn statefulset_daemonset_and_job_pods() {
        let mut store = Store::new("t");
        let template = json!({"metadata": {"labels": {"app": "x"}}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}});
        store.apply(json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db", "namespace": "a"}, "spec": {"replicas": 2, "serviceName": "db", "template": template}}));
        store.apply(json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent", "namespace": "a"}, "spec": {"template": template}}));
        store.apply(json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "once", "namespace": "a"}, "spec": {"template": template}}));
        reconcile(&mut store, &nodes());
        let db0 = store.get(&Key::new("Pod", "a", "db-0")).unwrap();
        assert_eq!((db0["spec"]["hostname"].as_str(), db0["spec"]["subdomain"].as_str()), (Some("db-0"), Some("db")));
        assert!(store.contains(&Key::new("Pod", "a", "db-1")));
        let agents: Vec<Value> = pods(&store).into_iter().filter(|p| p["metadata"]["name"].as_str().unwrap().starts_with("agent-")).collect();
        assert_eq!(agents.len(), 2);
        let jobs: Vec<Value> = pods(&store).into_iter().filter(|p| p["metadata"]["labels"]["job-name"] == "once").collect();
        assert_eq!(jobs.len(), 1);
        // The job's pod succeeds: no new pod, the job is complete.
        let key = Key::of(&jobs[0]);
        store.update(&key, |p| p["status"]["phase"] = json!("Succeeded"));
        assert!(reconcile(&mut store, &nodes()).created.is_empty());
        assert_eq!(store.get(&Key::new("Job", "a", "once")).unwrap()["status"]["succeeded"], 1);
    }

    #[test]
    fn suffixes_and_hashes() {
        let s = random_suffix();
        assert_eq!(s.len(), 5);
        assert!(s.bytes().all(|b| SAFE_ALPHABET.contains(&b)));
        assert_ne!(random_suffix(), random_suffix());
        let t = json!({"a": 1});
        assert_eq!(template_hash(&t), template_hash(&t));
        assert_ne!(template_hash(&t), template_hash(&json!({"a": 2})));
    }
}
