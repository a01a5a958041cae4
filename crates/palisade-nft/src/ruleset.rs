//! The rendered table as data: sets, verdict maps and chains. One value describes the whole
//! `inet palisade` table; `text` and `json` serialize it, `diff` compares two of them.

use std::net::IpAddr;
use std::ops::Deref;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// A set's or map's elements, shared: the copies of a ruleset an update keeps (the applied
/// one, the kernel-named ones) share them instead of copying hundreds of thousands of
/// elements, and comparing two that are the same list is instant. Changed only as a whole
/// (or through [`Elements::make_mut`], which copies if shared).
#[derive(Debug, PartialEq, Eq)]
pub struct Elements<T>(Arc<Vec<T>>);

impl<T> Clone for Elements<T> {
    fn clone(&self) -> Self {
        Self(Arc::clone(&self.0))
    }
}

impl<T> Default for Elements<T> {
    fn default() -> Self {
        Self(Arc::new(Vec::new()))
    }
}

impl<T> Deref for Elements<T> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        &self.0
    }
}

impl<T> From<Vec<T>> for Elements<T> {
    fn from(list: Vec<T>) -> Self {
        Self(Arc::new(list))
    }
}

impl<T> FromIterator<T> for Elements<T> {
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Self {
        Self(Arc::new(iter.into_iter().collect()))
    }
}

impl<T: Clone> Elements<T> {
    /// The list to change, copied first if another ruleset shares it.
    pub fn make_mut(&mut self) -> &mut Vec<T> {
        Arc::make_mut(&mut self.0)
    }
}

impl<T: Serialize> Serialize for Elements<T> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.as_slice().serialize(serializer)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Elements<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Vec::deserialize(deserializer).map(Self::from)
    }
}

/// A key component of a set element or a lookup.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum KeyType {
    Ipv4,
    Ipv6,
    Proto,
    Service,
    /// A packet mark (Palisade keeps a remote address's class in its reserved bits).
    Mark,
}

impl KeyType {
    pub fn nft_name(self) -> &'static str {
        match self {
            KeyType::Ipv4 => "ipv4_addr",
            KeyType::Ipv6 => "ipv6_addr",
            KeyType::Proto => "inet_proto",
            KeyType::Service => "inet_service",
            KeyType::Mark => "mark",
        }
    }
}

/// One component of a set element: a single value or an inclusive range.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Value {
    /// An address range; printed as a prefix when it is one.
    Addr(IpAddr, IpAddr),
    /// An L4 protocol number range (6 tcp, 17 udp, 132 sctp; 0-255 any).
    Proto(u8, u8),
    /// A port range.
    Port(u16, u16),
    /// A range of packet marks: class ids already shifted into the reserved bits.
    Mark(u32, u32),
}

/// A set element: one value per key component. Most elements have one (a class, an
/// address): kept inline, 48 bytes where a `Vec` took 24 plus a 48-byte allocation, which
/// at half a million elements is the difference between a node table of 37 MB and 25 MB.
pub type Element = smallvec::SmallVec<[Value; 1]>;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Set {
    pub name: String,
    pub key: Vec<KeyType>,
    /// Ranges in any component need an interval set.
    pub interval: bool,
    /// Sorted and deduplicated.
    pub elements: Elements<Element>,
}

/// Where a verdict map element sends the packet.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Verdict {
    /// Into the chain; its `return` (or end) continues after the map's rule.
    Jump(String),
    /// Into the chain for good; its `return` returns from the map's chain.
    Goto(String),
}

impl Verdict {
    pub fn chain(&self) -> &str {
        match self {
            Verdict::Jump(chain) | Verdict::Goto(chain) => chain,
        }
    }

    pub fn chain_mut(&mut self) -> &mut String {
        match self {
            Verdict::Jump(chain) | Verdict::Goto(chain) => chain,
        }
    }
}

