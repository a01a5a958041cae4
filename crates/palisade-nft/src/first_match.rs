//! First-match decomposition: rules in order, each a union of (peer range x protocol range
//! x port range) boxes, as disjoint boxes each labelled with the first rule covering it.
//! A ClusterNetworkPolicy tier is a list of such rules whose first match decides; as one
//! interval verdict map, the packet's cost is one lookup however many rules the tier has.
//!
//! The cut is service-major as in [`crate::disjoint`]: protocol pieces, port cells within
//! them, and in each cell the address axis split where the lowest covering rank changes.
//! Before the cut, what lower ranks already decide is taken off each box
//! ([`unshadowed`]): in a tier of broad policies most boxes are shadowed by earlier rules.

use std::collections::BTreeMap;

use crate::disjoint::{Box3, PortRange, ProtoRange};
use crate::intervals::{Range, RangeSet};

/// Disjoint boxes covering the union of `boxes`, each labelled with the lowest rank among
/// the boxes covering it; sorted by address, protocol and port.
pub fn first_match(boxes: &[(Box3, usize)]) -> Vec<(Box3, usize)> {
    let boxes = &unshadowed(boxes)[..];
    let mut cuts: Vec<u16> = boxes.iter().flat_map(|(b, _)| [u16::from(b.proto.0), u16::from(b.proto.1) + 1]).collect();
    cuts.sort_unstable();
    cuts.dedup();
    type Cells = Vec<(PortRange, Vec<(Range, usize)>)>;
    let mut pieces: Vec<(ProtoRange, Cells)> = Vec::new();
    for pair in cuts.windows(2) {
        let (lo, hi) = (pair[0] as u8, (pair[1] - 1) as u8);
        let covering: Vec<&(Box3, usize)> = boxes.iter().filter(|(b, _)| b.proto.0 <= lo && hi <= b.proto.1).collect();
        let cells = port_cells(&covering);
        if cells.is_empty() {
            continue;
        }
        match pieces.last_mut() {
            Some(((_, last_hi), last)) if u16::from(*last_hi) + 1 == u16::from(lo) && *last == cells => *last_hi = hi,
            _ => pieces.push(((lo, hi), cells)),
        }
    }
    let mut out: Vec<(Box3, usize)> = Vec::new();
    for (proto, cells) in pieces {
        for (port, addresses) in cells {
            out.extend(addresses.into_iter().map(|(addr, rank)| (Box3 { addr, proto, port }, rank)));
        }
    }
    let mut out = coalesce(out);
    out.sort_unstable();
    out
}

/// Disjoint boxes, each with the rank of the rule it leads to.
pub type Labelled = Vec<(Box3, usize)>;

/// The first match as two lookups, for a tier: `by_port` (tried first, `peer . protocol .
/// port`) and `by_address` (its elements all on every service, so keyed by the address
/// alone). A packet gets the `by_port` element's rank if one covers it, else the
/// `by_address` one's: the node runs the second lookup only where the first has no element
/// (a Pass rule's `jump` comes back, so the rule holding the second lookup first checks
/// that the key is absent from the first map). A rule on every port over a range that
/// other rules cut around a port (a CIDR everyone may reach but one rule's port) is one
/// `by_address` element instead of seven to nine `by_port` cells.
pub fn two_stage(boxes: &[(Box3, usize)]) -> (Labelled, Labelled) {
    let (everywhere, by_port): (Labelled, Labelled) = boxes.iter().partition(|(b, _)| b.on_every_service());
    let everywhere = first_match(&everywhere);
    // A port-specific box only answers where no lower or equal rank answers on every service.
    let mut clipped = Vec::new();
    for &(b, rank) in &by_port {
        let mut lower = RangeSet::default();
        let start = everywhere.partition_point(|(e, _)| e.addr.1 < b.addr.0);
        for (e, r) in everywhere[start..].iter().take_while(|(e, _)| e.addr.0 <= b.addr.1) {
            if *r <= rank {
                lower.insert(e.addr);
            }
        }
        clipped.extend(cut(&[(b, rank)], |addr| lower.gaps(addr)));
    }
    (first_match(&clipped), everywhere)
}

