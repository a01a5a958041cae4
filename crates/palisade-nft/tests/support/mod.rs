//! Shared by the dataplane's tests: clusters from YAML, and applying into a test bed's node.
#![allow(dead_code)]

use std::cell::RefCell;

use palisade_model::{Cluster, LoadOptions, load_text};
use palisade_nft::apply::{ApplyError, ApplyKind, Dataplane, Nft};
use palisade_nft::{Ruleset, text};
use palisade_testbed::{NetNs, Testbed, normalize_listing};

/// Applies through `nft -j -f -` in the test bed's node namespace.
pub struct NodeNft<'t>(pub &'t Testbed);

impl Nft for NodeNft<'_> {
    fn apply(&self, document: &str) -> Result<(), ApplyError> {
        NsNft(&self.0.node).apply(document)
    }

    fn check(&self, document: &str) -> Result<(), ApplyError> {
        NsNft(&self.0.node).check(document)
    }

    fn supports_netlink(&self) -> bool {
        true
    }

    fn netlink(&self, transaction: &[u8]) -> Result<(), ApplyError> {
        NsNft(&self.0.node).netlink(transaction)
    }

    fn object_names(&self, table: &str) -> Result<(Vec<String>, Vec<String>), ApplyError> {
        NsNft(&self.0.node).object_names(table)
    }
}

/// Applies through `nft -j -f -` in a network namespace.
pub struct NsNft<'n>(pub &'n NetNs);

impl NsNft<'_> {
    fn run(&self, args: &[&str], document: &str) -> Result<(), ApplyError> {
        let output = self.0.exec_with_input("nft", args, document);
        if output.status.success() { Ok(()) } else { Err(ApplyError::rejected(String::from_utf8_lossy(&output.stderr))) }
    }
}

impl Nft for NsNft<'_> {
    fn apply(&self, document: &str) -> Result<(), ApplyError> {
        self.run(&["-j", "-f", "-"], document)
    }

    fn check(&self, document: &str) -> Result<(), ApplyError> {
        self.run(&["-c", "-j", "-f", "-"], document)
    }

    // Elements go as raw netlink from a thread inside the namespace, as the agent's do.
    fn supports_netlink(&self) -> bool {
        true
    }

    fn netlink(&self, transaction: &[u8]) -> Result<(), ApplyError> {
        let bytes = transaction.to_vec();
        self.0.enter(move || palisade_nft::netlink::transact(&bytes)).join().expect("the netlink thread")
    }

    fn object_names(&self, table: &str) -> Result<(Vec<String>, Vec<String>), ApplyError> {
        let table = table.to_string();
        self.0.enter(move || palisade_nft::netlink::object_names(&table)).join().expect("the netlink thread")
    }
}

/// A test bed with a pod namespace per endpoint of the cluster, at its addresses.
pub fn testbed_for(cluster: &Cluster) -> Testbed {
    let pods: Vec<palisade_testbed::PodSpec> = cluster.endpoints.iter().map(|e| palisade_testbed::PodSpec { name: e.display_name(), ips: e.ips.clone() }).collect();
    Testbed::new(&pods)
}

/// A cluster from a YAML stream; panics on invalid input.
pub fn cluster(yaml: &str) -> Cluster {
    load_text(yaml, &LoadOptions::default()).unwrap_or_else(|e| panic!("invalid test input: {e}")).cluster
}

/// Network namespaces standing for nodes, each holding what was last loaded into it.
pub struct Kernel {
    namespaces: Vec<NetNs>,
    loaded: RefCell<Vec<Option<(Ruleset, palisade_nft::Naming)>>>,
}

impl Kernel {
    pub fn new(nodes: usize) -> Self {
        Self { namespaces: (0..nodes).map(|_| NetNs::new("node")).collect(), loaded: RefCell::new(vec![None; nodes]) }
    }

    /// Loads `ruleset` into node `n` as an update of what it holds: the kernel must accept
    /// it without the dataplane falling back to a full replace, and hold exactly it.
    pub fn load(&self, n: usize, ruleset: &Ruleset) -> Result<(), String> {
        let ns = &self.namespaces[n];
        let mut loaded = self.loaded.borrow_mut();
        let mut dataplane = match loaded[n].take() {
            Some((previous, naming)) => Dataplane::resume(NsNft(ns), previous, naming, Vec::new()).stream_elements_above(0).build_in_pieces_of(5),
            None => Dataplane::new(NsNft(ns)).stream_elements_above(0).build_in_pieces_of(5),
        };
        let first = dataplane.applied().is_none();
        let report = dataplane.update(ruleset).map_err(|e| format!("the kernel refused the ruleset: {e}"))?;
        if !first && report.kind != ApplyKind::Incremental {
            return Err(format!("the incremental update was refused (the dataplane replaced the table): {report}"));
        }
        let listing = ns.exec("nft", &["list", "table", "inet", "palisade"]);
        let live = dataplane.live().expect("applied");
        if normalize_listing(&String::from_utf8_lossy(&listing.stdout)) != normalize_listing(&text::table(&live)) {
            return Err("the kernel does not hold the rendered table".to_string());
        }
        // The next case resumes from this one.
        loaded[n] = dataplane.state().map(|(r, naming)| (r.clone(), naming.clone()));
        Ok(())
    }
}
