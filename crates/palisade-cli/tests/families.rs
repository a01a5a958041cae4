//! `check` and `matrix` on IPv6-only and dual-stack clusters: a pair is judged in the
//! families both ends have addresses in, a pod keeps exactly the addresses the API gives
//! it, and pairs with no family in common are not flows.

use std::process::{Command, Output};

use serde_json::Value;

/// The example: an IPv6-only server and client, and a policy whose IPv4 ipBlock
/// must not admit the client (it has no IPv4 address).
const V6_ONLY: &str = "
apiVersion: v1
kind: Pod
metadata: {name: server, namespace: x, labels: {role: server}}
spec: {containers: [{name: c, ports: [{containerPort: 80}]}]}
status: {podIPs: [{ip: 'fd00:10:244::10'}]}
---
apiVersion: v1
kind: Pod
metadata: {name: v6out, namespace: x}
spec: {containers: [{name: c}]}
status: {podIPs: [{ip: 'fd00:99::20'}]}
---
apiVersion: v1
kind: Pod
metadata: {name: v6in, namespace: x}
spec: {containers: [{name: c}]}
status: {podIPs: [{ip: 'fd00:10:244::30'}]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: server, namespace: x}
spec:
  podSelector: {matchLabels: {role: server}}
  ingress: [{from: [{ipBlock: {cidr: 'fd00:10:244::/64'}}, {ipBlock: {cidr: 10.0.0.0/8}}]}]
";

/// Dual-stack pods judged differently per family, and single-stack pods of each family.
const DUAL: &str = "
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: x, labels: {app: web}}
spec: {containers: [{name: c, ports: [{containerPort: 80}]}]}
status: {podIPs: [{ip: 10.244.1.10}, {ip: 'fd00:10:244:1::10'}]}
---
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: x}
spec: {containers: [{name: c, ports: [{containerPort: 80}]}]}
status: {podIPs: [{ip: 10.244.1.11}, {ip: 'fd00:10:244:1::11'}]}
---
apiVersion: v1
kind: Pod
metadata: {name: old, namespace: x}
spec: {containers: [{name: c, ports: [{containerPort: 80}]}]}
status: {podIPs: [{ip: 10.244.1.12}]}
---
apiVersion: v1
kind: Pod
metadata: {name: new, namespace: x}
spec: {containers: [{name: c, ports: [{containerPort: 80}]}]}
status: {podIPs: [{ip: 'fd00:10:244:1::13'}]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web, namespace: x}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress: [{from: [{ipBlock: {cidr: 10.244.0.0/16}}]}]
";

