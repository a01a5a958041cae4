//! Address families. A flow exists only in a family both of its ends have an address of: a
//! pod the API says is IPv6-only cannot reach an IPv4-only pod, and it is never judged by an
//! IPv4 ipBlock. A dual-stack pair is two flows, which policies may judge differently.

use std::net::IpAddr;

use palisade_model::Endpoint;
use serde::{Serialize, Serializer};

/// A set of address families (IPv4, IPv6), serialized as `[4]`, `[6]` or `[4, 6]`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Families(u8);

impl Families {
    pub const NONE: Families = Families(0);
    pub const V4: Families = Families(1);
    pub const V6: Families = Families(2);
    pub const BOTH: Families = Families(3);

    /// The family of one address.
    pub fn of_ip(ip: IpAddr) -> Self {
        if ip.is_ipv6() { Families::V6 } else { Families::V4 }
    }

    /// One family, by the engine's `v6` flag.
    pub fn one(v6: bool) -> Self {
        if v6 { Families::V6 } else { Families::V4 }
    }

    /// The families an endpoint has addresses in. An endpoint without any (a hostNetwork pod
    /// of a manifest without status) is the node's: it is judged in every family.
    pub fn of_endpoint(endpoint: &Endpoint) -> Self {
        if endpoint.ips.is_empty() {
            return Families::BOTH;
        }
        endpoint.ips.iter().fold(Families::NONE, |all, ip| all.union(Families::of_ip(*ip)))
    }

    pub fn union(self, other: Families) -> Self {
        Families(self.0 | other.0)
    }

    pub fn intersection(self, other: Families) -> Self {
        Families(self.0 & other.0)
    }

    pub fn contains(self, other: Families) -> bool {
        self.0 & other.0 == other.0 && other.0 != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The families in the set, IPv4 first, as the engine's `v6` flag.
    pub fn iter(self) -> impl Iterator<Item = bool> {
        [false, true].into_iter().filter(move |&v6| self.contains(Families::one(v6)))
    }

    /// `IPv4`, `IPv6` or `IPv4 and IPv6`.
    pub fn describe(self) -> &'static str {
        match self.0 {
            1 => "IPv4",
            2 => "IPv6",
            3 => "IPv4 and IPv6",
            _ => "no family",
        }
    }

    /// `4`, `6` or `4+6` (for CSV).
    pub fn short(self) -> &'static str {
        match self.0 {
            1 => "4",
            2 => "6",
            3 => "4+6",
            _ => "",
        }
    }
}

impl Serialize for Families {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let numbers: Vec<u8> = self.iter().map(|v6| if v6 { 6 } else { 4 }).collect();
        numbers.serialize(serializer)
    }
}

/// The families every endpoint pair of `endpoints` could be judged in: the union of the
/// families of the endpoints.
pub fn present<'e>(endpoints: impl IntoIterator<Item = &'e Endpoint>) -> Families {
    endpoints.into_iter().filter(|e| !e.ips.is_empty()).fold(Families::NONE, |all, e| all.union(Families::of_endpoint(e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_of_families() {
        assert_eq!(Families::V4.union(Families::V6), Families::BOTH);
        assert_eq!(Families::BOTH.intersection(Families::V6), Families::V6);
        assert!(Families::V4.intersection(Families::V6).is_empty());
        assert_eq!(Families::BOTH.iter().collect::<Vec<_>>(), vec![false, true]);
        assert_eq!(serde_json::to_string(&Families::BOTH).unwrap(), "[4,6]");
        assert!(!Families::BOTH.contains(Families::NONE));
    }
}
