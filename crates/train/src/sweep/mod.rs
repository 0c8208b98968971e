//! Sweeps: a grid of recipes x data sets x option variants x seeds x replicates, described in
//! a TOML file and expanded into independent `ticket find` jobs. Each job owns one replicate
//! directory (see [`crate::replicates`]), which `ticket find` resumes, so a job can be re-run
//! (killed, pre-empted, requeued) as often as needed: the jobs need no scheduler of their own,
//! and run on this machine or as the tasks of a Slurm job array.
//!
//! ```toml
//! out = "runs/sweep"             # relative to this file; default: its stem beside it
//! models = ["digits-mlp"]        # shipped names or recipe files (relative to this file)
//! datasets = ["digits"]          # digits, fashion-mnist, or an IDX directory
//! seeds = [0]                    # experiment seeds (default [0])
//! replicates = 3                 # replicate_1 .. replicate_3 of each (default 1)
//!
//! [find]                         # options of every job
//! iterations = 300
//! levels = 4
//!
//! [variants.layerwise]           # one grid column per variant (default: one, "default")
//! [variants.global-rewind]
//! pruning = "global"
//! rewind = 50
//! reinit_control = true
//!
//! [slurm]
//! time = "02:00:00"
//! cpus_per_task = 2
//! ```
//!
//! Job `i` of the expansion (models, then data sets, variants in name order, seeds and
//! replicates) is array task `i`; its experiment is `OUT/<recipe>-<data>-<variant>-s<seed>/
//! replicate_<k>/` and its log `OUT/logs/task_<i>.log`.

use crate::experiment::{Experiment, RunKind, EXPERIMENT_FILE, TICKET_FILE};
mod slurm;

pub use slurm::{parse_squeue, shell_quote};

use crate::replicates::replicate_dir;
use crate::Result;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use ticket_core::recipe::one_line;
use ticket_core::{Error, Recipe};

/// Most jobs a sweep may expand into (a Slurm job array is usually limited to far fewer,
/// `MaxArraySize`, 1001 by default).
pub const MAX_JOBS: usize = 100_000;

/// A sweep file.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SweepSpec {
    pub out: Option<PathBuf>,
    pub models: Vec<String>,
    #[serde(default = "default_datasets")]
    pub datasets: Vec<String>,
    #[serde(default = "default_seeds")]
    pub seeds: Vec<u64>,
    #[serde(default = "one")]
    pub replicates: usize,
    /// Options of every job; a variant's options override them one by one.
    #[serde(default)]
    pub find: FindOptions,
    #[serde(default)]
    pub variants: BTreeMap<String, FindOptions>,
    #[serde(default)]
    pub slurm: SlurmOptions,
}

fn default_datasets() -> Vec<String> {
    vec!["digits".into()]
}

fn default_seeds() -> Vec<u64> {
    vec![0]
}

fn one() -> usize {
    1
}

/// The `ticket find` options a sweep may set, named as its flags are (with `_` for `-`).
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FindOptions {
    pub iterations: Option<usize>,
    pub eval_every: Option<usize>,
    pub levels: Option<usize>,
    pub pruning: Option<Pruning>,
    pub rewind: Option<usize>,
    pub one_shot: Option<f64>,
    pub reinit_control: Option<bool>,
    pub random_prune_control: Option<bool>,
    pub control_levels: Option<Vec<usize>>,
    pub early_stop: Option<usize>,
    pub early_bird: Option<f64>,
    pub sparse_below: Option<f64>,
    /// Export each job's ticket as CSR and measure it (off by default in sweeps).
    pub export: Option<bool>,
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Pruning {
    Layerwise,
    Global,
}

/// What the generated `sbatch` script asks the cluster for, per array task.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SlurmOptions {
    pub job_name: String,
    pub partition: Option<String>,
    pub account: Option<String>,
    pub qos: Option<String>,
    /// Time limit of each task, in a form `sbatch --time` takes.
    pub time: String,
    /// Cores of each task; its `ticket find` runs with as many threads.
    pub cpus_per_task: usize,
    /// Memory of each task (`sbatch --mem`), e.g. "4G".
    pub mem: Option<String>,
    /// At most this many tasks at once (`--array=...%N`).
    pub max_parallel: Option<usize>,
    /// Further `#SBATCH` options, e.g. "--gres=gpu:0".
    pub sbatch: Vec<String>,
    /// Shell lines run before the job, e.g. "module load rust".
    pub setup: Vec<String>,
}

