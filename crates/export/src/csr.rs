//! An [`Network`] as one CSR matrix per layer (one row per output neuron), built and validated with
//! sprs, and its serialization to the `ticket-csr` safetensors format (docs/FORMAT.md).
//!
//! The mask decides what is stored, not the value: a kept weight that happens to be 0.0 is
//! stored, a pruned one never is, so the decoded masks equal the source masks.
//!
//! ```
//! use ticket_core::{csr_format::ValueDtype, Graph, Network};
//! use ticket_export::{read_csr_as_dense, write_csr, Provenance};
//! let mut net = Network::zeros(&"3-2".parse::<Graph>().unwrap());
//! net.layers[0].weight = vec![1.0, 0.0, -2.0, 0.5, 0.25, 0.0];
//! net.layers[0].mask = vec![1, 0, 1, 1, 1, 0];
//! let dir = tempfile::tempdir().unwrap();
//! let path = dir.path().join("m.safetensors");
//! write_csr(&path, &net, ValueDtype::F16, &Provenance::default()).unwrap();
//! assert_eq!(read_csr_as_dense(&path).unwrap(), net);
//! ```

use crate::compressed::{index_tensor, value_tensors, Codecs};
use crate::{Error, Result};
use sprs::CsMatI;
use std::collections::BTreeMap;
use std::path::Path;
use ticket_core::csr_format::{self, meta, ValueDtype};
use ticket_core::tensor_file::{write_tensors, OwnedTensor, TensorLayout};
use ticket_core::{Graph, LayerParams, Network};

/// A layer's weights in CSR form. Column indices are u32 in memory: sprs needs the column
/// count itself to fit the index type, so a u16 matrix could not have the 65,536 columns the
/// format stores as U16. The narrowing to the format's index dtype happens on encoding.
pub type CsrMatrix = CsMatI<f32, u32, u32>;

/// What the file records about where the model came from.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Provenance {
    /// Data set the source was trained on.
    pub dataset: String,
    /// Test accuracy of the source (fraction), when known.
    pub source_accuracy: Option<f64>,
}

/// One weighted layer: its name (`fc1`, `conv1`...), weights as a `[rows, cols]` matrix and
/// dense bias.
#[derive(Clone, Debug, PartialEq)]
pub struct CsrLayer {
    pub name: String,
    pub matrix: CsrMatrix,
    pub bias: Vec<f32>,
}

/// All weighted layers of a model in CSR form, with its graph.
#[derive(Clone, Debug, PartialEq)]
pub struct CsrModel {
    pub graph: Graph,
    pub layers: Vec<CsrLayer>,
}

impl CsrModel {
    /// The kept weights of every layer. Refuses NaN or infinite kept weights and biases
    /// (pruned weights are dropped whatever they hold).
    pub fn from_net(net: &Network) -> Result<Self> {
        let layers = net
            .graph
            .layer_names()
            .into_iter()
            .zip(&net.layers)
            .map(|(name, layer)| {
                check_finite(&name, layer)?;
                Ok(CsrLayer { matrix: to_csr(&name, layer)?, bias: layer.bias.clone(), name })
            })
            .collect::<Result<_>>()?;
        Ok(CsrModel { graph: net.graph.clone(), layers })
    }

    /// Kept weights of all layers.
    pub fn kept_weights(&self) -> usize {
        self.layers.iter().map(|l| l.matrix.nnz()).sum()
    }

    /// The tensors of the format, values and indices stored with `codecs`. Refuses a value
    /// that only becomes infinite in a float dtype (an f32 weight beyond the f16 range).
    pub fn tensors(&self, codecs: Codecs) -> Result<Vec<(String, OwnedTensor)>> {
        let mut tensors = Vec::with_capacity(6 * self.layers.len());
        for (layer, weighted) in self.layers.iter().zip(self.graph.weighted()) {
            let rows = layer.matrix.rows();
            let dims: Vec<i64> = weighted.dims.iter().map(|&d| d as i64).collect();
            let indptr = layer.matrix.indptr().to_proper().into_owned();
            let name = &layer.name;
            tensors.extend(value_tensors(name, &layer.matrix, codecs.value.for_rank(dims.len()))?);
            tensors.extend([
                (csr_format::indptr_name(name), OwnedTensor::u32(vec![rows + 1], &indptr)),
                index_tensor(name, &layer.matrix, codecs.index.for_rank(dims.len())),
                (csr_format::shape_name(name), OwnedTensor::i64(vec![dims.len()], &dims)),
                (csr_format::bias_name(name), OwnedTensor::f32(vec![rows], &layer.bias)),
            ]);
        }
        Ok(tensors)
    }

