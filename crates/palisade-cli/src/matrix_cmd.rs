//! `palisade matrix`: reachability between every pair of endpoints, or its summary over
//! equivalence classes.

use std::collections::{BTreeMap, HashMap};
use std::io::{self, BufWriter, Write};
use std::os::fd::AsFd;

use anyhow::{Result, bail};
use clap::{Args, ValueEnum};
use palisade_model::{Cluster, Protocol, format_labels};
use palisade_policy::family::{self, Families};
use palisade_policy::matrix::Entry;
use palisade_policy::{Matrix, MatrixPlan, PortQuery, PortRef, PortSelection, Summary, matrix, pairs_without_common_family, summary};

use crate::check::parse_protocol;
use crate::input::{self, InputArgs};

#[derive(Args, Debug)]
pub struct MatrixArgs {
    #[command(flatten)]
    pub input: InputArgs,

    /// Probe every destination on this port (number or name; repeatable). Default: the
    /// container ports each destination declares.
    #[arg(long = "port", value_name = "PORT")]
    pub ports: Vec<String>,

    /// Protocols to probe (repeatable). With --port the default is TCP; without, all.
    #[arg(long = "protocol", value_name = "PROTOCOL", value_parser = parse_protocol)]
    pub protocols: Vec<Protocol>,

    #[arg(short = 'o', long = "output", value_enum, default_value = "table")]
    pub output: MatrixOutput,

    /// Show equivalence classes (endpoints with the same namespace labels, pod labels and
    /// ports) and the allowed class pairs per port, instead of every pair of endpoints.
    #[arg(long)]
    pub summary: bool,

