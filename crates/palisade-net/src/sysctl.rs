//! Sysctls of the calling thread's network namespace (/proc/sys/net is per namespace).

use crate::error::NetError;

fn path(key: &str) -> String {
    format!("/proc/sys/{}", key.replace('.', "/"))
}

pub fn write_sysctl(key: &str, value: &str) -> Result<(), NetError> {
    std::fs::write(path(key), value).map_err(|source| NetError::Io { what: format!("setting {key}={value}"), source })
}

pub fn read_sysctl(key: &str) -> Result<String, NetError> {
    std::fs::read_to_string(path(key)).map(|v| v.trim().to_string()).map_err(|source| NetError::Io { what: format!("reading {key}"), source })
}
