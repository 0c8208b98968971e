//! `ticket export` and `ticket find` on models PyTorch wrote (`tests/fixtures/import/`, made by
//! `make_fixtures.py`): the exported CSR file, run by `ticket infer`, gives the logits that
//! PyTorch / ONNX Runtime computed (1e-4 relative); `--keep` prunes on export; `find --model
//! FILE` takes the file's architecture.

mod common;

use common::{assert_clean_failure, stdout, ticket};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use ticket_core::tensor_file::{write_tensors, OwnedTensor, TensorFile};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/import").join(name)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Tensor `name` of a safetensors file, with its shape.
fn read(path: &Path, name: &str) -> (Vec<usize>, Vec<f32>) {
    let bytes = std::fs::read(path).unwrap();
    let file = TensorFile::parse(&bytes, path).unwrap();
    let shape = file.view(name).unwrap().shape().to_vec();
    (shape.clone(), file.f32(name, &shape).unwrap())
}

/// Exports `model` (with `extra` arguments), runs the CSR file on the fixture input `input`
/// with `ticket infer`, and returns the logits it wrote.
fn exported_logits(dir: &Path, model: &str, input: &str, extra: &[&str]) -> Vec<f32> {
    let csr = dir.join(format!("{model}.csr.safetensors"));
    let source = fixture(model);
    let mut args = vec!["export", s(&source), "--out", s(&csr)];
    args.extend_from_slice(extra);
    let out = ticket(&args);
    assert!(out.status.success(), "{model}: {}", common::stderr(&out));
    let (shape, x) = read(&fixture("expected.safetensors"), input);
    let features = shape[1..].iter().product();
    let batch_file = dir.join(format!("{model}.input.safetensors"));
    let tensors = vec![("input".to_string(), OwnedTensor::f32(vec![shape[0], features], &x))];
    write_tensors(&batch_file, tensors, &BTreeMap::new()).unwrap();
    let logits = dir.join(format!("{model}.logits.safetensors"));
    let out = ticket(&["infer", s(&csr), "--input", s(&batch_file), "--output", s(&logits)]);
    assert!(out.status.success(), "{model}: {}", common::stderr(&out));
    read(&logits, "logits").1
}

fn assert_close(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= 1e-4 * w.abs().max(1.0), "{what}[{i}]: {g} vs {w}");
    }
}

#[test]
fn exported_pytorch_models_give_pytorchs_logits() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("mlp-dense.safetensors", "digits_input", "mlp-dense"),
        ("mlp-pruned.safetensors", "digits_input", "mlp-pruned"),
        ("mlp-permanent.safetensors", "digits_input", "mlp-permanent"),
        ("mlp-attr.safetensors", "digits_input", "mlp-attr"),
        ("mlp-dynamo-false.onnx", "image_input", "mlp-dynamo-false"),
        ("mlp-dynamo-false-nofold.onnx", "image_input", "mlp-dynamo-false-nofold"),
        ("mlp-dynamo.onnx", "image_input", "mlp-dynamo"),
        ("mlp-dynamo-noopt.onnx", "image_input", "mlp-dynamo-noopt"),
        ("mlp-matmul-gemm.onnx", "digits_input", "mlp-matmul-gemm"),
        ("conv-dynamo-false.onnx", "image_input", "conv-dynamo-false"),
        ("conv-dynamo-false-nofold.onnx", "image_input", "conv-dynamo-false-nofold"),
        ("conv-dynamo.onnx", "image_input", "conv-dynamo"),
        ("conv-dynamo-noopt.onnx", "image_input", "conv-dynamo-noopt"),
        ("gap-dynamo-false.onnx", "image_input", "gap-dynamo-false"),
        ("gap-dynamo.onnx", "image_input", "gap-dynamo"),
        ("gap-dynamo-noopt.onnx", "image_input", "gap-dynamo-noopt"),
        ("lenet5-dynamo.onnx", "lenet_input", "lenet5-dynamo"),
    ];
    for (model, input, logits) in cases {
        let got = exported_logits(dir.path(), model, input, &[]);
        assert_close(&got, &read(&fixture("expected.safetensors"), logits).1, model);
    }
    let recipe = fixture("tiny-conv.toml");
    let got = exported_logits(
        dir.path(),
        "conv-state.safetensors",
        "image_input",
        &["--model", s(&recipe)],
    );
    assert_close(&got, &read(&fixture("expected.safetensors"), "conv-state").1, "conv-state");
}

