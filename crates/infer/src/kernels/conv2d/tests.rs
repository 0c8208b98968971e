//! The direct convolution of every instruction set against the f64 reference of `fixture`, over random geometries (strides, paddings, non-square and 1x1 kernels).

use super::*;
use crate::fixture::{assert_logits_close, reference_forward, CsrParts, Random};
use proptest::prelude::*;
use ticket_core::{Graph, Layer};

/// The reference of `fixture` (PyTorch's formula over dense weights, in f64) for each
/// example of `x` (`[C][H][W][batch]`), in the kernel's layout `[O][OH][OW][batch]`.
pub(in crate::kernels) fn reference(
    w: &CsrParts,
    input: Image,
    window: Window,
    x: &[f32],
    batch: usize,
    relu: bool,
) -> Vec<f64> {
    let conv = Layer::Conv2d {
        name: "conv".into(),
        inputs: input.channels,
        outputs: w.rows,
        kernel: window.kernel,
        stride: window.stride,
        padding: window.padding,
    };
    let mut layers = vec![conv, Layer::Flatten];
    if relu {
        layers.insert(1, Layer::Relu);
    }
    let graph = Graph::new(vec![input.channels, input.height, input.width], layers).unwrap();
    let per_example: Vec<Vec<f64>> = (0..batch)
        .map(|b| {
            let example: Vec<f32> = x.iter().skip(b).step_by(batch).copied().collect();
            reference_forward(&graph, std::slice::from_ref(w), &example)
        })
        .collect();
    (0..graph.outputs() * batch).map(|i| per_example[i % batch][i / batch]).collect()
}

/// Density (including all and none), batch (1, a few, several AVX2 blocks), ReLU or not,
/// and a seed: what a conv test varies besides the geometry.
pub(in crate::kernels) fn layer_case() -> impl Strategy<Value = (f64, usize, bool, u64)> {
    (
        prop_oneof![Just(1.0), Just(0.0), 0.0..1.0f64],
        prop_oneof![Just(1), 2..12usize, 30..70usize],
        any::<bool>(),
        any::<u64>(),
    )
}

/// A random CSR weight of `outputs` channels over `input` and `window`, and `batch` inputs in
/// [-1, 1), from `seed`.
pub(in crate::kernels) fn random_layer(
    input: Image,
    window: Window,
    outputs: usize,
    density: f64,
    batch: usize,
    seed: u64,
) -> (CsrParts, Vec<f32>) {
    let mut rng = Random::new(seed);
    let cols = input.channels * window.kernel[0] * window.kernel[1];
    let w = CsrParts::random(outputs, cols, density, &mut rng);
    let x = rng.vec(input.len() * batch, -1.0, 1.0);
    (w, x)
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
        (density, batch, relu, seed) in layer_case(),
    ) {
        let (w, x) = random_layer(input, window, outputs, density, batch, seed);
        let want = reference(&w, input, window, &x, batch, relu);
        let act = if relu { Activation::Relu } else { Activation::Identity };
        let out = output_image(input, window, outputs);
        let idx16 = w.indices_u16();
        let w16 = CsrRef::new(w.rows, w.cols, &w.indptr, &idx16, &w.values).unwrap();
        for isa in Isa::available() {
            let mut y = vec![f32::NAN; out.len() * batch];
            Conv2d::new(w.csr(), &w.bias, input, window).run_with(isa, &x, &mut y, batch, act);
            assert_logits_close(&y, &want, &format!("{isa:?}"));
            let mut y16 = vec![f32::NAN; out.len() * batch];
            Conv2d::new(w16, &w.bias, input, window).run_with(isa, &x, &mut y16, batch, act);
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
    Conv2d::new(w, &[0.0], input, window);
}
