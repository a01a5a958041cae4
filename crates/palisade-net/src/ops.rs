//! Running netlink requests: a connection in the current namespace, or in another one from a
//! thread that entered it.

use std::fs::File;
use std::future::Future;
use std::path::Path;

use nix::sched::{CloneFlags, setns};
use rtnetlink::Handle;

use crate::error::NetError;

/// Runs `f` with a netlink handle bound to the calling thread's network namespace.
pub fn with_netlink<T, F, Fut>(f: F) -> Result<T, NetError>
where
    F: FnOnce(Handle) -> Fut,
    Fut: Future<Output = Result<T, NetError>>,
{
    let runtime = tokio::runtime::Builder::new_current_thread().enable_io().build().map_err(|source| NetError::Io { what: "starting the netlink runtime".into(), source })?;
    runtime.block_on(async {
        let (connection, handle, _) = rtnetlink::new_connection().map_err(|source| NetError::Io { what: "opening a netlink socket".into(), source })?;
        tokio::spawn(connection);
        f(handle).await
    })
}

/// Opens a network namespace file (`/run/netns/x`, `/proc/<pid>/ns/net`).
pub fn open_namespace(path: &Path) -> Result<File, NetError> {
    File::open(path).map_err(|source| NetError::Namespace { path: path.display().to_string(), source })
}

/// Runs `f` on a thread that entered the namespace at `path`, with a netlink handle there.
pub fn in_namespace<T, F, Fut>(path: &Path, f: F) -> Result<T, NetError>
where
    T: Send,
    F: FnOnce(Handle) -> Fut + Send,
    Fut: Future<Output = Result<T, NetError>>,
{
    let file = open_namespace(path)?;
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                setns(&file, CloneFlags::CLONE_NEWNET).map_err(|source| NetError::Enter { path: path.display().to_string(), source })?;
                with_netlink(f)
            })
            .join()
            .unwrap_or_else(|_| Err(NetError::Io { what: "namespace thread panicked".into(), source: std::io::Error::other("panic") }))
    })
}
