//! Register-blocked direct sparse convolution, any stride and padding: the fast path of
//! [`super::conv2d`].
//!
//! Each kept weight is turned once, when the model is built, into a *tap*: its value and the
//! offset of the input pixel it reads relative to the output pixel it writes, in the input
//! padded with zeros (`c * Hp * Wp + i * Wp + j`). The input is then copied into that padded
//! layout (zero border plus a few floats of slack), so a tap is the same plain offset for
//! every output pixel: no bounds, no padding tests, no index decoding in the hot loop.
//!
//! A strided layer is first made a stride-1 one (space to depth): the padded input is split
//! into its `sh * sw` stride phases, phase `(a, b)` of channel `c` holding the pixels
//! `(h * sh + a, w * sw + b)` as its own `ceil(Hp / sh) x ceil(Wp / sw)` channel. Tap
//! `(c, i, j)` then reads phase `(i % sh, j % sw)` at offset `(i / sh, j / sw)`, and output
//! pixel `(oh, ow)` reads that phase at `(oh, ow)` plus the offset: neighbouring outputs read
//! neighbouring inputs again, so the kernel below runs unchanged (AlexNet's conv1, 11 x 11
//! with stride 4, becomes 48 phase channels and 3 x 3 taps of them).
//!
//! Activations are `[channels][height][width][lanes]` with `lanes` examples interleaved (1 at
//! batch 1: one image in CHW), so an output row is `OW * lanes` contiguous floats and the input
//! it reads for a tap is as long and contiguous. The kernel keeps a block of `R` output rows x
//! `V` 8-float vectors of one output channel in registers (8 x 1, 6 x 2, 4 x 3 or 3 x 4: 8 to 12
//! accumulators, enough to hide the FMA latency on two FMA pipes) and walks that channel's taps:
//! per tap one broadcast and `R * V` fused multiply-adds straight from the input, with no
//! load or store of the output in between. Bias, ReLU and the (masked) store end the block.
//! This is XNNPACK's CHW SpMM (`f32-spmm`, its `MR` pixels per output channel) generalised
//! from 1x1 to any kernel size by the padded-offset taps; XNNPACK's 2- and 4-output-channel
//! blocking (`NR`) needs channels with identical sparsity patterns, which magnitude pruning
//! does not produce, so each channel is its own block here.
//!
//! ```
//! use ticket_infer::kernels::{conv2d_blocked::BlockedConv2d, Activation, Image, Window};
//! use ticket_infer::CsrRef;
//! use ticket_core::Par;
//! // One 1x2 kernel [1, -1] over a 1x3 image: the differences of neighbours.
//! let w = CsrRef::new(1, 2, &[0, 2], &[0u16, 1], &[1.0, -1.0]).unwrap();
//! let input = Image { channels: 1, height: 1, width: 3 };
//! let window = Window { kernel: [1, 2], stride: [1, 1], padding: [0, 0] };
//! let conv = BlockedConv2d::new(w, &[0.0], input, window).unwrap();
//! let (mut y, mut padded) = ([0.0; 2], ticket_infer::aligned::AlignedVec::default());
//! let no_pool = (Activation::Identity, false);
//! conv.run((&[5.0, 3.0, 4.0], &mut y), 1, no_pool, &mut padded, Par::Seq);
//! assert_eq!(y, [2.0, -1.0]);
//! ```

#[cfg(target_arch = "x86_64")]
mod vector;

use super::conv2d::output_image;
use super::conv2d_dense::{DenseConv, Geometry};
use super::pool::{self, Pool};
#[cfg(doc)]
use super::PAR_MIN_WORK;
use super::{split_by_indptr, Activation, Image, Isa, Window};
use crate::aligned::AlignedVec;
use crate::csr::{ColIndex, CsrRef};
use rayon::prelude::*;
use std::ops::Range;
use std::sync::{Arc, RwLock};
use ticket_core::Par;

/// Padded rows of `width` pixels, widened to a multiple of 16 floats when that adds at most a
/// quarter: with the buffer on a cache line every row then starts on one, and so do the
/// loads of the taps in kernel column 0 (a 64-byte load across two lines costs two).
/// Conv-2's conv2 (30 -> 32) took 200-204 us at batch 1 against 217-220 unwidened (Intel
/// Xeon, AVX-512, alternating runs).
fn padded_width(width: usize) -> usize {
    let wide = width.next_multiple_of(16);
    if 4 * wide <= 5 * width {
        wide
    } else {
        width
    }
}

