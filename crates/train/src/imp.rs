//! Iterative magnitude pruning (Frankle & Carbin 2019): train, prune the smallest weights,
//! reset the survivors to their initial (or rewound) values, retrain, for every level; plus the
//! controls that show a ticket is a ticket (random re-initialisation and random pruning of
//! the same sparsity).
//!
//! Every run reads its starting point from files of earlier, completed runs, so a killed
//! experiment resumes after its last completed run and reaches the same result as an
//! uninterrupted one.

use crate::experiment::{
    choose_ticket, Experiment, ExperimentSpec, RunKind, RunSummary, TicketChoice,
};
use crate::init::{init_mlp, reinit_keep_masks};
use crate::prune::{
    one_shot_counts, prune_global, prune_layerwise, prune_to_counts, random_masks_like,
};
use crate::rng::SeededRng;
use crate::run_files::{write_history, CheckpointSaver};
use crate::trainer::{train, EarlyBird, Ending, EvalRecord, MaskProbe, Observer, TrainOptions};
use crate::{Error, Result};
use std::sync::Arc;
use ticket_core::checkpoint;
use ticket_core::recipe::{PruneMethod, Reset};
use ticket_core::{Mlp, Par, Splits};

/// Consecutive calm evaluations that make an early-bird ticket (You et al. 2020 use 5 epochs;
/// our evaluations are more frequent than epochs, so 3 of them is already a long calm).
pub const EARLY_BIRD_WINDOW: usize = 3;

/// What to run beyond the experiment's identity.
#[derive(Clone, Debug)]
pub struct ImpPlan {
    /// Pruning levels after the dense one (1 for one-shot).
    pub levels: usize,
    pub reinit_control: bool,
    pub random_prune_control: bool,
    /// Levels that get the controls (`None`: every pruned level).
    pub control_levels: Option<Vec<usize>>,
    /// Accuracy a ticket may lose against the dense network and still be chosen (fraction).
    pub tolerance: f64,
    pub par: Par,
}

/// Receives the progress of the whole experiment. Every method has a do-nothing default.
pub trait ImpObserver {
    fn run_started(&mut self, _level: usize, _kind: RunKind, _weights_remaining: f64) {}
    fn on_step(&mut self, _iteration: usize) {}
    fn on_eval(&mut self, _record: &EvalRecord) {}
    /// `resumed`: the run was already complete on disk and was not trained again.
    fn run_finished(&mut self, _summary: &RunSummary, _resumed: bool) {}
    fn stop_requested(&self) -> bool {
        false
    }
}

/// How an experiment ended.
#[derive(Clone, Debug, PartialEq)]
pub enum ImpEnding {
    Completed,
    /// Stopped on request; the named run is incomplete and will be redone on resume.
    Interrupted {
        level: usize,
        kind: RunKind,
        iteration: usize,
    },
}

#[derive(Clone, Debug)]
pub struct ImpOutcome {
    pub ending: ImpEnding,
    /// The main line, one per completed level.
    pub tickets: Vec<RunSummary>,
    /// Completed control runs.
    pub controls: Vec<RunSummary>,
    pub choice: Option<TicketChoice>,
}

