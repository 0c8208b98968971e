//! The compression report of an export, per layer and in total. Compression is stated three
//! ways, because each alone misleads: parameters kept / dense parameters, bytes of the CSR file
//! vs the dense f32 file (headers, indptr and indices included), and bits per kept weight.
//! Printed as a table ([`std::fmt::Display`]) or as JSON (`serde`).

use crate::csr::CsrModel;
use serde::Serialize;
use std::fmt;
use std::path::PathBuf;
use ticket_core::csr_format::{self, ValueDtype};

/// Bytes of one layer's tensors in the CSR file.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CsrBytes {
    pub values: usize,
    pub indices: usize,
    pub indptr: usize,
    pub shape: usize,
    pub bias: usize,
    /// The sum of the above.
    pub total: usize,
}

impl CsrBytes {
    fn add(&mut self, other: &CsrBytes) {
        self.values += other.values;
        self.indices += other.indices;
        self.indptr += other.indptr;
        self.shape += other.shape;
        self.bias += other.bias;
        self.total += other.total;
    }
}

/// One layer.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LayerReport {
    pub name: String,
    /// The layer kind: `linear` or `conv2d`.
    pub op: String,
    /// The full weight shape, `[out, in]` or `[out, in, kh, kw]` (the `.weight.shape` tensor).
    pub dims: Vec<usize>,
    /// `rows x cols` is the weight as the CSR matrix stores it (`cols = in*kh*kw` for conv2d).
    pub rows: usize,
    pub cols: usize,
    /// `u16` or `u32`.
    pub index_dtype: String,
    /// Weights plus biases.
    pub dense_params: usize,
    /// Kept weights plus biases.
    pub kept_params: usize,
    pub kept_weights: usize,
    /// Kept weights / weights.
    pub density: f64,
    /// `4 * dense_params`.
    pub dense_f32_bytes: usize,
    pub csr_bytes: CsrBytes,
    /// `dense_f32_bytes / csr_bytes.total`.
    pub ratio: f64,
    /// `8 * csr_bytes.total / kept_weights`; none for a layer with no kept weight.
    pub bits_per_kept_weight: Option<f64>,
}

/// All layers together, and the whole files.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TotalReport {
    pub dense_params: usize,
    pub kept_params: usize,
    pub kept_weights: usize,
    /// Kept weights / weights (the `density` of the file's metadata).
    pub density: f64,
    /// Kept parameters / dense parameters, biases included.
    pub params_kept_fraction: f64,
    pub dense_f32_bytes: usize,
    /// Sum over layers.
    pub csr_bytes: CsrBytes,
    /// The 8-byte length and the JSON header (tensor table and metadata) of the CSR file.
    pub header_bytes: usize,
    /// Size of the CSR file: `csr_bytes.total + header_bytes`.
    pub csr_file_bytes: usize,
    /// Size of the same model as a dense f32 safetensors file without masks (weights and biases
    /// only, no metadata, as `safetensors.torch.save_file(model.state_dict())` writes it).
    pub dense_file_bytes: usize,
    /// `dense_file_bytes / csr_file_bytes`.
    pub file_ratio: f64,
    /// `8 * csr_file_bytes / kept_weights`, everything in the file counted.
    pub bits_per_kept_weight: Option<f64>,
}

/// Accuracy on the test split of a data set, before and after export.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AccuracyReport {
    pub dataset: String,
    pub examples: usize,
    /// The masked f32 source model.
    pub source: f64,
    /// The model decoded from the written file.
    pub exported: f64,
    /// `(exported - source) * 100`, in percentage points.
    pub change_pp: f64,
    /// Whether `source` went into the file's `source_accuracy` (only when the data set is the
    /// one the source was trained on).
    pub recorded_in_file: bool,
}

/// Everything `ticket export` reports.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CompressionReport {
    pub output: PathBuf,
    pub graph: String,
    pub value_dtype: String,
    pub layers: Vec<LayerReport>,
    pub total: TotalReport,
    pub accuracy: Option<AccuracyReport>,
}

