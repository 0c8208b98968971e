//! An ONNX graph as a chain of ticket layers. Nodes are visited in file order (ONNX requires
//! topological order); each one must read the value the previous layer produced, so a
//! branch, a skip connection or a second input is refused as "not a chain". Constant
//! sub-computations fold first ([`super::constants`]); `BatchNormalization` and a bias `Add`
//! fold into the conv or linear layer right before them; `Dropout` and `Identity` vanish.

use super::constants::{self, attribute, int_attr, ints_attr, Const, Int};
use super::proto::{data_type, GraphProto, NodeProto};
use std::collections::{HashMap, HashSet};
use ticket_core::graph::MAX_PARAMS;
use ticket_core::{Layer, LayerParams, LayerShape};

/// The ops a chain may hold, for the message that refuses any other.
pub const SUPPORTED: &str = "Gemm, MatMul, Add (a bias), Conv, Relu, MaxPool, AveragePool, \
GlobalAveragePool, ReduceMean (over H and W), Flatten, Reshape (to [N, -1]), \
BatchNormalization, Dropout, Identity";

/// What a graph becomes: the input shape of one example, layers, one `LayerParams` per
/// weighted layer, and what was folded or dropped on the way.
#[derive(Debug)]
pub struct Chain {
    pub input: Vec<usize>,
    pub layers: Vec<Layer>,
    pub params: Vec<LayerParams>,
    pub notes: Vec<String>,
}

struct Walker<'g> {
    initializers: HashMap<&'g str, &'g super::proto::TensorProto>,
    consts: HashMap<String, Const>,
    /// Per-example shapes of the values computed from the input.
    activations: HashMap<String, Vec<usize>>,
    current: String,
    shape: Vec<usize>,
    /// The input's batch size when the file fixes one.
    static_batch: Option<usize>,
    layers: Vec<Layer>,
    params: Vec<LayerParams>,
    /// True while `current` is the output of the last weighted layer, untouched.
    fresh: bool,
    notes: Vec<String>,
    names: HashSet<String>,
    /// The initializers' `raw_data` is a file mapping whose pages go back once converted.
    release_pages: bool,
}

/// Converts `graph` or says which node (or input) stops it. With `release_pages` the
/// initializers' `raw_data` must be slices of a file mapping ([`super::mapped`]): each one's
/// pages are released once converted.
pub fn chain(graph: &GraphProto, release_pages: bool) -> Result<Chain, String> {
    if !graph.sparse_initializer.is_empty() {
        return Err("has sparse initializers, which are not supported".into());
    }
    let initializers: HashMap<&str, _> =
        graph.initializer.iter().map(|t| (t.name.as_str(), t)).collect();
    let inputs: Vec<_> =
        graph.input.iter().filter(|i| !initializers.contains_key(i.name.as_str())).collect();
    let [input] = inputs.as_slice() else {
        return Err(format!(
            "has {} graph inputs ({}); a chain takes one",
            inputs.len(),
            inputs.iter().map(|i| format!("`{}`", i.name)).collect::<Vec<_>>().join(", ")
        ));
    };
    let (static_batch, shape) = input_shape(input)?;
    let mut w = Walker {
        initializers,
        consts: HashMap::new(),
        activations: HashMap::from([(input.name.clone(), shape.clone())]),
        current: input.name.clone(),
        shape,
        static_batch,
        layers: Vec::new(),
        params: Vec::new(),
        fresh: false,
        notes: Vec::new(),
        names: HashSet::new(),
        release_pages,
    };
    for (i, node) in graph.node.iter().enumerate() {
        w.node(node)
            .map_err(|p| format!("node {} (op {}) {p}", node_name(node, i), node.op_type))?;
    }
    let outputs: Vec<&str> = graph.output.iter().map(|o| o.name.as_str()).collect();
    if outputs != [w.current.as_str()] {
        return Err(format!(
            "is not a chain: its outputs are [{}], but the last layer computes `{}`",
            outputs.join(", "),
            w.current
        ));
    }
    if w.shape.len() != 1 {
        return Err(format!("ends with shape {:?}, not a vector of logits", w.shape));
    }
    let input = w.activations.remove(&input.name).expect("inserted above");
    Ok(Chain { input, layers: w.layers, params: w.params, notes: w.notes })
}

fn node_name(node: &NodeProto, index: usize) -> String {
    if node.name.is_empty() {
        format!("#{index}")
    } else {
        format!("`{}`", node.name)
    }
}

