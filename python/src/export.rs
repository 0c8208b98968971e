//! `ticket.export`: what `ticket export` does, from Python, returning the compression report
//! (with what was imported and pruned) as a dict.

use crate::errors;
use crate::model::json_to_py;
use pyo3::prelude::*;
use std::collections::HashMap;
use std::path::PathBuf;
use ticket_core::csr_format::ValueCodecs;
use ticket_core::recipe::PruneMethod;
use ticket_core::{DataSource, Par};
use ticket_export::{
    export_checkpoint, open_source, Codecs, Error, Evaluation, ExportOptions, IndexRequest,
    SourceOptions,
};

/// `index_bits=`: a width (`5`) or the text `--index-bits` takes (`"conv=4,linear=5"`,
/// `"auto"`).
#[derive(FromPyObject)]
pub enum IndexBitsArg {
    Bits(u32),
    Text(String),
}

/// Exports `source` (an experiment directory, a ticket checkpoint, a ticket CSR file to
/// re-encode, a PyTorch state dict in safetensors or an ONNX file) to the CSR file `out` and
/// returns the compression report.
#[pyfunction]
#[pyo3(signature = (
    source, out, *, keep = None, keep_layers = None, pruning = "layerwise", dtype = "f32", index_bits = None,
    level = None, layers = None, model = None, force = false, dataset = None, data = None,
))]
#[allow(clippy::too_many_arguments)]
pub fn export<'py>(
    py: Python<'py>,
    source: PathBuf,
    out: PathBuf,
    keep: Option<f64>,
    keep_layers: Option<HashMap<String, f64>>,
    pruning: &str,
    dtype: &str,
    index_bits: Option<IndexBitsArg>,
    level: Option<usize>,
    layers: Option<Vec<String>>,
    model: Option<String>,
    force: bool,
    dataset: Option<&str>,
    data: Option<PathBuf>,
) -> PyResult<Bound<'py, PyAny>> {
    let value: ValueCodecs =
        dtype.parse().map_err(|e: String| errors::usage(format!("dtype: {e}")))?;
    let index: Option<IndexRequest> = index_bits
        .map(|arg| match arg {
            IndexBitsArg::Bits(bits) => bits.to_string(),
            IndexBitsArg::Text(text) => text,
        })
        .map(|text| text.parse())
        .transpose()
        .map_err(|e: String| errors::usage(format!("index_bits: {e}")))?;
    let method = match pruning {
        "layerwise" => PruneMethod::Layerwise,
        "global" => PruneMethod::Global,
        other => {
            let problem = format!("pruning: `{other}` is not `layerwise` or `global`");
            return Err(errors::usage(problem));
        }
    };
    let data = match (data, dataset) {
        (Some(dir), _) => Some(DataSource::Dir(dir)),
        (None, Some("digits")) => Some(DataSource::Digits),
        (None, Some("fashion-mnist")) => Some(DataSource::FashionMnist),
        (None, Some(other)) => {
            return Err(errors::usage(format!(
                "dataset: unknown data set `{other}` (expected digits or fashion-mnist, or pass data=DIR)"
            )))
        }
        (None, None) => None,
    };
    let mut keep_layers: Vec<(String, f64)> = keep_layers.unwrap_or_default().into_iter().collect();
    keep_layers.sort_by(|a, b| a.0.cmp(&b.0));
    let source_opts = SourceOptions {
        level,
        layers,
        recipe: model,
        keep: keep.map(|keep| (keep, method)),
        keep_layers,
    };
    let report = py.detach(|| -> PyResult<String> {
        let splits = data.map(|d| d.load(0)).transpose().map_err(errors::core)?;
        let eval = splits.as_ref().map(|s| Evaluation { name: &s.name, data: &s.test });
        let par = Par::Rayon(std::thread::available_parallelism().map_or(1, |n| n.get()));
        let source = open_source(&source, &source_opts, eval, par).map_err(errors::export)?;
        let mut opts = ExportOptions::new(out);
        let index = index.map_or_else(Default::default, |r| r.resolve(&source.net));
        opts.codecs = Codecs { value, index };
        opts.overwrite = force;
        opts.provenance.dataset = source.dataset.clone();
        opts.eval = eval;
        opts.par = par;
        let report = export_checkpoint(&source.net, &opts).map_err(|e| match e {
            // The weights came from the input: say which file holds them.
            e @ Error::NotFinite { .. } => {
                errors::usage(format!("{}: {e}", source.input.display()))
            }
            e => errors::export(e),
        })?;
        Ok(source.report_json(&report).to_string())
    })?;
    json_to_py(py, &report)
}
