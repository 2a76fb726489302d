//! Running a program inside a sandbox: `switchyard run` and `exec` start the
//! user's command this way, so its stdio is simply the user's terminal.
//!
//! The namespace descriptors are opened before `fork` (opening allocates)
//! and moved into the `pre_exec` closure, which only calls `setns` and
//! `chdir` — both async-signal-safe, as code between `fork` and `exec` of a
//! multi-threaded parent must be. The forked child is single-threaded, so
//! joining a user namespace works there even when the caller has threads.

use super::error::Result;
use super::ns::{self, Wanted};
use super::NetnsTarget;
use std::ffi::{CString, OsStr};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::process::CommandExt;
use std::process::Command;

/// Which of a sandbox's namespaces a command joins.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Join {
    /// The user namespace, when the sandbox has its own (rootless); it is
    /// skipped when it is the caller's. Needed before any other for a
    /// rootless sandbox.
    pub user: bool,
    /// The mount namespace (the sandbox's `/etc/resolv.conf`).
    pub mount: bool,
    /// The UTS namespace (the sandbox's hostname).
    pub uts: bool,
    /// The network namespace.
    pub net: bool,
}

impl Join {
    /// Everything: what a container's command gets.
    pub const ALL: Join = Join {
        user: true,
        mount: true,
        uts: true,
        net: true,
    };
    /// Just the network (and, when needed, user) namespace: for namespaces
    /// given by path, which have nothing else.
    pub const NET: Join = Join {
        user: true,
        mount: false,
        uts: false,
        net: true,
    };
}

/// A [`Command`] for `program` that, once spawned, runs inside `target`'s
/// namespaces: user first (when it is not ours), then net, UTS and mount.
/// After joining the mount namespace the child returns to the caller's
/// working directory if that path exists inside, else to `/`. Inside a
/// rootless sandbox the command runs as uid 0 of its user namespace (the
/// caller's uid is mapped to 0) with no further setup.
pub fn command_in(target: &NetnsTarget, join: Join, program: impl AsRef<OsStr>) -> Result<Command> {
    let fds = ns::open_target(
        target,
        Wanted {
            user: join.user,
            net: join.net,
            uts: join.uts,
            mount: join.mount,
        },
    )?;
    let cwd = std::env::current_dir()
        .ok()
        .and_then(|p| CString::new(p.into_os_string().into_vec()).ok());
    let mut cmd = Command::new(program);
    let steps = [
        (fds.user, libc::CLONE_NEWUSER),
        (fds.net, libc::CLONE_NEWNET),
        (fds.uts, libc::CLONE_NEWUTS),
        (fds.mount, libc::CLONE_NEWNS),
    ];
    let joins_mount = steps[3].0.is_some();
    // SAFETY: the closure calls only setns and chdir (async-signal-safe)
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
            Ok(())
        });
    }
    Ok(cmd)
}
