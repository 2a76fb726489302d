//! Namespace sessions: a single-threaded helper process that has joined a
//! sandbox's namespaces and hands back, over a `SOCK_SEQPACKET` socket,
//! descriptors that only a process *inside* can make — TAP devices, a
//! netlink socket, sockets bound to the sandbox's addresses.
//!
//! Why a process and not a thread that `setns`-es: a multi-threaded process
//! cannot join a user namespace, and a rootless sandbox has one. A
//! descriptor, once made, keeps its namespace: the daemon may read, write
//! and configure through it from any thread.
//!
//! The protocol is one JSON object per message each way; replies that carry
//! a descriptor attach it with `SCM_RIGHTS`. The helper exits when the
//! session is dropped (it reads end-of-file).

use super::error::{RealError, Result};
use super::fdpass::{
    adopt_inherited_fd, inherit_fd, recv_message, send_message, wait_readable, MAX_MESSAGE,
};
use super::netlink::Netlink;
use super::ns::{self, Wanted};
use super::tap::{self, TapOptions};
use super::{parse_kv, Holder, NetnsTarget};
use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
use serde::{Deserialize, Serialize};
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;

/// How long [`NsSession::open`] waits for the helper to report whether it
/// joined the namespaces.
pub const SESSION_READY_TIMEOUT_SECS: u64 = 5;

/// Longest wait for any one reply of the helper (creating a TAP, binding a
/// socket: milliseconds in practice).
pub const REPLY_TIMEOUT_SECS: u64 = 10;

/// Sets `SO_RCVTIMEO` on a socket (best effort: without it a read may only
/// block longer).
pub(crate) fn set_receive_timeout(fd: std::os::fd::RawFd, seconds: u64) {
    let tv = libc::timeval {
        tv_sec: seconds as libc::time_t,
        tv_usec: 0,
    };
    // SAFETY: setsockopt reads a timeval of the given size.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            &tv as *const libc::timeval as *const libc::c_void,
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum Request {
    CreateTap { name: String, options: TapOptions },
    DeleteTap { name: String },
    NetlinkSocket,
    UdpSocket { addr: SocketAddr },
    TcpListener { addr: SocketAddr },
    LinkExists { name: String },
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
enum Reply {
    Ready,
    Fd,
    Done,
    Bool { value: bool },
    Error { message: String },
}

/// A helper process inside a sandbox's namespaces, making descriptors there
/// on request. Requests are serialized; the session may be shared between
/// threads.
pub struct NsSession {
    sock: Mutex<OwnedFd>,
    child: Option<Child>,
    target: String,
}

impl std::fmt::Debug for NsSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NsSession")
            .field("target", &self.target)
            .field("helper_pid", &self.child.as_ref().map(Child::id))
            .finish()
    }
}

