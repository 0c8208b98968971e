//! The whole export: report arithmetic against the written file, accuracy of the decoded file
//! on a model whose answer is known, and every refusal.

mod common;
use common::*;
use std::fs;
use ticket_core::csr_format::ValueDtype;
use ticket_core::tensor_file::TensorFile;
use ticket_core::{Dataset, Graph, Network};
use ticket_export::{
    dense_f32_file, export_checkpoint, read_csr, Codecs, Error, Evaluation, ExportOptions,
    Provenance,
};

fn kept(net: &Network, layer: usize) -> usize {
    net.layers[layer].mask.iter().filter(|&&m| m == 1).count()
}

#[test]
fn report_bytes_add_up_to_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let net = random_net("64-32-10", 0.2, 11);
    for (dtype, value_bytes) in [(ValueDtype::F32, 4), (ValueDtype::F16, 2), (ValueDtype::Bf16, 2)]
    {
        let out = dir.path().join(format!("m-{dtype}.safetensors"));
        let mut opts = ExportOptions::new(&out);
        opts.codecs = Codecs::float(dtype);
        let report = export_checkpoint(&net, &opts).unwrap();
        let file = fs::read(&out).unwrap();
        let header = 8 + u64::from_le_bytes(file[..8].try_into().unwrap()) as usize;
        let t = &report.total;
        assert_eq!(t.header_bytes, header);
        assert_eq!(t.csr_file_bytes, file.len());
        assert_eq!(t.csr_bytes.total + t.header_bytes, file.len(), "no byte unaccounted for");
        for (i, (l, (rows, cols))) in report.layers.iter().zip([(32, 64), (10, 32)]).enumerate() {
            let nnz = kept(&net, i);
            assert_eq!((l.rows, l.cols, l.kept_weights), (rows, cols, nnz));
            assert_eq!(l.csr_bytes.values, nnz * value_bytes);
            assert_eq!(l.csr_bytes.indices, nnz * 2);
            assert_eq!(l.csr_bytes.indptr, (rows + 1) * 4);
            assert_eq!(l.csr_bytes.shape, 16);
            assert_eq!(l.csr_bytes.bias, rows * 4);
            assert_eq!(l.dense_params, rows * cols + rows);
            assert_eq!(l.kept_params, nnz + rows);
            assert_eq!(l.dense_f32_bytes, 4 * (rows * cols + rows));
            assert_eq!(l.bits_per_kept_weight, Some(8.0 * l.csr_bytes.total as f64 / nnz as f64));
        }
        let kept_weights = kept(&net, 0) + kept(&net, 1);
        assert_eq!(t.kept_params, kept_weights + 42);
        assert_eq!(t.dense_params, 64 * 32 + 32 + 32 * 10 + 10);
        assert_eq!(t.density, kept_weights as f64 / (64 * 32 + 32 * 10) as f64);
        assert_eq!(t.dense_file_bytes, dense_f32_file(&net).len());
        assert_eq!(t.file_ratio, t.dense_file_bytes as f64 / file.len() as f64);
        assert_eq!(t.bits_per_kept_weight, Some(8.0 * file.len() as f64 / kept_weights as f64));
        assert!(t.file_ratio > 1.5, "a 20% model should be much smaller: {}", t.file_ratio);
        let table = report.to_string();
        assert!(table.contains(&format!("CSR {} vs dense f32 {}", file.len(), t.dense_file_bytes)));
        let json: serde_json::Value = serde_json::to_value(&report).unwrap();
        assert_eq!(json["total"]["csr_file_bytes"], file.len());
        assert_eq!(json["layers"][1]["index_dtype"], "u16");
    }
}

#[test]
fn dense_baseline_is_weights_and_biases_only() {
    let net = random_net("7-5-3", 0.5, 12);
    let bytes = dense_f32_file(&net);
    let path = std::path::Path::new("dense.safetensors");
    let file = TensorFile::parse(&bytes, path).unwrap();
    let mut names = file.names();
    names.sort_unstable();
    assert_eq!(names, ["fc1.bias", "fc1.weight", "fc2.bias", "fc2.weight"]);
    assert!(file.metadata().is_empty());
    assert_eq!(file.f32("fc1.weight", &[5, 7]).unwrap(), net.layers[0].weight);
    assert_eq!(file.f32("fc2.bias", &[3]).unwrap(), net.layers[1].bias);
    let header = 8 + u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    assert_eq!(bytes.len(), header + 4 * net.graph.dense_params());
}

/// Two outputs whose weights differ by 2^-12: f32 tells them apart, f16 and bf16 round both
/// to 1.0 and the tie goes to output 0. On the four examples below the source gets 3 right
/// (the last label is wrong on purpose); the half-precision files get one fewer.
fn near_tie() -> (Network, Dataset) {
    let mut net = Network::zeros(&"2-2".parse::<Graph>().unwrap());
    net.layers[0].weight = vec![1.0, 0.0, 0.0, 1.0 + 1.0 / 4096.0];
    net.layers[0].mask = vec![1, 0, 0, 1];
    let data = Dataset {
        features: 2,
        images: vec![1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 0.0],
        labels: vec![0, 1, 1, 1],
    };
    (net, data)
}

