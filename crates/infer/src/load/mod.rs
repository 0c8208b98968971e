//! Reading a CSR model file (`format = ticket-csr`, see `ticket_core::csr_format`): the file
//! is memory-mapped (or handed over as bytes) and everything is validated before the kernels
//! may touch it - format and version, the graph, each weighted layer's full shape (`[out, in]`
//! or `[out, in, kh, kw]`, as the graph makes it) and how layers chain,
//! dtypes, the CSR structure, and that every value is finite. Arrays whose bytes are aligned
//! for their type are borrowed from the mapping; the rest is copied, and `f16` / `bf16` values
//! are decoded to `f32` once, here, with half's bulk conversion. Layers with compressed codecs
//! (int8, codebook values, gap indices: format 2.1) stay packed as the file holds them
//! (`compressed`).
//!
//! A bad file is an [`Error`] naming the file and the problem, never a panic.

use crate::csr::{check_structure, ColIndex};
use crate::model::{Indices, SparseLayer, SparseModel};
use crate::slab::{Backing, Slab};
use crate::{Error, Result};
use half::slice::HalfFloatSliceExt;
use half::{bf16, f16};
use memmap2::Mmap;
use rayon::prelude::*;
use safetensors::Dtype;
use std::path::Path;
use std::sync::Arc;
use ticket_core::checkpoint::{check_format, read_graph};
use ticket_core::csr_format::{
    self, meta, IndexCodec, IndexCodecs, ValueCodec, ValueCodecs, ValueDtype,
};
use ticket_core::tensor_file::TensorFile;
use ticket_core::Weighted;

impl SparseModel {
    /// Maps, validates and loads the CSR model at `path`.
    ///
    /// The file must not be changed in place while the model is alive (arrays may be
    /// borrowed from the mapping); ticket writes files by rename, which leaves a mapping of
    /// the old file intact.
    pub fn load(path: &Path) -> Result<SparseModel> {
        let file = std::fs::File::open(path).map_err(|e| ticket_core::Error::io(path, e))?;
        let len = file.metadata().map_err(|e| ticket_core::Error::io(path, e))?.len();
        if len == 0 {
            return Err(Error::invalid(path, "the file is empty, not a CSR model"));
        }
        // SAFETY: mapping a file is sound as long as nobody modifies it in place while it is
        // mapped (see above); every byte read from the mapping is validated below.
        let map = unsafe { Mmap::map(&file) }.map_err(|e| ticket_core::Error::io(path, e))?;
        Self::from_backing(Arc::new(Backing::Mapped(map)), path)
    }

    /// Validates and loads a CSR model from the bytes of a file already in memory (arrays may
    /// borrow from the buffer, which the model then keeps); `path` only names it in errors.
    pub fn from_bytes(bytes: Vec<u8>, path: &Path) -> Result<SparseModel> {
        Self::from_backing(Arc::new(Backing::Read(bytes)), path)
    }

    fn from_backing(map: Arc<Backing>, path: &Path) -> Result<SparseModel> {
        let tensors = TensorFile::parse(&map, path)?;
        Loader { tensors: &tensors, map: &map }.model()
    }
}

struct Loader<'a, 'b> {
    tensors: &'b TensorFile<'a>,
    map: &'b Arc<Backing>,
}

impl Loader<'_, '_> {
    fn error(&self, problem: impl Into<String>) -> Error {
        Error::invalid(self.tensors.path(), problem)
    }

    fn model(&self) -> Result<SparseModel> {
        let file = self.tensors;
        let version = check_format(file, csr_format::FORMAT, &csr_format::READ_VERSIONS)?;
        let graph = read_graph(file, version)?;
        let value: ValueCodecs = file
            .meta(meta::VALUE_DTYPE)?
            .parse()
            .map_err(|e: String| self.error(format!("metadata `value_dtype`: {e}")))?;
        let index =
            IndexCodecs::from_meta(file.metadata().get(meta::INDEX_BITS).map(String::as_str))
                .map_err(|e| self.error(e))?;
        let value_dtype = match value.single().unwrap_or_default() {
            ValueCodec::Float(dtype) => dtype,
            _ => ValueDtype::F32,
        };
        let names: Vec<&str> = file.meta(meta::LAYERS)?.split(',').map(str::trim).collect();
        if names.len() != graph.num_weighted() {
            return Err(self.error(format!(
                "metadata lists {} layers ({}) but graph {graph} has {}",
                names.len(),
                names.join(","),
                graph.num_weighted()
            )));
        }
        // Layers are validated on the thread pool at once (AlexNet's fc6 alone is half the
        // work); the first bad layer in file order is the one reported.
        let weighted = graph.weighted();
        let layers: Vec<Result<SparseLayer>> = names
            .par_iter()
            .zip(weighted.par_iter())
            .map(|(name, expected)| {
                if *name != expected.name {
                    return Err(self.error(format!(
                        "metadata `layers` names `{name}` where the graph has `{}`",
                        expected.name
                    )));
                }
                let dims = self.dims(name, expected.dims.len())?;
                if dims != expected.dims {
                    return Err(self.error(format!(
                        "layer {name} has weight shape {dims:?} but graph {graph} makes it {:?}",
                        expected.dims
                    )));
                }
                match (value.for_rank(dims.len()), index.for_rank(dims.len())) {
                    (ValueCodec::Float(dtype), IndexCodec::Absolute) => self.layer(expected, dtype),
                    (value, index) => self.compressed_layer(expected, value, index),
                }
            })
            .collect();
        let layers = layers.into_iter().collect::<Result<Vec<SparseLayer>>>()?;
        let borrows = layers.iter().any(|l| l.mapped_bytes() > 0);
        let mapped = if borrows { self.map.len() } else { 0 };
        let dataset = file.metadata().get(meta::DATASET).cloned();
        let mut model = SparseModel::new(graph, layers, value_dtype, mapped, dataset);
        model.codecs = (value, index);
        Ok(model)
    }

