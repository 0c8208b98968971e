//! Loading a layer stored with a compressed codec (format 2.1: int8 or codebook values, gap
//! indices; docs/FORMAT.md "Compressed layers"): the arrays stay the file's bytes (borrowed
//! from the mapping when aligned), and everything the kernels rely on is checked here once -
//! indptr, every gap row decoding to columns below `cols`, every codebook index below the
//! codebook's length, scales and centroids finite. Only the codebook (padded to 256 entries)
//! and the gap rows' start offsets are built in memory.

use super::Loader;
use crate::kernels::compressed::{ColumnStore, CompressedWeights, ValueStore};
use crate::model::SparseLayer;
use crate::slab::Slab;
use crate::Result;
use safetensors::Dtype;
use ticket_core::csr_format::{self, IndexCodec, ValueCodec};
use ticket_core::packed::{check_codes, check_indptr, packed_len, GapRows};
use ticket_core::Weighted;

impl Loader<'_, '_> {
    /// A layer whose values or indices use a compressed codec.
    pub(super) fn compressed_layer(
        &self,
        weighted: &Weighted,
        value: ValueCodec,
        index: IndexCodec,
    ) -> Result<SparseLayer> {
        let (name, shape) = (weighted.name.as_str(), weighted.shape);
        let file = self.tensors;
        let indptr_bytes =
            file.bytes(&csr_format::indptr_name(name), Dtype::U32, Some(&[shape.rows + 1]))?;
        let indptr: Slab<u32> = Slab::from_file(self.map, indptr_bytes);
        check_indptr(&indptr).map_err(|p| self.error(format!("layer {name}: {p}")))?;
        let nnz = *indptr.last().expect("rows + 1 entries") as usize;
        let columns = self.columns(weighted, &indptr, index)?;
        let values = self.compressed_values(name, &indptr, nnz, value)?;
        let bias_bytes =
            file.bytes(&csr_format::bias_name(name), Dtype::F32, Some(&[shape.rows]))?;
        let bias: Slab<f32> = Slab::from_file(self.map, bias_bytes);
        if let Some(r) = bias.iter().position(|v| !v.is_finite()) {
            return Err(self.error(format!("layer {name}: bias of row {r} is {}", bias[r])));
        }
        let weights = CompressedWeights { rows: shape.rows, cols: shape.cols, values, columns };
        Ok(SparseLayer::compressed(name.to_string(), shape, indptr, weights, bias))
    }

    fn columns(
        &self,
        weighted: &Weighted,
        indptr: &[u32],
        index: IndexCodec,
    ) -> Result<ColumnStore> {
        let (name, shape) = (weighted.name.as_str(), weighted.shape);
        let tensor = csr_format::indices_name(name);
        let view = self.tensors.view(&tensor)?;
        if view.shape().len() != 1 {
            return Err(self.error(format!(
                "tensor `{tensor}` has shape {:?}, expected one dimension",
                view.shape()
            )));
        }
        match (index, view.dtype()) {
            (IndexCodec::Gaps { bits }, Dtype::U8) => {
                let stream: Slab<u8> = Slab::from_file(self.map, view.data());
                let gaps = GapRows::check(shape.rows, shape.cols, indptr, &stream, bits)
                    .map_err(|p| self.error(format!("layer {name}: {p}")))?;
                Ok(ColumnStore::gaps(bits, stream, gaps.starts))
            }
            (IndexCodec::Absolute, Dtype::U16) => {
                Ok(ColumnStore::U16(self.structure(weighted, indptr, view.data())?))
            }
            (IndexCodec::Absolute, Dtype::U32) => {
                Ok(ColumnStore::U32(self.structure(weighted, indptr, view.data())?))
            }
            (index, other) => Err(self.error(format!(
                "tensor `{tensor}` has dtype {other:?}, but the indices are {} (U8 gaps when \
                 metadata `index_bits` is set, else U16 or U32)",
                match index {
                    IndexCodec::Absolute => "absolute".to_string(),
                    IndexCodec::Gaps { bits } => format!("{bits}-bit gaps"),
                }
            ))),
        }
    }

    fn compressed_values(
        &self,
        name: &str,
        indptr: &[u32],
        nnz: usize,
        value: ValueCodec,
    ) -> Result<ValueStore> {
        let file = self.tensors;
        let tensor = csr_format::values_name(name);
        let rows = indptr.len() - 1;
        Ok(match value {
            ValueCodec::Float(dtype) => ValueStore::F32(self.values(name, nnz, dtype)?),
            ValueCodec::Int8 => {
                let q: Slab<i8> =
                    Slab::from_file(self.map, file.bytes(&tensor, Dtype::I8, Some(&[nnz]))?);
                let scales_name = csr_format::scales_name(name);
                let scales: Slab<f32> =
                    Slab::from_file(self.map, file.bytes(&scales_name, Dtype::F32, Some(&[rows]))?);
                if let Some(r) = scales.iter().position(|s| !s.is_finite()) {
                    return Err(self.error(format!(
                        "layer {name}: scale of row {r} is {} (scales must be finite)",
                        scales[r]
                    )));
                }
                ValueStore::Int8 { q, scales }
            }
            ValueCodec::Codebook { bits } => {
                let book_name = csr_format::codebook_name(name);
                let view = file.view(&book_name)?;
                let entries = match view.shape() {
                    &[k] if view.dtype() == Dtype::F32 && (1..=1 << bits).contains(&k) => k,
                    shape => {
                        return Err(self.error(format!(
                            "tensor `{book_name}` is {:?} {shape:?}, expected F32 [K] with 1 <= K <= {}",
                            view.dtype(),
                            1 << bits
                        )))
                    }
                };
                let mut table = Box::new([0.0f32; 256]);
                for (t, c) in table.iter_mut().zip(view.data().chunks_exact(4)) {
                    *t = f32::from_le_bytes(c.try_into().expect("4 bytes"));
                }
                if let Some(k) = table[..entries].iter().position(|c| !c.is_finite()) {
                    return Err(self.error(format!(
                        "layer {name}: codebook entry {k} is {} (centroids must be finite)",
                        table[k]
                    )));
                }
                let want = packed_len(nnz, bits);
                let bytes = file.bytes(&tensor, Dtype::U8, Some(&[want])).map_err(|_| {
                    self.error(format!(
                        "tensor `{tensor}` is not U8 [{want}] ({nnz} codebook indices of {bits} bits)"
                    ))
                })?;
                check_codes(bytes, nnz, bits, entries)
                    .map_err(|p| self.error(format!("layer {name}: {p}")))?;
                ValueStore::Codebook { bits, codes: Slab::from_file(self.map, bytes), table }
            }
        })
    }
}
