//! `ticket sweep`: the jobs of a sweep file run here N at a time (child processes of this
//! binary), or written as a Slurm job array and submitted, and the state of every job read
//! back from its experiment directory and the queue.

use super::observe::interrupted;
use crate::cli::{Cli, SweepArgs};
use anyhow::{bail, Context, Result};
use clap::Parser;
use serde_json::json;
use std::collections::BTreeMap;
use std::fs::File;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use ticket_core::atomic::write_atomic;
use ticket_train::sweep::{job_progress, parse_squeue, Job, Sweep};

pub fn run(args: SweepArgs) -> Result<()> {
    let sweep = Sweep::load(&args.spec)?;
    if args.status {
        return status(&sweep, args.json);
    }
    check_jobs(&sweep)?;
    if args.slurm {
        return slurm(&sweep, &args);
    }
    match args.local {
        Some(n) => local(&sweep, n, args.threads, args.json),
        None => list(&sweep, args.json),
    }
}

/// Refuses a sweep whose jobs `ticket find` would refuse for their options (an unknown
/// value, a rewind past the end of training): better here than after a wait in the queue.
fn check_jobs(sweep: &Sweep) -> Result<()> {
    for job in &sweep.jobs {
        let argv = std::iter::once("ticket".to_string()).chain(job.args(1));
        let problem = match crate::cli::Cli::try_parse_from(argv) {
            Ok(Cli { command: crate::cli::Command::Find(find) }) => {
                super::find::recipe_with_overrides(&find).err().map(|e| e.to_string())
            }
            Ok(_) => Some("not a find command".to_string()),
            Err(e) => Some(e.to_string().lines().next().unwrap_or_default().to_string()),
        };
        if let Some(problem) = problem {
            let problem = problem.strip_prefix("error: ").unwrap_or(&problem).to_string();
            bail!("{}: job {} ({}): {problem}", sweep.file.display(), job.index, job.name());
        }
    }
    Ok(())
}

/// Without a mode: what the sweep would run.
fn list(sweep: &Sweep, json: bool) -> Result<()> {
    if json {
        let jobs: Vec<_> = sweep
            .jobs
            .iter()
            .map(|j| json!({ "index": j.index, "name": j.name(), "dir": j.dir, "args": j.args(1) }))
            .collect();
        println!("{}", serde_json::to_string_pretty(&json!({ "jobs": jobs }))?);
        return Ok(());
    }
    println!("{} jobs, writing under {}:", sweep.jobs.len(), sweep.out.display());
    for job in &sweep.jobs {
        println!("{:>4}  ticket {}", job.index, job.args(1).join(" "));
    }
    println!("\nrun them with --local N, or on a Slurm cluster with --slurm [--submit]");
    Ok(())
}

/// How one job ended in a local run.
struct Finished {
    job: usize,
    ok: bool,
    code: Option<i32>,
    seconds: f64,
    error: Option<String>,
}

