//! Every file of the bad-input corpus (`tests/corpus/`, written by `tests/corpus/generate.rs`)
//! through the command that reads it: `ticket infer` for CSR models, `ticket infer --input` for
//! batches of inputs, `ticket export` and `ticket train --mask` for dense checkpoints,
//! `ticket train --data` for IDX files, `ticket train --model` for recipes, `ticket export`
//! for ONNX files and PyTorch state dicts and `ticket sweep` for sweep files. Each must exit
//! with code 1 (not a panic's 101, not a signal) and print exactly one line,
//! `error: <the file>: <the problem>`, whose problem contains the text the corpus manifest
//! (`tests/corpus/expected.tsv`) records for that file: the right refusal, for the right
//! reason, from every command.
//!
//! The commands run under an address-space limit far above what these small files need and far
//! below what a reader that trusted a size in a header would reserve, so such a reader fails
//! here instead of passing by luck of overcommitted memory.
//!
//! Regenerate the corpus after changing the generator with
//! `TICKET_WRITE_CORPUS=1 cargo test --release --test bad_inputs corpus_is`.

mod common;
#[path = "corpus/generate.rs"]
mod generate;

use common::stderr;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Address space (KiB, as `ulimit -v` takes it) each command may use: 2 GiB.
const MEMORY_LIMIT_KIB: u64 = 2 << 20;

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus")
}

fn valid(name: &str) -> PathBuf {
    corpus_dir().join("valid").join(name)
}

/// The corpus manifest: damaged file (relative to `tests/corpus/`) -> the text its error must
/// contain.
fn expected_problems() -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(corpus_dir().join(generate::MANIFEST)).unwrap();
    text.lines()
        .map(|line| {
            let (file, problem) = line.split_once('\t').unwrap_or_else(|| panic!("{line:?}"));
            (file.to_string(), problem.to_string())
        })
        .collect()
}

/// The manifest's entry for `case`, a file of the corpus.
fn expected_problem(case: &Path) -> String {
    let name = case.strip_prefix(corpus_dir()).unwrap().to_str().unwrap();
    expected_problems()
        .remove(name)
        .unwrap_or_else(|| panic!("{}: no entry for {name}", generate::MANIFEST))
}

/// The files of corpus subdirectory `kind`, sorted.
fn files(kind: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(corpus_dir().join(kind))
        .unwrap_or_else(|e| panic!("tests/corpus/{kind}: {e}"))
        .map(|e| e.unwrap().path())
        .collect();
    out.sort();
    assert!(!out.is_empty(), "tests/corpus/{kind} is empty");
    out
}

