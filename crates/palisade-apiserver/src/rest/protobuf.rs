//! Protobuf request bodies. kubectl's typed commands (`create namespace`, `create token`,
//! `create configmap|secret|serviceaccount|deployment|job|role|rolebinding|...`, `run`,
//! `expose`) send their object as
//! Kubernetes protobuf (`k8s\0`, then a `runtime.Unknown` holding the object) and do not
//! retry with JSON. The kinds those commands create are decoded with k8s-pb's types and
//! turned into the JSON the store keeps; what those commands do not set is not read. Other
//! protobuf bodies get 415 (answering in JSON is fine for every client).

use std::collections::BTreeMap;

use k8s_pb::api::core::v1 as core;
use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
use prost::Message;
use serde_json::{Map, Value, json};

use crate::error::ApiError;

const MAGIC: &[u8] = b"k8s\0";

fn put(map: &mut Map<String, Value>, key: &str, value: Option<Value>) {
    let empty = |v: &Value| v.is_null() || v.as_array().is_some_and(Vec::is_empty) || v.as_object().is_some_and(Map::is_empty) || v.as_str() == Some("");
    if let Some(v) = value.filter(|v| !empty(v)) {
        map.insert(key.to_string(), v);
    }
}

fn string(v: &Option<String>) -> Option<Value> {
    v.as_ref().map(|s| json!(s))
}

fn strings(v: &[String]) -> Option<Value> {
    Some(json!(v))
}

fn string_map(m: &BTreeMap<String, String>) -> Option<Value> {
    Some(json!(m))
}

fn bytes_map(m: &BTreeMap<String, Vec<u8>>) -> Option<Value> {
    use base64::Engine;
    Some(Value::Object(m.iter().map(|(k, v)| (k.clone(), json!(base64::engine::general_purpose::STANDARD.encode(v)))).collect()))
}

fn object_meta(m: &Option<meta::ObjectMeta>) -> Value {
    let mut out = Map::new();
    if let Some(m) = m {
        put(&mut out, "name", string(&m.name));
        put(&mut out, "generateName", string(&m.generate_name));
        put(&mut out, "namespace", string(&m.namespace));
        put(&mut out, "labels", string_map(&m.labels));
        put(&mut out, "annotations", string_map(&m.annotations));
        put(&mut out, "finalizers", strings(&m.finalizers));
    }
    Value::Object(out)
}

fn label_selector(s: &Option<meta::LabelSelector>) -> Option<Value> {
    let s = s.as_ref()?;
    let mut out = Map::new();
    put(&mut out, "matchLabels", string_map(&s.match_labels));
    let expressions: Vec<Value> = s.match_expressions.iter().map(|e| json!({"key": e.key, "operator": e.operator, "values": e.values})).collect();
    put(&mut out, "matchExpressions", Some(json!(expressions)));
    Some(Value::Object(out))
}

fn int_or_string(v: &Option<k8s_pb::apimachinery::pkg::util::intstr::IntOrString>) -> Option<Value> {
    let v = v.as_ref()?;
    Some(match v.r#type {
        Some(1) => json!(v.str_val.clone().unwrap_or_default()),
        _ => json!(v.int_val.unwrap_or_default()),
    })
}

fn container(c: &core::Container) -> Value {
    let mut out = Map::new();
    put(&mut out, "name", string(&c.name));
    put(&mut out, "image", string(&c.image));
    put(&mut out, "command", strings(&c.command));
    put(&mut out, "args", strings(&c.args));
    put(&mut out, "workingDir", string(&c.working_dir));
    put(&mut out, "imagePullPolicy", string(&c.image_pull_policy));
    let ports: Vec<Value> = c
        .ports
        .iter()
        .map(|p| {
            let mut port = Map::new();
            put(&mut port, "name", string(&p.name));
            put(&mut port, "containerPort", p.container_port.map(|n| json!(n)));
            put(&mut port, "protocol", string(&p.protocol));
            Value::Object(port)
        })
        .collect();
    put(&mut out, "ports", Some(json!(ports)));
    let env: Vec<Value> = c.env.iter().map(|e| json!({"name": e.name, "value": e.value})).collect();
    put(&mut out, "env", Some(json!(env)));
    put(&mut out, "stdin", c.stdin.map(|b| json!(b)));
    put(&mut out, "tty", c.tty.map(|b| json!(b)));
    Value::Object(out)
}

