//! The commands that turn the last applied ruleset into the desired one, in one transaction:
//! set and map elements added or removed, changed chains flushed and refilled, objects
//! added or deleted. Computed from what Palisade applied, never from the live kernel state.

use std::collections::{BTreeMap, BTreeSet};

use foldhash::HashMap;

use serde_json::Value as Json;

use crate::generation::Naming;
use crate::json;
use crate::ruleset::{Chain, Element, KeyType, Ruleset, Set, Statement, Verdict, VerdictMap};

/// What a transaction changes, for reports.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Changes {
    pub sets_added: usize,
    pub sets_removed: usize,
    pub elements_added: usize,
    pub elements_removed: usize,
    pub chains_added: usize,
    pub chains_removed: usize,
    pub chains_changed: usize,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        *self == Changes::default()
    }
}

impl std::fmt::Display for Changes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.is_empty() {
            return f.write_str("nothing changed");
        }
        let parts = [
            (self.sets_added, "sets/maps added"),
            (self.sets_removed, "sets/maps removed"),
            (self.elements_added, "elements added"),
            (self.elements_removed, "elements removed"),
            (self.chains_added, "chains added"),
            (self.chains_removed, "chains removed"),
            (self.chains_changed, "chains rewritten"),
        ];
        let words: Vec<String> = parts.iter().filter(|(n, _)| *n > 0).map(|(n, what)| format!("{n} {what}")).collect();
        f.write_str(&words.join(", "))
    }
}

/// Counts what a full replacement of `old` (if any) by `new` changes: counting only, no
/// commands built (a resync of a large table must not build its whole JSON to say so).
pub fn replacement_changes(old: Option<&Ruleset>, new: &Ruleset) -> Changes {
    let Some(old) = old else {
        return Changes { sets_added: new.sets.len() + new.maps.len(), elements_added: new.element_count(), chains_added: new.chains.len(), ..Default::default() };
    };
    let mut changes = Changes::default();
    // Names of either kind: a list is removed when no set or map keeps its name.
    let new_names: BTreeSet<&str> = new.sets.iter().map(|s| s.name.as_str()).chain(new.maps.iter().map(|m| m.name.as_str())).collect();
    fn sets(r: &Ruleset) -> Vec<(&str, &[crate::ruleset::Element])> {
        r.sets.iter().map(|s| (s.name.as_str(), &s.elements[..])).collect()
    }
    fn maps(r: &Ruleset) -> Vec<(&str, &[(crate::ruleset::Element, crate::ruleset::Verdict)])> {
        r.maps.iter().map(|m| (m.name.as_str(), &m.elements[..])).collect()
    }
    count_lists(&sets(old), &sets(new), &new_names, &mut changes);
    count_lists(&maps(old), &maps(new), &new_names, &mut changes);
    let old_chains: BTreeMap<&str, &Chain> = old.chains.iter().map(|c| (c.name.as_str(), c)).collect();
    for chain in &new.chains {
        match old_chains.get(chain.name.as_str()) {
            Some(before) if before.rules != chain.rules || before.base != chain.base => changes.chains_changed += 1,
            Some(_) => {}
            None => changes.chains_added += 1,
        }
    }
    let new_chains: BTreeSet<&str> = new.chains.iter().map(|c| c.name.as_str()).collect();
    changes.chains_removed = old.chains.iter().filter(|c| !new_chains.contains(c.name.as_str())).count();
    changes
}

/// Adds to `changes` what replacing one kind of lists (sets, or maps) by name does:
/// lists added, removed (no set or map of `new_names` keeps the name) and their elements.
fn count_lists<E: Ord>(old: &[(&str, &[E])], new: &[(&str, &[E])], new_names: &BTreeSet<&str>, changes: &mut Changes) {
    let before: BTreeMap<&str, &[E]> = old.iter().copied().collect();
    for &(name, after) in new {
        match before.get(name) {
            Some(&was) if was != after => {
                let (b, a): (BTreeSet<_>, BTreeSet<_>) = (was.iter().collect(), after.iter().collect());
                changes.elements_removed += b.difference(&a).count();
                changes.elements_added += a.difference(&b).count();
            }
            Some(_) => {}
            None => {
                changes.sets_added += 1;
                changes.elements_added += after.len();
            }
        }
    }
    for (_, was) in old.iter().filter(|(name, _)| !new_names.contains(name)) {
        changes.sets_removed += 1;
        changes.elements_removed += was.len();
    }
}

