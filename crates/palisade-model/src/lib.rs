//! Palisade's object model: Kubernetes manifests in, a validated [`Cluster`] out.
//!
//! - [`load`] reads files and directories of manifests (YAML, JSON, multi-document, `List`),
//!   validates them as kube-apiserver would and reports every problem with its position.
//! - [`convert`] turns single k8s-openapi objects into the validated view; the cluster agent
//!   uses it on objects from the API server.
//! - [`objects`] and [`selector`] are that view: what the policy engine works on.
//!
//! This crate is pure: it reads files it is given and nothing else.

pub mod build;
pub mod cluster_policy;
pub mod convert;
pub mod diagnostic;
pub mod field_path;
pub mod load;
pub mod objects;
pub mod selector;

pub use build::{ClusterBuilder, DEFAULT_POD_CIDR, DEFAULT_POD_CIDR_V6, default_pod_cidrs};
pub use diagnostic::{Diagnostic, LoadError, Location};
pub use load::{LoadOptions, Loaded, Loader, Positions, Source, load, load_text, parse_yaml};
pub use objects::*;
pub use selector::{Labels, Operator, Requirement, Selector, format_labels};
