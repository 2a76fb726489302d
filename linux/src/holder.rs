//! The sandbox holder: a tiny process that is a sandbox's "init" and keeps
//! its namespaces alive for as long as the sandbox exists, independently of
//! the daemon (which may restart) and of the user's command (which may exit
//! and be started again with `exec`).
//!
//! The daemon re-executes its own binary as `switchyard __internal holder`
//! so that namespace creation happens in a fresh, single-threaded process:
//! `unshare(CLONE_NEWUSER)` fails in a multi-threaded one. That process
//! creates the namespaces (a PID namespace too, unless `--pid host`) and
//! clones the holder proper as a *sibling* (`CLONE_PARENT`): the spawner
//! stays its parent and reaps it, and it is init (pid 1) of the new PID
//! namespace, so every process of the sandbox dies with it. The holder
//! makes mounts private, bind-mounts the sandbox's `resolv.conf`, covers
//! the daemon's socket and state directories, mounts a `/proc` that shows
//! only the sandbox's processes, sets the hostname, brings `lo` up (and allows unprivileged ping, as Docker does), reports
//! readiness on an inherited pipe, and then reaps orphans until SIGTERM or
//! SIGINT from outside the sandbox.
//!
//! Its command line carries a label (`state=DIR sandbox=ID`), so a daemon
//! restarting after a crash finds every holder it started even when the
//! crash came before the holder's pid was recorded ([`find_holders`]).

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
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum HolderMode {
    /// A new network namespace, to be given interfaces by the daemon.
    #[default]
    Private,
    /// `--network none`: a new network namespace that keeps only loopback.
    None,
    /// `--network container:OTHER`: share OTHER's network (and, rootless,
    /// user) namespace; only mount and UTS namespaces are new.
    ShareNetns(Holder),
    /// `--network host`: the host's network and UTS namespaces; only the
    /// mount namespace (and the PID and, rootless, user ones) are new, to
    /// hide the daemon and other sandboxes.
    Host,
}

/// Who a holder belongs to, written on its command line so that a
/// restarting daemon can find it by scanning `/proc` ([`find_holders`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HolderLabel {
    /// The daemon's state directory (absolute).
    pub state_dir: PathBuf,
    /// The sandbox id.
    pub sandbox: String,
}

/// Everything the holder needs to set a sandbox up.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HolderSpec {
    /// Which namespaces to create or share.
    pub mode: HolderMode,
    /// Hostname inside the sandbox (`--name`), if any. At most 64 bytes.
    pub hostname: Option<String>,
    /// A file to bind-mount over `/etc/resolv.conf` inside the sandbox
    /// (typically `nameserver 127.0.0.11`). Rewrite it in place, not by
    /// rename, for running sandboxes to see changes: the mount pins the inode.
    pub resolv_conf: Option<PathBuf>,
    /// A file to bind-mount over `/etc/hosts` (`--add-host` entries),
    /// rewritten in place like `resolv_conf`.
    pub hosts: Option<PathBuf>,
    /// Where the holder's stdout and stderr go (appended to).
    pub log_path: PathBuf,
    /// A PID namespace of its own, the holder as its init and `/proc`
    /// remounted to show only it. False is `--pid host`.
    pub pid_namespace: bool,
    /// Paths the sandbox must not see (the daemon's socket directory and
    /// state directory): a directory is covered with an empty read-only
    /// tmpfs, anything else with `/dev/null`. Give parents before children;
    /// one already covered by an earlier path is skipped.
    pub hide: Vec<PathBuf>,
    /// The label to find it by after a crash.
    pub label: Option<HolderLabel>,
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

/// A live holder found by its label (see [`find_holders`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LabelledHolder {
    /// The process.
    pub holder: Holder,
    /// The sandbox id on its command line.
    pub sandbox: String,
    /// Whether it reported readiness to a daemon that was still reading.
    /// One that did not will fail to report and exit on its own; it can
    /// be killed, never adopted.
    pub ready: bool,
}

