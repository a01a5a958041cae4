//! Name, label and port syntax rules, with the messages kube-apiserver gives
//! (k8s.io/apimachinery/pkg/util/validation).

const QUALIFIED_NAME_MAX: usize = 63;
const LABEL_VALUE_MAX: usize = 63;
const DNS1123_SUBDOMAIN_MAX: usize = 253;
const DNS1123_LABEL_MAX: usize = 63;
const PORT_NAME_MAX: usize = 15;

const QUALIFIED_NAME_RULE: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName', 'my.name', or '123-abc')";
const LABEL_VALUE_RULE: &str = "a valid label value must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue', 'my_value', or '12345')";
const DNS1123_SUBDOMAIN_RULE: &str =
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com')";
const DNS1123_LABEL_RULE: &str =
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name', or '123-abc')";

/// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`, the shape of label names and values.
fn is_label_shaped(s: &str) -> bool {
    let bytes = s.as_bytes();
    let (Some(first), Some(last)) = (bytes.first(), bytes.last()) else { return false };
    first.is_ascii_alphanumeric() && last.is_ascii_alphanumeric() && bytes.iter().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

fn is_dns1123_label_shaped(s: &str) -> bool {
    let bytes = s.as_bytes();
    let (Some(first), Some(last)) = (bytes.first(), bytes.last()) else { return false };
    let ok = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    ok(first) && ok(last) && bytes.iter().all(|b| ok(b) || *b == b'-')
}

/// Label keys and selector keys: an optional DNS subdomain prefix and `/`, then a name.
pub fn qualified_name(value: &str) -> Vec<String> {
    let mut errors = Vec::new();
    let parts: Vec<&str> = value.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                errors.push("prefix part must be non-empty".to_string());
            } else {
                errors.extend(dns1123_subdomain(prefix).into_iter().map(|e| format!("prefix part {e}")));
            }
            *name
        }
        _ => {
            errors.push(format!("a qualified name {QUALIFIED_NAME_RULE}, with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"));
            return errors;
        }
    };
    if name.is_empty() {
        errors.push("name part must be non-empty".to_string());
    } else if name.len() > QUALIFIED_NAME_MAX {
        errors.push(format!("name part must be no more than {QUALIFIED_NAME_MAX} characters"));
    } else if !is_label_shaped(name) {
        errors.push(format!("name part {QUALIFIED_NAME_RULE}"));
    }
    errors
}

pub fn label_value(value: &str) -> Vec<String> {
    let mut errors = Vec::new();
    if value.len() > LABEL_VALUE_MAX {
        errors.push(format!("must be no more than {LABEL_VALUE_MAX} characters"));
    }
    if !value.is_empty() && !is_label_shaped(value) {
        errors.push(LABEL_VALUE_RULE.to_string());
    }
    errors
}

pub fn dns1123_subdomain(value: &str) -> Vec<String> {
    let mut errors = Vec::new();
    if value.len() > DNS1123_SUBDOMAIN_MAX {
        errors.push(format!("must be no more than {DNS1123_SUBDOMAIN_MAX} characters"));
    }
    if value.is_empty() || !value.split('.').all(is_dns1123_label_shaped) {
        errors.push(DNS1123_SUBDOMAIN_RULE.to_string());
    }
    errors
}

pub fn dns1123_label(value: &str) -> Vec<String> {
    let mut errors = Vec::new();
    if value.len() > DNS1123_LABEL_MAX {
        errors.push(format!("must be no more than {DNS1123_LABEL_MAX} characters"));
    }
    if !is_dns1123_label_shaped(value) {
        errors.push(DNS1123_LABEL_RULE.to_string());
    }
    errors
}

/// IANA_SVC_NAME (RFC 6335), the syntax of named ports.
pub fn port_name(value: &str) -> Vec<String> {
    let mut errors = Vec::new();
    if value.len() > PORT_NAME_MAX {
        errors.push(format!("must be no more than {PORT_NAME_MAX} characters"));
    }
    if !value.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') {
        errors.push("must contain only lower-case alphanumeric characters (a-z, 0-9) and hyphens (-)".to_string());
    }
    if !value.bytes().any(|b| b.is_ascii_lowercase()) {
        errors.push("must contain at least one letter (a-z)".to_string());
    }
    if value.contains("--") {
        errors.push("must not contain consecutive hyphens".to_string());
    }
    if value.starts_with('-') || value.ends_with('-') {
        errors.push("must not begin or end with a hyphen".to_string());
    }
    errors
}

/// A port number must fit in 1..=65535.
pub fn port_number(value: i64) -> Result<u16, String> {
    match u16::try_from(value) {
        Ok(port) if port >= 1 => Ok(port),
        _ => Err("must be between 1 and 65535, inclusive".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qualified_names() {
        assert!(qualified_name("app").is_empty());
        assert!(qualified_name("kubernetes.io/metadata.name").is_empty());
        assert!(qualified_name("A_b.c-D").is_empty());
        assert!(qualified_name("-app")[0].starts_with("name part must consist"));
        assert!(qualified_name("Example.com/app")[0].starts_with("prefix part a lowercase RFC 1123"));
        assert_eq!(qualified_name("/app"), vec!["prefix part must be non-empty"]);
        assert_eq!(qualified_name("example.com/"), vec!["name part must be non-empty"]);
        assert!(qualified_name("a/b/c")[0].starts_with("a qualified name"));
        assert_eq!(qualified_name(&"a".repeat(64)), vec!["name part must be no more than 63 characters"]);
    }

    #[test]
    fn label_values() {
        assert!(label_value("").is_empty());
        assert!(label_value("v1.2_3-x").is_empty());
        assert!(label_value("bad value")[0].starts_with("a valid label value"));
        assert_eq!(label_value(&"a".repeat(64)), vec!["must be no more than 63 characters"]);
    }

    #[test]
    fn port_names_follow_iana_svc_name() {
        assert!(port_name("serve-80-tcp").is_empty());
        assert!(port_name("http").is_empty());
        assert_eq!(port_name("80"), vec!["must contain at least one letter (a-z)"]);
        assert_eq!(port_name("a--b"), vec!["must not contain consecutive hyphens"]);
        assert_eq!(port_name("-ab"), vec!["must not begin or end with a hyphen"]);
        assert_eq!(port_name("abcdefghijklmnop"), vec!["must be no more than 15 characters"]);
        assert_eq!(port_name("HTTP")[0], "must contain only lower-case alphanumeric characters (a-z, 0-9) and hyphens (-)");
    }

    #[test]
    fn port_numbers() {
        assert_eq!(port_number(1), Ok(1));
        assert_eq!(port_number(65535), Ok(65535));
        assert!(port_number(0).is_err());
        assert!(port_number(65536).is_err());
        assert!(port_number(-1).is_err());
    }

    #[test]
    fn dns_names() {
        assert!(dns1123_subdomain("default-deny.ingress").is_empty());
        assert!(!dns1123_subdomain("Deny").is_empty());
        assert!(dns1123_label("production").is_empty());
        assert!(!dns1123_label("prod.uction").is_empty());
    }
}
