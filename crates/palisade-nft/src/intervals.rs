//! Address intervals: an ipBlock minus its excepts, pod addresses merged into ranges. nft
//! interval sets reject overlapping elements, so everything is merged before rendering.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use palisade_model::IpBlock;

/// An inclusive range of addresses of one family, as integers.
pub type Range = (u128, u128);

pub fn to_int(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

pub fn from_int(value: u128, v6: bool) -> IpAddr {
    if v6 { IpAddr::V6(Ipv6Addr::from(value)) } else { IpAddr::V4(Ipv4Addr::from(value as u32)) }
}

fn net_range(net: &IpNet) -> Range {
    (to_int(net.network()), to_int(net.broadcast()))
}

/// The addresses of one family an ipBlock admits, as disjoint sorted ranges.
pub fn block_ranges(block: &IpBlock, v6: bool) -> Vec<Range> {
    if matches!(block.cidr, IpNet::V6(_)) != v6 {
        return Vec::new();
    }
    let mut ranges = vec![net_range(&block.cidr)];
    for except in &block.except {
        let (lo, hi) = net_range(except);
        ranges = ranges
            .into_iter()
            .flat_map(|(a, b)| {
                let mut pieces = Vec::with_capacity(2);
                if hi < a || lo > b {
                    pieces.push((a, b));
                } else {
                    if lo > a {
                        pieces.push((a, lo - 1));
                    }
                    if hi < b {
                        pieces.push((hi + 1, b));
                    }
                }
                pieces
            })
            .collect();
    }
    ranges
}

/// Sorts and merges overlapping or adjacent ranges.
pub fn merge(mut ranges: Vec<Range>) -> Vec<Range> {
    ranges.sort_unstable();
    let mut out: Vec<Range> = Vec::with_capacity(ranges.len());
    for (lo, hi) in ranges {
        match out.last_mut() {
            Some(last) if lo <= last.1.saturating_add(1) => last.1 = last.1.max(hi),
            _ => out.push((lo, hi)),
        }
    }
    out
}

/// A growing union of ranges, kept merged: what part of a range it does not hold yet.
#[derive(Clone, Debug, Default)]
pub struct RangeSet {
    /// Start -> end of disjoint, non-adjacent ranges.
    ranges: BTreeMap<u128, u128>,
}

impl RangeSet {
    /// The pieces of `range` outside the set, in order.
    pub fn gaps(&self, (lo, hi): Range) -> Vec<Range> {
        let mut out = Vec::new();
        let mut from = lo;
        // The range starting at or before `lo` may cover its beginning.
        let before = self.ranges.range(..=lo).next_back().map(|(&a, &b)| (a, b));
        let inside = (lo < hi).then(|| self.ranges.range(lo + 1..=hi).map(|(&a, &b)| (a, b)));
        for (a, b) in before.into_iter().chain(inside.into_iter().flatten()) {
            if b < from {
                continue;
            }
            if a > from {
                out.push((from, a - 1));
            }
            match b.checked_add(1) {
                Some(next) if next <= hi => from = next,
                _ => return out,
            }
        }
        out.push((from, hi));
        out
    }

    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Whether the set holds every one of `ranges`.
    pub fn covers(&self, mut ranges: impl Iterator<Item = Range>) -> bool {
        // The set's ranges never touch, so one of them holds each covered range; a broad
        // range often holds many in a row.
        let mut holder: Option<Range> = None;
        ranges.all(|(lo, hi)| {
            if let Some((a, b)) = holder
                && a <= lo
                && hi <= b
            {
                return true;
            }
            match self.ranges.range(..=lo).next_back() {
                Some((&a, &b)) if hi <= b => {
                    holder = Some((a, b));
                    true
                }
                _ => false,
            }
        })
    }

    pub fn insert(&mut self, (mut lo, mut hi): Range) {
        if let Some((&a, &b)) = self.ranges.range(..=lo).next_back() {
            // Held already: the common case when a tier's rules repeat earlier addresses.
            if hi <= b {
                return;
            }
            if b.saturating_add(1) >= lo {
                lo = a;
                hi = hi.max(b);
            }
        }
        // Absorb every range starting inside [lo, hi] or right after it.
        while let Some((&a, &b)) = self.ranges.range(lo..=hi.saturating_add(1)).next() {
            self.ranges.remove(&a);
            hi = hi.max(b);
        }
        self.ranges.insert(lo, hi);
    }
}

/// The whole address space of a family.
pub fn everything(v6: bool) -> Range {
    (0, if v6 { u128::MAX } else { u128::from(u32::MAX) })
}

/// The prefix length if the range is exactly one prefix.
pub fn prefix_len(range: Range, v6: bool) -> Option<u8> {
    let bits: u32 = if v6 { 128 } else { 32 };
    let size = range.1.wrapping_sub(range.0).wrapping_add(1);
    if size == 0 {
        // The whole 128-bit space.
        return (v6 && range == (0, u128::MAX)).then_some(0);
    }
    if !size.is_power_of_two() || !range.0.is_multiple_of(size) {
        return None;
    }
    Some((bits - size.trailing_zeros()) as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> u128 {
        to_int(s.parse().unwrap())
    }

    #[test]
    fn except_cuts_holes() {
        let block = IpBlock { cidr: "10.0.0.0/8".parse().unwrap(), except: vec!["10.1.0.0/16".parse().unwrap(), "10.255.255.0/24".parse().unwrap()] };
        assert_eq!(block_ranges(&block, false), vec![(ip("10.0.0.0"), ip("10.0.255.255")), (ip("10.2.0.0"), ip("10.255.254.255"))]);
        assert!(block_ranges(&block, true).is_empty(), "families never mix");
    }

    #[test]
    fn merging_joins_adjacent_and_overlapping_ranges() {
        let merged = merge(vec![(ip("10.0.0.3"), ip("10.0.0.3")), (ip("10.0.0.1"), ip("10.0.0.2")), (ip("10.0.0.2"), ip("10.0.0.9")), (ip("10.0.1.0"), ip("10.0.1.0"))]);
        assert_eq!(merged, vec![(ip("10.0.0.1"), ip("10.0.0.9")), (ip("10.0.1.0"), ip("10.0.1.0"))]);
    }

    #[test]
    fn a_range_set_gives_what_it_lacks() {
        let mut set = RangeSet::default();
        assert_eq!(set.gaps((5, 9)), vec![(5, 9)]);
        set.insert((3, 4));
        set.insert((8, 8));
        set.insert((5, 6));
        assert_eq!(set.gaps((0, 20)), vec![(0, 2), (7, 7), (9, 20)]);
        assert_eq!(set.gaps((3, 6)), Vec::<Range>::new());
        assert!(set.covers([(3, 4), (5, 6), (8, 8)].into_iter()) && set.covers(std::iter::empty()));
        assert!(!set.covers([(3, 4), (7, 8)].into_iter()));
        set.insert((7, 7));
        assert_eq!(set.gaps((0, 20)), vec![(0, 2), (9, 20)]);
        assert!(set.covers([(3, 4), (7, 8)].into_iter()) && !set.covers([(8, 9)].into_iter()));
        set.insert((0, u128::MAX));
        assert!(set.gaps((0, u128::MAX)).is_empty());
        let mut top = RangeSet::default();
        top.insert((u128::MAX, u128::MAX));
        assert_eq!(top.gaps((u128::MAX - 2, u128::MAX)), vec![(u128::MAX - 2, u128::MAX - 1)]);
    }

    #[test]
    fn prefixes_are_recognized() {
        assert_eq!(prefix_len((ip("10.0.0.0"), ip("10.0.0.255")), false), Some(24));
        assert_eq!(prefix_len((ip("10.0.0.1"), ip("10.0.0.1")), false), Some(32));
        assert_eq!(prefix_len((ip("10.0.0.1"), ip("10.0.0.2")), false), None);
        assert_eq!(prefix_len(everything(false), false), Some(0));
        assert_eq!(prefix_len(everything(true), true), Some(0));
        assert_eq!(prefix_len((ip("fd00::"), ip("fd00::ffff:ffff:ffff:ffff")), true), Some(64));
    }
}
