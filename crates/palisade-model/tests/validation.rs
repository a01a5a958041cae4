//! One bad input per validation rule, asserting the whole message: position, object, field
//! path, what is wrong and what is allowed. Mirrors kube-apiserver's ValidateNetworkPolicy
//! and ValidateLabelSelector.

use std::path::Path;

use palisade_model::{LoadOptions, Loader};

/// Every diagnostic for one input file named `policy.yaml`.
fn errors(text: &str) -> Vec<String> {
    errors_in("policy.yaml", text)
}

fn errors_of_json(text: &str) -> Vec<String> {
    errors_in("policy.json", text)
}

fn errors_in(file: &str, text: &str) -> Vec<String> {
    let mut loader = Loader::new(LoadOptions::default());
    loader.add_text(Some(Path::new(file)), text, None);
    match loader.finish() {
        Ok(_) => Vec::new(),
        Err(error) => error.0.iter().map(|d| d.to_string()).collect(),
    }
}

/// A policy `production/p` whose spec is `spec` (indented two spaces below `spec:`).
/// The spec's first line is line 7.
fn policy(spec: &str) -> String {
    let body: String = spec.lines().map(|l| format!("  {l}\n")).collect();
    format!("apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: p\n  namespace: production\nspec:\n{body}")
}

/// The single error of a policy spec, without its `policy.yaml:L:C: NetworkPolicy production/p: ` prefix.
fn policy_error(spec: &str) -> String {
    let errors = errors(&policy(spec));
    assert_eq!(errors.len(), 1, "expected exactly one error, got {errors:#?}");
    let (_, rest) = errors[0].split_once(": NetworkPolicy production/p: ").expect("object named");
    rest.to_string()
}

#[test]
fn invalid_cidr_has_the_documented_message() {
    let text = "apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: default-deny-ingress
  namespace: production
spec:
  ingress:
  - from:
    - ipBlock: {cidr: 10.0.0/8}
";
    assert_eq!(
        errors(text),
        vec![
            "policy.yaml:9:23: NetworkPolicy production/default-deny-ingress: spec.ingress[0].from[0].ipBlock.cidr: \
             invalid CIDR \"10.0.0/8\": must be a valid CIDR value (e.g. 10.9.8.0/24 or 2001:db8::/64)"
        ]
    );
}

#[test]
fn positions_point_at_the_offending_value() {
    let text = policy("podSelector: {}\ningress:\n- ports:\n  - port: 0\n");
    let errors = errors(&text);
    assert_eq!(errors.len(), 1);
    assert!(errors[0].starts_with("policy.yaml:10:13: "), "{}", errors[0]);
}

#[test]
fn in_and_not_in_need_values() {
    for op in ["In", "NotIn"] {
        assert_eq!(
            policy_error(&format!("podSelector:\n  matchExpressions:\n  - {{key: app, operator: {op}}}\n")),
            "spec.podSelector.matchExpressions[0].values: must be specified when `operator` is 'In' or 'NotIn'"
        );
    }
}

#[test]
fn exists_and_does_not_exist_forbid_values() {
    for op in ["Exists", "DoesNotExist"] {
        assert_eq!(
            policy_error(&format!("podSelector:\n  matchExpressions:\n  - {{key: app, operator: {op}, values: [a]}}\n")),
            "spec.podSelector.matchExpressions[0].values: may not be specified when `operator` is 'Exists' or 'DoesNotExist'"
        );
    }
}

#[test]
fn unknown_selector_operator() {
    assert_eq!(
        policy_error("podSelector:\n  matchExpressions:\n  - {key: app, operator: Equals, values: [a]}\n"),
        "spec.podSelector.matchExpressions[0].operator: unsupported operator \"Equals\": supported values: \"In\", \"NotIn\", \"Exists\", \"DoesNotExist\""
    );
}

#[test]
fn label_key_syntax() {
    assert_eq!(
        policy_error("podSelector:\n  matchLabels: {\"bad key\": x}\n"),
        "spec.podSelector.matchLabels: invalid label key \"bad key\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName', 'my.name', or '123-abc')"
    );
    assert_eq!(
        policy_error("podSelector:\n  matchExpressions:\n  - {key: \"Example.com/app\", operator: Exists}\n"),
        "spec.podSelector.matchExpressions[0].key: invalid label key \"Example.com/app\": prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com')"
    );
}

