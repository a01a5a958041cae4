//! PATCH bodies: JSON patch (RFC 6902) and JSON merge patch (RFC 7396) through the
//! `json-patch` crate, and strategic merge patch, which no Rust crate implements: lists
//! merge by their element keys (containers by name, container ports by containerPort, ...)
//! as the `patchMergeKey` tags of the API types say, with apimachinery's directives
//! (`$patch: replace|delete|merge`, `$setElementOrder/<list>`, `$retainKeys`,
//! `$deleteFromPrimitiveList/<list>`) and `null` deleting a key.

use serde_json::{Map, Value};

use crate::error::ApiError;

/// The content types a PATCH may carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatchType {
    Json,
    Merge,
    Strategic,
    Apply,
}

impl PatchType {
    pub fn from_content_type(content_type: &str) -> Option<Self> {
        let base = content_type.split(';').next().unwrap_or_default().trim();
        Some(match base {
            "application/json-patch+json" => PatchType::Json,
            "application/merge-patch+json" => PatchType::Merge,
            "application/strategic-merge-patch+json" => PatchType::Strategic,
            "application/apply-patch+yaml" | "application/apply-patch+json" => PatchType::Apply,
            _ => return None,
        })
    }
}

fn bad(why: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request(format!("the patch could not be applied: {why}"))
}

/// RFC 6902: all operations or none.
pub fn json_patch(document: &Value, body: &[u8]) -> Result<Value, ApiError> {
    let patch: json_patch::Patch = serde_json::from_slice(body).map_err(bad)?;
    let mut out = document.clone();
    json_patch::patch(&mut out, &patch).map_err(bad)?;
    Ok(out)
}

/// RFC 7396.
pub fn merge_patch(document: &Value, body: &[u8]) -> Result<Value, ApiError> {
    let patch: Value = serde_json::from_slice(body).map_err(bad)?;
    if !patch.is_object() {
        return Err(bad("a merge patch must be a JSON object"));
    }
    let mut out = document.clone();
    json_patch::merge(&mut out, &patch);
    Ok(out)
}

/// How a list field merges.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ListStrategy {
    /// The patch's list replaces the object's (lists without a patch strategy).
    Replace,
    /// Elements merge by this key.
    MergeBy(&'static str),
    /// A set of scalars: the union.
    Set,
}

/// The strategy of list `field` found under `path` (map keys from the root; list elements
/// add nothing) in an object of `kind`, as the API types' struct tags declare it.
fn strategy(kind: &str, path: &[&str], field: &str) -> ListStrategy {
    let parent = path.last().copied().unwrap_or_default();
    let in_pod_spec = matches!(parent, "containers" | "initContainers" | "ephemeralContainers");
    match field {
        "containers" | "initContainers" | "ephemeralContainers" | "imagePullSecrets" | "volumes" | "schedulingGates" | "resourceClaims" => ListStrategy::MergeBy("name"),
        "env" if in_pod_spec => ListStrategy::MergeBy("name"),
        "ports" if in_pod_spec => ListStrategy::MergeBy("containerPort"),
        "ports" if kind == "Service" && path == ["spec"] => ListStrategy::MergeBy("port"),
        "volumeMounts" if in_pod_spec => ListStrategy::MergeBy("mountPath"),
        "volumeDevices" if in_pod_spec => ListStrategy::MergeBy("devicePath"),
        "hostAliases" => ListStrategy::MergeBy("ip"),
        "topologySpreadConstraints" => ListStrategy::MergeBy("topologyKey"),
        "conditions" => ListStrategy::MergeBy("type"),
        "addresses" if kind == "Node" => ListStrategy::MergeBy("type"),
        "podIPs" | "hostIPs" => ListStrategy::MergeBy("ip"),
        "ownerReferences" if path == ["metadata"] => ListStrategy::MergeBy("uid"),
        "finalizers" if path == ["metadata"] => ListStrategy::Set,
        _ => ListStrategy::Replace,
    }
}

/// The key a list merges by (for server-side apply's removals), if it merges by one.
pub fn list_merge_key(kind: &str, path: &[&str], field: &str) -> Option<&'static str> {
    match strategy(kind, path, field) {
        ListStrategy::MergeBy(key) => Some(key),
        _ => None,
    }
}

/// A strategic merge patch of an object of `kind`.
pub fn strategic_merge(kind: &str, document: &Value, body: &[u8]) -> Result<Value, ApiError> {
    let patch: Value = serde_json::from_slice(body).map_err(bad)?;
    let Value::Object(patch) = patch else { return Err(bad("a strategic merge patch must be a JSON object")) };
    let mut out = document.clone();
    let Value::Object(target) = &mut out else { return Err(bad("the object is not a JSON object")) };
    merge_map(kind, &mut Vec::new(), target, &patch)?;
    Ok(out)
}

