//! Privileged: set and map elements sent over netlink (`palisade_nft::netlink`) land in the
//! kernel as nft itself would put them: `nft list` prints the rendered text back, for every
//! kind of set the renderer makes.

mod support;

use palisade_nft::ruleset::{Chain, KeyType, Rule, Ruleset, Set, Statement, Value, Verdict, VerdictMap};
use palisade_nft::{json, netlink, text};
use palisade_testbed::{NetNs, normalize_listing, require_privileges};
use support::NsNft;

fn addr(lo: &str, hi: &str) -> Value {
    Value::Addr(lo.parse().unwrap(), hi.parse().unwrap())
}

fn mark(lo: u32, hi: u32) -> Value {
    Value::Mark(lo, hi)
}

/// Every layout: hashes of marks, addresses and concatenations, single-field ranges (with
/// adjacent ranges and one reaching the top), concatenated ranges, verdict maps of each.
fn table() -> Ruleset {
    let goto = |c: &str| Verdict::Goto(c.to_string());
    let sets = vec![
        Set { name: "marks".into(), key: vec![KeyType::Mark], interval: false, elements: vec![smallvec::smallvec![mark(0x10000, 0x10000)], smallvec::smallvec![mark(0x50000, 0x50000)]].into() },
        Set {
            name: "nets4".into(),
            key: vec![KeyType::Ipv4],
            interval: true,
            elements: vec![smallvec::smallvec![addr("10.0.0.0", "10.255.255.255")], smallvec::smallvec![addr("192.168.1.1", "192.168.1.5")], smallvec::smallvec![addr("200.0.0.0", "255.255.255.255")]]
                .into(),
        },
        Set { name: "nets6".into(), key: vec![KeyType::Ipv6], interval: true, elements: vec![smallvec::smallvec![addr("fd00::", "fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")]].into() },
        Set {
            name: "named".into(),
            key: vec![KeyType::Mark, KeyType::Proto, KeyType::Service],
            interval: false,
            elements: vec![
                smallvec::smallvec![mark(0x10000, 0x10000), Value::Proto(6, 6), Value::Port(8080, 8080)],
                smallvec::smallvec![mark(0x20000, 0x20000), Value::Proto(17, 17), Value::Port(53, 53)],
            ]
            .into(),
        },
        Set {
            name: "svc".into(),
            key: vec![KeyType::Proto, KeyType::Service],
            interval: true,
            elements: vec![smallvec::smallvec![Value::Proto(6, 6), Value::Port(80, 90)], smallvec::smallvec![Value::Proto(17, 17), Value::Port(0, 65535)]].into(),
        },
    ];
    let maps = vec![
        VerdictMap {
            name: "by_addr".into(),
            key: vec![KeyType::Ipv4],
            interval: false,
            elements: vec![(smallvec::smallvec![addr("10.0.0.1", "10.0.0.1")], goto("c1")), (smallvec::smallvec![addr("10.0.0.2", "10.0.0.2")], Verdict::Jump("c2".into()))].into(),
        },
        VerdictMap {
            name: "regions".into(),
            key: vec![KeyType::Ipv4],
            interval: true,
            elements: vec![
                (smallvec::smallvec![addr("0.0.0.0", "9.255.255.255")], goto("c1")),
                (smallvec::smallvec![addr("10.0.0.0", "10.255.255.255")], goto("c2")),
                (smallvec::smallvec![addr("11.0.0.0", "255.255.255.255")], goto("c1")),
            ]
            .into(),
        },
        VerdictMap {
            name: "tier".into(),
            key: vec![KeyType::Mark, KeyType::Proto, KeyType::Service],
            interval: true,
            elements: vec![
                (smallvec::smallvec![mark(0x10000, 0x30000), Value::Proto(6, 6), Value::Port(80, 80)], goto("c1")),
                (smallvec::smallvec![mark(0x50000, 0x50000), Value::Proto(0, 255), Value::Port(0, 65535)], goto("c2")),
                (smallvec::smallvec![mark(0x70000, 0x70000), Value::Proto(6, 6), Value::Port(8080, 8080)], goto("c1")),
            ]
            .into(),
        },
        VerdictMap {
            name: "tier_a".into(),
            key: vec![KeyType::Mark],
            interval: true,
            elements: vec![
                (smallvec::smallvec![mark(0x0, 0x20000)], goto("c1")),
                (smallvec::smallvec![mark(0x30000, 0x30000)], goto("c2")),
                (smallvec::smallvec![mark(0x40000, 0xffff0000)], goto("c1")),
            ]
            .into(),
        },
    ];
    let chain = |name: &str| Chain { name: name.into(), base: None, rules: vec![Rule { statements: vec![Statement::Counter], comment: None }] };
    Ruleset { table: "palisade".into(), sets, maps, chains: vec![chain("c1"), chain("c2")] }
}

