//! Reading manifests for `lab apply -f` and `lab delete -f`: the objects as plain JSON with
//! their namespace filled in as kubectl fills it, after the same validation `palisade
//! check` applies (every problem with file:line, nothing sent if any).

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use palisade_lab::kinds;
use palisade_model::{LoadOptions, Source};
use serde_json::Value;

/// The objects of the files under `paths`, each with the file it came from.
pub fn read(paths: &[PathBuf], namespace: Option<&str>) -> Result<Vec<(Value, String)>> {
    let mut files = Vec::new();
    for path in paths {
        match palisade_model::load::manifest_files(path) {
            Ok(found) => files.extend(found),
            Err(message) => bail!("{}: {message}", path.display()),
        }
    }
    validate(&files, namespace)?;
    let default_namespace = namespace.unwrap_or("default");
    let mut objects = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).map_err(|e| anyhow::anyhow!("{}: cannot read: {e}", file.display()))?;
        let documents = palisade_model::parse_yaml(&text).map_err(|e| anyhow::anyhow!("{}:{e}", file.display()))?;
        for document in documents {
            let items = if document["kind"] == "List" { document["items"].as_array().cloned().unwrap_or_default() } else { vec![document] };
            for mut object in items {
                fill_namespace(&mut object, namespace, default_namespace, file)?;
                objects.push((object, display(file)));
            }
        }
    }
    if objects.is_empty() {
        bail!("no objects passed to apply");
    }
    Ok(objects)
}

fn display(file: &Path) -> String {
    file.display().to_string()
}

/// kubectl's rules: a namespaced object without a namespace goes to `-n` (or `default`);
/// one that names another namespace than `-n` is an error.
fn fill_namespace(object: &mut Value, requested: Option<&str>, default: &str, file: &Path) -> Result<()> {
    let kind = object["kind"].as_str().unwrap_or_default().to_string();
    let namespaced = kinds::by_kind(&kind).is_none_or(|k| k.namespaced);
    if !namespaced {
        return Ok(());
    }
    match (object["metadata"]["namespace"].as_str(), requested) {
        (Some(own), Some(requested)) if own != requested => bail!(
            "{}: the namespace from the provided object {own:?} does not match the namespace {requested:?}. You must pass '--namespace={own}' to perform this operation.",
            file.display()
        ),
        (Some(_), _) => {}
        (None, _) => {
            if !object["metadata"].is_object() {
                object["metadata"] = serde_json::json!({});
            }
            object["metadata"]["namespace"] = Value::String(default.to_string());
        }
    }
    Ok(())
}

/// The model's validation (apiserver rules, kubectl's strict fields), for the same files.
fn validate(files: &[PathBuf], namespace: Option<&str>) -> Result<()> {
    let sources: Vec<Source> = files.iter().map(|f| Source { path: f.clone(), namespace: namespace.map(str::to_string) }).collect();
    let options = LoadOptions { default_namespace: namespace.unwrap_or("default").to_string(), ..LoadOptions::default() };
    if let Err(error) = palisade_model::load(&sources, &options) {
        for diagnostic in &error.0 {
            eprintln!("{diagnostic}");
        }
        bail!("{} problem(s) in the input; the lab was not changed", error.0.len());
    }
    Ok(())
}
