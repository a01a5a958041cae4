//! Applying rulesets: every change is one `nft -j -f -` transaction, so the kernel holds
//! either the old or the new table, never a mix and never an empty table.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::diff::{Changes, incremental, replacement_changes};
use crate::generation::{Generation, named};
use crate::json::{create_commands, delete_commands, document, replace_commands};
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
/// only differences; a full resync repairs anything changed behind its back. Objects in the
/// kernel carry a generation suffix (see [`crate::generation`]).
pub struct Dataplane<N: Nft> {
    nft: N,
    /// The desired ruleset last applied, and the generation that holds it in the kernel.
    applied: Option<(Ruleset, Generation)>,
    /// When the table was last replaced as a whole.
    last_replace: Option<Instant>,
}

impl<N: Nft> Dataplane<N> {
    pub fn new(nft: N) -> Self {
        Self { nft, applied: None, last_replace: None }
    }

    /// A dataplane that believes the kernel holds `applied` in `generation` (for example,
    /// as recorded by a previous process). If it does not, the next replace recreates the
    /// table.
    pub fn resume(nft: N, applied: Ruleset, generation: Generation) -> Self {
        Self { nft, applied: Some((applied, generation)), last_replace: None }
    }

    /// The reconcile step: an incremental update, or a full replace when the last one is
    /// older than `resync_every` (or there was none), which repairs anything changed behind
    /// Palisade's back. `now` is passed in so callers (and tests) control the clock.
    pub fn sync(&mut self, desired: &Ruleset, now: Instant, resync_every: Duration) -> Result<ApplyReport, ApplyError> {
        let due = self.last_replace.is_none_or(|at| now.saturating_duration_since(at) >= resync_every);
        let report = if due { self.replace(desired)? } else { self.update(desired)? };
        if report.kind == ApplyKind::Full {
            self.last_replace = Some(now);
        }
        Ok(report)
    }

    /// What to record to `resume` later.
    pub fn state(&self) -> Option<(&Ruleset, Generation)> {
        self.applied.as_ref().map(|(r, g)| (r, *g))
    }

    /// The ruleset last applied successfully.
    pub fn applied(&self) -> Option<&Ruleset> {
        self.applied.as_ref().map(|(ruleset, _)| ruleset)
    }

    /// The table as the kernel holds it (with generation suffixes).
    pub fn live(&self) -> Option<Ruleset> {
        self.applied.as_ref().map(|(ruleset, generation)| named(ruleset, *generation))
    }

    fn send(&self, commands: Vec<serde_json::Value>) -> Result<usize, ApplyError> {
        let doc = document(commands);
        self.nft.apply(&doc)?;
        Ok(doc.len())
    }

    /// Replaces the whole table: the new generation is built next to the old one, then the
    /// old one is deleted (two transactions, each atomic; no connection sees a state that
    /// neither the old nor the new ruleset allows). Without a previous state, or when the
    /// kernel no longer holds what Palisade applied, the table is deleted and created again
    /// in one transaction.
    pub fn replace(&mut self, desired: &Ruleset) -> Result<ApplyReport, ApplyError> {
        let start = Instant::now();
        let changes = replacement_changes(self.applied(), desired);
        let (commands, bytes) = match &self.applied {
            Some((old, generation)) if old.table == desired.table => {
                let next = named(desired, generation.other());
                let previous = named(old, *generation);
                let create = create_commands(&next);
                // Unhook the old generation first; delete its objects once nothing reaches them.
                let (unhook, delete) = delete_commands(&previous);
                let count = create.len() + unhook.len() + delete.len();
                let result = self.send(create).and_then(|a| self.send(unhook).map(|b| a + b)).and_then(|ab| self.send(delete).map(|c| ab + c));
                match result {
                    Ok(bytes) => {
                        self.applied = Some((desired.clone(), generation.other()));
                        (count, bytes)
                    }
                    Err(error) => {
                        tracing::warn!(%error, "blue/green replace failed; recreating the table");
                        self.recreate(desired)?
                    }
                }
            }
            _ => self.recreate(desired)?,
        };
        Ok(ApplyReport { kind: ApplyKind::Full, changes, commands, bytes, duration: start.elapsed() })
    }

    /// Deletes and creates the table in one transaction (first apply, or repair).
    fn recreate(&mut self, desired: &Ruleset) -> Result<(usize, usize), ApplyError> {
        let live = named(desired, Generation::A);
        let commands = replace_commands(&live);
        let count = commands.len();
        let bytes = self.send(commands)?;
        self.applied = Some((desired.clone(), Generation::A));
        Ok((count, bytes))
    }

