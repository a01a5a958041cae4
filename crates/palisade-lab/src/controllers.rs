//! The controllers: what kube-controller-manager and the scheduler do, for the lab's
//! workloads, through the lab's API server like any client. Level-triggered: each pass
//! reads the workloads and pods and makes the Pods that should exist (named as Kubernetes
//! names them, placed on the least busy node), deletes those that should not, writes the
//! workloads' status from their pods, and keeps each Service's Endpoints. The runtime then
//! makes the stored Pods real.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use palisade_apiserver::api::{Api, DeleteOptions, WriteOptions};
use palisade_apiserver::resources::{self, Resource};
use palisade_apiserver::selectors::{FieldSelector, LabelSelector};
use palisade_apiserver::{ApiError, meta};
use serde_json::{Map, Value, json};

/// Kubernetes' alphabet for generated name suffixes (no vowels, no confusable digits).
const SAFE_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

pub fn resource(api_version: &str, kind: &str) -> &'static Resource {
    resources::by_kind(api_version, kind).expect("a kind the lab's API server serves")
}

pub fn pods() -> &'static Resource {
    resource("v1", "Pod")
}

/// Every object of a resource (all namespaces), parsed.
pub fn list(api: &Api, resource: &'static Resource) -> Vec<Value> {
    api.list(resource, None, &LabelSelector::default(), &FieldSelector::default()).0.iter().map(|o| o.value()).collect()
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

pub fn ready(pod: &Value) -> bool {
    pod["status"]["conditions"].as_array().is_some_and(|c| c.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
}

fn phase(pod: &Value) -> &str {
    pod["status"]["phase"].as_str().unwrap_or("Pending")
}

fn text(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
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
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec})
}

fn replicas(object: &Value) -> usize {
    object["spec"]["replicas"].as_u64().unwrap_or(1) as usize
}

/// What one pass changed.
#[derive(Debug, Default)]
pub struct Changes {
    pub pods_created: usize,
    pub pods_deleted: usize,
    pub writes: usize,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.writes == 0
    }
}

/// One pass over the cluster's state, with the pods indexed by owner and node.
struct Pass<'a> {
    api: &'a Api,
    nodes: &'a [String],
    pods: Vec<Value>,
    by_owner: HashMap<String, Vec<usize>>,
    per_node: BTreeMap<String, usize>,
    /// Each node's `status.allocatable.pods` (the scheduler places no more).
    capacity: HashMap<String, usize>,
    changes: Changes,
}

impl<'a> Pass<'a> {
    fn new(api: &'a Api, nodes: &'a [String]) -> Self {
        let pods = list(api, pods());
        let mut by_owner: HashMap<String, Vec<usize>> = HashMap::new();
        let mut per_node: BTreeMap<String, usize> = nodes.iter().map(|n| (n.clone(), 0)).collect();
        for (i, pod) in pods.iter().enumerate() {
            for owner in pod["metadata"]["ownerReferences"].as_array().into_iter().flatten() {
                by_owner.entry(text(&owner["uid"])).or_default().push(i);
            }
            if let Some(count) = pod["spec"]["nodeName"].as_str().and_then(|n| per_node.get_mut(n)) {
                *count += 1;
            }
        }
        let capacity = list(api, resource("v1", "Node"))
            .iter()
            .filter_map(|n| {
                let pods = &n["status"]["allocatable"]["pods"];
                let count = pods.as_u64().map(|c| c as usize).or_else(|| pods.as_str()?.parse().ok())?;
                Some((text(&n["metadata"]["name"]), count))
            })
            .collect();
        Self { api, nodes, pods, by_owner, per_node, capacity, changes: Changes::default() }
    }

    fn owned(&self, owner: &Value) -> Vec<Value> {
        let uid = text(&owner["metadata"]["uid"]);
        self.by_owner.get(&uid).into_iter().flatten().map(|&i| self.pods[i].clone()).filter(|p| p["metadata"]["deletionTimestamp"].is_null()).collect()
    }

    /// The node with the fewest pods (first by name among equals) that has room for one
    /// more, counting this pass's.
    fn least_busy(&mut self) -> Option<String> {
        let count = |n: &String| self.per_node.get(n).copied().unwrap_or(0);
        let node = self.nodes.iter().filter(|n| self.capacity.get(*n).is_none_or(|&room| count(n) < room)).min_by_key(|n| count(n))?.clone();
        *self.per_node.entry(node.clone()).or_default() += 1;
        Some(node)
    }