    /// The full weight shape from the layer's I64 shape tensor of `rank` entries.
    fn dims(&self, name: &str, rank: usize) -> Result<Vec<usize>> {
        let tensor = csr_format::shape_name(name);
        let bytes = self.tensors.bytes(&tensor, Dtype::I64, Some(&[rank]))?;
        let dims: Vec<i64> =
            bytes.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap())).collect();
        dims.iter()
            .map(|&d| usize::try_from(d).ok().filter(|&d| d > 0))
            .collect::<Option<Vec<usize>>>()
            .ok_or_else(|| self.error(format!("tensor `{tensor}` holds {dims:?}, not a shape")))
    }

    fn layer(&self, weighted: &Weighted, value_dtype: ValueDtype) -> Result<SparseLayer> {
        let (name, shape) = (weighted.name.as_str(), weighted.shape);
        let file = self.tensors;
        let indptr_bytes =
            file.bytes(&csr_format::indptr_name(name), Dtype::U32, Some(&[shape.rows + 1]))?;
        let indptr: Slab<u32> = Slab::from_file(self.map, indptr_bytes);
        let indices_name = csr_format::indices_name(name);
        let view = file.view(&indices_name)?;
        if view.shape().len() != 1 {
            return Err(self.error(format!(
                "tensor `{indices_name}` has shape {:?}, expected one dimension [nnz]",
                view.shape()
            )));
        }
        let indices = match view.dtype() {
            Dtype::U16 => Indices::U16(self.structure(weighted, &indptr, view.data())?),
            Dtype::U32 => Indices::U32(self.structure(weighted, &indptr, view.data())?),
            other => {
                return Err(self.error(format!(
                    "tensor `{indices_name}` has dtype {other:?}; column indices are U16 or U32"
                )))
            }
        };
        let nnz = shape_nnz(&indptr);
        let values = self.values(name, nnz, value_dtype)?;
        let bias_bytes =
            file.bytes(&csr_format::bias_name(name), Dtype::F32, Some(&[shape.rows]))?;
        let bias: Slab<f32> = Slab::from_file(self.map, bias_bytes);
        if let Some(r) = bias.iter().position(|v| !v.is_finite()) {
            return Err(self.error(format!("layer {name}: bias of row {r} is {}", bias[r])));
        }
        Ok(SparseLayer::new(name.to_string(), shape, indptr, indices, values, bias))
    }

    /// The column indices, after checking them with `indptr` as a CSR structure. Problems of
    /// a conv2d layer say how its columns are counted.
    fn structure<I: ColIndex + crate::slab::Element>(
        &self,
        weighted: &Weighted,
        indptr: &[u32],
        bytes: &[u8],
    ) -> Result<Slab<I>> {
        let (name, shape) = (&weighted.name, weighted.shape);
        let indices: Slab<I> = Slab::from_file(self.map, bytes);
        check_structure(shape.rows, shape.cols, indptr, &indices).map_err(|problem| {
            let columns = match weighted.dims[..] {
                [_, c, kh, kw] => format!(" (columns in*kh*kw = {c}*{kh}*{kw})"),
                _ => String::new(),
            };
            self.error(format!("layer {name}: {problem}{columns}"))
        })?;
        Ok(indices)
    }

    /// The nonzero values as `f32`, decoded from the stored dtype, all finite.
    fn values(&self, name: &str, nnz: usize, value_dtype: ValueDtype) -> Result<Slab<f32>> {
        let tensor = csr_format::values_name(name);
        let view = self.tensors.view(&tensor)?;
        let stored = match view.dtype() {
            Dtype::F32 => ValueDtype::F32,
            Dtype::F16 => ValueDtype::F16,
            Dtype::BF16 => ValueDtype::Bf16,
            other => {
                return Err(self.error(format!(
                    "tensor `{tensor}` has dtype {other:?}; values are F32, F16 or BF16"
                )))
            }
        };
        if stored != value_dtype {
            return Err(self.error(format!(
                "tensor `{tensor}` is {stored} but metadata `value_dtype` says {value_dtype}"
            )));
        }
        if view.shape() != [nnz] {
            return Err(self.error(format!(
                "tensor `{tensor}` has shape {:?}, expected [{nnz}] (one value per column index)",
                view.shape()
            )));
        }
        let values: Slab<f32> = match stored {
            ValueDtype::F32 => Slab::from_file(self.map, view.data()),
            ValueDtype::F16 => decode::<f16>(&Slab::from_file(self.map, view.data())),
            ValueDtype::Bf16 => decode::<bf16>(&Slab::from_file(self.map, view.data())),
        };
        if let Some(k) = values.iter().position(|v| !v.is_finite()) {
            return Err(self.error(format!(
                "layer {name}: value {k} is {} (weights must be finite)",
                values[k]
            )));
        }
        Ok(values)
    }
}

/// The number of nonzeros a validated `indptr` announces.
fn shape_nnz(indptr: &[u32]) -> usize {
    indptr.last().map_or(0, |&n| n as usize)
}

/// 16-bit floats (given by their bits) to `f32`, with half's bulk (F16C where available)
/// conversion.
fn decode<H: bytemuck::Pod>(bits: &[u16]) -> Slab<f32>
where
    [H]: HalfFloatSliceExt,
{
    let halves: &[H] = bytemuck::cast_slice(bits);
    let mut out = vec![0.0f32; bits.len()];
    halves.convert_to_f32_slice(&mut out);
    Slab::Owned(out)
}

mod compressed;
#[cfg(test)]
mod tests;
