//! Errors of ticket-train.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file or argument problem reported by ticket-core (names the file).
    #[error(transparent)]
    Core(#[from] ticket_core::Error),
    /// The model and the data (or a mask) do not fit together.
    #[error("{0}")]
    Mismatch(String),
    /// The loss stopped being finite; the last good weights were kept.
    #[error("{}: training diverged at iteration {iteration} (loss is not finite); try a lower learning rate", dir.display())]
    Diverged { dir: PathBuf, iteration: usize },
    /// An experiment directory that cannot be used as asked.
    #[error("{}: {problem}", dir.display())]
    Experiment { dir: PathBuf, problem: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
