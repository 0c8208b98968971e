//! The AVX2 decoders of compressed layers: eight fields at a time straight from the packed
//! bytes into registers, looked up or summed there, and stored once into the row buffer the
//! f32 row kernel reads.
//!
//! - Unpacking: eight `N`-bit fields span exactly `N` bytes, so one 16-byte load, a byte
//!   shuffle that gives each 32-bit lane the four bytes around its field, a per-lane shift
//!   and a mask yield eight fields; the shuffle and shifts depend only on `N` and the bit
//!   offset of the first field, and stay fixed along a stream.
//! - Codebook values: a table of up to 8 centroids is one `vpermps`, 16 two and a blend, 32
//!   four and three blends; 64 to 256 centroids a gather from the 256-entry table.
//! - Gap columns: each field adds `field + 1` to the running column (`field` for a filler),
//!   an 8-lane prefix sum gives the columns, and fillers (rare: a gap of `2^N - 1` or more)
//!   are squeezed out with a left-packing permutation.
//! - Int8 values: sign extension, conversion and one multiply by the row's scale.
//!
//! Each decoder computes what the scalar decoder does, value for value, so the products stay
//! bit for bit those of the f32 kernels on the decoded matrix.

use super::{each_register, lookup_values, CodebookValues, Unpacker};
use std::arch::x86_64::*;
use ticket_core::packed::filler;

/// Lanes of one register.
const LANES: usize = 8;

/// The permutation that moves the lanes set in an 8-bit mask to the front, as 8 lane indices
/// of one byte each (a left-pack).
const LEFT_PACK: [u64; 256] = {
    let mut table = [0u64; 256];
    let mut mask = 0;
    while mask < 256 {
        let (mut lane, mut at, mut packed) = (0, 0, 0u64);
        while lane < LANES {
            if mask & (1 << lane) != 0 {
                packed |= (lane as u64) << (8 * at);
                at += 1;
            }
            lane += 1;
        }
        table[mask] = packed;
        mask += 1;
    }
    table
};

/// How many lanes an 8-bit mask sets (a table: `popcnt` is not among the features checked).
const ENTRIES: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut mask = 0;
    while mask < 256 {
        table[mask] = (mask as u32).count_ones() as u8;
        mask += 1;
    }
    table
};

/// How to pull eight consecutive `bits`-bit fields out of 16 bytes whose first field starts
/// `offset` bits into them.
#[derive(Clone, Copy)]
pub(super) struct Unpack {
    shuffle: __m256i,
    shift: __m256i,
    mask: __m256i,
}

/// The byte shuffle and the lane shifts of [`Unpack`] for every width (`bits - 1`) and bit
/// offset: lane `i` takes the four bytes from the one holding bit `offset + i * bits`
/// (at most bit 63: byte 7, so the last byte read is 10 of 16) and shifts the field down.
pub(super) const UNPACK: [[([u8; 32], [i32; LANES]); 8]; 8] = {
    let mut table = [[([0u8; 32], [0i32; LANES]); 8]; 8];
    let mut bits = 1;
    while bits <= 8 {
        let mut offset = 0;
        while offset < 8 {
            let (shuffle, shift) = &mut table[bits - 1][offset];
            let mut lane = 0;
            while lane < LANES {
                let bit = offset + lane * bits;
                let mut b = 0;
                while b < 4 {
                    shuffle[4 * lane + b] = (bit / 8 + b) as u8;
                    b += 1;
                }
                shift[lane] = (bit % 8) as i32;
                lane += 1;
            }
            offset += 1;
        }
        bits += 1;
    }
    table
};

impl Unpacker for Unpack {
    const LANES: usize = LANES;
    type Fields = __m256i;
    type Values = __m256;

    #[inline(always)]
    unsafe fn store(p: *mut f32, v: __m256) {
        // SAFETY: the trait's contract.
        unsafe { _mm256_storeu_ps(p, v) }
    }

