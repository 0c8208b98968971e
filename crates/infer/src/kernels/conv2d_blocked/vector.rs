//! The blocked convolution over vector registers: `R` output rows x `V` vectors of one output
//! channel in registers while its taps stream past. Written once over [`Simd`] and compiled
//! for AVX2 + FMA (8 lanes) and AVX-512 (16 lanes).

use super::{BlockedConv2d, Output, Tap};
use crate::kernels::simd::{isa_entry_points, Simd};
use std::ops::Range;

isa_entry_points!(pub(super) fn channels(
    conv: &BlockedConv2d,
    parts: (Range<usize>, Range<usize>),
    xp: &[f32],
    out: Output,
    lanes: usize,
    relu: bool,
    pooled: bool,
));

/// See `BlockedConv2d::channels_portable`: output channels `channels` x output rows `rows`.
/// With `pooled` (one example, even output height and width), each 2x2 window of the output
/// is max-pooled in registers before it is stored, and `out` holds the pooled channels.
///
/// # Safety
/// `S`'s instruction set available; `xp` holds at least `conv.padded_len(lanes)` floats, `out` the
/// layer's whole output (`out.plane` floats a channel: `conv.output.plane() * lanes`, a
/// quarter of that pooled), of which no other thread writes these channels' rows `rows`;
/// `channels` and `rows` within the layer; pooled only when `lanes == 1`, the output height
/// and width are even and so are the bounds of `rows`.
#[inline(always)]
unsafe fn channels<S: Simd>(
    conv: &BlockedConv2d,
    (channels, rows): (Range<usize>, Range<usize>),
    xp: &[f32],
    out: Output,
    lanes: usize,
    relu: bool,
    pooled: bool,
) {
    debug_assert!(xp.len() >= conv.padded_len(lanes));
    debug_assert!(
        !pooled
            || (lanes == 1
                && conv.output.height.is_multiple_of(2)
                && conv.output.width.is_multiple_of(2)
                && rows.start % 2 == 0
                && rows.end % 2 == 0)
    );
    debug_assert!(channels.end <= conv.output.channels && rows.end <= conv.output.height);
    let geometry = Rows {
        row: conv.output.width * lanes,
        in_row: conv.padded.width * lanes,
        rows: rows.len(),
        lanes,
        pooled,
    };
    let plane = out.plane;
    debug_assert_eq!(plane, conv.output.plane() * lanes / if pooled { 4 } else { 1 });
    let vectors = geometry.row.div_ceil(S::LANES);
    let shape = block_shape(geometry.rows, vectors, pooled);
    // Output channels innermost: the input rows a block reads stay in the first-level cache
    // while each output channel's taps stream past. With the channels outermost, Conv-2's
    // conv2 (a 230 KB input) ran 1.3 times slower. When the rows of every input channel do
    // not fit that cache, the input channels are cut into groups whose rows do, and each
    // output channel's sums are parked in `partial` between its groups.
    let groups = conv.channel_groups(shape.rows, shape.vectors * S::LANES, lanes);
    let bounds = conv.group_bounds(&groups);
    let mut partial = vec![0.0f32; if groups.len() > 1 { channels.len() * PARTIAL } else { 0 }];
    let first = channels.start;
    for strip in (0..vectors).step_by(shape.vectors) {
        let v = shape.vectors.min(vectors - strip);
        let col = strip * S::LANES;
        let width = (geometry.row - col).min(v * S::LANES);
        for oh in rows.clone().step_by(shape.rows) {
            let r = shape.rows.min(rows.end - oh);
            let x = xp[oh * geometry.in_row + col..].as_ptr();
            let at =
                if pooled { oh / 2 * geometry.row / 2 + col / 2 } else { oh * geometry.row + col };
            for g in 0..groups.len() {
                let (resume, park) = (g > 0, g + 1 < groups.len());
                for o in channels.clone() {
                    let i = o * (groups.len() + 1) + g;
                    let taps = &conv.taps[bounds[i] as usize..bounds[i + 1] as usize];
                    let bias = conv.bias[o];
                    let sums = Sums {
                        bias,
                        // An empty slice when there is one group (nothing is parked).
                        partial: partial.as_mut_ptr().wrapping_add((o - first) * PARTIAL),
                        resume,
                        park,
                    };
                    // SAFETY: rows oh..oh + r and columns col..col + width of channel o's output
                    // (pooled: halved) lie inside its plane of out, and are this call's.
                    let y = unsafe { out.y.add(o * plane + at) };
                    /// `block::<r, v>` for the run-time `r` (1..=8) and `v` (1..=4).
                    macro_rules! block_of_shape {
                    ($(($rows:literal, $vectors:literal)),*) => {
                        match (r, v) {
                            // SAFETY: y as above; what the block reads is bounded in `block`;
                            // partial holds PARTIAL floats per channel when it is used.
                            $(($rows, $vectors) => unsafe {
                                block::<S, $rows, $vectors>(taps, x, y, geometry, sums, relu, width)
                            },)*
                            _ => unreachable!("block shapes are at most 8 x 4"),
                        }
                    };
                }
                    block_of_shape!(
                        (1, 1),
                        (1, 2),
                        (1, 3),
                        (1, 4),
                        (2, 1),
                        (2, 2),
                        (2, 3),
                        (2, 4),
                        (3, 1),
                        (3, 2),
                        (3, 3),
                        (3, 4),
                        (4, 1),
                        (4, 2),
                        (4, 3),
                        (4, 4),
                        (5, 1),
                        (5, 2),
                        (5, 3),
                        (5, 4),
                        (6, 1),
                        (6, 2),
                        (6, 3),
                        (6, 4),
                        (7, 1),
                        (7, 2),
                        (7, 3),
                        (7, 4),
                        (8, 1),
                        (8, 2),
                        (8, 3),
                        (8, 4)
                    );
                }
            }
        }
    }
}

