//! v1 Service -> [`Service`]: selector, ClusterIPs and ports with their targetPorts.

use k8s_openapi::api::core::v1::Service as K8sService;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::cidr::{IP_RULE, parse_ip_sloppy};
use super::{metadata, names, selector};
use crate::field_path::{At, Errors, FieldError, FieldPath};
use crate::objects::{Origin, Service, ServicePort, TargetPort};

pub fn service(svc: &K8sService, default_namespace: &str, origin: Origin) -> Result<Service, Vec<FieldError>> {
    let mut errors = Errors::default();
    let id = metadata::identity(&svc.metadata, default_namespace, &mut errors);
    let spec_path = At::ROOT.key("spec");
    let default_spec = Default::default();
    let spec = svc.spec.as_ref().unwrap_or(&default_spec);
    let selector = spec.selector.as_ref().map(|s| selector::labels(Some(s), &spec_path.key("selector"), &mut errors));

    let mut cluster_ips = Vec::new();
    let ip_texts: Vec<(FieldPath, &String)> = match &spec.cluster_ips {
        Some(list) if !list.is_empty() => list.iter().enumerate().map(|(i, ip)| (spec_path.key("clusterIPs").index(i).path(), ip)).collect(),
        _ => spec.cluster_ip.iter().map(|ip| (spec_path.key("clusterIP").path(), ip)).collect(),
    };
    for (path, text) in ip_texts {
        // "None" marks a headless Service; "" asks the API server to allocate one.
        if text.is_empty() || text == "None" {
            continue;
        }
        match parse_ip_sloppy(text) {
            Some(ip) => cluster_ips.push(ip),
            None => errors.push(path, format!("invalid IP address {text:?}: {IP_RULE}")),
        }
    }

    let mut ports = Vec::new();
    let ports_path = spec_path.key("ports");
    for (i, port) in spec.ports.iter().flatten().enumerate() {
        let path = ports_path.index(i);
        let number = names::port_number(i64::from(port.port)).map_err(|m| errors.push(path.key("port"), format!("invalid port {}: {m}", port.port)));
        let protocol = super::protocol_or_tcp(port.protocol.as_deref(), &path, &mut errors).ok_or(());
        let target = match &port.target_port {
            None => number.map(TargetPort::Number),
            Some(IntOrString::Int(n)) => names::port_number(i64::from(*n)).map(TargetPort::Number).map_err(|m| errors.push(path.key("targetPort"), format!("invalid targetPort {n}: {m}"))),
            Some(IntOrString::String(name)) => {
                errors.check(&path.key("targetPort"), "targetPort name", name, names::port_name(name));
                Ok(TargetPort::Name(name.clone()))
            }
        };
        if let (Ok(port_number), Ok(protocol), Ok(target)) = (number, protocol, target) {
            ports.push(ServicePort { name: port.name.clone(), port: port_number, protocol, target });
        }
    }
    errors.into_result(Service { namespace: id.namespace, name: id.name, selector, cluster_ips, ports, origin })
}
