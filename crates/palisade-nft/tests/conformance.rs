//! The upstream e2e cases against the rendered rules: every probe's first packet is traced
//! through the table a node with all pods local would load, SCTP included (no root needed).
//! As root, every distinct ruleset a case renders is also loaded into a real kernel, as an
//! incremental update from the one before, which must be accepted as it is.

mod support;

use palisade_conformance::{Scenario, default_pod_ips, load_cases};
use palisade_model::{Cluster, Protocol};
use palisade_nft::trace::{Fate, Packet, trace};
use palisade_nft::{NodeState, RenderOptions, Ruleset, render};
use palisade_testbed::require_privileges;
use support::Kernel;

/// Renders the node's table once per distinct cluster state, and loads each new one into
/// the kernel (when there is one).
struct Rules {
    kernel: Option<Kernel>,
    last: Option<Ruleset>,
    loaded: usize,
}

impl Rules {
    fn new() -> Self {
        Self { kernel: require_privileges().then(|| Kernel::new(1)), last: None, loaded: 0 }
    }

    fn passes(&mut self, cluster: &Cluster, from: usize, to: usize, port: u16, protocol: Protocol, v6: bool) -> bool {
        let state = NodeState { cluster, local: (0..cluster.endpoints.len()).collect(), options: RenderOptions::default() };
        let ruleset = render(&state);
        if self.last.as_ref() != Some(&ruleset) {
            if let Some(kernel) = &self.kernel {
                kernel.load(0, &ruleset).unwrap_or_else(|e| panic!("{e}"));
                self.loaded += 1;
            }
            self.last = Some(ruleset);
        }
        let ip = |i: usize| cluster.endpoints[i].ip_of_family(v6).expect("pods have an address");
        let ruleset = self.last.as_ref().expect("rendered");
        trace(ruleset, &Packet { src: ip(from), dst: ip(to), protocol: protocol.number(), dport: port }) == Fate::Accept
    }
}

#[test]
fn upstream_cases_through_the_rendered_rules() {
    let mut failures = Vec::new();
    let mut probes = 0;
    let mut rules = Rules::new();
    for case in load_cases() {
        for variant in &case.variants {
            let mismatches = Scenario::run(&case, variant, default_pod_ips, |c, from, to, port, protocol| {
                probes += 1;
                rules.passes(c, from, to, port, protocol, false)
            });
            failures.extend(mismatches.iter().map(|m| format!("{} [{}] {m}", case.id, variant.name)));
        }
    }
    assert!(failures.is_empty(), "{} of {probes} probes differ:\n{}", failures.len(), failures.join("\n"));
    assert!(probes > 5000);
    assert!(rules.kernel.is_none() || rules.loaded > 50, "only {} rulesets loaded", rules.loaded);
}

#[test]
fn upstream_cases_through_the_rendered_rules_on_ipv6() {
    let v6 = |pod: &str| -> Vec<std::net::IpAddr> {
        let v4 = default_pod_ips(pod)[0].to_string();
        let octets: Vec<&str> = v4.split('.').collect();
        vec![format!("fd00:10:244:{}::{}", octets[2], octets[3]).parse().unwrap()]
    };
    let mut rules = Rules::new();
    for case in load_cases() {
        for variant in &case.variants {
            if variant.name == "full-3x3" && matches!(case.id.as_str(), "e2e-35" | "e2e-36") {
                continue; // The older model's unmasked '<podIP>/4' has no IPv6 form upstream.
            }
            let mismatches = Scenario::run(&case, variant, v6, |c, from, to, port, protocol| rules.passes(c, from, to, port, protocol, true));
            assert!(mismatches.is_empty(), "{} [{}]: {:?}", case.id, variant.name, mismatches);
        }
    }
}
