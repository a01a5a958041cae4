//! kube-rs (the client Palisade's agent uses) against the server, unchanged: typed CRUD of
//! every served kind, reflectors that follow every change, bookmarks, a watch from an
//! expired version (410 Gone), and a server restart mid-watch after which the reflectors
//! re-list and hold every object. In process, no root.

use std::fmt::Debug;
use std::net::TcpListener;
use std::path::PathBuf;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::NamespaceResourceScope;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use palisade_apiserver::{Options, Running, start};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

struct Server {
    dir: tempfile::TempDir,
    port: u16,
    running: Option<Running>,
}

impl Server {
    fn start(history: Option<usize>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut server = Self { dir, port, running: None };
        server.serve(listener, history);
        server
    }

    fn serve(&mut self, listener: TcpListener, history: Option<usize>) {
        let running = start(Options {
            state_dir: self.dir.path().to_path_buf(),
            service_cidrs: vec!["10.96.0.0/16".parse().unwrap()],
            listeners: vec![listener],
            addresses: vec!["127.0.0.1".parse().unwrap()],
            kubelet: None,
            watch_history_bytes: history,
        })
        .unwrap();
        std::fs::write(self.kubeconfig(), running.kubeconfig("test")).unwrap();
        self.running = Some(running);
    }

    fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("kubeconfig")
    }

    /// Stops the server and starts it again on the same store and port.
    fn restart(&mut self, history: Option<usize>) {
        self.running.take().unwrap().stop();
        let listener = TcpListener::bind(("127.0.0.1", self.port)).unwrap();
        self.serve(listener, history);
    }

    async fn client(&self) -> Client {
        let kubeconfig = Kubeconfig::read_from(self.kubeconfig()).unwrap();
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await.unwrap();
        Client::try_from(config).unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(running) = self.running.take() {
            running.stop();
        }
    }
}

/// A reflector over every namespace, running until the test ends.
fn reflect<K>(client: &Client) -> Store<K>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone,
{
    let (reader, writer) = reflector::store();
    let stream = reflector::reflector(writer, watcher(Api::<K>::all(client.clone()), watcher::Config::default()).default_backoff());
    tokio::spawn(stream.applied_objects().for_each(|_| async {}));
    reader
}

