//! Loading the 500-pod, 200-policy cluster of the NCA comparison, as YAML and as JSON
//! (`kubectl get -o json` style), on all cores. `cargo bench -p palisade-model`.
//!
//! The inputs come from `bench/gen_cluster.py` (python3 with PyYAML), generated on first use.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::Command;

use criterion::{Criterion, criterion_group, criterion_main};
use palisade_model::{LoadOptions, Source, load};

// The CLI's allocator, so the figures are the CLI's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn input(format: &str) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dir = root.join(format!("bench/out/cluster-500-200-{format}"));
    if !dir.exists() {
        let status = Command::new("python3")
            .arg(root.join("bench/gen_cluster.py"))
            .args(["--pods", "500", "--policies", "200", "--format", format, "--out"])
            .arg(&dir)
            .status()
            .expect("python3 runs bench/gen_cluster.py");
        assert!(status.success(), "bench/gen_cluster.py failed");
    }
    dir
}

fn loading(c: &mut Criterion) {
    for format in ["yaml", "json"] {
        let sources = [Source { path: input(format), namespace: None }];
        let options = LoadOptions::default();
        c.bench_function(&format!("load 500 pods x 200 policies, {format}"), |b| {
            b.iter(|| load(black_box(&sources), &options).expect("the generated cluster loads"))
        });
    }
}

criterion_group!(benches, loading);
criterion_main!(benches);
