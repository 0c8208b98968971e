//! `ticket infer` end to end: accuracy, a batch from a file, `--bench --json`, and a clean
//! one-line failure (naming the file) for every kind of bad model or input file.

mod common;
use common::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use ticket_core::csr_format::ValueDtype;
use ticket_core::tensor_file::{write_tensors, OwnedTensor, TensorFile};
use ticket_core::{DataSource, Graph};
use ticket_infer::fixture::{
    edit, file_contents, random_model, reference_forward, tensor_mut, write_model, CsrParts, Random,
};

/// A digits-shaped conv model (input [1, 8, 8], 10 classes): conv with padding, max pool,
/// conv with a non-square kernel and stride 2, average pool, flatten, linear.
const DIGITS_CONV: &str = r#"{"input":[1,8,8],"layers":[
  {"op":"conv2d","name":"conv1","in":1,"out":3,"kernel":[3,3],"stride":[1,1],"padding":[1,1]},
  {"op":"relu"},{"op":"maxpool2d","kernel":[2,2]},
  {"op":"conv2d","name":"conv2","in":3,"out":4,"kernel":[2,3],"stride":[2,2],"padding":[0,1]},
  {"op":"relu"},{"op":"avgpool2d","kernel":[2,1]},{"op":"flatten"},
  {"op":"linear","name":"fc","in":8,"out":10}]}"#;

/// A digits-shaped model (64 inputs, 10 classes) in a temporary directory.
struct Fixture {
    dir: tempfile::TempDir,
    graph: Graph,
    layers: Vec<CsrParts>,
}

impl Fixture {
    fn new() -> Self {
        Fixture::of("64-24-10".parse().unwrap(), &[0.4, 0.6])
    }

    /// The conv model [`DIGITS_CONV`].
    fn conv() -> Self {
        Fixture::of(Graph::from_json(DIGITS_CONV).unwrap(), &[0.8, 0.6, 0.7])
    }

