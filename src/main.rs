//! `ticket`: find lottery tickets, export them as CSR safetensors, run them sparse.
//!
//! This file only wires the crates together: parse the command line, run the command, print a
//! one-line cause and exit non-zero when something fails.

mod cli;
mod commands;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let outcome = match cli.command {
        cli::Command::Find(args) => commands::find::run(args),
        cli::Command::Train(args) => commands::train::run(args),
        cli::Command::Export(args) => commands::export::run(args),
        cli::Command::Infer(args) => commands::infer::run(args),
        cli::Command::Report(args) => commands::report::run(args),
        cli::Command::Serve(args) => commands::serve::run(args),
        cli::Command::Sweep(args) => commands::sweep::run(args),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
