//! The container runtime: pod sandboxes (a network namespace wired by CNI ADD with the
//! plugin and config installed in the node's CNI directories, or the node's own namespace
//! for hostNetwork pods; the pod's resolv.conf and hosts files, its ServiceAccount token,
//! its hostPath volumes from the node's own directories) and containers (init containers
//! one after the other to completion, then the others: host processes entered into the
//! sandbox, supervised and restarted per the pod's restartPolicy). It reports pod status as
//! the kubelet does. A sandbox that survived the daemon is adopted: CNI ADD is idempotent,
//! so the pod keeps its addresses; its containers start again.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::Write;
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use serde_json::{Value, json};

use crate::error::LabError;
use crate::images::{self, NGINX_INDEX, Program, StartError};
use crate::paths::LabPaths;
use crate::proxy::DNS_V4;
use crate::sandbox::Sandbox;
use crate::time::now_rfc3339;
use crate::topology::NodeInfo;

/// A pod by namespace and name (for messages and CNI arguments).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodRef {
    pub namespace: String,
    pub name: String,
}

impl PodRef {
    pub fn of(pod: &Value) -> Self {
        let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
        Self { namespace: text(&pod["metadata"]["namespace"]), name: text(&pod["metadata"]["name"]) }
    }
}

impl std::fmt::Display for PodRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// What entering a pod's containers needs, per pod uid and container name: what
/// `pods/exec` uses.
pub type SandboxIndex = Arc<RwLock<HashMap<String, HashMap<String, Sandbox>>>>;

/// What a pod's ServiceAccount mount holds.
#[derive(Clone, Debug)]
pub struct AccountFiles {
    pub token: String,
    pub ca_pem: String,
}

/// How long a new pod's declared ports may take to accept connections before `apply`
/// stops waiting (the pod then shows not ready).
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long starting a pod waits for its init containers (then the supervisor takes over).
const INIT_WAIT: Duration = Duration::from_secs(30);

/// A ServiceAccount token (and the CA) for a pod's `(namespace, account)`.
pub type AccountFilesFn = Arc<dyn Fn(&str, &str) -> Option<AccountFiles> + Send + Sync>;
/// A ConfigMap's value for `(namespace, name, key)` (`configMapKeyRef`).
pub type ConfigValueFn = Arc<dyn Fn(&str, &str, &str) -> Option<String> + Send + Sync>;

#[derive(Clone)]
pub struct RuntimeConfig {
    pub paths: LabPaths,
    pub account_files: AccountFilesFn,
    pub config_value: ConfigValueFn,
    /// The `palisade` binary: containers start through `palisade lab pod-exec`.
    pub self_exe: PathBuf,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum State {
    Waiting { reason: String, message: String },
    Running { started_at: String },
    Terminated { exit_code: i32, reason: String, message: String, finished_at: String },
}

struct Container {
    name: String,
    /// An init container: runs to completion before the next one and the app containers.
    init: bool,
    image: String,
    program: Result<Program, StartError>,
    env: Vec<(String, String)>,
    /// hostPath bind mounts `(node directory, mountPath)`.
    mounts: Vec<(PathBuf, PathBuf)>,
    /// TCP ports whose readiness `start` waits for.
    ports: Vec<u16>,
    child: Option<Child>,
    restarts: u32,
    state: State,
    next_start: Option<Instant>,
}

struct PodRuntime {
    key: PodRef,
    node: NodeInfo,
    netns: PathBuf,
    netns_name: String,
    dir: PathBuf,
    hostname: String,
    ips: Vec<IpAddr>,
    network: bool,
    /// `spec.hostNetwork`: the node's namespace and addresses; no CNI.
    host_network: bool,
    /// hostPath volumes by name: their directory in the node's own filesystem.
    host_paths: HashMap<String, PathBuf>,
    restart_policy: String,
    containers: Vec<Container>,
    start_time: String,
    sandbox_error: Option<String>,
}

pub struct Runtime {
    config: RuntimeConfig,
    pods: BTreeMap<String, PodRuntime>,
    sandboxes: SandboxIndex,
    /// Pods whose sandbox could not be made: how many attempts failed, and when to try
    /// again (the kubelet retries with back-off; the pod stays Pending meanwhile).
    sandbox_failures: HashMap<String, (u32, Instant)>,
}

fn write_file(path: &Path, text: &str) -> Result<(), LabError> {
    std::fs::write(path, text).map_err(LabError::io(format!("writing {}", path.display())))
}

/// Where a node's runtime looks for CNI configs and plugins (containerd's defaults).
pub const CNI_CONF_DIR: &str = "/etc/cni/net.d";
pub const CNI_BIN_DIR: &str = "/opt/cni/bin";
/// `palisade-cni`'s address store when its config names none.
const DEFAULT_IPAM_DIR: &str = "/var/lib/palisade/ipam";

/// The node's network config, as a runtime picks it: the first `.conflist` or `.conf` in
/// name order in the node's CNI config directory; `None` while there is none (the network
/// plugin is not ready: pods other than hostNetwork ones wait).
pub fn node_network(paths: &LabPaths, node: &str) -> Option<(PathBuf, Value)> {
    let dir = paths.node_path(node, Path::new(CNI_CONF_DIR));
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir).ok()?.filter_map(|e| Some(e.ok()?.path())).filter(|p| p.extension().is_some_and(|x| x == "conflist" || x == "conf" || x == "json")).collect();
    files.sort();
    let file = files.into_iter().next()?;
    let config = serde_json::from_slice(&std::fs::read(&file).ok()?).ok()?;
    Some((file, config))
}

