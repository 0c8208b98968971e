//! The direct convolution of every instruction set against PyTorch's formula evaluated
//! densely in f64, over random geometries (strides, paddings, non-square and 1x1 kernels).

use super::*;
use crate::fixture::{CsrParts, Random};
use proptest::prelude::*;

/// `y[o][oh][ow][b] = bias[o] + sum_{c,i,j} W[o][c][i][j] x[c][oh*sh+i-ph][ow*sw+j-pw][b]`,
/// taps in the padding skipped, and the sum of |terms| that bounds the rounding error.
fn reference(
    w: &CsrParts,
    input: Image,
    window: Window,
    x: &[f32],
    batch: usize,
) -> (Vec<f64>, Vec<f64>) {
    let dense = w.dense();
    let out = output_image(input, window, w.rows);
    let [kh, kw] = window.kernel;
    let (mut sum, mut mag) = (vec![0.0; out.len() * batch], vec![0.0; out.len() * batch]);
    for o in 0..w.rows {
        for oh in 0..out.height {
            for ow in 0..out.width {
                for b in 0..batch {
                    let at = ((o * out.height + oh) * out.width + ow) * batch + b;
                    sum[at] = w.bias[o] as f64;
                    mag[at] = (w.bias[o] as f64).abs();
                    for c in 0..input.channels {
                        for i in 0..kh {
                            for j in 0..kw {
                                let h = (oh * window.stride[0] + i) as isize
                                    - window.padding[0] as isize;
                                let v = (ow * window.stride[1] + j) as isize
                                    - window.padding[1] as isize;
                                if h < 0
                                    || v < 0
                                    || h >= input.height as isize
                                    || v >= input.width as isize
                                {
                                    continue;
                                }
                                let (h, v) = (h as usize, v as usize);
                                let wv = dense[o * w.cols + (c * kh + i) * kw + j] as f64;
                                let xv = x[((c * input.height + h) * input.width + v) * batch + b];
                                sum[at] += wv * xv as f64;
                                mag[at] += (wv * xv as f64).abs();
                            }
                        }
                    }
                }
            }
        }
    }
    (sum, mag)
}

fn geometry() -> impl Strategy<Value = (Image, Window, usize)> {
    (
        1usize..4,
        1usize..10,
        1usize..10,
        prop_oneof![Just([1, 1]), Just([3, 3]), [1usize..5, 1usize..5]],
        [1usize..3, 1usize..3],
        [0usize..3, 0usize..3],
        1usize..6,
    )
        .prop_filter_map("the window must fit the padded image", |(c, h, w, k, s, p, o)| {
            let input = Image { channels: c, height: h, width: w };
            let fits = (0..2).all(|d| [h, w][d] + 2 * p[d] >= k[d]);
            fits.then_some((input, Window { kernel: k, stride: s, padding: p }, o))
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn conv2d_matches_dense_reference(
        (input, window, outputs) in geometry(),
        density in prop_oneof![Just(1.0), Just(0.0), 0.0..1.0f64],
        batch in prop_oneof![Just(1), 2..12usize, 30..70usize],
        relu in any::<bool>(),
        seed in any::<u64>(),
    ) {
        let mut rng = Random::new(seed);
        let cols = input.channels * window.kernel[0] * window.kernel[1];
        let w = CsrParts::random(outputs, cols, density, &mut rng);
        let x = rng.vec(input.len() * batch, -1.0, 1.0);
        let (mut want, mag) = reference(&w, input, window, &x, batch);
        if relu {
            want.iter_mut().for_each(|v| *v = v.max(0.0));
        }
        let act = if relu { Activation::Relu } else { Activation::Identity };
        let out = output_image(input, window, outputs);
        let idx16 = w.indices_u16();
        let w16 = CsrRef::new(w.rows, w.cols, &w.indptr, &idx16, &w.values).unwrap();
        for isa in Isa::available() {
            let mut y = vec![f32::NAN; out.len() * batch];
            conv2d_with(isa, w.csr(), &w.bias, input, window, &x, &mut y, batch, act);
            for (i, ((&g, &r), &m)) in y.iter().zip(&want).zip(&mag).enumerate() {
                prop_assert!(((g as f64) - r).abs() <= 1e-5 * (m + 1e-3), "{isa:?} u32 {i}: {g} vs {r}");
            }
            let mut y16 = vec![f32::NAN; out.len() * batch];
            conv2d_with(isa, w16, &w.bias, input, window, &x, &mut y16, batch, act);
            prop_assert_eq!(&y16, &y, "{:?}: u16 and u32 indices", isa);
        }
    }
}

#[test]
#[should_panic(expected = "conv2d: columns are not in * kh * kw")]
fn a_weight_of_the_wrong_width_panics() {
    let w = CsrRef::new(1, 4, &[0, 1], &[1u16], &[1.0]).unwrap();
    let input = Image { channels: 1, height: 3, width: 3 };
    let window = Window { kernel: [3, 3], stride: [1, 1], padding: [0, 0] };
    conv2d(w, &[0.0], input, window, &[0.0; 9], &mut [0.0], 1, Activation::Identity);
}
