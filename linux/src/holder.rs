//! The sandbox holder: a tiny process that is a sandbox's "init" and keeps
//! its namespaces alive for as long as the sandbox exists, independently of
//! the daemon (which may restart) and of the user's command (which may exit
//! and be started again with `exec`).
//!
//! The daemon re-executes its own binary as `switchyard __internal holder`
//! so that namespace creation happens in a fresh, single-threaded process:
//! `unshare(CLONE_NEWUSER)` fails in a multi-threaded one. The holder
//! creates the namespaces, makes mounts private, bind-mounts the sandbox's
//! `resolv.conf`, sets the hostname, brings `lo` up, reports readiness on an
//! inherited pipe and then sleeps until SIGTERM or SIGINT.

use super::error::{RealError, Result};
use super::fdpass::{adopt_inherited_fd, inherit_fd, wait_readable};
use super::netlink::Netlink;
use super::ns::{self, NsKind};
use super::{parse_kv, NetnsTarget};
use nix::mount::MsFlags;
use nix::sched::CloneFlags;
use nix::sys::signal::{SigSet, Signal};
use serde::{Deserialize, Serialize};
use std::fs::OpenOptions;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// How long [`spawn_holder`] waits for the holder to report.
pub const HOLDER_READY_TIMEOUT_SECS: u64 = 5;

/// What a sandbox's network looks like (Docker's `--network` modes that
/// need a holder; `host` needs none: commands run in the host namespaces).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum HolderMode {
    /// A new network namespace, to be given interfaces by the daemon.
    Private,
    /// `--network none`: a new network namespace that keeps only loopback.
    None,
    /// `--network container:OTHER`: share OTHER's network (and, rootless,
    /// user) namespace; only mount and UTS namespaces are new.
    ShareNetns(Holder),
}

/// Everything the holder needs to set a sandbox up.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HolderSpec {
    /// Which namespaces to create or share.
    pub mode: HolderMode,
    /// Hostname inside the sandbox (`--name`), if any. At most 64 bytes.
    pub hostname: Option<String>,
    /// A file to bind-mount over `/etc/resolv.conf` inside the sandbox
    /// (typically `nameserver 127.0.0.11`). Rewrite it in place, not by
    /// rename, for running sandboxes to see changes: the mount pins the inode.
    pub resolv_conf: Option<PathBuf>,
    /// Where the holder's stdout and stderr go (appended to).
    pub log_path: PathBuf,
}

/// A running holder, identified robustly: a pid alone may be reused after
/// the holder dies, so the start time (field 22 of `/proc/PID/stat`, in
/// clock ticks since boot) is kept with it and checked before every use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Holder {
    /// Process id.
    pub pid: u32,
    /// Start time of that process, to detect pid reuse.
    pub start_time: u64,
}

/// `(state, start_time)` of a process, from `/proc/PID/stat`.
fn proc_stat(pid: u32) -> Option<(char, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may contain spaces
    // and parentheses itself: fields resume after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    // `state` is field 3; field 22 is 19 further on.
    let start = fields.nth(18)?.parse().ok()?;
    Some((state, start))
}

impl Holder {
    /// Identifies an existing process as a holder (e.g. after a daemon
    /// restart, from a pid in the store), reading its start time now.
    pub fn from_pid(pid: u32) -> Result<Holder> {
        match proc_stat(pid) {
            Some((state, start_time)) if state != 'Z' && state != 'X' => {
                Ok(Holder { pid, start_time })
            }
            _ => Err(RealError::HolderGone { pid }),
        }
    }

    /// True while the very process that was started still runs (a zombie
    /// counts as dead; a reused pid does not count).
    pub fn is_alive(&self) -> bool {
        matches!(proc_stat(self.pid), Some((state, start)) if start == self.start_time && state != 'Z' && state != 'X')
    }

    /// `/proc/PID/ns/<kind>`: the handle other tools (`nsenter`, `ip netns
    /// attach`) take. Check [`Holder::is_alive`] after opening it.
    pub fn ns_path(&self, kind: NsKind) -> PathBuf {
        PathBuf::from(format!("/proc/{}/ns/{}", self.pid, kind.proc_name()))
    }

