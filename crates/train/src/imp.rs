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
use crate::init::{init_net, reinit_keep_masks};
use crate::prune::{
    one_shot_counts, prune_global, prune_layerwise, prune_to_counts, random_masks_like,
};
use crate::rng::SeededRng;
use crate::run_files::{write_history, CheckpointSaver};
use crate::trainer::{train, EarlyBird, Ending, EvalRecord, MaskProbe, Observer, TrainOptions};
use crate::{Error, Result};
use std::sync::{mpsc, Arc, Mutex};
use ticket_core::checkpoint;
use ticket_core::recipe::{PruneMethod, Reset};
use ticket_core::{Network, Par, Splits};

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

/// Which run of an experiment an event is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RunId {
    pub level: usize,
    pub kind: RunKind,
}

/// Receives the progress of the whole experiment. Control runs may train on another thread
/// at the same time as the main line, so every event names its run. Every method has a
/// do-nothing default.
pub trait ImpObserver: Send {
    fn run_started(&mut self, _run: RunId, _weights_remaining: f64) {}
    fn on_step(&mut self, _run: RunId, _iteration: usize) {}
    fn on_eval(&mut self, _run: RunId, _record: &EvalRecord) {}
    /// `resumed`: the run was already complete on disk and was not trained again.
    fn run_finished(&mut self, _summary: &RunSummary, _resumed: bool) {}
    /// Polled between steps by every training thread; `true` stops them all.
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
    /// Completed control runs, by level.
    pub controls: Vec<RunSummary>,
    pub choice: Option<TicketChoice>,
}

/// The result of one run: its summary, or where it was interrupted.
type RunResult = Result<std::result::Result<RunSummary, ImpEnding>>;

/// Runs (or resumes) the experiment in `exp` on `splits`.
///
/// With controls and at least two threads, the controls of level `n` train on a second
/// thread while the main line trains level `n` (both start from level `n - 1`), each run on
/// its share of the threads. Which share a run gets depends only on the plan, so a resumed
/// experiment computes exactly what an uninterrupted one does.
pub fn run_imp(
    exp: &Experiment,
    splits: &Splits,
    plan: &ImpPlan,
    observer: &mut dyn ImpObserver,
) -> Result<ImpOutcome> {
    let spec = &exp.file.spec;
    let levels = if spec.one_shot.is_some() { plan.levels.min(1) } else { plan.levels };
    let has_controls = (1..=levels).any(|l| !controls_for(plan, l).is_empty());
    let threads = plan.par.threads();
    let concurrent = has_controls && threads >= 2;
    let share = |n: usize| if n > 1 { Par::Rayon(n) } else { Par::Seq };
    let (main_par, control_par) = if concurrent {
        (share(threads - threads / 2), share(threads / 2))
    } else {
        (plan.par, plan.par)
    };
    let observer = Mutex::new(observer);
    let runner = Runner { exp, splits, observer: &observer };

    let (tickets, controls, ending) = std::thread::scope(|scope| -> Result<_> {
        let (send, receive) = mpsc::channel::<usize>();
        let worker = concurrent.then(|| {
            let runner = &runner;
            scope.spawn(move || -> Result<(Vec<RunSummary>, Option<ImpEnding>)> {
                let mut done = Vec::new();
                for level in receive {
                    if let Err(ending) = runner.controls(level, plan, control_par, &mut done)? {
                        return Ok((done, Some(ending)));
                    }
                }
                Ok((done, None))
            })
        });
        let mut tickets = Vec::new();
        let mut controls = Vec::new();
        let mut ending = None;
        for level in 0..=levels {
            if concurrent {
                // Its controls need only level - 1, which is complete.
                let _ = send.send(level);
            }
            match runner.ticket(level, main_par)? {
                Ok(summary) => tickets.push(summary),
                Err(e) => {
                    ending = Some(e);
                    break;
                }
            }
            if !concurrent {
                if let Err(e) = runner.controls(level, plan, control_par, &mut controls)? {
                    ending = Some(e);
                    break;
                }
            }
        }
        drop(send);
        if let Some(worker) = worker {
            let (done, worker_ending) =
                worker.join().expect("the control thread does not panic")?;
            controls.extend(done);
            ending = ending.or(worker_ending);
        }
        Ok((tickets, controls, ending))
    })?;

    let mut outcome = ImpOutcome {
        ending: ending.unwrap_or(ImpEnding::Completed),
        choice: None,
        tickets,
        controls,
    };
    outcome.controls.sort_by_key(|s| (s.level, s.kind != RunKind::Reinit));
    if outcome.ending == ImpEnding::Completed {
        outcome.choice = choose_ticket(&outcome.tickets, plan.tolerance);
        if let Some(choice) = &outcome.choice {
            exp.write_ticket(choice)?;
        }
    }
    Ok(outcome)
}

