//! The machine's measured peak rate of f32 multiply-adds with the instruction set the kernels
//! use, on one thread and on several at once: what "fraction of peak" is a fraction of.
//!
//! A nominal peak (cores x clock x lanes x FMA units) needs the clock, which a virtual machine
//! often misreports (`cpu MHz` is the base clock, not the boost the core runs at), and it
//! cannot tell whether two virtual CPUs really run on two cores at the moment of a benchmark.
//! Both show here: each thread runs independent chains of fused multiply-adds (ten registers,
//! enough to cover the FMA latency on current x86 cores), all threads at once, and the rate
//! is the best of a few tries. A several-thread rate well below the one-thread rate times the
//! threads means the cores were shared while it ran, and so were the benchmark's.

use super::Isa;
use std::time::{Duration, Instant};

/// Multiply-add steps per chain between two checks of the clock.
const STEPS: usize = 1 << 16;
/// Independent accumulators per thread (each 8 lanes wide with AVX2, 16 with AVX-512).
const CHAINS: usize = 10;
/// Time spent on each try, and tries per measurement (the best counts).
const TRY: Duration = Duration::from_millis(40);
const TRIES: usize = 3;

/// Measured peak rates, in multiply-adds per microsecond.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PeakRate {
    /// The instruction set measured (the one the kernels dispatch to here).
    pub isa: &'static str,
    pub one_thread: f64,
    /// All `threads` threads at once, summed.
    pub threads: usize,
    pub all_threads: f64,
}

impl PeakRate {
    /// How many cores' worth the threads reached together (`threads` when none was shared).
    pub fn scaling(&self) -> f64 {
        self.all_threads / self.one_thread
    }
}

/// Measures the peak multiply-add rate of the kernels' instruction set on 1 and on `threads`
/// threads (about a quarter of a second).
pub fn measure(threads: usize) -> PeakRate {
    let isa = Isa::detect();
    let threads = threads.max(1);
    let one_thread = best_rate(isa, 1);
    let all_threads = if threads == 1 { one_thread } else { best_rate(isa, threads) };
    PeakRate { isa: isa.name(), one_thread, threads, all_threads }
}

/// The best of [`TRIES`] rates of `threads` threads running [`chains`] at once.
fn best_rate(isa: Isa, threads: usize) -> f64 {
    (0..TRIES)
        .map(|_| {
            let start = Instant::now();
            let steps: usize = std::thread::scope(|s| {
                let workers: Vec<_> = (0..threads)
                    .map(|t| {
                        s.spawn(move || {
                            let mut done = 0;
                            let mut seed = 1.0 + t as f32;
                            while start.elapsed() < TRY {
                                seed = std::hint::black_box(chains(isa, seed, STEPS));
                                done += STEPS;
                            }
                            done
                        })
                    })
                    .collect();
                workers.into_iter().map(|w| w.join().expect("peak worker")).sum()
            });
            (steps * CHAINS * isa.lanes()) as f64 / start.elapsed().as_secs_f64() / 1e6
        })
        .fold(0.0, f64::max)
}

/// [`CHAINS`] x lanes chains `a = a * m + c` run for `steps` steps from `seed`, summed.
fn chains(isa: Isa, seed: f32, steps: usize) -> f32 {
    match isa {
        Isa::Portable => portable_chains(seed, steps),
        // SAFETY: the instruction set is present (Isa::detect).
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2Fma => unsafe { vector_chains::avx2(seed, steps) },
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => unsafe { vector_chains::avx512(seed, steps) },
    }
}

/// The multiplier and addend of every step: `a` stays near `c / (1 - m)`, finite.
const M: f32 = 0.999_99;
const C: f32 = 1e-5;

fn portable_chains(seed: f32, steps: usize) -> f32 {
    let mut a: [f32; CHAINS] = std::array::from_fn(|i| seed + i as f32);
    for _ in 0..steps {
        for x in &mut a {
            *x = x.mul_add(M, C);
        }
    }
    a.iter().sum()
}

#[cfg(target_arch = "x86_64")]
super::simd::isa_entry_points!(fn vector_chains(seed: f32, steps: usize) -> f32);

/// # Safety
/// `S`'s instruction set available.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn vector_chains<S: super::simd::Simd>(seed: f32, steps: usize) -> f32 {
    // SAFETY: the caller's contract.
    unsafe {
        let (m, c) = (S::splat(M), S::splat(C));
        let mut a: [S::F32; CHAINS] = std::array::from_fn(|i| S::splat(seed + i as f32));
        for _ in 0..steps {
            for x in &mut a {
                *x = S::fmadd(*x, m, c);
            }
        }
        // Lane 0 of each chain: every lane of a chain holds the same value.
        a.iter().map(|x| S::first_lane(*x)).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every instruction set computes the same chains, bit for bit: both fuse each step.
    #[test]
    fn every_isa_runs_the_same_chains() {
        for isa in Isa::available() {
            for steps in [0, 1, 1000] {
                assert_eq!(
                    chains(isa, 2.5, steps).to_bits(),
                    portable_chains(2.5, steps).to_bits(),
                    "{isa:?}, {steps} steps"
                );
            }
        }
        // The chains do move: 1000 steps of a * m + c from 2.5 + i.
        let want: f32 =
            (0..CHAINS).map(|i| (0..1000).fold(2.5 + i as f32, |a: f32, _| a.mul_add(M, C))).sum();
        assert_eq!(portable_chains(2.5, 1000), want);
        assert_ne!(want, portable_chains(2.5, 0));
    }

    /// The measured rates are positive and finite, and the scaling is their ratio (how large
    /// it is depends on what else the machine runs, which a test cannot fix).
    #[test]
    fn rates_are_positive_and_scaling_is_their_ratio() {
        let peak = measure(2);
        for rate in [peak.one_thread, peak.all_threads] {
            assert!(rate > 0.0 && rate.is_finite(), "{peak:?}");
        }
        assert_eq!(peak.scaling(), peak.all_threads / peak.one_thread);
        assert_eq!((peak.threads, measure(1).threads), (2, 1));
    }
}
