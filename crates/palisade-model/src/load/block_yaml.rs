//! A fast reader for the YAML that tools write (`kubectl get -o yaml`, PyYAML, yq, Helm
//! output): block mappings and sequences, one-line flow collections, plain and quoted
//! scalars (wrapped over several lines or not), literal block scalars, anchors and aliases,
//! comments and several documents.
//!
//! Why it exists: saphyr reads about 18 MB/s here, and on the 500-pod comparison with
//! NCA its scanner was over half of a `palisade matrix` run (BENCHMARKS.md). This reader
//! declines (`None`) everything outside that subset, and every error, so saphyr still reads
//! those files and words every message; on what it accepts it gives exactly saphyr's
//! documents, values and positions alike (the differential tests and generators in
//! `block_yaml/tests.rs` hold it to that). Scalars are resolved by the same function as
//! saphyr's events (`yaml::scalar`).

use std::borrow::Cow;
use std::collections::HashMap;

use saphyr::ScalarStyle;
use serde_json::{Map, Value};

use super::yaml::{AliasBudget, Document, Position, key_of, scalar};

/// The text is outside the subset, or wrong: saphyr reads it instead.
struct Decline;

type Read<T> = Result<T, Decline>;

/// How deeply nodes may nest before the reader gives up (saphyr, which does not recurse,
/// then reads the text). Kubernetes objects nest about 15 deep; this bounds the reader's
/// recursion, and so its stack, whatever the input.
const MAX_DEPTH: usize = 100;

/// Every non-empty document of the stream, or `None` when the text is not in the subset.
pub fn parse_documents(text: &str) -> Option<Vec<Document>> {
    // No tabs, carriage returns or control characters, whose rules are subtle and which
    // tools do not write. (A fold over chunks, without an early exit, is vectorized.)
    let printable = |chunk: &[u8]| chunk.iter().fold(true, |ok, &b| ok & ((b' '..=b'~').contains(&b) | (b == b'\n')));
    let ascii = text.as_bytes().chunks(256).all(printable);
    if !ascii && !text.chars().all(|c| c == '\n' || (c >= ' ' && c != '\u{7f}' && !special_unicode(c))) {
        return None;
    }
    let mut reader = Reader { text: text.as_bytes(), source: text, ascii, pos: 0, line: 1, line_start: 0, anchors: HashMap::new(), item_starts: Vec::new(), depth: 0, aliased: AliasBudget::default() };
    reader.stream().ok()
}

/// Characters YAML or saphyr treat apart: C1 controls (NEL among them), the line and
/// paragraph separators, the byte order mark and non-characters.
fn special_unicode(c: char) -> bool {
    matches!(c, '\u{80}'..='\u{9f}' | '\u{2028}' | '\u{2029}' | '\u{feff}' | '\u{fffe}' | '\u{ffff}')
}

/// What begins at the reader's position, which is the first character of a line's content.
#[derive(Clone, Copy, PartialEq)]
enum Next {
    End,
    /// `---` or `...` in column 1.
    Marker,
    /// Content indented by this many spaces.
    Content(usize),
}

/// Where a block node sits: what owns it decides how far following lines may be indented.
#[derive(Clone, Copy)]
enum Slot {
    Root,
    /// The value of a key in this column.
    Key(usize),
    /// An entry after a dash in this column.
    Dash(usize),
}

/// What a node is to the document, for the positions of a `List`'s objects.
#[derive(Clone, Copy, PartialEq)]
enum Role {
    Other,
    /// The document's root: if a mapping, its `items` are the objects of a `List`.
    Root,
    /// The `items` of the root mapping: if a sequence, where its elements start is recorded.
    Items,
}

impl Slot {
    /// The column lines of this node must be indented beyond (the root: none).
    fn column(self) -> Option<usize> {
        match self {
            Slot::Root => None,
            Slot::Key(column) | Slot::Dash(column) => Some(column),
        }
    }
}

struct Reader<'t> {
    text: &'t [u8],
    source: &'t str,
    /// Whether the text is ASCII, so that a byte offset in a line is its column.
    ascii: bool,
    pos: usize,
    /// 1-based line of `pos`, and where that line starts.
    line: usize,
    line_start: usize,
    /// Anchors of the current document.
    anchors: HashMap<&'t str, Value>,
    /// Where the elements of the current document's `items` start.
    item_starts: Vec<Position>,
    /// How many nodes enclose the one being read.
    depth: usize,
    /// Nodes copied by aliases so far: over the limit, saphyr's reading says so.
    aliased: AliasBudget,
}

