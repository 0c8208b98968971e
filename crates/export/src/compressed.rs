//! The tensors of one layer under each value codec (f32/f16/bf16, int8, k-means codebook) and
//! index codec (absolute U16/U32, N-bit gaps), written and read back. What the codecs are and
//! their bit layout is docs/FORMAT.md ("Compressed layers") and `ticket_core::packed`.

use crate::codec::{decode_indices, decode_values, encode_indices, encode_values};
use crate::csr::CsrMatrix;
use crate::quantize::{int8_row, kmeans};
use crate::{Error, Result};
use safetensors::Dtype;
use std::fmt;
use std::str::FromStr;
use ticket_core::csr_format::{self, IndexCodec, IndexCodecs, ValueCodec, ValueCodecs, GAP_BITS};
use ticket_core::packed::{self, check_codes, encode_gaps, gap_fields, pack, GapRows};
use ticket_core::tensor_file::{OwnedTensor, TensorFile};
use ticket_core::Network;

/// How a file stores values and column indices.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Codecs {
    /// Per layer kind (`conv=k8,linear=k5`) or one for all.
    pub value: ValueCodecs,
    /// Per layer kind (`conv=4,linear=5`) or one for all.
    pub index: IndexCodecs,
}

impl Codecs {
    /// Float values of `dtype` and absolute indices: what format 2.0 readers know.
    pub fn float(dtype: csr_format::ValueDtype) -> Self {
        Codecs { value: ValueCodec::Float(dtype).into(), index: IndexCodecs::default() }
    }

    /// Whether the file needs format version 2.1.
    pub fn is_compressed(&self) -> bool {
        // A per-kind value_dtype is new in 2.1 even when both codecs are floats.
        !self.value.single().is_some_and(ValueCodec::is_float) || !self.index.is_absolute()
    }
}

impl fmt::Display for Codecs {
    /// `k6+gap5`, `f32`, `conv=k8,linear=k5+conv=gap4,linear=gap5` (absolute indices are
    /// the default and not named).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.index.is_absolute() {
            true => write!(f, "{}", self.value),
            false => write!(f, "{}+{}", self.value, self.index),
        }
    }
}

/// What `--index-bits` asks for: these index codecs, or `auto`, per layer kind the gap width
/// (3..8) that gives the fewest index bytes ([`smallest_index_codecs`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IndexRequest {
    Codecs(IndexCodecs),
    Smallest,
}

impl IndexRequest {
    /// The codecs to write `net` with.
    pub fn resolve(self, net: &Network) -> IndexCodecs {
        match self {
            IndexRequest::Codecs(codecs) => codecs,
            IndexRequest::Smallest => smallest_index_codecs(net),
        }
    }
}

impl FromStr for IndexRequest {
    type Err = String;

    /// `auto`, `N` (3..8) or `conv=N,linear=M`.
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "auto" => Ok(IndexRequest::Smallest),
            text if text.contains('=') => s.parse().map(IndexRequest::Codecs),
            _ => s.parse().map(IndexRequest::Codecs).map_err(|e| format!("{e} (or auto)")),
        }
    }
}

/// Per layer kind, the gap width of 3..8 bits whose streams take the fewest bytes for the
/// kept weights (masks) of `net`, computed exactly from a histogram of each layer's gaps
/// (fillers included; the narrowest width wins a tie). A kind without layers takes the other
/// kind's width, so that an MLP's file names one width (`index_bits = 4`).
pub fn smallest_index_codecs(net: &Network) -> IndexCodecs {
    let mut bytes = [[0usize; 9]; 2];
    let mut present = [false; 2];
    for (layer, weighted) in net.layers.iter().zip(net.graph.weighted()) {
        let kind = usize::from(weighted.dims.len() == 4);
        present[kind] = true;
        let cols = layer.shape.cols;
        let mut counts = vec![0usize; cols];
        for row in layer.mask.chunks_exact(cols) {
            let mut next = 0;
            for (col, _) in row.iter().enumerate().filter(|(_, &m)| m != 0) {
                counts[col - next] += 1;
                next = col + 1;
            }
        }
        for bits in GAP_BITS {
            bytes[kind][bits as usize] += packed::packed_len(gap_fields(&counts, bits), bits);
        }
    }
    let best = |kind: usize| {
        let kind = if present[kind] { kind } else { 1 - kind };
        let bits = GAP_BITS.min_by_key(|&b| bytes[kind][b as usize]).expect("widths");
        IndexCodec::Gaps { bits }
    };
    IndexCodecs { linear: best(0), conv: best(1) }
}

