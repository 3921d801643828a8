//! Aids for development, built only with the `dev` cargo feature (on by default, off in the
//! package build), so the installed binary carries neither the emulator, nor the demo's
//! webhook inbox, nor code that shells out to initdb, runuser and chown.

pub(crate) mod demo;
pub mod devdb;
pub mod inbox;
