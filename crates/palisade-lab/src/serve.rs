//! `palisade serve`: the built-in server of pods whose image has no program on this machine
//! (agnhost and the like). Every TCP port answers HTTP requests with `200 OK` and the pod's
//! hostname, and other clients with the hostname and a newline; every UDP port answers each
//! datagram with the hostname. What the upstream e2e tests' agnhost `serve-hostname` does.

use std::io::{Read, Write};
use std::net::{Ipv6Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::time::Duration;

use crate::error::LabError;

fn bind_error(proto: &str, port: u16) -> impl FnOnce(std::io::Error) -> LabError {
    move |e| LabError::failed(format!("cannot listen on {proto} port {port}: {e}"))
}

fn answer(mut stream: TcpStream, hostname: &str) {
    let _ = stream.set_read_timeout(Some(Duration::from_millis(300)));
    let mut buffer = [0u8; 2048];
    let read = stream.read(&mut buffer).unwrap_or(0);
    let request = &buffer[..read];
    let is_http = ["GET ", "HEAD ", "POST ", "PUT ", "OPTIONS "].iter().any(|m| request.starts_with(m.as_bytes()));
    let body = format!("{hostname}\n");
    let reply = if is_http {
        let head_only = request.starts_with(b"HEAD ");
        format!("HTTP/1.1 200 OK\r\nServer: palisade-serve\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}", body.len(), if head_only { "" } else { &body })
    } else {
        body
    };
    let _ = stream.write_all(reply.as_bytes());
}

/// Serves until the process is killed. Sockets are dual-stack (`[::]`).
pub fn serve(tcp: &[u16], udp: &[u16], hostname: &str) -> Result<(), LabError> {
    if tcp.is_empty() && udp.is_empty() {
        return Err(LabError::invalid("palisade serve: give at least one --tcp or --udp port"));
    }
    let mut threads = Vec::new();
    for &port in tcp {
        let listener = TcpListener::bind(SocketAddr::from((Ipv6Addr::UNSPECIFIED, port))).map_err(bind_error("TCP", port))?;
        let hostname = hostname.to_string();
        threads.push(std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let hostname = hostname.clone();
                std::thread::spawn(move || answer(stream, &hostname));
            }
        }));
    }
    for &port in udp {
        let socket = UdpSocket::bind(SocketAddr::from((Ipv6Addr::UNSPECIFIED, port))).map_err(bind_error("UDP", port))?;
        let reply = format!("{hostname}\n");
        threads.push(std::thread::spawn(move || {
            let mut buffer = [0u8; 2048];
            while let Ok((_, from)) = socket.recv_from(&mut buffer) {
                let _ = socket.send_to(reply.as_bytes(), from);
            }
        }));
    }
    for thread in threads {
        let _ = thread.join();
    }
    Ok(())
}
