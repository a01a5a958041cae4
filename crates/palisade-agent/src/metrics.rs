//! The agent's Prometheus metrics (OpenMetrics text on `/metrics`), with `prometheus-client`:
//! a registry of its own, typed label sets, no globals.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: String,
}

pub struct Metrics {
    pub registry: Registry,
    /// Render and apply of one sync.
    pub sync_duration: Histogram,
    /// From the first change a sync covers arriving from the API to the kernel holding it.
    pub event_to_kernel: Histogram,
    pub last_successful_sync: Gauge<f64, AtomicU64>,
    pub rules: Gauge,
    pub set_elements: Gauge,
    pub apply_errors: Family<ReasonLabel, Counter>,
    pub policies_refused: Gauge,
    pub objects_watched: Family<KindLabel, Gauge>,
    pub watch_errors: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        // 0.5 ms .. about 16 s.
        let latency = || Histogram::new(exponential_buckets(0.0005, 2.0, 16));
        let metrics = Self {
            registry: Registry::with_prefix("palisade"),
            sync_duration: latency(),
            event_to_kernel: latency(),
            last_successful_sync: Gauge::default(),
            rules: Gauge::default(),
            set_elements: Gauge::default(),
            apply_errors: Family::default(),
            policies_refused: Gauge::default(),
            objects_watched: Family::default(),
            watch_errors: Counter::default(),
        };
        let mut metrics = metrics;
        let r = &mut metrics.registry;
        r.register("sync_duration_seconds", "Render and apply of one sync of this node's ruleset", metrics.sync_duration.clone());
        r.register("event_to_kernel_seconds", "From a change arriving from the API to the kernel enforcing it", metrics.event_to_kernel.clone());
        r.register("last_successful_sync_timestamp_seconds", "Unix time of the last sync the kernel accepted", metrics.last_successful_sync.clone());
        r.register("ruleset_rules", "Rules in this node's table", metrics.rules.clone());
        r.register("ruleset_set_elements", "Set and map elements in this node's table", metrics.set_elements.clone());
        r.register("apply_errors", "Rulesets the kernel refused, by reason (the previous one stayed in force)", metrics.apply_errors.clone());
        r.register("policies_refused", "NetworkPolicies the agent could not take (see their Events)", metrics.policies_refused.clone());
        r.register("objects_watched", "Objects held from the API, by kind", metrics.objects_watched.clone());
        r.register("watch_errors", "Errors of the API watches (each is retried with back-off)", metrics.watch_errors.clone());
        metrics
    }
}

impl Metrics {
    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry).expect("writing to a String cannot fail");
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_names_every_metric() {
        let metrics = Metrics::default();
        metrics.apply_errors.get_or_create(&ReasonLabel { reason: "object_exists".into() }).inc();
        metrics.sync_duration.observe(0.004);
        let text = metrics.encode();
        for name in [
            "palisade_sync_duration_seconds_bucket",
            "palisade_event_to_kernel_seconds_count",
            "palisade_last_successful_sync_timestamp_seconds",
            "palisade_ruleset_rules",
            "palisade_apply_errors_total{reason=\"object_exists\"} 1",
        ] {
            assert!(text.contains(name), "{name} missing from:\n{text}");
        }
    }
}
