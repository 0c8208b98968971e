//! The model graph: a sequence of layers applied to one example of shape `input`
//! (`[features]` or `[channels, height, width]`; the batch is implicit). The last layer's
//! output is the logits. Every crate sees a model through this one type; pruning, masks,
//! checkpoints and export see only its weighted layers ([`Graph::weighted`]), never the kind.
//!
//! A graph is checked when it is built: shapes must chain (a conv's output may not be empty,
//! a linear's `in` must match, a `flatten` must come before a linear on images), names of
//! weighted layers must be unique and non-empty. Errors name the layer.
//!
//! ```
//! use ticket_core::Graph;
//! // The MLP shorthand: fc1..fcN with ReLU between them.
//! let mlp: Graph = "784-300-100-10".parse().unwrap();
//! assert_eq!(mlp.layer_names(), ["fc1", "fc2", "fc3"]);
//! assert_eq!(mlp.dense_weights(), 266_200);
//! assert_eq!(mlp.to_string(), "784-300-100-10");
//! // The JSON form stored in files (`__metadata__["graph"]`).
//! let lenet5 = Graph::from_json(r#"{"input":[1,28,28],"layers":[
//!   {"op":"conv2d","name":"conv1","in":1,"out":20,"kernel":[5,5],"stride":[1,1],"padding":[0,0]},
//!   {"op":"relu"},{"op":"maxpool2d","kernel":[2,2],"stride":[2,2]},
//!   {"op":"conv2d","name":"conv2","in":20,"out":50,"kernel":[5,5],"stride":[1,1],"padding":[0,0]},
//!   {"op":"relu"},{"op":"maxpool2d","kernel":[2,2],"stride":[2,2]},{"op":"flatten"},
//!   {"op":"linear","name":"fc1","in":800,"out":500},{"op":"relu"},
//!   {"op":"linear","name":"fc2","in":500,"out":10}]}"#).unwrap();
//! assert_eq!(lenet5.dense_weights(), 430_500);
//! assert_eq!(lenet5.weighted()[1].dims, [50, 20, 5, 5]);
//! ```

use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The most parameters (weights and biases) a model may have: 2^32 - 1, the most entries a
/// layer's U32 `indptr` can count in the CSR format, and 16 GiB of f32, beyond any model this
/// toolkit trains. Sizes past it come from a corrupt file or a typo and would otherwise
/// overflow counts or ask for impossible allocations.
pub const MAX_PARAMS: usize = u32::MAX as usize;

/// One layer of a graph, as stored in files (`{"op": "conv2d", ...}`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase", deny_unknown_fields)]
pub enum Layer {
    /// `y = W x + b`, weight `[out, in]` (PyTorch `nn.Linear`).
    Linear {
        name: String,
        #[serde(rename = "in")]
        inputs: usize,
        #[serde(rename = "out")]
        outputs: usize,
    },
    /// Cross-correlation as PyTorch `nn.Conv2d` with groups 1, dilation 1, zero padding;
    /// weight `[out, in, kh, kw]`.
    Conv2d {
        name: String,
        #[serde(rename = "in")]
        inputs: usize,
        #[serde(rename = "out")]
        outputs: usize,
        kernel: [usize; 2],
        #[serde(default = "one_one")]
        stride: [usize; 2],
        #[serde(default)]
        padding: [usize; 2],
    },
    Relu,
    /// No padding, floor mode; `stride` defaults to `kernel`.
    Maxpool2d {
        kernel: [usize; 2],
        #[serde(default)]
        stride: Option<[usize; 2]>,
    },
    /// No padding, floor mode; `stride` defaults to `kernel`.
    Avgpool2d {
        kernel: [usize; 2],
        #[serde(default)]
        stride: Option<[usize; 2]>,
    },
    /// `[C, H, W]` to `[C*H*W]` in C order, as `torch.flatten(x, 1)`.
    Flatten,
}

fn one_one() -> [usize; 2] {
    [1, 1]
}

