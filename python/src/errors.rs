//! Errors cross into Python as exceptions carrying the one-line cause: `OSError` (or
//! `FileNotFoundError`) when the operating system refused a file, `TicketError` (a
//! `ValueError`) for everything that is wrong with the input itself.

use pyo3::exceptions::{PyFileExistsError, PyFileNotFoundError, PyOSError, PyValueError};
use pyo3::PyErr;

pyo3::create_exception!(
    ticket,
    TicketError,
    PyValueError,
    "Bad input: a corrupt or unsupported file, wrong shapes, an unknown option."
);

/// The Python exception for a ticket-core error.
pub fn core(err: ticket_core::Error) -> PyErr {
    match &err {
        ticket_core::Error::Io { err: io, .. } if io.kind() == std::io::ErrorKind::NotFound => {
            PyFileNotFoundError::new_err(err.to_string())
        }
        ticket_core::Error::Io { .. } => PyOSError::new_err(err.to_string()),
        _ => TicketError::new_err(err.to_string()),
    }
}

/// The Python exception for a ticket-infer error.
pub fn infer(err: ticket_infer::Error) -> PyErr {
    match err {
        ticket_infer::Error::Core(err) => core(err),
        err => TicketError::new_err(err.to_string()),
    }
}

/// The Python exception for a ticket-export error.
pub fn export(err: ticket_export::Error) -> PyErr {
    match err {
        ticket_export::Error::Core(err) => core(err),
        ticket_export::Error::OutputExists(path) => PyFileExistsError::new_err(format!(
            "{}: already exists (pass force=True to overwrite it)",
            path.display()
        )),
        err => TicketError::new_err(err.to_string()),
    }
}

/// A bad argument, named in `message`.
pub fn usage(message: impl Into<String>) -> PyErr {
    TicketError::new_err(message.into())
}
