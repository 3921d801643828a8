//! A stand-in for journald's native socket: receives what a process sends to
//! `/run/systemd/journal/socket` and parses it as journald does
//! (<https://systemd.io/JOURNAL_NATIVE_PROTOCOL/>): `KEY=value` lines, the binary form
//! (`KEY`, newline, a little-endian u64 length, the value, newline) for values that may
//! hold newlines, and a sealed memfd passed with `SCM_RIGHTS` for an entry too big for
//! one datagram.

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// One journal entry: each field with its values in the order sent (a field may repeat).
pub type Entry = BTreeMap<String, Vec<String>>;

/// Receives entries on a background thread for as long as the test runs.
pub struct Journal {
    entries: Arc<Mutex<Vec<Entry>>>,
}

impl Journal {
    /// Binds `path` (journald's socket path inside the child's mount namespace).
    pub fn bind(path: &Path) -> Journal {
        let socket = UnixDatagram::bind(path).expect("bind the journal socket");
        let entries = Arc::new(Mutex::new(Vec::new()));
        let sink = entries.clone();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 256 * 1024];
            while let Some(payload) = receive(&socket, &mut buf) {
                // The sender's probe at start-up is an empty datagram, which journald drops.
                if !payload.is_empty() {
                    sink.lock().expect("journal lock").push(parse(&payload));
                }
            }
        });
        Journal { entries }
    }

    pub fn entries(&self) -> Vec<Entry> {
        self.entries.lock().expect("journal lock").clone()
    }

    /// Entries whose `EVENT` is `event`.
    pub fn events(&self, event: &str) -> Vec<Entry> {
        self.entries()
            .into_iter()
            .filter(|e| field(e, "EVENT") == Some(event))
            .collect()
    }
}

/// The first value of `name`.
pub fn field<'a>(entry: &'a Entry, name: &str) -> Option<&'a str> {
    entry.get(name)?.first().map(String::as_str)
}

/// One datagram's payload, or the memfd's contents when one came with it.
fn receive(socket: &UnixDatagram, buf: &mut [u8]) -> Option<Vec<u8>> {
    let mut control = [0u8; 64];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: msghdr is plain data; every pointer in it refers to a live local buffer of
    // the length given, and recvmsg writes only within them.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = control.len() as _;
    // SAFETY: as above; the socket is open for the whole call.
    let n = unsafe { libc::recvmsg(socket.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
    if n < 0 {
        return None;
    }
    // SAFETY: the CMSG macros walk the control buffer recvmsg filled in, within
    // msg_controllen; an SCM_RIGHTS message holds at least one file descriptor.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let fd: libc::c_int = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast());
                let mut memfd = std::fs::File::from(OwnedFd::from_raw_fd(fd));
                // journald maps the memfd; the sender's file offset is at its end.
                memfd.seek(SeekFrom::Start(0)).ok()?;
                let mut payload = Vec::new();
                memfd.read_to_end(&mut payload).ok()?;
                return Some(payload);
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    Some(buf[..usize::try_from(n).ok()?].to_vec())
}

fn parse(mut payload: &[u8]) -> Entry {
    let mut entry = Entry::new();
    while !payload.is_empty() {
        let line_end = payload
            .iter()
            .position(|&b| b == b'\n')
            .unwrap_or(payload.len());
        let line = &payload[..line_end];
        let (name, value, rest) = match line.iter().position(|&b| b == b'=') {
            Some(eq) => (&line[..eq], line[eq + 1..].to_vec(), &payload[line_end..]),
            None => {
                let after = &payload[line_end + 1..];
                let len = u64::from_le_bytes(after[..8].try_into().expect("8 length bytes"));
                let len = usize::try_from(len).expect("length fits");
                (line, after[8..8 + len].to_vec(), &after[8 + len..])
            }
        };
        entry
            .entry(String::from_utf8_lossy(name).into_owned())
            .or_default()
            .push(String::from_utf8(value).expect("UTF-8 field value"));
        payload = rest.strip_prefix(b"\n").unwrap_or(rest);
    }
    entry
}

#[test]
fn both_forms_of_the_native_protocol_parse() {
    let mut payload = b"PRIORITY=6\nMESSAGE\n".to_vec();
    payload.extend_from_slice(&11u64.to_le_bytes());
    payload.extend_from_slice(b"two\nlines!!\nEVENT=x\nEVENT=y\n");
    let entry = parse(&payload);
    assert_eq!(field(&entry, "PRIORITY"), Some("6"));
    assert_eq!(field(&entry, "MESSAGE"), Some("two\nlines!!"));
    assert_eq!(entry["EVENT"], ["x", "y"]);
}
