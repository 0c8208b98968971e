//! Loading valid files (every value dtype, both index widths, aligned and misaligned) and
//! rejecting each kind of corrupt file with an error that names the file and the problem.

use super::*;
use crate::fixture::{
    assert_logits_close, edit, file_contents, net_of, random_model, reference_forward,
    reference_logits, tensor_mut, write_model, CsrParts, Random,
};
use half::{bf16, f16};
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::path::PathBuf;
use ticket_core::tensor_file::{write_tensors, OwnedTensor};
use ticket_core::{Graph, LayerShape, Par};

fn graph() -> Graph {
    "20-12-6-3".parse().unwrap()
}

fn layers() -> Vec<CsrParts> {
    random_model(&graph(), &[0.3, 0.5, 1.0], 1)
}

struct Case {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

fn case() -> Case {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    Case { _dir: dir, path }
}

/// The logits of the loaded model on a few examples against the reference on `layers`.
fn check_forward(model: &SparseModel, layers: &[CsrParts]) {
    let mut rng = Random::new(2);
    let x = rng.vec(5 * 20, 0.0, 1.0);
    let want: Vec<f64> = x.chunks_exact(20).flat_map(|e| reference_logits(layers, e)).collect();
    assert_logits_close(&model.logits(&x, 5, Par::Seq).unwrap(), &want, "loaded");
}

#[test]
fn f32_file_loads_zero_copy() {
    let c = case();
    write_model(&c.path, &graph(), &layers(), ValueDtype::F32).unwrap();
    let model = SparseModel::load(&c.path).unwrap();
    check_forward(&model, &layers());
    assert_eq!(model.value_dtype(), ValueDtype::F32);
    assert_eq!(model.borrowed_bytes(), model.weight_bytes());
    assert_eq!(model.mapped_file_bytes() as u64, std::fs::metadata(&c.path).unwrap().len());
    let nnz: usize = layers().iter().map(CsrParts::nnz).sum();
    let rows: usize = 12 + 6 + 3;
    // u32 indptr, u16 indices, f32 values, f32 bias.
    assert_eq!(model.weight_bytes(), 4 * (rows + 3) + 6 * nnz + 4 * rows);
}

#[test]
fn bytes_in_memory_load_like_the_mapped_file() {
    let c = case();
    write_model(&c.path, &graph(), &layers(), ValueDtype::F16).unwrap();
    let bytes = std::fs::read(&c.path).unwrap();
    let len = bytes.len();
    let from_bytes = SparseModel::from_bytes(bytes.clone(), &c.path).unwrap();
    let mapped = SparseModel::load(&c.path).unwrap();
    assert_eq!(from_bytes.to_dense(), mapped.to_dense());
    assert_eq!(from_bytes.borrowed_bytes(), mapped.borrowed_bytes());
    assert_eq!(from_bytes.mapped_file_bytes(), len);
    let mut rounded = layers();
    rounded.iter_mut().flat_map(|l| &mut l.values).for_each(|v| *v = f16::from_f32(*v).to_f32());
    check_forward(&from_bytes, &rounded);
    // Errors name the path given, though nothing was read from it.
    let err = SparseModel::from_bytes(bytes[..len / 2].to_vec(), Path::new("in-memory.bin"))
        .err()
        .unwrap()
        .to_string();
    assert!(err.starts_with("in-memory.bin: "), "{err}");
}

#[test]
fn half_precision_values_are_decoded() {
    for dtype in [ValueDtype::F16, ValueDtype::Bf16] {
        let c = case();
        write_model(&c.path, &graph(), &layers(), dtype).unwrap();
        let model = SparseModel::load(&c.path).unwrap();
        assert_eq!(model.value_dtype(), dtype);
        // The reference runs on the values rounded the way the file stores them.
        let mut rounded = layers();
        for l in &mut rounded {
            for v in &mut l.values {
                *v = match dtype {
                    ValueDtype::F16 => f16::from_f32(*v).to_f32(),
                    _ => bf16::from_f32(*v).to_f32(),
                };
            }
        }
        check_forward(&model, &rounded);
        assert_eq!(model.to_dense(), net_of(&graph(), &rounded));
        // Decoded values are owned f32; the rest is still borrowed.
        let nnz: usize = layers().iter().map(CsrParts::nnz).sum();
        assert_eq!(model.weight_bytes() - model.borrowed_bytes(), 4 * nnz);
    }
}

#[test]
fn u32_indices_are_accepted_for_narrow_layers() {
    let c = case();
    let (mut tensors, meta) = file_contents(&graph(), &layers(), ValueDtype::F32);
    for (l, name) in layers().iter().zip(["fc1", "fc2", "fc3"]) {
        *tensor_mut(&mut tensors, &csr_format::indices_name(name)) =
            OwnedTensor::u32(vec![l.nnz()], &l.indices);
    }
    write_tensors(&c.path, tensors, &meta).unwrap();
    let model = SparseModel::load(&c.path).unwrap();
    assert!(model.layers().iter().all(|l| l.index_bytes() == 4));
    check_forward(&model, &layers());
}

/// A safetensors file laid out by hand: `lead` padding bytes (a U8 tensor) before the other
/// tensors, so that every one of them starts at an odd offset.
fn write_misaligned(
    path: &Path,
    tensors: &[(String, OwnedTensor)],
    meta: &BTreeMap<String, String>,
) {
    let mut header = serde_json::Map::new();
    header.insert("__metadata__".into(), serde_json::to_value(meta).unwrap());
    let mut data = vec![0u8];
    header.insert(
        "pad".into(),
        serde_json::json!({"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}),
    );
    for (name, t) in tensors {
        let start = data.len();
        data.extend_from_slice(&t.data);
        header.insert(
            name.clone(),
            serde_json::json!({
                "dtype": format!("{:?}", t.dtype),
                "shape": t.shape,
                "data_offsets": [start, data.len()],
            }),
        );
    }
    let mut text = serde_json::to_string(&header).unwrap();
    while !(8 + text.len()).is_multiple_of(8) {
        text.push(' ');
    }
    let mut bytes = (text.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(text.as_bytes());
    bytes.extend_from_slice(&data);
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn misaligned_arrays_are_copied() {
    let c = case();
    let (tensors, meta) = file_contents(&graph(), &layers(), ValueDtype::F32);
    write_misaligned(&c.path, &tensors, &meta);
    let model = SparseModel::load(&c.path).unwrap();
    check_forward(&model, &layers());
    assert_eq!(model.borrowed_bytes(), 0);
    assert_eq!(model.mapped_file_bytes(), 0);
}

/// Writes the valid model with `edit` applied to its tensors and metadata, loads it and
/// returns the error, which must name the file.
fn load_error(
    edit: impl FnOnce(&mut Vec<(String, OwnedTensor)>, &mut BTreeMap<String, String>),
) -> String {
    load_error_of(&graph(), &layers(), edit)
}

/// [`load_error`] for the model of `graph` with weights `layers`.
fn load_error_of(
    graph: &Graph,
    layers: &[CsrParts],
    edit: impl FnOnce(&mut Vec<(String, OwnedTensor)>, &mut BTreeMap<String, String>),
) -> String {
    let c = case();
    let (mut tensors, mut meta) = file_contents(graph, layers, ValueDtype::F32);
    edit(&mut tensors, &mut meta);
    write_tensors(&c.path, tensors, &meta).unwrap();
    let err = SparseModel::load(&c.path).err().expect("the edited file must not load").to_string();
    assert!(err.starts_with(&c.path.display().to_string()), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    err
}

fn edit_u32(name: &str, f: impl FnOnce(&mut Vec<u32>)) -> String {
    load_error(|t, _| edit(tensor_mut(t, name), f))
}

fn edit_u16(name: &str, f: impl FnOnce(&mut Vec<u16>)) -> String {
    load_error(|t, _| edit(tensor_mut(t, name), f))
}

fn edit_f32(name: &str, f: impl FnOnce(&mut Vec<f32>)) -> String {
    load_error(|t, _| edit(tensor_mut(t, name), f))
}

fn contains(err: &str, needle: &str) {
    assert!(err.contains(needle), "`{err}` lacks `{needle}`");
}

#[test]
fn bad_indptr() {
    let err = edit_u32("fc1.weight.indptr", |p| p.swap(3, 4));
    contains(&err, "layer fc1: indptr decreases at row");
    let err = edit_u32("fc2.weight.indptr", |p| *p.last_mut().unwrap() += 5);
    contains(&err, "layer fc2: indptr of row 5 ends at");
    contains(&err, "past the");
    let err = edit_u32("fc1.weight.indptr", |p| p[0] = 1);
    contains(&err, "layer fc1: indptr starts at 1, expected 0");
    let err = edit_u32("fc1.weight.indptr", |p| *p.last_mut().unwrap() -= 1);
    contains(&err, "layer fc1: indptr ends at");
    let err = edit_u32("fc1.weight.indptr", |p| {
        p.pop();
    });
    contains(&err, "tensor `fc1.weight.indptr` has shape [12], expected [13]");
}

#[test]
fn bad_indices() {
    let err = edit_u16("fc1.weight.indices", |i| i[0] = 20);
    contains(&err, "layer fc1: row 0 has column index 20, but the matrix has 20 columns");
    let err = edit_u16("fc1.weight.indices", |i| i.swap(0, 1));
    contains(&err, "layer fc1: column indices of row 0 are not strictly increasing");
    let err = load_error(|t, _| {
        let i = tensor_mut(t, "fc2.weight.indices");
        i.dtype = safetensors::Dtype::I16;
    });
    contains(&err, "tensor `fc2.weight.indices` has dtype I16; column indices are U16 or U32");
}

#[test]
fn shapes_that_do_not_fit_the_graph() {
    let err = load_error(|t, _| {
        edit::<i64>(tensor_mut(t, "fc2.weight.shape"), |s| s[1] = 11);
    });
    contains(&err, "layer fc2 has weight shape [6, 11] but graph 20-12-6-3 makes it [6, 12]");
    let err = load_error(|_, m| {
        m.insert("graph".into(), "20-12-6-4".parse::<Graph>().unwrap().to_json());
    });
    contains(&err, "layer fc3 has weight shape [3, 6] but graph 20-12-6-4 makes it [4, 6]");
    let err = load_error(|_, m| {
        let graph = m["graph"].replacen(r#""in":12"#, r#""in":11"#, 1);
        m.insert("graph".into(), graph);
    });
    contains(&err, "metadata `graph`: graph: layer 2 (linear `fc2`) has in = 11");
    let err = load_error(|t, _| {
        edit::<i64>(tensor_mut(t, "fc1.weight.shape"), |s| s[0] = -12);
    });
    contains(&err, "tensor `fc1.weight.shape` holds [-12, 20], not a shape");
    let err = load_error(|_, m| {
        m.insert("layers".into(), "fc1,fc2".into());
    });
    contains(&err, "metadata lists 2 layers (fc1,fc2) but graph 20-12-6-3 has 3");
    let err = load_error(|_, m| {
        m.insert("layers".into(), "fc1,fcX,fc3".into());
    });
    contains(&err, "metadata `layers` names `fcX` where the graph has `fc2`");
}

#[test]
fn non_finite_numbers() {
    let err = edit_f32("fc2.weight.values", |v| v[3] = f32::NAN);
    contains(&err, "layer fc2: value 3 is NaN (weights must be finite)");
    let err = edit_f32("fc3.weight.values", |v| v[0] = f32::NEG_INFINITY);
    contains(&err, "layer fc3: value 0 is -inf");
    let err = edit_f32("fc1.bias", |v| v[2] = f32::INFINITY);
    contains(&err, "layer fc1: bias of row 2 is inf");
    // A half-precision infinity is caught after decoding.
    let c = case();
    let (mut tensors, meta) = file_contents(&graph(), &layers(), ValueDtype::F16);
    edit::<u16>(tensor_mut(&mut tensors, "fc1.weight.values"), |v| v[1] = 0x7c00);
    write_tensors(&c.path, tensors, &meta).unwrap();
    let err = SparseModel::load(&c.path).err().unwrap().to_string();
    contains(&err, "layer fc1: value 1 is inf");
}

#[test]
fn value_dtypes() {
    let err = load_error(|t, _| {
        let v = tensor_mut(t, "fc1.weight.values");
        let n = v.shape[0];
        *v = OwnedTensor::from_le(safetensors::Dtype::F64, vec![n], vec![0u8; 8 * n]);
    });
    contains(&err, "tensor `fc1.weight.values` has dtype F64; values are F32, F16 or BF16");
    let err = load_error(|_, m| {
        m.insert("value_dtype".into(), "f16".into());
    });
    contains(&err, "tensor `fc1.weight.values` is f32 but metadata `value_dtype` says f16");
    let err = load_error(|_, m| {
        m.insert("value_dtype".into(), "int4".into());
    });
    contains(&err, "metadata `value_dtype`: unknown value dtype `int4`");
    let err = edit_f32("fc2.weight.values", |v| {
        v.pop();
    });
    contains(&err, "tensor `fc2.weight.values` has shape");
}

#[test]
fn format_and_metadata() {
    let err = load_error(|_, m| {
        m.insert("format_version".into(), "3".into());
    });
    contains(&err, "format_version `3` is not supported");
    let err = load_error(|_, m| {
        m.insert("format".into(), "ticket-dense".into());
    });
    contains(&err, "format is `ticket-dense`, expected `ticket-csr`");
    let err = load_error(|_, m| {
        let graph = m["graph"].replacen(r#"{"op":"relu"}"#, r#"{"op":"gelu"}"#, 1);
        m.insert("graph".into(), graph);
    });
    contains(&err, "metadata `graph`: graph: unknown variant `gelu`");
    let err = load_error(|_, m| {
        m.remove("graph");
    });
    contains(&err, "metadata has no `graph` entry");
    let err = load_error(|_, m| {
        m.remove("layers");
    });
    contains(&err, "metadata has no `layers` entry");
    let err = load_error(|t, _| t.retain(|(n, _)| n != "fc3.bias"));
    contains(&err, "missing tensor `fc3.bias`");
}

#[test]
fn truncated_and_empty_files() {
    let c = case();
    write_model(&c.path, &graph(), &layers(), ValueDtype::F32).unwrap();
    let bytes = std::fs::read(&c.path).unwrap();
    for len in [bytes.len() - 1, bytes.len() / 2, 9, 3] {
        std::fs::write(&c.path, &bytes[..len]).unwrap();
        let err = SparseModel::load(&c.path).err().unwrap().to_string();
        contains(&err, &c.path.display().to_string());
        contains(&err, "not a valid safetensors file");
    }
    std::fs::write(&c.path, b"").unwrap();
    let err = SparseModel::load(&c.path).err().unwrap().to_string();
    contains(&err, "the file is empty");
    let err = SparseModel::load(Path::new("/nonexistent/m.safetensors")).err().unwrap().to_string();
    contains(&err, "/nonexistent/m.safetensors");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Arbitrary byte damage never panics: the load fails with an error, or the file still
    /// makes sense and runs.
    #[test]
    fn damaged_files_never_panic(
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        cut in prop::option::of(any::<prop::sample::Index>()),
    ) {
        let c = case();
        write_model(&c.path, &graph(), &layers(), ValueDtype::F16).unwrap();
        let mut bytes = std::fs::read(&c.path).unwrap();
        for (at, v) in flips {
            let i = at.index(bytes.len());
            bytes[i] ^= v.max(1);
        }
        if let Some(cut) = cut {
            bytes.truncate(cut.index(bytes.len()));
        }
        std::fs::write(&c.path, &bytes).unwrap();
        if let Ok(model) = SparseModel::load(&c.path) {
            let x = vec![0.5; 3 * model.inputs()];
            let logits = model.logits(&x, 3, Par::Seq).unwrap();
            prop_assert_eq!(logits.len(), 3 * model.outputs());
        }
    }
}

/// A small conv graph: conv 2->3 (3x2 kernel, padding 1), ReLU, max pool, flatten, linear.
fn conv_graph() -> Graph {
    Graph::from_json(
        r#"{"input":[2,6,5],"layers":[
        {"op":"conv2d","name":"conv1","in":2,"out":3,"kernel":[3,2],"stride":[1,1],"padding":[1,1]},
        {"op":"relu"},{"op":"maxpool2d","kernel":[2,2]},{"op":"flatten"},
        {"op":"linear","name":"fc","in":27,"out":4}]}"#,
    )
    .unwrap()
}

/// [`load_error`] for the conv model.
fn conv_load_error(
    edit: impl FnOnce(&mut Vec<(String, OwnedTensor)>, &mut BTreeMap<String, String>),
) -> String {
    let graph = conv_graph();
    load_error_of(&graph, &random_model(&graph, &[0.6, 0.3], 4), edit)
}

#[test]
fn conv_files_load_with_their_full_weight_shape() {
    let c = case();
    let graph = conv_graph();
    let layers = random_model(&graph, &[0.6, 0.3], 4);
    write_model(&c.path, &graph, &layers, ValueDtype::F32).unwrap();
    let model = SparseModel::load(&c.path).unwrap();
    assert_eq!(model.layers()[0].shape(), LayerShape { rows: 3, cols: 2 * 3 * 2 });
    assert_eq!(model.to_dense(), net_of(&graph, &layers));
    let x = Random::new(6).vec(3 * 60, -1.0, 1.0);
    let want: Vec<f64> =
        x.chunks_exact(60).flat_map(|e| reference_forward(&graph, &layers, e)).collect();
    assert_logits_close(&model.logits(&x, 3, Par::Seq).unwrap(), &want, "conv file");
}

#[test]
fn conv_files_that_do_not_fit_their_graph() {
    // A conv weight stored as its [out, in*kh*kw] matrix: the shape tensor has rank 2.
    let err = conv_load_error(|t, _| {
        *tensor_mut(t, "conv1.weight.shape") = OwnedTensor::i64(vec![2], &[3, 12]);
    });
    contains(&err, "tensor `conv1.weight.shape` has shape [2], expected [4]");
    let err =
        conv_load_error(|t, _| edit::<i64>(tensor_mut(t, "conv1.weight.shape"), |s| s[3] = 3));
    contains(&err, "layer conv1 has weight shape [3, 2, 3, 3] but graph");
    contains(&err, "makes it [3, 2, 3, 2]");
    // The graph says 2 input channels, the (consistent) tensors 1.
    let err = conv_load_error(|_, m| {
        let graph = m["graph"].replace(r#""input":[2,6,5]"#, r#""input":[1,6,5]"#);
        m.insert("graph".into(), graph);
    });
    contains(&err, "layer 0 (conv2d `conv1`) has in = 2, but its input has 1 channels");
    let err =
        conv_load_error(|t, _| edit::<u16>(tensor_mut(t, "conv1.weight.indices"), |i| i[0] = 12));
    contains(
        &err,
        "layer conv1: row 0 has column index 12, but the matrix has 12 columns \
         (columns in*kh*kw = 2*3*2)",
    );
    let err = conv_load_error(|t, _| t.retain(|(n, _)| n != "conv1.weight.shape"));
    contains(&err, "missing tensor `conv1.weight.shape`");
    let err = conv_load_error(|t, _| edit::<f32>(tensor_mut(t, "conv1.bias"), |b| b.truncate(2)));
    contains(&err, "tensor `conv1.bias` has shape [2], expected [3]");
}
