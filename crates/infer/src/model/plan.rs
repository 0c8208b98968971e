//! How a graph runs: the one place that matches on the layer kind. [`Plan::new`] turns the
//! graph's layers into steps once, when a model is built - a ReLU that directly follows a
//! linear or conv2d layer is fused into that layer's kernel, a flatten disappears (the
//! `[C][H][W][batch]` layout already is the `[features][batch]` one) - and [`Plan::run`]
//! executes them over two ping-pong buffers. A new layer kind is a new [`Step`], its arm in
//! the two matches below, and its kernel module under [`crate::kernels`].
//!
//! A conv2d layer also gets its taps prepared once for the blocked kernel ([`BlockedConv2d`]),
//! compressed ones decoded for it, and a 2x2 max-pool right after it is fused into its step.
//!
//! A linear layer may also get a column-ordered copy of its weight ([`ColumnCopy`]): at batch
//! 1 its step samples the input's zeros and, when skipping them may pay, builds the copy (the
//! first time only), lists the nonzero inputs and, when they meet few enough weights,
//! multiplies only those (ReLU outputs and raw pixels are often zero); otherwise it runs the
//! CSR product. Models that never see such inputs never hold the copy. Where a 16-lane gather
//! pays ([`SlicedRows::pays`]), the batch-1 row product goes through a copy in slices of 16
//! rows instead of the CSR rows ([`SlicedRows`], built on the first batch-1 call).
//!
//! A pass of many examples over compressed linear layers decodes each layer once per thread
//! when the decoded layers fit [`DECODED_PASS_BYTES`] ([`Plan::decode_pass`]), and its tiles
//! then run through the network one by one as with f32 layers (decoding a LeNet-300-100
//! layer costs about as much as running it over one tile of 32 examples). Larger ones, when
//! nothing but linear layers and ReLUs follows the image steps, run spans of
//! [`TILES_PER_SPAN`] tiles layer by layer instead: each chunk of a layer's rows is decoded
//! once for all those tiles.

use super::{SparseLayer, TILE};
use crate::aligned::AlignedVec;
use crate::kernels::coded_rows::CodedRows;
use crate::kernels::compressed::RowBuffer;
use crate::kernels::conv2d_blocked::{BlockedConv2d, POOL_2X2};
use crate::kernels::csc::ColumnCopy;
use crate::kernels::pool::{self, Pool};
use crate::kernels::sliced::SlicedRows;
use crate::kernels::{Activation, Image, TiledInput, Window};
use crate::timing::StepClock;
use std::sync::OnceLock;
use std::time::Instant;
use ticket_core::{Graph, Layer, Par};

/// One kernel call of the forward pass.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Step {
    /// SpMM of weighted layer `layer` (an index into the model's layers).
    Linear {
        layer: usize,
        act: Activation,
    },
    /// Direct sparse convolution of weighted layer `layer`; with `max_pool`, followed by a
    /// 2x2, stride-2 max-pool fused into it.
    Conv2d {
        layer: usize,
        input: Image,
        window: Window,
        act: Activation,
        max_pool: bool,
    },
    Pool2d {
        pool: Pool,
        input: Image,
        window: Window,
    },
    /// A ReLU that could not be fused, in place.
    Relu,
}

/// Tiles of [`TILE`] examples a thread runs layer by layer when the linear layers are
/// compressed and too large to decode per pass: 256 examples, so the decoding is paid once
/// per 256 examples while their activations (LeNet-300-100: 1.4 MB with the input) stay in
/// the last-level cache. 16 tiles were not measurably faster on LeNet-300-100 and hold twice
/// the memory.
pub(crate) const TILES_PER_SPAN: usize = 8;

/// Bytes of decoded compressed linear layers (a u32 column and an f32 value a nonzero) up to
/// which each thread of a pass decodes them all once: 1 MiB, half a second-level cache, so
/// that they stay there beside one tile's activations. On LeNet-300-100 (Intel Xeon, one
/// thread, batch 1024) spans of 8 and 32 tiles layer by layer ran 7 % slower than the f32
/// CSR file, as their activations left the cache; one decode and then tile by tile
/// 0.97-1.04x, by codec.
pub(crate) const DECODED_PASS_BYTES: usize = 1 << 20;