/// Floats after the padded input that a block's last, partly used vector may read (one
/// AVX-512 register).
const SLACK: usize = 16;
/// Multiply-adds below which a convolution stays on the calling thread. Higher than
/// [`PAR_MIN_WORK`]: LeNet-5's convolutions at batch 1 (190,000 each) ran slower split over
/// two threads than on one (measured on a shared machine whose other core was busy).
const PAR_MIN_WORK_CONV: usize = 1 << 19;
/// Bytes of input rows one register block may read across all its input channels before
/// they are cut into groups: the first-level data cache but 16 KiB left to the taps
/// streaming past and the outputs (16 KiB of a 32 KiB cache, 32 of 48). On the Intel Xeon's
/// 48 KiB, Conv-2's conv2 ran 235.5 us on one thread with 32 KiB windows against 240.6 with
/// 16 and 253.0 with 48 (`examples/conv_variants.rs`).
fn window_bytes() -> usize {
    super::l1d::l1d_bytes().saturating_sub(16 << 10).max(16 << 10)
}

/// Share of kept weights from which a layer runs the dense path (im2col and a dense matrix
/// product) instead of the sparse kernel. One thread, fastest calls on a shared machine:
/// the sparse kernel ran AlexNet's layers at 19-22 G multiply-adds/s whatever their
/// density, the dense path at 24 G/s (conv1, whose 1.1 M-float im2col matrix costs) to
/// 43 G/s (conv3), so the dense path pays from about 85% on conv1-like layers and
/// 50% on conv3-like ones; conv1 at 84% ran 2.5 ms dense against 2.8 ms sparse
/// (`examples/conv_variants.rs`).
const DENSE_MIN_DENSITY: f64 = 0.75;
/// Dense multiply-adds per example below which a layer stays on the sparse kernel: the
/// dense product's packing and im2col cost more than they save on small layers (Conv-2's
/// conv1, 0.45 M, ran 21 us dense against 12 us sparse at 35%).
const DENSE_MIN_WORK: usize = 1 << 22;

/// The pooling [`BlockedConv2d::run`] fuses when asked to.
pub const POOL_2X2: Window = Window { kernel: [2, 2], stride: [2, 2], padding: [0, 0] };

/// One kept weight: its value and the offset (in pixels of the padded input) of the input
/// pixel it multiplies, relative to the output pixel.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Tap {
    pub(crate) offset: u32,
    pub(crate) value: f32,
}

thread_local! {
    /// A thread's own padded input for the parts of a layer split over threads.
    static THREAD_PADDED: std::cell::RefCell<AlignedVec> = Default::default();
}

/// How a layer's work is divided among threads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    /// Each thread all output rows of a share of the output channels (balanced by kept
    /// weights): each reads the whole input and its own channels' taps.
    Channels,
    /// Each thread all output channels over a band of output rows: each reads only the
    /// input rows its band needs (plus the kernel's overlap), and every tap.
    Rows,
}

impl Split {
    /// The split that keeps each of `threads` threads' working set smallest: by channels a
    /// thread reads the whole padded input and `1 / threads` of the taps, by rows about
    /// `1 / threads` of the input and every tap. Rows only when every band keeps at least
    /// [`MIN_BAND_ROWS`] output rows. AlexNet's conv1 (a 0.6 MB phase-split input, 0.16 MB of
    /// taps) splits by rows, its conv2-5 (0.1-0.25 MB inputs, 0.9-2.6 MB of taps) by channels.
    fn cheaper(input_bytes: usize, tap_bytes: usize, rows: usize, threads: usize) -> Split {
        let threads = threads.max(1);
        let by_channels = input_bytes + tap_bytes / threads;
        let by_rows = input_bytes / threads + tap_bytes;
        if rows >= threads * MIN_BAND_ROWS && by_rows < by_channels {
            Split::Rows
        } else {
            Split::Channels
        }
    }
}

/// Output rows below which a band of a row split is too thin to pay for every tap it reads.
const MIN_BAND_ROWS: usize = 8;