#[test]
fn label_value_syntax() {
    assert_eq!(
        policy_error("podSelector:\n  matchLabels: {app: \"-web\"}\n"),
        "spec.podSelector.matchLabels.app: invalid label value \"-web\": a valid label value must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue', 'my_value', or '12345')"
    );
    assert_eq!(
        policy_error("podSelector:\n  matchExpressions:\n  - {key: app, operator: In, values: [\"a b\"]}\n"),
        "spec.podSelector.matchExpressions[0].values[0]: invalid label value \"a b\": a valid label value must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue', 'my_value', or '12345')"
    );
    let long = "v".repeat(64);
    assert_eq!(
        policy_error(&format!("podSelector:\n  matchLabels: {{app: {long}}}\n")),
        format!("spec.podSelector.matchLabels.app: invalid label value \"{long}\": must be no more than 63 characters")
    );
}

#[test]
fn peer_selectors_are_validated_too() {
    assert_eq!(
        policy_error("egress:\n- to:\n  - namespaceSelector:\n      matchExpressions:\n      - {key: team, operator: In}\n"),
        "spec.egress[0].to[0].namespaceSelector.matchExpressions[0].values: must be specified when `operator` is 'In' or 'NotIn'"
    );
}

#[test]
fn except_must_be_a_valid_cidr() {
    assert_eq!(
        policy_error("ingress:\n- from:\n  - ipBlock: {cidr: 10.0.0.0/8, except: [10.1.0.0]}\n"),
        "spec.ingress[0].from[0].ipBlock.except[0]: invalid CIDR \"10.1.0.0\": must be a valid CIDR value (e.g. 10.9.8.0/24 or 2001:db8::/64)"
    );
}

#[test]
fn except_must_be_a_strict_subset_of_cidr() {
    for except in ["11.0.0.0/16", "10.0.0.0/8", "10.0.0.0/7", "fd00::/64"] {
        assert_eq!(
            policy_error(&format!("ingress:\n- from:\n  - ipBlock: {{cidr: 10.0.0.0/8, except: [\"{except}\"]}}\n")),
            format!("spec.ingress[0].from[0].ipBlock.except[0]: invalid except \"{except}\": must be a strict subset of `cidr` \"10.0.0.0/8\"")
        );
    }
}

#[test]
fn cidr_is_required() {
    assert_eq!(policy_error("ingress:\n- from:\n  - ipBlock: {except: [10.1.0.0/16]}\n"), "spec.ingress[0].from[0].ipBlock.cidr: required value: cidr is required");
    assert_eq!(policy_error("ingress:\n- from:\n  - ipBlock: {cidr: \"\"}\n"), "spec.ingress[0].from[0].ipBlock.cidr: required value: cidr is required");
}

#[test]
fn port_numbers_must_be_in_range() {
    for port in [0, 65536, -1] {
        assert_eq!(policy_error(&format!("ingress:\n- ports:\n  - port: {port}\n")), format!("spec.ingress[0].ports[0].port: invalid port {port}: must be between 1 and 65535, inclusive"));
    }
}

#[test]
fn end_port_rules() {
    assert_eq!(policy_error("ingress:\n- ports:\n  - {port: 80, endPort: 79}\n"), "spec.ingress[0].ports[0].endPort: invalid endPort 79: must be greater than or equal to `port` (80)");
    assert_eq!(policy_error("ingress:\n- ports:\n  - {port: http, endPort: 90}\n"), "spec.ingress[0].ports[0].endPort: invalid endPort 90: may not be specified when `port` is non-numeric");
    assert_eq!(policy_error("ingress:\n- ports:\n  - {endPort: 90}\n"), "spec.ingress[0].ports[0].endPort: invalid endPort 90: may not be specified when `port` is not specified");
    assert_eq!(policy_error("ingress:\n- ports:\n  - {port: 80, endPort: 70000}\n"), "spec.ingress[0].ports[0].endPort: invalid endPort 70000: must be between 1 and 65535, inclusive");
}

#[test]
fn port_names_follow_iana_svc_name() {
    let cases = [
        ("abcdefghijklmnop", "must be no more than 15 characters"),
        ("Http", "must contain only lower-case alphanumeric characters (a-z, 0-9) and hyphens (-)"),
        ("80", "must contain at least one letter (a-z)"),
        ("web--80", "must not contain consecutive hyphens"),
        ("-web", "must not begin or end with a hyphen"),
        ("web-", "must not begin or end with a hyphen"),
    ];
    for (name, message) in cases {
        assert_eq!(policy_error(&format!("ingress:\n- ports:\n  - port: \"{name}\"\n")), format!("spec.ingress[0].ports[0].port: invalid port name \"{name}\": {message}"));
    }
}

