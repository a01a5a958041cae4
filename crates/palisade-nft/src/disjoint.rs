//! The union of a policy's (peer range x protocol range x port range) boxes as disjoint
//! boxes. nft's concatenated interval sets (pipapo) refuse an element that overlaps one they
//! hold ("File exists"), and a policy's rules overlap all the time: a rule for every port
//! beside one for port 8080, `10.0.0.0/8` beside `10.1.0.0/16`, an endPort range holding a
//! listed port, a named port resolving to a listed number.
//!
//! The decomposition is canonical: it depends only on the union, never on how the boxes
//! were written, so equal states give equal sets and incremental updates diff disjoint
//! decompositions.
//!
//! Service-major: the protocol axis is cut where the boxes covering it change, then each
//! protocol piece's port axis likewise; every (protocol, port) cell gets the merged address
//! ranges of the boxes covering it, and neighbouring cells with the same addresses join.
//! Policies have few distinct ports and many addresses, so this keeps a big CIDR on one port
//! beside pods on another as one element plus the pods (an address-major cut would split the
//! CIDR around every pod). Cost: O(B log B) per protocol piece, plus the merged addresses of
//! each port cell.

use std::collections::BTreeMap;

use crate::intervals::{Range, merge};

/// An inclusive protocol-number range (0-255: any protocol).
pub type ProtoRange = (u8, u8);
/// An inclusive port range.
pub type PortRange = (u16, u16);

/// One element of a `peer . protocol . port` interval set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Box3 {
    pub addr: Range,
    pub proto: ProtoRange,
    pub port: PortRange,
}

/// Every protocol and every port.
pub const EVERY_SERVICE: (ProtoRange, PortRange) = ((0, 255), (0, 65535));

impl Box3 {
    /// Whether the box holds every protocol and port of its addresses.
    pub fn on_every_service(&self) -> bool {
        (self.proto, self.port) == EVERY_SERVICE
    }
}

/// The union of `boxes` as disjoint boxes, sorted by address, protocol and port.
pub fn disjoint(boxes: Vec<Box3>) -> Vec<Box3> {
    // Protocol pieces: cut at every box's protocol edges; each piece with the port cells of
    // the boxes covering it. Neighbouring pieces with the same cells join.
    let mut cuts: Vec<u16> = boxes.iter().flat_map(|b| [u16::from(b.proto.0), u16::from(b.proto.1) + 1]).collect();
    cuts.sort_unstable();
    cuts.dedup();
    let mut pieces: Vec<(ProtoRange, Vec<(PortRange, Vec<Range>)>)> = Vec::new();
    for pair in cuts.windows(2) {
        let (lo, hi) = (pair[0] as u8, (pair[1] - 1) as u8);
        let covering: Vec<&Box3> = boxes.iter().filter(|b| b.proto.0 <= lo && hi <= b.proto.1).collect();
        let cells = port_cells(&covering);
        if cells.is_empty() {
            continue;
        }
        match pieces.last_mut() {
            Some(((_, last_hi), last)) if u16::from(*last_hi) + 1 == u16::from(lo) && *last == cells => *last_hi = hi,
            _ => pieces.push(((lo, hi), cells)),
        }
    }
    let mut out: Vec<Box3> = Vec::new();
    for (proto, cells) in pieces {
        for (port, addresses) in cells {
            out.extend(addresses.into_iter().map(|addr| Box3 { addr, proto, port }));
        }
    }
    out.sort_unstable();
    out
}