impl<'t> Reader<'t> {
    fn peek(&self) -> u8 {
        self.at(self.pos)
    }

    /// The byte at `index`, `\n` past the end (the end of the text ends its last line).
    fn at(&self, index: usize) -> u8 {
        self.text.get(index).copied().unwrap_or(b'\n')
    }

    fn column(&self) -> usize {
        self.pos - self.line_start
    }

    /// saphyr's position: line and column, counted in characters.
    fn position(&self) -> Position {
        let column = if self.ascii { self.column() } else { self.source[self.line_start..self.pos].chars().count() };
        (self.line, column + 1)
    }

    fn skip_spaces(&mut self) {
        while self.peek() == b' ' {
            self.pos += 1;
        }
    }

    /// Whether only spaces and a comment remain on the line.
    fn rest_is_empty(&mut self) -> bool {
        let before = self.pos;
        self.skip_spaces();
        match self.peek() {
            b'\n' => true,
            // A comment needs a space before it (or the start of the line).
            b'#' => self.pos > before || self.pos == self.line_start,
            _ => false,
        }
    }

    /// Ends the line (only spaces and a comment may remain) and moves to the next line with
    /// content.
    fn end_line(&mut self) -> Read<()> {
        if !self.rest_is_empty() {
            return Err(Decline);
        }
        self.pos = memchr_newline(self.text, self.pos);
        self.skip_to_content();
        Ok(())
    }

    /// From the end of a line (or the start of the text), moves past empty and comment lines
    /// to the first character of the next content.
    fn skip_to_content(&mut self) {
        loop {
            if self.pos < self.text.len() && self.text[self.pos] == b'\n' {
                self.pos += 1;
                self.line += 1;
                self.line_start = self.pos;
            }
            self.skip_spaces();
            match self.peek() {
                b'#' => self.pos = memchr_newline(self.text, self.pos),
                b'\n' if self.pos < self.text.len() => {}
                _ => return,
            }
        }
    }

    fn lookahead(&self) -> Next {
        if self.pos >= self.text.len() {
            return Next::End;
        }
        let column = self.column();
        let marker = &self.text[self.pos..];
        if column == 0 && (marker.starts_with(b"---") || marker.starts_with(b"...")) && matches!(self.at(self.pos + 3), b' ' | b'\n') {
            return Next::Marker;
        }
        Next::Content(column)
    }

    /// A dash that starts a block sequence entry.
    fn is_dash(&self) -> bool {
        self.peek() == b'-' && matches!(self.at(self.pos + 1), b' ' | b'\n')
    }

    fn stream(&mut self) -> Read<Vec<Document>> {
        let mut documents = Vec::new();
        self.skip_to_content();
        loop {
            match self.lookahead() {
                Next::End => return Ok(documents),
                Next::Marker => {
                    // `---` opens a document, `...` closes one; nothing may follow on the line.
                    self.pos += 3;
                    self.end_line()?;
                    continue;
                }
                Next::Content(_) if self.peek() == b'%' => return Err(Decline), // a directive
                Next::Content(_) => {}
            }
            self.anchors.clear();
            let (value, start) = self.value(Slot::Root, Role::Root)?;
            if !matches!(self.lookahead(), Next::End | Next::Marker) {
                return Err(Decline);
            }
            let item_starts = std::mem::take(&mut self.item_starts);
            if !value.is_null() {
                documents.push(Document { value, start, item_starts, raw_items: Vec::new() });
            }
        }
    }