fn is_directive(key: &str) -> bool {
    key.starts_with('$')
}

/// A patch value with its directives removed (what lands in the object when nothing is
/// merged into).
fn strip(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(map.iter().filter(|(k, _)| !is_directive(k)).map(|(k, v)| (k.clone(), strip(v))).collect()),
        Value::Array(items) => Value::Array(items.iter().filter(|i| i.get("$patch").and_then(Value::as_str) != Some("delete")).map(strip).collect()),
        other => other.clone(),
    }
}

fn merge_map<'p>(kind: &str, path: &mut Vec<&'p str>, target: &mut Map<String, Value>, patch: &'p Map<String, Value>) -> Result<(), ApiError> {
    match patch.get("$patch").and_then(Value::as_str) {
        Some("replace") => {
            *target = strip(&Value::Object(patch.clone())).as_object().cloned().unwrap_or_default();
            return Ok(());
        }
        Some("merge") | None => {}
        Some(other) => return Err(bad(format!("unknown patch type {other:?} in a map"))),
    }
    for (key, value) in patch {
        if let Some(field) = key.strip_prefix("$deleteFromPrimitiveList/") {
            let remove: Vec<&Value> = value.as_array().map(|a| a.iter().collect()).unwrap_or_default();
            if let Some(Value::Array(items)) = target.get_mut(field) {
                items.retain(|item| !remove.contains(&item));
            }
            continue;
        }
        if is_directive(key) {
            continue;
        }
        match value {
            Value::Null => {
                target.remove(key);
            }
            Value::Object(inner) if inner.get("$patch").and_then(Value::as_str) == Some("delete") => {
                target.remove(key);
            }
            Value::Object(inner) => {
                let slot = target.entry(key.clone()).or_insert_with(|| Value::Object(Map::new()));
                match slot {
                    Value::Object(existing) => {
                        path.push(key);
                        merge_map(kind, path, existing, inner)?;
                        path.pop();
                    }
                    other => *other = strip(value),
                }
            }
            Value::Array(items) => {
                let order = patch.get(&format!("$setElementOrder/{key}")).and_then(Value::as_array);
                let merged = match strategy(kind, path, key) {
                    ListStrategy::Replace => strip(value),
                    ListStrategy::Set => {
                        let mut all: Vec<Value> = target.get(key).and_then(Value::as_array).cloned().unwrap_or_default();
                        for item in items {
                            if !all.contains(item) {
                                all.push(item.clone());
                            }
                        }
                        Value::Array(all)
                    }
                    ListStrategy::MergeBy(merge_key) => {
                        let existing = target.get(key).and_then(Value::as_array).cloned().unwrap_or_default();
                        path.push(key);
                        let merged = merge_list(kind, path, existing, items, merge_key, order)?;
                        path.pop();
                        Value::Array(merged)
                    }
                };
                target.insert(key.clone(), merged);
            }
            scalar => {
                target.insert(key.clone(), scalar.clone());
            }
        }
        // `$retainKeys` applies to the map it sits in, after merging.
    }
    if let Some(keep) = patch.get("$retainKeys").and_then(Value::as_array) {
        let keep: Vec<&str> = keep.iter().filter_map(Value::as_str).collect();
        target.retain(|k, _| keep.contains(&k.as_str()));
    }
    Ok(())
}

