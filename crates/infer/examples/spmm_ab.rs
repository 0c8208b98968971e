//! One random CSR layer through `kernels::spmm`, 200 calls, the fastest and the median time:
//! for comparing instruction sets (`TICKET_ISA=avx2`), alignments and thread counts on one
//! machine.
//!
//!     cargo run --release -p ticket-infer --features fixture --example spmm_ab -- \
//!         ROWS COLS DENSITY BATCH OFFSET THREADS
//!
//! OFFSET shifts the input and output this many floats past a cache line (0: aligned). An
//! optional PANEL_COLUMNS runs the layer as column panels of that many columns instead: each
//! panel's nonzeros as a CSR matrix of its own over the same input, one `kernels::spmm` call
//! a panel into an output of its own. A panel's input rows then fit the first-level cache,
//! and the time is a lower bound for a panel-major kernel (which would also reload and add
//! each row's partial sums):
//!
//!     cargo run --release -p ticket-infer --features fixture --example spmm_ab -- \
//!         4096 4096 0.05 64 0 2 128

use std::time::Instant;
use ticket_core::Par;
use ticket_infer::aligned::AlignedVec;
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
    // Column panels only when asked for: without PANEL_COLUMNS the layer runs whole.
    let panels: Vec<_> = args
        .get(7)
        .map(|p| column_panels(&w.indptr, &idx, &w.values, cols, p.parse().unwrap()))
        .unwrap_or_default();
    let mut outputs: Vec<AlignedVec> =
        (0..panels.len()).map(|_| AlignedVec::from_slice(&vec![0.0; rows * batch])).collect();
    // Validated once, outside the timed loop.
    let panel_refs: Vec<CsrRef<u16>> = panels
        .iter()
        .map(|(indptr, indices, values)| CsrRef::new(rows, cols, indptr, indices, values).unwrap())
        .collect();
    let mut best = f64::MAX;
    let mut all = vec![];
    for _ in 0..200 {
        let t = Instant::now();
        if panels.is_empty() {
            kernels::spmm(csr, Some(&w.bias), x, y, batch, Activation::Relu, par);
        } else {
            for (&panel, y) in panel_refs.iter().zip(&mut outputs) {
                kernels::spmm(panel, Some(&w.bias), x, y, batch, Activation::Identity, par);
            }
        }
        let e = t.elapsed().as_secs_f64() * 1e6;
        best = best.min(e);
        all.push(e);
    }
    all.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let fl = (w.nnz() * batch) as f64;
    println!("best {best:.1} us median {:.1} us  {:.2} FMA/ns", all[100], fl / best / 1e3);
    std::hint::black_box((&y, &outputs));
}

/// Per panel of `width` of the `cols` columns, the CSR arrays (indptr, absolute column
/// indices, values) of the nonzeros in it.
fn column_panels(
    indptr: &[u32],
    indices: &[u16],
    values: &[f32],
    cols: usize,
    width: usize,
) -> Vec<(Vec<u32>, Vec<u16>, Vec<f32>)> {
    let mut panels = vec![];
    for start in (0..cols).step_by(width.max(1)) {
        let (mut panel_indptr, mut panel_indices, mut panel_values) = (vec![0u32], vec![], vec![]);
        for row in indptr.windows(2) {
            for k in row[0] as usize..row[1] as usize {
                if (start..start + width).contains(&(indices[k] as usize)) {
                    panel_indices.push(indices[k]);
                    panel_values.push(values[k]);
                }
            }
            panel_indptr.push(panel_indices.len() as u32);
        }
        panels.push((panel_indptr, panel_indices, panel_values));
    }
    panels
}
