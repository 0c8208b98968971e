//! Running the `ticket` binary from end-to-end tests.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};

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
