//! Dynamic batching: one thread per model owns the model and runs every forward pass, so that
//! no kernel ever runs on the async executor. Requests reach it over a bounded channel (a
//! full queue is refused at once: 503, never unbounded memory) and get their logits back over
//! a oneshot channel.
//!
//! The thread takes the first waiting request, then every request already queued, up to
//! `max_batch` examples, and runs them as one batched kernel call. It waits for more, up to
//! `max_queue_delay` after the first, only while other requests are known to be on their way
//! (counted from the moment their handler starts reading them until this thread takes them
//! from the queue): a lone request runs at once on the batch-1 path, with no added delay.
//!
//! Waking a parked thread costs tens to hundreds of microseconds (more on a virtual machine
//! whose idle cores halt), several times a small model's batch-1 forward pass. So both ends
//! of the queue spin for a while before they park ([`BatchPolicy::spin`]): the thread after
//! its last batch, waiting for the next request, and a lone request's handler, waiting for
//! its logits. A client sending one request after another then finds both awake; an idle
//! server parks after `spin` and costs nothing.

use crate::metrics::ModelMetrics;
use prometheus_client::metrics::gauge::Gauge;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender, TryRecvError, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use ticket_core::Par;
use ticket_infer::{Scratch, SparseModel};
use tokio::sync::oneshot;

/// How a model's requests are batched.
#[derive(Clone, Copy, Debug)]
pub struct BatchPolicy {
    /// Most examples per kernel call (and per request).
    pub max_batch: usize,
    /// Longest a batch waits for more requests after its first one arrived.
    pub max_queue_delay: Duration,
    /// Requests that may wait in the queue; one more is refused.
    pub queue_capacity: usize,
    /// Threads the kernels may use for a batch.
    pub par: Par,
    /// How long the batching thread polls for the next request after a batch, and a lone
    /// request's handler for its answer, before parking (zero: park at once).
    pub spin: Duration,
}

impl Default for BatchPolicy {
    /// Triton's usual settings: batches of up to 64, 100 us of waiting, 1024 queued requests,
    /// the kernels on every core; 200 us of spinning, a few loopback round trips.
    fn default() -> Self {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        BatchPolicy {
            max_batch: 64,
            max_queue_delay: Duration::from_micros(100),
            queue_capacity: 1024,
            par: if threads > 1 { Par::Rayon(threads) } else { Par::Seq },
            spin: DEFAULT_SPIN,
        }
    }
}

/// Default of [`BatchPolicy::spin`].
pub const DEFAULT_SPIN: Duration = Duration::from_micros(200);

/// The logits of one job, or why the forward pass failed.
pub type Reply = Result<Vec<f32>, String>;

/// One request's examples on their way to the model.
struct Job {
    batch: usize,
    data: Vec<f32>,
    reply: oneshot::Sender<Reply>,
}

/// Why a job was not queued.
#[derive(Debug, PartialEq, Eq)]
pub enum SubmitError {
    /// The queue holds `queue_capacity` requests already.
    Full,
    /// The model's thread has stopped.
    Stopped,
}

/// The handle requests use to reach a model's batching thread.
pub struct Batcher {
    queue: SyncSender<Job>,
    /// Requests from the start of parsing until the batching thread takes them (see the
    /// module doc).
    arriving: Arc<AtomicUsize>,
    features: usize,
    spin: Duration,
    /// Requests in the queue (a metric).
    queued: Gauge,
}

/// Marks one request as on its way to the queue: counted in `arriving` from its creation
/// until the batching thread takes the job out of the queue (or until it is dropped, if the
/// request fails before it is queued).
pub struct Arrival<'a> {
    batcher: &'a Batcher,
}

