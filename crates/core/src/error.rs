//! The one error type of ticket-core. Every message names the file (or the argument) and the
//! problem on one line, because these errors end up printed by the CLI as the cause of a failure.

use std::path::{Path, PathBuf};

/// Errors from files and user input. Programmer mistakes (mismatched slice lengths in a kernel)
/// panic instead; anything read from disk or typed by a user comes back as one of these.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The operating system refused a read or write.
    #[error("{}: {err}", path.display())]
    Io { path: PathBuf, err: std::io::Error },
    /// A file was read but its content is wrong (corrupt, truncated, wrong shape, wrong dtype...).
    #[error("{}: {problem}", path.display())]
    Invalid { path: PathBuf, problem: String },
    /// A value given on the command line or through the API is unusable.
    #[error("{0}")]
    Usage(String),
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An I/O failure on `path`.
    pub fn io(path: impl AsRef<Path>, err: std::io::Error) -> Self {
        Error::Io { path: path.as_ref().to_path_buf(), err }
    }

    /// A content problem in `path`.
    pub fn invalid(path: impl AsRef<Path>, problem: impl Into<String>) -> Self {
        Error::Invalid { path: path.as_ref().to_path_buf(), problem: problem.into() }
    }

    /// A bad argument.
    pub fn usage(problem: impl Into<String>) -> Self {
        Error::Usage(problem.into())
    }
}
