//! The two questions every rule asks: does this peer match the other end, and does this
//! port entry match the destination port. Both the single-flow verdict and the matrix use
//! these functions, so there is one definition of the semantics. Misses borrow from the
//! policy, so asking costs no allocation.

use std::net::IpAddr;

use ipnet::IpNet;
use palisade_model::{Endpoint, IpBlock, Labels, NamespaceScope, Peer, PortMatch, PortSpec, Protocol, Requirement, Rule};

/// The other end of a flow, as a peer sees it.
#[derive(Clone, Copy, Debug)]
pub enum Remote<'a> {
    Pod { endpoint: &'a Endpoint, namespace_labels: &'a Labels, ip: Option<IpAddr> },
    External(IpAddr),
}

impl Remote<'_> {
    pub fn ip(&self) -> Option<IpAddr> {
        match self {
            Remote::Pod { ip, .. } => *ip,
            Remote::External(ip) => Some(*ip),
        }
    }
}

/// Why a peer did not match.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerMiss<'a> {
    /// A `podSelector`-only peer looks in the policy's own namespace only.
    OtherNamespace {
        policy_namespace: &'a str,
    },
    NamespaceNotSelected {
        failed: &'a Requirement,
    },
    PodNotSelected {
        failed: &'a Requirement,
    },
    /// Selectors only ever match pods; the other end is outside the cluster.
    NotAPod,
    /// hostNetwork pods are node traffic; only an ipBlock on the node address matches them.
    HostNetwork,
    /// The pod has no address in the flow's family.
    NoAddress,
    OutsideCidr {
        cidr: &'a IpNet,
    },
    Excepted {
        except: &'a IpNet,
    },
}

pub fn match_peer<'a>(peer: &'a Peer, policy_namespace: &'a str, remote: &Remote<'_>) -> Result<(), PeerMiss<'a>> {
    match peer {
        Peer::IpBlock(block) => match remote.ip() {
            None => Err(PeerMiss::NoAddress),
            Some(ip) => match_ip_block(block, ip),
        },
        Peer::Pods { namespaces, pods } => {
            let Remote::Pod { endpoint, namespace_labels, .. } = remote else { return Err(PeerMiss::NotAPod) };
            if !endpoint.selectable() {
                return Err(PeerMiss::HostNetwork);
            }
            match namespaces {
                NamespaceScope::PolicyNamespace if endpoint.namespace != policy_namespace => {
                    return Err(PeerMiss::OtherNamespace { policy_namespace });
                }
                NamespaceScope::PolicyNamespace => {}
                NamespaceScope::Selector(selector) => {
                    if let Some(failed) = selector.first_mismatch(namespace_labels) {
                        return Err(PeerMiss::NamespaceNotSelected { failed });
                    }
                }
            }
            match pods.first_mismatch(&endpoint.labels) {
                Some(failed) => Err(PeerMiss::PodNotSelected { failed }),
                None => Ok(()),
            }
        }
    }
}

fn match_ip_block(block: &IpBlock, ip: IpAddr) -> Result<(), PeerMiss<'_>> {
    if !block.cidr.contains(&ip) {
        return Err(PeerMiss::OutsideCidr { cidr: &block.cidr });
    }
    match block.except.iter().find(|e| e.contains(&ip)) {
        Some(except) => Err(PeerMiss::Excepted { except }),
        None => Ok(()),
    }
}

/// Whether a rule's peer list admits the remote end (an empty list admits everything,
/// including addresses outside the cluster).
pub fn peers_match(rule: &Rule, policy_namespace: &str, remote: &Remote<'_>) -> bool {
    rule.peers.is_empty() || rule.peers.iter().any(|p| match_peer(p, policy_namespace, remote).is_ok())
}

/// Whether one port entry admits `port`/`protocol` on the destination. Named ports resolve
/// on the destination pod, per protocol; a destination outside the cluster has no names.
pub fn match_port(entry: &PortMatch, port: u16, protocol: Protocol, destination: Option<&Endpoint>) -> bool {
    if entry.protocol != protocol {
        return false;
    }
    match &entry.port {
        PortSpec::Any => true,
        PortSpec::Number(n) => *n == port,
        PortSpec::Range(low, high) => (*low..=*high).contains(&port),
        PortSpec::Named(name) => destination.and_then(|d| d.named_port(name, protocol)) == Some(port),
    }
}

/// Whether a rule's port list admits the destination port (an empty list admits all).
pub fn ports_match(rule: &Rule, port: u16, protocol: Protocol, destination: Option<&Endpoint>) -> bool {
    rule.ports.is_empty() || rule.ports.iter().any(|p| match_port(p, port, protocol, destination))
}
