//! The object store: what etcd is to a cluster. Objects are JSON, indexed in memory
//! (labels, selectable fields, owners) and written to an embedded transactional database
//! (redb, fsync on commit) before a write returns, so a killed server loses no acknowledged
//! object. One resource version sequence orders every write; recent events are kept for
//! watches, which resume from a resource version or get `410 Gone` when it is older than
//! what is kept.
//!
//! The store knows metadata only as far as versions go; `objects.rs` fills in uids,
//! timestamps and generations, and the REST layer and the lab's controllers both write
//! through it.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde_json::Value;
use tokio::sync::mpsc::UnboundedSender;

use crate::error::ApiError;
use crate::fields::Index;
use crate::resources::{RESOURCES, Resource};
use crate::selectors::{FieldSelector, LabelSelector};

const OBJECTS: TableDefinition<&str, &[u8]> = TableDefinition::new("objects");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// Small server-side records that are not API objects (tokens, appliers' configurations).
const RECORDS: TableDefinition<&str, &[u8]> = TableDefinition::new("records");

/// How much of the recent history watches can resume from (the JSON of the events), unless
/// `Store::set_history_budget` says otherwise.
pub const DEFAULT_HISTORY_BYTES: usize = 64 << 20;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the object store at {path}: {message}")]
    Open { path: String, message: String },
    #[error("writing the object store: {0}")]
    Write(String),
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        ApiError::internal(error.to_string())
    }
}

/// An object's identity.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Key {
    pub resource: &'static Resource,
    /// Empty for cluster-scoped resources.
    pub namespace: String,
    pub name: String,
}

impl Key {
    fn sort_key(&self) -> (&str, &str, &str, &str) {
        (self.resource.group, self.resource.plural, &self.namespace, &self.name)
    }

    /// The database key: `group/plural/namespace/name`.
    fn db_key(&self) -> String {
        format!("{}/{}/{}/{}", self.resource.group, self.resource.plural, self.namespace, self.name)
    }

    fn from_db_key(text: &str) -> Option<Self> {
        let mut parts = text.splitn(4, '/');
        let (group, plural, namespace, name) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        let resource = RESOURCES.iter().find(|r| r.group == group && r.plural == plural)?;
        Some(Self { resource, namespace: namespace.to_string(), name: name.to_string() })
    }
}

impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Key {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.sort_key().cmp(&other.sort_key())
    }
}

/// A stored object: its JSON as served, its version and index.
#[derive(Debug)]
pub struct Object {
    pub key: Key,
    pub json: String,
    pub rv: u64,
    pub index: Index,
}

impl Object {
    pub fn value(&self) -> Value {
        serde_json::from_str(&self.json).expect("stored objects are JSON")
    }

    /// Whether the object is in `namespace` and matches the selectors.
    pub fn matches(&self, namespace: Option<&str>, labels: &LabelSelector, fields: &FieldSelector) -> bool {
        namespace.is_none_or(|ns| self.key.namespace == ns)
            && labels.matches(&self.index.labels)
            && fields.matches(|f| match f {
                "metadata.name" => Some(self.key.name.clone()),
                "metadata.namespace" => Some(self.key.namespace.clone()),
                other => self.index.field(other).map(str::to_string),
            })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    Added,
    Modified,
    Deleted,
}

impl EventKind {
    pub fn word(self) -> &'static str {
        match self {
            EventKind::Added => "ADDED",
            EventKind::Modified => "MODIFIED",
            EventKind::Deleted => "DELETED",
        }
    }
}

/// One change. For a deletion `object` is the last state, at the deletion's version.
#[derive(Debug)]
pub struct Event {
    pub kind: EventKind,
    pub rv: u64,
    pub object: Arc<Object>,
    /// The state before a modification (watches with selectors turn a modification that
    /// leaves or enters their selection into a deletion or an addition).
    pub previous: Option<Arc<Object>>,
}

/// Which events a watcher wants.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// `None`: every resource (the lab's controllers watch everything).
    pub resource: Option<&'static Resource>,
    pub namespace: Option<String>,
    pub labels: LabelSelector,
    pub fields: FieldSelector,
}

impl Filter {
    fn selects(&self, object: &Object) -> bool {
        self.resource.is_none_or(|r| std::ptr::eq(r, object.key.resource)) && object.matches(self.namespace.as_deref(), &self.labels, &self.fields)
    }