    /// Judge only this address family: 4 or 6. Default: every family the endpoints have
    /// addresses in; a pair is judged in the families both ends have, and pairs with none in
    /// common are left out (and counted in --summary).
    #[arg(long, value_parser = ["4", "6"])]
    pub family: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum MatrixOutput {
    Table,
    Json,
    Csv,
}

pub fn run(args: &MatrixArgs, verbose: u8) -> Result<()> {
    let loaded = input::load(&args.input, verbose)?;
    let cluster = &loaded.cluster;
    let selection = selection(args)?;
    let judged = match args.family.as_deref() {
        Some("6") => Families::V6,
        Some(_) => Families::V4,
        None => match family::present(&cluster.endpoints) {
            Families::NONE => Families::V4,
            present => present,
        },
    };
    // Standard output as a plain file: Rust's stdout is line-buffered, which scans every
    // write for newlines (tens of megabytes for a large matrix).
    let stdout = std::fs::File::from(io::stdout().as_fd().try_clone_to_owned()?);
    let mut out = BufWriter::with_capacity(1 << 16, stdout);
    if args.summary {
        let summaries: Vec<Summary> = judged.iter().map(|v6| summary(cluster, &selection, v6)).collect();
        let without = pairs_without_common_family(cluster, judged);
        match args.output {
            MatrixOutput::Json => write_summary_json(&mut out, &summaries, without)?,
            MatrixOutput::Csv => write_summary_csv(&mut out, &summaries)?,
            MatrixOutput::Table => write_summary_table(&mut out, &summaries, without)?,
        }
    } else {
        let names = endpoint_names(cluster);
        match args.output {
            MatrixOutput::Json if judged != Families::BOTH => {
                let plan = MatrixPlan::new(cluster, &selection, judged == Families::V6);
                write_json(&mut out, &plan, &names, judged)?;
                std::mem::forget(plan); // See below.
            }
            MatrixOutput::Json => write_json_entries(&mut out, &matrix(cluster, &selection, judged), &names)?,
            MatrixOutput::Csv => write_csv(&mut out, &matrix(cluster, &selection, judged), &names)?,
            MatrixOutput::Table => write_tables(&mut out, &matrix(cluster, &selection, judged), &names)?,
        }
    }
    if args.output == MatrixOutput::Json {
        writeln!(out)?;
    }
    out.flush()?;
    // The process ends right after this: freeing the cluster's many small allocations one
    // by one (and the allocator returning their pages at exit) only delays the exit.
    std::mem::forget(loaded);
    Ok(())
}

fn selection(args: &MatrixArgs) -> Result<PortSelection> {
    if args.ports.is_empty() {
        return Ok(PortSelection::Declared { protocols: args.protocols.clone() });
    }
    let protocols = if args.protocols.is_empty() { vec![Protocol::Tcp] } else { args.protocols.clone() };
    let mut queries = Vec::new();
    for text in &args.ports {
        let port = match text.parse::<u16>() {
            Ok(0) => bail!("--port {text}: must be between 1 and 65535"),
            Ok(n) => PortRef::Number(n),
            Err(_) if text.chars().any(|c| c.is_ascii_lowercase()) => PortRef::Name(text.clone()),
            Err(_) => bail!("--port {text}: expected a port number (1-65535) or a port name"),
        };
        queries.extend(protocols.iter().map(|&protocol| PortQuery { port: port.clone(), protocol }));
    }
    Ok(PortSelection::Explicit(queries))
}

/// `ns/name` per endpoint; `ns/kind/name` where two kinds share a name.
pub fn endpoint_names(cluster: &Cluster) -> Vec<String> {
    let mut count: HashMap<(&str, &str), usize> = HashMap::new();
    for e in &cluster.endpoints {
        *count.entry((&e.namespace, &e.name)).or_default() += 1;
    }
    cluster.endpoints.iter().map(|e| if count[&(e.namespace.as_str(), e.name.as_str())] > 1 { format!("{}/{}/{}", e.namespace, e.kind.short_name(), e.name) } else { e.display_name() }).collect()
}

/// Writes the full matrix of one family as JSON. A 500-pod matrix has hundreds of thousands
/// of entries, so entries are assembled from pre-rendered pieces and chunks of sources are
/// formatted on all cores, then written in order. Entries name their family only when it is
/// IPv6 (IPv4 entries read as they did before families were judged).
fn write_json(out: &mut impl Write, plan: &MatrixPlan<'_>, names: &[String], family: Families) -> Result<()> {
    let families = if family == Families::V4 { String::new() } else { format!(",\"families\":{}", serde_json::to_string(&family)?) };
    let quoted: Vec<String> = names.iter().map(serde_json::to_string).collect::<Result<_, _>>()?;
    out.write_all(b"{\"endpoints\":[")?;
    for (i, &e) in plan.endpoints.iter().enumerate() {
        if i > 0 {
            out.write_all(b",")?;
        }
        out.write_all(quoted[e].as_bytes())?;
    }
    out.write_all(b"],\"entries\":[")?;
    // Everything after the source of an entry is rendered once per destination, probe and
    // answer (`"to":"ns/b","port":80,"protocol":"TCP","allowed":true}`), so an entry is two
    // copies: the source's prefix and one of these.
    let mut tails: Vec<u8> = Vec::new();
    let mut first_slot = vec![0; names.len()];
    let mut slots: Vec<[std::ops::Range<usize>; 2]> = Vec::new();
    for &to in &plan.endpoints {
        first_slot[to] = slots.len();
        for &probe in plan.probes_of(to) {
            let (port, protocol) = plan.ports[probe];
            let mut render = |allowed: bool| {
                let start = tails.len();
                let tail = format!("\"to\":{},\"port\":{port},\"protocol\":\"{protocol}\",\"allowed\":{allowed}{families}}}", quoted[to]);
                tails.extend_from_slice(tail.as_bytes());
                start..tails.len()
            };
            slots.push([render(false), render(true)]);
        }
    }
    let format_chunk = |sources: &[usize], buf: &mut Vec<u8>| {
        buf.clear();
        let mut prefix = Vec::new();
        for &from in sources {
            prefix.clear();
            prefix.extend_from_slice(b",{\"from\":");
            prefix.extend_from_slice(quoted[from].as_bytes());
            prefix.push(b',');
            plan.for_each_from(from, |to, k, allowed| {
                buf.extend_from_slice(&prefix);
                buf.extend_from_slice(&tails[slots[first_slot[to] + k][usize::from(allowed)].clone()]);
            });
        }
    };
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    // About 1 MB of output per chunk. Worker w formats chunks w, w + workers, ... and hands
    // them over bounded channels, so the writer takes them in order and at most two chunks
    // per worker are in memory, whatever the size of the matrix.
    let entries_per_source = (plan.endpoints.len() * plan.ports.len()).max(1);
    let chunk = (12_000 / entries_per_source).clamp(1, plan.endpoints.len().max(1));
    let chunks: Vec<&[usize]> = plan.endpoints.chunks(chunk).collect();
    let mut first = true;
    std::thread::scope(|scope| -> Result<()> {
        // Written buffers go back to their worker: touching fresh memory (the kernel zeroing
        // pages) cost more than formatting when every chunk had a new buffer.
        const BUFFERS_PER_WORKER: usize = 2;
        let (receivers, returns): (Vec<_>, Vec<_>) = (0..workers)
            .map(|w| {
                let (sender, receiver) = std::sync::mpsc::sync_channel::<Vec<u8>>(2);
                let (give_back, returned) = std::sync::mpsc::channel::<Vec<u8>>();
                let (chunks, format_chunk) = (&chunks, &format_chunk);
                scope.spawn(move || {
                    let mut made = 0;
                    for sources in chunks.iter().skip(w).step_by(workers) {
                        let mut buffer = match returned.try_recv() {
                            Ok(buffer) => buffer,
                            Err(_) if made < BUFFERS_PER_WORKER => {
                                made += 1;
                                Vec::with_capacity(1 << 20)
                            }
                            Err(_) => match returned.recv() {
                                Ok(buffer) => buffer,
                                Err(_) => return, // The writer stopped.
                            },
                        };
                        format_chunk(sources, &mut buffer);
                        if sender.send(buffer).is_err() {
                            return; // The writer stopped (a write failed).
                        }
                    }
                });
                (receiver, give_back)
            })
            .unzip();
        for i in 0..chunks.len() {
            let buffer = receivers[i % workers].recv().expect("formatter thread ended early");
            // Each entry starts with a comma; the very first one must not.
            let skip = usize::from(first && !buffer.is_empty());
            first &= buffer.is_empty();
            out.write_all(&buffer[skip..])?;
            let _ = returns[i % workers].send(buffer);
        }
        Ok(())
    })?;
    out.write_all(b"]}")?;
    Ok(())
}

/// The matrix of several families as JSON: every entry names its families.
fn write_json_entries(out: &mut impl Write, matrix: &Matrix, names: &[String]) -> Result<()> {
    #[derive(serde::Serialize)]
    struct Named<'a> {
        from: &'a str,
        to: &'a str,
        port: u16,
        protocol: Protocol,
        allowed: bool,
        families: Families,
    }
    let endpoints: Vec<&str> = matrix.endpoints.iter().map(|&e| names[e].as_str()).collect();
    let entries: Vec<Named<'_>> =
        matrix.entries.iter().map(|e| Named { from: &names[e.from], to: &names[e.to], port: e.port, protocol: e.protocol, allowed: e.allowed, families: e.families }).collect();
    #[derive(serde::Serialize)]
    struct Document<'a> {
        endpoints: Vec<&'a str>,
        entries: Vec<Named<'a>>,
    }
    serde_json::to_writer(out, &Document { endpoints, entries })?;
    Ok(())
}

