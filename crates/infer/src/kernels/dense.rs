//! The dense matrix-vector product (GEMV) of a linear layer, the batch-1 half of the dense
//! baseline that sparse figures are compared against (the large-batch half is the blocked
//! `gemm` of `ticket_core::sgemm`). A general matrix product called with one example packs
//! its operands for a case it was not made for; a GEMV streams each weight row once, four
//! rows at a time against the same slice of `x`, with fused multiply-adds on AVX2 or AVX-512.
//!
//! ```
//! use ticket_infer::{kernels::dense::gemv, Activation};
//! use ticket_core::Par;
//! // W = [[1, 2], [3, 4], [-5, 0]]
//! let mut y = [0.0; 3];
//! gemv(&[1.0, 2.0, 3.0, 4.0, -5.0, 0.0], Some(&[0.5, 0.0, 1.0]), &[1.0, 1.0], &mut y,
//!      Activation::Relu, Par::Seq);
//! assert_eq!(y, [3.5, 7.0, 0.0]);
//! ```

use super::{Activation, Isa};
use rayon::prelude::*;
use ticket_core::{Layer, Network, Par};

/// Weights below which a GEMV stays on the calling thread. Measured on Zen 3 with
/// LeNet-300-100 (266 k weights): 20 us on one thread, 27-49 us split over two (waking the
/// second thread costs more than the split saves).
pub const GEMV_PAR_MIN_WORK: usize = 1 << 20;

/// `y = act(bias + W x)` for `W` row-major `[y.len(), x.len()]`; rows split over `par`'s
/// threads when the product is large enough. Panics when the lengths do not fit.
pub fn gemv(
    weight: &[f32],
    bias: Option<&[f32]>,
    x: &[f32],
    y: &mut [f32],
    act: Activation,
    par: Par,
) {
    gemv_with((Isa::detect(), GEMV_PAR_MIN_WORK), (weight, bias, x), y, act, par);
}

/// [`gemv`] with the instruction set and the work below which it stays on one thread given
/// (tests force every variant and split).
pub(crate) fn gemv_with(
    (isa, min_work): (Isa, usize),
    (weight, bias, x): (&[f32], Option<&[f32]>, &[f32]),
    y: &mut [f32],
    act: Activation,
    par: Par,
) {
    let (rows, cols) = (y.len(), x.len());
    assert_eq!(Some(weight.len()), rows.checked_mul(cols), "gemv: weight is not {rows}x{cols}");
    if let Some(b) = bias {
        assert_eq!(b.len(), rows, "gemv: bias has {} entries, expected {rows}", b.len());
    }
    let relu = act == Activation::Relu;
    let run = |first: usize, y: &mut [f32]| {
        let w = &weight[first * cols..(first + y.len()) * cols];
        let b = bias.map(|b| &b[first..first + y.len()]);
        match isa {
            Isa::Portable => portable(w, b, x, y, relu),
            // SAFETY: the instruction set is present (Isa::detect); w holds y.len() rows of
            // x.len() values and b (if any) y.len() values (sliced above).
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2Fma => unsafe { vector::gemv::avx2(w, b, x, y, relu) },
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => unsafe { vector::gemv::avx512(w, b, x, y, relu) },
        }
    };
    let threads = if rows.saturating_mul(cols) >= min_work { par.threads().min(rows) } else { 1 };
    if threads <= 1 {
        return run(0, y);
    }
    // Whole blocks of four rows per thread, so each thread runs the fast path.
    let per = rows.div_ceil(threads).next_multiple_of(4);
    y.par_chunks_mut(per).enumerate().with_max_len(1).for_each(|(i, part)| run(i * per, part));
}

/// One dot product per row, in column order.
fn portable(w: &[f32], bias: Option<&[f32]>, x: &[f32], y: &mut [f32], relu: bool) {
    let cols = x.len();
    for (r, yr) in y.iter_mut().enumerate() {
        let row = &w[r * cols..(r + 1) * cols];
        let sum = row.iter().zip(x).fold(0.0f32, |acc, (w, x)| acc + w * x);
        let v = sum + bias.map_or(0.0, |b| b[r]);
        *yr = if relu { v.max(0.0) } else { v };
    }
}

