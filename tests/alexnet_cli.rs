//! A small AlexNet-shaped net (`tests/fixtures/import/tiny-alexnet-*`, written by
//! `make_fixtures.py alexnet` with both PyTorch exporters): imported and run, it gives ONNX
//! Runtime's logits; `--keep-layers` prunes exactly the weights
//! `torch.nn.utils.prune.l1_unstructured` prunes at the same fractions; `--dtype
//! conv=k8,linear=f16` stores each layer kind in its codec, `--index-bits conv=N,linear=M`
//! and `auto` each kind's column indices in gaps of its width (`auto`: the fewest bytes, checked
//! against every width exported); bad specs are clear errors.

mod common;

use common::{assert_clean_failure, ticket};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use ticket_core::tensor_file::{write_tensors, OwnedTensor, TensorFile};
use ticket_core::Par;

const EXPORTERS: [&str; 2] = ["dynamo-false", "dynamo"];

/// The fractions make_fixtures.py's TINY_ALEXNET_KEEP gives l1_unstructured, named the two
/// ways --keep-layers accepts (Han et al.'s position names and the file's own).
const KEEP_LAYERS: &str =
    "conv1=0.84,features.3=0.38,conv3=0.35,fc4=0.09,classifier.4=0.5,classifier.6=0.25";
const LAYERS: [&str; 6] =
    ["features.0", "features.3", "features.5", "classifier.1", "classifier.4", "classifier.6"];

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/import").join(name)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Tensor `name` of tiny-alexnet-expected.safetensors, with its shape.
fn expected(name: &str) -> (Vec<usize>, Vec<f32>) {
    let path = fixture("tiny-alexnet-expected.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    let file = TensorFile::parse(&bytes, &path).unwrap();
    let shape = file.view(name).unwrap().shape().to_vec();
    (shape.clone(), file.f32(name, &shape).unwrap())
}

fn export(dir: &Path, exporter: &str, tag: &str, extra: &[&str]) -> (PathBuf, serde_json::Value) {
    let source = fixture(&format!("tiny-alexnet-{exporter}.onnx"));
    let out = dir.join(format!("{exporter}-{tag}.safetensors"));
    let mut args = vec!["export", s(&source), "--out", s(&out), "--json"];
    args.extend_from_slice(extra);
    let run = ticket(&args);
    assert!(run.status.success(), "{exporter} {tag}: {}", common::stderr(&run));
    (out, serde_json::from_slice(&run.stdout).unwrap())
}

/// `ticket infer` of `model` on the fixture's input.
fn infer(dir: &Path, model: &Path) -> Vec<f32> {
    let (shape, x) = expected("input");
    let input = dir.join("input.safetensors");
    let features = shape[1..].iter().product();
    let tensors = vec![("input".to_string(), OwnedTensor::f32(vec![shape[0], features], &x))];
    write_tensors(&input, tensors, &BTreeMap::new()).unwrap();
    let logits = dir.join("logits.safetensors");
    let run = ticket(&["infer", s(model), "--input", s(&input), "--output", s(&logits)]);
    assert!(run.status.success(), "{}", common::stderr(&run));
    let bytes = std::fs::read(&logits).unwrap();
    let file = TensorFile::parse(&bytes, &logits).unwrap();
    let shape = file.view("logits").unwrap().shape().to_vec();
    file.f32("logits", &shape).unwrap()
}

fn assert_close(got: &[f32], want: &[f32], tolerance: f32, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= tolerance * w.abs().max(1.0), "{what}[{i}]: {g} vs {w}");
    }
}

#[test]
fn both_exporters_import_and_give_onnx_runtimes_logits() {
    let dir = tempfile::tempdir().unwrap();
    for exporter in EXPORTERS {
        let (csr, report) = export(dir.path(), exporter, "dense", &[]);
        let graph = report["graph"].as_str().unwrap();
        assert!(graph.contains("features.0(8@5x5)") && graph.contains("maxpool(3x3)"), "{graph}");
        assert_close(&infer(dir.path(), &csr), &expected(exporter).1, 1e-4, exporter);
    }
}

#[test]
fn keep_layers_prunes_what_torch_l1_unstructured_prunes() {
    let dir = tempfile::tempdir().unwrap();
    for exporter in EXPORTERS {
        let (csr, report) = export(dir.path(), exporter, "pruned", &["--keep-layers", KEEP_LAYERS]);
        let net = ticket_export::read_csr_as_dense(&csr).unwrap();
        for (layer, name) in net.layers.iter().zip(LAYERS) {
            let want: Vec<u8> =
                expected(&format!("mask.{name}")).1.iter().map(|&m| m as u8).collect();
            assert_eq!(layer.mask, want, "{exporter}: layer {name}");
        }
        let layers = &report["pruned_on_export"]["layers"];
        assert_eq!(layers["features.0"], 0.84, "{report}");
        assert_eq!(layers["classifier.1"], 0.09, "{report}");
        // The CSR file runs as its dense decoding computes.
        let (shape, x) = expected("input");
        let want = net.logits(&x, shape[0], Par::Seq);
        assert_close(&infer(dir.path(), &csr), &want, 1e-4, exporter);
    }
}

