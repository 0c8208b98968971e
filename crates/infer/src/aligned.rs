//! A growable f32 buffer that starts on a cache line. The kernels read activations a whole
//! register at a time at offsets that are multiples of 64 bytes (a tile of 32 examples is
//! 128 bytes per feature); from a 16-byte-aligned `Vec` every 64-byte AVX-512 load would
//! straddle two cache lines. Measured on a 4096 x 4096 layer at 5 % density, batch 64, two
//! threads (Intel Xeon, AVX-512): 863 us with an aligned input against 1,868 us shifted by
//! 16 bytes (`examples/spmm_ab.rs`). Callers of [`crate::kernels::spmm`] with their own
//! buffers get the same speed from one of these.

use std::ops::{Deref, DerefMut};

/// Floats per cache line.
const LINE: usize = 16;

#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([f32; LINE]);

/// `len` floats at the start of whole, 64-byte-aligned lines.
///
/// ```
/// let mut x = ticket_infer::aligned::AlignedVec::from_slice(&[1.0, 2.0, 3.0]);
/// assert_eq!(x.as_ptr() as usize % 64, 0);
/// x.resize(4);
/// assert_eq!(&x[..], &[1.0, 2.0, 3.0, 0.0]);
/// ```
#[derive(Default)]
pub struct AlignedVec {
    lines: Vec<Line>,
    len: usize,
}

impl AlignedVec {
    /// `n` zeros.
    pub fn zeros(n: usize) -> Self {
        let mut v = AlignedVec::default();
        v.resize(n);
        v
    }

    /// A copy of `values`.
    pub fn from_slice(values: &[f32]) -> Self {
        let mut v = AlignedVec::zeros(values.len());
        v.copy_from_slice(values);
        v
    }

    /// Sets the length to `n`; values beyond the old length are zero.
    pub fn resize(&mut self, n: usize) {
        let lines = n.div_ceil(LINE);
        if self.lines.len() < lines {
            self.lines.resize(lines, Line([0.0; LINE]));
        }
        if n > self.len {
            // Values between the old and new length may hold an earlier, longer content.
            let old = self.len;
            self.len = n;
            self[old..].fill(0.0);
        }
        self.len = n;
    }

    /// Makes the buffer hold at least `n` values (new ones are zero; old ones stay).
    pub fn grow(&mut self, n: usize) {
        if self.len < n {
            self.resize(n);
        }
    }
}

impl Deref for AlignedVec {
    type Target = [f32];

    fn deref(&self) -> &[f32] {
        // SAFETY: `Line` is 16 f32 without padding (repr(C)), so `lines` holds
        // `16 * lines.len() >= len` initialised, contiguous f32.
        unsafe { std::slice::from_raw_parts(self.lines.as_ptr().cast(), self.len) }
    }
}

impl DerefMut for AlignedVec {
    fn deref_mut(&mut self) -> &mut [f32] {
        // SAFETY: as in `deref`, borrowed mutably through `self`.
        unsafe { std::slice::from_raw_parts_mut(self.lines.as_mut_ptr().cast(), self.len) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_on_a_cache_line_and_zeroes_what_it_grows() {
        let mut v = AlignedVec::default();
        assert!(v.is_empty());
        v.resize(5);
        assert_eq!(v.as_ptr() as usize % 64, 0);
        v.copy_from_slice(&[1.0, 2.0, 3.0, 4.0, 5.0]);
        v.resize(2);
        assert_eq!(&v[..], &[1.0, 2.0]);
        v.grow(40);
        assert_eq!(v.len(), 40);
        assert_eq!(&v[..3], &[1.0, 2.0, 0.0]);
        assert!(v[2..].iter().all(|&x| x == 0.0));
        v.grow(3);
        assert_eq!(v.len(), 40);
        assert_eq!(v.as_ptr() as usize % 64, 0);
    }
}
