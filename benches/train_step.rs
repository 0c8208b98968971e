//! One training step of LeNet-300-100 (batch 60, Adam): forward, backward, update.
//! `cargo bench --bench train_step` (or `just bench-train`). Examples/s = 60 / step time.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ticket_core::recipe::Init;
use ticket_core::{Par, Recipe};
use ticket_train::init::init_mlp;
use ticket_train::network::{Gradients, Workspace};
use ticket_train::optim::Optimizer;
use ticket_train::rng::SeededRng;

fn bench(c: &mut Criterion) {
    let recipe = Recipe::resolve("lenet-300-100").unwrap();
    let arch = recipe.arch().unwrap();
    let batch = recipe.train.batch_size;
    let mut rng = SeededRng::new(0, "bench");
    let x: Vec<f32> = (0..batch * arch.inputs()).map(|_| rng.uniform() as f32).collect();
    let labels: Vec<u8> = (0..batch).map(|_| rng.below(10) as u8).collect();
    let threads = rayon::current_num_threads();
    let mut group = c.benchmark_group("train_step_lenet300_batch60");
    group.throughput(Throughput::Elements(batch as u64));
    for par in [Par::Seq, Par::Rayon(threads)] {
        let mut mlp = init_mlp(&arch, Init::GlorotNormal, &mut rng);
        let mut ws = Workspace::new(&mlp, batch);
        let mut grads = Gradients::zeros(&mlp);
        let mut opt = Optimizer::new(&recipe.train, &mlp);
        group.bench_function(format!("{par:?}"), |b| {
            b.iter(|| {
                ws.backward(&mlp, &x, &labels, &mut grads, par);
                opt.step(&mut mlp, &grads, par);
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
