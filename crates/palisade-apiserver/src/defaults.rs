//! What the apiserver fills in on create and update, per kind: namespace phase and name
//! label, pod and workload defaults the lab relies on, Service cluster IPs (allocated from
//! the service CIDRs), NetworkPolicy port protocols.

use std::collections::BTreeSet;
use std::net::IpAddr;

use ipnet::IpNet;
use serde_json::{Value, json};

use crate::error::Cause;
use crate::resources::Resource;

/// The label every namespace carries (immutable, set by the apiserver).
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

fn set_default(object: &mut Value, pointer: &str, value: Value) {
    if object.pointer(pointer).is_none_or(Value::is_null) {
        let (parent, key) = pointer.rsplit_once('/').expect("a pointer with a key");
        if let Some(Value::Object(map)) = object.pointer_mut(parent) {
            map.insert(key.to_string(), value);
        }
    }
}

fn ensure_object(object: &mut Value, key: &str) {
    if !object[key].is_object() {
        object[key] = json!({});
    }
}

/// Defaults of a pod spec (in a pod or a workload's template).
fn pod_spec(spec: &mut Value, restart_policy: &str) {
    if !spec.is_object() {
        return;
    }
    set_default(spec, "/restartPolicy", json!(restart_policy));
    set_default(spec, "/dnsPolicy", json!("ClusterFirst"));
    set_default(spec, "/terminationGracePeriodSeconds", json!(30));
    set_default(spec, "/schedulerName", json!("default-scheduler"));
    for list in ["containers", "initContainers"] {
        for container in spec[list].as_array_mut().into_iter().flatten() {
            set_default(container, "/imagePullPolicy", json!("IfNotPresent"));
            set_default(container, "/terminationMessagePath", json!("/dev/termination-log"));
            for port in container["ports"].as_array_mut().into_iter().flatten() {
                set_default(port, "/protocol", json!("TCP"));
            }
        }
    }
}

/// Defaults applied on every write of an object of `resource`.
pub fn apply(resource: &Resource, object: &mut Value) {
    match (resource.group, resource.kind) {
        ("", "Namespace") => {
            let name = object["metadata"]["name"].clone();
            ensure_object(&mut object["metadata"], "labels");
            object["metadata"]["labels"][NAMESPACE_NAME_LABEL] = name;
            ensure_object(object, "spec");
            set_default(object, "/spec/finalizers", json!(["kubernetes"]));
            ensure_object(object, "status");
            set_default(object, "/status/phase", json!("Active"));
        }
        ("", "Pod") => {
            ensure_object(object, "spec");
            pod_spec(&mut object["spec"], "Always");
            set_default(object, "/spec/serviceAccountName", json!("default"));
            ensure_object(object, "status");
            set_default(object, "/status/phase", json!("Pending"));
        }
        ("apps", "Deployment" | "ReplicaSet" | "StatefulSet") => {
            ensure_object(object, "spec");
            set_default(object, "/spec/replicas", json!(1));
            set_default(object, "/spec/revisionHistoryLimit", json!(10));
            match resource.kind {
                "Deployment" => {
                    set_default(object, "/spec/progressDeadlineSeconds", json!(600));
                    set_default(object, "/spec/strategy", json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}}));
                }
                "StatefulSet" => {
                    set_default(object, "/spec/podManagementPolicy", json!("OrderedReady"));
                    set_default(object, "/spec/updateStrategy", json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}));
                }
                _ => {}
            }
            pod_spec(&mut object["spec"]["template"]["spec"], "Always");
        }
        ("apps", "DaemonSet") => {
            ensure_object(object, "spec");
            set_default(object, "/spec/revisionHistoryLimit", json!(10));
            set_default(object, "/spec/updateStrategy", json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}));
            pod_spec(&mut object["spec"]["template"]["spec"], "Always");
        }
        ("batch", "Job") => {
            ensure_object(object, "spec");
            set_default(object, "/spec/backoffLimit", json!(6));
            set_default(object, "/spec/completions", json!(1));
            set_default(object, "/spec/parallelism", json!(1));
            pod_spec(&mut object["spec"]["template"]["spec"], "Never");
        }
        ("networking.k8s.io", "NetworkPolicy") => {
            for direction in ["ingress", "egress"] {
                for rule in object["spec"][direction].as_array_mut().into_iter().flatten() {
                    for port in rule["ports"].as_array_mut().into_iter().flatten() {
                        set_default(port, "/protocol", json!("TCP"));
                    }
                }
            }
        }
        ("", "Service") => {
            ensure_object(object, "spec");
            set_default(object, "/spec/type", json!("ClusterIP"));
            set_default(object, "/spec/sessionAffinity", json!("None"));
            for port in object["spec"]["ports"].as_array_mut().into_iter().flatten() {
                set_default(port, "/protocol", json!("TCP"));
                if port.get("targetPort").is_none_or(Value::is_null) {
                    port["targetPort"] = port["port"].clone();
                }
            }
        }
        ("", "ServiceAccount" | "Secret" | "ConfigMap") | (_, _) => {}
    }
}