    /// Sends only what changed since the last apply (nothing if nothing changed). Falls back
    /// to a full replace when there is no previous state, the table name changed, or the
    /// incremental transaction is rejected (the table was changed behind Palisade's back).
    pub fn update(&mut self, desired: &Ruleset) -> Result<ApplyReport, ApplyError> {
        let Some((old, generation)) = self.applied.as_ref().filter(|(old, _)| old.table == desired.table) else {
            return self.replace(desired);
        };
        let generation = *generation;
        let start = Instant::now();
        let update = incremental(&named(old, generation), &named(desired, generation));
        let count = update.prepare.len() + update.switch.len();
        let mut bytes = 0;
        // Prepare adds unreferenced objects, switch uses them, cleanup deletes what nothing
        // uses any more (see `diff::Update` for why these are three transactions).
        let count = count + update.cleanup.len();
        for commands in [update.prepare, update.switch, update.cleanup] {
            if commands.is_empty() {
                continue;
            }
            match self.send(commands) {
                Ok(n) => bytes += n,
                Err(error) => {
                    tracing::warn!(%error, "incremental update rejected; replacing the whole table");
                    return self.replace(desired);
                }
            }
        }
        self.applied = Some((desired.clone(), generation));
        Ok(ApplyReport { kind: ApplyKind::Incremental, changes: update.changes, commands: count, bytes, duration: start.elapsed() })
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use super::*;
    use crate::ruleset::{BaseChain, Chain, Hook, KeyType, Set};

    /// Records every transaction instead of applying it.
    #[derive(Default)]
    struct Recorder(RefCell<Vec<serde_json::Value>>);

    impl Nft for &Recorder {
        fn apply(&self, document: &str) -> Result<(), ApplyError> {
            self.0.borrow_mut().push(serde_json::from_str(document).expect("valid JSON"));
            Ok(())
        }
    }

    fn ruleset(elements: &[u16]) -> Ruleset {
        Ruleset {
            table: "palisade".into(),
            sets: vec![Set {
                name: "s".into(),
                key: vec![KeyType::Service],
                interval: false,
                elements: elements.iter().map(|p| vec![crate::ruleset::Value::Port(*p, *p)]).collect(),
            }],
            maps: vec![],
            chains: vec![Chain { name: "forward".into(), base: Some(BaseChain { hook: Hook::Forward, priority: 0 }), rules: vec![] }],
        }
    }

    #[test]
    fn sync_updates_incrementally_and_replaces_when_a_resync_is_due() {
        let recorder = Recorder::default();
        let mut dataplane = Dataplane::new(&recorder);
        let start = Instant::now();
        let every = Duration::from_secs(60);
        assert_eq!(dataplane.sync(&ruleset(&[80]), start, every).unwrap().kind, ApplyKind::Full, "first apply");
        let second = dataplane.sync(&ruleset(&[80, 443]), start + Duration::from_secs(10), every).unwrap();
        assert_eq!(second.kind, ApplyKind::Incremental);
        assert_eq!(second.changes.elements_added, 1);
        let unchanged = dataplane.sync(&ruleset(&[80, 443]), start + Duration::from_secs(20), every).unwrap();
        assert_eq!((unchanged.kind, unchanged.commands), (ApplyKind::Incremental, 0), "nothing to send");
        let resync = dataplane.sync(&ruleset(&[80, 443]), start + Duration::from_secs(61), every).unwrap();
        assert_eq!(resync.kind, ApplyKind::Full, "a minute after the last replace");
        // First apply (1 transaction) + one update (1) + resync (3, blue/green).
        assert_eq!(recorder.0.borrow().len(), 5);
        let sent = recorder.0.borrow();
        // Blue/green: build generation b, unhook the old base chain, then delete the rest.
        assert!(sent[2]["nftables"].to_string().contains("forward_b"), "{}", sent[2]);
        assert!(sent[3]["nftables"].to_string().contains("\"delete\":{\"chain\":{\"family\":\"inet\",\"name\":\"forward_a\""), "{}", sent[3]);
        assert!(sent[4]["nftables"].to_string().contains("\"delete\":{\"set\":{\"family\":\"inet\",\"name\":\"s_a\""), "{}", sent[4]);
    }
}
