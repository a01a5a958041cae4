//! `palisade dataplane render|apply` as operators run them.

mod support;

use std::process::{Command, Output};

use support::seed_files;

use palisade_testbed::{NetNs, require_privileges};

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

#[test]
fn render_prints_a_loadable_replacement_of_the_table() {
    let files = seed_files();
    let mut args = vec!["dataplane", "render", "-f"];
    args.extend(files.iter().map(String::as_str));
    let out = Command::new(env!("CARGO_BIN_EXE_palisade")).args(&args).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let rendered = String::from_utf8_lossy(&out.stdout);
    assert!(rendered.starts_with("table inet palisade\ndelete table inet palisade\ntable inet palisade {\n"), "{rendered}");
    assert!(rendered.contains("comment \"production/default-deny-ingress ingress[0]\""), "{rendered}");
    args.extend(["--deny-action", "drop", "-o", "json"]);
    let out = Command::new(env!("CARGO_BIN_EXE_palisade")).args(&args).output().unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert!(doc["nftables"].as_array().unwrap().len() > 5);
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"drop\""));
}

#[test]
fn render_for_one_node_only_dispatches_its_pods() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pods.yaml");
    std::fs::write(&file, "apiVersion: v1\nkind: Pod\nmetadata: {name: a, namespace: x}\nspec: {nodeName: n1, containers: []}\nstatus: {podIP: 10.0.0.1}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: b, namespace: x}\nspec: {nodeName: n2, containers: []}\nstatus: {podIP: 10.0.0.2}\n---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: deny, namespace: x}\nspec: {podSelector: {}}\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_palisade")).args(["dataplane", "render", "--node", "n1", "-f", &file.display().to_string()]).output().unwrap();
    let rendered = String::from_utf8_lossy(&out.stdout);
    assert!(rendered.contains("elements = { 10.0.0.1 : jump"), "{rendered}");
    assert!(!rendered.contains("10.0.0.2 : jump"), "{rendered}");
}

#[test]
fn apply_replaces_the_table_and_reports_what_changed() {
    if !require_privileges() {
        return;
    }
    let ns = NetNs::new("cli");
    let state = tempfile::tempdir().unwrap();
    let files = seed_files();
    let apply = |extra: &[&str], files: &[String]| {
        let mut args = vec!["dataplane", "apply", "--state-dir"];
        let state_dir = state.path().display().to_string();
        args.push(&state_dir);
        args.extend(extra);
        args.push("-f");
        args.extend(files.iter().map(String::as_str));
        ns.exec(env!("CARGO_BIN_EXE_palisade"), &args)
    };
    let first = apply(&[], &files);
    assert!(first.status.success(), "{}", text(&first));
    let report = String::from_utf8_lossy(&first.stdout);
    assert!(report.starts_with("table inet palisade: replaced the table in "), "{report}");
    assert!(report.contains("now 5 sets and maps"), "{report}");
    let listing = String::from_utf8_lossy(&ns.exec("nft", &["list", "table", "inet", "palisade"]).stdout).into_owned();
    assert!(listing.contains("chain forward_a {"), "{listing}");

    // Without the policy: the second apply reports the difference, and builds generation b.
    let without_policy: Vec<String> = files[..5].to_vec();
    let second = apply(&[], &without_policy);
    assert!(second.status.success(), "{}", text(&second));
    let report = String::from_utf8_lossy(&second.stdout);
    assert!(report.contains("sets/maps removed") && report.contains("chains removed"), "{report}");
    let listing = String::from_utf8_lossy(&ns.exec("nft", &["list", "table", "inet", "palisade"]).stdout).into_owned();
    assert!(listing.contains("chain forward_b {") && !listing.contains("forward_a"), "{listing}");

    // Bad input changes nothing.
    let bad = apply(&[], &["/nonexistent.yaml".to_string()]);
    assert_eq!(bad.status.code(), Some(2), "{}", text(&bad));
    let after = String::from_utf8_lossy(&ns.exec("nft", &["list", "table", "inet", "palisade"]).stdout).into_owned();
    assert_eq!(after, listing);
}
