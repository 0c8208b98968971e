//! Max and average pooling as PyTorch's `nn.MaxPool2d` / `nn.AvgPool2d` with no padding and
//! floor mode: every output is the max (or the mean, the sum divided by `kh * kw`) of its
//! window, per channel. Over `[channels][height][width][batch]` activations each window
//! position is a batch-wide elementwise max or add, which the compiler vectorises; pooling
//! reads each input a few times and computes almost nothing, so it needs no SIMD of its own.
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
use super::{Image, Window};

/// What a pooling window computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pool {
    Max,
    Avg,
}

/// `y` `[C][OH][OW][batch]` (overwritten) from `x` `[C][H][W][batch]`. Panics when the
/// lengths do not fit `input` and `window`, or the window has padding.
pub fn pool2d(pool: Pool, input: Image, window: Window, x: &[f32], y: &mut [f32], batch: usize) {
    assert_eq!(window.padding, [0, 0], "pool2d: pooling has no padding");
    let output = output_image(input, window, input.channels);
    assert_eq!(x.len(), input.len() * batch, "pool2d: x length");
    assert_eq!(y.len(), output.len() * batch, "pool2d: y length");
    if batch == 0 {
        return;
    }
    let [kh, kw] = window.kernel;
    let [sh, sw] = window.stride;
    let at = |c: usize, h: usize, w: usize| ((c * input.height + h) * input.width + w) * batch;
    let divisor = (kh * kw) as f32;
    let combine = |a: f32, b: f32| if pool == Pool::Max { a.max(b) } else { a + b };
    let finish = |a: f32| if pool == Pool::Max { a } else { a / divisor };
    let mut outputs = y.chunks_exact_mut(batch);
    for c in 0..output.channels {
        for oh in 0..output.height {
            for ow in 0..output.width {
                let yp = outputs.next().expect("y holds every output position");
                let (h0, w0) = (oh * sh, ow * sw);
                if batch == 1 {
                    // One example: a scalar fold, without the batch-wide slices below.
                    let tap = |i: usize, j: usize| x[at(c, h0 + i, w0 + j)];
                    let all = (0..kh).flat_map(|i| (0..kw).map(move |j| (i, j)));
                    yp[0] = finish(all.skip(1).fold(tap(0, 0), |a, (i, j)| combine(a, tap(i, j))));
                    continue;
                }
                yp.copy_from_slice(&x[at(c, h0, w0)..][..batch]);
                for i in 0..kh {
                    for j in 0..kw {
                        if i + j > 0 {
                            let xs = &x[at(c, h0 + i, w0 + j)..][..batch];
                            yp.iter_mut().zip(xs).for_each(|(y, &x)| *y = combine(*y, x));
                        }
                    }
                }
                yp.iter_mut().for_each(|y| *y = finish(*y));
            }
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