/// Runs `ticket` with `args` under the memory limit.
fn ticket_limited(args: &[&str]) -> Output {
    Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit -v {MEMORY_LIMIT_KIB} && exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_ticket"))
        .args(args)
        .output()
        .unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// What is wrong with how `ticket args` refused `path`, if anything; the problem it names
/// must contain `expected`.
fn refusal_problem(args: &[&str], path: &Path, expected: &str) -> Option<String> {
    let out = ticket_limited(args);
    let err = stderr(&out);
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    let prefix = format!("error: {}: ", path.display());
    let problem = if out.status.success() {
        "was accepted".to_string()
    } else if err.contains("panicked") || out.status.code() == Some(101) {
        "panicked".to_string()
    } else if out.status.code() != Some(1) {
        format!("ended with {}", out.status)
    } else if lines.len() != 1 {
        format!("printed {} lines", lines.len())
    } else if !lines[0].starts_with(&prefix) {
        "does not name the file as `error: <path>: `".to_string()
    } else if !lines[0][prefix.len()..].contains(expected) {
        format!("does not say `{expected}`")
    } else {
        return None;
    };
    Some(format!("`ticket {}`: {problem}; stderr: {}", args.join(" "), err.trim_end()))
}

/// Asserts that no case went wrong, listing all that did.
fn assert_all_refused(problems: Vec<String>, cases: usize) {
    assert!(
        problems.is_empty(),
        "{} of {cases} cases were not refused cleanly:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

fn assert_accepted(args: &[&str]) {
    let out = ticket_limited(args);
    assert!(out.status.success(), "`ticket {}` failed: {}", args.join(" "), stderr(&out));
}

#[test]
fn corpus_is_what_its_generator_writes() {
    let root = corpus_dir();
    let generated: BTreeMap<String, Vec<u8>> =
        generate::corpus().into_iter().map(|f| (f.path, f.bytes)).collect();
    assert_eq!(generated.len(), generate::corpus().len(), "two cases share a file name");
    if std::env::var_os("TICKET_WRITE_CORPUS").is_some() {
        let kinds = ["valid", "csr", "batch", "dense", "dense-values", "idx", "recipe", "import"];
        for kind in kinds.into_iter().chain(["request", "sweep"]) {
            let _ = std::fs::remove_dir_all(root.join(kind));
        }
        for (path, bytes) in &generated {
            let path = root.join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, bytes).unwrap();
        }
    }
    let mut on_disk = BTreeMap::new();
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_none_or(|e| e != "rs") {
                let name = path.strip_prefix(&root).unwrap().to_str().unwrap().to_string();
                on_disk.insert(name, std::fs::read(&path).unwrap());
            }
        }
    }
    let names = |m: &BTreeMap<String, Vec<u8>>| m.keys().cloned().collect::<Vec<_>>();
    assert_eq!(
        names(&on_disk),
        names(&generated),
        "tests/corpus differs from its generator: rerun with TICKET_WRITE_CORPUS=1"
    );
    for (name, bytes) in &generated {
        assert!(on_disk[name] == *bytes, "tests/corpus/{name} differs from its generator");
    }
}

/// The undamaged files pass through every command the damaged ones are given to, under the
/// same memory limit: a refusal below is the damage's doing.
#[test]
fn valid_files_are_accepted() {
    let tmp = tempfile::tempdir().unwrap();
    let recipe = valid("recipe.toml");
    let model = valid("model.safetensors");
    let checkpoint = valid("checkpoint.safetensors");
    assert_accepted(&["infer", s(&model)]);
    for compressed in ["k3-gap4-model.safetensors", "int8-model.safetensors"] {
        assert_accepted(&[
            "infer",
            s(&valid(compressed)),
            "--input",
            s(&valid("batch.safetensors")),
            "--output",
            s(&tmp.path().join("c.safetensors")),
        ]);
    }
    for (batch, examples) in [("batch.safetensors", 3), ("empty-batch.safetensors", 0)] {
        let logits = tmp.path().join("logits.safetensors");
        assert_accepted(&["infer", s(&model), "--input", s(&valid(batch)), "--output", s(&logits)]);
        let bytes = std::fs::read(&logits).unwrap();
        let file = ticket_core::tensor_file::TensorFile::parse(&bytes, &logits).unwrap();
        assert_eq!(file.f32("logits", &[examples, 10]).unwrap().len(), examples * 10);
    }
    assert_accepted(&["export", s(&checkpoint), "--out", s(&tmp.path().join("x.safetensors"))]);
    let out = tmp.path().join("run");
    assert_accepted(&["train", "--model", s(&recipe), "--mask", s(&checkpoint), "--out", s(&out)]);
    assert_accepted(&[
        "train",
        "--model",
        s(&recipe),
        "--data",
        s(&valid("idx")),
        "--out",
        s(&out),
    ]);
    // The gzip members the corpus damages are accepted undamaged.
    let raw = std::fs::read(valid("idx").join(generate::TRAIN_IMAGES)).unwrap();
    let gz = [("train-images-idx3-ubyte.gz", generate::gzip(&raw))];
    let data = idx_case_dir(tmp.path(), "gzip", &gz);
    assert_accepted(&["train", "--model", s(&recipe), "--data", s(&data), "--out", s(&out)]);
}

