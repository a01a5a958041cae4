//! Manifest loading: files and directories (recursive), `.yaml`/`.yml`/`.json`, multi-document
//! streams and `List` kinds, into a validated [`Cluster`].
//!
//! Loading is all or nothing: every problem in every file is reported, and no cluster is
//! produced if there was any, so nothing is ever evaluated on partial data.

mod kinds;
mod yaml;

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use ipnet::IpNet;
use serde_json::Value;

use crate::build::{ClusterBuilder, DEFAULT_POD_CIDR, Duplicate};
use crate::diagnostic::{Diagnostic, LoadError, Location};
use crate::field_path::{FieldError, FieldPath};
use crate::objects::{Cluster, Origin};
use kinds::Object;

/// Parses a YAML (or JSON) stream into plain JSON values, one per non-empty document.
pub fn parse_yaml(text: &str) -> Result<Vec<Value>, String> {
    let documents = yaml::parse_documents(text).map_err(|e| format!("{}:{}: {}", e.line, e.column, e.message))?;
    Ok(documents.iter().map(yaml::to_json).filter(|v| !v.is_null()).collect())
}

/// A path to load, optionally with the namespace its namespace-less objects go to
/// (`curl-deployment.yaml@develop`, like `kubectl apply -n develop -f curl-deployment.yaml`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Source {
    pub path: PathBuf,
    pub namespace: Option<String>,
}

impl FromStr for Source {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        // A file whose name really contains '@' wins over the namespace syntax.
        if let Some((path, namespace)) = text.rsplit_once('@')
            && !Path::new(text).exists()
        {
            if namespace.is_empty() || path.is_empty() {
                return Err(format!("{text:?}: expected PATH or PATH@NAMESPACE"));
            }
            return Ok(Source { path: path.into(), namespace: Some(namespace.to_string()) });
        }
        Ok(Source { path: text.into(), namespace: None })
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{}@{ns}", self.path.display()),
            None => write!(f, "{}", self.path.display()),
        }
    }
}

#[derive(Clone, Debug)]
pub struct LoadOptions {
    /// Where objects without `metadata.namespace` go when their source names none.
    pub default_namespace: String,
    /// Endpoints without `status.podIPs` get deterministic addresses from these.
    pub pod_cidrs: Vec<IpNet>,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            default_namespace: "default".to_string(),
            pod_cidrs: vec![DEFAULT_POD_CIDR.parse().expect("default pod CIDR is valid")],
        }
    }
}

/// A loaded cluster and what the user may want to know about the input.
#[derive(Debug)]
pub struct Loaded {
    pub cluster: Cluster,
    /// Assumptions made (undeclared namespaces, shared IPs).
    pub warnings: Vec<Diagnostic>,
    /// Objects of kinds Palisade does not read (shown with `-v`).
    pub skipped: Vec<Diagnostic>,
}

/// Loads every source, or reports every problem.
pub fn load(sources: &[Source], options: &LoadOptions) -> Result<Loaded, LoadError> {
    let mut loader = Loader::new(options.clone());
    for source in sources {
        loader.add_source(source);
    }
    loader.finish()
}

/// Accumulates objects from files or strings, then builds the cluster.
pub struct Loader {
    options: LoadOptions,
    builder: ClusterBuilder,
    errors: Vec<Diagnostic>,
    skipped: Vec<Diagnostic>,
}

/// The document an object came from, to turn field paths into positions.
struct DocumentContext<'a, 'doc> {
    file: Option<&'a Path>,
    origin_file: Option<Arc<Path>>,
    document: &'a saphyr::MarkedYaml<'doc>,
    namespace: Option<&'a str>,
}

impl Loader {
    pub fn new(options: LoadOptions) -> Self {
        Self { options, builder: ClusterBuilder::default(), errors: Vec::new(), skipped: Vec::new() }
    }

    /// Adds a file, or every `.yaml`/`.yml`/`.json` file below a directory (sorted, recursive).
    pub fn add_source(&mut self, source: &Source) {
        let files = match manifest_files(&source.path) {
            Ok(files) => files,
            Err(message) => {
                self.errors.push(Diagnostic {
                    location: Location { file: Some(source.path.clone()), line: 0, column: 0 },
                    object: None,
                    field: None,
                    message,
                });
                return;
            }
        };
        for file in files {
            match std::fs::read_to_string(&file) {
                Ok(text) => self.add_text(Some(&file), &text, source.namespace.as_deref()),
                Err(e) => self.errors.push(Diagnostic {
                    location: Location { file: Some(file.clone()), line: 0, column: 0 },
                    object: None,
                    field: None,
                    message: format!("cannot read: {e}"),
                }),
            }
        }
    }

    /// Adds a YAML or JSON stream; `file` is only used in messages.
    pub fn add_text(&mut self, file: Option<&Path>, text: &str, namespace: Option<&str>) {
        let documents = match yaml::parse_documents(text) {
            Ok(documents) => documents,
            Err(e) => {
                self.errors.push(Diagnostic {
                    location: yaml::location_in(file, (e.line, e.column)),
                    object: None,
                    field: None,
                    message: format!("invalid YAML: {}", e.message),
                });
                return;
            }
        };
        let origin_file: Option<Arc<Path>> = file.map(Arc::from);
        for document in &documents {
            let value = yaml::to_json(document);
            if value.is_null() {
                continue;
            }
            let context = DocumentContext { file, origin_file: origin_file.clone(), document, namespace };
            self.add_value(&context, &value, &FieldPath::root());
        }
    }

