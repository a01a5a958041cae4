//! Applying rulesets: every change is one `nft -j -f -` transaction, so the kernel holds
//! either the old or the new table, never a mix and never an empty table.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::diff::{Changes, incremental, replacement_changes};
use crate::json::{document, replace_commands};
use crate::ruleset::Ruleset;

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("cannot run {binary}: {source}")]
    Spawn { binary: String, source: std::io::Error },
    #[error("nft rejected the transaction (nothing was changed): {stderr}")]
    Rejected { stderr: String },
}

/// Something that applies one nft JSON document as one transaction.
pub trait Nft {
    fn apply(&self, document: &str) -> Result<(), ApplyError>;
}

/// The `nft` binary, in the network namespace of the calling thread.
#[derive(Clone, Debug)]
pub struct NftBinary {
    pub binary: String,
}

impl Default for NftBinary {
    fn default() -> Self {
        Self { binary: "nft".to_string() }
    }
}

impl Nft for NftBinary {
    fn apply(&self, document: &str) -> Result<(), ApplyError> {
        let spawn_error = |source| ApplyError::Spawn { binary: self.binary.clone(), source };
        let mut child = Command::new(&self.binary)
            .args(["-j", "-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(spawn_error)?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(document.as_bytes()).map_err(spawn_error)?;
        }
        let output = child.wait_with_output().map_err(spawn_error)?;
        if output.status.success() {
            Ok(())
        } else {
            Err(ApplyError::Rejected { stderr: String::from_utf8_lossy(&output.stderr).trim().to_string() })
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApplyKind {
    /// The table was replaced as a whole.
    Full,
    /// Only the differences were sent.
    Incremental,
}

/// What one apply did.
#[derive(Clone, Debug)]
pub struct ApplyReport {
    pub kind: ApplyKind,
    pub changes: Changes,
    /// nft commands in the transaction, and the size of the JSON document.
    pub commands: usize,
    pub bytes: usize,
    pub duration: Duration,
}

impl std::fmt::Display for ApplyReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.kind {
            ApplyKind::Full => "replaced the table",
            ApplyKind::Incremental => "updated the table",
        };
        write!(
            f,
            "{kind} in {:.1} ms (one transaction, {} commands, {} bytes): {}",
            self.duration.as_secs_f64() * 1000.0,
            self.commands,
            self.bytes,
            self.changes
        )
    }
}

/// The dataplane of one network namespace: remembers what it applied last, so updates send
/// only differences; a full resync repairs anything changed behind its back.
pub struct Dataplane<N: Nft> {
    nft: N,
    applied: Option<Ruleset>,
}

impl<N: Nft> Dataplane<N> {
    pub fn new(nft: N) -> Self {
        Self { nft, applied: None }
    }

    /// The ruleset last applied successfully.
    pub fn applied(&self) -> Option<&Ruleset> {
        self.applied.as_ref()
    }

    /// Replaces the whole table in one transaction.
    pub fn replace(&mut self, desired: &Ruleset) -> Result<ApplyReport, ApplyError> {
        let start = Instant::now();
        let commands = replace_commands(desired);
        let count = commands.len();
        let doc = document(commands);
        self.nft.apply(&doc)?;
        let changes = replacement_changes(self.applied.as_ref(), desired);
        self.applied = Some(desired.clone());
        Ok(ApplyReport { kind: ApplyKind::Full, changes, commands: count, bytes: doc.len(), duration: start.elapsed() })
    }

    /// Sends only what changed since the last apply (nothing if nothing changed). Falls back
    /// to a full replace when there is no previous state, the table name changed, or the
    /// incremental transaction is rejected (the table was changed behind Palisade's back).
    pub fn update(&mut self, desired: &Ruleset) -> Result<ApplyReport, ApplyError> {
        let Some(old) = self.applied.as_ref().filter(|old| old.table == desired.table) else {
            return self.replace(desired);
        };
        let start = Instant::now();
        let (commands, changes) = incremental(old, desired);
        if commands.is_empty() {
            return Ok(ApplyReport { kind: ApplyKind::Incremental, changes, commands: 0, bytes: 0, duration: start.elapsed() });
        }
        let count = commands.len();
        let doc = document(commands);
        match self.nft.apply(&doc) {
            Ok(()) => {
                self.applied = Some(desired.clone());
                Ok(ApplyReport { kind: ApplyKind::Incremental, changes, commands: count, bytes: doc.len(), duration: start.elapsed() })
            }
            Err(error) => {
                tracing::warn!(%error, "incremental update rejected; replacing the whole table");
                self.replace(desired)
            }
        }
    }
}
