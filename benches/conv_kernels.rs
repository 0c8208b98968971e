//! The conv layers of LeNet-5, Conv-2 and AlexNet alone, one example (batch 1, the layout
//! every conv runs in), on the calling thread: the blocked kernel at the layer's ticket
//! density (Han et al.'s for LeNet-5 and AlexNet, 10 IMP rounds for Conv-2), the same kernel
//! with every weight kept (the dense layer through it), and the general direct kernel at the
//! ticket density (stride-1 layers only: on AlexNet's stride-4 conv1 it takes seconds). A 2x2
//! max-pool is fused where the recipe has one after the layer. AlexNet's layers also run
//! split over two threads (`blocked-2-threads`; by output channels or rows, as the layer's
//! working-set model picks for its batch-1 forward pass). `examples/conv_variants.rs` of
//! ticket-infer times the thread splits and the dense path of the same layers in alternation.
//!
//! Throughput is in kept multiply-adds (criterion's elements); a table at the end gives
//! G multiply-adds per second and the share of the peak of the cores used at the clock given by
//! `TICKET_PEAK_GHZ` (2 FMA units x 8 lanes per cycle), if set.
//!
//!     cargo bench --bench conv_kernels
//!     TICKET_PEAK_GHZ=2.45 cargo bench --bench conv_kernels -- lenet5/conv1
//!     TICKET_PEAK_GHZ=2.45 cargo bench --bench conv_kernels -- alexnet

use criterion::{BenchmarkId, Criterion, Throughput};
use std::hint::black_box;
use std::time::{Duration, Instant};
use ticket_core::Par;
use ticket_infer::fixture::{CsrParts, Random};
use ticket_infer::kernels::conv2d::Conv2d;
use ticket_infer::kernels::conv2d_blocked::BlockedConv2d;
use ticket_infer::kernels::{Activation, Image, Window};

/// One conv layer of a shipped recipe: net, name, input, output channels, kernel, stride,
/// padding, ticket density, whether a 2x2 max-pool follows.
struct Layer {
    net: &'static str,
    name: &'static str,
    input: Image,
    outputs: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
    density: f64,
    pooled: bool,
}

const fn image(channels: usize, size: usize) -> Image {
    Image { channels, height: size, width: size }
}

const LAYERS: [Layer; 9] = [
    Layer {
        net: "lenet5",
        name: "conv1",
        input: image(1, 28),
        outputs: 20,
        kernel: 5,
        stride: 1,
        padding: 0,
        density: 0.66,
        pooled: true,
    },
    Layer {
        net: "lenet5",
        name: "conv2",
        input: image(20, 12),
        outputs: 50,
        kernel: 5,
        stride: 1,
        padding: 0,
        density: 0.12,
        pooled: true,
    },
    Layer {
        net: "conv2",
        name: "conv1",
        input: image(1, 28),
        outputs: 64,
        kernel: 3,
        stride: 1,
        padding: 1,
        density: 0.349,
        pooled: false,
    },
    Layer {
        net: "conv2",
        name: "conv2",
        input: image(64, 28),
        outputs: 64,
        kernel: 3,
        stride: 1,
        padding: 1,
        density: 0.349,
        pooled: true,
    },
    alexnet("conv1", image(3, 224), 64, [11, 4, 2], 0.84),
    alexnet("conv2", image(64, 27), 192, [5, 1, 2], 0.38),
    alexnet("conv3", image(192, 13), 384, [3, 1, 1], 0.35),
    alexnet("conv4", image(384, 13), 256, [3, 1, 1], 0.37),
    alexnet("conv5", image(256, 13), 256, [3, 1, 1], 0.37),
];

/// A conv layer of torchvision's AlexNet: `[kernel, stride, padding]`; its 3x3 / 2 max-pools
/// overlap and are not fused.
const fn alexnet(
    name: &'static str,
    input: Image,
    outputs: usize,
    [kernel, stride, padding]: [usize; 3],
    density: f64,
) -> Layer {
    Layer { net: "alexnet", name, input, outputs, kernel, stride, padding, density, pooled: false }
}