/// The config one plugin of a network config list gets (CNI spec: the list's `cniVersion`
/// and `name` with the plugin's own fields), with the node's paths translated to where the
/// lab keeps that node's filesystem: the plugin runs on this machine, not in the node.
fn plugin_config(paths: &LabPaths, node: &str, network: &Value) -> Result<Value, LabError> {
    let mut plugin = match network["plugins"].as_array() {
        Some(plugins) => plugins.first().cloned().ok_or_else(|| LabError::failed("the node's CNI config lists no plugins"))?,
        None => network.clone(),
    };
    plugin["cniVersion"] = network["cniVersion"].clone();
    plugin["name"] = network["name"].clone();
    let on_node = |path: &str| paths.node_path(node, Path::new(path)).display().to_string();
    let data_dir = plugin["ipam"]["dataDir"].as_str().unwrap_or(DEFAULT_IPAM_DIR).to_string();
    plugin["ipam"]["dataDir"] = json!(on_node(&data_dir));
    if let Some(socket) = plugin["agentSocket"].as_str().map(str::to_string) {
        plugin["agentSocket"] = json!(on_node(&socket));
    }
    Ok(plugin)
}

/// Runs the node's CNI plugin in the node's namespace, as the kubelet's runtime does.
fn cni(config: &RuntimeConfig, node: &NodeInfo, command: &str, uid: &str, netns: &Path, key: &PodRef) -> Result<Value, LabError> {
    let paths = &config.paths;
    let (file, network) = node_network(paths, &node.name)
        .ok_or_else(|| LabError::failed(format!("network plugin not ready: no CNI config in {CNI_CONF_DIR} of {} (the network plugin's DaemonSet installs it)", node.name)))?;
    let plugin = plugin_config(paths, &node.name, &network)?;
    let kind = plugin["type"].as_str().ok_or_else(|| LabError::failed(format!("{}: the plugin has no type", file.display())))?;
    let bin_dir = paths.node_path(&node.name, Path::new(CNI_BIN_DIR));
    let binary = bin_dir.join(kind);
    let network = plugin.to_string();
    let output = palisade_net::run_in(&node.netns, || {
        let mut child = Command::new(&binary)
            .env_clear()
            .env("CNI_COMMAND", command)
            .env("CNI_CONTAINERID", uid)
            .env("CNI_NETNS", netns)
            .env("CNI_IFNAME", "eth0")
            .env("CNI_PATH", &bin_dir)
            .env("CNI_ARGS", format!("IgnoreUnknown=1;K8S_POD_NAMESPACE={};K8S_POD_NAME={};K8S_POD_UID={uid}", key.namespace, key.name))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        child.stdin.take().expect("piped").write_all(network.as_bytes())?;
        child.wait_with_output()
    })?
    .map_err(LabError::io(format!("running {} (the node's CNI plugin)", binary.display())))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        let message = serde_json::from_str::<Value>(&stdout).ok().and_then(|v| v["msg"].as_str().map(str::to_string)).unwrap_or_else(|| stdout.trim().to_string());
        return Err(LabError::failed(format!("CNI {command} for {key} failed: {message}")));
    }
    Ok(if stdout.trim().is_empty() { Value::Null } else { serde_json::from_str(&stdout).map_err(|e| LabError::failed(format!("CNI {command} printed no JSON: {e}")))? })
}

fn backoff(restarts: u32) -> Duration {
    Duration::from_secs(1u64 << restarts.min(5)).min(Duration::from_secs(30))
}

