//! Named network namespaces, as `ip netns` manages them: a namespace is kept alive by a bind
//! mount of its `nsfs` file onto `/run/netns/<name>`, so `ip netns exec`, CNI runtimes and
//! Palisade all find it by path.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, unshare};

use crate::error::NetError;
use crate::ops::{open_namespace, with_netlink};

pub const NETNS_RUN_DIR: &str = "/run/netns";

fn io(what: String) -> impl FnOnce(std::io::Error) -> NetError {
    move |source| NetError::Io { what, source }
}

fn nix_io(what: String) -> impl FnOnce(nix::Error) -> NetError {
    move |e| NetError::Io { what, source: std::io::Error::from(e) }
}

/// The path of a named namespace.
pub fn netns_path(name: &str) -> PathBuf {
    Path::new(NETNS_RUN_DIR).join(name)
}

/// Makes `/run/netns` a shared mount point, as `ip netns add` does, so a namespace mounted
/// later is visible from mount namespaces made before (`ip netns exec` children, runtimes).
fn prepare_run_dir() -> Result<(), NetError> {
    std::fs::create_dir_all(NETNS_RUN_DIR).map_err(io(format!("creating {NETNS_RUN_DIR}")))?;
    let shared = || mount(None::<&str>, NETNS_RUN_DIR, None::<&str>, MsFlags::MS_SHARED | MsFlags::MS_REC, None::<&str>);
    if shared().is_ok() {
        return Ok(());
    }
    // Not a mount point yet: bind it onto itself first.
    mount(Some(NETNS_RUN_DIR), NETNS_RUN_DIR, None::<&str>, MsFlags::MS_BIND | MsFlags::MS_REC, None::<&str>).map_err(nix_io(format!("bind-mounting {NETNS_RUN_DIR} onto itself")))?;
    shared().map_err(nix_io(format!("making {NETNS_RUN_DIR} a shared mount")))
}

/// Creates the named namespace with `lo` up. Fails if the name is taken.
pub fn create_named(name: &str) -> Result<PathBuf, NetError> {
    prepare_run_dir()?;
    let path = netns_path(name);
    OpenOptions::new().write(true).create_new(true).open(&path).map_err(io(format!("creating {} (does the namespace exist already?)", path.display())))?;
    let target = path.clone();
    let made = std::thread::spawn(move || -> Result<(), NetError> {
        // A new namespace for this thread only, pinned by a bind mount before the thread ends.
        unshare(CloneFlags::CLONE_NEWNET).map_err(nix_io("creating a network namespace".into()))?;
        mount(Some("/proc/thread-self/ns/net"), &target, None::<&str>, MsFlags::MS_BIND, None::<&str>).map_err(nix_io(format!("bind-mounting the new namespace onto {}", target.display())))?;
        set_loopback_up()
    })
    .join()
    .unwrap_or_else(|_| Err(NetError::Io { what: "namespace thread panicked".into(), source: std::io::Error::other("panic") }));
    if let Err(error) = made {
        let _ = umount2(&path, MntFlags::MNT_DETACH);
        let _ = std::fs::remove_file(&path);
        return Err(error);
    }
    Ok(path)
}

fn set_loopback_up() -> Result<(), NetError> {
    with_netlink(|handle| async move {
        use futures::TryStreamExt;
        let mut links = handle.link().get().match_name("lo".to_string()).execute();
        if let Some(lo) = links.try_next().await.map_err(NetError::netlink("looking up lo"))? {
            handle.link().set(rtnetlink::LinkUnspec::new_with_index(lo.header.index).up().build()).execute().await.map_err(NetError::netlink("setting lo up"))?;
        }
        Ok(())
    })
}

/// Deletes a named namespace: unmounts and removes its file. The namespace itself goes when
/// the last process in it exits. `Ok(false)` if there was no such namespace.
pub fn delete_named(name: &str) -> Result<bool, NetError> {
    let path = netns_path(name);
    if !path.exists() {
        return Ok(false);
    }
    let _ = umount2(&path, MntFlags::MNT_DETACH);
    std::fs::remove_file(&path).map_err(io(format!("removing {}", path.display())))?;
    Ok(true)
}

/// Names of the named namespaces that start with `prefix`, sorted.
pub fn list_named(prefix: &str) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(NETNS_RUN_DIR).map(|entries| entries.filter_map(|e| e.ok()?.file_name().into_string().ok()).filter(|n| n.starts_with(prefix)).collect()).unwrap_or_default();
    names.sort();
    names
}

/// Runs `f` on a thread that entered the namespace at `path` (sockets it opens and processes
/// it spawns live there); the calling thread never changes namespace.
pub fn run_in<T: Send>(path: &Path, f: impl FnOnce() -> T + Send) -> Result<T, NetError> {
    let file = open_namespace(path)?;
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                nix::sched::setns(&file, CloneFlags::CLONE_NEWNET).map_err(|source| NetError::Enter { path: path.display().to_string(), source })?;
                Ok(f())
            })
            .join()
            .unwrap_or_else(|_| Err(NetError::Io { what: "namespace thread panicked".into(), source: std::io::Error::other("panic") }))
    })
}

/// Processes whose network namespace is one of `namespaces` (paths of mounted namespaces).
/// This finds a sandbox's processes whatever they did to their environment or process
/// group (nginx, for one, clears its environment).
pub fn processes_in(namespaces: &[PathBuf]) -> Vec<i32> {
    use std::os::unix::fs::MetadataExt;
    let identity = |path: &Path| std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()));
    let wanted: Vec<(u64, u64)> = namespaces.iter().filter_map(|p| identity(p)).collect();
    if wanted.is_empty() {
        return Vec::new();
    }
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| identity(Path::new(&format!("/proc/{pid}/ns/net"))).is_some_and(|id| wanted.contains(&id)))
        .collect()
}
