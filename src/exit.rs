//! The process's exit codes: the one table (README "Exit codes"), following sysexits.h
//! where one fits. It sits below every module so each error can name its code; the CLI
//! turns it into the process's exit status.

/// What the process tells its caller (systemd, scripts) when it ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Exit {
    /// A runtime failure: the message says what failed.
    Failure = 1,
    /// Bad command-line usage; clap exits with it by itself.
    Usage = 2,
    /// EX_TEMPFAIL: e.g. another sync holds the lock; try again later.
    TempFail = 75,
    /// EX_NOPERM: sign-in required; run `partner-center-sync login`.
    SignInRequired = 77,
    /// EX_CONFIG: the message names the key and the fix; systemd does not restart on it.
    Config = 78,
    /// The shell's convention for a process ended by SIGINT (128 + 2).
    Interrupted = 130,
}

impl Exit {
    pub(crate) const fn code(self) -> u8 {
        self as u8
    }
}

impl From<Exit> for std::process::ExitCode {
    fn from(exit: Exit) -> Self {
        std::process::ExitCode::from(exit.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_match_the_readme_table() {
        let readme = include_str!("../README.md");
        for exit in [
            Exit::Failure,
            Exit::Usage,
            Exit::TempFail,
            Exit::SignInRequired,
            Exit::Config,
            Exit::Interrupted,
        ] {
            let row = format!("| {} |", exit.code());
            assert!(readme.contains(&row), "README has no row for {exit:?}");
        }
    }
}
