//! `ticket find` interrupted many times over and resumed each time by the same command: killed
//! with SIGKILL at seeded random moments, and aborted deterministically in the middle of an
//! atomic write (`TICKET_ABORT_IN_WRITE=N`, see `crates/core/src/atomic.rs`). After every
//! interruption, every file of the experiment is whole (writes are atomic: each checkpoint
//! loads, each JSON and CSV file parses) and every run marked complete has all its files; the
//! experiment finally resumed to the end is the one an uninterrupted run produces: the same
//! summaries (timings aside), the same chosen ticket, the same weights in every checkpoint.
//! The torn temporary files left behind show that interruptions landed mid-write. (A full
//! disk: tests/disk_full.rs.)

mod common;
use common::*;
use std::collections::BTreeSet;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use ticket_core::atomic::ABORT_IN_WRITE_VAR;
use ticket_infer::fixture::Random;

/// Kills per test run, and the seed of their delays.
const KILLS: usize = 20;
const SEED: u64 = 0x6b11;
/// Each kill comes after a delay drawn uniformly from [0, this share of an uninterrupted run).
const MAX_DELAY_SHARE: f64 = 0.25;
/// Runs aborted by the write hook, and the largest write number they abort in.
const ABORTS: usize = 12;
const MAX_ABORT_WRITE: usize = 10;
/// SIGABRT on Linux.
const SIGABRT: i32 = 6;

fn find_args<'a>(model: &'a str, out: &'a Path) -> Vec<&'a str> {
    vec![
        "find",
        "--model",
        model,
        "--out",
        out.to_str().unwrap(),
        "--levels",
        "3",
        "--reinit-control",
        "--random-prune-control",
        "--no-export",
        "--threads",
        "2",
        "--seed",
        "3",
    ]
}

/// Checks every file of the experiment in `dir`; returns the number of runs marked complete
/// and the temporary files left by interrupted writes.
fn check_experiment(dir: &Path) -> (usize, BTreeSet<PathBuf>) {
    let (mut complete, mut temporary) = (0, BTreeSet::new());
    if !dir.exists() {
        return (0, temporary);
    }
    for path in files_under(dir) {
        let name = path.file_name().unwrap().to_str().unwrap();
        let shown = path.display();
        if name.starts_with('.') && name.contains(".tmp-") {
            temporary.insert(path.clone());
        } else if name.ends_with(".safetensors") {
            if let Err(e) = ticket_core::checkpoint::load(&path) {
                panic!("{shown} does not load: {e}");
            }
        } else if name.ends_with(".json") {
            let text = std::fs::read(&path).unwrap();
            if let Err(e) = serde_json::from_slice::<serde_json::Value>(&text) {
                panic!("{shown} is not JSON: {e}");
            }
        } else if name.ends_with(".csv") {
            let text = std::fs::read_to_string(&path).unwrap();
            let widths: Vec<usize> = text.lines().map(|l| l.split(',').count()).collect();
            assert!(widths.len() >= 2, "{shown} has no rows");
            assert!(widths.iter().all(|&w| w == widths[0]), "{shown} has a torn row");
        }
        if name == "summary.json" {
            complete += 1;
            let run = path.parent().unwrap();
            for file in ["init.safetensors", "final.safetensors", "metrics.json", "metrics.csv"] {
                assert!(run.join(file).exists(), "{} is complete without {file}", run.display());
            }
        }
    }
    (complete, temporary)
}

/// An uninterrupted experiment in `parent/whole`; returns the recipe, the experiment
/// directory, how long the run took and how many runs it holds.
fn uninterrupted(parent: &Path) -> (String, PathBuf, Duration, usize) {
    let model = small_recipe(parent);
    let whole = parent.join("whole");
    let started = Instant::now();
    let out = ticket(&find_args(&model, &whole));
    assert!(out.status.success(), "{}", stderr(&out));
    let duration = started.elapsed();
    let (runs, temporary) = check_experiment(&whole);
    assert_eq!(runs, 1 + 3 * 3, "the dense run and 3 levels with two controls each");
    assert!(temporary.is_empty(), "an uninterrupted run left {temporary:?}");
    (model, whole, duration, runs)
}