    /// Stops the holder: SIGTERM, up to ~2 s for it to exit, then SIGKILL.
    /// A holder that is already gone is fine; a pid that now belongs to
    /// another process is never signalled (the signal goes through a pidfd
    /// opened and verified against the start time). Reaps the holder if it
    /// is our child.
    pub fn terminate(&self) -> Result<()> {
        // SAFETY: pidfd_open takes a pid and flags and returns a descriptor.
        let raw = unsafe { libc::syscall(libc::SYS_pidfd_open, self.pid as libc::pid_t, 0) };
        if raw < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::ESRCH) {
                return Ok(());
            }
            return Err(RealError::os(
                format!("cannot open a pidfd for sandbox holder {}", self.pid),
                e,
                "Linux 5.3 or later is needed",
            ));
        }
        // SAFETY: fresh descriptor from pidfd_open.
        let pidfd = unsafe { OwnedFd::from_raw_fd(raw as i32) };
        // The pidfd now names one process for good; is it ours?
        if !self.is_alive() {
            self.reap();
            return Ok(());
        }
        for (signal, wait_ms) in [(libc::SIGTERM, 2000), (libc::SIGKILL, 2000)] {
            // SAFETY: valid pidfd, no siginfo, no flags.
            let r = unsafe {
                libc::syscall(
                    libc::SYS_pidfd_send_signal,
                    pidfd.as_raw_fd(),
                    signal,
                    std::ptr::null::<u8>(),
                    0,
                )
            };
            if r < 0 {
                let e = io::Error::last_os_error();
                if e.raw_os_error() == Some(libc::ESRCH) {
                    break;
                }
                return Err(RealError::os(
                    format!("cannot signal sandbox holder {}", self.pid),
                    e,
                    "the daemon must run as the user that started the holder",
                ));
            }
            // A pidfd becomes readable when its process exits.
            let exited = wait_readable(pidfd.as_fd(), wait_ms).map_err(|e| {
                RealError::os(
                    format!("waiting for sandbox holder {} to exit", self.pid),
                    e,
                    "",
                )
            })?;
            if exited {
                break;
            }
        }
        self.reap();
        Ok(())
    }

    /// Collects the exit status if the holder is our child, so it does not
    /// linger as a zombie; harmless otherwise.
    fn reap(&self) {
        // SAFETY: non-blocking waitpid on a specific pid.
        unsafe { libc::waitpid(self.pid as libc::pid_t, std::ptr::null_mut(), libc::WNOHANG) };
    }
}

/// Starts a holder by re-executing `exe` (our own binary) and waits up to
/// [`HOLDER_READY_TIMEOUT_SECS`] for it to report that the sandbox is set
/// up. On failure the holder's own error text is returned and it is reaped.
pub fn spawn_holder(exe: &Path, spec: &HolderSpec) -> Result<Holder> {
    if let Some(h) = &spec.hostname {
        if h.is_empty() || h.len() > 64 || h.contains('\0') {
            return Err(RealError::Unsupported(format!(
                "invalid hostname {h:?}: use 1 to 64 characters (letters, digits, '-', '.')"
            )));
        }
    }
    let mut args: Vec<String> = vec!["__internal".into(), "holder".into()];
    match &spec.mode {
        HolderMode::Private => args.push("mode=private".into()),
        HolderMode::None => args.push("mode=none".into()),
        HolderMode::ShareNetns(target) => {
            if !target.is_alive() {
                return Err(RealError::HolderGone { pid: target.pid });
            }
            args.push("mode=share".into());
            args.push(format!("share-pid={}", target.pid));
            args.push(format!("share-start={}", target.start_time));
        }
    }
    if let Some(h) = &spec.hostname {
        args.push(format!("hostname={h}"));
    }
    if let Some(r) = &spec.resolv_conf {
        let r = std::path::absolute(r).unwrap_or_else(|_| r.clone());
        args.push(format!("resolv={}", r.display()));
    }
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&spec.log_path)
        .map_err(|e| {
            RealError::os(
                format!("cannot open the holder log {}", spec.log_path.display()),
                e,
                "check that its directory exists and is writable",
            )
        })?;
    let log2 = log
        .try_clone()
        .map_err(|e| RealError::os("cannot duplicate the holder log descriptor", e, ""))?;
    let (ready_r, ready_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| RealError::os("cannot create the holder readiness pipe", e, ""))?;
    args.push(format!("ready-fd={}", ready_w.as_raw_fd()));

    let mut cmd = Command::new(exe);
    cmd.args(&args[..])
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2);
    inherit_fd(&mut cmd, ready_w.as_raw_fd());
    let mut child = cmd.spawn().map_err(|source| RealError::SpawnHelper {
        exe: exe.to_path_buf(),
        helper: "holder",
        source,
    })?;
    drop(cmd);
    // Only the holder may keep the write end, so that its death reads as EOF.
    drop(ready_w);

    let outcome = read_readiness(ready_r);
    let fail = |child: &mut std::process::Child, err: RealError| -> Result<Holder> {
        let _ = child.kill();
        let _ = child.wait();
        Err(err)
    };
    match outcome {
        Ok(Readiness::Ready) => {
            let pid = child.id();
            // The child is not reaped yet, so its pid cannot be reused here.
            match proc_stat(pid) {
                Some((_, start_time)) => Ok(Holder { pid, start_time }),
                None => fail(&mut child, RealError::HolderGone { pid }),
            }
        }
        Ok(Readiness::Failed(message)) => fail(
            &mut child,
            RealError::HolderFailed {
                message,
                log: spec.log_path.clone(),
            },
        ),
        Ok(Readiness::Died) => {
            let status = child.wait().ok();
            let tail = log_tail(&spec.log_path);
            let message = match status {
                Some(s) => format!("it exited ({s}) without reporting{tail}"),
                None => format!("it exited without reporting{tail}"),
            };
            Err(RealError::HolderFailed {
                message,
                log: spec.log_path.clone(),
            })
        }
        Ok(Readiness::TimedOut) => fail(
            &mut child,
            RealError::HolderTimeout {
                seconds: HOLDER_READY_TIMEOUT_SECS,
                log: spec.log_path.clone(),
            },
        ),
        Err(e) => fail(
            &mut child,
            RealError::os("reading the holder readiness pipe", e, ""),
        ),
    }
}

