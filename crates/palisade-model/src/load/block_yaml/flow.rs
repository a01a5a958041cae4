//! Flow collections, on one line: `[a, b]`, `{a: b}`.

use std::borrow::Cow;

use saphyr::ScalarStyle;
use serde_json::{Map, Value};

use super::{Decline, Read, Reader, Role};
use crate::load::yaml::{key_of, scalar};

impl<'t> Reader<'t> {
    /// A node inside a flow collection (or one that opens one).
    pub(super) fn flow_node(&mut self, role: Role) -> Read<Value> {
        self.enter()?;
        let anchor = self.anchor()?;
        self.refuse_anchored_alias(anchor)?;
        let value = match self.peek() {
            b'[' => self.flow_sequence(role)?,
            b'{' => self.flow_mapping()?,
            b'*' => self.alias()?,
            b'"' => scalar(self.double_quoted(None)?, ScalarStyle::DoubleQuoted, None),
            b'\'' => scalar(self.single_quoted(None)?, ScalarStyle::SingleQuoted, None),
            _ => scalar(Cow::Borrowed(self.plain(true)?), ScalarStyle::Plain, None),
        };
        self.depth -= 1;
        if let Some(name) = anchor {
            self.anchors.insert(name, value.clone());
        }
        Ok(value)
    }

    fn flow_sequence(&mut self, role: Role) -> Read<Value> {
        let mut entries = Vec::new();
        self.flow_entries(b']', |reader| {
            if role == Role::Items {
                reader.item_starts.push(reader.position()); // the anchor's, if the node has one, as saphyr
            }
            entries.push(reader.flow_node(Role::Other)?);
            Ok(())
        })?;
        Ok(Value::Array(entries))
    }

    fn flow_mapping(&mut self) -> Read<Value> {
        let mut map = Map::new();
        self.flow_entries(b'}', |reader| {
            let key = match reader.peek() {
                b'"' => scalar(reader.double_quoted(None)?, ScalarStyle::DoubleQuoted, None),
                b'\'' => scalar(reader.single_quoted(None)?, ScalarStyle::SingleQuoted, None),
                _ => scalar(Cow::Borrowed(reader.plain(true)?), ScalarStyle::Plain, None),
            };
            if reader.peek() != b':' || reader.at(reader.pos + 1) != b' ' {
                return Err(Decline);
            }
            reader.pos += 1;
            reader.skip_spaces();
            if matches!(reader.peek(), b',' | b'}' | b'\n') {
                return Err(Decline); // an empty value
            }
            let value = reader.flow_node(Role::Other)?;
            match map.insert(key_of(key), value) {
                Some(_) => Err(Decline), // a duplicated key
                None => Ok(()),
            }
        })?;
        Ok(Value::Object(map))
    }

    /// The entries of a one-line flow collection, from its opening bracket to `close`;
    /// `entry` reads one. A trailing comma, or anything but `,` or `close` after an entry
    /// (`[a: b]`, a line break), is declined.
    fn flow_entries(&mut self, close: u8, mut entry: impl FnMut(&mut Self) -> Read<()>) -> Read<()> {
        self.pos += 1;
        self.skip_spaces();
        if self.peek() == close {
            self.pos += 1;
            return Ok(());
        }
        loop {
            entry(self)?;
            self.skip_spaces();
            match self.peek() {
                b',' => {
                    self.pos += 1;
                    self.skip_spaces();
                    if self.peek() == close {
                        return Err(Decline);
                    }
                }
                c if c == close => {
                    self.pos += 1;
                    return Ok(());
                }
                _ => return Err(Decline),
            }
        }
    }
}
