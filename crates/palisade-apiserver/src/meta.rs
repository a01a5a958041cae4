//! Metadata the server owns (uid, creation time, generation), names, and decoding: an
//! object must deserialize into its k8s-openapi type (400 otherwise), and under
//! `fieldValidation=Strict` carry no field that type does not know.

use serde_json::Value;

use crate::error::{ApiError, Cause};
use crate::resources::Resource;

/// Now, as the API writes times: RFC 3339, UTC, whole seconds.
pub fn now() -> String {
    timestamp(jiff::Timestamp::now())
}

pub fn timestamp(at: jiff::Timestamp) -> String {
    at.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// A random (version 4) UUID.
pub fn uid() -> String {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).expect("the kernel's random source");
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}

/// Five random characters from the alphabet the apiserver uses for `generateName`.
pub fn random_suffix(len: usize) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut bytes = vec![0u8; len];
    getrandom::fill(&mut bytes).expect("the kernel's random source");
    bytes.iter().map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char).collect()
}

/// How a resource's names are checked (apiserver `ValidateObjectMeta` name functions).
fn name_problems(resource: &Resource, name: &str) -> Vec<String> {
    use palisade_model::convert::names::{dns1123_label, dns1123_subdomain};
    match resource.plural {
        "namespaces" | "services" => dns1123_label(name),
        "roles" | "rolebindings" | "clusterroles" | "clusterrolebindings" => {
            let mut problems = Vec::new();
            if name == "." || name == ".." {
                problems.push(format!("may not be '{name}'"));
            }
            if name.contains('/') || name.contains('%') {
                problems.push("may not contain '/' or '%'".to_string());
            }
            problems
        }
        _ => dns1123_subdomain(name),
    }
}

/// Checks `metadata`: name (present and well-formed), labels, annotations.
pub fn validate_metadata(resource: &Resource, object: &Value) -> Vec<Cause> {
    use palisade_model::convert::names::{label_value, qualified_name};
    let meta = &object["metadata"];
    let mut causes = Vec::new();
    match meta["name"].as_str() {
        None | Some("") => causes.push(Cause::new("FieldValueRequired", "metadata.name", "Required value: name or generateName is required")),
        Some(name) => {
            for problem in name_problems(resource, name) {
                causes.push(Cause::invalid("metadata.name", &meta["name"], &problem));
            }
        }
    }
    for (key, value) in meta["labels"].as_object().into_iter().flatten() {
        let text = value.as_str().unwrap_or_default();
        for problem in qualified_name(key).into_iter().chain(label_value(text)) {
            causes.push(Cause::invalid("metadata.labels", &Value::String(format!("{key}={text}")), &problem));
        }
    }
    for key in meta["annotations"].as_object().into_iter().flatten().map(|(k, _)| k) {
        for problem in qualified_name(&key.to_ascii_lowercase()) {
            causes.push(Cause::invalid("metadata.annotations", &Value::String(key.clone()), &problem));
        }
    }
    causes
}

