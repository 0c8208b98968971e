//! `ticket train`: one training run, dense or under the masks of a checkpoint.

use super::observe::{progress_bar, CliObserver};
use crate::cli::TrainArgs;
use anyhow::{bail, Context, Result};
use serde_json::json;
use std::path::PathBuf;
use ticket_core::checkpoint;
use ticket_train::init::init_net;
use ticket_train::rng::SeededRng;
use ticket_train::run_files::{write_history, CheckpointSaver};
use ticket_train::{train, Ending, TrainOptions};

pub fn run(args: TrainArgs) -> Result<()> {
    let recipe = args.run.recipe()?;
    let par = super::thread_pool(args.run.threads)?;
    let graph = recipe.graph()?;
    // The mask is checked before the (slower) data load.
    let masks = match &args.mask {
        Some(path) => {
            let masked = checkpoint::load(path)?;
            if masked.net.graph != graph {
                bail!(
                    "{}: the mask is for {} but the model is {}",
                    path.display(),
                    masked.net.graph,
                    graph
                );
            }
            Some(masked.net.layers.into_iter().map(|l| l.mask))
        }
        None => None,
    };
    if let Some(k) = args.save_at.iter().find(|&&k| k > recipe.train.iterations) {
        bail!("--save-at {k} is past the end of training ({} iterations)", recipe.train.iterations);
    }
    let splits = args.run.data.source().load(recipe.train.validation_size)?;
    let mut net = init_net(&graph, recipe.init, &mut SeededRng::new(args.run.seed, "init"));
    if let Some(masks) = masks {
        for (layer, mask) in net.layers.iter_mut().zip(masks) {
            layer.mask = mask;
        }
        net.apply_masks();
    }
    let out = args.out.clone().unwrap_or_else(|| {
        PathBuf::from(format!("runs/train-{}-{}-s{}", recipe.name, splits.name, args.run.seed))
    });
    std::fs::create_dir_all(&out).with_context(|| format!("{}: cannot create", out.display()))?;
    let saver =
        CheckpointSaver { dir: out.clone(), dataset: splits.name.clone(), seed: args.run.seed };
    let weights = format!("{:.1}% weights", 100.0 * net.density());
    let mut observer = CliObserver::new(progress_bar(recipe.train.iterations, "training"), saver);
    let opts = TrainOptions {
        snapshot_at: args.save_at.clone(),
        sparse_below: args.run.sparse_below,
        ..TrainOptions::new(args.run.seed, par)
    };
    let outcome = train(net, &splits, &recipe.train, &opts, &mut observer)?;
    observer.bar.finish_and_clear();
    if let Some(reason) = outcome.dense_reason {
        eprintln!("note: {reason}");
    }
    write_history(&out, &outcome.history)?;

    let summary = json!({
        "model": recipe.name,
        "arch": graph.to_string(),
        "dataset": splits.name,
        "seed": args.run.seed,
        "threads": par.threads(),
        "iterations": recipe.train.iterations,
        "weights_remaining": outcome.net.density(),
        "sparse": outcome.sparse,
        "ending": outcome.ending,
        "early_stop": outcome.early_stop,
        "final": outcome.last(),
        "train_examples_per_second": outcome.examples_per_second(),
        "sparse": outcome.sparse,
        "dense_reason": outcome.dense_reason,
        "recipe": recipe,
        "version": env!("CARGO_PKG_VERSION"),
    });
    ticket_core::atomic::write_atomic(
        &out.join("summary.json"),
        serde_json::to_string_pretty(&summary)?.as_bytes(),
    )?;
    match outcome.ending {
        Ending::Completed | Ending::StoppedEarly { .. } => {}
        Ending::Interrupted { iteration } => {
            let path =
                observer.saver.save_as(&out.join("last.safetensors"), iteration, &outcome.net)?;
            bail!("interrupted at iteration {iteration}; weights saved to {}", path.display());
        }
        Ending::Diverged { iteration } => {
            let path = observer.saver.save_as(
                &out.join("last_good.safetensors"),
                outcome.net_iteration,
                &outcome.net,
            )?;
            bail!(
                "training diverged at iteration {iteration} (loss is not finite); the last good \
                 weights (iteration {}) are in {}",
                outcome.net_iteration,
                path.display()
            );
        }
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        let (e, f) = (&outcome.early_stop, outcome.last());
        println!(
            "{} on {} ({weights}), {} iterations, {:.0} examples/s on {} threads",
            recipe.name,
            splits.name,
            recipe.train.iterations,
            outcome.examples_per_second(),
            par.threads()
        );
        println!(
            "early stop (min validation loss): iteration {}, test accuracy {:.2}%",
            e.iteration,
            100.0 * e.test_accuracy
        );
        println!(
            "final: test accuracy {:.2}%, test loss {:.4}",
            100.0 * f.test_accuracy,
            f.test_loss
        );
        println!("checkpoints and metrics in {}", out.display());
    }
    Ok(())
}
