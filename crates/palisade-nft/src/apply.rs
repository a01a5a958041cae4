//! Applying rulesets: every change is one `nft -j -f -` transaction, so the kernel holds
//! either the old or the new table, never a mix and never an empty table.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::culprit::{self, Culprit};
use crate::diff::{Changes, incremental, incremental_streamed, json_commands, replacement_changes};
use crate::generation::{Generation, Naming, named};
use crate::json::{create_unhooked, create_unhooked_except, delete_commands, document, hook_commands, replace_commands, unhooked_commands};
use crate::ruleset::{Element, Ruleset, Value, VerdictMap, mark_chain};

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("cannot run {binary}: {source}")]
    Spawn { binary: String, source: std::io::Error },
    #[error("nft rejected the transaction (nothing was changed){}: {stderr}", at.as_ref().map(|c| format!(" at {c}")).unwrap_or_default())]
    Rejected { stderr: String, at: Option<Culprit> },
    /// The netlink conversation itself failed (not the kernel refusing a change).
    #[error("netlink: {0}")]
    Netlink(String),
}

impl ApplyError {
    pub fn rejected(stderr: impl Into<String>) -> Self {
        ApplyError::Rejected { stderr: stderr.into(), at: None }
    }

    /// A short label for metrics: what kind of failure this was.
    pub fn reason(&self) -> &'static str {
        match self {
            ApplyError::Spawn { .. } => "nft_unavailable",
            ApplyError::Netlink(_) => "netlink",
            ApplyError::Rejected { stderr, .. } if stderr.contains("File exists") => "object_exists",
            ApplyError::Rejected { stderr, .. } if stderr.contains("No such file or directory") => "object_missing",
            ApplyError::Rejected { .. } => "rejected",
        }
    }
}

/// Something that applies one nft JSON document as one transaction.
pub trait Nft {
    fn apply(&self, document: &str) -> Result<(), ApplyError>;

    /// A dry run: the kernel checks the transaction and aborts it (`nft -c`). Used only to
    /// find what a rejected transaction failed on; `Ok` when dry runs are not available.
    fn check(&self, _document: &str) -> Result<(), ApplyError> {
        Ok(())
    }

    /// How transactions reach the kernel, for logs.
    fn describe(&self) -> String {
        "nft".to_string()
    }

    /// Whether set elements can go as raw netlink transactions ([`Nft::netlink`]) rather than
    /// in nft's JSON: tens of bytes per element instead of kilobytes.
    fn supports_netlink(&self) -> bool {
        false
    }

    /// Sends one transaction of nf_tables netlink messages (see [`crate::netlink`]) in the
    /// network namespace `apply` works in.
    fn netlink(&self, transaction: &[u8]) -> Result<(), ApplyError> {
        crate::netlink::transact(transaction)
    }

    /// The names of a table's chains and sets (maps included) in that namespace.
    fn object_names(&self, table: &str) -> Result<(Vec<String>, Vec<String>), ApplyError> {
        crate::netlink::object_names(table)
    }
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
        self.run(&["-j", "-f", "-"], document)
    }

    // `nft` runs in the calling thread's namespace, and so does the netlink socket.
    fn supports_netlink(&self) -> bool {
        true
    }

    fn check(&self, document: &str) -> Result<(), ApplyError> {
        self.run(&["-c", "-j", "-f", "-"], document)
    }
}

impl NftBinary {
    /// Applies an nft script in text syntax (one transaction), for tables Palisade renders
    /// as text elsewhere (the lab's Service table).
    pub fn apply_text(&self, script: &str) -> Result<(), ApplyError> {
        self.run(&["-f", "-"], script)
    }

    fn run(&self, args: &[&str], document: &str) -> Result<(), ApplyError> {
        let spawn_error = |source| ApplyError::Spawn { binary: self.binary.clone(), source };
        let mut child = Command::new(&self.binary).args(args).stdin(Stdio::piped()).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().map_err(spawn_error)?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(document.as_bytes()).map_err(spawn_error)?;
        }
        let output = child.wait_with_output().map_err(spawn_error)?;
        if output.status.success() { Ok(()) } else { Err(ApplyError::rejected(String::from_utf8_lossy(&output.stderr).trim())) }
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
    /// Transactions sent, their nft commands, and the size of their JSON documents.
    pub transactions: usize,
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
            "{kind} in {:.1} ms ({} transaction{}, {} commands, {} bytes): {}",
            self.duration.as_secs_f64() * 1000.0,
            self.transactions,
            if self.transactions == 1 { "" } else { "s" },
            self.commands,
            self.bytes,
            self.changes
        )
    }
}

/// The dataplane of one network namespace: remembers what it applied last, so updates send
/// only differences; a full resync repairs anything changed behind its back. Objects in the
/// kernel carry a generation suffix, and replaced interval sets a version (see
/// [`crate::generation`]).
pub struct Dataplane<N: Nft> {
    nft: N,
    /// The desired ruleset last applied, and how its names map to the kernel's.
    applied: Option<(Ruleset, Naming)>,
    /// When the table was last replaced as a whole.
    last_replace: Option<Instant>,
    /// Deletions of objects nothing references any more, not yet sent (see
    /// [`Dataplane::defer_cleanup`]).
    pending_cleanup: Vec<serde_json::Value>,
    defer_cleanup: bool,
    /// A cleanup was refused: the kernel may hold objects `applied` does not describe, which
    /// a blue/green replace would leave behind (and collide with when the generation comes
    /// round again), so the next replace recreates the table.
    stale: bool,
    /// Tables of more elements than this get them over netlink, in transactions of bounded
    /// size (when the backend can): see [`crate::netlink`].
    stream_above: usize,
    /// Commands per transaction when building objects nothing reaches yet.
    chunk: usize,
}

/// Above this many elements a table's sets are filled over netlink (below, one JSON
/// transaction is as fast and keeps a first apply to one commit).
pub const STREAM_ABOVE: usize = 5_000;

/// Commands per transaction when building what nothing reaches yet (see
/// [`Dataplane::send_unreachable`]).
const UNREACHABLE_CHUNK: usize = 1_000;