impl Default for SlurmOptions {
    fn default() -> Self {
        SlurmOptions {
            job_name: "ticket-sweep".into(),
            partition: None,
            account: None,
            qos: None,
            time: "01:00:00".into(),
            cpus_per_task: 1,
            mem: None,
            max_parallel: None,
            sbatch: Vec::new(),
            setup: Vec::new(),
        }
    }
}

/// One `ticket find` run of the grid: one replicate of one experiment.
#[derive(Clone, Debug, PartialEq)]
pub struct Job {
    /// Its place in the expansion: the array task id.
    pub index: usize,
    /// The experiment's directory name under the sweep's `out`, shared by its replicates.
    pub point: String,
    pub replicate: usize,
    /// Where `ticket find --out` writes: `out/point` (the replicate goes below it).
    pub point_dir: PathBuf,
    /// The replicate's experiment directory.
    pub dir: PathBuf,
    /// Levels after the dense one that make the job complete.
    pub levels: usize,
    /// `ticket` arguments, without `--threads`.
    args: Vec<String>,
}

impl Job {
    /// The `ticket` arguments that run this job with `threads` worker threads.
    pub fn args(&self, threads: usize) -> Vec<String> {
        let mut args = self.args.clone();
        args.extend(["--threads".to_string(), threads.to_string()]);
        args
    }

    /// `point/replicate_K`, how the job is named in progress lines and status tables.
    pub fn name(&self) -> String {
        format!("{}/replicate_{}", self.point, self.replicate)
    }
}

/// A loaded sweep: its spec, where it writes, and its jobs.
#[derive(Clone, Debug)]
pub struct Sweep {
    pub file: PathBuf,
    pub spec: SweepSpec,
    pub out: PathBuf,
    pub jobs: Vec<Job>,
}

impl Sweep {
    /// Reads and expands a sweep file, resolving every recipe (an error names the file).
    pub fn load(file: &Path) -> Result<Sweep> {
        let text = std::fs::read_to_string(file).map_err(|e| Error::io(file, e))?;
        let spec = SweepSpec::from_toml_str(&text, file)?;
        Sweep::new(file, spec)
    }

    /// Expands `spec`, read from `file` (relative paths in it are relative to its directory).
    pub fn new(file: &Path, spec: SweepSpec) -> Result<Sweep> {
        let absolute = std::path::absolute(file).map_err(|e| Error::io(file, e))?;
        let base = lexical(absolute.parent().unwrap_or(Path::new("/")));
        let out = match &spec.out {
            Some(out) => lexical(&base.join(out)),
            None => base.join(absolute.file_stem().unwrap_or_default()),
        };
        let variants: Vec<(&str, FindOptions)> = if spec.variants.is_empty() {
            vec![("default", spec.find.clone())]
        } else {
            spec.variants.iter().map(|(n, v)| (n.as_str(), spec.find.overridden_by(v))).collect()
        };
        let mut jobs = Vec::new();
        let mut points = BTreeMap::new();
        for model in &spec.models {
            let model_arg = match lexical(&base.join(model)) {
                path if path.is_file() => path.display().to_string(),
                _ => model.clone(),
            };
            let recipe = Recipe::resolve(&model_arg).map_err(|e| in_file(file, e))?;
            for data in &spec.datasets {
                let (data_flag, data_arg, data_name) = match data.as_str() {
                    "digits" | "fashion-mnist" => ("--dataset", data.clone(), data.clone()),
                    dir => {
                        let path = lexical(&base.join(dir));
                        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
                        ("--data", path.display().to_string(), name.unwrap_or_default())
                    }
                };
                for (variant, options) in &variants {
                    let levels = options.levels.unwrap_or(recipe.prune.levels);
                    let levels = if options.one_shot.is_some() { levels.min(1) } else { levels };
                    for &seed in &spec.seeds {
                        let point = format!("{}-{data_name}-{variant}-s{seed}", recipe.name);
                        let twin = points.insert(point.clone(), (model, data));
                        if let Some((other_model, other_data)) = twin {
                            return Err(Error::invalid(
                                file,
                                format!(
                                    "the grid makes the experiment `{point}` twice (models \
                                     `{other_model}` and `{model}`, data `{other_data}` and \
                                     `{data}`): list each model, data set and seed once, and \
                                     give recipes different names"
                                ),
                            )
                            .into());
                        }
                        let point_dir = out.join(&point);
                        for replicate in 1..=spec.replicates {
                            let mut args: Vec<String> = vec![
                                "find".into(),
                                "--model".into(),
                                model_arg.clone(),
                                data_flag.into(),
                                data_arg.clone(),
                                "--seed".into(),
                                seed.to_string(),
                                "--replicate".into(),
                                replicate.to_string(),
                                "--out".into(),
                                point_dir.display().to_string(),
                            ];
                            options.push_flags(&mut args);
                            jobs.push(Job {
                                index: jobs.len(),
                                point: point.clone(),
                                replicate,
                                point_dir: point_dir.clone(),
                                dir: replicate_dir(&point_dir, replicate),
                                levels,
                                args,
                            });
                        }
                    }
                }
            }
        }
        Ok(Sweep { file: absolute, spec, out, jobs })
    }

