//! Logging: journald natively under systemd (JSON on stdout would lose its priority in
//! the journal), pretty text on a terminal, JSON lines otherwise. Every notable event
//! carries a stable `event` field so operators can `journalctl EVENT=sync_finished` or
//! `jq 'select(.event == "…")'`.

pub(crate) mod status_line;

use std::io::IsTerminal;

use serde_json::Value;
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::format::{JsonFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::layer::Layered;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry, reload};

/// The subscriber below the output layer: the registry with the reloadable filter.
type Base = Layered<reload::Layer<EnvFilter, Registry>, Registry>;

use crate::config::LogFormat;

/// Lets SIGHUP change the level without restarting.
#[derive(Clone)]
pub struct LogHandle {
    filter: reload::Handle<EnvFilter, Registry>,
}

impl LogHandle {
    pub(crate) fn set_level(&self, level: &str) -> Result<(), String> {
        self.filter
            .reload(filter(level)?)
            .map_err(|e| e.to_string())
    }
}

/// Libraries whose INFO is their own bookkeeping, not news for an operator:
/// tokio-cron-scheduler says "Job creator created" for every job added, and each interval
/// tick adds the next one. A `log_level` that names the target itself wins.
const QUIETER: &[(&str, &str)] = &[("tokio_cron_scheduler", "tokio_cron_scheduler=warn")];

fn filter(level: &str) -> Result<EnvFilter, String> {
    let mut filter = EnvFilter::try_new(level).map_err(|e| e.to_string())?;
    for (target, directive) in QUIETER {
        if !level.contains(target) {
            filter = filter.add_directive(directive.parse().map_err(|e| format!("{e}"))?);
        }
    }
    Ok(filter)
}

/// The format `auto` resolves to in this process.
fn resolve(format: LogFormat) -> LogFormat {
    match format {
        LogFormat::Auto if std::env::var_os("JOURNAL_STREAM").is_some() => LogFormat::Journald,
        LogFormat::Auto if std::io::stderr().is_terminal() => LogFormat::Pretty,
        LogFormat::Auto => LogFormat::Json,
        other => other,
    }
}

/// Installs the global subscriber once. Logs go to stderr so stdout stays clean for
/// command output (`config show`, `sync --json`).
pub(crate) fn init(format: LogFormat, level: &str) -> LogHandle {
    let filter = filter(level).unwrap_or_else(|_| EnvFilter::new("info"));
    let (filter, handle) = reload::Layer::new(filter);
    let output: Box<dyn Layer<Base> + Send + Sync> = match resolve(format) {
        LogFormat::Journald => match journald_layer() {
            Ok(layer) => Box::new(layer),
            Err(_) => Box::new(json_layer(status_line::stderr)),
        },
        LogFormat::Pretty => Box::new(
            tracing_subscriber::fmt::layer()
                .with_writer(status_line::stderr)
                .with_ansi(std::io::stderr().is_terminal())
                .with_target(false),
        ),
        LogFormat::Json | LogFormat::Auto => Box::new(json_layer(status_line::stderr)),
    };
    // A second init (tests) keeps the first subscriber.
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(output)
        .try_init();
    LogHandle { filter: handle }
}

/// Journal fields as the README documents them: `EVENT=`, `RUN_ID=`, … (the crate's
/// default `F_` prefix would make `journalctl EVENT=sync_finished` match nothing), and
/// syslog's meaning of the levels: INFO is 6 (informational), not the crate's default 5
/// (notice), which `journalctl -p notice` would show as if it asked for attention.
fn journald_layer() -> std::io::Result<tracing_journald::Layer> {
    use tracing_journald::{Priority, PriorityMappings};
    Ok(tracing_journald::layer()?
        .with_field_prefix(None)
        .with_priority_mappings(PriorityMappings {
            error: Priority::Error,
            warn: Priority::Warning,
            info: Priority::Informational,
            debug: Priority::Debug,
            trace: Priority::Debug,
        })
        .with_syslog_identifier("partner-center-sync".to_owned()))
}

