//! Assembles validated objects into a [`Cluster`]: implicit namespaces, duplicate
//! detection and deterministic pod addresses for endpoints that have none.

use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;

use ipnet::IpNet;

use crate::cluster_policy::{ClusterPolicy, Node};
use crate::objects::{Cluster, Endpoint, NAMESPACE_NAME_LABEL, Namespace, Origin, Policy, Service};
use crate::selector::Labels;

/// The pod CIDR kubeadm and kind default to.
pub const DEFAULT_POD_CIDR: &str = "10.244.0.0/16";
/// The IPv6 pod CIDR invented addresses come from in IPv6 clusters (a ULA, as kind's
/// `fd00:10:244::/56`).
pub const DEFAULT_POD_CIDR_V6: &str = "fd00:10:244::/64";

/// Something worth telling the user that does not stop the analysis.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    pub origin: Origin,
    pub message: String,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    #[error("pod CIDR {cidr} has no free address left for {endpoint}")]
    CidrExhausted { cidr: IpNet, endpoint: String },
}

/// An object with this identity was added before; carries where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Duplicate(pub Origin);

#[derive(Debug, Default)]
pub struct ClusterBuilder {
    namespaces: BTreeMap<String, Namespace>,
    endpoints: Vec<Endpoint>,
    endpoint_keys: BTreeMap<(String, String, String), usize>,
    services: Vec<Service>,
    policies: Vec<Policy>,
    cluster_policies: Vec<ClusterPolicy>,
    nodes: Vec<Node>,
}

impl ClusterBuilder {
    pub fn add_namespace(&mut self, namespace: Namespace) -> Result<(), Duplicate> {
        if let Some(existing) = self.namespaces.get(&namespace.name) {
            return Err(Duplicate(existing.origin.clone()));
        }
        self.namespaces.insert(namespace.name.clone(), namespace);
        Ok(())
    }

    pub fn add_endpoint(&mut self, endpoint: Endpoint) -> Result<(), Duplicate> {
        let key = (endpoint.kind.kind().to_string(), endpoint.namespace.clone(), endpoint.name.clone());
        if let Some(&i) = self.endpoint_keys.get(&key) {
            return Err(Duplicate(self.endpoints[i].origin.clone()));
        }
        self.endpoint_keys.insert(key, self.endpoints.len());
        self.endpoints.push(endpoint);
        Ok(())
    }

    pub fn add_service(&mut self, service: Service) -> Result<(), Duplicate> {
        if let Some(existing) = self.services.iter().find(|s| s.namespace == service.namespace && s.name == service.name) {
            return Err(Duplicate(existing.origin.clone()));
        }
        self.services.push(service);
        Ok(())
    }

    pub fn add_policy(&mut self, policy: Policy) -> Result<(), Duplicate> {
        if let Some(existing) = self.policies.iter().find(|p| p.namespace == policy.namespace && p.name == policy.name) {
            return Err(Duplicate(existing.origin.clone()));
        }
        self.policies.push(policy);
        Ok(())
    }

    pub fn add_cluster_policy(&mut self, policy: ClusterPolicy) -> Result<(), Duplicate> {
        if let Some(existing) = self.cluster_policies.iter().find(|p| p.name == policy.name) {
            return Err(Duplicate(existing.origin.clone()));
        }
        self.cluster_policies.push(policy);
        Ok(())
    }

    pub fn add_node(&mut self, node: Node) -> Result<(), Duplicate> {
        if let Some(existing) = self.nodes.iter().find(|n| n.name == node.name) {
            return Err(Duplicate(existing.origin.clone()));
        }
        self.nodes.push(node);
        Ok(())
    }

