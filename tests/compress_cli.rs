//! `ticket export --dtype int8|kN --index-bits N` and `--sweep` end to end: the compressed file
//! keeps the masks, `ticket infer` runs it straight from the file with the accuracy the export
//! report measured on the decoded weights, the report's bytes are the file's, and the sweep's
//! rows agree with real exports.

mod common;
use common::*;
use std::path::Path;
use ticket_core::checkpoint::{self, CheckpointMeta};
use ticket_core::{Graph, Network};

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn json(out: &std::process::Output) -> serde_json::Value {
    assert!(out.status.success(), "{}", stderr(out));
    serde_json::from_str(&stdout(out)).unwrap()
}

/// A digits-sized checkpoint (64 inputs, 10 classes) keeping about a quarter of its weights.
fn checkpoint(path: &Path) -> Network {
    checkpoint_of(path, &"64-24-10".parse().unwrap())
}

/// A checkpoint of `graph` keeping about a quarter of its weights.
fn checkpoint_of(path: &Path, graph: &Graph) -> Network {
    let mut net = Network::zeros(graph);
    for (l, layer) in net.layers.iter_mut().enumerate() {
        for (i, w) in layer.weight.iter_mut().enumerate() {
            *w = (((i * 41 + l * 13) % 29) as f32 - 14.0) / 19.0;
        }
        for (i, m) in layer.mask.iter_mut().enumerate() {
            *m = ((i * 5 + l) % 4 == 0) as u8;
        }
        layer.apply_mask();
    }
    let meta = CheckpointMeta { iteration: 10, dataset: "digits".into(), seed: 1 };
    checkpoint::save(path, &net, &meta).unwrap();
    net
}

/// A CSR file given to `ticket export` is re-encoded from its stored weights: the f32 CSR
/// file exported again with `--dtype k6 --index-bits 5` is, tensor for tensor and in its
/// metadata, the file the checkpoint itself exports with those codecs; a k6 file re-encoded
/// as f32 holds its decoded values, which `ticket infer` gives the same logits from.
#[test]
fn export_re_encodes_a_csr_file() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("c.safetensors");
    checkpoint(&source);
    let p = |name: &str| dir.path().join(name);
    let export = |input: &Path, out: &Path, codecs: &[&str]| {
        let mut args = vec!["export", s(input), "--out", s(out), "--json"];
        args.extend_from_slice(codecs);
        json(&ticket(&args))
    };
    let k6 = ["--dtype", "k6", "--index-bits", "5"];
    export(&source, &p("f32.safetensors"), &[]);
    export(&source, &p("k6.safetensors"), &k6);
    export(&p("f32.safetensors"), &p("k6-again.safetensors"), &k6);
    let read = |name: &str| std::fs::read(p(name)).unwrap();
    // Metadata (JSON, in no set order) and every tensor's dtype, shape and bytes.
    let contents = |name: &str| {
        let bytes = read(name);
        let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
        let meta: std::collections::BTreeMap<String, String> =
            header.metadata().clone().unwrap_or_default().into_iter().collect();
        let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let mut tensors: Vec<(String, String, Vec<usize>, Vec<u8>)> = (file.tensors().into_iter())
            .map(|(n, t)| (n, format!("{:?}", t.dtype()), t.shape().to_vec(), t.data().to_vec()))
            .collect();
        tensors.sort();
        (meta, tensors)
    };
    let (again, direct) = (contents("k6-again.safetensors"), contents("k6.safetensors"));
    assert_eq!(again.0, direct.0, "metadata");
    assert!(again.1 == direct.1, "the re-encoded file's tensors differ");
    export(&p("k6.safetensors"), &p("k6-as-f32.safetensors"), &[]);
    let x = p("x.safetensors");
    let inputs: Vec<u8> =
        (0..3 * 64).flat_map(|i| ((i % 17) as f32 / 16.0).to_le_bytes()).collect();
    let tensor =
        safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![3, 64], &inputs)
            .unwrap();
    safetensors::serialize_to_file([("input", tensor)], None, &x).unwrap();
    let logits = |model: &str| {
        let out = p(&format!("{model}.logits.safetensors"));
        let run = ticket(&["infer", s(&p(model)), "--input", s(&x), "--output", s(&out)]);
        assert!(run.status.success(), "{}", stderr(&run));
        let bytes = std::fs::read(&out).unwrap();
        let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        file.tensor("logits").unwrap().data().to_vec()
    };
    assert_eq!(logits("k6-as-f32.safetensors"), logits("k6.safetensors"));
    let bad = p("f32.safetensors");
    let mut bytes = read("f32.safetensors");
    let end = bytes.len() - 8;
    bytes.truncate(end);
    std::fs::write(&bad, bytes).unwrap();
    let out = ticket(&["export", s(&bad), "--out", s(&p("never.safetensors"))]);
    assert_clean_failure(&out, "f32.safetensors");
    assert!(!p("never.safetensors").exists());
}

