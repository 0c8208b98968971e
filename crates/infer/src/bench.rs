//! The figures of `ticket infer --bench`, for every front end (the command line, the Python
//! package): batch-1 latency (p50/p99) and time per example at batch 64 and 1024 of the
//! sparse path and of the dense path on the same weights, the sparse path's time per step,
//! and the bytes the weights take. The sparse batch-1 latency is also measured without
//! skipping zero inputs (`batch1_us_p50_csr_only`), which shows what real inputs' zeros
//! bring. The dense path is a fair baseline: at batch 1 a GEMV per layer
//! ([`kernels::dense::mlp_logits`], MLPs), at larger batches the blocked `gemm`. Keys are stable: scripts and results files read them.

use crate::kernels::peak::PeakRate;
use crate::{kernels, timing, Result, Scratch, SparseModel};
use serde_json::{json, Map, Value};
use std::time::Duration;
use ticket_core::{Network, Par};

/// Time spent on each of the six path measurements.
const BUDGET: Duration = Duration::from_millis(600);
/// Batch sizes whose time per example is reported, besides batch 1, for a model cheap enough
/// (see [`batch_sizes`]).
pub const BATCHES: [usize; 2] = [64, 1024];
/// Longest one sparse call at the largest batch size may take by the batch-1 estimate: a
/// costlier model gets smaller batches (AlexNet: 16 where an MLP gets 64 and 1024), so that
/// its bench, dense path included, ends in well under a minute.
const CALL_BUDGET: Duration = Duration::from_millis(100);
/// Time spent on each batch size of the sparse path's per-step split.
const STEP_BUDGET: Duration = Duration::from_millis(300);
/// How many times [`bench`] reports progress: one per path and batch size, one for the split,
/// one for the sparse path without zero skipping at batch 1, and the machine's peak rate
/// before and after.
pub const MEASUREMENTS: usize = 2 * (1 + BATCHES.len()) + 4;

/// The batch sizes measured besides 1: each of [`BATCHES`] capped at the largest power of two
/// whose sparse call, at `batch x` the fastest of up to three batch-1 calls, fits [`CALL_BUDGET`]
/// (at least 1, no size twice).
pub fn batch_sizes(model: &SparseModel, pool: &[f32], par: Par) -> Result<Vec<usize>> {
    let x = &pool[..model.inputs()];
    model.logits(x, 1, par)?;
    let mut fastest = f64::INFINITY;
    for _ in 0..3 {
        let t = std::time::Instant::now();
        std::hint::black_box(model.logits(x, 1, par)?);
        fastest = fastest.min(t.elapsed().as_secs_f64());
        if fastest > CALL_BUDGET.as_secs_f64() {
            break; // Too slow for any batch above 1 already.
        }
    }
    let fit = (CALL_BUDGET.as_secs_f64() / fastest.max(1e-9)).max(1.0) as usize;
    let cap = 1usize << fit.ilog2();
    let mut sizes: Vec<usize> = BATCHES.iter().map(|&b| b.min(cap)).collect();
    sizes.dedup();
    Ok(sizes)
}

