//! Keeps one async worker awake for a while after a lone request, so that the next request's
//! socket readiness is found by a worker polling for it rather than by waking one parked in
//! `epoll_wait` (150-600 us on a virtual machine whose idle cores halt, far more than a small
//! model's forward pass).
//!
//! A task ([`KeepAwake::run`]) yields in a loop until a deadline, then sleeps until the next
//! request. Each yield sends its worker to the I/O driver with a zero timeout (tokio polls
//! the driver before it runs yielded tasks again), so a request arriving during the spin is
//! picked up at once. The deadline is pushed `spin` ahead when a request starts with no other
//! in flight and when the last one in flight is answered: under load the worker always has
//! other requests to serve, and spinning would only take CPU time from the model's threads.
//! An idle server spins for at most `spin` after its last request; a zero `spin` never spins.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
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
    /// Requests being served.
    in_flight: AtomicUsize,
}

/// One request being served (see [`KeepAwake::serving`]).
pub struct Serving<'a> {
    awake: &'a KeepAwake,
}

impl Drop for Serving<'_> {
    fn drop(&mut self) {
        if self.awake.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.awake.touch();
        }
    }
}

impl KeepAwake {
    /// Spins for `spin` around lone requests (zero: never).
    pub fn new(spin: Duration) -> KeepAwake {
        KeepAwake {
            spin,
            epoch: Instant::now(),
            deadline: AtomicU64::new(0),
            wake: Notify::new(),
            in_flight: AtomicUsize::new(0),
        }
    }

    /// Counts a request as served until the guard is dropped (its answer is ready, or it was
    /// abandoned); spins from its start if no other is in flight, and after the last one.
    pub fn serving(&self) -> Serving<'_> {
        if self.in_flight.fetch_add(1, Ordering::AcqRel) == 0 {
            self.touch();
        }
        Serving { awake: self }
    }

    fn now(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    /// Spin until `spin` from now.
    fn touch(&self) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// Runs `f` on a one-thread runtime with a spinning task, in a thread; its result, or a
    /// failure if it does not finish within a minute (a spinner that starves the runtime).
    fn with_spinner<T, F, Fut>(spin: Duration, f: F) -> T
    where
        T: Send + 'static,
        F: FnOnce() -> Fut + Send + 'static,
        Fut: std::future::Future<Output = T>,
    {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let runtime =
                tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            let awake = Arc::new(KeepAwake::new(spin));
            awake.touch();
            let spinner = awake.clone();
            let _task = runtime.spawn(async move { spinner.run().await });
            let _ = tx.send(runtime.block_on(f()));
        });
        rx.recv_timeout(Duration::from_secs(60)).expect("the runtime was starved by the spinner")
    }

    #[test]
    fn a_spinning_task_leaves_its_worker_serving_sockets_and_timers() {
        let (accepted, connected) = with_spinner(Duration::from_secs(30), || async {
            tokio::time::sleep(Duration::from_millis(5)).await;
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let client = std::thread::spawn(move || {
                let stream = std::net::TcpStream::connect(addr).unwrap();
                stream.local_addr().unwrap()
            });
            let (_stream, peer) = listener.accept().await.unwrap();
            (peer, client.join().unwrap())
        });
        assert_eq!(accepted, connected);
    }

    #[test]
    fn only_a_request_alone_in_flight_or_the_last_answered_pushes_the_deadline() {
        let awake = KeepAwake::new(Duration::from_secs(60));
        let deadline = || awake.deadline.load(Ordering::Acquire);
        let first = awake.serving();
        let armed = deadline();
        assert!(armed > 0, "the first request spins");
        std::thread::sleep(Duration::from_millis(2));
        let second = awake.serving();
        drop(first);
        assert_eq!(deadline(), armed, "another request is in flight: no spinning for it");
        std::thread::sleep(Duration::from_millis(2));
        drop(second);
        assert!(deadline() > armed, "the last answer pushes the deadline");
    }

    #[test]
    fn a_zero_spin_never_spins() {
        let awake = KeepAwake::new(Duration::ZERO);
        drop(awake.serving());
        assert_eq!(awake.deadline.load(Ordering::Acquire), 0);
        // `run` returns at once instead of looping.
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        runtime.block_on(awake.run());
    }

    #[test]
    fn each_touch_pushes_the_deadline_a_spin_ahead() {
        let spin = Duration::from_millis(50);
        let awake = KeepAwake::new(spin);
        let before = awake.now();
        awake.touch();
        let first = awake.deadline.load(Ordering::Acquire);
        assert!(
            first >= before + spin.as_nanos() as u64
                && first <= awake.now() + spin.as_nanos() as u64
        );
        std::thread::sleep(Duration::from_millis(2));
        awake.touch();
        assert!(awake.deadline.load(Ordering::Acquire) > first);
    }
}