    /// The event as this watcher sees it, if at all.
    pub fn view(&self, event: &Event) -> Option<EventKind> {
        let now = self.selects(&event.object);
        let before = event.previous.as_ref().is_some_and(|p| self.selects(p));
        match (event.kind, before, now) {
            (EventKind::Modified, true, true) => Some(EventKind::Modified),
            (EventKind::Modified, true, false) => Some(EventKind::Deleted),
            (EventKind::Modified, false, true) => Some(EventKind::Added),
            (EventKind::Modified, false, false) => None,
            (kind, _, true) => Some(kind),
            (_, _, false) => None,
        }
    }
}

/// A write's condition on the current object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Precondition {
    None,
    /// The object must not exist (create).
    Absent,
    /// The object must exist (at this version, when given; with this uid, when given).
    Present {
        rv: Option<u64>,
        uid: Option<String>,
    },
}

/// One operation of a write transaction.
#[derive(Clone, Debug)]
pub enum Op {
    /// Stores the object (its `metadata.resourceVersion` is set by the store).
    Put {
        key: Key,
        object: Value,
        precondition: Precondition,
    },
    Delete {
        key: Key,
        precondition: Precondition,
    },
}

struct Watcher {
    filter: Filter,
    sender: UnboundedSender<WatchMessage>,
}

/// What a watcher receives.
#[derive(Debug)]
pub enum WatchMessage {
    Event(EventKind, Arc<Object>),
    /// The watcher fell too far behind (the server closes its stream with 410).
    Expired,
}

struct Inner {
    objects: BTreeMap<Key, Arc<Object>>,
    /// Which object has a uid (owners are referenced by uid).
    uids: HashMap<String, Key>,
    rv: u64,
    /// Recent events, oldest first, and their JSON size.
    history: VecDeque<Arc<Event>>,
    history_bytes: usize,
    history_budget: usize,
    /// Events up to this version are no longer kept.
    compacted: u64,
    watchers: Vec<Watcher>,
}

pub struct Store {
    db: Database,
    inner: Mutex<Inner>,
}

impl Store {
    /// Opens (or creates) the store in `path`, loading every object into memory.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let error = |e: &dyn std::fmt::Display| StoreError::Open { path: path.display().to_string(), message: e.to_string() };
        let db = Database::create(path).map_err(|e| error(&e))?;
        let mut objects = BTreeMap::new();
        let mut rv = 0;
        {
            let setup = db.begin_write().map_err(|e| error(&e))?;
            setup.open_table(OBJECTS).map_err(|e| error(&e))?;
            setup.open_table(META).map_err(|e| error(&e))?;
            setup.open_table(RECORDS).map_err(|e| error(&e))?;
            setup.commit().map_err(|e| error(&e))?;
            let read = db.begin_read().map_err(|e| error(&e))?;
            if let Some(stored) = read.open_table(META).map_err(|e| error(&e))?.get("rv").map_err(|e| error(&e))? {
                rv = stored.value();
            }
            let table = read.open_table(OBJECTS).map_err(|e| error(&e))?;
            for entry in table.iter().map_err(|e| error(&e))? {
                let (k, v) = entry.map_err(|e| error(&e))?;
                let Some(key) = Key::from_db_key(k.value()) else { continue };
                let json = String::from_utf8(v.value().to_vec()).map_err(|e| error(&e))?;
                let value: Value = serde_json::from_str(&json).map_err(|e| error(&e))?;
                let object_rv = value["metadata"]["resourceVersion"].as_str().and_then(|s| s.parse().ok()).unwrap_or(0);
                let index = Index::of(key.resource, &value);
                objects.insert(key.clone(), Arc::new(Object { key, json, rv: object_rv, index }));
            }
        }
        let uids = objects.values().map(|o: &Arc<Object>| (o.index.uid.clone(), o.key.clone())).collect();
        let inner = Inner { objects, uids, rv, history: VecDeque::new(), history_bytes: 0, history_budget: DEFAULT_HISTORY_BYTES, compacted: rv, watchers: Vec::new() };
        Ok(Self { db, inner: Mutex::new(inner) })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How many bytes of events watches can resume from; older versions get `410 Gone`.
    pub fn set_history_budget(&self, bytes: usize) {
        self.lock().history_budget = bytes;
    }

    /// Ends every watch (their receivers see the channel close): how a stopping server
    /// lets the threads that watch the store finish.
    pub fn close_watches(&self) {
        self.lock().watchers.clear();
    }

    /// The latest resource version.
    pub fn current_rv(&self) -> u64 {
        self.lock().rv
    }

