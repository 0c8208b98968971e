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

#[test]
fn keep_prunes_on_export_and_reports_accuracy_before_and_after() {
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("k.safetensors");
    let run = |pruning: &str| {
        let out = ticket(&[
            "export",
            s(&fixture("mlp-dense.safetensors")),
            "--out",
            s(&out_path),
            "--force",
            "--keep",
            "0.3",
            "--pruning",
            pruning,
            "--dataset",
            "digits",
            "--json",
        ]);
        assert!(out.status.success(), "{}", common::stderr(&out));
        serde_json::from_str::<serde_json::Value>(&stdout(&out)).unwrap()
    };
    let json = run("layerwise");
    assert_eq!(json["import"]["kind"], "pytorch-state-dict");
    assert_eq!(json["pruned_on_export"]["keep"], 0.3);
    let before = json["pruned_on_export"]["accuracy_before"].as_f64().unwrap();
    let after = json["accuracy"]["exported"].as_f64().unwrap();
    assert!(before > 0.9, "the fixture MLP was trained on digits: {before}");
    assert!((0.0..=1.0).contains(&after));
    // Layer-wise: each layer keeps round(0.3 * its weights).
    let kept: Vec<u64> = json["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["kept_weights"].as_u64().unwrap())
        .collect();
    assert_eq!(kept, [614, 154, 48]);
    let json = run("global");
    let total: u64 = json["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["kept_weights"].as_u64().unwrap())
        .sum();
    assert_eq!(total, 816, "round(0.3 * 2720)");
    let text = ticket(&[
        "export",
        s(&fixture("mlp-dense.safetensors")),
        "--out",
        s(&out_path),
        "--force",
        "--keep",
        "0.5",
        "--dataset",
        "digits",
    ]);
    let text = stdout(&text);
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
    let out = ticket(&[
        "export",
        s(&fixture("mlp-dense.safetensors")),
        "--out",
        s(&out_path),
        "--keep",
        "1.5",
    ]);
    assert_clean_failure(&out, "--keep 1.5: give the fraction of weights to keep");
    let out = ticket(&[
        "export",
        s(&fixture("mlp-dynamo.onnx")),
        "--out",
        s(&out_path),
        "--layers",
        "a,b",
    ]);
    assert_clean_failure(&out, "--layers and --model are for state dicts");
    let out = ticket(&[
        "export",
        s(&fixture("mlp-attr.safetensors")),
        "--out",
        s(&out_path),
        "--layers",
        "head,hidden",
    ]);
    assert_clean_failure(&out, "module `input_layer` is in the file but not in --layers");
    let out = ticket(&["export", s(&fixture("conv-state.safetensors")), "--out", s(&out_path)]);
    assert_clean_failure(
        &out,
        "conv-state.safetensors: `conv1.weight` [4, 1, 3, 3] is a conv weight",
    );
    let out = ticket(&[
        "export",
        s(&fixture("conv-state.safetensors")),
        "--out",
        s(&out_path),
        "--model",
        "digits-conv",
    ]);
    assert_clean_failure(&out, "conv-state.safetensors: tensor `conv1.weight` has shape [4, 1, 3, 3], but the model's layer `conv1` needs");
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
