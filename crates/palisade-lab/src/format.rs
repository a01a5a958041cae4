//! `lab get` output as kubectl prints it: tables (default and `-o wide`), JSON and YAML
//! (one object, or a `List`), and JSONPath templates.

use serde_json::{Value, json};

use crate::error::LabError;
use crate::jsonpath;
use crate::time::age_of;

/// An output format (`-o`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    Table,
    Wide,
    Json,
    Yaml,
    JsonPath(String),
    Name,
}

impl std::str::FromStr for Output {
    type Err = LabError;

    fn from_str(text: &str) -> Result<Self, LabError> {
        Ok(match text {
            "" => Output::Table,
            "wide" => Output::Wide,
            "json" => Output::Json,
            "yaml" => Output::Yaml,
            "name" => Output::Name,
            other => match other.strip_prefix("jsonpath=").or_else(|| other.strip_prefix("jsonpath:")) {
                Some(template) => Output::JsonPath(template.to_string()),
                None => return Err(LabError::invalid(format!("unable to match a printer suitable for the output format {other:?}, allowed formats are: json, jsonpath, name, wide, yaml"))),
            },
        })
    }
}

fn text<'v>(v: &'v Value, pointer: &str) -> &'v str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn number(v: &Value, pointer: &str) -> u64 {
    v.pointer(pointer).and_then(Value::as_u64).unwrap_or(0)
}

fn or_none(s: String) -> String {
    if s.is_empty() { "<none>".to_string() } else { s }
}

fn selector_text(selector: &Value) -> String {
    let mut parts: Vec<String> = selector.as_object().into_iter().flatten().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default())).collect();
    parts.sort();
    parts.join(",")
}

fn match_labels_text(selector: &Value) -> String {
    let mut parts: Vec<String> = selector["matchLabels"].as_object().into_iter().flatten().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default())).collect();
    for expression in selector["matchExpressions"].as_array().into_iter().flatten() {
        let values: Vec<&str> = expression["values"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
        parts.push(format!("{} {} ({})", text(expression, "/key"), text(expression, "/operator"), values.join(",")));
    }
    parts.join(",")
}

/// The STATUS column of a pod, as kubectl derives it.
fn pod_status(pod: &Value) -> String {
    let phase = text(pod, "/status/phase");
    for container in pod["status"]["containerStatuses"].as_array().into_iter().flatten() {
        if let Some(reason) = container["state"]["waiting"]["reason"].as_str() {
            return reason.to_string();
        }
        if let Some(reason) = container["state"]["terminated"]["reason"].as_str()
            && phase != "Running"
        {
            return reason.to_string();
        }
    }
    if phase.is_empty() { "Pending".to_string() } else { phase.to_string() }
}

fn containers(pod_spec: &Value) -> (String, String) {
    let list = pod_spec["containers"].as_array().cloned().unwrap_or_default();
    (list.iter().map(|c| text(c, "/name").to_string()).collect::<Vec<_>>().join(","), list.iter().map(|c| text(c, "/image").to_string()).collect::<Vec<_>>().join(","))
}

fn ports_text(service: &Value) -> String {
    let ports: Vec<String> = service["spec"]["ports"].as_array().into_iter().flatten().map(|p| format!("{}/{}", p["port"], text(p, "/protocol"))).collect();
    or_none(ports.join(","))
}

