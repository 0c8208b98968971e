//! The import part of the bad-input corpus: ONNX files and PyTorch state dicts that
//! `ticket export` must refuse, derived from two small valid ones (`valid/import-model.onnx`,
//! a Flatten -> Gemm -> Relu -> Gemm chain; `valid/import-state-dict.safetensors`, a
//! 64-6-10 `nn.Sequential` pruned with `torch.nn.utils.prune`). The ONNX files are encoded
//! from the message structs of `ticket_import::onnx::proto`, so they can lie in ways no
//! exporter would; the state dicts are serialized by the safetensors crate.

use prost::Message;
use safetensors::tensor::TensorView;
use safetensors::Dtype;
use ticket_import::onnx::proto::{
    Dimension, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, StringStringEntryProto,
    TensorProto, TensorShapeProto, TensorTypeProto, TypeProto, ValueInfoProto,
};

/// `(path relative to tests/corpus, bytes, the problem its error must name)`; the problem
/// is empty for the valid files.
pub fn cases() -> Vec<(String, Vec<u8>, String)> {
    let mut out = Vec::new();
    let model = onnx_model();
    let bytes = model.encode_to_vec();
    out.push(("valid/import-model.onnx".to_string(), bytes.clone(), String::new()));
    for (name, bytes, problem) in onnx_damage(&model, &bytes) {
        out.push((format!("import/{name}.onnx"), bytes, problem.to_string()));
    }
    out.push((
        "valid/import-state-dict.safetensors".into(),
        state_dict(&sd_tensors()),
        String::new(),
    ));
    for (name, tensors, problem) in state_dict_damage() {
        out.push((format!("import/{name}.safetensors"), state_dict(&tensors), problem.to_string()));
    }
    // What torch.save writes (a zip archive), under the name users give it.
    let mut zip = b"PK\x03\x04".to_vec();
    zip.extend_from_slice(&[0; 60]);
    out.push(("import/torch-save.pt".into(), zip, "is a PyTorch pickle (torch.save)".into()));
    out
}

/// The problem recorded for `path`, if it is an import case.
pub fn expected(path: &str) -> Option<String> {
    cases().into_iter().find(|(p, _, _)| p == path).map(|(_, _, problem)| problem)
}

fn value(i: usize, salt: usize) -> f32 {
    ((i * 37 + salt * 11) % 23) as f32 / 11.0 - 1.0
}

fn f32_tensor(name: &str, dims: &[i64], salt: usize) -> TensorProto {
    let n: i64 = dims.iter().product();
    TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: 1,
        raw_data: (0..n as usize).flat_map(|i| value(i, salt).to_le_bytes()).collect(),
        ..Default::default()
    }
}

fn node(op: &str, name: &str, inputs: &[&str], output: &str) -> NodeProto {
    NodeProto {
        op_type: op.into(),
        name: name.into(),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: vec![output.into()],
        ..Default::default()
    }
}

fn value_info(name: &str, elem_type: i32, dims: &[Dimension]) -> ValueInfoProto {
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            tensor_type: Some(TensorTypeProto {
                elem_type,
                shape: Some(TensorShapeProto { dim: dims.to_vec() }),
            }),
        }),
    }
}

fn dim(v: i64) -> Dimension {
    Dimension { dim_value: Some(v), dim_param: None }
}

fn batch() -> Dimension {
    Dimension { dim_value: None, dim_param: Some("N".into()) }
}

fn onnx_model() -> ModelProto {
    let mut gemm1 = node("Gemm", "fc1", &["flat", "fc1.weight", "fc1.bias"], "h");
    let trans_b = ticket_import::onnx::proto::AttributeProto {
        name: "transB".into(),
        i: 1,
        ..Default::default()
    };
    gemm1.attribute.push(trans_b.clone());
    let mut gemm2 = node("Gemm", "fc2", &["r", "fc2.weight", "fc2.bias"], "logits");
    gemm2.attribute.push(trans_b);
    ModelProto {
        ir_version: 8,
        opset_import: vec![OperatorSetIdProto { domain: String::new(), version: 17 }],
        producer_name: "ticket corpus".into(),
        producer_version: "1".into(),
        graph: Some(GraphProto {
            name: "chain".into(),
            node: vec![
                node("Flatten", "flatten", &["x"], "flat"),
                gemm1,
                node("Relu", "relu", &["h"], "r"),
                gemm2,
            ],
            initializer: vec![
                f32_tensor("fc1.weight", &[6, 16], 1),
                f32_tensor("fc1.bias", &[6], 2),
                f32_tensor("fc2.weight", &[3, 6], 3),
                f32_tensor("fc2.bias", &[3], 4),
            ],
            input: vec![value_info("x", 1, &[batch(), dim(1), dim(4), dim(4)])],
            output: vec![value_info("logits", 1, &[batch(), dim(3)])],
            ..Default::default()
        }),
    }
}