/// `rows` output rows cut into at most `parts` bands of nearly equal height, each bound a
/// multiple of `align` (2 when a fused pool reduces row pairs) except the last.
fn split_rows(rows: usize, parts: usize, align: usize) -> Vec<Range<usize>> {
    let units = rows.div_ceil(align);
    let parts = parts.clamp(1, units.max(1));
    (0..parts)
        .map(|p| (units * p / parts * align).min(rows)..(units * (p + 1) / parts * align).min(rows))
        .filter(|r| !r.is_empty())
        .collect()
}

/// Where a call's output goes: channel `o`'s `plane` floats start at `y + o * plane`.
/// Threads of one call write disjoint parts of it through copies of this.
#[derive(Clone, Copy)]
struct Output {
    y: *mut f32,
    plane: usize,
}

// SAFETY: an Output is only handed to the threads of one call, which write disjoint blocks
// of the output it points to while that call holds the output's `&mut` borrow.
unsafe impl Send for Output {}
unsafe impl Sync for Output {}

/// A conv2d layer prepared for the blocked kernel: taps per output channel.
#[derive(Clone, Debug)]
pub struct BlockedConv2d {
    /// Output channel `o` owns `taps[indptr[o]..indptr[o + 1]]`.
    indptr: Vec<u32>,
    taps: Vec<Tap>,
    bias: Vec<f32>,
    input: Image,
    kernel: [usize; 2],
    padding: [usize; 2],
    stride: [usize; 2],
    /// [`window_bytes`], smaller in tests to exercise many groups.
    window_bytes: usize,
    /// How a call that uses several threads divides the layer among them; `None`: the
    /// cheaper by [`Split::cheaper`].
    split: Option<Split>,
    /// The dense path (im2col and a dense product) when the layer is barely pruned.
    dense: Option<DenseConv>,
    /// The input with its zero border, split into stride phases: `C * sh * sw` channels.
    padded: Image,
    output: Image,
    /// [`BlockedConv2d::group_bounds`] of each grouping of the input channels used so far.
    bounds: BoundsCache,
}

/// Tap bounds per grouping of the input channels, keyed by channels per group: binary
/// searches over every output channel's taps, which at every call cost AlexNet's conv3-5 a
/// tenth of their time, made once per grouping instead (a call's block shape, and so its
/// grouping, depends on its rows and batch: a few groupings a layer). A clone starts empty.
#[derive(Debug, Default)]
struct BoundsCache(RwLock<Vec<(usize, Arc<[u32]>)>>);

impl Clone for BoundsCache {
    fn clone(&self) -> Self {
        BoundsCache::default()
    }
}

impl BlockedConv2d {
    /// The layer with CSR weight `w` (`[out, in * kh * kw]`), or `None` when the blocked
    /// kernel does not cover it (a padded input too large for 32-bit offsets). Panics when
    /// `w`, `bias`, `input` and `window` do not fit together.
    pub fn new<I: ColIndex>(
        w: CsrRef<I>,
        bias: &[f32],
        input: Image,
        window: Window,
    ) -> Option<Self> {
        Self::with_dense_from(w, bias, input, window, DENSE_MIN_DENSITY)
    }

    /// [`BlockedConv2d::new`] running the dense path from `min_density` kept weights on
    /// instead of [`DENSE_MIN_DENSITY`] (0: always, whatever the size; above 1: never).
    pub fn with_dense_from<I: ColIndex>(
        w: CsrRef<I>,
        bias: &[f32],
        input: Image,
        window: Window,
        min_density: f64,
    ) -> Option<Self> {
        let [kh, kw] = window.kernel;
        assert_eq!(w.cols(), input.channels * kh * kw, "conv2d: columns are not in * kh * kw");
        assert_eq!(bias.len(), w.rows(), "conv2d: one bias per output channel");
        let output = output_image(input, window, w.rows());
        let [ph, pw] = window.padding;
        let [sh, sw] = window.stride;
        let padded = Image {
            channels: input.channels * sh * sw,
            height: (input.height + 2 * ph).div_ceil(sh),
            width: padded_width((input.width + 2 * pw).div_ceil(sw)),
        };
        u32::try_from(padded.len().checked_add(SLACK)?).ok()?;
        // Where weight column (c, i, j) reads the padded, stride-phased input: a table, so
        // that a tap costs a lookup instead of the divisions (AlexNet has 0.9 M taps).
        let offsets: Vec<u32> = (0..w.cols())
            .map(|col| {
                let (c, i, j) = (col / (kh * kw), col / kw % kh, col % kw);
                let phase = (c * sh + i % sh) * sw + j % sw;
                ((phase * padded.height + i / sh) * padded.width + j / sw) as u32
            })
            .collect();
        let taps = w
            .indices()
            .iter()
            .zip(w.values())
            .map(|(&col, &value)| Tap { offset: offsets[col.to_usize()], value })
            .collect();
        let density = w.nnz() as f64 / (w.rows() * w.cols()).max(1) as f64;
        let dense_work = w.rows() * w.cols() * output.plane();
        let big = dense_work >= DENSE_MIN_WORK || min_density <= 0.0;
        let dense = (big && density >= min_density).then(|| DenseConv::new(w, offsets));
        Some(BlockedConv2d {
            indptr: w.indptr().to_vec(),
            taps,
            bias: bias.to_vec(),
            input,
            kernel: window.kernel,
            padding: window.padding,
            stride: window.stride,
            window_bytes: window_bytes(),
            split: None,
            dense,
            padded,
            output,
            bounds: BoundsCache::default(),
        })
    }

