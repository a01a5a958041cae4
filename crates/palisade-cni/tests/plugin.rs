//! The built `palisade-cni` binary invoked as a container runtime invokes it (CNI_* variables,
//! config on stdin, JSON on stdout), inside a throwaway node namespace, on throwaway pod
//! namespaces. Needs root; `PALISADE_REQUIRE_PRIVILEGED=1` makes a skip a failure.

use std::net::IpAddr;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use palisade_testbed::{NetNs, Outcome, Prober, Servers, require_privileges};
use serde_json::{Value, json};

const PLUGIN: &str = env!("CARGO_BIN_EXE_palisade-cni");

/// A node: its own network namespace (the plugin runs in it) and a data directory.
struct Node {
    ns: NetNs,
    data: tempfile::TempDir,
}

impl Node {
    fn new() -> Self {
        let ns = NetNs::new("cninode");
        // A real node reaches 169.254.1.1 through its default route, which proxy ARP needs;
        // this isolated one through lo. It also has an address pods can reach.
        ns.ip_batch(&["route add 169.254.1.1/32 dev lo".to_string(), "addr add 192.168.100.1/32 dev lo".to_string()]);
        Self { ns, data: tempfile::tempdir().unwrap() }
    }

    fn config(&self, ranges: &[&str], version: &str) -> Value {
        json!({"cniVersion": version, "name": "palisade", "type": "palisade-cni",
               "ipam": {"ranges": ranges, "dataDir": self.data.path().display().to_string()}, "mtu": 1500})
    }

    /// Runs the plugin in the node namespace.
    fn cni(&self, command: &str, container: &str, netns: Option<&str>, config: &Value) -> Output {
        self.cni_env(command, container, netns, config, &[])
    }

    fn cni_env(&self, command: &str, container: &str, netns: Option<&str>, config: &Value, extra: &[(&str, &str)]) -> Output {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ns.name, PLUGIN])
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("CNI_COMMAND", command)
            .env("CNI_CONTAINERID", container)
            .env("CNI_IFNAME", "eth0")
            .env("CNI_PATH", "/opt/cni/bin")
            .env("CNI_ARGS", "IgnoreUnknown=1;K8S_POD_NAMESPACE=x;K8S_POD_NAME=a")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(netns) = netns {
            cmd.env("CNI_NETNS", netns);
        }
        for (k, v) in extra {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("run the plugin");
        use std::io::Write;
        child.stdin.take().unwrap().write_all(config.to_string().as_bytes()).unwrap();
        child.wait_with_output().unwrap()
    }

    fn state(&self) -> Value {
        std::fs::read(self.data.path().join("palisade.json")).map(|b| serde_json::from_slice(&b).unwrap()).unwrap_or(json!({"allocations": []}))
    }

    fn allocations(&self) -> usize {
        self.state()["allocations"].as_array().map_or(0, Vec::len)
    }

    /// Links in the node namespace besides lo.
    fn links(&self) -> Vec<String> {
        let out = self.ns.exec("ip", &["-o", "link", "show"]);
        String::from_utf8_lossy(&out.stdout).lines().filter_map(|l| l.split(": ").nth(1)).map(|n| n.split('@').next().unwrap().to_string()).filter(|n| n != "lo").collect()
    }

    fn routes(&self) -> String {
        let v4 = self.ns.exec("ip", &["route", "show"]);
        let v6 = self.ns.exec("ip", &["-6", "route", "show"]);
        format!("{}{}", String::from_utf8_lossy(&v4.stdout), String::from_utf8_lossy(&v6.stdout))
    }
}

fn json_out(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}\nstderr: {}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr)))
}

fn address(result: &Value, i: usize) -> IpAddr {
    result["ips"][i]["address"].as_str().unwrap().split('/').next().unwrap().parse().unwrap()
}

fn netns_path(ns: &NetNs) -> String {
    format!("/run/netns/{}", ns.name)
}

