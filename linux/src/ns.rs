//! Namespace plumbing shared by the holder, the namespace helper and
//! [`super::exec`]: which namespaces exist, how to tell two apart, how to
//! find the user namespace that owns a network namespace, and how to open a
//! target's namespaces so that they can be joined later.

use super::error::{RealError, Result};
use super::holder::Holder;
use super::NetnsTarget;
use nix::sched::CloneFlags;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::Path;

/// The kinds of namespace a sandbox has.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NsKind {
    /// User namespace: only rootless sandboxes have their own.
    User,
    /// Network namespace: interfaces, addresses, routes, sockets.
    Net,
    /// Mount namespace: the bind-mounted `/etc/resolv.conf`.
    Mount,
    /// UTS namespace: the hostname.
    Uts,
}

impl NsKind {
    /// The entry under `/proc/PID/ns/`.
    pub fn proc_name(self) -> &'static str {
        match self {
            NsKind::User => "user",
            NsKind::Net => "net",
            NsKind::Mount => "mnt",
            NsKind::Uts => "uts",
        }
    }

    /// The `CLONE_NEW*` flag `setns` wants for it.
    pub(crate) fn clone_flag(self) -> CloneFlags {
        match self {
            NsKind::User => CloneFlags::CLONE_NEWUSER,
            NsKind::Net => CloneFlags::CLONE_NEWNET,
            NsKind::Mount => CloneFlags::CLONE_NEWNS,
            NsKind::Uts => CloneFlags::CLONE_NEWUTS,
        }
    }

    fn describe(self) -> &'static str {
        match self {
            NsKind::User => "user namespace",
            NsKind::Net => "network namespace",
            NsKind::Mount => "mount namespace",
            NsKind::Uts => "UTS namespace",
        }
    }
}

/// Opens a namespace file read-only, close-on-exec.
pub(crate) fn open_ns_file(path: &Path) -> io::Result<OwnedFd> {
    File::open(path).map(OwnedFd::from)
}

/// (device, inode) of a namespace file: equal pairs are the same namespace.
pub(crate) fn ns_identity(fd: BorrowedFd<'_>) -> io::Result<(u64, u64)> {
    let st = nix::sys::stat::fstat(fd).map_err(io::Error::from)?;
    #[allow(clippy::unnecessary_cast)] // dev_t/ino_t widths differ across targets
    Ok((st.st_dev as u64, st.st_ino as u64))
}

/// True when `fd` is the calling thread's own namespace of that kind.
pub(crate) fn is_own(fd: BorrowedFd<'_>, kind: NsKind) -> io::Result<bool> {
    let own = open_ns_file(Path::new(&format!(
        "/proc/thread-self/ns/{}",
        kind.proc_name()
    )))?;
    Ok(ns_identity(fd)? == ns_identity(own.as_fd())?)
}

/// The user namespace that owns the namespace `fd` (`NS_GET_USERNS`).
pub(crate) fn owning_userns(fd: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    // SAFETY: NS_GET_USERNS takes no argument and returns a new descriptor.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::NS_GET_USERNS) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the ioctl returned a fresh descriptor that we now own.
    let owned = unsafe { OwnedFd::from_raw_fd(r) };
    // The new descriptor is not close-on-exec; make it so.
    // SAFETY: plain fcntl on a descriptor we own.
    unsafe { libc::fcntl(owned.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) };
    Ok(owned)
}

/// The kind of namespace `fd` refers to (`NS_GET_NSTYPE`).
pub(crate) fn ns_type(fd: BorrowedFd<'_>) -> io::Result<libc::c_int> {
    // SAFETY: NS_GET_NSTYPE takes no argument.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::NS_GET_NSTYPE) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// Number of threads in this process, from `/proc/self/status`.
pub(crate) fn thread_count() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| {
                    l.strip_prefix("Threads:")
                        .map(|v| v.trim().parse::<u32>().ok())
                })
                .flatten()
        })
        .unwrap_or(0)
}

/// Fails unless the process is single-threaded (needed to enter or create
/// a user namespace).
pub(crate) fn require_single_thread(what: &'static str) -> Result<()> {
    let threads = thread_count();
    if threads > 1 {
        return Err(RealError::NotSingleThreaded { what, threads });
    }
    Ok(())
}

/// Joins a namespace, turning failures into advice.
pub(crate) fn join(fd: BorrowedFd<'_>, kind: NsKind, target: &str) -> Result<()> {
    nix::sched::setns(fd, kind.clone_flag()).map_err(|e| {
        let hint = match (kind, e) {
            (NsKind::User, nix::errno::Errno::EINVAL) => {
                "; a multi-threaded process cannot join a user namespace (switchyard uses a single-threaded helper for this; report a bug if you see it)"
            }
            (NsKind::User, nix::errno::Errno::EPERM) => {
                "; only root, or the user who created that user namespace, may join it"
            }
            (_, nix::errno::Errno::EPERM) => {
                "; it belongs to another user (e.g. made by root with `ip netns add`): run as root, or attach namespaces your own user created"
            }
            _ => "",
        };
        RealError::Join { what: format!("{} of {target}", kind.describe()), source: e.into(), hint }
    })
}