/// Damaged ONNX files: `(case, bytes, problem)`.
fn onnx_damage(valid: &ModelProto, bytes: &[u8]) -> Vec<(String, Vec<u8>, &'static str)> {
    let mut out: Vec<(String, Vec<u8>, &'static str)> = Vec::new();
    // The graph is the last field; cuts inside it leave a length-delimited field unfinished.
    let graph_len = valid.graph.as_ref().unwrap().encoded_len();
    let graph_start = bytes.len() - graph_len;
    for cut in [graph_start + 3, graph_start + graph_len / 2, bytes.len() - 1] {
        out.push((
            format!("truncated-at-{cut:05}"),
            bytes[..cut].to_vec(),
            "not a valid ONNX file",
        ));
    }
    let mut huge = bytes[..graph_start - 1].to_vec();
    huge.push(0x3a); // field 7 (graph), length-delimited
    huge.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0xff, 0x1f]);
    out.push(("length-huge".into(), huge, "not a valid ONNX file"));
    out.push(("not-protobuf".into(), vec![0xff; 64], "not a valid ONNX file"));
    let mut edit = |case: &str, problem: &'static str, f: &dyn Fn(&mut GraphProto)| {
        let mut m = valid.clone();
        f(m.graph.as_mut().unwrap());
        out.push((case.to_string(), m.encode_to_vec(), problem));
    };
    edit(
        "initializer-size-lies",
        "tensor `fc1.weight` holds 20 bytes, but its dims [6, 16] of FLOAT need 384",
        &|g| g.initializer[0].raw_data.truncate(20),
    );
    edit(
        "initializer-count-lies",
        "tensor `fc2.weight` holds 5 values, but its dims [3, 6] need 18",
        &|g| {
            g.initializer[2].raw_data.clear();
            g.initializer[2].float_data = vec![0.5; 5];
        },
    );
    edit("initializer-dim-negative", "tensor `fc1.weight` has dim -6", &|g| {
        g.initializer[0].dims[0] = -6
    });
    edit("initializer-dims-overflow", "tensor `fc1.weight` has too many elements", &|g| {
        g.initializer[0].dims = vec![1 << 40, 1 << 40];
    });
    edit(
        "data-type-string",
        "tensor `fc1.weight` has data type STRING, which is not supported",
        &|g| g.initializer[0].data_type = 8,
    );
    edit("data-type-unknown", "tensor `fc2.bias` has data type 99, which is not supported", &|g| {
        g.initializer[3].data_type = 99
    });
    edit("input-not-float", "input `x` has data type INT64, expected FLOAT", &|g| {
        g.input[0].r#type.as_mut().unwrap().tensor_type.as_mut().unwrap().elem_type = 7;
    });
    edit("input-rank-3", "input `x` has rank 3", &|g| {
        let t = g.input[0].r#type.as_mut().unwrap().tensor_type.as_mut().unwrap();
        t.shape.as_mut().unwrap().dim.pop();
    });
    edit("op-lstm", "node `relu` (op LSTM) is not supported", &|g| {
        g.node[2].op_type = "LSTM".into()
    });
    edit(
        "op-log-softmax",
        "node `relu` (op LogSoftmax) is not supported: ticket models end in logits",
        &|g| {
            g.node[2].op_type = "LogSoftmax".into();
        },
    );
    edit("op-custom-domain", "node `relu` (op Relu) is in domain `com.example`", &|g| {
        g.node[2].domain = "com.example".into();
    });
    edit(
        "not-a-chain-skip",
        "node `fc2` (op Gemm) reads [flat], but a chain reads only the last value, `r`",
        &|g| {
            g.node[3].input[0] = "flat".into();
        },
    );
    edit("not-a-chain-two-outputs", "is not a chain: its outputs are [logits, h]", &|g| {
        let extra = g.output[0].clone();
        g.output.push(ValueInfoProto { name: "h".into(), ..extra });
    });
    edit("two-inputs", "has 2 graph inputs (`x`, `y`); a chain takes one", &|g| {
        let extra = g.input[0].clone();
        g.input.push(ValueInfoProto { name: "y".into(), ..extra });
    });
    edit("reads-unknown-value", "node `relu` (op Relu) reads `nowhere`", &|g| {
        g.node[2].input[0] = "nowhere".into()
    });
    edit(
        "shapes-do-not-chain",
        "node `fc1` (op Gemm) takes 15 features, but its input has shape [16]",
        &|g| {
            g.initializer[0] = f32_tensor("fc1.weight", &[6, 15], 1);
        },
    );
    edit("reshape-not-a-flatten", "only a flatten to [N, -1] is supported", &|g| {
        g.node[0] = node("Reshape", "reshape", &["x", "shape"], "flat");
        let mut shape =
            TensorProto { name: "shape".into(), dims: vec![3], data_type: 7, ..Default::default() };
        shape.int64_data = vec![-1, 4, 4];
        g.initializer.push(shape);
    });
    edit("external-data-missing", "is stored in", &|g| {
        let t = &mut g.initializer[0];
        t.raw_data.clear();
        t.data_location = 1;
        let entry = |k: &str, v: &str| StringStringEntryProto { key: k.into(), value: v.into() };
        t.external_data = vec![
            entry("location", "no-such-file.data"),
            entry("offset", "0"),
            entry("length", "384"),
        ];
    });
    edit(
        "external-data-escapes",
        "names external data `../weights.data`, which is not a file name beside the model",
        &|g| {
            let t = &mut g.initializer[0];
            t.data_location = 1;
            t.external_data = vec![StringStringEntryProto {
                key: "location".into(),
                value: "../weights.data".into(),
            }];
        },
    );
    edit("weight-nan", "layer fc1: weight [0, 2] (index 2) is NaN", &|g| {
        let mut raw = g.initializer[0].raw_data.to_vec();
        raw[8..12].copy_from_slice(&f32::NAN.to_le_bytes());
        g.initializer[0].raw_data = raw.into();
    });
    out
}

