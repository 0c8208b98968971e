//! What a model costs in memory besides time: the bytes of activation buffers a forward pass
//! holds, and the process's peak resident set (`getrusage`), for `ticket infer --bench`.

use super::{SparseModel, TILE};
use crate::kernels::compressed::{row_buffer_bytes, CHUNK, TILED_CHUNK};

impl SparseModel {
    /// Bytes of the activation buffers a forward pass of `batch` examples on up to `threads`
    /// threads holds at its peak: per span of examples in flight (a tile, or several tiles for
    /// a model with compressed linear layers too large to decode per pass; at most one per
    /// thread), the transposed input (none at batch 1) and two ping-pong buffers as wide as
    /// the widest layer output; for a compressed model each decoding thread's decoded layers
    /// (a pass of several examples that decodes them first) or buffer of decoded rows (every
    /// thread's when a batch of one span splits a layer's rows); and the padded inputs of the
    /// conv layers (one per thread for a batch-1 layer split over threads). Logits and inputs,
    /// which the caller owns, are not counted.
    pub fn workspace_bytes(&self, batch: usize, threads: usize) -> usize {
        if batch == 0 {
            return 0;
        }
        // A batch of one tile keeps all `threads` for its layers, whatever the span says.
        let (padded, padded_batch1) = self.plan.padded_bytes(threads);
        let (tile, threads) = self.span(batch, threads);
        let tile = tile.min(batch);
        let in_flight = threads.min(batch.div_ceil(tile));
        let widest = (0..self.graph.layers().len())
            .map(|i| self.graph.output_shape(i).iter().product::<usize>())
            .max()
            .unwrap_or(0);
        // The transposed input: none at batch 1, one tile of it where a span's first linear
        // layer transposes tile by tile.
        let lazily = tile > TILE && self.plan.image_steps() == 0 && self.plan.starts_with_linear();
        let input = match tile {
            1 => 0,
            _ if lazily => TILE * self.inputs(),
            _ => tile * self.inputs(),
        };
        let activations = 4 * (input + tile * 2 * widest);
        // A pass of several examples, unless it is one tile split over the threads, has each
        // thread decode the compressed layers first when the plan does.
        let split = batch <= tile && threads > 1;
        let decoded = if self.plan.decodes_per_pass() && batch > 1 && !split {
            self.plan.decoded_pass_bytes(&self.layers)
        } else if self.layers.iter().any(|l| l.compressed.is_some()) {
            let longest = self.layers.iter().map(|l| max_row(&l.indptr)).max().unwrap_or(0);
            row_buffer_bytes(longest, if tile > TILE { TILED_CHUNK } else { CHUNK })
        } else {
            0
        };
        // The nonzero inputs a batch-1 linear step lists (4 bytes each).
        let nonzero = if tile == 1 { 4 * widest.max(self.inputs()) } else { 0 };
        // A batch of one tile splits a compressed layer's rows: every thread decodes.
        let decoders = if batch <= tile { threads } else { in_flight };
        // Conv layers pad one example at a time; at batch 1 a split layer pads per thread.
        let padded = if batch == 1 { padded_batch1 } else { in_flight * padded };
        in_flight * (activations + nonzero) + decoders * decoded + padded
    }
}

/// The most nonzeros of any row.
fn max_row(indptr: &[u32]) -> usize {
    indptr.windows(2).map(|w| (w[1] - w[0]) as usize).max().unwrap_or(0)
}

/// The peak resident set size of this process so far, in bytes: on Linux `VmHWM` of
/// `/proc/self/status` (the high-water mark of this program's own address space), elsewhere
/// `getrusage`'s `ru_maxrss`. Linux carries `ru_maxrss` over `exec`, so a process started from
/// a large one (a Python benchmark driver) would report its parent's peak; `VmHWM` starts
/// afresh at `exec`. `None` where neither is available.
pub fn peak_rss_bytes() -> Option<u64> {
    if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
        let line = status.lines().find(|l| l.starts_with("VmHWM:"));
        let kib =
            line.and_then(|l| l.split_whitespace().nth(1)).and_then(|n| n.parse::<u64>().ok());
        if let Some(kib) = kib {
            return Some(kib * 1024);
        }
    }
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes one rusage into the pointer it is given and reads nothing.
    let status = unsafe { libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) };
    if status != 0 {
        return None;
    }
    // SAFETY: the call succeeded, so the struct is initialised (it was zeroed anyway).
    let max = unsafe { usage.assume_init() }.ru_maxrss;
    // ru_maxrss is in bytes on macOS, in KiB elsewhere.
    u64::try_from(max).ok().map(|m| if cfg!(target_os = "macos") { m } else { m * 1024 })
}
