//! The Slurm side of a sweep: the `sbatch` job-array script, one array task per job, and the
//! queue's view of it (`squeue`).

use super::Sweep;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::{Path, PathBuf};

impl Sweep {
    /// The generated `sbatch` script.
    pub fn script_path(&self) -> PathBuf {
        self.out.join("slurm").join("sweep.sbatch")
    }

    /// Where `--submit` records the array job's id, for `--status`.
    pub fn job_id_path(&self) -> PathBuf {
        self.out.join("slurm").join("job_id")
    }

    /// An `sbatch` job-array script running job `i` as array task `i` with `ticket` at
    /// `exe`. Slurm may requeue a task (pre-emption, node failure, `scontrol requeue`): it
    /// then runs the same command, which resumes its experiment, and appends to its log.
    pub fn slurm_script(&self, exe: &Path) -> String {
        let s = &self.spec.slurm;
        let mut out = String::new();
        let _ = writeln!(out, "#!/bin/bash");
        let _ = writeln!(out, "# Written by `ticket sweep {} --slurm`:", self.file.display());
        let _ = writeln!(out, "# one array task per `ticket find` job of the sweep.");
        let _ = writeln!(
            out,
            "# A requeued task runs the same command again, which resumes its experiment."
        );
        let mut option = |name: &str, value: &str| {
            let _ = writeln!(out, "#SBATCH --{name}={value}");
        };
        option("job-name", &s.job_name);
        let last = self.jobs.len().saturating_sub(1);
        let limit = s.max_parallel.map_or(String::new(), |n| format!("%{n}"));
        option("array", &format!("0-{last}{limit}"));
        option("cpus-per-task", &s.cpus_per_task.to_string());
        option("time", &s.time);
        for (name, value) in [("mem", &s.mem), ("partition", &s.partition)] {
            if let Some(value) = value {
                option(name, value);
            }
        }
        for (name, value) in [("account", &s.account), ("qos", &s.qos)] {
            if let Some(value) = value {
                option(name, value);
            }
        }
        let logs = self.out.join("logs");
        option("output", &format!("{}/task_%a.log", logs.display()));
        option("open-mode", "append");
        let _ = writeln!(out, "#SBATCH --requeue");
        for extra in &s.sbatch {
            let _ = writeln!(out, "#SBATCH {extra}");
        }
        let _ = writeln!(out, "set -euo pipefail");
        for line in &s.setup {
            let _ = writeln!(out, "{line}");
        }
        let _ = writeln!(out, "TICKET={}", shell_quote(&exe.display().to_string()));
        let _ = writeln!(
            out,
            "echo \"== task $SLURM_ARRAY_TASK_ID, attempt $((${{SLURM_RESTART_COUNT:-0}} + 1)), \
             on $(hostname) at $(date -u +%FT%TZ)\""
        );
        let _ = writeln!(out, "case \"$SLURM_ARRAY_TASK_ID\" in");
        for job in &self.jobs {
            let args: Vec<String> =
                job.args(s.cpus_per_task).iter().map(|a| shell_quote(a)).collect();
            let _ = writeln!(out, "  {}) exec \"$TICKET\" {} ;;", job.index, args.join(" "));
        }
        let _ = writeln!(
            out,
            "  *) echo \"error: no job $SLURM_ARRAY_TASK_ID in this sweep (0-{last})\" >&2; exit 2 ;;"
        );
        let _ = writeln!(out, "esac");
        out
    }
}

/// The state of each array task that `squeue -h -r -o "%K %T"` lists (task id, state).
pub fn parse_squeue(text: &str) -> BTreeMap<usize, String> {
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let task = words.next()?.parse().ok()?;
            Some((task, words.next()?.to_string()))
        })
        .collect()
}

/// `arg` as one word of a POSIX shell command.
pub fn shell_quote(arg: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c);
    if !arg.is_empty() && arg.chars().all(plain) {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sweep::tests::sweep;

    #[test]
    fn the_script_has_one_array_task_per_job_and_the_requested_resources() {
        let s = sweep(
            r#"
            models = ["digits-mlp"]
            datasets = ["digits", "idx data"]
            replicates = 2
            [slurm]
            time = "00:30:00"
            cpus_per_task = 2
            mem = "2G"
            max_parallel = 3
            setup = ["module load rust"]
            "#,
        );
        let script = s.slurm_script(Path::new("/opt/ticket/bin/ticket"));
        assert!(script.contains("#SBATCH --array=0-3%3\n"), "{script}");
        assert!(script.contains("#SBATCH --time=00:30:00\n"));
        assert!(script.contains("#SBATCH --cpus-per-task=2\n"));
        assert!(script.contains("#SBATCH --mem=2G\n"));
        assert!(script.contains("#SBATCH --output=/tmp/grid/sweep/logs/task_%a.log\n"));
        assert!(script.contains("#SBATCH --requeue\n"));
        assert!(script.contains("\nmodule load rust\n"));
        assert!(script.contains("--data '/tmp/grid/idx data' --seed 0 --replicate 1"), "{script}");
        let cases = script.lines().filter(|l| l.contains(") exec \"$TICKET\" find")).count();
        assert_eq!(cases, 4);
        assert!(script.contains("  3) exec \"$TICKET\" find"));
    }

    #[test]
    fn shell_quoting_survives_quotes_and_spaces() {
        assert_eq!(shell_quote("runs/a-b"), "runs/a-b");
        assert_eq!(shell_quote("it's here"), "'it'\\''s here'");
        assert_eq!(shell_quote(""), "''");
    }

    #[test]
    fn squeue_lines_give_task_states() {
        let states = parse_squeue("0 RUNNING\n2 PENDING\n[3-5%2] PENDING\n");
        assert_eq!(states.len(), 2);
        assert_eq!(states[&0], "RUNNING");
        assert_eq!(states[&2], "PENDING");
    }
}
