//! Semantic validation per kind (422 with one cause per field). NetworkPolicies are
//! validated by `palisade-model`, the same code `palisade check` runs on manifests: the
//! field paths and messages are the ones the analysis reports.

use serde_json::Value;

use crate::error::Cause;
use crate::resources::Resource;

fn label_selector_matches(selector: &Value, labels: &Value) -> bool {
    let label = |k: &str| labels.get(k).and_then(Value::as_str);
    let match_labels = selector["matchLabels"].as_object().into_iter().flatten().all(|(k, v)| label(k) == v.as_str());
    let expressions = selector["matchExpressions"].as_array().into_iter().flatten().all(|e| {
        let key = e["key"].as_str().unwrap_or_default();
        let values: Vec<&str> = e["values"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
        match e["operator"].as_str().unwrap_or_default() {
            "In" => label(key).is_some_and(|v| values.contains(&v)),
            "NotIn" => label(key).is_none_or(|v| !values.contains(&v)),
            "Exists" => label(key).is_some(),
            "DoesNotExist" => label(key).is_none(),
            _ => false,
        }
    });
    match_labels && expressions
}

fn containers(spec: &Value, path: &str, causes: &mut Vec<Cause>) {
    use palisade_model::convert::names::dns1123_label;
    let list = spec["containers"].as_array();
    if list.is_none_or(Vec::is_empty) {
        causes.push(Cause::required(format!("{path}.containers")));
        return;
    }
    let mut names = Vec::new();
    for (i, container) in list.into_iter().flatten().enumerate() {
        let at = format!("{path}.containers[{i}]");
        match container["name"].as_str() {
            None | Some("") => causes.push(Cause::required(format!("{at}.name"))),
            Some(name) => {
                for problem in dns1123_label(name) {
                    causes.push(Cause::invalid(format!("{at}.name"), &container["name"], &problem));
                }
                if names.contains(&name) {
                    causes.push(Cause::new("FieldValueDuplicate", format!("{at}.name"), format!("Duplicate value: \"{name}\"")));
                }
                names.push(name);
            }
        }
        if container["image"].as_str().is_none_or(str::is_empty) {
            causes.push(Cause::required(format!("{at}.image")));
        }
        for (j, port) in container["ports"].as_array().into_iter().flatten().enumerate() {
            let number = port["containerPort"].as_i64().unwrap_or(0);
            if !(1..=65535).contains(&number) {
                causes.push(Cause::invalid(format!("{at}.ports[{j}].containerPort"), &port["containerPort"], "must be between 1 and 65535, inclusive"));
            }
        }
    }
}

fn workload(object: &Value, causes: &mut Vec<Cause>) {
    let selector = &object["spec"]["selector"];
    if !selector.is_object() {
        causes.push(Cause::required("spec.selector"));
    } else if selector["matchLabels"].as_object().is_none_or(|m| m.is_empty()) && selector["matchExpressions"].as_array().is_none_or(Vec::is_empty) {
        causes.push(Cause::invalid("spec.selector", selector, "empty selector is invalid for deployment"));
    }
    let template = &object["spec"]["template"];
    let labels = &template["metadata"]["labels"];
    if selector.is_object() && !label_selector_matches(selector, labels) {
        causes.push(Cause::invalid("spec.template.metadata.labels", labels, "`selector` does not match template `labels`"));
    }
    containers(&template["spec"], "spec.template.spec", causes);
}

/// Problems of an object about to be stored (its metadata is checked by `meta`).
pub fn validate(resource: &Resource, object: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    match (resource.group, resource.kind) {
        ("", "Pod") => containers(&object["spec"], "spec", &mut causes),
        ("apps", "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet") => workload(object, &mut causes),
        ("batch", "Job") => {
            containers(&object["spec"]["template"]["spec"], "spec.template.spec", &mut causes);
            let policy = &object["spec"]["template"]["spec"]["restartPolicy"];
            if !matches!(policy.as_str(), Some("OnFailure" | "Never")) {
                causes.push(Cause::new("FieldValueNotSupported", "spec.template.spec.restartPolicy", format!("Unsupported value: {policy}: supported values: \"OnFailure\", \"Never\"")));
            }
        }
        ("", "Service") => {
            for (i, port) in object["spec"]["ports"].as_array().into_iter().flatten().enumerate() {
                let number = port["port"].as_i64().unwrap_or(0);
                if !(1..=65535).contains(&number) {
                    causes.push(Cause::invalid(format!("spec.ports[{i}].port"), &port["port"], "must be between 1 and 65535, inclusive"));
                }
            }
            let headless = object["spec"]["clusterIP"] == "None";
            if !headless && object["spec"]["ports"].as_array().is_none_or(Vec::is_empty) {
                causes.push(Cause::required("spec.ports"));
            }
        }
        ("networking.k8s.io", "NetworkPolicy") => {
            let namespace = object["metadata"]["namespace"].as_str().unwrap_or("default");
            if let Ok(np) = palisade_model::load::kinds::typed::<k8s_openapi::api::networking::v1::NetworkPolicy>(object)
                && let Err(errors) = palisade_model::convert::network_policy(&np, namespace, Default::default())
            {
                // Name problems are reported with the rest of the metadata.
                causes.extend(errors.into_iter().filter(|e| !e.path.to_string().starts_with("metadata")).map(|e| Cause::new("FieldValueInvalid", e.path.to_string(), e.message)));
            }
        }
        // The CRD's schema and CEL rules, as palisade-model checks them for `check`.
        ("policy.networking.k8s.io", "ClusterNetworkPolicy") => {
            if let Err(errors) = palisade_model::convert::cluster_policy(object, Default::default()) {
                causes.extend(errors.into_iter().filter(|e| !e.path.to_string().starts_with("metadata")).map(|e| Cause::new("FieldValueInvalid", e.path.to_string(), e.message)));
            }
        }
        ("rbac.authorization.k8s.io", "RoleBinding" | "ClusterRoleBinding") => {
            let role = &object["roleRef"];
            if role["name"].as_str().is_none_or(str::is_empty) {
                causes.push(Cause::required("roleRef.name"));
            }
            if !matches!(role["kind"].as_str(), Some("Role" | "ClusterRole")) {
                causes.push(Cause::new("FieldValueNotSupported", "roleRef.kind", format!("Unsupported value: {}: supported values: \"Role\", \"ClusterRole\"", role["kind"])));
            }
            if resource.kind == "ClusterRoleBinding" && role["kind"] == "Role" {
                causes.push(Cause::new("FieldValueNotSupported", "roleRef.kind", "Unsupported value: \"Role\": supported values: \"ClusterRole\""));
            }
        }
        _ => {}
    }
    causes
}

/// Problems of an update: fields that may not change once set.
pub fn validate_update(resource: &Resource, old: &Value, new: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    let immutable = |pointer: &str, field: &str, causes: &mut Vec<Cause>| {
        if old.pointer(pointer) != new.pointer(pointer) {
            causes.push(Cause::invalid(field, new.pointer(pointer).unwrap_or(&Value::Null), "field is immutable"));
        }
    };
    match (resource.group, resource.kind) {
        ("apps", "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet") => immutable("/spec/selector", "spec.selector", &mut causes),
        ("", "Pod") => {
            // Only container images (and a few fields the lab does not use) may change.
            let mut a = old["spec"].clone();
            let mut b = new["spec"].clone();
            for spec in [&mut a, &mut b] {
                for container in spec["containers"].as_array_mut().into_iter().flatten() {
                    container["image"] = Value::Null;
                }
                if let Some(map) = spec.as_object_mut() {
                    for field in ["activeDeadlineSeconds", "tolerations", "nodeName"] {
                        map.remove(field);
                    }
                }
            }
            if a != b {
                causes.push(Cause::new(
                    "FieldValueForbidden",
                    "spec",
                    "Forbidden: pod updates may not change fields other than `spec.containers[*].image`, `spec.activeDeadlineSeconds` or `spec.tolerations`",
                ));
            }
            if !old["spec"]["nodeName"].is_null() && old["spec"]["nodeName"] != new["spec"]["nodeName"] {
                causes.push(Cause::invalid("spec.nodeName", &new["spec"]["nodeName"], "field is immutable once set"));
            }
        }
        ("rbac.authorization.k8s.io", "RoleBinding" | "ClusterRoleBinding") => immutable("/roleRef", "roleRef", &mut causes),
        _ => {}
    }
    causes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::by_kind;
    use serde_json::json;

    #[test]
    fn network_policies_are_checked_by_the_engine_s_validation() {
        let np = by_kind("networking.k8s.io/v1", "NetworkPolicy").unwrap();
        let bad = json!({"metadata": {"name": "x", "namespace": "a"}, "spec": {"podSelector": {}, "ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/33"}}]}]}});
        let causes = validate(np, &bad);
        assert_eq!(causes.len(), 1, "{causes:?}");
        assert_eq!(causes[0].field, "spec.ingress[0].from[0].ipBlock.cidr");
    }

    #[test]
    fn workloads_need_a_matching_selector() {
        let deploy = by_kind("apps/v1", "Deployment").unwrap();
        let d = json!({"spec": {"selector": {"matchLabels": {"app": "web"}}, "template": {"metadata": {"labels": {"app": "db"}}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}});
        assert_eq!(validate(deploy, &d)[0].field, "spec.template.metadata.labels");
        let ok = json!({"spec": {"selector": {"matchLabels": {"app": "web"}}, "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}});
        assert!(validate(deploy, &ok).is_empty());
        let mut changed = ok.clone();
        changed["spec"]["selector"]["matchLabels"]["app"] = json!("x");
        assert_eq!(validate_update(deploy, &ok, &changed)[0].field, "spec.selector");
    }
}