#[test]
fn two_pods_reach_each_other_and_the_node_then_del_removes_everything() {
    if !require_privileges() {
        return;
    }
    let node = Node::new();
    let config = node.config(&["10.244.1.0/24", "fd00:10:244:1::/64"], "1.1.0");
    let (a, b) = (NetNs::new("poda"), NetNs::new("podb"));
    let ra = node.cni("ADD", "container-a", Some(&netns_path(&a)), &config);
    assert!(ra.status.success(), "{}", String::from_utf8_lossy(&ra.stdout));
    let rb = node.cni("ADD", "container-b", Some(&netns_path(&b)), &config);
    assert!(rb.status.success(), "{}", String::from_utf8_lossy(&rb.stdout));
    let (ra, rb) = (json_out(&ra), json_out(&rb));

    // The result: host veth and pod interface, a /32 and a /128, default routes.
    assert_eq!(ra["cniVersion"], "1.1.0");
    let interfaces = ra["interfaces"].as_array().unwrap();
    assert_eq!(interfaces.len(), 2);
    assert!(interfaces[0]["name"].as_str().unwrap().starts_with("pal") && interfaces[0].get("sandbox").is_none());
    assert_eq!(interfaces[1]["name"], "eth0");
    assert_eq!(interfaces[1]["sandbox"], netns_path(&a));
    assert_eq!(ra["ips"][0]["gateway"], "169.254.1.1");
    assert_eq!(ra["ips"][1]["gateway"], "fe80::1");
    assert!(ra["ips"][0]["address"].as_str().unwrap().ends_with("/32"));
    assert_eq!(ra["routes"], json!([{"dst": "0.0.0.0/0", "gw": "169.254.1.1"}, {"dst": "::/0", "gw": "fe80::1"}]));

    // Real connections: pod to pod on both families, pod to node.
    let _servers_b = Servers::start(&b, &[80], &[53]);
    let node_server = Servers::start(&node.ns, &[8080], &[]);
    let prober = Prober::new(&a);
    for i in 0..2 {
        assert_eq!(prober.probe(address(&rb, i), 80, false, Duration::from_secs(2)), Outcome::Connected, "a -> b {}", address(&rb, i));
        assert_eq!(prober.probe(address(&rb, i), 53, true, Duration::from_secs(2)), Outcome::Connected, "a -> b udp {}", address(&rb, i));
    }
    assert_eq!(prober.probe("192.168.100.1".parse().unwrap(), 8080, false, Duration::from_secs(2)), Outcome::Connected, "a -> node");
    drop(node_server);

    // CHECK passes; the second ADD returns the same addresses.
    let check = node.cni("CHECK", "container-a", Some(&netns_path(&a)), &{
        let mut c = config.clone();
        c["prevResult"] = ra.clone();
        c
    });
    assert!(check.status.success(), "CHECK: {}", String::from_utf8_lossy(&check.stdout));
    let again = json_out(&node.cni("ADD", "container-a", Some(&netns_path(&a)), &config));
    assert_eq!(again["ips"], ra["ips"], "ADD twice gives the same addresses");
    assert_eq!(again["interfaces"][1]["mac"], ra["interfaces"][1]["mac"]);

    // DEL removes the links, the host routes and the allocations; a second DEL succeeds.
    assert_eq!(node.links().len(), 2);
    for (container, ns) in [("container-a", &a), ("container-b", &b)] {
        let del = node.cni("DEL", container, Some(&netns_path(ns)), &config);
        assert!(del.status.success() && del.stdout.is_empty(), "DEL: {}", String::from_utf8_lossy(&del.stdout));
        let del = node.cni("DEL", container, Some(&netns_path(ns)), &config);
        assert!(del.status.success(), "second DEL: {}", String::from_utf8_lossy(&del.stdout));
    }
    assert!(node.links().is_empty(), "{:?}", node.links());
    assert!(!node.routes().contains("10.244.1."), "{}", node.routes());
    assert_eq!(node.allocations(), 0);
    assert!(String::from_utf8_lossy(&a.exec("ip", &["-o", "link"]).stdout).lines().all(|l| !l.contains("eth0")));
}

