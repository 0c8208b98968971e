use super::*;
use crate::metrics::Metrics;
use ticket_core::Graph;
use ticket_infer::fixture::{assert_logits_close, net_of, random_model, reference_forward};

const GRAPH: &str = "5-4-3";

struct Setup {
    graph: Graph,
    layers: Vec<ticket_infer::fixture::CsrParts>,
    metrics: Metrics,
}

impl Setup {
    fn new() -> Self {
        let graph: Graph = GRAPH.parse().unwrap();
        let layers = random_model(&graph, &[0.7, 0.8], 5);
        Setup { graph, layers, metrics: Metrics::new() }
    }

    fn model(&self) -> SparseModel {
        SparseModel::from_net(&net_of(&self.graph, &self.layers))
    }

    fn spinning(spin: Duration) -> BatchPolicy {
        BatchPolicy { spin, ..Setup::policy(8, 0, 16) }
    }

    fn policy(max_batch: usize, delay_ms: u64, queue_capacity: usize) -> BatchPolicy {
        BatchPolicy {
            max_batch,
            max_queue_delay: Duration::from_millis(delay_ms),
            queue_capacity,
            par: Par::Seq,
            spin: Duration::ZERO,
        }
    }

    /// `batch` examples of 5 values that differ from job to job.
    fn inputs(job: usize, batch: usize) -> Vec<f32> {
        (0..batch * 5).map(|i| ((job * 31 + i * 7) % 11) as f32 / 11.0 - 0.3).collect()
    }

    fn check(&self, job: usize, batch: usize, logits: &[f32]) {
        let x = Self::inputs(job, batch);
        let want: Vec<f64> =
            x.chunks(5).flat_map(|e| reference_forward(&self.graph, &self.layers, e)).collect();
        assert_logits_close(logits, &want, &format!("job {job}"));
    }

    /// (kernel calls, examples) so far, from the `/metrics` text.
    fn batches(&self) -> (u64, u64) {
        let text = self.metrics.encode();
        let value = |key: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("ticket_batch_size_{key}{{model=\"m\"}} ")))
                .map(|v| v.parse::<f64>().unwrap() as u64)
                .unwrap_or_else(|| panic!("no batch_size_{key} in {text}"))
        };
        (value("count"), value("sum"))
    }
}

fn answer(rx: Answer) -> Vec<f32> {
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    runtime.block_on(rx.get()).expect("an answer").expect("logits")
}

/// Queues jobs of `sizes` examples before the worker starts, runs it until the queue is
/// drained, checks every job's logits and returns (kernel calls, examples).
fn run_queued(max_batch: usize, sizes: &[usize]) -> (u64, u64) {
    let s = Setup::new();
    let (batcher, worker, jobs) =
        Batcher::parts(s.model(), Setup::policy(max_batch, 0, 16), s.metrics.model("m"));
    let replies: Vec<_> = sizes
        .iter()
        .enumerate()
        .map(|(j, &b)| batcher.arrival().submit(b, Setup::inputs(j, b)).unwrap())
        .collect();
    drop(batcher);
    worker.run(jobs);
    for (j, (rx, &b)) in replies.into_iter().zip(sizes).enumerate() {
        s.check(j, b, &answer(rx));
    }
    s.batches()
}

#[test]
fn queued_requests_run_as_one_batch_and_each_gets_its_own_logits() {
    assert_eq!(run_queued(8, &[2, 3, 1]), (1, 6));
}

#[test]
fn a_batch_stops_at_max_batch_and_the_job_that_does_not_fit_starts_the_next() {
    // [3], then [2, 2].
    assert_eq!(run_queued(4, &[3, 2, 2]), (2, 7));
}

#[test]
fn a_full_queue_refuses_at_once_and_forgets_the_arrival() {
    let s = Setup::new();
    let (batcher, worker, jobs) =
        Batcher::parts(s.model(), Setup::policy(8, 0, 2), s.metrics.model("m"));
    let a = batcher.arrival().submit(1, Setup::inputs(0, 1)).unwrap();
    let b = batcher.arrival().submit(1, Setup::inputs(1, 1)).unwrap();
    assert_eq!(batcher.arrival().submit(1, Setup::inputs(2, 1)).unwrap_err(), SubmitError::Full);
    assert_eq!(batcher.arriving.load(Ordering::Acquire), 2, "the two queued jobs only");
    let queued = s.metrics.model("m").queued;
    assert_eq!(queued.get(), 2, "the refused job is not counted as queued");
    drop(batcher);
    worker.run(jobs);
    assert_eq!(queued.get(), 0);
    s.check(0, 1, &answer(a));
    s.check(1, 1, &answer(b));
}

