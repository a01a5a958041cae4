//! The packet path's own cost (needs root; throwaway network namespaces): new TCP connections
//! per second from a client pod to a server pod through the node's forward hook, with
//! - no table at all,
//! - a conntrack-only table (`ct state established,related accept`: the cost every stateful
//!   firewall pays, so the comparison isolates Palisade's own rules),
//! - Palisade's table for clusters of 100, 1,000 and 5,000 policies, 20 of them selecting
//!   the server (one of which allows the client),
//! - the 1,000-policy cluster with 20, 100 and 1,000 ClusterNetworkPolicies of 25 rules, 20
//!   selecting the server, the client accepted by the last rule of the last of them.
//!
//! Configurations are measured in interleaved rounds (the machine's speed drifts over
//! minutes), each round `SECONDS` per configuration; the table shows medians over rounds,
//! and the ratios are medians of each round's ratio (neighbouring measurements, so a slow
//! stretch of the machine weighs on both sides alike). The policy that allows the client is
//! the last of the 20 in name order: the worst case for the chain that judges the server.
//! `cargo bench -p palisade-nft --bench packet_path [-- ROUNDS]` (default 5);
//! `-- profile` (`-- profile-conntrack`) runs only the 1,000-policy (conntrack-only) table for
//! 20 s, to be sampled with `perf record -a -g`.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use palisade_conformance::synthetic;
use palisade_model::{Cluster, Endpoint, IpBlock, Labels, NAMESPACE_NAME_LABEL, Namespace, NamespaceScope, Origin, Peer, Policy, PortMatch, PortSpec, Protocol, Rule, Selector, WorkloadKind};
use palisade_nft::apply::{ApplyError, Dataplane, Nft};
use palisade_nft::{NodeState, RenderOptions, Ruleset, render};
use palisade_testbed::{NetNs, PodSpec, Testbed, require_privileges};

const SECONDS: f64 = 2.0;
/// The baseline every stateful firewall pays: connection tracking and one rule.
const CONNTRACK_ONLY: &str = "table inet conntrack_only {\n chain forward {\n  type filter hook forward priority 0; policy accept;\n  ct state established,related accept\n }\n}\n";
const SERVER: &str = "10.250.0.10";
const CLIENT: &str = "10.250.0.11";

struct InNs<'a>(&'a NetNs);

impl Nft for InNs<'_> {
    fn apply(&self, document: &str) -> Result<(), ApplyError> {
        let output = self.0.exec_with_input("nft", &["-j", "-f", "-"], document);
        if output.status.success() { Ok(()) } else { Err(ApplyError::rejected(String::from_utf8_lossy(&output.stderr))) }
    }
}

/// Client threads connecting at once: the machine is saturated, so the rate measures the
/// CPU a connection costs rather than the latency of waking threads.
const CLIENTS: usize = 4;

/// The server answers every connection with a greeting and a reset (no TIME_WAIT pile-up);
/// each client connects, reads the greeting and closes, in a loop. Only connections that
/// read the greeting count. (Some connects fail with ECONNRESET, with or without any table:
/// the server's reset arrives before the client's non-blocking connect reports success.)
fn connections_per_second(bed: &Testbed, port: u16, seconds: f64) -> f64 {
    let stop = Arc::new(AtomicBool::new(false));
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let listener = bed.pod("bench/server").enter(move || TcpListener::bind(SocketAddr::from(([0, 0, 0, 0], port))).expect("bind")).join().expect("bind");
    let listener = Arc::new(listener);
    let servers: Vec<_> = (0..2)
        .map(|_| {
            let (listener, stop, ready) = (listener.clone(), stop.clone(), ready_tx.clone());
            std::thread::spawn(move || {
                ready.send(()).expect("ready");
                for stream in listener.incoming() {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    if let Ok(mut stream) = stream {
                        let _ = stream.write_all(b"hello\n");
                        let _ = nix::sys::socket::setsockopt(&stream, nix::sys::socket::sockopt::Linger, &nix::libc::linger { l_onoff: 1, l_linger: 0 });
                    }
                }
            })
        })
        .collect();
    for _ in 0..2 {
        ready_rx.recv().expect("server ready");
    }
    let server_ip: IpAddr = SERVER.parse().expect("address");
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            bed.pod("bench/client").enter(move || {
                let target = SocketAddr::new(server_ip, port);
                let deadline = Instant::now() + Duration::from_secs_f64(seconds);
                let mut count = 0u64;
                while Instant::now() < deadline {
                    let mut buf = [0u8; 6];
                    if TcpStream::connect_timeout(&target, Duration::from_secs(1)).and_then(|mut s| s.read_exact(&mut buf)).is_ok() {
                        count += 1;
                    }
                }
                count
            })
        })
        .collect();
    let total: u64 = clients.into_iter().map(|c| c.join().expect("client")).sum();
    stop.store(true, Ordering::Relaxed);
    for _ in 0..2 {
        let _ = bed.pod("bench/client").enter(move || TcpStream::connect_timeout(&SocketAddr::new(server_ip, port), Duration::from_millis(100))).join();
    }
    for server in servers {
        let _ = server.join();
    }
    total as f64 / seconds
}

