//! `partner-center-sync generate completions <shell> | man <dir>`: the shell completions and
//! man pages the Debian package installs, made from the same clap definition the binary
//! parses so they cannot drift from it (`scripts/package-deb` runs it on the binary it has
//! just built). It sits outside [`super::Cli`] because clap's completion generators list
//! hidden subcommands too, and because it needs no configuration.

use std::ffi::OsString;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};
use clap_complete::Shell;

use super::Cli;

const NAME: &str = "generate";

/// Appended to the main page: where the package puts things, and how to run a command in the
/// unit's sandbox. clap knows neither.
const PACKAGE_SECTIONS: &str = r".SH FILES
.TP
\fI/etc/partner-center-sync/config.toml\fR
The configuration; the file explains every key.
.TP
\fI/etc/partner-center-sync/credentials/\fR
Secrets (database_url, client_secret, api_token), readable by root only; the unit hands them
to the daemon with LoadCredential=.
.TP
\fI/etc/partner-center-sync/partner-center-sync.env\fR
The unit's environment file, for what only the environment can set (an outbound proxy).
.TP
\fI/var/lib/private/partner-center-sync/msal_token_cache.json\fR
The token cache that \fBlogin\fR writes; \fBapt purge\fR keeps it.
.TP
\fI/usr/libexec/partner-center-sync/as-service\fR \fICOMMAND\fR
Runs \fBpartner-center-sync\fR \fICOMMAND\fR as the unit runs the daemon: its user, state
directory, environment file, credentials and sandbox. Use it for \fBlogin\fR, \fBconfig check\fR
and \fBstatus\fR.
.SH SEE ALSO
\fBsystemctl\fR(1), \fBjournalctl\fR(1), \fBsystemd-run\fR(1),
\fI/usr/share/doc/partner-center-sync/README.md\fR
";

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
pub(crate) fn requested(args: &[OsString]) -> bool {
    args.get(1).is_some_and(|a| a == NAME)
}

/// Runs `generate` with the process's arguments after the binary's name.
pub(crate) fn main(args: Vec<OsString>) -> ExitCode {
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
    match what {
        What::Completions { shell } => {
            write_completions(shell, &mut io::stdout());
            Ok(())
        }
        What::Man { dir } => write_man_pages(&dir).map_err(|source| ManPagesError { dir, source }),
    }
}

fn write_completions(shell: Shell, out: &mut dyn Write) {
    let mut cmd = Cli::command();
    let name = cmd.get_name().to_owned();
    clap_complete::generate(shell, &mut cmd, name, out);
}

fn write_man_pages(dir: &Path) -> io::Result<()> {
    let cmd = Cli::command();
    std::fs::create_dir_all(dir)?;
    let main_page = dir.join(format!("{}.1", cmd.get_name()));
    clap_mangen::generate_to(cmd, dir)?;
    std::fs::OpenOptions::new()
        .append(true)
        .open(main_page)?
        .write_all(PACKAGE_SECTIONS.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completions_offer_the_commands_but_not_generate() {
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            let mut out = Vec::new();
            write_completions(shell, &mut out);
            let script = String::from_utf8(out).expect("completions are UTF-8");
            for command in ["login", "logout", "migrate", "status", "sync"] {
                assert!(script.contains(command), "{shell}: no {command}");
            }
            assert!(!script.contains("generate"), "{shell} offers generate");
        }
    }

    #[test]
    fn man_pages_cover_each_command_and_the_main_page_the_package_files() {
        let dir = tempfile::tempdir().expect("temp dir");
        write_man_pages(dir.path()).expect("man pages written");
        for page in [
            "partner-center-sync.1",
            "partner-center-sync-login.1",
            "partner-center-sync-config-check.1",
        ] {
            assert!(dir.path().join(page).is_file(), "no {page}");
        }
        assert!(!dir.path().join("partner-center-sync-generate.1").exists());
        let main =
            std::fs::read_to_string(dir.path().join("partner-center-sync.1")).expect("main page");
        assert!(main.contains(".SH FILES") && main.contains("as-service"));
    }
}
