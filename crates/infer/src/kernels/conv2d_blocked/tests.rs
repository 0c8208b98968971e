//! The blocked convolution of every instruction set against the f64 reference of `fixture`
//! and against each other, over geometries whose rows need every register block (1 to 4
//! vectors, full and partial, single remainder rows), strides 1 to 4 (stride phases that
//! divide the padded input or not) and batches that interleave 1 to 70 examples.

use super::*;
use crate::fixture::{assert_logits_close, CsrParts};
use crate::kernels::conv2d::tests::{layer_case, random_layer, reference};
use proptest::prelude::*;

fn geometry() -> impl Strategy<Value = (Image, Window, usize)> {
    (
        1usize..4,
        1usize..14,
        1usize..40,
        prop_oneof![Just([1, 1]), Just([3, 3]), Just([5, 5]), [1usize..5, 1usize..5]],
        [0usize..3, 0usize..3],
        prop_oneof![Just([1, 1]), [1usize..5, 1usize..5]],
        1usize..6,
    )
        .prop_filter_map("the window must fit the padded image", |(c, h, w, k, p, s, o)| {
            let input = Image { channels: c, height: h, width: w };
            let fits = (0..2).all(|d| [h, w][d] + 2 * p[d] >= k[d]);
            fits.then_some((input, Window { kernel: k, stride: s, padding: p }, o))
        })
}

fn run(
    conv: &BlockedConv2d,
    isa: Isa,
    x: &[f32],
    batch: usize,
    act: Activation,
    par: Par,
) -> Vec<f32> {
    let mut y = vec![f32::NAN; conv.output().len() * batch];
    // Scratch left dirty by a larger call: padding must not rely on a clean buffer.
    let mut padded = AlignedVec::from_slice(&vec![f32::NAN; conv.padded_len(batch) + 100]);
    dirty_thread_buffers(conv.padded_len(batch) + 100);
    // Threads whenever `par` offers them, however small the layer.
    conv.run_with(isa, (x, &mut y), batch, (act, false), &mut padded, (par, 0));
    y
}

/// Every pool thread's own padded buffer filled with NaN, as a larger layer may leave it.
fn dirty_thread_buffers(len: usize) {
    rayon::broadcast(|_| {
        THREAD_PADDED.with(|own| *own.borrow_mut() = AlignedVec::from_slice(&vec![f32::NAN; len]))
    });
}

/// The layer of `w` on the sparse kernel, however dense it is.
fn sparse_kernel(w: &CsrParts, input: Image, window: Window) -> BlockedConv2d {
    BlockedConv2d::with_dense_from(w.csr(), &w.bias, input, window, f64::INFINITY).unwrap()
}

/// `conv` with its input channels cut into groups of one: every block parks its sums
/// between input channels.
fn one_channel_groups(conv: &BlockedConv2d) -> BlockedConv2d {
    BlockedConv2d { window_bytes: 1, ..conv.clone() }
}

/// One example with the max-pool fused, with `isa`, on threads whenever `par` offers them.
fn run_pooled(conv: &BlockedConv2d, isa: Isa, x: &[f32], act: Activation, par: Par) -> Vec<f32> {
    let mut y = vec![f32::NAN; conv.pooled_output().len()];
    let mut padded = AlignedVec::from_slice(&vec![f32::NAN; conv.padded_len(1) + 100]);
    dirty_thread_buffers(conv.padded_len(1) + 100);
    conv.run_with(isa, (x, &mut y), 1, (act, true), &mut padded, (par, 0));
    y
}

/// The sum of |bias| and |w * x| of each output: what bounds the rounding of any order or
/// fusion of its multiply-adds.
fn magnitude(w: &CsrParts, input: Image, window: Window, x: &[f32], batch: usize) -> Vec<f64> {
    let mut abs_w = w.clone();
    abs_w.values.iter_mut().chain(&mut abs_w.bias).for_each(|v| *v = v.abs());
    let x_abs: Vec<f32> = x.iter().map(|v| v.abs()).collect();
    reference(&abs_w, input, window, &x_abs, batch, false)
}

