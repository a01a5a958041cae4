//! `palisade lab`: Kubernetes NetworkPolicy with real packets on one Linux machine.
//!
//! Not a toy Kubernetes: a small local cluster behind a Kubernetes API of its own
//! (`palisade-apiserver`), which kubectl, kube-rs and other clients use as they use any
//! cluster. Nodes are network namespaces routed to each other over an underlay; pods are
//! network namespaces wired by the real `palisade-cni` binary over the CNI protocol;
//! containers are host processes entered into their pod's namespaces; Services are DNAT
//! rules in each node's own table; NetworkPolicy is enforced by Palisade's own DaemonSet
//! (`deploy/palisade.yaml`), applied to the lab's API and run on every node as on a cluster.

pub mod client;
pub mod cluster_view;
pub mod controllers;
pub mod daemon;
pub mod dns;
pub mod error;
pub mod images;
pub mod kubelet;
pub mod lab;
pub mod node_agents;
pub mod paths;
pub mod probe;
pub mod protocol;
pub mod proxy;
pub mod runtime;
pub mod sandbox;
pub mod serve;
pub mod time;
pub mod topology;

pub use error::LabError;
pub use paths::LabPaths;
