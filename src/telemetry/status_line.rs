//! One live status line at the bottom of a terminal (`sync`'s progress) that log lines
//! never run into: every log record written to stderr first clears the line, then the
//! record goes out whole, then the line is drawn again below it.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;

/// The line currently shown, empty when none. Its lock also orders whole log records
/// against redraws, so two writers never interleave on the terminal.
static LINE: Mutex<String> = Mutex::new(String::new());

/// Erases the terminal line the cursor is on and returns to its start.
const CLEAR: &[u8] = b"\r\x1b[2K";

fn line() -> std::sync::MutexGuard<'static, String> {
    // Only whole strings are assigned under this lock; a panic cannot leave half of one.
    LINE.lock().unwrap_or_else(|p| p.into_inner())
}

/// Shows `text` as the status line when stderr is a terminal; does nothing otherwise,
/// so a redirected stderr holds log records only.
pub(crate) fn show(text: &str) {
    if !std::io::stderr().is_terminal() {
        return;
    }
    let mut shown = line();
    text.clone_into(&mut shown);
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(CLEAR);
    let _ = err.write_all(shown.as_bytes());
    let _ = err.flush();
}

/// Removes the status line, leaving the cursor at the start of an empty line.
pub(crate) fn clear() {
    let mut shown = line();
    if shown.is_empty() {
        return;
    }
    shown.clear();
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(CLEAR);
    let _ = err.flush();
}

/// The log writer for stderr: collects one record and writes it on drop, around the
/// status line (`tracing_subscriber` makes one writer per record).
#[derive(Default)]
pub(crate) struct Stderr {
    record: Vec<u8>,
}

impl Write for Stderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.record.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for Stderr {
    fn drop(&mut self) {
        if self.record.is_empty() {
            return;
        }
        let shown = line();
        let mut err = std::io::stderr().lock();
        if !shown.is_empty() {
            let _ = err.write_all(CLEAR);
        }
        let _ = err.write_all(&self.record);
        if !shown.is_empty() {
            let _ = err.write_all(shown.as_bytes());
        }
        let _ = err.flush();
    }
}

/// For `with_writer`: a fresh [`Stderr`] per record.
pub(crate) fn stderr() -> Stderr {
    Stderr::default()
}
