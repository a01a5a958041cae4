//! networking.k8s.io/v1 NetworkPolicy -> [`Policy`], validated as `ValidateNetworkPolicy`
//! does, with `policyTypes` defaulting applied.

use k8s_openapi::api::networking::v1::{IPBlock, NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::cidr::{CIDR_RULE, parse_cidr_sloppy};
use super::{metadata, names, selector};
use crate::field_path::{At, Errors, FieldError};
use crate::objects::{IpBlock, NamespaceScope, Origin, Peer, Policy, PortMatch, PortSpec, Protocol, Rule};
use crate::selector::Selector;

/// Converts one NetworkPolicy; every problem is reported, none is fatal before the end.
pub fn network_policy(np: &NetworkPolicy, default_namespace: &str, origin: Origin) -> Result<Policy, Vec<FieldError>> {
    let mut errors = Errors::default();
    let id = metadata::identity(&np.metadata, default_namespace, &mut errors);
    let spec_path = At::ROOT.key("spec");
    let default_spec = Default::default();
    let spec = np.spec.as_ref().unwrap_or(&default_spec);

    let subject = match &spec.pod_selector {
        Some(s) => selector::selector(s, &spec_path.key("podSelector"), &mut errors),
        None => selector::selector(&Default::default(), &spec_path.key("podSelector"), &mut errors),
    };

    let ingress_path = spec_path.key("ingress");
    let ingress: Vec<Rule> = spec.ingress.iter().flatten().enumerate().map(|(i, rule)| ingress_rule(rule, &ingress_path.index(i), &mut errors)).collect();
    let egress_path = spec_path.key("egress");
    let egress: Vec<Rule> = spec.egress.iter().flatten().enumerate().map(|(i, rule)| egress_rule(rule, &egress_path.index(i), &mut errors)).collect();

    let (isolates_ingress, isolates_egress) = policy_types(spec.policy_types.as_deref(), !egress.is_empty(), &spec_path.key("policyTypes"), &mut errors);

    errors.into_result(Policy { namespace: id.namespace, name: id.name, subject, ingress: isolates_ingress.then_some(ingress), egress: isolates_egress.then_some(egress), origin })
}

/// Which directions the policy isolates. Without `policyTypes` the API server defaults to
/// Ingress, plus Egress when there are egress rules (edge case 5).
fn policy_types(types: Option<&[String]>, has_egress_rules: bool, path: &At<'_>, errors: &mut Errors) -> (bool, bool) {
    let types = types.unwrap_or_default();
    if types.is_empty() {
        return (true, has_egress_rules);
    }
    if types.len() > 2 {
        errors.push(path, "may not specify more than two policyTypes");
    }
    let (mut ingress, mut egress) = (false, false);
    for (i, t) in types.iter().enumerate() {
        match t.as_str() {
            "Ingress" => ingress = true,
            "Egress" => egress = true,
            other => errors.push(path.index(i), format!("unsupported policy type {other:?}: supported values: \"Ingress\", \"Egress\"")),
        }
    }
    (ingress, egress)
}

fn ingress_rule(rule: &NetworkPolicyIngressRule, path: &At<'_>, errors: &mut Errors) -> Rule {
    Rule { peers: peers(rule.from.as_deref(), &path.key("from"), errors), ports: ports(rule.ports.as_deref(), &path.key("ports"), errors) }
}

fn egress_rule(rule: &NetworkPolicyEgressRule, path: &At<'_>, errors: &mut Errors) -> Rule {
    Rule { peers: peers(rule.to.as_deref(), &path.key("to"), errors), ports: ports(rule.ports.as_deref(), &path.key("ports"), errors) }
}

fn peers(list: Option<&[NetworkPolicyPeer]>, path: &At<'_>, errors: &mut Errors) -> Vec<Peer> {
    let list = list.unwrap_or_default();
    let mut out = Vec::with_capacity(list.len());
    for (i, entry) in list.iter().enumerate() {
        if let Some(peer) = peer(entry, &path.index(i), errors) {
            out.push(peer);
        }
    }
    out
}

fn peer(peer: &NetworkPolicyPeer, path: &At<'_>, errors: &mut Errors) -> Option<Peer> {
    let has_selectors = peer.pod_selector.is_some() || peer.namespace_selector.is_some();
    match (has_selectors, &peer.ip_block) {
        (false, None) => {
            errors.push(path, "must specify a peer: one of podSelector, namespaceSelector (or both) or ipBlock");
            None
        }
        (true, Some(_)) => {
            errors.push(path, "may not specify more than 1 peer: ipBlock cannot be combined with podSelector or namespaceSelector in one entry");
            None
        }
        (false, Some(block)) => ip_block(block, &path.key("ipBlock"), errors).map(Peer::IpBlock),
        (true, None) => {
            let pods = match &peer.pod_selector {
                Some(s) => selector::selector(s, &path.key("podSelector"), errors),
                None => Selector::everything(),
            };
            let namespaces = match &peer.namespace_selector {
                Some(s) => NamespaceScope::Selector(selector::selector(s, &path.key("namespaceSelector"), errors)),
                None => NamespaceScope::PolicyNamespace,
            };
            Some(Peer::Pods { namespaces, pods })
        }
    }
}

fn ip_block(block: &IPBlock, path: &At<'_>, errors: &mut Errors) -> Option<IpBlock> {
    let cidr_path = path.key("cidr");
    if block.cidr.is_empty() {
        errors.push(cidr_path, "required value: cidr is required");
        return None;
    }
    let Some(cidr) = parse_cidr_sloppy(&block.cidr) else {
        errors.push(cidr_path, format!("invalid CIDR {:?}: {CIDR_RULE}", block.cidr));
        return None;
    };
    let mut except = Vec::new();
    let except_path = path.key("except");
    for (i, text) in block.except.iter().flatten().enumerate() {
        let path = except_path.index(i);
        match parse_cidr_sloppy(text) {
            None => errors.push(path, format!("invalid CIDR {text:?}: {CIDR_RULE}")),
            // The API requires a strict subset: inside cidr and with a longer prefix.
            Some(net) if net.prefix_len() <= cidr.prefix_len() || !cidr.contains(&net.network()) => {
                errors.push(path, format!("invalid except {text:?}: must be a strict subset of `cidr` {:?}", block.cidr))
            }
            Some(net) => except.push(net),
        }
    }
    except.sort();
    except.dedup();
    Some(IpBlock { cidr, except })
}

fn ports(list: Option<&[NetworkPolicyPort]>, path: &At<'_>, errors: &mut Errors) -> Vec<PortMatch> {
    let mut out = Vec::new();
    for (i, entry) in list.unwrap_or_default().iter().enumerate() {
        if let Some(port) = port(entry, &path.index(i), errors) {
            out.push(port);
        }
    }
    out
}

/// `ValidateNetworkPolicyPort`; a missing protocol defaults to TCP.
fn port(entry: &NetworkPolicyPort, path: &At<'_>, errors: &mut Errors) -> Option<PortMatch> {
    let before = errors.0.len();
    // An invalid protocol is already an error; TCP stands in so the rest is still checked.
    let protocol = super::protocol_or_tcp(entry.protocol.as_deref(), path, errors).unwrap_or(Protocol::Tcp);
    let end_path = path.key("endPort");
    let spec = match (&entry.port, entry.end_port) {
        (None, None) => PortSpec::Any,
        (None, Some(end)) => {
            errors.push(end_path, format!("invalid endPort {end}: may not be specified when `port` is not specified"));
            PortSpec::Any
        }
        (Some(IntOrString::Int(number)), end) => {
            let start = names::port_number(i64::from(*number)).map_err(|m| errors.push(path.key("port"), format!("invalid port {number}: {m}"))).ok();
            match (start, end) {
                (Some(start), None) => PortSpec::Number(start),
                (start, Some(end)) => {
                    let end_number = names::port_number(i64::from(end)).map_err(|m| errors.push(end_path, format!("invalid endPort {end}: {m}"))).ok();
                    match (start, end_number) {
                        (Some(start), Some(end_number)) if end_number < start => {
                            errors.push(end_path, format!("invalid endPort {end}: must be greater than or equal to `port` ({start})"));
                            PortSpec::Any
                        }
                        (Some(start), Some(end_number)) => PortSpec::Range(start, end_number),
                        _ => PortSpec::Any,
                    }
                }
                (None, None) => PortSpec::Any,
            }
        }
        (Some(IntOrString::String(name)), end) => {
            if let Some(end) = end {
                errors.push(end_path, format!("invalid endPort {end}: may not be specified when `port` is non-numeric"));
            }
            errors.check(&path.key("port"), "port name", name, names::port_name(name));
            PortSpec::Named(name.clone())
        }
    };
    (errors.0.len() == before).then_some(PortMatch { protocol, port: spec })
}
