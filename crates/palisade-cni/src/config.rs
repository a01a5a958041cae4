//! The network configuration on stdin, validated. Errors name the field and say what is
//! allowed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use serde::Deserialize;
use serde_json::Value;

use crate::error::{CniError, Code};

pub const SUPPORTED_VERSIONS: [&str; 3] = ["0.4.0", "1.0.0", "1.1.0"];
pub const DEFAULT_DATA_DIR: &str = "/var/lib/palisade/ipam";
pub const DEFAULT_MTU: u32 = 1500;
/// How long ADD waits for the agent to confirm a pod's rules.
pub const DEFAULT_AGENT_TIMEOUT_SECONDS: u64 = 10;

/// A validated network configuration.
#[derive(Clone, Debug)]
pub struct NetConf {
    pub cni_version: String,
    pub name: String,
    /// At most one range per address family.
    pub ranges: Vec<IpNet>,
    pub data_dir: PathBuf,
    pub mtu: u32,
    /// The previous plugin's result when chained.
    pub prev_result: Option<Value>,
    /// `cni.dev/valid-attachments` (GC): (containerID, ifname).
    pub valid_attachments: Vec<(String, String)>,
    /// The node agent's socket: ADD returns only once the agent enforces the pod's rules.
    /// Absent: no handshake (a node whose rules come from elsewhere, as in the lab).
    pub agent_socket: Option<PathBuf>,
    pub agent_timeout: std::time::Duration,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawIpam {
    #[serde(default)]
    ranges: Option<Vec<Value>>,
    #[serde(default)]
    data_dir: Option<String>,
    #[serde(default, rename = "type")]
    kind: Option<String>,
}

#[derive(Deserialize)]
struct Attachment {
    #[serde(rename = "containerID")]
    container_id: String,
    ifname: String,
}

fn invalid(field: &str, message: impl Into<String>) -> CniError {
    CniError::new(Code::InvalidConfig, format!("invalid network config: {field}: {}", message.into()))
}

/// Whether `version` is one the plugin speaks.
pub fn check_version(version: &str) -> Result<(), CniError> {
    if SUPPORTED_VERSIONS.contains(&version) {
        Ok(())
    } else {
        Err(CniError::new(Code::IncompatibleVersion, format!("unsupported cniVersion {version:?}: supported: {}", SUPPORTED_VERSIONS.join(", "))))
    }
}

/// The cniVersion of a config, as far as it can be read (for error output).
pub fn peek_version(stdin: &[u8]) -> String {
    serde_json::from_slice::<Value>(stdin)
        .ok()
        .and_then(|v| v.get("cniVersion").and_then(Value::as_str).map(str::to_string))
        .filter(|v| SUPPORTED_VERSIONS.contains(&v.as_str()))
        .unwrap_or_else(|| "1.1.0".to_string())
}

pub fn parse(stdin: &[u8]) -> Result<NetConf, CniError> {
    let value: Value = serde_json::from_slice(stdin).map_err(|e| CniError::new(Code::Decode, format!("cannot decode the network config on stdin: {e}")))?;
    let object = value.as_object().ok_or_else(|| CniError::new(Code::Decode, "the network config must be a JSON object"))?;
    let text = |key: &str| object.get(key).and_then(Value::as_str).map(str::to_string);
    let cni_version = text("cniVersion").ok_or_else(|| invalid("cniVersion", "required (one of 0.4.0, 1.0.0, 1.1.0)"))?;
    check_version(&cni_version)?;
    let name = text("name").filter(|n| !n.is_empty()).ok_or_else(|| invalid("name", "required: the network's name"))?;
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')) {
        return Err(invalid("name", format!("{name:?} may only contain letters, digits, '-', '_' and '.'")));
    }

