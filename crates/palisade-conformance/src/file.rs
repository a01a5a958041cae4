//! Case files anyone can write (`palisade conformance --cases FILE`), in the format of the
//! upstream transcription (`k8s-e2e-cases.yaml`): a list under `cases:` or `legacy_cases:`;
//! each case has an `id`, `servers: {ports, protocols}` and `topology: [ns/pod, ...]` in
//! upstream's model, or spells its topology out (`namespaces: {NAME: {labels}}`,
//! `topology: [{pod: ns/name, labels, containerPorts: ["[name/]PROTO:port"], ip}]`), and
//! `steps` with an `action` each. docs/conformance.md documents it. Errors name the file,
//! line, field and what is allowed; a file with any error gives no cases.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;

use palisade_model::field_path::FieldPath;
use palisade_model::{Positions, Protocol};
use serde_json::Value;

use crate::case::{Expectation, Step};
use crate::topology::{LabelMap, PodDef, PortDef, Topology};

/// One case of a case file, in general form.
#[derive(Clone, Debug)]
pub struct FileCase {
    pub id: String,
    pub title: String,
    pub topology: Topology,
    pub steps: Vec<Step>,
    /// `file:line` of the case, for reports.
    pub origin: String,
}

/// What is wrong with a case file, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}:{column}: {field}: {message}")]
pub struct CaseFileError {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub field: String,
    pub message: String,
}

const ACTIONS: &str = "create_policy, update_policy, delete_policy, delete_all_policies, create_cluster_policy, update_cluster_policy, delete_cluster_policy, add_pod_labels, replace_pod_labels, add_namespace_labels, set_namespace_labels, create_pod, probe";

/// A problem at a field path, before it is located in the text.
struct Problem {
    path: FieldPath,
    message: String,
}

type Checked<T> = Result<T, Problem>;

fn problem(path: &FieldPath, message: impl Into<String>) -> Problem {
    Problem { path: path.clone(), message: message.into() }
}

fn string(value: &Value, path: &FieldPath) -> Checked<String> {
    match value {
        Value::String(s) if !s.is_empty() => Ok(s.clone()),
        Value::Null => Err(problem(path, "required: a string")),
        other => Err(problem(path, format!("expected a non-empty string, got {other}"))),
    }
}

fn array<'v>(value: &'v Value, path: &FieldPath) -> Checked<&'v Vec<Value>> {
    match value {
        Value::Array(items) => Ok(items),
        Value::Null => Err(problem(path, "required: a list")),
        other => Err(problem(path, format!("expected a list, got {other}"))),
    }
}

fn labels(value: &Value, path: &FieldPath) -> Checked<LabelMap> {
    match value {
        Value::Null => Ok(LabelMap::new()),
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok((k.clone(), s.clone())),
                Value::Number(n) => Ok((k.clone(), n.to_string())),
                Value::Bool(b) => Ok((k.clone(), b.to_string())),
                other => Err(problem(&path.key(k), format!("a label value is a string, got {other}"))),
            })
            .collect(),
        other => Err(problem(path, format!("expected a map of labels, got {other}"))),
    }
}

fn pod_key(value: &Value, path: &FieldPath) -> Checked<(String, String)> {
    let text = string(value, path)?;
    match text.split_once('/') {
        Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => Ok((ns.to_string(), name.to_string())),
        _ => Err(problem(path, format!("{text:?}: a pod is named NAMESPACE/NAME"))),
    }
}

fn protocol(value: &Value, path: &FieldPath) -> Checked<Protocol> {
    let text = string(value, path)?;
    text.to_ascii_uppercase().parse().map_err(|_| problem(path, format!("{text:?}: TCP, UDP or SCTP")))
}

fn port(value: &Value, path: &FieldPath) -> Checked<u16> {
    let number = match value {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    };
    number.and_then(|n| u16::try_from(n).ok()).filter(|n| *n > 0).ok_or_else(|| problem(path, format!("{value}: a port number 1-65535")))
}

/// `[name/]PROTO:port`, e.g. `serve-80-tcp/TCP:80` or `UDP:53`.
fn container_port(value: &Value, path: &FieldPath) -> Checked<PortDef> {
    let text = string(value, path)?;
    let (name, rest) = match text.split_once('/') {
        Some((name, rest)) => (Some(name.to_string()), rest),
        None => (None, text.as_str()),
    };
    let (proto, number) = rest.split_once(':').ok_or_else(|| problem(path, format!("{text:?}: expected [name/]PROTO:port, e.g. http/TCP:80")))?;
    Ok(PortDef { name, protocol: protocol(&Value::String(proto.to_string()), path)?, port: port(&Value::String(number.to_string()), path)? })
}

