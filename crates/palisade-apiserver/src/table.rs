//! Server-side printing: the `Table` kubectl asks for with
//! `Accept: application/json;as=Table;v=v1;g=meta.k8s.io`, with the columns kubectl's own
//! printers define for each kind (priority 1 columns show with `-o wide`).

use serde_json::{Value, json};

use crate::resources::Resource;

/// A column: name, type, priority (1: only with `-o wide`).
type Column = (&'static str, &'static str, u8);

fn columns(resource: &Resource) -> Vec<Column> {
    let name = ("Name", "string", 0);
    let age = ("Age", "string", 0);
    match (resource.group, resource.plural) {
        ("", "pods") => vec![
            name,
            ("Ready", "string", 0),
            ("Status", "string", 0),
            ("Restarts", "string", 0),
            age,
            ("IP", "string", 1),
            ("Node", "string", 1),
            ("Nominated Node", "string", 1),
            ("Readiness Gates", "string", 1),
        ],
        ("apps", "deployments") => {
            vec![name, ("Ready", "string", 0), ("Up-to-date", "integer", 0), ("Available", "integer", 0), age, ("Containers", "string", 1), ("Images", "string", 1), ("Selector", "string", 1)]
        }
        ("apps", "replicasets") => {
            vec![name, ("Desired", "integer", 0), ("Current", "integer", 0), ("Ready", "integer", 0), age, ("Containers", "string", 1), ("Images", "string", 1), ("Selector", "string", 1)]
        }
        ("apps", "statefulsets") => vec![name, ("Ready", "string", 0), age, ("Containers", "string", 1), ("Images", "string", 1)],
        ("apps", "daemonsets") => vec![
            name,
            ("Desired", "integer", 0),
            ("Current", "integer", 0),
            ("Ready", "integer", 0),
            ("Up-to-date", "integer", 0),
            ("Available", "integer", 0),
            ("Node Selector", "string", 0),
            age,
            ("Containers", "string", 1),
            ("Images", "string", 1),
            ("Selector", "string", 1),
        ],
        ("batch", "jobs") => {
            vec![name, ("Status", "string", 0), ("Completions", "string", 0), ("Duration", "string", 0), age, ("Containers", "string", 1), ("Images", "string", 1), ("Selector", "string", 1)]
        }
        ("", "services") => vec![name, ("Type", "string", 0), ("Cluster-IP", "string", 0), ("External-IP", "string", 0), ("Port(s)", "string", 0), age, ("Selector", "string", 1)],
        ("", "endpoints") => vec![name, ("Endpoints", "string", 0), age],
        ("", "namespaces") => vec![name, ("Status", "string", 0), age],
        ("", "nodes") => vec![
            name,
            ("Status", "string", 0),
            ("Roles", "string", 0),
            age,
            ("Version", "string", 0),
            ("Internal-IP", "string", 1),
            ("External-IP", "string", 1),
            ("OS-Image", "string", 1),
            ("Kernel-Version", "string", 1),
            ("Container-Runtime", "string", 1),
        ],
        ("networking.k8s.io", "networkpolicies") => vec![name, ("Pod-Selector", "string", 0), age],
        ("policy.networking.k8s.io", "clusternetworkpolicies") => vec![name, ("Tier", "string", 0), ("Priority", "integer", 0), age],
        ("", "events") | ("events.k8s.io", "events") => vec![("Last Seen", "string", 0), ("Type", "string", 0), ("Reason", "string", 0), ("Object", "string", 0), ("Message", "string", 0)],
        ("", "serviceaccounts") => vec![name, ("Secrets", "integer", 0), age],
        ("", "secrets") => vec![name, ("Type", "string", 0), ("Data", "integer", 0), age],
        ("", "configmaps") => vec![name, ("Data", "integer", 0), age],
        ("rbac.authorization.k8s.io", "roles" | "clusterroles") => vec![name, ("Created At", "date", 0)],
        ("rbac.authorization.k8s.io", "rolebindings" | "clusterrolebindings") => {
            vec![name, ("Role", "string", 0), age, ("Users", "string", 1), ("Groups", "string", 1), ("ServiceAccounts", "string", 1)]
        }
        _ => vec![name, age],
    }
}

