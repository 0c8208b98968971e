//! Dense 2-D convolution as PyTorch's `nn.Conv2d` computes it (cross-correlation, zero
//! padding, groups 1), lowered to the core [`sgemm`]: each example's input patches are copied
//! into a `[in*kh*kw, out_h*out_w]` matrix (im2col) so that the layer is one product with the
//! `[out, in*kh*kw]` weight. The adjoint, [`col2im_add`], is what the backward pass needs.
//!
//! Activations are C-order `[C, H, W]` per example with the batch outermost, as an NCHW tensor.

use crate::sgemm::{sgemm, MatMut, MatRef};
use crate::{Layer, Par};
use rayon::prelude::*;

/// Multiply-adds of a whole batch below which the convolution stays on the calling thread.
const PARALLEL_MIN_WORK: usize = 1 << 18;

/// Sizes of one conv2d layer applied to one input shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2dGeometry {
    pub in_channels: usize,
    pub in_size: [usize; 2],
    pub out_channels: usize,
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub padding: [usize; 2],
    pub out_size: [usize; 2],
}

impl Conv2dGeometry {
    /// The geometry of `layer` on inputs of shape `input` (`[C, H, W]`); `None` when `layer` is
    /// not a conv2d or the shapes do not fit (a [`crate::Graph`] has checked both).
    pub fn new(layer: &Layer, input: &[usize]) -> Option<Self> {
        let Layer::Conv2d { inputs, outputs, kernel, stride, padding, .. } = *layer else {
            return None;
        };
        let [c, h, w] = *input else { return None };
        if c != inputs || kernel.contains(&0) || stride.contains(&0) {
            return None;
        }
        let out = |d: usize, size: usize| {
            (size + 2 * padding[d]).checked_sub(kernel[d]).map(|s| s / stride[d] + 1)
        };
        Some(Conv2dGeometry {
            in_channels: c,
            in_size: [h, w],
            out_channels: outputs,
            kernel,
            stride,
            padding,
            out_size: [out(0, h)?, out(1, w)?],
        })
    }

    /// Values in one input patch: `in * kh * kw`, the columns of the weight matrix.
    pub fn patch_len(&self) -> usize {
        self.in_channels * self.kernel[0] * self.kernel[1]
    }

    /// Output positions per channel: `out_h * out_w`.
    pub fn positions(&self) -> usize {
        self.out_size[0] * self.out_size[1]
    }

    pub fn input_len(&self) -> usize {
        self.in_channels * self.in_size[0] * self.in_size[1]
    }

    pub fn output_len(&self) -> usize {
        self.out_channels * self.positions()
    }

    /// A 1x1 convolution with stride 1 and no padding: the input already is its patch matrix.
    pub fn is_pointwise(&self) -> bool {
        self.kernel == [1, 1] && self.stride == [1, 1] && self.padding == [0, 0]
    }

    /// Length of the patch matrix of one example (0 when [`Self::is_pointwise`]).
    pub fn scratch_len(&self) -> usize {
        if self.is_pointwise() {
            0
        } else {
            self.patch_len() * self.positions()
        }
    }

    /// Input index (row or column) read by output index `o` at kernel offset `k` along
    /// dimension `d`, or `None` where it falls into the zero padding.
    #[inline]
    fn source(&self, d: usize, o: usize, k: usize) -> Option<usize> {
        (o * self.stride[d] + k).checked_sub(self.padding[d]).filter(|&i| i < self.in_size[d])
    }

    /// How many tasks a batch of `batch` examples is cut into under `par`.
    pub fn tasks(&self, batch: usize, par: Par) -> usize {
        let work = batch * self.output_len() * self.patch_len();
        if work < PARALLEL_MIN_WORK {
            1
        } else {
            par.threads().min(batch).max(1)
        }
    }
}