    pub fn get(&self, key: &Key) -> Option<Arc<Object>> {
        self.lock().objects.get(key).cloned()
    }

    /// Objects of a resource matching the selectors, sorted by namespace and name, and the
    /// version the list is consistent with.
    pub fn list(&self, resource: &'static Resource, namespace: Option<&str>, labels: &LabelSelector, fields: &FieldSelector) -> (Vec<Arc<Object>>, u64) {
        let inner = self.lock();
        let start = Key { resource, namespace: namespace.unwrap_or_default().to_string(), name: String::new() };
        let items = inner
            .objects
            .range(start..)
            .take_while(|(k, _)| std::ptr::eq(k.resource, resource) && namespace.is_none_or(|ns| k.namespace == ns))
            .filter(|(_, o)| o.matches(namespace, labels, fields))
            .map(|(_, o)| o.clone())
            .collect();
        (items, inner.rv)
    }

    /// The object with this uid, if it exists.
    pub fn by_uid(&self, uid: &str) -> Option<Arc<Object>> {
        let inner = self.lock();
        inner.uids.get(uid).and_then(|key| inner.objects.get(key)).cloned()
    }

    /// Every object (for controllers that start from the whole state).
    pub fn all(&self) -> Vec<Arc<Object>> {
        self.lock().objects.values().cloned().collect()
    }

    /// Objects owned (through `ownerReferences`) by `uid`.
    pub fn owned_by(&self, uid: &str) -> Vec<Arc<Object>> {
        self.lock().objects.values().filter(|o| o.index.owners.iter().any(|u| u == uid)).cloned().collect()
    }

    /// Every object of a namespace (for its deletion).
    pub fn in_namespace(&self, namespace: &str) -> Vec<Arc<Object>> {
        self.lock().objects.values().filter(|o| o.key.resource.namespaced && o.key.namespace == namespace).cloned().collect()
    }

    /// Applies the operations in one transaction: all or none. Each write gets the next
    /// resource version; the stored objects are returned in order (a deletion returns the
    /// last state).
    pub fn commit(&self, ops: Vec<Op>) -> Result<Vec<Arc<Object>>, ApiError> {
        let mut inner = self.lock();
        let mut rv = inner.rv;
        let mut planned: Vec<(Event, Option<String>)> = Vec::new();
        // Later operations see earlier ones of the same transaction.
        let mut pending: BTreeMap<Key, Option<Arc<Object>>> = BTreeMap::new();
        for op in ops {
            let key = match &op {
                Op::Put { key, .. } | Op::Delete { key, .. } => key.clone(),
            };
            let current = match pending.get(&key) {
                Some(state) => state.clone(),
                None => inner.objects.get(&key).cloned(),
            };
            let precondition = match &op {
                Op::Put { precondition, .. } | Op::Delete { precondition, .. } => precondition,
            };
            check(precondition, &key, current.as_deref())?;
            rv += 1;
            match op {
                Op::Put { mut object, .. } => {
                    object["metadata"]["resourceVersion"] = Value::String(rv.to_string());
                    let json = object.to_string();
                    let index = Index::of(key.resource, &object);
                    let stored = Arc::new(Object { key: key.clone(), json: json.clone(), rv, index });
                    let kind = if current.is_some() { EventKind::Modified } else { EventKind::Added };
                    pending.insert(key, Some(stored.clone()));
                    planned.push((Event { kind, rv, object: stored, previous: current }, Some(json)));
                }
                Op::Delete { .. } => {
                    let last = current.ok_or_else(|| ApiError::not_found(key.resource, &key.name))?;
                    let mut value = last.value();
                    value["metadata"]["resourceVersion"] = Value::String(rv.to_string());
                    let gone = Arc::new(Object { key: key.clone(), json: value.to_string(), rv, index: last.index.clone() });
                    pending.insert(key, None);
                    planned.push((Event { kind: EventKind::Deleted, rv, object: gone, previous: Some(last) }, None));
                }
            }
        }
        if planned.is_empty() {
            return Ok(Vec::new());
        }
        self.persist(&planned, rv).map_err(ApiError::from)?;
        inner.rv = rv;
        let mut out = Vec::with_capacity(planned.len());
        for (event, _) in planned {
            match event.kind {
                EventKind::Deleted => {
                    inner.uids.remove(&event.object.index.uid);
                    inner.objects.remove(&event.object.key);
                }
                _ => {
                    inner.uids.insert(event.object.index.uid.clone(), event.object.key.clone());
                    inner.objects.insert(event.object.key.clone(), event.object.clone());
                }
            };
            out.push(event.object.clone());
            publish(&mut inner, Arc::new(event));
        }
        Ok(out)
    }

