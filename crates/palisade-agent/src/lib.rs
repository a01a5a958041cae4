//! The node agent's reconcile step, level-triggered: from the whole desired cluster state to
//! the ruleset this node enforces, applied to the kernel. The source of cluster state (the
//! API server through kube-rs, or the lab's object store) feeds `Reconciler::reconcile`; the
//! step itself is the same everywhere.

mod reconcile;

pub use reconcile::{ReconcileReport, Reconciler, local_endpoints};
