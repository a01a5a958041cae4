//! `palisade conformance`: the NetworkPolicy suite on real packets against a Kubernetes API
//! (a fresh lab by default). Each case's topology is built through the API, its steps are
//! applied, and every probe is answered three ways: the case's expectation, the engine's
//! verdict on the case's model, and a real connection from inside the source pod.

mod cluster;
mod output;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use futures::StreamExt;
use palisade_conformance::file::{self, FileCase};
use palisade_conformance::report::{CaseResult, ProbeResult, Status, StepResult};
use palisade_conformance::{Scenario, Step};
use palisade_lab::LabPaths;
use palisade_lab::protocol::Request;
use palisade_policy::{Flow, FlowEnd, verdict};

use cluster::{Driver, Probed};

#[derive(clap::Args, Debug)]
pub struct ConformanceArgs {
    /// Run against this cluster (any network plugin) instead of a fresh lab.
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// Case files (docs/conformance.md) instead of the built-in cases; repeatable.
    #[arg(long = "cases", value_name = "FILE")]
    cases: Vec<PathBuf>,
    /// Only cases whose `id title` matches this regular expression.
    #[arg(long)]
    focus: Option<String>,
    /// Leave out cases whose `id title` matches this regular expression.
    #[arg(long)]
    skip: Option<String>,
    /// Nodes of the lab started when no --kubeconfig is given.
    #[arg(long, default_value_t = 2)]
    nodes: u8,
    /// Probes run at once.
    #[arg(long, default_value_t = 8)]
    parallel: usize,
    #[arg(short = 'o', long, value_enum, default_value = "text")]
    output: output::Format,
    /// Also write the report (in --output's format) to this file.
    #[arg(long)]
    report: Option<PathBuf>,
    /// The image of the pods (it must hold `palisade serve` and `palisade probe`).
    #[arg(long, default_value = "localhost/palisade:0.1.0")]
    image: String,
    /// The lab's name (when no --kubeconfig is given).
    #[arg(long, default_value = "conformance")]
    lab: String,
    /// Keep the lab up afterwards (it is removed otherwise, if this run started it).
    #[arg(long)]
    keep: bool,
}

/// The cases to run: every file's (any error stops everything before anything is made),
/// or the built-in ones, filtered.
fn select(args: &ConformanceArgs) -> Result<Vec<FileCase>> {
    let mut cases = Vec::new();
    if args.cases.is_empty() {
        cases = file::builtin();
    }
    for path in &args.cases {
        cases.extend(file::load(path)?);
    }
    let regex = |text: &Option<String>, flag: &str| text.as_deref().map(regex::Regex::new).transpose().with_context(|| format!("{flag}: not a regular expression"));
    let (focus, skip) = (regex(&args.focus, "--focus")?, regex(&args.skip, "--skip")?);
    cases.retain(|c| {
        let name = format!("{} {}", c.id, c.title);
        focus.as_ref().is_none_or(|r| r.is_match(&name)) && !skip.as_ref().is_some_and(|r| r.is_match(&name))
    });
    Ok(cases)
}

/// The lab this run uses, started if it is not up.
struct Lab {
    paths: LabPaths,
    started: bool,
}

fn lab(args: &ConformanceArgs) -> Result<Lab> {
    let paths = LabPaths::new(&args.lab)?;
    let status = Request::Status { wait_synced: None };
    if palisade_lab::client::try_request(&paths, &status)?.is_some() {
        return Ok(Lab { paths, started: false });
    }
    let exe = std::env::current_exe().context("locating the palisade binary")?;
    palisade_lab::client::start_daemon(&paths, &exe, args.nodes)?;
    Ok(Lab { paths, started: true })
}

/// Waits until every node of the lab enforces the API's state (on another cluster there
/// is no such signal: probes are retried instead).
async fn wait_synced(lab: Option<&LabPaths>) -> Result<()> {
    let Some(paths) = lab.cloned() else { return Ok(()) };
    let response = tokio::task::spawn_blocking(move || palisade_lab::client::try_request(&paths, &Request::Status { wait_synced: Some(30.0) })).await??;
    match response {
        Some(r) if r.error.is_none() => Ok(()),
        Some(r) => Err(anyhow!("{}", r.error.unwrap_or_default())),
        None => Err(anyhow!("the lab stopped answering")),
    }
}

