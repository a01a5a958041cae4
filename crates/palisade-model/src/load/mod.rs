//! Manifest loading: files and directories (recursive), `.yaml`/`.yml`/`.json`, multi-document
//! streams and `List` kinds, into a validated [`Cluster`].
//!
//! Loading is all or nothing: every problem in every file is reported, and no cluster is
//! produced if there was any, so nothing is ever evaluated on partial data.

mod block_yaml;
mod json;
pub mod kinds;
mod read;
mod yaml;

/// Where nodes of a YAML text are, for error messages of other formats built on YAML
/// (the conformance case files).
pub use yaml::{Position, Positions};

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use ipnet::IpNet;
use serde_json::Value;

use crate::build::{ClusterBuilder, Duplicate};
use crate::diagnostic::{Diagnostic, LoadError, Location};
use crate::field_path::FieldPath;
use crate::objects::{Cluster, Origin};
use kinds::Object;

/// Parses a YAML (or JSON) stream into plain JSON values, one per non-empty document.
pub fn parse_yaml(text: &str) -> Result<Vec<Value>, String> {
    let describe = |e: yaml::ParseError| format!("{}:{}: {}", e.line, e.column, e.message);
    let mut documents = yaml::parse_documents(text).map_err(describe)?;
    if documents.iter_mut().any(|document| json::fill_items(document, text).is_none()) {
        // A duplicated key in a JSON `List` item: the YAML reading says where.
        documents = yaml::parse_yaml_documents(text).map_err(describe)?;
    }
    Ok(documents.into_iter().map(|d| d.value).collect())
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
    /// Endpoints without any `status.podIPs` get deterministic addresses from these (one
    /// per family). Empty: the default CIDR of each family the cluster's real pod addresses
    /// use (IPv4 when none has any), see [`crate::build::default_pod_cidrs`].
    pub pod_cidrs: Vec<IpNet>,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self { default_namespace: "default".to_string(), pod_cidrs: Vec::new() }
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
    loader.add_sources(sources);
    loader.finish()
}

/// Loads one YAML or JSON stream held in memory (objects from the API, tests).
pub fn load_text(text: &str, options: &LoadOptions) -> Result<Loaded, LoadError> {
    let mut loader = Loader::new(options.clone());
    loader.add_text(None, text, None);
    loader.finish()
}

/// Accumulates objects from files or strings, then builds the cluster.
pub struct Loader {
    options: LoadOptions,
    builder: ClusterBuilder,
    errors: Vec<Diagnostic>,
    skipped: Vec<Diagnostic>,
}

/// What one file holds: converted objects, or the problems found.
#[derive(Default)]
struct FileOutput {
    objects: Vec<(Object, String, Location)>,
    errors: Vec<Diagnostic>,
    skipped: Vec<Diagnostic>,
}

/// An error whose position is looked up once the whole file has been read.
struct Pending {
    document: usize,
    path: FieldPath,
    at_key: bool,
    /// Where the object starts, if the path cannot be found.
    fallback: yaml::Position,
    object: Option<String>,
    field: Option<String>,
    message: String,
}

fn file_error(path: &Path, message: String) -> Diagnostic {
    Diagnostic { location: Location { file: Some(path.to_path_buf()), line: 0, column: 0 }, object: None, field: None, message }
}

impl Loader {
    pub fn new(options: LoadOptions) -> Self {
        Self { options, builder: ClusterBuilder::default(), errors: Vec::new(), skipped: Vec::new() }
    }

    /// Adds a file, or every `.yaml`/`.yml`/`.json` file below a directory (sorted, recursive).
    pub fn add_source(&mut self, source: &Source) {
        self.add_sources(std::slice::from_ref(source));
    }

    /// Adds several sources. Files are read and converted in parallel; objects are added in
    /// the order of the sources, so results do not depend on scheduling.
    pub fn add_sources(&mut self, sources: &[Source]) {
        let mut inputs = Vec::new();
        for source in sources {
            match manifest_files(&source.path) {
                Ok(found) => inputs.extend(found.into_iter().map(|file| read::Input { file: Some(file), text: None, namespace: source.namespace.as_deref() })),
                Err(message) => self.errors.push(file_error(&source.path, message)),
            }
        }
        for output in read::read_all(inputs, &self.options.default_namespace) {
            self.merge(output);
        }
    }

    /// Adds a YAML or JSON stream; `file` is only used in messages.
    pub fn add_text(&mut self, file: Option<&Path>, text: &str, namespace: Option<&str>) {
        let input = read::Input { file: file.map(Path::to_path_buf), text: Some(text), namespace };
        for output in read::read_all(vec![input], &self.options.default_namespace) {
            self.merge(output);
        }
    }

