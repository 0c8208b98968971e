//! A sparse model: one CSR matrix per weighted layer (linear or conv2d) of its graph, and the
//! forward pass over the sparse kernels, step by step as the `plan` module lays it out.
//!
//! Inputs and logits are row-major, `[batch][features]` and `[batch][classes]`, as data sets
//! and files hold them (an image example is its `[C, H, W]` values in C order); inside,
//! activations are `[features][batch]`, images `[C][H][W][batch]` (see [`crate::kernels`]).
//! A batch of one needs no transposition at all. Batches are cut into tiles of at most
//! [`TILE`] examples, at least one per thread, and each tile runs the whole network on one
//! thread: its activations stay in that core's cache and no thread waits for another between
//! layers. Small products (batch 1 of LeNet) stay on the calling thread: handing work to
//! another thread costs more than it saves. A thread's share of a batch decodes compressed
//! linear layers once for all its tiles, or for larger models runs spans of several tiles
//! layer by layer, each chunk of a layer's rows decoded once for all of them (see `plan`).
//! Within a tile, the convolutions and pools at the start of an image network run one
//! example at a time (see `plan`), and each example's result becomes a column of the
//! `[features][batch]` input of the linear layers.
//!
//! ```
//! use ticket_core::{Graph, Network, Par};
//! use ticket_infer::SparseModel;
//! let graph: Graph = "3-2-2".parse().unwrap();
//! let mut net = Network::zeros(&graph);
//! net.layers[0].weight = vec![1.0, 0.0, 0.0, 0.0, 0.0, 1.0];
//! net.layers[0].mask = vec![1, 0, 0, 0, 0, 1];
//! net.layers[1].weight = vec![1.0, 0.0, 0.0, 2.0];
//! net.layers[1].mask = vec![1, 0, 0, 1];
//! let model = SparseModel::from_net(&net);
//! assert_eq!(model.nnz(), 4);
//! assert_eq!(model.logits(&[1.0, 5.0, 3.0], 1, Par::Seq).unwrap(), [1.0, 6.0]);
//! ```

mod footprint;
mod plan;

pub use footprint::peak_rss_bytes;

use crate::aligned::AlignedVec;
use crate::csr::{compress, ColIndex, CsrRef};
use crate::kernels::coded_rows::CodedRows;
use crate::kernels::compressed::{CompressedWeights, RowBuffer};
use crate::kernels::conv2d::Conv2d;
use crate::kernels::conv2d_blocked::BlockedConv2d;
use crate::kernels::csc::ColumnCopy;
use crate::kernels::sliced::SlicedRows;
use crate::kernels::{self, Activation, Image, Isa, TiledInput, Window};
use crate::slab::Slab;
use crate::timing::StepClock;
use crate::transpose::transpose;
use crate::{Error, Result};
use plan::Plan;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use ticket_core::csr_format::{self, IndexCodecs, ValueCodec, ValueCodecs, ValueDtype};
use ticket_core::network::argmax;
use ticket_core::{Dataset, Graph, LayerParams, LayerShape, Network, Par};

/// Examples per tile of a batched forward pass. The first LeNet layer's tile input,
/// 784 x 32 floats (100 KB), stays in a core's L2 cache; on Zen 3, 32 ran the LeNet forward
/// pass 7 % faster than 64 and 48.
pub const TILE: usize = 32;
/// Examples per forward pass when measuring accuracy; bounds the memory of evaluation.
const EVAL_CHUNK: usize = 4096;
/// Kept multiply-adds per example from which a batch-1 pass called from outside the pool
/// moves onto a pool worker ([`ticket_core::awake_pool`]): the caller then sleeps once per
/// pass instead of once per split layer.
const MIN_WORK_TO_ENTER_POOL: usize = 1 << 19;

/// Column indices of one layer, in the width the file stores them.
pub(crate) enum Indices {
    U16(Slab<u16>),
    U32(Slab<u32>),
}

