//! The experiment directory of an IMP run: what it was asked to do, and what each completed
//! run produced. Its layout is the resume protocol:
//!
//! ```text
//! DIR/experiment.json            recipe, data set, seed, pruning plan, ticket version
//! DIR/level_00/                  the dense run
//!     init.safetensors           weights and masks before training (iteration 0)
//!     iter_000500.safetensors    the rewind point, when rewinding
//!     final.safetensors          weights after training
//!     metrics.csv, metrics.json  evaluation history
//!     summary.json               written last: its presence marks the run complete
//! DIR/level_01/ ...              pruned levels, same files
//!     reinit/, random_prune/     the controls of that level, same files
//! DIR/ticket.json                the chosen ticket
//! ```
//!
//! Every file is written atomically and `summary.json` comes last, so a killed run leaves
//! complete runs intact and an incomplete one that is simply redone.

use crate::trainer::{EarlyReason, Ending, TrainOutcome};
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use ticket_core::atomic::write_atomic;
use ticket_core::{Network, Recipe};

pub const EXPERIMENT_FILE: &str = "experiment.json";
pub const SUMMARY_FILE: &str = "summary.json";
pub const TICKET_FILE: &str = "ticket.json";

/// What makes two runs the same experiment: resuming with a different spec is refused.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExperimentSpec {
    /// The recipe with command-line overrides applied. `prune.levels` is not part of the
    /// identity: an experiment may be extended with more levels.
    pub recipe: Recipe,
    pub dataset: String,
    pub seed: u64,
    /// Prune once to this fraction of weights instead of iteratively.
    pub one_shot: Option<f64>,
    #[serde(default)]
    pub rules: RunRules,
}

/// How each run of the experiment trains, beyond the recipe.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunRules {
    /// Runs keeping fewer than this fraction of weights train with the sparse engine.
    pub sparse_below: f64,
    /// End a run when the validation loss has not improved for this many evaluations.
    pub patience: Option<usize>,
    /// End a run when its pruning mask changes in less than this fraction of the weights
    /// between evaluations (early-bird tickets).
    pub early_bird: Option<f64>,
}

impl Default for RunRules {
    /// The paper's protocol (full runs), trained sparse where that is faster.
    fn default() -> Self {
        RunRules { sparse_below: crate::engine::SPARSE_BELOW, patience: None, early_bird: None }
    }
}

/// `experiment.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExperimentFile {
    pub spec: ExperimentSpec,
    pub ticket_version: String,
}

/// The three kinds of runs an experiment holds per level.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunKind {
    /// Pruned mask, weights reset to their initial (or rewound) values.
    Ticket,
    /// Same mask, fresh random initialisation.
    Reinit,
    /// Random mask of the same per-layer sparsity, original initialisation.
    RandomPrune,
}

impl RunKind {
    fn subdir(self) -> Option<&'static str> {
        match self {
            RunKind::Ticket => None,
            RunKind::Reinit => Some("reinit"),
            RunKind::RandomPrune => Some("random_prune"),
        }
    }
}

/// `summary.json` of one completed run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    pub level: usize,
    pub kind: RunKind,
    /// Kept weights / dense weights (biases excluded).
    pub weights_remaining: f64,
    pub kept_per_layer: Vec<usize>,
    /// Iteration of minimum validation loss.
    pub early_stop_iteration: usize,
    /// Test accuracy at the early-stop iteration (the paper's metric).
    pub test_accuracy: f64,
    pub validation_accuracy: f64,
    pub final_test_accuracy: f64,
    pub final_validation_accuracy: f64,
    pub iterations: usize,
    /// Set when an early-stopping rule ended the run before the recipe's last iteration.
    #[serde(default)]
    pub stopped_early: Option<EarlyReason>,
    /// Whether the sparse engine trained the run.
    #[serde(default)]
    pub sparse: bool,
    /// Why the run trained dense although it was below the sparse threshold (see
    /// [`crate::engine::dense_reason`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dense_reason: Option<String>,
    pub train_seconds: f64,
    /// Time spent evaluating on validation and test.
    #[serde(default)]
    pub eval_seconds: f64,
    pub examples_per_second: f64,
}

impl RunSummary {
    pub fn new(level: usize, kind: RunKind, net: &Network, outcome: &TrainOutcome) -> Self {
        let last = outcome.last();
        RunSummary {
            level,
            kind,
            weights_remaining: net.density(),
            kept_per_layer: net.layers.iter().map(|l| l.kept()).collect(),
            early_stop_iteration: outcome.early_stop.iteration,
            test_accuracy: outcome.early_stop.test_accuracy,
            validation_accuracy: outcome.early_stop.validation_accuracy,
            final_test_accuracy: last.test_accuracy,
            final_validation_accuracy: last.validation_accuracy,
            iterations: last.iteration,
            stopped_early: match outcome.ending {
                Ending::StoppedEarly { reason, .. } => Some(reason),
                _ => None,
            },
            sparse: outcome.sparse,
            dense_reason: outcome.dense_reason.map(str::to_string),
            train_seconds: outcome.train_seconds,
            eval_seconds: outcome.eval_seconds,
            examples_per_second: outcome.examples_per_second(),
        }
    }
}

