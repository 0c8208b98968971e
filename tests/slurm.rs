//! `ticket sweep --slurm --submit` on a real single-node Slurm cluster started here (Debian's
//! `slurm-wlm` and `munge`, a minimal `slurm.conf` on localhost in a temporary directory): the
//! job array runs, a task cancelled in the middle of its experiment and requeued resumes, and
//! the aggregated reports equal those of the same sweep run with `--local`.
//!
//! Needs root and the Slurm and MUNGE daemons; without them it prints `NOT RUN` and why,
//! unless `TICKET_REQUIRE_SLURM=1` (set by CI) makes that a failure.

mod common;

use common::{stderr, stdout};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const TOOLS: [&str; 9] = [
    "munged",
    "slurmctld",
    "slurmd",
    "sbatch",
    "squeue",
    "scontrol",
    "scancel",
    "sinfo",
    "hostname",
];

/// The first `name` on PATH or in the sbin directories (daemons live there).
fn find_tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    let dirs = path.split(':').map(PathBuf::from).chain(["/usr/sbin", "/sbin"].map(PathBuf::from));
    dirs.map(|d| d.join(name)).find(|p| p.is_file())
}

/// Why the test cannot run here, if it cannot.
fn missing() -> Option<String> {
    let absent: Vec<&str> = TOOLS.iter().copied().filter(|t| find_tool(t).is_none()).collect();
    if !absent.is_empty() {
        return Some(format!(
            "{} not installed (apt-get install slurm-wlm munge)",
            absent.join(", ")
        ));
    }
    let uid = Command::new("id").arg("-u").output().map(|o| stdout(&o)).unwrap_or_default();
    if uid.trim() != "0" {
        return Some("the Slurm daemons of the test cluster must run as root".into());
    }
    None
}

/// A port nobody listens on right now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The daemons of a one-node cluster; dropping it stops them.
struct Cluster {
    dir: tempfile::TempDir,
    conf: PathBuf,
    node: String,
}