/// The steps of a graph and what they cost.
#[derive(Clone, Debug)]
pub(crate) struct Plan {
    /// Each step with the number of values it writes per example.
    steps: Vec<(Step, usize)>,
    /// Multiply-adds per example, roughly: what decides whether a batch is worth threads.
    work: usize,
    /// Kept weights times the positions each meets, per example (see
    /// `SparseModel::multiply_adds_per_example`).
    multiply_adds: usize,
    /// Whether a pass of many examples decodes the compressed linear layers first.
    decodes_per_pass: bool,
    /// Whether compressed linear layers and ReLUs alone follow the image steps, so that
    /// without decoding per pass a thread runs spans of tiles layer by layer.
    spans_layer_by_layer: bool,
    /// Per weighted layer, its blocked convolution when it is a conv2d the blocked kernel
    /// covers.
    blocked: Vec<Option<BlockedConv2d>>,
    /// Per weighted layer, room for the copies batch-1 products run from when it is a linear
    /// layer.
    batch1: Vec<Option<Batch1Copies>>,
}

/// The copies of a linear layer's weight that its batch-1 step may run from, each built the
/// first time it is chosen (the column-ordered one only for an uncompressed layer).
#[derive(Clone, Debug, Default)]
pub(crate) struct Batch1Copies {
    columns: OnceLock<ColumnCopy>,
    sliced: OnceLock<SlicedRows>,
    coded_rows: OnceLock<CodedRows>,
}

/// The buffers a forward pass works in: two ping-pong activation buffers and the padded
/// input of a convolution. They only grow, so that repeated calls neither allocate nor clear.
#[derive(Default)]
pub(crate) struct Buffers {
    ping_pong: [AlignedVec; 2],
    padded: AlignedVec,
    /// The nonzero inputs of a batch-1 linear step.
    nonzero: Vec<u32>,
    /// The sums of a batch-1 linear step's slices of rows, before they go to their rows.
    slice_sums: Vec<f32>,
    /// The paths batch-1 linear steps may take.
    pub(crate) batch1: Batch1Paths,
    /// The compressed linear layers decoded for the pass under way, when it decodes them.
    decoded: DecodedLayers,
}

/// A thread's compressed linear layers decoded for one pass of many examples.
#[derive(Default)]
struct DecodedLayers {
    /// Per weighted layer, its decoded rows (empty for the others).
    layers: Vec<RowBuffer>,
    /// Whether `layers` holds the current pass's model: buffers outlive a pass and serve
    /// any model.
    current: bool,
}

/// Which products a batch-1 linear step may choose among.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) enum Batch1Paths {
    /// Skipping zero inputs when it pays, else the row product, sliced where that pays.
    #[default]
    All,
    /// The row product, sliced where that pays.
    Rows,
    /// The CSR row product.
    CsrRows,
}

