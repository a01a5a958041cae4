//! `metadata.name` / `metadata.namespace` of namespaced objects.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::names;
use crate::field_path::{At, Errors};

/// The validated identity of a namespaced object.
pub struct Identity {
    pub namespace: String,
    pub name: String,
}

/// Reads name and namespace; objects without a namespace land in `default_namespace`,
/// as `kubectl apply -n` would put them.
pub fn identity(meta: &ObjectMeta, default_namespace: &str, errors: &mut Errors) -> Identity {
    let path = At::ROOT.key("metadata");
    let name = meta.name.clone().unwrap_or_default();
    if name.is_empty() {
        errors.push(path.key("name"), "required value: name is required");
    } else {
        errors.check(&path.key("name"), "name", &name, names::dns1123_subdomain(&name));
    }
    let namespace = match meta.namespace.as_deref() {
        Some(ns) if !ns.is_empty() => {
            errors.check(&path.key("namespace"), "namespace", ns, names::dns1123_label(ns));
            ns.to_string()
        }
        _ => default_namespace.to_string(),
    };
    Identity { namespace, name }
}
