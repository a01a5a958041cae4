//! The lab daemon: serves the lab's Kubernetes API (HTTPS on 127.0.0.1 for the host's
//! clients, and on the lab's internal address for its nodes and pods), runs the lab's
//! controllers, runtime and agents against it, and answers `palisade lab status|down` on the
//! lab's Unix socket. A daemon started on the state of one that died reuses its store, port,
//! machines and surviving pod sandboxes.

use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use palisade_apiserver::store::{Filter, WatchMessage};

use crate::error::LabError;
use crate::kubelet::LabKubelet;
use crate::lab::{self, Lab};
use crate::paths::LabPaths;
use crate::protocol::{Request, Response};
use crate::runtime::{Runtime, SandboxIndex};
use crate::topology::{self, API_PORT, API_V4};

/// How often containers are checked for exits and due restarts.
const SUPERVISE_EVERY: Duration = Duration::from_millis(100);
/// Changes arriving this close together are settled once.
const COALESCE: Duration = Duration::from_millis(5);

fn read_request(stream: &UnixStream) -> Result<Request, String> {
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line).map_err(|e| format!("reading the request: {e}"))?;
    serde_json::from_str(&line).map_err(|e| format!("bad request: {e}"))
}

fn send(mut stream: &UnixStream, response: &Response) {
    let mut line = serde_json::to_string(response).expect("responses serialize");
    line.push('\n');
    let _ = stream.write_all(line.as_bytes());
}

/// The resource version the dataplane last caught up with, for `lab status --wait-synced`.
#[derive(Default)]
struct Synced {
    version: Mutex<u64>,
    changed: Condvar,
}

impl Synced {
    fn set(&self, version: u64) {
        let mut current = self.version.lock().unwrap_or_else(|e| e.into_inner());
        if version > *current {
            *current = version;
            self.changed.notify_all();
        }
    }

    /// Waits until the lab has settled everything up to `version`.
    fn wait(&self, version: u64, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut current = self.version.lock().unwrap_or_else(|e| e.into_inner());
        while *current < version {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            current = self.changed.wait_timeout(current, left).unwrap_or_else(|e| e.into_inner()).0;
        }
        true
    }
}

/// The loopback listener, on the port a previous daemon of this lab used (or a free one).
fn loopback_listener(paths: &LabPaths) -> Result<TcpListener, LabError> {
    let saved: Option<u16> = std::fs::read_to_string(paths.api_port_file()).ok().and_then(|p| p.trim().parse().ok());
    let listener = TcpListener::bind(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), saved.unwrap_or(0))).map_err(LabError::io("listening on 127.0.0.1 for the lab's API"))?;
    let port = listener.local_addr().map_err(LabError::io("the API listener's address"))?.port();
    std::fs::write(paths.api_port_file(), port.to_string()).map_err(LabError::io("recording the API port"))?;
    Ok(listener)
}

/// The listener inside the lab (created in the underlay's namespace).
fn lab_listener(topology: &topology::Topology) -> Result<TcpListener, LabError> {
    palisade_net::run_in(&topology.underlay, || TcpListener::bind(SocketAddr::new(IpAddr::V4(API_V4), API_PORT)))?.map_err(LabError::io("listening inside the lab for the lab's API"))
}