impl<N: Nft> Dataplane<N> {
    pub fn new(nft: N) -> Self {
        Self { nft, applied: None, last_replace: None, pending_cleanup: Vec::new(), defer_cleanup: false, stale: false, stream_above: STREAM_ABOVE, chunk: UNREACHABLE_CHUNK }
    }

    /// A dataplane that believes the kernel holds `applied` under `naming` (for example, as
    /// recorded by a previous process), plus objects `cleanup` deletes (sent before anything
    /// else). If it does not, the next replace recreates the table.
    pub fn resume(nft: N, applied: Ruleset, naming: Naming, cleanup: Vec<serde_json::Value>) -> Self {
        Self { nft, applied: Some((applied, naming)), last_replace: None, pending_cleanup: cleanup, defer_cleanup: false, stale: false, stream_above: STREAM_ABOVE, chunk: UNREACHABLE_CHUNK }
    }

    /// Fills sets over netlink for tables of more than `elements` elements (0: always, as
    /// tests do to exercise the path on small tables).
    pub fn stream_elements_above(mut self, elements: usize) -> Self {
        self.stream_above = elements;
        self
    }

    /// Builds what nothing reaches yet in transactions of at most `commands` commands
    /// (tests make them small, to exercise the path on small tables).
    pub fn build_in_pieces_of(mut self, commands: usize) -> Self {
        self.chunk = commands.max(1);
        self
    }

    fn streams(&self, ruleset: &Ruleset) -> bool {
        self.nft.supports_netlink() && ruleset.element_count() > self.stream_above
    }

    /// Puts the elements of the (kernel-named) sets and maps of `live` that `only` names (or
    /// all) into them over netlink, a bounded transaction at a time, after creating the
    /// chains [`mark_chain`] picks when `chains` (left out of the JSON: a table has one per
    /// class, thousands). The sets must exist, empty, and nothing may reference them or the
    /// chains yet. Returns transactions and bytes sent.
    fn fill(&self, live: &Ruleset, only: Option<&[String]>, chains: bool) -> Result<(usize, usize), ApplyError> {
        let wanted = |name: &str| only.is_none_or(|names| names.iter().any(|n| n == name));
        let mut batches = crate::netlink::Batches::default();
        let mut sent = (0, 0);
        if chains {
            for chain in &live.chains {
                if let Some((mask, value)) = mark_chain(chain) {
                    batches.mark_chain(&live.table, &chain.name, mask, value);
                }
            }
            // Before the elements that jump to them.
            self.send_batches(&mut batches, true, &mut sent)?;
        }
        // Complete transactions go as each set is encoded: memory stays bounded.
        for set in live.sets.iter().filter(|s| wanted(&s.name) && !s.elements.is_empty()) {
            let target = crate::netlink::Target { table: &live.table, name: &set.name, key: &set.key, interval: set.interval };
            batches.add(&target, set.elements.iter().map(|e| (e, None)));
            self.send_batches(&mut batches, false, &mut sent)?;
        }
        for map in live.maps.iter().filter(|m| wanted(&m.name) && !m.elements.is_empty()) {
            let target = crate::netlink::Target { table: &live.table, name: &map.name, key: &map.key, interval: map.interval };
            batches.add(&target, map.elements.iter().map(|(e, v)| (e, Some(v))));
            self.send_batches(&mut batches, false, &mut sent)?;
        }
        self.send_batches(&mut batches, true, &mut sent)?;
        Ok(sent)
    }

    /// Incremental updates return once the new state is in force (the switch transaction),
    /// leaving the deletion of what nothing references any more to [`Dataplane::finish`]:
    /// deleting chains and sets makes the kernel's commit wait for an RCU grace period
    /// (about 25 ms here), which need not delay the change itself. The next update or
    /// replace sends it first if `finish` was not called.
    pub fn defer_cleanup(mut self, defer: bool) -> Self {
        self.defer_cleanup = defer;
        self
    }

    /// The deletions an update left for later (to record with the state, so that a
    /// restarted process still sends them).
    pub fn pending_cleanup(&self) -> &[serde_json::Value] {
        &self.pending_cleanup
    }

    /// Sends the deletions an update left for later. If the kernel refuses them (the table
    /// was changed behind Palisade's back), the next sync deletes and creates the table.
    pub fn finish(&mut self) -> Result<(), ApplyError> {
        if self.pending_cleanup.is_empty() {
            return Ok(());
        }
        let commands = std::mem::take(&mut self.pending_cleanup);
        self.send(&commands).map(|_| ()).inspect_err(|error| {
            tracing::warn!(%error, "deleting unreferenced objects failed; the next sync recreates the table");
            self.last_replace = None;
            self.stale = true;
        })
    }

    /// The reconcile step: an incremental update, or a full replace when the last one is
    /// older than `resync_every` (or there was none), which repairs anything changed behind
    /// Palisade's back. `now` is passed in so callers (and tests) control the clock.
    pub fn sync(&mut self, desired: &Ruleset, now: Instant, resync_every: Duration) -> Result<ApplyReport, ApplyError> {
        self.sync_cow(Cow::Borrowed(desired), now, resync_every)
    }

    /// [`Self::sync`], keeping `desired` as the applied state without a copy (a big table's
    /// chains and rules are about 10 MB to copy on every event).
    pub fn sync_owned(&mut self, desired: Ruleset, now: Instant, resync_every: Duration) -> Result<ApplyReport, ApplyError> {
        self.sync_cow(Cow::Owned(desired), now, resync_every)
    }

    fn sync_cow(&mut self, desired: Cow<'_, Ruleset>, now: Instant, resync_every: Duration) -> Result<ApplyReport, ApplyError> {
        let due = self.last_replace.is_none_or(|at| now.saturating_duration_since(at) >= resync_every);
        let report = if due { self.replace_cow(desired)? } else { self.update_cow(desired)? };
        if report.kind == ApplyKind::Full {
            self.last_replace = Some(now);
        }
        Ok(report)
    }