    fn report(&self, what: &str, result: Result<impl Sized, ApiError>) {
        if let Err(error) = result
            && error.code != 404
            && error.code != 409
        {
            tracing::warn!(%error, "controller: {what}");
        }
    }

    fn create_pod(&mut self, pod: Value) {
        let namespace = text(&pod["metadata"]["namespace"]);
        let result = self.api.create(pods(), &namespace, pod, &WriteOptions::default());
        if result.is_ok() {
            self.changes.pods_created += 1;
            self.changes.writes += 1;
        }
        self.report("creating a pod", result);
    }

    fn delete(&mut self, resource: &'static Resource, object: &Value) {
        let (namespace, name) = (text(&object["metadata"]["namespace"]), text(&object["metadata"]["name"]));
        let result = self.api.delete(resource, &namespace, &name, &DeleteOptions::default());
        if result.is_ok() {
            self.changes.writes += 1;
            if resource.kind == "Pod" {
                self.changes.pods_deleted += 1;
            }
        }
        self.report("deleting an object", result);
    }

    /// Scales a ReplicaSet-like owner (ReplicaSet, or a Deployment's) to its replicas.
    fn replicaset(&mut self, rs: &Value) {
        let want = replicas(rs);
        let mut owned = self.owned(rs);
        owned.sort_by(|a, b| a["metadata"]["name"].as_str().cmp(&b["metadata"]["name"].as_str()));
        let hash = rs["metadata"]["labels"]["pod-template-hash"].as_str().map(str::to_string);
        let base = text(&rs["metadata"]["name"]);
        for _ in owned.len()..want {
            let Some(node) = self.least_busy() else { return };
            let name = format!("{base}-{}", meta::random_suffix(5));
            let extra: Vec<(&str, String)> = hash.iter().map(|h| ("pod-template-hash", h.clone())).collect();
            self.create_pod(pod_from_template(rs, &rs["spec"]["template"], &name, &extra, &node));
        }
        for pod in owned.iter().skip(want) {
            self.delete(pods(), pod);
        }
    }

    fn deployment(&mut self, deploy: &Value, replicasets: &[Value]) {
        let template = &deploy["spec"]["template"];
        let hash = template_hash(template);
        let name = format!("{}-{hash}", text(&deploy["metadata"]["name"]));
        let namespace = text(&deploy["metadata"]["namespace"]);
        let uid = text(&deploy["metadata"]["uid"]);
        let rs_resource = resource("apps/v1", "ReplicaSet");
        let owned: Vec<&Value> = replicasets.iter().filter(|rs| rs["metadata"]["ownerReferences"].as_array().into_iter().flatten().any(|o| o["uid"] == uid.as_str())).collect();
        // Older ReplicaSets (another template) go, their pods with them: a Recreate rollout.
        for old in owned.iter().filter(|rs| rs["metadata"]["name"] != name.as_str()) {
            self.delete(rs_resource, old);
        }
        let mut labels = template["metadata"]["labels"].as_object().cloned().unwrap_or_default();
        labels.insert("pod-template-hash".into(), json!(hash));
        let mut selector = deploy["spec"]["selector"].clone();
        if let Some(match_labels) = selector.get_mut("matchLabels").and_then(Value::as_object_mut) {
            match_labels.insert("pod-template-hash".into(), json!(hash));
        }
        let mut rs_template = template.clone();
        rs_template["metadata"]["labels"] = Value::Object(labels.clone());
        let want = replicas(deploy);
        let rs = match owned.iter().find(|rs| rs["metadata"]["name"] == name.as_str()) {
            Some(existing) if replicas(existing) == want => (*existing).clone(),
            Some(_) => {
                let result = self.api.modify(rs_resource, &namespace, &name, |rs| {
                    rs["spec"]["replicas"] = json!(want);
                    true
                });
                self.changes.writes += 1;
                match result {
                    Ok(Some(updated)) => updated.value(),
                    other => return self.report("scaling a ReplicaSet", other),
                }
            }
            None => {
                let rs = json!({
                    "apiVersion": "apps/v1", "kind": "ReplicaSet",
                    "metadata": {"name": name, "namespace": namespace, "labels": labels, "ownerReferences": [owner_ref(deploy)]},
                    "spec": {"replicas": want, "selector": selector, "template": rs_template},
                });
                self.changes.writes += 1;
                match self.api.create(rs_resource, &namespace, rs, &WriteOptions::default()) {
                    Ok(created) => created.value(),
                    Err(error) => return self.report("creating a ReplicaSet", Err::<(), _>(error)),
                }
            }
        };
        self.replicaset(&rs);
    }