impl Drop for Arrival<'_> {
    fn drop(&mut self) {
        self.batcher.arriving.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Arrival<'_> {
    /// Queues `batch` examples (`data` `[batch][features]`) and returns where their logits
    /// will arrive.
    pub fn submit(self, batch: usize, data: Vec<f32>) -> Result<Answer, SubmitError> {
        debug_assert_eq!(data.len(), batch * self.batcher.features);
        let (reply, receiver) = oneshot::channel();
        // Alone if no other request is on its way: then nothing else needs this thread while
        // it waits, and spinning saves a wake-up.
        let alone = self.batcher.arriving.load(Ordering::Acquire) == 1;
        let spin = if alone { self.batcher.spin } else { Duration::ZERO };
        // Counted before it is sent: the batching thread may take it at once.
        self.batcher.queued.inc();
        let refused = match self.batcher.queue.try_send(Job { batch, data, reply }) {
            Ok(()) => {
                // The batching thread uncounts it when it takes the job.
                std::mem::forget(self);
                return Ok(Answer { receiver, spin });
            }
            Err(TrySendError::Full(_)) => SubmitError::Full,
            Err(TrySendError::Disconnected(_)) => SubmitError::Stopped,
        };
        self.batcher.queued.dec();
        Err(refused)
    }
}

/// Where a queued request's logits arrive.
#[derive(Debug)]
pub struct Answer {
    receiver: oneshot::Receiver<Reply>,
    spin: Duration,
}

impl Answer {
    /// The logits, or `None` if the batching thread stopped without answering. Polls for
    /// `spin` before awaiting (see the module doc).
    pub async fn get(mut self) -> Option<Reply> {
        if let Some(reply) = spin_until(self.spin, || match self.receiver.try_recv() {
            Ok(reply) => Some(Some(reply)),
            Err(oneshot::error::TryRecvError::Empty) => None,
            Err(oneshot::error::TryRecvError::Closed) => Some(None),
        }) {
            return reply;
        }
        self.receiver.await.ok()
    }
}

/// Calls `poll` until it gives a value or `spin` has passed.
fn spin_until<T>(spin: Duration, mut poll: impl FnMut() -> Option<T>) -> Option<T> {
    if spin.is_zero() {
        return poll();
    }
    let start = Instant::now();
    loop {
        for _ in 0..64 {
            if let Some(value) = poll() {
                return Some(value);
            }
            std::hint::spin_loop();
        }
        if start.elapsed() >= spin {
            return poll();
        }
        // Gives the core away if anything else is runnable on it: spinning must not delay
        // the threads that produce what it waits for (sched_yield is one syscall).
        std::thread::yield_now();
    }
}

impl Batcher {
    /// Starts the batching thread of `model`. The thread ends when the last `Batcher` handle
    /// is dropped and the queue is empty; join it with the returned handle.
    pub fn spawn(
        name: &str,
        model: SparseModel,
        policy: BatchPolicy,
        metrics: ModelMetrics,
    ) -> std::io::Result<(Batcher, JoinHandle<()>)> {
        let (batcher, worker, jobs) = Batcher::parts(model, policy, metrics);
        let thread = std::thread::Builder::new()
            .name(format!("batch-{name}"))
            .spawn(move || worker.run(jobs))?;
        Ok((batcher, thread))
    }

    /// The handle, the worker and its end of the queue, not yet running.
    fn parts(
        model: SparseModel,
        policy: BatchPolicy,
        metrics: ModelMetrics,
    ) -> (Batcher, Worker, mpsc::Receiver<Job>) {
        let (queue, jobs) = mpsc::sync_channel(policy.queue_capacity);
        let arriving = Arc::new(AtomicUsize::new(0));
        let features = model.inputs();
        let queued = metrics.queued.clone();
        let worker = Worker { model, policy, metrics, arriving: arriving.clone() };
        (Batcher { queue, arriving, features, spin: policy.spin, queued }, worker, jobs)
    }

    /// Counts a request as arriving (see [`Arrival`]); call as soon as it starts, queue it
    /// with [`Arrival::submit`].
    pub fn arrival(&self) -> Arrival<'_> {
        self.arriving.fetch_add(1, Ordering::AcqRel);
        Arrival { batcher: self }
    }
}

