//! The `palisade` binary as users and scripts call it: arguments, output and exit status.

mod support;

use std::process::{Command, Output};

use support::seed_files;

fn palisade(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_palisade")).args(args).output().expect("palisade runs")
}

fn check(from: &str, to: &str, port: &str, extra: &[&str]) -> Output {
    let files = seed_files();
    let mut args = vec!["check", "-f"];
    args.extend(files.iter().map(String::as_str));
    args.extend(["--from", from, "--to", to, "--port", port]);
    args.extend(extra);
    palisade(&args)
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn seed_develop_to_production_nginx_is_denied_and_explained() {
    let out = check("develop/curl", "production/svc/nginx", "80", &[]);
    assert_eq!(out.status.code(), Some(1), "{}{}", stdout(&out), stderr(&out));
    let text = stdout(&out);
    assert!(text.starts_with("DENIED: develop/curl -> Service production/nginx port 80 (0 of 1 backends allow it)"), "{text}");
    assert!(text.contains("production/nginx-deployment is isolated for ingress by production/default-deny-ingress"), "{text}");
    assert!(text.contains("from[0] (podSelector {}): without a namespaceSelector it only matches pods in the policy's namespace production; develop/curl is in develop"), "{text}");
    assert!(text.contains("egress from develop/curl: allowed: no NetworkPolicy selects develop/curl for egress"), "{text}");
    assert!(text.contains("namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: develop}}"), "suggests a fix: {text}");
    assert_eq!(stderr(&out), "", "the seed manifests declare their namespaces");
}

#[test]
fn seed_production_to_nginx_is_allowed_with_the_rule_that_allows_it() {
    let out = check("production/curl", "production/svc/nginx", "80", &[]);
    assert_eq!(out.status.code(), Some(0));
    let text = stdout(&out);
    assert!(text.starts_with("ALLOWED: production/curl -> Service production/nginx port 80 (1 of 1 backends allow it)"), "{text}");
    assert!(text.contains("ingress to production/nginx-deployment: allowed by production/default-deny-ingress ingress[0]"), "{text}");
}

#[test]
fn json_output_is_structured() {
    let out = check("develop/curl", "production/deploy/nginx-deployment", "80", &["-o", "json"]);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    assert_eq!(v["allowed"], false);
    let flow = &v["flows"][0];
    assert_eq!(flow["to"], "production/nginx-deployment");
    assert_eq!(flow["egress"]["decision"], "notIsolated");
    assert_eq!(flow["ingress"]["decision"], "denied");
    assert_eq!(flow["ingress"]["isolatedBy"][0]["name"], "default-deny-ingress");
    assert_eq!(flow["ingress"]["misses"][0]["peers"][0]["reason"], "otherNamespace");
}

#[test]
fn external_sources_and_addresses() {
    let out = check("203.0.113.10", "production/nginx-deployment", "80", &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("egress from 203.0.113.10: allowed: the address is outside the cluster"));
    assert!(stdout(&out).contains("- ipBlock: {cidr: 203.0.113.10/32}"), "{}", stdout(&out));
    let out = check("production/curl", "198.51.100.7", "443", &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
}

#[test]
fn bad_input_exits_2_with_a_clear_error_and_evaluates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("policy.yaml");
    std::fs::write(
        &bad,
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: p\n  namespace: production\nspec:\n  ingress:\n  - from:\n    - ipBlock:\n        cidr: 10.0.0/8\n",
    )
    .unwrap();
    let mut files = seed_files();
    files.push(bad.display().to_string());
    let mut args = vec!["check", "-f"];
    args.extend(files.iter().map(String::as_str));
    args.extend(["--from", "develop/curl", "--to", "production/nginx-deployment", "--port", "80"]);
    let out = palisade(&args);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(stdout(&out), "");
    let err = stderr(&out);
    assert!(err.contains(&format!("{}:10:15: NetworkPolicy production/p: spec.ingress[0].from[0].ipBlock.cidr: invalid CIDR \"10.0.0/8\"", bad.display())), "{err}");
    assert!(err.contains("error: 1 problem(s) in the input; nothing was evaluated"), "{err}");
}

#[test]
fn unknown_and_ambiguous_names() {
    let out = check("develop/nope", "production/nginx-deployment", "80", &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("no pod or workload \"nope\" in namespace \"develop\" (it has: deploy/curl)"), "{}", stderr(&out));
    let out = check("staging/curl", "production/nginx-deployment", "80", &[]);
    assert!(stderr(&out).contains("there is no namespace \"staging\"; namespaces: develop, production"), "{}", stderr(&out));
    let out = check("production/nginx", "production/curl", "80", &[]);
    assert!(stderr(&out).contains("production/nginx is a Service; name it production/svc/nginx"), "{}", stderr(&out));
    let out = check("production/svc/nginx", "production/curl", "80", &[]);
    assert!(stderr(&out).contains("a Service does not send traffic"), "{}", stderr(&out));
    let out = check("production/curl", "production/svc/nginx", "443", &[]);
    assert!(stderr(&out).contains("Service production/nginx has no such port (it has: 80/TCP)"), "{}", stderr(&out));
    let out = check("production/curl", "production/nginx-deployment", "http", &[]);
    assert!(stderr(&out).contains("production/nginx-deployment has no container port named \"http\""), "{}", stderr(&out));

    let dir = tempfile::tempdir().unwrap();
    let twins = dir.path().join("twins.yaml");
    std::fs::write(&twins, "apiVersion: v1\nkind: Pod\nmetadata: {name: web, namespace: x}\nspec: {containers: []}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: x}\nspec:\n  selector: {matchLabels: {a: b}}\n  template: {metadata: {labels: {a: b}}, spec: {containers: []}}\n").unwrap();
    let t = twins.display().to_string();
    let out = palisade(&["check", "-f", &t, "--from", "x/web", "--to", "x/pod/web", "--port", "80"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("x/web is ambiguous: it names 2; use one of: x/pod/web, x/deploy/web"), "{}", stderr(&out));
    let out = palisade(&["check", "-f", &t, "--from", "x/deploy/web", "--to", "x/pod/web", "--port", "80"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn usage_errors_exit_2() {
    let out = palisade(&["check", "-f", "x.yaml", "--from", "a/b", "--to", "a/c", "--port", "80", "--protocol", "tcp"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("unsupported protocol \"tcp\""), "{}", stderr(&out));
}

#[test]
fn matrix_json_has_the_documented_shape() {
    let files = seed_files();
    let mut args = vec!["matrix", "-o", "json", "--port", "80", "-f"];
    args.extend(files.iter().map(String::as_str));
    let out = palisade(&args);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["endpoints"], serde_json::json!(["develop/curl", "production/curl", "production/nginx-deployment"]));
    let entries = v["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 6);
    let find = |from: &str, to: &str| entries.iter().find(|e| e["from"] == from && e["to"] == to).unwrap()["allowed"].clone();
    assert_eq!(find("develop/curl", "production/nginx-deployment"), false);
    assert_eq!(find("production/curl", "production/nginx-deployment"), true);
    assert_eq!(find("production/nginx-deployment", "develop/curl"), true);
    assert_eq!(entries[0]["protocol"], "TCP");
    assert_eq!(entries[0]["port"], 80);
}

#[test]
fn matrix_table_and_csv() {
    let files = seed_files();
    let mut args = vec!["matrix", "-f"];
    args.extend(files.iter().map(String::as_str));
    let out = palisade(&args);
    let expected = "80/TCP: 1 of 2 probes allowed   (. allowed  X denied  - not probed)
                               1 2 3
1 develop/curl                 - - X
2 production/curl              - - .
3 production/nginx-deployment  - - -
";
    assert_eq!(stdout(&out), expected);
    args.extend(["-o", "csv"]);
    let out = palisade(&args);
    assert_eq!(stdout(&out), "from,to,port,protocol,allowed\ndevelop/curl,production/nginx-deployment,80,TCP,false\nproduction/curl,production/nginx-deployment,80,TCP,true\n");
}

#[test]
fn matrix_summary_groups_equal_endpoints() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::from("apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n---\n");
    for i in 0..5 {
        text.push_str(&format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: web-{i}, namespace: shop, labels: {{app: web}}}}\nspec: {{containers: [{{name: c, ports: [{{containerPort: 80}}]}}]}}\n---\n"
        ));
    }
    text.push_str("apiVersion: v1\nkind: Pod\nmetadata: {name: db, namespace: shop, labels: {app: db}}\nspec: {containers: [{name: c, ports: [{containerPort: 5432}]}]}\n---\n");
    text.push_str("apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: db, namespace: shop}\nspec:\n  podSelector: {matchLabels: {app: db}}\n  ingress: [{from: [{podSelector: {matchLabels: {app: web}}}], ports: [{port: 5432}]}]\n");
    let file = dir.path().join("shop.yaml");
    std::fs::write(&file, text).unwrap();
    let out = palisade(&["matrix", "--summary", "-o", "json", "-f", &file.display().to_string()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["endpoints"], 6);
    assert_eq!(v["classes"].as_array().unwrap().len(), 2);
    let db_port = v["ports"].as_array().unwrap().iter().find(|p| p["port"] == 5432).unwrap();
    assert_eq!(db_port["pairs"], 5);
    assert_eq!(db_port["allowedPairs"], 5);
    let web_port = v["ports"].as_array().unwrap().iter().find(|p| p["port"] == 80).unwrap();
    assert_eq!(web_port["pairs"], 25, "5 web pods each reached by the 5 other endpoints");
    assert_eq!(web_port["allowedPairs"], 25);
}

#[test]
fn verbose_lists_skipped_objects_and_undeclared_namespaces_warn() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("m.yaml");
    std::fs::write(&file, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, namespace: x}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: x}\nspec: {containers: []}\n").unwrap();
    let f = file.display().to_string();
    let quiet = palisade(&["matrix", "-f", &f]);
    assert!(!stderr(&quiet).contains("ConfigMap"));
    assert!(stderr(&quiet).contains("warning: "), "{}", stderr(&quiet));
    assert!(stderr(&quiet).contains("namespace \"x\" is not declared"));
    let loud = palisade(&["matrix", "-v", "-f", &f]);
    assert!(stderr(&loud).contains("ConfigMap x/c: skipped: kind ConfigMap (v1) does not affect NetworkPolicy analysis"), "{}", stderr(&loud));
}

/// ClusterNetworkPolicy tiers explained in plain words and rendered by the dataplane, which
/// refuses the domainNames peers it cannot enforce; a bad policy is an error with its line
/// and field.
#[test]
fn cluster_network_policy_decisions_are_explained() {
    let file = support::workspace().join("examples/cluster-network-policy/monitoring.yaml").display().to_string();
    let check = |from: &str, to: &str| palisade(&["check", "-f", &file, "--from", from, "--to", to, "--port", "80"]);
    let out = check("monitoring/grafana", "prod/web");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stdout(&out)
            .contains("ingress to prod/web: DENIED by ClusterNetworkPolicy protect-prod (Admin tier, priority 10) ingress[1] \"nothing-else-from-monitoring\"\n    (no NetworkPolicy can allow it)"),
        "{}",
        stdout(&out)
    );
    let out = check("monitoring/prometheus", "prod/web");
    assert!(
        stdout(&out).contains("ingress to prod/web: passed on by ClusterNetworkPolicy protect-prod (Admin tier, priority 10) ingress[0] \"prometheus-passes\" to NetworkPolicy and the Baseline tier; then DENIED by ClusterNetworkPolicy baseline (Baseline tier, priority 10) ingress[0] \"default-deny\""),
        "{}",
        stdout(&out)
    );
    let out = check("prod/web", "monitoring/grafana");
    assert!(
        stdout(&out).contains("egress from prod/web: allowed: no NetworkPolicy selects prod/web for egress and no ClusterNetworkPolicy rule matches, so it is allowed by default"),
        "{}",
        stdout(&out)
    );

    // The dataplane renders the tiers: a verdict map per tier, a chain per rule.
    let out = palisade(&["dataplane", "render", "-f", &file]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let table = stdout(&out);
    assert!(table.contains("counter goto deny comment \"protect-prod (Admin tier, priority 10) ingress[1] 'nothing-else-from-monitoring': Deny\""), "{table}");
    assert!(table.contains("vmap @admin_in_") && table.contains("vmap @baseline_in_") && table.contains("flags interval"), "{table}");

    // domainNames peers are refused by the dataplane, naming the field.
    let dir = tempfile::tempdir().unwrap();
    let names = dir.path().join("names.yaml");
    let mut text = std::fs::read_to_string(&file).unwrap();
    text.push_str("---\napiVersion: policy.networking.k8s.io/v1beta1\nkind: ClusterNetworkPolicy\nmetadata: {name: to-registry}\nspec:\n  tier: Admin\n  priority: 20\n  subject: {namespaces: {}}\n  egress:\n  - {action: Accept, to: [{domainNames: [registry.example.com]}]}\n");
    std::fs::write(&names, text).unwrap();
    let out = palisade(&["dataplane", "render", "-f", &names.display().to_string()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("names.yaml:")
            && stderr(&out).contains("ClusterNetworkPolicy to-registry: spec.egress[0].to[0].domainNames: Palisade's dataplane does not enforce domainNames peers yet"),
        "{}",
        stderr(&out)
    );

    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        std::fs::read_to_string(&file).unwrap().replace("priority: 10\n  subject: {namespaces: {matchLabels: {team: prod}}}", "priority: 5000\n  subject: {namespaces: {matchLabels: {team: prod}}}"),
    )
    .unwrap();
    let out = palisade(&["check", "-f", &bad.display().to_string(), "--from", "prod/web", "--to", "monitoring/grafana", "--port", "80"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("bad.yaml:33:13: ClusterNetworkPolicy protect-prod: spec.priority") && stderr(&out).contains("spec.priority") && stderr(&out).contains("must be between 0 and 1000"),
        "{}",
        stderr(&out)
    );
}
