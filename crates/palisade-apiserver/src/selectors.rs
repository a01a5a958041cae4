//! `labelSelector` and `fieldSelector` query parameters, with apimachinery's grammar:
//! `a=b`, `a==b`, `a!=b`, `a in (x,y)`, `a notin (x)`, `a`, `!a`, comma-separated (a comma
//! inside parentheses belongs to the set).

use std::collections::BTreeMap;

use crate::error::ApiError;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    DoesNotExist(String),
}

impl Requirement {
    fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        match self {
            Requirement::Equals(k, v) => labels.get(k) == Some(v),
            Requirement::NotEquals(k, v) => labels.get(k) != Some(v),
            Requirement::In(k, values) => labels.get(k).is_some_and(|v| values.contains(v)),
            Requirement::NotIn(k, values) => labels.get(k).is_none_or(|v| !values.contains(v)),
            Requirement::Exists(k) => labels.contains_key(k),
            Requirement::DoesNotExist(k) => !labels.contains_key(k),
        }
    }
}

/// A parsed label selector: every requirement must hold. Empty: everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LabelSelector(pub Vec<Requirement>);

impl LabelSelector {
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.0.iter().all(|r| r.matches(labels))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Splits on commas that are not inside parentheses.
fn terms(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&text[start..]);
    out.into_iter().map(str::trim).filter(|t| !t.is_empty()).collect()
}

fn bad(selector: &str, why: &str) -> ApiError {
    ApiError::bad_request(format!("unable to parse requirement: {why} (in {selector:?})"))
}

fn set_values(selector: &str, rest: &str) -> Result<Vec<String>, ApiError> {
    let inner = rest.trim().strip_prefix('(').and_then(|r| r.strip_suffix(')')).ok_or_else(|| bad(selector, "expected a parenthesized set of values"))?;
    Ok(inner.split(',').map(|v| v.trim().to_string()).filter(|v| !v.is_empty()).collect())
}

fn check_key(selector: &str, key: &str) -> Result<String, ApiError> {
    let problems = palisade_model::convert::names::qualified_name(key);
    if key.is_empty() || !problems.is_empty() {
        return Err(bad(selector, &format!("invalid label key {key:?}: {}", problems.join("; "))));
    }
    Ok(key.to_string())
}

/// Parses a `labelSelector` query value.
pub fn parse_labels(selector: &str) -> Result<LabelSelector, ApiError> {
    let mut requirements = Vec::new();
    for term in terms(selector) {
        let requirement = if let Some(key) = term.strip_prefix('!') {
            Requirement::DoesNotExist(check_key(selector, key.trim())?)
        } else if let Some((key, value)) = term.split_once("!=") {
            Requirement::NotEquals(check_key(selector, key.trim())?, value.trim().to_string())
        } else if let Some((key, value)) = term.split_once("==").or_else(|| term.split_once('=')) {
            Requirement::Equals(check_key(selector, key.trim())?, value.trim().to_string())
        } else if let Some((key, rest)) = split_word(term, "notin") {
            Requirement::NotIn(check_key(selector, key)?, set_values(selector, rest)?)
        } else if let Some((key, rest)) = split_word(term, "in") {
            Requirement::In(check_key(selector, key)?, set_values(selector, rest)?)
        } else {
            Requirement::Exists(check_key(selector, term)?)
        };
        requirements.push(requirement);
    }
    Ok(LabelSelector(requirements))
}

/// `key WORD rest`, with whitespace around WORD.
fn split_word<'a>(term: &'a str, word: &str) -> Option<(&'a str, &'a str)> {
    let mut parts = term.splitn(2, char::is_whitespace);
    let key = parts.next()?;
    let rest = parts.next()?.trim_start();
    let rest = rest.strip_prefix(word)?;
    rest.starts_with(|c: char| c.is_whitespace() || c == '(').then_some((key, rest))
}

/// A field selector: `field=value` or `field!=value` terms, all of which must hold.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSelector(pub Vec<(String, bool, String)>);

impl FieldSelector {
    /// `fields` gives an object's value of a selectable field (`None`: the field is empty).
    pub fn matches(&self, field: impl Fn(&str) -> Option<String>) -> bool {
        self.0.iter().all(|(name, equal, value)| (field(name).unwrap_or_default() == *value) == *equal)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The value a `metadata.name=X` term asks for, if any (a fast path for watches).
    pub fn name(&self) -> Option<&str> {
        self.0.iter().find(|(f, equal, _)| f == "metadata.name" && *equal).map(|(_, _, v)| v.as_str())
    }
}

/// Parses a `fieldSelector` query value; `supported` are the fields the resource selects on.
pub fn parse_fields(selector: &str, supported: &[&str]) -> Result<FieldSelector, ApiError> {
    let mut out = Vec::new();
    for term in terms(selector) {
        let (field, equal, value) = if let Some((f, v)) = term.split_once("!=") {
            (f, false, v)
        } else if let Some((f, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
            (f, true, v)
        } else {
            return Err(ApiError::bad_request(format!("invalid selector: '{selector}'; can't understand '{term}'")));
        };
        let field = field.trim();
        if !supported.contains(&field) {
            return Err(ApiError::bad_request(format!("\"{field}\" is not a known field selector: only \"{}\"", supported.join("\", \""))));
        }
        out.push((field.to_string(), equal, value.trim().to_string()));
    }
    Ok(FieldSelector(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn label_selectors_parse_and_match() {
        let s = parse_labels("app=web,tier!=db, env in (prod, staging),team notin (x),version,!legacy").unwrap();
        assert_eq!(s.0.len(), 6);
        assert!(s.matches(&labels(&[("app", "web"), ("env", "prod"), ("version", "1")])));
        assert!(!s.matches(&labels(&[("app", "web"), ("env", "dev"), ("version", "1")])));
        assert!(!s.matches(&labels(&[("app", "web"), ("env", "prod"), ("version", "1"), ("legacy", "")])));
        assert!(parse_labels("").unwrap().is_empty());
        assert_eq!(parse_labels("app==x").unwrap().0, vec![Requirement::Equals("app".into(), "x".into())]);
        assert!(parse_labels("bad key=x").is_err());
        assert!(parse_labels("a in x").is_err());
    }

    #[test]
    fn field_selectors_parse_and_match() {
        let s = parse_fields("metadata.name=web,status.phase!=Failed", &["metadata.name", "metadata.namespace", "status.phase"]).unwrap();
        assert_eq!(s.name(), Some("web"));
        assert!(s.matches(|f| Some(if f == "metadata.name" { "web".into() } else { "Running".into() })));
        assert!(!s.matches(|f| Some(if f == "metadata.name" { "web".into() } else { "Failed".into() })));
        let err = parse_fields("spec.foo=x", &["metadata.name"]).unwrap_err();
        assert_eq!(err.code, 400);
    }
}
