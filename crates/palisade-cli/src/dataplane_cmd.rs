//! `palisade dataplane render|apply`: the nftables table a node enforces, printed or applied
//! in the current network namespace.

use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use palisade_model::Cluster;
use palisade_nft::{Dataplane, DenyAction, NftBinary, NodeState, RenderOptions, Ruleset, json, text, try_render};

use crate::input::{self, InputArgs};

#[derive(Subcommand, Debug)]
pub enum DataplaneCommand {
    /// Print the table (nft syntax, loadable with `nft -f`; or nft JSON).
    Render(RenderArgs),
    /// Apply the table in the current network namespace, in single transactions.
    Apply(ApplyArgs),
    /// What the table holds (elements by kind, classes) beside the class bound.
    Stats(StatsArgs),
}

#[derive(Args, Debug)]
pub struct StatsArgs {
    #[command(flatten)]
    pub node: NodeArgs,
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

    /// The packet-mark bits Palisade owns (one run of contiguous bits): the class of a
    /// remote address is kept there while a chain decides.
    #[arg(long, default_value = "0xffff0000", value_parser = parse_mark_mask)]
    pub mark_mask: u32,

    /// Refuse to build a table of more set and map elements than this (none by default).
    #[arg(long)]
    pub max_table_elements: Option<usize>,
}

/// A mark mask in hex (`0xffff0000`) or decimal, one run of contiguous bits.
pub fn parse_mark_mask(text: &str) -> Result<u32, String> {
    let value = match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => u32::from_str_radix(hex, 16),
        None => text.parse(),
    }
    .map_err(|e| format!("{text:?} is not a 32-bit number ({e})"))?;
    palisade_nft::MarkBits::new(value).map(|_| value)
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

fn desired(args: &NodeArgs, cluster: &Cluster) -> Result<Ruleset> {
    let local = (0..cluster.endpoints.len()).filter(|&i| args.node.as_ref().is_none_or(|node| cluster.endpoints[i].node.as_ref() == Some(node))).collect();
    let deny_action = match args.deny_action {
        DenyArg::Reject => DenyAction::Reject,
        DenyArg::Drop => DenyAction::Drop,
    };
    let options = RenderOptions { table: args.table.clone(), deny_action, mark_mask: args.mark_mask, max_elements: args.max_table_elements };
    Ok(try_render(&NodeState { cluster, local, options }, None)?.ruleset)
}

pub fn run(command: &DataplaneCommand, verbose: u8) -> Result<()> {
    match command {
        DataplaneCommand::Render(args) => {
            let loaded = input::load(&args.node.input, verbose)?;
            refuse_unenforceable(&loaded.cluster)?;
            let ruleset = desired(&args.node, &loaded.cluster)?;
            let out = match args.output {
                RenderOutput::Nft => text::replace_script(&ruleset),
                RenderOutput::Json => json::document(&json::replace_commands(&ruleset)) + "\n",
            };
            std::io::stdout().write_all(out.as_bytes())?;
            Ok(())
        }
        DataplaneCommand::Apply(args) => apply(args, verbose),
        DataplaneCommand::Stats(args) => stats(args, verbose),
    }
}

/// The kind of a set or map, from the name the renderer gives it.
fn kind_of(name: &str) -> &'static str {
    const KINDS: [(&str, &str); 9] = [
        ("peer_", "peer sets (classes a pod peer matches)"),
        ("named_", "named-port sets (class, protocol, number)"),
        ("class_addr_", "address -> class (pods, nodes)"),
        ("class_net_", "address -> class (regions)"),
        ("block_", "ipBlock sets (addresses)"),
        ("svc_", "service sets (protocol, ports)"),
        ("admin_", "Admin tier maps"),
        ("baseline_", "Baseline tier maps"),
        ("gress_pods_", "local pod dispatch"),
    ];
    KINDS.iter().find(|(prefix, _)| name.starts_with(prefix) || name.contains(prefix)).map_or("other", |(_, kind)| kind)
}

fn stats(args: &StatsArgs, verbose: u8) -> Result<()> {
    let loaded = input::load(&args.node.input, verbose)?;
    refuse_unenforceable(&loaded.cluster)?;
    let cluster = &loaded.cluster;
    let started = std::time::Instant::now();
    let ruleset = desired(&args.node, cluster)?;
    let render_time = started.elapsed();
    let mut by_kind: std::collections::BTreeMap<&str, (usize, usize)> = Default::default();
    for (name, elements) in ruleset.sets.iter().map(|s| (&s.name, s.elements.len())).chain(ruleset.maps.iter().map(|m| (&m.name, m.elements.len()))) {
        let entry = by_kind.entry(kind_of(name)).or_default();
        entry.0 += 1;
        entry.1 += elements;
    }
    let local = cluster.endpoints.iter().filter(|e| args.node.node.as_ref().is_none_or(|node| e.node.as_ref() == Some(node))).count();
    let node = args.node.node.as_deref().unwrap_or("every node");
    println!("{node}: {local} local pods of {}, {} NetworkPolicies, {} ClusterNetworkPolicies", cluster.endpoints.len(), cluster.policies.len(), cluster.cluster_policies.len());
    let classes = ruleset.chains.iter().filter(|c| c.name.starts_with("cls_")).count();
    println!(
        "table: {} elements in {} sets and maps, {} rules in {} chains; {classes} remote-address classes; rendered in {:.0} ms",
        ruleset.element_count(),
        ruleset.sets.len() + ruleset.maps.len(),
        ruleset.rule_count(),
        ruleset.chains.len(),
        render_time.as_secs_f64() * 1000.0
    );
    for (kind, (count, elements)) in &by_kind {
        println!("  {elements:>9} in {count:>5} {kind}");
    }
    let bound = palisade_nft::class_bound(cluster);
    println!(
        "class bound (every NetworkPolicy's pod peers, cluster-wide): {} distinct peers match {} pod addresses in {} classes; the bound is {} (peer sets here: {})",
        bound.selectors,
        bound.addresses,
        bound.classes,
        bound.bound,
        by_kind.get(kind_of("peer_")).map_or(0, |k| k.1)
    );
    println!("table / bound: {:.2}", ruleset.element_count() as f64 / bound.bound.max(1) as f64);
    Ok(())
}

fn apply(args: &ApplyArgs, verbose: u8) -> Result<()> {
    let loaded = input::load(&args.node.input, verbose)?;
    refuse_unenforceable(&loaded.cluster)?;
    let ruleset = desired(&args.node, &loaded.cluster)?;
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
