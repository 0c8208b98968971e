//! Random CSR layers and a writer of CSR model files, for tests and benchmarks. It builds the
//! file from raw tensors with `ticket_core::tensor_file`, independently of `ticket-export`, so
//! that the loader is tested against the format rather than against one writer; tests edit the
//! tensors and metadata before writing to produce every kind of corrupt file.

use crate::csr::CsrRef;
use half::slice::HalfFloatSliceExt;
use half::{bf16, f16};
use rand_chacha::ChaCha8Rng;
use rand_core::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::path::Path;
use ticket_core::csr_format::{self, meta, ValueDtype};
use ticket_core::tensor_file::{write_tensors, OwnedTensor};
use ticket_core::{Graph, Layer, Network};

/// One layer as plain vectors: `[rows, cols]` CSR weight with `u32` indices, and a bias.
#[derive(Clone, Debug, PartialEq)]
pub struct CsrParts {
    pub rows: usize,
    pub cols: usize,
    pub indptr: Vec<u32>,
    pub indices: Vec<u32>,
    pub values: Vec<f32>,
    pub bias: Vec<f32>,
}

/// A seeded generator of uniform numbers.
pub struct Random(ChaCha8Rng);

impl Random {
    pub fn new(seed: u64) -> Self {
        Random(ChaCha8Rng::seed_from_u64(seed))
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.0.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `[lo, hi)`.
    pub fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * self.unit() as f32
    }

    /// `n` values uniform in `[lo, hi)`.
    pub fn vec(&mut self, n: usize, lo: f32, hi: f32) -> Vec<f32> {
        (0..n).map(|_| self.uniform(lo, hi)).collect()
    }
}

impl CsrParts {
    /// Keeps each weight with probability `density` (0 keeps none, 1 keeps all); values in
    /// `[-1, 1)`, biases in `[-0.5, 0.5)`.
    pub fn random(rows: usize, cols: usize, density: f64, rng: &mut Random) -> Self {
        let mut indptr = Vec::with_capacity(rows + 1);
        let (mut indices, mut values) = (Vec::new(), Vec::new());
        indptr.push(0);
        for _ in 0..rows {
            for c in 0..cols {
                if rng.unit() < density {
                    indices.push(c as u32);
                    values.push(rng.uniform(-1.0, 1.0));
                }
            }
            indptr.push(indices.len() as u32);
        }
        let bias = rng.vec(rows, -0.5, 0.5);
        CsrParts { rows, cols, indptr, indices, values, bias }
    }

    /// Removes every nonzero of the rows for which `drop` is true.
    pub fn clear_rows(&mut self, mut drop: impl FnMut(usize) -> bool) {
        let (mut indptr, mut indices, mut values) = (vec![0u32], Vec::new(), Vec::new());
        for r in 0..self.rows {
            if !drop(r) {
                let range = self.indptr[r] as usize..self.indptr[r + 1] as usize;
                indices.extend_from_slice(&self.indices[range.clone()]);
                values.extend_from_slice(&self.values[range]);
            }
            indptr.push(indices.len() as u32);
        }
        (self.indptr, self.indices, self.values) = (indptr, indices, values);
    }

    pub fn nnz(&self) -> usize {
        self.indices.len()
    }

    /// The weight as a dense `[rows][cols]` row-major matrix.
    pub fn dense(&self) -> Vec<f32> {
        let mut out = vec![0.0; self.rows * self.cols];
        for r in 0..self.rows {
            for k in self.indptr[r] as usize..self.indptr[r + 1] as usize {
                out[r * self.cols + self.indices[k] as usize] = self.values[k];
            }
        }
        out
    }

    pub fn indices_u16(&self) -> Vec<u16> {
        self.indices.iter().map(|&c| c as u16).collect()
    }

    pub fn csr(&self) -> CsrRef<'_, u32> {
        CsrRef::new(self.rows, self.cols, &self.indptr, &self.indices, &self.values)
            .expect("fixture layers are valid")
    }
}

/// One random layer per layer of `graph`, layer `i` at `densities[i]`.
pub fn random_model(graph: &Graph, densities: &[f64], seed: u64) -> Vec<CsrParts> {
    assert_eq!(densities.len(), graph.num_weighted(), "one density per layer");
    let mut rng = Random::new(seed);
    graph
        .layer_shapes()
        .iter()
        .zip(densities)
        .map(|(s, &d)| CsrParts::random(s.rows, s.cols, d, &mut rng))
        .collect()
}

