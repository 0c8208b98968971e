//! A conv model (conv with padding and stride, max and average pooling, linear layers) run by
//! PyTorch: `fixtures/torch_conv.py` read `fixtures/torch-conv.safetensors` with the
//! `safetensors` package, built the `torch.nn.Sequential` and stored its logits; ticket's must
//! match them. The model file was written by `examples/torch_fixture_model.rs`.

use std::path::{Path, PathBuf};
use ticket_core::tensor_file::TensorFile;
use ticket_core::Par;
use ticket_infer::{batch_file, SparseModel};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

#[test]
fn logits_match_pytorch() {
    let model = SparseModel::load(&fixture("torch-conv.safetensors")).unwrap();
    assert_eq!(model.graph().input_shape(), [1, 12, 12]);
    let path = fixture("torch-conv-logits.safetensors");
    // The input is stored as PyTorch holds it, [batch, C, H, W].
    let (x, batch) = batch_file::read_inputs(&path, model.graph().input_shape()).unwrap();
    assert_eq!(batch, 7);
    let bytes = std::fs::read(&path).unwrap();
    let want = TensorFile::parse(&bytes, &path).unwrap().f32("logits", &[batch, 10]).unwrap();
    let close = |got: &[f32], want: &[f32], what: &str| {
        for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
            assert!((g - w).abs() <= 1e-4 * w.abs() + 1e-6, "{what}: logit {i}: {g} vs torch {w}");
        }
    };
    for par in [Par::Seq, Par::Rayon(2)] {
        close(&model.logits(&x, batch, par).unwrap(), &want, &format!("batch {par:?}"));
    }
    for (b, (example, want)) in x.chunks_exact(144).zip(want.chunks_exact(10)).enumerate() {
        close(&model.logits(example, 1, Par::Seq).unwrap(), want, &format!("example {b}"));
    }
}
