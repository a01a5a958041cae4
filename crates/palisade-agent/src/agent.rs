//! `palisade agent`: the node agent on a Kubernetes API. kube-rs watches feed the shared
//! state; one thread syncs this node's table from it (coalesced: a burst of events is one
//! sync, at most one per `min_sync_interval`; a full replace every `resync`); an HTTP
//! listener serves `/healthz`, `/readyz` and `/metrics`; refused policies and rulesets
//! become Events on the policies.
//!
//! Never open: the agent never flushes its table. Stopping or crashing leaves the last
//! ruleset in the kernel; the first sync after a start replaces the table in one
//! transaction, and only once every kind has been listed (a ruleset built from pods without
//! their policies would open what the policies close).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use palisade_nft::{Nft, RenderOptions};

use crate::Reconciler;
use crate::metrics::{Metrics, ReasonLabel};
use crate::shared::{Report, Shared};

#[derive(Clone, Debug)]
pub struct AgentConfig {
    /// This node's name (`NODE_NAME` from the downward API on a cluster).
    pub node: String,
    /// `None`: in-cluster configuration (or `KUBECONFIG`).
    pub kubeconfig: Option<PathBuf>,
    /// `/healthz`, `/readyz` and `/metrics`.
    pub listen: SocketAddr,
    /// Where the CNI plugin announces new pods (`agentSocket` in the network config).
    pub cni_socket: PathBuf,
    /// Where the applied state is recorded for a restarted agent (see `Reconciler::resuming`).
    pub state_file: PathBuf,
    pub resync: Duration,
    pub min_sync_interval: Duration,
    pub api_grace: Duration,
    pub render: RenderOptions,
}

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("cannot configure the Kubernetes client: {0}")]
    Client(String),
    #[error("cannot listen on {address}: {source}")]
    Listen { address: SocketAddr, source: std::io::Error },
    #[error("cannot listen on {}: {source}", path.display())]
    Socket { path: PathBuf, source: std::io::Error },
}

/// A client from `kubeconfig`, or the in-cluster ServiceAccount (or `$KUBECONFIG`).
pub async fn client(kubeconfig: Option<&std::path::Path>) -> Result<kube::Client, AgentError> {
    let kube_config = match kubeconfig {
        Some(path) => {
            let kubeconfig = Kubeconfig::read_from(path).map_err(|e| AgentError::Client(format!("reading {}: {e}", path.display())))?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await.map_err(|e| AgentError::Client(e.to_string()))?
        }
        None => kube::Config::infer().await.map_err(|e| AgentError::Client(e.to_string()))?,
    };
    kube::Client::try_from(kube_config).map_err(|e| AgentError::Client(e.to_string()))
}

/// Runs the agent until `shutdown` completes. The kernel keeps the last ruleset after.
pub async fn run<N: Nft + Send + 'static>(config: AgentConfig, nft: N, shutdown: impl std::future::Future<Output = ()>) -> Result<(), AgentError> {
    tracing::info!(node = %config.node, listen = %config.listen, cni_socket = %config.cni_socket.display(), resync_s = config.resync.as_secs_f64(), min_sync_interval_ms = config.min_sync_interval.as_millis() as u64,
        api_grace_s = config.api_grace.as_secs_f64(), deny_action = ?config.render.deny_action, table = %config.render.table, nft = %nft.describe(), "palisade agent starting");
    let client = client(config.kubeconfig.as_deref()).await?;
    let shared = Arc::new(Shared::new(Metrics::default(), config.api_grace));
    let listener = tokio::net::TcpListener::bind(config.listen).await.map_err(|source| AgentError::Listen { address: config.listen, source })?;
    let http = tokio::spawn(crate::http::serve(listener, shared.clone()));
    let socket = crate::cni_socket::bind(&config.cni_socket).map_err(|source| AgentError::Socket { path: config.cni_socket.clone(), source })?;
    let cni = tokio::spawn(crate::cni_socket::serve(socket, config.cni_socket.clone(), shared.clone()));
    let cluster_policies = crate::cluster_policy_object::served(&client).await;
    shared.lock().kinds = crate::watch::all_kinds(cluster_policies);
    let watches = crate::watch::start(&client, &shared, cluster_policies);
    let events = tokio::spawn(publish_events(client.clone(), shared.clone(), config.node.clone()));
    let reconciler = Reconciler::resuming(config.node.clone(), nft, config.render.clone(), config.state_file.clone()).with_resync(config.resync);
    let sync = {
        let shared = shared.clone();
        let (min_interval, resync) = (config.min_sync_interval, config.resync);
        std::thread::Builder::new().name("sync".into()).spawn(move || sync_loop(&shared, reconciler, min_interval, resync)).expect("spawn the sync thread")
    };
    shutdown.await;
    tracing::info!("stopping; the table stays in the kernel");
    shared.stop();
    for task in watches.into_iter().chain([http, events, cni]) {
        task.abort();
    }
    let _ = tokio::task::spawn_blocking(move || sync.join()).await;
    Ok(())
}

