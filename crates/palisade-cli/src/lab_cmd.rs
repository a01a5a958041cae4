//! `palisade lab`: kubectl-shaped verbs on a local lab (see the palisade-lab crate). Each
//! verb is one request to the lab daemon, which is started when it is not running.

use std::path::PathBuf;

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, Subcommand};
use palisade_lab::format::{Output, format};
use palisade_lab::protocol::{Request, Response, Target};
use palisade_lab::runtime::RuntimeConfig;
use palisade_lab::sandbox::{self, Sandbox};
use palisade_lab::{LabPaths, client, daemon, kinds};

use crate::lab_manifests;

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
    /// Start the lab: nodes, underlay, an outside host, cluster DNS.
    Up {
        #[arg(long, default_value_t = 1)]
        nodes: u8,
    },
    /// Remove everything the lab made: processes, namespaces, tables, state.
    Down,
    /// Nodes, pods, services, policies and the last dataplane sync.
    Status,
    /// Create a namespace: `lab create ns NAME`.
    Create {
        /// `ns` or `namespace`.
        resource: String,
        name: String,
    },
    /// Create or update objects from files or directories; returns once they are running
    /// and enforced.
    Apply {
        #[arg(short = 'f', long = "filename", required = true, num_args = 1..)]
        files: Vec<PathBuf>,
        #[arg(short = 'n', long)]
        namespace: Option<String>,
    },
    /// Delete objects: `-f FILE` or `KIND NAME...`.
    Delete {
        #[arg(short = 'f', long = "filename", num_args = 1..)]
        files: Vec<PathBuf>,
        /// KIND NAME [NAME...] (or KIND/NAME...).
        args: Vec<String>,
        #[arg(short = 'n', long)]
        namespace: Option<String>,
        #[arg(long)]
        ignore_not_found: bool,
    },
    /// List or show objects.
    Get {
        /// pods, deployments (deploy), services (svc), networkpolicies (netpol), namespaces
        /// (ns), replicasets (rs), statefulsets (sts), daemonsets (ds), jobs, nodes.
        resource: String,
        name: Option<String>,
        #[arg(short = 'n', long)]
        namespace: Option<String>,
        #[arg(short = 'A', long)]
        all_namespaces: bool,
        /// wide, json, yaml, name, jsonpath=TEMPLATE.
        #[arg(short = 'o', long, default_value = "")]
        output: String,
    },
    /// Add, change (--overwrite) or remove (`key-`) labels.
    Label {
        resource: String,
        name: String,
        /// key=value to set, key- to remove.
        #[arg(required = true)]
        labels: Vec<String>,
        #[arg(short = 'n', long)]
        namespace: Option<String>,
        #[arg(long)]
        overwrite: bool,
    },
    /// Run a command in a pod's container: `lab exec -n NS POD|deploy/NAME [-c C] -- CMD...`.
    Exec {
        #[arg(short = 'n', long)]
        namespace: Option<String>,
        #[arg(short = 'c', long)]
        container: Option<String>,
        /// The pod, or TYPE/NAME of a workload (its first running pod).
        target: String,
        /// Words between the target and `--` are ignored, as kubectl ignores them
        /// (`kubectl exec deploy/curl sh -- curl ...` in the seed).
        #[arg(hide = true)]
        ignored: Vec<String>,
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// The lab daemon (started by the other verbs).
    #[command(hide = true)]
    Daemon {
        #[arg(long, default_value_t = 1)]
        nodes: u8,
    },
    /// Enter a pod sandbox and exec a command (how the lab starts containers).
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

/// The `palisade-cni` binary: `$PALISADE_CNI`, beside this binary, or the CNI directory.
fn cni_binary() -> Result<PathBuf> {
    if let Ok(path) = std::env::var("PALISADE_CNI") {
        return Ok(PathBuf::from(path));
    }
    let exe = std::env::current_exe().context("locating the palisade binary")?;
    let candidates = [exe.with_file_name("palisade-cni"), PathBuf::from("/opt/cni/bin/palisade-cni")];
    candidates.into_iter().find(|p| p.is_file()).ok_or_else(|| anyhow!("palisade-cni not found beside {} or in /opt/cni/bin (build it: cargo build -p palisade-cni, or set PALISADE_CNI)", exe.display()))
}

fn print(response: &Response) -> u8 {
    for line in &response.lines {
        println!("{line}");
    }
    for line in &response.warnings {
        eprintln!("{line}");
    }
    match &response.error {
        Some(error) if response.warnings.is_empty() => {
            if error.starts_with("Error from server") || error.starts_with("error:") { eprintln!("{error}") } else { eprintln!("error: {error}") }
            1
        }
        Some(_) => 1,
        None => 0,
    }
}

fn call(paths: &LabPaths, request: &Request) -> Result<Response> {
    let exe = std::env::current_exe().context("locating the palisade binary")?;
    Ok(client::request(paths, &exe, request, 1)?)
}

fn namespace_of(namespace: &Option<String>) -> String {
    namespace.clone().unwrap_or_else(|| "default".to_string())
}

fn resolve_kind(resource: &str) -> Result<&'static kinds::KindInfo> {
    kinds::resolve(resource).ok_or_else(|| anyhow!("the server doesn't have a resource type {resource:?} (the lab serves {})", kinds::known_resources()))
}