/// Runs (or resumes) the experiment in `exp` on `splits`.
pub fn run_imp(
    exp: &Experiment,
    splits: &Splits,
    plan: &ImpPlan,
    observer: &mut dyn ImpObserver,
) -> Result<ImpOutcome> {
    let spec = exp.file.spec.clone();
    let levels = if spec.one_shot.is_some() { plan.levels.min(1) } else { plan.levels };
    let mut outcome = ImpOutcome {
        ending: ImpEnding::Completed,
        tickets: vec![],
        controls: vec![],
        choice: None,
    };
    let mut runner = Runner { exp, splits, plan, observer };

    for level in 0..=levels {
        let start = match exp.summary(level, RunKind::Ticket)? {
            Some(done) => {
                runner.observer.run_finished(&done, true);
                outcome.tickets.push(done);
                None
            }
            None => Some(runner.starting_point(level)?),
        };
        if let Some(start) = start {
            match runner.run(level, RunKind::Ticket, start)? {
                Ok(summary) => outcome.tickets.push(summary),
                Err(ending) => {
                    outcome.ending = ending;
                    return Ok(outcome);
                }
            }
        }
        for kind in runner.controls_for(level) {
            if let Some(done) = exp.summary(level, kind)? {
                runner.observer.run_finished(&done, true);
                outcome.controls.push(done);
                continue;
            }
            let start = runner.control_start(level, kind)?;
            match runner.run(level, kind, start)? {
                Ok(summary) => outcome.controls.push(summary),
                Err(ending) => {
                    outcome.ending = ending;
                    return Ok(outcome);
                }
            }
        }
    }
    outcome.choice = choose_ticket(&outcome.tickets, plan.tolerance);
    if let Some(choice) = &outcome.choice {
        exp.write_ticket(choice)?;
    }
    Ok(outcome)
}

struct Runner<'a> {
    exp: &'a Experiment,
    splits: &'a Splits,
    plan: &'a ImpPlan,
    observer: &'a mut dyn ImpObserver,
}

impl Runner<'_> {
    fn seed(&self) -> u64 {
        self.exp.file.spec.seed
    }

    fn controls_for(&self, level: usize) -> Vec<RunKind> {
        let chosen = match &self.plan.control_levels {
            Some(list) => list.contains(&level),
            None => true,
        };
        if level == 0 || !chosen {
            return vec![];
        }
        let mut kinds = vec![];
        if self.plan.reinit_control {
            kinds.push(RunKind::Reinit);
        }
        if self.plan.random_prune_control {
            kinds.push(RunKind::RandomPrune);
        }
        kinds
    }

    /// Loads a checkpoint of this experiment, checking it fits the recipe.
    fn load(&self, level: usize, name: &str) -> Result<Mlp> {
        let path = self.exp.level_dir(level).join(name);
        let loaded = checkpoint::load(&path)?;
        let arch = self.exp.file.spec.recipe.arch()?;
        if loaded.mlp.arch != arch {
            return Err(Error::Mismatch(format!(
                "{}: holds a {} network but the experiment's model is {arch}",
                path.display(),
                loaded.mlp.arch
            )));
        }
        Ok(loaded.mlp)
    }

    /// The weights survivors are reset to: the dense run's initial weights, or its weights at
    /// the rewind iteration.
    fn reset_source(&self) -> Result<Mlp> {
        let prune = &self.exp.file.spec.recipe.prune;
        match (prune.reset, prune.rewind_iteration) {
            (Reset::Rewind, k) if k > 0 => {
                self.load(0, &crate::run_files::checkpoint_name(k, false))
            }
            _ => self.load(0, "init.safetensors"),
        }
    }

    /// Level 0: a fresh network. Level n: the final weights of level n-1, pruned, with the
    /// survivors reset.
    fn starting_point(&self, level: usize) -> Result<Mlp> {
        let spec = &self.exp.file.spec;
        if level == 0 {
            let arch = spec.recipe.arch()?;
            return Ok(init_mlp(&arch, spec.recipe.init, &mut SeededRng::new(self.seed(), "init")));
        }
        let mut mlp = self.load(level - 1, "final.safetensors")?;
        prune_once(&mut mlp, spec)?;
        Ok(with_weights_of(mlp, &self.reset_source()?))
    }

    /// The controls start from the ticket's starting point (recomputed from files).
    fn control_start(&self, level: usize, kind: RunKind) -> Result<Mlp> {
        let ticket = self.starting_point(level)?;
        let spec = &self.exp.file.spec;
        Ok(match kind {
            RunKind::Reinit => {
                let mut mlp = ticket;
                let mut rng = SeededRng::new(self.seed(), &format!("reinit-{level}"));
                reinit_keep_masks(&mut mlp, spec.recipe.init, &mut rng);
                mlp
            }
            RunKind::RandomPrune => {
                let mut rng = SeededRng::new(self.seed(), &format!("random-prune-{level}"));
                let masks = random_masks_like(&ticket, &mut rng);
                let mut mlp = ticket;
                for (layer, mask) in mlp.layers.iter_mut().zip(masks) {
                    layer.mask = mask;
                }
                with_weights_of(mlp, &self.reset_source()?)
            }
            RunKind::Ticket => ticket,
        })
    }

    /// Trains one run and marks it complete. `Err(ending)` inside `Ok` reports an interruption.
    fn run(
        &mut self,
        level: usize,
        kind: RunKind,
        start: Mlp,
    ) -> Result<std::result::Result<RunSummary, ImpEnding>> {
        let spec = &self.exp.file.spec;
        let dir = self.exp.run_dir(level, kind);
        std::fs::create_dir_all(&dir).map_err(|e| ticket_core::Error::io(&dir, e))?;
        self.observer.run_started(level, kind, start.density());
        let prune = &spec.recipe.prune;
        let rewind_point =
            (level == 0 && prune.reset == Reset::Rewind && prune.rewind_iteration > 0)
                .then_some(prune.rewind_iteration);
        let rules = &spec.rules;
        let opts = TrainOptions {
            snapshot_at: rewind_point.into_iter().collect(),
            sparse_below: rules.sparse_below,
            patience: rules.patience,
            early_bird: rules.early_bird.map(|max_change| EarlyBird {
                probe: mask_probe(spec),
                max_change,
                window: EARLY_BIRD_WINDOW,
            }),
            ..TrainOptions::new(self.seed(), self.plan.par)
        };
        let saver =
            CheckpointSaver { dir: dir.clone(), dataset: spec.dataset.clone(), seed: self.seed() };
        let mut adapter = SavingObserver { saver, outer: &mut *self.observer };
        let outcome = train(start, self.splits, &spec.recipe.train, &opts, &mut adapter)?;
        write_history(&dir, &outcome.history)?;
        match outcome.ending {
            Ending::Completed | Ending::StoppedEarly { .. } => {
                let summary = RunSummary::new(level, kind, &outcome.mlp, &outcome);
                self.exp.write_summary(&summary)?;
                self.observer.run_finished(&summary, false);
                Ok(Ok(summary))
            }
            Ending::Interrupted { iteration } => {
                Ok(Err(ImpEnding::Interrupted { level, kind, iteration }))
            }
            Ending::Diverged { iteration } => Err(Error::Diverged { dir, iteration }),
        }
    }
}

