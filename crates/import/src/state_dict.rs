//! PyTorch state dicts saved as safetensors (`safetensors.torch.save_file(model.state_dict())`):
//! `X.weight` / `X.bias` of `nn.Linear` and `nn.Conv2d` modules, or `torch.nn.utils.prune`'s
//! `X.weight_orig` + `X.weight_mask` (weight = orig * mask, the mask kept exactly). Plain
//! weights keep what is zero as pruned.
//!
//! A state dict records neither the activations nor a conv net's strides, padding and pooling.
//! MLPs are rebuilt as linear layers with ReLU between them ([`crate::order`] finds the order);
//! a conv net needs the graph from a recipe whose layer names match the modules.

use crate::order::{infer_order, natural_cmp, Module};
use crate::ImportOptions;
use half::{bf16, f16};
use safetensors::Dtype;
use std::collections::BTreeMap;
use std::path::Path;
use ticket_core::tensor_file::TensorFile;
use ticket_core::{Graph, Layer, LayerParams, Network, Result};

/// The layer name of a state dict whose tensors have no module prefix.
const LONE: &str = "linear";

/// What a state dict gives one module.
#[derive(Default)]
struct Tensors {
    weight: Option<(Vec<usize>, Vec<f32>)>,
    bias: Option<(Vec<usize>, Vec<f32>)>,
    orig: Option<(Vec<usize>, Vec<f32>)>,
    mask: Option<(Vec<usize>, Vec<f32>)>,
    bias_orig: Option<(Vec<usize>, Vec<f32>)>,
    bias_mask: Option<(Vec<usize>, Vec<f32>)>,
}

/// One module's parameters, masks applied.
struct Params {
    dims: Vec<usize>,
    weight: Vec<f32>,
    mask: Vec<u8>,
    bias: Option<Vec<f32>>,
}

/// The network of a state dict; `true` when it carried `torch.nn.utils.prune` masks.
pub fn read_state_dict(bytes: &[u8], path: &Path, opts: &ImportOptions) -> Result<(Network, bool)> {
    let file = TensorFile::parse(bytes, path)?;
    let mut modules: BTreeMap<String, Tensors> = BTreeMap::new();
    let mut names = file.names();
    names.sort_unstable();
    for name in names {
        // A lone module's state dict (`weight`, `bias`) names no module.
        let (module, param) = name.rsplit_once('.').unwrap_or((LONE, name));
        let t = modules.entry(module.to_string()).or_default();
        let slot = match param {
            "weight" => &mut t.weight,
            "bias" => &mut t.bias,
            "weight_orig" => &mut t.orig,
            "weight_mask" => &mut t.mask,
            "bias_orig" => &mut t.bias_orig,
            "bias_mask" => &mut t.bias_mask,
            _ => {
                return Err(file.error(format!(
                    "tensor `{name}` is not the weight or bias of a linear or conv layer \
                     (normalisation and other layers import from ONNX)"
                )))
            }
        };
        *slot = Some(values(&file, name)?);
    }
    let mut pruned = false;
    let mut params: BTreeMap<String, Params> = BTreeMap::new();
    for (module, t) in modules {
        pruned |= t.mask.is_some();
        params.insert(module.clone(), module_params(&file, &module, t)?);
    }
    if params.is_empty() {
        return Err(file.error("holds no tensors"));
    }
    let graph = match &opts.graph {
        Some(graph) => graph.clone(),
        None => mlp_graph(&file, &params, opts.layers.as_deref())?,
    };
    let layers = match_layers(&file, &graph, params, opts.graph.is_some())?;
    let mut net = Network { graph, layers };
    net.apply_masks();
    Ok((net, pruned))
}

