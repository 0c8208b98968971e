//! Dense 2-D max and average pooling as PyTorch's `nn.MaxPool2d` / `nn.AvgPool2d` compute them
//! with no padding and floor mode; the stride defaults to the kernel. Activations are C-order
//! `[C, H, W]` per example, the batch outermost.

use crate::Layer;

/// Sizes of one pooling layer applied to one input shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolGeometry {
    pub channels: usize,
    pub in_size: [usize; 2],
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub out_size: [usize; 2],
}

impl PoolGeometry {
    /// The geometry of a maxpool2d or avgpool2d `layer` on inputs of shape `input`; `None` for
    /// other layers or shapes that do not fit (a [`crate::Graph`] has checked both).
    pub fn new(layer: &Layer, input: &[usize]) -> Option<Self> {
        let (Layer::Maxpool2d { kernel, stride } | Layer::Avgpool2d { kernel, stride }) = *layer
        else {
            return None;
        };
        let stride = stride.unwrap_or(kernel);
        let [c, h, w] = *input else { return None };
        if kernel.contains(&0) || stride.contains(&0) || h < kernel[0] || w < kernel[1] {
            return None;
        }
        Some(PoolGeometry {
            channels: c,
            in_size: [h, w],
            kernel,
            stride,
            out_size: [(h - kernel[0]) / stride[0] + 1, (w - kernel[1]) / stride[1] + 1],
        })
    }

    pub fn input_len(&self) -> usize {
        self.channels * self.in_size[0] * self.in_size[1]
    }

    pub fn output_len(&self) -> usize {
        self.channels * self.out_size[0] * self.out_size[1]
    }

    /// Calls `f(output index, input index of its window's top-left corner)` for every output
    /// of one example; window entry `(i, j)` is at `corner + i * in_w + j`.
    #[inline]
    pub fn for_each_window(&self, mut f: impl FnMut(usize, usize)) {
        let [h, w] = self.in_size;
        let [oh, ow] = self.out_size;
        for c in 0..self.channels {
            for r in 0..oh {
                for s in 0..ow {
                    f(
                        (c * oh + r) * ow + s,
                        c * h * w + r * self.stride[0] * w + s * self.stride[1],
                    );
                }
            }
        }
    }
}

/// Max pooling of a batch. When `argmax` is given it receives, per output, the index (within
/// its example) of the input that won: the first maximum in row-major window order, as
/// PyTorch; a NaN wins over numbers and propagates.
pub fn maxpool2d_forward(
    g: &PoolGeometry,
    input: &[f32],
    output: &mut [f32],
    mut argmax: Option<&mut [u32]>,
    batch: usize,
) {
    let (in_len, out_len) = (g.input_len(), g.output_len());
    let ([kh, kw], w) = (g.kernel, g.in_size[1]);
    for b in 0..batch {
        let x = &input[b * in_len..(b + 1) * in_len];
        let y = &mut output[b * out_len..(b + 1) * out_len];
        let mut arg = argmax.as_deref_mut().map(|a| &mut a[b * out_len..(b + 1) * out_len]);
        g.for_each_window(|o, corner| {
            let (mut best, mut at) = (x[corner], corner);
            for i in 0..kh {
                for j in 0..kw {
                    let k = corner + i * w + j;
                    if x[k] > best || (x[k].is_nan() && !best.is_nan()) {
                        (best, at) = (x[k], k);
                    }
                }
            }
            y[o] = best;
            if let Some(a) = arg.as_deref_mut() {
                a[o] = at as u32;
            }
        });
    }
}

/// Average pooling of a batch: the mean of each window.
pub fn avgpool2d_forward(g: &PoolGeometry, input: &[f32], output: &mut [f32], batch: usize) {
    let (in_len, out_len) = (g.input_len(), g.output_len());
    let ([kh, kw], w) = (g.kernel, g.in_size[1]);
    let scale = 1.0 / (kh * kw) as f32;
    for b in 0..batch {
        let x = &input[b * in_len..(b + 1) * in_len];
        let y = &mut output[b * out_len..(b + 1) * out_len];
        g.for_each_window(|o, corner| {
            let mut sum = 0.0;
            for i in 0..kh {
                sum += x[corner + i * w..][..kw].iter().sum::<f32>();
            }
            y[o] = sum * scale;
        });
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Pooling by its definition with explicit loops over (c, oh, ow, i, j).
    pub(crate) fn naive_pool(g: &PoolGeometry, x: &[f32], max: bool) -> Vec<f32> {
        let [h, w] = g.in_size;
        let [oh, ow] = g.out_size;
        let mut y = Vec::new();
        for c in 0..g.channels {
            for r in 0..oh {
                for s in 0..ow {
                    let mut acc = if max { f32::NEG_INFINITY } else { 0.0 };
                    for i in 0..g.kernel[0] {
                        for j in 0..g.kernel[1] {
                            let v = x[(c * h + r * g.stride[0] + i) * w + s * g.stride[1] + j];
                            acc = if max { acc.max(v) } else { acc + v };
                        }
                    }
                    y.push(if max { acc } else { acc / (g.kernel[0] * g.kernel[1]) as f32 });
                }
            }
        }
        y
    }

    #[test]
    fn pools_match_direct_loops() {
        let cases = [
            ([2, 2], None, [3, 6, 6]),
            ([3, 2], None, [2, 7, 5]),
            ([3, 3], Some([2, 1]), [2, 8, 6]),
            ([2, 2], Some([3, 3]), [1, 8, 7]),
        ];
        for (kernel, stride, input) in cases {
            for max in [true, false] {
                let layer = if max {
                    Layer::Maxpool2d { kernel, stride }
                } else {
                    Layer::Avgpool2d { kernel, stride }
                };
                let g = PoolGeometry::new(&layer, &input).unwrap();
                let batch = 3;
                let x: Vec<f32> =
                    (0..batch * g.input_len()).map(|i| ((i * 29) % 17) as f32 - 8.0).collect();
                let mut y = vec![f32::NAN; batch * g.output_len()];
                let mut arg = vec![0u32; batch * g.output_len()];
                if max {
                    maxpool2d_forward(&g, &x, &mut y, Some(&mut arg), batch);
                } else {
                    avgpool2d_forward(&g, &x, &mut y, batch);
                }
                for b in 0..batch {
                    let xb = &x[b * g.input_len()..][..g.input_len()];
                    let want = naive_pool(&g, xb, max);
                    let got = &y[b * g.output_len()..][..g.output_len()];
                    for (o, (got, want)) in got.iter().zip(&want).enumerate() {
                        assert!((got - want).abs() < 1e-5, "{layer:?}: {got} vs {want}");
                        if max {
                            assert_eq!(xb[arg[b * g.output_len() + o] as usize], *want);
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn maxpool_picks_the_first_of_equal_maxima() {
        let g = PoolGeometry::new(&Layer::Maxpool2d { kernel: [2, 2], stride: None }, &[1, 2, 2])
            .unwrap();
        let mut y = [0.0];
        let mut arg = [9u32];
        maxpool2d_forward(&g, &[1.0, 3.0, 3.0, 2.0], &mut y, Some(&mut arg), 1);
        assert_eq!((y[0], arg[0]), (3.0, 1));
    }
}
