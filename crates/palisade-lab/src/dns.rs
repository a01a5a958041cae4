//! Cluster DNS: `<service>.<namespace>.svc.cluster.local` A and AAAA records, as CoreDNS
//! serves them on a cluster. The daemon computes the records from the API's objects and writes them
//! to a file; the DNS server runs as an ordinary pod (`kube-system`, `k8s-app: kube-dns`)
//! and re-reads the file when it changes. Messages are parsed and built with hickory-proto.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv6Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use serde_json::Value;

use crate::error::LabError;

pub const CLUSTER_DOMAIN: &str = "cluster.local";
/// Answers are short-lived: the lab's objects change while users watch.
const TTL: u32 = 5;

/// Fully qualified name (lowercase, trailing dot) -> addresses.
pub type Records = BTreeMap<String, Vec<IpAddr>>;

fn ips_of(values: &Value) -> Vec<IpAddr> {
    values.as_array().into_iter().flatten().filter_map(|v| v.as_str().or_else(|| v["ip"].as_str())?.parse().ok()).collect()
}

fn labels_match(selector: &serde_json::Map<String, Value>, labels: &Value) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// The records the store's Services and Pods call for: a Service's cluster IPs, or for a
/// headless Service the addresses of its ready pods (and `<hostname>.<service>` for pods
/// with that subdomain, as StatefulSets have).
pub fn records(services: &[Value], pods: &[Value]) -> Records {
    let mut records = Records::new();
    for service in services {
        let (name, namespace) = (service["metadata"]["name"].as_str().unwrap_or_default(), service["metadata"]["namespace"].as_str().unwrap_or_default());
        let fqdn = format!("{name}.{namespace}.svc.{CLUSTER_DOMAIN}.");
        let cluster_ips: Vec<IpAddr> = ips_of(&service["spec"]["clusterIPs"]);
        if !cluster_ips.is_empty() {
            records.insert(fqdn, cluster_ips);
            continue;
        }
        let Some(selector) = service["spec"]["selector"].as_object() else { continue };
        let mut all = Vec::new();
        for pod in pods.iter().filter(|p| p["metadata"]["namespace"] == namespace && labels_match(selector, &p["metadata"]["labels"])) {
            let ips = ips_of(&pod["status"]["podIPs"]);
            if let (Some(hostname), Some(sub)) = (pod["spec"]["hostname"].as_str(), pod["spec"]["subdomain"].as_str())
                && sub == name
            {
                records.insert(format!("{hostname}.{fqdn}"), ips.clone());
            }
            all.extend(ips);
        }
        records.insert(fqdn, all);
    }
    records
}

/// Writes the records atomically (the server may read at any moment).
pub fn write_records(path: &Path, records: &Records) -> Result<(), LabError> {
    let temporary = path.with_extension("json.tmp");
    std::fs::write(&temporary, serde_json::to_vec(records).expect("records serialize")).map_err(LabError::io(format!("writing {}", temporary.display())))?;
    std::fs::rename(&temporary, path).map_err(LabError::io(format!("replacing {}", path.display())))
}

/// Answers one query message from `records`.
pub fn answer(request: &Message, records: &Records) -> Message {
    let mut response = Message::response(request.metadata.id, request.metadata.op_code);
    response.metadata.recursion_desired = request.metadata.recursion_desired;
    response.metadata.recursion_available = true;
    response.metadata.authoritative = true;
    response.add_queries(request.queries.clone());
    if request.metadata.message_type != MessageType::Query || request.queries.len() != 1 {
        response.metadata.response_code = ResponseCode::FormErr;
        return response;
    }
    let query = &request.queries[0];
    let name = query.name().to_lowercase().to_ascii();
    let name = if name.ends_with('.') { name } else { format!("{name}.") };
    let Some(addresses) = records.get(&name) else {
        // Nothing outside the cluster is known here and there is no upstream: an NXDOMAIN
        // lets resolvers move on through the search path at once.
        response.metadata.response_code = ResponseCode::NXDomain;
        return response;
    };
    for ip in addresses {
        let data = match (ip, query.query_type()) {
            (IpAddr::V4(v4), RecordType::A | RecordType::ANY) => RData::A(A(*v4)),
            (IpAddr::V6(v6), RecordType::AAAA | RecordType::ANY) => RData::AAAA(AAAA(*v6)),
            _ => continue,
        };
        response.add_answer(Record::from_rdata(query.name().clone(), TTL, data));
    }
    response
}

/// Records, re-read when the file's modification time changes.
struct Cached {
    path: PathBuf,
    modified: Option<SystemTime>,
    records: Arc<Records>,
}

impl Cached {
    fn current(&mut self) -> Arc<Records> {
        let modified = std::fs::metadata(&self.path).and_then(|m| m.modified()).ok();
        if modified != self.modified {
            if let Ok(records) = std::fs::read(&self.path).map_err(|_| ()).and_then(|b| serde_json::from_slice::<Records>(&b).map_err(|_| ())) {
                self.records = Arc::new(records);
            }
            self.modified = modified;
        }
        self.records.clone()
    }
}