/// Each box cut to the address pieces `pieces` leaves of it, with its rank.
fn cut(boxes: &[(Box3, usize)], pieces: impl Fn(Range) -> Vec<Range>) -> Labelled {
    boxes.iter().flat_map(|&(b, rank)| pieces(b.addr).into_iter().map(move |addr| (Box3 { addr, ..b }, rank))).collect()
}

/// The boxes minus the points a lower rank covers, as far as that is cheap to know: per
/// distinct service (protocol and port ranges) of the input, the addresses lower ranks
/// cover on a service holding it. A point of a box inside them is labelled with a lower
/// rank whatever else covers it, so the first match is unchanged; the cut only sees what
/// can still decide something. With `Tiers::map` skipping whole rules the same way, a node's
/// tiers from the generator's 1,000 broad ClusterNetworkPolicies render in 4 s instead of
/// 69 s (BENCHMARKS.md).
fn unshadowed(boxes: &[(Box3, usize)]) -> Vec<(Box3, usize)> {
    let mut services: Vec<(ProtoRange, PortRange)> = boxes.iter().map(|(b, _)| (b.proto, b.port)).collect();
    services.sort_unstable();
    services.dedup();
    let index = |b: &Box3| services.binary_search(&(b.proto, b.port)).expect("every box's service is listed");
    // For each service, the services it holds (itself included).
    let held: Vec<Vec<usize>> = services
        .iter()
        .map(|&(proto, port)| (0..services.len()).filter(|&t| proto.0 <= services[t].0.0 && services[t].0.1 <= proto.1 && port.0 <= services[t].1.0 && services[t].1.1 <= port.1).collect())
        .collect();
    let mut decided: Vec<RangeSet> = vec![RangeSet::default(); services.len()];
    let mut order: Vec<&(Box3, usize)> = boxes.iter().collect();
    order.sort_by_key(|(_, rank)| *rank);
    let mut out = Vec::with_capacity(boxes.len());
    for same_rank in order.chunk_by(|a, b| a.1 == b.1) {
        let start = out.len();
        for &&(b, rank) in same_rank {
            out.extend(cut(&[(b, rank)], |addr| decided[index(&b)].gaps(addr)));
        }
        // What this rank keeps is decided for the ranks after it, on every service its
        // boxes hold (what it lost was decided there already: a service's set holds the
        // sets of the services holding it).
        for &(b, _) in &out[start..] {
            for &t in &held[index(&b)] {
                decided[t].insert(b.addr);
            }
        }
    }
    out
}

/// Joins elements of one rank that differ in one dimension only and touch in it: an
/// address range the cut split into one element per port cell (because other ranges
/// change between those cells) becomes one element again. The union of two such boxes is
/// a box with no point of any other element, so the result stays disjoint. On a node's
/// tiers from 10 of the generator's broad policies: 247,821 elements before, 14,470 after
/// (BENCHMARKS.md).
fn coalesce(items: Vec<(Box3, usize)>) -> Vec<(Box3, usize)> {
    let ports = join(items, |b| (b.addr.0, b.addr.1, u128::from(b.proto.0), u128::from(b.proto.1)), |b| (u128::from(b.port.0), u128::from(b.port.1)), |b, hi| b.port.1 = hi as u16);
    let protocols = join(ports, |b| (b.addr.0, b.addr.1, u128::from(b.port.0), u128::from(b.port.1)), |b| (u128::from(b.proto.0), u128::from(b.proto.1)), |b, hi| b.proto.1 = hi as u8);
    join(protocols, |b| (u128::from(b.proto.0), u128::from(b.proto.1), u128::from(b.port.0), u128::from(b.port.1)), |b| b.addr, |b, hi| b.addr.1 = hi)
}

