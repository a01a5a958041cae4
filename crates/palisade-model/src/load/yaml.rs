//! YAML (and JSON, which YAML 1.2 contains) documents.
//!
//! The fast path builds `serde_json::Value`s straight from parser events, remembering only
//! where each document (and each item of a `List`) starts. Positions of individual fields are
//! only needed for error messages, so a file with errors is parsed a second time into
//! saphyr's `MarkedYaml`, whose every node carries its span, and the field paths of the
//! errors are looked up there.

use std::borrow::Cow;
use std::collections::HashMap;

use saphyr::{LoadableYamlNode, MarkedYaml, Scalar, YamlData};
use saphyr_parser::{Event, Parser, ScanError, Span, SpannedEventReceiver, Tag};
use serde_json::{Map, Number, Value};

use crate::diagnostic::Location;
use crate::field_path::{FieldPath, Segment};

/// A 1-based line and column.
pub type Position = (usize, usize);

pub struct ParseError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl ParseError {
    /// An error where `span` starts.
    fn at(span: &Span, message: String) -> Self {
        let (line, column) = position(span);
        ParseError { line, column, message }
    }
}

impl From<ScanError> for ParseError {
    fn from(e: ScanError) -> Self {
        ParseError { line: e.marker().line(), column: e.marker().col() + 1, message: e.info().to_string() }
    }
}

/// One document of a stream.
#[derive(Debug, PartialEq)]
pub struct Document {
    pub value: Value,
    /// Where the document's root node starts.
    pub start: Position,
    /// Where each element of a top-level `items` sequence starts (the objects of a `List`).
    pub item_starts: Vec<Position>,
    /// JSON only: the elements of the top-level `items` array as byte ranges of the text,
    /// left unparsed so that they are parsed in parallel (`value` then has an empty `items`).
    pub raw_items: Vec<std::ops::Range<usize>>,
}

/// Parses every document of a stream; empty documents are left out. JSON goes to
/// serde_json first, YAML to the block-YAML reader (both several times faster than saphyr);
/// what they do not take is read by saphyr, which also words every error.
pub fn parse_documents(text: &str) -> Result<Vec<Document>, ParseError> {
    if super::json::looks_like_json(text)
        && let Some(documents) = super::json::parse_documents(text)
    {
        return Ok(documents);
    }
    if let Some(documents) = super::block_yaml::parse_documents(text) {
        return Ok(documents);
    }
    parse_yaml_documents(text)
}

/// How deeply collections may nest. Dropping and deserializing values recurse once per
/// level, as saphyr's own loaders do (used to locate errors), so a limit keeps a crafted
/// file from overflowing a thread's stack; Kubernetes objects nest about 15 deep.
pub const MAX_NESTING: usize = 256;

/// How many nodes aliases may copy in one file: a few small anchors used many times over
/// (the ports of a pod template, say) are far below it; anchors of aliases of anchors (a
/// "billion laughs" file) would otherwise grow exponentially in memory.
pub const MAX_ALIASED_NODES: usize = 1_000_000;

/// The nodes aliases have copied so far in one file (see `MAX_ALIASED_NODES`).
#[derive(Default)]
pub(super) struct AliasBudget(usize);

impl AliasBudget {
    /// Counts the nodes an alias copies; `false` once the file is over the limit.
    pub(super) fn spend(&mut self, value: &Value) -> bool {
        self.0 += nodes(value);
        self.0 <= MAX_ALIASED_NODES
    }
}

/// The number of nodes of a value (itself included), as an alias would copy them.
fn nodes(value: &Value) -> usize {
    1 + match value {
        Value::Array(items) => items.iter().map(nodes).sum(),
        Value::Object(map) => map.values().map(nodes).sum(),
        _ => 0,
    }
}

/// Parses every document of a YAML stream; empty documents are left out.
pub fn parse_yaml_documents(text: &str) -> Result<Vec<Document>, ParseError> {
    let mut builder = Builder::default();
    // Event by event: saphyr's `Parser::load` recurses once per nesting level.
    for event in Parser::new_from_str(text) {
        let (event, span) = event?;
        builder.on_event(event, span);
        if let Some(error) = builder.error.take() {
            return Err(error);
        }
    }
    Ok(builder.documents)
}

enum Frame {
    Sequence { items: Vec<Value>, anchor: usize, start: Position },
    Mapping { map: Map<String, Value>, key: Option<(String, Span)>, anchor: usize, start: Position },
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    documents: Vec<Document>,
    item_starts: Vec<Position>,
    /// The anchored values of the current document, by saphyr's anchor number.
    anchors: HashMap<usize, Value>,
    /// saphyr numbers anchors across the stream; those below this one belong to earlier
    /// documents, which an alias cannot name (`Parser::load` forgets them at each document).
    first_anchor_of_document: usize,
    aliased: AliasBudget,
    error: Option<ParseError>,
}