fn pod_spec(s: &Option<core::PodSpec>) -> Value {
    let mut out = Map::new();
    if let Some(s) = s {
        put(&mut out, "containers", Some(json!(s.containers.iter().map(container).collect::<Vec<_>>())));
        put(&mut out, "initContainers", Some(json!(s.init_containers.iter().map(container).collect::<Vec<_>>())));
        put(&mut out, "restartPolicy", string(&s.restart_policy));
        put(&mut out, "dnsPolicy", string(&s.dns_policy));
        put(&mut out, "serviceAccountName", string(&s.service_account_name));
        put(&mut out, "nodeName", string(&s.node_name));
        put(&mut out, "hostNetwork", s.host_network.map(|b| json!(b)));
        put(&mut out, "nodeSelector", string_map(&s.node_selector));
    }
    Value::Object(out)
}

fn template(t: &Option<core::PodTemplateSpec>) -> Value {
    let t = t.clone().unwrap_or_default();
    json!({"metadata": object_meta(&t.metadata), "spec": pod_spec(&t.spec)})
}

fn decode<M: Message + Default>(raw: &[u8], kind: &str) -> Result<M, ApiError> {
    M::decode(raw).map_err(|e| ApiError::bad_request(format!("the {kind} in the protobuf body does not decode: {e}")))
}

