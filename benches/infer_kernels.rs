//! Sparse kernels against the dense path, with the machine's memory bandwidth beside them.
//!
//! - `triad`: a STREAM triad `a = b + s * c` over 3 x 64 MB, one and two threads: the memory
//!   bandwidth the sparse products are compared with.
//! - `lenet`: the LeNet-300-100 forward pass (784-300-100-10, a random mask per layer at each
//!   density), sparse CSR vs dense `sgemm`, batch 1 / 8 / 64 / 1024, all cores.
//! - `lenet5`: the LeNet-5 forward pass (two 5x5 convs, max pools, fc 500, fc 10) at the
//!   per-layer densities of Han et al. 2015 (`han`) and a tenth of them (`han10`), sparse (direct
//!   sparse convolution) vs dense (`Network::logits`), batch 1 / 64 / 1024, all cores.
//! - `layer4096`: one 4096 x 4096 layer, where streaming the matrix from memory is the cost:
//!   `spmm` at 1 / 5 / 10 % density vs dense `sgemm`, batch 1 / 8 / 64; `cold` cycles through
//!   8 copies of the 5 % matrix (40 MB, more than the L3 cache) so each call reads DRAM.
//!
//! - `decode`: turning f16 values into f32 with half's bulk conversion, for the nonzeros of the
//!   3.6 % LeNet and of the 5 % 4096 layer: what decoding per call (instead of once at load)
//!   would add to every forward pass.
//!
//! Criterion reports throughput (FLOP/s as elements, or bytes/s); a table at the end gives
//! both for every benchmark, as a share of the measured triad bandwidth and of the measured
//! peak multiply-add rate (`kernels::peak`, with the instruction set the kernels dispatch to).
//!
//!     cargo bench --bench infer_kernels            # or: just bench-infer
//!     cargo bench --bench infer_kernels -- lenet/sparse/d3.6

use criterion::{BenchmarkId, Criterion, Throughput};
use half::f16;
use half::slice::HalfFloatSliceExt;
use rayon::prelude::*;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::{Duration, Instant};
use ticket_core::sgemm::{sgemm, MatMut, MatRef};
use ticket_core::{Graph, Par, Weighted};
use ticket_infer::aligned::AlignedVec;
use ticket_infer::fixture::{net_of, random_model, CsrParts, Random};
use ticket_infer::{kernels, Activation, CsrRef, Scratch, SparseModel};

const LENET_DENSITIES: [f64; 6] = [1.0, 0.5, 0.2, 0.1, 0.036, 0.01];
const LENET_BATCHES: [usize; 4] = [1, 8, 64, 1024];
/// LeNet-5 as Caffe defines it (Han et al. 2015): conv 20@5x5, max pool, conv 50@5x5, max
/// pool, fc 500, fc 10, on 1x28x28.
const LENET5: &str = r#"{"input":[1,28,28],"layers":[
  {"op":"conv2d","name":"conv1","in":1,"out":20,"kernel":[5,5]},{"op":"relu"},
  {"op":"maxpool2d","kernel":[2,2]},
  {"op":"conv2d","name":"conv2","in":20,"out":50,"kernel":[5,5]},{"op":"relu"},
  {"op":"maxpool2d","kernel":[2,2]},{"op":"flatten"},
  {"op":"linear","name":"fc1","in":800,"out":500},{"op":"relu"},
  {"op":"linear","name":"fc2","in":500,"out":10}]}"#;
const LENET5_DENSITIES: [f64; 4] = [0.66, 0.12, 0.08, 0.19];
const LENET5_BATCHES: [usize; 3] = [1, 64, 1024];
const WIDE_DENSITIES: [f64; 3] = [0.01, 0.05, 0.1];
const WIDE_BATCHES: [usize; 3] = [1, 8, 64];
const WIDE: usize = 4096;
/// Elements per triad array: 64 MB each, far beyond the caches.
const TRIAD_LEN: usize = 16 << 20;

/// What one benchmark moves and computes per call, and the times criterion measured.
#[derive(Default)]
struct Entry {
    flops: f64,
    bytes: f64,
    threads: usize,
    /// (iterations, elapsed) of every routine call; the last `samples` are the measurement.
    calls: Vec<(u64, Duration)>,
}

/// Every benchmark's entry, by name, filled in as criterion runs them.
#[derive(Default)]
struct Table(RefCell<BTreeMap<String, Entry>>);

