//! Files of format version 1 (MLPs described by `arch`), written by an earlier ticket, still
//! load: the dense checkpoint through `ticket_core::checkpoint::load`, the CSR models through
//! `read_csr`, and all of them hold the same weights. Exporting the version-1 checkpoint today
//! gives a version-2 file with the same model.

use std::path::PathBuf;
use ticket_core::checkpoint;
use ticket_core::csr_format::ValueDtype;
use ticket_core::tensor_file::TensorFile;
use ticket_core::{Graph, Network};
use ticket_export::{export_checkpoint, read_csr, ExportOptions};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v1").join(name)
}

/// The version-1 checkpoint, masks applied.
fn masked_checkpoint() -> Network {
    let mut net = checkpoint::load(&fixture("dense.safetensors")).unwrap().net;
    net.apply_masks();
    net
}

#[test]
fn dense_checkpoint_loads_with_its_arch_and_metadata() {
    let path = fixture("dense.safetensors");
    let loaded = checkpoint::load(&path).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let file = TensorFile::parse(&bytes, &path).unwrap();
    assert_eq!(file.meta("format_version").unwrap(), "1");
    assert!(!file.contains("graph") && file.metadata().get("graph").is_none());
    assert_eq!(loaded.net.graph, "64-8-10".parse::<Graph>().unwrap());
    assert_eq!(loaded.meta.iteration, 100);
    assert_eq!(loaded.meta.dataset, "digits");
    assert!(loaded.has_masks);
    // The weights are the stored f32 bytes, read here without the checkpoint loader.
    for (name, layer) in ["fc1", "fc2"].iter().zip(&loaded.net.layers) {
        let dims = [layer.shape.rows, layer.shape.cols];
        assert_eq!(file.f32(&format!("{name}.weight"), &dims).unwrap(), layer.weight);
        assert_eq!(file.u8(&format!("{name}.weight_mask"), &dims).unwrap(), layer.mask);
    }
    let kept = loaded.net.kept_weights();
    assert!(0 < kept && kept < loaded.net.graph.dense_weights(), "a pruned level: {kept}");
}

#[test]
fn csr_f32_holds_exactly_the_masked_checkpoint() {
    let csr = read_csr(&fixture("csr-f32.safetensors")).unwrap();
    assert_eq!(csr.value_dtype, ValueDtype::F32);
    assert_eq!(csr.metadata["format_version"], "1");
    assert_eq!(csr.model.to_dense(), masked_checkpoint());
}

#[test]
fn csr_f16_and_bf16_hold_the_checkpoint_rounded_once() {
    let source = masked_checkpoint();
    type Round = fn(f32) -> f32;
    let cases: [(&str, ValueDtype, Round); 2] = [
        ("csr-f16.safetensors", ValueDtype::F16, |w| half::f16::from_f32(w).to_f32()),
        ("csr-bf16.safetensors", ValueDtype::Bf16, |w| half::bf16::from_f32(w).to_f32()),
    ];
    for (name, dtype, round) in cases {
        let csr = read_csr(&fixture(name)).unwrap();
        assert_eq!(csr.value_dtype, dtype);
        let dense = csr.model.to_dense();
        for (got, want) in dense.layers.iter().zip(&source.layers) {
            assert_eq!(got.mask, want.mask, "{name}: the stored positions are the mask");
            let rounded: Vec<f32> = want.weight.iter().map(|&w| round(w)).collect();
            assert_eq!(got.weight, rounded, "{name}");
            assert_eq!(got.bias, want.bias, "{name}: biases stay f32");
        }
    }
}

#[test]
fn exporting_a_version_1_checkpoint_writes_version_2_with_the_same_model() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("v2.safetensors");
    let source = checkpoint::load(&fixture("dense.safetensors")).unwrap().net;
    export_checkpoint(&source, &ExportOptions::new(&out)).unwrap();
    let v2 = read_csr(&out).unwrap();
    let v1 = read_csr(&fixture("csr-f32.safetensors")).unwrap();
    assert_eq!(v2.metadata["format_version"], "2");
    assert_eq!(Graph::from_json(&v2.metadata["graph"]).unwrap(), v1.model.graph);
    assert_eq!(v2.model, v1.model);
    for key in ["layers", "value_dtype", "density", "dense_params", "kept_params"] {
        assert_eq!(v2.metadata[key], v1.metadata[key], "{key}");
    }
}