impl Plan {
    /// The steps of `graph`, whose weighted layers are `layers` in order.
    pub(crate) fn new(graph: &Graph, layers: &[SparseLayer]) -> Plan {
        let mut steps: Vec<(Step, usize)> = Vec::new();
        let mut blocked = Vec::with_capacity(layers.len());
        let mut batch1 = Vec::with_capacity(layers.len());
        let mut weighted = 0;
        let mut work = 0usize;
        let mut multiply_adds = 0usize;
        for (i, layer) in graph.layers().iter().enumerate() {
            let image = || Image::from_dims(graph.input_shape_of(i)).expect("graph checked: image");
            let outputs: usize = graph.output_shape(i).iter().product();
            let step = match *layer {
                Layer::Linear { .. } => {
                    work = work.saturating_add(layers[weighted].nnz());
                    multiply_adds = multiply_adds.saturating_add(layers[weighted].nnz());
                    blocked.push(None);
                    batch1.push(Some(Batch1Copies::default()));
                    weighted += 1;
                    Step::Linear { layer: weighted - 1, act: Activation::Identity }
                }
                Layer::Conv2d { kernel, stride, padding, .. } => {
                    let positions: usize = graph.output_shape(i)[1..].iter().product();
                    let taps = layers[weighted].nnz().saturating_mul(positions);
                    work = work.saturating_add(taps);
                    multiply_adds = multiply_adds.saturating_add(taps);
                    let window = Window { kernel, stride, padding };
                    blocked.push(layers[weighted].blocked_conv2d(image(), window));
                    batch1.push(None);
                    weighted += 1;
                    Step::Conv2d {
                        layer: weighted - 1,
                        input: image(),
                        window,
                        act: Activation::Identity,
                        max_pool: false,
                    }
                }
                Layer::Maxpool2d { kernel, stride } | Layer::Avgpool2d { kernel, stride } => {
                    let pool = if matches!(layer, Layer::Maxpool2d { .. }) {
                        Pool::Max
                    } else {
                        Pool::Avg
                    };
                    work = work.saturating_add(outputs * kernel[0] * kernel[1]);
                    let window =
                        Window { kernel, stride: stride.unwrap_or(kernel), padding: [0, 0] };
                    if let Some((Step::Conv2d { layer, max_pool: fused @ false, .. }, n)) =
                        steps.last_mut()
                    {
                        let poolable = blocked[*layer].as_ref().is_some_and(|c| c.can_pool());
                        if pool == Pool::Max && window == POOL_2X2 && poolable {
                            (*fused, *n) = (true, outputs);
                            continue;
                        }
                    }
                    Step::Pool2d { pool, input: image(), window }
                }
                Layer::Relu => match steps.last_mut() {
                    Some((Step::Linear { act, .. } | Step::Conv2d { act, .. }, _)) => {
                        *act = Activation::Relu;
                        continue;
                    }
                    Some((Step::Relu, _)) => continue,
                    _ => Step::Relu,
                },
                Layer::Flatten => continue,
            };
            steps.push((step, outputs));
        }
        let decoded = decoded_linear_bytes(&steps, layers);
        let compressed = decoded > 0;
        let decodes_per_pass = compressed && decoded <= DECODED_PASS_BYTES;
        let rest = &steps[image_steps(&steps)..];
        let linear_only = rest.iter().all(|(s, _)| matches!(s, Step::Linear { .. } | Step::Relu));
        let spans_layer_by_layer = linear_only && compressed;
        Plan { steps, work, multiply_adds, blocked, batch1, decodes_per_pass, spans_layer_by_layer }
    }

    /// Decodes the compressed linear layers per pass or not, whatever their size (for tests
    /// of both ways on small models).
    #[cfg(test)]
    pub(crate) fn set_decoding_per_pass(&mut self, decoding: bool) {
        self.decodes_per_pass = decoding;
    }

    /// Whether a pass of many examples decodes the compressed linear layers first.
    pub(crate) fn decodes_per_pass(&self) -> bool {
        self.decodes_per_pass
    }

    /// Bytes of the decoded compressed linear layers a thread holds in a pass that decodes
    /// them first.
    pub(crate) fn decoded_pass_bytes(&self, layers: &[SparseLayer]) -> usize {
        if !self.decodes_per_pass {
            return 0;
        }
        decoded_linear_bytes(&self.steps, layers)
    }

    /// Before a thread's share of a pass of many examples: decodes the compressed linear
    /// layers into `buffers` when this plan decodes per pass (each layer's time goes to its
    /// step on `clock`), else marks `buffers` as holding none, so that the layers decode
    /// their rows as they run.
    pub(crate) fn decode_pass(
        &self,
        layers: &[SparseLayer],
        buffers: &mut Buffers,
        clock: Option<&StepClock>,
    ) {
        let decoded = &mut buffers.decoded;
        decoded.current = self.decodes_per_pass;
        if !decoded.current {
            return;
        }
        decoded.layers.resize_with(layers.len(), RowBuffer::default);
        for (index, (step, _)) in self.steps.iter().enumerate() {
            let Step::Linear { layer, .. } = *step else { continue };
            let Some(c) = &layers[layer].compressed else { continue };
            let started = Instant::now();
            c.decode_all(&layers[layer].indptr, &mut decoded.layers[layer]);
            if let Some(clock) = clock {
                clock.add(index, started.elapsed());
            }
        }
    }

    /// Marks `buffers` as holding no decoded layers for the pass about to run.
    pub(crate) fn decode_nothing(buffers: &mut Buffers) {
        buffers.decoded.current = false;
    }

