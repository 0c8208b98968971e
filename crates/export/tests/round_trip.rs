//! CSR -> dense equals the masked dense model: exactly for f32, within one rounding of each
//! value for f16 and bf16. Files are checked twice: with an independent reader of the raw
//! tensors, and through `read_csr_as_dense`.

mod common;
use common::*;
use half::{bf16, f16};
use proptest::prelude::*;
use safetensors::Dtype;
use std::path::Path;
use ticket_core::csr_format::ValueDtype;
use ticket_core::tensor_file::TensorFile;
use ticket_core::Network;
use ticket_export::{read_csr_as_dense, write_csr, Provenance};

const DTYPES: [ValueDtype; 3] = [ValueDtype::F32, ValueDtype::F16, ValueDtype::Bf16];

/// What `v` must read back as once stored in `dtype`, by half's scalar conversion.
fn stored(v: f32, dtype: ValueDtype) -> f32 {
    match dtype {
        ValueDtype::F32 => v,
        ValueDtype::F16 => f16::from_f32(v).to_f32(),
        ValueDtype::Bf16 => bf16::from_f32(v).to_f32(),
    }
}

/// Value `k` of raw little-endian `bytes` of `dtype`, decoded one at a time.
fn raw_value(bytes: &[u8], k: usize, dtype: Dtype) -> f32 {
    match dtype {
        Dtype::F32 => f32::from_le_bytes(bytes[4 * k..4 * k + 4].try_into().unwrap()),
        Dtype::F16 => f16::from_bits(u16::from_le_bytes([bytes[2 * k], bytes[2 * k + 1]])).to_f32(),
        Dtype::BF16 => {
            bf16::from_bits(u16::from_le_bytes([bytes[2 * k], bytes[2 * k + 1]])).to_f32()
        }
        other => panic!("unexpected value dtype {other:?}"),
    }
}

fn write(dir: &Path, net: &Network, dtype: ValueDtype) -> std::path::PathBuf {
    let path = dir.join(format!("m-{dtype}.safetensors"));
    write_csr(&path, net, dtype, &Provenance::default()).unwrap();
    path
}

/// Checks the file at `path` against `net`, tensor by tensor and through the decoder.
fn check_file(path: &Path, net: &Network, dtype: ValueDtype) {
    for (layer, raw) in net.layers.iter().zip(raw_layers(path)) {
        let (rows, cols) = (layer.shape.rows, layer.shape.cols);
        assert_eq!(raw.shape, [rows as i64, cols as i64]);
        assert_eq!(raw.index_dtype, if cols <= 65_536 { Dtype::U16 } else { Dtype::U32 });
        assert_eq!(raw.value_dtype, dtype.dtype());
        assert_eq!(raw.indptr.len(), rows + 1);
        assert_eq!(raw.indptr[0], 0);
        for r in 0..rows {
            let range = raw.indptr[r] as usize..raw.indptr[r + 1] as usize;
            let kept: Vec<u32> =
                (0..cols as u32).filter(|&c| layer.mask[r * cols + c as usize] == 1).collect();
            assert_eq!(raw.indices[range.clone()], kept[..], "row {r}: columns, sorted");
            for (k, &c) in range.zip(&kept) {
                let want = stored(layer.weight[r * cols + c as usize], dtype);
                let got = raw_value(&raw.value_bytes, k, raw.value_dtype);
                assert_eq!(got.to_bits(), want.to_bits(), "row {r} col {c}: {got} vs {want}");
            }
        }
        let bias_bits = |b: &[f32]| b.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        assert_eq!(bias_bits(&raw.bias), bias_bits(&layer.bias));
    }
    let dense = read_csr_as_dense(path).unwrap();
    assert_eq!(dense.graph, net.graph);
    for (got, want) in dense.layers.iter().zip(&net.layers) {
        assert_eq!(got.mask, want.mask);
        assert_eq!(got.bias, want.bias);
        for ((g, w), m) in got.weight.iter().zip(&want.weight).zip(&want.mask) {
            let w = if *m == 1 { stored(*w, dtype) } else { 0.0 };
            assert_eq!(g.to_bits(), w.to_bits());
        }
    }
}

#[test]
fn f32_round_trip_is_exact() {
    let dir = tempfile::tempdir().unwrap();
    let net = random_net("30-20-10", 0.3, 1);
    let path = write(dir.path(), &net, ValueDtype::F32);
    check_file(&path, &net, ValueDtype::F32);
    assert_eq!(read_csr_as_dense(&path).unwrap(), net);
}

#[test]
fn half_precision_rounds_each_value_once() {
    let dir = tempfile::tempdir().unwrap();
    let net = random_net("40-30-10", 0.5, 2);
    for dtype in [ValueDtype::F16, ValueDtype::Bf16] {
        let path = write(dir.path(), &net, dtype);
        check_file(&path, &net, dtype);
        // Rounding happened (the check above is not comparing f32 with f32)...
        let back = read_csr_as_dense(&path).unwrap();
        let changed = back.layers[0].weight.iter().zip(&net.layers[0].weight).any(|(a, b)| a != b);
        assert!(changed, "{dtype}: no value was rounded");
        // ...and stayed within half an ulp: 2^-11 relative for f16 normals, 2^-8 for bf16.
        let rel = if dtype == ValueDtype::F16 { 1.0 / 2048.0 } else { 1.0 / 256.0 };
        for (a, b) in back.layers[0].weight.iter().zip(&net.layers[0].weight) {
            if b.abs() > 1e-4 {
                assert!((a - b).abs() <= rel * b.abs(), "{dtype}: {b} stored as {a}");
            }
        }
    }
}

