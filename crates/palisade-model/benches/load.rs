//! Loading the 500-pod, 200-policy cluster of the NCA comparison, as YAML and as JSON
//! (`kubectl get -o json` style), on all cores; and reading its 135 KB `PodList` alone, by
//! the block-YAML reader (values built) and by saphyr's parser (events only, no values: a
//! lower bound of any saphyr-based reading). `cargo bench -p palisade-model`.
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
        c.bench_function(&format!("load 500 pods x 200 policies, {format}"), |b| b.iter(|| load(black_box(&sources), &options).expect("the generated cluster loads")));
    }
}

/// Receives saphyr's events and drops them.
struct Discard;

impl saphyr_parser::SpannedEventReceiver<'_> for Discard {
    fn on_event(&mut self, event: saphyr_parser::Event<'_>, _: saphyr_parser::Span) {
        black_box(event);
    }
}

fn reading_the_pod_list(c: &mut Criterion) {
    let text = std::fs::read_to_string(input("yaml").join("pods.yaml")).expect("the generated pods.yaml");
    c.bench_function("read pods.yaml (135 KB), block-YAML reader", |b| b.iter(|| palisade_model::parse_yaml(black_box(&text)).expect("valid YAML")));
    c.bench_function("read pods.yaml (135 KB), saphyr parser events only", |b| b.iter(|| saphyr_parser::Parser::new_from_str(black_box(&text)).load(&mut Discard, true).expect("valid YAML")));
}

criterion_group!(benches, loading, reading_the_pod_list);
criterion_main!(benches);
