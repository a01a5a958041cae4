//! The upstream NetworkPolicy e2e suite (kubernetes/kubernetes test/e2e/network/netpol),
//! transcribed into `cases/` by `tools/convert-conformance.py`, and a harness to replay it.
//!
//! The model is upstream's: namespaces x, y, z; pods a, b, c labelled `pod: <name>`, each
//! serving every case port with a named container port `serve-<port>-<proto>`; probes go
//! through a Service, so they are judged on the pod address and target port.

mod builtin;
mod case;
pub mod file;
pub mod report;
mod scenario;
pub mod strategies;
pub mod synthetic;
pub mod topology;

pub use case::{Case, Expectation, Step, Variant, load_cases};
pub use scenario::{Mismatch, Scenario, default_pod_ips};
pub use topology::{LabelMap, PodDef, PortDef, Topology};