    /// The value after `key:` or a dash (or a document's root): on the rest of the line, or
    /// on the lines after it.
    fn value(&mut self, slot: Slot, role: Role) -> Read<(Value, Position)> {
        self.enter()?;
        self.skip_spaces();
        // saphyr puts the start of an anchored node at its anchor.
        let anchor_start = self.position();
        let anchor = self.anchor()?;
        self.refuse_anchored_alias(anchor)?;
        let (value, start) = if self.peek() == b'|' {
            self.literal(slot)?
        } else if self.rest_is_empty() {
            self.end_line()?;
            self.refuse_anchored_alias(anchor)?;
            match self.lookahead() {
                Next::Content(column) if slot.column().is_none_or(|owner| column > owner) => self.node(slot, true, role)?,
                // `key:` with a sequence at the key's own column (how kubectl indents).
                Next::Content(column) if matches!(slot, Slot::Key(owner) if owner == column) && self.is_dash() => {
                    let start = self.position();
                    (self.block_sequence(column, role)?, start)
                }
                // An empty value: saphyr gives it a position of its own; rare, so declined.
                _ => return Err(Decline),
            }
        } else {
            // A block collection may start on the dash's line (`- a: 1`), not on a key's.
            let compact = anchor.is_none() && !matches!(slot, Slot::Key(_));
            self.node(slot, compact, role)?
        };
        self.depth -= 1;
        match anchor {
            Some(name) => {
                self.anchors.insert(name, value.clone());
                Ok((value, anchor_start))
            }
            None => Ok((value, start)),
        }
    }