/// Syncs in a row that may go without waiting out the minimum interval (kube-proxy's
/// `burstSyncs`).
const SYNC_BURST: u32 = 2;

/// The sync thread: waits for a change (or the resync period), then reconciles.
fn sync_loop<N: Nft>(shared: &Shared, mut reconciler: Reconciler<N>, min_interval: Duration, resync: Duration) {
    let all = shared.lock().kinds.clone();
    let mut synced_version: Option<u64> = None;
    let mut last_sync: Option<Instant> = None;
    let mut pacer = crate::pacing::Pacer::new(min_interval, SYNC_BURST);
    // The node routes last installed (None: not yet, or the last attempt failed).
    let mut routes: Option<Vec<palisade_net::NodeRoute>> = None;
    loop {
        let mut inner = shared.lock();
        loop {
            if inner.stopping {
                return;
            }
            let complete = all.is_subset(&inner.listed);
            let changed = Some(inner.state.version()) != synced_version;
            let resync_due = last_sync.is_some_and(|t| t.elapsed() >= resync);
            if complete && (changed || resync_due) {
                break;
            }
            inner = shared.wait(inner, Duration::from_millis(250));
        }
        drop(inner);
        // A stream of changes is synced at most once per interval: what arrives meanwhile
        // waits here and goes together.
        let delay = pacer.delay(Instant::now());
        if !delay.is_zero() {
            std::thread::sleep(delay);
        }
        pacer.take(Instant::now());
        // Rendered under the lock, from the state itself (no copy of the cluster: a few
        // milliseconds); the kernel is programmed after the lock is released. With
        // ClusterNetworkPolicies a render can take far longer (their tier maps grow with
        // the peers' addresses), and the watches and HTTP handlers must not wait for it:
        // then the render works on a copy, outside the lock.
        let started = Instant::now();
        let mut inner = shared.lock();
        let (version, pending_since, wanted_routes, observed) = (inner.state.version(), inner.pending_since.take(), inner.state.node_routes(reconciler.node()), inner.observed.digest());
        let cluster = inner.state.cluster();
        let counts = (cluster.endpoints.len(), cluster.policies.len());
        let rendered = if cluster.cluster_policies.is_empty() {
            let rendered = reconciler.render(cluster);
            drop(inner);
            rendered
        } else {
            let copy = cluster.clone();
            drop(inner);
            reconciler.render(&copy)
        };
        let rendered = match rendered {
            Ok(rendered) => rendered,
            Err(error) => {
                // Nothing reaches the kernel: the node keeps enforcing its last table, and
                // says why (readiness, metric, an Event on the Node) until a change makes
                // the table fit again.
                shared.metrics.apply_errors.get_or_create(&ReasonLabel { reason: error.reason().to_string() }).inc();
                shared.lock().last_apply_error = Some(error.to_string());
                let reason = match error {
                    palisade_nft::RenderError::OverBudget { .. } => "TableOverBudget",
                    _ => "TableNotRendered",
                };
                shared.warn_once(Report {
                    kind: "Node",
                    namespace: String::new(),
                    name: reconciler.node().to_string(),
                    reason,
                    note: format!("{error}; this node keeps enforcing its previous table"),
                });
                last_sync = Some(Instant::now());
                synced_version = Some(version);
                continue;
            }
        };
        let queued_ms = pending_since.map(|since| started.saturating_duration_since(since).as_secs_f64() * 1000.0);
        if routes.as_ref() != Some(&wanted_routes) {
            routes = sync_routes(&wanted_routes);
        }
        let result = reconciler.apply(rendered);
        let finished = Instant::now();
        last_sync = Some(finished);
        synced_version = Some(version);
        let metrics = &shared.metrics;
        metrics.sync_duration.observe((finished - started).as_secs_f64());
        match result {
            Ok(report) => {
                // Until the kernel accepted the change (recording it for a restart comes after).
                let event_to_kernel = pending_since.map(|since| report.applied_at.saturating_duration_since(since));
                if let Some(latency) = event_to_kernel {
                    metrics.event_to_kernel.observe(latency.as_secs_f64());
                }
                metrics.last_successful_sync.set(SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or_default());
                metrics.rules.set(report.rules as i64);
                metrics.set_elements.set(report.elements as i64);
                let mut inner = shared.lock();
                if !inner.first_sync_done {
                    tracing::info!(%report, pods = counts.0, policies = counts.1, "first full sync");
                }
                inner.first_sync_done = true;
                inner.last_apply_error = None;
                inner.enforced = Some((version, observed));
                drop(inner);
                shared.synced.send_replace(version);
                // The change is in force and published; now delete what it replaced.
                reconciler.finish();
                let latency_ms = event_to_kernel.map(|latency| latency.as_secs_f64() * 1000.0);
                tracing::debug!(event_to_kernel_ms = ?latency_ms, ?queued_ms, sync_ms = (finished - started).as_secs_f64() * 1000.0, %report, "synced");
            }
            Err(error) => {
                metrics.apply_errors.get_or_create(&ReasonLabel { reason: error.reason().to_string() }).inc();
                let mut inner = shared.lock();
                inner.last_apply_error = Some(error.to_string());
                drop(inner);
                if let palisade_nft::ApplyError::Rejected { at: Some(culprit), .. } = &error
                    && let Some((namespace, name)) = culprit.policy.as_deref().and_then(|p| p.split_once('/'))
                {
                    shared.report(Report {
                        kind: "NetworkPolicy",
                        namespace: namespace.to_string(),
                        name: name.to_string(),
                        reason: "RulesetRejected",
                        note: format!("the kernel refused the ruleset at {culprit} ({error}); the node keeps enforcing its previous ruleset"),
                    });
                }
            }
        }
    }
}