fn write_csv(out: &mut impl Write, matrix: &Matrix, names: &[String]) -> Result<()> {
    // IPv4-only matrices keep the columns they had before families were judged.
    let with_families = matrix.families != Families::V4;
    writeln!(out, "from,to,port,protocol,allowed{}", if with_families { ",families" } else { "" })?;
    for e in &matrix.entries {
        write!(out, "{},{},{},{},{}", names[e.from], names[e.to], e.port, e.protocol, e.allowed)?;
        if with_families {
            write!(out, ",{}", e.families.short())?;
        }
        writeln!(out)?;
    }
    Ok(())
}

/// One truth table per port, like the upstream e2e suite prints: rows are clients,
/// numbered columns are servers.
fn write_tables(out: &mut impl Write, matrix: &Matrix, names: &[String]) -> Result<()> {
    // Per port, per pair: the answer in each family judged (a pair whose families agree has
    // one entry for both).
    let mut by_port: BTreeMap<(u16, Protocol), HashMap<(usize, usize), Vec<(Families, bool)>>> = BTreeMap::new();
    for Entry { from, to, port, protocol, allowed, families } in &matrix.entries {
        by_port.entry((*port, *protocol)).or_default().entry((*from, *to)).or_default().push((*families, *allowed));
    }
    let dual = matrix.families == Families::BOTH;
    if by_port.is_empty() {
        writeln!(out, "no probes: no destination declares a container port (use --port)")?;
        return Ok(());
    }
    let order = &matrix.endpoints;
    let digits = order.len().to_string().len();
    let label_width = order.iter().map(|&e| names[e].len()).max().unwrap_or(0) + digits + 2;
    for (n, ((port, protocol), cells)) in by_port.iter().enumerate() {
        if n > 0 {
            writeln!(out)?;
        }
        let allowed = cells.values().filter(|answers| answers.iter().all(|(_, a)| *a)).count();
        let legend = if dual {
            ". allowed  X denied  4 allowed over IPv4 only  6 allowed over IPv6 only  - not probed (no such port, or no address family in common)"
        } else {
            ". allowed  X denied  - not probed"
        };
        writeln!(out, "{port}/{protocol}: {allowed} of {} probes allowed   ({legend})", cells.len())?;
        let header: Vec<String> = (1..=order.len()).map(|i| format!("{i:>digits$}")).collect();
        writeln!(out, "{:label_width$} {}", "", header.join(" "))?;
        for (row, &from) in order.iter().enumerate() {
            let row_cells: Vec<String> = order
                .iter()
                .map(|&to| {
                    let cell = match cells.get(&(from, to)).map(Vec::as_slice) {
                        None => "-",
                        Some(answers) if answers.iter().all(|(_, a)| *a) => ".",
                        Some(answers) if answers.iter().all(|(_, a)| !*a) => "X",
                        Some(answers) if answers.iter().any(|(f, a)| *f == Families::V4 && *a) => "4",
                        Some(_) => "6",
                    };
                    format!("{cell:>digits$}")
                })
                .collect();
            let label = format!("{:>digits$} {}", row + 1, names[from]);
            writeln!(out, "{label:label_width$} {}", row_cells.join(" "))?;
        }
    }
    Ok(())
}

