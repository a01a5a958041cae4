//! `palisade probe`: one connection attempt, as upstream's `agnhost connect` makes it for the
//! NetworkPolicy e2e suite. TCP: a connect within the timeout. UDP: a datagram out and any
//! answer back (the built-in server answers every datagram). SCTP: an association, where
//! the kernel has SCTP sockets. The outcome is a word on stdout and an exit status, so a
//! runner can tell a denial from a missing feature.

use std::io::ErrorKind;
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

/// What one attempt found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Connected,
    /// Actively refused (TCP reset, ICMP unreachable or prohibited).
    Refused,
    /// No answer within the timeout.
    Timeout,
    /// The kernel here cannot make such a socket (no SCTP, say): nothing was probed.
    Unsupported(String),
    Other(String),
}

impl Outcome {
    /// `agnhost connect`'s words, and the exit status: 0 connected, 1 blocked, 3 unsupported.
    pub fn report(&self) -> (String, u8) {
        match self {
            Outcome::Connected => ("CONNECTED".into(), 0),
            Outcome::Refused => ("REFUSED".into(), 1),
            Outcome::Timeout => ("TIMEOUT".into(), 1),
            Outcome::Other(why) => (format!("OTHER: {why}"), 1),
            Outcome::Unsupported(why) => (format!("UNSUPPORTED: {why}"), 3),
        }
    }
}

fn classify(error: &std::io::Error) -> Outcome {
    match error.kind() {
        ErrorKind::ConnectionRefused | ErrorKind::HostUnreachable | ErrorKind::NetworkUnreachable => Outcome::Refused,
        ErrorKind::TimedOut | ErrorKind::WouldBlock => Outcome::Timeout,
        _ if error.raw_os_error() == Some(nix::libc::EACCES) || error.raw_os_error() == Some(nix::libc::EPERM) => Outcome::Refused,
        _ => Outcome::Other(error.to_string()),
    }
}

fn tcp(target: SocketAddr, timeout: Duration) -> Outcome {
    match TcpStream::connect_timeout(&target, timeout) {
        Ok(_) => Outcome::Connected,
        Err(e) => classify(&e),
    }
}

fn udp(target: SocketAddr, timeout: Duration) -> Outcome {
    let local: SocketAddr = if target.is_ipv4() { "0.0.0.0:0".parse().expect("valid") } else { "[::]:0".parse().expect("valid") };
    let socket = match UdpSocket::bind(local).and_then(|s| s.connect(target).map(|()| s)) {
        Ok(s) => s,
        Err(e) => return Outcome::Other(e.to_string()),
    };
    // Two datagrams within the timeout: one may be lost to a neighbour lookup.
    let deadline = Instant::now() + timeout;
    let mut buffer = [0u8; 512];
    let mut last = Outcome::Timeout;
    for attempt in 0..2u32 {
        if let Err(e) = socket.send(b"probe\n") {
            return classify(&e);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let wait = if attempt == 0 { left / 2 } else { left };
        if wait.is_zero() || socket.set_read_timeout(Some(wait)).is_err() {
            break;
        }
        match socket.recv(&mut buffer) {
            Ok(_) => return Outcome::Connected,
            Err(e) => last = classify(&e),
        }
        if last == Outcome::Refused {
            return last;
        }
    }
    last
}

fn sctp(target: SocketAddr, timeout: Duration) -> Outcome {
    use nix::sys::socket::{AddressFamily, SockFlag, SockProtocol, SockType, SockaddrStorage, connect, socket};
    let family = if target.is_ipv4() { AddressFamily::Inet } else { AddressFamily::Inet6 };
    let fd = match socket(family, SockType::Stream, SockFlag::SOCK_CLOEXEC, SockProtocol::Sctp) {
        Ok(fd) => fd,
        Err(e) => return Outcome::Unsupported(format!("no SCTP sockets on this kernel ({e})")),
    };
    // A blocking connect bounded by the send timeout (SO_SNDTIMEO applies to connect).
    let _ = nix::sys::socket::setsockopt(&fd, nix::sys::socket::sockopt::SendTimeout, &nix::sys::time::TimeVal::new(timeout.as_secs() as i64, timeout.subsec_micros() as i64));
    match connect(std::os::fd::AsRawFd::as_raw_fd(&fd), &SockaddrStorage::from(target)) {
        Ok(()) => Outcome::Connected,
        Err(e) => classify(&std::io::Error::from(e)),
    }
}

/// Probes `target` over `protocol` (`tcp`, `udp`, `sctp`, any case).
pub fn probe(protocol: &str, target: SocketAddr, timeout: Duration) -> Outcome {
    match protocol.to_ascii_lowercase().as_str() {
        "tcp" => tcp(target, timeout),
        "udp" => udp(target, timeout),
        "sctp" => sctp(target, timeout),
        other => Outcome::Other(format!("unknown protocol {other:?}: tcp, udp or sctp")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcp_and_udp_against_local_sockets() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let open = listener.local_addr().unwrap();
        assert_eq!(probe("TCP", open, Duration::from_secs(1)), Outcome::Connected);
        drop(listener);
        assert_eq!(probe("tcp", open, Duration::from_secs(1)), Outcome::Refused);

        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        let address = server.local_addr().unwrap();
        let echo = std::thread::spawn(move || {
            let mut buffer = [0u8; 64];
            let (n, from) = server.recv_from(&mut buffer).unwrap();
            server.send_to(&buffer[..n], from).unwrap();
        });
        assert_eq!(probe("udp", address, Duration::from_secs(1)), Outcome::Connected);
        echo.join().unwrap();
        // Nothing listens any more: the kernel's port unreachable is a refusal.
        assert_eq!(probe("udp", address, Duration::from_millis(400)), Outcome::Refused);
        assert_eq!(Outcome::Timeout.report(), ("TIMEOUT".to_string(), 1));
        assert!(matches!(probe("icmp", address, Duration::from_millis(10)), Outcome::Other(_)));
    }
}
