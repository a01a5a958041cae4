//! The controllers every API server comes with (kube-controller-manager's, here because the
//! API's own semantics depend on them): the garbage collector (dependents whose owners are
//! gone go; foreground and orphan deletion), namespace deletion (everything in a
//! terminating namespace goes, then the namespace), and each namespace's `default`
//! ServiceAccount. Level-triggered: at start the whole state is examined, then every event.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::api::{Api, DeleteOptions, WriteOptions};
use crate::resources::{self, Resource};
use crate::store::{EventKind, Filter, Object, WatchMessage};

fn namespaces() -> &'static Resource {
    resources::by_kind("v1", "Namespace").expect("served")
}

fn service_accounts() -> &'static Resource {
    resources::by_kind("v1", "ServiceAccount").expect("served")
}

/// Starts the controllers on a thread of their own.
pub fn start(api: Arc<Api>) -> std::thread::JoinHandle<()> {
    let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel();
    let from = api.store.current_rv();
    api.store.watch(Filter::default(), Some(from), sender).expect("watching from the current version");
    std::thread::Builder::new()
        .name("lifecycle".into())
        .spawn(move || {
            for object in api.store.all() {
                examine(&api, &object, EventKind::Added);
            }
            orphans(&api);
            while let Some(message) = receiver.blocking_recv() {
                if let WatchMessage::Event(kind, object) = message {
                    examine(&api, &object, kind);
                }
            }
        })
        .expect("spawn the lifecycle controllers")
}

fn examine(api: &Api, object: &Arc<Object>, kind: EventKind) {
    let resource = object.key.resource;
    match kind {
        EventKind::Deleted => {
            collect_dependents(api, &object.index.uid);
            // An owner deleted in the foreground may have waited for this one last dependent.
            for owner in object.index.owners.iter().filter_map(|uid| api.store.by_uid(uid)) {
                if owner.index.deleting {
                    finalize(api, &owner);
                }
            }
            if resource.kind == "Namespace" {
                return;
            }
        }
        EventKind::Added | EventKind::Modified => {
            if resource.kind == "Namespace" && resource.group.is_empty() {
                if object.index.deleting {
                    empty_namespace(api, &object.key.name);
                } else {
                    ensure_default_service_account(api, &object.key.name);
                }
            } else if object.index.deleting {
                finalize(api, object);
            }
        }
    }
    // A deleted or emptied object may have been the last thing its namespace waited for.
    if resource.namespaced
        && let Some(ns) = api.store.get(&namespaces().key("", &object.key.namespace))
        && ns.index.deleting
    {
        empty_namespace(api, &object.key.namespace);
    }
}

/// Dependents of a deleted owner whose owners are all gone are deleted in turn.
fn collect_dependents(api: &Api, uid: &str) {
    let orphaned: Vec<Arc<Object>> = api.store.owned_by(uid).into_iter().filter(|d| d.index.owners.iter().all(|owner| api.store.by_uid(owner).is_none())).collect();
    delete_all(api, &orphaned, "Background");
}

/// Dependents whose owners vanished while the server was down.
fn orphans(api: &Api) {
    let orphaned: Vec<Arc<Object>> = api.store.all().into_iter().filter(|o| !o.index.owners.is_empty() && o.index.owners.iter().all(|owner| api.store.by_uid(owner).is_none())).collect();
    delete_all(api, &orphaned, "Background");
}

/// Deletes the dependents in one transaction; if that is refused (one changed meanwhile),
/// one by one, so one conflict does not keep the others.
fn delete_all(api: &Api, objects: &[Arc<Object>], propagation: &str) {
    if objects.is_empty() {
        return;
    }
    let options = DeleteOptions { propagation_policy: Some(propagation.to_string()), ..Default::default() };
    if api.delete_all(objects, &options).is_ok() {
        return;
    }
    for object in objects {
        if let Err(error) = api.delete(object.key.resource, &object.key.namespace, &object.key.name, &options)
            && error.code != 404
        {
            tracing::warn!(object = %object.key.name, %error, "garbage collection could not delete a dependent");
        }
    }
}

/// An object being deleted with the collector's finalizers: foreground deletion waits for
/// (and deletes) its dependents; orphan deletion releases them.
fn finalize(api: &Api, object: &Object) {
    let uid = object.index.uid.clone();
    let dependents = api.store.owned_by(&uid);
    let remove = |finalizer: &str| {
        let result = api.modify(object.key.resource, &object.key.namespace, &object.key.name, |value| {
            let before = value["metadata"]["finalizers"].clone();
            if let Some(list) = value["metadata"]["finalizers"].as_array_mut() {
                list.retain(|f| f != finalizer);
            }
            value["metadata"]["finalizers"] != before
        });
        if let Err(error) = result
            && error.code != 404
        {
            tracing::warn!(object = %object.key.name, %error, "could not remove the {finalizer} finalizer");
        }
    };
    if object.index.finalizers.iter().any(|f| f == "orphan") {
        for dependent in &dependents {
            let _ = api.modify(dependent.key.resource, &dependent.key.namespace, &dependent.key.name, |value| {
                let before = value["metadata"]["ownerReferences"].clone();
                if let Some(list) = value["metadata"]["ownerReferences"].as_array_mut() {
                    list.retain(|o| o["uid"] != uid.as_str());
                }
                value["metadata"]["ownerReferences"] != before
            });
        }
        remove("orphan");
    } else if object.index.finalizers.iter().any(|f| f == "foregroundDeletion") {
        if dependents.is_empty() {
            remove("foregroundDeletion");
        } else {
            let live: Vec<Arc<Object>> = dependents.iter().filter(|d| !d.index.deleting).cloned().collect();
            delete_all(api, &live, "Foreground");
        }
    }
}

/// Deletes what a terminating namespace holds; once it is empty, finalizes it (the
/// namespace object then goes).
fn empty_namespace(api: &Api, namespace: &str) {
    let content = api.store.in_namespace(namespace);
    let live: Vec<Arc<Object>> = content.iter().filter(|o| !o.index.deleting).cloned().collect();
    delete_all(api, &live, "Background");
    if !api.store.in_namespace(namespace).is_empty() {
        return;
    }
    let Some(ns) = api.store.get(&namespaces().key("", namespace)) else { return };
    let mut value = ns.value();
    value["spec"]["finalizers"] = json!([]);
    if let Err(error) = api.update(namespaces(), "", namespace, value, Some("finalize"), &WriteOptions::default())
        && error.code != 404
    {
        tracing::warn!(namespace, %error, "could not finalize a namespace");
    }
}

fn ensure_default_service_account(api: &Api, namespace: &str) {
    if api.store.get(&service_accounts().key(namespace, "default")).is_some() {
        return;
    }
    let account: Value = json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default", "namespace": namespace}});
    if let Err(error) = api.create(service_accounts(), namespace, account, &WriteOptions::default())
        && error.code != 409
        && error.code != 403
    {
        tracing::warn!(namespace, %error, "could not create the default ServiceAccount");
    }
}