    /// Bytes of the prepared taps, output-channel offsets and bias, and of the dense weight
    /// when the layer runs the dense path.
    pub fn bytes(&self) -> usize {
        std::mem::size_of_val(self.taps.as_slice())
            + 4 * self.indptr.len()
            + 4 * self.bias.len()
            + self.dense.as_ref().map_or(0, DenseConv::bytes)
    }

    /// Bytes of the padded input of one example, and whether a call on one example and
    /// `threads` threads splits over them, each thread then padding into a buffer of its own.
    pub fn padded_bytes(&self, threads: usize) -> (usize, bool) {
        let splits = self.dense.is_none() && self.threads_for(1, threads, PAR_MIN_WORK_CONV) > 1;
        (4 * self.padded_len(1), splits)
    }

    /// The threads a call on `batch` examples uses of `threads`: all from `min_work`
    /// multiply-adds, else one.
    fn threads_for(&self, batch: usize, threads: usize, min_work: usize) -> usize {
        if self.work().saturating_mul(batch) >= min_work {
            threads
        } else {
            1
        }
    }

    /// Whether the layer runs the dense path (im2col and a dense matrix product): when at
    /// least [`DENSE_MIN_DENSITY`] of its weights are kept and it has [`DENSE_MIN_WORK`]
    /// dense multiply-adds.
    pub fn is_dense(&self) -> bool {
        self.dense.is_some()
    }

    pub fn output(&self) -> Image {
        self.output
    }

    /// Multiply-adds per example.
    pub fn work(&self) -> usize {
        self.taps.len() * self.output.plane()
    }

    /// `y = act(conv(x, W) + bias)` for `x` `[C][H][W][batch]` and `y` `[O][OH][OW][batch]`
    /// (overwritten). With `max_pool` (one example, [`BlockedConv2d::can_pool`]), a 2x2,
    /// stride-2 max-pool follows, fused: `y` is `[O][OH / 2][OW / 2]`, each window reduced in
    /// registers before anything is stored. `padded` is scratch for the padded input (grown
    /// as needed). Output channels are split over `par`'s threads when the work pays for
    /// them. Panics when the lengths do not fit.
    pub fn run(
        &self,
        (x, y): (&[f32], &mut [f32]),
        batch: usize,
        (act, max_pool): (Activation, bool),
        padded: &mut AlignedVec,
        par: Par,
    ) {
        let isa = Isa::detect();
        self.run_with(isa, (x, y), batch, (act, max_pool), padded, (par, PAR_MIN_WORK_CONV));
    }

    /// How a call on `threads` threads divides this layer.
    pub fn split(&self, threads: usize) -> Split {
        let input_bytes = 4 * self.padded.len();
        let tap_bytes = std::mem::size_of_val(self.taps.as_slice());
        let cheaper = || Split::cheaper(input_bytes, tap_bytes, self.output.height, threads);
        self.split.unwrap_or_else(cheaper)
    }

    /// This layer dividing its work among threads by `split`, whatever [`Split::cheaper`]
    /// says.
    pub fn with_split(self, split: Split) -> Self {
        BlockedConv2d { split: Some(split), ..self }
    }

    /// Whether a 2x2 max-pool can be fused into this layer: output height and width even.
    pub fn can_pool(&self) -> bool {
        self.output.height.is_multiple_of(2) && self.output.width.is_multiple_of(2)
    }

