//! ClusterNetworkPolicy objects, validated with the CRD's rules (OpenAPI bounds and its CEL
//! rules), each error at its field path. Unknown fields are errors, as under kubectl's
//! strict validation, except in a peer or protocol entry that has no field this version
//! knows: that is a newer CRD's, and the rule fails closed (the CRD's instruction).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde_json::{Map, Value};

use super::cidr::parse_cidr_sloppy;
use super::selector::selector;
use crate::cluster_policy::{Action, ClusterPeer, ClusterPolicy, ClusterProtocol, ClusterRule, NamespacedPods, Subject, Tier};
use crate::field_path::{At, Errors, FieldError};
use crate::objects::{Origin, Protocol};
use crate::selector::Selector;

/// The API versions read (same shape).
pub const API_VERSIONS: [&str; 2] = ["policy.networking.k8s.io/v1beta1", "policy.networking.k8s.io/v1alpha2"];

const MAX_RULES: usize = 25;
const MAX_ITEMS: usize = 25;

fn object<'v>(value: &'v Value, path: &At<'_>, errors: &mut Errors, required: bool) -> Option<&'v Map<String, Value>> {
    match value {
        Value::Object(map) => Some(map),
        Value::Null if !required => None,
        Value::Null => {
            errors.push(path, "Required value");
            None
        }
        other => {
            errors.push(path, format!("expected an object, got {other}"));
            None
        }
    }
}

fn unknown_keys(map: &Map<String, Value>, known: &[&str], path: &At<'_>, errors: &mut Errors) {
    for key in map.keys().filter(|k| !known.contains(&k.as_str())) {
        errors.0.push(FieldError::unknown_field(path.key(key).path()));
    }
}

fn label_selector(value: &Value, path: &At<'_>, errors: &mut Errors) -> Selector {
    match serde_json::from_value::<LabelSelector>(value.clone()) {
        Ok(parsed) => {
            if let Some(map) = value.as_object() {
                unknown_keys(map, &["matchLabels", "matchExpressions"], path, errors);
            }
            selector(&parsed, path, errors)
        }
        Err(e) => {
            errors.push(path, format!("not a label selector: {e}"));
            Selector::default()
        }
    }
}

fn namespaced_pods(value: &Value, path: &At<'_>, errors: &mut Errors) -> NamespacedPods {
    let Some(map) = object(value, path, errors, true) else { return NamespacedPods { namespaces: Selector::default(), pods: Selector::default() } };
    unknown_keys(map, &["namespaceSelector", "podSelector"], path, errors);
    let mut part = |key: &str| match map.get(key) {
        Some(v) => label_selector(v, &path.key(key), errors),
        None => {
            errors.push(path.key(key), "Required value: a label selector ({} selects all)");
            Selector::default()
        }
    };
    NamespacedPods { namespaces: part("namespaceSelector"), pods: part("podSelector") }
}

