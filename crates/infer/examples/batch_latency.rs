//! The sparse path of `ticket infer --bench` at batch sizes of one's choosing: batch-1
//! latency (p50/p99), microseconds per example at each other batch size, and the time per
//! step at each, as JSON with the keys of `--bench` (`batch1_us_p50`,
//! `batch16_us_per_sample`, `layers`, `peak`). For models too large for the bench's batches of 64
//! and 1024 with its dense comparison (AlexNet: `benches/compare_conv.py --net alexnet`).
//!
//!     cargo run --release -p ticket-infer --example batch_latency -- MODEL [THREADS] [BATCH...]
//!     cargo run --release -p ticket-infer --example batch_latency -- alexnet.csr.safetensors 2 16

use serde_json::{json, Map, Value};
use std::path::Path;
use std::time::Duration;
use ticket_core::Par;
use ticket_infer::bench::{peak_json, step_split, synthetic_inputs};
use ticket_infer::{timing, Scratch, SparseModel};

/// Time spent on each measurement.
const BUDGET: Duration = Duration::from_millis(1500);

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: batch_latency MODEL [THREADS] [BATCH...]";
    let model = SparseModel::load(Path::new(args.first().ok_or(usage)?))?;
    let threads: usize = args.get(1).map_or(Ok(2), |t| t.parse()).map_err(|_| usage)?;
    let batches: Vec<usize> =
        args.iter().skip(2).map(|b| b.parse()).collect::<Result<_, _>>().map_err(|_| usage)?;
    let par = if threads > 1 { Par::Rayon(threads) } else { Par::Seq };
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build()?;
    let (features, classes) = (model.inputs(), model.outputs());
    let largest = batches.iter().copied().chain([8]).max().unwrap_or(8);
    let inputs = synthetic_inputs(largest, features);
    let before = ticket_infer::kernels::peak::measure(threads);
    let report = pool.install(|| -> ticket_infer::Result<Value> {
        let mut scratch = Scratch::default();
        let mut out = vec![0.0; largest * classes];
        let mut run = |x: &[f32], batch: usize| {
            model.logits_into(x, batch, &mut out[..batch * classes], &mut scratch, par)
        };
        let latency = timing::latency(|x| run(x, 1), &inputs, features, BUDGET)?;
        let mut sparse = Map::new();
        sparse.insert("batch1_us_p50".into(), json!(latency.p50_us));
        sparse.insert("batch1_us_p99".into(), json!(latency.p99_us));
        for &batch in &batches {
            let us = timing::per_sample(&mut run, &inputs, features, batch, BUDGET)?;
            sparse.insert(format!("batch{batch}_us_per_sample"), json!(us));
        }
        sparse.insert("layers".into(), step_split(&model, &inputs, par, &batches)?);
        let after = ticket_infer::kernels::peak::measure(threads);
        let peak = peak_json(&before, &after);
        Ok(json!({ "sparse": sparse, "threads": threads, "peak": peak }))
    })?;
    println!("{report}");
    Ok(())
}