    /// Examples a thread runs through the steps at once, at most.
    pub(crate) fn span(&self) -> usize {
        if self.spans_layer_by_layer && !self.decodes_per_pass {
            TILE * TILES_PER_SPAN
        } else {
            TILE
        }
    }

    /// Whether the first step is a linear layer (which can take row-major input).
    pub(crate) fn starts_with_linear(&self) -> bool {
        matches!(self.steps.first(), Some((Step::Linear { .. }, _)))
    }

    /// Bytes of the column-ordered copies.
    pub(crate) fn conv_tap_bytes(&self) -> usize {
        self.blocked.iter().flatten().map(BlockedConv2d::bytes).sum()
    }

    /// Bytes of padded conv inputs a pass holds per span of examples in flight, and at
    /// batch 1 on `threads` threads: the pass's buffer, grown to the largest layer's, plus
    /// each thread's own for the layers that split over the threads.
    pub(crate) fn padded_bytes(&self, threads: usize) -> (usize, usize) {
        let layers = self.blocked.iter().flatten().map(|c| c.padded_bytes(threads));
        let (mut shared, mut own) = (0, 0);
        for (bytes, splits) in layers {
            shared = shared.max(bytes);
            if splits {
                own = own.max(bytes * threads);
            }
        }
        (shared, shared + own)
    }

    pub(crate) fn column_copy_bytes(&self) -> usize {
        self.batch1.iter().flatten().filter_map(|c| c.columns.get()).map(ColumnCopy::bytes).sum()
    }

    pub(crate) fn sliced_copy_bytes(&self) -> usize {
        self.batch1.iter().flatten().filter_map(|c| c.sliced.get()).map(SlicedRows::bytes).sum()
    }

    pub(crate) fn coded_rows_copy_bytes(&self) -> usize {
        let copies = self.batch1.iter().flatten().filter_map(|c| c.coded_rows.get());
        copies.map(CodedRows::bytes).sum()
    }

    pub(crate) fn work_per_example(&self) -> usize {
        self.work
    }

    pub(crate) fn multiply_adds_per_example(&self) -> usize {
        self.multiply_adds
    }

    /// What each step is, in order: the layer name of a linear or conv2d step (with the ReLU
    /// fused into it), else the op.
    pub(crate) fn step_names(&self, layers: &[SparseLayer]) -> Vec<String> {
        let name = |step: &Step| match *step {
            Step::Conv2d { layer, max_pool: true, .. } => {
                format!("{}+maxpool2d", layers[layer].name)
            }
            Step::Linear { layer, .. } | Step::Conv2d { layer, .. } => layers[layer].name.clone(),
            Step::Pool2d { pool: Pool::Max, .. } => "maxpool2d".into(),
            Step::Pool2d { pool: Pool::Avg, .. } => "avgpool2d".into(),
            Step::Relu => "relu".into(),
        };
        self.steps.iter().map(|(step, _)| name(step)).collect()
    }

    /// How many leading steps work on images (conv2d, pooling and the ReLUs between them, up
    /// to the first linear layer); 0 when the graph does not start with a convolution or
    /// pooling. A batch runs these one example at a time (see [`Plan::run`]).
    pub(crate) fn image_steps(&self) -> usize {
        image_steps(&self.steps)
    }

