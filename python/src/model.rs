//! `ticket.Model`: a CSR file loaded once, run from numpy. Inputs are read in place (no copy
//! for a C-contiguous float32 array) and the kernels run with the GIL released, so several
//! Python threads can call `predict` on one model at once.

use crate::errors;
use numpy::{PyArray1, PyArrayDyn, PyArrayMethods, PyUntypedArrayMethods};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::path::PathBuf;
use ticket_core::Par;
use ticket_infer::{bench, SparseModel};

/// A sparse model loaded from a CSR safetensors file written by `ticket export`.
#[pyclass(module = "ticket", frozen)]
pub struct Model {
    model: SparseModel,
    path: PathBuf,
    par: Par,
}

/// Loads and validates the CSR safetensors model at `path`; `predict` uses up to `threads`
/// threads (default: all cores).
#[pyfunction]
#[pyo3(signature = (path, *, threads = None))]
pub fn load(py: Python<'_>, path: PathBuf, threads: Option<usize>) -> PyResult<Model> {
    let par = match threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
    {
        0 => return Err(errors::usage("load: threads must be at least 1")),
        1 => Par::Seq,
        n => Par::Rayon(n),
    };
    let model = py.detach(|| SparseModel::load(&path)).map_err(errors::infer)?;
    Ok(Model { model, path, par })
}

#[pymethods]
impl Model {
    /// Logits `[batch, classes]` (float32) of inputs `[batch, *input_shape]`, or of one example
    /// shaped `input_shape` (then `[classes]`).
    fn predict<'py>(&self, py: Python<'py>, x: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        let array = as_f32_array(py, x)?;
        let readonly = array.readonly();
        let shape = readonly.shape();
        let (batch, single) = self.batch_of(shape)?;
        let inputs = readonly.as_slice().map_err(|e| errors::usage(format!("predict: {e}")))?;
        // The model splits work over threads only where it pays (as `ticket infer` does).
        let logits =
            py.detach(|| self.model.logits(inputs, batch, self.par)).map_err(errors::infer)?;
        let out = PyArray1::from_vec(py, logits);
        if single {
            Ok(out.into_any())
        } else {
            Ok(out.reshape([batch, self.model.outputs()])?.into_any())
        }
    }

    /// The figures of `ticket infer --bench`: batch-1 latency (p50/p99) and time per example
    /// at batch 64 and 1024 of the sparse path and of the dense path on the same weights, the
    /// sparse path's time per step, and weight bytes. Takes a few seconds; the GIL is released.
    #[pyo3(signature = (threads = None))]
    fn benchmark<'py>(
        &self,
        py: Python<'py>,
        threads: Option<usize>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let par = match threads {
            Some(0) => return Err(errors::usage("benchmark: threads must be at least 1")),
            Some(1) => Par::Seq,
            Some(n) => Par::Rayon(n),
            None => self.par,
        };
        let figures = py.detach(|| {
            let pool = bench::synthetic_inputs(1024, self.model.inputs());
            let dense = self.model.to_dense();
            bench::bench(&self.model, &dense, &pool, par, |_| {})
        });
        let figures = figures.map_err(errors::infer)?;
        json_to_py(py, &serde_json::Value::Object(figures).to_string())
    }

    /// The input shape of one example, e.g. `(784,)` or `(1, 28, 28)`.
    #[getter]
    fn input_shape(&self) -> Vec<usize> {
        self.model.graph().input_shape().to_vec()
    }

    /// Number of classes (logits per example).
    #[getter]
    fn classes(&self) -> usize {
        self.model.outputs()
    }

    /// What the file holds: the graph, each weighted layer's shape and density, the value
    /// dtype and the bytes the weights take.
    #[getter]
    fn info<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let m = &self.model;
        let graph = json_to_py(py, &m.graph().to_json())?;
        let (values, indices) = m.codecs();
        let layers = m
            .layers()
            .iter()
            .zip(m.graph().weighted())
            .map(|(layer, w)| {
                let d = PyDict::new(py);
                d.set_item("name", layer.name())?;
                d.set_item("dims", w.dims.clone())?;
                let dense = layer.shape().rows * layer.shape().cols;
                d.set_item("kept", layer.nnz())?;
                d.set_item("weights", dense)?;
                d.set_item("density", layer.nnz() as f64 / dense.max(1) as f64)?;
                d.set_item("value_codec", values.for_rank(w.dims.len()).to_string())?;
                d.set_item("index_codec", indices.for_rank(w.dims.len()).to_string())?;
                Ok(d)
            })
            .collect::<PyResult<Vec<_>>>()?;
        let info = PyDict::new(py);
        info.set_item("path", &self.path)?;
        info.set_item("graph", graph)?;
        info.set_item("input_shape", m.graph().input_shape().to_vec())?;
        info.set_item("classes", m.outputs())?;
        info.set_item("layers", layers)?;
        info.set_item("kept", m.nnz())?;
        info.set_item("weights", m.graph().dense_weights())?;
        info.set_item("density", m.nnz() as f64 / m.graph().dense_weights().max(1) as f64)?;
        info.set_item("value_codec", values.to_string())?;
        info.set_item("index_codec", indices.to_string())?;
        info.set_item("weight_bytes", m.weight_bytes())?;
        info.set_item("file_bytes", std::fs::metadata(&self.path).map(|md| md.len()).ok())?;
        info.set_item("dataset", m.dataset())?;
        Ok(info)
    }

    fn __repr__(&self) -> String {
        let m = &self.model;
        format!(
            "ticket.Model('{}', input_shape={:?}, classes={}, kept={} of {})",
            self.path.display(),
            m.graph().input_shape(),
            m.outputs(),
            m.nnz(),
            m.graph().dense_weights()
        )
    }
}

