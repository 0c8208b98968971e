//! Running the `ticket` binary from end-to-end tests.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};

/// Runs `ticket` with `args` in `cwd`.
pub fn ticket_in(cwd: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ticket")).args(args).current_dir(cwd).output().unwrap()
}

pub fn ticket(args: &[&str]) -> Output {
    ticket_in(Path::new(env!("CARGO_MANIFEST_DIR")), args)
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Asserts a clean failure: non-zero exit, no panic, a one-line cause that mentions `needle`.
pub fn assert_clean_failure(out: &Output, needle: &str) {
    let err = stderr(out);
    assert!(!out.status.success(), "expected failure, got success; stderr: {err}");
    assert!(!err.contains("panicked"), "panic: {err}");
    let cause = err.lines().find(|l| l.starts_with("error: ")).unwrap_or_default();
    assert!(cause.contains(needle), "cause `{cause}` does not mention `{needle}`; stderr: {err}");
}