/// `ticket export mlp-dense.safetensors --out OUT --force` with `extra`, as JSON.
fn export_json(out_path: &Path, extra: &[&str]) -> serde_json::Value {
    let source = fixture("mlp-dense.safetensors");
    let mut args = vec!["export", s(&source), "--out", s(out_path), "--force", "--json"];
    args.extend_from_slice(extra);
    let out = ticket(&args);
    assert!(out.status.success(), "{}", common::stderr(&out));
    serde_json::from_str(&stdout(&out)).unwrap()
}

/// The magnitude of every weight the exported file at `path` kept is at least that of every
/// weight it pruned (within each layer, or overall), and kept values are the source's.
fn assert_largest_kept(path: &Path, per_layer: bool) {
    let source =
        ticket_import::open(&fixture("mlp-dense.safetensors"), &Default::default()).unwrap();
    let exported = ticket_export::read_csr_as_dense(path).unwrap();
    let mut kept_min = vec![f32::INFINITY; source.net.layers.len()];
    let mut pruned_max = vec![0.0f32; source.net.layers.len()];
    for (l, (src, exp)) in source.net.layers.iter().zip(&exported.layers).enumerate() {
        assert_eq!(src.bias, exp.bias, "biases are never pruned");
        for (w, e) in src.weight.iter().zip(&exp.weight) {
            if *e != 0.0 {
                assert_eq!(w, e);
                kept_min[l] = kept_min[l].min(w.abs());
            } else {
                pruned_max[l] = pruned_max[l].max(w.abs());
            }
        }
    }
    if per_layer {
        assert!(
            kept_min.iter().zip(&pruned_max).all(|(k, p)| k >= p),
            "{kept_min:?} {pruned_max:?}"
        );
    } else {
        let (k, p) = (
            kept_min.iter().copied().fold(f32::INFINITY, f32::min),
            pruned_max.iter().copied().fold(0.0, f32::max),
        );
        assert!(k >= p, "{k} < {p}");
    }
}

fn kept_weights(json: &serde_json::Value) -> Vec<u64> {
    json["layers"].as_array().unwrap().iter().map(|l| l["kept_weights"].as_u64().unwrap()).collect()
}

#[test]
fn keep_prunes_on_export_and_reports_accuracy_before_and_after() {
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("k.safetensors");
    let json = export_json(&out_path, &["--keep", "0.3", "--dataset", "digits"]);
    assert_eq!(json["import"]["kind"], "pytorch-state-dict");
    assert_eq!(json["pruned_on_export"]["keep"], 0.3);
    assert_eq!(json["pruned_on_export"]["pruning"], "layerwise");
    let before = json["pruned_on_export"]["accuracy_before"].as_f64().unwrap();
    assert!(before > 0.9, "the fixture MLP was trained on digits: {before}");
    // The accuracy after is the exported file's, as `ticket infer` measures it.
    let infer = ticket(&["infer", s(&out_path), "--dataset", "digits", "--json"]);
    let infer: serde_json::Value = serde_json::from_str(&stdout(&infer)).unwrap();
    let sparse = infer["accuracy"]["sparse"].as_f64().unwrap();
    assert_eq!(json["accuracy"]["exported"].as_f64().unwrap(), sparse);
    // Layer-wise: each layer keeps round(0.3 * its weights), the largest.
    assert_eq!(kept_weights(&json), [614, 154, 48]);
    assert_largest_kept(&out_path, true);
    let json = export_json(&out_path, &["--keep", "0.3", "--pruning", "global"]);
    assert_eq!(kept_weights(&json).iter().sum::<u64>(), 816, "round(0.3 * 2720)");
    assert_largest_kept(&out_path, false);
    let source = fixture("mlp-dense.safetensors");
    let args = [
        "export",
        s(&source),
        "--out",
        s(&out_path),
        "--force",
        "--keep",
        "0.5",
        "--dataset",
        "digits",
    ];
    let text = stdout(&ticket(&args));
    assert!(
        text.contains("pruned on export to 50.0% of the weights (layerwise): accuracy"),
        "{text}"
    );
    assert!(text.contains("note: a state dict records no activations"), "{text}");
}