#[test]
fn dtype_per_layer_kind_stores_each_kind_in_its_codec() {
    let dir = tempfile::tempdir().unwrap();
    let extra = ["--dtype", "conv=k8,linear=f16", "--keep-layers", KEEP_LAYERS];
    let (csr, report) = export(dir.path(), "dynamo", "mixed", &extra);
    assert_eq!(report["value_dtype"], "conv=k8,linear=f16");
    let codecs: Vec<&str> = report["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["value_dtype"].as_str().unwrap())
        .collect();
    assert_eq!(codecs, ["k8", "k8", "k8", "f16", "f16", "f16"]);
    let bytes = std::fs::read(&csr).unwrap();
    let file = TensorFile::parse(&bytes, &csr).unwrap();
    assert_eq!(file.view("features.0.weight.values").unwrap().dtype(), safetensors::Dtype::U8);
    assert!(file.view("features.0.weight.codebook").is_ok());
    assert_eq!(file.view("classifier.1.weight.values").unwrap().dtype(), safetensors::Dtype::F16);
    let net = ticket_export::read_csr_as_dense(&csr).unwrap();
    let (shape, x) = expected("input");
    let want = net.logits(&x, shape[0], Par::Seq);
    assert_close(&infer(dir.path(), &csr), &want, 1e-4, "mixed codecs");
}

/// The layer kinds' index codecs a report names, in layer order.
fn index_codecs(report: &serde_json::Value) -> Vec<String> {
    let layers = report["layers"].as_array().unwrap();
    layers.iter().map(|l| l["index_dtype"].as_str().unwrap().to_string()).collect()
}

#[test]
fn index_bits_per_layer_kind_decode_to_the_f32_network() {
    let dir = tempfile::tempdir().unwrap();
    let keep = ["--keep-layers", KEEP_LAYERS];
    let (f32_file, _) = export(dir.path(), "dynamo", "absolute", &keep);
    let want = ticket_export::read_csr_as_dense(&f32_file).unwrap();
    let want_logits = infer(dir.path(), &f32_file);
    let mut extra = keep.to_vec();
    extra.extend(["--index-bits", "conv=3,linear=5"]);
    let (csr, report) = export(dir.path(), "dynamo", "per-kind", &extra);
    assert_eq!(report["index_codec"], "conv=gap3,linear=gap5");
    assert_eq!(index_codecs(&report), ["gap3", "gap3", "gap3", "gap5", "gap5", "gap5"]);
    let bytes = std::fs::read(&csr).unwrap();
    let file = TensorFile::parse(&bytes, &csr).unwrap();
    assert_eq!(file.meta("index_bits").unwrap(), "conv=3,linear=5");
    assert_eq!(file.meta("format_version").unwrap(), "2.1");
    // The same weights at the same positions, and ticket infer gives the f32 file's logits.
    assert_eq!(ticket_export::read_csr_as_dense(&csr).unwrap(), want);
    assert_eq!(infer(dir.path(), &csr), want_logits);

    // auto: per kind no width of 3..8 gives fewer index bytes.
    extra.truncate(2);
    extra.extend(["--index-bits", "auto"]);
    let (auto, report) = export(dir.path(), "dynamo", "auto", &extra);
    assert_eq!(ticket_export::read_csr_as_dense(&auto).unwrap(), want);
    let index_bytes = |report: &serde_json::Value, conv: bool| -> u64 {
        let layers = report["layers"].as_array().unwrap();
        let kind = layers.iter().filter(|l| (l["op"] == "conv2d") == conv);
        kind.map(|l| l["csr_bytes"]["indices"].as_u64().unwrap()).sum()
    };
    let chosen = index_codecs(&report);
    for bits in 3..=8 {
        let width = bits.to_string();
        let (_, fixed) =
            export(dir.path(), "dynamo", &width, &[keep[0], keep[1], "--index-bits", &width]);
        for conv in [true, false] {
            assert!(
                index_bytes(&report, conv) <= index_bytes(&fixed, conv),
                "{chosen:?} vs {bits}"
            );
        }
    }
}

#[test]
fn bad_specs_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let source = fixture("tiny-alexnet-dynamo.onnx");
    let out = dir.path().join("x.safetensors");
    let run =
        |flag: &str, value: &str| ticket(&["export", s(&source), "--out", s(&out), flag, value]);
    assert_clean_failure(&run("--dtype", "conv=k9"), "`conv=k9`: unknown value dtype `k9`");
    assert_clean_failure(&run("--dtype", "pool=k4"), "unknown layer kind `pool`");
    assert_clean_failure(&run("--index-bits", "conv=9"), "`conv=9`: `9` is not 3..8");
    assert_clean_failure(&run("--index-bits", "pool=4"), "unknown layer kind `pool`");
    assert_clean_failure(&run("--index-bits", "conv=3,conv=4"), "names layer kind `conv` twice");
    assert_clean_failure(&run("--keep-layers", "fc6=1.5"), "in (0, 1]");
    let unknown = run("--keep-layers", "foo=0.5");
    assert_clean_failure(&unknown, "the model has no layer `foo`");
    assert!(
        common::stderr(&unknown).contains("features.0 (conv1)"),
        "{}",
        common::stderr(&unknown)
    );
    assert_clean_failure(
        &run("--keep-layers", "conv1=0.5,features.0=0.4"),
        "names layer features.0 twice",
    );
    assert!(!out.exists());
}
