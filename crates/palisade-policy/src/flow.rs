//! A flow: a new connection from one end to another on a port and protocol.

use std::net::IpAddr;

use palisade_model::{Cluster, Protocol};

use crate::matching::Remote;

/// One end of a flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FlowEnd {
    /// An endpoint of the cluster (index into `Cluster::endpoints`) at one of its addresses.
    Endpoint { index: usize, ip: Option<IpAddr> },
    /// An address outside the cluster.
    External(IpAddr),
}

impl FlowEnd {
    /// An endpoint at its address of the given family (its first address when `None`).
    pub fn endpoint(cluster: &Cluster, index: usize, v6: Option<bool>) -> Self {
        let endpoint = &cluster.endpoints[index];
        let ip = match v6 {
            Some(v6) => endpoint.ip_of_family(v6),
            None => endpoint.ips.first().copied(),
        };
        FlowEnd::Endpoint { index, ip }
    }

    pub fn index(&self) -> Option<usize> {
        match self {
            FlowEnd::Endpoint { index, .. } => Some(*index),
            FlowEnd::External(_) => None,
        }
    }

    pub fn ip(&self) -> Option<IpAddr> {
        match self {
            FlowEnd::Endpoint { ip, .. } => *ip,
            FlowEnd::External(ip) => Some(*ip),
        }
    }

    /// How a peer of a policy sees this end.
    pub fn as_remote<'c>(&self, cluster: &'c Cluster) -> Remote<'c> {
        match *self {
            FlowEnd::External(ip) => Remote::External(ip),
            FlowEnd::Endpoint { index, ip } => {
                let endpoint = &cluster.endpoints[index];
                Remote::Pod { endpoint, namespace_labels: namespace_labels(cluster, &endpoint.namespace), ip }
            }
        }
    }

    /// `ns/name`, or the address.
    pub fn display(&self, cluster: &Cluster) -> String {
        match self {
            FlowEnd::Endpoint { index, .. } => cluster.endpoints[*index].display_name(),
            FlowEnd::External(ip) => ip.to_string(),
        }
    }
}

/// The labels of a namespace; an unknown namespace has none (the loader always creates
/// every namespace it sees, so this only happens for hand-built clusters).
pub fn namespace_labels<'c>(cluster: &'c Cluster, namespace: &str) -> &'c palisade_model::Labels {
    static EMPTY: std::sync::OnceLock<palisade_model::Labels> = std::sync::OnceLock::new();
    cluster.namespace_labels(namespace).unwrap_or_else(|| EMPTY.get_or_init(Default::default))
}

/// A new connection, judged after Service DNAT: `dst` is the backend and `port` its port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Flow {
    pub src: FlowEnd,
    pub dst: FlowEnd,
    pub port: u16,
    pub protocol: Protocol,
}