    /// Remembers what the kernel now holds. The last state goes first: a clone of a big
    /// table's chains and rules (about 10 MB at 10,700 chains) is not made while the one it
    /// replaces is still held.
    fn took(&mut self, desired: Cow<'_, Ruleset>, naming: Naming) {
        self.applied = None;
        self.applied = Some((desired.into_owned(), naming));
    }

    /// What to record to `resume` later.
    pub fn state(&self) -> Option<(&Ruleset, &Naming)> {
        self.applied.as_ref().map(|(r, n)| (r, n))
    }

    /// The ruleset last applied successfully.
    pub fn applied(&self) -> Option<&Ruleset> {
        self.applied.as_ref().map(|(ruleset, _)| ruleset)
    }

    /// The table as the kernel holds it (with generation suffixes and set versions).
    pub fn live(&self) -> Option<Ruleset> {
        self.applied.as_ref().map(|(ruleset, naming)| named(ruleset, naming))
    }

    /// Sends one step of an update as one transaction: over netlink when every command can
    /// go so (no nft cache listing of the table), else as nft JSON.
    fn send_step(&self, table: &str, commands: &[crate::diff::Command]) -> Result<usize, ApplyError> {
        if self.nft.supports_netlink()
            && let Some(transaction) = crate::netlink::Batches::transaction(table, commands)
        {
            self.nft.netlink(&transaction)?;
            return Ok(transaction.len());
        }
        self.send(&json_commands(table, commands))
    }

    fn send(&self, commands: &[serde_json::Value]) -> Result<usize, ApplyError> {
        let doc = document(commands);
        self.nft.apply(&doc)?;
        Ok(doc.len())
    }

    /// Replaces the whole table: the new generation is built next to the old one, then the
    /// old one is deleted (four transactions, each atomic; no connection sees a state that
    /// neither the old nor the new ruleset allows; see [`crate::generation`]). Without a
    /// previous state, or when the kernel no longer holds what Palisade applied, the table is
    /// deleted and created again in one transaction.
    pub fn replace(&mut self, desired: &Ruleset) -> Result<ApplyReport, ApplyError> {
        self.replace_cow(Cow::Borrowed(desired))
    }

    fn replace_cow(&mut self, desired: Cow<'_, Ruleset>) -> Result<ApplyReport, ApplyError> {
        let start = Instant::now();
        // Objects a refused cleanup left are unknown to a blue/green replace: recreate.
        let _ = self.finish();
        let clean = !self.stale;
        let changes = replacement_changes(self.applied(), &desired);
        let mut transactions;
        let (commands, bytes) = match &self.applied {
            Some((old, naming)) if old.table == desired.table && clean => {
                let next_naming = Naming::new(naming.generation.other());
                let next = named(&desired, &next_naming);
                let previous = named(old, naming);
                // Build the new generation, hook it, unhook the old one, delete the rest of it.
                let (unhook, delete) = delete_commands(&previous);
                let streamed = self.streams(&desired);
                let first = if streamed { Vec::new() } else { create_unhooked(&next, true) };
                // A big old generation goes over netlink too, once nothing reaches it.
                let delete = if streamed { Vec::new() } else { delete };
                let steps = [first, hook_commands(&next), unhook, delete];
                let mut count = steps.iter().map(Vec::len).sum();
                transactions = steps.iter().filter(|c| !c.is_empty()).count();
                let mut bytes = 0;
                // A big new generation is built in pieces (nothing reaches it yet) and its
                // sets filled before its base chain can reach them.
                let mut result = if streamed {
                    self.send_unreachable(unhooked_commands(&next, false, |c| mark_chain(c).is_some())).and_then(|(c, t, b)| {
                        let (filling, filled) = self.fill(&next, None, true)?;
                        count += c;
                        transactions += t + filling;
                        bytes += b + filled;
                        Ok(())
                    })
                } else {
                    Ok(())
                };
                for commands in steps.into_iter().filter(|c| !c.is_empty()) {
                    if result.is_err() {
                        break;
                    }
                    match self.send(&commands) {
                        Ok(n) => bytes += n,
                        Err(error) => result = Err(error),
                    }
                }
                // Objects of neither generation: an update prepared them and the process
                // died before recording it. Nothing reaches them; they go now.
                if result.is_ok() && self.nft.supports_netlink() {
                    match self.delete_strays(&next, &previous) {
                        Ok((t, b)) => {
                            transactions += t;
                            bytes += b;
                        }
                        Err(error) => tracing::warn!(%error, "deleting objects no generation holds failed; the next replace tries again"),
                    }
                }
                if result.is_ok() && streamed {
                    match self.delete_unreachable(&previous) {
                        Ok((t, b)) => {
                            transactions += t;
                            bytes += b;
                        }
                        // The new generation is in force; what is left of the old one makes
                        // the next replace recreate the table.
                        Err(error) => {
                            tracing::warn!(%error, "deleting the old generation failed; the next sync recreates the table");
                            self.stale = true;
                        }
                    }
                }
                match result {
                    Ok(()) => {
                        self.took(desired, next_naming);
                        (count, bytes)
                    }
                    Err(error) => {
                        tracing::warn!(%error, "blue/green replace failed; recreating the table");
                        let (commands, bytes, sent) = self.recreate(desired)?;
                        transactions = sent;
                        (commands, bytes)
                    }
                }
            }
            _ => {
                let (commands, bytes, sent) = self.recreate(desired)?;
                transactions = sent;
                (commands, bytes)
            }
        };
        Ok(ApplyReport { kind: ApplyKind::Full, changes, transactions, commands, bytes, duration: start.elapsed() })
    }

