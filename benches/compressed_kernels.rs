//! The LeNet-300-100 forward pass (784-300-100-10, a random mask of 2.87 % per layer, the
//! density of the Fashion-MNIST ticket at IMP level 16) from files stored with each codec,
//! run straight from their packed bytes, beside the same network's f32 CSR file: batch 1, 64
//! and 1024 on one thread. What the codebook, int8 and gap decoders cost against the f32
//! values and U16 indices they replace: at batch 1 all of it, at batch 64 and 1024 what is
//! left once each layer is decoded once per span of tiles rather than once per tile.
//!
//! Criterion reports kept multiply-adds per second (elements); a table at the end gives each
//! codec's time per example and its ratio to f32 CSR at the same batch.
//!
//!     cargo bench --bench compressed_kernels            # or: just bench-compressed
//!     cargo bench --bench compressed_kernels -- k4+gap6/1

use criterion::{BenchmarkId, Criterion, Throughput};
use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::Instant;
use ticket_core::csr_format::{IndexCodec, ValueCodec, ValueDtype};
use ticket_core::{Graph, Par};
use ticket_export::{Codecs, CsrModel, Provenance};
use ticket_infer::fixture::{net_of, random_model, Random};
use ticket_infer::{Scratch, SparseModel};

const DENSITY: f64 = 0.0287;
const BATCHES: [usize; 3] = [1, 64, 1024];
/// Value codec and gap bits (`None`: absolute indices) of every file, f32 CSR first.
const CODECS: [(&str, Option<u32>); 12] = [
    ("f32", None),
    ("f16", None),
    ("int8", None),
    ("k4", None),
    ("k8", None),
    ("f32", Some(5)),
    ("int8", Some(5)),
    ("k2", Some(6)),
    ("k4", Some(6)),
    ("k5", Some(5)),
    ("k6", Some(5)),
    ("k8", Some(5)),
];

fn codecs(value: &str, gaps: Option<u32>) -> Codecs {
    let value = match value.parse::<ValueDtype>() {
        Ok(dtype) => ValueCodec::Float(dtype),
        Err(_) => value.parse().expect("a value codec"),
    };
    let index = gaps.map_or(IndexCodec::Absolute, |bits| IndexCodec::Gaps { bits });
    Codecs { value: value.into(), index: index.into() }
}

fn main() {
    let graph: Graph = "784-300-100-10".parse().unwrap();
    let layers = random_model(&graph, &[DENSITY; 3], 7);
    let net = net_of(&graph, &layers);
    let csr = CsrModel::from_net(&net).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let provenance = Provenance { dataset: "random".into(), source_accuracy: None };
    let models: Vec<(String, SparseModel)> = CODECS
        .iter()
        .map(|&(value, gaps)| {
            let c = codecs(value, gaps);
            let path = dir.path().join(format!("{c}.safetensors"));
            csr.write(&path, c, &provenance).unwrap();
            (c.to_string(), SparseModel::load(&path).unwrap())
        })
        .collect();
    let nnz = models[0].1.nnz();
    let mut rng = Random::new(3);
    let x = rng.vec(784 * BATCHES[2], 0.0, 1.0);
    let mut criterion = Criterion::default().configure_from_args();
    let mut times: BTreeMap<(usize, String), f64> = BTreeMap::new();
    for batch in BATCHES {
        let mut group = criterion.benchmark_group("lenet300");
        group.throughput(Throughput::Elements((nnz * batch) as u64));
        for (name, model) in &models {
            let (mut scratch, mut out) = (Scratch::default(), vec![0.0; 10 * batch]);
            let x = &x[..784 * batch];
            group.bench_function(BenchmarkId::new(name, batch), |b| {
                b.iter_custom(|iters| {
                    let start = Instant::now();
                    for _ in 0..iters {
                        model
                            .logits_into(black_box(x), batch, &mut out, &mut scratch, Par::Seq)
                            .unwrap();
                    }
                    let elapsed = start.elapsed();
                    let per_example = elapsed.as_secs_f64() * 1e6 / (iters as f64 * batch as f64);
                    let slot = times.entry((batch, name.clone())).or_insert(f64::INFINITY);
                    *slot = slot.min(per_example);
                    elapsed
                })
            });
        }
        group.finish();
    }
    criterion.final_summary();
    println!("\nus per example (best sample mean), ratio to f32 CSR at the same batch:");
    println!(
        "{:<12}{}",
        "codec",
        BATCHES.map(|b| format!("{:>20}", format!("batch {b}"))).concat()
    );
    for (name, _) in &models {
        let cells: String = BATCHES
            .iter()
            .map(|&b| {
                let (t, base) = (times.get(&(b, name.clone())), times.get(&(b, "f32".to_string())));
                match (t, base) {
                    (Some(t), Some(base)) => {
                        format!("{:>20}", format!("{t:.3} ({:.2}x)", t / base))
                    }
                    _ => format!("{:>20}", "-"),
                }
            })
            .collect();
        println!("{name:<12}{cells}");
    }
}
