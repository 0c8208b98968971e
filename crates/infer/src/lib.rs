//! ticket-infer: loads and validates CSR safetensors and runs sparse (and, for comparison, dense)
//! inference on the CPU.

pub mod csr;
pub mod error;
#[cfg(any(test, feature = "fixture"))]
pub mod fixture;
pub mod kernels;

pub use csr::{ColIndex, CsrRef};
pub use error::{Error, Result};
pub use kernels::Activation;