    fn statefulset(&mut self, sts: &Value) {
        let want = replicas(sts);
        let base = text(&sts["metadata"]["name"]);
        let service = sts["spec"]["serviceName"].as_str().map(str::to_string);
        let pods = self.owned(sts);
        for ordinal in 0..want {
            let name = format!("{base}-{ordinal}");
            if pods.iter().any(|p| p["metadata"]["name"] == name.as_str()) {
                continue;
            }
            let Some(node) = self.least_busy() else { return };
            let mut pod = pod_from_template(sts, &sts["spec"]["template"], &name, &[("statefulset.kubernetes.io/pod-name", name.clone())], &node);
            pod["spec"]["hostname"] = json!(name);
            if let Some(service) = &service {
                pod["spec"]["subdomain"] = json!(service);
            }
            self.create_pod(pod);
        }
        for pod in &pods {
            let ordinal = pod["metadata"]["name"].as_str().and_then(|n| n.strip_prefix(&format!("{base}-"))).and_then(|o| o.parse::<usize>().ok());
            if ordinal.is_none_or(|o| o >= want) {
                self.delete(self::pods(), pod);
            }
        }
    }

    fn daemonset(&mut self, ds: &Value) {
        let pods = self.owned(ds);
        let base = text(&ds["metadata"]["name"]);
        let selector = ds["spec"]["template"]["spec"]["nodeSelector"].as_object().cloned().unwrap_or_default();
        for node in self.nodes.to_vec() {
            // The lab's nodes carry only the hostname and os labels.
            let fits = selector.iter().all(|(k, v)| (k == "kubernetes.io/os" && v == "linux") || (k == "kubernetes.io/hostname" && v == node.as_str()));
            if fits && !pods.iter().any(|p| p["spec"]["nodeName"] == node.as_str()) {
                let name = format!("{base}-{}", meta::random_suffix(5));
                *self.per_node.entry(node.clone()).or_default() += 1;
                self.create_pod(pod_from_template(ds, &ds["spec"]["template"], &name, &[], &node));
            }
        }
    }

    fn job(&mut self, job: &Value) {
        let pods = self.owned(job);
        let completions = job["spec"]["completions"].as_u64().unwrap_or(1) as usize;
        let parallelism = job["spec"]["parallelism"].as_u64().unwrap_or(1) as usize;
        let backoff_limit = job["spec"]["backoffLimit"].as_u64().unwrap_or(6) as usize;
        let succeeded = pods.iter().filter(|p| phase(p) == "Succeeded").count();
        let failed = pods.iter().filter(|p| phase(p) == "Failed").count();
        let active = pods.len() - succeeded - failed;
        if succeeded >= completions || failed > backoff_limit {
            return;
        }
        let base = text(&job["metadata"]["name"]);
        let uid = text(&job["metadata"]["uid"]);
        let want = parallelism.min(completions - succeeded);
        for _ in active..want {
            let Some(node) = self.least_busy() else { return };
            let name = format!("{base}-{}", meta::random_suffix(5));
            let labels = [("job-name", base.clone()), ("batch.kubernetes.io/job-name", base.clone()), ("controller-uid", uid.clone())];
            self.create_pod(pod_from_template(job, &job["spec"]["template"], &name, &labels, &node));
        }
    }

    /// The scheduler: pods created without a node get the least busy one.
    fn schedule(&mut self) {
        let unscheduled: Vec<(String, String)> = self
            .pods
            .iter()
            .filter(|p| p["spec"]["nodeName"].as_str().is_none_or(str::is_empty) && p["metadata"]["deletionTimestamp"].is_null())
            .map(|p| (text(&p["metadata"]["namespace"]), text(&p["metadata"]["name"])))
            .collect();
        for (namespace, name) in unscheduled {
            let Some(node) = self.least_busy() else {
                self.unschedulable(&namespace, &name);
                continue;
            };
            let result = self.api.modify(pods(), &namespace, &name, |pod| {
                if pod["spec"]["nodeName"].as_str().is_some_and(|n| !n.is_empty()) {
                    return false;
                }
                pod["spec"]["nodeName"] = json!(node);
                true
            });
            self.changes.writes += 1;
            self.report("scheduling a pod", result);
        }
    }