impl Table {
    /// Times `iters` calls of `f` for criterion and keeps the measurement for the table.
    fn timed(&self, name: &str, iters: u64, mut f: impl FnMut()) -> Duration {
        let start = Instant::now();
        for _ in 0..iters {
            f();
        }
        let elapsed = start.elapsed();
        self.0.borrow_mut().entry(name.to_string()).or_default().calls.push((iters, elapsed));
        elapsed
    }

    fn describe(&self, name: &str, flops: f64, bytes: f64, threads: usize) {
        let mut t = self.0.borrow_mut();
        let e = t.entry(name.to_string()).or_default();
        (e.flops, e.bytes, e.threads) = (flops, bytes, threads);
    }

    /// Median seconds per call over the last `samples` routine calls (the measurement phase).
    fn median(&self, name: &str, samples: usize) -> Option<f64> {
        let t = self.0.borrow();
        let calls = &t.get(name)?.calls;
        let mut per: Vec<f64> = calls[calls.len().saturating_sub(samples)..]
            .iter()
            .map(|(n, d)| d.as_secs_f64() / *n as f64)
            .collect();
        per.sort_by(f64::total_cmp);
        per.get(per.len() / 2).copied()
    }
}

fn main() {
    let samples = 20;
    let mut c = Criterion::default()
        .sample_size(samples)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();
    let table = Table::default();
    triad(&mut c, &table);
    lenet(&mut c, &table);
    lenet5(&mut c, &table);
    layer4096(&mut c, &table);
    decode(&mut c, &table);
    c.final_summary();
    print_table(&table, samples);
}

fn triad(c: &mut Criterion, table: &Table) {
    let b = vec![1.0f32; TRIAD_LEN];
    let cc = vec![2.0f32; TRIAD_LEN];
    let mut a = vec![0.0f32; TRIAD_LEN];
    let bytes = (3 * TRIAD_LEN * 4) as f64;
    let mut g = c.benchmark_group("triad");
    g.throughput(Throughput::Bytes(bytes as u64));
    for threads in [1usize, 2] {
        let name = format!("triad/{threads}t");
        table.describe(&name, 2.0 * TRIAD_LEN as f64, bytes, threads);
        g.bench_function(format!("{threads}t"), |bench| {
            bench.iter_custom(|iters| {
                table.timed(&name, iters, || {
                    let chunk = TRIAD_LEN.div_ceil(threads);
                    a.par_chunks_mut(chunk)
                        .zip(b.par_chunks(chunk).zip(cc.par_chunks(chunk)))
                        .with_max_len(1)
                        .for_each(|(a, (b, c))| {
                            for ((a, b), c) in a.iter_mut().zip(b).zip(c) {
                                *a = b + 3.0 * c;
                            }
                        });
                    black_box(&mut a);
                })
            })
        });
    }
    g.finish();
}

fn lenet(c: &mut Criterion, table: &Table) {
    let graph: Graph = "784-300-100-10".parse().unwrap();
    for density in LENET_DENSITIES {
        forward_pass(c, table, "lenet", &graph, &[density; 3], &pct(density), &LENET_BATCHES);
    }
}

/// LeNet-5 at the per-layer densities Han et al. (2015) keep (66 / 12 / 8 / 19 %) and at
/// 1/10 of them.
fn lenet5(c: &mut Criterion, table: &Table) {
    let graph = Graph::from_json(LENET5).unwrap();
    for (scale, label) in [(1.0, "han"), (0.1, "han10")] {
        let densities = LENET5_DENSITIES.map(|d| d * scale);
        forward_pass(c, table, "lenet5", &graph, &densities, label, &LENET5_BATCHES);
    }
}

/// Multiply-adds of one example through the weighted layers of `graph`: each weight (or
/// only the kept ones, `nnz`) once per output position.
fn macs(graph: &Graph, nnz: impl Fn(usize) -> usize) -> f64 {
    let positions = |w: &Weighted| graph.output_shape(w.index)[1..].iter().product::<usize>();
    graph.weighted().iter().enumerate().map(|(i, w)| (nnz(i) * positions(w)) as f64).sum()
}