/// One pass of `coalesce` along one dimension: elements equal in `rest` and rank whose
/// `span`s touch become one.
fn join(mut items: Vec<(Box3, usize)>, rest: impl Fn(&Box3) -> (u128, u128, u128, u128), span: impl Fn(&Box3) -> (u128, u128), extend: impl Fn(&mut Box3, u128)) -> Vec<(Box3, usize)> {
    items.sort_unstable_by_key(|(b, rank)| (rest(b), *rank, span(b)));
    let mut out: Vec<(Box3, usize)> = Vec::with_capacity(items.len());
    for (b, rank) in items {
        if let Some((last, last_rank)) = out.last_mut()
            && *last_rank == rank
            && rest(last) == rest(&b)
            && span(last).1.checked_add(1) == Some(span(&b).0)
        {
            extend(last, span(&b).1);
            continue;
        }
        out.push((b, rank));
    }
    out
}

/// The port axis of one protocol piece, cut where the covering boxes change; each cell with
/// its address axis labelled by lowest rank; equal neighbouring cells joined.
fn port_cells(boxes: &[&(Box3, usize)]) -> Vec<(PortRange, Vec<(Range, usize)>)> {
    let mut edges: Vec<(u32, bool, usize)> = boxes.iter().enumerate().flat_map(|(i, (b, _))| [(u32::from(b.port.0), true, i), (u32::from(b.port.1) + 1, false, i)]).collect();
    edges.sort_unstable();
    let mut active: BTreeMap<usize, ()> = BTreeMap::new();
    let mut cells: Vec<(PortRange, Vec<(Range, usize)>)> = Vec::new();
    let mut k = 0;
    while k < edges.len() {
        let at = edges[k].0;
        while k < edges.len() && edges[k].0 == at {
            let (_, enters, i) = edges[k];
            if enters {
                active.insert(i, ());
            } else {
                active.remove(&i);
            }
            k += 1;
        }
        let Some(&(next, _, _)) = edges.get(k) else { break };
        if active.is_empty() {
            continue;
        }
        let (lo, hi) = (at as u16, (next - 1) as u16);
        let addresses = lowest_rank(active.keys().map(|&i| (boxes[i].0.addr, boxes[i].1)).collect());
        match cells.last_mut() {
            Some(((_, last_hi), last)) if u32::from(*last_hi) + 1 == at && *last == addresses => *last_hi = hi,
            _ => cells.push(((lo, hi), addresses)),
        }
    }
    cells
}