#[test]
fn elements_sent_over_netlink_list_as_rendered() {
    if !require_privileges() {
        return;
    }
    let ns = NetNs::new("netlink");
    let ruleset = table();
    let empty = json::create_unhooked(&ruleset, false);
    let mut commands = json::replace_commands(&Ruleset { table: ruleset.table.clone(), sets: vec![], maps: vec![], chains: vec![] });
    commands.extend(empty);
    use palisade_nft::apply::Nft;
    NsNft(&ns).apply(&json::document(&commands)).expect("the empty sets");
    // One transaction per set, so a refusal names the set.
    let send = |name: &str, batches: &mut netlink::Batches| {
        batches.cut();
        for transaction in batches.take() {
            NsNft(&ns).netlink(&transaction).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    };
    for set in &ruleset.sets {
        let mut batches = netlink::Batches::default();
        batches.add(&netlink::Target { table: "palisade", name: &set.name, key: &set.key, interval: set.interval }, set.elements.iter().map(|e| (e, None)));
        send(&set.name, &mut batches);
    }
    for map in &ruleset.maps {
        let mut batches = netlink::Batches::default();
        batches.add(&netlink::Target { table: "palisade", name: &map.name, key: &map.key, interval: map.interval }, map.elements.iter().map(|(e, v)| (e, Some(v))));
        send(&map.name, &mut batches);
    }
    let listing = ns.exec("nft", &["list", "table", "inet", "palisade"]);
    assert_eq!(normalize_listing(&String::from_utf8_lossy(&listing.stdout)), normalize_listing(&text::table(&ruleset)));
}

/// What the netlink encoder put in, nft's own deletions take out, element by element (an
/// incremental update deletes elements of sets it filled over netlink).
#[test]
fn elements_sent_over_netlink_are_deleted_by_nft() {
    if !require_privileges() {
        return;
    }
    use palisade_nft::apply::Nft;
    let ns = NetNs::new("netlink");
    let ruleset = table();
    let mut commands = json::replace_commands(&Ruleset { table: ruleset.table.clone(), sets: vec![], maps: vec![], chains: vec![] });
    commands.extend(json::create_unhooked(&ruleset, false));
    NsNft(&ns).apply(&json::document(&commands)).expect("the empty sets");
    let mut batches = netlink::Batches::default();
    for set in &ruleset.sets {
        batches.add(&netlink::Target { table: "palisade", name: &set.name, key: &set.key, interval: set.interval }, set.elements.iter().map(|e| (e, None)));
    }
    for map in &ruleset.maps {
        batches.add(&netlink::Target { table: "palisade", name: &map.name, key: &map.key, interval: map.interval }, map.elements.iter().map(|(e, v)| (e, Some(v))));
    }
    batches.cut();
    for transaction in batches.take() {
        NsNft(&ns).netlink(&transaction).expect("the kernel takes the elements");
    }
    for set in &ruleset.sets {
        for element in set.elements.iter() {
            let command = json::element_command("delete", "palisade", &set.name, json::elements(std::slice::from_ref(element), set.interval));
            NsNft(&ns).apply(&json::document(&[command])).unwrap_or_else(|e| panic!("{} {element:?}: {e}", set.name));
        }
    }
    for map in &ruleset.maps {
        for element in map.elements.iter() {
            let command = json::element_command("delete", "palisade", &map.name, json::map_elements(std::slice::from_ref(element), map.interval));
            NsNft(&ns).apply(&json::document(&[command])).unwrap_or_else(|e| panic!("{} {element:?}: {e}", map.name));
        }
    }
}

/// And the other way round: what nft put in, netlink deletions take out, one element at a
/// time (an incremental update's element removals go over netlink), leaving exactly the
/// other elements, for every kind of set, adjacent ranges and one reaching the top included.
#[test]
fn elements_deleted_over_netlink_leave_the_others() {
    if !require_privileges() {
        return;
    }
    use palisade_nft::apply::Nft;
    use palisade_nft::ruleset::Elements;
    let ns = NetNs::new("netlink");
    let ruleset = table();
    // Loads the whole table, deletes one element over netlink, compares the listing.
    let check = |what: &str, target: netlink::Target<'_>, element: (&palisade_nft::ruleset::Element, Option<&Verdict>), expected: Ruleset| {
        NsNft(&ns).apply(&json::document(&json::replace_commands(&ruleset))).expect("the table");
        let mut batches = netlink::Batches::default();
        batches.remove(&target, std::iter::once(element));
        batches.cut();
        for transaction in batches.take() {
            NsNft(&ns).netlink(&transaction).unwrap_or_else(|e| panic!("{what}: {e}"));
        }
        let listed = normalize_listing(&String::from_utf8_lossy(&ns.exec("nft", &["list", "table", "inet", "palisade"]).stdout));
        assert_eq!(listed, normalize_listing(&text::table(&expected)), "{what}");
    };
    fn without<T: Clone>(list: &[T], i: usize) -> Elements<T> {
        list.iter().enumerate().filter(|(j, _)| *j != i).map(|(_, e)| e.clone()).collect()
    }
    for (s, set) in ruleset.sets.iter().enumerate() {
        for (i, element) in set.elements.iter().enumerate() {
            let mut expected = ruleset.clone();
            expected.sets[s].elements = without(&set.elements, i);
            let target = netlink::Target { table: "palisade", name: &set.name, key: &set.key, interval: set.interval };
            check(&format!("{} without {element:?}", set.name), target, (element, None), expected);
        }
    }
    for (m, map) in ruleset.maps.iter().enumerate() {
        for (i, (element, verdict)) in map.elements.iter().enumerate() {
            let mut expected = ruleset.clone();
            expected.maps[m].elements = without(&map.elements, i);
            let target = netlink::Target { table: "palisade", name: &map.name, key: &map.key, interval: map.interval };
            check(&format!("{} without {element:?}", map.name), target, (element, Some(verdict)), expected);
        }
    }
}
