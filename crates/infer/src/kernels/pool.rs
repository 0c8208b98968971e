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
use super::{Image, Isa, Window};

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
        Isa::Avx2Fma => unsafe { pool2d_avx2(pool, input, window, x, y, batch) },
    }
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
    // The window's rows combined first, whole input rows at a time (long contiguous runs that
    // vectorise at any batch), into `rows` (`[C][OH][W][batch]`), then its columns.
    let mut rows = Vec::with_capacity(output.channels * output.height * row);
    for xc in x.chunks_exact(input.plane() * batch) {
        for oh in 0..output.height {
            let input_row = |i: usize| &xc[(oh * sh + i) * row..][..row];
            let start = rows.len();
            rows.extend_from_slice(input_row(0));
            for i in 1..kh {
                combine(&mut rows[start..], input_row(i));
            }
        }
    }
    let finish = |y: &mut f32| {
        if pool == Pool::Avg {
            *y /= divisor
        }
    };
    if batch == 1 && kw == sw && input.width == output.width * sw {
        // One example whose windows tile each row exactly: every `kw` consecutive values of
        // `rows` are one window, across row ends too, so one long loop does all outputs.
        match (pool, kw) {
            // The common 2-wide window as pairs, which vectorise.
            (Pool::Max, 2) => {
                y.iter_mut().zip(rows.chunks_exact(2)).for_each(|(y, p)| *y = p[0].max(p[1]))
            }
            (Pool::Max, _) => y
                .iter_mut()
                .zip(rows.chunks_exact(kw))
                .for_each(|(y, w)| *y = w.iter().copied().fold(w[0], f32::max)),
            (Pool::Avg, _) => y
                .iter_mut()
                .zip(rows.chunks_exact(kw))
                .for_each(|(y, w)| *y = w.iter().sum::<f32>() / divisor),
        }
        return;
    }
    for (rr, yr) in rows.chunks_exact(row).zip(y.chunks_exact_mut(out_row)) {
        for (ow, yp) in yr.chunks_exact_mut(batch).enumerate() {
            let column = |j: usize| &rr[(ow * sw + j) * batch..][..batch];
            yp.copy_from_slice(column(0));
            for j in 1..kw {
                combine(yp, column(j));
            }
            yp.iter_mut().for_each(finish);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