    fn persist(&self, planned: &[(Event, Option<String>)], rv: u64) -> Result<(), StoreError> {
        let write = |e: &dyn std::fmt::Display| StoreError::Write(e.to_string());
        let tx = self.db.begin_write().map_err(|e| write(&e))?;
        {
            let mut objects = tx.open_table(OBJECTS).map_err(|e| write(&e))?;
            for (event, json) in planned {
                let key = event.object.key.db_key();
                match json {
                    Some(json) => objects.insert(key.as_str(), json.as_bytes()).map(drop),
                    None => objects.remove(key.as_str()).map(drop),
                }
                .map_err(|e| write(&e))?;
            }
            tx.open_table(META).map_err(|e| write(&e))?.insert("rv", rv).map_err(|e| write(&e))?;
        }
        tx.commit().map_err(|e| write(&e))
    }

    /// Starts a watch: the events after `from` (or, with `from = None`, an ADDED event for
    /// every current object first), then every new one, through `sender`. Fails with 410
    /// when events after `from` are no longer kept.
    pub fn watch(&self, filter: Filter, from: Option<u64>, sender: UnboundedSender<WatchMessage>) -> Result<u64, ApiError> {
        let mut inner = self.lock();
        match from {
            None => {
                for object in inner.objects.values().filter(|o| filter.selects(o)) {
                    let _ = sender.send(WatchMessage::Event(EventKind::Added, object.clone()));
                }
            }
            Some(from) if from < inner.compacted => {
                return Err(ApiError::gone(format!("too old resource version: {from} ({})", inner.compacted + 1)));
            }
            Some(from) => {
                for event in inner.history.iter().filter(|e| e.rv > from) {
                    if let Some(kind) = filter.view(event) {
                        let _ = sender.send(WatchMessage::Event(kind, event.object.clone()));
                    }
                }
            }
        }
        let rv = inner.rv;
        inner.watchers.push(Watcher { filter, sender });
        Ok(rv)
    }

    /// A server-side record (tokens, appliers' configurations), or `None`.
    pub fn record(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let read = |e: &dyn std::fmt::Display| StoreError::Write(e.to_string());
        let tx = self.db.begin_read().map_err(|e| read(&e))?;
        let table = tx.open_table(RECORDS).map_err(|e| read(&e))?;
        Ok(table.get(key).map_err(|e| read(&e))?.map(|v| v.value().to_vec()))
    }

    /// Writes (or with `None` removes) a server-side record, durably.
    pub fn set_record(&self, key: &str, value: Option<&[u8]>) -> Result<(), StoreError> {
        let write = |e: &dyn std::fmt::Display| StoreError::Write(e.to_string());
        let tx = self.db.begin_write().map_err(|e| write(&e))?;
        {
            let mut table = tx.open_table(RECORDS).map_err(|e| write(&e))?;
            match value {
                Some(v) => table.insert(key, v).map(drop),
                None => table.remove(key).map(drop),
            }
            .map_err(|e| write(&e))?;
        }
        tx.commit().map_err(|e| write(&e))
    }

    /// Records whose key starts with `prefix`.
    pub fn records(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let read = |e: &dyn std::fmt::Display| StoreError::Write(e.to_string());
        let tx = self.db.begin_read().map_err(|e| read(&e))?;
        let table = tx.open_table(RECORDS).map_err(|e| read(&e))?;
        let mut out = Vec::new();
        for entry in table.range(prefix..).map_err(|e| read(&e))? {
            let (k, v) = entry.map_err(|e| read(&e))?;
            if !k.value().starts_with(prefix) {
                break;
            }
            out.push((k.value().to_string(), v.value().to_vec()));
        }
        Ok(out)
    }
}

