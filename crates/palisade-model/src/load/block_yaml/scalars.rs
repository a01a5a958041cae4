//! Scalars: plain, single- and double-quoted (in block context also wrapped over several
//! lines), and literal block scalars.

use std::borrow::Cow;

use serde_json::Value;

use super::{Decline, Read, Reader, Slot, memchr_newline};
use crate::load::yaml::Position;

impl<'t> Reader<'t> {
    /// A literal block scalar (`|` or `|-`, as kubectl writes scripts and configuration
    /// files): the following lines indented beyond the owner, without that indentation.
    /// `|+`, indentation indicators and leading empty lines are left to saphyr.
    /// saphyr's position of a block scalar is where its content starts.
    pub(super) fn literal(&mut self, slot: Slot) -> Read<(Value, Position)> {
        let owner = slot.column().ok_or(Decline)?;
        self.pos += 1;
        let strip = self.peek() == b'-';
        self.pos += usize::from(strip);
        if !self.rest_is_empty() {
            return Err(Decline);
        }
        self.pos = memchr_newline(self.text, self.pos);
        let mut text = String::new();
        let mut indent = None;
        let mut empty_lines = 0;
        let mut start_position = (0, 0);
        // `pos` is at the end of the last line read (the header, then the scalar's lines).
        while let Some((start, end)) = self.next_line() {
            let line = &self.source[start..end];
            let spaces = line.len() - line.trim_start_matches(' ').len();
            let content_indent = *indent.get_or_insert(spaces);
            let empty = spaces == line.len();
            if !empty && (spaces < content_indent || spaces <= owner) {
                break; // the scalar has ended
            }
            if end == self.text.len() {
                return Err(Decline); // a last line without a line break
            }
            if empty {
                // Part of the scalar if more content follows.
                if text.is_empty() || spaces > content_indent {
                    return Err(Decline); // leading empty lines, or spaces that are content
                }
                empty_lines += 1;
            } else {
                if text.is_empty() {
                    start_position = (self.line + 1, content_indent + 1);
                }
                text.extend(std::iter::repeat_n('\n', empty_lines));
                empty_lines = 0;
                text.push_str(&line[content_indent..]);
                text.push('\n');
            }
            self.read_line(start, end);
        }
        if text.is_empty() {
            return Err(Decline); // an empty scalar
        }
        if strip {
            text.pop();
        }
        self.skip_to_content();
        Ok((Value::String(text), start_position))
    }

    /// The rest of a plain scalar in block context whose first line is `first`: the lines
    /// after it indented beyond `owner` (tools wrap long strings so), folded: a line break
    /// is a space, each empty line a line break.
    pub(super) fn plain_lines(&mut self, first: &'t str, owner: Option<usize>) -> Read<Cow<'t, str>> {
        if !self.rest_is_empty() {
            return Err(Decline);
        }
        // saphyr refuses a plain scalar that goes on after a comment.
        let mut commented = self.peek() == b'#';
        self.pos = memchr_newline(self.text, self.pos);
        let mut folded: Option<String> = None;
        let mut empty_lines = 0;
        while let Some((start, end)) = self.next_line() {
            let mut line = self.source[start..end].trim_matches(' ');
            let spaces = self.source[start..end].len() - self.source[start..end].trim_start_matches(' ').len();
            if !line.is_empty() {
                if owner.is_none_or(|owner| spaces <= owner) {
                    break; // not a continuation: the scalar has ended
                }
                let indicator = line.starts_with(|c| "-?:,[]{}#&*!|>'\"%@`".contains(c));
                if commented || indicator {
                    return Err(Decline);
                }
                if let Some(comment) = line.find(" #") {
                    line = line[..comment].trim_end_matches(' ');
                    commented = true;
                }
                if line.contains(": ") || line.ends_with(':') {
                    return Err(Decline);
                }
                let text = folded.get_or_insert_with(|| first.to_string());
                fold(text, empty_lines);
                text.push_str(line);
                empty_lines = 0;
            } else {
                empty_lines += 1;
            }
            self.read_line(start, end);
        }
        self.skip_to_content();
        Ok(folded.map_or(Cow::Borrowed(first), Cow::Owned))
    }

    /// At the line break inside a quoted scalar: the break and the empty lines after it,
    /// folded into `text` (a space, or a line break per empty line), up to the content of
    /// the next line, which must be indented beyond `owner`.
    fn quoted_break(&mut self, owner: Option<usize>, text: &mut String) -> Read<()> {
        let owner = owner.ok_or(Decline)?;
        text.truncate(text.trim_end_matches(' ').len());
        let mut empty_lines = 0;
        loop {
            if self.pos >= self.text.len() {
                return Err(Decline); // unterminated
            }
            self.pos += 1;
            self.line += 1;
            self.line_start = self.pos;
            self.skip_spaces();
            if self.peek() != b'\n' {
                break;
            }
            empty_lines += 1;
        }
        if self.column() <= owner || self.pos >= self.text.len() {
            return Err(Decline);
        }
        fold(text, empty_lines);
        Ok(())
    }

    /// The line after the one whose end the reader is at: where it starts and ends (without
    /// its line break); `None` at the end of the text.
    fn next_line(&self) -> Option<(usize, usize)> {
        let start = self.pos + 1;
        (start < self.text.len()).then(|| (start, memchr_newline(self.text, start)))
    }

    /// Moves to the end of that line, which now belongs to the scalar.
    fn read_line(&mut self, start: usize, end: usize) {
        self.pos = end;
        self.line += 1;
        self.line_start = start;
    }

    /// A plain scalar on one line; `flow`: inside a flow collection, where `,[]{}` end it.
    pub(super) fn plain(&mut self, flow: bool) -> Read<&'t str> {
        let first = self.peek();
        let next = self.at(self.pos + 1);
        let ends = |c: u8| c == b' ' || c == b'\n' || (flow && matches!(c, b',' | b'[' | b']' | b'{' | b'}'));
        let indicator = matches!(first, b',' | b'[' | b']' | b'{' | b'}' | b'#' | b'&' | b'*' | b'!' | b'|' | b'>' | b'\'' | b'"' | b'%' | b'@' | b'`' | b'\n' | b' ');
        if indicator || (matches!(first, b'-' | b'?' | b':') && ends(next)) {
            return Err(Decline);
        }
        let start = self.pos;
        loop {
            match self.peek() {
                b'\n' => break,
                b':' if ends(self.at(self.pos + 1)) => {
                    if flow {
                        break;
                    }
                    return Err(Decline); // `key: a: b`
                }
                b'#' if self.text[self.pos - 1] == b' ' => {
                    if flow {
                        return Err(Decline); // a comment inside a flow collection
                    }
                    break;
                }
                b',' | b'[' | b']' | b'{' | b'}' if flow => break,
                // saphyr refuses a word of a flow scalar that is `-` and a flow indicator.
                b'-' if flow && self.text[self.pos - 1] == b' ' && ends(self.at(self.pos + 1)) => return Err(Decline),
                _ => self.pos += 1,
            }
        }
        let text = self.source[start..self.pos].trim_end_matches(' ');
        self.pos = start + text.len();
        Ok(text)
    }