/// `(number of known fields set, the parsed peer)`.
fn peer(value: &Value, egress: bool, path: &At<'_>, errors: &mut Errors) -> ClusterPeer {
    let Some(map) = object(value, path, errors, true) else { return ClusterPeer::Unknown };
    let known: &[&str] = if egress { &["namespaces", "pods", "nodes", "networks", "domainNames"] } else { &["namespaces", "pods"] };
    let set: Vec<&str> = known.iter().copied().filter(|k| map.get(*k).is_some_and(|v| !v.is_null())).collect();
    if !egress && let Some(key) = ["nodes", "networks", "domainNames"].iter().find(|k| map.contains_key(**k)) {
        errors.0.push(FieldError::unknown_field(path.key(key).path()));
        errors.push(path.key(key), format!("{key} peers are for egress rules; ingress peers are namespaces or pods"));
        return ClusterPeer::Unknown;
    }
    if set.is_empty() {
        if map.is_empty() {
            errors.push(path, format!("Required value: exactly one of {} must be set", known.join(", ")));
        } else {
            tracing::warn!(path = %path.path(), fields = ?map.keys().collect::<Vec<_>>(), "a peer of a kind this version does not know: the rule fails closed");
        }
        return ClusterPeer::Unknown;
    }
    unknown_keys(map, known, path, errors);
    if set.len() > 1 {
        errors.push(path, format!("Too many: {} are set; exactly one of {} may be set", set.join(", "), known.join(", ")));
        return ClusterPeer::Unknown;
    }
    let key = set[0];
    let at = path.key(key);
    let item = &map[key];
    match key {
        "namespaces" => ClusterPeer::Namespaces(label_selector(item, &at, errors)),
        "pods" => ClusterPeer::Pods(namespaced_pods(item, &at, errors)),
        "nodes" => ClusterPeer::Nodes(label_selector(item, &at, errors)),
        "networks" => {
            let list = strings(item, &at, errors);
            ClusterPeer::Networks(
                list.iter()
                    .enumerate()
                    .filter_map(|(i, text)| match parse_cidr_sloppy(text) {
                        Some(net) if text.len() <= 43 => Some(net.trunc()),
                        _ => {
                            errors.push(at.index(i), format!("Invalid value: {text:?}: Invalid CIDR format provided (e.g. 10.0.0.0/8 or fd00::/8)"));
                            None
                        }
                    })
                    .collect(),
            )
        }
        _ => {
            let list = strings(item, &at, errors);
            for (i, name) in list.iter().enumerate() {
                if !domain_name(name) {
                    errors.push(at.index(i), format!("Invalid value: {name:?}: a domain name (kubernetes.io) or a wildcard prefix and one (*.kubernetes.io)"));
                }
            }
            ClusterPeer::DomainNames(list)
        }
    }
}

/// 1 to 25 distinct strings (`listType=set`).
fn strings(value: &Value, path: &At<'_>, errors: &mut Errors) -> Vec<String> {
    let Some(items) = value.as_array() else {
        errors.push(path, format!("expected a list, got {value}"));
        return Vec::new();
    };
    if items.is_empty() || items.len() > MAX_ITEMS {
        errors.push(path, format!("must have 1 to {MAX_ITEMS} items, has {}", items.len()));
    }
    let mut out: Vec<String> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        match item.as_str() {
            Some(text) if out.iter().any(|o| o == text) => errors.push(path.index(i), format!("Duplicate value: {text:?}")),
            Some(text) => out.push(text.to_string()),
            None => errors.push(path.index(i), format!("expected a string, got {item}")),
        }
    }
    out
}

/// The CRD's pattern: labels of letters, digits, `-` and `_`, an optional `*.` prefix.
fn domain_name(name: &str) -> bool {
    let name = name.strip_prefix("*.").unwrap_or(name);
    let name = name.strip_suffix('.').unwrap_or(name);
    let labels: Vec<&str> = name.split('.').collect();
    labels.len() >= 2
        && labels.iter().all(|label| {
            let bytes = label.as_bytes();
            !bytes.is_empty() && bytes[0].is_ascii_alphanumeric() && bytes[bytes.len() - 1].is_ascii_alphanumeric() && bytes.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_')
        })
}

fn port_number(value: &Value, path: &At<'_>, errors: &mut Errors) -> u16 {
    match value.as_u64().and_then(|n| u16::try_from(n).ok()).filter(|n| *n >= 1) {
        Some(n) => n,
        None => {
            errors.push(path, format!("Invalid value: {value}: must be between 1 and 65535, inclusive"));
            1
        }
    }
}