/// One weighted layer: a `[rows, cols]` CSR weight (a conv2d row flattens `[in, kh, kw]`)
/// and a dense bias.
pub struct SparseLayer {
    pub(crate) name: String,
    pub(crate) shape: LayerShape,
    pub(crate) indptr: Slab<u32>,
    pub(crate) indices: Indices,
    pub(crate) values: Slab<f32>,
    pub(crate) bias: Slab<f32>,
    /// Set for a layer stored with a compressed codec (then `indices` and `values` are
    /// empty and the kernels decode this instead).
    pub(crate) compressed: Option<CompressedWeights>,
}

/// Calls `$body` with `$csr` bound to the layer's weight as a `CsrRef` of its index width.
macro_rules! with_csr {
    ($layer:expr, $csr:ident => $body:expr) => {{
        let l = $layer;
        match &l.indices {
            Indices::U16(i) => {
                let $csr =
                    CsrRef::new_prechecked(l.shape.rows, l.shape.cols, &l.indptr, i, &l.values);
                $body
            }
            Indices::U32(i) => {
                let $csr =
                    CsrRef::new_prechecked(l.shape.rows, l.shape.cols, &l.indptr, i, &l.values);
                $body
            }
        }
    }};
}

impl SparseLayer {
    /// Builds a layer from parts whose structure has been checked with
    /// [`crate::csr::check_structure`].
    pub(crate) fn new(
        name: String,
        shape: LayerShape,
        indptr: Slab<u32>,
        indices: Indices,
        values: Slab<f32>,
        bias: Slab<f32>,
    ) -> Self {
        SparseLayer { name, shape, indptr, indices, values, bias, compressed: None }
    }

