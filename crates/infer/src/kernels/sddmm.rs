//! Dot products of pairs of `[batch]` rows: the weight gradient of a sparse layer at its kept
//! positions only (a sampled dense-dense product, SDDMM). Entry `k` pairs row `rows[k]` of
//! `delta` (`[rows][batch]`) with row `cols[k]` of `input` (`[cols][batch]`).
//!
//! Every entry is summed by the same code in the same order whatever the entries around it,
//! so a thread split never changes a result. The order depends only on the register width:
//! [`ordered_dot`] computes it in plain Rust for 8 lanes (AVX2, and the portable kernel, so
//! machines without AVX2 train to the same numbers) and for 16 (AVX-512), and each vector
//! kernel equals it bit for bit.
//!
//! ```
//! use ticket_infer::kernels::sddmm::dots;
//! // delta rows [1, 2] and [3, 4]; input rows [5, 6] and [7, 8] (batch 2).
//! let mut out = [0.0; 2];
//! dots(&[0, 1], &[1, 0], &[1.0, 2.0, 3.0, 4.0], &[5.0, 6.0, 7.0, 8.0], 2, &mut out);
//! assert_eq!(out, [1.0 * 7.0 + 2.0 * 8.0, 3.0 * 5.0 + 4.0 * 6.0]);
//! ```

use super::Isa;

/// `out[k] = <delta[rows[k]], input[cols[k]]>` over rows of `batch` values. Panics when an
/// index or a length does not fit.
pub fn dots(
    rows: &[u32],
    cols: &[u32],
    delta: &[f32],
    input: &[f32],
    batch: usize,
    out: &mut [f32],
) {
    dots_with(Isa::detect(), rows, cols, (delta, input), batch, out);
}

pub(crate) fn dots_with(
    isa: Isa,
    rows: &[u32],
    cols: &[u32],
    (delta, input): (&[f32], &[f32]),
    batch: usize,
    out: &mut [f32],
) {
    assert!(
        rows.len() == out.len() && cols.len() == out.len(),
        "sddmm: one row and column per entry"
    );
    // Every operand row must lie inside its matrix: checked here once, relied on below.
    let (delta_rows, input_rows) = (delta.len() / batch.max(1), input.len() / batch.max(1));
    assert!(rows.iter().all(|&r| (r as usize) < delta_rows), "sddmm: row out of range");
    assert!(cols.iter().all(|&c| (c as usize) < input_rows), "sddmm: column out of range");
    match isa {
        Isa::Portable => {
            for ((o, &r), &c) in out.iter_mut().zip(rows).zip(cols) {
                let (r, c) = (r as usize * batch, c as usize * batch);
                *o = ordered_dot(&delta[r..r + batch], &input[c..c + batch], 8);
            }
        }
        // SAFETY (both): the instruction set is present (Isa::detect); every row index is
        // below delta_rows and every column index below input_rows (asserted above), so each
        // operand row [i * batch, (i + 1) * batch) lies inside delta or input.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2Fma => unsafe {
            vector::dots::avx2(rows, cols, delta.as_ptr(), input.as_ptr(), batch, out)
        },
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => unsafe {
            vector::dots::avx512(rows, cols, delta.as_ptr(), input.as_ptr(), batch, out)
        },
    }
}

/// `<a, b>` in the order of a kernel with `lanes`-wide registers (8 or 16): `lanes` running
/// sums over whole registers; for 16, the halves added lane by lane into 8 sums, which go on
/// over the whole 8-lane blocks left; the 8 reduced by adjacent pairs
/// (`((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))`); then the last `< 8` terms one by one.
pub fn ordered_dot(a: &[f32], b: &[f32], lanes: usize) -> f32 {
    assert!(lanes == 8 || lanes == 16, "ordered_dot: 8 or 16 lanes");
    let n = a.len().min(b.len());
    let (wide, narrow) = (n / lanes * lanes, n / 8 * 8);
    let mut acc = [0.0f32; 16];
    for j in (0..wide).step_by(lanes) {
        for i in 0..lanes {
            acc[i] = a[j + i].mul_add(b[j + i], acc[i]);
        }
    }
    if lanes == 16 {
        for i in 0..8 {
            acc[i] += acc[i + 8];
        }
    }
    for j in (wide..narrow).step_by(8) {
        for i in 0..8 {
            acc[i] = a[j + i].mul_add(b[j + i], acc[i]);
        }
    }
    let mut sum = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
    for j in narrow..n {
        sum = a[j].mul_add(b[j], sum);
    }
    sum
}

