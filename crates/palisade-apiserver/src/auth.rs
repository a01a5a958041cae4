//! Who a request is (bearer tokens: the admin's, and ServiceAccount tokens issued by
//! TokenRequest) and whether RBAC lets them (Roles, ClusterRoles and their bindings,
//! evaluated as the apiserver's RBAC authorizer does: allow-only rules, `system:masters`
//! bypasses).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::api::Api;
use crate::resources;
use crate::selectors::{FieldSelector, LabelSelector};

/// An authenticated identity.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub name: String,
    pub groups: Vec<String>,
    /// For ServiceAccounts: the account's uid (a token outlives no account).
    #[serde(default)]
    pub account_uid: Option<String>,
    /// Seconds since the epoch after which the token is refused.
    #[serde(default)]
    pub expires: Option<i64>,
}

impl User {
    pub fn admin() -> Self {
        Self { name: "kubernetes-admin".into(), groups: vec!["system:masters".into(), "system:authenticated".into()], account_uid: None, expires: None }
    }

    pub fn service_account(namespace: &str, name: &str, uid: &str, expires: Option<i64>) -> Self {
        Self {
            name: format!("system:serviceaccount:{namespace}:{name}"),
            groups: vec!["system:serviceaccounts".into(), format!("system:serviceaccounts:{namespace}"), "system:authenticated".into()],
            account_uid: Some(uid.to_string()),
            expires,
        }
    }

    /// `(namespace, name)` of a ServiceAccount user.
    fn account(&self) -> Option<(&str, &str)> {
        let rest = self.name.strip_prefix("system:serviceaccount:")?;
        rest.split_once(':')
    }
}

fn token_record(token: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("token/{hex}")
}

/// A new random token.
pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the kernel's random source");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Remembers a token as `user`'s (only its hash is stored).
pub fn issue(api: &Api, token: &str, user: &User) -> Result<(), crate::store::StoreError> {
    api.store.set_record(&token_record(token), Some(&serde_json::to_vec(user).expect("users serialize")))
}

/// A token for a ServiceAccount, valid `seconds` (what TokenRequest does, for in-process
/// callers: the lab's kubelet mounts one into each pod).
pub fn issue_for_account(api: &Api, namespace: &str, account: &str, seconds: i64) -> Result<String, crate::error::ApiError> {
    let accounts = resources::by_kind("v1", "ServiceAccount").expect("served");
    let object = api.get(accounts, namespace, account)?;
    let token = new_token();
    let expires = jiff::Timestamp::now().as_second() + seconds;
    issue(api, &token, &User::service_account(namespace, account, &object.index.uid, Some(expires)))?;
    Ok(token)
}

/// The user a bearer token belongs to, if it is valid: known, not expired, and for a
/// ServiceAccount, the account still exists with the uid it had.
pub fn authenticate(api: &Api, token: &str) -> Option<User> {
    let record = api.store.record(&token_record(token)).ok()??;
    let user: User = serde_json::from_slice(&record).ok()?;
    if user.expires.is_some_and(|at| at < jiff::Timestamp::now().as_second()) {
        return None;
    }
    if let (Some((namespace, name)), Some(uid)) = (user.account(), &user.account_uid) {
        let accounts = resources::by_kind("v1", "ServiceAccount")?;
        let account = api.store.get(&accounts.key(namespace, name))?;
        if account.index.uid != *uid {
            return None;
        }
    }
    Some(user)
}

/// What a request wants to do.
#[derive(Clone, Debug, Default)]
pub struct Attributes {
    pub verb: String,
    pub group: String,
    pub resource: String,
    pub subresource: String,
    pub namespace: String,
    pub name: String,
    /// For non-resource requests (discovery, OpenAPI, health).
    pub path: Option<String>,
}

impl Attributes {
    /// The apiserver's Forbidden message.
    pub fn forbidden_message(&self, user: &User) -> String {
        let resource = if self.subresource.is_empty() { self.resource.clone() } else { format!("{}/{}", self.resource, self.subresource) };
        let subject = if self.name.is_empty() { resource.clone() } else { format!("{resource} \"{}\"", self.name) };
        let scope = if self.namespace.is_empty() { "at the cluster scope".to_string() } else { format!("in the namespace \"{}\"", self.namespace) };
        format!("{subject} is forbidden: User \"{}\" cannot {} resource \"{resource}\" in API group \"{}\" {scope}", user.name, self.verb, self.group)
    }
}

fn strings(v: &Value) -> Vec<&str> {
    v.as_array().into_iter().flatten().filter_map(Value::as_str).collect()
}

fn rule_allows(rule: &Value, attributes: &Attributes) -> bool {
    let verbs = strings(&rule["verbs"]);
    if !verbs.iter().any(|v| *v == "*" || *v == attributes.verb) {
        return false;
    }
    if let Some(path) = &attributes.path {
        return strings(&rule["nonResourceURLs"]).iter().any(|u| *u == path || u.strip_suffix('*').is_some_and(|prefix| path.starts_with(prefix)));
    }
    let groups = strings(&rule["apiGroups"]);
    if !groups.iter().any(|g| *g == "*" || *g == attributes.group) {
        return false;
    }
    let wanted = if attributes.subresource.is_empty() { attributes.resource.clone() } else { format!("{}/{}", attributes.resource, attributes.subresource) };
    let resources = strings(&rule["resources"]);
    let resource_ok = resources
        .iter()
        .any(|r| *r == "*" || *r == wanted || (attributes.subresource.is_empty() && *r == attributes.resource) || r.strip_prefix("*/").is_some_and(|sub| sub == attributes.subresource));
    if !resource_ok {
        return false;
    }
    let names = strings(&rule["resourceNames"]);
    names.is_empty() || (!attributes.name.is_empty() && names.contains(&attributes.name.as_str()))
}

