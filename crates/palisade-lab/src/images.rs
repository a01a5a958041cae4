//! What a container runs. The lab has no images: an image name maps to a program on this
//! machine, as the table says. `nginx*` is the host's nginx with a per-pod config;
//! `agnhost`, and images that declare ports but have no program here, get the built-in
//! server; images like curl or busybox run their command with the host's tools; Palisade's
//! own image (`localhost/palisade`, its DaemonSet's) runs this `palisade` binary, whose
//! `palisade-cni` sits beside it as in the image.

use std::path::{Path, PathBuf};

use serde_json::Value;

/// The program of one container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Program {
    /// The host's nginx serving a default page on these TCP ports.
    Nginx { ports: Vec<u16> },
    /// `palisade serve`: answers TCP and UDP on these ports.
    Serve { tcp: Vec<u16>, udp: Vec<u16> },
    /// The cluster DNS server (the lab's kube-dns image).
    Dns,
    /// A command line run as is.
    Exec { argv: Vec<String> },
    /// The `palisade` binary with these arguments (Palisade's own image).
    Palisade { args: Vec<String> },
}

/// Why a container cannot start, as a runtime reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StartError {
    pub reason: String,
    pub message: String,
}

/// The image the lab's cluster DNS pod uses.
pub const DNS_IMAGE: &str = "palisade/lab-dns";
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// `docker.io/library/nginx:1.14.2` -> `nginx`.
pub fn image_base(image: &str) -> &str {
    let without_digest = image.split('@').next().unwrap_or(image);
    let last = without_digest.rsplit('/').next().unwrap_or(without_digest);
    last.split(':').next().unwrap_or(last)
}

fn strings(value: &Value) -> Vec<String> {
    value.as_array().map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect()).unwrap_or_default()
}

/// Declared container ports by protocol.
fn declared_ports(container: &Value) -> (Vec<u16>, Vec<u16>) {
    let (mut tcp, mut udp) = (Vec::new(), Vec::new());
    for port in container["ports"].as_array().into_iter().flatten() {
        let Some(number) = port["containerPort"].as_u64().and_then(|n| u16::try_from(n).ok()) else { continue };
        match port["protocol"].as_str().unwrap_or("TCP") {
            "UDP" => udp.push(number),
            "TCP" => tcp.push(number),
            _ => {}
        }
    }
    (tcp, udp)
}

/// Ports from agnhost-style flags (`--port=8080`, `--http-port 80`, `--udp-port=53`).
fn flag_ports(args: &[String]) -> (Vec<u16>, Vec<u16>) {
    let (mut tcp, mut udp) = (Vec::new(), Vec::new());
    let mut iter = args.iter().peekable();
    while let Some(arg) = iter.next() {
        let (flag, value) = match arg.split_once('=') {
            Some((f, v)) => (f.to_string(), Some(v.to_string())),
            None => (arg.clone(), None),
        };
        let target = match flag.as_str() {
            "--port" | "--http-port" | "--tcp-port" => &mut tcp,
            "--udp-port" => &mut udp,
            _ => continue,
        };
        let value = value.or_else(|| iter.next().cloned());
        if let Some(port) = value.and_then(|v| v.parse::<u16>().ok()) {
            target.push(port);
        }
    }
    (tcp, udp)
}

/// The entrypoint an image would run, for images the lab knows.
fn entrypoint(base: &str) -> Option<Vec<String>> {
    match base {
        "curl" => Some(vec!["curl".into()]),
        "busybox" | "alpine" | "debian" | "ubuntu" | "fedora" | "centos" | "netshoot" | "bash" => Some(vec!["sh".into()]),
        _ => None,
    }
}

/// Finds `program` as execvp would, in `path` (a `$PATH` value).
pub fn find_program(program: &str, path: &str) -> Option<PathBuf> {
    if program.contains('/') {
        return Path::new(program).is_file().then(|| PathBuf::from(program));
    }
    path.split(':').map(|dir| Path::new(dir).join(program)).find(|candidate| {
        use std::os::unix::fs::PermissionsExt;
        candidate.metadata().is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    })
}

