//! Subresources: `scale` (as autoscaling/v1 Scale), `serviceaccounts/token`
//! (TokenRequest), `pods/log` (plain text, followed on request) and `pods/exec` (WebSocket,
//! `v5.channel.k8s.io` and `v4.channel.k8s.io`: stdin, stdout, stderr, the exit status on
//! the error channel, terminal resizes).

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

use super::objects::Call;
use super::request::Query;
use super::{Server, error_response, json_response};
use crate::auth::{self, User};
use crate::error::ApiError;
use crate::patch::{self, PatchType};
use crate::resources;

fn scale_of(object: &Value) -> Value {
    let selector = object["spec"]["selector"]["matchLabels"].as_object().map(|m| m.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default())).collect::<Vec<_>>().join(","));
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": object["metadata"]["name"],
            "namespace": object["metadata"]["namespace"],
            "uid": object["metadata"]["uid"],
            "resourceVersion": object["metadata"]["resourceVersion"],
            "creationTimestamp": object["metadata"]["creationTimestamp"],
        },
        "spec": {"replicas": object["spec"]["replicas"].as_i64().unwrap_or(0)},
        "status": {"replicas": object["status"]["replicas"].as_i64().unwrap_or(0), "selector": selector.unwrap_or_default()},
    })
}

pub fn get_scale(call: &Call, name: &str) -> Result<Response, ApiError> {
    let object = call.server.api.get(call.resource, &call.namespace, name)?;
    Ok(json_response(StatusCode::OK, &scale_of(&object.value())))
}

/// PUT or PATCH of `scale`: the new `spec.replicas` goes into the object.
pub async fn write_scale(call: Call, name: String, patching: bool) -> Result<Response, ApiError> {
    let api = call.server.api.clone();
    let (resource, namespace) = (call.resource, call.namespace.clone());
    let content_type = call.content_type.clone();
    let body = call.body.clone();
    let result = tokio::task::spawn_blocking(move || -> Result<Value, ApiError> {
        let current = api.get(resource, &namespace, &name)?;
        let scale = scale_of(&current.value());
        let desired = if patching {
            let patch_type = PatchType::from_content_type(&content_type).ok_or_else(|| ApiError::unsupported_media_type("unsupported patch type for scale"))?;
            match patch_type {
                PatchType::Json => patch::json_patch(&scale, &body)?,
                PatchType::Merge | PatchType::Apply => patch::merge_patch(&scale, &body)?,
                PatchType::Strategic => patch::strategic_merge("Scale", &scale, &body)?,
            }
        } else {
            serde_json::from_slice(&body).map_err(|e| ApiError::bad_request(format!("the Scale is not valid JSON: {e}")))?
        };
        let replicas = desired["spec"]["replicas"].as_i64().ok_or_else(|| ApiError::bad_request("the Scale has no spec.replicas"))?;
        if replicas < 0 {
            return Err(ApiError::invalid(resource, &name, vec![crate::error::Cause::invalid("spec.replicas", &json!(replicas), "must be greater than or equal to 0")]));
        }
        let updated = api
            .modify(resource, &namespace, &name, |object| {
                let changed = object["spec"]["replicas"] != json!(replicas);
                object["spec"]["replicas"] = json!(replicas);
                changed
            })?
            .unwrap_or(current);
        Ok(scale_of(&updated.value()))
    })
    .await
    .expect("scale work does not panic")?;
    Ok(json_response(StatusCode::OK, &result))
}

