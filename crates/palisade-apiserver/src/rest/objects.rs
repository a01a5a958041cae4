//! The object verbs: get, list (selectors, pages, Table, metadata-only), create, update,
//! patch, delete, deletecollection; the watch and subresources are dispatched from here.

use std::sync::Arc;

use axum::body::Bytes;
use axum::http::{Method, StatusCode};
use axum::response::Response;
use serde_json::{Value, json};

use super::request::Query;
use super::{Server, error_response, json_response, raw_json, subresources, watch};
use crate::api::{DeleteOptions, Deleted, WriteOptions};
use crate::error::ApiError;
use crate::fields;
use crate::patch::PatchType;
use crate::resources::Resource;
use crate::selectors::{self, FieldSelector, LabelSelector};
use crate::store::Object;
use crate::table::{self, Include};

/// One request to a resource.
pub struct Call {
    pub server: Arc<Server>,
    pub resource: &'static Resource,
    pub namespace: String,
    pub name: Option<String>,
    pub subresource: Option<String>,
    pub query: Query,
    pub accept: String,
    pub content_type: String,
    pub body: Bytes,
    pub legacy_watch: bool,
}

/// How objects go back: as themselves, as a Table, or as their metadata.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    Object,
    Table(Include),
    Metadata,
}

pub fn shape(accept: &str, query: &Query) -> Result<Shape, ApiError> {
    let first = accept.split(',').map(str::trim).find(|choice| choice.contains("as=") || choice.starts_with("application/json") || choice.starts_with("*/*"));
    let Some(choice) = first else { return Ok(Shape::Object) };
    if choice.contains("as=Table") {
        return Include::parse(query.get("includeObject")).map(Shape::Table).map_err(ApiError::bad_request);
    }
    if choice.contains("as=PartialObjectMetadata") {
        return Ok(Shape::Metadata);
    }
    Ok(Shape::Object)
}

pub fn selectors(resource: &Resource, query: &Query) -> Result<(LabelSelector, FieldSelector), ApiError> {
    let labels = selectors::parse_labels(query.get("labelSelector").unwrap_or_default())?;
    let fields = selectors::parse_fields(query.get("fieldSelector").unwrap_or_default(), fields::selectable(resource))?;
    Ok((labels, fields))
}

fn write_options(query: &Query) -> WriteOptions {
    WriteOptions {
        dry_run: query.get("dryRun") == Some("All"),
        strict: query.get("fieldValidation") == Some("Strict"),
        field_manager: query.get("fieldManager").map(str::to_string),
        force: query.flag("force"),
    }
}

/// Runs registry work off the async workers (writes wait for the disk).
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(work).await.expect("registry work does not panic")
}

fn metadata_only(object: &Value) -> Value {
    json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": object["metadata"]})
}

fn one(resource: &Resource, object: &Object, shape: Shape, code: StatusCode) -> Response {
    match shape {
        Shape::Object => raw_json(code, object.json.clone()),
        Shape::Metadata => json_response(code, &metadata_only(&object.value())),
        Shape::Table(include) => json_response(code, &table::table(resource, &[object.value()], object.rv, include, true, None)),
    }
}

/// The body of a write: JSON (also without a Content-Type, as the Python client sends
/// it), YAML, or Kubernetes protobuf.
fn body_object(call: &Call) -> Result<Value, ApiError> {
    if call.content_type.starts_with("application/vnd.kubernetes.protobuf") {
        return super::protobuf::decode_body(&call.body);
    }
    if call.content_type.starts_with("application/yaml") {
        return crate::apply::parse(&call.body);
    }
    if !(call.content_type.is_empty() || call.content_type.starts_with("application/json") || call.content_type.starts_with("*/*")) {
        return Err(ApiError::unsupported_media_type(format!(
            "the body's media type {:?} is not supported: send application/json, application/yaml or application/vnd.kubernetes.protobuf",
            call.content_type
        )));
    }
    serde_json::from_slice(&call.body).map_err(|e| ApiError::bad_request(format!("the request body is not valid JSON: {e}")))
}

