//! Messages about the user's input, pointing at file:line:column.

use std::fmt;
use std::path::PathBuf;

/// Where in the input a message points.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Location {
    pub file: Option<PathBuf>,
    /// 1-based.
    pub line: usize,
    /// 1-based.
    pub column: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let file = self.file.as_ref().map(|f| f.display().to_string()).unwrap_or_else(|| "<input>".into());
        if self.line == 0 {
            // The message is about the whole file (it could not be read).
            return f.write_str(&file);
        }
        write!(f, "{file}:{}:{}", self.line, self.column)
    }
}

/// One error or warning: `file:line:col: Kind ns/name: field.path: message`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub location: Location,
    /// `NetworkPolicy production/default-deny-ingress`, when the message is about one object.
    pub object: Option<String>,
    /// `spec.ingress[0].from[0].ipBlock.cidr`, when the message is about one field.
    pub field: Option<String>,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.location)?;
        if let Some(object) = &self.object {
            write!(f, "{object}: ")?;
        }
        if let Some(field) = &self.field {
            write!(f, "{field}: ")?;
        }
        f.write_str(&self.message)
    }
}

/// The input could not be loaded; every problem found is listed.
#[derive(Debug, thiserror::Error)]
#[error("{} problem(s) in the input:\n{}", .0.len(), .0.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("\n"))]
pub struct LoadError(pub Vec<Diagnostic>);