    /// Deletes and creates the table in one transaction (first apply, or repair). Never open:
    /// packets see the old table or the new one, though during the commit's set swap a new
    /// connection the new table allows may still be rejected once (see
    /// [`crate::generation`]).
    /// Returns commands, bytes and transactions sent.
    fn recreate(&mut self, desired: Cow<'_, Ruleset>) -> Result<(usize, usize, usize), ApplyError> {
        let naming = Naming::new(Generation::A);
        let live = named(&desired, &naming);
        if self.streams(&desired) {
            return self.recreate_streamed(desired, live, naming);
        }
        let commands = replace_commands(&live);
        let count = commands.len();
        let bytes = match self.send(&commands) {
            Ok(bytes) => bytes,
            // The last resort failed: find what the kernel refused, so the error names it.
            Err(ApplyError::Rejected { stderr, .. }) => {
                return Err(ApplyError::Rejected { stderr, at: culprit::find(&self.nft, &commands, &desired) });
            }
            Err(error) => return Err(error),
        };
        self.took(desired, naming);
        self.stale = false;
        Ok((count, bytes, 1))
    }

    /// Deletes every regular chain, map and set of a (kernel-named) generation nothing reaches
    /// any more (its base chains are gone), over netlink.
    fn delete_unreachable(&self, generation: &Ruleset) -> Result<(usize, usize), ApplyError> {
        let chains: Vec<&str> = generation.chains.iter().filter(|c| c.base.is_none()).map(|c| c.name.as_str()).collect();
        let sets: Vec<&str> = generation.maps.iter().map(|m| m.name.as_str()).chain(generation.sets.iter().map(|s| s.name.as_str())).collect();
        self.delete_over_netlink(&generation.table, &chains, &sets)
    }

    /// Deletes the chains, sets and maps of the table that neither `next` (in force) nor
    /// `previous` (being deleted) holds, read by name from the kernel.
    fn delete_strays(&self, next: &Ruleset, previous: &Ruleset) -> Result<(usize, usize), ApplyError> {
        let (chains, sets) = self.nft.object_names(&next.table)?;
        let known: BTreeSet<&str> =
            [next, previous].into_iter().flat_map(|r| r.chains.iter().map(|c| c.name.as_str()).chain(r.sets.iter().map(|s| s.name.as_str())).chain(r.maps.iter().map(|m| m.name.as_str()))).collect();
        let stray_chains: Vec<&str> = chains.iter().map(String::as_str).filter(|c| !known.contains(c)).collect();
        let stray_sets: Vec<&str> = sets.iter().map(String::as_str).filter(|s| !known.contains(s)).collect();
        if stray_chains.is_empty() && stray_sets.is_empty() {
            return Ok((0, 0));
        }
        tracing::info!(chains = stray_chains.len(), sets = stray_sets.len(), "deleting objects no generation holds (left by an interrupted update)");
        self.delete_over_netlink(&next.table, &stray_chains, &stray_sets)
    }

    /// Deletes chains and sets (maps included) nothing reachable uses, in transactions of
    /// bounded size: the chains' rules first (then nothing looks up the sets), the sets and
    /// maps (then no element jumps to a chain), the chains.
    fn delete_over_netlink(&self, table: &str, chains: &[&str], sets: &[&str]) -> Result<(usize, usize), ApplyError> {
        let mut batches = crate::netlink::Batches::default();
        let mut sent = (0, 0);
        chains.iter().for_each(|c| batches.flush_chain(table, c));
        self.send_batches(&mut batches, true, &mut sent)?;
        sets.iter().for_each(|s| batches.delete_set(table, s));
        self.send_batches(&mut batches, true, &mut sent)?;
        chains.iter().for_each(|c| batches.delete_chain(table, c));
        self.send_batches(&mut batches, true, &mut sent)?;
        Ok(sent)
    }

    /// Sends the complete transactions `batches` holds (and, with `close`, the one being
    /// built), counting transactions and bytes into `sent`.
    fn send_batches(&self, batches: &mut crate::netlink::Batches, close: bool, sent: &mut (usize, usize)) -> Result<(), ApplyError> {
        if close {
            batches.cut();
        }
        for transaction in batches.take() {
            self.nft.netlink(&transaction)?;
            sent.0 += 1;
            sent.1 += transaction.len();
        }
        Ok(())
    }

    /// A recreate too big for one JSON transaction: the table is deleted and created with
    /// every object but its base chain, and a guard base chain that lets established
    /// connections through and drops new ones (fail closed: the old table is gone, the new
    /// one not filled yet); the sets are filled over netlink; then the base chain replaces
    /// the guard in one transaction.
    fn recreate_streamed(&mut self, desired: Cow<'_, Ruleset>, live: Ruleset, naming: Naming) -> Result<(usize, usize, usize), ApplyError> {
        use crate::ruleset::{BaseChain, Chain, Hook, Rule, Statement};
        let guard = Chain {
            name: format!("guard{}", naming.generation.suffix()),
            base: Some(BaseChain { hook: Hook::Forward, priority: 0 }),
            rules: vec![Rule { statements: vec![Statement::AcceptEstablished], comment: None }, Rule { statements: vec![Statement::Drop], comment: Some("palisade: filling the table".to_string()) }],
        };
        let t = &live.table;
        let mut first = replace_commands(&Ruleset { table: t.clone(), sets: Vec::new(), maps: Vec::new(), chains: Vec::new() });
        first.push(crate::json::command("add", "chain", crate::json::chain(t, &guard)));
        first.extend(guard.rules.iter().map(|r| crate::json::command("add", "rule", crate::json::rule(t, &guard.name, r))));
        let mut bytes = self.send(&first)?;
        let (built, building, built_bytes) = self.send_unreachable(unhooked_commands(&live, false, |c| mark_chain(c).is_some())).map_err(|error| match error {
            ApplyError::Rejected { stderr, at: None } => ApplyError::Rejected { at: culprit::find(&self.nft, &create_unhooked_except(&live, false, |c| mark_chain(c).is_some()), &desired), stderr },
            error => error,
        })?;
        bytes += built_bytes;
        let (filling, filled) = self.fill(&live, None, true)?;
        bytes += filled;
        let mut hook = hook_commands(&live);
        let guard_only = Ruleset { table: t.clone(), sets: Vec::new(), maps: Vec::new(), chains: vec![guard] };
        hook.extend(delete_commands(&guard_only).0);
        bytes += self.send(&hook)?;
        self.took(desired, naming);
        self.stale = false;
        Ok((first.len() + built + hook.len(), bytes, building + filling + 2))
    }