fn pod(name: &str, ip: &str) -> Endpoint {
    Endpoint {
        kind: WorkloadKind::Pod,
        namespace: "bench".into(),
        name: name.into(),
        labels: Labels::from([("app".to_string(), name.to_string())]),
        ips: vec![ip.parse().expect("address")],
        ports: vec![],
        host_network: false,
        node: None,
        origin: Origin::default(),
    }
}

/// `policies` policies in all: 20 select the server (rules from other namespaces' pods,
/// ipBlocks and ports; one allows the client), the rest come from the synthetic cluster.
fn cluster(policies: usize) -> Cluster {
    const SELECTING: usize = 20;
    let mut cluster = synthetic::cluster(1000, policies - SELECTING);
    cluster.endpoints.push(pod("server", SERVER));
    cluster.endpoints.push(pod("client", CLIENT));
    let labels = Labels::from([(NAMESPACE_NAME_LABEL.to_string(), "bench".to_string())]);
    cluster.namespaces.insert("bench".into(), Namespace { name: "bench".into(), labels, declared: true, origin: Origin::default() });
    for k in 0..SELECTING {
        let peers = if k == 0 {
            vec![Peer::Pods { namespaces: NamespaceScope::PolicyNamespace, pods: Selector::from_match_labels([("app", "client")]) }]
        } else if k % 2 == 0 {
            vec![Peer::IpBlock(IpBlock { cidr: format!("172.{}.0.0/16", 16 + k).parse().expect("CIDR"), except: vec![] })]
        } else {
            let ns = Selector::from_match_labels([("team", format!("t{}", k % 5).as_str())]);
            vec![Peer::Pods { namespaces: NamespaceScope::Selector(ns), pods: Selector::from_match_labels([("app", format!("app-{}", k % 10).as_str())]) }]
        };
        let ports = if k == 0 { vec![] } else { vec![PortMatch { protocol: Protocol::Tcp, port: PortSpec::Number(8000 + k as u16) }] };
        cluster.policies.push(Policy {
            namespace: "bench".into(),
            // The client's policy sorts last.
            name: if k == 0 { "server-zz-client".to_string() } else { format!("server-{k:02}") },
            subject: Selector::from_match_labels([("app", "server")]),
            ingress: Some(vec![Rule { peers, ports }]),
            egress: None,
            origin: Origin::default(),
        });
    }
    cluster
}

/// The 1,000-policy cluster plus `count` ClusterNetworkPolicies of 25 ingress rules each
/// (both tiers): 20 select the server, Admin tier, each rule Denying or Passing other
/// namespaces' pods, networks or ports the client does not use; the one whose rule Accepts
/// the client has the highest priority number (evaluated last). The rest select the
/// synthetic namespaces. A connection from the client crosses the Admin tier's map (one
/// lookup), the NetworkPolicy lookups, never the Baseline tier (a NetworkPolicy isolates
/// the server).
fn cluster_with_tiers(count: usize) -> Cluster {
    use palisade_model::cluster_policy::{Action, ClusterPeer, ClusterPolicy, ClusterProtocol, ClusterRule, NamespacedPods, Subject, Tier};
    const SELECTING: usize = 20;
    let mut cluster = cluster(1000);
    let server = Subject::Pods(NamespacedPods { namespaces: Selector::default(), pods: Selector::from_match_labels([("app", "server")]) });
    for k in 0..count {
        let selecting = k < SELECTING;
        let rules = (0..25)
            .map(|r| {
                let peer = match r % 3 {
                    0 => ClusterPeer::Namespaces(Selector::from_match_labels([("team", format!("t{}", (k + r) % 5).as_str())])),
                    1 => ClusterPeer::Networks(vec![format!("172.{}.{}.0/24", 16 + r % 16, k % 250).parse().expect("CIDR")]),
                    _ => ClusterPeer::Pods(NamespacedPods { namespaces: Selector::default(), pods: Selector::from_match_labels([("app", format!("app-{}", (k + r) % 10).as_str())]) }),
                };
                let accept_client = selecting && k == SELECTING - 1 && r == 24;
                ClusterRule {
                    name: Some(format!("rule-{r}")),
                    action: if accept_client {
                        Action::Accept
                    } else if r % 2 == 0 {
                        Action::Deny
                    } else {
                        Action::Pass
                    },
                    peers: if accept_client { vec![ClusterPeer::Pods(NamespacedPods { namespaces: Selector::default(), pods: Selector::from_match_labels([("app", "client")]) })] } else { vec![peer] },
                    protocols: (!accept_client).then(|| vec![ClusterProtocol::Ports { protocol: Protocol::Tcp, first: 8000 + r as u16, last: 8000 + r as u16 }]),
                }
            })
            .collect();
        let subject = if selecting { server.clone() } else { Subject::Namespaces(Selector::from_match_labels([("team", format!("t{}", k % 5).as_str())])) };
        cluster.upsert_cluster_policy(ClusterPolicy {
            name: format!("cnp-{k:04}"),
            tier: if selecting || k % 2 == 0 { Tier::Admin } else { Tier::Baseline },
            priority: (k % 1000) as u16,
            subject,
            ingress: rules,
            egress: Vec::new(),
            origin: Origin::default(),
        });
    }
    cluster
}