impl Model {
    /// The batch size of an input of `shape`, and whether it is a single unbatched example.
    fn batch_of(&self, shape: &[usize]) -> PyResult<(usize, bool)> {
        let example = self.model.graph().input_shape();
        let features = self.model.inputs();
        let fits = |dims: &[usize]| dims == example || (dims.len() == 1 && dims[0] == features);
        match shape.split_first() {
            _ if fits(shape) && shape.len() > 1 => Ok((1, true)),
            Some((&batch, rest)) if fits(rest) => Ok((batch, false)),
            _ if shape.len() == 1 && shape[0] == features => Ok((1, true)),
            _ => Err(errors::usage(format!(
                "predict: input of shape {shape:?} does not fit the model: expected \
                 [batch, {}] or [batch, {features}]",
                example.iter().map(usize::to_string).collect::<Vec<_>>().join(", ")
            ))),
        }
    }
}

/// `x` as a C-contiguous float32 numpy array: the array itself when it is one already
/// (no copy), otherwise a converted copy of a floating-point array. Integer arrays are refused
/// rather than converted, because raw pixels in 0..255 are not what a model trained on [0, 1]
/// expects.
fn as_f32_array<'py>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyArrayDyn<f32>>> {
    if let Ok(array) = x.cast::<PyArrayDyn<f32>>() {
        if array.is_c_contiguous() {
            return Ok(array.clone());
        }
    }
    let numpy = py.import("numpy")?;
    let array = numpy.call_method1("asarray", (x,))?;
    let kind: String = array.getattr("dtype")?.getattr("kind")?.extract()?;
    if kind != "f" {
        let dtype = array.getattr("dtype")?.str()?.to_string();
        return Err(errors::usage(format!(
            "predict: expected floating-point inputs, got dtype {dtype}; convert with \
             x.astype(numpy.float32) (scaled as the model was trained)"
        )));
    }
    let kwargs = PyDict::new(py);
    kwargs.set_item("dtype", numpy.getattr("float32")?)?;
    let converted = numpy.call_method("ascontiguousarray", (array,), Some(&kwargs))?;
    Ok(converted.cast_into::<PyArrayDyn<f32>>()?)
}

/// A JSON text as Python objects (dicts, lists, numbers).
pub fn json_to_py<'py>(py: Python<'py>, text: &str) -> PyResult<Bound<'py, PyAny>> {
    py.import("json")?.call_method1("loads", (text,))
}
