//! OpenAPI v3: the root lists one document per group-version; each document has the
//! resources' paths with their operations. kubectl looks for a `patch` operation carrying
//! the kind's `x-kubernetes-group-version-kind` and a `fieldValidation` query parameter: then
//! it leaves validation to the server (`fieldValidation=Strict`). The patch operations do not
//! list strategic merge patch, so kubectl's client-side apply computes its patches from its
//! compiled-in knowledge of the built-in kinds (list merge keys), which the server's
//! strategic merge follows (`patch.rs`); the server accepts that content type all the same.

use serde_json::{Map, Value, json};

use crate::resources::{RESOURCES, Resource, group_versions};

/// The document path of a group-version: `api/v1`, `apis/apps/v1`.
fn document_path(group: &str, version: &str) -> String {
    if group.is_empty() { format!("api/{version}") } else { format!("apis/{group}/{version}") }
}

fn fnv(text: &str) -> String {
    let hash = text.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    format!("{hash:016X}")
}

fn gvk(r: &Resource) -> Value {
    json!({"group": r.group, "version": r.version, "kind": r.kind})
}

fn query(name: &str) -> Value {
    json!({"name": name, "in": "query", "schema": {"type": "string", "uniqueItems": true}})
}

fn write_operation(r: &Resource, action: &str, content_types: &[&str]) -> Value {
    let content: Map<String, Value> = content_types.iter().map(|t| (t.to_string(), json!({"schema": {"type": "object"}}))).collect();
    json!({
        "operationId": format!("{action}{}", r.kind),
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": gvk(r),
        "parameters": [query("dryRun"), query("fieldManager"), query("fieldValidation")],
        "requestBody": {"content": content},
        "responses": {"200": {"description": "OK"}},
    })
}

fn read_operation(r: &Resource, action: &str) -> Value {
    json!({"operationId": format!("{action}{}", r.kind), "x-kubernetes-action": action, "x-kubernetes-group-version-kind": gvk(r), "responses": {"200": {"description": "OK"}}})
}

/// The document of one group-version.
pub fn document(group: &str, version: &str) -> Option<Value> {
    let served: Vec<&Resource> = RESOURCES.iter().filter(|r| r.group == group && r.version == version).collect();
    if served.is_empty() {
        return None;
    }
    let prefix = format!("/{}", document_path(group, version));
    let mut paths = Map::new();
    for r in served {
        let collection = if r.namespaced { format!("{prefix}/namespaces/{{namespace}}/{}", r.plural) } else { format!("{prefix}/{}", r.plural) };
        paths.insert(collection.clone(), json!({"get": read_operation(r, "list"), "post": write_operation(r, "post", &["application/json"]), "delete": read_operation(r, "deletecollection")}));
        paths.insert(
            format!("{collection}/{{name}}"),
            json!({
                "get": read_operation(r, "get"),
                "put": write_operation(r, "put", &["application/json"]),
                "patch": write_operation(r, "patch", &["application/json-patch+json", "application/merge-patch+json", "application/apply-patch+yaml"]),
                "delete": read_operation(r, "delete"),
            }),
        );
    }
    Some(json!({"openapi": "3.0.0", "info": {"title": "Kubernetes (palisade lab)", "version": "v1.33.0"}, "paths": paths, "components": {"schemas": {}}}))
}

/// The root: every group-version's document, with a hash that changes with its content.
pub fn root() -> Value {
    let mut paths = Map::new();
    for (group, version) in group_versions() {
        let path = document_path(group, version);
        let hash = document(group, version).map(|d| fnv(&d.to_string())).unwrap_or_default();
        paths.insert(path.clone(), json!({"serverRelativeURL": format!("/openapi/v3/{path}?hash={hash}")}));
    }
    json!({"paths": paths})
}

/// The document at `/openapi/v3/<path>`.
pub fn by_path(path: &str) -> Option<Value> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    match parts.as_slice() {
        ["api", version] => document("", version),
        ["apis", group, version] => document(group, version),
        _ => None,
    }
}

/// The OpenAPI v2 document: no schemas, like the v3 documents. kubectl falls back to it
/// for kinds the v3 documents do not describe (a custom resource's kind, before it reports
/// "no matches for kind"): without it, it fails with a 404 instead of that message.
#[derive(Clone, PartialEq, prost::Message)]
struct SwaggerDocument {
    #[prost(string, tag = "1")]
    swagger: String,
    #[prost(message, optional, tag = "2")]
    info: Option<SwaggerInfo>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct SwaggerInfo {
    #[prost(string, tag = "1")]
    title: String,
    #[prost(string, tag = "2")]
    version: String,
}

/// The media type of `/openapi/v2` in protobuf. kubectl asks for the older spelling
/// (`...spec.v2@v1.0+protobuf`), which Go's media type parser rejects in a response, so
/// kube-openapi answers with this one, as here.
pub const V2_PROTOBUF: &str = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";

/// `/openapi/v2` in protobuf (what client-go's discovery reads) or JSON.
pub fn v2(protobuf: bool) -> Vec<u8> {
    if protobuf {
        let info = SwaggerInfo { title: "Kubernetes (palisade lab)".into(), version: "v1.33.0".into() };
        prost::Message::encode_to_vec(&SwaggerDocument { swagger: "2.0".into(), info: Some(info) })
    } else {
        json!({"swagger": "2.0", "info": {"title": "Kubernetes (palisade lab)", "version": "v1.33.0"}, "paths": {}, "definitions": {}}).to_string().into_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patch_operations_declare_their_kind_and_field_validation() {
        let doc = by_path("apis/apps/v1").unwrap();
        let patch = &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
        assert_eq!(patch["x-kubernetes-group-version-kind"]["kind"], "Deployment");
        assert!(patch["parameters"].as_array().unwrap().iter().any(|p| p["name"] == "fieldValidation"));
        assert!(root()["paths"]["api/v1"]["serverRelativeURL"].as_str().unwrap().starts_with("/openapi/v3/api/v1?hash="));
        assert!(by_path("apis/nope/v1").is_none());
    }
}