/// A probe step: the engine on the case's model, and the network, for every pair.
async fn probe_step(driver: &Driver, scenario: &Scenario, addresses: &BTreeMap<String, Vec<IpAddr>>, index: usize, step: &Step, parallel: usize, on_lab: bool) -> Result<StepResult> {
    let Step::Probe { port, protocol, ipv6, expect } = step else { unreachable!("a probe step") };
    let (port, protocol, ipv6) = (*port, *protocol, *ipv6);
    let address = |pod: &str| -> Result<IpAddr> {
        let ips = &addresses[pod];
        if ipv6 { ips.iter().copied().find(IpAddr::is_ipv6).ok_or_else(|| anyhow!("pod {pod} has no IPv6 address ({ips:?})")) } else { Ok(ips[0]) }
    };
    let cluster = &scenario.cluster;
    // Off the lab nothing says when a change is enforced: mismatches are probed again for
    // up to 10 s, as upstream's suite does.
    let attempts = if on_lab { 2 } else { 10 };
    let outcomes: Vec<Result<(usize, Probed)>> = futures::stream::iter(expect.iter().enumerate())
        .map(|(i, e)| async move {
            let target = address(&e.to)?;
            let mut outcome = driver.probe(&e.from, target, port, protocol).await?;
            for _ in 1..attempts {
                if outcome != if e.allowed { Probed::Connected } else { Probed::Blocked } && !matches!(outcome, Probed::Unsupported(_)) {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    outcome = driver.probe(&e.from, target, port, protocol).await?;
                } else {
                    break;
                }
            }
            Ok((i, outcome))
        })
        .buffer_unordered(parallel.max(1))
        .collect()
        .await;
    let mut network: BTreeMap<usize, Probed> = BTreeMap::new();
    for outcome in outcomes {
        let (i, probed) = outcome?;
        network.insert(i, probed);
    }
    // The node table Palisade renders for the case's model, every pod local.
    let ruleset = palisade_nft::render(&palisade_nft::NodeState { cluster, local: (0..cluster.endpoints.len()).collect(), options: palisade_nft::RenderOptions::default() });
    let traced = |from: usize, to: usize| {
        let ip = |i: usize| if ipv6 { cluster.endpoints[i].ip_of_family(true) } else { cluster.endpoints[i].ips.first().copied() };
        let (Some(src), Some(dst)) = (ip(from), ip(to)) else { return false };
        palisade_nft::trace::trace(&ruleset, &palisade_nft::trace::Packet { src, dst, protocol: protocol.number(), dport: port }) == palisade_nft::trace::Fate::Accept
    };
    let mut skipped = None;
    let probes = expect
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let (from, to) = (scenario.pod_index(&e.from), scenario.pod_index(&e.to));
            let family = ipv6.then_some(true);
            let flow = Flow { src: FlowEnd::endpoint(cluster, from, family), dst: FlowEnd::endpoint(cluster, to, family), port, protocol };
            let network = match &network[&i] {
                Probed::Connected => Some(true),
                Probed::Blocked => Some(false),
                Probed::Unsupported(why) => {
                    skipped = Some(why.clone());
                    None
                }
            };
            ProbeResult { from: e.from.clone(), to: e.to.clone(), expected: e.allowed, engine: verdict(cluster, &flow).allowed, rules: traced(from, to), network }
        })
        .collect();
    Ok(StepResult { step: index, port, protocol, probes, skipped })
}

/// What a run left in the cluster that the next case may reuse: a topology and its pods'
/// addresses.
type Live = Option<(palisade_conformance::Topology, BTreeMap<String, Vec<IpAddr>>)>;