/// A duration as kubectl prints ages (apimachinery `duration.HumanDuration`): `45s`,
/// `3m20s`, `5h`, `2d3h`, `400d`, `3y20d`.
pub fn human_age(seconds: i64) -> String {
    let s = seconds.max(0);
    let pair = |a: i64, unit_a: &str, b: i64, unit_b: &str| if b == 0 { format!("{a}{unit_a}") } else { format!("{a}{unit_a}{b}{unit_b}") };
    let (minutes, hours) = (s / 60, s / 3600);
    if s < 120 {
        format!("{s}s")
    } else if minutes < 10 {
        pair(minutes, "m", s % 60, "s")
    } else if minutes < 180 {
        format!("{minutes}m")
    } else if hours < 8 {
        pair(hours, "h", minutes % 60, "m")
    } else if hours < 48 {
        format!("{hours}h")
    } else if hours < 24 * 8 {
        pair(hours / 24, "d", hours % 24, "h")
    } else if hours < 24 * 365 * 2 {
        format!("{}d", hours / 24)
    } else if hours < 24 * 365 * 8 {
        pair(hours / 24 / 365, "y", (hours / 24) % 365, "d")
    } else {
        format!("{}y", hours / 24 / 365)
    }
}

fn age_of(time: &Value) -> String {
    let Some(at) = time.as_str().and_then(|t| t.parse::<jiff::Timestamp>().ok()) else { return "<unknown>".to_string() };
    human_age(jiff::Timestamp::now().as_second() - at.as_second())
}

