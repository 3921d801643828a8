//! Logging: journald natively under systemd (JSON on stdout would lose its priority in
//! the journal), pretty text on a terminal, JSON lines otherwise. Every notable event
//! carries a stable `event` field so operators can `journalctl EVENT=sync_finished` or
//! `jq 'select(.fields.event == "…")'`.

use std::io::IsTerminal;

use tracing_subscriber::layer::Layered;
use tracing_subscriber::layer::SubscriberExt;
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
    pub fn set_level(&self, level: &str) -> Result<(), String> {
        let filter = EnvFilter::try_new(level).map_err(|e| e.to_string())?;
        self.filter.reload(filter).map_err(|e| e.to_string())
    }
}

/// The format `auto` resolves to in this process.
pub fn resolve(format: LogFormat) -> LogFormat {
    match format {
        LogFormat::Auto if std::env::var_os("JOURNAL_STREAM").is_some() => LogFormat::Journald,
        LogFormat::Auto if std::io::stderr().is_terminal() => LogFormat::Pretty,
        LogFormat::Auto => LogFormat::Json,
        other => other,
    }
}

/// Installs the global subscriber once. Logs go to stderr so stdout stays clean for
/// command output (`config show`, `sync --json`).
pub fn init(format: LogFormat, level: &str) -> LogHandle {
    let filter = EnvFilter::try_new(level).unwrap_or_else(|_| EnvFilter::new("info"));
    let (filter, handle) = reload::Layer::new(filter);
    let output: Box<dyn Layer<Base> + Send + Sync> = match resolve(format) {
        LogFormat::Journald => match tracing_journald::layer() {
            Ok(layer) => Box::new(layer.with_syslog_identifier("partner-center-sync".to_owned())),
            Err(_) => Box::new(json_layer()),
        },
        LogFormat::Pretty => Box::new(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_target(false),
        ),
        LogFormat::Json | LogFormat::Auto => Box::new(json_layer()),
    };
    // A second init (tests) keeps the first subscriber.
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(output)
        .try_init();
    LogHandle { filter: handle }
}

fn json_layer() -> impl Layer<Base> + Send + Sync {
    tracing_subscriber::fmt::layer()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_writer(std::io::stderr)
}