    /// Marks a pod no node has room for, as kube-scheduler does (it stays Pending and is
    /// placed when room appears).
    fn unschedulable(&mut self, namespace: &str, name: &str) {
        let message = format!("0/{} nodes are available: {} Too many pods.", self.nodes.len(), self.nodes.len());
        let condition = json!({"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": message});
        let result = self.api.modify(pods(), namespace, name, |pod| {
            if pod["status"]["conditions"].as_array().is_some_and(|c| c.iter().any(|c| c["type"] == "PodScheduled" && c["reason"] == "Unschedulable")) {
                return false;
            }
            let mut condition = condition.clone();
            condition["lastTransitionTime"] = json!(palisade_apiserver::meta::now());
            pod["status"]["conditions"] = json!([condition]);
            true
        });
        self.changes.writes += 1;
        self.report("marking a pod unschedulable", result);
    }

    /// Writes a workload's status when it changed.
    fn set_status(&mut self, resource: &'static Resource, object: &Value, status: Value) {
        if object.get("status") == Some(&status) {
            return;
        }
        let (namespace, name) = (text(&object["metadata"]["namespace"]), text(&object["metadata"]["name"]));
        let result = self.api.modify(resource, &namespace, &name, |o| {
            let changed = o["status"] != status;
            o["status"] = status.clone();
            changed
        });
        self.changes.writes += 1;
        self.report("writing a status", result);
    }

    fn workload_status(&mut self, resource: &'static Resource, object: &Value, pods: &[Value]) {
        let total = pods.len();
        let ready_count = pods.iter().filter(|p| ready(p)).count();
        let mut status = Map::new();
        match resource.kind {
            "DaemonSet" => {
                for key in ["desiredNumberScheduled", "currentNumberScheduled", "updatedNumberScheduled"] {
                    status.insert(key.into(), json!(total));
                }
                status.insert("numberReady".into(), json!(ready_count));
                status.insert("numberAvailable".into(), json!(ready_count));
                status.insert("observedGeneration".into(), object["metadata"]["generation"].clone());
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
                status.insert(if resource.kind == "StatefulSet" { "currentReplicas" } else { "updatedReplicas" }.into(), json!(total));
                status.insert("observedGeneration".into(), object["metadata"]["generation"].clone());
                if resource.kind == "Deployment" {
                    let desired = object["spec"]["replicas"].as_u64().unwrap_or(1) as usize;
                    status.insert("conditions".into(), deployment_conditions(object, ready_count >= desired, total >= desired));
                }
            }
        }
        self.set_status(resource, object, Value::Object(status));
    }

    /// Each Service's Endpoints: its ready pods, with the target port resolved per pod.
    fn endpoints(&mut self) {
        let endpoints = resource("v1", "Endpoints");
        let existing: HashMap<(String, String), Value> = list(self.api, endpoints).into_iter().map(|e| ((text(&e["metadata"]["namespace"]), text(&e["metadata"]["name"])), e)).collect();
        for service in list(self.api, resource("v1", "Service")) {
            let Some(selector) = service["spec"]["selector"].as_object().filter(|s| !s.is_empty()) else { continue };
            let namespace = text(&service["metadata"]["namespace"]);
            let name = text(&service["metadata"]["name"]);
            let backends: Vec<&Value> = self
                .pods
                .iter()
                .filter(|p| p["metadata"]["namespace"] == namespace.as_str() && ready(p) && p["status"]["podIP"].is_string())
                .filter(|p| selector.iter().all(|(k, v)| p["metadata"]["labels"][k] == *v))
                .collect();
            let mut subsets: Vec<Value> = Vec::new();
            for port in service["spec"]["ports"].as_array().into_iter().flatten() {
                for pod in &backends {
                    let Some(number) = crate::proxy::target_port(port, pod) else { continue };
                    let address = json!({"ip": pod["status"]["podIP"], "nodeName": pod["spec"]["nodeName"], "targetRef": {"kind": "Pod", "namespace": namespace, "name": pod["metadata"]["name"], "uid": pod["metadata"]["uid"]}});
                    let endpoint_port = json!({"name": port["name"].as_str().unwrap_or_default(), "port": number, "protocol": port["protocol"]});
                    match subsets.iter_mut().find(|s| s["ports"][0] == endpoint_port) {
                        Some(subset) => subset["addresses"].as_array_mut().expect("an array").push(address),
                        None => subsets.push(json!({"addresses": [address], "ports": [endpoint_port]})),
                    }
                }
            }
            let body = json!({"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": name, "namespace": namespace, "labels": service["metadata"]["labels"]}, "subsets": subsets});
            match existing.get(&(namespace.clone(), name.clone())) {
                Some(current) if current["subsets"] == body["subsets"] || (current["subsets"].is_null() && subsets.is_empty()) => {}
                Some(_) => {
                    let result = self.api.modify(endpoints, &namespace, &name, |e| {
                        e["subsets"] = body["subsets"].clone();
                        true
                    });
                    self.changes.writes += 1;
                    self.report("updating Endpoints", result);
                }
                None => {
                    let result = self.api.create(endpoints, &namespace, body, &WriteOptions::default());
                    self.changes.writes += 1;
                    self.report("creating Endpoints", result);
                }
            }
        }
    }
}

