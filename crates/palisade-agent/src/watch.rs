//! The agent's source of cluster state: one kube-rs watcher per kind (Namespaces, Pods,
//! NetworkPolicies, Nodes, and ClusterNetworkPolicies where the API serves them), each event applied to the shared [`ClusterState`] at once and
//! the sync loop woken. A watch's initial list (and every re-list after an expired version)
//! replaces that kind wholesale, so deletions missed while not watching are noticed.

use std::collections::HashSet;
use std::fmt::Debug;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{ListParams, WatchParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;

use crate::cluster_policy_object::ClusterNetworkPolicyObject;
use crate::shared::{Kind, Shared};
use crate::state::ClusterState;

/// How one kind's objects enter the state.
trait Watched: Resource + Clone + Debug + DeserializeOwned + Send + Sync + 'static {
    const KIND: Kind;
    /// Applies the object; a refusal (invalid policy) is reported by the caller.
    fn apply(&self, state: &mut ClusterState) -> Option<crate::state::Refused>;
    fn delete(&self, state: &mut ClusterState);
    /// What the node enforces differently from what the object says (reported as Events),
    /// once `apply` has taken it into `state`.
    fn warnings(&self, _state: &ClusterState) -> Vec<crate::shared::Report> {
        Vec::new()
    }
    /// Keeps only the objects of this kind whose keys a (re-)list returned.
    fn retain(listed: &HashSet<(String, String)>, state: &mut ClusterState);
}

/// `(namespace, name)`; cluster-scoped objects have an empty namespace.
fn key_of<K: Resource>(object: &K) -> (String, String) {
    (object.meta().namespace.clone().unwrap_or_default(), object.meta().name.clone().unwrap_or_default())
}

fn names(listed: &HashSet<(String, String)>) -> HashSet<String> {
    listed.iter().map(|(_, name)| name.clone()).collect()
}

impl Watched for Namespace {
    const KIND: Kind = Kind::Namespaces;
    fn apply(&self, state: &mut ClusterState) -> Option<crate::state::Refused> {
        state.apply_namespace(self);
        None
    }
    fn delete(&self, state: &mut ClusterState) {
        state.delete_namespace(&self.name_any());
    }
    fn retain(listed: &HashSet<(String, String)>, state: &mut ClusterState) {
        state.retain_namespaces(&names(listed));
    }
}

impl Watched for Pod {
    const KIND: Kind = Kind::Pods;
    fn apply(&self, state: &mut ClusterState) -> Option<crate::state::Refused> {
        state.apply_pod(self);
        None
    }
    fn delete(&self, state: &mut ClusterState) {
        state.forget_pod(&self.namespace().unwrap_or_default(), &self.name_any());
    }
    fn retain(listed: &HashSet<(String, String)>, state: &mut ClusterState) {
        state.retain_pods(listed);
    }
}

impl Watched for NetworkPolicy {
    const KIND: Kind = Kind::NetworkPolicies;
    fn apply(&self, state: &mut ClusterState) -> Option<crate::state::Refused> {
        state.apply_policy(self).err()
    }
    fn delete(&self, state: &mut ClusterState) {
        state.delete_policy(&self.namespace().unwrap_or_default(), &self.name_any());
    }
    fn retain(listed: &HashSet<(String, String)>, state: &mut ClusterState) {
        state.retain_policies(listed);
    }
}

impl Watched for Node {
    const KIND: Kind = Kind::Nodes;
    fn apply(&self, state: &mut ClusterState) -> Option<crate::state::Refused> {
        state.apply_node(self);
        None
    }
    fn delete(&self, state: &mut ClusterState) {
        state.delete_node(&self.name_any());
    }
    fn retain(listed: &HashSet<(String, String)>, state: &mut ClusterState) {
        state.retain_nodes(&names(listed));
    }
}

impl Watched for ClusterNetworkPolicyObject {
    const KIND: Kind = Kind::ClusterNetworkPolicies;
    fn apply(&self, state: &mut ClusterState) -> Option<crate::state::Refused> {
        state.apply_cluster_policy(self).err()
    }
    fn warnings(&self, state: &ClusterState) -> Vec<crate::shared::Report> {
        // The policy as `apply` converted it (none if it was refused).
        let name = self.name_any();
        let Some(policy) = state.cluster().cluster_policies.iter().find(|p| p.name == name) else { return Vec::new() };
        palisade_nft::unenforceable_in(policy)
            .into_iter()
            .map(|found| crate::shared::Report {
                kind: "ClusterNetworkPolicy",
                namespace: String::new(),
                name: found.policy.clone(),
                reason: "DomainNamesNotEnforced",
                note: format!("{}: domainNames peers are not enforced by Palisade yet: the rule accepts no traffic to those names (it fails closed); use networks with the addresses", found.field),
            })
            .collect()
    }
    fn delete(&self, state: &mut ClusterState) {
        state.delete_cluster_policy(&self.name_any());
    }
    fn retain(listed: &HashSet<(String, String)>, state: &mut ClusterState) {
        state.retain_cluster_policies(&names(listed));
    }
}

/// Whether a watch of `K` works now: a one-item list, then a watch from its version that
/// the server accepts (and that ends a second later). The same permissions and path as the
/// watcher's own requests.
async fn watch_works<K>(api: &Api<K>) -> Result<(), kube::Error>
where
    K: Watched,
    K::DynamicType: Default,
{
    let list = api.list(&ListParams::default().limit(1)).await?;
    let version = list.metadata.resource_version.unwrap_or_default();
    let _stream = api.watch(&WatchParams::default().timeout(1), &version).await?;
    Ok(())
}

