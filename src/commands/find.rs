//! `ticket find`: iterative magnitude pruning on a recipe and data set, then the report, the
//! export of the chosen ticket and its sparse inference figures.

use super::observe::{interrupted, progress_bar};
use super::report::{print_table, write_plots};
use crate::cli::{FindArgs, PruningName};
use anyhow::{bail, Result};
use indicatif::{MultiProgress, ProgressBar};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use ticket_core::recipe::{PruneMethod, Reset};
use ticket_core::{Par, Recipe, Splits};
use ticket_export::{export_checkpoint, Evaluation, ExportOptions};
use ticket_infer::SparseModel;
use ticket_train::experiment::TicketChoice;
use ticket_train::experiment::{Experiment, ExperimentSpec, RunKind, RunRules, RunSummary};
use ticket_train::imp::{run_imp, ImpEnding, ImpObserver, ImpOutcome, ImpPlan, RunId};
use ticket_train::replicates::{replicate_dir, replicate_seed};
use ticket_train::EvalRecord;

/// Accuracy a chosen ticket may lose against the dense network (half a percentage point).
const TOLERANCE: f64 = 0.005;

pub fn run(args: FindArgs) -> Result<()> {
    let recipe = recipe_with_overrides(&args)?;
    let par = super::thread_pool(args.run.threads)?;
    let splits = args.run.data.source().load(recipe.train.validation_size)?;
    let out = args.out.clone().unwrap_or_else(|| {
        PathBuf::from(format!("runs/{}-{}-s{}", recipe.name, splits.name, args.run.seed))
    });
    let (out, seed) = match args.replicate {
        Some(k) => (replicate_dir(&out, k), replicate_seed(args.run.seed, k)),
        None => (out, args.run.seed),
    };
    let plan = ImpPlan {
        levels: recipe.prune.levels,
        reinit_control: args.reinit_control,
        random_prune_control: args.random_prune_control,
        control_levels: args.control_levels.clone(),
        tolerance: TOLERANCE,
        par,
    };
    let spec = ExperimentSpec {
        recipe,
        dataset: splits.name.clone(),
        seed,
        one_shot: args.one_shot,
        rules: RunRules {
            sparse_below: args.run.sparse_below,
            patience: args.early_stop,
            early_bird: args.early_bird,
        },
    };
    let exp = Experiment::open_or_create(&out, spec)?;
    let started = std::time::Instant::now();
    let mut observer = FindObserver::new(exp.file.spec.recipe.train.iterations);
    let outcome = run_imp(&exp, &splits, &plan, &mut observer)?;
    observer.bars.clear().ok();
    if let ImpEnding::Interrupted { level, kind, iteration } = outcome.ending {
        bail!(
            "interrupted in level {level} ({kind:?}) at iteration {iteration}; completed levels \
             are saved in {} - run the same command again to resume",
            out.display()
        );
    }
    eprintln!("experiment finished in {:.1} s: {}", started.elapsed().as_secs_f64(), out.display());
    let plots = write_plots(&exp, None)?;
    if args.json {
        super::report::print_json(&exp)?;
    } else {
        print_table(&exp)?;
        match &outcome.choice {
            Some(c) => println!(
                "\nticket: level {} with {:.1}% of the weights ({})",
                c.level,
                100.0 * c.weights_remaining,
                c.rule
            ),
            None => println!("\nno level qualifies as a ticket"),
        }
        println!("plots: {}", plots.display());
    }
    if args.no_export {
        return Ok(());
    }
    match &outcome.choice {
        Some(choice) => ship_ticket(&exp, &outcome, choice, &splits, par),
        None => Ok(()),
    }
}

/// The recipe with the command line's pruning overrides, validated.
pub fn recipe_with_overrides(args: &FindArgs) -> Result<Recipe> {
    let mut recipe = args.run.recipe()?;
    if let Some(levels) = args.levels {
        recipe.prune.levels = levels;
    }
    match args.pruning {
        Some(PruningName::Layerwise) => recipe.prune.method = PruneMethod::Layerwise,
        Some(PruningName::Global) => recipe.prune.method = PruneMethod::Global,
        None => {}
    }
    if let Some(k) = args.rewind {
        recipe.prune.reset = Reset::Rewind;
        recipe.prune.rewind_iteration = k;
    }
    recipe.validate().map_err(|problem| anyhow::anyhow!("{}: {problem}", args.run.model))?;
    if let Some(d) = args.one_shot {
        if !(d > 0.0 && d <= 1.0) {
            bail!("--one-shot {d}: give the fraction of weights to keep, in (0, 1]");
        }
    }
    if args.early_stop == Some(0) {
        bail!("--early-stop 0: give the evaluations to wait for an improvement, at least 1");
    }
    if let Some(f) = args.early_bird {
        if !(f > 0.0 && f <= 1.0) {
            bail!(
                "--early-bird {f}: give the fraction of weights whose mask may change, in (0, 1]"
            );
        }
    }
    Ok(recipe)
}

