//! The token cache on disk: private modes, a size limit, no symlinks, atomic replacement,
//! corrupt files set aside.
//!
//! MSAL's own persistence truncates and rewrites the file in place, so a crash or a
//! concurrent reader can meet a torn file; we write a temporary file in the same
//! directory and rename it over the cache instead (identity reference, section 5).

use std::fs::{DirBuilder, File, Metadata, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::cache::TokenCache;
use super::cache_lock::{CacheLock, LOCK_TIMEOUT, LockError, lock_path};
use super::{AuthError, CacheProblem, SignInRequired};

/// The largest cache file read. An MSAL cache holds a few KB per login; rewriting a
/// 100 MB one took over 400 MB, past the unit's `MemoryMax`, so the daemon was killed and
/// restarted in a loop instead of saying what is wrong.
const MAX_CACHE_BYTES: u64 = 10 * 1024 * 1024;

/// What is on disk.
#[derive(Debug)]
pub(crate) enum Contents {
    Missing,
    Parsed(TokenCache),
    /// Not an MSAL cache; carries why.
    Corrupt(String),
}

/// The outcome of waiting for the lock.
#[derive(Debug)]
pub(crate) enum Locking {
    Held(CacheLock),
    /// Another live process still holds it; carries its `"<pid> <name>"`.
    Busy {
        holder: String,
    },
}

/// The cache file and its lock file.
#[derive(Clone, Debug)]
pub(crate) struct CacheFile {
    path: PathBuf,
}

impl CacheFile {
    pub(crate) fn new(path: &Path) -> Self {
        Self {
            path: path.to_owned(),
        }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    fn error(&self, message: impl Into<String>) -> AuthError {
        AuthError::Cache {
            path: self.path.clone(),
            message: message.into(),
            problem: CacheProblem::Io,
        }
    }

    fn refused(&self, message: impl Into<String>) -> AuthError {
        AuthError::Cache {
            path: self.path.clone(),
            message: message.into(),
            problem: CacheProblem::Refused,
        }
    }

    /// Refuses a cache that cannot be used safely as it is; a missing one is fine. See
    /// `check_metadata` for what is refused and why.
    pub(crate) fn check(&self) -> Result<(), AuthError> {
        match std::fs::symlink_metadata(&self.path) {
            Ok(meta) if meta.file_type().is_symlink() => Err(self.symlink_refused()),
            Ok(meta) => self.check_metadata(&meta),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(self.error(format!(
                "cannot be inspected: {e}; check the directory's permissions"
            ))),
        }
    }

    /// A symlink is refused rather than followed: saving renames a new file over the
    /// cache's path, which would replace the link and leave its target with old tokens,
    /// and writing through the link would put refresh tokens wherever it points.
    fn symlink_refused(&self) -> AuthError {
        let target = std::fs::read_link(&self.path).map_or_else(
            |_| "a target that cannot be read".to_owned(),
            |t| t.display().to_string(),
        );
        self.refused(format!(
            "is a symbolic link to {target}, which is not followed: saving replaces the file at this path, \
             so the link would be lost and its target keep old tokens. Set `token_cache` to the real file ({target}) \
             or replace the link with the file itself"
        ))
    }

    /// Not a regular file, readable or writable by other users (its refresh tokens are as
    /// good as the operator's sign-in for up to 90 days), or larger than
    /// [`MAX_CACHE_BYTES`].
    fn check_metadata(&self, meta: &Metadata) -> Result<(), AuthError> {
        if !meta.is_file() {
            return Err(self.refused("is not a regular file; point `token_cache` at a file path"));
        }
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(self.refused(format!(
                "is accessible to other users (mode {mode:04o}); it holds sign-in tokens and must be private: \
                 run `chmod 600 {}`, and sign in again with `partner-center-sync login --force` if others may have read it",
                self.path.display()
            )));
        }
        if meta.len() > MAX_CACHE_BYTES {
            return Err(self.too_large(meta.len()));
        }
        Ok(())
    }

    fn too_large(&self, bytes: u64) -> AuthError {
        self.refused(format!(
            "is {bytes} bytes, over the {} MiB limit; a token cache holds a few KB per login, so this file is not one \
             that can be used: move it aside and sign in again with `partner-center-sync login`",
            MAX_CACHE_BYTES / (1024 * 1024)
        ))
    }

    /// Reads without the lock (as MSAL readers do); callers lock before writing. The file
    /// is opened without following a symlink and checked on the open descriptor, so it
    /// cannot be swapped between the check and the read; `O_NONBLOCK` keeps a FIFO from
    /// hanging the open.
    pub(crate) fn read(&self) -> Result<Contents, AuthError> {
        let file = match OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(&self.path)
        {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Contents::Missing),
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => return Err(self.symlink_refused()),
            Err(e) => return Err(self.unreadable(&e)),
        };
        let meta = file.metadata().map_err(|e| self.unreadable(&e))?;
        self.check_metadata(&meta)?;
        let mut bytes = Vec::new();
        file.take(MAX_CACHE_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| self.unreadable(&e))?;
        if bytes.len() as u64 > MAX_CACHE_BYTES {
            return Err(self.too_large(bytes.len() as u64));
        }
        Ok(match std::str::from_utf8(&bytes) {
            Ok(text) => match TokenCache::parse(text) {
                Ok(cache) => Contents::Parsed(cache),
                Err(why) => Contents::Corrupt(why),
            },
            Err(_) => Contents::Corrupt(
                "not UTF-8 text (an encrypted MSAL cache must be exported first)".into(),
            ),
        })
    }

    fn unreadable(&self, e: &std::io::Error) -> AuthError {
        self.error(format!(
            "cannot be read: {e}; check that the service user owns it"
        ))
    }

    /// Takes the cross-process lock, waiting up to [`LOCK_TIMEOUT`] for other writers
    /// (blocking); a holder that keeps it longer is reported as a transient failure.
    pub(crate) fn lock(&self) -> Result<CacheLock, AuthError> {
        match self.lock_within(LOCK_TIMEOUT)? {
            Locking::Held(lock) => Ok(lock),
            Locking::Busy { holder } => Err(AuthError::Transient {
                message: format!(
                    "the token cache {} is locked by another process ({holder}) for more than {} s; \
                     if no such process is running, delete {}",
                    self.path.display(),
                    LOCK_TIMEOUT.as_secs(),
                    lock_path(&self.path).display()
                ),
            }),
        }
    }

    /// Takes the lock, waiting up to `wait` (blocking). Creates the directory (0700)
    /// first: the lock file lives next to the cache.
    pub(crate) fn lock_within(&self, wait: Duration) -> Result<Locking, AuthError> {
        self.ensure_dir()?;
        match CacheLock::acquire(&self.path, wait) {
            Ok(lock) => Ok(Locking::Held(lock)),
            Err(LockError::Busy { holder }) => Ok(Locking::Busy {
                holder: if holder.is_empty() {
                    "unknown".to_owned()
                } else {
                    holder
                },
            }),
            Err(LockError::Io(e)) => Err(self.error(format!(
                "its lock file {} cannot be created: {e}; check the directory's permissions",
                lock_path(&self.path).display()
            ))),
        }
    }

    /// Reads for use: a corrupt file is re-read under the lock (a writer without atomic
    /// rename may have been mid-write) and, if still corrupt, renamed aside and reported as
    /// sign-in required rather than failed on forever.
    pub(crate) fn load(&self) -> Result<Option<TokenCache>, AuthError> {
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
    pub(crate) fn load_locked(&self) -> Result<Option<TokenCache>, AuthError> {
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
                Err(SignInRequired::new(format!(
                    "the token cache {} could not be parsed ({why}) and was moved to {}",
                    self.path.display(),
                    aside.display()
                ))
                .into())
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
    pub(crate) fn write(&self, cache: &TokenCache) -> Result<(), AuthError> {
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

    fn private_file(path: &Path, text: &str) {
        std::fs::write(path, text).expect("write");
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    }

    fn assert_refused(err: &AuthError, needle: &str) {
        assert!(
            matches!(
                err,
                AuthError::Cache {
                    problem: CacheProblem::Refused,
                    ..
                }
            ),
            "{err:?}"
        );
        assert_eq!(err.exit_code(), 78, "{err}");
        assert!(err.to_string().contains(needle), "{err}");
    }

    #[test]
    fn a_cache_readable_by_others_is_a_configuration_problem() {
        let root = tempfile::tempdir().expect("tempdir");
        let path = root.path().join("cache.json");
        private_file(&path, "{}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).expect("chmod");
        assert_refused(
            &CacheFile::new(&path).check().expect_err("refused"),
            "chmod 600",
        );
    }

    #[test]
    fn a_symlinked_cache_is_refused_naming_the_link_and_its_target() {
        let root = tempfile::tempdir().expect("tempdir");
        let target = root.path().join("real.json");
        private_file(&target, "{}");
        let link = root.path().join("cache.json");
        std::os::unix::fs::symlink(&target, &link).expect("symlink");
        let file = CacheFile::new(&link);
        for err in [
            file.check().expect_err("check"),
            file.read().expect_err("read"),
        ] {
            assert_refused(&err, &target.display().to_string());
            assert!(
                err.to_string().contains(&link.display().to_string()),
                "{err}"
            );
        }
        let dangling = root.path().join("dangling.json");
        std::os::unix::fs::symlink(root.path().join("nowhere"), &dangling).expect("symlink");
        assert_refused(
            &CacheFile::new(&dangling).read().expect_err("dangling"),
            "symbolic link",
        );
    }

    #[test]
    fn a_cache_over_the_size_limit_is_refused_before_it_is_read() {
        let root = tempfile::tempdir().expect("tempdir");
        let path = root.path().join("cache.json");
        private_file(&path, "");
        File::options()
            .write(true)
            .open(&path)
            .expect("open")
            .set_len(MAX_CACHE_BYTES + 1)
            .expect("sparse file");
        let file = CacheFile::new(&path);
        assert_refused(&file.check().expect_err("check"), "10485761 bytes");
        assert_refused(&file.read().expect_err("read"), "over the 10 MiB limit");
        File::options()
            .write(true)
            .open(&path)
            .expect("open")
            .set_len(MAX_CACHE_BYTES)
            .expect("at the limit");
        assert!(matches!(file.read().expect("read"), Contents::Corrupt(_)));
    }
}
