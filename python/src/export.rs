//! `ticket.export`: the export `ticket export` does, from Python, returning the compression
//! report as a dict.

use crate::errors;
use crate::model::json_to_py;
use pyo3::prelude::*;
use std::path::PathBuf;
use ticket_core::{checkpoint, csr_format::ValueDtype, DataSource, Par};
use ticket_export::{export_checkpoint, resolve_checkpoint, Error, Evaluation, ExportOptions};

/// Exports `source` (an experiment directory or a ticket checkpoint) to the CSR file `out` and
/// returns the compression report.
#[pyfunction]
#[pyo3(signature = (source, out, *, dtype = "f32", level = None, force = false, dataset = None, data = None))]
#[allow(clippy::too_many_arguments)]
pub fn export<'py>(
    py: Python<'py>,
    source: PathBuf,
    out: PathBuf,
    dtype: &str,
    level: Option<usize>,
    force: bool,
    dataset: Option<&str>,
    data: Option<PathBuf>,
) -> PyResult<Bound<'py, PyAny>> {
    let dtype: ValueDtype =
        dtype.parse().map_err(|e: String| errors::usage(format!("dtype: {e}")))?;
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
    let report = py.detach(|| -> PyResult<String> {
        let input = resolve_checkpoint(&source, level).map_err(errors::export)?;
        let checkpoint = checkpoint::load(&input).map_err(errors::core)?;
        let splits = data.map(|d| d.load(0)).transpose().map_err(errors::core)?;
        let mut opts = ExportOptions::new(out);
        opts.dtype = dtype;
        opts.overwrite = force;
        opts.provenance.dataset = checkpoint.meta.dataset.clone();
        opts.eval = splits.as_ref().map(|s| Evaluation { name: &s.name, data: &s.test });
        opts.par = Par::Rayon(std::thread::available_parallelism().map_or(1, |n| n.get()));
        let report = export_checkpoint(&checkpoint.net, &opts).map_err(|e| match e {
            // The weights came from the input: say which file holds them.
            e @ Error::NotFinite { .. } => errors::usage(format!("{}: {e}", input.display())),
            e => errors::export(e),
        })?;
        let mut json = serde_json::to_value(&report).expect("the report serialises");
        json["input"] = input.display().to_string().into();
        json["input_has_masks"] = checkpoint.has_masks.into();
        Ok(json.to_string())
    })?;
    json_to_py(py, &report)
}