/// Header and cells of one row for a kind.
fn row(kind: &str, o: &Value, wide: bool) -> (Vec<&'static str>, Vec<String>) {
    let name = text(o, "/metadata/name").to_string();
    let age = age_of(o.pointer("/metadata/creationTimestamp").and_then(Value::as_str));
    let (mut header, mut cells): (Vec<&'static str>, Vec<String>) = match kind {
        "Pod" => {
            let statuses = o["status"]["containerStatuses"].as_array().cloned().unwrap_or_default();
            let total = o["spec"]["containers"].as_array().map_or(0, Vec::len);
            let ready = statuses.iter().filter(|c| c["ready"] == true).count();
            let restarts: u64 = statuses.iter().map(|c| c["restartCount"].as_u64().unwrap_or(0)).sum();
            (vec!["NAME", "READY", "STATUS", "RESTARTS", "AGE"], vec![name, format!("{ready}/{total}"), pod_status(o), restarts.to_string(), age])
        }
        "Deployment" => {
            let replicas = o["spec"]["replicas"].as_u64().unwrap_or(1);
            (
                vec!["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"],
                vec![name, format!("{}/{replicas}", number(o, "/status/readyReplicas")), number(o, "/status/updatedReplicas").to_string(), number(o, "/status/availableReplicas").to_string(), age],
            )
        }
        "ReplicaSet" => (
            vec!["NAME", "DESIRED", "CURRENT", "READY", "AGE"],
            vec![name, o["spec"]["replicas"].as_u64().unwrap_or(1).to_string(), number(o, "/status/replicas").to_string(), number(o, "/status/readyReplicas").to_string(), age],
        ),
        "StatefulSet" => (vec!["NAME", "READY", "AGE"], vec![name, format!("{}/{}", number(o, "/status/readyReplicas"), o["spec"]["replicas"].as_u64().unwrap_or(1)), age]),
        "DaemonSet" => (
            vec!["NAME", "DESIRED", "CURRENT", "READY", "UP-TO-DATE", "AVAILABLE", "NODE SELECTOR", "AGE"],
            vec![
                name,
                number(o, "/status/desiredNumberScheduled").to_string(),
                number(o, "/status/currentNumberScheduled").to_string(),
                number(o, "/status/numberReady").to_string(),
                number(o, "/status/updatedNumberScheduled").to_string(),
                number(o, "/status/numberAvailable").to_string(),
                or_none(selector_text(&o["spec"]["template"]["spec"]["nodeSelector"])),
                age,
            ],
        ),
        "Job" => {
            let completions = o["spec"]["completions"].as_u64().unwrap_or(1);
            let succeeded = number(o, "/status/succeeded");
            let status = if succeeded >= completions { "Complete" } else if number(o, "/status/failed") > o["spec"]["backoffLimit"].as_u64().unwrap_or(6) { "Failed" } else { "Running" };
            (vec!["NAME", "STATUS", "COMPLETIONS", "AGE"], vec![name, status.into(), format!("{succeeded}/{completions}"), age])
        }
        "Service" => (
            vec!["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"],
            vec![name, text(o, "/spec/type").to_string(), text(o, "/spec/clusterIP").to_string(), "<none>".into(), ports_text(o), age],
        ),
        "NetworkPolicy" => (vec!["NAME", "POD-SELECTOR", "AGE"], vec![name, or_none(match_labels_text(&o["spec"]["podSelector"])), age]),
        "Namespace" => (vec!["NAME", "STATUS", "AGE"], vec![name, "Active".into(), age]),
        "Node" => (vec!["NAME", "STATUS", "ROLES", "AGE", "VERSION"], vec![name, "Ready".into(), "<none>".into(), age, "palisade-lab".into()]),
        _ => (vec!["NAME", "AGE"], vec![name, age]),
    };
    if wide {
        match kind {
            "Pod" => {
                header.extend(["IP", "NODE", "NOMINATED NODE", "READINESS GATES"]);
                cells.extend([or_none(text(o, "/status/podIP").to_string()), or_none(text(o, "/spec/nodeName").to_string()), "<none>".into(), "<none>".into()]);
            }
            "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet" | "Job" => {
                let (names, images) = containers(&o["spec"]["template"]["spec"]);
                header.extend(["CONTAINERS", "IMAGES", "SELECTOR"]);
                cells.extend([names, images, or_none(match_labels_text(&o["spec"]["selector"]))]);
            }
            "Service" => {
                header.push("SELECTOR");
                cells.push(or_none(selector_text(&o["spec"]["selector"])));
            }
            "Node" => {
                let addresses: Vec<&str> = o["status"]["addresses"].as_array().into_iter().flatten().filter(|a| a["type"] == "InternalIP").filter_map(|a| a["address"].as_str()).collect();
                header.extend(["INTERNAL-IP", "EXTERNAL-IP", "OS-IMAGE"]);
                cells.extend([addresses.join(","), "<none>".into(), "palisade lab".into()]);
            }
            _ => {}
        }
    }
    (header, cells)
}

/// Aligns rows as kubectl's tabwriter does (3 spaces between columns).
fn align(rows: &[Vec<String>]) -> Vec<String> {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns).map(|c| rows.iter().filter_map(|r| r.get(c)).map(|s| s.chars().count()).max().unwrap_or(0)).collect();
    rows.iter()
        .map(|r| {
            let mut line = String::new();
            for (c, cell) in r.iter().enumerate() {
                if c + 1 == r.len() {
                    line.push_str(cell);
                } else {
                    line.push_str(&format!("{cell:<width$}", width = widths[c] + 3));
                }
            }
            line
        })
        .collect()
}