/// `KIND NAME...` or `KIND/NAME...` into targets.
fn targets(args: &[String], namespace: &str) -> Result<Vec<Target>> {
    let target = |kind: &kinds::KindInfo, name: &str| Target { kind: kind.kind.to_string(), namespace: if kind.namespaced { namespace.to_string() } else { String::new() }, name: name.to_string() };
    if args.iter().all(|a| a.contains('/')) {
        return args
            .iter()
            .map(|a| {
                let (resource, name) = a.split_once('/').expect("checked");
                Ok(target(resolve_kind(resource)?, name))
            })
            .collect();
    }
    let Some((resource, names)) = args.split_first() else { bail!("give -f FILE, or KIND NAME...") };
    if names.is_empty() {
        bail!("resource(s) were provided, but no name was specified");
    }
    let kind = resolve_kind(resource)?;
    Ok(names.iter().map(|n| target(kind, n)).collect())
}

/// Labels to set and label keys to remove.
type LabelChanges = (Vec<(String, String)>, Vec<String>);

fn parse_labels(labels: &[String]) -> Result<LabelChanges> {
    let (mut set, mut remove) = (Vec::new(), Vec::new());
    for label in labels {
        if let Some((k, v)) = label.split_once('=') {
            set.push((k.to_string(), v.to_string()));
        } else if let Some(k) = label.strip_suffix('-') {
            remove.push(k.to_string());
        } else {
            bail!("invalid label spec {label:?}: use key=value to set, key- to remove");
        }
    }
    Ok((set, remove))
}

