//! Reading, parsing and converting files on all cores.
//!
//! Every file is a task; once a file is parsed, its objects are converted in chunks that
//! are tasks of their own. One big `PodList` next to a few policy files would otherwise keep
//! one core converting pods while the other sits idle (measured: the 500-pod list was the
//! whole critical path of `palisade matrix`). Results are put back in input order, so the
//! outcome never depends on scheduling.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde_json::Value;

use super::{FileOutput, Pending, add_value, file_error, json, yaml};
use crate::diagnostic::Diagnostic;
use crate::field_path::FieldPath;

/// Objects converted per task: small enough to share a 500-item list between cores, large
/// enough that task overhead (a few microseconds) stays out of the profile.
const OBJECTS_PER_TASK: usize = 32;

/// One stream to read: a file (read by the task) or text held in memory.
pub(super) struct Input<'a> {
    pub file: Option<PathBuf>,
    pub text: Option<&'a str>,
    /// The namespace given with the source (`PATH@NAMESPACE`).
    pub namespace: Option<&'a str>,
}

/// Where a file's objects come from, shared by its conversion tasks.
pub(super) struct FileContext<'a> {
    pub origin_file: Option<Arc<Path>>,
    pub namespace: &'a str,
    pub explicit_namespace: bool,
}

/// One object to convert (a document, or one item of a `List` document).
pub(super) struct Unit {
    pub document: usize,
    pub content: Content,
    pub path: FieldPath,
    pub start: yaml::Position,
}

pub(super) enum Content {
    Parsed(Value),
    /// A JSON `List` item not parsed yet: a byte range of the file's text.
    Json(Range<usize>),
}

/// What the tasks of one file produced.
#[derive(Default)]
struct Slot {
    /// The text, kept to locate errors.
    text: Option<Arc<str>>,
    failed: Option<Diagnostic>,
    /// A JSON item the strict JSON reading refused (a duplicated key): the file is read
    /// again as YAML, which words the error as for any other file.
    read_as_yaml: bool,
    chunks: Vec<(usize, FileOutput, Vec<Pending>)>,
}

/// Reads every input; one output per input, in input order.
pub(super) fn read_all(inputs: Vec<Input<'_>>, default_namespace: &str) -> Vec<FileOutput> {
    let slots: Vec<Mutex<Slot>> = inputs.iter().map(|_| Mutex::default()).collect();
    let contexts: Vec<FileContext<'_>> = inputs
        .iter()
        .map(|input| FileContext { origin_file: input.file.as_deref().map(Arc::from), namespace: input.namespace.unwrap_or(default_namespace), explicit_namespace: input.namespace.is_some() })
        .collect();
    rayon::scope(|scope| {
        for ((input, slot), context) in inputs.into_iter().zip(&slots).zip(&contexts) {
            scope.spawn(move |scope| {
                let text: Arc<str> = match (input.text, &input.file) {
                    (Some(text), _) => Arc::from(text),
                    (None, Some(file)) => match std::fs::read_to_string(file) {
                        Ok(text) => Arc::from(text),
                        Err(e) => return lock(slot).failed = Some(file_error(file, format!("cannot read: {e}"))),
                    },
                    (None, None) => Arc::from(""),
                };
                lock(slot).text = Some(Arc::clone(&text));
                let units = match yaml::parse_documents(&text).map(|documents| units(documents, &text)) {
                    Ok(Some(units)) => units,
                    Ok(None) => return lock(slot).read_as_yaml = true,
                    Err(e) => return lock(slot).failed = Some(parse_error(context, &e)),
                };
                let mut units = units.into_iter();
                for index in 0.. {
                    let chunk: Vec<Unit> = units.by_ref().take(OBJECTS_PER_TASK).collect();
                    if chunk.is_empty() {
                        break;
                    }
                    let text = Arc::clone(&text);
                    scope.spawn(move |_| match convert(context, chunk, &text) {
                        Some((output, pending)) => lock(slot).chunks.push((index, output, pending)),
                        None => lock(slot).read_as_yaml = true,
                    });
                }
            });
        }
    });
    slots.into_iter().zip(&contexts).map(|(slot, context)| finish_file(slot.into_inner().unwrap_or_else(|poisoned| poisoned.into_inner()), context)).collect()
}

fn lock(slot: &Mutex<Slot>) -> std::sync::MutexGuard<'_, Slot> {
    slot.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn parse_error(context: &FileContext<'_>, e: &yaml::ParseError) -> Diagnostic {
    Diagnostic { location: yaml::location_in(context.origin_file.as_deref(), (e.line, e.column)), object: None, field: None, message: format!("invalid YAML: {}", e.message) }
}

