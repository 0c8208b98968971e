//! The AVX-512 decoders of compressed layers: sixteen fields per register, and the gap
//! columns of a whole chunk of rows in one pass without a branch per row.
//!
//! - Unpacking: sixteen `N`-bit fields span `2N` bytes; the first eight come from 16 bytes at
//!   the group's first byte and the last eight from 16 bytes `N` further on, each unpacked
//!   in its two 128-bit lanes with the byte shuffle and shifts of the AVX2 decoder.
//! - Codebook values: up to 16 centroids are one `vpermps`, 32 one `vpermi2ps`, and 64 to
//!   256 a tree of `vpermi2ps` and blends on the next index bits (no gather: on AMD's cores a
//!   16-lane gather is slower than the loads it replaces).
//! - Gap columns: each row restarts its running column, so the fields of many rows are
//!   summed in one segmented prefix sum whose segment heads come from a bitmap of row starts
//!   ([`super::ColumnStore::Gaps`]'s `heads`); fillers are squeezed out with `vpcompressd`.
//!   The AVX2 decoder walks row by row instead, a loop that ends after a different count in
//!   every row (LeNet-300-100's first layer at 2.87 %, 11,003 5-bit fields, one thread on
//!   an AMD EPYC Zen 5: 3.9 us row by row in AVX2 registers, 3.0 us here, about 17 cycles
//!   for each group of 16 fields).
//!
//! Each decoder computes what the scalar decoder does, value for value, so the products stay
//! bit for bit those of the f32 kernels on the decoded matrix.

use super::avx2::UNPACK;
use super::{each_register, lookup_values, CodebookValues, Unpacker};
use std::arch::x86_64::*;
use ticket_core::packed::filler;

/// Lanes of one register.
const LANES: usize = 16;

/// How to pull sixteen consecutive `bits`-bit fields out of the stream, the first `offset`
/// bits into its first byte.
#[derive(Clone, Copy)]
struct Unpack {
    shuffle: __m512i,
    shift: __m512i,
    mask: __m512i,
    bits: usize,
}

impl Unpacker for Unpack {
    const LANES: usize = LANES;
    type Fields = __m512i;
    type Values = __m512;

    #[inline(always)]
    unsafe fn store(p: *mut f32, v: __m512) {
        // SAFETY: the trait's contract.
        unsafe { _mm512_storeu_ps(p, v) }
    }

    #[inline(always)]
    unsafe fn new(bits: u32, offset: u32) -> Unpack {
        let (shuffle, shift) = &UNPACK[bits as usize - 1][offset as usize];
        // SAFETY: AVX-512 available (the trait's contract); the arrays hold 32 bytes each.
        unsafe {
            Unpack {
                shuffle: _mm512_broadcast_i64x4(_mm256_loadu_si256(shuffle.as_ptr().cast())),
                shift: _mm512_broadcast_i64x4(_mm256_loadu_si256(shift.as_ptr().cast())),
                mask: _mm512_set1_epi32((1 << bits) - 1),
                bits: bits as usize,
            }
        }
    }

    #[inline(always)]
    unsafe fn fields(&self, bytes: &[u8], byte: usize) -> __m512i {
        /// The 32 bytes from `at`, zeros past the end of `bytes` (the stream's last groups).
        #[cold]
        #[inline(never)]
        fn tail(bytes: &[u8], at: usize) -> [u8; 32] {
            let mut tail = [0u8; 32];
            let rest = &bytes[at.min(bytes.len())..];
            let n = rest.len().min(32);
            tail[..n].copy_from_slice(&rest[..n]);
            tail
        }
        // SAFETY: AVX-512 available; both 16-byte windows lie inside `bytes` (checked) or
        // inside the local copy (bits <= 8, so the second ends by byte 24 of it).
        unsafe {
            let (low, high) = if byte + self.bits + 16 <= bytes.len() {
                let p = bytes.as_ptr().add(byte);
                (_mm_loadu_si128(p.cast()), _mm_loadu_si128(p.add(self.bits).cast()))
            } else {
                let t = tail(bytes, byte);
                let p = t.as_ptr();
                (_mm_loadu_si128(p.cast()), _mm_loadu_si128(p.add(self.bits).cast()))
            };
            let both = _mm512_inserti64x4::<1>(
                _mm512_castsi256_si512(_mm256_broadcastsi128_si256(low)),
                _mm256_broadcastsi128_si256(high),
            );
            let windows = _mm512_shuffle_epi8(both, self.shuffle);
            _mm512_and_si512(_mm512_srlv_epi32(windows, self.shift), self.mask)
        }
    }
}

