//! `ticket export`: a masked checkpoint (or a level of an experiment), a PyTorch state dict or
//! an ONNX model to CSR safetensors, with the compression report and, given data, the
//! accuracy before and after; `--keep` prunes on the way.

use crate::cli::{ExportArgs, PruningName};
use anyhow::{anyhow, Result};
use std::path::{Path, PathBuf};
use ticket_core::csr_format::IndexCodec;
use ticket_core::recipe::PruneMethod;
use ticket_export::sweep::{all_codecs, sweep};
use ticket_export::{
    export_checkpoint, open_source, Codecs, Error, Evaluation, ExportOptions, SourceOptions,
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
    let source = open_source(&args.input, &source_opts, eval, par)?;
    let input = &source.input;
    if args.sweep {
        let table = sweep(&source.net, &all_codecs(), eval, par)?;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&table)?);
        } else {
            println!("{}: every codec, in memory (nothing written)\n{table}", input.display());
        }
        return Ok(());
    }
    let mut opts = ExportOptions::new(args.out.clone().unwrap_or_else(|| default_out(input)));
    opts.codecs = Codecs {
        value: args.dtype,
        index: args.index_bits.map_or(IndexCodec::Absolute, |bits| IndexCodec::Gaps { bits }),
    };
    opts.overwrite = args.force;
    opts.provenance.dataset = source.dataset.clone();
    opts.eval = eval;
    opts.par = par;
    let report = export_checkpoint(&source.net, &opts).map_err(|e| match e {
        // The weights came from the input: say which file holds them.
        Error::NotFinite { .. } => anyhow!("{}: {e}", input.display()),
        e => e.into(),
    })?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&source.report_json(&report))?);
    } else {
        print!("{}", source.describe(&report));
        println!("{report}");
    }
    Ok(())
}

/// `<input stem>.csr.safetensors` beside the input.
fn default_out(input: &Path) -> PathBuf {
    let stem = input.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    input.with_file_name(format!("{stem}.csr.safetensors"))
}