fn respond(bytes: &[u8], cache: &Mutex<Cached>) -> Option<Vec<u8>> {
    let request = Message::from_vec(bytes).ok()?;
    let records = cache.lock().ok()?.current();
    answer(&request, &records).to_vec().ok()
}

fn serve_tcp(mut stream: TcpStream, cache: &Mutex<Cached>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    loop {
        let mut length = [0u8; 2];
        if stream.read_exact(&mut length).is_err() {
            return;
        }
        let mut message = vec![0u8; usize::from(u16::from_be_bytes(length))];
        if stream.read_exact(&mut message).is_err() {
            return;
        }
        let Some(reply) = respond(&message, cache) else { return };
        let Ok(len) = u16::try_from(reply.len()) else { return };
        if stream.write_all(&len.to_be_bytes()).and_then(|()| stream.write_all(&reply)).is_err() {
            return;
        }
    }
}

/// Serves DNS on port 53 (UDP and TCP, both families) until killed.
pub fn serve(records_file: &Path) -> Result<(), LabError> {
    let cache = Arc::new(Mutex::new(Cached { path: records_file.to_path_buf(), modified: None, records: Arc::new(Records::new()) }));
    let address = SocketAddr::from((Ipv6Addr::UNSPECIFIED, 53));
    let udp = UdpSocket::bind(address).map_err(LabError::io("listening on UDP port 53"))?;
    let tcp = TcpListener::bind(address).map_err(LabError::io("listening on TCP port 53"))?;
    let tcp_cache = cache.clone();
    std::thread::spawn(move || {
        for stream in tcp.incoming().flatten() {
            let cache = tcp_cache.clone();
            std::thread::spawn(move || serve_tcp(stream, &cache));
        }
    });
    let mut buffer = [0u8; 4096];
    loop {
        let (len, from) = udp.recv_from(&mut buffer).map_err(LabError::io("receiving on UDP port 53"))?;
        if let Some(reply) = respond(&buffer[..len], &cache) {
            let _ = udp.send_to(&reply, from);
        }
    }
}

/// The query for `name` and `kind`, as a stub resolver sends it (for tests and `lab` checks).
pub fn query(name: &str, kind: RecordType) -> Message {
    let mut message = Message::query();
    message.metadata.recursion_desired = true;
    message.add_query(hickory_proto::op::Query::query(Name::from_ascii(name).expect("valid name"), kind));
    message
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cluster() -> Records {
        let services = [
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "nginx", "namespace": "production"},
                   "spec": {"clusterIP": "10.96.0.11", "clusterIPs": ["10.96.0.11", "fd00:10:96::b"], "selector": {"app": "nginx"}}}),
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "db", "namespace": "production"},
                   "spec": {"clusterIP": "None", "selector": {"app": "db"}}}),
        ];
        let pods = [json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "db-0", "namespace": "production", "labels": {"app": "db"}},
                           "spec": {"hostname": "db-0", "subdomain": "db"}, "status": {"podIPs": [{"ip": "10.244.1.7"}]}})];
        records(&services, &pods)
    }

    #[test]
    fn services_and_headless_services() {
        let records = cluster();
        assert_eq!(records["nginx.production.svc.cluster.local."], vec!["10.96.0.11".parse::<IpAddr>().unwrap(), "fd00:10:96::b".parse().unwrap()]);
        assert_eq!(records["db.production.svc.cluster.local."], vec!["10.244.1.7".parse::<IpAddr>().unwrap()]);
        assert_eq!(records["db-0.db.production.svc.cluster.local."], vec!["10.244.1.7".parse::<IpAddr>().unwrap()]);
    }

    #[test]
    fn answers_a_aaaa_and_nxdomain() {
        let records = cluster();
        let reply = answer(&query("NGINX.production.svc.cluster.local.", RecordType::A), &records);
        assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
        assert_eq!(reply.answers.len(), 1);
        assert_eq!(reply.answers[0].data, RData::A(A("10.96.0.11".parse().unwrap())));
        let reply = answer(&query("nginx.production.svc.cluster.local.", RecordType::AAAA), &records);
        assert_eq!(reply.answers[0].data, RData::AAAA(AAAA("fd00:10:96::b".parse().unwrap())));
        // A name the search path tries first, then one that exists nowhere.
        let reply = answer(&query("nginx.develop.svc.cluster.local.", RecordType::A), &records);
        assert_eq!(reply.metadata.response_code, ResponseCode::NXDomain);
        let reply = answer(&query("example.com.", RecordType::A), &records);
        assert_eq!(reply.metadata.response_code, ResponseCode::NXDomain);
        // Round trip through the wire format.
        let bytes = answer(&query("nginx.production.svc.cluster.local.", RecordType::A), &records).to_vec().unwrap();
        assert_eq!(Message::from_vec(&bytes).unwrap().answers.len(), 1);
    }
}
