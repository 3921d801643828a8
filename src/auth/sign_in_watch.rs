//! Notices a `login` made by another process while this one says sign-in is required.

use std::path::Path;
use std::sync::Mutex;
use std::time::SystemTime;

use super::{AuthState, TokenProvider};

/// Remembers the token cache's modification time at the last look.
#[derive(Debug, Default)]
pub(crate) struct SignInWatch {
    seen: Mutex<Option<SystemTime>>,
}

impl SignInWatch {
    /// The provider's state. While it says sign-in is required, a cache written since the
    /// last look (by `login`, from another process) is tried at once; otherwise a daemon
    /// would refuse "Sync now" and keep the alert on until its next scheduled run tried it.
    pub(crate) async fn current_state(&self, tokens: &TokenProvider, cache: &Path) -> AuthState {
        if matches!(tokens.state(), AuthState::SignInRequired(_)) && self.changed(cache) {
            // Either way the provider's state now says what the cache holds.
            let _ = tokens.access_token().await;
        }
        tokens.state()
    }

    /// A stat, so polling health while signed out costs no cache read or token request.
    /// The first look counts as a change.
    fn changed(&self, cache: &Path) -> bool {
        let modified = std::fs::metadata(cache).and_then(|m| m.modified()).ok();
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if *seen == modified {
            return false;
        }
        *seen = modified;
        true
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn touch(path: &Path, at: SystemTime) {
        std::fs::write(path, "{}").expect("write cache");
        std::fs::File::options()
            .write(true)
            .open(path)
            .and_then(|f| f.set_modified(at))
            .expect("set mtime");
    }

    #[test]
    fn a_change_is_reported_once_per_new_modification_time() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cache = dir.path().join("cache.json");
        let watch = SignInWatch::default();
        assert!(
            !watch.changed(&cache),
            "no file, as at the start: nothing new"
        );

        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        touch(&cache, t0);
        assert!(watch.changed(&cache), "a file appeared");
        assert!(!watch.changed(&cache), "the same file again");

        touch(&cache, t0 + Duration::from_secs(5));
        assert!(watch.changed(&cache), "rewritten by another process");
        assert!(!watch.changed(&cache));

        std::fs::remove_file(&cache).expect("remove");
        assert!(watch.changed(&cache), "removed by `logout`");
    }
}
