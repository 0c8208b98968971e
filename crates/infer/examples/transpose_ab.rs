//! `transpose::transpose` of a ROWS x COLS matrix, 2,000 calls, the fastest and the median
//! time: the tile shapes of the kernels (32 x 784 in, 784 x 32 out) and others.
//!
//!     cargo run --release -p ticket-infer --example transpose_ab -- ROWS COLS

use std::time::Instant;
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (rows, cols): (usize, usize) = (args[1].parse().unwrap(), args[2].parse().unwrap());
    let src: Vec<f32> = (0..rows * cols).map(|i| i as f32).collect();
    let mut dst = vec![0.0f32; rows * cols];
    let mut all = vec![];
    for _ in 0..2000 {
        let t = Instant::now();
        ticket_infer::transpose::transpose(&src, rows, cols, &mut dst);
        all.push(t.elapsed().as_secs_f64() * 1e6);
    }
    all.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!(
        "{rows}x{cols}: best {:.2} us median {:.2} us ({:.2} floats/ns)",
        all[0],
        all[1000],
        (rows * cols) as f64 / all[1000] / 1e3
    );
    std::hint::black_box(&dst);
}
