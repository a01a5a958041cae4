//! The agent's end of the CNI handshake (see `palisade-cni`'s `agent.rs`): a pod's ADD
//! announces its addresses here and gets its answer once a sync that includes the pod with
//! those addresses is in the kernel. One JSON line each way.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

use crate::shared::Shared;

/// Longer than any CNI timeout: the plugin gives up first, and fails closed.
const ANSWER_WITHIN: Duration = Duration::from_secs(60);

#[derive(Deserialize)]
struct Announcement {
    namespace: String,
    name: String,
    ips: Vec<IpAddr>,
}

/// Binds the socket (root only; a stale one from a previous agent is replaced).
pub fn bind(path: &Path) -> std::io::Result<UnixListener> {
    use std::os::unix::fs::PermissionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let _ = std::fs::remove_file(path);
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

pub async fn serve(listener: UnixListener, path: PathBuf, shared: Arc<Shared>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(answer(stream, shared.clone()));
            }
            Err(error) => {
                tracing::error!(socket = %path.display(), %error, "the CNI socket stopped accepting");
                return;
            }
        }
    }
}

async fn answer(stream: UnixStream, shared: Arc<Shared>) {
    let (reader, mut writer) = stream.into_split();
    let mut line = String::new();
    let reply = match BufReader::new(reader).read_line(&mut line).await {
        Err(error) => Err(format!("reading the announcement: {error}")),
        Ok(_) => match serde_json::from_str::<Announcement>(&line) {
            Err(error) => Err(format!("bad announcement {:?}: {error}", line.trim())),
            Ok(pod) => tokio::time::timeout(ANSWER_WITHIN, enforce(&shared, pod)).await.unwrap_or_else(|_| Err("timed out".into())),
        },
    };
    let mut text = match reply {
        Ok(()) => serde_json::json!({"ok": true}).to_string(),
        Err(error) => serde_json::json!({"error": error}).to_string(),
    };
    text.push('\n');
    let _ = writer.write_all(text.as_bytes()).await;
}

/// Makes the pod an endpoint with its announced addresses and waits for a sync with it.
async fn enforce(shared: &Shared, pod: Announcement) -> Result<(), String> {
    let started = std::time::Instant::now();
    shared.update(|state, _| state.announce(&pod.namespace, &pod.name, pod.ips.clone()));
    let mut synced = shared.synced.subscribe();
    loop {
        let from = shared.lock().state.enforced_from(&pod.namespace, &pod.name, &pod.ips);
        if let Some(version) = from
            && *synced.borrow_and_update() >= version
        {
            tracing::debug!(pod = %format!("{}/{}", pod.namespace, pod.name), ips = ?pod.ips, waited_ms = started.elapsed().as_millis() as u64, "pod's rules enforced before its start");
            return Ok(());
        }
        // A sync, or the pod arriving from the watch (checked every few milliseconds).
        let _ = tokio::time::timeout(Duration::from_millis(5), synced.changed()).await;
    }
}
