//! Label selectors in their validated form, and label matching.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::Serialize;

/// Labels of a pod or namespace. Ordered, so that equal label sets compare and hash equal.
pub type Labels = BTreeMap<String, String>;

/// One requirement of a selector (`matchLabels` entries become `In` with one value).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Requirement {
    pub key: String,
    pub operator: Operator,
}

/// Selector operators as the API defines them for `matchExpressions`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(tag = "op", content = "values")]
pub enum Operator {
    In(BTreeSet<String>),
    NotIn(BTreeSet<String>),
    Exists,
    DoesNotExist,
}

/// A validated label selector: the AND of its requirements. No requirement selects everything.
///
/// Requirements are kept sorted and deduplicated so that two selectors that mean the same
/// thing compare equal, which lets the engine share work between identical peers.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Selector {
    requirements: Vec<Requirement>,
}

impl Selector {
    /// The selector that matches every object (`{}`).
    pub fn everything() -> Self {
        Self::default()
    }

    pub fn new(mut requirements: Vec<Requirement>) -> Self {
        requirements.sort();
        requirements.dedup();
        Self { requirements }
    }

    /// Shorthand for a `matchLabels`-only selector.
    pub fn from_match_labels<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        Self::new(pairs.into_iter().map(|(k, v)| Requirement { key: k.to_string(), operator: Operator::In(BTreeSet::from([v.to_string()])) }).collect())
    }

    pub fn requirements(&self) -> &[Requirement] {
        &self.requirements
    }

    pub fn is_everything(&self) -> bool {
        self.requirements.is_empty()
    }

    pub fn matches(&self, labels: &Labels) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }

    /// The first requirement the labels fail, for explanations.
    pub fn first_mismatch(&self, labels: &Labels) -> Option<&Requirement> {
        self.requirements.iter().find(|r| !r.matches(labels))
    }
}

impl Requirement {
    pub fn matches(&self, labels: &Labels) -> bool {
        let value = labels.get(&self.key);
        match &self.operator {
            Operator::In(values) => value.is_some_and(|v| values.contains(v)),
            // NotIn and DoesNotExist match objects that lack the key (edge case 17).
            Operator::NotIn(values) => value.is_none_or(|v| !values.contains(v)),
            Operator::Exists => value.is_some(),
            Operator::DoesNotExist => value.is_none(),
        }
    }
}

impl fmt::Display for Requirement {
    /// kubectl's selector syntax: `app=web`, `tier in (a,b)`, `tier notin (a)`, `key`, `!key`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let join = |values: &BTreeSet<String>| values.iter().cloned().collect::<Vec<_>>().join(",");
        match &self.operator {
            Operator::In(values) if values.len() == 1 => {
                write!(f, "{}={}", self.key, values.iter().next().unwrap_or(&String::new()))
            }
            Operator::In(values) => write!(f, "{} in ({})", self.key, join(values)),
            Operator::NotIn(values) => write!(f, "{} notin ({})", self.key, join(values)),
            Operator::Exists => write!(f, "{}", self.key),
            Operator::DoesNotExist => write!(f, "!{}", self.key),
        }
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.requirements.is_empty() {
            return f.write_str("{}");
        }
        let parts: Vec<String> = self.requirements.iter().map(|r| r.to_string()).collect();
        f.write_str(&parts.join(","))
    }
}

/// Formats labels as `k=v,k2=v2` (or `<none>`), as kubectl shows them.
pub fn format_labels(labels: &Labels) -> String {
    if labels.is_empty() {
        return "<none>".to_string();
    }
    labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn req(key: &str, operator: Operator) -> Requirement {
        Requirement { key: key.into(), operator }
    }

    fn set(values: &[&str]) -> BTreeSet<String> {
        values.iter().map(|v| v.to_string()).collect()
    }

    #[test]
    fn empty_selector_matches_everything() {
        assert!(Selector::everything().matches(&Labels::new()));
        assert!(Selector::everything().matches(&labels(&[("a", "b")])));
    }

    #[test]
    fn not_in_and_does_not_exist_match_objects_without_the_key() {
        let not_in = Selector::new(vec![req("ns-name", Operator::NotIn(set(&["c"])))]);
        assert!(not_in.matches(&Labels::new()));
        assert!(not_in.matches(&labels(&[("ns-name", "b")])));
        assert!(!not_in.matches(&labels(&[("ns-name", "c")])));
        let absent = Selector::new(vec![req("x", Operator::DoesNotExist)]);
        assert!(absent.matches(&Labels::new()));
        assert!(!absent.matches(&labels(&[("x", "")])));
    }

    #[test]
    fn in_and_exists_need_the_key() {
        let in_sel = Selector::new(vec![req("pod", Operator::In(set(&["a", "b"])))]);
        assert!(in_sel.matches(&labels(&[("pod", "b")])));
        assert!(!in_sel.matches(&Labels::new()));
        let exists = Selector::new(vec![req("pod", Operator::Exists)]);
        assert!(exists.matches(&labels(&[("pod", "")])));
        assert!(!exists.matches(&labels(&[("other", "x")])));
    }

    #[test]
    fn requirements_are_anded() {
        let sel = Selector::from_match_labels([("pod", "b"), ("pod2", "updated")]);
        assert!(!sel.matches(&labels(&[("pod", "b")])));
        assert!(sel.matches(&labels(&[("pod", "b"), ("pod2", "updated")])));
        assert_eq!(sel.first_mismatch(&labels(&[("pod", "b")])).unwrap().key, "pod2");
    }

    #[test]
    fn equivalent_selectors_compare_equal_and_print_like_kubectl() {
        let a = Selector::new(vec![req("b", Operator::Exists), req("a", Operator::In(set(&["x"])))]);
        let b = Selector::new(vec![req("a", Operator::In(set(&["x"]))), req("b", Operator::Exists)]);
        assert_eq!(a, b);
        assert_eq!(a.to_string(), "a=x,b");
        let c = Selector::new(vec![req("t", Operator::NotIn(set(&["y", "x"]))), req("u", Operator::DoesNotExist)]);
        assert_eq!(c.to_string(), "t notin (x,y),!u");
    }
}