/// One command of an update. Element changes, class chains, flushes and deletions are kept
/// typed, so that a transaction made only of them goes to the kernel over netlink: through
/// nft, every transaction first lists the table's chains into nft's cache (15-30 ms at
/// 2,500-10,700 chains), which is most of an event's update. The rest (sets, maps and
/// chains with their rules) goes as nft JSON.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    /// Through nft.
    Nft(Json),
    /// Elements added to or removed from a set.
    SetElements { add: bool, set: ListShape, elements: Vec<Element> },
    /// Elements added to or removed from a verdict map.
    MapElements { add: bool, map: ListShape, elements: Vec<(Element, Verdict)> },
    /// A regular chain whose one rule sets the mark bits under `mask` to `value` (a class).
    MarkChain { name: String, mask: u32, value: u32 },
    /// Deletes a chain's rules.
    Flush(String),
    /// Deletes a chain, set or map.
    Delete(Object, String),
}

/// What the kernel needs to know of a set or map to encode its elements.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListShape {
    pub name: String,
    pub key: Vec<KeyType>,
    pub interval: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Object {
    Chain,
    Set,
    Map,
}

impl Object {
    fn word(self) -> &'static str {
        match self {
            Object::Chain => "chain",
            Object::Set => "set",
            Object::Map => "map",
        }
    }
}

impl Command {
    /// Appends the command as nft JSON (a class chain is two commands: the chain, its rule).
    fn push_json(&self, table: &str, out: &mut Vec<Json>) {
        let verb = |add: bool| if add { "add" } else { "delete" };
        match self {
            Command::Nft(json) => out.push(json.clone()),
            Command::SetElements { add, set, elements } => out.push(json::element_command(verb(*add), table, &set.name, json::elements(elements, set.interval))),
            Command::MapElements { add, map, elements } => out.push(json::element_command(verb(*add), table, &map.name, json::map_elements(elements, map.interval))),
            Command::MarkChain { name, mask, value } => {
                let rule = crate::ruleset::Rule { statements: vec![Statement::SetMark { mask: *mask, value: *value }], comment: None };
                out.push(json::command("add", "chain", json::chain(table, &Chain { name: name.clone(), base: None, rules: Vec::new() })));
                out.push(json::command("add", "rule", json::rule(table, name, &rule)));
            }
            Command::Flush(chain) => out.push(json::by_name("flush", "chain", table, chain)),
            Command::Delete(object, name) => out.push(json::by_name("delete", object.word(), table, name)),
        }
    }
}

/// Commands as nft JSON, in order.
pub fn json_commands(table: &str, commands: &[Command]) -> Vec<Json> {
    let mut out = Vec::with_capacity(commands.len());
    for command in commands {
        command.push_json(table, &mut out);
    }
    out
}

/// An incremental update: three transactions, applied in order.
#[derive(Clone, Debug, Default)]
pub struct Update {
    /// Creates the new sets (with their elements), chains (with their rules) and maps.
    /// Nothing references them yet, so packets see no difference.
    pub prepare: Vec<Command>,
    /// Switches to the new state: element changes, verdict map elements pointing at the
    /// prepared chains, rewritten chains.
    pub switch: Vec<Command>,
    /// Deletes what nothing references any more.
    pub cleanup: Vec<Command>,
    pub changes: Changes,
    /// Sets and maps `prepare` creates empty, whose elements go in before `switch` (see
    /// [`incremental_streamed`]).
    pub fill: Vec<String>,
}

/// Why three transactions: nftables publishes a chain's rules for the next generation only,
/// while set and map lookups read the generation cursor when they run, so a packet that is
/// being judged during a commit can mix generations. Had a chain been created in the same
/// commit that points a verdict map element at it, such a packet could jump into it and find
/// no rules (accepted); had a set been deleted in the same commit, a packet still running the
/// old rules could miss in it (rejected). A chain committed one transaction earlier has its
/// rules in both generations, and nothing is deleted until nothing can reach it. (Measured
/// with 200 updates under load: with one transaction about 1 in 50,000 denied connections went
/// through; with three, none in over a million attempts.)
pub fn incremental(old: &Ruleset, new: &Ruleset) -> Update {
    plan(old, new, true)
}

/// The same update with the sets and maps `prepare` creates left empty: their elements
/// (`Update::fill`) go in separate transactions, over netlink, between prepare and switch.
/// Nothing references them before the switch, so the split is invisible to packets.
pub fn incremental_streamed(old: &Ruleset, new: &Ruleset) -> Update {
    plan(old, new, false)
}

