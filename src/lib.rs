//! partner-center-sync keeps a PostgreSQL copy of a partner's Microsoft Partner Center referrals fresh.
//!
//! One concern per module, so anything is found by file name:
//!
//! - [`cli`]: command-line parsing, subcommand dispatch and the mapping of errors to exit codes.
//! - `exit`: the one table of process exit codes, below every module so each error names its own.
//! - [`config`]: one table of keys; layering (defaults < TOML file < credential files < environment), validation, secrets, reload classes.
//! - `telemetry`: tracing set-up: journald under systemd, pretty on a terminal, JSON lines otherwise.
//! - [`auth`]: device-code login, the MSAL-compatible token cache and silent refresh.
//! - `partner_center`: the Referrals API client: paging, retries, wire types.
//! - [`store`]: PostgreSQL: pool, migrations (then lz4 payloads where the server has it), upserts, run history, read queries.
//! - [`sync`]: one sync run: fetch pages, upsert rows, advance the watermark with the last page.
//! - `notify`: the notifications outbox a run fills and the task that delivers it to webhooks.
//! - `scheduler`: interval or cron ticks pushed into a one-slot trigger channel.
//! - [`daemon`]: builds everything from config and runs one control loop (signals, the HTTP
//!   trigger, reload, shutdown); `http` sees it only through `daemon::handle`.
//! - [`metrics`]: Prometheus counters and gauges, served at `/metrics`.
//! - `http`: the HTTP API, metrics and the embedded web UI.
//! - [`export`]: referrals as Excel-safe CSV or JSON lines, for the download and the CLI.
//! - [`outbound`]: the shared outbound HTTP client (timeouts, proxy).
//! - `dev` (cargo feature `dev`: on by default, off in the package build): `demo`, the
//!   one-command quickstart, its notification inbox, and a throwaway PostgreSQL cluster
//!   for it and the tests.

pub mod auth;
pub mod cli;
pub mod config;
pub mod daemon;
#[cfg(feature = "dev")]
pub mod dev;
pub(crate) mod exit;
pub mod export;
pub(crate) mod http;
pub mod metrics;
pub(crate) mod notify;
pub mod outbound;
pub(crate) mod partner_center;
pub(crate) mod scheduler;
pub mod store;
pub mod sync;
pub(crate) mod telemetry;