/// A pod spelled out: `{pod: ns/name, labels, containerPorts, ip}` (`default_ports` when it
/// declares none).
fn pod_def(item: &Value, at: &FieldPath, default_ports: &[PortDef]) -> Checked<PodDef> {
    let Some(map) = item.as_object() else { return Err(problem(at, format!("expected {{pod: ns/name, labels, containerPorts, ip}}, got {item}"))) };
    if let Some(unknown) = map.keys().find(|k| !["pod", "labels", "containerPorts", "ip"].contains(&k.as_str())) {
        return Err(problem(&at.key(unknown), "unknown field: a pod has pod, labels, containerPorts and ip"));
    }
    let (namespace, name) = pod_key(&item["pod"], &at.key("pod"))?;
    let mut ports = default_ports.to_vec();
    if !item["containerPorts"].is_null() {
        ports = array(&item["containerPorts"], &at.key("containerPorts"))?.iter().enumerate().map(|(j, p)| container_port(p, &at.key("containerPorts").index(j))).collect::<Checked<_>>()?;
    }
    if ports.is_empty() {
        return Err(problem(at, "the pod serves no port: give containerPorts or the case's servers"));
    }
    let ip = match &item["ip"] {
        Value::Null => None,
        value => Some(string(value, &at.key("ip"))?.parse::<IpAddr>().map_err(|_| problem(&at.key("ip"), format!("{value}: an IPv4 or IPv6 address")))?),
    };
    let labels = if item["labels"].is_null() { LabelMap::from([("pod".to_string(), name.clone())]) } else { labels(&item["labels"], &at.key("labels"))? };
    Ok(PodDef { namespace, name, labels, ports, ip })
}

fn topology(case: &Value, path: &FieldPath) -> Checked<Topology> {
    let mut topology = Topology::default();
    if !case["namespaces"].is_null() {
        let map = case["namespaces"].as_object().ok_or_else(|| problem(&path.key("namespaces"), "expected a map NAME: {labels: {...}}"))?;
        for (name, ns) in map {
            topology.namespaces.insert(name.clone(), labels(&ns["labels"], &path.key("namespaces").key(name).key("labels"))?);
        }
    }
    // Upstream's model: every pod serves every port of `servers` on every protocol.
    let servers = &case["servers"];
    let mut upstream_ports = Vec::new();
    if !servers.is_null() {
        // Upstream's model always has namespaces x, y and z, whichever pods a case uses.
        for ns in ["x", "y", "z"] {
            topology.namespaces.entry(ns.to_string()).or_default();
        }
        let ports = array(&servers["ports"], &path.key("servers").key("ports"))?;
        let protocols = array(&servers["protocols"], &path.key("servers").key("protocols"))?;
        for (i, p) in ports.iter().enumerate() {
            let number = port(p, &path.key("servers").key("ports").index(i))?;
            for (j, proto) in protocols.iter().enumerate() {
                upstream_ports.push(PortDef::upstream(number, protocol(proto, &path.key("servers").key("protocols").index(j))?));
            }
        }
    }
    let at = path.key("topology");
    for (i, item) in array(&case["topology"], &at)?.iter().enumerate() {
        let at = at.index(i);
        let pod = match item {
            Value::String(_) => {
                let (namespace, name) = pod_key(item, &at)?;
                if upstream_ports.is_empty() {
                    return Err(problem(
                        &at,
                        "a pod given as ns/name serves the case's `servers`, which this case lacks: add servers: {ports: [...], protocols: [...]} or spell the pod out with containerPorts",
                    ));
                }
                PodDef { labels: LabelMap::from([("pod".to_string(), name.clone())]), namespace, name, ports: upstream_ports.clone(), ip: None }
            }
            Value::Object(_) => pod_def(item, &at, &upstream_ports)?,
            other => return Err(problem(&at, format!("expected ns/name or {{pod: ns/name, labels, containerPorts, ip}}, got {other}"))),
        };
        if topology.pod(&pod.key()).is_some() {
            return Err(problem(&at, format!("pod {} is listed twice", pod.key())));
        }
        topology.namespaces.entry(pod.namespace.clone()).or_default();
        topology.pods.push(pod);
    }
    if topology.pods.is_empty() {
        return Err(problem(&at, "a case needs at least one pod"));
    }
    Ok(topology)
}

