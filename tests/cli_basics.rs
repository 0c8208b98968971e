//! The command line explains itself and fails cleanly on bad input.

mod common;
use common::*;
use std::fs;

#[test]
fn every_command_has_help_with_examples() {
    let top = ticket(&["--help"]);
    assert!(top.status.success());
    for cmd in ["find", "train", "export", "infer", "report", "sweep"] {
        assert!(stdout(&top).contains(cmd), "top-level help lacks {cmd}");
        let out = ticket(&[cmd, "--help"]);
        assert!(out.status.success(), "{cmd} --help failed");
        assert!(stdout(&out).contains("Examples:"), "{cmd} --help has no examples");
    }
}

fn idx(magic: [u8; 4], dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut out = magic.to_vec();
    for d in dims {
        out.extend_from_slice(&d.to_be_bytes());
    }
    out.extend_from_slice(data);
    out
}

/// A directory of tiny, valid IDX files (4 train and 2 test images of 2x2 pixels).
fn idx_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let w = |name: &str, bytes: Vec<u8>| fs::write(dir.path().join(name), bytes).unwrap();
    w("train-images-idx3-ubyte", idx([0, 0, 8, 3], &[4, 2, 2], &[9; 16]));
    w("train-labels-idx1-ubyte", idx([0, 0, 8, 1], &[4], &[0, 1, 0, 1]));
    w("t10k-images-idx3-ubyte", idx([0, 0, 8, 3], &[2, 2, 2], &[9; 8]));
    w("t10k-labels-idx1-ubyte", idx([0, 0, 8, 1], &[2], &[0, 1]));
    dir
}

fn train_on(dir: &std::path::Path) -> std::process::Output {
    ticket(&["train", "--data", dir.to_str().unwrap()])
}

#[test]
fn truncated_idx_file() {
    let dir = idx_dir();
    let path = dir.path().join("train-images-idx3-ubyte");
    let bytes = fs::read(&path).unwrap();
    fs::write(&path, &bytes[..bytes.len() - 3]).unwrap();
    assert_clean_failure(&train_on(dir.path()), "train-images-idx3-ubyte: truncated");
}

#[test]
fn wrong_idx_magic() {
    let dir = idx_dir();
    fs::write(dir.path().join("t10k-labels-idx1-ubyte"), idx([1, 2, 8, 1], &[2], &[0, 1])).unwrap();
    assert_clean_failure(&train_on(dir.path()), "t10k-labels-idx1-ubyte: not an IDX file");
}

#[test]
fn label_image_count_mismatch() {
    let dir = idx_dir();
    fs::write(dir.path().join("train-labels-idx1-ubyte"), idx([0, 0, 8, 1], &[3], &[0, 1, 0]))
        .unwrap();
    assert_clean_failure(&train_on(dir.path()), "3 labels for 4 images");
}

#[test]
fn gzip_garbage() {
    let dir = idx_dir();
    fs::remove_file(dir.path().join("train-images-idx3-ubyte")).unwrap();
    let mut junk = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3];
    junk.extend((0..200u32).map(|i| (i * 37 % 251) as u8));
    fs::write(dir.path().join("train-images-idx3-ubyte.gz"), junk).unwrap();
    assert_clean_failure(&train_on(dir.path()), "train-images-idx3-ubyte.gz");
}

#[test]
fn missing_data_directory() {
    assert_clean_failure(&ticket(&["train", "--data", "/nonexistent/idx"]), "/nonexistent/idx");
}

#[test]
fn impossible_recipe() {
    let dir = tempfile::tempdir().unwrap();
    let recipe = fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models/digits-mlp.toml"),
    )
    .unwrap()
    .replace("[0.2, 0.2, 0.1]", "[0.2, 1.5, 0.1]");
    let path = dir.path().join("bad.toml");
    fs::write(&path, recipe).unwrap();
    let out =
        ticket(&["find", "--model", path.to_str().unwrap(), "--out", dir.path().to_str().unwrap()]);
    assert_clean_failure(&out, "bad.toml: prune.layer_rates[1] = 1.5 is impossible");
}

#[test]
fn corrupt_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.safetensors");
    fs::write(&path, b"\x10\x00\x00\x00\x00\x00\x00\x00{\"a\":").unwrap();
    let out = ticket(&["export", path.to_str().unwrap()]);
    assert_clean_failure(&out, "broken.safetensors: not a valid safetensors file");
}

#[test]
fn mask_that_does_not_fit_the_model() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let trained = ticket(&["train", "--iterations", "5", "--out", out.to_str().unwrap()]);
    assert!(trained.status.success(), "{}", stderr(&trained));
    let mask = out.join("final.safetensors");
    let run = ticket(&["train", "--model", "lenet-300-100", "--mask", mask.to_str().unwrap()]);
    assert_clean_failure(&run, "the mask is for 64-300-100-10 but the model is 784-300-100-10");
}

#[test]
fn ctrl_c_stops_training_with_a_consistent_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_ticket"))
        .args(["train", "--iterations", "1000000", "--out", out.to_str().unwrap()])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Interrupt once training is under way (its first checkpoint exists).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !out.join("init.safetensors").exists() {
        assert!(std::time::Instant::now() < deadline, "training never started");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let result = child.wait_with_output().unwrap();
    assert_clean_failure(&result, "interrupted at iteration");
    let last = ticket_core::checkpoint::load(&out.join("last.safetensors")).unwrap();
    assert!(last.meta.iteration > 0 && last.meta.iteration < 1_000_000);
    assert!(out.join("metrics.csv").exists());
}