    /// The names, dtypes and shapes of the tensors [`CsrModel::tensors`] makes with f32
    /// values and absolute indices, without encoding any: the baseline file's length is
    /// computed from them.
    pub fn f32_layout(&self) -> Vec<TensorLayout> {
        let mut layout = Vec::with_capacity(5 * self.layers.len());
        for (layer, weighted) in self.layers.iter().zip(self.graph.weighted()) {
            let (rows, nnz, name) = (layer.matrix.rows(), layer.matrix.nnz(), &layer.name);
            let index = csr_format::index_dtype(layer.matrix.cols());
            let tensor = |name: String, dtype, shape| TensorLayout { name, dtype, shape };
            layout.extend([
                tensor(csr_format::values_name(name), ValueDtype::F32.dtype(), vec![nnz]),
                tensor(csr_format::indptr_name(name), safetensors::Dtype::U32, vec![rows + 1]),
                tensor(csr_format::indices_name(name), index, vec![nnz]),
                tensor(
                    csr_format::shape_name(name),
                    safetensors::Dtype::I64,
                    vec![weighted.dims.len()],
                ),
                tensor(csr_format::bias_name(name), safetensors::Dtype::F32, vec![rows]),
            ]);
        }
        layout
    }

    /// The `__metadata__` of the file.
    pub fn metadata(&self, codecs: Codecs, provenance: &Provenance) -> BTreeMap<String, String> {
        let kept = self.kept_weights();
        let biases: usize = self.layers.iter().map(|l| l.bias.len()).sum();
        let version = if codecs.is_compressed() {
            csr_format::FORMAT_VERSION_COMPRESSED.to_string()
        } else {
            csr_format::FORMAT_VERSION.to_string()
        };
        let mut m = BTreeMap::from([
            (meta::FORMAT, csr_format::FORMAT.to_string()),
            (meta::FORMAT_VERSION, version),
            (meta::GRAPH, self.graph.to_json()),
            (meta::LAYERS, self.graph.layer_names().join(",")),
            (meta::VALUE_DTYPE, codecs.value.to_string()),
            (meta::DENSITY, (kept as f64 / self.graph.dense_weights() as f64).to_string()),
            (meta::DENSE_PARAMS, self.graph.dense_params().to_string()),
            (meta::KEPT_PARAMS, (kept + biases).to_string()),
            (meta::DATASET, provenance.dataset.clone()),
        ]);
        if let Some(bits) = codecs.index.to_meta() {
            m.insert(meta::INDEX_BITS, bits);
        }
        if let Some(acc) = provenance.source_accuracy {
            m.insert(meta::SOURCE_ACCURACY, acc.to_string());
        }
        m.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
    }

    /// Writes the CSR file atomically.
    pub fn write(&self, path: &Path, codecs: Codecs, provenance: &Provenance) -> Result<()> {
        write_tensors(path, self.tensors(codecs)?, &self.metadata(codecs, provenance))?;
        Ok(())
    }
}

/// Writes `net` as a CSR safetensors file with values stored as `dtype`.
pub fn write_csr(
    path: &Path,
    net: &Network,
    dtype: ValueDtype,
    provenance: &Provenance,
) -> Result<()> {
    CsrModel::from_net(net)?.write(path, Codecs::float(dtype), provenance)
}

/// The kept weights of `layer`, row by row, columns ascending.
fn to_csr(name: &str, layer: &LayerParams) -> Result<CsrMatrix> {
    let (rows, cols) = (layer.shape.rows, layer.shape.cols);
    let kept = layer.kept();
    if u32::try_from(kept).is_err() || u32::try_from(cols).is_err() {
        return Err(ticket_core::Error::usage(format!(
            "layer {name}: {kept} kept weights in {cols} columns exceed the format's U32 indptr and indices"
        ))
        .into());
    }
    let mut indptr = Vec::with_capacity(rows + 1);
    let mut indices = Vec::with_capacity(kept);
    let mut values = Vec::with_capacity(kept);
    indptr.push(0u32);
    for (weights, mask) in layer.weight.chunks_exact(cols).zip(layer.mask.chunks_exact(cols)) {
        for (col, (&w, &m)) in weights.iter().zip(mask).enumerate() {
            if m != 0 {
                indices.push(col as u32);
                values.push(w);
            }
        }
        indptr.push(indices.len() as u32);
    }
    Ok(CsMatI::try_new((rows, cols), indptr, indices, values)
        .map_err(|(.., e)| e)
        .expect("rows are built in order with ascending columns"))
}

/// The first NaN or infinite kept weight or bias of `layer`, as an error.
fn check_finite(name: &str, layer: &LayerParams) -> Result<()> {
    let cols = layer.shape.cols;
    let weight = layer.weight.iter().zip(&layer.mask).position(|(w, &m)| m != 0 && !w.is_finite());
    if let Some(i) = weight {
        return Err(Error::NotFinite {
            layer: name.to_string(),
            what: format!("weight [{}, {}] (index {i})", i / cols, i % cols),
            value: layer.weight[i],
            why: String::new(),
        });
    }
    if let Some(i) = layer.bias.iter().position(|b| !b.is_finite()) {
        return Err(Error::NotFinite {
            layer: name.to_string(),
            what: format!("bias [{i}]"),
            value: layer.bias[i],
            why: String::new(),
        });
    }
    Ok(())
}
