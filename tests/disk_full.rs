//! A full disk stops `ticket find` with a clear error and leaves no half-written level: every
//! level is either complete (summary written, checkpoints loadable) or not marked complete, and
//! no temporary file remains; an export that does not fit leaves the file it would replace
//! as it was. Needs root to mount a small tmpfs; skipped (with a notice) when
//! mounting is not allowed.

mod common;
use common::*;
use std::path::Path;
use std::process::Command;

/// A tmpfs of a given size mounted on a fresh temporary directory; unmounted on drop (before
/// the directory is removed: fields drop in order).
struct Tmpfs {
    mounted: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Tmpfs {
    /// None (with a notice) where mounting is not allowed.
    fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("skipping: cannot mount a tmpfs here (not root?)");
            return None;
        }
        Some(Tmpfs { mounted: dir.path().to_path_buf(), _dir: dir })
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
    let Some(tmp) = Tmpfs::mount("1200k") else { return };
    let out = tmp.path().join("exp");
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
    // One page: the existing model fills it, so the new file cannot be written beside it.
    let Some(tmp) = Tmpfs::mount("4k") else { return };
    let valid = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/valid");
    let existing = std::fs::read(valid.join("model.safetensors")).unwrap();
    let out = tmp.path().join("model.safetensors");
    std::fs::write(&out, &existing).unwrap();
    let source = valid.join("checkpoint.safetensors");
    let run =
        ticket(&["export", source.to_str().unwrap(), "--out", out.to_str().unwrap(), "--force"]);
    assert_clean_failure(&run, "No space left on device");
    assert!(stderr(&run).contains(out.to_str().unwrap()), "{}", stderr(&run));
    assert_eq!(std::fs::read(&out).unwrap(), existing, "the old file changed");
    assert_eq!(files_under(tmp.path()), vec![out], "a temporary file was left");
}
