use std::time::Instant;
use ticket_infer::kernels::{pool, Image, Window};
fn main() {
    let input = Image { channels: 20, height: 24, width: 24 };
    let window = Window { kernel: [2, 2], stride: [2, 2], padding: [0, 0] };
    let b: usize = std::env::args().nth(1).unwrap().parse().unwrap();
    let x: Vec<f32> = (0..input.len() * b).map(|i| (i % 77) as f32).collect();
    let mut y = vec![0.0; 20 * 144 * b];
    let mut best = f64::INFINITY;
    for _ in 0..20000 {
        let t = Instant::now();
        pool::pool2d(pool::Pool::Max, input, window, &x, &mut y, b);
        best = best.min(t.elapsed().as_secs_f64() * 1e6);
    }
    println!("{best:.3} us per call, {:.3} per example", best / b as f64);
}
