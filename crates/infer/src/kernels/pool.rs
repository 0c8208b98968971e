//! Max and average pooling as PyTorch's `nn.MaxPool2d` / `nn.AvgPool2d` with no padding and
//! floor mode: every output is the max (or the mean, the sum divided by `kh * kw`) of its
//! window, per channel. Over `[channels][height][width][batch]` activations each window
//! position is a batch-wide elementwise max or add, which the compiler vectorises; pooling
//! reads each input a few times and computes almost nothing, so it needs no SIMD of its own.
//! The rows of a window are combined first, a whole input row at a time, so that a single
//! example (batch 1) vectorises too.
//!
//! ```
//! use ticket_infer::kernels::{pool, Image, Window};
//! let input = Image { channels: 1, height: 2, width: 2 };
//! let window = Window { kernel: [2, 2], stride: [2, 2], padding: [0, 0] };
//! let mut y = [0.0];
//! pool::pool2d(pool::Pool::Max, input, window, &[1.0, -4.0, 3.0, 2.0], &mut y, 1);
//! assert_eq!(y, [3.0]);
//! pool::pool2d(pool::Pool::Avg, input, window, &[1.0, -4.0, 3.0, 2.0], &mut y, 1);
//! assert_eq!(y, [0.5]);
//! ```

use super::conv2d::output_image;
use super::{Image, Isa, Window, PAR_MIN_WORK};
use rayon::prelude::*;
use ticket_core::Par;

/// What a pooling window computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pool {
    Max,
    Avg,
}

/// `y` `[C][OH][OW][batch]` (overwritten) from `x` `[C][H][W][batch]`. Panics when the
/// lengths do not fit `input` and `window`, or the window has padding.
pub fn pool2d(pool: Pool, input: Image, window: Window, x: &[f32], y: &mut [f32], batch: usize) {
    match Isa::detect() {
        Isa::Portable => pool2d_loops(pool, input, window, x, y, batch),
        // SAFETY: AVX2 is present (Isa::detect).
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2Fma | Isa::Avx512 => unsafe { pool2d_avx2(pool, input, window, x, y, batch) },
    }
}

/// [`pool2d`] with its channels split over `par`'s threads when the pooling is large enough
/// to pay for them (AlexNet's first pool at batch 1: 420,000 window reads), else on this
/// thread. Channels are pooled independently, so the result is the same.
pub fn pool2d_par(
    pool: Pool,
    input: Image,
    window: Window,
    (x, y): (&[f32], &mut [f32]),
    batch: usize,
    par: Par,
) {
    let output = output_image(input, window, input.channels);
    let reads = output.len().saturating_mul(window.kernel[0] * window.kernel[1] * batch);
    let threads = if reads >= PAR_MIN_WORK { par.threads().min(input.channels) } else { 1 };
    // Wrong lengths go to pool2d whole, which names them.
    if threads <= 1 || x.len() != input.len() * batch || y.len() != output.len() * batch {
        return pool2d(pool, input, window, x, y, batch);
    }
    let channels = input.channels.div_ceil(threads);
    let (x_part, y_part) = (channels * input.plane() * batch, channels * output.plane() * batch);
    x.par_chunks(x_part).zip(y.par_chunks_mut(y_part)).for_each(|(x, y)| {
        let part = Image { channels: x.len() / (input.plane() * batch), ..input };
        pool2d(pool, part, window, x, y, batch)
    });
}

/// [`pool2d_loops`] compiled for AVX2, which its loops vectorise to.
///
/// # Safety
/// AVX2 available.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn pool2d_avx2(
    pool: Pool,
    input: Image,
    window: Window,
    x: &[f32],
    y: &mut [f32],
    batch: usize,
) {
    pool2d_loops(pool, input, window, x, y, batch)
}

