//! The token cache on disk: private modes, atomic replacement, corrupt files set aside.
//!
//! MSAL's own persistence truncates and rewrites the file in place, so a crash or a
//! concurrent reader can meet a torn file; we write a temporary file in the same
//! directory and rename it over the cache instead (identity reference, section 5).

use std::fs::{DirBuilder, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::AuthError;
use super::cache::TokenCache;
use super::cache_lock::{CacheLock, LOCK_TIMEOUT, LockError};

/// What is on disk.
#[derive(Debug)]
pub enum Contents {
    Missing,
    Parsed(TokenCache),
    /// Not an MSAL cache; carries why.
    Corrupt(String),
}

/// The cache file and its lock file.
#[derive(Clone, Debug)]
pub struct CacheFile {
    path: PathBuf,
}

impl CacheFile {
    pub fn new(path: &Path) -> Self {
        Self {
            path: path.to_owned(),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn error(&self, message: impl Into<String>) -> AuthError {
        AuthError::Cache {
            path: self.path.clone(),
            message: message.into(),
        }
    }

    /// Refuses a cache other users can read or write: refresh tokens in it are as good as
    /// the operator's sign-in for up to 90 days.
    pub fn check_permissions(&self) -> Result<(), AuthError> {
        match std::fs::metadata(&self.path) {
            Ok(meta) => {
                if !meta.is_file() {
                    return Err(
                        self.error("is not a regular file; point `token_cache` at a file path")
                    );
                }
                let mode = meta.permissions().mode() & 0o777;
                if mode & 0o077 != 0 {
                    return Err(self.error(format!(
                        "is accessible to other users (mode {mode:04o}); it holds sign-in tokens and must be private: \
                         run `chmod 600 {}`, and sign in again with `partner-center-sync login --force` if others may have read it",
                        self.path.display()
                    )));
                }
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(self.error(format!(
                "cannot be inspected: {e}; check the directory's permissions"
            ))),
        }
    }

    /// Reads without the lock (as MSAL readers do); callers lock before writing.
    pub fn read(&self) -> Result<Contents, AuthError> {
        self.check_permissions()?;
        match std::fs::read(&self.path) {
            Ok(bytes) => match std::str::from_utf8(&bytes) {
                Ok(text) => Ok(match TokenCache::parse(text) {
                    Ok(cache) => Contents::Parsed(cache),
                    Err(why) => Contents::Corrupt(why),
                }),
                Err(_) => Ok(Contents::Corrupt(
                    "not UTF-8 text (an encrypted MSAL cache must be exported first)".into(),
                )),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Contents::Missing),
            Err(e) => Err(self.error(format!(
                "cannot be read: {e}; check that the service user owns it"
            ))),
        }
    }

    /// Takes the cross-process lock, waiting for other writers (blocking). Creates the
    /// directory (0700) first: the lock file lives next to the cache.
    pub fn lock(&self) -> Result<CacheLock, AuthError> {
        self.ensure_dir()?;
        CacheLock::acquire(&self.path, LOCK_TIMEOUT).map_err(|e| match e {
            LockError::Busy { holder } => AuthError::Transient {
                message: format!(
                    "the token cache {} is locked by another process ({}) for more than {} s; \
                     if no such process is running, delete {}",
                    self.path.display(),
                    if holder.is_empty() {
                        "unknown"
                    } else {
                        &holder
                    },
                    LOCK_TIMEOUT.as_secs(),
                    super::cache_lock::lock_path(&self.path).display()
                ),
            },
            LockError::Io(e) => self.error(format!(
                "its lock file {} cannot be created: {e}; check the directory's permissions",
                super::cache_lock::lock_path(&self.path).display()
            )),
        })
    }

    /// Reads for use: a corrupt file is re-read under the lock (a writer without atomic
    /// rename may have been mid-write) and, if still corrupt, renamed aside and reported as
    /// sign-in required rather than failed on forever.
    pub fn load(&self) -> Result<Option<TokenCache>, AuthError> {
        match self.read()? {
            Contents::Missing => Ok(None),
            Contents::Parsed(cache) => Ok(Some(cache)),
            Contents::Corrupt(_) => {
                let _lock = self.lock()?;
                self.load_locked()
            }
        }
    }

    /// [`load`](Self::load) for callers already holding the lock.
    pub fn load_locked(&self) -> Result<Option<TokenCache>, AuthError> {
        match self.read()? {
            Contents::Missing => Ok(None),
            Contents::Parsed(cache) => Ok(Some(cache)),
            Contents::Corrupt(why) => {
                let aside = self.move_aside()?;
                tracing::error!(
                    event = "token_cache_corrupt",
                    path = %self.path.display(),
                    moved_to = %aside.display(),
                    reason = %why,
                    "The token cache could not be parsed and was moved aside; sign in again with `partner-center-sync login`."
                );
                Err(AuthError::SignInRequired {
                    reason: format!(
                        "the token cache {} could not be parsed ({why}) and was moved to {}",
                        self.path.display(),
                        aside.display()
                    ),
                })
            }
        }
    }

    fn move_aside(&self) -> Result<PathBuf, AuthError> {
        let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
        let mut name = self.path.as_os_str().to_owned();
        name.push(format!(".corrupt-{stamp}"));
        let aside = PathBuf::from(name);
        std::fs::rename(&self.path, &aside).map_err(|e| {
            self.error(format!(
                "is corrupt and could not be moved aside: {e}; delete it and sign in again"
            ))
        })?;
        Ok(aside)
    }

    /// Atomic replacement: temporary file (`O_CREAT|O_EXCL`, 0600) in the same directory,
    /// write, fsync, rename over the cache, fsync the directory. Call with the lock held.
    pub fn write(&self, cache: &TokenCache) -> Result<(), AuthError> {
        let dir = self.ensure_dir()?;
        let file_name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let (tmp_path, mut tmp) = self.create_temp(&dir, &file_name)?;
        let result = (|| {
            tmp.write_all(cache.to_json().as_bytes())?;
            tmp.sync_all()?;
            std::fs::rename(&tmp_path, &self.path)?;
            File::open(&dir)?.sync_all()
        })();
        if let Err(e) = result {
            let _ = std::fs::remove_file(&tmp_path);
            return Err(self.error(format!(
                "could not be written: {e}; check free space and that the directory is writable by the service user \
                 (mount the directory, not the file, into containers)"
            )));
        }
        Ok(())
    }

    /// The cache directory, created 0700 if missing. An existing wider directory is left
    /// alone (it may be shared on purpose) but reported.
    fn ensure_dir(&self) -> Result<PathBuf, AuthError> {
        let dir = match self.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
            _ => PathBuf::from("."),
        };
        if !dir.exists() {
            DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&dir)
                .map_err(|e| {
                    self.error(format!(
                        "its directory {} cannot be created: {e}",
                        dir.display()
                    ))
                })?;
        } else if let Ok(meta) = std::fs::metadata(&dir) {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o022 != 0 {
                tracing::warn!(
                    event = "token_cache_dir_writable",
                    dir = %dir.display(),
                    mode = %format!("{mode:04o}"),
                    "The token cache directory is writable by other users, who could replace the cache; run `chmod 700` on it."
                );
            }
        }
        Ok(dir)
    }

    fn create_temp(&self, dir: &Path, file_name: &str) -> Result<(PathBuf, File), AuthError> {
        for _ in 0..8 {
            let tmp = dir.join(format!(
                ".{file_name}.tmp-{}-{:08x}",
                std::process::id(),
                rand::random::<u32>()
            ));
            match OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)
            {
                Ok(f) => return Ok((tmp, f)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => {
                    return Err(self.error(format!(
                        "a temporary file cannot be created in {}: {e}; check the directory's permissions",
                        dir.display()
                    )));
                }
            }
        }
        Err(self.error(format!(
            "no unused temporary file name in {}",
            dir.display()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_creates_a_private_directory_and_file() {
        let root = tempfile::tempdir().expect("tempdir");
        let file = CacheFile::new(&root.path().join("state/sub/cache.json"));
        let cache = TokenCache::parse(r#"{"Unknown": {"x": {"y": 1}}}"#).expect("parses");
        let _lock = file.lock().expect("lock");
        file.write(&cache).expect("written");
        let mode = |p: &Path| std::fs::metadata(p).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode(file.path()), 0o600);
        assert_eq!(mode(&root.path().join("state/sub")), 0o700);
        assert_eq!(mode(&root.path().join("state")), 0o700);
        let leftovers: Vec<_> = std::fs::read_dir(root.path().join("state/sub"))
            .expect("dir")
            .map(|e| e.expect("entry").file_name())
            .filter(|n| n.to_string_lossy().contains(".tmp-"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
        assert!(matches!(file.read().expect("read"), Contents::Parsed(c) if c == cache));
    }

    #[test]
    fn a_cache_readable_by_others_is_refused_with_the_fix() {
        let root = tempfile::tempdir().expect("tempdir");
        let path = root.path().join("cache.json");
        std::fs::write(&path, "{}").expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let err = CacheFile::new(&path).read().expect_err("refused");
        assert!(err.to_string().contains("chmod 600"), "{err}");
        assert!(err.to_string().contains("0644"), "{err}");
    }

    #[test]
    fn a_corrupt_cache_is_moved_aside_and_means_sign_in() {
        let root = tempfile::tempdir().expect("tempdir");
        let path = root.path().join("cache.json");
        std::fs::write(&path, "{\"AccessToken\": ").expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let err = CacheFile::new(&path).load().expect_err("corrupt");
        assert!(err.is_sign_in_required(), "{err}");
        assert!(!path.exists());
        let aside: Vec<_> = std::fs::read_dir(root.path())
            .expect("dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            aside.iter().any(|n| n.starts_with("cache.json.corrupt-")),
            "{aside:?}"
        );
        assert!(CacheFile::new(&path).load().expect("now missing").is_none());
    }
}