#[test]
fn protocols_are_case_sensitive_and_limited() {
    for protocol in ["tcp", "ICMP"] {
        assert_eq!(
            policy_error(&format!("ingress:\n- ports:\n  - {{port: 80, protocol: {protocol}}}\n")),
            format!("spec.ingress[0].ports[0].protocol: unsupported protocol \"{protocol}\": supported values: \"TCP\", \"UDP\", \"SCTP\"")
        );
    }
}

#[test]
fn policy_types_values() {
    assert_eq!(policy_error("policyTypes: [Ingress, Both]\n"), "spec.policyTypes[1]: unsupported policy type \"Both\": supported values: \"Ingress\", \"Egress\"");
    assert_eq!(policy_error("policyTypes: [Ingress, Egress, Ingress]\n"), "spec.policyTypes: may not specify more than two policyTypes");
}

#[test]
fn a_peer_needs_exactly_one_kind() {
    assert_eq!(policy_error("ingress:\n- from:\n  - {}\n"), "spec.ingress[0].from[0]: must specify a peer: one of podSelector, namespaceSelector (or both) or ipBlock");
    assert_eq!(
        policy_error("ingress:\n- from:\n  - {podSelector: {}, ipBlock: {cidr: 10.0.0.0/8}}\n"),
        "spec.ingress[0].from[0]: may not specify more than 1 peer: ipBlock cannot be combined with podSelector or namespaceSelector in one entry"
    );
}

#[test]
fn unknown_fields_are_rejected_like_kubectl_strict_validation() {
    assert_eq!(policy_error("podselector: {}\n"), "spec.podselector: unknown field");
    let text = policy("ingress:\n- from:\n  - podSelector: {}\n    namespaceselector: {}\n");
    let errors = errors(&text);
    assert_eq!(errors, vec!["policy.yaml:10:7: NetworkPolicy production/p: spec.ingress[0].from[0].namespaceselector: unknown field"]);
}

#[test]
fn wrong_types_name_the_field() {
    assert_eq!(policy_error("ingress:\n- ports: \"80\"\n"), "spec.ingress[0].ports: invalid type: string \"80\", expected a sequence");
}

#[test]
fn metadata_names() {
    let text = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: Bad_Name\n  namespace: prod.uction\n";
    assert_eq!(
        errors(text),
        vec![
            "policy.yaml:4:9: NetworkPolicy prod.uction/Bad_Name: metadata.name: invalid name \"Bad_Name\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com')",
            "policy.yaml:5:14: NetworkPolicy prod.uction/Bad_Name: metadata.namespace: invalid namespace \"prod.uction\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name', or '123-abc')",
        ]
    );
    assert_eq!(errors("apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {}\n"), vec!["policy.yaml:3:11: NetworkPolicy default/: metadata.name: required value: name is required"]);
}

#[test]
fn unsupported_api_version() {
    assert_eq!(
        errors("apiVersion: extensions/v1beta1\nkind: NetworkPolicy\nmetadata: {name: p}\n"),
        vec!["policy.yaml:1:13: NetworkPolicy default/p: apiVersion: unsupported apiVersion \"extensions/v1beta1\" for NetworkPolicy: supported: \"networking.k8s.io/v1\""]
    );
}

#[test]
fn kind_and_api_version_are_required() {
    assert_eq!(errors("apiVersion: v1\nmetadata: {name: p}\n"), vec!["policy.yaml:1:1: kind: required value: every object needs kind"]);
    assert_eq!(errors("- a\n- b\n"), vec!["policy.yaml:1:1: expected a Kubernetes object (a mapping with apiVersion and kind)"]);
}

#[test]
fn malformed_yaml() {
    let errors = errors("apiVersion: v1\nkind: Pod\nmetadata: {name: [a\n");
    assert_eq!(errors.len(), 1);
    assert!(errors[0].starts_with("policy.yaml:4:1: invalid YAML: "), "{}", errors[0]);
}

#[test]
fn duplicate_keys_are_malformed() {
    let errors = errors("apiVersion: v1\nkind: Namespace\nkind: Pod\n");
    assert_eq!(errors.len(), 1);
    assert!(errors[0].contains("invalid YAML: duplicated key"), "{}", errors[0]);
    // JSON (read by serde_json) gets the same treatment.
    assert_eq!(errors_of_json("{\"apiVersion\": \"v1\",\n \"kind\": \"Namespace\",\n \"kind\": \"Pod\"}"), vec!["policy.json:3:2: invalid YAML: duplicated key in mapping"]);
    // Also inside the items of a List, which are parsed apart (in parallel).
    let list = "{\"apiVersion\": \"v1\", \"kind\": \"List\", \"items\": [\n {\"apiVersion\": \"v1\", \"kind\": \"Namespace\", \"metadata\": {\"name\": \"a\"}},\n {\"apiVersion\": \"v1\",\n  \"apiVersion\": \"v1\"}]}";
    assert_eq!(errors_of_json(list), vec!["policy.json:4:3: invalid YAML: duplicated key in mapping"]);
}

