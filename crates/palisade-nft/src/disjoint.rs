//! The union of a policy's (peer range x protocol range x port range) boxes as disjoint
//! boxes. nft's concatenated interval sets (pipapo) refuse an element that overlaps one they
//! hold ("File exists"), and a policy's rules overlap all the time: a rule for every port
//! beside one for port 8080, `10.0.0.0/8` beside `10.1.0.0/16`, an endPort range holding a
//! listed port, a named port resolving to a listed number.
//!
//! The decomposition is canonical: it depends only on the union, never on how the boxes
//! were written, so equal states give equal sets and incremental updates diff disjoint
//! decompositions (whose removals and additions never overlap what stays).
//!
//! Sweep along the address axis: between two consecutive box edges the boxes covering the
//! addresses are fixed, and so is their (protocol x port) union, its "profile". Neighbouring
//! stretches with the same profile merge. A profile is itself canonical: the protocol axis
//! cut where the set of port ranges changes, each piece with its merged port ranges. Cost:
//! O(B log B) for B boxes plus the profiles of the distinct sets of overlapping boxes, which
//! are few (pods are single addresses; CIDRs nest rarely).

use std::collections::{BTreeMap, HashMap};

use crate::intervals::Range;

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

/// A (protocol x port) union as disjoint rectangles, in protocol order.
type Profile = Vec<(ProtoRange, PortRange)>;

/// The union of `boxes` as disjoint boxes, sorted by address, protocol and port.
pub fn disjoint(mut boxes: Vec<Box3>) -> Vec<Box3> {
    boxes.sort_unstable();
    boxes.dedup();
    // Edges along the address axis: a box starts at `addr.0` and ends after `addr.1`
    // (`None` past the end of the address space).
    let mut edges: Vec<(Option<u128>, bool, usize)> = Vec::with_capacity(boxes.len() * 2);
    for (i, b) in boxes.iter().enumerate() {
        edges.push((Some(b.addr.0), true, i));
        edges.push((b.addr.1.checked_add(1), false, i));
    }
    // `None` (the end of the space) sorts after every address.
    edges.sort_unstable_by_key(|&(at, starts, i)| (at.is_none(), at, starts, i));

    let mut active: BTreeMap<(ProtoRange, PortRange), usize> = BTreeMap::new();
    let mut profiles: HashMap<Vec<(ProtoRange, PortRange)>, Profile> = HashMap::new();
    // Stretches of the address axis with a non-empty profile, merged with their neighbours.
    let mut stretches: Vec<(Range, Profile)> = Vec::new();
    let mut k = 0;
    while k < edges.len() {
        let Some(at) = edges[k].0 else { break };
        while k < edges.len() && edges[k].0 == Some(at) {
            let (_, starts, i) = edges[k];
            let key = (boxes[i].proto, boxes[i].port);
            if starts {
                *active.entry(key).or_default() += 1;
            } else if let Some(n) = active.get_mut(&key) {
                *n -= 1;
                if *n == 0 {
                    active.remove(&key);
                }
            }
            k += 1;
        }
        if active.is_empty() {
            continue;
        }
        // The stretch runs to the next edge (exclusive), or to the end of the space.
        let end = match edges.get(k) {
            Some((Some(next), _, _)) => next - 1,
            _ => u128::MAX,
        };
        let rectangles: Vec<(ProtoRange, PortRange)> = active.keys().copied().collect();
        let profile = profiles.entry(rectangles).or_insert_with_key(|r| profile(r)).clone();
        match stretches.last_mut() {
            Some((range, last)) if range.1.checked_add(1) == Some(at) && *last == profile => range.1 = end,
            _ => stretches.push(((at, end), profile)),
        }
    }
    let mut out = Vec::new();
    for (addr, profile) in stretches {
        out.extend(profile.into_iter().map(|(proto, port)| Box3 { addr, proto, port }));
    }
    out
}

/// The union of (protocol range x port range) rectangles as disjoint rectangles: the
/// protocol axis cut at every rectangle edge, each piece with its merged port ranges, and
/// neighbouring pieces with the same port ranges joined.
fn profile(rectangles: &[(ProtoRange, PortRange)]) -> Profile {
    let mut cuts: Vec<u16> = Vec::with_capacity(rectangles.len() * 2);
    for &((lo, hi), _) in rectangles {
        cuts.push(u16::from(lo));
        cuts.push(u16::from(hi) + 1);
    }
    cuts.sort_unstable();
    cuts.dedup();
    let mut pieces: Vec<(ProtoRange, Vec<PortRange>)> = Vec::new();
    for pair in cuts.windows(2) {
        let (lo, hi) = (pair[0] as u8, (pair[1] - 1) as u8);
        let ports = merge_ports(rectangles.iter().filter(|((a, b), _)| *a <= lo && hi <= *b).map(|&(_, port)| port).collect());
        if ports.is_empty() {
            continue;
        }
        match pieces.last_mut() {
            Some(((_, last_hi), last_ports)) if u16::from(*last_hi) + 1 == u16::from(lo) && *last_ports == ports => *last_hi = hi,
            _ => pieces.push(((lo, hi), ports)),
        }
    }
    pieces.into_iter().flat_map(|(proto, ports)| ports.into_iter().map(move |port| (proto, port))).collect()
}

/// Sorts port ranges and joins overlapping or adjacent ones.
fn merge_ports(mut ports: Vec<PortRange>) -> Vec<PortRange> {
    ports.sort_unstable();
    let mut out: Vec<PortRange> = Vec::with_capacity(ports.len());
    for (lo, hi) in ports {
        match out.last_mut() {
            Some(last) if u32::from(lo) <= u32::from(last.1) + 1 => last.1 = last.1.max(hi),
            _ => out.push((lo, hi)),
        }
    }
    out
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
        boxes
            .iter()
            .filter(|b| b.addr.0 <= addr && addr <= b.addr.1 && b.proto.0 <= proto && proto <= b.proto.1 && b.port.0 <= port && port <= b.port.1)
            .count()
    }

    #[test]
    fn a_portless_rule_absorbs_a_port_rule_for_the_same_peer() {
        // The example: `from: a` on every port, and `from: a` on 8080 again.
        let out = disjoint(vec![b((2, 2), ANY_PROTO, ANY_PORT), b((2, 2), TCP, (8080, 8080))]);
        assert_eq!(out, vec![b((2, 2), ANY_PROTO, ANY_PORT)]);
    }

    #[test]
    fn nested_cidrs_with_other_ports_are_cut_apart() {
        // 10.0.0.0/8 on 80/TCP and 10.1.0.0/16 on 443/TCP.
        let out = disjoint(vec![b((0x0a00_0000, 0x0aff_ffff), TCP, (80, 80)), b((0x0a01_0000, 0x0a01_ffff), TCP, (443, 443))]);
        assert_eq!(
            out,
            vec![
                b((0x0a00_0000, 0x0a00_ffff), TCP, (80, 80)),
                b((0x0a01_0000, 0x0a01_ffff), TCP, (80, 80)),
                b((0x0a01_0000, 0x0a01_ffff), TCP, (443, 443)),
                b((0x0a02_0000, 0x0aff_ffff), TCP, (80, 80)),
            ]
        );
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