#[cfg(target_arch = "x86_64")]
mod vector {
    use super::super::simd::{isa_entry_points, Avx2, Simd};
    use std::arch::x86_64::*;

    isa_entry_points!(pub(super) fn dots(
        rows: &[u32],
        cols: &[u32],
        delta: *const f32,
        input: *const f32,
        batch: usize,
        out: &mut [f32],
    ));

    /// Four entries at a time (independent sums keep both FMA units busy and one horizontal
    /// reduction serves four entries); a last group of fewer repeats its last entry and
    /// writes only its own. Sums in [`super::ordered_dot`]'s order for `S::LANES`.
    ///
    /// # Safety
    /// `S`'s instruction set, AVX2 and FMA available; the operand rows of every entry inside
    /// `delta` and `input`.
    #[inline(always)]
    unsafe fn dots<S: Simd>(
        rows: &[u32],
        cols: &[u32],
        delta: *const f32,
        input: *const f32,
        batch: usize,
        out: &mut [f32],
    ) {
        let (wide, narrow) = (batch / S::LANES * S::LANES, batch / 8 * 8);
        let n = out.len();
        // Whole registers only (the training batch, padded): the groups of four go through a
        // loop unrolled for the width, the rest below.
        let start = if wide == batch {
            // SAFETY: the caller's contract.
            unsafe {
                match batch / S::LANES {
                    1 => whole_groups::<S, 1>(rows, cols, delta, input, out),
                    2 => whole_groups::<S, 2>(rows, cols, delta, input, out),
                    3 => whole_groups::<S, 3>(rows, cols, delta, input, out),
                    4 => whole_groups::<S, 4>(rows, cols, delta, input, out),
                    _ => 0,
                }
            }
        } else {
            0
        };
        // SAFETY (all): the caller's contract keeps every operand row of batch values inside
        // its matrix; j + LANES <= wide and j + 8 <= narrow keep the loads inside the rows.
        unsafe {
            let operand = |k: usize| {
                (delta.add(rows[k] as usize * batch), input.add(cols[k] as usize * batch))
            };
            for k in (start..n).step_by(4) {
                let ops: [(*const f32, *const f32); 4] =
                    std::array::from_fn(|t| operand((k + t).min(n - 1)));
                let mut acc = [S::splat(0.0); 4];
                for j in (0..wide).step_by(S::LANES) {
                    for (a, (x, y)) in acc.iter_mut().zip(&ops) {
                        *a = S::fmadd(S::load(x.add(j)), S::load(y.add(j)), *a);
                    }
                }
                // Not `acc.map`: its closure, compiled outside this function's target
                // features, would call the intrinsics instead of inlining them.
                let mut acc8 = [_mm256_setzero_ps(); 4];
                for (a8, &a) in acc8.iter_mut().zip(&acc) {
                    *a8 = S::fold_to_8(a);
                }
                for j in (wide..narrow).step_by(8) {
                    for (a, (x, y)) in acc8.iter_mut().zip(&ops) {
                        *a = Avx2::fmadd(Avx2::load(x.add(j)), Avx2::load(y.add(j)), *a);
                    }
                }
                let sums = adjacent_pairs(acc8);
                if k + 4 <= n && narrow == batch {
                    // A whole group and no scalar tail: one store, no round trip through
                    // memory (the scalar epilogue took most of the time at batch 64).
                    _mm_storeu_ps(out.as_mut_ptr().add(k), sums);
                    continue;
                }
                let mut four = [0.0f32; 4];
                _mm_storeu_ps(four.as_mut_ptr(), sums);
                for t in 0..4.min(n - k) {
                    let (x, y) = ops[t];
                    let mut sum = four[t];
                    for j in narrow..batch {
                        sum = (*x.add(j)).mul_add(*y.add(j), sum);
                    }
                    out[k + t] = sum;
                }
            }
        }
    }

