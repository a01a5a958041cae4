//! The kinds Palisade reads, their API versions, and typed conversion of one object.

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{Namespace, Pod, ReplicationController, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::convert;
use crate::field_path::{At, FieldError, FieldPath};
use crate::objects::{self, Origin, WorkloadKind};

/// A converted object, ready for the cluster builder.
pub enum Object {
    Namespace(objects::Namespace),
    Endpoint(objects::Endpoint),
    /// A pod that has finished: it owns no address any more and is left out.
    FinishedPod,
    Service(objects::Service),
    Policy(objects::Policy),
    ClusterPolicy(crate::cluster_policy::ClusterPolicy),
    Node(crate::cluster_policy::Node),
}

/// Whether `api_version` is one Palisade reads `kind` in (`None`: a kind it does not read;
/// `Some(Err(versions))`: the versions it reads).
pub fn api_version_supported(kind: &str, api_version: &str) -> Option<Result<(), String>> {
    if kind == "ClusterNetworkPolicy" {
        let versions = convert::CLUSTER_POLICY_API_VERSIONS;
        return Some(if versions.contains(&api_version) { Ok(()) } else { Err(versions.map(|v| format!("{v:?}")).join(" or ")) });
    }
    let expected = supported_api_version(kind)?;
    Some(if api_version == expected { Ok(()) } else { Err(format!("{expected:?}")) })
}

/// Kinds without a namespace.
pub fn cluster_scoped(kind: &str) -> bool {
    matches!(kind, "Namespace" | "Node" | "ClusterNetworkPolicy")
}

/// The API version each supported kind must have.
pub fn supported_api_version(kind: &str) -> Option<&'static str> {
    Some(match kind {
        "Namespace" | "Pod" | "Service" | "ReplicationController" | "Node" => "v1",
        "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet" => "apps/v1",
        "Job" | "CronJob" => "batch/v1",
        "NetworkPolicy" => "networking.k8s.io/v1",
        _ => return None,
    })
}

/// Deserializes into the k8s-openapi type, reporting the failing field path. The path is
/// tracked only when deserialization fails (tracking it costs as much as deserializing).
pub fn typed<T: DeserializeOwned>(value: &Value) -> Result<T, Vec<FieldError>> {
    if let Ok(typed) = T::deserialize(value) {
        return Ok(typed);
    }
    serde_path_to_error::deserialize(value).map_err(|error| {
        let mut path = FieldPath::root();
        for segment in error.path().iter() {
            path = match segment {
                serde_path_to_error::Segment::Seq { index } => path.index(*index),
                serde_path_to_error::Segment::Map { key } => path.key(key),
                serde_path_to_error::Segment::Enum { variant } => path.key(variant),
                serde_path_to_error::Segment::Unknown => path,
            };
        }
        vec![FieldError::new(path, error.inner().to_string())]
    })
}

/// Fields of `input` the typed object does not have, found by a serialization round trip
/// (k8s-openapi ignores unknown fields; kubectl's strict validation rejects them, and a
/// typo such as `podselector` would otherwise silently select every pod).
pub fn unknown_fields<T: Serialize>(input: &Value, typed: &T) -> Vec<FieldError> {
    let Ok(known) = serde_json::to_value(typed) else { return Vec::new() };
    let mut errors = Vec::new();
    compare(input, &known, &At::ROOT, &mut errors);
    errors
}

fn compare(input: &Value, known: &Value, path: &At<'_>, errors: &mut Vec<FieldError>) {
    match (input, known) {
        (Value::Object(input), Value::Object(known)) => {
            for (key, value) in input {
                match known.get(key) {
                    Some(known_value) => compare(value, known_value, &path.key(key), errors),
                    None if value.is_null() => {}
                    None => errors.push(FieldError::unknown_field(path.key(key).path())),
                }
            }
        }
        (Value::Array(input), Value::Array(known)) => {
            for (i, (a, b)) in input.iter().zip(known).enumerate() {
                compare(a, b, &path.index(i), errors);
            }
        }
        _ => {}
    }
}

/// Converts one object of a supported kind.
pub fn convert(kind: &str, value: &Value, default_namespace: &str, origin: Origin) -> Result<Object, Vec<FieldError>> {
    let spec_path = At::ROOT.key("spec");
    let template = spec_path.key("template");
    let workload = |kind, meta, tpl| convert::workload(kind, meta, tpl, &template, default_namespace, origin.clone());
    Ok(match kind {
        "Namespace" => Object::Namespace(convert::namespace(&typed::<Namespace>(value)?, origin)?),
        "Pod" => match convert::pod(&typed::<Pod>(value)?, default_namespace, origin)? {
            Some(endpoint) => Object::Endpoint(endpoint),
            None => Object::FinishedPod,
        },
        "Service" => Object::Service(convert::service(&typed::<Service>(value)?, default_namespace, origin)?),
        "ClusterNetworkPolicy" => Object::ClusterPolicy(convert::cluster_policy(value, origin)?),
        "Node" => Object::Node(convert::node(&typed::<k8s_openapi::api::core::v1::Node>(value)?, origin)),
        "NetworkPolicy" => {
            let np = typed::<NetworkPolicy>(value)?;
            let unknown = unknown_fields(value, &np);
            let policy = convert::network_policy(&np, default_namespace, origin);
            return match (policy, unknown.is_empty()) {
                (Ok(policy), true) => Ok(Object::Policy(policy)),
                (Ok(_), false) => Err(unknown),
                (Err(mut errors), _) => {
                    errors.extend(unknown);
                    Err(errors)
                }
            };
        }
        "Deployment" => {
            let d = typed::<Deployment>(value)?;
            let spec = d.spec.unwrap_or_default();
            Object::Endpoint(workload(WorkloadKind::Deployment, &d.metadata, Some(&spec.template))?)
        }
        "ReplicaSet" => {
            let r = typed::<ReplicaSet>(value)?;
            let spec = r.spec.unwrap_or_default();
            Object::Endpoint(workload(WorkloadKind::ReplicaSet, &r.metadata, spec.template.as_ref())?)
        }
        "StatefulSet" => {
            let s = typed::<StatefulSet>(value)?;
            let spec = s.spec.unwrap_or_default();
            Object::Endpoint(workload(WorkloadKind::StatefulSet, &s.metadata, Some(&spec.template))?)
        }
        "DaemonSet" => {
            let d = typed::<DaemonSet>(value)?;
            let spec = d.spec.unwrap_or_default();
            Object::Endpoint(workload(WorkloadKind::DaemonSet, &d.metadata, Some(&spec.template))?)
        }
        "Job" => {
            let j = typed::<Job>(value)?;
            let spec = j.spec.unwrap_or_default();
            Object::Endpoint(workload(WorkloadKind::Job, &j.metadata, Some(&spec.template))?)
        }
        "CronJob" => {
            let c = typed::<CronJob>(value)?;
            let spec = c.spec.unwrap_or_default();
            let job_spec = spec.job_template.spec.unwrap_or_default();
            let job_template = spec_path.key("jobTemplate");
            let job_spec_path = job_template.key("spec");
            let path = job_spec_path.key("template");
            let (meta, template) = (&c.metadata, Some(&job_spec.template));
            Object::Endpoint(convert::workload(WorkloadKind::CronJob, meta, template, &path, default_namespace, origin)?)
        }
        "ReplicationController" => {
            let r = typed::<ReplicationController>(value)?;
            let spec = r.spec.unwrap_or_default();
            Object::Endpoint(workload(WorkloadKind::ReplicationController, &r.metadata, spec.template.as_ref())?)
        }
        other => unreachable!("convert called for unsupported kind {other}"),
    })
}
