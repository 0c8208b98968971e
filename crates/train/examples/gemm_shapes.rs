use std::time::Instant;
use ticket_core::sgemm::{sgemm, MatMut, MatRef};
use ticket_core::Par;

fn time(name: &str, flops: f64, mut f: impl FnMut()) {
    let mut best = f64::MAX;
    for _ in 0..30 {
        let t = Instant::now();
        for _ in 0..20 {
            f();
        }
        best = best.min(t.elapsed().as_secs_f64() / 20.0);
    }
    println!("{name:40} {:8.1} us {:6.1} GFLOP/s", best * 1e6, flops / best / 1e9);
}

fn main() {
    let b = 60;
    let (i, o) = (784, 300);
    let x = vec![0.5f32; b * i];
    let w = vec![0.25f32; o * i];
    let dz = vec![0.1f32; b * o];
    let mut y = vec![0.0f32; b * o];
    let mut gw = vec![0.0f32; o * i];
    let fl = 2.0 * (b * i * o) as f64;
    for par in [Par::Seq, Par::Rayon(2)] {
        time(&format!("fwd X W^T {par:?}"), fl, || {
            sgemm(
                MatMut::row_major(&mut y, b, o),
                MatRef::row_major(&x, b, i),
                MatRef::row_major(&w, o, i).t(),
                1.0,
                par,
            )
        });
        time(&format!("fwd as Y^T = W X^T {par:?}"), fl, || {
            sgemm(
                MatMut::row_major(&mut y, b, o).t(),
                MatRef::row_major(&w, o, i),
                MatRef::row_major(&x, b, i).t(),
                1.0,
                par,
            )
        });
        time(&format!("dW = dZ^T X {par:?}"), fl, || {
            sgemm(
                MatMut::row_major(&mut gw, o, i),
                MatRef::row_major(&dz, b, o).t(),
                MatRef::row_major(&x, b, i),
                0.0,
                par,
            )
        });
        time(&format!("dW^T = X^T dZ (col dst) {par:?}"), fl, || {
            sgemm(
                MatMut::row_major(&mut gw, o, i).t(),
                MatRef::row_major(&x, b, i).t(),
                MatRef::row_major(&dz, b, o),
                0.0,
                par,
            )
        });
    }
}