    fn of(graph: Graph, densities: &[f64]) -> Self {
        let layers = random_model(&graph, densities, 21);
        Fixture { dir: tempfile::tempdir().unwrap(), graph, layers }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The valid model file.
    fn model(&self) -> PathBuf {
        let path = self.path("model.safetensors");
        write_model(&path, &self.graph, &self.layers, ValueDtype::F32).unwrap();
        path
    }

    /// The model file with `edit` applied to its tensors and metadata first.
    fn edited(
        &self,
        edit: impl FnOnce(&mut Vec<(String, OwnedTensor)>, &mut BTreeMap<String, String>),
    ) -> PathBuf {
        let path = self.path("model.safetensors");
        let (mut tensors, mut meta) = file_contents(&self.graph, &self.layers, ValueDtype::F32);
        edit(&mut tensors, &mut meta);
        write_tensors(&path, tensors, &meta).unwrap();
        path
    }

    fn reference(&self, x: &[f32]) -> Vec<f64> {
        reference_forward(&self.graph, &self.layers, x)
    }
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn json(out: &std::process::Output) -> serde_json::Value {
    assert!(out.status.success(), "ticket failed: {}", stderr(out));
    serde_json::from_str(&stdout(out)).unwrap()
}

fn argmax(v: &[f64]) -> usize {
    (0..v.len()).max_by(|&a, &b| v[a].total_cmp(&v[b]).then(b.cmp(&a))).unwrap()
}

/// Runs `ticket infer MODEL --dataset NAME --json` and checks both accuracies against the
/// reference forward pass on the test split; returns that accuracy.
fn accuracy_matches_the_reference(
    f: &Fixture,
    model: &Path,
    source: DataSource,
    name: &str,
) -> f64 {
    let report = json(&ticket(&["infer", s(model), "--dataset", name, "--json"]));
    let test = source.load(0).unwrap().test;
    let hits = (0..test.len())
        .filter(|&i| argmax(&f.reference(test.image(i))) == test.labels[i] as usize)
        .count();
    let want = hits as f64 / test.len() as f64;
    assert_eq!(report["accuracy"]["sparse"].as_f64().unwrap(), want);
    assert_eq!(report["accuracy"]["dense"].as_f64().unwrap(), want);
    assert_eq!(report["accuracy"]["agree"].as_u64().unwrap(), test.len() as u64);
    assert_eq!(report["dataset"], name);
    want
}

#[test]
fn accuracy_on_digits_matches_a_reference_forward_pass() {
    let f = Fixture::new();
    let model = f.model();
    let want = accuracy_matches_the_reference(&f, &model, DataSource::Digits, "digits");
    // The text form says the same.
    let text = stdout(&ticket(&["infer", s(&model)]));
    assert!(text.contains(&format!("sparse {want:.4}, dense {want:.4}")), "{text}");
}

#[test]
fn batch_from_a_file_to_logits() {
    let f = Fixture::new();
    let model = f.model();
    let (input, output) = (f.path("in.safetensors"), f.path("out.safetensors"));
    let mut rng = Random::new(8);
    let batch = 67;
    let x = rng.vec(batch * 64, 0.0, 1.0);
    let t = vec![("input".to_string(), OwnedTensor::f32(vec![batch, 64], &x))];
    write_tensors(&input, t, &BTreeMap::new()).unwrap();
    let out = ticket(&["infer", s(&model), "--input", s(&input), "--output", s(&output)]);
    assert!(out.status.success(), "{}", stderr(&out));
    let bytes = std::fs::read(&output).unwrap();
    let logits = TensorFile::parse(&bytes, &output).unwrap().f32("logits", &[batch, 10]).unwrap();
    for (b, got) in logits.chunks_exact(10).enumerate() {
        let want = f.reference(&x[b * 64..(b + 1) * 64]);
        for (g, w) in got.iter().zip(&want) {
            assert!((*g as f64 - w).abs() <= 1e-4 * (1.0 + w.abs()), "example {b}: {g} vs {w}");
        }
    }
}

/// `ticket infer MODEL --bench --json` of the fixture's model, after checking that both paths
/// report positive, finite times with p50 <= p99.
fn bench_report(f: &Fixture) -> serde_json::Value {
    let model = f.model();
    let report = json(&ticket(&["infer", s(&model), "--bench", "--json", "--threads", "2"]));
    for path in ["sparse", "dense"] {
        for key in
            ["batch1_us_p50", "batch1_us_p99", "batch64_us_per_sample", "batch1024_us_per_sample"]
        {
            let v = report[path][key].as_f64().unwrap_or_else(|| panic!("{path}.{key}"));
            assert!(v > 0.0 && v.is_finite(), "{path}.{key} = {v}");
        }
        let (p50, p99) =
            (report[path]["batch1_us_p50"].as_f64(), report[path]["batch1_us_p99"].as_f64());
        assert!(p50 <= p99, "{path}: p50 {p50:?} > p99 {p99:?}");
    }
    report
}

#[test]
fn bench_json_has_the_documented_keys() {
    let f = Fixture::new();
    let report = bench_report(&f);
    // u32 indptr + u16 indices + f32 values + f32 bias; dense: f32 weights and biases.
    let (nnz, rows): (usize, usize) =
        (f.layers.iter().map(CsrParts::nnz).sum(), f.layers.iter().map(|l| l.rows).sum());
    let sparse = 4 * (rows + 2) + 6 * nnz + 4 * rows;
    assert_eq!(report["weight_bytes"]["sparse"].as_u64().unwrap(), sparse as u64);
    assert_eq!(report["weight_bytes"]["dense"].as_u64().unwrap(), 4 * (64 * 24 + 24 * 10 + 34));
    assert!(report.get("accuracy").is_none(), "no data set was asked for");
    // Column-ordered copies (u32 column pointers and row indices, f32 values) are built only
    // for layers whose input had zeros: never the first (synthetic inputs have none), maybe
    // a later one (ReLU outputs).
    let copy = |l: &CsrParts| 4 * (l.cols + 1 + 2 * l.nnz()) as u64;
    let copies = report["weight_bytes"]["sparse_column_copies"].as_u64().unwrap();
    let later = &f.layers[1..];
    let built = (0..1u32 << later.len()).map(|set| {
        later.iter().enumerate().filter(|(i, _)| set >> i & 1 == 1).map(|(_, l)| copy(l)).sum()
    });
    assert!(built.collect::<Vec<u64>>().contains(&copies), "{copies} bytes of copies");
    // Copies in slices of 16 rows (sorted by length; per slice 16 row numbers and lengths,
    // u32, and a u32 start; per step 16 u16 columns and 16 f32 values) for every layer batch 1
    // ran, where the CPU chooses them.
    let sliced = |l: &CsrParts| {
        let mut lens: Vec<usize> = l.indptr.windows(2).map(|p| (p[1] - p[0]) as usize).collect();
        lens.sort_by(|a, b| b.cmp(a));
        let slices = lens.len().div_ceil(16);
        let steps: usize = lens.chunks(16).map(|c| c[0]).sum();
        (128 * slices + 4 * (slices + 1) + 96 * steps) as u64
    };
    let want = if ticket_infer::kernels::sliced::SlicedRows::pays() {
        f.layers.iter().map(sliced).sum()
    } else {
        0
    };
    assert_eq!(report["weight_bytes"]["sparse_sliced_copies"].as_u64(), Some(want));
    // Coded-row copies are for compressed layers only.
    assert_eq!(report["weight_bytes"]["sparse_coded_rows_copies"].as_u64(), Some(0));
    assert_eq!(report["inputs"]["source"], "synthetic");
    let synthetic = ticket_infer::bench::synthetic_inputs(1024, 64);
    let zeros = synthetic.iter().filter(|&&v| v == 0.0).count() as f64 / synthetic.len() as f64;
    assert_eq!(report["inputs"]["zero_fraction"].as_f64(), Some(zeros));
    assert!(report["sparse"]["batch1_us_p50_csr_only"].as_f64().unwrap() > 0.0);
    // The measured peak, before and after, and the sparse path's share of it: an MLP's kept
    // multiply-adds per example are its nonzeros.
    let peak = &report["peak"];
    let rates = |key: &str| -> Vec<f64> {
        peak[key].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect()
    };
    let (one, all) = (rates("one_thread_macs_per_us"), rates("all_threads_macs_per_us"));
    assert!(one.iter().chain(&all).all(|&r| r > 0.0 && r.is_finite()), "{peak}");
    assert_eq!(peak["threads"], 2);
    for (i, cores) in rates("cores_reached").iter().enumerate() {
        assert!((cores - all[i] / one[i]).abs() < 1e-9, "{peak}");
    }
    let best = all[0].max(all[1]);
    for (key, time) in [("batch1", "batch1_us_p50"), ("batch64", "batch64_us_per_sample")] {
        let us = report["sparse"][time].as_f64().unwrap();
        let fraction = report["sparse"]["fraction_of_peak"][key].as_f64().unwrap();
        let want = nnz as f64 / us / best;
        assert!((fraction - want).abs() <= 1e-12 * want.max(1.0), "{key}: {fraction} vs {want}");
    }
}

/// `--bench-data digits` benches on the digits test images, and says so with their zeros.
#[test]
fn bench_data_runs_on_a_data_sets_test_images() {
    let f = Fixture::new();
    let model = f.model();
    let args = ["infer", s(&model), "--bench", "--bench-data", "digits", "--json"];
    let report = json(&ticket(&args));
    let test = DataSource::Digits.load(0).unwrap().test;
    let zeros = test.images.iter().filter(|&&v| v == 0.0).count() as f64;
    assert_eq!(report["inputs"]["source"], "digits test");
    assert_eq!(report["inputs"]["examples"].as_u64(), Some(test.len() as u64));
    let fraction = report["inputs"]["zero_fraction"].as_f64().unwrap();
    assert!((fraction - zeros / test.images.len() as f64).abs() < 1e-12, "{fraction}");
    assert!(fraction > 0.2, "digits images are partly zero: {fraction}");
    let out = ticket(&["infer", s(&model), "--bench-data", "digits"]);
    assert!(!out.status.success(), "--bench-data needs --bench");
}

fn bad_model(
    needle: &str,
    edit_file: impl FnOnce(&mut Vec<(String, OwnedTensor)>, &mut BTreeMap<String, String>),
) {
    let f = Fixture::new();
    let model = f.edited(edit_file);
    let out = ticket(&["infer", s(&model), "--dataset", "digits"]);
    assert_clean_failure(&out, &format!("{}: ", model.display()));
    assert_clean_failure(&out, needle);
}

#[test]
fn indptr_that_decreases() {
    bad_model("layer fc1: indptr decreases at row 4", |t, _| {
        edit::<u32>(tensor_mut(t, "fc1.weight.indptr"), |p| p[4] = p[3] + 100)
    });
}

#[test]
fn indptr_that_overruns() {
    bad_model("layer fc2: indptr of row 9 ends at", |t, _| {
        edit::<u32>(tensor_mut(t, "fc2.weight.indptr"), |p| p[10] += 1000)
    });
}

#[test]
fn index_out_of_range() {
    bad_model("layer fc2: row 0 has column index 24, but the matrix has 24 columns", |t, _| {
        edit::<u16>(tensor_mut(t, "fc2.weight.indices"), |i| i[0] = 24)
    });
}

#[test]
fn indices_out_of_order() {
    bad_model("layer fc1: column indices of row 0 are not strictly increasing", |t, _| {
        edit::<u16>(tensor_mut(t, "fc1.weight.indices"), |i| i.swap(0, 1))
    });
}

#[test]
fn shapes_that_do_not_chain() {
    bad_model(
        "layer fc2 has weight shape [10, 23] but graph 64-24-10 makes it [10, 24]",
        |t, _| edit::<i64>(tensor_mut(t, "fc2.weight.shape"), |d| d[1] = 23),
    );
}

#[test]
fn nan_and_infinite_values() {
    bad_model("layer fc1: value 5 is NaN", |t, _| {
        edit::<f32>(tensor_mut(t, "fc1.weight.values"), |v| v[5] = f32::NAN)
    });
    bad_model("layer fc2: value 0 is inf", |t, _| {
        edit::<f32>(tensor_mut(t, "fc2.weight.values"), |v| v[0] = f32::INFINITY)
    });
}

#[test]
fn unknown_value_dtype() {
    bad_model("tensor `fc1.weight.values` has dtype I32; values are F32, F16 or BF16", |t, _| {
        tensor_mut(t, "fc1.weight.values").dtype = safetensors::Dtype::I32
    });
}

#[test]
fn unknown_format_version() {
    bad_model("format_version `3.0` is not supported", |_, m| {
        m.insert("format_version".into(), "3.0".into());
    });
}

#[test]
fn truncated_file() {
    let f = Fixture::new();
    let model = f.model();
    let bytes = std::fs::read(&model).unwrap();
    std::fs::write(&model, &bytes[..bytes.len() - 10]).unwrap();
    let out = ticket(&["infer", s(&model)]);
    assert_clean_failure(&out, &format!("{}: not a valid safetensors file", model.display()));
}

fn bad_input(needle: &str, input: OwnedTensor, name: &str) {
    bad_input_for(&Fixture::new(), needle, input, name)
}

fn bad_input_for(f: &Fixture, needle: &str, input: OwnedTensor, name: &str) {
    let model = f.model();
    let (path, output) = (f.path("in.safetensors"), f.path("out.safetensors"));
    write_tensors(&path, vec![(name.to_string(), input)], &BTreeMap::new()).unwrap();
    let out = ticket(&["infer", s(&model), "--input", s(&path), "--output", s(&output)]);
    assert_clean_failure(&out, &format!("{}: {needle}", path.display()));
    assert!(!output.exists(), "no logits are written for a bad input");
}

#[test]
fn input_with_the_wrong_feature_count() {
    bad_input(
        "tensor `input` has 63 features per example, the model takes 64",
        OwnedTensor::f32(vec![2, 63], &[0.5; 126]),
        "input",
    );
}

#[test]
fn input_with_the_wrong_dtype_or_name_or_values() {
    bad_input(
        "tensor `input` has dtype U8, expected F32",
        OwnedTensor::u8(vec![1, 64], &[1; 64]),
        "input",
    );
    bad_input("missing tensor `input`", OwnedTensor::f32(vec![1, 64], &[0.5; 64]), "x");
    let mut x = vec![0.5; 128];
    x[70] = f32::NAN;
    bad_input(
        "tensor `input`: feature 6 of example 1 is NaN",
        OwnedTensor::f32(vec![2, 64], &x),
        "input",
    );
}

/// A random f32 CSR model of the one-layer `graph` (10% kept) in `f`'s directory.
fn one_layer_model(f: &Fixture, graph: &str) -> std::path::PathBuf {
    let graph: Graph = graph.parse().unwrap();
    let path = f.path(&format!("{graph}.safetensors"));
    write_model(&path, &graph, &random_model(&graph, &[0.1], 1), ValueDtype::F32).unwrap();
    path
}

/// With nothing asked, a model no built-in data set fits is described, with a hint of what
/// to run instead, and the command succeeds; named, the data set that does not fit fails.
#[test]
fn a_model_no_built_in_data_fits_gets_a_hint() {
    let f = Fixture::new();
    let path = one_layer_model(&f, "100-10");
    let text = stdout(&ticket(&["infer", s(&path)]));
    assert!(text.contains("no built-in data set has this model's input shape [100]"), "{text}");
    assert!(text.contains("--bench") && !text.contains("accuracy"), "{text}");
    let out = ticket(&["infer", s(&path), "--dataset", "digits"]);
    assert_clean_failure(&out, "digits has 64 features per example, but the model takes 100");
}

#[test]
fn model_for_another_data_set() {
    let f = Fixture::new();
    let path = one_layer_model(&f, "784-10");
    let out = ticket(&["infer", s(&path), "--dataset", "digits"]);
    assert_clean_failure(&out, "digits has 64 features per example, but the model takes 784");
}

#[test]
fn conv_accuracy_on_digits_matches_a_reference_forward_pass() {
    let f = Fixture::conv();
    let model = f.model();
    let want = accuracy_matches_the_reference(&f, &model, DataSource::Digits, "digits");
    assert!(want > 0.0, "some digits are right by chance");
}

#[test]
fn conv_accuracy_on_fashion_mnist_matches_a_reference_forward_pass() {
    if !fashion_mnist_installed() {
        return;
    }
    let graph = Graph::from_json(
        r#"{"input":[1,28,28],"layers":[
        {"op":"conv2d","name":"conv1","in":1,"out":2,"kernel":[5,5],"stride":[2,2],"padding":[2,2]},
        {"op":"relu"},{"op":"maxpool2d","kernel":[2,2]},{"op":"flatten"},
        {"op":"linear","name":"fc","in":98,"out":10}]}"#,
    )
    .unwrap();
    let f = Fixture::of(graph, &[0.7, 0.5]);
    let model = f.model();
    accuracy_matches_the_reference(&f, &model, DataSource::FashionMnist, "fashion-mnist");
}