/// One pruning step of the experiment's method on `mlp`'s current weights.
fn prune_once(mlp: &mut Mlp, spec: &ExperimentSpec) -> Result<()> {
    let prune = &spec.recipe.prune;
    match (spec.one_shot, prune.method) {
        (Some(density), PruneMethod::Layerwise) => {
            let sizes: Vec<usize> = mlp.layers.iter().map(|l| l.shape.len()).collect();
            prune_to_counts(mlp, &one_shot_counts(&sizes, &prune.layer_rates, density)?);
        }
        (Some(density), PruneMethod::Global) => prune_global(mlp, (1.0 - density) as f32),
        (None, PruneMethod::Layerwise) => prune_layerwise(mlp, &prune.layer_rates),
        (None, PruneMethod::Global) => prune_global(mlp, prune.global_rate),
    }
    Ok(())
}

/// The masks the next pruning step would draw from given weights, for early-bird detection.
fn mask_probe(spec: &ExperimentSpec) -> MaskProbe {
    let spec = spec.clone();
    Arc::new(move |mlp: &Mlp| {
        let mut next = mlp.clone();
        // The one-shot density was validated when the experiment was created.
        let _ = prune_once(&mut next, &spec);
        next.layers.into_iter().map(|l| l.mask).collect()
    })
}

/// `mlp`'s masks with `source`'s weights and biases (masked): the reset of the survivors.
fn with_weights_of(mut mlp: Mlp, source: &Mlp) -> Mlp {
    for (layer, src) in mlp.layers.iter_mut().zip(&source.layers) {
        layer.weight.copy_from_slice(&src.weight);
        layer.bias.copy_from_slice(&src.bias);
        layer.apply_mask();
    }
    mlp
}

