//! ticket-core: what every ticket crate shares.
//!
//! - [`Arch`] and [`Recipe`]: an MLP's shape and how to train and prune it (`models/*.toml`).
//! - [`dataset`]: the embedded digits, Fashion-MNIST and any IDX data, split deterministically.
//! - [`Mlp`] and [`checkpoint`]: weights, biases and masks, saved as dense safetensors.
//! - [`csr_format`]: tensor names and metadata keys of the CSR model format.
//! - [`tensor_file`]: named tensors in safetensors files, with errors that name the file.
//! - [`sgemm`]: the one dense matrix product the trainer and the dense inference path call.
//! - [`atomic`]: writes that are all-or-nothing.

pub mod arch;
pub mod atomic;
pub mod checkpoint;
pub mod csr_format;
pub mod dataset;
pub mod error;
pub mod mlp;
pub mod recipe;
pub mod sgemm;
pub mod tensor_file;

pub use arch::{Arch, LayerShape};
pub use dataset::{DataSource, Dataset, Splits};
pub use error::{Error, Result};
pub use mlp::{Linear, Mlp};
pub use recipe::Recipe;
pub use sgemm::Par;