/// The values tensor of `layer` in `codec`, and its scales or codebook.
pub(crate) fn value_tensors(
    layer: &str,
    matrix: &CsrMatrix,
    codec: ValueCodec,
) -> Result<Vec<(String, OwnedTensor)>> {
    let values = matrix.data();
    let nnz = values.len();
    let name = csr_format::values_name(layer);
    Ok(match codec {
        ValueCodec::Float(dtype) => {
            let bytes = encode_values(values, dtype);
            if let Some(k) = decode_values(&bytes, dtype).iter().position(|v| !v.is_finite()) {
                return Err(not_finite(
                    layer,
                    matrix,
                    k,
                    format!(", which does not fit in {dtype}"),
                ));
            }
            vec![(name, OwnedTensor::from_le(dtype.dtype(), vec![nnz], bytes))]
        }
        ValueCodec::Int8 => {
            let mut scales = Vec::with_capacity(matrix.rows());
            let mut q = Vec::with_capacity(nnz);
            for row in matrix.indptr().to_proper().windows(2) {
                let (scale, row_q) = int8_row(&values[row[0] as usize..row[1] as usize]);
                scales.push(scale);
                q.extend(row_q.iter().map(|&v| v as u8));
            }
            vec![
                (name, OwnedTensor::from_le(Dtype::I8, vec![nnz], q)),
                (csr_format::scales_name(layer), OwnedTensor::f32(vec![scales.len()], &scales)),
            ]
        }
        ValueCodec::Codebook { bits } => {
            let book = kmeans(values, bits);
            let bytes = pack(&book.codes, bits);
            vec![
                (name, OwnedTensor::u8(vec![bytes.len()], &bytes)),
                (
                    csr_format::codebook_name(layer),
                    OwnedTensor::f32(vec![book.centroids.len()], &book.centroids),
                ),
            ]
        }
    })
}

/// The indices tensor of `layer` in `codec`.
pub(crate) fn index_tensor(
    layer: &str,
    matrix: &CsrMatrix,
    codec: IndexCodec,
) -> (String, OwnedTensor) {
    let name = csr_format::indices_name(layer);
    match codec {
        IndexCodec::Absolute => {
            let dtype = csr_format::index_dtype(matrix.cols());
            let bytes = encode_indices(matrix.indices(), dtype);
            (name, OwnedTensor::from_le(dtype, vec![matrix.nnz()], bytes))
        }
        IndexCodec::Gaps { bits } => {
            let indptr = matrix.indptr().to_proper().into_owned();
            let bytes = pack(&encode_gaps(&indptr, matrix.indices(), bits), bits);
            (name, OwnedTensor::u8(vec![bytes.len()], &bytes))
        }
    }
}

/// The kept weight `k` of `layer`, NaN or infinite, as an error naming its position.
pub(crate) fn not_finite(layer: &str, matrix: &CsrMatrix, k: usize, why: String) -> Error {
    let indptr = matrix.indptr().to_proper().into_owned();
    // The row holding nonzero k: the last one starting at or before k.
    let row = indptr.partition_point(|&start| start as usize <= k) - 1;
    let col = matrix.indices()[k];
    Error::NotFinite {
        layer: layer.to_string(),
        what: format!("weight [{row}, {col}] (index {})", row * matrix.cols() + col as usize),
        value: matrix.data()[k],
        why,
    }
}