/// Waits (at most 10 s) until, of the names `a` and `b` in namespace `t`, the reflector
/// holds exactly these (other objects, like the namespace's default ServiceAccount, do not
/// count).
async fn holds<K>(store: &Store<K>, names: &[&str]) -> Result<(), String>
where
    K: Resource + Clone + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone,
{
    let want: std::collections::BTreeSet<String> = names.iter().map(|n| n.to_string()).collect();
    let mut have = std::collections::BTreeSet::new();
    for _ in 0..200 {
        have = store.state().iter().filter(|o| o.namespace().as_deref() == Some("t")).map(|o| o.name_any()).filter(|n| n == "a" || n == "b").collect();
        if have == want {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(format!("{}: the reflector holds {have:?}, not {want:?}", K::kind(&Default::default())))
}

/// Creates, labels and deletes objects of one namespaced kind through typed kube-rs calls,
/// and checks that a reflector follows each step.
async fn round_trip<K>(client: &Client, body: Value) -> Result<(), String>
where
    K: Resource<Scope = NamespaceResourceScope> + Clone + DeserializeOwned + Serialize + Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone,
{
    let kind = K::kind(&Default::default()).to_string();
    let api: Api<K> = Api::namespaced(client.clone(), "t");
    let store = reflect::<K>(client);
    store.wait_until_ready().await.map_err(|e| format!("{kind}: {e}"))?;
    for name in ["a", "b"] {
        let mut object = body.clone();
        object["metadata"] = json!({"name": name});
        let object: K = serde_json::from_value(object).map_err(|e| format!("{kind}: {e}"))?;
        let created = api.create(&PostParams::default(), &object).await.map_err(|e| format!("{kind} create: {e}"))?;
        assert!(created.meta().uid.is_some() && created.meta().resource_version.is_some(), "{kind}: {created:?}");
    }
    holds(&store, &["a", "b"]).await?;
    let patch = json!({"metadata": {"labels": {"step": "two"}}});
    api.patch("a", &PatchParams::default(), &Patch::Merge(&patch)).await.map_err(|e| format!("{kind} patch: {e}"))?;
    for _ in 0..200 {
        if store.state().iter().any(|o| o.name_any() == "a" && o.labels().get("step").map(String::as_str) == Some("two")) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(store.state().iter().any(|o| o.name_any() == "a" && o.labels().get("step").map(String::as_str) == Some("two")), "{kind}: the label reached the reflector");
    let listed = api.list(&ListParams::default().labels("step=two")).await.map_err(|e| format!("{kind} list: {e}"))?;
    assert_eq!(listed.items.iter().map(|o| o.name_any()).collect::<Vec<_>>(), ["a"], "{kind}: label selector");
    api.delete("b", &DeleteParams::default()).await.map_err(|e| format!("{kind} delete: {e}"))?;
    holds(&store, &["a"]).await?;
    api.delete("a", &DeleteParams::default()).await.map_err(|e| format!("{kind} delete: {e}"))?;
    holds(&store, &[]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_clients_and_reflectors_for_every_served_kind() {
    use k8s_openapi::api::{apps, batch, core, networking};
    let server = Server::start(None);
    let client = server.client().await;
    let namespaces: Api<core::v1::Namespace> = Api::all(client.clone());
    namespaces.create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": "t"}})).unwrap()).await.unwrap();
    let template = json!({"metadata": {"labels": {"app": "x"}}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}});
    let selector = json!({"matchLabels": {"app": "x"}});
    let mut failures = Vec::new();
    let results = [
        round_trip::<core::v1::ConfigMap>(&client, json!({"data": {"k": "v"}})).await,
        round_trip::<core::v1::Secret>(&client, json!({"stringData": {"k": "v"}})).await,
        round_trip::<core::v1::ServiceAccount>(&client, json!({})).await,
        round_trip::<core::v1::Service>(&client, json!({"spec": {"selector": {"app": "x"}, "ports": [{"port": 80}]}})).await,
        round_trip::<core::v1::Endpoints>(&client, json!({"subsets": [{"addresses": [{"ip": "10.244.4.2"}], "ports": [{"port": 80}]}]})).await,
        round_trip::<core::v1::Pod>(&client, json!({"spec": {"containers": [{"name": "c", "image": "busybox"}]}})).await,
        round_trip::<core::v1::Event>(&client, json!({"involvedObject": {"kind": "Pod", "name": "p", "namespace": "t"}, "reason": "Test", "message": "m"})).await,
        round_trip::<apps::v1::Deployment>(&client, json!({"spec": {"selector": selector, "template": template}})).await,
        round_trip::<apps::v1::ReplicaSet>(&client, json!({"spec": {"selector": selector, "template": template}})).await,
        round_trip::<apps::v1::StatefulSet>(&client, json!({"spec": {"serviceName": "x", "selector": selector, "template": template}})).await,
        round_trip::<apps::v1::DaemonSet>(&client, json!({"spec": {"selector": selector, "template": template}})).await,
        round_trip::<batch::v1::Job>(&client, json!({"spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}}})).await,
        round_trip::<networking::v1::NetworkPolicy>(&client, json!({"spec": {"podSelector": {}, "ingress": [{"from": [{"ipBlock": {"cidr": "192.0.2.0/24"}}]}]}})).await,
    ];
    for result in results {
        if let Err(e) = result {
            failures.push(e);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // Cluster-scoped: the namespace's reflector sees it go, through Terminating.
    let store = reflect::<core::v1::Namespace>(&client);
    store.wait_until_ready().await.unwrap();
    assert!(store.state().iter().any(|n| n.name_any() == "t"));
    namespaces.delete("t", &DeleteParams::default()).await.unwrap();
    for _ in 0..200 {
        if !store.state().iter().any(|n| n.name_any() == "t") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!store.state().iter().any(|n| n.name_any() == "t"), "namespace t is gone from the reflector");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_status_objects_kube_rs_understands() {
    use k8s_openapi::api::{core::v1::ConfigMap, networking::v1::NetworkPolicy};
    let server = Server::start(None);
    let client = server.client().await;
    let policies: Api<NetworkPolicy> = Api::namespaced(client.clone(), "default");
    let bad: NetworkPolicy = serde_json::from_value(json!({"metadata": {"name": "bad"}, "spec": {"podSelector": {}, "ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0/8"}}]}]}})).unwrap();
    match policies.create(&PostParams::default(), &bad).await {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 422, "{status:?}");
            assert!(status.message.contains("spec.ingress[0].from[0].ipBlock.cidr"), "{status:?}");
        }
        other => panic!("an invalid policy was not refused: {other:?}"),
    }
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    match maps.get("missing").await {
        Err(kube::Error::Api(status)) => assert_eq!((status.code, status.reason.as_str()), (404, "NotFound"), "{status:?}"),
        other => panic!("{other:?}"),
    }
    let map: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "m"}, "data": {"k": "1"}})).unwrap();
    let created = maps.create(&PostParams::default(), &map).await.unwrap();
    maps.create(&PostParams::default(), &map).await.expect_err("a second create conflicts");
    // A replace with a stale resourceVersion is a 409 Conflict.
    let mut stale = created.clone();
    maps.patch("m", &PatchParams::default(), &Patch::Merge(json!({"data": {"k": "2"}}))).await.unwrap();
    stale.data = Some([("k".to_string(), "3".to_string())].into());
    match maps.replace("m", &PostParams::default(), &stale).await {
        Err(kube::Error::Api(status)) => assert_eq!((status.code, status.reason.as_str()), (409, "Conflict"), "{status:?}"),
        other => panic!("{other:?}"),
    }
    // Server-side apply through kube-rs (one field manager: conflicts between managers are
    // not tracked): applying again without a field removes it.
    let applied = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ssa"}, "data": {"owner": "one", "extra": "x"}});
    maps.patch("ssa", &PatchParams::apply("one"), &Patch::Apply(&applied)).await.unwrap();
    let other = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ssa"}, "data": {"owner": "two"}});
    maps.patch("ssa", &PatchParams::apply("one").force(), &Patch::Apply(&other)).await.unwrap();
    assert_eq!(maps.get("ssa").await.unwrap().data.unwrap(), [("owner".to_string(), "two".to_string())].into());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bookmarks_and_an_expired_version() {
    use k8s_openapi::api::core::v1::ConfigMap;
    // A small history: 40 writes of a ConfigMap push the first version out of it.
    let server = Server::start(Some(4096));
    let client = server.client().await;
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let first = maps.create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": "first"}})).unwrap()).await.unwrap();
    let old = first.resource_version().unwrap();

    // Bookmarks: kube-rs asks for them by default; the server sends one every 5 s.
    let mut watch = maps.watch(&WatchParams::default().timeout(20), &old).await.unwrap().boxed();
    let bookmark = tokio::time::timeout(Duration::from_secs(8), async {
        while let Some(event) = watch.try_next().await.unwrap() {
            if let WatchEvent::Bookmark(b) = event {
                return b.metadata.resource_version;
            }
        }
        panic!("the watch ended without a bookmark");
    })
    .await
    .expect("a bookmark within 8 s");
    assert!(!bookmark.is_empty());

    for i in 0..40 {
        let map = serde_json::from_value(json!({"metadata": {"name": format!("filler-{i}")}, "data": {"padding": "x".repeat(100)}})).unwrap();
        maps.create(&PostParams::default(), &map).await.unwrap();
    }
    // Resuming from the first version: 410 Gone, as an ERROR event on the stream.
    let mut expired = maps.watch(&WatchParams::default(), &old).await.unwrap().boxed();
    match tokio::time::timeout(Duration::from_secs(5), expired.try_next()).await.expect("an answer") {
        Ok(Some(WatchEvent::Error(status))) => assert_eq!(status.code, 410, "{status:?}"),
        other => panic!("expected 410 Gone, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflectors_recover_from_a_restart_with_history_lost() {
    use k8s_openapi::api::core::v1::ConfigMap;
    let mut server = Server::start(Some(4096));
    let client = server.client().await;
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let store = reflect::<ConfigMap>(&client);
    store.wait_until_ready().await.unwrap();
    for i in 0..5 {
        maps.create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": format!("before-{i}")}})).unwrap()).await.unwrap();
    }
    // The server goes away mid-watch and comes back on the same store with a fresh history;
    // changes made before the reflector reconnects push its version out of that history,
    // so it gets 410 Gone and re-lists.
    server.restart(Some(4096));
    let client2 = server.client().await;
    let maps2: Api<ConfigMap> = Api::namespaced(client2, "default");
    maps2.delete("before-0", &DeleteParams::default()).await.unwrap();
    for i in 0..40 {
        let map = serde_json::from_value(json!({"metadata": {"name": format!("after-{i}")}, "data": {"padding": "x".repeat(100)}})).unwrap();
        maps2.create(&PostParams::default(), &map).await.unwrap();
    }
    let mut want: Vec<String> = (1..5).map(|i| format!("before-{i}")).chain((0..40).map(|i| format!("after-{i}"))).collect();
    want.sort();
    let mut have = Vec::new();
    for _ in 0..300 {
        have = store.state().iter().filter(|o| o.namespace().as_deref() == Some("default")).map(|o| o.name_any()).filter(|n| n.starts_with("before-") || n.starts_with("after-")).collect();
        have.sort();
        if have == want {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(have, want, "the reflector holds every object after the restart");
}

/// Polls `done` until it holds (the collector runs after the owner's deletion returns).
async fn eventually<F, Fut>(what: &str, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..200 {
        if done().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{what} did not happen within 5 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_collection_background_foreground_and_orphan() {
    use k8s_openapi::api::core::v1::ConfigMap;
    let server = Server::start(None);
    let client = server.client().await;
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    // An owner with `count` dependents (ConfigMaps owning ConfigMaps: the collector reads
    // only ownerReferences, whatever the kinds).
    let family = |owner: &'static str, count: usize| {
        let maps = maps.clone();
        async move {
            let created = maps.create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": owner}})).unwrap()).await.unwrap();
            let reference = json!({"apiVersion": "v1", "kind": "ConfigMap", "name": owner, "uid": created.uid().unwrap()});
            for i in 0..count {
                let dependent = json!({"metadata": {"name": format!("{owner}-{i}"), "labels": {"family": owner}, "ownerReferences": [reference]}});
                maps.create(&PostParams::default(), &serde_json::from_value(dependent).unwrap()).await.unwrap();
            }
        }
    };
    let members = |owner: &'static str| {
        let maps = maps.clone();
        async move { maps.list(&ListParams::default().labels(&format!("family={owner}"))).await.unwrap().items }
    };

    // Background: the owner goes at once, its 500 dependents right after.
    family("bg", 500).await;
    maps.delete("bg", &DeleteParams::background()).await.unwrap();
    assert!(maps.get_opt("bg").await.unwrap().is_none());
    eventually("collecting 500 dependents", || async { members("bg").await.is_empty() }).await;

    // Foreground: the owner stays (with a deletionTimestamp) until its dependents are gone.
    family("fg", 3).await;
    maps.delete("fg", &DeleteParams::foreground()).await.unwrap();
    eventually("foreground deletion", || async { maps.get_opt("fg").await.unwrap().is_none() }).await;
    assert!(members("fg").await.is_empty());

    // Orphan: the dependents stay, released from their owner.
    family("or", 3).await;
    maps.delete("or", &DeleteParams::orphan()).await.unwrap();
    eventually("orphan deletion", || async { maps.get_opt("or").await.unwrap().is_none() }).await;
    let left = members("or").await;
    assert_eq!(left.len(), 3);
    assert!(left.iter().all(|m| m.owner_references().is_empty()), "{left:?}");
}
