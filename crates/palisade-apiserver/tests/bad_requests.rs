//! Bad requests get the Status a client expects (code, reason, causes) and change nothing:
//! malformed bodies, a kind that does not match the path, invalid objects, oversized
//! bodies, unknown fields under `fieldValidation=Strict`, missing or wrong tokens, and verbs
//! RBAC does not grant. Sent with kube-rs's raw requests, in process, no root.

use std::net::TcpListener;

use http::Request;
use kube::Client;
use kube::config::{KubeConfigOptions, Kubeconfig};
use palisade_apiserver::{Options, Running, start};
use serde_json::{Value, json};

struct Server {
    dir: tempfile::TempDir,
    running: Running,
}

fn server() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let running = start(Options {
        state_dir: dir.path().to_path_buf(),
        service_cidrs: vec!["10.96.0.0/16".parse().unwrap()],
        listeners: vec![TcpListener::bind("127.0.0.1:0").unwrap()],
        addresses: vec!["127.0.0.1".parse().unwrap()],
        kubelet: None,
        watch_history_bytes: None,
    })
    .unwrap();
    std::fs::write(dir.path().join("kubeconfig"), running.kubeconfig("test")).unwrap();
    Server { dir, running }
}

impl Server {
    /// A client with the admin's kubeconfig, or with `token` instead of the admin's.
    async fn client(&self, token: Option<&str>) -> Client {
        let kubeconfig = Kubeconfig::read_from(self.dir.path().join("kubeconfig")).unwrap();
        let mut config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await.unwrap();
        if let Some(token) = token {
            config.auth_info.token = (!token.is_empty()).then(|| token.to_string().into());
        }
        Client::try_from(config).unwrap()
    }

    fn version(&self) -> u64 {
        self.running.api.store.current_rv()
    }

