//! `ticket export` end to end: checkpoints and experiment directories in, CSR files and reports
//! out, and a clean one-line failure for every kind of bad input.

mod common;
use common::*;
use std::fs;
use std::path::{Path, PathBuf};
use ticket_core::checkpoint::{self, CheckpointMeta};
use ticket_core::tensor_file::{edit_file, OwnedTensor};
use ticket_core::{DataSource, Graph, Network, Par};
use ticket_export::read_csr_as_dense;

/// A digits-sized model (64 inputs, 10 classes) keeping about a third of its weights.
fn masked_net() -> Network {
    let graph: Graph = "64-16-10".parse().unwrap();
    let mut net = Network::zeros(&graph);
    for (l, layer) in net.layers.iter_mut().enumerate() {
        for (i, w) in layer.weight.iter_mut().enumerate() {
            *w = (((i * 37 + l * 11) % 23) as f32 - 11.0) / 17.0;
        }
        for (i, b) in layer.bias.iter_mut().enumerate() {
            *b = (i as f32 - 4.0) / 9.0;
        }
        for (i, m) in layer.mask.iter_mut().enumerate() {
            *m = ((i * 7 + l) % 3 == 0) as u8;
        }
        layer.apply_mask();
    }
    net
}

fn save(path: &Path, net: &Network) {
    let meta = CheckpointMeta { iteration: 100, dataset: "digits".into(), seed: 1 };
    checkpoint::save(path, net, &meta).unwrap();
}

/// Rewrites the safetensors file at `path` after `edit` changed its tensors.
fn edit_tensors(path: &Path, edit: impl FnOnce(&mut Vec<(String, OwnedTensor)>)) {
    edit_file(path, |tensors, _| edit(tensors)).unwrap();
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn json(out: &std::process::Output) -> serde_json::Value {
    assert!(out.status.success(), "{}", stderr(out));
    serde_json::from_str(&stdout(out)).unwrap()
}

/// The files in `dir`, sorted: to check nothing partial or temporary was left.
fn listing(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    files
}

#[test]
fn exports_a_checkpoint_with_a_report() {
    let dir = tempfile::tempdir().unwrap();
    let (input, out) = (dir.path().join("c.safetensors"), dir.path().join("c.csr.safetensors"));
    let net = masked_net();
    save(&input, &net);
    let report = json(&ticket(&["export", s(&input), "--json"]));
    assert_eq!(read_csr_as_dense(&out).unwrap(), net, "default output beside the input");
    assert_eq!(report["total"]["kept_weights"], net.kept_weights());
    assert_eq!(report["total"]["csr_file_bytes"], fs::metadata(&out).unwrap().len());
    assert_eq!(report["input_has_masks"], true);
    assert_eq!(report["value_dtype"], "f32");
    assert!(report["accuracy"].is_null());

    let table = ticket(&["export", s(&input), "--out", s(&dir.path().join("t.safetensors"))]);
    assert!(table.status.success(), "{}", stderr(&table));
    let text = stdout(&table);
    for needle in ["fc1", "fc2", "header", "total", "file bytes: CSR", "bits per kept weight"] {
        assert!(text.contains(needle), "table lacks {needle}: {text}");
    }
}

#[test]
fn accuracy_before_and_after_on_a_dataset() {
    let dir = tempfile::tempdir().unwrap();
    let (input, out) = (dir.path().join("c.safetensors"), dir.path().join("m.safetensors"));
    let net = masked_net();
    save(&input, &net);
    let args = ["export", s(&input), "--out", s(&out), "--dtype", "f16", "--dataset", "digits"];
    let report = json(&ticket(&[&args[..], &["--json"]].concat()));
    let test = DataSource::Digits.load(0).unwrap().test;
    let acc = &report["accuracy"];
    assert_eq!(acc["dataset"], "digits");
    assert_eq!(acc["examples"], test.len());
    assert_eq!(acc["source"], net.accuracy(&test, Par::Seq));
    assert_eq!(acc["exported"], read_csr_as_dense(&out).unwrap().accuracy(&test, Par::Seq));
    assert_eq!(report["value_dtype"], "f16");
}

#[test]
fn checkpoint_without_masks_exports_dense_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let (input, out) = (dir.path().join("c.safetensors"), dir.path().join("m.safetensors"));
    let mut net = masked_net();
    net.layers.iter_mut().for_each(|l| l.mask.fill(1));
    save(&input, &net);
    edit_tensors(&input, |t| t.retain(|(n, _)| !n.ends_with("weight_mask")));
    let run = ticket(&["export", s(&input), "--out", s(&out)]);
    assert!(run.status.success(), "{}", stderr(&run));
    assert!(stdout(&run)
        .contains("c.safetensors has no masks: every weight was exported (density 1.0)"));
    assert_eq!(read_csr_as_dense(&out).unwrap(), net);
    let report = json(&ticket(&["export", s(&input), "--out", s(&out), "--force", "--json"]));
    assert_eq!(report["input_has_masks"], false);
    assert_eq!(report["total"]["density"], 1.0);
}