fn subject_matches(subject: &Value, user: &User, binding_namespace: &str) -> bool {
    let name = subject["name"].as_str().unwrap_or_default();
    match subject["kind"].as_str().unwrap_or_default() {
        "User" => name == user.name,
        "Group" => user.groups.iter().any(|g| g == name),
        "ServiceAccount" => {
            let namespace = subject["namespace"].as_str().filter(|n| !n.is_empty()).unwrap_or(binding_namespace);
            user.name == format!("system:serviceaccount:{namespace}:{name}")
        }
        _ => false,
    }
}

/// Paths every authenticated user may read (the `system:discovery` and
/// `system:public-info-viewer` roles).
fn public_path(path: &str) -> bool {
    matches!(path, "/api" | "/apis" | "/version" | "/healthz" | "/livez" | "/readyz" | "/openapi/v2") || path.starts_with("/api/") || path.starts_with("/apis/") || path.starts_with("/openapi/")
}

/// Whether RBAC allows the request.
pub fn authorize(api: &Api, user: &User, attributes: &Attributes) -> bool {
    if user.groups.iter().any(|g| g == "system:masters") {
        return true;
    }
    if attributes.path.as_deref().is_some_and(public_path) && attributes.verb == "get" {
        return true;
    }
    let by_kind = |kind: &str| resources::by_kind("rbac.authorization.k8s.io/v1", kind).expect("served");
    let (all, none) = (LabelSelector::default(), FieldSelector::default());
    let role_rules = |kind: &str, namespace: &str, name: &str| -> Vec<Value> {
        let resource = by_kind(kind);
        api.store.get(&resource.key(namespace, name)).map(|r| r.value()["rules"].as_array().cloned().unwrap_or_default()).unwrap_or_default()
    };
    let (cluster_bindings, _) = api.store.list(by_kind("ClusterRoleBinding"), None, &all, &none);
    for binding in cluster_bindings {
        let binding = binding.value();
        if binding["subjects"].as_array().into_iter().flatten().any(|s| subject_matches(s, user, ""))
            && role_rules("ClusterRole", "", binding["roleRef"]["name"].as_str().unwrap_or_default()).iter().any(|r| rule_allows(r, attributes))
        {
            return true;
        }
    }
    if attributes.namespace.is_empty() {
        return false;
    }
    let (bindings, _) = api.store.list(by_kind("RoleBinding"), Some(&attributes.namespace), &all, &none);
    for binding in bindings {
        let binding = binding.value();
        if !binding["subjects"].as_array().into_iter().flatten().any(|s| subject_matches(s, user, &attributes.namespace)) {
            continue;
        }
        let role = binding["roleRef"]["name"].as_str().unwrap_or_default();
        let rules = match binding["roleRef"]["kind"].as_str() {
            Some("ClusterRole") => role_rules("ClusterRole", "", role),
            _ => role_rules("Role", &attributes.namespace, role),
        };
        if rules.iter().any(|r| rule_allows(r, attributes)) {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn attrs(verb: &str, resource: &str, subresource: &str, name: &str) -> Attributes {
        Attributes { verb: verb.into(), group: String::new(), resource: resource.into(), subresource: subresource.into(), namespace: "x".into(), name: name.into(), path: None }
    }

    #[test]
    fn rules_match_verbs_resources_subresources_and_names() {
        let rule = json!({"apiGroups": [""], "resources": ["pods", "pods/log"], "verbs": ["get", "list", "watch"]});
        assert!(rule_allows(&rule, &attrs("list", "pods", "", "")));
        assert!(rule_allows(&rule, &attrs("get", "pods", "log", "a")));
        assert!(!rule_allows(&rule, &attrs("create", "pods", "", "")));
        assert!(!rule_allows(&rule, &attrs("get", "pods", "exec", "a")));
        let named = json!({"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"], "resourceNames": ["a"]});
        assert!(rule_allows(&named, &attrs("get", "pods", "", "a")));
        assert!(!rule_allows(&named, &attrs("list", "pods", "", "")), "resourceNames never match a list");
    }

    #[test]
    fn forbidden_messages_read_like_the_apiservers() {
        let user = User::service_account("x", "agent", "u", None);
        assert_eq!(
            attrs("create", "pods", "", "").forbidden_message(&user),
            "pods is forbidden: User \"system:serviceaccount:x:agent\" cannot create resource \"pods\" in API group \"\" in the namespace \"x\""
        );
        let mut cluster = attrs("get", "nodes", "", "n1");
        cluster.namespace.clear();
        assert!(cluster.forbidden_message(&user).ends_with("at the cluster scope"));
        assert!(subject_matches(&json!({"kind": "ServiceAccount", "name": "agent"}), &user, "x"));
        assert!(subject_matches(&json!({"kind": "Group", "name": "system:serviceaccounts:x"}), &user, "y"));
    }
}
