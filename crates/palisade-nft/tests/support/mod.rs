//! Shared by the dataplane's tests: clusters from YAML, and applying into a test bed's node.
#![allow(dead_code)]

use palisade_model::{Cluster, LoadOptions, load_text};
use palisade_nft::apply::{ApplyError, Nft};
use palisade_testbed::Testbed;

/// Applies through `nft -j -f -` in the test bed's node namespace.
pub struct NodeNft<'t>(pub &'t Testbed);

impl Nft for NodeNft<'_> {
    fn apply(&self, document: &str) -> Result<(), ApplyError> {
        self.0.nft_json(document).map_err(|stderr| ApplyError::Rejected { stderr })
    }
}

/// A cluster from a YAML stream; panics on invalid input.
pub fn cluster(yaml: &str) -> Cluster {
    load_text(yaml, &LoadOptions::default()).unwrap_or_else(|e| panic!("invalid test input: {e}")).cluster
}