/// Floats of one output channel's parked sums: the largest block, `R * V <= 12` vectors of
/// the widest registers (16 lanes).
const PARTIAL: usize = 12 * 16;

/// Where a block's sums start and end when its output channel's taps are split into groups.
#[derive(Clone, Copy)]
struct Sums {
    bias: f32,
    /// `PARTIAL` floats: the sums parked by the previous group, or for the next one.
    partial: *mut f32,
    /// Start from the parked sums instead of the bias.
    resume: bool,
    /// Park the sums instead of finishing (ReLU, pooling, store) into `y`.
    park: bool,
}

/// Output rows x vectors of one register block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Shape {
    rows: usize,
    vectors: usize,
}

/// The widest vector count a block holds.
const MAX_VECTORS: usize = 4;
/// The most output rows a block holds.
const MAX_ROWS: usize = 8;

/// The block shape that covers `rows` output rows of `vectors` vectors at the least cost,
/// with an even number of rows when the block pools row pairs.
/// A block of `r x v` accumulators costs per tap about `max(r * v + 2, 8)`: its loads and
/// FMAs plus the tap's own load and broadcast, and at least the 8 FMAs two pipes need in
/// flight to hide the 4-cycle latency (fewer accumulators stall). Ragged edges are blocks
/// of their own, so the cost counts them too. Each extra strip a row is cut into adds a
/// quarter: the blocks then read more, shorter runs of more input rows (Conv-2's conv2, 28
/// floats a row, ran 691 us in 6 x 2 blocks against 512 us in 2 x 4, which the counts
/// alone rank the other way).
fn block_shape(rows: usize, vectors: usize, pooled: bool) -> Shape {
    let cost = |r: usize, v: usize| (r * v + 2).max(8);
    let total = |shape: Shape| {
        let (full_rows, rest_rows) = (rows / shape.rows, rows % shape.rows);
        let (full_vectors, rest_vectors) = (vectors / shape.vectors, vectors % shape.vectors);
        let strip = |v: usize| {
            full_rows * cost(shape.rows, v) + cost(rest_rows, v) * (rest_rows > 0) as usize
        };
        let strips = full_vectors + (rest_vectors > 0) as usize;
        let blocks =
            full_vectors * strip(shape.vectors) + (rest_vectors > 0) as usize * strip(rest_vectors);
        blocks * (3 + strips)
    };
    let candidates = (1..=MAX_ROWS.min(rows).max(1)).flat_map(|r| {
        (1..=MAX_VECTORS.min(vectors).max(1)).map(move |v| Shape { rows: r, vectors: v })
    });
    candidates
        .filter(|s| s.rows * s.vectors <= 12 && (!pooled || s.rows % 2 == 0))
        .min_by_key(|&s| (total(s), usize::MAX - s.rows * s.vectors))
        .expect("a 1 x 1 block always fits")
}

/// Row lengths of one call, in floats.
#[derive(Clone, Copy)]
struct Rows {
    /// An output row: `OW * lanes`.
    row: usize,
    /// A padded input row: `Wp * lanes`.
    in_row: usize,
    /// Output rows per channel.
    rows: usize,
    lanes: usize,
    /// Max-pool 2x2 windows before storing (one example only).
    pooled: bool,
}