/// Installs the routes to the other nodes' pods; `None` if that failed (retried next sync).
fn sync_routes(wanted: &[palisade_net::NodeRoute]) -> Option<Vec<palisade_net::NodeRoute>> {
    match palisade_net::sync_node_routes(wanted) {
        Ok(changes) => {
            for route in &changes.added {
                tracing::info!(%route, "route to another node's pods added");
            }
            for route in &changes.removed {
                tracing::info!(%route, "route to another node's pods removed");
            }
            for route in &changes.off_link {
                tracing::warn!(%route, "the other node is on no subnet of this node: no route installed (host-gw needs nodes on one subnet); its pods are reached through the default route, if at all");
            }
            Some(wanted.to_vec())
        }
        Err(error) => {
            tracing::error!(%error, "could not install the routes to other nodes' pods; retrying at the next sync");
            None
        }
    }
}

/// Publishes the reports as Events (events.k8s.io/v1) on their objects (policies, or this
/// Node for a table it cannot build).
async fn publish_events(client: kube::Client, shared: Arc<Shared>, node: String) {
    let recorder = Recorder::new(client, Reporter { controller: "palisade-agent".into(), instance: Some(node.clone()) });
    loop {
        shared.reports_ready.notified().await;
        for report in shared.take_reports() {
            let api_version = match report.kind {
                "ClusterNetworkPolicy" => "policy.networking.k8s.io/v1beta1",
                "Node" => "v1",
                _ => "networking.k8s.io/v1",
            };
            let reference = k8s_openapi::api::core::v1::ObjectReference {
                api_version: Some(api_version.into()),
                kind: Some(report.kind.into()),
                namespace: (!report.namespace.is_empty()).then(|| report.namespace.clone()),
                name: Some(report.name.clone()),
                ..Default::default()
            };
            let event = Event { type_: EventType::Warning, reason: report.reason.into(), note: Some(format!("{} (node {node})", report.note)), action: "Enforce".into(), secondary: None };
            if let Err(error) = recorder.publish(&event, &reference).await {
                tracing::warn!(policy = %format!("{}/{}", report.namespace, report.name), %error, "could not publish an Event");
            }
        }
    }
}
