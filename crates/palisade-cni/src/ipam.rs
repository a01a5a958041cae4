//! Address management: one state file per network under `dataDir`, changed only under an
//! exclusive file lock and written atomically (temporary file, fsync, rename), so concurrent
//! plugin processes never hand out an address twice and a crash never leaves a torn file.
//!
//! An allocation is recorded, with the name of the host interface, before any link exists:
//! whatever an interrupted ADD left behind, DEL and GC find it and remove it.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use crate::error::{CniError, Code};

/// One attachment's addresses and its host interface. (What ADD built is not kept: a
/// repeated ADD rebuilds its result from the links, and CHECK compares the links.)
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Allocation {
    #[serde(rename = "containerID")]
    pub container_id: String,
    pub ifname: String,
    pub ips: Vec<IpAddr>,
    pub host_interface: String,
    pub netns: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct State {
    pub allocations: Vec<Allocation>,
    /// The last address handed out per range, so released addresses are not reused at once.
    #[serde(default)]
    pub cursors: BTreeMap<String, IpAddr>,
}

impl State {
    pub fn find(&self, container_id: &str, ifname: &str) -> Option<&Allocation> {
        self.allocations.iter().find(|a| a.container_id == container_id && a.ifname == ifname)
    }

    /// Removes and returns an attachment's allocation.
    pub fn release(&mut self, container_id: &str, ifname: &str) -> Option<Allocation> {
        let index = self.allocations.iter().position(|a| a.container_id == container_id && a.ifname == ifname)?;
        Some(self.allocations.remove(index))
    }

    fn in_use(&self) -> std::collections::HashSet<IpAddr> {
        self.allocations.iter().flat_map(|a| a.ips.iter().copied()).collect()
    }

    /// The attachment's addresses: the recorded ones (ADD is idempotent), or one new address
    /// per range, recorded together with the host interface name.
    pub fn allocate(&mut self, ranges: &[IpNet], container_id: &str, ifname: &str, host_interface: &str, netns: &str) -> Result<Allocation, CniError> {
        if let Some(existing) = self.find(container_id, ifname) {
            return Ok(existing.clone());
        }
        let in_use = self.in_use();
        let mut ips = Vec::new();
        for range in ranges {
            let key = range.to_string();
            let ip = next_free(range, self.cursors.get(&key).copied(), &in_use).ok_or_else(|| {
                CniError::new(Code::RangeExhausted, format!("no free address in range {range}")).with_details(format!(
                    "{} of {} usable addresses are in use",
                    count_in(range, &in_use),
                    usable_addresses(range)
                ))
            })?;
            self.cursors.insert(key, ip);
            ips.push(ip);
        }
        let allocation = Allocation { container_id: container_id.to_string(), ifname: ifname.to_string(), ips, host_interface: host_interface.to_string(), netns: netns.to_string() };
        self.allocations.push(allocation.clone());
        Ok(allocation)
    }

    /// Free addresses per range, for STATUS.
    pub fn free(&self, range: &IpNet) -> u128 {
        usable_addresses(range) - count_in(range, &self.in_use())
    }
}

fn count_in(range: &IpNet, in_use: &std::collections::HashSet<IpAddr>) -> u128 {
    in_use.iter().filter(|ip| range.contains(*ip)).count() as u128
}

fn to_int(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

fn from_int(value: u128, v6: bool) -> IpAddr {
    if v6 { IpAddr::V6(value.into()) } else { IpAddr::V4((value as u32).into()) }
}

/// Addresses handed out: not the network address, and not the IPv4 broadcast address.
pub fn usable_addresses(range: &IpNet) -> u128 {
    let bits = u32::from(range.max_prefix_len() - range.prefix_len());
    let size = if bits >= 128 { u128::MAX } else { 1u128 << bits };
    match range {
        IpNet::V4(_) => size.saturating_sub(2),
        IpNet::V6(_) => size.saturating_sub(1),
    }
}

/// The first free address after `cursor` (wrapping around).
fn next_free(range: &IpNet, cursor: Option<IpAddr>, in_use: &std::collections::HashSet<IpAddr>) -> Option<IpAddr> {
    let usable = usable_addresses(range);
    if usable == 0 {
        return None;
    }
    let v6 = matches!(range, IpNet::V6(_));
    let base = to_int(range.network());
    // Offsets 1..=usable; start after the cursor.
    let start = cursor.filter(|c| range.contains(c)).map(|c| to_int(c) - base).unwrap_or(0);
    let attempts = usable.min(1 << 24);
    (0..attempts).map(|step| 1 + (start + step) % usable).map(|offset| from_int(base + offset, v6)).find(|ip| !in_use.contains(ip))
}

/// The state file of one network.
pub struct Store {
    path: PathBuf,
    lock_path: PathBuf,
}

fn io_error(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> CniError {
    let what = what.into();
    move |e| CniError::new(Code::Io, format!("{what}: {e}"))
}

impl Store {
    pub fn open(data_dir: &Path, network: &str) -> Result<Self, CniError> {
        std::fs::create_dir_all(data_dir).map_err(io_error(format!("creating ipam.dataDir {}", data_dir.display())))?;
        Ok(Self { path: data_dir.join(format!("{network}.json")), lock_path: data_dir.join(format!("{network}.lock")) })
    }

    /// Runs `f` on the state under the exclusive lock, and saves what it leaves.
    pub fn update<T>(&self, f: impl FnOnce(&mut State) -> Result<T, CniError>) -> Result<T, CniError> {
        let file = OpenOptions::new().create(true).truncate(false).write(true).open(&self.lock_path).map_err(io_error(format!("opening {}", self.lock_path.display())))?;
        let _lock = Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, e)| CniError::new(Code::Io, format!("locking {}: {e}", self.lock_path.display())))?;
        let mut state = self.read()?;
        let value = f(&mut state)?;
        self.write(&state)?;
        Ok(value)
    }

    /// Reads the state without changing it.
    pub fn read(&self) -> Result<State, CniError> {
        match std::fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| CniError::new(Code::Io, format!("corrupt IPAM state {}: {e}", self.path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State::default()),
            Err(e) => Err(io_error(format!("reading {}", self.path.display()))(e)),
        }
    }

    fn write(&self, state: &State) -> Result<(), CniError> {
        // One fixed name: writers hold the lock, and a file left by a writer killed before
        // its rename is simply overwritten by the next one instead of piling up.
        let temporary = self.path.with_extension("json.tmp");
        // Compact: the file is rewritten on every ADD and DEL under the lock, so its size is
        // what a node's pod churn waits on.
        let bytes = serde_json::to_vec(state).expect("state serializes");
        let mut file = File::create(&temporary).map_err(io_error(format!("writing {}", temporary.display())))?;
        file.write_all(&bytes).and_then(|()| file.sync_all()).map_err(io_error(format!("writing {}", temporary.display())))?;
        std::fs::rename(&temporary, &self.path).map_err(io_error(format!("replacing {}", self.path.display())))?;
        // The rename itself survives a power loss only once the directory is synced.
        if let Some(directory) = self.path.parent() {
            File::open(directory).and_then(|d| d.sync_all()).map_err(io_error(format!("syncing {}", directory.display())))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ranges() -> Vec<IpNet> {
        vec!["10.0.0.0/29".parse().unwrap(), "fd00::/125".parse().unwrap()]
    }

    #[test]
    fn allocates_one_address_per_range_idempotently() {
        let mut state = State::default();
        let a = state.allocate(&ranges(), "c1", "eth0", "palx", "/ns").unwrap();
        assert_eq!(a.ips, vec!["10.0.0.1".parse::<IpAddr>().unwrap(), "fd00::1".parse().unwrap()]);
        assert_eq!(state.allocate(&ranges(), "c1", "eth0", "palx", "/ns").unwrap(), a, "ADD twice gives the same addresses");
        let b = state.allocate(&ranges(), "c1", "net1", "paly", "/ns").unwrap();
        assert_ne!(a.ips, b.ips, "another interface of the same container is another attachment");
    }

    #[test]
    fn released_addresses_are_not_reused_at_once() {
        let mut state = State::default();
        let a = state.allocate(&ranges(), "c1", "eth0", "p1", "/ns").unwrap();
        state.release("c1", "eth0");
        let b = state.allocate(&ranges(), "c2", "eth0", "p2", "/ns").unwrap();
        assert_ne!(a.ips[0], b.ips[0]);
    }

    #[test]
    fn exhaustion_is_a_clean_error() {
        let mut state = State::default();
        let small = vec!["10.0.0.0/30".parse().unwrap()];
        state.allocate(&small, "c1", "eth0", "p1", "/ns").unwrap();
        state.allocate(&small, "c2", "eth0", "p2", "/ns").unwrap();
        let error = state.allocate(&small, "c3", "eth0", "p3", "/ns").unwrap_err();
        assert_eq!(error.code, Code::RangeExhausted);
        assert_eq!(error.to_string(), "no free address in range 10.0.0.0/30: 2 of 2 usable addresses are in use");
        assert_eq!(state.free(&small[0]), 0);
    }

    #[test]
    fn the_store_survives_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), "net").unwrap();
        store.update(|s| s.allocate(&ranges(), "c1", "eth0", "p1", "/ns").map(|_| ())).unwrap();
        let again = Store::open(dir.path(), "net").unwrap().read().unwrap();
        assert_eq!(again.allocations.len(), 1);
    }
}
