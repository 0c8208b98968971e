//! Every fixture that PyTorch wrote (`tests/fixtures/import/make_fixtures.py`) imports, and
//! the imported network's logits equal what PyTorch or ONNX Runtime computed for the same
//! inputs, within 1e-4 relative.

use std::path::{Path, PathBuf};
use ticket_core::tensor_file::TensorFile;
use ticket_core::{Graph, Par, Recipe};
use ticket_import::{open, ImportOptions, SourceKind};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/import").join(name)
}

/// Tensor `name` of expected.safetensors and its shape.
fn expected(name: &str) -> (Vec<usize>, Vec<f32>) {
    let path = fixture("expected.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    let file = TensorFile::parse(&bytes, &path).unwrap();
    let shape = file.view(name).unwrap().shape().to_vec();
    (shape.clone(), file.f32(name, &shape).unwrap())
}

/// Asserts `|got - want| <= 1e-4 * max(1, |want|)` element-wise.
fn assert_close(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= 1e-4 * w.abs().max(1.0), "{what}[{i}]: {g} vs {w}");
    }
}

fn check(
    file: &str,
    input: &str,
    opts: &ImportOptions,
    kind: SourceKind,
) -> ticket_import::Imported {
    let imported = open(&fixture(file), opts).unwrap_or_else(|e| panic!("{file}: {e}"));
    assert_eq!(imported.kind, kind, "{file}");
    let (shape, x) = expected(input);
    let (_, want) = expected(file.trim_end_matches(".safetensors").trim_end_matches(".onnx"));
    let got = imported.net.logits(&x, shape[0], Par::Seq);
    assert_close(&got, &want, file);
    imported
}

#[test]
fn state_dicts_import_with_their_masks() {
    let none = ImportOptions::default();
    let dense = check("mlp-dense.safetensors", "digits_input", &none, SourceKind::StateDict);
    assert_eq!(dense.net.graph.layer_names(), ["0", "2", "4"]);
    assert_eq!(dense.net.kept_weights(), dense.net.graph.dense_weights());
    let pruned =
        check("mlp-pruned.safetensors", "digits_input", &none, SourceKind::PrunedStateDict);
    // l1_unstructured(amount=0.75) keeps round(0.25 * n) per layer.
    let kept: Vec<usize> = pruned.net.layers.iter().map(|l| l.kept()).collect();
    assert_eq!(kept, [512, 128, 40]);
    let permanent =
        check("mlp-permanent.safetensors", "digits_input", &none, SourceKind::StateDict);
    assert_eq!(permanent.net.masks(), pruned.net.masks());
    let attr = check("mlp-attr.safetensors", "digits_input", &none, SourceKind::StateDict);
    assert_eq!(attr.net.graph.layer_names(), ["input_layer", "hidden", "head"]);
}

#[test]
fn layers_option_states_the_order() {
    let opts = ImportOptions {
        layers: Some(vec!["input_layer".into(), "hidden".into(), "head".into()]),
        graph: None,
    };
    check("mlp-attr.safetensors", "digits_input", &opts, SourceKind::StateDict);
    let wrong = ImportOptions {
        layers: Some(vec!["hidden".into(), "input_layer".into(), "head".into()]),
        graph: None,
    };
    let err = open(&fixture("mlp-attr.safetensors"), &wrong).unwrap_err().to_string();
    assert!(err.contains("mlp-attr.safetensors: its layers do not make a network"), "{err}");
    let missing =
        ImportOptions { layers: Some(vec!["input_layer".into(), "head".into()]), graph: None };
    let err = open(&fixture("mlp-attr.safetensors"), &missing).unwrap_err().to_string();
    assert!(err.contains("module `hidden` is in the file but not in --layers"), "{err}");
}

#[test]
fn a_conv_state_dict_needs_a_graph_and_takes_a_recipes() {
    let err = open(&fixture("conv-state.safetensors"), &ImportOptions::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("`conv1.weight` [4, 1, 3, 3] is a conv weight"), "{err}");
    let recipe = Recipe::from_file(&fixture("tiny-conv.toml")).unwrap();
    let opts = ImportOptions { layers: None, graph: Some(recipe.graph().unwrap()) };
    check("conv-state.safetensors", "image_input", &opts, SourceKind::StateDict);
}

#[test]
fn onnx_from_both_exporters_imports() {
    let none = ImportOptions::default();
    for name in ["mlp", "conv", "gap"] {
        for kind in ["dynamo-false", "dynamo-false-nofold", "dynamo", "dynamo-noopt"] {
            let file = format!("{name}-{kind}.onnx");
            let imported = check(&file, "image_input", &none, SourceKind::Onnx);
            if name == "conv" {
                let ops: Vec<&str> = imported.net.graph.layers().iter().map(|l| l.op()).collect();
                assert_eq!(
                    ops,
                    [
                        "conv2d",
                        "relu",
                        "maxpool2d",
                        "conv2d",
                        "relu",
                        "avgpool2d",
                        "flatten",
                        "linear",
                        "relu",
                        "linear"
                    ],
                    "{file}"
                );
                // fc1 was pruned to half in PyTorch; the zeros are the mask.
                assert_eq!(imported.net.layers[2].kept(), 64, "{file}");
            }
            if name == "gap" {
                // GlobalAveragePool or ReduceMean: one average over the 4x4 conv output.
                let pool = &imported.net.graph.layers()[2];
                assert_eq!(
                    pool,
                    &ticket_core::Layer::Avgpool2d { kernel: [4, 4], stride: Some([4, 4]) },
                    "{file}"
                );
            }
        }
    }
    check("mlp-matmul-gemm.onnx", "digits_input", &none, SourceKind::Onnx);
    let lenet = check("lenet5-dynamo.onnx", "lenet_input", &none, SourceKind::Onnx);
    let graph: &Graph = &lenet.net.graph;
    assert_eq!(graph.dense_weights(), 6 * 25 + 16 * 6 * 25 + 400 * 120 + 120 * 84 + 84 * 10);
    let density = lenet.net.density();
    assert!((density - 0.2).abs() < 1e-3, "global pruning kept {density}");
}