#[inline(always)]
fn pool2d_loops(pool: Pool, input: Image, window: Window, x: &[f32], y: &mut [f32], batch: usize) {
    assert_eq!(window.padding, [0, 0], "pool2d: pooling has no padding");
    let output = output_image(input, window, input.channels);
    assert_eq!(x.len(), input.len() * batch, "pool2d: x length");
    assert_eq!(y.len(), output.len() * batch, "pool2d: y length");
    if batch == 0 {
        return;
    }
    let [kh, kw] = window.kernel;
    let [sh, sw] = window.stride;
    let (row, out_row) = (input.width * batch, output.width * batch);
    let divisor = (kh * kw) as f32;
    let combine = |a: &mut [f32], b: &[f32]| match pool {
        Pool::Max => a.iter_mut().zip(b).for_each(|(a, &b)| *a = a.max(b)),
        Pool::Avg => a.iter_mut().zip(b).for_each(|(a, &b)| *a += b),
    };
    // Per output row, the window's rows combined first, whole input rows at a time (long
    // contiguous runs that vectorise at any batch) into `rows` (one `[W][batch]` row, reused:
    // a buffer of every output row took AlexNet's first pool longer to fault in than to
    // fill), then its columns.
    let mut rows = vec![0.0; row];
    let finish = |y: &mut f32| {
        if pool == Pool::Avg {
            *y /= divisor
        }
    };
    for (xc, yc) in
        x.chunks_exact(input.plane() * batch).zip(y.chunks_exact_mut(output.plane() * batch))
    {
        for (oh, yr) in yc.chunks_exact_mut(out_row).enumerate() {
            let input_row = |i: usize| &xc[(oh * sh + i) * row..][..row];
            rows.copy_from_slice(input_row(0));
            for i in 1..kh {
                combine(&mut rows, input_row(i));
            }
            if batch == 1 {
                pool_row(pool, &rows, yr, [kw, sw], divisor);
                continue;
            }
            for (ow, yp) in yr.chunks_exact_mut(batch).enumerate() {
                let column = |j: usize| &rows[(ow * sw + j) * batch..][..batch];
                yp.copy_from_slice(column(0));
                for j in 1..kw {
                    combine(yp, column(j));
                }
                yp.iter_mut().for_each(finish);
            }
        }
    }
}