/// TokenRequest: a token for a ServiceAccount, valid `expirationSeconds` (one hour by
/// default), and only while the account exists.
pub async fn token(call: Call, name: String) -> Result<Response, ApiError> {
    if call.resource.plural != "serviceaccounts" {
        return Err(ApiError::method_not_allowed("only serviceaccounts have a token subresource"));
    }
    let request: Value = if call.content_type.starts_with("application/vnd.kubernetes.protobuf") {
        super::protobuf::decode_body(&call.body)?
    } else {
        serde_json::from_slice(&call.body).map_err(|e| ApiError::bad_request(format!("the TokenRequest is not valid JSON: {e}")))?
    };
    let account = call.server.api.get(call.resource, &call.namespace, &name)?;
    let seconds = request["spec"]["expirationSeconds"].as_i64().unwrap_or(3600);
    if seconds < 600 {
        return Err(ApiError::new(422, "Invalid", "TokenRequest.authentication.k8s.io \"\" is invalid: spec.expirationSeconds: Invalid value: may not specify a duration less than 10 minutes"));
    }
    let expires = jiff::Timestamp::now().as_second() + seconds;
    let token = auth::new_token();
    let user = User::service_account(&call.namespace, &name, &account.index.uid, Some(expires));
    let api = call.server.api.clone();
    let stored = token.clone();
    tokio::task::spawn_blocking(move || auth::issue(&api, &stored, &user)).await.expect("no panic").map_err(ApiError::from)?;
    let at = jiff::Timestamp::from_second(expires).map(crate::meta::timestamp).unwrap_or_default();
    let response = json!({
        "kind": "TokenRequest",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"name": name, "namespace": call.namespace, "creationTimestamp": Value::Null},
        "spec": {"audiences": request["spec"]["audiences"].as_array().cloned().unwrap_or_default(), "expirationSeconds": seconds, "boundObjectRef": Value::Null},
        "status": {"token": token, "expirationTimestamp": at},
    });
    Ok(json_response(StatusCode::CREATED, &response))
}

/// Which container a request means: the one named, or the only one, or the
/// `kubectl.kubernetes.io/default-container` one.
fn container_of(pod: &Value, asked: Option<&str>) -> Result<String, ApiError> {
    let names: Vec<String> = pod["spec"]["containers"].as_array().into_iter().flatten().filter_map(|c| c["name"].as_str().map(str::to_string)).collect();
    let pod_name = pod["metadata"]["name"].as_str().unwrap_or_default();
    match asked.filter(|c| !c.is_empty()) {
        Some(name) if names.iter().any(|n| n == name) => Ok(name.to_string()),
        Some(name) => Err(ApiError::bad_request(format!("container {name} is not valid for pod {pod_name}"))),
        None => {
            if let Some(default) = pod["metadata"]["annotations"]["kubectl.kubernetes.io/default-container"].as_str() {
                return Ok(default.to_string());
            }
            match names.as_slice() {
                [one] => Ok(one.clone()),
                _ => Err(ApiError::bad_request(format!("a container name must be specified for pod {pod_name}, choose one of: [{}]", names.join(" ")))),
            }
        }
    }
}

