//! Throwaway servers for the peer engines: found on the machine, started on
//! a free loopback port in a scratch directory, stopped afterwards.
//!
//! Bounds: every server runs under `timeout --foreground` (a hard limit on
//! its life, and it stays in our process group, so a Ctrl-C in the terminal
//! reaches it too); dropping the [`Server`] stops it (SIGINT, then SIGKILL
//! after 15 s) and removes its directory, also when the run fails or panics.
//! Scratch directories live under `/tmp/omnistock-flash-sale/<pid>-...`, and
//! those left by a process that no longer exists (killed hard) are removed
//! when the next run starts.

use std::fs;
use std::net::{Ipv4Addr, TcpListener};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// Why a peer engine could not run.
#[derive(Debug)]
pub enum Unavailable {
    /// Its server is not installed: skip it, saying how to install it.
    Missing(String),
    /// Installed but failed.
    Failed(String),
}

impl From<String> for Unavailable {
    fn from(message: String) -> Self {
        Unavailable::Failed(message)
    }
}

const SCRATCH: &str = "/tmp/omnistock-flash-sale";

/// A program on `PATH`, or in one of `extra` directories (highest version
/// first where a directory name is a glob over versions).
pub fn find_program(name: &str, extra: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let candidate = dir.join(name);
        if candidate.is_file() {
            return Some(candidate);
        }
    }
    for pattern in extra {
        // Only the form `/prefix/*/suffix` is supported.
        if let Some((prefix, suffix)) = pattern.split_once("/*/") {
            let mut versions: Vec<PathBuf> = fs::read_dir(prefix)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path().join(suffix).join(name))
                .filter(|p| p.is_file())
                .collect();
            versions.sort_by_key(|p| {
                let version = p
                    .strip_prefix(prefix)
                    .ok()
                    .and_then(|rest| rest.iter().next())
                    .and_then(|v| v.to_str())
                    .and_then(|v| v.split('.').next())
                    .and_then(|v| v.parse::<u32>().ok());
                std::cmp::Reverse(version)
            });
            if let Some(found) = versions.into_iter().next() {
                return Some(found);
            }
        } else {
            let candidate = Path::new(pattern).join(name);
            if candidate.is_file() {
                return Some(candidate);
            }
        }
    }
    None
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> Result<u16, String> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .map_err(|e| format!("no free loopback port: {e}"))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| e.to_string())
}

/// Our effective uid (from /proc, without libc).
pub fn euid() -> Option<u32> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

/// `(uid, gid)` of a user, from /etc/passwd.
pub fn user_ids(name: &str) -> Option<(u32, u32)> {
    let passwd = fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        (fields.len() > 3 && fields[0] == name)
            .then(|| Some((fields[2].parse().ok()?, fields[3].parse().ok()?)))
            .flatten()
    })
}

/// Removes scratch directories whose creating process is gone.
fn remove_stale_scratch() {
    for entry in fs::read_dir(SCRATCH).into_iter().flatten().flatten() {
        let name = entry.file_name();
        let pid = name.to_str().and_then(|n| n.split('-').next());
        if let Some(pid) = pid {
            if !Path::new("/proc").join(pid).exists() {
                let _ = fs::remove_dir_all(entry.path());
            }
        }
    }
}

/// A fresh scratch directory, owned by `owner` when given.
pub fn scratch_dir(label: &str, owner: Option<(u32, u32)>) -> Result<PathBuf, String> {
    remove_stale_scratch();
    let _ = fs::create_dir_all(SCRATCH);
    // World-traversable so a server running as another user can reach its
    // own directory inside.
    let _ = fs::set_permissions(SCRATCH, fs::Permissions::from_mode(0o1777));
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let dir = Path::new(SCRATCH).join(format!("{}-{label}-{nanos}", std::process::id()));
    fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::chown(&dir, Some(uid), Some(gid))
            .map_err(|e| format!("cannot chown {}: {e}", dir.display()))?;
    }
    Ok(dir)
}

/// Runs `program args` to completion (as `user` when given), its output in
/// `log`; an error carries the log's tail.
pub fn run_to_end(
    program: &Path,
    args: &[String],
    user: Option<(u32, u32)>,
    log: &Path,
) -> Result<(), String> {
    let out = fs::File::create(log).map_err(|e| e.to_string())?;
    let err = out.try_clone().map_err(|e| e.to_string())?;
    let mut command = Command::new(program);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err);
    if let Some((uid, gid)) = user {
        command.uid(uid).gid(gid);
    }
    let status = command
        .status()
        .map_err(|e| format!("cannot run {}: {e}", program.display()))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!(
            "{} failed ({status}):\n{}",
            program.display(),
            tail(log)
        ))
    }
}

/// The last lines of a log file.
pub fn tail(log: &Path) -> String {
    let text = fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

/// A running server. Dropping it stops it and removes its directory.
#[derive(Debug)]
pub struct Server {
    pub name: &'static str,
    pub port: u16,
    pub dir: PathBuf,
    pub log: PathBuf,
    child: Child,
}

impl Server {
    /// Starts `program args` in the background under a time limit, as
    /// `user` when given, its output in `dir/server.log`.
    pub fn spawn(
        name: &'static str,
        program: &Path,
        args: &[String],
        port: u16,
        dir: PathBuf,
        user: Option<(u32, u32)>,
        limit: Duration,
    ) -> Result<Server, String> {
        let log = dir.join("server.log");
        let out = fs::File::create(&log).map_err(|e| e.to_string())?;
        let err = out.try_clone().map_err(|e| e.to_string())?;
        let mut command = match find_program("timeout", &[]) {
            Some(timeout) => {
                let mut c = Command::new(timeout);
                c.arg("--foreground")
                    .args(["--signal=INT", "--kill-after=15"])
                    .arg(format!("{}s", limit.as_secs().max(1)))
                    .arg(program);
                c
            }
            None => Command::new(program),
        };
        command
            .args(args)
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        if let Some((uid, gid)) = user {
            command.uid(uid).gid(gid);
        }
        let child = command
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", program.display()))?;
        Ok(Server {
            name,
            port,
            dir,
            log,
            child,
        })
    }

    /// Retries `connect` until it succeeds, the server exits, or `within`.
    pub fn wait_ready<T>(
        &mut self,
        within: Duration,
        mut connect: impl FnMut() -> Result<T, String>,
    ) -> Result<T, String> {
        let deadline = Instant::now() + within;
        loop {
            match connect() {
                Ok(value) => return Ok(value),
                Err(e) => {
                    if let Ok(Some(status)) = self.child.try_wait() {
                        return Err(format!(
                            "{} exited ({status}) before accepting connections:\n{}",
                            self.name,
                            tail(&self.log)
                        ));
                    }
                    if Instant::now() >= deadline {
                        return Err(format!(
                            "{} not ready after {within:?}: {e}\n{}",
                            self.name,
                            tail(&self.log)
                        ));
                    }
                    thread::sleep(Duration::from_millis(100));
                }
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let pid = self.child.id().to_string();
            let _ = Command::new("kill")
                .args(["-INT", &pid])
                .stderr(Stdio::null())
                .status();
            let deadline = Instant::now() + Duration::from_secs(15);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    break;
                }
                thread::sleep(Duration::from_millis(50));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}
