//! A small Kubernetes API server for the lab: the objects the lab serves, durable, over the
//! Kubernetes REST API that kubectl, kube-rs and other clients speak.
//!
//! Knows nothing of network namespaces: the lab's controllers and kubelet use the same
//! registry ([`api::Api`]) and watches ([`store::Store::watch`]) that the REST layer serves,
//! and the kubelet side of `pods/exec` and `pods/log` is a trait the lab implements.
//!
//! - [`store`]: objects in memory and in redb, resource versions, watch history.
//! - [`api`]: create/update/patch/delete semantics per kind ([`defaults`], [`validate`],
//!   [`meta`], [`patch`], [`apply`]); [`lifecycle`]: garbage collection, namespace deletion.
//! - [`rest`]: the HTTP API; [`discovery`], [`openapi`], [`table`]; [`auth`]: tokens, RBAC.
//! - [`server`]: TLS and listeners; [`start`] puts it all together.

pub mod api;
pub mod apply;
pub mod auth;
pub mod bootstrap;
pub mod defaults;
pub mod discovery;
pub mod error;
pub mod fields;
pub mod kubelet;
pub mod lifecycle;
pub mod meta;
pub mod openapi;
pub mod patch;
pub mod resources;
pub mod rest;
pub mod selectors;
pub mod server;
pub mod store;
pub mod table;
pub mod validate;

use std::net::{IpAddr, SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::Arc;

pub use error::{ApiError, Cause};

use ipnet::IpNet;

/// How to run a server.
pub struct Options {
    /// The store, the certificates and the admin token live here.
    pub state_dir: PathBuf,
    pub service_cidrs: Vec<IpNet>,
    /// Bound listening sockets (the first is the one the kubeconfig names).
    pub listeners: Vec<TcpListener>,
    /// Every address clients reach the server at (the serving certificate's IP SANs).
    pub addresses: Vec<IpAddr>,
    pub kubelet: Option<Arc<dyn kubelet::Kubelet>>,
    /// How much recent history watches can resume from (`None`: 64 MiB of events); older
    /// versions get `410 Gone` and clients re-list.
    pub watch_history_bytes: Option<usize>,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error(transparent)]
    Serve(#[from] server::ServeError),
    #[error("{0}")]
    Setup(String),
}

/// A running server.
pub struct Running {
    pub api: Arc<api::Api>,
    pub admin_token: String,
    pub ca_pem: String,
    /// The address of the first listener.
    pub address: SocketAddr,
    handle: axum_server::Handle<SocketAddr>,
    thread: Option<std::thread::JoinHandle<()>>,
    lifecycle: Option<std::thread::JoinHandle<()>>,
}

impl Running {
    /// The kubeconfig for the admin, naming the first listener.
    pub fn kubeconfig(&self, cluster: &str) -> String {
        server::kubeconfig(cluster, &format!("https://{}", self.address), &self.ca_pem, &self.admin_token)
    }

    /// Stops serving and the lifecycle controllers; the store stays on disk and is closed
    /// once the last `Api` handle is dropped.
    pub fn stop(mut self) {
        self.handle.shutdown();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        self.api.store.close_watches();
        if let Some(thread) = self.lifecycle.take() {
            let _ = thread.join();
        }
    }
}

/// The admin token: made once, kept in the state directory (mode 0600) and known to the
/// store, so a restarted server accepts the same kubeconfig.
fn admin_token(options: &Options, api: &api::Api) -> Result<String, StartError> {
    let path = options.state_dir.join("admin-token");
    let token = match std::fs::read_to_string(&path) {
        Ok(token) if !token.trim().is_empty() => token.trim().to_string(),
        _ => {
            let token = auth::new_token();
            server::write_kubeconfig(&path, &token).map_err(|e| StartError::Setup(format!("writing {}: {e}", path.display())))?;
            token
        }
    };
    auth::issue(api, &token, &auth::User::admin())?;
    Ok(token)
}

/// Opens the store, bootstraps it, starts the lifecycle controllers and serves on the
/// listeners from a thread of its own (a tokio runtime with two workers).
pub fn start(options: Options) -> Result<Running, StartError> {
    std::fs::create_dir_all(&options.state_dir).map_err(|e| StartError::Setup(format!("creating {}: {e}", options.state_dir.display())))?;
    let api = Arc::new(api::Api::open(&options.state_dir.join("store.redb"), options.service_cidrs.clone())?);
    if let Some(bytes) = options.watch_history_bytes {
        api.store.set_history_budget(bytes);
    }
    bootstrap::bootstrap(&api).map_err(|e| StartError::Setup(format!("bootstrapping the cluster's objects: {e}")))?;
    let lifecycle = lifecycle::start(api.clone());
    let admin_token = admin_token(&options, &api)?;
    let names = ["localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"];
    let certificates = server::Certificates::load_or_create(&options.state_dir.join("pki"), &options.addresses, &names)?;
    let address = options.listeners.first().and_then(|l| l.local_addr().ok()).ok_or_else(|| StartError::Setup("no listener".into()))?;
    let handle = axum_server::Handle::new();
    let server = Arc::new(rest::Server { api: api.clone(), kubelet: options.kubelet, address: address.to_string() });
    let ca_pem = certificates.ca_pem.clone();
    let (served, listeners) = (handle.clone(), options.listeners);
    let thread = std::thread::Builder::new()
        .name("apiserver".into())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("a tokio runtime");
            if let Err(error) = runtime.block_on(server::serve(server, listeners, &certificates, served)) {
                tracing::error!(%error, "the API server stopped");
            }
        })
        .map_err(|e| StartError::Setup(format!("starting the server thread: {e}")))?;
    Ok(Running { api, admin_token, ca_pem, address, handle, thread: Some(thread), lifecycle: Some(lifecycle) })
}
