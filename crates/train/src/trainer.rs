//! The training loop: counted in iterations (optimizer steps) as the paper counts them,
//! evaluated on validation and test every `eval_every` iterations, with the early-stop
//! iteration (minimum validation loss) recorded.
//!
//! The loop never writes files itself: it reports evaluations and snapshots to an
//! [`Observer`], which the command line turns into progress bars and checkpoints, and it ends
//! cleanly when asked to stop (Ctrl-C) or when the loss stops being finite, handing back the
//! last weights that were known to be good. Optionally it ends a run early: at a validation
//! plateau, or when the mask that pruning would draw stops changing (an early-bird ticket,
//! You et al. 2020).

use crate::engine::{dense_reason, engine_for};
use crate::network::LossStats;
use crate::rng::SeededRng;
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Instant;
use ticket_core::awake_pool::with_workers_awake;
use ticket_core::recipe::TrainRecipe;
use ticket_core::{Network, Par, Splits};

/// One evaluation point of a run.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvalRecord {
    pub iteration: usize,
    /// Mean training loss over the iterations since the previous evaluation (none at 0).
    pub train_loss: Option<f64>,
    pub validation_loss: f64,
    pub validation_accuracy: f64,
    pub test_loss: f64,
    pub test_accuracy: f64,
}

/// The masks pruning would draw from given weights (for early-bird detection).
pub type MaskProbe = Arc<dyn Fn(&Network) -> Vec<Vec<u8>> + Send + Sync>;

/// Early-bird detection: stop when the mask pruning would draw changes, between consecutive
/// evaluations, in less than `max_change` of the weights, `window` evaluations in a row.
#[derive(Clone)]
pub struct EarlyBird {
    pub probe: MaskProbe,
    pub max_change: f64,
    pub window: usize,
}

impl std::fmt::Debug for EarlyBird {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "EarlyBird {{ max_change: {}, window: {} }}", self.max_change, self.window)
    }
}

/// What a run does besides the recipe.
#[derive(Clone, Debug)]
pub struct TrainOptions {
    /// Seed of the batch order (stream `batches`) and of dropout (stream `dropout`).
    pub seed: u64,
    pub par: Par,
    /// Iterations at which the observer receives a snapshot (0 and the end are always sent).
    pub snapshot_at: Vec<usize>,
    /// Train with the sparse engine when fewer than this fraction of weights are kept
    /// (0 never, above 1 always; default [`crate::engine::SPARSE_BELOW`]).
    pub sparse_below: f64,
    /// Stop when the validation loss has not improved for this many evaluations.
    pub patience: Option<usize>,
    pub early_bird: Option<EarlyBird>,
}

impl TrainOptions {
    /// The paper's protocol: full runs, the engine picked by density.
    pub fn new(seed: u64, par: Par) -> Self {
        TrainOptions {
            seed,
            par,
            snapshot_at: vec![],
            sparse_below: crate::engine::SPARSE_BELOW,
            patience: None,
            early_bird: None,
        }
    }
}

/// Receives what happens during a run. Every method has a do-nothing default.
pub trait Observer: Send {
    /// After every optimizer step.
    fn on_step(&mut self, _iteration: usize, _loss: f64) {}
    /// After every evaluation.
    fn on_eval(&mut self, _record: &EvalRecord) {}
    /// The weights at iteration 0, at each requested iteration, and at the end (`last`).
    fn on_snapshot(&mut self, _iteration: usize, _last: bool, _net: &Network) -> Result<()> {
        Ok(())
    }
    /// Polled between steps; `true` ends the run as [`Ending::Interrupted`].
    fn stop_requested(&self) -> bool {
        false
    }
}

/// An observer that ignores everything.
pub struct Silent;
impl Observer for Silent {}

/// Why a run ended before its last iteration, without a fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EarlyReason {
    /// The validation loss stopped improving.
    Plateau,
    /// The pruning mask stopped changing.
    EarlyBird,
}

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "kebab-case")]
pub enum Ending {
    Completed,
    /// Ended by an early-stopping rule after `iteration` steps; the run counts as complete.
    StoppedEarly {
        iteration: usize,
        reason: EarlyReason,
    },
    /// Stopped on request after `iteration` steps.
    Interrupted {
        iteration: usize,
    },
    /// The training loss was not finite at `iteration`.
    Diverged {
        iteration: usize,
    },
}

/// The result of a run.
#[derive(Clone, Debug)]
pub struct TrainOutcome {
    pub ending: Ending,
    /// Final weights; on divergence, the weights of the last finite evaluation.
    pub net: Network,
    /// Iteration at which `net` was taken.
    pub net_iteration: usize,
    pub history: Vec<EvalRecord>,
    /// The evaluation with the lowest validation loss (earliest on ties).
    pub early_stop: EvalRecord,
    /// Wall time spent in training steps (evaluation excluded).
    pub train_seconds: f64,
    /// Wall time spent evaluating on validation and test.
    pub eval_seconds: f64,
    pub examples_trained: usize,
    /// Whether the sparse engine trained this run.
    pub sparse: bool,
    /// Why the run trained dense below the sparse threshold, if it did.
    pub dense_reason: Option<&'static str>,
}