fn main() {
    let mut c = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();
    // criterion's name filter (its first positional argument) also limits the table: AlexNet's
    // layers alone take a minute.
    let filter = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-') && a.chars().any(|c| c.is_ascii_alphabetic()));
    let mut rows = Vec::new();
    for layer in &LAYERS {
        let group = format!("{}/{}", layer.net, layer.name);
        if filter.as_ref().is_some_and(|f| !group.contains(f.as_str()) && !f.contains(&group)) {
            continue;
        }
        let window = Window {
            kernel: [layer.kernel; 2],
            stride: [layer.stride; 2],
            padding: [layer.padding; 2],
        };
        let cols = layer.input.channels * layer.kernel * layer.kernel;
        let mut rng = Random::new(7);
        let x = rng.vec(layer.input.len(), 0.0, 1.0);
        let mut group = c.benchmark_group(group);
        let threads = if layer.net == "alexnet" { 2 } else { 1 };
        let variants = [("blocked", layer.density, 1), ("blocked-dense", 1.0, 1)]
            .into_iter()
            .chain((threads > 1).then_some(("blocked-2-threads", layer.density, threads)));
        for (variant, density, threads) in variants {
            let par = if threads > 1 { Par::Rayon(threads) } else { Par::Seq };
            let w = CsrParts::random(layer.outputs, cols, density, &mut rng);
            // The sparse kernel however dense the layer (`new` would take the dense path for
            // AlexNet's conv1 and the kept-dense variants).
            let sparse = f64::INFINITY;
            let conv =
                BlockedConv2d::with_dense_from(w.csr(), &w.bias, layer.input, window, sparse)
                    .unwrap();
            let out = if layer.pooled { conv.pooled_output() } else { conv.output() };
            let (mut y, mut padded) =
                (vec![0.0; out.len()], ticket_infer::aligned::AlignedVec::default());
            let work = (w.nnz() * conv.output().plane()) as u64;
            group.throughput(Throughput::Elements(work));
            let mut run = || {
                let how = (Activation::Relu, layer.pooled);
                conv.run((black_box(&x), &mut y), 1, how, &mut padded, par);
            };
            group.bench_function(BenchmarkId::from_parameter(variant), |b| b.iter(&mut run));
            let name = format!("{}/{}/{variant}", layer.net, layer.name);
            rows.push((name, work, best_us(run), threads));
        }
        if layer.stride > 1 {
            group.finish();
            continue;
        }
        // The general direct kernel has no fused pool: the convolution alone.
        let w = CsrParts::random(layer.outputs, cols, layer.density, &mut rng);
        let conv = Conv2d::new(w.csr(), &w.bias, layer.input, window);
        let mut y = vec![0.0; conv.output().len()];
        let work = (w.nnz() * conv.output().plane()) as u64;
        group.throughput(Throughput::Elements(work));
        let mut run = || conv.run(black_box(&x), &mut y, 1, Activation::Relu);
        group.bench_function(BenchmarkId::from_parameter("direct"), |b| b.iter(&mut run));
        rows.push((format!("{}/{}/direct", layer.net, layer.name), work, best_us(run), 1));
        group.finish();
    }
    let peak_ghz: Option<f64> = std::env::var("TICKET_PEAK_GHZ").ok().and_then(|v| v.parse().ok());
    println!(
        "\n{:<28} {:>12} {:>10} {:>12} {:>10}",
        "layer", "multiply-adds", "best us", "G/s", "of peak"
    );
    for (name, work, us, threads) in rows {
        let rate = work as f64 / us / 1e3;
        let peak = |ghz: f64| 16.0 * ghz * threads as f64;
        let share = peak_ghz.map_or("-".into(), |ghz| format!("{:.0}%", 100.0 * rate / peak(ghz)));
        println!("{name:<28} {work:>12} {us:>10.2} {rate:>12.1} {share:>10}");
    }
}

/// The fastest of 2,000 calls (or of those that fit in 5 s, at least 20), in microseconds:
/// the figure least disturbed by other work.
fn best_us(mut run: impl FnMut()) -> f64 {
    let start = Instant::now();
    let mut best = f64::INFINITY;
    for call in 0..2000 {
        if call >= 20 && start.elapsed() > Duration::from_secs(5) {
            break;
        }
        let t = Instant::now();
        run();
        best = best.min(t.elapsed().as_secs_f64() * 1e6);
    }
    best
}