/// `(batch if fixed, shape of one example)` of the graph input: `[N, F]` or `[N, C, H, W]`.
fn input_shape(
    input: &super::proto::ValueInfoProto,
) -> Result<(Option<usize>, Vec<usize>), String> {
    let at = || format!("input `{}`", input.name);
    let tensor = input.r#type.as_ref().and_then(|t| t.tensor_type.as_ref());
    let tensor = tensor.ok_or_else(|| format!("{} is not a tensor", at()))?;
    if tensor.elem_type != data_type::FLOAT {
        return Err(format!(
            "{} has data type {}, expected FLOAT",
            at(),
            data_type::name(tensor.elem_type)
        ));
    }
    let dims = tensor.shape.as_ref().map(|s| s.dim.as_slice()).unwrap_or_default();
    if !(dims.len() == 2 || dims.len() == 4) {
        return Err(format!(
            "{} has rank {}; expected [N, features] or [N, C, H, W]",
            at(),
            dims.len()
        ));
    }
    let batch = dims[0].dim_value.and_then(|d| usize::try_from(d).ok()).filter(|&d| d > 0);
    let shape = dims[1..]
        .iter()
        .map(|d| match d.dim_value {
            Some(v) if v > 0 => Ok(v as usize),
            _ => Err(format!("{} needs fixed sizes past the batch dimension", at())),
        })
        .collect::<Result<Vec<_>, _>>()?;
    if !fits(&shape) {
        return Err(format!("{} has too large a shape {shape:?}", at()));
    }
    Ok((batch, shape))
}

/// Whether a value of shape `dims` has at most [`MAX_PARAMS`] elements.
fn fits(dims: &[usize]) -> bool {
    dims.iter().try_fold(1usize, |p, &d| p.checked_mul(d)).is_some_and(|n| n <= MAX_PARAMS)
}

