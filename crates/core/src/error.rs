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

/// `text` with its control characters written as escapes (`\n`, `\u{1b}`): problems quote
/// what files contain (tensor names, metadata values), and a newline there must not split
/// the one-line message.
pub fn one_line(text: String) -> String {
    if !text.chars().any(char::is_control) {
        return text;
    }
    text.chars()
        .map(|c| if c.is_control() { c.escape_default().to_string() } else { c.to_string() })
        .collect()
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An I/O failure on `path`.
    pub fn io(path: impl AsRef<Path>, err: std::io::Error) -> Self {
        Error::Io { path: path.as_ref().to_path_buf(), err }
    }

    /// A content problem in `path`, on one line (see [`one_line`]).
    pub fn invalid(path: impl AsRef<Path>, problem: impl Into<String>) -> Self {
        Error::Invalid { path: path.as_ref().to_path_buf(), problem: one_line(problem.into()) }
    }

    /// A bad argument.
    pub fn usage(problem: impl Into<String>) -> Self {
        Error::Usage(problem.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_quoting_file_content_stay_on_one_line() {
        let err = Error::invalid("m.safetensors", "missing tensor `fc1\nbias\r\u{1b}`");
        assert_eq!(err.to_string(), "m.safetensors: missing tensor `fc1\\nbias\\r\\u{1b}`");
        assert_eq!(one_line("caf\u{e9} \"ok\"".into()), "caf\u{e9} \"ok\"");
    }
}