/// Runs a verb; returns the exit status (kubectl's: 0, or 1 on errors).
pub fn run(args: &LabArgs) -> Result<u8> {
    let paths = LabPaths::new(&args.lab)?;
    match &args.verb {
        Verb::Up { nodes } => {
            let exe = std::env::current_exe().context("locating the palisade binary")?;
            let request = Request::Up { nodes: *nodes };
            let response = match client::try_request(&paths, &request)? {
                Some(response) => response,
                None => {
                    client::start_daemon(&paths, &exe, *nodes)?;
                    client::try_request(&paths, &request)?.ok_or_else(|| anyhow!("the lab daemon stopped listening"))?
                }
            };
            Ok(print(&response))
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
                    println!("lab {:?} had no daemon; removed {}", paths.name, removed.join(", "));
                }
                Ok(0)
            }
        },
        Verb::Status => match client::try_request(&paths, &Request::Status)? {
            Some(response) => Ok(print(&response)),
            None => {
                println!("lab {:?} is not running (start it with `palisade lab up`)", paths.name);
                Ok(0)
            }
        },
        Verb::Create { resource, name } => {
            let kind = resolve_kind(resource)?;
            if kind.kind != "Namespace" {
                bail!("`lab create` makes namespaces (lab create ns NAME); use `lab apply -f` for {}", kind.plural);
            }
            let existing = call(&paths, &Request::Get { kind: "Namespace".into(), name: Some(name.clone()), namespace: None })?;
            if existing.error.is_none() {
                return Ok(print(&Response::error(format!("Error from server (AlreadyExists): namespaces {name:?} already exists"))));
            }
            let object = serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
            let mut response = call(&paths, &Request::Apply { objects: vec![(object, "create".into())] })?;
            // kubectl create prints only the object line.
            response.lines.retain(|l| l.starts_with("namespace/"));
            Ok(print(&response))
        }
        Verb::Apply { files, namespace } => {
            let objects = lab_manifests::read(files, namespace.as_deref())?;
            Ok(print(&call(&paths, &Request::Apply { objects })?))
        }
        Verb::Delete { files, args, namespace, ignore_not_found } => {
            let ns = namespace_of(namespace);
            let targets = if files.is_empty() {
                targets(args, &ns)?
            } else {
                lab_manifests::read(files, namespace.as_deref())?
                    .into_iter()
                    .map(|(o, _)| Target {
                        kind: o["kind"].as_str().unwrap_or_default().to_string(),
                        namespace: o["metadata"]["namespace"].as_str().unwrap_or_default().to_string(),
                        name: o["metadata"]["name"].as_str().unwrap_or_default().to_string(),
                    })
                    .collect()
            };
            Ok(print(&call(&paths, &Request::Delete { targets, ignore_not_found: *ignore_not_found })?))
        }
        Verb::Get { resource, name, namespace, all_namespaces, output } => {
            let output: Output = output.parse()?;
            let kind = resolve_kind(resource)?;
            let ns = namespace_of(namespace);
            let scope = if *all_namespaces || !kind.namespaced { None } else { Some(ns.clone()) };
            let response = call(&paths, &Request::Get { kind: kind.kind.to_string(), name: name.clone(), namespace: scope.clone() })?;
            if response.error.is_some() {
                return Ok(print(&response));
            }
            if response.objects.is_empty() && matches!(output, Output::Table | Output::Wide) {
                match scope {
                    Some(ns) => eprintln!("No resources found in {ns} namespace."),
                    None => eprintln!("No resources found"),
                }
                return Ok(0);
            }
            let all = *all_namespaces && kind.namespaced;
            print!("{}", format(kind.kind, &response.objects, &output, name.is_some(), all)?);
            Ok(0)
        }
        Verb::Label { resource, name, labels, namespace, overwrite } => {
            let kind = resolve_kind(resource)?;
            let (set, remove) = parse_labels(labels)?;
            let target = targets(&[kind.plural.to_string(), name.clone()], &namespace_of(namespace))?.remove(0);
            Ok(print(&call(&paths, &Request::Label { target, set, remove, overwrite: *overwrite })?))
        }
        Verb::Exec { namespace, container, target, command, .. } => {
            let response = call(&paths, &Request::Exec { namespace: namespace_of(namespace), target: target.clone(), container: container.clone() })?;
            let Some(sandbox) = response.sandbox.clone() else { return Ok(print(&response)) };
            exec_in(&sandbox, command)
        }
        Verb::Daemon { nodes } => {
            let self_exe = std::env::current_exe().context("locating the palisade binary")?;
            let config = RuntimeConfig { paths: paths.clone(), cni_binary: cni_binary()?, self_exe };
            daemon::run(paths, *nodes, config)?;
            Ok(0)
        }
        Verb::PodExec { netns, resolv_conf, hosts, hostname, command } => {
            let env: Vec<(String, String)> = std::env::vars().collect();
            let sandbox = Sandbox { netns: netns.clone(), resolv_conf: resolv_conf.clone(), hosts: hosts.clone(), hostname: hostname.clone(), env };
            exec_in(&sandbox, command)
        }
        Verb::DnsServer { records } => {
            palisade_lab::dns::serve(records)?;
            Ok(0)
        }
    }
}

/// Enters the sandbox and replaces this process with `command`; returns only on failure,
/// with the exit status a runtime gives (126: cannot run it).
fn exec_in(sandbox: &Sandbox, command: &[String]) -> Result<u8> {
    sandbox::enter(sandbox)?;
    let error = sandbox::exec(command, &sandbox.env);
    eprintln!("error: {error}");
    eprintln!("command terminated with exit code 126");
    Ok(126)
}