    /// Every whole group of four entries for a batch of `N` registers exactly, in the order
    /// of [`dots`] (which it equals bit for bit); returns how many entries it did. The general
    /// loop spent more on its bookkeeping per group (bounds checks, a loop over the batch,
    /// the last group's clamping) than on its 16 multiply-adds at batch 64.
    ///
    /// # Safety
    /// As [`dots`], with `batch == N * S::LANES`.
    #[inline(always)]
    unsafe fn whole_groups<S: Simd, const N: usize>(
        rows: &[u32],
        cols: &[u32],
        delta: *const f32,
        input: *const f32,
        out: &mut [f32],
    ) -> usize {
        let batch = N * S::LANES;
        let full = out.len() / 4 * 4;
        // SAFETY (all): k + t < full <= rows.len() = cols.len() = out.len(); the caller's
        // contract keeps each operand row of batch values inside its matrix.
        unsafe {
            for k in (0..full).step_by(4) {
                let mut x = [delta; 4];
                let mut y = [input; 4];
                for t in 0..4 {
                    x[t] = delta.add(*rows.get_unchecked(k + t) as usize * batch);
                    y[t] = input.add(*cols.get_unchecked(k + t) as usize * batch);
                }
                let mut acc = [S::splat(0.0); 4];
                for j in 0..N {
                    for t in 0..4 {
                        let (a, b) =
                            (S::load(x[t].add(j * S::LANES)), S::load(y[t].add(j * S::LANES)));
                        acc[t] = S::fmadd(a, b, acc[t]);
                    }
                }
                let acc8 = [
                    S::fold_to_8(acc[0]),
                    S::fold_to_8(acc[1]),
                    S::fold_to_8(acc[2]),
                    S::fold_to_8(acc[3]),
                ];
                _mm_storeu_ps(out.as_mut_ptr().add(k), adjacent_pairs(acc8));
            }
        }
        full
    }

    /// The four 8-lane sums, each reduced by adjacent pairs, as the lanes of one register.
    ///
    /// # Safety
    /// AVX available.
    #[inline(always)]
    unsafe fn adjacent_pairs(acc: [__m256; 4]) -> __m128 {
        // hadd(x, y) per 128-bit half: [x0+x1, x2+x3, y0+y1, y2+y3]; twice gives, per half,
        // the pairwise sums of the four accumulators; the halves are added last.
        // SAFETY: AVX (the caller's contract).
        unsafe {
            let h = _mm256_hadd_ps(_mm256_hadd_ps(acc[0], acc[1]), _mm256_hadd_ps(acc[2], acc[3]));
            _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every instruction set against `ordered_dot` for its width, bit for bit, and the f64
    /// dot product within rounding, at batches around the register widths; and the same
    /// numbers from any split of the entries.
    #[test]
    fn every_isa_sums_in_its_stated_order() {
        for batch in [1, 7, 8, 9, 15, 16, 17, 24, 31, 32, 48, 60, 64, 100] {
            let (rows, cols) = (5, 6);
            let delta: Vec<f32> =
                (0..rows * batch).map(|i| ((i * 37) % 101) as f32 / 50.0 - 1.0).collect();
            let input: Vec<f32> =
                (0..cols * batch).map(|i| ((i * 53) % 89) as f32 / 40.0 - 1.1).collect();
            // 11 entries: two groups of four and a short tail.
            let r = [0u32, 0, 1, 1, 1, 2, 3, 3, 4, 4, 4];
            let c = [1u32, 5, 0, 2, 3, 4, 0, 5, 1, 2, 3];
            for isa in Isa::available() {
                let lanes = if isa.lanes() == 16 { 16 } else { 8 };
                let mut got = vec![f32::NAN; 11];
                dots_with(isa, &r, &c, (&delta, &input), batch, &mut got);
                for k in 0..11 {
                    let (a, b) = (r[k] as usize * batch, c[k] as usize * batch);
                    let (a, b) = (&delta[a..a + batch], &input[b..b + batch]);
                    let want = ordered_dot(a, b, lanes);
                    assert_eq!(got[k].to_bits(), want.to_bits(), "{isa:?} batch {batch} entry {k}");
                    let exact: f64 = a.iter().zip(b).map(|(&x, &y)| x as f64 * y as f64).sum();
                    assert!((want as f64 - exact).abs() < 1e-5 * batch as f64, "{batch} {k}");
                }
                // Any split of the entries gives the same numbers (threads split them).
                for split in 1..11 {
                    let mut parts = vec![f32::NAN; 11];
                    let (a, b) = parts.split_at_mut(split);
                    dots_with(isa, &r[..split], &c[..split], (&delta, &input), batch, a);
                    dots_with(isa, &r[split..], &c[split..], (&delta, &input), batch, b);
                    assert_eq!(parts, got, "{isa:?} batch {batch}, split at {split}");
                }
            }
        }
    }

    #[test]
    #[should_panic(expected = "sddmm: column out of range")]
    fn a_column_past_the_input_panics() {
        dots(&[0], &[2], &[1.0; 4], &[1.0; 4], 2, &mut [0.0]);
    }
}