/// Every live holder whose label names `state_dir`, from `/proc`: how a
/// daemon restarting after a crash finds holders its predecessor started
/// but did not live to record (or to stop). Processes of other users and
/// zombies are left out.
pub fn find_holders(state_dir: &Path) -> Vec<LabelledHolder> {
    use std::os::unix::fs::MetadataExt;
    let want = format!("state={}", state_dir.display());
    let uid = nix::unistd::geteuid().as_raw();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if entry.metadata().map(|m| m.uid()).ok() != Some(uid) {
            continue;
        }
        let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
        let Some(at) = args
            .windows(2)
            .position(|w| w[0] == b"__internal" && w[1] == b"holder")
        else {
            continue;
        };
        let rest = &args[at + 2..];
        if !rest.contains(&want.as_bytes()) {
            continue;
        }
        let Some(sandbox) = rest
            .iter()
            .find_map(|a| a.strip_prefix(b"sandbox="))
            .and_then(|s| std::str::from_utf8(s).ok())
        else {
            continue;
        };
        let Ok(holder) = Holder::from_pid(pid) else {
            continue;
        };
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        found.push(LabelledHolder {
            holder,
            sandbox: sandbox.to_string(),
            ready: comm.trim_end() == READY_NAME,
        });
    }
    found
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
        HolderMode::Host => args.push("mode=host".into()),
    }
    if let Some(label) = &spec.label {
        args.push(format!("state={}", label.state_dir.display()));
        args.push(format!("sandbox={}", label.sandbox));
    }
    if spec.pid_namespace {
        args.push("pidns=1".into());
    }
    for (i, path) in spec.hide.iter().enumerate() {
        let path = std::path::absolute(path).unwrap_or_else(|_| path.clone());
        args.push(format!("hide{i}={}", path.display()));
    }
    if let Some(h) = &spec.hostname {
        args.push(format!("hostname={h}"));
    }
    if let Some(r) = &spec.resolv_conf {
        let r = std::path::absolute(r).unwrap_or_else(|_| r.clone());
        args.push(format!("resolv={}", r.display()));
    }
    if let Some(h) = &spec.hosts {
        let h = std::path::absolute(h).unwrap_or_else(|_| h.clone());
        args.push(format!("hosts={}", h.display()));
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

    let (inner, outcome) = read_readiness(ready_r);
    // The first process exits once it has cloned the holder (or failed).
    let fail = |child: &mut std::process::Child, err: RealError| -> Result<Holder> {
        let _ = child.kill();
        let _ = child.wait();
        if let Some(pid) = inner {
            // Our child (a sibling clone), not reaped yet: the pid is still its.
            // SAFETY: kill and waitpid on a specific pid.
            unsafe {
                libc::kill(pid as libc::pid_t, libc::SIGKILL);
                libc::waitpid(pid as libc::pid_t, std::ptr::null_mut(), 0);
            }
        }
        Err(err)
    };
    match outcome {
        Ok(Readiness::Ready) => {
            let _ = child.wait();
            let Some(pid) = inner else {
                return fail(
                    &mut child,
                    RealError::Protocol("the holder reported ready without its pid".into()),
                );
            };
            // Not reaped yet, so its pid cannot have been reused here.
            match proc_stat(pid) {
                Some((state, start_time)) if state != 'Z' => Ok(Holder { pid, start_time }),
                _ => fail(&mut child, RealError::HolderGone { pid }),
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
            fail(
                &mut child,
                RealError::HolderFailed {
                    message,
                    log: spec.log_path.clone(),
                },
            )
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

/// The holder first writes `P<pid>\n` (its pid as we see it), then a
/// single 0 byte when ready or its error text, then closes the pipe; the
/// first process writes only an error of its own. Read to end-of-file
/// (both have closed) or the timeout.
fn read_readiness(fd: OwnedFd) -> (Option<u32>, io::Result<Readiness>) {
    let mut file = std::fs::File::from(fd);
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let pid_of = |got: &[u8]| -> Option<u32> {
        let rest = got.strip_prefix(b"P")?;
        let end = rest.iter().position(|&b| b == b'\n')?;
        std::str::from_utf8(&rest[..end]).ok()?.parse().ok()
    };
    loop {
        match wait_readable(file.as_fd(), (HOLDER_READY_TIMEOUT_SECS * 1000) as i32) {
            Ok(true) => {}
            Ok(false) => return (pid_of(&got), Ok(Readiness::TimedOut)),
            Err(e) => return (pid_of(&got), Err(e)),
        }
        let n = match file.read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return (pid_of(&got), Err(e)),
        };
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
    }
    let pid = pid_of(&got);
    let body = match (pid, got.iter().position(|&b| b == b'\n')) {
        (Some(_), Some(end)) => &got[end + 1..],
        _ => &got[..],
    };
    let outcome = match body {
        [] => Readiness::Died,
        [0] => Readiness::Ready,
        text => Readiness::Failed(String::from_utf8_lossy(text).trim().to_string()),
    };
    (pid, Ok(outcome))
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
    hosts: Option<PathBuf>,
    pid_namespace: bool,
    hide: Vec<PathBuf>,
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
        Some("host") => HolderMode::Host,
        Some("share") => HolderMode::ShareNetns(Holder {
            pid: num("share-pid")? as u32,
            start_time: num("share-start")?,
        }),
        other => return Err(RealError::Usage(format!("holder: bad mode {other:?}"))),
    };
    let hide = (0..)
        .map_while(|i| get(&format!("hide{i}")).map(PathBuf::from))
        .collect();
    Ok(HolderArgs {
        ready_fd: num("ready-fd")? as i32,
        mode,
        hostname: get("hostname").map(str::to_string),
        resolv: get("resolv").map(PathBuf::from),
        hosts: get("hosts").map(PathBuf::from),
        pid_namespace: get("pidns") == Some("1"),
        hide,
    })
}

/// The name a holder takes once the daemon has its readiness report: a
/// restarting daemon adopts a holder its predecessor never recorded only if
/// it got that far (one still setting up will fail to report and exit).
const READY_NAME: &str = "swy-holder";

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
    // handled by the wait below rather than killing us half-way; SIGCHLD
    // too, to reap orphans (init of a PID namespace inherits them).
    let mut waited = SigSet::empty();
    waited.add(Signal::SIGTERM);
    waited.add(Signal::SIGINT);
    waited.add(Signal::SIGCHLD);
    if let Err(e) = waited.thread_block() {
        eprintln!("switchyard holder: cannot block signals: {e}");
        return 1;
    }
    let mut ready = ready;
    let fail = |ready: &mut std::fs::File, e: RealError| -> i32 {
        let msg = e.to_string();
        eprintln!("switchyard holder: {msg}");
        let _ = ready.write_all(msg.as_bytes());
        1
    };
    if let Err(e) = create_namespaces(&parsed) {
        return fail(&mut ready, e);
    }
    // The holder proper: a sibling (our parent, the spawner, is its parent
    // and reaps it), and init of the new PID namespace when there is one.
    // SAFETY: a raw clone like fork(2), in a single-threaded process.
    let child = unsafe {
        libc::syscall(
            libc::SYS_clone,
            (libc::CLONE_PARENT | libc::SIGCHLD) as libc::c_long,
            0,
            0,
            0,
            0,
        )
    };
    if child < 0 {
        return fail(
            &mut ready,
            RealError::os(
                "cannot start the holder process",
                io::Error::last_os_error(),
                "",
            ),
        );
    }
    if child > 0 {
        // Done: the holder reports for itself.
        return 0;
    }
    if let Err(e) = set_up(&parsed, &mut ready) {
        return fail(&mut ready, e);
    }
    if ready.write_all(&[0]).is_err() {
        // Nobody is waiting for us: the daemon gave up or died.
        return 1;
    }
    drop(ready);
    let _ = nix::sys::prctl::set_name(&std::ffi::CString::new(READY_NAME).expect("no NUL"));
    eprintln!(
        "switchyard holder {}: sandbox ready",
        host_pid().unwrap_or(0)
    );
    wait_for_stop(&waited, parsed.pid_namespace)
}

/// Sleeps until SIGTERM or SIGINT from outside the sandbox, reaping
/// children meanwhile. As init of the sandbox's PID namespace, a stop
/// signal sent from inside (a sender pid we can see) is ignored, as init
/// ignores signals it has no handler for: only the daemon stops a sandbox.
fn wait_for_stop(waited: &SigSet, pid_namespace: bool) -> i32 {
    loop {
        // SAFETY: an all-zero siginfo is valid for sigwaitinfo to fill.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: waits for one of the blocked signals in `waited`.
        let sig = unsafe { libc::sigwaitinfo(waited.as_ref(), &mut info) };
        if sig < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            eprintln!("switchyard holder: sigwait failed: {e}");
            return 1;
        }
        if sig == libc::SIGCHLD {
            // SAFETY: non-blocking waitpid on any child.
            while unsafe { libc::waitpid(-1, std::ptr::null_mut(), libc::WNOHANG) } > 0 {}
            continue;
        }
        // SAFETY: si_pid is valid for signals sent with kill(2).
        let sender = unsafe { info.si_pid() };
        if pid_namespace && sender > 0 {
            eprintln!(
                "switchyard holder: ignoring signal {sig} from pid {sender} inside the sandbox"
            );
            continue;
        }
        eprintln!("switchyard holder: signal {sig}, exiting");
        return 0;
    }
}

