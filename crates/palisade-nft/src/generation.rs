//! Kernel names of the table's objects: blue/green generations, and versions of interval
//! sets.
//!
//! Every object in the kernel carries the suffix of the generation it belongs to
//! (`forward_a`, `in_4dfd7876a19a_4_a`). A full replace builds the other generation
//! completely, then deletes the old one:
//!
//! 1. Create every object of the new generation but its base chain: sets with their
//!    elements, regular chains with their rules, verdict maps. Nothing reaches them yet.
//! 2. Create the new base chain. It filters next to the old one, so while both exist a new
//!    connection passes only if both states allow it.
//! 3. Delete the old base chain: no new packet enters the old rules.
//! 4. Delete every other object of the old generation.
//!
//! Why 1 and 2 are separate transactions: the kernel's interval sets (pipapo for
//! concatenations) build their lookup structure on a copy and swap it in at the very end of
//! the commit, after the generation cursor has flipped; during that window rules of the new
//! generation already run and find a new set empty. Measured under load: about one allowed
//! connection in a million was rejected while both were one transaction. Deleting and
//! recreating the table in one transaction would also expose, at the commit, chains whose
//! rules nftables has published for the next generation only (see `diff::Update`): measured,
//! 2 of 50 replaces under load let a denied connection through.
//!
//! For the same reason an interval set is never changed in place in a way that moves a key
//! from one element to another (say two pods' addresses merging into one range): during the
//! window the old element is already inactive and the new one not yet visible. Such a set
//! gets a new *version* (`..._in4_a_v2`), built in the prepare transaction, and the chains
//! that look it up are rewritten to it in the switch.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ruleset::{Rule, Ruleset, Statement};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Generation {
    #[default]
    A,
    B,
}

impl Generation {
    pub fn other(self) -> Self {
        match self {
            Generation::A => Generation::B,
            Generation::B => Generation::A,
        }
    }

    pub fn suffix(self) -> &'static str {
        match self {
            Generation::A => "_a",
            Generation::B => "_b",
        }
    }
}

/// How the names of a desired ruleset map to the kernel's: the generation, and the version
/// of each interval set replaced since the generation was built (absent: the first).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Naming {
    pub generation: Generation,
    pub versions: BTreeMap<String, u32>,
}

impl Naming {
    pub fn new(generation: Generation) -> Self {
        Self { generation, versions: BTreeMap::new() }
    }

    pub(crate) fn set_name(&self, name: &str) -> String {
        match self.versions.get(name) {
            Some(v) => format!("{name}{}_v{v}", self.generation.suffix()),
            None => format!("{name}{}", self.generation.suffix()),
        }
    }
}

/// The ruleset with every object name (and every reference to one) as the kernel holds it.
pub fn named(ruleset: &Ruleset, naming: &Naming) -> Ruleset {
    let suffix = naming.generation.suffix();
    let rename = |name: &str| format!("{name}{suffix}");
    let set_name = |name: &str| naming.set_name(name);
    let mut out = ruleset.clone();
    for set in &mut out.sets {
        set.name = set_name(&set.name);
    }
    for map in &mut out.maps {
        map.name = set_name(&map.name);
        for (_, verdict) in map.elements.make_mut() {
            let chain = verdict.chain_mut();
            *chain = rename(chain);
        }
    }
    for chain in &mut out.chains {
        chain.name = rename(&chain.name);
        for Rule { statements, .. } in &mut chain.rules {
            for statement in statements {
                match statement {
                    Statement::Lookup { set, .. } => *set = set_name(set),
                    Statement::Vmap { map, .. } | Statement::Absent { map, .. } => *map = set_name(map),
                    Statement::Goto(chain) | Statement::Jump(chain) => *chain = rename(chain),
                    _ => {}
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ruleset::{Chain, Field, KeyType, Set, VerdictMap};

    #[test]
    fn every_name_and_reference_gets_the_suffix() {
        let ruleset = Ruleset {
            table: "palisade".into(),
            sets: vec![Set { name: "s".into(), key: vec![KeyType::Ipv4], interval: true, elements: Default::default() }],
            maps: vec![VerdictMap::by_address("m".into(), false, vec![("10.0.0.1".parse().unwrap(), "c".into())])],
            chains: vec![Chain {
                name: "c".into(),
                base: None,
                rules: vec![Rule {
                    statements: vec![Statement::Lookup { fields: vec![Field::Saddr4], set: "s".into() }, Statement::Vmap { fields: vec![Field::Daddr4], map: "m".into() }],
                    comment: None,
                }],
            }],
        };
        let b = named(&ruleset, &Naming::new(Generation::B));
        assert_eq!(b.table, "palisade", "the table keeps its name");
        assert_eq!(b.sets[0].name, "s_b");
        assert_eq!(b.maps[0].name, "m_b");
        assert_eq!(b.maps[0].elements[0].1.chain(), "c_b");
        assert_eq!(b.chains[0].name, "c_b");
        assert_eq!(b.chains[0].rules[0].statements[0], Statement::Lookup { fields: vec![Field::Saddr4], set: "s_b".into() });
        assert_eq!(b.chains[0].rules[0].statements[1], Statement::Vmap { fields: vec![Field::Daddr4], map: "m_b".into() });
        let versioned = named(&ruleset, &Naming { generation: Generation::A, versions: [("s".to_string(), 3)].into() });
        assert_eq!(versioned.sets[0].name, "s_a_v3");
        assert_eq!(versioned.chains[0].rules[0].statements[0], Statement::Lookup { fields: vec![Field::Saddr4], set: "s_a_v3".into() });
    }
}
