//! The CLI's side of the lab: find the daemon (start it if needed), send one request, and
//! clean up after a daemon that died.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::error::LabError;
use crate::paths::LabPaths;
use crate::protocol::{Request, Response};

/// How long a starting daemon may take to bring the lab up.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Sends a request to a running daemon. `Ok(None)` if no daemon is listening.
pub fn try_request(paths: &LabPaths, request: &Request) -> Result<Option<Response>, LabError> {
    let Ok(mut stream) = UnixStream::connect(paths.socket()) else { return Ok(None) };
    let mut line = serde_json::to_string(request).expect("requests serialize");
    line.push('\n');
    stream.write_all(line.as_bytes()).map_err(LabError::io("sending to the lab daemon"))?;
    let mut reply = String::new();
    BufReader::new(&stream).read_line(&mut reply).map_err(LabError::io("reading from the lab daemon"))?;
    if reply.is_empty() {
        return Err(LabError::failed(format!("the lab daemon closed the connection (see {})", paths.daemon_log().display())));
    }
    serde_json::from_str(&reply).map(Some).map_err(|e| LabError::failed(format!("bad reply from the lab daemon: {e}")))
}

/// Starts the daemon (`<exe> lab --lab NAME daemon --nodes N`) detached from this process,
/// and waits until it listens.
pub fn start_daemon(paths: &LabPaths, exe: &Path, nodes: u8) -> Result<(), LabError> {
    std::fs::create_dir_all(&paths.state_dir).map_err(LabError::io(format!("creating {}", paths.state_dir.display())))?;
    let log = std::fs::File::create(paths.daemon_log()).map_err(LabError::io("creating the daemon log"))?;
    let log2 = log.try_clone().map_err(LabError::io("creating the daemon log"))?;
    let (marker, value) = paths.process_marker();
    let mut child = Command::new(exe)
        .args(["lab", "--lab", &paths.name, "daemon", "--nodes", &nodes.to_string()])
        .env(marker, value)
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2)
        .spawn()
        .map_err(LabError::io(format!("starting {}", exe.display())))?;
    let deadline = Instant::now() + START_TIMEOUT;
    while Instant::now() < deadline {
        if UnixStream::connect(paths.socket()).is_ok() {
            return Ok(());
        }
        if let Ok(Some(status)) = child.try_wait() {
            let log = std::fs::read_to_string(paths.daemon_log()).unwrap_or_default();
            return Err(LabError::failed(format!("the lab daemon exited ({status}) before the lab was up:\n{}", log.trim())));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(LabError::failed(format!("the lab daemon did not come up within {}s (see {})", START_TIMEOUT.as_secs(), paths.daemon_log().display())))
}

/// Processes carrying the lab's marker in their environment: what the lab started.
pub fn marked_processes(paths: &LabPaths) -> Vec<i32> {
    let (key, value) = paths.process_marker();
    let needle = format!("{key}={value}");
    let me = std::process::id() as i32;
    let namespaces: Vec<_> = palisade_net::list_named(&paths.netns_prefix()).iter().map(|n| palisade_net::netns_path(n)).collect();
    let mut pids = palisade_net::processes_in(&namespaces);
    pids.extend(processes_with_env(&needle));
    pids.sort_unstable();
    pids.dedup();
    pids.retain(|&pid| pid != me);
    pids
}

/// Processes whose environment holds `needle` (`NAME=value`).
pub fn processes_with_env(needle: &str) -> Vec<i32> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| std::fs::read(format!("/proc/{pid}/environ")).is_ok_and(|env| env.split(|b| *b == 0).any(|var| var == needle.as_bytes())))
        .collect()
}

/// `down` when no daemon answers (it crashed or was killed): kill what the lab started,
/// remove its namespaces and state. Returns what was removed.
pub fn clean_up_without_daemon(paths: &LabPaths) -> Result<Vec<String>, LabError> {
    let mut removed = Vec::new();
    for pid in marked_processes(paths) {
        if kill(Pid::from_raw(pid), Signal::SIGKILL).is_ok() {
            removed.push(format!("process {pid}"));
        }
    }
    std::thread::sleep(Duration::from_millis(50));
    removed.extend(crate::topology::remove(paths)?.into_iter().map(|n| format!("network namespace {n}")));
    if paths.state_dir.exists() {
        std::fs::remove_dir_all(&paths.state_dir).map_err(LabError::io(format!("removing {}", paths.state_dir.display())))?;
        removed.push(format!("state {}", paths.state_dir.display()));
    }
    Ok(removed)
}
