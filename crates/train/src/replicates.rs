//! Replicates: the same experiment run again with other seeds, and what they say together.
//!
//! Replicate `K` of an experiment with seed `S` is an ordinary experiment directory,
//! `OUT/replicate_K/`, whose seed is [`replicate_seed`]`(S, K)`: a pure function of the two,
//! so a replicate can be re-run, resumed or moved to another machine and always draws the same
//! initialisation, batch order and controls. [`aggregate`] reads a directory of replicates and
//! gives, per level, the number of replicates that reached it and the mean, minimum and
//! maximum of each accuracy and early-stop iteration, for the ticket and its controls: the
//! points and error bars of the paper's figures, which average five trials.

use crate::experiment::{Experiment, RunKind, RunSummary, EXPERIMENT_FILE};
use crate::plot::{Axis, Chart, ChartFiles, Series, Spread};
use crate::run_files::read_history;
use crate::{Error, Result};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Prefix of a replicate's directory name: `replicate_3`.
pub const REPLICATE_PREFIX: &str = "replicate_";

/// The seed of replicate `k` of an experiment seeded `seed`:
/// `splitmix64(seed ^ splitmix64(k))`, where `splitmix64(x)` is the output function of Vigna's
/// SplitMix64 generator applied to `x + 0x9E3779B97F4A7C15`. Neighbouring `k` (and neighbouring
/// experiment seeds) give unrelated seeds.
pub fn replicate_seed(seed: u64, k: usize) -> u64 {
    splitmix64(seed ^ splitmix64(k as u64))
}

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The directory of replicate `k` under `out`.
pub fn replicate_dir(out: &Path, k: usize) -> PathBuf {
    out.join(format!("{REPLICATE_PREFIX}{k}"))
}

/// The replicate experiments under `dir` (each `replicate_K/` holding an experiment), in
/// order of `K`. Fails, naming the directory, when there is none, when one cannot be read, or
/// when two are not the same experiment up to the seed.
pub fn open_replicates(dir: &Path) -> Result<Vec<(usize, Experiment)>> {
    let entries = std::fs::read_dir(dir).map_err(|e| ticket_core::Error::io(dir, e))?;
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| ticket_core::Error::io(dir, e))?;
        let name = entry.file_name();
        let Some(k) = name.to_str().and_then(|n| n.strip_prefix(REPLICATE_PREFIX)) else {
            continue;
        };
        let Ok(k) = k.parse::<usize>() else { continue };
        if entry.path().join(EXPERIMENT_FILE).exists() {
            found.push((k, Experiment::open(&entry.path())?));
        }
    }
    found.sort_by_key(|(k, _)| *k);
    let Some((first_k, first)) = found.first() else {
        return Err(Error::Experiment {
            dir: dir.to_path_buf(),
            problem: format!(
                "neither an experiment ({EXPERIMENT_FILE}) nor a directory of replicates \
                 ({REPLICATE_PREFIX}K/{EXPERIMENT_FILE})"
            ),
        });
    };
    let identity = |exp: &Experiment| {
        let mut spec = exp.file.spec.clone();
        spec.seed = 0;
        spec.recipe.prune.levels = 0;
        spec
    };
    for (k, exp) in &found[1..] {
        if identity(exp) != identity(first) {
            return Err(Error::Experiment {
                dir: exp.dir().to_path_buf(),
                problem: format!(
                    "is not the same experiment as {REPLICATE_PREFIX}{first_k} (they may \
                     differ only in the seed); keep replicates of one experiment per directory"
                ),
            });
        }
        if exp.file.spec.seed == first.file.spec.seed {
            return Err(Error::Experiment {
                dir: exp.dir().to_path_buf(),
                problem: format!(
                    "has the same seed as {REPLICATE_PREFIX}{first_k} ({}): not a replicate \
                     (replicate {k} of the experiment would have another seed)",
                    exp.file.spec.seed
                ),
            });
        }
    }
    Ok(found)
}

/// Mean, minimum and maximum of one quantity over `n` replicates.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Stats {
    pub n: usize,
    pub mean: f64,
    pub min: f64,
    pub max: f64,
}

impl Stats {
    /// `None` for no values.
    pub fn of(values: &[f64]) -> Option<Stats> {
        if values.is_empty() {
            return None;
        }
        let sum: f64 = values.iter().sum();
        Some(Stats {
            n: values.len(),
            mean: sum / values.len() as f64,
            min: values.iter().copied().fold(f64::INFINITY, f64::min),
            max: values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        })
    }
}