/// The namespaces of a target, opened and pinned, ready to be joined in the
/// order user, net, uts, mount. `user` is present only when it differs from
/// the caller's (the rootless case): joining one's own user namespace is an
/// error.
pub(crate) struct TargetFds {
    /// The owning user namespace, when it is not ours.
    pub user: Option<OwnedFd>,
    /// The network namespace.
    pub net: Option<OwnedFd>,
    /// The UTS namespace (holders only).
    pub uts: Option<OwnedFd>,
    /// The mount namespace (holders only).
    pub mount: Option<OwnedFd>,
    /// How to name the target in messages.
    pub description: String,
}

/// Which namespaces to open from a target.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Wanted {
    pub user: bool,
    pub net: bool,
    pub uts: bool,
    pub mount: bool,
}

/// Opens what `wanted` asks for from `target`. For a holder the pid's start
/// time is checked after opening, so a reused pid is never mistaken for the
/// sandbox.
pub(crate) fn open_target(target: &NetnsTarget, wanted: Wanted) -> Result<TargetFds> {
    match target {
        NetnsTarget::Holder(h) => open_holder(h, wanted),
        NetnsTarget::Path(p) => {
            if wanted.uts || wanted.mount {
                return Err(RealError::Unsupported(format!(
                    "{} names only a network namespace: it has no mount or UTS namespace to join; join just the network (and user) namespace",
                    p.display()
                )));
            }
            let description = format!("{}", p.display());
            let net = open_ns_file(p).map_err(|e| {
                let hint = if e.kind() == io::ErrorKind::NotFound {
                    "create it first (ip netns add NAME makes /run/netns/NAME) or give /proc/PID/ns/net of a running process"
                } else {
                    ""
                };
                RealError::os(format!("cannot open network namespace {description}"), e, hint)
            })?;
            match ns_type(net.as_fd()) {
                Ok(t) if t == libc::CLONE_NEWNET => {}
                Ok(_) | Err(_) => {
                    return Err(RealError::Unsupported(format!(
                        "{description} is not a network namespace: give a path like /run/netns/NAME or /proc/PID/ns/net"
                    )))
                }
            }
            let user = if wanted.user {
                foreign_owner(net.as_fd(), &description)?
            } else {
                None
            };
            Ok(TargetFds {
                user,
                net: wanted.net.then_some(net),
                uts: None,
                mount: None,
                description,
            })
        }
    }
}

/// The user namespace owning `fd`, if it is not the caller's.
fn foreign_owner(fd: BorrowedFd<'_>, description: &str) -> Result<Option<OwnedFd>> {
    let owner = owning_userns(fd).map_err(|e| {
        RealError::os(
            format!("cannot find the user namespace owning {description}"),
            e,
            "the kernel must support NS_GET_USERNS (Linux 4.9 or later), and the namespace must belong to your user or a namespace below it",
        )
    })?;
    let own = is_own(owner.as_fd(), NsKind::User)
        .map_err(|e| RealError::os("cannot inspect this process's user namespace", e, ""))?;
    Ok(if own { None } else { Some(owner) })
}

fn open_holder(h: &Holder, wanted: Wanted) -> Result<TargetFds> {
    let description = format!("sandbox holder {}", h.pid);
    let open = |kind: NsKind| -> Result<OwnedFd> {
        open_ns_file(&h.ns_path(kind)).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                RealError::HolderGone { pid: h.pid }
            } else {
                RealError::os(
                    format!("cannot open the {} of {description}", kind.describe()),
                    e,
                    "",
                )
            }
        })
    };
    let net = open(NsKind::Net)?;
    let user = if wanted.user {
        let u = open(NsKind::User)?;
        let own = is_own(u.as_fd(), NsKind::User)
            .map_err(|e| RealError::os("cannot inspect this process's user namespace", e, ""))?;
        (!own).then_some(u)
    } else {
        None
    };
    let uts = if wanted.uts {
        Some(open(NsKind::Uts)?)
    } else {
        None
    };
    let mount = if wanted.mount {
        Some(open(NsKind::Mount)?)
    } else {
        None
    };
    // The descriptors now pin the namespaces; make sure they are the
    // sandbox's and not those of a process that inherited a reused pid.
    if !h.is_alive() {
        return Err(RealError::HolderGone { pid: h.pid });
    }
    Ok(TargetFds {
        user,
        net: wanted.net.then_some(net),
        uts,
        mount,
        description,
    })
}

impl TargetFds {
    /// Joins everything that was opened, user namespace first. For use in a
    /// single-threaded helper (not in `pre_exec`: it allocates).
    pub(crate) fn join_all(&self) -> Result<()> {
        if self.user.is_some() {
            require_single_thread("joining a user namespace")?;
        }
        let steps = [
            (&self.user, NsKind::User),
            (&self.net, NsKind::Net),
            (&self.uts, NsKind::Uts),
            (&self.mount, NsKind::Mount),
        ];
        for (fd, kind) in steps {
            if let Some(fd) = fd {
                join(fd.as_fd(), kind, &self.description)?;
            }
        }
        Ok(())
    }
}