    let ipam_value = object.get("ipam").ok_or_else(|| invalid("ipam", "required: {\"ranges\": [...], \"dataDir\": ...}"))?;
    let ipam: RawIpam = serde_json::from_value(ipam_value.clone()).map_err(|e| invalid("ipam", e.to_string()))?;
    if let Some(kind) = ipam.kind.filter(|k| !k.is_empty() && k != "palisade") {
        return Err(CniError::new(Code::UnsupportedField, format!("unsupported field ipam.type = {kind:?}: Palisade allocates addresses itself; omit ipam.type")));
    }
    let raw_ranges = ipam.ranges.unwrap_or_default();
    if raw_ranges.is_empty() {
        return Err(invalid("ipam.ranges", "required: one CIDR per address family, e.g. [\"10.244.1.0/24\", \"fd00:10:244:1::/64\"]"));
    }
    let mut ranges: Vec<IpNet> = Vec::new();
    for (i, raw) in raw_ranges.iter().enumerate() {
        let field = format!("ipam.ranges[{i}]");
        let text = raw.as_str().ok_or_else(|| invalid(&field, format!("expected a CIDR string, got {raw}")))?;
        let net: IpNet = text.parse().map_err(|_| invalid(&field, format!("invalid CIDR {text:?}: e.g. 10.244.1.0/24 or fd00:10:244:1::/64")))?;
        if net != net.trunc() {
            return Err(invalid(&field, format!("{text:?} has host bits set; the range is {}", net.trunc())));
        }
        let usable = crate::ipam::usable_addresses(&net);
        if usable == 0 {
            return Err(invalid(&field, format!("{text:?} has no usable address (network and broadcast addresses are not handed out)")));
        }
        if let Some((j, other)) = ranges.iter().enumerate().find(|(_, r)| r.contains(&net.network()) || net.contains(&r.network())) {
            return Err(invalid(&field, format!("{net} overlaps ipam.ranges[{j}] {other}")));
        }
        if let Some((j, other)) = ranges.iter().enumerate().find(|(_, r)| matches!((r, &net), (IpNet::V4(_), IpNet::V4(_)) | (IpNet::V6(_), IpNet::V6(_)))) {
            return Err(invalid(&field, format!("a second {} range ({net} and ipam.ranges[{j}] {other}): give one range per address family", if net.addr().is_ipv4() { "IPv4" } else { "IPv6" })));
        }
        ranges.push(net);
    }
    let data_dir = PathBuf::from(ipam.data_dir.unwrap_or_else(|| DEFAULT_DATA_DIR.to_string()));
    if !data_dir.is_absolute() {
        return Err(invalid("ipam.dataDir", format!("{:?} must be an absolute path", data_dir.display().to_string())));
    }

    let mtu = match object.get("mtu") {
        None | Some(Value::Null) => DEFAULT_MTU,
        Some(value) => match value.as_u64() {
            Some(mtu) if (68..=65535).contains(&mtu) => mtu as u32,
            _ => return Err(invalid("mtu", format!("{value} is not an MTU: give a number from 68 to 65535"))),
        },
    };

    let valid_attachments = match object.get("cni.dev/valid-attachments") {
        None => Vec::new(),
        Some(value) => serde_json::from_value::<Vec<Attachment>>(value.clone())
            .map_err(|e| invalid("cni.dev/valid-attachments", format!("expected [{{\"containerID\": ..., \"ifname\": ...}}]: {e}")))?
            .into_iter()
            .map(|a| (a.container_id, a.ifname))
            .collect(),
    };
    let agent_socket = match object.get("agentSocket") {
        None | Some(Value::Null) => None,
        Some(Value::String(path)) if Path::new(path).is_absolute() => Some(PathBuf::from(path)),
        Some(other) => return Err(invalid("agentSocket", format!("{other} is not an absolute path: e.g. \"/run/palisade/agent.sock\""))),
    };
    let agent_timeout = match object.get("agentTimeoutSeconds") {
        None | Some(Value::Null) => std::time::Duration::from_secs(DEFAULT_AGENT_TIMEOUT_SECONDS),
        Some(value) => match value.as_f64() {
            Some(seconds) if seconds > 0.0 && seconds <= 300.0 => std::time::Duration::from_secs_f64(seconds),
            _ => return Err(invalid("agentTimeoutSeconds", format!("{value} is not a number of seconds from 0 to 300"))),
        },
    };
    Ok(NetConf { cni_version, name, ranges, data_dir, mtu, prev_result: object.get("prevResult").cloned(), valid_attachments, agent_socket, agent_timeout })
}

