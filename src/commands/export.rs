//! `ticket export`: a masked checkpoint (or a level of an experiment), a PyTorch state dict or
//! an ONNX model to CSR safetensors, with the compression report and, given data, the
//! accuracy before and after; `--keep` prunes on the way; `--finetune` trains kN codebooks.

use super::observe::{interrupted, progress_bar};
use crate::cli::{ExportArgs, PruningName};
use anyhow::{anyhow, bail, Result};
use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use ticket_core::csr_format::ValueCodec;
use ticket_core::recipe::PruneMethod;
use ticket_core::{Network, Par};
use ticket_export::finetune::{finetune, FinetuneOptions, FinetuneReport, Finetuned};
use ticket_export::sweep::{codecs_for, sweep, sweep_replacing};
use ticket_export::{
    export_checkpoint, export_replaced, open_source, AccuracyReport, Codecs, Error, Evaluation,
    ExportOptions, SourceOptions,
};

pub fn run(args: ExportArgs) -> Result<()> {
    let splits = match super::data_source(args.dataset, &args.data) {
        Some(data) => Some(data.load(0)?),
        None => None,
    };
    let eval = splits.as_ref().map(|s| Evaluation { name: &s.name, data: &s.test });
    let par = super::thread_pool(None)?;
    let method = match args.pruning {
        PruningName::Layerwise => PruneMethod::Layerwise,
        PruningName::Global => PruneMethod::Global,
    };
    let source_opts = SourceOptions {
        level: args.level,
        layers: args.layers.clone(),
        recipe: args.model.clone(),
        keep: args.keep.map(|keep| (keep, method)),
        keep_layers: args.keep_layers.clone(),
    };
    let finetune = finetune_options(&args, par)?;
    let source = open_source(&args.input, &source_opts, eval, par)?;
    let input = &source.input;
    let in_input = |e: Error| match e {
        // The weights came from the input: say which file holds them.
        Error::NotFinite { .. } => anyhow!("{}: {e}", input.display()),
        e => e.into(),
    };
    if args.sweep {
        let mut tuned: Vec<(String, FinetuneReport)> = Vec::new();
        let table = match (&finetune, &splits) {
            (Some(ft), Some(s)) => {
                let train = Evaluation { name: &s.name, data: &s.train };
                sweep_replacing(&source.net, &codecs_for(&source.net), eval, par, &mut |value| {
                    match value {
                        ValueCodec::Codebook { bits } => {
                            let t = run_finetune(&source.net, bits, train, eval, ft)?;
                            tuned.push((value.to_string(), t.report));
                            Ok(Some(t.net))
                        }
                        _ => Ok(None),
                    }
                })
            }
            _ => sweep(&source.net, &codecs_for(&source.net), eval, par),
        }
        .map_err(in_input)?;
        if args.json {
            let mut json = serde_json::to_value(&table)?;
            if !tuned.is_empty() {
                json["finetune"] =
                    serde_json::to_value(tuned.into_iter().collect::<BTreeMap<_, _>>())?;
            }
            println!("{}", serde_json::to_string_pretty(&json)?);
        } else {
            println!("{}: every codec, in memory (nothing written)", input.display());
            for (_, t) in &tuned {
                println!("{}", describe_finetune(t, None));
            }
            println!("{table}");
            if let (Some(ft), Some(best)) = (&finetune, &table.best) {
                if best.starts_with('k') {
                    println!(
                        "(kN rows fine-tuned: add --finetune {} to that command)",
                        ft.iterations
                    );
                }
            }
        }
        return Ok(());
    }
    let mut opts = ExportOptions::new(args.out.clone().unwrap_or_else(|| default_out(input)));
    opts.codecs = Codecs {
        value: args.dtype,
        index: args.index_bits.map_or_else(Default::default, |r| r.resolve(&source.net)),
    };
    opts.overwrite = args.force;
    opts.provenance.dataset = source.dataset.clone();
    opts.eval = eval;
    opts.par = par;
    let tuned = match (finetune, &splits, args.dtype.single()) {
        (Some(ft), Some(s), Some(ValueCodec::Codebook { bits })) => {
            let train = Evaluation { name: &s.name, data: &s.train };
            Some(run_finetune(&source.net, bits, train, eval, &ft).map_err(in_input)?)
        }
        _ => None,
    };
    let report = match &tuned {
        Some(t) => export_replaced(&source.net, &t.net, &opts),
        None => export_checkpoint(&source.net, &opts),
    }
    .map_err(in_input)?;
    if args.json {
        let mut json = source.report_json(&report);
        if let Some(t) = &tuned {
            json["finetune"] = serde_json::to_value(&t.report)?;
        }
        println!("{}", serde_json::to_string_pretty(&json)?);
    } else {
        print!("{}", source.describe(&report));
        if let Some(t) = &tuned {
            println!("{}", describe_finetune(&t.report, report.accuracy.as_ref()));
        }
        println!("{report}");
    }
    Ok(())
}