    fn merge(&mut self, output: FileOutput) {
        self.errors.extend(output.errors);
        self.skipped.extend(output.skipped);
        for (object, name, location) in output.objects {
            let added = match object {
                Object::Namespace(ns) => self.builder.add_namespace(ns),
                Object::Endpoint(endpoint) => self.builder.add_endpoint(endpoint),
                Object::Service(service) => self.builder.add_service(service),
                Object::Policy(policy) => self.builder.add_policy(policy),
                Object::ClusterPolicy(policy) => self.builder.add_cluster_policy(policy),
                Object::Node(node) => self.builder.add_node(node),
                Object::FinishedPod => Ok(()),
            };
            if let Err(Duplicate(first)) = added {
                self.errors.push(Diagnostic { location, object: Some(name), field: None, message: format!("defined twice: first defined at {first}") });
            }
        }
    }

    /// Builds the cluster if no problem was found.
    pub fn finish(self) -> Result<Loaded, LoadError> {
        if !self.errors.is_empty() {
            return Err(LoadError(self.errors));
        }
        let (cluster, notes) =
            self.builder.build(&self.options.pod_cidrs).map_err(|e| LoadError(vec![Diagnostic { location: Location::default(), object: None, field: None, message: e.to_string() }]))?;
        let warnings = notes
            .into_iter()
            .map(|note| Diagnostic {
                location: Location { file: note.origin.file.as_ref().map(|f| f.to_path_buf()), line: note.origin.line, column: note.origin.column },
                object: None,
                field: None,
                message: note.message,
            })
            .collect();
        Ok(Loaded { cluster, warnings, skipped: self.skipped })
    }
}

/// The manifest files a path stands for: the file, or every .yaml/.yml/.json file below a
/// directory (sorted, recursive).
pub fn manifest_files(path: &Path) -> Result<Vec<PathBuf>, String> {
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

/// Converts one object (or each object of a `List`).
fn add_value(context: &read::FileContext<'_>, document: usize, value: &Value, at: &FieldPath, start: yaml::Position, pending: &mut Vec<Pending>, output: &mut FileOutput) {
    let fail = |pending: &mut Vec<Pending>, path: &FieldPath, at_key: bool, object: Option<String>, message: String| {
        pending.push(Pending { document, path: path.under(at), at_key, fallback: start, object, field: (!path.is_root()).then(|| path.to_string()), message });
    };
    let Value::Object(map) = value else {
        let message = "expected a Kubernetes object (a mapping with apiVersion and kind)".to_string();
        return fail(pending, &FieldPath::root(), false, None, message);
    };
    let kind = map.get("kind").and_then(Value::as_str).unwrap_or_default();
    let api_version = map.get("apiVersion").and_then(Value::as_str).unwrap_or_default();
    if kind.is_empty() || api_version.is_empty() {
        let missing = if kind.is_empty() { "kind" } else { "apiVersion" };
        let message = format!("required value: every object needs {missing}");
        return fail(pending, &FieldPath::root().key(missing), true, None, message);
    }
    if kind.ends_with("List")
        && let Some(Value::Array(items)) = map.get("items")
    {
        for (i, item) in items.iter().enumerate() {
            // A List inside a List: its items have no positions of their own.
            add_value(context, document, item, &FieldPath::root().key("items").index(i).under(at), start, pending, output);
        }
        return;
    }

    let meta = map.get("metadata");
    let text_of = |key: &str| meta.and_then(|m| m.get(key)).and_then(Value::as_str).unwrap_or_default().to_string();
    let (name, declared_ns) = (text_of("name"), text_of("namespace"));
    let namespace = if declared_ns.is_empty() { context.namespace.to_string() } else { declared_ns.clone() };
    let object_name = if kinds::cluster_scoped(kind) { format!("{kind} {name}") } else { format!("{kind} {namespace}/{name}") };
    let location = Location { file: context.origin_file.as_ref().map(|f| f.to_path_buf()), line: start.0, column: start.1 };
    let origin = Origin { file: context.origin_file.clone(), line: start.0, column: start.1 };

    let Some(version_check) = kinds::api_version_supported(kind, api_version) else {
        output.skipped.push(Diagnostic { location, object: Some(object_name), field: None, message: format!("skipped: kind {kind} ({api_version}) does not affect NetworkPolicy analysis") });
        return;
    };
    if let Err(expected) = version_check {
        let message = format!("unsupported apiVersion {api_version:?} for {kind}: supported: {expected}");
        return fail(pending, &FieldPath::root().key("apiVersion"), false, Some(object_name), message);
    }
    if context.explicit_namespace && !declared_ns.is_empty() && context.namespace != declared_ns && kind != "Namespace" {
        let message = format!("the object is in namespace {declared_ns:?} but its file was given with @{}", context.namespace);
        return fail(pending, &FieldPath::root().key("metadata").key("namespace"), false, Some(object_name), message);
    }
    match kinds::convert(kind, value, &namespace, origin) {
        Ok(object) => output.objects.push((object, object_name, location)),
        Err(errors) => {
            for error in errors {
                fail(pending, &error.path, error.at_key, Some(object_name.clone()), error.message);
            }
        }
    }
}
