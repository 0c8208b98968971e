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
//!
//! [`run_parts`] splits one call made from outside the pool (a batch of a few tiles) over
//! workers left polling by the calls before it, for a burst of such calls.

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

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

/// How long pool workers keep polling for [`run_parts`]'s parts after a call: calls that
/// follow each other sooner (a benchmark loop, a busy server) find them awake, and an idle
/// process stops spinning soon after.
const LINGER: Duration = Duration::from_millis(2);

/// Runs `work(i)` for every `i` in `0..parts`, spread over this thread and the pool's other
/// workers, and returns when all have run. The caller (a pool worker or not) runs parts
/// itself and never sleeps: workers that are polling (left so by a call less than [`LINGER`]
/// ago) claim the other parts at once, and any part no worker has claimed when the caller is
/// free runs on the caller. A burst of calls thus splits each one over the threads, where
/// waking a sleeping worker (150-600 us on a KVM guest), or the caller, would cost more than
/// a small batch takes; the first call of a burst runs on the caller and wakes the workers
/// for the next. A panic in a part is raised again here, once every claimed part has ended.
/// A part must not wait for other rayon work of the caller's (it does not steal while it
/// waits).
pub fn run_parts(parts: usize, work: impl Fn(usize) + Sync) {
    if parts <= 1 || rayon::current_num_threads() <= 1 {
        return (0..parts).for_each(work);
    }
    keep_workers_polling();
    let work: &(dyn Fn(usize) + Sync) = &work;
    // SAFETY: only the lifetime is erased, into a pointer that is dereferenced only while
    // `work` lives: a worker calls it only for a part it claimed (`next` below `parts`), and
    // this function returns only once every claimed part is done (`done == parts`); a worker
    // that comes later claims nothing.
    let work: *const (dyn Fn(usize) + Sync + 'static) = unsafe { std::mem::transmute(work) };
    let job = Arc::new(Job {
        parts,
        next: AtomicUsize::new(0),
        done: AtomicUsize::new(0),
        work,
        panic: Mutex::new(None),
    });
    *lock(&POSTED) = Some(job.clone());
    POSTED_CALLS.fetch_add(1, Ordering::Release);
    job.run_claimed();
    while job.done.load(Ordering::Acquire) < parts {
        std::hint::spin_loop();
    }
    // Unpost it, unless another caller has posted since.
    let mut posted = lock(&POSTED);
    if posted.as_ref().is_some_and(|p| Arc::ptr_eq(p, &job)) {
        posted.take();
    }
    drop(posted);
    let panic = lock(&job.panic).take();
    if let Some(payload) = panic {
        std::panic::resume_unwind(payload);
    }
}

/// One call of [`run_parts`]: its parts, claimed one by one.
struct Job {
    parts: usize,
    /// The next part to claim (beyond `parts`: none left).
    next: AtomicUsize,
    /// Parts that have run.
    done: AtomicUsize,
    /// The parts' function, valid while a part is claimed and not done (see [`run_parts`]).
    work: *const (dyn Fn(usize) + Sync),
    /// The first panic of a part.
    panic: Mutex<Option<Box<dyn Any + Send>>>,
}

// SAFETY: `work` points to a `Sync` function, called only under the rule of `run_parts`.
unsafe impl Send for Job {}
// SAFETY: as above; the other fields are atomics and a mutex.
unsafe impl Sync for Job {}

impl Job {
    /// Claims parts and runs them until none is left.
    fn run_claimed(&self) {
        loop {
            let part = self.next.fetch_add(1, Ordering::AcqRel);
            if part >= self.parts {
                return;
            }
            // SAFETY: this part is claimed and not done, so `run_parts` is still waiting and
            // the function it points to lives.
            let work = unsafe { &*self.work };
            if let Err(payload) = catch_unwind(AssertUnwindSafe(|| work(part))) {
                lock(&self.panic).get_or_insert(payload);
            }
            self.done.fetch_add(1, Ordering::Release);
        }
    }
}

/// The call of [`run_parts`] under way, if any.
static POSTED: Mutex<Option<Arc<Job>>> = Mutex::new(None);
/// Calls of [`run_parts`] posted so far: a polling worker looks at [`POSTED`] only when this
/// changes.
static POSTED_CALLS: AtomicU64 = AtomicU64::new(0);
/// Workers polling for parts.
static POLLING: AtomicUsize = AtomicUsize::new(0);
/// Until when (nanoseconds after [`epoch`]) they poll.
static POLL_UNTIL: AtomicU64 = AtomicU64::new(0);

/// The origin of [`POLL_UNTIL`].
fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn now_nanos() -> u64 {
    u64::try_from(epoch().elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// A mutex's guard, whether or not a holder panicked (the data are a pointer and a payload,
/// valid either way).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Extends the polling by [`LINGER`] from now, and starts a poller on each worker that has
/// none (their start wakes sleeping workers, which this call does not wait for).
fn keep_workers_polling() {
    let linger = u64::try_from(LINGER.as_nanos()).unwrap_or(u64::MAX);
    POLL_UNTIL.store(now_nanos().saturating_add(linger), Ordering::Release);
    let workers = rayon::current_num_threads().saturating_sub(1);
    let mut polling = POLLING.load(Ordering::Acquire);
    while polling < workers {
        match POLLING.compare_exchange(polling, polling + 1, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => {
                let spawner = rayon::current_thread_index();
                rayon::spawn(move || poll_for_parts(spawner));
                polling += 1;
            }
            Err(now) => polling = now,
        }
    }
}

/// A worker's loop while polling lasts: runs the parts of each call posted, and any rayon
/// job pending, else gives the core to any other thread that wants it. A worker that started
/// the poller (a caller inside the pool) and then took it back from its own queue returns at
/// once: it is not the other worker the poller was for.
fn poll_for_parts(spawner: Option<usize>) {
    if spawner.is_some() && rayon::current_thread_index() == spawner {
        POLLING.fetch_sub(1, Ordering::AcqRel);
        return;
    }
    let mut seen = POSTED_CALLS.load(Ordering::Acquire);
    loop {
        let posted = POSTED_CALLS.load(Ordering::Acquire);
        if posted != seen {
            seen = posted;
            let job = lock(&POSTED).clone();
            if let Some(job) = job {
                job.run_claimed();
            }
        } else if now_nanos() > POLL_UNTIL.load(Ordering::Acquire) {
            break;
        } else if rayon::yield_now() != Some(rayon::Yield::Executed) {
            std::thread::yield_now();
        }
    }
    POLLING.fetch_sub(1, Ordering::AcqRel);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// A burst of calls from outside the pool: each part runs once per call, and over the
    /// burst workers left polling take parts (when the pool has more than one thread).
    #[test]
    fn every_part_runs_once_and_polling_workers_take_parts() {
        let caller = std::thread::current().id();
        let elsewhere = AtomicUsize::new(0);
        for parts in (0..2000).map(|call| call % 5) {
            let runs: Vec<AtomicUsize> = (0..parts).map(|_| AtomicUsize::new(0)).collect();
            run_parts(parts, |i| {
                runs[i].fetch_add(1, Ordering::Relaxed);
                if std::thread::current().id() != caller {
                    elsewhere.fetch_add(1, Ordering::Relaxed);
                }
                // Long enough a part for a polling worker to claim the next.
                std::thread::sleep(Duration::from_micros(20));
            });
            assert!(runs.iter().all(|r| r.load(Ordering::Relaxed) == 1), "{parts} parts");
        }
        if rayon::current_num_threads() > 1 {
            assert!(elsewhere.load(Ordering::Relaxed) > 0, "no part ran on a worker");
        }
        // From inside the pool too.
        let inside = AtomicUsize::new(0);
        rayon::scope(|_| {
            run_parts(7, |_| {
                inside.fetch_add(1, Ordering::Relaxed);
            })
        });
        assert_eq!(inside.load(Ordering::Relaxed), 7);
    }

    /// A panicking part is raised in the caller once the other parts are done, and the next
    /// call runs as usual.
    #[test]
    fn a_panic_in_a_part_reaches_the_caller_after_the_others() {
        let done = AtomicUsize::new(0);
        let result = catch_unwind(AssertUnwindSafe(|| {
            run_parts(4, |i| {
                std::thread::sleep(Duration::from_micros(200));
                assert_ne!(i, 1, "part 1 fails");
                done.fetch_add(1, Ordering::Relaxed);
            })
        }));
        assert!(result.is_err());
        assert_eq!(done.load(Ordering::Relaxed), 3, "the other parts all ran before it returned");
        let again = AtomicUsize::new(0);
        run_parts(3, |_| {
            again.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(again.load(Ordering::Relaxed), 3);
    }
}