/// Copies the patches of one example `x` (`[C, H, W]`) into `col` (`[C*kh*kw, out_h*out_w]`,
/// row `(c, i, j)` holding input `(c, oh*sh + i - ph, ow*sw + j - pw)` or 0 in the padding).
pub fn im2col(g: &Conv2dGeometry, x: &[f32], col: &mut [f32]) {
    let [h, w] = g.in_size;
    let [oh, ow] = g.out_size;
    let mut rows = col.chunks_exact_mut(oh * ow);
    for c in 0..g.in_channels {
        let plane = &x[c * h * w..(c + 1) * h * w];
        for ki in 0..g.kernel[0] {
            for kj in 0..g.kernel[1] {
                let row = rows.next().expect("col has patch_len rows");
                for (r, out_row) in row.chunks_exact_mut(ow).enumerate() {
                    let Some(i) = g.source(0, r, ki) else {
                        out_row.fill(0.0);
                        continue;
                    };
                    let line = &plane[i * w..(i + 1) * w];
                    if g.stride[1] == 1 && kj >= g.padding[1] && kj - g.padding[1] + ow <= w {
                        out_row.copy_from_slice(&line[kj - g.padding[1]..kj - g.padding[1] + ow]);
                        continue;
                    }
                    for (s, v) in out_row.iter_mut().enumerate() {
                        *v = g.source(1, s, kj).map_or(0.0, |j| line[j]);
                    }
                }
            }
        }
    }
}

/// The adjoint of [`im2col`]: adds each entry of `col` back onto the input position it was
/// copied from (padding entries are dropped). `dx` is one example, `[C, H, W]`.
pub fn col2im_add(g: &Conv2dGeometry, col: &[f32], dx: &mut [f32]) {
    let [h, w] = g.in_size;
    let [oh, ow] = g.out_size;
    let mut rows = col.chunks_exact(oh * ow);
    for c in 0..g.in_channels {
        let plane = &mut dx[c * h * w..(c + 1) * h * w];
        for ki in 0..g.kernel[0] {
            for kj in 0..g.kernel[1] {
                let row = rows.next().expect("col has patch_len rows");
                for (r, in_row) in row.chunks_exact(ow).enumerate() {
                    let Some(i) = g.source(0, r, ki) else { continue };
                    let line = &mut plane[i * w..(i + 1) * w];
                    for (s, &v) in in_row.iter().enumerate() {
                        if let Some(j) = g.source(1, s, kj) {
                            line[j] += v;
                        }
                    }
                }
            }
        }
    }
}

/// Per-task patch matrices, allocated once for a batch size and reused.
#[derive(Clone, Debug, Default)]
pub struct ConvScratch {
    pub cols: Vec<Vec<f32>>,
}

impl ConvScratch {
    /// Room for `tasks` patch matrices of `g`.
    pub fn new(g: &Conv2dGeometry, tasks: usize) -> Self {
        ConvScratch { cols: vec![vec![0.0; g.scratch_len()]; tasks.max(1)] }
    }

    /// Grows to at least `tasks` buffers (never shrinks).
    pub fn reserve(&mut self, g: &Conv2dGeometry, tasks: usize) {
        while self.cols.len() < tasks {
            self.cols.push(vec![0.0; g.scratch_len()]);
        }
    }
}

/// The patch matrix of example `x`: `x` itself for a pointwise convolution, else `scratch`
/// filled by [`im2col`].
pub fn patches<'a>(g: &Conv2dGeometry, x: &'a [f32], scratch: &'a mut [f32]) -> &'a [f32] {
    if g.is_pointwise() {
        x
    } else {
        im2col(g, x, scratch);
        scratch
    }
}

