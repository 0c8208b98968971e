//! The conv2d layer (PyTorch `nn.Conv2d` semantics, weight `[out, in, kh, kw]` seen as the
//! `[out, in*kh*kw]` matrix `W`), through im2col and the core `sgemm`, examples split over the
//! threads. Per example with patch matrix `C = im2col(x)` (`[in*kh*kw, out_h*out_w]`):
//! forward `Y = W C + b`; backward `dW = sum dY C^T`, `db = sum dY` over positions and
//! examples, `dX = col2im(W^T dY)`. Each thread sums its examples' weight gradients in its own
//! buffer and the buffers are added in a fixed order, so a run is bit-identical for a given
//! thread count.

use super::{Backward, Forward, LayerOp};
use rayon::prelude::*;
use ticket_core::conv::{col2im_add, conv2d_forward, patches, Conv2dGeometry, ConvScratch};
use ticket_core::sgemm::{sgemm, MatMut, MatRef};
use ticket_core::{Layer, Par};

pub struct Conv2d {
    g: Conv2dGeometry,
    scratch: ConvScratch,
    tasks: Vec<TaskGrads>,
}

/// One task's examples (input, output gradient, input gradient) and buffers.
type TaskWork<'a> =
    (((&'a [f32], &'a [f32]), Option<&'a mut [f32]>), (&'a mut Vec<f32>, &'a mut TaskGrads));

/// One thread's share of a backward pass.
#[derive(Clone)]
struct TaskGrads {
    /// `W^T dY` of one example, `[in*kh*kw, positions]`.
    d_cols: Vec<f32>,
    weight: Vec<f32>,
    bias: Vec<f32>,
}

impl Conv2d {
    pub fn new(layer: &Layer, input: &[usize]) -> Self {
        let g = Conv2dGeometry::new(layer, input).expect("the graph checked the conv shapes");
        Conv2d { g, scratch: ConvScratch::new(&g, 1), tasks: Vec::new() }
    }
}

impl LayerOp for Conv2d {
    fn forward(&mut self, pass: Forward<'_>) {
        let Forward { params, input, output, batch, par, .. } = pass;
        let p = params.expect("a conv2d layer has parameters");
        conv2d_forward(&self.g, (&p.weight, &p.bias), input, output, batch, par, &mut self.scratch);
    }

    fn backward(&mut self, pass: Backward<'_>) {
        let g = self.g;
        let p = pass.params.expect("a conv2d layer has parameters");
        let (k, positions, out) = (g.patch_len(), g.positions(), g.out_channels);
        let (in_len, out_len) = (g.input_len(), g.output_len());
        let tasks = g.tasks(pass.batch, pass.par);
        self.scratch.reserve(&g, tasks);
        while self.tasks.len() < tasks {
            self.tasks.push(TaskGrads {
                d_cols: vec![0.0; if g.is_pointwise() { 0 } else { k * positions }],
                weight: vec![0.0; out * k],
                bias: vec![0.0; out],
            });
        }
        let per_task = pass.batch.div_ceil(tasks).max(1);
        let want_weights = pass.grads.is_some();
        let weight = &p.weight;
        let run = |(((x, dy), dx), (col, t)): TaskWork<'_>| {
            t.weight.fill(0.0);
            t.bias.fill(0.0);
            let mut dx = dx;
            for (e, (x, dy)) in x.chunks_exact(in_len).zip(dy.chunks_exact(out_len)).enumerate() {
                if want_weights {
                    let cols = patches(&g, x, col);
                    sgemm(
                        MatMut::row_major(&mut t.weight, out, k),
                        MatRef::row_major(dy, out, positions),
                        MatRef::row_major(cols, k, positions).t(),
                        1.0,
                        Par::Seq,
                    );
                    for (b, row) in t.bias.iter_mut().zip(dy.chunks_exact(positions)) {
                        *b += row.iter().sum::<f32>();
                    }
                }
                if let Some(dx) = dx.as_deref_mut() {
                    let dx = &mut dx[e * in_len..(e + 1) * in_len];
                    let target = if g.is_pointwise() { &mut *dx } else { &mut t.d_cols[..] };
                    sgemm(
                        MatMut::row_major(target, k, positions),
                        MatRef::row_major(weight, out, k).t(),
                        MatRef::row_major(dy, out, positions),
                        0.0,
                        Par::Seq,
                    );
                    if !g.is_pointwise() {
                        dx.fill(0.0);
                        col2im_add(&g, &t.d_cols, dx);
                    }
                }
            }
        };
        let xs = pass.input.chunks(per_task * in_len);
        let dys = pass.d_output.chunks(per_task * out_len);
        let dxs: Box<dyn Iterator<Item = Option<&mut [f32]>> + Send> = match pass.d_input {
            Some(dx) => Box::new(dx.chunks_mut(per_task * in_len).map(Some)),
            None => Box::new(std::iter::repeat_with(|| None)),
        };
        let work =
            xs.zip(dys).zip(dxs).zip(self.scratch.cols.iter_mut().zip(self.tasks.iter_mut()));
        if tasks > 1 {
            work.collect::<Vec<_>>().into_par_iter().for_each(run);
        } else {
            work.for_each(run);
        }
        if let Some(grads) = pass.grads {
            let used = pass.batch.div_ceil(per_task);
            grads.weight.copy_from_slice(&self.tasks[0].weight);
            grads.bias.copy_from_slice(&self.tasks[0].bias);
            for t in &self.tasks[1..used] {
                grads.weight.iter_mut().zip(&t.weight).for_each(|(a, b)| *a += b);
                grads.bias.iter_mut().zip(&t.bias).for_each(|(a, b)| *a += b);
            }
        }
    }
}
