//! The lab's object store: what the API server's etcd is on a cluster. Objects are kept as
//! the API returns them (JSON with metadata and status); `apply` compares what the user
//! sent with what they sent last, as `kubectl apply` does, to say created / configured /
//! unchanged.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::time::now_rfc3339;

/// Identifies an object: kind, namespace ("" for cluster-scoped kinds), name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key {
    pub kind: String,
    pub namespace: String,
    pub name: String,
}

impl Key {
    pub fn new(kind: &str, namespace: &str, name: &str) -> Self {
        Self { kind: kind.to_string(), namespace: namespace.to_string(), name: name.to_string() }
    }

    /// The key of an object value (kind, metadata.namespace, metadata.name).
    pub fn of(object: &Value) -> Self {
        let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
        Self { kind: text(&object["kind"]), namespace: text(&object["metadata"]["namespace"]), name: text(&object["metadata"]["name"]) }
    }
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.namespace.is_empty() { write!(f, "{} {}", self.kind, self.name) } else { write!(f, "{} {}/{}", self.kind, self.namespace, self.name) }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applied {
    Created,
    Configured,
    Unchanged,
}

impl Applied {
    pub fn word(self) -> &'static str {
        match self {
            Applied::Created => "created",
            Applied::Configured => "configured",
            Applied::Unchanged => "unchanged",
        }
    }
}

#[derive(Clone, Default)]
pub struct Store {
    objects: BTreeMap<Key, Value>,
    /// What the user last applied, per object (kubectl's last-applied-configuration).
    applied: BTreeMap<Key, Value>,
    version: u64,
    uids: u64,
    lab: String,
}

/// Fields the server owns: never part of what the user applied.
fn user_part(object: &Value) -> Value {
    let mut user = object.clone();
    if let Some(map) = user.as_object_mut() {
        map.remove("status");
    }
    if let Some(meta) = user.get_mut("metadata").and_then(Value::as_object_mut) {
        for field in ["uid", "resourceVersion", "creationTimestamp", "generation", "managedFields", "selfLink", "ownerReferences"] {
            meta.remove(field);
        }
    }
    user
}

impl Store {
    pub fn new(lab: &str) -> Self {
        Self { lab: lab.to_string(), ..Default::default() }
    }

    pub fn get(&self, key: &Key) -> Option<&Value> {
        self.objects.get(key)
    }

    pub fn contains(&self, key: &Key) -> bool {
        self.objects.contains_key(key)
    }

    /// Objects of a kind, in one namespace or all, sorted by namespace and name.
    pub fn list(&self, kind: &str, namespace: Option<&str>) -> Vec<&Value> {
        self.objects.iter().filter(|(k, _)| k.kind == kind && namespace.is_none_or(|n| k.namespace == n)).map(|(_, v)| v).collect()
    }

    pub fn keys(&self, kind: &str) -> Vec<Key> {
        self.objects.keys().filter(|k| k.kind == kind).cloned().collect()
    }

    fn next_version(&mut self) -> String {
        self.version += 1;
        self.version.to_string()
    }