/// `ticket.json`: the level chosen for export.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TicketChoice {
    pub level: usize,
    pub weights_remaining: f64,
    /// Why this level: the rule that picked it.
    pub rule: String,
}

/// An open experiment directory.
pub struct Experiment {
    dir: PathBuf,
    pub file: ExperimentFile,
}

impl Experiment {
    /// Opens `dir` for `spec`, creating it if needed. An existing directory must hold the same
    /// spec (levels aside); otherwise it is refused with the first difference.
    pub fn open_or_create(dir: &Path, spec: ExperimentSpec) -> Result<Self> {
        let path = dir.join(EXPERIMENT_FILE);
        if path.exists() {
            let existing = Self::open(dir)?;
            if let Some(diff) = first_difference(&existing.file.spec, &spec) {
                return Err(Error::Experiment {
                    dir: dir.to_path_buf(),
                    problem: format!(
                        "holds a different experiment ({diff}); refusing to resume it - use \
                         another --out directory or the original settings"
                    ),
                });
            }
            return Ok(existing);
        }
        if dir.exists() && std::fs::read_dir(dir).map(|mut d| d.next().is_some()).unwrap_or(false) {
            return Err(Error::Experiment {
                dir: dir.to_path_buf(),
                problem: format!(
                    "is not empty and has no {EXPERIMENT_FILE}; refusing to write into it"
                ),
            });
        }
        std::fs::create_dir_all(dir).map_err(|e| ticket_core::Error::io(dir, e))?;
        let file = ExperimentFile { spec, ticket_version: env!("CARGO_PKG_VERSION").to_string() };
        write_json(&path, &file)?;
        Ok(Experiment { dir: dir.to_path_buf(), file })
    }

