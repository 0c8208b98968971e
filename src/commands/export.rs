//! `ticket export`: a masked checkpoint (or a level of an experiment), a PyTorch state dict or
//! an ONNX model to CSR safetensors, with the compression report and, given data, the
//! accuracy before and after; `--keep` prunes on the way.

use crate::cli::{ExportArgs, PruningName};
use anyhow::{anyhow, bail, Result};
use std::path::{Path, PathBuf};
use ticket_core::checkpoint;
use ticket_core::csr_format::IndexCodec;
use ticket_core::recipe::PruneMethod;
use ticket_export::sweep::{all_codecs, sweep};
use ticket_export::{
    export_checkpoint, resolve_checkpoint, Codecs, Error, Evaluation, ExportOptions,
};
use ticket_train::prune::prune_to_fraction;

pub fn run(args: ExportArgs) -> Result<()> {
    let input = resolve_checkpoint(&args.input, args.level)?;
    let imported = super::import::open_foreign(&input, &args.layers, args.model.as_deref())?;
    let mut source = match &imported {
        Some(imported) => checkpoint::Checkpoint {
            net: imported.net.clone(),
            meta: checkpoint::CheckpointMeta::default(),
            has_masks: true,
        },
        None if args.layers.is_some() || args.model.is_some() => {
            bail!("{}: --layers and --model are for state dicts", input.display())
        }
        None => checkpoint::load(&input)?,
    };
    let out = args.out.clone().unwrap_or_else(|| default_out(&input));
    let splits = match super::data_source(args.dataset, &args.data) {
        Some(data) => Some(data.load(0)?),
        None => None,
    };
    let par = super::thread_pool(None)?;
    let mut before_pruning = None;
    if let Some(keep) = args.keep {
        if !(keep > 0.0 && keep <= 1.0) {
            bail!("--keep {keep}: give the fraction of weights to keep, in (0, 1]");
        }
        if let Some(s) = &splits {
            if s.test.features == source.net.graph.inputs() {
                before_pruning = Some(source.net.accuracy(&s.test, par));
            }
        }
        let method = match args.pruning {
            PruningName::Layerwise => PruneMethod::Layerwise,
            PruningName::Global => PruneMethod::Global,
        };
        prune_to_fraction(&mut source.net, keep, method)?;
    }
    let eval = splits.as_ref().map(|s| Evaluation { name: &s.name, data: &s.test });
    if args.sweep {
        let table = sweep(&source.net, &all_codecs(), eval, par)?;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&table)?);
        } else {
            println!("{}: every codec, in memory (nothing written)\n{table}", input.display());
        }
        return Ok(());
    }
    let mut opts = ExportOptions::new(out);
    opts.codecs = Codecs {
        value: args.dtype,
        index: args.index_bits.map_or(IndexCodec::Absolute, |bits| IndexCodec::Gaps { bits }),
    };
    opts.overwrite = args.force;
    opts.provenance.dataset = source.meta.dataset.clone();
    opts.eval = eval;
    opts.par = par;
    let report = export_checkpoint(&source.net, &opts).map_err(|e| match e {
        // The weights came from the input: say which file holds them.
        Error::NotFinite { .. } => anyhow!("{}: {e}", input.display()),
        e => e.into(),
    })?;
    let pruning = args.keep.map(|keep| (keep, args.pruning));
    if args.json {
        let mut json = serde_json::to_value(&report)?;
        json["input"] = input.display().to_string().into();
        json["input_has_masks"] = source.has_masks.into();
        if let Some(imported) = &imported {
            json["import"] = serde_json::json!({
                "kind": imported.kind.name(),
                "graph": serde_json::from_str::<serde_json::Value>(&imported.net.graph.to_json())?,
                "notes": imported.notes,
            });
        }
        if let Some((keep, method)) = pruning {
            json["pruned_on_export"] = serde_json::json!({
                "keep": keep,
                "pruning": format!("{method:?}").to_lowercase(),
                "accuracy_before": before_pruning,
            });
        }
        println!("{}", serde_json::to_string_pretty(&json)?);
    } else {
        println!("exported {}", input.display());
        if let Some(imported) = &imported {
            println!("imported {} as {}", imported.kind.name(), imported.net.graph);
            for note in &imported.notes {
                println!("note: {note}");
            }
        }
        if !source.has_masks {
            let path = input.display();
            println!("note: {path} has no masks: every weight was exported (density 1.0)");
        }
        if let Some((keep, method)) = pruning {
            let method = format!("{method:?}").to_lowercase();
            print!("pruned on export to {:.1}% of the weights ({method})", 100.0 * keep);
            match (before_pruning, &report.accuracy) {
                (Some(before), Some(after)) => println!(
                    ": accuracy {:.2}% before, {:.2}% after on {}",
                    100.0 * before,
                    100.0 * after.exported,
                    after.dataset
                ),
                _ => println!(),
            }
        }
        println!("{report}");
    }
    Ok(())
}

/// `<input stem>.csr.safetensors` beside the input.
fn default_out(input: &Path) -> PathBuf {
    let stem = input.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    input.with_file_name(format!("{stem}.csr.safetensors"))
}
