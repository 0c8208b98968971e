//! One vector register of f32 lanes, as a trait over the x86 instruction sets the kernels
//! run with (AVX2 + FMA: 8 lanes, AVX-512: 16), so each kernel in `vector` is written once
//! and compiled once per instruction set.
//!
//! Every method is `#[inline(always)]` and carries no `target_feature` of its own: it is
//! compiled inside the kernel entry point that calls it, which enables the instruction set
//! (`vector::entry_points!`). Calling one anywhere else is undefined behaviour on CPUs
//! without that set, hence `unsafe`.

use std::arch::x86_64::*;

/// A module `$name` holding `avx2` and `avx512`: the generic `$name::<S: Simd, ..>` beside it
/// compiled with each instruction set enabled (the AVX-512 one also enables AVX2 + FMA, for
/// the narrow tails). Each is `unsafe`: the instruction set must be present, and the generic
/// function's own contract holds.
macro_rules! isa_entry_points {
    ($vis:vis fn $name:ident $(<$($g:ident: $bound:path),+>)? ($($arg:ident: $ty:ty),* $(,)?)
        $(-> $ret:ty)?) => {
        $vis mod $name {
            #[allow(unused_imports)]
            use super::*;

            /// # Safety
            /// AVX2 and FMA available; the generic function's contract.
            #[target_feature(enable = "avx2,fma")]
            pub(crate) unsafe fn avx2 $(<$($g: $bound),+>)? ($($arg: $ty),*) $(-> $ret)? {
                // SAFETY: forwarded contract.
                unsafe { super::$name::<$crate::kernels::simd::Avx2 $($(, $g)+)?>($($arg),*) }
            }

            /// # Safety
            /// AVX-512 F, BW and VL, AVX2 and FMA available; the generic function's contract.
            #[target_feature(enable = "avx2,fma,avx512f,avx512bw,avx512vl")]
            pub(crate) unsafe fn avx512 $(<$($g: $bound),+>)? ($($arg: $ty),*) $(-> $ret)? {
                // SAFETY: forwarded contract.
                unsafe { super::$name::<$crate::kernels::simd::Avx512 $($(, $g)+)?>($($arg),*) }
            }
        }
    };
}
pub(super) use isa_entry_points;

/// A register of `LANES` f32 values and a mask selecting its first lanes.
///
/// # Safety
/// Every method needs the implementing instruction set to be available and pointers whose
/// selected lanes are readable (loads) or writable (stores).
pub(super) trait Simd: Copy {
    type F32: Copy;
    /// Which lanes a masked load or store touches.
    type Mask: Copy;
    /// The registers a batch's last `< LANES` examples take: a masked AVX-512 register that
    /// is half empty costs more than an AVX2 one (measured: a 4096 x 4096 layer at batch 8
    /// took 500 us in masked 16-lane registers, 401 in 8-lane ones).
    type Narrow: Simd;
    const LANES: usize;

    /// The examples of a batch of `batch` that run in full registers of this set; the rest
    /// runs in [`Simd::Narrow`] ones.
    fn wide_part(batch: usize) -> usize {
        if Self::Narrow::LANES < Self::LANES {
            batch / Self::LANES * Self::LANES
        } else {
            batch
        }
    }

    unsafe fn splat(v: f32) -> Self::F32;
    unsafe fn load(p: *const f32) -> Self::F32;
    unsafe fn store(p: *mut f32, v: Self::F32);
    /// The mask of the first `n` lanes, `n < LANES`.
    unsafe fn first(n: usize) -> Self::Mask;
    /// The selected lanes from `p`, zero elsewhere; nothing else is read.
    unsafe fn load_masked(p: *const f32, m: Self::Mask) -> Self::F32;
    /// Writes the selected lanes only.
    unsafe fn store_masked(p: *mut f32, m: Self::Mask, v: Self::F32);
    /// `a * b + c`, rounded once.
    unsafe fn fmadd(a: Self::F32, b: Self::F32, c: Self::F32) -> Self::F32;
    /// `max(v, 0)` per lane (NaN becomes 0, as with `f32::max`).
    unsafe fn relu(v: Self::F32) -> Self::F32;
    /// Lane 0.
    unsafe fn first_lane(v: Self::F32) -> f32;
    /// Lanes `i` and `i + 8` added, down to 8 lanes (8 lanes stay as they are).
    unsafe fn fold_to_8(v: Self::F32) -> __m256;
    unsafe fn max(a: Self::F32, b: Self::F32) -> Self::F32;
    /// Lane `i` is the larger of lanes `2i` and `2i + 1` of `a` followed by `b`: a row of
    /// 2-wide max-pool windows, in order.
    unsafe fn max_of_pairs(a: Self::F32, b: Self::F32) -> Self::F32;
    /// The first `count` (`1..=LANES`) lanes of `v` to `p`, nothing beyond.
    unsafe fn store_first_n(p: *mut f32, v: Self::F32, count: usize);
}