#[test]
fn conv_batch_from_a_file_in_either_shape() {
    let f = Fixture::conv();
    let model = f.model();
    let (input, output) = (f.path("in.safetensors"), f.path("out.safetensors"));
    let batch = 37;
    let x = Random::new(8).vec(batch * 64, 0.0, 1.0);
    for shape in [vec![batch, 1, 8, 8], vec![batch, 64]] {
        let t = vec![("input".to_string(), OwnedTensor::f32(shape.clone(), &x))];
        write_tensors(&input, t, &BTreeMap::new()).unwrap();
        let out = ticket(&["infer", s(&model), "--input", s(&input), "--output", s(&output)]);
        assert!(out.status.success(), "{}", stderr(&out));
        let bytes = std::fs::read(&output).unwrap();
        let file = TensorFile::parse(&bytes, &output).unwrap();
        let logits = file.f32("logits", &[batch, 10]).unwrap();
        for (b, got) in logits.chunks_exact(10).enumerate() {
            let want = f.reference(&x[b * 64..(b + 1) * 64]);
            for (g, w) in got.iter().zip(&want) {
                assert!(
                    (*g as f64 - w).abs() <= 1e-4 * (1.0 + w.abs()),
                    "{shape:?} {b}: {g} vs {w}"
                );
            }
        }
    }
}

