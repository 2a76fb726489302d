//! TAP devices: opening `/dev/net/tun` and `TUNSETIFF`, done by the
//! namespace helper because the kernel creates (or finds) the device in the
//! network namespace of the *calling thread*.
//!
//! **vnet header: 10 bytes.** With [`TapOptions::vnet_hdr`] every frame
//! read from or written to the TAP starts with the 10-byte
//! `struct virtio_net_hdr` — the size [`switchyard_switch::wire::vnet_hdr`] parses —
//! and we set it explicitly with `TUNSETVNETHDRSZ` (a persistent device may
//! have been left at 12 by someone else). The 12-byte
//! `virtio_net_hdr_mrg_rxbuf` only adds `num_buffers`, which a TAP leaves
//! at zero, so it would buy nothing. Offloads `TUN_F_CSUM | TUN_F_TSO4 |
//! TUN_F_TSO6` are enabled, so reads can return GSO frames of up to 64 KiB
//! with the checksum still to be completed: size read buffers for
//! `VNET_HDR_LEN + 65_535 + 14` at least.

use super::error::{RealError, Result};
use serde::{Deserialize, Serialize};
use std::fs::OpenOptions;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;

/// Length of the virtio-net header on TAPs opened with `vnet_hdr`.
pub const VNET_HDR_LEN: usize = switchyard_switch::wire::vnet_hdr::HEADER_LEN;

/// How a TAP is opened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TapOptions {
    /// Prefix frames with the virtio-net header and enable checksum and TCP
    /// segmentation offload (big frames, fewer syscalls).
    pub vnet_hdr: bool,
    /// Keep the device when its last descriptor closes, so a restarted
    /// daemon can re-attach by name without the sandbox losing its
    /// interface (and addresses and routes).
    pub persist: bool,
    /// Only create: fail if an interface of that name exists already
    /// (`IFF_TUN_EXCL`), so a namespace made by someone else never has its
    /// own device taken over. Re-attaching after a restart leaves it off.
    #[serde(default)]
    pub exclusive: bool,
}

/// `struct ifreq` as `TUNSETIFF` uses it: a name and the flags.
#[repr(C)]
struct IfReqFlags {
    name: [u8; libc::IFNAMSIZ],
    flags: libc::c_short,
    _pad: [u8; 22],
}

/// Checks an interface name the way the kernel's `dev_valid_name` does.
pub(crate) fn validate_ifname(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() < libc::IFNAMSIZ
        && name != "."
        && name != ".."
        && !name
            .bytes()
            .any(|b| b == b'/' || b == b':' || b == 0 || b.is_ascii_whitespace());
    if ok {
        Ok(())
    } else {
        Err(RealError::InvalidInterfaceName {
            name: name.to_string(),
        })
    }
}

fn open_tun_device() -> Result<std::fs::File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open("/dev/net/tun")
        .map_err(|source| {
            let hint = match source.kind() {
                io::ErrorKind::NotFound => "load the tun module (modprobe tun) or create the node (mknod /dev/net/tun c 10 200)",
                io::ErrorKind::PermissionDenied => "as an ordinary user you need read/write access to it (chmod 0666 /dev/net/tun, the usual default)",
                _ => "check that the tun driver is available",
            };
            RealError::TunDevice { source, hint }
        })
}

fn ioctl_value(
    fd: &impl AsRawFd,
    request: libc::Ioctl,
    value: libc::c_ulong,
    what: String,
) -> Result<()> {
    // SAFETY: these TUN ioctls take their argument by value.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), request, value) };
    if r < 0 {
        return Err(RealError::os(what, io::Error::last_os_error(), ""));
    }
    Ok(())
}

/// How long a re-attach waits for a TAP the kernel reports busy: pauses of
/// 2, 4, … 32 ms, then 50 ms, about 750 ms in all. A copy of the last
/// holder's descriptor can outlive its `close` by milliseconds: a child
/// forked by any thread of that process holds every descriptor until it
/// `exec`s (close-on-exec acts only then), and an exiting daemon closes its
/// files after it has stopped answering. A second daemon really holding the
/// device still gets [`RealError::TapBusy`], after this long.
const BUSY_PAUSES_MS: [u64; 19] = [
    2, 4, 8, 16, 32, 50, 50, 50, 50, 50, 50, 50, 50, 50, 50, 50, 50, 50, 50,
];