/// The tensors and metadata of a CSR model file, as the format prescribes, named after
/// `graph.layer_names()`; values stored as `dtype`.
pub fn file_contents(
    graph: &Graph,
    layers: &[CsrParts],
    dtype: ValueDtype,
) -> (Vec<(String, OwnedTensor)>, BTreeMap<String, String>) {
    let names = graph.layer_names();
    let mut tensors = Vec::new();
    for ((name, l), w) in names.iter().zip(layers).zip(graph.weighted()) {
        let indices = if csr_format::index_dtype(l.cols) == safetensors::Dtype::U16 {
            OwnedTensor::u16(vec![l.nnz()], &l.indices_u16())
        } else {
            OwnedTensor::u32(vec![l.nnz()], &l.indices)
        };
        let values = match dtype {
            ValueDtype::F32 => OwnedTensor::f32(vec![l.nnz()], &l.values),
            ValueDtype::F16 => half_tensor::<f16>(dtype, &l.values),
            ValueDtype::Bf16 => half_tensor::<bf16>(dtype, &l.values),
        };
        tensors
            .push((csr_format::indptr_name(name), OwnedTensor::u32(vec![l.rows + 1], &l.indptr)));
        tensors.push((csr_format::indices_name(name), indices));
        tensors.push((csr_format::values_name(name), values));
        tensors.push((
            csr_format::shape_name(name),
            OwnedTensor::i64(
                vec![w.dims.len()],
                &w.dims.iter().map(|&d| d as i64).collect::<Vec<_>>(),
            ),
        ));
        tensors.push((csr_format::bias_name(name), OwnedTensor::f32(vec![l.rows], &l.bias)));
    }
    let kept: usize = layers.iter().map(|l| l.nnz() + l.rows).sum();
    let kept_weights: usize = layers.iter().map(CsrParts::nnz).sum();
    let metadata = BTreeMap::from([
        (meta::FORMAT.to_string(), csr_format::FORMAT.to_string()),
        (meta::FORMAT_VERSION.to_string(), csr_format::FORMAT_VERSION.to_string()),
        (meta::GRAPH.to_string(), graph.to_json()),
        (meta::LAYERS.to_string(), names.join(",")),
        (meta::VALUE_DTYPE.to_string(), dtype.to_string()),
        (
            meta::DENSITY.to_string(),
            (kept_weights as f64 / graph.dense_weights() as f64).to_string(),
        ),
        (meta::DENSE_PARAMS.to_string(), graph.dense_params().to_string()),
        (meta::KEPT_PARAMS.to_string(), kept.to_string()),
        (meta::DATASET.to_string(), "synthetic".to_string()),
    ]);
    (tensors, metadata)
}

fn half_tensor<H: HalfBits>(dtype: ValueDtype, values: &[f32]) -> OwnedTensor
where
    [H]: HalfFloatSliceExt,
{
    let mut halves = vec![H::default(); values.len()];
    halves.convert_from_f32_slice(values);
    let bytes = halves.iter().flat_map(|h| h.bits().to_le_bytes());
    OwnedTensor::from_le(dtype.dtype(), vec![values.len()], bytes)
}

/// The two 16-bit float types, by their bits.
trait HalfBits: Copy + Default {
    fn bits(self) -> u16;
}

impl HalfBits for f16 {
    fn bits(self) -> u16 {
        self.to_bits()
    }
}

impl HalfBits for bf16 {
    fn bits(self) -> u16 {
        self.to_bits()
    }
}

/// Writes a valid CSR model file.
pub fn write_model(
    path: &Path,
    graph: &Graph,
    layers: &[CsrParts],
    dtype: ValueDtype,
) -> ticket_core::Result<()> {
    let (tensors, metadata) = file_contents(graph, layers, dtype);
    write_tensors(path, tensors, &metadata)
}

/// The tensor called `name` among `tensors` (panics when there is none: a bug in the test).
pub fn tensor_mut<'t>(tensors: &'t mut [(String, OwnedTensor)], name: &str) -> &'t mut OwnedTensor {
    &mut tensors.iter_mut().find(|(n, _)| n == name).unwrap_or_else(|| panic!("no tensor {name}")).1
}

/// Rewrites the elements of `tensor` as `T` through `edit`; a one-dimensional tensor takes the
/// new length as its shape.
pub fn edit<T: bytemuck::Pod>(tensor: &mut OwnedTensor, edit: impl FnOnce(&mut Vec<T>)) {
    let size = size_of::<T>();
    assert_eq!(tensor.data.len() % size, 0, "element size does not divide the tensor");
    let mut items: Vec<T> =
        tensor.data.chunks_exact(size).map(bytemuck::pod_read_unaligned).collect();
    edit(&mut items);
    tensor.data = bytemuck::cast_slice(&items).to_vec();
    if tensor.shape.len() == 1 {
        tensor.shape = vec![items.len()];
    }
}