#[test]
fn conv_input_of_the_wrong_shape() {
    let f = Fixture::conv();
    let expected = "expected [batch, 1, 8, 8] or [batch, 64]";
    bad_input_for(
        &f,
        &format!("tensor `input` has shape [2, 1, 8, 7], {expected}"),
        OwnedTensor::f32(vec![2, 1, 8, 7], &[0.5; 112]),
        "input",
    );
    bad_input_for(
        &f,
        &format!("tensor `input` has shape [2, 8, 8], {expected}"),
        OwnedTensor::f32(vec![2, 8, 8], &[0.5; 128]),
        "input",
    );
    bad_input_for(
        &f,
        &format!("tensor `input` has 63 features per example, the model takes 64 ({expected})"),
        OwnedTensor::f32(vec![2, 63], &[0.5; 126]),
        "input",
    );
}

#[test]
fn conv_bench_json_has_both_paths() {
    let f = Fixture::conv();
    let report = bench_report(&f);
    let dense_params = f.graph.dense_params() as u64;
    assert_eq!(report["weight_bytes"]["dense"].as_u64().unwrap(), 4 * dense_params);
    // The per-step split: conv1 with its ReLU and 2x2 max-pool fused, the strided conv2 and
    // its pool apart, the linear layer, the transposes; a time per batch size for each.
    let steps = report["sparse"]["layers"].as_array().expect("sparse.layers");
    let names: Vec<&str> = steps.iter().map(|s| s["step"].as_str().unwrap()).collect();
    assert_eq!(names, ["conv1+maxpool2d", "conv2", "avgpool2d", "fc", "transpose"]);
    for step in steps {
        for key in ["batch1_us", "batch64_us_per_sample", "batch1024_us_per_sample"] {
            let v = step[key].as_f64().unwrap_or_else(|| panic!("{}.{key}", step["step"]));
            assert!(v >= 0.0 && v.is_finite(), "{}.{key} = {v}", step["step"]);
        }
    }
}