#[test]
fn compressed_exports_run_in_infer_with_the_reported_accuracy() {
    let conv = ticket_core::Recipe::resolve("digits-conv").unwrap().graph().unwrap();
    for graph in ["64-24-10".parse().unwrap(), conv] {
        compressed_export_runs_in_infer(&graph);
    }
}

/// Every codec kind exported from a checkpoint of `graph` runs in `ticket infer` (sparse and
/// dense paths) with the accuracy the export measured on the decoded weights.
fn compressed_export_runs_in_infer(graph: &Graph) {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("c.safetensors");
    let net = checkpoint_of(&source, graph);
    for (dtype, bits) in [("k6", Some("5")), ("int8", Some("3")), ("k2", None), ("f16", Some("8"))]
    {
        let out = dir.path().join(format!("{dtype}.safetensors"));
        let mut args = vec!["export", s(&source), "--dtype", dtype, "--out", s(&out)];
        args.extend(["--dataset", "digits", "--json"]);
        if let Some(b) = bits {
            args.extend(["--index-bits", b]);
        }
        let report = json(&ticket(&args));
        let size = std::fs::metadata(&out).unwrap().len();
        assert_eq!(report["total"]["csr_file_bytes"], size);
        assert_eq!(report["value_dtype"], dtype);
        let b = &report["total"]["bits"];
        let total = report["total"]["bits_per_kept_weight"].as_f64().unwrap();
        let parts: f64 =
            ["values", "indices", "other"].iter().map(|k| b[k].as_f64().unwrap()).sum();
        assert!((parts - total).abs() < 1e-9, "{dtype}: {parts} != {total}");
        let decoded = ticket_export::read_csr_as_dense(&out).unwrap();
        for (d, n) in decoded.layers.iter().zip(&net.layers) {
            assert_eq!(d.mask, n.mask, "{dtype}: masks");
        }
        let exported = report["accuracy"]["exported"].as_f64().unwrap();
        let infer = json(&ticket(&["infer", s(&out), "--dataset", "digits", "--json"]));
        assert_eq!(infer["accuracy"]["sparse"].as_f64().unwrap(), exported, "{dtype}");
        assert_eq!(infer["accuracy"]["dense"].as_f64().unwrap(), exported, "{dtype}");
    }
}