impl TrainOutcome {
    pub fn examples_per_second(&self) -> f64 {
        self.examples_trained as f64 / self.train_seconds.max(1e-9)
    }

    pub fn last(&self) -> &EvalRecord {
        self.history.last().expect("a run evaluates at least at iteration 0")
    }
}

/// Trains `net` (its masks stay enforced) on `splits.train` for `recipe.iterations` steps.
///
/// The run goes onto a worker of the thread pool with the other workers polling for jobs
/// ([`with_workers_awake`]): a step is a dozen fork-joins, and from outside the pool each one
/// put this thread to sleep and woke a worker. `perf record` of dense LeNet-300-100 training
/// on two threads found a quarter of the time in the kernel's wake-up and scheduling paths.
pub fn train(
    net: Network,
    splits: &Splits,
    recipe: &TrainRecipe,
    opts: &TrainOptions,
    observer: &mut dyn Observer,
) -> Result<TrainOutcome> {
    with_workers_awake(opts.par.threads() > 1, || {
        train_on_this_thread(net, splits, recipe, opts, observer)
    })
}

fn train_on_this_thread(
    mut net: Network,
    splits: &Splits,
    recipe: &TrainRecipe,
    opts: &TrainOptions,
    observer: &mut dyn Observer,
) -> Result<TrainOutcome> {
    check_fits(&net, splits)?;
    net.apply_masks();
    let batch = recipe.batch_size.min(splits.train.len());
    let dense_reason = dense_reason(&net, recipe, opts.sparse_below);
    let sparse = net.density() < opts.sparse_below && dense_reason.is_none();
    observer.on_snapshot(0, false, &net)?;
    let mut last_good = (0, net.clone());
    let mut engine = engine_for(net, recipe, batch, opts.sparse_below, opts.seed);
    let mut batches = BatchOrder::new(splits.train.len(), opts.seed);
    let mut scratch = ticket_core::Dataset::default();

    let mut history = Vec::new();
    let mut since_eval = LossStats::default();
    let mut eval_seconds = 0.0;
    let mut evaluate = |engine: &mut dyn crate::engine::Engine, iteration, since: LossStats| {
        let started = Instant::now();
        let val = engine.evaluate(&splits.validation, opts.par);
        let test = engine.evaluate(&splits.test, opts.par);
        eval_seconds += started.elapsed().as_secs_f64();
        EvalRecord {
            iteration,
            train_loss: (since.count > 0).then(|| since.mean_loss()),
            validation_loss: val.mean_loss(),
            validation_accuracy: val.accuracy(),
            test_loss: test.mean_loss(),
            test_accuracy: test.accuracy(),
        }
    };
    let first = evaluate(engine.as_mut(), 0, since_eval);
    observer.on_eval(&first);
    history.push(first);
    let mut stopper = EarlyStopper::new(opts, engine.net());
    let mut ending = Ending::Completed;
    let mut train_seconds = 0.0;
    let mut examples_trained = 0;

    for iteration in 1..=recipe.iterations {
        if observer.stop_requested() {
            ending = Ending::Interrupted { iteration: iteration - 1 };
            break;
        }
        let started = Instant::now();
        let stats =
            engine.gradients_of(&splits.train, batches.next_batch(batch), &mut scratch, opts.par);
        if !stats.loss_sum.is_finite() {
            ending = Ending::Diverged { iteration };
            break;
        }
        engine.update(opts.par);
        train_seconds += started.elapsed().as_secs_f64();
        examples_trained += batch;
        since_eval.loss_sum += stats.loss_sum;
        since_eval.count += stats.count;
        observer.on_step(iteration, stats.mean_loss());

        if iteration % recipe.eval_every == 0 || iteration == recipe.iterations {
            let record = evaluate(engine.as_mut(), iteration, since_eval);
            since_eval = LossStats::default();
            observer.on_eval(&record);
            history.push(record);
            if !record.validation_loss.is_finite() {
                ending = Ending::Diverged { iteration };
                break;
            }
            last_good = (iteration, engine.net().clone());
            if let Some(reason) = stopper.check(&record, engine.net()) {
                if iteration < recipe.iterations {
                    ending = Ending::StoppedEarly { iteration, reason };
                    break;
                }
            }
        }
        if opts.snapshot_at.contains(&iteration) {
            observer.on_snapshot(iteration, false, engine.net())?;
        }
    }

    let (net_iteration, net) = match ending {
        Ending::Completed => (recipe.iterations, engine.net().clone()),
        Ending::StoppedEarly { iteration, .. } | Ending::Interrupted { iteration } => {
            (iteration, engine.net().clone())
        }
        Ending::Diverged { .. } => last_good,
    };
    if matches!(ending, Ending::Completed | Ending::StoppedEarly { .. }) {
        observer.on_snapshot(net_iteration, true, &net)?;
    }
    let early_stop = *history
        .iter()
        .filter(|r| r.validation_loss.is_finite())
        .min_by(|a, b| a.validation_loss.total_cmp(&b.validation_loss))
        .unwrap_or(&history[0]);
    Ok(TrainOutcome {
        ending,
        net,
        net_iteration,
        history,
        early_stop,
        train_seconds,
        eval_seconds,
        examples_trained,
        sparse,
        dense_reason,
    })
}

