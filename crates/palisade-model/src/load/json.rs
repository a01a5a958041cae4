//! JSON streams, the way `kubectl get -o json` writes them, parsed by serde_json: several
//! times faster than the YAML parser (which reads JSON too, being YAML 1.2). The result is
//! the same [`Document`]s with the same positions; anything serde_json does not take (YAML,
//! JSON with a duplicated key) is left to the YAML parser, which also words the errors.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Number, Value};

use super::yaml::{Document, Position};

/// Whether the text is worth trying as JSON: its first significant character opens an
/// object or an array.
pub fn looks_like_json(text: &str) -> bool {
    matches!(text.trim_start_matches(['\u{feff}', ' ', '\t', '\r', '\n']).as_bytes().first(), Some(b'{' | b'['))
}

/// Every document of a JSON stream (one or more values one after the other, as kubectl
/// reads them), or `None` when the text is not plain JSON.
pub fn parse_documents(text: &str) -> Option<Vec<Document>> {
    let lines = LineStarts::new(text);
    let mut documents = Vec::new();
    let mut end = 0;
    loop {
        let start = text.len() - text[end..].trim_start().len();
        // Objects go through `TopLevel`, which leaves `List` items raw; anything else
        // (rare at the top) is a plain value.
        let (value, items) = match text.as_bytes().get(start) {
            None => break,
            Some(b'{') => {
                let (TopLevel(value, items), length) = first::<TopLevel<'_>>(&text[start..])?;
                end = start + length;
                (value, items)
            }
            Some(_) => {
                let (StrictValue(value), length) = first::<StrictValue>(&text[start..])?;
                end = start + length;
                (value, Vec::new())
            }
        };
        if !value.is_null() {
            let raw_items: Vec<_> = items.iter().map(|item| offset_in(text, item)..offset_in(text, item) + item.len()).collect();
            let item_starts = raw_items.iter().map(|range| lines.position(range.start)).collect();
            documents.push(Document { value, start: lines.position(start), item_starts, raw_items });
        }
    }
    Some(documents)
}

/// Parses the `items` that [`parse_documents`] left raw into the document's value, for
/// readers that want whole values; `None` if an item has a duplicated key.
pub fn fill_items(document: &mut Document, text: &str) -> Option<()> {
    if document.raw_items.is_empty() {
        return Some(());
    }
    let items = document.raw_items.drain(..).map(|range| parse_value(&text[range])).collect::<Option<_>>()?;
    document.value["items"] = Value::Array(items);
    Some(())
}

/// The first value of a stream, and how many bytes it takes.
fn first<'a, T: Deserialize<'a>>(text: &'a str) -> Option<(T, usize)> {
    let mut stream = serde_json::Deserializer::from_str(text).into_iter::<T>();
    let value = stream.next()?.ok()?;
    Some((value, stream.byte_offset()))
}

/// One value (an item left raw by [`parse_documents`]), or `None` if it has a duplicated key.
pub fn parse_value(text: &str) -> Option<Value> {
    serde_json::from_str::<StrictValue>(text).ok().map(|StrictValue(value)| value)
}

/// Where a slice of `text` starts in it.
fn offset_in(text: &str, part: &str) -> usize {
    part.as_ptr() as usize - text.as_ptr() as usize
}

/// An object, and its top-level `items` array left raw (a `List`'s items).
struct TopLevel<'a>(Value, Vec<&'a str>);

impl<'de> Deserialize<'de> for TopLevel<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(TopLevelVisitor)
    }
}

struct TopLevelVisitor;

impl<'de> Visitor<'de> for TopLevelVisitor {
    type Value = TopLevel<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Self::Value, A::Error> {
        let mut map = Map::new();
        let mut starts = Vec::new();
        while let Some(key) = access.next_key::<String>()? {
            let value = if key == "items" {
                // The items are taken raw: their positions are known, and they are parsed
                // later, in parallel ([`parse_value`]).
                match access.next_value::<Items<'de>>()? {
                    Items::Raw(raw) => {
                        starts.extend(raw.iter().map(|item| item.get()));
                        Value::Array(Vec::new())
                    }
                    Items::Value(value) => value,
                }
            } else {
                access.next_value::<StrictValue>()?.0
            };
            if map.insert(key, value).is_some() {
                return Err(de::Error::custom("duplicated key in mapping"));
            }
        }
        Ok(TopLevel(Value::Object(map), starts))
    }
}