fn known_pod(topology: &Topology, value: &Value, path: &FieldPath) -> Checked<String> {
    let (ns, name) = pod_key(value, path)?;
    let key = format!("{ns}/{name}");
    topology.pod(&key).map(|_| key.clone()).ok_or_else(|| problem(path, format!("{key} is not in the case's topology")))
}

fn known_namespace(topology: &Topology, value: &Value, path: &FieldPath) -> Checked<String> {
    let name = string(value, path)?;
    topology.namespaces.contains_key(&name).then_some(name.clone()).ok_or_else(|| problem(path, format!("{name} is not a namespace of the case")))
}

fn step(topology: &mut Topology, value: &Value, path: &FieldPath) -> Checked<Step> {
    let action = string(&value["action"], &path.key("action"))?;
    if action == "create_pod" {
        let pod = pod_def(&value["pod"], &path.key("pod"), &[])?;
        if !topology.namespaces.contains_key(&pod.namespace) {
            return Err(problem(&path.key("pod").key("pod"), format!("{} is not a namespace of the case", pod.namespace)));
        }
        if topology.pod(&pod.key()).is_some() {
            return Err(problem(&path.key("pod").key("pod"), format!("pod {} already exists", pod.key())));
        }
        topology.pods.push(pod.clone());
        return Ok(Step::CreatePod { pod });
    }
    let topology = &*topology;
    let namespace = |field: &str| known_namespace(topology, &value[field], &path.key(field));
    Ok(match action.as_str() {
        "create_policy" | "update_policy" => {
            let policy = value["policy"].clone();
            if !policy.is_object() {
                return Err(problem(&path.key("policy"), "required: a NetworkPolicy object"));
            }
            string(&policy["metadata"]["name"], &path.key("policy").key("metadata").key("name"))?;
            templates(topology, &policy, &path.key("policy"))?;
            Step::ApplyPolicy { namespace: namespace("namespace")?, policy }
        }
        "create_cluster_policy" | "update_cluster_policy" => {
            let mut policy = value["policy"].clone();
            if !policy.is_object() {
                return Err(problem(&path.key("policy"), "required: a ClusterNetworkPolicy object"));
            }
            string(&policy["metadata"]["name"], &path.key("policy").key("metadata").key("name"))?;
            templates(topology, &policy, &path.key("policy"))?;
            crate::scenario::complete_cluster_policy(&mut policy);
            // Checked now with the CRD's rules, unless addresses are still to be filled in.
            if !policy.to_string().contains("{{")
                && let Err(errors) = palisade_model::convert::cluster_policy(&policy, Default::default())
            {
                let first = &errors[0];
                return Err(problem(&path.key("policy"), format!("{}: {}", first.path, first.message)));
            }
            Step::ApplyClusterPolicy { policy }
        }
        "delete_cluster_policy" => Step::DeleteClusterPolicy { name: string(&value["name"], &path.key("name"))? },
        "delete_policy" => Step::DeletePolicy { namespace: namespace("namespace")?, name: string(&value["name"], &path.key("name"))? },
        "delete_all_policies" => Step::DeleteAllPolicies {
            namespaces: array(&value["namespaces"], &path.key("namespaces"))?
                .iter()
                .enumerate()
                .map(|(i, n)| known_namespace(topology, n, &path.key("namespaces").index(i)))
                .collect::<Checked<_>>()?,
        },
        "add_pod_labels" => Step::AddPodLabels { pod: known_pod(topology, &value["pod"], &path.key("pod"))?, labels: labels(&value["labels"], &path.key("labels"))? },
        "replace_pod_labels" => Step::ReplacePodLabels { pod: known_pod(topology, &value["pod"], &path.key("pod"))?, labels: labels(&value["labels"], &path.key("labels"))? },
        "add_namespace_labels" => Step::AddNamespaceLabels { namespace: namespace("namespace")?, labels: labels(&value["labels"], &path.key("labels"))? },
        "set_namespace_labels" => Step::SetNamespaceLabels { namespace: namespace("namespace")?, labels: labels(&value["labels"], &path.key("labels"))? },
        "probe" => {
            let number = port(&value["port"], &path.key("port"))?;
            let proto = protocol(&value["protocol"], &path.key("protocol"))?;
            let mut expect = Vec::new();
            for (i, probe) in array(&value["probes"], &path.key("probes"))?.iter().enumerate() {
                let at = path.key("probes").index(i);
                let from = known_pod(topology, &probe["from"], &at.key("from"))?;
                let to = known_pod(topology, &probe["to"], &at.key("to"))?;
                if !probe["port"].is_null() && port(&probe["port"], &at.key("port"))? != number {
                    return Err(problem(&at.key("port"), "differs from the step's port: one port and protocol per probe step"));
                }
                if !probe["protocol"].is_null() && protocol(&probe["protocol"], &at.key("protocol"))? != proto {
                    return Err(problem(&at.key("protocol"), "differs from the step's protocol: one port and protocol per probe step"));
                }
                let allowed = match string(&probe["expect"], &at.key("expect"))?.as_str() {
                    "allow" => true,
                    "deny" => false,
                    other => return Err(problem(&at.key("expect"), format!("{other:?}: allow or deny"))),
                };
                expect.push(Expectation { from, to, allowed });
            }
            let ipv6 = match value["family"].as_str() {
                None if value["family"].is_null() => false,
                Some("IPv4") => false,
                Some("IPv6") => true,
                _ => return Err(problem(&path.key("family"), format!("{}: IPv4 or IPv6", value["family"]))),
            };
            Step::Probe { port: number, protocol: proto, ipv6, expect }
        }
        other => return Err(problem(&path.key("action"), format!("unknown action {other:?}: one of {ACTIONS}"))),
    })
}

