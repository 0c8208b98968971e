//! The compression report of an export, per layer and in total. Compression is stated three
//! ways, because each alone misleads: parameters kept / dense parameters, bytes of the CSR file
//! vs the dense f32 file (headers, indptr and indices included), and bits per kept weight.
//! Bits per kept weight are split into what the values take, what the column indices take,
//! and the rest (codebook or scales, indptr, shape, bias, and in the total the header), read
//! from the sizes of the tensors in the written file.
//! Printed as a table ([`std::fmt::Display`]) or as JSON (`serde`).

use crate::compressed::Codecs;
use crate::csr::CsrModel;
use serde::Serialize;
use std::fmt;
use std::path::PathBuf;
use ticket_core::csr_format::{self, IndexCodec};
use ticket_core::tensor_file::TensorFile;

/// Bytes of one layer's tensors in the CSR file.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CsrBytes {
    pub values: usize,
    pub indices: usize,
    /// The codebook (`kN`) or the per-row scales (`int8`); 0 for float values.
    pub tables: usize,
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
        self.tables += other.tables;
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
    /// How the values are stored: `f32`, `f16`, `bf16`, `int8` or `kN`.
    pub value_dtype: String,
    /// `u16` or `u32` (absolute column indices) or `gapN` (N-bit gaps).
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
    pub bits: BitsSplit,
}

/// Bits per kept weight by what they store (none when nothing is kept).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct BitsSplit {
    /// The values tensor.
    pub values: Option<f64>,
    /// The indices tensor.
    pub indices: Option<f64>,
    /// Codebook or scales, indptr, shape, bias (and the header, in the total).
    pub other: Option<f64>,
}

impl BitsSplit {
    fn new(b: &CsrBytes, header: usize, weights: usize) -> Self {
        BitsSplit {
            values: bits_per(b.values, weights),
            indices: bits_per(b.indices, weights),
            other: bits_per(b.tables + b.indptr + b.shape + b.bias + header, weights),
        }
    }
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
    pub bits: BitsSplit,
    /// Size of the same model as a CSR file with f32 values and absolute indices.
    pub csr_f32_file_bytes: usize,
    /// `csr_f32_file_bytes / csr_file_bytes`.
    pub ratio_vs_csr_f32: f64,
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
    /// `absolute` or `gapN`.
    pub index_codec: String,
    pub layers: Vec<LayerReport>,
    pub total: TotalReport,
    pub accuracy: Option<AccuracyReport>,
}