fn rendered(cluster: &Cluster) -> Ruleset {
    // The node of the two bench pods (the synthetic pods are elsewhere).
    let local = vec![cluster.endpoints.len() - 2, cluster.endpoints.len() - 1];
    render(&NodeState { cluster, local, options: RenderOptions::default() })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    v[v.len() / 2]
}

enum Config {
    NoTable,
    ConntrackOnly,
    Palisade(usize, Ruleset),
    /// 1,000 policies and this many ClusterNetworkPolicies.
    Tiers(usize, Ruleset),
}

fn main() {
    if !require_privileges() {
        return;
    }
    let rounds: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(5);
    let bed =
        Testbed::new(&[PodSpec { name: "bench/server".into(), ips: vec![SERVER.parse().expect("address")] }, PodSpec { name: "bench/client".into(), ips: vec![CLIENT.parse().expect("address")] }]);
    if std::env::args().any(|a| a == "profile") {
        Dataplane::new(InNs(&bed.node)).replace(&rendered(&cluster(1000))).expect("apply");
        println!("{:.0} connections/s", connections_per_second(&bed, 9000, 20.0));
        return;
    }
    if std::env::args().any(|a| a == "profile-conntrack") {
        let output = bed.node.exec_with_input("nft", &["-f", "-"], CONNTRACK_ONLY);
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        println!("{:.0} connections/s", connections_per_second(&bed, 9000, 20.0));
        return;
    }
    let mut configs = vec![Config::NoTable, Config::ConntrackOnly];
    for policies in [100, 1000, 5000] {
        configs.push(Config::Palisade(policies, rendered(&cluster(policies))));
    }
    for count in [20, 100, 1000] {
        configs.push(Config::Tiers(count, rendered(&cluster_with_tiers(count))));
    }
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); configs.len()];
    let mut port = 9000;
    for _ in 0..rounds {
        for (c, config) in configs.iter().enumerate() {
            let _ = bed.node.exec("nft", &["delete", "table", "inet", "palisade"]);
            let _ = bed.node.exec("nft", &["delete", "table", "inet", "conntrack_only"]);
            match config {
                Config::NoTable => {}
                Config::ConntrackOnly => {
                    let output = bed.node.exec_with_input("nft", &["-f", "-"], CONNTRACK_ONLY);
                    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
                }
                Config::Palisade(_, ruleset) | Config::Tiers(_, ruleset) => {
                    Dataplane::new(InNs(&bed.node)).replace(ruleset).expect("apply");
                }
            }
            port += 1;
            rates[c].push(connections_per_second(&bed, port, SECONDS));
        }
    }
    let ratio = |c: usize, base: usize| median(rates[c].iter().zip(&rates[base]).map(|(a, b)| a / b).collect());
    let ratios: Vec<(f64, f64)> = (0..configs.len()).map(|c| (ratio(c, 1), ratio(c, 0))).collect();
    let medians: Vec<f64> = rates.into_iter().map(median).collect();
    println!("\n## New connections per second through the forward path (median of {rounds} interleaved rounds, {SECONDS} s each)\n");
    println!("| table on the node | connections/s | vs conntrack-only | vs no table |");
    println!("|---|---|---|---|");
    for ((config, rate), (vs_conntrack, vs_none)) in configs.iter().zip(&medians).zip(&ratios) {
        let label = match config {
            Config::NoTable => "none".to_string(),
            Config::ConntrackOnly => "conntrack only (`ct state established,related accept`)".to_string(),
            Config::Palisade(policies, ruleset) => {
                format!("Palisade, {policies} policies (20 select the server; {} rules, {} elements)", ruleset.rule_count(), ruleset.element_count())
            }
            Config::Tiers(count, ruleset) => {
                format!("Palisade, 1,000 policies and {count} ClusterNetworkPolicies of 25 rules (20 select the server; {} rules, {} elements)", ruleset.rule_count(), ruleset.element_count())
            }
        };
        println!("| {label} | {rate:.0} | {vs_conntrack:.3} | {vs_none:.3} |");
    }
}