/// The batching thread's state.
struct Worker {
    model: SparseModel,
    policy: BatchPolicy,
    metrics: ModelMetrics,
    arriving: Arc<AtomicUsize>,
}

impl Worker {
    fn run(self, jobs: mpsc::Receiver<Job>) {
        let mut scratch = Scratch::default();
        let (mut inputs, mut logits) = (Vec::new(), Vec::new());
        let mut next = None;
        loop {
            let Some(first) = next.take().or_else(|| self.take(self.next_job(&jobs))) else {
                return;
            };
            let mut batch = vec![first];
            next = self.gather(&jobs, &mut batch);
            self.run_batch(batch, &mut inputs, &mut logits, &mut scratch);
        }
    }

    /// Uncounts a job taken from the queue from the arriving ones.
    fn taken(&self, job: Job) -> Job {
        self.arriving.fetch_sub(1, Ordering::AcqRel);
        self.metrics.queued.dec();
        job
    }

    fn take(&self, job: Option<Job>) -> Option<Job> {
        job.map(|j| self.taken(j))
    }

    /// The next job: polled for `spin`, then waited for; `None` once every handle is gone.
    fn next_job(&self, jobs: &mpsc::Receiver<Job>) -> Option<Job> {
        let polled = spin_until(self.policy.spin, || match jobs.try_recv() {
            Ok(job) => Some(Some(job)),
            Err(TryRecvError::Empty) => None,
            Err(TryRecvError::Disconnected) => Some(None),
        });
        polled.unwrap_or_else(|| jobs.recv().ok())
    }

    /// Adds queued jobs to `batch` while they fit; returns a job that did not fit, which
    /// starts the next batch.
    fn gather(&self, jobs: &mpsc::Receiver<Job>, batch: &mut Vec<Job>) -> Option<Job> {
        let deadline = Instant::now() + self.policy.max_queue_delay;
        let mut examples: usize = batch.iter().map(|j| j.batch).sum();
        while examples < self.policy.max_batch {
            let job = match jobs.try_recv() {
                Ok(job) => self.taken(job),
                Err(TryRecvError::Disconnected) => return None,
                Err(TryRecvError::Empty) => {
                    let now = Instant::now();
                    if now >= deadline || self.arriving.load(Ordering::Acquire) == 0 {
                        return None;
                    }
                    match jobs.recv_timeout(deadline - now) {
                        Ok(job) => self.taken(job),
                        Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {
                            return None
                        }
                    }
                }
            };
            if examples + job.batch > self.policy.max_batch {
                return Some(job);
            }
            examples += job.batch;
            batch.push(job);
        }
        None
    }

    /// One kernel call for all of `batch`, then each job's share of the logits to its sender.
    fn run_batch(
        &self,
        batch: Vec<Job>,
        inputs: &mut Vec<f32>,
        logits: &mut Vec<f32>,
        scratch: &mut Scratch,
    ) {
        let examples: usize = batch.iter().map(|j| j.batch).sum();
        self.metrics.batch_size.observe(examples as f64);
        let classes = self.model.outputs();
        let input: &[f32] = if let [job] = batch.as_slice() {
            &job.data
        } else {
            inputs.clear();
            batch.iter().for_each(|j| inputs.extend_from_slice(&j.data));
            inputs
        };
        logits.resize(examples * classes, 0.0);
        let outcome = self.model.logits_into(input, examples, logits, scratch, self.policy.par);
        let mut offset = 0;
        for job in batch {
            let reply = match &outcome {
                Ok(()) => Ok(logits[offset..offset + job.batch * classes].to_vec()),
                Err(e) => Err(e.to_string()),
            };
            offset += job.batch * classes;
            // A client that went away no longer waits for its answer.
            let _ = job.reply.send(reply);
        }
    }
}

#[cfg(test)]
mod tests;