    /// Creates objects nothing reaches yet in transactions of at most [`UNREACHABLE_CHUNK`]
    /// commands (see [`Dataplane::build_in_pieces_of`]), each built just before it is sent: libnftables' parse of a transaction
    /// (about 6 KB of C heap per rule) and the JSON stay bounded whatever the table's size.
    /// Returns commands, transactions and bytes sent.
    fn send_unreachable(&self, commands: impl Iterator<Item = serde_json::Value>) -> Result<(usize, usize, usize), ApplyError> {
        let mut sent = (0, 0, 0);
        let mut commands = commands.peekable();
        while commands.peek().is_some() {
            let chunk: Vec<serde_json::Value> = commands.by_ref().take(self.chunk).collect();
            sent.2 += self.send(&chunk)?;
            sent.0 += chunk.len();
            sent.1 += 1;
        }
        Ok(sent)
    }

    /// Sends only what changed since the last apply (nothing if nothing changed). Falls back
    /// to a full replace when there is no previous state, the table name changed, or the
    /// incremental transaction is rejected (the table was changed behind Palisade's back).
    pub fn update(&mut self, desired: &Ruleset) -> Result<ApplyReport, ApplyError> {
        self.update_cow(Cow::Borrowed(desired))
    }

    fn update_cow(&mut self, desired: Cow<'_, Ruleset>) -> Result<ApplyReport, ApplyError> {
        if self.finish().is_err() || self.stale {
            return self.replace_cow(desired);
        }
        let Some((old, naming)) = self.applied.as_ref().filter(|(old, _)| old.table == desired.table) else {
            return self.replace_cow(desired);
        };
        let start = Instant::now();
        let next_naming = versioned(old, &desired, naming);
        let streamed = self.streams(&desired);
        let versioned_at = start.elapsed();
        // Only what differs is named and diffed: the rest yields no command.
        let (before, after) = crate::diff::differing(old, &desired, naming, &next_naming);
        let differing_at = start.elapsed();
        let next = named(&after, &next_naming);
        let previous = named(&before, naming);
        let named_at = start.elapsed();
        let update = if streamed { incremental_streamed(&previous, &next) } else { incremental(&previous, &next) };
        drop((before, previous));
        let planned_at = start.elapsed();
        let crate::diff::Update { prepare, switch, cleanup, changes, fill } = update;
        let count = prepare.len() + switch.len() + cleanup.len();
        let mut bytes = 0;
        let mut transactions = 0;
        // Prepare adds unreferenced objects, switch uses them, cleanup deletes what nothing
        // uses any more (see `diff::Update` for why these are three transactions).
        let (cleanup, later) = if self.defer_cleanup { (Vec::new(), json_commands(&next.table, &cleanup)) } else { (cleanup, Vec::new()) };
        for (step, commands) in [prepare, switch, cleanup].into_iter().enumerate() {
            if !commands.is_empty() {
                match self.send_step(&next.table, &commands) {
                    Ok(n) => {
                        bytes += n;
                        transactions += 1;
                    }
                    Err(error) => {
                        tracing::warn!(%error, "incremental update rejected; replacing the whole table");
                        return self.replace_cow(desired);
                    }
                }
            }
            // The prepared sets' elements, before the switch makes them reachable.
            if step == 0 && !fill.is_empty() {
                match self.fill(&next, Some(&fill), false) {
                    Ok((t, b)) => {
                        transactions += t;
                        bytes += b;
                    }
                    Err(error) => {
                        tracing::warn!(%error, "filling the prepared sets failed; replacing the whole table");
                        return self.replace_cow(desired);
                    }
                }
            }
        }
        self.pending_cleanup = later;
        let sent_at = start.elapsed();
        self.took(desired, next_naming);
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        tracing::debug!(
            versioned_ms = ms(versioned_at),
            differing_ms = ms(differing_at - versioned_at),
            named_ms = ms(named_at - differing_at),
            planned_ms = ms(planned_at - named_at),
            objects = after.sets.len() + after.maps.len(),
            sent_ms = ms(sent_at - planned_at),
            "update timings"
        );
        Ok(ApplyReport { kind: ApplyKind::Incremental, changes, transactions, commands: count, bytes, duration: start.elapsed() })
    }
}

/// The naming for `desired` after `old`: an interval set whose change would move a key from
/// one element to another gets a new version (see [`crate::generation`]); versions of sets
/// that are gone are forgotten.
fn versioned(old: &Ruleset, desired: &Ruleset, naming: &Naming) -> Naming {
    let mut next = Naming { generation: naming.generation, versions: Default::default() };
    // By name: a linear search per set was a million comparisons at 1,000 sets.
    let old_sets: BTreeMap<&str, &crate::ruleset::Set> = old.sets.iter().map(|s| (s.name.as_str(), s)).collect();
    let old_maps: BTreeMap<&str, &VerdictMap> = old.maps.iter().map(|m| (m.name.as_str(), m)).collect();
    // Interval maps like interval sets: an element whose verdict changes is a key moving.
    let interval_objects = desired.sets.iter().filter(|s| s.interval).map(|set| {
        let moved = old_sets.get(set.name.as_str()).is_some_and(|o| o.interval && moves_keys(&o.elements, &set.elements, |e| e));
        (&set.name, moved)
    });
    let tier_pairs_changed = tier_pairs_changed(old, desired);
    let interval_maps = desired.maps.iter().filter(|m| m.interval).map(|map| {
        let moved = old_maps.get(map.name.as_str()).is_some_and(|o| o.interval && moves_keys(&o.elements, &map.elements, |(key, _)| key));
        (&map.name, moved || tier_pairs_changed.contains(map.name.as_str()))
    });
    for (name, moved) in interval_objects.chain(interval_maps) {
        let current = naming.versions.get(name).copied();
        match (current, moved) {
            (current, true) => {
                next.versions.insert(name.clone(), current.unwrap_or(1) + 1);
            }
            (Some(v), false) => {
                next.versions.insert(name.clone(), v);
            }
            (None, false) => {}
        }
    }
    next
}