    /// A layer stored with a compressed codec, validated by the loader.
    pub(crate) fn compressed(
        name: String,
        shape: LayerShape,
        indptr: Slab<u32>,
        weights: CompressedWeights,
        bias: Slab<f32>,
    ) -> Self {
        let empty = Indices::U32(Vec::new().into());
        let mut layer = SparseLayer::new(name, shape, indptr, empty, Vec::new().into(), bias);
        layer.compressed = Some(weights);
        layer
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn shape(&self) -> LayerShape {
        self.shape
    }

    pub fn nnz(&self) -> usize {
        self.indptr.last().map_or(0, |&n| n as usize)
    }

    pub fn bias(&self) -> &[f32] {
        &self.bias
    }

    /// The index width as stored: 2 (`u16`) or 4 (`u32`) bytes, 0 for gap-coded indices.
    pub fn index_bytes(&self) -> usize {
        if let Some(c) = &self.compressed {
            return c.index_bytes();
        }
        match self.indices {
            Indices::U16(_) => 2,
            Indices::U32(_) => 4,
        }
    }

    /// Bytes of the arrays the forward pass reads: indptr, indices, values, bias.
    pub fn weight_bytes(&self) -> usize {
        let indices = match &self.indices {
            Indices::U16(i) => i.bytes(),
            Indices::U32(i) => i.bytes(),
        };
        let compressed = self.compressed.as_ref().map_or(0, CompressedWeights::bytes);
        self.indptr.bytes() + indices + self.values.bytes() + self.bias.bytes() + compressed
    }

    /// How many of those bytes are borrowed from the mapped file rather than copied.
    pub fn mapped_bytes(&self) -> usize {
        let mapped = |is: bool, n: usize| if is { n } else { 0 };
        let indices = match &self.indices {
            Indices::U16(i) => mapped(i.is_mapped(), i.bytes()),
            Indices::U32(i) => mapped(i.is_mapped(), i.bytes()),
        };
        mapped(self.indptr.is_mapped(), self.indptr.bytes())
            + indices
            + mapped(self.values.is_mapped(), self.values.bytes())
            + mapped(self.bias.is_mapped(), self.bias.bytes())
            + self.compressed.as_ref().map_or(0, CompressedWeights::mapped_bytes)
    }

    /// Bytes of this layer decoded whole when it is compressed (see `plan`), else `None`.
    fn decoded_bytes(&self) -> Option<usize> {
        self.compressed.as_ref().map(|c| c.decoded_bytes(&self.indptr))
    }

    /// `y = act(W x + b)` for `x` `[cols][batch]`, `y` `[rows][batch]` laid out in tiles of
    /// `tile` examples ([`kernels::tiles`]), rows split over `par`'s threads when the product
    /// is large enough. A compressed layer runs as f32 from `decoded`, its rows decoded for
    /// the pass, when given; else a batch of one tile splits its rows over the threads, each
    /// decoding its own, and a larger one runs on this thread, each chunk of rows decoded
    /// once for all the tiles.
    fn linear(
        &self,
        mut x: TiledInput,
        y: &mut [f32],
        (batch, tile): (usize, usize),
        act: Activation,
        par: Par,
        decoded: Option<&RowBuffer>,
    ) {
        let (rows, cols) = (self.shape.rows, self.shape.cols);
        if let Some(decoded) = decoded {
            return spmm_tiles(decoded.csr(cols), &self.bias, (x, y), (batch, tile), act, par);
        }
        if let Some(c) = &self.compressed {
            let isa = Isa::detect();
            // One tile (batch 1) of a large layer: its rows over the threads.
            let work = (self.nnz() + rows).saturating_mul(batch);
            if batch <= tile && par.threads() > 1 && work >= kernels::PAR_MIN_WORK {
                let x = x.tile(0..batch, cols);
                let threads = par.threads();
                return c.spmm_split(isa, &self.indptr, &self.bias, x, y, batch, act, threads);
            }
            return c.spmm_with(isa, &self.indptr, &self.bias, x, y, (batch, tile), act);
        }
        with_csr!(self, w => spmm_tiles(w, &self.bias, (x, y), (batch, tile), act, par))
    }

    /// `y = act(conv(x, W) + b)` for images `x` of shape `input`, on this thread.
    fn conv2d(
        &self,
        input: Image,
        window: Window,
        x: &[f32],
        y: &mut [f32],
        batch: usize,
        act: Activation,
    ) {
        if let Some(c) = &self.compressed {
            return c.conv2d(&self.indptr, &self.bias, input, window, x, y, batch, act);
        }
        with_csr!(self, w => Conv2d::new(w, &self.bias, input, window).run(x, y, batch, act))
    }

    /// This conv2d layer prepared for the blocked kernel, when that kernel covers it. The
    /// kernel runs from taps (value and input offset) made once here whatever the file's
    /// codec, so a compressed conv layer is decoded for them: conv weights are a small share
    /// of a model's, and decoding each row for every output pixel costs far more.
    fn blocked_conv2d(&self, input: Image, window: Window) -> Option<BlockedConv2d> {
        let Some(c) = &self.compressed else {
            return with_csr!(self, w => BlockedConv2d::new(w, &self.bias, input, window));
        };
        let (rows, cols) = (self.shape.rows, self.shape.cols);
        let (indices, values) = c.decoded(&self.indptr);
        let w = CsrRef::new(rows, cols, &self.indptr, &indices, &values).ok()?;
        BlockedConv2d::new(w, &self.bias, input, window)
    }

    /// The column-ordered copy of the weight for the zero-skipping batch-1 product (not for
    /// a compressed layer, whose rows are decoded as they run).
    fn column_copy(&self) -> Option<ColumnCopy> {
        if self.compressed.is_some() {
            return None;
        }
        with_csr!(self, w => Some(ColumnCopy::new(w)))
    }

    /// The copy of the weight in slices of 16 rows for the gathering batch-1 product, in the
    /// layer's own codecs.
    fn sliced_copy(&self) -> SlicedRows {
        if let Some(c) = &self.compressed {
            return c.batch1_copy(&self.indptr, |shape, kind, e| SlicedRows::build(shape, kind, e));
        }
        with_csr!(self, w => SlicedRows::new(w))
    }

    /// The copy of a compressed weight in CSR row order with packed entries for the scalar
    /// batch-1 product (`None` for an uncompressed layer, whose CSR arrays serve as they are).
    fn coded_rows_copy(&self) -> Option<CodedRows> {
        let c = self.compressed.as_ref()?;
        Some(c.batch1_copy(&self.indptr, |shape, kind, e| CodedRows::build(shape, kind, e)))
    }

    /// The weight as a dense row-major matrix and the mask of its nonzero pattern.
    fn dense(&self) -> LayerParams {
        let mut linear = LayerParams::zeros(self.shape);
        linear.mask.fill(0);
        linear.bias.copy_from_slice(&self.bias);
        if let Some(c) = &self.compressed {
            let cols = self.shape.cols;
            c.for_each(&self.indptr, |r, col, v| {
                linear.weight[r * cols + col] = v;
                linear.mask[r * cols + col] = 1;
            });
            return linear;
        }
        with_csr!(self, w => w.scatter_into(&mut linear.weight, Some(&mut linear.mask)));
        linear
    }
}

/// `y = act(W x + bias)` for `x` `[cols][batch]`, `y` `[rows][batch]` laid out in tiles of
/// `tile` examples, tile by tile.
fn spmm_tiles<I: ColIndex>(
    w: CsrRef<I>,
    bias: &[f32],
    (mut x, y): (TiledInput, &mut [f32]),
    (batch, tile): (usize, usize),
    act: Activation,
    par: Par,
) {
    let (rows, cols) = (w.rows(), w.cols());
    for examples in kernels::tiles(batch, tile) {
        let (t, y) = (examples.len(), &mut y[examples.start * rows..examples.end * rows]);
        let x = x.tile(examples, cols);
        kernels::spmm(w, Some(bias), x, y, t, act, par)
    }
}

/// Reusable buffers of a forward pass, so that repeated calls do not allocate.
#[derive(Default)]
pub struct Scratch {
    input: AlignedVec,
    /// A tile's examples after the image steps, row-major, before their transpose.
    staged: AlignedVec,
    buffers: plan::Buffers,
}

impl Scratch {
    /// Buffers whose forward passes never skip zero inputs: batch 1 always runs the row
    /// product (to measure what skipping zeros brings; results differ only in rounding).
    pub fn without_zero_skipping() -> Self {
        let mut scratch = Scratch::default();
        scratch.buffers.batch1 = plan::Batch1Paths::Rows;
        scratch
    }