fn protocol(value: &Value, path: &At<'_>, errors: &mut Errors) -> ClusterProtocol {
    let Some(map) = object(value, path, errors, true) else { return ClusterProtocol::Unknown };
    const KNOWN: [&str; 4] = ["tcp", "udp", "sctp", "destinationNamedPort"];
    let set: Vec<&str> = KNOWN.iter().copied().filter(|k| map.get(*k).is_some_and(|v| !v.is_null() && v != "")).collect();
    if set.is_empty() {
        if map.is_empty() {
            errors.push(path, "Required value: exactly one of tcp, udp, sctp, destinationNamedPort must be set");
        } else {
            tracing::warn!(path = %path.path(), "a protocol of a kind this version does not know: the rule fails closed");
        }
        return ClusterProtocol::Unknown;
    }
    unknown_keys(map, &KNOWN, path, errors);
    if set.len() > 1 {
        errors.push(path, format!("Too many: {} are set; exactly one of tcp, udp, sctp, destinationNamedPort may be set", set.join(", ")));
        return ClusterProtocol::Unknown;
    }
    let key = set[0];
    let at = path.key(key);
    if key == "destinationNamedPort" {
        let name = map[key].as_str().unwrap_or_default().to_string();
        errors.check(&at, "port name", &name, super::names::port_name(&name));
        return ClusterProtocol::NamedPort(name);
    }
    let protocol = match key {
        "tcp" => Protocol::Tcp,
        "udp" => Protocol::Udp,
        _ => Protocol::Sctp,
    };
    let Some(body) = object(&map[key], &at, errors, true) else { return ClusterProtocol::Unknown };
    unknown_keys(body, &["destinationPort"], &at, errors);
    let port_at = at.key("destinationPort");
    let Some(port) = body.get("destinationPort").and_then(|v| object(v, &port_at, errors, true)) else {
        errors.push(at, "Required value: destinationPort (MinProperties 1)");
        return ClusterProtocol::Unknown;
    };
    unknown_keys(port, &["number", "range"], &port_at, errors);
    match (port.get("number"), port.get("range")) {
        (Some(number), None) => {
            let n = port_number(number, &port_at.key("number"), errors);
            ClusterProtocol::Ports { protocol, first: n, last: n }
        }
        (None, Some(range)) => {
            let range_at = port_at.key("range");
            let Some(range) = object(range, &range_at, errors, true) else { return ClusterProtocol::Unknown };
            unknown_keys(range, &["start", "end"], &range_at, errors);
            let bound = |key: &str, errors: &mut Errors| match range.get(key) {
                Some(v) => port_number(v, &range_at.key(key), errors),
                None => {
                    errors.push(range_at.key(key), "Required value");
                    1
                }
            };
            let (first, last) = (bound("start", errors), bound("end", errors));
            if first >= last {
                errors.push(range_at, format!("Invalid value: start {first}, end {last}: Start port must be less than End port"));
            }
            ClusterProtocol::Ports { protocol, first, last }
        }
        _ => {
            errors.push(port_at, "exactly one of number and range must be set");
            ClusterProtocol::Unknown
        }
    }
}

