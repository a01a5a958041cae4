//! ADD, DEL, CHECK, STATUS and GC.

use std::net::IpAddr;
use std::path::Path;

use serde_json::Value;

use palisade_net::{GATEWAY_V4, GATEWAY_V6, PodInterface};

use crate::config::NetConf;
use crate::error::{CniError, Code};
use crate::ipam::Store;
use crate::naming::host_interface;
use crate::result::{Built, result};

/// The runtime's environment for one invocation.
pub struct Env {
    pub container_id: String,
    pub netns: Option<String>,
    pub ifname: String,
}

/// A test hook: `PALISADE_CNI_CRASH_AT=<step>` aborts the process at that step of ADD, as a
/// `kill -9` would, so tests can check that DEL and GC clean up after any interrupted ADD.
fn crash_point(step: &str) {
    if std::env::var("PALISADE_CNI_CRASH_AT").is_ok_and(|at| at == step) {
        eprintln!("palisade-cni: crashing at {step} (PALISADE_CNI_CRASH_AT)");
        std::process::abort();
    }
}

/// ADD. `pod` (namespace, name) comes from `CNI_ARGS`; with an agent socket configured the
/// agent must confirm the pod's rules before ADD succeeds (see `agent.rs`).
pub fn add(conf: &NetConf, env: &Env, pod: Option<&(String, String)>) -> Result<Value, CniError> {
    let netns = env.netns.clone().ok_or_else(|| CniError::new(Code::InvalidEnvironment, "CNI_NETNS is required for ADD"))?;
    if conf.agent_socket.is_some() && pod.is_none() {
        return Err(CniError::new(Code::InvalidEnvironment, "CNI_ARGS must name the pod (K8S_POD_NAMESPACE=...;K8S_POD_NAME=...) when agentSocket is set: the agent enforces that pod's policies"));
    }
    if !Path::new(&netns).exists() {
        return Err(CniError::new(Code::InvalidEnvironment, format!("CNI_NETNS {netns} does not exist")));
    }
    let host = host_interface(&env.container_id, &env.ifname);
    let store = Store::open(&conf.data_dir, &conf.name)?;
    let allocation = store.update(|state| state.allocate(&conf.ranges, &env.container_id, &env.ifname, &host, &netns))?;
    crash_point("allocated");
    let built = build(conf, env, &netns, &host, &allocation.ips).and_then(|value| {
        if let (Some(socket), Some((namespace, name))) = (&conf.agent_socket, pod) {
            crate::agent::announce(socket, namespace, name, &allocation.ips, conf.agent_timeout)?;
        }
        Ok(value)
    });
    match built {
        Ok(value) => Ok(value),
        Err(error) => {
            // Roll back what this ADD did: the link (with its routes) and the addresses.
            tracing::warn!(%error, "ADD failed; rolling back");
            let _ = palisade_net::delete_link(&host);
            let _ = store.update(|state| Ok(state.release(&env.container_id, &env.ifname)));
            Err(error)
        }
    }
}

fn build(conf: &NetConf, env: &Env, netns: &str, host: &str, ips: &[IpAddr]) -> Result<Value, CniError> {
    let existing = palisade_net::host_link(host)?;
    let pod_has_interface = palisade_net::pod_interface_exists(Path::new(netns), &env.ifname)?;
    let link = match (existing, pod_has_interface) {
        // ADD repeated for the same attachment: rebuild the result from what exists.
        (Some((host_info, _)), true) => palisade_net::HostSide { host: host_info, pod: pod_link(netns, &env.ifname)? },
        (None, true) => {
            return Err(CniError::new(Code::InterfaceExists, format!("the container already has an interface {} (not made by Palisade)", env.ifname)));
        }
        (Some(_), false) => {
            // A link from an ADD into another namespace: start over.
            palisade_net::delete_link(host)?;
            palisade_net::create_veth(Path::new(netns), host, &env.ifname, conf.mtu)?
        }
        (None, false) => palisade_net::create_veth(Path::new(netns), host, &env.ifname, conf.mtu)?,
    };
    crash_point("veth-created");
    palisade_net::configure_pod(&PodInterface { netns: Path::new(netns), name: &env.ifname, addresses: ips, mtu: conf.mtu })?;
    crash_point("pod-configured");
    palisade_net::configure_host(host, ips)?;
    crash_point("host-configured");
    Ok(result(&conf.cni_version, &Built { link: &link, netns, ips, mtu: conf.mtu }, conf.prev_result.as_ref()))
}

fn pod_link(netns: &str, ifname: &str) -> Result<palisade_net::LinkInfo, CniError> {
    palisade_net::pod_link(Path::new(netns), ifname)?.ok_or_else(|| CniError::new(Code::Network, format!("interface {ifname} vanished from {netns}")))
}