/// A verdict map: from a pod address to the chain that judges it (`forward`'s dispatch), or
/// from `peer . protocol . port` intervals to the ClusterNetworkPolicy rule that decides.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerdictMap {
    pub name: String,
    pub key: Vec<KeyType>,
    /// Ranges in any key component need an interval map.
    pub interval: bool,
    /// Sorted by key; keys never overlap.
    pub elements: Elements<(Element, Verdict)>,
}

impl VerdictMap {
    /// Whether some element `jump`s (a ClusterNetworkPolicy Pass): the lookup then comes
    /// back and the chain goes on.
    pub fn has_jump(&self) -> bool {
        self.elements.iter().any(|(_, verdict)| matches!(verdict, Verdict::Jump(_)))
    }

    /// A map from single addresses to the chains they jump to.
    pub fn by_address(name: String, v6: bool, elements: Vec<(IpAddr, String)>) -> Self {
        Self {
            name,
            key: vec![if v6 { KeyType::Ipv6 } else { KeyType::Ipv4 }],
            interval: false,
            elements: elements.into_iter().map(|(ip, chain)| (smallvec::smallvec![Value::Addr(ip, ip)], Verdict::Jump(chain))).collect(),
        }
    }
}

/// Packet fields rules look at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Field {
    Saddr4,
    Daddr4,
    Saddr6,
    Daddr6,
    L4Proto,
    Dport,
    /// `meta mark & <mask>`: the remote address's class, once a classify chain has set it.
    Mark(u32),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Statement {
    /// `ct state established,related accept`
    AcceptEstablished,
    /// `ct state invalid drop`
    DropInvalid,
    /// `<fields> @set` (a lookup; the rule continues only if it matches).
    Lookup {
        fields: Vec<Field>,
        set: String,
    },
    /// `<fields> != @map`: the rule goes on only if the map has no element for the key
    /// (a ClusterNetworkPolicy tier's second lookup runs only where its first has none).
    Absent {
        fields: Vec<Field>,
        map: String,
    },
    /// `<fields> vmap @map`
    Vmap {
        fields: Vec<Field>,
        map: String,
    },
    /// `meta mark set meta mark & ~mask | value`: the bits under `mask` become `value`,
    /// the others (kube-proxy's, anyone's) are kept.
    SetMark {
        mask: u32,
        value: u32,
    },
    /// `meta l4proto tcp`
    IsTcp,
    Counter,
    Return,
    /// Continue in another chain and come back (its end or `return`).
    Jump(String),
    /// Continue in another chain without coming back.
    Goto(String),
    Drop,
    RejectTcpReset,
    RejectAdminProhibited,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    pub statements: Vec<Statement>,
    /// Names the policy (and rule) the rule comes from.
    pub comment: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Hook {
    Forward,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BaseChain {
    pub hook: Hook,
    /// Relative to the `filter` priority (0).
    pub priority: i32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chain {
    pub name: String,
    pub base: Option<BaseChain>,
    pub rules: Vec<Rule>,
}

/// A chain netlink creates ([`crate::netlink::Batches::mark_chain`]): a regular chain whose
/// one rule, without a comment, only sets mark bits (a remote-address class). Returns the
/// mask and value.
pub fn mark_chain(chain: &Chain) -> Option<(u32, u32)> {
    match chain.rules.as_slice() {
        [Rule { statements, comment: None }] if chain.base.is_none() => match statements.as_slice() {
            [Statement::SetMark { mask, value }] => Some((*mask, *value)),
            _ => None,
        },
        _ => None,
    }
}

/// The whole table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ruleset {
    pub table: String,
    pub sets: Vec<Set>,
    pub maps: Vec<VerdictMap>,
    pub chains: Vec<Chain>,
}

impl Ruleset {
    /// Number of set and map elements, the bulk of a large ruleset.
    pub fn element_count(&self) -> usize {
        self.sets.iter().map(|s| s.elements.len()).sum::<usize>() + self.maps.iter().map(|m| m.elements.len()).sum::<usize>()
    }

    pub fn rule_count(&self) -> usize {
        self.chains.iter().map(|c| c.rules.len()).sum()
    }
}