fn rule(value: &Value, egress: bool, path: &At<'_>, errors: &mut Errors) -> Option<ClusterRule> {
    let map = object(value, path, errors, true)?;
    let peers_key = if egress { "to" } else { "from" };
    unknown_keys(map, &["name", "action", peers_key, "protocols"], path, errors);
    let name = match map.get("name") {
        None | Some(Value::Null) => None,
        Some(Value::String(name)) if name.chars().count() <= 100 => Some(name.clone()),
        Some(other) => {
            errors.push(path.key("name"), format!("Invalid value: {other}: a string of at most 100 characters"));
            None
        }
    };
    let action = match map.get("action").and_then(Value::as_str) {
        Some("Accept") => Action::Accept,
        Some("Deny") => Action::Deny,
        Some("Pass") => Action::Pass,
        Some(other) => {
            errors.push(path.key("action"), format!("Unsupported value: {other:?}: supported values: \"Accept\", \"Deny\", \"Pass\""));
            Action::Deny
        }
        None => {
            errors.push(path.key("action"), "Required value: Accept, Deny or Pass");
            Action::Deny
        }
    };
    let peers_at = path.key(peers_key);
    let peers: Vec<ClusterPeer> = match map.get(peers_key).and_then(Value::as_array) {
        Some(items) if !items.is_empty() && items.len() <= MAX_ITEMS => items.iter().enumerate().map(|(i, p)| peer(p, egress, &peers_at.index(i), errors)).collect(),
        Some(items) => {
            errors.push(peers_at, format!("must have 1 to {MAX_ITEMS} items, has {}", items.len()));
            Vec::new()
        }
        None => {
            errors.push(peers_at, format!("Required value: {peers_key} lists 1 to {MAX_ITEMS} peers"));
            Vec::new()
        }
    };
    let protocols_at = path.key("protocols");
    let protocols = match map.get("protocols") {
        None | Some(Value::Null) => None,
        Some(Value::Array(items)) if !items.is_empty() && items.len() <= MAX_ITEMS => Some(items.iter().enumerate().map(|(i, p)| protocol(p, &protocols_at.index(i), errors)).collect::<Vec<_>>()),
        Some(other) => {
            errors.push(protocols_at, format!("must be a list of 1 to {MAX_ITEMS} protocols, got {other}"));
            None
        }
    };
    let named = protocols.iter().flatten().any(|p| matches!(p, ClusterProtocol::NamedPort(_)));
    if egress && named && peers.iter().any(|p| matches!(p, ClusterPeer::Networks(_) | ClusterPeer::Nodes(_) | ClusterPeer::DomainNames(_))) {
        errors.push(path, "Invalid value: networks/nodes/domainNames peer cannot be set with namedPorts since there are no namedPorts for networks/nodes/domainNames");
    }
    if action != Action::Accept && peers.iter().any(|p| matches!(p, ClusterPeer::DomainNames(_))) {
        errors.push(peers_at, format!("Invalid value: domainNames peers are only supported in Accept rules, this rule is {}", action.as_str()));
    }
    Some(ClusterRule { name, action, peers, protocols })
}

