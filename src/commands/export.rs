//! `ticket export`: a masked checkpoint (or a level of an experiment) to CSR safetensors, with
//! the compression report and, given data, the accuracy before and after.

use crate::cli::ExportArgs;
use anyhow::{anyhow, Result};
use std::path::{Path, PathBuf};
use ticket_core::checkpoint;
use ticket_core::csr_format::IndexCodec;
use ticket_export::sweep::{all_codecs, sweep};
use ticket_export::{
    export_checkpoint, resolve_checkpoint, Codecs, Error, Evaluation, ExportOptions,
};

pub fn run(args: ExportArgs) -> Result<()> {
    let input = resolve_checkpoint(&args.input, args.level)?;
    let source = checkpoint::load(&input)?;
    let out = args.out.clone().unwrap_or_else(|| default_out(&input));
    let splits = match super::data_source(args.dataset, &args.data) {
        Some(data) => Some(data.load(0)?),
        None => None,
    };
    let eval = splits.as_ref().map(|s| Evaluation { name: &s.name, data: &s.test });
    if args.sweep {
        let table = sweep(&source.net, &all_codecs(), eval, super::thread_pool(None)?)?;
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
    opts.par = super::thread_pool(None)?;
    let report = export_checkpoint(&source.net, &opts).map_err(|e| match e {
        // The weights came from the input: say which file holds them.
        Error::NotFinite { .. } => anyhow!("{}: {e}", input.display()),
        e => e.into(),
    })?;
    if args.json {
        let mut json = serde_json::to_value(&report)?;
        json["input"] = input.display().to_string().into();
        json["input_has_masks"] = source.has_masks.into();
        println!("{}", serde_json::to_string_pretty(&json)?);
    } else {
        println!("exported {}", input.display());
        if !source.has_masks {
            let path = input.display();
            println!("note: {path} has no masks: every weight was exported (density 1.0)");
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
