//! `palisade check`: can SRC reach DST on PORT, and why.

use std::io::Write;
use std::net::IpAddr;

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, ValueEnum};
use palisade_model::{Cluster, Protocol};
use palisade_policy::service::{ServiceError, backends};
use palisade_policy::{Families, Flow, FlowEnd, Verdict, verdict};
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
    /// The families this verdict holds in; omitted when every flow of the question is IPv4
    /// alone (as before families were judged).
    #[serde(skip_serializing_if = "Option::is_none")]
    families: Option<Families>,
    #[serde(flatten)]
    verdict: Verdict,
}

/// One judged flow, in the families it was judged in: a dual-stack pair whose families
/// decide alike (with the same explanation) is one of these, else one per family.
struct Judged {
    flow: Flow,
    families: Families,
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
        None => vec![Question { from: args.from.clone().unwrap_or_default(), to: args.to.clone().unwrap_or_default(), port: args.port.clone().unwrap_or_default(), protocol: args.protocol }],
    };
    let loaded = input::load(&args.input, verbose)?;
    let cluster = &loaded.cluster;
    let mut reports = Vec::new();
    let mut texts = Vec::new();
    for (i, q) in questions.iter().enumerate() {
        let context = |what: &str| if args.flows.is_some() { format!("flow {}: {what}", i + 1) } else { what.to_string() };
        let src = resolve(cluster, &q.from).with_context(|| context(&format!("--from {}", q.from)))?;
        let dst = resolve(cluster, &q.to).with_context(|| context(&format!("--to {}", q.to)))?;
        let restrict = |text: &str| text.parse::<IpAddr>().map_or(Families::BOTH, Families::of_ip);
        let families = restrict(&q.from).intersection(restrict(&q.to));
        let destinations = flows(cluster, src, dst, &q.port, q.protocol, families).with_context(|| context("flow"))?;
        let judged: Vec<Vec<Judged>> = destinations.into_iter().map(|flows| judge(cluster, flows)).collect();
        let allowed = judged.iter().all(|d| !d.is_empty() && d.iter().all(|j| j.verdict.allowed));
        match args.output {
            CheckOutput::Json => reports.push(CheckReport {
                from: q.from.clone(),
                to: q.to.clone(),
                port: q.port.clone(),
                allowed,
                flows: judged
                    .iter()
                    .flatten()
                    .map(|j| JudgedFlow {
                        from: j.flow.src.display(cluster),
                        to: j.flow.dst.display(cluster),
                        port: j.flow.port,
                        protocol: j.flow.protocol,
                        // Named unless every flow is IPv4 alone (read as before families were judged).
                        families: judged.iter().flatten().any(|j| j.families != Families::V4).then_some(j.families),
                        verdict: j.verdict.clone(),
                    })
                    .collect(),
            }),
            CheckOutput::Text => texts.push(text_report(cluster, (src, dst), &q.port, &judged, allowed)),
        }
    }
    let all_allowed = match args.output {
        CheckOutput::Json => {
            let all = reports.iter().all(|r| r.allowed);
            let mut text = if args.flows.is_some() { serde_json::to_string_pretty(&reports)? } else { serde_json::to_string_pretty(&reports[0])? };
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
    let text = if file == "-" { std::io::read_to_string(std::io::stdin())? } else { std::fs::read_to_string(file).with_context(|| format!("--flows {file}"))? };
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

/// Judges the flows of one destination (one per family the pair has in common) and merges
/// the families that decide alike for the same reasons.
fn judge(cluster: &Cluster, flows: Vec<(Flow, Families)>) -> Vec<Judged> {
    let mut judged: Vec<Judged> = Vec::new();
    for (flow, families) in flows {
        let verdict = verdict(cluster, &flow);
        let same = |j: &Judged| j.verdict.allowed == verdict.allowed && explain(cluster, &j.flow, &j.verdict, 0) == explain(cluster, &flow, &verdict, 0);
        match judged.iter_mut().find(|j| same(j)) {
            Some(j) => j.families = j.families.union(families),
            None => judged.push(Judged { flow, families, verdict }),
        }
    }
    judged
}

/// ` (IPv6)`, ` (IPv4 and IPv6)`; nothing for IPv4 alone.
fn family_note(families: Families) -> String {
    if families == Families::V4 { String::new() } else { format!(" ({})", families.describe()) }
}

/// The verdict of one destination, and its explanation per family where the families differ.
fn destination_text(cluster: &Cluster, judged: &[Judged], indent: usize) -> (String, String) {
    let pad = " ".repeat(indent);
    match judged {
        [] => (String::new(), String::new()),
        [one] => (format!("{}{}", word(one.verdict.allowed), family_note(one.families)), explain(cluster, &one.flow, &one.verdict, indent)),
        several => {
            let words: Vec<String> = several.iter().map(|j| format!("{}: {}", j.families.describe(), word(j.verdict.allowed))).collect();
            let all = several.iter().all(|j| j.verdict.allowed);
            let mut body = String::new();
            for j in several {
                body.push_str(&format!("{pad}over {}: {}\n", j.families.describe(), word(j.verdict.allowed)));
                body.push_str(&explain(cluster, &j.flow, &j.verdict, indent + 2));
            }
            (format!("{} ({})", word(all), words.join(", ")), body)
        }
    }
}

fn text_report(cluster: &Cluster, (src, dst): (Target, Target), port: &str, judged: &[Vec<Judged>], allowed: bool) -> (String, bool) {
    let mut out = String::new();
    let src_name = match src {
        Target::Endpoint(i) => cluster.endpoints[i].display_name(),
        Target::External(ip) => ip.to_string(),
        Target::Service(s) => cluster.services[s].display_name(),
    };
    match dst {
        Target::Service(s) => {
            let service = &cluster.services[s];
            let allowing = judged.iter().filter(|d| !d.is_empty() && d.iter().all(|j| j.verdict.allowed)).count();
            out.push_str(&format!("{}: {src_name} -> Service {} port {} ({} of {} backends allow it)\n", word(allowed), service.display_name(), port, allowing, judged.len()));
            for destination in judged {
                let Some(first) = destination.first() else { continue };
                let (verdict, body) = destination_text(cluster, destination, 4);
                out.push_str(&format!("\n  backend {} port {}: {verdict}\n", first.flow.dst.display(cluster), port_text(first.flow.port, first.flow.protocol),));
                out.push_str(&body);
            }
        }
        _ => {
            let Some(first) = judged.first().and_then(|d| d.first()) else {
                return (no_common_family(cluster, src, dst), false);
            };
            let (verdict, body) = destination_text(cluster, &judged[0], 2);
            out.push_str(&format!("{verdict}: {src_name} -> {} port {}\n\n", first.flow.dst.display(cluster), port_text(first.flow.port, first.flow.protocol)));
            out.push_str(&body);
        }
    }
    (out, allowed)
}

/// What `check` says of a pair that no packet can go between.
fn no_common_family(cluster: &Cluster, src: Target, dst: Target) -> String {
    let describe = |t: Target| match t {
        Target::Endpoint(i) => format!("{} ({} only)", cluster.endpoints[i].display_name(), Families::of_endpoint(&cluster.endpoints[i]).describe()),
        Target::External(ip) => ip.to_string(),
        Target::Service(s) => cluster.services[s].display_name(),
    };
    format!("NOT A FLOW: {} and {} have no address family in common, so no packet can go between them (nothing to judge)\n", describe(src), describe(dst))
}

/// The flows to judge: per destination (each Service backend, or the single one), one per
/// address family both ends have (of `families`); a destination with none has no flows.
fn flows(cluster: &Cluster, src: Target, dst: Target, port: &str, protocol: Option<Protocol>, families: Families) -> Result<Vec<Vec<(Flow, Families)>>> {
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
                        .ok_or_else(|| anyhow!("--port {port}: {} has no container port named {port:?}", endpoint.display_name()))?;
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
            let common = target_families(cluster, src).intersection(target_families(cluster, dst)).intersection(families);
            common.iter().map(|v6| Ok((Flow { src: end(cluster, src, v6)?, dst: end(cluster, dst, v6)?, port, protocol }, Families::one(v6)))).collect()
        })
        .collect()
}

