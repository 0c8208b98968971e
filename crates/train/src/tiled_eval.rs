//! Evaluation like `ticket infer`, for both engines of an MLP: the validation and test sets
//! are laid out once per run as tiles of [`TILE`] examples, each `[features][tile]`, and every
//! tile runs the whole network through the CSR kernels on one thread, its activations staying
//! in that core's cache; tiles are shared among the threads. Each example's logits are those
//! of the batched forward pass bit for bit (the SpMM kernel computes every example alone in
//! the same order).
//!
//! The dense engine evaluates this way too below [`SPARSE_EVAL_BELOW`] of the weights
//! ([`CsrCopy`]), so the evaluation of an IMP level costs in proportion to what it keeps.

use crate::engine::EVAL_BATCH;
use crate::network::{softmax_cross_entropy, LossStats};
use crate::sparse::PAR_MIN_WORK;
use rayon::prelude::*;
use ticket_core::{Dataset, LayerParams, Network, Par};
use ticket_infer::aligned::AlignedVec;
use ticket_infer::kernels::spmm;
use ticket_infer::model::TILE;
use ticket_infer::transpose::transpose;
use ticket_infer::{compress, Activation, CsrPattern, CsrRef};

/// Below this fraction of weights kept, the dense engine evaluates an MLP through a CSR copy.
/// Measured on LeNet-300-100, validation + test of Fashion-MNIST (15,000 examples), 2 threads,
/// AMD EPYC (Zen 4): the dense path takes 52-60 ms at any density, the CSR tiles 22 ms at
/// 21 %, 35-40 ms at 41 %, 46-51 ms at 64 % and 49 ms at 80 %; the margin is kept.
pub const SPARSE_EVAL_BELOW: f64 = 0.7;

/// One layer as evaluation reads it: CSR weights and bias (ReLU follows every layer but the
/// last).
pub struct EvalLayer<'a> {
    pub weights: CsrRef<'a, u32>,
    pub bias: &'a [f32],
}

/// The data sets evaluated so far, laid out in tiles; see the module documentation.
#[derive(Default)]
pub struct TiledEval {
    layouts: Vec<EvalLayout>,
}

impl TiledEval {
    /// Loss and hits of `layers` on all of `data`: on `par`'s threads, or on this one when a
    /// pass over [`EVAL_BATCH`] examples is below [`PAR_MIN_WORK`] multiply-adds.
    pub fn evaluate(&mut self, layers: &[EvalLayer], data: &Dataset, par: Par) -> LossStats {
        let nnz: usize = layers.iter().map(|l| l.weights.nnz()).sum();
        let small = nnz.saturating_mul(EVAL_BATCH.min(data.len())) < PAR_MIN_WORK;
        let threads = if small { 1 } else { par.threads() };
        let source = EvalLayout::source(data);
        let index = match self.layouts.iter().position(|l| l.source == source) {
            Some(i) => i,
            None => {
                self.layouts.push(EvalLayout::new(data));
                self.layouts.len() - 1
            }
        };
        let layout = &self.layouts[index];
        let features = data.features;
        let run = |buffers: &mut TileBuffers, tile: &std::ops::Range<usize>| {
            let x = &layout.x[tile.start * features..tile.end * features];
            eval_tile(layers, x, &data.labels[tile.clone()], buffers)
        };
        // Per-tile figures added in tile order, whatever thread computed them.
        let per_tile: Vec<LossStats> = if threads <= 1 {
            let mut buffers = TileBuffers::default();
            layout.tiles.iter().map(|t| run(&mut buffers, t)).collect()
        } else {
            layout
                .tiles
                .par_iter()
                .with_min_len(Par::Rayon(threads).min_len(layout.tiles.len()))
                .map_init(TileBuffers::default, run)
                .collect()
        };
        let mut total = LossStats::default();
        for stats in per_tile {
            total.add(stats);
        }
        total
    }

    /// How many data sets are laid out.
    pub fn layouts(&self) -> usize {
        self.layouts.len()
    }
}

/// A layer's kept weights (by its mask) as a CSR pattern and its values.
pub fn kept_csr(l: &LayerParams) -> (CsrPattern<u32>, Vec<f32>) {
    let (rows, cols) = (l.shape.rows, l.shape.cols);
    let (indptr, indices, values) = compress(&l.weight, &l.mask, rows, cols);
    let pattern =
        CsrPattern::new(rows, cols, indptr, indices).expect("compress builds rows in column order");
    (pattern, values)
}

/// A dense network's kept weights in CSR form, for the dense engine's evaluation: the
/// patterns come from the masks (fixed during a run), the values are copied from the dense
/// weights before each evaluation (a pass over the kept weights, against 31 x 15,000
/// examples of evaluation per IMP level).
pub struct CsrCopy {
    layers: Vec<(CsrPattern<u32>, Vec<f32>)>,
}

impl CsrCopy {
    pub fn new(net: &Network) -> Self {
        CsrCopy { layers: net.layers.iter().map(kept_csr).collect() }
    }

