//! `palisade dataplane render|apply`: the nftables table a node enforces, printed or applied
//! in the current network namespace.

use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use palisade_model::Cluster;
use palisade_nft::{Dataplane, DenyAction, NftBinary, NodeState, RenderOptions, Ruleset, json, render, text};

use crate::input::{self, InputArgs};

#[derive(Subcommand, Debug)]
pub enum DataplaneCommand {
    /// Print the table (nft syntax, loadable with `nft -f`; or nft JSON).
    Render(RenderArgs),
    /// Apply the table in the current network namespace, in single transactions.
    Apply(ApplyArgs),
}

#[derive(Args, Debug)]
pub struct NodeArgs {
    #[command(flatten)]
    pub input: InputArgs,

    /// Enforce for the pods of this node (`spec.nodeName`). Without it, every pod is local.
    #[arg(long)]
    pub node: Option<String>,

    /// What a denied new connection gets: `reject` (TCP reset, ICMP admin-prohibited) or `drop`.
    #[arg(long, value_enum, default_value = "reject")]
    pub deny_action: DenyArg,

    /// The nftables table (family inet) Palisade owns.
    #[arg(long, default_value = "palisade")]
    pub table: String,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum DenyArg {
    Reject,
    Drop,
}

#[derive(Args, Debug)]
pub struct RenderArgs {
    #[command(flatten)]
    pub node: NodeArgs,

    #[arg(short = 'o', long = "output", value_enum, default_value = "nft")]
    pub output: RenderOutput,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum RenderOutput {
    Nft,
    Json,
}

#[derive(Args, Debug)]
pub struct ApplyArgs {
    #[command(flatten)]
    pub node: NodeArgs,

    /// Where the last applied state of each network namespace is kept.
    #[arg(long, default_value = "/run/palisade/dataplane")]
    pub state_dir: PathBuf,
}

/// ClusterNetworkPolicy peers the dataplane cannot enforce (`domainNames`) are refused
/// rather than rendered as matching nothing without a word.
fn refuse_unenforceable(cluster: &Cluster) -> anyhow::Result<()> {
    let found = palisade_nft::unenforceable(cluster);
    if found.is_empty() {
        return Ok(());
    }
    let lines: Vec<String> = found.iter().map(ToString::to_string).collect();
    Err(anyhow::anyhow!("{}", lines.join("\n")))
}

fn desired(args: &NodeArgs, cluster: &Cluster) -> Ruleset {
    let local = (0..cluster.endpoints.len()).filter(|&i| args.node.as_ref().is_none_or(|node| cluster.endpoints[i].node.as_ref() == Some(node))).collect();
    let deny_action = match args.deny_action {
        DenyArg::Reject => DenyAction::Reject,
        DenyArg::Drop => DenyAction::Drop,
    };
    render(&NodeState { cluster, local, options: RenderOptions { table: args.table.clone(), deny_action, ..RenderOptions::default() } })
}

pub fn run(command: &DataplaneCommand, verbose: u8) -> Result<()> {
    match command {
        DataplaneCommand::Render(args) => {
            let loaded = input::load(&args.node.input, verbose)?;
            refuse_unenforceable(&loaded.cluster)?;
            let ruleset = desired(&args.node, &loaded.cluster);
            let out = match args.output {
                RenderOutput::Nft => text::replace_script(&ruleset),
                RenderOutput::Json => json::document(&json::replace_commands(&ruleset)) + "\n",
            };
            std::io::stdout().write_all(out.as_bytes())?;
            Ok(())
        }
        DataplaneCommand::Apply(args) => apply(args, verbose),
    }
}

fn apply(args: &ApplyArgs, verbose: u8) -> Result<()> {
    let loaded = input::load(&args.node.input, verbose)?;
    refuse_unenforceable(&loaded.cluster)?;
    let ruleset = desired(&args.node, &loaded.cluster);
    // Namespaces are told apart by the inode of their namespace file.
    let netns = std::fs::metadata("/proc/self/ns/net").context("reading /proc/self/ns/net")?.ino();
    let state_file = args.state_dir.join(format!("{}-netns{netns}.json", args.node.table));
    let nft = NftBinary::default();
    let mut dataplane = match palisade_nft::state_file::load(&state_file) {
        Some((ruleset, naming, cleanup)) => Dataplane::resume(nft, ruleset, naming, cleanup),
        None => Dataplane::new(nft),
    };
    let report = dataplane.replace(&ruleset).context("applying the table")?;
    if let Some((ruleset, naming)) = dataplane.state() {
        palisade_nft::state_file::save(&state_file, ruleset, naming, dataplane.pending_cleanup()).with_context(|| format!("writing {}", state_file.display()))?;
    }
    println!("table inet {}: {report}", args.node.table);
    println!("now {} sets and maps ({} elements), {} chains ({} rules)", ruleset.sets.len() + ruleset.maps.len(), ruleset.element_count(), ruleset.chains.len(), ruleset.rule_count());
    Ok(())
}
