//! The lab's side of `pods/exec` and `pods/log`: a command runs in a container's sandbox
//! through `palisade lab pod-exec` (the same way the container's own process was started),
//! with pipes, or with a terminal for `-t`; logs are the files the runtime writes.

use std::path::PathBuf;
use std::process::Stdio;

use palisade_apiserver::kubelet::{ExecProcess, Kubelet};
use serde_json::Value;

use crate::paths::LabPaths;
use crate::runtime::SandboxIndex;

pub struct LabKubelet {
    pub paths: LabPaths,
    /// The `palisade` binary.
    pub self_exe: PathBuf,
    pub sandboxes: SandboxIndex,
}

fn uid_of(pod: &Value) -> String {
    pod["metadata"]["uid"].as_str().unwrap_or_default().to_string()
}

impl Kubelet for LabKubelet {
    fn exec(&self, pod: &Value, container: &str, command: &[String], tty: bool) -> Result<ExecProcess, String> {
        let sandbox = {
            let index = self.sandboxes.read().unwrap_or_else(|e| e.into_inner());
            let containers = index.get(&uid_of(pod)).ok_or_else(|| format!("pod {} has no running sandbox", pod["metadata"]["name"].as_str().unwrap_or_default()))?;
            containers.get(container).cloned().ok_or_else(|| format!("container {container} has no sandbox"))?
        };
        // Palisade's image holds `palisade` on its PATH; in the lab it is this binary.
        let image = pod["spec"]["containers"].as_array().into_iter().flatten().find(|c| c["name"] == container).and_then(|c| c["image"].as_str()).unwrap_or_default();
        let mut command = command.to_vec();
        if crate::images::image_base(image) == "palisade" && command.first().is_some_and(|c| crate::images::image_base(c) == "palisade") {
            command[0] = self.self_exe.display().to_string();
        }
        let args = sandbox.pod_exec_args(&self.paths.name, &command);
        let (marker, value) = self.paths.process_marker();
        if tty {
            let (pty, pts) = pty_process::open().map_err(|e| format!("allocating a terminal: {e}"))?;
            let mut child = pty_process::Command::new(&self.self_exe)
                .args(&args)
                .env_clear()
                .envs(sandbox.env.iter().map(|(k, v)| (k.clone(), v.clone())))
                .env("TERM", "xterm")
                .env(marker, value)
                .spawn(pts)
                .map_err(|e| format!("starting {}: {e}", command.join(" ")))?;
            let (reader, writer) = pty.into_split();
            // The write half resizes; it is shared between stdin and the resize callback.
            let (stdin, resize) = shared_writer(writer);
            return Ok(ExecProcess {
                stdin: Some(Box::new(stdin)),
                stdout: Box::new(reader),
                stderr: None,
                exit: Box::pin(async move { child.wait().await.ok().and_then(|s| s.code()) }),
                resize: Some(resize),
            });
        }
        let mut child = tokio::process::Command::new(&self.self_exe)
            .args(&args)
            .env_clear()
            .envs(sandbox.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env(marker, value)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("starting {}: {e}", command.join(" ")))?;
        let stdin = child.stdin.take().expect("piped");
        let stdout = child.stdout.take().expect("piped");
        let stderr = child.stderr.take().expect("piped");
        Ok(ExecProcess {
            stdin: Some(Box::new(stdin)),
            stdout: Box::new(stdout),
            stderr: Some(Box::new(stderr)),
            exit: Box::pin(async move { child.wait().await.ok().and_then(|s| s.code()) }),
            resize: None,
        })
    }

    fn log_file(&self, pod: &Value, container: &str, _previous: bool) -> Result<PathBuf, String> {
        // Every run of a container appends to one file: the previous run's output is in it.
        Ok(self.paths.pod_dir(&uid_of(pod)).join(format!("{container}.log")))
    }
}

/// The terminal's write half as stdin, and a resize callback that reaches it.
fn shared_writer(writer: pty_process::OwnedWritePty) -> (SharedWriter, Box<dyn Fn(u16, u16) + Send + Sync>) {
    let shared = std::sync::Arc::new(tokio::sync::Mutex::new(writer));
    let for_resize = shared.clone();
    let resize = Box::new(move |columns: u16, rows: u16| {
        if let Ok(writer) = for_resize.try_lock() {
            let _ = writer.resize(pty_process::Size::new(rows, columns));
        }
    });
    (SharedWriter { inner: shared }, resize)
}

/// An `AsyncWrite` over the shared terminal write half.
struct SharedWriter {
    inner: std::sync::Arc<tokio::sync::Mutex<pty_process::OwnedWritePty>>,
}

impl tokio::io::AsyncWrite for SharedWriter {
    fn poll_write(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>, buf: &[u8]) -> std::task::Poll<std::io::Result<usize>> {
        match self.inner.try_lock() {
            Ok(mut guard) => std::pin::Pin::new(&mut *guard).poll_write(cx, buf),
            Err(_) => {
                cx.waker().wake_by_ref();
                std::task::Poll::Pending
            }
        }
    }

    fn poll_flush(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<std::io::Result<()>> {
        match self.inner.try_lock() {
            Ok(mut guard) => std::pin::Pin::new(&mut *guard).poll_flush(cx),
            Err(_) => {
                cx.waker().wake_by_ref();
                std::task::Poll::Pending
            }
        }
    }

    fn poll_shutdown(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<std::io::Result<()>> {
        match self.inner.try_lock() {
            Ok(mut guard) => std::pin::Pin::new(&mut *guard).poll_shutdown(cx),
            Err(_) => {
                cx.waker().wake_by_ref();
                std::task::Poll::Pending
            }
        }
    }
}