fn merge_list<'p>(kind: &str, path: &mut Vec<&'p str>, mut existing: Vec<Value>, patch: &'p [Value], merge_key: &str, order: Option<&Vec<Value>>) -> Result<Vec<Value>, ApiError> {
    if patch.iter().any(|p| p.get("$patch").and_then(Value::as_str) == Some("replace")) {
        return Ok(patch.iter().filter(|p| p.get("$patch").is_none()).map(strip).collect());
    }
    for item in patch {
        let Some(map) = item.as_object() else {
            existing.push(item.clone());
            continue;
        };
        let id = map.get(merge_key);
        let position = id.and_then(|id| existing.iter().position(|e| e.get(merge_key) == Some(id)));
        if map.get("$patch").and_then(Value::as_str) == Some("delete") {
            if let Some(at) = position {
                existing.remove(at);
            }
            continue;
        }
        match position {
            Some(at) => {
                if let Value::Object(target) = &mut existing[at] {
                    merge_map(kind, path, target, map)?;
                }
            }
            None => existing.push(strip(item)),
        }
    }
    if let Some(order) = order {
        // The listed keys first, in the given order; the rest keep their order after them.
        let rank = |e: &Value| {
            let id = e.get(merge_key);
            order.iter().position(|o| o.get(merge_key) == id).unwrap_or(usize::MAX)
        };
        existing.sort_by_key(rank);
    }
    Ok(existing)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn smp(kind: &str, doc: Value, patch: Value) -> Value {
        strategic_merge(kind, &doc, patch.to_string().as_bytes()).unwrap()
    }

    #[test]
    fn containers_merge_by_name_and_env_by_name() {
        // What kubectl apply sends after changing one env var and the image.
        let live = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "nginx", "image": "nginx:1.27", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "x"}], "ports": [{"containerPort": 80}]},
            {"name": "sidecar", "image": "busybox"}]}}}});
        let patch = json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "nginx"}, {"name": "sidecar"}],
            "containers": [{"$setElementOrder/env": [{"name": "A"}, {"name": "B"}], "env": [{"name": "A", "value": "2"}], "image": "nginx:1.28", "name": "nginx"}]}}}});
        let out = smp("Deployment", live, patch);
        let containers = &out["spec"]["template"]["spec"]["containers"];
        assert_eq!(containers[0]["image"], "nginx:1.28");
        assert_eq!(containers[0]["env"], json!([{"name": "A", "value": "2"}, {"name": "B", "value": "x"}]));
        assert_eq!(containers[0]["ports"], json!([{"containerPort": 80}]));
        assert_eq!(containers[1]["name"], "sidecar");
    }

    #[test]
    fn directives_delete_replace_and_retain() {
        let live = json!({"metadata": {"labels": {"a": "1", "b": "2"}, "finalizers": ["x"]},
                          "spec": {"containers": [{"name": "a"}, {"name": "b"}], "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}});
        let patch = json!({"metadata": {"labels": {"a": null}, "finalizers": ["y"]},
                           "spec": {"containers": [{"name": "a", "$patch": "delete"}],
                                    "strategy": {"$retainKeys": ["type"], "type": "Recreate"}}});
        let out = smp("Deployment", live, patch);
        assert_eq!(out["metadata"]["labels"], json!({"b": "2"}));
        assert_eq!(out["metadata"]["finalizers"], json!(["x", "y"]));
        assert_eq!(out["spec"]["containers"], json!([{"name": "b"}]));
        assert_eq!(out["spec"]["strategy"], json!({"type": "Recreate"}));
        let replaced = smp("Deployment", json!({"spec": {"selector": {"matchLabels": {"a": "1"}}}}), json!({"spec": {"selector": {"$patch": "replace", "matchLabels": {"b": "2"}}}}));
        assert_eq!(replaced["spec"]["selector"], json!({"matchLabels": {"b": "2"}}));
    }

    #[test]
    fn lists_without_a_strategy_are_replaced() {
        // NetworkPolicy rules and ports are atomic lists.
        let live = json!({"spec": {"ingress": [{"ports": [{"port": 80}]}, {"ports": [{"port": 81}]}]}});
        let out = smp("NetworkPolicy", live, json!({"spec": {"ingress": [{"ports": [{"port": 8080}]}]}}));
        assert_eq!(out["spec"]["ingress"], json!([{"ports": [{"port": 8080}]}]));
        let svc = smp("Service", json!({"spec": {"ports": [{"port": 80, "targetPort": 8080}, {"port": 443}]}}), json!({"spec": {"ports": [{"port": 80, "targetPort": 9090}]}}));
        assert_eq!(svc["spec"]["ports"], json!([{"port": 80, "targetPort": 9090}, {"port": 443}]));
    }

    #[test]
    fn json_and_merge_patches() {
        let doc = json!({"metadata": {"labels": {"a": "1"}}, "spec": {"replicas": 1}});
        let out = merge_patch(&doc, br#"{"spec": {"replicas": 3}, "metadata": {"labels": {"a": null}}}"#).unwrap();
        assert_eq!(out, json!({"metadata": {"labels": {}}, "spec": {"replicas": 3}}));
        let out = json_patch(&doc, br#"[{"op": "replace", "path": "/spec/replicas", "value": 5}]"#).unwrap();
        assert_eq!(out["spec"]["replicas"], 5);
        assert_eq!(json_patch(&doc, br#"[{"op": "test", "path": "/spec/replicas", "value": 9}]"#).unwrap_err().code, 400);
        assert_eq!(PatchType::from_content_type("application/strategic-merge-patch+json; charset=utf-8"), Some(PatchType::Strategic));
    }
}