/// Attaches to the TAP `name` in the calling thread's network namespace,
/// creating it if it does not exist; a busy device is retried for a while
/// ([`BUSY_PAUSES_MS`]).
fn attach(name: &str, vnet_hdr: bool, exclusive: bool) -> Result<std::fs::File> {
    let mut pauses = BUSY_PAUSES_MS.iter();
    loop {
        match attach_once(name, vnet_hdr, exclusive) {
            Err(RealError::TapBusy { .. }) => match pauses.next() {
                Some(ms) => std::thread::sleep(std::time::Duration::from_millis(*ms)),
                None => {
                    return Err(RealError::TapBusy {
                        name: name.to_string(),
                    })
                }
            },
            other => return other,
        }
    }
}

fn attach_once(name: &str, vnet_hdr: bool, exclusive: bool) -> Result<std::fs::File> {
    validate_ifname(name)?;
    let file = open_tun_device()?;
    let mut req = IfReqFlags {
        name: [0; libc::IFNAMSIZ],
        flags: 0,
        _pad: [0; 22],
    };
    req.name[..name.len()].copy_from_slice(name.as_bytes());
    let mut flags = libc::IFF_TAP | libc::IFF_NO_PI;
    if vnet_hdr {
        flags |= libc::IFF_VNET_HDR;
    }
    if exclusive {
        flags |= libc::IFF_TUN_EXCL;
    }
    req.flags = flags as libc::c_short;
    // SAFETY: TUNSETIFF reads (and updates) a struct ifreq we own.
    let r = unsafe {
        libc::ioctl(
            file.as_raw_fd(),
            libc::TUNSETIFF,
            &mut req as *mut IfReqFlags,
        )
    };
    if r < 0 {
        let e = io::Error::last_os_error();
        return Err(match e.raw_os_error() {
            Some(libc::EBUSY) if exclusive => RealError::InterfaceExists { name: name.to_string() },
            Some(libc::EBUSY) => RealError::TapBusy { name: name.to_string() },
            Some(libc::EINVAL) => RealError::NotATap { name: name.to_string() },
            Some(libc::EPERM) => RealError::os(
                format!("cannot create or attach TAP device {name}"),
                e,
                "this needs CAP_NET_ADMIN over the namespace: root, or the user that owns the sandbox's user namespace",
            ),
            _ => RealError::os(format!("cannot create or attach TAP device {name}"), e, ""),
        });
    }
    Ok(file)
}

/// Creates the TAP `name` in the calling thread's network namespace (or
/// re-attaches to a persistent one of that name) and returns its
/// non-blocking, close-on-exec descriptor.
pub(crate) fn create_tap(name: &str, opts: TapOptions) -> Result<OwnedFd> {
    if opts.exclusive && link_exists(name) {
        return Err(RealError::InterfaceExists {
            name: name.to_string(),
        });
    }
    let file = attach(name, opts.vnet_hdr, opts.exclusive)?;
    if opts.vnet_hdr {
        let size: libc::c_int = VNET_HDR_LEN as libc::c_int;
        // SAFETY: TUNSETVNETHDRSZ reads an int through the pointer.
        let r = unsafe {
            libc::ioctl(
                file.as_raw_fd(),
                libc::TUNSETVNETHDRSZ,
                &size as *const libc::c_int,
            )
        };
        if r < 0 {
            return Err(RealError::os(
                format!("cannot set the vnet header size of {name}"),
                io::Error::last_os_error(),
                "",
            ));
        }
    }
    // Always set the offloads, to none without a vnet header: a persistent
    // TAP re-attached by a daemon started with other settings must not keep
    // offloads whose metadata nobody would carry (checksums would go
    // missing and TCP would stall).
    let offloads = if opts.vnet_hdr {
        libc::TUN_F_CSUM | libc::TUN_F_TSO4 | libc::TUN_F_TSO6
    } else {
        0
    };
    ioctl_value(
        &file,
        libc::TUNSETOFFLOAD,
        offloads as libc::c_ulong,
        format!("cannot set the offloads of {name}"),
    )?;
    // Set persistence either way: a device re-attached without `persist`
    // should go away when we close it, as asked.
    ioctl_value(
        &file,
        libc::TUNSETPERSIST,
        opts.persist as libc::c_ulong,
        format!("cannot set persistence of {name}"),
    )?;
    Ok(OwnedFd::from(file))
}

/// Removes the TAP `name` from the calling thread's network namespace:
/// attach, clear persistence, close. Absent devices are fine.
pub(crate) fn delete_tap(name: &str) -> Result<()> {
    validate_ifname(name)?;
    if !link_exists(name) {
        return Ok(());
    }
    let file = attach(name, false, false)?;
    ioctl_value(
        &file,
        libc::TUNSETPERSIST,
        0,
        format!("cannot clear persistence of {name}"),
    )?;
    drop(file);
    Ok(())
}

/// Whether an interface of that name exists in the calling thread's
/// network namespace.
pub(crate) fn link_exists(name: &str) -> bool {
    nix::net::if_::if_nametoindex(name).is_ok()
}