impl Layer {
    /// The op name as written in files.
    pub fn op(&self) -> &'static str {
        match self {
            Layer::Linear { .. } => "linear",
            Layer::Conv2d { .. } => "conv2d",
            Layer::Relu => "relu",
            Layer::Maxpool2d { .. } => "maxpool2d",
            Layer::Avgpool2d { .. } => "avgpool2d",
            Layer::Flatten => "flatten",
        }
    }

    /// The name of a weighted layer; `None` for the others.
    pub fn name(&self) -> Option<&str> {
        match self {
            Layer::Linear { name, .. } | Layer::Conv2d { name, .. } => Some(name),
            _ => None,
        }
    }

    /// The full weight shape of a weighted layer: `[out, in]` or `[out, in, kh, kw]`.
    pub fn weight_dims(&self) -> Option<Vec<usize>> {
        match *self {
            Layer::Linear { inputs, outputs, .. } => Some(vec![outputs, inputs]),
            Layer::Conv2d { inputs, outputs, kernel, .. } => {
                Some(vec![outputs, inputs, kernel[0], kernel[1]])
            }
            _ => None,
        }
    }

    /// What this layer makes of an input of shape `input`, or why it cannot take it (importers
    /// follow shapes through a chain as they build it).
    pub fn output_shape(&self, input: &[usize]) -> std::result::Result<Vec<usize>, String> {
        match *self {
            Layer::Linear { inputs, outputs, .. } => match input {
                [features] if *features == inputs => Ok(vec![outputs]),
                [features] => {
                    Err(format!("has in = {inputs}, but its input has {features} features"))
                }
                _ => Err(format!(
                    "takes a vector, but its input has shape {input:?} (a flatten is missing)"
                )),
            },
            Layer::Conv2d { inputs, outputs, kernel, stride, padding, .. } => {
                let [c, h, w] = image(input)?;
                if c != inputs {
                    return Err(format!("has in = {inputs}, but its input has {c} channels"));
                }
                let [oh, ow] = window_output([h, w], kernel, stride, padding)?;
                Ok(vec![outputs, oh, ow])
            }
            Layer::Maxpool2d { kernel, stride } | Layer::Avgpool2d { kernel, stride } => {
                let [c, h, w] = image(input)?;
                let [oh, ow] = window_output([h, w], kernel, stride.unwrap_or(kernel), [0, 0])?;
                Ok(vec![c, oh, ow])
            }
            Layer::Relu => Ok(input.to_vec()),
            Layer::Flatten => Ok(vec![elements(input).ok_or("its input is too large")?]),
        }
    }
}

/// The number of values in a tensor of shape `dims`, `None` past [`MAX_PARAMS`].
fn elements(dims: &[usize]) -> Option<usize> {
    dims.iter().try_fold(1usize, |p, &d| p.checked_mul(d)).filter(|&n| n <= MAX_PARAMS)
}

/// `[C, H, W]` or an error saying what the input is instead.
fn image(input: &[usize]) -> std::result::Result<[usize; 3], String> {
    match *input {
        [c, h, w] => Ok([c, h, w]),
        _ => Err(format!("takes [channels, height, width], but its input has shape {input:?}")),
    }
}

/// Output height and width of a sliding window; an error when it would be empty.
fn window_output(
    size: [usize; 2],
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 2],
) -> std::result::Result<[usize; 2], String> {
    if kernel.contains(&0) || stride.contains(&0) {
        return Err(format!("kernel {kernel:?} and stride {stride:?} must be positive"));
    }
    let mut out = [0; 2];
    for d in 0..2 {
        let padded = padding[d].checked_mul(2).and_then(|p| size[d].checked_add(p));
        let padded = padded.ok_or("padding overflows")?;
        if padded < kernel[d] {
            return Err(format!(
                "kernel {kernel:?} is larger than its input {size:?} (padded by {padding:?}): \
                 the output would be empty"
            ));
        }
        out[d] = (padded - kernel[d]) / stride[d] + 1;
    }
    Ok(out)
}

/// Shape of one weighted layer's weight seen as a matrix: `rows` output units or channels,
/// `cols` inputs per row (`in` for linear, `in*kh*kw` for conv2d).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LayerShape {
    pub rows: usize,
    pub cols: usize,
}

