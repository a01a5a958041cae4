//! A case's topology in general form: namespaces with labels, pods with labels, named
//! container ports and optionally a fixed address. Upstream's model (namespaces x, y, z,
//! pods labelled `pod: <name>` serving every case port as `serve-<port>-<proto>`) is one
//! such topology.

use std::collections::BTreeMap;
use std::net::IpAddr;

use palisade_model::Protocol;

use crate::case::{Case, Variant};

pub type LabelMap = BTreeMap<String, String>;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortDef {
    pub name: Option<String>,
    pub protocol: Protocol,
    pub port: u16,
}

impl PortDef {
    /// Upstream's container port name: `serve-80-tcp`.
    pub fn upstream(port: u16, protocol: Protocol) -> Self {
        Self { name: Some(format!("serve-{port}-{}", protocol.as_str().to_ascii_lowercase())), protocol, port }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodDef {
    pub namespace: String,
    pub name: String,
    pub labels: LabelMap,
    pub ports: Vec<PortDef>,
    /// An address the case needs the pod to have (the engine uses it; a real run whose pod
    /// got another address cannot run the case).
    pub ip: Option<IpAddr>,
}

impl PodDef {
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Topology {
    /// Every namespace the case creates, with its labels (besides the automatic
    /// `kubernetes.io/metadata.name`).
    pub namespaces: BTreeMap<String, LabelMap>,
    pub pods: Vec<PodDef>,
}

impl Topology {
    /// Upstream's model for a variant: namespaces x, y, z; the variant's pods, each labelled
    /// `pod: <name>` and serving every case port.
    pub fn upstream(case: &Case, variant: &Variant) -> Self {
        let ports: Vec<PortDef> = case.servers.iter().map(|&(port, protocol)| PortDef::upstream(port, protocol)).collect();
        Self::upstream_pods(&variant.pods, &ports)
    }

    pub fn upstream_pods(pods: &[String], ports: &[PortDef]) -> Self {
        let namespaces = ["x", "y", "z"].iter().map(|n| (n.to_string(), LabelMap::new())).collect();
        let pods = pods
            .iter()
            .map(|pod| {
                let (namespace, name) = pod.split_once('/').expect("pods are named ns/name");
                PodDef { namespace: namespace.into(), name: name.into(), labels: LabelMap::from([("pod".to_string(), name.to_string())]), ports: ports.to_vec(), ip: None }
            })
            .collect();
        Self { namespaces, pods }
    }

    pub fn pod(&self, key: &str) -> Option<&PodDef> {
        self.pods.iter().find(|p| p.key() == key)
    }
}