    /// Waits until the server's own start-up writes are done (the lifecycle controller gives
    /// every namespace its default ServiceAccount), so that versions count only the test's.
    async fn quiet(&self, client: &Client) {
        for namespace in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            let path = format!("/api/v1/namespaces/{namespace}/serviceaccounts/default");
            for _ in 0..100 {
                if send(client, "GET", &path, "application/json", Vec::new()).await.0 == 200 {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        }
    }
}

/// Sends a request; returns the status code and the body as JSON (Null if not JSON).
async fn send(client: &Client, method: &str, path: &str, content_type: &str, body: Vec<u8>) -> (u16, Value) {
    let request = Request::builder().method(method).uri(path).header("Content-Type", content_type).body(body).unwrap();
    match client.request_text(request).await {
        Ok(text) => (200, serde_json::from_str(&text).unwrap_or(Value::Null)),
        Err(kube::Error::Api(status)) => (status.code, serde_json::to_value(&status).unwrap()),
        Err(other) => panic!("{method} {path}: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_wrong_invalid_and_oversized_bodies_are_refused_and_change_nothing() {
    let server = server();
    let client = server.client(None).await;
    server.quiet(&client).await;
    let before = server.version();
    let policies = "/apis/networking.k8s.io/v1/namespaces/default/networkpolicies";
    let json_type = "application/json";
    let cases: Vec<(&str, &str, &str, Vec<u8>, u16, &str)> = vec![
        ("malformed JSON", policies, json_type, b"{\"apiVersion\": \"networking.k8s.io/v1\", ".to_vec(), 400, "BadRequest"),
        ("malformed YAML", policies, "application/yaml", b"apiVersion: v1\n  kind: [\n".to_vec(), 400, "BadRequest"),
        ("a kind that does not match the path", policies, json_type, json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}}).to_string().into_bytes(), 400, "BadRequest"),
        (
            "an invalid NetworkPolicy",
            policies,
            json_type,
            json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "bad"},
                   "spec": {"podSelector": {}, "ingress": [{"ports": [{"port": 0}]}]}})
            .to_string()
            .into_bytes(),
            422,
            "Invalid",
        ),
        (
            "an unknown field under Strict",
            "/apis/networking.k8s.io/v1/namespaces/default/networkpolicies?fieldValidation=Strict",
            json_type,
            json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "typo"}, "spec": {"podSelector": {}, "ingres": []}}).to_string().into_bytes(),
            400,
            "BadRequest",
        ),
        (
            "a body over 3 MiB",
            "/api/v1/namespaces/default/configmaps",
            json_type,
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "big"}, "data": {"k": "x".repeat(4 << 20)}}).to_string().into_bytes(),
            413,
            "RequestEntityTooLarge",
        ),
        (
            "an invalid name",
            "/api/v1/namespaces/default/configmaps",
            json_type,
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "Not_A_Name"}}).to_string().into_bytes(),
            422,
            "Invalid",
        ),
        (
            "a namespace that does not exist",
            "/api/v1/namespaces/nope/configmaps",
            json_type,
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}}).to_string().into_bytes(),
            404,
            "NotFound",
        ),
        ("a resource that is not served", "/apis/example.com/v1/namespaces/default/widgets", json_type, b"{}".to_vec(), 404, "NotFound"),
    ];
    for (what, path, content_type, body, code, reason) in cases {
        let (got, status) = send(&client, "POST", path, content_type, body).await;
        assert_eq!(got, code, "{what}: {status}");
        assert_eq!(status["reason"], reason, "{what}: {status}");
        assert!(status["message"].as_str().is_some_and(|m| !m.is_empty()), "{what}: a message: {status}");
    }
    // The invalid policy's Status names the field, as `palisade check` does.
    let bad = json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "bad"}, "spec": {"podSelector": {}, "ingress": [{"ports": [{"port": 0}]}]}});
    let (_, status) = send(&client, "POST", policies, json_type, bad.to_string().into_bytes()).await;
    assert_eq!(status["details"]["causes"][0]["field"], "spec.ingress[0].ports[0].port", "{status}");
    assert_eq!(status["details"]["kind"], "NetworkPolicy", "{status}");
    // A strict-decoding error names the unknown field.
    let typo = json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "typo"}, "spec": {"podSelector": {}, "ingres": []}});
    let (_, status) = send(&client, "POST", "/apis/networking.k8s.io/v1/namespaces/default/networkpolicies?fieldValidation=Strict", json_type, typo.to_string().into_bytes()).await;
    assert!(status["message"].as_str().unwrap().contains("unknown field \"spec.ingres\""), "{status}");
    // Malformed patches of an existing object.
    let (code, _) =
        send(&client, "POST", "/api/v1/namespaces/default/configmaps", json_type, json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "m"}}).to_string().into_bytes()).await;
    assert_eq!(code, 200);
    let after_create = server.version();
    for (content_type, body) in [
        ("application/json-patch+json", b"[{\"op\": \"frobnicate\", \"path\": \"/data\"}]".to_vec()),
        ("application/json-patch+json", b"[{\"op\": \"test\", \"path\": \"/metadata/name\", \"value\": \"other\"}]".to_vec()),
        ("application/merge-patch+json", b"{not json".to_vec()),
        ("application/strategic-merge-patch+json", b"[1, 2]".to_vec()),
        ("application/merge-patch+json", b"{\"metadata\": {\"name\": \"renamed\"}}".to_vec()),
    ] {
        let (code, status) = send(&client, "PATCH", "/api/v1/namespaces/default/configmaps/m", content_type, body.clone()).await;
        assert!(matches!(code, 400 | 422 | 500) && code != 500, "{content_type} {}: {code} {status}", String::from_utf8_lossy(&body));
    }
    assert_eq!(server.version(), after_create, "no refused request changed the store");
    assert_eq!(after_create, before + 1, "only the one valid create was stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_and_rbac() {
    let server = server();
    let admin = server.client(None).await;
    server.quiet(&admin).await;
    let json_type = "application/json";
    // No token, a wrong token: 401, for reads and writes alike.
    for token in ["", "not-a-token"] {
        let client = server.client(Some(token)).await;
        let (code, status) = send(&client, "GET", "/api/v1/namespaces/default/pods", json_type, Vec::new()).await;
        assert_eq!((code, status["reason"].as_str()), (401, Some("Unauthorized")), "{token:?}: {status}");
        let before = server.version();
        let (code, _) = send(&client, "POST", "/api/v1/namespaces", json_type, json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}}).to_string().into_bytes()).await;
        assert_eq!(code, 401);
        assert_eq!(server.version(), before);
    }
    // A ServiceAccount that may only read pods: its token (TokenRequest) lists pods, and
    // is forbidden to create one or to read secrets.
    let post = |path: &'static str, body: Value| {
        let admin = admin.clone();
        async move {
            let (code, status) = send(&admin, "POST", path, "application/json", body.to_string().into_bytes()).await;
            assert_eq!(code, 200, "{path}: {status}");
            status
        }
    };
    post("/api/v1/namespaces/default/serviceaccounts", json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "reader"}})).await;
    post(
        "/apis/rbac.authorization.k8s.io/v1/namespaces/default/roles",
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "pod-reader"},
               "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}]}),
    )
    .await;
    post(
        "/apis/rbac.authorization.k8s.io/v1/namespaces/default/rolebindings",
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "reader"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "pod-reader"},
               "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": "default"}]}),
    )
    .await;
    let issued = post("/api/v1/namespaces/default/serviceaccounts/reader/token", json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {}})).await;
    let token = issued["status"]["token"].as_str().expect("a token").to_string();
    let reader = server.client(Some(&token)).await;
    let (code, list) = send(&reader, "GET", "/api/v1/namespaces/default/pods", json_type, Vec::new()).await;
    assert_eq!(code, 200, "{list}");
    assert_eq!(list["kind"], "PodList");
    let before = server.version();
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}});
    let (code, status) = send(&reader, "POST", "/api/v1/namespaces/default/pods", json_type, pod.to_string().into_bytes()).await;
    assert_eq!((code, status["reason"].as_str()), (403, Some("Forbidden")), "{status}");
    assert_eq!(status["message"], "pods is forbidden: User \"system:serviceaccount:default:reader\" cannot create resource \"pods\" in API group \"\" in the namespace \"default\"",);
    let (code, _) = send(&reader, "GET", "/api/v1/namespaces/default/secrets", json_type, Vec::new()).await;
    assert_eq!(code, 403);
    let (code, _) = send(&reader, "GET", "/api/v1/namespaces/kube-system/pods", json_type, Vec::new()).await;
    assert_eq!(code, 403, "a Role grants only in its namespace");
    assert_eq!(server.version(), before, "nothing the reader was refused changed the store");
    // Deleting the ServiceAccount invalidates its token.
    let (code, _) = send(&admin, "DELETE", "/api/v1/namespaces/default/serviceaccounts/reader", json_type, Vec::new()).await;
    assert_eq!(code, 200);
    let (code, _) = send(&reader, "GET", "/api/v1/namespaces/default/pods", json_type, Vec::new()).await;
    assert_eq!(code, 401, "the token died with its account");
}
