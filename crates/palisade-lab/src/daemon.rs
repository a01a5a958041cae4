//! The lab daemon: holds the lab, serves requests on the lab's Unix socket (one JSON line
//! each way), and supervises containers. `palisade lab` verbs start it when it is not
//! running; `palisade lab down` stops it.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::error::LabError;
use crate::lab::Lab;
use crate::paths::LabPaths;
use crate::protocol::{Request, Response};
use crate::runtime::RuntimeConfig;

/// How often containers are checked for exits and due restarts.
const SUPERVISE_EVERY: Duration = Duration::from_millis(100);

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

/// Runs the daemon: creates the lab (`nodes` nodes), then serves until `down`.
pub fn run(paths: LabPaths, nodes: u8, config: RuntimeConfig) -> Result<(), LabError> {
    std::fs::create_dir_all(&paths.state_dir).map_err(LabError::io(format!("creating {}", paths.state_dir.display())))?;
    let socket = paths.socket();
    if UnixStream::connect(&socket).is_ok() {
        return Err(LabError::invalid(format!("lab {:?} is already running", paths.name)));
    }
    let _ = std::fs::remove_file(&socket);
    let lab = Lab::up(paths.clone(), nodes, config).inspect_err(|_| {
        // Whatever was created before the failure goes: a failed `up` leaves nothing.
        let _ = crate::topology::remove(&paths);
    })?;
    // Listen only once the lab is up: clients waiting for the socket then see a ready lab.
    let listener = UnixListener::bind(&socket).map_err(LabError::io(format!("listening on {}", socket.display())))?;
    tracing::info!(lab = %paths.name, nodes, "lab is up");
    let lab = Arc::new(Mutex::new(Some(lab)));
    let supervisor = lab.clone();
    std::thread::spawn(move || {
        loop {
            std::thread::sleep(SUPERVISE_EVERY);
            let mut guard = supervisor.lock().unwrap_or_else(|e| e.into_inner());
            match guard.as_mut() {
                Some(lab) => lab.tick(),
                None => return,
            }
        }
    });
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        let lab = lab.clone();
        let paths = paths.clone();
        let handler = std::thread::spawn(move || -> bool {
            let request = match read_request(&stream) {
                Ok(r) => r,
                Err(e) => {
                    send(&stream, &Response::error(e));
                    return false;
                }
            };
            let mut guard = lab.lock().unwrap_or_else(|e| e.into_inner());
            if let Request::Down = request {
                let response = match guard.take() {
                    Some(lab) => match lab.down() {
                        Ok(removed) => Response { lines: vec![format!("lab {:?} is down: removed {} network namespaces", paths.name, removed.len())], ..Default::default() },
                        Err(e) => Response::error(e.to_string()),
                    },
                    None => Response::default(),
                };
                let _ = std::fs::remove_file(paths.socket());
                let _ = std::fs::remove_dir_all(&paths.state_dir);
                send(&stream, &response);
                return true;
            }
            let response = match guard.as_mut() {
                Some(lab) => lab.handle(request),
                None => Response::error("the lab is going down"),
            };
            send(&stream, &response);
            false
        });
        // Requests are serialized by the lock; `down` ends the daemon once answered.
        if handler.join().unwrap_or(false) {
            break;
        }
    }
    Ok(())
}
