//! Engine internals on a synthetic cluster, without loading: one verdict, the class
//! analysis, and one port's allowed sets. `cargo bench -p palisade-policy`.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use palisade_conformance::synthetic::cluster;
use palisade_model::Protocol;
use palisade_policy::analysis::Analysis;
use palisade_policy::{Flow, FlowEnd, verdict};

fn engine(c: &mut Criterion) {
    let big = cluster(10_000, 1_000);
    let flow = Flow { src: FlowEnd::endpoint(&big, 1, None), dst: FlowEnd::endpoint(&big, 5_007, None), port: 8000, protocol: Protocol::Tcp };
    c.bench_function("verdict: one flow, 10k pods x 1k policies", |b| b.iter(|| verdict(black_box(&big), black_box(&flow))));
    c.bench_function("analysis: classes and peer sets, 10k pods x 1k policies", |b| b.iter(|| Analysis::new(black_box(&big), false)));
    let analysis = Analysis::new(&big, false);
    c.bench_function("analysis: allowed sets of one port, 10k pods x 1k policies", |b| b.iter(|| analysis.port_sets(black_box(8000), Protocol::Tcp)));
    let small = cluster(500, 200);
    c.bench_function("analysis: classes and peer sets, 500 pods x 200 policies", |b| b.iter(|| Analysis::new(black_box(&small), false)));
}

criterion_group!(benches, engine);
criterion_main!(benches);