    /// Buffers whose batch-1 passes run the CSR row product, as on CPUs where the copy in
    /// slices of 16 rows does not pay: the results of a compressed layer's decoded matrix
    /// bit for bit, and the baseline the sliced product is measured against.
    pub fn csr_rows_only() -> Self {
        let mut scratch = Scratch::default();
        scratch.buffers.batch1 = plan::Batch1Paths::CsrRows;
        scratch
    }
}

/// Kept multiply-adds of a whole batch from which its tiles are spread over the threads, in
/// one share per thread ([`ticket_core::awake_pool::run_parts`]: from outside the pool the
/// caller runs one, workers still polling from the calls before take the others, and the
/// caller runs those that no worker took). A 3.6 % LeNet-300-100 at batch 32 (300 k
/// multiply-adds, about 10 us on one thread) is split in two tiles of 16.
const BATCH_SPLIT_MIN_WORK: usize = 1 << 18;

thread_local! {
    /// The buffers of the tiles a thread runs for a batch split over threads.
    static WORKER_SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::default();
}

/// A sparse model: a graph and its weighted layers as (validated) CSR.
pub struct SparseModel {
    pub(crate) graph: Graph,
    pub(crate) layers: Vec<SparseLayer>,
    plan: Plan,
    pub(crate) value_dtype: ValueDtype,
    /// How the file stores values and indices.
    pub(crate) codecs: (ValueCodecs, IndexCodecs),
    /// Bytes of the file kept mapped or in memory (0 when nothing is borrowed from it).
    pub(crate) mapped_file_bytes: usize,
    /// The data set the source was trained on, as the file's metadata records it.
    pub(crate) dataset: Option<String>,
}

impl SparseModel {
    /// A model of `graph` with one layer per weighted layer of the graph, whose shapes the
    /// caller has checked against it.
    pub(crate) fn new(
        graph: Graph,
        layers: Vec<SparseLayer>,
        value_dtype: ValueDtype,
        mapped_file_bytes: usize,
        dataset: Option<String>,
    ) -> Self {
        debug_assert!(graph.layer_shapes().iter().eq(layers.iter().map(|l| &l.shape)));
        let plan = Plan::new(&graph, &layers);
        let codecs = (ValueCodec::Float(value_dtype).into(), IndexCodecs::default());
        SparseModel { graph, layers, plan, value_dtype, codecs, mapped_file_bytes, dataset }
    }

