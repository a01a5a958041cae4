//! Serves an API server on 127.0.0.1 (no kubelet) and writes its kubeconfig: for trying
//! clients by hand. `cargo run -p palisade-apiserver --example serve -- DIR [PORT]`.

fn main() {
    tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).init();
    let mut args = std::env::args().skip(1);
    let dir = std::path::PathBuf::from(args.next().expect("a state directory"));
    let port: u16 = args.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    let listener = std::net::TcpListener::bind(("127.0.0.1", port)).expect("bind");
    let running = palisade_apiserver::start(palisade_apiserver::Options {
        state_dir: dir.clone(),
        service_cidrs: vec!["10.96.0.0/16".parse().unwrap(), "fd00:10:96::/112".parse().unwrap()],
        listeners: vec![listener],
        addresses: vec!["127.0.0.1".parse().unwrap()],
        kubelet: None,
        watch_history_bytes: None,
    })
    .expect("start");
    let path = dir.join("kubeconfig");
    palisade_apiserver::server::write_kubeconfig(&path, &running.kubeconfig("lab")).expect("kubeconfig");
    println!("export KUBECONFIG={}", path.display());
    loop {
        std::thread::park();
    }
}