    /// Values per example that step `step` writes (the input features before step 0).
    pub(crate) fn outputs_before(&self, step: usize, inputs: usize) -> usize {
        match step {
            0 => inputs,
            s => self.steps[..s].iter().rev().map(|&(_, n)| n).next().unwrap_or(inputs),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.steps.len()
    }

    /// The steps `range` of the forward pass of `t` examples from their input `input`
    /// (`[features][t]` in tiles of [`TILE`], see [`crate::kernels::tiles`]; or, with a
    /// scratch buffer beside it, row-major `[t][features]` for a first step that is linear,
    /// which transposes each tile into the buffer as it reaches it); returns their output (the
    /// logits after the last step, `[classes][t]`, tiled) in one of `buffers`. More than a
    /// tile runs only through linear steps and ReLUs (see [`Plan::span`]). A layer may split its work over `par`'s threads;
    /// with a `clock`, each step's time is added to it. The image steps
    /// run at `t = 1` in a batch too: one image (CHW) keeps a convolution's input and output
    /// in the first-level cache (LeNet-5's conv2 reads 11 KB per example, 360 KB for 32
    /// interleaved ones), which ran conv2 about 1.4 times faster than 32 interleaved examples.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn run<'a>(
        &self,
        range: std::ops::Range<usize>,
        layers: &[SparseLayer],
        (input, mut row_major): (&'a [f32], Option<&mut AlignedVec>),
        t: usize,
        buffers: &'a mut Buffers,
        par: Par,
        clock: Option<&StepClock>,
    ) -> &'a [f32] {
        let Buffers { ping_pong: [a, b], padded, nonzero, slice_sums, batch1: paths, decoded } =
            buffers;
        // Where the current activations are: None = `input`, Some(false) = a, Some(true) = b.
        let mut at: Option<bool> = None;
        let mut len = input.len();
        for (index, (step, outputs)) in
            self.steps.iter().enumerate().take(range.end).skip(range.start)
        {
            let started = clock.map(|_| Instant::now());
            debug_assert!(
                row_major.is_none() || matches!(step, Step::Linear { .. }),
                "a row-major input goes to a linear step"
            );
            debug_assert!(
                t <= TILE || matches!(step, Step::Linear { .. } | Step::Relu),
                "only linear steps and ReLUs run over more than a tile"
            );
            if let Step::Relu = step {
                if at.is_none() {
                    a.grow(len);
                    a[..len].copy_from_slice(input);
                    at = Some(false);
                }
                let current = if at == Some(true) { &mut b[..len] } else { &mut a[..len] };
                Activation::Relu.apply(current);
                if let (Some(clock), Some(started)) = (clock, started) {
                    clock.add(index, started.elapsed());
                }
                continue;
            }
            let (src, dst): (&[f32], &mut AlignedVec) = match at {
                None => (input, &mut *a),
                Some(false) => (&a[..len], &mut *b),
                Some(true) => (&b[..len], &mut *a),
            };
            let n = outputs * t;
            dst.grow(n);
            let dst = &mut dst[..n];
            match *step {
                Step::Linear { layer, act } => match (&self.batch1[layer], t) {
                    (Some(copies), 1) if *paths != Batch1Paths::CsrRows => {
                        let skip = (*paths == Batch1Paths::All).then_some(&mut *nonzero);
                        let scratch = (skip, &mut *slice_sums);
                        linear_batch1(&layers[layer], copies, (src, dst), act, par, scratch)
                    }
                    _ => {
                        let src = match row_major.take() {
                            Some(scratch) => TiledInput::RowMajor { x: src, scratch },
                            None => TiledInput::Tiled(src),
                        };
                        let decoded = match (decoded.current, &layers[layer].compressed) {
                            (true, Some(_)) => Some(&decoded.layers[layer]),
                            _ => None,
                        };
                        layers[layer].linear(src, dst, (t, TILE), act, par, decoded)
                    }
                },
                Step::Conv2d { layer, input, window, act, max_pool } => {
                    match &self.blocked[layer] {
                        // Image steps run one example at a time, so a fused pool has t = 1.
                        Some(conv) => conv.run((src, dst), t, (act, max_pool), padded, par),
                        None => layers[layer].conv2d(input, window, src, dst, t, act),
                    }
                }
                Step::Pool2d { pool, input, window } => {
                    pool::pool2d_par(pool, input, window, (src, dst), t, par)
                }
                Step::Relu => unreachable!("handled in place above"),
            }
            at = Some(at == Some(false));
            len = n;
            if let (Some(clock), Some(started)) = (clock, started) {
                clock.add(index, started.elapsed());
            }
        }
        match at {
            None => input,
            Some(false) => &a[..len],
            Some(true) => &b[..len],
        }
    }
}

/// Bytes of the compressed linear layers of `steps` decoded whole (0 when none is
/// compressed).
fn decoded_linear_bytes(steps: &[(Step, usize)], layers: &[SparseLayer]) -> usize {
    (steps.iter())
        .filter_map(|(s, _)| match s {
            Step::Linear { layer, .. } => layers[*layer].decoded_bytes(),
            _ => None,
        })
        .sum()
}