/// The container's environment: PATH, HOSTNAME, its `env` (values, the common
/// `fieldRef`s and `configMapKeyRef`s). A missing ConfigMap key is an error unless the
/// reference is optional, as the kubelet's CreateContainerConfigError.
fn container_env(config: &RuntimeConfig, pod: &Value, container: &Value, hostname: &str, ips: &[IpAddr], node: &NodeInfo) -> Result<Vec<(String, String)>, StartError> {
    let mut env = vec![
        ("PATH".to_string(), images::DEFAULT_PATH.to_string()),
        ("HOSTNAME".to_string(), hostname.to_string()),
        ("HOME".to_string(), "/root".to_string()),
        // Where in-cluster clients find the API server (the `kubernetes` Service).
        ("KUBERNETES_SERVICE_HOST".to_string(), crate::proxy::KUBERNETES_V4.to_string()),
        ("KUBERNETES_SERVICE_PORT".to_string(), "443".to_string()),
    ];
    for var in container["env"].as_array().into_iter().flatten() {
        let Some(name) = var["name"].as_str() else { continue };
        let config_map = &var["valueFrom"]["configMapKeyRef"];
        if config_map.is_object() {
            let namespace = pod["metadata"]["namespace"].as_str().unwrap_or_default();
            let (map, key) = (config_map["name"].as_str().unwrap_or_default(), config_map["key"].as_str().unwrap_or_default());
            match (config.config_value)(namespace, map, key) {
                Some(value) => {
                    env.retain(|(k, _)| k != name);
                    env.push((name.to_string(), value));
                }
                None if config_map["optional"] == true => {}
                None => return Err(StartError { reason: "CreateContainerConfigError".into(), message: format!("couldn't find key {key} in ConfigMap {namespace}/{map}") }),
            }
            continue;
        }
        let value = match (&var["value"], var["valueFrom"]["fieldRef"]["fieldPath"].as_str()) {
            (Value::String(v), _) => Some(v.clone()),
            (_, Some("metadata.name")) => pod["metadata"]["name"].as_str().map(str::to_string),
            (_, Some("metadata.namespace")) => pod["metadata"]["namespace"].as_str().map(str::to_string),
            (_, Some("spec.nodeName")) => Some(node.name.clone()),
            (_, Some("status.podIP")) => ips.first().map(IpAddr::to_string),
            (_, Some("status.hostIP")) => Some(node.ip4.to_string()),
            _ => None,
        };
        if let Some(value) = value {
            env.retain(|(k, _)| k != name);
            env.push((name.to_string(), value));
        }
    }
    Ok(env)
}

fn resolv_conf(namespace: &str) -> String {
    format!("search {namespace}.svc.cluster.local svc.cluster.local cluster.local\nnameserver {DNS_V4}\noptions ndots:5\n")
}

fn hosts_file(hostname: &str, fqdn: Option<&str>, ips: &[IpAddr]) -> String {
    let mut hosts =
        "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n".to_string();
    for ip in ips {
        match fqdn {
            Some(fqdn) => hosts += &format!("{ip}\t{fqdn}\t{hostname}\n"),
            None => hosts += &format!("{ip}\t{hostname}\n"),
        }
    }
    hosts
}

impl Container {
    /// Notes the container's exit, if it exited, and schedules its restart per the pod's
    /// restart policy. `true` if it exited.
    fn reap(&mut self, restart_policy: &str, now: Instant) -> bool {
        use std::os::unix::process::ExitStatusExt;
        let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) else { return false };
        let exit_code = status.code().unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
        self.child = None;
        let reason = if exit_code == 0 { "Completed" } else { "Error" };
        self.state = State::Terminated { exit_code, reason: reason.into(), message: String::new(), finished_at: now_rfc3339() };
        let restart = match restart_policy {
            "Never" => false,
            // An init container that completed is done; one that failed runs again.
            _ if self.init => exit_code != 0,
            "OnFailure" => exit_code != 0,
            _ => true,
        };
        if restart && self.program.is_ok() {
            self.next_start = Some(now + backoff(self.restarts));
        }
        true
    }

    fn completed(&self) -> bool {
        matches!(self.state, State::Terminated { exit_code: 0, .. })
    }

    /// Terminated for good: no restart is due.
    fn finished(&self) -> bool {
        matches!(self.state, State::Terminated { .. }) && self.next_start.is_none()
    }
}

impl PodRuntime {
    fn sandbox(&self, container: &Container) -> Sandbox {
        let secrets = self.dir.join("serviceaccount");
        Sandbox {
            netns: self.netns.clone(),
            resolv_conf: self.dir.join("resolv.conf"),
            hosts: self.dir.join("hosts"),
            hostname: self.hostname.clone(),
            secrets: secrets.join("token").exists().then_some(secrets),
            env: container.env.clone(),
            mounts: container.mounts.clone(),
        }
    }

    fn initialized(&self) -> bool {
        self.containers.iter().filter(|c| c.init).all(Container::completed)
    }

    /// The containers to start now: the first init container not yet run, or, once all
    /// completed, the app containers not yet started.
    fn startable(&self) -> Vec<usize> {
        let waiting = |c: &Container| matches!(c.state, State::Waiting { .. }) && c.child.is_none();
        if let Some(index) = self.containers.iter().position(|c| c.init && !c.completed()) {
            return if waiting(&self.containers[index]) { vec![index] } else { Vec::new() };
        }
        (0..self.containers.len()).filter(|&i| !self.containers[i].init && waiting(&self.containers[i])).collect()
    }