/// The controls requested for `level` (none for the dense level).
fn controls_for(plan: &ImpPlan, level: usize) -> Vec<RunKind> {
    let chosen = match &plan.control_levels {
        Some(list) => list.contains(&level),
        None => true,
    };
    if level == 0 || !chosen {
        return vec![];
    }
    let mut kinds = vec![];
    if plan.reinit_control {
        kinds.push(RunKind::Reinit);
    }
    if plan.random_prune_control {
        kinds.push(RunKind::RandomPrune);
    }
    kinds
}

/// The shared, read-only context of an experiment's runs.
struct Runner<'a, 'o> {
    exp: &'a Experiment,
    splits: &'a Splits,
    observer: &'a Mutex<&'o mut dyn ImpObserver>,
}

impl Runner<'_, '_> {
    fn observe<T>(&self, f: impl FnOnce(&mut dyn ImpObserver) -> T) -> T {
        let mut guard = self.observer.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut **guard)
    }

    /// The main-line run of `level`: read from disk when complete, else trained.
    fn ticket(&self, level: usize, par: Par) -> RunResult {
        if let Some(done) = self.exp.summary(level, RunKind::Ticket)? {
            self.observe(|o| o.run_finished(&done, true));
            return Ok(Ok(done));
        }
        let start = self.starting_point(level)?;
        self.run(level, RunKind::Ticket, start, par)
    }

    /// The controls of `level`, appended to `done`; `Err` inside when interrupted.
    fn controls(
        &self,
        level: usize,
        plan: &ImpPlan,
        par: Par,
        done: &mut Vec<RunSummary>,
    ) -> Result<std::result::Result<(), ImpEnding>> {
        for kind in controls_for(plan, level) {
            let summary = match self.exp.summary(level, kind)? {
                Some(s) => {
                    self.observe(|o| o.run_finished(&s, true));
                    s
                }
                None => match self.run(level, kind, self.control_start(level, kind)?, par)? {
                    Ok(s) => s,
                    Err(ending) => return Ok(Err(ending)),
                },
            };
            done.push(summary);
        }
        Ok(Ok(()))
    }

    /// Loads a checkpoint of this experiment, checking it fits the recipe.
    fn load(&self, level: usize, name: &str) -> Result<Network> {
        let path = self.exp.level_dir(level).join(name);
        let loaded = checkpoint::load(&path)?;
        let graph = self.exp.file.spec.recipe.graph()?;
        if loaded.net.graph != graph {
            return Err(Error::Mismatch(format!(
                "{}: holds a {} network but the experiment's model is {graph}",
                path.display(),
                loaded.net.graph
            )));
        }
        Ok(loaded.net)
    }

    /// The weights survivors are reset to: the dense run's initial weights, or its weights at
    /// the rewind iteration.
    fn reset_source(&self) -> Result<Network> {
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
    fn starting_point(&self, level: usize) -> Result<Network> {
        let spec = &self.exp.file.spec;
        if level == 0 {
            let graph = spec.recipe.graph()?;
            return Ok(init_net(
                &graph,
                spec.recipe.init,
                &mut SeededRng::new(self.exp.file.spec.seed, "init"),
            ));
        }
        let mut net = self.load(level - 1, "final.safetensors")?;
        prune_once(&mut net, spec)?;
        Ok(with_weights_of(net, &self.reset_source()?))
    }

    /// The controls start from the ticket's starting point (recomputed from files).
    fn control_start(&self, level: usize, kind: RunKind) -> Result<Network> {
        let ticket = self.starting_point(level)?;
        let spec = &self.exp.file.spec;
        Ok(match kind {
            RunKind::Reinit => {
                let mut net = ticket;
                let mut rng = SeededRng::new(self.exp.file.spec.seed, &format!("reinit-{level}"));
                reinit_keep_masks(&mut net, spec.recipe.init, &mut rng);
                net
            }
            RunKind::RandomPrune => {
                let mut rng =
                    SeededRng::new(self.exp.file.spec.seed, &format!("random-prune-{level}"));
                let masks = random_masks_like(&ticket, &mut rng);
                let mut net = ticket;
                for (layer, mask) in net.layers.iter_mut().zip(masks) {
                    layer.mask = mask;
                }
                with_weights_of(net, &self.reset_source()?)
            }
            RunKind::Ticket => ticket,
        })
    }

    /// Trains one run and marks it complete. `Err(ending)` inside `Ok` reports an interruption.
    fn run(&self, level: usize, kind: RunKind, start: Network, par: Par) -> RunResult {
        let spec = &self.exp.file.spec;
        let dir = self.exp.run_dir(level, kind);
        std::fs::create_dir_all(&dir).map_err(|e| ticket_core::Error::io(&dir, e))?;
        let id = RunId { level, kind };
        self.observe(|o| o.run_started(id, start.density()));
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
            ..TrainOptions::new(self.exp.file.spec.seed, par)
        };
        let saver = CheckpointSaver {
            dir: dir.clone(),
            dataset: spec.dataset.clone(),
            seed: self.exp.file.spec.seed,
        };
        let mut adapter = SavingObserver { saver, runner: self, id };
        let outcome = train(start, self.splits, &spec.recipe.train, &opts, &mut adapter)?;
        write_history(&dir, &outcome.history)?;
        match outcome.ending {
            Ending::Completed | Ending::StoppedEarly { .. } => {
                let summary = RunSummary::new(level, kind, &outcome.net, &outcome);
                self.exp.write_summary(&summary)?;
                self.observe(|o| o.run_finished(&summary, false));
                Ok(Ok(summary))
            }
            Ending::Interrupted { iteration } => {
                Ok(Err(ImpEnding::Interrupted { level, kind, iteration }))
            }
            Ending::Diverged { iteration } => Err(Error::Diverged { dir, iteration }),
        }
    }
}

