//! `palisade agent`: flags (and the environment a DaemonSet gives) to the agent's config.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use palisade_nft::{DenyAction, NftBinary, RenderOptions, SystemNft};

#[derive(clap::Args, Debug)]
pub struct AgentArgs {
    /// This node's name, as the downward API gives it (`fieldRef: spec.nodeName`).
    #[arg(long, env = "NODE_NAME")]
    pub node_name: String,
    /// A kubeconfig; without it, the in-cluster ServiceAccount (or `$KUBECONFIG`).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// Where `/healthz`, `/readyz` and `/metrics` are served.
    #[arg(long, env = "PALISADE_LISTEN", default_value = "0.0.0.0:9099")]
    pub listen: SocketAddr,
    /// Where the CNI plugin announces new pods and waits for their rules (the network
    /// config's `agentSocket`).
    #[arg(long, env = "PALISADE_CNI_SOCKET", default_value = palisade_agent::install::AGENT_SOCKET)]
    pub cni_socket: PathBuf,
    /// Where the agent records what it applied, so that a restarted agent replaces the table
    /// next to the one it finds (blue/green) rather than deleting and creating it.
    #[arg(long, env = "PALISADE_STATE_FILE", default_value = "/run/palisade/agent-state.json")]
    pub state_file: PathBuf,
    /// A full replace of the table this often, repairing anything changed behind the agent.
    #[arg(long, env = "PALISADE_RESYNC_SECONDS", default_value_t = 90.0)]
    pub resync_seconds: f64,
    /// At most one sync per this many milliseconds; changes arriving meanwhile go together.
    #[arg(long, env = "PALISADE_MIN_SYNC_INTERVAL_MS", default_value_t = 10)]
    pub min_sync_interval_ms: u64,
    /// Readiness goes false once the API's watches have failed this long (the last state
    /// stays enforced).
    #[arg(long, env = "PALISADE_API_GRACE_SECONDS", default_value_t = 10.0)]
    pub api_grace_seconds: f64,
    /// What denied packets get: `reject` (TCP reset, ICMP prohibited) or `drop`.
    #[arg(long, env = "PALISADE_DENY_ACTION", default_value = "reject", value_parser = ["reject", "drop"])]
    pub deny_action: String,

    /// The packet-mark bits the agent owns (one run of contiguous bits; default as Calico's):
    /// a remote address's class is kept there while a chain decides. Bits outside it
    /// (kube-proxy's 0x4000 and 0x8000) are never changed.
    #[arg(long, env = "PALISADE_MARK_MASK", default_value = "0xffff0000", value_parser = crate::dataplane_cmd::parse_mark_mask)]
    pub mark_mask: u32,
    /// The most set and map elements this node's table may hold (0: no limit). A change
    /// that would need more is not applied: the node keeps enforcing its last table and
    /// says why (readiness, an Event on the Node, `palisade_apply_errors{reason="over_budget"}`)
    /// instead of outgrowing its memory limit. The default fits the 128 MiB the manifest
    /// grants (BENCHMARKS.md, "A node's table at scale").
    #[arg(long, env = "PALISADE_MAX_TABLE_ELEMENTS", default_value_t = 600_000)]
    pub max_table_elements: usize,
    /// How rulesets reach the kernel: `auto` (libnftables in process when
    /// `libnftables.so.1` loads, else the `nft` binary), or the name or path of an `nft`
    /// binary to run per transaction.
    #[arg(long, env = "PALISADE_NFT", default_value = "auto")]
    pub nft: String,
    /// Log lines as `text` or `json`.
    #[arg(long, env = "PALISADE_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,
}

fn seconds(value: f64, flag: &str) -> Result<Duration> {
    Duration::try_from_secs_f64(value).map_err(|_| anyhow::anyhow!("--{flag} must be a non-negative number of seconds, not {value}"))
}

pub fn run(args: &AgentArgs) -> Result<()> {
    let config = palisade_agent::AgentConfig {
        node: args.node_name.clone(),
        kubeconfig: args.kubeconfig.clone(),
        listen: args.listen,
        cni_socket: args.cni_socket.clone(),
        state_file: args.state_file.clone(),
        resync: seconds(args.resync_seconds, "resync-seconds")?,
        min_sync_interval: Duration::from_millis(args.min_sync_interval_ms),
        api_grace: seconds(args.api_grace_seconds, "api-grace-seconds")?,
        render: RenderOptions {
            deny_action: if args.deny_action == "drop" { DenyAction::Drop } else { DenyAction::Reject },
            mark_mask: args.mark_mask,
            max_elements: (args.max_table_elements > 0).then_some(args.max_table_elements),
            ..RenderOptions::default()
        },
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    runtime.block_on(async {
        let shutdown = async {
            let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        };
        let nft = match args.nft.as_str() {
            "auto" => SystemNft::detect(NftBinary::default()),
            binary => SystemNft::Binary(NftBinary { binary: binary.to_string() }),
        };
        palisade_agent::run(config, nft, shutdown).await
    })?;
    Ok(())
}

#[derive(clap::Args, Debug)]
pub struct InstallCniArgs {
    /// This node's name: its `spec.podCIDRs` become the config's ranges.
    #[arg(long, env = "NODE_NAME")]
    pub node_name: String,
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// The plugin to install (default: `palisade-cni` beside this program).
    #[arg(long)]
    pub cni_binary: Option<PathBuf>,
    /// Where the plugin goes (repeatable; created if missing).
    #[arg(long = "bin-dir", required = true)]
    pub bin_dirs: Vec<PathBuf>,
    /// Where the network config goes (repeatable; created if missing).
    #[arg(long = "conf-dir", required = true)]
    pub conf_dirs: Vec<PathBuf>,
    /// Directories used only if they exist (k3s keeps its own CNI directories:
    /// `/var/lib/rancher/k3s/data/cni`, `/var/lib/rancher/k3s/agent/etc/cni/net.d`).
    #[arg(long = "bin-dir-if-present")]
    pub optional_bin_dirs: Vec<PathBuf>,
    #[arg(long = "conf-dir-if-present")]
    pub optional_conf_dirs: Vec<PathBuf>,
}

pub fn install_cni(args: &InstallCniArgs) -> Result<()> {
    let binary = match &args.cni_binary {
        Some(path) => path.clone(),
        None => std::env::current_exe()?.with_file_name("palisade-cni"),
    };
    let existing = |dirs: &[PathBuf]| dirs.iter().filter(|d| d.is_dir()).cloned().collect::<Vec<_>>();
    let bin_dirs: Vec<PathBuf> = args.bin_dirs.iter().cloned().chain(existing(&args.optional_bin_dirs)).collect();
    let conf_dirs: Vec<PathBuf> = args.conf_dirs.iter().cloned().chain(existing(&args.optional_conf_dirs)).collect();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let cidrs = runtime.block_on(async {
        let client = palisade_agent::client(args.kubeconfig.as_deref()).await?;
        anyhow::Ok(palisade_agent::install::node_pod_cidrs(client, &args.node_name).await?)
    })?;
    palisade_agent::install::install(&binary, &cidrs, &bin_dirs, &conf_dirs)?;
    Ok(())
}