/// Runs the daemon: brings up (or back) the lab with `nodes` nodes, then serves until `down`.
pub fn run(paths: LabPaths, nodes: u8, self_exe: PathBuf) -> Result<(), LabError> {
    std::fs::create_dir_all(&paths.state_dir).map_err(LabError::io(format!("creating {}", paths.state_dir.display())))?;
    let socket = paths.socket();
    if UnixStream::connect(&socket).is_ok() {
        return Err(LabError::invalid(format!("lab {:?} is already running", paths.name)));
    }
    let _ = std::fs::remove_file(&socket);
    let topology = match topology::reuse(&paths) {
        Some(existing) => {
            tracing::info!(lab = %paths.name, "restarting on the machines and store of a previous daemon");
            existing
        }
        None => topology::create(&paths, nodes)?,
    };
    let sandboxes = SandboxIndex::default();
    let kubelet = LabKubelet { paths: paths.clone(), self_exe: self_exe.clone(), sandboxes: sandboxes.clone() };
    let listeners = vec![loopback_listener(&paths)?, lab_listener(&topology)?];
    let running = palisade_apiserver::start(palisade_apiserver::Options {
        state_dir: paths.api_dir(),
        service_cidrs: crate::proxy::SERVICE_CIDRS.iter().map(|c| c.parse().expect("valid CIDR")).collect(),
        listeners,
        addresses: vec![IpAddr::V4(Ipv4Addr::LOCALHOST), IpAddr::V4(API_V4), IpAddr::V4(crate::proxy::KUBERNETES_V4)],
        kubelet: Some(Arc::new(kubelet)),
        watch_history_bytes: None,
    })
    .map_err(|e| LabError::failed(format!("starting the lab's API server: {e}")))?;
    palisade_apiserver::server::write_kubeconfig(&paths.kubeconfig(), &running.kubeconfig(&format!("palisade-{}", paths.name))).map_err(LabError::io("writing the kubeconfig"))?;
    let config = lab::runtime_config(&paths, self_exe.clone(), running.api.clone(), running.ca_pem.clone());
    let api = running.api.clone();
    let node_infos = topology.nodes.clone();
    let lab = Lab::start(paths.clone(), topology, api.clone(), Runtime::new(config, sandboxes), &self_exe)?;
    tracing::info!(lab = %paths.name, api = %running.address, "lab is up");
    let lab = Arc::new(Mutex::new(Some(lab)));
    let synced = Arc::new(Synced::default());
    synced.set(api.store.current_rv());
    settle_on_changes(lab.clone(), api.clone(), synced.clone());
    // Listen only once the lab is up: clients waiting for the socket then see a ready lab.
    let listener = UnixListener::bind(&socket).map_err(LabError::io(format!("listening on {}", socket.display())))?;
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        let request = match read_request(&stream) {
            Ok(r) => r,
            Err(e) => {
                send(&stream, &Response::error(e));
                continue;
            }
        };
        match request {
            Request::Down => {
                let taken = lab.lock().unwrap_or_else(|e| e.into_inner()).take();
                if let Some(lab) = taken {
                    lab.stop();
                }
                running.stop();
                let response = match topology::remove(&paths) {
                    Ok(removed) => Response { lines: vec![format!("lab {:?} is down: removed {} network namespaces", paths.name, removed.len())], ..Default::default() },
                    Err(e) => Response::error(e.to_string()),
                };
                let _ = std::fs::remove_file(paths.socket());
                let _ = std::fs::remove_dir_all(&paths.state_dir);
                send(&stream, &response);
                return Ok(());
            }
            Request::Status { wait_synced } => {
                let synced = synced.clone();
                let (lab, api, nodes) = (lab.clone(), api.clone(), node_infos.clone());
                // Waiting happens off the accepting thread.
                std::thread::spawn(move || {
                    if let Some(seconds) = wait_synced {
                        let started = Instant::now();
                        let target = api.store.current_rv();
                        if !synced.wait(target, Duration::from_secs_f64(seconds)) {
                            send(&stream, &Response::error(format!("the lab did not settle version {target} within {seconds} s")));
                            return;
                        }
                        // Then every node's agent: it enforces what the API holds.
                        let left = Duration::from_secs_f64(seconds).saturating_sub(started.elapsed());
                        if let Err(error) = crate::node_agents::wait_synced(&api, &nodes, left) {
                            send(&stream, &Response::error(error.to_string()));
                            return;
                        }
                    }
                    let lines = lab.lock().unwrap_or_else(|e| e.into_inner()).as_ref().map(Lab::status_lines).unwrap_or_default();
                    send(&stream, &Response { lines, ..Default::default() });
                });
            }
        }
    }
    Ok(())
}

/// Settles the lab whenever the API's objects change (a burst of changes is settled
/// once) and whenever a container exits, and records which version each settle covered.
fn settle_on_changes(lab: Arc<Mutex<Option<Lab>>>, api: Arc<palisade_apiserver::api::Api>, synced: Arc<Synced>) {
    let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel();
    api.store.watch(Filter::default(), Some(api.store.current_rv()), sender).expect("watching from the current version");
    // The store's watch channel is async; the settle thread waits with a timeout (the
    // supervisor's tick), so events are handed over to a plain channel.
    let (changes, arrived) = std::sync::mpsc::channel::<()>();
    std::thread::Builder::new()
        .name("settle-events".into())
        .spawn(move || {
            while let Some(WatchMessage::Event(..)) = receiver.blocking_recv() {
                if changes.send(()).is_err() {
                    return;
                }
            }
        })
        .expect("spawn the event thread");
    std::thread::Builder::new()
        .name("settle".into())
        .spawn(move || {
            loop {
                // Wait for a change, or the supervisor's tick.
                let changed = match arrived.recv_timeout(SUPERVISE_EVERY) {
                    Ok(()) => {
                        std::thread::sleep(COALESCE);
                        while arrived.try_recv().is_ok() {}
                        true
                    }
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => false,
                    Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return,
                };
                let mut guard = lab.lock().unwrap_or_else(|e| e.into_inner());
                let Some(lab) = guard.as_mut() else { return };
                let version = api.store.current_rv();
                if changed {
                    if let Err(error) = lab.settle() {
                        tracing::warn!(%error, "settling the lab failed");
                    }
                } else {
                    lab.tick();
                }
                drop(guard);
                // Everything up to `version` was read by that settle; its own writes
                // (statuses) are events of the next round.
                synced.set(version);
            }
        })
        .expect("spawn the settle thread");
}
