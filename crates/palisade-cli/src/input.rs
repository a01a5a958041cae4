//! Flags shared by every command that reads manifests, and loading them.

use anyhow::{Result, bail};
use clap::Args;
use ipnet::IpNet;
use palisade_model::{LoadOptions, Loaded, Source};

#[derive(Args, Debug)]
pub struct InputArgs {
    /// Manifest files or directories (searched recursively for .yaml/.yml/.json).
    /// PATH@NAMESPACE puts the objects of PATH that name no namespace into NAMESPACE,
    /// like `kubectl apply -n NAMESPACE -f PATH`.
    #[arg(short = 'f', long = "filename", value_name = "PATH", required = true, num_args = 1..)]
    pub files: Vec<Source>,

    /// Namespace for objects that name none (and whose PATH has no @NAMESPACE).
    #[arg(short = 'n', long, default_value = "default")]
    pub namespace: String,

    /// CIDRs to give pods without any status.podIPs deterministic addresses from (one per
    /// family; repeat for dual-stack). Default: 10.244.0.0/16 and/or fd00:10:244::/64, for
    /// the families the pods' real addresses use (IPv4 when none has any).
    #[arg(long = "pod-cidr", value_name = "CIDR")]
    pub pod_cidrs: Vec<IpNet>,
}

/// Loads the input. Problems are printed (every one of them) and turn into an error;
/// warnings are printed; skipped objects only with `-v`.
pub fn load(args: &InputArgs, verbose: u8) -> Result<Loaded> {
    let options = LoadOptions { default_namespace: args.namespace.clone(), pod_cidrs: args.pod_cidrs.clone() };
    let loaded = match palisade_model::load(&args.files, &options) {
        Ok(loaded) => loaded,
        Err(error) => {
            for diagnostic in &error.0 {
                eprintln!("{diagnostic}");
            }
            bail!("{} problem(s) in the input; nothing was evaluated", error.0.len());
        }
    };
    for warning in &loaded.warnings {
        eprintln!("warning: {warning}");
    }
    if verbose > 0 {
        for skipped in &loaded.skipped {
            eprintln!("{skipped}");
        }
    }
    Ok(loaded)
}
