//! A case's life on a Kubernetes API, with kube-rs: its namespaces and pods (each runs
//! `palisade serve` on its declared ports), its steps as API writes, and probes as
//! `palisade probe` run in the source pod with `pods/exec`, as upstream runs agnhost connect.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::Client;
use kube::api::{Api, ApiResource, AttachParams, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams, PostParams};
use palisade_conformance::{LabelMap, PodDef, Step, Topology};
use palisade_model::Protocol;
use serde_json::{Value, json};

const MANAGER: &str = "palisade-conformance";
const READY_TIMEOUT: Duration = Duration::from_secs(90);

pub struct Driver {
    pub client: Client,
    /// The image pods run (`palisade serve` and `palisade probe` must be in it).
    pub image: String,
    /// ClusterNetworkPolicies the run created (cluster-scoped: deleted before each case,
    /// and only these; the cluster's own are left alone).
    pub cluster_policies: std::sync::Mutex<std::collections::BTreeSet<String>>,
}

fn cluster_policy_api(client: &Client) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("policy.networking.k8s.io", "v1beta1", "ClusterNetworkPolicy");
    Api::all_with(client.clone(), &ApiResource::from_gvk_with_plural(&gvk, "clusternetworkpolicies"))
}

/// A 404 on the kind itself: the cluster has no ClusterNetworkPolicy CRD.
fn not_served(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == 404 && status.reason == "NotFound" && status.message.contains("the server could not find the requested resource"))
}

/// What a probe found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Probed {
    Connected,
    Blocked,
    /// The protocol cannot be probed from that pod (no kernel support): skipped.
    Unsupported(String),
}

fn pod_object(pod: &PodDef, image: &str) -> Value {
    let (mut tcp, mut udp) = (Vec::new(), Vec::new());
    for port in &pod.ports {
        match port.protocol {
            Protocol::Tcp => tcp.extend(["--tcp".to_string(), port.port.to_string()]),
            Protocol::Udp => udp.extend(["--udp".to_string(), port.port.to_string()]),
            // `palisade serve` has no SCTP; such probes are skipped where the kernel has none.
            Protocol::Sctp => {}
        }
    }
    let mut command = vec!["palisade".to_string(), "serve".into(), "--hostname".into(), pod.name.clone()];
    command.extend(tcp);
    command.extend(udp);
    let ports: Vec<Value> = pod
        .ports
        .iter()
        .map(|p| {
            let mut port = json!({"containerPort": p.port, "protocol": p.protocol.as_str()});
            if let Some(name) = &p.name {
                port["name"] = json!(name);
            }
            port
        })
        .collect();
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": pod.name, "namespace": pod.namespace, "labels": pod.labels},
        "spec": {"terminationGracePeriodSeconds": 0, "containers": [{"name": "serve", "image": image, "command": command, "ports": ports}]},
    })
}

/// A merge patch that makes `labels` exactly `want` (removed keys set to null), keeping
/// `keep` keys.
fn exact_labels(current: Option<&BTreeMap<String, String>>, want: &LabelMap, keep: &[&str]) -> Value {
    let mut patch = serde_json::Map::new();
    for key in current.into_iter().flat_map(|c| c.keys()) {
        if !want.contains_key(key) && !keep.contains(&key.as_str()) {
            patch.insert(key.clone(), Value::Null);
        }
    }
    for (k, v) in want {
        patch.insert(k.clone(), json!(v));
    }
    json!({"metadata": {"labels": patch}})
}