    #[inline(always)]
    unsafe fn new(bits: u32, offset: u32) -> Unpack {
        let (shuffle, shift) = &UNPACK[bits as usize - 1][offset as usize];
        // SAFETY: AVX2 available (the trait's contract); the arrays hold 32 bytes each.
        unsafe {
            Unpack {
                shuffle: _mm256_loadu_si256(shuffle.as_ptr().cast()),
                shift: _mm256_loadu_si256(shift.as_ptr().cast()),
                mask: _mm256_set1_epi32((1 << bits) - 1),
            }
        }
    }

    #[inline(always)]
    unsafe fn fields(&self, bytes: &[u8], byte: usize) -> __m256i {
        // SAFETY: AVX2 available; the 16 bytes loaded lie inside `bytes` or inside the local
        // copy.
        unsafe {
            let raw = if byte + 16 <= bytes.len() {
                _mm_loadu_si128(bytes.as_ptr().add(byte).cast())
            } else {
                let mut tail = [0u8; 16];
                let rest = &bytes[byte.min(bytes.len())..];
                tail[..rest.len()].copy_from_slice(rest);
                _mm_loadu_si128(tail.as_ptr().cast())
            };
            let both = _mm256_broadcastsi128_si256(raw);
            let windows = _mm256_shuffle_epi8(both, self.shuffle);
            _mm256_and_si256(_mm256_srlv_epi32(windows, self.shift), self.mask)
        }
    }
}

/// Values `first..first + n` (`range`) of `book`'s stream into `out[..n]`: up to 8 centroids in one
/// register, 16 or 32 in two or four, more gathered from the table in memory.
///
/// # Safety
/// AVX2 available; `out.len() >= n.next_multiple_of(8)` (whole registers are stored); every
/// field of the range is in the stream (checked by the loader).
#[target_feature(enable = "avx2")]
pub(super) unsafe fn codebook_values(book: CodebookValues, range: (usize, usize), out: &mut [f32]) {
    let table = book.table;
    // SAFETY: AVX2 available; the registers read table[..32]; the gather reads table at
    // indices below 2^bits <= 256.
    unsafe {
        let regs: [__m256; 4] =
            std::array::from_fn(|i| _mm256_loadu_ps(table.as_ptr().add(LANES * i)));
        match book.bits {
            1..=3 => lookup_values::<Unpack>(book, range, out, |idx| {
                _mm256_permutevar8x32_ps(regs[0], idx)
            }),
            4 => lookup_values::<Unpack>(book, range, out, |idx| pick(regs[0], regs[1], idx, 3)),
            5 => lookup_values::<Unpack>(book, range, out, |idx| {
                let low = pick(regs[0], regs[1], idx, 3);
                let high = pick(regs[2], regs[3], idx, 3);
                _mm256_blendv_ps(low, high, bit_as_sign(idx, 4))
            }),
            _ => lookup_values::<Unpack>(book, range, out, |idx| {
                _mm256_i32gather_ps::<4>(table.as_ptr(), idx)
            }),
        }
    }
}

/// Per lane, `a[i & 7]` or `b[i & 7]` as bit `bit` of `i` is clear or set.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn pick(a: __m256, b: __m256, idx: __m256i, bit: i32) -> __m256 {
    let (a, b) = (_mm256_permutevar8x32_ps(a, idx), _mm256_permutevar8x32_ps(b, idx));
    _mm256_blendv_ps(a, b, bit_as_sign(idx, bit))
}

/// Bit `bit` of each lane moved to its sign bit (what `blendv` looks at).
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn bit_as_sign(idx: __m256i, bit: i32) -> __m256 {
    let shifted = _mm256_sllv_epi32(idx, _mm256_set1_epi32(31 - bit));
    _mm256_castsi256_ps(shifted)
}

/// The inclusive prefix sum of the 8 lanes.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn prefix_sum(v: __m256i) -> __m256i {
    let v = _mm256_add_epi32(v, _mm256_slli_si256::<4>(v));
    let v = _mm256_add_epi32(v, _mm256_slli_si256::<8>(v));
    // Lane 3 (the low half's total) added to every lane of the high half.
    let low_total = _mm256_permutevar8x32_epi32(v, _mm256_set1_epi32(3));
    _mm256_add_epi32(v, _mm256_blend_epi32::<0xF0>(_mm256_setzero_si256(), low_total))
}