    /// One level deeper (`value` and `flow_node`, the two places where reading recurses,
    /// step back out when they return a node; a decline ends the reading anyway).
    fn enter(&mut self) -> Read<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH { Err(Decline) } else { Ok(()) }
    }

    /// The node that starts at the reader's position; `compact`: whether a block mapping or
    /// sequence may start here.
    fn node(&mut self, slot: Slot, compact: bool, role: Role) -> Read<(Value, Position)> {
        let start = self.position();
        let column = self.column();
        if self.is_dash() {
            return if compact { Ok((self.block_sequence(column, role)?, start)) } else { Err(Decline) };
        }
        if self.is_key_line() {
            return if compact { Ok((self.block_mapping(role)?, start)) } else { Err(Decline) };
        }
        let value = if matches!(self.peek(), b'[' | b'{' | b'*' | b'"' | b'\'') {
            let value = self.inline(slot.column(), role)?;
            self.end_line()?;
            value
        } else {
            let first = self.plain(false)?;
            scalar(self.plain_lines(first, slot.column())?, ScalarStyle::Plain, None)
        };
        // A line indented beyond the owner after a value is an error (or a case the reader
        // leaves to saphyr).
        if let Next::Content(next) = self.lookahead()
            && slot.column().is_none_or(|owner| next > owner)
        {
            return Err(Decline);
        }
        Ok((value, start))
    }

    /// Entries of a block sequence whose dashes are in `column`.
    fn block_sequence(&mut self, column: usize, role: Role) -> Read<Value> {
        let mut entries = Vec::new();
        loop {
            self.pos += 1; // the dash
            let (entry, start) = self.value(Slot::Dash(column), Role::Other)?;
            if role == Role::Items {
                self.item_starts.push(start);
            }
            entries.push(entry);
            match self.lookahead() {
                Next::Content(next) if next == column && self.is_dash() => {}
                Next::Content(next) if next > column => return Err(Decline),
                _ => return Ok(Value::Array(entries)),
            }
        }
    }

    /// Entries of a block mapping whose keys are in the reader's column.
    fn block_mapping(&mut self, role: Role) -> Read<Value> {
        let column = self.column();
        let mut map = Map::new();
        loop {
            let key = self.block_key()?;
            let role = if role == Role::Root && key == "items" { Role::Items } else { Role::Other };
            let (value, _) = self.value(Slot::Key(column), role)?;
            if map.insert(key, value).is_some() {
                return Err(Decline); // a duplicated key: saphyr words the error
            }
            match self.lookahead() {
                Next::Content(next) if next == column && self.is_key_line() => {}
                Next::Content(next) if next >= column => return Err(Decline),
                _ => return Ok(Value::Object(map)),
            }
        }
    }

    /// Whether the line from here is `key: ...` (or `key:` at its end).
    fn is_key_line(&self) -> bool {
        let line = &self.text[self.pos..memchr_newline(self.text, self.pos)];
        let colon_at = |i: usize| line.get(i) == Some(&b':') && matches!(line.get(i + 1), None | Some(b' '));
        match line.first() {
            Some(&quote @ (b'"' | b'\'')) => {
                let mut i = 1;
                while i < line.len() {
                    match line[i] {
                        b'\\' if quote == b'"' => i += 2,
                        b'\'' if quote == b'\'' && line.get(i + 1) == Some(&b'\'') => i += 2,
                        c if c == quote => return colon_at(i + 1),
                        _ => i += 1,
                    }
                }
                false
            }
            Some(b'{' | b'[' | b'*' | b'&' | b'!' | b'|' | b'>' | b'#' | b'%' | b'@' | b'`' | b',' | b']' | b'}') | None => false,
            // A dash, or a complex key's indicators.
            Some(b'-' | b'?' | b':') if matches!(line.get(1), None | Some(b' ')) => false,
            Some(_) => {
                for i in 0..line.len() {
                    if colon_at(i) {
                        return true;
                    }
                    if line[i] == b'#' && i > 0 && line[i - 1] == b' ' {
                        return false;
                    }
                }
                false
            }
        }
    }

    /// A block mapping's key and its colon.
    fn block_key(&mut self) -> Read<String> {
        let key_start = self.pos;
        let (text, style) = match self.peek() {
            b'"' => (self.double_quoted(None)?, ScalarStyle::DoubleQuoted),
            b'\'' => (self.single_quoted(None)?, ScalarStyle::SingleQuoted),
            b'?' | b':' if matches!(self.at(self.pos + 1), b' ' | b'\n') => return Err(Decline), // complex keys
            _ => {
                let start = self.pos;
                while !(self.peek() == b':' && matches!(self.at(self.pos + 1), b' ' | b'\n')) {
                    if self.peek() == b'\n' {
                        return Err(Decline);
                    }
                    self.pos += 1;
                }
                (Cow::Borrowed(self.source[start..self.pos].trim_end_matches(' ')), ScalarStyle::Plain)
            }
        };
        // saphyr refuses implicit keys longer than 1024 characters (bytes, to be safe).
        if self.peek() != b':' || !matches!(self.at(self.pos + 1), b' ' | b'\n') || self.pos - key_start > 1000 {
            return Err(Decline);
        }
        self.pos += 1;
        Ok(key_of(scalar(text, style, None)))
    }

    /// `&name ` before a node, if there is one.
    fn anchor(&mut self) -> Read<Option<&'t str>> {
        if self.peek() != b'&' {
            return Ok(None);
        }
        self.pos += 1;
        let name = self.name()?;
        if !matches!(self.peek(), b' ' | b'\n') {
            return Err(Decline);
        }
        self.skip_spaces();
        Ok(Some(name))
    }

    /// saphyr refuses an anchor on an alias (`&a *b`).
    fn refuse_anchored_alias(&self, anchor: Option<&str>) -> Read<()> {
        if anchor.is_some() && self.peek() == b'*' { Err(Decline) } else { Ok(()) }
    }

    /// An anchor's or alias's name.
    fn name(&mut self) -> Read<&'t str> {
        let start = self.pos;
        while !matches!(self.peek(), b' ' | b'\n' | b',' | b'[' | b']' | b'{' | b'}') {
            self.pos += 1;
        }
        if self.pos == start {
            return Err(Decline);
        }
        Ok(&self.source[start..self.pos])
    }

    fn alias(&mut self) -> Read<Value> {
        self.pos += 1; // `*`
        let name = self.name()?;
        let value = self.anchors.get(name).ok_or(Decline)?;
        if !self.aliased.spend(value) {
            return Err(Decline);
        }
        Ok(value.clone())
    }

    /// A node in block context that is not a plain scalar: a one-line flow collection, a
    /// quoted scalar (over several lines if they are indented beyond `owner`) or an alias.
    fn inline(&mut self, owner: Option<usize>, role: Role) -> Read<Value> {
        match self.peek() {
            b'[' | b'{' => self.flow_node(role),
            b'*' => self.alias(),
            b'"' => Ok(scalar(self.double_quoted(owner)?, ScalarStyle::DoubleQuoted, None)),
            _ => Ok(scalar(self.single_quoted(owner)?, ScalarStyle::SingleQuoted, None)),
        }
    }
}

/// The index of the newline that ends the line `from` is on (or the end of the text).
fn memchr_newline(text: &[u8], from: usize) -> usize {
    text[from.min(text.len())..].iter().position(|&b| b == b'\n').map_or(text.len(), |i| from + i)
}

mod flow;
mod scalars;
#[cfg(test)]
mod tests;