impl Driver {
    /// Removes what a previous run left in the case's namespaces and waits until they are
    /// gone.
    pub async fn delete_namespaces(&self, topology: &Topology) -> Result<()> {
        let namespaces: Api<Namespace> = Api::all(self.client.clone());
        for name in topology.namespaces.keys() {
            match namespaces.delete(name, &DeleteParams::background()).await {
                Ok(_) => {}
                Err(kube::Error::Api(status)) if status.code == 404 => {}
                Err(e) => return Err(e).with_context(|| format!("deleting namespace {name}")),
            }
        }
        let deadline = Instant::now() + READY_TIMEOUT;
        for name in topology.namespaces.keys() {
            while namespaces.get_opt(name).await?.is_some() {
                if Instant::now() > deadline {
                    bail!("namespace {name} still exists after {} s", READY_TIMEOUT.as_secs());
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        Ok(())
    }

    /// Creates the namespaces and pods, and waits until every pod runs, is ready and has
    /// an address. Returns each pod's addresses (`ns/name` -> IPs, the first as probed).
    pub async fn create(&self, topology: &Topology) -> Result<BTreeMap<String, Vec<IpAddr>>> {
        self.delete_namespaces(topology).await?;
        let namespaces: Api<Namespace> = Api::all(self.client.clone());
        for (name, labels) in &topology.namespaces {
            let object: Namespace = serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}}))?;
            namespaces.create(&PostParams::default(), &object).await.with_context(|| format!("creating namespace {name}"))?;
        }
        self.create_pods(&topology.pods).await
    }

    /// Brings a topology that is already there back to its start, as upstream's suite does
    /// between tests of one model: no policies in its namespaces, and exactly its labels on
    /// namespaces and pods (the pods and their addresses stay).
    /// Deletes the ClusterNetworkPolicies earlier cases created.
    pub async fn forget_cluster_policies(&self) -> Result<()> {
        let names: Vec<String> = std::mem::take(&mut *self.cluster_policies.lock().unwrap_or_else(|e| e.into_inner())).into_iter().collect();
        let api = cluster_policy_api(&self.client);
        for name in names {
            match api.delete(&name, &DeleteParams::default()).await {
                Ok(_) => {}
                Err(kube::Error::Api(status)) if status.code == 404 => {}
                Err(error) => return Err(error).with_context(|| format!("deleting ClusterNetworkPolicy {name}")),
            }
        }
        Ok(())
    }

    pub async fn reset(&self, topology: &Topology) -> Result<()> {
        for (namespace, labels) in &topology.namespaces {
            self.apply(&Step::DeleteAllPolicies { namespaces: vec![namespace.clone()] }, None).await?;
            self.apply(&Step::SetNamespaceLabels { namespace: namespace.clone(), labels: labels.clone() }, None).await?;
        }
        for pod in &topology.pods {
            self.apply(&Step::ReplacePodLabels { pod: pod.key(), labels: pod.labels.clone() }, None).await?;
        }
        Ok(())
    }

    /// Creates pods and waits until each runs, is ready and has an address.
    pub async fn create_pods(&self, pods: &[PodDef]) -> Result<BTreeMap<String, Vec<IpAddr>>> {
        for pod in pods {
            let api: Api<Pod> = Api::namespaced(self.client.clone(), &pod.namespace);
            let object: Pod = serde_json::from_value(pod_object(pod, &self.image))?;
            api.create(&PostParams::default(), &object).await.with_context(|| format!("creating pod {}", pod.key()))?;
        }
        let deadline = Instant::now() + READY_TIMEOUT;
        let mut addresses = BTreeMap::new();
        for pod in pods {
            let api: Api<Pod> = Api::namespaced(self.client.clone(), &pod.namespace);
            loop {
                let live = api.get(&pod.name).await?;
                let status = live.status.clone().unwrap_or_default();
                let ready = status.conditions.iter().flatten().any(|c| c.type_ == "Ready" && c.status == "True");
                let ips: Vec<IpAddr> = status.pod_ips.iter().flatten().filter_map(|ip| ip.ip.parse().ok()).collect();
                if ready && !ips.is_empty() {
                    addresses.insert(pod.key(), ips);
                    break;
                }
                if Instant::now() > deadline {
                    bail!("pod {} not ready after {} s (phase {:?}, {})", pod.key(), READY_TIMEOUT.as_secs(), status.phase, status.message.unwrap_or_default());
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        Ok(addresses)
    }

    /// One step as API writes (probes are the caller's). `policy` has its templates
    /// expanded already.
    pub async fn apply(&self, step: &Step, policy: Option<Value>) -> Result<()> {
        let params = PatchParams::apply(MANAGER).force();
        match step {
            Step::ApplyPolicy { namespace, .. } => {
                let mut policy = policy.ok_or_else(|| anyhow!("no policy"))?;
                policy["apiVersion"] = json!("networking.k8s.io/v1");
                policy["kind"] = json!("NetworkPolicy");
                policy["metadata"]["namespace"] = json!(namespace);
                let name = policy["metadata"]["name"].as_str().unwrap_or_default().to_string();
                let api: Api<NetworkPolicy> = Api::namespaced(self.client.clone(), namespace);
                // Server-side apply: a create, or a full replace of a policy of that name.
                api.delete(&name, &DeleteParams::default()).await.ok();
                api.patch(&name, &params, &Patch::Apply(&policy)).await.with_context(|| format!("applying policy {namespace}/{name}"))?;
            }
            Step::ApplyClusterPolicy { .. } => {
                let policy = policy.ok_or_else(|| anyhow!("no policy"))?;
                let name = policy["metadata"]["name"].as_str().unwrap_or_default().to_string();
                let api = cluster_policy_api(&self.client);
                api.delete(&name, &DeleteParams::default()).await.ok();
                self.cluster_policies.lock().unwrap_or_else(|e| e.into_inner()).insert(name.clone());
                match api.patch(&name, &params, &Patch::Apply(&policy)).await {
                    Ok(_) => {}
                    Err(error) if not_served(&error) => bail!("skip: the cluster does not serve ClusterNetworkPolicy (policy.networking.k8s.io/v1beta1): install the CRD to run this case"),
                    Err(error) => return Err(error).with_context(|| format!("applying ClusterNetworkPolicy {name}")),
                }
            }
            Step::DeleteClusterPolicy { name } => {
                cluster_policy_api(&self.client).delete(name, &DeleteParams::default()).await.with_context(|| format!("deleting ClusterNetworkPolicy {name}"))?;
            }
            Step::DeletePolicy { namespace, name } => {
                let api: Api<NetworkPolicy> = Api::namespaced(self.client.clone(), namespace);
                api.delete(name, &DeleteParams::default()).await.with_context(|| format!("deleting policy {namespace}/{name}"))?;
            }
            Step::DeleteAllPolicies { namespaces } => {
                for namespace in namespaces {
                    let api: Api<NetworkPolicy> = Api::namespaced(self.client.clone(), namespace);
                    api.delete_collection(&DeleteParams::default(), &ListParams::default()).await.with_context(|| format!("deleting the policies of {namespace}"))?;
                }
            }
            Step::AddPodLabels { pod, labels } | Step::ReplacePodLabels { pod, labels } => {
                let (namespace, name) = pod.split_once('/').expect("pods are ns/name");
                let api: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
                let patch =
                    if matches!(step, Step::ReplacePodLabels { .. }) { exact_labels(api.get(name).await?.metadata.labels.as_ref(), labels, &[]) } else { json!({"metadata": {"labels": labels}}) };
                api.patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await.with_context(|| format!("labelling pod {pod}"))?;
            }
            Step::AddNamespaceLabels { namespace, labels } | Step::SetNamespaceLabels { namespace, labels } => {
                let api: Api<Namespace> = Api::all(self.client.clone());
                let patch = if matches!(step, Step::SetNamespaceLabels { .. }) {
                    exact_labels(api.get(namespace).await?.metadata.labels.as_ref(), labels, &["kubernetes.io/metadata.name"])
                } else {
                    json!({"metadata": {"labels": labels}})
                };
                api.patch(namespace, &PatchParams::default(), &Patch::Merge(&patch)).await.with_context(|| format!("labelling namespace {namespace}"))?;
            }
            Step::Probe { .. } | Step::CreatePod { .. } => {}
        }
        Ok(())
    }

    /// `palisade probe` in the source pod: exit 0 connected, 1 blocked, 3 unsupported.
    pub async fn probe(&self, from: &str, target: IpAddr, port: u16, protocol: Protocol) -> Result<Probed> {
        let (namespace, name) = from.split_once('/').expect("pods are ns/name");
        let api: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let address = std::net::SocketAddr::new(target, port).to_string();
        let command = ["palisade", "probe", "--protocol", protocol.as_str(), "--timeout", "1s", address.as_str()];
        let mut process = api.exec(name, command, &AttachParams::default().container("serve").stdout(true).stderr(false)).await.with_context(|| format!("exec in {from}"))?;
        let mut output = String::new();
        if let Some(mut stdout) = process.stdout() {
            use tokio::io::AsyncReadExt;
            stdout.read_to_string(&mut output).await.ok();
        }
        let status = match process.take_status() {
            Some(status) => status.await,
            None => None,
        };
        process.join().await.ok();
        let code = match status {
            Some(s) if s.status.as_deref() == Some("Success") => 0,
            Some(s) => s.details.and_then(|d| d.causes).into_iter().flatten().find(|c| c.reason.as_deref() == Some("ExitCode")).and_then(|c| c.message).and_then(|m| m.parse().ok()).unwrap_or(-1),
            None => -1,
        };
        Ok(match code {
            0 => Probed::Connected,
            1 => Probed::Blocked,
            3 => Probed::Unsupported(output.trim().trim_start_matches("UNSUPPORTED: ").to_string()),
            other => bail!("probe from {from} to {address} exited {other}: {}", output.trim()),
        })
    }
}
