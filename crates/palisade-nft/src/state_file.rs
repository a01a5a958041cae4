//! What a [`crate::Dataplane`] applied, kept in a file so that a restarted process resumes
//! from it (`Dataplane::resume`): its first replace is then blue/green next to the table it
//! finds, instead of a delete-and-create in one transaction, whose set swap can reject one
//! allowed connection. Palisade's own record, never read from the kernel.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::generation::Naming;
use crate::ruleset::Ruleset;

#[derive(Serialize, Deserialize)]
struct Recorded {
    naming: Naming,
    ruleset: Ruleset,
}

/// The recorded state, if the file exists and reads as one.
pub fn load(path: &Path) -> Option<(Ruleset, Naming)> {
    let bytes = std::fs::read(path).ok()?;
    let recorded: Recorded = serde_json::from_slice(&bytes).ok()?;
    Some((recorded.ruleset, recorded.naming))
}

/// Records the state (written under a temporary name and renamed: a reader sees the old
/// record or the new one).
pub fn save(path: &Path, ruleset: &Ruleset, naming: &Naming) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let bytes = serde_json::to_vec(&Recorded { naming: naming.clone(), ruleset: ruleset.clone() }).map_err(std::io::Error::other)?;
    let temporary = path.with_extension("tmp");
    std::fs::write(&temporary, bytes)?;
    std::fs::rename(&temporary, path)
}
