//! Privileged: libnftables in process applies exactly what the `nft` binary applies, in the
//! network namespace of the calling thread, with the kernel's refusals as errors and dry
//! runs that change nothing.

mod support;

use palisade_nft::apply::{ApplyError, Dataplane, Nft};
use palisade_nft::{Libnftables, NodeState, RenderOptions, render};
use palisade_testbed::{NetNs, normalize_listing, require_privileges};
use support::{NsNft, cluster};

const BEFORE: &str = "
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: x, labels: {app: web}}
spec: {containers: [{name: c, ports: [{containerPort: 8080, name: http}]}]}
status: {podIPs: [{ip: 10.244.1.10}, {ip: 'fd00::10'}]}
---
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: y, labels: {app: client}}
spec: {containers: [{name: c}]}
status: {podIPs: [{ip: 10.244.2.10}, {ip: 'fd00::20'}]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web, namespace: x}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress: [{from: [{namespaceSelector: {}, podSelector: {matchLabels: {app: client}}}], ports: [{port: http}]}]
";

fn listing(ns: &NetNs) -> Vec<String> {
    let output = ns.exec("nft", &["list", "table", "inet", "palisade"]);
    normalize_listing(&String::from_utf8_lossy(&output.stdout))
}

#[test]
fn the_library_applies_what_the_binary_applies() {
    if !require_privileges() {
        return;
    }
    let Ok(_) = Libnftables::load() else {
        panic!("libnftables.so.1 does not load (install the nftables package)");
    };
    let before = cluster(BEFORE);
    let after = cluster(&BEFORE.replace("{port: http}", "{port: http}, {port: 9000, endPort: 9100}").replace("10.244.2.10", "10.244.2.11"));
    let states: Vec<palisade_nft::Ruleset> =
        [&before, &after, &before].iter().map(|c| render(&NodeState { cluster: c, local: (0..c.endpoints.len()).collect(), options: RenderOptions::default() })).collect();
    let (by_library, by_binary) = (NetNs::new("libnft"), NetNs::new("nftbin"));
    let mut binary = Dataplane::new(NsNft(&by_binary));
    let in_thread = states.clone();
    let library_listings = by_library.enter(move || {
        let mut library = Dataplane::new(Libnftables::load().unwrap());
        // A full replace, an incremental update, a blue/green replace.
        library.replace(&in_thread[0]).unwrap();
        library.update(&in_thread[1]).unwrap();
        library.replace(&in_thread[2]).unwrap();
        // The error buffer comes back as the error; a dry run changes nothing.
        let missing = r#"{"nftables": [{"add": {"element": {"family": "inet", "table": "palisade", "name": "nope", "elem": [80]}}}]}"#;
        let nft = Libnftables::load().unwrap();
        let refused = nft.apply(missing).unwrap_err();
        let flush = r#"{"nftables": [{"flush": {"table": {"family": "inet", "name": "palisade"}}}]}"#;
        nft.check(flush).unwrap();
        (refused, nft.check(missing).is_err())
    });
    binary.replace(&states[0]).unwrap();
    binary.update(&states[1]).unwrap();
    binary.replace(&states[2]).unwrap();
    let (refused, dry_run_refused) = library_listings.join().unwrap();
    assert!(matches!(&refused, ApplyError::Rejected { stderr, .. } if stderr.contains("No such file or directory")), "{refused}");
    assert_eq!(refused.reason(), "object_missing");
    assert!(dry_run_refused, "a dry run reports what the kernel would refuse");
    // The flush was a dry run; the library's table is the binary's, element for element.
    let library_table = listing(&by_library);
    assert!(library_table.iter().any(|l| l.contains("10.244.2.10")), "{library_table:?}");
    assert_eq!(library_table, listing(&by_binary));
    // And nothing reached the test's own namespace.
    let here = std::process::Command::new("nft").args(["list", "table", "inet", "palisade"]).output().unwrap();
    assert!(!here.status.success() || !String::from_utf8_lossy(&here.stdout).contains("10.244.2.10"));
}