fn position(span: &Span) -> Position {
    (span.start.line(), span.start.col() + 1)
}

pub(super) fn scalar(text: Cow<'_, str>, style: saphyr::ScalarStyle, tag: Option<&Cow<'_, Tag>>) -> Value {
    // Most scalars of a manifest are words. A quoted scalar is a string whatever its tag, and
    // a plain one that starts with a letter other than those of null, true and false is one
    // too (numbers start with a digit, a sign or a dot; `inf` and `nan` need the dot):
    // skipping saphyr's attempts at numbers for them saves a tenth of a YAML load.
    let word = |b: &u8| b.is_ascii_alphabetic() && !b"nNtTfF".contains(b);
    if style != saphyr::ScalarStyle::Plain || (tag.is_none() && text.as_bytes().first().is_some_and(word)) {
        return Value::String(text.into_owned());
    }
    resolve(text, style, tag)
}

/// A scalar resolved by saphyr (the YAML 1.2 core schema).
fn resolve(text: Cow<'_, str>, style: saphyr::ScalarStyle, tag: Option<&Cow<'_, Tag>>) -> Value {
    // Only a tagged scalar can fail to resolve; keep its text for that case.
    let original = tag.map(|_| text.to_string());
    match Scalar::parse_from_cow_and_metadata(text, style, tag) {
        Some(Scalar::Null) => Value::Null,
        Some(Scalar::Boolean(b)) => Value::Bool(b),
        Some(Scalar::Integer(i)) => Value::Number(i.into()),
        Some(Scalar::FloatingPoint(f)) => Number::from_f64(f.into_inner()).map(Value::Number).unwrap_or(Value::Null),
        Some(Scalar::String(s)) => Value::String(s.into_owned()),
        // A core-schema tag the text does not fit (`!!int abc`): keep the text.
        None => Value::String(original.unwrap_or_default()),
    }
}

pub(super) fn key_of(value: Value) -> String {
    match value {
        Value::String(s) => s,
        other => other.to_string(),
    }
}

impl Builder {
    /// Adds a finished node to its parent (or makes it a document).
    fn insert(&mut self, value: Value, anchor: usize, start: Position, span: Span) {
        if anchor > 0 {
            self.anchors.insert(anchor, value.clone());
        }
        // Elements of the root mapping's `items` sequence are the objects of a List.
        let is_list_item = self.stack.len() == 2 && matches!(&self.stack[0], Frame::Mapping { key: Some((k, _)), .. } if k == "items");
        match self.stack.last_mut() {
            None => {
                let item_starts = std::mem::take(&mut self.item_starts);
                if !value.is_null() {
                    self.documents.push(Document { value, start, item_starts, raw_items: Vec::new() });
                }
            }
            Some(Frame::Sequence { items, .. }) => {
                if is_list_item {
                    self.item_starts.push(start);
                }
                items.push(value);
            }
            Some(Frame::Mapping { map, key, .. }) => match key.take() {
                None => *key = Some((key_of(value), span)),
                Some((k, key_span)) => {
                    if map.insert(k, value).is_some() {
                        self.error = Some(ParseError::at(&key_span, "duplicated key in mapping".to_string()));
                    }
                }
            },
        }
    }
}

impl<'input> SpannedEventReceiver<'input> for Builder {
    fn on_event(&mut self, event: Event<'input>, span: Span) {
        if self.error.is_some() {
            return;
        }
        match event {
            Event::SequenceStart(..) | Event::MappingStart(..) if self.stack.len() >= MAX_NESTING => {
                self.error = Some(ParseError::at(&span, format!("collections nested more than {MAX_NESTING} deep")));
            }
            Event::SequenceStart(anchor, _) => {
                self.stack.push(Frame::Sequence { items: Vec::new(), anchor, start: position(&span) });
            }
            Event::MappingStart(anchor, _) => {
                self.stack.push(Frame::Mapping { map: Map::new(), key: None, anchor, start: position(&span) });
            }
            Event::SequenceEnd | Event::MappingEnd => match self.stack.pop() {
                Some(Frame::Sequence { items, anchor, start }) => self.insert(Value::Array(items), anchor, start, span),
                Some(Frame::Mapping { map, anchor, start, .. }) => self.insert(Value::Object(map), anchor, start, span),
                None => {}
            },
            Event::Scalar(text, style, anchor, tag) => {
                let value = scalar(text, style, tag.as_ref());
                self.insert(value, anchor, position(&span), span);
            }
            Event::Alias(id) if id < self.first_anchor_of_document => {
                // saphyr's words for an alias whose anchor it does not know.
                self.error = Some(ParseError::at(&span, "while parsing node, found unknown anchor".to_string()));
            }
            Event::Alias(id) => {
                let value = self.anchors.get(&id).cloned().unwrap_or(Value::Null);
                if !self.aliased.spend(&value) {
                    self.error = Some(ParseError::at(&span, format!("aliases copy more than {MAX_ALIASED_NODES} nodes")));
                    return;
                }
                self.insert(value, 0, position(&span), span);
            }
            Event::DocumentStart(_) => {
                // The previous document's anchors cannot be named any more: forgotten.
                self.first_anchor_of_document = self.anchors.keys().max().map_or(self.first_anchor_of_document, |id| id + 1);
                self.anchors.clear();
            }
            Event::StreamStart | Event::StreamEnd | Event::DocumentEnd | Event::Nothing => {}
        }
    }
}