    /// The phase from the containers, as the kubelet computes it.
    fn phase(&self) -> &'static str {
        if self.sandbox_error.is_some() {
            return "Pending";
        }
        if !self.initialized() {
            let failed = self.containers.iter().any(|c| c.init && c.finished() && !c.completed());
            return if failed { "Failed" } else { "Pending" };
        }
        let apps = || self.containers.iter().filter(|c| !c.init);
        if !apps().all(Container::finished) {
            return "Running";
        }
        if apps().all(Container::completed) { "Succeeded" } else { "Failed" }
    }

    fn ready(&self) -> bool {
        self.sandbox_error.is_none() && self.initialized() && self.containers.iter().filter(|c| !c.init).all(|c| matches!(c.state, State::Running { .. }))
    }
}

impl Runtime {
    /// A runtime that keeps its containers' sandboxes in `sandboxes` (shared with the
    /// kubelet's `pods/exec`).
    pub fn new(config: RuntimeConfig, sandboxes: SandboxIndex) -> Self {
        Self { config, pods: BTreeMap::new(), sandboxes, sandbox_failures: HashMap::new() }
    }

    /// The containers' sandboxes, shared with the kubelet's `pods/exec`.
    pub fn sandboxes(&self) -> SandboxIndex {
        self.sandboxes.clone()
    }

    fn index(&self, uid: &str, pod: &PodRuntime) {
        let entries = pod.containers.iter().map(|c| (c.name.clone(), pod.sandbox(c))).collect();
        self.sandboxes.write().unwrap_or_else(|e| e.into_inner()).insert(uid.to_string(), entries);
    }

    pub fn has(&self, uid: &str) -> bool {
        self.pods.contains_key(uid)
    }

    pub fn uids(&self) -> Vec<String> {
        self.pods.keys().cloned().collect()
    }

    /// Creates the sandbox and starts the containers of a stored Pod on `node`, waiting
    /// until declared TCP ports accept connections (at most `READY_TIMEOUT`).
    pub fn start(&mut self, pods: &[(Value, NodeInfo)]) {
        // Sandboxes are made in parallel (CNI ADD, namespaces, processes); the CNI plugin's
        // own lock keeps address allocation consistent.
        let per_thread = pods.len().div_ceil(8).max(1);
        let this = &*self;
        let made: Vec<(String, PodRuntime)> = std::thread::scope(|scope| {
            let handles: Vec<_> = pods.chunks(per_thread).map(|chunk| scope.spawn(move || chunk.iter().map(|(pod, node)| this.start_one(pod, node)).collect::<Vec<_>>())).collect();
            handles.into_iter().flat_map(|h| h.join().expect("pod start thread")).collect()
        });
        let now = Instant::now();
        for (uid, pod) in &made {
            if pod.network {
                self.index(uid, pod);
            }
            if pod.sandbox_error.is_some() {
                let attempts = self.sandbox_failures.get(uid).map_or(0, |(n, _)| *n) + 1;
                self.sandbox_failures.insert(uid.clone(), (attempts, now + backoff(attempts - 1)));
            } else {
                self.sandbox_failures.remove(uid);
            }
        }
        self.pods.extend(made);
    }

    /// Tears down the pods whose sandbox failed and whose back-off has passed, so that the
    /// next settle makes them again. `true` if there were any.
    pub fn retry_failed_sandboxes(&mut self) -> bool {
        let now = Instant::now();
        let due: Vec<String> =
            self.pods.iter().filter(|(uid, pod)| pod.sandbox_error.is_some() && self.sandbox_failures.get(*uid).is_some_and(|(_, at)| *at <= now)).map(|(uid, _)| uid.clone()).collect();
        if due.is_empty() {
            return false;
        }
        let failures: Vec<_> = due.iter().filter_map(|uid| self.sandbox_failures.get(uid).map(|f| (uid.clone(), *f))).collect();
        self.stop(&due);
        self.sandbox_failures.extend(failures);
        true
    }