pub async fn dispatch(call: Call, method: Method) -> Response {
    let result = match (&method, call.name.clone(), call.subresource.clone()) {
        (&Method::GET, None, _) if call.legacy_watch || call.query.flag("watch") => return watch::serve(call).await,
        (&Method::GET, None, None) => list(&call),
        (&Method::GET, Some(name), None | Some(_)) if call.subresource.as_deref().is_none_or(|s| s == "status") => get(&call, &name),
        (&Method::GET, Some(name), Some(sub)) if sub == "scale" => subresources::get_scale(&call, &name),
        (&Method::GET, Some(name), Some(sub)) if sub == "log" => return subresources::log(call, name).await,
        (&Method::POST, None, None) => create(call).await,
        (&Method::POST, Some(name), Some(sub)) if sub == "token" => subresources::token(call, name).await,
        (&Method::PUT, Some(name), sub) if sub.as_deref() != Some("scale") => update(call, name).await,
        (&Method::PUT | &Method::PATCH, Some(name), Some(sub)) if sub == "scale" => subresources::write_scale(call, name, method == Method::PATCH).await,
        (&Method::PATCH, Some(name), _) => patch(call, name).await,
        (&Method::DELETE, Some(name), None) => delete(call, name).await,
        (&Method::DELETE, None, None) => delete_collection(call).await,
        _ => Err(ApiError::method_not_allowed(format!("the server does not allow this method on the requested resource ({method} {})", call.resource.plural))),
    };
    result.unwrap_or_else(|e| error_response(&e))
}

fn get(call: &Call, name: &str) -> Result<Response, ApiError> {
    let object = call.server.api.get(call.resource, &call.namespace, name)?;
    Ok(one(call.resource, &object, shape(&call.accept, &call.query)?, StatusCode::OK))
}

/// A continue token: where the next page starts (hex, opaque to clients).
fn continue_token(object: &Object) -> String {
    format!("{}\0{}", object.key.namespace, object.key.name).bytes().map(|b| format!("{b:02x}")).collect()
}

fn parse_continue(token: &str) -> Result<(String, String), ApiError> {
    let bad = || ApiError::gone("the provided continue parameter is too old to display a consistent list result");
    let bytes: Vec<u8> = (0..token.len()).step_by(2).map(|i| token.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok())).collect::<Option<_>>().ok_or_else(bad)?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    let (ns, name) = text.split_once('\0').ok_or_else(bad)?;
    Ok((ns.to_string(), name.to_string()))
}

fn list(call: &Call) -> Result<Response, ApiError> {
    let (labels, fields) = selectors(call.resource, &call.query)?;
    let rv_match = call.query.get("resourceVersionMatch").filter(|m| !m.is_empty());
    let asked_rv = call.query.get("resourceVersion").filter(|r| !r.is_empty());
    if rv_match.is_some() && asked_rv.is_none() {
        return Err(list_options_invalid("resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided"));
    }
    if rv_match.is_some() && call.query.get("continue").is_some_and(|c| !c.is_empty()) {
        return Err(list_options_invalid("resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden for continue"));
    }
    let namespace = if call.namespace.is_empty() { None } else { Some(call.namespace.as_str()) };
    let (mut items, rv) = call.server.api.list(call.resource, namespace, &labels, &fields);
    if rv_match == Some("Exact") && asked_rv != Some(rv.to_string().as_str()) {
        return Err(ApiError::gone(format!("too old resource version: {} ({rv})", asked_rv.unwrap_or_default())));
    }
    if let Some(token) = call.query.get("continue").filter(|t| !t.is_empty()) {
        let (ns, name) = parse_continue(token)?;
        items.retain(|o| (o.key.namespace.as_str(), o.key.name.as_str()) > (ns.as_str(), name.as_str()));
    }
    let limit = call.query.number("limit")?.filter(|l| *l > 0).map(|l| l as usize);
    let next = match limit {
        Some(limit) if items.len() > limit => {
            items.truncate(limit);
            items.last().map(|o| continue_token(o))
        }
        _ => None,
    };
    let resource = call.resource;
    match shape(&call.accept, &call.query)? {
        Shape::Table(include) => Ok(raw_json(StatusCode::OK, table::table_json(resource, items.iter().map(|o| o.json.as_str()), rv, include, next.as_deref()))),
        Shape::Metadata => {
            let mut metadata = json!({"resourceVersion": rv.to_string()});
            if let Some(next) = &next {
                metadata["continue"] = json!(next);
            }
            let items: Vec<Value> = items.iter().map(|o| metadata_only(&o.value())).collect();
            Ok(json_response(StatusCode::OK, &json!({"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1", "metadata": metadata, "items": items})))
        }
        Shape::Object => {
            // The stored JSON is copied as it is: a 10k-pod list costs a memcpy per pod.
            let size: usize = items.iter().map(|o| o.json.len() + 1).sum();
            let mut out = String::with_capacity(size + 256);
            out.push_str(&format!("{{\"kind\":\"{}List\",\"apiVersion\":\"{}\",\"metadata\":{{\"resourceVersion\":\"{rv}\"", resource.kind, resource.api_version()));
            if let Some(next) = &next {
                out.push_str(&format!(",\"continue\":\"{next}\""));
            }
            out.push_str("},\"items\":[");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&item.json);
            }
            out.push_str("]}");
            Ok(raw_json(StatusCode::OK, out))
        }
    }
}

