//! Which versions of the API's objects the agent has seen, as one order-independent digest:
//! the count of objects and the wrapping sum of a hash of each `(kind, namespace, name,
//! resourceVersion)`. The agent serves the digest of the state its kernel enforces on
//! `/synced`; anyone holding the API's objects (the lab, a test) computes the same digest
//! from a list and knows, without comparing resource versions across kinds, that the node
//! enforces exactly what the API holds now, deletions and re-lists included.

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};

/// The digest of a set of object versions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Digest {
    pub objects: usize,
    /// Hex of the wrapping sum of the objects' hashes.
    #[serde(with = "hex_u64")]
    pub sum: u64,
}

mod hex_u64 {
    pub fn serialize<S: serde::Serializer>(value: &u64, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&format!("{value:016x}"))
    }
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
        let text: String = serde::Deserialize::deserialize(deserializer)?;
        u64::from_str_radix(&text, 16).map_err(serde::de::Error::custom)
    }
}

/// FNV-1a (64-bit) of the fields, each followed by a NUL: stable across builds and
/// machines, which a std `Hasher` does not promise.
fn fnv(fields: &[&str]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for field in fields {
        for byte in field.bytes().chain(std::iter::once(0)) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    hash
}

pub fn object_hash(kind: &str, namespace: &str, name: &str, resource_version: &str) -> u64 {
    fnv(&[kind, namespace, name, resource_version])
}

/// An object's identity, hashed: the agent keeps 16 bytes per object, not its names (a
/// collision among 64-bit hashes of a cluster's objects is not a practical concern).
fn key_hash(kind: &str, namespace: &str, name: &str) -> u64 {
    fnv(&[kind, namespace, name])
}

/// The digest of objects given as `(kind, namespace, name, resourceVersion)`; kinds are the
/// agent's plural names (`pods`, `namespaces`, `networkpolicies`, `nodes`).
pub fn digest_of<'a>(objects: impl IntoIterator<Item = (&'a str, &'a str, &'a str, &'a str)>) -> Digest {
    let mut digest = Digest::default();
    for (kind, namespace, name, version) in objects {
        digest.objects += 1;
        digest.sum = digest.sum.wrapping_add(object_hash(kind, namespace, name, version));
    }
    digest
}

/// The object versions seen so far, updated per event: per kind, object key hash ->
/// object version hash.
#[derive(Default)]
pub struct Observed {
    entries: HashMap<&'static str, HashMap<u64, u64>>,
    sum: u64,
}

impl Observed {
    pub fn apply(&mut self, kind: &'static str, namespace: &str, name: &str, resource_version: &str) {
        let hash = object_hash(kind, namespace, name, resource_version);
        if let Some(old) = self.entries.entry(kind).or_default().insert(key_hash(kind, namespace, name), hash) {
            self.sum = self.sum.wrapping_sub(old);
        }
        self.sum = self.sum.wrapping_add(hash);
    }

    pub fn delete(&mut self, kind: &'static str, namespace: &str, name: &str) {
        if let Some(old) = self.entries.get_mut(kind).and_then(|e| e.remove(&key_hash(kind, namespace, name))) {
            self.sum = self.sum.wrapping_sub(old);
        }
    }

    /// After a (re-)list of `kind`: forgets its objects the list did not return.
    pub fn retain(&mut self, kind: &'static str, listed: &HashSet<(String, String)>) {
        let keep: HashSet<u64> = listed.iter().map(|(namespace, name)| key_hash(kind, namespace, name)).collect();
        let Some(entries) = self.entries.get_mut(kind) else { return };
        let mut sum = self.sum;
        entries.retain(|key, hash| {
            let kept = keep.contains(key);
            if !kept {
                sum = sum.wrapping_sub(*hash);
            }
            kept
        });
        self.sum = sum;
    }

    pub fn digest(&self) -> Digest {
        Digest { objects: self.entries.values().map(HashMap::len).sum(), sum: self.sum }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_running_digest_equals_the_digest_of_what_remains() {
        let mut observed = Observed::default();
        observed.apply("pods", "prod", "a", "10");
        observed.apply("pods", "prod", "b", "11");
        observed.apply("namespaces", "", "prod", "3");
        observed.apply("pods", "prod", "a", "12");
        observed.delete("pods", "prod", "b");
        observed.delete("pods", "prod", "never-seen");
        assert_eq!(observed.digest(), digest_of([("pods", "prod", "a", "12"), ("namespaces", "", "prod", "3")]));
        observed.apply("pods", "dev", "c", "13");
        observed.retain("pods", &[("dev".to_string(), "c".to_string())].into());
        assert_eq!(observed.digest(), digest_of([("pods", "dev", "c", "13"), ("namespaces", "", "prod", "3")]));
    }

    #[test]
    fn a_different_version_kind_or_key_gives_a_different_digest() {
        let base = digest_of([("pods", "prod", "a", "12")]);
        assert_ne!(base, digest_of([("pods", "prod", "a", "13")]));
        assert_ne!(base, digest_of([("nodes", "prod", "a", "12")]));
        // Field boundaries count: "prod"/"a" is not "pro"/"da".
        assert_ne!(base, digest_of([("pods", "pro", "da", "12")]));
        let json = serde_json::to_string(&base).unwrap();
        assert_eq!(serde_json::from_str::<Digest>(&json).unwrap(), base);
    }
}