/// The optional early-stopping rules of a run.
struct EarlyStopper {
    patience: Option<usize>,
    best_loss: f64,
    since_best: usize,
    early_bird: Option<(EarlyBird, Vec<Vec<u8>>, usize)>,
}

impl EarlyStopper {
    fn new(opts: &TrainOptions, net: &Network) -> Self {
        EarlyStopper {
            patience: opts.patience,
            best_loss: f64::INFINITY,
            since_best: 0,
            early_bird: opts.early_bird.clone().map(|eb| {
                let masks = (eb.probe)(net);
                (eb, masks, 0)
            }),
        }
    }

    /// The rule that ends the run after this evaluation, if any.
    fn check(&mut self, record: &EvalRecord, net: &Network) -> Option<EarlyReason> {
        if record.validation_loss < self.best_loss {
            self.best_loss = record.validation_loss;
            self.since_best = 0;
        } else {
            self.since_best += 1;
        }
        if self.patience.is_some_and(|p| self.since_best >= p) {
            return Some(EarlyReason::Plateau);
        }
        let (eb, previous, calm) = self.early_bird.as_mut()?;
        let masks = (eb.probe)(net);
        let changed: usize = masks
            .iter()
            .zip(previous.iter())
            .map(|(a, b)| a.iter().zip(b).filter(|(x, y)| x != y).count())
            .sum();
        let total: usize = masks.iter().map(Vec::len).sum();
        *calm = if (changed as f64) < eb.max_change * total as f64 { *calm + 1 } else { 0 };
        *previous = masks;
        (*calm >= eb.window).then_some(EarlyReason::EarlyBird)
    }
}

fn check_fits(net: &Network, splits: &Splits) -> Result<()> {
    if net.graph.inputs() != splits.train.features {
        return Err(Error::Mismatch(format!(
            "the model takes {} inputs but {} examples have {} features",
            net.graph.inputs(),
            splits.name,
            splits.train.features
        )));
    }
    if splits.classes > net.graph.outputs() {
        return Err(Error::Mismatch(format!(
            "{} has {} classes but the model has {} outputs",
            splits.name,
            splits.classes,
            net.graph.outputs()
        )));
    }
    Ok(())
}

/// Epoch-wise shuffled example order: every example once per epoch, reshuffled each epoch.
/// Also draws the batches of codebook fine-tuning (ticket-export).
pub struct BatchOrder {
    rng: SeededRng,
    order: Vec<usize>,
    position: usize,
    batch: Vec<usize>,
}

impl BatchOrder {
    /// The order of `n` examples for run `seed`.
    pub fn new(n: usize, seed: u64) -> Self {
        let mut rng = SeededRng::new(seed, "batches");
        let mut order: Vec<usize> = (0..n).collect();
        rng.shuffle(&mut order);
        BatchOrder { rng, order, position: 0, batch: Vec::new() }
    }

