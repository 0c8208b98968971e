//! ticket-infer: loads and validates CSR safetensors models and runs them on the CPU with
//! sparse kernels, next to a dense path on the same weights for comparison.
//!
//! - [`SparseModel`]: [`SparseModel::load`] maps and validates a `ticket-csr` file;
//!   [`SparseModel::logits`] and [`SparseModel::accuracy`] run it; [`SparseModel::to_dense`]
//!   gives the same network as a dense `ticket_core::Network` (the `sgemm` path).
//! - [`kernels`]: SpMV, SpMM and the transposed SpMM over plain slices ([`CsrRef`]), reusable
//!   by the trainer; compressed layers (int8 / codebook values, gap indices) are decoded a few
//!   rows at a time right before those kernels run.
//! - [`peak_rss_bytes`] and [`SparseModel::workspace_bytes`]: the memory footprint
//!   `ticket infer --bench` reports.
//! - [`batch_file`]: a batch of inputs from a safetensors file, logits back to one.
//! - [`bench`]: the figures of `ticket infer --bench` (both paths, per-step split, bytes).
//! - [`timing`]: latency and throughput of a forward pass, for `ticket infer --bench`.

pub mod aligned;
pub mod batch_file;
pub mod bench;
pub mod csr;
pub mod error;
#[cfg(any(test, feature = "fixture"))]
pub mod fixture;
pub mod kernels;
mod load;
pub mod model;
mod slab;
pub mod timing;
pub mod transpose;

pub use csr::{compress, ColIndex, CsrPattern, CsrRef};
pub use error::{Error, Result};
pub use kernels::Activation;
pub use model::{peak_rss_bytes, Scratch, SparseLayer, SparseModel};
