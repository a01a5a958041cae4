//! Pods and workloads -> [`Endpoint`]. A workload's pod template is one endpoint named
//! after the workload: every replica has the same labels and ports, so one stands for all.

use std::net::IpAddr;

use k8s_openapi::api::core::v1::{Container, Pod, PodSpec, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::cidr::{IP_RULE, parse_ip_sloppy};
use super::{metadata, names, selector};
use crate::field_path::{At, Errors, FieldError, FieldPath};
use crate::objects::{ContainerPort, Endpoint, Origin, WorkloadKind};

/// A Pod. Pods that have finished (`Succeeded`/`Failed`) give `None`: they no longer own
/// their IP, so they must not count as subjects or peers (edge case 13).
pub fn pod(pod: &Pod, default_namespace: &str, origin: Origin) -> Result<Option<Endpoint>, Vec<FieldError>> {
    let mut errors = Errors::default();
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    let finished = matches!(phase, Some("Succeeded" | "Failed"));
    let id = metadata::identity(&pod.metadata, default_namespace, &mut errors);
    let metadata = At::ROOT.key("metadata");
    let labels = selector::labels(pod.metadata.labels.as_ref(), &metadata.key("labels"), &mut errors);
    let spec_path = At::ROOT.key("spec");
    let default_spec = PodSpec::default();
    let spec = pod.spec.as_ref().unwrap_or(&default_spec);
    let ports = container_ports(spec, &spec_path, &mut errors);
    let ips = pod_ips(pod, &mut errors);
    let endpoint = Endpoint {
        kind: WorkloadKind::Pod,
        namespace: id.namespace,
        name: id.name,
        labels,
        ips,
        ports,
        host_network: spec.host_network.unwrap_or(false),
        node: spec.node_name.clone().filter(|n| !n.is_empty()),
        origin,
    };
    errors.into_result((!finished).then_some(endpoint))
}

/// A workload with a pod template at `template_path` (e.g. `spec.template`).
pub fn workload(kind: WorkloadKind, meta: &ObjectMeta, template: Option<&PodTemplateSpec>, template_path: &At<'_>, default_namespace: &str, origin: Origin) -> Result<Endpoint, Vec<FieldError>> {
    let mut errors = Errors::default();
    let id = metadata::identity(meta, default_namespace, &mut errors);
    let labels_map = template.and_then(|t| t.metadata.as_ref()).and_then(|m| m.labels.as_ref());
    let template_meta = template_path.key("metadata");
    let labels = selector::labels(labels_map, &template_meta.key("labels"), &mut errors);
    let default_spec = PodSpec::default();
    let spec = template.and_then(|t| t.spec.as_ref()).unwrap_or(&default_spec);
    let ports = container_ports(spec, &template_path.key("spec"), &mut errors);
    errors.into_result(Endpoint { kind, namespace: id.namespace, name: id.name, labels, ips: Vec::new(), ports, host_network: spec.host_network.unwrap_or(false), node: None, origin })
}

/// Ports of the containers and of restartable init containers (native sidecars), which are
/// valid named-port targets too (edge case 20).
fn container_ports(spec: &PodSpec, spec_path: &At<'_>, errors: &mut Errors) -> Vec<ContainerPort> {
    let mut out = Vec::new();
    let mut collect = |containers: &[Container], field: &str, only_sidecars: bool| {
        for (i, container) in containers.iter().enumerate() {
            if only_sidecars && container.restart_policy.as_deref() != Some("Always") {
                continue;
            }
            let containers_path = spec_path.key(field);
            let container_path = containers_path.index(i);
            let ports_path = container_path.key("ports");
            for (j, port) in container.ports.iter().flatten().enumerate() {
                let path = ports_path.index(j);
                let number = names::port_number(i64::from(port.container_port)).map_err(|m| errors.push(path.key("containerPort"), format!("invalid containerPort {}: {m}", port.container_port)));
                let protocol = super::protocol_or_tcp(port.protocol.as_deref(), &path, errors).ok_or(());
                if let Some(name) = &port.name {
                    errors.check(&path.key("name"), "port name", name, names::port_name(name));
                }
                if let (Ok(number), Ok(protocol)) = (number, protocol) {
                    out.push(ContainerPort { name: port.name.clone(), number, protocol });
                }
            }
        }
    };
    collect(&spec.containers, "containers", false);
    collect(spec.init_containers.as_deref().unwrap_or_default(), "initContainers", true);
    out
}

/// `status.podIPs` (or `status.podIP`), at most one per family.
fn pod_ips(pod: &Pod, errors: &mut Errors) -> Vec<IpAddr> {
    let Some(status) = &pod.status else { return Vec::new() };
    let path = At::ROOT.key("status");
    let pod_ips_path = path.key("podIPs");
    let mut texts: Vec<(FieldPath, &str)> = status.pod_ips.iter().flatten().enumerate().map(|(i, p)| (pod_ips_path.index(i).key("ip").path(), p.ip.as_str())).collect();
    if texts.is_empty()
        && let Some(ip) = status.pod_ip.as_deref().filter(|ip| !ip.is_empty())
    {
        texts.push((path.key("podIP").path(), ip));
    }
    let mut ips: Vec<IpAddr> = Vec::new();
    for (path, text) in texts {
        match parse_ip_sloppy(text) {
            None => errors.push(path, format!("invalid IP address {text:?}: {IP_RULE}")),
            Some(ip) if ips.iter().any(|known| known.is_ipv6() == ip.is_ipv6()) => {
                errors.push(path, format!("invalid IP address {text:?}: at most one IP address per family"));
            }
            Some(ip) => ips.push(ip),
        }
    }
    ips
}
