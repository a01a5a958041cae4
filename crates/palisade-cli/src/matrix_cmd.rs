//! `palisade matrix`: reachability between every pair of endpoints, or its summary over
//! equivalence classes.

use std::collections::{BTreeMap, HashMap};
use std::io::{self, BufWriter, Write};
use std::os::fd::AsFd;

use anyhow::{Result, bail};
use clap::{Args, ValueEnum};
use palisade_model::{Cluster, Protocol, format_labels};
use palisade_policy::matrix::Entry;
use palisade_policy::{Matrix, MatrixPlan, PortQuery, PortRef, PortSelection, Summary, matrix, summary};

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

    /// Address family whose addresses ipBlocks are judged against: 4 or 6. Default: 4, or 6
    /// when no endpoint has an IPv4 address.
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
    let v6 = match args.family.as_deref() {
        Some("6") => true,
        Some(_) => false,
        None => !cluster.endpoints.iter().any(|e| e.ips.iter().any(|ip| ip.is_ipv4())) && !cluster.endpoints.is_empty(),
    };
    // Standard output as a plain file: Rust's stdout is line-buffered, which scans every
    // write for newlines (tens of megabytes for a large matrix).
    let stdout = std::fs::File::from(io::stdout().as_fd().try_clone_to_owned()?);
    let mut out = BufWriter::with_capacity(1 << 16, stdout);
    if args.summary {
        let summary = summary(cluster, &selection, v6);
        match args.output {
            MatrixOutput::Json => serde_json::to_writer(&mut out, &summary)?,
            MatrixOutput::Csv => write_summary_csv(&mut out, &summary)?,
            MatrixOutput::Table => write_summary_table(&mut out, &summary)?,
        }
    } else {
        let names = endpoint_names(cluster);
        match args.output {
            MatrixOutput::Json => {
                let plan = MatrixPlan::new(cluster, &selection, v6);
                write_json(&mut out, &plan, &names)?;
                std::mem::forget(plan); // See below.
            }
            MatrixOutput::Csv => write_csv(&mut out, &matrix(cluster, &selection, v6), &names)?,
            MatrixOutput::Table => write_tables(&mut out, &matrix(cluster, &selection, v6), &names)?,
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
    cluster
        .endpoints
        .iter()
        .map(|e| {
            if count[&(e.namespace.as_str(), e.name.as_str())] > 1 {
                format!("{}/{}/{}", e.namespace, e.kind.short_name(), e.name)
            } else {
                e.display_name()
            }
        })
        .collect()
}

/// Writes the full matrix as JSON. A 500-pod matrix has hundreds of thousands of entries, so
/// entries are assembled from pre-rendered pieces and chunks of sources are formatted on all
/// cores, then written in order.
fn write_json(out: &mut impl Write, plan: &MatrixPlan<'_>, names: &[String]) -> Result<()> {
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
                let tail = format!("\"to\":{},\"port\":{port},\"protocol\":\"{protocol}\",\"allowed\":{allowed}}}", quoted[to]);
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

fn write_csv(out: &mut impl Write, matrix: &Matrix, names: &[String]) -> Result<()> {
    writeln!(out, "from,to,port,protocol,allowed")?;
    for e in &matrix.entries {
        writeln!(out, "{},{},{},{},{}", names[e.from], names[e.to], e.port, e.protocol, e.allowed)?;
    }
    Ok(())
}

/// One truth table per port, like the upstream e2e suite prints: rows are clients,
/// numbered columns are servers.
fn write_tables(out: &mut impl Write, matrix: &Matrix, names: &[String]) -> Result<()> {
    let mut by_port: BTreeMap<(u16, Protocol), HashMap<(usize, usize), bool>> = BTreeMap::new();
    for Entry { from, to, port, protocol, allowed } in &matrix.entries {
        by_port.entry((*port, *protocol)).or_default().insert((*from, *to), *allowed);
    }
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
        let allowed = cells.values().filter(|a| **a).count();
        writeln!(out, "{port}/{protocol}: {allowed} of {} probes allowed   (. allowed  X denied  - not probed)", cells.len())?;
        let header: Vec<String> = (1..=order.len()).map(|i| format!("{i:>digits$}")).collect();
        writeln!(out, "{:label_width$} {}", "", header.join(" "))?;
        for (row, &from) in order.iter().enumerate() {
            let row_cells: Vec<String> = order
                .iter()
                .map(|&to| {
                    let cell = match cells.get(&(from, to)) {
                        Some(true) => ".",
                        Some(false) => "X",
                        None => "-",
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

fn write_summary_table(out: &mut impl Write, summary: &Summary) -> Result<()> {
    writeln!(
        out,
        "{} endpoints in {} classes (endpoints with the same namespace, labels and ports are judged alike)\n",
        summary.endpoints,
        summary.classes.len()
    )?;
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
    Ok(())
}

fn write_summary_csv(out: &mut impl Write, summary: &Summary) -> Result<()> {
    writeln!(out, "port,protocol,from_class,to_class")?;
    for port in &summary.ports {
        for edges in &port.allowed {
            for to in &edges.to {
                writeln!(out, "{},{},{},{}", port.port, port.protocol, edges.from, to)?;
            }
        }
    }
    Ok(())
}
