//! `ticket report`: the table of an experiment (text or JSON) and its figures (SVG + PNG).

use crate::cli::ReportArgs;
use anyhow::Result;
use serde_json::json;
use std::path::PathBuf;
use ticket_train::experiment::{Experiment, RunKind};
use ticket_train::report::{default_curve_levels, level_rows};

pub fn run(args: ReportArgs) -> Result<()> {
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