/// The JSON object of a protobuf body.
pub fn decode_body(body: &[u8]) -> Result<Value, ApiError> {
    let envelope = body.strip_prefix(MAGIC).ok_or_else(|| ApiError::bad_request("a protobuf body starts with k8s\\0"))?;
    let unknown = k8s_pb::apimachinery::pkg::runtime::Unknown::decode(envelope).map_err(|e| ApiError::bad_request(format!("the protobuf envelope does not decode: {e}")))?;
    let type_meta = unknown.type_meta.unwrap_or_default();
    let (api_version, kind) = (type_meta.api_version.unwrap_or_default(), type_meta.kind.unwrap_or_default());
    let raw = unknown.raw.unwrap_or_default();
    let mut object = match (api_version.as_str(), kind.as_str()) {
        ("v1", "Namespace") => {
            let ns: core::Namespace = decode(&raw, &kind)?;
            json!({"metadata": object_meta(&ns.metadata), "spec": {"finalizers": ns.spec.map(|s| s.finalizers).unwrap_or_default()}})
        }
        ("v1", "ServiceAccount") => {
            let sa: core::ServiceAccount = decode(&raw, &kind)?;
            json!({"metadata": object_meta(&sa.metadata)})
        }
        ("v1", "ConfigMap") => {
            let cm: core::ConfigMap = decode(&raw, &kind)?;
            let mut out = json!({"metadata": object_meta(&cm.metadata)});
            put(out.as_object_mut().expect("object"), "data", string_map(&cm.data));
            put(out.as_object_mut().expect("object"), "binaryData", bytes_map(&cm.binary_data));
            out
        }
        ("v1", "Secret") => {
            let secret: core::Secret = decode(&raw, &kind)?;
            let mut out = json!({"metadata": object_meta(&secret.metadata)});
            let map = out.as_object_mut().expect("object");
            put(map, "type", string(&secret.r#type));
            put(map, "data", bytes_map(&secret.data));
            put(map, "stringData", string_map(&secret.string_data));
            out
        }
        ("v1", "Pod") => {
            let pod: core::Pod = decode(&raw, &kind)?;
            json!({"metadata": object_meta(&pod.metadata), "spec": pod_spec(&pod.spec)})
        }
        ("v1", "Service") => {
            let service: core::Service = decode(&raw, &kind)?;
            let spec = service.spec.unwrap_or_default();
            let ports: Vec<Value> = spec
                .ports
                .iter()
                .map(|p| {
                    let mut port = Map::new();
                    put(&mut port, "name", string(&p.name));
                    put(&mut port, "protocol", string(&p.protocol));
                    put(&mut port, "port", p.port.map(|n| json!(n)));
                    put(&mut port, "targetPort", int_or_string(&p.target_port));
                    Value::Object(port)
                })
                .collect();
            let mut out = Map::new();
            put(&mut out, "ports", Some(json!(ports)));
            put(&mut out, "selector", string_map(&spec.selector));
            put(&mut out, "type", string(&spec.r#type));
            put(&mut out, "clusterIP", string(&spec.cluster_ip));
            json!({"metadata": object_meta(&service.metadata), "spec": out})
        }
        ("apps/v1", "Deployment") => {
            let deployment: k8s_pb::api::apps::v1::Deployment = decode(&raw, &kind)?;
            let spec = deployment.spec.unwrap_or_default();
            let mut out = Map::new();
            put(&mut out, "replicas", spec.replicas.map(|n| json!(n)));
            put(&mut out, "selector", label_selector(&spec.selector));
            out.insert("template".into(), template(&spec.template));
            json!({"metadata": object_meta(&deployment.metadata), "spec": out})
        }
        ("rbac.authorization.k8s.io/v1", "Role" | "ClusterRole") => {
            let (metadata, rules) = if kind == "Role" {
                let role: k8s_pb::api::rbac::v1::Role = decode(&raw, &kind)?;
                (role.metadata, role.rules)
            } else {
                let role: k8s_pb::api::rbac::v1::ClusterRole = decode(&raw, &kind)?;
                (role.metadata, role.rules)
            };
            let rules: Vec<Value> = rules
                .iter()
                .map(|r| {
                    let mut rule = Map::new();
                    put(&mut rule, "verbs", strings(&r.verbs));
                    put(&mut rule, "apiGroups", Some(json!(r.api_groups)));
                    put(&mut rule, "resources", strings(&r.resources));
                    put(&mut rule, "resourceNames", strings(&r.resource_names));
                    put(&mut rule, "nonResourceURLs", strings(&r.non_resource_ur_ls));
                    Value::Object(rule)
                })
                .collect();
            json!({"metadata": object_meta(&metadata), "rules": rules})
        }
        ("rbac.authorization.k8s.io/v1", "RoleBinding" | "ClusterRoleBinding") => {
            let (metadata, subjects, role_ref) = if kind == "RoleBinding" {
                let binding: k8s_pb::api::rbac::v1::RoleBinding = decode(&raw, &kind)?;
                (binding.metadata, binding.subjects, binding.role_ref)
            } else {
                let binding: k8s_pb::api::rbac::v1::ClusterRoleBinding = decode(&raw, &kind)?;
                (binding.metadata, binding.subjects, binding.role_ref)
            };
            let subjects: Vec<Value> = subjects
                .iter()
                .map(|s| {
                    let mut subject = Map::new();
                    put(&mut subject, "kind", string(&s.kind));
                    put(&mut subject, "apiGroup", string(&s.api_group));
                    put(&mut subject, "name", string(&s.name));
                    put(&mut subject, "namespace", string(&s.namespace));
                    Value::Object(subject)
                })
                .collect();
            let role_ref = role_ref.unwrap_or_default();
            json!({"metadata": object_meta(&metadata), "subjects": subjects, "roleRef": {"apiGroup": role_ref.api_group, "kind": role_ref.kind, "name": role_ref.name}})
        }
        ("batch/v1", "Job") => {
            let job: k8s_pb::api::batch::v1::Job = decode(&raw, &kind)?;
            let spec = job.spec.unwrap_or_default();
            let mut out = Map::new();
            put(&mut out, "backoffLimit", spec.backoff_limit.map(|n| json!(n)));
            put(&mut out, "completions", spec.completions.map(|n| json!(n)));
            put(&mut out, "parallelism", spec.parallelism.map(|n| json!(n)));
            out.insert("template".into(), template(&spec.template));
            json!({"metadata": object_meta(&job.metadata), "spec": out})
        }
        ("authentication.k8s.io/v1", "TokenRequest") => {
            let request: k8s_pb::api::authentication::v1::TokenRequest = decode(&raw, &kind)?;
            let spec = request.spec.unwrap_or_default();
            let mut out = Map::new();
            put(&mut out, "audiences", strings(&spec.audiences));
            put(&mut out, "expirationSeconds", spec.expiration_seconds.map(|n| json!(n)));
            json!({"metadata": object_meta(&request.metadata), "spec": out})
        }
        _ => {
            return Err(ApiError::unsupported_media_type(format!(
                "the lab's API server reads protobuf bodies only for the objects kubectl's typed commands create (Namespace, ServiceAccount, ConfigMap, Secret, Pod, Service, Deployment, Job, Role, ClusterRole, RoleBinding, ClusterRoleBinding, TokenRequest), not {api_version} {kind}: send it as JSON (kubectl apply -f)"
            )));
        }
    };
    object["apiVersion"] = json!(api_version);
    object["kind"] = json!(kind);
    Ok(object)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `kubectl create namespace prod` sends.
    fn encode_namespace(name: &str) -> Vec<u8> {
        let ns = core::Namespace { metadata: Some(meta::ObjectMeta { name: Some(name.into()), ..Default::default() }), ..Default::default() };
        let unknown = k8s_pb::apimachinery::pkg::runtime::Unknown {
            type_meta: Some(k8s_pb::apimachinery::pkg::runtime::TypeMeta { api_version: Some("v1".into()), kind: Some("Namespace".into()) }),
            raw: Some(ns.encode_to_vec()),
            content_encoding: Some(String::new()),
            content_type: Some(String::new()),
        };
        let mut body = MAGIC.to_vec();
        body.extend(unknown.encode_to_vec());
        body
    }

    #[test]
    fn a_namespace_decodes_to_its_json() {
        let object = decode_body(&encode_namespace("prod")).unwrap();
        assert_eq!(object["kind"], "Namespace");
        assert_eq!(object["metadata"]["name"], "prod");
        assert!(decode_body(b"nope").is_err());
    }
}
