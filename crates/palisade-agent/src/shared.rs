//! What the watches, the sync loop and the health endpoints share: the cluster state, which
//! kinds have been listed, when the oldest unsynced change arrived, the API's health, and
//! the reports (refused policies, refused rulesets) waiting to become Kubernetes Events.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::metrics::{KindLabel, Metrics};
use crate::observed::{Digest, Observed};
use crate::state::{ClusterState, Refused};

#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Namespaces,
    Pods,
    NetworkPolicies,
    Nodes,
    ClusterNetworkPolicies,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Namespaces => "namespaces",
            Kind::Pods => "pods",
            Kind::NetworkPolicies => "networkpolicies",
            Kind::Nodes => "nodes",
            Kind::ClusterNetworkPolicies => "clusternetworkpolicies",
        }
    }
}

/// Something to report as an Event on a (Cluster)NetworkPolicy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// `NetworkPolicy`, `ClusterNetworkPolicy` or `Node` (cluster-scoped: no namespace).
    pub kind: &'static str,
    pub namespace: String,
    pub name: String,
    /// `PolicyRejected` (the agent cannot read it), `RulesetRejected` (the kernel refused
    /// the node's ruleset while it held this policy), `DomainNamesNotEnforced`, or on a
    /// Node `TableOverBudget` / `TableNotRendered`.
    pub reason: &'static str,
    pub note: String,
}

#[derive(Default)]
pub struct Inner {
    pub state: ClusterState,
    /// Kinds whose first list is complete.
    pub listed: HashSet<Kind>,
    /// When the oldest change not yet in the kernel arrived.
    pub pending_since: Option<Instant>,
    /// Per kind, since when its watch has been failing, and the last error.
    pub watch_failing: BTreeMap<Kind, (Instant, String)>,
    /// Whether the last sync was refused (and why).
    pub last_apply_error: Option<String>,
    pub first_sync_done: bool,
    /// Policies refused by conversion, by namespace/name (reported once per content).
    pub refused: BTreeMap<(String, String), String>,
    pub reports: Vec<Report>,
    /// Warnings reported (`warn_once`), by reason and object, with their note.
    pub warned: BTreeMap<(String, String), String>,
    pub stopping: bool,
    /// The kinds the first sync waits for (ClusterNetworkPolicies only when served).
    pub kinds: HashSet<Kind>,
    /// The object versions the watches delivered (updated with `state`, under one lock).
    pub observed: Observed,
    /// The state version and the digest of object versions of the last successful sync.
    pub enforced: Option<(u64, Digest)>,
}

/// What `/synced` answers: the digest of the object versions this node's kernel enforces
/// (`None` before the first sync), and whether changes are waiting to be synced.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SyncedStatus {
    pub enforced: Option<Digest>,
    pub pending: bool,
    #[serde(rename = "lastError")]
    pub last_error: Option<String>,
}

pub struct Shared {
    inner: Mutex<Inner>,
    /// Wakes the sync loop.
    wake: Condvar,
    /// Wakes the Event publisher.
    pub reports_ready: tokio::sync::Notify,
    pub metrics: Metrics,
    /// The state version the kernel enforces (after each successful sync).
    pub synced: tokio::sync::watch::Sender<u64>,
    /// After this long without a working watch, readiness goes false (enforcement goes on).
    pub api_grace: Duration,
}

impl Shared {
    pub fn new(metrics: Metrics, api_grace: Duration) -> Self {
        Self { inner: Mutex::default(), wake: Condvar::new(), reports_ready: tokio::sync::Notify::new(), metrics, synced: tokio::sync::watch::Sender::new(0), api_grace }
    }

    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Applies a watch event to the state (and the versions seen); wakes the sync loop if
    /// it changed anything.
    pub fn update(&self, change: impl FnOnce(&mut ClusterState, &mut Observed)) {
        let mut inner = self.lock();
        let before = inner.state.version();
        let inner = &mut *inner;
        change(&mut inner.state, &mut inner.observed);
        if inner.state.version() != before {
            inner.pending_since.get_or_insert_with(Instant::now);
            for (kind, count) in inner.state.counts() {
                self.metrics.objects_watched.get_or_create(&KindLabel { kind: kind.to_string() }).set(count as i64);
            }
            self.wake.notify_all();
        }
    }