fn plan(old: &Ruleset, new: &Ruleset, with_elements: bool) -> Update {
    let t = &new.table;
    let mut changes = Changes::default();
    let old_sets: BTreeMap<&str, _> = old.sets.iter().map(|s| (s.name.as_str(), s)).collect();
    let new_sets: BTreeMap<&str, _> = new.sets.iter().map(|s| (s.name.as_str(), s)).collect();
    let old_maps: BTreeMap<&str, _> = old.maps.iter().map(|m| (m.name.as_str(), m)).collect();
    let new_maps: BTreeMap<&str, _> = new.maps.iter().map(|m| (m.name.as_str(), m)).collect();
    let old_chains: BTreeMap<&str, &Chain> = old.chains.iter().map(|c| (c.name.as_str(), c)).collect();
    let new_chains: BTreeMap<&str, &Chain> = new.chains.iter().map(|c| (c.name.as_str(), c)).collect();

    // A set whose definition (key, flags) changed is deleted and created again.
    let same_shape = |a: &crate::ruleset::Set, b: &crate::ruleset::Set| a.key == b.key && a.interval == b.interval;
    let recreated_sets: BTreeSet<&str> = new_sets.iter().filter(|(n, s)| old_sets.get(*n).is_some_and(|o| !same_shape(o, s))).map(|(n, _)| *n).collect();
    let added_sets: Vec<&str> = new_sets.keys().filter(|n| !old_sets.contains_key(*n) || recreated_sets.contains(*n)).copied().collect();
    let removed_sets: Vec<&str> = old_sets.keys().filter(|n| !new_sets.contains_key(*n) || recreated_sets.contains(*n)).copied().collect();
    let added_maps: Vec<&str> = new_maps.keys().filter(|n| !old_maps.contains_key(*n)).copied().collect();
    let removed_maps: Vec<&str> = old_maps.keys().filter(|n| !new_maps.contains_key(*n)).copied().collect();
    let added_chains: Vec<&str> = new_chains.keys().filter(|n| !old_chains.contains_key(*n)).copied().collect();
    let removed_chains: Vec<&str> = old_chains.keys().filter(|n| !new_chains.contains_key(*n)).copied().collect();
    // A chain whose rules reference a recreated set is rewritten too (the delete needs it).
    let changed_chains: Vec<&str> =
        new_chains.iter().filter(|(n, c)| old_chains.get(*n).is_some_and(|o| o.rules != c.rules || o.base != c.base || references(o, &recreated_sets))).map(|(n, _)| *n).collect();

    // Transaction 1: new objects, complete, unreferenced (chains before the maps whose
    // elements jump to them, maps before the rules that look them up). A recreated set keeps its name, so it cannot be prepared.
    let mut prepare = Vec::new();
    let mut fill = Vec::new();
    for name in added_sets.iter().filter(|n| !recreated_sets.contains(*n)) {
        prepare.push(Command::Nft(json::command("add", "set", json::set(t, new_sets[name], with_elements))));
        changes.elements_added += new_sets[name].elements.len();
        fill.push(name.to_string());
    }
    // Class chains whole (netlink sends them so); the others' rules come after the maps.
    let class_chain = |name: &&str| crate::ruleset::mark_chain(new_chains[name]);
    for name in &added_chains {
        match class_chain(name) {
            Some((mask, value)) => prepare.push(Command::MarkChain { name: name.to_string(), mask, value }),
            None => prepare.push(Command::Nft(json::command("add", "chain", json::chain(t, new_chains[name])))),
        }
    }
    // Maps between the chains their elements jump to and the rules that look them up.
    for name in &added_maps {
        prepare.push(Command::Nft(json::command("add", "map", json::map(t, new_maps[name], with_elements))));
        changes.elements_added += new_maps[name].elements.len();
        fill.push(name.to_string());
    }
    if with_elements {
        fill.clear();
    }
    for name in added_chains.iter().filter(|n| class_chain(n).is_none()) {
        for rule in &new_chains[name].rules {
            prepare.push(Command::Nft(json::command("add", "rule", json::rule(t, name, rule))));
        }
    }

    // Transaction 2.
    let mut commands = Vec::new();
    // 2. Rewritten chains lose their old rules (the new ones come last).
    for name in &changed_chains {
        commands.push(Command::Flush(name.to_string()));
    }
    // 3. Elements: removals first (a removed map element may jump to a chain being deleted).
    // Unchanged lists (most, on an event) cost a comparison, not a set of their elements.
    for (name, old_map) in &old_maps {
        let Some(new_map) = new_maps.get(name) else { continue };
        if old_map.elements == new_map.elements {
            continue;
        }
        let gone = difference(&old_map.elements, &new_map.elements);
        if !gone.is_empty() {
            changes.elements_removed += gone.len();
            commands.push(Command::MapElements { add: false, map: shape_of_map(old_map), elements: gone });
        }
    }
    for (name, old_set) in &old_sets {
        if recreated_sets.contains(name) {
            continue;
        }
        let Some(new_set) = new_sets.get(name) else { continue };
        if old_set.elements == new_set.elements {
            continue;
        }
        let gone = difference(&old_set.elements, &new_set.elements);
        if !gone.is_empty() {
            changes.elements_removed += gone.len();
            commands.push(Command::SetElements { add: false, set: shape_of_set(old_set), elements: gone });
        }
    }
    // 4. A set whose shape changed keeps its name: it is deleted and created within the
    // switch (never happens with Palisade's own rendering, whose names encode the shape).
    for name in &recreated_sets {
        commands.push(Command::Delete(Object::Set, name.to_string()));
        commands.push(Command::Nft(json::command("add", "set", json::set(t, new_sets[name], false))));
    }
    // 5. New elements of sets and maps that already existed (or were recreated).
    for (name, new_set) in &new_sets {
        let fresh = match old_sets.get(name) {
            Some(old) if !recreated_sets.contains(name) && old.elements == new_set.elements => continue,
            Some(old) if !recreated_sets.contains(name) => difference(&new_set.elements, &old.elements),
            Some(_) => new_set.elements.to_vec(),
            None => continue,
        };
        if !fresh.is_empty() {
            changes.elements_added += fresh.len();
            commands.push(Command::SetElements { add: true, set: shape_of_set(new_set), elements: fresh });
        }
    }
    for (name, new_map) in &new_maps {
        let Some(old_map) = old_maps.get(name) else { continue };
        if old_map.elements == new_map.elements {
            continue;
        }
        let fresh = difference(&new_map.elements, &old_map.elements);
        if !fresh.is_empty() {
            changes.elements_added += fresh.len();
            commands.push(Command::MapElements { add: true, map: shape_of_map(new_map), elements: fresh });
        }
    }
    // 6. Rules of rewritten chains.
    for name in &changed_chains {
        for rule in &new_chains[name].rules {
            commands.push(Command::Nft(json::command("add", "rule", json::rule(t, name, rule))));
        }
    }
    changes.sets_added = added_sets.len() + added_maps.len();
    changes.sets_removed = removed_sets.len() + removed_maps.len();
    changes.chains_added = added_chains.len();
    changes.chains_removed = removed_chains.len();
    changes.chains_changed = changed_chains.len();

    // Transaction 3: objects nothing references any more. Removed chains are not in any
    // verdict map now; removed sets and maps are not in any rule.
    let mut cleanup = Vec::new();
    for name in &removed_chains {
        cleanup.push(Command::Flush(name.to_string()));
    }
    for name in &removed_maps {
        cleanup.push(Command::Delete(Object::Map, name.to_string()));
    }
    for name in &removed_chains {
        cleanup.push(Command::Delete(Object::Chain, name.to_string()));
    }
    for name in removed_sets.iter().filter(|n| !recreated_sets.contains(*n)) {
        cleanup.push(Command::Delete(Object::Set, name.to_string()));
    }
    Update { prepare, switch: commands, cleanup, changes, fill }
}

