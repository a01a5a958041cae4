//! Dataplane benchmark (needs root; everything happens in throwaway network namespaces):
//! render and apply times by cluster size, incremental changes, ruleset size.
//! `cargo bench -p palisade-nft --bench dataplane` (`-- quick` for the small sizes only, `-- 10k`
//! for the 10k-pod sync and incremental rows). The packet path is `benches/packet_path.rs`.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use palisade_conformance::synthetic;
use palisade_model::Cluster;
use palisade_nft::apply::{ApplyError, Dataplane, Nft};
use palisade_nft::json::{document, replace_commands};
use palisade_nft::{NodeState, RenderOptions, Ruleset, render, text};
use palisade_testbed::{NetNs, require_privileges};

struct InNs<'a>(&'a NetNs);

impl Nft for InNs<'_> {
    fn apply(&self, document: &str) -> Result<(), ApplyError> {
        let output = self.0.exec_with_input("nft", &["-j", "-f", "-"], document);
        if output.status.success() { Ok(()) } else { Err(ApplyError::rejected(String::from_utf8_lossy(&output.stderr))) }
    }
}

/// A change to a cluster; the argument varies it from iteration to iteration.
type ClusterChange = dyn Fn(&mut Cluster, usize);

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    v[v.len() / 2]
}

fn rendered(cluster: &Cluster, local: &[usize]) -> (Ruleset, Duration) {
    let start = Instant::now();
    let ruleset = render(&NodeState { cluster, local: local.to_vec(), options: RenderOptions::default() });
    (ruleset, start.elapsed())
}

fn sync_sizes(sizes: &[(usize, usize)]) {
    println!("\n## Full sync (render + apply), median of 3\n");
    println!("| pods | policies | local pods | render | first apply | blue/green replace | elements | rules | JSON |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for &(pods, policies) in sizes {
        let cluster = synthetic::cluster(pods, policies);
        let node_pods: Vec<usize> = (0..pods).filter(|&i| cluster.endpoints[i].node.as_deref() == Some("node-0")).collect();
        let all: Vec<usize> = (0..pods).collect();
        for (label, local) in [("100 (one node)", &node_pods), ("all", &all)] {
            let ns = NetNs::new("bench");
            let (mut render_t, mut first_t, mut replace_t) = (Vec::new(), Vec::new(), Vec::new());
            let mut last = None;
            for _ in 0..3 {
                let (ruleset, t) = rendered(&cluster, local);
                render_t.push(ms(t));
                // First apply: the table is deleted and created in one transaction.
                let mut dataplane = Dataplane::new(InNs(&ns));
                let start = Instant::now();
                dataplane.replace(&ruleset).expect("first apply");
                first_t.push(ms(start.elapsed()));
                // Periodic resync: blue/green, three transactions.
                let start = Instant::now();
                dataplane.replace(&ruleset).expect("resync");
                replace_t.push(ms(start.elapsed()));
                last = Some(ruleset);
            }
            let ruleset = last.expect("ran");
            let bytes = document(&replace_commands(&ruleset)).len();
            println!(
                "| {pods} | {policies} | {label} | {:.0} ms | {:.0} ms | {:.0} ms | {} | {} | {:.1} MB |",
                median(render_t),
                median(first_t),
                median(replace_t),
                ruleset.element_count(),
                ruleset.rule_count(),
                bytes as f64 / 1e6
            );
        }
    }
}