    /// The kept weights of `net` (mask = 1) as CSR, biases dense: the in-memory conversion
    /// the trainer and the tests use; files go through [`SparseModel::load`].
    pub fn from_net(net: &Network) -> Self {
        let layers = net
            .graph
            .layer_names()
            .into_iter()
            .zip(&net.layers)
            .map(|(name, l)| {
                let (rows, cols) = (l.shape.rows, l.shape.cols);
                let (indptr, cols_kept, values) = compress(&l.weight, &l.mask, rows, cols);
                let indices = if csr_format::index_dtype(cols) == safetensors::Dtype::U16 {
                    Indices::U16(cols_kept.iter().map(|&c| c as u16).collect::<Vec<_>>().into())
                } else {
                    Indices::U32(cols_kept.into())
                };
                SparseLayer::new(
                    name,
                    l.shape,
                    indptr.into(),
                    indices,
                    values.into(),
                    l.bias.clone().into(),
                )
            })
            .collect();
        SparseModel::new(net.graph.clone(), layers, ValueDtype::F32, 0, None)
    }

    /// The dense network with the same weights (pruned ones at zero, masks = the pattern):
    /// the dense path `ticket_core::Network::logits` runs on `sgemm`.
    pub fn to_dense(&self) -> Network {
        Network {
            graph: self.graph.clone(),
            layers: self.layers.iter().map(SparseLayer::dense).collect(),
        }
    }

    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    pub fn layers(&self) -> &[SparseLayer] {
        &self.layers
    }

    pub fn inputs(&self) -> usize {
        self.graph.inputs()
    }

    pub fn outputs(&self) -> usize {
        self.graph.outputs()
    }

    /// Kept weights.
    pub fn nnz(&self) -> usize {
        self.layers.iter().map(SparseLayer::nnz).sum()
    }

    /// The float dtype the file stored the values in (they are held as `f32` in memory);
    /// `f32` for int8 and codebook values, which [`SparseModel::codecs`] names.
    pub fn value_dtype(&self) -> ValueDtype {
        self.value_dtype
    }

    /// How the file stores values (`f32`...`k8`) and column indices (absolute or gaps).
    pub fn codecs(&self) -> (ValueCodecs, IndexCodecs) {
        self.codecs
    }

    /// The data set the model was trained on, when its file records one.
    pub fn dataset(&self) -> Option<&str> {
        self.dataset.as_deref()
    }

    /// Bytes of the arrays the forward pass reads, whether borrowed from the file or owned.
    pub fn weight_bytes(&self) -> usize {
        self.layers.iter().map(SparseLayer::weight_bytes).sum()
    }

    /// Bytes of the column-ordered copies of the linear layers that the batch-1 path uses to
    /// skip zero inputs (not part of [`SparseModel::weight_bytes`]: a layer's copy is built
    /// the first time its batch-1 input has enough zeros for it to pay).
    pub fn column_copy_bytes(&self) -> usize {
        self.plan.column_copy_bytes()
    }

