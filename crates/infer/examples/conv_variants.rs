//! Each conv layer of Conv-2 and AlexNet (Han et al.'s densities; Conv-2 after 10 IMP rounds)
//! alone at batch 1, through every way ticket can run it, timed in alternation (one round of
//! calls per variant, then the next variant, `ROUNDS` times) so that a busy machine disturbs
//! all alike: the sparse kernel on one thread, on two split by output channels and by output
//! rows, the dense path (im2col + sgemm) on one and two threads, and what the model would
//! choose on two (`auto`: the density and working-set cost models). Prints per variant the
//! fastest and the median call and the fastest call's share of the peak multiply-add rate
//! of the threads it used, as `kernels::peak` measures it at the start (or, with
//! `TICKET_PEAK_GHZ`, 2 FMA units x 8 lanes per cycle at that clock), counting the
//! multiply-adds the variant does (all of them on the dense path).
//!
//!     cargo run --release -p ticket-infer --features fixture --example conv_variants -- \
//!         [LAYER-FILTER] [ROUNDS] [VARIANT-FILTER]
//!     TICKET_PEAK_GHZ=2.45 cargo run --release -p ticket-infer --features fixture \
//!         --example conv_variants -- alexnet/conv3 20
//!     cargo run --release -p ticket-infer --features fixture --example conv_variants -- "" 20 "1 thread"

use std::hint::black_box;
use std::time::Instant;
use ticket_core::Par;
use ticket_infer::fixture::{CsrParts, Random};
use ticket_infer::kernels::conv2d_blocked::{BlockedConv2d, Split};
use ticket_infer::kernels::{Activation, Image, Window};

/// Multiply-adds each variant runs per round: about 0.1-0.2 s of calls.
const WORK_PER_ROUND: f64 = 2e8;

fn main() {
    let square = |channels, size| Image { channels, height: size, width: size };
    // Name, input, output channels, [kernel, stride, padding], density, 2x2 max-pool fused.
    let layers = [
        ("conv-2/conv1", square(1, 28), 64, [3, 1, 1], 0.349, false),
        ("conv-2/conv2", square(64, 28), 64, [3, 1, 1], 0.349, true),
        ("alexnet/conv1", square(3, 224), 64, [11, 4, 2], 0.84, false),
        ("alexnet/conv2", square(64, 27), 192, [5, 1, 2], 0.38, false),
        ("alexnet/conv3", square(192, 13), 384, [3, 1, 1], 0.35, false),
        ("alexnet/conv4", square(384, 13), 256, [3, 1, 1], 0.37, false),
        ("alexnet/conv5", square(256, 13), 256, [3, 1, 1], 0.37, false),
    ];
    let args: Vec<String> = std::env::args().skip(1).collect();
    let filter = args.first().cloned().unwrap_or_default();
    let rounds: usize = args.get(1).map_or(5, |r| r.parse().expect("ROUNDS: a number"));
    let only = args.get(2).cloned().unwrap_or_default();
    let peak_ghz: Option<f64> = std::env::var("TICKET_PEAK_GHZ").ok().and_then(|g| g.parse().ok());
    let measured = ticket_infer::kernels::peak::measure(2);
    // Multiply-adds per microsecond of `threads` threads.
    let peak = |threads: usize| match (peak_ghz, threads) {
        (Some(ghz), t) => t as f64 * 16.0 * ghz * 1e3,
        (None, 1) => measured.one_thread,
        (None, _) => measured.all_threads,
    };
    println!(
        "peak ({}): {:.1} multiply-adds/ns on 1 thread, {:.1} on 2 ({:.2} cores' worth){}",
        measured.isa,
        measured.one_thread / 1e3,
        measured.all_threads / 1e3,
        measured.scaling(),
        peak_ghz.map_or(String::new(), |g| format!("; shares below use {g} GHz instead"))
    );
    let two = Par::Rayon(2);
    for (name, input, outputs, [k, s, p], density, pooled) in layers {
        if !name.contains(&filter) {
            continue;
        }
        let window = Window { kernel: [k; 2], stride: [s; 2], padding: [p; 2] };
        let mut rng = Random::new(7);
        let x = rng.vec(input.len(), 0.0, 1.0);
        let w = CsrParts::random(outputs, input.channels * k * k, density, &mut rng);
        let build = |min_density| {
            BlockedConv2d::with_dense_from(w.csr(), &w.bias, input, window, min_density).unwrap()
        };
        let (sparse, dense) = (build(f64::INFINITY), build(0.0));
        let auto = BlockedConv2d::new(w.csr(), &w.bias, input, window).unwrap();
        let auto_note = format!(
            "auto: {}, {:?}",
            if auto.is_dense() { "dense" } else { "sparse" },
            auto.split(2)
        );
        let variants = [
            ("sparse 1 thread", sparse.clone(), Par::Seq),
            ("sparse 2 by channels", sparse.clone().with_split(Split::Channels), two),
            ("sparse 2 by rows", sparse.clone().with_split(Split::Rows), two),
            ("dense 1 thread", dense.clone(), Par::Seq),
            ("dense 2 threads", dense, two),
            ("auto 2 threads", auto, two),
        ];
        let out = if pooled { sparse.pooled_output() } else { sparse.output() };
        let (mut y, mut scratch) =
            (vec![0.0; out.len()], ticket_infer::aligned::AlignedVec::default());
        let calls = (WORK_PER_ROUND / sparse.work() as f64).ceil() as usize;
        let mut times = vec![Vec::new(); variants.len()];
        for _ in 0..rounds {
            for ((variant, conv, par), times) in variants.iter().zip(&mut times) {
                if !variant.contains(only.as_str()) {
                    continue;
                }
                for _ in 0..calls {
                    let started = Instant::now();
                    let how = (Activation::Relu, pooled);
                    conv.run((black_box(&x), &mut y), 1, how, &mut scratch, *par);
                    times.push(started.elapsed().as_secs_f64() * 1e6);
                }
            }
        }
        let dense_work = (outputs * input.channels * k * k * sparse.output().plane()) as f64;
        println!(
            "{name}: {:.1} M kept multiply-adds of {:.1} M; {auto_note}",
            sparse.work() as f64 / 1e6,
            dense_work / 1e6
        );
        for ((variant, conv, par), times) in variants.iter().zip(&mut times) {
            if times.is_empty() {
                continue;
            }
            times.sort_by(f64::total_cmp);
            let (fastest, median) = (times[0], times[times.len() / 2]);
            let work = if conv.is_dense() { dense_work } else { sparse.work() as f64 };
            let share = format!("  {:5.1}% of peak", 100.0 * work / fastest / peak(par.threads()));
            println!("  {variant:<22} fastest {fastest:>9.1} us  median {median:>9.1} us{share}");
        }
    }
}
