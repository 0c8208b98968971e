//! Errors of the server: [`Error`] stops it from starting (a model that does not load, a port
//! that cannot be bound); [`RequestError`] answers one request with a 4xx/5xx and
//! `{"error": "..."}`, and never stops the server.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A `--model` argument that names no model.
    #[error("--model {spec}: {problem}")]
    Spec { spec: String, problem: String },
    /// A model file that does not load (the cause names the file and the problem).
    #[error(transparent)]
    Load(#[from] ticket_infer::Error),
    /// Reading a model directory, binding the port or serving failed.
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// A setting out of range.
    #[error("{0}")]
    Config(String),
    /// The server stopped without answering every request, or a model's thread failed.
    #[error("{0}")]
    Unclean(String),
}

impl Error {
    pub fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io { what: what.into(), source }
    }

    pub fn spec(spec: &str, problem: impl Into<String>) -> Self {
        Error::Spec { spec: spec.to_string(), problem: problem.into() }
    }

    pub fn dir(dir: &std::path::Path, source: std::io::Error) -> Self {
        Error::io(PathBuf::from(dir).display().to_string(), source)
    }
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a request failed, as counted in `/metrics` (`ticket_request_errors_total{kind}`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The request does not follow the protocol or does not fit the model (400).
    BadRequest,
    /// No model of that name (or version) is served (404).
    UnknownModel,
    /// The body is larger than `--max-body` (413).
    BodyTooLarge,
    /// The model's queue is full (503): the client should retry later.
    QueueFull,
    /// The server is shutting down (503).
    ShuttingDown,
    /// The model's worker failed (500).
    Internal,
}

impl ErrorKind {
    pub fn status(self) -> u16 {
        match self {
            ErrorKind::BadRequest => 400,
            ErrorKind::UnknownModel => 404,
            ErrorKind::BodyTooLarge => 413,
            ErrorKind::QueueFull | ErrorKind::ShuttingDown => 503,
            ErrorKind::Internal => 500,
        }
    }

    /// The metrics label.
    pub fn label(self) -> &'static str {
        match self {
            ErrorKind::BadRequest => "bad_request",
            ErrorKind::UnknownModel => "unknown_model",
            ErrorKind::BodyTooLarge => "body_too_large",
            ErrorKind::QueueFull => "queue_full",
            ErrorKind::ShuttingDown => "shutting_down",
            ErrorKind::Internal => "internal",
        }
    }
}

/// A failed request: its kind (and so its status) and a one-line message for the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestError {
    pub kind: ErrorKind,
    pub message: String,
}

impl RequestError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        RequestError { kind, message: ticket_core::error::one_line(message.into()) }
    }

    pub fn bad(message: impl Into<String>) -> Self {
        RequestError::new(ErrorKind::BadRequest, message)
    }
}

impl std::fmt::Display for RequestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}