    /// The output with a fused max-pool.
    pub fn pooled_output(&self) -> Image {
        Image { height: self.output.height / 2, width: self.output.width / 2, ..self.output }
    }

    pub(crate) fn run_with(
        &self,
        isa: Isa,
        (x, y): (&[f32], &mut [f32]),
        batch: usize,
        (act, pooled): (Activation, bool),
        padded: &mut AlignedVec,
        (par, min_work): (Par, usize),
    ) {
        assert_eq!(x.len(), self.input.len() * batch, "conv2d: x length");
        let plane = if pooled {
            assert!(batch == 1 && self.can_pool(), "conv2d: pooled needs one example, even sizes");
            self.pooled_output().plane()
        } else {
            self.output.plane() * batch
        };
        assert_eq!(y.len(), self.output.channels * plane, "conv2d: y length");
        if batch == 0 {
            return;
        }
        let relu = act == Activation::Relu;
        let threads = self.threads_for(batch, par.threads(), min_work);
        if let Some(dense) = &self.dense {
            self.pad(x, batch, padded, 0..self.output.height);
            let par = if threads > 1 { par } else { Par::Seq };
            return self.run_dense(dense, (y, batch), relu, pooled, padded, par);
        }
        let out = Output { y: y.as_mut_ptr(), plane };
        let isa = isa.for_rows_of(self.output.width * batch);
        // Writes output channels `channels` x output rows `rows` (before pooling) of `out`.
        let run = |channels: Range<usize>, rows: Range<usize>, xp: &[f32], out: Output| match isa {
            Isa::Portable => self.channels_portable((channels, rows), xp, out, batch, relu, pooled),
            // SAFETY (both): the instruction set is present (Isa::detect); xp holds the
            // padded input and its slack (pad), out the whole output, whose parts the calls
            // below write are disjoint; pooled only for one example of even sizes (asserted
            // above), with even row bounds (split_rows).
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2Fma => unsafe {
                vector::channels::avx2(self, (channels, rows), xp, out, batch, relu, pooled)
            },
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => unsafe {
                vector::channels::avx512(self, (channels, rows), xp, out, batch, relu, pooled)
            },
        };
        let (all_channels, all_rows) = (0..self.output.channels, 0..self.output.height);
        let parts: Vec<(Range<usize>, Range<usize>)> = match self.split(threads) {
            _ if threads <= 1 => vec![(all_channels, all_rows)],
            Split::Channels => split_by_indptr(&self.indptr, threads.min(self.output.channels))
                .into_iter()
                .map(|channels| (channels, all_rows.clone()))
                .collect(),
            Split::Rows => split_rows(self.output.height, threads, if pooled { 2 } else { 1 })
                .into_iter()
                .map(|rows| (all_channels.clone(), rows))
                .collect(),
        };
        if let [(channels, rows)] = &parts[..] {
            self.pad(x, batch, padded, rows.clone());
            return run(channels.clone(), rows.clone(), padded, out);
        }
        // Each thread pads the input into its own buffer: written by one thread and read by
        // the other, the padded input crossed between the cores' caches, and the pad ran
        // before the split, on one thread.
        parts.into_par_iter().with_max_len(1).for_each(|(channels, rows)| {
            THREAD_PADDED.with(|own| {
                let mut own = own.borrow_mut();
                self.pad(x, batch, &mut own, rows.clone());
                run(channels, rows, &own, out)
            })
        });
    }

    /// The dense path on the padded input at the start of `scratch`, which also holds the
    /// im2col matrix (and the output before a fused pool).
    fn run_dense(
        &self,
        dense: &DenseConv,
        (y, batch): (&mut [f32], usize),
        relu: bool,
        pooled: bool,
        scratch: &mut AlignedVec,
        par: Par,
    ) {
        let g = Geometry {
            out_rows: self.output.height,
            out_width: self.output.width,
            in_width: self.padded.width,
        };
        let (inputs, cols) = (self.padded_len(batch), dense.scratch_len(g, batch, par.threads()));
        let full = if pooled { self.output.len() } else { 0 };
        scratch.grow(inputs + cols + full);
        let (xp, rest) = scratch.split_at_mut(inputs);
        let (cols, rest) = rest.split_at_mut(cols);
        if pooled {
            let full = &mut rest[..full];
            dense.run(xp, cols, full, &self.bias, (g, batch), relu, par);
            pool::pool2d(Pool::Max, self.output, POOL_2X2, full, y, 1);
        } else {
            dense.run(xp, cols, y, &self.bias, (g, batch), relu, par);
        }
    }