#[test]
fn bad_options_are_refused_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("x.safetensors");
    let cases: [(&str, &[&str], &str); 5] = [
        ("mlp-dense.safetensors", &["--keep", "1.5"], "--keep 1.5: give the fraction of weights to keep"),
        ("mlp-dynamo.onnx", &["--layers", "a,b"], "--layers and --model are for state dicts"),
        (
            "mlp-attr.safetensors",
            &["--layers", "head,hidden"],
            "module `input_layer` is in the file but not in --layers",
        ),
        ("conv-state.safetensors", &[], "conv-state.safetensors: `conv1.weight` [4, 1, 3, 3] is a conv weight"),
        (
            "conv-state.safetensors",
            &["--model", "digits-conv"],
            "conv-state.safetensors: tensor `conv1.weight` has shape [4, 1, 3, 3], but the model's \
             layer `conv1` needs",
        ),
    ];
    for (model, extra, needle) in cases {
        let source = fixture(model);
        let mut args = vec!["export", s(&source), "--out", s(&out_path)];
        args.extend_from_slice(extra);
        assert_clean_failure(&ticket(&args), needle);
    }
    assert!(!out_path.exists());
}

#[test]
fn find_trains_a_ticket_in_an_imported_architecture() {
    let dir = tempfile::tempdir().unwrap();
    let exp = dir.path().join("exp");
    let out = ticket(&[
        "find",
        "--model",
        s(&fixture("conv-dynamo.onnx")),
        "--iterations",
        "60",
        "--eval-every",
        "30",
        "--levels",
        "1",
        "--out",
        s(&exp),
        "--json",
    ]);
    assert!(out.status.success(), "{}", common::stderr(&out));
    let level0 = ticket_core::checkpoint::load(&exp.join("level_00/init.safetensors")).unwrap();
    let imported = ticket_import::open(&fixture("conv-dynamo.onnx"), &Default::default()).unwrap();
    assert_eq!(
        level0.net.graph.layers(),
        imported.net.graph.layers(),
        "the architecture is the file's"
    );
    // A fresh initialisation: not the file's trained weights.
    assert_ne!(level0.net.layers[0].weight, imported.net.layers[0].weight);
    let level1 = ticket_core::checkpoint::load(&exp.join("level_01/final.safetensors")).unwrap();
    assert!(level1.net.density() < 0.95, "level 1 is pruned: {}", level1.net.density());
}

#[test]
fn find_takes_a_state_dicts_architecture_in_the_order_given() {
    let dir = tempfile::tempdir().unwrap();
    let exp = dir.path().join("exp");
    let model = fixture("mlp-attr.safetensors");
    let out = ticket(&[
        "find",
        "--model",
        s(&model),
        "--layers",
        "input_layer,hidden,head",
        "--iterations",
        "40",
        "--eval-every",
        "20",
        "--levels",
        "1",
        "--no-export",
        "--out",
        s(&exp),
    ]);
    assert!(out.status.success(), "{}", common::stderr(&out));
    let init = ticket_core::checkpoint::load(&exp.join("level_00/init.safetensors")).unwrap();
    assert_eq!(init.net.graph.layer_names(), ["input_layer", "hidden", "head"]);
    assert_eq!(init.net.graph.input_shape(), [64]);
    let out = ticket(&[
        "find",
        "--model",
        s(&model),
        "--layers",
        "head,hidden,input_layer",
        "--out",
        s(&exp),
    ]);
    assert_clean_failure(&out, "its layers do not make a network");
}

#[test]
fn layerwise_keep_prunes_as_torch_l1_unstructured_does() {
    // mlp-pruned.safetensors is mlp-dense pruned by prune.l1_unstructured(amount=0.75) per layer.
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("k.safetensors");
    export_json(&out_path, &["--keep", "0.25"]);
    let ours = ticket_export::read_csr_as_dense(&out_path).unwrap();
    let torch =
        ticket_import::open(&fixture("mlp-pruned.safetensors"), &Default::default()).unwrap();
    for (l, (a, b)) in ours.layers.iter().zip(&torch.net.layers).enumerate() {
        let kept: Vec<u8> = a.weight.iter().map(|&w| u8::from(w != 0.0)).collect();
        assert_eq!(kept, b.mask, "layer {l}: ticket's mask differs from torch.nn.utils.prune's");
    }
}