/// `R` output rows x `V` vectors from the bias (or the sums parked in `sums.partial`), every
/// tap adding `value * x[offset * lanes ..]`, then stored to `y` (or parked).
/// The block is `width` floats wide; the last vector stores only what lies within it. Pooled, pairs of rows and of columns are reduced by their maximum
/// and the block stores `R / 2` rows of `width / 2` values.
///
/// # Safety
/// `S`'s instruction set available. For every tap and `r < R`, the `LANES * V` floats from
/// `x + tap.offset * lanes + r * in_row` are readable: a tap's offset plus the block's last
/// output row stays within the padded input, and the at most `LANES - 1` floats a partial
/// vector reads past the end of an input row are in the next row or the slack. The selected lanes from
/// `y + r * row` are writable (pooled: `width / 2` values from `y + r / 2 * row / 2`, and
/// `R` is even). With `sums.resume` or `sums.park`, `PARTIAL` floats from `sums.partial`
/// are readable and writable.
#[inline(always)]
unsafe fn block<S: Simd, const R: usize, const V: usize>(
    taps: &[Tap],
    x: *const f32,
    y: *mut f32,
    g: Rows,
    sums: Sums,
    relu: bool,
    width: usize,
) {
    // SAFETY (all): the function's contract; R * V <= 12 vectors of partial.
    unsafe {
        let mut acc = [[S::splat(sums.bias); V]; R];
        if sums.resume {
            for (r, a) in acc.iter_mut().enumerate() {
                for (n, a) in a.iter_mut().enumerate() {
                    *a = S::load(sums.partial.add((r * V + n) * S::LANES));
                }
            }
        }
        let rows: [*const f32; R] = std::array::from_fn(|r| x.wrapping_add(r * g.in_row));
        for tap in taps {
            let v = S::splat(tap.value);
            let at = tap.offset as usize * g.lanes;
            for (a, row) in acc.iter_mut().zip(rows) {
                for (n, a) in a.iter_mut().enumerate() {
                    *a = S::fmadd(v, S::load(row.add(at + n * S::LANES)), *a);
                }
            }
        }
        if sums.park {
            for (r, a) in acc.iter().enumerate() {
                for (n, &a) in a.iter().enumerate() {
                    S::store(sums.partial.add((r * V + n) * S::LANES), a);
                }
            }
            return;
        }
        if g.pooled {
            return store_pooled::<S, R, V>(&acc, y, g.row / 2, width / 2, relu);
        }
        for (r, a) in acc.iter().enumerate() {
            for (n, &a) in a.iter().enumerate() {
                let a = if relu { S::relu(a) } else { a };
                let p = y.add(r * g.row + n * S::LANES);
                if n + 1 == V {
                    S::store_first_n(p, a, width - S::LANES * (V - 1));
                } else {
                    S::store(p, a);
                }
            }
        }
    }
}

/// The 2x2 maxima of `R` rows x `V` vectors (`R` even): `R / 2` rows of `outputs` values,
/// `row` floats apart, from `y`. The maxima of each row pair's vectors are taken two
/// vectors at a time, their adjacent lanes reduced in order ([`Simd::max_of_pairs`]); ReLU
/// after the maximum is ReLU before it.
///
/// # Safety
/// `S`'s instruction set available; the `outputs` values of each of the `R / 2` rows from
/// `y` writable, `outputs <= LANES / 2 * V`.
#[inline(always)]
unsafe fn store_pooled<S: Simd, const R: usize, const V: usize>(
    acc: &[[S::F32; V]; R],
    y: *mut f32,
    row: usize,
    outputs: usize,
    relu: bool,
) {
    let half = S::LANES / 2;
    // SAFETY (all): the function's contract: half * n + count <= outputs values of this row.
    unsafe {
        for (pair, rows) in acc.chunks_exact(2).enumerate() {
            let m: [S::F32; V] = std::array::from_fn(|n| S::max(rows[0][n], rows[1][n]));
            for n in (0..V).step_by(2) {
                let max = S::max_of_pairs(m[n], m[(n + 1).min(V - 1)]);
                let max = if relu { S::relu(max) } else { max };
                let count = (outputs - half * n).min(S::LANES);
                S::store_first_n(y.add(pair * row + half * n), max, count);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shapes measured fastest at batch 1 (Zen 3, minimum of thousands of calls, against
    /// the other shapes of 8 to 12 accumulators): LeNet-5's conv1 (24 x 24, pooled) and conv2
    /// (8 x 8, pooled), Conv-2's conv2 (28 x 28, pooled).
    #[test]
    fn block_shapes_of_the_shipped_layers() {
        let shape = |rows, vectors| Shape { rows, vectors };
        assert_eq!(block_shape(24, 3, true), shape(4, 3));
        assert_eq!(block_shape(8, 1, true), shape(8, 1));
        assert_eq!(block_shape(28, 4, true), shape(2, 4));
        // Odd sizes pool nothing, but still get even blocks when pooled.
        assert_eq!(block_shape(6, 1, true).rows % 2, 0);
    }
}
