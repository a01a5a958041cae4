//! `palisade lab`: a local lab behind its own Kubernetes API (see the palisade-lab crate).
//! Objects go through the API with real kubectl (`palisade lab kubectl ...` runs it against
//! the lab); these verbs are the lab's own life.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, Subcommand};
use palisade_lab::protocol::{Request, Response};
use palisade_lab::sandbox::{self, Sandbox};
use palisade_lab::{LabPaths, client, daemon};

#[derive(Args, Debug)]
pub struct LabArgs {
    /// Which lab (several can run side by side; each has its own namespaces and state).
    #[arg(long = "lab", env = "PALISADE_LAB", default_value = palisade_lab::paths::DEFAULT_LAB, global = true)]
    pub lab: String,

    #[command(subcommand)]
    pub verb: Verb,
}

#[derive(Subcommand, Debug)]
pub enum Verb {
    /// Start the lab (nodes, underlay, an outside host, its API server, cluster DNS), or
    /// restart it on the state of a daemon that died; prints the kubeconfig to use.
    Up {
        #[arg(long, default_value_t = 1)]
        nodes: u8,
    },
    /// Remove everything the lab made: processes, namespaces, tables, state.
    Down,
    /// Nodes, the API's address and the last dataplane sync.
    Status {
        /// First wait (at most this many seconds) until every change the API holds now is
        /// enforced on every node.
        #[arg(long, value_name = "SECONDS")]
        wait_synced: Option<f64>,
    },
    /// The path of the lab's kubeconfig (`export KUBECONFIG=$(palisade lab kubeconfig)`).
    Kubeconfig,
    /// Run kubectl against the lab: `palisade lab kubectl get pods -A`.
    Kubectl {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// The lab daemon's log (`-f` follows it).
    Logs {
        #[arg(short = 'f', long)]
        follow: bool,
    },
    /// The lab daemon (started by `up`).
    #[command(hide = true)]
    Daemon {
        #[arg(long, default_value_t = 1)]
        nodes: u8,
    },
    /// Enter a pod sandbox and exec a command (how the lab starts containers and execs).
    #[command(hide = true)]
    PodExec {
        #[arg(long)]
        netns: PathBuf,
        #[arg(long)]
        resolv_conf: PathBuf,
        #[arg(long)]
        hosts: PathBuf,
        #[arg(long)]
        hostname: String,
        #[arg(long)]
        secrets: Option<PathBuf>,
        /// `SOURCE:TARGET` bind mounts (hostPath volumes).
        #[arg(long = "mount", value_parser = parse_mount)]
        mounts: Vec<(PathBuf, PathBuf)>,
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// The cluster DNS server (the lab's kube-dns pod runs it).
    #[command(hide = true)]
    DnsServer {
        #[arg(long)]
        records: PathBuf,
    },
}

fn parse_mount(text: &str) -> Result<(PathBuf, PathBuf), String> {
    let (source, target) = text.split_once(':').ok_or_else(|| format!("{text:?}: expected SOURCE:TARGET"))?;
    Ok((PathBuf::from(source), PathBuf::from(target)))
}

/// The lab runs Palisade's image as this binary's directory: `palisade-cni` must sit beside
/// `palisade`, as in the image, for the DaemonSet's init container to install it.
fn check_image(exe: &std::path::Path) -> Result<()> {
    if exe.with_file_name("palisade-cni").is_file() {
        return Ok(());
    }
    Err(anyhow!("palisade-cni not found beside {}: the lab's Palisade image is this binary's directory (build both: cargo build -p palisade -p palisade-cni)", exe.display()))
}

/// What a clean-up removed, counted by kind ("12 processes, 14 network namespaces, state
/// /run/...") rather than listed: a lab of a thousand pods leaves thousands of each.
fn summary(removed: &[String]) -> String {
    let count = |prefix: &str| removed.iter().filter(|r| r.starts_with(prefix)).count();
    let mut parts = Vec::new();
    for (prefix, one, many) in [("process ", "process", "processes"), ("network namespace ", "network namespace", "network namespaces")] {
        match count(prefix) {
            0 => {}
            1 => parts.push(format!("1 {one}")),
            n => parts.push(format!("{n} {many}")),
        }
    }
    parts.extend(removed.iter().filter(|r| !r.starts_with("process ") && !r.starts_with("network namespace ")).cloned());
    parts.join(", ")
}

/// kubectl: `$PALISADE_KUBECTL`, the one `scripts/setup` installs, or the PATH's.
pub fn kubectl_binary() -> Result<PathBuf> {
    if let Ok(path) = std::env::var("PALISADE_KUBECTL") {
        return Ok(PathBuf::from(path));
    }
    let installed = PathBuf::from("/opt/palisade-tools/bin/kubectl");
    if installed.is_file() {
        return Ok(installed);
    }
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|dir| dir.join("kubectl"))
        .find(|p| p.is_file())
        .ok_or_else(|| anyhow!("kubectl not found: run scripts/setup (it installs kubectl into /opt/palisade-tools), or set PALISADE_KUBECTL"))
}

fn print(response: &Response) -> u8 {
    for line in &response.lines {
        println!("{line}");
    }
    match &response.error {
        Some(error) => {
            eprintln!("error: {error}");
            1
        }
        None => 0,
    }
}

/// Runs a verb; returns the exit status.
pub fn run(args: &LabArgs) -> Result<u8> {
    let paths = LabPaths::new(&args.lab)?;
    match &args.verb {
        Verb::Up { nodes } => {
            let exe = std::env::current_exe().context("locating the palisade binary")?;
            let status = Request::Status { wait_synced: None };
            let response = match client::try_request(&paths, &status)? {
                Some(response) => {
                    eprintln!("lab {:?} is already up (--nodes takes effect after `palisade lab down`)", paths.name);
                    response
                }
                None => {
                    client::start_daemon(&paths, &exe, *nodes)?;
                    client::try_request(&paths, &status)?.ok_or_else(|| anyhow!("the lab daemon stopped listening"))?
                }
            };
            let code = print(&response);
            println!("\nexport KUBECONFIG={}", paths.kubeconfig().display());
            Ok(code)
        }
        Verb::Down => match client::try_request(&paths, &Request::Down)? {
            Some(response) => {
                let code = print(&response);
                // Anything the daemon could not remove (or a stale socket) goes too.
                client::clean_up_without_daemon(&paths)?;
                Ok(code)
            }
            None => {
                let removed = client::clean_up_without_daemon(&paths)?;
                if removed.is_empty() {
                    println!("lab {:?} is not running; nothing to remove", paths.name);
                } else {
                    println!("lab {:?} had no daemon; removed {}", paths.name, summary(&removed));
                }
                Ok(0)
            }
        },
        Verb::Status { wait_synced } => match client::try_request(&paths, &Request::Status { wait_synced: *wait_synced })? {
            Some(response) => Ok(print(&response)),
            None => {
                println!("lab {:?} is not running (start it with `palisade lab up`)", paths.name);
                Ok(1)
            }
        },
        Verb::Kubeconfig => {
            let path = paths.kubeconfig();
            if !path.exists() {
                bail!("lab {:?} is not running (start it with `palisade lab up`)", paths.name);
            }
            println!("{}", path.display());
            Ok(0)
        }
        Verb::Kubectl { args } => {
            let path = paths.kubeconfig();
            if !path.exists() {
                bail!("lab {:?} is not running (start it with `palisade lab up`)", paths.name);
            }
            let kubectl = kubectl_binary()?;
            let error = std::process::Command::new(&kubectl).args(args).env("KUBECONFIG", &path).exec();
            Err(anyhow!("running {}: {error}", kubectl.display()))
        }
        Verb::Logs { follow } => {
            let log = paths.daemon_log();
            if *follow {
                let error = std::process::Command::new("tail").args(["-n", "+1", "-f"]).arg(&log).exec();
                return Err(anyhow!("running tail: {error}"));
            }
            print!("{}", std::fs::read_to_string(&log).with_context(|| format!("reading {}", log.display()))?);
            Ok(0)
        }
        Verb::Daemon { nodes } => {
            let self_exe = std::env::current_exe().context("locating the palisade binary")?;
            check_image(&self_exe)?;
            daemon::run(paths, *nodes, self_exe)?;
            Ok(0)
        }
        Verb::PodExec { netns, resolv_conf, hosts, hostname, secrets, mounts, command } => {
            let env: Vec<(String, String)> = std::env::vars().collect();
            let sandbox = Sandbox { netns: netns.clone(), resolv_conf: resolv_conf.clone(), hosts: hosts.clone(), hostname: hostname.clone(), secrets: secrets.clone(), env, mounts: mounts.clone() };
            exec_in(&sandbox, command)
        }
        Verb::DnsServer { records } => {
            palisade_lab::dns::serve(records)?;
            Ok(0)
        }
    }
}

/// Enters the sandbox and replaces this process with `command`; returns only on failure,
/// with the exit status a runtime gives (127: not found, 126: cannot run it).
fn exec_in(sandbox: &Sandbox, command: &[String]) -> Result<u8> {
    sandbox::enter(sandbox)?;
    let error = sandbox::exec(command, &sandbox.env);
    eprintln!("error: {error}");
    Ok(if error.to_string().contains("not found") { 127 } else { 126 })
}