impl LayerShape {
    pub fn len(&self) -> usize {
        self.rows * self.cols
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A weighted layer as pruning, masks, checkpoints and export see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Weighted {
    pub name: String,
    /// Index of the layer in [`Graph::layers`].
    pub index: usize,
    /// The full weight shape, `[out, in]` or `[out, in, kh, kw]`.
    pub dims: Vec<usize>,
    /// The same weight as a `[rows, cols]` matrix (C order).
    pub shape: LayerShape,
}

/// A checked sequence of layers with the shape of one example.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "GraphJson", into = "GraphJson")]
pub struct Graph {
    input: Vec<usize>,
    layers: Vec<Layer>,
    /// Output shape of each layer, computed once when the graph is built.
    shapes: Vec<Vec<usize>>,
    weighted: Vec<Weighted>,
}

/// The stored form of a graph, before it is checked.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct GraphJson {
    input: Vec<usize>,
    layers: Vec<Layer>,
}

impl TryFrom<GraphJson> for Graph {
    type Error = Error;
    fn try_from(g: GraphJson) -> Result<Graph> {
        Graph::new(g.input, g.layers)
    }
}

impl From<Graph> for GraphJson {
    fn from(g: Graph) -> GraphJson {
        GraphJson { input: g.input, layers: g.layers }
    }
}

impl Graph {
    /// Checks that the layers chain from `input` to a vector of logits.
    pub fn new(input: Vec<usize>, mut layers: Vec<Layer>) -> Result<Graph> {
        // Files always carry a pool's stride, so readers never need the default.
        for layer in &mut layers {
            if let Layer::Maxpool2d { kernel, stride } | Layer::Avgpool2d { kernel, stride } = layer
            {
                stride.get_or_insert(*kernel);
            }
        }
        if !(input.len() == 1 || input.len() == 3) || input.contains(&0) {
            return Err(Error::usage(format!(
                "a model input is [features] or [channels, height, width] with positive sizes, \
                 got {input:?}"
            )));
        }
        if elements(&input).is_none() {
            return Err(Error::usage(format!("the model input {input:?} is too large")));
        }
        let mut shapes = Vec::with_capacity(layers.len());
        let mut weighted: Vec<Weighted> = Vec::new();
        let mut params = 0usize;
        let mut shape = input.clone();
        for (index, layer) in layers.iter().enumerate() {
            let at = || match layer.name() {
                Some(name) => format!("layer {index} ({} `{name}`)", layer.op()),
                None => format!("layer {index} ({})", layer.op()),
            };
            shape =
                layer.output_shape(&shape).map_err(|p| Error::usage(format!("{} {p}", at())))?;
            if shape.contains(&0) {
                return Err(Error::usage(format!("{} has an empty output {shape:?}", at())));
            }
            if elements(&shape).is_none() {
                return Err(Error::usage(format!("{} has too large an output {shape:?}", at())));
            }
            if let (Some(name), Some(dims)) = (layer.name(), layer.weight_dims()) {
                if name.is_empty() || name.chars().any(|c| c.is_control() || c == ',') {
                    return Err(Error::usage(format!("{} needs a plain, non-empty name", at())));
                }
                if weighted.iter().any(|w| w.name == name) {
                    return Err(Error::usage(format!("{} repeats the name `{name}`", at())));
                }
                let layer_params = dims
                    .iter()
                    .try_fold(1usize, |p, &d| p.checked_mul(d))
                    .and_then(|w| w.checked_add(dims[0]));
                params = match layer_params.and_then(|p| params.checked_add(p)) {
                    Some(p) if p <= MAX_PARAMS => p,
                    _ => {
                        return Err(Error::usage(format!(
                            "the model has more than {MAX_PARAMS} parameters (at {})",
                            at()
                        )))
                    }
                };
                let shape = LayerShape { rows: dims[0], cols: dims[1..].iter().product() };
                weighted.push(Weighted { name: name.to_string(), index, dims, shape });
            }
            shapes.push(shape.clone());
        }
        if weighted.is_empty() {
            return Err(Error::usage("a model needs at least one linear or conv2d layer"));
        }
        if shape.len() != 1 {
            return Err(Error::usage(format!(
                "the last layer gives shape {shape:?}, but logits are a vector (a flatten and a \
                 linear layer are missing)"
            )));
        }
        Ok(Graph { input, layers, shapes, weighted })
    }

    /// The multilayer perceptron `sizes[0]-sizes[1]-...`: linear layers `fc1..fcN`, ReLU
    /// between them, none after the last.
    pub fn mlp(sizes: &[usize]) -> Result<Graph> {
        if sizes.len() < 2 {
            return Err(Error::usage(format!(
                "an architecture needs at least two layer sizes, got {sizes:?}"
            )));
        }
        if sizes.contains(&0) {
            return Err(Error::usage(format!("layer sizes must be positive, got {sizes:?}")));
        }
        let mut layers = Vec::new();
        for (i, w) in sizes.windows(2).enumerate() {
            if i > 0 {
                layers.push(Layer::Relu);
            }
            layers.push(Layer::Linear {
                name: format!("fc{}", i + 1),
                inputs: w[0],
                outputs: w[1],
            });
        }
        Graph::new(vec![sizes[0]], layers).map_err(|e| match e {
            Error::Usage(p) if p.contains("parameters") => Error::usage(format!(
                "architecture {} has more than {MAX_PARAMS} parameters",
                join_sizes(sizes)
            )),
            e => e,
        })
    }

