//! Which command of a rejected transaction the kernel refused, and whose it is. nft's JSON
//! input gives no position with its error ("internal:0:0-0: Error: Could not process rule:
//! File exists"), so after a rejection the shortest refused prefix of the transaction is
//! found with dry runs (`nft -c`, which the kernel checks and aborts), in log2(n) of them.
//! Only rejected transactions pay for this.

use serde_json::Value as Json;

use crate::apply::Nft;
use crate::json::document;
use crate::ruleset::{Ruleset, Statement};

/// The object a refused command was about, and the policy that object comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Culprit {
    /// `set in_4dfd7876a19a_4`, `chain in_4dfd7876a19a`, `map ingress_pods_v4`, ...
    pub object: String,
    /// `namespace/name` of the policy whose rules reference the object, if any.
    pub policy: Option<String>,
}

impl std::fmt::Display for Culprit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.policy {
            Some(policy) => write!(f, "{} of policy {policy}", self.object),
            None => f.write_str(&self.object),
        }
    }
}

/// The first command whose prefix the kernel refuses in a dry run, or `None` when even the
/// whole transaction passes one now (the kernel's state changed in between) or dry runs
/// are not available.
pub fn find<N: Nft>(nft: &N, commands: &[Json], ruleset: &Ruleset) -> Option<Culprit> {
    let refused = |n: usize| nft.check(&document(&commands[..n])).is_err();
    if commands.is_empty() || !refused(commands.len()) {
        return None;
    }
    // Invariant: the prefix of `ok` commands passes, that of `bad` commands is refused.
    let (mut ok, mut bad) = (0, commands.len());
    while bad - ok > 1 {
        let mid = ok + (bad - ok) / 2;
        if refused(mid) { bad = mid } else { ok = mid }
    }
    Some(describe(&commands[bad - 1], ruleset))
}

/// Names the object of one command (`{"add": {"set": {...}}}`), and its policy.
fn describe(command: &Json, ruleset: &Ruleset) -> Culprit {
    let Some((_, body)) = command.as_object().and_then(|verb| verb.iter().next()) else {
        return Culprit { object: command.to_string(), policy: None };
    };
    let Some((kind, object)) = body.as_object().and_then(|o| o.iter().next()) else {
        return Culprit { object: command.to_string(), policy: None };
    };
    let name = object.get("name").or_else(|| object.get("chain")).and_then(Json::as_str).unwrap_or_default();
    // Objects in the kernel carry a generation suffix the desired ruleset does not.
    let base = name.strip_suffix("_a").or_else(|| name.strip_suffix("_b")).unwrap_or(name);
    let kind = if kind == "element" { "set" } else { kind.as_str() };
    Culprit { object: format!("{kind} {base}"), policy: owner(ruleset, base) }
}

/// The policy a set or chain belongs to: rule comments start with the policy's
/// `namespace/name`, on the rules that look the set up (or in the chain).
fn owner(ruleset: &Ruleset, name: &str) -> Option<String> {
    ruleset.chains.iter().flat_map(|c| c.rules.iter().map(move |r| (c, r))).find_map(|(chain, rule)| {
        let uses = chain.name == name || rule.statements.iter().any(|s| matches!(s, Statement::Lookup { set, .. } if set == name));
        let comment = rule.comment.as_deref().filter(|_| uses)?;
        let first = comment.split_whitespace().next()?;
        first.contains('/').then(|| first.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::ApplyError;
    use crate::ruleset::{Chain, Field, KeyType, Rule, Set};
    use serde_json::json;

    /// Refuses any document holding a command with `"bad"` in it.
    struct Refuses;

    impl Nft for Refuses {
        fn apply(&self, _: &str) -> Result<(), ApplyError> {
            Ok(())
        }
        fn check(&self, document: &str) -> Result<(), ApplyError> {
            if document.contains("bad") { Err(ApplyError::rejected("File exists")) } else { Ok(()) }
        }
    }

    #[test]
    fn the_first_refused_command_is_found_and_named_after_its_policy() {
        let ruleset = Ruleset {
            table: "palisade".into(),
            sets: vec![Set { name: "p_x_web_in4".into(), key: vec![KeyType::Ipv4], interval: true, elements: Default::default() }],
            maps: vec![],
            chains: vec![Chain {
                name: "in_1".into(),
                base: None,
                rules: vec![Rule { statements: vec![Statement::Lookup { fields: vec![Field::Saddr4], set: "p_x_web_in4".into() }, Statement::Return], comment: Some("x/web ingress[0,1]".into()) }],
            }],
        };
        let mut commands: Vec<Json> = (0..37).map(|i| json!({"add": {"chain": {"name": format!("c{i}")}}})).collect();
        commands.insert(20, json!({"add": {"set": {"name": "p_x_web_in4_b", "elem": "bad"}}}));
        let culprit = find(&Refuses, &commands, &ruleset).expect("found");
        assert_eq!(culprit.to_string(), "set p_x_web_in4 of policy x/web");
        assert_eq!(find(&Refuses, &commands[..20], &ruleset), None, "nothing refused");
    }
}