impl Cluster {
    fn start() -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for sub in ["state", "spool", "log"] {
            std::fs::create_dir(d.join(sub)).unwrap();
        }
        let key = d.join("munge.key");
        let mut bytes = [0u8; 128];
        use std::io::Read;
        std::fs::File::open("/dev/urandom").unwrap().read_exact(&mut bytes).unwrap();
        std::fs::write(&key, bytes).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        let node = stdout(&Command::new("hostname").arg("-s").output().unwrap()).trim().to_string();
        let conf = d.join("slurm.conf");
        let p = |name: &str| d.join(name).display().to_string();
        let text = format!(
            "ClusterName=ticket-test\n\
             SlurmctldHost={node}(127.0.0.1)\n\
             SlurmctldPort={ctld}\n\
             SlurmdPort={slurmd}\n\
             AuthType=auth/munge\n\
             CredType=cred/munge\n\
             AuthInfo=socket={socket}\n\
             SlurmUser=root\n\
             SlurmdUser=root\n\
             StateSaveLocation={state}\n\
             SlurmdSpoolDir={spool}\n\
             SlurmctldPidFile={ctld_pid}\n\
             SlurmdPidFile={slurmd_pid}\n\
             SlurmctldLogFile={ctld_log}\n\
             SlurmdLogFile={slurmd_log}\n\
             ProctrackType=proctrack/linuxproc\n\
             TaskPlugin=task/none\n\
             SelectType=select/cons_tres\n\
             SelectTypeParameters=CR_Core\n\
             SchedulerType=sched/backfill\n\
             MpiDefault=none\n\
             ReturnToService=2\n\
             JobRequeue=1\n\
             NodeName={node} NodeAddr=127.0.0.1 CPUs=2 State=UNKNOWN\n\
             PartitionName=test Nodes={node} Default=YES MaxTime=INFINITE State=UP\n",
            ctld = free_port(),
            slurmd = free_port(),
            socket = p("munge.sock"),
            state = p("state"),
            spool = p("spool"),
            ctld_pid = p("slurmctld.pid"),
            slurmd_pid = p("slurmd.pid"),
            ctld_log = p("log/slurmctld.log"),
            slurmd_log = p("log/slurmd.log"),
        );
        std::fs::write(&conf, text).unwrap();
        let munge_flags = [
            "--force".to_string(),
            format!("--socket={}", p("munge.sock")),
            format!("--key-file={}", key.display()),
            format!("--pid-file={}", p("munged.pid")),
            format!("--log-file={}", p("log/munged.log")),
            format!("--seed-file={}", p("munge.seed")),
        ];
        let cluster = Cluster { dir, conf, node };
        cluster.daemon("munged", &munge_flags);
        cluster.daemon("slurmctld", &[]);
        cluster.daemon("slurmd", &["-N".to_string(), cluster.node.clone()]);
        cluster.wait_for(Duration::from_secs(60), "the node to be idle", || {
            let out = cluster.run("sinfo", &["-h", "-o", "%T"]);
            stdout(&out).trim() == "idle"
        });
        cluster
    }

    /// Starts a daemon (each forks into the background once ready).
    fn daemon(&self, name: &str, args: &[String]) {
        let out = self.command(name).args(args).output().unwrap();
        assert!(out.status.success(), "{name} did not start: {}{}", stderr(&out), self.logs());
    }

    fn command(&self, tool: &str) -> Command {
        let mut cmd = Command::new(find_tool(tool).unwrap_or_else(|| PathBuf::from(tool)));
        cmd.env("SLURM_CONF", &self.conf);
        cmd
    }

    fn run(&self, tool: &str, args: &[&str]) -> Output {
        self.command(tool).args(args).output().unwrap()
    }

    fn ok(&self, tool: &str, args: &[&str]) -> String {
        let out = self.run(tool, args);
        assert!(out.status.success(), "{tool} {args:?}: {}{}", stderr(&out), self.logs());
        stdout(&out)
    }

    /// `ticket` with this cluster's configuration.
    fn ticket(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ticket"));
        cmd.env("SLURM_CONF", &self.conf).args(args).output().unwrap()
    }

    /// The daemons' logs, to explain a failure.
    fn logs(&self) -> String {
        let mut text = String::new();
        for name in ["munged", "slurmctld", "slurmd"] {
            let path = self.dir.path().join("log").join(format!("{name}.log"));
            let log = std::fs::read_to_string(&path).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(15).collect();
            text += &format!("\n--- {name}.log (last lines)\n");
            for line in tail.iter().rev() {
                text += line;
                text.push('\n');
            }
        }
        text
    }

    fn wait_for(&self, limit: Duration, what: &str, mut done: impl FnMut() -> bool) {
        let start = Instant::now();
        while !done() {
            assert!(start.elapsed() < limit, "timed out waiting for {what}{}", self.logs());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn pid(&self, name: &str) -> Option<String> {
        let text = std::fs::read_to_string(self.dir.path().join(format!("{name}.pid"))).ok()?;
        Some(text.trim().to_string()).filter(|p| !p.is_empty())
    }
}

fn alive(pid: &str) -> bool {
    Path::new("/proc").join(pid).exists()
}

impl Drop for Cluster {
    /// Stops the daemons this cluster started, by their pids: Slurm's two first (politely,
    /// then by force), then MUNGE.
    fn drop(&mut self) {
        let _ = self.run("scontrol", &["shutdown"]);
        let pids: Vec<String> =
            ["slurmctld", "slurmd", "munged"].iter().filter_map(|n| self.pid(n)).collect();
        let start = Instant::now();
        while pids[..pids.len().saturating_sub(1)].iter().any(|p| alive(p))
            && start.elapsed() < Duration::from_secs(10)
        {
            std::thread::sleep(Duration::from_millis(100));
        }
        for pid in &pids {
            if alive(pid) {
                let _ = Command::new("kill").arg(pid).status();
            }
        }
    }
}

/// The sweep: digits, 3 replicates x 2 options, small enough for a few seconds per job.
fn write_spec(dir: &Path, name: &str, out: &str) -> PathBuf {
    let path = dir.join(name);
    let text = format!(
        r#"out = "{out}"
models = ["digits-mlp"]
datasets = ["digits"]
seeds = [3]
replicates = 3

[find]
iterations = 200
eval_every = 100
levels = 4

[variants.reset]
[variants.rewind-global]
pruning = "global"
rewind = 100

[slurm]
job_name = "ticket-test"
time = "00:10:00"
cpus_per_task = 1
"#
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// `ticket report DIR --json` for each grid point of a sweep output directory.
fn reports(cluster: &Cluster, out: &Path) -> Vec<(String, serde_json::Value)> {
    let mut points: Vec<PathBuf> = std::fs::read_dir(out)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("replicate_1").exists())
        .collect();
    points.sort();
    points
        .iter()
        .map(|p| {
            let out = cluster.ticket(&["report", p.to_str().unwrap(), "--json"]);
            assert!(out.status.success(), "report {}: {}", p.display(), stderr(&out));
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, serde_json::from_str(&stdout(&out)).unwrap())
        })
        .collect()
}

fn status(cluster: &Cluster, spec: &Path) -> serde_json::Value {
    let out = cluster.ticket(&["sweep", spec.to_str().unwrap(), "--status", "--json"]);
    assert!(out.status.success(), "status: {}", stderr(&out));
    serde_json::from_str(&stdout(&out)).unwrap()
}

#[test]
fn a_slurm_job_array_runs_the_sweep_requeues_a_cancelled_task_and_matches_local() {
    if let Some(why) = missing() {
        let required = std::env::var("TICKET_REQUIRE_SLURM").is_ok_and(|v| v == "1");
        assert!(!required, "TICKET_REQUIRE_SLURM=1 but the Slurm test cannot run: {why}");
        eprintln!("NOT RUN: the Slurm test needs a single-node cluster here: {why}");
        return;
    }
    let cluster = Cluster::start();
    let work = tempfile::tempdir().unwrap();
    let spec = write_spec(work.path(), "cluster.toml", "cluster");
    let out = cluster.ticket(&["sweep", spec.to_str().unwrap(), "--slurm", "--submit"]);
    assert!(out.status.success(), "submit: {}{}", stderr(&out), cluster.logs());
    let id = std::fs::read_to_string(work.path().join("cluster/slurm/job_id")).unwrap();
    let id = id.trim().to_string();
    assert!(stdout(&out).contains(&format!("submitted array job {id}: 6 tasks")));

    // Cancel task 0 while its experiment is half done, then requeue it.
    let task0 = work.path().join("cluster/digits-mlp-digits-reset-s3/replicate_1");
    cluster.wait_for(Duration::from_secs(60), "task 0 to finish a pruned level", || {
        task0.join("level_01/summary.json").exists()
    });
    cluster.ok("scancel", &[&format!("{id}_0")]);
    cluster.wait_for(Duration::from_secs(30), "task 0 to leave the queue", || {
        !stdout(&cluster.run("squeue", &["-h", "-r", "-j", &id, "-o", "%K"]))
            .lines()
            .any(|l| l.trim() == "0")
    });
    let after_cancel = status(&cluster, &spec);
    let job0 = &after_cancel["jobs"][0];
    assert_eq!(job0["state"], "failed", "{after_cancel:#}");
    assert!(job0["error"].as_str().unwrap().contains("CANCELLED"), "{job0}");
    let levels_done = job0["levels_done"].as_u64().unwrap();
    assert!((2..5).contains(&levels_done), "cancelled with {levels_done} of 5 levels done");
    cluster.ok("scontrol", &["requeue", &format!("{id}_0")]);
    // A requeued job waits two minutes before it is eligible again; let it start now.
    cluster.ok("scontrol", &["update", &format!("JobId={id}_0"), "StartTime=now"]);

    cluster.wait_for(Duration::from_secs(180), "the array job to finish", || {
        stdout(&cluster.run("squeue", &["-h", "-r", "-j", &id, "-o", "%K"])).trim().is_empty()
    });
    let done = status(&cluster, &spec);
    assert_eq!(done["counts"], serde_json::json!({ "done": 6 }), "{done:#}{}", cluster.logs());
    assert_eq!(done["slurm_job_id"], id.as_str());
    let log0 = std::fs::read_to_string(work.path().join("cluster/logs/task_0.log")).unwrap();
    assert!(log0.contains("attempt 1,") && log0.contains("attempt 2,"), "{log0}");
    // The second attempt resumed: it found the levels completed before the cancel.
    let resumed = log0.split("attempt 2,").nth(1).unwrap();
    assert!(resumed.contains("[done earlier]"), "{log0}");

    let local_spec = write_spec(work.path(), "local.toml", "local");
    let local =
        cluster.ticket(&["sweep", local_spec.to_str().unwrap(), "--local", "2", "--threads", "1"]);
    assert!(local.status.success(), "local: {}", stderr(&local));

    let (on_cluster, here) = (
        reports(&cluster, &work.path().join("cluster")),
        reports(&cluster, &work.path().join("local")),
    );
    assert_eq!(on_cluster.len(), 2);
    for ((name, a), (local_name, b)) in on_cluster.iter().zip(&here) {
        assert_eq!(name, local_name);
        assert_eq!(a["levels"].as_array().unwrap().len(), 5, "{name}: {a:#}");
        assert_eq!(a["replicates"].as_array().unwrap().len(), 3, "{name}");
        assert_eq!(a, b, "{name}: the cluster's report differs from --local's");
    }
}