    /// Bytes of the copies in slices of 16 rows that the batch-1 path runs from where a
    /// gather pays (not part of [`SparseModel::weight_bytes`]: built on a layer's first
    /// batch-1 call).
    pub fn sliced_copy_bytes(&self) -> usize {
        self.plan.sliced_copy_bytes()
    }

    /// Bytes of the copies in CSR row order with packed entries that the batch-1 path of a
    /// compressed layer runs from where the sliced copy does not pay (not part of
    /// [`SparseModel::weight_bytes`]: built on a layer's first batch-1 call).
    pub fn coded_rows_copy_bytes(&self) -> usize {
        self.plan.coded_rows_copy_bytes()
    }

    /// Bytes of the conv layers' taps prepared for the blocked kernel (a value and an input
    /// offset per kept weight, made at load; not part of [`SparseModel::weight_bytes`]).
    pub fn conv_tap_bytes(&self) -> usize {
        self.plan.conv_tap_bytes()
    }

    /// The part of [`SparseModel::weight_bytes`] borrowed from the mapped file.
    pub fn borrowed_bytes(&self) -> usize {
        self.layers.iter().map(SparseLayer::mapped_bytes).sum()
    }

    /// Size of the file mapping (or buffer) the model keeps alive (0 when every array was
    /// copied).
    pub fn mapped_file_bytes(&self) -> usize {
        self.mapped_file_bytes
    }

    /// Logits `[batch][outputs]` of inputs `[batch][inputs]`.
    pub fn logits(&self, inputs: &[f32], batch: usize, par: Par) -> Result<Vec<f32>> {
        let mut out = vec![0.0; batch * self.outputs()];
        self.logits_into(inputs, batch, &mut out, &mut Scratch::default(), par)?;
        Ok(out)
    }

    /// [`SparseModel::logits`] into `out`, reusing `scratch` (no allocation once it has grown).
    pub fn logits_into(
        &self,
        inputs: &[f32],
        batch: usize,
        out: &mut [f32],
        scratch: &mut Scratch,
        par: Par,
    ) -> Result<()> {
        self.forward((inputs, batch, out), scratch, par, None)
    }

    /// What the steps of the forward pass are, as [`SparseModel::logits_timed`] times them:
    /// one per layer that is not fused into another (`conv1` includes its ReLU, a flatten is
    /// no step), then `transpose`, the conversions between the row-major inputs and logits
    /// and the `[features][batch]` layout inside.
    pub fn step_names(&self) -> Vec<String> {
        let mut names = self.plan.step_names(&self.layers);
        names.push("transpose".into());
        names
    }

    /// [`SparseModel::logits`] reusing `scratch`, adding the time of each step (summed over
    /// threads) to `clock`, which has one slot per [`SparseModel::step_names`] entry.
    pub fn logits_timed(
        &self,
        (inputs, batch): (&[f32], usize),
        scratch: &mut Scratch,
        par: Par,
        clock: &StepClock,
    ) -> Result<Vec<f32>> {
        assert_eq!(clock.steps(), self.step_names().len(), "logits_timed: one slot per step");
        let mut out = vec![0.0; batch * self.outputs()];
        self.forward((inputs, batch, &mut out), scratch, par, Some(clock))?;
        Ok(out)
    }