    /// Floats of the padded input of `batch` examples, slack included.
    fn padded_len(&self, batch: usize) -> usize {
        self.padded.len() * batch + SLACK
    }

    /// `x` into `out` as `[C * sh * sw][Hp / sh][Wp / sw][batch]`: with a zero border, split
    /// into stride phases, then the slack (zeros). Of a stride-1 layer only the rows that
    /// output rows `rows` read.
    fn pad(&self, x: &[f32], batch: usize, out: &mut AlignedVec, rows: Range<usize>) {
        let n = self.padded_len(batch);
        out.grow(n);
        let out = &mut out[..n];
        let ([ph, pw], [sh, sw]) = (self.padding, self.stride);
        if ph == 0 && pw == 0 && sh == 1 && sw == 1 && self.padded.width == self.input.width {
            out[..x.len()].copy_from_slice(x);
            out[x.len()..].fill(0.0);
            return;
        }
        if sh == 1 && sw == 1 {
            return self.pad_unstrided(x, batch, out, rows);
        }
        out.fill(0.0);
        let (row, padded) = (self.input.width * batch, self.padded);
        // Where padded pixel (h, w) of channel c lands, in pixels.
        let at = |c: usize, h: usize, w: usize| {
            let phase = (c * sh + h % sh) * sw + w % sw;
            (phase * padded.height + h / sh) * padded.width + w / sw
        };
        for (c, xc) in x.chunks_exact(self.input.plane() * batch).enumerate() {
            for (h, xr) in xc.chunks_exact(row).enumerate() {
                if sw == 1 {
                    let start = at(c, h + ph, pw) * batch;
                    out[start..start + row].copy_from_slice(xr);
                    continue;
                }
                // Phase by phase, so that the inner loop divides nothing: padded column
                // `w` of phase `w % sw` goes to column `w / sw` of that phase.
                for phase in 0..sw {
                    let first = pw + (phase + sw - pw % sw) % sw;
                    let start = at(c, h + ph, first) * batch;
                    let columns = (first..pw + self.input.width).step_by(sw);
                    if batch == 1 {
                        // One value a column: a strided copy, not a `memcpy` call per value.
                        let to = out[start..].iter_mut();
                        columns.zip(to).for_each(|(w, to)| *to = xr[w - pw]);
                        continue;
                    }
                    let to = out[start..].chunks_exact_mut(batch);
                    for (w, to) in columns.zip(to) {
                        to.copy_from_slice(&xr[(w - pw) * batch..][..batch]);
                    }
                }
            }
        }
    }

    /// [`BlockedConv2d::pad`] of a stride-1 layer, writing every float of `out` once, and
    /// of the padded rows that output rows `rows` read only: each padded row is its zero
    /// border around its input row. Zeroing the whole buffer before the copies, as the
    /// strided layers do, wrote it twice.
    fn pad_unstrided(&self, x: &[f32], batch: usize, out: &mut [f32], rows: Range<usize>) {
        let ([ph, pw], padded) = (self.padding, self.padded);
        let (row, padded_row) = (self.input.width * batch, padded.width * batch);
        let (image, padded_image) = (self.input.plane() * batch, padded.plane() * batch);
        let read = rows.start..(rows.end + self.kernel[0] - 1).min(padded.height);
        let (images, slack) = out.split_at_mut(padded.channels * padded_image);
        for (xc, oc) in x.chunks_exact(image).zip(images.chunks_exact_mut(padded_image)) {
            let oc = &mut oc[read.start * padded_row..read.end * padded_row];
            for (p, or) in read.clone().zip(oc.chunks_exact_mut(padded_row)) {
                let Some(h) = p.checked_sub(ph).filter(|&h| h < self.input.height) else {
                    or.fill(0.0);
                    continue;
                };
                let (left, rest) = or.split_at_mut(pw * batch);
                let (inside, right) = rest.split_at_mut(row);
                left.fill(0.0);
                inside.copy_from_slice(&xc[h * row..][..row]);
                right.fill(0.0);
            }
        }
        slack.fill(0.0);
    }