    pub fn watch_ok(&self, kind: Kind, listed_now: bool) {
        let mut inner = self.lock();
        if let Some((_, error)) = inner.watch_failing.remove(&kind) {
            tracing::info!(kind = kind.name(), previous_error = %error, "watch recovered");
        }
        if listed_now && inner.listed.insert(kind) {
            tracing::info!(kind = kind.name(), "first list complete");
            self.wake.notify_all();
        }
    }

    pub fn watch_failed(&self, kind: Kind, error: &str) {
        self.metrics.watch_errors.inc();
        let mut inner = self.lock();
        let first = !inner.watch_failing.contains_key(&kind);
        inner.watch_failing.entry(kind).or_insert_with(|| (Instant::now(), String::new())).1 = error.to_string();
        if first {
            tracing::warn!(kind = kind.name(), %error, "watch failed; retrying with back-off, the last state stays enforced");
        }
    }

    /// A policy the agent cannot take: reported once for each distinct reason.
    pub fn refused(&self, refusal: Refused) {
        let mut inner = self.lock();
        let key = (refusal.namespace.clone(), refusal.name.clone());
        if inner.refused.get(&key) == Some(&refusal.reason) {
            return;
        }
        tracing::error!(kind = refusal.kind, policy = %format!("{}/{}", key.0, key.1), reason = %refusal.reason, "policy refused; it is not enforced");
        inner.refused.insert(key, refusal.reason.clone());
        self.metrics.policies_refused.set(inner.refused.len() as i64);
        inner.reports.push(Report { kind: refusal.kind, namespace: refusal.namespace, name: refusal.name, reason: "PolicyRejected", note: refusal.reason });
        drop(inner);
        self.reports_ready.notify_one();
    }

    /// A report made once per object and content (not on every event of an unchanged
    /// object), logged as a warning.
    pub fn warn_once(&self, report: Report) {
        let mut inner = self.lock();
        let key = (format!("{}:{}", report.reason, report.namespace), report.name.clone());
        if inner.warned.get(&key) == Some(&report.note) {
            return;
        }
        tracing::warn!(kind = report.kind, name = %report.name, reason = report.reason, note = %report.note, "not enforced as written");
        inner.warned.insert(key, report.note.clone());
        inner.reports.push(report);
        drop(inner);
        self.reports_ready.notify_one();
    }

    pub fn report(&self, report: Report) {
        self.lock().reports.push(report);
        self.reports_ready.notify_one();
    }

    pub fn take_reports(&self) -> Vec<Report> {
        std::mem::take(&mut self.lock().reports)
    }

    /// Waits until there is something to sync, `timeout` passes, or the agent stops.
    pub fn wait<'a>(&self, inner: MutexGuard<'a, Inner>, timeout: Duration) -> MutexGuard<'a, Inner> {
        self.wake.wait_timeout(inner, timeout).unwrap_or_else(|e| e.into_inner()).0
    }

    pub fn stop(&self) {
        self.lock().stopping = true;
        self.wake.notify_all();
    }

    /// The object versions the kernel enforces. Events that changed nothing the ruleset
    /// depends on (a status update, say) leave the state version alone: while the enforced
    /// version is the current one, everything observed so far is enforced.
    pub fn synced_status(&self) -> SyncedStatus {
        let inner = self.lock();
        let current = inner.state.version();
        let enforced = inner.enforced.map(|(version, digest)| if version == current { inner.observed.digest() } else { digest });
        let pending = inner.enforced.is_none_or(|(version, _)| version != current);
        SyncedStatus { enforced, pending, last_error: inner.last_apply_error.clone() }
    }

    /// `None` when ready; otherwise why not, in a sentence.
    pub fn not_ready(&self) -> Option<String> {
        let inner = self.lock();
        if let Some((kind, (since, error))) = inner.watch_failing.iter().find(|(_, (since, _))| since.elapsed() >= self.api_grace) {
            return Some(format!("the {} watch has failed for {} s ({error}); the last synced state stays enforced", kind.name(), since.elapsed().as_secs()));
        }
        if !inner.first_sync_done {
            let missing: Vec<&str> = inner.kinds.difference(&inner.listed).map(|k| k.name()).collect();
            return Some(if missing.is_empty() { "waiting for the first full sync".to_string() } else { format!("waiting for the first list of {}", missing.join(", ")) });
        }
        if let Some(error) = &inner.last_apply_error {
            return Some(format!("the last ruleset was not applied ({error}); the previous one stays enforced"));
        }
        None
    }
}