/// A float tensor as f32 (F32, F64, F16, BF16; masks may also be BOOL or U8).
fn values(file: &TensorFile, name: &str) -> Result<(Vec<usize>, Vec<f32>)> {
    let view = file.view(name)?;
    let data = view.data();
    let v: Vec<f32> = match view.dtype() {
        Dtype::F32 => {
            data.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect()
        }
        Dtype::F64 => {
            data.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap()) as f32).collect()
        }
        Dtype::F16 => {
            data.chunks_exact(2).map(|c| f16::from_le_bytes([c[0], c[1]]).to_f32()).collect()
        }
        Dtype::BF16 => {
            data.chunks_exact(2).map(|c| bf16::from_le_bytes([c[0], c[1]]).to_f32()).collect()
        }
        Dtype::BOOL | Dtype::U8 if name.ends_with("_mask") => {
            data.iter().map(|&b| b as f32).collect()
        }
        other => {
            return Err(file.error(format!(
            "tensor `{name}` has dtype {other:?}; weights and biases must be F32, F64, F16 or BF16"
        )))
        }
    };
    Ok((view.shape().to_vec(), v))
}

/// Weight, mask and bias of `module`, after checking that its tensors fit together.
fn module_params(file: &TensorFile, module: &str, t: Tensors) -> Result<Params> {
    let dotted = |p: &str| if file.contains(p) { p.to_string() } else { format!("{module}.{p}") };
    let same_shape =
        |a: &(Vec<usize>, Vec<f32>), b: &(Vec<usize>, Vec<f32>), an: &str, bn: &str| {
            if a.0 != b.0 {
                return Err(file.error(format!(
                    "tensor `{}` has shape {:?} but `{}` has shape {:?}",
                    dotted(bn),
                    b.0,
                    dotted(an),
                    a.0
                )));
            }
            Ok(())
        };
    let check_mask = |m: &(Vec<usize>, Vec<f32>), name: &str| -> Result<Vec<u8>> {
        match m.1.iter().position(|&v| v != 0.0 && v != 1.0) {
            Some(i) => Err(file.error(format!(
                "tensor `{}` holds {} at index {i}: a mask holds only 0 and 1",
                dotted(name),
                m.1[i]
            ))),
            None => Ok(m.1.iter().map(|&v| v as u8).collect()),
        }
    };
    let (dims, weight, mask) = match (t.weight, t.orig, t.mask) {
        (_, Some(orig), Some(mask)) => {
            same_shape(&orig, &mask, "weight_orig", "weight_mask")?;
            let m = check_mask(&mask, "weight_mask")?;
            (orig.0, orig.1, m)
        }
        (Some(w), None, Some(mask)) => {
            same_shape(&w, &mask, "weight", "weight_mask")?;
            let m = check_mask(&mask, "weight_mask")?;
            (w.0, w.1, m)
        }
        (Some(w), None, None) => {
            let m = w.1.iter().map(|&v| u8::from(v != 0.0)).collect();
            (w.0, w.1, m)
        }
        (_, Some(_), None) => {
            return Err(file.error(format!(
                "tensor `{}` has no `{}` beside it",
                dotted("weight_orig"),
                dotted("weight_mask")
            )))
        }
        (None, None, _) => {
            return Err(file.error(format!("module `{module}` has no `{}`", dotted("weight"))))
        }
    };
    if !(dims.len() == 2 || dims.len() == 4) {
        return Err(file.error(format!(
            "tensor `{}` has shape {dims:?}: a linear weight is [out, in], a conv weight [out, in, kh, kw]",
            dotted("weight")
        )));
    }
    let bias = match (t.bias, t.bias_orig, t.bias_mask) {
        (_, Some(orig), Some(mask)) => {
            same_shape(&orig, &mask, "bias_orig", "bias_mask")?;
            let m = check_mask(&mask, "bias_mask")?;
            Some((orig.0, orig.1.iter().zip(m).map(|(&b, m)| b * m as f32).collect()))
        }
        (b, None, None) => b,
        _ => {
            return Err(
                file.error(format!("module `{module}` has only one of bias_orig and bias_mask"))
            )
        }
    };
    let bias = match bias {
        Some((shape, b)) if shape == [dims[0]] => Some(b),
        Some((shape, _)) => {
            return Err(file.error(format!(
                "tensor `{}` has shape {shape:?}, expected [{}] (one per output)",
                dotted("bias"),
                dims[0]
            )))
        }
        None => None,
    };
    Ok(Params { dims, weight, mask, bias })
}