#[test]
fn del_succeeds_when_the_namespace_is_gone_and_when_nothing_was_added() {
    if !require_privileges() {
        return;
    }
    let node = Node::new();
    let config = node.config(&["10.244.2.0/24"], "1.0.0");
    let pod = NetNs::new("pod");
    let path = netns_path(&pod);
    assert!(node.cni("ADD", "gone", Some(&path), &config).status.success());
    drop(pod); // The runtime deleted the namespace before DEL.
    let del = node.cni("DEL", "gone", Some(&path), &config);
    assert!(del.status.success(), "{}", String::from_utf8_lossy(&del.stdout));
    assert!(node.links().is_empty() && node.allocations() == 0);
    let del = node.cni("DEL", "never-added", None, &config);
    assert!(del.status.success(), "{}", String::from_utf8_lossy(&del.stdout));
}

#[test]
fn fifty_concurrent_adds_never_share_an_address_and_exhaustion_is_clean() {
    if !require_privileges() {
        return;
    }
    let node = Node::new();
    // 40 usable addresses for 50 pods.
    let config = node.config(&["10.244.3.0/26"], "1.1.0");
    let config = {
        let mut c = config;
        c["ipam"]["ranges"] = json!(["10.244.3.0/26"]);
        c
    };
    let pods: Vec<NetNs> = (0..50).map(|_| NetNs::new("pod")).collect();
    // Fill 22 addresses first so that exactly 40 remain... simpler: a /26 has 62; take 22.
    let filler: Vec<NetNs> = (0..22).map(|_| NetNs::new("fill")).collect();
    for (i, ns) in filler.iter().enumerate() {
        assert!(node.cni("ADD", &format!("filler-{i}"), Some(&netns_path(ns)), &config).status.success());
    }
    let outputs: Vec<Output> = std::thread::scope(|scope| {
        let handles: Vec<_> = pods
            .iter()
            .enumerate()
            .map(|(i, ns)| {
                let (node, config) = (&node, &config);
                scope.spawn(move || node.cni("ADD", &format!("pod-{i}"), Some(&netns_path(ns)), config))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut addresses: Vec<String> = Vec::new();
    let mut exhausted = 0;
    for output in &outputs {
        let value = json_out(output);
        if output.status.success() {
            addresses.push(value["ips"][0]["address"].as_str().unwrap().to_string());
        } else {
            assert_eq!(value["code"], 100, "{value}");
            assert_eq!(value["msg"], "no free address in range 10.244.3.0/26");
            exhausted += 1;
        }
    }
    let unique: std::collections::BTreeSet<&String> = addresses.iter().collect();
    assert_eq!(unique.len(), addresses.len(), "duplicate addresses: {addresses:?}");
    assert_eq!((addresses.len(), exhausted), (40, 10));
    assert_eq!(node.allocations(), 62);
    assert_eq!(node.links().len(), 62, "failed ADDs leave no link");
    let status = node.cni("STATUS", "", None, &config);
    assert!(!status.status.success());
    assert_eq!(json_out(&status)["code"], 50);
}

#[test]
fn crashes_at_any_point_of_add_are_cleaned_up_by_del_and_by_gc() {
    if !require_privileges() {
        return;
    }
    let node = Node::new();
    let config = node.config(&["10.244.4.0/24", "fd00:10:244:4::/64"], "1.1.0");
    for step in ["allocated", "veth-created", "pod-configured", "host-configured"] {
        for cleanup in ["DEL", "GC"] {
            let pod = NetNs::new("crash");
            let crashed = node.cni_env("ADD", "crashy", Some(&netns_path(&pod)), &config, &[("PALISADE_CNI_CRASH_AT", step)]);
            assert!(!crashed.status.success(), "{step}: the plugin was to abort");
            assert_eq!(node.allocations(), 1, "{step}: the address is recorded before anything else");
            if cleanup == "DEL" {
                assert!(node.cni("DEL", "crashy", Some(&netns_path(&pod)), &config).status.success());
            } else {
                let mut gc = config.clone();
                gc["cni.dev/valid-attachments"] = json!([]);
                let out = node.cni("GC", "", None, &gc);
                assert!(out.status.success(), "{step} GC: {}", String::from_utf8_lossy(&out.stdout));
            }
            assert_eq!(node.allocations(), 0, "{step} then {cleanup}: allocation left");
            assert!(node.links().is_empty(), "{step} then {cleanup}: links left {:?}", node.links());
            assert!(!node.routes().contains("10.244.4."), "{step} then {cleanup}: routes left");
        }
    }
    // GC keeps valid attachments.
    let pod = NetNs::new("keep");
    assert!(node.cni("ADD", "keep-me", Some(&netns_path(&pod)), &config).status.success());
    let mut gc = config.clone();
    gc["cni.dev/valid-attachments"] = json!([{"containerID": "keep-me", "ifname": "eth0"}]);
    assert!(node.cni("GC", "", None, &gc).status.success());
    assert_eq!((node.allocations(), node.links().len()), (1, 1));
}

/// Files in the data directory besides the state and its lock (a killed writer's leftovers).
fn stray_files(node: &Node) -> Vec<String> {
    std::fs::read_dir(node.data.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "palisade.json" && n != "palisade.lock" && n != "palisade.json.tmp")
        .collect()
}

#[test]
fn add_killed_at_arbitrary_moments_is_cleaned_up_by_del() {
    if !require_privileges() {
        return;
    }
    let node = Node::new();
    let config = node.config(&["10.244.5.0/24", "fd00:10:244:5::/64"], "1.1.0");
    // Delays spread over a whole ADD (about 5-15 ms here, slower in debug builds), so the kill
    // lands before, during and after each step; a deterministic spread, not random, so a
    // failure can be replayed.
    let mut interrupted_midway = 0;
    for delay_us in (0..40).map(|i| i * 500) {
        let pod = NetNs::new("kill");
        let mut child = Command::new("ip")
            .args(["netns", "exec", &node.ns.name, PLUGIN])
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("CNI_COMMAND", "ADD")
            .env("CNI_CONTAINERID", "killed")
            .env("CNI_IFNAME", "eth0")
            .env("CNI_NETNS", netns_path(&pod))
            .env("CNI_PATH", "/opt/cni/bin")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        use std::io::Write;
        child.stdin.take().unwrap().write_all(config.to_string().as_bytes()).unwrap();
        std::thread::sleep(Duration::from_micros(delay_us));
        let _ = child.kill();
        let finished = child.wait().unwrap().success();
        if !finished && node.allocations() == 1 {
            interrupted_midway += 1;
        }
        let del = node.cni("DEL", "killed", Some(&netns_path(&pod)), &config);
        assert!(del.status.success(), "killed after {delay_us} us, DEL: {}", String::from_utf8_lossy(&del.stdout));
        assert_eq!(node.allocations(), 0, "killed after {delay_us} us: allocation left");
        assert!(node.links().is_empty(), "killed after {delay_us} us: links left {:?}", node.links());
        assert!(!node.routes().contains("10.244.5.") && !node.routes().contains("fd00:10:244:5:"), "killed after {delay_us} us: routes left");
        assert!(stray_files(&node).is_empty(), "killed after {delay_us} us: {:?}", stray_files(&node));
    }
    // Here about a third of the kills land after the allocation and before the end of ADD.
    assert!(interrupted_midway > 0, "no kill landed inside ADD: the test proved nothing");
}

#[test]
fn check_notices_changes_made_behind_the_plugins_back() {
    if !require_privileges() {
        return;
    }
    let node = Node::new();
    let config = node.config(&["10.244.5.0/24"], "1.1.0");
    let pod = NetNs::new("pod");
    let result = json_out(&node.cni("ADD", "c", Some(&netns_path(&pod)), &config));
    assert!(node.cni("CHECK", "c", Some(&netns_path(&pod)), &config).status.success());
    let ip = result["ips"][0]["address"].as_str().unwrap();
    pod.ip(&["addr", "del", ip, "dev", "eth0"]);
    let check = node.cni("CHECK", "c", Some(&netns_path(&pod)), &config);
    assert!(!check.status.success());
    let error = json_out(&check);
    assert_eq!(error["code"], 103);
    assert!(error["msg"].as_str().unwrap().contains("has addresses []"), "{error}");
    let unknown = json_out(&node.cni("CHECK", "nobody", Some(&netns_path(&pod)), &config));
    assert_eq!(unknown["code"], 3);
}

#[test]
fn older_spec_versions_and_chaining() {
    if !require_privileges() {
        return;
    }
    let node = Node::new();
    let pod = NetNs::new("pod");
    let mut config = node.config(&["10.244.6.0/24"], "0.4.0");
    config["prevResult"] = json!({"cniVersion": "0.4.0", "interfaces": [{"name": "lo", "mac": "00:00:00:00:00:00", "sandbox": netns_path(&pod)}], "ips": [], "routes": []});
    let result = json_out(&node.cni("ADD", "old", Some(&netns_path(&pod)), &config));
    assert_eq!(result["cniVersion"], "0.4.0");
    assert_eq!(result["interfaces"][0]["name"], "lo", "the previous plugin's interfaces are kept");
    assert_eq!(result["ips"][0]["interface"], 2, "indices account for them");
    assert_eq!(result["ips"][0]["version"], "4", "0.4.0 results carry the address version");
    let version = node.cni("VERSION", "", None, &json!({"cniVersion": "1.0.0"}));
    assert_eq!(json_out(&version), json!({"cniVersion": "1.0.0", "supportedVersions": ["0.4.0", "1.0.0", "1.1.0"]}));
}

#[test]
fn bad_input_gets_the_specs_error_object() {
    if !require_privileges() {
        return;
    }
    let node = Node::new();
    let pod = NetNs::new("pod");
    let cases = [
        (json!({"cniVersion": "9.9.9", "name": "n", "ipam": {"ranges": ["10.0.0.0/24"]}}), 1, "unsupported cniVersion \"9.9.9\": supported: 0.4.0, 1.0.0, 1.1.0"),
        (json!({"cniVersion": "1.1.0", "name": "n", "ipam": {"ranges": ["10.0.0.0/16", "10.0.5.0/24"]}}), 7, "invalid network config: ipam.ranges[1]: 10.0.5.0/24 overlaps ipam.ranges[0] 10.0.0.0/16"),
        (
            json!({"cniVersion": "1.1.0", "name": "n", "ipam": {"ranges": ["10.0.0.0/33"]}}),
            7,
            "invalid network config: ipam.ranges[0]: invalid CIDR \"10.0.0.0/33\": e.g. 10.244.1.0/24 or fd00:10:244:1::/64",
        ),
        (json!({"cniVersion": "1.1.0", "ipam": {"ranges": ["10.0.0.0/24"]}}), 7, "invalid network config: name: required: the network's name"),
    ];
    for (config, code, message) in cases {
        let out = node.cni("ADD", "c", Some(&netns_path(&pod)), &config);
        assert!(!out.status.success());
        let error = json_out(&out);
        assert_eq!((error["code"].as_u64().unwrap(), error["msg"].as_str().unwrap()), (code, message), "{error}");
        assert!(error["cniVersion"].is_string());
    }
    let out = node.cni("ADD", "c", None, &node.config(&["10.0.0.0/24"], "1.1.0"));
    assert_eq!(json_out(&out)["msg"], "CNI_NETNS is required");
    assert_eq!(json_out(&out)["code"], 4);
    assert!(node.links().is_empty() && node.allocations() == 0, "bad input changes nothing");
    let _ = Path::new("/");
}