    fn start_one(&self, pod: &Value, node: &NodeInfo) -> (String, PodRuntime) {
        let key = PodRef::of(pod);
        let uid = pod["metadata"]["uid"].as_str().unwrap_or_default().to_string();
        let paths = &self.config.paths;
        let host_network = pod["spec"]["hostNetwork"] == true;
        // A hostNetwork pod lives in the node's namespace and has the node's hostname.
        let (hostname, netns_name, netns) = if host_network {
            (node.name.clone(), String::new(), node.netns.clone())
        } else {
            let name = paths.pod_netns(&uid);
            (pod["spec"]["hostname"].as_str().unwrap_or(&key.name).to_string(), name.clone(), palisade_net::netns_path(&name))
        };
        let host_paths: HashMap<String, PathBuf> = pod["spec"]["volumes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| Some((v["name"].as_str()?.to_string(), paths.node_path(&node.name, Path::new(v["hostPath"]["path"].as_str()?)))))
            .collect();
        let mut runtime = PodRuntime {
            key: key.clone(),
            node: node.clone(),
            netns,
            netns_name,
            dir: paths.pod_dir(&uid),
            hostname,
            ips: Vec::new(),
            network: false,
            host_network,
            host_paths,
            restart_policy: pod["spec"]["restartPolicy"].as_str().unwrap_or("Always").to_string(),
            containers: Vec::new(),
            start_time: now_rfc3339(),
            sandbox_error: None,
        };
        if let Err(error) = self.create_sandbox(pod, &mut runtime) {
            tracing::warn!(%key, %error, "sandbox failed");
            runtime.sandbox_error = Some(error.to_string());
            return (uid, runtime);
        }
        let inits = pod["spec"]["initContainers"].as_array().into_iter().flatten().map(|c| (true, c));
        let apps = pod["spec"]["containers"].as_array().into_iter().flatten().map(|c| (false, c));
        for (init, container) in inits.chain(apps) {
            let env = container_env(&self.config, pod, container, &runtime.hostname, &runtime.ips, node);
            let program = images::plan(container).and_then(|program| env.as_ref().map(|_| program).map_err(Clone::clone));
            let mounts = container["volumeMounts"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|m| Some((runtime.host_paths.get(m["name"].as_str()?)?.clone(), PathBuf::from(m["mountPath"].as_str()?))))
                .collect();
            let mut ports: Vec<u16> = container["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|p| p["protocol"].as_str().unwrap_or("TCP") == "TCP")
                .filter_map(|p| u16::try_from(p["containerPort"].as_u64()?).ok())
                .collect();
            match &program {
                Ok(Program::Nginx { ports: p }) | Ok(Program::Serve { tcp: p, .. }) => ports.extend(p),
                Ok(Program::Dns) => ports.push(53),
                _ => {}
            }
            ports.sort_unstable();
            ports.dedup();
            runtime.containers.push(Container {
                name: container["name"].as_str().unwrap_or("container").to_string(),
                init,
                image: container["image"].as_str().unwrap_or_default().to_string(),
                program,
                env: env.unwrap_or_default(),
                mounts,
                ports,
                child: None,
                restarts: 0,
                state: State::Waiting { reason: "ContainerCreating".into(), message: String::new() },
                next_start: None,
            });
        }
        self.run_init_containers(&mut runtime);
        for index in runtime.startable() {
            self.spawn(&mut runtime, index);
        }
        (uid, runtime)
    }

    fn create_sandbox(&self, pod: &Value, runtime: &mut PodRuntime) -> Result<(), LabError> {
        std::fs::create_dir_all(runtime.dir.join("html")).map_err(LabError::io(format!("creating {}", runtime.dir.display())))?;
        std::fs::create_dir_all(runtime.dir.join("tmp")).map_err(LabError::io(format!("creating {}", runtime.dir.display())))?;
        let uid = pod["metadata"]["uid"].as_str().unwrap_or_default();
        for (volume, dir) in &runtime.host_paths {
            // DirectoryOrCreate and the unset type make the directory; the lab's nodes have
            // no other files, so every hostPath is a directory of the node's own.
            std::fs::create_dir_all(dir).map_err(LabError::io(format!("creating hostPath volume {volume} at {}", dir.display())))?;
        }
        if runtime.host_network {
            kill_leftovers_of_pod(&self.config.paths, uid);
            runtime.ips = vec![IpAddr::V4(runtime.node.ip4), IpAddr::V6(runtime.node.ip6)];
        } else {
            // A sandbox that outlived the daemon is adopted: same namespace, and CNI ADD of
            // the same container gives the same addresses.
            if !runtime.netns.exists() {
                palisade_net::create_named(&runtime.netns_name)?;
            } else {
                kill_leftovers(&runtime.netns);
            }
            let result = cni(&self.config, &runtime.node, "ADD", uid, &runtime.netns, &runtime.key)?;
            runtime.ips = result["ips"].as_array().into_iter().flatten().filter_map(|ip| ip["address"].as_str()?.split('/').next()?.parse().ok()).collect();
        }
        runtime.network = true;
        let fqdn = pod["spec"]["subdomain"].as_str().map(|sub| format!("{}.{sub}.{}.svc.cluster.local", runtime.hostname, runtime.key.namespace));
        write_file(&runtime.dir.join("resolv.conf"), &resolv_conf(&runtime.key.namespace))?;
        write_file(&runtime.dir.join("hosts"), &hosts_file(&runtime.hostname, fqdn.as_deref(), &runtime.ips))?;
        write_file(&runtime.dir.join("html/index.html"), NGINX_INDEX)?;
        let account = pod["spec"]["serviceAccountName"].as_str().unwrap_or("default");
        if pod["spec"]["automountServiceAccountToken"] != false
            && let Some(files) = (self.config.account_files)(&runtime.key.namespace, account)
        {
            let dir = runtime.dir.join("serviceaccount");
            std::fs::create_dir_all(&dir).map_err(LabError::io(format!("creating {}", dir.display())))?;
            write_file(&dir.join("token"), &files.token)?;
            write_file(&dir.join("ca.crt"), &files.ca_pem)?;
            write_file(&dir.join("namespace"), &runtime.key.namespace)?;
        }
        Ok(())
    }

    /// Runs the pod's init containers one after the other while they succeed, for at most
    /// `INIT_WAIT` (the rest, and failures' restarts, are the supervisor's). A kubelet runs
    /// pods concurrently; the lab starts them from one loop, so a network plugin's init
    /// container that installs the CNI config is done before the loop starts pods that
    /// need it, and the plugin's agent starts right after it.
    fn run_init_containers(&self, pod: &mut PodRuntime) {
        let deadline = Instant::now() + INIT_WAIT;
        while let Some(index) = pod.startable().first().copied().filter(|&i| pod.containers[i].init) {
            self.spawn(pod, index);
            let policy = pod.restart_policy.clone();
            while !pod.containers[index].reap(&policy, Instant::now()) {
                if Instant::now() >= deadline {
                    return;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            if !pod.containers[index].completed() {
                return;
            }
        }
    }

    /// Starts (or restarts) one container's process.
    fn spawn(&self, pod: &mut PodRuntime, index: usize) {
        let paths = &self.config.paths;
        let self_exe = self.config.self_exe.display().to_string();
        let container = &pod.containers[index];
        let argv: Result<Vec<String>, StartError> = match &container.program {
            Err(e) => Err(e.clone()),
            Ok(Program::Exec { argv }) => Ok(argv.clone()),
            Ok(Program::Palisade { args }) => Ok([vec![self_exe.clone()], args.clone()].concat()),
            Ok(Program::Serve { tcp, udp }) => {
                let mut argv = vec![self_exe.clone(), "serve".into(), "--hostname".into(), pod.hostname.clone()];
                argv.extend(tcp.iter().flat_map(|p| ["--tcp".to_string(), p.to_string()]));
                argv.extend(udp.iter().flat_map(|p| ["--udp".to_string(), p.to_string()]));
                Ok(argv)
            }
            Ok(Program::Dns) => Ok(vec![self_exe.clone(), "lab".into(), "--lab".into(), paths.name.clone(), "dns-server".into(), "--records".into(), paths.dns_records().display().to_string()]),
            Ok(Program::Nginx { ports }) => match images::find_program("nginx", images::DEFAULT_PATH) {
                None => Err(StartError { reason: "StartError".into(), message: "exec: \"nginx\": executable file not found in $PATH (install nginx on this machine)".into() }),
                Some(nginx) => {
                    let config_path = pod.dir.join(format!("nginx-{}.conf", container.name));
                    match write_file(&config_path, &images::nginx_config(&pod.dir, ports)) {
                        Ok(()) => Ok(vec![
                            nginx.display().to_string(),
                            "-p".into(),
                            pod.dir.display().to_string(),
                            "-c".into(),
                            config_path.display().to_string(),
                            "-e".into(),
                            pod.dir.join("nginx-error.log").display().to_string(),
                        ]),
                        Err(e) => Err(StartError { reason: "StartError".into(), message: e.to_string() }),
                    }
                }
            },
        };
        let log_path = pod.dir.join(format!("{}.log", container.name));
        let sandbox = pod.sandbox(container);
        let pod_marker = pod_marker(&paths.name, &pod.dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default());
        let spawned = argv.and_then(|argv| {
            let log = File::options().create(true).append(true).open(&log_path).map_err(|e| StartError { reason: "StartError".into(), message: format!("{}: {e}", log_path.display()) })?;
            let log2 = log.try_clone().map_err(|e| StartError { reason: "StartError".into(), message: e.to_string() })?;
            let (marker, value) = paths.process_marker();
            Command::new(&self.config.self_exe)
                .args(sandbox.pod_exec_args(&paths.name, &argv))
                .env_clear()
                .envs(container.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                .env(marker, value)
                .env(&pod_marker.0, &pod_marker.1)
                .current_dir("/")
                .process_group(0)
                .stdin(Stdio::null())
                .stdout(log)
                .stderr(log2)
                .spawn()
                .map_err(|e| StartError { reason: "StartError".into(), message: format!("starting {}: {e}", argv[0]) })
        });
        let container = &mut pod.containers[index];
        container.next_start = None;
        match spawned {
            Ok(child) => {
                container.child = Some(child);
                container.state = State::Running { started_at: now_rfc3339() };
            }
            Err(error) => {
                container.state = State::Terminated { exit_code: 128, reason: error.reason, message: error.message, finished_at: now_rfc3339() };
            }
        }
    }

    /// Waits until the declared TCP ports of these pods accept connections inside each pod
    /// (a readiness probe), so `apply` returns with servers that answer. One deadline for
    /// all: a pod whose port never opens delays `apply` by `READY_TIMEOUT` at most, however
    /// many such pods there are.
    pub fn wait_ready(&self, uids: &[String]) {
        let deadline = Instant::now() + READY_TIMEOUT;
        for uid in uids {
            let Some(pod) = self.pods.get(uid) else { continue };
            let ports: Vec<u16> = pod.containers.iter().filter(|c| c.child.is_some()).flat_map(|c| c.ports.clone()).collect();
            if ports.is_empty() || !pod.network {
                continue;
            }
            let _ = palisade_net::run_in(&pod.netns, || {
                for port in ports {
                    while Instant::now() < deadline {
                        if TcpStream::connect_timeout(&SocketAddr::from(([127, 0, 0, 1], port)), Duration::from_millis(200)).is_ok() {
                            break;
                        }
                        std::thread::sleep(Duration::from_millis(10));
                    }
                }
            });
        }
    }

    /// Checks every container: exits, restarts due. `true` if any pod's status changed.
    pub fn poll(&mut self) -> bool {
        let now = Instant::now();
        let mut changed = false;
        let uids: Vec<String> = self.pods.keys().cloned().collect();
        for uid in uids {
            let mut pod = self.pods.remove(&uid).expect("listed");
            let phase_before = pod.phase();
            for index in 0..pod.containers.len() {
                let policy = pod.restart_policy.clone();
                changed |= pod.containers[index].reap(&policy, now);
                if pod.containers[index].next_start.is_some_and(|at| at <= now) {
                    pod.containers[index].restarts += 1;
                    self.spawn(&mut pod, index);
                    changed = true;
                }
            }
            // An init container completed: the next one, or the app containers, start.
            if pod.sandbox_error.is_none() {
                for index in pod.startable() {
                    self.spawn(&mut pod, index);
                    changed = true;
                }
            }
            if pod.phase() != phase_before && matches!(pod.phase(), "Succeeded" | "Failed") {
                // A finished pod no longer owns its address.
                release_network(&self.config, &mut pod, &uid);
            }
            self.pods.insert(uid, pod);
        }
        changed
    }

    /// Stops pods: their processes (TERM, then KILL after a grace period), their network
    /// (CNI DEL), namespaces and files. Pods are torn down in parallel: most of the time
    /// goes to the kernel unregistering veth devices.
    pub fn stop(&mut self, uids: &[String]) {
        for uid in uids {
            self.sandbox_failures.remove(uid);
        }
        let mut pods: Vec<(String, PodRuntime)> = uids.iter().filter_map(|uid| self.pods.remove(uid).map(|p| (uid.clone(), p))).collect();
        {
            let mut index = self.sandboxes.write().unwrap_or_else(|e| e.into_inner());
            for uid in uids {
                index.remove(uid);
            }
        }
        let config = &self.config;
        let per_thread = pods.len().div_ceil(16).max(1);
        std::thread::scope(|scope| {
            for chunk in pods.chunks_mut(per_thread) {
                scope.spawn(move || {
                    for (uid, pod) in chunk {
                        stop_processes(&mut pod.containers);
                        release_network(config, pod, uid);
                        let _ = std::fs::remove_dir_all(&pod.dir);
                    }
                });
            }
        });
    }

    /// Stops every pod.
    pub fn stop_all(&mut self) {
        let uids = self.uids();
        self.stop(&uids);
    }

    /// The pod's status as the API shows it; `None` if the runtime does not know the pod.
    pub fn status(&self, uid: &str) -> Option<Value> {
        let pod = self.pods.get(uid)?;
        let ready = if pod.ready() { "True" } else { "False" };
        let initialized = if pod.initialized() { "True" } else { "False" };
        let mut status = json!({
            "phase": pod.phase(),
            "hostIP": pod.node.ip4.to_string(),
            "hostIPs": [{"ip": pod.node.ip4.to_string()}, {"ip": pod.node.ip6.to_string()}],
            "startTime": pod.start_time,
            "qosClass": "BestEffort",
            "conditions": [
                {"type": "PodReadyToStartContainers", "status": if pod.network { "True" } else { "False" }},
                {"type": "Initialized", "status": initialized},
                {"type": "Ready", "status": ready},
                {"type": "ContainersReady", "status": ready},
                {"type": "PodScheduled", "status": "True"},
            ],
        });
        if !pod.ips.is_empty() {
            status["podIP"] = json!(pod.ips[0].to_string());
            status["podIPs"] = json!(pod.ips.iter().map(|ip| json!({"ip": ip.to_string()})).collect::<Vec<_>>());
        }
        if let Some(error) = &pod.sandbox_error {
            status["message"] = json!(error);
            status["reason"] = json!("FailedCreatePodSandBox");
        }
        let statuses = |init: bool| -> Vec<Value> {
            pod.containers
                .iter()
                .filter(|c| c.init == init)
                .map(|c| {
                    let state = match (&c.state, c.next_start) {
                        (_, Some(_)) => json!({"waiting": {"reason": "CrashLoopBackOff", "message": format!("back-off restarting failed container {}", c.name)}}),
                        (State::Waiting { reason, message }, None) => json!({"waiting": {"reason": reason, "message": message}}),
                        (State::Running { started_at }, None) => json!({"running": {"startedAt": started_at}}),
                        (State::Terminated { exit_code, reason, message, finished_at }, None) => {
                            json!({"terminated": {"exitCode": exit_code, "reason": reason, "message": message, "finishedAt": finished_at}})
                        }
                    };
                    json!({
                        "name": c.name, "image": c.image, "imageID": "", "ready": matches!(c.state, State::Running { .. }) && c.next_start.is_none(),
                        "started": matches!(c.state, State::Running { .. }), "restartCount": c.restarts,
                        "containerID": c.child.as_ref().map(|ch| format!("palisade://{}", ch.id())), "state": state,
                    })
                })
                .collect()
        };
        status["containerStatuses"] = Value::Array(statuses(false));
        if pod.containers.iter().any(|c| c.init) {
            status["initContainerStatuses"] = Value::Array(statuses(true));
        }
        Some(status)
    }
}

/// Kills the processes a previous daemon left in a pod it is adopting: whatever runs in
/// the pod's network namespace (an environment marker would miss nginx, which clears it).
fn kill_leftovers(netns: &Path) {
    for pid in palisade_net::processes_in(&[netns.to_path_buf()]) {
        let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
}

/// The environment variable that tells one pod's processes apart (a hostNetwork pod shares
/// the node's namespace with other pods, so its leftovers are found by this instead).
fn pod_marker(lab: &str, uid: &str) -> (String, String) {
    ("PALISADE_LAB_POD".to_string(), format!("{lab}/{uid}"))
}

/// Kills the processes a previous daemon left of a hostNetwork pod it is adopting.
fn kill_leftovers_of_pod(paths: &LabPaths, uid: &str) {
    let (name, value) = pod_marker(&paths.name, uid);
    for pid in crate::client::processes_with_env(&format!("{name}={value}")) {
        let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
}

fn release_network(config: &RuntimeConfig, pod: &mut PodRuntime, uid: &str) {
    if pod.host_network {
        // The node's namespace is not the pod's to remove.
        pod.network = false;
        return;
    }
    if pod.network {
        if let Err(error) = cni(config, &pod.node, "DEL", uid, &pod.netns, &pod.key) {
            tracing::warn!(key = %pod.key, %error, "CNI DEL failed");
        }
        pod.network = false;
    }
    let _ = palisade_net::delete_named(&pod.netns_name);
}

fn stop_processes(containers: &mut [Container]) {
    let groups: Vec<i32> = containers.iter().filter_map(|c| c.child.as_ref().map(|ch| ch.id() as i32)).collect();
    for &group in &groups {
        let _ = killpg(Pid::from_raw(group), Signal::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_secs(2);
    for container in containers.iter_mut() {
        if let Some(child) = container.child.as_mut() {
            while Instant::now() < deadline && matches!(child.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = killpg(Pid::from_raw(child.id() as i32), Signal::SIGKILL);
            let _ = child.wait();
        }
        container.child = None;
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.stop_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf_and_hosts() {
        assert_eq!(resolv_conf("production"), "search production.svc.cluster.local svc.cluster.local cluster.local\nnameserver 10.96.0.10\noptions ndots:5\n");
        let hosts = hosts_file("db-0", Some("db-0.db.prod.svc.cluster.local"), &["10.244.1.2".parse().unwrap()]);
        assert!(hosts.ends_with("10.244.1.2\tdb-0.db.prod.svc.cluster.local\tdb-0\n"), "{hosts}");
    }

    #[test]
    fn backoff_doubles_up_to_thirty_seconds() {
        assert_eq!(backoff(0), Duration::from_secs(1));
        assert_eq!(backoff(3), Duration::from_secs(8));
        assert_eq!(backoff(10), Duration::from_secs(30));
    }
}