#[test]
fn accuracy_is_measured_on_the_written_file() {
    let dir = tempfile::tempdir().unwrap();
    let (net, data) = near_tie();
    for (dtype, exported) in
        [(ValueDtype::F32, 0.75), (ValueDtype::F16, 0.5), (ValueDtype::Bf16, 0.5)]
    {
        let out = dir.path().join(format!("m-{dtype}.safetensors"));
        let mut opts = ExportOptions::new(&out);
        opts.codecs = Codecs::float(dtype);
        opts.provenance.dataset = "toy".into();
        opts.eval = Some(Evaluation { name: "toy", data: &data });
        let report = export_checkpoint(&net, &opts).unwrap();
        let acc = report.accuracy.unwrap();
        assert_eq!((acc.source, acc.exported, acc.examples), (0.75, exported, 4), "{dtype}");
        assert_eq!(acc.change_pp, 100.0 * (exported - 0.75));
        assert!(acc.recorded_in_file);
        assert_eq!(read_csr(&out).unwrap().metadata["source_accuracy"], "0.75");
    }
    // Data other than the training set is measured but not recorded as the source accuracy.
    let out = dir.path().join("other.safetensors");
    let mut opts = ExportOptions::new(&out);
    opts.provenance = Provenance { dataset: "toy".into(), source_accuracy: Some(0.5) };
    opts.eval = Some(Evaluation { name: "elsewhere", data: &data });
    let acc = export_checkpoint(&net, &opts).unwrap().accuracy.unwrap();
    assert!(!acc.recorded_in_file);
    assert_eq!(read_csr(&out).unwrap().metadata["source_accuracy"], "0.5");
}

#[test]
fn data_that_does_not_fit_the_model() {
    let dir = tempfile::tempdir().unwrap();
    let (net, mut data) = near_tie();
    let out = dir.path().join("m.safetensors");
    let mut opts = ExportOptions::new(&out);
    data.labels[0] = 2;
    opts.eval = Some(Evaluation { name: "toy", data: &data });
    let err = export_checkpoint(&net, &opts).unwrap_err().to_string();
    assert!(err.contains("toy has label 2 but the model (2-2) has only 2 outputs"), "{err}");
    let wide = Dataset { features: 3, images: vec![0.0; 3], labels: vec![0] };
    opts.eval = Some(Evaluation { name: "toy", data: &wide });
    let err = export_checkpoint(&net, &opts).unwrap_err().to_string();
    assert!(err.contains("toy has 3 features per example but the model (2-2) takes 2"), "{err}");
    assert!(!out.exists());
}

/// Exports `net` into an empty directory, expecting an error; checks nothing was left behind.
fn refused(net: &Network, dtype: ValueDtype) -> String {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = ExportOptions::new(dir.path().join("m.safetensors"));
    opts.codecs = Codecs::float(dtype);
    let err = export_checkpoint(net, &opts).unwrap_err();
    assert!(matches!(err, Error::NotFinite { .. }), "{err}");
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0, "a file was left behind");
    err.to_string()
}

#[test]
fn non_finite_weights_and_biases_are_refused() {
    let mut net = random_net("6-5-4", 1.0, 13);
    net.layers[1].weight[7] = f32::NAN;
    let err = refused(&net, ValueDtype::F32);
    assert_eq!(err, "layer fc2: weight [1, 2] (index 7) is NaN; refusing to export it");

    let mut net = random_net("6-5-4", 1.0, 13);
    net.layers[0].bias[2] = f32::NEG_INFINITY;
    assert_eq!(
        refused(&net, ValueDtype::F32),
        "layer fc1: bias [2] is -inf; refusing to export it"
    );

    // A NaN under a pruned weight is never stored, so it is no reason to refuse.
    let mut net = random_net("6-5-4", 1.0, 13);
    net.layers[1].mask[7] = 0;
    net.layers[1].weight[7] = f32::NAN;
    let dir = tempfile::tempdir().unwrap();
    export_checkpoint(&net, &ExportOptions::new(dir.path().join("m.safetensors"))).unwrap();
}

#[test]
fn weights_beyond_the_f16_range_are_refused_in_f16_only() {
    let mut net = random_net("6-5-4", 0.5, 14);
    net.layers[0].mask[13] = 1;
    net.layers[0].weight[13] = 70_000.0;
    let err = refused(&net, ValueDtype::F16);
    assert_eq!(
        err,
        "layer fc1: weight [2, 1] (index 13) is 70000, which does not fit in f16; refusing to export it"
    );
    let dir = tempfile::tempdir().unwrap();
    for dtype in [ValueDtype::F32, ValueDtype::Bf16] {
        let mut opts = ExportOptions::new(dir.path().join(format!("m-{dtype}.safetensors")));
        opts.codecs = Codecs::float(dtype);
        export_checkpoint(&net, &opts).unwrap();
    }
}