impl NsSession {
    /// Starts `exe __internal nsenter` (our own binary) for `target` and
    /// waits until it has joined: the owning user namespace first when it
    /// is not ours (rootless), then the network namespace.
    pub fn open(exe: &Path, target: &NetnsTarget) -> Result<NsSession> {
        let (ours, theirs) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .map_err(|e| {
            RealError::os(
                "cannot create a socket pair for the namespace helper",
                e,
                "",
            )
        })?;
        let mut cmd = Command::new(exe);
        cmd.arg("__internal")
            .arg("nsenter")
            .arg(format!("sock-fd={}", theirs.as_raw_fd()));
        let description = match target {
            NetnsTarget::Holder(h) => {
                cmd.arg("target=holder")
                    .arg(format!("pid={}", h.pid))
                    .arg(format!("start={}", h.start_time));
                format!("sandbox holder {}", h.pid)
            }
            NetnsTarget::Path(p) => {
                let s = p.to_str().ok_or_else(|| {
                    RealError::Unsupported(format!(
                        "namespace path {} is not valid UTF-8; use a plain path",
                        p.display()
                    ))
                })?;
                cmd.arg("target=path").arg(format!("path={s}"));
                s.to_string()
            }
        };
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        inherit_fd(&mut cmd, theirs.as_raw_fd());
        let child = cmd.spawn().map_err(|source| RealError::SpawnHelper {
            exe: exe.to_path_buf(),
            helper: "nsenter",
            source,
        })?;
        drop(cmd);
        drop(theirs);
        // A wedged helper must not hang the daemon's control plane: every
        // reply has to arrive within this bound.
        set_receive_timeout(ours.as_raw_fd(), REPLY_TIMEOUT_SECS);
        let mut session = NsSession {
            sock: Mutex::new(ours),
            child: Some(child),
            target: description,
        };

        let sock = session.sock.get_mut().unwrap_or_else(|p| p.into_inner());
        let ready = wait_readable(sock.as_fd(), (SESSION_READY_TIMEOUT_SECS * 1000) as i32)
            .map_err(|e| RealError::os("waiting for the namespace helper", e, ""))?;
        if !ready {
            if let Some(c) = session.child.as_mut() {
                let _ = c.kill();
            }
            return Err(RealError::SessionTimeout {
                seconds: SESSION_READY_TIMEOUT_SECS,
            });
        }
        match session.receive("joining the namespace")? {
            (Reply::Ready, _) => Ok(session),
            (other, _) => Err(RealError::Protocol(format!(
                "expected ready, got {other:?}"
            ))),
        }
    }

    /// Pid of the helper process (for diagnostics).
    pub fn helper_pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    fn receive(&self, op: &str) -> Result<(Reply, Option<OwnedFd>)> {
        let sock = self.sock.lock().unwrap_or_else(|p| p.into_inner());
        receive_on(&sock, op)
    }

    fn call(&self, op: &str, req: &Request) -> Result<(Reply, Option<OwnedFd>)> {
        let sock = self.sock.lock().unwrap_or_else(|p| p.into_inner());
        let bytes = serde_json::to_vec(req).map_err(|e| RealError::Protocol(e.to_string()))?;
        send_message(sock.as_fd(), &bytes, None).map_err(|e| match e.raw_os_error() {
            Some(libc::EPIPE) | Some(libc::ECONNRESET) => {
                RealError::SessionClosed { op: op.to_string() }
            }
            _ => RealError::os(format!("sending {op} to the namespace helper"), e, ""),
        })?;
        receive_on(&sock, op)
    }

    fn call_fd(&self, op: &str, req: &Request) -> Result<OwnedFd> {
        match self.call(op, req)? {
            (Reply::Fd, Some(fd)) => Ok(fd),
            (other, _) => Err(RealError::Protocol(format!(
                "{op}: expected a descriptor, got {other:?}"
            ))),
        }
    }

    /// Creates the TAP `name` inside the namespace — or re-attaches to the
    /// persistent TAP of that name — and returns its non-blocking
    /// descriptor. See [`super::tap`] for the vnet header and offloads.
    pub fn create_tap(&self, name: &str, options: TapOptions) -> Result<OwnedFd> {
        tap::validate_ifname(name)?;
        self.call_fd(
            &format!("create TAP {name}"),
            &Request::CreateTap {
                name: name.to_string(),
                options,
            },
        )
    }

    /// Deletes the TAP `name` (persistent or not); absent is fine. Close
    /// your own descriptors for it first, or the kernel reports it busy.
    pub fn delete_tap(&self, name: &str) -> Result<()> {
        tap::validate_ifname(name)?;
        match self.call(
            &format!("delete TAP {name}"),
            &Request::DeleteTap {
                name: name.to_string(),
            },
        )? {
            (Reply::Done, _) => Ok(()),
            (other, _) => Err(RealError::Protocol(format!("delete TAP: got {other:?}"))),
        }
    }

    /// A `NETLINK_ROUTE` socket created inside the namespace: requests on
    /// it configure the sandbox, from any thread of the caller.
    pub fn netlink_socket(&self) -> Result<OwnedFd> {
        self.call_fd("open a netlink socket", &Request::NetlinkSocket)
    }