/// The version-2 conv files load, and the checkpoint exports to a CSR model holding exactly
/// its kept weights: the damaged version-2 cases are refused for their damage, not for being
/// conv nets.
#[test]
fn valid_conv_files_are_accepted() {
    let tmp = tempfile::tempdir().unwrap();
    let checkpoint = valid("conv-checkpoint.safetensors");
    let dense = ticket_core::checkpoint::load(&checkpoint).unwrap();
    assert_eq!(dense.net.graph.layer_names(), ["conv1", "fc1"]);
    assert_eq!(dense.net.graph.weighted()[0].dims, [2, 1, 3, 3]);
    let model = ticket_infer::SparseModel::load(&valid("conv-model.safetensors")).unwrap();
    assert_eq!(model.to_dense().graph, dense.net.graph);
    let exported = tmp.path().join("conv.safetensors");
    assert_accepted(&["export", s(&checkpoint), "--out", s(&exported)]);
    let back = ticket_infer::SparseModel::load(&exported).unwrap().to_dense();
    for (got, want) in back.layers.iter().zip(&dense.net.layers) {
        assert_eq!(got.weight, want.weight);
        assert_eq!(got.mask, want.mask);
        assert_eq!(got.bias, want.bias);
    }
}

#[test]
fn damaged_csr_models_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out.safetensors");
    let cases = files("csr");
    let mut problems = Vec::new();
    for f in &cases {
        let expected = expected_problem(f);
        problems.extend(refusal_problem(&["infer", s(f)], f, &expected));
        // `ticket export` re-encodes CSR files with the reader of `ticket_export::decode`,
        // whose words differ for 30 of the 121 files: a clean one-line refusal
        // naming the file.
        problems.extend(refusal_problem(&["export", s(f), "--out", s(&out)], f, ""));
    }
    assert!(!out.exists(), "a refused export wrote its output");
    assert_all_refused(problems, 2 * cases.len());
}

#[test]
fn damaged_input_batches_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (model, logits) = (valid("model.safetensors"), tmp.path().join("logits.safetensors"));
    let cases = files("batch");
    let problems = cases.iter().filter_map(|f| {
        let args = ["infer", s(&model), "--input", s(f), "--output", s(&logits)];
        refusal_problem(&args, f, &expected_problem(f))
    });
    assert_all_refused(problems.collect(), cases.len());
    assert!(!logits.exists(), "a refused batch produced logits");
}

#[test]
fn damaged_checkpoints_are_refused_by_export_and_train() {
    let tmp = tempfile::tempdir().unwrap();
    let recipe = valid("recipe.toml");
    let (out, run) = (tmp.path().join("out.safetensors"), tmp.path().join("run"));
    let cases = files("dense");
    let mut problems = Vec::new();
    for f in &cases {
        let expected = expected_problem(f);
        problems.extend(refusal_problem(&["export", s(f), "--out", s(&out)], f, &expected));
        let train = ["train", "--model", s(&recipe), "--mask", s(f), "--out", s(&run)];
        problems.extend(refusal_problem(&train, f, &expected));
    }
    assert!(!out.exists(), "a refused export wrote its output");
    assert_all_refused(problems, 2 * cases.len());
}

#[test]
fn checkpoints_with_values_that_cannot_be_exported_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out.safetensors");
    let cases = files("dense-values");
    let problems = cases.iter().filter_map(|f| {
        refusal_problem(&["export", s(f), "--out", s(&out)], f, &expected_problem(f))
    });
    assert_all_refused(problems.collect(), cases.len());
    assert!(!out.exists(), "a refused export wrote its output");
}

/// ONNX files and PyTorch state dicts: the valid ones export, every damaged one is refused.
#[test]
fn damaged_imports_are_refused_by_export() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out.safetensors");
    for valid_file in ["import-model.onnx", "import-state-dict.safetensors"] {
        assert_accepted(&["export", s(&valid(valid_file)), "--out", s(&out), "--force"]);
    }
    std::fs::remove_file(&out).unwrap();
    let cases = files("import");
    let problems = cases.iter().filter_map(|f| {
        refusal_problem(&["export", s(f), "--out", s(&out)], f, &expected_problem(f))
    });
    assert_all_refused(problems.collect(), cases.len());
    assert!(!out.exists(), "a refused export wrote its output");
}

