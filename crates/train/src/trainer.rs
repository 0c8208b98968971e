//! The training loop: counted in iterations (optimizer steps) as the paper counts them,
//! evaluated on validation and test every `eval_every` iterations, with the early-stop
//! iteration (minimum validation loss) recorded.
//!
//! The loop never writes files itself: it reports evaluations and snapshots to an
//! [`Observer`], which the command line turns into progress bars and checkpoints, and it ends
//! cleanly when asked to stop (Ctrl-C) or when the loss stops being finite, handing back the
//! last weights that were known to be good.

use crate::network::{Gradients, LossStats, Workspace};
use crate::optim::Optimizer;
use crate::rng::SeededRng;
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::time::Instant;
use ticket_core::recipe::TrainRecipe;
use ticket_core::{Mlp, Par, Splits};

/// Examples per forward pass during evaluation.
const EVAL_BATCH: usize = 1000;

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

/// What a run does besides the recipe.
#[derive(Clone, Debug)]
pub struct TrainOptions {
    /// Seed of the batch order (stream `batches`).
    pub seed: u64,
    pub par: Par,
    /// Iterations at which the observer receives a snapshot (0 and the end are always sent).
    pub snapshot_at: Vec<usize>,
}

/// Receives what happens during a run. Every method has a do-nothing default.
pub trait Observer {
    /// After every optimizer step.
    fn on_step(&mut self, _iteration: usize, _loss: f64) {}
    /// After every evaluation.
    fn on_eval(&mut self, _record: &EvalRecord) {}
    /// The weights at iteration 0, at each requested iteration, and at the end.
    fn on_snapshot(&mut self, _iteration: usize, _mlp: &Mlp) -> Result<()> {
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

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "kebab-case")]
pub enum Ending {
    Completed,
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
    pub mlp: Mlp,
    /// Iteration at which `mlp` was taken.
    pub mlp_iteration: usize,
    pub history: Vec<EvalRecord>,
    /// The evaluation with the lowest validation loss (earliest on ties).
    pub early_stop: EvalRecord,
    /// Wall time spent in training steps (evaluation excluded).
    pub train_seconds: f64,
    pub examples_trained: usize,
}

impl TrainOutcome {
    pub fn examples_per_second(&self) -> f64 {
        self.examples_trained as f64 / self.train_seconds.max(1e-9)
    }

    pub fn last(&self) -> &EvalRecord {
        self.history.last().expect("a run evaluates at least at iteration 0")
    }
}

/// Trains `mlp` (its masks stay enforced) on `splits.train` for `recipe.iterations` steps.
pub fn train(
    mut mlp: Mlp,
    splits: &Splits,
    recipe: &TrainRecipe,
    opts: &TrainOptions,
    observer: &mut dyn Observer,
) -> Result<TrainOutcome> {
    check_fits(&mlp, splits)?;
    mlp.apply_masks();
    let batch = recipe.batch_size.min(splits.train.len());
    let features = splits.train.features;
    let mut ws = Workspace::new(&mlp, batch);
    let mut eval_ws = Workspace::new(&mlp, EVAL_BATCH);
    let mut grads = Gradients::zeros(&mlp);
    let mut optimizer = Optimizer::new(recipe, &mlp);
    let mut batches = BatchOrder::new(splits.train.len(), opts.seed);
    let mut x = vec![0.0f32; batch * features];
    let mut labels = vec![0u8; batch];

    let mut history = Vec::new();
    let mut since_eval = LossStats::default();
    let evaluate = |ws: &mut Workspace, mlp: &Mlp, iteration, since: LossStats| {
        let val = ws.evaluate(mlp, &splits.validation, opts.par);
        let test = ws.evaluate(mlp, &splits.test, opts.par);
        EvalRecord {
            iteration,
            train_loss: (since.count > 0).then(|| since.mean_loss()),
            validation_loss: val.mean_loss(),
            validation_accuracy: val.accuracy(),
            test_loss: test.mean_loss(),
            test_accuracy: test.accuracy(),
        }
    };
    let first = evaluate(&mut eval_ws, &mlp, 0, since_eval);
    observer.on_eval(&first);
    history.push(first);
    observer.on_snapshot(0, &mlp)?;
    let mut last_good = (0, mlp.clone());
    let mut ending = Ending::Completed;
    let mut train_seconds = 0.0;
    let mut examples_trained = 0;

    for iteration in 1..=recipe.iterations {
        if observer.stop_requested() {
            ending = Ending::Interrupted { iteration: iteration - 1 };
            break;
        }
        let started = Instant::now();
        for (slot, example) in batches.next_batch(batch).iter().enumerate() {
            x[slot * features..(slot + 1) * features].copy_from_slice(splits.train.image(*example));
            labels[slot] = splits.train.labels[*example];
        }
        let stats = ws.backward(&mlp, &x, &labels, &mut grads, opts.par);
        if !stats.loss_sum.is_finite() {
            ending = Ending::Diverged { iteration };
            break;
        }
        optimizer.step(&mut mlp, &grads, opts.par);
        train_seconds += started.elapsed().as_secs_f64();
        examples_trained += batch;
        since_eval.loss_sum += stats.loss_sum;
        since_eval.count += stats.count;
        observer.on_step(iteration, stats.mean_loss());

        if iteration % recipe.eval_every == 0 || iteration == recipe.iterations {
            let record = evaluate(&mut eval_ws, &mlp, iteration, since_eval);
            since_eval = LossStats::default();
            observer.on_eval(&record);
            history.push(record);
            if record.validation_loss.is_finite() {
                last_good = (iteration, mlp.clone());
            } else {
                ending = Ending::Diverged { iteration };
                break;
            }
        }
        if opts.snapshot_at.contains(&iteration) && iteration != recipe.iterations {
            observer.on_snapshot(iteration, &mlp)?;
        }
    }

    let (mlp_iteration, mlp) = match ending {
        Ending::Completed => (recipe.iterations, mlp),
        Ending::Interrupted { iteration } => (iteration, mlp),
        Ending::Diverged { .. } => last_good,
    };
    if ending == Ending::Completed {
        observer.on_snapshot(mlp_iteration, &mlp)?;
    }
    let early_stop = *history
        .iter()
        .filter(|r| r.validation_loss.is_finite())
        .min_by(|a, b| a.validation_loss.total_cmp(&b.validation_loss))
        .unwrap_or(&history[0]);
    Ok(TrainOutcome {
        ending,
        mlp,
        mlp_iteration,
        history,
        early_stop,
        train_seconds,
        examples_trained,
    })
}

