//! The cross-process lock on the token cache, compatible with msal-extensions.
//!
//! Every MSAL persistence layer serialises writers with `<cache path>.lockfile`: created
//! exclusively, then (msal-extensions with portalocker) locked with an exclusive `flock` (std's `File::lock` on Linux),
//! holding `"<pid> <argv0>"`, deleted on release. The `flock` is the real lock: the kernel
//! drops it when its holder dies, so a lock file whose `flock` we can take is a leftover
//! of a crashed process and is taken over instead of waited on (identity reference, 4.5).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

/// How long to wait for another holder. Holders keep the lock only to re-read, merge and
/// write (never across a network call), so a long wait means a stuck process.
pub const LOCK_TIMEOUT: Duration = Duration::from_secs(30);
const RETRY_STEP: Duration = Duration::from_millis(100);
/// A creator takes its `flock` right after creating the file; a younger unlocked file
/// may be in that window rather than abandoned.
const CREATION_GRACE: Duration = Duration::from_secs(1);

/// The lock file next to a cache file, named as MSAL names it.
pub(crate) fn lock_path(cache: &Path) -> PathBuf {
    let mut name = cache.as_os_str().to_owned();
    name.push(".lockfile");
    PathBuf::from(name)
}

/// Why the lock could not be had.
#[derive(Debug)]
pub enum LockError {
    /// Someone else held it for the whole wait; carries the holder's `"<pid> <name>"`.
    Busy {
        holder: String,
    },
    Io(std::io::Error),
}

/// Held while alive; released (file deleted, then unlocked) on drop.
#[derive(Debug)]
pub struct CacheLock {
    path: PathBuf,
    file: File,
}

impl CacheLock {
    /// Blocks (sleeping between tries) until the lock is ours or `timeout` passes.
    pub fn acquire(cache: &Path, timeout: Duration) -> Result<Self, LockError> {
        let path = lock_path(cache);
        let deadline = Instant::now() + timeout;
        loop {
            match Self::try_acquire(&path).map_err(LockError::Io)? {
                Some(lock) => return Ok(lock),
                None if Instant::now() >= deadline => {
                    let holder = std::fs::read_to_string(&path)
                        .unwrap_or_default()
                        .trim()
                        .to_owned();
                    return Err(LockError::Busy { holder });
                }
                None => std::thread::sleep(RETRY_STEP),
            }
        }
    }

    fn try_acquire(path: &Path) -> std::io::Result<Option<Self>> {
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
        {
            Ok(file) => {
                if file.try_lock().is_err() {
                    // Someone judged our fresh file stale and took it; let them have it.
                    return Ok(None);
                }
                let lock = Self {
                    path: path.to_owned(),
                    file,
                };
                lock.write_owner()?;
                Ok(Some(lock))
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Self::try_take_over(path),
            Err(e) => Err(e),
        }
    }

    /// An existing lock file: held if its `flock` is held, else a leftover we adopt.
    fn try_take_over(path: &Path) -> std::io::Result<Option<Self>> {
        let file = match OpenOptions::new().read(true).write(true).open(path) {
            Ok(f) => f,
            // Released between our create and open: simply try again.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        if file.try_lock().is_err() {
            return Ok(None);
        }
        let ours = file.metadata()?;
        // The holder may have released (deleted the file, then unlocked) just before our
        // flock: then we locked an orphaned inode, not the lock file.
        match std::fs::metadata(path) {
            Ok(now) if now.ino() == ours.ino() && now.dev() == ours.dev() => {}
            Ok(_) => return Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        }
        let age = ours
            .modified()
            .ok()
            .and_then(|m| SystemTime::now().duration_since(m).ok());
        if age.is_none_or(|a| a < CREATION_GRACE) {
            return Ok(None);
        }
        let previous = std::fs::read_to_string(path).unwrap_or_default();
        tracing::warn!(
            event = "token_cache_stale_lock",
            lock_file = %path.display(),
            previous_holder = previous.trim(),
            "Took over a stale token cache lock file left by a process that is gone."
        );
        let lock = Self {
            path: path.to_owned(),
            file,
        };
        lock.write_owner()?;
        Ok(Some(lock))
    }

    fn write_owner(&self) -> std::io::Result<()> {
        let name = std::env::args_os()
            .next()
            .map(|a| a.to_string_lossy().into_owned())
            .unwrap_or_else(|| env!("CARGO_PKG_NAME").to_owned());
        let mut f = &self.file;
        f.set_len(0)?;
        f.write_all(format!("{} {}", std::process::id(), name).as_bytes())?;
        Ok(())
    }
}

impl Drop for CacheLock {
    /// Delete before unlocking, so nobody can lock the name between the two steps; a
    /// waiter that locked the orphaned inode notices by comparing inodes.
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_file(&self.path) {
            tracing::warn!(event = "token_cache_unlock_failed", lock_file = %self.path.display(), error = %e,
                "Could not delete the token cache lock file; the next writer will take it over as stale.");
        }
        let _ = self.file.unlock();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_holder_waits_and_content_names_the_owner() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cache = dir.path().join("cache.json");
        let first = CacheLock::acquire(&cache, Duration::ZERO).expect("free");
        let content = std::fs::read_to_string(lock_path(&cache)).expect("lock file");
        assert!(
            content.starts_with(&format!("{} ", std::process::id())),
            "{content}"
        );
        match CacheLock::acquire(&cache, Duration::from_millis(250)) {
            Err(LockError::Busy { holder }) => assert_eq!(holder, content),
            other => panic!("expected Busy, got {other:?}"),
        }
        drop(first);
        assert!(!lock_path(&cache).exists(), "deleted on release");
        CacheLock::acquire(&cache, Duration::ZERO).expect("free again");
    }

    #[test]
    fn an_unlocked_leftover_is_stale_once_past_the_creation_window() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cache = dir.path().join("cache.json");
        let path = lock_path(&cache);
        std::fs::write(&path, "999999 crashed-process").expect("leftover");
        assert!(
            matches!(
                CacheLock::acquire(&cache, Duration::ZERO),
                Err(LockError::Busy { .. })
            ),
            "too young"
        );
        let old = SystemTime::now() - Duration::from_secs(10);
        File::options()
            .write(true)
            .open(&path)
            .expect("open")
            .set_modified(old)
            .expect("age it");
        let lock = CacheLock::acquire(&cache, Duration::ZERO).expect("stale lock taken over");
        let content = std::fs::read_to_string(&path).expect("lock file");
        assert!(
            content.starts_with(&std::process::id().to_string()),
            "{content}"
        );
        drop(lock);
        assert!(!path.exists());
    }

    #[test]
    fn a_flocked_file_is_not_stale_however_old() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cache = dir.path().join("cache.json");
        let path = lock_path(&cache);
        std::fs::write(&path, "1 other-msal-app").expect("held by another app");
        let holder = File::options()
            .read(true)
            .write(true)
            .open(&path)
            .expect("open");
        holder.lock().expect("flock");
        holder
            .set_modified(SystemTime::now() - Duration::from_secs(3600))
            .expect("age it");
        assert!(matches!(
            CacheLock::acquire(&cache, Duration::from_millis(200)),
            Err(LockError::Busy { .. })
        ));
    }
}
