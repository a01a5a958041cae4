//! Loading manifests: paths, formats, kinds, and what becomes of each object.

use std::fs;
use std::path::Path;

use palisade_model::{LoadOptions, Loader, NAMESPACE_NAME_LABEL, Protocol, Source, WorkloadKind, load, load_text, parse_yaml};

fn write(dir: &Path, name: &str, text: &str) {
    let path = dir.join(name);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
}

const WORKLOADS: &str = "
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        ports: [{containerPort: 8080, name: http}, {containerPort: 53, protocol: UDP, name: dns}]
      initContainers:
      - {name: sidecar, restartPolicy: Always, ports: [{containerPort: 9000, name: metrics}]}
      - {name: setup, ports: [{containerPort: 9100, name: ignored}]}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db, namespace: shop}
spec:
  serviceName: db
  selector: {matchLabels: {app: db}}
  template: {metadata: {labels: {app: db}}, spec: {containers: [{name: db}]}}
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent, namespace: shop}
spec:
  selector: {matchLabels: {app: agent}}
  template: {metadata: {labels: {app: agent}}, spec: {hostNetwork: true, containers: [{name: a}]}}
---
apiVersion: apps/v1
kind: ReplicaSet
metadata: {name: rs, namespace: shop}
spec:
  selector: {matchLabels: {app: rs}}
  template: {metadata: {labels: {app: rs}}, spec: {containers: [{name: a}]}}
---
apiVersion: batch/v1
kind: Job
metadata: {name: once, namespace: shop}
spec:
  template: {metadata: {labels: {app: once}}, spec: {restartPolicy: Never, containers: [{name: a}]}}
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: nightly, namespace: shop}
spec:
  schedule: '0 0 * * *'
  jobTemplate:
    spec:
      template: {metadata: {labels: {app: nightly}}, spec: {restartPolicy: Never, containers: [{name: a}]}}
---
apiVersion: v1
kind: ReplicationController
metadata: {name: legacy, namespace: shop}
spec:
  template: {metadata: {labels: {app: legacy}}, spec: {containers: [{name: a}]}}
";

#[test]
fn every_workload_kind_is_one_endpoint_named_after_it() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "workloads.yaml", WORKLOADS);
    let loaded = load(&[Source { path: dir.path().into(), namespace: None }], &LoadOptions::default()).unwrap();
    let kinds: Vec<(WorkloadKind, &str)> = loaded.cluster.endpoints.iter().map(|e| (e.kind, e.name.as_str())).collect();
    assert_eq!(
        kinds,
        vec![
            (WorkloadKind::Deployment, "web"),
            (WorkloadKind::StatefulSet, "db"),
            (WorkloadKind::DaemonSet, "agent"),
            (WorkloadKind::ReplicaSet, "rs"),
            (WorkloadKind::Job, "once"),
            (WorkloadKind::CronJob, "nightly"),
            (WorkloadKind::ReplicationController, "legacy"),
        ]
    );
    let web = &loaded.cluster.endpoints[0];
    assert_eq!(web.labels["app"], "web");
    assert_eq!(web.named_port("http", Protocol::Tcp), Some(8080));
    assert_eq!(web.named_port("dns", Protocol::Udp), Some(53));
    assert_eq!(web.named_port("dns", Protocol::Tcp), None, "named ports are per protocol");
    assert_eq!(web.named_port("metrics", Protocol::Tcp), Some(9000), "native sidecar ports count");
    assert_eq!(web.named_port("ignored", Protocol::Tcp), None, "plain init containers are gone when the pod serves");
    let agent = &loaded.cluster.endpoints[2];
    assert!(agent.host_network && agent.ips.is_empty(), "hostNetwork pods get no pod address");
    assert!(web.ips[0].is_ipv4());
}

#[test]
fn directories_are_searched_recursively_for_yaml_yml_and_json() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "a/ns.yml", "apiVersion: v1\nkind: Namespace\nmetadata: {name: a, labels: {team: red}}\n");
    write(
        dir.path(),
        "b/deep/pod.json",
        r#"{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "a"}, "spec": {"containers": []}, "status": {"podIPs": [{"ip": "10.9.0.4"}, {"ip": "fd00::4"}]}}"#,
    );
    write(dir.path(), "notes.txt", "not a manifest");
    let loaded = load(&[Source { path: dir.path().into(), namespace: None }], &LoadOptions::default()).unwrap();
    let ns = &loaded.cluster.namespaces["a"];
    assert_eq!(ns.labels["team"], "red");
    assert_eq!(ns.labels[NAMESPACE_NAME_LABEL], "a", "the API server adds the name label");
    let pod = &loaded.cluster.endpoints[0];
    assert_eq!(pod.ips, vec!["10.9.0.4".parse::<std::net::IpAddr>().unwrap(), "fd00::4".parse().unwrap()]);
    assert!(loaded.warnings.is_empty());
}

