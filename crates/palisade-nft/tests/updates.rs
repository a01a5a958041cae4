//! Privileged tests of updates: incremental transactions leave the kernel exactly as a full
//! render would; a resync repairs changes made behind Palisade's back; and while a client
//! keeps connecting, 200 successive updates never show a state that is neither the old nor
//! the new one.

mod support;

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use palisade_model::Cluster;
use palisade_nft::apply::{ApplyKind, Dataplane};
use palisade_nft::{NodeState, RenderOptions, Ruleset, render, text};
use palisade_testbed::{Outcome, PodSpec, Prober, Servers, Testbed, normalize_listing, require_privileges};
use support::{NodeNft, cluster};

fn rendered(c: &Cluster) -> Ruleset {
    render(&NodeState { cluster: c, local: (0..c.endpoints.len()).collect(), options: RenderOptions::default() })
}

fn pod(name: &str, labels: &str, ip: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: x, labels: {{{labels}}}}}\nspec: {{containers: [{{name: c, ports: [{{containerPort: 80, name: http}}]}}]}}\nstatus: {{podIP: {ip}}}\n---\n"
    )
}

fn policy(name: &str, spec: &str) -> String {
    let spec: String = spec.lines().map(|l| format!("  {l}\n")).collect();
    format!("apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: {name}, namespace: x}}\nspec:\n{spec}---\n")
}

const WEB_IP: &str = "10.244.1.10";
/// db's address is next to a's (they merge into one range when both are peers); b's is not.
const PODS: [(&str, &str, &str); 4] = [("web", "app: web", WEB_IP), ("db", "app: db", "10.244.1.11"), ("a", "role: client", "10.244.1.12"), ("b", "role: other", "10.244.1.14")];

/// A node with the pods of `PODS` in namespace x.
fn pods_testbed() -> Testbed {
    let specs: Vec<PodSpec> = PODS.iter().map(|(n, _, ip)| PodSpec { name: format!("x/{n}"), ips: vec![ip.parse().unwrap()] }).collect();
    Testbed::new(&specs)
}

fn pods_yaml(labels_of_b: &str) -> String {
    PODS.iter().map(|(n, l, ip)| pod(n, if *n == "b" { labels_of_b } else { l }, ip)).collect()
}

#[test]
fn incremental_updates_leave_the_kernel_as_a_full_render_would() {
    if !require_privileges() {
        return;
    }
    let bed = pods_testbed();
    let web_policy = policy("web", "podSelector: {matchLabels: {app: web}}\ningress: [{from: [{podSelector: {matchLabels: {role: client}}}], ports: [{port: http}]}]");
    let db_policy = policy("db", "podSelector: {matchLabels: {app: db}}\ningress: [{from: [{podSelector: {matchLabels: {app: web}}}]}]");
    let web_and_db = web_policy.replace("[{podSelector: {matchLabels: {role: client}}}]", "[{podSelector: {matchLabels: {role: client}}}, {podSelector: {matchLabels: {app: db}}}]");
    let steps: Vec<(&str, String)> = vec![
        ("start", pods_yaml("role: other") + &web_policy),
        ("a label change adds a peer", pods_yaml("role: client") + &web_policy),
        ("db's address merges with a's", pods_yaml("role: client") + &web_and_db),
        ("a second policy", pods_yaml("role: client") + &web_policy + &db_policy),
        ("a policy edited", pods_yaml("role: client") + &web_policy.replace("port: http", "port: 8080") + &db_policy),
        ("a policy deleted", pods_yaml("role: client") + &db_policy),
        ("back to the start", pods_yaml("role: other") + &web_policy),
    ];
    let mut dataplane = Dataplane::new(NodeNft(&bed)).stream_elements_above(0).build_in_pieces_of(5);
    for (i, (what, yaml)) in steps.iter().enumerate() {
        let ruleset = rendered(&cluster(yaml));
        let report = dataplane.update(&ruleset).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(report.kind, if i == 0 { ApplyKind::Full } else { ApplyKind::Incremental }, "{what}");
        assert_eq!(normalize_listing(&bed.nft_list("palisade")), normalize_listing(&text::table(&dataplane.live().expect("applied"))), "{what}");
        if *what == "a label change adds a peer" {
            // Only map elements change: b's address joins the class of web's peers.
            assert!(report.changes.elements_added > 0, "{what}: {}", report.changes);
            let structural = report.changes.chains_changed + report.changes.chains_added + report.changes.sets_added + report.changes.sets_removed;
            assert_eq!(structural, 0, "{what}: {}", report.changes);
        }
        if *what == "db's address merges with a's" {
            // A new peer: its set of classes and db's class chain are prepared, the policy's
            // chain is rewritten to look it up; no set changes in place.
            assert_eq!((report.changes.sets_added, report.changes.sets_removed, report.changes.chains_added, report.changes.chains_changed), (1, 0, 1, 1), "{what}: {}", report.changes);
            let live = dataplane.live().expect("applied");
            assert_eq!(live.sets.iter().filter(|s| s.name.starts_with("peer_")).count(), 2, "{what}: {:?}", live.sets);
        }
    }
}

