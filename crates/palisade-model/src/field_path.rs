//! Field paths (`spec.ingress[0].from[1].ipBlock.cidr`) and the errors attached to them.

use std::fmt;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Segment {
    Key(String),
    Index(usize),
}

/// A path into an object, printed the way kube-apiserver prints field paths.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct FieldPath(Vec<Segment>);

impl FieldPath {
    pub fn root() -> Self {
        Self::default()
    }

    pub fn key(&self, key: &str) -> Self {
        let mut segments = self.0.clone();
        segments.push(Segment::Key(key.to_string()));
        Self(segments)
    }

    pub fn index(&self, index: usize) -> Self {
        let mut segments = self.0.clone();
        segments.push(Segment::Index(index));
        Self(segments)
    }

    /// This path below `prefix` (used for the items of a `List`).
    pub fn under(&self, prefix: &FieldPath) -> Self {
        Self(prefix.0.iter().chain(&self.0).cloned().collect())
    }

    pub fn segments(&self) -> &[Segment] {
        &self.0
    }

    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, segment) in self.0.iter().enumerate() {
            match segment {
                Segment::Key(key) if i == 0 => f.write_str(key)?,
                Segment::Key(key) => write!(f, ".{key}")?,
                Segment::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

/// A field path being walked. Each level borrows its parent, so descending into a field
/// costs nothing (building owned paths for every field was 7% of loading, perf); it becomes
/// a [`FieldPath`] only when an error is recorded.
#[derive(Clone, Copy, Debug)]
pub struct At<'a> {
    parent: Option<&'a At<'a>>,
    step: Step<'a>,
}

#[derive(Clone, Copy, Debug)]
enum Step<'a> {
    Root,
    Key(&'a str),
    Index(usize),
}

impl<'a> At<'a> {
    pub const ROOT: At<'static> = At { parent: None, step: Step::Root };

    pub fn key(&'a self, key: &'a str) -> At<'a> {
        At { parent: Some(self), step: Step::Key(key) }
    }

    pub fn index(&'a self, index: usize) -> At<'a> {
        At { parent: Some(self), step: Step::Index(index) }
    }

    /// The owned path.
    pub fn path(&self) -> FieldPath {
        let mut segments = Vec::new();
        let mut at = Some(self);
        while let Some(level) = at {
            match level.step {
                Step::Root => {}
                Step::Key(key) => segments.push(Segment::Key(key.to_string())),
                Step::Index(index) => segments.push(Segment::Index(index)),
            }
            at = level.parent;
        }
        segments.reverse();
        FieldPath(segments)
    }
}

impl From<At<'_>> for FieldPath {
    fn from(at: At<'_>) -> Self {
        at.path()
    }
}

impl From<&At<'_>> for FieldPath {
    fn from(at: &At<'_>) -> Self {
        at.path()
    }
}

/// What is wrong with one field, and what would be allowed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    pub path: FieldPath,
    pub message: String,
    /// The path names a key that should not be there (located at the key, not a value).
    pub at_key: bool,
}

impl FieldError {
    pub fn new(path: FieldPath, message: impl Into<String>) -> Self {
        Self { path, message: message.into(), at_key: false }
    }

    pub fn unknown_field(path: FieldPath) -> Self {
        Self { path, message: "unknown field".to_string(), at_key: true }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_root() { f.write_str(&self.message) } else { write!(f, "{}: {}", self.path, self.message) }
    }
}

/// Collects field errors while converting an object.
#[derive(Debug, Default)]
pub struct Errors(pub Vec<FieldError>);

impl Errors {
    pub fn push(&mut self, path: impl Into<FieldPath>, message: impl Into<String>) {
        self.0.push(FieldError::new(path.into(), message));
    }

    /// Records every message from a syntax check as an error on `at` about `value`.
    pub fn check(&mut self, at: &At<'_>, what: &str, value: &str, messages: Vec<String>) {
        for message in messages {
            self.push(at, format!("invalid {what} {value:?}: {message}"));
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn into_result<T>(self, value: T) -> Result<T, Vec<FieldError>> {
        if self.0.is_empty() { Ok(value) } else { Err(self.0) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_like_the_api_server() {
        let path = FieldPath::root().key("spec").key("ingress").index(0).key("from").index(1).key("ipBlock");
        assert_eq!(path.to_string(), "spec.ingress[0].from[1].ipBlock");
        assert_eq!(FieldPath::root().key("x").under(&FieldPath::root().key("items").index(2)).to_string(), "items[2].x");
    }

    #[test]
    fn walked_paths_become_the_same_owned_paths() {
        let spec = At::ROOT.key("spec");
        let ingress = spec.key("ingress");
        let rule = ingress.index(0);
        assert_eq!(rule.key("from").index(1).key("ipBlock").path().to_string(), "spec.ingress[0].from[1].ipBlock");
        assert_eq!(At::ROOT.path(), FieldPath::root());
    }
}