/// One summary per family judged; a single IPv4 summary is written as it was before
/// families were judged. Streamed: a 10k-pod summary is tens of megabytes of JSON.
fn write_summary_json(out: &mut impl Write, summaries: &[Summary], without_common_family: u64) -> Result<()> {
    fn is_zero(n: &u64) -> bool {
        *n == 0
    }
    #[derive(serde::Serialize)]
    #[serde(rename_all = "camelCase")]
    struct One<'a> {
        #[serde(flatten)]
        summary: &'a Summary,
        #[serde(skip_serializing_if = "is_zero")]
        pairs_without_common_family: u64,
    }
    #[derive(serde::Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Several<'a> {
        families: &'a [Summary],
        #[serde(skip_serializing_if = "is_zero")]
        pairs_without_common_family: u64,
    }
    match summaries {
        [one] => serde_json::to_writer(out, &One { summary: one, pairs_without_common_family: without_common_family })?,
        several => serde_json::to_writer(out, &Several { families: several, pairs_without_common_family: without_common_family })?,
    }
    Ok(())
}

fn write_summary_table(out: &mut impl Write, summaries: &[Summary], without_common_family: u64) -> Result<()> {
    for (n, summary) in summaries.iter().enumerate() {
        if n > 0 {
            writeln!(out)?;
        }
        let family = if summaries.len() > 1 || summary.family != Families::V4 { format!(" ({})", summary.family.describe()) } else { String::new() };
        writeln!(out, "{} endpoints in {} classes{family} (endpoints with the same namespace, labels and ports are judged alike)\n", summary.endpoints, summary.classes.len())?;
        for class in &summary.classes {
            let ports: Vec<String> = class.ports.iter().map(|p| format!("{}/{}", p.number, p.protocol)).collect();
            let first = class.members.first().cloned().unwrap_or_default();
            let more = if class.members.len() > 1 { format!(" and {} more", class.members.len() - 1) } else { String::new() };
            writeln!(
                out,
                "C{:<4} ns={} labels={} ports={}{}: {first}{more}",
                class.id,
                class.namespace,
                format_labels(&class.labels),
                if ports.is_empty() { "-".to_string() } else { ports.join(",") },
                if class.host_network { " hostNetwork" } else { "" },
            )?;
        }
        for port in &summary.ports {
            writeln!(out, "\n{}/{}: {} of {} endpoint pairs allowed", port.port, port.protocol, port.allowed_pairs, port.pairs)?;
            for edges in &port.allowed {
                let to: Vec<String> = edges.to.iter().map(|c| format!("C{c}")).collect();
                writeln!(out, "  C{} -> {}", edges.from, to.join(" "))?;
            }
        }
    }
    if without_common_family > 0 {
        writeln!(out, "\n{without_common_family} endpoint pairs have no address family in common: no packet can go between them, they are not judged")?;
    }
    Ok(())
}

fn write_summary_csv(out: &mut impl Write, summaries: &[Summary]) -> Result<()> {
    let with_family = summaries.len() > 1 || summaries.iter().any(|s| s.family != Families::V4);
    writeln!(out, "{}port,protocol,from_class,to_class", if with_family { "family," } else { "" })?;
    for summary in summaries {
        let family = if with_family { format!("{},", summary.family.short()) } else { String::new() };
        for port in &summary.ports {
            for edges in &port.allowed {
                for to in &edges.to {
                    writeln!(out, "{family}{},{},{},{}", port.port, port.protocol, edges.from, to)?;
                }
            }
        }
    }
    Ok(())
}
