//! `ticket report`: the table of an experiment (text or JSON) and its figures (SVG + PNG), or
//! of a directory of replicates: per level the mean, minimum and maximum over them.

use crate::cli::ReportArgs;
use anyhow::Result;
use serde_json::json;
use std::path::{Path, PathBuf};
use ticket_train::experiment::{Experiment, RunKind, EXPERIMENT_FILE};
use ticket_train::replicates::{aggregate, open_replicates, LevelStats, RunStats, Stats};
use ticket_train::report::{default_curve_levels, level_rows};

pub fn run(args: ReportArgs) -> Result<()> {
    if !args.dir.join(EXPERIMENT_FILE).exists() {
        return report_replicates(&args.dir, args.json);
    }
    let exp = Experiment::open(&args.dir)?;
    let plots = write_plots(&exp, args.curves.as_deref())?;
    if args.json {
        print_json(&exp)?;
    } else {
        print_table(&exp)?;
        if let Some(choice) = exp.ticket()? {
            println!(
                "\nticket: level {} with {:.1}% of the weights ({})",
                choice.level,
                100.0 * choice.weights_remaining,
                choice.rule
            );
        }
        println!("plots: {}", plots.display());
    }
    Ok(())
}

/// Writes the figures; returns their directory.
pub fn write_plots(exp: &Experiment, curves: Option<&[usize]>) -> Result<PathBuf> {
    let levels = match curves {
        Some(list) => list.to_vec(),
        None => default_curve_levels(&exp.completed(RunKind::Ticket)?),
    };
    ticket_train::report::write_plots(exp, &levels)?;
    Ok(exp.dir().join("plots"))
}

pub fn print_json(exp: &Experiment) -> Result<()> {
    let rows = level_rows(exp)?;
    println!("{}", serde_json::to_string_pretty(&json!({ "levels": rows }))?);
    Ok(())
}

pub fn print_table(exp: &Experiment) -> Result<()> {
    let rows = level_rows(exp)?;
    let pct = |v: Option<f64>| v.map_or("-".to_string(), |a| format!("{:.2}", 100.0 * a));
    println!(
        "{:>5} {:>9} {:>11} {:>10} {:>10} {:>10} {:>11}",
        "level", "weights%", "early-stop", "test%@es", "final%", "reinit%", "rand-prune%"
    );
    for r in rows {
        println!(
            "{:>5} {:>9.2} {:>11} {:>10.2} {:>10.2} {:>10} {:>11}",
            r.level,
            100.0 * r.weights_remaining,
            r.early_stop_iteration,
            100.0 * r.test_accuracy,
            100.0 * r.final_test_accuracy,
            pct(r.reinit_test_accuracy),
            pct(r.random_prune_test_accuracy)
        );
    }
    Ok(())
}

/// The report of a directory of replicates: JSON (`replicates` and `levels`) or a table of
/// `mean [min-max]` cells, and the figures with error bars.
fn report_replicates(dir: &Path, json: bool) -> Result<()> {
    let replicates = open_replicates(dir)?;
    let levels = aggregate(&replicates)?;
    ticket_train::replicates::write_plots(dir, &replicates, &levels)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&replicates_json(&replicates, &levels))?);
        return Ok(());
    }
    let spec = &replicates[0].1.file.spec;
    println!(
        "{} replicates of {} on {} (mean [min-max] over the replicates that reached each level)",
        replicates.len(),
        spec.recipe.name,
        spec.dataset
    );
    let pct =
        |s: &Stats| format!("{:.2} [{:.2}-{:.2}]", 100.0 * s.mean, 100.0 * s.min, 100.0 * s.max);
    let control = |r: &Option<RunStats>| r.as_ref().map_or("-".into(), |r| pct(&r.test_accuracy));
    println!(
        "{:>5} {:>9} {:>2} {:>21} {:>21} {:>21} {:>21} {:>21}",
        "level", "weights%", "n", "test%@es", "early-stop", "final%", "reinit%", "rand-prune%"
    );
    for l in &levels {
        let t = &l.ticket;
        let es = &t.early_stop_iteration;
        println!(
            "{:>5} {:>9.2} {:>2} {:>21} {:>21} {:>21} {:>21} {:>21}",
            l.level,
            100.0 * t.weights_remaining.mean,
            t.n,
            pct(&t.test_accuracy),
            format!("{:.0} [{:.0}-{:.0}]", es.mean, es.min, es.max),
            pct(&t.final_test_accuracy),
            control(&l.reinit),
            control(&l.random_prune)
        );
    }
    println!("plots: {}", dir.join("plots").display());
    Ok(())
}

/// What `ticket report DIR --json` prints for a directory of replicates.
fn replicates_json(replicates: &[(usize, Experiment)], levels: &[LevelStats]) -> serde_json::Value {
    let list: Vec<serde_json::Value> = replicates
        .iter()
        .map(|(k, exp)| json!({ "replicate": k, "seed": exp.file.spec.seed }))
        .collect();
    json!({ "replicates": list, "levels": levels })
}