/// The positions of nodes, for error messages: parsed on demand.
pub struct Positions<'t> {
    documents: Vec<MarkedYaml<'t>>,
}

impl<'t> Positions<'t> {
    pub fn parse(text: &'t str) -> Option<Self> {
        let documents = MarkedYaml::load_from_str(text).ok()?;
        // Keep the same numbering as `parse_documents`, which leaves empty documents out.
        let documents = documents.into_iter().filter(|d| !matches!(d.data, YamlData::Value(Scalar::Null))).collect();
        Some(Self { documents })
    }

    /// The position of the node at `path` in document `index`: the value, or the key when
    /// `at_key`. A path that does not exist (a missing field) points at its deepest parent.
    pub fn locate(&self, index: usize, path: &FieldPath, at_key: bool) -> Option<Position> {
        let mut node = self.documents.get(index)?;
        let segments = path.segments();
        for (i, segment) in segments.iter().enumerate() {
            let last = i + 1 == segments.len();
            let next = match (segment, &node.data) {
                (Segment::Key(wanted), YamlData::Mapping(entries)) => entries.iter().find(|(k, _)| marked_key(k) == *wanted).map(|(k, v)| if last && at_key { k } else { v }),
                (Segment::Index(index), YamlData::Sequence(items)) => items.get(*index),
                _ => None,
            };
            match next {
                Some(child) => node = child,
                None => break,
            }
        }
        Some((node.span.start.line(), node.span.start.col() + 1))
    }
}

fn marked_key(node: &MarkedYaml<'_>) -> String {
    match &node.data {
        YamlData::Value(Scalar::String(s)) => s.to_string(),
        YamlData::Value(Scalar::Integer(i)) => i.to_string(),
        YamlData::Value(Scalar::Boolean(b)) => b.to_string(),
        _ => String::new(),
    }
}