    /// [`NsSession::netlink_socket`], wrapped in a client.
    pub fn netlink(&self) -> Result<Netlink> {
        Netlink::new(self.netlink_socket()?)
    }

    /// A UDP socket bound to `addr` inside the namespace (blocking; set it
    /// non-blocking for an async runtime). The embedded DNS server binds
    /// 127.0.0.11:53 this way, rootless included: the helper holds
    /// `CAP_NET_BIND_SERVICE` over the sandbox's namespace.
    pub fn udp_socket(&self, addr: SocketAddr) -> Result<OwnedFd> {
        self.call_fd(&format!("bind UDP {addr}"), &Request::UdpSocket { addr })
    }

    /// A listening TCP socket bound to `addr` inside the namespace
    /// (blocking, `SO_REUSEADDR`, backlog 128).
    pub fn tcp_listener(&self, addr: SocketAddr) -> Result<OwnedFd> {
        self.call_fd(
            &format!("listen on TCP {addr}"),
            &Request::TcpListener { addr },
        )
    }

    /// Whether an interface named `name` exists in the namespace.
    pub fn link_exists(&self, name: &str) -> Result<bool> {
        match self.call(
            &format!("look up {name}"),
            &Request::LinkExists {
                name: name.to_string(),
            },
        )? {
            (Reply::Bool { value }, _) => Ok(value),
            (other, _) => Err(RealError::Protocol(format!("link exists: got {other:?}"))),
        }
    }
}

fn receive_on(sock: &OwnedFd, op: &str) -> Result<(Reply, Option<OwnedFd>)> {
    let mut buf = vec![0u8; MAX_MESSAGE];
    let (n, fd) = recv_message(sock.as_fd(), &mut buf).map_err(|e| {
        RealError::os(
            format!("reading the namespace helper's answer to {op}"),
            e,
            "",
        )
    })?;
    if n == 0 {
        return Err(RealError::SessionClosed { op: op.to_string() });
    }
    let reply: Reply =
        serde_json::from_slice(&buf[..n]).map_err(|e| RealError::Protocol(e.to_string()))?;
    match reply {
        Reply::Error { message } => Err(RealError::InNamespace { message }),
        other => Ok((other, fd)),
    }
}

