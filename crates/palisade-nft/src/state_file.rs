//! What a [`crate::Dataplane`] applied, kept in a file so that a restarted process resumes
//! from it (`Dataplane::resume`): its first replace is then blue/green next to the table it
//! finds, instead of a delete-and-create in one transaction, whose set swap can reject one
//! allowed connection. Palisade's own record, never read from the kernel.
//!
//! Only names are recorded (chains without their rules, sets and maps without their
//! elements): a resumed dataplane's first apply is a full replace, which needs the names of
//! what it replaces, not their contents. Writing the contents after every sync cost more
//! than the sync (half a million elements), and even the rules and verdict maps of a big
//! table took 15 ms per event; the names change only when objects come or go, so
//! [`Recorder`] writes only then.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::generation::Naming;
use std::hash::BuildHasher;

use crate::ruleset::{Chain, Ruleset, Set, VerdictMap};

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
    Recorder::default().save(path, ruleset, naming, cleanup)
}

/// Saves states, skipping a write when the record would not change.
#[derive(Default)]
pub struct Recorder {
    /// A hash of the last record written.
    last: Option<u64>,
}

impl Recorder {
    /// Records the state as [`save`] does, unless the last record written holds the same.
    pub fn save(&mut self, path: &Path, ruleset: &Ruleset, naming: &Naming, cleanup: &[serde_json::Value]) -> std::io::Result<()> {
        let bytes = serde_json::to_vec(&Recording { naming, ruleset: &names_only(ruleset), cleanup }).map_err(std::io::Error::other)?;
        let hash = foldhash::quality::FixedState::with_seed(0).hash_one(&bytes);
        if self.last == Some(hash) {
            return Ok(());
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let temporary = path.with_extension("tmp");
        std::fs::write(&temporary, bytes)?;
        std::fs::rename(&temporary, path)?;
        self.last = Some(hash);
        Ok(())
    }
}

/// The ruleset's objects without their contents.
fn names_only(ruleset: &Ruleset) -> Ruleset {
    Ruleset {
        table: ruleset.table.clone(),
        sets: ruleset.sets.iter().map(|s| Set { name: s.name.clone(), key: s.key.clone(), interval: s.interval, elements: Default::default() }).collect(),
        maps: ruleset.maps.iter().map(|m| VerdictMap { name: m.name.clone(), key: m.key.clone(), interval: m.interval, elements: Default::default() }).collect(),
        chains: ruleset.chains.iter().map(|c| Chain { name: c.name.clone(), base: c.base.clone(), rules: Vec::new() }).collect(),
    }
}
