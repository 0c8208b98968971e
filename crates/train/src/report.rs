//! What an experiment found, as a table (one row per level) and as the figures of the paper:
//! test accuracy against weights remaining for the ticket and its controls, accuracy over
//! training for a few levels, and the early-stop iteration against weights remaining.

use crate::experiment::{Experiment, RunKind, RunSummary};
use crate::plot::{Axis, Chart, ChartFiles, Series};
use crate::run_files::read_history;
use crate::Result;
use serde::Serialize;

/// One row of the report: a level of the main line and, where run, its controls.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LevelRow {
    pub level: usize,
    /// Fraction of weights kept.
    pub weights_remaining: f64,
    /// Test accuracy (fraction) at the early-stop iteration.
    pub test_accuracy: f64,
    pub final_test_accuracy: f64,
    pub early_stop_iteration: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reinit_test_accuracy: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub random_prune_test_accuracy: Option<f64>,
}

/// The rows of every completed level.
pub fn level_rows(exp: &Experiment) -> Result<Vec<LevelRow>> {
    let control = |level, kind| -> Result<Option<f64>> {
        Ok(exp.summary(level, kind)?.map(|s| s.test_accuracy))
    };
    exp.completed(RunKind::Ticket)?
        .into_iter()
        .map(|s| {
            Ok(LevelRow {
                level: s.level,
                weights_remaining: s.weights_remaining,
                test_accuracy: s.test_accuracy,
                final_test_accuracy: s.final_test_accuracy,
                early_stop_iteration: s.early_stop_iteration,
                reinit_test_accuracy: control(s.level, RunKind::Reinit)?,
                random_prune_test_accuracy: control(s.level, RunKind::RandomPrune)?,
            })
        })
        .collect()
}

/// Levels whose density is nearest to the ones the paper plots (100, 51.3, 21.1, 7.0, 3.6,
/// 1.9 %), each at most once.
pub fn default_curve_levels(levels: &[RunSummary]) -> Vec<usize> {
    let mut chosen: Vec<usize> = [1.0, 0.513, 0.211, 0.07, 0.036, 0.019]
        .iter()
        .filter_map(|&target: &f64| {
            levels
                .iter()
                .min_by(|a, b| {
                    let d = |s: &RunSummary| (s.weights_remaining.ln() - target.ln()).abs();
                    d(a).total_cmp(&d(b))
                })
                .filter(|s| (s.weights_remaining / target).ln().abs() < 0.35)
                .map(|s| s.level)
        })
        .collect();
    chosen.dedup();
    chosen
}

/// Writes the figures into `DIR/plots/` as SVG and PNG and returns their files.
pub fn write_plots(exp: &Experiment, curve_levels: &[usize]) -> Result<Vec<ChartFiles>> {
    let dir = exp.dir().join("plots");
    std::fs::create_dir_all(&dir).map_err(|e| ticket_core::Error::io(&dir, e))?;
    let name = &exp.file.spec.recipe.name;
    let dataset = &exp.file.spec.dataset;
    let percent = |f: f64| 100.0 * f;
    let mut files = Vec::new();

    let mut chart = Chart::new(
        format!("{name} on {dataset}: test accuracy at early stop"),
        "Weights remaining (%)",
        "Test accuracy (%)",
    );
    chart.x_axis = Axis::Log { reversed: true };
    for (kind, label) in [
        (RunKind::Ticket, "winning ticket"),
        (RunKind::Reinit, "random reinit"),
        (RunKind::RandomPrune, "random pruning"),
    ] {
        let points: Vec<(f64, f64)> = exp
            .completed(kind)?
            .iter()
            .map(|s| (percent(s.weights_remaining), percent(s.test_accuracy)))
            .collect();
        if !points.is_empty() {
            chart.series.push(Series::new(label, points).with_markers());
        }
    }
    files.push(chart.write(&dir.join("accuracy_vs_weights"))?);

    let tickets = exp.completed(RunKind::Ticket)?;
    let mut chart = Chart::new(
        format!("{name} on {dataset}: test accuracy during training"),
        "Training iteration",
        "Test accuracy (%)",
    );
    for s in tickets.iter().filter(|s| curve_levels.contains(&s.level)) {
        let history = read_history(&exp.run_dir(s.level, RunKind::Ticket))?;
        let points = history
            .iter()
            .filter(|r| r.iteration > 0)
            .map(|r| (r.iteration as f64, percent(r.test_accuracy)))
            .collect();
        chart.series.push(Series::new(format!("{:.1}%", percent(s.weights_remaining)), points));
    }
    files.push(chart.write(&dir.join("accuracy_curves"))?);

    let mut chart = Chart::new(
        format!("{name} on {dataset}: early-stop iteration"),
        "Weights remaining (%)",
        "Iteration of minimum validation loss",
    );
    chart.x_axis = Axis::Log { reversed: true };
    for (kind, label) in [(RunKind::Ticket, "winning ticket"), (RunKind::Reinit, "random reinit")] {
        let points: Vec<(f64, f64)> = exp
            .completed(kind)?
            .iter()
            .map(|s| (percent(s.weights_remaining), s.early_stop_iteration as f64))
            .collect();
        if !points.is_empty() {
            chart.series.push(Series::new(label, points).with_markers());
        }
    }
    files.push(chart.write(&dir.join("early_stop"))?);
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(level: usize, density: f64) -> RunSummary {
        crate::experiment::tests::summary(level, density, 0.0)
    }

    #[test]
    fn curve_levels_follow_the_paper_densities() {
        let levels: Vec<RunSummary> = (0..19)
            .map(|n| {
                let d = (265_200.0 * 0.8f64.powi(n) + 1_000.0 * 0.9f64.powi(n)) / 266_200.0;
                summary(n as usize, d)
            })
            .collect();
        assert_eq!(default_curve_levels(&levels), [0, 3, 7, 12, 15, 18]);
        assert_eq!(default_curve_levels(&levels[..4]), [0, 3]);
    }
}