/// The address axis: disjoint ranges covering the union, each with the lowest rank of the
/// ranges covering it; neighbours with the same rank joined.
fn lowest_rank(mut ranges: Vec<(Range, usize)>) -> Vec<(Range, usize)> {
    // Boundaries: every start, and the address after every end (none after the last one).
    let mut points: Vec<u128> = ranges.iter().flat_map(|&((lo, hi), _)| [Some(lo), hi.checked_add(1)]).flatten().collect();
    points.sort_unstable();
    points.dedup();
    ranges.sort_unstable_by_key(|&((lo, _), _)| lo);
    let mut ends: Vec<(u128, usize)> = ranges.iter().map(|&((_, hi), rank)| (hi, rank)).collect();
    ends.sort_unstable();
    let (mut next_start, mut next_end) = (0, 0);
    let mut active: BTreeMap<usize, usize> = BTreeMap::new();
    let mut out: Vec<(Range, usize)> = Vec::new();
    for (n, &at) in points.iter().enumerate() {
        // Ranges ending just before `at` leave, ranges starting at `at` enter.
        while next_end < ends.len() && ends[next_end].0 < at {
            let rank = ends[next_end].1;
            if let Some(count) = active.get_mut(&rank) {
                *count -= 1;
                if *count == 0 {
                    active.remove(&rank);
                }
            }
            next_end += 1;
        }
        while next_start < ranges.len() && ranges[next_start].0.0 == at {
            *active.entry(ranges[next_start].1).or_default() += 1;
            next_start += 1;
        }
        let Some((&rank, _)) = active.iter().next() else { continue };
        let hi = points.get(n + 1).map_or(u128::MAX, |&p| p - 1);
        match out.last_mut() {
            Some(((_, last_hi), last_rank)) if *last_rank == rank && last_hi.checked_add(1) == Some(at) => *last_hi = hi,
            _ => out.push(((at, hi), rank)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn b(addr: Range, proto: ProtoRange, port: PortRange) -> Box3 {
        Box3 { addr, proto, port }
    }

    /// The lowest rank covering a point, by brute force.
    fn first(boxes: &[(Box3, usize)], addr: u128, proto: u8, port: u16) -> Option<usize> {
        boxes.iter().filter(|(b, _)| b.addr.0 <= addr && addr <= b.addr.1 && b.proto.0 <= proto && proto <= b.proto.1 && b.port.0 <= port && port <= b.port.1).map(|(_, rank)| *rank).min()
    }

    #[test]
    fn an_earlier_rule_shadows_a_later_one_where_they_overlap() {
        // Rank 0: 10.0.0.5 tcp/80 (say Deny); rank 1: 10.0.0.0/24 any (say Accept).
        let boxes = [(b((5, 5), (6, 6), (80, 80)), 0), (b((0, 255), (0, 255), (0, 65535)), 1)];
        let out = first_match(&boxes);
        assert_eq!(first(&out, 5, 6, 80), Some(0));
        assert_eq!(first(&out, 5, 6, 81), Some(1));
        assert_eq!(first(&out, 4, 6, 80), Some(1));
        assert_eq!(first(&out, 256, 6, 80), None);
        // Disjoint: every point in exactly one element.
        for addr in [0, 4, 5, 6, 255] {
            for port in [0, 79, 80, 81, 65535] {
                assert!(out.iter().filter(|(x, _)| x.addr.0 <= addr && addr <= x.addr.1 && x.port.0 <= port && port <= x.port.1 && x.proto.0 <= 6 && 6 <= x.proto.1).count() <= 1);
            }
        }
    }

    #[test]
    fn a_range_split_by_other_rules_ports_is_joined_again() {
        // Rank 0: 10.0.0.0-255 on every TCP port; rank 1: another range on port 80 only.
        // The cut makes three port cells; the first range is one element again.
        let boxes = [(b((0, 255), (6, 6), (0, 65535)), 0), (b((1000, 1000), (6, 6), (80, 80)), 1)];
        let out = first_match(&boxes);
        assert_eq!(out, vec![(b((0, 255), (6, 6), (0, 65535)), 0), (b((1000, 1000), (6, 6), (80, 80)), 1)]);
    }

    #[test]
    fn what_a_lower_rank_decides_is_not_handed_to_the_cut() {
        let every = ((0, 255), (0, 65535));
        let tcp80 = ((6, 6), (80, 80));
        let boxes = [
            // Rank 0 decides 0-99 on every service, rank 1 tcp/80 on 100-149.
            (b((0, 99), every.0, every.1), 0),
            (b((100, 149), tcp80.0, tcp80.1), 1),
            // Inside rank 0: gone. Half inside: clipped.
            (b((10, 20), tcp80.0, tcp80.1), 2),
            (b((50, 129), every.0, every.1), 2),
            // Rank 1 holds tcp/80 only: it takes nothing off a box on every service.
            (b((100, 140), every.0, every.1), 3),
            // On tcp/80 ranks 0-3 decide 0-149.
            (b((0, 210), tcp80.0, tcp80.1), 4),
        ];
        let kept = unshadowed(&boxes);
        assert_eq!(
            kept,
            vec![
                (b((0, 99), every.0, every.1), 0),
                (b((100, 149), tcp80.0, tcp80.1), 1),
                (b((100, 129), every.0, every.1), 2),
                (b((130, 140), every.0, every.1), 3),
                (b((150, 210), tcp80.0, tcp80.1), 4),
            ]
        );
        // And the first match is the same with or without the pass.
        assert_eq!(first_match(&boxes), first_match(&kept));
    }

    #[test]
    fn the_whole_ipv6_space_has_no_address_after_it() {
        let everything = b((0, u128::MAX), (0, 255), (0, 65535));
        let out = first_match(&[(everything, 3), (b((u128::MAX, u128::MAX), (6, 6), (1, 1)), 1)]);
        assert_eq!(first(&out, u128::MAX, 6, 1), Some(1));
        assert_eq!(first(&out, u128::MAX, 6, 2), Some(3));
        assert_eq!(first(&out, 0, 0, 0), Some(3));
    }

    fn arb_box() -> impl Strategy<Value = (Box3, usize)> {
        let range = |max: u128| (0..=max).prop_flat_map(move |lo| (Just(lo), lo..=max));
        (range(40), (0u8..=8).prop_flat_map(|lo| (Just(lo), lo..=8u8)), (0u16..=12).prop_flat_map(|lo| (Just(lo), lo..=12u16)), 0usize..5)
            .prop_map(|(addr, proto, port, rank)| (Box3 { addr, proto, port }, rank))
    }

    /// What the node does with the two lookups: the first stage's answer if it has one (a
    /// Pass included: the second lookup's rule requires the key to be absent from the
    /// first map), else the second's.
    fn staged(by_port: &[(Box3, usize)], by_address: &[(Box3, usize)], addr: u128, proto: u8, port: u16) -> Option<usize> {
        first(by_port, addr, proto, port).or_else(|| first(by_address, addr, proto, port))
    }

    fn arb_every_service_box() -> impl Strategy<Value = (Box3, usize)> {
        ((0..=40u128).prop_flat_map(|lo| (Just(lo), lo..=40u128)), 0usize..5).prop_map(|(addr, rank)| (Box3 { addr, proto: (0, 255), port: (0, 65535) }, rank))
    }

    proptest! {
        #[test]
        fn two_stages_answer_like_the_first_match(
            mut boxes in prop::collection::vec(arb_box(), 0..8),
            everywhere in prop::collection::vec(arb_every_service_box(), 0..5),
        ) {
            boxes.extend(everywhere);
            let (by_port, by_address) = two_stage(&boxes);
            prop_assert!(by_address.iter().all(|(b, _)| b.on_every_service()));
            for addr in 0..=41u128 {
                for proto in [0u8, 3, 6, 9, 255] {
                    for port in [0u16, 5, 12, 13, 65535] {
                        for stage in [&by_port, &by_address] {
                            let covering = stage.iter().filter(|(x, _)| x.addr.0 <= addr && addr <= x.addr.1 && x.proto.0 <= proto && proto <= x.proto.1 && x.port.0 <= port && port <= x.port.1).count();
                            prop_assert!(covering <= 1, "overlapping elements at {addr} {proto} {port}");
                        }
                        prop_assert_eq!(staged(&by_port, &by_address, addr, proto, port), first(&boxes, addr, proto, port), "at {} {} {}", addr, proto, port);
                    }
                }
            }
        }

        #[test]
        fn every_point_gets_the_lowest_rank_covering_it(boxes in prop::collection::vec(arb_box(), 0..12)) {
            let out = first_match(&boxes);
            for addr in 0..=41u128 {
                for proto in 0..=9u8 {
                    for port in 0..=13u16 {
                        let covering: Vec<usize> = out.iter().filter(|(x, _)| x.addr.0 <= addr && addr <= x.addr.1 && x.proto.0 <= proto && proto <= x.proto.1 && x.port.0 <= port && port <= x.port.1).map(|(_, r)| *r).collect();
                        prop_assert!(covering.len() <= 1, "overlapping elements at {addr} {proto} {port}");
                        prop_assert_eq!(covering.first().copied(), first(&boxes, addr, proto, port));
                    }
                }
            }
        }
    }
}