#[test]
fn a_lone_request_does_not_wait_for_the_queue_delay() {
    let s = Setup::new();
    let (batcher, thread) =
        Batcher::spawn("m", s.model(), Setup::policy(8, 20_000, 16), s.metrics.model("m")).unwrap();
    let start = Instant::now();
    let logits = answer(batcher.arrival().submit(1, Setup::inputs(0, 1)).unwrap());
    assert!(start.elapsed() < Duration::from_secs(10), "waited {:?}", start.elapsed());
    s.check(0, 1, &logits);
    drop(batcher);
    thread.join().unwrap();
}

#[test]
fn a_batch_waits_for_a_request_that_is_still_arriving() {
    let s = Setup::new();
    let (batcher, thread) =
        Batcher::spawn("m", s.model(), Setup::policy(8, 20_000, 16), s.metrics.model("m")).unwrap();
    let late = batcher.arrival();
    let start = Instant::now();
    let first = batcher.arrival().submit(2, Setup::inputs(0, 2)).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    let second = late.submit(1, Setup::inputs(1, 1)).unwrap();
    s.check(0, 2, &answer(first));
    s.check(1, 1, &answer(second));
    // One kernel call for both, and no wait for the rest of the delay once nothing arrives.
    assert_eq!(s.batches(), (1, 3));
    assert!(start.elapsed() < Duration::from_secs(10), "waited {:?}", start.elapsed());
    drop(batcher);
    thread.join().unwrap();
}

#[test]
fn a_spinning_thread_answers_request_after_request_and_still_stops() {
    let s = Setup::new();
    let policy = Setup::spinning(Duration::from_millis(20));
    let (batcher, thread) = Batcher::spawn("m", s.model(), policy, s.metrics.model("m")).unwrap();
    for job in 0..20 {
        let rx = batcher.arrival().submit(1, Setup::inputs(job, 1)).unwrap();
        assert!(!rx.spin.is_zero(), "a lone request spins");
        s.check(job, 1, &answer(rx));
    }
    // The handle's drop is seen while spinning: the thread ends without parking first.
    drop(batcher);
    thread.join().unwrap();
}

#[test]
fn only_a_lone_request_spins_for_its_answer() {
    let s = Setup::new();
    let policy = Setup::spinning(Duration::from_millis(20));
    let (batcher, thread) = Batcher::spawn("m", s.model(), policy, s.metrics.model("m")).unwrap();
    let other = batcher.arrival();
    let crowded = batcher.arrival().submit(1, Setup::inputs(0, 1)).unwrap();
    assert!(crowded.spin.is_zero(), "another request is arriving: park, leave the thread free");
    s.check(0, 1, &answer(crowded));
    // Once the first is taken, the other is alone.
    let lone = other.submit(1, Setup::inputs(1, 1)).unwrap();
    assert!(!lone.spin.is_zero());
    s.check(1, 1, &answer(lone));
    drop(batcher);
    thread.join().unwrap();
}

#[test]
fn spin_until_polls_until_a_value_or_the_time_is_up() {
    let mut polls = 0;
    assert_eq!(
        spin_until(Duration::from_secs(5), || {
            polls += 1;
            (polls == 100).then_some(7)
        }),
        Some(7)
    );
    assert_eq!(polls, 100);
    let spin = Duration::from_millis(5);
    let start = Instant::now();
    assert_eq!(spin_until(spin, || None::<()>), None);
    assert!(start.elapsed() >= spin, "gave up after {:?}", start.elapsed());
    let mut once = 0;
    assert_eq!(
        spin_until(Duration::ZERO, || {
            once += 1;
            None::<()>
        }),
        None
    );
    assert_eq!(once, 1, "zero spin polls once");
}