/// The port axis of one protocol piece, cut where the covering boxes change: each cell with
/// the merged address ranges of the boxes covering it; neighbouring cells with the same
/// addresses joined. A sweep: boxes enter at their first port and leave after their last.
fn port_cells(boxes: &[&Box3]) -> Vec<(PortRange, Vec<Range>)> {
    let mut edges: Vec<(u32, bool, Range)> = boxes.iter().flat_map(|b| [(u32::from(b.port.0), true, b.addr), (u32::from(b.port.1) + 1, false, b.addr)]).collect();
    edges.sort_unstable();
    let mut active: BTreeMap<Range, usize> = BTreeMap::new();
    let mut cells: Vec<(PortRange, Vec<Range>)> = Vec::new();
    let mut k = 0;
    while k < edges.len() {
        let at = edges[k].0;
        while k < edges.len() && edges[k].0 == at {
            let (_, enters, addr) = edges[k];
            if enters {
                *active.entry(addr).or_default() += 1;
            } else if let Some(n) = active.get_mut(&addr) {
                *n -= 1;
                if *n == 0 {
                    active.remove(&addr);
                }
            }
            k += 1;
        }
        let Some(&(next, _, _)) = edges.get(k) else { break };
        if active.is_empty() {
            continue;
        }
        let (lo, hi) = (at as u16, (next - 1) as u16);
        let addresses = merge(active.keys().copied().collect());
        match cells.last_mut() {
            Some(((_, last_hi), last)) if u32::from(*last_hi) + 1 == at && *last == addresses => *last_hi = hi,
            _ => cells.push(((lo, hi), addresses)),
        }
    }
    cells
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const ANY_PROTO: ProtoRange = (0, 255);
    const ANY_PORT: PortRange = (0, 65535);
    const TCP: ProtoRange = (6, 6);

    fn b(addr: (u128, u128), proto: ProtoRange, port: PortRange) -> Box3 {
        Box3 { addr, proto, port }
    }

    fn covers(boxes: &[Box3], addr: u128, proto: u8, port: u16) -> usize {
        boxes.iter().filter(|b| b.addr.0 <= addr && addr <= b.addr.1 && b.proto.0 <= proto && proto <= b.proto.1 && b.port.0 <= port && port <= b.port.1).count()
    }

    #[test]
    fn a_portless_rule_absorbs_a_port_rule_for_the_same_peer() {
        // The example: `from: a` on every port, and `from: a` on 8080 again.
        let out = disjoint(vec![b((2, 2), ANY_PROTO, ANY_PORT), b((2, 2), TCP, (8080, 8080))]);
        assert_eq!(out, vec![b((2, 2), ANY_PROTO, ANY_PORT)]);
    }

    #[test]
    fn nested_cidrs_with_other_ports_stay_whole() {
        // 10.0.0.0/8 on 80/TCP and 10.1.0.0/16 on 443/TCP: different ports, no overlap.
        let out = disjoint(vec![b((0x0a00_0000, 0x0aff_ffff), TCP, (80, 80)), b((0x0a01_0000, 0x0a01_ffff), TCP, (443, 443))]);
        assert_eq!(out, vec![b((0x0a00_0000, 0x0aff_ffff), TCP, (80, 80)), b((0x0a01_0000, 0x0a01_ffff), TCP, (443, 443))]);
        // On overlapping ports the nested block is absorbed where they overlap.
        let out = disjoint(vec![b((0x0a00_0000, 0x0aff_ffff), TCP, (80, 80)), b((0x0a01_0000, 0x0a01_ffff), TCP, (80, 443))]);
        assert_eq!(out, vec![b((0x0a00_0000, 0x0aff_ffff), TCP, (80, 80)), b((0x0a01_0000, 0x0a01_ffff), TCP, (81, 443))]);
    }

    #[test]
    fn an_end_port_range_holding_a_listed_port_is_one_range() {
        let out = disjoint(vec![b((1, 1), TCP, (8000, 9000)), b((1, 1), TCP, (8080, 8080))]);
        assert_eq!(out, vec![b((1, 1), TCP, (8000, 9000))]);
    }

    #[test]
    fn a_protocol_specific_range_beside_any_protocol_splits_the_protocol_axis() {
        // Any protocol on port 53, TCP on 80-81.
        let out = disjoint(vec![b((1, 1), ANY_PROTO, (53, 53)), b((1, 1), TCP, (80, 81))]);
        assert_eq!(out, vec![b((1, 1), (0, 5), (53, 53)), b((1, 1), TCP, (53, 53)), b((1, 1), TCP, (80, 81)), b((1, 1), (7, 255), (53, 53))]);
    }

    #[test]
    fn a_big_block_on_one_port_is_not_split_around_pods_on_another() {
        let mut boxes = vec![b((0, 0xffff_ffff), TCP, (443, 443))];
        boxes.extend((0..100).map(|i| b((1000 + 2 * i, 1000 + 2 * i), TCP, (80, 80))));
        assert_eq!(disjoint(boxes).len(), 101);
    }

    #[test]
    fn neighbouring_addresses_with_the_same_ports_merge() {
        let out = disjoint(vec![b((1, 1), TCP, (80, 80)), b((2, 2), TCP, (80, 80)), b((4, 4), TCP, (80, 80))]);
        assert_eq!(out, vec![b((1, 2), TCP, (80, 80)), b((4, 4), TCP, (80, 80))]);
    }

    #[test]
    fn the_whole_ipv6_space_ends_without_overflow() {
        let out = disjoint(vec![b((0, u128::MAX), ANY_PROTO, ANY_PORT), b((5, u128::MAX), TCP, (1, 1))]);
        assert_eq!(out, vec![b((0, u128::MAX), ANY_PROTO, ANY_PORT)]);
    }

    fn small_box() -> impl Strategy<Value = Box3> {
        let range = |max: u128| (0..max, 0..4u128).prop_map(move |(lo, len)| (lo, (lo + len).min(max)));
        let proto = prop_oneof![Just(ANY_PROTO), Just(TCP), Just((17, 17)), Just((132, 132))];
        let port = (0u16..12, 0u16..4).prop_map(|(lo, len)| (lo, lo + len));
        (range(12), proto, port).prop_map(|(addr, proto, port)| Box3 { addr, proto, port })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 500, .. ProptestConfig::default() })]

        /// The output is disjoint, covers exactly the input's union, and depends only on it.
        #[test]
        fn disjoint_covers_the_union_exactly(boxes in proptest::collection::vec(small_box(), 0..8)) {
            let out = disjoint(boxes.clone());
            for addr in 0..14u128 {
                for proto in [0u8, 6, 7, 17, 132, 255] {
                    for port in 0..17u16 {
                        let inside = covers(&boxes, addr, proto, port) > 0;
                        prop_assert_eq!(covers(&out, addr, proto, port), usize::from(inside), "{} {} {}", addr, proto, port);
                    }
                }
            }
            // The same union written another way (the output itself) decomposes the same.
            prop_assert_eq!(disjoint(out.clone()), out.clone());
            let mut reversed = boxes.clone();
            reversed.reverse();
            prop_assert_eq!(disjoint(reversed), out);
        }
    }
}
