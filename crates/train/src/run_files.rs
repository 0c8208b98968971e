//! The files a training run leaves in its directory: checkpoints named by iteration
//! (`init`, `iter_NNNNNN`, `final`) and the evaluation history as CSV (for spreadsheets and
//! plotting tools) and JSON (for programs). All writes are atomic.

use crate::trainer::EvalRecord;
use crate::{Error, Result};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use ticket_core::atomic::write_atomic;
use ticket_core::checkpoint::{self, CheckpointMeta};
use ticket_core::Network;

/// Saves the snapshots of one run as checkpoints in `dir`.
pub struct CheckpointSaver {
    pub dir: PathBuf,
    pub dataset: String,
    pub seed: u64,
}

impl CheckpointSaver {
    /// Writes `net` as the checkpoint of `iteration` (`last`: the end of the run).
    pub fn save(&self, iteration: usize, last: bool, net: &Network) -> Result<PathBuf> {
        self.save_as(&self.dir.join(checkpoint_name(iteration, last)), iteration, net)
    }

    /// Writes `net` under a chosen name (`last.safetensors` after an interruption, say).
    pub fn save_as(&self, path: &Path, iteration: usize, net: &Network) -> Result<PathBuf> {
        let meta = CheckpointMeta { iteration, dataset: self.dataset.clone(), seed: self.seed };
        checkpoint::save(path, net, &meta)?;
        Ok(path.to_path_buf())
    }
}

pub const CSV_HEADER: &str =
    "iteration,train_loss,validation_loss,validation_accuracy,test_loss,test_accuracy";

/// Name of the checkpoint taken at `iteration`, or at the end of the run (`last`).
pub fn checkpoint_name(iteration: usize, last: bool) -> String {
    match (iteration, last) {
        (_, true) => "final.safetensors".to_string(),
        (0, false) => "init.safetensors".to_string(),
        (i, false) => format!("iter_{i:06}.safetensors"),
    }
}

/// Writes `metrics.csv` and `metrics.json` into `dir`, atomically.
pub fn write_history(dir: &Path, history: &[EvalRecord]) -> Result<()> {
    let mut csv = String::from(CSV_HEADER);
    csv.push('\n');
    for r in history {
        let train = r.train_loss.map(|l| l.to_string()).unwrap_or_default();
        writeln!(
            csv,
            "{},{train},{},{},{},{}",
            r.iteration, r.validation_loss, r.validation_accuracy, r.test_loss, r.test_accuracy
        )
        .expect("writing to a String cannot fail");
    }
    write_atomic(&dir.join("metrics.csv"), csv.as_bytes())?;
    let json = serde_json::to_vec_pretty(history).expect("records serialize");
    write_atomic(&dir.join("metrics.json"), &json)?;
    Ok(())
}

/// Reads the `metrics.json` written by [`write_history`].
pub fn read_history(dir: &Path) -> Result<Vec<EvalRecord>> {
    let path = dir.join("metrics.json");
    let bytes = std::fs::read(&path).map_err(|e| ticket_core::Error::io(&path, e))?;
    serde_json::from_slice(&bytes).map_err(|e| {
        Error::Core(ticket_core::Error::invalid(&path, format!("not a metrics file: {e}")))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_round_trips_and_csv_has_one_row_per_record() {
        let dir = tempfile::tempdir().unwrap();
        let history = vec![
            EvalRecord {
                iteration: 0,
                train_loss: None,
                validation_loss: 2.3,
                validation_accuracy: 0.1,
                test_loss: 2.31,
                test_accuracy: 0.09,
            },
            EvalRecord {
                iteration: 100,
                train_loss: Some(0.5),
                validation_loss: 0.4,
                validation_accuracy: 0.88,
                test_loss: 0.45,
                test_accuracy: 0.86,
            },
        ];
        write_history(dir.path(), &history).unwrap();
        assert_eq!(read_history(dir.path()).unwrap(), history);
        let csv = std::fs::read_to_string(dir.path().join("metrics.csv")).unwrap();
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines, [CSV_HEADER, "0,,2.3,0.1,2.31,0.09", "100,0.5,0.4,0.88,0.45,0.86"]);
    }

    #[test]
    fn checkpoint_names() {
        assert_eq!(checkpoint_name(0, false), "init.safetensors");
        assert_eq!(checkpoint_name(10, true), "final.safetensors");
        assert_eq!(checkpoint_name(5, false), "iter_000005.safetensors");
    }
}