/// Converts one ClusterNetworkPolicy object.
pub fn cluster_policy(value: &Value, origin: Origin) -> Result<ClusterPolicy, Vec<FieldError>> {
    let mut errors = Errors::default();
    let root = At::ROOT;
    let Some(map) = object(value, &root, &mut errors, true) else { return Err(errors.0) };
    unknown_keys(map, &["apiVersion", "kind", "metadata", "spec", "status"], &root, &mut errors);
    let name = map.get("metadata").and_then(|m| m.get("name")).and_then(Value::as_str).unwrap_or_default().to_string();
    let meta_at = root.key("metadata");
    if name.is_empty() {
        errors.push(meta_at.key("name"), "Required value: name or generateName is required");
    } else {
        errors.check(&meta_at.key("name"), "name", &name, super::names::dns1123_subdomain(&name));
    }
    if map.get("metadata").and_then(|m| m.get("namespace")).and_then(Value::as_str).is_some_and(|n| !n.is_empty()) {
        errors.push(meta_at.key("namespace"), "ClusterNetworkPolicy is cluster-scoped: it has no namespace");
    }
    let spec_at = root.key("spec");
    let empty = Map::new();
    let spec = map.get("spec").map_or(Some(&empty), |s| object(s, &spec_at, &mut errors, true)).unwrap_or(&empty);
    if map.get("spec").is_none() {
        errors.push(spec_at, "Required value");
    }
    unknown_keys(spec, &["tier", "priority", "subject", "ingress", "egress"], &spec_at, &mut errors);
    let tier = match spec.get("tier").and_then(Value::as_str) {
        Some("Admin") => Tier::Admin,
        Some("Baseline") => Tier::Baseline,
        Some(other) => {
            errors.push(spec_at.key("tier"), format!("Unsupported value: {other:?}: supported values: \"Admin\", \"Baseline\""));
            Tier::Admin
        }
        None => {
            errors.push(spec_at.key("tier"), "Required value: Admin or Baseline");
            Tier::Admin
        }
    };
    let priority = match spec.get("priority") {
        Some(v) => match v.as_u64().filter(|p| *p <= 1000) {
            Some(p) => p as u16,
            None => {
                errors.push(spec_at.key("priority"), format!("Invalid value: {v}: must be between 0 and 1000, inclusive"));
                0
            }
        },
        None => {
            errors.push(spec_at.key("priority"), "Required value: 0 to 1000, lower first");
            0
        }
    };
    let subject_at = spec_at.key("subject");
    let subject = match spec.get("subject").and_then(|s| object(s, &subject_at, &mut errors, true)) {
        None => {
            if spec.get("subject").is_none() {
                errors.push(subject_at, "Required value: exactly one of namespaces, pods");
            }
            Subject::Namespaces(Selector::default())
        }
        Some(subject) => {
            unknown_keys(subject, &["namespaces", "pods"], &subject_at, &mut errors);
            match (subject.get("namespaces"), subject.get("pods")) {
                (Some(ns), None) => Subject::Namespaces(label_selector(ns, &subject_at.key("namespaces"), &mut errors)),
                (None, Some(pods)) => Subject::Pods(namespaced_pods(pods, &subject_at.key("pods"), &mut errors)),
                _ => {
                    errors.push(subject_at, "exactly one of namespaces, pods must be set");
                    Subject::Namespaces(Selector::default())
                }
            }
        }
    };
    let mut rules = BTreeMap::new();
    for (key, egress) in [("ingress", false), ("egress", true)] {
        let at = spec_at.key(key);
        let list = match spec.get(key) {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => {
                if items.len() > MAX_RULES {
                    errors.push(at, format!("Too many: {}: must have at most {MAX_RULES} items", items.len()));
                }
                items.iter().enumerate().filter_map(|(i, r)| rule(r, egress, &at.index(i), &mut errors)).collect()
            }
            Some(other) => {
                errors.push(at, format!("expected a list of rules, got {other}"));
                Vec::new()
            }
        };
        rules.insert(key, list);
    }
    let policy = ClusterPolicy { name, tier, priority, subject, ingress: rules.remove("ingress").unwrap_or_default(), egress: rules.remove("egress").unwrap_or_default(), origin };
    errors.into_result(policy)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "
apiVersion: policy.networking.k8s.io/v1beta1
kind: ClusterNetworkPolicy
metadata: {name: admin}
spec:
  tier: Admin
  priority: 10
  subject: {pods: {namespaceSelector: {}, podSelector: {matchLabels: {app: web}}}}
  ingress:
  - {name: from-monitoring, action: Accept, from: [{namespaces: {matchLabels: {team: monitoring}}}], protocols: [{tcp: {destinationPort: {number: 9090}}}]}
  egress:
  - {action: Pass, to: [{pods: {namespaceSelector: {}, podSelector: {}}}]}
  - {action: Deny, to: [{networks: [10.1.2.3/8, '::/0']}, {nodes: {}}], protocols: [{udp: {destinationPort: {range: {start: 53, end: 54}}}}, {sctp: {destinationPort: {number: 9}}}]}
  - {action: Accept, to: [{domainNames: ['*.example.com', kubernetes.io]}]}
";

    fn convert(text: &str) -> Result<ClusterPolicy, Vec<FieldError>> {
        cluster_policy(&crate::parse_yaml(text).unwrap().remove(0), Origin::default())
    }

    /// The one error of `GOOD` with `from` replaced by `to`: (field path, message).
    fn error(from: &str, to: &str) -> (String, String) {
        assert!(GOOD.contains(from), "{from}");
        let errors = convert(&GOOD.replace(from, to)).expect_err(to);
        assert_eq!(errors.len(), 1, "{errors:?}");
        (errors[0].path.to_string(), errors[0].message.clone())
    }

    #[test]
    fn a_valid_policy_converts() {
        let policy = convert(GOOD).unwrap();
        assert_eq!((policy.tier, policy.priority, policy.ingress.len(), policy.egress.len()), (Tier::Admin, 10, 1, 3));
        assert_eq!(policy.ingress[0].protocols, Some(vec![ClusterProtocol::Ports { protocol: Protocol::Tcp, first: 9090, last: 9090 }]));
        assert_eq!(policy.egress[1].peers[0], ClusterPeer::Networks(vec!["10.0.0.0/8".parse().unwrap(), "::/0".parse().unwrap()]), "masked");
        assert_eq!(policy.egress[1].protocols.as_ref().unwrap()[0], ClusterProtocol::Ports { protocol: Protocol::Udp, first: 53, last: 54 });
        assert!(convert(&GOOD.replace("v1beta1", "v1alpha2")).is_ok(), "same shape");
    }

    #[test]
    fn every_rule_of_the_crd_is_checked() {
        let cases: &[(&str, &str, &str, &str)] = &[
            ("tier: Admin", "tier: Root", "spec.tier", "Unsupported value: \"Root\""),
            ("  tier: Admin\n", "", "spec.tier", "Required value"),
            ("priority: 10", "priority: 1001", "spec.priority", "between 0 and 1000"),
            ("priority: 10", "priority: -1", "spec.priority", "between 0 and 1000"),
            ("subject: {pods:", "subject: {namespaces: {}, pods:", "spec.subject", "exactly one of namespaces, pods"),
            ("podSelector: {matchLabels: {app: web}}}}", "podSelector: {matchLabels: {app: web}}, extra: 1}}", "spec.subject.pods.extra", "unknown field"),
            ("{name: from-monitoring, action: Accept,", "{name: from-monitoring, action: Allow,", "spec.ingress[0].action", "Unsupported value: \"Allow\""),
            ("from: [{namespaces: {matchLabels: {team: monitoring}}}]", "from: []", "spec.ingress[0].from", "must have 1 to 25 items"),
            ("from: [{namespaces: {matchLabels: {team: monitoring}}}]", "from: [{}]", "spec.ingress[0].from[0]", "Required value: exactly one of namespaces, pods"),
            ("from: [{namespaces: {matchLabels: {team: monitoring}}}]", "from: [{namespaces: {}, pods: {namespaceSelector: {}, podSelector: {}}}]", "spec.ingress[0].from[0]", "Too many"),
            ("{tcp: {destinationPort: {number: 9090}}}", "{tcp: {destinationPort: {number: 0}}}", "spec.ingress[0].protocols[0].tcp.destinationPort.number", "between 1 and 65535"),
            ("{tcp: {destinationPort: {number: 9090}}}", "{tcp: {}}", "spec.ingress[0].protocols[0].tcp", "destinationPort"),
            ("{tcp: {destinationPort: {number: 9090}}}", "{tcp: {destinationPort: {number: 1}}, udp: {destinationPort: {number: 1}}}", "spec.ingress[0].protocols[0]", "Too many"),
            (
                "{tcp: {destinationPort: {number: 9090}}}",
                "{tcp: {destinationPort: {number: 1, range: {start: 1, end: 2}}}}",
                "spec.ingress[0].protocols[0].tcp.destinationPort",
                "exactly one of number and range",
            ),
            ("{start: 53, end: 54}", "{start: 54, end: 54}", "spec.egress[1].protocols[0].udp.destinationPort.range", "Start port must be less than End port"),
            ("protocols: [{tcp: {destinationPort: {number: 9090}}}]", "protocols: []", "spec.ingress[0].protocols", "1 to 25"),
            ("[10.1.2.3/8, '::/0']", "[10.1.2.3/33]", "spec.egress[1].to[0].networks[0]", "Invalid CIDR format"),
            ("[10.1.2.3/8, '::/0']", "[10.0.0.0/8, 10.0.0.0/8]", "spec.egress[1].to[0].networks[1]", "Duplicate value"),
            ("['*.example.com', kubernetes.io]", "['example']", "spec.egress[2].to[0].domainNames[0]", "a domain name"),
            ("{action: Accept, to: [{domainNames:", "{action: Deny, to: [{domainNames:", "spec.egress[2].to", "only supported in Accept rules"),
            ("{name: from-monitoring,", &format!("{{name: {},", "x".repeat(101)), "spec.ingress[0].name", "at most 100 characters"),
            ("metadata: {name: admin}", "metadata: {name: Admin_1}", "metadata.name", "invalid name"),
            ("metadata: {name: admin}", "metadata: {name: admin, namespace: default}", "metadata.namespace", "cluster-scoped"),
        ];
        for (from, to, path, message) in cases {
            let (got_path, got_message) = error(from, to);
            assert_eq!(&got_path, path, "{to}: {got_message}");
            assert!(got_message.contains(message), "{to}: {got_message}");
        }
        // Egress-only peers in an ingress rule.
        let errors = convert(&GOOD.replace("from: [{namespaces: {matchLabels: {team: monitoring}}}]", "from: [{networks: [10.0.0.0/8]}]")).unwrap_err();
        assert!(errors.iter().any(|e| e.path.to_string() == "spec.ingress[0].from[0].networks" && e.message.contains("peers are for egress rules")), "{errors:?}");
        // Named ports have no meaning for networks, nodes and domainNames peers.
        let (path, message) = error("protocols: [{udp: {destinationPort: {range: {start: 53, end: 54}}}}, {sctp: {destinationPort: {number: 9}}}]", "protocols: [{destinationNamedPort: dns}]");
        assert_eq!(path, "spec.egress[1]");
        assert!(message.contains("cannot be set with namedPorts"), "{message}");
        // At most 25 rules per direction.
        let many: String = (0..26).map(|_| "  - {action: Pass, to: [{pods: {namespaceSelector: {}, podSelector: {}}}]}\n").collect();
        let text = GOOD.replace("  egress:\n", &format!("  egress:\n{many}"));
        let errors = convert(&text).unwrap_err();
        assert!(errors.iter().any(|e| e.path.to_string() == "spec.egress" && e.message.contains("at most 25")), "{errors:?}");
    }

    #[test]
    fn a_peer_or_protocol_of_a_newer_crd_is_kept_as_unknown() {
        let policy = convert(&GOOD.replace("{nodes: {}}", "{services: {name: x}}").replace("{sctp: {destinationPort: {number: 9}}}", "{icmp: {type: 8}}")).unwrap();
        assert_eq!(policy.egress[1].peers[1], ClusterPeer::Unknown);
        assert_eq!(policy.egress[1].protocols.as_ref().unwrap()[1], ClusterProtocol::Unknown);
        assert!(policy.egress[1].fails_closed());
    }
}

