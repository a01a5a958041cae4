//! Traffic to a Service is judged after DNAT: on each backend pod and its targetPort.

use palisade_model::{Cluster, Protocol, Service, TargetPort};

/// One backend of a Service port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backend {
    pub endpoint: usize,
    pub port: u16,
    pub protocol: Protocol,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServiceError {
    /// No port of the Service has this number or name.
    NoSuchPort { available: Vec<String> },
    /// The Service has no selector, or the selector matches no endpoint.
    NoBackends,
    /// A named targetPort that a backend does not declare: kube-proxy sends it nothing.
    UnresolvedTarget { endpoint: usize, name: String },
}

/// The Service port `port` (number or name) with `protocol` if given, mapped to every
/// backend's targetPort. Named targetPorts resolve on each backend.
pub fn backends(cluster: &Cluster, service: &Service, port: &str, protocol: Option<Protocol>) -> Result<Vec<Backend>, ServiceError> {
    let service_port =
        service.ports.iter().find(|p| (p.port.to_string() == port || p.name.as_deref() == Some(port)) && protocol.is_none_or(|proto| proto == p.protocol)).ok_or_else(|| ServiceError::NoSuchPort {
            available: service
                .ports
                .iter()
                .map(|p| match &p.name {
                    Some(name) => format!("{}/{} ({name})", p.port, p.protocol),
                    None => format!("{}/{}", p.port, p.protocol),
                })
                .collect(),
        })?;
    let mut out = Vec::new();
    for (index, endpoint) in cluster.endpoints.iter().enumerate().filter(|(_, e)| service.selects(e)) {
        let target = match &service_port.target {
            TargetPort::Number(n) => *n,
            TargetPort::Name(name) => match endpoint.named_port(name, service_port.protocol) {
                Some(n) => n,
                None => return Err(ServiceError::UnresolvedTarget { endpoint: index, name: name.clone() }),
            },
        };
        out.push(Backend { endpoint: index, port: target, protocol: service_port.protocol });
    }
    if out.is_empty() {
        return Err(ServiceError::NoBackends);
    }
    Ok(out)
}