/// A crafted file nesting thousands of levels deep is an error, not a stack overflow: in
/// YAML (block and flow) and in JSON.
#[test]
fn absurd_nesting_is_malformed() {
    let block: String = (0..5000).map(|depth| format!("{}k:\n", " ".repeat(2 * depth))).collect::<String>() + "x\n";
    assert_eq!(errors(&block), vec!["policy.yaml:257:513: invalid YAML: collections nested more than 256 deep"]);
    let flow = format!("a: {}{}\n", "[".repeat(50_000), "]".repeat(50_000));
    assert_eq!(errors(&flow).len(), 1);
    let json = format!("{{\"a\": {}{}}}", "[".repeat(50_000), "]".repeat(50_000));
    assert_eq!(errors_of_json(&json).len(), 1);
}

/// A document with `items` that is not a List keeps them (and is judged as a whole).
#[test]
fn json_items_of_other_kinds_are_fields() {
    let text = "{\"apiVersion\": \"networking.k8s.io/v1\", \"kind\": \"NetworkPolicy\", \"metadata\": {\"name\": \"p\"},\n \"items\": [{\"a\": 1}], \"spec\": {\"podSelector\": {}}}";
    assert_eq!(errors_of_json(text), vec!["policy.json:2:2: NetworkPolicy default/p: items: unknown field"]);
}

/// JSON as `kubectl get -o json` writes it: field errors and List items have the positions
/// the YAML reading gives.
#[test]
fn json_lists_have_the_same_positions_and_errors() {
    let text = "{\n  \"apiVersion\": \"v1\",\n  \"kind\": \"List\",\n  \"items\": [\n    {\n      \"apiVersion\": \"v1\",\n      \"kind\": \"Pod\",\n      \"metadata\": {\"name\": \"b\", \"namespace\": \"x\"},\n      \"status\": {\"podIP\": \"10.0.0\"}\n    },\n    {\"apiVersion\": \"v1\", \"kind\": \"Pod\", \"metadata\": {\"name\": \"a\", \"namespace\": \"x\"}},\n    {\"apiVersion\": \"v1\", \"kind\": \"Pod\", \"metadata\": {\"name\": \"a\", \"namespace\": \"x\"}}\n  ]\n}\n";
    assert_eq!(
        errors_of_json(text),
        vec![
            "policy.json:9:27: Pod x/b: status.podIP: invalid IP address \"10.0.0\": must be a valid IP address (e.g. 10.9.8.7 or 2001:db8::ffff)",
            "policy.json:12:5: Pod x/a: defined twice: first defined at policy.json:11:5",
        ]
    );
}

#[test]
fn every_error_of_every_object_is_reported_at_once() {
    let text = format!(
        "{}---\n{}",
        policy("ingress:\n- ports:\n  - port: 0\n  - {port: 80, protocol: tcp}\n"),
        "apiVersion: v1\nkind: Pod\nmetadata: {name: web, labels: {\"a b\": c}}\nspec:\n  containers:\n  - name: c\n    ports: [{containerPort: 70000}]\n"
    );
    let errors = errors(&text);
    assert_eq!(errors.len(), 4, "{errors:#?}");
    assert!(errors[2].contains("Pod default/web: metadata.labels: invalid label key \"a b\""));
    assert!(errors[3].contains("spec.containers[0].ports[0].containerPort: invalid containerPort 70000: must be between 1 and 65535, inclusive"));
}

#[test]
fn list_items_get_their_own_paths_and_positions() {
    let text = "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Namespace\n  metadata: {name: ok}\n- apiVersion: networking.k8s.io/v1\n  kind: NetworkPolicy\n  metadata: {name: p, namespace: ok}\n  spec:\n    policyTypes: [Sideways]\n";
    assert_eq!(errors(text), vec!["policy.yaml:11:19: NetworkPolicy ok/p: spec.policyTypes[0]: unsupported policy type \"Sideways\": supported values: \"Ingress\", \"Egress\""]);
}

