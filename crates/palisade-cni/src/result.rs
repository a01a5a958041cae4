//! The ADD result (spec §5): interfaces, addresses and routes, in the shape of the config's
//! cniVersion (0.4.0 results carry `version` on each address).

use std::net::IpAddr;

use serde_json::{Value, json};

use palisade_net::{GATEWAY_V4, GATEWAY_V6, HostSide};

/// What ADD built for one attachment.
pub struct Built<'a> {
    pub link: &'a HostSide,
    pub netns: &'a str,
    pub ips: &'a [IpAddr],
    pub mtu: u32,
}

/// The result JSON; when chained, `prev` (the previous plugin's result) is kept and extended.
pub fn result(cni_version: &str, built: &Built<'_>, prev: Option<&Value>) -> Value {
    let old = cni_version == "0.4.0";
    let mut interfaces: Vec<Value> = prev.and_then(|p| p.get("interfaces")).and_then(Value::as_array).cloned().unwrap_or_default();
    let mut ips: Vec<Value> = prev.and_then(|p| p.get("ips")).and_then(Value::as_array).cloned().unwrap_or_default();
    let mut routes: Vec<Value> = prev.and_then(|p| p.get("routes")).and_then(Value::as_array).cloned().unwrap_or_default();
    interfaces.push(json!({"name": built.link.host.name, "mac": built.link.host.mac}));
    let mut pod = json!({"name": built.link.pod.name, "mac": built.link.pod.mac, "sandbox": built.netns});
    if !old {
        pod["mtu"] = json!(built.mtu);
    }
    interfaces.push(pod);
    let pod_index = interfaces.len() - 1;
    for ip in built.ips {
        let (prefix, gateway, version) = match ip {
            IpAddr::V4(_) => (32, IpAddr::V4(GATEWAY_V4), "4"),
            IpAddr::V6(_) => (128, IpAddr::V6(GATEWAY_V6), "6"),
        };
        let mut entry = json!({"address": format!("{ip}/{prefix}"), "gateway": gateway.to_string(), "interface": pod_index});
        if old {
            entry["version"] = json!(version);
        }
        ips.push(entry);
    }
    if built.ips.iter().any(IpAddr::is_ipv4) {
        routes.push(json!({"dst": "0.0.0.0/0", "gw": GATEWAY_V4.to_string()}));
    }
    if built.ips.iter().any(IpAddr::is_ipv6) {
        routes.push(json!({"dst": "::/0", "gw": GATEWAY_V6.to_string()}));
    }
    let mut out = json!({"cniVersion": cni_version, "interfaces": interfaces, "ips": ips, "routes": routes});
    out["dns"] = prev.and_then(|p| p.get("dns")).cloned().unwrap_or_else(|| json!({}));
    out
}
