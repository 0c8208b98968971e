//! Every kernel, instruction set and thread split against a dense f64 reference.

use super::*;
use crate::fixture::{CsrParts, Random};
use proptest::prelude::*;

/// `W x` (or `W^T x`) from the dense matrix, summed in f64, plus the sum of |terms| that
/// bounds the f32 rounding error.
fn reference(w: &CsrParts, x: &[f32], batch: usize, transposed: bool) -> (Vec<f64>, Vec<f64>) {
    let dense = w.dense();
    let (outs, ins) = if transposed { (w.cols, w.rows) } else { (w.rows, w.cols) };
    let (mut sum, mut mag) = (vec![0.0; outs * batch], vec![0.0; outs * batch]);
    for o in 0..outs {
        for i in 0..ins {
            let a = if transposed { dense[i * w.cols + o] } else { dense[o * w.cols + i] } as f64;
            for b in 0..batch {
                let t = a * x[i * batch + b] as f64;
                sum[o * batch + b] += t;
                mag[o * batch + b] += t.abs();
            }
        }
    }
    (sum, mag)
}

fn assert_close(got: &[f32], want: &[f64], mag: &[f64], what: &str) {
    assert_eq!(got.len(), want.len());
    for (i, ((&g, &w), &m)) in got.iter().zip(want).zip(mag).enumerate() {
        let tol = 1e-5 * (m + w.abs() + 1e-3);
        assert!(((g as f64) - w).abs() <= tol, "{what}: element {i}: got {g}, want {w}");
    }
}

/// A layer from the strategy's parameters, with some rows emptied.
fn layer(rows: usize, cols: usize, density: f64, empty_rows: bool, seed: u64) -> CsrParts {
    let mut rng = Random::new(seed);
    let mut w = CsrParts::random(rows, cols, density, &mut rng);
    if empty_rows {
        w.clear_rows(|r| r % 3 == 1);
    }
    w
}

fn density() -> impl Strategy<Value = f64> {
    prop_oneof![Just(0.0), Just(1.0), 0.0..1.0f64, 0.0..0.1f64]
}

fn batch() -> impl Strategy<Value = usize> {
    prop_oneof![Just(1), 2..20usize, Just(32), 60..140usize]
}