/// `CNI_ARGS` (`K=V;K2=V2`).
pub fn parse_args(text: &str) -> BTreeMap<String, String> {
    text.split(';').filter_map(|pair| pair.split_once('=')).map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(json: &str) -> CniError {
        parse(json.as_bytes()).unwrap_err()
    }

    #[test]
    fn the_agent_socket_is_an_absolute_path_and_its_timeout_bounded() {
        let base = r#""cniVersion": "1.1.0", "name": "n", "ipam": {"ranges": ["10.244.1.0/24"]}"#;
        let conf = parse(format!("{{{base}, \"agentSocket\": \"/run/palisade/agent.sock\"}}").as_bytes()).unwrap();
        assert_eq!(conf.agent_socket.as_deref(), Some(Path::new("/run/palisade/agent.sock")));
        assert_eq!(conf.agent_timeout.as_secs(), DEFAULT_AGENT_TIMEOUT_SECONDS);
        assert!(parse(format!("{{{base}}}").as_bytes()).unwrap().agent_socket.is_none());
        let relative = error(&format!("{{{base}, \"agentSocket\": \"agent.sock\"}}"));
        assert!(relative.to_string().contains("agentSocket") && relative.to_string().contains("absolute"), "{relative}");
        let timeout = error(&format!("{{{base}, \"agentTimeoutSeconds\": 0}}"));
        assert!(timeout.to_string().contains("agentTimeoutSeconds"), "{timeout}");
    }

    #[test]
    fn a_valid_config() {
        let conf = parse(
            br#"{"cniVersion": "1.1.0", "name": "palisade", "type": "palisade-cni", "ipam": {"ranges": ["10.244.1.0/24", "fd00:10:244:1::/64"], "dataDir": "/var/lib/palisade/ipam"}, "mtu": 1450}"#,
        )
        .unwrap();
        assert_eq!(conf.ranges.len(), 2);
        assert_eq!(conf.mtu, 1450);
    }

    #[test]
    fn errors_name_the_field() {
        let e = error(r#"{"cniVersion": "2.0.0", "name": "n", "ipam": {"ranges": ["10.0.0.0/24"]}}"#);
        assert_eq!((e.code, e.msg.as_str()), (Code::IncompatibleVersion, "unsupported cniVersion \"2.0.0\": supported: 0.4.0, 1.0.0, 1.1.0"));
        let e = error(r#"{"cniVersion": "1.1.0", "ipam": {"ranges": ["10.0.0.0/24"]}}"#);
        assert_eq!((e.code, e.msg.as_str()), (Code::InvalidConfig, "invalid network config: name: required: the network's name"));
        let e = error(r#"{"cniVersion": "1.1.0", "name": "n", "ipam": {"ranges": ["10.0.0/24"]}}"#);
        assert_eq!(e.msg, "invalid network config: ipam.ranges[0]: invalid CIDR \"10.0.0/24\": e.g. 10.244.1.0/24 or fd00:10:244:1::/64");
        let e = error(r#"{"cniVersion": "1.1.0", "name": "n", "ipam": {"ranges": ["10.0.0.0/16", "10.0.1.0/24"]}}"#);
        assert_eq!(e.msg, "invalid network config: ipam.ranges[1]: 10.0.1.0/24 overlaps ipam.ranges[0] 10.0.0.0/16");
        let e = error(r#"{"cniVersion": "1.1.0", "name": "n", "ipam": {"ranges": ["10.0.0.0/24", "10.1.0.0/24"]}}"#);
        assert!(e.msg.contains("a second IPv4 range"), "{}", e.msg);
        let e = error(r#"{"cniVersion": "1.1.0", "name": "n", "ipam": {"ranges": []}}"#);
        assert!(e.msg.starts_with("invalid network config: ipam.ranges: required"), "{}", e.msg);
        let e = error(r#"{"cniVersion": "1.1.0", "name": "n"}"#);
        assert!(e.msg.starts_with("invalid network config: ipam: required"), "{}", e.msg);
        let e = error(r#"{"cniVersion": "1.1.0", "name": "n", "ipam": {"ranges": ["10.0.0.1/24"]}}"#);
        assert!(e.msg.contains("host bits set"), "{}", e.msg);
        let e = error(r#"{"cniVersion": "1.1.0", "name": "n", "ipam": {"ranges": ["10.0.0.0/32"]}}"#);
        assert!(e.msg.contains("no usable address"), "{}", e.msg);
        let e = error(r#"{"cniVersion": "1.1.0", "name": "n", "mtu": 20, "ipam": {"ranges": ["10.0.0.0/24"]}}"#);
        assert!(e.msg.starts_with("invalid network config: mtu:"), "{}", e.msg);
        let e = error(r#"{"cniVersion": "1.1.0", "name": "n", "ipam": {"type": "host-local", "ranges": ["10.0.0.0/24"]}}"#);
        assert_eq!(e.code, Code::UnsupportedField);
        let e = error("not json");
        assert_eq!(e.code, Code::Decode);
    }

    #[test]
    fn cni_args() {
        let args = parse_args("IgnoreUnknown=1;K8S_POD_NAMESPACE=x;K8S_POD_NAME=a");
        assert_eq!(args["K8S_POD_NAME"], "a");
    }
}