    /// The forward pass of `inputs` (`batch` examples) into `out`.
    fn forward(
        &self,
        (inputs, batch, out): (&[f32], usize, &mut [f32]),
        scratch: &mut Scratch,
        par: Par,
        clock: Option<&StepClock>,
    ) -> Result<()> {
        let (features, classes) = (self.inputs(), self.outputs());
        if Some(inputs.len()) != batch.checked_mul(features) {
            return Err(Error::Shape(format!(
                "{} input values for {batch} examples of {features} features",
                inputs.len()
            )));
        }
        if Some(out.len()) != batch.checked_mul(classes) {
            return Err(Error::Shape(format!(
                "room for {} logits, but {batch} examples have {} (x {classes} classes)",
                out.len(),
                batch * classes
            )));
        }
        if batch == 0 {
            return Ok(());
        }
        let (tile, threads) = self.span(batch, par.threads());
        let tiles = batch.div_ceil(tile);
        if tiles <= 1 && threads > 1 {
            // A single tile may still split its layers over the threads: keep them polling
            // for the splits rather than sleeping between layers.
            let enter_pool = self.plan.work_per_example() >= MIN_WORK_TO_ENTER_POOL;
            Plan::decode_nothing(&mut scratch.buffers);
            ticket_core::awake_pool::with_workers_awake(enter_pool, || {
                self.tile(inputs, batch, out, scratch, par, clock)
            });
            return Ok(());
        }
        if threads <= 1 {
            // One tile keeps `par` for its layers; several run one after the other.
            let par = if tiles <= 1 { par } else { Par::Seq };
            self.share((inputs, out), tile, scratch, par, clock);
            return Ok(());
        }
        // One share of whole tiles per thread.
        let share = tiles.div_ceil(threads) * tile;
        let outputs: Vec<_> = out.chunks_mut(share * classes).map(Mutex::new).collect();
        ticket_core::awake_pool::run_parts(outputs.len(), |i| {
            let x = &inputs[i * share * features..((i + 1) * share).min(batch) * features];
            let mut o = outputs[i].lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            let mut run = |s: &mut Scratch| self.share((x, &mut o), tile, s, Par::Seq, clock);
            // Each thread keeps its buffers from call to call: fresh ones cost page faults
            // on first touch, about as long as a 32-example tile of LeNet-300-100 takes to
            // run. A thread already inside a share (never, with `Par::Seq`) would take
            // fresh ones.
            WORKER_SCRATCH.with(|cell| match cell.try_borrow_mut() {
                Ok(mut s) => run(&mut s),
                Err(_) => run(&mut Scratch::default()),
            })
        });
        Ok(())
    }

    /// One thread's share of a pass, `x` `[n][inputs]` to `out` `[n][outputs]`, `tile`
    /// examples at a time, after decoding the compressed linear layers once for all of them
    /// where the plan does (a lone example runs from its batch-1 copies instead).
    fn share(
        &self,
        (x, out): (&[f32], &mut [f32]),
        tile: usize,
        s: &mut Scratch,
        par: Par,
        clock: Option<&StepClock>,
    ) {
        let (features, classes) = (self.inputs(), self.outputs());
        if x.len() > features {
            self.plan.decode_pass(&self.layers, &mut s.buffers, clock);
        } else {
            Plan::decode_nothing(&mut s.buffers);
        }
        for (x, o) in x.chunks(tile * features).zip(out.chunks_mut(tile * classes)) {
            self.tile(x, x.len() / features, o, s, par, clock);
        }
    }

    /// How many examples one thread runs through the network at once, at most, and on how
    /// many threads, for a batch of `batch` on up to `threads`: one span per thread at least
    /// (a multiple of 8 examples, the AVX2 width), threads only when the batch is worth them,
    /// and spans of one [`TILE`], or of several for a model whose linear layers decode
    /// compressed weights (see `Plan::span`).
    fn span(&self, batch: usize, threads: usize) -> (usize, usize) {
        let work = self.plan.work_per_example().saturating_mul(batch);
        let threads = if work >= BATCH_SPLIT_MIN_WORK { threads.max(1) } else { 1 };
        (batch.div_ceil(threads).next_multiple_of(8).min(self.plan.span()), threads)
    }