/// A data directory in `parent`: the valid IDX files with `replace` put in place of their
/// namesakes (raw or gzip).
fn idx_case_dir(parent: &Path, name: &str, replace: &[(&str, Vec<u8>)]) -> PathBuf {
    let dir = parent.join(name);
    std::fs::create_dir(&dir).unwrap();
    for file in files("valid/idx") {
        std::fs::copy(&file, dir.join(file.file_name().unwrap())).unwrap();
    }
    for (name, bytes) in replace {
        let stem = name.trim_end_matches(".gz");
        let _ = std::fs::remove_file(dir.join(stem));
        let _ = std::fs::remove_file(dir.join(format!("{stem}.gz")));
        std::fs::write(dir.join(name), bytes).unwrap();
    }
    dir
}

#[test]
fn damaged_idx_files_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let recipe = valid("recipe.toml");
    let run = tmp.path().join("run");
    let cases = files("idx");
    let mut problems = Vec::new();
    for case in &cases {
        let replaced: Vec<(String, Vec<u8>)> = files(s(case.strip_prefix(corpus_dir()).unwrap()))
            .into_iter()
            .map(|f| {
                (f.file_name().unwrap().to_str().unwrap().to_string(), std::fs::read(&f).unwrap())
            })
            .collect();
        let replace: Vec<(&str, Vec<u8>)> =
            replaced.iter().map(|(n, b)| (n.as_str(), b.clone())).collect();
        let dir = idx_case_dir(tmp.path(), case.file_name().unwrap().to_str().unwrap(), &replace);
        let args = ["train", "--model", s(&recipe), "--data", s(&dir), "--out", s(&run)];
        let expected = expected_problem(&case.join(&replaced[0].0));
        problems.extend(refusal_problem(&args, &dir.join(&replaced[0].0), &expected));
    }
    assert_all_refused(problems, cases.len());
}

#[test]
fn damaged_recipes_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let cases = files("recipe");
    let problems = cases.iter().filter_map(|f| {
        refusal_problem(&["train", "--model", s(f), "--out", s(&run)], f, &expected_problem(f))
    });
    assert_all_refused(problems.collect(), cases.len());
}

#[test]
fn damaged_sweep_files_are_refused() {
    assert_accepted(&["sweep", s(&valid("sweep.toml"))]);
    let cases = files("sweep");
    let problems =
        cases.iter().filter_map(|f| refusal_problem(&["sweep", s(f)], f, &expected_problem(f)));
    assert_all_refused(problems.collect(), cases.len());
}

/// A model far wider than its file (one output, a billion inputs, nothing kept) is valid, but
/// not for the digits: `ticket infer` says so before it builds the model's dense copy (4 GB).
#[test]
fn a_model_wider_than_the_data_is_refused_before_its_dense_copy_is_built() {
    use ticket_infer::fixture::{write_model, CsrParts};
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("wide.safetensors");
    let cols = 1_000_000_000;
    let layer = CsrParts {
        rows: 1,
        cols,
        indptr: vec![0, 0],
        indices: vec![],
        values: vec![],
        bias: vec![0.5],
    };
    let graph = ticket_core::Graph::mlp(&[cols, 1]).unwrap();
    write_model(&path, &graph, &[layer], ticket_core::csr_format::ValueDtype::F32).unwrap();
    assert!(std::fs::metadata(&path).unwrap().len() < 1000);
    let out = ticket_limited(&["infer", s(&path), "--dataset", "digits"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    common::assert_clean_failure(
        &out,
        "digits has 64 features per example, but the model takes 1000000000",
    );
}

/// `ticket infer` runs the valid conv model on the digits and on a batch file, under the same
/// memory limit as the damaged cases.
#[test]
fn valid_conv_model_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let model = valid("conv-model.safetensors");
    assert_accepted(&["infer", s(&model)]);
    let logits = tmp.path().join("logits.safetensors");
    let batch = valid("batch.safetensors");
    assert_accepted(&["infer", s(&model), "--input", s(&batch), "--output", s(&logits)]);
    let bytes = std::fs::read(&logits).unwrap();
    let file = ticket_core::tensor_file::TensorFile::parse(&bytes, &logits).unwrap();
    assert_eq!(file.f32("logits", &[3, 10]).unwrap().len(), 30);
}
