//! Errors as the API reports them: a `Status` object with an HTTP code, a reason, a message
//! and, for invalid objects, one cause per field.

use serde_json::{Value, json};

use crate::resources::Resource;

/// One problem with a field of an object (`details.causes[]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cause {
    /// `FieldValueRequired`, `FieldValueInvalid`, `FieldValueNotSupported`, ...
    pub reason: String,
    pub message: String,
    pub field: String,
}

/// An API error; renders as a `Status`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    /// `details`: the object's name, its group and plural resource, field causes.
    pub name: Option<String>,
    pub group: Option<String>,
    pub kind: Option<String>,
    pub causes: Vec<Cause>,
}

impl ApiError {
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        Self { code, reason, message: message.into(), name: None, group: None, kind: None, causes: Vec::new() }
    }

    fn about(mut self, resource: &Resource, name: &str) -> Self {
        self.name = Some(name.to_string());
        self.group = Some(resource.group.to_string());
        self.kind = Some(resource.plural.to_string());
        self
    }

    pub fn not_found(resource: &Resource, name: &str) -> Self {
        Self::new(404, "NotFound", format!("{} \"{name}\" not found", resource.qualified())).about(resource, name)
    }

    pub fn already_exists(resource: &Resource, name: &str) -> Self {
        Self::new(409, "AlreadyExists", format!("{} \"{name}\" already exists", resource.qualified())).about(resource, name)
    }

    pub fn conflict(resource: &Resource, name: &str) -> Self {
        Self::new(
            409,
            "Conflict",
            format!("Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again", resource.qualified()),
        )
        .about(resource, name)
    }

    /// 422 with one cause per field problem.
    pub fn invalid(resource: &Resource, name: &str, causes: Vec<Cause>) -> Self {
        let detail: Vec<String> = causes.iter().map(|c| if c.field.is_empty() { c.message.clone() } else { format!("{}: {}", c.field, c.message) }).collect();
        let summary = match detail.as_slice() {
            [one] => one.clone(),
            many => format!("[{}]", many.join(", ")),
        };
        let mut error = Self::new(422, "Invalid", format!("{} \"{name}\" is invalid: {summary}", resource.qualified_kind())).about(resource, name);
        // Invalid names the kind, not the resource (apimachinery's NewInvalid).
        error.kind = Some(resource.kind.to_string());
        error.causes = causes;
        error
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(403, "Forbidden", message)
    }

    pub fn unauthorized() -> Self {
        Self::new(401, "Unauthorized", "Unauthorized")
    }

    pub fn method_not_allowed(message: impl Into<String>) -> Self {
        Self::new(405, "MethodNotAllowed", message)
    }

    pub fn unsupported_media_type(message: impl Into<String>) -> Self {
        Self::new(415, "UnsupportedMediaType", message)
    }

    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(413, "RequestEntityTooLarge", message)
    }

    /// 410: a resource version older than the server keeps (clients re-list).
    pub fn gone(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "InternalError", message)
    }

    /// The `Status` object.
    pub fn status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if self.name.is_some() || !self.causes.is_empty() {
            let mut details = json!({});
            if let Some(name) = &self.name {
                details["name"] = json!(name);
            }
            if let Some(group) = &self.group {
                details["group"] = json!(group);
            }
            if let Some(kind) = &self.kind {
                details["kind"] = json!(kind);
            }
            if !self.causes.is_empty() {
                details["causes"] = self.causes.iter().map(|c| json!({"reason": c.reason, "message": c.message, "field": c.field})).collect();
            }
            status["details"] = details;
        }
        status
    }
}

impl Cause {
    pub fn new(reason: &str, field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { reason: reason.to_string(), message: message.into(), field: field.into() }
    }

    pub fn required(field: impl Into<String>) -> Self {
        Self::new("FieldValueRequired", field, "Required value")
    }

    pub fn invalid(field: impl Into<String>, value: &Value, why: &str) -> Self {
        let shown = match value {
            Value::String(s) => format!("\"{s}\""),
            other => other.to_string(),
        };
        Self::new("FieldValueInvalid", field, format!("Invalid value: {shown}: {why}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::by_kind;

    #[test]
    fn statuses_read_like_the_apiservers() {
        let deploy = by_kind("apps/v1", "Deployment").unwrap();
        let status = ApiError::not_found(deploy, "web").status();
        assert_eq!(status["message"], "deployments.apps \"web\" not found");
        assert_eq!(status["details"]["kind"], "deployments");
        assert_eq!(status["code"], 404);
        let invalid = ApiError::invalid(deploy, "web", vec![Cause::required("spec.selector")]);
        assert_eq!(invalid.message, "Deployment.apps \"web\" is invalid: spec.selector: Required value");
        assert_eq!(invalid.status()["details"]["causes"][0]["reason"], "FieldValueRequired");
    }
}
