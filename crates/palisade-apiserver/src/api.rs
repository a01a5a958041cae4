//! The registry: what create, update, patch and delete mean for each kind, on top of the
//! store. Server-owned metadata, defaults, validation, status subresources, generations,
//! graceful deletion with finalizers. The REST layer and the lab's in-process controllers
//! both write through here, so they get the same semantics.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use ipnet::IpNet;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::{ApiError, Cause};
use crate::patch::{self, PatchType};
use crate::resources::{self, Resource};
use crate::selectors::{FieldSelector, LabelSelector};
use crate::store::{Key, Object, Op, Precondition, Store, StoreError};
use crate::{defaults, meta, validate};

/// Namespaces the apiserver refuses to delete.
const PROTECTED_NAMESPACES: [&str; 3] = ["default", "kube-system", "kube-public"];

/// Options of a write request (`dryRun`, `fieldValidation`, `fieldManager`, `force`).
#[derive(Clone, Debug, Default)]
pub struct WriteOptions {
    pub dry_run: bool,
    /// `fieldValidation=Strict`: unknown fields are errors.
    pub strict: bool,
    pub field_manager: Option<String>,
    pub force: bool,
}

/// A DeleteOptions body.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeleteOptions {
    pub propagation_policy: Option<String>,
    pub grace_period_seconds: Option<i64>,
    pub preconditions: Option<DeletePreconditions>,
    #[serde(default)]
    pub dry_run: Vec<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeletePreconditions {
    pub uid: Option<String>,
    pub resource_version: Option<String>,
}

/// A deletion worked out but not yet committed.
enum Planned {
    /// Nothing to write: the answer is known.
    Done(Deleted),
    /// One write; `true` if it only marks the object (it is then pending).
    Commit(Op, bool),
}

/// What a delete did.
#[derive(Debug)]
pub enum Deleted {
    /// The object is gone; its last state.
    Gone(Arc<Object>),
    /// The object is being deleted (finalizers, or a namespace emptying itself).
    Pending(Arc<Object>),
}

pub struct Api {
    pub store: Store,
    service_cidrs: Vec<IpNet>,
}

fn has_status(resource: &Resource) -> bool {
    resource.subresource("status").is_some()
}

/// Whether objects of this kind carry `metadata.generation` (those with a spec).
fn generational(resource: &Resource) -> bool {
    !matches!(resource.kind, "Namespace" | "Event" | "ConfigMap" | "Secret" | "ServiceAccount" | "Endpoints" | "Lease") && !resource.group.starts_with("rbac")
}

/// Everything but metadata and status: a change here bumps the generation.
fn desired_state(object: &Value) -> Value {
    let mut copy = object.clone();
    if let Some(map) = copy.as_object_mut() {
        map.remove("metadata");
        map.remove("status");
    }
    copy
}

/// The object without what every write changes (for no-op detection).
fn without_version(object: &Value) -> Value {
    let mut copy = object.clone();
    if let Some(meta) = copy.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("resourceVersion");
    }
    copy
}

fn precondition_rv(object: &Value) -> Result<Option<u64>, ApiError> {
    match object["metadata"]["resourceVersion"].as_str().filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(text) => text.parse().map(Some).map_err(|_| ApiError::bad_request(format!("invalid resourceVersion {text:?}"))),
    }
}

impl Api {
    pub fn open(path: &Path, service_cidrs: Vec<IpNet>) -> Result<Self, StoreError> {
        Ok(Self { store: Store::open(path)?, service_cidrs })
    }

    pub fn get(&self, resource: &'static Resource, namespace: &str, name: &str) -> Result<Arc<Object>, ApiError> {
        self.store.get(&resource.key(namespace, name)).ok_or_else(|| ApiError::not_found(resource, name))
    }

    pub fn list(&self, resource: &'static Resource, namespace: Option<&str>, labels: &LabelSelector, fields: &FieldSelector) -> (Vec<Arc<Object>>, u64) {
        self.store.list(resource, namespace.filter(|_| resource.namespaced), labels, fields)
    }