/// The value of a top-level `items` key: an array taken raw, or anything else parsed.
enum Items<'a> {
    Raw(Vec<&'a RawValue>),
    Value(Value),
}

impl<'de> Deserialize<'de> for Items<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ItemsVisitor)
    }
}

struct ItemsVisitor;

impl<'de> Visitor<'de> for ItemsVisitor {
    type Value = Items<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<&'de RawValue>()? {
            items.push(item);
        }
        Ok(Items::Raw(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        StrictVisitor.visit_map(map).map(Items::Value)
    }

    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Items::Value(Value::Bool(v)))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Items::Value(Value::Number(v.into())))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Items::Value(Value::Number(v.into())))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Items::Value(float(v)))
    }

    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Items::Value(Value::String(v.to_string())))
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Items::Value(Value::Null))
    }
}

/// Byte offsets where lines start, to turn offsets into 1-based lines and columns.
struct LineStarts<'t> {
    text: &'t str,
    starts: Vec<usize>,
}

impl<'t> LineStarts<'t> {
    fn new(text: &'t str) -> Self {
        let starts = std::iter::once(0).chain(text.match_indices('\n').map(|(i, _)| i + 1)).collect();
        Self { text, starts }
    }

    fn position(&self, offset: usize) -> Position {
        let line = self.starts.partition_point(|&start| start <= offset);
        let line_start = self.starts[line - 1];
        (line, self.text[line_start..offset].chars().count() + 1)
    }
}

fn float(v: f64) -> Value {
    Number::from_f64(v).map_or(Value::Null, Value::Number)
}

/// A `serde_json::Value` that refuses duplicated keys, as the YAML parser (and the API
/// server's strict decoding) does.
struct StrictValue(Value);

impl<'de> Deserialize<'de> for StrictValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrictVisitor).map(StrictValue)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(float(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(StrictValue(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut map = Map::new();
        while let Some(key) = access.next_key::<String>()? {
            let StrictValue(value) = access.next_value()?;
            if map.insert(key, value).is_some() {
                return Err(de::Error::custom("duplicated key in mapping"));
            }
        }
        Ok(Value::Object(map))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::yaml;

    #[test]
    fn same_documents_and_positions_as_the_yaml_parser() {
        let text = "{\"kind\": \"PodList\", \"apiVersion\": \"v1\",\n  \"items\": [\n    {\"kind\": \"Pod\", \"n\": 1.5, \"u\": null, \"b\": true, \"s\": \"é\\u00e9\"},\n\t{\"kind\": \"Pod\", \"l\": [1, -2, 3e2]}\n  ]\n}\n";
        let mut json = parse_documents(text).unwrap_or_else(|| panic!("serde_json takes it"));
        let yaml = yaml::parse_yaml_documents(text).unwrap_or_else(|_| panic!("saphyr takes it"));
        assert_eq!(json.len(), 1);
        fill_items(&mut json[0], text).unwrap();
        assert_eq!(json[0].value, yaml[0].value);
        assert_eq!((json[0].start, &json[0].item_starts), (yaml[0].start, &yaml[0].item_starts));
        assert_eq!(json[0].item_starts, vec![(3, 5), (4, 2)]);
    }

    #[test]
    fn streams_of_json_objects_are_documents_as_kubectl_reads_them() {
        let json = parse_documents("{\"kind\": \"A\"}\n{\"kind\":\n \"B\"} null\n  [1]").unwrap_or_else(|| panic!());
        let starts: Vec<Position> = json.iter().map(|d| d.start).collect();
        assert_eq!(starts, vec![(1, 1), (2, 1), (4, 3)], "null documents are left out, as in YAML");
        assert_eq!(json[1].value["kind"], "B");
    }

    #[test]
    fn what_is_not_plain_json_is_left_to_the_yaml_parser() {
        assert!(looks_like_json("\n  {\"a\": 1}"));
        assert!(!looks_like_json("# comment\n{\"a\": 1}"));
        assert!(!looks_like_json("a: 1"));
        assert!(parse_documents("{a: 1}").is_none(), "a YAML flow mapping");
        assert!(parse_documents("{\"a\": 1, \"a\": 2}").is_none(), "a duplicated key");
        assert!(parse_documents("{\"a\": 1").is_none(), "unterminated");
        assert_eq!(parse_documents("").map(|d| d.len()), Some(0));
    }
}
