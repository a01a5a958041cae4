//! Entering a pod: what a container runtime does before it execs a container's process. The
//! pod's network namespace, a private mount namespace where the pod's own `/etc/resolv.conf`
//! and `/etc/hosts` are bind-mounted over the host's, and a UTS namespace with the pod's
//! hostname; a container's hostPath volumes are bind-mounted from its lab node's own
//! directories. Used for the lab's container processes and for `palisade lab exec`.

use std::ffi::CString;
use std::path::PathBuf;

use nix::mount::{MsFlags, mount};
use nix::sched::{CloneFlags, setns, unshare};
use serde::{Deserialize, Serialize};

use crate::error::LabError;

/// Everything needed to enter a pod.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Sandbox {
    pub netns: PathBuf,
    pub resolv_conf: PathBuf,
    pub hosts: PathBuf,
    pub hostname: String,
    /// The pod's ServiceAccount files, mounted where in-cluster clients look.
    pub secrets: Option<PathBuf>,
    /// The container's environment (PATH, HOSTNAME, its `env`).
    pub env: Vec<(String, String)>,
    /// Bind mounts `(source on the host, mountPath in the container)`: hostPath volumes,
    /// whose sources are the lab node's own directories.
    pub mounts: Vec<(PathBuf, PathBuf)>,
}

/// Where in-cluster clients read their token, CA and namespace.
pub const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

impl Sandbox {
    /// The arguments of `palisade lab pod-exec` that enter this sandbox and run `argv`.
    pub fn pod_exec_args(&self, lab: &str, argv: &[String]) -> Vec<String> {
        let mut args = vec![
            "lab".to_string(),
            "--lab".to_string(),
            lab.to_string(),
            "pod-exec".to_string(),
            "--netns".to_string(),
            self.netns.display().to_string(),
            "--resolv-conf".to_string(),
            self.resolv_conf.display().to_string(),
            "--hosts".to_string(),
            self.hosts.display().to_string(),
            "--hostname".to_string(),
            self.hostname.clone(),
        ];
        if let Some(secrets) = &self.secrets {
            args.extend(["--secrets".to_string(), secrets.display().to_string()]);
        }
        for (source, target) in &self.mounts {
            args.extend(["--mount".to_string(), format!("{}:{}", source.display(), target.display())]);
        }
        args.push("--".to_string());
        args.extend(argv.iter().cloned());
        args
    }
}

fn failed(what: &str) -> impl FnOnce(nix::Error) -> LabError + '_ {
    move |e| LabError::failed(format!("{what}: {e}"))
}

/// Moves the calling process into the sandbox. The process must be single-threaded (a
/// private mount namespace cannot be made otherwise); what it execs next runs in the pod.
pub fn enter(sandbox: &Sandbox) -> Result<(), LabError> {
    let netns = std::fs::File::open(&sandbox.netns).map_err(LabError::io(format!("opening the pod's network namespace {}", sandbox.netns.display())))?;
    unshare(CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWUTS).map_err(failed("creating the pod's mount and UTS namespaces"))?;
    // Nothing mounted here may propagate back to the host.
    mount(None::<&str>, "/", None::<&str>, MsFlags::MS_REC | MsFlags::MS_PRIVATE, None::<&str>).map_err(failed("making / private"))?;
    for (file, target) in [(&sandbox.resolv_conf, "/etc/resolv.conf"), (&sandbox.hosts, "/etc/hosts")] {
        mount(Some(file.as_path()), target, None::<&str>, MsFlags::MS_BIND, None::<&str>).map_err(|e| LabError::failed(format!("bind-mounting {} over {target}: {e}", file.display())))?;
    }
    if let Some(secrets) = &sandbox.secrets {
        // The mount point exists on the host (an empty directory under /run, made once); the
        // pod's files are mounted over it in the pod's own mount namespace only.
        std::fs::create_dir_all(SERVICE_ACCOUNT_DIR).map_err(LabError::io(format!("creating {SERVICE_ACCOUNT_DIR}")))?;
        mount(Some(secrets.as_path()), SERVICE_ACCOUNT_DIR, None::<&str>, MsFlags::MS_BIND, None::<&str>)
            .map_err(|e| LabError::failed(format!("bind-mounting {} over {SERVICE_ACCOUNT_DIR}: {e}", secrets.display())))?;
    }
    // Last: a mount may cover where the pod's own files above came from (`/run/palisade`).
    for (source, target) in &sandbox.mounts {
        // The mount point is made on the host if missing (an empty directory); what is
        // mounted on it stays in the pod's mount namespace.
        std::fs::create_dir_all(target).map_err(LabError::io(format!("creating the mount point {}", target.display())))?;
        mount(Some(source.as_path()), target.as_path(), None::<&str>, MsFlags::MS_BIND | MsFlags::MS_REC, None::<&str>)
            .map_err(|e| LabError::failed(format!("bind-mounting {} over {}: {e}", source.display(), target.display())))?;
    }
    nix::unistd::sethostname(&sandbox.hostname).map_err(failed("setting the pod's hostname"))?;
    setns(&netns, CloneFlags::CLONE_NEWNET).map_err(failed("entering the pod's network namespace"))?;
    Ok(())
}

/// Replaces the process with `argv` (searched in the environment's PATH). Returns only on
/// failure, with the message a runtime gives.
pub fn exec(argv: &[String], env: &[(String, String)]) -> LabError {
    let Some(program) = argv.first() else { return LabError::invalid("no command given") };
    let path = env.iter().find(|(k, _)| k == "PATH").map_or(crate::images::DEFAULT_PATH, |(_, v)| v.as_str());
    let Some(resolved) = crate::images::find_program(program, path) else {
        return LabError::failed(format!("exec: \"{program}\": executable file not found in $PATH"));
    };
    let to_c = |s: &str| CString::new(s).map_err(|_| LabError::invalid(format!("argument {s:?} contains a NUL byte")));
    let file = match to_c(&resolved.display().to_string()) {
        Ok(f) => f,
        Err(e) => return e,
    };
    let args: Result<Vec<CString>, LabError> = argv.iter().map(|a| to_c(a)).collect();
    let envs: Result<Vec<CString>, LabError> = env.iter().map(|(k, v)| to_c(&format!("{k}={v}"))).collect();
    match (args, envs) {
        (Ok(args), Ok(envs)) => {
            let error = nix::unistd::execve(&file, &args, &envs).unwrap_err();
            LabError::failed(format!("exec: \"{program}\": {error}"))
        }
        (Err(e), _) | (_, Err(e)) => e,
    }
}