/// One case, start to end; a failure to build or change it is a FAIL with the reason.
/// `live` is what the previous case left: reused (reset) if it is this case's topology, and
/// replaced by what this case leaves.
async fn run_case(driver: &Driver, case: &FileCase, lab: Option<&LabPaths>, parallel: usize, live: &mut Live) -> CaseResult {
    let started = Instant::now();
    let reusable = live.take().filter(|(topology, _)| *topology == case.topology);
    let result: Result<Vec<StepResult>> = async {
        driver.forget_cluster_policies().await?;
        let mut addresses = match reusable {
            Some((_, addresses)) => {
                driver.reset(&case.topology).await?;
                addresses
            }
            None => driver.create(&case.topology).await?,
        };
        for pod in &case.topology.pods {
            if let Some(ip) = pod.ip
                && !addresses[&pod.key()].contains(&ip)
            {
                return Err(anyhow!("skip: pod {} needs address {ip} and got {:?} (the cluster picks pod addresses)", pod.key(), addresses[&pod.key()]));
            }
        }
        let mut scenario = Scenario::from_topology(&case.topology, |pod| addresses[pod].clone());
        let mut steps = Vec::new();
        for (i, step) in case.steps.iter().enumerate() {
            if let Step::CreatePod { pod } = step {
                let created = driver.create_pods(std::slice::from_ref(pod)).await.with_context(|| format!("step {i}"))?;
                scenario.add_pod(pod, created[&pod.key()].clone());
                addresses.extend(created);
                continue;
            }
            if let Step::Probe { .. } = step {
                wait_synced(lab).await?;
                steps.push(probe_step(driver, &scenario, &addresses, i, step, parallel, lab.is_some()).await?);
                continue;
            }
            let policy = match step {
                Step::ApplyPolicy { policy, .. } | Step::ApplyClusterPolicy { policy } => {
                    let mut policy = policy.clone();
                    scenario.expand_templates(&mut policy);
                    Some(policy)
                }
                _ => None,
            };
            driver.apply(step, policy).await.with_context(|| format!("step {i}"))?;
            scenario.apply(step);
        }
        // Reusable by the next case unless this one added pods.
        if !case.steps.iter().any(|s| matches!(s, Step::CreatePod { .. })) {
            *live = Some((case.topology.clone(), addresses));
        }
        Ok(steps)
    }
    .await;
    let seconds = started.elapsed().as_secs_f64();
    match result {
        Ok(steps) => CaseResult::from_steps(&case.id, &case.title, steps, seconds),
        Err(error) => {
            let text = format!("{error:#}");
            let (status, reason) = match text.strip_prefix("skip: ") {
                Some(why) => (Status::Skip, why.to_string()),
                None => (Status::Fail, text),
            };
            CaseResult { id: case.id.clone(), title: case.title.clone(), status, seconds, steps: Vec::new(), reason: Some(reason) }
        }
    }
}

pub fn run(args: &ConformanceArgs) -> Result<u8> {
    let cases = select(args)?;
    let lab = if args.kubeconfig.is_none() { Some(lab(args)?) } else { None };
    let kubeconfig = args.kubeconfig.clone().or_else(|| lab.as_ref().map(|l| l.paths.kubeconfig())).expect("one of them");
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let results = runtime.block_on(async {
        let client = palisade_agent::client(Some(&kubeconfig)).await?;
        let driver = Driver { client, image: args.image.clone(), cluster_policies: Default::default() };
        let mut results = Vec::new();
        let mut live: Live = None;
        let total = cases.len();
        for (i, case) in cases.iter().enumerate() {
            output::progress(i, total, case);
            // A case on another topology: the previous case's namespaces go first.
            if let Some(previous) = i.checked_sub(1).map(|p| &cases[p])
                && live.as_ref().is_none_or(|(topology, _)| *topology != case.topology)
            {
                driver.delete_namespaces(&previous.topology).await.ok();
            }
            let result = run_case(&driver, case, lab.as_ref().map(|l| &l.paths), args.parallel, &mut live).await;
            output::case_done(args.output, &result);
            results.push(result);
        }
        // What the last case made (its pods created mid-case are in its namespaces too).
        if let Some(last) = cases.last() {
            driver.delete_namespaces(&last.topology).await.ok();
        }
        driver.forget_cluster_policies().await.ok();
        anyhow::Ok(results)
    });
    if let Some(lab) = lab.filter(|l| l.started && !args.keep) {
        palisade_lab::client::try_request(&lab.paths, &Request::Down).ok();
    }
    let results = results?;
    let report = output::render(args.output, &results);
    print!("{report}");
    if let Some(path) = &args.report {
        std::fs::write(path, &report).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(if results.iter().any(|r| r.status == Status::Fail) { 1 } else { 0 })
}