    /// The layers of `net` (the network this copy was made from, its masks unchanged) with
    /// its current weights.
    pub fn refresh<'a>(&'a mut self, net: &'a Network) -> Vec<EvalLayer<'a>> {
        for ((pattern, values), dense) in self.layers.iter_mut().zip(&net.layers) {
            let cols = pattern.cols();
            for (r, w) in pattern.indptr().windows(2).enumerate() {
                let (start, end) = (w[0] as usize, w[1] as usize);
                let row = &dense.weight[r * cols..(r + 1) * cols];
                for (v, &c) in values[start..end].iter_mut().zip(&pattern.indices()[start..end]) {
                    *v = row[c as usize];
                }
            }
        }
        self.layers
            .iter()
            .zip(&net.layers)
            .map(|((pattern, values), dense)| EvalLayer {
                weights: pattern.with_values(values),
                bias: &dense.bias,
            })
            .collect()
    }
}

/// A data set laid out for evaluation: its tiles of examples, each `[features][tile]`.
struct EvalLayout {
    /// Which data set this is: where its images and labels live, their lengths and a sample
    /// of its values (a data set is not changed while a run evaluates it).
    source: [usize; 5],
    /// Example ranges of the tiles; none holds a single example (batch 1 would sum in
    /// another order).
    tiles: Vec<std::ops::Range<usize>>,
    /// The tiles' inputs, one after the other, from a cache line (each tile starts on one:
    /// 784 x 32 floats): a 16-byte-aligned `Vec` made every AVX-512 load of the first layer
    /// straddle two lines, and evaluation 2x slower (LeNet-300-100 at 41 %, AMD EPYC Zen 4).
    x: AlignedVec,
}

impl EvalLayout {
    fn source(data: &Dataset) -> [usize; 5] {
        let step = (data.images.len() / 64).max(1);
        let sample = data
            .images
            .iter()
            .step_by(step)
            .fold(0usize, |h, v| h.rotate_left(5) ^ v.to_bits() as usize);
        let (images, labels) = (data.images.as_ptr() as usize, data.labels.as_ptr() as usize);
        [images, data.images.len(), labels, data.labels.len(), sample]
    }

    fn new(data: &Dataset) -> Self {
        let n = data.len();
        let mut tiles: Vec<_> = (0..n).step_by(TILE).map(|s| s..(s + TILE).min(n)).collect();
        if tiles.len() > 1 && tiles.last().is_some_and(|t| t.len() == 1) {
            tiles.pop();
            tiles.last_mut().expect("more than one tile").end = n;
        }
        let f = data.features;
        let mut x = AlignedVec::zeros(n * f);
        for t in &tiles {
            let images = &data.images[t.start * f..t.end * f];
            transpose(images, t.len(), f, &mut x[t.start * f..t.end * f]);
        }
        EvalLayout { source: EvalLayout::source(data), tiles, x }
    }
}

/// The activations of one tile's forward pass, per thread.
#[derive(Default)]
struct TileBuffers {
    ping_pong: [AlignedVec; 2],
    logits: Vec<f32>,
}

/// Loss and hits of one tile: `x` `[features][labels.len()]` through every layer on this
/// thread, the logits transposed back to `[example][class]` for the loss.
fn eval_tile(
    layers: &[EvalLayer],
    x: &[f32],
    labels: &[u8],
    buffers: &mut TileBuffers,
) -> LossStats {
    let n = labels.len();
    let last = layers.len() - 1;
    read_in_order(x);
    let [a, b] = &mut buffers.ping_pong;
    for (l, layer) in layers.iter().enumerate() {
        let rows = layer.weights.rows();
        let (input, output): (&[f32], &mut AlignedVec) = match l {
            0 => (x, &mut *a),
            _ if l % 2 == 1 => (&a[..layer.weights.cols() * n], &mut *b),
            _ => (&b[..layer.weights.cols() * n], &mut *a),
        };
        output.grow(rows * n);
        let act = if l < last { Activation::Relu } else { Activation::Identity };
        let out = &mut output[..rows * n];
        spmm(layer.weights, Some(layer.bias), input, out, n, act, Par::Seq);
    }
    let classes = layers[last].weights.rows();
    let out = if last.is_multiple_of(2) { &buffers.ping_pong[0] } else { &buffers.ping_pong[1] };
    buffers.logits.resize(classes * n, 0.0);
    transpose(&out[..classes * n], classes, n, &mut buffers.logits);
    softmax_cross_entropy(&buffers.logits, labels, classes, None)
}

/// Reads `x` once, a load per cache line, in order: the hardware prefetcher then streams it
/// from memory, where the first layer's scattered reads of its rows would each wait on a
/// miss. Halved the evaluation of LeNet-300-100 at 1.85 % (AMD EPYC Zen 4, 9.6 -> 4.3-5.0 ms
/// for 15,000 examples).
fn read_in_order(x: &[f32]) {
    let sum: f32 = x.iter().step_by(16).sum();
    std::hint::black_box(sum);
}