/// Logits of one example of an MLP (ReLU between layers) by the textbook formula, in f64.
pub fn reference_logits(layers: &[CsrParts], x: &[f32]) -> Vec<f64> {
    let mut sizes = vec![layers[0].cols];
    sizes.extend(layers.iter().map(|l| l.rows));
    reference_forward(&Graph::mlp(&sizes).expect("layers of an MLP"), layers, x)
}

/// The output of `graph` on one example `x` (C order), its weighted layers being `layers`:
/// every layer by its defining formula (PyTorch's semantics), in f64, with plain loops over
/// dense weights: the reference the sparse kernels are tested against.
pub fn reference_forward(graph: &Graph, layers: &[CsrParts], x: &[f32]) -> Vec<f64> {
    assert_eq!(x.len(), graph.inputs(), "reference_forward: one example");
    let mut a: Vec<f64> = x.iter().map(|&v| v as f64).collect();
    let mut weighted = layers.iter();
    for (n, layer) in graph.layers().iter().enumerate() {
        let (input, output) = (graph.input_shape_of(n), graph.output_shape(n));
        let pixel = |s: &[usize], c: usize, h: usize, w: usize| (c * s[1] + h) * s[2] + w;
        a = match *layer {
            Layer::Linear { .. } => {
                let l = weighted.next().expect("a layer per weighted layer");
                let dense = l.dense();
                (0..l.rows)
                    .map(|r| {
                        let dot: f64 =
                            (0..l.cols).map(|c| dense[r * l.cols + c] as f64 * a[c]).sum();
                        l.bias[r] as f64 + dot
                    })
                    .collect()
            }
            Layer::Conv2d { kernel: [kh, kw], stride: [sh, sw], padding: [ph, pw], .. } => {
                let l = weighted.next().expect("a layer per weighted layer");
                let dense = l.dense();
                let mut y = vec![0.0; output.iter().product()];
                for o in 0..output[0] {
                    for oh in 0..output[1] {
                        for ow in 0..output[2] {
                            let mut sum = l.bias[o] as f64;
                            for c in 0..input[0] {
                                for i in 0..kh {
                                    for j in 0..kw {
                                        let h = (oh * sh + i).checked_sub(ph);
                                        let w = (ow * sw + j).checked_sub(pw);
                                        let (Some(h), Some(w)) = (h, w) else { continue };
                                        if h >= input[1] || w >= input[2] {
                                            continue;
                                        }
                                        let weight = dense[o * l.cols + (c * kh + i) * kw + j];
                                        sum += weight as f64 * a[pixel(input, c, h, w)];
                                    }
                                }
                            }
                            y[pixel(output, o, oh, ow)] = sum;
                        }
                    }
                }
                y
            }
            Layer::Maxpool2d { kernel, stride } | Layer::Avgpool2d { kernel, stride } => {
                let [sh, sw] = stride.unwrap_or(kernel);
                let max = matches!(layer, Layer::Maxpool2d { .. });
                let mut y = vec![0.0; output.iter().product()];
                for c in 0..output[0] {
                    for oh in 0..output[1] {
                        for ow in 0..output[2] {
                            let window: Vec<f64> = (0..kernel[0])
                                .flat_map(|i| (0..kernel[1]).map(move |j| (i, j)))
                                .map(|(i, j)| a[pixel(input, c, oh * sh + i, ow * sw + j)])
                                .collect();
                            y[pixel(output, c, oh, ow)] = if max {
                                window.iter().copied().fold(f64::NEG_INFINITY, f64::max)
                            } else {
                                window.iter().sum::<f64>() / window.len() as f64
                            };
                        }
                    }
                }
                y
            }
            Layer::Relu => a.iter().map(|v| v.max(0.0)).collect(),
            Layer::Flatten => a,
        };
    }
    a
}

/// The same layers as a dense `Network` with masks.
pub fn net_of(graph: &Graph, layers: &[CsrParts]) -> Network {
    let mut net = Network::zeros(graph);
    for (linear, l) in net.layers.iter_mut().zip(layers) {
        linear.weight = l.dense();
        linear.bias = l.bias.clone();
        linear.mask = vec![0; l.rows * l.cols];
        for r in 0..l.rows {
            for k in l.indptr[r] as usize..l.indptr[r + 1] as usize {
                linear.mask[r * l.cols + l.indices[k] as usize] = 1;
            }
        }
    }
    net
}

pub fn assert_logits_close(got: &[f32], want: &[f64], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g as f64 - w).abs() <= 1e-4 * (1.0 + w.abs()),
            "{what}: logit {i}: got {g}, want {w}"
        );
    }
}
