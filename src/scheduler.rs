//! Scheduled ticks. A tick only calls `on_tick` (which pushes into the daemon's one-slot
//! trigger channel); it never runs a sync itself, so slow runs cannot overlap and ticks
//! that arrive during a run coalesce into at most one follow-up.
//!
//! tokio-cron-scheduler is the one engine, for cron expressions (6 fields, seconds first)
//! and intervals alike. It checks its jobs every 500 ms against the wall clock, so a tick
//! may come up to about a second late, which a schedule of minutes does not notice.
//! An interval is a chain of one-shot jobs, each adding the next when it fires, rather
//! than the crate's repeated job: that one's next tick is its previous one plus the
//! period, and after a stall longer than a period (a suspended VM, a blocked runtime) its
//! last tick lies past its next one, which it takes as "already ran", so it never fires
//! again.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_cron_scheduler::{Job, JobScheduler, JobSchedulerError};

use crate::config::Config;

/// When scheduled runs happen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Schedule {
    Interval(Duration),
    Cron(String),
}

impl Schedule {
    pub(crate) fn from_config(config: &Config) -> Self {
        match &config.sync_cron {
            Some(expr) => Schedule::Cron(expr.clone()),
            None => Schedule::Interval(config.sync_interval),
        }
    }
}

/// "every 10m", "cron `0 0 * * * *`": how logs and errors name a schedule.
impl std::fmt::Display for Schedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Schedule::Interval(every) => write!(f, "every {}", humantime::format_duration(*every)),
            Schedule::Cron(expr) => write!(f, "cron `{expr}`"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("Cannot start the scheduler for {schedule}: {message}")]
pub struct SchedulerError {
    schedule: Schedule,
    message: String,
}

type OnTick = Arc<dyn Fn() + Send + Sync>;

/// A running schedule; dropping it without `stop` leaves ticks firing, so the daemon
/// always stops the old one before starting a new one on reload.
pub(crate) struct Scheduler {
    #[cfg(test)]
    next_run: Arc<Mutex<Option<DateTime<Utc>>>>,
    engine: JobScheduler,
}

impl Scheduler {
    /// `next_run` is kept up to date as ticks fire, for whoever shows it.
    pub(crate) async fn start(
        schedule: Schedule,
        next_run: Arc<Mutex<Option<DateTime<Utc>>>>,
        on_tick: impl Fn() + Send + Sync + 'static,
    ) -> Result<Self, SchedulerError> {
        let on_tick: OnTick = Arc::new(on_tick);
        let engine = start(&schedule, on_tick, next_run.clone())
            .await
            .map_err(|message| SchedulerError {
                schedule: schedule.clone(),
                message,
            })?;
        Ok(Self {
            #[cfg(test)]
            next_run,
            engine,
        })
    }

    /// When the next tick is due, for health and the UI.
    #[cfg(test)]
    fn next_run_at(&self) -> Option<DateTime<Utc>> {
        *self.next_run.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) async fn stop(mut self) {
        if let Err(e) = self.engine.shutdown().await {
            tracing::warn!(event = "scheduler_stop_failed", error = %e, "The scheduler did not stop cleanly.");
        }
    }
}

fn set_next(next_run: &Mutex<Option<DateTime<Utc>>>, at: Option<DateTime<Utc>>) {
    *next_run.lock().unwrap_or_else(|p| p.into_inner()) = at;
}

async fn start(
    schedule: &Schedule,
    on_tick: OnTick,
    next_run: Arc<Mutex<Option<DateTime<Utc>>>>,
) -> Result<JobScheduler, String> {
    let job = match schedule {
        Schedule::Interval(every) => {
            interval_job(*every, on_tick, next_run).map_err(|e| e.to_string())?
        }
        Schedule::Cron(expr) => cron_job(expr, on_tick, next_run)?,
    };
    let engine = JobScheduler::new().await.map_err(|e| e.to_string())?;
    engine.add(job).await.map_err(|e| e.to_string())?;
    engine.start().await.map_err(|e| e.to_string())?;
    Ok(engine)
}

