//! `palisade-cni`: a CNI 1.1 plugin (spec 0.4.0 through 1.1.0) for routed veth pod
//! networking with its own IPAM. The runtime calls it with `CNI_*` variables and the network
//! config on stdin; results and errors are JSON on stdout, logs go to stderr.

mod agent;
mod commands;
mod config;
mod error;
mod ipam;
mod naming;
mod result;

use std::io::{Read, Write};
use std::process::ExitCode;

use commands::Env;
use config::SUPPORTED_VERSIONS;
use error::{CniError, Code};

fn env_var(name: &str) -> Result<String, CniError> {
    std::env::var(name).ok().filter(|v| !v.is_empty()).ok_or_else(|| CniError::new(Code::InvalidEnvironment, format!("{name} is required")))
}

fn invocation_env(require_netns: bool) -> Result<Env, CniError> {
    let container_id = env_var("CNI_CONTAINERID")?;
    if !container_id.chars().next().is_some_and(|c| c.is_ascii_alphanumeric()) || !container_id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')) {
        return Err(CniError::new(Code::InvalidEnvironment, format!("CNI_CONTAINERID {container_id:?} must start alphanumeric and contain only [A-Za-z0-9_.-]")));
    }
    let ifname = env_var("CNI_IFNAME")?;
    if ifname.len() > 15 || ifname.contains('/') || ifname.chars().any(char::is_whitespace) {
        return Err(CniError::new(Code::InvalidEnvironment, format!("CNI_IFNAME {ifname:?} is not a valid interface name (at most 15 characters, no '/' or spaces)")));
    }
    let netns = if require_netns { Some(env_var("CNI_NETNS")?) } else { std::env::var("CNI_NETNS").ok().filter(|v| !v.is_empty()) };
    Ok(Env { container_id, netns, ifname })
}

fn run(command: &str, stdin: &[u8]) -> Result<Option<String>, CniError> {
    match command {
        "VERSION" => {
            let version = serde_json::from_slice::<serde_json::Value>(stdin).ok().and_then(|v| v.get("cniVersion").and_then(|s| s.as_str()).map(str::to_string)).unwrap_or_else(|| "1.1.0".to_string());
            Ok(Some(serde_json::json!({"cniVersion": version, "supportedVersions": SUPPORTED_VERSIONS}).to_string()))
        }
        "ADD" => {
            let conf = config::parse(stdin)?;
            let env = invocation_env(true)?;
            let args = config::parse_args(&std::env::var("CNI_ARGS").unwrap_or_default());
            let pod = args.get("K8S_POD_NAMESPACE").zip(args.get("K8S_POD_NAME")).map(|(ns, name)| (ns.clone(), name.clone()));
            commands::add(&conf, &env, pod.as_ref()).map(|v| Some(v.to_string()))
        }
        "DEL" => {
            let conf = config::parse(stdin)?;
            let env = invocation_env(false)?;
            commands::del(&conf, &env).map(|()| None)
        }
        "CHECK" => {
            let conf = config::parse(stdin)?;
            let env = invocation_env(true)?;
            commands::check(&conf, &env).map(|()| None)
        }
        "STATUS" | "GC" => {
            let conf = config::parse(stdin)?;
            if conf.cni_version != "1.1.0" {
                return Err(CniError::new(Code::IncompatibleVersion, format!("{command} needs cniVersion 1.1.0 (the config says {})", conf.cni_version)));
            }
            if command == "STATUS" { commands::status(&conf) } else { commands::gc(&conf) }.map(|()| None)
        }
        "" => Err(CniError::new(Code::InvalidEnvironment, "CNI_COMMAND is required (ADD, DEL, CHECK, STATUS, GC or VERSION)")),
        other => Err(CniError::new(Code::InvalidEnvironment, format!("CNI_COMMAND {other:?} is not one of ADD, DEL, CHECK, STATUS, GC, VERSION"))),
    }
}

fn main() -> ExitCode {
    // Logs never go to stdout: stdout is the protocol.
    tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::try_from_env("PALISADE_CNI_LOG").unwrap_or_else(|_| "warn".into())).with_writer(std::io::stderr).init();
    let mut stdin = Vec::new();
    if let Err(e) = std::io::stdin().read_to_end(&mut stdin) {
        let error = CniError::new(Code::Io, format!("cannot read stdin: {e}"));
        println!("{}", error.to_json("1.1.0"));
        return ExitCode::FAILURE;
    }
    let command = std::env::var("CNI_COMMAND").unwrap_or_default();
    match run(&command, &stdin) {
        Ok(output) => {
            if let Some(output) = output {
                let _ = writeln!(std::io::stdout(), "{output}");
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            tracing::error!(command, %error, "failed");
            let _ = writeln!(std::io::stdout(), "{}", error.to_json(&config::peek_version(&stdin)));
            ExitCode::FAILURE
        }
    }
}
