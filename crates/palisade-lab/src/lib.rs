//! `palisade lab`: Kubernetes NetworkPolicy with real packets on one Linux machine.
//!
//! Not a toy Kubernetes: a small local runtime. Nodes are network namespaces routed to each
//! other over an underlay; pods are network namespaces wired by the real `palisade-cni`
//! binary over the CNI protocol; containers are host processes entered into their pod's
//! namespaces; Services are DNAT rules in each node's own table; every node runs the agent's
//! reconcile step (engine -> render -> apply) on the lab's object store.

pub mod agents;
pub mod client;
pub mod cluster_view;
pub mod controllers;
pub mod daemon;
pub mod dns;
pub mod error;
pub mod format;
pub mod images;
pub mod jsonpath;
pub mod kinds;
pub mod lab;
pub mod paths;
pub mod protocol;
pub mod proxy;
pub mod runtime;
pub mod sandbox;
pub mod serve;
pub mod store;
pub mod time;
pub mod topology;

pub use error::LabError;
pub use paths::LabPaths;
