//! `ticket._ticket`: the Rust engine behind the `ticket` Python package. Models are loaded and
//! run by ticket-infer, exported by ticket-export; this module only converts between numpy /
//! Python objects and those crates, and maps their errors to Python exceptions.

mod errors;
mod export;
mod model;

use pyo3::prelude::*;

#[pymodule]
fn _ticket(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("TicketError", m.py().get_type::<errors::TicketError>())?;
    m.add_class::<model::Model>()?;
    m.add_function(wrap_pyfunction!(model::load, m)?)?;
    m.add_function(wrap_pyfunction!(export::export, m)?)?;
    Ok(())
}