impl CompressionReport {
    /// The report of `model` written with `dtype` into a file of `csr_file_bytes` (of which
    /// `header_bytes` header), against a dense f32 file of `dense_file_bytes`.
    pub fn new(
        model: &CsrModel,
        dtype: ValueDtype,
        output: PathBuf,
        header_bytes: usize,
        csr_file_bytes: usize,
        dense_file_bytes: usize,
    ) -> Self {
        let layers: Vec<LayerReport> = model
            .layers
            .iter()
            .zip(model.graph.weighted())
            .map(|(layer, weighted)| {
                let (rows, cols) = layer.matrix.shape();
                let nnz = layer.matrix.nnz();
                let index_dtype = csr_format::index_dtype(cols);
                let index_bytes = index_dtype.bitsize() / 8;
                let mut csr_bytes = CsrBytes {
                    values: nnz * dtype.bytes(),
                    indices: nnz * index_bytes,
                    indptr: (rows + 1) * 4,
                    shape: weighted.dims.len() * 8,
                    bias: rows * 4,
                    total: 0,
                };
                csr_bytes.total = csr_bytes.values
                    + csr_bytes.indices
                    + csr_bytes.indptr
                    + csr_bytes.shape
                    + csr_bytes.bias;
                let dense_params = rows * cols + rows;
                LayerReport {
                    name: layer.name.clone(),
                    op: model.graph.layers()[weighted.index].op().to_string(),
                    dims: weighted.dims.clone(),
                    rows,
                    cols,
                    index_dtype: if index_bytes == 2 { "u16" } else { "u32" }.to_string(),
                    dense_params,
                    kept_params: nnz + rows,
                    kept_weights: nnz,
                    density: nnz as f64 / (rows * cols) as f64,
                    dense_f32_bytes: 4 * dense_params,
                    ratio: (4 * dense_params) as f64 / csr_bytes.total as f64,
                    bits_per_kept_weight: bits_per(csr_bytes.total, nnz),
                    csr_bytes,
                }
            })
            .collect();
        let mut csr_bytes = CsrBytes::default();
        layers.iter().for_each(|l| csr_bytes.add(&l.csr_bytes));
        let sum = |f: fn(&LayerReport) -> usize| layers.iter().map(f).sum::<usize>();
        let (dense_params, kept_params) = (sum(|l| l.dense_params), sum(|l| l.kept_params));
        let kept_weights = sum(|l| l.kept_weights);
        let total = TotalReport {
            dense_params,
            kept_params,
            kept_weights,
            density: kept_weights as f64 / model.graph.dense_weights() as f64,
            params_kept_fraction: kept_params as f64 / dense_params as f64,
            dense_f32_bytes: 4 * dense_params,
            csr_bytes,
            header_bytes,
            csr_file_bytes,
            dense_file_bytes,
            file_ratio: dense_file_bytes as f64 / csr_file_bytes as f64,
            bits_per_kept_weight: bits_per(csr_file_bytes, kept_weights),
        };
        CompressionReport {
            output,
            graph: model.graph.to_string(),
            value_dtype: dtype.to_string(),
            layers,
            total,
            accuracy: None,
        }
    }
}

fn bits_per(bytes: usize, weights: usize) -> Option<f64> {
    (weights > 0).then(|| 8.0 * bytes as f64 / weights as f64)
}

fn bits(b: Option<f64>) -> String {
    b.map_or("-".to_string(), |b| format!("{b:.1}"))
}

impl fmt::Display for CompressionReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = &self.total;
        writeln!(f, "{} ({}, values {})", self.output.display(), self.graph, self.value_dtype)?;
        writeln!(
            f,
            "{:<7}{:<7}{:>12}{:>5}{:>10}{:>10}{:>9}{:>12}{:>11}{:>10}{:>9}{:>8}{:>7}{:>8}{:>8}{:>7}",
            "layer",
            "op",
            "shape",
            "idx",
            "params",
            "kept par",
            "density",
            "dense f32 B",
            "CSR B",
            "values",
            "indices",
            "indptr",
            "shape",
            "bias",
            "ratio",
            "bits/w"
        )?;
        for l in &self.layers {
            let b = &l.csr_bytes;
            writeln!(
                f,
                "{:<7}{:<7}{:>12}{:>5}{:>10}{:>10}{:>8.2}%{:>12}{:>11}{:>10}{:>9}{:>8}{:>7}{:>8}{:>7.1}x{:>7}",
                l.name,
                l.op,
                l.dims.iter().map(usize::to_string).collect::<Vec<_>>().join("x"),
                l.index_dtype,
                l.dense_params,
                l.kept_params,
                100.0 * l.density,
                l.dense_f32_bytes,
                b.total,
                b.values,
                b.indices,
                b.indptr,
                b.shape,
                b.bias,
                l.ratio,
                bits(l.bits_per_kept_weight),
            )?;
        }
        writeln!(f, "{:<7}{:>76}", "header", t.header_bytes)?;
        let b = &t.csr_bytes;
        writeln!(
            f,
            "{:<7}{:>24}{:>10}{:>10}{:>8.2}%{:>12}{:>11}{:>10}{:>9}{:>8}{:>7}{:>8}{:>7.1}x{:>7}",
            "total",
            "",
            t.dense_params,
            t.kept_params,
            100.0 * t.density,
            t.dense_f32_bytes,
            t.csr_file_bytes,
            b.values,
            b.indices,
            b.indptr,
            b.shape,
            b.bias,
            t.dense_f32_bytes as f64 / t.csr_file_bytes as f64,
            bits(t.bits_per_kept_weight),
        )?;
        writeln!(
            f,
            "parameters: {} kept of {} ({:.2}%; weights {:.2}%)",
            t.kept_params,
            t.dense_params,
            100.0 * t.params_kept_fraction,
            100.0 * t.density
        )?;
        writeln!(
            f,
            "file bytes: CSR {} vs dense f32 {} ({:.2}x smaller)",
            t.csr_file_bytes, t.dense_file_bytes, t.file_ratio
        )?;
        write!(f, "bits per kept weight: {} (whole file)", bits(t.bits_per_kept_weight))?;
        if let Some(a) = &self.accuracy {
            write!(
                f,
                "\naccuracy on {} test ({} examples): source f32 {:.2}%, exported {} {:.2}% ({:+.2} pp)",
                a.dataset,
                a.examples,
                100.0 * a.source,
                self.value_dtype,
                100.0 * a.exported,
                a.change_pp
            )?;
        }
        Ok(())
    }
}
