//! YAML (and JSON, which YAML 1.2 contains) documents with positions: converted to
//! `serde_json::Value` for typed deserialization, and kept to locate field paths in errors.

use saphyr::{LoadableYamlNode, MarkedYaml, Scalar, YamlData};
use serde_json::{Map, Number, Value};

use crate::diagnostic::Location;
use crate::field_path::{FieldPath, Segment};

pub struct ParseError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// Parses every document of a stream.
pub fn parse_documents(text: &str) -> Result<Vec<MarkedYaml<'_>>, ParseError> {
    MarkedYaml::load_from_str(text).map_err(|e| ParseError {
        line: e.marker().line(),
        column: e.marker().col() + 1,
        message: e.info().to_string(),
    })
}

/// Converts a document to JSON. Mapping keys are stringified (YAML allows `80: x`).
pub fn to_json(node: &MarkedYaml<'_>) -> Value {
    match &node.data {
        YamlData::Value(scalar) => scalar_to_json(scalar),
        YamlData::Representation(text, _, _) => Value::String(text.to_string()),
        YamlData::Sequence(items) => Value::Array(items.iter().map(to_json).collect()),
        YamlData::Mapping(entries) => {
            let mut map = Map::with_capacity(entries.len());
            for (key, value) in entries {
                map.insert(key_text(key), to_json(value));
            }
            Value::Object(map)
        }
        YamlData::Tagged(_, inner) => to_json(inner),
        YamlData::Alias(_) | YamlData::BadValue => Value::Null,
    }
}

fn scalar_to_json(scalar: &Scalar<'_>) -> Value {
    match scalar {
        Scalar::Null => Value::Null,
        Scalar::Boolean(b) => Value::Bool(*b),
        Scalar::Integer(i) => Value::Number((*i).into()),
        Scalar::FloatingPoint(f) => Number::from_f64(f.into_inner()).map(Value::Number).unwrap_or(Value::Null),
        Scalar::String(s) => Value::String(s.to_string()),
    }
}

fn key_text(node: &MarkedYaml<'_>) -> String {
    match to_json(node) {
        Value::String(s) => s,
        other => other.to_string(),
    }
}

/// The position of the node at `path` in `root`: the value, or the key when `at_key`.
/// A path that does not exist (a missing required field) points at its deepest parent.
pub fn locate(root: &MarkedYaml<'_>, path: &FieldPath, at_key: bool) -> (usize, usize) {
    let mut node = root;
    let segments = path.segments();
    for (i, segment) in segments.iter().enumerate() {
        let last = i + 1 == segments.len();
        let next = match (segment, &node.data) {
            (Segment::Key(wanted), YamlData::Mapping(entries)) => {
                entries.iter().find(|(k, _)| key_text(k) == *wanted).map(|(k, v)| if last && at_key { k } else { v })
            }
            (Segment::Index(index), YamlData::Sequence(items)) => items.get(*index),
            _ => None,
        };
        match next {
            Some(child) => node = child,
            None => break,
        }
    }
    (node.span.start.line(), node.span.start.col() + 1)
}

pub fn location_in(file: Option<&std::path::Path>, (line, column): (usize, usize)) -> Location {
    Location { file: file.map(|f| f.to_path_buf()), line, column }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_and_locates() {
        let text = "kind: NetworkPolicy\nspec:\n  ingress:\n  - from:\n    - ipBlock:\n        cidr: 10.0.0/8\n";
        let docs = parse_documents(text).unwrap_or_else(|_| panic!("parses"));
        let value = to_json(&docs[0]);
        assert_eq!(value["spec"]["ingress"][0]["from"][0]["ipBlock"]["cidr"], "10.0.0/8");
        let path = FieldPath::root().key("spec").key("ingress").index(0).key("from").index(0).key("ipBlock").key("cidr");
        assert_eq!(locate(&docs[0], &path, false), (6, 15));
        assert_eq!(locate(&docs[0], &path, true), (6, 9));
        // A missing field points at the deepest node that exists.
        let missing = FieldPath::root().key("spec").key("ingress").index(0).key("ports");
        assert_eq!(locate(&docs[0], &missing, false), (4, 5));
    }

    #[test]
    fn reports_syntax_errors_with_position() {
        let Err(error) = parse_documents("a: [1, 2\nb: 3\n") else { panic!("must fail") };
        assert_eq!((error.line, error.column), (2, 2));
    }
}