#[test]
fn existing_output_is_kept_unless_overwriting() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("m.safetensors");
    fs::write(&out, b"precious").unwrap();
    let net = random_net("6-5-4", 0.5, 15);
    let mut opts = ExportOptions::new(&out);
    let err = export_checkpoint(&net, &opts).unwrap_err().to_string();
    assert!(err.ends_with("m.safetensors: already exists (pass --force to overwrite it)"), "{err}");
    assert_eq!(fs::read(&out).unwrap(), b"precious");
    opts.overwrite = true;
    export_checkpoint(&net, &opts).unwrap();
    assert_eq!(read_csr(&out).unwrap().model.to_dense(), net);
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn missing_output_directory() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("nope").join("m.safetensors");
    let err = export_checkpoint(&random_net("3-2", 1.0, 16), &ExportOptions::new(&out))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("nope/m.safetensors: the directory to write into does not exist"),
        "{err}"
    );
}

/// The graph of the `digits-conv` recipe: two padded 3x3 convolutions with pools, then fc.
const DIGITS_CONV: &str = r#"{"input":[1,8,8],"layers":[
  {"op":"conv2d","name":"conv1","in":1,"out":8,"kernel":[3,3],"padding":[1,1]},{"op":"relu"},
  {"op":"maxpool2d","kernel":[2,2]},
  {"op":"conv2d","name":"conv2","in":8,"out":16,"kernel":[3,3],"padding":[1,1]},{"op":"relu"},
  {"op":"maxpool2d","kernel":[2,2]},{"op":"flatten"},
  {"op":"linear","name":"fc1","in":64,"out":64},{"op":"relu"},
  {"op":"linear","name":"fc2","in":64,"out":10}]}"#;

/// Bytes of each tensor and of the header, read from the file's own safetensors header.
fn tensor_sizes(file: &[u8]) -> (usize, std::collections::HashMap<String, usize>) {
    let n = u64::from_le_bytes(file[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&file[8..8 + n]).unwrap();
    let sizes = header
        .as_object()
        .unwrap()
        .iter()
        .filter(|(name, _)| *name != "__metadata__")
        .map(|(name, t)| {
            let offsets = &t["data_offsets"];
            let size = offsets[1].as_u64().unwrap() - offsets[0].as_u64().unwrap();
            (name.clone(), size as usize)
        })
        .collect();
    (8 + n, sizes)
}

#[test]
fn conv_report_names_kind_and_shape_and_counts_the_file_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let net = random_net(DIGITS_CONV, 0.3, 21);
    let out = dir.path().join("conv.safetensors");
    let mut opts = ExportOptions::new(&out);
    opts.codecs = Codecs::float(ValueDtype::F16);
    let report = export_checkpoint(&net, &opts).unwrap();
    let file = fs::read(&out).unwrap();
    let (header, sizes) = tensor_sizes(&file);
    assert_eq!(report.total.header_bytes, header);
    assert_eq!(report.total.csr_file_bytes, file.len());
    let want = [
        ("conv1", "conv2d", vec![8, 1, 3, 3]),
        ("conv2", "conv2d", vec![16, 8, 3, 3]),
        ("fc1", "linear", vec![64, 64]),
        ("fc2", "linear", vec![10, 64]),
    ];
    for (l, (name, op, dims)) in report.layers.iter().zip(&want) {
        assert_eq!((l.name.as_str(), l.op.as_str(), &l.dims), (*name, *op, dims));
        assert_eq!((l.rows, l.cols), (dims[0], dims[1..].iter().product()));
        let b = &l.csr_bytes;
        assert_eq!(b.values, sizes[&format!("{name}.weight.values")], "{name}");
        assert_eq!(b.indices, sizes[&format!("{name}.weight.indices")], "{name}");
        assert_eq!(b.indptr, sizes[&format!("{name}.weight.indptr")], "{name}");
        assert_eq!(b.shape, sizes[&format!("{name}.weight.shape")], "{name}");
        assert_eq!(b.bias, sizes[&format!("{name}.bias")], "{name}");
    }
    assert_eq!(report.layers[0].csr_bytes.shape, 4 * 8, "a conv shape has four I64 entries");
    let all: usize = sizes.values().sum();
    assert_eq!(report.total.csr_bytes.total, all);
    assert_eq!(header + all, file.len());
    // The dense baseline holds each weight in its full PyTorch shape.
    let dense = dense_f32_file(&net);
    let (dense_header, dense_sizes) = tensor_sizes(&dense);
    assert_eq!(report.total.dense_file_bytes, dense.len());
    assert_eq!(dense_header + 4 * net.graph.dense_params(), dense.len());
    assert_eq!(dense_sizes["conv2.weight"], 4 * 16 * 8 * 3 * 3);
    let parsed = TensorFile::parse(&dense, std::path::Path::new("dense")).unwrap();
    assert_eq!(parsed.f32("conv2.weight", &[16, 8, 3, 3]).unwrap(), net.layers[1].weight);
    let table = report.to_string();
    assert!(table.contains("conv1  conv2d      8x1x3x3"), "{table}");
    assert!(table.contains("fc2    linear        10x64"), "{table}");
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["layers"][1]["op"], "conv2d");
    assert_eq!(json["layers"][1]["dims"], serde_json::json!([16, 8, 3, 3]));
}
