//! Running a program inside a sandbox: `switchyard run` and `exec` start the
//! user's command this way, so its stdio is simply the user's terminal.
//!
//! The namespace descriptors are opened before `fork` (opening allocates)
//! and moved into the `pre_exec` closure, which only makes system calls —
//! `setns`, `chdir`, `prctl`, `capset`, `clone`, `waitpid` — as code between
//! `fork` and `exec` of a multi-threaded parent must. The forked child is
//! single-threaded, so joining a user namespace works there even when the
//! caller has threads.
//!
//! Joining a PID namespace only moves the caller's *future children* into
//! it, so when the sandbox has its own, the forked child forks once more:
//! the grandchild (now inside, as a child of the sandbox's init) execs the
//! program, and the child stays outside as a small waiter that forwards
//! signals sent to it and exits with the program's status. The pid the
//! caller sees is the waiter's; the program dies with it.

use super::caps::{self, Capabilities};
use super::error::Result;
use super::ns::{self, Wanted};
use super::NetnsTarget;
use std::ffi::{CString, OsStr};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::sync::atomic::{AtomicI32, Ordering};

/// Which of a sandbox's namespaces a command joins. Namespaces the caller
/// already shares with the sandbox (the host network of a `--network host`
/// container, the host PID namespace with `--pid host`) are left as they
/// are.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Join {
    /// The user namespace, when the sandbox has its own (rootless); it is
    /// skipped when it is the caller's. Needed before any other for a
    /// rootless sandbox.
    pub user: bool,
    /// The mount namespace (the sandbox's `/etc/resolv.conf`, its `/proc`,
    /// the daemon's directories hidden).
    pub mount: bool,
    /// The UTS namespace (the sandbox's hostname).
    pub uts: bool,
    /// The network namespace.
    pub net: bool,
    /// The PID namespace (the command sees only the sandbox's processes).
    pub pid: bool,
}

impl Join {
    /// Everything: what a container's command gets.
    pub const ALL: Join = Join {
        user: true,
        mount: true,
        uts: true,
        net: true,
        pid: true,
    };
    /// Just the network (and, when needed, user) namespace: for namespaces
    /// given by path, which have nothing else.
    pub const NET: Join = Join {
        user: true,
        mount: false,
        uts: false,
        net: true,
        pid: false,
    };
}

/// A [`Command`] for `program` that, once spawned, runs inside `target`'s
/// namespaces: user first (when it is not ours), then net, UTS, PID and
/// mount. After joining the mount namespace the child returns to the
/// caller's working directory if that path exists inside, else to `/`.
/// Inside a rootless sandbox the command runs as uid 0 of its user
/// namespace (the caller's uid is mapped to 0). The command keeps the
/// caller's capabilities; see [`command_in_confined`] for a container's.
pub fn command_in(target: &NetnsTarget, join: Join, program: impl AsRef<OsStr>) -> Result<Command> {
    build(target, join, None, program)
}

/// [`command_in`], with the command narrowed to `caps` (bounding,
/// effective, permitted; inheritable and ambient cleared) before `exec`:
/// what a container's command gets.
pub fn command_in_confined(
    target: &NetnsTarget,
    join: Join,
    caps: Capabilities,
    program: impl AsRef<OsStr>,
) -> Result<Command> {
    build(target, join, Some(caps), program)
}

