//! What the CLI and the lab daemon say to each other over the lab's Unix socket: one JSON
//! request line, one JSON response line.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::sandbox::Sandbox;

/// An object named by kind, namespace ("" for cluster-scoped) and name.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Target {
    pub kind: String,
    pub namespace: String,
    pub name: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "verb", rename_all = "kebab-case")]
pub enum Request {
    /// Reports the lab (started with `nodes` nodes if it was not running).
    Up { nodes: u8 },
    Down,
    Status,
    /// Objects already validated by the CLI, with their namespace filled in; `source` is
    /// the file each came from, for messages.
    Apply { objects: Vec<(Value, String)> },
    Delete { targets: Vec<Target>, ignore_not_found: bool },
    /// `namespace: None` lists every namespace.
    Get { kind: String, name: Option<String>, namespace: Option<String> },
    Label { target: Target, set: Vec<(String, String)>, remove: Vec<String>, overwrite: bool },
    /// Where `lab exec` enters: `target` is a pod name or TYPE/NAME (`deploy/curl`).
    Exec { namespace: String, target: String, container: Option<String> },
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Response {
    /// Lines for stdout, kubectl-shaped.
    pub lines: Vec<String>,
    /// Lines for stderr (warnings, partial failures).
    pub warnings: Vec<String>,
    /// Set when the request failed as a whole or in part (the CLI exits non-zero).
    pub error: Option<String>,
    pub objects: Vec<Value>,
    pub sandbox: Option<Sandbox>,
}

impl Response {
    pub fn error(message: impl Into<String>) -> Self {
        Self { error: Some(message.into()), ..Default::default() }
    }
}