/// Which lanes of a register a block reads and writes: all of them, or only the first few (a
/// row's last `< LANES` values, with masked loads and stores that touch nothing beyond).
#[derive(Clone, Copy)]
pub(super) enum Lanes<S: Simd> {
    All,
    First(S::Mask),
}

impl<S: Simd> Lanes<S> {
    /// # Safety
    /// The instruction set available; the selected lanes from `p` readable.
    #[inline(always)]
    pub(super) unsafe fn load(self, p: *const f32) -> S::F32 {
        // SAFETY: the caller's contract.
        unsafe {
            match self {
                Lanes::All => S::load(p),
                Lanes::First(m) => S::load_masked(p, m),
            }
        }
    }

    /// # Safety
    /// The instruction set available; the selected lanes from `p` writable.
    #[inline(always)]
    pub(super) unsafe fn store(self, p: *mut f32, v: S::F32) {
        // SAFETY: the caller's contract.
        unsafe {
            match self {
                Lanes::All => S::store(p, v),
                Lanes::First(m) => S::store_masked(p, m, v),
            }
        }
    }
}

/// AVX2 with FMA: 8 lanes, masks as vectors of `-1`/`0`.
#[derive(Clone, Copy)]
pub(super) struct Avx2;

impl Simd for Avx2 {
    type F32 = __m256;
    type Mask = __m256i;
    type Narrow = Avx2;
    const LANES: usize = 8;

    #[inline(always)]
    unsafe fn splat(v: f32) -> __m256 {
        // SAFETY: AVX (the trait's contract).
        unsafe { _mm256_set1_ps(v) }
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> __m256 {
        // SAFETY: the trait's contract.
        unsafe { _mm256_loadu_ps(p) }
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: __m256) {
        // SAFETY: the trait's contract.
        unsafe { _mm256_storeu_ps(p, v) }
    }
    #[inline(always)]
    unsafe fn first(n: usize) -> __m256i {
        const TABLE: [i32; 16] = [-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0];
        debug_assert!(n < 8);
        // SAFETY: 8 - n is at most 8, so the 8 lanes read lie inside TABLE.
        unsafe { _mm256_loadu_si256(TABLE.as_ptr().add(8 - n).cast()) }
    }
    #[inline(always)]
    unsafe fn load_masked(p: *const f32, m: __m256i) -> __m256 {
        // SAFETY: the trait's contract.
        unsafe { _mm256_maskload_ps(p, m) }
    }
    #[inline(always)]
    unsafe fn store_masked(p: *mut f32, m: __m256i, v: __m256) {
        // SAFETY: the trait's contract.
        unsafe { _mm256_maskstore_ps(p, m, v) }
    }
    #[inline(always)]
    unsafe fn fmadd(a: __m256, b: __m256, c: __m256) -> __m256 {
        // SAFETY: FMA (the trait's contract).
        unsafe { _mm256_fmadd_ps(a, b, c) }
    }
    #[inline(always)]
    unsafe fn relu(v: __m256) -> __m256 {
        // SAFETY: AVX. `max(v, 0)` returns the second operand (0) when v is NaN.
        unsafe { _mm256_max_ps(v, _mm256_setzero_ps()) }
    }
    #[inline(always)]
    unsafe fn first_lane(v: __m256) -> f32 {
        // SAFETY: AVX.
        unsafe { _mm256_cvtss_f32(v) }
    }
    #[inline(always)]
    unsafe fn fold_to_8(v: __m256) -> __m256 {
        v
    }
    #[inline(always)]
    unsafe fn max(a: __m256, b: __m256) -> __m256 {
        // SAFETY: AVX.
        unsafe { _mm256_max_ps(a, b) }
    }
    #[inline(always)]
    unsafe fn max_of_pairs(a: __m256, b: __m256) -> __m256 {
        // SAFETY: AVX2. Even and odd lanes split per 128-bit half ([a0 a2 b0 b2 | a4 a6 b4 b6]
        // and the odd ones), reduced, and the 64-bit pieces put back in order.
        unsafe {
            let even = _mm256_shuffle_ps::<0x88>(a, b);
            let odd = _mm256_shuffle_ps::<0xDD>(a, b);
            let max = _mm256_castps_pd(_mm256_max_ps(even, odd));
            _mm256_castpd_ps(_mm256_permute4x64_pd::<0xD8>(max))
        }
    }
    /// One store when all 8 are wanted, else 4-, 2- and 1-float pieces: masked stores
    /// (`vmaskmovps`) are microcoded and slow on AMD cores.
    #[inline(always)]
    unsafe fn store_first_n(p: *mut f32, v: __m256, count: usize) {
        debug_assert!((1..=8).contains(&count));
        // SAFETY (all stores): they cover exactly the first `count` floats from p.
        unsafe {
            if count == 8 {
                return _mm256_storeu_ps(p, v);
            }
            let (mut part, mut at, mut left) = (_mm256_castps256_ps128(v), p, count);
            if left >= 4 {
                _mm_storeu_ps(at, part);
                (part, at, left) = (_mm256_extractf128_ps::<1>(v), at.add(4), left - 4);
            }
            if left >= 2 {
                _mm_store_sd(at.cast(), _mm_castps_pd(part));
                (part, at, left) = (_mm_movehl_ps(part, part), at.add(2), left - 2);
            }
            if left == 1 {
                _mm_store_ss(at, part);
            }
        }
    }
}

/// AVX-512 (F): 16 lanes, masks as bit masks; kernels using it also enable AVX2 + FMA for
/// their narrow tails.
#[derive(Clone, Copy)]
pub(super) struct Avx512;

impl Simd for Avx512 {
    type F32 = __m512;
    type Mask = __mmask16;
    type Narrow = Avx2;
    const LANES: usize = 16;

