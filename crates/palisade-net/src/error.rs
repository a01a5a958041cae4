/// A failed network operation, naming what it was doing.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("cannot open network namespace {path}: {source}")]
    Namespace { path: String, source: std::io::Error },
    #[error("cannot enter network namespace {path}: {source}")]
    Enter { path: String, source: nix::Error },
    #[error("{what}: {source}")]
    Netlink { what: String, source: rtnetlink::Error },
    #[error("{what}: {source}")]
    Io { what: String, source: std::io::Error },
    #[error("no interface {name} {place}")]
    NoSuchLink { name: String, place: String },
}

impl NetError {
    pub(crate) fn netlink(what: impl Into<String>) -> impl FnOnce(rtnetlink::Error) -> NetError {
        let what = what.into();
        move |source| NetError::Netlink { what, source }
    }

    /// Whether the kernel said the object already exists (EEXIST).
    pub fn is_exists(&self) -> bool {
        matches!(self, NetError::Netlink { source: rtnetlink::Error::NetlinkError(e), .. } if e.raw_code() == -libc_eexist())
    }
}

fn libc_eexist() -> i32 {
    nix::errno::Errno::EEXIST as i32
}