/// Converts a chunk of objects; `None` if a JSON item has to be read as YAML.
fn convert(context: &FileContext<'_>, chunk: Vec<Unit>, text: &str) -> Option<(FileOutput, Vec<Pending>)> {
    let (mut output, mut pending) = (FileOutput::default(), Vec::new());
    for unit in chunk {
        let value = match unit.content {
            Content::Parsed(value) => value,
            Content::Json(range) => json::parse_value(&text[range])?,
        };
        // Each tree is freed here, on this core, not by the merging thread.
        add_value(context, unit.document, &value, &unit.path, unit.start, &mut pending, &mut output);
    }
    Some((output, pending))
}

/// The objects of a stream: each document, or each item of a `List` document (whose items
/// start where the parser saw them). `None` if a JSON item has to be read as YAML.
fn units(documents: Vec<yaml::Document>, text: &str) -> Option<Vec<Unit>> {
    let mut units = Vec::new();
    for (document, mut parsed) in documents.into_iter().enumerate() {
        if !is_list(&parsed.value) {
            // Not a List after all: the object keeps its `items`.
            json::fill_items(&mut parsed, text)?;
        }
        let yaml::Document { mut value, start, item_starts, raw_items } = parsed;
        let unit = |(i, content)| Unit { document, content, path: FieldPath::root().key("items").index(i), start: item_starts.get(i).copied().unwrap_or(start) };
        match list_items(&mut value) {
            Some(_) if !raw_items.is_empty() => units.extend(raw_items.into_iter().map(Content::Json).enumerate().map(unit)),
            Some(items) => units.extend(items.into_iter().map(Content::Parsed).enumerate().map(unit)),
            None => units.push(Unit { document, content: Content::Parsed(value), path: FieldPath::root(), start }),
        }
    }
    Some(units)
}

/// Whether a document is a `List` whose objects are its `items`.
fn is_list(value: &Value) -> bool {
    let Value::Object(map) = value else { return false };
    let kind = map.get("kind").and_then(Value::as_str).unwrap_or_default();
    let api_version = map.get("apiVersion").and_then(Value::as_str).unwrap_or_default();
    kind.ends_with("List") && !api_version.is_empty() && matches!(map.get("items"), Some(Value::Array(_)))
}

/// The items of a `List` object (taken out of it), or `None` for any other document.
fn list_items(value: &mut Value) -> Option<Vec<Value>> {
    if !is_list(value) {
        return None;
    }
    match value.as_object_mut()?.remove("items") {
        Some(Value::Array(items)) => Some(items),
        _ => None,
    }
}

/// A file whose JSON had to be refused: read again, as YAML, on this thread (rare).
fn read_as_yaml(context: &FileContext<'_>, text: &str) -> Slot {
    let mut slot = Slot::default();
    match yaml::parse_yaml_documents(text) {
        Err(e) => slot.failed = Some(parse_error(context, &e)),
        Ok(documents) => {
            // YAML documents have no raw JSON items, so neither step can ask for YAML again.
            let units = units(documents, text).unwrap_or_default();
            if let Some((output, pending)) = convert(context, units, text) {
                slot.chunks.push((0, output, pending));
            }
        }
    }
    slot
}

/// Puts a file's chunks back in order and locates its errors.
fn finish_file(mut slot: Slot, context: &FileContext<'_>) -> FileOutput {
    let text = slot.text.take().unwrap_or_else(|| Arc::from(""));
    if slot.read_as_yaml {
        slot = read_as_yaml(context, &text);
    }
    let file = context.origin_file.as_deref();
    let mut output = FileOutput::default();
    if let Some(failed) = slot.failed {
        output.errors.push(failed);
        return output;
    }
    let mut chunks = slot.chunks;
    chunks.sort_by_key(|(index, ..)| *index);
    let mut pending = Vec::new();
    for (_, chunk, chunk_pending) in chunks {
        output.objects.extend(chunk.objects);
        output.skipped.extend(chunk.skipped);
        output.errors.extend(chunk.errors);
        pending.extend(chunk_pending);
    }
    if pending.is_empty() {
        return output;
    }
    // Only now are field positions needed: parse once more, keeping every node's span.
    let positions = yaml::Positions::parse(&text);
    for p in pending {
        let position = positions.as_ref().and_then(|ps| ps.locate(p.document, &p.path, p.at_key)).unwrap_or(p.fallback);
        output.errors.push(Diagnostic { location: yaml::location_in(file, position), object: p.object, field: p.field, message: p.message });
    }
    output
}