    /// The whole network on `t` examples: `x` `[t][inputs]` to `out` `[t][outputs]`. The
    /// image steps run one example at a time, each example's result becoming a column of the
    /// `[features][t]` input of the rest. Inside, the `t` examples are laid out in tiles of
    /// [`TILE`] ([`kernels::tiles`]; one plain block when `t <= TILE`).
    fn tile(
        &self,
        x: &[f32],
        t: usize,
        out: &mut [f32],
        s: &mut Scratch,
        par: Par,
        clock: Option<&StepClock>,
    ) {
        let (plan, layers) = (&self.plan, &self.layers[..]);
        let images = if t > 1 { plan.image_steps() } else { 0 };
        let mut transposing = Duration::ZERO;
        // A span's first linear layer transposes each tile as it reaches it (its time counts
        // in that layer's).
        let lazily = t > TILE && images == 0 && plan.starts_with_linear();
        let (input, scratch) = if t == 1 {
            (x, None)
        } else if lazily {
            (x, Some(&mut s.input))
        } else if images == 0 {
            let started = Instant::now();
            let features = self.inputs();
            s.input.resize(x.len());
            for e in kernels::tiles(t, TILE) {
                let part = e.start * features..e.end * features;
                transpose(&x[part.clone()], e.len(), features, &mut s.input[part]);
            }
            transposing += started.elapsed();
            (&s.input[..], None)
        } else {
            let features = plan.outputs_before(images, self.inputs());
            s.input.resize(features * t);
            // Each example's image goes to a row of `staged`, and the tile's rows are then
            // transposed in 8 x 8 blocks: storing every value straight into its column (32
            // floats apart) took 45 us per Conv-2 example, a cache miss per value.
            s.staged.resize(features * t.min(TILE));
            for e in kernels::tiles(t, TILE) {
                for (b, example) in x[e.start * self.inputs()..e.end * self.inputs()]
                    .chunks_exact(self.inputs())
                    .enumerate()
                {
                    let example = (example, None);
                    let image = plan.run(0..images, layers, example, 1, &mut s.buffers, par, clock);
                    let started = Instant::now();
                    s.staged[b * features..(b + 1) * features].copy_from_slice(image);
                    transposing += started.elapsed();
                }
                let started = Instant::now();
                let tile = &mut s.input[e.start * features..e.end * features];
                transpose(&s.staged[..e.len() * features], e.len(), features, tile);
                transposing += started.elapsed();
            }
            (&s.input[..], None)
        };
        let buffers = &mut s.buffers;
        let logits = plan.run(images..plan.len(), layers, (input, scratch), t, buffers, par, clock);
        let started = Instant::now();
        if t == 1 {
            out.copy_from_slice(logits);
        } else {
            let classes = self.outputs();
            for e in kernels::tiles(t, TILE) {
                let part = e.start * classes..e.end * classes;
                transpose(&logits[part.clone()], classes, e.len(), &mut out[part]);
            }
        }
        if let Some(clock) = clock {
            clock.add(clock.steps() - 1, transposing + started.elapsed());
        }
    }

    /// Multiply-adds of the kept weights per example: a linear layer's kept weights, a conv
    /// layer's times its output positions (taps that fall on padding included). What a
    /// fraction of the peak multiply-add rate ([`crate::kernels::peak`]) is computed from.
    pub fn multiply_adds_per_example(&self) -> usize {
        self.plan.multiply_adds_per_example()
    }

    /// Fraction of `data` whose largest logit is the label.
    pub fn accuracy(&self, data: &Dataset, par: Par) -> Result<f64> {
        let mut correct = 0usize;
        let mut scratch = Scratch::default();
        let mut logits = Vec::new();
        for (images, labels) in
            data.images.chunks(EVAL_CHUNK * data.features).zip(data.labels.chunks(EVAL_CHUNK))
        {
            logits.resize(labels.len() * self.outputs(), 0.0);
            self.logits_into(images, labels.len(), &mut logits, &mut scratch, par)?;
            correct += logits
                .chunks_exact(self.outputs())
                .zip(labels)
                .filter(|(row, &label)| argmax(row) == label as usize)
                .count();
        }
        Ok(correct as f64 / data.len().max(1) as f64)
    }
}

#[cfg(test)]
mod tests;
