//! Lab errors. Messages are what the user sees after `error: `; kubectl-shaped where kubectl
//! has a wording for the same situation.

#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// Bad input: nothing was changed.
    #[error("{0}")]
    Invalid(String),
    /// An object that does not exist.
    #[error("{0}")]
    NotFound(String),
    #[error(transparent)]
    Net(#[from] palisade_net::NetError),
    #[error("{what}: {source}")]
    Io { what: String, source: std::io::Error },
    /// Something the lab tried failed (a CNI call, nft, a process).
    #[error("{0}")]
    Failed(String),
}

impl LabError {
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::Invalid(message.into())
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::NotFound(message.into())
    }

    pub fn failed(message: impl Into<String>) -> Self {
        Self::Failed(message.into())
    }

    pub fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let what = what.into();
        move |source| Self::Io { what, source }
    }
}
