//! Random masked models and an independent reader of the raw CSR tensors.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;
use ticket_core::csr_format;
use ticket_core::tensor_file::{OwnedTensor, TensorFile};
use ticket_core::{Graph, Network};

/// splitmix64: deterministic numbers without a dependency.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A weight-like value: sign, mantissa in [0.5, 1), magnitude 10^0 .. 10^-7, so f16
    /// conversion meets normals, subnormals and underflow to zero.
    pub fn weight(&mut self) -> f32 {
        let sign = if self.next() & 1 == 0 { 1.0 } else { -1.0 };
        let scale = 10f64.powi(-((self.next() % 8) as i32));
        (sign * (0.5 + 0.5 * self.unit()) * scale) as f32
    }
}

/// A model of `graph` (the MLP shorthand or graph JSON) keeping each weight with probability
/// `density`; pruned weights are 0.0.
pub fn random_net(graph: &str, density: f64, seed: u64) -> Network {
    let graph: Graph =
        if graph.starts_with('{') { Graph::from_json(graph) } else { graph.parse() }.unwrap();
    random_net_of(&graph, density, seed)
}

/// [`random_net`] for a graph already built.
pub fn random_net_of(graph: &Graph, density: f64, seed: u64) -> Network {
    random_net_per_layer(graph, &vec![density; graph.weighted().len()], seed)
}

/// [`random_net_of`] with one density per weighted layer, in graph order (the per-layer
/// densities of a published ticket, for benchmarks).
pub fn random_net_per_layer(graph: &Graph, densities: &[f64], seed: u64) -> Network {
    let mut rng = Rng(seed);
    let mut net = Network::zeros(graph);
    assert_eq!(densities.len(), net.layers.len(), "one density per weighted layer");
    for (layer, &density) in net.layers.iter_mut().zip(densities) {
        for (w, m) in layer.weight.iter_mut().zip(&mut layer.mask) {
            *w = rng.weight();
            *m = (rng.unit() < density) as u8;
        }
        for b in &mut layer.bias {
            *b = rng.weight();
        }
        layer.apply_mask();
    }
    net
}

/// One layer's arrays exactly as stored, read without ticket-export's decoder.
pub struct RawLayer {
    pub indptr: Vec<u32>,
    pub indices: Vec<u32>,
    pub index_dtype: safetensors::Dtype,
    pub value_dtype: safetensors::Dtype,
    pub value_bytes: Vec<u8>,
    pub shape: Vec<i64>,
    pub bias: Vec<f32>,
}

pub fn raw_layers(path: &Path) -> Vec<RawLayer> {
    let bytes = std::fs::read(path).unwrap();
    let file = TensorFile::parse(&bytes, path).unwrap();
    let names = file.meta("layers").unwrap().split(',').map(str::to_string).collect::<Vec<_>>();
    names
        .iter()
        .map(|name| {
            let indptr = file.view(&csr_format::indptr_name(name)).unwrap();
            let indices = file.view(&csr_format::indices_name(name)).unwrap();
            let values = file.view(&csr_format::values_name(name)).unwrap();
            let shape = file.view(&csr_format::shape_name(name)).unwrap();
            assert_eq!(indptr.dtype(), safetensors::Dtype::U32);
            assert_eq!(shape.dtype(), safetensors::Dtype::I64);
            RawLayer {
                indptr: indptr
                    .data()
                    .chunks(4)
                    .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
                    .collect(),
                indices: match indices.dtype() {
                    safetensors::Dtype::U16 => indices
                        .data()
                        .chunks(2)
                        .map(|c| u16::from_le_bytes(c.try_into().unwrap()) as u32)
                        .collect(),
                    _ => indices
                        .data()
                        .chunks(4)
                        .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
                        .collect(),
                },
                index_dtype: indices.dtype(),
                value_dtype: values.dtype(),
                value_bytes: values.data().to_vec(),
                shape: shape
                    .data()
                    .chunks(8)
                    .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
                    .collect(),
                bias: file.f32(&csr_format::bias_name(name), &[indptr.shape()[0] - 1]).unwrap(),
            }
        })
        .collect()
}

/// The tensors and metadata of a file being edited (`ticket_core::tensor_file::edit_file`).
pub type Tensors = Vec<(String, OwnedTensor)>;
pub type Metadata = BTreeMap<String, String>;

/// The tensor `name` of a file being edited.
pub fn tensor<'a>(t: &'a mut Tensors, name: &str) -> &'a mut OwnedTensor {
    &mut t.iter_mut().find(|(n, _)| n == name).unwrap().1
}