    /// Finishes the cluster. Endpoints without any address get one from each of
    /// `pod_cidrs` (empty: [`default_pod_cidrs`]).
    pub fn build(mut self, pod_cidrs: &[IpNet]) -> Result<(Cluster, Vec<Note>), BuildError> {
        let mut notes = Vec::new();
        self.add_referenced_namespaces(&mut notes);
        notes.extend(duplicate_ip_notes(&self.endpoints));
        let defaults;
        let pod_cidrs = if pod_cidrs.is_empty() {
            defaults = default_pod_cidrs(&self.endpoints);
            &defaults
        } else {
            pod_cidrs
        };
        assign_addresses(&mut self.endpoints, pod_cidrs)?;
        let cluster = Cluster { namespaces: self.namespaces, endpoints: self.endpoints, services: self.services, policies: self.policies, cluster_policies: Vec::new(), nodes: self.nodes };
        let mut cluster = cluster;
        notes.extend(same_priority_notes(&self.cluster_policies));
        for policy in self.cluster_policies {
            cluster.upsert_cluster_policy(policy);
        }
        Ok((cluster, notes))
    }

    /// A namespace that objects live in but nobody declared exists anyway with only its
    /// name label, as it would on a cluster where someone created it by hand.
    fn add_referenced_namespaces(&mut self, notes: &mut Vec<Note>) {
        let referenced =
            self.endpoints.iter().map(|e| (&e.namespace, &e.origin)).chain(self.services.iter().map(|s| (&s.namespace, &s.origin))).chain(self.policies.iter().map(|p| (&p.namespace, &p.origin)));
        let mut missing: BTreeMap<String, Origin> = BTreeMap::new();
        for (name, origin) in referenced {
            if !self.namespaces.contains_key(name) && !missing.contains_key(name) {
                missing.insert(name.clone(), origin.clone());
            }
        }
        for (name, origin) in missing {
            notes.push(Note { origin: origin.clone(), message: format!("namespace {name:?} is not declared; assuming it exists with only the label {NAMESPACE_NAME_LABEL}={name}") });
            let labels = Labels::from([(NAMESPACE_NAME_LABEL.to_string(), name.clone())]);
            self.namespaces.insert(name.clone(), Namespace { name, labels, declared: false, origin: Origin::default() });
        }
    }
}

fn duplicate_ip_notes(endpoints: &[Endpoint]) -> Vec<Note> {
    let mut seen: BTreeMap<IpAddr, &Endpoint> = BTreeMap::new();
    let mut notes = Vec::new();
    for endpoint in endpoints.iter().filter(|e| !e.host_network) {
        for ip in &endpoint.ips {
            if let Some(first) = seen.insert(*ip, endpoint) {
                notes.push(Note { origin: endpoint.origin.clone(), message: format!("{} has the same IP {ip} as {}", endpoint.display_name(), first.display_name()) });
            }
        }
    }
    notes
}

/// FNV-1a: a fixed hash, so an endpoint keeps its address whatever else is in the input.
fn stable_hash(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3))
}

/// The CIDRs invented addresses come from when the user gives none: one per family that the
/// cluster's real pod addresses use, so the pods of an IPv6-only cluster get IPv6 addresses
/// and those of a dual-stack one both; IPv4 when no pod has an address.
pub fn default_pod_cidrs(endpoints: &[Endpoint]) -> Vec<IpNet> {
    let real = || endpoints.iter().filter(|e| !e.host_network).flat_map(|e| e.ips.iter());
    let (v4, v6) = (real().any(IpAddr::is_ipv4), real().any(IpAddr::is_ipv6));
    let mut cidrs = Vec::new();
    if v4 || !v6 {
        cidrs.push(DEFAULT_POD_CIDR.parse().expect("valid CIDR"));
    }
    if v6 {
        cidrs.push(DEFAULT_POD_CIDR_V6.parse().expect("valid CIDR"));
    }
    cidrs
}

