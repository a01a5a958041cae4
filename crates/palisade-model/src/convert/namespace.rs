//! v1 Namespace -> [`Namespace`], with the immutable name label the API server sets.

use k8s_openapi::api::core::v1::Namespace as K8sNamespace;

use super::{names, selector};
use crate::field_path::{At, Errors, FieldError};
use crate::objects::{NAMESPACE_NAME_LABEL, Namespace, Origin};

pub fn namespace(ns: &K8sNamespace, origin: Origin) -> Result<Namespace, Vec<FieldError>> {
    let mut errors = Errors::default();
    let name = ns.metadata.name.clone().unwrap_or_default();
    let metadata = At::ROOT.key("metadata");
    let name_path = metadata.key("name");
    if name.is_empty() {
        errors.push(name_path, "required value: name is required");
    } else {
        errors.check(&name_path, "namespace name", &name, names::dns1123_label(&name));
    }
    let mut labels = selector::labels(ns.metadata.labels.as_ref(), &metadata.key("labels"), &mut errors);
    // The API server overwrites whatever the manifest says for this label.
    labels.insert(NAMESPACE_NAME_LABEL.to_string(), name.clone());
    errors.into_result(Namespace { name, labels, declared: true, origin })
}