    /// Opens an existing experiment directory.
    pub fn open(dir: &Path) -> Result<Self> {
        let file = read_json(&dir.join(EXPERIMENT_FILE))?;
        Ok(Experiment { dir: dir.to_path_buf(), file })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn level_dir(&self, level: usize) -> PathBuf {
        self.dir.join(format!("level_{level:02}"))
    }

    pub fn run_dir(&self, level: usize, kind: RunKind) -> PathBuf {
        let base = self.level_dir(level);
        match kind.subdir() {
            Some(sub) => base.join(sub),
            None => base,
        }
    }

    /// The summary of a completed run, or `None` if the run has not completed.
    pub fn summary(&self, level: usize, kind: RunKind) -> Result<Option<RunSummary>> {
        let path = self.run_dir(level, kind).join(SUMMARY_FILE);
        if !path.exists() {
            return Ok(None);
        }
        read_json(&path).map(Some)
    }

    /// Marks a run complete. Call after every other file of the run is written.
    pub fn write_summary(&self, summary: &RunSummary) -> Result<()> {
        write_json(&self.run_dir(summary.level, summary.kind).join(SUMMARY_FILE), summary)
    }

    /// Completed runs of `kind`, in level order, stopping at the first gap.
    pub fn completed(&self, kind: RunKind) -> Result<Vec<RunSummary>> {
        let mut out = Vec::new();
        for level in 0.. {
            if !self.level_dir(level).exists() {
                break;
            }
            if let Some(s) = self.summary(level, kind)? {
                out.push(s);
            } else if kind == RunKind::Ticket {
                break;
            }
        }
        Ok(out)
    }

    pub fn write_ticket(&self, choice: &TicketChoice) -> Result<()> {
        write_json(&self.dir.join(TICKET_FILE), choice)
    }

    pub fn ticket(&self) -> Result<Option<TicketChoice>> {
        let path = self.dir.join(TICKET_FILE);
        if path.exists() {
            read_json(&path).map(Some)
        } else {
            Ok(None)
        }
    }
}

/// The sparsest level whose final validation accuracy is within `tolerance` (a fraction, 0.005
/// for half a point) of the dense level's. Validation, not test, so the test set stays unseen
/// by the choice.
pub fn choose_ticket(levels: &[RunSummary], tolerance: f64) -> Option<TicketChoice> {
    let dense = levels.iter().find(|s| s.level == 0)?;
    let floor = dense.final_validation_accuracy - tolerance;
    levels
        .iter()
        .filter(|s| s.final_validation_accuracy >= floor - 1e-12)
        .min_by(|a, b| a.weights_remaining.total_cmp(&b.weights_remaining))
        .map(|s| TicketChoice {
            level: s.level,
            weights_remaining: s.weights_remaining,
            rule: format!(
                "sparsest level with final validation accuracy within {:.2} pp of the dense \
                 network ({:.2}%)",
                100.0 * tolerance,
                100.0 * dense.final_validation_accuracy
            ),
        })
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(value).expect("experiment records serialize");
    Ok(write_atomic(path, &bytes)?)
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T> {
    let bytes = std::fs::read(path).map_err(|e| ticket_core::Error::io(path, e))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| Error::Core(ticket_core::Error::invalid(path, format!("unreadable: {e}"))))
}

/// The first field where two specs differ, as `path: old -> new`, ignoring `prune.levels`.
fn first_difference(old: &ExperimentSpec, new: &ExperimentSpec) -> Option<String> {
    let normalise = |spec: &ExperimentSpec| {
        let mut spec = spec.clone();
        spec.recipe.prune.levels = 0;
        serde_json::to_value(spec).expect("specs serialize")
    };
    diff_values("", &normalise(old), &normalise(new))
}

fn diff_values(path: &str, old: &serde_json::Value, new: &serde_json::Value) -> Option<String> {
    use serde_json::Value;
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => {
            let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            keys.into_iter().find_map(|k| {
                let sub = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
                diff_values(
                    &sub,
                    a.get(k).unwrap_or(&Value::Null),
                    b.get(k).unwrap_or(&Value::Null),
                )
            })
        }
        _ if old == new => None,
        _ => Some(format!("{path} was {old}, now {new}")),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn spec() -> ExperimentSpec {
        ExperimentSpec {
            recipe: Recipe::resolve("digits-mlp").unwrap(),
            dataset: "digits".into(),
            seed: 0,
            one_shot: None,
            rules: RunRules::default(),
        }
    }

    #[test]
    fn reopening_with_another_spec_is_refused_and_says_why() {
        let dir = tempfile::tempdir().unwrap();
        let exp = dir.path().join("exp");
        Experiment::open_or_create(&exp, spec()).unwrap();
        let mut more_levels = spec();
        more_levels.recipe.prune.levels += 5;
        Experiment::open_or_create(&exp, more_levels).unwrap();
        let mut other = spec();
        other.recipe.train.iterations = 99;
        let err = Experiment::open_or_create(&exp, other).err().unwrap().to_string();
        assert!(err.contains("recipe.train.iterations was 1500, now 99"), "{err}");
        let mut other = spec();
        other.seed = 3;
        let err = Experiment::open_or_create(&exp, other).err().unwrap().to_string();
        assert!(err.contains("seed was 0, now 3"), "{err}");
        let mut other = spec();
        other.recipe.train.dropout = 0.5;
        let err = Experiment::open_or_create(&exp, other).err().unwrap().to_string();
        assert!(err.contains("recipe.train.dropout was 0.0, now 0.5"), "{err}");
    }

    #[test]
    fn a_foreign_non_empty_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("notes.txt"), "mine").unwrap();
        let err = Experiment::open_or_create(dir.path(), spec()).err().unwrap().to_string();
        assert!(err.contains("not empty"), "{err}");
    }

    /// A ticket summary with the given level, density and final validation accuracy.
    pub(crate) fn summary(level: usize, density: f64, val: f64) -> RunSummary {
        RunSummary {
            level,
            kind: RunKind::Ticket,
            weights_remaining: density,
            kept_per_layer: vec![],
            early_stop_iteration: 0,
            test_accuracy: 0.0,
            validation_accuracy: 0.0,
            final_test_accuracy: 0.0,
            final_validation_accuracy: val,
            iterations: 0,
            stopped_early: None,
            sparse: false,
            dense_reason: None,
            train_seconds: 0.0,
            eval_seconds: 0.0,
            examples_per_second: 0.0,
        }
    }

    #[test]
    fn the_sparsest_level_within_tolerance_is_chosen() {
        let levels = [
            summary(0, 1.0, 0.90),
            summary(1, 0.8, 0.91),
            summary(2, 0.64, 0.896),
            summary(3, 0.51, 0.80),
        ];
        assert_eq!(choose_ticket(&levels, 0.005).unwrap().level, 2);
        assert_eq!(choose_ticket(&levels, 0.0).unwrap().level, 1);
        assert_eq!(choose_ticket(&levels[1..], 0.005), None);
    }

    #[test]
    fn completed_stops_at_the_first_incomplete_level() {
        let dir = tempfile::tempdir().unwrap();
        let exp = Experiment::open_or_create(dir.path(), spec()).unwrap();
        for level in 0..3 {
            std::fs::create_dir_all(exp.level_dir(level)).unwrap();
        }
        exp.write_summary(&summary(0, 1.0, 0.9)).unwrap();
        exp.write_summary(&summary(2, 0.64, 0.9)).unwrap();
        assert_eq!(exp.completed(RunKind::Ticket).unwrap().len(), 1);
    }
}
