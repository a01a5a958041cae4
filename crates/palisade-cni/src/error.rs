//! CNI errors: the spec's error object on stdout and a non-zero exit (spec §5, "Error").

use serde::Serialize;

/// Error codes from the spec, and Palisade's own (100 and up).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Code {
    IncompatibleVersion = 1,
    UnsupportedField = 2,
    UnknownContainer = 3,
    InvalidEnvironment = 4,
    Io = 5,
    Decode = 6,
    InvalidConfig = 7,
    /// The agent did not confirm the pod's rules in time: the runtime should retry.
    TryAgainLater = 11,
    NotAvailable = 50,
    /// No free address in a range.
    RangeExhausted = 100,
    /// The pod already has an interface of the requested name, not made by Palisade.
    InterfaceExists = 101,
    /// A netlink operation failed.
    Network = 102,
    /// CHECK found the pod's network differs from what ADD set up.
    CheckFailed = 103,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{msg}{}", if details.is_empty() { String::new() } else { format!(": {details}") })]
pub struct CniError {
    pub code: Code,
    pub msg: String,
    pub details: String,
}

impl CniError {
    pub fn new(code: Code, msg: impl Into<String>) -> Self {
        Self { code, msg: msg.into(), details: String::new() }
    }

    pub fn with_details(mut self, details: impl Into<String>) -> Self {
        self.details = details.into();
        self
    }

    /// The JSON object the runtime reads from stdout.
    pub fn to_json(&self, cni_version: &str) -> String {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Wire<'a> {
            cni_version: &'a str,
            code: u32,
            msg: &'a str,
            #[serde(skip_serializing_if = "str::is_empty")]
            details: &'a str,
        }
        serde_json::to_string(&Wire { cni_version, code: self.code as u32, msg: &self.msg, details: &self.details }).expect("error serializes")
    }
}

impl From<palisade_net::NetError> for CniError {
    fn from(error: palisade_net::NetError) -> Self {
        CniError::new(Code::Network, error.to_string())
    }
}
