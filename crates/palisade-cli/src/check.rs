//! `palisade check`: can SRC reach DST on PORT, and why.

use std::io::Write;
use std::net::IpAddr;

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, ValueEnum};
use palisade_model::{Cluster, Protocol};
use palisade_policy::service::{ServiceError, backends};
use palisade_policy::{Flow, FlowEnd, Verdict, verdict};
use serde::Serialize;

use crate::endpoint_ref::{Target, resolve};
use crate::explain::{explain, port_text};
use crate::input::{self, InputArgs};

#[derive(Args, Debug)]
pub struct CheckArgs {
    #[command(flatten)]
    pub input: InputArgs,

    /// Source: NAMESPACE/NAME (pod or workload), NAMESPACE/KIND/NAME or an IP address.
    #[arg(long, value_name = "SRC", required_unless_present = "flows")]
    pub from: Option<String>,

    /// Destination: NAMESPACE/NAME, NAMESPACE/KIND/NAME (svc for a Service) or an IP address.
    #[arg(long, value_name = "DST", required_unless_present = "flows")]
    pub to: Option<String>,

    /// Destination port: a number or a port name. For a Service, its port (number or name).
    #[arg(long, required_unless_present = "flows")]
    pub port: Option<String>,

    /// Check many flows with one load: a file with one flow per line,
    /// `SRC DST PORT [PROTOCOL]` (`-` for standard input; `#` starts a comment).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["from", "to", "port", "protocol"])]
    pub flows: Option<String>,

    /// TCP, UDP or SCTP (default TCP, or the protocol of the named port).
    #[arg(long, value_parser = parse_protocol)]
    pub protocol: Option<Protocol>,

    #[arg(short = 'o', long = "output", value_enum, default_value = "text")]
    pub output: CheckOutput,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum CheckOutput {
    Text,
    Json,
}

pub fn parse_protocol(text: &str) -> Result<Protocol, String> {
    text.parse()
}

#[derive(Serialize)]
struct JudgedFlow {
    from: String,
    to: String,
    port: u16,
    protocol: Protocol,
    #[serde(flatten)]
    verdict: Verdict,
}

#[derive(Serialize)]
struct CheckReport {
    from: String,
    to: String,
    port: String,
    allowed: bool,
    flows: Vec<JudgedFlow>,
}

/// One question: SRC to DST on PORT.
struct Question {
    from: String,
    to: String,
    port: String,
    protocol: Option<Protocol>,
}

/// Runs the check; returns whether every flow asked about is allowed (for a Service: by
/// every backend).
pub fn run(args: &CheckArgs, verbose: u8) -> Result<bool> {
    let questions = match &args.flows {
        Some(file) => read_flows(file)?,
        None => vec![Question {
            from: args.from.clone().unwrap_or_default(),
            to: args.to.clone().unwrap_or_default(),
            port: args.port.clone().unwrap_or_default(),
            protocol: args.protocol,
        }],
    };
    let loaded = input::load(&args.input, verbose)?;
    let cluster = &loaded.cluster;
    let mut reports = Vec::new();
    let mut texts = Vec::new();
    for (i, q) in questions.iter().enumerate() {
        let context = |what: &str| if args.flows.is_some() { format!("flow {}: {what}", i + 1) } else { what.to_string() };
        let src = resolve(cluster, &q.from).with_context(|| context(&format!("--from {}", q.from)))?;
        let dst = resolve(cluster, &q.to).with_context(|| context(&format!("--to {}", q.to)))?;
        let flows = flows(cluster, src, dst, &q.port, q.protocol).with_context(|| context("flow"))?;
        let judged: Vec<(Flow, Verdict)> = flows.into_iter().map(|flow| (flow, verdict(cluster, &flow))).collect();
        let allowed = judged.iter().all(|(_, v)| v.allowed);
        match args.output {
            CheckOutput::Json => reports.push(CheckReport {
                from: q.from.clone(),
                to: q.to.clone(),
                port: q.port.clone(),
                allowed,
                flows: judged
                    .iter()
                    .map(|(flow, verdict)| JudgedFlow {
                        from: flow.src.display(cluster),
                        to: flow.dst.display(cluster),
                        port: flow.port,
                        protocol: flow.protocol,
                        verdict: verdict.clone(),
                    })
                    .collect(),
            }),
            CheckOutput::Text => texts.push(text_report(cluster, &q.port, dst, &judged, allowed)),
        }
    }
    let all_allowed = match args.output {
        CheckOutput::Json => {
            let all = reports.iter().all(|r| r.allowed);
            let mut text = if args.flows.is_some() {
                serde_json::to_string_pretty(&reports)?
            } else {
                serde_json::to_string_pretty(&reports[0])?
            };
            text.push('\n');
            std::io::stdout().write_all(text.as_bytes())?;
            all
        }
        CheckOutput::Text => {
            std::io::stdout().write_all(texts.iter().map(|(t, _)| t.as_str()).collect::<Vec<_>>().join("\n").as_bytes())?;
            texts.iter().all(|(_, allowed)| *allowed)
        }
    };
    Ok(all_allowed)
}

/// Reads `SRC DST PORT [PROTOCOL]` lines.
fn read_flows(file: &str) -> Result<Vec<Question>> {
    let text = if file == "-" {
        std::io::read_to_string(std::io::stdin())?
    } else {
        std::fs::read_to_string(file).with_context(|| format!("--flows {file}"))?
    };
    let mut questions = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or_default().trim();
        if line.is_empty() {
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        let (from, to, port, protocol) = match words.as_slice() {
            [from, to, port] => (from, to, port, None),
            [from, to, port, protocol] => (from, to, port, Some(parse_protocol(protocol).map_err(|e| anyhow!("{file}:{}: {e}", n + 1))?)),
            _ => bail!("{file}:{}: expected `SRC DST PORT [PROTOCOL]`, got {line:?}", n + 1),
        };
        questions.push(Question { from: from.to_string(), to: to.to_string(), port: port.to_string(), protocol });
    }
    Ok(questions)
}

fn word(allowed: bool) -> &'static str {
    if allowed { "ALLOWED" } else { "DENIED" }
}