fn json_layer<S, W>(writer: W) -> impl Layer<S> + Send + Sync
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let lines = tracing_subscriber::fmt::format()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(false);
    tracing_subscriber::fmt::layer()
        .fmt_fields(JsonFields::new())
        .event_format(SpanFieldsOnTop(lines))
        .with_writer(writer)
}

/// One JSON object per event with the fields of its spans (`run_id` of a `sync_run`)
/// beside its own, so `jq 'select(.run_id == 42)'` finds every line of a run. An
/// event's own field wins over a span's of the same name, an inner span's over an
/// outer one's.
struct SpanFieldsOnTop<F>(F);

impl<S, N, F> FormatEvent<S, N> for SpanFieldsOnTop<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let mut names: Vec<String> = event
            .metadata()
            .fields()
            .iter()
            .map(|f| f.name().to_owned())
            .collect();
        let mut extra = String::new();
        for span in ctx.event_scope().into_iter().flatten() {
            let extensions = span.extensions();
            let Some(fields) = extensions.get::<FormattedFields<N>>() else {
                continue;
            };
            let Ok(map) = serde_json::from_str::<serde_json::Map<String, Value>>(fields) else {
                continue;
            };
            for (key, value) in map {
                if !names.contains(&key) {
                    extra.push(',');
                    extra.push_str(&Value::String(key.clone()).to_string());
                    extra.push(':');
                    extra.push_str(&value.to_string());
                    names.push(key);
                }
            }
        }
        if extra.is_empty() {
            return self.0.format_event(ctx, writer, event);
        }
        let mut line = String::new();
        self.0.format_event(ctx, Writer::new(&mut line), event)?;
        if let Some(end) = line.rfind('}') {
            line.insert_str(end, &extra);
        }
        writer.write_str(&line)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("buffer").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn lines(emit: impl FnOnce()) -> Vec<Value> {
        let buffer = Buffer::default();
        let sink = buffer.clone();
        let subscriber = Registry::default().with(json_layer(move || sink.clone()));
        tracing::subscriber::with_default(subscriber, emit);
        let bytes = buffer.0.lock().expect("buffer").clone();
        String::from_utf8(bytes)
            .expect("utf-8")
            .lines()
            .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
            .collect()
    }

    #[test]
    fn events_in_a_run_carry_the_span_fields_at_the_top_level() {
        let out = lines(|| {
            tracing::info!(event = "outside", "No span.");
            let span = tracing::error_span!(
                "sync_run",
                run_id = tracing::field::Empty,
                trigger = "cli",
                mode = tracing::field::Empty,
            );
            let _entered = span.enter();
            tracing::info!(event = "before", "Not recorded yet.");
            span.record("run_id", 42);
            span.record("mode", "incremental");
            span.record("mode", "full");
            tracing::info!(event = "inside", count = 3, "Inside.");
            tracing::warn!(event = "other", run_id = 7, "Its own run id.");
        });
        assert_eq!(out.len(), 4, "{out:?}");
        assert_eq!(out[0]["event"], "outside");
        assert!(out[0].get("run_id").is_none() && out[0].get("spans").is_none());
        assert_eq!(out[1]["trigger"], "cli");
        assert!(out[1].get("run_id").is_none(), "an empty field is left out");
        let inside = &out[2];
        assert_eq!(
            (
                &inside["run_id"],
                &inside["trigger"],
                &inside["mode"],
                &inside["count"]
            ),
            (&42.into(), &"cli".into(), &"full".into(), &3.into())
        );
        assert_eq!(inside["message"], "Inside.");
        assert_eq!(inside["level"], "INFO");
        assert!(inside.get("span").is_none() && inside.get("spans").is_none());
        assert_eq!(out[3]["run_id"], 7, "the event's own field wins");
    }
}
