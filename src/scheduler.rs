//! Scheduled ticks. A tick only calls `on_tick` (which pushes into the daemon's one-slot
//! trigger channel); it never runs a sync itself, so slow runs cannot overlap and ticks
//! that arrive during a run coalesce into at most one follow-up.
//!
//! Intervals use a plain tokio interval: tokio-cron-scheduler's repeated jobs have been
//! seen to stop firing, and a tokio interval is exact under paused test time. Cron
//! expressions (6 fields, seconds first) use tokio-cron-scheduler.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::task::JoinHandle;
use tokio_cron_scheduler::{Job, JobScheduler};

use crate::config::Config;

/// When scheduled runs happen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Schedule {
    Interval(Duration),
    Cron(String),
}

impl Schedule {
    pub fn from_config(config: &Config) -> Self {
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
pub struct Scheduler {
    schedule: Schedule,
    next_run: Arc<Mutex<Option<DateTime<Utc>>>>,
    runner: Runner,
}

enum Runner {
    Interval(JoinHandle<()>),
    Cron(JobScheduler),
}

impl Scheduler {
    /// `next_run` is kept up to date as ticks fire, for whoever shows it.
    pub async fn start(
        schedule: Schedule,
        next_run: Arc<Mutex<Option<DateTime<Utc>>>>,
        on_tick: impl Fn() + Send + Sync + 'static,
    ) -> Result<Self, SchedulerError> {
        let on_tick: OnTick = Arc::new(on_tick);
        let runner = match &schedule {
            Schedule::Interval(every) => {
                Runner::Interval(spawn_interval(*every, on_tick, next_run.clone()))
            }
            Schedule::Cron(expr) => {
                Runner::Cron(start_cron(expr, on_tick, next_run.clone()).await.map_err(
                    |message| SchedulerError {
                        schedule: schedule.clone(),
                        message,
                    },
                )?)
            }
        };
        Ok(Self {
            schedule,
            next_run,
            runner,
        })
    }

    pub fn schedule(&self) -> &Schedule {
        &self.schedule
    }

    /// When the next tick is due, for health and the UI.
    pub fn next_run_at(&self) -> Option<DateTime<Utc>> {
        *self.next_run.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub async fn stop(self) {
        match self.runner {
            Runner::Interval(handle) => handle.abort(),
            Runner::Cron(mut sched) => {
                if let Err(e) = sched.shutdown().await {
                    tracing::warn!(event = "scheduler_stop_failed", error = %e, "The cron scheduler did not stop cleanly.");
                }
            }
        }
    }
}

fn set_next(next_run: &Mutex<Option<DateTime<Utc>>>, at: Option<DateTime<Utc>>) {
    *next_run.lock().unwrap_or_else(|p| p.into_inner()) = at;
}

fn spawn_interval(
    every: Duration,
    on_tick: OnTick,
    next_run: Arc<Mutex<Option<DateTime<Utc>>>>,
) -> JoinHandle<()> {
    let after =
        |d: Duration| Utc::now() + chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX);
    set_next(&next_run, Some(after(every)));
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        // After a stall (suspend, a blocked runtime) fire once, then keep the period.
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            set_next(&next_run, Some(after(every)));
            on_tick();
        }
    })
}

async fn start_cron(
    expr: &str,
    on_tick: OnTick,
    next_run: Arc<Mutex<Option<DateTime<Utc>>>>,
) -> Result<JobScheduler, String> {
    let cron = crate::config::parse_cron(expr)?;
    let next = move || cron.find_next_occurrence(&Utc::now(), false).ok();
    set_next(&next_run, next());
    let sched = JobScheduler::new().await.map_err(|e| e.to_string())?;
    let job = Job::new(expr, move |_, _| {
        set_next(&next_run, next());
        on_tick();
    })
    .map_err(|e| e.to_string())?;
    sched.add(job).await.map_err(|e| e.to_string())?;
    sched.start().await.map_err(|e| e.to_string())?;
    Ok(sched)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn an_interval_ticks_once_per_period_and_stops() {
        let count = Arc::new(AtomicUsize::new(0));
        let c = count.clone();
        let s = Scheduler::start(
            Schedule::Interval(Duration::from_secs(30)),
            Arc::default(),
            move || {
                c.fetch_add(1, Ordering::SeqCst);
            },
        )
        .await
        .expect("starts");
        assert!(s.next_run_at().is_some());
        tokio::time::sleep(Duration::from_secs(29)).await;
        assert_eq!(
            count.load(Ordering::SeqCst),
            0,
            "no tick before the first period"
        );
        tokio::time::sleep(Duration::from_secs(62)).await;
        assert_eq!(count.load(Ordering::SeqCst), 3);
        s.stop().await;
        tokio::time::sleep(Duration::from_secs(300)).await;
        assert_eq!(count.load(Ordering::SeqCst), 3, "no tick after stop");
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
