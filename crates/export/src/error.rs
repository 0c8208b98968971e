//! The error type of ticket-export. File problems come from ticket-core and keep its wording
//! (file name first); the variants here are the refusals that only exporting has.

use std::path::PathBuf;

/// Why an export or a CSR read failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read or written, or its content is wrong.
    #[error(transparent)]
    Core(#[from] ticket_core::Error),
    /// A kept weight or a bias is NaN or infinite, or becomes infinite in the value dtype.
    #[error("layer {layer}: {what} is {value}{why}; refusing to export it")]
    NotFinite { layer: String, what: String, value: f32, why: String },
    /// The output file exists and overwriting was not asked for.
    #[error("{}: already exists (pass --force to overwrite it)", .0.display())]
    OutputExists(PathBuf),
    /// Fine-tuning was stopped (Ctrl-C) before its last iteration; nothing was written.
    #[error("interrupted at fine-tuning iteration {iteration}; nothing was written")]
    Interrupted { iteration: usize },
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
