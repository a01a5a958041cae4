//! `palisade`: one policy engine behind several faces. This binary is thin: it wires flags
//! to the library crates and turns outcomes into exit statuses.

mod agent_cmd;
mod check;
mod conformance;
mod dataplane_cmd;
mod endpoint_ref;
mod explain;
mod input;
mod lab_cmd;
mod matrix_cmd;

use std::process::ExitCode;

/// Loading manifests allocates many small strings; mimalloc halves the time glibc takes.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(name = "palisade", version, about = "Kubernetes NetworkPolicy: analysis and enforcement")]
struct Cli {
    /// More output: skipped objects, debug logs (-vv).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Can SRC reach DST on PORT, and why? Exit status: 0 allowed, 1 denied, 2 bad input.
    Check(check::CheckArgs),
    /// Reachability between every pair of endpoints (or, with --summary, of classes).
    Matrix(matrix_cmd::MatrixArgs),
    /// The nftables table a node enforces: print it or apply it.
    #[command(subcommand)]
    Dataplane(dataplane_cmd::DataplaneCommand),
    /// A local lab: nodes and pods as network namespaces, real processes and packets.
    Lab(lab_cmd::LabArgs),
    /// Answer TCP (HTTP too) and UDP on the given ports with the hostname (the lab's
    /// built-in server for agnhost-like images).
    Serve(ServeArgs),
    /// The NetworkPolicy conformance suite on real packets, against a fresh lab or any
    /// cluster (--kubeconfig): PASS/FAIL per case, truth tables for failures.
    Conformance(conformance::ConformanceArgs),
    /// One connection attempt from here, like agnhost connect: exit 0 connected, 1 refused
    /// or timed out, 3 protocol unsupported by this kernel.
    Probe(ProbeArgs),
    /// The node agent: watches a Kubernetes API, enforces NetworkPolicy on this node.
    Agent(agent_cmd::AgentArgs),
    /// Install palisade-cni and this node's network config (the DaemonSet's init container).
    InstallCni(agent_cmd::InstallCniArgs),
}

#[derive(clap::Args, Debug)]
struct ProbeArgs {
    /// tcp, udp or sctp.
    #[arg(long, default_value = "tcp")]
    protocol: String,
    /// How long to wait (`1s`, `500ms`, or seconds).
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    timeout: std::time::Duration,
    /// HOST:PORT (IPv6 as [ADDR]:PORT); HOST may be a name.
    target: String,
}

fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let (number, scale) = match text.strip_suffix("ms") {
        Some(n) => (n, 0.001),
        None => (text.strip_suffix('s').unwrap_or(text), 1.0),
    };
    number.parse::<f64>().ok().filter(|n| *n >= 0.0).map(|n| std::time::Duration::from_secs_f64(n * scale)).ok_or_else(|| format!("{text:?}: a duration such as 1s or 500ms"))
}

#[derive(clap::Args, Debug)]
struct ServeArgs {
    #[arg(long = "tcp", value_name = "PORT")]
    tcp: Vec<u16>,
    #[arg(long = "udp", value_name = "PORT")]
    udp: Vec<u16>,
    /// What to answer with (default: this host's name).
    #[arg(long)]
    hostname: Option<String>,
}

/// Exit status for input the command cannot work with.
const BAD_INPUT: u8 = 2;

fn main() -> ExitCode {
    // Transparent huge pages make the kernel zero 2 MB at every first touch, which was 40% of
    // a 500-pod `check` (perf). mimalloc is built with `no_thp` so it does not ask for them
    // (that also removed two 2 MB faults from every start); on hosts whose THP setting is
    // `always` this opt-out does the rest. A short-lived CLI touches far less than it would
    // zero (the flag is inherited by nothing the lab cares about: containers exec fresh
    // programs and the daemon's heap is small).
    let _ = nix::sys::prctl::set_thp_disable(true);
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            return if error.use_stderr() { ExitCode::from(BAD_INPUT) } else { ExitCode::SUCCESS };
        }
    };
    let level = match cli.verbose {
        0 | 1 => "warn",
        2 => "debug",
        _ => "trace",
    };
    // The agent is a daemon: its start, syncs' problems and recoveries are worth a line.
    let level = if matches!(cli.command, Command::Agent(_) | Command::InstallCni(_)) && cli.verbose < 2 { "info" } else { level };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| level.into());
    match &cli.command {
        Command::Agent(args) if args.log_format == "json" => tracing_subscriber::fmt().json().with_env_filter(filter).with_writer(std::io::stderr).init(),
        _ => tracing_subscriber::fmt().with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())).with_env_filter(filter).with_writer(std::io::stderr).init(),
    }

    let outcome = match &cli.command {
        Command::Check(args) => check::run(args, cli.verbose).map(|allowed| if allowed { 0 } else { 1 }),
        Command::Matrix(args) => matrix_cmd::run(args, cli.verbose).map(|()| 0),
        Command::Dataplane(command) => dataplane_cmd::run(command, cli.verbose).map(|()| 0),
        Command::Lab(args) => match lab_cmd::run(args) {
            Ok(code) => Ok(code),
            // kubectl's convention: errors exit 1.
            Err(error) => {
                eprintln!("error: {error:#}");
                return ExitCode::from(1);
            }
        },
        Command::Agent(args) => agent_cmd::run(args).map(|()| 0),
        Command::InstallCni(args) => agent_cmd::install_cni(args).map(|()| 0),
        Command::Probe(args) => probe(args),
        Command::Conformance(args) => conformance::run(args),
        Command::Serve(args) => {
            let hostname = args.hostname.clone().unwrap_or_else(nix_hostname);
            palisade_lab::serve::serve(&args.tcp, &args.udp, &hostname).map(|()| 0).map_err(anyhow::Error::from)
        }
    };
    match outcome {
        Ok(code) => ExitCode::from(code),
        // A reader that stops early (`| head`) is not an error.
        Err(error) if is_broken_pipe(&error) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(BAD_INPUT)
        }
    }
}

/// `palisade probe`: resolves the target, makes one attempt, prints the outcome's word.
fn probe(args: &ProbeArgs) -> anyhow::Result<u8> {
    use std::net::ToSocketAddrs;
    let target = args.target.to_socket_addrs().map_err(|e| anyhow::anyhow!("{}: {e} (expected HOST:PORT)", args.target))?.next().ok_or_else(|| anyhow::anyhow!("{}: no address", args.target))?;
    let (word, code) = palisade_lab::probe::probe(&args.protocol, target, args.timeout).report();
    println!("{word}");
    Ok(code)
}

fn nix_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_string()).unwrap_or_else(|_| "localhost".into())
}

fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| cause.downcast_ref::<std::io::Error>().is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe))
}
