//! The DaemonSet's init container: installs `palisade-cni` and this node's network config
//! into the node's CNI directories, as Calico's and Cilium's install steps do. The config's
//! address ranges are this node's `spec.podCIDRs`, so every node allocates from its own.
//! Each file is written under a temporary name and renamed: a runtime reading the directory
//! sees the old file or the new one, never half of one.

use std::path::{Path, PathBuf};

use ipnet::IpNet;
use k8s_openapi::api::core::v1::Node;

/// The network config's file name: `10-` sorts it before most others, as the runtime takes
/// the first config in name order.
pub const CONFLIST_NAME: &str = "10-palisade.conflist";

/// Where the agent listens for the CNI plugin's announcements (`/run/palisade` is a hostPath
/// of the DaemonSet, so the plugin, run by the runtime on the host, finds it).
pub const AGENT_SOCKET: &str = "/run/palisade/agent.sock";

#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("cannot read node {node} from the API: {message}")]
    Node { node: String, message: String },
    #[error("node {0} has no spec.podCIDRs: the controller manager must allocate node CIDRs (kubeadm init --pod-network-cidr, k3s --cluster-cidr)")]
    NoPodCidrs(String),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

/// The CNI 1.1 network config list for a node with these pod CIDRs.
pub fn conflist(pod_cidrs: &[IpNet], mtu: u32) -> serde_json::Value {
    let ranges: Vec<String> = pod_cidrs.iter().map(ToString::to_string).collect();
    serde_json::json!({
        "cniVersion": "1.1.0",
        "name": "palisade",
        "plugins": [{"type": "palisade-cni", "ipam": {"ranges": ranges}, "mtu": mtu, "agentSocket": AGENT_SOCKET}],
    })
}

/// The node's pod CIDRs (`spec.podCIDRs`, or the older single `spec.podCIDR`).
pub fn pod_cidrs(node: &Node) -> Vec<IpNet> {
    let spec = node.spec.clone().unwrap_or_default();
    let listed = spec.pod_cidrs.filter(|c| !c.is_empty()).or_else(|| spec.pod_cidr.map(|c| vec![c])).unwrap_or_default();
    listed.iter().filter_map(|c| c.parse().ok()).collect()
}

/// Writes `content` to `dir/name` atomically (mode `mode`).
fn install_file(dir: &Path, name: &str, content: &[u8], mode: u32) -> Result<(), InstallError> {
    use std::os::unix::fs::PermissionsExt;
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| InstallError::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let temporary = dir.join(format!(".{name}.palisade-tmp"));
    std::fs::write(&temporary, content).map_err(io(&temporary))?;
    std::fs::set_permissions(&temporary, std::fs::Permissions::from_mode(mode)).map_err(io(&temporary))?;
    let target = dir.join(name);
    std::fs::rename(&temporary, &target).map_err(io(&target))
}

/// Installs the plugin binary into every `bin_dirs` and the config into every `conf_dirs`.
pub fn install(cni_binary: &Path, pod_cidrs: &[IpNet], bin_dirs: &[PathBuf], conf_dirs: &[PathBuf]) -> Result<(), InstallError> {
    let binary = std::fs::read(cni_binary).map_err(|source| InstallError::Io { path: cni_binary.to_path_buf(), source })?;
    for dir in bin_dirs {
        install_file(dir, "palisade-cni", &binary, 0o755)?;
        tracing::info!(dir = %dir.display(), "installed palisade-cni");
    }
    let config = serde_json::to_vec_pretty(&conflist(pod_cidrs, 1500)).expect("JSON serializes");
    for dir in conf_dirs {
        install_file(dir, CONFLIST_NAME, &config, 0o644)?;
        tracing::info!(dir = %dir.display(), ranges = ?pod_cidrs, "installed the network config");
    }
    Ok(())
}

/// Reads this node's pod CIDRs from the API.
pub async fn node_pod_cidrs(client: kube::Client, node: &str) -> Result<Vec<IpNet>, InstallError> {
    let nodes: kube::Api<Node> = kube::Api::all(client);
    let object = nodes.get(node).await.map_err(|e| InstallError::Node { node: node.to_string(), message: e.to_string() })?;
    let cidrs = pod_cidrs(&object);
    if cidrs.is_empty() {
        return Err(InstallError::NoPodCidrs(node.to_string()));
    }
    Ok(cidrs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_takes_the_nodes_ranges_and_the_files_replace_old_ones() {
        let node: Node = serde_json::from_value(serde_json::json!({"metadata": {"name": "n1"}, "spec": {"podCIDR": "10.244.4.0/22", "podCIDRs": ["10.244.4.0/22", "fd00:10:244:4::/64"]}})).unwrap();
        let cidrs = pod_cidrs(&node);
        assert_eq!(cidrs.len(), 2);
        let dir = tempfile::tempdir().unwrap();
        let binary = dir.path().join("source");
        std::fs::write(&binary, b"#!/bin/true\n").unwrap();
        let (bin, conf) = (dir.path().join("bin"), dir.path().join("net.d"));
        std::fs::create_dir_all(&conf).unwrap();
        std::fs::write(conf.join(CONFLIST_NAME), "old").unwrap();
        install(&binary, &cidrs, std::slice::from_ref(&bin), std::slice::from_ref(&conf)).unwrap();
        let written: serde_json::Value = serde_json::from_slice(&std::fs::read(conf.join(CONFLIST_NAME)).unwrap()).unwrap();
        assert_eq!(written["plugins"][0]["ipam"]["ranges"], serde_json::json!(["10.244.4.0/22", "fd00:10:244:4::/64"]));
        assert_eq!(std::fs::read(bin.join("palisade-cni")).unwrap(), b"#!/bin/true\n");
        // No temporary file is left behind.
        assert_eq!(std::fs::read_dir(&conf).unwrap().count(), 1);
    }
}
