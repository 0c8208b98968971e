//! A full disk stops `ticket find` with a clear error and leaves no half-written level: every
//! level is either complete (summary written, checkpoints loadable) or not marked complete, and
//! no temporary file remains; an export that does not fit leaves the file it would replace
//! as it was.
//!
//! The small disks are tmpfs mounts. Each test re-runs itself inside a private user and mount
//! namespace (`unshare -rm`), where mounting needs no root and the mounts vanish with the
//! process. Where no such namespace can be made, the test says so on stderr and does not run;
//! with `TICKET_REQUIRE_TMPFS=1` (CI sets it) that is a failure instead.

mod common;
use common::*;
use std::path::Path;
use std::process::Command;

/// Set in the re-run of a test inside its namespace.
const IN_NAMESPACE: &str = "TICKET_TEST_IN_MOUNT_NAMESPACE";

/// Runs `body` in a private user and mount namespace: directly when this process is already
/// the re-run inside one, else by re-running the test `name` of this binary under
/// `unshare -rm` and requiring that it ran and passed.
fn in_mount_namespace(name: &str, body: impl FnOnce()) {
    if std::env::var_os(IN_NAMESPACE).is_some() {
        return body();
    }
    if let Err(why) = can_mount_in_a_namespace() {
        assert!(
            std::env::var_os("TICKET_REQUIRE_TMPFS").is_none_or(|v| v != "1"),
            "TICKET_REQUIRE_TMPFS=1, but no tmpfs can be mounted: {why}"
        );
        eprintln!("NOT RUN: {name} needs a tmpfs, and none can be mounted here: {why}");
        return;
    }
    let out = Command::new("unshare")
        .arg("-rm")
        .arg(std::env::current_exe().unwrap())
        .args(["--exact", name, "--nocapture", "--test-threads", "1"])
        .env(IN_NAMESPACE, "1")
        .output()
        .unwrap();
    let (stdout, stderr) = (stdout(&out), stderr(&out));
    assert!(out.status.success(), "{name} failed in its namespace:\n{stdout}\n{stderr}");
    assert!(stdout.contains("1 passed"), "{name} did not run in its namespace:\n{stdout}");
}

/// Whether `unshare -rm` can make a namespace in which a tmpfs mounts, or why not.
fn can_mount_in_a_namespace() -> Result<(), String> {
    let dir = tempfile::tempdir().unwrap();
    let probe = Command::new("unshare")
        .args(["-rm", "mount", "-t", "tmpfs", "-o", "size=4k", "tmpfs"])
        .arg(dir.path())
        .output()
        .map_err(|e| format!("cannot run `unshare`: {e}"))?;
    if probe.status.success() {
        Ok(())
    } else {
        Err(format!("`unshare -rm mount -t tmpfs` failed: {}", stderr(&probe).trim()))
    }
}

/// A tmpfs of a given size mounted on a fresh temporary directory; unmounted on drop (before
/// the directory is removed: fields drop in order).
struct Tmpfs {
    mounted: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts it; run only inside [`in_mount_namespace`], where mounting must work.
    fn mount(size: &str) -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "mount -t tmpfs: {}", stderr(&out));
        Tmpfs { mounted: dir.path().to_path_buf(), _dir: dir }
    }

    fn path(&self) -> &Path {
        &self.mounted
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.mounted).status();
    }
}

#[test]
fn full_disk_leaves_no_half_written_level() {
    in_mount_namespace("full_disk_leaves_no_half_written_level", || {
        let tmp = Tmpfs::mount("1200k");
        full_disk_find(tmp.path());
    });
}

fn full_disk_find(disk: &Path) {
    let out = disk.join("exp");
    let run = ticket(&[
        "find",
        "--out",
        out.to_str().unwrap(),
        "--levels",
        "6",
        "--iterations",
        "50",
        "--no-export",
        "--threads",
        "1",
    ]);
    assert_clean_failure(&run, "No space left on device");
    let mut complete = 0;
    for level in 0..=6 {
        let dir = out.join(format!("level_{level:02}"));
        if !dir.join("summary.json").exists() {
            continue;
        }
        complete += 1;
        for name in ["init.safetensors", "final.safetensors"] {
            ticket_core::checkpoint::load(&dir.join(name)).unwrap();
        }
        assert!(dir.join("metrics.json").exists());
    }
    assert!(complete >= 1, "the disk should hold at least the dense level");
    let leftovers: Vec<_> = files_under(&out)
        .into_iter()
        .filter(|p| p.display().to_string().contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
}

#[test]
fn export_to_a_full_disk_keeps_the_file_it_would_replace() {
    in_mount_namespace("export_to_a_full_disk_keeps_the_file_it_would_replace", || {
        // One page: the existing model fills it, so the new file cannot be written beside it.
        let tmp = Tmpfs::mount("4k");
        full_disk_export(tmp.path());
    });
}

fn full_disk_export(disk: &Path) {
    let valid = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/valid");
    let existing = std::fs::read(valid.join("model.safetensors")).unwrap();
    let out = disk.join("model.safetensors");
    std::fs::write(&out, &existing).unwrap();
    let source = valid.join("checkpoint.safetensors");
    let run =
        ticket(&["export", source.to_str().unwrap(), "--out", out.to_str().unwrap(), "--force"]);
    assert_clean_failure(&run, "No space left on device");
    assert!(stderr(&run).contains(out.to_str().unwrap()), "{}", stderr(&run));
    assert_eq!(std::fs::read(&out).unwrap(), existing, "the old file changed");
    assert_eq!(files_under(disk), vec![out], "a temporary file was left");
}