/// Values `first..first + n` (`range`) of `book`'s stream into `out[..n]`: up to 16 centroids in one
/// register, more in pairs of registers ([`pairs_lookup`]).
///
/// # Safety
/// AVX-512 F and BW available; `out.len() >= n.next_multiple_of(16)` (whole registers are
/// stored); every field of the range is in the stream (checked by the loader).
#[target_feature(enable = "avx512f,avx512bw")]
pub(super) unsafe fn codebook_values(book: CodebookValues, range: (usize, usize), out: &mut [f32]) {
    let table = book.table;
    // SAFETY: AVX-512 available; the registers read table[..256].
    unsafe {
        let regs: [__m512; 16] =
            std::array::from_fn(|i| _mm512_loadu_ps(table.as_ptr().add(16 * i)));
        match book.bits {
            1..=4 => {
                lookup_values::<Unpack>(book, range, out, |idx| _mm512_permutexvar_ps(idx, regs[0]))
            }
            5 => lookup_values::<Unpack>(book, range, out, |idx| pairs_lookup::<1>(&regs, idx)),
            6 => lookup_values::<Unpack>(book, range, out, |idx| pairs_lookup::<2>(&regs, idx)),
            7 => lookup_values::<Unpack>(book, range, out, |idx| pairs_lookup::<4>(&regs, idx)),
            _ => lookup_values::<Unpack>(book, range, out, |idx| pairs_lookup::<8>(&regs, idx)),
        }
    }
}

/// The centroids of codes `idx` from the first `2 * PAIRS` registers of the table: each
/// pair covers 32 centroids (code bits 0-4); code bits 5, 6, 7 then pick among the pairs,
/// halving their number at each bit.
///
/// # Safety
/// AVX-512 F available.
#[inline(always)]
pub(crate) unsafe fn pairs_lookup<const PAIRS: usize>(regs: &[__m512; 16], idx: __m512i) -> __m512 {
    // SAFETY: AVX-512 F (the caller's contract).
    unsafe {
        let mut picked: [__m512; 8] = std::array::from_fn(|p| {
            if p < PAIRS {
                _mm512_permutex2var_ps(regs[2 * p], idx, regs[2 * p + 1])
            } else {
                _mm512_setzero_ps()
            }
        });
        let (mut live, mut bit) = (PAIRS, 32);
        while live > 1 {
            let high = _mm512_test_epi32_mask(idx, _mm512_set1_epi32(bit));
            for p in 0..live / 2 {
                picked[p] = _mm512_mask_blend_ps(high, picked[2 * p], picked[2 * p + 1]);
            }
            live /= 2;
            bit *= 2;
        }
        picked[0]
    }
}

/// The columns of consecutive whole rows whose gap fields are `first..first + fields` of
/// `stream`, into `out`; returns how many (the rows' entries: the fields less their fillers).
/// `heads` has bit `i` (of byte `i / 8`) set when field `i` is the first of a row.
///
/// Each field adds `field + 1` to its row's running column (`field` for a filler), which
/// restarts at 0 with each row: an inclusive prefix sum over the sixteen lanes that stops at
/// heads (four shift-and-add steps, each skipping the lanes a head separates from the lane
/// shifted in), then the running column carried from the previous group added to the lanes
/// before the group's first head.
///
/// # Safety
/// AVX-512 F and BW and POPCNT available; `3 <= bits <= 8`; the fields are whole rows of a stream
/// checked by the loader (`ticket_core::packed::GapRows`), the first a head; `heads` holds
/// the bits of fields up to `first + fields + 16` plus 4 bytes; `out` has room for the
/// entries plus 16.
#[target_feature(enable = "avx512f,avx512bw,popcnt")]
pub(super) unsafe fn gap_columns(
    stream: &[u8],
    bits: u32,
    heads: &[u8],
    first: usize,
    fields: usize,
    out: &mut [u32],
) -> usize {
    assert!((first + fields + LANES) / 8 + 4 <= heads.len(), "gap_columns: heads too short");
    // SAFETY: AVX-512 available; each head read is 4 bytes below heads.len() (asserted);
    // every store of 16 lanes starts at `written`, at most the rows' entries, and out has
    // 16 more.
    unsafe {
        let (fill, one, zero) =
            (_mm512_set1_epi32(filler(bits) as i32), _mm512_set1_epi32(1), _mm512_setzero_si512());
        // The running column after the previous group's last lane, in every lane.
        let mut carry = zero;
        let mut written = 0usize;
        each_register::<Unpack>(stream, bits, (first, fields), |f, g, valid| {
            let is_fill = _mm512_cmpeq_epi32_mask(f, fill);
            // An entry moves on by field + 1, a filler by field.
            let mut sums = _mm512_mask_mov_epi32(_mm512_add_epi32(f, one), is_fill, f);
            let at = first + g;
            let word = u32::from_le_bytes(*heads.as_ptr().add(at / 8).cast::<[u8; 4]>());
            // Lanes with a head at or below them, up to the distance summed so far.
            let mut headed = (word >> (at % 8)) as u16;
            macro_rules! step {
                ($d:literal) => {
                    let shifted = _mm512_alignr_epi32::<{ 16 - $d }>(sums, zero);
                    sums = _mm512_mask_add_epi32(sums, !headed, sums, shifted);
                    headed |= headed << $d;
                };
            }
            step!(1);
            step!(2);
            step!(4);
            step!(8);
            sums = _mm512_mask_add_epi32(sums, !headed, sums, carry);
            carry = _mm512_permutexvar_epi32(_mm512_set1_epi32(LANES as i32 - 1), sums);
            let lanes = if valid == LANES { !0 } else { (1u16 << valid) - 1 };
            let entries = !is_fill & lanes;
            let cols = _mm512_maskz_compress_epi32(entries, _mm512_sub_epi32(sums, one));
            _mm512_storeu_si512(out.as_mut_ptr().add(written).cast(), cols);
            written += entries.count_ones() as usize;
        });
        debug_assert!(written + LANES <= out.len());
        written
    }
}