/// The container's output, as plain text; with `follow=true` the response stays open and
/// new output follows as it is written.
pub async fn log(call: Call, name: String) -> Response {
    let result = async {
        let kubelet = call.server.kubelet.clone().ok_or_else(|| ApiError::bad_request("this server has no kubelet"))?;
        let pod = call.server.api.get(call.resource, &call.namespace, &name)?.value();
        let container = container_of(&pod, call.query.get("container"))?;
        let path = kubelet.log_file(&pod, &container, call.query.flag("previous")).map_err(ApiError::bad_request)?;
        let mut file = tokio::fs::File::open(&path).await.map_err(|e| ApiError::bad_request(format!("the log of container {container} is not available: {e}")))?;
        let mut content = Vec::new();
        file.read_to_end(&mut content).await.map_err(|e| ApiError::internal(e.to_string()))?;
        if let Some(tail) = call.query.number("tailLines")?.filter(|t| *t >= 0) {
            let lines: Vec<&[u8]> = content.split_inclusive(|b| *b == b'\n').collect();
            content = lines[lines.len().saturating_sub(tail as usize)..].concat();
        }
        if let Some(limit) = call.query.number("limitBytes")?.filter(|l| *l > 0) {
            content.truncate(limit as usize);
        }
        Ok::<_, ApiError>((file, content, call.query.flag("follow"), container))
    }
    .await;
    let (mut file, content, follow, container) = match result {
        Ok(r) => r,
        Err(e) => return error_response(&e),
    };
    if !follow {
        return (StatusCode::OK, [(header::CONTENT_TYPE, "text/plain")], content).into_response();
    }
    let (out, body) = tokio::sync::mpsc::channel::<Bytes>(16);
    let (api, resource, namespace) = (call.server.api.clone(), call.resource, call.namespace.clone());
    // Following ends, as the kubelet's does, once the container is no longer running (and
    // what it wrote last has been sent) or the pod is gone.
    let running = move || {
        api.get(resource, &namespace, &name).is_ok_and(|pod| {
            let pod = pod.value();
            let status = pod["status"]["containerStatuses"].as_array().and_then(|c| c.iter().find(|c| c["name"] == container.as_str()).cloned());
            status.is_none_or(|c| c["state"]["terminated"].is_null())
        })
    };
    tokio::spawn(async move {
        if out.send(Bytes::from(content)).await.is_err() {
            return;
        }
        let _ = file.seek(std::io::SeekFrom::End(0)).await;
        let mut buf = vec![0u8; 64 << 10];
        let mut stopped = false;
        loop {
            match file.read(&mut buf).await {
                Ok(0) if stopped => return,
                Ok(0) => {
                    stopped = !running();
                    if stopped {
                        continue;
                    }
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_millis(100)) => {}
                        () = out.closed() => return,
                    }
                }
                Ok(n) => {
                    if out.send(Bytes::copy_from_slice(&buf[..n])).await.is_err() {
                        return;
                    }
                }
                Err(_) => return,
            }
        }
    });
    let stream = futures::stream::unfold(body, |mut body| async move { body.recv().await.map(|b| (Ok::<_, std::convert::Infallible>(b), body)) });
    (StatusCode::OK, [(header::CONTENT_TYPE, "text/plain")], Body::from_stream(stream)).into_response()
}

const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const ERROR: u8 = 3;
const RESIZE: u8 = 4;
const CLOSE: u8 = 255;

fn exit_status(code: Option<i32>, command: &[String]) -> Value {
    match code {
        Some(0) => json!({"metadata": {}, "status": "Success"}),
        Some(code) => json!({
            "metadata": {},
            "status": "Failure",
            "message": format!("command terminated with non-zero exit code: error executing command {command:?}, exit code {code}"),
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
        }),
        None => json!({"metadata": {}, "status": "Failure", "message": "command terminated by a signal", "reason": "InternalError"}),
    }
}

/// `pods/exec` over WebSocket (kubectl, kube-rs and the Python client all use it).
pub async fn exec(server: Arc<Server>, namespace: &str, name: &str, query: &Query, upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>) -> Response {
    let prepared = (|| -> Result<_, ApiError> {
        let kubelet = server.kubelet.clone().ok_or_else(|| ApiError::bad_request("this server has no kubelet"))?;
        let pods = resources::by_kind("v1", "Pod").expect("served");
        let pod = server.api.get(pods, namespace, name)?.value();
        let phase = pod["status"]["phase"].as_str().unwrap_or_default();
        if matches!(phase, "Succeeded" | "Failed") {
            return Err(ApiError::bad_request(format!("cannot exec into a container in a completed pod; current phase is {phase}")));
        }
        let container = container_of(&pod, query.get("container"))?;
        if query.commands.is_empty() {
            return Err(ApiError::bad_request("you must specify at least 1 command"));
        }
        Ok((kubelet, pod, container))
    })();
    let (kubelet, pod, container) = match prepared {
        Ok(p) => p,
        Err(e) => return error_response(&e),
    };
    let upgrade = match upgrade {
        Ok(u) => u,
        Err(_) => return error_response(&ApiError::bad_request("pods/exec needs a WebSocket upgrade (v5.channel.k8s.io or v4.channel.k8s.io); SPDY is not supported")),
    };
    let command = query.commands.clone();
    let (tty, stdin) = (query.flag("tty"), query.flag("stdin"));
    let (want_out, want_err) = (query.flag("stdout") || !query.commands.is_empty(), query.flag("stderr"));
    upgrade.protocols(["v5.channel.k8s.io", "v4.channel.k8s.io"]).on_upgrade(move |socket| async move {
        let process = kubelet.exec(&pod, &container, &command, tty);
        run_exec(socket, process, command, stdin, (want_out, want_err)).await;
    })
}