/// The columns of one row of gaps, fields `first..first + fields` of `stream`, into
/// `out[..]`; returns how many (the row's entries: the fields less its fillers).
///
/// # Safety
/// AVX2 available; `3 <= bits <= 8`; the row was checked by the loader
/// (`ticket_core::packed::GapRows`); `out` has room for the row's entries plus 8.
#[inline]
#[target_feature(enable = "avx2")]
pub(super) unsafe fn gap_columns(
    stream: &[u8],
    bits: u32,
    first: usize,
    fields: usize,
    out: &mut [u32],
) -> usize {
    // SAFETY: AVX2 available; every store of 8 lanes starts at `written`, at most the row's
    // entries, and out has 8 more.
    unsafe {
        let (fill, one) = (_mm256_set1_epi32(filler(bits) as i32), _mm256_set1_epi32(1));
        // The column after the last entry decoded: a scalar, so that the only chain from one
        // group to the next is one integer add (the group's own sums do not depend on it).
        let mut next = 0i32;
        let mut written = 0usize;
        each_register::<Unpack>(stream, bits, (first, fields), |f, _, valid| {
            let is_fill = _mm256_cmpeq_epi32(f, fill);
            // An entry moves on by field + 1, a filler by field: field + 1 + (-1 or 0).
            let step = _mm256_add_epi32(_mm256_add_epi32(f, one), is_fill);
            let moved = prefix_sum(step);
            let after = _mm256_add_epi32(moved, _mm256_set1_epi32(next));
            let cols = _mm256_sub_epi32(after, one);
            let lanes = (1u32 << valid) - 1;
            let entries = !(_mm256_movemask_ps(_mm256_castsi256_ps(is_fill)) as u32) & lanes;
            // Always left-packed: whether a group holds a filler is too random to branch on.
            let order = _mm_cvtsi64_si128(LEFT_PACK[entries as usize] as i64);
            let packed = _mm256_permutevar8x32_epi32(cols, _mm256_cvtepu8_epi32(order));
            _mm256_storeu_si256(out.as_mut_ptr().add(written).cast(), packed);
            written += ENTRIES[entries as usize] as usize;
            let last = _mm256_permutevar8x32_epi32(moved, _mm256_set1_epi32(valid as i32 - 1));
            next += _mm256_cvtsi256_si32(last);
        });
        debug_assert!(written + LANES <= out.len());
        written
    }
}

/// `out[i] = scale * q[k + i]` for one row's int8 values, `k..end` of all the layer's `q`.
/// Whole registers are stored: up to 7 values past the row's, which the next row (decoded
/// after this one) overwrites or which fall in the buffer's slack.
///
/// # Safety
/// AVX2 available; `k <= end <= q.len()`; `out.len() >= (end - k).next_multiple_of(8)`.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn int8_values(q: &[i8], k: usize, end: usize, scale: f32, out: &mut [f32]) {
    assert!(k <= end && end <= q.len(), "int8_values: row outside q");
    assert!(out.len() >= (end - k).next_multiple_of(LANES), "int8_values: out too short");
    // SAFETY: AVX2 available; each 8-byte load lies inside q (checked), each store inside
    // out (asserted).
    unsafe {
        let s = _mm256_set1_ps(scale);
        let (mut at, mut i) = (k, 0);
        while at < end && at + LANES <= q.len() {
            let bytes = _mm_loadl_epi64(q.as_ptr().add(at).cast());
            let v = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(bytes));
            _mm256_storeu_ps(out.as_mut_ptr().add(i), _mm256_mul_ps(s, v));
            at += LANES;
            i += LANES;
        }
        // The layer's last values, fewer than 8 bytes from the end of q.
        for (o, &qi) in out[i..].iter_mut().zip(&q[at.min(end)..end]) {
            *o = scale * qi as f32;
        }
    }
}
