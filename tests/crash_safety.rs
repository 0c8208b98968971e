//! `ticket find` killed with SIGKILL at seeded random moments, many times over, resumed each
//! time by the same command. After every kill, every file of the experiment is whole (writes
//! are atomic: each checkpoint loads, each JSON and CSV file parses) and every run marked
//! complete has all its files; the experiment finally resumed to the end is the one an
//! uninterrupted run produces: the same summaries (timings aside), the same chosen ticket, the
//! same weights in every checkpoint. (A full disk: tests/disk_full.rs.)

mod common;
use common::*;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;
use ticket_infer::fixture::Random;

/// Kills per test run, and the seed of their delays.
const KILLS: usize = 20;
const SEED: u64 = 0x6b11;
/// Each kill comes after a delay drawn uniformly from [0, this share of an uninterrupted run).
const MAX_DELAY_SHARE: f64 = 0.25;

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
/// and the number of temporary files left by interrupted writes.
fn check_experiment(dir: &Path) -> (usize, usize) {
    let (mut complete, mut temporary) = (0, 0);
    if !dir.exists() {
        return (0, 0);
    }
    for path in files_under(dir) {
        let name = path.file_name().unwrap().to_str().unwrap();
        let shown = path.display();
        if name.starts_with('.') && name.contains(".tmp-") {
            temporary += 1;
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

#[test]
fn find_killed_at_random_moments_resumes_to_the_uninterrupted_result() {
    let tmp = tempfile::tempdir().unwrap();
    let model = small_recipe(tmp.path());
    let whole = tmp.path().join("whole");
    let started = Instant::now();
    let out = ticket(&find_args(&model, &whole));
    assert!(out.status.success(), "{}", stderr(&out));
    let duration = started.elapsed();
    let (runs, _) = check_experiment(&whole);
    assert_eq!(runs, 1 + 3 * 3, "the dense run and 3 levels with two controls each");

    let killed = tmp.path().join("killed");
    let mut rng = Random::new(SEED);
    let mut complete_after_kill = Vec::with_capacity(KILLS);
    let mut temporary = 0;
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
        let (complete, temp) = check_experiment(&killed);
        complete_after_kill.push(complete);
        temporary = temp;
    }
    eprintln!(
        "runs complete after each of {KILLS} kills: {complete_after_kill:?} of {runs}; \
         {temporary} temporary files left by interrupted writes"
    );
    assert!(
        complete_after_kill.iter().any(|&c| c > 0 && c < runs),
        "no kill left the experiment half done: {complete_after_kill:?}"
    );
    assert!(complete_after_kill.windows(2).all(|w| w[0] <= w[1]), "a complete run was lost");

    let out = ticket(&find_args(&model, &killed));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(check_experiment(&killed).0, runs);
    assert_eq!(summaries(&killed), summaries(&whole));
    let read = |dir: &Path, name: &str| std::fs::read_to_string(dir.join(name)).unwrap();
    assert_eq!(read(&killed, "ticket.json"), read(&whole, "ticket.json"));
    // Same weights, bit for bit (the files' header order may differ: metadata is a map).
    let checkpoints = |dir: &Path| -> Vec<String> {
        files_under(dir)
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
            .filter(|p| !p.file_name().unwrap().to_str().unwrap().starts_with('.'))
            .map(|p| p.strip_prefix(dir).unwrap().display().to_string())
            .collect()
    };
    assert_eq!(checkpoints(&killed), checkpoints(&whole));
    for name in checkpoints(&whole) {
        let load = |dir: &Path| ticket_core::checkpoint::load(&dir.join(&name)).unwrap();
        assert!(load(&killed) == load(&whole), "{name} differs after resuming");
    }
}