    /// Where job logs go: one file per job, appended to by every attempt.
    pub fn log_path(&self, job: &Job) -> PathBuf {
        self.out.join("logs").join(format!("task_{}.log", job.index))
    }

    /// The experiment directories of the grid points, each a directory of replicates.
    pub fn point_dirs(&self) -> Vec<PathBuf> {
        let mut dirs: Vec<PathBuf> = self.jobs.iter().map(|j| j.point_dir.clone()).collect();
        dirs.dedup();
        dirs
    }
}

impl SweepSpec {
    /// Parses and checks a sweep file's text; `origin` names it in errors.
    pub fn from_toml_str(text: &str, origin: &Path) -> Result<SweepSpec> {
        let spec: SweepSpec =
            toml::from_str(text).map_err(|e| Error::invalid(origin, one_line(&e.to_string())))?;
        spec.validate().map_err(|problem| Error::invalid(origin, problem))?;
        Ok(spec)
    }

    /// The first problem of a parsed spec.
    pub fn validate(&self) -> std::result::Result<(), String> {
        for (list, empty) in [
            ("models", self.models.is_empty()),
            ("datasets", self.datasets.is_empty()),
            ("seeds", self.seeds.is_empty()),
        ] {
            if empty {
                return Err(format!("`{list}` is empty: give at least one"));
            }
        }
        if self.replicates == 0 {
            return Err("`replicates` is 0: give at least 1".into());
        }
        let jobs = [self.datasets.len(), self.variants.len().max(1), self.seeds.len()]
            .iter()
            .try_fold(self.models.len() * self.replicates.min(MAX_JOBS), |n, &m| n.checked_mul(m))
            .filter(|&n| n <= MAX_JOBS);
        if jobs.is_none() {
            return Err(format!(
                "the grid has more than {MAX_JOBS} jobs (models x datasets x variants x seeds x \
                 replicates); split it into several sweeps"
            ));
        }
        for name in self.variants.keys() {
            let safe = |c: char| c.is_ascii_alphanumeric() || "._-".contains(c);
            if name.is_empty() || !name.chars().all(safe) || name.starts_with('.') {
                return Err(format!(
                    "variant name `{name}`: use letters, digits, `.`, `_` and `-` (it names a \
                     directory)"
                ));
            }
        }
        let s = &self.slurm;
        if s.cpus_per_task == 0 {
            return Err("`slurm.cpus_per_task` is 0: give at least 1".into());
        }
        if s.max_parallel == Some(0) {
            return Err("`slurm.max_parallel` is 0: give at least 1, or leave it out".into());
        }
        let mut lines: Vec<(&str, &str)> = vec![("job_name", &s.job_name), ("time", &s.time)];
        for (name, value) in
            [("partition", &s.partition), ("account", &s.account), ("qos", &s.qos), ("mem", &s.mem)]
        {
            if let Some(value) = value {
                lines.push((name, value));
            }
        }
        lines.extend(s.sbatch.iter().map(|l| ("sbatch", l.as_str())));
        lines.extend(s.setup.iter().map(|l| ("setup", l.as_str())));
        for (name, value) in lines {
            if value.chars().any(|c| c.is_control()) {
                return Err(format!("`slurm.{name}` holds a line break or control character"));
            }
            if value.is_empty() && ["job_name", "time"].contains(&name) {
                return Err(format!("`slurm.{name}` is empty"));
            }
        }
        Ok(())
    }
}

