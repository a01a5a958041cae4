//! What a [`crate::Dataplane`] applied, kept in a file so that a restarted process resumes
//! from it (`Dataplane::resume`): its first replace is then blue/green next to the table it
//! finds, instead of a delete-and-create in one transaction, whose set swap can reject one
//! allowed connection. Palisade's own record, never read from the kernel.
//!
//! Sets are recorded without their elements: a resumed dataplane's first apply is a full
//! replace, which needs the names of what it replaces, not their contents (and writing
//! half a million elements after every sync cost more than the sync).

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::generation::Naming;
use crate::ruleset::Ruleset;

#[derive(Serialize)]
struct Recording<'a> {
    naming: &'a Naming,
    ruleset: &'a Ruleset,
    cleanup: &'a [serde_json::Value],
}

#[derive(Deserialize)]
struct Recorded {
    naming: Naming,
    ruleset: Ruleset,
    /// Deletions not yet sent (see `Dataplane::defer_cleanup`).
    #[serde(default)]
    cleanup: Vec<serde_json::Value>,
}

/// What a file records: the applied ruleset, its naming, and deletions still to send.
pub type State = (Ruleset, Naming, Vec<serde_json::Value>);

/// The recorded state, if the file exists and reads as one.
pub fn load(path: &Path) -> Option<State> {
    let bytes = std::fs::read(path).ok()?;
    let recorded: Recorded = serde_json::from_slice(&bytes).ok()?;
    Some((recorded.ruleset, recorded.naming, recorded.cleanup))
}

/// Records the state (written under a temporary name and renamed: a reader sees the old
/// record or the new one).
pub fn save(path: &Path, ruleset: &Ruleset, naming: &Naming, cleanup: &[serde_json::Value]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut names_only = ruleset.clone();
    for set in &mut names_only.sets {
        set.elements = Default::default();
    }
    let bytes = serde_json::to_vec(&Recording { naming, ruleset: &names_only, cleanup }).map_err(std::io::Error::other)?;
    let temporary = path.with_extension("tmp");
    std::fs::write(&temporary, bytes)?;
    std::fs::rename(&temporary, path)
}