fn text_report(cluster: &Cluster, port: &str, dst: Target, judged: &[(Flow, Verdict)], allowed: bool) -> (String, bool) {
    let mut out = String::new();
    let (first, _) = &judged[0];
    let src = first.src.display(cluster);
    match dst {
        Target::Service(s) => {
            let service = &cluster.services[s];
            let denied = judged.iter().filter(|(_, v)| !v.allowed).count();
            out.push_str(&format!(
                "{}: {src} -> Service {} port {} ({} of {} backends allow it)\n",
                word(allowed),
                service.display_name(),
                port,
                judged.len() - denied,
                judged.len()
            ));
            for (flow, verdict) in judged {
                out.push_str(&format!(
                    "\n  backend {} port {}: {}\n",
                    flow.dst.display(cluster),
                    port_text(flow.port, flow.protocol),
                    word(verdict.allowed)
                ));
                out.push_str(&explain(cluster, flow, verdict, 4));
            }
        }
        _ => {
            out.push_str(&format!(
                "{}: {src} -> {} port {}\n\n",
                word(allowed),
                first.dst.display(cluster),
                port_text(first.port, first.protocol)
            ));
            out.push_str(&explain(cluster, first, &judged[0].1, 2));
        }
    }
    (out, allowed)
}

/// The flows to judge: one per Service backend, or the single one.
fn flows(cluster: &Cluster, src: Target, dst: Target, port: &str, protocol: Option<Protocol>) -> Result<Vec<Flow>> {
    if let Target::Service(s) = src {
        bail!("--from: {} is a Service; a Service does not send traffic, name one of its pods", cluster.services[s].display_name());
    }
    let numeric = port.parse::<u16>().ok().filter(|p| *p > 0);
    let destinations: Vec<(Target, u16, Protocol)> = match dst {
        Target::Service(s) => {
            let service = &cluster.services[s];
            backends(cluster, service, port, protocol)
                .map_err(|e| service_error(cluster, &service.display_name(), port, e))?
                .into_iter()
                .map(|b| (Target::Endpoint(b.endpoint), b.port, b.protocol))
                .collect()
        }
        Target::Endpoint(i) => {
            let endpoint = &cluster.endpoints[i];
            match numeric {
                Some(n) => vec![(dst, n, protocol.unwrap_or(Protocol::Tcp))],
                None => {
                    let found = endpoint
                        .ports
                        .iter()
                        .find(|p| p.name.as_deref() == Some(port) && protocol.is_none_or(|proto| proto == p.protocol))
                        .ok_or_else(|| {
                            anyhow!("--port {port}: {} has no container port named {port:?}", endpoint.display_name())
                        })?;
                    vec![(dst, found.number, found.protocol)]
                }
            }
        }
        Target::External(_) => match numeric {
            Some(n) => vec![(dst, n, protocol.unwrap_or(Protocol::Tcp))],
            None => bail!("--port {port}: an address outside the cluster has no named ports; give a number (1-65535)"),
        },
    };

    destinations
        .into_iter()
        .map(|(dst, port, protocol)| {
            let v6 = family(cluster, src, dst)?;
            Ok(Flow { src: end(cluster, src, v6)?, dst: end(cluster, dst, v6)?, port, protocol })
        })
        .collect()
}

fn service_error(cluster: &Cluster, service: &str, port: &str, error: ServiceError) -> anyhow::Error {
    match error {
        ServiceError::NoSuchPort { available } => {
            anyhow!("--port {port}: Service {service} has no such port (it has: {})", available.join(", "))
        }
        ServiceError::NoBackends => anyhow!("Service {service} selects no pod or workload, so it has no backends to judge"),
        ServiceError::UnresolvedTarget { endpoint, name } => anyhow!(
            "Service {service}: backend {} has no container port named {name:?} (the Service's targetPort)",
            cluster.endpoints[endpoint].display_name()
        ),
    }
}

/// The address family of the flow: that of an explicit address, else IPv4 when both ends
/// have one.
fn family(cluster: &Cluster, src: Target, dst: Target) -> Result<bool> {
    let families = |t: Target| -> Vec<bool> {
        match t {
            Target::External(ip) => vec![ip.is_ipv6()],
            Target::Endpoint(i) => cluster.endpoints[i].ips.iter().map(IpAddr::is_ipv6).collect(),
            Target::Service(_) => vec![false, true],
        }
    };
    let (a, b) = (families(src), families(dst));
    [false, true]
        .into_iter()
        .find(|v6| a.contains(v6) && b.contains(v6))
        .ok_or_else(|| anyhow!("the two ends have no address family in common (one is IPv4 only, the other IPv6 only)"))
}

fn end(cluster: &Cluster, target: Target, v6: bool) -> Result<FlowEnd> {
    Ok(match target {
        Target::Endpoint(i) => FlowEnd::endpoint(cluster, i, Some(v6)),
        Target::External(ip) => FlowEnd::External(ip),
        Target::Service(_) => bail!("a Service is not an end of a flow"),
    })
}