pub fn location_in(file: Option<&std::path::Path>, (line, column): Position) -> Location {
    Location { file: file.map(|f| f.to_path_buf()), line, column }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_and_locates() {
        let text = "kind: NetworkPolicy\nspec:\n  ingress:\n  - from:\n    - ipBlock:\n        cidr: 10.0.0/8\n";
        let docs = parse_documents(text).unwrap_or_else(|_| panic!("parses"));
        assert_eq!(docs[0].value["spec"]["ingress"][0]["from"][0]["ipBlock"]["cidr"], "10.0.0/8");
        assert_eq!(docs[0].start, (1, 1));
        let positions = Positions::parse(text).unwrap();
        let path = FieldPath::root().key("spec").key("ingress").index(0).key("from").index(0).key("ipBlock").key("cidr");
        assert_eq!(positions.locate(0, &path, false), Some((6, 15)));
        assert_eq!(positions.locate(0, &path, true), Some((6, 9)));
        // A missing field points at the deepest node that exists.
        let missing = FieldPath::root().key("spec").key("ingress").index(0).key("ports");
        assert_eq!(positions.locate(0, &missing, false), Some((4, 5)));
    }

    #[test]
    fn scalars_follow_the_core_schema() {
        let docs = parse_documents("a: [on, yes, '80', 80, 1.5, ~, true, \"x\", null, 0x1f]\n").unwrap_or_else(|_| panic!());
        assert_eq!(docs[0].value["a"], serde_json::json!(["on", "yes", "80", 80, 1.5, null, true, "x", null, 31]));
    }

    /// The shortcut for words in `scalar` gives what saphyr gives.
    #[test]
    fn words_resolve_as_saphyr_resolves_them() {
        let words = [
            "a", "app-0", "inf", "infinity", "nan", "e5", "E5", "x1", "i1", "o17", "yes", "no", "on", "off", "y", "Y", "null", "Null", "NULL", "nULL", "true", "True", "tRUE", "false", "FALSE", "n",
            "t", "f", "~", "1", "-1", "+1", "0x1f", ".inf", ".5", "1e3", "", " a", "#a", "z9",
        ];
        for word in words {
            for style in [saphyr::ScalarStyle::Plain, saphyr::ScalarStyle::SingleQuoted, saphyr::ScalarStyle::DoubleQuoted] {
                assert_eq!(scalar(Cow::Borrowed(word), style, None), resolve(Cow::Borrowed(word), style, None), "{word:?} {style:?}");
            }
        }
        proptest::proptest!(|(word in "[ -~]{0,12}")| {
            let plain = saphyr::ScalarStyle::Plain;
            proptest::prop_assert_eq!(scalar(Cow::Borrowed(&word), plain, None), resolve(Cow::Borrowed(&word), plain, None));
        });
    }

    /// Nesting is bounded (a crafted file must not overflow the stack), and aliases do not
    /// reach into earlier documents, as with saphyr's `Parser::load`.
    #[test]
    fn deep_nesting_and_aliases_across_documents_are_errors() {
        let block: String = (0..5000).map(|depth| format!("{}k:\n", " ".repeat(2 * depth))).collect::<String>() + "x\n";
        let Err(error) = parse_yaml_documents(&block) else { panic!("must fail") };
        assert_eq!((error.line, error.column), (257, 513), "{}", error.message);
        assert!(error.message.contains("nested more than 256 deep"), "{}", error.message);
        let last = MAX_NESTING - 1;
        let fine: String = (0..MAX_NESTING).map(|depth| format!("{}k:{}\n", " ".repeat(2 * depth), if depth == last { " x" } else { "" })).collect();
        assert!(parse_yaml_documents(&fine).is_ok());
        let flow = format!("a: {}{}\n", "[".repeat(5000), "]".repeat(5000));
        assert!(parse_yaml_documents(&flow).is_err());
        let Err(error) = parse_yaml_documents("a: &x 1\n---\nb: *x\n") else { panic!("must fail") };
        assert_eq!((error.line, error.column, error.message.as_str()), (3, 4, "while parsing node, found unknown anchor"));
        let docs = parse_yaml_documents("a: &x 1\n---\nb: &x 2\nc: *x\n").unwrap_or_else(|_| panic!("parses"));
        assert_eq!(docs[1].value["c"], 2);
    }

    /// A "billion laughs" file is an error, not an exhausted memory.
    #[test]
    fn aliases_copy_a_bounded_number_of_nodes() {
        let mut text = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n".to_string();
        for level in 1..10 {
            let aliases = vec![format!("*a{}", level - 1); 10].join(", ");
            text.push_str(&format!("a{level}: &a{level} [{aliases}]\n"));
        }
        let Err(error) = parse_yaml_documents(&text) else { panic!("must fail") };
        assert!(error.message.contains("aliases copy more than 1000000 nodes"), "{}", error.message);
        // The same through the loader's entry point (the block-YAML reader first).
        let Err(error) = parse_documents(&text) else { panic!("must fail") };
        assert!(error.message.contains("aliases copy more than"), "{}", error.message);
    }

    #[test]
    fn anchors_and_aliases_are_resolved() {
        let docs = parse_documents("a: &x {b: 1}\nc: *x\n").unwrap_or_else(|_| panic!());
        assert_eq!(docs[0].value["c"]["b"], 1);
    }

    #[test]
    fn list_items_and_documents_have_positions() {
        let text = "# comment\n---\nkind: List\nitems:\n- {kind: A}\n-   kind: B\n---\n---\n{\"kind\": \"C\"}\n";
        let docs = parse_documents(text).unwrap_or_else(|_| panic!());
        assert_eq!(docs.len(), 2, "empty documents are left out");
        assert_eq!(docs[0].start, (3, 1));
        assert_eq!(docs[0].item_starts, vec![(5, 3), (6, 5)]);
        assert_eq!(docs[1].start, (9, 1));
        assert!(docs[1].item_starts.is_empty());
        let positions = Positions::parse(text).unwrap();
        assert_eq!(positions.locate(1, &FieldPath::root().key("kind"), false), Some((9, 10)));
    }

    #[test]
    fn duplicate_keys_and_syntax_errors_have_positions() {
        let Err(error) = parse_documents("a: 1\nb: 2\na: 3\n") else { panic!("must fail") };
        assert_eq!((error.line, error.column, error.message.as_str()), (3, 1, "duplicated key in mapping"));
        let Err(error) = parse_documents("a: [1, 2\nb: 3\n") else { panic!("must fail") };
        assert_eq!((error.line, error.column), (2, 2));
    }
}
