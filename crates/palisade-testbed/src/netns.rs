//! Named network namespaces that clean up after themselves.

use std::fs::File;
use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

use nix::sched::{CloneFlags, setns};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// Whether privileged tests can run. Without root they skip, unless the environment says a
/// skip is a failure (CI sets `PALISADE_REQUIRE_PRIVILEGED=1`).
pub fn require_privileges() -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    if std::env::var("PALISADE_REQUIRE_PRIVILEGED").is_ok_and(|v| v == "1") {
        panic!("this test needs root (network namespaces) and PALISADE_REQUIRE_PRIVILEGED=1 forbids skipping it");
    }
    eprintln!("skipped: needs root");
    false
}

/// A named network namespace, deleted on drop.
pub struct NetNs {
    pub name: String,
}

impl NetNs {
    /// Creates a namespace named after this process and `role`, with `lo` up.
    pub fn new(role: &str) -> Self {
        let name = format!("pt{}-{}-{role}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed));
        run_checked(Command::new("ip").args(["netns", "add", &name]));
        let ns = Self { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// Runs a command inside the namespace and returns its output (not checked).
    pub fn exec(&self, program: &str, args: &[&str]) -> Output {
        Command::new("ip").args(["netns", "exec", &self.name, program]).args(args).output().unwrap_or_else(|e| panic!("cannot run {program} in {}: {e}", self.name))
    }

    /// Runs a command inside the namespace, feeding `input` on stdin.
    pub fn exec_with_input(&self, program: &str, args: &[&str], input: &str) -> Output {
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.name, program])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {program} in {}: {e}", self.name));
        child.stdin.take().expect("stdin is piped").write_all(input.as_bytes()).expect("write stdin");
        child.wait_with_output().expect("wait for command")
    }

    /// `ip -n <ns> ARGS`, which must succeed.
    pub fn ip(&self, args: &[&str]) {
        run_checked(Command::new("ip").args(["-n", &self.name]).args(args));
    }

    /// Many `ip` commands in one process (`ip -n <ns> -batch -`), which must all succeed.
    pub fn ip_batch(&self, lines: &[String]) {
        let output = Command::new("ip")
            .args(["-n", &self.name, "-batch", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                child.stdin.take().expect("stdin is piped").write_all(lines.join("\n").as_bytes())?;
                child.wait_with_output()
            })
            .expect("run ip -batch");
        assert!(output.status.success(), "ip -n {} -batch failed: {}\n{}", self.name, String::from_utf8_lossy(&output.stderr), lines.join("\n"));
    }

    /// Sets a sysctl inside the namespace (network sysctls are per namespace).
    pub fn sysctl(&self, key: &str, value: &str) {
        let output = self.exec("sysctl", &["-qw", &format!("{key}={value}")]);
        assert!(output.status.success(), "sysctl {key}={value} in {}: {}", self.name, String::from_utf8_lossy(&output.stderr));
    }

    /// Runs `f` on a new thread that has entered the namespace. Sockets it creates stay in
    /// the namespace; the calling thread is never moved.
    pub fn enter<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> std::thread::JoinHandle<T> {
        let file = File::open(format!("/run/netns/{}", self.name)).expect("namespace file exists");
        std::thread::spawn(move || {
            setns(&file, CloneFlags::CLONE_NEWNET).expect("setns into test namespace");
            f()
        })
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.name]).output();
    }
}

pub(crate) fn run_checked(command: &mut Command) {
    let output = command.output().unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    assert!(output.status.success(), "{command:?} failed: {}", String::from_utf8_lossy(&output.stderr));
}