impl Walker<'_> {
    fn node(&mut self, node: &NodeProto) -> Result<(), String> {
        if !(node.domain.is_empty() || node.domain == "ai.onnx") {
            return Err(format!("is in domain `{}`, which is not supported", node.domain));
        }
        if let Some(a) = node.attribute.iter().find(|a| !a.ref_attr_name.is_empty()) {
            return Err(format!("refers to attribute `{}` of a function", a.name));
        }
        let inputs: Vec<&str> =
            node.input.iter().map(String::as_str).filter(|n| !n.is_empty()).collect();
        for name in &inputs {
            if !self.activations.contains_key(*name)
                && !self.consts.contains_key(*name)
                && !self.initializers.contains_key(name)
            {
                return Err(format!(
                    "reads `{name}`, which is neither an initializer nor an earlier output"
                ));
            }
        }
        let output = node.output.first().ok_or("has no output")?.clone();
        let data: Vec<&str> =
            inputs.iter().copied().filter(|n| self.activations.contains_key(*n)).collect();
        if node.op_type == "Shape" {
            let [x] = data.as_slice() else { return Err("reads no computed value".into()) };
            let value = self.shape_of(x, node);
            self.consts.insert(output, value);
            return Ok(());
        }
        if data.is_empty() {
            if !constants::foldable(&node.op_type) {
                return Err(unsupported());
            }
            let values = inputs.iter().map(|n| self.constant(n)).collect::<Result<Vec<_>, _>>()?;
            let folded = constants::fold(node, &values.iter().collect::<Vec<_>>())?;
            self.consts.insert(output, folded);
            return Ok(());
        }
        if data != [self.current.as_str()] {
            return Err(format!(
                "reads [{}], but a chain reads only the last value, `{}`: the graph is not a chain",
                data.join(", "),
                self.current
            ));
        }
        if node.op_type != "Add" && inputs.first() != Some(&self.current.as_str()) {
            return Err(format!("takes `{}` as its first input, not the last value", inputs[0]));
        }
        let consts = |w: &mut Self| -> Result<Vec<Const>, String> {
            let names: Vec<&str> =
                inputs.iter().copied().filter(|n| !w.activations.contains_key(*n)).collect();
            names.into_iter().map(|n| w.constant(n)).collect()
        };
        let fresh = std::mem::take(&mut self.fresh);
        match node.op_type.as_str() {
            "Gemm" => {
                let c = consts(self)?;
                self.gemm(node, &inputs, c)?;
            }
            "MatMul" => {
                let c = consts(self)?;
                if inputs.first() != Some(&self.current.as_str()) || c.len() != 1 {
                    return Err("must multiply the last value by one constant matrix".into());
                }
                let b = &c[0];
                let [k, n] = matrix(b)?;
                self.linear(&b.origin, n, k, constants::transposed(floats(b)?, k, n), None)?;
            }
            "Add" => {
                let c = consts(self)?;
                self.fresh = fresh;
                self.add_bias(&c)?;
            }
            "Conv" => {
                let c = consts(self)?;
                self.conv(node, c)?;
            }
            "BatchNormalization" => {
                let c = consts(self)?;
                if !fresh {
                    return Err("does not follow a Conv, Gemm or MatMul directly, so it cannot be folded into one".into());
                }
                self.batch_norm(node, &c)?;
                self.fresh = true;
            }
            "Relu" => self.push(Layer::Relu)?,
            "MaxPool" | "AveragePool" => self.pool(node)?,
            "GlobalAveragePool" => self.global_average()?,
            "ReduceMean" => {
                let c = consts(self)?;
                self.reduce_mean(node, &c)?;
            }
            "Flatten" => {
                if int_attr(node, "axis", 1) != 1 {
                    return Err("flattens from an axis other than 1".into());
                }
                self.flatten()?;
            }
            "Reshape" => {
                let c = consts(self)?;
                self.reshape(node, &c)?;
            }
            "Dropout" | "Identity" => {
                self.fresh = fresh;
                if node.op_type == "Dropout" && int_attr(node, "training_mode", 0) != 0 {
                    return Err("runs in training mode".into());
                }
            }
            "Softmax" | "LogSoftmax" => {
                return Err(format!(
                    "is not supported: ticket models end in logits (the argmax is the same); \
                     export the model without its final {}",
                    node.op_type
                ))
            }
            _ => return Err(unsupported()),
        }
        self.activations.insert(output.clone(), self.shape.clone());
        self.current = output;
        Ok(())
    }

    /// `Shape(x)` with the batch dimension kept symbolic.
    fn shape_of(&self, x: &str, node: &NodeProto) -> Const {
        let mut dims = vec![Int::Batch];
        dims.extend(self.activations[x].iter().map(|&d| Int::Known(d as i64)));
        let rank = dims.len() as i64;
        let clamp = |i: i64| (if i < 0 { i + rank } else { i }).clamp(0, rank) as usize;
        let start = clamp(int_attr(node, "start", 0));
        let end = clamp(int_attr(node, "end", rank)).max(start);
        let dims = dims[start..end].to_vec();
        Const::ints(vec![dims.len()], dims)
    }

    fn constant(&mut self, name: &str) -> Result<Const, String> {
        if let Some(c) = self.consts.get(name) {
            return Ok(c.clone());
        }
        let t = self.initializers.get(name).ok_or_else(|| format!("`{name}` is not a constant"))?;
        // Not cached: a weight is read once, and a cached copy would double it in memory.
        let c = Const::from_tensor(t)?;
        if self.release_pages {
            super::mapped::release(&t.raw_data);
        }
        Ok(c)
    }

    fn push(&mut self, layer: Layer) -> Result<(), String> {
        let shape = layer.output_shape(&self.shape)?;
        if !fits(&shape) {
            return Err(format!("has too large an output {shape:?}"));
        }
        self.shape = shape;
        self.layers.push(layer);
        Ok(())
    }

    /// A layer name from the weight's initializer (`fc1.weight` -> `fc1`), or `<kind><n>`.
    fn layer_name(&mut self, origin: &str, kind: &str) -> String {
        let stem = origin.strip_suffix(".weight").unwrap_or(origin);
        let usable = !stem.is_empty()
            && !stem.chars().any(|c| c.is_control() || c == ',')
            && !self.names.contains(stem);
        let name = if usable {
            stem.to_string()
        } else {
            (1..).map(|i| format!("{kind}{i}")).find(|n| !self.names.contains(n)).unwrap()
        };
        self.names.insert(name.clone());
        name
    }

    /// Appends a linear layer `y = W x + b`, `weight` `[out, in]`.
    fn linear(
        &mut self,
        origin: &str,
        out: usize,
        inputs: usize,
        weight: Vec<f32>,
        bias: Option<Vec<f32>>,
    ) -> Result<(), String> {
        if self.shape != [inputs] {
            return Err(format!(
                "takes {inputs} features, but its input has shape {:?}",
                self.shape
            ));
        }
        let name = self.layer_name(origin, "linear");
        self.push(Layer::Linear { name, inputs, outputs: out })?;
        self.weighted(LayerShape { rows: out, cols: inputs }, weight, bias);
        Ok(())
    }

    /// Records a weighted layer's parameters; its zero weights are its mask.
    fn weighted(&mut self, shape: LayerShape, weight: Vec<f32>, bias: Option<Vec<f32>>) {
        let mask = weight.iter().map(|&w| u8::from(w != 0.0)).collect();
        let bias = bias.unwrap_or_else(|| vec![0.0; shape.rows]);
        self.params.push(LayerParams { shape, weight, bias, mask });
        self.fresh = true;
    }

    fn gemm(&mut self, node: &NodeProto, inputs: &[&str], c: Vec<Const>) -> Result<(), String> {
        if inputs.first() != Some(&self.current.as_str()) || !(1..=2).contains(&c.len()) {
            return Err("must take the last value as A and constants as B (and C)".into());
        }
        if int_attr(node, "transA", 0) != 0 {
            return Err("transposes A (transA = 1), which a chain cannot".into());
        }
        let alpha = attribute(node, "alpha").map_or(1.0, |a| a.f);
        let beta = attribute(node, "beta").map_or(1.0, |a| a.f);
        let [r, k] = matrix(&c[0])?;
        let trans_b = int_attr(node, "transB", 0) != 0;
        let out = if trans_b { r } else { k };
        let bias = c.get(1).map(|bias| broadcast_bias(bias, out, false)).transpose()?;
        let b = c.into_iter().next().expect("checked above");
        let origin = b.origin.clone();
        let (inputs, mut weight) = if trans_b {
            (k, into_floats(b)?)
        } else {
            (r, constants::transposed(floats(&b)?, r, k))
        };
        if alpha != 1.0 {
            weight.iter_mut().for_each(|w| *w *= alpha);
        }
        let bias = bias.map(|b| b.into_iter().map(|v| beta * v).collect());
        self.linear(&origin, out, inputs, weight, bias)
    }

    fn add_bias(&mut self, c: &[Const]) -> Result<(), String> {
        let ([bias], true) = (c, self.fresh) else {
            return Err(
                "adds something other than a bias right after a Conv, Gemm or MatMul".into()
            );
        };
        let params = self.params.last_mut().expect("fresh implies a weighted layer");
        let conv = matches!(self.layers.last(), Some(Layer::Conv2d { .. }));
        let add = broadcast_bias(bias, params.shape.rows, conv)?;
        params.bias.iter_mut().zip(add).for_each(|(b, a)| *b += a);
        self.fresh = true;
        Ok(())
    }

    fn conv(&mut self, node: &NodeProto, c: Vec<Const>) -> Result<(), String> {
        let w = c.first().ok_or("has no weight")?;
        let [out, inputs, kh, kw] = w.dims[..] else {
            return Err(format!("has a weight of shape {:?}, expected [out, in, kh, kw]", w.dims));
        };
        if int_attr(node, "group", 1) != 1 {
            return Err("is a grouped convolution (group != 1), which is not supported".into());
        }
        if ints_attr(node, "dilations").is_some_and(|d| d.iter().any(|&d| d != 1)) {
            return Err("is dilated, which is not supported".into());
        }
        if let Some(k) = ints_attr(node, "kernel_shape") {
            if k != [kh as i64, kw as i64] {
                return Err(format!("has kernel_shape {k:?} but a weight of shape {:?}", w.dims));
            }
        }
        let stride = pair(ints_attr(node, "strides"), "strides")?.unwrap_or([1, 1]);
        let padding = padding(node)?;
        let [channels, ..] = image(&self.shape)?;
        if channels != inputs {
            return Err(format!(
                "takes {inputs} channels, but its input has shape {:?}",
                self.shape
            ));
        }
        let bias = match c.get(1) {
            Some(b) => Some(broadcast_bias(b, out, false)?),
            None => None,
        };
        let name = self.layer_name(&w.origin, "conv");
        let weight = into_floats(c.into_iter().next().expect("checked above"))?;
        self.push(Layer::Conv2d { name, inputs, outputs: out, kernel: [kh, kw], stride, padding })?;
        self.weighted(LayerShape { rows: out, cols: inputs * kh * kw }, weight, bias);
        Ok(())
    }

    /// Folds `y = (x - mean) / sqrt(var + eps) * scale + shift` into the layer before.
    fn batch_norm(&mut self, node: &NodeProto, c: &[Const]) -> Result<(), String> {
        if int_attr(node, "training_mode", 0) != 0 {
            return Err("runs in training mode".into());
        }
        let [scale, shift, mean, var] = c else {
            return Err("needs scale, bias, mean and variance as constants".into());
        };
        let eps = attribute(node, "epsilon").map_or(1e-5, |a| a.f);
        let params = self.params.last_mut().expect("fresh implies a weighted layer");
        let rows = params.shape.rows;
        let [scale, shift, mean, var] =
            [scale, shift, mean, var].map(|v| floats(v).map(<[f32]>::to_vec));
        let (scale, shift, mean, var) = (scale?, shift?, mean?, var?);
        if [&scale, &shift, &mean, &var].iter().any(|v| v.len() != rows) {
            return Err(format!("has parameters that are not {rows} values (one per channel)"));
        }
        let cols = params.shape.cols;
        for r in 0..rows {
            let s = scale[r] / (var[r] + eps).sqrt();
            params.weight[r * cols..(r + 1) * cols].iter_mut().for_each(|w| *w *= s);
            params.bias[r] = (params.bias[r] - mean[r]) * s + shift[r];
        }
        self.notes
            .push(format!("BatchNormalization `{}` folded into the layer before it", node.name));
        Ok(())
    }

    fn pool(&mut self, node: &NodeProto) -> Result<(), String> {
        let kernel =
            pair(ints_attr(node, "kernel_shape"), "kernel_shape")?.ok_or("has no kernel_shape")?;
        let stride = pair(ints_attr(node, "strides"), "strides")?.unwrap_or([1, 1]);
        if padding(node)? != [0, 0] {
            return Err("pads its input, which ticket's pooling does not".into());
        }
        if int_attr(node, "ceil_mode", 0) != 0 {
            return Err("rounds its output size up (ceil_mode = 1), which is not supported".into());
        }
        if ints_attr(node, "dilations").is_some_and(|d| d.iter().any(|&d| d != 1)) {
            return Err("is dilated, which is not supported".into());
        }
        // A second output (MaxPool's indices) never becomes a known value: a node that
        // reads it is refused as reading an unknown value.
        let stride = Some(stride);
        self.push(match node.op_type.as_str() {
            "MaxPool" => Layer::Maxpool2d { kernel, stride },
            _ => Layer::Avgpool2d { kernel, stride },
        })
    }

    /// The mean over each channel's whole image, `[C, 1, 1]`.
    fn global_average(&mut self) -> Result<(), String> {
        let [_, h, w] = image(&self.shape)?;
        self.push(Layer::Avgpool2d { kernel: [h, w], stride: Some([h, w]) })
    }

    /// `ReduceMean` over the two spatial axes (what the dynamo exporter writes for
    /// `AdaptiveAvgPool2d(1)`): a global average, flattened when `keepdims` is 0.
    fn reduce_mean(&mut self, node: &NodeProto, c: &[Const]) -> Result<(), String> {
        let axes = match c.first() {
            Some(axes) => axes.known_ints().ok_or("takes its axes as integers")?,
            None => ints_attr(node, "axes").unwrap_or_default(),
        };
        let mut axes: Vec<i64> = axes.iter().map(|&a| if a < 0 { a + 4 } else { a }).collect();
        axes.sort_unstable();
        if self.shape.len() != 3 || axes != [2, 3] {
            return Err(format!("averages over axes {axes:?}; only the spatial axes [2, 3] of an image are supported"));
        }
        self.global_average()?;
        if int_attr(node, "keepdims", 1) == 0 {
            self.push(Layer::Flatten)?;
        }
        Ok(())
    }

    fn flatten(&mut self) -> Result<(), String> {
        if self.shape.len() != 1 {
            self.push(Layer::Flatten)?;
        }
        Ok(())
    }

    /// A reshape of `[N, ...]` to `[N, rest]` is a flatten; nothing else is.
    fn reshape(&mut self, node: &NodeProto, c: &[Const]) -> Result<(), String> {
        let [target] = c else { return Err("needs its shape as a constant".into()) };
        let allow_zero = int_attr(node, "allowzero", 0) != 0;
        let features: usize = self.shape.iter().product();
        let target = target.int_values().ok_or("has a shape of floats")?;
        let batch_ok = |d: &Int| match *d {
            Int::Batch | Int::Known(-1) => true,
            Int::Known(0) => !allow_zero,
            Int::Known(n) => self.static_batch == Some(n as usize),
        };
        let rest_ok = |d: &Int| *d == Int::Known(-1) || *d == Int::Known(features as i64);
        match target {
            [n, rest]
                if batch_ok(n)
                    && rest_ok(rest)
                    && !(*n == Int::Known(-1) && *rest == Int::Known(-1)) =>
            {
                self.flatten()
            }
            _ => Err(format!(
                "reshapes [N, {}] to {}; only a flatten to [N, -1] is supported",
                self.shape.iter().map(usize::to_string).collect::<Vec<_>>().join(", "),
                show(target)
            )),
        }
    }
}