/// Long lists are converted in several parallel chunks: errors still come in input order,
/// with their own positions, and duplicates are found across chunks.
#[test]
fn long_lists_keep_order_positions_and_duplicates() {
    let mut text = String::from("apiVersion: v1\nkind: PodList\nitems:\n");
    for i in 0..200 {
        let name = match i {
            7 => "Bad-7".to_string(),
            150 => "pod-3".to_string(),
            _ => format!("pod-{i}"),
        };
        let ip = if i == 120 { "10.0.0".to_string() } else { format!("10.0.{}.{}", i / 200, i % 200 + 1) };
        text.push_str(&format!("- apiVersion: v1\n  kind: Pod\n  metadata: {{name: {name}, namespace: ns}}\n  spec: {{containers: []}}\n  status: {{podIP: \"{ip}\"}}\n"));
    }
    // Item i starts on line 4 + 5 * i.
    assert_eq!(
        errors(&text),
        vec![
            "policy.yaml:41:20: Pod ns/Bad-7: metadata.name: invalid name \"Bad-7\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com')",
            "policy.yaml:608:19: Pod ns/pod-120: status.podIP: invalid IP address \"10.0.0\": must be a valid IP address (e.g. 10.9.8.7 or 2001:db8::ffff)",
            "policy.yaml:754:3: Pod ns/pod-3: defined twice: first defined at policy.yaml:19:3",
        ]
    );
}

#[test]
fn duplicates_are_errors_naming_both_places() {
    let doc = "apiVersion: v1\nkind: Namespace\nmetadata: {name: dup}\n";
    assert_eq!(errors(&format!("{doc}---\n{doc}")), vec!["policy.yaml:5:1: Namespace dup: defined twice: first defined at policy.yaml:1:1"]);
}

#[test]
fn pod_fields() {
    let pod = |body: &str| format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: web}}\n{body}");
    let one = |body: &str| {
        let e = errors(&pod(body));
        assert_eq!(e.len(), 1, "{e:#?}");
        e[0].split_once("Pod default/web: ").unwrap().1.to_string()
    };
    assert_eq!(
        one("spec:\n  containers:\n  - {name: c, ports: [{containerPort: 80, name: Http}]}\n"),
        "spec.containers[0].ports[0].name: invalid port name \"Http\": must contain only lower-case alphanumeric characters (a-z, 0-9) and hyphens (-)"
    );
    assert_eq!(
        one("spec:\n  containers:\n  - {name: c, ports: [{containerPort: 80, protocol: icmp}]}\n"),
        "spec.containers[0].ports[0].protocol: unsupported protocol \"icmp\": supported values: \"TCP\", \"UDP\", \"SCTP\""
    );
    assert_eq!(one("spec: {containers: []}\nstatus: {podIP: 10.0.0}\n"), "status.podIP: invalid IP address \"10.0.0\": must be a valid IP address (e.g. 10.9.8.7 or 2001:db8::ffff)");
    assert_eq!(one("spec: {containers: []}\nstatus: {podIPs: [{ip: 10.0.0.1}, {ip: 10.0.0.2}]}\n"), "status.podIPs[1].ip: invalid IP address \"10.0.0.2\": at most one IP address per family");
}

#[test]
fn service_fields() {
    let e = errors("apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec:\n  ports: [{port: 80, targetPort: \"Web\"}]\n");
    assert_eq!(
        e,
        vec!["policy.yaml:5:34: Service default/s: spec.ports[0].targetPort: invalid targetPort name \"Web\": must contain only lower-case alphanumeric characters (a-z, 0-9) and hyphens (-)"]
    );
}

#[test]
fn namespace_of_file_and_object_must_agree() {
    let mut loader = Loader::new(LoadOptions::default());
    loader.add_text(Some(Path::new("policy.yaml")), "apiVersion: v1\nkind: Pod\nmetadata: {name: web, namespace: a}\nspec: {containers: []}\n", Some("b"));
    let errors: Vec<String> = loader.finish().unwrap_err().0.iter().map(|d| d.to_string()).collect();
    assert_eq!(errors, vec!["policy.yaml:3:34: Pod a/web: metadata.namespace: the object is in namespace \"a\" but its file was given with @b"]);
}

#[test]
fn valid_policies_produce_no_errors() {
    let spec = "podSelector: {matchLabels: {app: web}}
policyTypes: [Ingress, Egress]
ingress:
- from:
  - namespaceSelector: {matchExpressions: [{key: team, operator: NotIn, values: [a, b]}]}
    podSelector: {matchExpressions: [{key: role, operator: Exists}]}
  - ipBlock: {cidr: 10.244.1.5/4, except: [10.244.0.0/16]}
  ports:
  - {port: 80, endPort: 90}
  - {port: serve-80-tcp, protocol: TCP}
  - {protocol: SCTP}
egress:
- to:
  - ipBlock: {cidr: \"fd00::/8\"}
";
    assert_eq!(errors(&policy(spec)), Vec::<String>::new());
}