impl Drop for NsSession {
    fn drop(&mut self) {
        // End-of-file tells the helper to exit.
        let sock = self.sock.get_mut().unwrap_or_else(|p| p.into_inner());
        let _ = nix::sys::socket::shutdown(sock.as_raw_fd(), nix::sys::socket::Shutdown::Both);
        if let Some(mut child) = self.child.take() {
            for _ in 0..200 {
                match child.try_wait() {
                    Ok(Some(_)) | Err(_) => return,
                    Ok(None) => std::thread::sleep(std::time::Duration::from_millis(10)),
                }
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Entry point of `switchyard __internal nsenter ...`.
pub(crate) fn nsenter_main(args: &[String]) -> i32 {
    let kv = match parse_kv(args) {
        Ok(kv) => kv,
        Err(e) => {
            eprintln!("switchyard nsenter: {e}");
            return 2;
        }
    };
    let sock = match kv
        .get("sock-fd")
        .and_then(|v| v.parse::<i32>().ok())
        .map(adopt_inherited_fd)
    {
        Some(Ok(fd)) => fd,
        Some(Err(e)) => {
            eprintln!("switchyard nsenter: {e}");
            return 2;
        }
        None => {
            eprintln!(
                "switchyard nsenter: {}",
                RealError::Usage("missing sock-fd=".into())
            );
            return 2;
        }
    };
    let target = match (
        kv.get("target").copied(),
        kv.get("pid"),
        kv.get("start"),
        kv.get("path"),
    ) {
        (Some("holder"), Some(pid), Some(start), _) => match (pid.parse(), start.parse()) {
            (Ok(pid), Ok(start_time)) => Ok(NetnsTarget::Holder(Holder { pid, start_time })),
            _ => Err(RealError::Usage("pid= and start= must be numbers".into())),
        },
        (Some("path"), _, _, Some(path)) => Ok(NetnsTarget::Path(PathBuf::from(path))),
        _ => Err(RealError::Usage(
            "need target=holder pid= start= or target=path path=".into(),
        )),
    };
    let joined = target.and_then(|t| {
        ns::open_target(
            &t,
            Wanted {
                user: true,
                net: true,
                uts: false,
                mount: false,
                pid: false,
            },
        )?
        .join_all()
    });
    if let Err(e) = joined {
        let _ = reply(
            &sock,
            &Reply::Error {
                message: e.to_string(),
            },
            None,
        );
        return 1;
    }
    if reply(&sock, &Reply::Ready, None).is_err() {
        return 1;
    }
    let mut buf = vec![0u8; MAX_MESSAGE];
    loop {
        let n = match recv_message(sock.as_fd(), &mut buf) {
            Ok((0, _)) => return 0,
            Ok((n, _)) => n,
            Err(e) => {
                eprintln!("switchyard nsenter: {e}");
                return 1;
            }
        };
        let outcome = match serde_json::from_slice::<Request>(&buf[..n]) {
            Ok(req) => serve(req),
            Err(e) => Err(RealError::Protocol(e.to_string())),
        };
        let sent = match outcome {
            Ok((r, fd)) => reply(&sock, &r, fd.as_ref()),
            Err(e) => reply(
                &sock,
                &Reply::Error {
                    message: e.to_string(),
                },
                None,
            ),
        };
        if sent.is_err() {
            return 1;
        }
    }
}

fn reply(sock: &OwnedFd, r: &Reply, fd: Option<&OwnedFd>) -> io::Result<()> {
    let bytes = serde_json::to_vec(r).map_err(io::Error::other)?;
    send_message(sock.as_fd(), &bytes, fd.map(|f| f.as_fd()))
}

fn bind_error(kind: &str, addr: SocketAddr, e: io::Error) -> RealError {
    let hint = match e.raw_os_error() {
        Some(libc::EADDRINUSE) => "something inside the sandbox already uses it",
        Some(libc::EADDRNOTAVAIL) => "no interface in the sandbox has that address (is lo up?)",
        Some(libc::EACCES) => {
            "ports below 1024 need CAP_NET_BIND_SERVICE over the sandbox's namespace"
        }
        _ => "",
    };
    RealError::os(
        format!("cannot bind {kind} {addr} inside the sandbox"),
        e,
        hint,
    )
}

/// Handles one request inside the namespace.
fn serve(req: Request) -> Result<(Reply, Option<OwnedFd>)> {
    Ok(match req {
        Request::CreateTap { name, options } => (Reply::Fd, Some(tap::create_tap(&name, options)?)),
        Request::DeleteTap { name } => {
            tap::delete_tap(&name)?;
            (Reply::Done, None)
        }
        Request::NetlinkSocket => {
            // SAFETY: plain socket(2).
            let raw = unsafe {
                libc::socket(
                    libc::AF_NETLINK,
                    libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                    libc::NETLINK_ROUTE,
                )
            };
            if raw < 0 {
                return Err(RealError::os(
                    "cannot open a netlink socket",
                    io::Error::last_os_error(),
                    "",
                ));
            }
            // SAFETY: fresh descriptor.
            (Reply::Fd, Some(unsafe { OwnedFd::from_raw_fd(raw) }))
        }
        Request::UdpSocket { addr } => {
            let s = std::net::UdpSocket::bind(addr).map_err(|e| bind_error("UDP", addr, e))?;
            (Reply::Fd, Some(OwnedFd::from(s)))
        }
        Request::TcpListener { addr } => {
            let s = std::net::TcpListener::bind(addr).map_err(|e| bind_error("TCP", addr, e))?;
            (Reply::Fd, Some(OwnedFd::from(s)))
        }
        Request::LinkExists { name } => {
            tap::validate_ifname(&name)?;
            (
                Reply::Bool {
                    value: tap::link_exists(&name),
                },
                None,
            )
        }
    })
}
