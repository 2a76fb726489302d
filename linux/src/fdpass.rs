//! Passing file descriptors between processes: over a `SOCK_SEQPACKET`
//! socket pair with `SCM_RIGHTS`, and by inheritance into a re-executed
//! helper.
//!
//! Why seqpacket: each request and reply is one message with its boundaries
//! kept, so the tiny protocol in [`super::nsenter`] needs no framing, and a
//! closed peer shows up as a zero-length read.

use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};
use std::io::{self, IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::Command;

/// Largest message either side sends; requests and replies are small JSON.
pub(crate) const MAX_MESSAGE: usize = 64 * 1024;

/// Sends one message, with `fd` attached via `SCM_RIGHTS` when given.
pub(crate) fn send_message(
    sock: BorrowedFd<'_>,
    bytes: &[u8],
    fd: Option<BorrowedFd<'_>>,
) -> io::Result<()> {
    let iov = [IoSlice::new(bytes)];
    let raw: [RawFd; 1];
    let mut cmsgs = Vec::new();
    if let Some(fd) = fd {
        raw = [fd.as_raw_fd()];
        cmsgs.push(ControlMessage::ScmRights(&raw));
    }
    loop {
        match sendmsg::<()>(sock.as_raw_fd(), &iov, &cmsgs, MsgFlags::MSG_NOSIGNAL, None) {
            Ok(n) if n == bytes.len() => return Ok(()),
            Ok(n) => {
                return Err(io::Error::other(format!(
                    "short seqpacket send: {n} of {} bytes",
                    bytes.len()
                )))
            }
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Receives one message into `buf`; returns its length (0 when the peer has
/// closed) and the descriptor that came with it, close-on-exec.
pub(crate) fn recv_message(
    sock: BorrowedFd<'_>,
    buf: &mut [u8],
) -> io::Result<(usize, Option<OwnedFd>)> {
    let mut space = nix::cmsg_space!([RawFd; 4]);
    loop {
        let mut iov = [IoSliceMut::new(buf)];
        let msg = match recvmsg::<()>(
            sock.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Ok(m) => m,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        };
        let mut received: Vec<OwnedFd> = Vec::new();
        let cmsgs = msg.cmsgs().map_err(io::Error::from)?;
        for c in cmsgs {
            if let ControlMessageOwned::ScmRights(fds) = c {
                // SAFETY: the kernel just installed these descriptors in our
                // table for us; nobody else owns them.
                received.extend(
                    fds.into_iter()
                        .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
                );
            }
        }
        if msg.flags.contains(MsgFlags::MSG_TRUNC) {
            return Err(io::Error::other(
                "seqpacket message larger than the receive buffer",
            ));
        }
        let n = msg.bytes;
        // More than one descriptor is a protocol violation; dropping the
        // extras closes them.
        return Ok((n, received.into_iter().next()));
    }
}

/// Waits until `fd` is readable (or hung up); false on timeout.
pub(crate) fn wait_readable(fd: BorrowedFd<'_>, timeout_ms: i32) -> io::Result<bool> {
    let mut pfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    loop {
        // SAFETY: one valid pollfd.
        let r = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        return Ok(r > 0);
    }
}

/// Arranges for `fd` (close-on-exec in this process, so no other child
/// inherits it) to stay open across `exec` in the child `cmd` spawns, under
/// the same number, which the child is told on its command line.
pub(crate) fn inherit_fd(cmd: &mut Command, fd: RawFd) {
    // SAFETY: fcntl is async-signal-safe; the closure touches no memory
    // shared with other threads.
    unsafe {
        cmd.pre_exec(move || {
            if libc::fcntl(fd, libc::F_SETFD, 0) < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Takes ownership of a descriptor number a helper was told about on its
/// command line, after checking it is open.
pub(crate) fn adopt_inherited_fd(fd: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: F_GETFD only inspects the descriptor table.
    if fd < 3 || unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
        return Err(io::Error::other(format!(
            "inherited descriptor {fd} is not open"
        )));
    }
    // Keep it away from anything this helper might exec.
    // SAFETY: as above.
    unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    // SAFETY: the parent handed this descriptor to us alone.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}