/// The elements of `a` not in `b`. Lists come sorted from the renderer, so this is one
/// merge (building search trees of both, as before, was 50-70 ms of a label change that
/// touches 50 sets of thousands of elements); unsorted lists take the long way.
fn difference<T: Ord + Clone>(a: &[T], b: &[T]) -> Vec<T> {
    if !(a.is_sorted() && b.is_sorted()) {
        let b: BTreeSet<&T> = b.iter().collect();
        return a.iter().filter(|e| !b.contains(e)).cloned().collect();
    }
    let mut out = Vec::new();
    let mut j = 0;
    for element in a {
        while j < b.len() && b[j] < *element {
            j += 1;
        }
        if b.get(j) != Some(element) {
            out.push(element.clone());
        }
    }
    out
}

fn shape_of_set(set: &Set) -> ListShape {
    ListShape { name: set.name.clone(), key: set.key.clone(), interval: set.interval }
}

fn shape_of_map(map: &VerdictMap) -> ListShape {
    ListShape { name: map.name.clone(), key: map.key.clone(), interval: map.interval }
}

fn references(chain: &Chain, sets: &BTreeSet<&str>) -> bool {
    chain.rules.iter().any(|r| r.statements.iter().any(|s| matches!(s, crate::ruleset::Statement::Lookup { set, .. } if sets.contains(set.as_str()))))
}

