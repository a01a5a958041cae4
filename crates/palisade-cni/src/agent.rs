//! The handshake with the node's agent that isolates a pod before its first packet: once
//! the pod's interface and addresses exist, ADD tells the agent (a Unix socket, one JSON
//! line each way) which pod got which addresses, and returns only when the agent answers
//! that the node's table enforces that pod's policies. The runtime starts the containers
//! after ADD returns, so no process of the pod runs before its rules are in the kernel. If
//! no agent listens yet (it is starting, or being upgraded), ADD tries again until its
//! timeout; if the agent does not answer in time, ADD fails (and is rolled back): the
//! runtime retries, and the pod never runs unprotected (fail closed).
//!
//! Request: `{"namespace": "prod", "name": "web-1", "ips": ["10.244.1.5", "fd00::5"]}`.
//! Answer: `{"ok": true}` or `{"error": "why"}`.

use std::io::{BufRead, BufReader, Write};
use std::net::IpAddr;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::error::{CniError, Code};

/// One attempt's failure: worth retrying (no agent listens, or it went away before
/// answering: it is starting or being upgraded) or final.
enum Failure {
    Retry(String),
    Final(String),
}

/// Tells the agent at `socket` about the pod and waits for its answer, trying again while
/// no agent answers, until `timeout` in all.
pub fn announce(socket: &Path, namespace: &str, name: &str, ips: &[IpAddr], timeout: Duration) -> Result<(), CniError> {
    let unavailable = |what: String| CniError::new(Code::TryAgainLater, "the Palisade agent did not confirm the pod's rules; it stays without network").with_details(what);
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match attempt(socket, namespace, name, ips, left.max(Duration::from_millis(1))) {
            Ok(()) => return Ok(()),
            Err(Failure::Retry(what)) if Instant::now() + RETRY_EVERY < deadline => {
                tracing::debug!(%what, "the agent did not answer; trying again");
                std::thread::sleep(RETRY_EVERY);
            }
            Err(Failure::Retry(what) | Failure::Final(what)) => return Err(unavailable(what)),
        }
    }
}

const RETRY_EVERY: Duration = Duration::from_millis(50);

fn attempt(socket: &Path, namespace: &str, name: &str, ips: &[IpAddr], timeout: Duration) -> Result<(), Failure> {
    let mut stream = UnixStream::connect(socket).map_err(|e| Failure::Retry(format!("connecting to {}: {e} (is the palisade-agent DaemonSet running on this node?)", socket.display())))?;
    stream.set_read_timeout(Some(timeout)).and_then(|()| stream.set_write_timeout(Some(timeout))).map_err(|e| Failure::Final(e.to_string()))?;
    let mut request = serde_json::json!({"namespace": namespace, "name": name, "ips": ips}).to_string();
    request.push('\n');
    stream.write_all(request.as_bytes()).map_err(|e| Failure::Retry(format!("writing to {}: {e}", socket.display())))?;
    let mut line = String::new();
    BufReader::new(&stream).read_line(&mut line).map_err(|e| Failure::Final(format!("waiting {} s for the agent: {e}", timeout.as_secs_f64())))?;
    if line.is_empty() {
        return Err(Failure::Retry(format!("the agent at {} closed the connection without an answer", socket.display())));
    }
    let answer: serde_json::Value = serde_json::from_str(&line).map_err(|e| Failure::Final(format!("the agent's answer {line:?} is not JSON: {e}")))?;
    match answer.get("error").and_then(serde_json::Value::as_str) {
        Some(error) => Err(Failure::Final(error.to_string())),
        None if answer["ok"] == true => Ok(()),
        None => Err(Failure::Final(format!("unexpected answer {line:?}"))),
    }
}