/// Every instruction set with the thread splits to try: one thread, and 2 or 3 threads
/// forced to split however small the product.
fn variants() -> Vec<(Isa, Par, usize)> {
    let splits = [(Par::Seq, PAR_MIN_WORK), (Par::Rayon(2), 0), (Par::Rayon(3), 0)];
    Isa::available().into_iter().flat_map(|isa| splits.map(|(p, m)| (isa, p, m))).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn spmm_matches_dense_reference(
        rows in 0usize..40, cols in 1usize..90, density in density(), batch in batch(),
        empty_rows in any::<bool>(), relu in any::<bool>(), with_bias in any::<bool>(),
        seed in any::<u64>(),
    ) {
        let w = layer(rows, cols, density, empty_rows, seed);
        let mut rng = Random::new(seed ^ 1);
        let x = rng.vec(cols * batch, -1.0, 1.0);
        let (mut want, mag) = reference(&w, &x, batch, false);
        for r in 0..rows {
            for b in 0..batch {
                let v = &mut want[r * batch + b];
                if with_bias {
                    *v += w.bias[r] as f64;
                }
                if relu {
                    *v = v.max(0.0);
                }
            }
        }
        let bias = with_bias.then_some(w.bias.as_slice());
        let act = if relu { Activation::Relu } else { Activation::Identity };
        let idx16 = w.indices_u16();
        let w16 = CsrRef::new(rows, cols, &w.indptr, &idx16, &w.values).unwrap();
        let mut first_of_isa: Option<(Isa, Vec<f32>)> = None;
        for (isa, par, min_work) in variants() {
            let mut y = vec![f32::NAN; rows * batch];
            spmm_with(isa, w.csr(), bias, &x, &mut y, batch, act, par, min_work);
            assert_close(&y, &want, &mag, &format!("u32 {isa:?} {par:?}"));
            // Splits over threads pair the rows differently; each row sums in its own order
            // whatever its neighbour, so one instruction set gives the same bits for all.
            match &first_of_isa {
                Some((i, seq)) if *i == isa => {
                    let same = seq.iter().zip(&y).all(|(a, b)| a.to_bits() == b.to_bits());
                    prop_assert!(same, "{isa:?} {par:?} differs from one thread");
                }
                _ => first_of_isa = Some((isa, y.clone())),
            }
            let mut y = vec![f32::NAN; rows * batch];
            spmm_with(isa, w16, bias, &x, &mut y, batch, act, par, min_work);
            assert_close(&y, &want, &mag, &format!("u16 {isa:?} {par:?}"));
        }
    }

    #[test]
    fn spmm_transposed_matches_dense_reference(
        rows in 0usize..40, cols in 1usize..90, density in density(), batch in batch(),
        empty_rows in any::<bool>(), seed in any::<u64>(),
    ) {
        let w = layer(rows, cols, density, empty_rows, seed);
        let mut rng = Random::new(seed ^ 2);
        let x = rng.vec(rows * batch, -1.0, 1.0);
        let start = rng.vec(cols * batch, -1.0, 1.0);
        let (mut want, mag) = reference(&w, &x, batch, true);
        for (v, s) in want.iter_mut().zip(&start) {
            *v += *s as f64;
        }
        let idx16 = w.indices_u16();
        let w16 = CsrRef::new(rows, cols, &w.indptr, &idx16, &w.values).unwrap();
        for (isa, par, min_work) in variants() {
            let mut y = start.clone();
            spmm_transposed_with(isa, w.csr(), &x, &mut y, batch, par, min_work);
            assert_close(&y, &want, &mag, &format!("u32 {isa:?} {par:?}"));
            let mut y = start.clone();
            spmm_transposed_with(isa, w16, &x, &mut y, batch, par, min_work);
            assert_close(&y, &want, &mag, &format!("u16 {isa:?} {par:?}"));
        }
    }
}

/// The public entry points on a LeNet-sized layer, large enough to split across threads.
#[test]
fn public_kernels_on_a_large_layer() {
    let mut rng = Random::new(7);
    let w = CsrParts::random(300, 784, 0.05, &mut rng);
    for batch in [1, 64] {
        let x = rng.vec(784 * batch, 0.0, 1.0);
        let (want, mag) = reference(&w, &x, batch, false);
        let mut y = vec![0.0; 300 * batch];
        if batch == 1 {
            spmv(w.csr(), None, &x, &mut y, Activation::Identity, Par::Rayon(2));
        } else {
            spmm(w.csr(), None, &x, &mut y, batch, Activation::Identity, Par::Rayon(2));
        }
        assert_close(&y, &want, &mag, "spmm");
        let g = rng.vec(300 * batch, -1.0, 1.0);
        let (want, mag) = reference(&w, &g, batch, true);
        let mut dx = vec![0.0; 784 * batch];
        spmm_transposed(w.csr(), &g, &mut dx, batch, Par::Rayon(2));
        assert_close(&dx, &want, &mag, "spmm_transposed");
    }
}

#[test]
#[should_panic(expected = "spmm: x has 3 entries, expected 4")]
fn wrong_input_length_panics() {
    let w = CsrRef::new(1, 2, &[0, 1], &[1u16], &[1.0]).unwrap();
    spmm(w, None, &[0.0; 3], &mut [0.0; 2], 2, Activation::Identity, Par::Seq);
}

#[test]
fn split_balances_nonzeros() {
    // Row 0 holds 90 nonzeros, rows 1..=10 one each: two chunks split after row 0.
    let mut indptr = vec![0u32, 90];
    indptr.extend((1..=10).map(|i| 90 + i));
    let indices: Vec<u32> = (0..90).chain(0..10).collect();
    let values = vec![1.0; 100];
    let w = CsrRef::new(11, 90, &indptr, &indices, &values).unwrap();
    assert_eq!(split_by_indptr(w.indptr(), 2), vec![0..1, 1..11]);
    assert_eq!(split_by_indptr(w.indptr(), 1), vec![0..11]);
}