/// Gives every non-hostNetwork endpoint without any address (a manifest without status, a
/// workload's template) one from each CIDR: at a hash of its identity, probing forward past
/// taken addresses. A pod with addresses keeps exactly those: one the API says is IPv6-only
/// must not be judged as if it had an IPv4 address. Endpoints are visited in name order so
/// the result does not depend on the order of the input files.
fn assign_addresses(endpoints: &mut [Endpoint], pod_cidrs: &[IpNet]) -> Result<(), BuildError> {
    let mut taken: HashSet<IpAddr> = endpoints.iter().flat_map(|e| e.ips.iter().copied()).collect();
    let addressless: Vec<bool> = endpoints.iter().map(|e| !e.host_network && e.ips.is_empty()).collect();
    let mut order: Vec<usize> = (0..endpoints.len()).collect();
    order.sort_by(|&a, &b| {
        let key = |e: &Endpoint| (e.namespace.clone(), e.name.clone(), e.kind);
        key(&endpoints[a]).cmp(&key(&endpoints[b]))
    });
    for cidr in pod_cidrs {
        let v6 = matches!(cidr, IpNet::V6(_));
        // Usable host offsets: skip the network address (and the IPv4 broadcast address).
        let host_bits = u32::from(cidr.max_prefix_len() - cidr.prefix_len()).min(64);
        let size: u128 = 1u128 << host_bits;
        let usable = if v6 { size - 1 } else { size.saturating_sub(2) };
        for &i in &order {
            let endpoint = &mut endpoints[i];
            if !addressless[i] || endpoint.ip_of_family(v6).is_some() {
                continue;
            }
            let identity = format!("{}/{}/{}", endpoint.kind, endpoint.namespace, endpoint.name);
            let ip = free_address(cidr, usable, stable_hash(&identity), &taken).ok_or_else(|| BuildError::CidrExhausted { cidr: *cidr, endpoint: endpoint.display_name() })?;
            taken.insert(ip);
            endpoint.ips.push(ip);
        }
    }
    Ok(())
}

fn free_address(cidr: &IpNet, usable: u128, hash: u64, taken: &HashSet<IpAddr>) -> Option<IpAddr> {
    if usable == 0 {
        return None;
    }
    let start = u128::from(hash) % usable;
    // Bounded probing: a CIDR with fewer free addresses than this is effectively full.
    let attempts = usable.min(1 << 20);
    (0..attempts).map(|step| 1 + (start + step) % usable).map(|offset| nth_address(cidr, offset)).find(|ip| !taken.contains(ip))
}

