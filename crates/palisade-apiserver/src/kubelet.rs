//! The kubelet side of `pods/exec` and `pods/log`: the API server streams, the lab runs the
//! processes. The API server knows nothing of how (namespaces, sandboxes).

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;

use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite};

/// A process started in a container.
pub struct ExecProcess {
    pub stdin: Option<Box<dyn AsyncWrite + Send + Unpin>>,
    pub stdout: Box<dyn AsyncRead + Send + Unpin>,
    /// `None` with a terminal (its output is all on stdout).
    pub stderr: Option<Box<dyn AsyncRead + Send + Unpin>>,
    /// Resolves to the exit code (`None`: killed by a signal).
    pub exit: Pin<Box<dyn Future<Output = Option<i32>> + Send>>,
    /// Resizes the terminal (columns, rows), with one.
    pub resize: Option<Box<dyn Fn(u16, u16) + Send + Sync>>,
}

pub trait Kubelet: Send + Sync {
    /// Runs `command` in `container` of `pod`, with a terminal when `tty`.
    fn exec(&self, pod: &Value, container: &str, command: &[String], tty: bool) -> Result<ExecProcess, String>;

    /// The file holding the container's output (`previous`: its last run's).
    fn log_file(&self, pod: &Value, container: &str, previous: bool) -> Result<PathBuf, String>;
}