#[test]
fn sweep_rows_match_real_exports_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("c.safetensors");
    checkpoint(&source);
    let sweep = json(&ticket(&["export", s(&source), "--sweep", "--json"]));
    let rows = sweep["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 11 * 7, "11 value codecs x 7 index codecs");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "the sweep wrote a file");
    for (dtype, bits, name) in [("k4", Some("6"), "k4+gap6"), ("int8", None, "int8")] {
        let out = dir.path().join(format!("{name}.safetensors"));
        let mut args = vec!["export", s(&source), "--dtype", dtype, "--out", s(&out), "--json"];
        if let Some(b) = bits {
            args.extend(["--index-bits", b]);
        }
        let report = json(&ticket(&args));
        let row = rows.iter().find(|r| r["codecs"] == name).unwrap();
        // The sweep's files carry no provenance: the same tensors, a slightly shorter header.
        let tensors = |total: &serde_json::Value| total["csr_bytes"]["total"].as_u64().unwrap();
        let file = report["total"]["csr_file_bytes"].as_u64().unwrap();
        let header = report["total"]["header_bytes"].as_u64().unwrap();
        assert_eq!(tensors(&report["total"]) + header, file);
        let row_bytes = row["file_bytes"].as_u64().unwrap();
        assert!(row_bytes <= file && row_bytes + 64 >= file, "{name}: {row_bytes} vs {file}");
        assert_eq!(row["bits"]["values"], report["total"]["bits"]["values"]);
        assert_eq!(row["bits"]["indices"], report["total"]["bits"]["indices"]);
    }
}

#[test]
fn bad_codec_flags_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("c.safetensors");
    checkpoint(&source);
    let out = dir.path().join("x.safetensors");
    let o = ticket(&["export", s(&source), "--dtype", "k9", "--out", s(&out)]);
    assert!(
        !o.status.success() && stderr(&o).contains("unknown value dtype `k9`"),
        "{}",
        stderr(&o)
    );
    let o = ticket(&["export", s(&source), "--index-bits", "2", "--out", s(&out)]);
    assert!(!o.status.success() && stderr(&o).contains("`2` is not 3..8"), "{}", stderr(&o));
    assert!(!out.exists());
}

#[test]
fn infer_bench_reports_the_memory_footprint() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("c.safetensors");
    checkpoint(&source);
    let out = dir.path().join("k5.safetensors");
    let report = json(&ticket(&[
        "export",
        s(&source),
        "--dtype",
        "k5",
        "--index-bits",
        "4",
        "--out",
        s(&out),
        "--json",
    ]));
    let bench = json(&ticket(&["infer", s(&out), "--bench", "--json", "--threads", "1"]));
    // Where the sliced copies do not pay, each layer's batch-1 copy in coded rows: a u32
    // row pointer a row plus one, a u32 entry a kept weight, the padded 256-entry codebook.
    let coded_rows: u64 = report["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| 4 * (l["rows"].as_u64().unwrap() + 1) + 4 * l["kept_weights"].as_u64().unwrap())
        .map(|b| b + 4 * 256)
        .sum();
    let want = if ticket_infer::kernels::coded_rows::CodedRows::pays() { coded_rows } else { 0 };
    assert_eq!(bench["weight_bytes"]["sparse_coded_rows_copies"].as_u64(), Some(want));
    let m = &bench["memory"]["sparse"];
    let file = std::fs::metadata(&out).unwrap().len();
    let weights = m["weight_bytes"].as_u64().unwrap();
    // The file's arrays plus two padded 256-entry codebooks and the gap row starts, never an
    // f32 copy of the kept weights (which alone would be 4 bytes per weight).
    let kept = bench["weight_bytes"]["sparse"].as_u64().unwrap();
    assert_eq!(kept, weights);
    assert!(weights < file + 2 * 1024 + 4 * 40, "{weights} bytes resident for a {file}-byte file");
    assert!(
        m["peak_rss_bytes_after_runs"].as_u64().unwrap()
            >= m["peak_rss_bytes_after_load"].as_u64().unwrap()
    );
    assert!(m["load_ms"].as_f64().unwrap() > 0.0);
    let w = &m["workspace_bytes"];
    // Batch 1: two buffers of the widest layer (24) and the decoded-row buffer.
    assert!(w["batch1"].as_u64().unwrap() >= 2 * 4 * 24);
    assert!(w["batch1024"].as_u64().unwrap() > w["batch1"].as_u64().unwrap());
    assert!(bench["memory"]["dense"]["peak_rss_bytes_after_dense_runs"].as_u64().is_some());
}