/// The next tick of an interval, `every` from now; when it fires it adds the one after.
fn interval_job(
    every: Duration,
    on_tick: OnTick,
    next_run: Arc<Mutex<Option<DateTime<Utc>>>>,
) -> Result<Job, JobSchedulerError> {
    let at = Utc::now() + chrono::Duration::from_std(every).unwrap_or(chrono::Duration::MAX);
    set_next(&next_run, Some(at));
    Job::new_one_shot_async(every, move |_, engine| {
        let next = interval_job(every, on_tick.clone(), next_run.clone());
        on_tick();
        Box::pin(async move {
            let added = match next {
                Ok(job) => engine.add(job).await.map(drop),
                Err(e) => Err(e),
            };
            if let Err(e) = added {
                tracing::error!(event = "scheduler_failed", error = %e,
                    "The next scheduled tick could not be set; no more scheduled runs until a restart or reload.");
            }
        })
    })
}

/// A cron job. The next run shown is worked out by croner, the parser the engine itself
/// uses: the engine's own record of it is updated in a task of its own after the job has
/// started, so reading it from the job could still give the tick that just fired.
fn cron_job(
    expr: &str,
    on_tick: OnTick,
    next_run: Arc<Mutex<Option<DateTime<Utc>>>>,
) -> Result<Job, String> {
    let cron = crate::config::parse_cron(expr)?;
    let next = move || cron.find_next_occurrence(&Utc::now(), false).ok();
    set_next(&next_run, next());
    Job::new(expr, move |_, _| {
        set_next(&next_run, next());
        on_tick();
    })
    .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// Real time: the engine checks its jobs against the wall clock, which paused test
    /// time does not move.
    #[tokio::test]
    async fn an_interval_ticks_once_per_period_and_stops() {
        let count = Arc::new(AtomicUsize::new(0));
        let c = count.clone();
        let started = std::time::Instant::now();
        let s = Scheduler::start(
            Schedule::Interval(Duration::from_secs(2)),
            Arc::default(),
            move || {
                c.fetch_add(1, Ordering::SeqCst);
            },
        )
        .await
        .expect("starts");
        let next = s.next_run_at().expect("next run known");
        assert!(next > Utc::now() + chrono::Duration::milliseconds(1500));
        tokio::time::sleep(Duration::from_millis(900)).await;
        assert_eq!(
            count.load(Ordering::SeqCst),
            0,
            "no tick before the first period"
        );
        while count.load(Ordering::SeqCst) < 3 {
            assert!(started.elapsed() < Duration::from_secs(10), "three ticks");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // The engine keeps whole seconds: each tick is one to two and a half seconds
        // after the previous one.
        assert!(
            started.elapsed() >= Duration::from_secs(3),
            "ticks are about a period apart: {:?}",
            started.elapsed()
        );
        assert!(s.next_run_at().expect("next run") > Utc::now());
        s.stop().await;
        let stopped = count.load(Ordering::SeqCst);
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert_eq!(count.load(Ordering::SeqCst), stopped, "no tick after stop");
    }

    #[tokio::test]
    async fn a_cron_schedule_fires_every_second() {
        let count = Arc::new(AtomicUsize::new(0));
        let c = count.clone();
        let s = Scheduler::start(
            Schedule::Cron("* * * * * *".into()),
            Arc::default(),
            move || {
                c.fetch_add(1, Ordering::SeqCst);
            },
        )
        .await
        .expect("starts");
        let next = s.next_run_at().expect("next run known");
        assert!(next > Utc::now() - chrono::Duration::seconds(1));
        for _ in 0..50 {
            if count.load(Ordering::SeqCst) >= 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        s.stop().await;
        assert!(count.load(Ordering::SeqCst) >= 2, "cron ticks fired");
    }

    #[tokio::test]
    async fn a_bad_cron_expression_is_refused() {
        assert!(
            Scheduler::start(Schedule::Cron("every minute".into()), Arc::default(), || {})
                .await
                .is_err()
        );
    }
}
