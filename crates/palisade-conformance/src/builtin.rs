//! The built-in cases, compiled into the binary (the conformance command runs them on any
//! machine): the upstream transcription in `cases/`.

/// `(file name, text)` of every file in `cases/`, in name order.
pub const FILES: [(&str, &str); 48] = [
    ("e2e-01.yaml", include_str!("../cases/e2e-01.yaml")),
    ("e2e-02.yaml", include_str!("../cases/e2e-02.yaml")),
    ("e2e-03.yaml", include_str!("../cases/e2e-03.yaml")),
    ("e2e-04.yaml", include_str!("../cases/e2e-04.yaml")),
    ("e2e-05.yaml", include_str!("../cases/e2e-05.yaml")),
    ("e2e-06.yaml", include_str!("../cases/e2e-06.yaml")),
    ("e2e-07.yaml", include_str!("../cases/e2e-07.yaml")),
    ("e2e-08.yaml", include_str!("../cases/e2e-08.yaml")),
    ("e2e-09.yaml", include_str!("../cases/e2e-09.yaml")),
    ("e2e-10.yaml", include_str!("../cases/e2e-10.yaml")),
    ("e2e-11.yaml", include_str!("../cases/e2e-11.yaml")),
    ("e2e-12.yaml", include_str!("../cases/e2e-12.yaml")),
    ("e2e-13.yaml", include_str!("../cases/e2e-13.yaml")),
    ("e2e-14.yaml", include_str!("../cases/e2e-14.yaml")),
    ("e2e-15.yaml", include_str!("../cases/e2e-15.yaml")),
    ("e2e-16.yaml", include_str!("../cases/e2e-16.yaml")),
    ("e2e-17.yaml", include_str!("../cases/e2e-17.yaml")),
    ("e2e-18.yaml", include_str!("../cases/e2e-18.yaml")),
    ("e2e-19.yaml", include_str!("../cases/e2e-19.yaml")),
    ("e2e-20.yaml", include_str!("../cases/e2e-20.yaml")),
    ("e2e-21.yaml", include_str!("../cases/e2e-21.yaml")),
    ("e2e-22.yaml", include_str!("../cases/e2e-22.yaml")),
    ("e2e-23.yaml", include_str!("../cases/e2e-23.yaml")),
    ("e2e-24.yaml", include_str!("../cases/e2e-24.yaml")),
    ("e2e-25.yaml", include_str!("../cases/e2e-25.yaml")),
    ("e2e-26.yaml", include_str!("../cases/e2e-26.yaml")),
    ("e2e-27.yaml", include_str!("../cases/e2e-27.yaml")),
    ("e2e-28.yaml", include_str!("../cases/e2e-28.yaml")),
    ("e2e-29.yaml", include_str!("../cases/e2e-29.yaml")),
    ("e2e-30.yaml", include_str!("../cases/e2e-30.yaml")),
    ("e2e-31.yaml", include_str!("../cases/e2e-31.yaml")),
    ("e2e-32.yaml", include_str!("../cases/e2e-32.yaml")),
    ("e2e-33.yaml", include_str!("../cases/e2e-33.yaml")),
    ("e2e-34.yaml", include_str!("../cases/e2e-34.yaml")),
    ("e2e-35.yaml", include_str!("../cases/e2e-35.yaml")),
    ("e2e-36.yaml", include_str!("../cases/e2e-36.yaml")),
    ("e2e-37.yaml", include_str!("../cases/e2e-37.yaml")),
    ("e2e-38.yaml", include_str!("../cases/e2e-38.yaml")),
    ("e2e-39.yaml", include_str!("../cases/e2e-39.yaml")),
    ("e2e-40.yaml", include_str!("../cases/e2e-40.yaml")),
    ("e2e-41.yaml", include_str!("../cases/e2e-41.yaml")),
    ("e2e-42.yaml", include_str!("../cases/e2e-42.yaml")),
    ("e2e-43.yaml", include_str!("../cases/e2e-43.yaml")),
    ("e2e-44.yaml", include_str!("../cases/e2e-44.yaml")),
    ("e2e-45.yaml", include_str!("../cases/e2e-45.yaml")),
    ("e2e-46.yaml", include_str!("../cases/e2e-46.yaml")),
    ("e2e-47.yaml", include_str!("../cases/e2e-47.yaml")),
    ("e2e-48.yaml", include_str!("../cases/e2e-48.yaml")),
];

/// Palisade's own cases, in the case file format (`cases/own/edge-cases.yaml`).
pub const OWN: (&str, &str) = ("cases/own/edge-cases.yaml", include_str!("../cases/own/edge-cases.yaml"));

/// Upstream's ClusterNetworkPolicy tests (kubernetes-sigs/network-policy-api conformance,
/// admin and baseline tiers, the Harry Potter topology) in the case file format.
pub const CLUSTER_POLICIES: (&str, &str) = ("cases/own/cluster-network-policy.yaml", include_str!("../cases/own/cluster-network-policy.yaml"));
