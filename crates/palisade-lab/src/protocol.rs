//! What the CLI and the lab daemon say to each other over the lab's Unix socket: one JSON
//! request line, one JSON response line. Everything about objects goes through the lab's
//! Kubernetes API instead; this is only the lab's own life.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "verb", rename_all = "kebab-case")]
pub enum Request {
    Down,
    /// The lab's machines and last dataplane sync; with `wait_synced` (seconds), once every
    /// change the API holds now has been settled on every node.
    Status {
        wait_synced: Option<f64>,
    },
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Response {
    pub lines: Vec<String>,
    /// Set when the request failed (the CLI exits non-zero).
    pub error: Option<String>,
}

impl Response {
    pub fn error(message: impl Into<String>) -> Self {
        Self { error: Some(message.into()), ..Default::default() }
    }
}
