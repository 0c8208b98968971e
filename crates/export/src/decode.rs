//! Reads a `ticket-csr` file back into a dense [`Network`]: the check that an export round-trips
//! and the way to measure the accuracy of exactly what was written. (The sparse inference
//! loader lives in ticket-infer; this one validates every tensor and then densifies.)

use crate::codec::decode_indices;
use crate::compressed::{check_indptr, read_indices, read_values, Codecs};
use crate::csr::{CsrLayer, CsrModel};
use crate::Result;
use sprs::CsMatI;
use std::collections::BTreeMap;
use std::path::Path;
use ticket_core::checkpoint::{check_format, read_graph};
use ticket_core::csr_format::{self, meta, IndexCodecs, ValueCodec, ValueCodecs, ValueDtype};
use ticket_core::tensor_file::TensorFile;
use ticket_core::{Error, Network, Weighted};

/// A CSR file as read from disk.
#[derive(Clone, Debug, PartialEq)]
pub struct CsrFile {
    pub model: CsrModel,
    /// The float dtype of the values (f32 for int8 and codebook values, which decode to f32).
    pub value_dtype: ValueDtype,
    /// How values and indices are stored.
    pub codecs: Codecs,
    pub metadata: BTreeMap<String, String>,
}

/// Reads and validates a CSR file: format and major version, architecture and layer list,
/// every tensor's dtype and shape, and the CSR structure (indptr from 0 to nnz and
/// non-decreasing, column indices strictly increasing within each row and in range).
pub fn read_csr(path: &Path) -> Result<CsrFile> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    read_csr_bytes(&bytes, path)
}

/// [`read_csr`] of a file's bytes already in memory (`path` names it in errors).
pub fn read_csr_bytes(bytes: &[u8], path: &Path) -> Result<CsrFile> {
    let file = TensorFile::parse(bytes, path)?;
    let version = check_format(&file, csr_format::FORMAT, &csr_format::READ_VERSIONS)?;
    let graph = read_graph(&file, version)?;
    let names = graph.layer_names();
    let listed = file.meta(meta::LAYERS)?;
    if listed != names.join(",") {
        return Err(file
            .error(format!("metadata `layers` = `{listed}` does not match graph {graph}"))
            .into());
    }
    let codecs = read_codecs(&file)?;
    let layers =
        graph.weighted().iter().map(|w| read_layer(&file, w, codecs)).collect::<Result<_>>()?;
    let metadata = file.metadata().iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    let value_dtype = match codecs.value.single().unwrap_or_default() {
        ValueCodec::Float(dtype) => dtype,
        _ => ValueDtype::F32,
    };
    Ok(CsrFile { model: CsrModel { graph, layers }, value_dtype, codecs, metadata })
}

/// Reads a CSR file and densifies it: pruned weights 0.0 with mask 0, stored ones mask 1.
pub fn read_csr_as_dense(path: &Path) -> Result<Network> {
    Ok(read_csr(path)?.model.to_dense())
}

impl CsrModel {
    /// The dense equivalent: stored entries become kept weights, the rest pruned zeros.
    pub fn to_dense(&self) -> Network {
        let mut net = Network::zeros(&self.graph);
        for (dense, layer) in net.layers.iter_mut().zip(&self.layers) {
            let cols = dense.shape.cols;
            dense.mask.fill(0);
            for (&value, (row, col)) in layer.matrix.iter() {
                dense.weight[row as usize * cols + col as usize] = value;
                dense.mask[row as usize * cols + col as usize] = 1;
            }
            dense.bias.clone_from(&layer.bias);
        }
        net
    }
}

/// The codecs named by metadata `value_dtype` and `index_bits`.
pub(crate) fn read_codecs(file: &TensorFile) -> Result<Codecs> {
    let value: ValueCodecs = file
        .meta(meta::VALUE_DTYPE)?
        .parse()
        .map_err(|e: String| file.error(format!("metadata `{}`: {e}", meta::VALUE_DTYPE)))?;
    let index = IndexCodecs::from_meta(file.metadata().get(meta::INDEX_BITS).map(String::as_str))
        .map_err(|e| file.error(e))?;
    Ok(Codecs { value, index })
}

fn read_layer(file: &TensorFile, weighted: &Weighted, codecs: Codecs) -> Result<CsrLayer> {
    let name = weighted.name.clone();
    let (rows, cols) = (weighted.shape.rows, weighted.shape.cols);
    let dims = &weighted.dims;
    let shape_bytes =
        file.bytes(&csr_format::shape_name(&name), safetensors::Dtype::I64, Some(&[dims.len()]))?;
    let shape: Vec<i64> = shape_bytes
        .chunks_exact(8)
        .map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes")))
        .collect();
    if shape.iter().zip(dims).any(|(&s, &d)| s != d as i64) {
        return Err(file
            .error(format!("layer {name}: shape {shape:?} does not match the graph's {dims:?}"))
            .into());
    }
    let indptr = decode_indices(
        file.bytes(&csr_format::indptr_name(&name), safetensors::Dtype::U32, Some(&[rows + 1]))?,
        safetensors::Dtype::U32,
    );
    let value_codec = codecs.value.for_rank(dims.len());
    if !matches!(value_codec, ValueCodec::Codebook { .. }) {
        // One stored value per kept weight: the values tensor says how many there are.
        let nnz = file.view(&csr_format::values_name(&name))?.shape().iter().product::<usize>();
        if indptr[0] != 0 || indptr[rows] as usize != nnz {
            return Err(file
                .error(format!(
                    "layer {name}: indptr runs from {} to {}, expected 0 to {nnz} (the number of values)",
                    indptr[0], indptr[rows]
                ))
                .into());
        }
    }
    check_indptr(file, &name, &indptr)?;
    let indices = read_indices(file, &name, cols, &indptr, codecs.index.for_rank(dims.len()))?;
    let values = read_values(file, &name, &indptr, value_codec)?;
    let bias = file.f32(&csr_format::bias_name(&name), &[rows])?;
    let matrix = CsMatI::try_new((rows, cols), indptr, indices, values)
        .map_err(|(.., e)| file.error(format!("layer {name}: not a valid CSR matrix: {e}")))?;
    Ok(CsrLayer { name, matrix, bias })
}