/// Our pid as the spawner sees it: `/proc/self` of the host's `/proc`
/// (before ours is mounted; `getpid` says 1 in a new PID namespace).
fn host_pid() -> Option<u32> {
    std::fs::read_link("/proc/self")
        .ok()?
        .to_str()?
        .parse()
        .ok()
}

/// In the first process: the namespaces (the PID one takes effect for the
/// holder cloned next).
fn create_namespaces(a: &HolderArgs) -> Result<()> {
    // Do not pin whatever directory the daemon ran in.
    let _ = nix::unistd::chdir("/");
    let euid = nix::unistd::geteuid().as_raw();
    let egid = nix::unistd::getegid().as_raw();
    let pid = if a.pid_namespace {
        CloneFlags::CLONE_NEWPID
    } else {
        CloneFlags::empty()
    };
    match &a.mode {
        HolderMode::Private | HolderMode::None | HolderMode::Host => {
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
            let own = if a.mode == HolderMode::Host {
                CloneFlags::CLONE_NEWNS
            } else {
                CloneFlags::CLONE_NEWNET | CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWUTS
            };
            nix::sched::unshare(own | pid).map_err(|e| {
                RealError::os(
                    "cannot create the sandbox's namespaces (network, mount, UTS, PID)",
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
                    pid: false,
                },
            )?;
            fds.join_all()?;
            nix::sched::unshare(CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWUTS | pid).map_err(
                |e| RealError::os("cannot create the mount, UTS and PID namespaces", e, ""),
            )?;
        }
    }
    Ok(())
}

/// In the holder: everything between its start and readiness.
fn set_up(a: &HolderArgs, ready: &mut std::fs::File) -> Result<()> {
    // Own session and process group: a Ctrl-C or a kill of the daemon's
    // group must not take the sandboxes down with it.
    let _ = nix::unistd::setsid();
    let pid = host_pid().ok_or_else(|| {
        RealError::os(
            "cannot read /proc/self",
            io::Error::last_os_error(),
            "/proc must be mounted",
        )
    })?;
    ready
        .write_all(format!("P{pid}\n").as_bytes())
        .map_err(|e| RealError::os("cannot report to the daemon", e, ""))?;
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
        bind_etc_file(src, "/etc/resolv.conf")?;
    }
    if let Some(src) = &a.hosts {
        bind_etc_file(src, "/etc/hosts")?;
    }
    for path in &a.hide {
        hide(path)?;
    }
    if a.pid_namespace {
        nix::mount::mount(
            Some("proc"),
            "/proc",
            Some("proc"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            None::<&str>,
        )
        .map_err(|e| {
            RealError::os(
                "cannot mount /proc for the sandbox's PID namespace",
                e,
                "rootless, the host's /proc must be fully visible (no directories mounted over parts of it); or run with --pid host",
            )
        })?;
    }
    if let Some(h) = &a.hostname {
        nix::unistd::sethostname(h)
            .map_err(|e| RealError::os(format!("cannot set the hostname to {h:?}"), e, ""))?;
    }
    if matches!(a.mode, HolderMode::Private | HolderMode::None) {
        let nl = Netlink::open_here()?;
        let lo = nl.link_index("lo")?;
        nl.set_link_up(lo)?;
        // Unprivileged ICMP sockets for every group, as Docker sets in
        // its containers: `ping` works without CAP_NET_RAW (rootless,
        // where the binary's file capability does not apply). A kernel
        // that refuses leaves ping to raw sockets; nothing else depends
        // on it.
        if let Err(e) = std::fs::write("/proc/sys/net/ipv4/ping_group_range", "0 2147483647") {
            eprintln!("holder: cannot enable unprivileged ping: {e}");
        }
    }
    Ok(())
}

/// Covers `path` inside the sandbox: an empty read-only tmpfs over a
/// directory, `/dev/null` over anything else. A path that no longer exists
/// (inside a directory covered already) needs nothing.
fn hide(path: &Path) -> Result<()> {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return Ok(());
    };
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    let done = if meta.is_dir() {
        nix::mount::mount(
            Some("tmpfs"),
            path,
            Some("tmpfs"),
            flags | MsFlags::MS_RDONLY,
            Some("size=4k,mode=0555"),
        )
    } else {
        nix::mount::mount(
            Some("/dev/null"),
            path,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
    };
    done.map_err(|e| {
        RealError::os(
            format!("cannot hide {} inside the sandbox", path.display()),
            e,
            "",
        )
    })
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

/// Bind-mounts `src` over `etc` (`/etc/resolv.conf`, `/etc/hosts`), or
/// over the file it links to when it is a symlink (systemd-resolved's
/// stub, for one): mounting onto a symlink is not possible, and the link
/// resolves inside the sandbox to the same place.
fn bind_etc_file(src: &Path, etc: &str) -> Result<()> {
    let etc = Path::new(etc);
    let target = match std::fs::symlink_metadata(etc) {
        Ok(m) if m.file_type().is_symlink() => std::fs::canonicalize(etc).map_err(|e| {
            RealError::os(
                format!("{} is a symlink whose target cannot be resolved", etc.display()),
                e,
                "make sure the file it points to exists on the host (e.g. start systemd-resolved or replace the link with a file)",
            )
        })?,
        Ok(_) => etc.to_path_buf(),
        Err(e) => {
            return Err(RealError::os(
                format!(
                    "{} does not exist on the host, so there is nothing to mount the sandbox's over",
                    etc.display()
                ),
                e,
                &format!("create an empty {} on the host", etc.display()),
            ))
        }
    };
    if !src.is_file() {
        return Err(RealError::Unsupported(format!(
            "{} source {} is not a regular file: write the sandbox's file before starting it",
            etc.display(),
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