/// The dense forward pass of one example through an MLP (linear layers, ReLUs, flattens),
/// each linear layer a [`gemv`]; `None` for a graph with other layers.
pub fn mlp_logits(net: &Network, x: &[f32], par: Par) -> Option<Vec<f32>> {
    assert_eq!(x.len(), net.graph.inputs(), "mlp_logits: one example");
    let mut a = x.to_vec();
    let mut params = net.layers.iter();
    for layer in net.graph.layers() {
        match layer {
            Layer::Linear { .. } => {
                let p = params.next()?;
                let mut y = vec![0.0; p.shape.rows];
                gemv(&p.weight, Some(&p.bias), &a, &mut y, Activation::Identity, par);
                a = y;
            }
            Layer::Relu => Activation::Relu.apply(&mut a),
            Layer::Flatten => {}
            _ => return None,
        }
    }
    Some(a)
}

#[cfg(target_arch = "x86_64")]
mod vector {
    use super::super::simd::{isa_entry_points, Simd};

    /// Rows per block: four rows share each load of `x`.
    const ROWS: usize = 4;

    isa_entry_points!(pub(super) fn gemv(
        w: &[f32],
        bias: Option<&[f32]>,
        x: &[f32],
        y: &mut [f32],
        relu: bool,
    ));

    /// See `super::portable`: blocks of four rows, each with two register-wide sums (two
    /// registers of columns per step), the last columns scalar; a last block of fewer rows
    /// runs the same loop on one row at a time.
    ///
    /// # Safety
    /// `S`'s instruction set available; `w.len() == y.len() * x.len()`, `bias` has
    /// `y.len()` values.
    #[inline(always)]
    unsafe fn gemv<S: Simd>(w: &[f32], bias: Option<&[f32]>, x: &[f32], y: &mut [f32], relu: bool) {
        let cols = x.len();
        let mut r = 0;
        while r + ROWS <= y.len() {
            // SAFETY: rows r..r + 4 lie inside w (the caller's contract).
            let sums = unsafe { rows_dot::<S, ROWS>(&w[r * cols..(r + ROWS) * cols], x) };
            finish(&sums, r, bias, relu, y);
            r += ROWS;
        }
        while r < y.len() {
            // SAFETY: row r lies inside w.
            let sums = unsafe { rows_dot::<S, 1>(&w[r * cols..(r + 1) * cols], x) };
            finish(&sums, r, bias, relu, y);
            r += 1;
        }
    }

    fn finish<const N: usize>(
        sums: &[f32; N],
        r: usize,
        bias: Option<&[f32]>,
        relu: bool,
        y: &mut [f32],
    ) {
        for (i, &s) in sums.iter().enumerate() {
            let v = s + bias.map_or(0.0, |b| b[r + i]);
            y[r + i] = if relu { v.max(0.0) } else { v };
        }
    }

    /// The sum of `v` (a power-of-two length), halves added lane by lane until one is left.
    fn pairwise(v: &mut [f32]) -> f32 {
        let mut n = v.len();
        while n > 1 {
            n /= 2;
            for i in 0..n {
                v[i] += v[i + n];
            }
        }
        v[0]
    }