/// Resumes the interrupted experiment in `killed` to its end and compares it with `whole`.
fn assert_resumes_to(model: &str, killed: &Path, whole: &Path, runs: usize) {
    let out = ticket(&find_args(model, killed));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(check_experiment(killed).0, runs);
    assert_eq!(summaries(killed), summaries(whole));
    let read = |dir: &Path, name: &str| std::fs::read_to_string(dir.join(name)).unwrap();
    assert_eq!(read(killed, "ticket.json"), read(whole, "ticket.json"));
    // Same weights, bit for bit (the files' header order may differ: metadata is a map).
    let checkpoints = |dir: &Path| -> Vec<String> {
        files_under(dir)
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
            .filter(|p| !p.file_name().unwrap().to_str().unwrap().starts_with('.'))
            .map(|p| p.strip_prefix(dir).unwrap().display().to_string())
            .collect()
    };
    assert_eq!(checkpoints(killed), checkpoints(whole));
    for name in checkpoints(whole) {
        let load = |dir: &Path| ticket_core::checkpoint::load(&dir.join(&name)).unwrap();
        assert!(load(killed) == load(whole), "{name} differs after resuming");
    }
}

#[test]
fn find_killed_at_random_moments_resumes_to_the_uninterrupted_result() {
    let tmp = tempfile::tempdir().unwrap();
    let (model, whole, duration, runs) = uninterrupted(tmp.path());
    let killed = tmp.path().join("killed");
    let mut rng = Random::new(SEED);
    let mut complete_after_kill = Vec::with_capacity(KILLS);
    let mut torn = Vec::with_capacity(KILLS);
    let mut temporary = BTreeSet::new();
    for _ in 0..KILLS {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ticket"))
            .args(find_args(&model, &killed))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(duration.mul_f64(MAX_DELAY_SHARE * rng.unit()));
        // SIGKILL: nothing of the process runs after it, no destructor, no signal handler.
        let _ = child.kill();
        child.wait().unwrap();
        let (complete, now) = check_experiment(&killed);
        complete_after_kill.push(complete);
        // A temporary file carries the writer's pid: a new one is this kill's torn write.
        torn.push(now.difference(&temporary).count());
        temporary = now;
    }
    eprintln!(
        "runs complete after each of {KILLS} kills: {complete_after_kill:?} of {runs}; \
         temporary files each kill left mid-write: {torn:?}"
    );
    assert!(
        complete_after_kill.iter().any(|&c| c > 0 && c < runs),
        "no kill left the experiment half done: {complete_after_kill:?}"
    );
    assert!(complete_after_kill.windows(2).all(|w| w[0] <= w[1]), "a complete run was lost");
    assert_resumes_to(&model, &killed, &whole, runs);
}

/// Aborted in the middle of its Nth atomic write (N seeded, at most [`MAX_ABORT_WRITE`]),
/// each run must leave its torn temporary file (and perhaps those of writes in flight on other
/// threads) and nothing else half done.
#[test]
fn find_aborted_in_the_middle_of_writes_resumes_to_the_uninterrupted_result() {
    let tmp = tempfile::tempdir().unwrap();
    let (model, whole, _, runs) = uninterrupted(tmp.path());
    let killed = tmp.path().join("killed");
    let mut rng = Random::new(SEED + 1);
    let (mut aborted, mut complete_after_abort) = (Vec::new(), Vec::new());
    let mut temporary = BTreeSet::new();
    for _ in 0..ABORTS {
        let write = 1 + (rng.unit() * MAX_ABORT_WRITE as f64) as usize;
        // No core file for the intended abort.
        let out = Command::new("sh")
            .arg("-c")
            .arg("ulimit -c 0 && exec \"$0\" \"$@\"")
            .arg(env!("CARGO_BIN_EXE_ticket"))
            .args(find_args(&model, &killed))
            .env(ABORT_IN_WRITE_VAR, write.to_string())
            .output()
            .unwrap();
        let (complete, now) = check_experiment(&killed);
        if out.status.success() {
            assert_eq!(complete, runs, "a run succeeded before the experiment was complete");
            break;
        }
        assert_eq!(out.status.signal(), Some(SIGABRT), "write {write}: {}", stderr(&out));
        // The aborted write's temporary file, and any other write in flight on another thread.
        let new = now.difference(&temporary).count();
        assert!(new >= 1, "the abort in write {write} left no temporary file");
        aborted.push(write);
        complete_after_abort.push(complete);
        temporary = now;
    }
    eprintln!(
        "aborted in writes {aborted:?}; runs complete after each: {complete_after_abort:?} of \
         {runs}; {} torn temporary files",
        temporary.len()
    );
    assert!(aborted.len() >= ABORTS / 2, "only {} runs aborted mid-write", aborted.len());
    assert!(complete_after_abort.windows(2).all(|w| w[0] <= w[1]), "a complete run was lost");
    assert_resumes_to(&model, &killed, &whole, runs);
}