enum Readiness {
    Ready,
    Failed(String),
    Died,
    TimedOut,
}

/// The holder writes a single 0 byte when ready, or its error text, then
/// closes the pipe.
fn read_readiness(fd: OwnedFd) -> io::Result<Readiness> {
    let mut file = std::fs::File::from(fd);
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if !wait_readable(file.as_fd(), (HOLDER_READY_TIMEOUT_SECS * 1000) as i32)? {
            return Ok(Readiness::TimedOut);
        }
        let n = match file.read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
        if got == [0] {
            return Ok(Readiness::Ready);
        }
    }
    Ok(match got.as_slice() {
        [] => Readiness::Died,
        [0] => Readiness::Ready,
        text => Readiness::Failed(String::from_utf8_lossy(text).trim().to_string()),
    })
}

/// The last lines of the holder's log, for an error message.
fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().rev().take(5).collect();
    if lines.is_empty() {
        String::new()
    } else {
        let mut l = lines;
        l.reverse();
        format!("; its log ends with: {}", l.join(" | "))
    }
}

/// Parsed arguments of `__internal holder`.
struct HolderArgs {
    ready_fd: i32,
    mode: HolderMode,
    hostname: Option<String>,
    resolv: Option<PathBuf>,
}

fn parse_args(args: &[String]) -> Result<HolderArgs> {
    let kv = parse_kv(args)?;
    let get = |k: &str| kv.get(k).copied();
    let num = |k: &str| -> Result<u64> {
        get(k)
            .ok_or_else(|| RealError::Usage(format!("holder: missing {k}=")))?
            .parse()
            .map_err(|_| RealError::Usage(format!("holder: {k}= is not a number")))
    };
    let mode = match get("mode") {
        Some("private") => HolderMode::Private,
        Some("none") => HolderMode::None,
        Some("share") => HolderMode::ShareNetns(Holder {
            pid: num("share-pid")? as u32,
            start_time: num("share-start")?,
        }),
        other => return Err(RealError::Usage(format!("holder: bad mode {other:?}"))),
    };
    Ok(HolderArgs {
        ready_fd: num("ready-fd")? as i32,
        mode,
        hostname: get("hostname").map(str::to_string),
        resolv: get("resolv").map(PathBuf::from),
    })
}

/// Entry point of `switchyard __internal holder ...`: set up, report, wait.
pub(crate) fn holder_main(args: &[String]) -> i32 {
    let parsed = match parse_args(args) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("switchyard holder: {e}");
            return 2;
        }
    };
    let ready = match adopt_inherited_fd(parsed.ready_fd) {
        Ok(fd) => std::fs::File::from(fd),
        Err(e) => {
            eprintln!("switchyard holder: {e}");
            return 2;
        }
    };
    // Block the stop signals first, so one that arrives during setup is
    // handled by the wait below rather than killing us half-way.
    let mut stop = SigSet::empty();
    stop.add(Signal::SIGTERM);
    stop.add(Signal::SIGINT);
    if let Err(e) = stop.thread_block() {
        eprintln!("switchyard holder: cannot block signals: {e}");
        return 1;
    }
    let mut ready = ready;
    match set_up(&parsed) {
        Ok(()) => {
            if ready.write_all(&[0]).is_err() {
                // Nobody is waiting for us: the daemon gave up.
                return 1;
            }
            drop(ready);
        }
        Err(e) => {
            let msg = e.to_string();
            eprintln!("switchyard holder: {msg}");
            let _ = ready.write_all(msg.as_bytes());
            return 1;
        }
    }
    eprintln!("switchyard holder {}: sandbox ready", std::process::id());
    loop {
        match stop.wait() {
            Ok(sig) => {
                eprintln!("switchyard holder {}: {sig:?}, exiting", std::process::id());
                return 0;
            }
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => {
                eprintln!("switchyard holder: sigwait failed: {e}");
                return 1;
            }
        }
    }
}

