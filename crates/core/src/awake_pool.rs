//! Keeps the thread pool's other workers polling for work while one pass of many small
//! fork-joins runs.
//!
//! A batch-1 inference pass splits each large layer over the threads, one rayon job per
//! layer; a training step is a dozen products and updates, each one fork-join. Between two
//! such jobs rayon's idle worker soon falls asleep, and waking a sleeping thread can cost more
//! than the job itself (150-600 us on a KVM guest), so a split half often waited for its
//! thread or ran on the caller after all. Called from outside the pool, every fork-join also
//! puts the caller to sleep and wakes it again. While a pass runs here, it runs on a pool
//! worker and each other worker runs a task that executes pending rayon jobs as they appear
//! and otherwise polls, so a split's half is taken at once; when the pass ends the tasks
//! return and the workers may sleep.

use std::sync::atomic::{AtomicBool, Ordering};

/// Runs `pass` with the pool's other workers kept polling for its jobs. Outside a rayon pool,
/// `pass` runs on a worker of the global pool when `enter_pool` (the caller then sleeps once
/// per pass instead of once per fork-join, which pays only when the pass is long against a
/// thread's wake-up), else as it is. In a pool of one thread it just runs `pass`.
pub fn with_workers_awake<R: Send>(enter_pool: bool, pass: impl FnOnce() -> R + Send) -> R {
    let Some(owner) = rayon::current_thread_index() else {
        if enter_pool {
            return rayon::scope(|_| with_workers_awake(enter_pool, pass));
        }
        return pass();
    };
    let others = rayon::current_num_threads().saturating_sub(1);
    if others == 0 {
        return pass();
    }
    let done = AtomicBool::new(false);
    rayon::in_place_scope(|scope| {
        for _ in 0..others {
            scope.spawn(|_| {
                // The owner itself may pop a poller it queued (while it waits for a split
                // half, or at the end of the scope): that one has nothing to wait for.
                if rayon::current_thread_index() == Some(owner) {
                    return;
                }
                while !done.load(Ordering::Acquire) {
                    if rayon::yield_now() != Some(rayon::Yield::Executed) {
                        // Nothing pending: give the core to any other thread that wants it.
                        std::thread::yield_now();
                    }
                }
            });
        }
        let result = pass();
        done.store(true, Ordering::Release);
        result
    })
}
