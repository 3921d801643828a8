//! Black-box tests of the emulator with a plain HTTP client (no daemon code), one binary.

mod activity;
mod binary;
mod faults;
mod helpers;
mod identity;
mod perf;
mod referrals;
mod tls;
