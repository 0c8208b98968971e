//! Dense 2-D max and average pooling as PyTorch's `nn.MaxPool2d` / `nn.AvgPool2d` compute them
//! with no padding and floor mode; the stride defaults to the kernel. Activations are C-order
//! `[C, H, W]` per example, the batch outermost.

use crate::{Layer, Par};
use rayon::prelude::*;

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

/// Reads per batch below which pooling stays on the calling thread (a LeNet-5 batch of 60 is
/// above it; one example is below).
const PARALLEL_MIN_READS: usize = 1 << 16;

/// Max pooling of a batch. When `argmax` is given it receives, per output, the index (within
/// its example) of the input that won: the first maximum in row-major window order, as
/// PyTorch; a NaN wins over numbers and propagates. Large batches are split across `par`'s
/// threads by example.
pub fn maxpool2d_forward(
    g: &PoolGeometry,
    input: &[f32],
    output: &mut [f32],
    argmax: Option<&mut [u32]>,
    batch: usize,
    par: Par,
) {
    let (in_len, out_len) = (g.input_len(), g.output_len());
    let reads = batch * out_len * g.kernel[0] * g.kernel[1];
    let threads = if reads < PARALLEL_MIN_READS { 1 } else { par.threads().min(batch).max(1) };
    let per = batch.div_ceil(threads).max(1);
    let inputs = input[..batch * in_len].chunks(per * in_len);
    let outputs = output[..batch * out_len].chunks_mut(per * out_len);
    let run = |(x, y, arg): (&[f32], &mut [f32], Option<&mut [u32]>)| {
        maxpool_examples(g, x, y, arg);
    };
    match argmax {
        Some(arg) => {
            let args = arg[..batch * out_len].chunks_mut(per * out_len).map(Some);
            let work = inputs.zip(outputs).zip(args).map(|((x, y), a)| (x, y, a));
            run_tasks(work, threads, run);
        }
        None => {
            let work = inputs.zip(outputs).map(|(x, y)| (x, y, None));
            run_tasks(work, threads, run);
        }
    }
}

/// Runs `f` on every item, on the rayon pool when there is more than one thread.
fn run_tasks<T: Send>(work: impl Iterator<Item = T>, threads: usize, f: impl Fn(T) + Sync + Send) {
    if threads > 1 {
        work.collect::<Vec<_>>().into_par_iter().for_each(f);
    } else {
        work.for_each(f);
    }
}

/// [`maxpool2d_forward`] on consecutive examples on this thread.
fn maxpool_examples(
    g: &PoolGeometry,
    input: &[f32],
    output: &mut [f32],
    mut argmax: Option<&mut [u32]>,
) {
    let (in_len, out_len) = (g.input_len(), g.output_len());
    let ([kh, kw], w) = (g.kernel, g.in_size[1]);
    for (b, (x, y)) in input.chunks_exact(in_len).zip(output.chunks_exact_mut(out_len)).enumerate()
    {
        let mut arg = argmax.as_deref_mut().map(|a| &mut a[b * out_len..(b + 1) * out_len]);
        g.for_each_window(|o, corner| {
            let (mut best, mut at) = (x[corner], corner);
            for i in 0..kh {
                let start = corner + i * w;
                for (j, &v) in x[start..start + kw].iter().enumerate() {
                    if v > best || (v.is_nan() && !best.is_nan()) {
                        (best, at) = (v, start + j);
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

    /// A batch large enough to be split across threads pools exactly as one thread does,
    /// and as the definition says.
    #[test]
    fn threaded_max_pooling_equals_one_thread_and_the_definition() {
        let layer = Layer::Maxpool2d { kernel: [2, 2], stride: None };
        let g = PoolGeometry::new(&layer, &[20, 24, 24]).unwrap();
        let batch = 61;
        let x: Vec<f32> =
            (0..batch * g.input_len()).map(|i| ((i * 7919) % 1013) as f32 - 500.0).collect();
        assert!(batch * g.output_len() * 4 >= PARALLEL_MIN_READS);
        let pool = |par| {
            let mut y = vec![f32::NAN; batch * g.output_len()];
            let mut arg = vec![0u32; batch * g.output_len()];
            maxpool2d_forward(&g, &x, &mut y, Some(&mut arg), batch, par);
            (y, arg)
        };
        let (seq, seq_arg) = pool(Par::Seq);
        let (threaded, threaded_arg) = pool(Par::Rayon(2));
        assert_eq!(seq, threaded);
        assert_eq!(seq_arg, threaded_arg);
        for b in [0, 30, 60] {
            let xb = &x[b * g.input_len()..(b + 1) * g.input_len()];
            let yb = &threaded[b * g.output_len()..(b + 1) * g.output_len()];
            assert_eq!(naive_pool(&g, xb, true), yb);
            let ab = &threaded_arg[b * g.output_len()..(b + 1) * g.output_len()];
            assert!(ab.iter().zip(yb).all(|(&a, &v)| xb[a as usize] == v));
        }
    }

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
                    maxpool2d_forward(&g, &x, &mut y, Some(&mut arg), batch, Par::Rayon(2));
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
        maxpool2d_forward(&g, &[1.0, 3.0, 3.0, 2.0], &mut y, Some(&mut arg), 1, Par::Seq);
        assert_eq!((y[0], arg[0]), (3.0, 1));
    }
}