#[cfg(test)]
mod loading {
    use crate::{LoadOptions, load_text};

    fn cnp(name: &str, tier: &str, priority: u32) -> String {
        format!(
            "apiVersion: policy.networking.k8s.io/v1alpha2\nkind: ClusterNetworkPolicy\nmetadata: {{name: {name}}}\nspec: {{tier: {tier}, priority: {priority}, subject: {{namespaces: {{}}}}, ingress: [{{action: Deny, from: [{{namespaces: {{}}}}]}}]}}\n---\n"
        )
    }

    #[test]
    fn policies_are_kept_in_evaluation_order_and_same_priority_ties_are_warned_about() {
        let text = cnp("b-admin", "Admin", 5) + &cnp("a-admin", "Admin", 5) + &cnp("baseline", "Baseline", 0) + &cnp("first", "Admin", 1);
        let loaded = load_text(&text, &LoadOptions::default()).unwrap();
        let order: Vec<&str> = loaded.cluster.cluster_policies.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(order, ["first", "a-admin", "b-admin", "baseline"]);
        let warnings: Vec<String> = loaded.warnings.iter().map(|w| w.message.clone()).collect();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("a-admin and b-admin are both in the Admin tier at priority 5: where several match, the first by name decides (a-admin)"), "{warnings:?}");
        let error = load_text(&cnp("x", "Admin", 1).replace("v1alpha2", "v1"), &LoadOptions::default()).unwrap_err().to_string();
        assert!(
            error.contains("unsupported apiVersion \"policy.networking.k8s.io/v1\" for ClusterNetworkPolicy: supported: \"policy.networking.k8s.io/v1beta1\" or \"policy.networking.k8s.io/v1alpha2\""),
            "{error}"
        );
    }
}
