//! Atomic file writes: a file is either the old one or the complete new one, never half of
//! either. Everything ticket writes (checkpoints, CSR models, metrics, experiment state) goes
//! through here so that a kill, a crash or a full disk cannot leave a torn file behind.
//!
//! For crash tests, `TICKET_ABORT_IN_WRITE=N` makes the process abort (SIGABRT, no cleanup)
//! in the middle of its Nth atomic write, counted from 1: the temporary file then holds half
//! of the new bytes and the rename has not happened, as when a kill lands mid-write. Nothing
//! else reads the variable; unset, it costs one check per write.

use crate::{Error, Result};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

/// The environment variable of the crash-test hook (see the module documentation).
pub const ABORT_IN_WRITE_VAR: &str = "TICKET_ABORT_IN_WRITE";

/// Writes `bytes` to `path` atomically: a temporary file in the same directory, fsync, rename,
/// fsync of the directory. On failure the temporary file is removed and `path` is untouched.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_with(path, |file| file.write_all(bytes))
}

/// Like [`write_atomic`], for writers that stream their output.
pub fn write_atomic_with(
    path: &Path,
    fill: impl FnOnce(&mut fs::File) -> std::io::Result<()>,
) -> Result<()> {
    let dir = parent_dir(path);
    if !dir.is_dir() {
        return Err(Error::invalid(path, "the directory to write into does not exist"));
    }
    let tmp = temp_path(path);
    let outcome = (|| {
        let mut file = fs::File::create(&tmp)?;
        fill(&mut file)?;
        file.flush()?;
        abort_if_asked(&file)?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if let Err(err) = outcome {
        let _ = fs::remove_file(&tmp);
        return Err(Error::io(path, err));
    }
    // Make the rename itself durable; a failure here does not undo the write.
    if let Ok(d) = fs::File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Atomic writes this process has started.
static WRITES: AtomicUsize = AtomicUsize::new(0);

/// The crash-test hook: on the write `TICKET_ABORT_IN_WRITE` names, cuts the temporary file to
/// half its length and aborts.
fn abort_if_asked(tmp: &fs::File) -> std::io::Result<()> {
    static ABORT_AT: OnceLock<Option<usize>> = OnceLock::new();
    let abort_at =
        ABORT_AT.get_or_init(|| std::env::var(ABORT_IN_WRITE_VAR).ok()?.trim().parse().ok());
    let write = WRITES.fetch_add(1, Ordering::SeqCst) + 1;
    if *abort_at == Some(write) {
        tmp.set_len(tmp.metadata()?.len() / 2)?;
        tmp.sync_all()?;
        std::process::abort();
    }
    Ok(())
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn temp_path(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    parent_dir(path).join(format!(".{name}.tmp-{}", std::process::id()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_content_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.bin");
        write_atomic(&path, b"first").unwrap();
        write_atomic(&path, b"second").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"second");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn failed_fill_keeps_old_file_and_names_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.bin");
        write_atomic(&path, b"old").unwrap();
        let err = write_atomic_with(&path, |f| {
            f.write_all(b"partial")?;
            Err(std::io::Error::other("No space left on device"))
        })
        .unwrap_err();
        assert!(err.to_string().contains("a.bin"), "{err}");
        assert!(err.to_string().contains("No space left"), "{err}");
        assert_eq!(fs::read(&path).unwrap(), b"old");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn missing_directory_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nope").join("a.bin");
        let err = write_atomic(&path, b"x").unwrap_err();
        assert!(err.to_string().contains("does not exist"), "{err}");
    }
}
