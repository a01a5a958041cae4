//! NetworkPolicy semantics (networking.k8s.io/v1), exactly as upstream defines them, inside
//! ClusterNetworkPolicy's tiers (policy.networking.k8s.io, [`tiers`]).
//!
//! - [`verdict()`] judges one flow and says why: which policies isolate each side, which rule
//!   allowed it, or why each rule missed.
//! - [`matrix()`](matrix::matrix) and [`summary`](matrix::summary) compute reachability over
//!   equivalence classes of endpoints ([`classes`]), never over pairs of pods.
//! - [`matching`] holds the peer and port semantics both are built on.
//!
//! Pure: no I/O, no threads, no clock.

pub mod analysis;
pub mod bitset;
pub mod classes;
pub mod family;
pub mod flow;
pub mod matching;
pub mod matrix;
pub mod service;
mod tiered;
pub mod tiers;
pub mod verdict;

pub use family::Families;
pub use flow::{Flow, FlowEnd};
pub use matrix::{Matrix, MatrixPlan, PortQuery, PortRef, PortSelection, Summary, matrix, pairs_without_common_family, summary};
pub use verdict::{PeerMismatch, PolicyRef, RuleMiss, RuleRef, SideVerdict, Verdict, allowed, verdict};