fn run(yaml: &str, args: &[&str]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cluster.yaml");
    std::fs::write(&file, yaml).unwrap();
    let file = file.display().to_string();
    let mut all: Vec<&str> = vec![args[0], "-f", &file];
    all.extend(&args[1..]);
    Command::new(env!("CARGO_BIN_EXE_palisade")).args(&all).output().expect("palisade runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn an_ipv6_only_pod_is_not_admitted_by_an_ipv4_ip_block() {
    let out = run(V6_ONLY, &["check", "--from", "x/v6out", "--to", "x/server", "--port", "80"]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.starts_with("DENIED (IPv6): x/v6out -> x/server port 80/TCP"), "{text}");
    assert!(!text.contains("allowed by"), "{text}");
    assert!(text.contains("fd00:99::20 is not in fd00:10:244::/64") || text.contains("fd00:10:244::/64"), "{text}");
    // A client inside the IPv6 block is allowed, without any --family flag.
    let out = run(V6_ONLY, &["check", "--from", "x/v6in", "--to", "x/server", "--port", "80"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(stdout(&out).starts_with("ALLOWED (IPv6): x/v6in -> x/server"), "{}", stdout(&out));
}

#[test]
fn an_ipv6_only_cluster_needs_no_flag_for_matrix() {
    let out = run(V6_ONLY, &["matrix", "-o", "json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let entries = v["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 2, "two clients on the server's port: {v}");
    for e in entries {
        assert_eq!(e["families"], serde_json::json!([6]), "{e}");
        assert_eq!(e["allowed"], e["from"] == "x/v6in", "{e}");
    }
}

#[test]
fn a_dual_stack_pair_is_judged_in_both_families_and_reported_per_family_where_they_differ() {
    let out = run(DUAL, &["check", "--from", "x/client", "--to", "x/web", "--port", "80"]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "denied over IPv6: {text}");
    assert!(text.starts_with("DENIED (IPv4: ALLOWED, IPv6: DENIED): x/client -> x/web port 80/TCP"), "{text}");
    assert!(text.contains("over IPv4: ALLOWED") && text.contains("over IPv6: DENIED"), "{text}");
    // JSON: one flow per family, each naming it.
    let out = run(DUAL, &["check", "--from", "x/client", "--to", "x/web", "--port", "80", "-o", "json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let flows = v["flows"].as_array().unwrap();
    assert_eq!(flows.len(), 2, "{v}");
    assert_eq!((flows[0]["families"].clone(), flows[0]["allowed"].clone()), (serde_json::json!([4]), Value::Bool(true)));
    assert_eq!((flows[1]["families"].clone(), flows[1]["allowed"].clone()), (serde_json::json!([6]), Value::Bool(false)));
    // Where both families agree, one answer for both.
    let out = run(DUAL, &["check", "--from", "x/web", "--to", "x/client", "--port", "80"]);
    assert!(stdout(&out).starts_with("ALLOWED (IPv4 and IPv6): x/web -> x/client"), "{}", stdout(&out));
    // An explicit address picks its family.
    let out = run(DUAL, &["check", "--from", "fd00:10:244:1::11", "--to", "x/web", "--port", "80"]);
    assert!(stdout(&out).starts_with("DENIED (IPv6): x/client -> x/web"), "{}", stdout(&out));
}

#[test]
fn a_pair_with_no_family_in_common_is_not_a_flow() {
    let out = run(DUAL, &["check", "--from", "x/old", "--to", "x/new", "--port", "80"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(stdout(&out).starts_with("NOT A FLOW: x/old (IPv4 only) and x/new (IPv6 only) have no address family in common"), "{}", stdout(&out));

    let out = run(DUAL, &["matrix", "-o", "json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let entries = v["entries"].as_array().unwrap();
    assert!(!entries.iter().any(|e| (e["from"] == "x/old" && e["to"] == "x/new") || (e["from"] == "x/new" && e["to"] == "x/old")), "{v}");
    // client -> web differs per family: two entries; old -> web is IPv4 only.
    let pair: Vec<&Value> = entries.iter().filter(|e| e["from"] == "x/client" && e["to"] == "x/web").collect();
    assert_eq!(pair.len(), 2, "{pair:?}");
    let old: Vec<&Value> = entries.iter().filter(|e| e["from"] == "x/old" && e["to"] == "x/web").collect();
    assert_eq!((old.len(), old[0]["families"].clone(), old[0]["allowed"].clone()), (1, serde_json::json!([4]), Value::Bool(true)));
    let web_client: Vec<&Value> = entries.iter().filter(|e| e["from"] == "x/web" && e["to"] == "x/client").collect();
    assert_eq!(web_client[0]["families"], serde_json::json!([4, 6]));

    let out = run(DUAL, &["matrix", "--summary", "-o", "json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["pairsWithoutCommonFamily"], 2, "{v}");
    assert_eq!(v["families"].as_array().unwrap().len(), 2, "{v}");
    let out = run(DUAL, &["matrix", "--summary"]);
    assert!(stdout(&out).contains("2 endpoint pairs have no address family in common"), "{}", stdout(&out));

    let out = run(DUAL, &["matrix"]);
    let table = stdout(&out);
    assert!(table.contains("4 allowed over IPv4 only"), "{table}");
    // Row client (1st in display order), column web (4th): allowed over IPv4 only.
    let client_row = table.lines().find(|l| l.contains(" x/client")).unwrap();
    assert!(client_row.trim_end().ends_with("4"), "{table}");
}

#[test]
fn family_restricts_and_ipv4_clusters_read_as_before() {
    let out = run(DUAL, &["matrix", "-o", "json", "--family", "4"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let entries = v["entries"].as_array().unwrap();
    assert!(entries.iter().all(|e| e.get("families").is_none()), "IPv4 entries carry no families field: {v}");
    assert!(!entries.iter().any(|e| e["from"] == "x/new" || e["to"] == "x/new"), "x/new has no IPv4 address");
    let out = run(DUAL, &["matrix", "-o", "csv", "--family", "4"]);
    assert!(stdout(&out).starts_with("from,to,port,protocol,allowed\n"), "{}", stdout(&out));
}

#[test]
fn pods_without_status_get_addresses_in_the_clusters_families() {
    // A manifest without status in an IPv6-only cluster gets an IPv6 address (from
    // fd00:10:244::/64, inside the policy's block), not an IPv4 one.
    let yaml = format!("{V6_ONLY}---\napiVersion: v1\nkind: Pod\nmetadata: {{name: nostatus, namespace: x}}\nspec: {{containers: [{{name: c}}]}}\n");
    let out = run(&yaml, &["check", "--from", "x/nostatus", "--to", "x/server", "--port", "80"]);
    assert!(stdout(&out).starts_with("ALLOWED (IPv6): x/nostatus -> x/server"), "{}", stdout(&out));
    assert!(stdout(&out).contains("(ipBlock fd00:10:244::/64)"), "{}", stdout(&out));
    // With an explicit IPv4 --pod-cidr it gets an IPv4 address: no family in common.
    let out = run(&yaml, &["check", "--from", "x/nostatus", "--to", "x/server", "--port", "80", "--pod-cidr", "10.244.0.0/16"]);
    assert!(stdout(&out).starts_with("NOT A FLOW: x/nostatus (IPv4 only) and x/server (IPv6 only)"), "{}", stdout(&out));
}
