//! Direct sparse convolution: PyTorch's `nn.Conv2d` (cross-correlation, stride, zero padding,
//! groups 1) with the weight held as CSR, one row per output channel and column
//! `(c * kh + i) * kw + j` for input channel `c` and kernel tap `(i, j)`.
//!
//! Activations are `[channels][height][width][batch]`. Each output channel starts from its
//! bias; then every nonzero of its row adds `value * x[c][oh * sh + i - ph][ow * sw + j - pw][..]`
//! to the output rows where that tap falls inside the image (padding contributes nothing, so it
//! is never materialised). With stride 1 along the width, the output row and the input row it
//! reads are contiguous over `(ow, batch)`: one long multiply-add per nonzero and output row,
//! which vectorises however small the batch. Nothing is unrolled into an im2col matrix.
//!
//! ```
//! use ticket_infer::kernels::{conv2d::Conv2d, Activation, Image, Window};
//! use ticket_infer::CsrRef;
//! // One 1x2 kernel [1, -1] over a 1x3 image: the differences of neighbours.
//! let w = CsrRef::new(1, 2, &[0, 2], &[0u16, 1], &[1.0, -1.0]).unwrap();
//! let input = Image { channels: 1, height: 1, width: 3 };
//! let window = Window { kernel: [1, 2], stride: [1, 1], padding: [0, 0] };
//! let mut y = [0.0; 2];
//! Conv2d::new(w, &[0.0], input, window).run(&[5.0, 3.0, 4.0], &mut y, 1, Activation::Identity);
//! assert_eq!(y, [2.0, -1.0]);
//! ```

use super::{Activation, Image, Isa, Window};
use crate::csr::{ColIndex, CsrRef};

/// The output image of a convolution (or pooling) with `channels` output channels. Panics
/// when the window does not fit the padded input or has a zero stride.
pub fn output_image(input: Image, window: Window, channels: usize) -> Image {
    let size = |d: usize, n: usize| {
        let padded = n + 2 * window.padding[d];
        let room = padded.checked_sub(window.kernel[d]).expect("the window fits the input");
        assert!(window.stride[d] > 0, "strides are positive");
        room / window.stride[d] + 1
    };
    Image { channels, height: size(0, input.height), width: size(1, input.width) }
}

/// A conv2d layer as the kernel sees it: the CSR weight (`[out, in * kh * kw]`), one bias
/// per output channel, the input image and the window, checked against each other once.
#[derive(Clone, Copy, Debug)]
pub struct Conv2d<'a, I: ColIndex> {
    w: CsrRef<'a, I>,
    bias: &'a [f32],
    input: Image,
    window: Window,
    output: Image,
}

impl<'a, I: ColIndex> Conv2d<'a, I> {
    /// Panics when `w`, `bias`, `input` and `window` do not fit together.
    pub fn new(w: CsrRef<'a, I>, bias: &'a [f32], input: Image, window: Window) -> Self {
        let [kh, kw] = window.kernel;
        assert_eq!(w.cols(), input.channels * kh * kw, "conv2d: columns are not in * kh * kw");
        assert_eq!(bias.len(), w.rows(), "conv2d: one bias per output channel");
        let output = output_image(input, window, w.rows());
        Conv2d { w, bias, input, window, output }
    }

    pub fn output(&self) -> Image {
        self.output
    }

    /// `y = act(conv(x, W) + bias)` for `x` `[C][H][W][batch]` and `y` `[O][OH][OW][batch]`
    /// (overwritten), on the calling thread. Panics when the lengths do not fit.
    pub fn run(&self, x: &[f32], y: &mut [f32], batch: usize, act: Activation) {
        self.run_with(Isa::detect(), x, y, batch, act);
    }

    pub(crate) fn run_with(
        &self,
        isa: Isa,
        x: &[f32],
        y: &mut [f32],
        batch: usize,
        act: Activation,
    ) {
        assert_eq!(x.len(), self.input.len() * batch, "conv2d: x length");
        assert_eq!(y.len(), self.output.len() * batch, "conv2d: y length");
        if batch == 0 {
            return;
        }
        match isa {
            // SAFETY: plain Rust.
            Isa::Portable => unsafe { direct::<I, Scalar>(self, x, y, batch, act) },
            // SAFETY: AVX2 and FMA are present (Isa::detect).
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2Fma => unsafe { super::vector::conv2d_direct::avx2(self, x, y, batch, act) },
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => unsafe { super::vector::conv2d_direct::avx512(self, x, y, batch, act) },
        }
    }
}

/// `y += v * x` on equally long slices: the step of [`direct`], one per instruction set.
/// A trait and not a closure: a closure (or a function called through `FnMut`) is compiled
/// as a function of its own, without the target features of the kernel it runs in, and its
/// intrinsics were calls instead of instructions.
pub(super) trait Axpy {
    /// # Safety
    /// The implementation's instruction set available.
    unsafe fn axpy(v: f32, x: &[f32], y: &mut [f32]);
}

/// [`Axpy`] in plain Rust.
struct Scalar;

impl Axpy for Scalar {
    #[inline(always)]
    unsafe fn axpy(v: f32, x: &[f32], y: &mut [f32]) {
        super::portable::axpy(v, x, y)
    }
}

/// The loop over output channels and their nonzeros, each doing `A::axpy` along output
/// rows. Inlined into each instruction set's caller so that its `axpy` is inlined too.
///
/// # Safety
/// `A`'s instruction set available.
#[inline(always)]
pub(super) unsafe fn direct<I: ColIndex, A: Axpy>(
    conv: &Conv2d<I>,
    x: &[f32],
    y: &mut [f32],
    batch: usize,
    act: Activation,
) {
    let Conv2d { w, bias, input, window, output } = *conv;
    let [kh, kw] = window.kernel;
    let [sh, sw] = window.stride;
    let [ph, pw] = window.padding;
    let (in_row, out_row) = (input.width * batch, output.width * batch);
    let (indices, values) = (w.indices(), w.values());
    for (o, yo) in y.chunks_exact_mut(output.plane() * batch).enumerate() {
        yo.fill(bias[o]);
        for k in w.row_range(o) {
            let col = indices[k].to_usize();
            let (c, i, j) = (col / (kh * kw), col / kw % kh, col % kw);
            let (rows, cols) = (
                window.inside(0, i, input.height, output.height),
                window.inside(1, j, input.width, output.width),
            );
            if cols.is_empty() {
                continue;
            }
            let v = values[k];
            let xc = &x[c * input.plane() * batch..(c + 1) * input.plane() * batch];
            for oh in rows {
                let xr = &xc[(oh * sh + i - ph) * in_row..][..in_row];
                let yr = &mut yo[oh * out_row..][..out_row];
                if sw == 1 {
                    let n = cols.len() * batch;
                    let from = (cols.start + j - pw) * batch;
                    // SAFETY: the caller's contract.
                    unsafe { A::axpy(v, &xr[from..from + n], &mut yr[cols.start * batch..][..n]) };
                } else {
                    for ow in cols.clone() {
                        let from = (ow * sw + j - pw) * batch;
                        // SAFETY: the caller's contract.
                        unsafe {
                            A::axpy(v, &xr[from..from + batch], &mut yr[ow * batch..][..batch])
                        };
                    }
                }
            }
        }
        act.apply(yo);
    }
}

#[cfg(test)]
pub(super) mod tests;
