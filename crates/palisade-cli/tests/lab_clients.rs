//! Real clients against a lab's API, as root (each test its own lab): kubectl's watch,
//! scale, wait, log following and a terminal; the official Python client; a pod using its
//! ServiceAccount token from inside the lab; kube-rs reflectors across a `kill -9` of the
//! lab daemon.

mod support;

use std::process::Command;
use std::time::Duration;

use palisade_testbed::require_privileges;
use serde_json::Value;
use support::{TestLab, connects, ip_of};

#[test]
fn kubectl_watch_scale_wait_follow_and_a_terminal() {
    if !require_privileges() {
        return;
    }
    let lab = TestLab::up(2);
    lab.k(&["create", "ns", "demo"]);
    lab.k(&["create", "deployment", "web", "-n", "demo", "--image=nginx", "--replicas=2", "--port=80"]);
    assert!(lab.k(&["wait", "--for=condition=Ready", "pod", "-l", "app=web", "-n", "demo", "--timeout=60s"]).matches("condition met").count() == 2);
    // A watch sees the scale-up's new pod arrive and the scale-down's pods leave.
    let mut watch = lab.kubectl_command(&["get", "pods", "-n", "demo", "-w", "--output-watch-events", "--request-timeout=8s"]).stdout(std::process::Stdio::piped()).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(lab.k(&["scale", "deploy/web", "-n", "demo", "--replicas=3"]), "deployment.apps/web scaled\n");
    assert!(lab.k(&["rollout", "status", "deploy/web", "-n", "demo", "--timeout=60s"]).contains("successfully rolled out"));
    lab.k(&["scale", "deploy/web", "-n", "demo", "--replicas=1"]);
    lab.k(&["wait", "--for=jsonpath={.status.replicas}=1", "deploy/web", "-n", "demo", "--timeout=30s"]);
    std::thread::sleep(Duration::from_millis(500));
    let _ = watch.kill();
    let output = watch.wait_with_output().unwrap();
    let events = String::from_utf8_lossy(&output.stdout);
    assert!(events.starts_with("EVENT"), "{events}");
    assert_eq!(events.lines().filter(|l| l.starts_with("DELETED")).count(), 2, "{events}");
    assert!(events.lines().filter(|l| l.starts_with("ADDED")).count() >= 3, "two pods listed, one added: {events}");
    assert_eq!(lab.pods("demo", "web-").len(), 1);

    // logs -f follows a container and ends when it does.
    lab.k(&["run", "talker", "-n", "demo", "--image=busybox", "--restart=Never", "--", "sh", "-c", "echo one; sleep 1; echo two"]);
    lab.k(&["wait", "--for=condition=Ready", "pod/talker", "-n", "demo", "--timeout=30s"]);
    let started = std::time::Instant::now();
    assert_eq!(lab.k(&["logs", "-f", "talker", "-n", "demo", "--request-timeout=10s"]), "one\ntwo\n");
    assert!(started.elapsed() < Duration::from_secs(5), "following ended with the container");

    // exec -it: a terminal in the pod (script gives kubectl one), and the exit status.
    lab.k(&["run", "shell", "-n", "demo", "--image=busybox", "--", "sleep", "infinity"]);
    lab.k(&["wait", "--for=condition=Ready", "pod/shell", "-n", "demo", "--timeout=30s"]);
    let kubectl = support::kubectl_binary();
    let line = format!("{} exec -it -n demo shell -- sh -c 'tty; exit 4'", kubectl.display());
    let output = Command::new("script").args(["-qec", &line, "/dev/null"]).env("KUBECONFIG", lab.paths.kubeconfig()).output().unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("/dev/pts/"), "a terminal: {text}");
    assert_eq!(output.status.code(), Some(4), "{text}");
}

