//! Why an auth operation failed, in the words an operator acts on, and the exit code that
//! tells scripts and systemd whether retrying can help.

use std::path::PathBuf;

use super::SignInRequired;
use crate::exit::Exit;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error(transparent)]
    SignInRequired(#[from] SignInRequired),
    /// Network, timeouts, 5xx, 429, `temporarily_unavailable`: retried, then reported.
    #[error("The identity service is temporarily unavailable: {message}")]
    Transient { message: String },
    /// The app registration or settings are wrong; fatal until `key` is fixed.
    #[error("Identity configuration problem: {message}; check `{key}`")]
    Configuration { key: &'static str, message: String },
    /// The cache file cannot be used as it is; `problem` says whether the operator must
    /// change it or an I/O error may pass.
    #[error("Token cache {path}: {message}")]
    Cache {
        path: PathBuf,
        message: String,
        problem: CacheProblem,
    },
    #[error(
        "Sign-in was declined in the browser; nothing was saved. Run `partner-center-sync login` again and approve the request."
    )]
    LoginDeclined,
    #[error(
        "The sign-in code expired after {minutes} minutes without a completed sign-in; nothing was saved. \
         Run `partner-center-sync login` again and finish signing in within that time."
    )]
    LoginExpired { minutes: u64 },
    #[error("Sign-in cancelled with Ctrl-C; nothing was saved.")]
    LoginCancelled,
    /// An answer from the identity service that fits no documented case.
    #[error("Unexpected answer from the identity service: {message}")]
    Protocol { message: String },
    #[error("Internal error in token handling: {message}")]
    Internal { message: String },
}

/// Why a token cache file is unusable, which decides whether restarting can help.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheProblem {
    /// The file is refused as it is (readable by others, a symlink, not a regular file,
    /// too large): only the operator can fix it, so it is a configuration error (78) and
    /// systemd does not restart into the same refusal every 5 s.
    Refused,
    /// Reading or writing failed (permissions of the service user, a full disk): 1.
    Io,
}

impl AuthError {
    /// The process exit code for this failure (sysexits: 77 sign-in required, 75 try
    /// again later, 78 configuration, a refused token cache included).
    pub fn exit_code(&self) -> u8 {
        self.exit().code()
    }

    pub(crate) fn exit(&self) -> Exit {
        match self {
            AuthError::SignInRequired(e) => e.exit(),
            AuthError::Transient { .. } => Exit::TempFail,
            AuthError::Configuration { .. }
            | AuthError::Cache {
                problem: CacheProblem::Refused,
                ..
            } => Exit::Config,
            AuthError::LoginCancelled => Exit::Interrupted,
            _ => Exit::Failure,
        }
    }

    pub fn is_sign_in_required(&self) -> bool {
        matches!(self, AuthError::SignInRequired(_))
    }

    pub fn is_transient(&self) -> bool {
        matches!(self, AuthError::Transient { .. })
    }
}
