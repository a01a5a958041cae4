//! Privileged test helpers. Every network change happens inside network namespaces created
//! here (named `pt<pid>-<n>-<role>`), and `Drop` deletes them, also when a test panics.
//!
//! - [`require_privileges`]: root is needed; in CI (`PALISADE_REQUIRE_PRIVILEGED=1`) a test
//!   that cannot run fails instead of skipping.
//! - [`NetNs`]: a named network namespace; commands and closures run inside it.
//! - [`Testbed`]: a node namespace routing to pod namespaces over veth pairs (the layout the
//!   CNI plugin builds: /32 and /128 addresses, link-local gateways, host routes).
//! - [`Servers`] and [`Prober`]: TCP and UDP servers in pods, and connection attempts.

mod listing;
mod netns;
mod probe;
mod testbed;

pub use listing::normalize_listing;
pub use netns::{NetNs, require_privileges};
pub use probe::{Outcome, Prober, Servers};
pub use testbed::{PodSpec, Testbed};