/// A whole forward pass of `graph` with random masks at `densities`, sparse CSR vs dense
/// `Network::logits`, at every batch size, all cores.
fn forward_pass(
    c: &mut Criterion,
    table: &Table,
    model: &str,
    graph: &Graph,
    densities: &[f64],
    label: &str,
    batches: &[usize],
) {
    let par = Par::Rayon(2);
    let (features, classes) = (graph.inputs(), graph.outputs());
    let max_batch = batches.iter().copied().max().unwrap_or(1);
    let inputs = Random::new(3).vec(max_batch * features, 0.0, 1.0);
    let layers = random_model(graph, densities, 1);
    let net = net_of(graph, &layers);
    let sparse = SparseModel::from_net(&net);
    let sparse_macs = macs(graph, |i| layers[i].nnz());
    let dense_macs = macs(graph, |i| graph.weighted()[i].shape.len());
    let mut g = c.benchmark_group(format!("{model}/d{label}"));
    for &batch in batches {
        let x = &inputs[..batch * features];
        g.throughput(Throughput::Elements((2.0 * sparse_macs * batch as f64) as u64));
        let name = format!("{model}/sparse/d{label}/b{batch}");
        let bytes = sparse.weight_bytes() as f64 + 4.0 * (features + classes) as f64 * batch as f64;
        // Small passes run on the calling thread (see kernels::PAR_MIN_WORK).
        let work = sparse_macs as usize * batch;
        let threads = if work < kernels::PAR_MIN_WORK { 1 } else { 2 };
        table.describe(&name, 2.0 * sparse_macs * batch as f64, bytes, threads);
        let mut scratch = Scratch::default();
        let mut out = vec![0.0; batch * classes];
        g.bench_function(BenchmarkId::new("sparse", batch), |bench| {
            bench.iter_custom(|iters| {
                table.timed(&name, iters, || {
                    sparse.logits_into(x, batch, &mut out, &mut scratch, par).unwrap();
                    black_box(&out);
                })
            })
        });
        let name = format!("{model}/dense/d{label}/b{batch}");
        let dense_flops = 2.0 * dense_macs * batch as f64;
        table.describe(&name, dense_flops, 4.0 * graph.dense_params() as f64, 2);
        g.throughput(Throughput::Elements(dense_flops as u64));
        g.bench_function(BenchmarkId::new("dense", batch), |bench| {
            bench.iter_custom(|iters| {
                table.timed(&name, iters, || {
                    black_box(net.logits(x, batch, par));
                })
            })
        });
    }
    g.finish();
}

/// A density as a percentage for names: 0.036 -> "3.6".
fn pct(density: f64) -> String {
    format!("{}", (density * 1000.0).round() / 10.0)
}

/// Bytes a CSR product streams: values, u16 indices, indptr, plus input and output.
fn csr_bytes(w: &CsrParts, batch: usize) -> f64 {
    (6 * w.nnz() + 4 * (w.rows + 1) + 4 * (w.rows + w.cols) * batch) as f64
}

fn layer4096(c: &mut Criterion, table: &Table) {
    let par = Par::Rayon(2);
    let mut rng = Random::new(4);
    // Activations on cache lines, as `SparseModel` keeps them (see `ticket_infer::aligned`).
    let x = AlignedVec::from_slice(&rng.vec(WIDE * WIDE_BATCHES[2], -1.0, 1.0));
    let mut y = AlignedVec::default();
    y.resize(WIDE * WIDE_BATCHES[2]);
    let mut g = c.benchmark_group("layer4096");
    for density in WIDE_DENSITIES {
        let w = CsrParts::random(WIDE, WIDE, density, &mut rng);
        let idx = w.indices_u16();
        let csr = CsrRef::new(WIDE, WIDE, &w.indptr, &idx, &w.values).unwrap();
        for batch in WIDE_BATCHES {
            let name = format!("layer4096/sparse/d{}/b{batch}", pct(density));
            let bytes = csr_bytes(&w, batch);
            table.describe(&name, 2.0 * (w.nnz() * batch) as f64, bytes, 2);
            g.throughput(Throughput::Bytes(bytes as u64));
            let (x, y) = (&x[..WIDE * batch], &mut y[..WIDE * batch]);
            g.bench_function(format!("sparse/d{}/b{batch}", pct(density)), |bench| {
                bench.iter_custom(|iters| {
                    table.timed(&name, iters, || {
                        kernels::spmm(csr, Some(&w.bias), x, y, batch, Activation::Relu, par);
                        black_box(&y);
                    })
                })
            });
        }
    }
    // Cold: 8 copies of the 5 % matrix, 40 MB in all, visited in turn.
    let copies: Vec<(CsrParts, Vec<u16>)> = (0..8)
        .map(|_| {
            let w = CsrParts::random(WIDE, WIDE, 0.05, &mut rng);
            let idx = w.indices_u16();
            (w, idx)
        })
        .collect();
    let csrs: Vec<CsrRef<u16>> = copies
        .iter()
        .map(|(w, idx)| CsrRef::new(WIDE, WIDE, &w.indptr, idx, &w.values).unwrap())
        .collect();
    let name = "layer4096/sparse-cold/d5/b1".to_string();
    let bytes = csr_bytes(&copies[0].0, 1);
    table.describe(&name, 2.0 * copies[0].0.nnz() as f64, bytes, 2);
    g.throughput(Throughput::Bytes(bytes as u64));
    let mut turn = 0;
    g.bench_function("sparse-cold/d5/b1", |bench| {
        bench.iter_custom(|iters| {
            table.timed(&name, iters, || {
                let (csr, bias) = (csrs[turn % csrs.len()], &copies[turn % csrs.len()].0.bias);
                turn += 1;
                kernels::spmv(csr, Some(bias), &x[..WIDE], &mut y[..WIDE], Activation::Relu, par);
                black_box(&y);
            })
        })
    });
    let dense = rng.vec(WIDE * WIDE, -1.0, 1.0);
    for batch in WIDE_BATCHES {
        let name = format!("layer4096/dense/b{batch}");
        let bytes = (4 * WIDE * WIDE + 8 * WIDE * batch) as f64;
        table.describe(&name, 2.0 * (WIDE * WIDE * batch) as f64, bytes, 2);
        g.throughput(Throughput::Bytes(bytes as u64));
        let (xb, yb) = (&x[..WIDE * batch], &mut y[..WIDE * batch]);
        g.bench_function(format!("dense/b{batch}"), |bench| {
            bench.iter_custom(|iters| {
                table.timed(&name, iters, || {
                    // y [rows][batch] = W [rows][cols] x [cols][batch], the kernels' layout.
                    sgemm(
                        MatMut::row_major(yb, WIDE, batch),
                        MatRef::row_major(&dense, WIDE, WIDE),
                        MatRef::row_major(xb, WIDE, batch),
                        0.0,
                        par,
                    );
                    black_box(&yb);
                })
            })
        });
    }
    g.finish();
}