/// One pruning step of the experiment's method on `net`'s current weights.
fn prune_once(net: &mut Network, spec: &ExperimentSpec) -> Result<()> {
    let prune = &spec.recipe.prune;
    match (spec.one_shot, prune.method) {
        (Some(density), PruneMethod::Layerwise) => {
            let sizes: Vec<usize> = net.layers.iter().map(|l| l.shape.len()).collect();
            prune_to_counts(net, &one_shot_counts(&sizes, &prune.layer_rates, density)?);
        }
        (Some(density), PruneMethod::Global) => prune_global(net, (1.0 - density) as f32),
        (None, PruneMethod::Layerwise) => prune_layerwise(net, &prune.layer_rates),
        (None, PruneMethod::Global) => prune_global(net, prune.global_rate),
    }
    Ok(())
}

/// The masks the next pruning step would draw from given weights, for early-bird detection.
fn mask_probe(spec: &ExperimentSpec) -> MaskProbe {
    let spec = spec.clone();
    Arc::new(move |net: &Network| {
        let mut next = net.clone();
        // The one-shot density was validated when the experiment was created.
        let _ = prune_once(&mut next, &spec);
        next.layers.into_iter().map(|l| l.mask).collect()
    })
}

/// `net`'s masks with `source`'s weights and biases (masked): the reset of the survivors.
fn with_weights_of(mut net: Network, source: &Network) -> Network {
    for (layer, src) in net.layers.iter_mut().zip(&source.layers) {
        layer.weight.copy_from_slice(&src.weight);
        layer.bias.copy_from_slice(&src.bias);
        layer.apply_mask();
    }
    net
}