/// The text form through `nft -f` against the JSON form through `nft -j -f`, for one table.
fn text_versus_json(pods: usize, policies: usize) {
    let cluster = synthetic::cluster(pods, policies);
    let all: Vec<usize> = (0..pods).collect();
    let (ruleset, _) = rendered(&cluster, &all);
    let ns = NetNs::new("bench");
    let time = |args: &[&str], input: &str| {
        let mut runs = Vec::new();
        for _ in 0..3 {
            let start = Instant::now();
            let output = ns.exec_with_input("nft", args, input);
            assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
            runs.push(ms(start.elapsed()));
        }
        median(runs)
    };
    let json = time(&["-j", "-f", "-"], &document(&replace_commands(&ruleset)));
    let text = time(&["-f", "-"], &text::replace_script(&ruleset));
    println!("\n## nft input format, {pods} pods x {policies} policies, all local ({} elements)\n", ruleset.element_count());
    println!("| format | apply (median of 3) |\n|---|---|\n| JSON (`nft -j -f -`) | {json:.0} ms |\n| text (`nft -f -`) | {text:.0} ms |");
}

fn incremental(pods: usize, policies: usize) {
    println!("\n## One incremental change at {pods} pods x {policies} policies (render + diff + apply), median of 5\n");
    println!("| local pods | change | time | transactions' commands |");
    println!("|---|---|---|---|");
    let base = synthetic::cluster(pods, policies);
    let node_pods: Vec<usize> = (0..pods).filter(|&i| base.endpoints[i].node.as_deref() == Some("node-0")).collect();
    let all: Vec<usize> = (0..pods).collect();
    for (label, local) in [("100 (one node)", &node_pods), ("all", &all)] {
        let ns = NetNs::new("bench");
        let mut dataplane = Dataplane::new(InNs(&ns));
        dataplane.replace(&rendered(&base, local).0).expect("apply");
        let changes: [(&str, Box<ClusterChange>); 3] = [
            // Pod 5 (ns-0, app-1, on node-0) is a peer of np-0; relabelled it leaves that peer
            // set and may become isolated by other policies.
            (
                "a pod's labels",
                Box::new(|c: &mut Cluster, i| {
                    c.endpoints[5].labels.insert("app".into(), format!("app-{}", 2 + i % 7));
                }),
            ),
            (
                "one policy's port",
                Box::new(|c: &mut Cluster, i| {
                    if let Some(rules) = c.policies[0].ingress.as_mut() {
                        rules[0].ports[0].port = palisade_model::PortSpec::Number(8000 + (i % 50) as u16);
                    }
                }),
            ),
            // A new replica of ns-0/app-1: it joins np-0's peers.
            (
                "a pod added",
                Box::new(|c: &mut Cluster, i| {
                    let mut pod = c.endpoints[5].clone();
                    pod.name = format!("extra-{i}");
                    pod.ips = vec![IpAddr::from([10, 250, (i / 250) as u8, (i % 250) as u8 + 1])];
                    c.endpoints.push(pod);
                }),
            ),
        ];
        for (what, change) in &changes {
            let mut times = Vec::new();
            let mut commands = 0;
            let base_ruleset = rendered(&base, local).0;
            for i in 0..5 {
                dataplane.update(&base_ruleset).expect("restore");
                let mut cluster = base.clone();
                change(&mut cluster, i);
                let start = Instant::now();
                let (ruleset, _) = rendered(&cluster, local);
                let report = dataplane.update(&ruleset).expect("update");
                times.push(ms(start.elapsed()));
                commands = report.commands;
            }
            dataplane.update(&base_ruleset).expect("restore");
            println!("| {label} | {what} | {:.1} ms | {commands} |", median(times));
        }
    }
}

fn main() {
    if !require_privileges() {
        return;
    }
    let mode = std::env::args().skip(1).find(|a| !a.starts_with('-')).unwrap_or_default();
    let quick = mode == "quick";
    let sizes: Vec<(usize, usize)> = match mode.as_str() {
        "quick" => vec![(1000, 100), (1000, 1000)],
        "10k" => vec![(10_000, 100), (10_000, 1000)],
        _ => vec![(1000, 100), (1000, 1000), (10_000, 100), (10_000, 1000), (50_000, 100), (50_000, 1000)],
    };
    sync_sizes(&sizes);
    if mode != "10k" {
        text_versus_json(if quick { 1000 } else { 10_000 }, 1000);
    }
    incremental(if quick { 1000 } else { 10_000 }, 1000);
}