    /// The dot products of the `N` rows of `w` (`N * x.len()` values) with `x`.
    ///
    /// # Safety
    /// `S`'s instruction set available; `w.len() == N * x.len()`.
    #[inline(always)]
    unsafe fn rows_dot<S: Simd, const N: usize>(w: &[f32], x: &[f32]) -> [f32; N] {
        let cols = x.len();
        debug_assert_eq!(w.len(), N * cols);
        let (wp, xp, lanes) = (w.as_ptr(), x.as_ptr(), S::LANES);
        let mut out = [0.0f32; N];
        // SAFETY: c + 2 * lanes <= cols, so the values read from x[c..] and from each row
        // w[i * cols + c..] lie inside x and w; `spill` holds two registers.
        unsafe {
            let mut acc = [[S::splat(0.0); 2]; N];
            let mut c = 0;
            while c + 2 * lanes <= cols {
                let x0 = S::load(xp.add(c));
                let x1 = S::load(xp.add(c + lanes));
                for (i, a) in acc.iter_mut().enumerate() {
                    let row = wp.add(i * cols + c);
                    a[0] = S::fmadd(S::load(row), x0, a[0]);
                    a[1] = S::fmadd(S::load(row.add(lanes)), x1, a[1]);
                }
                c += 2 * lanes;
            }
            let mut spill = [0.0f32; 32];
            for (i, (o, a)) in out.iter_mut().zip(&acc).enumerate() {
                S::store(spill.as_mut_ptr(), a[0]);
                S::store(spill.as_mut_ptr().add(lanes), a[1]);
                let mut sum = pairwise(&mut spill[..2 * lanes]);
                for (wv, xv) in w[i * cols + c..(i + 1) * cols].iter().zip(&x[c..]) {
                    sum = wv.mul_add(*xv, sum);
                }
                *o = sum;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture::Random;

    const U: f64 = 1.0 / (1u64 << 24) as f64;

    /// Every instruction set and thread split against an f64 dot product, within the
    /// rounding bound `gamma(cols + 1) * (|b| + sum |w x|)` of any summation order.
    /// The MLP forward pass against `Network::logits` (the blocked gemm) on the same weights;
    /// a graph with a convolution is refused.
    #[test]
    fn the_mlp_forward_pass_matches_the_network_and_refuses_convolutions() {
        let graph: ticket_core::Graph = "37-20-9-4".parse().unwrap();
        let mut net = Network::zeros(&graph);
        let mut rng = Random::new(5);
        for l in &mut net.layers {
            l.weight = rng.vec(l.weight.len(), -1.0, 1.0);
            l.bias = rng.vec(l.bias.len(), -0.5, 0.5);
        }
        let x = rng.vec(37, 0.0, 1.0);
        let got = mlp_logits(&net, &x, Par::Seq).unwrap();
        let want = net.logits(&x, 1, Par::Seq);
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() <= 1e-5 * (1.0 + w.abs()), "{g} vs {w}");
        }
        let conv = ticket_core::Graph::from_json(
            r#"{"input":[1,4,4],"layers":[{"op":"conv2d","name":"c","in":1,"out":2,"kernel":[3,3]},
            {"op":"flatten"},{"op":"linear","name":"fc","in":8,"out":2}]}"#,
        )
        .unwrap();
        assert!(mlp_logits(&Network::zeros(&conv), &[0.0; 16], Par::Seq).is_none());
    }

    #[test]
    fn every_variant_matches_an_f64_reference_within_the_rounding_bound() {
        let mut rng = Random::new(3);
        for (rows, cols) in
            [(1, 1), (3, 5), (4, 16), (9, 37), (300, 784), (10, 100), (0, 4), (2, 0)]
        {
            let w = rng.vec(rows * cols, -1.0, 1.0);
            let x = rng.vec(cols, -1.0, 1.0);
            let bias = rng.vec(rows, -0.5, 0.5);
            let n = cols as f64 + 1.0;
            let gamma = n * U / (1.0 - n * U);
            for act in [Activation::Identity, Activation::Relu] {
                for isa in Isa::available() {
                    for (par, min) in
                        [(Par::Seq, GEMV_PAR_MIN_WORK), (Par::Rayon(2), 0), (Par::Rayon(3), 0)]
                    {
                        let mut y = vec![f32::NAN; rows];
                        gemv_with((isa, min), (&w, Some(&bias), &x), &mut y, act, par);
                        for r in 0..rows {
                            let row = &w[r * cols..(r + 1) * cols];
                            let terms = row.iter().zip(&x).map(|(&a, &b)| a as f64 * b as f64);
                            let exact = bias[r] as f64 + terms.clone().sum::<f64>();
                            let exact =
                                if act == Activation::Relu { exact.max(0.0) } else { exact };
                            let mag = bias[r].abs() as f64 + terms.map(f64::abs).sum::<f64>();
                            let err = (y[r] as f64 - exact).abs();
                            assert!(
                                err <= gamma * mag,
                                "{isa:?} {par:?} {rows}x{cols} row {r}: {err}"
                            );
                        }
                    }
                }
            }
        }
    }
}