/// The fine-tuning asked for, after refusing what cannot be fine-tuned.
fn finetune_options(args: &ExportArgs, par: Par) -> Result<Option<FinetuneOptions>> {
    let Some(iterations) = args.finetune else { return Ok(None) };
    if args.dataset.is_none() && args.data.is_none() {
        bail!("--finetune trains on data: pass --dataset or --data (its training split is used)");
    }
    if !args.sweep && args.dtype.single().is_none() {
        bail!(
            "--finetune trains one codebook size for every layer, and --dtype {} gives each layer \
             kind its own: pass a single --dtype k2..k8",
            args.dtype
        );
    }
    if !args.sweep && !matches!(args.dtype.single(), Some(ValueCodec::Codebook { .. })) {
        bail!(
            "--finetune trains the centroids of a k-means codebook, and --dtype {} has none \
             (int8's per-row scales and float values are not fine-tuned): pass --dtype k2..k8",
            args.dtype
        );
    }
    let mut opts = FinetuneOptions::new(iterations as usize, par);
    if let Some(lr) = args.finetune_lr {
        if !(lr.is_finite() && lr > 0.0) {
            bail!("--finetune-lr must be a positive number, got {lr}");
        }
        opts.learning_rate = lr;
    }
    if let Some(optimizer) = args.finetune_optimizer {
        opts.optimizer = optimizer;
    }
    Ok(Some(opts))
}

/// Fine-tuning with a progress bar; Ctrl-C stops it before anything is written.
fn run_finetune(
    net: &Network,
    bits: u32,
    train: Evaluation,
    eval: Option<Evaluation>,
    opts: &FinetuneOptions,
) -> ticket_export::Result<Finetuned> {
    let stop = interrupted();
    let bar = progress_bar(opts.iterations, &format!("fine-tune k{bits}"));
    let result = finetune(net, bits, train, eval, opts, &mut |iteration, loss| {
        if iteration % 10 == 0 || iteration == opts.iterations {
            bar.set_position(iteration as u64);
            bar.set_message(format!("loss {loss:.4}"));
        }
        if stop.load(Ordering::Relaxed) {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    });
    bar.finish_and_clear();
    result
}

/// One line: what fine-tuning did to the training loss and the test accuracy (after: the
/// export's `accuracy`, if measured).
fn describe_finetune(ft: &FinetuneReport, accuracy: Option<&AccuracyReport>) -> String {
    let mut text = format!(
        "fine-tuned the k{} codebooks: {} {} steps (lr {}, batch {}) on {} training examples, \
         training loss {:.4} -> {:.4}",
        ft.bits,
        ft.iterations,
        if ft.optimizer == "sgd" { "SGD" } else { "Adam" },
        ft.learning_rate,
        ft.batch_size,
        ft.train_examples,
        ft.train_loss_before,
        ft.train_loss_after
    );
    if let (Some(before), Some(acc)) = (ft.accuracy_before, accuracy) {
        text += &format!(
            "; {} accuracy {:.2}% with k-means centroids, {:.2}% fine-tuned (f32 ticket {:.2}%)",
            acc.dataset,
            100.0 * before,
            100.0 * acc.exported,
            100.0 * acc.source
        );
    } else if let Some(before) = ft.accuracy_before {
        text += &format!("; test accuracy {:.2}% with k-means centroids", 100.0 * before);
    }
    text
}

/// `<input stem>.csr.safetensors` beside the input.
fn default_out(input: &Path) -> PathBuf {
    let stem = input.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    input.with_file_name(format!("{stem}.csr.safetensors"))
}
