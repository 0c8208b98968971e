use std::time::Instant;
use ticket_core::recipe::Init;
use ticket_core::{Par, Recipe};
use ticket_train::init::init_mlp;
use ticket_train::network::{Gradients, Workspace};
use ticket_train::optim::Optimizer;
use ticket_train::rng::SeededRng;

fn best(mut f: impl FnMut()) -> f64 {
    let mut best = f64::MAX;
    for _ in 0..30 {
        let t = Instant::now();
        for _ in 0..10 {
            f();
        }
        best = best.min(t.elapsed().as_secs_f64() / 10.0);
    }
    best * 1e6
}

fn main() {
    let recipe = Recipe::resolve("lenet-300-100").unwrap();
    let arch = recipe.arch().unwrap();
    let batch = 60;
    let mut rng = SeededRng::new(0, "bench");
    let x: Vec<f32> = (0..batch * arch.inputs()).map(|_| rng.uniform() as f32).collect();
    let labels: Vec<u8> = (0..batch).map(|_| rng.below(10) as u8).collect();
    for par in [Par::Seq, Par::Rayon(2)] {
        let mut mlp = init_mlp(&arch, Init::GlorotNormal, &mut rng);
        let mut ws = Workspace::new(&mlp, batch);
        let mut grads = Gradients::zeros(&mlp);
        let mut opt = Optimizer::new(&recipe.train, &mlp);
        let f = best(|| {
            ws.forward(&mlp, &x, batch, par);
        });
        let fb = best(|| {
            ws.backward(&mlp, &x, &labels, &mut grads, par);
        });
        let o = best(|| opt.step(&mut mlp, &grads, par));
        println!("{par:?}: forward {f:.0} us, forward+backward {fb:.0} us, adam {o:.0} us");
    }
}