/// Allocates a Service's cluster IPs: keeps what `previous` had (the field is immutable),
/// takes a requested address if it is free and in range, otherwise the first free one
/// after the reserved ones (.1 for `kubernetes`, .10 for DNS). `used` are the addresses
/// other Services hold.
pub fn allocate_cluster_ips(service: &mut Value, previous: Option<&Value>, cidrs: &[IpNet], used: &BTreeSet<IpAddr>) -> Result<(), Vec<Cause>> {
    let spec = &mut service["spec"];
    if spec["clusterIP"] == "None" {
        spec["clusterIPs"] = json!(["None"]);
        return Ok(());
    }
    if let Some(kept) = previous.and_then(|p| p["spec"]["clusterIPs"].as_array()).filter(|k| !k.is_empty()) {
        spec["clusterIP"] = kept[0].clone();
        spec["clusterIPs"] = Value::Array(kept.clone());
        return Ok(());
    }
    let policy = spec["ipFamilyPolicy"].as_str().unwrap_or("SingleStack").to_string();
    spec["ipFamilyPolicy"] = json!(policy);
    if spec["ipFamilies"].as_array().is_none_or(Vec::is_empty) {
        let v6 = cidrs.iter().any(|c| matches!(c, IpNet::V6(_)));
        spec["ipFamilies"] = if policy != "SingleStack" && v6 { json!(["IPv4", "IPv6"]) } else { json!(["IPv4"]) };
    }
    let requested = match spec["clusterIP"].as_str().filter(|s| !s.is_empty()) {
        None => None,
        Some(text) => Some(text.parse::<IpAddr>().map_err(|_| vec![Cause::invalid("spec.clusterIP", &spec["clusterIP"], "must be a valid IP address")])?),
    };
    let mut taken = used.clone();
    let mut ips = Vec::new();
    for family in spec["ipFamilies"].as_array().cloned().unwrap_or_default() {
        let v6 = family == "IPv6";
        let Some(cidr) = cidrs.iter().find(|c| matches!(c, IpNet::V6(_)) == v6) else {
            return Err(vec![Cause::new("FieldValueNotSupported", "spec.ipFamilies", format!("Unsupported value: {family}: this cluster has no service range of that family"))]);
        };
        let ip = match requested.filter(|ip| ip.is_ipv6() == v6) {
            Some(ip) if !cidr.contains(&ip) => {
                return Err(vec![Cause::invalid(
                    "spec.clusterIPs",
                    &json!(ip.to_string()),
                    &format!("failed to allocate IP {ip}: the provided IP ({ip}) is not in the valid range. The range of valid IPs is {cidr}"),
                )]);
            }
            Some(ip) if taken.contains(&ip) => {
                return Err(vec![Cause::invalid("spec.clusterIPs", &json!(ip.to_string()), &format!("failed to allocate IP {ip}: provided IP is already allocated"))]);
            }
            Some(ip) => ip,
            None => addresses_after_reserved(cidr).find(|ip| !taken.contains(ip)).ok_or_else(|| vec![Cause::invalid("spec.clusterIPs", &Value::Null, "the service range is exhausted")])?,
        };
        taken.insert(ip);
        ips.push(json!(ip.to_string()));
    }
    spec["clusterIP"] = ips.first().cloned().unwrap_or(Value::Null);
    spec["clusterIPs"] = Value::Array(ips);
    Ok(())
}

/// The addresses of a service CIDR from the eleventh on (the first ten are reserved: .1 for
/// the `kubernetes` Service, .10 for DNS, as kubeadm assigns them).
fn addresses_after_reserved(cidr: &IpNet) -> impl Iterator<Item = IpAddr> + '_ {
    let base = match cidr.network() {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    };
    let size = 1u128 << (u32::from(cidr.max_prefix_len() - cidr.prefix_len())).min(64);
    (11..size.saturating_sub(1)).map(move |i| match cidr {
        IpNet::V4(_) => IpAddr::V4(std::net::Ipv4Addr::from((base + i) as u32)),
        IpNet::V6(_) => IpAddr::V6(std::net::Ipv6Addr::from(base + i)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::by_kind;

    #[test]
    fn namespaces_and_policies_get_their_defaults() {
        let mut ns = json!({"metadata": {"name": "prod"}});
        apply(by_kind("v1", "Namespace").unwrap(), &mut ns);
        assert_eq!(ns["metadata"]["labels"][NAMESPACE_NAME_LABEL], "prod");
        assert_eq!(ns["status"]["phase"], "Active");
        let mut np = json!({"spec": {"ingress": [{"ports": [{"port": 80}, {"port": 53, "protocol": "UDP"}]}]}});
        apply(by_kind("networking.k8s.io/v1", "NetworkPolicy").unwrap(), &mut np);
        assert_eq!(np["spec"]["ingress"][0]["ports"], json!([{"port": 80, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}]));
    }

    #[test]
    fn cluster_ips_are_allocated_kept_and_checked() {
        let cidrs: Vec<IpNet> = vec!["10.96.0.0/16".parse().unwrap(), "fd00:10:96::/112".parse().unwrap()];
        let mut used = BTreeSet::new();
        let mut svc = json!({"spec": {"ports": [{"port": 80}]}});
        allocate_cluster_ips(&mut svc, None, &cidrs, &used).unwrap();
        assert_eq!(svc["spec"]["clusterIP"], "10.96.0.11");
        used.insert("10.96.0.11".parse().unwrap());
        let mut dual = json!({"spec": {"ipFamilyPolicy": "PreferDualStack"}});
        allocate_cluster_ips(&mut dual, None, &cidrs, &used).unwrap();
        assert_eq!(dual["spec"]["clusterIPs"], json!(["10.96.0.12", "fd00:10:96::b"]));
        let mut taken = json!({"spec": {"clusterIP": "10.96.0.11"}});
        assert!(allocate_cluster_ips(&mut taken, None, &cidrs, &used).unwrap_err()[0].message.contains("already allocated"));
        let mut outside = json!({"spec": {"clusterIP": "192.0.2.1"}});
        assert!(allocate_cluster_ips(&mut outside, None, &cidrs, &used).is_err());
        let mut again = json!({"spec": {}});
        allocate_cluster_ips(&mut again, Some(&svc), &cidrs, &used).unwrap();
        assert_eq!(again["spec"]["clusterIP"], "10.96.0.11", "kept across updates");
    }
}