/// The maps of ClusterNetworkPolicy tiers to replace by new versions rather than change in
/// place. A packet judged during the commit runs the old or the new rules, but reads each
/// map at the generation current when it looks it up. A tier's first map changed in place is
/// safe alone (the second answers alike at either generation, and the rules stay); it is
/// not when the second map changes too (an element moving from one map to the other could
/// be missed by both), when the second map appears or goes (the old rules with the new
/// first map, or the other way round), or when the first map gains its first Pass or loses
/// its last (the rules gain or lose the absence check in front of the second lookup). The
/// second map changed in place is likewise unsafe when the first changes, appears or goes.
/// New versions are complete before the switch, which renames them in the rules in one step.
fn tier_pairs_changed<'r>(old: &Ruleset, desired: &'r Ruleset) -> BTreeSet<&'r str> {
    #[derive(PartialEq)]
    enum Change {
        Absent,
        Added,
        Removed,
        Same,
        Changed,
    }
    let before: BTreeMap<&str, &VerdictMap> = old.maps.iter().map(|m| (m.name.as_str(), m)).collect();
    let after: BTreeMap<&'r str, &'r VerdictMap> = desired.maps.iter().map(|m| (m.name.as_str(), m)).collect();
    let change = |name: &str| match (before.get(name), after.get(name)) {
        (None, None) => Change::Absent,
        (None, Some(_)) => Change::Added,
        (Some(_), None) => Change::Removed,
        (Some(b), Some(a)) if b.elements == a.elements => Change::Same,
        _ => Change::Changed,
    };
    let passes = |map: Option<&&VerdictMap>| map.is_some_and(|m| m.has_jump());
    let mut out = BTreeSet::new();
    let firsts: BTreeSet<&str> = before
        .keys()
        .chain(after.keys())
        .copied()
        .filter(|n| {
            let second = crate::cluster_tiers::address_map_name(n);
            before.contains_key(second.as_str()) || after.contains_key(second.as_str())
        })
        .collect();
    for first in firsts {
        let second = crate::cluster_tiers::address_map_name(first);
        let (c1, c2) = (change(first), change(&second));
        let moved = |c: &Change| matches!(c, Change::Added | Change::Removed | Change::Changed);
        let guard_changes = passes(before.get(first)) != passes(after.get(first));
        let unsafe_first = c1 == Change::Changed && (moved(&c2) || guard_changes);
        let unsafe_second = c2 == Change::Changed && moved(&c1);
        if unsafe_first || unsafe_second {
            // Those kept from the last table (an added map is created whole anyway).
            out.extend([first, second.as_str()].into_iter().filter(|n| before.contains_key(n)).filter_map(|n| after.get_key_value(n).map(|(k, _)| *k)));
        }
    }
    out
}

/// Whether some element removed from an interval set or map covers a key some added element
/// covers (for a map, an element whose verdict changed is removed and added again).
fn moves_keys<E: Ord>(old: &[E], new: &[E], key: impl Fn(&E) -> &Element) -> bool {
    if old == new {
        return false;
    }
    let (before, after): (BTreeSet<&E>, BTreeSet<&E>) = (old.iter().collect(), new.iter().collect());
    let removed: Vec<&E> = before.difference(&after).copied().collect();
    if removed.is_empty() {
        return false;
    }
    after.difference(&before).any(|added| removed.iter().any(|gone| overlaps(key(gone), key(added))))
}