macro_rules! decode_as {
    ($value:expr, $strict:expr, $ty:ty) => {{
        match palisade_model::load::kinds::typed::<$ty>($value) {
            Err(errors) => Err(errors.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; ")),
            Ok(typed) if $strict => {
                let unknown: Vec<String> = palisade_model::load::kinds::unknown_fields($value, &typed).iter().map(|e| format!("unknown field \"{}\"", e.path)).collect();
                if unknown.is_empty() { Ok(()) } else { Err(format!("strict decoding error: {}", unknown.join(", "))) }
            }
            Ok(_) => Ok(()),
        }
    }};
}

/// Decodes the object as its k8s-openapi type: a type mismatch is a 400, and so is an
/// unknown field when `strict`.
pub fn decode(resource: &Resource, object: &Value, strict: bool) -> Result<(), ApiError> {
    use k8s_openapi::api::{apps, batch, coordination, core, events, networking, rbac};
    let result = match (resource.group, resource.kind) {
        ("", "Namespace") => decode_as!(object, strict, core::v1::Namespace),
        ("", "Node") => decode_as!(object, strict, core::v1::Node),
        ("", "Pod") => decode_as!(object, strict, core::v1::Pod),
        ("", "Service") => decode_as!(object, strict, core::v1::Service),
        ("", "Endpoints") => decode_as!(object, strict, core::v1::Endpoints),
        ("", "Event") => decode_as!(object, strict, core::v1::Event),
        ("", "ServiceAccount") => decode_as!(object, strict, core::v1::ServiceAccount),
        ("", "Secret") => decode_as!(object, strict, core::v1::Secret),
        ("", "ConfigMap") => decode_as!(object, strict, core::v1::ConfigMap),
        ("apps", "Deployment") => decode_as!(object, strict, apps::v1::Deployment),
        ("apps", "ReplicaSet") => decode_as!(object, strict, apps::v1::ReplicaSet),
        ("apps", "StatefulSet") => decode_as!(object, strict, apps::v1::StatefulSet),
        ("apps", "DaemonSet") => decode_as!(object, strict, apps::v1::DaemonSet),
        ("batch", "Job") => decode_as!(object, strict, batch::v1::Job),
        ("networking.k8s.io", "NetworkPolicy") => decode_as!(object, strict, networking::v1::NetworkPolicy),
        ("events.k8s.io", "Event") => decode_as!(object, strict, events::v1::Event),
        ("coordination.k8s.io", "Lease") => decode_as!(object, strict, coordination::v1::Lease),
        ("rbac.authorization.k8s.io", "Role") => decode_as!(object, strict, rbac::v1::Role),
        ("rbac.authorization.k8s.io", "RoleBinding") => decode_as!(object, strict, rbac::v1::RoleBinding),
        ("rbac.authorization.k8s.io", "ClusterRole") => decode_as!(object, strict, rbac::v1::ClusterRole),
        ("rbac.authorization.k8s.io", "ClusterRoleBinding") => decode_as!(object, strict, rbac::v1::ClusterRoleBinding),
        _ => Ok(()),
    };
    result.map_err(|why| ApiError::bad_request(format!("{} in version \"{}\" cannot be handled as a {}: {why}", resource.kind, resource.version, resource.kind)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::by_kind;
    use serde_json::json;

    #[test]
    fn uids_and_times_have_the_apis_shape() {
        let uid = uid();
        assert_eq!(uid.len(), 36);
        assert_eq!(uid.as_bytes()[14], b'4');
        assert!(now().ends_with('Z') && now().len() == 20, "{}", now());
        assert_eq!(random_suffix(5).len(), 5);
    }

    #[test]
    fn names_labels_and_unknown_fields() {
        let ns = by_kind("v1", "Namespace").unwrap();
        assert!(validate_metadata(ns, &json!({"metadata": {"name": "prod"}})).is_empty());
        assert_eq!(validate_metadata(ns, &json!({"metadata": {"name": "Prod.x"}})).len(), 1);
        assert_eq!(validate_metadata(ns, &json!({"metadata": {}}))[0].reason, "FieldValueRequired");
        let bad_label = validate_metadata(ns, &json!({"metadata": {"name": "a", "labels": {"app": "no spaces"}}}));
        assert_eq!(bad_label[0].field, "metadata.labels");
        let np = by_kind("networking.k8s.io/v1", "NetworkPolicy").unwrap();
        let typo = json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "x"}, "spec": {"podselector": {}}});
        let error = decode(np, &typo, true).unwrap_err();
        assert_eq!(error.code, 400);
        assert!(error.message.contains("strict decoding error: unknown field \"spec.podselector\""), "{}", error.message);
        assert!(decode(np, &typo, false).is_ok());
        let pod = by_kind("v1", "Pod").unwrap();
        let wrong = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"}, "spec": {"containers": "nope"}});
        assert!(decode(pod, &wrong, false).unwrap_err().message.starts_with("Pod in version \"v1\" cannot be handled as a Pod"));
    }
}