/// Forwards progress to the experiment's observer and saves every snapshot.
struct SavingObserver<'r, 'a, 'o> {
    saver: CheckpointSaver,
    runner: &'r Runner<'a, 'o>,
    id: RunId,
}

impl Observer for SavingObserver<'_, '_, '_> {
    fn on_step(&mut self, iteration: usize, _loss: f64) {
        self.runner.observe(|o| o.on_step(self.id, iteration));
    }

    fn on_eval(&mut self, record: &EvalRecord) {
        self.runner.observe(|o| o.on_eval(self.id, record));
    }

    fn on_snapshot(&mut self, iteration: usize, last: bool, net: &Network) -> Result<()> {
        self.saver.save(iteration, last, net).map(|_| ())
    }

    fn stop_requested(&self) -> bool {
        self.runner.observe(|o| o.stop_requested())
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

    /// Stops the whole experiment (every thread) once a given run reaches an iteration.
    struct KillAt {
        run: RunId,
        iteration: usize,
        stopped: bool,
    }
    impl ImpObserver for KillAt {
        fn on_step(&mut self, run: RunId, iteration: usize) {
            self.stopped |= run == self.run && iteration >= self.iteration;
        }
        fn stop_requested(&self) -> bool {
            self.stopped
        }
    }

    fn final_weights(exp: &Experiment, level: usize) -> Network {
        checkpoint::load(&exp.level_dir(level).join("final.safetensors")).unwrap().net
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
        let init0 = checkpoint::load(&exp.level_dir(0).join("init.safetensors")).unwrap().net;
        let init3 = checkpoint::load(&exp.level_dir(3).join("init.safetensors")).unwrap().net;
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
        // Two threads: the controls of level 2 train beside the main line's level 2.
        let mut two = plan(3);
        two.par = Par::Rayon(2);
        let reference = run_imp(&exp, &splits, &two, &mut Quiet).unwrap();

        let killed = tempfile::tempdir().unwrap();
        let exp2 = Experiment::open_or_create(killed.path(), spec(40)).unwrap();
        for (level, kind, iteration) in
            [(0, RunKind::Ticket, 25), (2, RunKind::Ticket, 3), (2, RunKind::Reinit, 30)]
        {
            let run = RunId { level, kind };
            let mut kill = KillAt { run, iteration, stopped: false };
            let out = run_imp(&exp2, &splits, &two, &mut kill).unwrap();
            assert!(matches!(out.ending, ImpEnding::Interrupted { .. }), "{:?}", out.ending);
            assert!(exp2.summary(level, kind).unwrap().is_none(), "{run:?} must be incomplete");
        }
        let resumed = run_imp(&exp2, &splits, &two, &mut Quiet).unwrap();
        assert_eq!(resumed.ending, ImpEnding::Completed);
        let strip = |s: &[RunSummary]| -> Vec<RunSummary> {
            s.iter()
                .map(|r| RunSummary {
                    train_seconds: 0.0,
                    eval_seconds: 0.0,
                    examples_per_second: 0.0,
                    ..r.clone()
                })
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
        let start1 = checkpoint::load(&exp.level_dir(1).join("init.safetensors")).unwrap().net;
        for (a, b) in rewind.net.layers.iter().zip(&start1.layers) {
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
