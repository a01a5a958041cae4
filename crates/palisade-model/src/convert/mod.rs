//! Conversion of Kubernetes objects (k8s-openapi types) into the validated view in
//! [`crate::objects`]. Each function reports every problem it finds as a [`FieldError`];
//! the loader attaches file positions, the agent attaches object names.

pub mod cidr;
mod cluster_policy;
mod metadata;
pub mod names;
mod namespace;
mod node;
mod policy;
mod selector;
mod service;
mod workload;

use crate::field_path::{At, Errors};
use crate::objects::Protocol;

/// A `protocol` field: absent means TCP (the API's default); an unsupported value is
/// recorded as an error on `<path>.protocol` and gives `None`.
fn protocol_or_tcp(text: Option<&str>, path: &At<'_>, errors: &mut Errors) -> Option<Protocol> {
    match text {
        None => Some(Protocol::Tcp),
        Some(text) => text.parse().map_err(|message: String| errors.push(path.key("protocol"), message)).ok(),
    }
}

pub use cluster_policy::{API_VERSIONS as CLUSTER_POLICY_API_VERSIONS, cluster_policy};
pub use namespace::namespace;
pub use node::node;
pub use policy::network_policy;
pub use service::service;
pub use workload::{pod, workload};
