//! Keeps one async worker awake for a while after each request, so that the next request's
//! socket readiness is found by a worker polling for it rather than by waking one parked in
//! `epoll_wait` (150-600 us on a virtual machine whose idle cores halt, far more than a small
//! model's forward pass).
//!
//! A task ([`KeepAwake::run`]) yields in a loop until the deadline that every request pushes
//! [`KeepAwake::spin`] ahead, then sleeps until the next request. Each yield sends its worker
//! to the I/O driver with a zero timeout (tokio polls the driver before it runs yielded
//! tasks again), so a request arriving during the spin is picked up at once. An idle server
//! spins for at most `spin` after its last request; a zero `spin` never spins.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// The deadline of the spinning task and the means of waking it.
#[derive(Debug)]
pub struct KeepAwake {
    spin: Duration,
    /// The origin of `deadline`.
    epoch: Instant,
    /// Nanoseconds after `epoch` until which the task spins.
    deadline: AtomicU64,
    /// Wakes the task when a request arrives while it sleeps.
    wake: Notify,
}

impl KeepAwake {
    /// Spins for `spin` after each request (zero: never).
    pub fn new(spin: Duration) -> KeepAwake {
        KeepAwake { spin, epoch: Instant::now(), deadline: AtomicU64::new(0), wake: Notify::new() }
    }

    fn now(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    /// Called by each request: spin until `spin` from now.
    pub fn touch(&self) {
        if self.spin.is_zero() {
            return;
        }
        let deadline = self.now() + self.spin.as_nanos() as u64;
        let before = self.deadline.fetch_max(deadline, Ordering::AcqRel);
        // Only a sleeping task needs waking: one still spinning sees the new deadline.
        if before <= self.now() {
            self.wake.notify_one();
        }
    }

    /// The spinning task: runs until the runtime stops (a zero `spin` returns at once).
    pub async fn run(&self) {
        if self.spin.is_zero() {
            return;
        }
        loop {
            while self.now() < self.deadline.load(Ordering::Acquire) {
                tokio::task::yield_now().await;
            }
            self.wake.notified().await;
        }
    }
}