#[test]
fn the_official_python_client() {
    if !require_privileges() {
        return;
    }
    let lab = TestLab::up(2);
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/python_client.py");
    let python = support::kubectl_binary().with_file_name("python");
    let output = Command::new(&python).arg(&script).arg(lab.paths.kubeconfig()).output().unwrap();
    assert!(output.status.success(), "{}\n{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    let seen: Value = serde_json::from_slice(&output.stdout).unwrap();
    let ready: Vec<&str> = seen["ready"].as_array().unwrap().iter().map(|p| p.as_str().unwrap()).collect();
    assert_eq!(ready.len(), 2, "{seen}");
    assert_eq!(seen["exec"], serde_json::json!({"stdout": "out\n", "stderr": "err\n", "returncode": 3}));
    assert_eq!(seen["log"], format!("started {}\n", ready[0]));
    assert_eq!(seen["invalid"]["status"], 422);
    assert_eq!(seen["invalid"]["body"]["details"]["causes"][0]["field"], "spec.ingress[0].from[0].ipBlock.cidr");
    assert_eq!(seen["policies"], serde_json::json!(["web"]));
    assert_eq!(seen["selected"].as_array().unwrap().len(), 2);
}

#[test]
fn a_pod_uses_its_service_account_token_and_rbac_holds() {
    if !require_privileges() {
        return;
    }
    let lab = TestLab::up(1);
    lab.k(&["create", "ns", "apps"]);
    lab.k(&["create", "serviceaccount", "watcher", "-n", "apps"]);
    lab.apply(
        "client.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: client, namespace: apps}\nspec:\n  serviceAccountName: watcher\n  containers: [{name: c, image: curlimages/curl, command: [sleep, infinity]}]\n",
    );
    // What an in-cluster client does: the Service's address from the environment, the
    // token and CA from the mounted directory.
    let call = |path: &str| {
        let script = format!(
            "d=/var/run/secrets/kubernetes.io/serviceaccount; curl -s --cacert $d/ca.crt -H \"Authorization: Bearer $(cat $d/token)\" https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT{path}"
        );
        let out = lab.k(&["exec", "-n", "apps", "client", "--", "sh", "-c", &script]);
        serde_json::from_str::<Value>(&out).unwrap_or_else(|e| panic!("{path}: {e}: {out}"))
    };
    assert_eq!(lab.k(&["exec", "-n", "apps", "client", "--", "cat", "/var/run/secrets/kubernetes.io/serviceaccount/namespace"]), "apps");
    let denied = call("/api/v1/namespaces/apps/pods");
    assert_eq!(denied["code"], 403, "{denied}");
    assert_eq!(denied["message"], "pods is forbidden: User \"system:serviceaccount:apps:watcher\" cannot list resource \"pods\" in API group \"\" in the namespace \"apps\"");
    lab.k(&["create", "role", "pod-reader", "-n", "apps", "--verb=get,list,watch", "--resource=pods"]);
    lab.k(&["create", "rolebinding", "watcher", "-n", "apps", "--role=pod-reader", "--serviceaccount=apps:watcher"]);
    let listed = call("/api/v1/namespaces/apps/pods");
    assert_eq!(listed["kind"], "PodList", "{listed}");
    assert_eq!(listed["items"][0]["metadata"]["name"], "client");
    assert_eq!(call("/api/v1/namespaces/apps/secrets")["code"], 403, "the Role grants pods only");
    // kubectl with a token made by TokenRequest gets the same answers.
    let token = lab.k(&["create", "token", "watcher", "-n", "apps"]);
    let kubeconfig = lab.paths.kubeconfig();
    let as_watcher = |args: &[&str]| {
        let mut all = vec!["--token", token.trim(), "--kubeconfig", kubeconfig.to_str().unwrap()];
        all.extend(args);
        Command::new(support::kubectl_binary()).args(&all).env_remove("KUBECONFIG").output().unwrap()
    };
    assert!(as_watcher(&["get", "pods", "-n", "apps"]).status.success());
    let refused = as_watcher(&["delete", "pod", "client", "-n", "apps"]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("pods \"client\" is forbidden: User \"system:serviceaccount:apps:watcher\" cannot delete resource \"pods\""),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
}

/// The lab daemon's pid (the process `palisade lab up` started for this lab).
fn daemon_pid(lab: &TestLab) -> i32 {
    let needle = format!("lab --lab {} daemon", lab.name);
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .find(|pid| std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| String::from_utf8_lossy(&c).replace('\0', " ").contains(&needle)))
        .expect("the lab daemon runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_the_daemon_loses_nothing_and_clients_recover() {
    use futures::StreamExt;
    use k8s_openapi::api::core::v1::{ConfigMap, Pod};
    use kube::api::{Api, PostParams};
    use kube::runtime::{WatchStreamExt, reflector, watcher};
    use kube::{ResourceExt, config::KubeConfigOptions, config::Kubeconfig};

    if !require_privileges() {
        return;
    }
    let lab = tokio::task::block_in_place(|| {
        let lab = TestLab::up(2);
        lab.apply("app.yaml", "apiVersion: v1\nkind: Namespace\nmetadata: {name: keep}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: keep}\nspec:\n  replicas: 2\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec: {containers: [{name: web, image: agnhost, ports: [{containerPort: 8080}]}]}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: client, namespace: keep}\nspec:\n  selector: {matchLabels: {app: client}}\n  template:\n    metadata: {labels: {app: client}}\n    spec: {containers: [{name: c, image: busybox, command: [sleep, infinity]}]}\n");
        lab
    });
    let kubeconfig = Kubeconfig::read_from(lab.paths.kubeconfig()).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await.unwrap();
    let client = kube::Client::try_from(config).unwrap();
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), "keep");
    let (reader, writer) = reflector::store();
    let stream = reflector::reflector(writer, watcher(maps.clone(), watcher::Config::default()).default_backoff());
    tokio::spawn(stream.applied_objects().for_each(|_| async {}));
    reader.wait_until_ready().await.unwrap();
    // Acknowledged writes just before the kill.
    for i in 0..20 {
        maps.create(&PostParams::default(), &serde_json::from_value(serde_json::json!({"metadata": {"name": format!("before-{i}")}})).unwrap()).await.unwrap();
    }
    let pods: Api<Pod> = Api::namespaced(client.clone(), "keep");
    let addresses_before: std::collections::BTreeMap<String, String> =
        pods.list(&Default::default()).await.unwrap().items.iter().map(|p| (p.name_any(), p.status.as_ref().unwrap().pod_ip.clone().unwrap())).collect();

    nix::sys::signal::kill(nix::unistd::Pid::from_raw(daemon_pid(&lab)), nix::sys::signal::Signal::SIGKILL).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    tokio::task::block_in_place(|| {
        lab.ok(&["up", "--nodes", "2"]);
        lab.settle();
    });
    // Same pods, same addresses; the kubeconfig (port, CA, token) still works.
    let addresses_after: std::collections::BTreeMap<String, String> =
        pods.list(&Default::default()).await.unwrap().items.iter().map(|p| (p.name_any(), p.status.as_ref().unwrap().pod_ip.clone().unwrap())).collect();
    assert_eq!(addresses_after, addresses_before, "the surviving sandboxes were adopted");
    for i in 0..20 {
        maps.create(&PostParams::default(), &serde_json::from_value(serde_json::json!({"metadata": {"name": format!("after-{i}")}})).unwrap()).await.unwrap();
    }
    let mut want: Vec<String> = (0..20).flat_map(|i| [format!("before-{i}"), format!("after-{i}")]).collect();
    want.sort();
    let mut have = Vec::new();
    for _ in 0..300 {
        have = reader.state().iter().map(|m| m.name_any()).filter(|n| n.starts_with("before-") || n.starts_with("after-")).collect();
        have.sort();
        if have == want {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(have, want, "the reflector recovered and holds every object");
    // The adopted pods still talk, across nodes.
    tokio::task::block_in_place(|| {
        let client = lab.pods("keep", "client-").remove(0);
        for web in lab.pods("keep", "web-") {
            assert!(connects(&lab.pod_netns(&client), ip_of(&web), 8080), "client -> {}", web["metadata"]["name"]);
        }
    });
}