fn not_found(program: &str) -> StartError {
    StartError { reason: "StartError".into(), message: format!("exec: \"{program}\": executable file not found in $PATH (the lab runs containers as host programs)") }
}

/// The program for one container of a pod spec.
pub fn plan(container: &Value) -> Result<Program, StartError> {
    let image = container["image"].as_str().unwrap_or_default();
    let base = image_base(image);
    let command = strings(&container["command"]);
    let args = strings(&container["args"]);
    let (mut tcp, mut udp) = declared_ports(container);
    if image == DNS_IMAGE {
        return Ok(Program::Dns);
    }
    if base == "palisade" {
        // The image's default command is `palisade agent` (Containerfile).
        let argv = match (command.is_empty(), args.is_empty()) {
            (true, true) => vec!["palisade".to_string(), "agent".to_string()],
            (true, false) => args,
            (false, _) => [command, args].concat(),
        };
        return match argv.split_first() {
            Some((program, rest)) if image_base(program) == "palisade" => Ok(Program::Palisade { args: rest.to_vec() }),
            _ => Err(StartError {
                reason: "StartError".into(),
                message: format!("image {image:?}: the lab runs only `palisade` from Palisade's image, not {:?}", argv.first().map(String::as_str).unwrap_or_default()),
            }),
        };
    }
    if base == "agnhost" {
        let (flag_tcp, flag_udp) = flag_ports(&[command.clone(), args.clone()].concat());
        tcp.extend(flag_tcp);
        udp.extend(flag_udp);
        tcp.sort_unstable();
        tcp.dedup();
        udp.sort_unstable();
        udp.dedup();
        return Ok(Program::Serve { tcp, udp });
    }
    let argv = match (command.is_empty(), args.is_empty()) {
        (false, _) => [command, args].concat(),
        // Only curl's image has an entrypoint that arguments go to; the others run them.
        (true, false) if base == "curl" => [vec!["curl".to_string()], args].concat(),
        (true, false) => args,
        (true, true) if base.starts_with("nginx") => return Ok(Program::Nginx { ports: if tcp.is_empty() { vec![80] } else { tcp } }),
        (true, true) if !tcp.is_empty() || !udp.is_empty() => return Ok(Program::Serve { tcp, udp }),
        (true, true) => entrypoint(base).ok_or_else(|| StartError {
            reason: "StartError".into(),
            message: format!("image {image:?}: the lab has no program for it: give the container a command (run with the host's tools), or containerPorts (served by the built-in server)"),
        })?,
    };
    let path = container["env"].as_array().into_iter().flatten().find(|e| e["name"] == "PATH").and_then(|e| e["value"].as_str()).unwrap_or(DEFAULT_PATH);
    if find_program(&argv[0], path).is_none() {
        return Err(not_found(&argv[0]));
    }
    Ok(Program::Exec { argv })
}

/// The nginx configuration of one pod: the default page on `ports` (IPv4 and IPv6), every
/// file nginx writes inside `dir`.
pub fn nginx_config(dir: &Path, ports: &[u16]) -> String {
    let d = dir.display();
    let listens: String = ports.iter().map(|p| format!("        listen {p};\n        listen [::]:{p};\n")).collect();
    format!(
        "# Written by palisade lab for one pod.
daemon off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/nginx-error.log;
events {{ worker_connections 512; }}
http {{
    types {{ text/html html; }}
    default_type application/octet-stream;
    access_log off;
    client_body_temp_path {d}/tmp/body;
    proxy_temp_path {d}/tmp/proxy;
    fastcgi_temp_path {d}/tmp/fastcgi;
    uwsgi_temp_path {d}/tmp/uwsgi;
    scgi_temp_path {d}/tmp/scgi;
    server {{
{listens}        root {d}/html;
        index index.html;
    }}
}}
"
    )
}