/// DEL: best effort and idempotent. The host link (and with it the pod side, the host routes
/// and the proxy entries) goes, and the addresses are released, even if the namespace is gone.
pub fn del(conf: &NetConf, env: &Env) -> Result<(), CniError> {
    let store = Store::open(&conf.data_dir, &conf.name)?;
    let recorded = store.read()?.find(&env.container_id, &env.ifname).map(|a| a.host_interface.clone());
    let host = recorded.unwrap_or_else(|| host_interface(&env.container_id, &env.ifname));
    palisade_net::delete_link(&host)?;
    store.update(|state| Ok(state.release(&env.container_id, &env.ifname)))?;
    Ok(())
}

/// CHECK: the recorded attachment still has its host link, its pod interface with exactly
/// its addresses, and default routes via the link-local gateways.
pub fn check(conf: &NetConf, env: &Env) -> Result<(), CniError> {
    let netns = env.netns.clone().ok_or_else(|| CniError::new(Code::InvalidEnvironment, "CNI_NETNS is required for CHECK"))?;
    let store = Store::open(&conf.data_dir, &conf.name)?;
    let state = store.read()?;
    let allocation =
        state.find(&env.container_id, &env.ifname).ok_or_else(|| CniError::new(Code::UnknownContainer, format!("no attachment for container {} interface {}", env.container_id, env.ifname)))?;
    let fail = |what: String| Err(CniError::new(Code::CheckFailed, what));
    match palisade_net::host_link(&allocation.host_interface)? {
        None => return fail(format!("host interface {} is missing", allocation.host_interface)),
        Some((_, false)) => return fail(format!("host interface {} is down", allocation.host_interface)),
        Some(_) => {}
    }
    let Some(pod) = palisade_net::check_pod(Path::new(&netns), &env.ifname)? else {
        return fail(format!("interface {} is missing in {netns}", env.ifname));
    };
    if !pod.up {
        return fail(format!("interface {} is down", env.ifname));
    }
    let mut expected = allocation.ips.clone();
    expected.sort();
    if pod.addresses != expected {
        return fail(format!("interface {} has addresses {:?}, expected {:?}", env.ifname, pod.addresses, expected));
    }
    let mut gateways: Vec<IpAddr> = Vec::new();
    if expected.iter().any(IpAddr::is_ipv4) {
        gateways.push(IpAddr::V4(GATEWAY_V4));
    }
    if expected.iter().any(IpAddr::is_ipv6) {
        gateways.push(IpAddr::V6(GATEWAY_V6));
    }
    for gateway in gateways {
        if !pod.default_gateways.contains(&gateway) {
            return fail(format!("interface {} has no default route via {gateway}", env.ifname));
        }
    }
    if let Some(prev) = &conf.prev_result {
        let listed: Vec<String> = prev.get("ips").and_then(Value::as_array).into_iter().flatten().filter_map(|ip| ip.get("address")?.as_str().map(str::to_string)).collect();
        for ip in &allocation.ips {
            let prefix = if ip.is_ipv4() { 32 } else { 128 };
            if !listed.contains(&format!("{ip}/{prefix}")) {
                return fail(format!("prevResult does not list {ip}/{prefix}"));
            }
        }
    }
    Ok(())
}

/// STATUS: ready to serve ADD when the state is readable and every range has a free address.
pub fn status(conf: &NetConf) -> Result<(), CniError> {
    let store = Store::open(&conf.data_dir, &conf.name).map_err(|e| CniError::new(Code::NotAvailable, e.to_string()))?;
    let state = store.read().map_err(|e| CniError::new(Code::NotAvailable, e.to_string()))?;
    for range in &conf.ranges {
        if state.free(range) == 0 {
            return Err(CniError::new(Code::NotAvailable, format!("range {range} is exhausted: no address for a new pod")));
        }
    }
    Ok(())
}

/// GC: every attachment not in `cni.dev/valid-attachments` loses its link and addresses.
/// Continues past errors and reports them together.
pub fn gc(conf: &NetConf) -> Result<(), CniError> {
    let store = Store::open(&conf.data_dir, &conf.name)?;
    let mut errors = Vec::new();
    store.update(|state| {
        let stale: Vec<(String, String, String)> = state
            .allocations
            .iter()
            .filter(|a| !conf.valid_attachments.iter().any(|(c, i)| *c == a.container_id && *i == a.ifname))
            .map(|a| (a.container_id.clone(), a.ifname.clone(), a.host_interface.clone()))
            .collect();
        for (container, ifname, host) in stale {
            match palisade_net::delete_link(&host) {
                Ok(_) => {
                    state.release(&container, &ifname);
                }
                Err(e) => errors.push(format!("{container}/{ifname}: {e}")),
            }
        }
        Ok(())
    })?;
    if errors.is_empty() { Ok(()) } else { Err(CniError::new(Code::Io, "GC could not clean everything").with_details(errors.join("; "))) }
}
