//! One node's reconcile: select the endpoints that run here, render, sync the dataplane.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use palisade_model::Cluster;
use palisade_nft::{ApplyError, ApplyReport, ClassIds, Dataplane, Nft, NodeState, RenderCache, RenderError, RenderOptions, try_render_cached};

/// How often a full replace repairs the table even without changes (as Calico's and
/// kube-proxy's periodic resyncs do).
pub const DEFAULT_RESYNC: Duration = Duration::from_secs(90);

/// The endpoints scheduled on `node`: the pods whose rules this node enforces.
pub fn local_endpoints(cluster: &Cluster, node: &str) -> Vec<usize> {
    (0..cluster.endpoints.len()).filter(|&i| cluster.endpoints[i].node.as_deref() == Some(node)).collect()
}

/// A node's ruleset, rendered and not yet applied.
pub struct Rendered {
    pub ruleset: palisade_nft::Ruleset,
    /// The remote-address class ids the ruleset uses (kept for the next render once the
    /// kernel took it).
    pub classes: ClassIds,
    pub local_pods: usize,
    pub render_time: Duration,
}

/// What one reconcile did.
#[derive(Debug)]
pub struct ReconcileReport {
    pub node: String,
    pub local_pods: usize,
    pub render_time: Duration,
    /// Rules and set/map elements in the table the kernel now holds.
    pub rules: usize,
    pub elements: usize,
    pub apply: ApplyReport,
    /// When the kernel accepted the last transaction.
    pub applied_at: Instant,
    /// Recording the applied state for a restart (after the kernel took it).
    pub record_time: Duration,
}

impl std::fmt::Display for ReconcileReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {} local pods, rendered in {:.1} ms, {}, recorded in {:.1} ms",
            self.node,
            self.local_pods,
            self.render_time.as_secs_f64() * 1000.0,
            self.apply,
            self.record_time.as_secs_f64() * 1000.0
        )
    }
}

/// Why a reconcile left the kernel as it was.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Render(#[from] RenderError),
    #[error(transparent)]
    Apply(#[from] ApplyError),
}

impl SyncError {
    /// A short label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            SyncError::Render(error) => error.reason(),
            SyncError::Apply(error) => error.reason(),
        }
    }
}

/// The agent of one node.
pub struct Reconciler<N: Nft> {
    node: String,
    options: RenderOptions,
    dataplane: Dataplane<N>,
    resync_every: Duration,
    /// Applies the kernel refused, by [`ApplyError::reason`]: the agent's metrics export them.
    apply_errors: BTreeMap<&'static str, u64>,
    /// Where what was applied is recorded, for a restarted agent to resume from.
    state_file: Option<std::path::PathBuf>,
    /// Writes that record when it changes (objects come or go).
    recorder: palisade_nft::state_file::Recorder,
    /// The class ids of the table the kernel holds: the next render keeps them where the
    /// addresses stay, so an update changes only what moved.
    classes: Option<ClassIds>,
    /// What the last renders learnt (the peers each pod profile matched, the last table's
    /// element lists): a render asks only about the pods and peers that changed.
    cache: RenderCache,
}

impl<N: Nft> Reconciler<N> {
    pub fn new(node: impl Into<String>, nft: N, options: RenderOptions) -> Self {
        Self::with_dataplane(node.into(), options, Dataplane::new(nft), None)
    }

    fn with_dataplane(node: String, options: RenderOptions, dataplane: Dataplane<N>, state_file: Option<std::path::PathBuf>) -> Self {
        Self { node, options, dataplane, resync_every: DEFAULT_RESYNC, apply_errors: BTreeMap::new(), state_file, recorder: Default::default(), classes: None, cache: RenderCache::default() }
    }

    /// Records every applied state in `path`, and resumes from the one there: a restarted
    /// agent's first sync is then a blue/green replace next to the table it finds (no
    /// allowed connection is rejected during it), not a delete-and-create.
    pub fn resuming(node: impl Into<String>, nft: N, options: RenderOptions, path: std::path::PathBuf) -> Self {
        let dataplane = match palisade_nft::state_file::load(&path) {
            Some((ruleset, naming, cleanup)) => Dataplane::resume(nft, ruleset, naming, cleanup),
            None => Dataplane::new(nft),
        };
        // The agent publishes a change once it is in force and deletes what it replaced
        // after (`finish`).
        Self::with_dataplane(node.into(), options, dataplane.defer_cleanup(true), Some(path))
    }