fn decode(c: &mut Criterion, table: &Table) {
    let mut rng = Random::new(5);
    let mut g = c.benchmark_group("decode");
    for (what, n) in [("lenet3.6", 9_500usize), ("layer4096-d5", 839_000)] {
        let mut halves = vec![f16::ZERO; n];
        halves.convert_from_f32_slice(&rng.vec(n, -1.0, 1.0));
        let mut out = vec![0.0f32; n];
        let name = format!("decode/f16/{what}");
        table.describe(&name, 0.0, 6.0 * n as f64, 1);
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function(format!("f16/{what}"), |bench| {
            bench.iter_custom(|iters| {
                table.timed(&name, iters, || {
                    halves.convert_to_f32_slice(&mut out);
                    black_box(&out);
                })
            })
        });
    }
    g.finish();
}

fn print_table(table: &Table, samples: usize) {
    let triad = |t: usize| {
        let name = format!("triad/{t}t");
        let bytes = table.0.borrow().get(&name).map(|e| e.bytes)?;
        Some(bytes / table.median(&name, samples)? / 1e9)
    };
    let (t1, t2) = (triad(1), triad(2));
    println!("\nmedians of the measured samples; GB/s counts the bytes a call must stream");
    println!("STREAM triad here: 1 thread {t1:.1?} GB/s, 2 threads {t2:.1?} GB/s");
    // Peak FLOP/s: two per multiply-add, at the measured rate of the kernels' instruction set.
    let peak = kernels::peak::measure(2);
    let peak_gflops =
        |threads: usize| 2.0 * if threads >= 2 { peak.all_threads } else { peak.one_thread } / 1e3;
    println!(
        "peak ({}): 1 thread {:.1} GFLOP/s, 2 threads {:.1} GFLOP/s",
        peak.isa,
        peak_gflops(1),
        peak_gflops(2)
    );
    println!(
        "{:<34} {:>12} {:>10} {:>9} {:>9} {:>7}",
        "benchmark", "time", "GFLOP/s", "GB/s", "% triad", "% peak"
    );
    for (name, e) in table.0.borrow().iter() {
        let Some(t) = table.median(name, samples) else { continue };
        let (gbs, gflops) = (e.bytes / t / 1e9, e.flops / t / 1e9);
        let share = if e.threads >= 2 { t2 } else { t1 }.map(|b| 100.0 * gbs / b);
        let time =
            if t < 1e-3 { format!("{:.2} us", t * 1e6) } else { format!("{:.3} ms", t * 1e3) };
        let share = share.map_or("-".to_string(), |s| format!("{s:.0}%"));
        let of_peak = 100.0 * gflops / peak_gflops(e.threads);
        println!("{name:<34} {time:>12} {gflops:>10.2} {gbs:>9.2} {share:>9} {of_peak:>6.0}%");
    }
}
