//! Palisade's node agent. The reconcile step, level-triggered, from the whole desired
//! cluster state to the ruleset this node enforces ([`Reconciler`], shared with anything
//! that holds a cluster state); and `palisade agent` ([`agent::run`]): that step fed by
//! kube-rs watches of a Kubernetes API, with health, readiness, metrics and Events.

pub mod agent;
pub mod cluster_policy_object;
mod cni_socket;
mod http;
pub mod install;
pub mod metrics;
pub mod observed;
mod pacing;
mod reconcile;
pub mod shared;
mod slots;
pub mod state;
mod watch;

pub use agent::{AgentConfig, AgentError, client, run};
pub use reconcile::{ReconcileReport, Reconciler, Rendered, SyncError, local_endpoints};