/// nginx's default page.
pub const NGINX_INDEX: &str = "<!DOCTYPE html>
<html>
<head>
<title>Welcome to nginx!</title>
</head>
<body>
<h1>Welcome to nginx!</h1>
<p>If you see this page, the nginx web server is successfully installed and
working. Further configuration is required.</p>
<p><em>Thank you for using nginx.</em></p>
</body>
</html>
";

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn images_map_to_programs() {
        assert_eq!(image_base("docker.io/library/nginx:1.14.2"), "nginx");
        assert_eq!(image_base("registry.k8s.io/e2e-test-images/agnhost:2.47@sha256:abc"), "agnhost");
        assert_eq!(plan(&json!({"image": "nginx:1.14.2", "ports": [{"containerPort": 80}]})), Ok(Program::Nginx { ports: vec![80] }));
        assert_eq!(plan(&json!({"image": "nginx"})), Ok(Program::Nginx { ports: vec![80] }));
        assert_eq!(
            plan(&json!({"image": "registry.k8s.io/e2e-test-images/agnhost:2.47", "args": ["porter"], "ports": [{"containerPort": 81}, {"containerPort": 53, "protocol": "UDP"}]})),
            Ok(Program::Serve { tcp: vec![81], udp: vec![53] })
        );
        assert_eq!(plan(&json!({"image": "agnhost", "args": ["netexec", "--http-port=8080", "--udp-port", "8081"]})), Ok(Program::Serve { tcp: vec![8080], udp: vec![8081] }));
        assert_eq!(plan(&json!({"image": "mycompany/api:3", "ports": [{"containerPort": 8080}]})), Ok(Program::Serve { tcp: vec![8080], udp: vec![] }));
        assert_eq!(plan(&json!({"image": "curlimages/curl:8.8.0", "command": ["sleep", "infinity"]})), Ok(Program::Exec { argv: vec!["sleep".into(), "infinity".into()] }));
        assert_eq!(plan(&json!({"image": "busybox", "args": ["sleep", "10"]})), Ok(Program::Exec { argv: vec!["sleep".into(), "10".into()] }));
        assert_eq!(plan(&json!({"image": "busybox"})), Ok(Program::Exec { argv: vec!["sh".into()] }));
        assert_eq!(
            plan(&json!({"image": "localhost/palisade:0.1.0", "command": ["palisade", "install-cni", "--bin-dir=/host/opt/cni/bin"]})),
            Ok(Program::Palisade { args: vec!["install-cni".into(), "--bin-dir=/host/opt/cni/bin".into()] })
        );
        assert_eq!(plan(&json!({"image": "ghcr.io/x/palisade@sha256:ab", "command": ["/usr/local/bin/palisade"], "args": ["agent"]})), Ok(Program::Palisade { args: vec!["agent".into()] }));
        assert_eq!(plan(&json!({"image": "localhost/palisade:0.1.0"})), Ok(Program::Palisade { args: vec!["agent".into()] }));
        assert!(plan(&json!({"image": "localhost/palisade:0.1.0", "command": ["sh", "-c", "true"]})).is_err());
    }

    #[test]
    fn unknown_programs_and_images_fail_clearly() {
        let e = plan(&json!({"image": "busybox", "command": ["no-such-program-xyz"]})).unwrap_err();
        assert_eq!(e.reason, "StartError");
        assert!(e.message.starts_with("exec: \"no-such-program-xyz\": executable file not found in $PATH"), "{}", e.message);
        let e = plan(&json!({"image": "mycompany/batch:1"})).unwrap_err();
        assert!(e.message.contains("has no program for it"), "{}", e.message);
    }

    #[test]
    fn nginx_config_listens_on_both_families() {
        let config = nginx_config(Path::new("/tmp/p"), &[80, 8080]);
        assert!(config.contains("listen 80;") && config.contains("listen [::]:8080;") && config.contains("root /tmp/p/html;"));
    }
}