    /// The input channels cut into groups whose rows a block of `rows` output rows, each
    /// `floats` wide, reads within `window_bytes` (at least one channel a group).
    fn channel_groups(&self, rows: usize, floats: usize, lanes: usize) -> Vec<Range<usize>> {
        let ([kh, kw], [sh, sw]) = (self.kernel, self.stride);
        let row_bytes = 4 * (floats + (kw - 1) / sw * lanes);
        let channel_bytes = sh * sw * (rows + (kh - 1) / sh) * row_bytes;
        let per_group = (self.window_bytes / channel_bytes).max(1);
        let channels = self.input.channels;
        (0..channels.max(1)).step_by(per_group).map(|c| c..(c + per_group).min(channels)).collect()
    }

    /// Per output channel, where its taps of each group start in `taps`, and where they end:
    /// `groups.len() + 1` indices a channel (channel `o`'s from `o * (groups.len() + 1)`). A
    /// tap reads input channel `offset / (sh * sw * plane)` of the phase layout, and a
    /// channel's taps are in that order (CSR order). Computed once per grouping.
    fn group_bounds(&self, groups: &[Range<usize>]) -> Arc<[u32]> {
        let key = groups.first().map_or(0, Range::len);
        let cache = &self.bounds.0;
        let known = |list: &[(usize, Arc<[u32]>)]| {
            list.iter().find(|(k, _)| *k == key).map(|(_, b)| Arc::clone(b))
        };
        if let Some(bounds) = known(&cache.read().unwrap_or_else(|e| e.into_inner())) {
            return bounds;
        }
        let per_channel = (self.stride[0] * self.stride[1] * self.padded.plane()) as u32;
        let mut bounds = Vec::with_capacity(self.output.channels * (groups.len() + 1));
        for o in 0..self.output.channels {
            let (start, taps) = (self.indptr[o], self.taps_of(o));
            for group in groups {
                let from = group.start as u32 * per_channel;
                bounds.push(start + taps.partition_point(|t| t.offset < from) as u32);
            }
            bounds.push(self.indptr[o + 1]);
        }
        let bounds: Arc<[u32]> = bounds.into();
        let mut list = cache.write().unwrap_or_else(|e| e.into_inner());
        if let Some(known) = known(&list) {
            return known;
        }
        list.push((key, Arc::clone(&bounds)));
        bounds
    }

    /// The taps of output channel `o`.
    fn taps_of(&self, o: usize) -> &[Tap] {
        &self.taps[self.indptr[o] as usize..self.indptr[o + 1] as usize]
    }

    /// Output channels `channels` x output rows `rows` into `out`, in plain Rust: the same
    /// sums in the same order as the SIMD kernel (bias, then the taps in CSR order), with
    /// separate multiply and add where the SIMD kernel fuses them. Pooled (one example, even
    /// `rows` bounds), the rows are convolved into a buffer, then the pooling kernel writes
    /// their pooled rows: the reference of the fused path.
    fn channels_portable(
        &self,
        (channels, rows): (Range<usize>, Range<usize>),
        xp: &[f32],
        out: Output,
        lanes: usize,
        relu: bool,
        pooled: bool,
    ) {
        let (row, in_row) = (self.output.width * lanes, self.padded.width * lanes);
        let mut band = vec![0.0; rows.len() * row];
        for o in channels {
            let taps = self.taps_of(o);
            for (oh, yr) in rows.clone().zip(band.chunks_exact_mut(row)) {
                let x = &xp[oh * in_row..];
                for (col, out) in yr.iter_mut().enumerate() {
                    let mut acc = self.bias[o];
                    for tap in taps {
                        acc += tap.value * x[tap.offset as usize * lanes + col];
                    }
                    *out = if relu { acc.max(0.0) } else { acc };
                }
            }
            let (values, at) = if pooled {
                (band.len() / 4, rows.start / 2 * row / 2)
            } else {
                (band.len(), rows.start * row)
            };
            // SAFETY: rows `rows` of channel o (pooled: rows `rows / 2` of the pooled
            // plane) lie inside its plane of the output, and no other thread of this call
            // writes them (run_with's split).
            let y =
                unsafe { std::slice::from_raw_parts_mut(out.y.add(o * out.plane + at), values) };
            if pooled {
                let image = Image { channels: 1, height: rows.len(), ..self.output };
                pool::pool2d(Pool::Max, image, POOL_2X2, &band, y, 1);
            } else {
                y.copy_from_slice(&band);
            }
        }
    }
}

#[cfg(test)]
mod tests;