fn none_if_empty(text: String) -> String {
    if text.is_empty() { "<none>".to_string() } else { text }
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn int(v: &Value) -> Value {
    json!(v.as_i64().unwrap_or(0))
}

fn selector_text(selector: &Value) -> String {
    let mut parts: Vec<String> = selector["matchLabels"].as_object().into_iter().flatten().map(|(k, v)| format!("{k}={}", text(v))).collect();
    for e in selector["matchExpressions"].as_array().into_iter().flatten() {
        let values: Vec<String> = e["values"].as_array().into_iter().flatten().map(text).collect();
        let key = text(&e["key"]);
        parts.push(match e["operator"].as_str().unwrap_or_default() {
            "In" => format!("{key} in ({})", values.join(",")),
            "NotIn" => format!("{key} notin ({})", values.join(",")),
            "Exists" => key,
            _ => format!("!{key}"),
        });
    }
    parts.join(",")
}

fn containers_and_images(spec: &Value) -> (String, String) {
    let list = spec["containers"].as_array().cloned().unwrap_or_default();
    (list.iter().map(|c| text(&c["name"])).collect::<Vec<_>>().join(","), list.iter().map(|c| text(&c["image"])).collect::<Vec<_>>().join(","))
}

/// The reason a pod shows in STATUS: a waiting or terminated container's reason, or the
/// phase (kubectl's `printPod`).
fn pod_status(pod: &Value) -> String {
    if !pod["metadata"]["deletionTimestamp"].is_null() {
        return "Terminating".to_string();
    }
    let mut reason = pod["status"]["reason"].as_str().map(str::to_string).unwrap_or_else(|| text(&pod["status"]["phase"]));
    for status in pod["status"]["containerStatuses"].as_array().into_iter().flatten() {
        if let Some(waiting) = status["state"]["waiting"]["reason"].as_str() {
            reason = waiting.to_string();
        } else if let Some(terminated) = status["state"]["terminated"].as_object() {
            reason = terminated.get("reason").and_then(Value::as_str).map_or_else(|| "Error".to_string(), str::to_string);
        }
    }
    reason
}

fn cells(resource: &Resource, o: &Value) -> Vec<Value> {
    let name = json!(o["metadata"]["name"]);
    let age = json!(age_of(&o["metadata"]["creationTimestamp"]));
    let spec = &o["spec"];
    let status = &o["status"];
    match (resource.group, resource.plural) {
        ("", "pods") => {
            let statuses = status["containerStatuses"].as_array().cloned().unwrap_or_default();
            let total = spec["containers"].as_array().map_or(0, Vec::len);
            let ready = statuses.iter().filter(|s| s["ready"] == true).count();
            let restarts: i64 = statuses.iter().map(|s| s["restartCount"].as_i64().unwrap_or(0)).sum();
            vec![
                name,
                json!(format!("{ready}/{total}")),
                json!(pod_status(o)),
                json!(restarts.to_string()),
                age,
                json!(none_if_empty(text(&status["podIP"]))),
                json!(none_if_empty(text(&spec["nodeName"]))),
                json!("<none>"),
                json!("<none>"),
            ]
        }
        ("apps", "deployments") => {
            let (containers, images) = containers_and_images(&spec["template"]["spec"]);
            vec![
                name,
                json!(format!("{}/{}", status["readyReplicas"].as_i64().unwrap_or(0), spec["replicas"].as_i64().unwrap_or(0))),
                int(&status["updatedReplicas"]),
                int(&status["availableReplicas"]),
                age,
                json!(containers),
                json!(images),
                json!(selector_text(&spec["selector"])),
            ]
        }
        ("apps", "replicasets") => {
            let (containers, images) = containers_and_images(&spec["template"]["spec"]);
            vec![name, int(&spec["replicas"]), int(&status["replicas"]), int(&status["readyReplicas"]), age, json!(containers), json!(images), json!(selector_text(&spec["selector"]))]
        }
        ("apps", "statefulsets") => {
            let (containers, images) = containers_and_images(&spec["template"]["spec"]);
            vec![name, json!(format!("{}/{}", status["readyReplicas"].as_i64().unwrap_or(0), spec["replicas"].as_i64().unwrap_or(0))), age, json!(containers), json!(images)]
        }
        ("apps", "daemonsets") => {
            let (containers, images) = containers_and_images(&spec["template"]["spec"]);
            let node_selector: Vec<String> = spec["template"]["spec"]["nodeSelector"].as_object().into_iter().flatten().map(|(k, v)| format!("{k}={}", text(v))).collect();
            vec![
                name,
                int(&status["desiredNumberScheduled"]),
                int(&status["currentNumberScheduled"]),
                int(&status["numberReady"]),
                int(&status["updatedNumberScheduled"]),
                int(&status["numberAvailable"]),
                json!(none_if_empty(node_selector.join(","))),
                age,
                json!(containers),
                json!(images),
                json!(selector_text(&spec["selector"])),
            ]
        }
        ("batch", "jobs") => {
            let (containers, images) = containers_and_images(&spec["template"]["spec"]);
            let complete = status["conditions"].as_array().into_iter().flatten().find(|c| c["status"] == "True").map(|c| text(&c["type"]));
            let job_status = complete.unwrap_or_else(|| "Running".to_string());
            vec![
                name,
                json!(job_status),
                json!(format!("{}/{}", status["succeeded"].as_i64().unwrap_or(0), spec["completions"].as_i64().unwrap_or(1))),
                json!(""),
                age,
                json!(containers),
                json!(images),
                json!(selector_text(&spec["selector"])),
            ]
        }
        ("", "services") => {
            let ports: Vec<String> = spec["ports"].as_array().into_iter().flatten().map(|p| format!("{}/{}", text(&p["port"]), text(&p["protocol"]))).collect();
            let selector: Vec<String> = spec["selector"].as_object().into_iter().flatten().map(|(k, v)| format!("{k}={}", text(v))).collect();
            vec![
                name,
                json!(text(&spec["type"])),
                json!(none_if_empty(text(&spec["clusterIP"]))),
                json!("<none>"),
                json!(none_if_empty(ports.join(","))),
                age,
                json!(none_if_empty(selector.join(","))),
            ]
        }
        ("", "endpoints") => {
            let mut endpoints = Vec::new();
            for subset in o["subsets"].as_array().into_iter().flatten() {
                for address in subset["addresses"].as_array().into_iter().flatten() {
                    for port in subset["ports"].as_array().into_iter().flatten() {
                        endpoints.push(format!("{}:{}", text(&address["ip"]), text(&port["port"])));
                    }
                }
            }
            vec![name, json!(none_if_empty(endpoints.join(","))), age]
        }
        ("", "namespaces") => vec![name, json!(text(&status["phase"])), age],
        ("", "nodes") => {
            let ready = status["conditions"].as_array().into_iter().flatten().any(|c| c["type"] == "Ready" && c["status"] == "True");
            let address = |kind: &str| status["addresses"].as_array().into_iter().flatten().find(|a| a["type"] == kind).map(|a| text(&a["address"])).unwrap_or_default();
            let info = &status["nodeInfo"];
            vec![
                name,
                json!(if ready { "Ready" } else { "NotReady" }),
                json!("<none>"),
                age,
                json!(text(&info["kubeletVersion"])),
                json!(none_if_empty(address("InternalIP"))),
                json!("<none>"),
                json!(text(&info["osImage"])),
                json!(text(&info["kernelVersion"])),
                json!(text(&info["containerRuntimeVersion"])),
            ]
        }
        ("networking.k8s.io", "networkpolicies") => vec![name, json!(none_if_empty(selector_text(&spec["podSelector"]))), age],
        ("policy.networking.k8s.io", "clusternetworkpolicies") => vec![name, json!(text(&spec["tier"])), spec["priority"].clone(), age],
        ("", "events") | ("events.k8s.io", "events") => {
            let regarding = if o["involvedObject"].is_object() { &o["involvedObject"] } else { &o["regarding"] };
            let last = if o["lastTimestamp"].is_string() {
                &o["lastTimestamp"]
            } else if o["eventTime"].is_string() {
                &o["eventTime"]
            } else {
                &o["metadata"]["creationTimestamp"]
            };
            let message = if o["message"].is_string() { &o["message"] } else { &o["note"] };
            vec![
                json!(age_of(last)),
                json!(text(&o["type"])),
                json!(text(&o["reason"])),
                json!(format!("{}/{}", text(&regarding["kind"]).to_ascii_lowercase(), text(&regarding["name"]))),
                json!(text(message)),
            ]
        }
        ("", "serviceaccounts") => vec![name, json!(o["secrets"].as_array().map_or(0, Vec::len)), age],
        ("", "secrets") => vec![name, json!(text(&o["type"])), json!(o["data"].as_object().map_or(0, |d| d.len())), age],
        ("", "configmaps") => vec![name, json!(o["data"].as_object().map_or(0, |d| d.len()) + o["binaryData"].as_object().map_or(0, |d| d.len())), age],
        ("rbac.authorization.k8s.io", "roles" | "clusterroles") => vec![name, o["metadata"]["creationTimestamp"].clone()],
        ("rbac.authorization.k8s.io", "rolebindings" | "clusterrolebindings") => {
            let of = |kind: &str| -> String {
                o["subjects"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|s| s["kind"] == kind)
                    .map(|s| if kind == "ServiceAccount" { format!("{}/{}", text(&s["namespace"]), text(&s["name"])) } else { text(&s["name"]) })
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            vec![name, json!(format!("{}/{}", text(&o["roleRef"]["kind"]), text(&o["roleRef"]["name"]))), age, json!(of("User")), json!(of("Group")), json!(of("ServiceAccount"))]
        }
        _ => vec![name, age],
    }
}

/// What each row carries as `object` (`includeObject`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Include {
    None,
    Metadata,
    Object,
}

impl Include {
    pub fn parse(text: Option<&str>) -> Result<Self, String> {
        match text.unwrap_or("") {
            "" | "Metadata" => Ok(Include::Metadata),
            "Object" => Ok(Include::Object),
            "None" => Ok(Include::None),
            other => Err(format!("includeObject must be one of None, Metadata or Object, not {other:?}")),
        }
    }
}

/// One row.
pub fn row(resource: &Resource, object: &Value, include: Include) -> Value {
    let mut row = json!({"cells": cells(resource, object)});
    match include {
        Include::None => {}
        Include::Object => row["object"] = object.clone(),
        Include::Metadata => {
            row["object"] = json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": object["metadata"]});
        }
    }
    row
}

/// The column definitions.
pub fn column_definitions(resource: &Resource) -> Value {
    columns(resource)
        .into_iter()
        .map(|(name, kind, priority)| {
            let format = if name == "Name" { "name" } else { "" };
            json!({"name": name, "type": kind, "format": format, "description": name, "priority": priority})
        })
        .collect()
}

/// A Table of objects (`headers`: false in watch events after the first).
pub fn table(resource: &Resource, objects: &[Value], rv: u64, include: Include, headers: bool, continue_token: Option<&str>) -> Value {
    let mut metadata = json!({"resourceVersion": rv.to_string()});
    if let Some(token) = continue_token {
        metadata["continue"] = json!(token);
    }
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
        "columnDefinitions": if headers { column_definitions(resource) } else { Value::Null },
        "rows": objects.iter().map(|o| row(resource, o, include)).collect::<Vec<_>>(),
    })
}