fn list_options_invalid(detail: &str) -> ApiError {
    ApiError::new(422, "Invalid", format!("ListOptions.meta.k8s.io \"\" is invalid: {detail}"))
}

async fn create(call: Call) -> Result<Response, ApiError> {
    let body = body_object(&call)?;
    let options = write_options(&call.query);
    let shape = shape(&call.accept, &call.query)?;
    let (api, resource, namespace) = (call.server.api.clone(), call.resource, call.namespace.clone());
    let object = blocking(move || api.create(resource, &namespace, body, &options)).await?;
    Ok(one(resource, &object, shape, StatusCode::CREATED))
}

async fn update(call: Call, name: String) -> Result<Response, ApiError> {
    let body = body_object(&call)?;
    let options = write_options(&call.query);
    let shape = shape(&call.accept, &call.query)?;
    let (api, resource, namespace, sub) = (call.server.api.clone(), call.resource, call.namespace.clone(), call.subresource.clone());
    if sub.as_deref().is_some_and(|s| s != "status" && s != "finalize") {
        return Err(ApiError::method_not_allowed(format!("PUT is not allowed on {}/{}", resource.plural, sub.unwrap_or_default())));
    }
    let object = blocking(move || api.update(resource, &namespace, &name, body, sub.as_deref(), &options)).await?;
    Ok(one(resource, &object, shape, StatusCode::OK))
}

async fn patch(call: Call, name: String) -> Result<Response, ApiError> {
    let patch_type = PatchType::from_content_type(&call.content_type).ok_or_else(|| {
        ApiError::unsupported_media_type(format!(
            "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json (not {:?})",
            call.content_type
        ))
    })?;
    let options = write_options(&call.query);
    let shape = shape(&call.accept, &call.query)?;
    let (api, resource, namespace, sub, body) = (call.server.api.clone(), call.resource, call.namespace.clone(), call.subresource.clone(), call.body.clone());
    let object = blocking(move || api.patch(resource, &namespace, &name, patch_type, &body, sub.as_deref(), &options)).await?;
    Ok(one(resource, &object, shape, StatusCode::OK))
}

fn delete_options(call: &Call) -> Result<DeleteOptions, ApiError> {
    let mut options: DeleteOptions =
        if call.body.is_empty() { DeleteOptions::default() } else { serde_json::from_slice(&call.body).map_err(|e| ApiError::bad_request(format!("the DeleteOptions body is not valid: {e}")))? };
    if let Some(policy) = call.query.get("propagationPolicy") {
        options.propagation_policy = Some(policy.to_string());
    }
    if call.query.get("dryRun") == Some("All") {
        options.dry_run = vec!["All".into()];
    }
    Ok(options)
}

async fn delete(call: Call, name: String) -> Result<Response, ApiError> {
    let options = delete_options(&call)?;
    let (api, resource, namespace) = (call.server.api.clone(), call.resource, call.namespace.clone());
    let deleted = blocking(move || api.delete(resource, &namespace, &name, &options)).await?;
    Ok(match deleted {
        Deleted::Gone(object) => raw_json(StatusCode::OK, object.json.clone()),
        Deleted::Pending(object) => raw_json(StatusCode::OK, object.json.clone()),
    })
}

async fn delete_collection(call: Call) -> Result<Response, ApiError> {
    let options = delete_options(&call)?;
    let (labels, fields) = selectors(call.resource, &call.query)?;
    let (api, resource) = (call.server.api.clone(), call.resource);
    let namespace = if call.namespace.is_empty() { None } else { Some(call.namespace.clone()) };
    let deleted = blocking(move || api.delete_collection(resource, namespace.as_deref(), &labels, &fields, &options)).await?;
    let items: Vec<Value> = deleted.iter().map(|o| o.value()).collect();
    Ok(json_response(StatusCode::OK, &json!({"kind": format!("{}List", resource.kind), "apiVersion": resource.api_version(), "metadata": {}, "items": items})))
}