/// Runs the jobs that are not complete yet, `n` at a time, each `ticket find` with its share
/// of the cores; a line per started and finished job on stderr.
fn local(sweep: &Sweep, n: usize, threads: Option<usize>, json: bool) -> Result<()> {
    if n == 0 {
        bail!("--local 0: give the number of jobs to run at once, at least 1");
    }
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
    let threads = threads.unwrap_or((cores / n).max(1));
    let exe = std::env::current_exe().context("cannot find the ticket binary to run the jobs")?;
    let logs = sweep.out.join("logs");
    std::fs::create_dir_all(&logs).with_context(|| format!("{}: cannot create", logs.display()))?;
    let mut waiting = Vec::new();
    let mut done_before = 0;
    for job in &sweep.jobs {
        if job_progress(job)?.complete {
            done_before += 1;
        } else {
            waiting.push(job);
        }
    }
    let total = sweep.jobs.len();
    eprintln!(
        "{total} jobs ({done_before} complete already), {n} at a time with {threads} threads each; \
         logs in {}",
        logs.display()
    );
    waiting.reverse();
    let mut running: Vec<(&Job, Child, Instant)> = Vec::new();
    let mut finished: Vec<Finished> = Vec::new();
    let progress = |finished: &[Finished], running: usize| {
        let failed = finished.iter().filter(|f| !f.ok).count();
        format!(
            "[{}/{total} done, {running} running, {failed} failed]",
            done_before + finished.len() - failed
        )
    };
    loop {
        while running.len() < n && !interrupted().load(Ordering::Relaxed) {
            let Some(job) = waiting.pop() else { break };
            let child = spawn(&exe, job, threads, &sweep.log_path(job))?;
            running.push((job, child, Instant::now()));
            eprintln!("{} started  {}", progress(&finished, running.len()), job.name());
        }
        if running.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        let mut i = 0;
        while i < running.len() {
            let status = running[i].1.try_wait().context("cannot wait for a job")?;
            let Some(status) = status else {
                i += 1;
                continue;
            };
            let (job, _, started) = running.swap_remove(i);
            let log = sweep.log_path(job);
            let end = Finished {
                job: job.index,
                ok: status.success(),
                code: status.code(),
                seconds: started.elapsed().as_secs_f64(),
                error: (!status.success()).then(|| last_error(&log)).flatten(),
            };
            let verdict = if end.ok { "finished" } else { "FAILED  " };
            finished.push(end);
            eprintln!(
                "{} {verdict} {} ({:.1} s)",
                progress(&finished, running.len()),
                job.name(),
                started.elapsed().as_secs_f64()
            );
        }
    }
    finished.sort_by_key(|f| f.job);
    let failed: Vec<&Finished> = finished.iter().filter(|f| !f.ok).collect();
    let not_run = waiting.len();
    if json {
        let jobs: Vec<_> = finished
            .iter()
            .map(|f| {
                let job = &sweep.jobs[f.job];
                json!({
                    "index": f.job, "name": job.name(), "dir": job.dir, "ok": f.ok,
                    "exit_code": f.code, "seconds": f.seconds, "error": f.error,
                    "log": sweep.log_path(job),
                })
            })
            .collect();
        let summary = json!({
            "jobs": jobs, "complete_before": done_before, "not_run": not_run,
            "reports": sweep.point_dirs(),
        });
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        for f in &failed {
            let job = &sweep.jobs[f.job];
            println!(
                "failed: job {} {} (exit {}): {}; log: {}",
                f.job,
                job.name(),
                f.code.map_or("by signal".into(), |c| c.to_string()),
                f.error.as_deref().unwrap_or("no error line in the log"),
                sweep.log_path(job).display()
            );
        }
        let reports: Vec<_> = sweep.point_dirs().into_iter().filter(|d| d.exists()).collect();
        if !reports.is_empty() {
            println!("reports (mean, min and max over the replicates):");
        }
        for dir in reports {
            println!("  ticket report {}", dir.display());
        }
    }
    if not_run > 0 {
        bail!("interrupted: {not_run} jobs not started; run the same command again to resume");
    }
    if !failed.is_empty() {
        bail!("{} of {} jobs failed (see above); re-running resumes them", failed.len(), total);
    }
    Ok(())
}

/// Starts one job with its output appended to its log.
fn spawn(exe: &Path, job: &Job, threads: usize, log: &Path) -> Result<Child> {
    let open = || {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("{}: cannot open the log", log.display()))
    };
    let (out, err): (File, File) = (open()?, open()?);
    Command::new(exe)
        .args(job.args(threads))
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .with_context(|| format!("cannot start {} for job {}", exe.display(), job.name()))
}

/// The last line of a log that reports an error (ticket's `error: ...`, or Slurm's note that
/// it cancelled the task).
fn last_error(log: &Path) -> Option<String> {
    let text = std::fs::read(log).ok()?;
    let text = String::from_utf8_lossy(&text);
    let line = text.lines().rev().find(|l| l.contains("error:"))?.trim();
    Some(line.strip_prefix("error: ").unwrap_or(line).to_string())
}