#[test]
fn multi_document_streams_and_lists() {
    let text = "apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: Namespace, metadata: {name: x}}\n- {apiVersion: v1, kind: Namespace, metadata: {name: y}}\n---\n# only a comment\n---\napiVersion: v1\nkind: PodList\nitems:\n- {apiVersion: v1, kind: Pod, metadata: {name: a, namespace: x}, spec: {containers: []}}\n";
    let loaded = load_text(text, &LoadOptions::default()).unwrap();
    assert_eq!(loaded.cluster.namespaces.len(), 2);
    assert_eq!(loaded.cluster.endpoints.len(), 1);
}

#[test]
fn other_kinds_are_skipped_and_reported() {
    let text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: x}\n";
    let mut loader = Loader::new(LoadOptions::default());
    loader.add_text(Some(Path::new("m.yaml")), text, None);
    let loaded = loader.finish().unwrap();
    assert_eq!(loaded.skipped.len(), 1);
    assert_eq!(loaded.skipped[0].to_string(), "m.yaml:1:1: ConfigMap default/cfg: skipped: kind ConfigMap (v1) does not affect NetworkPolicy analysis");
}

#[test]
fn referenced_namespaces_are_created_with_a_warning() {
    let mut loader = Loader::new(LoadOptions::default());
    loader.add_text(Some(Path::new("p.yaml")), "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p, namespace: prod}\n", None);
    let loaded = loader.finish().unwrap();
    let ns = &loaded.cluster.namespaces["prod"];
    assert!(!ns.declared);
    assert_eq!(ns.labels.len(), 1);
    assert_eq!(loaded.warnings[0].to_string(), "p.yaml:1:1: namespace \"prod\" is not declared; assuming it exists with only the label kubernetes.io/metadata.name=prod");
}

#[test]
fn source_namespace_applies_to_objects_without_one() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "curl.yaml", "apiVersion: v1\nkind: Pod\nmetadata: {name: curl}\nspec: {containers: []}\n");
    let path = dir.path().join("curl.yaml");
    let sources: Vec<Source> = [format!("{}@production", path.display()), format!("{}@develop", path.display())].iter().map(|s| s.parse().unwrap()).collect();
    let loaded = load(&sources, &LoadOptions::default()).unwrap();
    let names: Vec<String> = loaded.cluster.endpoints.iter().map(|e| e.display_name()).collect();
    assert_eq!(names, vec!["production/curl", "develop/curl"]);
    let plain: Source = path.display().to_string().parse().unwrap();
    assert_eq!(plain.namespace, None);
}

#[test]
fn finished_pods_no_longer_count() {
    let text = "apiVersion: v1\nkind: Pod\nmetadata: {name: done, namespace: x}\nspec: {containers: []}\nstatus: {phase: Succeeded, podIP: 10.244.0.9}\n";
    assert!(load_text(text, &LoadOptions::default()).unwrap().cluster.endpoints.is_empty());
}

#[test]
fn missing_files_are_reported() {
    let error = load(&[Source { path: "/nonexistent/x.yaml".into(), namespace: None }], &LoadOptions::default()).unwrap_err();
    assert!(error.0[0].to_string().starts_with("/nonexistent/x.yaml: cannot read: "), "{}", error.0[0]);
}

/// `parse_yaml` (the lab's reading of `apply -f`) gives whole values for JSON Lists too, whose
/// items the loader leaves raw to parse them in parallel.
#[test]
fn parse_yaml_gives_json_list_items() {
    let values = parse_yaml("{\"apiVersion\": \"v1\", \"kind\": \"List\", \"items\": [{\"a\": 1}, {\"b\": [2]}]}").unwrap();
    assert_eq!(values, vec![serde_json::json!({"apiVersion": "v1", "kind": "List", "items": [{"a": 1}, {"b": [2]}]})]);
    let error = parse_yaml("{\"kind\": \"List\", \"items\": [{\"a\": 1, \"a\": 2}]}").unwrap_err();
    assert!(error.ends_with("duplicated key in mapping"), "{error}");
}