/// One kind of run (ticket or a control) of one level, over the replicates that completed it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RunStats {
    /// Replicates that completed this run.
    pub n: usize,
    pub weights_remaining: Stats,
    /// Test accuracy (fraction) at the early-stop iteration.
    pub test_accuracy: Stats,
    pub final_test_accuracy: Stats,
    pub validation_accuracy: Stats,
    pub final_validation_accuracy: Stats,
    pub early_stop_iteration: Stats,
}

impl RunStats {
    fn of(runs: &[&RunSummary]) -> Option<RunStats> {
        let stat = |f: &dyn Fn(&RunSummary) -> f64| {
            Stats::of(&runs.iter().map(|s| f(s)).collect::<Vec<_>>())
        };
        Some(RunStats {
            n: runs.len(),
            weights_remaining: stat(&|s| s.weights_remaining)?,
            test_accuracy: stat(&|s| s.test_accuracy)?,
            final_test_accuracy: stat(&|s| s.final_test_accuracy)?,
            validation_accuracy: stat(&|s| s.validation_accuracy)?,
            final_validation_accuracy: stat(&|s| s.final_validation_accuracy)?,
            early_stop_iteration: stat(&|s| s.early_stop_iteration as f64)?,
        })
    }
}

/// One level over the replicates: the ticket and, where run, its controls.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LevelStats {
    pub level: usize,
    pub ticket: RunStats,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reinit: Option<RunStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub random_prune: Option<RunStats>,
}

/// The completed runs of every replicate, per level: every level that at least one replicate
/// completed, in order.
pub fn aggregate(replicates: &[(usize, Experiment)]) -> Result<Vec<LevelStats>> {
    let kinds = [RunKind::Ticket, RunKind::Reinit, RunKind::RandomPrune];
    let mut runs: Vec<Vec<RunSummary>> = vec![Vec::new(); kinds.len()];
    for (_, exp) in replicates {
        for (i, kind) in kinds.iter().enumerate() {
            runs[i].extend(exp.completed(*kind)?);
        }
    }
    let Some(deepest) = runs[0].iter().map(|s| s.level).max() else {
        return Ok(Vec::new());
    };
    let at = |i: usize, level: usize| -> Vec<&RunSummary> {
        runs[i].iter().filter(|s| s.level == level).collect()
    };
    Ok((0..=deepest)
        .filter_map(|level| {
            Some(LevelStats {
                level,
                ticket: RunStats::of(&at(0, level))?,
                reinit: RunStats::of(&at(1, level)),
                random_prune: RunStats::of(&at(2, level)),
            })
        })
        .collect())
}

/// One kind of run of a level (the ticket, a control), if run.
type RunOfLevel = fn(&LevelStats) -> Option<&RunStats>;
/// One plotted quantity of a run.
type Quantity = fn(&RunStats) -> &Stats;

/// Writes the figures of the replicates into `DIR/plots/` as SVG and PNG, as the paper's
/// Figures 3 and 4 draw them: means with an error bar from the minimum to the maximum, for
/// the test accuracy at early stop and the early-stop iteration against the weights
/// remaining, and for the test accuracy over training at a spread of levels.
pub fn write_plots(
    dir: &Path,
    replicates: &[(usize, Experiment)],
    levels: &[LevelStats],
) -> Result<Vec<ChartFiles>> {
    let plots = dir.join("plots");
    std::fs::create_dir_all(&plots).map_err(|e| ticket_core::Error::io(&plots, e))?;
    let spec = replicates.first().map(|(_, exp)| &exp.file.spec);
    let (name, dataset) = spec.map_or(("", ""), |s| (s.recipe.name.as_str(), s.dataset.as_str()));
    let over = format!("mean and range of {} replicates", replicates.len());
    let kinds: [(&str, RunOfLevel); 3] = [
        ("winning ticket", |l| Some(&l.ticket)),
        ("random reinit", |l| l.reinit.as_ref()),
        ("random pruning", |l| l.random_prune.as_ref()),
    ];
    let charts: [(&str, &str, &str, Quantity, f64); 2] = [
        (
            "accuracy_vs_weights",
            "test accuracy at early stop",
            "Test accuracy (%)",
            |r| &r.test_accuracy,
            100.0,
        ),
        (
            "early_stop",
            "early-stop iteration",
            "Iteration of minimum validation loss",
            |r| &r.early_stop_iteration,
            1.0,
        ),
    ];
    let mut files = Vec::new();
    for (file, what, y_label, quantity, scale) in charts {
        let mut chart = Chart::new(
            format!("{name} on {dataset}: {what} ({over})"),
            "Weights remaining (%)",
            y_label,
        );
        chart.x_axis = Axis::Log { reversed: true };
        for (label, pick) in kinds {
            let rows: Vec<(f64, &Stats)> = levels
                .iter()
                .filter_map(|l| pick(l).map(|r| (100.0 * r.weights_remaining.mean, quantity(r))))
                .collect();
            if rows.is_empty() {
                continue;
            }
            let points = rows.iter().map(|(x, s)| (*x, scale * s.mean)).collect();
            let bars = rows.iter().map(|(x, s)| (*x, scale * s.min, scale * s.max)).collect();
            chart.series.push(
                Series::new(label, points).with_markers().with_spread(Spread::ErrorBars(bars)),
            );
        }
        files.push(chart.write(&plots.join(file))?);
    }
    files.push(curves_chart(replicates, levels)?.write(&plots.join("accuracy_curves"))?);
    Ok(files)
}

