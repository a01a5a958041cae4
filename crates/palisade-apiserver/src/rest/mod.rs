//! The Kubernetes REST API over the registry: one handler parses the path, authenticates
//! the bearer token, asks RBAC, and dispatches to discovery, OpenAPI, the object verbs,
//! watches and subresources.

mod objects;
pub mod protobuf;
pub mod request;
mod subresources;
mod watch;

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{FromRequestParts, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::api::Api;
use crate::auth::{self, Attributes};
use crate::error::ApiError;
use crate::kubelet::Kubelet;
use crate::{discovery, openapi};
use request::{Query, Target};

/// Request bodies larger than this are refused (413), as the apiserver's 3 MiB limit.
pub const MAX_BODY: usize = 3 << 20;
/// Bodies are read up to this size before being refused, so that clients see the 413.
const DRAIN_LIMIT: usize = 64 << 20;

pub struct Server {
    pub api: Arc<Api>,
    pub kubelet: Option<Arc<dyn Kubelet>>,
    /// `host:port` clients reach the server at (for legacy discovery).
    pub address: String,
}

pub fn router(server: Arc<Server>) -> axum::Router {
    axum::Router::new().fallback(handle).with_state(server)
}

pub fn json_response(code: StatusCode, value: &Value) -> Response {
    (code, [(header::CONTENT_TYPE, "application/json")], value.to_string()).into_response()
}

/// A body that is already JSON.
pub fn raw_json(code: StatusCode, json: String) -> Response {
    (code, [(header::CONTENT_TYPE, "application/json")], json).into_response()
}

pub fn error_response(error: &ApiError) -> Response {
    json_response(StatusCode::from_u16(error.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR), &error.status())
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::AUTHORIZATION)?.to_str().ok()?.strip_prefix("Bearer ").map(str::trim)
}

/// The RBAC verb of a request.
fn verb(method: &Method, target: &Target, query: &Query) -> String {
    let (named, legacy_watch) = match target {
        Target::Resource { name, legacy_watch, .. } => (name.is_some(), *legacy_watch),
        Target::NonResource(_) => (true, false),
    };
    match *method {
        Method::GET | Method::HEAD if legacy_watch || query.flag("watch") => "watch",
        Method::GET | Method::HEAD if named => "get",
        Method::GET | Method::HEAD => "list",
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE if named => "delete",
        Method::DELETE => "deletecollection",
        _ => "unknown",
    }
    .to_string()
}

fn attributes(verb: &str, target: &Target) -> Attributes {
    match target {
        Target::NonResource(path) => Attributes { verb: verb.to_string(), path: Some(path.clone()), ..Default::default() },
        Target::Resource { resource, namespace, name, subresource, .. } => Attributes {
            verb: verb.to_string(),
            group: resource.group.to_string(),
            resource: resource.plural.to_string(),
            subresource: subresource.clone().unwrap_or_default(),
            // A namespace's own requests are in its namespace.
            namespace: if resource.plural == "namespaces" && resource.group.is_empty() { name.clone().unwrap_or_default() } else { namespace.clone().unwrap_or_default() },
            name: name.clone().unwrap_or_default(),
            path: None,
        },
    }
}

/// Reads the whole body, refusing one over the limit only once it has been read.
async fn read_body(body: Body) -> Result<Bytes, ApiError> {
    let bytes = axum::body::to_bytes(body, DRAIN_LIMIT).await.map_err(|e| ApiError::too_large(format!("the request body could not be read: {e}")))?;
    if bytes.len() > MAX_BODY {
        return Err(ApiError::too_large(format!("Request entity too large: limit is {MAX_BODY}")));
    }
    Ok(bytes)
}

async fn handle(State(server): State<Arc<Server>>, request: Request) -> Response {
    let (mut parts, body) = request.into_parts();
    let path = parts.uri.path().to_string();
    let query = Query::parse(parts.uri.query());
    let target = match request::parse_path(&path) {
        Ok(t) => t,
        Err(e) => return error_response(&e),
    };
    let user = match bearer(&parts.headers).and_then(|token| auth::authenticate(&server.api, token)) {
        Some(user) => user,
        None => return error_response(&ApiError::unauthorized()),
    };
    let verb = verb(&parts.method, &target, &query);
    let attributes = attributes(&verb, &target);
    if !auth::authorize(&server.api, &user, &attributes) {
        let mut error = ApiError::forbidden(attributes.forbidden_message(&user));
        if let Target::Resource { resource, name, .. } = &target {
            error.group = Some(resource.group.to_string());
            error.kind = Some(resource.plural.to_string());
            error.name = name.clone();
        }
        return error_response(&error);
    }
    let accept = parts.headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let content_type = parts.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    match target {
        Target::NonResource(path) => non_resource(&server, &path, &accept),
        Target::Resource { resource, namespace, name, subresource, legacy_watch } => {
            let namespace = namespace.unwrap_or_default();
            if subresource.as_deref() == Some("exec") {
                let upgrade = axum::extract::ws::WebSocketUpgrade::from_request_parts(&mut parts, &()).await;
                return subresources::exec(server, &namespace, name.as_deref().unwrap_or_default(), &query, upgrade).await;
            }
            let body = if matches!(parts.method, Method::POST | Method::PUT | Method::PATCH | Method::DELETE) {
                match read_body(body).await {
                    Ok(b) => b,
                    Err(e) => return error_response(&e),
                }
            } else {
                Bytes::new()
            };
            let call = objects::Call { server: server.clone(), resource, namespace, name, subresource, query, accept, content_type, body, legacy_watch };
            objects::dispatch(call, parts.method).await
        }
    }
}

fn non_resource(server: &Server, path: &str, accept: &str) -> Response {
    let ok = |value: Value| json_response(StatusCode::OK, &value);
    match path.trim_end_matches('/') {
        "/version" => ok(discovery::version()),
        "/healthz" | "/livez" | "/readyz" => (StatusCode::OK, "ok").into_response(),
        "/api" if discovery::wants_aggregated(accept) => (StatusCode::OK, [(header::CONTENT_TYPE, discovery::AGGREGATED)], discovery::aggregated(true).to_string()).into_response(),
        "/apis" if discovery::wants_aggregated(accept) => (StatusCode::OK, [(header::CONTENT_TYPE, discovery::AGGREGATED)], discovery::aggregated(false).to_string()).into_response(),
        "/api" => ok(discovery::api_versions(&server.address)),
        "/apis" => ok(discovery::api_group_list()),
        "/openapi/v3" => ok(openapi::root()),
        "/openapi/v2" => {
            let protobuf = accept.contains("protobuf");
            let content_type = if protobuf { openapi::V2_PROTOBUF } else { "application/json" };
            (StatusCode::OK, [(header::CONTENT_TYPE, content_type)], openapi::v2(protobuf)).into_response()
        }
        other => {
            if let Some(document) = other.strip_prefix("/openapi/v3/").and_then(openapi::by_path) {
                return ok(document);
            }
            let parts: Vec<&str> = other.trim_matches('/').split('/').collect();
            let list = match parts.as_slice() {
                ["api", version] => discovery::resource_list("", version),
                ["apis", group, version] => discovery::resource_list(group, version),
                _ => None,
            };
            match list {
                Some(list) => ok(list),
                None => error_response(&ApiError::new(404, "NotFound", "the server could not find the requested resource")),
            }
        }
    }
}