fn check(precondition: &Precondition, key: &Key, current: Option<&Object>) -> Result<(), ApiError> {
    match (precondition, current) {
        (Precondition::None, _) => Ok(()),
        (Precondition::Absent, None) => Ok(()),
        (Precondition::Absent, Some(_)) => Err(ApiError::already_exists(key.resource, &key.name)),
        (Precondition::Present { .. }, None) => Err(ApiError::not_found(key.resource, &key.name)),
        (Precondition::Present { rv, uid }, Some(object)) => {
            if rv.is_some_and(|rv| rv != object.rv) {
                return Err(ApiError::conflict(key.resource, &key.name));
            }
            if uid.as_ref().is_some_and(|uid| *uid != object.index.uid) {
                let mut error = ApiError::conflict(key.resource, &key.name);
                error.message = format!(
                    "Operation cannot be fulfilled on {} \"{}\": Precondition failed: UID in precondition: {}, UID in object meta: {}",
                    key.resource.qualified(),
                    key.name,
                    uid.as_deref().unwrap_or_default(),
                    object.index.uid
                );
                return Err(error);
            }
            Ok(())
        }
    }
}

/// Keeps the event for resuming watches (within the history budget) and sends it to every
/// watcher that selects it; watchers that went away are dropped.
fn publish(inner: &mut Inner, event: Arc<Event>) {
    inner.history_bytes += event.object.json.len();
    inner.history.push_back(event.clone());
    while inner.history_bytes > inner.history_budget {
        let Some(old) = inner.history.pop_front() else { break };
        inner.history_bytes -= old.object.json.len();
        inner.compacted = old.rv;
    }
    inner.watchers.retain(|w| match w.filter.view(&event) {
        Some(kind) => w.sender.send(WatchMessage::Event(kind, event.object.clone())).is_ok(),
        None => !w.sender.is_closed(),
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::by_kind;
    use serde_json::json;

    fn pod(name: &str, app: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "x", "labels": {"app": app}}, "spec": {"nodeName": "n1"}})
    }

    fn put(key: &Key, object: Value, precondition: Precondition) -> Op {
        Op::Put { key: key.clone(), object, precondition }
    }

    #[test]
    fn writes_are_durable_versioned_and_conditional() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.redb");
        let pods = by_kind("v1", "Pod").unwrap();
        let a = pods.key("x", "a");
        {
            let store = Store::open(&path).unwrap();
            let stored = store.commit(vec![put(&a, pod("a", "web"), Precondition::Absent)]).unwrap();
            assert_eq!(stored[0].rv, 1);
            assert_eq!(store.commit(vec![put(&a, pod("a", "web"), Precondition::Absent)]).unwrap_err().code, 409);
            let stale = store.commit(vec![put(&a, pod("a", "db"), Precondition::Present { rv: Some(7), uid: None })]).unwrap_err();
            assert_eq!(stale.reason, "Conflict");
            store.commit(vec![put(&a, pod("a", "db"), Precondition::Present { rv: Some(1), uid: None })]).unwrap();
            // A failing operation makes the whole transaction fail.
            let b = pods.key("x", "b");
            assert!(store.commit(vec![put(&b, pod("b", "web"), Precondition::Absent), Op::Delete { key: pods.key("x", "zz"), precondition: Precondition::None }]).is_err());
            assert!(store.get(&b).is_none());
        }
        let reopened = Store::open(&path).unwrap();
        assert_eq!(reopened.current_rv(), 2);
        let object = reopened.get(&a).unwrap();
        assert_eq!(object.index.labels["app"], "db");
        assert_eq!(object.value()["metadata"]["resourceVersion"], "2");
    }

    #[test]
    fn lists_select_and_watches_resume() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.redb")).unwrap();
        let pods = by_kind("v1", "Pod").unwrap();
        for (name, app) in [("a", "web"), ("b", "db"), ("c", "web")] {
            store.commit(vec![put(&pods.key("x", name), pod(name, app), Precondition::Absent)]).unwrap();
        }
        let web = crate::selectors::parse_labels("app=web").unwrap();
        let (items, rv) = store.list(pods, Some("x"), &web, &FieldSelector::default());
        assert_eq!(items.iter().map(|o| o.key.name.as_str()).collect::<Vec<_>>(), vec!["a", "c"]);
        assert_eq!(rv, 3);
        // A watch from version 1 replays b and c, then sees b leave and a relabelled out of
        // its selection.
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        store.watch(Filter { resource: Some(pods), labels: web.clone(), ..Default::default() }, Some(1), tx).unwrap();
        store.commit(vec![put(&pods.key("x", "a"), pod("a", "db"), Precondition::None)]).unwrap();
        let mut seen = Vec::new();
        while let Ok(WatchMessage::Event(kind, object)) = rx.try_recv() {
            seen.push((kind, object.key.name.clone()));
        }
        assert_eq!(seen, vec![(EventKind::Added, "c".to_string()), (EventKind::Deleted, "a".to_string())]);
    }
}