/// Checks the address templates in a policy's strings: known name, known pod, prefixes.
fn templates(topology: &Topology, value: &Value, path: &FieldPath) -> Checked<()> {
    match value {
        Value::Array(items) => items.iter().enumerate().try_for_each(|(i, v)| templates(topology, v, &path.index(i))),
        Value::Object(map) => map.iter().try_for_each(|(k, v)| templates(topology, v, &path.key(k))),
        Value::String(text) => {
            let mut rest = text.as_str();
            while let Some(start) = rest.find("{{") {
                let end = rest[start..].find("}}").map(|e| start + e).ok_or_else(|| problem(path, format!("{text:?}: a template opened with {{{{ is not closed")))?;
                let words: Vec<&str> = rest[start + 2..end].split_whitespace().collect();
                let name = words.first().map(|w| w.trim_end_matches("v6")).unwrap_or_default();
                let arity = match name {
                    "hostCIDR" | "largeCIDR" | "podIP" => 2,
                    "subnetCIDR" => 4,
                    _ => return Err(problem(path, format!("{text:?}: unknown template {:?}: podIP, hostCIDR, largeCIDR or subnetCIDR (or their ...v6 forms)", words.first().unwrap_or(&"")))),
                };
                if words.len() != arity || (arity == 4 && (words[2].parse::<u8>().is_err() || words[3].parse::<u8>().is_err())) {
                    return Err(problem(path, format!("{text:?}: expected {{{{{name} ns/pod{}}}}}", if arity == 4 { " V4PREFIX V6PREFIX" } else { "" })));
                }
                known_pod(topology, &Value::String(words[1].to_string()), path)?;
                rest = &rest[end + 2..];
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

fn case(value: &Value, path: &FieldPath) -> Checked<FileCase> {
    let id = string(&value["id"], &path.key("id"))?;
    let title = value["title"].as_str().or_else(|| value["name"].as_str()).unwrap_or(&id).to_string();
    let topology = topology(value, path)?;
    // Steps see the pods created by earlier steps.
    let mut known = topology.clone();
    let steps = array(&value["steps"], &path.key("steps"))?.iter().enumerate().map(|(i, s)| step(&mut known, s, &path.key("steps").index(i))).collect::<Checked<Vec<_>>>()?;
    if !steps.iter().any(|s| matches!(s, Step::Probe { .. })) {
        return Err(problem(&path.key("steps"), "a case needs at least one probe step"));
    }
    Ok(FileCase { id, title, topology, steps, origin: String::new() })
}

/// Reads a case file's text; `file` names it in errors and origins.
pub fn parse(text: &str, file: &Path) -> Result<Vec<FileCase>, CaseFileError> {
    let located = |problem: Problem| {
        let (line, column) = Positions::parse(text).and_then(|p| p.locate(0, &problem.path, false)).unwrap_or((1, 1));
        CaseFileError { file: file.display().to_string(), line, column, field: if problem.path.is_root() { "(file)".into() } else { problem.path.to_string() }, message: problem.message }
    };
    let documents = palisade_model::parse_yaml(text).map_err(|e| CaseFileError { file: file.display().to_string(), line: 1, column: 1, field: "(file)".into(), message: format!("not YAML: {e}") })?;
    let root = documents.into_iter().next().unwrap_or(Value::Null);
    let mut cases = Vec::new();
    let mut ids = BTreeMap::new();
    let mut found = false;
    for key in ["cases", "legacy_cases"] {
        if root[key].is_null() {
            continue;
        }
        found = true;
        let at = FieldPath::root().key(key);
        for (i, item) in array(&root[key], &at).map_err(located)?.iter().enumerate() {
            let path = at.index(i);
            let mut parsed = case(item, &path).map_err(located)?;
            if let Some(first) = ids.insert(parsed.id.clone(), path.to_string()) {
                return Err(located(problem(&path.key("id"), format!("id {:?} is also the id of {first}", parsed.id))));
            }
            let line = Positions::parse(text).and_then(|p| p.locate(0, &path, false)).map_or(1, |(line, _)| line);
            parsed.origin = format!("{}:{line}", file.display());
            cases.push(parsed);
        }
    }
    if !found {
        return Err(located(problem(&FieldPath::root(), "no cases: the file lists them under `cases:` (or `legacy_cases:`)")));
    }
    Ok(cases)
}

/// The built-in cases: the upstream suite (each case's newest topology), Palisade's own
/// edge cases, then upstream's ClusterNetworkPolicy tests.
pub fn builtin() -> Vec<FileCase> {
    let load = |(name, text): (&str, &str)| parse(text, Path::new(name)).unwrap_or_else(|e| panic!("the built-in cases do not load: {e}"));
    let own = load(crate::builtin::OWN).into_iter().chain(load(crate::builtin::CLUSTER_POLICIES));
    crate::case::load_cases()
        .into_iter()
        .map(|case| {
            let variant = case.variants.iter().find(|v| v.name == "newest").unwrap_or(&case.variants[0]);
            FileCase { id: case.id.clone(), title: case.title.clone(), topology: Topology::upstream(&case, variant), steps: variant.steps.clone(), origin: format!("built-in {}", case.id) }
        })
        .chain(own)
        .collect()
}

/// Reads a case file.
pub fn load(file: &Path) -> Result<Vec<FileCase>, CaseFileError> {
    let text = std::fs::read_to_string(file).map_err(|e| CaseFileError { file: file.display().to_string(), line: 0, column: 0, field: "(file)".into(), message: format!("cannot read: {e}") })?;
    parse(&text, file)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(text: &str) -> Result<Vec<FileCase>, CaseFileError> {
        parse(text, Path::new("cases.yaml"))
    }

    const UPSTREAM: &str = "
cases:
- id: k8s-e2e-01
  title: deny ingress
  servers: {ports: [80, 81], protocols: [TCP, UDP]}
  topology: [x/a, x/b]
  steps:
  - action: create_policy
    namespace: x
    policy: {metadata: {name: deny}, spec: {podSelector: {}}}
  - action: probe
    port: 80
    protocol: TCP
    probes:
    - {from: x/a, to: x/b, port: 80, protocol: TCP, expect: deny}
";

    #[test]
    fn the_upstream_shape_loads() {
        let cases = parse_str(UPSTREAM).unwrap();
        assert_eq!(cases.len(), 1);
        let case = &cases[0];
        assert_eq!(case.origin, "cases.yaml:3");
        assert_eq!(case.topology.pods.len(), 2);
        assert_eq!(case.topology.pods[0].ports.len(), 4, "every port on every protocol");
        assert_eq!(case.topology.pods[0].ports[0], PortDef::upstream(80, Protocol::Tcp));
        assert_eq!(case.topology.pods[0].labels, LabelMap::from([("pod".into(), "a".into())]));
        assert!(matches!(&case.steps[1], Step::Probe { port: 80, protocol: Protocol::Tcp, ipv6: false, expect } if expect.len() == 1 && !expect[0].allowed));
    }

    #[test]
    fn the_spelled_out_shape_loads_under_legacy_cases() {
        let text = "
legacy_cases:
- id: own-1
  namespaces: {prod: {labels: {env: prod}}, dev: {}}
  topology:
  - {pod: prod/web, labels: {app: web}, containerPorts: [http/TCP:8080, UDP:53], ip: 10.244.9.9}
  - {pod: dev/client, containerPorts: [TCP:1]}
  steps:
  - {action: set_namespace_labels, namespace: dev, labels: {env: prod}}
  - {action: replace_pod_labels, pod: dev/client, labels: {app: client}}
  - {action: delete_policy, namespace: prod, name: gone}
  - action: probe
    port: 8080
    protocol: TCP
    probes: [{from: dev/client, to: prod/web, expect: allow}]
";
        let case = parse_str(text).unwrap().remove(0);
        assert_eq!(case.topology.namespaces["prod"], LabelMap::from([("env".into(), "prod".into())]));
        let web = case.topology.pod("prod/web").unwrap();
        assert_eq!(web.ports[0], PortDef { name: Some("http".into()), protocol: Protocol::Tcp, port: 8080 });
        assert_eq!(web.ports[1], PortDef { name: None, protocol: Protocol::Udp, port: 53 });
        assert_eq!(web.ip, Some("10.244.9.9".parse().unwrap()));
        assert_eq!(case.topology.pod("dev/client").unwrap().labels, LabelMap::from([("pod".into(), "client".into())]));
        assert_eq!(case.steps.len(), 4);
    }

    #[test]
    fn the_built_in_cases_load() {
        let cases = builtin();
        assert_eq!(cases.iter().filter(|c| c.id.starts_with("e2e-")).count(), 48);
        assert!(cases.iter().filter(|c| c.id.starts_with("own-")).count() >= 9);
        assert_eq!(cases.iter().filter(|c| c.id.starts_with("cnp-")).count(), 8);
    }

    #[test]
    fn errors_name_the_line_and_field() {
        let bad = |from: &str, to: &str| parse_str(&UPSTREAM.replace(from, to)).unwrap_err();
        let e = bad("action: create_policy", "action: create_polcy");
        assert_eq!((e.line, e.field.as_str()), (8, "cases[0].steps[0].action"), "{e}");
        assert!(e.message.starts_with("unknown action \"create_polcy\": one of create_policy,"), "{e}");
        assert_eq!(e.to_string().split(": ").next(), Some("cases.yaml:8:13"));
        let e = bad("to: x/b, port", "to: y/b, port");
        assert_eq!((e.line, e.field.as_str(), e.message.as_str()), (15, "cases[0].steps[1].probes[0].to", "y/b is not in the case's topology"), "{e}");
        let e = bad("expect: deny", "expect: blocked");
        assert!(e.message.contains("allow or deny"), "{e}");
        let e = bad("ports: [80, 81]", "ports: [80, 70000]");
        assert_eq!(e.field, "cases[0].servers.ports[1]", "{e}");
        let e = bad("protocols: [TCP, UDP]", "protocols: [TCP, ICMP]");
        assert!(e.message.contains("TCP, UDP or SCTP"), "{e}");
        let e = bad("namespace: x\n", "namespace: q\n");
        assert_eq!(e.message, "q is not a namespace of the case", "{e}");
        let e = parse_str("items: []\n").unwrap_err();
        assert!(e.message.contains("under `cases:`"), "{e}");
        let e = parse_str(&format!("{UPSTREAM}{}", UPSTREAM.replace("cases:\n", ""))).unwrap_err();
        assert!(e.message.contains("is also the id of cases[0]"), "{e}");
        let e = parse_str("cases:\n- id: a\n  topology: [{pod: x/a, containerPorts: [TCP-80]}]\n  steps: []\n").unwrap_err();
        assert_eq!((e.line, e.field.as_str()), (3, "cases[0].topology[0].containerPorts[0]"), "{e}");
        let e = bad("podSelector: {}}", "podSelector: {}, egress: [{to: [{ipBlock: {cidr: '{{hostCIDR x/q}}'}}]}]}");
        assert_eq!(e.message, "x/q is not in the case's topology", "{e}");
        let e = bad("podSelector: {}}", "podSelector: {}, egress: [{to: [{ipBlock: {cidr: '{{maskCIDR x/a}}'}}]}]}");
        assert!(e.message.contains("unknown template \"maskCIDR\""), "{e}");
        let e = parse_str("cases:\n- id: a\n  topology: [{pod: x/a, port: 80}]\n  steps: []\n").unwrap_err();
        assert!(e.message.starts_with("unknown field"), "{e}");
    }
}