/// Exports the chosen level as `DIR/ticket.safetensors`, then prints what it kept, what it
/// weighs and how fast it runs, against the dense network.
fn ship_ticket(
    exp: &Experiment,
    outcome: &ImpOutcome,
    choice: &TicketChoice,
    splits: &Splits,
    par: Par,
) -> Result<()> {
    let source =
        ticket_core::checkpoint::load(&exp.level_dir(choice.level).join("final.safetensors"))?;
    let mut opts = ExportOptions::new(exp.dir().join("ticket.safetensors"));
    opts.overwrite = true;
    opts.provenance.dataset = splits.name.clone();
    opts.eval = Some(Evaluation { name: &splits.name, data: &splits.test });
    opts.par = par;
    let report = export_checkpoint(&source.net, &opts)?;
    let dense = &outcome.tickets[0];
    let ticket = &outcome.tickets[choice.level];
    let t = &report.total;
    println!("\nsummary ({} on {})", exp.file.spec.recipe.name, splits.name);
    println!(
        "  accuracy     dense {:.2}%  ->  ticket {:.2}% (final test accuracy; exported file {:.2}%)",
        100.0 * dense.final_test_accuracy,
        100.0 * ticket.final_test_accuracy,
        100.0 * report.accuracy.as_ref().map_or(f64::NAN, |a| a.exported)
    );
    println!(
        "  weights kept {} of {} ({:.1}%)",
        t.kept_weights,
        exp.file.spec.recipe.graph()?.dense_weights(),
        100.0 * t.density
    );
    println!(
        "  file bytes   dense f32 {}  ->  CSR {} ({:.1}x smaller, {:.1} bits per kept weight)",
        t.dense_file_bytes,
        t.csr_file_bytes,
        t.file_ratio,
        t.bits_per_kept_weight.unwrap_or(f64::NAN)
    );
    let model = SparseModel::load(&report.output)?;
    let speed = super::infer::bench(&model, &model.to_dense(), &splits.test.images, par)?;
    let us = |path: &str, key: &str| speed[path][key].as_f64().unwrap_or(f64::NAN);
    for (label, key, unit) in [
        ("batch 1", "batch1_us_p50", "us per example (p50)"),
        ("batch 1024", "batch1024_us_per_sample", "us per example"),
    ] {
        let (dense, sparse) = (us("dense", key), us("sparse", key));
        let verdict = if sparse <= dense {
            format!("{:.1}x faster", dense / sparse)
        } else {
            format!("{:.1}x slower", sparse / dense)
        };
        println!(
            "  inference    {label:<10} dense {dense:.3} -> sparse {sparse:.3} {unit} ({verdict})"
        );
    }
    println!("  ticket file  {}", report.output.display());
    Ok(())
}

/// One progress bar per training run (the controls may train beside the main line), and a
/// line per finished run.
struct FindObserver {
    bars: MultiProgress,
    active: HashMap<RunId, ProgressBar>,
    iterations: usize,
}

impl FindObserver {
    fn new(iterations: usize) -> Self {
        FindObserver { bars: MultiProgress::new(), active: HashMap::new(), iterations }
    }

    /// A line above the bars (or plainly on stderr when there are no bars to draw).
    fn line(&self, text: String) {
        if self.bars.is_hidden() {
            eprintln!("{text}");
        } else {
            let _ = self.bars.println(text);
        }
    }
}

fn kind_name(kind: RunKind) -> &'static str {
    match kind {
        RunKind::Ticket => "ticket",
        RunKind::Reinit => "reinit",
        RunKind::RandomPrune => "random-prune",
    }
}

impl ImpObserver for FindObserver {
    fn run_started(&mut self, run: RunId, weights_remaining: f64) {
        let prefix =
            format!("L{:02} {:.1}% {}", run.level, 100.0 * weights_remaining, kind_name(run.kind));
        let bar = self.bars.add(progress_bar(self.iterations, &prefix));
        self.active.insert(run, bar);
    }

    fn on_step(&mut self, run: RunId, iteration: usize) {
        if iteration.is_multiple_of(20) {
            if let Some(bar) = self.active.get(&run) {
                bar.set_position(iteration as u64);
            }
        }
    }

    fn on_eval(&mut self, run: RunId, r: &EvalRecord) {
        if let Some(bar) = self.active.get(&run) {
            bar.set_position(r.iteration as u64);
            bar.set_message(format!("test acc {:.2}%", 100.0 * r.test_accuracy));
        }
    }

    fn run_finished(&mut self, s: &RunSummary, resumed: bool) {
        if let Some(bar) = self.active.remove(&RunId { level: s.level, kind: s.kind }) {
            bar.finish_and_clear();
            self.bars.remove(&bar);
        }
        let early = match s.stopped_early {
            Some(reason) => format!(", stopped early ({reason:?}) at {}", s.iterations),
            None => String::new(),
        };
        self.line(format!(
            "level {:2} {:>12} {:6.2}% weights  test acc {:.2}% (early stop {:>6}), final {:.2}%{early}{}{}",
            s.level,
            kind_name(s.kind),
            100.0 * s.weights_remaining,
            100.0 * s.test_accuracy,
            s.early_stop_iteration,
            100.0 * s.final_test_accuracy,
            if s.sparse { " [sparse]" } else { "" },
            if resumed { "  [done earlier]" } else { "" }
        ));
        if let Some(reason) = &s.dense_reason {
            self.line(format!("  note: {reason}"));
        }
    }

    fn stop_requested(&self) -> bool {
        interrupted().load(Ordering::Relaxed)
    }
}