fn nth_address(cidr: &IpNet, offset: u128) -> IpAddr {
    match cidr {
        IpNet::V4(net) => IpAddr::V4((u32::from(net.network()) + offset as u32).into()),
        IpNet::V6(net) => IpAddr::V6((u128::from(net.network()) + offset).into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::WorkloadKind;

    fn endpoint(ns: &str, name: &str, ips: &[&str]) -> Endpoint {
        Endpoint {
            kind: WorkloadKind::Pod,
            namespace: ns.into(),
            name: name.into(),
            labels: Labels::new(),
            ips: ips.iter().map(|ip| ip.parse().unwrap()).collect(),
            ports: vec![],
            host_network: false,
            node: None,
            origin: Origin::default(),
        }
    }

    fn build(endpoints: Vec<Endpoint>, cidrs: &[&str]) -> Result<(Cluster, Vec<Note>), BuildError> {
        let mut builder = ClusterBuilder::default();
        for e in endpoints {
            builder.add_endpoint(e).unwrap();
        }
        let cidrs: Vec<IpNet> = cidrs.iter().map(|c| c.parse().unwrap()).collect();
        builder.build(&cidrs)
    }

    #[test]
    fn assigned_addresses_do_not_depend_on_input_order() {
        let a = build(vec![endpoint("x", "a", &[]), endpoint("x", "b", &[])], &["10.244.0.0/16"]).unwrap().0;
        let b = build(vec![endpoint("x", "b", &[]), endpoint("x", "a", &[])], &["10.244.0.0/16"]).unwrap().0;
        assert_eq!(a.endpoints[0].ips, b.endpoints[1].ips);
        assert!("10.244.0.0/16".parse::<IpNet>().unwrap().contains(&a.endpoints[0].ips[0]));
    }

    #[test]
    fn keeps_status_addresses_and_avoids_them() {
        let (cluster, _) = build(vec![endpoint("x", "a", &["10.0.0.1"]), endpoint("x", "b", &[]), endpoint("x", "c", &[])], &["10.0.0.0/29"]).unwrap();
        assert_eq!(cluster.endpoints[0].ips[0].to_string(), "10.0.0.1");
        let assigned: Vec<IpAddr> = cluster.endpoints[1..].iter().map(|e| e.ips[0]).collect();
        assert_ne!(assigned[0], assigned[1]);
        assert!(!assigned.contains(&"10.0.0.1".parse().unwrap()));
    }

    #[test]
    fn exhausted_cidr_is_an_error() {
        let err = build(vec![endpoint("x", "a", &[]), endpoint("x", "b", &[]), endpoint("x", "c", &[])], &["10.0.0.0/30"]);
        assert!(matches!(err, Err(BuildError::CidrExhausted { .. })));
    }

    #[test]
    fn dual_stack_cidrs_give_one_address_per_family() {
        let (cluster, _) = build(vec![endpoint("x", "a", &[])], &["10.244.0.0/16", "fd00:10:244::/64"]).unwrap();
        assert_eq!(cluster.endpoints[0].ips.len(), 2);
        assert!(cluster.endpoints[0].ip_of_family(true).is_some());
    }

    #[test]
    fn pods_with_addresses_keep_exactly_those() {
        // An IPv6-only pod must not get an invented IPv4 address, even with an IPv4 CIDR.
        let (cluster, _) = build(vec![endpoint("x", "v6", &["fd00:99::20"]), endpoint("x", "none", &[])], &["10.244.0.0/16", "fd00:10:244::/64"]).unwrap();
        assert_eq!(cluster.endpoints[0].ips, vec!["fd00:99::20".parse::<IpAddr>().unwrap()]);
        assert_eq!(cluster.endpoints[1].ips.len(), 2, "addressless pods get one per CIDR");
    }

    #[test]
    fn default_cidrs_follow_the_families_of_real_addresses() {
        let v6_only = build(vec![endpoint("x", "a", &["fd00:10:244::10"]), endpoint("x", "b", &[])], &[]).unwrap().0;
        assert!(v6_only.endpoints[1].ips.iter().all(IpAddr::is_ipv6) && v6_only.endpoints[1].ips.len() == 1);
        let dual = build(vec![endpoint("x", "a", &["10.1.1.1"]), endpoint("x", "c", &["fd00::1"]), endpoint("x", "b", &[])], &[]).unwrap().0;
        assert_eq!(dual.endpoints[2].ips.len(), 2);
        let none = build(vec![endpoint("x", "b", &[])], &[]).unwrap().0;
        assert!(none.endpoints[0].ips[0].is_ipv4());
    }

    #[test]
    fn undeclared_namespaces_get_the_name_label_and_a_note() {
        let (cluster, notes) = build(vec![endpoint("develop", "curl", &["10.1.1.1"])], &[]).unwrap();
        assert_eq!(cluster.namespaces["develop"].labels[NAMESPACE_NAME_LABEL], "develop");
        assert!(!cluster.namespaces["develop"].declared);
        assert!(notes[0].message.contains("not declared"));
    }
}

/// ClusterNetworkPolicies of one tier with one priority: the order among them is the
/// implementation's (Palisade's: by name), so overlaps between them are worth a warning,
/// one per tie.
fn same_priority_notes(policies: &[ClusterPolicy]) -> Vec<Note> {
    let mut ties: BTreeMap<(crate::cluster_policy::Tier, u16), Vec<&ClusterPolicy>> = BTreeMap::new();
    for policy in policies {
        ties.entry((policy.tier, policy.priority)).or_default().push(policy);
    }
    ties.into_iter()
        .filter(|(_, tied)| tied.len() > 1)
        .map(|((tier, priority), mut tied)| {
            tied.sort_by(|a, b| a.name.cmp(&b.name));
            let names: Vec<&str> = tied.iter().map(|p| p.name.as_str()).collect();
            let (listed, verb) = match names.as_slice() {
                [a, b] => (format!("{a} and {b}"), "both"),
                [rest @ .., last] => (format!("{} and {last}", rest.join(", ")), "all"),
                [] => unreachable!("ties have two policies or more"),
            };
            Note {
                origin: tied[1].origin.clone(),
                message: format!(
                    "ClusterNetworkPolicies {listed} are {verb} in the {} tier at priority {priority}: where several match, the first by name decides ({}); give them distinct priorities",
                    tier.as_str(),
                    names[0]
                ),
            }
        })
        .collect()
}