/// A list's Table as JSON text, built one stored object at a time: each is parsed, turned
/// into its row, written out and dropped, so a 10,000-pod `kubectl get pods -A` holds
/// one object tree at a time rather than all of them and a second tree of rows.
pub fn table_json<'a>(resource: &Resource, objects: impl ExactSizeIterator<Item = &'a str>, rv: u64, include: Include, continue_token: Option<&str>) -> String {
    let mut metadata = json!({"resourceVersion": rv.to_string()});
    if let Some(token) = continue_token {
        metadata["continue"] = json!(token);
    }
    let head = json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": metadata, "columnDefinitions": column_definitions(resource)}).to_string();
    let mut out = String::with_capacity(head.len() + objects.len() * 512);
    out.push_str(&head[..head.len() - 1]);
    out.push_str(",\"rows\":[");
    for (i, text) in objects.enumerate() {
        if i > 0 {
            out.push(',');
        }
        let object: Value = serde_json::from_str(text).unwrap_or(Value::Null);
        out.push_str(&row(resource, &object, include).to_string());
    }
    out.push_str("]}");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::by_kind;

    #[test]
    fn pods_print_like_kubectl() {
        let pod = json!({"metadata": {"name": "web-1", "creationTimestamp": "2020-01-01T00:00:00Z"},
                         "spec": {"nodeName": "node-1", "containers": [{"name": "c"}, {"name": "d"}]},
                         "status": {"phase": "Running", "podIP": "10.244.1.5", "containerStatuses": [{"ready": true, "restartCount": 2}, {"ready": false, "restartCount": 0, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}});
        let cells = cells(by_kind("v1", "Pod").unwrap(), &pod);
        assert_eq!(cells[0], "web-1");
        assert_eq!(cells[1], "1/2");
        assert_eq!(cells[2], "CrashLoopBackOff");
        assert_eq!(cells[3], "2");
        assert_eq!(cells[5], "10.244.1.5");
        assert_eq!(cells[6], "node-1");
        let t = table(by_kind("v1", "Pod").unwrap(), &[pod.clone()], 7, Include::Metadata, true, None);
        assert_eq!(t["columnDefinitions"][5]["priority"], 1);
        assert_eq!(t["rows"][0]["object"]["kind"], "PartialObjectMetadata");
        let text = pod.to_string();
        let streamed: Value = serde_json::from_str(&table_json(by_kind("v1", "Pod").unwrap(), [text.as_str(), text.as_str()].into_iter(), 7, Include::Metadata, Some("next"))).unwrap();
        let mut whole = table(by_kind("v1", "Pod").unwrap(), &[pod.clone(), pod], 7, Include::Metadata, true, Some("next"));
        // Ages are computed when the rows are made; both rows were made the same second.
        whole["rows"][1]["cells"][4] = streamed["rows"][1]["cells"][4].clone();
        assert_eq!(streamed, whole, "the streamed list's Table equals the whole one");
    }

    #[test]
    fn ages_read_like_kubectls() {
        for (s, text) in [(5, "5s"), (130, "2m10s"), (180, "3m"), (700, "11m"), (4 * 3600, "4h"), (3 * 86_400 + 3600, "3d1h"), (400 * 86_400, "400d")] {
            assert_eq!(human_age(s), text, "{s}");
        }
    }
}