/// Everything between start and readiness.
fn set_up(a: &HolderArgs) -> Result<()> {
    // Own session and process group: a Ctrl-C or a kill of the daemon's
    // group must not take the sandboxes down with it.
    let _ = nix::unistd::setsid();
    // Do not pin whatever directory the daemon ran in.
    let _ = nix::unistd::chdir("/");
    let euid = nix::unistd::geteuid().as_raw();
    let egid = nix::unistd::getegid().as_raw();
    match &a.mode {
        HolderMode::Private | HolderMode::None => {
            if euid != 0 {
                ns::require_single_thread("creating a user namespace")?;
                nix::sched::unshare(CloneFlags::CLONE_NEWUSER).map_err(|e| {
                    RealError::os(
                        "cannot create a user namespace",
                        e,
                        "unprivileged user namespaces must be enabled: sysctl user.max_user_namespaces must be above 0, kernel.unprivileged_userns_clone=1 where that exists, and kernel.apparmor_restrict_unprivileged_userns=0 on Ubuntu 23.10+ (or an AppArmor profile allowing userns for switchyard)",
                    )
                })?;
                write_proc("/proc/self/setgroups", "deny")?;
                write_proc("/proc/self/uid_map", &format!("0 {euid} 1"))?;
                write_proc("/proc/self/gid_map", &format!("0 {egid} 1"))?;
            }
            nix::sched::unshare(
                CloneFlags::CLONE_NEWNET | CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWUTS,
            )
            .map_err(|e| {
                RealError::os(
                    "cannot create the network, mount and UTS namespaces",
                    e,
                    "this needs root or a user namespace (CAP_SYS_ADMIN)",
                )
            })?;
        }
        HolderMode::ShareNetns(target) => {
            let fds = ns::open_target(
                &NetnsTarget::Holder(*target),
                ns::Wanted {
                    user: true,
                    net: true,
                    uts: false,
                    mount: false,
                },
            )?;
            fds.join_all()?;
            nix::sched::unshare(CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWUTS)
                .map_err(|e| RealError::os("cannot create the mount and UTS namespaces", e, ""))?;
        }
    }
    // Our mounts must not propagate back to the host (nor host mounts in).
    nix::mount::mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(|e| {
        RealError::os(
            "cannot make mounts private (mount --make-rprivate /)",
            e,
            "",
        )
    })?;
    if let Some(src) = &a.resolv {
        bind_resolv_conf(src)?;
    }
    if let Some(h) = &a.hostname {
        nix::unistd::sethostname(h)
            .map_err(|e| RealError::os(format!("cannot set the hostname to {h:?}"), e, ""))?;
    }
    if !matches!(a.mode, HolderMode::ShareNetns(_)) {
        let nl = Netlink::open_here()?;
        let lo = nl.link_index("lo")?;
        nl.set_link_up(lo)?;
    }
    Ok(())
}

fn write_proc(path: &str, content: &str) -> Result<()> {
    std::fs::write(path, content).map_err(|e| {
        RealError::os(
            format!("cannot write {content:?} to {path}"),
            e,
            "the kernel refused the user namespace mapping",
        )
    })
}

/// Bind-mounts `src` over `/etc/resolv.conf`, or over the file it links to
/// when it is a symlink (systemd-resolved's stub, for one): mounting onto a
/// symlink is not possible, and the link resolves inside the sandbox to the
/// same place.
fn bind_resolv_conf(src: &Path) -> Result<()> {
    let etc = Path::new("/etc/resolv.conf");
    let target = match std::fs::symlink_metadata(etc) {
        Ok(m) if m.file_type().is_symlink() => std::fs::canonicalize(etc).map_err(|e| {
            RealError::os(
                "/etc/resolv.conf is a symlink whose target cannot be resolved",
                e,
                "make sure the file it points to exists on the host (e.g. start systemd-resolved or replace the link with a file)",
            )
        })?,
        Ok(_) => etc.to_path_buf(),
        Err(e) => {
            return Err(RealError::os(
                "/etc/resolv.conf does not exist on the host, so there is nothing to mount the sandbox's over",
                e,
                "create an empty /etc/resolv.conf on the host",
            ))
        }
    };
    if !src.is_file() {
        return Err(RealError::Unsupported(format!(
            "resolv.conf source {} is not a regular file: write the sandbox's resolv.conf before starting it",
            src.display()
        )));
    }
    nix::mount::mount(
        Some(src),
        &target,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(|e| {
        RealError::os(
            format!(
                "cannot bind-mount {} over {}",
                src.display(),
                target.display()
            ),
            e,
            "the source must be readable by the sandbox's user",
        )
    })
}
