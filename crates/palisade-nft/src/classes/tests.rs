use super::*;

fn cluster(text: &str) -> Cluster {
    palisade_model::load_text(text, &palisade_model::LoadOptions::default()).expect("valid").cluster
}

fn pod(name: &str, labels: &str, ips: &[&str]) -> String {
    let list: Vec<String> = ips.iter().map(|ip| format!("{{ip: {ip}}}")).collect();
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: a, labels: {{{labels}}}}}\nspec: {{containers: [{{name: c, ports: [{{containerPort: 80, name: http}}]}}]}}\nstatus: {{podIP: {}, podIPs: [{}]}}\n---\n",
        ips[0],
        list.join(", ")
    )
}

const POLICY: &str = "apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: p, namespace: a}
spec:
  podSelector: {}
  ingress: [{from: [{podSelector: {matchLabels: {app: web}}}]}]
";

/// The classes of the one pod peer in `POLICY`, over both families.
fn classes_of(c: &Cluster, previous: Option<&ClassIds>, mask: u32) -> Result<Classes, TooManyClasses> {
    let mut atoms = Atoms::default();
    let Some(Peer::Pods { .. }) = c.policies[0].ingress.as_ref().unwrap()[0].peers.first() else { panic!("a pod peer") };
    atoms.intern(Atom::peer("a", &c.policies[0].ingress.as_ref().unwrap()[0].peers[0]));
    compute(c, &atoms, &[false, true], MarkBits::new(mask).unwrap(), previous, &mut crate::matches::RenderCache::default())
}

fn class_of(classes: &Classes, ip: &str) -> u32 {
    let ip: IpAddr = ip.parse().unwrap();
    let f = usize::from(ip.is_ipv6());
    if let Some(&(_, id)) = classes.exact[f].iter().find(|(a, _)| *a == ip) {
        return id;
    }
    let at = to_int(ip);
    classes.regions[f].iter().find(|((lo, hi), _)| *lo <= at && at <= *hi).expect("regions cover everything").1
}

#[test]
fn addresses_a_selector_does_not_tell_apart_share_a_class() {
    let text = pod("w1", "app: web, v: '1'", &["10.0.0.1", "fd00::1"]) + &pod("w2", "app: web, v: '2'", &["10.0.0.2"]) + &pod("db", "app: db", &["10.0.0.3"]) + POLICY;
    let c = cluster(&text);
    let classes = classes_of(&c, None, MarkBits::DEFAULT_MASK).unwrap();
    // Both web pods (whatever their other labels) and both families of w1: one class.
    let web = class_of(&classes, "10.0.0.1");
    assert_eq!(class_of(&classes, "10.0.0.2"), web);
    assert_eq!(class_of(&classes, "fd00::1"), web);
    // db is matched by nothing: the same class as any outside address, so no map element.
    assert_eq!(class_of(&classes, "10.0.0.3"), class_of(&classes, "192.0.2.1"));
    assert!(!classes.exact[0].iter().any(|(ip, _)| ip.to_string() == "10.0.0.3"));
    assert_eq!(classes.members[0], vec![web]);
    assert_eq!(classes.ids.len(), 2);
}

#[test]
fn ids_stay_where_addresses_stay_and_freed_ids_wait_a_render() {
    let base = pod("w1", "app: web", &["10.0.0.1"]) + &pod("x", "app: x", &["10.0.0.9"]) + POLICY;
    let first = classes_of(&cluster(&base), None, MarkBits::DEFAULT_MASK).unwrap();
    let web = class_of(&first, "10.0.0.1");
    let other = class_of(&first, "10.0.0.9");
    // w1 leaves the web class: its id is freed, and not given to the class that forms now.
    let moved = pod("w1", "app: other", &["10.0.0.1"]) + &pod("w2", "app: web", &["10.0.0.5"]) + &pod("x", "app: x", &["10.0.0.9"]) + POLICY;
    let second = classes_of(&cluster(&moved), Some(&first.assignment), MarkBits::DEFAULT_MASK).unwrap();
    assert_eq!(class_of(&second, "10.0.0.9"), other, "the unselected class keeps its id");
    assert_eq!(class_of(&second, "10.0.0.1"), other, "w1 joins it");
    let w2 = class_of(&second, "10.0.0.5");
    assert_ne!(w2, web, "a freed id is not reused in the render that frees it");
    // Renders later, with w2's class kept, nothing moves.
    let third = classes_of(&cluster(&moved), Some(&second.assignment), MarkBits::DEFAULT_MASK).unwrap();
    assert_eq!((class_of(&third, "10.0.0.5"), class_of(&third, "10.0.0.1")), (w2, other));
}

#[test]
fn more_classes_than_the_mask_holds_is_an_error_not_a_wrong_table() {
    let text = pod("w1", "app: web", &["10.0.0.1"]) + POLICY;
    // One bit: id 1 only; two classes (web and everyone else) need two.
    let error = classes_of(&cluster(&text), None, 0x8000_0000).err().expect("too many");
    assert_eq!((error.classes, error.capacity), (2, 1));
    assert!(error.to_string().contains("--mark-mask"), "{error}");
    assert!(classes_of(&cluster(&text), None, 0xc000_0000).is_ok());
}

#[test]
fn mark_masks_are_one_run_of_bits() {
    assert_eq!(MarkBits::new(0xffff_0000).unwrap().capacity(), 0xffff);
    assert_eq!(MarkBits::new(0x00f0_0000).unwrap().value(3), 0x0030_0000);
    assert!(MarkBits::new(0).is_err());
    assert!(MarkBits::new(0xff00_ff00).unwrap_err().contains("contiguous"));
}
