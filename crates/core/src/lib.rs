//! ticket-core: what every ticket crate shares.
//!
//! - [`Graph`]: the model graph (linear, conv2d, relu, pooling, flatten) every crate shares.
//! - [`Recipe`]: a model and how to train and prune it (`models/*.toml`).
//! - [`dataset`]: the embedded digits, Fashion-MNIST and any IDX data, split deterministically.
//! - [`Network`] and [`checkpoint`]: weights, biases and masks, saved as dense safetensors.
//! - [`csr_format`]: tensor names and metadata keys of the CSR model format.
//! - [`packed`]: the bit streams of compressed CSR layers (codebook indices, column gaps).
//! - [`tensor_file`]: named tensors in safetensors files, with errors that name the file.
//! - [`linear`], [`conv`], [`pool`]: the dense forward of each layer kind.
//! - [`prune`]: magnitude pruning of the masks (layer-wise or global).
//! - [`sgemm`]: the one dense matrix product the trainer and the dense inference path call.
//! - [`atomic`]: writes that are all-or-nothing.
//! - [`awake_pool`]: a pass of many fork-joins without waking sleeping threads for each.

pub mod atomic;
pub mod awake_pool;
pub mod checkpoint;
pub mod conv;
pub mod csr_format;
pub mod dataset;
pub mod error;
pub mod graph;
pub mod linear;
pub mod network;
pub mod packed;
pub mod pool;
pub mod prune;
pub mod recipe;
pub mod sgemm;
pub mod tensor_file;

pub use dataset::{DataSource, Dataset, Splits};
pub use error::{Error, Result};
pub use graph::{Graph, Layer, LayerShape, Weighted};
pub use network::{LayerParams, Network};
pub use recipe::Recipe;
pub use sgemm::Par;
