//! How fast a forward pass runs: per-sample latency at batch 1 (median and 99th percentile of
//! single calls) and time per sample of larger batches (median over repeated calls). The
//! numbers `ticket infer --bench` prints; the criterion benches under `benches/` measure the
//! kernels themselves.

use crate::Result;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Calls measured at batch 1, at most (the time budget usually ends it first).
const MAX_SINGLE_CALLS: usize = 200_000;
/// Untimed calls before measuring, to warm caches and wake threads (fewer when they would
/// take more than a quarter of the budget: a large model is warm after one call).
const WARMUP_CALLS: usize = 20;
/// Timed calls of a batch at least, unless one call takes more than a fifth of the budget
/// (then [`MIN_SLOW_CALLS`]), so that a slow model's bench still ends.
const MIN_CALLS: usize = 5;
const MIN_SLOW_CALLS: usize = 2;

/// The least number of timed calls when one call took `first`.
fn min_calls(first: Duration, budget: Duration) -> usize {
    if first * 5 > budget {
        MIN_SLOW_CALLS
    } else {
        MIN_CALLS
    }
}

/// Batch-1 latency in microseconds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Latency {
    pub p50_us: f64,
    pub p99_us: f64,
}

/// Times single-example calls of `run` on successive examples of `pool` (`[n][features]`)
/// for about `budget`.
pub fn latency(
    mut run: impl FnMut(&[f32]) -> Result<()>,
    pool: &[f32],
    features: usize,
    budget: Duration,
) -> Result<Latency> {
    let examples: Vec<&[f32]> = pool.chunks_exact(features).collect();
    assert!(!examples.is_empty(), "latency: empty pool");
    let warmup = Instant::now();
    for x in examples.iter().cycle().take(WARMUP_CALLS) {
        run(x)?;
        if warmup.elapsed() * 4 > budget {
            break;
        }
    }
    let mut times = Vec::new();
    let start = Instant::now();
    for x in examples.iter().cycle().take(MAX_SINGLE_CALLS) {
        let t = Instant::now();
        run(x)?;
        times.push(t.elapsed().as_secs_f64() * 1e6);
        if start.elapsed() > budget {
            break;
        }
    }
    Ok(Latency { p50_us: quantile(&mut times, 0.5), p99_us: quantile(&mut times, 0.99) })
}

/// Median microseconds per example of calls of `run` on a batch of `batch` examples taken
/// from `pool` (cycled when it is smaller), repeated for about `budget` (at least [`min_calls`]).
pub fn per_sample(
    mut run: impl FnMut(&[f32], usize) -> Result<()>,
    pool: &[f32],
    features: usize,
    batch: usize,
    budget: Duration,
) -> Result<f64> {
    assert!(pool.len() >= features && batch > 0, "per_sample: empty pool or batch");
    let inputs: Vec<f32> =
        pool.chunks_exact(features).cycle().take(batch).flatten().copied().collect();
    let first = Instant::now();
    run(&inputs, batch)?;
    let least = min_calls(first.elapsed(), budget);
    let mut times = Vec::new();
    let start = Instant::now();
    while times.len() < least || start.elapsed() < budget {
        let t = Instant::now();
        run(&inputs, batch)?;
        times.push(t.elapsed().as_secs_f64() * 1e6 / batch as f64);
    }
    Ok(quantile(&mut times, 0.5))
}

/// Time spent in each step of a forward pass, summed over calls and threads: where the time
/// of a model goes, layer by layer (see `SparseModel::logits_timed`).
#[derive(Debug)]
pub struct StepClock {
    nanos: Vec<AtomicU64>,
}

impl StepClock {
    pub fn new(steps: usize) -> Self {
        StepClock { nanos: (0..steps).map(|_| AtomicU64::new(0)).collect() }
    }

    pub fn steps(&self) -> usize {
        self.nanos.len()
    }

    /// Adds `elapsed` to step `step` (callable from several threads at once).
    pub fn add(&self, step: usize, elapsed: Duration) {
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.nanos[step].fetch_add(nanos, Ordering::Relaxed);
    }

    /// Microseconds per step so far.
    pub fn micros(&self) -> Vec<f64> {
        self.nanos.iter().map(|n| n.load(Ordering::Relaxed) as f64 / 1e3).collect()
    }
}

/// Microseconds per example of each step of `run` on batches of `batch` examples from
/// `pool`, over calls repeated for about `budget` (at least [`min_calls`]): `run` times its steps into
/// the clock it is given, which has `steps` slots. Threads add their times, so at a batch
/// split over threads the steps sum to the CPU time per example, not the wall time.
pub fn per_sample_steps(
    mut run: impl FnMut(&[f32], usize, &StepClock) -> Result<()>,
    steps: usize,
    pool: &[f32],
    features: usize,
    batch: usize,
    budget: Duration,
) -> Result<Vec<f64>> {
    assert!(pool.len() >= features && batch > 0, "per_sample_steps: empty pool or batch");
    let inputs: Vec<f32> =
        pool.chunks_exact(features).cycle().take(batch).flatten().copied().collect();
    let first = Instant::now();
    run(&inputs, batch, &StepClock::new(steps))?;
    let least = min_calls(first.elapsed(), budget);
    let clock = StepClock::new(steps);
    let (mut calls, start) = (0usize, Instant::now());
    while calls < least || start.elapsed() < budget {
        run(&inputs, batch, &clock)?;
        calls += 1;
    }
    let examples = (calls * batch) as f64;
    Ok(clock.micros().into_iter().map(|us| us / examples).collect())
}

/// The `q` quantile (nearest rank) of `values`.
fn quantile(values: &mut [f64], q: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    let rank = ((values.len() as f64 * q).ceil() as usize).clamp(1, values.len());
    values[rank - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_by_nearest_rank() {
        let mut v: Vec<f64> = (1..=100).rev().map(f64::from).collect();
        assert_eq!(quantile(&mut v, 0.5), 50.0);
        assert_eq!(quantile(&mut v, 0.99), 99.0);
        assert_eq!(quantile(&mut [7.0], 0.99), 7.0);
    }

    #[test]
    fn per_sample_divides_by_the_batch_and_sees_every_example() {
        let pool: Vec<f32> = (0..6).map(|i| i as f32).collect(); // 3 examples of 2 features
        let mut seen = Vec::new();
        let us = per_sample(
            |x, b| {
                assert_eq!(x.len(), 2 * b);
                seen = x.to_vec();
                std::thread::sleep(Duration::from_millis(2));
                Ok(())
            },
            &pool,
            2,
            4,
            Duration::ZERO,
        )
        .unwrap();
        assert_eq!(seen, [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 0.0, 1.0]);
        // Each call sleeps at least 2 ms for 4 examples: at least 500 us per example.
        assert!(us >= 500.0, "{us}");
    }
}