fn overlaps(a: &Element, b: &Element) -> bool {
    a.iter().zip(b).all(|(x, y)| match (x, y) {
        (Value::Addr(a0, a1), Value::Addr(b0, b1)) => a0 <= b1 && b0 <= a1,
        (Value::Proto(a0, a1), Value::Proto(b0, b1)) => a0 <= b1 && b0 <= a1,
        (Value::Port(a0, a1), Value::Port(b0, b1)) => a0 <= b1 && b0 <= a1,
        (Value::Mark(a0, a1), Value::Mark(b0, b1)) => a0 <= b1 && b0 <= a1,
        _ => false,
    })
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
            sets: vec![Set { name: "s".into(), key: vec![KeyType::Service], interval: false, elements: elements.iter().map(|p| smallvec::smallvec![crate::ruleset::Value::Port(*p, *p)]).collect() }],
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
        // First apply (1 transaction) + one update (1) + resync (4, blue/green).
        assert_eq!(recorder.0.borrow().len(), 6);
        let sent = recorder.0.borrow();
        // Blue/green: build generation b's sets, then hook its base chain, unhook the old one,
        // then delete the rest.
        assert!(sent[2]["nftables"].to_string().contains("s_b") && !sent[2]["nftables"].to_string().contains("forward_b"), "{}", sent[2]);
        assert!(sent[3]["nftables"].to_string().contains("forward_b"), "{}", sent[3]);
        assert!(sent[4]["nftables"].to_string().contains("\"delete\":{\"chain\":{\"family\":\"inet\",\"name\":\"forward_a\""), "{}", sent[4]);
        assert!(sent[5]["nftables"].to_string().contains("\"delete\":{\"set\":{\"family\":\"inet\",\"name\":\"s_a\""), "{}", sent[5]);
    }

    /// Records nft documents and netlink transactions apart.
    #[derive(Default)]
    struct Both {
        json: RefCell<usize>,
        netlink: RefCell<usize>,
    }

    impl Nft for &Both {
        fn apply(&self, _: &str) -> Result<(), ApplyError> {
            *self.json.borrow_mut() += 1;
            Ok(())
        }
        fn supports_netlink(&self) -> bool {
            true
        }
        fn netlink(&self, _: &[u8]) -> Result<(), ApplyError> {
            *self.netlink.borrow_mut() += 1;
            Ok(())
        }
    }

    #[test]
    fn an_update_of_elements_only_goes_over_netlink_and_one_with_rules_through_nft() {
        let both = Both::default();
        let mut dataplane = Dataplane::new(&both);
        dataplane.update(&ruleset(&[80])).unwrap();
        let sent = |b: &Both| (*b.json.borrow(), *b.netlink.borrow());
        assert_eq!(sent(&both), (1, 0), "a small first table: one nft transaction");
        let report = dataplane.update(&ruleset(&[80, 443])).unwrap();
        assert_eq!((report.kind, report.transactions), (ApplyKind::Incremental, 1));
        assert_eq!(sent(&both), (1, 1), "an element added: netlink, no nft");
        let mut with_rule = ruleset(&[443]);
        with_rule.chains[0].rules.push(crate::ruleset::Rule { statements: vec![crate::ruleset::Statement::Drop], comment: None });
        dataplane.update(&with_rule).unwrap();
        assert_eq!(sent(&both), (2, 1), "a rule and an element removed: one nft transaction");
    }

    fn interval_ruleset(elements: &[(&str, &str)]) -> Ruleset {
        let addr = |a: &str, b: &str| crate::ruleset::Value::Addr(a.parse().unwrap(), b.parse().unwrap());
        Ruleset {
            table: "palisade".into(),
            sets: vec![Set { name: "p".into(), key: vec![KeyType::Ipv4], interval: true, elements: elements.iter().map(|(a, b)| smallvec::smallvec![addr(a, b)]).collect() }],
            maps: vec![],
            chains: vec![Chain {
                name: "c".into(),
                base: None,
                rules: vec![crate::ruleset::Rule { statements: vec![crate::ruleset::Statement::Lookup { fields: vec![crate::ruleset::Field::Saddr4], set: "p".into() }], comment: None }],
            }],
        }
    }

    #[test]
    fn an_interval_set_whose_keys_move_between_elements_gets_a_new_version() {
        let recorder = Recorder::default();
        let mut dataplane = Dataplane::new(&recorder);
        dataplane.update(&interval_ruleset(&[("10.0.0.2", "10.0.0.2")])).unwrap();
        // A new disjoint element: added in place.
        dataplane.update(&interval_ruleset(&[("10.0.0.2", "10.0.0.2"), ("10.0.0.9", "10.0.0.9")])).unwrap();
        assert_eq!(dataplane.live().unwrap().sets[0].name, "p_a");
        // 10.0.0.2 moves into a merged range: a new version, built before the chain uses it.
        dataplane.update(&interval_ruleset(&[("10.0.0.2", "10.0.0.3"), ("10.0.0.9", "10.0.0.9")])).unwrap();
        assert_eq!(dataplane.live().unwrap().sets[0].name, "p_a_v2");
        let sent = recorder.0.borrow();
        let last: Vec<String> = sent[sent.len() - 3..].iter().map(|d| d["nftables"].to_string()).collect();
        assert!(last[0].contains("\"add\":{\"set\"") && last[0].contains("p_a_v2"), "prepare: {}", last[0]);
        assert!(last[1].contains("\"flush\":{\"chain\"") && last[1].contains("p_a_v2"), "switch: {}", last[1]);
        assert!(last[2].contains("\"delete\":{\"set\"") && last[2].contains("\"p_a\""), "cleanup: {}", last[2]);
        drop(sent);
        // Removing an element moves no key: in place again, the version stays.
        dataplane.update(&interval_ruleset(&[("10.0.0.2", "10.0.0.3")])).unwrap();
        assert_eq!(dataplane.live().unwrap().sets[0].name, "p_a_v2");
    }

    /// A tier's two maps as the renderer writes them, `t` by port and `ta` by address, with
    /// the given elements (addresses 10.0.0.x; port elements on TCP port 80, those in
    /// `passing` a Pass's `jump`); a map with no elements is left out, and the second
    /// lookup checks that the first map has no element only when the first holds a Pass.
    fn tier_ruleset(by_port: &[u8], passing: &[u8], by_address: &[u8]) -> Ruleset {
        use crate::ruleset::{Field, Rule, Statement, Verdict};
        let addr = |x: u8| Value::Addr(std::net::IpAddr::from([10, 0, 0, x]), std::net::IpAddr::from([10, 0, 0, x]));
        let verdict = |x: &u8| if passing.contains(x) { Verdict::Jump("p".into()) } else { Verdict::Goto("r".into()) };
        let fields = vec![Field::Daddr4, Field::L4Proto, Field::Dport];
        let mut maps = Vec::new();
        let mut rules = Vec::new();
        if !by_port.is_empty() {
            let elements = by_port.iter().map(|x| (smallvec::smallvec![addr(*x), Value::Proto(6, 6), Value::Port(80, 80)], verdict(x))).collect();
            maps.push(crate::ruleset::VerdictMap { name: "t".into(), key: vec![KeyType::Ipv4, KeyType::Proto, KeyType::Service], interval: true, elements });
            rules.push(Rule { statements: vec![Statement::Vmap { fields: fields.clone(), map: "t".into() }], comment: None });
        }
        if !by_address.is_empty() {
            let elements = by_address.iter().map(|x| (smallvec::smallvec![addr(*x)], Verdict::Goto("r".into()))).collect();
            maps.push(crate::ruleset::VerdictMap { name: "ta".into(), key: vec![KeyType::Ipv4], interval: true, elements });
            let mut statements = Vec::new();
            if by_port.iter().any(|x| passing.contains(x)) {
                statements.push(Statement::Absent { fields, map: "t".into() });
            }
            statements.push(Statement::Vmap { fields: vec![Field::Daddr4], map: "ta".into() });
            rules.push(Rule { statements, comment: None });
        }
        let chain = |name: &str, statements: Vec<Statement>| Chain { name: name.into(), base: None, rules: vec![Rule { statements, comment: None }] };
        let mut chains = vec![chain("r", vec![Statement::Return]), chain("p", vec![Statement::Counter])];
        chains.push(Chain { name: "c".into(), base: None, rules });
        Ruleset { table: "palisade".into(), sets: vec![], maps, chains }
    }

    #[test]
    fn a_tier_whose_maps_cannot_change_in_place_together_gets_new_versions() {
        let recorder = Recorder::default();
        let mut dataplane = Dataplane::new(&recorder);
        let names = |d: &Dataplane<&Recorder>| d.live().unwrap().maps.iter().map(|m| m.name.clone()).collect::<Vec<_>>();
        dataplane.update(&tier_ruleset(&[1], &[], &[2])).unwrap();
        // One map changes: in place (a packet reading the other at either generation gets
        // the same answer from it, and the rules stay).
        dataplane.update(&tier_ruleset(&[1, 3], &[], &[2])).unwrap();
        dataplane.update(&tier_ruleset(&[1, 3], &[], &[2, 4])).unwrap();
        assert_eq!(names(&dataplane), ["t_a", "ta_a"]);
        // 4 moves from the address map to the port map: both change, both are new versions.
        dataplane.update(&tier_ruleset(&[1, 3, 4], &[], &[2])).unwrap();
        assert_eq!(names(&dataplane), ["t_a_v2", "ta_a_v2"]);
        let sent = recorder.0.borrow();
        let switch = sent[sent.len() - 2]["nftables"].to_string();
        assert!(switch.contains("\"flush\":{\"chain\"") && switch.contains("@t_a_v2") && switch.contains("@ta_a_v2"), "switch: {switch}");
        drop(sent);
        // The first map gains its first Pass (so the rules gain the absence check): new versions.
        dataplane.update(&tier_ruleset(&[1, 3, 4, 5], &[5], &[2])).unwrap();
        assert_eq!(names(&dataplane), ["t_a_v3", "ta_a_v3"]);
        // The second map goes while the first changes: a new version of the first.
        dataplane.update(&tier_ruleset(&[1, 3, 4, 5, 6], &[5], &[])).unwrap();
        assert_eq!(names(&dataplane), ["t_a_v4"]);
        // It comes back while the first changes: the first gets a new version again.
        dataplane.update(&tier_ruleset(&[1, 3, 4, 5], &[5], &[2])).unwrap();
        assert_eq!(names(&dataplane), ["t_a_v5", "ta_a"]);
        // Only the first changes, its Pass kept: in place.
        dataplane.update(&tier_ruleset(&[1, 4, 5], &[5], &[2])).unwrap();
        assert_eq!(names(&dataplane), ["t_a_v5", "ta_a"]);
    }

    #[test]
    fn a_deferred_cleanup_goes_after_the_switch_or_before_the_next_change() {
        let recorder = Recorder::default();
        let mut dataplane = Dataplane::new(&recorder).defer_cleanup(true);
        dataplane.update(&interval_ruleset(&[("10.0.0.2", "10.0.0.2"), ("10.0.0.9", "10.0.0.9")])).unwrap();
        // A key moves: prepare and switch now, the old version's deletion pending.
        let report = dataplane.update(&interval_ruleset(&[("10.0.0.2", "10.0.0.3"), ("10.0.0.9", "10.0.0.9")])).unwrap();
        assert_eq!(report.transactions, 2);
        assert_eq!(recorder.0.borrow().len(), 3);
        assert!(dataplane.pending_cleanup().iter().any(|c| c.to_string().contains("\"delete\":{\"set\"") && c.to_string().contains("\"p_a\"")));
        dataplane.finish().unwrap();
        assert!(dataplane.pending_cleanup().is_empty());
        assert!(recorder.0.borrow()[3]["nftables"].to_string().contains("\"p_a\""), "the cleanup went as its own transaction");
        // Not finished: the next update sends the cleanup before anything of its own.
        dataplane.update(&interval_ruleset(&[("10.0.0.2", "10.0.0.4"), ("10.0.0.9", "10.0.0.9")])).unwrap();
        dataplane.update(&interval_ruleset(&[("10.0.0.2", "10.0.0.5"), ("10.0.0.9", "10.0.0.9")])).unwrap();
        let sent: Vec<String> = recorder.0.borrow().iter().map(|d| d["nftables"].to_string()).collect();
        let cleanup_v2 = sent.iter().position(|d| d.contains("\"delete\":{\"set\"") && d.contains("\"p_a_v2\"")).expect("v2 deleted");
        let prepare_v4 = sent.iter().position(|d| d.contains("\"add\":{\"set\"") && d.contains("p_a_v4")).expect("v4 prepared");
        assert!(cleanup_v2 < prepare_v4, "{sent:?}");
    }

    /// Refuses the first transaction that deletes a set, as a kernel whose table was
    /// changed behind Palisade's back would.
    #[derive(Default)]
    struct RefusesOneCleanup {
        sent: RefCell<Vec<String>>,
        refused: std::cell::Cell<bool>,
    }

    impl Nft for &RefusesOneCleanup {
        fn apply(&self, document: &str) -> Result<(), ApplyError> {
            if !self.refused.get() && document.contains("\"delete\":{\"set\"") {
                self.refused.set(true);
                return Err(ApplyError::rejected("internal:0:0-0: Error: Could not process rule: No such file or directory"));
            }
            self.sent.borrow_mut().push(document.to_string());
            Ok(())
        }
    }

    #[test]
    fn a_refused_cleanup_makes_the_next_sync_recreate_the_table() {
        let nft = RefusesOneCleanup::default();
        let mut dataplane = Dataplane::new(&nft).defer_cleanup(true);
        let start = Instant::now();
        let every = Duration::from_secs(60);
        dataplane.sync(&interval_ruleset(&[("10.0.0.2", "10.0.0.2"), ("10.0.0.9", "10.0.0.9")]), start, every).unwrap();
        dataplane.sync(&interval_ruleset(&[("10.0.0.2", "10.0.0.3"), ("10.0.0.9", "10.0.0.9")]), start, every).unwrap();
        assert!(dataplane.finish().is_err(), "the cleanup is refused");
        let sent_before = nft.sent.borrow().len();
        let report = dataplane.sync(&interval_ruleset(&[("10.0.0.2", "10.0.0.3")]), start + Duration::from_secs(1), every).unwrap();
        assert_eq!(report.kind, ApplyKind::Full);
        // Not blue/green (which would leave the undeleted set behind): the table is deleted
        // and created in one transaction.
        let sent = nft.sent.borrow();
        assert_eq!(sent.len(), sent_before + 1, "{sent:?}");
        assert!(sent[sent_before].contains("\"delete\":{\"table\""), "{}", sent[sent_before]);
    }
}