    #[inline(always)]
    unsafe fn splat(v: f32) -> __m512 {
        // SAFETY: AVX-512F (the trait's contract).
        unsafe { _mm512_set1_ps(v) }
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> __m512 {
        // SAFETY: the trait's contract.
        unsafe { _mm512_loadu_ps(p) }
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: __m512) {
        // SAFETY: the trait's contract.
        unsafe { _mm512_storeu_ps(p, v) }
    }
    #[inline(always)]
    unsafe fn first(n: usize) -> __mmask16 {
        debug_assert!(n < 16);
        ((1u32 << n) - 1) as __mmask16
    }
    #[inline(always)]
    unsafe fn load_masked(p: *const f32, m: __mmask16) -> __m512 {
        // SAFETY: the trait's contract (masked-off lanes are not read, and do not fault).
        unsafe { _mm512_maskz_loadu_ps(m, p) }
    }
    #[inline(always)]
    unsafe fn store_masked(p: *mut f32, m: __mmask16, v: __m512) {
        // SAFETY: the trait's contract.
        unsafe { _mm512_mask_storeu_ps(p, m, v) }
    }
    #[inline(always)]
    unsafe fn fmadd(a: __m512, b: __m512, c: __m512) -> __m512 {
        // SAFETY: AVX-512F.
        unsafe { _mm512_fmadd_ps(a, b, c) }
    }
    #[inline(always)]
    unsafe fn relu(v: __m512) -> __m512 {
        // SAFETY: AVX-512F. As with AVX2, the second operand (0) is returned for NaN.
        unsafe { _mm512_max_ps(v, _mm512_setzero_ps()) }
    }
    #[inline(always)]
    unsafe fn first_lane(v: __m512) -> f32 {
        // SAFETY: AVX-512F.
        unsafe { _mm512_cvtss_f32(v) }
    }
    #[inline(always)]
    unsafe fn fold_to_8(v: __m512) -> __m256 {
        // SAFETY: AVX-512F (the upper half taken as 4 f64, which needs only F, not DQ).
        unsafe {
            let high = _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(v)));
            _mm256_add_ps(_mm512_castps512_ps256(v), high)
        }
    }
    #[inline(always)]
    unsafe fn max(a: __m512, b: __m512) -> __m512 {
        // SAFETY: AVX-512F.
        unsafe { _mm512_max_ps(a, b) }
    }
    #[inline(always)]
    unsafe fn max_of_pairs(a: __m512, b: __m512) -> __m512 {
        // SAFETY: AVX-512F. Lanes 0..16 of a and 16..32 of b, the even ones and the odd ones
        // picked in order.
        unsafe {
            let even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
            let odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
            _mm512_max_ps(_mm512_permutex2var_ps(a, even, b), _mm512_permutex2var_ps(a, odd, b))
        }
    }
    #[inline(always)]
    unsafe fn store_first_n(p: *mut f32, v: __m512, count: usize) {
        debug_assert!((1..=16).contains(&count));
        // SAFETY: the masked store writes exactly the first `count` floats from p.
        unsafe { _mm512_mask_storeu_ps(p, ((1u32 << count) - 1) as __mmask16, v) }
    }
}