fn build(
    target: &NetnsTarget,
    join: Join,
    caps: Option<Capabilities>,
    program: impl AsRef<OsStr>,
) -> Result<Command> {
    let fds = ns::open_target(
        target,
        Wanted {
            user: join.user,
            net: join.net,
            uts: join.uts,
            mount: join.mount,
            pid: join.pid,
        },
    )?;
    let cwd = std::env::current_dir()
        .ok()
        .and_then(|p| CString::new(p.into_os_string().into_vec()).ok());
    let last = caps::last_cap();
    // Nothing to drop when the set covers everything (`--privileged`).
    let caps = caps.filter(|c| !c.covers(last));
    let mut cmd = Command::new(program);
    let joins_pid = fds.pid.is_some();
    let joins_mount = fds.mount.is_some();
    let steps = [
        (fds.user, libc::CLONE_NEWUSER),
        (fds.net, libc::CLONE_NEWNET),
        (fds.uts, libc::CLONE_NEWUTS),
        (fds.pid, libc::CLONE_NEWPID),
        (fds.mount, libc::CLONE_NEWNS),
    ];
    // SAFETY: the closure makes only system calls (setns, chdir, prctl,
    // capget/capset, clone, sigaction, waitpid, close_range, kill, _exit)
    // on descriptors and a string allocated before fork; it allocates
    // nothing (`last_os_error` does not).
    unsafe {
        cmd.pre_exec(move || {
            for (fd, flag) in &steps {
                if let Some(fd) = fd {
                    if libc::setns(fd.as_raw_fd(), *flag) != 0 {
                        return Err(io::Error::last_os_error());
                    }
                }
            }
            if joins_mount {
                let back = cwd.as_ref().is_some_and(|c| libc::chdir(c.as_ptr()) == 0);
                if !back && libc::chdir(c"/".as_ptr()) != 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            if let Some(caps) = caps {
                caps.apply_in_child(last)?;
            }
            if joins_pid {
                fork_into_pid_namespace()?;
            }
            Ok(())
        });
    }
    Ok(cmd)
}

/// The program's pid, for the waiter's signal handler.
static PROGRAM: AtomicI32 = AtomicI32::new(0);

/// Signals a user (or `kill`) may send the command's pid: passed on to the
/// program. Terminal-generated ones (Ctrl-C) reach the whole process group,
/// the program included, and are not passed on a second time.
const FORWARDED: [libc::c_int; 6] = [
    libc::SIGTERM,
    libc::SIGINT,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
];

extern "C" fn forward(sig: libc::c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo to SA_SIGINFO handlers.
    let code = unsafe { (*info).si_code };
    // SI_USER, SI_QUEUE, SI_TKILL are <= 0; the kernel's own (a terminal's
    // Ctrl-C, SI_KERNEL) are positive.
    if code <= 0 {
        let pid = PROGRAM.load(Ordering::Relaxed);
        if pid > 0 {
            // SAFETY: kill is async-signal-safe.
            unsafe { libc::kill(pid, sig) };
        }
    }
}

/// Forks after `setns(CLONE_NEWPID)`: returns in the child (inside the PID
/// namespace) and never in the parent, which waits for it, forwarding
/// signals, and exits as it did.
///
/// # Safety
/// Only for a `pre_exec` closure: the calling process must be a
/// single-threaded child about to `exec`.
unsafe fn fork_into_pid_namespace() -> io::Result<()> {
    // A raw clone, like fork(2) but without the C library's fork handlers.
    let child = libc::syscall(libc::SYS_clone, libc::SIGCHLD as libc::c_long, 0, 0, 0, 0);
    if child < 0 {
        return Err(io::Error::last_os_error());
    }
    if child == 0 {
        // The program must not outlive its waiter (whose pid is the one
        // recorded and signalled).
        libc::prctl(
            libc::PR_SET_PDEATHSIG,
            libc::SIGKILL as libc::c_ulong,
            0,
            0,
            0,
        );
        return Ok(());
    }
    let child = child as libc::pid_t;
    PROGRAM.store(child, Ordering::Relaxed);
    for sig in FORWARDED {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = forward as *const () as usize;
        sa.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART;
        libc::sigemptyset(&mut sa.sa_mask);
        libc::sigaction(sig, &sa, std::ptr::null_mut());
    }
    // Hold nothing the program's caller waits on: std's exec-status pipe
    // (spawn returns once every copy of it is closed), pipes to the
    // program's output beyond stdio.
    if libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) != 0 {
        for fd in 3..1024 {
            libc::close(fd);
        }
    }
    let mut status = 0;
    loop {
        let r = libc::waitpid(child, &mut status, 0);
        if r == child {
            break;
        }
        if r < 0 && *libc::__errno_location() == libc::EINTR {
            continue;
        }
        libc::_exit(127);
    }
    if libc::WIFEXITED(status) {
        libc::_exit(libc::WEXITSTATUS(status));
    }
    if libc::WIFSIGNALED(status) {
        // Die the same way, so the caller sees the same status.
        let sig = libc::WTERMSIG(status);
        libc::signal(sig, libc::SIG_DFL);
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, sig);
        libc::sigprocmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
        libc::kill(libc::getpid(), sig);
        libc::_exit(128 + sig);
    }
    libc::_exit(127)
}
