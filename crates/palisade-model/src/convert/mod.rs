//! Conversion of Kubernetes objects (k8s-openapi types) into the validated view in
//! [`crate::objects`]. Each function reports every problem it finds as a [`FieldError`];
//! the loader attaches file positions, the agent attaches object names.

pub mod cidr;
mod metadata;
mod names;
mod namespace;
mod policy;
mod selector;
mod service;
mod workload;

pub use namespace::namespace;
pub use policy::network_policy;
pub use service::service;
pub use workload::{pod, workload};