/// Runs one exec session. Channel 255 (closing stdin) exists only in v5; v4 clients end
/// stdin by closing the socket, which ends the session.
async fn run_exec(socket: WebSocket, process: Result<crate::kubelet::ExecProcess, String>, command: Vec<String>, want_stdin: bool, (want_out, want_err): (bool, bool)) {
    let (mut sink, mut stream) = socket.split();
    let mut process = match process {
        Ok(p) => p,
        Err(message) => {
            let status = json!({"metadata": {}, "status": "Failure", "message": message, "reason": "InternalError"});
            let mut frame = vec![ERROR];
            frame.extend(status.to_string().into_bytes());
            let _ = sink.send(Message::Binary(frame.into())).await;
            close_normally(&mut sink).await;
            return;
        }
    };
    let (frames, mut outgoing) = tokio::sync::mpsc::channel::<Vec<u8>>(64);
    let forward = |mut reader: Box<dyn tokio::io::AsyncRead + Send + Unpin>, channel: u8, wanted: bool, frames: tokio::sync::mpsc::Sender<Vec<u8>>| {
        tokio::spawn(async move {
            let mut buf = vec![0u8; 32 << 10];
            loop {
                match reader.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) if wanted => {
                        let mut frame = Vec::with_capacity(n + 1);
                        frame.push(channel);
                        frame.extend_from_slice(&buf[..n]);
                        if frames.send(frame).await.is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                }
            }
        })
    };
    let out_task = forward(process.stdout, STDOUT, want_out, frames.clone());
    let err_task = process.stderr.take().map(|e| forward(e, STDERR, want_err, frames.clone()));
    drop(frames);
    let mut stdin = if want_stdin { process.stdin.take() } else { None };
    if stdin.is_none() {
        process.stdin = None;
    }
    let resize = process.resize.take();
    let input = tokio::spawn(async move {
        while let Some(Ok(message)) = stream.next().await {
            let data = match message {
                Message::Binary(data) => data.to_vec(),
                Message::Text(text) => text.as_bytes().to_vec(),
                Message::Close(_) => break,
                _ => continue,
            };
            let Some((&channel, payload)) = data.split_first() else { continue };
            tracing::trace!(channel, payload = ?String::from_utf8_lossy(payload), "exec input");
            match channel {
                STDIN => {
                    if let Some(writer) = stdin.as_mut()
                        && writer.write_all(payload).await.is_err()
                    {
                        stdin = None;
                    }
                }
                CLOSE if payload.first() == Some(&STDIN) => {
                    if let Some(mut writer) = stdin.take() {
                        let _ = writer.shutdown().await;
                    }
                }
                RESIZE => {
                    if let (Some(resize), Ok(size)) = (&resize, serde_json::from_slice::<Value>(payload)) {
                        resize(size["Width"].as_u64().unwrap_or(80) as u16, size["Height"].as_u64().unwrap_or(24) as u16);
                    }
                }
                _ => {}
            }
        }
    });
    while let Some(frame) = outgoing.recv().await {
        if sink.send(Message::Binary(frame.into())).await.is_err() {
            break;
        }
    }
    let _ = out_task.await;
    if let Some(task) = err_task {
        let _ = task.await;
    }
    let code = process.exit.await;
    let mut status = vec![ERROR];
    status.extend(exit_status(code, &command).to_string().into_bytes());
    let _ = sink.send(Message::Binary(status.into())).await;
    close_normally(&mut sink).await;
    input.abort();
}

/// Ends the session with close code 1000: client-go reads a close without a code (1005) as
/// a broken error stream and reports the exec as failed even after a clean exit status.
async fn close_normally(sink: &mut futures::stream::SplitSink<WebSocket, Message>) {
    let _ = sink.send(Message::Close(Some(CloseFrame { code: close_code::NORMAL, reason: "".into() }))).await;
}
