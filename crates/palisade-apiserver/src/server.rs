//! Serving HTTPS: a CA and a serving certificate made once per state directory (rcgen, P-256;
//! the serving certificate names every address clients use, as IP SANs), rustls with the
//! ring provider, one or more listeners sharing one configuration, and the kubeconfig
//! clients use.

use std::net::{IpAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum_server::Handle;
use axum_server::tls_rustls::RustlsConfig;
use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::rest::{self, Server};

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("certificates in {dir}: {message}")]
    Certificates { dir: String, message: String },
    #[error("TLS configuration: {0}")]
    Tls(String),
}

/// The PEM files of the CA and the serving certificate.
pub struct Certificates {
    pub ca_pem: String,
    cert_pem: String,
    key_pem: String,
}

fn write_private(path: &Path, content: &str) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)?;
    std::io::Write::write_all(&mut file, content.as_bytes())
}

impl Certificates {
    /// Loads the CA from `dir` (creating it the first time) and issues a serving certificate
    /// for `ips` and `names` (again whenever they change, so a restarted server keeps its
    /// CA and clients keep trusting it).
    pub fn load_or_create(dir: &Path, ips: &[IpAddr], names: &[&str]) -> Result<Self, ServeError> {
        let error = |message: String| ServeError::Certificates { dir: dir.display().to_string(), message };
        std::fs::create_dir_all(dir).map_err(|e| error(e.to_string()))?;
        let (ca_cert_path, ca_key_path) = (dir.join("ca.crt"), dir.join("ca.key"));
        // The CA's parameters are fixed, so an issuer can be rebuilt from them and its key.
        let ca_params = || -> Result<CertificateParams, ServeError> {
            let mut params = CertificateParams::new(Vec::<String>::new()).map_err(|e| error(e.to_string()))?;
            params.distinguished_name.push(DnType::CommonName, "palisade-lab-ca");
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
            Ok(params)
        };
        let (ca_pem, ca_key_pem) = match (std::fs::read_to_string(&ca_cert_path), std::fs::read_to_string(&ca_key_path)) {
            (Ok(cert), Ok(key)) => (cert, key),
            _ => {
                let key = KeyPair::generate().map_err(|e| error(e.to_string()))?;
                let cert = ca_params()?.self_signed(&key).map_err(|e| error(e.to_string()))?;
                let (cert_pem, key_pem) = (cert.pem(), key.serialize_pem());
                std::fs::write(&ca_cert_path, &cert_pem).map_err(|e| error(e.to_string()))?;
                write_private(&ca_key_path, &key_pem).map_err(|e| error(e.to_string()))?;
                (cert_pem, key_pem)
            }
        };
        let ca_key = KeyPair::from_pem(&ca_key_pem).map_err(|e| error(e.to_string()))?;
        let issuer = Issuer::new(ca_params()?, ca_key);
        let mut subjects: Vec<String> = ips.iter().map(IpAddr::to_string).collect();
        subjects.extend(names.iter().map(|n| n.to_string()));
        let key = KeyPair::generate().map_err(|e| error(e.to_string()))?;
        let mut params = CertificateParams::new(subjects).map_err(|e| error(e.to_string()))?;
        params.distinguished_name.push(DnType::CommonName, "kube-apiserver");
        params.use_authority_key_identifier_extension = true;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = params.signed_by(&key, &issuer).map_err(|e| error(e.to_string()))?;
        Ok(Self { ca_pem, cert_pem: cert.pem(), key_pem: key.serialize_pem() })
    }

    fn server_config(&self) -> Result<rustls::ServerConfig, ServeError> {
        let tls = |e: &dyn std::fmt::Display| ServeError::Tls(e.to_string());
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(self.cert_pem.as_bytes()).collect::<Result<_, _>>().map_err(|e| tls(&e))?;
        let key = PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes()).map_err(|e| tls(&e))?;
        // One crypto provider, explicitly: with two compiled in, `builder()` panics.
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| tls(&e))?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|e| tls(&e))?;
        // HTTP/1.1 only: exec upgrades to WebSocket on it, and kube-rs speaks nothing else.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(config)
    }
}

/// Serves the API on every listener until `handle` shuts it down.
pub async fn serve(server: Arc<Server>, listeners: Vec<TcpListener>, certificates: &Certificates, handle: Handle<std::net::SocketAddr>) -> Result<(), ServeError> {
    let config = RustlsConfig::from_config(Arc::new(certificates.server_config()?));
    let app = rest::router(server);
    let mut tasks = Vec::new();
    for listener in listeners {
        listener.set_nonblocking(true).map_err(|e| ServeError::Tls(e.to_string()))?;
        // TCP_NODELAY: watch events are small writes; with Nagle's algorithm one waits for
        // the peer's delayed ACK of the previous (40 ms) and watch latency's tail is that.
        let acceptor = axum_server::tls_rustls::RustlsAcceptor::new(config.clone()).acceptor(axum_server::accept::NoDelayAcceptor::new());
        let served = axum_server::from_tcp(listener).map_err(|e| ServeError::Tls(e.to_string()))?.acceptor(acceptor).handle(handle.clone()).serve(app.clone().into_make_service());
        tasks.push(tokio::spawn(served));
    }
    for task in tasks {
        if let Ok(Err(error)) = task.await {
            tracing::warn!(%error, "a listener stopped");
        }
    }
    Ok(())
}

/// A kubeconfig for `server` (`https://127.0.0.1:PORT`) with the CA and a bearer token.
pub fn kubeconfig(cluster: &str, server: &str, ca_pem: &str, token: &str) -> String {
    use base64::Engine;
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: {cluster}\n  cluster:\n    server: {server}\n    certificate-authority-data: {ca}\nusers:\n- name: {cluster}-admin\n  user:\n    token: {token}\ncontexts:\n- name: {cluster}\n  context:\n    cluster: {cluster}\n    user: {cluster}-admin\n    namespace: default\ncurrent-context: {cluster}\npreferences: {{}}\n"
    )
}

/// Writes a file readable by its owner only (kubeconfigs hold credentials).
pub fn write_kubeconfig(path: &Path, content: &str) -> std::io::Result<PathBuf> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    write_private(path, content)?;
    Ok(path.to_path_buf())
}
