//! What can be wrong with a configuration, and how it is reported: each problem with
//! its key, where the value came from and the fix; all of them at once.

use std::fmt;
use std::path::PathBuf;

use super::KEYS;

/// Where an effective value came from; shown by `config show` and in every problem.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Source {
    Default,
    File(PathBuf),
    Credential(PathBuf),
    Env(String),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => f.write_str("default"),
            Source::File(p) => write!(f, "file {}", p.display()),
            Source::Credential(p) => write!(f, "credential {}", p.display()),
            Source::Env(v) => write!(f, "env {v}"),
        }
    }
}

/// One thing wrong with the configuration.
#[derive(Clone, Debug)]
pub(crate) struct Problem {
    pub key: String,
    pub source: Source,
    pub message: String,
    pub fix: String,
}

impl Problem {
    /// Every fix about a setting says where to change it: the TOML key and the variable.
    pub(super) fn new(key: &str, source: Source, message: String, fix: &str) -> Self {
        let fix = match KEYS.iter().find(|k| k.name == key) {
            Some(k) => format!(
                "{fix} (file key `{}`, environment variable {})",
                k.name, k.env
            ),
            None => fix.to_owned(),
        };
        Self {
            key: key.into(),
            source,
            message,
            fix,
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (from {}): {}; {}",
            self.key, self.source, self.message, self.fix
        )
    }
}

/// Every problem found, so an operator fixes them all in one pass.
#[derive(Debug, thiserror::Error)]
pub struct ConfigError {
    pub(crate) problems: Vec<Problem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Invalid configuration ({} problem", self.problems.len())?;
        if self.problems.len() != 1 {
            f.write_str("s")?;
        }
        f.write_str("):")?;
        for p in &self.problems {
            write!(f, "\n  - {p}")?;
        }
        Ok(())
    }
}