/// The objects of `old` and `new` an update from one to the other can touch: those not in
/// both alike under the same kernel name (and the chains looking up a set or map whose
/// kernel name or shape changes). The rest yield no command in [`incremental`]; leaving
/// them out before naming spares copying every chain, rule and verdict-map element of both
/// rulesets with their kernel names (about 10 MB each at 10,700 chains) on every event.
pub fn differing(old: &Ruleset, new: &Ruleset, old_naming: &Naming, new_naming: &Naming) -> (Ruleset, Ruleset) {
    if old_naming.generation != new_naming.generation {
        return (old.clone(), new.clone());
    }
    // Hash maps: at 10,700 chains, search trees of the names were most of this.
    let old_sets: HashMap<&str, &Set> = old.sets.iter().map(|s| (s.name.as_str(), s)).collect();
    let new_sets: HashMap<&str, &Set> = new.sets.iter().map(|s| (s.name.as_str(), s)).collect();
    let old_maps: HashMap<&str, &VerdictMap> = old.maps.iter().map(|m| (m.name.as_str(), m)).collect();
    let new_maps: HashMap<&str, &VerdictMap> = new.maps.iter().map(|m| (m.name.as_str(), m)).collect();
    // Sets and maps a rule may name differently or that are deleted and created again.
    let renamed = |name: &str| old_naming.set_name(name) != new_naming.set_name(name);
    let mut unstable: BTreeSet<&str> = old_sets.keys().chain(new_sets.keys()).chain(old_maps.keys()).chain(new_maps.keys()).copied().filter(|n| renamed(n)).collect();
    unstable.extend(new_sets.iter().filter(|(n, s)| old_sets.get(*n).is_some_and(|o| o.key != s.key || o.interval != s.interval)).map(|(n, _)| *n));
    let looks_up_unstable = |chain: &Chain| {
        chain.rules.iter().flat_map(|r| &r.statements).any(|s| match s {
            Statement::Lookup { set, .. } => unstable.contains(set.as_str()),
            Statement::Vmap { map, .. } | Statement::Absent { map, .. } => unstable.contains(map.as_str()),
            _ => false,
        })
    };
    let old_chains: HashMap<&str, &Chain> = old.chains.iter().map(|c| (c.name.as_str(), c)).collect();
    let new_chains: HashMap<&str, &Chain> = new.chains.iter().map(|c| (c.name.as_str(), c)).collect();
    let part = |ruleset: &Ruleset, other_sets: &HashMap<&str, &Set>, other_maps: &HashMap<&str, &VerdictMap>, other_chains: &HashMap<&str, &Chain>| Ruleset {
        table: ruleset.table.clone(),
        sets: ruleset.sets.iter().filter(|s| other_sets.get(s.name.as_str()) != Some(s) || unstable.contains(s.name.as_str())).cloned().collect(),
        maps: ruleset.maps.iter().filter(|m| other_maps.get(m.name.as_str()) != Some(m) || unstable.contains(m.name.as_str())).cloned().collect(),
        chains: ruleset.chains.iter().filter(|c| other_chains.get(c.name.as_str()) != Some(c) || looks_up_unstable(c)).cloned().collect(),
    };
    (part(old, &new_sets, &new_maps, &new_chains), part(new, &old_sets, &old_maps, &old_chains))
}

#[cfg(test)]
mod tests {
    use super::difference;

    #[test]
    fn difference_of_sorted_and_unsorted_lists() {
        assert_eq!(difference(&[1, 3, 5, 7, 9], &[0, 3, 4, 9, 10]), vec![1, 5, 7]);
        assert_eq!(difference(&[1, 2], &[]), vec![1, 2]);
        assert_eq!(difference::<u8>(&[], &[1]), Vec::<u8>::new());
        assert_eq!(difference(&[9, 1, 5], &[5, 0]), vec![9, 1]);
    }
}