/// Forwards progress to the experiment's observer and saves every snapshot.
struct SavingObserver<'a> {
    saver: CheckpointSaver,
    outer: &'a mut dyn ImpObserver,
}

impl Observer for SavingObserver<'_> {
    fn on_step(&mut self, iteration: usize, _loss: f64) {
        self.outer.on_step(iteration);
    }

    fn on_eval(&mut self, record: &EvalRecord) {
        self.outer.on_eval(record);
    }

    fn on_snapshot(&mut self, iteration: usize, last: bool, mlp: &Mlp) -> Result<()> {
        self.saver.save(iteration, last, mlp).map(|_| ())
    }

    fn stop_requested(&self) -> bool {
        self.outer.stop_requested()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ticket_core::{DataSource, Recipe};

    fn spec(iterations: usize) -> ExperimentSpec {
        let mut recipe = Recipe::resolve("digits-mlp").unwrap();
        recipe.train.iterations = iterations;
        recipe.train.eval_every = 20;
        ExperimentSpec {
            recipe,
            dataset: "digits".into(),
            seed: 5,
            one_shot: None,
            rules: Default::default(),
        }
    }

    fn plan(levels: usize) -> ImpPlan {
        ImpPlan {
            levels,
            reinit_control: true,
            random_prune_control: true,
            control_levels: Some(vec![2]),
            tolerance: 0.005,
            par: Par::Seq,
        }
    }

    struct Quiet;
    impl ImpObserver for Quiet {}

    /// Stops the experiment at a given run and iteration.
    struct KillAt {
        level: usize,
        kind: RunKind,
        iteration: usize,
        current: (usize, RunKind),
        step: usize,
    }
    impl ImpObserver for KillAt {
        fn run_started(&mut self, level: usize, kind: RunKind, _: f64) {
            self.current = (level, kind);
            self.step = 0;
        }
        fn on_step(&mut self, iteration: usize) {
            self.step = iteration;
        }
        fn stop_requested(&self) -> bool {
            self.current == (self.level, self.kind) && self.step >= self.iteration
        }
    }

    fn final_weights(exp: &Experiment, level: usize) -> Mlp {
        checkpoint::load(&exp.level_dir(level).join("final.safetensors")).unwrap().mlp
    }

    #[test]
    fn levels_follow_the_pruning_arithmetic_and_reset_to_init() {
        let dir = tempfile::tempdir().unwrap();
        let splits = DataSource::Digits.load(180).unwrap();
        let exp = Experiment::open_or_create(dir.path(), spec(40)).unwrap();
        let out = run_imp(&exp, &splits, &plan(3), &mut Quiet).unwrap();
        assert_eq!(out.ending, ImpEnding::Completed);
        let sizes = [64 * 300, 300 * 100, 100 * 10];
        for (level, summary) in out.tickets.iter().enumerate() {
            assert_eq!(
                summary.kept_per_layer,
                crate::prune::layerwise_counts(&sizes, &[0.2, 0.2, 0.1], level)
            );
        }
        // Survivors start from the dense run's initial weights, exactly.
        let init0 = checkpoint::load(&exp.level_dir(0).join("init.safetensors")).unwrap().mlp;
        let init3 = checkpoint::load(&exp.level_dir(3).join("init.safetensors")).unwrap().mlp;
        for (a, b) in init0.layers.iter().zip(&init3.layers) {
            for i in 0..a.weight.len() {
                assert_eq!(b.weight[i], if b.mask[i] == 1 { a.weight[i] } else { 0.0 });
            }
        }
        // Level 3 prunes the smallest trained weights of level 2.
        let trained2 = final_weights(&exp, 2);
        for (t, m) in trained2.layers.iter().zip(&init3.layers) {
            let pruned_max = (0..t.weight.len())
                .filter(|&i| t.mask[i] == 1 && m.mask[i] == 0)
                .map(|i| t.weight[i].abs())
                .fold(0.0f32, f32::max);
            let kept_min = (0..t.weight.len())
                .filter(|&i| m.mask[i] == 1)
                .map(|i| t.weight[i].abs())
                .fold(f32::INFINITY, f32::min);
            assert!(pruned_max <= kept_min);
        }
        // Controls ran at level 2 only, with the ticket's per-layer counts.
        assert_eq!(out.controls.len(), 2);
        for c in &out.controls {
            assert_eq!(c.level, 2);
            assert_eq!(c.kept_per_layer, out.tickets[2].kept_per_layer);
        }
        assert!(out.choice.is_some());
        assert!(exp.ticket().unwrap().is_some());
    }

    #[test]
    fn killed_runs_resume_to_the_same_result() {
        let splits = DataSource::Digits.load(180).unwrap();
        let whole = tempfile::tempdir().unwrap();
        let exp = Experiment::open_or_create(whole.path(), spec(40)).unwrap();
        let reference = run_imp(&exp, &splits, &plan(3), &mut Quiet).unwrap();

        let killed = tempfile::tempdir().unwrap();
        let exp2 = Experiment::open_or_create(killed.path(), spec(40)).unwrap();
        for (level, kind, iteration) in
            [(0, RunKind::Ticket, 25), (2, RunKind::Ticket, 3), (2, RunKind::Reinit, 30)]
        {
            let mut kill =
                KillAt { level, kind, iteration, current: (0, RunKind::Ticket), step: 0 };
            let out = run_imp(&exp2, &splits, &plan(3), &mut kill).unwrap();
            assert_eq!(out.ending, ImpEnding::Interrupted { level, kind, iteration });
        }
        let resumed = run_imp(&exp2, &splits, &plan(3), &mut Quiet).unwrap();
        assert_eq!(resumed.ending, ImpEnding::Completed);
        let strip = |s: &[RunSummary]| -> Vec<RunSummary> {
            s.iter()
                .map(|r| RunSummary { train_seconds: 0.0, examples_per_second: 0.0, ..r.clone() })
                .collect()
        };
        assert_eq!(strip(&resumed.tickets), strip(&reference.tickets));
        assert_eq!(strip(&resumed.controls), strip(&reference.controls));
        for level in 0..=3 {
            assert_eq!(final_weights(&exp2, level), final_weights(&exp, level));
        }
    }

    #[test]
    fn rewinding_resets_to_the_saved_iteration() {
        let dir = tempfile::tempdir().unwrap();
        let splits = DataSource::Digits.load(180).unwrap();
        let mut s = spec(40);
        s.recipe.prune.reset = Reset::Rewind;
        s.recipe.prune.rewind_iteration = 10;
        let exp = Experiment::open_or_create(dir.path(), s).unwrap();
        let mut p = plan(1);
        p.control_levels = Some(vec![]);
        run_imp(&exp, &splits, &p, &mut Quiet).unwrap();
        let rewind = checkpoint::load(&exp.level_dir(0).join("iter_000010.safetensors")).unwrap();
        assert_eq!(rewind.meta.iteration, 10);
        let start1 = checkpoint::load(&exp.level_dir(1).join("init.safetensors")).unwrap().mlp;
        for (a, b) in rewind.mlp.layers.iter().zip(&start1.layers) {
            assert_eq!(a.bias, b.bias);
            for i in 0..a.weight.len() {
                assert_eq!(b.weight[i], if b.mask[i] == 1 { a.weight[i] } else { 0.0 });
            }
        }
    }

    #[test]
    fn one_shot_prunes_once_to_the_target() {
        let dir = tempfile::tempdir().unwrap();
        let splits = DataSource::Digits.load(180).unwrap();
        let mut s = spec(20);
        s.one_shot = Some(0.1);
        let exp = Experiment::open_or_create(dir.path(), s).unwrap();
        let mut p = plan(5);
        p.control_levels = Some(vec![]);
        let out = run_imp(&exp, &splits, &p, &mut Quiet).unwrap();
        assert_eq!(out.tickets.len(), 2);
        assert!((out.tickets[1].weights_remaining - 0.1).abs() < 1e-3);
    }
}
