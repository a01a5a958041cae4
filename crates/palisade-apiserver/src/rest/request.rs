//! What a request is about: its path (a resource, a namespace, a name, a subresource, or a
//! non-resource path such as `/version`), its query parameters and its verb.

use std::collections::BTreeMap;

use crate::error::ApiError;
use crate::resources::{self, Resource};

#[derive(Clone, Debug)]
pub enum Target {
    /// `/version`, `/api`, `/apis/apps/v1`, `/openapi/v3/...`, `/healthz`.
    NonResource(String),
    Resource {
        resource: &'static Resource,
        namespace: Option<String>,
        name: Option<String>,
        subresource: Option<String>,
        legacy_watch: bool,
    },
}

fn unknown(path: &str) -> ApiError {
    ApiError::new(404, "NotFound", format!("the server could not find the requested resource ({path})"))
}

/// Parses a request path.
pub fn parse_path(path: &str) -> Result<Target, ApiError> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').filter(|s| !s.is_empty()).collect();
    let (group, version, rest) = match segments.as_slice() {
        ["api"] | ["apis"] | ["version"] | ["healthz"] | ["livez"] | ["readyz"] => return Ok(Target::NonResource(path.to_string())),
        ["openapi", ..] => return Ok(Target::NonResource(path.to_string())),
        ["api", version] => return Ok(Target::NonResource(format!("/api/{version}"))),
        ["apis", group, version] => return Ok(Target::NonResource(format!("/apis/{group}/{version}"))),
        ["apis", _group] => return Ok(Target::NonResource(path.to_string())),
        ["api", version, rest @ ..] => ("", *version, rest),
        ["apis", group, version, rest @ ..] => (*group, *version, rest),
        _ => return Err(unknown(path)),
    };
    let (legacy_watch, rest) = match rest {
        ["watch", rest @ ..] => (true, rest),
        other => (false, other),
    };
    let lookup = |plural: &str| resources::by_plural(group, version, plural).ok_or_else(|| unknown(path));
    let namespaces_resource = group.is_empty();
    let target = |resource, namespace: Option<&str>, name: Option<&str>, sub: Option<&str>| Target::Resource {
        resource,
        namespace: namespace.map(str::to_string),
        name: name.map(str::to_string),
        subresource: sub.map(str::to_string),
        legacy_watch,
    };
    Ok(match rest {
        ["namespaces", ns, plural, tail @ ..] if !(namespaces_resource && tail.is_empty() && lookup("namespaces")?.subresource(plural).is_some()) => {
            let resource = lookup(plural)?;
            if !resource.namespaced {
                return Err(unknown(path));
            }
            match tail {
                [] => target(resource, Some(ns), None, None),
                [name] => target(resource, Some(ns), Some(name), None),
                [name, sub] => target(resource, Some(ns), Some(name), Some(sub)),
                _ => return Err(unknown(path)),
            }
        }
        [plural] => target(lookup(plural)?, None, None, None),
        [plural, name] => target(lookup(plural)?, None, Some(name), None),
        [plural, name, sub] => target(lookup(plural)?, None, Some(name), Some(sub)),
        _ => return Err(unknown(path)),
    })
}

/// Query parameters, the last value of each kept (and every `command`).
#[derive(Clone, Debug, Default)]
pub struct Query {
    values: BTreeMap<String, String>,
    pub commands: Vec<String>,
}

impl Query {
    /// Parses a query string; empty pairs (kube-rs starts with `?&`) are skipped.
    pub fn parse(query: Option<&str>) -> Self {
        let mut out = Query::default();
        for (key, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
            if key.is_empty() {
                continue;
            }
            if key == "command" {
                out.commands.push(value.to_string());
            } else {
                out.values.insert(key.to_string(), value.to_string());
            }
        }
        out
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str)
    }

    pub fn flag(&self, key: &str) -> bool {
        matches!(self.get(key), Some("true" | "1"))
    }

    pub fn number(&self, key: &str) -> Result<Option<i64>, ApiError> {
        self.get(key).filter(|v| !v.is_empty()).map(|v| v.parse().map_err(|_| ApiError::bad_request(format!("invalid {key}: {v:?} is not a number")))).transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resource(path: &str) -> (&'static str, Option<String>, Option<String>, Option<String>) {
        match parse_path(path).unwrap() {
            Target::Resource { resource, namespace, name, subresource, .. } => (resource.plural, namespace, name, subresource),
            Target::NonResource(p) => panic!("{p} is not a resource"),
        }
    }

    #[test]
    fn paths_name_resources_namespaces_names_and_subresources() {
        assert_eq!(resource("/api/v1/namespaces/x/pods"), ("pods", Some("x".into()), None, None));
        assert_eq!(resource("/api/v1/namespaces/x/pods/a/exec"), ("pods", Some("x".into()), Some("a".into()), Some("exec".into())));
        assert_eq!(resource("/api/v1/pods"), ("pods", None, None, None));
        assert_eq!(resource("/api/v1/namespaces/prod"), ("namespaces", None, Some("prod".into()), None));
        assert_eq!(resource("/api/v1/namespaces/prod/finalize"), ("namespaces", None, Some("prod".into()), Some("finalize".into())));
        assert_eq!(resource("/apis/apps/v1/namespaces/x/deployments/web/scale"), ("deployments", Some("x".into()), Some("web".into()), Some("scale".into())));
        assert_eq!(resource("/apis/rbac.authorization.k8s.io/v1/clusterroles/view"), ("clusterroles", None, Some("view".into()), None));
        assert!(matches!(parse_path("/api/v1/watch/namespaces/x/pods").unwrap(), Target::Resource { legacy_watch: true, .. }));
        assert!(matches!(parse_path("/apis/apps/v1").unwrap(), Target::NonResource(_)));
        assert_eq!(parse_path("/apis/apps/v1/widgets").unwrap_err().code, 404);
        assert_eq!(parse_path("/api/v1/namespaces/x/nodes").unwrap_err().code, 404);
    }

    #[test]
    fn queries_skip_empty_pairs_and_keep_every_command() {
        let q = Query::parse(Some("&limit=500&watch=true&command=sh&command=-c&command=echo%20hi"));
        assert_eq!(q.number("limit").unwrap(), Some(500));
        assert!(q.flag("watch"));
        assert_eq!(q.commands, vec!["sh", "-c", "echo hi"]);
    }
}
