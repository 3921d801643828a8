//! "Sign-in required": the one type for it. Auth raises it; the Partner Center client, the
//! sync engine and the daemon's trigger wrap it with `From`, and health, `status` and the
//! logs display it, so the operator reads one sentence and scripts see one exit code (77)
//! whichever layer noticed.

use crate::exit::Exit;

/// No usable login: none saved, the saved one unusable, or refused by the identity service
/// or Partner Center. Only the operator can fix it, by signing in again.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("Sign-in required: {ACTION} ({reason}).", ACTION = Self::ACTION)]
pub struct SignInRequired {
    reason: String,
}

impl SignInRequired {
    /// What the operator must do; also the `status` table's line.
    pub(crate) const ACTION: &'static str = "run `partner-center-sync login`";

    /// `reason` says why, naming the cache file or the refusal; it is shown in brackets
    /// and must not end with a full stop.
    pub(crate) fn new(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
        }
    }

    pub(crate) fn reason(&self) -> &str {
        &self.reason
    }

    pub(crate) const fn exit(&self) -> Exit {
        Exit::SignInRequired
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::AuthError;
    use crate::daemon::handle::TriggerError;
    use crate::partner_center::PcError;
    use crate::sync::SyncError;

    fn required() -> SignInRequired {
        SignInRequired::new("no saved login in /var/lib/x/cache.json")
    }

    #[test]
    fn the_message_tells_the_operator_to_run_login_and_why() {
        assert_eq!(
            required().to_string(),
            "Sign-in required: run `partner-center-sync login` (no saved login in /var/lib/x/cache.json)."
        );
    }

    /// Every layer that wraps it shows the same sentence and ends the process with 77.
    #[test]
    fn every_path_displays_the_one_message_and_maps_to_exit_77() {
        let message = required().to_string();
        let auth = AuthError::from(required());
        let paths: Vec<(&str, String, Exit)> = vec![
            ("auth", auth.to_string(), auth.exit()),
            (
                "partner center",
                PcError::from(required()).to_string(),
                SyncError::from(PcError::from(required())).exit(),
            ),
            (
                "auth via partner center",
                PcError::Auth(AuthError::from(required())).to_string(),
                SyncError::from(PcError::Auth(AuthError::from(required()))).exit(),
            ),
            (
                "sync",
                SyncError::from(required()).to_string(),
                SyncError::from(required()).exit(),
            ),
            (
                "sync via auth",
                SyncError::from(AuthError::from(required())).to_string(),
                SyncError::from(AuthError::from(required())).exit(),
            ),
            (
                "trigger",
                TriggerError::from(required()).to_string(),
                required().exit(),
            ),
        ];
        for (path, shown, exit) in paths {
            assert_eq!(shown, message, "{path}");
            assert_eq!(exit, Exit::SignInRequired, "{path}");
            assert_eq!(exit.code(), 77, "{path}");
        }
        assert!(matches!(
            SyncError::from(PcError::Auth(AuthError::from(required()))),
            SyncError::SignInRequired(_)
        ));
    }
}