/// The MLP of linear layers with ReLU between them, in the order `layers` gives or
/// [`infer_order`] finds.
fn mlp_graph(
    file: &TensorFile,
    params: &BTreeMap<String, Params>,
    layers: Option<&[String]>,
) -> Result<Graph> {
    if let Some((name, p)) = params.iter().find(|(_, p)| p.dims.len() == 4) {
        return Err(file.error(format!(
            "`{name}.weight` {:?} is a conv weight, and a state dict does not record a conv \
             net's strides, padding and pooling: pass --model RECIPE with matching layer names, \
             or import the ONNX export of the model",
            p.dims
        )));
    }
    let modules: Vec<Module> = params
        .iter()
        .map(|(name, p)| Module { name: name.clone(), rows: p.dims[0], cols: p.dims[1] })
        .collect();
    let ordered = match layers {
        Some(order) => {
            let mut picked = Vec::new();
            for name in order {
                let m = modules.iter().find(|m| &m.name == name).ok_or_else(|| {
                    file.error(format!(
                        "--layers names `{name}`, which is not a module of the file ({})",
                        module_list(params)
                    ))
                })?;
                picked.push(m.clone());
            }
            if let Some(m) = modules.iter().find(|m| !order.contains(&m.name)) {
                return Err(
                    file.error(format!("module `{}` is in the file but not in --layers", m.name))
                );
            }
            picked
        }
        None => infer_order(&modules).map_err(|p| file.error(p))?,
    };
    let mut graph_layers = Vec::new();
    for (i, m) in ordered.iter().enumerate() {
        if i > 0 {
            graph_layers.push(Layer::Relu);
        }
        graph_layers.push(Layer::Linear { name: m.name.clone(), inputs: m.cols, outputs: m.rows });
    }
    Graph::new(vec![ordered[0].cols], graph_layers)
        .map_err(|e| file.error(format!("its layers do not make a network: {e}")))
}

fn module_list(params: &BTreeMap<String, Params>) -> String {
    let mut names: Vec<&str> = params.keys().map(String::as_str).collect();
    names.sort_by(|a, b| natural_cmp(a, b));
    names.join(", ")
}

/// The parameters of each weighted layer of `graph`, found by name: exactly, or (for a
/// recipe's graph) as the one module whose name ends in `.<name>`.
fn match_layers(
    file: &TensorFile,
    graph: &Graph,
    mut params: BTreeMap<String, Params>,
    by_suffix: bool,
) -> Result<Vec<LayerParams>> {
    let mut layers = Vec::new();
    for w in graph.weighted() {
        let key = if params.contains_key(&w.name) {
            w.name.clone()
        } else if by_suffix {
            let suffix = format!(".{}", w.name);
            let found: Vec<&String> = params.keys().filter(|k| k.ends_with(&suffix)).collect();
            match found.as_slice() {
                [one] => (*one).clone(),
                _ => {
                    return Err(file.error(format!(
                        "the model's layer `{}` has no module of that name in the file ({})",
                        w.name,
                        module_list(&params)
                    )))
                }
            }
        } else {
            unreachable!("the inferred graph is built from the modules")
        };
        let p = params.remove(&key).expect("found above");
        if p.dims != w.dims {
            return Err(file.error(format!(
                "tensor `{key}.weight` has shape {:?}, but the model's layer `{}` needs {:?}",
                p.dims, w.name, w.dims
            )));
        }
        let bias = p.bias.unwrap_or_else(|| vec![0.0; w.shape.rows]);
        layers.push(LayerParams { shape: w.shape, weight: p.weight, bias, mask: p.mask });
    }
    if let Some(extra) = params.keys().next() {
        return Err(file.error(format!("module `{extra}` is not a layer of the model")));
    }
    Ok(layers)
}
