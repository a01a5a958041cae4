//! Watches: one JSON event per line, flushed as it happens. From a resource version (the
//! changes after it, or 410 when they are no longer kept), or from now with the current
//! objects first; WatchList (`sendInitialEvents`) ends the initial objects with a bookmark
//! annotated `k8s.io/initial-events-end`; with `allowWatchBookmarks` an idle watch gets a
//! bookmark every few seconds; `timeoutSeconds` ends it cleanly.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::error_response;
use super::objects::{Call, Shape, selectors, shape};
use crate::error::ApiError;
use crate::resources::Resource;
use crate::store::{EventKind, Filter, Object, WatchMessage};
use crate::table;

/// How often an idle watch that allows bookmarks gets one.
const BOOKMARK_EVERY: Duration = Duration::from_secs(5);
/// A watch without `timeoutSeconds` ends after this (clients watch again).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1800);

fn event_line(kind: &str, object: Value) -> Bytes {
    let mut line = json!({"type": kind, "object": object}).to_string();
    line.push('\n');
    Bytes::from(line)
}

fn bookmark(resource: &Resource, shape: Shape, rv: u64, initial_end: bool) -> Bytes {
    let (kind, api_version) = match shape {
        Shape::Object => (resource.kind.to_string(), resource.api_version()),
        Shape::Metadata => ("PartialObjectMetadata".to_string(), "meta.k8s.io/v1".to_string()),
        Shape::Table(_) => ("Table".to_string(), "meta.k8s.io/v1".to_string()),
    };
    let mut metadata = json!({"resourceVersion": rv.to_string()});
    if initial_end {
        metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    event_line("BOOKMARK", json!({"kind": kind, "apiVersion": api_version, "metadata": metadata}))
}

/// Renders one event's object in the watch's shape; Table events carry the column
/// definitions only in the first.
struct Renderer {
    resource: &'static Resource,
    shape: Shape,
    headers_sent: bool,
}

impl Renderer {
    fn line(&mut self, kind: EventKind, object: &Object) -> Bytes {
        let rendered = match self.shape {
            Shape::Object => {
                let mut line = format!("{{\"type\":\"{}\",\"object\":", kind.word());
                line.push_str(&object.json);
                line.push_str("}\n");
                return Bytes::from(line);
            }
            Shape::Metadata => json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": object.value()["metadata"]}),
            Shape::Table(include) => {
                let headers = !self.headers_sent;
                self.headers_sent = true;
                table::table(self.resource, &[object.value()], object.rv, include, headers, None)
            }
        };
        event_line(kind.word(), rendered)
    }
}

fn gone_stream(error: &ApiError) -> Response {
    let line = event_line("ERROR", error.status());
    (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], line).into_response()
}

pub async fn serve(call: Call) -> Response {
    match start(call) {
        Ok(response) => response,
        Err(error) if error.code == 410 => gone_stream(&error),
        Err(error) => error_response(&error),
    }
}

fn start(call: Call) -> Result<Response, ApiError> {
    let (labels, fields) = selectors(call.resource, &call.query)?;
    let shape = shape(&call.accept, &call.query)?;
    let send_initial = call.query.flag("sendInitialEvents");
    let rv_match = call.query.get("resourceVersionMatch").filter(|m| !m.is_empty());
    if send_initial && rv_match != Some("NotOlderThan") {
        return Err(ApiError::new(422, "Invalid", "ListOptions.meta.k8s.io \"\" is invalid: resourceVersionMatch: Forbidden: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan"));
    }
    let bookmarks = call.query.flag("allowWatchBookmarks");
    let timeout = call.query.number("timeoutSeconds")?.filter(|t| *t > 0).map_or(DEFAULT_TIMEOUT, |t| Duration::from_secs(t as u64));
    let from = match call.query.get("resourceVersion").filter(|r| !r.is_empty()) {
        _ if send_initial => None,
        None | Some("0") => None,
        Some(text) => Some(text.parse::<u64>().map_err(|_| ApiError::bad_request(format!("invalid resourceVersion {text:?}")))?),
    };
    let filter = Filter { resource: Some(call.resource), namespace: Some(call.namespace.clone()).filter(|n| !n.is_empty()), labels, fields };
    let (sender, receiver) = mpsc::unbounded_channel();
    let api = call.server.api.clone();
    let registered_rv = api.store.watch(filter, from, sender)?;
    let (out, body) = mpsc::channel::<Bytes>(64);
    let renderer = Renderer { resource: call.resource, shape, headers_sent: false };
    tokio::spawn(pump(api, receiver, out, renderer, PumpOptions { bookmarks, initial_end: (send_initial && bookmarks).then_some(registered_rv), timeout }));
    let stream = futures::stream::unfold(body, |mut body| async move { body.recv().await.map(|bytes| (Ok::<_, Infallible>(bytes), body)) });
    Ok((StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], Body::from_stream(stream)).into_response())
}

struct PumpOptions {
    bookmarks: bool,
    /// WatchList: the version after which the initial events end.
    initial_end: Option<u64>,
    timeout: Duration,
}

/// Moves events from the store to the client until the client goes, the watch times out,
/// or the watcher falls behind (the stream then ends; the client watches again).
async fn pump(api: Arc<crate::api::Api>, mut events: mpsc::UnboundedReceiver<WatchMessage>, out: mpsc::Sender<Bytes>, mut renderer: Renderer, options: PumpOptions) {
    let deadline = tokio::time::Instant::now() + options.timeout;
    let resource = renderer.resource;
    let shape = renderer.shape;
    if let Some(rv) = options.initial_end {
        // The initial objects are already queued; the bookmark follows them.
        while let Ok(message) = events.try_recv() {
            let WatchMessage::Event(kind, object) = message else { return };
            if out.send(renderer.line(kind, &object)).await.is_err() {
                return;
            }
        }
        if out.send(bookmark(resource, shape, rv, true)).await.is_err() {
            return;
        }
    }
    loop {
        let tick = tokio::time::sleep(BOOKMARK_EVERY);
        tokio::select! {
            message = events.recv() => match message {
                Some(WatchMessage::Event(kind, object)) => {
                    if out.send(renderer.line(kind, &object)).await.is_err() {
                        return;
                    }
                }
                Some(WatchMessage::Expired) | None => return,
            },
            () = tick, if options.bookmarks => {
                // Every event up to the current version is already queued: send those, then
                // the bookmark.
                let rv = api.store.current_rv();
                while let Ok(message) = events.try_recv() {
                    let WatchMessage::Event(kind, object) = message else { return };
                    if out.send(renderer.line(kind, &object)).await.is_err() {
                        return;
                    }
                }
                if out.send(bookmark(resource, shape, rv, false)).await.is_err() {
                    return;
                }
            }
            () = tokio::time::sleep_until(deadline) => return,
            () = out.closed() => return,
        }
    }
}