fn unsupported() -> String {
    format!("is not supported (a chain holds {SUPPORTED})")
}

fn show(values: &[Int]) -> String {
    let v: Vec<String> = values
        .iter()
        .map(|v| match v {
            Int::Known(i) => i.to_string(),
            Int::Batch => "N".into(),
        })
        .collect();
    format!("[{}]", v.join(", "))
}

/// The weights `c` holds, moved out of it.
fn into_floats(c: Const) -> Result<Vec<f32>, String> {
    match c.values {
        constants::Values::Float(v) => Ok(v),
        constants::Values::Int(_) => {
            Err(format!("`{}` holds integers where weights belong", c.origin))
        }
    }
}

fn floats(c: &Const) -> Result<&[f32], String> {
    c.floats().ok_or_else(|| format!("`{}` holds integers where weights belong", c.origin))
}

fn matrix(c: &Const) -> Result<[usize; 2], String> {
    match c.dims[..] {
        [r, k] => Ok([r, k]),
        _ => Err(format!("`{}` has shape {:?}, expected a matrix", c.origin, c.dims)),
    }
}

fn image(shape: &[usize]) -> Result<[usize; 3], String> {
    match shape {
        &[c, h, w] => Ok([c, h, w]),
        _ => Err(format!("takes [N, C, H, W], but its input has shape [N, {shape:?}]")),
    }
}

