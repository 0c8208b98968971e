//! One random CSR layer through `kernels::spmm`, 200 calls, the fastest and the median time:
//! for comparing instruction sets (`TICKET_ISA=avx2`), alignments and thread counts on one
//! machine.
//!
//!     cargo run --release -p ticket-infer --features fixture --example spmm_ab -- \
//!         ROWS COLS DENSITY BATCH OFFSET THREADS
//!
//! OFFSET shifts the input and output this many floats past a cache line (0: aligned).

use std::time::Instant;
use ticket_core::Par;
use ticket_infer::fixture::{CsrParts, Random};
use ticket_infer::{kernels, Activation, CsrRef};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (rows, cols, density, batch, offset, threads): (usize, usize, f64, usize, usize, usize) = (
        args[1].parse().unwrap(),
        args[2].parse().unwrap(),
        args[3].parse().unwrap(),
        args[4].parse().unwrap(),
        args[5].parse().unwrap(),
        args[6].parse().unwrap(),
    );
    let mut rng = Random::new(4);
    let w = CsrParts::random(rows, cols, density, &mut rng);
    let idx = w.indices_u16();
    let csr = CsrRef::new(rows, cols, &w.indptr, &idx, &w.values).unwrap();
    let mut xbuf = rng.vec(cols * batch + 64, -1.0, 1.0);
    let mut ybuf = vec![0.0f32; rows * batch + 64];
    let xa = (64 - (xbuf.as_ptr() as usize % 64)) / 4 % 16 + offset;
    let ya = (64 - (ybuf.as_ptr() as usize % 64)) / 4 % 16 + offset;
    let x = &mut xbuf[xa..xa + cols * batch];
    let y = &mut ybuf[ya..ya + rows * batch];
    let par = if threads == 1 { Par::Seq } else { Par::Rayon(threads) };
    let mut best = f64::MAX;
    let mut all = vec![];
    for _ in 0..200 {
        let t = Instant::now();
        kernels::spmm(csr, Some(&w.bias), x, y, batch, Activation::Relu, par);
        let e = t.elapsed().as_secs_f64() * 1e6;
        best = best.min(e);
        all.push(e);
    }
    all.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let fl = (w.nnz() * batch) as f64;
    println!("best {best:.1} us median {:.1} us  {:.2} FMA/ns", all[100], fl / best / 1e3);
    std::hint::black_box(&y);
}
