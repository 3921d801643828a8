//! `partner-center-sync generate completions <shell> | man <dir>`: the shell completions and
//! man pages the Debian package installs, made from the same clap definition the binary
//! parses so they cannot drift from it (`scripts/package-deb` runs it on the binary it has
//! just built). It sits outside [`super::Cli`] because clap's completion generators list
//! hidden subcommands too, and because it needs no configuration.

use std::ffi::OsString;
use std::io;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};
use clap_complete::Shell;

use super::Cli;

const NAME: &str = "generate";

#[derive(Debug, Parser)]
#[command(bin_name = "partner-center-sync generate")]
struct Args {
    #[command(subcommand)]
    what: What,
}

#[derive(Debug, Subcommand)]
enum What {
    /// Print the completion script for SHELL on stdout.
    Completions { shell: Shell },
    /// Write partner-center-sync.1 and one page per subcommand into DIR.
    Man { dir: PathBuf },
}

#[derive(Debug, thiserror::Error)]
#[error("cannot write the man pages into {dir}: {source}")]
struct ManPagesError {
    dir: PathBuf,
    #[source]
    source: io::Error,
}

/// Whether the command line asks for this rather than for one of [`super::Command`].
pub fn requested(args: &[OsString]) -> bool {
    args.get(1).is_some_and(|a| a == NAME)
}

/// Runs `generate` with the process's arguments after the binary's name.
pub fn main(args: Vec<OsString>) -> ExitCode {
    let args = Args::parse_from(args.into_iter().skip(1));
    match run(args.what) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn run(what: What) -> Result<(), ManPagesError> {
    let mut cmd = Cli::command();
    match what {
        What::Completions { shell } => {
            let name = cmd.get_name().to_owned();
            clap_complete::generate(shell, &mut cmd, name, &mut io::stdout());
            Ok(())
        }
        What::Man { dir } => std::fs::create_dir_all(&dir)
            .and_then(|()| clap_mangen::generate_to(cmd, &dir))
            .map_err(|source| ManPagesError { dir, source }),
    }
}