impl FindOptions {
    /// These options with every option `other` sets taking its place.
    pub fn overridden_by(&self, other: &FindOptions) -> FindOptions {
        FindOptions {
            iterations: other.iterations.or(self.iterations),
            eval_every: other.eval_every.or(self.eval_every),
            levels: other.levels.or(self.levels),
            pruning: other.pruning.or(self.pruning),
            rewind: other.rewind.or(self.rewind),
            one_shot: other.one_shot.or(self.one_shot),
            reinit_control: other.reinit_control.or(self.reinit_control),
            random_prune_control: other.random_prune_control.or(self.random_prune_control),
            control_levels: other.control_levels.clone().or(self.control_levels.clone()),
            early_stop: other.early_stop.or(self.early_stop),
            early_bird: other.early_bird.or(self.early_bird),
            sparse_below: other.sparse_below.or(self.sparse_below),
            export: other.export.or(self.export),
        }
    }

    /// Appends the `ticket find` flags of these options.
    fn push_flags(&self, args: &mut Vec<String>) {
        let mut value = |flag: &str, v: Option<String>| {
            if let Some(v) = v {
                args.extend([format!("--{flag}"), v]);
            }
        };
        value("iterations", self.iterations.map(|v| v.to_string()));
        value("eval-every", self.eval_every.map(|v| v.to_string()));
        value("levels", self.levels.map(|v| v.to_string()));
        value(
            "pruning",
            self.pruning.map(|p| match p {
                Pruning::Layerwise => "layerwise".to_string(),
                Pruning::Global => "global".to_string(),
            }),
        );
        value("rewind", self.rewind.map(|v| v.to_string()));
        value("one-shot", self.one_shot.map(|v| v.to_string()));
        value(
            "control-levels",
            self.control_levels
                .as_ref()
                .map(|l| l.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(",")),
        );
        value("early-stop", self.early_stop.map(|v| v.to_string()));
        value("early-bird", self.early_bird.map(|v| v.to_string()));
        value("sparse-below", self.sparse_below.map(|v| v.to_string()));
        for (flag, on) in [
            ("--reinit-control", self.reinit_control == Some(true)),
            ("--random-prune-control", self.random_prune_control == Some(true)),
            ("--no-export", self.export != Some(true)),
        ] {
            if on {
                args.push(flag.to_string());
            }
        }
    }
}

/// How far a job's experiment directory has come.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobProgress {
    /// `experiment.json` exists: the job has started at least once.
    pub started: bool,
    /// Levels whose ticket run is complete, the dense one included.
    pub levels_done: usize,
    /// Every level and control ran and the ticket was chosen.
    pub complete: bool,
}

/// Reads what the job's directory holds (an unreadable directory is an error naming it).
pub fn job_progress(job: &Job) -> Result<JobProgress> {
    if !job.dir.join(EXPERIMENT_FILE).exists() {
        return Ok(JobProgress { started: false, levels_done: 0, complete: false });
    }
    let exp = Experiment::open(&job.dir)?;
    let levels_done = exp.completed(RunKind::Ticket)?.len();
    let complete = levels_done > job.levels && job.dir.join(TICKET_FILE).exists();
    Ok(JobProgress { started: true, levels_done, complete })
}

