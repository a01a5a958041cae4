//! The case file format: steps, and truth tables for the probes.

use std::collections::BTreeMap;

use palisade_model::Protocol;
use serde::Deserialize;
use serde_json::Value;

#[derive(Clone, Debug)]
pub struct Case {
    pub id: String,
    pub title: String,
    /// The ports and protocols every pod serves.
    pub servers: Vec<(u16, Protocol)>,
    pub variants: Vec<Variant>,
}

#[derive(Clone, Debug)]
pub struct Variant {
    /// `newest` (each test's own topology) or `full-3x3` (the older 9-pod model).
    pub name: String,
    pub pods: Vec<String>,
    pub steps: Vec<Step>,
}

/// One expected probe result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expectation {
    pub from: String,
    pub to: String,
    pub allowed: bool,
}

#[derive(Clone, Debug)]
pub enum Step {
    /// Create, or replace a policy of the same name (`update_policy`).
    ApplyPolicy {
        namespace: String,
        policy: Value,
    },
    DeletePolicy {
        namespace: String,
        name: String,
    },
    DeleteAllPolicies {
        namespaces: Vec<String>,
    },
    /// Create, or replace one of the same name (`update_cluster_policy`): a
    /// ClusterNetworkPolicy (policy.networking.k8s.io/v1beta1 unless it says otherwise).
    ApplyClusterPolicy {
        policy: Value,
    },
    DeleteClusterPolicy {
        name: String,
    },
    AddPodLabels {
        pod: String,
        labels: BTreeMap<String, String>,
    },
    /// The pod's labels become exactly these.
    ReplacePodLabels {
        pod: String,
        labels: BTreeMap<String, String>,
    },
    AddNamespaceLabels {
        namespace: String,
        labels: BTreeMap<String, String>,
    },
    /// The namespace's labels become exactly these (and its name label).
    SetNamespaceLabels {
        namespace: String,
        labels: BTreeMap<String, String>,
    },
    /// Probes the pairs; `ipv6`: between the pods' IPv6 addresses (else their first).
    Probe {
        port: u16,
        protocol: Protocol,
        ipv6: bool,
        expect: Vec<Expectation>,
    },
    /// A pod created after the case started (new pods under existing policies).
    CreatePod {
        pod: crate::topology::PodDef,
    },
}

#[derive(Deserialize)]
struct RawCase {
    id: String,
    title: String,
    servers: Vec<String>,
    variants: Vec<RawVariant>,
}

#[derive(Deserialize)]
struct RawVariant {
    name: String,
    pods: Vec<String>,
    steps: Vec<RawStep>,
}

#[derive(Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
enum RawStep {
    CreatePolicy { namespace: String, policy: Value },
    UpdatePolicy { namespace: String, policy: Value },
    DeleteAllPolicies { namespaces: Vec<String> },
    AddPodLabels { pod: String, labels: BTreeMap<String, String> },
    AddNamespaceLabels { namespace: String, labels: BTreeMap<String, String> },
    Probe { port: String, expect: String },
}

fn port_protocol(text: &str) -> Result<(u16, Protocol), String> {
    let (port, protocol) = text.split_once('/').ok_or_else(|| format!("expected PORT/PROTOCOL, got {text:?}"))?;
    Ok((port.parse().map_err(|_| format!("bad port in {text:?}"))?, protocol.parse()?))
}

/// Reads a truth table: a header of destinations, then one row per source.
fn truth_table(text: &str) -> Result<Vec<Expectation>, String> {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header: Vec<&str> = lines.next().ok_or("empty truth table")?.split_whitespace().skip(1).collect();
    let mut out = Vec::new();
    for line in lines {
        let mut cells = line.split_whitespace();
        let from = cells.next().ok_or("empty row")?;
        let cells: Vec<&str> = cells.collect();
        if cells.len() != header.len() {
            return Err(format!("row {from}: {} cells for {} columns", cells.len(), header.len()));
        }
        for (to, cell) in header.iter().zip(cells) {
            let allowed = match cell {
                "." => true,
                "X" => false,
                "-" => continue,
                other => return Err(format!("row {from}: unknown cell {other:?}")),
            };
            out.push(Expectation { from: from.to_string(), to: to.to_string(), allowed });
        }
    }
    Ok(out)
}

fn convert(raw: RawCase) -> Result<Case, String> {
    let servers = raw.servers.iter().map(|s| port_protocol(s)).collect::<Result<_, _>>()?;
    let variants = raw
        .variants
        .into_iter()
        .map(|v| {
            let steps = v
                .steps
                .into_iter()
                .map(|step| {
                    Ok(match step {
                        RawStep::CreatePolicy { namespace, policy } | RawStep::UpdatePolicy { namespace, policy } => Step::ApplyPolicy { namespace, policy },
                        RawStep::DeleteAllPolicies { namespaces } => Step::DeleteAllPolicies { namespaces },
                        RawStep::AddPodLabels { pod, labels } => Step::AddPodLabels { pod, labels },
                        RawStep::AddNamespaceLabels { namespace, labels } => Step::AddNamespaceLabels { namespace, labels },
                        RawStep::Probe { port, expect } => {
                            let (port, protocol) = port_protocol(&port)?;
                            Step::Probe { port, protocol, ipv6: false, expect: truth_table(&expect)? }
                        }
                    })
                })
                .collect::<Result<Vec<_>, String>>()?;
            Ok(Variant { name: v.name, pods: v.pods, steps })
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(Case { id: raw.id, title: raw.title, servers, variants })
}

/// Every case in `cases/` (compiled in), sorted by file name.
pub fn load_cases() -> Vec<Case> {
    crate::builtin::FILES
        .iter()
        .map(|(file, text)| {
            let docs = palisade_model::parse_yaml(text).unwrap_or_else(|e| panic!("{file}: {e}"));
            let raw: RawCase = serde_json::from_value(docs.into_iter().next().expect("one document")).unwrap_or_else(|e| panic!("{file}: {e}"));
            convert(raw).unwrap_or_else(|e| panic!("{file}: {e}"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_truth_tables() {
        let table = "from\\to x/a x/b\nx/a     -   X\nx/b     .   -\n";
        let expect = truth_table(table).unwrap();
        assert_eq!(expect, vec![Expectation { from: "x/a".into(), to: "x/b".into(), allowed: false }, Expectation { from: "x/b".into(), to: "x/a".into(), allowed: true },]);
    }

    #[test]
    fn all_upstream_cases_are_present() {
        let cases = load_cases();
        assert_eq!(cases.len(), 48);
        let probes: usize = cases.iter().map(|c| c.variants[0].steps.iter().map(|s| if let Step::Probe { expect, .. } = s { expect.len() } else { 0 }).sum::<usize>()).sum();
        // The upstream transcription counts 506 explicit probes over the newest topologies.
        assert_eq!(probes, 506);
        let protocols: Vec<Protocol> = cases.iter().flat_map(|c| c.servers.iter().map(|s| s.1)).collect();
        assert_eq!(protocols.iter().filter(|p| **p == Protocol::Sctp).count(), 3);
    }
}