type Tensors = Vec<(String, Dtype, Vec<usize>, Vec<u8>)>;

fn f32s(name: &str, shape: &[usize], salt: usize) -> (String, Dtype, Vec<usize>, Vec<u8>) {
    let n: usize = shape.iter().product();
    let bytes = (0..n).flat_map(|i| value(i, salt).to_le_bytes()).collect();
    (name.into(), Dtype::F32, shape.to_vec(), bytes)
}

/// `torch.nn.utils.prune` on `nn.Sequential(Linear(64, 6), ReLU(), Linear(6, 10))`.
fn sd_tensors() -> Tensors {
    let mask = |name: &str, shape: &[usize]| {
        let n: usize = shape.iter().product();
        let bytes = (0..n).flat_map(|i| (((i % 3) != 0) as u8 as f32).to_le_bytes()).collect();
        (name.to_string(), Dtype::F32, shape.to_vec(), bytes)
    };
    vec![
        f32s("0.weight_orig", &[6, 64], 1),
        mask("0.weight_mask", &[6, 64]),
        f32s("0.bias", &[6], 2),
        f32s("2.weight", &[10, 6], 3),
        f32s("2.bias", &[10], 4),
    ]
}

fn state_dict(tensors: &Tensors) -> Vec<u8> {
    let views =
        tensors.iter().map(|(n, d, s, b)| (n.clone(), TensorView::new(*d, s.clone(), b).unwrap()));
    safetensors::serialize(views, None).unwrap()
}

/// Damaged state dicts: `(case, tensors, problem)`.
fn state_dict_damage() -> Vec<(&'static str, Tensors, &'static str)> {
    let valid = sd_tensors();
    let edit = |f: &dyn Fn(&mut Tensors)| {
        let mut t = valid.clone();
        f(&mut t);
        t
    };
    vec![
        (
            "mask-holds-half",
            edit(&|t| t[1].3[12..16].copy_from_slice(&0.5f32.to_le_bytes())),
            "tensor `0.weight_mask` holds 0.5 at index 3: a mask holds only 0 and 1",
        ),
        (
            "mask-wrong-shape",
            edit(&|t| {
                t[1].2 = vec![64, 6];
            }),
            "tensor `0.weight_mask` has shape [64, 6] but `0.weight_orig` has shape [6, 64]",
        ),
        (
            "orig-without-mask",
            edit(&|t| {
                t.remove(1);
            }),
            "tensor `0.weight_orig` has no `0.weight_mask` beside it",
        ),
        (
            "shapes-do-not-chain",
            edit(&|t| t[3] = f32s("2.weight", &[10, 5], 3)),
            "the shapes of its layers do not chain in any order",
        ),
        (
            "weight-dtype-i32",
            edit(&|t| t[3].1 = Dtype::I32),
            "tensor `2.weight` has dtype I32; weights and biases must be F32, F64, F16 or BF16",
        ),
        (
            "weight-rank-3",
            edit(&|t| t[3].2 = vec![10, 3, 2]),
            "a linear weight is [out, in], a conv weight [out, in, kh, kw]",
        ),
        (
            "bias-wrong-length",
            edit(&|t| t[2] = f32s("0.bias", &[5], 2)),
            "tensor `0.bias` has shape [5], expected [6] (one per output)",
        ),
        (
            "batch-norm-buffer",
            edit(&|t| t.push(f32s("1.running_mean", &[6], 5))),
            "tensor `1.running_mean` is not the weight or bias of a linear or conv layer",
        ),
        ("no-tensors", vec![], "holds no tensors"),
        (
            "order-ambiguous",
            vec![
                f32s("z.weight", &[8, 8], 1),
                f32s("y.weight", &[8, 4], 2),
                f32s("x.weight", &[8, 8], 3),
            ],
            "the layer order cannot be told from the names and shapes",
        ),
        (
            "bias-infinite",
            edit(&|t| t[4].3[0..4].copy_from_slice(&f32::INFINITY.to_le_bytes())),
            "layer 2: bias [0] is inf; refusing to export it",
        ),
    ]
}
