//! Version-1 files (crates/export/tests/fixtures/v1, written by an earlier ticket) through the
//! command line: `ticket export` of the version-1 checkpoint writes the version-2 model that
//! the version-1 CSR file holds, and `ticket infer` runs the version-1 CSR file with the
//! checkpoint's logits.

mod common;
use common::*;
use std::collections::BTreeMap;
use std::path::PathBuf;
use ticket_core::checkpoint;
use ticket_core::tensor_file::{write_tensors, OwnedTensor, TensorFile};
use ticket_core::Par;
use ticket_export::read_csr;

fn fixture(name: &str) -> String {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("crates/export/tests/fixtures/v1");
    dir.join(name).to_str().unwrap().to_string()
}

#[test]
fn export_of_a_version_1_checkpoint_gives_the_version_1_csr_model() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("v2.safetensors");
    let run = ticket(&["export", &fixture("dense.safetensors"), "--out", out.to_str().unwrap()]);
    assert!(run.status.success(), "{}", stderr(&run));
    let v2 = read_csr(&out).unwrap();
    let v1 = read_csr(std::path::Path::new(&fixture("csr-f32.safetensors"))).unwrap();
    assert_eq!(v2.metadata["format_version"], "2");
    assert_eq!(v2.model, v1.model);
}

#[test]
fn infer_runs_a_version_1_csr_file_with_the_checkpoints_logits() {
    let dir = tempfile::tempdir().unwrap();
    let (input, output) = (dir.path().join("x.safetensors"), dir.path().join("y.safetensors"));
    let batch = 5;
    let x: Vec<f32> = (0..batch * 64).map(|i| ((i * 7919) % 17) as f32 / 16.0).collect();
    let tensors = vec![("input".to_string(), OwnedTensor::f32(vec![batch, 64], &x))];
    write_tensors(&input, tensors, &BTreeMap::new()).unwrap();
    let run = ticket(&[
        "infer",
        &fixture("csr-f32.safetensors"),
        "--input",
        input.to_str().unwrap(),
        "--output",
        output.to_str().unwrap(),
    ]);
    assert!(run.status.success(), "{}", stderr(&run));
    let bytes = std::fs::read(&output).unwrap();
    let logits = TensorFile::parse(&bytes, &output).unwrap().f32("logits", &[batch, 10]).unwrap();
    let mut net =
        checkpoint::load(std::path::Path::new(&fixture("dense.safetensors"))).unwrap().net;
    net.apply_masks();
    let want = net.logits(&x, batch, Par::Seq);
    for (got, want) in logits.iter().zip(&want) {
        assert!((got - want).abs() <= 1e-5 * want.abs().max(1.0), "{got} vs {want}");
    }
}