#[test]
fn empty_rows_all_zero_layer_dense_layer_and_kept_zeros() {
    let dir = tempfile::tempdir().unwrap();
    let mut net = random_net("6-5-4-3", 0.5, 3);
    let l0 = &mut net.layers[0];
    l0.mask[..6].fill(0); // row 0 empty
    l0.mask[18..24].fill(0); // row 3 empty
    l0.mask[7] = 1;
    l0.weight[7] = 0.0; // a kept weight that is exactly zero is still stored
    net.layers[1].mask.fill(0); // nothing kept
    net.layers[2].mask.fill(1); // everything kept
    net.apply_masks();
    for dtype in DTYPES {
        let path = write(dir.path(), &net, dtype);
        check_file(&path, &net, dtype);
        let raw = raw_layers(&path);
        assert_eq!(raw[1].indices.len(), 0);
        assert_eq!(raw[1].indptr, [0; 5]);
        assert_eq!(raw[2].indices.len(), 12);
    }
}

#[test]
fn more_than_65536_columns_use_u32_indices() {
    let dir = tempfile::tempdir().unwrap();
    let mut net = random_net("70000-2-1", 0.01, 4);
    for c in [0, 65_535, 65_536, 69_999] {
        net.layers[0].mask[c] = 1;
        net.layers[0].weight[c] = 0.5 + c as f32 * 1e-6;
    }
    for dtype in DTYPES {
        let path = write(dir.path(), &net, dtype);
        check_file(&path, &net, dtype);
        let raw = raw_layers(&path);
        assert_eq!(raw[0].index_dtype, Dtype::U32);
        assert_eq!(raw[1].index_dtype, Dtype::U16);
        assert!(raw[0].indices.contains(&69_999));
    }
}

#[test]
fn exactly_65536_columns_still_use_u16_indices() {
    let dir = tempfile::tempdir().unwrap();
    let mut net = random_net("65536-2-1", 0.001, 5);
    net.layers[0].mask[65_535] = 1;
    net.layers[0].weight[65_535] = -0.75;
    let path = write(dir.path(), &net, ValueDtype::F32);
    check_file(&path, &net, ValueDtype::F32);
    let raw = raw_layers(&path);
    assert_eq!(raw[0].index_dtype, Dtype::U16);
    assert_eq!(raw[0].indices[raw[0].indptr[1] as usize - 1], 65_535);
}

#[test]
fn metadata_is_complete() {
    let dir = tempfile::tempdir().unwrap();
    let net = random_net("10-8-4", 0.25, 6);
    let path = dir.path().join("m.safetensors");
    let provenance = Provenance { dataset: "digits".into(), source_accuracy: Some(0.875) };
    write_csr(&path, &net, ValueDtype::Bf16, &provenance).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let file = TensorFile::parse(&bytes, &path).unwrap();
    let kept: usize = net.layers.iter().map(|l| l.mask.iter().filter(|&&m| m == 1).count()).sum();
    assert_eq!(file.meta("format").unwrap(), "ticket-csr");
    assert_eq!(file.meta("format_version").unwrap(), "2");
    let graph = ticket_core::Graph::from_json(file.meta("graph").unwrap()).unwrap();
    assert_eq!(graph.to_string(), "10-8-4");
    assert_eq!(file.meta("layers").unwrap(), "fc1,fc2");
    assert_eq!(file.meta("value_dtype").unwrap(), "bf16");
    assert_eq!(file.meta_parsed::<f64>("density").unwrap(), kept as f64 / 112.0);
    assert_eq!(file.meta_parsed::<usize>("dense_params").unwrap(), 80 + 32 + 8 + 4);
    assert_eq!(file.meta_parsed::<usize>("kept_params").unwrap(), kept + 12);
    assert_eq!(file.meta_parsed::<f64>("source_accuracy").unwrap(), 0.875);
    assert_eq!(file.meta("dataset").unwrap(), "digits");
    assert_eq!(file.metadata().len(), 10);
    // Unknown accuracy: no key at all.
    write_csr(&path, &net, ValueDtype::F32, &Provenance::default()).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let file = TensorFile::parse(&bytes, &path).unwrap();
    assert!(file.meta("source_accuracy").is_err());
}

/// Layer sizes 1..24, density 0 (all pruned), 1 (all kept) or anything between.
fn model() -> impl Strategy<Value = (String, f64, u64)> {
    let sizes = prop::collection::vec(1usize..24, 2..5)
        .prop_map(|s| s.iter().map(usize::to_string).collect::<Vec<_>>().join("-"));
    let density = prop_oneof![Just(0.0), Just(1.0), 0.0..1.0f64];
    (sizes, density, any::<u64>())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn any_masked_model_round_trips((graph, density, seed) in model(), dtype in 0..3usize) {
        let dir = tempfile::tempdir().unwrap();
        let net = random_net(&graph, density, seed);
        let path = write(dir.path(), &net, DTYPES[dtype]);
        check_file(&path, &net, DTYPES[dtype]);
    }
}
