//! CNI plugin benchmark (needs root; everything happens in throwaway network namespaces):
//! wall time of ADD and DEL over 200 pods, invoked as a runtime does (a fresh process per call,
//! env + stdin), and the plugin's peak memory.
//! `cargo bench -p palisade-cni --bench add_del` (`-- <pods>` for another count).

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Instant;

use nix::sys::resource::{UsageWho, getrusage};
use palisade_testbed::{NetNs, require_privileges};
use serde_json::json;

const PLUGIN: &str = env!("CARGO_BIN_EXE_palisade-cni");

/// Runs one plugin command from the current thread (which is inside the node namespace, so
/// the child is too) and returns its wall time in milliseconds.
fn invoke(command: &str, container: &str, netns: &str, config: &str) -> f64 {
    let start = Instant::now();
    let mut child = Command::new(PLUGIN)
        .env_clear()
        .env("CNI_COMMAND", command)
        .env("CNI_CONTAINERID", container)
        .env("CNI_IFNAME", "eth0")
        .env("CNI_NETNS", netns)
        .env("CNI_PATH", "/opt/cni/bin")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the plugin");
    child.stdin.take().expect("piped").write_all(config.as_bytes()).expect("write config");
    let output = child.wait_with_output().expect("wait for the plugin");
    let elapsed = start.elapsed().as_secs_f64() * 1000.0;
    assert!(output.status.success(), "{command} {container}: {}", String::from_utf8_lossy(&output.stdout));
    elapsed
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn row(label: &str, mut times: Vec<f64>) {
    times.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    println!("| {label} | {} | {:.2} ms | {:.2} ms | {:.2} ms | {:.2} ms |", times.len(), percentile(&times, 50.0), percentile(&times, 99.0), times[0], times[times.len() - 1]);
}

fn max_rss_of_children_kib() -> i64 {
    getrusage(UsageWho::RUSAGE_CHILDREN).expect("getrusage").max_rss()
}

fn main() {
    if !require_privileges() {
        return;
    }
    let pods: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(200);
    let node = NetNs::new("cnibench");
    node.ip(&["route", "add", "169.254.1.1/32", "dev", "lo"]);
    let namespaces: Vec<NetNs> = (0..pods).map(|_| NetNs::new("pod")).collect();
    let data = tempfile::tempdir().expect("temp dir");
    let config = json!({"cniVersion": "1.1.0", "name": "palisade", "type": "palisade-cni",
        "ipam": {"ranges": ["10.244.0.0/16", "fd00:10:244::/64"], "dataDir": data.path().display().to_string()}, "mtu": 1500})
    .to_string();
    // Every child so far is `ip`; its peak is the baseline the plugin's must exceed to show.
    let ip_peak = max_rss_of_children_kib();
    let paths: Vec<String> = namespaces.iter().map(|ns| format!("/run/netns/{}", ns.name)).collect();
    let (adds, dels, plugin_peak) = node
        .enter(move || {
            let adds: Vec<f64> = paths.iter().enumerate().map(|(i, p)| invoke("ADD", &format!("bench-{i}"), p, &config)).collect();
            let dels: Vec<f64> = paths.iter().enumerate().map(|(i, p)| invoke("DEL", &format!("bench-{i}"), p, &config)).collect();
            (adds, dels, max_rss_of_children_kib())
        })
        .join()
        .expect("bench thread");
    println!("\n## CNI plugin: ADD and DEL, one process per call, dual-stack, {pods} pods on one node\n");
    println!("| command | calls | median | p99 | min | max |");
    println!("|---|---|---|---|---|---|");
    row("ADD", adds);
    row("DEL", dels);
    if plugin_peak > ip_peak {
        println!("\nPeak RSS of the plugin process: {:.1} MiB", plugin_peak as f64 / 1024.0);
    } else {
        println!("\nPeak RSS of the plugin process: at most {:.1} MiB (no more than `ip`'s)", ip_peak as f64 / 1024.0);
    }
    drop(namespaces);
}
