//! Where one lab keeps things: its state directory, socket, and the names of the network
//! namespaces it creates. Several labs can coexist (tests run one each) because every name
//! carries the lab's name.

use std::path::{Path, PathBuf};

use crate::error::LabError;

/// The default lab's name (`--lab`, `PALISADE_LAB`).
pub const DEFAULT_LAB: &str = "default";
/// Where labs keep their state: tmpfs, gone at reboot together with the namespaces.
pub const STATE_ROOT: &str = "/run/palisade/lab";

#[derive(Clone, Debug)]
pub struct LabPaths {
    pub name: String,
    pub state_dir: PathBuf,
}

impl LabPaths {
    /// A lab's paths; names are short lowercase words so namespace names stay readable.
    pub fn new(name: &str) -> Result<Self, LabError> {
        let valid = !name.is_empty() && name.len() <= 24 && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-') && !name.starts_with('-');
        if !valid {
            return Err(LabError::invalid(format!("lab name {name:?}: use 1 to 24 lowercase letters, digits or '-'")));
        }
        Ok(Self { name: name.to_string(), state_dir: Path::new(STATE_ROOT).join(name) })
    }

    pub fn socket(&self) -> PathBuf {
        self.state_dir.join("lab.sock")
    }

    pub fn daemon_log(&self) -> PathBuf {
        self.state_dir.join("daemon.log")
    }

    /// The admin's kubeconfig (mode 0600).
    pub fn kubeconfig(&self) -> PathBuf {
        self.state_dir.join("kubeconfig")
    }

    /// The API server's store, certificates and admin token.
    pub fn api_dir(&self) -> PathBuf {
        self.state_dir.join("api")
    }

    /// The loopback port the API server listens on (kept across daemon restarts).
    pub fn api_port_file(&self) -> PathBuf {
        self.state_dir.join("api-port")
    }

    /// Every namespace of this lab starts with this.
    pub fn netns_prefix(&self) -> String {
        format!("pal-{}-", self.name)
    }

    pub fn node_netns(&self, node: &str) -> String {
        format!("{}{node}", self.netns_prefix())
    }

    pub fn underlay_netns(&self) -> String {
        format!("{}underlay", self.netns_prefix())
    }

    pub fn outside_netns(&self) -> String {
        format!("{}outside", self.netns_prefix())
    }

    /// A pod sandbox's namespace, named after the pod's uid (names can be reused, uids not).
    pub fn pod_netns(&self, uid: &str) -> String {
        format!("{}pod-{}", self.netns_prefix(), &uid[..uid.len().min(13)])
    }

    /// A lab node's own filesystem: its hostPath volumes and the CNI directories its
    /// runtime reads live here, under the path they have on a real node.
    pub fn node_root(&self, node: &str) -> PathBuf {
        self.state_dir.join("nodes").join(node)
    }

    /// Where `path` (absolute, as on a real node) is on this machine for lab node `node`.
    pub fn node_path(&self, node: &str, path: &Path) -> PathBuf {
        self.node_root(node).join(path.strip_prefix("/").unwrap_or(path))
    }

    pub fn pod_dir(&self, uid: &str) -> PathBuf {
        self.state_dir.join("pods").join(uid)
    }

    /// The cluster DNS server's records, rewritten by the daemon on every change.
    pub fn dns_records(&self) -> PathBuf {
        self.state_dir.join("dns-records.json")
    }

    /// The marker every process the lab starts carries in its environment, so `down` (and
    /// tests) can tell the lab's processes from everything else.
    pub fn process_marker(&self) -> (String, String) {
        ("PALISADE_LAB_PROCESS".to_string(), self.name.clone())
    }
}
