//! The `molt` binary: parses the command line and hands over to the library.

use clap::Parser;
use molt::cli::{Cli, Command};
use std::io::Write;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Crd => molt::crd::yaml()
            .map_err(|e| format!("cannot render the CRD: {e}"))
            .and_then(|y| write_stdout(&y)),
        Command::Version => write_stdout(&format!("molt {}\n", env!("CARGO_PKG_VERSION"))),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("molt: {e}");
            ExitCode::FAILURE
        }
    }
}

fn write_stdout(s: &str) -> Result<(), String> {
    std::io::stdout()
        .write_all(s.as_bytes())
        .map_err(|e| format!("cannot write to stdout: {e}"))
}
