//! The blocked convolution with AVX2 + FMA: `R` output rows x `V` vectors of one output
//! channel in registers while its taps stream past.

use super::{BlockedConv2d, Tap};
use crate::kernels::avx2::{first_lanes, Lanes, LANES};
use std::arch::x86_64::*;
use std::ops::Range;

/// See `BlockedConv2d::channels_portable`.
///
/// # Safety
/// AVX2 and FMA available; `xp` holds at least `conv.padded_len(lanes)` floats,
/// `y.len() == channels.len() * conv.output.plane() * lanes`, `channels` within the layer.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn channels(
    conv: &BlockedConv2d,
    channels: Range<usize>,
    xp: &[f32],
    y: &mut [f32],
    lanes: usize,
    relu: bool,
) {
    debug_assert!(xp.len() >= conv.padded_len(lanes));
    debug_assert_eq!(y.len(), channels.len() * conv.output.plane() * lanes);
    let geometry = Rows {
        row: conv.output.width * lanes,
        in_row: conv.padded.width * lanes,
        rows: conv.output.height,
        lanes,
    };
    for (o, yo) in channels.zip(y.chunks_exact_mut(conv.output.plane() * lanes)) {
        let (taps, bias) = (conv.taps_of(o), conv.bias[o]);
        let mut col = 0;
        while col < geometry.row {
            let width = (geometry.row - col).min(4 * LANES);
            let vectors = width.div_ceil(LANES);
            // SAFETY: width - 8 * (vectors - 1) is in 1..=8.
            let last = unsafe { first_lanes(width - LANES * (vectors - 1)) };
            let (x, y) = (xp[col..].as_ptr(), yo[col..].as_mut_ptr());
            // SAFETY: the columns col..col + width of every output row lie inside yo; what
            // the blocks read is bounded in `block`.
            unsafe {
                match vectors {
                    1 => column::<8, 1>(taps, x, y, geometry, bias, relu, last),
                    2 => column::<6, 2>(taps, x, y, geometry, bias, relu, last),
                    3 => column::<4, 3>(taps, x, y, geometry, bias, relu, last),
                    _ => column::<3, 4>(taps, x, y, geometry, bias, relu, last),
                }
            }
            col += width;
        }
    }
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
}

/// All output rows of one column strip of `V` vectors: blocks of `R` rows, then single rows.
///
/// # Safety
/// As `block`, for every row of the channel.
#[inline]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn column<const R: usize, const V: usize>(
    taps: &[Tap],
    x: *const f32,
    y: *mut f32,
    g: Rows,
    bias: f32,
    relu: bool,
    last: __m256i,
) {
    let mut oh = 0;
    // SAFETY: forwarded; every block starts at an output row below g.rows.
    unsafe {
        while oh + R <= g.rows {
            block::<R, V>(taps, x.add(oh * g.in_row), y.add(oh * g.row), g, bias, relu, last);
            oh += R;
        }
        while oh < g.rows {
            block::<1, V>(taps, x.add(oh * g.in_row), y.add(oh * g.row), g, bias, relu, last);
            oh += 1;
        }
    }
}

/// `R` output rows x `V` vectors from `y`, every tap adding `value * x[offset * lanes ..]`.
/// The last vector of a row stores only the lanes `last` selects.
///
/// # Safety
/// AVX2 and FMA available. For every tap and `r < R`, the `8 * V` floats from
/// `x + tap.offset * lanes + r * in_row` are readable: a tap's offset plus the block's last
/// output row stays within the padded input, and the at most 7 floats a partial vector reads
/// past the end of an input row are in the next row or the slack. The selected lanes from
/// `y + r * row` are writable.
#[inline]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn block<const R: usize, const V: usize>(
    taps: &[Tap],
    x: *const f32,
    y: *mut f32,
    g: Rows,
    bias: f32,
    relu: bool,
    last: __m256i,
) {
    let mut acc = [[_mm256_set1_ps(bias); V]; R];
    let rows: [*const f32; R] = std::array::from_fn(|r| x.wrapping_add(r * g.in_row));
    for tap in taps {
        let v = _mm256_set1_ps(tap.value);
        let at = tap.offset as usize * g.lanes;
        for (a, row) in acc.iter_mut().zip(rows) {
            for (n, a) in a.iter_mut().enumerate() {
                // SAFETY: the function's contract.
                *a = _mm256_fmadd_ps(v, unsafe { _mm256_loadu_ps(row.add(at + n * LANES)) }, *a);
            }
        }
    }
    let zero = _mm256_setzero_ps();
    for (r, a) in acc.iter().enumerate() {
        for (n, &a) in a.iter().enumerate() {
            let a = if relu { _mm256_max_ps(a, zero) } else { a };
            // SAFETY: the function's contract.
            unsafe {
                let p = y.add(r * g.row + n * LANES);
                if n + 1 == V {
                    Lanes::First(last).store(p, a);
                } else {
                    _mm256_storeu_ps(p, a);
                }
            }
        }
    }
}