/// Formats `objects` of `kind`. `single` when one object was asked for by name;
/// `all_namespaces` adds the NAMESPACE column. Returns stdout text.
pub fn format(kind: &str, objects: &[Value], output: &Output, single: bool, all_namespaces: bool) -> Result<String, LabError> {
    let document = if single && objects.len() == 1 { objects[0].clone() } else { json!({"apiVersion": "v1", "kind": "List", "items": objects, "metadata": {"resourceVersion": ""}}) };
    match output {
        Output::Json => Ok(serde_json::to_string_pretty(&document).expect("serializes") + "\n"),
        Output::Yaml => serde_saphyr::to_string(&document).map_err(|e| LabError::failed(format!("YAML output: {e}"))),
        Output::JsonPath(template) => jsonpath::render(template, &document),
        Output::Name => {
            let info = crate::kinds::by_kind(kind).expect("known kind");
            Ok(objects.iter().map(|o| format!("{}\n", info.display(text(o, "/metadata/name")))).collect())
        }
        Output::Table | Output::Wide => {
            let mut rows = Vec::new();
            for object in objects {
                let (mut header, mut cells) = row(kind, object, *output == Output::Wide);
                if all_namespaces {
                    header.insert(0, "NAMESPACE");
                    cells.insert(0, text(object, "/metadata/namespace").to_string());
                }
                if rows.is_empty() {
                    rows.push(header.into_iter().map(str::to_string).collect());
                }
                rows.push(cells);
            }
            Ok(align(&rows).into_iter().map(|l| l + "\n").collect())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, phase: &str, ready: bool) -> Value {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "prod"},
               "spec": {"nodeName": "node-1", "containers": [{"name": "c", "image": "nginx"}]},
               "status": {"phase": phase, "podIP": "10.244.1.2", "containerStatuses": [{"ready": ready, "restartCount": 0, "state": {"running": {}}}]}})
    }

    #[test]
    fn pod_tables() {
        let text = format("Pod", &[pod("nginx-abc", "Running", true), pod("curl-x", "Running", false)], &Output::Table, false, false).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("NAME        READY   STATUS    RESTARTS   AGE"), "{text}");
        assert!(lines[1].starts_with("nginx-abc   1/1     Running   0          "), "{text}");
        let wide = format("Pod", &[pod("a", "Running", true)], &Output::Wide, false, true).unwrap();
        assert!(wide.lines().next().unwrap().starts_with("NAMESPACE   NAME   READY") && wide.contains("10.244.1.2   node-1   <none>"), "{wide}");
    }

    #[test]
    fn structured_outputs() {
        let one = format("Pod", &[pod("a", "Running", true)], &Output::Json, true, false).unwrap();
        assert_eq!(serde_json::from_str::<Value>(&one).unwrap()["metadata"]["name"], "a");
        let many = format("Pod", &[pod("a", "Running", true)], &Output::Json, false, false).unwrap();
        assert_eq!(serde_json::from_str::<Value>(&many).unwrap()["kind"], "List");
        let yaml = format("Pod", &[pod("a", "Running", true)], &Output::Yaml, true, false).unwrap();
        assert!(yaml.contains("kind: Pod\n") && yaml.contains("  name: a\n"), "{yaml}");
        assert_eq!(format("Pod", &[pod("a", "Running", true)], &"jsonpath={.status.podIP}".parse().unwrap(), true, false).unwrap(), "10.244.1.2");
        assert_eq!(format("Pod", &[pod("a", "Running", true)], &Output::Name, false, false).unwrap(), "pod/a\n");
        assert!("xml".parse::<Output>().is_err());
    }

    #[test]
    fn status_column_shows_waiting_reasons() {
        let mut p = pod("a", "Running", false);
        p["status"]["containerStatuses"][0]["state"] = json!({"waiting": {"reason": "CrashLoopBackOff"}});
        assert_eq!(pod_status(&p), "CrashLoopBackOff");
        let mut failed = pod("b", "Failed", false);
        failed["status"]["containerStatuses"][0]["state"] = json!({"terminated": {"reason": "StartError"}});
        assert_eq!(pod_status(&failed), "StartError");
    }
}
