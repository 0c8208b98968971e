//! The sweep-file parser on arbitrary text: a file it accepts expands (with its models replaced
//! by a shipped recipe, so that no other file is read) into exactly the grid it describes, each
//! job with its own directory, and into a script with one array task per job; anything else is
//! a one-line error naming the file.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ticket_train::sweep::{Sweep, SweepSpec};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let spec = match SweepSpec::from_toml_str(text, ticket_fuzz::path()) {
        Ok(spec) => spec,
        Err(err) => return ticket_fuzz::check_error(err),
    };
    let spec = SweepSpec { models: vec!["digits-mlp".into()], ..spec };
    let sweep = match Sweep::new(ticket_fuzz::path(), spec.clone()) {
        Ok(sweep) => sweep,
        Err(err) => return ticket_fuzz::check_error(err),
    };
    let grid = spec.datasets.len() * spec.variants.len().max(1) * spec.seeds.len();
    assert_eq!(sweep.jobs.len(), grid * spec.replicates);
    let dirs: std::collections::BTreeSet<_> = sweep.jobs.iter().map(|j| &j.dir).collect();
    assert_eq!(dirs.len(), sweep.jobs.len(), "two jobs share a directory");
    let script = sweep.slurm_script(std::path::Path::new("/usr/bin/ticket"));
    let tasks = script.lines().filter(|l| l.contains(") exec \"$TICKET\" find ")).count();
    assert_eq!(tasks, sweep.jobs.len());
});