    /// The next `size` examples; an epoch's last partial batch is completed from the next.
    pub fn next_batch(&mut self, size: usize) -> &[usize] {
        self.batch.clear();
        while self.batch.len() < size {
            if self.position == self.order.len() {
                self.rng.shuffle(&mut self.order);
                self.position = 0;
            }
            self.batch.push(self.order[self.position]);
            self.position += 1;
        }
        &self.batch
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::init::init_net;
    use ticket_core::recipe::Init;
    use ticket_core::{DataSource, Recipe};

    fn digits_recipe(iterations: usize) -> Recipe {
        let mut r = Recipe::resolve("digits-mlp").unwrap();
        r.train.iterations = iterations;
        r.train.eval_every = 50;
        r
    }

    fn opts(par: Par) -> TrainOptions {
        TrainOptions::new(1, par)
    }

    #[test]
    fn learns_digits_and_keeps_pruned_weights_at_zero() {
        let recipe = digits_recipe(300);
        let splits = DataSource::Digits.load(recipe.train.validation_size).unwrap();
        let mut net =
            init_net(&recipe.graph().unwrap(), Init::GlorotNormal, &mut SeededRng::new(1, "init"));
        let mut rng = SeededRng::new(9, "mask");
        for layer in &mut net.layers {
            for m in &mut layer.mask {
                *m = (rng.uniform() < 0.3) as u8;
            }
        }
        let masks: Vec<Vec<u8>> = net.layers.iter().map(|l| l.mask.clone()).collect();

        struct CheckZeros<'a>(&'a [Vec<u8>], usize);
        impl Observer for CheckZeros<'_> {
            fn on_snapshot(&mut self, _: usize, _: bool, net: &Network) -> Result<()> {
                for (layer, mask) in net.layers.iter().zip(self.0) {
                    for (w, m) in layer.weight.iter().zip(mask) {
                        assert!(*m == 1 || *w == 0.0, "pruned weight {w}");
                    }
                }
                self.1 += 1;
                Ok(())
            }
        }
        let mut check = CheckZeros(&masks, 0);
        let o = TrainOptions { snapshot_at: (1..300).collect(), ..opts(Par::Seq) };
        let out = train(net, &splits, &recipe.train, &o, &mut check).unwrap();
        assert_eq!(check.1, 301, "a snapshot after every step plus iteration 0");
        assert_eq!(out.ending, Ending::Completed);
        assert_eq!(out.history.len(), 7);
        // Chance is 10%; a 30%-dense MLP learns the digits quickly.
        assert!(out.last().test_accuracy > 0.85, "{:?}", out.last());
        assert!(out.last().train_loss < out.history[1].train_loss);
        assert!(out.history.iter().any(|r| r == &out.early_stop));
    }

    #[test]
    fn same_seed_and_threads_give_identical_runs() {
        let recipe = digits_recipe(60);
        let splits = DataSource::Digits.load(recipe.train.validation_size).unwrap();
        let graph = recipe.graph().unwrap();
        let run = |par| {
            let net = init_net(&graph, Init::GlorotNormal, &mut SeededRng::new(4, "init"));
            train(net, &splits, &recipe.train, &opts(par), &mut Silent).unwrap()
        };
        for par in [Par::Seq, Par::Rayon(2)] {
            let (a, b) = (run(par), run(par));
            assert_eq!(a.net, b.net);
            assert_eq!(a.history, b.history);
        }
    }

    #[test]
    fn divergence_returns_the_last_good_weights() {
        let mut recipe = digits_recipe(400);
        recipe.train.learning_rate = 1e6;
        recipe.train.optimizer = ticket_core::recipe::Optimizer::Sgd;
        let splits = DataSource::Digits.load(recipe.train.validation_size).unwrap();
        let net =
            init_net(&recipe.graph().unwrap(), Init::GlorotNormal, &mut SeededRng::new(1, "init"));
        let out = train(net, &splits, &recipe.train, &opts(Par::Seq), &mut Silent).unwrap();
        assert!(matches!(out.ending, Ending::Diverged { .. }), "{:?}", out.ending);
        assert!(out.net.layers.iter().all(|l| l.weight.iter().all(|w| w.is_finite())));
        assert_eq!(out.net_iteration % 50, 0);
    }

    #[test]
    fn stop_request_interrupts_between_steps() {
        struct StopAt(usize, usize);
        impl Observer for StopAt {
            fn on_step(&mut self, iteration: usize, _: f64) {
                self.1 = iteration;
            }
            fn stop_requested(&self) -> bool {
                self.1 >= self.0
            }
        }
        let recipe = digits_recipe(100);
        let splits = DataSource::Digits.load(recipe.train.validation_size).unwrap();
        let net =
            init_net(&recipe.graph().unwrap(), Init::GlorotNormal, &mut SeededRng::new(1, "init"));
        let out = train(net, &splits, &recipe.train, &opts(Par::Seq), &mut StopAt(37, 0)).unwrap();
        assert_eq!(out.ending, Ending::Interrupted { iteration: 37 });
        assert_eq!(out.net_iteration, 37);
    }

    #[test]
    fn batch_order_covers_each_epoch_once() {
        let mut order = BatchOrder::new(10, 3);
        let mut seen: Vec<usize> = (0..5).flat_map(|_| order.next_batch(2).to_vec()).collect();
        seen.sort();
        assert_eq!(seen, (0..10).collect::<Vec<_>>());
    }

    #[test]
    fn mismatched_data_is_an_error() {
        let recipe = Recipe::resolve("lenet-300-100").unwrap();
        let splits = DataSource::Digits.load(100).unwrap();
        let net = Network::zeros(&recipe.graph().unwrap());
        let err = train(net, &splits, &recipe.train, &opts(Par::Seq), &mut Silent).unwrap_err();
        assert!(err.to_string().contains("784 inputs"), "{err}");
    }
}