/// One example's output row `y` from its input row `rows` (the window's rows already
/// combined): windows `kw` wide every `sw` values, reduced value by value (a column of one
/// example is a single value, too short for the slices of the batched loop).
#[inline(always)]
fn pool_row(pool: Pool, rows: &[f32], y: &mut [f32], [kw, sw]: [usize; 2], divisor: f32) {
    match (pool, kw, sw) {
        // The common windows as fixed-size arrays, which the compiler unrolls.
        (Pool::Max, 2, 2) => {
            y.iter_mut().zip(rows.chunks_exact(2)).for_each(|(y, w)| *y = w[0].max(w[1]))
        }
        (Pool::Max, 3, 2) => y.iter_mut().enumerate().for_each(|(ow, y)| {
            let w = &rows[ow * 2..ow * 2 + 3];
            *y = w[0].max(w[1]).max(w[2])
        }),
        (Pool::Max, _, _) => y.iter_mut().enumerate().for_each(|(ow, y)| {
            let w = &rows[ow * sw..ow * sw + kw];
            *y = w.iter().copied().fold(w[0], f32::max)
        }),
        (Pool::Avg, _, _) => y
            .iter_mut()
            .enumerate()
            .for_each(|(ow, y)| *y = rows[ow * sw..ow * sw + kw].iter().sum::<f32>() / divisor),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Every window of every example reduced straight from `x`, in f64.
    fn reference(pool: Pool, input: Image, window: Window, x: &[f32], batch: usize) -> Vec<f64> {
        let output = output_image(input, window, input.channels);
        let ([kh, kw], [sh, sw]) = (window.kernel, window.stride);
        let mut y = Vec::with_capacity(output.len() * batch);
        for c in 0..input.channels {
            for oh in 0..output.height {
                for ow in 0..output.width {
                    for b in 0..batch {
                        let values =
                            (0..kh).flat_map(|i| (0..kw).map(move |j| (i, j))).map(|(i, j)| {
                                let (h, w) = (oh * sh + i, ow * sw + j);
                                x[((c * input.height + h) * input.width + w) * batch + b] as f64
                            });
                        y.push(match pool {
                            Pool::Max => values.fold(f64::NEG_INFINITY, f64::max),
                            Pool::Avg => values.sum::<f64>() / (kh * kw) as f64,
                        });
                    }
                }
            }
        }
        y
    }

    proptest! {
        /// Overlapping (AlexNet's 3x3 / 2), tiling and gapped windows, one example and several.
        #[test]
        fn pooling_matches_the_windows_reduced_one_by_one(
            (c, h, w) in (1usize..4, 1usize..16, 1usize..30),
            kernel in prop_oneof![Just([3, 3]), Just([2, 2]), [1usize..5, 1usize..5]],
            stride in prop_oneof![Just([2, 2]), [1usize..4, 1usize..4]],
            batch in prop_oneof![Just(1usize), 2..10usize],
            max in any::<bool>(),
            seed in any::<u64>(),
        ) {
            prop_assume!(kernel[0] <= h && kernel[1] <= w);
            let input = Image { channels: c, height: h, width: w };
            let window = Window { kernel, stride, padding: [0, 0] };
            let pool = if max { Pool::Max } else { Pool::Avg };
            let mut state = seed | 1;
            let x: Vec<f32> = (0..input.len() * batch)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    (state >> 40) as f32 / (1u64 << 23) as f32 - 1.0
                })
                .collect();
            let want = reference(pool, input, window, &x, batch);
            let mut y = vec![f32::NAN; want.len()];
            pool2d(pool, input, window, &x, &mut y, batch);
            for (g, w) in y.iter().zip(&want) {
                let bound = if max { 0.0 } else { 1e-6 * (1.0 + w.abs()) };
                prop_assert!((*g as f64 - w).abs() <= bound, "{pool:?}: {g} vs {w}");
            }
        }
    }

    /// Split over threads by channels, a pooling gives the one-thread result exactly.
    #[test]
    fn channels_split_over_threads_pool_the_same() {
        let pool_threads = rayon::ThreadPoolBuilder::new().num_threads(3).build().unwrap();
        for (channels, size, batch) in [(64, 55, 1), (7, 20, 3), (2, 9, 1)] {
            let input = Image { channels, height: size, width: size };
            let window = Window { kernel: [3, 3], stride: [2, 2], padding: [0, 0] };
            let x: Vec<f32> =
                (0..input.len() * batch).map(|i| ((i * 7919) % 1000) as f32 - 500.0).collect();
            let output = output_image(input, window, channels);
            for pool in [Pool::Max, Pool::Avg] {
                let mut want = vec![0.0; output.len() * batch];
                pool2d(pool, input, window, &x, &mut want, batch);
                for par in [Par::Seq, Par::Rayon(2), Par::Rayon(3)] {
                    let mut got = vec![f32::NAN; want.len()];
                    pool_threads
                        .install(|| pool2d_par(pool, input, window, (&x, &mut got), batch, par));
                    assert_eq!(got, want, "{channels}x{size} batch {batch} {pool:?} {par:?}");
                }
            }
        }
    }

    /// Maxima and means of a 1x3x5 image with a 2x2 window and stride [1, 2], written out by
    /// hand: floor mode drops the last column.
    #[test]
    fn windows_follow_floor_mode_and_stride() {
        let x: Vec<f32> = (0..15).map(|v| v as f32).collect(); // rows 0..5, 5..10, 10..15
        let input = Image { channels: 1, height: 3, width: 5 };
        let window = Window { kernel: [2, 2], stride: [1, 2], padding: [0, 0] };
        let mut y = vec![f32::NAN; 4];
        pool2d(Pool::Max, input, window, &x, &mut y, 1);
        assert_eq!(y, [6.0, 8.0, 11.0, 13.0]);
        pool2d(Pool::Avg, input, window, &x, &mut y, 1);
        assert_eq!(y, [3.0, 5.0, 8.0, 10.0]);
        // A batch of two: the second example is the first negated.
        let x2: Vec<f32> = x.iter().flat_map(|&v| [v, -v]).collect();
        let mut y2 = vec![f32::NAN; 8];
        pool2d(Pool::Max, input, window, &x2, &mut y2, 2);
        assert_eq!(y2, [6.0, 0.0, 8.0, -2.0, 11.0, -5.0, 13.0, -7.0]);
    }
}