fn service_error(cluster: &Cluster, service: &str, port: &str, error: ServiceError) -> anyhow::Error {
    match error {
        ServiceError::NoSuchPort { available } => {
            anyhow!("--port {port}: Service {service} has no such port (it has: {})", available.join(", "))
        }
        ServiceError::NoBackends => anyhow!("Service {service} selects no pod or workload, so it has no backends to judge"),
        ServiceError::UnresolvedTarget { endpoint, name } => {
            anyhow!("Service {service}: backend {} has no container port named {name:?} (the Service's targetPort)", cluster.endpoints[endpoint].display_name())
        }
    }
}

/// The families an end has addresses in.
fn target_families(cluster: &Cluster, target: Target) -> Families {
    match target {
        Target::External(ip) => Families::of_ip(ip),
        Target::Endpoint(i) => Families::of_endpoint(&cluster.endpoints[i]),
        Target::Service(_) => Families::BOTH,
    }
}

fn end(cluster: &Cluster, target: Target, v6: bool) -> Result<FlowEnd> {
    Ok(match target {
        Target::Endpoint(i) => FlowEnd::endpoint(cluster, i, Some(v6)),
        Target::External(ip) => FlowEnd::External(ip),
        Target::Service(_) => bail!("a Service is not an end of a flow"),
    })
}
