use std::time::Instant;
use ticket_core::Par;
use ticket_infer::{timing::StepClock, Scratch, SparseModel};
fn main() {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let model = SparseModel::load(std::path::Path::new(&a[0])).unwrap();
    let batch: usize = a[1].parse().unwrap();
    let calls: usize = a[2].parse().unwrap();
    let threads: usize = a.get(3).map_or(1, |t| t.parse().unwrap());
    let par = if threads > 1 { Par::Rayon(threads) } else { Par::Seq };
    let x: Vec<f32> =
        (0..batch * model.inputs()).map(|i| ((i * 7919) % 1000) as f32 / 1000.0).collect();
    let mut out = vec![0.0; batch * model.outputs()];
    let mut s = Scratch::default();
    let names = model.step_names();
    let clock = StepClock::new(names.len());
    for _ in 0..10 {
        model.logits_into(&x, batch, &mut out, &mut s, par).unwrap();
    }
    let _ = clock;
    let mut best = vec![f64::INFINITY; names.len()];
    let mut times = vec![];
    for _ in 0..calls {
        let t = Instant::now();
        model.logits_into(&x, batch, &mut out, &mut s, par).unwrap();
        times.push(t.elapsed().as_secs_f64() * 1e6 / batch as f64);
        if a.get(4).is_some() {
            let c = StepClock::new(names.len());
            model.logits_timed(&x, batch, &mut out, &mut s, par, &c).unwrap();
            for (b, m) in best.iter_mut().zip(c.micros()) {
                *b = b.min(m / batch as f64);
            }
        }
    }
    times.sort_by(f64::total_cmp);
    println!(
        "us/example min {:.3} p10 {:.3} p50 {:.3}",
        times[0],
        times[times.len() / 10],
        times[times.len() / 2]
    );
    if a.get(4).is_some() {
        for (n, m) in names.iter().zip(best) {
            println!("  {n:<10} min {m:.3} us/example");
        }
    }
}