/// Deterministic inputs in [0, 1) for benchmarking without a data set.
pub fn synthetic_inputs(examples: usize, features: usize) -> Vec<f32> {
    (0..examples * features)
        .map(|i| {
            ((i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 40) as f32 / (1u64 << 24) as f32
        })
        .collect()
}

/// What the benchmark inputs are: their source (`synthetic`, `fashion-mnist test`...), how
/// many examples, and the fraction of their values that are exactly zero (what the batch-1
/// sparse path can skip in the first layer).
pub fn describe_inputs(source: &str, pool: &[f32], features: usize) -> Value {
    let zeros = pool.iter().filter(|&&v| v == 0.0).count();
    json!({
        "source": source,
        "examples": pool.len() / features.max(1),
        "zero_fraction": zeros as f64 / pool.len().max(1) as f64,
    })
}

/// Batch-1 latency and large-batch time per example of both paths on inputs drawn from
/// `pool` (examples of `model.inputs()` features), the sparse per-step split, and the weight
/// bytes. `done` is called with the name of each measurement finished. The batch sizes are
/// [`batch_sizes`]'s, listed under `batches` (keys `batch{N}_us_per_sample`).
pub fn bench(
    model: &SparseModel,
    dense: &Network,
    pool: &[f32],
    par: Par,
    mut done: impl FnMut(&str),
) -> Result<Map<String, Value>> {
    let (features, classes) = (model.inputs(), model.outputs());
    let peak_before = kernels::peak::measure(par.threads());
    done("peak multiply-add rate");
    let batches = batch_sizes(model, pool, par)?;
    let mut scratch = Scratch::default();
    let mut out = vec![0.0; batches.iter().max().copied().unwrap_or(1) * classes];
    let mut sparse = |x: &[f32], batch: usize| {
        model.logits_into(x, batch, &mut out[..batch * classes], &mut scratch, par)?;
        Ok(())
    };
    let mut dense_run = |x: &[f32], batch: usize| {
        match batch {
            1 => match kernels::dense::mlp_logits(dense, x, par) {
                Some(logits) => std::hint::black_box(logits),
                None => std::hint::black_box(dense.logits(x, batch, par)),
            },
            _ => std::hint::black_box(dense.logits(x, batch, par)),
        };
        Ok(())
    };
    let mut paths = Map::new();
    for (name, run) in [
        ("sparse", &mut sparse as &mut dyn FnMut(&[f32], usize) -> Result<()>),
        ("dense", &mut dense_run),
    ] {
        let latency = timing::latency(|x| run(x, 1), pool, features, BUDGET)?;
        done(&format!("{name} batch 1"));
        let mut entry = Map::new();
        entry.insert("batch1_us_p50".into(), json!(latency.p50_us));
        entry.insert("batch1_us_p99".into(), json!(latency.p99_us));
        for &batch in &batches {
            let us = timing::per_sample(&mut *run, pool, features, batch, BUDGET)?;
            entry.insert(format!("batch{batch}_us_per_sample"), json!(us));
            done(&format!("{name} batch {batch}"));
        }
        paths.insert(name.into(), Value::Object(entry));
    }
    let mut csr_scratch = Scratch::without_zero_skipping();
    let mut csr_out = vec![0.0; classes];
    let csr_only = timing::latency(
        |x| model.logits_into(x, 1, &mut csr_out, &mut csr_scratch, par),
        pool,
        features,
        BUDGET,
    )?;
    done("sparse batch 1 without zero skipping");
    if let Some(Value::Object(sparse)) = paths.get_mut("sparse") {
        sparse.insert("batch1_us_p50_csr_only".into(), json!(csr_only.p50_us));
    }
    let steps = step_split(model, pool, par, &batches)?;
    done("sparse per step");
    if let Some(Value::Object(sparse)) = paths.get_mut("sparse") {
        sparse.insert("layers".into(), steps);
    }
    paths.insert(
        "weight_bytes".into(),
        json!({
            "sparse": model.weight_bytes(),
            "sparse_column_copies": model.column_copy_bytes(),
            "sparse_sliced_copies": model.sliced_copy_bytes(),
            "sparse_coded_rows_copies": model.coded_rows_copy_bytes(),
            "sparse_conv_taps": model.conv_tap_bytes(),
            "dense": 4 * model.graph().dense_params(),
            "sparse_borrowed_from_file": model.borrowed_bytes(),
            "file_mapped": model.mapped_file_bytes(),
        }),
    );
    let peak_after = kernels::peak::measure(par.threads());
    done("peak multiply-add rate again");
    let fraction = fraction_of_peak(model, &paths["sparse"], &batches, &peak_before, &peak_after);
    if let Some(Value::Object(sparse)) = paths.get_mut("sparse") {
        sparse.insert("fraction_of_peak".into(), fraction);
    }
    paths.insert("peak".into(), peak_json(&peak_before, &peak_after));
    paths.insert("threads".into(), json!(par.threads()));
    paths.insert("batches".into(), json!(batches));
    Ok(paths)
}

/// The measured peak rates as `peak` of [`bench`]: multiply-adds per microsecond on one
/// thread and on all, before and after the timings, and how many cores' worth the threads
/// reached (below the thread count: cores were shared, and the timings may be too).
pub fn peak_json(before: &PeakRate, after: &PeakRate) -> Value {
    json!({
        "isa": before.isa,
        "threads": before.threads,
        "one_thread_macs_per_us": [before.one_thread, after.one_thread],
        "all_threads_macs_per_us": [before.all_threads, after.all_threads],
        "cores_reached": [before.scaling(), after.scaling()],
    })
}

/// The sparse path's kept multiply-adds per microsecond at batch 1 and each of `batches`, as
/// a fraction of the better of the two peak rates of all threads.
fn fraction_of_peak(
    model: &SparseModel,
    sparse: &Value,
    batches: &[usize],
    before: &PeakRate,
    after: &PeakRate,
) -> Value {
    let peak = before.all_threads.max(after.all_threads);
    let macs = model.multiply_adds_per_example() as f64;
    let mut out = Map::new();
    let keys = std::iter::once(("batch1".to_string(), "batch1_us_p50".to_string()))
        .chain(batches.iter().map(|b| (format!("batch{b}"), format!("batch{b}_us_per_sample"))));
    for (name, key) in keys {
        if let Some(us) = sparse[&key].as_f64() {
            out.insert(name, json!(macs / us / peak));
        }
    }
    Value::Object(out)
}

/// Where the sparse path's time goes: microseconds per example of each step (a layer with
/// its fused ReLU, a pooling, the layout transposes) at batch 1 and each of `batches`, as the
/// `sparse.layers` array of [`bench`]. Steps of a batch split over threads add up their
/// threads' time.
pub fn step_split(model: &SparseModel, pool: &[f32], par: Par, batches: &[usize]) -> Result<Value> {
    let names = model.step_names();
    let features = model.inputs();
    let mut scratch = Scratch::default();
    let mut split = vec![Map::new(); names.len()];
    for (entry, name) in split.iter_mut().zip(&names) {
        entry.insert("step".into(), json!(name));
    }
    for batch in std::iter::once(1).chain(batches.iter().copied().filter(|&b| b > 1)) {
        let us = timing::per_sample_steps(
            |x, b, clock| model.logits_timed((x, b), &mut scratch, par, clock).map(drop),
            names.len(),
            pool,
            features,
            batch,
            STEP_BUDGET,
        )?;
        let key =
            if batch == 1 { "batch1_us".into() } else { format!("batch{batch}_us_per_sample") };
        for (entry, us) in split.iter_mut().zip(us) {
            entry.insert(key.clone(), json!(us));
        }
    }
    Ok(Value::Array(split.into_iter().map(Value::Object).collect()))
}
