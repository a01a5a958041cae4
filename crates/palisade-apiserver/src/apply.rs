//! Server-side apply for one field manager at a time: the manager's applied configuration
//! is remembered (a server-side record, not `managedFields`); applying again removes what
//! it applied before and no longer does, then merges the new configuration in, lists by
//! their merge keys as strategic merge does. Conflicts between managers are not tracked
//! (`force` is accepted and changes nothing).

use std::sync::Arc;

use serde_json::{Map, Value};

use crate::api::{Api, WriteOptions};
use crate::error::ApiError;
use crate::patch;
use crate::resources::Resource;
use crate::store::Object;

fn record_key(manager: &str, resource: &Resource, namespace: &str, name: &str) -> String {
    format!("applied/{manager}/{}/{}/{namespace}/{name}", resource.group, resource.plural)
}

/// Parses an apply body, or a write sent as `application/yaml`: one YAML document (JSON is
/// YAML too).
pub(crate) fn parse(body: &[u8]) -> Result<Value, ApiError> {
    if let Ok(value) = serde_json::from_slice::<Value>(body) {
        return Ok(value);
    }
    let text = std::str::from_utf8(body).map_err(|e| ApiError::bad_request(format!("the apply configuration is not UTF-8: {e}")))?;
    let mut documents = palisade_model::parse_yaml(text).map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?;
    match documents.len() {
        1 => Ok(documents.remove(0)),
        n => Err(ApiError::bad_request(format!("an apply configuration is one YAML document, not {n}"))),
    }
}

pub fn apply(api: &Api, resource: &'static Resource, namespace: &str, name: &str, body: &[u8], subresource: Option<&str>, options: &WriteOptions) -> Result<Arc<Object>, ApiError> {
    let manager = options.field_manager.clone().filter(|m| !m.is_empty()).ok_or_else(|| ApiError::bad_request("PATCH, application/apply-patch+yaml: fieldManager is required for apply requests"))?;
    let mut config = parse(body)?;
    if !config.is_object() {
        return Err(ApiError::bad_request("an apply configuration must be an object"));
    }
    if config["metadata"]["name"].as_str().is_some_and(|n| n != name) {
        return Err(ApiError::bad_request("the name of the object does not match the name on the URL"));
    }
    config["metadata"]["name"] = Value::String(name.to_string());
    let key = record_key(&manager, resource, namespace, name);
    let previous: Value = api.store.record(&key)?.and_then(|bytes| serde_json::from_slice(&bytes).ok()).unwrap_or(Value::Object(Map::new()));
    let stored = match api.store.get(&resource.key(namespace, name)) {
        None => api.create(resource, namespace, config.clone(), options)?,
        Some(_) => {
            let mut attempt = 0;
            loop {
                attempt += 1;
                let current = api.get(resource, namespace, name)?;
                let mut merged = current.value();
                remove_unapplied(resource.kind, &mut Vec::new(), &mut merged, &previous, &config);
                let merged = patch::strategic_merge(resource.kind, &merged, config.to_string().as_bytes())?;
                let mut body = merged;
                body["metadata"]["resourceVersion"] = Value::String(current.rv.to_string());
                match api.update(resource, namespace, name, body, subresource, options) {
                    Err(error) if error.reason == "Conflict" && attempt < 5 => continue,
                    other => break other?,
                }
            }
        }
    };
    if !options.dry_run {
        api.store.set_record(&key, Some(config.to_string().as_bytes()))?;
    }
    Ok(stored)
}

/// Removes from `target` what `old` applied and `new` no longer does.
fn remove_unapplied<'a>(kind: &str, path: &mut Vec<&'a str>, target: &mut Value, old: &'a Value, new: &Value) {
    let (Some(old), Some(target_map)) = (old.as_object(), target.as_object_mut()) else { return };
    for (key, old_value) in old {
        let Some(new_value) = new.get(key) else {
            target_map.remove(key);
            continue;
        };
        match (old_value, new_value) {
            (Value::Object(_), Value::Object(_)) => {
                if let Some(inner) = target_map.get_mut(key) {
                    path.push(key);
                    remove_unapplied(kind, path, inner, old_value, new_value);
                    path.pop();
                }
            }
            (Value::Array(old_items), Value::Array(new_items)) => {
                let Some(merge_key) = patch::list_merge_key(kind, path, key) else { continue };
                let Some(Value::Array(items)) = target_map.get_mut(key) else { continue };
                path.push(key);
                for old_item in old_items {
                    let id = old_item.get(merge_key);
                    let Some(new_item) = new_items.iter().find(|n| n.get(merge_key) == id) else {
                        items.retain(|item| item.get(merge_key) != id);
                        continue;
                    };
                    if let Some(item) = items.iter_mut().find(|item| item.get(merge_key) == id) {
                        remove_unapplied(kind, path, item, old_item, new_item);
                    }
                }
                path.pop();
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fields_the_manager_stopped_applying_are_removed() {
        let mut live = json!({"metadata": {"labels": {"a": "1", "b": "2", "theirs": "x"}},
                              "spec": {"template": {"spec": {"containers": [{"name": "web", "image": "nginx", "env": [{"name": "X", "value": "1"}]}, {"name": "old"}]}}}});
        let old = json!({"metadata": {"labels": {"a": "1", "b": "2"}}, "spec": {"template": {"spec": {"containers": [{"name": "web", "env": [{"name": "X", "value": "1"}]}, {"name": "old"}]}}}});
        let new = json!({"metadata": {"labels": {"a": "1"}}, "spec": {"template": {"spec": {"containers": [{"name": "web"}]}}}});
        remove_unapplied("Deployment", &mut Vec::new(), &mut live, &old, &new);
        assert_eq!(live["metadata"]["labels"], json!({"a": "1", "theirs": "x"}));
        assert_eq!(live["spec"]["template"]["spec"]["containers"], json!([{"name": "web", "image": "nginx"}]));
    }
}
