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
    /// PID namespace: the holder is its init, so the sandbox's processes
    /// see only each other and all die with it.
    Pid,
}

impl NsKind {
    /// The entry under `/proc/PID/ns/`.
    pub fn proc_name(self) -> &'static str {
        match self {
            NsKind::User => "user",
            NsKind::Net => "net",
            NsKind::Mount => "mnt",
            NsKind::Uts => "uts",
            NsKind::Pid => "pid",
        }
    }

    /// The `CLONE_NEW*` flag `setns` wants for it.
    pub(crate) fn clone_flag(self) -> CloneFlags {
        match self {
            NsKind::User => CloneFlags::CLONE_NEWUSER,
            NsKind::Net => CloneFlags::CLONE_NEWNET,
            NsKind::Mount => CloneFlags::CLONE_NEWNS,
            NsKind::Uts => CloneFlags::CLONE_NEWUTS,
            NsKind::Pid => CloneFlags::CLONE_NEWPID,
        }
    }

    fn describe(self) -> &'static str {
        match self {
            NsKind::User => "user namespace",
            NsKind::Net => "network namespace",
            NsKind::Mount => "mount namespace",
            NsKind::Uts => "UTS namespace",
            NsKind::Pid => "PID namespace",
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
/// order user, net, uts, pid, mount. For a holder, each is present only when
/// it differs from the caller's: joining one's own user namespace is an
/// error, and a sandbox on the host network (or with `--pid host`) shares
/// those namespaces with the caller, which a rootless caller could not
/// enter again from inside its user namespace.
pub(crate) struct TargetFds {
    /// The owning user namespace, when it is not ours.
    pub user: Option<OwnedFd>,
    /// The network namespace.
    pub net: Option<OwnedFd>,
    /// The UTS namespace (holders only).
    pub uts: Option<OwnedFd>,
    /// The mount namespace (holders only).
    pub mount: Option<OwnedFd>,
    /// The PID namespace (holders only). Joining it affects the caller's
    /// later children, not the caller.
    pub pid: Option<OwnedFd>,
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
    pub pid: bool,
}

/// Opens what `wanted` asks for from `target`. For a holder the pid's start
/// time is checked after opening, so a reused pid is never mistaken for the
/// sandbox.
pub(crate) fn open_target(target: &NetnsTarget, wanted: Wanted) -> Result<TargetFds> {
    match target {
        NetnsTarget::Holder(h) => open_holder(h, wanted),
        NetnsTarget::Path(p) => {
            if wanted.uts || wanted.mount || wanted.pid {
                return Err(RealError::Unsupported(format!(
                    "{} names only a network namespace: it has no mount or UTS namespace to join; join just the network (and user) namespace",
                    p.display()
                )));
            }
            let description = format!("{}", p.display());
            let net = open_network_namespace(p)?;
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
                pid: None,
                description,
            })
        }
    }
}

/// Opens `path` and checks that it is a network namespace. The error says
/// what to give instead: a mistaken path (`/etc/passwd`, a directory) is
/// the user's to fix, and [`RealError::NotANamespace`] lets callers say so.
pub fn open_network_namespace(path: &Path) -> Result<OwnedFd> {
    let description = format!("{}", path.display());
    let net = open_ns_file(path).map_err(|e| {
        let hint = if e.kind() == io::ErrorKind::NotFound {
            "create it first (ip netns add NAME makes /run/netns/NAME) or give /proc/PID/ns/net of a running process"
        } else {
            ""
        };
        RealError::os(format!("cannot open network namespace {description}"), e, hint)
    })?;
    match ns_type(net.as_fd()) {
        Ok(t) if t == libc::CLONE_NEWNET => Ok(net),
        _ => Err(RealError::NotANamespace { path: description }),
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
    // Only namespaces that differ from ours: the rest are already joined.
    let foreign = |want: bool, kind: NsKind| -> Result<Option<OwnedFd>> {
        if !want {
            return Ok(None);
        }
        let fd = open(kind)?;
        let own = is_own(fd.as_fd(), kind).map_err(|e| {
            RealError::os(
                format!("cannot inspect this process's {}", kind.describe()),
                e,
                "",
            )
        })?;
        Ok((!own).then_some(fd))
    };
    let user = foreign(wanted.user, NsKind::User)?;
    let net = foreign(wanted.net, NsKind::Net)?;
    let uts = foreign(wanted.uts, NsKind::Uts)?;
    let pid = foreign(wanted.pid, NsKind::Pid)?;
    let mount = foreign(wanted.mount, NsKind::Mount)?;
    // The descriptors now pin the namespaces; make sure they are the
    // sandbox's and not those of a process that inherited a reused pid.
    if !h.is_alive() {
        return Err(RealError::HolderGone { pid: h.pid });
    }
    Ok(TargetFds {
        user,
        net,
        uts,
        mount,
        pid,
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
            (&self.pid, NsKind::Pid),
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