fn check_fits(mlp: &Mlp, splits: &Splits) -> Result<()> {
    if mlp.arch.inputs() != splits.train.features {
        return Err(Error::Mismatch(format!(
            "the model takes {} inputs but {} examples have {} features",
            mlp.arch.inputs(),
            splits.name,
            splits.train.features
        )));
    }
    if splits.classes > mlp.arch.outputs() {
        return Err(Error::Mismatch(format!(
            "{} has {} classes but the model has {} outputs",
            splits.name,
            splits.classes,
            mlp.arch.outputs()
        )));
    }
    Ok(())
}

/// Epoch-wise shuffled example order: every example once per epoch, reshuffled each epoch.
struct BatchOrder {
    rng: SeededRng,
    order: Vec<usize>,
    position: usize,
    batch: Vec<usize>,
}

impl BatchOrder {
    fn new(n: usize, seed: u64) -> Self {
        let mut rng = SeededRng::new(seed, "batches");
        let mut order: Vec<usize> = (0..n).collect();
        rng.shuffle(&mut order);
        BatchOrder { rng, order, position: 0, batch: Vec::new() }
    }

    /// The next `size` examples; an epoch's last partial batch is completed from the next.
    fn next_batch(&mut self, size: usize) -> &[usize] {
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
    use crate::init::init_mlp;
    use ticket_core::recipe::Init;
    use ticket_core::{DataSource, Recipe};

    fn digits_recipe(iterations: usize) -> Recipe {
        let mut r = Recipe::resolve("digits-mlp").unwrap();
        r.train.iterations = iterations;
        r.train.eval_every = 50;
        r
    }

    fn opts(par: Par) -> TrainOptions {
        TrainOptions { seed: 1, par, snapshot_at: vec![] }
    }

    #[test]
    fn learns_digits_and_keeps_pruned_weights_at_zero() {
        let recipe = digits_recipe(300);
        let splits = DataSource::Digits.load(recipe.train.validation_size).unwrap();
        let mut mlp =
            init_mlp(&recipe.arch().unwrap(), Init::GlorotNormal, &mut SeededRng::new(1, "init"));
        let mut rng = SeededRng::new(9, "mask");
        for layer in &mut mlp.layers {
            for m in &mut layer.mask {
                *m = (rng.uniform() < 0.3) as u8;
            }
        }
        let masks: Vec<Vec<u8>> = mlp.layers.iter().map(|l| l.mask.clone()).collect();

        struct CheckZeros<'a>(&'a [Vec<u8>], usize);
        impl Observer for CheckZeros<'_> {
            fn on_snapshot(&mut self, _: usize, mlp: &Mlp) -> Result<()> {
                for (layer, mask) in mlp.layers.iter().zip(self.0) {
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
        let out = train(mlp, &splits, &recipe.train, &o, &mut check).unwrap();
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
        let arch = recipe.arch().unwrap();
        let run = |par| {
            let mlp = init_mlp(&arch, Init::GlorotNormal, &mut SeededRng::new(4, "init"));
            train(mlp, &splits, &recipe.train, &opts(par), &mut Silent).unwrap()
        };
        for par in [Par::Seq, Par::Rayon(2)] {
            let (a, b) = (run(par), run(par));
            assert_eq!(a.mlp, b.mlp);
            assert_eq!(a.history, b.history);
        }
    }

    #[test]
    fn divergence_returns_the_last_good_weights() {
        let mut recipe = digits_recipe(400);
        recipe.train.learning_rate = 1e6;
        recipe.train.optimizer = ticket_core::recipe::Optimizer::Sgd;
        let splits = DataSource::Digits.load(recipe.train.validation_size).unwrap();
        let mlp =
            init_mlp(&recipe.arch().unwrap(), Init::GlorotNormal, &mut SeededRng::new(1, "init"));
        let out = train(mlp, &splits, &recipe.train, &opts(Par::Seq), &mut Silent).unwrap();
        assert!(matches!(out.ending, Ending::Diverged { .. }), "{:?}", out.ending);
        assert!(out.mlp.layers.iter().all(|l| l.weight.iter().all(|w| w.is_finite())));
        assert_eq!(out.mlp_iteration % 50, 0);
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
        let mlp =
            init_mlp(&recipe.arch().unwrap(), Init::GlorotNormal, &mut SeededRng::new(1, "init"));
        let out = train(mlp, &splits, &recipe.train, &opts(Par::Seq), &mut StopAt(37, 0)).unwrap();
        assert_eq!(out.ending, Ending::Interrupted { iteration: 37 });
        assert_eq!(out.mlp_iteration, 37);
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
        let mlp = Mlp::zeros(&recipe.arch().unwrap());
        let err = train(mlp, &splits, &recipe.train, &opts(Par::Seq), &mut Silent).unwrap_err();
        assert!(err.to_string().contains("784 inputs"), "{err}");
    }
}