/// A bias of `rows` values: `[rows]`, `[1, rows]` or a scalar for a linear layer; `[rows, 1,
/// 1]` or `[1, rows, 1, 1]` added after a conv (`conv_add`), or `[rows]` as a Conv's own `B`.
fn broadcast_bias(c: &Const, rows: usize, conv_add: bool) -> Result<Vec<f32>, String> {
    let values = floats(c)?;
    let squeezed: Vec<usize> = c.dims.iter().copied().filter(|&d| d != 1).collect();
    let trailing_ones = c.dims.len() >= 3 && c.dims[c.dims.len() - 2..] == [1, 1];
    let ok = match values.len() {
        1 => true,
        n if n == rows => {
            squeezed == [rows]
                && (!conv_add || trailing_ones)
                && (conv_add || c.dims.last() == Some(&rows))
        }
        _ => false,
    };
    if !ok {
        return Err(format!(
            "has a bias `{}` of shape {:?} that is not one value per output ({rows})",
            c.origin, c.dims
        ));
    }
    Ok(if values.len() == 1 { vec![values[0]; rows] } else { values.to_vec() })
}

/// A two-element int attribute as sizes.
fn pair(v: Option<Vec<i64>>, what: &str) -> Result<Option<[usize; 2]>, String> {
    match v.as_deref() {
        None => Ok(None),
        Some(&[a, b]) if a > 0 && b > 0 => Ok(Some([a as usize, b as usize])),
        Some(other) => Err(format!("has {what} {other:?}, expected two positive sizes")),
    }
}

/// Symmetric padding `[top, left, bottom, right]` as `[pad_h, pad_w]`; `auto_pad` other than
/// NOTSET/VALID is refused.
fn padding(node: &NodeProto) -> Result<[usize; 2], String> {
    let auto = attribute(node, "auto_pad").map(|a| String::from_utf8_lossy(&a.s).into_owned());
    if let Some(auto) = auto.filter(|a| !a.is_empty() && a != "NOTSET" && a != "VALID") {
        return Err(format!("has auto_pad {auto}, which is not supported (pad explicitly)"));
    }
    match ints_attr(node, "pads").as_deref() {
        None | Some([]) => Ok([0, 0]),
        Some(&[t, l, b, r]) if t == b && l == r && t >= 0 && l >= 0 => Ok([t as usize, l as usize]),
        Some(other) => {
            Err(format!("has pads {other:?}; only equal padding on both sides is supported"))
        }
    }
}
