//! Reading, parsing and converting files on all cores.
//!
//! Every file is a task; once a file is parsed, its objects are converted in chunks that
//! are tasks of their own. One big `PodList` next to a few policy files would otherwise keep
//! one core converting pods while the other sits idle (measured: the 500-pod list was the
//! whole critical path of `palisade matrix`). Results are put back in input order, so the
//! outcome never depends on scheduling.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde_json::Value;

use super::{FileOutput, Pending, add_value, file_error, yaml};
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
    pub value: Value,
    pub path: FieldPath,
    pub start: yaml::Position,
}

/// What the tasks of one file produced.
#[derive(Default)]
struct Slot {
    /// The text, kept to locate errors; only when the file was read here.
    text: Option<String>,
    failed: Option<Diagnostic>,
    chunks: Vec<(usize, FileOutput, Vec<Pending>)>,
}

/// Reads every input; one output per input, in input order.
pub(super) fn read_all(inputs: Vec<Input<'_>>, default_namespace: &str) -> Vec<FileOutput> {
    let slots: Vec<Mutex<Slot>> = inputs.iter().map(|_| Mutex::default()).collect();
    let files: Vec<Option<PathBuf>> = inputs.iter().map(|i| i.file.clone()).collect();
    let texts: Vec<Option<&str>> = inputs.iter().map(|i| i.text).collect();
    rayon::scope(|scope| {
        for (input, slot) in inputs.into_iter().zip(&slots) {
            scope.spawn(move |scope| {
                let owned = match (input.text, &input.file) {
                    (Some(_), _) | (None, None) => None,
                    (None, Some(file)) => match std::fs::read_to_string(file) {
                        Ok(text) => Some(text),
                        Err(e) => return lock(slot).failed = Some(file_error(file, format!("cannot read: {e}"))),
                    },
                };
                let text = input.text.or(owned.as_deref()).unwrap_or_default();
                let documents = match yaml::parse_documents(text) {
                    Ok(documents) => documents,
                    Err(e) => {
                        return lock(slot).failed = Some(Diagnostic {
                            location: yaml::location_in(input.file.as_deref(), (e.line, e.column)),
                            object: None,
                            field: None,
                            message: format!("invalid YAML: {}", e.message),
                        });
                    }
                };
                let context = Arc::new(FileContext {
                    origin_file: input.file.as_deref().map(Arc::from),
                    namespace: input.namespace.unwrap_or(default_namespace),
                    explicit_namespace: input.namespace.is_some(),
                });
                let mut units = units(documents).into_iter();
                for index in 0.. {
                    let chunk: Vec<Unit> = units.by_ref().take(OBJECTS_PER_TASK).collect();
                    if chunk.is_empty() {
                        break;
                    }
                    let context = Arc::clone(&context);
                    scope.spawn(move |_| {
                        let (mut output, mut pending) = (FileOutput::default(), Vec::new());
                        for unit in &chunk {
                            add_value(&context, unit.document, &unit.value, &unit.path, unit.start, &mut pending, &mut output);
                        }
                        drop(chunk); // Freed here, on this core, not by the merging thread.
                        lock(slot).chunks.push((index, output, pending));
                    });
                }
                lock(slot).text = owned;
            });
        }
    });
    slots
        .into_iter()
        .zip(files)
        .zip(texts)
        .map(|((slot, file), text)| {
            let slot = slot.into_inner().unwrap_or_else(|poisoned| poisoned.into_inner());
            finish_file(slot, file.as_deref(), text)
        })
        .collect()
}

fn lock(slot: &Mutex<Slot>) -> std::sync::MutexGuard<'_, Slot> {
    slot.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The objects of a stream: each document, or each item of a `List` document (whose items
/// start where the parser saw them).
fn units(documents: Vec<yaml::Document>) -> Vec<Unit> {
    let mut units = Vec::new();
    for (document, yaml::Document { value, start, item_starts }) in documents.into_iter().enumerate() {
        let mut value = value;
        match list_items(&mut value) {
            Some(items) => units.extend(items.into_iter().enumerate().map(|(i, item)| Unit {
                document,
                value: item,
                path: FieldPath::root().key("items").index(i),
                start: item_starts.get(i).copied().unwrap_or(start),
            })),
            None => units.push(Unit { document, value, path: FieldPath::root(), start }),
        }
    }
    units
}

/// The items of a `List` object (taken out of it), or `None` for any other document.
fn list_items(value: &mut Value) -> Option<Vec<Value>> {
    let Value::Object(map) = value else { return None };
    let kind = map.get("kind").and_then(Value::as_str).unwrap_or_default();
    let api_version = map.get("apiVersion").and_then(Value::as_str).unwrap_or_default();
    if !kind.ends_with("List") || api_version.is_empty() || !matches!(map.get("items"), Some(Value::Array(_))) {
        return None;
    }
    match map.remove("items") {
        Some(Value::Array(items)) => Some(items),
        _ => None,
    }
}

/// Puts a file's chunks back in order and locates its errors.
fn finish_file(slot: Slot, file: Option<&Path>, text: Option<&str>) -> FileOutput {
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
    let text = text.or(slot.text.as_deref()).unwrap_or_default();
    let positions = yaml::Positions::parse(text);
    for p in pending {
        let position = positions.as_ref().and_then(|ps| ps.locate(p.document, &p.path, p.at_key)).unwrap_or(p.fallback);
        output.errors.push(Diagnostic {
            location: yaml::location_in(file, position),
            object: p.object,
            field: p.field,
            message: p.message,
        });
    }
    output
}