/// The paper's Figure 3 proper: test accuracy over training at a spread of levels, the mean
/// over the replicates at each evaluation with a min-max error bar.
fn curves_chart(replicates: &[(usize, Experiment)], levels: &[LevelStats]) -> Result<Chart> {
    let spec = replicates.first().map(|(_, exp)| &exp.file.spec);
    let (name, dataset) = spec.map_or(("", ""), |s| (s.recipe.name.as_str(), s.dataset.as_str()));
    let mut chart = Chart::new(
        format!(
            "{name} on {dataset}: test accuracy during training (mean and range of {} replicates)",
            replicates.len()
        ),
        "Training iteration",
        "Test accuracy (%)",
    );
    let deepest = replicates
        .iter()
        .map(|(_, exp)| exp.completed(RunKind::Ticket))
        .collect::<Result<Vec<_>>>()?
        .into_iter()
        .max_by_key(|runs| runs.len())
        .unwrap_or_default();
    for level in crate::report::default_curve_levels(&deepest) {
        let Some(row) = levels.iter().find(|l| l.level == level) else { continue };
        let mut by_iteration: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
        for (_, exp) in replicates {
            if exp.summary(level, RunKind::Ticket)?.is_none() {
                continue;
            }
            for record in read_history(&exp.run_dir(level, RunKind::Ticket))? {
                if record.iteration > 0 {
                    by_iteration.entry(record.iteration).or_default().push(record.test_accuracy);
                }
            }
        }
        let stats: Vec<(f64, Stats)> = by_iteration
            .into_iter()
            .filter_map(|(i, values)| Some((i as f64, Stats::of(&values)?)))
            .collect();
        let points = stats.iter().map(|(x, s)| (*x, 100.0 * s.mean)).collect();
        let bars = stats.iter().map(|(x, s)| (*x, 100.0 * s.min, 100.0 * s.max)).collect();
        let label = format!("{:.1}%", 100.0 * row.ticket.weights_remaining.mean);
        chart.series.push(Series::new(label, points).with_spread(Spread::ErrorBars(bars)));
    }
    Ok(chart)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix64_matches_the_reference_generator() {
        // The first outputs of Vigna's splitmix64.c seeded with 1234567: each call adds the
        // golden gamma to the state and mixes it, which is `splitmix64(state)` here.
        let gamma = 0x9E37_79B9_7F4A_7C15u64;
        assert_eq!(splitmix64(1_234_567), 6_457_827_717_110_365_317);
        assert_eq!(splitmix64(1_234_567u64.wrapping_add(gamma)), 3_203_168_211_198_807_973);
    }

    #[test]
    fn replicate_seeds_are_distinct_and_depend_on_both_inputs() {
        let seeds: std::collections::BTreeSet<u64> =
            (0..4u64).flat_map(|s| (0..50).map(move |k| replicate_seed(s, k))).collect();
        assert_eq!(seeds.len(), 200);
    }

    #[test]
    fn stats_are_mean_min_and_max() {
        let s = Stats::of(&[0.5, 0.25, 1.0]).unwrap();
        assert_eq!((s.n, s.mean, s.min, s.max), (3, 1.75 / 3.0, 0.25, 1.0));
        assert_eq!(Stats::of(&[]), None);
    }
}