    /// The graph stored in files' `__metadata__["graph"]`.
    pub fn from_json(text: &str) -> Result<Graph> {
        serde_json::from_str(text).map_err(|e| Error::usage(format!("graph: {e}")))
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a graph serializes")
    }

    /// The widths of an MLP in the shorthand's sense (linear layers `fc1..fcN` with ReLU
    /// between them); `None` for any other graph.
    pub fn mlp_sizes(&self) -> Option<Vec<usize>> {
        let mut sizes = vec![*self.input.first()?];
        if self.input.len() != 1 {
            return None;
        }
        for (i, layer) in self.layers.iter().enumerate() {
            match layer {
                Layer::Linear { name, outputs, .. } if i % 2 == 0 => {
                    if *name != format!("fc{}", sizes.len()) {
                        return None;
                    }
                    sizes.push(*outputs);
                }
                Layer::Relu if i % 2 == 1 => {}
                _ => return None,
            }
        }
        (self.layers.len() % 2 == 1).then_some(sizes)
    }

    pub fn layers(&self) -> &[Layer] {
        &self.layers
    }

    /// The shape of one example, `[features]` or `[C, H, W]`.
    pub fn input_shape(&self) -> &[usize] {
        &self.input
    }

    /// Output shape of layer `i`.
    pub fn output_shape(&self, i: usize) -> &[usize] {
        &self.shapes[i]
    }

    /// Input shape of layer `i`.
    pub fn input_shape_of(&self, i: usize) -> &[usize] {
        if i == 0 {
            &self.input
        } else {
            &self.shapes[i - 1]
        }
    }

    /// Values per example: the product of the input shape.
    pub fn inputs(&self) -> usize {
        self.input.iter().product()
    }

    /// Number of logits (classes).
    pub fn outputs(&self) -> usize {
        self.shapes.last().expect("a graph has layers")[0]
    }

    /// The weighted layers (linear and conv2d) in order.
    pub fn weighted(&self) -> &[Weighted] {
        &self.weighted
    }

    pub fn num_weighted(&self) -> usize {
        self.weighted.len()
    }

    /// Names of the weighted layers in order.
    pub fn layer_names(&self) -> Vec<String> {
        self.weighted.iter().map(|w| w.name.clone()).collect()
    }

    /// Matrix shapes of the weighted layers in order.
    pub fn layer_shapes(&self) -> Vec<LayerShape> {
        self.weighted.iter().map(|w| w.shape).collect()
    }

    /// Number of weights (biases excluded), the denominator of "% weights remaining".
    pub fn dense_weights(&self) -> usize {
        self.weighted.iter().map(|w| w.shape.len()).sum()
    }

    /// Weights plus biases.
    pub fn dense_params(&self) -> usize {
        self.weighted.iter().map(|w| w.shape.len() + w.shape.rows).sum()
    }

    /// True for the MLPs the shorthand `784-300-100-10` describes.
    pub fn is_mlp(&self) -> bool {
        self.mlp_sizes().is_some()
    }
}

fn join_sizes(sizes: &[usize]) -> String {
    sizes.iter().map(usize::to_string).collect::<Vec<_>>().join("-")
}

/// `784-300-100-10` for an MLP; otherwise the input shape and one word per layer, e.g.
/// `1x28x28 conv1(20@5x5) relu maxpool(2x2) ... fc2(10)`.
impl fmt::Display for Graph {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(sizes) = self.mlp_sizes() {
            return f.write_str(&join_sizes(&sizes));
        }
        let dims: Vec<String> = self.input.iter().map(usize::to_string).collect();
        f.write_str(&dims.join("x"))?;
        for layer in &self.layers {
            match layer {
                Layer::Linear { name, outputs, .. } => write!(f, " {name}({outputs})")?,
                Layer::Conv2d { name, outputs, kernel, .. } => {
                    write!(f, " {name}({outputs}@{}x{})", kernel[0], kernel[1])?
                }
                Layer::Maxpool2d { kernel, .. } => {
                    write!(f, " maxpool({}x{})", kernel[0], kernel[1])?
                }
                Layer::Avgpool2d { kernel, .. } => {
                    write!(f, " avgpool({}x{})", kernel[0], kernel[1])?
                }
                Layer::Relu => f.write_str(" relu")?,
                Layer::Flatten => f.write_str(" flatten")?,
            }
        }
        Ok(())
    }
}

