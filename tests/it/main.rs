//! The one integration-test binary: the real `partner-center-sync` binary, the emulator,
//! a real PostgreSQL, real signals and a real browser. One binary links once; each
//! module is one area a user or an operator sees.

mod alerts;
mod auth;
mod browser;
mod config_cli;
mod daemon;
mod demo;
mod http_api;
mod notify;
mod support;
mod sync;