/// `output = conv(input, weight) + bias` for a batch (`input` `[batch, C*H*W]`, `output`
/// `[batch, out*out_h*out_w]`, `weight` `[out, in*kh*kw]`), examples split over `par`'s threads.
pub fn conv2d_forward(
    g: &Conv2dGeometry,
    (weight, bias): (&[f32], &[f32]),
    input: &[f32],
    output: &mut [f32],
    batch: usize,
    par: Par,
    scratch: &mut ConvScratch,
) {
    let (k, p) = (g.patch_len(), g.positions());
    let (in_len, out_len) = (g.input_len(), g.output_len());
    let tasks = g.tasks(batch, par);
    scratch.reserve(g, tasks);
    let per_task = batch.div_ceil(tasks).max(1);
    let run = |(x, (y, col)): (&[f32], (&mut [f32], &mut Vec<f32>))| {
        for (x, y) in x.chunks_exact(in_len).zip(y.chunks_exact_mut(out_len)) {
            for (row, &b) in y.chunks_exact_mut(p).zip(bias) {
                row.fill(b);
            }
            let cols = patches(g, x, col);
            sgemm(
                MatMut::row_major(y, g.out_channels, p),
                MatRef::row_major(weight, g.out_channels, k),
                MatRef::row_major(cols, k, p),
                1.0,
                Par::Seq,
            );
        }
    };
    let inputs = input[..batch * in_len].chunks(per_task * in_len);
    let outputs = output[..batch * out_len].chunks_mut(per_task * out_len);
    let work = inputs.zip(outputs.zip(scratch.cols.iter_mut()));
    if tasks > 1 {
        work.collect::<Vec<_>>().into_par_iter().for_each(run);
    } else {
        work.for_each(run);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The definition of PyTorch's conv2d as direct loops, independent of im2col and sgemm.
    pub(crate) fn naive_conv2d(
        g: &Conv2dGeometry,
        weight: &[f32],
        bias: &[f32],
        x: &[f32],
    ) -> Vec<f32> {
        let [h, w] = g.in_size;
        let [oh, ow] = g.out_size;
        let [kh, kw] = g.kernel;
        let mut y = vec![0.0f32; g.output_len()];
        for o in 0..g.out_channels {
            for r in 0..oh {
                for s in 0..ow {
                    let mut acc = bias[o] as f64;
                    for c in 0..g.in_channels {
                        for i in 0..kh {
                            for j in 0..kw {
                                let ii = (r * g.stride[0] + i) as isize - g.padding[0] as isize;
                                let jj = (s * g.stride[1] + j) as isize - g.padding[1] as isize;
                                if ii < 0 || jj < 0 || ii >= h as isize || jj >= w as isize {
                                    continue;
                                }
                                let wv = weight[((o * g.in_channels + c) * kh + i) * kw + j];
                                let xv = x[(c * h + ii as usize) * w + jj as usize];
                                acc += wv as f64 * xv as f64;
                            }
                        }
                    }
                    y[(o * oh + r) * ow + s] = acc as f32;
                }
            }
        }
        y
    }

    fn layer(
        inputs: usize,
        outputs: usize,
        kernel: [usize; 2],
        stride: usize,
        pad: usize,
    ) -> Layer {
        Layer::Conv2d {
            name: "c".into(),
            inputs,
            outputs,
            kernel,
            stride: [stride, stride],
            padding: [pad, pad],
        }
    }

    fn values(n: usize, salt: usize) -> Vec<f32> {
        (0..n).map(|i| ((i * 37 + salt * 11) % 23) as f32 / 11.0 - 1.0).collect()
    }

    #[test]
    fn forward_matches_direct_loops() {
        let cases = [
            (layer(3, 4, [3, 3], 1, 1), [3, 7, 6]),
            (layer(2, 5, [3, 2], 2, 1), [2, 9, 8]),
            (layer(4, 3, [1, 1], 1, 0), [4, 5, 5]),
            (layer(1, 6, [5, 5], 1, 0), [1, 12, 12]),
            (layer(2, 2, [2, 3], 3, 2), [2, 5, 7]),
        ];
        for (layer, input) in cases {
            let g = Conv2dGeometry::new(&layer, &input).unwrap();
            let weight = values(g.out_channels * g.patch_len(), 1);
            let bias = values(g.out_channels, 2);
            let batch = 5;
            let x = values(batch * g.input_len(), 3);
            for par in [Par::Seq, Par::Rayon(2)] {
                let mut y = vec![f32::NAN; batch * g.output_len()];
                let mut scratch = ConvScratch::default();
                conv2d_forward(&g, (&weight, &bias), &x, &mut y, batch, par, &mut scratch);
                for b in 0..batch {
                    let want =
                        naive_conv2d(&g, &weight, &bias, &x[b * g.input_len()..][..g.input_len()]);
                    for (got, want) in y[b * g.output_len()..][..g.output_len()].iter().zip(&want) {
                        assert!((got - want).abs() < 1e-4, "{layer:?}: {got} vs {want}");
                    }
                }
            }
        }
    }

    /// col2im is the adjoint of im2col: <im2col(x), c> = <x, col2im(c)> for any x and c.
    #[test]
    fn col2im_is_the_adjoint_of_im2col() {
        let g = Conv2dGeometry::new(&layer(2, 1, [3, 2], 2, 1), &[2, 6, 5]).unwrap();
        let x = values(g.input_len(), 4);
        let c = values(g.scratch_len(), 5);
        let mut col = vec![0.0; g.scratch_len()];
        im2col(&g, &x, &mut col);
        let mut back = vec![0.0; g.input_len()];
        col2im_add(&g, &c, &mut back);
        let lhs: f64 = col.iter().zip(&c).map(|(a, b)| (a * b) as f64).sum();
        let rhs: f64 = x.iter().zip(&back).map(|(a, b)| (a * b) as f64).sum();
        assert!((lhs - rhs).abs() < 1e-4, "{lhs} vs {rhs}");
    }
}