/// Parses the MLP shorthand `784-300-100-10`.
impl FromStr for Graph {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let sizes = s
            .split('-')
            .map(|p| p.trim().parse::<usize>())
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|_| Error::usage(format!("architecture `{s}` is not like 784-300-100-10")))?;
        Graph::mlp(&sizes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conv(name: &str, inputs: usize, outputs: usize, k: usize, pad: usize) -> Layer {
        Layer::Conv2d {
            name: name.into(),
            inputs,
            outputs,
            kernel: [k, k],
            stride: [1, 1],
            padding: [pad, pad],
        }
    }

    fn linear(name: &str, inputs: usize, outputs: usize) -> Layer {
        Layer::Linear { name: name.into(), inputs, outputs }
    }

    fn pool() -> Layer {
        Layer::Maxpool2d { kernel: [2, 2], stride: Some([2, 2]) }
    }

    #[test]
    fn lenet_counts_match_the_paper() {
        let graph: Graph = "784-300-100-10".parse().unwrap();
        assert_eq!(graph.dense_weights(), 784 * 300 + 300 * 100 + 100 * 10);
        assert_eq!(graph.dense_params(), 266_200 + 410);
        assert_eq!(graph.to_string(), "784-300-100-10");
        assert_eq!(graph.layer_shapes()[0], LayerShape { rows: 300, cols: 784 });
        assert!(graph.is_mlp());
    }

    #[test]
    fn lenet5_shapes_follow_caffe() {
        let layers = vec![
            conv("conv1", 1, 20, 5, 0),
            Layer::Relu,
            pool(),
            conv("conv2", 20, 50, 5, 0),
            Layer::Relu,
            pool(),
            Layer::Flatten,
            linear("fc1", 800, 500),
            Layer::Relu,
            linear("fc2", 500, 10),
        ];
        let g = Graph::new(vec![1, 28, 28], layers).unwrap();
        assert_eq!(g.output_shape(0), [20, 24, 24]);
        assert_eq!(g.output_shape(2), [20, 12, 12]);
        assert_eq!(g.output_shape(5), [50, 4, 4]);
        assert_eq!(g.output_shape(6), [800]);
        // Han et al. 2015, Table 2: 0.5K + 25K + 400K + 5K weights.
        assert_eq!(g.dense_weights(), 500 + 25_000 + 400_000 + 5_000);
        assert_eq!(g.weighted()[1].shape, LayerShape { rows: 50, cols: 500 });
        assert!(!g.is_mlp());
        let back = Graph::from_json(&g.to_json()).unwrap();
        assert_eq!(back, g);
        assert_eq!(
            g.to_string(),
            "1x28x28 conv1(20@5x5) relu maxpool(2x2) conv2(50@5x5) relu maxpool(2x2) flatten \
             fc1(500) relu fc2(10)"
        );
    }

    #[test]
    fn padding_and_stride_follow_pytorch() {
        // nn.Conv2d(3, 8, 3, stride=2, padding=1) on 3x7x9: floor((7+2-3)/2)+1 = 4, 5.
        let layers = vec![
            Layer::Conv2d {
                name: "c".into(),
                inputs: 3,
                outputs: 8,
                kernel: [3, 3],
                stride: [2, 2],
                padding: [1, 1],
            },
            Layer::Avgpool2d { kernel: [3, 2], stride: None },
            Layer::Flatten,
            linear("fc", 16, 2),
        ];
        let g = Graph::new(vec![3, 7, 9], layers).unwrap();
        assert_eq!(g.output_shape(0), [8, 4, 5]);
        assert_eq!(g.output_shape(1), [8, 1, 2]);
        assert_eq!(g.output_shape(2), [16]);
        let mut layers = g.layers().to_vec();
        layers[3] = linear("fc", 8, 2);
        let err = Graph::new(g.input_shape().to_vec(), layers).unwrap_err();
        assert!(err.to_string().contains("layer 3 (linear `fc`) has in = 8"), "{err}");
    }

    #[test]
    fn bad_graphs_are_refused_naming_the_layer() {
        let cases: Vec<(Vec<usize>, Vec<Layer>, &str)> = vec![
            (
                vec![1, 4, 4],
                vec![conv("c1", 1, 2, 5, 0)],
                "layer 0 (conv2d `c1`) kernel [5, 5] is larger",
            ),
            (
                vec![1, 8, 8],
                vec![conv("c1", 1, 2, 3, 0), linear("fc", 72, 2)],
                "a flatten is missing",
            ),
            (
                vec![2, 8, 8],
                vec![conv("c1", 1, 2, 3, 0)],
                "has in = 1, but its input has 2 channels",
            ),
            (vec![10], vec![linear("fc1", 11, 2)], "layer 0 (linear `fc1`) has in = 11"),
            (vec![10], vec![linear("a", 10, 4), linear("a", 4, 2)], "repeats the name `a`"),
            (vec![10], vec![linear("", 10, 2)], "non-empty name"),
            (vec![10], vec![Layer::Relu], "at least one linear or conv2d"),
            (vec![10], vec![pool()], "takes [channels, height, width]"),
            (vec![1, 8, 8], vec![conv("c", 1, 2, 3, 0)], "logits are a vector"),
            (vec![0, 8, 8], vec![conv("c", 1, 2, 3, 0)], "positive sizes"),
            (vec![4, 4], vec![linear("fc", 16, 2)], "[features] or [channels"),
        ];
        for (input, layers, want) in cases {
            let err = Graph::new(input, layers).unwrap_err().to_string();
            assert!(err.contains(want), "{err} (wanted {want})");
        }
    }

    #[test]
    fn json_rejects_unknown_ops_and_fields() {
        let err = Graph::from_json(r#"{"input":[4],"layers":[{"op":"gelu"}]}"#).unwrap_err();
        assert!(err.to_string().contains("gelu"), "{err}");
        let err = Graph::from_json(
            r#"{"input":[4],"layers":[{"op":"linear","name":"a","in":4,"out":2,"groups":2}]}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("groups"), "{err}");
        assert!(Graph::from_json(r#"{"input":[4],"layers":[]}"#).is_err());
        assert!(Graph::from_json("not json").is_err());
    }

    #[test]
    fn mlp_shorthand_is_recognised_only_for_mlps() {
        let g = Graph::new(vec![4], vec![linear("fc1", 4, 3), Layer::Relu, linear("fc2", 3, 2)])
            .unwrap();
        assert_eq!(g.mlp_sizes(), Some(vec![4, 3, 2]));
        let renamed =
            Graph::new(vec![4], vec![linear("a", 4, 3), Layer::Relu, linear("b", 3, 2)]).unwrap();
        assert_eq!(renamed.mlp_sizes(), None);
        let no_relu = Graph::new(vec![4], vec![linear("fc1", 4, 3), linear("fc2", 3, 2)]).unwrap();
        assert_eq!(no_relu.mlp_sizes(), None);
        assert_eq!(no_relu.to_string(), "4 fc1(3) fc2(2)");
    }

    #[test]
    fn rejects_nonsense_shorthand() {
        assert!("784".parse::<Graph>().is_err());
        assert!("784-0-10".parse::<Graph>().is_err());
        assert!("784-x-10".parse::<Graph>().is_err());
    }

    #[test]
    fn parameter_counts_past_the_limit_are_refused() {
        // 65,535 x 65,535 weights + 65,535 biases = 2^32 - 2^16: just fits.
        let fits: Graph = "65535-65535".parse().unwrap();
        assert_eq!(fits.dense_params(), 65_535 * 65_536);
        assert!(fits.dense_params() <= MAX_PARAMS);
        // One more output: 65,536 x 65,536 = 2^32 parameters.
        let err = "65535-65536".parse::<Graph>().unwrap_err().to_string();
        assert_eq!(err, "architecture 65535-65536 has more than 4294967295 parameters");
        // Products and sums that overflow usize are refused, not wrapped.
        for sizes in [vec![1 << 32, 1 << 32, 10], vec![usize::MAX, 2], vec![2, usize::MAX]] {
            assert!(Graph::mlp(&sizes).is_err());
        }
        // Many layers that each fit but together do not.
        assert!(Graph::mlp(&[60_000; 3]).is_err());
        let huge = Layer::Conv2d {
            name: "c".into(),
            inputs: 1 << 20,
            outputs: 1 << 20,
            kernel: [1, 1],
            stride: [1, 1],
            padding: [0, 0],
        };
        assert!(Graph::new(vec![1 << 20, 1, 1], vec![huge, Layer::Flatten]).is_err());
    }
}