#[test]
fn resync_repairs_changes_made_behind_palisades_back() {
    if !require_privileges() {
        return;
    }
    let bed = pods_testbed();
    let web_policy = policy("web", "podSelector: {matchLabels: {app: web}}\ningress: [{from: [{podSelector: {matchLabels: {role: client}}}]}]");
    let with_b = rendered(&cluster(&(pods_yaml("role: client") + &web_policy)));
    let without_b = rendered(&cluster(&(pods_yaml("role: other") + &web_policy)));
    let mut dataplane = Dataplane::new(NodeNft(&bed)).stream_elements_above(0).build_in_pieces_of(5);
    dataplane.replace(&with_b).expect("apply");

    // Someone empties every chain. An incremental update cannot know; the periodic full
    // resync puts the table back.
    assert!(bed.node.exec("nft", &["flush", "table", "inet", "palisade"]).status.success());
    dataplane.replace(&with_b).expect("resync");
    assert_eq!(normalize_listing(&bed.nft_list("palisade")), normalize_listing(&text::table(&dataplane.live().expect("applied"))));

    // Someone deletes the element the next update removes: the kernel rejects the whole
    // incremental transaction, and the dataplane replaces the table instead.
    let live = dataplane.live().expect("applied");
    let map = live.maps.iter().find(|m| m.name.starts_with("class_addr_v4")).expect("the address map").name.clone();
    let output = bed.node.exec("nft", &["delete", "element", "inet", "palisade", &map, "{ 10.244.1.14 }"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let report = dataplane.update(&without_b).expect("update");
    assert_eq!(report.kind, ApplyKind::Full, "{report}");
    assert_eq!(normalize_listing(&bed.nft_list("palisade")), normalize_listing(&text::table(&dataplane.live().expect("applied"))));
    assert_eq!(dataplane.applied(), Some(&without_b));
}

#[test]
fn a_replace_deletes_what_an_interrupted_update_left() {
    if !require_privileges() {
        return;
    }
    let bed = pods_testbed();
    let web_policy = policy("web", "podSelector: {matchLabels: {app: web}}\ningress: [{from: [{podSelector: {matchLabels: {role: client}}}]}]");
    let ruleset = rendered(&cluster(&(pods_yaml("role: client") + &web_policy)));
    let mut dataplane = Dataplane::new(NodeNft(&bed));
    dataplane.replace(&ruleset).expect("apply");
    // What a prepare transaction makes before the process is killed, unrecorded: a set and
    // a chain using it, of the generation in force.
    let script = "add set inet palisade peer_0000deadbeef_a { type mark; elements = { 0x00070000 } }\nadd chain inet palisade in_0000deadbeef_a\nadd rule inet palisade in_0000deadbeef_a meta mark & 0xffff0000 == @peer_0000deadbeef_a return\n";
    let output = bed.node.exec_with_input("nft", &["-f", "-"], script);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    dataplane.replace(&ruleset).expect("resync");
    assert_eq!(normalize_listing(&bed.nft_list("palisade")), normalize_listing(&text::table(&dataplane.live().expect("applied"))), "the strays are gone");
}

/// The control of `two_hundred_updates_under_load_are_atomic`: the same load against a
/// ruleset that never changes must see only the policy's answers (no timeouts or resets from
/// the test bed itself at this rate), so that a violation there can only be an update's.
#[test]
fn control_load_without_updates_sees_only_the_policy() {
    if !require_privileges() {
        return;
    }
    let bed = pods_testbed();
    let _servers = Servers::start(bed.pod("x/web"), &[80], &[]);
    let web = WEB_IP.parse::<IpAddr>().unwrap();
    let base = policy("web", "podSelector: {matchLabels: {app: web}}\ningress:\n- from: [{podSelector: {matchLabels: {role: client}}}]\n  ports: [{port: 80}]");
    Dataplane::new(NodeNft(&bed)).replace(&rendered(&cluster(&(pods_yaml("role: other") + &base)))).expect("apply");
    // Both clients at once, as in the test.
    let run = |pod: &str, expected: Outcome| {
        let prober = Prober::new(bed.pod(pod));
        let name = pod.to_string();
        std::thread::spawn(move || {
            let (mut attempts, mut unexpected) = (0, Vec::new());
            let deadline = std::time::Instant::now() + Duration::from_secs(3);
            while std::time::Instant::now() < deadline {
                let outcome = prober.probe(web, 80, false, Duration::from_millis(500));
                attempts += 1;
                if outcome != expected {
                    unexpected.push(format!("attempt {attempts} from {name}: {outcome:?}"));
                }
            }
            (attempts, unexpected)
        })
    };
    for client in [run("x/a", Outcome::Connected), run("x/b", Outcome::Refused)] {
        let (attempts, unexpected) = client.join().expect("client");
        assert!(attempts > 100, "only {attempts} connection attempts");
        assert!(unexpected.is_empty(), "{attempts} attempts: {unexpected:?}");
    }
}

/// Clients connect in a loop while 200 incremental updates and then 50 full replaces are
/// applied. Every state allows `a` to reach
/// web:80 and denies `b`; the updates change everything around that (other rules, other
/// policies, so chains are replaced and verdict map elements move). Any refused connection
/// from `a`, or any accepted one from `b`, would be a state that is neither old nor new.
#[test]
fn two_hundred_updates_under_load_are_atomic() {
    if !require_privileges() {
        return;
    }
    let bed = pods_testbed();
    let _servers = Servers::start(bed.pod("x/web"), &[80], &[]);
    let web = WEB_IP.parse::<IpAddr>().unwrap();
    let states: Vec<Ruleset> = (0..200)
        .map(|i| {
            let extra_port = 1000 + i;
            // Every third state also admits db (10.244.1.11) on port 80: its address and a's
            // (10.244.1.12) merge into one range, so the element a's connections hit is
            // replaced by another.
            let db_port = if i % 3 == 0 { "80".to_string() } else { extra_port.to_string() };
            let base = policy(
                "web",
                &format!("podSelector: {{matchLabels: {{app: web}}}}\ningress:\n- from: [{{podSelector: {{matchLabels: {{role: client}}}}}}]\n  ports: [{{port: 80}}]\n- from: [{{podSelector: {{matchLabels: {{app: db}}}}}}]\n  ports: [{{port: {db_port}}}]"),
            );
            // Every other state adds a second policy selecting web: its chain changes name.
            let second = if i % 2 == 1 {
                policy("also-web", &format!("podSelector: {{matchLabels: {{app: web}}}}\ningress: [{{from: [{{ipBlock: {{cidr: 192.0.2.{}/32}}}}]}}]", i % 250))
            } else {
                String::new()
            };
            rendered(&cluster(&(pods_yaml("role: other") + &base + &second)))
        })
        .collect();
    let mut dataplane = Dataplane::new(NodeNft(&bed)).stream_elements_above(0).build_in_pieces_of(5);
    dataplane.replace(&states[0]).expect("apply");

    let stop = Arc::new(AtomicBool::new(false));
    let violations = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let attempts = Arc::new(AtomicUsize::new(0));
    let spawn_client = |pod: &str, must_connect: bool| {
        let prober = Prober::new(bed.pod(pod));
        let name = pod.to_string();
        let (stop, violations, attempts) = (stop.clone(), violations.clone(), attempts.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let outcome = prober.probe(web, 80, false, Duration::from_millis(500));
                attempts.fetch_add(1, Ordering::Relaxed);
                let expected = if must_connect { Outcome::Connected } else { Outcome::Refused };
                if outcome != expected {
                    let n = attempts.load(Ordering::Relaxed);
                    violations.lock().expect("lock").push(format!("attempt {n} from {name}: {outcome:?}"));
                }
            }
        })
    };
    let clients = [spawn_client("x/a", true), spawn_client("x/b", false)];
    let mut incremental = 0;
    for state in &states[1..] {
        let report = dataplane.update(state).expect("update");
        incremental += usize::from(report.kind == ApplyKind::Incremental);
    }
    // The periodic resync replaces the whole table (a new base chain, new everything): the
    // same guarantee must hold.
    for state in states.iter().rev().take(50) {
        dataplane.replace(state).expect("resync");
    }
    dataplane.replace(&states[199]).expect("resync");
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.join().expect("client thread");
    }
    assert_eq!(normalize_listing(&bed.nft_list("palisade")), normalize_listing(&text::table(&dataplane.live().expect("applied"))));
    assert_eq!(incremental, 199, "every update after the first is incremental");
    let attempts = attempts.load(Ordering::Relaxed);
    assert!(attempts > 200, "only {attempts} connection attempts during the updates");
    let violations = violations.lock().expect("lock");
    assert!(violations.is_empty(), "connections saw a state that was neither old nor new ({attempts} attempts): {violations:?}");
}