/// After a watch error: kube's watcher retries on its own but says nothing when a retry
/// succeeds without news (a quiet cluster), so a probe finds out when the watch works again
/// and readiness comes back.
fn probe_until_healthy<K>(api: Api<K>, shared: Arc<Shared>, probing: Arc<AtomicBool>)
where
    K: Watched,
    K::DynamicType: Default,
{
    if probing.swap(true, Ordering::SeqCst) {
        return;
    }
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            if watch_works(&api).await.is_ok() {
                shared.watch_ok(K::KIND, false);
                probing.store(false, Ordering::SeqCst);
                return;
            }
        }
    });
}

/// Follows one kind until the stream ends (it does not: errors are retried with back-off).
async fn follow<K>(api: Api<K>, stream: impl Stream<Item = Result<Event<K>, watcher::Error>>, shared: Arc<Shared>)
where
    K: Watched,
    K::DynamicType: Default,
{
    let probing = Arc::new(AtomicBool::new(false));
    let mut stream = std::pin::pin!(stream);
    // The keys of a list in progress (objects are applied as they come; only their keys
    // are kept, to drop the rest at the end).
    let mut listing: Option<HashSet<(String, String)>> = None;
    while let Some(item) = stream.next().await {
        let event = match item {
            Ok(event) => event,
            Err(error) => {
                shared.watch_failed(K::KIND, &error.to_string());
                probe_until_healthy(api.clone(), shared.clone(), probing.clone());
                continue;
            }
        };
        let mut refused = Vec::new();
        let mut warnings = Vec::new();
        let mut listed_now = false;
        // `Init` only says a (re-)list starts, also right before it fails again: not a sign
        // that the watch works.
        let healthy = !matches!(event, Event::Init);
        let kind = K::KIND.name();
        shared.update(|state, observed| match event {
            Event::Init => listing = Some(HashSet::new()),
            Event::InitApply(object) => {
                refused.extend(object.apply(state));
                warnings.extend(object.warnings(state));
                let (namespace, name) = key_of(&object);
                observed.apply(kind, &namespace, &name, object.meta().resource_version.as_deref().unwrap_or_default());
                listing.get_or_insert_with(HashSet::new).insert((namespace, name));
            }
            Event::InitDone => {
                let listed = listing.take().unwrap_or_default();
                K::retain(&listed, state);
                observed.retain(kind, &listed);
                listed_now = true;
            }
            Event::Apply(object) => {
                refused.extend(object.apply(state));
                warnings.extend(object.warnings(state));
                let (namespace, name) = key_of(&object);
                observed.apply(kind, &namespace, &name, object.meta().resource_version.as_deref().unwrap_or_default());
            }
            Event::Delete(object) => {
                object.delete(state);
                let (namespace, name) = key_of(&object);
                observed.delete(kind, &namespace, &name);
            }
        });
        if healthy {
            shared.watch_ok(K::KIND, listed_now);
        }
        for refusal in refused {
            shared.refused(refusal);
        }
        for warning in warnings {
            shared.warn_once(warning);
        }
    }
}

/// Retries of a failed watch: 0.5 s doubling to at most 5 s. kube's default backoff grows to
/// 30 s, so after an API outage of half a minute the watch could stay silent (changes not
/// followed) for up to 30 s more once the API was back.
struct WatchBackoff {
    next: Duration,
}

const RETRY_FIRST: Duration = Duration::from_millis(500);
const RETRY_MAX: Duration = Duration::from_secs(5);

impl Iterator for WatchBackoff {
    type Item = Duration;
    fn next(&mut self) -> Option<Duration> {
        let delay = self.next;
        self.next = (self.next * 2).min(RETRY_MAX);
        Some(delay)
    }
}

impl kube::runtime::utils::Backoff for WatchBackoff {
    fn reset(&mut self) {
        self.next = RETRY_FIRST;
    }
}

/// Watches every object of `K` (all namespaces).
fn spawn<K>(api: Api<K>, shared: &Arc<Shared>) -> tokio::task::JoinHandle<()>
where
    K: Watched,
    K::DynamicType: Default,
{
    let stream = watcher::watcher(api.clone(), watcher::Config::default().any_semantic().page_size(100)).backoff(WatchBackoff { next: RETRY_FIRST });
    tokio::spawn(follow(api, stream, shared.clone()))
}

/// Starts the watches on the current runtime (ClusterNetworkPolicies when served).
pub fn start(client: &Client, shared: &Arc<Shared>, cluster_policies: bool) -> Vec<tokio::task::JoinHandle<()>> {
    let mut watches = vec![
        spawn(Api::<Namespace>::all(client.clone()), shared),
        spawn(Api::<Pod>::all(client.clone()), shared),
        spawn(Api::<NetworkPolicy>::all(client.clone()), shared),
        spawn(Api::<Node>::all(client.clone()), shared),
    ];
    if cluster_policies {
        watches.push(spawn(Api::<ClusterNetworkPolicyObject>::all(client.clone()), shared));
    }
    watches
}

/// The set of kinds a full state needs before the first sync.
pub fn all_kinds(cluster_policies: bool) -> HashSet<Kind> {
    let mut kinds: HashSet<Kind> = [Kind::Namespaces, Kind::Pods, Kind::NetworkPolicies, Kind::Nodes].into();
    if cluster_policies {
        kinds.insert(Kind::ClusterNetworkPolicies);
    }
    kinds
}