    /// A single-quoted scalar (`''` is a quote); over several lines only in block context
    /// (`owner`).
    pub(super) fn single_quoted(&mut self, owner: Option<usize>) -> Read<Cow<'t, str>> {
        self.quoted(b'\'', b'\'', owner, |reader, text| {
            text.push('\'');
            reader.pos += 2;
            Ok(())
        })
    }

    /// A double-quoted scalar; over several lines only in block context (`owner`).
    pub(super) fn double_quoted(&mut self, owner: Option<usize>) -> Read<Cow<'t, str>> {
        self.quoted(b'"', b'\\', owner, |reader, text| {
            // The common escapes; the others (\x, \u, escaped line breaks...) are left to saphyr.
            text.push(match reader.at(reader.pos + 1) {
                b'\\' => '\\',
                b'"' => '"',
                b'/' => '/',
                b'n' => '\n',
                b't' => '\t',
                _ => return Err(Decline),
            });
            reader.pos += 2;
            Ok(())
        })
    }

    /// A scalar between `quote`s, in which `unescape` reads each escape (starting with
    /// `escape`, followed by a quote if `escape` is the quote itself).
    fn quoted(&mut self, quote: u8, escape: u8, owner: Option<usize>, unescape: fn(&mut Self, &mut String) -> Read<()>) -> Read<Cow<'t, str>> {
        self.pos += 1;
        let special = |b| b == quote || b == escape || b == b'\n';
        let is_escape = |reader: &Self| reader.peek() == escape && (escape != quote || reader.at(reader.pos + 1) == quote);
        let first = self.run_until(special);
        if self.peek() == quote && !is_escape(self) {
            self.pos += 1;
            return Ok(Cow::Borrowed(first)); // the common case: nothing to unescape
        }
        let mut text = first.to_string();
        loop {
            match self.peek() {
                b'\n' => self.quoted_break(owner, &mut text)?,
                _ if is_escape(self) => unescape(self, &mut text)?,
                b if b == quote => {
                    self.pos += 1;
                    return Ok(Cow::Owned(text));
                }
                _ => text.push_str(self.run_until(special)),
            }
        }
    }

    /// The text from the reader's position up to the first byte that `stop` accepts (or the
    /// end), which the reader moves to. Stopping only at ASCII bytes keeps characters whole.
    fn run_until(&mut self, stop: impl Fn(u8) -> bool) -> &'t str {
        let start = self.pos;
        while self.pos < self.text.len() && !stop(self.text[self.pos]) {
            self.pos += 1;
        }
        &self.source[start..self.pos]
    }
}

/// A line break inside a folded scalar: a space, or one line break per empty line between
/// the two lines of text.
fn fold(text: &mut String, empty_lines: usize) {
    match empty_lines {
        0 => text.push(' '),
        n => text.extend(std::iter::repeat_n('\n', n)),
    }
}