/// How many of `steps` run one example at a time: the convolutions, pools and ReLUs before
/// the first linear step when there is a convolution or pool among them, else none.
fn image_steps(steps: &[(Step, usize)]) -> usize {
    let prefix = steps.iter().take_while(|(s, _)| !matches!(s, Step::Linear { .. }));
    let steps: Vec<_> = prefix.collect();
    if steps.iter().any(|(s, _)| matches!(s, Step::Conv2d { .. } | Step::Pool2d { .. })) {
        steps.len()
    } else {
        0
    }
}

/// One example through linear layer `layer`: with `skip` (the list to fill with the nonzero
/// inputs), the column-ordered product over the nonzero inputs when it meets few enough
/// weights to beat the row product; else the row product, split over `par`'s threads when
/// the layer is large enough: the sliced one where it pays (its slices' sums in
/// `slice_sums`), else for a compressed layer the one over its packed-entry copy, else the
/// CSR one. Each copy is built the first time it is chosen.
fn linear_batch1(
    layer: &SparseLayer,
    copies: &Batch1Copies,
    (x, y): (&[f32], &mut [f32]),
    act: Activation,
    par: Par,
    (skip, slice_sums): (Option<&mut Vec<u32>>, &mut Vec<f32>),
) {
    let csr_work = layer.nnz() + layer.shape.rows;
    let csr_threads = if csr_work >= crate::kernels::PAR_MIN_WORK { par.threads() } else { 1 };
    // Compressed layers have no column-ordered copy.
    let skip = skip.filter(|_| layer.compressed.is_none());
    if let Some(nonzero) = skip.filter(|_| ColumnCopy::may_pay(layer.nnz(), x, csr_threads)) {
        let copy = copies.columns.get_or_init(|| layer.column_copy().expect("uncompressed"));
        if copy.pays(copy.nonzero_columns(x, nonzero), csr_threads) {
            return copy.spmv(Some(&layer.bias), x, nonzero, y, act);
        }
    }
    if layer.shape.cols <= SlicedRows::MAX_COLS && SlicedRows::pays() {
        let sliced = copies.sliced.get_or_init(|| layer.sliced_copy());
        return sliced.spmv(Some(&layer.bias), x, y, act, (csr_threads, slice_sums));
    }
    if layer.compressed.is_some() && layer.shape.cols <= CodedRows::MAX_COLS && CodedRows::pays() {
        let copy = copies.coded_rows.get_or_init(|| layer.coded_rows_copy().expect("compressed"));
        return copy.spmv(Some(&layer.bias), x, y, act, csr_threads);
    }
    layer.linear(TiledInput::Tiled(x), y, (1, TILE), act, par, None);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SparseModel;
    use ticket_core::Network;

    fn steps(graph: &Graph) -> Vec<Step> {
        let model = SparseModel::from_net(&Network::zeros(graph));
        model.plan.steps.iter().map(|(s, _)| s.clone()).collect()
    }

    #[test]
    fn relus_fuse_into_the_layer_before_and_flatten_vanishes() {
        let relu = Activation::Relu;
        let mlp = steps(&"8-4-3-2".parse().unwrap());
        assert_eq!(
            mlp,
            [
                Step::Linear { layer: 0, act: relu },
                Step::Linear { layer: 1, act: relu },
                Step::Linear { layer: 2, act: Activation::Identity },
            ]
        );
        let graph = Graph::from_json(
            r#"{"input":[1,4,4],"layers":[{"op":"relu"},
            {"op":"conv2d","name":"c","in":1,"out":2,"kernel":[3,3],"padding":[1,1]},
            {"op":"relu"},{"op":"relu"},{"op":"avgpool2d","kernel":[2,2]},{"op":"relu"},
            {"op":"flatten"},{"op":"linear","name":"fc","in":8,"out":2}]}"#,
        )
        .unwrap();
        let input = Image { channels: 1, height: 4, width: 4 };
        let pooled = Image { channels: 2, height: 4, width: 4 };
        assert_eq!(
            steps(&graph),
            [
                Step::Relu,
                Step::Conv2d {
                    layer: 0,
                    input,
                    window: Window { kernel: [3, 3], stride: [1, 1], padding: [1, 1] },
                    act: relu,
                    max_pool: false,
                },
                Step::Pool2d {
                    pool: Pool::Avg,
                    input: pooled,
                    window: Window { kernel: [2, 2], stride: [2, 2], padding: [0, 0] },
                },
                Step::Relu,
                Step::Linear { layer: 1, act: Activation::Identity },
            ]
        );
    }

    /// Batch 1 on inputs with zeros (some columns skipped) against the CSR-only path and the
    /// batched path (CSR, another summation order) on the same examples: equal within the
    /// rounding of reordered sums (see `kernels::csc`), whatever the fraction of zeros.
    #[test]
    fn batch_one_skipping_zeros_matches_the_csr_paths() {
        use crate::fixture::{random_model, reference_logits, Random};
        let graph: Graph = "60-40-30-5".parse().unwrap();
        let parts = random_model(&graph, &[0.2, 0.3, 1.0], 9);
        let model = SparseModel::from_net(&crate::fixture::net_of(&graph, &parts));
        assert_eq!(model.column_copy_bytes(), 0, "no copy before an input with zeros");
        let mut rng = Random::new(4);
        for zeros in [0.0, 0.5, 0.95, 1.0] {
            let x: Vec<f32> = (0..8 * 60)
                .map(|_| if rng.unit() < zeros { 0.0 } else { rng.uniform(-1.0, 1.0) })
                .collect();
            let batched = model.logits(&x, 8, Par::Seq).unwrap();
            let (mut skipping, mut csr) =
                (crate::Scratch::default(), crate::Scratch::without_zero_skipping());
            for (b, example) in x.chunks_exact(60).enumerate() {
                let mut one = [0.0; 5];
                model.logits_into(example, 1, &mut one, &mut skipping, Par::Seq).unwrap();
                let mut two = [0.0; 5];
                model.logits_into(example, 1, &mut two, &mut csr, Par::Seq).unwrap();
                let want = reference_logits(&parts, example);
                crate::fixture::assert_logits_close(&one, &want, "zero-skipping batch 1");
                crate::fixture::assert_logits_close(&two, &want, "csr batch 1");
                for (o, w) in one.iter().zip(&batched[b * 5..(b + 1) * 5]) {
                    assert!((o - w).abs() <= 1e-5 * (1.0 + w.abs()), "{zeros}: {o} vs {w}");
                }
            }
        }
        let first = &parts[0];
        assert!(model.column_copy_bytes() >= 4 * (first.cols + 1 + 2 * first.nnz()));
    }

    /// A 2x2 max-pool right after a conv (its ReLU between them or not) joins the conv's
    /// step; one that overlaps, is an average or meets an odd size stays.
    #[test]
    fn max_pools_fuse_into_the_conv_before() {
        let fused = |conv: &str, pool: &str| {
            let graph = Graph::from_json(&format!(
                r#"{{"input":[1,6,6],"layers":[{conv},{{"op":"relu"}},{pool},{{"op":"flatten"}}]}}"#
            ))
            .unwrap();
            let steps = steps(&graph);
            let names = SparseModel::from_net(&Network::zeros(&graph)).step_names();
            match steps.as_slice() {
                [Step::Conv2d { max_pool: true, act: Activation::Relu, .. }] => {
                    assert_eq!(names, ["c+maxpool2d", "transpose"]);
                    true
                }
                [Step::Conv2d { max_pool: false, .. }, Step::Pool2d { .. }] => false,
                other => panic!("unexpected steps {other:?}"),
            }
        };
        let conv = r#"{"op":"conv2d","name":"c","in":1,"out":3,"kernel":[3,3]}"#;
        let max2 = r#"{"op":"maxpool2d","kernel":[2,2]}"#;
        assert!(fused(conv, max2));
        assert!(!fused(conv, r#"{"op":"maxpool2d","kernel":[2,2],"stride":[1,1]}"#));
        assert!(!fused(conv, r#"{"op":"avgpool2d","kernel":[2,2]}"#));
        let odd = r#"{"op":"conv2d","name":"c","in":1,"out":3,"kernel":[2,2]}"#;
        assert!(!fused(odd, r#"{"op":"maxpool2d","kernel":[1,1]}"#));
        assert!(!fused(odd, max2), "a 5x5 output");
        let strided = r#"{"op":"conv2d","name":"c","in":1,"out":3,"kernel":[2,2],"stride":[2,2]}"#;
        assert!(!fused(strided, r#"{"op":"maxpool2d","kernel":[1,1]}"#));
    }
}
