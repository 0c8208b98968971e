//! ticket-export: masked dense checkpoints to CSR safetensors (f32/f16/bf16, int8 or k-means
//! codebook values; u16/u32 or N-bit gap indices) and the compression report.
//!
//! - [`export_checkpoint`]: the whole job (refuse bad weights, write, read back, report).
//! - [`csr`]: an `Network` as one sprs CSR matrix per layer, and the file writer [`write_csr`].
//! - [`decode`]: the file back to a dense `Network` ([`read_csr_as_dense`]), for round-trip checks
//!   and accuracy measurements.
//! - [`report`]: per-layer and whole-file compression, as a table or JSON.
//! - [`open`]: any source `ticket export` takes (ticket's files, PyTorch state dicts, ONNX),
//!   pruned on export when asked.
//! - [`source`]: which checkpoint an input path (file or experiment directory) designates.
//! - [`codec`]: the little-endian bytes of values and indices in each dtype.
//! - [`compressed`]: the tensors of each value and index codec, written and read back.
//! - [`sweep`]: every codec on one model, to pick one.
//! - [`quantize`]: int8 rows and the k-means codebook.
//! - `finetune` (feature `finetune`): the codebooks' centroids trained on data, assignments
//!   and masks fixed.
//!
//! The format is specified in docs/FORMAT.md; its names live in `ticket_core::csr_format`.

pub mod codec;
pub mod compressed;
pub mod csr;
pub mod decode;
pub mod error;
pub mod export;
#[cfg(feature = "finetune")]
pub mod finetune;
pub mod open;
pub mod quantize;
pub mod report;
pub mod source;
pub mod sweep;

pub use compressed::{smallest_index_codecs, Codecs, IndexRequest};
pub use csr::{write_csr, CsrLayer, CsrMatrix, CsrModel, Provenance};
pub use decode::{read_csr, read_csr_as_dense, read_csr_bytes, CsrFile};
pub use error::{Error, Result};
pub use export::{
    dense_f32_file, dense_f32_file_len, export_checkpoint, export_replaced, Evaluation,
    ExportOptions,
};
pub use open::{open_source, ImportInfo, Source, SourceOptions};
pub use report::{
    AccuracyReport, BitsSplit, CompressionReport, CsrBytes, LayerReport, TotalReport,
};
pub use source::resolve_checkpoint;
