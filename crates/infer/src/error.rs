//! The error type of ticket-infer. Problems in a file name the file and the problem on one line
//! (the CLI prints them as the cause of a failure); problems in slices handed to the public API
//! say which argument is wrong.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading, parsing or writing a file failed in ticket-core (I/O, safetensors, metadata).
    #[error(transparent)]
    Core(#[from] ticket_core::Error),
    /// A file was read but its content is unusable (corrupt CSR, wrong shapes, NaN...).
    #[error("{}: {problem}", path.display())]
    Invalid { path: PathBuf, problem: String },
    /// Slices handed to the API do not form a valid CSR matrix.
    #[error("invalid CSR matrix: {0}")]
    Csr(String),
    /// Inputs handed to the API do not fit the model (wrong length, wrong feature count).
    #[error("{0}")]
    Shape(String),
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A content problem in `path`, on one line (`ticket_core::error::one_line`).
    pub fn invalid(path: impl AsRef<Path>, problem: impl Into<String>) -> Self {
        let problem = ticket_core::error::one_line(problem.into());
        Error::Invalid { path: path.as_ref().to_path_buf(), problem }
    }
}