/// `path` without `.` and with each `..` removing the component before it, so that the
/// paths in scripts and listings read plainly (`/a/sweeps/../runs` is `/a/runs`).
fn lexical(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            Component::CurDir => {}
            Component::ParentDir => match out.components().next_back() {
                Some(Component::Normal(_)) => {
                    out.pop();
                }
                Some(Component::RootDir | Component::Prefix(_)) => {}
                _ => out.push(".."),
            },
            other => out.push(other),
        }
    }
    out
}

fn in_file(file: &Path, e: ticket_core::Error) -> ticket_core::Error {
    match e {
        Error::Usage(problem) => Error::invalid(file, problem),
        other => other,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The sweep of `text`, as if read from /tmp/grid/sweep.toml.
    pub(crate) fn sweep(text: &str) -> Sweep {
        let path = Path::new("/tmp/grid/sweep.toml");
        Sweep::new(path, SweepSpec::from_toml_str(text, path).unwrap()).unwrap()
    }

    fn error(text: &str) -> String {
        SweepSpec::from_toml_str(text, Path::new("s.toml")).unwrap_err().to_string()
    }

    #[test]
    fn the_grid_expands_models_data_variants_seeds_and_replicates_in_order() {
        let s = sweep(
            r#"
            models = ["digits-mlp", "digits-conv"]
            seeds = [0, 7]
            replicates = 3
            [find]
            iterations = 40
            levels = 2
            [variants.b]
            pruning = "global"
            levels = 5
            [variants.a]
            "#,
        );
        assert_eq!(s.out, Path::new("/tmp/grid/sweep"));
        assert_eq!(s.jobs.len(), 2 * 2 * 2 * 3);
        let names: Vec<String> = s.jobs.iter().map(|j| j.name()).collect();
        assert_eq!(names[0], "digits-mlp-digits-a-s0/replicate_1");
        assert_eq!(names[3], "digits-mlp-digits-a-s7/replicate_1");
        assert_eq!(names[6], "digits-mlp-digits-b-s0/replicate_1");
        assert_eq!(names[12], "digits-conv-digits-a-s0/replicate_1");
        assert!(s.jobs.iter().enumerate().all(|(i, j)| j.index == i));
        assert_eq!((s.jobs[0].levels, s.jobs[6].levels), (2, 5));
        assert_eq!(
            s.jobs[7].args(2).join(" "),
            "find --model digits-mlp --dataset digits --seed 0 --replicate 2 --out \
             /tmp/grid/sweep/digits-mlp-digits-b-s0 --iterations 40 --levels 5 --pruning global \
             --no-export --threads 2"
        );
        assert_eq!(s.point_dirs().len(), 8);
    }

    #[test]
    fn paths_are_read_plainly() {
        assert_eq!(lexical(Path::new("/a/sweeps/../runs/./x")), Path::new("/a/runs/x"));
        assert_eq!(lexical(Path::new("/../a")), Path::new("/a"));
        assert_eq!(lexical(Path::new("../a/..")), Path::new(".."));
    }

    #[test]
    fn bad_specs_say_what_is_wrong() {
        assert!(error("models = []").contains("`models` is empty"));
        assert!(error("models = [\"digits-mlp\"]\nreplicates = 0").contains("`replicates` is 0"));
        assert!(error("models = [\"digits-mlp\"]\n[find]\nrewnd = 3").contains("rewnd"));
        assert!(error("models = [\"digits-mlp\"]\n[variants.\"a/b\"]").contains("variant name"));
        assert!(
            error("models = [\"m\"]\n[slurm]\ntime = \"1\\n#SBATCH --x\"").contains("line break")
        );
        assert!(error("models = [\"m\"]\n[find]\npruning = \"random\"").contains("random"));
        let path = Path::new("/tmp/s.toml");
        let spec = SweepSpec::from_toml_str("models = [\"no-such-recipe\"]", path).unwrap();
        let err = Sweep::new(path, spec).unwrap_err().to_string();
        assert!(err.starts_with("/tmp/s.toml: no recipe file `no-such-recipe`"), "{err}");
    }
}
