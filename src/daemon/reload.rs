//! SIGHUP: re-read the file, credentials and environment; swap the new settings in when
//! they are valid, keep the running ones when not. What changes is decided first
//! ([`Changes`], pure), then applied, and the loop gets a [`ReloadOutcome`].

use std::sync::Arc;

use super::{Shared, build_tokens, start_scheduler};
use crate::config::{self, Config, ConfigError, LoadOptions, Reload};
use crate::scheduler::{Schedule, Scheduler, SchedulerError};
use crate::telemetry::LogHandle;

/// How a reload ended.
#[derive(Debug)]
pub(super) enum ReloadOutcome {
    /// Built in code (tests, the demo): there is no file to re-read.
    NoSource,
    /// The files did not load; the running configuration stays.
    Rejected(ConfigError),
    /// The new configuration runs; these keys changed (restart-only keys excluded).
    Applied(Vec<&'static str>),
    /// The new schedule could not start; the previous configuration runs again.
    RolledBack(SchedulerError),
    /// Not even the previous schedule could start again: the daemon must stop.
    Fatal(SchedulerError),
}

impl ReloadOutcome {
    pub(super) fn log(&self) {
        match self {
            ReloadOutcome::NoSource => tracing::warn!(
                event = "config_reload_failed",
                "This daemon was built without a config source; reload ignored."
            ),
            ReloadOutcome::Rejected(e) => {
                let problems: Vec<String> = e.problems.iter().map(ToString::to_string).collect();
                let problems = problems.join("; ");
                tracing::error!(event = "config_reload_failed", problems = %problems,
                    "Configuration reload rejected, the running configuration stays in effect: {problems}");
            }
            ReloadOutcome::Applied(changed) => {
                let changed = changed.join(", ");
                if changed.is_empty() {
                    tracing::info!(
                        event = "config_reloaded",
                        changed = "",
                        "Configuration reloaded: nothing changed."
                    );
                } else {
                    tracing::info!(event = "config_reloaded", changed = %changed, "Configuration reloaded: {changed} changed.");
                }
            }
            ReloadOutcome::RolledBack(e) => {
                tracing::error!(event = "config_reload_failed", error = %e, "The new schedule could not start; going back to the previous configuration.");
            }
            ReloadOutcome::Fatal(e) => {
                tracing::error!(event = "scheduler_failed", error = %e, "No schedule could start; exiting so systemd restarts the daemon.");
            }
        }
    }
}

/// What a loaded configuration changes, decided before anything is swapped.
#[derive(Debug, PartialEq)]
struct Changes {
    /// Take effect now.
    applied: Vec<&'static str>,
    /// Keep their running values until a restart.
    restart_required: Vec<&'static str>,
    /// Sign-in is rebuilt: one of its settings changed, or it was never built.
    rebuild_sign_in: bool,
    /// The interval or the cron expression changed.
    reschedule: bool,
}

impl Changes {
    fn between(old: &Config, new: &Config, sign_in_built: bool) -> Self {
        let changes = config::changes(old, new);
        let keys = |restart: bool| {
            changes
                .iter()
                .filter(|c| (c.reload == Reload::Restart) == restart)
                .map(|c| c.key)
                .collect()
        };
        Self {
            applied: keys(false),
            restart_required: keys(true),
            rebuild_sign_in: !sign_in_built || changes.iter().any(|c| c.reload == Reload::Auth),
            reschedule: Schedule::from_config(old) != Schedule::from_config(new),
        }
    }
}

/// `scheduler` is `None` afterwards only on [`ReloadOutcome::Fatal`].
pub(super) async fn reload(
    shared: &Arc<Shared>,
    options: Option<&LoadOptions>,
    log: Option<&LogHandle>,
    scheduler: &mut Option<Scheduler>,
) -> ReloadOutcome {
    let Some(options) = options else {
        return ReloadOutcome::NoSource;
    };
    // The environment cannot change under a running process; re-reading it is harmless.
    let fresh = LoadOptions {
        env: std::env::vars().collect(),
        ..options.clone()
    };
    match config::load(&fresh) {
        Err(e) => ReloadOutcome::Rejected(e),
        Ok(loaded) => {
            loaded.warn_shadowed_keys();
            apply(shared, loaded.config, log, scheduler).await
        }
    }
}

async fn apply(
    shared: &Arc<Shared>,
    mut new: Config,
    log: Option<&LogHandle>,
    scheduler: &mut Option<Scheduler>,
) -> ReloadOutcome {
    let old = shared.config.borrow().clone();
    let changes = Changes::between(&old, &new, shared.tokens.borrow().is_some());
    if !changes.restart_required.is_empty() {
        let keys = changes.restart_required.join(", ");
        tracing::warn!(event = "config_restart_required", keys = %keys,
            "{keys} change only after a restart; keeping the running values.");
        new.keep_restart_values(&old);
    }
    if let Some(log) = log
        && let Err(e) = log.set_level(&new.log_level)
    {
        tracing::warn!(event = "log_level_unchanged", error = %e, "Could not apply the new log level.");
    }
    if changes.rebuild_sign_in {
        match build_tokens(&new) {
            Ok(tokens) => {
                shared.tokens.send_replace(Some(tokens));
            }
            Err(_) if !new.enabled => {}
            Err(e) => {
                tracing::warn!(event = "auth_reload_failed", error = %e, "Could not rebuild sign-in with the new settings; keeping the old ones.")
            }
        }
    }
    shared.config.send_replace(Arc::new(new));
    if !changes.reschedule {
        return ReloadOutcome::Applied(changes.applied);
    }
    if let Some(running) = scheduler.take() {
        running.stop().await;
    }
    let error = match start_scheduler(shared).await {
        Ok(started) => {
            *scheduler = Some(started);
            return ReloadOutcome::Applied(changes.applied);
        }
        Err(e) => e,
    };
    shared.config.send_replace(old);
    match start_scheduler(shared).await {
        Ok(started) => {
            *scheduler = Some(started);
            ReloadOutcome::RolledBack(error)
        }
        Err(e) => ReloadOutcome::Fatal(e),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn running() -> Config {
        Config {
            enabled: true,
            sync_interval: Duration::from_secs(600),
            ..Config::default()
        }
    }

    #[test]
    fn nothing_changed_changes_nothing() {
        let c = running();
        assert_eq!(
            Changes::between(&c, &c, true),
            Changes {
                applied: vec![],
                restart_required: vec![],
                rebuild_sign_in: false,
                reschedule: false,
            }
        );
    }

    #[test]
    fn a_new_interval_reschedules_and_leaves_sign_in_alone() {
        let new = Config {
            sync_interval: Duration::from_secs(300),
            ..running()
        };
        let c = Changes::between(&running(), &new, true);
        assert_eq!(c.applied, ["sync_interval"]);
        assert!(c.reschedule && !c.rebuild_sign_in, "{c:?}");
    }

    #[test]
    fn a_cron_expression_replaces_the_interval() {
        let new = Config {
            sync_cron: Some("0 */5 * * * *".into()),
            ..running()
        };
        assert!(Changes::between(&running(), &new, true).reschedule);
    }

    #[test]
    fn listen_and_database_url_wait_for_a_restart() {
        let new = Config {
            listen: "127.0.0.1:9999".parse().expect("addr"),
            database_url: Some("postgres://elsewhere/db".to_owned().into()),
            log_level: "debug".into(),
            ..running()
        };
        let c = Changes::between(&running(), &new, true);
        let mut later = c.restart_required.clone();
        later.sort_unstable();
        assert_eq!(later, ["database_url", "listen"]);
        assert_eq!(c.applied, ["log_level"]);
        assert!(!c.reschedule && !c.rebuild_sign_in, "{c:?}");
    }

    #[test]
    fn sign_in_is_rebuilt_when_its_settings_change_or_it_was_never_built() {
        let new = Config {
            client_id: Some("another-app".into()),
            ..running()
        };
        assert!(Changes::between(&running(), &new, true).rebuild_sign_in);
        assert!(Changes::between(&running(), &running(), false).rebuild_sign_in);
        let new = Config {
            http_timeout: Duration::from_secs(5),
            ..running()
        };
        assert!(Changes::between(&running(), &new, true).rebuild_sign_in);
    }
}