/// One pass of every controller.
pub fn reconcile(api: &Arc<Api>, nodes: &[String]) -> Changes {
    let mut pass = Pass::new(api, nodes);
    pass.schedule();
    let replicasets = list(api, resource("apps/v1", "ReplicaSet"));
    for deploy in list(api, resource("apps/v1", "Deployment")).iter().filter(|d| d["metadata"]["deletionTimestamp"].is_null()) {
        pass.deployment(deploy, &replicasets);
    }
    for rs in replicasets.iter().filter(|rs| rs["metadata"]["ownerReferences"].as_array().is_none_or(Vec::is_empty) && rs["metadata"]["deletionTimestamp"].is_null()) {
        pass.replicaset(rs);
    }
    for sts in list(api, resource("apps/v1", "StatefulSet")).iter().filter(|o| o["metadata"]["deletionTimestamp"].is_null()) {
        pass.statefulset(sts);
    }
    for ds in list(api, resource("apps/v1", "DaemonSet")).iter().filter(|o| o["metadata"]["deletionTimestamp"].is_null()) {
        pass.daemonset(ds);
    }
    for job in list(api, resource("batch/v1", "Job")).iter().filter(|o| o["metadata"]["deletionTimestamp"].is_null()) {
        pass.job(job);
    }
    // Statuses, from a fresh look at the pods (this pass may have made some).
    let mut fresh = Pass::new(api, nodes);
    fresh.changes.writes = pass.changes.writes;
    fresh.changes.pods_created = pass.changes.pods_created;
    fresh.changes.pods_deleted = pass.changes.pods_deleted;
    let replicasets = list(api, resource("apps/v1", "ReplicaSet"));
    for kind in ["ReplicaSet", "StatefulSet", "DaemonSet", "Job"] {
        let r = resource(if kind == "Job" { "batch/v1" } else { "apps/v1" }, kind);
        for object in list(api, r) {
            let pods = fresh.owned(&object);
            fresh.workload_status(r, &object, &pods);
        }
    }
    for deploy in list(api, resource("apps/v1", "Deployment")) {
        let uid = text(&deploy["metadata"]["uid"]);
        let pods: Vec<Value> =
            replicasets.iter().filter(|rs| rs["metadata"]["ownerReferences"].as_array().into_iter().flatten().any(|o| o["uid"] == uid.as_str())).flat_map(|rs| fresh.owned(rs)).collect();
        fresh.workload_status(resource("apps/v1", "Deployment"), &deploy, &pods);
    }
    fresh.endpoints();
    fresh.changes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_hashes_are_stable_and_differ() {
        let t = json!({"a": 1});
        assert_eq!(template_hash(&t), template_hash(&t));
        assert_eq!(template_hash(&t).len(), 10);
        assert_ne!(template_hash(&t), template_hash(&json!({"a": 2})));
    }
}

/// A Deployment's Available and Progressing conditions (what `kubectl wait
/// --for=condition=Available` and `kubectl rollout status` read). A condition keeps its
/// timestamps while its status stays the same, so an unchanged Deployment is not rewritten.
fn deployment_conditions(deployment: &Value, available: bool, complete: bool) -> Value {
    let previous = deployment["status"]["conditions"].as_array().cloned().unwrap_or_default();
    let condition = |kind: &str, status: bool, reason: &str, message: String| {
        let status = if status { "True" } else { "False" };
        let since = previous.iter().find(|c| c["type"] == kind && c["status"] == status).map(|c| c["lastTransitionTime"].clone()).unwrap_or_else(|| json!(palisade_apiserver::meta::now()));
        json!({"type": kind, "status": status, "reason": reason, "message": message, "lastUpdateTime": since, "lastTransitionTime": since})
    };
    let name = text(&deployment["metadata"]["name"]);
    json!([
        if available {
            condition("Available", true, "MinimumReplicasAvailable", "Deployment has minimum availability.".into())
        } else {
            condition("Available", false, "MinimumReplicasUnavailable", "Deployment does not have minimum availability.".into())
        },
        if complete {
            condition("Progressing", true, "NewReplicaSetAvailable", format!("Deployment \"{name}\" has successfully progressed."))
        } else {
            condition("Progressing", true, "ReplicaSetUpdated", format!("Deployment \"{name}\" is progressing."))
        },
    ])
}