    pub fn with_resync(mut self, every: Duration) -> Self {
        self.resync_every = every;
        self
    }

    pub fn node(&self) -> &str {
        &self.node
    }

    /// How many applies failed, by reason.
    pub fn apply_errors(&self) -> &BTreeMap<&'static str, u64> {
        &self.apply_errors
    }

    /// Records what the kernel holds (and the deletions still to send) for a restart.
    fn record(&mut self) {
        if let (Some(path), Some((applied, naming))) = (&self.state_file, self.dataplane.state())
            && let Err(error) = self.recorder.save(path, applied, naming, self.dataplane.pending_cleanup())
        {
            // The kernel has the ruleset; only a restart's first replace is less smooth.
            tracing::warn!(path = %path.display(), %error, "could not record the applied state");
        }
    }

    /// Deletes what the last update left unreferenced (see `Dataplane::defer_cleanup`);
    /// a refusal makes the next sync a full replace.
    pub fn finish(&mut self) {
        if self.dataplane.pending_cleanup().is_empty() {
            return;
        }
        if self.dataplane.finish().is_err() {
            *self.apply_errors.entry("cleanup").or_default() += 1;
        }
        self.record();
    }

    /// Brings the kernel to what `cluster` asks of this node. On error the kernel keeps the
    /// previous ruleset (every apply is one transaction) and the next reconcile retries.
    pub fn reconcile(&mut self, cluster: &Cluster) -> Result<ReconcileReport, SyncError> {
        let rendered = self.render(cluster)?;
        Ok(self.apply(rendered)?)
    }

    /// What `cluster` asks of this node (pure; the agent renders under its state lock, so
    /// that no copy of the cluster is needed, and applies after releasing it).
    /// A table that cannot be rendered (more classes than the mark bits hold) leaves the
    /// kernel as it is: the caller reports it and the node keeps its last table.
    pub fn render(&mut self, cluster: &Cluster) -> Result<Rendered, RenderError> {
        let start = Instant::now();
        let local = local_endpoints(cluster, &self.node);
        let local_pods = local.len();
        let table = try_render_cached(&NodeState { cluster, local, options: self.options.clone() }, self.classes.as_ref(), &mut self.cache).inspect_err(|error| {
            *self.apply_errors.entry(error.reason()).or_default() += 1;
            tracing::error!(node = %self.node, %error, "this node's table cannot be rendered; the previous one stays in force");
        })?;
        Ok(Rendered { ruleset: table.ruleset, classes: table.classes, local_pods, render_time: start.elapsed() })
    }

    /// Brings the kernel to a rendered ruleset.
    pub fn apply(&mut self, rendered: Rendered) -> Result<ReconcileReport, ApplyError> {
        let Rendered { ruleset, classes, local_pods, render_time } = rendered;
        let (rules, elements) = (ruleset.rule_count(), ruleset.element_count());
        let apply = self.dataplane.sync_owned(ruleset, Instant::now(), self.resync_every).inspect_err(|error| {
            *self.apply_errors.entry(error.reason()).or_default() += 1;
            tracing::error!(node = %self.node, %error, "the kernel refused this node's ruleset; the previous one stays in force");
        })?;
        let applied_at = Instant::now();
        self.classes = Some(classes);
        tracing::debug!(node = %self.node, %apply, "reconciled");
        self.record();
        let record_time = applied_at.elapsed();
        Ok(ReconcileReport { node: self.node.clone(), local_pods, render_time, rules, elements, apply, applied_at, record_time })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::rc::Rc;

    #[derive(Clone, Default)]
    struct Recorder(Rc<RefCell<Vec<String>>>);

    impl Nft for Recorder {
        fn apply(&self, document: &str) -> Result<(), ApplyError> {
            self.0.borrow_mut().push(document.to_string());
            Ok(())
        }
    }

    fn cluster(text: &str) -> Cluster {
        palisade_model::load_text(text, &palisade_model::LoadOptions::default()).expect("valid").cluster
    }

    const PODS: &str = "
apiVersion: v1
kind: Pod
metadata: {name: a, namespace: default, labels: {app: a}}
spec: {nodeName: node-1, containers: [{name: c, image: x}]}
status: {podIP: 10.244.1.2, podIPs: [{ip: 10.244.1.2}]}
---
apiVersion: v1
kind: Pod
metadata: {name: b, namespace: default, labels: {app: b}}
spec: {nodeName: node-2, containers: [{name: c, image: x}]}
status: {podIP: 10.244.2.2, podIPs: [{ip: 10.244.2.2}]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny, namespace: default}
spec: {podSelector: {}}
";

    /// Refuses every transaction, as nft does a table the kernel will not take.
    struct Refuses;

    impl Nft for Refuses {
        fn apply(&self, _: &str) -> Result<(), ApplyError> {
            Err(ApplyError::rejected("internal:0:0-0: Error: Could not process rule: File exists"))
        }
    }

    #[test]
    fn refused_applies_are_counted_by_reason() {
        let mut agent = Reconciler::new("node-1", Refuses, RenderOptions::default());
        assert!(agent.reconcile(&cluster(PODS)).is_err());
        assert!(agent.reconcile(&cluster(PODS)).is_err());
        assert_eq!(agent.apply_errors().get("object_exists"), Some(&2));
    }

    #[test]
    fn a_table_over_budget_is_not_sent_and_the_last_one_stays() {
        let recorder = Recorder::default();
        let first = cluster(PODS);
        let elements = Reconciler::new("node-1", Recorder::default(), RenderOptions::default()).reconcile(&first).unwrap().elements;
        let options = RenderOptions { max_elements: Some(elements), ..RenderOptions::default() };
        let mut agent = Reconciler::new("node-1", recorder.clone(), options);
        agent.reconcile(&first).expect("a table within its budget is applied");
        let sent = recorder.0.borrow().len();
        // A second local pod: its dispatch elements take the table over the budget.
        let second = PODS.replace("name: b, namespace: default, labels: {app: b}}\nspec: {nodeName: node-2", "name: b, namespace: default, labels: {app: b}}\nspec: {nodeName: node-1");
        let error = agent.reconcile(&cluster(&second)).unwrap_err();
        assert!(matches!(error, SyncError::Render(RenderError::OverBudget { budget, .. }) if budget == elements), "{error}");
        assert!(error.to_string().contains("--max-table-elements"), "{error}");
        assert_eq!(recorder.0.borrow().len(), sent, "nothing reaches the kernel");
        assert_eq!(agent.apply_errors().get("over_budget"), Some(&1));
    }

    #[test]
    fn only_the_nodes_own_pods_are_local() {
        let cluster = cluster(PODS);
        assert_eq!(local_endpoints(&cluster, "node-1").len(), 1);
        assert_eq!(cluster.endpoints[local_endpoints(&cluster, "node-2")[0]].name, "b");
        assert!(local_endpoints(&cluster, "node-3").is_empty());
    }

    #[test]
    fn the_first_reconcile_replaces_then_updates_are_incremental() {
        let recorder = Recorder::default();
        let mut agent = Reconciler::new("node-1", recorder.clone(), RenderOptions::default());
        let first = agent.reconcile(&cluster(PODS)).unwrap();
        assert_eq!(first.local_pods, 1);
        assert_eq!(first.apply.kind, palisade_nft::ApplyKind::Full);
        // Pod a's address is in the ingress dispatch map of node-1's table, b's is not.
        let documents = recorder.0.borrow().join("\n");
        assert!(documents.contains("10.244.1.2") && !documents.contains("\"10.244.2.2\""), "{documents}");
        let second = agent.reconcile(&cluster(PODS)).unwrap();
        assert_eq!(second.apply.kind, palisade_nft::ApplyKind::Incremental);
    }
}
