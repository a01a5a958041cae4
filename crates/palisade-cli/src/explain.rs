//! Verdicts in plain words: what each side decided, which policy and rule, why each rule
//! missed, and a rule that would allow the flow. This answers "why is my traffic blocked".

use std::fmt::Write;

use palisade_model::{Cluster, Direction, NamespaceScope, Peer, PortSpec, Protocol, format_labels};
use palisade_policy::{Flow, FlowEnd, PeerMismatch, RuleMiss, RuleRef, SideVerdict, Verdict};

/// Explains one flow, indented by `indent` spaces.
pub fn explain(cluster: &Cluster, flow: &Flow, verdict: &Verdict, indent: usize) -> String {
    let mut out = String::new();
    let pad = " ".repeat(indent);
    let src = flow.src.display(cluster);
    let dst = flow.dst.display(cluster);
    let _ = writeln!(out, "{pad}egress from {src}: {}", side_text(cluster, Direction::Egress, &src, &verdict.egress, flow, indent + 2));
    let _ = writeln!(out, "{pad}ingress to {dst}: {}", side_text(cluster, Direction::Ingress, &dst, &verdict.ingress, flow, indent + 2));
    out
}

fn side_text(cluster: &Cluster, direction: Direction, subject: &str, side: &SideVerdict, flow: &Flow, indent: usize) -> String {
    let pad = " ".repeat(indent);
    match side {
        SideVerdict::NotAPod => "allowed: the address is outside the cluster, no NetworkPolicy applies to it".to_string(),
        SideVerdict::SelfTraffic => "allowed: a pod can always reach itself".to_string(),
        SideVerdict::HostNetwork => "allowed: a hostNetwork pod is never selected by NetworkPolicy (its traffic is the node's)".to_string(),
        SideVerdict::NotIsolated if cluster.cluster_policies.is_empty() => format!("allowed: no NetworkPolicy selects {subject} for {direction}, so all {direction} traffic is allowed"),
        SideVerdict::NotIsolated => format!("allowed: no NetworkPolicy selects {subject} for {direction} and no ClusterNetworkPolicy rule matches, so it is allowed by default"),
        SideVerdict::Allowed { isolated_by, allowed_by } => {
            let rules: Vec<String> = allowed_by.iter().map(|r| allowed_rule_text(cluster, r)).collect();
            let policies: Vec<String> = isolated_by.iter().map(|p| p.display_name()).collect();
            format!("allowed by {}\n{pad}({subject} is isolated for {direction} by {})", rules.join(", "), policies.join(", "))
        }
        SideVerdict::Denied { isolated_by, misses } => {
            let mut out = String::from("DENIED\n");
            let policies: Vec<String> = isolated_by.iter().map(|p| format!("{} ({})", p.display_name(), p.defined_at)).collect();
            let _ = writeln!(out, "{pad}{subject} is isolated for {direction} by {}", policies.join(", "));
            if misses.is_empty() {
                let _ = writeln!(out, "{pad}these policies allow no {direction} traffic at all (no {direction} rules)");
            } else {
                let _ = writeln!(out, "{pad}and none of their {direction} rules matches:");
                for miss in misses {
                    out.push_str(&miss_text(cluster, miss, flow, indent + 2));
                }
            }
            let example = isolated_by.first().map(|p| p.display_name()).unwrap_or_default();
            let _ = write!(
                out,
                "{pad}to allow it, add a rule like this to the {direction} rules of {example} (or of any policy selecting {subject}):\n{}",
                suggestion(cluster, direction, flow, indent + 4)
            );
            out.trim_end().to_string()
        }
        SideVerdict::ClusterPolicy { accepted, rule } => {
            let why = if rule.fail_closed { " (the rule names a peer or protocol this version does not know, and fails closed)" } else { "" };
            let effect = match (rule.tier.as_str(), accepted) {
                ("Admin", true) => "NetworkPolicy is not consulted",
                ("Admin", false) => "no NetworkPolicy can allow it",
                _ => "no NetworkPolicy selects it for this direction, so the Baseline tier decides",
            };
            format!("{} by {rule}{why}\n{pad}({effect})", if *accepted { "accepted" } else { "DENIED" })
        }
        SideVerdict::Passed { by, then } => {
            let next = side_text(cluster, direction, subject, then, flow, indent);
            format!("passed on by {by} to NetworkPolicy and the Baseline tier; then {next}")
        }
    }
}

/// `ns/policy ingress[0].from[1] (namespaceSelector team=a, podSelector {})`.
fn allowed_rule_text(cluster: &Cluster, rule: &RuleRef) -> String {
    let peer = rule.peer.and_then(|p| {
        let policy = cluster.policies.iter().find(|x| x.namespace == rule.policy.namespace && x.name == rule.policy.name)?;
        policy.rules(rule.direction)?.get(rule.rule)?.peers.get(p).map(describe_peer)
    });
    match peer {
        Some(peer) => format!("{} {peer}", rule.display_name()),
        None => format!("{} (any {})", rule.display_name(), if rule.direction == Direction::Ingress { "source" } else { "destination" }),
    }
}