#[test]
fn mask_and_weight_of_different_shapes() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("odd.safetensors");
    save(&input, &masked_net());
    edit_tensors(&input, |t| {
        let mask = t.iter_mut().find(|(n, _)| n == "fc2.weight_mask").unwrap();
        mask.1.shape = vec![16, 10];
    });
    let out = ticket(&["export", s(&input), "--out", s(&dir.path().join("m.safetensors"))]);
    assert_clean_failure(&out, "odd.safetensors: tensor `fc2.weight_mask` has shape [16, 10]");
    assert_eq!(listing(dir.path()), [input]);
}

#[test]
fn nan_and_infinite_weights_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("bad.safetensors");
    let mut net = masked_net();
    net.layers[1].mask[21] = 1;
    net.layers[1].weight[21] = f32::NAN;
    save(&input, &net);
    let out = ticket(&["export", s(&input), "--out", s(&dir.path().join("m.safetensors"))]);
    assert_clean_failure(&out, "bad.safetensors: layer fc2: weight [1, 5] (index 21) is NaN");
    net.layers[1].weight[21] = f32::INFINITY;
    save(&input, &net);
    let out = ticket(&["export", s(&input), "--out", s(&dir.path().join("m.safetensors"))]);
    assert_clean_failure(&out, "bad.safetensors: layer fc2: weight [1, 5] (index 21) is inf");
    assert_eq!(listing(dir.path()), [input], "nothing written");
}

#[test]
fn output_in_a_missing_directory() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("c.safetensors");
    save(&input, &masked_net());
    let target = dir.path().join("missing").join("m.safetensors");
    let out = ticket(&["export", s(&input), "--out", s(&target)]);
    assert_clean_failure(&out, "missing/m.safetensors: the directory to write into does not exist");
}

#[test]
fn existing_output_needs_force() {
    let dir = tempfile::tempdir().unwrap();
    let (input, target) = (dir.path().join("c.safetensors"), dir.path().join("m.safetensors"));
    let net = masked_net();
    save(&input, &net);
    fs::write(&target, b"keep me").unwrap();
    let out = ticket(&["export", s(&input), "--out", s(&target)]);
    assert_clean_failure(&out, "m.safetensors: already exists (pass --force to overwrite it)");
    assert_eq!(fs::read(&target).unwrap(), b"keep me");
    let out = ticket(&["export", s(&input), "--out", s(&target), "--force", "--dtype", "bf16"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(read_csr_as_dense(&target).unwrap().masks(), net.masks());
    assert_eq!(listing(dir.path()), [input, target], "no temporary file left");
}

#[test]
fn a_level_of_an_experiment_directory() {
    let dir = tempfile::tempdir().unwrap();
    let level_dir = dir.path().join("level_03");
    fs::create_dir(&level_dir).unwrap();
    let net = masked_net();
    save(&level_dir.join("final.safetensors"), &net);

    let out = ticket(&["export", s(dir.path())]);
    assert_clean_failure(&out, "pass --level N (levels found: 3)");
    let out = ticket(&["export", s(dir.path()), "--level", "4"]);
    assert_clean_failure(&out, "level_04/final.safetensors: no such checkpoint");

    let out = ticket(&["export", s(dir.path()), "--level", "3"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let written = level_dir.join("final.csr.safetensors");
    assert_eq!(read_csr_as_dense(&written).unwrap(), net);

    fs::write(dir.path().join("ticket.json"), r#"{"level": 3}"#).unwrap();
    let other = dir.path().join("chosen.safetensors");
    let out = ticket(&["export", s(dir.path()), "--out", s(&other)]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(read_csr_as_dense(&other).unwrap(), net);
}