/// Both ways of dividing a layer among threads.
const SPLITS: [Split; 2] = [Split::Channels, Split::Rows];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn blocked_conv2d_matches_reference_and_portable(
        (input, window, outputs) in geometry(),
        (density, batch, relu, seed) in layer_case(),
    ) {
        let (w, x) = random_layer(input, window, outputs, density, batch, seed);
        let act = if relu { Activation::Relu } else { Activation::Identity };
        let conv = sparse_kernel(&w, input, window);
        let want = reference(&w, input, window, &x, batch, relu);
        // What bounds the rounding of fused against separate multiply-adds.
        let magnitude = magnitude(&w, input, window, &x, batch);
        let terms = (w.nnz() + 1) as f64;
        let portable = run(&conv, Isa::Portable, &x, batch, act, Par::Seq);
        assert_logits_close(&portable, &want, "portable");
        for isa in Isa::available() {
            let got = run(&conv, isa, &x, batch, act, Par::Seq);
            assert_logits_close(&got, &want, &format!("{isa:?}"));
            for ((g, p), m) in got.iter().zip(&portable).zip(&magnitude) {
                let bound = 2.0 * terms * f32::EPSILON as f64 * m;
                prop_assert!((*g as f64 - *p as f64).abs() <= bound, "{isa:?}: {g} vs portable {p}");
            }
            // Channels or rows split over threads, and input channels cut into groups,
            // compute the same sums.
            for split in SPLITS {
                let threaded = run(&conv.clone().with_split(split), isa, &x, batch, act, Par::Rayon(3));
                prop_assert_eq!(&threaded, &got, "{:?}: threads, {:?}", isa, split);
            }
            let grouped = run(&one_channel_groups(&conv), isa, &x, batch, act, Par::Rayon(3));
            prop_assert_eq!(&grouped, &got, "{:?}: input channel groups", isa);
        }
    }

    /// Interleaving examples changes only where values sit, not how they are summed: each
    /// example of a batch equals that example alone, bit for bit, on every instruction set.
    #[test]
    fn a_batch_is_its_examples_bit_for_bit(
        (input, window, outputs) in geometry(),
        batch in 2..20usize,
        seed in any::<u64>(),
    ) {
        let (w, x) = random_layer(input, window, outputs, 0.5, batch, seed);
        let conv = sparse_kernel(&w, input, window);
        for isa in Isa::available() {
            let together = run(&conv, isa, &x, batch, Activation::Relu, Par::Seq);
            for b in 0..batch {
                let alone: Vec<f32> = x.iter().skip(b).step_by(batch).copied().collect();
                let y = run(&conv, isa, &alone, 1, Activation::Relu, Par::Seq);
                let from_batch: Vec<f32> = together.iter().skip(b).step_by(batch).copied().collect();
                prop_assert_eq!(&from_batch, &y, "{:?}: example {}", isa, b);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// Pooling in registers gives exactly the convolution followed by the pooling kernel on
    /// the same instruction set (a maximum rounds nothing), on one thread or several.
    #[test]
    fn fused_max_pool_is_conv_then_pool_bit_for_bit(
        (input, window, outputs) in geometry(),
        density in prop_oneof![Just(1.0), 0.0..1.0f64],
        relu in any::<bool>(),
        seed in any::<u64>(),
    ) {
        let (w, x) = random_layer(input, window, outputs, density, 1, seed);
        let conv = sparse_kernel(&w, input, window);
        prop_assume!(conv.can_pool());
        let act = if relu { Activation::Relu } else { Activation::Identity };
        for isa in Isa::available() {
            let full = run(&conv, isa, &x, 1, act, Par::Seq);
            let mut want = vec![f32::NAN; conv.pooled_output().len()];
            pool::pool2d(Pool::Max, conv.output(), POOL_2X2, &full, &mut want, 1);
            prop_assert_eq!(&run_pooled(&conv, isa, &x, act, Par::Seq), &want, "{:?}", isa);
            for split in SPLITS {
                let split_conv = conv.clone().with_split(split);
                let threaded = run_pooled(&split_conv, isa, &x, act, Par::Rayon(3));
                prop_assert_eq!(&threaded, &want, "{:?}: threads, {:?}", isa, split);
            }
            let grouped = one_channel_groups(&conv);
            prop_assert_eq!(&run_pooled(&grouped, isa, &x, act, Par::Seq), &want, "{:?}: groups", isa);
        }
    }
}

#[test]
fn inputs_beyond_32_bit_offsets_are_left_to_the_general_kernel() {
    let w = CsrRef::new(1, 1, &[0, 1], &[0u16], &[1.0]).unwrap();
    let window = Window { kernel: [1, 1], stride: [1, 1], padding: [0, 0] };
    let huge = Image { channels: 1, height: 70_000, width: 70_000 };
    assert!(BlockedConv2d::new(w, &[0.0], huge, window).is_none());
    let input = Image { channels: 1, height: 4, width: 4 };
    assert!(BlockedConv2d::new(w, &[0.0], input, window).is_some());
}

/// Stride phases by hand: a 1 x 5 image, kernel [1, 1, 1] with stride 2 and padding 1 sums
/// the windows (0, x0, x1), (x1, x2, x3), (x3, x4, 0).
#[test]
fn a_strided_padded_row_sums_its_windows() {
    let w = CsrRef::new(1, 3, &[0, 3], &[0u16, 1, 2], &[1.0, 1.0, 1.0]).unwrap();
    let input = Image { channels: 1, height: 1, width: 5 };
    let window = Window { kernel: [1, 3], stride: [1, 2], padding: [0, 1] };
    let conv = BlockedConv2d::new(w, &[0.5], input, window).unwrap();
    let x = [1.0, 2.0, 4.0, 8.0, 16.0];
    for isa in Isa::available() {
        let y = run(&conv, isa, &x, 1, Activation::Identity, Par::Seq);
        assert_eq!(y, [3.5, 14.5, 24.5], "{isa:?}");
    }
}

/// Row bands: cover the rows once, in order, nearly equal, aligned to row pairs when asked.
#[test]
fn row_bands_cover_the_rows_in_aligned_pieces() {
    assert_eq!(split_rows(13, 2, 1), [0..6, 6..13]);
    assert_eq!(split_rows(28, 2, 2), [0..14, 14..28]);
    assert_eq!(split_rows(26, 2, 2), [0..12, 12..26]);
    assert_eq!(split_rows(3, 8, 1), [0..1, 1..2, 2..3]);
    assert_eq!(split_rows(2, 3, 2), vec![Range { start: 0, end: 2 }]);
    for rows in 1..40 {
        for parts in 1..5 {
            for align in [1, 2] {
                let bands = split_rows(rows, parts, align);
                assert_eq!(bands.first().unwrap().start, 0);
                assert_eq!(bands.last().unwrap().end, rows);
                assert!(bands.windows(2).all(|b| b[0].end == b[1].start));
                assert!(bands.iter().all(|b| b.start % align == 0));
                assert!(bands.len() <= parts);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// The dense path (im2col and the dense product, whatever instruction set `gemm` picks)
    /// against the f64 reference within the rounding of any summation order (terms x eps x
    /// the sum of |terms|), batched, pooled and on threads; and it is chosen exactly from the
    /// given density on.
    #[test]
    fn dense_path_matches_reference(
        (input, window, outputs) in geometry(),
        (density, batch, relu, seed) in layer_case(),
    ) {
        let (w, x) = random_layer(input, window, outputs, density, batch, seed);
        let act = if relu { Activation::Relu } else { Activation::Identity };
        let conv = BlockedConv2d::with_dense_from(w.csr(), &w.bias, input, window, 0.0).unwrap();
        prop_assert!(conv.is_dense());
        let kept = w.nnz() as f64 / (w.rows * w.cols).max(1) as f64;
        let sparse = BlockedConv2d::with_dense_from(w.csr(), &w.bias, input, window, kept + 1e-9);
        prop_assert!(!sparse.unwrap().is_dense());
        let want = reference(&w, input, window, &x, batch, relu);
        let magnitude = magnitude(&w, input, window, &x, batch);
        let terms = (w.cols + 1) as f64;
        // Bands of one output row each, split over the threads in runs.
        let mut banded = conv.clone();
        banded.dense.as_mut().unwrap().band_bytes = 1;
        for (conv, par) in [(&conv, Par::Seq), (&conv, Par::Rayon(3)), (&banded, Par::Rayon(3))] {
            let got = run(conv, Isa::detect(), &x, batch, act, par);
            for ((g, r), m) in got.iter().zip(&want).zip(&magnitude) {
                let bound = 2.0 * terms * f32::EPSILON as f64 * m + f32::MIN_POSITIVE as f64;
                prop_assert!((*g as f64 - r).abs() <= bound, "{par:?}: {g} vs reference {r}");
            }
            if batch == 1 && conv.can_pool() {
                let mut pooled_want = vec![f32::NAN; conv.pooled_output().len()];
                pool::pool2d(Pool::Max, conv.output(), POOL_2X2, &got, &mut pooled_want, 1);
                let pooled = run_pooled(conv, Isa::detect(), &x, act, par);
                prop_assert_eq!(pooled, pooled_want, "{:?}: pooled", par);
            }
        }
    }
}

/// The split by working set on AlexNet's geometry at Han et al.'s densities: conv1's large
/// phase-split input splits by rows, conv3's many taps by channels; thin layers never by
/// rows. The dense path is taken by the 84% conv1, not by the 35% conv3 or a small layer.
#[test]
fn alexnet_layers_split_and_go_dense_as_their_working_sets_say() {
    let layer = |input: Image, outputs, [k, s, p]: [usize; 3], density| {
        let window = Window { kernel: [k; 2], stride: [s; 2], padding: [p; 2] };
        let mut rng = crate::fixture::Random::new(3);
        let w = CsrParts::random(outputs, input.channels * k * k, density, &mut rng);
        BlockedConv2d::new(w.csr(), &w.bias, input, window).unwrap()
    };
    let conv1 = layer(Image { channels: 3, height: 224, width: 224 }, 64, [11, 4, 2], 0.84);
    assert_eq!(conv1.split(2), Split::Rows);
    assert!(conv1.is_dense());
    let conv3 = layer(Image { channels: 192, height: 13, width: 13 }, 384, [3, 1, 1], 0.35);
    assert_eq!(conv3.split(2), Split::Channels);
    assert!(!conv3.is_dense());
    let thin = layer(Image { channels: 64, height: 8, width: 8 }, 4, [3, 1, 1], 0.9);
    assert_eq!(thin.split(2), Split::Channels, "4-row bands are too thin");
    assert!(!thin.is_dense(), "too small for the dense product");
    assert_eq!(thin.clone().with_split(Split::Rows).split(2), Split::Rows);
}