fn miss_text(cluster: &Cluster, miss: &RuleMiss, flow: &Flow, indent: usize) -> String {
    let pad = " ".repeat(indent);
    let mut out = format!("{pad}{}:\n", miss.rule.display_name());
    let policy = cluster.policies.iter().find(|p| p.namespace == miss.rule.policy.namespace && p.name == miss.rule.policy.name);
    let rule = policy.and_then(|p| p.rules(miss.rule.direction)).and_then(|rules| rules.get(miss.rule.rule));
    let field = miss.rule.direction.peers_field();
    let remote = match miss.rule.direction {
        Direction::Ingress => &flow.src,
        Direction::Egress => &flow.dst,
    };
    for mismatch in &miss.peers {
        let (index, reason) = peer_reason(cluster, mismatch, remote);
        let described = rule.and_then(|r| r.peers.get(index)).map(describe_peer).unwrap_or_default();
        let _ = writeln!(out, "{pad}  {field}[{index}] {described}: {reason}");
    }
    if let Some(ports) = &miss.ports {
        let destination = flow.dst.index().map(|i| &cluster.endpoints[i]);
        let listed: Vec<String> = ports
            .iter()
            .map(|p| match (&p.port, destination) {
                (PortSpec::Named(name), Some(d)) => match d.named_port(name, p.protocol) {
                    Some(n) => format!("{p} (= {n} on the destination)"),
                    None => format!("{p} (the destination has no {} port named {name})", p.protocol),
                },
                _ => p.to_string(),
            })
            .collect();
        let _ = writeln!(out, "{pad}  ports {} do not include {}/{}", listed.join(", "), flow.port, flow.protocol);
    }
    out
}

fn describe_peer(peer: &Peer) -> String {
    match peer {
        Peer::IpBlock(block) => format!("({block})"),
        Peer::Pods { namespaces, pods } => match namespaces {
            NamespaceScope::PolicyNamespace => format!("(podSelector {pods})"),
            NamespaceScope::Selector(ns) => format!("(namespaceSelector {ns}, podSelector {pods})"),
        },
    }
}

fn peer_reason(cluster: &Cluster, mismatch: &PeerMismatch, remote: &FlowEnd) -> (usize, String) {
    let name = remote.display(cluster);
    let pod_labels = || remote.index().map(|i| format_labels(&cluster.endpoints[i].labels)).unwrap_or_default();
    match mismatch {
        PeerMismatch::OtherNamespace { peer, policy_namespace, remote_namespace } => {
            (*peer, format!("without a namespaceSelector it only matches pods in the policy's namespace {policy_namespace}; {name} is in {remote_namespace}"))
        }
        PeerMismatch::NamespaceNotSelected { peer, namespace, requirement } => {
            let labels = cluster.namespace_labels(namespace).map(format_labels).unwrap_or_default();
            (*peer, format!("namespace {namespace} does not satisfy {requirement} (its labels: {labels})"))
        }
        PeerMismatch::PodNotSelected { peer, requirement } => (*peer, format!("{name} does not satisfy {requirement} (its labels: {})", pod_labels())),
        PeerMismatch::NotAPod { peer } => (*peer, format!("selectors only match pods; {name} is outside the cluster")),
        PeerMismatch::HostNetwork { peer } => (*peer, format!("{name} uses hostNetwork; selectors never match it, only an ipBlock with its node address")),
        PeerMismatch::NoAddress { peer } => (*peer, format!("{name} has no address in this family")),
        PeerMismatch::OutsideCidr { peer, cidr, ip } => (*peer, format!("{ip} is not in {cidr}")),
        PeerMismatch::Excepted { peer, except, ip } => (*peer, format!("{ip} is excluded by except {except}")),
    }
}

/// A rule that admits exactly this flow's other end and port, as YAML.
fn suggestion(cluster: &Cluster, direction: Direction, flow: &Flow, indent: usize) -> String {
    let pad = " ".repeat(indent);
    let (subject, remote) = match direction {
        Direction::Ingress => (&flow.dst, &flow.src),
        Direction::Egress => (&flow.src, &flow.dst),
    };
    let subject_ns = subject.index().map(|i| cluster.endpoints[i].namespace.clone()).unwrap_or_default();
    let mut lines = vec![format!("- {}:", direction.peers_field())];
    match remote {
        FlowEnd::External(ip) => {
            let host = if ip.is_ipv4() { 32 } else { 128 };
            lines.push(format!("  - ipBlock: {{cidr: {ip}/{host}}}"));
        }
        FlowEnd::Endpoint { index, .. } => {
            let endpoint = &cluster.endpoints[*index];
            let labels: Vec<String> = endpoint.labels.iter().map(|(k, v)| format!("{k}: {v}")).collect();
            let pods = if labels.is_empty() { "{}".to_string() } else { format!("{{matchLabels: {{{}}}}}", labels.join(", ")) };
            if endpoint.namespace == subject_ns {
                lines.push(format!("  - podSelector: {pods}"));
            } else {
                lines.push(format!("  - namespaceSelector: {{matchLabels: {{kubernetes.io/metadata.name: {}}}}}", endpoint.namespace));
                lines.push(format!("    podSelector: {pods}"));
            }
        }
    }
    lines.push(format!("  ports: [{{protocol: {}, port: {}}}]", flow.protocol, flow.port));
    lines.iter().map(|l| format!("{pad}{l}\n")).collect()
}

/// `80/TCP`.
pub fn port_text(port: u16, protocol: Protocol) -> String {
    format!("{port}/{protocol}")
}
