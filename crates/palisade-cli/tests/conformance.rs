//! `palisade conformance`, the real binary, against labs of its own (root): the built-in
//! suite passes on real packets; it fails, with the right cell marked, when a pod's label
//! changes behind its back; case files in both shapes run; a malformed one is refused with
//! its line and field before anything is made.

mod support;

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use palisade_testbed::require_privileges;
use support::{PALISADE, TestLab};

fn conformance(lab: &TestLab, args: &[&str]) -> Output {
    Command::new(PALISADE).arg("conformance").args(["--lab", &lab.name]).args(args).output().expect("run palisade conformance")
}

fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

#[test]
fn the_built_in_suite_passes_on_a_fresh_two_node_lab() {
    if !require_privileges() {
        return;
    }
    let lab = TestLab::new();
    let started = Instant::now();
    let output = conformance(&lab, &["--nodes", "2", "-o", "junit", "--report", &lab.file("report.xml", "")]);
    let report = text(&output);
    assert!(output.status.success(), "{report}");
    // The 48 upstream cases, Palisade's own 9, upstream's 8 ClusterNetworkPolicy tests.
    assert!(report.contains("tests=\"65\" failures=\"0\" skipped=\"0\""), "{report}");
    assert_eq!(report.matches("<testcase ").count(), 65, "{report}");
    assert!(report.contains("name=\"own-09 dual-stack pods"), "{report}");
    assert!(report.contains("name=\"cnp-integration Admin Deny beats a NetworkPolicy"), "{report}");
    eprintln!("65 cases in {:.0} s", started.elapsed().as_secs_f64());
    // The lab it started is gone again.
    assert!(!lab.paths.state_dir.exists(), "the run left its lab behind");
}

const OWN_CASE: &str = "
legacy_cases:
- id: own-relabel
  title: ingress from pods labelled app=client
  namespaces: {prod: {labels: {env: prod}}, dev: {}}
  topology:
  - {pod: prod/web, labels: {app: web}, containerPorts: [http/TCP:8080, UDP:5353]}
  - {pod: dev/client, labels: {app: client}, containerPorts: [TCP:8080]}
  - {pod: dev/other, labels: {app: other}, containerPorts: [TCP:8080]}
  steps:
  - action: create_policy
    namespace: prod
    policy:
      metadata: {name: web}
      spec:
        podSelector: {matchLabels: {app: web}}
        ingress: [{from: [{namespaceSelector: {}, podSelector: {matchLabels: {app: client}}}], ports: [{port: http}]}]
  - action: probe
    port: 8080
    protocol: TCP
    probes:
    - {from: dev/client, to: prod/web, expect: allow}
    - {from: dev/other, to: prod/web, expect: deny}
  - {action: replace_pod_labels, pod: dev/other, labels: {app: client}}
  - {action: set_namespace_labels, namespace: prod, labels: {env: staging}}
  - action: probe
    port: 8080
    protocol: TCP
    probes:
    - {from: dev/other, to: prod/web, expect: allow}
  - action: probe
    port: 5353
    protocol: UDP
    probes:
    - {from: dev/client, to: prod/web, expect: deny}
";

const UPSTREAM_SHAPE: &str = "
cases:
- id: upstream-shape
  title: deny ingress to x
  servers: {ports: [80], protocols: [TCP]}
  topology: [x/a, y/a]
  steps:
  - action: create_policy
    namespace: x
    policy: {metadata: {name: deny}, spec: {podSelector: {}, policyTypes: [Ingress]}}
  - action: probe
    port: 80
    protocol: TCP
    probes:
    - {from: y/a, to: x/a, port: 80, protocol: TCP, expect: deny}
    - {from: x/a, to: y/a, port: 80, protocol: TCP, expect: allow}
";

#[test]
fn case_files_in_both_shapes_run_and_a_changed_label_fails_the_right_cell() {
    if !require_privileges() {
        return;
    }
    let lab = TestLab::up(2);
    let own = lab.file("own.yaml", OWN_CASE);
    let upstream = lab.file("upstream.yaml", UPSTREAM_SHAPE);
    let output = conformance(&lab, &["--cases", &own, "--cases", &upstream]);
    let report = text(&output);
    assert!(output.status.success(), "{report}");
    assert!(report.contains("PASS own-relabel ingress from pods labelled app=client"), "{report}");
    assert!(report.contains("PASS upstream-shape deny ingress to x"), "{report}");
    assert!(report.trim_end().ends_with("2 passed, 0 failed, 0 skipped"), "{report}");

    // The same case while someone relabels dev/client behind the runner's back, once it
    // exists: the engine (on the case's model) still allows it, the network refuses it.
    let relabel = std::thread::spawn({
        let kubeconfig = lab.paths.kubeconfig();
        move || {
            let deadline = Instant::now() + Duration::from_secs(60);
            while Instant::now() < deadline {
                let labelled = Command::new(support::kubectl_binary())
                    .arg(format!("--kubeconfig={}", kubeconfig.display()))
                    .args(["label", "pod", "client", "-n", "dev", "app=intruder", "--overwrite"])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .unwrap();
                if labelled.success() {
                    return true;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            false
        }
    });
    let output = conformance(&lab, &["--cases", &own, "--focus", "own-relabel"]);
    assert!(relabel.join().unwrap(), "the pod was never relabelled");
    let report = text(&output);
    assert_eq!(output.status.code(), Some(1), "{report}");
    assert!(report.contains("FAIL own-relabel"), "{report}");
    let network = report.split("network:").nth(1).unwrap_or_else(|| panic!("no network table: {report}"));
    let row = network.lines().find(|l| l.trim_start().starts_with("dev/client")).unwrap_or_else(|| panic!("{report}"));
    // Columns: dev/client, dev/other, prod/web. Only dev/client -> prod/web differs.
    assert_eq!(row.split_whitespace().collect::<Vec<_>>(), ["dev/client", "-", "-", "X!"], "{report}");
    assert!(report.trim_end().ends_with("0 passed, 1 failed, 0 skipped"), "{report}");
}

#[test]
fn a_malformed_case_file_is_refused_before_anything_is_made() {
    let lab = TestLab::new();
    let bad = lab.file("bad.yaml", &UPSTREAM_SHAPE.replace("expect: deny", "expect: blocked"));
    let output = conformance(&lab, &["--cases", &bad]);
    let report = text(&output);
    assert_eq!(output.status.code(), Some(2), "{report}");
    assert!(report.contains(&format!("{bad}:15:")) && report.contains("cases[0].steps[1].probes[0].expect: \"blocked\": allow or deny"), "{report}");
    assert!(!lab.paths.state_dir.exists(), "a lab was started for a malformed file");
    let output = conformance(&lab, &["--focus", "("]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(text(&output).contains("--focus: not a regular expression"), "{}", text(&output));
}