    /// A new uid, in the API's format. Unique within the lab; labs differ by name.
    fn next_uid(&mut self) -> String {
        self.uids += 1;
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
        for byte in self.lab.bytes().chain(self.uids.to_le_bytes()).chain(nanos.to_le_bytes()) {
            hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
        let second = hash.rotate_left(29).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ self.uids;
        let h = format!("{hash:016x}{second:016x}");
        format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
    }

    /// Stores what a user applied. Server-owned fields (uid, timestamps, status) are kept
    /// from the stored object.
    pub fn apply(&mut self, object: Value) -> Applied {
        let key = Key::of(&object);
        let user = user_part(&object);
        if self.applied.get(&key) == Some(&user) {
            return Applied::Unchanged;
        }
        let existing = self.objects.get(&key).cloned();
        let outcome = if existing.is_some() { Applied::Configured } else { Applied::Created };
        let mut stored = user.clone();
        let version = self.next_version();
        let (uid, created, generation, status, owners) = match &existing {
            Some(old) => {
                let spec_changed = old.get("spec") != stored.get("spec");
                let generation = old["metadata"]["generation"].as_u64().unwrap_or(1) + u64::from(spec_changed);
                (old["metadata"]["uid"].clone(), old["metadata"]["creationTimestamp"].clone(), generation, old.get("status").cloned(), old["metadata"].get("ownerReferences").cloned())
            }
            None => (json!(self.next_uid()), json!(now_rfc3339()), 1, None, object["metadata"].get("ownerReferences").cloned()),
        };
        let meta = &mut stored["metadata"];
        meta["uid"] = uid;
        meta["creationTimestamp"] = created;
        meta["resourceVersion"] = json!(version);
        meta["generation"] = json!(generation);
        if let Some(owners) = owners {
            meta["ownerReferences"] = owners;
        }
        if let Some(status) = status {
            stored["status"] = status;
        }
        self.objects.insert(key.clone(), stored);
        self.applied.insert(key, user);
        outcome
    }

    /// Creates an object made by the lab itself (pods of a Deployment, ...): it has owner
    /// references and no user-applied version.
    pub fn create_owned(&mut self, mut object: Value) -> Value {
        let key = Key::of(&object);
        let uid = self.next_uid();
        let version = self.next_version();
        let meta = &mut object["metadata"];
        meta["uid"] = json!(uid);
        meta["creationTimestamp"] = json!(now_rfc3339());
        meta["resourceVersion"] = json!(version);
        self.objects.insert(key, object.clone());
        object
    }

    /// Changes an object in place (labels, status); bumps its resourceVersion. `false` if
    /// there is no such object.
    pub fn update(&mut self, key: &Key, change: impl FnOnce(&mut Value)) -> bool {
        let version = self.next_version();
        let Some(object) = self.objects.get_mut(key) else { return false };
        let before = object.clone();
        change(object);
        if *object != before {
            object["metadata"]["resourceVersion"] = json!(version);
            // A label change is the user's too: a later apply of the old file must notice.
            let labels = object["metadata"].get("labels").cloned();
            if labels != before["metadata"].get("labels").cloned()
                && let Some(applied) = self.applied.get_mut(key)
            {
                applied["metadata"]["labels"] = labels.unwrap_or(Value::Null);
            }
        }
        true
    }

    pub fn remove(&mut self, key: &Key) -> Option<Value> {
        self.applied.remove(key);
        self.objects.remove(key)
    }

    /// Objects whose ownerReferences name `uid`.
    pub fn owned_by(&self, uid: &str) -> Vec<Key> {
        self.objects
            .iter()
            .filter(|(_, v)| v["metadata"]["ownerReferences"].as_array().is_some_and(|refs| refs.iter().any(|r| r["uid"] == uid)))
            .map(|(k, _)| k.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment(replicas: u64) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "prod"}, "spec": {"replicas": replicas}})
    }

    #[test]
    fn apply_says_created_configured_unchanged() {
        let mut store = Store::new("t");
        assert_eq!(store.apply(deployment(1)), Applied::Created);
        let key = Key::new("Deployment", "prod", "web");
        let uid = store.get(&key).unwrap()["metadata"]["uid"].clone();
        assert_eq!(store.apply(deployment(1)), Applied::Unchanged);
        assert_eq!(store.apply(deployment(2)), Applied::Configured);
        let stored = store.get(&key).unwrap();
        assert_eq!(stored["metadata"]["uid"], uid, "the uid survives updates");
        assert_eq!(stored["metadata"]["generation"], 2);
        assert_eq!(stored["spec"]["replicas"], 2);
    }

    #[test]
    fn status_is_the_servers() {
        let mut store = Store::new("t");
        store.apply(deployment(1));
        let key = Key::new("Deployment", "prod", "web");
        store.update(&key, |d| d["status"] = json!({"readyReplicas": 1}));
        assert_eq!(store.apply(deployment(1)), Applied::Unchanged);
        assert_eq!(store.apply(deployment(3)), Applied::Configured);
        assert_eq!(store.get(&key).unwrap()["status"]["readyReplicas"], 1);
    }

    #[test]
    fn uids_differ() {
        let mut store = Store::new("t");
        let a = store.create_owned(json!({"kind": "Pod", "metadata": {"name": "a", "namespace": "x"}}));
        let b = store.create_owned(json!({"kind": "Pod", "metadata": {"name": "b", "namespace": "x"}}));
        assert_ne!(a["metadata"]["uid"], b["metadata"]["uid"]);
        assert_eq!(a["metadata"]["uid"].as_str().unwrap().len(), 36);
    }
}