/// The `nnz` values of `layer` decoded to f32 (all finite), after checking the tensors of
/// `codec`: dtype, length, scales and codebook finite, codebook indices in range.
pub(crate) fn read_values(
    file: &TensorFile,
    layer: &str,
    indptr: &[u32],
    codec: ValueCodec,
) -> Result<Vec<f32>> {
    let nnz = *indptr.last().expect("indptr has rows + 1 entries") as usize;
    let rows = indptr.len() - 1;
    let name = csr_format::values_name(layer);
    let values = match codec {
        ValueCodec::Float(dtype) => {
            decode_values(file.bytes(&name, dtype.dtype(), Some(&[nnz]))?, dtype)
        }
        ValueCodec::Int8 => {
            let q = file.bytes(&name, Dtype::I8, Some(&[nnz]))?;
            let scales =
                finite(file, layer, "scale", file.f32(&csr_format::scales_name(layer), &[rows])?)?;
            let mut out = Vec::with_capacity(nnz);
            for (r, row) in indptr.windows(2).enumerate() {
                let q = &q[row[0] as usize..row[1] as usize];
                out.extend(q.iter().map(|&q| scales[r] * q as i8 as f32));
            }
            out
        }
        ValueCodec::Codebook { bits } => {
            let book_name = csr_format::codebook_name(layer);
            let entries = codebook_len(file, layer, bits)?;
            let book = finite(file, layer, "codebook entry", file.f32(&book_name, &[entries])?)?;
            let view = file.view(&name)?;
            let want = packed::packed_len(nnz, bits);
            let bytes = file.bytes(&name, Dtype::U8, Some(&[want])).map_err(|_| {
                file.error(format!(
                    "layer {layer}: tensor `{name}` is {:?} {:?}, expected U8 [{want}] ({nnz} codebook indices of {bits} bits)",
                    view.dtype(),
                    view.shape()
                ))
            })?;
            check_codes(bytes, nnz, bits, entries)
                .map_err(|e| file.error(format!("layer {layer}: {e}")))?;
            (0..nnz).map(|k| book[packed::field(bytes, k, bits) as usize]).collect()
        }
    };
    if let Some(k) = values.iter().position(|v| !v.is_finite()) {
        return Err(file
            .error(format!("layer {layer}: value {k} is {} (weights must be finite)", values[k]))
            .into());
    }
    Ok(values)
}

/// The number of entries of a `bits`-bit codebook, which must be 1 to `2^bits`.
pub(crate) fn codebook_len(file: &TensorFile, layer: &str, bits: u32) -> Result<usize> {
    let name = csr_format::codebook_name(layer);
    let shape = file.view(&name)?.shape().to_vec();
    match shape[..] {
        [k] if (1..=1 << bits).contains(&k) => Ok(k),
        _ => Err(file
            .error(format!(
                "layer {layer}: tensor `{name}` has shape {shape:?}, expected [K] with 1 <= K <= {}",
                1 << bits
            ))
            .into()),
    }
}

fn finite(file: &TensorFile, layer: &str, what: &str, v: Vec<f32>) -> Result<Vec<f32>> {
    match v.iter().position(|x| !x.is_finite()) {
        Some(i) => Err(file
            .error(format!("layer {layer}: {what} {i} is {} (must be finite)", v[i]))
            .into()),
        None => Ok(v),
    }
}

/// The column indices of `layer` (rows of `indptr`, `cols` columns) as u32, after checking a
/// gap stream's structure; absolute indices are checked by the caller's CSR validation.
pub(crate) fn read_indices(
    file: &TensorFile,
    layer: &str,
    cols: usize,
    indptr: &[u32],
    codec: IndexCodec,
) -> Result<Vec<u32>> {
    let nnz = *indptr.last().expect("indptr has rows + 1 entries") as usize;
    let name = csr_format::indices_name(layer);
    match codec {
        IndexCodec::Absolute => {
            let dtype = csr_format::index_dtype(cols);
            Ok(decode_indices(file.bytes(&name, dtype, Some(&[nnz]))?, dtype))
        }
        IndexCodec::Gaps { bits } => {
            let view = file.view(&name)?;
            if view.dtype() != Dtype::U8 || view.shape().len() != 1 {
                return Err(file
                    .error(format!(
                        "layer {layer}: tensor `{name}` is {:?} {:?}, expected U8 [bytes] (metadata index_bits = {bits})",
                        view.dtype(),
                        view.shape()
                    ))
                    .into());
            }
            let bytes = view.data();
            let rows = indptr.len() - 1;
            let gaps = GapRows::check(rows, cols, indptr, bytes, bits)
                .map_err(|e| file.error(format!("layer {layer}: {e}")))?;
            Ok((0..rows).flat_map(|r| gaps.columns(bytes, r)).collect())
        }
    }
}

/// Checks that `indptr` starts at 0 and never decreases, so its spans can be used.
pub(crate) fn check_indptr(file: &TensorFile, layer: &str, indptr: &[u32]) -> Result<()> {
    packed::check_indptr(indptr)
        .map_err(|e| file.error(format!("layer {layer}: not a valid CSR matrix: {e}")).into())
}
