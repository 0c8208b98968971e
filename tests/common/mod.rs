//! Running the `ticket` binary from end-to-end tests.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use ticket_core::checkpoint::{self, Checkpoint};
use ticket_core::Network;

/// Runs `ticket` with `args` in `cwd`.
pub fn ticket_in(cwd: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ticket")).args(args).current_dir(cwd).output().unwrap()
}

pub fn ticket(args: &[&str]) -> Output {
    ticket_in(Path::new(env!("CARGO_MANIFEST_DIR")), args)
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Asserts a clean failure: non-zero exit, no panic, a one-line cause that mentions `needle`.
pub fn assert_clean_failure(out: &Output, needle: &str) {
    let err = stderr(out);
    assert!(!out.status.success(), "expected failure, got success; stderr: {err}");
    assert!(!err.contains("panicked"), "panic: {err}");
    let cause = err.lines().find(|l| l.starts_with("error: ")).unwrap_or_default();
    assert!(cause.contains(needle), "cause `{cause}` does not mention `{needle}`; stderr: {err}");
}

/// models/digits-mlp.toml with 300 iterations per run, written to `dir`: a whole experiment
/// takes a few seconds. Returns its path.
pub fn small_recipe(dir: &Path) -> String {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("models/digits-mlp.toml"),
    )
    .unwrap()
    .replace("iterations = 1500", "iterations = 300")
    .replace("eval_every = 50", "eval_every = 100");
    let path = dir.join("small.toml");
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

/// Every `summary.json` of the experiment in `dir`, by path relative to `dir`, without the
/// fields that measure time.
pub fn summaries(dir: &Path) -> BTreeMap<String, serde_json::Value> {
    let mut out = BTreeMap::new();
    for path in files_under(dir) {
        if path.file_name().is_some_and(|n| n == "summary.json") {
            let mut v: serde_json::Value =
                serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
            let o = v.as_object_mut().unwrap();
            o.remove("train_seconds");
            o.remove("eval_seconds");
            o.remove("examples_per_second");
            out.insert(path.strip_prefix(dir).unwrap().display().to_string(), v);
        }
    }
    out
}

/// Every file under `dir`, recursively, sorted.
pub fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![];
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// Runs `ticket` with `args` and asserts that it succeeds; returns its stdout.
pub fn ticket_ok(args: &[&str]) -> String {
    let out = ticket(args);
    assert!(out.status.success(), "ticket {args:?} failed: {}", stderr(&out));
    stdout(&out)
}

/// Layer-wise pruning rates of models/digits-mlp.toml (hidden, hidden, output).
pub const DIGITS_RATES: [f64; 3] = [0.2, 0.2, 0.1];

/// Evaluations of [`small_recipe`] are this many iterations apart.
pub const SMALL_EVAL_EVERY: usize = 100;

/// Runs `ticket COMMAND` on [`small_recipe`] into `tmp/name` with two threads, seed 7 and
/// `extra` flags; returns that directory. Same seed and threads, same weights: a `train` run
/// here reproduces the dense level of a `find` run here.
fn run_small(tmp: &Path, command: &str, name: &str, extra: &[&str]) -> PathBuf {
    let model = small_recipe(tmp);
    let dir = tmp.join(name);
    let mut args = vec![command, "--model", &model, "--out", dir.to_str().unwrap()];
    args.extend_from_slice(&["--threads", "2", "--seed", "7"]);
    args.extend_from_slice(extra);
    ticket_ok(&args);
    dir
}

/// `ticket find` on [`small_recipe`] without export (see [`run_small`]).
pub fn find_small(tmp: &Path, name: &str, extra: &[&str]) -> PathBuf {
    run_small(tmp, "find", name, &[&["--no-export"], extra].concat())
}

/// `ticket train` on [`small_recipe`] (see [`run_small`]).
pub fn train_small(tmp: &Path, name: &str, extra: &[&str]) -> PathBuf {
    run_small(tmp, "train", name, extra)
}

pub fn read_json(path: &Path) -> serde_json::Value {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A dense checkpoint, read by the library's own safetensors reader.
pub fn load_checkpoint(path: &Path) -> Checkpoint {
    checkpoint::load(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub fn load_net(path: &Path) -> Network {
    load_checkpoint(path).net
}

/// `DIR/level_NN`.
pub fn level_dir(exp: &Path, level: usize) -> PathBuf {
    exp.join(format!("level_{level:02}"))
}

/// The `metrics.json` records of a run directory.
pub fn history(run: &Path) -> Vec<serde_json::Value> {
    read_json(&run.join("metrics.json")).as_array().unwrap().clone()
}

pub fn masks(net: &Network) -> Vec<Vec<u8>> {
    net.layers.iter().map(|l| l.mask.clone()).collect()
}

pub fn kept_per_layer(net: &Network) -> Vec<usize> {
    net.layers.iter().map(|l| l.mask.iter().filter(|&&m| m == 1).count()).collect()
}

/// The mask keeping the `count` kept weights of largest magnitude (earlier position first
/// among equal magnitudes): a naive reference for magnitude pruning.
pub fn largest_magnitudes(weight: &[f32], mask: &[u8], count: usize) -> Vec<u8> {
    let mut order: Vec<usize> = (0..weight.len()).filter(|&i| mask[i] == 1).collect();
    order.sort_by(|&a, &b| weight[b].abs().total_cmp(&weight[a].abs()).then(a.cmp(&b)));
    let mut out = vec![0u8; weight.len()];
    for &i in order.iter().take(count) {
        out[i] = 1;
    }
    out
}

/// Weights a layer keeps after pruning `rate` of its `kept` weights, rounded to nearest as
/// the pruning module documents.
pub fn keep_after_rate(kept: usize, rate: f64) -> usize {
    kept - (rate * kept as f64).round() as usize
}

/// The masks one layer-wise pruning step with `rates` draws from `net`'s weights.
pub fn layerwise_masks(net: &Network, rates: &[f64]) -> Vec<Vec<u8>> {
    net.layers
        .iter()
        .zip(rates)
        .map(|(l, &rate)| {
            let kept = l.mask.iter().filter(|&&m| m == 1).count();
            largest_magnitudes(&l.weight, &l.mask, keep_after_rate(kept, rate))
        })
        .collect()
}

/// Asserts that `net` holds exactly zero wherever its masks prune.
pub fn assert_pruned_are_zero(net: &Network, what: &str) {
    for (n, l) in net.layers.iter().enumerate() {
        let bad = l.weight.iter().zip(&l.mask).filter(|(&w, &m)| m == 0 && w != 0.0).count();
        assert_eq!(bad, 0, "{what}: layer {n} has {bad} pruned weights that are not zero");
    }
}

/// Whether the Fashion-MNIST files of the Debian package are installed. When they are not, a
/// test skips with a printed reason, except that `TICKET_REQUIRE_FASHION_MNIST=1` makes their
/// absence a failure.
pub fn fashion_mnist_installed() -> bool {
    let dir = Path::new(ticket_core::dataset::FASHION_MNIST_DIR);
    let files = ["train-images-idx3", "train-labels-idx1", "t10k-images-idx3", "t10k-labels-idx1"];
    if files.iter().all(|f| dir.join(format!("{f}-ubyte.gz")).exists()) {
        return true;
    }
    let required = std::env::var("TICKET_REQUIRE_FASHION_MNIST").is_ok_and(|v| v == "1");
    assert!(!required, "TICKET_REQUIRE_FASHION_MNIST=1 but {} lacks its IDX files", dir.display());
    eprintln!("skipping: Fashion-MNIST is not installed in {}", dir.display());
    false
}
