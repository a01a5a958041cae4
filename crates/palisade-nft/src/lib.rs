//! Palisade's nftables dataplane: a node's NetworkPolicy state rendered into one table
//! (`inet palisade`), and applied to the kernel in single transactions.
//!
//! - [`render()`] is pure: desired node state in, the whole table out ([`Ruleset`]).
//! - [`text`] prints it in nft syntax (what `nft list table` shows, loadable with `nft -f`);
//!   [`json`] in nft's JSON API, which `apply` feeds to `nft -j -f -`.

pub mod classes;
mod cluster_tiers;
pub use cluster_tiers::{Unenforceable, unenforceable, unenforceable_in};
pub mod disjoint;
pub mod first_match;
pub mod intervals;
pub mod json;
mod matches;
pub use matches::RenderCache;
pub mod render;
pub mod ruleset;
pub mod text;

pub use classes::{ClassBound, ClassIds, MarkBits, class_bound};
pub use render::{DenyAction, NodeState, NodeTable, RenderError, RenderOptions, render, try_render, try_render_cached};
pub use ruleset::Ruleset;
pub mod apply;
pub mod culprit;
pub mod diff;
pub mod generation;
// The one place with `unsafe`: the FFI calls into libnftables (see the module).
#[allow(unsafe_code)]
pub mod libnftables;
pub mod netlink;
pub mod state_file;

pub use apply::{ApplyError, ApplyKind, ApplyReport, Dataplane, Nft, NftBinary};
pub use generation::{Generation, Naming};
pub use libnftables::{Libnftables, SystemNft};
pub mod trace;
