//! A throwaway PostgreSQL cluster for the demo and the tests, started from the installed
//! server binaries when no `DATABASE_URL` is given and nothing listens on 5432.
//!
//! The cluster lives in a temporary directory, listens on 127.0.0.1 and a free port
//! only, and is removed on drop. A small reaper process also removes it when the owning
//! process dies without dropping it (a test binary exiting, a killed demo).

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum DevDbError {
    #[error(
        "No PostgreSQL server binaries found (initdb, pg_ctl on PATH or under /usr/lib/postgresql/<version>/bin). \
         Install them (`apt-get install postgresql`) or set DATABASE_URL to an existing server."
    )]
    NoBinaries,
    #[error("Could not start a throwaway PostgreSQL: {0}")]
    Start(String),
}

/// How the demo and the tests find a database.
pub enum DatabaseChoice {
    /// `DATABASE_URL` or the local server on 127.0.0.1:5432.
    Existing(String),
    Throwaway(ThrowawayPostgres),
}

impl DatabaseChoice {
    /// `DATABASE_URL` if set; else 127.0.0.1:5432 when something answers there; else a
    /// throwaway cluster.
    pub fn pick() -> Result<Self, DevDbError> {
        if let Ok(url) = std::env::var("DATABASE_URL")
            && !url.is_empty()
        {
            return Ok(Self::Existing(url));
        }
        let local = SocketAddr::from((Ipv4Addr::LOCALHOST, 5432));
        if TcpStream::connect_timeout(&local, Duration::from_millis(500)).is_ok() {
            return Ok(Self::Existing(
                "postgres://postgres@127.0.0.1:5432/postgres".into(),
            ));
        }
        ThrowawayPostgres::start().map(Self::Throwaway)
    }

    /// A URL to the server's maintenance database, from which per-use databases are made.
    pub fn url(&self) -> String {
        match self {
            Self::Existing(url) => url.clone(),
            Self::Throwaway(pg) => pg.url(),
        }
    }
}

/// A running temporary cluster; stopped and deleted on drop.
pub struct ThrowawayPostgres {
    dir: PathBuf,
    port: u16,
    bin: PathBuf,
    run_as: Option<String>,
}

impl ThrowawayPostgres {
    pub fn start() -> Result<Self, DevDbError> {
        let bin = find_binaries().ok_or(DevDbError::NoBinaries)?;
        // initdb refuses to run as root; run the server as an unprivileged system user.
        let run_as = is_root().then(unprivileged_user).flatten();
        if is_root() && run_as.is_none() {
            return Err(DevDbError::Start(
                "running as root and neither `postgres` nor `nobody` exists".into(),
            ));
        }
        let dir = std::env::temp_dir().join(format!(
            "pcs-pg-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir)
            .map_err(|e| DevDbError::Start(format!("create {}: {e}", dir.display())))?;
        if let Some(user) = &run_as {
            run(Command::new("chown").arg(user).arg(&dir), "chown")?;
        }
        let data = dir.join("data");
        let mut pg = Self {
            dir: dir.clone(),
            port: 0,
            bin,
            run_as,
        };
        pg.run_pg(
            "initdb",
            &[
                "-D",
                path_str(&data)?,
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        )?;
        let port = free_port()?;
        pg.port = port;
        let opts = format!(
            "-p {port} -c listen_addresses=127.0.0.1 -k {} -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200",
            path_str(&dir)?
        );
        pg.run_pg(
            "pg_ctl",
            &[
                "-D",
                path_str(&data)?,
                "-o",
                &opts,
                "-l",
                path_str(&dir.join("server.log"))?,
                "-w",
                "-t",
                "60",
                "start",
            ],
        )?;
        pg.spawn_reaper();
        Ok(pg)
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn command(&self, tool: &str) -> Command {
        let exe = self.bin.join(tool);
        match &self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(exe);
                c
            }
            None => Command::new(exe),
        }
    }

    fn run_pg(&self, tool: &str, args: &[&str]) -> Result<(), DevDbError> {
        run(self.command(tool).args(args).current_dir(&self.dir), tool)
    }

    /// Stops the cluster when this process dies, even without running destructors.
    fn spawn_reaper(&self) {
        let stop = self.stop_script();
        let script = format!(
            "while kill -0 {} 2>/dev/null; do sleep 1; done; {stop}",
            std::process::id()
        );
        let _ = Command::new("setsid")
            .args(["sh", "-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
    }

    fn stop_script(&self) -> String {
        let prefix = self
            .run_as
            .as_ref()
            .map(|u| format!("runuser -u {u} -- "))
            .unwrap_or_default();
        format!(
            "{prefix}{} -D '{}' -m immediate -w stop >/dev/null 2>&1; rm -rf '{}'",
            self.bin.join("pg_ctl").display(),
            self.dir.join("data").display(),
            self.dir.display()
        )
    }
}

impl Drop for ThrowawayPostgres {
    fn drop(&mut self) {
        let _ = Command::new("sh")
            .args(["-c", &self.stop_script()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// `initdb` on PATH, else the newest `/usr/lib/postgresql/<version>/bin`.
fn find_binaries() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .find(|p| p.join("initdb").is_file() && p.join("pg_ctl").is_file())
    });
    on_path.or_else(|| {
        let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(Result::ok)
            .filter_map(|e| {
                let v = e.file_name().to_str()?.parse::<u32>().ok()?;
                let bin = e.path().join("bin");
                bin.join("initdb").is_file().then_some((v, bin))
            })
            .collect();
        versions.sort();
        versions.pop().map(|(_, bin)| bin)
    })
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

fn unprivileged_user() -> Option<String> {
    ["postgres", "nobody"].into_iter().find_map(|u| {
        let ok = Command::new("id")
            .arg("-u")
            .arg(u)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .ok()?
            .success();
        ok.then(|| u.to_owned())
    })
}

fn free_port() -> Result<u16, DevDbError> {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| DevDbError::Start(format!("no free port: {e}")))
}

fn path_str(p: &Path) -> Result<&str, DevDbError> {
    p.to_str()
        .ok_or_else(|| DevDbError::Start(format!("non-UTF-8 path {}", p.display())))
}

fn run(cmd: &mut Command, what: &str) -> Result<(), DevDbError> {
    let out = cmd
        .output()
        .map_err(|e| DevDbError::Start(format!("{what}: {e}")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(DevDbError::Start(format!(
            "{what} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}