impl CompressionReport {
    /// The report of `model` written with `codecs` into `file` (parsed from the
    /// `csr_file_bytes` bytes written), against a dense f32 file of `dense_file_bytes` and an
    /// f32 CSR file of `csr_f32_file_bytes`.
    pub fn new(
        model: &CsrModel,
        codecs: Codecs,
        output: PathBuf,
        file: &TensorFile,
        csr_file_bytes: usize,
        dense_file_bytes: usize,
        csr_f32_file_bytes: usize,
    ) -> Self {
        let size = |name: String| file.view(&name).map_or(0, |v| v.data().len());
        let layers: Vec<LayerReport> = model
            .layers
            .iter()
            .zip(model.graph.weighted())
            .map(|(layer, weighted)| {
                let (rows, cols) = layer.matrix.shape();
                let nnz = layer.matrix.nnz();
                let name = &layer.name;
                let mut csr_bytes = CsrBytes {
                    values: size(csr_format::values_name(name)),
                    indices: size(csr_format::indices_name(name)),
                    tables: size(csr_format::scales_name(name))
                        + size(csr_format::codebook_name(name)),
                    indptr: size(csr_format::indptr_name(name)),
                    shape: size(csr_format::shape_name(name)),
                    bias: size(csr_format::bias_name(name)),
                    total: 0,
                };
                csr_bytes.total = csr_bytes.values
                    + csr_bytes.indices
                    + csr_bytes.tables
                    + csr_bytes.indptr
                    + csr_bytes.shape
                    + csr_bytes.bias;
                let index_dtype = match codecs.index.for_rank(weighted.dims.len()) {
                    IndexCodec::Absolute if csr_format::index_dtype(cols).bitsize() == 16 => {
                        "u16".to_string()
                    }
                    IndexCodec::Absolute => "u32".to_string(),
                    gaps => gaps.to_string(),
                };
                let dense_params = rows * cols + rows;
                LayerReport {
                    name: layer.name.clone(),
                    op: model.graph.layers()[weighted.index].op().to_string(),
                    dims: weighted.dims.clone(),
                    rows,
                    cols,
                    value_dtype: codecs.value.for_rank(weighted.dims.len()).to_string(),
                    index_dtype,
                    dense_params,
                    kept_params: nnz + rows,
                    kept_weights: nnz,
                    density: nnz as f64 / (rows * cols) as f64,
                    dense_f32_bytes: 4 * dense_params,
                    ratio: (4 * dense_params) as f64 / csr_bytes.total as f64,
                    bits_per_kept_weight: bits_per(csr_bytes.total, nnz),
                    bits: BitsSplit::new(&csr_bytes, 0, nnz),
                    csr_bytes,
                }
            })
            .collect();
        let mut csr_bytes = CsrBytes::default();
        layers.iter().for_each(|l| csr_bytes.add(&l.csr_bytes));
        let sum = |f: fn(&LayerReport) -> usize| layers.iter().map(f).sum::<usize>();
        let (dense_params, kept_params) = (sum(|l| l.dense_params), sum(|l| l.kept_params));
        let kept_weights = sum(|l| l.kept_weights);
        let header_bytes = csr_file_bytes - csr_bytes.total;
        let bits = BitsSplit::new(&csr_bytes, header_bytes, kept_weights);
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
            bits,
            csr_f32_file_bytes,
            ratio_vs_csr_f32: csr_f32_file_bytes as f64 / csr_file_bytes as f64,
        };
        CompressionReport {
            output,
            graph: model.graph.to_string(),
            value_dtype: codecs.value.to_string(),
            index_codec: codecs.index.to_string(),
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
        writeln!(
            f,
            "{} ({}, values {}, indices {})",
            self.output.display(),
            self.graph,
            self.value_dtype,
            self.index_codec
        )?;
        writeln!(
            f,
            "{:<7}{:<7}{:>12}{:>11}{:>10}{:>10}{:>9}{:>12}{:>11}{:>10}{:>9}{:>8}{:>8}{:>7}{:>8}{:>8}{:>7}",
            "layer",
            "op",
            "shape",
            "codec",
            "params",
            "kept par",
            "density",
            "dense f32 B",
            "CSR B",
            "values",
            "indices",
            "tables",
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
                "{:<7}{:<7}{:>12}{:>11}{:>10}{:>10}{:>8.2}%{:>12}{:>11}{:>10}{:>9}{:>8}{:>8}{:>7}{:>8}{:>7.1}x{:>7}",
                l.name,
                l.op,
                l.dims.iter().map(usize::to_string).collect::<Vec<_>>().join("x"),
                format!("{}/{}", l.value_dtype, l.index_dtype),
                l.dense_params,
                l.kept_params,
                100.0 * l.density,
                l.dense_f32_bytes,
                b.total,
                b.values,
                b.indices,
                b.tables,
                b.indptr,
                b.shape,
                b.bias,
                l.ratio,
                bits(l.bits_per_kept_weight),
            )?;
        }
        writeln!(f, "{:<7}{:>82}", "header", t.header_bytes)?;
        let b = &t.csr_bytes;
        writeln!(
            f,
            "{:<7}{:>30}{:>10}{:>10}{:>8.2}%{:>12}{:>11}{:>10}{:>9}{:>8}{:>8}{:>7}{:>8}{:>7.1}x{:>7}",
            "total",
            "",
            t.dense_params,
            t.kept_params,
            100.0 * t.density,
            t.dense_f32_bytes,
            t.csr_file_bytes,
            b.values,
            b.indices,
            b.tables,
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
        writeln!(
            f,
            "file bytes: vs the f32 CSR file {} ({:.2}x smaller)",
            t.csr_f32_file_bytes, t.ratio_vs_csr_f32
        )?;
        write!(
            f,
            "bits per kept weight: {} (whole file) = values {} + indices {} + codebook/scales/indptr/shape/bias/header {}",
            bits(t.bits_per_kept_weight),
            bits(t.bits.values),
            bits(t.bits.indices),
            bits(t.bits.other)
        )?;
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