/// Writes the job-array script; with `--submit`, submits it and records the job id.
fn slurm(sweep: &Sweep, args: &SweepArgs) -> Result<()> {
    let exe = match &args.ticket_binary {
        Some(path) => std::path::absolute(path)?,
        None => std::env::current_exe().context("cannot find the ticket binary")?,
    };
    let script = sweep.script_path();
    let logs = sweep.out.join("logs");
    for dir in [script.parent().unwrap_or(&sweep.out), &logs] {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("{}: cannot create", dir.display()))?;
    }
    write_atomic(&script, sweep.slurm_script(&exe).as_bytes())?;
    if !args.submit && args.json {
        println!("{}", json!({ "script": script, "tasks": sweep.jobs.len() }));
        return Ok(());
    }
    if !args.submit {
        println!("wrote {} ({} array tasks)", script.display(), sweep.jobs.len());
        println!("submit it with: sbatch {}", script.display());
        return Ok(());
    }
    let output = Command::new("sbatch")
        .arg("--parsable")
        .arg(&script)
        .output()
        .context("cannot run `sbatch` (is Slurm's client installed and on PATH?)")?;
    if !output.status.success() {
        let err = String::from_utf8_lossy(&output.stderr);
        bail!(
            "sbatch {}: {}",
            script.display(),
            err.split_whitespace().collect::<Vec<_>>().join(" ")
        );
    }
    let reply = String::from_utf8_lossy(&output.stdout);
    let id = reply.trim().split(';').next().unwrap_or_default().to_string();
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_digit()) {
        bail!("sbatch {}: unexpected reply `{}`", script.display(), reply.trim());
    }
    write_atomic(&sweep.job_id_path(), format!("{id}\n").as_bytes())?;
    if args.json {
        println!("{}", json!({ "job_id": id, "tasks": sweep.jobs.len(), "script": script }));
    } else {
        println!(
            "submitted array job {id}: {} tasks, script {}",
            sweep.jobs.len(),
            script.display()
        );
        println!("follow it with: ticket sweep {} --status", sweep.file.display());
    }
    Ok(())
}

/// The queue's view of the submitted array job: state per array task (empty when nothing was
/// submitted, Slurm's tools are missing, or the job has left the queue).
fn queued(sweep: &Sweep) -> (Option<String>, BTreeMap<usize, String>) {
    let Ok(id) = std::fs::read_to_string(sweep.job_id_path()) else {
        return (None, BTreeMap::new());
    };
    let id = id.trim().to_string();
    let states = Command::new("squeue")
        .args(["-h", "-r", "-j", &id, "-o", "%K %T"])
        .stderr(Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| parse_squeue(&String::from_utf8_lossy(&o.stdout)))
        .unwrap_or_default();
    (Some(id), states)
}

/// Done, running or pending (from `squeue`), failed, incomplete or not started, per job.
fn status(sweep: &Sweep, json: bool) -> Result<()> {
    let (job_id, queue) = queued(sweep);
    let mut rows = Vec::new();
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for job in &sweep.jobs {
        let progress = job_progress(job)?;
        let log = sweep.log_path(job);
        let (state, detail) = if progress.complete {
            ("done".to_string(), None)
        } else if let Some(state) = queue.get(&job.index) {
            (state.to_lowercase(), None)
        } else if let Some(error) = last_error(&log) {
            ("failed".to_string(), Some(error))
        } else if progress.started {
            ("incomplete".to_string(), None)
        } else {
            ("not started".to_string(), None)
        };
        *counts.entry(state.clone()).or_default() += 1;
        rows.push((job, state, detail, progress.levels_done, log));
    }
    if json {
        let jobs: Vec<_> = rows
            .iter()
            .map(|(job, state, detail, levels_done, log)| {
                json!({
                    "index": job.index, "name": job.name(), "dir": job.dir, "state": state,
                    "levels_done": levels_done, "levels": job.levels + 1, "error": detail,
                    "log": log,
                })
            })
            .collect();
        let out = json!({ "slurm_job_id": job_id, "counts": counts, "jobs": jobs });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    println!("{:>4}  {:<12} {:>6}  job", "task", "state", "levels");
    for (job, state, detail, levels_done, _) in &rows {
        println!(
            "{:>4}  {:<12} {:>6}  {}{}",
            job.index,
            state,
            format!("{levels_done}/{}", job.levels + 1),
            job.name(),
            detail.as_ref().map_or(String::new(), |d| format!("  ({d})"))
        );
    }
    let summary: Vec<String> = counts.iter().map(|(state, n)| format!("{n} {state}")).collect();
    let via = job_id.map_or(String::new(), |id| format!(" (Slurm array job {id})"));
    println!("{} jobs{via}: {}", sweep.jobs.len(), summary.join(", "));
    Ok(())
}