    /// Checks the body names this resource, and puts it in the request's namespace.
    fn check_identity(resource: &Resource, namespace: &str, body: &mut Value) -> Result<(), ApiError> {
        if !body.is_object() {
            return Err(ApiError::bad_request("the request body must be a JSON object"));
        }
        let kind = body["kind"].as_str().unwrap_or_default();
        let api_version = body["apiVersion"].as_str().unwrap_or_default();
        if kind.is_empty() && api_version.is_empty() {
            body["kind"] = json!(resource.kind);
            body["apiVersion"] = json!(resource.api_version());
        } else if kind != resource.kind || api_version != resource.api_version() {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({api_version}) does not match the expected API version ({}) or kind {kind:?} is not {:?}",
                resource.api_version(),
                resource.kind
            )));
        }
        if !body["metadata"].is_object() {
            body["metadata"] = json!({});
        }
        if resource.namespaced {
            match body["metadata"]["namespace"].as_str() {
                Some(ns) if !ns.is_empty() && ns != namespace => {
                    return Err(ApiError::bad_request("the namespace of the provided object does not match the namespace sent on the request"));
                }
                _ => body["metadata"]["namespace"] = json!(namespace),
            }
        } else if let Some(meta) = body["metadata"].as_object_mut() {
            meta.remove("namespace");
        }
        Ok(())
    }

    fn check_namespace(&self, resource: &Resource, namespace: &str) -> Result<(), ApiError> {
        if !resource.namespaced {
            return Ok(());
        }
        let namespaces = resources::by_kind("v1", "Namespace").expect("served");
        match self.store.get(&namespaces.key("", namespace)) {
            None => Err(ApiError::not_found(namespaces, namespace)),
            Some(ns) if ns.index.deleting => {
                let mut error = ApiError::forbidden(format!("unable to create new content in namespace {namespace} because it is being terminated"));
                error.causes = vec![Cause::new("NamespaceTerminating", "metadata.namespace", format!("namespace {namespace} is being terminated"))];
                Err(error)
            }
            Some(_) => Ok(()),
        }
    }

    /// Cluster IPs other Services hold.
    fn used_cluster_ips(&self, except: &Key) -> BTreeSet<IpAddr> {
        let services = resources::by_kind("v1", "Service").expect("served");
        let (all, _) = self.store.list(services, None, &LabelSelector::default(), &FieldSelector::default());
        all.iter().filter(|s| s.key != *except).flat_map(|s| s.value()["spec"]["clusterIPs"].as_array().cloned().unwrap_or_default()).filter_map(|ip| ip.as_str()?.parse().ok()).collect()
    }

    /// Defaults, allocation and validation of the object about to be stored.
    fn finish(&self, resource: &'static Resource, key: &Key, object: &mut Value, previous: Option<&Value>) -> Result<(), ApiError> {
        defaults::apply(resource, object);
        let mut causes = meta::validate_metadata(resource, object);
        if resource.kind == "Service" && resource.group.is_empty() {
            let used = self.used_cluster_ips(key);
            if let Err(more) = defaults::allocate_cluster_ips(object, previous, &self.service_cidrs, &used) {
                causes.extend(more);
            }
        }
        causes.extend(validate::validate(resource, object));
        if let Some(previous) = previous {
            causes.extend(validate::validate_update(resource, previous, object));
        }
        if causes.is_empty() { Ok(()) } else { Err(ApiError::invalid(resource, &key.name, causes)) }
    }

    /// Creates an object in `namespace` (ignored for cluster-scoped resources).
    pub fn create(&self, resource: &'static Resource, namespace: &str, mut body: Value, options: &WriteOptions) -> Result<Arc<Object>, ApiError> {
        Self::check_identity(resource, namespace, &mut body)?;
        meta::decode(resource, &body, options.strict)?;
        let metadata = &mut body["metadata"];
        if metadata["name"].as_str().is_none_or(str::is_empty)
            && let Some(prefix) = metadata["generateName"].as_str()
        {
            metadata["name"] = json!(format!("{prefix}{}", meta::random_suffix(5)));
        }
        let name = metadata["name"].as_str().unwrap_or_default().to_string();
        let key = resource.key(namespace, &name);
        self.check_namespace(resource, namespace)?;
        if let Some(meta) = body["metadata"].as_object_mut() {
            for owned in ["resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds", "managedFields", "selfLink"] {
                meta.remove(owned);
            }
            meta.insert("uid".into(), json!(meta::uid()));
            meta.insert("creationTimestamp".into(), json!(meta::now()));
            if generational(resource) {
                meta.insert("generation".into(), json!(1));
            } else {
                meta.remove("generation");
            }
        }
        if has_status(resource) && resource.kind != "Node" {
            if let Some(map) = body.as_object_mut() {
                map.remove("status");
            }
        }
        if resource.kind == "Namespace" && resource.group.is_empty() {
            // Every namespace is finalized by the namespace controller, whatever the client sent.
            body["spec"] = json!({"finalizers": ["kubernetes"]});
        }
        self.finish(resource, &key, &mut body, None)?;
        if options.dry_run {
            return Ok(Arc::new(Object { index: crate::fields::Index::of(resource, &body), json: body.to_string(), rv: 0, key }));
        }
        let mut stored = self.store.commit(vec![Op::Put { key, object: body, precondition: Precondition::Absent }])?;
        Ok(stored.remove(0))
    }

    /// Replaces an object (PUT). On the main resource the status is kept; on `status` only
    /// the status changes. A stale `metadata.resourceVersion` is a conflict.
    pub fn update(&self, resource: &'static Resource, namespace: &str, name: &str, mut body: Value, subresource: Option<&str>, options: &WriteOptions) -> Result<Arc<Object>, ApiError> {
        Self::check_identity(resource, namespace, &mut body)?;
        if body["metadata"]["name"].as_str().is_some_and(|n| n != name) {
            return Err(ApiError::bad_request(format!("the name of the object ({}) does not match the name on the URL ({name})", body["metadata"]["name"].as_str().unwrap_or_default())));
        }
        body["metadata"]["name"] = json!(name);
        meta::decode(resource, &body, options.strict)?;
        let key = resource.key(namespace, name);
        let current = self.store.get(&key).ok_or_else(|| ApiError::not_found(resource, name))?;
        let rv = precondition_rv(&body)?;
        if rv.is_some_and(|rv| rv != current.rv) {
            return Err(ApiError::conflict(resource, name));
        }
        let uid = body["metadata"]["uid"].as_str().filter(|u| !u.is_empty()).map(str::to_string);
        if uid.as_ref().is_some_and(|uid| *uid != current.index.uid) {
            return Err(ApiError::conflict(resource, name));
        }
        self.replace(resource, &current, body, subresource, Some(current.rv), options)
    }

    /// Stores `body` in place of `current` (the server-owned parts kept), if anything
    /// changed; precondition on `rv` when given.
    fn replace(&self, resource: &'static Resource, current: &Object, body: Value, subresource: Option<&str>, rv: Option<u64>, options: &WriteOptions) -> Result<Arc<Object>, ApiError> {
        let old = current.value();
        let mut new = match subresource {
            Some("status") => {
                let mut new = old.clone();
                new["status"] = body["status"].clone();
                new
            }
            _ => {
                let mut new = body;
                if has_status(resource) && !matches!(resource.kind, "Namespace") {
                    new["status"] = old["status"].clone();
                }
                new
            }
        };
        for owned in ["uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds"] {
            match old["metadata"].get(owned) {
                Some(value) => new["metadata"][owned] = value.clone(),
                None => {
                    if let Some(meta) = new["metadata"].as_object_mut() {
                        meta.remove(owned);
                    }
                }
            }
        }
        if let Some(meta) = new["metadata"].as_object_mut() {
            meta.remove("managedFields");
            meta.remove("selfLink");
        }
        if resource.kind == "Namespace" {
            // The status is the server's, and so are spec.finalizers except through finalize.
            let requested = new["spec"]["finalizers"].clone();
            new["status"] = old["status"].clone();
            new["spec"]["finalizers"] = if subresource == Some("finalize") && !requested.is_null() { requested } else { old["spec"]["finalizers"].clone() };
        }
        if generational(resource) {
            let generation = old["metadata"]["generation"].as_i64().unwrap_or(1);
            let bumped = if desired_state(&old) != desired_state(&new) { generation + 1 } else { generation };
            new["metadata"]["generation"] = json!(bumped);
        }
        let key = current.key.clone();
        self.finish(resource, &key, &mut new, Some(&old))?;
        let empty = |v: &Value| v.as_array().is_none_or(Vec::is_empty);
        let deleting_done = !new["metadata"]["deletionTimestamp"].is_null() && empty(&new["metadata"]["finalizers"]) && (resource.kind != "Namespace" || empty(&new["spec"]["finalizers"]));
        if without_version(&new) == without_version(&old) && !deleting_done {
            return Ok(self.store.get(&key).ok_or_else(|| ApiError::not_found(resource, &key.name))?);
        }
        if options.dry_run {
            return Ok(Arc::new(Object { index: crate::fields::Index::of(resource, &new), json: new.to_string(), rv: current.rv, key }));
        }
        let precondition = Precondition::Present { rv, uid: None };
        if deleting_done {
            // The last finalizer went: the object goes.
            let mut gone = self.store.commit(vec![Op::Put { key: key.clone(), object: new, precondition }, Op::Delete { key, precondition: Precondition::None }])?;
            return Ok(gone.remove(1));
        }
        let mut stored = self.store.commit(vec![Op::Put { key, object: new, precondition }])?;
        Ok(stored.remove(0))
    }

    /// Applies a patch of any type (server-side apply creates a missing object).
    pub fn patch(
        &self,
        resource: &'static Resource,
        namespace: &str,
        name: &str,
        patch_type: PatchType,
        body: &[u8],
        subresource: Option<&str>,
        options: &WriteOptions,
    ) -> Result<Arc<Object>, ApiError> {
        if patch_type == PatchType::Apply {
            return crate::apply::apply(self, resource, namespace, name, body, subresource, options);
        }
        // A patch applies to the version it read; a concurrent write makes it try again, as
        // the apiserver does.
        for _ in 0..5 {
            let current = self.get(resource, namespace, name)?;
            let old = current.value();
            let patched = match patch_type {
                PatchType::Json => patch::json_patch(&old, body)?,
                PatchType::Merge => patch::merge_patch(&old, body)?,
                PatchType::Strategic => patch::strategic_merge(resource.kind, &old, body)?,
                PatchType::Apply => unreachable!("handled above"),
            };
            meta::decode(resource, &patched, options.strict)?;
            if patched["metadata"]["name"].as_str() != Some(name) || (resource.namespaced && patched["metadata"]["namespace"].as_str() != Some(namespace)) {
                return Err(ApiError::bad_request("a patch may not change the name or namespace of an object"));
            }
            // A resourceVersion the patch itself sets is a precondition.
            let asked = precondition_rv(&patched)?;
            if asked.is_some_and(|rv| rv != current.rv) {
                return Err(ApiError::conflict(resource, name));
            }
            match self.replace(resource, &current, patched, subresource, Some(current.rv), options) {
                Err(error) if error.reason == "Conflict" && asked.is_none() => continue,
                other => return other,
            }
        }
        Err(ApiError::conflict(resource, name))
    }

    /// Deletes an object: at once, or by marking it (finalizers, foreground and orphan
    /// propagation, namespaces); dependents go in the background.
    pub fn delete(&self, resource: &'static Resource, namespace: &str, name: &str, options: &DeleteOptions) -> Result<Deleted, ApiError> {
        let current = self.get(resource, namespace, name)?;
        match self.plan_delete(&current, options)? {
            Planned::Done(deleted) => Ok(deleted),
            Planned::Commit(op, pending) => {
                let stored = self.store.commit(vec![op])?.remove(0);
                Ok(if pending { Deleted::Pending(stored) } else { Deleted::Gone(stored) })
            }
        }
    }

    /// Deletes several objects in one transaction (the garbage collector's batches: a
    /// thousand pods of a deleted ReplicaSet are one commit, not a thousand fsyncs).
    /// Objects already gone are skipped; if any other deletion is refused, none happens.
    pub fn delete_all(&self, objects: &[Arc<Object>], options: &DeleteOptions) -> Result<usize, ApiError> {
        let mut ops = Vec::new();
        for object in objects {
            let Some(current) = self.store.get(&object.key) else { continue };
            if let Planned::Commit(op, _) = self.plan_delete(&current, options)? {
                ops.push(op);
            }
        }
        let count = ops.len();
        if count > 0 {
            self.store.commit(ops)?;
        }
        Ok(count)
    }

    /// What deleting `current` takes: a removal, a marking write (finalizers, namespaces),
    /// or nothing (already being deleted, or a dry run).
    fn plan_delete(&self, current: &Arc<Object>, options: &DeleteOptions) -> Result<Planned, ApiError> {
        let (resource, name) = (current.key.resource, current.key.name.as_str());
        if let Some(pre) = &options.preconditions {
            if pre.uid.as_ref().is_some_and(|uid| *uid != current.index.uid) || pre.resource_version.as_ref().is_some_and(|rv| *rv != current.rv.to_string()) {
                return Err(ApiError::conflict(resource, name));
            }
        }
        if resource.kind == "Namespace" && PROTECTED_NAMESPACES.contains(&name) {
            return Err(ApiError::forbidden(format!("namespaces \"{name}\" is forbidden: this namespace may not be deleted")));
        }
        if current.index.deleting {
            return Ok(Planned::Done(Deleted::Pending(current.clone())));
        }
        let dry_run = options.dry_run.iter().any(|d| d == "All");
        let propagation = options.propagation_policy.as_deref().unwrap_or("Background");
        let mut finalizers = current.index.finalizers.clone();
        match propagation {
            "Foreground" if !finalizers.iter().any(|f| f == "foregroundDeletion") => finalizers.push("foregroundDeletion".into()),
            "Orphan" if !finalizers.iter().any(|f| f == "orphan") => finalizers.push("orphan".into()),
            "Background" | "Foreground" | "Orphan" => {}
            other => return Err(ApiError::bad_request(format!("invalid propagationPolicy {other:?}: one of Foreground, Background or Orphan"))),
        }
        let present = Precondition::Present { rv: Some(current.rv), uid: None };
        if resource.kind == "Namespace" || !finalizers.is_empty() {
            if dry_run {
                return Ok(Planned::Done(Deleted::Pending(current.clone())));
            }
            let mut marked = current.value();
            marked["metadata"]["deletionTimestamp"] = json!(meta::now());
            marked["metadata"]["deletionGracePeriodSeconds"] = json!(0);
            if !finalizers.is_empty() {
                marked["metadata"]["finalizers"] = json!(finalizers);
            }
            if resource.kind == "Namespace" {
                marked["status"]["phase"] = json!("Terminating");
            }
            return Ok(Planned::Commit(Op::Put { key: current.key.clone(), object: marked, precondition: present }, true));
        }
        if dry_run {
            return Ok(Planned::Done(Deleted::Gone(current.clone())));
        }
        Ok(Planned::Commit(Op::Delete { key: current.key.clone(), precondition: present }, false))
    }

    /// Deletes every object a list would return.
    pub fn delete_collection(
        &self,
        resource: &'static Resource,
        namespace: Option<&str>,
        labels: &LabelSelector,
        fields: &FieldSelector,
        options: &DeleteOptions,
    ) -> Result<Vec<Arc<Object>>, ApiError> {
        let (items, _) = self.list(resource, namespace, labels, fields);
        let mut deleted = Vec::new();
        for item in items {
            match self.delete(resource, &item.key.namespace, &item.key.name, options) {
                Ok(Deleted::Gone(o) | Deleted::Pending(o)) => deleted.push(o),
                Err(e) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        Ok(deleted)
    }

    /// Read-modify-write for in-process controllers: `change` edits the object and says
    /// whether it changed anything; conflicts are retried on the fresh object. Status and
    /// spec are both taken (controllers own both).
    pub fn modify(&self, resource: &'static Resource, namespace: &str, name: &str, mut change: impl FnMut(&mut Value) -> bool) -> Result<Option<Arc<Object>>, ApiError> {
        for _ in 0..10 {
            let current = self.get(resource, namespace, name)?;
            let mut value = current.value();
            if !change(&mut value) {
                return Ok(None);
            }
            let status = value["status"].clone();
            let stored = self.replace(resource, &current, value.clone(), None, Some(current.rv), &WriteOptions::default()).and_then(|o| {
                if has_status(resource) && status != o.value()["status"] {
                    let fresh = self.get(resource, namespace, name)?;
                    let mut with_status = fresh.value();
                    with_status["status"] = status.clone();
                    self.replace(resource, &fresh, with_status, Some("status"), Some(fresh.rv), &WriteOptions::default())
                } else {
                    Ok(o)
                }
            });
            match stored {
                Err(error) if error.reason == "Conflict" => continue,
                other => return other.map(Some),
            }
        }
        Err(ApiError::conflict(resource, name))
    }
}