    fn add_value(&mut self, context: &DocumentContext<'_, '_>, value: &Value, at: &FieldPath) {
        let location = |path: &FieldPath, at_key: bool| {
            yaml::location_in(context.file, yaml::locate(context.document, &path.under(at), at_key))
        };
        let Value::Object(map) = value else {
            self.errors.push(Diagnostic {
                location: location(&FieldPath::root(), false),
                object: None,
                field: None,
                message: "expected a Kubernetes object (a mapping with apiVersion and kind)".to_string(),
            });
            return;
        };
        let kind = map.get("kind").and_then(Value::as_str).unwrap_or_default();
        let api_version = map.get("apiVersion").and_then(Value::as_str).unwrap_or_default();
        if kind.is_empty() || api_version.is_empty() {
            let missing = if kind.is_empty() { "kind" } else { "apiVersion" };
            self.errors.push(Diagnostic {
                location: location(&FieldPath::root(), false),
                object: None,
                field: Some(missing.to_string()),
                message: format!("required value: every object needs {missing}"),
            });
            return;
        }
        if kind.ends_with("List")
            && let Some(Value::Array(items)) = map.get("items")
        {
            for (i, item) in items.iter().enumerate() {
                self.add_value(context, item, &FieldPath::root().key("items").index(i).under(at));
            }
            return;
        }

        let meta = map.get("metadata");
        let text_of = |key: &str| meta.and_then(|m| m.get(key)).and_then(Value::as_str).unwrap_or_default().to_string();
        let (name, declared_ns) = (text_of("name"), text_of("namespace"));
        let namespace = if declared_ns.is_empty() {
            context.namespace.unwrap_or(&self.options.default_namespace).to_string()
        } else {
            declared_ns.clone()
        };
        let object_name = if kind == "Namespace" { format!("{kind} {name}") } else { format!("{kind} {namespace}/{name}") };
        let (line, column) = yaml::locate(context.document, at, false);
        let origin = Origin { file: context.origin_file.clone(), line, column };
        let diagnostic = |error: &FieldError| Diagnostic {
            location: location(&error.path, error.at_key),
            object: Some(object_name.clone()),
            field: (!error.path.is_root()).then(|| error.path.to_string()),
            message: error.message.clone(),
        };

        let Some(expected_version) = kinds::supported_api_version(kind) else {
            self.skipped.push(Diagnostic {
                location: location(&FieldPath::root(), false),
                object: Some(object_name),
                field: None,
                message: format!("skipped: kind {kind} ({api_version}) does not affect NetworkPolicy analysis"),
            });
            return;
        };
        if api_version != expected_version {
            self.errors.push(diagnostic(&FieldError::new(
                FieldPath::root().key("apiVersion"),
                format!("unsupported apiVersion {api_version:?} for {kind}: supported: {expected_version:?}"),
            )));
            return;
        }
        if let (Some(wanted), false) = (context.namespace, declared_ns.is_empty())
            && wanted != declared_ns
            && kind != "Namespace"
        {
            self.errors.push(diagnostic(&FieldError::new(
                FieldPath::root().key("metadata").key("namespace"),
                format!("the object is in namespace {declared_ns:?} but its file was given with @{wanted}"),
            )));
            return;
        }

        let object = match kinds::convert(kind, value, &namespace, origin) {
            Ok(object) => object,
            Err(errors) => {
                self.errors.extend(errors.iter().map(diagnostic));
                return;
            }
        };
        let added = match object {
            Object::Namespace(ns) => self.builder.add_namespace(ns),
            Object::Endpoint(endpoint) => self.builder.add_endpoint(endpoint),
            Object::Service(service) => self.builder.add_service(service),
            Object::Policy(policy) => self.builder.add_policy(policy),
            Object::FinishedPod => Ok(()),
        };
        if let Err(Duplicate(first)) = added {
            self.errors.push(Diagnostic {
                location: location(&FieldPath::root(), false),
                object: Some(object_name),
                field: None,
                message: format!("defined twice: first defined at {first}"),
            });
        }
    }

    /// Builds the cluster if no problem was found.
    pub fn finish(self) -> Result<Loaded, LoadError> {
        if !self.errors.is_empty() {
            return Err(LoadError(self.errors));
        }
        let (cluster, notes) = self.builder.build(&self.options.pod_cidrs).map_err(|e| {
            LoadError(vec![Diagnostic { location: Location::default(), object: None, field: None, message: e.to_string() }])
        })?;
        let warnings = notes
            .into_iter()
            .map(|note| Diagnostic {
                location: Location {
                    file: note.origin.file.as_ref().map(|f| f.to_path_buf()),
                    line: note.origin.line,
                    column: note.origin.column,
                },
                object: None,
                field: None,
                message: note.message,
            })
            .collect();
        Ok(Loaded { cluster, warnings, skipped: self.skipped })
    }
}

/// The manifest files a path stands for.
fn manifest_files(path: &Path) -> Result<Vec<PathBuf>, String> {
    let metadata = std::fs::metadata(path).map_err(|e| format!("cannot read: {e}"))?;
    if !metadata.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files = Vec::new();
    let mut pending = vec![path.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|e| format!("cannot read directory {}: {e}", dir.display()))?;
        for entry in entries {
            let entry = entry.map_err(|e| format!("cannot read directory {}: {e}", dir.display()))?;
            let entry_path = entry.path();
            if entry_path.is_dir() {
                pending.push(entry_path);
            } else if matches!(entry_path.extension().and_then(|e| e.to_str()), Some("yaml" | "yml" | "json")) {
                files.push(entry_path);
            }
        }
    }
    files.sort();
    Ok(files)
}
