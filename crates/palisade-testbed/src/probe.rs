//! Servers inside pods, and connection attempts between them.

use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv6Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use crate::netns::NetNs;

/// What a connection attempt saw.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// TCP connected, or the UDP echo came back.
    Connected,
    /// Refused or unreachable at once (TCP reset to the SYN, ICMP error): a reject.
    Refused,
    /// No answer before the timeout: a drop.
    Timeout,
    /// Any other failure (a reset after connecting, no local port left, ...): not a verdict.
    Failed(ErrorKind),
}

impl Outcome {
    pub fn allowed(self) -> bool {
        self == Outcome::Connected
    }
}

/// TCP and UDP servers (echo) in a pod namespace, on every given port, for IPv4 and IPv6.
/// Stopped on drop.
pub struct Servers {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Servers {
    pub fn start(ns: &NetNs, tcp: &[u16], udp: &[u16]) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        let (ready_tx, ready_rx) = mpsc::channel();
        for &port in tcp {
            let (stop, ready) = (stop.clone(), ready_tx.clone());
            threads.push(ns.enter(move || {
                // [::] with IPV6_V6ONLY off (Linux's default) serves IPv4 too.
                let listener = TcpListener::bind(SocketAddr::from((Ipv6Addr::UNSPECIFIED, port))).expect("bind tcp");
                listener.set_nonblocking(true).expect("nonblocking");
                ready.send(()).expect("signal ready");
                while !stop.load(Ordering::Relaxed) {
                    // Wake as soon as a connection waits (or every 20 ms to see `stop`).
                    let mut fds = [nix::poll::PollFd::new(listener.as_fd(), nix::poll::PollFlags::POLLIN)];
                    if !matches!(nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(20u8)), Ok(n) if n > 0) {
                        continue;
                    }
                    while let Ok((mut stream, _)) = listener.accept() {
                        let _ = stream.set_nonblocking(false);
                        let _ = stream.write_all(b"hello\n");
                    }
                }
            }));
        }
        for &port in udp {
            let (stop, ready) = (stop.clone(), ready_tx.clone());
            threads.push(ns.enter(move || {
                let socket = UdpSocket::bind(SocketAddr::from((Ipv6Addr::UNSPECIFIED, port))).expect("bind udp");
                socket.set_read_timeout(Some(Duration::from_millis(20))).expect("timeout");
                ready.send(()).expect("signal ready");
                let mut buf = [0u8; 512];
                while !stop.load(Ordering::Relaxed) {
                    if let Ok((n, from)) = socket.recv_from(&mut buf) {
                        let _ = socket.send_to(&buf[..n], from);
                    }
                }
            }));
        }
        // A server thread that fails drops its sender without signalling; do not wait forever.
        drop(ready_tx);
        for _ in 0..threads.len() {
            ready_rx.recv().expect("a server thread failed to start (see its panic)");
        }
        Self { stop, threads }
    }
}

impl Drop for Servers {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

type Request = (IpAddr, u16, bool, Duration, mpsc::Sender<Outcome>);

/// Makes connection attempts from inside one pod namespace (a thread that entered it).
pub struct Prober {
    requests: Option<mpsc::Sender<Request>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Prober {
    pub fn new(ns: &NetNs) -> Self {
        let (tx, rx) = mpsc::channel::<Request>();
        let thread = ns.enter(move || {
            for (ip, port, udp, timeout, reply) in rx {
                let _ = reply.send(if udp { probe_udp(ip, port, timeout) } else { probe_tcp(ip, port, timeout) });
            }
        });
        Self { requests: Some(tx), thread: Some(thread) }
    }

    /// One new connection to `ip:port` (TCP, or UDP when `udp`).
    pub fn probe(&self, ip: IpAddr, port: u16, udp: bool, timeout: Duration) -> Outcome {
        let (tx, rx) = mpsc::channel();
        self.requests.as_ref().expect("prober is running").send((ip, port, udp, timeout, tx)).expect("prober thread alive");
        rx.recv().expect("prober answers")
    }
}

impl Drop for Prober {
    fn drop(&mut self) {
        self.requests.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn classify(error: &std::io::Error) -> Outcome {
    match error.kind() {
        ErrorKind::TimedOut | ErrorKind::WouldBlock => Outcome::Timeout,
        // What a TCP reset or an ICMP unreachable becomes: ECONNREFUSED, EHOSTUNREACH (ICMP
        // admin-prohibited), EACCES (ICMPv6 administratively prohibited).
        ErrorKind::ConnectionRefused | ErrorKind::HostUnreachable | ErrorKind::NetworkUnreachable | ErrorKind::PermissionDenied => Outcome::Refused,
        kind => Outcome::Failed(kind),
    }
}

fn probe_tcp(ip: IpAddr, port: u16, timeout: Duration) -> Outcome {
    match TcpStream::connect_timeout(&SocketAddr::new(ip, port), timeout) {
        Ok(mut stream) => {
            // The server greets every connection; reading it proves the far end answered.
            let _ = stream.set_read_timeout(Some(timeout));
            let mut buf = [0u8; 6];
            match stream.read_exact(&mut buf) {
                Ok(()) => Outcome::Connected,
                Err(e) => classify(&e),
            }
        }
        Err(e) => classify(&e),
    }
}

fn probe_udp(ip: IpAddr, port: u16, timeout: Duration) -> Outcome {
    let bind: SocketAddr = if ip.is_ipv4() { "0.0.0.0:0".parse().expect("addr") } else { "[::]:0".parse().expect("addr") };
    let socket = match UdpSocket::bind(bind) {
        Ok(s) => s,
        Err(e) => return classify(&e),
    };
    if let Err(e) = socket.connect(SocketAddr::new(ip, port)).and_then(|()| socket.set_read_timeout(Some(timeout))) {
        return classify(&e);
    }
    if let Err(e) = socket.send(b"probe") {
        return classify(&e);
    }
    let mut buf = [0u8; 16];
    match socket.recv(&mut buf) {
        Ok(_) => Outcome::Connected,
        Err(e) => classify(&e),
    }
}
