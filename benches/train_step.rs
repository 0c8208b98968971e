//! One training step of LeNet-300-100 (batch 60, Adam: forward, backward, update), dense
//! masked engine vs sparse engine, at the densities of the pruning levels. The crossover
//! picks `ticket_train::engine::SPARSE_BELOW`. Then one dense step of LeNet-5 (conv 20@5x5,
//! pool, conv 50@5x5, pool, fc 500, fc 10), the figure `benches/compare_train.py --model
//! lenet-5` sets against PyTorch.
//!
//! `cargo bench --bench train_step` (or `just bench-train`). Examples/s = 60 / step time.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ticket_core::recipe::Init;
use ticket_core::Dataset;
use ticket_core::{Network, Par, Recipe};
use ticket_train::engine::{engine_for, DenseEngine, Engine, SPARSE_BELOW};
use ticket_train::init::init_net;
use ticket_train::rng::SeededRng;
use ticket_train::sparse::SparseEngine;

fn masked(density: f64) -> Network {
    let graph = Recipe::resolve("lenet-300-100").unwrap().graph().unwrap();
    let mut net = init_net(&graph, Init::GlorotNormal, &mut SeededRng::new(0, "init"));
    let mut rng = SeededRng::new(0, "mask");
    for layer in &mut net.layers {
        for m in &mut layer.mask {
            *m = (rng.uniform() < density) as u8;
        }
        layer.apply_mask();
    }
    net
}

fn bench(c: &mut Criterion) {
    let recipe = Recipe::resolve("lenet-300-100").unwrap();
    let batch = recipe.train.batch_size;
    let mut rng = SeededRng::new(0, "bench");
    let x: Vec<f32> = (0..batch * 784).map(|_| rng.uniform() as f32).collect();
    let labels: Vec<u8> = (0..batch).map(|_| rng.below(10) as u8).collect();
    let threads = rayon::current_num_threads();
    let par = if threads > 1 { Par::Rayon(threads) } else { Par::Seq };
    let mut group = c.benchmark_group("train_step_lenet300_batch60");
    group.throughput(Throughput::Elements(batch as u64));
    for density in [1.0, 0.5, 0.3, 0.2, 0.1, 0.05, 0.036, 0.02] {
        let net = masked(density);
        let engines: [(&str, Box<dyn Engine>); 2] = [
            ("dense", Box::new(DenseEngine::new(net.clone(), &recipe.train, batch))),
            ("sparse", Box::new(SparseEngine::new(&net, &recipe.train, batch))),
        ];
        for (name, mut engine) in engines {
            group.bench_function(format!("{name}/d{:.1}", 100.0 * density), |b| {
                b.iter(|| {
                    engine.gradients(&x, &labels, par);
                    engine.update(par);
                })
            });
        }
    }
    // Sparse steps on one thread: below a few percent, waking a second thread costs more
    // than it saves.
    for density in [0.1, 0.05, 0.036, 0.02] {
        let mut engine = SparseEngine::new(&masked(density), &recipe.train, batch);
        group.bench_function(format!("sparse/d{:.1}/1-thread", 100.0 * density), |b| {
            b.iter(|| {
                engine.gradients(&x, &labels, Par::Seq);
                engine.update(Par::Seq);
            })
        });
    }
    // The single-threaded dense step, for the parallel speed-up.
    let mut dense = DenseEngine::new(masked(1.0), &recipe.train, batch);
    group.bench_function("dense/d100.0/1-thread", |b| {
        b.iter(|| {
            dense.gradients(&x, &labels, Par::Seq);
            dense.update(Par::Seq);
        })
    });
    group.finish();
}

fn bench_lenet5(c: &mut Criterion) {
    let recipe = Recipe::resolve("lenet-5").unwrap();
    let batch = recipe.train.batch_size;
    let net =
        init_net(&recipe.graph().unwrap(), Init::GlorotNormal, &mut SeededRng::new(0, "init"));
    let mut rng = SeededRng::new(0, "bench");
    let x: Vec<f32> = (0..batch * 784).map(|_| rng.uniform() as f32).collect();
    let labels: Vec<u8> = (0..batch).map(|_| rng.below(10) as u8).collect();
    let threads = rayon::current_num_threads();
    let mut group = c.benchmark_group("train_step_lenet5_batch60");
    group.throughput(Throughput::Elements(batch as u64));
    for par in [Par::Rayon(threads.max(1)), Par::Seq] {
        let mut engine = DenseEngine::new(net.clone(), &recipe.train, batch);
        group.bench_function(format!("dense/{}-thread", par.threads()), |b| {
            b.iter(|| {
                engine.gradients(&x, &labels, par);
                engine.update(par);
            })
        });
    }
    group.finish();
}

/// One evaluation of an IMP level: validation + test of Fashion-MNIST's size (15,000
/// examples) through the engine that trains the level, at the densities of the pruning
/// levels (the dense engine switches to CSR tiles below `SPARSE_EVAL_BELOW`). Throughput is
/// in examples; multiply-adds per second = examples/s x kept weights.
fn bench_eval(c: &mut Criterion) {
    let recipe = Recipe::resolve("lenet-300-100").unwrap();
    let mut rng = SeededRng::new(0, "eval");
    let n = 15_000;
    let data = Dataset {
        features: 784,
        images: (0..n * 784).map(|_| rng.uniform() as f32).collect(),
        labels: (0..n).map(|_| rng.below(10) as u8).collect(),
    };
    let threads = rayon::current_num_threads();
    let par = if threads > 1 { Par::Rayon(threads) } else { Par::Seq };
    let mut group = c.benchmark_group("eval_lenet300_15000");
    group.throughput(Throughput::Elements(n as u64));
    group.sample_size(20);
    for density in [1.0, 0.8, 0.64, 0.51, 0.41, 0.21, 0.1, 0.036] {
        let net = masked(density);
        let mut engine = engine_for(net, &recipe.train, recipe.train.batch_size, SPARSE_BELOW, 0);
        group.bench_function(format!("d{:.1}", 100.0 * density), |b| {
            b.iter(|| engine.evaluate(&data, par))
        });
    }
    group.finish();
}

criterion_group!(benches, bench, bench_lenet5, bench_eval);
criterion_main!(benches);
